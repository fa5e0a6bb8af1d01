-- `finally` tasks run after everything else whatever happened, with the
-- release summary (here posted to a real local HTTP server, as a team
-- records deployments); changes that cannot be undone are said to be left
-- in place, never silently ok.
local H = require("support.pipeline_helper")
local nginx = require("support.nginx")
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")

local RECORDER = [[
task("record", { finally = true }, function(p, release)
  local r = assert(http.request { method = "POST", url = os.getenv("HOOK"), body = json.encode(release),
                                  headers = { ["content-type"] = "application/json" } })
  assert(r.status == 200, "hook answered " .. r.status)
end)
]]

describe("finally tasks", function()
  leaks.check()
  local srv
  setup(function() srv = nginx.start {} end)
  teardown(function() srv:stop() end)
  after_each(H.cleanup)

  local function hooks()
    local text = fs.read(srv.root .. "/hooks.log") or ""
    fs.write(srv.root .. "/hooks.log", "")     -- (nginx keeps it open: truncate, not remove)
    local out = {}
    for line in text:gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(line)) end
    return out
  end

  local function run(files, args, opts)
    local dir = H.project(files)
    opts = opts or {}
    opts.env = { HOOK = srv:url("/hook") }
    return H.run_json(dir, args, opts), dir
  end

  it("get the release summary after a successful run", function()
    local r = run({ ["deploy.lua"] = [[
param.string("version", "1.4.0")
task("build", function() sleep(0.02) end)
task("deploy", { needs = "build" }, function() end)
]] .. RECORDER })
    assert.same(0, r.code, r.stderr)
    local got = hooks()
    assert.same(1, #got)
    local fin = H.of(r.events, "run_finished")[1]
    assert.same({ fin.run_id, "success", "1.4.0", "ok", "ok" },
      { got[1].id, got[1].status, got[1].version, got[1].tasks.build, got[1].tasks.deploy })
    assert.same({ true, "default" }, { got[1].verified, got[1].environment })
    assert.truthy(got[1].pipeline)
    assert.truthy(got[1].finished_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), got[1].finished_at)
    assert.is_true(got[1].durations.build >= 20)
    assert.is_nil(got[1].tasks.record)
    -- the finally task is a unit of the run like any other, started last
    local started = H.names(r.events, "task_started")
    assert.same("record", started[#started])
  end)

  it("run after a failure and its rollback, and see the outcome", function()
    local r = run({ ["deploy.lua"] = [[
task("deploy", { rollback = function() end }, function() end)
task("validate", { needs = "deploy" }, function() error("unhealthy") end)
]] .. RECORDER })
    assert.same(1, r.code)
    local got = hooks()
    assert.same({ "rolled_back", "failed", false }, { got[1].status, got[1].tasks.validate, got[1].verified })
    assert.same("ok", H.statuses(r.events).record)
  end)

  it("run after an interrupt, within their deadline", function()
    local dir = H.project { ["deploy.lua"] = [[
task("slow", function() io.open("started", "w"):write("1"):close() sleep(60) end)
]] .. RECORDER }
    local env = { HOOK = srv:url("/hook") }
    for k, v in pairs(H.base_env) do env[k] = v end
    local p = assert(proc.spawn({ H.slipway, "run", "--json" }, { cwd = dir, env = env }))
    H.wait_file(dir .. "/started", 5000)
    assert.same(0, proc.run({ "kill", "-INT", tostring(p.pid) }).code)
    local res = p:wait()
    assert.same(130, res.code)
    local got = hooks()
    assert.same("interrupted", got[1].status)
    assert.same("cancelled", got[1].tasks.slow)
  end)

  it("that fail are reported but change nothing of the outcome", function()
    local r = run({ ["deploy.lua"] = [[
task("deploy", function() end)
task("notify", { finally = true }, function() error("webhook down") end)
]] })
    assert.same(0, r.code)
    assert.same({ deploy = "ok", notify = "failed" }, H.statuses(r.events))
    assert.same("success", H.of(r.events, "run_finished")[1].status)
  end)

  it("stay in a run narrowed with --only, and go with --skip", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() end)
task("b", function() end)
task("tidy", { finally = true }, function() end)
]] }
    assert.same({ a = "ok", b = "skipped", tidy = "ok" }, H.statuses(H.run_json(dir, { "--only", "a" }).events))
    assert.same({ a = "ok", b = "ok", tidy = "skipped" }, H.statuses(H.run_json(dir, { "--skip", "tidy" }).events))
  end)

  it("take no needs, matrix or rollback, and no task may need them", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() end)
task("tidy", { finally = true, needs = "a" }, function() end)
]] }
    local r = H.run(dir, { "plan" })
    assert.same(2, r.code)
    assert.matches("deploy.lua:2: task 'tidy': a finally task runs after all the others, whatever happened: it takes no needs", r.stderr)
    dir = H.project { ["deploy.lua"] = [[
task("tidy", { finally = true }, function() end)
task("a", { needs = "tidy" }, function() end)
]] }
    r = H.run(dir, { "plan" })
    assert.same(2, r.code)
    assert.matches("deploy.lua:2: task 'a' needs 'tidy', a finally task", r.stderr)
  end)
end)

describe("changes without undo", function()
  after_each(H.cleanup)

  it("are left in place when the run fails, and the summary and record say so", function()
    local dir = H.project { ["deploy.lua"] = [[
task("migrate", function()
  context.add_change { kind = "db.schema", target = "main", summary = "42 -> 43" }
end)
task("validate", { needs = "migrate" }, function() error("unhealthy") end)
]] }
    local r = H.run(dir, { "run", "--reporter", "plain", "--no-color" })
    assert.same(1, r.code)
    assert.truthy(r.stdout:find("warning: db.schema main has no undo: left in place", 1, true), r.stdout)
    assert.truthy(r.stdout:find("migrate   ok, left in place", 1, true), r.stdout)
    local j = H.run_json(dir)
    local record = json.decode(fs.read(H.of(j.events, "run_finished")[1].record))
    assert.same("left_in_place", record.changes[1].status)
    local row
    for _, t in ipairs(record.tasks) do if t.name == "migrate" then row = t end end
    assert.same("left_in_place", row.rollback)
  end)
end)
