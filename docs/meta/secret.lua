---@meta slipway.secret
-- Editor stubs (LuaLS) for require("slipway.secret"): secret values
-- (src/secret.c). A Secret prints as "***" everywhere; concatenating it
-- gives the plain text for the places that must send it; every value made
-- is masked in everything slipway writes.

---@class slipway.Secret
---@field name? string where it came from ("VERCEL_TOKEN")
---@field reveal fun(self: slipway.Secret): string the plain value

---@class slipway.secret
local secret = {}

---A secret holding value (4 bytes or more; shorter ones are refused: masking
---them would hide ordinary text).
---@param value string
---@param name? string
---@return slipway.Secret
function secret.new(value, name) end

---The plain string of a Secret; a string is returned as it is.
---@param v slipway.Secret|string
---@return string
function secret.reveal(v) end

---@param v any
---@return boolean
function secret.is_secret(v) end

---Every secret value made so far, in the order they were made.
---@return string[]
function secret.values() end

return secret
