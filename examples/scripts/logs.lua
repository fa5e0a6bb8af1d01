-- A service's recent log lines (from every task), optionally following.
--
--   slipway examples/scripts/logs.lua SERVICE [LINES] [--follow]
local docker = require("slipway.docker")

local USAGE = "usage: slipway logs.lua SERVICE [LINES] [--follow]"
local service, lines, follow
for _, a in ipairs(arg) do
  if a == "--follow" or a == "-f" then follow = true
  elseif not service then service = a
  elseif not lines and math.tointeger(tonumber(a)) then lines = math.tointeger(tonumber(a))
  else service = nil break end
end
if not service or service:sub(1, 1) == "-" or (lines and lines < 0) then
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end

docker.service.logs(service, {
  tail = lines or 100, follow = follow, timestamps = true,
  on_line = function(text, stream)
    if stream == "stderr" then io.stderr:write(text, "\n") else print(text) end
  end,
})
