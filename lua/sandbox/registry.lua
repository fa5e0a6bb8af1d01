-- slipway.sandbox.registry: the sandbox's registry (Debian's
-- docker-registry): plain HTTP on one address, no auth, storage under the
-- sandbox directory, started detached and stopped by pid.
local fs = require("slipway.fs")
local http = require("slipway.http")
local task = require("slipway.task")
local host = require("slipway.sandbox.host")

local M = {}
local fail, say = host.fail, host.say

-- "up" (a registry answers /v2/ with 200), "other" (something answers,
-- e.g. a registry with auth), or "down". addr: "HOST:PORT".
function M.ping(addr)
  local r = http.request { url = ("http://%s/v2/"):format(addr), timeout = "2s", connect_timeout = "2s" }
  if not r then return "down" end
  return r.status == 200 and "up" or "other"
end

function M.config(root, addr)
  return table.concat({
    "# written by `slipway sandbox up`: plain HTTP on " .. addr:match("^(.*):") .. ", no auth",
    "version: 0.1",
    "log:", "  level: warn", "  accesslog:", "    disabled: true",
    "storage:", "  filesystem:", "    rootdirectory: " .. root,
    "  delete:", "    enabled: true",
    "  maintenance:", "    uploadpurging:", "      enabled: false",
    "http:", "  addr: " .. addr,
    "  headers:", "    X-Content-Type-Options: [nosniff]", "",
  }, "\n")
end

-- Keep the registry of dir (pid file dir/registry.pid) running on addr, or
-- start it. Returns pid, started.
function M.ensure(dir, addr, program)
  local pid_file = dir .. "/registry.pid"
  local pid = host.read_pid(pid_file)
  if host.alive(pid) and M.ping(addr) == "up" then return pid, false end
  if host.alive(pid) then host.stop_pid(pid, 5) end
  local answer = M.ping(addr)
  if answer == "up" then
    fail("%s already serves a registry that is not this sandbox's (another sandbox?): use --registry-port", addr)
  elseif answer == "other" then
    -- Debian's docker-registry service starts on install where a service
    -- manager runs, on 127.0.0.1:5000 with htpasswd auth.
    if addr == "127.0.0.1:5000" and host.which("service") then
      host.run({ "service", "docker-registry", "stop" }, { timeout = "20s" })
      task.sleep(0.5)
    end
    if M.ping(addr) ~= "down" then
      fail("%s is taken by another program (not this sandbox's registry): stop it or use --registry-port", addr)
    end
  end
  fs.mkdir(dir .. "/registry")
  fs.write(dir .. "/registry.yml", M.config(dir .. "/registry", addr))
  say("starting docker-registry on %s", addr)
  pid = host.start_detached({ program, "serve", dir .. "/registry.yml" }, dir .. "/registry.log")
  fs.write(pid_file, pid .. "\n")
  local deadline = task.now() + 15000
  while M.ping(addr) ~= "up" do
    if not host.alive(pid) then
      fail("docker-registry exited:\n    %s", host.log_tail(dir .. "/registry.log"))
    end
    if task.now() > deadline then fail("the registry did not answer within 15s (see %s/registry.log)", dir) end
    task.sleep(0.1)
  end
  return pid, true
end

-- The registry program, or a failure saying which package to install.
function M.program()
  local registry = host.which("docker-registry")
  if not registry then
    fail("docker-registry not found: install docker-registry (make deps, or apt-get install docker-registry)")
  end
  return registry
end

return M
