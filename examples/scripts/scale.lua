-- Scale a Swarm service and wait until its tasks run.
--
--   slipway examples/scripts/scale.lua SERVICE REPLICAS [TIMEOUT]
--   slipway examples/scripts/scale.lua web 3
local docker = require("slipway.docker")

local USAGE = "usage: slipway scale.lua SERVICE REPLICAS [TIMEOUT]   (e.g. web 3 2m)"
local service, replicas, timeout = arg[1], math.tointeger(tonumber(arg[2] or "")), arg[3]
if not service or service == "" or not replicas or replicas < 0 or #arg > 3 then
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end

local r = docker.service.scale(service, replicas, {
  timeout = timeout or "2m",
  on_progress = function(line) print("  " .. line) end,
})
print(("%s: %d -> %d replicas, running"):format(r.name, r.before, r.replicas))
