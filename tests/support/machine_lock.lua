-- The machine's sandbox lock, held EXCLUSIVE by a spec that starts engines
-- of its own (a multi-node sandbox): one Docker sandbox at a time on a
-- machine. tests/run holds the same lock SHARED for the specs that use the
-- tests' shared engine, so this waits until no such run is going on, and
-- they wait for this spec.
--
--   local release = require("support.machine_lock").acquire()
--   ...
--   release()
--
-- flock(1) holds it in a helper process that exits when this process
-- dies, so a crashed spec never leaves the machine locked (the sandbox
-- command's own lock helper, lua/sandbox/host.lua). When the caller holds
-- it already (`flock -x LOCK env SLIPWAY_SANDBOX_LOCK_HELD=exclusive
-- tests/run ...`, or a session of several runs), nothing is taken again.
local M = {}

M.PATH = os.getenv("SLIPWAY_SANDBOX_LOCK") or "/tmp/slipway-sandbox.lock"

-- Wait (up to `wait`, default $SLIPWAY_SANDBOX_LOCK_WAIT or "45m") for
-- the lock; returns release().
function M.acquire(wait)
  if os.getenv("SLIPWAY_SANDBOX_LOCK_HELD") == "exclusive" then return function() end end
  wait = wait or os.getenv("SLIPWAY_SANDBOX_LOCK_WAIT") or "45m"
  local host = require("slipway.sandbox.host")
  local ok, release = pcall(host.flock, M.PATH, {
    wait = math.floor(require("slipway.duration").parse(wait) / 1000),
    busy = ("%s is still in use after %s"):format(M.PATH, wait),
    on_wait = function(s)
      if s == 5 then io.stderr:write(("waiting for %s (test runs use the tests' Docker sandbox)\n"):format(M.PATH)) end
    end,
  })
  if not ok then error(type(release) == "table" and release.msg or release, 0) end
  return release
end

return M
