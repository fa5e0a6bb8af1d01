-- slipway.sandbox.host: what `slipway sandbox` needs from the machine:
-- failures the user can act on, processes (started detached, looked at in
-- /proc, stopped by pid), helper programs on PATH, root, and the per-
-- directory lock.
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local task = require("slipway.task")

local M = {}

---------------------------------------------------------------- errors

-- A failure the user can act on: raised as a value, printed without a
-- traceback, exit status 1.
M.Failure = {}

function M.fail(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, M.Failure), 0)
end
local fail = M.fail

function M.is_failure(v)
  return getmetatable(v) == M.Failure
end

-- Progress on stderr ("sandbox: ..."), silenced by --json.
M.quiet = false
function M.say(fmt, ...)
  if not M.quiet then io.stderr:write("sandbox: ", fmt:format(...), "\n") end
end

---------------------------------------------------------------- processes

-- /proc/PID/stat -> state, ppid; nil when there is no such process.
function M.proc_stat(pid)
  local text = fs.read("/proc/" .. tostring(pid) .. "/stat")
  if not text then return nil end
  -- the command name is in parentheses and may hold spaces: split after it
  local state, ppid = text:match("%) (%S) (%d+)")
  return state, tonumber(ppid)
end

-- A process that exists and is not a zombie (the daemons are re-parented
-- to pid 1, which does not reap them in every container).
function M.alive(pid)
  if not pid then return false end
  local state = M.proc_stat(pid)
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- This process's pid and its parent's.
function M.self_pid()
  local text = fs.read("/proc/self/stat")
  return tonumber(text:match("^(%d+)")), tonumber(text:match("%) %S (%d+)"))
end

function M.read_pid(path)
  local text = fs.read(path)
  return text and tonumber(text:match("^%s*(%d+)")) or nil
end

-- The command line of a process, words separated by spaces ("" if gone).
function M.cmdline(pid)
  return ((fs.read("/proc/" .. tostring(pid) .. "/cmdline") or ""):gsub("%z", " "))
end

-- Run a short helper program; result table or a failure naming it.
function M.run(argv, opts)
  opts = opts or {}
  opts.timeout = opts.timeout or "30s"
  local r, err = proc.run(argv, opts)
  if not r then fail("%s: %s", argv[1], err) end
  return r
end
local run = M.run

-- Run argv and fail with its stderr unless it exits 0.
function M.must(argv, opts, what)
  local r = run(argv, opts)
  if r.code ~= 0 then
    fail("%s: %s", what or table.concat(argv, " "), ((r.stderr or "") .. (r.stdout or "")):gsub("%s+$", ""))
  end
  return r
end

function M.signal(pid, sig)
  run({ "kill", "-" .. sig, tostring(pid) }, { timeout = "5s" })
end

-- TERM (or `sig`), wait up to `grace` seconds, then KILL. Returns how it
-- ended.
function M.stop_pid(pid, grace, sig)
  if not M.alive(pid) then return "not running" end
  M.signal(pid, sig or "TERM")
  local deadline = task.now() + grace * 1000
  while M.alive(pid) and task.now() < deadline do task.sleep(0.1) end
  if M.alive(pid) then
    M.signal(pid, "KILL")
    for _ = 1, 50 do
      if not M.alive(pid) then break end
      task.sleep(0.1)
    end
    return "killed"
  end
  return "stopped"
end

-- A program on PATH (the PATH children are started with), or nil.
function M.which(name)
  local path = os.getenv("PATH")
  if path == nil or path == "" then path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" end
  for d in path:gmatch("[^:]+") do
    local st = fs.stat(d .. "/" .. name)
    if st and st.type == "file" and st.mode & 73 ~= 0 then return d .. "/" .. name end
  end
  return nil
end

-- The daemons this command started (so a failed up can stop them again).
M.spawned = {}

-- Start argv detached: its own session, stdin /dev/null, output to log,
-- not a child we wait for (the daemon outlives this command). Returns pid.
function M.start_detached(argv, log)
  local cmd = { "sh", "-c", 'setsid "$@" <"$SANDBOX_NULL" >"$SANDBOX_LOG" 2>&1 & echo $!', "sh" }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r = run(cmd, { env = { SANDBOX_LOG = log, SANDBOX_NULL = "/dev/null" }, timeout = "10s" })
  local pid = tonumber((r.stdout or ""):match("(%d+)"))
  if r.code ~= 0 or not pid then
    fail("cannot start %s: %s", argv[1], (r.stderr or ""):gsub("%s+$", ""))
  end
  M.spawned[#M.spawned + 1] = pid
  return pid
end

function M.log_tail(path, n)
  local text = fs.read(path) or ""
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n    ", math.max(1, #lines - (n or 5) + 1))
end

-- Every live process: { pid, ppid, argv0 base name, cmdline }.
function M.processes()
  local list = {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = tonumber(name)
    if pid then
      local raw = fs.read("/proc/" .. name .. "/cmdline")
      if raw and raw ~= "" and M.alive(pid) then
        local argv0 = raw:match("^([^%z]*)") or ""
        local _, ppid = M.proc_stat(pid)
        list[#list + 1] = { pid = pid, ppid = ppid, base = argv0:match("([^/]+)$") or argv0,
                            cmdline = raw:gsub("%z", " ") }
      end
    end
  end
  return list
end

-- Mount points at or under dir, deepest first.
function M.mounts_under(dir)
  local list = {}
  for line in (fs.read("/proc/mounts") or ""):gmatch("[^\n]+") do
    local target = line:match("^%S+ (%S+)")
    if target then
      target = target:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
      if target:sub(1, #dir + 1) == dir .. "/" then list[#list + 1] = target end
    end
  end
  table.sort(list, function(a, b) return a > b end)
  return list
end

function M.check_root(why)
  local status = fs.read("/proc/self/status") or ""
  local euid = tonumber(status:match("\nUid:%s+%d+%s+(%d+)"))
  if euid ~= 0 then fail("needs root (%s): run it with sudo", why or "dockerd runs as root") end
end

---------------------------------------------------------------- users

-- The users of a sandbox (users/PID files) whose process is alive, sorted;
-- stale entries are removed, unless opts.read_only (status changes nothing).
function M.live_users(users_dir, opts)
  local users = {}
  for _, name in ipairs(fs.list(users_dir) or {}) do
    local pid = tonumber(name)
    if pid and M.alive(pid) then users[#users + 1] = pid
    elseif not (opts and opts.read_only) then fs.remove(users_dir .. "/" .. name) end
  end
  table.sort(users)
  return users
end

---------------------------------------------------------------- the lock

-- Hold a flock(1) lock on path (exclusive) until release() is called:
-- flock holds it in a helper process, which also exits when this process
-- dies, so a crashed command never leaves it locked. opts: wait (seconds,
-- default 120), busy (the failure when the wait ran out), on_wait(seconds
-- waited so far), called every 5 s of waiting.
function M.flock(path, opts)
  opts = opts or {}
  local wait = opts.wait or 120
  local locked = false
  local me = M.self_pid()
  local p, err = proc.spawn({ "flock", "-x", "-w", tostring(wait), "-E", "75", path, "sh", "-c",
      'echo locked; while kill -0 "$1" 2>/dev/null; do sleep 0.5; done', "sh", tostring(me) },
    { stdout = function(line) if line == "locked" then locked = true end end })
  if not p then fail("flock: %s (util-linux provides it)", err) end
  local waiter = task.spawn(function() return p:wait() end)
  local started, told = task.now(), 0
  while not locked do
    local st = waiter:status()
    if st == "done" or st == "failed" then
      local ok, r = pcall(waiter.join, waiter)
      if ok and r.code == 75 then fail("%s", opts.busy or ("%s is locked (waited %ds)"):format(path, wait)) end
      fail("cannot lock %s: %s", path, ok and (r.stderr or ""):gsub("%s+$", "") or tostring(r))
    end
    local waited = (task.now() - started) // 1000
    if opts.on_wait and waited >= told + 5 then
      told = waited
      opts.on_wait(waited)
    end
    task.sleep(0.02)
  end
  return function()
    pcall(p.kill, p)
    pcall(waiter.join, waiter)
  end
end

-- The lock of a sandbox directory: one up/down at a time.
function M.lock(dir)
  return M.flock(dir .. "/lock", { busy = ("another `slipway sandbox` holds %s/lock (waited 120s)"):format(dir) })
end

-- Run fn() holding DIR/lock; the lock is released however fn ends.
function M.locked(dir, fn)
  local release = M.lock(dir)
  local result = table.pack(pcall(fn))
  release()
  if not result[1] then error(result[2], 0) end
  return table.unpack(result, 2, result.n)
end

return M
