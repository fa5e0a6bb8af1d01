-- slipway.pipeline.params: pipeline parameters, declared in deploy.lua and
-- set from the command line and the environment.
--
--   param.choice("environment", { "production", "staging" }, "production")
--   param.bool("deploy_frontend", true, "also deploy the web app")
--   param.string("region", "eu-west-1")
--   param.number("replicas", 2)
--   param.list("services", { "api", "worker" })   -- -p services=api,web
--   param.secret("deploy_token", { from = "cmd", cmd = "op read op://ci/deploy" })
--
-- The last argument may be a description string or a table
-- { description = "..." }. A parameter without a default (other than bool,
-- which defaults to false) is required. Values come from, strongest first:
-- `-p name=value`, `--env NAME` (the parameter `environment`),
-- SLIPWAY_PARAM_<NAME> (upper case, '-' as '_'), the default. Every value
-- is checked before anything runs; a bad one names the declaration line.
--
-- param.secret's value is a slipway.Secret (prints as ***, masked in all
-- output, shown as *** in plans, events and records). Its table takes,
-- besides description, the options of secret() (slipway.secrets): given
-- `from`, a parameter set neither by -p nor by SLIPWAY_PARAM_<NAME> is
-- resolved like secret(name, opts); without it, it is required, unless
-- optional = true (then false when not set). Messages never show its value.
local words = require("slipway.words")

local M = {}

local KINDS = { choice = true, bool = true, string = true, number = true, list = true, secret = true }
local SECRET_OPTIONS = { description = true, from = true, path = true, key = true, cmd = true, timeout = true,
                         optional = true }

-- Parsers: text (from the command line or environment) -> value | nil, why.
local TRUE = { ["true"] = true, yes = true, ["1"] = true, on = true }
local FALSE = { ["false"] = true, no = true, ["0"] = true, off = true }

-- Not NaN, not infinite: "1e400" reads as inf, which nothing downstream
-- (JSON records, arithmetic, durations) can use.
local function finite(n)
  return n == n and n ~= math.huge and n ~= -math.huge
end

local function parse_text(p, text)
  if p.kind == "bool" then
    local l = text:lower()
    if TRUE[l] then return true end
    if FALSE[l] then return false end
    return nil, "expected true or false (also yes/no, 1/0, on/off)"
  elseif p.kind == "number" then
    local n = tonumber(text)
    if n == nil then return nil, "expected a number" end
    if not finite(n) then return nil, "expected a finite number (" .. text .. " does not fit)" end
    return n
  elseif p.kind == "list" then
    local items = {}
    for item in text:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then items[#items + 1] = item end
    end
    return items
  elseif p.kind == "choice" then
    for _, c in ipairs(p.choices) do
      if tostring(c) == text then return c end
    end
    return nil, "expected one of " .. table.concat(p.choices_text, ", ")
  end
  return text
end

-- Check a value given in Lua (a default): the right type for its kind.
local function check_value(p, v)
  local k = p.kind
  if k == "bool" then
    if type(v) ~= "boolean" then return nil, "expected a boolean" end
  elseif k == "number" then
    if type(v) ~= "number" then return nil, "expected a number" end
    if not finite(v) then return nil, "expected a finite number" end
  elseif k == "string" then
    if type(v) ~= "string" then return nil, "expected a string" end
  elseif k == "list" then
    if type(v) ~= "table" then return nil, "expected a list" end
    for i, item in ipairs(v) do
      if type(item) ~= "string" and type(item) ~= "number" then
        return nil, ("expected a list of strings (item %d is a %s)"):format(i, type(item))
      end
    end
  elseif k == "choice" then
    for _, c in ipairs(p.choices) do
      if c == v then return v end
    end
    return nil, "expected one of " .. table.concat(p.choices_text, ", ")
  end
  return v
end

-- A new, empty set of parameter declarations for one pipeline.
-- `where()` returns {file, line} of the declaring call.
function M.new_set(where)
  local set = { list = {}, by_name = {} }

  local function declare(kind, name, choices, default, extra)
    local loc = where()
    local function fail(msg)
      error({ input_error = ("%s:%d: %s"):format(loc.file, loc.line, msg) }, 0)
    end
    local fname = "param." .. kind
    if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") then
      fail(("%s: the first argument must be a parameter name (letters, digits, _ and -), got %s")
        :format(fname, type(name) == "string" and ("'" .. name .. "'") or type(name)))
    end
    if set.by_name[name] then
      local prev = set.by_name[name]
      fail(("%s: parameter '%s' is already declared at %s:%d"):format(fname, name, prev.file, prev.line))
    end
    local description
    if type(extra) == "string" then
      description = extra
    elseif type(extra) == "table" then
      for k in pairs(extra) do
        if k ~= "description" and not (kind == "secret" and SECRET_OPTIONS[k]) then
          fail(("%s: unknown option '%s' (valid: %s)"):format(fname, tostring(k), kind == "secret"
            and "description, from, path, key, cmd, timeout, optional" or "description"))
        end
      end
      description = extra.description
    elseif extra ~= nil then
      fail(("%s: the last argument must be a description string or { description = ... }, got %s")
        :format(fname, type(extra)))
    end
    local p = { name = name, kind = kind, description = description, file = loc.file, line = loc.line }
    if kind == "choice" then
      if type(choices) ~= "table" or #choices == 0 then
        fail(("param.choice: '%s' needs a non-empty list of choices as its second argument"):format(name))
      end
      p.choices, p.choices_text = {}, {}
      for i, c in ipairs(choices) do
        if type(c) ~= "string" and type(c) ~= "number" then
          fail(("param.choice: '%s': choice %d is a %s (expected strings)"):format(name, i, type(c)))
        end
        p.choices[i], p.choices_text[i] = c, tostring(c)
      end
    end
    if kind == "secret" and type(extra) == "table" then
      local source = {}
      for k, v in pairs(extra) do
        if k ~= "description" then source[k] = v end
      end
      local ok, why = require("slipway.secrets")._check(name, source)
      if not ok then fail(("%s: '%s': %s"):format(fname, name, why)) end
      if source.from then p.source = source end
      p.optional = source.optional
    end
    if default == nil and kind == "bool" then default = false end
    if default ~= nil then
      local ok, why = check_value(p, default)
      if ok == nil then
        fail(("%s: '%s': bad default %s: %s"):format(fname, name, M.show(default), why))
      end
      p.default = default
    end
    p.required = default == nil and not p.source and not p.optional
    set.list[#set.list + 1] = p
    set.by_name[name] = p
    return p
  end

  local api = {}
  function api.choice(name, choices, default, extra) return declare("choice", name, choices, default, extra) end
  function api.bool(name, default, extra) return declare("bool", name, nil, default, extra) end
  function api.string(name, default, extra) return declare("string", name, nil, default, extra) end
  function api.number(name, default, extra) return declare("number", name, nil, default, extra) end
  function api.list(name, default, extra) return declare("list", name, nil, default, extra) end
  function api.secret(name, extra) return declare("secret", name, nil, nil, extra) end
  set.api = setmetatable(api, {
    __index = function(_, k)
      local kinds, valid = {}, {}
      for kind in pairs(KINDS) do kinds[#kinds + 1] = kind end
      table.sort(kinds)
      for i, kind in ipairs(kinds) do valid[i] = "param." .. kind end
      local best = words.closest(k, kinds)
      error(("param.%s: no such parameter kind%s (valid: %s)"):format(tostring(k),
        best and (" (did you mean 'param." .. best .. "'?)") or "", table.concat(valid, ", ")), 2)
    end,
  })
  return set
end

-- How a value is shown in messages and plans.
function M.show(v)
  if type(v) == "table" then
    local parts = {}
    for i, item in ipairs(v) do parts[i] = tostring(item) end
    return "[" .. table.concat(parts, ",") .. "]"
  elseif type(v) == "string" then
    return "'" .. v .. "'"
  end
  return tostring(v)
end

local function env_name(name)
  return "SLIPWAY_PARAM_" .. name:upper():gsub("%-", "_")
end
M.env_name = env_name

local function names(set)
  local list = {}
  for i, p in ipairs(set.list) do list[i] = p.name end
  return list
end

local function names_of(set)
  local list = names(set)
  return #list > 0 and table.concat(list, ", ") or "(none declared)"
end

-- guarded(values, set) -> a copy of values (from resolve) for task, `when`
-- and matrix functions: reading a name no parameter of set declares raises
-- (naming the declared ones) instead of giving nil, so that a typo in
-- `p.deploy_frontnd` fails where it is written rather than quietly making
-- a condition false. Every declared parameter has a value, so a present
-- name never reaches the check.
function M.guarded(values, set)
  local copy = {}
  for k, v in pairs(values) do copy[k] = v end
  return setmetatable(copy, {
    __index = function(_, name)
      error(("unknown parameter '%s'%s; valid parameters: %s")
        :format(tostring(name), words.did_you_mean(name, names(set)), names_of(set)), 2)
    end,
  })
end

-- The value of secret parameter p: text given (-p, SLIPWAY_PARAM_*, named
-- by `given`) or resolved from its source; false when optional and not
-- there. Raises {input_error = msg}; no message shows the value.
local function resolve_secret(p, text, given)
  local secrets = require("slipway.secrets")
  local function fail(msg)
    error({ input_error = ("%s:%d: parameter '%s': %s"):format(p.file, p.line, p.name, msg) }, 0)
  end
  if text ~= nil then
    if #text < secrets.MIN_LENGTH then
      fail(("the value from %s is %s long; a secret must be %d or more (masking so short a value would "
        .. "hide ordinary text everywhere)"):format(given, words.count(#text, "character"), secrets.MIN_LENGTH))
    end
    return secrets.new(text, p.name)
  end
  if p.source then
    local s, why, missing = secrets._lookup(p.name, p.source)
    if s then return s end
    if not (missing and p.optional) then fail(why) end
    return false
  end
  if p.optional then return false end
  fail(("a secret is required: set %s (or -p %s=VALUE, which other users can see in the process list)")
    :format(env_name(p.name), p.name))
end

-- resolve(set, settings, opts) -> values | raises {input_error = msg}
-- settings: list of { name =, value = text, origin = "-p name=value" }
-- in command-line order (later wins). opts.getenv (default os.getenv),
-- opts.environ: list of "NAME=value" strings to look for SLIPWAY_PARAM_*
-- names nobody declared; opts.file: the pipeline's file for messages.
function M.resolve(set, settings, opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local file = opts.file or "deploy.lua"
  local first = set.list[1]
  local function where_decls()
    if first then return ("%s:%d: "):format(first.file, first.line) end
    return file .. ": "
  end
  local function fail(msg)
    error({ input_error = msg }, 0)
  end

  local given = {}
  for _, s in ipairs(settings or {}) do
    local p = set.by_name[s.name]
    if p == nil then
      fail(("%sunknown parameter '%s' (%s)%s; valid parameters: %s")
        :format(where_decls(), s.name, s.origin, words.did_you_mean(s.name, names(set)), names_of(set)))
    end
    given[s.name] = s
  end
  for _, entry in ipairs(opts.environ or {}) do
    local suffix = entry:match("^SLIPWAY_PARAM_([^=]+)=")
    if suffix then
      local known, suffixes = false, {}
      for i, p in ipairs(set.list) do
        suffixes[i] = env_name(p.name):sub(15)
        if suffixes[i] == suffix then known = true end
      end
      if not known then
        local best = words.closest(suffix, suffixes)
        fail(("%sunknown parameter in the environment: SLIPWAY_PARAM_%s%s; valid parameters: %s")
          :format(where_decls(), suffix, best and (" (did you mean 'SLIPWAY_PARAM_" .. best .. "'?)") or "",
            names_of(set)))
      end
    end
  end

  local values = {}
  for _, p in ipairs(set.list) do
    local s = given[p.name]
    local text, origin
    if s then
      text, origin = s.value, s.origin
    else
      local ev = getenv(env_name(p.name))
      if ev ~= nil then text, origin = ev, env_name(p.name) .. "=" .. ev end
    end
    if p.kind == "secret" then
      values[p.name] = resolve_secret(p, text, s and ("-p " .. p.name) or env_name(p.name))
    elseif text ~= nil then
      local v, why = parse_text(p, text)
      if v == nil then
        fail(("%s:%d: parameter '%s': bad value '%s' (from %s): %s")
          :format(p.file, p.line, p.name, text, origin, why))
      end
      values[p.name] = v
    elseif p.required then
      fail(("%s:%d: parameter '%s' is required: set it with -p %s=VALUE or %s")
        :format(p.file, p.line, p.name, p.name, env_name(p.name)))
    else
      values[p.name] = p.default
    end
  end
  return values
end

return M
