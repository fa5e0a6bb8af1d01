---@meta
-- Globals every slipway script and deploy.lua gets (LuaLS completion).

---@param fn fun(...): any
---@return slipway.Task
function spawn(fn, ...) end

---@async
---@param duration string|number "250ms", "5m", "1h30m" or seconds
function sleep(duration) end

---Run functions concurrently (at most opts.limit at a time); their first
---results in order. The first error cancels the rest and is raised.
---@async
---@param fns (fun(): any)[]
---@param opts? {limit?: integer}
---@return any[]
function parallel(fns, opts) end

task = require("slipway.task")
hash = require("slipway.hash")
base64 = require("slipway.base64")
duration = require("slipway.duration")
