-- slipway.sh: run a command the way a deploy script wants it run.
--
--   sh "make test"                      -- a shell command line (see below)
--   sh { "docker", "build", "." }       -- argv list, no shell
--   local r = sh("git rev-parse HEAD")  -- r.stdout == "3f2a..." (lines joined)
--   local r = sh("grep -q x f", { check = false })  -- r.code instead of raising
--
-- Each output line (stdout and stderr) is the running code's output as it
-- comes (slipway.context.output: in a pipeline run, the task's output
-- events; elsewhere slipway's own stdout and stderr). A non-zero
-- exit raises "FILE:LINE: sh: exit code 2: make test" naming the caller's
-- line, followed by the last lines of stderr. Options: check (default
-- true), and everything proc.run takes (cwd, env, env_clear, stdin,
-- stdout, stderr, timeout, kill_grace, max_output, cancel_signal). Giving
-- stdout or stderr yourself takes that stream away from the output.
--
-- Result (also on success): proc.run's table; a stream that went to the
-- output has its lines joined with "\n" (no final newline) as stdout/stderr.
--
-- A command line runs like a make recipe line: when the shell would do no
-- more than split it into words (no quotes, $, globs, redirections, ;, &&,
-- |, no builtin such as cd or echo first), the program is started directly
-- (one process, not /bin/sh and then the program); anything else goes to
-- /bin/sh -c. The results are the same either way, the shell's messages
-- and exit codes included: a program that cannot start is handed to the
-- shell, which says "sh: 1: foo: not found" and exits 127. The rule is
-- proc.run's (src/shell_words.c), so it is the same for every string
-- command; r.shell tells which way a string ran.
local proc = require("slipway.proc")
local context = require("slipway.context")
local caller = require("slipway.caller")
local shell_quote = require("slipway.words").shell_quote

local M = {}

local TAIL_LINES = 10
local output = context.output

local OPTIONS = { "cancel_signal", "check", "cwd", "env", "env_clear", "kill_grace", "max_output", "stderr", "stdin", "stdout", "timeout" }

local function raise(msg)
  error(caller.where() .. msg, 0)
end

-- The command as a person would type it.
local function show(cmd)
  if type(cmd) == "string" then return cmd end
  local words = {}
  for i, w in ipairs(cmd) do words[i] = shell_quote(tostring(w)) end
  return table.concat(words, " ")
end

local function describe_failure(r, cmd, opts)
  local what
  if r.timed_out then
    local t = opts.timeout
    what = ("timed out after %s"):format(type(t) == "number" and (t .. "s") or tostring(t))
  elseif r.signal then
    what = "killed by " .. r.signal
  else
    what = "exit code " .. r.code
  end
  return ("sh: %s: %s"):format(what, show(cmd))
end

local function run(cmd, opts)
  if type(cmd) ~= "string" and type(cmd) ~= "table" then
    raise("sh: expected a command string or an argv list, got " .. type(cmd))
  end
  caller.check_options("sh", opts, OPTIONS)
  opts = opts or {}
  local popts = {}
  for k, v in pairs(opts) do
    if k ~= "check" then popts[k] = v end
  end
  local check = opts.check
  if check == nil then check = true end

  local lines = { stdout = nil, stderr = nil }
  local tail, ntail = {}, 0
  for _, stream in ipairs({ "stdout", "stderr" }) do
    if popts[stream] == nil then
      local collected = {}
      lines[stream] = collected
      popts[stream] = function(line)
        collected[#collected + 1] = line
        if stream == "stderr" then
          ntail = ntail + 1
          tail[(ntail - 1) % TAIL_LINES + 1] = line
        end
        output(stream, line)
      end
    end
  end

  local ok, r, msg, code = pcall(proc.run, cmd, popts)
  if not ok then
    -- proc.run's argument errors name the caller's line already: say sh
    if type(r) == "string" then
      local where, rest = r:match("^([^\n]-:%d+: )proc%.run: (.*)$")
      if rest then error(where .. "sh: " .. rest, 0) end
    end
    error(r, 0)
  end
  if r == nil then
    if check then raise("sh: " .. msg) end
    return nil, msg, code
  end
  for stream, collected in pairs(lines) do
    r[stream] = table.concat(collected, "\n")
  end
  if check and r.code ~= 0 then
    if lines.stderr == nil and type(r.stderr) == "string" then   -- the caller captured it
      for line in r.stderr:gmatch("[^\n]+") do
        ntail = ntail + 1
        tail[(ntail - 1) % TAIL_LINES + 1] = line
      end
    end
    local message = describe_failure(r, cmd, opts)
    local first = math.max(1, ntail - TAIL_LINES + 1)
    local out = {}
    for i = first, ntail do out[#out + 1] = "  " .. tail[(i - 1) % TAIL_LINES + 1] end
    if #out > 0 then message = message .. "\n" .. table.concat(out, "\n") end
    raise(message)
  end
  return r
end

M.run = run

return setmetatable(M, {
  __call = function(_, cmd, opts)
    return run(cmd, opts)
  end,
})
