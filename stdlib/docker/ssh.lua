-- slipway.docker.ssh: one SSH connection per remote engine for the whole
-- process, shared by every client of that host.
--
-- For DOCKER_HOST=ssh://[user@]host[:port] OpenSSH forwards a private local
-- socket to the remote engine's (`ssh -N -L local.sock:/var/run/docker.sock
-- host`); every HTTP connection to the local socket is a channel of that
-- one SSH connection, so a pipeline making thousands of API calls logs in
-- once (the Docker CLI starts `ssh host docker system dial-stdio` per
-- command). The connection is keyed by target, port, ssh options and
-- remote socket; clients with the same key share it.
--
-- Lifetime: ssh is started on first use by a task that belongs to no
-- pipeline task (so the unit that happened to connect first does not take
-- it down when it ends), under `setpriv --pdeathsig KILL` where util-linux
-- has it (so it dies with slipway, even a killed one). It is closed by
-- client:close() (that host's connection), M.close_all(), or by itself once
-- nothing but these connections is left running in the process: at the end
-- of a script or a pipeline run, without anyone calling close.
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local task = require("slipway.task")

local M = {}

local pool = {}          -- key -> connection
local open_count = 0
local monitor            -- the task that closes the pool once idle

M.CONNECT_TIMEOUT_MS = 15000
M.IDLE_POLL = 0.1        -- seconds between looks at what else still runs

local function key_of(h)
  return table.concat({ h.target, h.port or "", h.remote_socket or "",
                        table.concat(h.ssh_options or {}, "\0") }, "\1")
end

local function which(name)
  for d in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local st = fs.stat(d .. "/" .. name)
    if st and st.type == "file" then return d .. "/" .. name end
  end
  return nil
end

local function argv_for(h, sock)
  local args = {}
  local setpriv = which("setpriv")
  if setpriv then
    for _, a in ipairs { setpriv, "--pdeathsig", "KILL", "--" } do args[#args + 1] = a end
  end
  for _, a in ipairs { "ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
      "-o", "StreamLocalBindUnlink=yes", "-o", "ConnectTimeout=10",
      "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
      -- this process is the one connection: no master of the user's
      -- ssh_config in between
      "-o", "ControlMaster=no", "-o", "ControlPath=none",
      "-L", sock .. ":" .. (h.remote_socket or "/var/run/docker.sock") } do
    args[#args + 1] = a
  end
  for _, o in ipairs(h.ssh_options or {}) do args[#args + 1] = o end
  if h.port then args[#args + 1] = "-p"; args[#args + 1] = h.port end
  args[#args + 1] = h.target
  return args
end

local function live(conn)
  local st = conn.keeper and conn.keeper:status()
  return st ~= nil and st ~= "done" and st ~= "failed" and st ~= "cancelled"
end

-- Stop one connection: kill ssh, reap it, remove its socket directory.
local function shut(conn)
  if pool[conn.key] == conn then
    pool[conn.key] = nil
    open_count = open_count - 1
  end
  if conn.proc then pcall(conn.proc.kill, conn.proc, "SIGTERM") end
  if conn.keeper then
    if task.current() then pcall(conn.keeper.wait, conn.keeper) end
    conn.keeper = nil
  end
  os.remove(conn.socket)
  if conn.dir then fs.remove(conn.dir, { recursive = true }) end
  conn.proc = nil
end

-- Close every connection (and the idle monitor).
function M.close_all()
  local list = {}
  for _, conn in pairs(pool) do
    if conn then list[#list + 1] = conn end     -- false: being connected
  end
  for _, conn in ipairs(list) do shut(conn) end
  if monitor and monitor ~= task.current() then
    monitor:cancel()
    if task.current() then pcall(monitor.wait, monitor) end
  end
  monitor = nil
end

-- Close the connection of host h, if one is open.
function M.close(h)
  local conn = pool[key_of(h)]
  if conn then shut(conn) end
  if open_count == 0 and monitor then M.close_all() end
end

function M.count() return open_count end

-- Once the only tasks left are the connections' own (every keeper and
-- this monitor), nobody can use them any more: close them so that the
-- process can end.
local function watch_idle()
  while open_count > 0 do
    task.sleep(M.IDLE_POLL)
    if task.stats().tasks <= open_count + 1 then break end
  end
  monitor = task.current()       -- close_all must not cancel the caller
  M.close_all()
end

local function connect(h, what, raise)
  local dir, derr = fs.tempdir("slipway-docker-ssh-")
  if not dir then raise(("%s: ssh %s: %s"):format(what, h.target, derr)) end
  local conn = { key = key_of(h), dir = dir, socket = dir .. "/docker.sock", stderr = {} }
  local p, err = proc.spawn(argv_for(h, conn.socket), { stdout = "null",
    stderr = function(line)
      local tail = conn.stderr
      tail[#tail + 1] = line
      if #tail > 5 then table.remove(tail, 1) end
    end })
  if not p then
    fs.remove(dir, { recursive = true })
    raise(("%s: ssh %s: %s"):format(what, h.target, err))
  end
  conn.proc = p
  conn.keeper = task.spawn_with(nil, function() return p:wait() end)
  local deadline = task.now() + M.CONNECT_TIMEOUT_MS
  while true do
    -- a socket cannot be opened as a file: ENXIO says it is there
    local f, _, errno = io.open(conn.socket, "r")
    if f then f:close() end
    if f or errno == 6 then break end
    if not live(conn) or task.now() > deadline then
      local detail = table.concat(conn.stderr, "; ")
      shut(conn)
      raise(("%s: ssh %s: cannot forward the engine socket%s"):format(what, h.target,
        detail ~= "" and (": " .. detail) or (task.now() > deadline and " (timed out)" or "")))
    end
    task.sleep(0.02)
  end
  pool[conn.key] = conn
  open_count = open_count + 1
  if not monitor then monitor = task.spawn_with(nil, watch_idle) end
  return conn
end

-- The local socket that reaches host h's engine, connecting on first use
-- (and again when ssh has exited since). raise(message) reports failures.
function M.socket(h, what, raise)
  local key = key_of(h)
  -- another task may be connecting to the same host right now
  while pool[key] == false do task.sleep(0.02) end
  local conn = pool[key]
  if conn and live(conn) then return conn.socket end
  if conn then shut(conn) end
  pool[key] = false
  local ok, res = pcall(connect, h, what, raise)
  if pool[key] == false then pool[key] = nil end
  if not ok then error(res, 0) end
  return res.socket
end

return M
