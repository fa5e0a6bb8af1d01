-- `slipway sandbox up|down|status`: a private local Docker engine, registry
-- and one-node swarm to try pipelines on, built from slipway's own modules
-- (proc for the daemons, fs for the state, http over the engine's unix
-- socket, slipway.docker for the swarm).
--
-- Everything lives in one directory (--dir, default /tmp/slipway-sandbox):
--   docker.sock           the engine's socket (DOCKER_HOST=unix://...)
--   data/ exec/           dockerd's data and exec roots (vfs storage)
--   dockerd.pid           written by dockerd     dockerd.log
--   registry.pid          docker-registry's pid  registry.log, registry.yml
--   registry/             the registry's storage (127.0.0.1:PORT, no auth)
--   tls/                  CA, server and client certificates (--tls-port)
--   sandbox.json          what up started: ports, pids, socket
--   users/PID             who uses it: down stops everything only when no
--                         live user is left (so concurrent runs share one)
--   lock                  flock(1) lock: one up/down at a time
--
-- dockerd runs with --storage-driver vfs --iptables=false --ip6tables=false
-- --bridge=none, which works in containers and on hosts without overlayfs
-- or netfilter. The daemons are started detached (own session, output to
-- their log files) so they outlive the command; down stops them by pid.
local M = {}

local DEFAULT_DIR = "/tmp/slipway-sandbox"

M.help = [[
usage: slipway sandbox up [--dir D] [--registry-port N] [--swarm-port N] [--tls-port N]
                          [--user PID] [--env | --json]
       slipway sandbox down [--dir D] [--user PID] [--force] [--json]
       slipway sandbox status [--dir D] [--env | --json]

A private local Docker engine + registry + one-node swarm for trying
pipelines, all under one directory (needs root: dockerd runs as root).

  up       start dockerd (Debian's docker.io) on DIR/docker.sock, a registry
           (Debian's docker-registry) on 127.0.0.1:PORT without auth, and
           `swarm init` on 127.0.0.1; then print the variables to export.
           Idempotent: what already runs is kept. Registers the caller as a
           user of the sandbox.
  down     unregister the caller; when no other live user is left, leave the
           swarm, stop dockerd (and its containerd) and the registry by pid,
           unmount what is left and remove the state (images, swarm, registry
           storage). --force stops it whoever still uses it.
  status   engine, registry and swarm state. Exit 0 when all three are up,
           1 otherwise.

options:
  --dir D             the sandbox directory (default $SLIPWAY_SANDBOX_DIR or
                      /tmp/slipway-sandbox); one sandbox per directory
  --registry-port N   the registry's port on 127.0.0.1 (default 5000)
  --swarm-port N      the swarm's listen port on 127.0.0.1 (default 2377)
  --tls-port N        also serve the engine on tcp://127.0.0.1:N with mutual
                      TLS (certificates in DIR/tls; default 0: off)
  --user PID          the user to (un)register (default the parent process,
                      i.e. your shell); a user counts while its process lives
  --force             down: stop even when other users are alive
  --env               print only `export NAME=value` lines, for
                      eval "$(slipway sandbox up --env)"
  --json              print one JSON object

Exit status: 0 done (status: all up), 1 failed (status: not all up),
2 bad usage.

example:
  eval "$(slipway sandbox up --env)"
  slipway run examples/docker-demo/deploy.lua -p version=v1
  slipway sandbox down
]]

local fs = require("slipway.fs")
local json = require("slipway.json")
local words = require("slipway.words")

---------------------------------------------------------------- errors

local Usage, Failure = {}, {}

local function usage_error(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Usage), 0)
end

-- A failure the user can act on: raised as a value, printed without a
-- traceback, exit status 1.
local function fail(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Failure), 0)
end

local quiet = false
local function say(fmt, ...)
  if not quiet then io.stderr:write("sandbox: ", fmt:format(...), "\n") end
end

---------------------------------------------------------------- arguments

local SUBCOMMANDS = {
  up = { ["--dir"] = 1, ["--registry-port"] = 1, ["--swarm-port"] = 1, ["--tls-port"] = 1,
         ["--user"] = 1, ["--env"] = 0, ["--json"] = 0 },
  down = { ["--dir"] = 1, ["--user"] = 1, ["--force"] = 0, ["--json"] = 0 },
  status = { ["--dir"] = 1, ["--env"] = 0, ["--json"] = 0 },
}

local function flag_list(allowed)
  local list = {}
  for f in pairs(allowed) do list[#list + 1] = f end
  table.sort(list)
  return list
end

local function port_value(flag, v, allow_zero)
  local n = math.tointeger(tonumber(v))
  if not n or n < (allow_zero and 0 or 1) or n > 65535 then
    usage_error("%s: expected a port number (%s65535), got '%s'", flag, allow_zero and "0-" or "1-", v)
  end
  return n
end

-- args -> { cmd, dir, registry_port, swarm_port, tls_port, user, env, json, force }
local function parse(args)
  local cmd = args[1]
  if cmd == nil then usage_error("missing subcommand (up, down or status)") end
  local allowed = SUBCOMMANDS[cmd]
  if not allowed then
    usage_error("unknown subcommand '%s'%s (expected up, down or status)", cmd, words.did_you_mean(cmd, { "up", "down", "status" }))
  end
  local o = { cmd = cmd }
  local i = 2
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local arity = allowed[name]
    if arity == nil then
      if a:sub(1, 1) == "-" then
        local list = flag_list(allowed)
        usage_error("%s: unknown option '%s'%s (valid: %s)", cmd, a, words.did_you_mean(name, list), table.concat(list, ", "))
      end
      usage_error("%s: unexpected argument '%s'", cmd, a)
    end
    if arity == 1 then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil or value == "" then usage_error("%s needs a value", name) end
      end
    elseif value ~= nil then
      usage_error("%s takes no value", name)
    end
    local key = name:sub(3):gsub("-", "_")
    if key == "registry_port" or key == "swarm_port" then
      value = port_value(name, value)
    elseif key == "tls_port" then
      value = port_value(name, value, true)
    elseif key == "user" then
      local n = math.tointeger(tonumber(value))
      if not n or n < 1 then usage_error("--user: expected a process id, got '%s'", value) end
      value = n
    elseif arity == 0 then
      value = true
    end
    o[key] = value
    i = i + 1
  end
  if o.env and o.json then usage_error("--env and --json exclude each other") end
  local dir = o.dir or os.getenv("SLIPWAY_SANDBOX_DIR")
  if dir == nil or dir == "" then dir = DEFAULT_DIR end
  if dir:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD") or fs.realpath(".")
    dir = cwd .. "/" .. dir
  end
  o.dir = dir:gsub("/+$", "")
  if o.dir == "" or o.dir:find("[%s'\"\\]") then
    usage_error("--dir: '%s' must be a non-root path without spaces or quotes", dir)
  end
  return o
end

---------------------------------------------------------------- processes

local proc_mod, task_mod, http_mod

-- /proc/PID/stat -> pid, ppid, state; nil when there is no such process.
local function proc_stat(pid)
  local text = fs.read("/proc/" .. tostring(pid) .. "/stat")
  if not text then return nil end
  -- the command name is in parentheses and may hold spaces: split after it
  local state, ppid = text:match("%) (%S) (%d+)")
  return state, tonumber(ppid)
end

-- A process that exists and is not a zombie (the daemons are re-parented
-- to pid 1, which does not reap them in every container).
local function alive(pid)
  if not pid then return false end
  local state = proc_stat(pid)
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function self_pid()
  local text = fs.read("/proc/self/stat")
  return tonumber(text:match("^(%d+)")), tonumber(text:match("%) %S (%d+)"))
end

local function read_pid(path)
  local text = fs.read(path)
  return text and tonumber(text:match("^%s*(%d+)")) or nil
end

-- Run a short helper program; result table or a failure naming it.
local function run(argv, opts)
  opts = opts or {}
  opts.timeout = opts.timeout or "30s"
  local r, err = proc_mod.run(argv, opts)
  if not r then fail("%s: %s", argv[1], err) end
  return r
end

local function signal(pid, sig)
  run({ "kill", "-" .. sig, tostring(pid) }, { timeout = "5s" })
end

-- TERM, wait up to `grace` seconds, then KILL. Returns how it ended.
local function stop_pid(pid, grace)
  if not alive(pid) then return "not running" end
  signal(pid, "TERM")
  local deadline = task_mod.now() + grace * 1000
  while alive(pid) and task_mod.now() < deadline do task_mod.sleep(0.1) end
  if alive(pid) then
    signal(pid, "KILL")
    for _ = 1, 50 do
      if not alive(pid) then break end
      task_mod.sleep(0.1)
    end
    return "killed"
  end
  return "stopped"
end

-- A program on PATH (the PATH children are started with), or nil.
local function which(name)
  local path = os.getenv("PATH")
  if path == nil or path == "" then path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" end
  for d in path:gmatch("[^:]+") do
    local st = fs.stat(d .. "/" .. name)
    if st and st.type == "file" and st.mode & 73 ~= 0 then return d .. "/" .. name end
  end
  return nil
end

-- The daemons this command started (so a failed up can stop them again).
local spawned = {}

-- Start argv detached: its own session, stdin /dev/null, output to log,
-- not a child we wait for (the daemon outlives this command). Returns pid.
local function start_detached(argv, log)
  local cmd = { "sh", "-c", 'setsid "$@" <"$SANDBOX_NULL" >"$SANDBOX_LOG" 2>&1 & echo $!', "sh" }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r = run(cmd, { env = { SANDBOX_LOG = log, SANDBOX_NULL = "/dev/null" }, timeout = "10s" })
  local pid = tonumber((r.stdout or ""):match("(%d+)"))
  if r.code ~= 0 or not pid then
    fail("cannot start %s: %s", argv[1], (r.stderr or ""):gsub("%s+$", ""))
  end
  spawned[#spawned + 1] = pid
  return pid
end

local function log_tail(path, n)
  local text = fs.read(path) or ""
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n    ", math.max(1, #lines - (n or 5) + 1))
end

---------------------------------------------------------------- the lock

-- flock(1) holds DIR/lock for us in a helper process until release() kills
-- it; the helper also exits when this process dies, so a crashed command
-- never leaves the sandbox locked.
local function lock(dir)
  local locked = false
  local me = self_pid()
  local p, err = proc_mod.spawn({ "flock", "-w", "120", "-E", "75", dir .. "/lock", "sh", "-c",
      'echo locked; while kill -0 "$1" 2>/dev/null; do sleep 0.5; done', "sh", tostring(me) },
    { stdout = function(line) if line == "locked" then locked = true end end })
  if not p then fail("flock: %s (util-linux provides it)", err) end
  local waiter = task_mod.spawn(function() return p:wait() end)
  while not locked do
    local st = waiter:status()
    if st == "done" or st == "failed" then
      local ok, r = pcall(waiter.join, waiter)
      if ok and r.code == 75 then
        fail("another `slipway sandbox` holds %s/lock (waited 120s)", dir)
      end
      fail("cannot lock %s/lock: %s", dir, ok and (r.stderr or ""):gsub("%s+$", "") or tostring(r))
    end
    task_mod.sleep(0.02)
  end
  return function()
    pcall(p.kill, p)
    pcall(waiter.join, waiter)
  end
end

---------------------------------------------------------------- state

local function paths(dir)
  return {
    dir = dir,
    sock = dir .. "/docker.sock",
    dockerd_pid = dir .. "/dockerd.pid",
    registry_pid = dir .. "/registry.pid",
    state = dir .. "/sandbox.json",
    users = dir .. "/users",
    tls = dir .. "/tls",
  }
end

local function read_state(p)
  local text = fs.read(p.state)
  local ok, s = pcall(json.decode, text or "")
  if ok and type(s) == "table" then return s end
  -- A directory set up before sandbox.json existed: its registry config
  -- still says the port, the running dockerd's command line its TLS port.
  local port = (fs.read(p.dir .. "/registry.yml") or ""):match("addr: 127%.0%.0%.1:(%d+)")
  if not port then return nil end
  local cmdline = fs.read("/proc/" .. tostring(read_pid(p.dockerd_pid)) .. "/cmdline") or ""
  return { registry_port = tonumber(port), tls_port = tonumber(cmdline:match("tcp://127%.0%.0%.1:(%d+)")) }
end

local function ping_engine(sock)
  local r = http_mod.request { url = "http://docker/_ping", unix_socket = sock, timeout = "2s",
                               connect_timeout = "2s" }
  return r ~= nil and r.status == 200
end

-- "up" (a registry answers /v2/ with 200), "other" (something answers,
-- e.g. a registry with auth), or "down".
local function ping_registry(port)
  local r = http_mod.request { url = ("http://127.0.0.1:%d/v2/"):format(port), timeout = "2s",
                               connect_timeout = "2s" }
  if not r then return "down" end
  return r.status == 200 and "up" or "other"
end

local function engine_client(sock)
  local client = require("slipway.docker.client")
  return client.new { host = "unix://" .. sock, timeout = "30s" }
end

local function swarm_info(c)
  local ok, info = pcall(c.call, c, "sandbox", "GET", "/info")
  if not ok then return nil, tostring(info) end
  return info
end

-- Users whose process is alive; stale entries are removed.
local function live_users(p)
  local users = {}
  for _, name in ipairs(fs.list(p.users) or {}) do
    local pid = tonumber(name)
    if pid and alive(pid) then users[#users + 1] = pid else fs.remove(p.users .. "/" .. name) end
  end
  table.sort(users)
  return users
end

local function shell_quote(v)
  return require("slipway.words").shell_quote(tostring(v))
end

-- The variables a user of the sandbox exports, in order.
local function env_of(p, s)
  local vars = {
    { "DOCKER_HOST", "unix://" .. p.sock },
    { "SLIPWAY_REGISTRY", ("127.0.0.1:%d"):format(s.registry_port) },
  }
  if (s.tls_port or 0) > 0 then
    vars[#vars + 1] = { "SLIPWAY_DOCKER_TLS_HOST", ("tcp://127.0.0.1:%d"):format(s.tls_port) }
    vars[#vars + 1] = { "SLIPWAY_DOCKER_CERT_PATH", p.tls }
  end
  return vars
end

local function print_env(vars, s)
  for _, v in ipairs(vars) do io.stdout:write("export ", v[1], "=", shell_quote(v[2]), "\n") end
  io.stdout:write(("# dockerd pid %s, registry pid %s\n"):format(
    tostring(s.dockerd_pid or "-"), tostring(s.registry_pid or "-")))
end

local function env_table(vars)
  local t = {}
  for _, v in ipairs(vars) do t[v[1]] = v[2] end
  return t
end

---------------------------------------------------------------- up

-- A CA, a server certificate for 127.0.0.1 and a client certificate, for
-- the engine's TLS listener (what DOCKER_TLS_VERIFY clients expect).
local function ensure_certs(p)
  if fs.exists(p.tls .. "/key.pem") and fs.exists(p.tls .. "/server-key.pem") then return end
  if not which("openssl") then fail("--tls-port needs openssl: install openssl (make deps)") end
  fs.mkdir(p.tls)
  local ec = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" }
  local function openssl(args)
    local argv = { "openssl" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local r = run(argv, { cwd = p.tls })
    if r.code ~= 0 then fail("openssl %s failed: %s", args[1], (r.stderr or ""):gsub("%s+$", "")) end
  end
  local function req(extra)
    local a = { "req" }
    for _, x in ipairs(extra) do a[#a + 1] = x end
    for i = #a, 2, -1 do if a[i] == "@EC" then table.remove(a, i); for j = #ec, 1, -1 do table.insert(a, i, ec[j]) end end end
    openssl(a)
  end
  req { "-x509", "@EC", "-days", "30", "-subj", "/CN=slipway sandbox CA", "-keyout", "ca-key.pem", "-out", "ca.pem" }
  req { "@EC", "-subj", "/CN=127.0.0.1", "-keyout", "server-key.pem", "-out", "server.csr" }
  fs.write(p.tls .. "/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
  openssl { "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-days", "30", "-extfile", "server.ext", "-out", "server-cert.pem" }
  req { "@EC", "-subj", "/CN=client", "-keyout", "key.pem", "-out", "client.csr" }
  fs.write(p.tls .. "/client.ext", "extendedKeyUsage=clientAuth\n")
  openssl { "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-days", "30", "-extfile", "client.ext", "-out", "cert.pem" }
end

local function ensure_engine(p, o, dockerd)
  local pid = read_pid(p.dockerd_pid)
  if alive(pid) and ping_engine(p.sock) then return pid, false end
  if alive(pid) then
    say("dockerd %d does not answer; restarting it", pid)
    stop_pid(pid, 5)
  end
  -- Left-overs of a killed daemon would make dockerd refuse to start.
  fs.remove(p.sock)
  fs.remove(p.dockerd_pid)
  local ns = "sandbox" .. p.dir:gsub("[^%w]", "-")
  local argv = { dockerd, "--storage-driver", "vfs", "--iptables=false", "--ip6tables=false",
    "--bridge=none", "--data-root", p.dir .. "/data", "--exec-root", p.dir .. "/exec",
    "--pidfile", p.dockerd_pid, "--host", "unix://" .. p.sock,
    -- a system containerd, if one serves /run/containerd, is used in
    -- namespaces of this sandbox's own
    "--containerd-namespace", ns, "--containerd-plugins-namespace", ns .. "-plugins",
    "--log-level", "warn" }
  if o.tls_port > 0 then
    for _, a in ipairs { "--host", ("tcp://127.0.0.1:%d"):format(o.tls_port), "--tlsverify",
        "--tlscacert", p.tls .. "/ca.pem", "--tlscert", p.tls .. "/server-cert.pem",
        "--tlskey", p.tls .. "/server-key.pem" } do argv[#argv + 1] = a end
  end
  say("starting dockerd (%s)", p.dir .. "/dockerd.log")
  pid = start_detached(argv, p.dir .. "/dockerd.log")
  local deadline = task_mod.now() + 60000
  while not ping_engine(p.sock) do
    if not alive(pid) then
      fail("dockerd exited:\n    %s\n  (the whole log: %s/dockerd.log)", log_tail(p.dir .. "/dockerd.log"), p.dir)
    end
    if task_mod.now() > deadline then
      fail("dockerd did not answer on %s within 60s (see %s/dockerd.log)", p.sock, p.dir)
    end
    task_mod.sleep(0.1)
  end
  return read_pid(p.dockerd_pid) or pid, true
end

local function ensure_swarm(p, o)
  local c = engine_client(p.sock)
  local info, err = swarm_info(c)
  if not info then fail("the engine does not answer /info: %s", err) end
  local state = info.Swarm and info.Swarm.LocalNodeState or "inactive"
  if state == "active" and info.Swarm.ControlAvailable then return info.Swarm.NodeID, false end
  if state ~= "inactive" then c:call("sandbox", "POST", "/swarm/leave", { query = { force = true } }) end
  local addr = ("127.0.0.1:%d"):format(o.swarm_port)
  local body = { ListenAddr = addr, AdvertiseAddr = addr, ForceNewCluster = false }
  -- A second sandbox on the host needs its own VXLAN port as well.
  if o.swarm_port ~= 2377 then body.DataPathPort = 4789 + (o.swarm_port - 2377) % 1000 + 1 end
  local ok, id = pcall(c.call, c, "sandbox", "POST", "/swarm/init", { body = body })
  if not ok then fail("swarm init on %s failed: %s", addr, tostring(id)) end
  return id, true
end

local function registry_config(p, port)
  return table.concat({
    "# written by `slipway sandbox up`: plain HTTP on 127.0.0.1, no auth",
    "version: 0.1",
    "log:", "  level: warn", "  accesslog:", "    disabled: true",
    "storage:", "  filesystem:", "    rootdirectory: " .. p.dir .. "/registry",
    "  delete:", "    enabled: true",
    "  maintenance:", "    uploadpurging:", "      enabled: false",
    "http:", ("  addr: 127.0.0.1:%d"):format(port),
    "  headers:", "    X-Content-Type-Options: [nosniff]", "",
  }, "\n")
end

local function ensure_registry(p, o, registry)
  local pid = read_pid(p.registry_pid)
  if alive(pid) and ping_registry(o.registry_port) == "up" then return pid, false end
  if alive(pid) then stop_pid(pid, 5) end
  local answer = ping_registry(o.registry_port)
  if answer == "up" then
    fail("127.0.0.1:%d already serves a registry that is not this sandbox's (another sandbox?): use --registry-port",
      o.registry_port)
  elseif answer == "other" then
    -- Debian's docker-registry service starts on install where a service
    -- manager runs, on 127.0.0.1:5000 with htpasswd auth.
    if o.registry_port == 5000 and which("service") then
      run({ "service", "docker-registry", "stop" }, { timeout = "20s" })
      task_mod.sleep(0.5)
    end
    if ping_registry(o.registry_port) ~= "down" then
      fail("127.0.0.1:%d is taken by another program (not this sandbox's registry): stop it or use --registry-port",
        o.registry_port)
    end
  end
  fs.mkdir(p.dir .. "/registry")
  fs.write(p.dir .. "/registry.yml", registry_config(p, o.registry_port))
  say("starting docker-registry on 127.0.0.1:%d", o.registry_port)
  pid = start_detached({ registry, "serve", p.dir .. "/registry.yml" }, p.dir .. "/registry.log")
  fs.write(p.registry_pid, pid .. "\n")
  local deadline = task_mod.now() + 15000
  while ping_registry(o.registry_port) ~= "up" do
    if not alive(pid) then
      fail("docker-registry exited:\n    %s", log_tail(p.dir .. "/registry.log"))
    end
    if task_mod.now() > deadline then fail("the registry did not answer within 15s (see %s/registry.log)", p.dir) end
    task_mod.sleep(0.1)
  end
  return pid, true
end

local function check_root()
  local status = fs.read("/proc/self/status") or ""
  local euid = tonumber(status:match("\nUid:%s+%d+%s+(%d+)"))
  if euid ~= 0 then fail("needs root (dockerd runs as root): run it with sudo") end
end

local function up(o, p)
  check_root()
  local dockerd = which("dockerd")
  if not dockerd then fail("dockerd not found: install docker.io (make deps, or apt-get install docker.io)") end
  local registry = which("docker-registry")
  if not registry then fail("docker-registry not found: install docker-registry (make deps, or apt-get install docker-registry)") end
  if not which("flock") or not which("setsid") then fail("flock/setsid not found: install util-linux") end
  local ok, err = fs.mkdir(p.users)
  if not ok then fail("cannot create %s: %s", p.users, err) end
  local release = lock(p.dir)
  local result = table.pack(pcall(function()
    local old = read_state(p)
    o.registry_port = o.registry_port or (old and old.registry_port) or 5000
    o.swarm_port = o.swarm_port or (old and old.swarm_port) or 2377
    o.tls_port = o.tls_port or (old and old.tls_port) or 0
    -- A running sandbox keeps its ports: asking for others is a mistake.
    if old and alive(read_pid(p.dockerd_pid)) then
      for _, k in ipairs { "registry_port", "swarm_port", "tls_port" } do
        if old[k] and old[k] ~= o[k] then
          fail("the sandbox in %s runs with --%s %d, not %d: `slipway sandbox down --dir %s` first, or use another --dir",
            p.dir, (k:gsub("_", "-")), old[k], o[k], p.dir)
        end
      end
    end
    if o.tls_port > 0 then ensure_certs(p) end
    local s = { dir = p.dir, socket = p.sock, registry_port = o.registry_port,
                swarm_port = o.swarm_port, tls_port = o.tls_port, started = {} }
    -- A failed up leaves nothing half-up behind: what this call started
    -- is stopped again unless someone else uses the sandbox.
    local up_ok, up_err = pcall(function()
      s.dockerd_pid, s.started.dockerd = ensure_engine(p, o, dockerd)
      s.node_id, s.started.swarm = ensure_swarm(p, o)
      s.registry_pid, s.started.registry = ensure_registry(p, o, registry)
    end)
    if not up_ok then
      if #live_users(p) == 0 then
        for i = #spawned, 1, -1 do
          if alive(spawned[i]) then
            say("stopping pid %d again (up failed)", spawned[i])
            stop_pid(spawned[i], 20)
          end
        end
      end
      error(up_err, 0)
    end
    local state = { dir = s.dir, socket = s.socket, registry_port = s.registry_port,
                    swarm_port = s.swarm_port, tls_port = s.tls_port,
                    dockerd_pid = s.dockerd_pid, registry_pid = s.registry_pid }
    fs.write_atomic(p.state, json.encode(state, { pretty = true }) .. "\n")
    fs.write(p.users .. "/" .. o.user, "")
    s.users = live_users(p)
    return s
  end))
  release()
  if not result[1] then error(result[2], 0) end
  local s = result[2]
  local vars = env_of(p, s)
  if o.json then
    io.stdout:write(json.encode({ ok = true, dir = s.dir, dockerd_pid = s.dockerd_pid,
      registry_pid = s.registry_pid, node_id = s.node_id, started = s.started,
      users = json.array(s.users), env = env_table(vars) }), "\n")
  elseif o.env then
    print_env(vars, s)
  else
    local function what(started) return started and "started" or "already running" end
    io.stdout:write(("sandbox %s is up:\n"):format(s.dir))
    io.stdout:write(("  engine    unix://%s (dockerd pid %d, %s)\n"):format(p.sock, s.dockerd_pid, what(s.started.dockerd)))
    io.stdout:write(("  registry  127.0.0.1:%d (pid %d, %s)\n"):format(s.registry_port, s.registry_pid, what(s.started.registry)))
    io.stdout:write(("  swarm     node %s on 127.0.0.1:%d (%s)\n"):format(s.node_id, s.swarm_port,
      s.started.swarm and "initialised" or "already active"))
    if s.tls_port > 0 then
      io.stdout:write(("  tls       tcp://127.0.0.1:%d (client certificates in %s)\n"):format(s.tls_port, p.tls))
    end
    io.stdout:write("use it from this shell with:\n")
    for _, v in ipairs(vars) do io.stdout:write("  export ", v[1], "=", shell_quote(v[2]), "\n") end
    io.stdout:write(("or: eval \"$(slipway sandbox up%s --env)\"\n"):format(
      s.dir == DEFAULT_DIR and "" or (" --dir " .. s.dir)))
  end
  return 0
end

---------------------------------------------------------------- down

-- Processes of this sandbox that outlived dockerd (its containerd and
-- shims after a KILL), found by their command lines naming the directory.
local DAEMONS = { dockerd = true, containerd = true, ["docker-registry"] = true, runc = true,
                  ["docker-proxy"] = true }

local function leftovers(dir)
  local found = {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = tonumber(name)
    if pid then
      local cmdline = fs.read("/proc/" .. name .. "/cmdline")
      if cmdline and cmdline ~= "" then
        local argv0 = cmdline:match("^([^%z]*)") or ""
        local base = argv0:match("([^/]+)$") or argv0
        if (DAEMONS[base] or base:match("^containerd%-shim")) and cmdline:find(dir .. "/", 1, true)
            and alive(pid) then
          found[#found + 1] = pid
        end
      end
    end
  end
  return found
end

local function mounts_under(dir)
  local list = {}
  for line in (fs.read("/proc/mounts") or ""):gmatch("[^\n]+") do
    local target = line:match("^%S+ (%S+)")
    if target then
      target = target:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
      if target:sub(1, #dir + 1) == dir .. "/" then list[#list + 1] = target end
    end
  end
  table.sort(list, function(a, b) return a > b end)   -- deepest first
  return list
end

local function down(o, p)
  if not fs.exists(p.dir) then
    if o.json then io.stdout:write(json.encode({ ok = true, stopped = false, reason = "no sandbox" }), "\n")
    else say("nothing to stop: %s does not exist", p.dir) end
    return 0
  end
  check_root()
  local release = lock(p.dir)
  local result = table.pack(pcall(function()
    fs.remove(p.users .. "/" .. o.user)
    local users = fs.exists(p.users) and live_users(p) or {}
    if #users > 0 and not o.force then
      return { stopped = false, users = users }
    end
    local dpid, rpid = read_pid(p.dockerd_pid), read_pid(p.registry_pid)
    local r = { stopped = true, users = users, dockerd_pid = dpid, registry_pid = rpid }
    if alive(dpid) then
      -- Leave the swarm first, so no task restarts while the daemon stops.
      if ping_engine(p.sock) then
        local c = engine_client(p.sock)
        pcall(c.call, c, "sandbox", "POST", "/swarm/leave", { query = { force = true }, timeout = "30s" })
      end
      say("stopping dockerd (pid %d)", dpid)
      r.dockerd = stop_pid(dpid, 20)
    end
    if alive(rpid) then
      say("stopping docker-registry (pid %d)", rpid)
      r.registry = stop_pid(rpid, 5)
    end
    local rest = leftovers(p.dir)
    for _, pid in ipairs(rest) do
      say("stopping left-over process %d", pid)
      stop_pid(pid, 5)
    end
    r.leftovers = #rest
    -- Unmount anything a killed daemon left behind, then drop the state.
    for _, m in ipairs(mounts_under(p.dir)) do run({ "umount", "-l", m }, { timeout = "10s" }) end
    for _, name in ipairs { "data", "exec", "registry", "users", "tls" } do
      local ok, err = fs.remove(p.dir .. "/" .. name, { recursive = true })
      if not ok and not tostring(err):match("^ENOENT") then fail("cannot remove %s/%s: %s", p.dir, name, err) end
    end
    for _, f in ipairs { p.sock, p.dockerd_pid, p.registry_pid, p.state } do fs.remove(f) end
    return r
  end))
  release()
  if not result[1] then error(result[2], 0) end
  local r = result[2]
  if o.json then
    io.stdout:write(json.encode({ ok = true, stopped = r.stopped, users = json.array(r.users),
      dockerd_pid = r.dockerd_pid, registry_pid = r.registry_pid }), "\n")
  elseif not r.stopped then
    local pids = {}
    for _, u in ipairs(r.users) do pids[#pids + 1] = tostring(u) end
    say("left running: still used by pid %s (`slipway sandbox down%s --force` stops it anyway)",
      table.concat(pids, ", "), p.dir == DEFAULT_DIR and "" or (" --dir " .. p.dir))
  elseif o.force and #r.users > 0 then
    say("stopped %s (forced; it was still used by %s)", p.dir, require("slipway.words").count(#r.users, "other user"))
  else
    say("stopped %s", p.dir)
  end
  return 0
end

---------------------------------------------------------------- status

local function status(o, p)
  local s = read_state(p) or {}
  local dpid = read_pid(p.dockerd_pid)
  local rpid = read_pid(p.registry_pid)
  local st = { dir = p.dir, engine = { up = false }, registry = { up = false }, swarm = { state = "unknown" } }
  st.engine.pid = alive(dpid) and dpid or nil
  if fs.exists(p.sock) and ping_engine(p.sock) then
    st.engine.up = true
    local c = engine_client(p.sock)
    local info = swarm_info(c)
    local ok, v = pcall(c.call, c, "sandbox", "GET", "/version")
    if ok and type(v) == "table" then st.engine.version, st.engine.api = v.Version, v.ApiVersion end
    if info then
      st.swarm.state = info.Swarm and info.Swarm.LocalNodeState or "inactive"
      st.swarm.manager = info.Swarm and info.Swarm.ControlAvailable or false
      st.swarm.node_id = info.Swarm and info.Swarm.NodeID or nil
      st.engine.containers, st.engine.images = info.ContainersRunning, info.Images
    end
  end
  st.registry.port = s.registry_port
  st.registry.pid = alive(rpid) and rpid or nil
  if s.registry_port and st.registry.pid then
    st.registry.up = ping_registry(s.registry_port) == "up"
  end
  st.users = fs.exists(p.users) and (function()
    local users = {}
    for _, name in ipairs(fs.list(p.users) or {}) do
      local pid = tonumber(name)
      if pid and alive(pid) then users[#users + 1] = pid end
    end
    table.sort(users)
    return users
  end)() or {}
  st.ok = st.engine.up and st.registry.up and st.swarm.state == "active" and st.swarm.manager == true
  s.dockerd_pid, s.registry_pid = st.engine.pid, st.registry.pid
  if o.json then
    local out = { ok = st.ok, dir = st.dir, engine = st.engine, registry = st.registry, swarm = st.swarm,
                  users = json.array(st.users) }
    if s.registry_port then out.env = env_table(env_of(p, s)) end
    io.stdout:write(json.encode(out), "\n")
  elseif o.env then
    if s.registry_port then print_env(env_of(p, s), s) end
  else
    local function updown(b) return b and "up  " or "DOWN" end
    io.stdout:write(("sandbox %s: %s\n"):format(p.dir, st.ok and "up" or "not up"))
    io.stdout:write(("  engine    %s  unix://%s%s\n"):format(updown(st.engine.up), p.sock,
      st.engine.up and (" (dockerd %s, API %s, pid %s)"):format(tostring(st.engine.version),
        tostring(st.engine.api), tostring(st.engine.pid or "?"))
      or (st.engine.pid and (" (pid %d does not answer)"):format(st.engine.pid) or "")))
    io.stdout:write(("  registry  %s  %s%s\n"):format(updown(st.registry.up),
      s.registry_port and ("127.0.0.1:%d"):format(s.registry_port) or "-",
      st.registry.pid and (" (pid %d)"):format(st.registry.pid) or ""))
    io.stdout:write(("  swarm     %s  %s\n"):format(updown(st.ok or (st.swarm.state == "active" and st.swarm.manager)),
      st.swarm.state == "active" and ("node %s, %s"):format(tostring(st.swarm.node_id),
        st.swarm.manager and "manager" or "not a manager") or st.swarm.state))
    if (s.tls_port or 0) > 0 then
      io.stdout:write(("  tls       tcp://127.0.0.1:%d (certificates in %s)\n"):format(s.tls_port, p.tls))
    end
    io.stdout:write(("  users     %d%s\n"):format(#st.users,
      #st.users > 0 and (" (pid " .. table.concat(st.users, ", ") .. ")") or ""))
  end
  return st.ok and 0 or 1
end

---------------------------------------------------------------- main

function M.main(args)
  local ok, o = pcall(parse, args)
  if not ok then
    if getmetatable(o) == Usage then
      io.stderr:write("slipway sandbox: ", o.msg, "\n\n", M.help)
      return 2
    end
    error(o, 0)
  end
  if o.user == nil then
    local _, ppid = self_pid()
    o.user = ppid
  end
  quiet = o.json or false
  task_mod = require("slipway.task")
  local p = paths(o.dir)
  local done, code = task_mod.run(function()
    proc_mod = require("slipway.proc")
    http_mod = require("slipway.http")
    local run_cmd = ({ up = up, down = down, status = status })[o.cmd]
    local rok, rc = pcall(run_cmd, o, p)
    if not rok then
      if getmetatable(rc) == Failure then
        if o.json then
          io.stdout:write(json.encode({ ok = false, error = rc.msg }), "\n")
        end
        io.stderr:write("slipway sandbox ", o.cmd, ": ", rc.msg, "\n")
        return 1
      end
      error(rc, 0)
    end
    return rc
  end)
  if not done then
    if task_mod.is_cancelled(code) then
      io.stderr:write("slipway sandbox: interrupted\n")
      return 130
    end
    io.stderr:write("slipway sandbox ", o.cmd, ": ", tostring(code), "\n")
    return 1
  end
  return code
end

return M
