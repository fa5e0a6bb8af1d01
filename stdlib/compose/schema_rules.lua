-- slipway.compose.schema_rules: what `docker stack` accepts in a v3.x
-- compose file, written as slipway's own rule table.
--
-- One description covers every 3.x minor version: a rule or field that
-- came (or went, or changed) at some minor version is wrapped in a marker,
-- and `compile(minor)` resolves the markers into the plain rule tree that
-- slipway.compose.schema walks. The facts (which keys exist in which
-- version, their kinds, the duration/ports formats) are docker's; the test
-- tests/compose_schema_spec.lua proves them equal to docker's own schemas
-- for 3.0 .. 3.13.
--
-- A compiled rule is a table with any of:
--   is        list of allowed kinds, in the order docker names them in
--             messages: "string", "integer", "number", "boolean", "null",
--             "list", "mapping" (nil: any kind)
--   either    list of alternative rules; exactly one must hold (docker's
--             alternatives are always told apart by kind)
--   fields    {name = rule} for a mapping
--   keys      list of {class, rule}: mapping keys of a key class (see
--             KEY_CLASSES in schema.lua: "name", "x", "text", "some",
--             "lower") are checked against rule
--   closed    true: a key that is neither a field nor of a key class is an
--             error ("Additional property k is not allowed")
--   need      list of keys a mapping must have
--   item      rule for each element of a list
--   unique    true: list elements must differ
--   format    "duration" | "ports" | "expose" (expose is not checked by
--             docker: any string or number passes)
--   oneof     list of allowed string values
--   min       smallest allowed number
--
-- Markers (only in this file; compile() removes them):
--   since(m, x)      x exists from 3.m on
--   upto(m, x)       x exists up to and including 3.m
--   step(m, a, b)    a before 3.m, b from 3.m on
-- A string where a rule is expected names a shared rule below.

local M = {}

local SINCE, UPTO, STEP = {}, {}, {}

local function since(m, x) return { [SINCE] = m, x } end
local function upto(m, x) return { [UPTO] = m, x } end
local function step(m, a, b) return { [STEP] = m, a, b } end

-- Rule builders. They only shape tables; nothing is checked here.
local function kind(...) return { is = { ... } } end
local text, int, num, bool = kind("string"), kind("integer"), kind("number"), kind("boolean")
local any = {}
local duration = { is = { "string" }, format = "duration" }

local function list(item, unique) return { is = { "list" }, item = item, unique = unique } end

-- map(fields [, how]): how.open (true: keys beyond fields pass; a number
-- m: they pass from 3.m on), how.keys, how.need, how.null (null is also
-- accepted).
local function map(fields, how)
  how = how or {}
  local r = { is = how.null and { "mapping", "null" } or { "mapping" }, fields = fields,
              keys = how.keys, need = how.need }
  if how.open == nil then r.closed = true elseif how.open ~= true then r.closed = step(how.open, true, false) end
  return r
end

-- A mapping whose values are all of one rule, keyed by one key class,
-- with nothing else allowed (services:, volumes:, ...).
local function named(rule) return map({}, { keys = { { "name", rule } } }) end

local function either(...) return { either = { ... } } end

-- x-* keys allowed next to the fields from 3.7 on (top level: 3.4).
local ext7 = since(7, { "x", any })

-- Shared rules -------------------------------------------------------------

local shared = {}

shared.strings = list(text, true)                       -- unique strings
shared.one_or_many = either(text, "strings")
-- KEY=value list, or a mapping of scalars
shared.pairs = either(
  map({}, { keys = { { "some", kind("string", "number", "null") } } }),
  list(text, true))

local options = map({}, { open = true, keys = { { "text", kind("string", "number") } } })

shared.resources = map { cpus = text, memory = text }   -- 3.0 - 3.4

shared.generic_resources = list(map {
  discrete_resource_spec = map { kind = text, value = num },
})

shared.healthcheck = map {
  disable = bool,
  interval = step(4, text, duration),
  retries = num,
  start_interval = since(12, duration),
  start_period = since(4, duration),
  test = either(text, list(text)),
  timeout = step(4, text, duration),
}

-- update_config / rollback_config; `order` came to update_config in 3.4,
-- rollback_config (3.7) had it from the start
local function update_policy(order_since)
  return map {
    delay = duration,
    failure_action = text,
    max_failure_ratio = num,
    monitor = duration,
    order = since(order_since, { is = { "string" }, oneof = { "start-first", "stop-first" } }),
    parallelism = int,
  }
end

shared.deployment = map({
  endpoint_mode = since(2, text),
  labels = "pairs",
  mode = text,
  placement = map {
    constraints = list(text),
    max_replicas_per_node = since(8, int),
    preferences = since(3, list(map { spread = text })),
  },
  replicas = int,
  resources = map {
    limits = step(5, "resources", map { cpus = text, memory = text, pids = since(9, int) }),
    reservations = step(5, "resources",
      map { cpus = text, memory = text, generic_resources = "generic_resources" }),
  },
  restart_policy = map { condition = text, delay = duration, max_attempts = int, window = duration },
  rollback_config = since(7, update_policy(7)),
  update_config = update_policy(4),
}, { null = true })

-- secrets: and configs: entries of a service (short or long syntax)
local grant = either(text, map({ source = text, target = text, uid = text, gid = text, mode = num },
  { open = true }))

-- One entry of a service's networks: mapping.
local attachment = either(
  map {
    aliases = "strings",
    driver_opts = since(13, map({}, { open = true, keys = { { "text", kind("string", "number") } } })),
    ipv4_address = text,
    ipv6_address = text,
  },
  kind("null"))

local long_port = map { mode = text, target = int, published = int, protocol = text }

local long_volume = map({
  type = text,
  source = text,
  target = text,
  read_only = bool,
  consistency = text,
  bind = map({ propagation = text }, { open = true }),
  volume = map({ nocopy = bool }, { open = true }),
  tmpfs = since(6, map({ size = { is = { "integer" }, min = 0 } }, { open = true })),
}, { need = { "type" } })

shared.service = map({
  build = either(text, map({
    args = "pairs",
    cache_from = since(2, "strings"),
    context = text,
    dockerfile = text,
    extra_hosts = since(9, "pairs"),
    labels = since(3, "pairs"),
    network = since(4, text),
    shm_size = since(5, kind("integer", "string")),
    target = since(4, text),
  }, { open = 11 })),
  cap_add = list(text, true),
  cap_drop = list(text, true),
  cgroup_parent = text,
  cgroupns_mode = since(9, text),
  command = either(text, list(text)),
  configs = since(3, list(grant)),
  container_name = text,
  credential_spec = since(3, map { config = since(8, text), file = text, registry = text }),
  depends_on = "strings",
  deploy = "deployment",
  devices = list(text, true),
  dns = "one_or_many",
  dns_search = "one_or_many",
  domainname = text,
  entrypoint = either(text, list(text)),
  env_file = "one_or_many",
  environment = "pairs",
  expose = list({ is = { "string", "number" }, format = "expose" }, true),
  external_links = list(text, true),
  extra_hosts = "pairs",
  healthcheck = "healthcheck",
  hostname = text,
  image = text,
  init = since(7, bool),
  ipc = text,
  isolation = since(5, text),
  labels = "pairs",
  links = list(text, true),
  logging = map {
    driver = text,
    options = map({}, { open = true, keys = { { "text", kind("string", "number", "null") } } }),
  },
  mac_address = text,
  network_mode = text,
  networks = either("strings", map({}, { keys = { { "name", attachment } } })),
  oom_score_adj = since(13, int),
  pid = kind("string", "null"),
  -- 3.0/3.1 know only the short syntax; 3.2 adds the long one
  ports = list(step(2,
    { is = { "string", "number" }, format = "ports" },
    either({ is = { "number" }, format = "ports" }, { is = { "string" }, format = "ports" }, long_port)),
    true),
  privileged = bool,
  read_only = bool,
  restart = text,
  secrets = since(1, list(grant)),
  security_opt = list(text, true),
  shm_size = kind("number", "string"),
  stdin_open = bool,
  stop_grace_period = duration,
  stop_signal = text,
  sysctls = "pairs",
  tmpfs = "one_or_many",
  tty = bool,
  ulimits = map({}, { open = true, keys = { { "lower",
    either(int, map({ hard = int, soft = int }, { need = { "soft", "hard" } })) } } }),
  user = text,
  userns_mode = text,
  -- duplicates were refused up to 3.1, when only the short syntax existed
  volumes = step(2, list(text, true), list(either(text, long_volume))),
  working_dir = text,
}, { keys = { ext7 } })

local external = { is = { "boolean", "mapping" }, fields = { name = text } }
local closed_external = { is = { "boolean", "mapping" }, fields = { name = text }, closed = true }

shared.network = map({
  attachable = since(2, bool),
  driver = text,
  driver_opts = options,
  external = closed_external,
  internal = bool,
  ipam = map {
    config = list(map { subnet = text }),
    driver = text,
  },
  labels = "pairs",
  name = since(5, text),
}, { null = true, keys = { ext7 } })

local function open_map(fields) return map(fields, { open = true }) end

shared.volume = map({
  driver = text,
  driver_opts = options,
  external = closed_external,
  labels = "pairs",
  name = since(4, text),
  ["x-cluster-spec"] = since(10, open_map {
    group = text,
    access_mode = open_map {
      scope = text,
      sharing = text,
      block_volume = open_map {},
      mount_volume = open_map { fs_type = text, mount_flags = list(text) },
    },
    accessibility_requirements = open_map {
      requisite = list(open_map { segments = "pairs" }),
      preferred = list(open_map { segments = "pairs" }),
    },
    capacity_range = open_map { required_bytes = text, limit_bytes = text },
    availability = text,
  }),
}, { null = true, keys = { ext7 } })

shared.secret = map({
  driver = since(8, text),
  driver_opts = since(8, options),
  external = external,
  file = text,
  labels = "pairs",
  name = since(5, text),
  template_driver = since(8, text),
}, { keys = { ext7 } })

shared.config = map({
  external = external,
  file = text,
  labels = "pairs",
  name = since(5, text),
  template_driver = since(8, text),
}, { keys = { ext7 } })

-- The file itself. Up to 3.9 a file had to say its version.
local root = {
  is = { "mapping" },
  closed = true,
  need = upto(9, { "version" }),
  keys = { since(4, { "x", any }) },
  fields = {
    version = text,
    services = named("service"),
    networks = map({}, { open = true, keys = { { "name", "network" } } }),
    volumes = named("volume"),
    secrets = since(1, named("secret")),
    configs = since(3, named("config")),
  },
}

-- Resolving markers ---------------------------------------------------------

M.LAST_MINOR = 13

-- Resolves markers in x for minor version m; returns nil for "absent".
local function pick(x, m)
  if type(x) ~= "table" then return x end
  if x[SINCE] then if m >= x[SINCE] then return pick(x[1], m) end return nil end
  if x[UPTO] then if m <= x[UPTO] then return pick(x[1], m) end return nil end
  if x[STEP] then
    if m < x[STEP] then return pick(x[1], m) end
    return pick(x[2], m)
  end
  return x
end

local compile_rule

local function compile_list(xs, m, _cache)
  if xs == nil then return nil end
  local out = {}
  for _, x in ipairs(xs) do
    local v = pick(x, m)
    if v ~= nil then out[#out + 1] = v end
  end
  return out
end

compile_rule = function(x, m, cache)
  x = pick(x, m)
  if x == nil then return nil end
  if type(x) == "string" then
    local done = cache[x]
    if done then return done end
    assert(shared[x], "schema_rules: no shared rule " .. x)
    done = {}
    cache[x] = done
    local r = compile_rule(shared[x], m, cache)
    for k, v in pairs(r) do done[k] = v end
    return done
  end
  local r = {}
  r.is = x.is
  r.closed = pick(x.closed, m) or nil
  r.need = pick(x.need, m)
  if r.need and #r.need == 0 then r.need = nil end
  r.unique = x.unique or nil
  r.format, r.oneof, r.min = x.format, x.oneof, x.min
  if x.either then
    r.either = {}
    for _, alt in ipairs(x.either) do r.either[#r.either + 1] = compile_rule(alt, m, cache) end
  end
  if x.item then r.item = compile_rule(x.item, m, cache) end
  if x.fields then
    r.fields = {}
    for name, f in pairs(x.fields) do r.fields[name] = compile_rule(f, m, cache) end
  end
  local keys = compile_list(x.keys, m, cache)
  if keys and #keys > 0 then
    r.keys = {}
    for i, k in ipairs(keys) do r.keys[i] = { k[1], compile_rule(k[2], m, cache) } end
  end
  return r
end

-- compile(m): the rule tree of version 3.m (a fresh tree per call; the
-- schema module caches it).
function M.compile(m)
  assert(math.type(m) == "integer" and m >= 0 and m <= M.LAST_MINOR, "schema_rules.compile: bad minor version")
  return compile_rule(root, m, {})
end

-- Service keys docker refuses before looking at the version (name ->
-- docker's advice), and the order it lists them in.
M.forbidden = {
  extends = "Support for `extends` is not implemented yet.",
  volume_driver = "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
  volumes_from = "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
  cpu_quota = "Set resource limits using deploy.resources",
  cpu_shares = "Set resource limits using deploy.resources",
  cpuset = "Set resource limits using deploy.resources",
  mem_limit = "Set resource limits using deploy.resources",
  memswap_limit = "Set resource limits using deploy.resources",
}

return M
