---@meta
-- Globals every slipway script and deploy.lua gets (LuaLS completion).

---@param fn fun(...): any
---@return slipway.Task
function spawn(fn, ...) end

---@async
---@param duration string|number "250ms", "5m", "1h30m" or seconds
function sleep(duration) end

task = require("slipway.task")
hash = require("slipway.hash")
base64 = require("slipway.base64")
duration = require("slipway.duration")
