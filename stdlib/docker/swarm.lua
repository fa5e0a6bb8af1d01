-- slipway.docker.swarm: the swarm-wide objects a stack needs.
--
--   swarm.ensure_manager(opts)                 raises unless the engine is a manager
--   swarm.network(name, body, opts)           -> id, created   (create if absent)
--   swarm.secret(name, data, opts)            -> { id, name, created }
--   swarm.config(name, data, opts)            -> { id, name, created }
--   swarm.cleanup(kind, opts)                 -> { removed names }
--
-- Secrets and configs are immutable in Swarm, so they are named by content:
-- "<name>_<first 12 hex of sha256(data)>". A rotated value becomes a new
-- object, the services move to it on the next deploy, and cleanup removes
-- the old versions no service uses any more. Labels record the logical
-- name and the hash; secret values are never logged or returned, and each
-- is registered with the masker (slipway.secret) so that nothing slipway
-- writes shows it. data may be a Secret.
local client = require("slipway.docker.client")
local secret = require("slipway.secret")
local json = require("slipway.json")
local base64 = require("slipway.base64")
local hash = require("slipway.hash")

local M = {}

M.NAME_LABEL = "io.slipway.name"
M.HASH_LABEL = "io.slipway.content-hash"

local set = client.set

local function cl(opts) return (opts and opts.client) or client.default() end

-- The engine's swarm state; raises with the CLI's advice when the engine
-- is not a manager.
function M.ensure_manager(opts)
  opts = client.check_opts("docker.swarm.ensure_manager", opts, set("client", "what"))
  local what = opts.what or "docker.swarm"
  local info = cl(opts):call(what, "GET", "/info")
  local sw = info.Swarm or {}
  if not sw.ControlAvailable then
    client.raise(("%s: this node is not a swarm manager (state %s). Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again")
      :format(what, tostring(sw.LocalNodeState or "inactive")))
  end
  return info
end

local function list_filtered(c, what, path, filters)
  return c:call(what, "GET", path, { query = { filters = json.encode(filters) } }) or {}
end

---------------------------------------------------------------- networks

-- Create the network unless one with this name exists. body is the
-- /networks/create body without Name. Returns id, created.
function M.network(name, body, opts)
  opts = client.check_opts("docker.swarm.network", opts, set("client"))
  local c = cl(opts)
  for _, n in ipairs(list_filtered(c, "docker.swarm.network", "/networks", { name = { name } })) do
    if n.Name == name then return n.Id, false end
  end
  local req = { Name = name, CheckDuplicate = true }
  for k, v in pairs(body or {}) do if k ~= "Name" then req[k] = v end end
  req.Driver = req.Driver or "overlay"
  local res = c:call("docker.swarm.network", "POST", "/networks/create", { body = req, subject = name })
  return res.Id, true
end

-- Check that an external network exists and is swarm-scoped.
function M._check_external_network(name, opts)
  opts = client.check_opts("docker.swarm._check_external_network", opts, set("client", "what"))
  if name == "host" or name == "bridge" or name == "none" or name == "default" or name:match("^container:") then
    return true
  end
  local what = opts.what or "docker.swarm"
  local body, res = cl(opts):call(what, "GET", "/networks/" .. client.path_escape(name),
    { ok = { [404] = true } })
  if res.status == 404 then
    client.raise(("%s: network %q is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"):format(what, name))
  end
  if body.Scope ~= "swarm" then
    client.raise(("%s: network %q is declared as external, but it is not in the right scope: %q instead of \"swarm\""):format(what, name, tostring(body.Scope)))
  end
  return true
end

---------------------------------------------------------------- secrets, configs

local function content_name(name, data)
  local h = hash.sha256(data)
  return name .. "_" .. h:sub(1, 12), h
end

local object_opts = set("client", "labels", "driver", "template_driver")

-- A secret's value is masked in everything slipway writes from now on
-- (slipway.secret); one too short to mask is said so.
local function register_secret(fname, name, data)
  if #data >= secret.MIN_LENGTH then
    secret.new(data, name)
  elseif #data > 0 then
    require("slipway.context").warn(("%s: %s: the value is shorter than %d characters, so it cannot be "
      .. "masked in output"):format(fname, name, secret.MIN_LENGTH))
  end
end

local function ensure_object(kind, name, data, opts)
  local fname = "docker.swarm." .. kind
  if type(name) ~= "string" or name == "" then
    error(client.where() .. fname .. ": name must be a non-empty string", 0)
  end
  if secret.is_secret(data) then data = secret.reveal(data) end
  if kind == "secret" and type(data) == "string" then register_secret(fname, name, data) end
  if type(data) ~= "string" and not (kind == "secret" and opts and opts.driver) then
    error(client.where() .. fname .. ": data must be a string", 0)
  end
  opts = client.check_opts(fname, opts, object_opts)
  local c = cl(opts)
  local full, h = content_name(name, data or "")
  local path = "/" .. kind .. "s"
  for _, o in ipairs(list_filtered(c, fname, path, { name = { full } })) do
    if o.Spec and o.Spec.Name == full then return { id = o.ID, name = full, created = false } end
  end
  local labels = {}
  for k, v in pairs(opts.labels or {}) do labels[k] = v end
  labels[M.NAME_LABEL] = name
  labels[M.HASH_LABEL] = h
  local spec = { Name = full, Labels = labels, Data = base64.encode(data or "") }
  if opts.driver then spec.Driver = opts.driver end
  if opts.template_driver then spec.Templating = { Name = opts.template_driver } end
  local body, res = c:call(fname, "POST", path .. "/create", { body = spec, subject = full, ok = { [409] = true } })
  if res.status == 409 then   -- created meanwhile by a concurrent deploy
    for _, o in ipairs(list_filtered(c, fname, path, { name = { full } })) do
      if o.Spec and o.Spec.Name == full then return { id = o.ID, name = full, created = false } end
    end
    client.raise(("%s: %s: %s"):format(fname, full, client.engine_message(res)))
  end
  return { id = body.ID, name = full, created = true }
end

function M.secret(name, data, opts) return ensure_object("secret", name, data, opts) end
function M.config(name, data, opts) return ensure_object("config", name, data, opts) end

-- Remove the secrets or configs labelled with `labels` (e.g. the stack's
-- namespace) that no service references, except those named in keep.
-- Returns the names removed.
function M.cleanup(kind, opts)
  opts = client.check_opts("docker.swarm.cleanup", opts, set("client", "labels", "keep"))
  local c = cl(opts)
  local fname = "docker.swarm.cleanup"
  local path = "/" .. kind .. "s"
  local filters = { label = { M.HASH_LABEL } }
  for k, v in pairs(opts.labels or {}) do filters.label[#filters.label + 1] = k .. "=" .. v end
  local used = {}
  for _, s in ipairs(c:call(fname, "GET", "/services") or {}) do
    local cs = s.Spec and s.Spec.TaskTemplate and s.Spec.TaskTemplate.ContainerSpec or {}
    for _, r in ipairs((kind == "secret" and cs.Secrets or cs.Configs) or {}) do
      used[r.SecretID or r.ConfigID] = true
    end
  end
  local keep = {}
  for _, n in ipairs(opts.keep or {}) do keep[n] = true end
  local removed = {}
  for _, o in ipairs(list_filtered(c, fname, path, filters)) do
    if not used[o.ID] and not keep[o.Spec.Name] then
      local _, res = c:call(fname, "DELETE", path .. "/" .. o.ID,
        { ok = { [400] = true, [404] = true, [409] = true, [500] = true } })
      if res.status < 300 then removed[#removed + 1] = o.Spec.Name end
    end
  end
  table.sort(removed)
  return removed
end

return M
