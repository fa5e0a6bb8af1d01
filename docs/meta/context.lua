---@meta slipway.context
-- Editor stubs (LuaLS) for require("slipway.context") and the global
-- `context`: where the running code is, and the one way its output and its
-- changes leave it (lua/context.lua). Tasks inherit their context from the
-- task that spawned them, so this works from any depth of a pipeline task.

---@class slipway.Change
---@field kind string who changed it ("docker.stack")
---@field target string what ("sophia")
---@field summary? string one line for people
---@field data? table JSON-able details, never secret values
---@field undo? async fun() how to undo it (runs inside a task)
---@field status "applied"|"rolled_back"|"undo_failed"
---@field details? string|table
---@field task? string the pipeline task that made it

---@class slipway.context
context = {}

---Inside a pipeline run?
---@return boolean
function context.in_run() end

---The run the running code works for (nil outside runs).
---@return table?
function context.run() end

---The unit of the run the code works for: a task, a matrix item or a
---rollback step, with its `name` (nil outside runs).
---@return {name: string}?
function context.unit() end

---One line of output (no newline) of the running code: in a run, an output
---event of its task; elsewhere written to slipway's stdout or stderr.
---@param stream "stdout"|"stderr"
---@param line string
function context.output(stream, line) end

---A warning of the running code: in a run, a warning event; elsewhere on stderr.
---@param message string
function context.warn(message) end

---Record a change the running code made, with how to undo it. In a run it
---joins the run's record, and a failure of the run calls `undo` (in reverse
---order with the tasks' rollbacks). `restorer` names a module whose
---`restore(data, opts)` brings the target back to the state `data` records
---(and `restore_diff(data, opts)` says what that would change): `slipway
---rollback` and the automatic rollback to the last verified release use it.
---Returns the entry.
---@param change {kind: string, target: string, summary?: string, data?: table, undo?: async fun(), restorer?: string}
---@return slipway.Change
function context.add_change(change) end

---Mark an entry after undoing it yourself, so the pipeline does not undo it twice.
---@param entry slipway.Change
---@param status "rolled_back"|"undo_failed"
---@param details? string|table
---@return slipway.Change
function context.mark_change(entry, status, details) end

return context
