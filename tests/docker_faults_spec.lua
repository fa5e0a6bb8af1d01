-- docker faults against the real engine: engine not running, registry
-- down, image not found, a spec the engine rejects, a stack that does not
-- converge, Swarm rolling an update back by itself. Each is a clear error,
-- and nothing is left half-deployed: what the deploy changed is undone.
local docker = require("slipway.docker")
local client = require("slipway.docker.client")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry
local APP = REG .. "/slipway-faults:v1"
local CRASH = REG .. "/slipway-faults:crash"

local function deploy_err(...)
  local ok, err = pcall(docker.stack.deploy, ...)
  assert(not ok, "expected the deploy to fail")
  return tostring(err)
end

local function service_names(stack)
  local out = {}
  for _, s in ipairs(docker.stack.services(stack)) do out[#out + 1] = s.Spec.Name end
  table.sort(out)
  return out
end

local function svc(image, extra)
  local s = { image = image, deploy = { replicas = 1, update_config = { monitor = "1s" },
    restart_policy = { condition = "any", delay = "500ms" } } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

describe("docker faults", function()
  leaks.check()

  setup(function()
    fx.app_image(APP, { VERSION = "faults" })
    docker.push(APP)
    fx.app_image(CRASH, { VERSION = "crash", MODE = "crash" })
    docker.push(CRASH)
  end)

  it("engine not running: every operation says so", function()
    local c = client.new({ host = "unix:///tmp/slipway-no-engine.sock" })
    local ok, err = pcall(docker.stack.deploy, "x", { services = {} }, { client = c })
    assert.is_false(ok)
    assert.matches("^tests/docker_faults_spec.lua:%d+: docker.stack.deploy: cannot reach the Docker engine at unix:///tmp/slipway%-no%-engine.sock", err)
    ok, err = pcall(docker.push, APP, { client = c })
    assert.is_false(ok)
    assert.matches("docker.push: .*cannot reach the Docker engine", err)
  end)

  it("image not found: the wait ends with the task error and the stack is rolled back", function()
    local name = fx.unique("nf")
    local err = deploy_err(name, { services = {
      ok = svc(APP),
      missing = svc(REG .. "/slipway-never-pushed:1"),
    } }, { timeout = "6s" })
    assert.matches("^tests/docker_faults_spec.lua:%d+: docker.stack.deploy: " .. name
      .. ": not converged within 6s: " .. name .. "_missing: 0/1 running; task %w+ %w+: .*"
      .. "%(the stack was rolled back%)$", err)
    assert.matches("No such image", err)
    assert.same({}, service_names(name))
    fx.remove_stack(name)
  end)

  it("registry down: the image cannot be pulled, and the deploy rolls back", function()
    local name = fx.unique("rd")
    -- no registry listens there, and the image is not on the node either
    local down = "127.0.0.1:5999/slipway-faults:v1"
    docker.rm_image(down, { missing_ok = true })
    local err = deploy_err(name, { services = { app = svc(down) } }, { timeout = "6s" })
    assert.matches("docker.stack.deploy: " .. name .. ": not converged within 6s: " .. name .. "_app: ", err)
    assert.matches("%(the stack was rolled back%)$", err)
    assert.same({}, service_names(name))
    fx.remove_stack(name)
  end)

  it("a spec the engine rejects: the engine's message, and earlier services are undone", function()
    local name = fx.unique("bad")
    docker.stack.deploy(name, { services = { a = svc(APP), b = svc(APP) } }, { timeout = "60s" })
    local before = docker.service.inspect(name .. "_a").Spec
    -- a is updated (new env), then b is rejected: a goes back to its spec
    local err = deploy_err(name, { services = {
      a = svc(APP, { environment = { NEW = "1" } }),
      b = svc(APP, { ports = { { target = 80, published = 18099, protocol = "tcp", mode = "ingress" },
                              { target = 81, published = 18099, protocol = "tcp", mode = "ingress" } } }),
    } }, { timeout = "60s" })
    assert.matches("^tests/docker_faults_spec.lua:%d+: docker.stack.deploy: " .. name
      .. ": .*docker.service.update: " .. name .. "_b: .*duplicate published ports.*%(the stack was rolled back%)$", err)
    local after = docker.service.inspect(name .. "_a").Spec
    assert.is_true(docker.stack.same(before, after))
    assert.same({ name .. "_a", name .. "_b" }, service_names(name))
    fx.remove_stack(name)
  end)

  it("does not converge in time: the reason names the health check, the update is undone", function()
    local name = fx.unique("to")
    docker.stack.deploy(name, { services = { web = svc(APP) } }, { timeout = "60s" })
    local v1 = docker.service.inspect(name .. "_web").Spec
    local err = deploy_err(name, { services = {
      web = svc(APP, { environment = { MODE = "unhealthy" },
                       deploy = { replicas = 1, update_config = { monitor = "30s", failure_action = "continue" } } }),
    } }, { timeout = "8s" })
    assert.matches("docker.stack.deploy: " .. name .. ": not converged within 8s: " .. name
      .. "_web: .*health[^:]*: healthcheck: HTTP/1.1 503", err)
    assert.matches("%(the stack was rolled back%)$", err)
    assert.is_true(docker.stack.same(v1, docker.service.inspect(name .. "_web").Spec))
    fx.remove_stack(name)
  end)

  it("Swarm rolls an update back by itself: slipway rolls back the whole stack", function()
    local name = fx.unique("sr")
    local stack = function(web_image, api_env)
      return { services = {
        api = svc(APP, { environment = api_env }),
        web = svc(web_image, { deploy = { replicas = 1,
          update_config = { monitor = "2s", failure_action = "rollback" },
          restart_policy = { condition = "any", delay = "500ms" } } }),
      } }
    end
    docker.stack.deploy(name, stack(APP, { V = "1" }), { timeout = "60s" })
    local api_v1 = docker.service.inspect(name .. "_api").Spec
    local err = deploy_err(name, stack(CRASH, { V = "2" }), { timeout = "60s" })
    assert.matches("docker.stack.deploy: " .. name .. ": " .. name .. "_web: update rollback_%a+: ", err)
    assert.matches("%(the stack was rolled back%)$", err)
    -- api was fine, but it goes back too: the stack is one unit
    assert.is_true(docker.stack.same(api_v1, docker.service.inspect(name .. "_api").Spec))
    fx.remove_stack(name)
  end)
end)
