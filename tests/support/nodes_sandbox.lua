-- Multi-node sandboxes for the *_nodes_spec.lua specs (`slipway sandbox
-- up --nodes N`, run as a child like a user would): up/status/down, what a
-- sandbox directory leaves on the machine, waiting for a condition.
--
--   local N = require("support.nodes_sandbox")
--   local s = N.up(dir, { "--nodes", "3" })     -- `up --json`, decoded
--   N.down(dir); assert.same({}, N.leftovers(dir))
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local json = require("slipway.json")
local hash = require("slipway.hash")
local task = require("slipway.task")

local M = {}

M.SLIPWAY = assert(os.getenv("SLIPWAY"), "SLIPWAY is not set (run through tests/run)")

function M.is_root()
  return (fs.read("/proc/self/status") or ""):match("\nUid:%s+%d+%s+0%s") ~= nil
end

-- `slipway sandbox ARGS...` -> { code, stdout, stderr }
function M.sandbox(args, opts)
  local argv = { M.SLIPWAY, "sandbox" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.timeout = opts.timeout or "180s"
  return assert(proc.run(argv, opts))
end

-- `slipway sandbox ARGS...` must be a usage error: exit 2, nothing on
-- stdout, "slipway sandbox: MESSAGE" and the usage on stderr.
function M.usage_case(args, message)
  local r = M.sandbox(args, { timeout = "30s" })
  local same = require("busted").assert.same
  same(2, r.code)
  same("", r.stdout)
  same("slipway sandbox: " .. message .. "\n\nusage: slipway sandbox up",
    r.stderr:sub(1, #message + 44))
end

function M.sh(cmd)
  return assert(proc.run({ "sh", "-c", cmd }, { timeout = "30s" }))
end

function M.up(dir, args)
  local argv = { "up", "--dir", dir, "--json" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = M.sandbox(argv)
  assert(r.code == 0, "sandbox up failed: " .. r.stderr .. r.stdout)
  return json.decode(r.stdout)
end

function M.status(dir)
  local r = M.sandbox { "status", "--dir", dir, "--json" }
  return json.decode(r.stdout), r.code
end

-- down --force when dir exists (a spec's setup and teardown).
function M.down(dir)
  if not fs.exists(dir) then return end
  local r = M.sandbox { "down", "--dir", dir, "--force" }
  assert(r.code == 0, "sandbox down failed: " .. r.stderr)
end

-- What a sandbox directory leaves on the machine: its namespaces, links,
-- mounts and processes (found by the names its directory implies).
function M.leftovers(dir)
  local tag = hash.sha256(dir):sub(1, 6)
  local left = {}
  for _, n in ipairs(fs.list("/run/netns") or {}) do
    if n:find("slipway-" .. tag .. "-", 1, true) == 1 then left[#left + 1] = "netns " .. n end
  end
  for name in (M.sh("ip -o link show").stdout):gmatch("%d+: ([^:@%s]+)") do
    if name:find("slw" .. tag, 1, true) == 1 then left[#left + 1] = "link " .. name end
  end
  for line in (fs.read("/proc/mounts") or ""):gmatch("[^\n]+") do
    local target = line:match("^%S+ (%S+)")
    if target and target:find(dir .. "/", 1, true) == 1 then left[#left + 1] = "mount " .. target end
  end
  for _, name in ipairs(fs.list("/proc") or {}) do
    if name:match("^%d+$") then
      local cmdline = (fs.read("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ")
      local state = (fs.read("/proc/" .. name .. "/stat") or ""):match("%) (%S)")
      if cmdline:find(dir .. "/", 1, true) and state ~= "Z" then left[#left + 1] = "process " .. cmdline end
    end
  end
  table.sort(left)
  return left
end

-- The host's links that a Docker engine makes in the namespace it runs in
-- (docker_gwbridge, vx-* of overlay networks): a sandbox's nodes make
-- theirs in their own namespaces, never here.
function M.engine_links()
  local list = {}
  for name in (M.sh("ip -o link show").stdout):gmatch("%d+: ([^:@%s]+)") do
    if name == "docker_gwbridge" or name:match("^vx%-") then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

-- fn() until it returns a true value (returned), at most `seconds`.
function M.wait_for(what, fn, seconds)
  local deadline = task.now() + (seconds or 60) * 1000
  while true do
    local v = fn()
    if v then return v end
    assert(task.now() < deadline, "timed out waiting for " .. what)
    task.sleep(0.25)
  end
end

-- kill -9 of a node's PID 1 (its dockerd): the node crashes.
function M.crash(node)
  assert(M.sh("kill -9 " .. node.pid).code == 0, "kill -9 " .. node.pid)
  M.wait_for(node.name .. " gone", function() return fs.read("/proc/" .. node.pid .. "/stat") == nil end, 10)
end

return M
