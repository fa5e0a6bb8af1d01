-- A private OpenSSH server on 127.0.0.1 for the ssh:// DOCKER_HOST tests:
-- its own host key, one client key allowed to log in as the current user,
-- started by pid and stopped by pid.
local proc = require("slipway.proc")
local fx = require("support.docker_fixtures")

local M = {}

function M.start()
  local dir = fx.tmpdir()
  for _, k in ipairs({ "host", "client" }) do
    local r = proc.run({ "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir .. "/" .. k })
    assert(r and r.code == 0, "ssh-keygen failed")
  end
  proc.run({ "cp", dir .. "/client.pub", dir .. "/authorized_keys" })
  proc.run({ "mkdir", "-p", "/run/sshd" })   -- sshd's privilege separation dir
  local port = 20000 + math.random(0, 9999)
  fx.write(dir .. "/sshd_config", table.concat({
    "Port " .. port, "ListenAddress 127.0.0.1", "HostKey " .. dir .. "/host",
    "AuthorizedKeysFile " .. dir .. "/authorized_keys", "PidFile " .. dir .. "/sshd.pid",
    "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
    "AllowStreamLocalForwarding yes", "" }, "\n"))
  local r = proc.run({ "/usr/sbin/sshd", "-f", dir .. "/sshd_config", "-E", dir .. "/sshd.log" })
  assert(r and r.code == 0, "sshd failed to start: " .. tostring(r and r.stderr))
  local pid
  for _ = 1, 50 do
    local f = io.open(dir .. "/sshd.pid")
    if f then pid = f:read("l"); f:close() end
    if pid then break end
    require("slipway.task").sleep(0.05)
  end
  local user = (os.getenv("USER") or "root")
  return {
    dir = dir, port = port, pid = pid,
    host = ("ssh://%s@127.0.0.1:%d"):format(user, port),
    options = { "-i", dir .. "/client", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR" },
  }
end

function M.stop(s)
  if s and s.pid then proc.run({ "kill", s.pid }) end
  if s then fx.rmtree(s.dir) end
end

return M
