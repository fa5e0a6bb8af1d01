local sh = require("slipway.sh")
local proc = require("slipway.proc")
local task = require("slipway.task")
local leaks = require("support.leaks")
local support = require("support.proc_helpers")
local fake_run = require("support.fake_run")

-- Run fn as a pipeline unit would; returns the lines of output it made
-- (as "stream: line" strings) after fn's results.
local function collecting(fn)
  local run, ok, a, b, c = fake_run.within(fn)
  if not ok then error(a, 0) end
  return run.lines, a, b, c
end

-- pcall(f), asserting that it raised; returns the error.
local function fails(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return err
end

describe("sh", function()
  leaks.check()

  it("streams every line to the running code's output and returns the result", function()
    local seen, r = collecting(function() return sh "echo one; sleep 0.05; echo two >&2; sleep 0.05; printf three" end)
    assert.same({ "stdout: one", "stderr: two", "stdout: three" }, seen)
    assert.same({ 0, "one\nthree", "two" }, { r.code, r.stdout, r.stderr })
  end)

  it("takes an argv list and runs it without a shell", function()
    local seen, r = collecting(function() return sh { "printf", "%s\\n", "a b", "$HOME" } end)
    assert.same({ "stdout: a b", "stdout: $HOME" }, seen)
    assert.same(0, r.code)
  end)

  it("raises on a non-zero exit naming the caller's line, the command and the stderr tail", function()
    local line
    local seen, err = collecting(function()
      return fails(function()
        line = debug.getinfo(1, "l").currentline; sh "for i in $(seq 1 15); do echo e$i >&2; done; echo out; exit 2"
      end)
    end)
    local tail = {}
    for i = 6, 15 do tail[#tail + 1] = "  e" .. i end
    assert.same(("tests/sh_spec.lua:%d: sh: exit code 2: for i in $(seq 1 15); do echo e$i >&2; done; echo out; exit 2\n%s")
      :format(line, table.concat(tail, "\n")), err)
    assert.same(16, #seen)
  end)

  it("quotes argv words in the message", function()
    local line
    local _, err = collecting(function()
      return fails(function()
        line = debug.getinfo(1, "l").currentline; sh { "sh", "-c", "exit 3", "it's" }
      end)
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: exit code 3: sh -c 'exit 3' 'it'\\''s'"):format(line), err)
  end)

  it("takes the stderr tail from a captured stderr too", function()
    local line
    local err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh("echo a >&2; echo b >&2; exit 1", { stderr = "capture" })
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: exit code 1: echo a >&2; echo b >&2; exit 1\n  a\n  b"):format(line), err)
  end)

  it("returns the result with check = false", function()
    local _, r = collecting(function() return sh("echo no >&2; exit 4", { check = false }) end)
    assert.same({ 4, "", "no" }, { r.code, r.stdout, r.stderr })
  end)

  it("raises when the program cannot start, or returns the triple with check = false", function()
    local line
    local err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh { "nosuchcmd", "x" }
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: ENOENT: no such file or directory: nosuchcmd"):format(line), err)
    assert.same({ nil, "ENOENT: no such file or directory: nosuchcmd", "ENOENT" },
      { sh({ "nosuchcmd" }, { check = false }) })
  end)

  it("reports a timeout and a signal", function()
    local line
    local err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh("sleep 5", { timeout = "50ms" })
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: timed out after 50ms: sleep 5"):format(line), err)
    err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh("kill -9 $$", { timeout = 5 })
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: killed by SIGKILL: kill -9 $$"):format(line), err)
  end)

  it("passes the other options to proc.run", function()
    local seen, r = collecting(function()
      return sh("pwd; cat; echo $X", { cwd = "/usr", stdin = "in\n", env = { X = "x" } })
    end)
    assert.same({ "stdout: /usr", "stdout: in", "stdout: x" }, seen)
    assert.same("/usr\nin\nx", r.stdout)
  end)

  it("passes cancel_signal to proc.run: what a timeout sends first", function()
    local cmd = "trap 'echo INT; exit 3' INT; while :; do sleep 0.02; done"
    local line, err
    local seen = collecting(function()
      err = fails(function()
        line = debug.getinfo(1, "l").currentline; sh(cmd, { timeout = "100ms", cancel_signal = "SIGINT" })
      end)
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: timed out after 100ms: %s"):format(line, cmd), err)
    assert.same({ "stdout: INT" }, seen)
  end)

  it("leaves a stream alone that the caller directs", function()
    local mine = {}
    local seen, r = collecting(function()
      return sh("echo a; echo b >&2", { stdout = "capture", stderr = function(l) mine[#mine + 1] = l end })
    end)
    assert.same({}, seen)
    assert.same({ "a\n", nil, { "b" } }, { r.stdout, r.stderr, mine })
  end)

  it("rejects unknown options and bad arguments at the caller's line", function()
    local line
    local err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh("true", { chek = false })
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: unknown option 'chek' (valid: cancel_signal, check, cwd, env, env_clear, kill_grace, max_output, stderr, stdin, stdout, timeout)"):format(line), err)
    err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh("true", { timeout = "soon" })
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: option 'timeout': bad duration 'soon' (expected e.g. 250ms, 5s, 1h30m)"):format(line), err)
    err = fails(function()
      line = debug.getinfo(1, "l").currentline; sh(42)
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: expected a command string or an argv list, got number"):format(line), err)
  end)

  it("stops a command whose output passes max_output, at the caller's line", function()
    local line
    local seen, err = collecting(function()
      return fails(function() line = debug.getinfo(1, "l").currentline; sh("yes", { max_output = 100000 }) end)
    end)
    assert.same(("tests/sh_spec.lua:%d: sh: EOUTPUTTOOLARGE: stdout passed max_output (100000 bytes), " ..
      "the process group was killed: yes"):format(line), err)
    assert.is_true(#seen > 1000)   -- the lines within the limit went to the sink
    local _, r, msg, code = collecting(function() return sh("yes", { max_output = 10, check = false }) end)
    assert.same({ nil, "EOUTPUTTOOLARGE: stdout passed max_output (10 bytes), the process group was killed: yes",
                  "EOUTPUTTOOLARGE" }, { r, msg, code })
  end)

  it("raises outside a task", function()
    local line
    local co = coroutine.create(function()
      line = debug.getinfo(1, "l").currentline; sh "true"
    end)
    local ok, err = coroutine.resume(co)
    assert.same({ false, ("tests/sh_spec.lua:%d: sh: call this inside a task (it waits for I/O)"):format(line) }, { ok, err })
  end)

  it("outside a pipeline run, writes the command's stdout and stderr to its own", function()
    local r = proc.run({ os.getenv("SLIPWAY"), "-e", 'sh "echo hi; echo err >&2"' })
    assert.same({ 0, "hi\n", "err\n" }, { r.code, r.stdout, r.stderr })
  end)

  it("unwinds on cancel and kills the command's process group", function()
    local pid
    local t = task.spawn(function()
      collecting(function() sh("echo $$; sleep 100", { stdout = function(l) pid = tonumber(l) end }) end)
    end)
    support.wait_for(function() return pid end)
    t:cancel()
    t:wait()
    assert.same("cancelled", t:status())
    assert.is_true(support.gone(pid))
    support.wait_for(function() return #proc.live() == 0 end)
  end)

  it("is the global sh in scripts", function()
    local r = proc.run({ os.getenv("SLIPWAY"), "-e", 'print(sh == require("slipway.sh"))' })
    assert.same("true\n", r.stdout)
  end)

  describe("a command line, like make", function()
    -- The same line through the shell for certain (the argv form) and as
    -- sh/proc take it; the results must not differ.
    local function both(line, opts)
      local via_shell = proc.run({ "/bin/sh", "-c", line }, opts)
      local p = assert(proc.spawn(line, opts))
      local as_given = p:wait()
      return via_shell, as_given, p.shell
    end
    local function same_result(a, b)
      assert.same({ a.code, a.signal, a.stdout, a.stderr }, { b.code, b.signal, b.stdout, b.stderr })
    end
    local function sorted_lines(text)
      local t = {}
      for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
      table.sort(t)
      return t
    end

    it("runs a line the shell would only split without the shell, with the same results", function()
      for _, line in ipairs({ "uname -s", "  ls   -d  / /usr ", "ls /nonexistent-dir", "sleep 0",
                              "sh -c 'exit 3'", "date +%Y", "cat /dev/null" }) do
        local via_shell, as_given, shell = both(line)
        same_result(via_shell, as_given)
        assert.same(line:find("'", 1, true) ~= nil, shell, line)
      end
      -- sh itself: the same output and errors either way
      local _, a = collecting(function() return sh({ "/bin/sh", "-c", "ls /nonexistent-dir" }, { check = false }) end)
      local _, b = collecting(function() return sh("ls /nonexistent-dir", { check = false }) end)
      assert.same({ a.code, a.stdout, a.stderr }, { b.code, b.stdout, b.stderr })
    end)

    it("gives the program the environment the shell would", function()
      local via_shell, as_given, shell = both("env", { env = { ["NOT-AN-IDENTIFIER"] = "1", OK_NAME = "2" } })
      assert.is_false(shell)
      assert.same(sorted_lines(via_shell.stdout), sorted_lines(as_given.stdout))
      assert.is_nil(as_given.stdout:find("NOT-AN-IDENTIFIER", 1, true))
      assert.truthy(as_given.stdout:find("OK_NAME=2", 1, true))
      -- PWD names the directory it runs in: physical when the inherited
      -- one does not lead there, as given when it does (a symlink)
      local dir = proc.run({ "mktemp", "-d" }).stdout:gsub("%s+$", "")
      assert.same(0, proc.run({ "mkdir", dir .. "/real" }).code)
      assert.same(0, proc.run({ "ln", "-s", dir .. "/real", dir .. "/link" }).code)
      for _, opts in ipairs({ { cwd = dir .. "/link" }, { cwd = dir .. "/link", env = { PWD = dir .. "/link" } },
                              { cwd = dir .. "/real", env = { PWD = "relative" } }, { cwd = "/" } }) do
        via_shell, as_given, shell = both("printenv PWD", opts)
        assert.is_false(shell)
        same_result(via_shell, as_given)
      end
      local _, physical = both("printenv PWD", { cwd = dir .. "/link" })
      local _, logical = both("printenv PWD", { cwd = dir .. "/link", env = { PWD = dir .. "/link" } })
      assert.same({ dir .. "/real\n", dir .. "/link\n" }, { physical.stdout, logical.stdout })
      proc.run({ "rm", "-rf", dir })
    end)

    it("hands a program that cannot start to the shell: its message and exit code", function()
      local dir = proc.run({ "mktemp", "-d" }).stdout:gsub("%s+$", "")
      local f = io.open(dir .. "/noexec", "w"); f:write("echo hi\n"); f:close()
      local g = io.open(dir .. "/script", "w"); g:write("echo from a script without #!\n"); g:close()
      assert.same(0, proc.run({ "chmod", "+x", dir .. "/script" }).code)
      for _, line in ipairs({ "nosuchprogram-xyz arg", dir .. "/noexec", dir, dir .. "/script", "./script" }) do
        local via_shell, as_given, shell = both(line, { cwd = dir })
        same_result(via_shell, as_given)
        assert.is_true(shell, line)
      end
      local via_shell = proc.run({ "/bin/sh", "-c", "nosuchprogram-xyz arg" })
      assert.same({ 127, "/bin/sh: 1: nosuchprogram-xyz: not found\n" }, { via_shell.code, via_shell.stderr })
      assert.same(126, (both(dir .. "/noexec")).code)
      local line
      local _, err = collecting(function()
        return fails(function() line = debug.getinfo(1, "l").currentline; sh "nosuchprogram-xyz arg" end)
      end)
      assert.same(("tests/sh_spec.lua:%d: sh: exit code 127: nosuchprogram-xyz arg\n  /bin/sh: 1: nosuchprogram-xyz: not found"):format(line), err)
      proc.run({ "rm", "-rf", dir })
    end)

    it("leaves shell syntax, builtins, assignments and another PATH to the shell", function()
      local lines = { "echo hi", "cd /", "export X=1", "exit 3", "true", "test -d /", "[ -d / ]", "pwd",
        "printf '%s' x", "printf %s $HOME", "ls *", "ls ~", "a=1 env", "echo a; echo b", "echo a && echo b",
        "ls | cat", "ls > /dev/null", "ls # comment", "echo \\", "ls \"/\"", "ls {a,b}", "ls !x", "ls ?",
        "ls [ab]", "ls ^x", "printf 'a\nb'", "if true; then :; fi", "kill -0 $$", "" }
      for _, line in ipairs(lines) do
        local via_shell, as_given, shell = both(line)
        same_result(via_shell, as_given)
        assert.is_true(shell, line)
      end
      local p = assert(proc.spawn("sleep 0", { env = { PATH = "/bin" } }))
      p:wait()
      assert.is_true(p.shell)
      p = assert(proc.spawn("sleep 0", { env_clear = true }))
      p:wait()
      assert.is_true(p.shell)
      p = assert(proc.spawn({ "sleep", "0" }))
      p:wait()
      assert.is_nil(p.shell)
    end)
  end)
end)
