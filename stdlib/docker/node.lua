-- slipway.docker.node: the swarm's nodes.
--
--   node.list{ filters? }                 -> { { id, hostname, role, availability, state, ... } }
--   node.update(id_or_name, { availability = "drain", labels = { zone = "a", old = false } })
--                                         -> the node as it is now (as node.list gives it)
--   node._by_id(c, what)                  -> { [id] = { name, state, availability } }, count:
--                                            for messages that name a task's node ({}, 0
--                                            when the engine cannot say: a worker, a lost
--                                            quorum)
--   node._where(nodes, task)              -> " on node web-2", " on node web-2 (down)" or ""
--   node._lost(nodes, tasks)              -> sorted names of the nodes that are not ready and
--                                            hold one of these tasks, not ended (it was there
--                                            when the node was lost)
local client = require("slipway.docker.client")
local json = require("slipway.json")

local M = {}

local set, need_string = client.set, client.need_string

local AVAILABILITY = { active = true, pause = true, drain = true }

-- The fields a script wants of an engine node record.
local function summary(n)
  local spec, desc, status = n.Spec or {}, n.Description or {}, n.Status or {}
  local manager = n.ManagerStatus ~= json.null and n.ManagerStatus or nil
  return {
    id = n.ID, version = n.Version and n.Version.Index, hostname = desc.Hostname,
    name = spec.Name, role = spec.Role, availability = spec.Availability,
    state = status.State, addr = status.Addr,
    leader = manager ~= nil and manager.Leader == true, manager_reachability = manager and manager.Reachability,
    labels = spec.Labels ~= json.null and spec.Labels or {},
    engine = desc.Engine and desc.Engine.EngineVersion,
  }
end

local list_opts = set("client", "filters")

-- Every node of the swarm, by hostname.
function M.list(opts)
  local fname = "docker.node.list"
  opts = client.check_opts("docker.node.list", opts, list_opts)
  local c = opts.client or client.default()
  local filters = {}
  for k, v in pairs(opts.filters or {}) do filters[k] = type(v) == "table" and v or { v } end
  local q = next(filters) and { filters = json.encode(filters) } or nil
  local out = {}
  for _, n in ipairs(c:call(fname, "GET", "/nodes", { query = q }) or {}) do out[#out + 1] = summary(n) end
  table.sort(out, function(a, b) return (a.hostname or a.id) < (b.hostname or b.id) end)
  return out
end

local update_opts = set("client", "availability", "labels", "role")

-- Change a node's availability, role or labels (labels are merged: a
-- value of false removes that label) with the version it was read at.
function M.update(id, opts)
  local fname = "docker.node.update"
  need_string(fname, "id", id)
  opts = client.check_opts("docker.node.update", opts, update_opts)
  if opts.availability ~= nil and not AVAILABILITY[opts.availability] then
    error(client.where() .. ("%s: availability must be \"active\", \"pause\" or \"drain\", got %s"):format(
      fname, tostring(opts.availability)), 0)
  end
  if opts.role ~= nil and opts.role ~= "worker" and opts.role ~= "manager" then
    error(client.where() .. ("%s: role must be \"worker\" or \"manager\", got %s"):format(fname, tostring(opts.role)), 0)
  end
  if opts.labels ~= nil and type(opts.labels) ~= "table" then
    error(client.where() .. fname .. ": labels must be a table of name = value (false removes)", 0)
  end
  local c = opts.client or client.default()
  local path = "/nodes/" .. client.path_escape(id)
  local node = c:call(fname, "GET", path, { subject = id })
  local spec = node.Spec
  if opts.availability then spec.Availability = opts.availability end
  if opts.role then spec.Role = opts.role end
  if opts.labels then
    local labels = spec.Labels ~= json.null and spec.Labels or {}
    for k, v in pairs(opts.labels) do
      if v == false then labels[k] = nil else labels[k] = tostring(v) end
    end
    spec.Labels = next(labels) and labels or json.object({})
  end
  c:call(fname, "POST", "/nodes/" .. node.ID .. "/update",
    { query = { version = node.Version.Index }, body = spec, subject = id })
  return summary(c:call(fname, "GET", "/nodes/" .. node.ID, { subject = id }))
end

---------------------------------------------------------------- in messages

function M._by_id(c, what)
  local ok, list = pcall(c.call, c, what, "GET", "/nodes", { timeout = "10s" })
  local by, count = {}, 0
  if ok and type(list) == "table" then
    for _, n in ipairs(list) do
      count = count + 1
      by[n.ID] = { name = n.Description and n.Description.Hostname or n.ID:sub(1, 12),
                   state = n.Status and n.Status.State or "unknown",
                   availability = n.Spec and n.Spec.Availability or "active" }
    end
  end
  return by, count
end

function M._where(nodes, t)
  local n = t.NodeID and t.NodeID ~= "" and nodes[t.NodeID]
  if not n then return "" end
  return (" on node %s%s"):format(n.name, n.state ~= "ready" and (" (" .. n.state .. ")") or "")
end

local ENDED = { complete = true, shutdown = true, failed = true, rejected = true, remove = true, orphaned = true }

function M._lost(nodes, tasks)
  local names, seen = {}, {}
  for _, t in ipairs(tasks) do
    local n = t.NodeID and nodes[t.NodeID]
    if n and n.state ~= "ready" and not seen[n.name] and not ENDED[t.Status and t.Status.State or ""] then
      seen[n.name] = true
      names[#names + 1] = n.name
    end
  end
  table.sort(names)
  return names
end

return M
