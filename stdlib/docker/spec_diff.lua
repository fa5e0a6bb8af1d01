-- slipway.docker.spec_diff: does a service need an update? Compares the
-- spec a deploy would send with the spec the engine stored.
--
--   spec_diff.first(wanted, stored, network_names) -> nil | "path: a vs b"
--
-- The engine stores more than it was sent: defaults it fills in
-- (EndpointSpec.Mode "vip", Runtime "container", Isolation "default",
-- Order "stop-first", zeros, nulls, empty objects), and network IDs where
-- the spec named networks. Both sides are normalized the same way before
-- the comparison: values that mean "not set" are dropped, networks are
-- named (network_names: id -> name) and sorted. What is left must be equal,
-- so a change made behind the deploy's back (docker service update) is a
-- difference too.
local json = require("slipway.json")

local M = {}

-- Values the engine fills in that mean the same as leaving them out.
local DEFAULTS = {
  ["EndpointSpec.Mode"] = "vip",
  ["TaskTemplate.ContainerSpec.Isolation"] = "default",
  ["TaskTemplate.Runtime"] = "container",
  ["UpdateConfig.Order"] = "stop-first",
  ["UpdateConfig.FailureAction"] = "pause",
  ["RollbackConfig.FailureAction"] = "pause",
  ["RollbackConfig.Order"] = "stop-first",
  ["EndpointSpec.Ports[].Protocol"] = "tcp",
  ["EndpointSpec.Ports[].PublishMode"] = "ingress",
}

-- Zeros that mean something (0 replicas is not "unset").
local KEEP_ZERO = { Replicas = true, TotalCompletions = true, MaxConcurrent = true }

-- Empty objects that mean something: the mode they name.
local MARKERS = { Global = true, GlobalJob = true }

local function is_list(t)
  if getmetatable(t) == json.array_mt then return true end
  return t[1] ~= nil
end

local function normalize(v, path, key)
  if v == json.null or v == false or v == "" then return nil end
  if v == 0 and not KEEP_ZERO[key] then return nil end
  if DEFAULTS[path] ~= nil and DEFAULTS[path] == v then return nil end
  if type(v) ~= "table" then return v end
  local out = {}
  if is_list(v) then
    for _, x in ipairs(v) do out[#out + 1] = normalize(x, path .. "[]", nil) or json.null end
  else
    for k, x in pairs(v) do
      local sub = path == "" and tostring(k) or (path .. "." .. tostring(k))
      out[k] = normalize(x, sub, k)
    end
  end
  if next(out) == nil then return MARKERS[key] and true or nil end
  return out
end

-- Networks by name, in name order (the engine stores IDs).
local function named_networks(holder, names)
  local list = type(holder) == "table" and holder.Networks
  if type(list) ~= "table" then return end
  local copy = {}
  for i, n in ipairs(list) do
    local c = {}
    for k, v in pairs(n) do c[k] = v end
    c.Target = names[c.Target] or c.Target
    copy[i] = c
  end
  table.sort(copy, function(a, b) return tostring(a.Target) < tostring(b.Target) end)
  holder.Networks = copy
end

function M._copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M._copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function show(v)
  if type(v) == "table" then return json.encode(v) end
  if v == nil then return "unset" end
  return ("%q"):format(v)
end

local function first_difference(a, b, path)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then
    return ("%s: %s vs %s"):format(path == "" and "spec" or path, show(a), show(b))
  end
  local keys = {}
  for k in pairs(a) do keys[#keys + 1] = k end
  for k in pairs(b) do if a[k] == nil then keys[#keys + 1] = k end end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    local d = first_difference(a[k], b[k], path == "" and tostring(k) or (path .. "." .. tostring(k)))
    if d then return d end
  end
  return nil
end

-- A service without a mode is replicated, one replica.
local function default_mode(spec)
  if type(spec) ~= "table" then return end
  if spec.Mode == nil or spec.Mode == json.null then spec.Mode = { Replicated = {} } end
  local r = type(spec.Mode) == "table" and spec.Mode.Replicated
  if type(r) == "table" and (r.Replicas == nil or r.Replicas == json.null) then
    spec.Mode = { Replicated = { Replicas = 1 } }
  end
end

-- The first difference between what a deploy would send and what the
-- engine stored ("TaskTemplate.ContainerSpec.Image: "a" vs "b""), or nil
-- when the service needs no update.
function M.first(wanted, stored, network_names)
  wanted, stored = M._copy(wanted), M._copy(stored)
  default_mode(wanted)
  default_mode(stored)
  local a = normalize(wanted, "", nil) or {}
  local b = normalize(stored, "", nil) or {}
  for _, spec in ipairs({ a, b }) do
    named_networks(spec.TaskTemplate, network_names or {})
    named_networks(spec, network_names or {})   -- the deprecated top-level field
  end
  return first_difference(a, b, "")
end

return M
