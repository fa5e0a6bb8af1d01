-- docker.stack's wait, driven by the engine's event stream, against the
-- real swarm (tests/infra/up): progress lines from the events, looks only
-- when something happened, and a stream cut in the middle of a wait (a
-- proxy between slipway and the engine drops it): the wait polls, goes
-- back to the stream, and converges.
local docker = require("slipway.docker")
local converge = require("slipway.docker.converge")
local client = require("slipway.docker.client")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry
local APP = REG .. "/slipway-converge:v1"

local function watches_of(stack)
  local out = {}
  for _, s in ipairs(docker.stack.services(stack)) do out[#out + 1] = { name = s.Spec.Name, id = s.ID } end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- (a patient healthcheck: a loaded machine must not make it flap)
local function svc(extra)
  local s = { image = APP, deploy = { replicas = 2, restart_policy = { condition = "any", delay = "500ms" } },
    healthcheck = { test = { "CMD", "/health", "healthcheck" }, interval = "500ms", timeout = "10s", retries = 5 } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

describe("docker.stack wait on events", function()
  leaks.check()

  setup(function()
    fx.app_image(APP, { VERSION = "converge" })
    docker.push(APP, { quiet = true })
  end)

  it("says what the events say, as they come, and converges", function()
    local name = fx.unique("ev")
    finally(function() fx.remove_stack(name) end)
    docker.stack.deploy(name, { services = { app = svc() } }, { wait = false, quiet = true })
    local lines, stats = {}, {}
    local ok, reasons = converge.wait(client.default(), watches_of(name), 120000, 250,
      function(l) lines[#lines + 1] = l end, { stats = stats })
    assert.same({ true, {} }, { ok, reasons })
    local text = table.concat(lines, "\n")
    assert.matches(name .. "_app%.%d: container started", text)
    assert.matches(name .. "_app%.%d: healthy", text)
    assert.same(name .. "_app converged", lines[#lines])
    assert.same(1, stats.connects)
    assert.same(0, stats.drops)
    assert.is_true(stats.events >= 4, "two starts and two healthy events: " .. stats.events)
  end)

  it("looks only when an event names a service, not every poll interval", function()
    -- a service that can never start (its image is nowhere): no container,
    -- so no events; the wait looks at it every SAFETY_MS, not every 250ms
    local name = fx.unique("quiet")
    finally(function() fx.remove_stack(name) end)
    docker.stack.deploy(name, { services = { app = svc({ image = REG .. "/slipway-never-pushed:1" }) } },
      { wait = false, quiet = true, resolve_image = "never" })
    local function wait(events)
      local stats, started = {}, task.now()
      local ok, _, why = converge.wait(client.default(), watches_of(name), 5000, 50, function() end,
        { stats = stats, events = events })
      assert.same({ false, "timeout" }, { ok, why })
      return stats.looks, task.now() - started
    end
    local polled = wait(false)
    local evented, took = wait(true)
    -- at the start, every SAFETY_MS (2s), at the deadline
    assert.is_true(evented <= math.ceil(took / converge.SAFETY_MS) + 2,
      ("events: %d looks in %.0f ms"):format(evented, took))
    assert.is_true(polled > evented + 2, ("polling every 50ms: %d looks, events: %d"):format(polled, evented))
  end)

  it("polls while the stream is cut, reconnects, and converges", function()
    local dir = fx.tmpdir()
    local bin, sock = dir .. "/unix_proxy", dir .. "/engine.sock"
    assert.same(0, proc.run({ "cc", "-O2", "-o", bin, "tests/support/unix_proxy.c" }).code)
    local engine = os.getenv("DOCKER_HOST"):match("^unix://(.+)$")
    local requests, listening = {}, false
    local proxy = assert(proc.spawn({ bin, sock, engine }, { stdout = function(line)
      if line == "listening" then listening = true end
      local what = line:match("^request %d+ (.*)$")
      if what then requests[#requests + 1] = what end
    end }))
    local waited = task.spawn(function() return proxy:wait() end)
    local c = client.new({ host = "unix://" .. sock })
    local name = fx.unique("cut")
    finally(function()             -- (busted keeps one finally per test)
      fx.remove_stack(name)
      c:close()
      proxy:kill("SIGKILL")
      waited:wait()
      fx.rmtree(dir)
    end)
    while not listening do task.sleep(0.01) end

    docker.stack.deploy(name, { services = { app = svc() } }, { wait = false, quiet = true, client = c })
    local function event_streams()
      local n = 0
      for _, r in ipairs(requests) do if r:match("^GET /v[%d.]+/events") then n = n + 1 end end
      return n
    end
    local lines, stats = {}, {}
    local waiter = task.spawn(converge.wait, c, watches_of(name), 120000, 250,
      function(l) lines[#lines + 1] = l end, { stats = stats })
    -- once the wait listens, cut its stream
    while event_streams() == 0 do task.sleep(0.01) end
    task.sleep(0.2)
    assert.is_true(proxy:kill("SIGUSR1"))
    local ok, reasons = waiter:join()
    assert.same({ true, {} }, { ok, reasons })
    local text = table.concat(lines, "\n")
    local seen = text .. "\nrequests:\n" .. table.concat(requests, "\n")
    assert.truthy(text:find("event stream lost (EHTTP: transfer closed with outstanding read data remaining); "
      .. "polling every 250ms until it is back", 1, true), seen)
    assert.same(name .. "_app converged", lines[#lines])
    assert.is_true(stats.drops >= 1, "drops: " .. stats.drops)
    assert.is_true(stats.connects >= 2, "connects: " .. stats.connects)
    assert.is_true(event_streams() >= 2, "the proxy saw the stream come back: " .. seen)
    -- it went back to the stream from the last event it saw
    local reconnect
    for _, r in ipairs(requests) do if r:match("/events") then reconnect = r end end
    assert.matches("since=%d+%.%d+", reconnect)
  end)

  it("reads HTTP dates", function()
    assert.same(0, converge._http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
    assert.same(1764926400, converge._http_date("Fri, 05 Dec 2025 09:20:00 GMT"))
    assert.same(951782400, converge._http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.is_nil(converge._http_date("yesterday"))
  end)
end)
