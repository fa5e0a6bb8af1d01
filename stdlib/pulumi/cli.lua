-- slipway.pulumi.cli: running the Pulumi CLI the way the Automation API
-- does (pulumi/pulumi sdk/go/auto: cmd.go, local_workspace.go, stack.go).
--
-- Every call gets `--non-interactive` last, the environment
-- PULUMI_AUTOMATION_API=true and PULUMI_DEBUG_COMMANDS=true (what the
-- Automation API sets for stack commands), PULUMI_BACKEND_URL and
-- PULUMI_HOME when given, the caller's env (Secrets revealed there and
-- nowhere else), and, when the binary is an absolute path, its directory
-- first in PATH (so the plugins next to it are found). The binary is
-- opts.bin, else $PULUMI_BIN, else `pulumi` on PATH. Cancelling the task
-- (a timeout, fail-fast, Ctrl-C) sends the CLI SIGINT, as the Automation
-- API does, so that it stops cleanly and releases the stack's lock, and
-- SIGKILL 10 s later if it has not exited.
--
-- Secret values only ever reach the CLI through its stdin or environment:
-- argv is built from names, flags and plain config.
local proc = require("slipway.proc")
local secret = require("slipway.secret")
local shell_quote = require("slipway.words").shell_quote

local M = {}

M.KILL_GRACE = "10s"
M.SMALL_TIMEOUT = "5m"          -- stack select/init, config, outputs, history
local TAIL_LINES = 20
local MAX_LINE = 2000           -- bytes of one kept line

-- Environment names whose values are secrets even when given as plain
-- strings: they are registered with the masker.
local SECRET_NAME = { "TOKEN", "SECRET", "PASSWORD", "PASSPHRASE", "PRIVATE_KEY", "CREDENTIALS" }

local function looks_secret(name)
  local up = name:upper()
  for _, word in ipairs(SECRET_NAME) do
    if up:find(word, 1, true) then return true end
  end
  return false
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- The environment a call adds to slipway's own.
function M.environment(c)
  local env = { PULUMI_AUTOMATION_API = "true", PULUMI_DEBUG_COMMANDS = "true" }
  if c.backend then env.PULUMI_BACKEND_URL = c.backend end
  if c.home then env.PULUMI_HOME = c.home end
  for name, value in pairs(c.env or {}) do
    if value == false then
      env[name] = false
    else
      local text = type(value) == "number" and tostring(value) or secret.reveal(value)
      if not secret.is_secret(value) and looks_secret(name) and #text >= 4 then
        secret.new(text, name)           -- known to the masker from now on
      end
      env[name] = text
    end
  end
  if c.bin:sub(1, 1) == "/" then
    local path = env.PATH or os.getenv("PATH")
    env.PATH = dirname(c.bin) .. ((path and path ~= "") and (":" .. path) or "")
  end
  return env
end

-- The command as messages show it: `pulumi up --stack dev`.
function M.show(args)
  local words = { "pulumi" }
  for _, a in ipairs(args) do
    if a == "--event-log" or a == "--non-interactive" then break end
    words[#words + 1] = shell_quote(a)
  end
  return table.concat(words, " ")
end

-- A ring of the last lines of a stream.
local function tail_ring()
  local ring = { n = 0 }
  function ring.add(line)
    ring.n = ring.n + 1
    ring[(ring.n - 1) % TAIL_LINES + 1] = #line > MAX_LINE and (line:sub(1, MAX_LINE) .. "...") or line
  end
  function ring.lines()
    local out = {}
    for i = math.max(1, ring.n - TAIL_LINES + 1), ring.n do out[#out + 1] = ring[(i - 1) % TAIL_LINES + 1] end
    return out
  end
  return ring
end

-- Colour directives (<{%fg 1%}>) and ANSI escapes out of a CLI message.
function M.plain(text)
  return (text:gsub("<{%%[^%%]*%%}>", ""):gsub("\27%[[%d;]*m", ""))
end

-- Run `pulumi <args> --non-interactive` for call c. opts: stdin (data),
-- timeout (default SMALL_TIMEOUT), on_stdout(line), capture (keep all of
-- stdout, as `output`). Returns { code, stdout = {last lines}, stderr =
-- {last lines}, output?, timed_out?, signal? } or raises (c.fail) when
-- the CLI cannot be started.
function M.run(c, args, opts)
  opts = opts or {}
  local argv = { c.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--non-interactive"
  local out, err = tail_ring(), tail_ring()
  local all = opts.capture and {} or nil
  local r, msg = proc.run(argv, {
    cwd = c.cwd, env = M.environment(c), stdin = opts.stdin,
    timeout = opts.timeout or M.SMALL_TIMEOUT, cancel_signal = "SIGINT", kill_grace = M.KILL_GRACE,
    stdout = function(line)
      out.add(line)
      if all then all[#all + 1] = line end
      if opts.on_stdout then opts.on_stdout(line) end
    end,
    stderr = function(line) err.add(M.plain(line)) end,
  })
  if r == nil then
    if msg:match("^ENOENT") and not c.bin:find("/", 1, true) then
      c.fail(("cannot run the Pulumi CLI: %s is not on PATH (install it, or set PULUMI_BIN or bin = \"/path/to/pulumi\")")
        :format(c.bin))
    end
    c.fail(("cannot run the Pulumi CLI: %s"):format(msg))
  end
  return { code = r.code, timed_out = r.timed_out, signal = r.signal, stdout = out.lines(), stderr = err.lines(),
           output = all and table.concat(all, "\n") or nil }
end

-- What the CLI said about its failure: its "error:" lines (and what
-- follows them), else the last lines of stderr.
function M.complaint(r)
  local lines, from = r.stderr, nil
  for i, line in ipairs(lines) do
    if line:match("^error:") then from = from or i end
  end
  local out = {}
  for i = from or math.max(1, #lines - 2), #lines do
    if lines[i]:match("%S") then out[#out + 1] = lines[i] end
  end
  return table.concat(out, "\n")
end

-- Raise: `pulumi up --stack dev` failed (exit 255): <what the CLI said>.
function M.raise(c, args, r, detail)
  local how = r.timed_out and ("timed out after %s"):format(c.timeout_text or "its timeout")
    or r.signal and ("killed by " .. r.signal) or ("exit " .. r.code)
  local said = detail or M.complaint(r)
  c.fail(("%s failed (%s)%s"):format(M.show(args), how, said ~= "" and (": " .. said) or ""))
end

---------------------------------------------------------------- locks

-- Another update holds the stack: the service's 409, or the DIY backend's
-- lock files (and then who holds them). Returns nil, or { holder = text? }.
function M.lock_conflict(r)
  local text = table.concat(r.stderr, "\n")
  if text:find("[409] Conflict: Another update is currently in progress.", 1, true) then
    return { holder = nil }
  end
  if text:find("the stack is currently locked by", 1, true) then
    local holders = {}
    for who, pid, at in text:gmatch("created by (%S+) %(pid (%d+)%) at (%S+)") do
      holders[#holders + 1] = ("%s, pid %s, since %s"):format(who, pid, at)
    end
    return { holder = #holders > 0 and table.concat(holders, "; ") or nil }
  end
  return nil
end

-- The stack does not exist (stack select, before creating it).
function M.no_such_stack(r)
  return table.concat(r.stderr, "\n"):find("no stack named .*found") ~= nil
end

-- An older CLI without `stack select --create`.
function M.unknown_flag(r, flag)
  local text = table.concat(r.stderr, "\n")
  return text:find("unknown flag: " .. flag, 1, true) ~= nil
end

return M
