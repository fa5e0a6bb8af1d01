-- slipway.pipeline.scheduler: running a planned pipeline on the event loop.
--
-- Every unit of work (a task, or one item of a matrix task) runs as soon as
-- everything it needs is done, at most `jobs` at a time. A worker task
-- runs units one after another while there are ready ones, each under the
-- unit's context (slipway.context), so what the unit's code prints, the
-- changes it records and the tasks it spawns are the unit's.
--
-- Fail-fast: the first failure cancels the running units (their pending
-- operations' cleanups kill child process groups), skips what has not
-- started, and, once everything has stopped, runs the rollback steps in
-- reverse order of recording: task `rollback` functions (recorded when the
-- task completed) and the `undo` of recorded changes (recorded when the
-- change was made); then the restore steps opts.restore_steps(S) gives
-- (lua/pipeline/run.lua: back to the last verified release where this
-- run's undo went back to a state nobody verified). An interrupt
-- (S:interrupt(sig)) cancels everything the same way and rolls back only
-- with opts.on_interrupt = "rollback" (the pipeline's on_interrupt).
--
-- A unit is done when its function has returned and every task it spawned
-- has ended: tasks still running then are cancelled, and one that failed
-- without anyone joining it fails the unit.
--
-- A change recorded without an undo cannot be rolled back: when the run
-- fails it is marked "left_in_place" (and so is its task), never silently
-- kept as if nothing happened. Tasks declared `finally` run last, one after
-- another, whatever happened (after an interrupt each within its timeout or
-- FINALLY_DEADLINE), with the release summary opts.release_of(summary)
-- builds; their failures are reported but change nothing of the outcome.
--
--   M.run(opts) -- inside a task (the run's main task)
--   opts = { def, plan, values, jobs, bus, run (the run object the units'
--            contexts name: lua/pipeline/run.lua; optional),
--            release_of(summary) (the second argument of finally tasks),
--            on_start(S), on_unit_end(u) (as a unit ends, before its
--            task_finished event), restore_steps(S) -> { {name, fn}... },
--            on_interrupt ("stop" | "rollback"), cache (cached tasks:
--            lua/pipeline/cache.lua; an up-to-date unit is not run, its
--            status is "up_to_date" and it counts as done) }
--   -> summary { status, units = {...}, rollbacks = {...}, failed_unit,
--      input_error (true when --only/--skip named a matrix item that its
--      matrix function did not return) }
--      status: "success" | "failed" | "rolled_back" | "rollback_failed" |
--              "interrupted"
local task = require("slipway.task")
local context = require("slipway.context")
local graph = require("slipway.pipeline.graph")
local events = require("slipway.events")
local caller = require("slipway.caller")

local M = {}

local now = task.now
local spawn_with, take_strays = task.spawn_with, task.take_strays
local EMPTY = {}
local FINALLY_DEADLINE = 30000     -- ms a finally task gets after an interrupt

-- Label of a matrix item (graph.item_label).
M.item_label = graph.item_label

-- An error value -> { msg, file?, line?, traceback? }.
local function describe(err)
  if type(err) == "table" and err.msg then return err end
  if type(err) == "table" and type(err.input_error) == "string" then return { msg = err.input_error } end
  if type(err) == "string" then return { msg = err } end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return { msg = tostring(err) } end
  return { msg = "error object is a " .. type(err) .. " value" }
end

-- An error handler for user code: keep the message, the traceback and the
-- innermost line of the pipeline file (source: "@deploy.lua").
local function error_handler(source)
  return function(e)
    if task.is_cancelled(e) then return e end
    local d = describe(e)
    if d.traceback then return d end
    local out = { msg = d.msg, traceback = debug.traceback(d.msg, 2) }
    local file, line = caller.location(source)
    if file == source:sub(2) then
      out.file, out.line = file, line
      -- Lua shortens long paths in messages ("...dir/deploy.lua:3:"):
      -- give the whole path back
      local short = out.msg:match("^(%.%.%.[^:\n]*):%d+:")
      if short and file:sub(-(#short - 3)) == short:sub(4) then out.msg = file .. out.msg:sub(#short + 1) end
    end
    if out.file == nil then
      out.file, out.line = d.msg:match("^([^\n:]+):(%d+):")
      out.line = tonumber(out.line)
    end
    return out
  end
end

---------------------------------------------------------------- preparing

-- The scheduler's state: nodes (one per task, in plan order, with their
-- dependants), units, the ready queue, and what a failure must undo.
local function prepare(opts)
  local def, plan = opts.def, opts.plan
  local S = {
    def = def, plan = plan, values = opts.values, bus = opts.bus, jobs = opts.jobs or 4,
    run = opts.run, on_unit_end = opts.on_unit_end, release_of = opts.release_of,
    restore_steps = opts.restore_steps, on_interrupt = opts.on_interrupt, cache = opts.cache,
    handler = error_handler("@" .. def.file),
    nodes = {}, units = {}, active = {}, live = {},
    ready = {}, rhead = 1, rtail = 0, running = 0, failing = nil, interrupted = nil,
    undo_log = {}, rollbacks = {}, changes = {}, orphans = {},
  }
  S.run_context = S.run and context._for_unit(S.run, nil) or false
  for _, t in ipairs(plan.order) do
    -- (units: a matrix node's units, made when it expands; dependants:
    -- made for a node something needs)
    S.nodes[t.name] = { task = t, remaining = #t.needs, dependants = nil, units = nil, left = 0, state = "waiting",
                        failed = nil, cancelled = nil }
  end
  for _, t in ipairs(plan.order) do
    local node = S.nodes[t.name]
    for _, n in ipairs(t.needs) do
      local need = S.nodes[n]
      local deps = need.dependants
      if deps == nil then
        need.dependants = { node }
      else
        deps[#deps + 1] = node
      end
    end
  end
  return S
end

local function emit(S, ev, at) return S.bus:emit(ev, at) end

local function new_unit(S, node, item, label)
  local t = node.task
  -- (the nil fields are set later: naming them sizes the table for them)
  local u = {
    name = label and (t.name .. "[" .. label .. "]") or t.name,
    base = t.name, item = item, label = label, node = node,
    status = "pending", attempts = 0,
    slot = nil, started = nil, finished = nil, active = nil, context = nil,
  }
  if S.run then u.context = context._for_unit(S.run, u) end
  S.units[#S.units + 1] = u
  if node.units then node.units[#node.units + 1] = u end
  node.left = node.left + 1
  return u
end

local function queue(S, u)
  S.rtail = S.rtail + 1
  S.ready[S.rtail] = u
end

local function skip_unit(S, u, reason)
  u.status, u.reason = "skipped", reason
  emit(S, { type = "task_skipped", task = u.name, reason = reason })
end

local node_ready, pump, fail

-- A node whose units have all finished (or that was skipped).
local function node_finished(S, node, state)
  node.state = state
  if state == "done" or state == "skipped" then
    for _, d in ipairs(node.dependants or EMPTY) do
      d.remaining = d.remaining - 1
      if d.remaining == 0 and d.state == "waiting" then node_ready(S, d) end
    end
  end
end

---------------------------------------------------------------- matrices

-- Items named by --only/--skip must exist (a matrix function's items are
-- known only now): nil, or the message when one does not.
local function check_items(t, d, labels)
  local have = {}
  for _, l in ipairs(labels) do have[l] = true end
  for flag, set in pairs({ ["--only"] = d.only_items, ["--skip"] = d.skip_items }) do
    for label in pairs(set) do
      if not have[label] then return graph.unknown_item(flag, t.name .. "[" .. label .. "]", labels) end
    end
  end
  return nil
end

local function expand(S, node, items)
  if type(items) ~= "table" then
    return nil, ("matrix must be a list, the matrix function returned a %s"):format(type(items))
  end
  local t = node.task
  local d = S.plan.decision[t.name]
  local labels = graph.item_labels(items)
  local bad = (d.only_items or d.skip_items) and check_items(t, d, labels)
  if bad then
    S.input_error = true
    return nil, bad
  end
  node.state = "running"
  node.units = {}
  for i, item in ipairs(items) do new_unit(S, node, item, labels[i]) end
  emit(S, { type = "matrix_expanded", task = t.name, items = require("slipway.json").array(labels) })
  for _, u in ipairs(node.units) do
    if d.only_items and not d.only_items[u.label] then
      node.left = node.left - 1
      skip_unit(S, u, "not selected (" .. d.only_flag .. ")")
    elseif d.skip_items and d.skip_items[u.label] then
      node.left = node.left - 1
      skip_unit(S, u, "skipped by --skip")
    else
      queue(S, u)
    end
  end
  if #node.units == 0 then       -- nothing to do counts as done
    local u = new_unit(S, node, nil, nil)
    node.left = 0
    skip_unit(S, u, "the matrix is empty")
    node_finished(S, node, "done")
  elseif node.left == 0 then     -- every item skipped
    node_finished(S, node, "done")
  end
  return true
end

-- A matrix function failed: show it as a failed unit named after the task.
local function matrix_failed(S, node, err)
  local u = new_unit(S, node, nil, nil)
  u.status, u.started, u.finished = "failed", now(), now()
  u.error = err.msg
  u.file, u.line = err.file, err.line
  emit(S, { type = "task_started", task = u.name, attempt = 1 })
  emit(S, { type = "task_finished", task = u.name, status = "failed", duration_ms = 0, attempts = 1,
            error = u.error, file = u.file, line = u.line })
  node.left = 0
  node_finished(S, node, "failed")
  fail(S, u)
end

-- Run a matrix function in a task of its own (it may wait), then expand.
local function expand_at_run_time(S, node)
  local t = node.task
  node.state = "expanding"
  local ctx = S.run and context._for_unit(S.run, { name = t.name }) or false
  local exp
  exp = spawn_with(ctx, function()
    local ok, items = xpcall(t.matrix, S.handler, S.values)
    S.live[exp] = nil
    if S.failing or S.interrupted then return end
    if not ok then
      matrix_failed(S, node, describe(items))
    else
      local fine, why = expand(S, node, items)
      if not fine then matrix_failed(S, node, { msg = why, file = t.file, line = t.line }) end
    end
    pump(S)
  end)
  S.live[exp] = true
end

node_ready = function(S, node)
  if S.failing or S.interrupted then return end
  local t = node.task
  local d = S.plan.decision[t.name]
  if not d.run then
    local u = new_unit(S, node, nil, nil)
    node.left = 0
    skip_unit(S, u, d.reason)
    node_finished(S, node, "skipped")
    return
  end
  node.state = "running"
  if t.matrix == nil then
    queue(S, new_unit(S, node, nil, nil))
  elseif type(t.matrix) == "table" then
    local fine, why = expand(S, node, t.matrix)
    if not fine then matrix_failed(S, node, { msg = why, file = t.file, line = t.line }) end
  else
    expand_at_run_time(S, node)
  end
end

---------------------------------------------------------------- units

local function start_unit(S, u)
  S.running = S.running + 1
  local n = #S.active + 1
  S.active[n], u.slot = u, n
  u.status = "running"
  u.started = now()
  S.bus:emit({ type = "task_started", task = u.name, attempt = 1 }, u.started)
end

-- One attempt of a unit's function, in the calling task.
local function attempt(S, u)
  local t = u.node.task
  local values = u.values or S.values
  if u.label ~= nil then
    return xpcall(t.fn, S.handler, u.item, values)
  end
  return xpcall(t.fn, S.handler, values, u.release)
end

-- strays: the tasks a unit's code spawned and left (task.take_strays),
-- and they, in turn, theirs: cancel those still running (their process
-- groups go with them), wait for them, and return the first failure nobody
-- read. If the waiting is itself cancelled, what is left is cancelled and
-- kept in S.orphans for the end of the run.
local function settle_strays(S, strays)
  local failure
  local owners, i = {}, 0
  while strays do
    for _, s in ipairs(strays) do
      local status = s:status()
      if status == "failed" then
        local _, err = s:result()
        failure = failure or err
      elseif status ~= "done" and status ~= "cancelled" then
        s:cancel()
        if not pcall(s.wait, s) then
          S.orphans[#S.orphans + 1] = s
        end
      end
      owners[#owners + 1] = s
    end
    i = i + 1
    strays = owners[i] and (take_strays(owners[i]) or EMPTY)
  end
  return failure
end

local function record_rollback(S, u)
  if u.node.task.rollback then
    S.undo_log[#S.undo_log + 1] = { kind = "task", unit = u }
  end
end

-- The status and error of a unit whose last attempt ended with ok, res.
local function outcome(S, u, ok, res)
  local t = u.node.task
  if u.cancel_requested and not u.timed_out then
    return "cancelled"          -- even if its code caught the cancellation
  elseif ok then
    u.result = res
    if u.cached then return "up_to_date" end     -- (it did nothing to roll back)
    record_rollback(S, u)
    return "ok"
  elseif u.timed_out then
    u.error = ("timed out after %s"):format(events.format_ms(u.timeout_ms or t.timeout_ms))
    u.file, u.line = t.file, t.line
    return "failed"
  elseif task.is_cancelled(res) or u.cancel_requested then
    return "cancelled"
  end
  local d = describe(res)
  u.error, u.file, u.line, u.traceback = d.msg, d.file, d.line, d.traceback
  return "failed"
end

-- A task the unit spawned failed and nobody joined it: the unit fails.
local function stray_failed(S, u, err)
  local d = S.handler(err)
  if task.is_cancelled(d) then return end
  d = describe(d)
  u.error = "a task it spawned failed and was never joined: " .. d.msg
  u.file, u.line, u.traceback = d.file, d.line, d.traceback
end

local function finish_unit(S, u, ok, res, stray_failure)
  S.running = S.running - 1
  -- S.active is a list (a unit knows its slot): cheaper than a set keyed
  -- by units for thousands of short tasks
  local last = S.active[#S.active]
  S.active[u.slot], last.slot = last, u.slot
  S.active[#S.active] = nil
  u.finished = now()
  local status = outcome(S, u, ok, res)
  if stray_failure ~= nil and status == "ok" then
    status = "failed"
    stray_failed(S, u, stray_failure)
  end
  if status == "failed" and u.node.task.continue_on_error then u.allowed = true end
  u.status = status
  if S.on_unit_end then S.on_unit_end(u) end
  S.bus:emit({ type = "task_finished", task = u.name, status = status,
            duration_ms = ((u.finished - u.started) * 10 + 0.5) // 1 / 10,
            attempts = u.attempts, error = u.error, file = u.file, line = u.line,
            allowed = u.allowed or nil }, u.finished)
  local node = u.node
  node.left = node.left - 1
  if status == "failed" and not u.allowed then node.failed = true end
  if status == "cancelled" then node.cancelled = true end
  if node.left == 0 and node.state ~= "expanding" then
    node_finished(S, node, node.failed and "failed" or (node.cancelled and "cancelled" or "done"))
  end
  if status == "failed" and not u.allowed and not u.node.task.finally then fail(S, u) end
end

-- Run u once, here, in the worker `me` (the common case: no timeout, no
-- retries).
local function run_once(S, u, me)
  if u.cancel_requested then   -- cancelled before it got to start
    return finish_unit(S, u, false, "cancelled")
  end
  u.attempts, u.active = 1, me
  local ok, res = attempt(S, u)
  local strays = take_strays(me)
  local stray_failure = strays and settle_strays(S, strays)
  u.active = nil
  if not ok and u.cancel_requested then res = res or "cancelled" end
  return finish_unit(S, u, ok, res, stray_failure)
end

-- Run u's attempts, each in a task of its own that its timeout can cancel,
-- with retries and backoff.
local function run_attempts(S, u, me, timeout_ms)
  local t = u.node.task
  timeout_ms = timeout_ms or t.timeout_ms
  local ok, res, stray_failure
  for n = 1, t.retries + 1 do
    if u.cancel_requested then     -- cancelled before it got to start
      ok, res = false, "cancelled"
      break
    end
    u.attempts = n
    local att = spawn_with(u.context or false, attempt, S, u)
    u.active = att
    local finished = att:wait(timeout_ms and timeout_ms / 1000 or nil)
    if not finished then
      u.timed_out = true
      att:cancel()
      att:wait()
    end
    u.active = me
    local strays = take_strays(att)
    stray_failure = strays and settle_strays(S, strays)
    u.active = nil
    local r = table.pack(att:result())
    if r[1] then ok, res = r[2], r[3] else ok, res = false, r[2] end
    if not finished then ok, res = false, nil end
    if stray_failure ~= nil and ok then break end
    if ok or u.cancel_requested or S.failing or S.interrupted then break end
    if n <= t.retries then
      local delay = t.backoff_ms * 2 ^ (n - 1)
      emit(S, { type = "task_retrying", task = u.name, attempt = n,
                error = u.timed_out and "timed out" or describe(res).msg, delay_ms = delay })
      u.timed_out = nil
      u.active = me
      local slept = pcall(task.sleep, delay / 1000)
      u.active = nil
      if not slept then break end
    end
  end
  if not ok and u.cancel_requested and not u.timed_out then res = res or "cancelled" end
  finish_unit(S, u, ok, res, stray_failure)
end

-- Is cached unit u up to date (opts.cache: lua/pipeline/cache.lua)? Its
-- inputs are hashed here, cancellable like its function. When it is not,
-- its function gets the parameters through the cache, which records the
-- ones it reads.
local function up_to_date(S, u, me)
  u.active = me
  local ok, fresh = pcall(S.cache.check, S.cache, u)
  u.active = nil
  if ok and fresh then return true end
  if not ok and not (task.is_cancelled(fresh) or u.cancel_requested) then error(fresh, 0) end
  u.values = S.cache:values_for(u)
  return false
end

-- A worker runs units one after another: the one it was started with,
-- then, as long as there is work, one of those that became ready. Reusing
-- the task instead of spawning one per unit keeps a big run cheap.
local function worker(S, u)
  local me = task.current()
  while u do
    if u.context then task.set_context(u.context) end
    local t = u.node.task
    if t.cache and S.cache and up_to_date(S, u, me) then
      finish_unit(S, u, true, u.result)
    elseif t.timeout_ms == nil and t.retries == 0 then
      run_once(S, u, me)
    else
      run_attempts(S, u, me)
    end
    -- A unit's code can reach this task (task.current()) and cancel it:
    -- a cancelled worker leaves the next units to fresh ones.
    if me:cancel_requested() then
      pump(S)
      break
    end
    u = pump(S, true)
  end
  S.live[me] = nil
end

-- Start ready units while fewer than `jobs` run. A worker that calls with
-- `free` set takes the first one itself (returned); the others get new
-- workers.
pump = function(S, free)
  if S.failing or S.interrupted then return nil end
  local mine
  while S.running < S.jobs and S.rhead <= S.rtail do
    local u = S.ready[S.rhead]
    S.ready[S.rhead] = nil
    S.rhead = S.rhead + 1
    start_unit(S, u)
    if free and mine == nil then
      mine = u
    else
      S.live[spawn_with(S.run_context, worker, S, u)] = true
    end
  end
  return mine
end

---------------------------------------------------------------- stopping

local function cancel_all(S, reason)
  for i = S.rhead, S.rtail do
    skip_unit(S, S.ready[i], reason)
    S.ready[i] = nil
  end
  S.rhead = S.rtail + 1
  for _, u in ipairs(table.move(S.active, 1, #S.active, 1, {})) do
    u.cancel_requested = true
    if u.active then u.active:cancel() end
  end
end

fail = function(S, u)
  if S.failing or S.interrupted then return end
  S.failing = u
  cancel_all(S, ("not started: %s failed"):format(u.name))
end

-- Signals: cancel everything; nothing is rolled back.
local function interrupt(S, signame)
  if S.interrupted then return end
  S.interrupted = signame
  cancel_all(S, "not started: interrupted by " .. signame)
  if S.rollback_task then S.rollback_task:cancel() end
end

-- A change the run recorded (lua/pipeline/run.lua calls this): its undo
-- joins the rollback steps in the order things happened.
local function change_recorded(S, entry)
  S.changes[#S.changes + 1] = entry
  if entry.undo then S.undo_log[#S.undo_log + 1] = { kind = "change", entry = entry } end
end

-- Wait until no worker or matrix expansion is left.
local function wait_for_workers(S)
  while true do
    local t = next(S.live)
    if t == nil then break end
    t:wait()
    S.live[t] = nil
    -- user errors are caught inside; a worker that failed is slipway's bug
    if t:status() == "failed" then t:join() end
  end
  for _, o in ipairs(S.orphans) do
    o:cancel()
    o:wait()
  end
end

-- What never became ready (behind a failure or an interrupt) is skipped.
local function skip_unstarted(S)
  for _, t in ipairs(S.plan.order) do
    local node = S.nodes[t.name]
    if node.state == "waiting" and not t.finally then
      local u = new_unit(S, node, nil, nil)
      local why = S.interrupted and ("not started: interrupted by " .. S.interrupted)
        or (S.failing and ("not started: " .. S.failing.name .. " failed"))
        or "not started: a task it needs did not complete"
      skip_unit(S, u, why)
      node.state = "skipped"
    end
  end
end

---------------------------------------------------------------- rollback

-- One rollback step, in a task of its own (so a signal can cancel it),
-- within the owning unit's context and the task's own timeout.
local function rollback_step(S, e, unit_named)
  local name, fn, args, owner
  if e.kind == "restore" then
    name, fn, args = e.name, e.fn, {}
  elseif e.kind == "task" then
    local u = e.unit
    name, fn, owner = u.name, u.node.task.rollback, u
    if u.label ~= nil then args = { u.item, S.values, u.result } else args = { S.values, u.result } end
  else
    name = ("%s %s"):format(e.entry.kind, e.entry.target)
    fn, args, owner = e.entry.undo, {}, unit_named[e.entry.task or ""]
  end
  local started = now()
  local task_name = e.kind == "task" and name or (e.entry and e.entry.task)
  local change = e.kind ~= "task" and name or nil
  emit(S, { type = "rollback_started", task = task_name, change = change })
  local ctx = owner and owner.context or S.run_context
  local rt = spawn_with(ctx, function()
    return xpcall(fn, function(err)
      if task.is_cancelled(err) then return err end
      return debug.traceback(describe(err).msg, 2)
    end, table.unpack(args, 1, 3))
  end)
  S.rollback_task = rt
  local limit = e.kind == "task" and e.unit.node.task.timeout_ms or nil
  local finished = rt:wait(limit and limit / 1000 or nil)
  if not finished then
    rt:cancel()
    rt:wait()
  end
  S.rollback_task = nil
  local r = table.pack(rt:result())
  local ok, err
  if r[1] then ok, err = r[2], r[3] else ok, err = false, r[2] end
  if not finished then err = "timed out after " .. events.format_ms(limit) end
  local msg
  if not ok then msg = task.is_cancelled(err) and "cancelled" or tostring(err):match("^[^\n]*") end
  if e.kind == "restore" then
    if not ok then e.error = msg end
  elseif e.kind == "change" then
    e.entry.status = ok and "rolled_back" or "undo_failed"
    e.entry.details = msg
    if owner and owner.rollback ~= "failed" then owner.rollback = ok and "ok" or "failed" end
  else
    e.unit.rollback = ok and "ok" or "failed"
    e.unit.rollback_error = msg
  end
  local entry = { name = name, kind = e.kind, status = ok and "ok" or "failed", error = msg,
                  started = started, finished = now(),
                  duration_ms = ((now() - started) * 10 + 0.5) // 1 / 10 }
  S.rollbacks[#S.rollbacks + 1] = entry
  emit(S, { type = "rollback_finished", task = task_name, change = change, status = entry.status, error = msg,
            duration_ms = entry.duration_ms })
  return ok
end

local function left_in_place(S, c, unit_named)
  c.status = "left_in_place"
  local owner = unit_named[c.task or ""]
  if owner and owner.rollback == nil then owner.rollback = "left_in_place" end
  emit(S, { type = "warning", task = c.task, message = ("%s %s has no undo: left in place"):format(c.kind, c.target) })
end

-- Run the rollback steps in reverse order of recording, one at a time.
-- Returns the run's status after them.
local function roll_back(S)
  local all_ok = true
  local unit_named = {}
  for _, u in ipairs(S.units) do unit_named[u.name] = u end
  local signal_before = S.interrupted       -- (a signal now stops the rollback)
  for i = #S.undo_log, 1, -1 do
    if S.interrupted ~= signal_before then break end
    local e = S.undo_log[i]
    if e.kind == "task" or e.entry.status == "applied" then
      if not rollback_step(S, e, unit_named) then all_ok = false end
    end
  end
  -- Changes their integration rolled back (or failed to) by itself count
  -- too; those that cannot be undone stay as they are, and say so.
  local rolled = #S.rollbacks > 0
  for _, c in ipairs(S.changes) do
    if c.status == "rolled_back" then rolled = true end
    if c.status == "undo_failed" then rolled, all_ok = true, false end
    if c.status == "applied" and c.undo == nil then left_in_place(S, c, unit_named) end
  end
  for _, step in ipairs(S.restore_steps and S.interrupted == signal_before and S.restore_steps(S) or {}) do
    rolled = true
    if not rollback_step(S, { kind = "restore", name = step.name, fn = step.fn }, unit_named) then all_ok = false end
  end
  if not rolled then return "failed" end
  return all_ok and "rolled_back" or "rollback_failed"
end

---------------------------------------------------------------- finally

-- The finally tasks, in declaration order, one at a time, each in the
-- calling task's care (as a worker runs a unit) with the release summary.
local function run_finally(S, summary)
  local release
  for _, t in ipairs(S.plan.order) do
    local node = S.nodes[t.name]
    if t.finally then
      local d = S.plan.decision[t.name]
      local u = new_unit(S, node, nil, nil)
      if not d.run then
        skip_unit(S, u, d.reason)
      else
        release = release or (S.release_of and S.release_of(summary)) or {}
        u.release = release
        start_unit(S, u)
        local me = task.current()
        run_attempts(S, u, me, S.interrupted and (t.timeout_ms or FINALLY_DEADLINE) or nil)
      end
    end
  end
end

---------------------------------------------------------------- the run

function M.run(opts)
  local S = prepare(opts)
  -- (what lua/pipeline/run.lua calls: S:interrupt(sig), S:change_recorded(e);
  -- fields, not a metatable, so that S's many nil fields cost no lookup)
  S.interrupt, S.change_recorded = interrupt, change_recorded
  if opts.on_start then opts.on_start(S) end
  for _, t in ipairs(S.plan.order) do
    local node = S.nodes[t.name]
    if node.remaining == 0 and node.state == "waiting" and not t.finally then node_ready(S, node) end
  end
  pump(S)
  wait_for_workers(S)
  skip_unstarted(S)

  local summary = { units = S.units, failed_unit = S.failing, rollbacks = S.rollbacks,
                    input_error = S.input_error }
  if S.interrupted then
    summary.status = "interrupted"
    if S.on_interrupt == "rollback" then summary.rollback_status = roll_back(S) end
  elseif S.failing then
    summary.status = roll_back(S)
    if S.interrupted then summary.status = "interrupted" end   -- a signal during the rollback
  else
    summary.status = "success"
  end
  summary.signal = S.interrupted
  run_finally(S, summary)
  return summary
end

return M
