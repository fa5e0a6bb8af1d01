local proc = require("slipway.proc")
local task = require("slipway.task")
local leaks = require("support.leaks")
local support = require("support.proc_helpers")

-- The result without the fields that differ per run.
local function core(r)
  local c = {}
  for k, v in pairs(r) do
    if k ~= "pid" and k ~= "duration_ms" then c[k] = v end
  end
  return c
end

describe("proc", function()
  leaks.check()

  describe("run", function()
    it("runs an argv list and captures both streams", function()
      local r = proc.run({ "sh", "-c", "printf out; printf err >&2; exit 3" })
      assert.same({ code = 3, stdout = "out", stderr = "err" }, core(r))
      assert.is_true(math.type(r.pid) == "integer" and r.pid > 0)
      assert.is_true(type(r.duration_ms) == "number" and r.duration_ms >= 0)
    end)

    it("runs a string through /bin/sh -c", function()
      local r = proc.run("echo $((6 * 7)) | tr 4 x")
      assert.same({ code = 0, stdout = "x2\n", stderr = "" }, core(r))
    end)

    it("passes arguments without a shell", function()
      local r = proc.run({ "printf", "[%s]", "a b", "$HOME", "*", 42 })
      assert.same("[a b][$HOME][*][42]", r.stdout)
    end)

    it("measures the duration", function()
      local r = proc.run({ "sleep", "0.05" })
      assert.is_true(r.duration_ms >= 50 and r.duration_ms < 2000, tostring(r.duration_ms))
    end)

    it("returns an error triple when the program does not exist", function()
      assert.same({ nil, "ENOENT: no such file or directory: nosuchcmd", "ENOENT" },
        { proc.run({ "nosuchcmd" }) })
    end)

    it("returns EACCES for a file that is not executable", function()
      local path = "tests/support/proc_not_executable"
      assert.same({ nil, "EACCES: permission denied: " .. path, "EACCES" }, { proc.run({ path }) })
    end)

    it("names a missing cwd", function()
      assert.same({ nil, "ENOENT: no such file or directory: cwd /nonexistent/dir", "ENOENT" },
        { proc.run("pwd", { cwd = "/nonexistent/dir" }) })
    end)

    it("runs in cwd", function()
      assert.same("/usr/share\n", proc.run({ "pwd" }, { cwd = "/usr/share" }).stdout)
    end)

    it("passes no fds beyond 0-2 to the child", function()
      local f = assert(io.open("tests/proc_spec.lua"))   -- not close-on-exec
      local r = proc.run({ "ls", "/proc/self/fd" })
      f:close()
      assert.same("0\n1\n2\n3\n", r.stdout)            -- 3 is ls's own directory
    end)

    it("reports a signal and the shell's 128+N code", function()
      local r = proc.run({ "sh", "-c", "kill -9 $$" })
      assert.same({ code = 137, signal = "SIGKILL", stdout = "", stderr = "" }, core(r))
    end)
  end)

  describe("env", function()
    it("adds and replaces variables and keeps the rest", function()
      local r = proc.run({ "sh", "-c", 'printf "%s|%s|%s" "$SW_NEW" "$HOME" "${PATH:+path}"' },
        { env = { SW_NEW = "new", HOME = "/replaced" } })
      assert.same("new|/replaced|path", r.stdout)
    end)

    it("unsets a variable given false and turns numbers into strings", function()
      local r = proc.run({ "sh", "-c", 'printf "%s|%s" "${HOME-unset}" "$N"' },
        { env = { HOME = false, N = 7 } })
      assert.same("unset|7", r.stdout)
    end)

    it("starts from an empty environment with env_clear", function()
      local r = proc.run({ "/usr/bin/env" }, { env_clear = true, env = { ONLY = "me" } })
      assert.same("ONLY=me\n", r.stdout)
      assert.same("", proc.run({ "/usr/bin/env" }, { env_clear = true }).stdout)
    end)

    it("rejects bad env entries", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, "true", { env = { X = {} } })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: env entries must be name = string (or false to unset), got string = table"):format(line) }, { ok, err })
    end)
  end)

  describe("stdin", function()
    it("feeds the data and closes the pipe", function()
      assert.same("hello\nworld", proc.run({ "cat" }, { stdin = "hello\nworld" }).stdout)
    end)

    it("gives an empty stdin for an empty string and /dev/null by default", function()
      assert.same("0\n", proc.run("wc -c", { stdin = "" }).stdout)
      assert.same("0\n", proc.run("wc -c").stdout)
    end)

    it("moves a megabyte both ways", function()
      local data = string.rep("0123456789abcdef", 65536)
      local r = proc.run({ "cat" }, { stdin = data })
      assert.same(#data, #r.stdout)
      assert.is_true(r.stdout == data)
    end)

    it("survives a child that does not read its stdin", function()
      local r = proc.run({ "true" }, { stdin = string.rep("x", 4 * 1024 * 1024) })
      assert.same(0, r.code)
    end)
  end)

  describe("stdout/stderr modes", function()
    it("discards with null", function()
      local r = proc.run("echo out; echo err >&2", { stdout = "null", stderr = "null" })
      assert.same({ code = 0 }, core(r))
    end)

    it("inherits the parent's streams", function()
      -- a nested slipway whose child inherits the stdout we capture here
      local code = 'require("slipway.proc").run({"echo","inherited"},{stdout="inherit"})'
      local r = proc.run({ os.getenv("SLIPWAY"), "-e", code })
      assert.same({ code = 0, stdout = "inherited\n", stderr = "" }, core(r))
    end)

    it("rejects an unknown mode", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, "true", { stdout = "pipe" })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: option 'stdout' must be \"capture\", \"inherit\", \"null\" or a function, got pipe"):format(line) }, { ok, err })
    end)
  end)

  describe("line callbacks", function()
    it("calls the function per line, the unterminated last one too", function()
      local got = {}
      local r = proc.run("printf 'a\\nb\\n\\nlast'", {
        stdout = function(line, stream) got[#got + 1] = stream .. ":" .. line end,
      })
      assert.same({ "stdout:a", "stdout:b", "stdout:", "stdout:last" }, got)
      assert.same({ code = 0, stderr = "" }, core(r))
    end)

    it("streams both streams while the process runs", function()
      local got, t0 = {}, task.now()
      local function collect(line, stream) got[#got + 1] = { stream, line, task.now() - t0 } end
      local r = proc.run("echo one; sleep 0.2; echo two >&2", { stdout = collect, stderr = collect })
      assert.same({ code = 0 }, core(r))
      assert.same({ "stdout", "one" }, { got[1][1], got[1][2] })
      assert.same({ "stderr", "two" }, { got[2][1], got[2][2] })
      assert.is_true(got[1][3] < 150, "first line came after " .. got[1][3] .. " ms")
    end)

    it("lets the callback await", function()
      local got = {}
      proc.run("seq 1 5", { stdout = function(line)
        task.sleep("5ms")
        got[#got + 1] = line
      end })
      assert.same({ "1", "2", "3", "4", "5" }, got)
    end)

    it("delivers many lines in order with a slow consumer", function()
      local n, last, order_ok = 0, nil, true
      proc.run("seq 1 200000", { stdout = function(line)
        n = n + 1
        if tonumber(line) ~= n then order_ok = false end
        last = line
        if n % 50000 == 0 then task.sleep("1ms") end
      end })
      assert.same({ 200000, "200000", true }, { n, last, order_ok })
    end)

    it("kills the process when the callback raises, and re-raises", function()
      local pid
      local ok, err = pcall(proc.run, "echo $$; sleep 100", { stdout = function(line)
        pid = tonumber(line)
        error("stop here")
      end })
      assert.is_false(ok)
      assert.matches("tests/proc_spec.lua:%d+: stop here$", err)
      assert.is_true(support.gone(pid))
      support.wait_for(function() return #proc.live() == 0 end)
    end)
  end)

  describe("timeout", function()
    it("stops the process with SIGTERM and code 124", function()
      local r = proc.run({ "sleep", "10" }, { timeout = "100ms" })
      assert.same({ code = 124, signal = "SIGTERM", timed_out = true, stdout = "", stderr = "" }, core(r))
      assert.is_true(r.duration_ms >= 100 and r.duration_ms < 2000)
    end)

    it("uses SIGKILL after kill_grace when SIGTERM is ignored", function()
      local r = proc.run("trap '' TERM; echo ready; while :; do sleep 0.05; done",
        { timeout = "100ms", kill_grace = "100ms" })
      assert.same({ code = 124, signal = "SIGKILL", timed_out = true, stdout = "ready\n", stderr = "" }, core(r))
      assert.is_true(r.duration_ms >= 200 and r.duration_ms < 2000)
    end)

    it("covers grandchildren that hold the output open", function()
      local r = proc.run("sleep 10 & echo started", { timeout = "100ms" })
      assert.same({ code = 124, stdout = "started\n", stderr = "", timed_out = true }, core(r))
    end)

    it("leaves a fast process alone", function()
      assert.same({ code = 0, stdout = "ok\n", stderr = "" }, core(proc.run("echo ok", { timeout = "10s" })))
    end)

    it("rejects a bad duration", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, "true", { timeout = "soon" })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: option 'timeout': bad duration 'soon' (expected e.g. 250ms, 5s, 1h30m)"):format(line) }, { ok, err })
    end)
  end)

  describe("max_output", function()
    local function too_large(stream, size, what)
      return { nil, ("EOUTPUTTOOLARGE: %s passed max_output (%s), the process group was killed: %s"):format(stream, size, what),
               "EOUTPUTTOOLARGE" }
    end

    it("keeps output up to the limit", function()
      local r = proc.run({ "head", "-c", "1000", "/dev/zero" }, { max_output = 1000 })
      assert.same({ 0, 1000 }, { r.code, #r.stdout })
    end)

    it("stops a child that writes more, killing its whole group at once", function()
      local pidfile = os.tmpname()
      local t0 = task.now()
      assert.same(too_large("stdout", "64 KiB", "sleep 100 & echo $! > " .. pidfile .. "; yes"),
        { proc.run("sleep 100 & echo $! > " .. pidfile .. "; yes", { max_output = 65536 }) })
      assert.is_true(task.now() - t0 < 5000)
      local f = assert(io.open(pidfile))
      local bg = f:read("n")
      f:close()
      os.remove(pidfile)
      assert.is_true(support.gone(bg))   -- the grandchild too
      assert.same({}, proc.live())
    end)

    it("holds each stream to 64 MiB by default", function()
      assert.same(too_large("stderr", "64 MiB", "head -c 67108865 /dev/zero >&2"),
        { proc.run("head -c 67108865 /dev/zero >&2") })
    end)

    it("counts the bytes handed to a line function, an endless line too", function()
      local lines = 0
      assert.same(too_large("stdout", "100000 bytes", "yes"),
        { proc.run({ "yes" }, { max_output = 100000, stdout = function() lines = lines + 1 end }) })
      assert.is_true(lines > 1000 and lines <= 50000, "lines " .. lines)
      lines = 0
      assert.same(too_large("stdout", "1 MiB", "cat"),
        { proc.run({ "cat", "/dev/zero" }, { max_output = 1 << 20, stdout = function() lines = lines + 1 end }) })
      assert.same(0, lines)
    end)

    it("gives the error to every wait() of a spawned process", function()
      local p = proc.spawn({ "yes" }, { max_output = 10 })
      assert.same(too_large("stdout", "10 bytes", "yes"), { p:wait() })
      assert.same(too_large("stdout", "10 bytes", "yes"), { p:wait() })
    end)

    it("takes a whole number of bytes", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, "true", { max_output = -1 })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: option 'max_output' must be a size in bytes (a whole number >= 0), got -1"):format(line) }, { ok, err })
      assert.has_error(function() proc.run("true", { max_output = 1.5 }) end)
      assert.has_error(function() proc.run("true", { max_output = "1M" }) end)
      assert.same(0, proc.run("true", { max_output = 1e6 }).code)
    end)
  end)

  describe("cancel", function()
    it("kills the whole process group, even children that ignore SIGTERM", function()
      local pids
      local t = task.spawn(proc.run, "trap '' TERM; sleep 100 & echo $$ $!; sleep 100",
        { stdout = function(line) pids = line end })
      support.wait_for(function() return pids end)
      local shell, bg = pids:match("^(%d+) (%d+)$")
      assert.is_false(support.gone(tonumber(shell), 0))
      assert.is_false(support.gone(tonumber(bg), 0))
      t:cancel()
      assert.is_true(t:wait())
      assert.same("cancelled", t:status())
      assert.is_true(support.gone(tonumber(shell)))
      assert.is_true(support.gone(tonumber(bg)))
      -- kill -0 fails on both once the orphaned sleep's zombie is reaped by init
      support.wait_for(function()
        return proc.run({ "kill", "-0", shell, bg }, { stderr = "null" }).code == 1
      end)
      assert.same({}, proc.live())
    end)

    it("kills the process when the task is cancelled inside a callback", function()
      local pid
      local t = task.spawn(proc.run, "echo $$; sleep 100", { stdout = function(line)
        pid = tonumber(line)
        task.sleep("100s")
      end })
      support.wait_for(function() return pid end)
      t:cancel()
      t:wait()
      assert.same("cancelled", t:status())
      assert.is_true(support.gone(pid))
      support.wait_for(function() return #proc.live() == 0 end)
    end)
  end)

  describe("cancel_signal", function()
    -- A shell that writes which signal reached it into `file`, then exits
    -- after `linger` seconds (or never, when it ignores the signal).
    local function trapping(file, linger)
      return ("trap 'echo INT >> %s; sleep %s; exit 3' INT; trap 'echo TERM >> %s; exit 4' TERM; "
        .. "echo $$; while :; do sleep 0.02; done"):format(file, linger, file)
    end

    local function tmpfile()
      local dir = assert(require("slipway.fs").tempdir("slipway-proc-"))
      return dir .. "/signals", dir
    end

    it("sends it to a cancelled run's group and lets the child finish, the task unwinding at once", function()
      local file, dir = tmpfile()
      local pid
      local t = task.spawn(proc.run, trapping(file, "0.2"), { cancel_signal = "SIGINT", kill_grace = "5s",
        stdout = function(line) pid = tonumber(line) end })
      support.wait_for(function() return pid end)
      local t0 = task.now()
      t:cancel()
      t:wait()
      assert.same("cancelled", t:status())
      assert.is_true(task.now() - t0 < 150)              -- did not wait for the child
      assert.same({ { pid = pid, pgid = pid } }, proc.live())
      assert.is_true(support.gone(pid, 3000))
      support.wait_for(function() return #proc.live() == 0 end)
      assert.same("INT\n", require("slipway.fs").read(file))
      require("slipway.fs").remove(dir, { recursive = true })
    end)

    it("SIGKILLs the group when the child outlives kill_grace", function()
      local pid
      local t = task.spawn(proc.run, "trap '' INT; echo $$; while :; do sleep 0.02; done",
        { cancel_signal = "INT", kill_grace = "150ms", stdout = function(line) pid = tonumber(line) end })
      support.wait_for(function() return pid end)
      local t0 = task.now()
      t:cancel()
      t:wait()
      assert.is_false(support.gone(pid, 50))
      assert.is_true(support.gone(pid, 3000))
      assert.is_true(task.now() - t0 >= 150)
      support.wait_for(function() return #proc.live() == 0 end)
    end)

    it("drains a chatty child's output while it winds down", function()
      local pid
      local t = task.spawn(proc.run, "trap 'seq 1 200000; exit 0' INT; echo $$; while :; do sleep 0.02; done",
        { cancel_signal = "SIGINT", kill_grace = "5s", stdout = function(line) pid = pid or tonumber(line) end })
      support.wait_for(function() return pid end)
      t:cancel()
      t:wait()
      assert.is_true(support.gone(pid, 3000))
      support.wait_for(function() return #proc.live() == 0 end)
    end)

    it("is what a timeout sends first", function()
      local file, dir = tmpfile()
      local r = proc.run(trapping(file, "0"), { timeout = "100ms", cancel_signal = "SIGINT" })
      assert.same({ code = 124, timed_out = true, stderr = "" }, { code = r.code, timed_out = r.timed_out, stderr = r.stderr })
      assert.same("INT\n", require("slipway.fs").read(file))
      require("slipway.fs").remove(dir, { recursive = true })
    end)

    it("is spared by kill_all{spare_cancelling} and not by a plain kill_all", function()
      local file, dir = tmpfile()
      local pids = {}
      local a = task.spawn(proc.run, trapping(file, "0.3"), { cancel_signal = "SIGINT", kill_grace = "5s",
        stdout = function(line) pids[1] = tonumber(line) end })
      local b = task.spawn(proc.run, { "sleep", "100" })
      support.wait_for(function() return pids[1] and #proc.live() == 2 end)
      a:cancel()
      a:wait()
      assert.same(1, proc.kill_all("SIGKILL", { spare_cancelling = true }))
      assert.same(137, b:join().code)
      assert.is_true(support.gone(pids[1], 3000))
      support.wait_for(function() return #proc.live() == 0 end)
      assert.same("INT\n", require("slipway.fs").read(file))

      pids = {}
      a = task.spawn(proc.run, "trap '' INT; echo $$; while :; do sleep 0.02; done",
        { cancel_signal = "SIGINT", kill_grace = "10s", stdout = function(line) pids[1] = tonumber(line) end })
      support.wait_for(function() return pids[1] end)
      a:cancel()
      a:wait()
      assert.same(1, proc.kill_all("SIGKILL"))
      assert.is_true(support.gone(pids[1], 3000))
      support.wait_for(function() return #proc.live() == 0 end)
      require("slipway.fs").remove(dir, { recursive = true })
    end)

    it("rejects what is not a signal name", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, { "true" }, { cancel_signal = "SIGNOPE" })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: option 'cancel_signal' must be a signal name such as \"SIGINT\", got 'SIGNOPE'"):format(line) }, { ok, err })
      assert.has_error(function() proc.kill_all("SIGKILL", { spare = true }) end)
    end)
  end)

  describe("spawn", function()
    it("starts a process and waits for its result later", function()
      local p = proc.spawn({ "sh", "-c", "echo hi; sleep 0.05; exit 5" })
      assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
      assert.same(("process %d (running)"):format(p.pid), tostring(p))
      local r = p:wait()
      assert.same({ code = 5, stdout = "hi\n", stderr = "" }, core(r))
      assert.same(p.pid, r.pid)
      assert.is_true(p:wait() == r)   -- the same result again
      assert.same({ nil, ("ESRCH: no such process: pid %d"):format(p.pid), "ESRCH" }, { p:kill() })
    end)

    it("kills the group with kill()", function()
      local p = proc.spawn("sleep 100 & sleep 100")
      assert.same(true, p:kill())
      assert.same({ code = 143, signal = "SIGTERM", stdout = "", stderr = "" }, core(p:wait()))
    end)

    it("delivers lines to the waiting task, queued ones included", function()
      local got = {}
      local p = proc.spawn("seq 1 3", { stdout = function(line) got[#got + 1] = line end })
      task.sleep("50ms")
      assert.same({}, got)
      assert.same(0, p:wait().code)
      assert.same({ "1", "2", "3" }, got)
    end)

    it("returns the error triple when the program does not exist", function()
      assert.same({ nil, "ENOENT: no such file or directory: nosuchcmd", "ENOENT" },
        { proc.spawn({ "nosuchcmd" }) })
    end)

    it("kills the process when the waiting task is cancelled", function()
      local p = proc.spawn({ "sleep", "100" })
      local t = task.spawn(p.wait, p)
      task.sleep("20ms")
      t:cancel()
      t:wait()
      assert.is_true(support.gone(p.pid))
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(p.wait, p)
      assert.same({ false, ("tests/proc_spec.lua:%d: process:wait: the process was abandoned when its waiting task was cancelled or its callback raised"):format(line) }, { ok, err })
      support.wait_for(function() return #proc.live() == 0 end)
    end)

    it("lets an unreferenced process run on and reaps it", function()
      local pid
      do
        local p = proc.spawn("sleep 0.1; seq 1 100000", { stdout = function() end })
        pid = p.pid
      end
      collectgarbage()
      collectgarbage()
      assert.same({ { pid = pid, pgid = pid } }, proc.live())
      support.wait_for(function() return #proc.live() == 0 end)
      leaks.settle()
    end)

    it("refuses a second waiter", function()
      local p = proc.spawn({ "sleep", "0.05" })
      local t = task.spawn(p.wait, p)
      task.sleep(0)
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(p.wait, p)
      assert.same({ false, ("tests/proc_spec.lua:%d: process:wait: another task is already waiting for it"):format(line) }, { ok, err })
      assert.same(0, t:join().code)
    end)
  end)

  describe("kill_all and live", function()
    it("lists live children with their group and signals them all", function()
      local ts = {}
      for i = 1, 3 do ts[i] = task.spawn(proc.run, { "sleep", "100" }) end
      support.wait_for(function() return #proc.live() == 3 end)
      for _, c in ipairs(proc.live()) do assert.same(c.pid, c.pgid) end
      assert.same(3, proc.kill_all("SIGTERM"))
      for i = 1, 3 do
        assert.same({ code = 143, signal = "SIGTERM", stdout = "", stderr = "" }, core(ts[i]:join()))
      end
      assert.same({}, proc.live())
      assert.same(0, proc.kill_all())
    end)

    it("rejects an unknown signal name", function()
      assert.has_error(function() proc.kill_all("SIGNOPE") end,
        "proc.kill_all: unknown signal 'SIGNOPE' (expected e.g. SIGTERM)")
    end)
  end)

  describe("concurrency", function()
    it("runs 200 processes at once and leaves no fd behind", function()
      local fds = leaks.fd_count()
      local ts, t0 = {}, task.now()
      for i = 1, 200 do
        ts[i] = task.spawn(function()
          return proc.run({ "sh", "-c", "sleep 0.2; echo " .. i })
        end)
      end
      for i = 1, 200 do
        local r = ts[i]:join()
        assert.same({ code = 0, stdout = i .. "\n", stderr = "" }, core(r))
      end
      local ms = task.now() - t0
      assert.is_true(ms < 10000, "took " .. ms .. " ms")
      leaks.settle()
      assert.same(fds, leaks.fd_count())
    end)
  end)

  describe("without pidfd", function()
    it("reaps through SIGCHLD instead", function()
      local code = [[
        local proc, task = require("slipway.proc"), require("slipway.task")
        local ts = {}
        for i = 1, 20 do ts[i] = task.spawn(proc.run, "sleep 0.05; exit " .. i) end
        local codes = {}
        for i = 1, 20 do codes[i] = ts[i]:join().code end
        print(table.concat(codes, ","))
        print(proc.run("sleep 5", { timeout = "50ms" }).code)
        local t = task.spawn(proc.run, { "sleep", "100" })
        task.sleep("50ms")
        t:cancel()
        t:wait()
        task.sleep("50ms")
        print(t:status(), #proc.live(), task.stats().handles)
      ]]
      local r = proc.run({ os.getenv("SLIPWAY"), "-e", code }, { env = { SLIPWAY_PROC_NO_PIDFD = "1" } })
      local codes = {}
      for i = 1, 20 do codes[i] = i end
      assert.same({ code = 0, stdout = table.concat(codes, ",") .. "\n124\ncancelled\t0\t0\n", stderr = "" }, core(r))
    end)
  end)

  describe("bad input", function()
    it("raises on unknown options naming the caller's line", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, "true", { check = false })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: unknown option 'check' (valid: cwd, env, env_clear, stdin, stdout, stderr, timeout, kill_grace, max_output, cancel_signal)"):format(line) }, { ok, err })
    end)

    it("raises on a NUL byte in what reaches the system, instead of cutting the string there", function()
      local function err_of(...)
        local ok, err = pcall(proc.run, ...)
        assert.is_false(ok)
        return err
      end
      assert.matches('^tests/proc_spec.lua:%d+: proc.run: cmd%[2%] contains a NUL byte: "a\\0b"$',
        err_of({ "echo", "a\0b" }))
      assert.matches('^tests/proc_spec.lua:%d+: proc.run: cmd contains a NUL byte: "echo a\\0; rm %-rf x"$',
        err_of("echo a\0; rm -rf x"))
      assert.matches('proc.run: env X contains a NUL byte: "1\\0"$', err_of("true", { env = { X = "1\0" } }))
      assert.matches("proc.run: an env name contains a NUL byte", err_of("true", { env = { ["X\0Y"] = "1" } }))
      assert.matches("proc.run: option 'cwd' contains a NUL byte", err_of("true", { cwd = "/tmp\0/x" }))
      -- a number's string form would be garbage once the options are read
      assert.matches("proc.run: option 'cwd' must be a string, got number", err_of("true", { cwd = 5 }))
      assert.matches("proc.run: env name 'A=B' is empty or contains '='", err_of("true", { env = { ["A=B"] = "1" } }))
      assert.matches("proc.run: env name '' is empty or contains '='", err_of("true", { env = { [""] = "1" } }))
      assert.same("in\0put", proc.run("cat", { stdin = "in\0put" }).stdout)   -- data may hold NULs
    end)

    it("raises on a bad command", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(proc.run, 42)
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: cmd must be an argv list or a shell string, got number"):format(line) }, { ok, err })
      line = debug.getinfo(1, "l").currentline; ok, err = pcall(proc.run, {})
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: cmd is an empty argv list"):format(line) }, { ok, err })
      line = debug.getinfo(1, "l").currentline; ok, err = pcall(proc.run, { "echo", true })
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: cmd[2] must be a string, got boolean"):format(line) }, { ok, err })
    end)

    it("raises outside a task", function()
      local line
      local co = coroutine.create(function()
        line = debug.getinfo(1, "l").currentline; return proc.run("true")
      end)
      local ok, err = coroutine.resume(co)
      assert.same({ false, ("tests/proc_spec.lua:%d: proc.run: call this inside a task (it waits for I/O)"):format(line) }, { ok, err })
    end)
  end)
end)
