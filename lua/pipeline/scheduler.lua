-- slipway.pipeline.scheduler: running a planned pipeline on the event loop.
--
-- Every unit of work (a task, or one item of a matrix task) runs in a
-- slipway.task as soon as everything it needs is done, at most `jobs` at a
-- time (a worker task runs units one after another while there are ready
-- ones; it is the unit's task while it runs it). Fail-fast: the first failure cancels the running units (their
-- pending operations' cleanups kill child process groups), skips what has
-- not started, and, once everything has stopped, runs the rollback steps in
-- reverse order of recording: task `rollback` functions (recorded when the
-- task completed) and release changes' `undo` functions (recorded when the
-- change was made). An interrupt (interrupt(sig)) cancels everything the
-- same way but rolls nothing back.
--
-- M.run(ctx) must be called from inside a task (the run's main task).
-- ctx = { def, plan, values, jobs, bus, release, on_start(S), on_unit_end(u)
--         (called as a unit ends, before its task_finished event) }
-- -> summary { status, units = {...}, rollbacks = {...}, failed_unit,
--    input_error (true when --only/--skip named a matrix item that its
--    matrix function did not return) }
--    status: "success" | "failed" | "rolled_back" | "rollback_failed" |
--            "interrupted"
local task = require("slipway.task")
local graph = require("slipway.pipeline.graph")

local M = {}

local function now() return task.now() end

local EMPTY = {}

-- Label of a matrix item (graph.item_label).
M.item_label = graph.item_label

-- An error value -> message, and the user's file:line when an error
-- handler found one.
local function describe(err)
  if type(err) == "table" and err.msg then return err end
  if type(err) == "table" and type(err.input_error) == "string" then return { msg = err.input_error } end
  if type(err) == "string" then return { msg = err } end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return { msg = tostring(err) } end
  return { msg = "error object is a " .. type(err) .. " value" }
end

function M.run(ctx)
  local def, plan, values, bus = ctx.def, ctx.plan, ctx.values, ctx.bus
  local jobs = ctx.jobs or 4
  local release = ctx.release
  local source = "@" .. def.file
  local S = {
    nodes = {}, units = {}, active = {}, live = {}, by_task = setmetatable({}, { __mode = "k" }),
    ready = {}, rhead = 1, rtail = 0, running = 0, failing = nil, interrupted = nil,
    undo_log = {}, rollbacks = {}, changes = {}, cancelled_workers = {},
  }

  -- Error handler for user code: keep the message, the traceback and the
  -- innermost line of the pipeline file.
  local function handler(e)
    if task.is_cancelled(e) then return e end
    local d = describe(e)
    if d.traceback then return d end
    local out = { msg = d.msg, traceback = debug.traceback(d.msg, 2) }
    for level = 2, 80 do
      local info = debug.getinfo(level, "Sl")
      if info == nil then break end
      if info.source == source and info.currentline > 0 then
        out.file, out.line = source:sub(2), info.currentline
        -- Lua shortens long paths in messages ("...dir/deploy.lua:3:"):
        -- give the whole path back
        if info.short_src ~= out.file and out.msg:sub(1, #info.short_src + 1) == info.short_src .. ":" then
          out.msg = out.file .. out.msg:sub(#info.short_src + 1)
        end
        break
      end
    end
    if out.file == nil then
      out.file, out.line = d.msg:match("^([^\n:]+):(%d+):")
      out.line = tonumber(out.line)
    end
    return out
  end

  -- Nodes, in plan order, with their dependants.
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

  local pump, node_finished, fail, node_ready
  local real_spawn = task.spawn

  local function emit(ev, at) return bus:emit(ev, at) end

  local function new_unit(node, item, label)
    local t = node.task
    -- (the nil fields are set later: naming them sizes the table for them)
    local u = {
      name = label and (t.name .. "[" .. label .. "]") or t.name,
      base = t.name, item = item, label = label, node = node,
      status = "pending", attempts = 0,
      slot = nil, started = nil, finished = nil, active = nil,
    }
    S.units[#S.units + 1] = u
    if node.units then node.units[#node.units + 1] = u end
    node.left = node.left + 1
    return u
  end

  local function queue(u)
    S.rtail = S.rtail + 1
    S.ready[S.rtail] = u
  end

  local function skip_unit(u, reason)
    u.status, u.reason = "skipped", reason
    emit { type = "task_skipped", task = u.name, reason = reason }
  end

  -- A node whose units have all finished (or that was skipped).
  node_finished = function(node, state)
    node.state = state
    if state == "done" or state == "skipped" then
      for _, d in ipairs(node.dependants or EMPTY) do
        d.remaining = d.remaining - 1
        if d.remaining == 0 and d.state == "waiting" then node_ready(d) end
      end
    end
  end

  -- Items named by --only/--skip must exist (a matrix function's items
  -- are known only now): nil, message if one does not.
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

  local function expand(node, items)
    if type(items) ~= "table" then
      return nil, ("matrix must be a list, the matrix function returned a %s"):format(type(items))
    end
    local t = node.task
    local d = plan.decision[t.name]
    local labels = graph.item_labels(items)
    local bad = (d.only_items or d.skip_items) and check_items(t, d, labels)
    if bad then
      S.input_error = true
      return nil, bad
    end
    node.state = "running"
    node.units = {}
    for i, item in ipairs(items) do new_unit(node, item, labels[i]) end
    emit { type = "matrix_expanded", task = t.name, items = require("slipway.json").array(labels) }
    for _, u in ipairs(node.units) do
      if d.only_items and not d.only_items[u.label] then
        node.left = node.left - 1
        skip_unit(u, "not selected (" .. d.only_flag .. ")")
      elseif d.skip_items and d.skip_items[u.label] then
        node.left = node.left - 1
        skip_unit(u, "skipped by --skip")
      else
        queue(u)
      end
    end
    if #node.units == 0 then       -- nothing to do counts as done
      local u = new_unit(node, nil, nil)
      node.left = 0
      skip_unit(u, "the matrix is empty")
      node_finished(node, "done")
    elseif node.left == 0 then     -- every item skipped
      node_finished(node, "done")
    end
    return true
  end

  -- A matrix function failed: show it as a failed unit named after the task.
  local function matrix_failed(node, err)
    local u = new_unit(node, nil, nil)
    u.status, u.started, u.finished = "failed", now(), now()
    u.error = err.msg
    u.file, u.line = err.file, err.line
    emit { type = "task_started", task = u.name, attempt = 1 }
    emit { type = "task_finished", task = u.name, status = "failed", duration_ms = 0, attempts = 1,
           error = u.error, file = u.file, line = u.line }
    node.left = 0
    node_finished(node, "failed")
    fail(u)
  end

  node_ready = function(node)
    if S.failing or S.interrupted then return end
    local t = node.task
    local d = plan.decision[t.name]
    if not d.run then
      local u = new_unit(node, nil, nil)
      node.left = 0
      skip_unit(u, d.reason)
      node_finished(node, "skipped")
      return
    end
    node.state = "running"
    if t.matrix == nil then
      queue(new_unit(node, nil, nil))
    elseif type(t.matrix) == "table" then
      local fine, why = expand(node, t.matrix)
      if not fine then matrix_failed(node, { msg = why, file = t.file, line = t.line }) end
    else
      node.state = "expanding"
      local exp
      exp = real_spawn(function()
        local ok, items = xpcall(t.matrix, handler, values)
        S.live[exp] = nil
        if S.failing or S.interrupted then return end
        if not ok then
          matrix_failed(node, describe(items))
        else
          local fine, why = expand(node, items)
          if not fine then matrix_failed(node, { msg = why, file = t.file, line = t.line }) end
        end
        pump()
      end)
      S.live[exp] = true
    end
  end

  -- One attempt of a unit's function, in the calling task.
  local function attempt(u)
    local t = u.node.task
    if u.label ~= nil then
      return xpcall(t.fn, handler, u.item, values)
    end
    return xpcall(t.fn, handler, values)
  end

  local function record_rollback(u)
    local t = u.node.task
    if t.rollback then
      S.undo_log[#S.undo_log + 1] = { kind = "task", unit = u }
    end
  end

  local function unit_finished(u, ok, res)
    S.running = S.running - 1
    -- S.active is a list (a unit knows its slot): cheaper than a set keyed
    -- by units for thousands of short tasks
    local last = S.active[#S.active]
    S.active[u.slot], last.slot = last, u.slot
    S.active[#S.active] = nil
    u.finished = now()
    local t = u.node.task
    local status
    if u.cancel_requested and not u.timed_out then
      status = "cancelled"      -- even if its code caught the cancellation
    elseif ok then
      status = "ok"
      u.result = res
      record_rollback(u)
    elseif u.timed_out then
      status = "failed"
      u.error = ("timed out after %s"):format(require("slipway.events").format_ms(t.timeout_ms))
      u.file, u.line = t.file, t.line
    elseif task.is_cancelled(res) or u.cancel_requested then
      status = "cancelled"
    else
      status = "failed"
      local d = describe(res)
      u.error, u.file, u.line, u.traceback = d.msg, d.file, d.line, d.traceback
    end
    if status == "failed" and t.continue_on_error then u.allowed = true end
    u.status = status
    if ctx.on_unit_end then ctx.on_unit_end(u) end
    emit({ type = "task_finished", task = u.name, status = status, duration_ms = ((u.finished - u.started) * 10 + 0.5) // 1 / 10,
           attempts = u.attempts, error = u.error, file = u.file, line = u.line,
           allowed = u.allowed or nil }, u.finished)
    local node = u.node
    node.left = node.left - 1
    if status == "failed" and not u.allowed then node.failed = true end
    if status == "cancelled" then node.cancelled = true end
    if node.left == 0 and node.state ~= "expanding" then
      node_finished(node, node.failed and "failed" or (node.cancelled and "cancelled" or "done"))
    end
    if status == "failed" and not u.allowed then fail(u) end
  end

  -- Run unit u (its attempts, retries, timeouts) in the calling task `me`.
  local function run_unit(u, me)
    local t = u.node.task
    local ok, res
    if t.timeout_ms == nil and t.retries == 0 then   -- the common case: one attempt, here
      if u.cancel_requested then   -- cancelled before it got to start
        return unit_finished(u, false, "cancelled")
      end
      u.attempts, u.active = 1, me
      ok, res = attempt(u)
      u.active = nil
      if not ok and u.cancel_requested then res = res or "cancelled" end
      return unit_finished(u, ok, res)
    end
    for n = 1, t.retries + 1 do
      if u.cancel_requested then     -- cancelled before it got to start
        ok, res = false, "cancelled"
        break
      end
      -- each attempt in a task of its own, which a timeout can cancel
      u.attempts = n
      local att = real_spawn(attempt, u)
      S.by_task[att] = u
      u.active = att
      local finished = att:wait(t.timeout_ms and t.timeout_ms / 1000 or nil)
      if not finished then
        u.timed_out = true
        att:cancel()
        att:wait()
      end
      u.active = nil
      local r = table.pack(att:result())
      if r[1] then ok, res = r[2], r[3] else ok, res = false, r[2] end
      if not finished then ok, res = false, nil end
      if ok or u.cancel_requested or S.failing or S.interrupted then break end
      if n <= t.retries then
        local delay = t.backoff_ms * 2 ^ (n - 1)
        local d = describe(res)
        emit { type = "task_retrying", task = u.name, attempt = n, error = u.timed_out and "timed out" or d.msg,
               delay_ms = delay }
        u.timed_out = nil
        u.active = me
        local slept = pcall(task.sleep, delay / 1000)
        u.active = nil
        if not slept then break end
      end
    end
    if not ok and u.cancel_requested and not u.timed_out then res = res or "cancelled" end
    unit_finished(u, ok, res)
  end

  -- A worker runs units one after another: the one it was started with,
  -- then, as long as there is work, one of those that became ready. Reusing
  -- the task instead of spawning one per unit keeps a big run cheap; the
  -- unit a worker runs is what S.by_task says, for output and changes.
  local function worker(u)
    local me = task.current()
    while u do
      S.by_task[me] = u
      run_unit(u, me)
      -- A unit's code can reach this task (task.current()) and cancel it:
      -- a cancelled worker leaves the next units to fresh ones.
      if S.cancelled_workers[me] then
        pump()
        break
      end
      u = pump(true)
    end
    S.live[me] = nil
  end

  local function start(u)
    S.running = S.running + 1
    local n = #S.active + 1
    S.active[n], u.slot = u, n
    u.status = "running"
    u.started = now()
    emit({ type = "task_started", task = u.name, attempt = 1 }, u.started)
  end

  -- Start ready units while fewer than `jobs` run. A worker that calls
  -- with `free` set takes the first one itself (returned); the others get
  -- new workers.
  pump = function(free)
    if S.failing or S.interrupted then return nil end
    local mine
    while S.running < jobs and S.rhead <= S.rtail do
      local u = S.ready[S.rhead]
      S.ready[S.rhead] = nil
      S.rhead = S.rhead + 1
      start(u)
      if free and mine == nil then
        mine = u
      else
        local w = real_spawn(worker, u)
        S.by_task[w] = u
        S.live[w] = true
      end
    end
    return mine
  end

  local function cancel_all(reason)
    for i = S.rhead, S.rtail do
      skip_unit(S.ready[i], reason)
      S.ready[i] = nil
    end
    S.rhead = S.rtail + 1
    for _, u in ipairs(table.move(S.active, 1, #S.active, 1, {})) do
      u.cancel_requested = true
      if u.active then u.active:cancel() end
    end
  end

  fail = function(u)
    if S.failing or S.interrupted then return end
    S.failing = u
    cancel_all(("not started: %s failed"):format(u.name))
  end

  -- Signals: cancel everything; nothing is rolled back.
  S.interrupt = function(signame)
    if S.interrupted then return end
    S.interrupted = signame
    cancel_all("not started: interrupted by " .. signame)
    if S.rollback_task then S.rollback_task:cancel() end
  end

  -- Where output lines and release changes come from.
  S.unit_of = function(t)
    return S.by_task[t]
  end

  local unsubscribe
  if release then
    unsubscribe = release.on_change(function(entry, what)
      if what == "added" then
        local u = S.by_task[task.current()]
        entry.task = entry.task or (u and u.name)
        S.changes[#S.changes + 1] = entry
        if entry.undo then S.undo_log[#S.undo_log + 1] = { kind = "change", entry = entry } end
        emit { type = "change_recorded", task = entry.task, kind = entry.kind, target = entry.target,
               summary = entry.summary }
      end
    end)
  end

  -- Tasks that a task spawns (parallel(...), task.spawn) belong to it:
  -- their output lines and recorded changes are attributed to its unit.
  -- slipway.task's spawn is wrapped for the length of the run.
  local function spawn(...)
    local t = real_spawn(...)
    local parent = S.by_task[task.current()]
    if parent then S.by_task[t] = parent end
    return t
  end
  task.spawn = spawn
  local global_spawn = rawget(_G, "spawn") == real_spawn
  if global_spawn then rawset(_G, "spawn", spawn) end
  -- Cancelling a worker (t:cancel(), task.cancel(t)) is noted, so that it
  -- runs no further unit.
  local methods = getmetatable(task.current()).__index
  local real_cancel, real_task_cancel = methods.cancel, task.cancel
  local function noted(cancel)
    return function(t, ...)
      if S.live[t] then S.cancelled_workers[t] = true end
      return cancel(t, ...)
    end
  end
  methods.cancel, task.cancel = noted(real_cancel), noted(real_task_cancel)

  if ctx.on_start then ctx.on_start(S) end

  -- Start: every node with nothing to wait for.
  for _, t in ipairs(plan.order) do
    local node = S.nodes[t.name]
    if node.remaining == 0 and node.state == "waiting" then node_ready(node) end
  end
  pump()

  -- Wait until no runner or matrix expansion is left.
  while true do
    local t = next(S.live)
    if t == nil then break end
    t:wait()
    S.live[t] = nil
    -- user errors are caught inside; a runner that failed is slipway's bug
    if t:status() == "failed" then t:join() end
  end

  -- What never became ready (behind a failure or an interrupt).
  for _, t in ipairs(plan.order) do
    local node = S.nodes[t.name]
    if node.state == "waiting" then
      local u = new_unit(node, nil, nil)
      local why = S.interrupted and ("not started: interrupted by " .. S.interrupted)
        or (S.failing and ("not started: " .. S.failing.name .. " failed"))
        or "not started: a task it needs did not complete"
      skip_unit(u, why)
      node.state = "skipped"
    end
  end

  local summary = { units = S.units, failed_unit = S.failing, rollbacks = S.rollbacks,
                    input_error = S.input_error }
  if S.interrupted then
    summary.status = "interrupted"
    summary.signal = S.interrupted
  elseif S.failing then
    summary.status = "failed"
    M._rollback(S, ctx, summary, emit, values)
    if S.interrupted then               -- a signal during the rollback
      summary.status = "interrupted"
      summary.signal = S.interrupted
    end
  else
    summary.status = "success"
  end
  task.spawn = real_spawn
  if global_spawn then rawset(_G, "spawn", real_spawn) end
  methods.cancel, task.cancel = real_cancel, real_task_cancel
  if unsubscribe then unsubscribe() end
  return summary
end

-- Run the rollback steps in reverse order of recording, one at a time,
-- each in its own task (so a signal can cancel it).
function M._rollback(S, ctx, summary, emit, values)
  local all_ok = true
  local unit_named = {}
  for _, u in ipairs(S.units) do unit_named[u.name] = u end
  for i = #S.undo_log, 1, -1 do
    if S.interrupted then break end
    local e = S.undo_log[i]
    local name, fn, args
    if e.kind == "task" then
      local u = e.unit
      local t = u.node.task
      name = u.name
      fn = t.rollback
      if u.label ~= nil then args = { u.item, values, u.result } else args = { values, u.result } end
    else
      if e.entry.status ~= "applied" then goto continue end
      name = ("%s %s"):format(e.entry.kind, e.entry.target)
      fn = e.entry.undo
      args = {}
    end
    do
      local started = task.now()
      emit { type = "rollback_started", task = e.kind == "task" and name or e.entry.task, change = e.kind == "change" and name or nil }
      local rt = task.spawn(function()
        return xpcall(fn, function(err)
          if task.is_cancelled(err) then return err end
          return debug.traceback(describe(err).msg, 2)
        end, table.unpack(args, 1, 3))
      end)
      S.rollback_task = rt
      local owner = e.kind == "task" and e.unit or unit_named[e.entry.task or ""]
      if owner then S.by_task[rt] = owner end
      -- A task's rollback gets the task's own timeout.
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
      if not finished then err = "timed out after " .. require("slipway.events").format_ms(limit) end
      local msg
      if not ok then
        all_ok = false
        msg = task.is_cancelled(err) and "cancelled" or tostring(err):match("^[^\n]*")
      end
      if e.kind == "change" then
        e.entry.status = ok and "rolled_back" or "undo_failed"
        e.entry.details = msg
        if owner and owner.rollback ~= "failed" then owner.rollback = ok and "ok" or "failed" end
      else
        e.unit.rollback = ok and "ok" or "failed"
        e.unit.rollback_error = msg
      end
      local entry = { name = name, kind = e.kind, status = ok and "ok" or "failed", error = msg,
                      started = started, finished = task.now(),
                      duration_ms = math.floor((task.now() - started) * 10 + 0.5) / 10 }
      S.rollbacks[#S.rollbacks + 1] = entry
      emit { type = "rollback_finished", task = e.kind == "task" and name or e.entry.task,
             change = e.kind == "change" and name or nil, status = entry.status, error = msg,
             duration_ms = entry.duration_ms }
    end
    ::continue::
  end
  -- Changes their integration rolled back (or failed to) by itself count too.
  local rolled = #S.rollbacks > 0
  for _, c in ipairs(S.changes) do
    if c.status == "rolled_back" then rolled = true end
    if c.status == "undo_failed" then rolled, all_ok = true, false end
  end
  if rolled then
    summary.status = all_ok and "rolled_back" or "rollback_failed"
  end
end

return M
