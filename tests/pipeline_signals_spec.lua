-- SIGINT/SIGTERM in the middle of a run: every task is cancelled, every
-- child process group is killed (even children that ignore SIGTERM), the
-- run is recorded as interrupted, and the exit code says which signal.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")

local PIPELINE = [[
task("stubborn", function()
  sh "trap '' TERM INT; echo $$ > stubborn.pid; while :; do sleep 0.05; done"
end)
task("family", function()
  sh "trap '' TERM; sleep 30 & echo $! > grandchild.pid; echo $$ > family.pid; wait"
end)
task("after", { needs = "stubborn", rollback = function() io.open("rolled-back", "w"):close() end },
  function() end)
]]

local function wait_for(path, ms)
  return H.wait_file(path, ms):match("%d+")
end

local function kill(pid, sig)
  assert.same(0, proc.run({ "kill", "-" .. sig, tostring(pid) }).code)
end

local function start(dir, args, quiet)
  local argv = { H.slipway, "run", "--json" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  -- quiet: no pipes, so a grandchild that outlives slipway cannot hold
  -- wait() up by keeping our end of its stdout open
  local opts = { cwd = dir, env = H.base_env }
  if quiet then opts.stdout, opts.stderr = "null", "null" end
  return assert(proc.spawn(argv, opts))
end

local function interrupted_by(sig, code)
  local dir = H.project { ["deploy.lua"] = PIPELINE }
  local p = start(dir)
  local pids = {
    wait_for(dir .. "/stubborn.pid", 5000),
    wait_for(dir .. "/family.pid", 5000),
    wait_for(dir .. "/grandchild.pid", 5000),
  }
  local t0 = task.now()
  kill(p.pid, sig)
  local r = p:wait()
  local took = task.now() - t0
  assert.same(code, r.code)
  assert.is_true(took < 2000, "took " .. took .. " ms to stop")
  for _, pid in ipairs(pids) do
    assert.is_false(H.alive(pid), "process " .. pid .. " survived " .. sig)
  end
  local statuses = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local ev = json.decode(line)
    if ev.type == "task_finished" then statuses[ev.task] = ev.status end
    if ev.type == "task_skipped" then statuses[ev.task] = "skipped: " .. ev.reason end
    if ev.type == "run_finished" then statuses.run = ev.status .. " " .. ev.exit_code end
  end
  assert.same({ stubborn = "cancelled", family = "cancelled", after = "skipped: not started: interrupted by SIG" .. sig,
                run = "interrupted " .. code }, statuses)
  assert.is_false(fs.exists(dir .. "/rolled-back"))
  local records = fs.glob(dir .. "/.slipway/runs/*/record.json")
  assert.same(1, #records)
  local record = json.decode(fs.read(records[1]))
  assert.same({ "interrupted", code }, { record.status, record.exit_code })
end

describe("signals during a run", function()
  after_each(H.cleanup)

  it("SIGINT cancels everything, kills children that ignore SIGTERM, exits 130", function()
    interrupted_by("INT", 130)
  end)

  it("SIGTERM does the same and exits 143", function()
    interrupted_by("TERM", 143)
  end)

  it("a second SIGINT exits at once, even while a task holds up the loop", function()
    local dir = H.project { ["deploy.lua"] = [[
task("blocker", function()
  local f = io.open("started", "w"); f:write("1"); f:close()
  pcall(task.sleep, 30)                 -- the first SIGINT cancels this...
  io.popen("sleep 5"):read("a")         -- ...then this blocks the loop for 5 s
end)
]] }
    local p = start(dir, {}, true)
    wait_for(dir .. "/started", 5000)
    local t0 = task.now()
    kill(p.pid, "INT")
    task.sleep(0.3)
    kill(p.pid, "INT")
    local r = p:wait()
    local took = task.now() - t0
    assert.same({ 130, "SIGINT" }, { r.code, r.signal })
    assert.is_true(took < 2000, "took " .. took .. " ms")
  end)

  it("with on_interrupt = \"rollback\" the run undoes what it changed, then stops", function()
    local text = [[
pipeline { on_interrupt = "%s" }
task("change", { rollback = function() fs.write("task-rolled-back", "yes") end }, function()
  context.add_change { kind = "test", target = "thing", undo = function() fs.write("undone", "yes") end }
end)
task("wait", { needs = "change" }, function()
  fs.write("waiting", "1")
  sleep(30)
end)
task("record", { finally = true }, function(_, release) fs.write("final", release.status) end)
]]
    for _, mode in ipairs({ "rollback", "stop" }) do
      local dir = H.project { ["deploy.lua"] = text:format(mode) }
      local p = start(dir)
      wait_for(dir .. "/waiting", 5000)
      kill(p.pid, "INT")
      local r = p:wait()
      assert.same(130, r.code)
      assert.same(mode == "rollback", fs.exists(dir .. "/undone"), mode)
      assert.same(mode == "rollback", fs.exists(dir .. "/task-rolled-back"), mode)
      assert.same("interrupted", fs.read(dir .. "/final"))
      local record = json.decode(fs.read(fs.glob(dir .. "/.slipway/runs/*/record.json")[1]))
      assert.same({ "interrupted", mode == "rollback" and "rolled_back" or nil },
                  { record.status, record.rollback_status })
      assert.same(mode == "rollback" and "rolled_back" or "applied", record.changes[1].status)
    end
  end)
end)

describe("slipway.signal", function()
  local signal = require("slipway.signal")
  local leaks = require("support.leaks")
  leaks.check()

  local function raise(sig)
    -- a separate process, so the signal arrives while this one waits
    assert.same(0, proc.run({ "kill", "-" .. sig, leaks.pid() }).code)
  end

  it("watch queues arrivals in order; next takes them; close stops watching", function()
    local w = signal.watch { "SIGUSR1", "SIGUSR2" }
    raise("USR2")
    raise("USR1")
    task.sleep(0.05)
    assert.same(2, w:pending())
    assert.same({ "SIGUSR2", "SIGUSR1" }, { w:next(), w:next() })
    local waiter = task.spawn(function() return w:next() end)
    task.sleep(0.02)
    raise("USR1")
    assert.same("SIGUSR1", waiter:join())
    w:close()
    assert.same(0, w:pending())
  end)

  it("wait returns the first signal and closes its watcher, also when cancelled", function()
    local t = task.spawn(signal.wait, { "SIGUSR1" })
    task.sleep(0.02)
    raise("USR1")
    assert.same("SIGUSR1", t:join())
    local t2 = task.spawn(signal.wait, { "SIGUSR2" })
    task.sleep(0.02)
    t2:cancel()
    assert.is_false(pcall(t2.join, t2))
  end)

  it("rejects unknown signals and empty lists", function()
    assert.has_error(function() signal.watch { "SIGNOPE" } end,
      "signal.watch: unknown signal 'SIGNOPE' (valid: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE)")
    assert.has_error(function() signal.watch {} end, "signal.watch: expected a list of 1 to 8 signal names")
  end)
end)
