---@meta slipway.json
-- Editor completion for slipway.json (LuaLS). Not loaded at run time.

---@class slipway.json
---@field null lightuserdata the JSON null (same value as yaml.null)
---@field array_mt table metatable marking a table as a JSON array (decode sets it)
---@field object_mt table metatable marking a table as a JSON object (decode sets it)
local json = {}

---Decode JSON text. Integers that fit in 64 bits stay integers (2^63-1
---keeps every digit); numbers with a fraction or exponent, and larger
---integers, are floats. Strings are byte strings: "a\u0000b" gives three
---bytes. Arrays and objects come back marked with array_mt/object_mt so
---that empty ones round-trip; they nest at most 1000 deep. Bad JSON and
---invalid UTF-8 in a string are errors with the 1-based byte position.
---@param text string
---@return any value
---@return string? err "json: <what> at byte N" (N is 1-based)
---@return string? code "EJSON"
function json.decode(text) end

---Encode a value. A table is an array when marked with array_mt, an object
---when marked with object_mt, otherwise an array when its keys are exactly
---1..n (n >= 1) and an object in every other case (an empty table is {}).
---Keys are sorted bytewise unless sort_keys = false; pretty indents by two
---spaces. Integers are written exactly, floats as the shortest text that
---reads back the same (with ".0" if it looks like an integer); NUL and the
---other control bytes as \u escapes.
---Raises on functions, cycles, NaN/inf, nesting deeper than 1000 and on
---invalid UTF-8, unless invalid_utf8 = "replace": then each byte that is
---not part of valid UTF-8 is written as U+FFFD.
---A slipway.Uint64 (yaml.uint64_mt) is written with all its digits.
---@param value any
---@param opts? {pretty?: boolean, sort_keys?: boolean, invalid_utf8?: "error"|"replace"}
---@return string
function json.encode(value, opts) end

---s with each byte that is not part of valid UTF-8 replaced by U+FFFD (s
---itself when it is valid): the text encode writes with
---invalid_utf8 = "replace".
---@param s string
---@return string
function json.replace_invalid_utf8(s) end

---Mark t (or a new table) to encode as a JSON array.
---@param t? table
---@return table
function json.array(t) end

---Mark t (or a new table) to encode as a JSON object.
---@param t? table
---@return table
function json.object(t) end

return json
