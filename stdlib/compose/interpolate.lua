-- slipway.compose.interpolate: `${VAR}` substitution the way docker/cli's
-- stack loader does it (cli/compose/template + interpolation), which is
-- narrower than the compose-spec text:
--   $$ -> $ ; $VAR ; ${VAR} ; ${VAR:-d} (unset or empty) ; ${VAR-d} (unset)
--   ${VAR:?msg} (unset or empty is an error) ; ${VAR?msg} (unset: error)
--   no nesting: the default/message runs to the first "}" ; the unbraced
--   form takes a modifier too ("$A-x" is "${A-x}") ; any other "$" is an
--   error naming the whole original string.
-- The modifier functions are tried in docker's order (":-", "-", ":?", "?")
-- on the whole expression, so "${A:?a-b}" is read as "${A:?a" with default
-- "b"... exactly as docker reads it. When several expressions fail, the
-- last one decides, as in docker.
--
-- interpolate(doc, lookup, ctx) walks a decoded compose file in place:
-- strings are substituted, and a string that changed is cast when its path
-- is one of the typed fields (replicas, ports.target, privileged, ...).
local convert = require("slipway.compose.convert")
local yaml = require("slipway.yaml")

local M = {}

local function partition(s, sep)
  local i = s:find(sep, 1, true)
  if not i then return s, "" end
  return s:sub(1, i - 1), s:sub(i + #sep)
end

-- Each returns value, applied, err_template.
local function soft_default(sub, lookup)
  if not sub:find(":-", 1, true) then return "", false end
  local name, default = partition(sub, ":-")
  local v = lookup(name)
  if v == nil or v == "" then return default, true end
  return v, true
end

local function hard_default(sub, lookup)
  if not sub:find("-", 1, true) then return "", false end
  local name, default = partition(sub, "-")
  local v = lookup(name)
  if v == nil then return default, true end
  return v, true
end

local function with_required(sep, nonempty)
  return function(sub, lookup)
    if not sub:find(sep, 1, true) then return "", false end
    local name, msg = partition(sub, sep)
    local v = lookup(name)
    if v == nil or (nonempty and v == "") then
      return "", true, ("required variable %s is missing a value: %s"):format(name, msg)
    end
    return v, true
  end
end

local FUNCS = { soft_default, hard_default, with_required(":?", true), with_required("?", false) }

-- The end of a variable name starting at j, or nil. docker's pattern is
-- (?i)[_a-z][_a-z0-9]* in Go, whose case folding also matches the two
-- non-ASCII letters that fold to ASCII ones: U+017F (long s) and U+212A
-- (Kelvin sign), so "$\u{17F}" is a variable there too.
local function name_end_at(s, j)
  local e = select(2, s:find("^[_%a][_%w]*", j))
  local k = (e or j - 1) + 1
  local b = s:byte(k)
  if b ~= 0xC5 and b ~= 0xE2 then return e end
  while true do
    if s:sub(k, k + 1) == "\xC5\xBF" then k = k + 2
    elseif s:sub(k, k + 2) == "\xE2\x84\xAA" then k = k + 3
    else break end
    k = select(2, s:find("^[_%w]*", k)) + 1
  end
  if k == j then return nil end
  return k - 1
end

-- The expression after "$" at position i (the character after "$"):
-- returns the substitution text and the index after the match, or nil for
-- docker's "invalid" alternative.
local function match_expr(s, i)
  local function name_and_modifier(j)
    local name_end = name_end_at(s, j)
    if not name_end then return nil end
    local k = name_end + 1
    local mod_start = k
    if s:sub(k, k) == ":" and s:sub(k + 1, k + 1):match("[-?]") then k = k + 2
    elseif s:sub(k, k):match("^[-?]$") then k = k + 1
    else return s:sub(j, name_end), name_end + 1 end
    local stop = s:find("}", k, true)
    local last = stop and stop - 1 or #s
    return s:sub(j, last), last + 1, mod_start
  end
  local c = s:sub(i, i)
  if c ~= "{" then
    local sub, after = name_and_modifier(i)     -- nil unless a name starts here
    return sub, after
  else
    local sub, after = name_and_modifier(i + 1)
    if sub and s:sub(after, after) == "}" then return sub, after + 1 end
  end
  return nil
end

-- substitute(template, lookup) -> text | nil, err_template
-- lookup(name) returns the value or nil when unset.
function M.substitute(template, lookup)
  if not template:find("$", 1, true) then return template end
  local out = {}
  local err = nil
  local i, n = 1, #template
  while i <= n do
    local d = template:find("$", i, true)
    if not d then out[#out + 1] = template:sub(i) break end
    out[#out + 1] = template:sub(i, d - 1)
    if template:sub(d + 1, d + 1) == "$" then
      out[#out + 1] = "$"
      i = d + 2
    else
      local sub, after = match_expr(template, d + 1)
      if not sub then
        err = template                      -- docker quotes the whole string
        i = d + 1
      else
        i = after
        local value, applied, e
        for _, f in ipairs(FUNCS) do
          value, applied, e = f(sub, lookup)
          if e or applied then break end
        end
        err = e
        if e then value = ""
        elseif not applied then value = lookup(sub) or "" end
        out[#out + 1] = value
      end
    end
  end
  if err then return nil, err end
  return table.concat(out)
end

---------------------------------------------------------------------------
-- Typed fields: docker casts a substituted string at these paths

local function to_int(s)
  local v, err = convert.atoi(s)
  if v == nil then return nil, err end
  return v
end
local function to_float(s) return convert.parse_float(s) end
local function to_bool(s) return convert.to_boolean(s) end

local CASTS = {}
local function cast(caster, ...) CASTS[#CASTS + 1] = { parts = { ... }, cast = caster } end
local function svc(caster, ...) cast(caster, "services", "*", ...) end
svc(to_int, "configs", "[]", "mode")
svc(to_int, "secrets", "[]", "mode")
svc(to_int, "healthcheck", "retries")
svc(to_bool, "healthcheck", "disable")
svc(to_int, "deploy", "replicas")
svc(to_int, "deploy", "update_config", "parallelism")
svc(to_float, "deploy", "update_config", "max_failure_ratio")
svc(to_int, "deploy", "rollback_config", "parallelism")
svc(to_float, "deploy", "rollback_config", "max_failure_ratio")
svc(to_int, "deploy", "restart_policy", "max_attempts")
svc(to_int, "deploy", "placement", "max_replicas_per_node")
svc(to_int, "ports", "[]", "target")
svc(to_int, "ports", "[]", "published")
svc(to_int, "ulimits", "*")
svc(to_int, "ulimits", "*", "hard")
svc(to_int, "ulimits", "*", "soft")
svc(to_bool, "privileged")
svc(to_int, "oom_score_adj")
svc(to_bool, "read_only")
svc(to_bool, "stdin_open")
svc(to_bool, "tty")
svc(to_bool, "volumes", "[]", "read_only")
svc(to_bool, "volumes", "[]", "volume", "nocopy")
for _, section in ipairs({ "networks", "volumes", "secrets", "configs" }) do
  cast(to_bool, section, "*", "external")
end
cast(to_bool, "networks", "*", "internal")
cast(to_bool, "networks", "*", "attachable")

-- docker matches on the dotted path split at every ".", so a key that
-- contains a dot never matches a pattern (it adds parts).
local function caster_for(path)
  local parts = {}
  for p in (path .. "."):gmatch("(.-)%.") do parts[#parts + 1] = p end
  for _, c in ipairs(CASTS) do
    if #c.parts == #parts then
      local ok = true
      for i, p in ipairs(c.parts) do
        if p ~= "*" and p ~= parts[i] then ok = false break end
      end
      if ok then return c.cast end
    end
  end
  return nil
end
M.caster_for = caster_for

---------------------------------------------------------------------------
-- Walking a document

-- ctx: { lookup = fn, fail = fn(holder, key, msg) -> raises }
-- The path of the current node is kept as a stack of parts and joined only
-- when it is needed (a substitution changed the string, or an error).
local parts, depth = {}, 0

local function walk(v, holder, key, ctx)
  if type(v) == "string" then
    if not v:find("$", 1, true) then return v end
    local out, err = M.substitute(v, ctx.lookup)
    local path = table.concat(parts, ".", 1, depth)
    if not out then
      ctx.fail(holder, key, ("invalid interpolation format for %s: %s; you may need to escape any $ with another $")
        :format(path, convert.quote(err)))
    end
    if out == v then return v end
    local c = caster_for(path)
    if not c then return out end
    local casted, cerr = c(out)
    if casted == nil then
      ctx.fail(holder, key, ("error while interpolating %s: failed to cast to expected type: %s"):format(path, cerr))
    end
    return casted
  end
  if type(v) ~= "table" then return v end
  depth = depth + 1
  if getmetatable(v) == yaml.array_mt then
    parts[depth] = "[]"
    for i = 1, #v do v[i] = walk(v[i], v, i, ctx) end
  else
    for _, k in ipairs(yaml.keys(v)) do
      parts[depth] = tostring(k)
      v[k] = walk(v[k], v, k, ctx)
    end
  end
  depth = depth - 1
  return v
end

-- interpolate(doc, ctx): in place, over every top-level key (x-* too).
function M.interpolate(doc, ctx)
  depth = 0
  for _, k in ipairs(yaml.keys(doc)) do
    parts[1] = tostring(k)
    depth = 1
    doc[k] = walk(doc[k], doc, k, ctx)
  end
  depth = 0
  return doc
end

return M
