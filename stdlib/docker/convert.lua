-- slipway.docker.convert: a compose Stack (the shape `docker stack config`
-- prints, as slipway.compose.load returns it) to Engine API objects, the
-- way `docker stack deploy` converts it (docker/cli cli/compose/convert):
-- service specs with the namespace labels, the default network, secret and
-- config references, healthcheck, deploy.* (mode, replicas, update and
-- rollback config, restart policy, placement, resources, endpoint mode,
-- labels), mounts, ulimits, capabilities...
--
--   convert.stack(name, stack) -> {
--     services = { [short name] = spec },          -- ordered list in .order
--     networks = { [full name] = create body },   external_networks = { names },
--     secrets  = { { key =, name =, spec = {Name, Labels, Data(base64)}, ... } },
--     configs  = { ... } }
--
-- Secret and config references are left with SecretName/ConfigName set;
-- the deployer fills in the IDs. Durations in the Stack are Go duration
-- strings ("1m30s"); the engine wants integer nanoseconds.
local json = require("slipway.json")
local yaml = require("slipway.yaml")
local secret = require("slipway.secret")

local M = {}

local NS_LABEL = "com.docker.stack.namespace"
local IMAGE_LABEL = "com.docker.stack.image"
M.NS_LABEL, M.IMAGE_LABEL = NS_LABEL, IMAGE_LABEL

local function fail(service, msg)
  error({ convert_error = true, message = (service and ("service %s: "):format(service) or "") .. msg }, 0)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

local function is_null(v) return v == nil or v == json.null end

local function list(v)
  if is_null(v) then return nil end
  if type(v) == "string" then return { v } end
  local out = {}
  for i, x in ipairs(v) do out[i] = tostring(x) end
  if #out == 0 then return nil end   -- an empty table would encode as {}
  return out
end

local function map_of_strings(v)
  if is_null(v) then return nil end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "number" then          -- list form "k=v"
      local a, b = tostring(x):match("^([^=]*)=(.*)$")
      if a then out[a] = b else out[tostring(x)] = "" end
    else
      out[k] = is_null(x) and "" or tostring(x)
    end
  end
  return out
end

---------------------------------------------------------------- units

local DUR = { ns = 1, us = 1e3, ["µs"] = 1e3, ["μs"] = 1e3, ms = 1e6, s = 1e9, m = 60e9, h = 3600e9 }

-- A Go duration ("1m30s", "1.5s", "250ms") or a number of seconds -> ns.
function M.duration_ns(v, what)
  if is_null(v) then return nil end
  if type(v) == "number" then return math.floor(v * 1e9 + 0.5) end
  local s = tostring(v)
  if s == "0" then return 0 end
  local sign = 1
  if s:sub(1, 1) == "-" then sign, s = -1, s:sub(2) elseif s:sub(1, 1) == "+" then s = s:sub(2) end
  local total, pos = 0, 1
  if s == "" then fail(nil, ("bad duration %q for %s"):format(tostring(v), what or "a duration")) end
  while pos <= #s do
    local num, unit, nxt = s:match("^([%d%.]+)([^%d%.]+)()", pos)
    if not num or not DUR[unit] or not tonumber(num) then
      fail(nil, ("bad duration %q for %s (expected e.g. 10s, 1m30s, 500ms)"):format(tostring(v), what or "a duration"))
    end
    total = total + tonumber(num) * DUR[unit]
    pos = nxt
  end
  return sign * math.floor(total + 0.5)
end

local BYTES = { b = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4, p = 1024 ^ 5 }

-- "52428800", 52428800, "50M", "1.5g", "512kb" -> bytes (binary units,
-- as docker's RAMInBytes).
function M.bytes(v, what)
  if is_null(v) then return nil end
  if type(v) == "number" then return math.floor(v) end
  local num, unit = tostring(v):lower():match("^%s*([%d%.]+)%s*([kmgtpb]?)b?%s*$")
  if not num or not tonumber(num) then
    fail(nil, ("bad size %q for %s (expected e.g. 512m, 1g, 1048576)"):format(tostring(v), what or "a size"))
  end
  return math.floor(tonumber(num) * BYTES[unit ~= "" and unit or "b"])
end

-- "0.5" CPUs -> 500000000 nano CPUs; rejects what is finer than 1e-9.
function M.nano_cpus(v, service)
  if is_null(v) or v == "" then return nil end
  local s = tostring(v)
  local int, frac = s:match("^%s*(%d*)%.?(%d*)%s*$")
  if not int or (int == "" and frac == "") then
    fail(service, ("failed to parse %s as a rational number"):format(s))
  end
  frac = frac:gsub("0+$", "")
  if #frac > 9 then fail(service, "value is too precise") end
  return math.tointeger((tonumber(int ~= "" and int or "0") * 1000000000)
    + tonumber((frac .. "000000000"):sub(1, 9)))
end

-- A count from the Stack; one above 2^63-1 (a yaml uint64) goes to the
-- Engine API as it is (json.encode writes its digits).
local function uint(v)
  if is_null(v) then return nil end
  if getmetatable(v) == yaml.uint64_mt then return v end
  return math.tointeger(tonumber(v)) or tonumber(v)
end

-- Split a shell-form command the way the compose loader does (shlex).
function M.shell_split(s)
  local out, cur, i, q, have = {}, {}, 1, nil, false
  while i <= #s do
    local ch = s:sub(i, i)
    if q then
      if ch == q then q = nil
      elseif ch == "\\" and q == '"' and i < #s then i = i + 1; cur[#cur + 1] = s:sub(i, i)
      else cur[#cur + 1] = ch end
    elseif ch == "'" or ch == '"' then q, have = ch, true
    elseif ch == "\\" and i < #s then i = i + 1; cur[#cur + 1] = s:sub(i, i); have = true
    elseif ch:match("%s") then
      if have or #cur > 0 then out[#out + 1] = table.concat(cur); cur, have = {}, false end
    else cur[#cur + 1] = ch; have = true end
    i = i + 1
  end
  if have or #cur > 0 then out[#out + 1] = table.concat(cur) end
  return out
end

local function command(v)
  if is_null(v) then return nil end
  if type(v) == "string" then return M.shell_split(v) end
  return list(v)
end

---------------------------------------------------------------- pieces

local function scope(ns, name) return ns .. "_" .. name end

local function with_ns_label(ns, labels)
  local out = map_of_strings(labels) or {}
  out[NS_LABEL] = ns
  return out
end

local function user_defined_network(name)
  return not (name == "default" or name == "bridge" or name == "host" or name == "none"
    or name:match("^container:"))
end

local function service_networks(sname, svc, networks, ns)
  local nets = svc.networks
  if is_null(nets) or next(nets) == nil then nets = { default = json.null } end
  if nets[1] ~= nil then             -- list form
    local m = {}
    for _, n in ipairs(nets) do m[n] = json.null end
    nets = m
  end
  local out = {}
  for name, cfg in pairs(nets) do
    local nc = networks and networks[name]
    if is_null(nc) and name ~= "default" and not (networks and networks[name] ~= nil) then
      fail(sname, ("undefined network %q"):format(name))
    end
    local target = scope(ns, name)
    if type(nc) == "table" and type(nc.name) == "string" and nc.name ~= "" then target = nc.name end
    local att = { Target = target }
    if type(cfg) == "table" then
      att.Aliases = list(cfg.aliases)
      att.DriverOpts = map_of_strings(cfg.driver_opts)
    end
    if user_defined_network(target) then
      att.Aliases = att.Aliases or {}
      att.Aliases[#att.Aliases + 1] = sname
    end
    out[#out + 1] = att
  end
  table.sort(out, function(a, b) return a.Target < b.Target end)
  return out
end

local function file_refs(sname, refs, defs, ns, kind)
  local out = {}
  for _, r in ipairs(refs or {}) do
    if type(r) == "string" then r = { source = r } end
    local def = defs and defs[r.source]
    if def == nil then fail(sname, ("undefined %s %q"):format(kind, r.source)) end
    local name = scope(ns, r.source)
    if type(def) == "table" and type(def.name) == "string" and def.name ~= "" then name = def.name end
    local mode = uint(r.mode)
    if type(r.mode) == "string" then mode = tonumber(r.mode, 8) end
    out[#out + 1] = {
      key = r.source,
      File = {
        Name = (r.target ~= nil and r.target ~= "") and r.target or r.source,
        UID = (r.uid ~= nil and r.uid ~= "") and tostring(r.uid) or "0",
        GID = (r.gid ~= nil and r.gid ~= "") and tostring(r.gid) or "0",
        Mode = mode or 292,   -- 0444
      },
      name = name,
    }
  end
  return out
end

local function healthcheck(sname, hc)
  if is_null(hc) then return nil end
  local test = hc.test
  if type(test) == "string" then test = { "CMD-SHELL", test } end
  if hc.disable then
    if test and #test > 0 then fail(sname, "test and disable can't be set at the same time") end
    return { Test = { "NONE" } }
  end
  return {
    Test = list(test),
    Timeout = M.duration_ns(hc.timeout, "healthcheck.timeout"),
    Interval = M.duration_ns(hc.interval, "healthcheck.interval"),
    Retries = uint(hc.retries),
    StartPeriod = M.duration_ns(hc.start_period, "healthcheck.start_period"),
    StartInterval = M.duration_ns(hc.start_interval, "healthcheck.start_interval"),
  }
end

local function restart_policy(sname, restart, rp)
  if is_null(rp) then
    restart = is_null(restart) and "" or tostring(restart)
    local name, count = restart:match("^([^:]*):?(.*)$")
    if name == "" or name == "no" then return nil end
    if name == "always" or name == "unless-stopped" then return { Condition = "any" } end
    if name == "on-failure" then
      return { Condition = "on-failure", MaxAttempts = tonumber(count) or 0 }
    end
    fail(sname, ("unknown restart policy: %s"):format(restart))
  end
  return {
    Condition = rp.condition,
    Delay = M.duration_ns(rp.delay, "restart_policy.delay"),
    MaxAttempts = uint(rp.max_attempts),
    Window = M.duration_ns(rp.window, "restart_policy.window"),
  }
end

local function update_config(uc, what)
  if is_null(uc) then return nil end
  return {
    Parallelism = uint(uc.parallelism) or 1,
    Delay = M.duration_ns(uc.delay, what .. ".delay") or 0,
    FailureAction = uc.failure_action,
    Monitor = M.duration_ns(uc.monitor, what .. ".monitor") or 0,
    MaxFailureRatio = uc.max_failure_ratio and tonumber(uc.max_failure_ratio) or 0,
    Order = uc.order,
  }
end

local function resources(sname, r)
  local out = {}
  if is_null(r) then return out end
  if not is_null(r.limits) then
    out.Limits = {
      NanoCPUs = M.nano_cpus(r.limits.cpus, sname),
      MemoryBytes = M.bytes(r.limits.memory, "resources.limits.memory"),
      Pids = uint(r.limits.pids),
    }
  end
  if not is_null(r.reservations) then
    local generic
    for _, g in ipairs(r.reservations.generic_resources or {}) do
      generic = generic or {}
      local d = g.discrete_resource_spec
      generic[#generic + 1] = d and { DiscreteResourceSpec = { Kind = d.kind, Value = uint(d.value) } } or {}
    end
    out.Reservations = {
      NanoCPUs = M.nano_cpus(r.reservations.cpus, sname),
      MemoryBytes = M.bytes(r.reservations.memory, "resources.reservations.memory"),
      GenericResources = generic,
    }
  end
  return out
end

local function endpoint(mode, ports)
  local out = {}
  for _, p in ipairs(ports or {}) do
    if type(p) ~= "table" then
      fail(nil, ("ports must be in the long form (the compose loader normalizes them), got %q"):format(tostring(p)))
    end
    out[#out + 1] = {
      Protocol = p.protocol, TargetPort = uint(p.target),
      PublishedPort = uint(p.published), PublishMode = p.mode,
    }
  end
  -- stable: Go's sort.Slice keeps equal keys in order for short lists
  for i = 2, #out do
    local v, j = out[i], i - 1
    while j >= 1 and (out[j].PublishedPort or 0) > (v.PublishedPort or 0) do
      out[j + 1] = out[j]; j = j - 1
    end
    out[j + 1] = v
  end
  local spec = {}
  if mode and mode ~= "" then spec.Mode = mode:lower() end
  if #out > 0 then spec.Ports = out end
  return spec
end

local function deploy_mode(sname, mode, replicas)
  replicas = uint(replicas)
  if mode == "global-job" then
    if replicas then fail(sname, "replicas can only be used with replicated or replicated-job mode") end
    return { GlobalJob = json.object({}) }
  elseif mode == "global" then
    if replicas then fail(sname, "replicas can only be used with replicated or replicated-job mode") end
    return { Global = json.object({}) }
  elseif mode == "replicated-job" then
    return { ReplicatedJob = { MaxConcurrent = replicas, TotalCompletions = replicas } }
  elseif mode == nil or mode == "" or mode == "replicated" then
    return { Replicated = { Replicas = replicas } }
  end
  fail(sname, ("Unknown mode: %s"):format(tostring(mode)))
end

local function mounts(sname, vols, stack_volumes, ns)
  local out = {}
  for _, v in ipairs(vols or {}) do
    if type(v) ~= "table" then
      fail(sname, ("volumes must be in the long form (the compose loader normalizes them), got %q"):format(tostring(v)))
    end
    local t = v.type or "volume"
    local m = { Type = t, Target = v.target, ReadOnly = v.read_only or nil,
                Source = (v.source ~= "" and v.source) or nil,
                Consistency = (v.consistency ~= "" and v.consistency) or nil }
    local function incompatible(field, name)
      if not is_null(v[field]) then fail(sname, ("%s options are incompatible with type %s"):format(name, t)) end
    end
    if t == "volume" then
      incompatible("image", "images"); incompatible("tmpfs", "tmpfs")
      incompatible("bind", "bind"); incompatible("cluster", "cluster")
      if m.Source then
        local sv = stack_volumes and stack_volumes[v.source]
        if sv == nil then fail(sname, ("undefined volume %q"):format(v.source)) end
        if is_null(sv) then sv = {} end
        m.Source = scope(ns, v.source)
        m.VolumeOptions = {}
        if not is_null(v.volume) then
          m.VolumeOptions.NoCopy = v.volume.nocopy or nil
          m.VolumeOptions.Subpath = v.volume.subpath
        end
        if type(sv.name) == "string" and sv.name ~= "" then m.Source = sv.name end
        local external = sv.external
        if type(external) == "table" then external = external.external end
        if not external then
          m.VolumeOptions.Labels = with_ns_label(ns, sv.labels)
          if (sv.driver and sv.driver ~= "") or not is_null(sv.driver_opts) then
            m.VolumeOptions.DriverConfig = { Name = sv.driver, Options = map_of_strings(sv.driver_opts) }
          end
        end
      end
    elseif t == "bind" or t == "npipe" then
      if not m.Source then fail(sname, ("invalid %s source, source cannot be empty"):format(t)) end
      incompatible("volume", "volume"); incompatible("image", "image"); incompatible("tmpfs", "tmpfs")
      if t == "bind" then incompatible("cluster", "cluster") end
      if not is_null(v.bind) then m.BindOptions = { Propagation = v.bind.propagation } end
    elseif t == "tmpfs" then
      if m.Source then fail(sname, "invalid tmpfs source, source must be empty") end
      incompatible("bind", "bind"); incompatible("volume", "volume")
      incompatible("image", "image"); incompatible("cluster", "cluster")
      if not is_null(v.tmpfs) then m.TmpfsOptions = { SizeBytes = M.bytes(v.tmpfs.size, "tmpfs.size") } end
    elseif t == "image" then
      if not m.Source then fail(sname, "invalid image source, source cannot be empty") end
      incompatible("volume", "volume"); incompatible("bind", "bind")
      incompatible("tmpfs", "tmpfs"); incompatible("cluster", "cluster")
      if not is_null(v.image) then m.ImageOptions = { Subpath = v.image.subpath } end
    elseif t == "cluster" then
      if not m.Source then fail(sname, "invalid cluster source, source cannot be empty") end
      incompatible("tmpfs", "tmpfs"); incompatible("bind", "bind"); incompatible("volume", "volume")
      m.ClusterOptions = json.object({})
      if not v.source:match("^group:") then
        local sv = stack_volumes and stack_volumes[v.source]
        if sv == nil then fail(sname, ("undefined volume %q"):format(v.source)) end
        m.Source = (type(sv) == "table" and sv.name and sv.name ~= "") and sv.name or scope(ns, v.source)
      end
    else
      fail(sname, "volume type must be volume, bind, tmpfs, npipe, or cluster")
    end
    out[#out + 1] = m
  end
  return out
end

local function caps(add, drop)
  local function norm(c)
    c = tostring(c):upper():gsub("^%s+", ""):gsub("%s+$", "")
    if c == "ALL" or c == "RESET" then return c end
    if not c:match("^CAP_") then c = "CAP_" .. c end
    return c
  end
  local a, d = {}, {}
  for _, c in ipairs(add or {}) do a[norm(c)] = true end
  for _, c in ipairs(drop or {}) do d[norm(c)] = true end
  if a.ALL then a = { ALL = true } end
  if d.ALL then d = { ALL = true } end
  local ca, cd = {}, {}
  for c in pairs(d) do if not a[c] and c ~= "RESET" then cd[#cd + 1] = c end end
  for c in pairs(a) do if c ~= "RESET" then ca[#ca + 1] = c end end
  table.sort(ca); table.sort(cd)
  return (#ca > 0) and ca or nil, (#cd > 0) and cd or nil
end

local function ulimits(u)
  if is_null(u) then return nil end
  local out = {}
  for _, name in ipairs(sorted_keys(u)) do
    local v = u[name]
    if type(v) == "table" then
      out[#out + 1] = { Name = name, Soft = uint(v.soft) or 0, Hard = uint(v.hard) or 0 }
    else
      out[#out + 1] = { Name = name, Soft = uint(v), Hard = uint(v) }
    end
  end
  return out
end

-- A Secret value goes into the spec as its text (tostring would make it
-- "***" in the container); the record masks it, as every registered value.
local function env_text(v)
  return secret.is_secret(v) and secret.reveal(v) or tostring(v)
end

local function environment(env)
  if is_null(env) then return nil end
  local out = {}
  if env[1] ~= nil then
    for _, e in ipairs(env) do out[#out + 1] = env_text(e) end
  else
    for k, v in pairs(env) do
      out[#out + 1] = is_null(v) and k or (k .. "=" .. env_text(v))
    end
  end
  table.sort(out)
  return out
end

local function extra_hosts(h)
  if is_null(h) then return nil end
  local out = {}
  if h[1] == nil and next(h) ~= nil then
    for _, host in ipairs(sorted_keys(h)) do out[#out + 1] = tostring(h[host]) .. " " .. host end
    return out
  end
  for _, e in ipairs(h) do
    local host, ip = tostring(e):match("^([^:]*):(.*)$")
    if host then out[#out + 1] = ip .. " " .. host
    else
      host, ip = tostring(e):match("^([^=]*)=(.*)$")
      if host then out[#out + 1] = ip .. " " .. host end
    end
  end
  return out
end

local function credential_spec(sname, cs)
  if is_null(cs) then return nil end
  local set = {}
  if cs.config and cs.config ~= "" then set[#set + 1] = '"Config"' end
  if cs.file and cs.file ~= "" then set[#set + 1] = '"File"' end
  if cs.registry and cs.registry ~= "" then set[#set + 1] = '"Registry"' end
  if #set == 0 then return nil end
  if #set == 2 then fail(sname, ("invalid credential spec: cannot specify both %s and %s"):format(set[1], set[2])) end
  if #set > 2 then fail(sname, ("invalid credential spec: cannot specify both %s, and %s"):format(set[1] .. ", " .. set[2], set[3])) end
  if cs.config and cs.config ~= "" then
    -- the deployer replaces the config name with its ID
    return { Config = cs.config, _config_ref = true }
  end
  return { File = cs.file, Registry = cs.registry }
end

---------------------------------------------------------------- service

-- An empty Lua table encodes as a JSON object: leave empty lists out.
local function nonempty(t) if t and #t > 0 then return t end return nil end

-- One service spec (without secret/config IDs).
function M.service(ns, sname, svc, stack)
  local d = is_null(svc.deploy) and {} or svc.deploy
  local labels = with_ns_label(ns, d.labels)
  local image = svc.image
  if is_null(image) or image == "" then fail(sname, "no image (slipway deploys images; build them first)") end
  labels[IMAGE_LABEL] = image
  local secrets = file_refs(sname, svc.secrets, stack.secrets, ns, "secret")
  local configs = file_refs(sname, svc.configs, stack.configs, ns, "config")
  table.sort(secrets, function(a, b) return a.name < b.name end)
  table.sort(configs, function(a, b) return a.name < b.name end)
  local seen = {}
  for _, s in ipairs(secrets) do
    if seen[s.File.Name] then fail(sname, ("duplicate secret target for %s not allowed"):format(s.name)) end
    seen[s.File.Name] = true
  end
  local cred = credential_spec(sname, svc.credential_spec)
  if cred and cred._config_ref then
    local cdef = stack.configs and stack.configs[cred.Config]
    if cdef == nil then fail(sname, ("undefined config %q"):format(cred.Config)) end
    local name = (type(cdef) == "table" and cdef.name and cdef.name ~= "") and cdef.name or scope(ns, cred.Config)
    configs[#configs + 1] = { key = cred.Config, name = name, Runtime = json.object({}) }
    table.sort(configs, function(a, b) return a.name < b.name end)
    cred = { Config = name, _config_ref = true }
  end
  local cap_add, cap_drop = caps(svc.cap_add, svc.cap_drop)
  local placement = is_null(d.placement) and {} or d.placement
  local prefs
  for _, p in ipairs(placement.preferences or {}) do
    prefs = prefs or {}
    prefs[#prefs + 1] = { Spread = { SpreadDescriptor = p.spread } }
  end
  local dns, dns_search = list(svc.dns), list(svc.dns_search)
  local container = {
    Image = image,
    Labels = with_ns_label(ns, svc.labels),
    Command = command(svc.entrypoint),
    Args = command(svc.command),
    Hostname = svc.hostname,
    Env = environment(svc.environment),
    Dir = svc.working_dir,
    User = svc.user,
    Privileges = { CredentialSpec = cred },
    Init = svc.init,
    StopSignal = svc.stop_signal,
    TTY = svc.tty or nil,
    OpenStdin = svc.stdin_open or nil,
    ReadOnly = svc.read_only or nil,
    Mounts = nonempty(mounts(sname, svc.volumes, stack.volumes, ns)),
    StopGracePeriod = M.duration_ns(svc.stop_grace_period, "stop_grace_period"),
    Healthcheck = healthcheck(sname, svc.healthcheck),
    Hosts = extra_hosts(svc.extra_hosts),
    DNSConfig = (dns or dns_search) and { Nameservers = dns, Search = dns_search } or nil,
    Secrets = #secrets > 0 and secrets or nil,
    Configs = #configs > 0 and configs or nil,
    Isolation = (svc.isolation ~= "" and svc.isolation) or nil,
    Sysctls = map_of_strings(svc.sysctls),
    CapabilityAdd = cap_add,
    CapabilityDrop = cap_drop,
    Ulimits = ulimits(svc.ulimits),
    OomScoreAdj = uint(svc.oom_score_adj),
  }
  local spec = {
    Name = scope(ns, sname),
    Labels = labels,
    TaskTemplate = {
      ContainerSpec = container,
      LogDriver = (not is_null(svc.logging)) and { Name = svc.logging.driver, Options = map_of_strings(svc.logging.options) } or nil,
      Resources = resources(sname, d.resources),
      RestartPolicy = restart_policy(sname, svc.restart, d.restart_policy),
      Placement = {
        Constraints = list(placement.constraints),
        Preferences = prefs,
        MaxReplicas = uint(placement.max_replicas_per_node),
      },
      Networks = service_networks(sname, svc, stack.networks, ns),
    },
    EndpointSpec = endpoint(d.endpoint_mode, svc.ports),
    Mode = deploy_mode(sname, d.mode, d.replicas),
    UpdateConfig = update_config(d.update_config, "update_config"),
    RollbackConfig = update_config(d.rollback_config, "rollback_config"),
  }
  return spec
end

-- The services of a Stack as (name, service) pairs in name order; the
-- Stack may hold them as a map (docker stack config) or a list of tables
-- with a `name`.
function M.each_service(stack)
  local svcs = stack.services or {}
  local pairs_ = {}
  if svcs[1] ~= nil then
    for _, s in ipairs(svcs) do pairs_[#pairs_ + 1] = { s.name, s } end
    table.sort(pairs_, function(a, b) return a[1] < b[1] end)
  else
    for _, k in ipairs(sorted_keys(svcs)) do pairs_[#pairs_ + 1] = { k, svcs[k] } end
  end
  return pairs_
end

local function external(def)
  if type(def) ~= "table" then return false end
  local e = def.external
  if type(e) == "table" then return e.external and true or false end
  return e and true or false
end
M.external = external

-- Networks the services use: { [full name] = create body }, external names.
function M.networks(ns, stack)
  local used = {}
  for _, p in ipairs(M.each_service(stack)) do
    local nets = p[2].networks
    if is_null(nets) or next(nets) == nil then used.default = true
    elseif nets[1] ~= nil then for _, n in ipairs(nets) do used[n] = true end
    else for n in pairs(nets) do used[n] = true end end
  end
  local result, externals = {}, {}
  for _, key in ipairs(sorted_keys(used)) do
    local nw = stack.networks and stack.networks[key]
    if is_null(nw) then nw = {} end
    if external(nw) then
      externals[#externals + 1] = (nw.name and nw.name ~= "") and nw.name or key
    else
      local body = {
        Labels = with_ns_label(ns, nw.labels),
        Driver = (nw.driver and nw.driver ~= "") and nw.driver or "overlay",
        Options = map_of_strings(nw.driver_opts),
        Internal = nw.internal or nil,
        Attachable = nw.attachable or nil,
      }
      local ipam = nw.ipam
      if type(ipam) == "table" and ((ipam.driver and ipam.driver ~= "") or (ipam.config and #ipam.config > 0)) then
        body.IPAM = { Driver = (ipam.driver ~= "" and ipam.driver) or nil }
        for _, c in ipairs(ipam.config or {}) do
          body.IPAM.Config = body.IPAM.Config or {}
          body.IPAM.Config[#body.IPAM.Config + 1] = { Subnet = c.subnet }
        end
      end
      local name = (nw.name and nw.name ~= "") and nw.name or scope(ns, key)
      body.Name = name
      result[name] = body
    end
  end
  return result, externals
end

-- Secret or config objects the stack defines (not the external ones):
-- { { key, name, labels, file | driver, template_driver } }.
function M.file_objects(ns, defs, kind)
  local out = {}
  for _, key in ipairs(sorted_keys(defs or {})) do
    local def = defs[key]
    if is_null(def) then def = {} end
    if not external(def) then
      local name = (def.name and def.name ~= "") and def.name or scope(ns, key)
      if not def.driver and not def.file and not def.content and not def.environment then
        fail(nil, ("%s %s: no file, content or environment to create it from"):format(kind, key))
      end
      out[#out + 1] = {
        key = key, name = name, labels = with_ns_label(ns, def.labels),
        file = def.file, content = def.content, environment = def.environment,
        driver = def.driver, driver_opts = def.driver_opts, template_driver = def.template_driver,
      }
    end
  end
  return out
end

-- The whole conversion; raises a plain message on bad input.
function M.stack(ns, stack)
  local ok, res = pcall(function()
    local services, order = {}, {}
    for _, p in ipairs(M.each_service(stack)) do
      services[p[1]] = M.service(ns, p[1], p[2], stack)
      order[#order + 1] = p[1]
    end
    local networks, externals = M.networks(ns, stack)
    return {
      services = services, order = order,
      networks = networks, external_networks = externals,
      secrets = M.file_objects(ns, stack.secrets, "secret"),
      configs = M.file_objects(ns, stack.configs, "config"),
    }
  end)
  if ok then return res end
  if type(res) == "table" and res.convert_error then return nil, res.message end
  error(res, 0)
end

return M
