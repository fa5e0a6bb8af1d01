-- slipway.compose.normalize: one interpolated compose file (a decoded YAML
-- document) -> a Stack, with the transformations of docker/cli's stack
-- loader (loadSections + its mapstructure hooks):
--   * short syntax to long syntax: ports, volumes, secrets/configs refs,
--     `build: dir`, list-form networks (-> {name = null});
--   * list-or-map fields to maps (environment, labels, sysctls, build
--     args) with string values (Go's %v: 1.50 -> "1.5", 0755 -> "493");
--   * strings to lists: command/entrypoint (shell-split), dns, tmpfs,
--     env_file, healthcheck test ("cmd" -> {"CMD-SHELL", "cmd"});
--   * durations in Go's notation ("90s" -> "1m30s"), sizes in bytes
--     ("50M" -> 52428800), relative paths absolute against the working
--     directory, "~" with $HOME, env_file contents into environment;
--   * external networks/volumes/secrets/configs get their `name`.
--
-- The Stack is plain tables with the yaml field names of docker's types:
--   { version = "3.13", services = {web = {...}}, networks = {...},
--     volumes = {...}, secrets = {...}, configs = {...}, ["x-..."] = ... }
-- Absent fields are nil. Durations are strings ("1m30s"), byte sizes are
-- integers, environment values are strings or yaml.null.
local convert = require("slipway.compose.convert")
local ports = require("slipway.compose.ports")
local volume_spec = require("slipway.compose.volume_spec")
local envfile = require("slipway.compose.envfile")
local yaml = require("slipway.yaml")

local M = {}
local NULL = yaml.null
local ARRAY = yaml.array_mt

-- Sequences are marked by the decoder; a Stack a script built may hold
-- plain Lua lists too.
local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == ARRAY then return true end
  if mt ~= nil or v[1] == nil then return false end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n == #v
end
local function is_map(v) return type(v) == "table" and v ~= NULL and not is_list(v) end
M.is_list = is_list
local function list(t) return setmetatable(t or {}, ARRAY) end
M.list = list

local function keys(t) return yaml.keys(t) end

-- Fields that `docker stack deploy` ignores or that are deprecated
-- (docker/cli types.UnsupportedProperties / DeprecatedProperties).
M.UNSUPPORTED = {
  build = true, cgroupns_mode = true, cgroup_parent = true, devices = true, domainname = true,
  external_links = true, ipc = true, links = true, mac_address = true, network_mode = true,
  pid = true, privileged = true, restart = true, security_opt = true, shm_size = true,
  userns_mode = true,
}
M.DEPRECATED = {
  container_name = "Setting the container name is not supported.",
  expose = "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
}

---------------------------------------------------------------------------
-- Typed readers. Each takes (value, ctx, holder, key, path) and returns the
-- normalized value, or nil for "absent". Wrong types fail with the path
-- (the schema check normally reports them first).

local function want(ctx, holder, key, path, what, v)
  local got = v == NULL and "null" or convert.is_uint64(v) and "an integer above 2^63-1" or type(v)
  ctx.fail(holder, key, ("%s must be %s, got %s"):format(path, what, got))
end

local function str(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) ~= "string" then want(ctx, h, k, path, "a string", v) end
  if v == "" then return nil end
  return v
end

local function bool(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) ~= "boolean" then want(ctx, h, k, path, "a boolean", v) end
  return v or nil
end

local function bool_ptr(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) ~= "boolean" then want(ctx, h, k, path, "a boolean", v) end
  return v
end

-- An integer field, by the Go type docker decodes it into, with the
-- conversions of its decoder (mapstructure): an unsigned field refuses a
-- negative number and a uint32 keeps the low 32 bits of a larger one. An
-- integer above 2^63-1 (a yaml uint64) stays one in a uint64 field and
-- wraps around to a negative number in an int64; a Go int field refuses
-- it (docker panics). A field that is a pointer in docker keeps 0, the
-- others drop it (omitempty).
local function integer(go_type, pointer)
  local unsigned = go_type:sub(1, 1) == "u"
  return function(v, ctx, h, k, path)
    if v == nil or v == NULL then return nil end
    if convert.is_uint64(v) then
      if go_type == "uint64" then return v end
      if go_type == "int" then ctx.fail(h, k, ("%s: %s is out of range for an int"):format(path, tostring(v))) end
      v = convert.uint64_bits(v)
    elseif math.type(v) ~= "integer" then
      want(ctx, h, k, path, "an integer", v)
    elseif unsigned and v < 0 then
      ctx.fail(h, k, ("%s: cannot parse %d, it overflows uint"):format(path, v))
    end
    if go_type == "uint32" then v = v & 0xFFFFFFFF end
    if v == 0 and not pointer then return nil end
    return v
  end
end
local int, int64, uint32, uint64 = integer("int"), integer("int64"), integer("uint32"), integer("uint64")
local uint32_ptr, uint64_ptr = integer("uint32", true), integer("uint64", true)

local function number(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if convert.is_uint64(v) then v = tonumber(tostring(v)) end   -- Go: float32(u)
  if type(v) ~= "number" then want(ctx, h, k, path, "a number", v) end
  return v ~= 0 and v or nil
end

local function duration(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) ~= "string" then ctx.fail(h, k, ("%s: invalid type %s for duration"):format(path, math.type(v) or type(v))) end
  local ns, err = convert.parse_duration(v)
  if not ns then ctx.fail(h, k, ("%s: %s"):format(path, err)) end
  return convert.format_duration(ns)
end

local function duration_value(v, ctx, h, k, path)   -- Duration (not a pointer): 0 omitted
  local d = duration(v, ctx, h, k, path)
  if d == "0s" then return nil end
  return d
end

local function bytes(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  local n
  if math.type(v) == "integer" then n = v
  elseif type(v) == "string" then
    local err
    n, err = convert.ram_in_bytes(v)
    if not n then ctx.fail(h, k, ("%s: %s"):format(path, err)) end
  else
    want(ctx, h, k, path, "a string or an integer", v)
  end
  return n ~= 0 and n or nil
end

local function str_list(v, ctx, h, k, path)        -- []string
  if v == nil or v == NULL then return nil end
  if not is_list(v) then want(ctx, h, k, path, "a list", v) end
  if #v == 0 then return nil end
  local out = list()
  for i, s in ipairs(v) do
    if type(s) ~= "string" then want(ctx, v, i, path .. "[" .. (i - 1) .. "]", "a string", s) end
    out[i] = s
  end
  return out
end

local function string_or_list(v, ctx, h, k, path)  -- StringList
  if type(v) == "string" then return list({ v }) end
  return str_list(v, ctx, h, k, path)
end

local function string_or_number_list(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_list(v) then want(ctx, h, k, path, "a list", v) end
  if #v == 0 then return nil end
  local out = list()
  for i, s in ipairs(v) do out[i] = convert.sprint(s) end
  return out
end

local function shell_command(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) == "string" then
    local words, err = convert.shell_split(v)
    if not words then ctx.fail(h, k, ("%s: %s"):format(path, err)) end
    if #words == 0 then return nil end
    return list(words)
  end
  return str_list(v, ctx, h, k, path)
end

-- map[string]string from a map ({k = v}, %v of values, null -> "")
local function string_map(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_map(v) then want(ctx, h, k, path, "a mapping", v) end
  local out = {}
  for _, key in ipairs(keys(v)) do
    local val = v[key]
    out[tostring(key)] = (val == NULL) and "" or convert.sprint(val)
  end
  if next(out) == nil then return nil end
  return out
end

-- Mapping / Labels / MappingWithEquals: a map, or a list of "k<sep>v"
local function mapping_or_list(sep, allow_nil)
  return function(v, ctx, h, k, path)
    if v == nil or v == NULL then return nil end
    local out = {}
    if is_list(v) then
      for i, item in ipairs(v) do
        if type(item) ~= "string" then want(ctx, v, i, path .. "[" .. (i - 1) .. "]", "a string", item) end
        local at = item:find(sep, 1, true)
        if at then out[item:sub(1, at - 1)] = item:sub(at + #sep)
        elseif allow_nil then out[item] = NULL
        else out[item] = "" end
      end
    elseif is_map(v) then
      for _, key in ipairs(keys(v)) do
        local val = v[key]
        if val == NULL then out[tostring(key)] = allow_nil and NULL or ""
        else out[tostring(key)] = convert.sprint(val) end
      end
    else
      want(ctx, h, k, path, "a mapping or a list", v)
    end
    if next(out) == nil then return nil end
    return out
  end
end
local labels = mapping_or_list("=", false)
local mapping_with_equals = mapping_or_list("=", true)

-- HostsList: map -> sorted "host:ip" (docker formats it with %s, so a
-- number is "h:%!s(int=5)"); list entries "host=ip" or "host:ip", split at
-- the first "=" if there is one. A Stack being rendered holds "host:ip"
-- entries already, so there the first of ":" and "=" separates.
local function hosts_list(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  local entries = {}
  if is_map(v) then
    for _, key in ipairs(keys(v)) do
      local val = v[key]
      if val ~= NULL then entries[#entries + 1] = tostring(key) .. ":" .. convert.sprint_s(val) end
    end
    table.sort(entries)
  elseif is_list(v) then
    for _, item in ipairs(v) do
      local s = convert.sprint(item)
      local at = s:find("=", 1, true)
      local colon = s:find(":", 1, true)
      if not at or (ctx.render and colon and colon < at) then at = colon end
      if at then entries[#entries + 1] = s:sub(1, at - 1) .. ":" .. s:sub(at + 1) end
    end
  else
    want(ctx, h, k, path, "a mapping or a list", v)
  end
  if #entries == 0 then return nil end
  for i, e in ipairs(entries) do
    local host, ip = e:match("^(.-):(.*)$")
    if #ip > 2 and ip:sub(1, 1) == "[" and ip:sub(-1) == "]" then ip = ip:sub(2, -2) end
    entries[i] = host .. ":" .. ip
  end
  return list(entries)
end

-- A struct: fields = {{name, reader}, ...}; unknown keys are left to the
-- schema (docker's mapstructure ignores them). Returns nil when empty
-- unless keep_empty (a Go pointer that was set).
-- In render mode (a Stack a script may have changed) unknown keys are
-- errors: a typo must not vanish. known: the set of field names.
local function check_known(v, known, ctx, path)
  if not ctx.render then return end
  for k in pairs(v) do
    if not known[k] and not (type(k) == "string" and (k:sub(1, 2) == "x-" or k:sub(1, 1) == "_")) then
      ctx.fail(v, k, ("%s: unknown field '%s'"):format(path, tostring(k)))
    end
  end
end

local function known_set(fields)
  local known = {}
  for _, f in ipairs(fields) do known[f[1]] = true end
  return known
end

local function readers_of(fields)
  local readers = {}
  for _, f in ipairs(fields) do readers[f[1]] = f[2] end
  return readers
end

local function struct(fields, keep_empty)
  local known = known_set(fields)
  local readers = readers_of(fields)
  return function(v, ctx, h, k, path)
    if v == nil or v == NULL then return nil end
    if not is_map(v) then want(ctx, h, k, path, "a mapping", v) end
    check_known(v, known, ctx, path)
    local out = {}
    for name, value in pairs(v) do             -- (a struct's result is unordered)
      local reader = readers[name]
      if reader then out[name] = reader(value, ctx, v, name, path .. "." .. name) end
    end
    if next(out) == nil and not keep_empty then return nil end
    return out
  end
end

local function list_of(reader)
  return function(v, ctx, h, k, path)
    if v == nil or v == NULL then return nil end
    if not is_list(v) then want(ctx, h, k, path, "a list", v) end
    if #v == 0 then return nil end
    local out = list()
    for i, item in ipairs(v) do
      out[#out + 1] = reader(item, ctx, v, i, path .. "[" .. (i - 1) .. "]") or {}
    end
    return out
  end
end

---------------------------------------------------------------------------
-- Service fields

local update_config = struct({
  { "parallelism", uint64_ptr }, { "delay", duration_value }, { "failure_action", str },
  { "monitor", duration_value }, { "max_failure_ratio", number }, { "order", str },
}, true)

-- DiscreteGenericResource has no omitempty: kind and value are always printed.
local discrete_fields = struct({ { "kind", str }, { "value", int64 } }, true)
local function discrete_resource(v, ctx, h, k, path)
  local out = discrete_fields(v, ctx, h, k, path)
  if out then
    out.kind = out.kind or ""
    out.value = out.value or 0
  end
  return out
end

local deploy = struct({
  { "mode", str }, { "replicas", uint64_ptr }, { "labels", labels },
  { "update_config", update_config }, { "rollback_config", update_config },
  { "resources", struct({
    { "limits", struct({ { "cpus", str }, { "memory", bytes }, { "pids", int64 } }, true) },
    { "reservations", struct({ { "cpus", str }, { "memory", bytes },
      { "generic_resources", list_of(struct({ { "discrete_resource_spec", discrete_resource } })) } }, true) },
  }) },
  { "restart_policy", struct({ { "condition", str }, { "delay", duration }, { "max_attempts", uint64_ptr },
    { "window", duration } }, true) },
  { "placement", struct({ { "constraints", str_list },
    { "preferences", list_of(struct({ { "spread", str } })) }, { "max_replicas_per_node", uint64 } }) },
  { "endpoint_mode", str },
})

local function health_test(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) == "string" then return list({ "CMD-SHELL", v }) end
  return str_list(v, ctx, h, k, path)
end

local healthcheck = struct({
  { "test", health_test }, { "timeout", duration }, { "interval", duration }, { "retries", uint64_ptr },
  { "start_period", duration }, { "start_interval", duration }, { "disable", bool },
}, true)

local build_struct = struct({
  { "context", str }, { "dockerfile", str }, { "args", mapping_with_equals }, { "labels", labels },
  { "cache_from", string_or_list }, { "extra_hosts", hosts_list }, { "network", str }, { "target", str },
})
local function build(v, ctx, h, k, path)
  if type(v) == "string" then return v ~= "" and { context = v } or nil end
  return build_struct(v, ctx, h, k, path)
end

local file_ref = struct({ { "source", str }, { "target", str }, { "uid", str }, { "gid", str }, { "mode", uint32_ptr } })
local function file_refs(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_list(v) then want(ctx, h, k, path, "a list", v) end
  if #v == 0 then return nil end
  local out = list()
  for i, item in ipairs(v) do
    if type(item) == "string" then out[i] = { source = item }
    else out[i] = file_ref(item, ctx, v, i, path .. "[" .. (i - 1) .. "]") or {} end
  end
  return out
end

local service_network = struct({ { "aliases", str_list }, { "driver_opts", string_map }, { "ipv4_address", str },
  { "ipv6_address", str } }, true)

local function service_networks(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  local out = {}
  if is_list(v) then
    for _, name in ipairs(v) do out[convert.sprint(name)] = NULL end
  elseif is_map(v) then
    local cfg = service_network
    for _, name in ipairs(keys(v)) do
      local val = v[name]
      out[tostring(name)] = (val == NULL) and NULL or cfg(val, ctx, v, name, path .. "." .. tostring(name))
    end
  else
    want(ctx, h, k, path, "a mapping or a list", v)
  end
  if next(out) == nil then return nil end
  return out
end

local port_long = struct({ { "mode", str }, { "target", uint32 }, { "published", uint32 }, { "protocol", str } }, true)

local function service_ports(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_list(v) then ctx.fail(h, k, ("%s: invalid type %s for port"):format(path, type(v))) end
  local out = list()
  local long = port_long
  for i, item in ipairs(v) do
    if math.type(item) == "integer" or type(item) == "string" then
      local parsed, warnings = ports.parse(tostring(item))
      if not parsed then ctx.fail(v, i, ("%s[%d]: %s"):format(path, i - 1, warnings)) end
      for _, w in ipairs(warnings) do ctx.warn(v, i, w) end
      for _, p in ipairs(parsed) do out[#out + 1] = p end
    elseif is_map(item) then
      out[#out + 1] = long(item, ctx, v, i, path .. "[" .. (i - 1) .. "]")
    else
      ctx.fail(v, i, ("%s[%d]: invalid type %s for port"):format(path, i - 1, math.type(item) or type(item)))
    end
  end
  if #out == 0 then return nil end
  return out
end

local function ulimits(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_map(v) then want(ctx, h, k, path, "a mapping", v) end
  local out = {}
  for _, name in ipairs(keys(v)) do
    local val = v[name]
    if math.type(val) == "integer" then out[tostring(name)] = val
    elseif is_map(val) then
      out[tostring(name)] = { soft = int(val.soft, ctx, val, "soft", path .. "." .. name .. ".soft"),
        hard = int(val.hard, ctx, val, "hard", path .. "." .. name .. ".hard") }
    else
      local go_type = convert.is_uint64(val) and "uint64" or type(val)
      ctx.fail(v, name, ("%s.%s: invalid type %s for ulimits"):format(path, name, go_type))
    end
  end
  if next(out) == nil then return nil end
  return out
end

local volume_long = struct({
  { "type", str }, { "source", str }, { "target", str }, { "read_only", bool }, { "consistency", str },
  { "bind", struct({ { "propagation", str } }, true) },
  { "volume", struct({ { "nocopy", bool }, { "subpath", str } }, true) },
  { "image", struct({ { "subpath", str } }, true) },
  { "tmpfs", struct({ { "size", int64 } }, true) },
  { "cluster", struct({}, true) },
}, true)

local function service_volumes(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if not is_list(v) then want(ctx, h, k, path, "a list", v) end
  local out = list()
  for i, item in ipairs(v) do
    local ipath = path .. "[" .. (i - 1) .. "]"
    local vol
    if type(item) == "string" then
      local err
      vol, err = volume_spec.parse(item)
      if not vol then ctx.fail(v, i, ipath .. ": " .. err) end
    elseif is_map(item) then
      vol = volume_long(item, ctx, v, i, ipath)
    else
      ctx.fail(v, i, ("%s: invalid type %s for service volume"):format(ipath, type(item)))
    end
    if vol.type == "bind" then
      if not vol.source then
        ctx.fail(v, i, ipath .. ': invalid mount config for type "bind": field Source must not be empty')
      end
      local src = vol.source
      if src:sub(1, 1) == "~" then
        local home = ctx.lookup("HOME")
        if home then src = home .. src:sub(2)
        else ctx.warn(v, i, "cannot expand '~', because the environment lacks HOME") end
      end
      if src:sub(1, 1) ~= "/" and not convert.is_windows_abs(src) then src = convert.abs_path(ctx.workdir, src) end
      vol.source = src
    end
    out[i] = vol
  end
  if #out == 0 then return nil end
  return out
end

local credential_spec = struct({ { "config", str }, { "file", str }, { "registry", str } })
local logging = struct({ { "driver", str }, { "options", string_map } }, true)

-- oom_score_adj passes the schema, but docker's loader leaves the field
-- unset (`docker stack config` never prints it, whatever the value), so
-- docker neither prints nor deploys it: checked as an integer, then
-- dropped with a warning.
local function oom_score_adj(v, ctx, h, k, path)
  int64(v, ctx, h, k, path)
  if v ~= nil and v ~= NULL then ctx.warn(h, k, path .. ": ignored by docker stack deploy (its loader does not read it)") end
  return nil
end

-- In docker's ServiceConfig field order (the order `render` writes them).
M.SERVICE_FIELDS = {
  { "build", build }, { "cap_add", str_list }, { "cap_drop", str_list }, { "cgroupns_mode", str },
  { "cgroup_parent", str }, { "command", shell_command }, { "configs", file_refs },
  { "container_name", str }, { "credential_spec", credential_spec }, { "depends_on", str_list },
  { "deploy", deploy }, { "devices", str_list }, { "dns", string_or_list }, { "dns_search", string_or_list },
  { "domainname", str }, { "entrypoint", shell_command }, { "environment", mapping_with_equals },
  { "env_file", string_or_list }, { "expose", string_or_number_list }, { "external_links", str_list },
  { "extra_hosts", hosts_list }, { "hostname", str }, { "healthcheck", healthcheck }, { "image", str },
  { "init", bool_ptr }, { "ipc", str }, { "isolation", str }, { "labels", labels }, { "links", str_list },
  { "logging", logging }, { "mac_address", str }, { "network_mode", str }, { "networks", service_networks },
  { "pid", str }, { "ports", service_ports }, { "privileged", bool }, { "read_only", bool },
  { "restart", str }, { "secrets", file_refs }, { "security_opt", str_list }, { "shm_size", str },
  { "stdin_open", bool }, { "stop_grace_period", duration }, { "stop_signal", str },
  { "sysctls", labels }, { "tmpfs", string_or_list }, { "tty", bool }, { "ulimits", ulimits },
  { "user", str }, { "oom_score_adj", oom_score_adj }, { "userns_mode", str }, { "volumes", service_volumes },
  { "working_dir", str },
}

local SERVICE_KNOWN = known_set(M.SERVICE_FIELDS)
local SERVICE_READERS = readers_of(M.SERVICE_FIELDS)

-- environment = env_file contents, then the environment key; an empty or
-- missing value is taken from the variables when they have it.
local function resolve_environment(svc, ctx, raw)
  local env = {}
  local function update(vars, order)
    for _, k in ipairs(order) do
      local v = vars[k]
      local from_env = ctx.lookup(k)
      if (v == NULL or v == "") and from_env ~= nil then env[k] = from_env else env[k] = v end
    end
  end
  if svc.env_file and not ctx.render then     -- a rendered Stack has them merged
    local vars, order = {}, {}
    for _, file in ipairs(svc.env_file) do
      local lines, err = envfile.parse_env_file(convert.abs_path(ctx.workdir, file), ctx.lookup, ctx.max_bytes)
      if not lines then ctx.fail(raw, "env_file", err) end
      for _, line in ipairs(lines) do
        local at = line:find("=", 1, true)
        local k, v = line, NULL
        if at then k, v = line:sub(1, at - 1), line:sub(at + 1) end
        if vars[k] == nil then order[#order + 1] = k end
        vars[k] = v
      end
    end
    update(vars, order)
  end
  if svc.environment then
    local order = {}
    for k in pairs(svc.environment) do order[#order + 1] = k end
    table.sort(order)
    update(svc.environment, order)
  end
  svc.environment = next(env) and env or nil
end

local function extras(raw)
  local out
  for _, k in ipairs(keys(raw)) do
    if type(k) == "string" and k:sub(1, 2) == "x-" then
      out = out or {}
      out[k] = raw[k]
    end
  end
  return out
end

function M.service(_name, raw, ctx, path)
  if raw == NULL then raw = {} end
  if not is_map(raw) then want(ctx, nil, nil, path, "a mapping", raw) end
  check_known(raw, SERVICE_KNOWN, ctx, path)
  local svc = {}
  for _, key in ipairs(keys(raw)) do            -- document order: warnings read in order
    local reader = SERVICE_READERS[key]
    if reader then
      svc[key] = reader(raw[key], ctx, raw, key, path .. "." .. key)
      if M.UNSUPPORTED[key] then
        ctx.warn(raw, key, ("%s.%s: not supported by docker stack deploy, ignored"):format(path, key))
      elseif M.DEPRECATED[key] then
        ctx.warn(raw, key, ("%s.%s: ignored by docker stack deploy: %s"):format(path, key, M.DEPRECATED[key]))
      end
    end
  end
  resolve_environment(svc, ctx, raw)
  for k, v in pairs(extras(raw) or {}) do svc[k] = v end
  return svc
end

---------------------------------------------------------------------------
-- Top-level sections

local function external(v, ctx, h, k, path)
  if v == nil or v == NULL then return nil end
  if type(v) == "boolean" then return { external = v } end
  if is_map(v) then
    local name = v.name
    if name ~= nil and name ~= NULL and type(name) ~= "string" then want(ctx, v, "name", path .. ".name", "a string", name) end
    return { external = true, name = (name ~= NULL) and name or nil }
  end
  ctx.fail(h, k, ("%s: invalid type %s for external"):format(path, type(v)))
end

local ipam = struct({ { "driver", str }, { "config", list_of(struct({ { "subnet", str } })) } })

local NETWORK = struct({
  { "name", str }, { "driver", str }, { "driver_opts", string_map }, { "ipam", ipam },
  { "external", external }, { "internal", bool }, { "attachable", bool }, { "labels", labels },
}, true)
local topology = list_of(struct({ { "segments", labels } }))
local cluster_spec = struct({
  { "group", str },
  { "access_mode", struct({ { "scope", str }, { "sharing", str },
    { "mount_volume", struct({ { "fs_type", str }, { "mount_flags", str_list } }, true) },
    { "block_volume", struct({}, true) } }, true) },
  { "accessibility_requirements", struct({ { "requisite", topology }, { "preferred", topology } }, true) },
  { "capacity_range", struct({ { "required_bytes", bytes }, { "limit_bytes", bytes } }, true) },
  { "secrets", list_of(struct({ { "key", str }, { "secret", str } })) },
  { "availability", str },
}, true)

local VOLUME = struct({
  { "name", str }, { "driver", str }, { "driver_opts", string_map }, { "external", external },
  { "labels", labels }, { "x-cluster-spec", cluster_spec },
}, true)
local FILE_OBJECT = struct({
  { "name", str }, { "file", str }, { "external", external }, { "labels", labels }, { "driver", str },
  { "driver_opts", string_map }, { "template_driver", str },
}, true)

local function section(raw, ctx, key, fields, finish)
  local src = raw[key]
  if src == nil or src == NULL then return nil end
  if not is_map(src) then want(ctx, raw, key, key, "a mapping", src) end
  local out = {}
  for _, name in ipairs(keys(src)) do
    local def = src[name]
    if def == NULL then def = {} end
    local path = key .. "." .. tostring(name)
    local obj = fields(def, ctx, src, name, path)
    finish(tostring(name), obj, def, src, path)
    out[tostring(name)] = obj
  end
  if next(out) == nil then return nil end
  return out
end

local function ge(version, min)
  local a1, a2 = version:match("^(%d+)%.?(%d*)")
  local b1, b2 = min:match("^(%d+)%.?(%d*)")
  a1, a2, b1, b2 = tonumber(a1) or 0, tonumber(a2) or 0, tonumber(b1) or 0, tonumber(b2) or 0
  return a1 > b1 or (a1 == b1 and a2 >= b2)
end

-- external.name -> name (deprecated, with a warning from `since`), or the
-- key as name. Returns true when the object is external.
local function resolve_external(kind, name, obj, def, holder, ctx, since)
  local ext = obj.external
  if not (ext and ext.external) then
    if ext then obj.external = nil end                   -- external: false
    return false
  end
  if ext.name then
    if obj.name then
      ctx.fail(holder, name, ("%s %s: %s.external.name and %s.name conflict; only use %s.name")
        :format(kind, name, kind, kind, kind))
    end
    if ge(ctx.version, since) then
      ctx.warn(def, "external", ("%s %s: %s.external.name is deprecated in favor of %s.name"):format(kind, name, kind, kind))
    end
    obj.name = ext.name
  elseif not obj.name then
    obj.name = name
  end
  obj.external = true
  return true
end

local TOP_KNOWN = known_set({ { "version" }, { "services" }, { "networks" }, { "volumes" }, { "secrets" }, { "configs" } })

function M.stack(raw, ctx)
  check_known(raw, TOP_KNOWN, ctx, "(root)")
  local stack = { version = ctx.version }
  local services = raw.services
  stack.services = {}
  if services ~= nil and services ~= NULL then
    if not is_map(services) then want(ctx, raw, "services", "services", "a mapping", services) end
    for _, name in ipairs(keys(services)) do
      stack.services[tostring(name)] = M.service(tostring(name), services[name], ctx, "services." .. tostring(name))
    end
  end
  stack.networks = section(raw, ctx, "networks", NETWORK, function(name, obj, def, holder)
    if resolve_external("network", name, obj, def, holder, ctx, "3.5") then
      for k, v in pairs(extras(def) or {}) do obj[k] = v end
    end
  end)
  stack.volumes = section(raw, ctx, "volumes", VOLUME, function(name, obj, def, holder)
    if obj.external and obj.external.external then
      for _, f in ipairs({ "driver", "driver_opts", "labels" }) do
        if obj[f] then
          ctx.fail(holder, name, ('conflicting parameters "external" and %s specified for volume %s')
            :format(convert.quote(f), convert.quote(name)))
        end
      end
    end
    if resolve_external("volume", name, obj, def, holder, ctx, "3.4") then
      for k, v in pairs(extras(def) or {}) do obj[k] = v end
    end
  end)
  for _, kind in ipairs({ "secret", "config" }) do
    stack[kind .. "s"] = section(raw, ctx, kind .. "s", FILE_OBJECT, function(name, obj, def, holder)
      if not resolve_external(kind, name, obj, def, holder, ctx, "3.5") then
        if obj.driver then
          if obj.file then
            ctx.fail(holder, name, ("%s %s: %s.driver and %s.file conflict; only use %s.driver")
              :format(kind, name, kind, kind, kind))
          end
        else
          obj.file = convert.abs_path(ctx.workdir, obj.file or "")
        end
      end
      for k, v in pairs(extras(def) or {}) do obj[k] = v end
    end)
  end
  for k, v in pairs(extras(raw) or {}) do stack[k] = v end
  return stack
end

return M
