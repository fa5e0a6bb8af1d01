---@meta slipway.yaml
-- Editor completion for slipway.yaml (LuaLS). Not loaded at run time.

---@class slipway.yaml.Position
---@field line integer 1-based
---@field col integer 1-based

---@class slipway.yaml.TablePosition: slipway.yaml.Position
---@field keys table<any, slipway.yaml.Position> position of each key / element

---@class slipway.yaml
---@field null lightuserdata the YAML null (same value as json.null)
---@field array_mt table metatable of decoded sequences (json.array_mt)
---@field uint64_mt table metatable of slipway.Uint64, an integer above 2^63-1
local yaml = {}

---An integer above Lua's (2^63-1 < n <= 2^64-1), which go-yaml reads as a
---uint64: decode gives this userdata so that no digit is lost. tostring()
---gives its digits; == compares two by value; < and <= compare it with
---another one or a number; yaml.encode and json.encode write its digits.
---@class slipway.Uint64

---Decode the first document. Scalars resolve as go-yaml v3 reads them
---(true/false only; 0755 octal; 0x1F; 1.50 float; ~/null/empty null;
---quoted stays text; above 2^63-1 a slipway.Uint64); anchors are expanded
---into copies and `<<` merges applied. With positions, also returns pos[t]
---for every table. A text over max_bytes (default 16 MiB) is refused
---before parsing: nil, "file: document too large (...)", "EFBIG".
---@param text string
---@param opts? {filename?: string, positions?: boolean, max_bytes?: integer}
---@return any value
---@return table<table, slipway.yaml.TablePosition>|string|nil pos_or_err "file:line:col: message" on error
---@return string? code "EYAML" | "EFBIG"
function yaml.decode(text, opts) end

---Decode every document into a list.
---@param text string
---@param opts? {filename?: string, positions?: boolean, max_bytes?: integer}
---@return any[]|nil docs
---@return table|string|nil pos_or_err
---@return string? code
function yaml.decode_all(text, opts) end

---Encode as go-yaml v3 prints (indent 2): maps in their recorded key order
---(decode, yaml.order), other keys in go-yaml's order. docker_compat writes
---block literals byte for byte as docker's go-yaml does, though a string
---that starts with a line break loses it and one that starts with a tab
---does not read back; by default those two are written so they read back.
---@param value any
---@param opts? {sort_keys?: boolean, docker_compat?: boolean}
---@return string
function yaml.encode(value, opts) end

---The keys of t in document order; keys added later come after, sorted.
---@param t table
---@return any[]
function yaml.keys(t) end

---Record the key order encode() and keys() use for t.
---@param t table
---@param keys any[]
---@return table t
function yaml.order(t, keys) end

---go-yaml's map key order, for table.sort.
---@param a any
---@param b any
---@return boolean
function yaml.key_less(a, b) end

---A float as go-yaml (and Go's %v) writes it: 1e+06, 0.3, .inf
---@param x number
---@return string
function yaml.format_float(x) end

return yaml
