-- slipway.compose.schema: the compose-file validation of `docker stack`
-- (docker/cli's v3.x schemas), on slipway's own rules
-- (slipway.compose.schema_rules).
--
-- Where it sits in loading (docker/cli cli/compose/loader, per file):
--   1. version_of(raw) for every file; all files must agree (the loader
--      says "version mismatched between two composefiles : A and B").
--   2. check_forbidden(raw): extends, volumes_from, cpu_shares, ... in a
--      service -> "Configuration contains forbidden properties". On the RAW
--      dict, before interpolation and before the version is looked at
--      (a `version: "2"` file with volumes_from gets this message).
--   3. interpolation, with the loader's casts of typed fields (replicas,
--      ports target/published, privileged, external, ...) applied only to
--      strings that contained a variable.
--   4. validate(doc, version): on the INTERPOLATED, cast dict. The version
--      is checked first ("unsupported Compose file version: 2"), then the
--      document must be representable as JSON (NaN/Inf: "json: unsupported
--      value: NaN"), then the rules of that version. A quoted "3" in
--      replicas is a string here and fails ("must be a integer"), while
--      "${R}" that became 3 in step 3 passes.
-- validate() runs step 2 again (cheap, same result: keys are not
-- interpolated), so calling validate alone is still complete.
--
-- Messages are docker's: of all the problems gojsonschema finds, docker
-- reports the one at the deepest path (a type error wins a tie; for a
-- failed alternative the reason of the closest alternative), worded
-- "services.web.deploy.replicas must be a integer",
-- "services.web Additional property profiles is not allowed",
-- "(root) Additional property name is not allowed". To pick the same one
-- this walker keeps gojsonschema's tally of how well each alternative
-- matched. Docker visits mapping keys in random order, so when several
-- problems are equally deep docker's choice varies between runs; slipway
-- takes the first in file order. Every message is prefixed with
-- "<file>:<line>:<col>: " of the offending key when positions are known.
--
-- API:
--   validate(doc, version, pos, filename [, opts]) -> true | nil, msg, "ESCHEMA"
--     doc: decoded YAML (lists carry json.array_mt as slipway.yaml/json
--     make them; an unmarked table with keys 1..n also counts as a list),
--     version: "3.x" (nil: the document's own), pos/filename: optional
--   check_forbidden(doc, pos, filename)   -> true | nil, msg, "ESCHEMA"
--   check_version(value)   -> "3.x" | nil, msg, "ESCHEMA"  (value of `version:`)
--   version_of(doc)        -> docker's version string of a raw dict
--   versions()             -> {"3.0", ..., "3.13"}
--   duration_ok(s), ports_ok(v)  the two format checks docker adds
local rules = require("slipway.compose.schema_rules")

local M = {}

local NULL
do
  local ok, json = pcall(require, "slipway.json")
  NULL = ok and json.null or nil
end

-- Marker metatables of decoded arrays/objects (slipway.json, slipway.yaml),
-- and of slipway.yaml's integers above 2^63-1 (go-yaml's uint64).
local ARRAY_MT, OBJECT_MT, UINT64_MT = {}, {}, nil
for _, name in ipairs({ "slipway.json", "slipway.yaml" }) do
  local ok, mod = pcall(require, name)
  if ok and type(mod) == "table" then
    if mod.array_mt then ARRAY_MT[mod.array_mt] = true end
    if mod.object_mt then OBJECT_MT[mod.object_mt] = true end
    UINT64_MT = UINT64_MT or mod.uint64_mt
  end
end

local function is_uint64(v)
  return UINT64_MT ~= nil and getmetatable(v) == UINT64_MT
end

local LAST = rules.LAST_MINOR
local DEFAULT_VERSION = "3." .. LAST

---------------------------------------------------------------------------
-- Kinds of Lua values, named as docker names them in messages

local function is_list(t)
  local mt = getmetatable(t)
  if mt and ARRAY_MT[mt] then return true end
  if mt and OBJECT_MT[mt] then return false end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- "null" | "boolean" | "integer" | "number" | "string" | "list" | "mapping"
-- A float with an integral value is an integer (JSON has one number type).
local function kind_of(v)
  local t = type(v)
  if t == "string" then return "string"
  elseif t == "number" then
    if math.type(v) == "integer" or (v == math.floor(v) and v - v == 0) then return "integer" end
    return "number"
  elseif t == "boolean" then return "boolean"
  elseif t == "table" then return is_list(v) and "list" or "mapping"
  elseif v == NULL then return "null"
  elseif is_uint64(v) then return "integer"
  end
  return t
end
M.kind_of = kind_of

-- rule.kinds: the set of kinds rule.is admits (a number rule takes integers)
local function add_kind_sets(rule, seen)
  if seen[rule] then return end
  seen[rule] = true
  if rule.is then
    rule.kinds = {}
    for _, k in ipairs(rule.is) do
      rule.kinds[k] = true
      if k == "number" then rule.kinds.integer = true end
    end
  end
  for _, alt in ipairs(rule.either or {}) do add_kind_sets(alt, seen) end
  for _, f in pairs(rule.fields or {}) do add_kind_sets(f, seen) end
  for _, kc in ipairs(rule.keys or {}) do add_kind_sets(kc[2], seen) end
  if rule.item then add_kind_sets(rule.item, seen) end
end

---------------------------------------------------------------------------
-- Formats docker registers: duration (Go's time.ParseDuration) and ports
-- (go-connections' nat.ParsePortSpec). "expose" has no checker in docker.

local UNITS = { ns = 1, us = 1000, ["\194\181s"] = 1000, ["\206\188s"] = 1000,
                ms = 1000000, s = 1000000000, m = 60000000000, h = 3600000000000 }
local TWO63 = math.mininteger -- 2^63 as an unsigned bit pattern

local function ugt(a, b) return math.ult(b, a) end

-- Go's time.ParseDuration grammar and overflow rules, with uint64 math.
function M.duration_ok(s)
  if type(s) ~= "string" then return false end
  local i, n = 1, #s
  local c = s:sub(1, 1)
  if c == "-" or c == "+" then i = 2 end
  local neg = c == "-"
  if s:sub(i) == "0" then return true end
  if i > n then return false end
  local d = 0
  while i <= n do
    c = s:sub(i, i)
    if not c:match("[%d.]") then return false end
    local v, pre = 0, false
    while i <= n and s:sub(i, i):match("%d") do
      if ugt(v, 922337203685477580) then return false end
      v = v * 10 + (s:byte(i) - 48)
      if ugt(v, TWO63) then return false end
      i, pre = i + 1, true
    end
    local f, scale, post, over = 0, 1.0, false, false
    if s:sub(i, i) == "." then
      i = i + 1
      while i <= n and s:sub(i, i):match("%d") do
        post = true
        if not over then
          if f > (math.maxinteger // 10) then over = true
          else
            local y = f * 10 + (s:byte(i) - 48)
            if ugt(y, TWO63) then over = true else f, scale = y, scale * 10 end
          end
        end
        i = i + 1
      end
    end
    if not pre and not post then return false end
    local j = i
    while j <= n and not s:sub(j, j):match("[%d.]") do j = j + 1 end
    if j == i then return false end
    local unit = UNITS[s:sub(i, j - 1)]
    if not unit then return false end
    i = j
    local limit = unit == 1 and TWO63 or math.maxinteger // unit -- (2^63) / unit
    if ugt(v, limit) then return false end
    v = v * unit
    if f > 0 then
      local add = math.tointeger(math.floor(f * (unit / scale))) or math.maxinteger
      v = v + add
      if ugt(v, TWO63) then return false end
    end
    d = d + v
    if ugt(d, TWO63) then return false end
  end
  if not neg and d == TWO63 then return false end
  return true
end

-- net.ParseIP (through netip.ParseAddr): dotted IPv4 without leading
-- zeros, or IPv6 with at most one "::" and an optional IPv4 tail; zones
-- are refused.
local function ipv4_ok(s)
  local parts = 0
  for field in (s .. "."):gmatch("([^.]*)%.") do
    parts = parts + 1
    if not field:match("^%d%d?%d?$") or (#field > 1 and field:sub(1, 1) == "0")
        or tonumber(field) > 255 then return false end
  end
  return parts == 4 and not s:find("%.%.") and s:sub(-1) ~= "."
end

local function ipv6_ok(s)
  if s:find("%%") then return false end
  local head = s
  local v4 = s:match(":([%d.]+)$")
  local groups_for_v4 = 0
  if v4 and v4:find("%.") then
    if not ipv4_ok(v4) then return false end
    head = s:sub(1, #s - #v4)
    groups_for_v4 = 2
    if head:sub(-2) ~= "::" then head = head:sub(1, -2) end
  end
  local a, b = head:find("::", 1, true)
  local left, right
  if a then
    if head:find("::", b, true) and head:find("::", b, true) ~= a then return false end
    left, right = head:sub(1, a - 1), head:sub(b + 1)
    if right:find("::", 1, true) then return false end
  else
    left, right = head, nil
  end
  local function groups(part)
    if part == "" then return 0 end
    local count = 0
    for g in (part .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then return nil end
      count = count + 1
    end
    return count
  end
  local l = groups(left)
  if not l then return false end
  if right then
    local r = groups(right)
    if not r then return false end
    return l + r + groups_for_v4 <= 7
  end
  return l + groups_for_v4 == 8
end

local function ip_ok(s)
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "." then return ipv4_ok(s) end
    if c == ":" then return ipv6_ok(s) end
    if c == "%" then return false end
  end
  return false
end
M.ip_ok = ip_ok

-- strconv.ParseUint(s, 10, 16)
local function port_number(s)
  if not s:match("^%d+$") then return nil end
  s = s:gsub("^0+(%d)", "%1")
  if #s > 5 then return nil end
  local v = tonumber(s)
  if v > 65535 then return nil end
  return v
end

local function port_range(s)
  if s == "" then return nil end
  if not s:find("-", 1, true) then
    local p = port_number(s)
    return p, p
  end
  local a, b = s:match("^([^-]*)%-([^-]*)")
  local start, stop = port_number(a), port_number(b)
  if not start or not stop or stop < start then return nil end
  return start, stop
end

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do out[#out + 1] = part end
  return out
end

local function port_spec_ok(raw)
  local parts = split(raw, ":")
  local n = #parts
  local ip, host, container = "", "", parts[n]
  if n == 2 then host = parts[1]
  elseif n == 3 then ip, host = parts[1], parts[2]
  elseif n > 3 then ip, host = table.concat(parts, ":", 1, n - 2), parts[n - 1] end
  local proto = "tcp"
  local pp = split(container, "/")
  if container == "" or pp[1] == "" then container = ""
  elseif #pp > 1 then
    container = pp[1]
    if pp[2] ~= "" then proto = pp[2] end
  end
  if ip:sub(1, 1) == "[" then
    local inner = ip:match("^%[([^%[%]]*)%]$")
    if not inner then return false end
    ip = inner
  end
  if ip ~= "" and not ip_ok(ip) then return false end
  if container == "" then return false end
  local cs, ce = port_range(container)
  if not cs then return false end
  if host ~= "" then
    local hs, he = port_range(host)
    if not hs then return false end
    if ce - cs ~= he - hs and ce ~= cs then return false end
  end
  proto = proto:lower()
  return proto == "tcp" or proto == "udp" or proto == "sctp"
end

-- Shortest decimal form of a float (what Go's encoder prints).
local function shortest(x)
  for digits = 1, 17 do
    local s = string.format("%." .. digits .. "g", x)
    if tonumber(s) == x then return s end
  end
  return string.format("%.17g", x)
end

-- Docker hands a number to the ports check as a fraction and checks its
-- numerator: 80 -> "80", 80.5 = 161/2 -> "161".
local function numerator(x)
  if math.type(x) == "integer" or is_uint64(x) then return tostring(x) end
  if x == math.floor(x) then
    local i = math.tointeger(x)
    return i and tostring(i) or string.format("%.0f", x)
  end
  local s = shortest(x)
  local sign, int, frac, exp = s:match("^(%-?)(%d*)%.?(%d*)[eE]?([-+]?%d*)$")
  if not int then return "x" end
  local digits = (int .. frac):gsub("^0+", "")
  local e = (tonumber(exp) or 0) - #frac
  local d = tonumber(digits)
  if not d or e >= 0 then return "x" end
  local k = -e
  for _, p in ipairs({ 2, 5 }) do
    local used = 0
    while used < k and d % p == 0 do d, used = d // p, used + 1 end
  end
  return sign .. tostring(math.tointeger(d) or d)
end

function M.ports_ok(v)
  if type(v) == "number" or is_uint64(v) then return port_spec_ok(numerator(v)) end
  if type(v) == "string" then return port_spec_ok(v) end
  return false
end

local FORMATS = {
  duration = M.duration_ok,
  ports = M.ports_ok,
  expose = function() return true end,
}

---------------------------------------------------------------------------
-- Key classes of the rules (docker's key patterns)

local KEY_CLASSES = {
  name = function(k) return k:find("^[a-zA-Z0-9._-]+$") ~= nil end,  -- service, volume, ... names
  x = function(k) return k:sub(1, 2) == "x-" end,                    -- extension fields
  text = function(k) return k ~= "" and not k:find("\n", 1, true) end, -- one non-empty line
  some = function(k) return k:find("[^\n]") ~= nil end,               -- anything but newlines only
  lower = function(k) return k:find("^[a-z]+$") ~= nil end,           -- ulimit names
}
M.KEY_CLASSES = KEY_CLASSES

---------------------------------------------------------------------------
-- Equality of list elements, as docker compares them (through JSON: all
-- numbers as doubles, invalid UTF-8 bytes as U+FFFD).

local json_text = require("slipway.json").replace_invalid_utf8

local canon
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

canon = function(v)
  local k = kind_of(v)
  if k == "string" then local s = json_text(v) return "s" .. #s .. ":" .. s end
  if is_uint64(v) then return "n" .. tostring(v) end
  if k == "integer" or k == "number" then return "n" .. string.format("%.17g", v + 0.0) end
  if k == "boolean" then return v and "T" or "F" end
  if k == "null" then return "N" end
  if k == "list" then
    local parts = {}
    for i = 1, #v do parts[i] = canon(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local parts = {}
  for _, key in ipairs(sorted_keys(v)) do
    local s = json_text(tostring(key))
    parts[#parts + 1] = #s .. ":" .. s .. "=" .. canon(v[key])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Key of a list element for the uniqueness check (only canon() of a
-- string starts with "s").
local function unique_key(x)
  if type(x) == "string" then return "s" .. json_text(x) end
  return canon(x)
end

---------------------------------------------------------------------------
-- The walk. It mirrors how gojsonschema visits a document so that the
-- same problem is reported: `res` collects problems in visiting order and
-- a score (how much matched), which decides which failed alternative's
-- problems are reported.

local JSON_NAME = { mapping = "object", list = "array" }

-- st = {order = fn(t) -> keys, segs = {...}, n = depth}: the keys from the
-- root to the value being walked live in st.segs, so a path string is only
-- built when there is a problem to report.
local function push(st, res, what, holder, key, detail)
  local e = detail or {}
  e.what, e.holder, e.key = what, holder, key
  e.path = st.n == 0 and "" or "." .. table.concat(st.segs, ".", 1, st.n)
  res.errs[#res.errs + 1] = e
  res.score = res.score - 2
end

local function merge(res, sub)
  for _, e in ipairs(sub.errs) do res.errs[#res.errs + 1] = e end
  res.score = res.score + sub.score
end

local walk

-- walk the child v[k] (list index shown 0-based, as docker does)
local function child(st, rule, v, k, shown, res)
  local n = st.n + 1
  st.n, st.segs[n] = n, shown
  walk(st, rule, v[k], res, v, k)
  st.n = n - 1
end

local function walk_alternatives(st, rule, v, res, holder, key)
  local valid, best = 0, nil
  for _, alt in ipairs(rule.either) do
    local sub = { errs = {}, score = 0 }
    walk(st, alt, v, sub, holder, key)
    if #sub.errs == 0 then
      valid = valid + 1
    elseif valid == 0 and (best == nil or sub.score > best.score) then
      best = sub
    end
  end
  if valid ~= 1 then
    push(st, res, "oneof", holder, key)
    if valid == 0 then merge(res, best) end
  end
end

local function walk_list(st, rule, v, res)
  local item = rule.item
  if item then
    for i = 1, #v do
      local sub = { errs = {}, score = 0 }
      child(st, item, v, i, i - 1, sub)
      merge(res, sub)
    end
  end
  if rule.unique then
    local seen = {}
    for j = 1, #v do
      local x = v[j]
      local c = unique_key(x)
      if seen[c] then push(st, res, "unique", v, j, { i = seen[c] - 1, j = j - 1 }) end
      seen[c] = j
    end
  end
  res.score = res.score + 1
end

local function walk_mapping(st, rule, v, res)
  local fields, classes = rule.fields, rule.keys
  if rule.need then
    for _, name in ipairs(rule.need) do
      if v[name] ~= nil then res.score = res.score + 1
      else push(st, res, "required", v, nil, { property = name }) end
    end
  end
  local keys = st.order(v)
  if classes or rule.closed then
    for _, k in ipairs(keys) do
      local matched = false
      if classes then
        for _, kc in ipairs(classes) do
          if KEY_CLASSES[kc[1]](k) then
            matched = true
            local sub = { errs = {}, score = 0 }
            child(st, kc[2], v, k, k, sub)
            merge(res, sub)
          end
        end
      end
      if matched then res.score = res.score + 1
      elseif rule.closed and not (fields and fields[k]) then
        push(st, res, "additional", v, k, { property = k })
      end
    end
  end
  res.score = res.score + 2 -- the object checks and the common checks
  if fields then
    for _, k in ipairs(keys) do
      local f = fields[k]
      if f then child(st, f, v, k, k, res) end
    end
  end
end

walk = function(st, rule, v, res, holder, key)
  local k = kind_of(v)
  local set = rule.kinds
  if set and not set[k] then
    push(st, res, "type", holder, key, { expected = rule.is, given = k })
    return
  end
  if rule.either then walk_alternatives(st, rule, v, res, holder, key) end
  if k == "list" then
    walk_list(st, rule, v, res)
    res.score = res.score + 3
  elseif k == "mapping" then
    walk_mapping(st, rule, v, res)
    res.score = res.score + 2
  elseif k == "string" then
    if rule.oneof then
      local found = false
      for _, s in ipairs(rule.oneof) do if s == v then found = true end end
      if not found then push(st, res, "enum", holder, key, { allowed = rule.oneof }) end
    end
    if rule.format and not FORMATS[rule.format](v) then
      push(st, res, "format", holder, key, { format = rule.format })
    end
    res.score = res.score + 4
  elseif k == "integer" or k == "number" then
    if rule.min and v < rule.min then push(st, res, "minimum", holder, key, { min = rule.min }) end
    if rule.format and not FORMATS[rule.format](v) then
      push(st, res, "format", holder, key, { format = rule.format })
    end
    res.score = res.score + 4
  else -- null, boolean
    res.score = res.score + 3
  end
end

-- The verdict alone, without the bookkeeping above: most documents are
-- valid, and only an invalid one needs the walk that picks the message.
local function valid(rule, v)
  local k = kind_of(v)
  local set = rule.kinds
  if set and not set[k] then return false end
  local alts = rule.either
  if alts then
    local n = 0
    for i = 1, #alts do if valid(alts[i], v) then n = n + 1 end end
    if n ~= 1 then return false end
  end
  if k == "mapping" then
    local fields, classes, closed = rule.fields, rule.keys, rule.closed
    if rule.need then
      for _, name in ipairs(rule.need) do if v[name] == nil then return false end end
    end
    for key, x in pairs(v) do
      local f = fields and fields[key]
      if f and not valid(f, x) then return false end
      local matched = false
      if classes then
        for i = 1, #classes do
          local kc = classes[i]
          if KEY_CLASSES[kc[1]](key) then
            matched = true
            if not valid(kc[2], x) then return false end
          end
        end
      end
      if closed and not f and not matched then return false end
    end
  elseif k == "list" then
    local item = rule.item
    if item then
      for i = 1, #v do if not valid(item, v[i]) then return false end end
    end
    if rule.unique then
      local seen = {}
      for i = 1, #v do
        local x = v[i]
        local c = unique_key(x)
        if seen[c] then return false end
        seen[c] = true
      end
    end
  elseif k == "string" then
    if rule.oneof then
      local found = false
      for _, s in ipairs(rule.oneof) do if s == v then found = true end end
      if not found then return false end
    end
    if rule.format and not FORMATS[rule.format](v) then return false end
  elseif k == "integer" or k == "number" then
    if rule.min and v < rule.min then return false end
    if rule.format and not FORMATS[rule.format](v) then return false end
  end
  return true
end

---------------------------------------------------------------------------
-- Picking and wording the reported problem (docker's getMostSpecificError)

local function field_of(e)
  local p = e.path
  if p == "" then return "(root)" end
  return p:sub(2)
end

local function depth(e)
  local n = 1
  for _ in field_of(e):gmatch("%.") do n = n + 1 end
  return n
end

local function type_list(is)
  local names = {}
  for i, k in ipairs(is) do names[i] = JSON_NAME[k] or k end
  if #names == 1 then return names[1] end
  return "[" .. table.concat(names, ",") .. "]"
end

local function human(is)
  if #is == 1 then return is[1] end
  return table.concat(is, ", ", 1, #is - 1) .. " or " .. is[#is]
end

local function quoted_list(xs)
  local out = {}
  for i, s in ipairs(xs) do out[i] = '"' .. s .. '"' end
  return table.concat(out, ", ")
end

-- gojsonschema's own wording of a problem
local function describe(e)
  local w = e.what
  if w == "type" then
    return ("Invalid type. Expected: %s, given: %s"):format(type_list(e.expected), JSON_NAME[e.given] or e.given)
  elseif w == "oneof" then return "Must validate one and only one schema (oneOf)"
  elseif w == "required" then return e.property .. " is required"
  elseif w == "additional" then return "Additional property " .. e.property .. " is not allowed"
  elseif w == "enum" then return field_of(e) .. " must be one of the following: " .. quoted_list(e.allowed)
  elseif w == "format" then return "Does not match format '" .. e.format .. "'"
  elseif w == "unique" then return ("array items[%d,%d] must be unique"):format(e.i, e.j)
  elseif w == "minimum" then return "Must be greater than or equal to " .. string.format("%.10g", e.min)
  end
  return w
end

local function pick_error(errs)
  local most = 1
  for i, e in ipairs(errs) do
    local d, dm = depth(e), depth(errs[most])
    if d > dm or (d == dm and e.what == "type" and errs[most].what ~= "type") then most = i end
  end
  local parent, inner = errs[most], nil
  if most < #errs and parent.what == "oneof" then inner = errs[most + 1] end
  local text
  if parent.what == "type" then text = "must be a " .. human(parent.expected)
  elseif parent.what == "oneof" then text = inner and describe(inner) or describe(parent)
  else text = describe(parent) end
  return parent, field_of(parent) .. " " .. text
end

---------------------------------------------------------------------------
-- Positions and key order

local function position(pos, holder, key)
  if not pos then return nil end
  local p = holder ~= nil and pos[holder]
  if p and key ~= nil then
    local kp = p.keys and p.keys[key]
    if kp then return kp end
    local v = holder[key]
    if type(v) == "table" and pos[v] then return pos[v] end
  end
  return p or nil
end

local function fail(pos, filename, holder, key, msg)
  local at = position(pos, holder, key)
  local prefix = ""
  if at and at.line then
    prefix = ("%s:%d:%d: "):format(filename or "<compose>", at.line, at.col or 1)
  elseif filename then
    prefix = filename .. ": "
  end
  return nil, prefix .. msg, "ESCHEMA"
end

-- Keys of a mapping in file order when positions are known, else sorted.
local function key_order(pos)
  return function(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    local p = pos and pos[t]
    local kp = p and p.keys
    table.sort(keys, function(a, b)
      local pa, pb = kp and kp[a], kp and kp[b]
      if pa and pb and (pa.line ~= pb.line or pa.col ~= pb.col) then
        if pa.line ~= pb.line then return pa.line < pb.line end
        return (pa.col or 0) < (pb.col or 0)
      end
      if (pa ~= nil) ~= (pb ~= nil) then return pa ~= nil end
      return tostring(a) < tostring(b)
    end)
    return keys
  end
end

-- Docker turns the document into JSON before validating: NaN and
-- infinities, and mappings with non-string keys, stop it there.
local function json_ok(v)
  local t = type(v)
  if t == "number" then return v == v and v ~= math.huge and v ~= -math.huge end
  if t == "table" then
    if is_list(v) then
      for i = 1, #v do if not json_ok(v[i]) then return false end end
      return true
    end
    for k, x in pairs(v) do
      if type(k) ~= "string" or not json_ok(x) then return false end
    end
    return true
  end
  return t == "string" or t == "boolean" or v == NULL or is_uint64(v)
end

local function json_problem(v, order)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "json: unsupported value: NaN" end
    if v == math.huge then return "json: unsupported value: +Inf" end
    if v == -math.huge then return "json: unsupported value: -Inf" end
    return nil
  elseif t == "table" then
    if is_list(v) then
      for i = 1, #v do
        local msg, h, k = json_problem(v[i], order)
        if msg then return msg, h or v, k or i end
      end
      return nil
    end
    for k in pairs(v) do
      if type(k) ~= "string" then return "json: unsupported type: map[interface {}]interface {}", v, k end
    end
    for _, k in ipairs(order(v)) do
      local msg, h, kk = json_problem(v[k], order)
      if msg then return msg, h or v, kk or k end
    end
    return nil
  elseif t == "string" or t == "boolean" or v == NULL or is_uint64(v) then
    return nil
  end
  return "json: unsupported type: " .. t
end

---------------------------------------------------------------------------
-- Versions

local compiled = {}

local function rules_for(version)
  local minor = version:match("^3%.(%d+)$")
  minor = minor and tonumber(minor)
  if not minor or minor > LAST or (version ~= "3." .. minor) then return nil end
  local r = compiled[minor]
  if not r then
    r = rules.compile(minor)
    add_kind_sets(r, {})
    compiled[minor] = r
  end
  return r
end

-- Go's %v of a YAML value, as docker prints the version it looked for.
local function go_text(v)
  local t = type(v)
  if v == nil or v == NULL then return "<nil>" end
  if t == "string" then return v end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "NaN" end
    if v == math.huge or v == -math.huge then return v > 0 and "+Inf" or "-Inf" end
    -- Go's %g with the shortest digits: exponent form below 1e-4 and from 1e6
    local e
    for p = 0, 16 do
      e = ("%." .. p .. "e"):format(v)
      if tonumber(e) == v then break end
    end
    local mant, exp = e:match("^(.-)e([-+]%d+)$")
    exp = tonumber(exp)
    if exp < -4 or exp >= 6 then return mant .. "e" .. (exp < 0 and "-" or "+") .. ("%02d"):format(math.abs(exp)) end
    local digits = #mant:gsub("[-.]", "")
    return ("%." .. math.max(0, digits - 1 - exp) .. "f"):format(v)
  end
  if t == "table" then
    if is_list(v) then
      local parts = {}
      for i = 1, #v do parts[i] = go_text(v[i]) end
      return "[" .. table.concat(parts, " ") .. "]"
    end
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = tostring(k) .. ":" .. go_text(v[k]) end
    return "map[" .. table.concat(parts, " ") .. "]"
  end
  return tostring(v)
end

local function normalize(s)
  if s == "" or s == "3" then return DEFAULT_VERSION end
  return s
end

function M.versions()
  local out = {}
  for m = 0, LAST do out[#out + 1] = "3." .. m end
  return out
end

-- The version docker reads from a raw dict (missing, "" or "3": 3.13).
function M.version_of(doc)
  if type(doc) ~= "table" or doc.version == nil then return DEFAULT_VERSION end
  return normalize(go_text(doc.version))
end

-- The value of a `version:` key -> the version it selects, or docker's
-- error for it.
function M.check_version(value)
  local v = value == nil and DEFAULT_VERSION or normalize(go_text(value))
  if not rules_for(v) then return nil, "unsupported Compose file version: " .. v, "ESCHEMA" end
  if value ~= nil and type(value) ~= "string" then return nil, "version must be a string", "ESCHEMA" end
  return v
end

---------------------------------------------------------------------------
-- Entry points

function M.check_forbidden(doc, pos, filename)
  local services = type(doc) == "table" and doc.services
  if type(services) ~= "table" or kind_of(services) ~= "mapping" then return true end
  local found = false
  for _, svc in pairs(services) do
    if type(svc) == "table" then
      for k in pairs(svc) do if rules.forbidden[k] then found = true end end
    end
  end
  if not found then return true end
  local order = key_order(pos)
  for _, name in ipairs(order(services)) do
    local svc = services[name]
    if type(svc) == "table" and kind_of(svc) == "mapping" then
      for _, k in ipairs(order(svc)) do
        if rules.forbidden[k] then
          return fail(pos, filename, svc, k, "Configuration contains forbidden properties")
        end
      end
    end
  end
  return true
end

-- opts.order: "file" (default: keys in file order when pos is given, else
-- by name) or "name" (always by name; the tests compare with a reference
-- that visits keys by name). It only decides which of several equally
-- deep problems is reported.
function M.validate(doc, version, pos, filename, opts)
  local order = key_order(pos)
  if opts ~= nil then
    for k in pairs(opts) do
      if k ~= "order" then error("schema.validate: unknown option " .. tostring(k), 2) end
    end
    if opts.order == "name" then order = key_order(nil)
    elseif opts.order ~= nil and opts.order ~= "file" then
      error("schema.validate: order must be \"file\" or \"name\"", 2)
    end
  end
  local ok, msg, code = M.check_forbidden(doc, pos, filename)
  if not ok then return ok, msg, code end
  version = normalize(version == nil and M.version_of(doc) or tostring(version))
  local root = rules_for(version)
  if not root then
    local vk = type(doc) == "table" and "version" or nil
    return fail(pos, filename, doc, vk, "unsupported Compose file version: " .. version)
  end
  if not json_ok(doc) then
    local problem, holder, key = json_problem(doc, order)
    return fail(pos, filename, holder, key, problem)
  end
  if valid(root, doc) then return true end
  -- Which problem docker reports depends on the order among equals: walk
  -- again in file (or name) order.
  local res = { errs = {}, score = 0 }
  walk({ order = order, segs = {}, n = 0 }, root, doc, res, nil, nil)
  assert(#res.errs > 0, "compose schema: verdicts disagree")
  local e, text = pick_error(res.errs)
  return fail(pos, filename, e.holder or (e.path == "" and doc or nil), e.key, text)
end

return M
