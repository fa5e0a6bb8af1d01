-- The engine of the fake Pulumi CLI (tests/fakes/pulumi.lua): evaluating a
-- Pulumi YAML program against a stack's config and state, diffing, and the
-- engine events `--event-log` gets, in the shapes of the real streams in
-- ../shared/specs/pulumi/engine-events (apitype.EngineEvent, one compact
-- JSON object per line, a cancelEvent last).
--
-- The program is the project's Pulumi.yaml in the YAML runtime's form:
--
--   resources:
--     bucket:
--       type: aws:s3/bucket:Bucket
--       properties: { acl: "${acl}", tags: { stack: "${pulumi.stack}" } }
--       options: { replaceOnChanges: [ acl ] }
--   outputs:
--     bucketName: ${bucket.id}
--
-- `${key}` is a config value (project:key or key), `${res.id}` a
-- resource's id, `${res.prop}` one of its inputs, `${pulumi.stack}` and
-- `${pulumi.project}` the names. What reads a secret config value is
-- secret (stored and shown as Pulumi's secret signature object).
local json = require("slipway.json")
local yaml = require("slipway.yaml")

local M = {}

-- A 64-bit FNV-1a digest as 16 hex digits: ids, salts and the fake's
-- keystream (slipway.hash would load libcrypto in every run of the fake).
function M.digest(s)
  local h = -3750763034362895579            -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
  return ("%016x"):format(h)
end

function M.random_hex(n)
  local out = {}
  for i = 1, n do out[i] = ("%02x"):format(math.random(0, 255)) end
  return table.concat(out)
end

-- Pulumi's marker for a secret value in states and events.
M.SIG_KEY, M.SIG_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"

function M.stack_urn(stack, project)
  return ("urn:pulumi:%s::%s::pulumi:pulumi:Stack::%s-%s"):format(stack, project, project, stack)
end

function M.urn(stack, project, type, name)
  return ("urn:pulumi:%s::%s::%s::%s"):format(stack, project, type, name)
end

---------------------------------------------------------------- evaluation

-- A value with secretness: { v = any, secret = bool }.
local function interpolate(s, scope, seen_secret)
  local function lookup(ref)
    if ref == "pulumi.stack" then return scope.stack end
    if ref == "pulumi.project" then return scope.project end
    local res, prop = ref:match("^([%w_-]+)%.([%w_]+)$")
    if res and scope.resources[res] then
      local r = scope.resources[res]
      if prop == "id" then return r.id end
      local input = r.inputs[prop]
      if input == nil then error(("unknown property %s of resource %s"):format(prop, res), 0) end
      if input.secret then seen_secret[1] = true end
      return input.v
    end
    local c = scope.config[scope.project .. ":" .. ref] or scope.config[ref]
    if c == nil then error(("missing required configuration variable '%s'"):format(ref), 0) end
    if c.secret then seen_secret[1] = true end
    return c.value
  end
  local whole = s:match("^%${([^}]+)}$")
  if whole then return lookup(whole) end
  return (s:gsub("%${([^}]+)}", function(ref) return tostring(lookup(ref)) end))
end

local function resolve(v, scope, seen_secret)
  if type(v) == "string" then return interpolate(v, scope, seen_secret) end
  if type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = resolve(x, scope, seen_secret) end
    return setmetatable(out, getmetatable(v))
  end
  return v
end

local function resolved(v, scope)
  local seen = { false }
  local value = resolve(v, scope, seen)
  return { v = value, secret = seen[1] }
end

-- The program evaluated: resources in program order { name, type, urn,
-- inputs = { k = {v, secret} }, replace_on = { prop = true } } and
-- outputs { name = {v, secret} } (in order: output_names).
function M.evaluate(program, config, stack, project)
  local scope = { stack = stack, project = project, config = config, resources = {} }
  local resources = {}
  local decls = type(program.resources) == "table" and program.resources or {}
  for _, name in ipairs(yaml.keys(decls)) do
    local decl = decls[name]
    local r = { name = name, type = decl.type, urn = M.urn(stack, project, decl.type, name), inputs = {},
                replace_on = {}, id = name .. "-" .. M.digest(stack .. "/" .. name):sub(1, 7) }
    for _, k in ipairs(yaml.keys(decl.properties or {})) do
      r.inputs[k] = resolved(decl.properties[k], scope)
    end
    for _, k in ipairs(decl.options and decl.options.replaceOnChanges or {}) do r.replace_on[k] = true end
    resources[#resources + 1] = r
    scope.resources[name] = r
  end
  local outputs, names = {}, {}
  local decl_out = type(program.outputs) == "table" and program.outputs or {}
  for _, name in ipairs(yaml.keys(decl_out)) do
    outputs[name] = resolved(decl_out[name], scope)
    names[#names + 1] = name
  end
  return resources, outputs, names
end

---------------------------------------------------------------- states

-- A property map as a state or an event shows it: secrets as Pulumi's
-- signature object, with `cipher(value)` as its ciphertext (events are
-- blinded: "[secret]").
function M.shown(props, cipher)
  local out = {}
  for k, p in pairs(props) do
    if p.secret then
      out[k] = { [M.SIG_KEY] = M.SIG_VALUE, ciphertext = cipher and cipher(json.encode(p.v)) or "[secret]" }
    else
      out[k] = p.v
    end
  end
  return json.object(out)
end

-- The props back from a state (decipher: ciphertext -> json text).
function M.unshown(props, decipher)
  local out = {}
  for k, v in pairs(props or {}) do
    if type(v) == "table" and v[M.SIG_KEY] == M.SIG_VALUE then
      out[k] = { v = json.decode(decipher(v.ciphertext)), secret = true }
    else
      out[k] = { v = v, secret = false }
    end
  end
  return out
end

-- A resource as apitype.ResourceV3 (old/new of a step, a state entry).
function M.resource_state(r, stack_urn, with_outputs, cipher)
  local state = {
    type = r.type, urn = r.urn, custom = true, id = with_outputs and r.id or "",
    parent = stack_urn, inputs = M.shown(r.inputs, cipher), outputs = json.object({}), provider = "",
  }
  if with_outputs then
    local outs = {}
    for k, v in pairs(r.inputs) do outs[k] = v end
    outs.id = { v = r.id, secret = false }
    state.outputs = M.shown(outs, cipher)
  end
  return state
end

function M.stack_state(stack, project, outputs, cipher)
  local urn = M.stack_urn(stack, project)
  return { type = "pulumi:pulumi:Stack", urn = urn, id = "", parent = "", inputs = json.object({}),
           outputs = M.shown(outputs or {}, cipher), provider = "" }
end

---------------------------------------------------------------- diffing

local function same_value(a, b)
  return json.encode(a) == json.encode(b)
end

-- The steps from the old resources (name -> {type, inputs, id}) to the
-- program's: { op, resource, old, diffs, detailed } in order (deletes
-- last, in reverse).
function M.diff(old, resources)
  local steps, seen = {}, {}
  for _, r in ipairs(resources) do
    seen[r.name] = true
    local o = old[r.name]
    if o == nil then
      steps[#steps + 1] = { op = "create", resource = r }
    else
      local diffs, detailed, replace = {}, {}, false
      local keys = {}
      for k in pairs(r.inputs) do keys[k] = true end
      for k in pairs(o.inputs) do keys[k] = true end
      for _, k in ipairs(M.sorted(keys)) do
        local a, b = o.inputs[k], r.inputs[k]
        if a == nil or b == nil or not same_value(a.v, b.v) or a.secret ~= b.secret then
          diffs[#diffs + 1] = k
          local kind = a == nil and "add" or b == nil and "delete" or "update"
          if r.replace_on[k] then
            replace = true
            kind = kind .. "-replace"
          end
          detailed[k] = { diffKind = kind, inputDiff = true }
        end
      end
      local op = #diffs == 0 and "same" or replace and "replace" or "update"
      steps[#steps + 1] = { op = op, resource = r, old = o, diffs = diffs, detailed = detailed }
    end
  end
  local gone = {}
  for name in pairs(old) do
    if not seen[name] then gone[#gone + 1] = name end
  end
  table.sort(gone, function(a, b) return a > b end)
  for _, name in ipairs(gone) do
    steps[#steps + 1] = { op = "delete", resource = old[name], old = old[name] }
  end
  return steps
end

function M.sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

---------------------------------------------------------------- events

local Log = {}
Log.__index = Log

-- An event log writer (path nil: events are dropped).
function M.event_log(path)
  local f
  if path then
    f = assert(io.open(path, "w"))
    f:setvbuf("full")
  end
  return setmetatable({ f = f, seq = 0 }, Log)
end

-- Members in Go's struct order, as the CLI's encoder writes them (json.encode
-- sorts them).
local METADATA_ORDER = { "op", "urn", "type", "old", "new", "keys", "diffs", "detailedDiff", "logical", "provider" }

local function ordered(t, order)
  local parts, done = {}, {}
  for _, k in ipairs(order) do
    if t[k] ~= nil then
      parts[#parts + 1] = json.encode(k) .. ":" .. json.encode(t[k])
      done[k] = true
    end
  end
  for _, k in ipairs(M.sorted(t)) do
    if not done[k] then parts[#parts + 1] = json.encode(k) .. ":" .. json.encode(t[k]) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function Log:line(kind, body)
  self.seq = self.seq + 1
  local text
  if body.metadata then
    local rest = {}
    for k, v in pairs(body) do if k ~= "metadata" then rest[k] = v end end
    text = '{"metadata":' .. ordered(body.metadata, METADATA_ORDER) .. (next(rest) and "," or "")
      .. ordered(rest, {}):sub(2)
  else
    text = json.encode(json.object(body))
  end
  return ('{"sequence":%d,"timestamp":%d,"%s":%s}'):format(self.seq, os.time(), kind, text)
end

-- Write one event { <kind> = body } now.
function Log:emit(kind, body)
  local text = self:line(kind, body)
  if self.f then
    self.f:write(text, "\n")
    self.f:flush()
  end
end

-- Write many events (the benchmark) at once: { {kind, body}, ... }.
function Log:emit_batch(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = self:line(e[1], e[2]) end
  out[#out + 1] = ""
  if self.f then
    self.f:write(table.concat(out, "\n"))
    self.f:flush()
  end
end

function Log:close()
  if self.f then self.f:close() end
  self.f = nil
end

-- StepEventMetadata for a step.
function M.metadata(op, type, urn, old, new, extra)
  local m = { op = op, urn = urn, type = type, old = old or json.null, new = new or json.null,
              detailedDiff = json.null, logical = true, provider = "" }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

-- Colour markup as the engine puts it around diagnostics.
function M.diagnostic(severity, message, urn)
  local colour = severity == "error" and "1" or severity == "warning" and "3" or "7"
  return { urn = urn, prefix = ("<{%%fg %s%%}>%s: <{%%reset%%}>"):format(colour, severity),
           message = "<{%reset%}>" .. message .. "<{%reset%}>\n", color = "raw", severity = severity }
end

return M
