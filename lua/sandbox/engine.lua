-- slipway.sandbox.engine: one private dockerd and its one-node swarm (the
-- default sandbox), and what every sandbox asks an engine: is it up, a
-- client for it, its /info.
--
-- dockerd runs with --storage-driver vfs --iptables=false --ip6tables=false
-- --bridge=none, which works in containers and on hosts without overlayfs
-- or netfilter; detached (own session, output to its log file) so that it
-- outlives the command; stopped by pid.
local fs = require("slipway.fs")
local http = require("slipway.http")
local json = require("slipway.json")
local task = require("slipway.task")
local host = require("slipway.sandbox.host")

local M = {}
local fail, say, run = host.fail, host.say, host.run

function M.ping(sock)
  local r = http.request { url = "http://docker/_ping", unix_socket = sock, timeout = "2s",
                           connect_timeout = "2s" }
  return r ~= nil and r.status == 200
end

-- A small client of the engine's API on a unix socket (unversioned paths:
-- the engine's own API version). The sandbox is part of the command line
-- and the runtime core, below the stdlib's slipway.docker, so it speaks
-- HTTP itself. c:call(what, method, path, { query, body, timeout }) ->
-- the decoded answer; raises "<what>: <engine message>".
local Engine = {}
Engine.__index = Engine

function M.client(sock, timeout)
  return setmetatable({ sock = sock, timeout = timeout or "30s" }, Engine)
end

function Engine:call(what, method, path, opts)
  opts = opts or {}
  local query = {}
  for k, v in pairs(opts.query or {}) do query[#query + 1] = k .. "=" .. tostring(v) end
  table.sort(query)
  local req = { url = "http://docker" .. path .. (#query > 0 and ("?" .. table.concat(query, "&")) or ""),
                method = method, unix_socket = self.sock, timeout = opts.timeout or self.timeout,
                connect_timeout = "5s", headers = {} }
  if opts.body ~= nil then
    req.body = json.encode(opts.body)
    req.headers["Content-Type"] = "application/json"
  elseif method == "POST" then
    req.body = ""
  end
  local res, err = http.request(req)
  if not res then error(what .. ": " .. tostring(err), 0) end
  local ok, doc = pcall(json.decode, res.body or "")
  if not ok then doc = nil end
  if res.status >= 400 then
    local msg = type(doc) == "table" and doc.message or (res.body or ""):gsub("%s+$", "")
    error(what .. ": " .. (msg ~= "" and msg or ("HTTP " .. res.status)), 0)
  end
  if doc == nil and res.body and res.body ~= "" then return res.body end
  return doc
end

-- GET /info, or nil and why.
function M.info(c)
  local ok, info = pcall(c.call, c, "sandbox", "GET", "/info")
  if not ok then return nil, tostring(info) end
  return info
end

-- The dockerd program, or a failure saying which package to install.
function M.program()
  local dockerd = host.which("dockerd")
  if not dockerd then fail("dockerd not found: install docker.io (make deps, or apt-get install docker.io)") end
  return dockerd
end

-- Wait until the engine on sock answers, while pid lives; fail with the
-- tail of its log otherwise.
function M.wait_up(sock, pid, log, seconds)
  local deadline = task.now() + seconds * 1000
  while not M.ping(sock) do
    if not host.alive(pid) then
      fail("dockerd exited:\n    %s\n  (the whole log: %s)", host.log_tail(log), log)
    end
    if task.now() > deadline then
      fail("dockerd did not answer on %s within %ds (see %s)", sock, seconds, log)
    end
    task.sleep(0.1)
  end
end

---------------------------------------------------------------- TLS

-- A CA, a server certificate for 127.0.0.1 and a client certificate, for
-- the engine's TLS listener (what DOCKER_TLS_VERIFY clients expect).
function M.ensure_certs(p)
  if fs.exists(p.tls .. "/key.pem") and fs.exists(p.tls .. "/server-key.pem") then return end
  if not host.which("openssl") then fail("--tls-port needs openssl: install openssl (make deps)") end
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
    for _, x in ipairs(extra) do
      if x == "@EC" then
        for _, e in ipairs(ec) do a[#a + 1] = e end
      else
        a[#a + 1] = x
      end
    end
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

---------------------------------------------------------------- the engine

-- Keep the engine of p.dir running, or start it. Returns pid, started.
function M.ensure(p, o, dockerd)
  local pid = host.read_pid(p.dockerd_pid)
  if host.alive(pid) and M.ping(p.sock) then return pid, false end
  if host.alive(pid) then
    say("dockerd %d does not answer; restarting it", pid)
    host.stop_pid(pid, 5)
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
  pid = host.start_detached(argv, p.dir .. "/dockerd.log")
  M.wait_up(p.sock, pid, p.dir .. "/dockerd.log", 60)
  return host.read_pid(p.dockerd_pid) or pid, true
end

-- A one-node swarm on 127.0.0.1:swarm_port. Returns node id, initialised.
function M.ensure_swarm(p, o)
  local c = M.client(p.sock)
  local info, err = M.info(c)
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

-- Processes of a sandbox that outlived its dockerd (its containerd and
-- shims after a KILL), found by their command lines naming the directory.
local DAEMONS = { dockerd = true, containerd = true, ["docker-registry"] = true, runc = true,
                  ["docker-proxy"] = true }

function M.leftovers(dir)
  local found = {}
  for _, p in ipairs(host.processes()) do
    if (DAEMONS[p.base] or p.base:match("^containerd%-shim")) and p.cmdline:find(dir .. "/", 1, true) then
      found[#found + 1] = p.pid
    end
  end
  return found
end

return M
