-- `slipway sandbox up --nodes N`: a swarm of real dockerd nodes, each in
-- its own network, mount, UTS and PID namespaces on a private bridge, and
-- what only several nodes show: placement across nodes, a stack-wide
-- rollback across them, a node killed (-9) during a deploy, a remote
-- engine over SSH (sshd inside a node's namespaces) with one connection
-- for a whole run, one pipeline deploying to two swarms at once, and down
-- leaving nothing behind, even after a crashed up.
--
-- It starts engines of its own, so it holds the machine's sandbox lock
-- EXCLUSIVE for its whole life (support.machine_lock; tests/run gives
-- specs named *docker*/*stack* the shared engine under the same lock,
-- shared; tests/run runs *_nodes_spec.lua apart, under the lock
-- exclusive). Needs root.
local N = require("support.nodes_sandbox")
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local hash = require("slipway.hash")
local task = require("slipway.task")
local leaks = require("support.leaks")
local repo = require("support.repo")

assert(N.is_root(), "tests/sandbox_nodes_spec.lua needs root: the nodes are dockerd daemons in network namespaces")

local SLIPWAY = N.SLIPWAY
local DIR_A = "/tmp/slipway-nodes-spec-a"
local DIR_B = "/tmp/slipway-nodes-spec-b"
local APPS = repo.ROOT .. "/tests/apps"
local sandbox, sh, up, status, leftovers, wait_for = N.sandbox, N.sh, N.up, N.status, N.leftovers, N.wait_for

describe("slipway sandbox --nodes", function()
  local release
  local A                -- `up --json` of the 3-node sandbox
  local docker, client, mgr
  local registry, image_v1

  local host_links        -- the host's engine links before any node ran

  setup(function()
    release = require("support.machine_lock").acquire()
    host_links = N.engine_links()
    for _, d in ipairs { DIR_A, DIR_B } do
      if fs.exists(d) then sandbox { "down", "--dir", d, "--force" } end
    end
    docker = require("slipway.docker")
    client = require("slipway.docker.client")
  end)

  teardown(function()
    if client then client.close_all() end
    for _, d in ipairs { DIR_A, DIR_B } do
      if fs.exists(d) then sandbox { "down", "--dir", d, "--force" } end
    end
    if release then release() end
  end)

  describe("a 3-node sandbox (1 manager, 2 workers)", function()
    leaks.check()

    it("comes up: three engines in their own namespaces, one swarm, a registry every node reaches", function()
      local started = task.now()
      A = up(DIR_A, { "--nodes", "3" })
      local up_ms = task.now() - started
      assert.same({ true, "nodes", 3 }, { A.ok, A.kind, #A.nodes })
      assert.same({ "manager", "worker", "worker" }, { A.nodes[1].role, A.nodes[2].role, A.nodes[3].role })
      assert.matches("^198%.1[89]%.%d+%.0/24$", A.network.subnet)
      assert.same("unix://" .. A.nodes[1].socket, A.env.DOCKER_HOST)
      registry = A.env.SLIPWAY_REGISTRY
      assert.same(A.network.gateway .. ":5000", registry)
      -- one swarm of three ready nodes, named by their own hostnames, with
      -- their own addresses
      mgr = client.new({ host = A.env.DOCKER_HOST })
      local nodes = mgr:call("test", "GET", "/nodes")
      local seen = {}
      for _, n in ipairs(nodes) do
        seen[n.Description.Hostname] = { n.Status.State, n.Status.Addr, n.Spec.Role }
      end
      assert.same({ node1 = { "ready", A.nodes[1].addr, "manager" }, node2 = { "ready", A.nodes[2].addr, "worker" },
                    node3 = { "ready", A.nodes[3].addr, "worker" } }, seen)
      -- each engine is its own: its own name, its own PID 1 in its own
      -- namespaces (not the host's)
      for k, n in ipairs(A.nodes) do
        local info = client.new({ host = "unix://" .. n.socket }):call("test", "GET", "/info")
        assert.same("node" .. k, info.Name)
        assert.matches("NSpid:%s+%d+%s+1\n", fs.read("/proc/" .. n.pid .. "/status"))
        for _, ns in ipairs { "net", "mnt", "uts", "pid" } do
          local mine = sh("readlink /proc/self/ns/" .. ns).stdout
          local its = sh("readlink /proc/" .. n.pid .. "/ns/" .. ns).stdout
          assert.matches("^" .. ns .. ":%[%d+%]", its)
          assert.are_not.equal(mine, its, ns)
        end
      end
      local st, code = status(DIR_A)
      assert.same({ 0, true, true }, { code, st.ok, st.registry.up })
      for k, n in ipairs(st.nodes) do
        assert.same({ "node" .. k, true, "ready" }, { n.name, n.up, n.swarm.state })
      end
      assert.is_true(st.nodes[1].swarm.leader)
      io.stderr:write(("[3 nodes up in %.1fs]\n"):format(up_ms / 1000))
    end)

    it("up again keeps what runs; asking for another shape is refused", function()
      local again = up(DIR_A, { "--nodes", "3" })
      assert.same({ A.nodes[1].pid, A.nodes[2].pid, A.nodes[3].pid },
        { again.nodes[1].pid, again.nodes[2].pid, again.nodes[3].pid })
      assert.same({ false, false, false }, { again.nodes[1].started, again.nodes[2].started, again.nodes[3].started })
      local r = sandbox { "up", "--dir", DIR_A, "--nodes", "2" }
      assert.same(1, r.code)
      assert.matches("the sandbox in " .. DIR_A:gsub("%p", "%%%0") .. " has 3 nodes %(1 manager%)", r.stderr)
      r = sandbox { "up", "--dir", DIR_A }
      assert.same(1, r.code)
      assert.matches("runs 3 nodes", r.stderr)
    end)

    it("builds the test image on the manager and pushes it to the sandbox registry", function()
      -- one image; versions and the crash (MODE=crash: exit 3 at start)
      -- are its environment, so the workers pull it once
      require("support.docker_fixtures").app_binary()
      image_v1 = registry .. "/nodes-app:v1"
      docker.build({ context = APPS, tag = image_v1, client = mgr, quiet = true })
      docker.push(image_v1, { client = mgr, quiet = true })
    end)

    local function running_nodes(service)
      local nodes = {}
      for _, t in ipairs(docker.service.tasks(service, { client = mgr, desired_state = "running" })) do
        if t.Status.State == "running" then nodes[#nodes + 1] = t.NodeID end
      end
      table.sort(nodes)
      return nodes
    end

    local function node_ids()
      local ids = {}
      for _, n in ipairs(mgr:call("test", "GET", "/nodes")) do
        if n.Status.State == "ready" then ids[#ids + 1] = n.ID end
      end
      table.sort(ids)
      return ids
    end

    it("replicas: 3 with max_replicas_per_node: 1 runs one task on each node", function()
      local r = docker.stack.deploy("spread", { services = { web = { image = image_v1, deploy = {
        replicas = 3, placement = { max_replicas_per_node = 1 } } } } }, { client = mgr, timeout = "2m", quiet = true })
      assert.is_true(r.converged)
      assert.same(node_ids(), running_nodes("spread_web"))
      -- a fourth replica has nowhere to go: the wait says so, naming the
      -- limit, and the deploy rolls back to three
      local ok, err = pcall(docker.stack.deploy, "spread", { services = { web = { image = image_v1, deploy = {
        replicas = 4, placement = { max_replicas_per_node = 1 } } } } }, { client = mgr, timeout = "6s", quiet = true })
      assert.is_false(ok)
      assert.matches("spread_web: 3/4 running; task %w+ pending: no suitable node %(max replicas per node limit exceed", err)
      assert.matches("%(the stack was rolled back%)", err)
      assert.same(3, docker.service.inspect("spread_web", { client = mgr }).Spec.Mode.Replicated.Replicas)
      docker.stack.rm("spread", { client = mgr })
    end)

    it("a broken update rolls back stack-wide, across the three nodes, naming the node of the failing task", function()
      local function stack(mode)
        local update = { parallelism = 1, monitor = "2s", failure_action = "pause" }
        return { services = {
          web = { image = image_v1, environment = { MODE = mode }, deploy = { replicas = 3, placement = { max_replicas_per_node = 1 },
                  update_config = update, restart_policy = { condition = "any", delay = "1s" } } },
          api = { image = image_v1, environment = { VERSION = "api" }, deploy = { replicas = 2,
                  update_config = update } },
        } }
      end
      assert.is_true(docker.stack.deploy("roll", stack("healthy"), { client = mgr, timeout = "2m", quiet = true }).converged)
      local before = {}
      for _, s in ipairs(docker.stack.services("roll", { client = mgr })) do before[s.Spec.Name] = s.Spec end
      local lines = {}
      local bad = stack("crash")
      bad.services.api.environment.VERSION = "api-2"     -- api changes too: both must come back
      local ok, err = pcall(docker.stack.deploy, "roll", bad, { client = mgr, timeout = "90s",
        on_progress = function(l) lines[#lines + 1] = l end })
      assert.is_false(ok)
      assert.matches("roll_web: update paused: .* on node node%d: .*exit %(3%)", err)
      assert.matches("%(the stack was rolled back%)$", err)
      assert.truthy(table.concat(lines, "\n"):find("roll_api restored to its previous spec (rollback)", 1, true))
      for _, s in ipairs(docker.stack.services("roll", { client = mgr })) do
        assert.is_true(docker.stack.same(before[s.Spec.Name], s.Spec), s.Spec.Name .. " is back on its spec")
      end
      wait_for("web back on three nodes", function()
        return #running_nodes("roll_web") == 3 and #node_ids() == 3
      end)
      assert.same(node_ids(), running_nodes("roll_web"))
      docker.stack.rm("roll", { client = mgr })
    end)

    it("kill -9 of a worker's daemon during a deploy: converged on the others (or rolled back), naming the node", function()
      local function stack(version)
        return { services = { web = { image = image_v1, environment = { VERSION = version }, deploy = { replicas = 3,
          -- start-first (stop-first waits up to a minute for a task on a
          -- lost node to stop). Seen on dockerd 20.10: a new task assigned to
          -- the node before the swarm marks it down is replaced elsewhere,
          -- but the update keeps waiting for the lost one ("update in
          -- progress" for good), so the deploy times out and rolls back,
          -- naming the node; it converges when the node dies before the
          -- update reaches it. The update lasts longer (8s between tasks)
          -- than the swarm takes to see the node down (11-14s): an update
          -- that ended first would converge on a dead node's task that
          -- still reads running, which nobody can tell yet
          update_config = { parallelism = 1, delay = "8s", monitor = "1s", failure_action = "rollback",
                            order = "start-first" },
          restart_policy = { condition = "any", delay = "1s" } } } } }
      end
      assert.is_true(docker.stack.deploy("crash", stack("v1"), { client = mgr, timeout = "2m", quiet = true }).converged)
      local victim = A.nodes[3]
      local lines = {}
      local timeout_s = 60
      local started = task.now()
      local deploy = task.spawn(function()
        return pcall(docker.stack.deploy, "crash", stack("v2"), { client = mgr, timeout = timeout_s .. "s",
          on_progress = function(l) lines[#lines + 1] = l end })
      end)
      task.sleep(1)
      assert.same(0, sh("kill -9 " .. victim.pid).code)
      local ok, res = deploy:join()
      local elapsed = (task.now() - started) / 1000
      local said = table.concat(lines, "\n")
      io.stderr:write(("[deploy with node3 killed: %s after %.1fs: %s]\n"):format(ok and "converged" or "failed", elapsed,
        ok and table.concat(res.nodes_down or {}, ",") or tostring(res)))
      -- a clear outcome within the deploy's deadline (plus a rollback's own)
      assert.is_true(elapsed < timeout_s * 2, ("took %.0fs"):format(elapsed))
      if ok then
        assert.is_true(res.converged)
        assert.same({ "node3" }, res.nodes_down)
        assert.matches("node node3 is down: its tasks of crash_web were rescheduled on the other nodes", said)
        assert.same(3, #running_nodes("crash_web"))
      else
        assert.matches("node node3 is down", tostring(res))
        assert.matches("%(the stack was rolled back%)", tostring(res))
      end
      -- the node's whole PID namespace died with it: its containers too
      assert.is_nil(fs.read("/proc/" .. victim.pid .. "/stat"))
      local st, code = status(DIR_A)
      assert.same({ 1, false, "down" }, { code, st.nodes[3].up, st.nodes[3].swarm.state })
      -- up again brings the node back into the swarm
      local again = up(DIR_A, { "--nodes", "3" })
      assert.same({ false, false, true }, { again.nodes[1].started, again.nodes[2].started, again.nodes[3].started })
      wait_for("node3 ready again", function() local s = status(DIR_A) return s.ok end)
      docker.stack.rm("crash", { client = mgr })
    end)
  end)

  describe("a second swarm, reached over SSH (sshd inside its node's namespaces)", function()
    leaks.check()
    local B, keydir, target, ssh_options, sshd_log

    local function accepted()
      local n = 0
      for _ in (fs.read(sshd_log) or ""):gmatch("Accepted publickey") do n = n + 1 end
      return n
    end

    setup(function()
      B = up(DIR_B, { "--nodes", "1" })
      assert(B.network.subnet ~= A.network.subnet)
      keydir = DIR_B .. "/ssh"
      fs.remove(keydir, { recursive = true })    -- (a run before this one left its keys)
      fs.mkdir(keydir)
      for _, k in ipairs { "host", "client" } do
        assert(proc.run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keydir .. "/" .. k }).code == 0)
      end
      assert(proc.run({ "cp", keydir .. "/client.pub", keydir .. "/authorized_keys" }).code == 0)
      sshd_log = keydir .. "/sshd.log"
      local node = B.nodes[1]
      require("support.docker_fixtures").write(keydir .. "/sshd_config", table.concat({
        "ListenAddress " .. node.addr, "Port 22", "HostKey " .. keydir .. "/host",
        "AuthorizedKeysFile " .. keydir .. "/authorized_keys", "PidFile /run/sshd-test.pid",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        "AllowStreamLocalForwarding yes", "LogLevel INFO", "" }, "\n"))
      -- inside the node: its network (its address), its mounts (its own
      -- /run/docker.sock), its PID namespace (it dies with the node)
      local r = assert(proc.run({ "nsenter", "--target", tostring(node.pid), "--net", "--mount", "--uts", "--pid",
        "/usr/sbin/sshd", "-f", keydir .. "/sshd_config", "-E", sshd_log }, { timeout = "20s" }))
      assert(r.code == 0, "sshd: " .. r.stderr)
      target = "ssh://root@" .. node.addr
      ssh_options = { "-i", keydir .. "/client", "-o", "StrictHostKeyChecking=no",
                      "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR" }
      local listening = require("slipway.probe").tcp({ host = node.addr, port = 22, within = "10s", interval = "100ms" })
      assert(listening.ok, "sshd does not listen: " .. listening.reason)
    end)

    it("DOCKER_HOST=ssh://: one SSH connection carries every call, from parallel tasks too", function()
      local before = accepted()
      local c = docker.client({ host = target, ssh_options = ssh_options })
      local c2 = docker.client({ host = target, ssh_options = ssh_options })   -- same host: same connection
      local info = c:call("test", "GET", "/info")
      assert.same("node1", info.Name)
      local tasks = {}
      for i = 1, 4 do
        tasks[i] = task.spawn(function()
          for _ = 1, 10 do (i % 2 == 0 and c or c2):call("test", "GET", "/services") end
        end)
      end
      for _, t in ipairs(tasks) do t:join() end
      assert.same(c.conn.socket, c2.conn.socket)
      assert.same(1, require("slipway.docker.ssh").count())
      assert.same(before + 1, accepted())
      c:close()
      assert.same(0, require("slipway.docker.ssh").count())
      -- the next call connects again
      c2:call("test", "GET", "/_ping", { versioned = false })
      assert.same(before + 2, accepted())
      client.close_all()
    end)

    it("a script that never closes its connection still ends, and takes ssh with it", function()
      local script = keydir .. "/ssh_script.lua"
      require("support.docker_fixtures").write(script, ([[
local c = require("slipway.docker").client({ host = %q, ssh_options = { %s } })
for _ = 1, 20 do c:call("script", "GET", "/services") end
print(c:call("script", "GET", "/info").Name)
]]):format(target, ('"' .. table.concat(ssh_options, '", "') .. '"')))
      local before = accepted()
      local started = task.now()
      local r = assert(proc.run({ SLIPWAY, script }, { timeout = "60s" }))
      assert.same({ 0, "node1\n", "" }, { r.code, r.stdout, r.stderr })
      assert.is_true(task.now() - started < 15000)
      assert.same(before + 1, accepted())
      -- no ssh of that run is left (it would hold the node's address)
      for _, name in ipairs(fs.list("/proc") or {}) do
        local cmdline = name:match("^%d+$") and (fs.read("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ") or ""
        assert.falsy(cmdline:match("^ssh .*root@" .. target:match("@(.*)$"):gsub("%p", "%%%0")), cmdline)
      end
    end)

    it("one pipeline deploys to both swarms in parallel (a matrix), the remote one over one SSH connection", function()
      local project = keydir .. "/project"
      fs.mkdir(project)
      require("support.docker_fixtures").write(project .. "/deploy.lua", [[
local envs = {
  a = { host = os.getenv("SW_A_HOST"), registry = os.getenv("SW_A_REGISTRY") },
  b = { host = os.getenv("SW_B_HOST"), registry = os.getenv("SW_B_REGISTRY"),
        ssh_options = { "-i", os.getenv("SW_KEY"), "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR" } },
}
local function engine(name)
  return docker.client({ host = envs[name].host, ssh_options = envs[name].ssh_options })
end
task("build", { matrix = { "a", "b" } }, function(name)
  local tag = envs[name].registry .. "/par-app:" .. name
  docker.build({ context = os.getenv("SW_APPS"), tag = tag, build_args = { VERSION = name }, client = engine(name), quiet = true })
  docker.push(tag, { client = engine(name), quiet = true })
end)
task("deploy", { needs = "build", matrix = { "a", "b" } }, function(name)
  docker.stack.deploy("par", { services = { web = { image = envs[name].registry .. "/par-app:" .. name,
    deploy = { replicas = 2 } } } }, { client = engine(name), timeout = "2m" })
end)
]])
      local before = accepted()
      local r = assert(proc.run({ SLIPWAY, "run", project .. "/deploy.lua" }, { cwd = project, timeout = "300s",
        env = { SW_A_HOST = A.env.DOCKER_HOST, SW_A_REGISTRY = A.env.SLIPWAY_REGISTRY, SW_B_HOST = target,
                SW_B_REGISTRY = B.env.SLIPWAY_REGISTRY, SW_KEY = keydir .. "/client", SW_APPS = APPS } }))
      assert.same(0, r.code, r.stdout .. r.stderr)
      -- the remote swarm was reached by one connection for build, push and deploy
      assert.same(before + 1, accepted())
      -- each swarm runs the stack with its own image
      for name, host in pairs { a = A.env.DOCKER_HOST, b = "unix://" .. B.nodes[1].socket } do
        local c = client.new({ host = host })
        local svc = docker.service.inspect("par_web", { client = c })
        assert.matches("/par%-app:" .. name .. "@sha256:", svc.Spec.TaskTemplate.ContainerSpec.Image)
        docker.stack.rm("par", { client = c })
      end
    end)

    it("the same pipeline run at once against both swarms (unix:// and ssh://): each has its own lock and ledger", function()
      local project = keydir .. "/regions"
      fs.mkdir(project)
      local F = require("support.docker_fixtures")
      -- both runs wait in their deploy until the other one is there: with
      -- one lock for both, the second would have been refused
      F.write(project .. "/deploy.lua", [[
pipeline { name = "regions", ledger = "swarm" }
param.string("version", "a")
param.string("image", "")
task("deploy", function(p)
  fs.write("started-" .. p.version, "")
  local deadline = os.time() + 60
  while not (fs.exists("started-a") and fs.exists("started-b")) do
    assert(os.time() < deadline, "the other run never started")
    sleep(0.1)
  end
  docker.stack.deploy("regions", { services = { web = { image = p.image } } }, { timeout = "2m" })
end)
task("smoke", { needs = "deploy", verifies = true }, function() end)
]])
      -- the runs reach B with plain `ssh`, as a CI runner with its keys would
      fs.mkdir(keydir .. "/bin")
      F.write(keydir .. "/bin/ssh", ("#!/bin/sh\nexec /usr/bin/ssh %s \"$@\"\n"):format(table.concat(ssh_options, " ")))
      assert.same(0, sh("chmod +x " .. keydir .. "/bin/ssh").code)
      local path = keydir .. "/bin:" .. os.getenv("PATH")
      local hosts = { a = A.env.DOCKER_HOST, b = target }
      local images = { a = A.env.SLIPWAY_REGISTRY .. "/par-app:a", b = B.env.SLIPWAY_REGISTRY .. "/par-app:b" }
      local function run(name, args)
        local argv = { SLIPWAY }
        for _, a in ipairs(args) do argv[#argv + 1] = a end
        return assert(proc.run(argv, { cwd = project, timeout = "240s",
          env = { DOCKER_HOST = hosts[name], PATH = path, NO_COLOR = "1", CI = false } }))
      end
      local runs = {}
      for _, name in ipairs { "a", "b" } do
        runs[name] = task.spawn(run, name, { "run", "--reporter", "plain", "-p", "version=" .. name,
          "-p", "image=" .. images[name] })
      end
      for _, name in ipairs { "a", "b" } do
        local r = runs[name]:join()
        assert.same(0, r.code, name .. ": " .. r.stdout .. r.stderr)
        assert.matches("record: release %S+ in the swarm at " .. hosts[name]:gsub("%p", "%%%0"), r.stdout)
      end
      for _, name in ipairs { "a", "b" } do
        local r = run(name, { "history", "--json" })
        assert.same(0, r.code, r.stderr)
        local rows = require("slipway.json").decode(r.stdout)
        assert.same({ 1, name, "success", true }, { #rows, rows[1].version, rows[1].status, rows[1].verified })
        r = run(name, { "lock", "status", "--json" })
        assert.same(0, r.code, r.stderr)
      end
      for name, host in pairs { a = A.env.DOCKER_HOST, b = "unix://" .. B.nodes[1].socket } do
        local c = client.new({ host = host })
        assert.matches("/par%-app:" .. name .. "@sha256:",
          docker.service.inspect("regions_web", { client = c }).Spec.TaskTemplate.ContainerSpec.Image)
        docker.stack.rm("regions", { client = c })
      end
    end)
  end)

  describe("down", function()
    leaks.check()

    it("removes everything up made: daemons, namespaces, bridge, veths, mounts", function()
      for _, d in ipairs { DIR_B, DIR_A } do
        assert.is_true(#leftovers(d) > 0)
        local r = sandbox { "down", "--dir", d, "--force" }
        assert.same(0, r.code, r.stderr)
        assert.same({}, leftovers(d))
        local _, code = status(d)
        assert.same(1, code)
      end
      -- docker_gwbridge and vx-* were made (and went) in the nodes' namespaces
      assert.same(host_links, N.engine_links())
    end)

    it("removes what a crashed up left behind", function()
      local dir = "/tmp/slipway-nodes-spec-crash"
      local tag = hash.sha256(dir):sub(1, 6)
      local p = assert(proc.spawn({ SLIPWAY, "sandbox", "up", "--dir", dir, "--nodes", "2" }, { stderr = "null", stdout = "null" }))
      -- kill it once it has made namespaces and started a node
      wait_for("up to start a node", function()
        return fs.exists("/run/netns/slipway-" .. tag .. "-n2") and fs.exists(dir .. "/nodes/node1/dockerd.log")
      end, 60)
      p:kill("SIGKILL")
      p:wait()
      assert.is_true(#leftovers(dir) > 0)
      local r = sandbox { "down", "--dir", dir, "--force" }
      assert.same(0, r.code, r.stderr)
      assert.same({}, leftovers(dir))
      fs.remove(dir, { recursive = true })
    end)
  end)
end)
