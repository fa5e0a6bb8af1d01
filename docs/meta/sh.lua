---@meta slipway.sh
-- Editor stubs (LuaLS) for require("slipway.sh") and the global `sh`.

---@class slipway.ShOptions: slipway.ProcOptions
---@field check? boolean raise on a non-zero exit (default true)

---Run a command, stream its lines to the running code's output (in a
---pipeline run the task's output; elsewhere slipway's stdout and stderr),
---raise on failure
---("deploy.lua:12: sh: exit code 2: make test" and the stderr tail).
---Streamed stdout/stderr come back joined with "\n" (no final newline).
---A string runs like a make recipe line: without the shell when the shell
---would only split it into words (no quotes, $, globs, redirections, ;,
---|, &&, no builtin like cd or echo first), else through /bin/sh -c; the
---results are the same either way (a program that cannot start gets the
---shell's "not found" and 127).
---@class slipway.sh
---@overload async fun(cmd: string|string[], opts?: slipway.ShOptions): slipway.ProcResult
sh = {}

---The same as calling sh.
---@async
---@param cmd string|string[]
---@param opts? slipway.ShOptions
---@return slipway.ProcResult|nil
---@return string? message
---@return string? code
function sh.run(cmd, opts) end

return sh
