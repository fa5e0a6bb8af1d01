---@meta slipway.compose
-- Editor completion for slipway.compose (LuaLS). Not loaded at run time.

---A loaded compose configuration: docker/cli's types.Config as tables with
---the YAML field names (services, networks, volumes, secrets, configs and
---the top-level x-* keys). Durations are Go-style strings ("1m30s"), byte
---sizes integers, environment values strings or yaml.null.
---@class slipway.compose.Stack
---@field version string
---@field services table<string, table>
---@field networks? table<string, table>
---@field volumes? table<string, table>
---@field secrets? table<string, table>
---@field configs? table<string, table>

---@class slipway.compose.LoadOptions
---@field env? table<string, string|false> variables that win over all others
---@field env_file? string|string[] .env files (the process environment wins over them)
---@field environ? table<string, string> use instead of the process environment
---@field workdir? string base of relative paths (default: the first file's directory)
---@field skip_interpolation? boolean leave ${VAR} as written (docker's --skip-interpolation)
---@field max_bytes? integer refuse a compose or env file larger than this (default 16 MiB; code "EFBIG")

---@class slipway.compose
local compose = {}

---Load compose files (merged in order, like `docker stack deploy -c a -c b`).
---Raises "compose.load: file:line:col: message".
---@param files string|string[]
---@param opts? slipway.compose.LoadOptions
---@return slipway.compose.Stack stack
---@return string[] warnings "file:line:col: ..." for what Swarm ignores
function compose.load(files, opts) end

---Like load, without raising: stack, warnings | nil, message, code.
---@param files string|string[]
---@param opts? slipway.compose.LoadOptions
---@return slipway.compose.Stack|nil
---@return string[]|string
---@return string? code "EYAML" | "EINTERPOLATE" | "ESCHEMA" | "ECOMPOSE" | "ENOENT" | "EISDIR" | "EFBIG" | ...
function compose.try_load(files, opts) end

---The YAML `docker stack config` prints for a Stack (a changed one is
---normalized again; unknown fields raise). escape_dollars: text that loads
---back to the same Stack instead ("$$", literals that keep a leading line
---break, which docker's output loses).
---@param stack slipway.compose.Stack
---@param opts? {escape_dollars?: boolean}
---@return string
function compose.render(stack, opts) end

---load + render.
---@param files string|string[]
---@param opts? slipway.compose.LoadOptions
---@return string yaml
---@return string[] warnings
function compose.config(files, opts) end

return compose
