-- slipway.docker.service: Swarm services over the Engine API.
--
--   service.create(spec, opts)          -> id, warnings
--   service.update(id, spec, opts)      -> warnings     (opts.version required
--                                          unless the current one is fetched)
--   service.inspect(id_or_name, opts)   -> the service (raises when absent)
--   service.find(id_or_name, opts)      -> the service or nil
--   service.list(opts)                  -> { services }  (opts.filters, opts.stack)
--   service.rm(id_or_name, opts)        -> true
--   service.tasks(id_or_name, opts)     -> { tasks }
--   service.logs(id_or_name, opts)      -> { { stream = "stdout", text = "..." } }
--
-- create/update resolve the image like `docker service create` does unless
-- resolve_image = false: a missing tag becomes :latest, and when a
-- registry has the image, the reference is pinned to its digest and the
-- image's platforms go into Placement.Platforms.
local client = require("slipway.docker.client")
local image = require("slipway.docker.image")
local json = require("slipway.json")

local M = {}

local set, need_string = client.set, client.need_string


---------------------------------------------------------------- images

-- The familiar form of a reference with a tag: "nginx" -> "nginx:latest",
-- "docker.io/library/redis:7" -> "redis:7"; digests are kept.
function M._tagged_image(ref)
  if type(ref) ~= "string" or ref == "" or ref:find("[A-Z%s]") then return ref end
  local name, digest = ref:match("^(.-)(@sha256:%x+)$")
  name = name or ref
  local repo, tag = image._split_reference(name)
  repo = repo:gsub("^docker%.io/library/([^/]+)$", "%1"):gsub("^docker%.io/", "")
    :gsub("^index%.docker%.io/library/([^/]+)$", "%1"):gsub("^index%.docker%.io/", "")
    :gsub("^library/([^/]+)$", "%1")
  if digest then return repo .. (tag and (":" .. tag) or "") .. digest end
  return repo .. ":" .. (tag or "latest")
end

-- Ask the engine (which asks the registry) for the digest and platforms.
-- Returns image@digest, platforms; or nil, warning.
function M.resolve_image(c, ref, auth)
  local body, res = c:call("docker.service", "GET", "/distribution/" .. client.path_escape(ref) .. "/json", {
    headers = { ["X-Registry-Auth"] = client.auth_header(ref, auth) },
    ok = { [400] = true, [401] = true, [403] = true, [404] = true, [500] = true },
    timeout = "30s",
  })
  if res.status ~= 200 or type(body) ~= "table" or type(body.Descriptor) ~= "table" then
    return nil, ("image %s could not be accessed on a registry to record its digest"):format(ref)
  end
  local pinned = ref
  if not ref:find("@sha256:", 1, true) then pinned = ref .. "@" .. body.Descriptor.digest end
  local platforms
  for _, p in ipairs(body.Platforms or {}) do
    platforms = platforms or {}
    local arch = p.architecture or p.Architecture or ""
    if arch:lower() == "arm" then arch = "" end
    platforms[#platforms + 1] = { Architecture = arch, OS = p.os or p.OS }
  end
  return pinned, platforms
end

local function prepare_image(c, spec, opts)
  local cs = spec.TaskTemplate and spec.TaskTemplate.ContainerSpec
  if not cs or not cs.Image then return nil end
  cs.Image = M._tagged_image(cs.Image)
  if opts.resolve_image == false then return nil end
  local pinned, platforms = M.resolve_image(c, cs.Image, opts.auth)
  if not pinned then return platforms end   -- the warning
  cs.Image = pinned
  if platforms then
    spec.TaskTemplate.Placement = spec.TaskTemplate.Placement or {}
    spec.TaskTemplate.Placement.Platforms = platforms
  end
  return nil
end

local function auth_headers(spec, opts)
  if opts.auth == nil then return nil end
  local cs = spec.TaskTemplate and spec.TaskTemplate.ContainerSpec
  return { ["X-Registry-Auth"] = client.auth_header(cs and cs.Image or "", opts.auth) }
end

---------------------------------------------------------------- crud

local create_opts = set("auth", "resolve_image", "client")

function M.create(spec, opts)
  local fname = "docker.service.create"
  if type(spec) ~= "table" then error(client.where() .. fname .. ": spec must be a table", 0) end
  opts = client.check_opts(fname, opts, create_opts)
  local c = opts.client or client.default()
  local warning = prepare_image(c, spec, opts)
  local body = c:call(fname, "POST", "/services/create", {
    body = spec, headers = auth_headers(spec, opts), subject = spec.Name,
  })
  local warnings = body.Warnings ~= json.null and body.Warnings or {}
  if warning then warnings[#warnings + 1] = warning end
  return body.ID, warnings
end

local update_opts = set("auth", "resolve_image", "client", "version", "rollback")

-- update(id, spec, { version = n })  -- version: the service's Version.Index
-- the spec was based on (fetched when not given).
function M.update(id, spec, opts)
  local fname = "docker.service.update"
  need_string(fname, "id", id)
  opts = client.check_opts(fname, opts, update_opts)
  local c = opts.client or client.default()
  local version = opts.version
  if not version then version = M.inspect(id, { client = c }).Version.Index end
  local warning
  if spec and opts.rollback == nil then warning = prepare_image(c, spec, opts) end
  local q = { version = version }
  if opts.rollback then q.rollback = opts.rollback end
  local body = c:call(fname, "POST", "/services/" .. client.path_escape(id) .. "/update", {
    query = q, body = spec or json.object({}), headers = spec and auth_headers(spec, opts) or nil,
    subject = (spec and spec.Name) or id,
  })
  local warnings = (type(body) == "table" and body.Warnings ~= json.null and body.Warnings) or {}
  if warning then warnings[#warnings + 1] = warning end
  return warnings
end

local inspect_opts = set("client")

function M.find(id, opts)
  need_string("docker.service.find", "id", id)
  opts = client.check_opts("docker.service.find", opts, inspect_opts)
  local c = opts.client or client.default()
  local body, res = c:call("docker.service.inspect", "GET", "/services/" .. client.path_escape(id),
    { subject = id, ok = { [404] = true } })
  if res.status == 404 then return nil end
  return body
end

function M.inspect(id, opts)
  need_string("docker.service.inspect", "id", id)
  opts = client.check_opts("docker.service.inspect", opts, inspect_opts)
  local c = opts.client or client.default()
  return (c:call("docker.service.inspect", "GET", "/services/" .. client.path_escape(id), { subject = id }))
end

local list_opts = set("client", "filters", "stack")

-- list{ stack = "name" } or list{ filters = { label = { "a=b" }, name = { "x" } } }
function M.list(opts)
  opts = client.check_opts("docker.service.list", opts, list_opts)
  local c = opts.client or client.default()
  local filters = {}
  for k, v in pairs(opts.filters or {}) do filters[k] = type(v) == "table" and v or { v } end
  if opts.stack then
    filters.label = filters.label or {}
    filters.label[#filters.label + 1] = "com.docker.stack.namespace=" .. opts.stack
  end
  local q = next(filters) and { filters = json.encode(filters) } or nil
  local body = c:call("docker.service.list", "GET", "/services", { query = q })
  return body or {}
end

local rm_opts = set("client", "missing_ok")

function M.rm(id, opts)
  need_string("docker.service.rm", "id", id)
  opts = client.check_opts("docker.service.rm", opts, rm_opts)
  local c = opts.client or client.default()
  local _, res = c:call("docker.service.rm", "DELETE", "/services/" .. client.path_escape(id),
    { subject = id, ok = opts.missing_ok and { [404] = true } or nil })
  return res.status ~= 404
end

local tasks_opts = set("client", "desired_state")

function M.tasks(id, opts)
  need_string("docker.service.tasks", "id", id)
  opts = client.check_opts("docker.service.tasks", opts, tasks_opts)
  local c = opts.client or client.default()
  local filters = { service = { id } }
  if opts.desired_state then filters["desired-state"] = { opts.desired_state } end
  local body = c:call("docker.service.tasks", "GET", "/tasks",
    { query = { filters = json.encode(filters) }, subject = id })
  return body or {}
end

local logs_opts = set("client", "tail", "stdout", "stderr", "timestamps", "since")

-- The service's log lines (the engine multiplexes stdout/stderr in 8-byte
-- framed chunks when the service has no TTY).
function M.logs(id, opts)
  need_string("docker.service.logs", "id", id)
  opts = client.check_opts("docker.service.logs", opts, logs_opts)
  local c = opts.client or client.default()
  local q = {
    stdout = opts.stdout ~= false, stderr = opts.stderr ~= false,
    tail = opts.tail and tostring(opts.tail) or "all", timestamps = opts.timestamps and true or nil,
    since = opts.since,
  }
  local body = c:call("docker.service.logs", "GET", "/services/" .. client.path_escape(id) .. "/logs",
    { query = q, subject = id, timeout = "30s" }) or ""
  local out, pos = {}, 1
  local framed = #body >= 8 and (body:byte(1) == 1 or body:byte(1) == 2) and body:sub(2, 4) == "\0\0\0"
  if not framed then
    for l in body:gmatch("[^\n]+") do out[#out + 1] = { stream = "stdout", text = l } end
    return out
  end
  while pos + 7 <= #body do
    local kind, size = body:byte(pos), string.unpack(">I4", body, pos + 4)
    local chunk = body:sub(pos + 8, pos + 7 + size)
    for l in chunk:gmatch("[^\n]+") do
      out[#out + 1] = { stream = kind == 2 and "stderr" or "stdout", text = l }
    end
    pos = pos + 8 + size
  end
  return out
end

return M
