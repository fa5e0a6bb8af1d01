---@meta slipway.sh
-- Editor stubs (LuaLS) for require("slipway.sh") and the global `sh`.

---@class slipway.ShOptions: slipway.ProcOptions
---@field check? boolean raise on a non-zero exit (default true)

---Run a command, stream its lines to the output sink, raise on failure
---("deploy.lua:12: sh: exit code 2: make test" and the stderr tail).
---Streamed stdout/stderr come back joined with "\n" (no final newline).
---@class slipway.sh
---@overload async fun(cmd: string|string[], opts?: slipway.ShOptions): slipway.ProcResult
sh = {}

---Replace the line sink; returns the previous one. nil restores the default
---(print to stdout).
---@param fn? fun(stream: "stdout"|"stderr", line: string)
---@return fun(stream: string, line: string)
function sh.set_output(fn) end

---The same as calling sh.
---@async
---@param cmd string|string[]
---@param opts? slipway.ShOptions
---@return slipway.ProcResult|nil
---@return string? message
---@return string? code
function sh.run(cmd, opts) end

return sh
