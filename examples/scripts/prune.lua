-- Remove stopped containers (finished Swarm tasks among them) and unused
-- images, and say how much space that freed.
--
--   slipway examples/scripts/prune.lua [--all] [--until 24h] [--label key=value]
--   --all: every image no container uses, not only untagged ones
local docker = require("slipway.docker")

local USAGE = "usage: slipway prune.lua [--all] [--until DURATION] [--label KEY[=VALUE]]"
local opts = { dangling_only = true }
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--all" then
    opts.dangling_only = false
  elseif (a == "--until" or a == "--label") and arg[i + 1] then
    opts[a:sub(3)] = arg[i + 1]
    i = i + 1
  else
    io.stderr:write(USAGE, "\n")
    os.exit(2)
  end
  i = i + 1
end

local function size(bytes)
  if bytes >= 1024 * 1024 * 1024 then return ("%.1f GB"):format(bytes / 1024 ^ 3) end
  if bytes >= 1024 * 1024 then return ("%.1f MB"):format(bytes / 1024 ^ 2) end
  return ("%.1f kB"):format(bytes / 1024)
end

local r = docker.prune(opts)
for _, ref in ipairs(r.images_untagged) do print("untagged " .. ref) end
print(("removed %d containers, %d images; reclaimed %s"):format(
  #r.containers_deleted, #r.images_deleted, size(r.space_reclaimed)))
