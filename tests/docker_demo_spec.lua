-- The docker-demo pipeline (examples/docker-demo) run again and again on
-- the real swarm, asserted from its NDJSON events (`slipway run --json`)
-- and its run record: run 1 builds, pushes and deploys everything; run 2
-- with nothing changed builds, pushes and updates nothing and still
-- validates; run 3 after an edit of one service's source rebuilds and
-- updates that service alone; a second checkout (a copy of the pipeline,
-- another "CI runner" whose engine has none of the images) finds the
-- images in the registry.
local json = require("slipway.json")
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local docker = require("slipway.docker")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local SLIPWAY = os.getenv("SLIPWAY") or "build/slipway"
local SERVICES = { "api", "web", "worker" }

-- A checkout of its own: the pipeline and the program's sources, so the
-- run records, the copied program and an edited service stay out of the
-- tree (the pipeline finds tests/apps at ../../ from itself).
local function checkout()
  local dir = fx.tmpdir()
  assert.same(0, proc.run({ "mkdir", "-p", dir .. "/examples", dir .. "/tests/apps" }).code)
  assert.same(0, proc.run({ "cp", "-r", "examples/docker-demo", dir .. "/examples/" }).code)
  assert.same(0, proc.run({ "rm", "-rf", dir .. "/examples/docker-demo/.slipway" }).code)
  for _, f in ipairs({ "health.c", "Makefile", "Dockerfile" }) do
    assert.same(0, proc.run({ "cp", "tests/apps/" .. f, dir .. "/tests/apps/" }).code)
  end
  return dir
end

-- Run the pipeline of a checkout; its events, by kind.
local function run(dir, stack, version)
  local r = proc.run({ SLIPWAY, "run", dir .. "/examples/docker-demo/deploy.lua", "--json",
    "-p", "stack=" .. stack, "-p", "version=" .. version }, { timeout = "5m" })
  local out = { code = r.code, output = {}, changes = {}, finished = {}, raw = r.stdout .. r.stderr }
  for line in r.stdout:gmatch("[^\n]+") do
    local ok, ev = pcall(json.decode, line)
    if ok and type(ev) == "table" then
      if ev.type == "output" then
        out.output[ev.task or "?"] = out.output[ev.task or "?"] or {}
        table.insert(out.output[ev.task or "?"], ev.line)
      elseif ev.type == "change_recorded" then
        out.changes[#out.changes + 1] = ev
      elseif ev.type == "task_finished" then
        out.finished[ev.task] = ev.status
      elseif ev.type == "run_finished" then
        out.status, out.record = ev.status, ev.record
      end
    end
  end
  return out
end

-- The build task's verdict for a service: "built" or "cached in the ...",
-- and whether the push sent anything.
local function build_of(r, name)
  local text = table.concat(r.output["build[" .. name .. "]"] or {}, "\n")
  local how, push = text:match(": ([^,\n]+), (.-) sha256:")
  return how, push, text
end

-- The deploy's change entry in the record: summary and actions by service.
local function deploy_record(r, stack)
  local rec = json.decode(assert(fs.read(r.record)))
  for _, c in ipairs(rec.changes or {}) do
    if c.kind == "docker.stack" and c.target == stack then
      local actions = {}
      for _, s in ipairs(c.data.services) do actions[s.name:sub(#stack + 2)] = s.action end
      return c.summary, actions
    end
  end
end

describe("docker-demo, incremental", function()
  leaks.check()

  it("does only what changed: everything, then nothing, then one service; a second checkout finds the images", function()
    fx.app_binary()
    local stack = fx.unique("demo")
    local version = fx.unique("v")
    local one, two = checkout(), nil
    finally(function()
      fx.remove_stack(stack)
      fx.rmtree(one)
      fx.rmtree(two)
      for _, s in ipairs(SERVICES) do
        pcall(docker.rm_image, ("%s/demo-%s:%s"):format(fx.registry, s, version), { missing_ok = true, force = true })
      end
    end)

    -- run 1: build, push, create everything
    local r1 = run(one, stack, version)
    assert.same(0, r1.code, r1.raw)
    for _, s in ipairs(SERVICES) do
      local how, push = build_of(r1, s)
      assert.same({ "built", "pushed as" }, { how, push }, s)
    end
    assert.same({ "created 3 services", { api = "created", web = "created", worker = "created" } },
      { deploy_record(r1, stack) })
    assert.same("ok", r1.finished.validate)

    -- run 2: nothing changed
    local r2 = run(one, stack, version)
    assert.same(0, r2.code, r2.raw)
    for _, s in ipairs(SERVICES) do
      local how, push = build_of(r2, s)
      assert.same({ "cached in the engine", "already in the registry as" }, { how, push }, s)
    end
    assert.same({ "3 unchanged", { api = "unchanged", web = "unchanged", worker = "unchanged" } },
      { deploy_record(r2, stack) })
    local deploy_out = table.concat(r2.output.deploy or {}, "\n")
    assert.truthy(deploy_out:find("docker.stack: " .. stack .. ": 3 unchanged", 1, true), deploy_out)
    assert.is_nil(deploy_out:find("updated", 1, true))
    assert.is_nil(deploy_out:find("converged", 1, true))   -- nothing to wait for
    assert.same("ok", r2.finished.validate)
    assert.same("success", r2.status)

    -- run 3: api's source changed
    fx.write(one .. "/examples/docker-demo/services/api/app.conf", "service = api\nworkers = 4\n")
    local r3 = run(one, stack, version)
    assert.same(0, r3.code, r3.raw)
    local how3, push3 = build_of(r3, "api")
    assert.same({ "built", "pushed as" }, { how3, push3 })
    for _, s in ipairs({ "web", "worker" }) do
      assert.same("cached in the engine", (build_of(r3, s)), s)
    end
    assert.same({ "updated 1 service, 2 unchanged", { api = "updated", web = "unchanged", worker = "unchanged" } },
      { deploy_record(r3, stack) })
    local out3 = table.concat(r3.output.deploy or {}, "\n")
    assert.truthy(out3:find(stack .. "_api converged", 1, true), out3)
    assert.is_nil(out3:find(stack .. "_web converged", 1, true))
    assert.same("ok", r3.finished.validate)

    -- a second checkout of the same pipeline, on a "runner" whose engine
    -- has none of the images (untagged here: the stack's containers still
    -- use them), with the same registry: every build is found there
    two = checkout()
    fx.write(two .. "/examples/docker-demo/services/api/app.conf", "service = api\nworkers = 4\n")
    for _, s in ipairs(SERVICES) do
      local tag = ("%s/demo-%s:%s"):format(fx.registry, s, version)
      docker.rm_image(tag, { force = true })
      assert.is_false(docker.exists(tag))
    end
    local r4 = run(two, stack, version)
    assert.same(0, r4.code, r4.raw)
    for _, s in ipairs(SERVICES) do
      local how, push = build_of(r4, s)
      assert.same({ "cached in the registry", "already in the registry as" }, { how, push }, s)
      assert.is_false(docker.exists(("%s/demo-%s:%s"):format(fx.registry, s, version)))   -- not pulled
    end
    assert.same("3 unchanged", (deploy_record(r4, stack)))
    assert.same("ok", r4.finished.validate)
  end)
end)
