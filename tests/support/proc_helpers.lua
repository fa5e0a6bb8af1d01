-- Helpers for the proc/sh specs: waiting for a condition inside a task and
-- telling whether a process is gone.
local task = require("slipway.task")

local M = {}

-- Poll fn every 10 ms until it returns a true value (or raise after timeout_ms).
function M.wait_for(fn, timeout_ms)
  local deadline = task.now() + (timeout_ms or 5000)
  while true do
    local v = fn()
    if v then return v end
    if task.now() > deadline then error("wait_for: condition not met in time", 2) end
    task.sleep("10ms")
  end
end

-- Whether pid has died (no such process, or a zombie waiting for its
-- parent to reap it), polling up to wait_ms (default 2000).
function M.gone(pid, wait_ms)
  local deadline = task.now() + (wait_ms or 2000)
  while true do
    local f = io.open("/proc/" .. pid .. "/stat")
    if f == nil then return true end
    local stat = f:read("a")
    f:close()
    if stat:match("^%d+ %b() (%a)") == "Z" then return true end
    if task.now() >= deadline then return false end
    task.sleep("10ms")
  end
end

return M
