-- slipway.pipeline.cache: cached tasks.
--
--   task("build", { inputs = { "src/**", "Dockerfile", "!src/**/*.md" }, cache = true }, fn)
--
-- A cached task's key is a SHA-256 over: its inputs (the files the
-- patterns select, relative to the pipeline file's directory, with their
-- contents: slipway._inputs, src/inputs.c; mtimes never count), its
-- declaration (its options and its function's bytecode, stripped of line
-- numbers, with the functions and plain values it reaches through
-- upvalues), the matrix item, the parameters and env() values it read when
-- it last ran (their current values), and slipway's version. When the key
-- equals the one the last successful run of the task recorded (its row in
-- the newest release of the pipeline and environment whose status is
-- success and where the task itself succeeded), the task is not run: its
-- status is "up_to_date" and the result that run recorded is its result.
-- A task whose result cannot be recorded as it is (a function, a secret)
-- records no key.
--
--   cache.check_declaration(t, opts, fail)   at declaration (lua/pipeline/dsl.lua)
--   cache.check_force(def, force) -> nil | message   (--force=TASK,..)
--   cache.new(def, values, store, force) -> c   (reads the ledger; in a task)
--   c:check(u) -> true when u is up to date (u.result: the recorded result);
--                 else u.cache_miss says why, and u's reads are recorded
--   c:values_for(u) -> the parameters u's function gets (reads recorded)
--   c:finished(u)   (u.status set) -> u.cache_row, the task row's `cache`
--   c:status(t, item, label) -> up_to_date, why    (`slipway plan`)
--   (env() records the variables a unit reads in u.reads.env: stdlib/env.lua)
local hash = require("slipway.hash")
local json = require("slipway.json")
local context = require("slipway.context")

local M = {}

local KEY_VERSION = "slipway-task-cache/1"   -- bump when what the key covers changes

---------------------------------------------------------------- declaring

-- Check `inputs` and `cache` of task t (fail(file, line, msg) raises).
function M.check_declaration(t, opts, fail)
  local name, file, line = t.name, t.file, t.line
  if opts.cache ~= nil and type(opts.cache) ~= "boolean" then
    fail(file, line, ("task '%s': cache must be true or false, got %s"):format(name, type(opts.cache)))
  end
  local inputs = opts.inputs
  if inputs ~= nil then
    if type(inputs) ~= "table" or getmetatable(inputs) ~= nil then
      fail(file, line, ("task '%s': inputs must be a list of file patterns like { \"src/**\", \"Dockerfile\" }, got %s")
        :format(name, type(inputs)))
    end
    local n = #inputs
    for k in pairs(inputs) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        fail(file, line, ("task '%s': inputs must be a list of file patterns, not a table with the key %s")
          :format(name, tostring(k)))
      end
    end
    for i, p in ipairs(inputs) do
      if type(p) ~= "string" then
        fail(file, line, ("task '%s': inputs[%d] must be a file pattern (a string), got %s"):format(name, i, type(p)))
      end
      local body = p:match("^%s*!?%s*(.-)%s*$")
      if body == "" then
        fail(file, line, ("task '%s': inputs[%d] is an empty pattern"):format(name, i))
      end
      if body:sub(1, 1) == "/" then
        fail(file, line, ("task '%s': inputs[%d] '%s': patterns are relative to the pipeline's directory, not absolute")
          :format(name, i, p))
      end
      -- ".." that leads out of the pipeline's directory (after cleaning)
      local depth = 0
      for part in body:gmatch("[^/]+") do
        if part == ".." then depth = depth - 1 elseif part ~= "." then depth = depth + 1 end
        if depth < 0 then
          fail(file, line, ("task '%s': inputs[%d] '%s' leads out of the pipeline's directory (inputs are files of the project)")
            :format(name, i, p))
        end
      end
    end
  end
  if opts.cache and opts.finally then
    fail(file, line, ("task '%s': a finally task always runs: it cannot be cached"):format(name))
  end
  if inputs ~= nil and not opts.cache then
    fail(file, line, ("task '%s': inputs are the files a cached task's key covers: add cache = true"):format(name))
  end
  t.cache = opts.cache or nil
  t.inputs = inputs
end

function M.check_force(def, force)
  if type(force) ~= "table" then return nil end
  for _, n in ipairs(force) do
    if not def.by_name[n] then
      local names = {}
      for _, t in ipairs(def.tasks) do names[#names + 1] = t.name end
      return ("--force: no task '%s'%s"):format(n, require("slipway.words").did_you_mean(n, names))
    end
  end
  return nil
end

---------------------------------------------------------------- the key

-- A canonical text of a value (sorted keys; secrets as ***, as the
-- records keep them: a key must not let anyone guess a short secret).
local function canonical(v, out, depth)
  local tv = type(v)
  if depth > 20 then out[#out + 1] = "…" return end
  if tv == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
      return type(a) < type(b)
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      canonical(k, out, depth + 1)
      out[#out + 1] = "="
      canonical(v[k], out, depth + 1)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif tv == "string" then
    out[#out + 1] = ("%q"):format(require("slipway.secret").mask(v))
  elseif tv == "number" or tv == "boolean" or tv == "nil" then
    out[#out + 1] = tostring(v)
  elseif tv == "function" then
    local ok, code = pcall(string.dump, v, true)
    out[#out + 1] = ok and ("fn:" .. hash.sha256(code)) or "fn:?"
  else
    out[#out + 1] = tostring(v):match("^[^:]*")     -- a Secret, userdata: its kind only
  end
end

local function text_of(v)
  local out = {}
  canonical(v, out, 0)
  return table.concat(out)
end
M._text_of = text_of

-- The code of fn as the key sees it: its bytecode without line numbers,
-- and what it reaches through upvalues: functions (recursively) and plain
-- values (strings, numbers, booleans); tables are not followed.
local function code_of(fn, out, seen)
  if seen[fn] then return end
  seen[fn] = true
  local ok, code = pcall(string.dump, fn, true)
  out[#out + 1] = ok and code or "?"
  for i = 1, 255 do
    local name, v = debug.getupvalue(fn, i)
    if name == nil then break end
    local tv = type(v)
    if tv == "function" then
      out[#out + 1] = "\0up:" .. name .. "\0"
      code_of(v, out, seen)
    elseif tv == "string" or tv == "number" or tv == "boolean" then
      out[#out + 1] = "\0up:" .. name .. "\0" .. text_of(v)
    end
  end
end

-- The declaration's digest: options and code.
local function declaration_digest(t)
  local parts = { "options", text_of({
    needs = t.needs, inputs = t.inputs, timeout_ms = t.timeout_ms, retries = t.retries, backoff_ms = t.backoff_ms,
    continue_on_error = t.continue_on_error, verifies = t.verifies, matrix = type(t.matrix) == "table" and t.matrix or nil,
    when = t.when, rollback = t.rollback, cache = t.cache,
  }), "code" }
  code_of(t.fn, parts, {})
  return hash.sha256(table.concat(parts, "\0"))
end

local function sorted(set)
  local list = {}
  for k in pairs(set or {}) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function env_digest(names)
  local parts = {}
  for _, n in ipairs(names) do
    parts[#parts + 1] = n .. "=" .. text_of(os.getenv(n))
  end
  return hash.sha256(table.concat(parts, "\0"))
end

-- The key from its parts (every field NUL-separated, named).
local function key_of(p, values)
  local parts = { KEY_VERSION, "version", p.version, "declaration", p.declaration, "item", p.item or "",
                  "inputs", p.inputs_digest or "" }
  for _, n in ipairs(p.params) do
    parts[#parts + 1] = "param"
    parts[#parts + 1] = n .. "=" .. text_of(rawget(values, n))
  end
  parts[#parts + 1] = "env"
  parts[#parts + 1] = p.env_digest
  return hash.sha256(table.concat(parts, "\0"))
end

---------------------------------------------------------------- the run

local Cache = {}
Cache.__index = Cache

-- The rows of the last successful run of each unit: from the newest
-- release with status success in which the unit succeeded (ok or up to
-- date) and recorded a key.
local function last_rows(releases)
  local rows = {}
  for _, rec in ipairs(releases or {}) do
    if rec.status == "success" then
      for _, row in ipairs(rec.tasks or {}) do
        if rows[row.name] == nil and (row.status == "ok" or row.status == "up_to_date") then
          rows[row.name] = row.cache and row.cache.key and { row = row, release = rec } or false
        end
      end
    end
  end
  return rows
end

function M.new(def, values, store, force)
  local c = setmetatable({ def = def, values = values, force = force, dir = def.file:match("^(.*)/[^/]*$") or ".",
                           version = require("slipway.version").slipway, declarations = {}, rows = {} }, Cache)
  if type(force) == "table" then
    c.force = {}
    for _, n in ipairs(force) do c.force[n] = true end
  end
  if store then
    local ledger = require("slipway.ledger")
    local plain = {}        -- (values may be the guarded table: params.guarded)
    for k, v in pairs(values) do plain[k] = v end
    local releases, err = ledger.read(store, { pipeline = ledger.pipeline_name(def),
                                               environment = ledger.environment(plain) })
    if not releases then c.read_error = tostring(err) end
    c.rows = last_rows(releases)
  end
  return c
end

function Cache:declaration(t)
  local d = self.declarations[t.name]
  if d == nil then
    d = declaration_digest(t)
    self.declarations[t.name] = d
  end
  return d
end

-- The parts of the key of task t (item: the matrix item, or nil) that do
-- not depend on what it reads: -> parts | nil, why
function Cache:parts(t, item, label)
  local p = { version = self.version, declaration = self:declaration(t),
              item = label and text_of(item) or nil, inputs = {} }
  if t.inputs and #t.inputs > 0 then
    local r, err = require("slipway._inputs").hash(self.dir, t.inputs)
    if not r then return nil, err end
    p.inputs_digest = r.digest
    for i, pat in ipairs(t.inputs) do
      if pat:match("^%s*!") == nil then p.inputs[pat] = r.parts[i] end
    end
  end
  return p
end

-- Why the previous row's key does not match parts p (or nil: it does).
function Cache:why_not(name, p, prev)
  if self.force == true or (self.force and self.force[name:match("^[^%[]*")]) then return "--force" end
  if prev == nil then
    return self.read_error and ("the ledger cannot be read: " .. self.read_error) or "no previous successful run"
  end
  if prev == false then return "its last successful run recorded no key" end
  local row = prev.row.cache
  p.params, p.env = row.params or {}, row.env or {}
  p.env_digest = env_digest(p.env)
  if key_of(p, self.values) == row.key then return nil end
  if row.version ~= p.version then return ("slipway's version changed (%s, now %s)"):format(tostring(row.version), p.version) end
  if row.declaration ~= p.declaration then return "the task's code or options changed" end
  for _, pat in ipairs(sorted(p.inputs)) do
    if (row.inputs and row.inputs[pat]) ~= p.inputs[pat] then return ("input '%s' changed"):format(pat) end
  end
  for _, pat in ipairs(sorted(row.inputs)) do
    if p.inputs[pat] == nil then return ("input '%s' changed"):format(pat) end
  end
  if row.inputs_digest ~= p.inputs_digest then return "an excluded pattern now selects other files" end
  local params = prev.release.params or {}
  for _, n in ipairs(p.params) do
    local now = require("slipway.release").recordable(rawget(self.values, n))
    if json.encode(now) ~= json.encode(params[n]) then return ("parameter '%s' changed"):format(n) end
  end
  if row.env_digest ~= p.env_digest then
    return ("an env() value it reads changed (%s)"):format(table.concat(p.env, ", "))
  end
  return "a parameter it reads changed"
end

-- Is unit u up to date? Hashes its inputs (awaits).
function Cache:check(u)
  local t = u.node.task
  u.reads = { params = {}, env = {} }
  local ok, p, err = pcall(self.parts, self, t, u.item, u.label)
  if not ok then error(p, 0) end     -- (cancelled: the scheduler's to handle)
  if not p then
    u.cache_miss = err
    context.warn(("%s: not cached: %s"):format(u.name, err))
    return false
  end
  local prev = self.rows[u.name]
  local why = self:why_not(u.name, p, prev)
  u.cache_parts = p
  if why == nil then
    u.cached = true
    u.result = prev.row.result
    u.cache_row = prev.row.cache
    return true
  end
  u.cache_miss = why
  return false
end

-- The parameters u's function gets: the run's, its reads recorded.
function Cache:values_for(u)
  local values, reads = self.values, u.reads.params
  return setmetatable({}, {
    __index = function(_, k)
      reads[k] = true
      return values[k]
    end,
    __newindex = values,
    __pairs = function()
      for k in pairs(values) do reads[k] = true end
      return next, values, nil
    end,
  })
end

-- The row's `cache` of a unit that ran and succeeded: its key over what
-- it read. None when its result cannot be recorded as it is.
function Cache:finished(u)
  local p = u.cache_parts
  if u.status ~= "ok" or p == nil then return end
  local okenc, text = pcall(json.encode, u.result)
  if not okenc or require("slipway.secret").mask(text) ~= text then
    context.warn(("%s: not cached: its result cannot be recorded as it is (%s)")
      :format(u.name, okenc and "it holds a secret" or "not JSON"))
    return
  end
  p.params, p.env = sorted(u.reads.params), sorted(u.reads.env)
  p.env_digest = env_digest(p.env)
  u.cache_row = {
    key = key_of(p, self.values), version = p.version, declaration = p.declaration,
    inputs = next(p.inputs) and json.object(p.inputs) or nil, inputs_digest = p.inputs_digest,
    params = json.array(p.params), env = json.array(p.env), env_digest = p.env_digest,
  }
end

-- For `slipway plan`: would task t (item) be up to date now? -> true | false, why
function Cache:status(t, item, label)
  local name = label and (t.name .. "[" .. label .. "]") or t.name
  local p, err = self:parts(t, item, label)
  if not p then return false, err end
  local why = self:why_not(name, p, self.rows[name])
  return why == nil, why
end

return M
