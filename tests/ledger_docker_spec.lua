-- The ledger kept in a swarm (`ledger = "swarm"`, --ledger swarm), against
-- the real engine and one-node swarm of tests/infra/up: releases and the
-- lock are Docker configs with labels, so two checkouts of a pipeline in
-- two directories (two CI runners) see one history and one lock; a release
-- bigger than a config is chunked; a holder killed with -9 is found out by
-- another runner once its lease ran out. The docker CLI checks what is in
-- the swarm, independently of slipway.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")

local F = require("support.docker_fixtures")

local function docker(...)
  local r = F.cli({ ... }, { timeout = 60 })
  assert(r.code == 0, ("docker %s: %s"):format(table.concat({ ... }, " "), r.stderr))
  return (r.stdout:gsub("%s+$", ""))
end

local function lit(s) return (s:gsub("%p", "%%%0")) end

-- The configs of the ledger that belong to a pipeline: { name = size }.
local function configs_of(pipeline)
  local out = {}
  local ids = docker("config", "ls", "-q", "--filter", "label=io.slipway.ledger.pipeline=" .. pipeline)
  for id in ids:gmatch("%S+") do
    local c = json.decode(docker("config", "inspect", id))[1]
    out[c.Spec.Name] = #require("slipway.base64").decode(c.Spec.Data)
  end
  return out
end

local function remove_configs(pipeline)
  local ids = docker("config", "ls", "-q", "--filter", "label=io.slipway.ledger.pipeline=" .. pipeline)
  for id in ids:gmatch("%S+") do pcall(docker, "config", "rm", id) end
end

-- Two checkouts of one pipeline, in two directories.
local function checkouts(text)
  local a = H.project { ["deploy.lua"] = text }
  local b = H.project { ["deploy.lua"] = text }
  return a, b
end

local function history(dir, args, env)
  local a = { "history", "--json" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local r = H.run(dir, a, { env = env })
  assert.same(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

-- Run slipway in a UTS namespace of its own whose host name is `host`:
-- another CI runner, as far as slipway can tell.
local function run_on(host, dir, args, env)
  local argv = { "unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', host, H.slipway }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local e = {}
  for k, v in pairs(H.base_env) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  return assert(proc.run(argv, { cwd = dir, env = e, timeout = "60s" }))
end

local WAITING = [[
param.string("version", "v1")
task("deploy", function(p)
  fs.write("started-" .. p.version, "yes")
  while not fs.exists("go-" .. p.version) do sleep(0.02) end
end)
task("smoke", { needs = "deploy", verifies = true }, function() end)
]]

describe("the swarm ledger", function()
  leaks.check()
  local pipelines = {}
  setup(function()
    assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (run through tests/run, which starts tests/infra/up)")
  end)
  after_each(function()
    for _, name in ipairs(pipelines) do remove_configs(name) end
    pipelines = {}
    H.cleanup()
  end)
  local function name_for(prefix)
    local n = F.unique(prefix .. "-")
    pipelines[#pipelines + 1] = n
    return n
  end

  it("keeps one history that a second checkout (another runner) sees", function()
    local name = name_for("ledger-shared")
    local a, b = checkouts(('pipeline { name = %q, ledger = "swarm" }\n'):format(name) .. WAITING)
    for _, v in ipairs({ "v1", "v2", "v3" }) do
      assert(fs.write(a .. "/go-" .. v, ""))
      assert(fs.write(b .. "/go-" .. v, ""))
    end
    assert.same(0, H.run(a, { "run", "-p", "version=v1" }).code)
    local r = run_on("runner-2", b, { "run", "-p", "version=v2" })
    assert.same(0, r.code, r.stderr)
    assert.matches("record: release %S+ in the swarm at ", r.stdout)
    assert.same(0, H.run(a, { "run", "-p", "version=v3" }).code)
    local from_a, from_b = history(a), history(b)
    assert.same(from_a, from_b)
    local seen = {}
    for i, row in ipairs(from_a) do seen[i] = { row.version, row.status, row.verified, row.pipeline, row.host } end
    local host = fs.read("/proc/sys/kernel/hostname"):match("^[^\n]+")
    assert.same({ { "v3", "success", true, name, host }, { "v2", "success", true, name, "runner-2" },
                  { "v1", "success", true, name, host } }, seen)
    -- the releases are in the swarm, not in either checkout
    assert.same({}, fs.glob(a .. "/.slipway/runs/*/record.json"))
    assert.same({}, fs.glob(b .. "/.slipway/runs/*/record.json"))
    local names = {}
    for n in pairs(configs_of(name)) do names[#names + 1] = n end
    assert.same(3, #names)                         -- one config a release: older revisions are gone
    for _, row in ipairs(from_a) do
      local found = false
      for _, n in ipairs(names) do found = found or n:find("slipway-r-" .. row.id, 1, true) == 1 end
      assert.is_true(found, row.id)
    end
    -- show, from the other checkout
    r = H.run(b, { "show", from_a[3].id })
    assert.same(0, r.code, r.stderr)
    assert.matches("^release   " .. lit(from_a[3].id) .. "\npipeline  " .. lit(name) .. ", environment default\n"
      .. "status    success, verified\nversion   v1\n", r.stdout)
    assert.is_nil(r.stdout:match("\nrecord"))           -- (no file to open: it is in the swarm)
  end)

  it("--ledger swarm on the command line; the local ledger knows nothing of it", function()
    local name = name_for("ledger-flag")
    local dir = H.project { ["deploy.lua"] = ('pipeline { name = %q }\ntask("a", function() end)\n'):format(name) }
    assert.same(0, H.run(dir, { "run", "--ledger", "swarm" }).code)
    local r = H.run(dir, { "history" })
    assert.same({ 0, "no releases of " .. name .. " in " .. fs.realpath(dir) .. "/.slipway\n", "" },
      { r.code, r.stdout, r.stderr })
    assert.same(1, #fs.glob(dir .. "/.slipway/runs/*/timeline.svg"))
    local rows = history(dir, { "--ledger", "swarm" })
    assert.same({ 1, "success" }, { #rows, rows[1].status })
  end)

  it("chunks a release bigger than a config can hold, and reads it back whole", function()
    local name = name_for("ledger-big")
    local dir = H.project { ["deploy.lua"] = ([[
pipeline { name = %q, ledger = "swarm" }
task("big", function() return ("0123456789abcdef"):rep(70000) end)   -- 1.12 MB
]]):format(name) }
    local r = H.run(dir, { "run" })
    assert.same(0, r.code, r.stderr)
    local sizes = configs_of(name)
    local chunks, total = 0, 0
    for n, size in pairs(sizes) do
      chunks = chunks + 1
      total = total + size
      assert.is_true(size <= 500 * 1000, n .. " holds " .. size .. " bytes")
    end
    assert.same(3, chunks)
    assert.is_true(total > 1120000)
    local id = history(dir)[1].id
    r = H.run(dir, { "show", id, "--json" })
    assert.same(0, r.code, r.stderr)
    assert.same(1120000, #json.decode(r.stdout).tasks[1].result)
  end)

  it("holds the lock in the swarm: a run from another checkout stops at once, or waits with --lock-wait", function()
    local name = name_for("ledger-lock")
    local a, b = checkouts(('pipeline { name = %q, ledger = "swarm" }\n'):format(name) .. WAITING)
    local first = H.start_run(a, { "--reason", "deploying v1" })
    H.wait_file(a .. "/started-v1", 20000)
    local r = run_on("runner-2", b, { "run", "-p", "version=v2" })
    assert.same(1, r.code)
    assert.matches("^slipway: the lock of " .. lit(name) .. "/default is held by %S+ on %S+ %(pid " .. first.pid
      .. ", run %S+%) since [%d%- :]+ UTC: deploying v1 %(wait for it with %-%-lock%-wait DURATION%)\n$", r.stderr)
    r = run_on("runner-2", b, { "lock", "status" })
    assert.matches("^the lock of " .. lit(name) .. "/default is held by [^\n]+: deploying v1\n  lease of 60s", r.stdout)
    local waiter = H.start_run(b, { "-p", "version=v2", "--lock-wait", "60s" })
    -- its place in line is a config of the swarm too
    local place = "slipway-c-" .. require("slipway.ledger.lock").name(name, "default") .. ".q"
    local deadline = task.now() + 30000
    while not docker("config", "ls", "--format", "{{.Name}}", "--filter", "name=" .. place):find(place, 1, true) do
      assert(task.now() < deadline, "the waiter never took a place in line")
      task.sleep(0.2)
    end
    task.sleep(1)
    assert.is_false(fs.exists(b .. "/started-v2"), "the waiter ran while the lock was held")
    assert(fs.write(a .. "/go-v1", ""))
    assert(fs.write(b .. "/go-v2", ""))
    assert.same(0, first:wait().code)
    local w = waiter:wait()
    assert.same(0, w.code, w.stderr)
    assert.matches("waiting for the lock of " .. lit(name) .. "/default: it is held by", w.stderr)
    local rows = history(b)
    assert.same({ "v2", "v1" }, { rows[1].version, rows[2].version })
    -- the lock and the queue are gone from the swarm
    for n in pairs(configs_of(name)) do assert.is_nil(n:match("^slipway%-c%-"), n) end
  end)

  it("a holder killed with -9: another runner reads its release interrupted once the lease ran out, and takes over", function()
    local name = name_for("ledger-kill")
    local a, b = checkouts(('pipeline { name = %q, ledger = "swarm" }\n'):format(name) .. WAITING)
    -- (a lease long enough for the first look below to come within it,
    -- on a slow machine too: the heartbeat renewed it at most 3s before the kill)
    local env = { SLIPWAY_LOCK_LEASE = "9s" }
    local p = H.start_run(a, { "--reason", "deploying v1" }, env)
    H.wait_file(a .. "/started-v1", 20000)
    p:kill("SIGKILL")
    p:wait()
    local killed = task.now()
    -- another runner cannot see the process: the release is running until its lease runs out
    local r = run_on("runner-2", b, { "history", "--json" }, env)
    local rows = json.decode(r.stdout)
    assert.same({ 1, "running" }, { #rows, rows[1].status })
    task.sleep((killed + 10500 - task.now()) / 1000)
    rows = json.decode(run_on("runner-2", b, { "history", "--json" }, env).stdout)
    assert.same("interrupted", rows[1].status)
    assert.matches("^nothing renewed it for %d+s %(its lease is 9s%)$", rows[1].interrupted)
    assert(fs.write(b .. "/go-v2", ""))
    r = run_on("runner-2", b, { "run", "-p", "version=v2", "--reporter", "plain" }, env)
    assert.same(0, r.code, r.stderr)
    assert.matches("warning: took over the lock of " .. lit(name) .. "/default: its lease ran out %(held by [^\n]+run "
      .. lit(rows[1].id) .. "%)", r.stdout)
    assert.matches("warning: run " .. lit(rows[1].id) .. " %(started [^\n]+%) was interrupted: nothing renewed it", r.stdout)
    local after = history(a)
    assert.same({ "success", "interrupted" }, { after[1].status, after[2].status })
  end)

  it("lock acquire and release in the swarm", function()
    local name = name_for("ledger-manual")
    local a, b = checkouts(('pipeline { name = %q, ledger = "swarm" }\ntask("a", function() end)\n'):format(name))
    local r = H.run(a, { "lock", "acquire", "--reason", "freeze" }, { env = { USER = "carol" } })
    assert.same(0, r.code, r.stderr)
    assert.same(1, configs_of(name)["slipway-c-" .. require("slipway.ledger.lock").name(name, "default")] and 1 or 0)
    r = H.run(b, { "run" })
    assert.same(1, r.code)
    assert.matches("is held by carol on %S+ since [^\n]+: freeze", r.stderr)
    r = H.run(b, { "lock", "release" }, { env = { USER = "carol" } })
    assert.same(0, r.code, r.stderr)
    assert.same(0, H.run(b, { "run" }).code)
  end)

  it("an engine it cannot reach stops the run before anything runs", function()
    local dir = H.project { ["deploy.lua"] = 'pipeline { ledger = "swarm" }\ntask("a", function() io.open("ran", "w"):close() end)\n' }
    local r = H.run(dir, { "run" }, { env = { DOCKER_HOST = "unix:///nonexistent/docker.sock" } })
    assert.same({ 1, "" }, { r.code, r.stdout })
    assert.matches("^slipway: cannot [^\n]+%(nothing ran%): [^\n]*cannot reach the Docker engine at "
      .. "unix:///nonexistent/docker%.sock", r.stderr)
    assert.is_false(fs.exists(dir .. "/ran"))
  end)
end)
