-- slipway.compose.render: a Stack -> the YAML text `docker stack config`
-- prints for it (go-yaml v3 marshalling of docker/cli's types.Config):
-- fields in the Go structs' order, empty values left out, user maps
-- (service names, environment, labels, ...) in go-yaml's key order, x-*
-- keys last, byte sizes as quoted decimal strings.
--
-- A Stack a script changed is normalized again first, so it may hold
-- what a compose file may hold (replicas = 3, memory = "512M",
-- interval = "90s", a plain Lua list for ports or command), and an
-- unknown field is an error rather than silently dropped.
local normalize = require("slipway.compose.normalize")
local yaml = require("slipway.yaml")

local M = {}
local NULL = yaml.null
local ARRAY = yaml.array_mt

local function struct(fields, sub)
  local index = {}
  for i, f in ipairs(fields) do index[f] = i end
  return { kind = "struct", fields = fields, index = index, sub = sub or {} }
end
local function list_of(elem) return { kind = "list", elem = elem } end
local function map_of(elem) return { kind = "map", elem = elem } end

local ULIMIT = struct({ "soft", "hard" })
local update_config = struct({ "parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order" })
local file_ref = struct({ "source", "target", "uid", "gid", "mode" })

local SERVICE_FIELDS = {}
for i, f in ipairs(normalize.SERVICE_FIELDS) do SERVICE_FIELDS[i] = f[1] end

local SERVICE = struct(SERVICE_FIELDS, {
  build = struct({ "context", "dockerfile", "args", "labels", "cache_from", "extra_hosts", "network", "target" },
    { args = map_of(), labels = map_of() }),
  configs = list_of(file_ref),
  secrets = list_of(file_ref),
  credential_spec = struct({ "config", "file", "registry" }),
  deploy = struct({ "mode", "replicas", "labels", "update_config", "rollback_config", "resources",
    "restart_policy", "placement", "endpoint_mode" }, {
    labels = map_of(),
    update_config = update_config,
    rollback_config = update_config,
    resources = struct({ "limits", "reservations" }, {
      limits = struct({ "cpus", "memory", "pids" }),
      reservations = struct({ "cpus", "memory", "generic_resources" }, {
        generic_resources = list_of(struct({ "discrete_resource_spec" }, {
          discrete_resource_spec = struct({ "kind", "value" }) })),
      }),
    }),
    restart_policy = struct({ "condition", "delay", "max_attempts", "window" }),
    placement = struct({ "constraints", "preferences", "max_replicas_per_node" }, {
      preferences = list_of(struct({ "spread" })) }),
  }),
  environment = map_of(),
  healthcheck = struct({ "test", "timeout", "interval", "retries", "start_period", "start_interval", "disable" }),
  labels = map_of(),
  logging = struct({ "driver", "options" }, { options = map_of() }),
  networks = map_of(struct({ "aliases", "driver_opts", "ipv4_address", "ipv6_address" }, { driver_opts = map_of() })),
  ports = list_of(struct({ "mode", "target", "published", "protocol" })),
  sysctls = map_of(),
  ulimits = map_of({ kind = "ulimit" }),
  volumes = list_of(struct({ "type", "source", "target", "read_only", "consistency", "bind", "volume", "image",
    "tmpfs", "cluster" }, {
    bind = struct({ "propagation" }), volume = struct({ "nocopy", "subpath" }), image = struct({ "subpath" }),
    tmpfs = struct({ "size" }), cluster = struct({}),
  })),
})

local NETWORK = struct({ "name", "driver", "driver_opts", "ipam", "external", "internal", "attachable", "labels" }, {
  driver_opts = map_of(), labels = map_of(),
  ipam = struct({ "driver", "config" }, { config = list_of(struct({ "subnet" })) }),
})
local topology = list_of(struct({ "segments" }, { segments = map_of() }))
local VOLUME = struct({ "name", "driver", "driver_opts", "external", "labels", "x-cluster-spec" }, {
  driver_opts = map_of(), labels = map_of(),
  ["x-cluster-spec"] = struct({ "group", "access_mode", "accessibility_requirements", "capacity_range",
    "secrets", "availability" }, {
    access_mode = struct({ "scope", "sharing", "mount_volume", "block_volume" }, {
      mount_volume = struct({ "fs_type", "mount_flags" }), block_volume = struct({}) }),
    accessibility_requirements = struct({ "requisite", "preferred" }, { requisite = topology, preferred = topology }),
    capacity_range = struct({ "required_bytes", "limit_bytes" }),
    secrets = list_of(struct({ "key", "secret" })),
  }),
})
local FILE_OBJECT = struct({ "name", "file", "external", "labels", "driver", "driver_opts", "template_driver" },
  { labels = map_of(), driver_opts = map_of() })

local TOP = struct({ "version", "services", "networks", "volumes", "secrets", "configs" }, {
  services = map_of(SERVICE), networks = map_of(NETWORK), volumes = map_of(VOLUME),
  secrets = map_of(FILE_OBJECT), configs = map_of(FILE_OBJECT),
})

-- The shortest decimal that reads back as the same float32 (Go marshals
-- max_failure_ratio as a float32).
local function float32(x)
  local f = string.unpack("f", string.pack("f", x))
  for p = 1, 9 do
    local s = ("%." .. p .. "g"):format(f)
    if string.unpack("f", string.pack("f", tonumber(s))) == f then return tonumber(s) + 0.0 end
  end
  return f
end

local BYTES = { memory = true, required_bytes = true, limit_bytes = true }
local DOCKER_ENCODING = { docker_compat = true }

-- A plain copy for free-form values (x-* extensions): no recorded key
-- order, so maps come out in go-yaml's order as docker prints a map.
local function plain(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x) end
  return setmetatable(out, getmetatable(v))
end

local emit

-- Fields in the struct's order, then x-* keys in go-yaml's order. (The
-- normalization before has rejected unknown fields.)
local function emit_struct(v, spec)
  local out, present, extra = {}, {}, nil
  local index, fields = spec.index, spec.fields
  for k, x in pairs(v) do
    local i = index[k]
    if i then
      out[k] = emit(x, spec.sub[k], k)
      present[#present + 1] = i
    elseif type(k) == "string" and k:sub(1, 2) == "x-" then
      out[k] = plain(x)
      extra = extra or {}
      extra[#extra + 1] = k
    end
  end
  table.sort(present)                          -- field positions: Go struct order
  local order = {}
  for j, i in ipairs(present) do order[j] = fields[i] end
  if extra then
    table.sort(extra, yaml.key_less)
    for _, k in ipairs(extra) do order[#order + 1] = k end
  end
  return yaml.order(out, order)
end

function emit(v, spec, name)
  if v == NULL then return NULL end
  if spec == nil then
    if BYTES[name] and math.type(v) == "integer" then return tostring(v) end
    if name == "max_failure_ratio" and type(v) == "number" then return float32(v) end
    return plain(v)
  end
  if spec.kind == "struct" then return emit_struct(v, spec) end
  if spec.kind == "ulimit" then
    if type(v) == "number" then return v end
    return emit_struct(v, ULIMIT)
  end
  if spec.kind == "list" then
    local out = setmetatable({}, ARRAY)
    for i, x in ipairs(v) do out[i] = emit(x, spec.elem, name) end
    return out
  end
  local out = {}                              -- map: user keys, sorted on output
  for k, x in pairs(v) do out[k] = emit(x, spec.elem, nil) end
  return out
end

-- "$" -> "$$" in every string value, so that the text loads back to the
-- same values (docker prints "$" as is, and a reload would substitute).
local function escape_dollars(v)
  if type(v) == "string" then return (v:gsub("%$", "$$")) end
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do v[k] = escape_dollars(x) end
  return v
end

-- An extra_hosts entry "h:%!s(int=5)" (a number in a map, as docker
-- prints it) reads back as host "h:%!s(int" (a list entry splits at its
-- first "="), so text that must load back writes "h=%!s(int=5)".
local function reloadable_hosts(services)
  for _, svc in pairs(services or {}) do
    for _, hosts in ipairs({ svc.extra_hosts or {}, type(svc.build) == "table" and svc.build.extra_hosts or {} }) do
      for i, entry in ipairs(hosts) do
        local host, ip = entry:match("^(.-):(.*)$")
        if ip and ip:find("=", 1, true) then hosts[i] = host .. "=" .. ip end
      end
    end
  end
end

-- render(stack, {escape_dollars = false}) -> YAML text, docker's bytes:
-- "$" as it is, and block literals as docker's go-yaml writes them (a
-- leading line break lost, a leading tab unreadable; yaml.encode's
-- docker_compat). escape_dollars: text that loads back to the same Stack
-- instead: "$" as "$$", those literals readable, extra_hosts entries as
-- "host=ip" where the ip holds a "=".
-- Raises "compose.render: <path>: <problem>".
function M.render(stack, opts)
  if type(stack) ~= "table" then error("compose.render: expected a Stack table, got " .. type(stack), 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "escape_dollars" then
      error(("compose.render: unknown option '%s' (valid: escape_dollars)"):format(tostring(k)), 2)
    end
  end
  local ctx = {
    version = stack.version or "3.13",
    workdir = "/",
    lookup = function() return nil end,
    warn = function() end,
    fail = function(_, _, msg) error("compose.render: " .. msg, 0) end,
    render = true,
  }
  local normalized = normalize.stack(stack, ctx)
  normalized.version = stack.version or "3.13"
  for k, v in pairs(stack) do
    if type(k) == "string" and k:sub(1, 2) == "x-" then normalized[k] = v end
  end
  for _, section in ipairs({ "networks", "volumes", "secrets", "configs" }) do
    if normalized[section] and next(normalized[section]) == nil then normalized[section] = nil end
  end
  local out = emit(normalized, TOP, nil)
  if opts.escape_dollars then
    reloadable_hosts(out.services)
    return yaml.encode(escape_dollars(out))
  end
  return yaml.encode(out, DOCKER_ENCODING)
end

return M
