-- Leak checks for specs: `require("support.leaks").check()` inside a
-- describe block snapshots the runtime's live counters (refs, pending ops,
-- tasks, libuv handles) and the process's open fds before each test, and
-- asserts after each test that all of them are back where they started.
local task = require("slipway.task")
local busted = require("busted")

local M = {}

function M.fd_count()
  -- listed in-process: a child `ls` races with the pipe's own fds
  local names = assert(require("slipway.fs").list("/proc/self/fd"))
  return #names - 1   -- the directory handle the listing itself opened
end

local pid
function M.pid()
  if not pid then
    local f = io.open("/proc/self/stat")
    pid = f:read("*l"):match("^(%d+)")
    f:close()
  end
  return pid
end

-- Let closing handles finish: a couple of loop turns.
function M.settle()
  for _ = 1, 3 do task.sleep(0) end
end

function M.snapshot()
  -- Idle keep-alive connections in slipway.http's pool are not leaks.
  local http = package.loaded["slipway.http"]
  if http then http.close_idle() end
  M.settle()
  -- finalize unreachable file handles so only live fds are counted
  collectgarbage()
  collectgarbage()
  local s = task.stats()
  s.fds = M.fd_count()
  return s
end

function M.check()
  local before
  busted.before_each(function() before = M.snapshot() end)
  busted.after_each(function()
    local after = M.snapshot()
    busted.assert.same(before, after)
  end)
end

return M
