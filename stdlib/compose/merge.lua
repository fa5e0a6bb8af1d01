-- slipway.compose.merge: several Stacks (one per -c file, in order) into
-- one, the way `docker stack deploy -c a.yml -c b.yml` merges them
-- (docker/cli loader/merge.go on top of mergo):
--   * services with the same name are merged field by field: a value set
--     in the later file wins; nested settings (deploy, healthcheck, build,
--     resources, ...) merge recursively; lists are appended, except ports
--     (keyed by published port), secrets/configs (by source) and volumes
--     (by target), which replace entries with the same key and come out
--     sorted by it, and command/entrypoint, which are replaced; maps
--     (environment, labels, ...) merge key by key, where an empty or null
--     environment value does not replace one; x-* values merge deeply
--     (maps by key, lists appended); logging
--     options merge when the driver is the same; a service network's
--     aliases are replaced; ulimits entries are replaced;
--   * networks, volumes, secrets and configs with the same name are
--     replaced whole by the later file's;
--   * the version and the top-level x-* keys are the first file's.
local yaml = require("slipway.yaml")

local M = {}
local NULL = yaml.null
local ARRAY = yaml.array_mt

local STRUCTS = {
  deploy = true, update_config = true, rollback_config = true, resources = true, limits = true,
  reservations = true, restart_policy = true, placement = true, healthcheck = true, build = true,
  credential_spec = true,
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function append(a, b)
  local out = setmetatable({}, ARRAY)
  for _, v in ipairs(a) do out[#out + 1] = copy(v) end
  for _, v in ipairs(b) do out[#out + 1] = copy(v) end
  return out
end

-- merge lists of tables by key; result sorted by key
local function by_key(field, less)
  return function(a, b)
    local m, keys = {}, {}
    for _, list in ipairs({ a, b }) do
      for _, item in ipairs(list) do
        local k = item[field]
        if k == nil then k = less == "number" and 0 or "" end
        if m[k] == nil then keys[#keys + 1] = k end
        m[k] = copy(item)
      end
    end
    table.sort(keys)
    local out = setmetatable({}, ARRAY)
    for i, k in ipairs(keys) do out[i] = m[k] end
    return out
  end
end

local merge_struct

local SPECIAL = {
  ports = by_key("published", "number"),
  secrets = by_key("source"),
  configs = by_key("source"),
  volumes = by_key("target"),
  command = function(_, b) return copy(b) end,
  entrypoint = function(_, b) return copy(b) end,
  logging = function(a, b)
    if a.driver == b.driver or a.driver == nil or b.driver == nil then
      local out = copy(a)
      out.driver = a.driver or b.driver
      if b.options then
        out.options = out.options or {}
        for k, v in pairs(b.options) do out.options[k] = v end
      end
      return out
    end
    return copy(b)
  end,
  networks = function(a, b)
    local out = copy(a)
    for name, cfg in pairs(b) do
      local cur = out[name]
      if cur == nil or cur == NULL then out[name] = copy(cfg)
      elseif cfg ~= NULL then
        cur.aliases = copy(cfg.aliases)
        if cfg.ipv4_address then cur.ipv4_address = cfg.ipv4_address end
        if cfg.ipv6_address then cur.ipv6_address = cfg.ipv6_address end
      end
    end
    return out
  end,
  ulimits = function(a, b)
    local out = copy(a)
    for k, v in pairs(b) do out[k] = copy(v) end
    return out
  end,
}

-- Free-form values (x-* keys): maps merge key by key, lists append, the
-- rest is replaced (null too).
local function merge_any(a, b)
  if a == nil then return copy(b) end
  if type(a) == "table" and type(b) == "table" and a ~= NULL and b ~= NULL then
    local la, lb = getmetatable(a) == ARRAY, getmetatable(b) == ARRAY
    if la and lb then return append(a, b) end
    if not la and not lb then
      local out = copy(a)
      for k, v in pairs(b) do out[k] = merge_any(a[k], v) end
      return out
    end
  end
  return copy(b)
end

-- Maps of *string (environment, build args): an empty or null value in the
-- later file does not replace a value (mergo's reading of pointers).
local POINTER_MAPS = { environment = true, args = true }

local function merge_value(field, a, b)
  if b == nil then return a end
  if a == nil then return copy(b) end
  if type(field) == "string" and field:sub(1, 2) == "x-" then return merge_any(a, b) end
  if SPECIAL[field] and type(a) == "table" and type(b) == "table" then return SPECIAL[field](a, b) end
  if type(a) == "table" and type(b) == "table" then
    if getmetatable(a) == ARRAY and getmetatable(b) == ARRAY then return append(a, b) end
    if STRUCTS[field] then return merge_struct(a, b) end
    if getmetatable(a) ~= ARRAY and getmetatable(b) ~= ARRAY then
      local out = copy(a)                      -- a map: key by key
      for k, v in pairs(b) do
        if not (POINTER_MAPS[field] and (v == NULL or v == "") and out[k] ~= nil) then out[k] = copy(v) end
      end
      return out
    end
  end
  return copy(b)
end

function merge_struct(a, b)
  local out = copy(a)
  for k, v in pairs(b) do out[k] = merge_value(k, a[k], v) end
  return out
end

-- merge({stack1, stack2, ...}) -> stack
function M.merge(stacks)
  local base = stacks[1]
  for i = 2, #stacks do
    local over = stacks[i]
    for name, svc in pairs(over.services or {}) do
      if base.services[name] then base.services[name] = merge_struct(base.services[name], svc)
      else base.services[name] = svc end
    end
    for _, section in ipairs({ "networks", "volumes", "secrets", "configs" }) do
      if over[section] then
        base[section] = base[section] or {}
        for name, def in pairs(over[section]) do base[section][name] = def end
      end
    end
  end
  return base
end

return M
