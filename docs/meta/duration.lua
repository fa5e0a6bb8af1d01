---@meta slipway.duration
local duration = {}
---"250ms", "5m", "1h30m", "1.5s" or seconds -> milliseconds; nil and why
---for a string that is not a duration and for a value no timer can take
---(negative, NaN, beyond 100 years: the rule of every duration option)
---@param s string|number
---@return number|nil ms
---@return string? err
function duration.parse(s) end
---Milliseconds -> Go's notation ("1m30s")
---@param ms number
---@return string
function duration.format(ms) end
return duration
