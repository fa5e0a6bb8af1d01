-- The image every service runs (optionally only a stack's), with its
-- running and desired task counts.
--
--   slipway examples/scripts/versions.lua [STACK]
local docker = require("slipway.docker")

if #arg > 1 or (arg[1] and arg[1]:sub(1, 1) == "-") then
  io.stderr:write("usage: slipway versions.lua [STACK]\n")
  os.exit(2)
end

local services = docker.service.list({ stack = arg[1] })
table.sort(services, function(a, b) return a.Spec.Name < b.Spec.Name end)
local rows = { { "SERVICE", "IMAGE", "RUNNING" } }
for _, s in ipairs(services) do
  local image = s.Spec.TaskTemplate.ContainerSpec.Image:gsub("@sha256:(%x+)$", function(d)
    return "@" .. d:sub(1, 12)
  end)
  local running = #docker.service.tasks(s.ID, { desired_state = "running" })
  local mode = s.Spec.Mode or {}
  local want = mode.Replicated and tostring(mode.Replicated.Replicas or 1) or "global"
  rows[#rows + 1] = { s.Spec.Name, image, ("%d/%s"):format(running, want) }
end
local width = { 0, 0 }
for _, row in ipairs(rows) do
  for i = 1, 2 do width[i] = math.max(width[i], #row[i]) end
end
for _, row in ipairs(rows) do
  print(("%-" .. width[1] .. "s  %-" .. width[2] .. "s  %s"):format(row[1], row[2], row[3]))
end
if #services == 0 then print(arg[1] and ("no services in stack " .. arg[1]) or "no services") end
