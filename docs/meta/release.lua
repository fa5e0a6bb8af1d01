---@meta slipway.release
-- Editor stubs (LuaLS) for require("slipway.release"): what a run changed
-- and how to undo it (lua/release.lua).

---@class slipway.Change
---@field kind string who changed it ("docker.stack")
---@field target string what ("sophia")
---@field summary? string one line for people
---@field data? table JSON-able details, never secret values
---@field undo? async fun() how to undo it (runs inside a task)
---@field status "applied"|"rolled_back"|"undo_failed"
---@field details? string|table
---@field task? string the task that made it

---@class slipway.release
local release = {}

---The active run record (or the in-memory one outside runs), or nil.
---@return table|nil
function release.current() end

---Record one change made by this run; returns the entry.
---@param change {kind: string, target: string, summary?: string, data?: table, undo?: async fun()}
---@return slipway.Change
function release.add_change(change) end

---Mark an entry after undoing it yourself, so the pipeline does not undo it twice.
---@param entry slipway.Change
---@param status "rolled_back"|"undo_failed"
---@param details? string|table
---@return slipway.Change
function release.mark_change(entry, status, details) end

return release
