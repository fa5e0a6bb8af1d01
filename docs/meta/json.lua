---@meta slipway.json
-- Editor completion for slipway.json (LuaLS). Not loaded at run time.

---@class slipway.json
---@field null lightuserdata the JSON null (same value as yaml.null)
---@field array_mt table metatable marking a table as a JSON array (decode sets it)
---@field object_mt table metatable marking a table as a JSON object (decode sets it)
local json = {}

---Decode JSON text. Integers stay integers (2^63-1 keeps every digit),
---numbers with a fraction or exponent are floats; arrays and objects come
---back marked with array_mt/object_mt so that empty ones round-trip.
---@param text string
---@return any value
---@return string? err "json: <what> at byte N" (N is 1-based)
---@return string? code "EJSON"
function json.decode(text) end

---Encode a value. A table is an array when marked with array_mt, an object
---when marked with object_mt, otherwise an array when its keys are exactly
---1..n (n >= 1) and an object in every other case (an empty table is {}).
---A slipway.Uint64 (yaml.uint64_mt) is written with all its digits.
---Raises on functions, cycles, invalid UTF-8, NaN/inf.
---@param value any
---@param opts? {pretty?: boolean, sort_keys?: boolean}
---@return string
function json.encode(value, opts) end

---Mark t (or a new table) to encode as a JSON array.
---@param t? table
---@return table
function json.array(t) end

---Mark t (or a new table) to encode as a JSON object.
---@param t? table
---@return table
function json.object(t) end

return json
