-- The swarm's nodes; or drain one (Swarm moves its tasks elsewhere),
-- pause it, or make it active again.
--
--   slipway examples/scripts/node.lua                    list
--   slipway examples/scripts/node.lua NODE drain|pause|active
local docker = require("slipway.docker")

local CHOICES = { drain = true, pause = true, active = true }
if not (#arg == 0 or (#arg == 2 and CHOICES[arg[2]])) then
  io.stderr:write("usage: slipway node.lua [NODE drain|pause|active]\n")
  os.exit(2)
end

if #arg == 2 then
  local n = docker.node.update(arg[1], { availability = arg[2] })
  print(("%s: availability %s"):format(n.hostname, n.availability))
  return
end
print(("%-25s %-8s %-8s %-7s %s"):format("HOSTNAME", "ROLE", "STATUS", "AVAIL", "ENGINE"))
for _, n in ipairs(docker.node.list()) do
  print(("%-25s %-8s %-8s %-7s %s%s"):format(n.hostname, n.role, n.state, n.availability, n.engine or "",
    n.leader and "  (leader)" or ""))
end
