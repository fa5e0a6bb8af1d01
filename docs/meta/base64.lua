---@meta slipway.base64
local base64 = {}
---@param data string
---@param opts? {url?: boolean} URL-safe alphabet, no padding
---@return string
function base64.encode(data, opts) end
---@param text string either alphabet, padding optional
---@return string|nil data
---@return string? err
---@return string? code
function base64.decode(text) end
return base64
