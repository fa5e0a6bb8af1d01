-- slipway.sandbox.single: the default sandbox, one dockerd in the host's
-- network namespace with a registry on 127.0.0.1 and a one-node swarm.
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
local fs = require("slipway.fs")
local json = require("slipway.json")
local words = require("slipway.words")
local host = require("slipway.sandbox.host")
local engine = require("slipway.sandbox.engine")
local registry = require("slipway.sandbox.registry")
local env = require("slipway.sandbox.env")

local M = {}
local fail, say = host.fail, host.say

function M.paths(dir)
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

-- sandbox.json, or what a directory set up before it existed still says.
function M.read_state(p)
  local text = fs.read(p.state)
  local ok, s = pcall(json.decode, text or "")
  if ok and type(s) == "table" then return s end
  -- its registry config still says the port, the running dockerd's command
  -- line its TLS port
  local port = (fs.read(p.dir .. "/registry.yml") or ""):match("addr: 127%.0%.0%.1:(%d+)")
  if not port then return nil end
  local cmdline = host.cmdline(host.read_pid(p.dockerd_pid))
  return { registry_port = tonumber(port), tls_port = tonumber(cmdline:match("tcp://127%.0%.0%.1:(%d+)")) }
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

local function pids_note(s)
  return ("dockerd pid %s, registry pid %s"):format(tostring(s.dockerd_pid or "-"), tostring(s.registry_pid or "-"))
end

---------------------------------------------------------------- up

function M.up(o, p)
  host.check_root()
  local dockerd = engine.program()
  local registry_program = registry.program()
  if not host.which("flock") or not host.which("setsid") then fail("flock/setsid not found: install util-linux") end
  local ok, err = fs.mkdir(p.users)
  if not ok then fail("cannot create %s: %s", p.users, err) end
  local s = host.locked(p.dir, function()
    local old = M.read_state(p)
    if old and old.kind == "nodes" then
      fail("the sandbox in %s runs %s: `slipway sandbox down --dir %s` first, or use another --dir",
        p.dir, words.count(#(old.nodes or {}), "node"), p.dir)
    end
    o.registry_port = o.registry_port or (old and old.registry_port) or 5000
    o.swarm_port = o.swarm_port or (old and old.swarm_port) or 2377
    o.tls_port = o.tls_port or (old and old.tls_port) or 0
    -- A running sandbox keeps its ports: asking for others is a mistake.
    if old and host.alive(host.read_pid(p.dockerd_pid)) then
      for _, k in ipairs { "registry_port", "swarm_port", "tls_port" } do
        if old[k] and old[k] ~= o[k] then
          fail("the sandbox in %s runs with --%s %d, not %d: `slipway sandbox down --dir %s` first, or use another --dir",
            p.dir, (k:gsub("_", "-")), old[k], o[k], p.dir)
        end
      end
    end
    if o.tls_port > 0 then engine.ensure_certs(p) end
    local s = { dir = p.dir, socket = p.sock, registry_port = o.registry_port,
                swarm_port = o.swarm_port, tls_port = o.tls_port, started = {} }
    -- A failed up leaves nothing half-up behind: what this call started
    -- is stopped again unless someone else uses the sandbox.
    local started_ok, start_err = pcall(function()
      s.dockerd_pid, s.started.dockerd = engine.ensure(p, o, dockerd)
      s.node_id, s.started.swarm = engine.ensure_swarm(p, o)
      s.registry_pid, s.started.registry = registry.ensure(p.dir, ("127.0.0.1:%d"):format(o.registry_port),
        registry_program)
    end)
    if not started_ok then
      if #host.live_users(p.users) == 0 then
        for i = #host.spawned, 1, -1 do
          if host.alive(host.spawned[i]) then
            say("stopping pid %d again (up failed)", host.spawned[i])
            host.stop_pid(host.spawned[i], 20)
          end
        end
      end
      error(start_err, 0)
    end
    local state = { dir = s.dir, socket = s.socket, registry_port = s.registry_port,
                    swarm_port = s.swarm_port, tls_port = s.tls_port,
                    dockerd_pid = s.dockerd_pid, registry_pid = s.registry_pid }
    fs.write_atomic(p.state, json.encode(state, { pretty = true }) .. "\n")
    fs.write(p.users .. "/" .. o.user, "")
    s.users = host.live_users(p.users)
    return s
  end)
  local vars = env_of(p, s)
  if o.json then
    io.stdout:write(json.encode({ ok = true, dir = s.dir, dockerd_pid = s.dockerd_pid,
      registry_pid = s.registry_pid, node_id = s.node_id, started = s.started,
      users = json.array(s.users), env = env.table(vars) }), "\n")
  elseif o.env then
    env.print(vars, pids_note(s))
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
    for _, v in ipairs(vars) do io.stdout:write("  ", env.export_line(v[1], v[2]), "\n") end
    io.stdout:write(("or: eval \"$(slipway sandbox up%s --env)\"\n"):format(
      s.dir == o.default_dir and "" or (" --dir " .. s.dir)))
  end
  return 0
end

---------------------------------------------------------------- down

-- Stop the engine and registry of p.dir and remove their state (the logs
-- stay). Returns { dockerd_pid, registry_pid, leftovers }.
function M.stop(p)
  local dpid, rpid = host.read_pid(p.dockerd_pid), host.read_pid(p.registry_pid)
  local r = { dockerd_pid = dpid, registry_pid = rpid }
  if host.alive(dpid) then
    -- Leave the swarm first, so no task restarts while the daemon stops.
    if engine.ping(p.sock) then
      local c = engine.client(p.sock)
      pcall(c.call, c, "sandbox", "POST", "/swarm/leave", { query = { force = true }, timeout = "30s" })
    end
    say("stopping dockerd (pid %d)", dpid)
    r.dockerd = host.stop_pid(dpid, 20)
  end
  if host.alive(rpid) then
    say("stopping docker-registry (pid %d)", rpid)
    r.registry = host.stop_pid(rpid, 5)
  end
  local rest = engine.leftovers(p.dir)
  for _, pid in ipairs(rest) do
    say("stopping left-over process %d", pid)
    host.stop_pid(pid, 5)
  end
  r.leftovers = #rest
  -- Unmount anything a killed daemon left behind, then drop the state.
  for _, m in ipairs(host.mounts_under(p.dir)) do host.run({ "umount", "-l", m }, { timeout = "10s" }) end
  for _, name in ipairs { "data", "exec", "registry", "users", "tls" } do
    local ok, err = fs.remove(p.dir .. "/" .. name, { recursive = true })
    if not ok and not tostring(err):match("^ENOENT") then fail("cannot remove %s/%s: %s", p.dir, name, err) end
  end
  for _, f in ipairs { p.sock, p.dockerd_pid, p.registry_pid, p.state } do fs.remove(f) end
  return r
end

-- Unregister o.user; stop(p) when no other live user is left (or --force).
-- Returns { stopped, users, ... }.
function M.down(o, p, stop)
  return host.locked(p.dir, function()
    fs.remove(p.users .. "/" .. o.user)
    local users = fs.exists(p.users) and host.live_users(p.users) or {}
    if #users > 0 and not o.force then
      return { stopped = false, users = users }
    end
    local r = stop(p)
    r.stopped, r.users = true, users
    return r
  end)
end

---------------------------------------------------------------- status

function M.status(o, p)
  local s = M.read_state(p) or {}
  local dpid = host.read_pid(p.dockerd_pid)
  local rpid = host.read_pid(p.registry_pid)
  local st = { dir = p.dir, engine = { up = false }, registry = { up = false }, swarm = { state = "unknown" } }
  st.engine.pid = host.alive(dpid) and dpid or nil
  if fs.exists(p.sock) and engine.ping(p.sock) then
    st.engine.up = true
    local c = engine.client(p.sock)
    local info = engine.info(c)
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
  st.registry.pid = host.alive(rpid) and rpid or nil
  if s.registry_port and st.registry.pid then
    st.registry.up = registry.ping(("127.0.0.1:%d"):format(s.registry_port)) == "up"
  end
  st.users = host.live_users(p.users, { read_only = true })
  st.ok = st.engine.up and st.registry.up and st.swarm.state == "active" and st.swarm.manager == true
  s.dockerd_pid, s.registry_pid = st.engine.pid, st.registry.pid
  if o.json then
    local out = { ok = st.ok, dir = st.dir, engine = st.engine, registry = st.registry, swarm = st.swarm,
                  users = json.array(st.users) }
    if s.registry_port then out.env = env.table(env_of(p, s)) end
    io.stdout:write(json.encode(out), "\n")
  elseif o.env then
    if s.registry_port then env.print(env_of(p, s), pids_note(s)) end
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

return M
