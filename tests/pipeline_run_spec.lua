-- The pipeline as a user runs it: `slipway run` on real deploy.lua files,
-- checked through the NDJSON events, exit codes and the run record.
local H = require("support.pipeline_helper")
local json = require("slipway.json")
local fs = require("slipway.fs")

describe("slipway run", function()
  after_each(H.cleanup)

  it("runs tasks after their needs, independent ones concurrently", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() task.sleep(0.15) end)
task("b", function() task.sleep(0.15) end)
task("c", { needs = { "a", "b" } }, function() end)
task("d", { needs = "c" }, function() end)
task("e", { needs = "a" }, function() end)
]] }
    local r = H.run_json(dir, { "-j", "8" })
    assert.same(0, r.code)
    local started = H.names(r.events, "task_started")
    local finished = H.names(r.events, "task_finished")
    assert.same({ "a", "b" }, { started[1], started[2] })
    -- a and b overlap: both started before either finished
    local seq = {}
    for _, ev in ipairs(r.events) do
      if ev.type == "task_started" or ev.type == "task_finished" then seq[#seq + 1] = ev.type:sub(6, 6) .. ev.task end
    end
    assert.same({ "sa", "sb" }, { seq[1], seq[2] })
    local pos = {}
    for i, s in ipairs(seq) do pos[s] = i end
    assert.is_true(pos.sc > pos.fa and pos.sc > pos.fb)
    assert.is_true(pos.sd > pos.fc)
    assert.is_true(pos.se > pos.fa)
    assert.same(5, #finished)
    local fin = H.of(r.events, "run_finished")[1]
    assert.same("success", fin.status)
    assert.same(0, fin.exit_code)
  end)

  it("expands a matrix into sub-tasks that run in parallel and get their item", function()
    local dir = H.project { ["deploy.lua"] = [[
task("prep", function() end)
task("build", { needs = "prep", matrix = function(p) return { "svc/api", "svc/web", "svc/worker" } end },
  function(item, p)
    print("item=" .. item .. " env=" .. p.environment)
    task.sleep(0.1)
  end)
task("ship", { needs = "build" }, function() end)
param.string("environment", "dev")
]] }
    local r = H.run_json(dir, {})
    assert.same(0, r.code)
    local m = H.of(r.events, "matrix_expanded")[1]
    assert.same({ "api", "web", "worker" }, m.items)
    local out = {}
    for _, ev in ipairs(H.of(r.events, "output")) do out[ev.task] = ev.line end
    assert.same({ ["build[api]"] = "item=svc/api env=dev", ["build[web]"] = "item=svc/web env=dev",
                  ["build[worker]"] = "item=svc/worker env=dev" }, out)
    local names = H.names(r.events, "task_started")
    assert.same({ "prep", "build[api]", "build[web]", "build[worker]", "ship" }, names)
    -- ship started only after every item finished
    local last_item, ship_start
    for i, ev in ipairs(r.events) do
      if ev.type == "task_finished" and ev.task:match("^build%[") then last_item = i end
      if ev.type == "task_started" and ev.task == "ship" then ship_start = i end
    end
    assert.is_true(ship_start > last_item)
    -- the items overlapped: all three started before the first finished
    local seq = {}
    for _, ev in ipairs(r.events) do
      if (ev.type == "task_started" or ev.type == "task_finished") and ev.task:match("^build") then
        seq[#seq + 1] = ev.type
      end
    end
    assert.same({ "task_started", "task_started", "task_started", "task_finished" }, { seq[1], seq[2], seq[3], seq[4] })
  end)

  it("a matrix function that fails fails its task; an empty matrix counts as done", function()
    local dir = H.project { ["deploy.lua"] = [[
task("empty", { matrix = function() return {} end }, function() end)
task("after-empty", { needs = "empty" }, function() end)
task("broken", { needs = "after-empty", matrix = function() return nil + 1 end }, function() end)
task("never", { needs = "broken" }, function() end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.same({ empty = "skipped", ["after-empty"] = "ok", broken = "failed", never = "skipped" }, H.statuses(r.events))
    local fin
    for _, ev in ipairs(H.of(r.events, "task_finished")) do if ev.task == "broken" then fin = ev end end
    assert.same({ "deploy.lua", 3 }, { fin.file, fin.line })
    assert.matches("^deploy.lua:3: attempt to perform arithmetic on a nil value", fin.error)
  end)

  it("skips tasks by `when` (parameter or function) and counts them as done", function()
    local dir = H.project { ["deploy.lua"] = [[
param.bool("frontend", false)
param.choice("environment", { "production", "staging" }, "staging")
task("deploy", function() end)
task("frontend", { needs = "deploy", when = "frontend" }, function() end)
task("announce", { needs = "deploy", when = function(p) return p.environment == "production" end }, function() end)
task("validate", { needs = { "frontend", "announce" } }, function() end)
]] }
    local r = H.run_json(dir, {})
    assert.same(0, r.code)
    assert.same({ deploy = "ok", frontend = "skipped", announce = "skipped", validate = "ok" }, H.statuses(r.events))
    local reasons = {}
    for _, ev in ipairs(H.of(r.events, "task_skipped")) do reasons[ev.task] = ev.reason end
    assert.same({ frontend = "when: parameter frontend is false", announce = "when: the condition is false" }, reasons)

    r = H.run_json(dir, { "-p", "frontend=true", "--env", "production" })
    assert.same({ deploy = "ok", frontend = "ok", announce = "ok", validate = "ok" }, H.statuses(r.events))
  end)

  it("--only runs a task and what it needs; --skip skips and counts as done", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() end)
task("b", { needs = "a" }, function() end)
task("c", { needs = "b" }, function() end)
task("other", function() end)
]] }
    local r = H.run_json(dir, { "--only", "b" })
    assert.same(0, r.code)
    assert.same({ a = "ok", b = "ok", c = "skipped", other = "skipped" }, H.statuses(r.events))
    r = H.run_json(dir, { "--skip", "a,other" })
    assert.same({ a = "skipped", b = "ok", c = "ok", other = "skipped" }, H.statuses(r.events))
    r = H.run_json(dir, { "--only=c", "--skip=b" })
    assert.same({ a = "ok", b = "skipped", c = "ok", other = "skipped" }, H.statuses(r.events))
  end)

  it("--only and --skip take matrix items: build[api]", function()
    local dir = H.project { ["deploy.lua"] = [[
task("prep", function() end)
task("build", { needs = "prep", matrix = { "svc/api", "svc/web", "svc/worker" } }, function(item) print(item) end)
task("ship", { needs = "build" }, function() end)
task("late", { matrix = function() task.sleep(0); return { "x", "y" } end }, function() end)
]] }
    local r = H.run_json(dir, { "--only", "build[api],late[y]" })
    assert.same(0, r.code, r.stderr)
    assert.same({ prep = "ok", ["build[api]"] = "ok", ["build[web]"] = "skipped", ["build[worker]"] = "skipped",
                  ship = "skipped", ["late[x]"] = "skipped", ["late[y]"] = "ok" }, H.statuses(r.events))
    assert.same({ "svc/api" }, (function()
      local out = {}
      for _, ev in ipairs(H.of(r.events, "output")) do out[#out + 1] = ev.line end
      return out
    end)())
    local reasons = {}
    for _, ev in ipairs(H.of(r.events, "task_skipped")) do reasons[ev.task] = ev.reason end
    assert.same("not selected (--only build[api],late[y])", reasons["build[web]"])
    -- --skip: the other items run and count as done for what needs the task
    r = H.run_json(dir, { "--skip", "build[web],late[x]" })
    assert.same(0, r.code, r.stderr)
    assert.same({ prep = "ok", ["build[api]"] = "ok", ["build[web]"] = "skipped", ["build[worker]"] = "ok",
                  ship = "ok", ["late[x]"] = "skipped", ["late[y]"] = "ok" }, H.statuses(r.events))
    assert.same("skipped by --skip", H.of(r.events, "task_skipped")[1].reason)
    -- a task selected whole (here: needed by ship) runs all its items
    r = H.run_json(dir, { "--only", "build[api],ship" })
    assert.same({ prep = "ok", ["build[api]"] = "ok", ["build[web]"] = "ok", ["build[worker]"] = "ok", ship = "ok",
                  late = "skipped" }, H.statuses(r.events))
    -- an item a matrix function does not return is found when it runs: exit 2
    r = H.run_json(dir, { "--only", "late[z]" })
    assert.same(2, r.code)
    local fin = H.of(r.events, "task_finished")[1]
    assert.same({ "late", "failed", "--only: unknown matrix item 'late[z]' (did you mean 'late[x]'?); items of late: x, y",
                  "deploy.lua", 4 }, { fin.task, fin.status, fin.error, fin.file, fin.line })
  end)

  it("runs at most -j N tasks at once (matrix items count one each)", function()
    local dir = H.project { ["deploy.lua"] = [[
task("m", { matrix = { 1, 2, 3, 4, 5, 6 } }, function(i) task.sleep(0.1) end)
]] }
    local function peak(events)
      local cur, max = 0, 0
      for _, ev in ipairs(events) do
        if ev.type == "task_started" then cur = cur + 1; max = math.max(max, cur) end
        if ev.type == "task_finished" then cur = cur - 1 end
      end
      return max
    end
    local r = H.run_json(dir, { "-j", "2" })
    assert.same(0, r.code)
    assert.same(2, peak(r.events))
    assert.is_true(H.of(r.events, "run_finished")[1].duration_ms >= 300)
    r = H.run_json(dir, { "-j", "6" })
    assert.same(6, peak(r.events))
  end)

  it("retries a failing task with backoff, then succeeds", function()
    local dir = H.project { ["deploy.lua"] = [[
local n = 0
task("flaky", { retries = 3, backoff = "20ms" }, function()
  n = n + 1
  if n < 3 then error("not yet " .. n) end
  print("made it on attempt " .. n)
end)
]] }
    local r = H.run_json(dir, {})
    assert.same(0, r.code)
    local retries = H.of(r.events, "task_retrying")
    assert.same(2, #retries)
    assert.same({ 1, "deploy.lua:4: not yet 1", 20 }, { retries[1].attempt, retries[1].error, retries[1].delay_ms })
    assert.same({ 2, "deploy.lua:4: not yet 2", 40 }, { retries[2].attempt, retries[2].error, retries[2].delay_ms })
    local fin = H.of(r.events, "task_finished")[1]
    assert.same({ "ok", 3 }, { fin.status, fin.attempts })
    assert.same("made it on attempt 3", H.of(r.events, "output")[1].line)
  end)

  it("fails after the last retry", function()
    local dir = H.project { ["deploy.lua"] = [[
task("never", { retries = 1, backoff = "10ms" }, function() error("nope") end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    local fin = H.of(r.events, "task_finished")[1]
    assert.same({ "failed", 2, "deploy.lua:1: nope", "deploy.lua", 1 },
      { fin.status, fin.attempts, fin.error, fin.file, fin.line })
  end)

  it("times a task out, killing its child process, and retries it", function()
    local dir = H.project { ["deploy.lua"] = [[
task("slow", { timeout = "200ms", retries = 1, backoff = "10ms" }, function()
  sh "echo $$ >> pids; exec sleep 30"
end)
]] }
    local t0 = require("slipway.task").now()
    local r = H.run_json(dir, {})
    local took = require("slipway.task").now() - t0
    assert.same(1, r.code)
    assert.is_true(took < 3000, "took " .. took)
    local fin = H.of(r.events, "task_finished")[1]
    assert.same({ "failed", 2, "timed out after 200ms" }, { fin.status, fin.attempts, fin.error })
    assert.same("timed out", H.of(r.events, "task_retrying")[1].error)
    local pids = H.read(dir .. "/pids")
    local n = 0
    for pid in pids:gmatch("%d+") do
      n = n + 1
      assert.is_false(H.alive(pid), "process " .. pid .. " survived")
    end
    assert.same(2, n)
  end)

  it("attributes output of tasks spawned inside a task (parallel, spawn) to it", function()
    local dir = H.project { ["deploy.lua"] = [[
task("one", function()
  parallel { function() task.sleep(0.02); print("one-a") end, function() sh "sleep 0.01; echo one-b" end }
end)
task("two", function()
  local t = spawn(function() task.sleep(0.01); print("two-a") end)
  sh "sleep 0.02; echo two-b"
  t:join()
end)
]] }
    local r = H.run_json(dir, {})
    assert.same(0, r.code, r.stderr)
    local got = {}
    for _, ev in ipairs(H.of(r.events, "output")) do got[ev.line] = ev.task end
    assert.same({ ["one-a"] = "one", ["one-b"] = "one", ["two-a"] = "two", ["two-b"] = "two" }, got)
  end)

  it("sends print and io.write of a task to the event stream, credited to the task", function()
    local dir = H.project { ["deploy.lua"] = [[
local helper = require("helper")
task("writer", function()
  io.write("part")
  io.write(" one\nline ", 2, "\n")
  task.sleep(0.02)
  io.write("no newline at the end")
end)
task("printer", function()
  helper.say("from a module")
  print("two\nlines", 3)
end)
task("after", { needs = { "writer", "printer" } }, function() io.write("x\n") end)
]], ["helper.lua"] = 'return { say = function(s) print("helper: " .. s) end }\n' }
    local r = H.run_json(dir, {})        -- stdout is NDJSON only, or this raises
    assert.same(0, r.code, r.stderr)
    local got = {}
    for _, ev in ipairs(H.of(r.events, "output")) do
      got[ev.task] = got[ev.task] or {}
      table.insert(got[ev.task], ev.line)
    end
    assert.same({ writer = { "part one", "line 2", "no newline at the end" },
                  printer = { "helper: from a module", "two", "lines\t3" }, after = { "x" } }, got)
    -- the last piece of writer's output comes before writer ends
    local last_out, fin
    for i, ev in ipairs(r.events) do
      if ev.type == "output" and ev.task == "writer" then last_out = i end
      if ev.type == "task_finished" and ev.task == "writer" then fin = i end
    end
    assert.is_true(last_out < fin)
    -- plain output: prefixed lines, nothing written around the reporter
    r = H.run(dir, { "run", "--reporter", "plain" })
    assert.truthy(r.stdout:find("\n[writer] part one\n", 1, true), r.stdout)
    assert.truthy(r.stdout:find("\n[printer] helper: from a module\n", 1, true), r.stdout)
  end)

  it("a task that cancels its own task (and carries on) does not cancel the next ones", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() pcall(function() task.current():cancel(); task.sleep(0) end) end)
task("b", { needs = "a" }, function() task.sleep(0.01) end)
task("c", { needs = "b" }, function() task.sleep(0.01) end)
]] }
    local r = H.run_json(dir, { "-j", "1" })
    assert.same(0, r.code, r.stderr)
    assert.same({ a = "ok", b = "ok", c = "ok" }, H.statuses(r.events))
  end)

  it("fail-fast: cancels running siblings (their children die), skips the rest", function()
    local dir = H.project { ["deploy.lua"] = [[
task("sibling", function() sh "echo $$ > sibling.pid; exec sleep 30" end)
task("breaks", function()
  while not io.open("sibling.pid") do task.sleep(0.02) end
  task.sleep(0.05)
  error("it broke")
end)
task("later", { needs = "breaks" }, function() end)
task("queued", { needs = "sibling" }, function() end)
]] }
    local t0 = require("slipway.task").now()
    local r = H.run_json(dir, {})
    local took = require("slipway.task").now() - t0
    assert.same(1, r.code)
    assert.is_true(took < 5000, "waited for the sibling: " .. took)
    assert.same({ sibling = "cancelled", breaks = "failed", later = "skipped", queued = "skipped" }, H.statuses(r.events))
    local pid = H.read(dir .. "/sibling.pid"):match("%d+")
    assert.is_false(H.alive(pid), "the sibling's child is still alive")
    local fin = H.of(r.events, "run_finished")[1]
    assert.same({ "failed", 1 }, { fin.status, fin.exit_code })
  end)

  it("fail-fast: a task started in the same turn as the failure never runs its code", function()
    local dir = H.project { ["deploy.lua"] = [[
task("fails", function() error("x") end)
task("other", function() io.open("other-ran", "w"):close() end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.same({ fails = "failed", other = "cancelled" }, H.statuses(r.events))
    assert.is_false(fs.exists(dir .. "/other-ran"))
  end)

  it("rolls back completed tasks and recorded changes in reverse order", function()
    local dir = H.project { ["deploy.lua"] = [[
local context = require("slipway.context")
local function note(s) local f = io.open("order", "a"); f:write(s, "\n"); f:close() end
task("first", { rollback = function(p, result) note("rollback first " .. result) end },
  function() return "r1" end)
task("second", { needs = "first", rollback = function() note("rollback second") end }, function()
  context.add_change { kind = "test.thing", target = "x", summary = "made x",
                       undo = function() note("undo x") end }
end)
task("third", { needs = "second", matrix = { "p", "q" },
                rollback = function(item) note("rollback third " .. item) end },
  function(item) task.sleep(item == "p" and 0.05 or 0.01) end)
task("boom", { needs = "third" }, function() error("validation failed") end)
task("after", { needs = "boom", rollback = function() note("must not run") end }, function() end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.same("rollback third p\nrollback third q\nrollback second\nundo x\nrollback first r1\n",
      H.read(dir .. "/order"))
    local fin = H.of(r.events, "run_finished")[1]
    assert.same("rolled_back", fin.status)
    local rb = {}
    for _, ev in ipairs(H.of(r.events, "rollback_finished")) do rb[#rb + 1] = (ev.change or ev.task) .. ":" .. ev.status end
    assert.same({ "third[p]:ok", "third[q]:ok", "second:ok", "test.thing x:ok", "first:ok" }, rb)
    -- the record on disk says the same
    local record = json.decode(H.read(fin.record))
    assert.same("rolled_back", record.status)
    assert.same(1, record.exit_code)
    assert.same({ { kind = "test.thing", target = "x", summary = "made x", status = "rolled_back",
                    task = "second", undo = true } },
      (function()
        local c = record.changes[1]
        return { { kind = c.kind, target = c.target, summary = c.summary, status = c.status, task = c.task, undo = c.undo } }
      end)())
    assert.is_true(fs.exists(fin.timeline))
  end)

  it("does not undo a change its integration already rolled back itself", function()
    local dir = H.project { ["deploy.lua"] = [[
local context = require("slipway.context")
task("deploy", function()
  local e = context.add_change { kind = "stack", target = "app", undo = function() io.open("undone-twice", "w"):close() end }
  context.mark_change(e, "rolled_back", "the deploy's own wait failed")
  error("stack did not converge")
end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.is_false(fs.exists(dir .. "/undone-twice"))
    local fin = H.of(r.events, "run_finished")[1]
    assert.same("rolled_back", fin.status)
    local record = json.decode(H.read(fin.record))
    assert.same({ "rolled_back", "the deploy's own wait failed" }, { record.changes[1].status, record.changes[1].details })
  end)

  it("a failing rollback makes the run rollback_failed and the others still run", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", { rollback = function() io.open("a-rolled", "w"):close() end }, function() end)
task("b", { needs = "a", rollback = function() error("cannot undo b") end }, function() end)
task("c", { needs = "b" }, function() error("fail") end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.same("rollback_failed", H.of(r.events, "run_finished")[1].status)
    assert.is_true(fs.exists(dir .. "/a-rolled"))
    local b = H.of(r.events, "rollback_finished")[1]
    assert.same({ "b", "failed" }, { b.task, b.status })
    assert.matches("^deploy.lua:2: cannot undo b", b.error)
  end)

  it("a rollback gets its task's timeout", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", { timeout = "300ms", rollback = function() sh "sleep 30" end }, function() end)
task("b", { needs = "a" }, function() error("fail") end)
]] }
    local t0 = require("slipway.task").now()
    local r = H.run_json(dir, {})
    assert.is_true(require("slipway.task").now() - t0 < 5000)
    assert.same({ 1, "rollback_failed" }, { r.code, H.of(r.events, "run_finished")[1].status })
    local rb = H.of(r.events, "rollback_finished")[1]
    assert.same({ "a", "failed", "timed out after 300ms" }, { rb.task, rb.status, rb.error })
  end)

  it("continue_on_error: the failure is reported but the run goes on and succeeds", function()
    local dir = H.project { ["deploy.lua"] = [[
task("optional", { continue_on_error = true }, function() error("meh") end)
task("next", { needs = "optional" }, function() end)
]] }
    local r = H.run_json(dir, {})
    assert.same(0, r.code)
    local fin = H.of(r.events, "task_finished")
    assert.same({ "optional", "failed", true }, { fin[1].task, fin[1].status, fin[1].allowed })
    assert.same({ "next", "ok" }, { fin[2].task, fin[2].status })
  end)

  it("takes parameters from -p, --env and SLIPWAY_PARAM_*, in that order of strength", function()
    local dir = H.project { ["deploy.lua"] = [[
param.choice("environment", { "production", "staging", "development" }, "development")
param.number("replicas", 1)
param.list("services", { "api" })
param.bool("dry_run", false)
task("show", function(p)
  print(("%s %d %s %s"):format(p.environment, p.replicas, table.concat(p.services, "+"), tostring(p.dry_run)))
end)
]] }
    local function line(args, env)
      local r = H.run_json(dir, args, { env = env })
      assert.same(0, r.code, r.stderr)
      return H.of(r.events, "output")[1].line
    end
    assert.same("development 1 api false", line({}))
    assert.same("staging 3 api,web false",
      (line({ "--env", "staging", "-p", "replicas=3", "-p", "services=api,web" }):gsub("%+", ",")))
    assert.same("production 2 a false",
      line({}, { SLIPWAY_PARAM_ENVIRONMENT = "production", SLIPWAY_PARAM_REPLICAS = "2", SLIPWAY_PARAM_SERVICES = "a" }))
    assert.same("staging 2 a true",
      line({ "-p", "environment=staging", "-p", "dry_run=yes" }, { SLIPWAY_PARAM_ENVIRONMENT = "production",
        SLIPWAY_PARAM_REPLICAS = "2", SLIPWAY_PARAM_SERVICES = "a" }))
  end)

  it("requires modules that sit next to the pipeline file, from any directory", function()
    local dir = H.project { ["deploy.lua"] = 'local h = require("helper")\ntask("a", function() print(h.greet()) end)\n',
                            ["helper.lua"] = 'return { greet = function() return "hi from helper" end }\n' }
    local r = H.run_json("/", { dir .. "/deploy.lua" })
    assert.same(0, r.code, r.stderr)
    assert.same("hi from helper", H.of(r.events, "output")[1].line)
  end)

  it("writes the run record and a timeline next to the pipeline", function()
    local dir = H.project { ["deploy.lua"] = [[
task("one", function() task.sleep(0.02) end)
task("two", { needs = "one" }, function() return { version = "1.2.3" } end)
]] }
    local r = H.run_json(dir, {})
    local fin = H.of(r.events, "run_finished")[1]
    local id = H.of(r.events, "run_started")[1].run_id
    assert.same(fs.realpath(dir) .. "/.slipway/runs/" .. id .. "/record.json", fin.record)
    local record = json.decode(H.read(fin.record))
    assert.same({ id, "success", 0, "deploy.lua" }, { record.id, record.status, record.exit_code, record.file })
    assert.same({ "one", "two" }, { record.tasks[1].name, record.tasks[2].name })
    assert.same({ "ok", "ok" }, { record.tasks[1].status, record.tasks[2].status })
    assert.is_true(record.tasks[2].started >= record.tasks[1].finished)
    local svg = H.read(fin.timeline)
    assert.matches("^<svg ", svg)
    assert.matches("</svg>\n$", svg)
    assert.truthy(svg:find(">one</text>", 1, true))
    assert.truthy(svg:find(">two</text>", 1, true))
  end)
end)
