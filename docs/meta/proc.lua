---@meta slipway.proc
-- Editor stubs (LuaLS) for require("slipway.proc") and the global `proc`.

---@class slipway.proc
proc = {}

---@class slipway.ProcOptions
---@field cwd? string working directory of the child
---@field env? table<string, string|number|false|slipway.Secret> adds or replaces variables (false removes one; a Secret gives its plain text)
---@field env_clear? boolean start from an empty environment
---@field stdin? string|slipway.Secret data written to the child's stdin (default: /dev/null)
---@field stdout? "capture"|"inherit"|"null"|fun(line: string, stream: "stdout") default "capture"
---@field stderr? "capture"|"inherit"|"null"|fun(line: string, stream: "stderr") default "capture"
---@field timeout? string|number duration; on expiry SIGTERM to the group, SIGKILL after kill_grace; code 124
---@field kill_grace? string|number duration between SIGTERM (or cancel_signal) and SIGKILL (default "2s")
---@field cancel_signal? string sent first on timeout instead of SIGTERM and, when the task is cancelled, instead of an immediate SIGKILL ("SIGINT" for the Pulumi CLI); SIGKILL follows after kill_grace while the task unwinds at once
---@field max_output? integer bytes each of stdout and stderr may bring, captured or handed to a line function (default 64 MiB); one more kills the group and the run returns nil, "EOUTPUTTOOLARGE: stdout passed max_output (64 MiB), ...", "EOUTPUTTOOLARGE"

---@class slipway.ProcResult
---@field code integer exit status; 128+N when killed by signal N; 124 on timeout
---@field signal? string "SIGKILL", "SIGTERM", ... when a signal ended it
---@field stdout? string captured output (absent unless "capture")
---@field stderr? string captured output (absent unless "capture")
---@field pid integer
---@field duration_ms number
---@field timed_out? true

---Run a program (argv list) or a shell string in its own
---process group and wait for it. A non-zero exit is data; failing to start
---returns nil, "ENOENT: no such file or directory: cmd", "ENOENT", output
---beyond max_output nil, "EOUTPUTTOOLARGE: ...", "EOUTPUTTOOLARGE". A NUL
---byte in an argv word, the shell string, env or cwd raises; so does a
---Secret, or a secret's value, in an argv word or the shell string (pass it
---through env or stdin: a command line is readable by every user).
---A shell string that the shell would only split into words (no shell
---syntax, no builtin first, no assignment; env does not set PATH) runs
---directly, like make runs a recipe line, with the environment the shell
---would give it (identifier names only, PWD); anything else, or a program
---that cannot start, runs through /bin/sh -c.
---@async
---@param cmd string|string[]
---@param opts? slipway.ProcOptions
---@return slipway.ProcResult|nil result
---@return string? message
---@return string? code
function proc.run(cmd, opts) end

---@class slipway.Process
---@field pid integer
---@field shell? boolean for a string command: whether /bin/sh runs it (false: started directly)
local Process = {}

---Wait for the process; the same result as proc.run. Line callbacks run here.
---@async
---@return slipway.ProcResult
function Process:wait() end

---Signal the process group (default "SIGTERM").
---@param signal? string|integer
---@return true|nil ok
---@return string? message
---@return string? code
function Process:kill(signal) end

---Start a program and return at once. Same options as proc.run.
---@param cmd string|string[]
---@param opts? slipway.ProcOptions
---@return slipway.Process|nil process
---@return string? message
---@return string? code
function proc.spawn(cmd, opts) end

---Signal every live child's process group (default "SIGKILL").
---`spare_cancelling = true` leaves out children winding down after their
---cancel_signal (their own timer SIGKILLs them when kill_grace ends).
---@param signal? string|integer
---@param opts? {spare_cancelling?: boolean}
---@return integer groups how many groups were signalled
function proc.kill_all(signal, opts) end

---Children started and not yet reaped.
---@return {pid: integer, pgid: integer}[]
function proc.live() end

return proc
