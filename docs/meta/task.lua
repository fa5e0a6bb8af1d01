---@meta slipway.task
-- Editor completion for the runtime's task primitives (LuaLS). Not loaded
-- at run time.

---@class slipway.Task
local Task = {}

---Wait for the task to end; its return values, or raises its error (with
---the task's traceback appended to a string error).
---@async
---@return any ...
function Task:join() end

---Wait for the task to end, at most `timeout`; true if it ended.
---@async
---@param timeout? string|number duration ("250ms", "5m") or seconds
---@return boolean ended
function Task:wait(timeout) end

---Cancel the task: its pending operation is stopped (child processes
---killed, requests aborted) and it unwinds with a cancellation error.
function Task:cancel() end

---"ready" | "running" | "waiting" | "done" | "failed" | "cancelled"
---@return string
function Task:status() end

---Whether someone has cancelled the task (it may still be unwinding).
---@return boolean
function Task:cancel_requested() end

---After the task ended: true, values... or false, err, traceback.
---@return boolean ok
---@return any ...
function Task:result() end

---@class slipway.task
local task = {}

---Start fn(...) as a new task; it begins once the caller waits. It
---inherits the caller's context, and it belongs to the caller: inside a
---pipeline run, when the task that spawned it ends, a task still running
---is cancelled, and one that failed without anyone joining it fails the
---pipeline task.
---@param fn fun(...): any
---@return slipway.Task
function task.spawn(fn, ...) end

---Start fn(...) as a new task with the given context value, belonging to
---nobody (the runtime's own workers).
---@param context any
---@param fn fun(...): any
---@return slipway.Task
function task.spawn_with(context, fn, ...) end

---The running task's context value (see slipway.context), nil outside tasks.
---@return any
function task.context() end

---Set the running task's context value; tasks it spawns from now on
---inherit it.
---@param context any
function task.set_context(context) end

---The tasks `t` (default: the running task) spawned that are still running
---or failed without anyone reading the failure, in spawn order (nil when
---there are none); `t` holds none of them afterwards.
---@param t? slipway.Task
---@return slipway.Task[]?
function task.take_strays(t) end

---@async
---@param duration string|number
function task.sleep(duration) end

---Let every other ready task run, then continue.
---@async
function task.yield() end

---The running task, or nil outside tasks.
---@return slipway.Task?
function task.current() end

---Cancel a task; the same as t:cancel(). A task that ended is left as it
---is; a running one stops at its next wait.
---@param t slipway.Task
function task.cancel(t) end

---Run fn(...) as a task and drive the event loop until nothing is left to
---do, then give the task's result(): true, values... or false, err,
---traceback (false, "deadlock: ..." when the task waits for something
---that can never come). Only from outside tasks: the runtime's entry
---points use it; scripts and pipeline tasks already run inside one (and
---raise "task.run: already inside a task (use spawn)").
---@param fn fun(...): any
---@param ... any passed to fn
---@return boolean ok
---@return any ...
function task.run(fn, ...) end

---Whether err is the error a cancelled task unwinds with.
---@return boolean
function task.is_cancelled(err) end

---Milliseconds from a monotonic clock.
---@return number
function task.now() end

---Seconds since the epoch from the wall clock, with the fraction
---(os.time() has whole seconds).
---@return number
function task.wall() end

---Live counters for leak checks.
---@return {refs: integer, ops: integer, tasks: integer, handles: integer}
function task.stats() end

return task
