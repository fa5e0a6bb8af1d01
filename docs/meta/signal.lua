---@meta slipway.signal
-- Editor stubs (LuaLS) for require("slipway.signal") (src/signal.c).

---@alias slipway.SignalName "SIGINT"|"SIGTERM"|"SIGHUP"|"SIGQUIT"|"SIGUSR1"|"SIGUSR2"|"SIGWINCH"|"SIGPIPE"

---@class slipway.SignalWatcher
local Watcher = {}

---The next signal (waits in a task), or nil once closed. Arrivals nobody
---was waiting for are queued, in order.
---@async
---@return slipway.SignalName|nil
function Watcher:next() end

---How many arrivals are queued.
---@return integer
function Watcher:pending() end

---Stop catching: the signals get their default action back.
function Watcher:close() end

---@class slipway.signal
local signal = {}

---Start catching these signals (until close(); also a to-be-closed value).
---@param names slipway.SignalName[]
---@return slipway.SignalWatcher
function signal.watch(names) end

---Wait for the first of these signals (watch + next + close).
---@async
---@param names slipway.SignalName[]
---@return slipway.SignalName
function signal.wait(names) end

return signal
