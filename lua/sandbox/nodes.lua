-- slipway.sandbox.nodes: a sandbox of N nodes (`slipway sandbox up --nodes
-- N [--managers M]`): N private dockerd daemons, each one a node with its
-- own network namespace and address on the sandbox's bridge
-- (slipway.sandbox.network), joined into one swarm with M managers, and a
-- registry on the bridge's host address that every node reaches.
--
-- Each node runs as PID 1 of its own PID namespace, with its own mount
-- namespace (a fresh /sys for its network namespace, the host's cgroup
-- hierarchies mounted again, a private /run that hides the host's
-- containerd and holds the node's /run/docker.sock) and its own hostname
-- (UTS namespace: the swarm lists it as nodeK). Killing that PID 1 is a
-- real node crash: the kernel ends its containerd, shims and containers
-- with it; it is also how `down` stops a node, leaving nothing behind.
--
-- The directory (besides users/, lock and the registry's files):
--   sandbox.json          kind "nodes", the network's names, every node's
--                         pids; written before each thing is created, so
--                         that `down` after a crashed `up` removes it
--   nodes/nodeK/          node.sh (how the node starts), daemon.json,
--                         data/ (dockerd's data root), docker.sock (the
--                         engine from the host), dockerd.log
local fs = require("slipway.fs")
local json = require("slipway.json")
local task = require("slipway.task")
local words = require("slipway.words")
local host = require("slipway.sandbox.host")
local engine = require("slipway.sandbox.engine")
local network = require("slipway.sandbox.network")
local registry = require("slipway.sandbox.registry")
local env = require("slipway.sandbox.env")

local M = {}
local fail, say = host.fail, host.say
local quote = words.shell_quote

M.MAX_NODES = 16
local SWARM_PORT = 2377

function M.paths(dir)
  return {
    dir = dir,
    state = dir .. "/sandbox.json",
    users = dir .. "/users",
    nodes = dir .. "/nodes",
    registry_pid = dir .. "/registry.pid",
  }
end

local function node_dir(p, node) return p.nodes .. "/" .. node.name end

function M.read_state(p)
  local ok, s = pcall(json.decode, fs.read(p.state) or "")
  if ok and type(s) == "table" and s.kind == "nodes" then return s end
  return nil
end

local function save(p, s)
  local ok, err = fs.write_atomic(p.state, json.encode(s, { pretty = true }) .. "\n")
  if not ok then fail("cannot write %s: %s", p.state, err) end
end

-- Is there anything of a multi-node sandbox in dir (even half made)?
function M.present(dir)
  local p = M.paths(dir)
  if M.read_state(p) or fs.exists(p.nodes) then return true end
  local left = network.leftovers(require("slipway.hash").sha256(dir):sub(1, 6))
  return #left.netns > 0 or #left.links > 0
end

---------------------------------------------------------------- one node

-- The host's cgroup mounts, as `mount` lines for the node's own /sys.
local function cgroup_mounts()
  local lines = {}
  for line in (fs.read("/proc/self/mounts") or ""):gmatch("[^\n]+") do
    local src, target, fstype, opts = line:match("^(%S+) (%S+) (%S+) (%S+)")
    if target and (target == "/sys/fs/cgroup" or target:sub(1, 15) == "/sys/fs/cgroup/") then
      lines[#lines + 1] = ("mkdir -p %s && mount -t %s -o %s %s %s"):format(
        quote(target), quote(fstype), quote(opts), quote(src), quote(target))
    end
  end
  return lines
end

-- The script the node's PID 1 runs (then becomes dockerd).
local function node_script(p, s, node, dockerd)
  local dir = node_dir(p, node)
  local lines = {
    "# written by `slipway sandbox up --nodes`: run by unshare as PID 1 of the node's namespaces",
    "set -e",
    "mount -t sysfs sysfs /sys",
  }
  for _, l in ipairs(cgroup_mounts()) do lines[#lines + 1] = l end
  for _, l in ipairs {
    "mount -t tmpfs -o mode=755 tmpfs /run",
    "mkdir -p /run/sshd /run/docker",
    "hostname " .. quote(node.name),
    table.concat({ "exec", quote(dockerd), "--config-file", quote(dir .. "/daemon.json"),
      "--storage-driver", "vfs", "--bridge=none", "--ip6tables=false",
      "--data-root", quote(dir .. "/data"), "--exec-root", "/run/docker", "--pidfile", "/run/docker.pid",
      "--host", "unix:///run/docker.sock", "--host", quote("unix://" .. node.socket),
      "--insecure-registry", quote(s.subnet), "--log-level", "warn" }, " "),
  } do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

-- The node's PID 1 as the host sees it: unshare's child.
local function find_pid1(supervisor)
  for _ = 1, 100 do
    local children = fs.read(("/proc/%d/task/%d/children"):format(supervisor, supervisor))
    local pid = children and tonumber(children:match("(%d+)"))
    if pid then return pid end
    if not host.alive(supervisor) then return nil end
    task.sleep(0.02)
  end
  return nil
end

local function node_up(node)
  return host.alive(node.pid) and fs.exists(node.socket) and engine.ping(node.socket)
end

-- Start the node's daemon in its namespaces (not waiting for it).
local function start_node(p, s, node, dockerd)
  local dir = node_dir(p, node)
  fs.mkdir(dir)
  fs.remove(node.socket)
  fs.write(dir .. "/daemon.json", "{}\n")
  fs.write(dir .. "/node.sh", node_script(p, s, node, dockerd))
  say("starting %s (%s, %s)", node.name, node.addr, dir .. "/dockerd.log")
  node.supervisor = host.start_detached({ "nsenter", "--net=/run/netns/" .. node.netns,
    "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
    "sh", dir .. "/node.sh" }, dir .. "/dockerd.log")
  node.pid = find_pid1(node.supervisor)
  save(p, s)
end

local function wait_node(p, node)
  engine.wait_up(node.socket, node.supervisor, node_dir(p, node) .. "/dockerd.log", 60)
end

---------------------------------------------------------------- the swarm

local function swarm_state(c)
  local info, err = engine.info(c)
  if not info then fail("the engine does not answer /info: %s", err) end
  return info.Swarm and info.Swarm.LocalNodeState or "inactive", info
end

local function join(node, remote, token)
  local c = engine.client(node.socket, "60s")
  local state = swarm_state(c)
  if state == "active" or state == "pending" then return false end
  if state ~= "inactive" then c:call("sandbox", "POST", "/swarm/leave", { query = { force = true } }) end
  local ok, err = pcall(c.call, c, "sandbox", "POST", "/swarm/join", { body = {
    ListenAddr = "0.0.0.0:" .. SWARM_PORT, AdvertiseAddr = node.addr .. ":" .. SWARM_PORT,
    RemoteAddrs = { remote }, JoinToken = token } })
  if not ok then fail("%s could not join the swarm at %s: %s", node.name, remote, tostring(err)) end
  return true
end

-- The manager that answers, its client.
local function manager_client(s)
  for _, node in ipairs(s.nodes) do
    if node.role == "manager" and host.alive(node.pid) and engine.ping(node.socket) then
      return engine.client(node.socket), node
    end
  end
  return nil
end

-- The swarm's view of the nodes: hostname -> { state, availability,
-- leader, reachability, id }.
local function swarm_nodes(c)
  local ok, list = pcall(c.call, c, "sandbox", "GET", "/nodes", { timeout = "10s" })
  if not ok or type(list) ~= "table" then return nil, tostring(list) end
  local by = {}
  for _, n in ipairs(list) do
    local hn = n.Description and n.Description.Hostname or "?"
    local ms = n.ManagerStatus
    local entry = { id = n.ID, state = n.Status and n.Status.State or "unknown",
      availability = n.Spec and n.Spec.Availability, leader = ms and ms.Leader or false,
      reachability = ms and ms.Reachability or nil }
    -- a node that was replaced shows twice: the live entry wins
    if not by[hn] or by[hn].state ~= "ready" then by[hn] = entry end
  end
  return by
end

-- init on node1 (when no swarm yet), managers join one after the other,
-- workers all at once; then wait until every node is ready.
local function form_swarm(s)
  local first = s.nodes[1]
  local c1 = engine.client(first.socket, "60s")
  local state = swarm_state(c1)
  if state == "inactive" then
    local ok, err = pcall(c1.call, c1, "sandbox", "POST", "/swarm/init", { body = {
      ListenAddr = "0.0.0.0:" .. SWARM_PORT, AdvertiseAddr = first.addr .. ":" .. SWARM_PORT } })
    if not ok then fail("swarm init on %s failed: %s", first.name, tostring(err)) end
    s.swarm_started = true
  end
  -- a manager that was just restarted takes a moment to lead again
  local c, via, sw
  local lead_deadline = task.now() + 30000
  while true do
    c, via = manager_client(s)
    local ok, res = false, "no manager's engine answers"
    if c then ok, res = pcall(c.call, c, "sandbox", "GET", "/swarm") end
    if ok then sw = res break end
    if task.now() > lead_deadline then fail("no manager of the swarm answers within 30s: %s", tostring(res)) end
    task.sleep(0.2)
  end
  local remote = via.addr .. ":" .. SWARM_PORT
  for k = 2, #s.nodes do
    local node = s.nodes[k]
    if node.role == "manager" then join(node, remote, sw.JoinTokens.Manager) end
  end
  local joins = {}
  for k = 2, #s.nodes do
    local node = s.nodes[k]
    if node.role == "worker" then joins[#joins + 1] = task.spawn(join, node, remote, sw.JoinTokens.Worker) end
  end
  local first_err
  for _, t in ipairs(joins) do
    local ok, err = pcall(t.join, t)
    if not ok then first_err = first_err or err end
  end
  if first_err then error(first_err, 0) end
  local deadline = task.now() + 60000
  while true do
    local by = swarm_nodes(c)
    local missing = {}
    for _, node in ipairs(s.nodes) do
      local n = by and by[node.name]
      if n and n.state == "ready" then node.id = n.id else missing[#missing + 1] = node.name end
    end
    if #missing == 0 then return end
    if task.now() > deadline then fail("not ready in the swarm within 60s: %s", table.concat(missing, ", ")) end
    task.sleep(0.2)
  end
end

---------------------------------------------------------------- up

-- DOCKER_HOST is the first manager that answers (the first manager when
-- none does).
local function env_of(s)
  local sock
  for _, node in ipairs(s.nodes) do
    if node.role == "manager" then
      sock = sock or node.socket
      if node_up(node) then sock = node.socket break end
    end
  end
  return {
    { "DOCKER_HOST", "unix://" .. sock },
    { "SLIPWAY_REGISTRY", s.registry },
  }
end

local function fresh_state(p, o, net)
  local s = { kind = "nodes", dir = p.dir, tag = net.tag, bridge = net.bridge, subnet = net.subnet,
              gateway = net.gateway, registry_port = o.registry_port,
              registry = ("%s:%d"):format(net.gateway, o.registry_port), managers = o.managers, nodes = {} }
  for k, n in ipairs(net.nodes) do
    s.nodes[k] = { name = n.name, netns = n.netns, veth = n.veth, addr = n.addr,
                   role = k <= o.managers and "manager" or "worker",
                   socket = p.nodes .. "/" .. n.name .. "/docker.sock" }
  end
  return s
end

-- The network plan as network.* takes it, from a state.
local function net_of(s)
  return { tag = s.tag, bridge = s.bridge, subnet = s.subnet, gateway = s.gateway, nodes = s.nodes }
end

local function bring_up(p, s, programs)
  local net = net_of(s)
  network.ensure_bridge(net)
  local rule = network.forward_rule(net)
  if rule then
    s.forward_rule = rule
    save(p, s)
    network.add_rule(rule)
  end
  for _, node in ipairs(s.nodes) do network.ensure_node(net, node) end
  network.check_vxlan(s.nodes[1].netns)
  s.started = {}
  for _, node in ipairs(s.nodes) do
    if not node_up(node) then
      if host.alive(node.supervisor) then host.stop_pid(node.supervisor, 5) end
      start_node(p, s, node, programs.dockerd)
      s.started[node.name] = true
    end
  end
  for _, node in ipairs(s.nodes) do
    if s.started[node.name] then wait_node(p, node) end
  end
  s.registry_pid, s.started.registry = registry.ensure(p.dir, s.registry, programs.registry)
  save(p, s)
  form_swarm(s)
  save(p, s)
end

function M.up(o, p)
  host.check_root("network namespaces and dockerd need root")
  local programs = { dockerd = engine.program(), registry = registry.program() }
  network.check_programs()
  local ok, err = fs.mkdir(p.users)
  if not ok then fail("cannot create %s: %s", p.users, err) end
  local s = host.locked(p.dir, function()
    local single = require("slipway.sandbox.single")
    local sp = single.paths(p.dir)
    if host.alive(host.read_pid(sp.dockerd_pid)) then
      fail("the sandbox in %s runs one engine (no --nodes): `slipway sandbox down --dir %s` first, or use another --dir",
        p.dir, p.dir)
    end
    local old = M.read_state(p)
    o.registry_port = o.registry_port or (old and old.registry_port) or 5000
    o.managers = o.managers or (old and old.managers) or 1
    if old and (#old.nodes ~= o.nodes or old.managers ~= o.managers or old.registry_port ~= o.registry_port) then
      fail("the sandbox in %s has %s (%s) and registry port %d: `slipway sandbox down --dir %s` first, or use another --dir",
        p.dir, words.count(#old.nodes, "node"), words.count(old.managers, "manager"), old.registry_port, p.dir)
    end
    if o.managers > o.nodes then
      fail("--managers %d: a sandbox of %s has at most %d managers", o.managers, words.count(o.nodes, "node"), o.nodes)
    end
    local s = old or fresh_state(p, o, network.plan(p.dir, o.nodes))
    fs.mkdir(p.nodes)
    save(p, s)
    local up_ok, up_err = pcall(bring_up, p, s, programs)
    if not up_ok then
      -- A fresh sandbox that failed half way is removed again; one that
      -- ran before keeps what runs.
      if not old and #host.live_users(p.users) == 0 then
        say("up failed: removing what it made")
        pcall(M.stop, p)
      end
      error(up_err, 0)
    end
    fs.write(p.users .. "/" .. o.user, "")
    s.users = host.live_users(p.users)
    return s
  end)
  local vars = env_of(s)
  if o.json then
    local nodes = {}
    for i, node in ipairs(s.nodes) do
      nodes[i] = { name = node.name, role = node.role, addr = node.addr, socket = node.socket, pid = node.pid,
                   netns = node.netns, id = node.id, started = s.started[node.name] or false }
    end
    io.stdout:write(json.encode({ ok = true, dir = s.dir, kind = "nodes", nodes = nodes,
      network = { bridge = s.bridge, subnet = s.subnet, gateway = s.gateway },
      registry = { addr = s.registry, pid = s.registry_pid, started = s.started.registry },
      users = json.array(s.users), env = env.table(vars) }), "\n")
  elseif o.env then
    env.print(vars, ("%s on %s, registry pid %d"):format(words.count(#s.nodes, "node"), s.subnet, s.registry_pid))
  else
    io.stdout:write(("sandbox %s is up: %s (%s) on %s (bridge %s)\n"):format(s.dir, words.count(#s.nodes, "node"),
      words.count(s.managers, "manager"), s.subnet, s.bridge))
    for _, node in ipairs(s.nodes) do
      io.stdout:write(("  %-9s %-8s %-15s unix://%s (pid %d, %s)\n"):format(node.name, node.role, node.addr,
        node.socket, node.pid or 0, s.started[node.name] and "started" or "already running"))
    end
    io.stdout:write(("  registry  %s (pid %d, %s)\n"):format(s.registry, s.registry_pid,
      s.started.registry and "started" or "already running"))
    io.stdout:write("use it from this shell with:\n")
    for _, v in ipairs(vars) do io.stdout:write("  ", env.export_line(v[1], v[2]), "\n") end
    io.stdout:write(("or: eval \"$(slipway sandbox up --nodes %d%s%s --env)\"\n"):format(#s.nodes,
      s.managers > 1 and (" --managers " .. s.managers) or "",
      s.dir == o.default_dir and "" or (" --dir " .. s.dir)))
  end
  return 0
end

---------------------------------------------------------------- down

local NODE_PROGRAMS = { dockerd = true, unshare = true, nsenter = true, sh = true }

-- Processes of the sandbox's nodes, found by the directory in their
-- command lines (supervisors, node scripts, dockerd) or as the recorded
-- pids.
local function node_processes(p, s)
  local list, seen = {}, {}
  local function add(pid) if pid and not seen[pid] and host.alive(pid) then seen[pid] = true; list[#list + 1] = pid end end
  for _, node in ipairs(s and s.nodes or {}) do add(node.pid); add(node.supervisor) end
  for _, proc in ipairs(host.processes()) do
    if NODE_PROGRAMS[proc.base] and proc.cmdline:find(p.nodes .. "/", 1, true) then add(proc.pid) end
  end
  return list
end

-- Stop everything of the multi-node sandbox in p.dir and remove it: the
-- nodes (SIGKILL to each PID 1: its namespace goes with it), the
-- registry, the firewall rule, the namespaces, veths and bridge, and the
-- state. Works from the state file and, for what a crashed up left
-- unrecorded, from the names the directory implies.
function M.stop(p)
  local s = M.read_state(p)
  local tag = s and s.tag or require("slipway.hash").sha256(p.dir):sub(1, 6)
  local r = { nodes = s and #s.nodes or 0 }
  local pids = node_processes(p, s)
  if #pids > 0 then say("stopping %s", words.count(#pids, "node process", "node processes")) end
  for _, pid in ipairs(pids) do pcall(host.signal, pid, "KILL") end
  for _ = 1, 100 do
    local alive = false
    for _, pid in ipairs(pids) do if host.alive(pid) then alive = true end end
    if not alive then break end
    task.sleep(0.05)
  end
  local rpid = host.read_pid(p.registry_pid)
  if host.alive(rpid) then
    say("stopping docker-registry (pid %d)", rpid)
    r.registry = host.stop_pid(rpid, 5)
  end
  r.registry_pid = rpid
  local net = s and net_of(s) or { tag = tag, bridge = "slw" .. tag }
  local rule = s and s.forward_rule
  if rule then network.remove_rule(rule) end
  network.remove(tag, net)
  for _, m in ipairs(host.mounts_under(p.dir)) do host.run({ "umount", "-l", m }, { timeout = "10s" }) end
  for _, name in ipairs { "nodes", "registry", "users" } do
    local ok, err = fs.remove(p.dir .. "/" .. name, { recursive = true })
    if not ok and not tostring(err):match("^ENOENT") then fail("cannot remove %s/%s: %s", p.dir, name, err) end
  end
  for _, f in ipairs { p.registry_pid, p.state } do fs.remove(f) end
  return r
end

---------------------------------------------------------------- status

-- Every node's state: { name, role, addr, pid, up (engine answers),
-- swarm = { state, availability, leader, reachability } }.
function M.inspect(s)
  local c = manager_client(s)
  local by = c and swarm_nodes(c) or nil
  local list = {}
  for i, node in ipairs(s.nodes) do
    local e = { name = node.name, role = node.role, addr = node.addr, socket = node.socket, netns = node.netns,
                pid = host.alive(node.pid) and node.pid or nil }
    e.up = e.pid ~= nil and fs.exists(node.socket) and engine.ping(node.socket)
    local n = by and by[node.name]
    e.swarm = n and { state = n.state, availability = n.availability, leader = n.leader,
                      reachability = n.reachability, id = n.id } or { state = "unknown" }
    list[i] = e
  end
  return list, by ~= nil
end

function M.status(o, p)
  local s = M.read_state(p)
  if not s then return nil end
  local nodes, swarm_ok = M.inspect(s)
  local rpid = host.read_pid(p.registry_pid)
  local reg = { addr = s.registry, pid = host.alive(rpid) and rpid or nil }
  reg.up = reg.pid ~= nil and registry.ping(s.registry) == "up"
  local ok = swarm_ok and reg.up
  for _, n in ipairs(nodes) do
    if not (n.up and n.swarm.state == "ready") then ok = false end
  end
  local users = host.live_users(p.users, { read_only = true })
  if o.json then
    io.stdout:write(json.encode({ ok = ok, dir = p.dir, kind = "nodes", nodes = nodes, registry = reg,
      network = { bridge = s.bridge, subnet = s.subnet, gateway = s.gateway },
      users = json.array(users), env = env.table(env_of(s)) }), "\n")
  elseif o.env then
    env.print(env_of(s), ("%s on %s"):format(words.count(#s.nodes, "node"), s.subnet))
  else
    local up = 0
    for _, n in ipairs(nodes) do if n.up then up = up + 1 end end
    io.stdout:write(("sandbox %s: %s (%d of %s up, %s) on %s (bridge %s)\n"):format(p.dir, ok and "up" or "not up",
      up, words.count(#nodes, "node"), words.count(s.managers, "manager"), s.subnet, s.bridge))
    for _, n in ipairs(nodes) do
      local role = n.role
      if n.swarm.leader then role = role .. " (leader)"
      elseif n.role == "manager" and n.swarm.reachability then role = role .. " (" .. n.swarm.reachability .. ")" end
      local state = n.up and n.swarm.state or (n.pid and "not answering" or "down")
      io.stdout:write(("  %-9s %s  %-18s %-15s %s%s\n"):format(n.name, (n.up and n.swarm.state == "ready") and "up  " or "DOWN",
        role, n.addr, state, n.pid and (" (pid %d)"):format(n.pid) or ""))
    end
    io.stdout:write(("  registry  %s  %s%s\n"):format(reg.up and "up  " or "DOWN", s.registry,
      reg.pid and (" (pid %d)"):format(reg.pid) or ""))
    io.stdout:write(("  users     %d%s\n"):format(#users, #users > 0 and (" (pid " .. table.concat(users, ", ") .. ")") or ""))
  end
  return ok and 0 or 1
end

return M
