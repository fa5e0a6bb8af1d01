-- slipway.docker.housekeeping: what is in the engine and what a cleanup
-- removes (the docker.images and docker.prune of slipway.docker).
--
--   images{ filters?, all? }  -> { { id, tags, digests, created, size, labels, containers } }
--   prune{ images = true, dangling_only = true, until?, label?, containers = true }
--                             -> { images_deleted, images_untagged, containers_deleted, space_reclaimed }
local client = require("slipway.docker.client")
local json = require("slipway.json")

local M = {}

local set = client.set

-- The engine's filters query: { label = "a=b" } or { label = { "a", "b=c" } }
-- -> '{"label":["a","b=c"]}'; nil when there are none.
local function filters_query(fname, filters)
  if filters == nil then return nil end
  if type(filters) ~= "table" then error(client.where() .. fname .. ": filters must be a table", 0) end
  local out = {}
  for k, v in pairs(filters) do
    local list = type(v) == "table" and v or { v }
    for i, item in ipairs(list) do list[i] = tostring(item) end
    out[k] = list
  end
  if next(out) == nil then return nil end
  return json.encode(out)
end

local function list_of(v)
  if v == nil or v == json.null then return {} end
  return v
end

local images_opts = set("client", "filters", "all")

-- The engine's images, newest first, as `docker image ls` lists them.
function M.images(opts)
  local fname = "docker.images"
  opts = client.check_opts("docker.images", opts, images_opts)
  local c = opts.client or client.default()
  local q = { filters = filters_query(fname, opts.filters), all = opts.all and true or nil }
  local body = c:call(fname, "GET", "/images/json", { query = q }) or {}
  local out = {}
  for _, img in ipairs(body) do
    local tags = {}
    for _, t in ipairs(list_of(img.RepoTags)) do
      if t ~= "<none>:<none>" then tags[#tags + 1] = t end
    end
    out[#out + 1] = {
      id = img.Id, tags = tags, digests = list_of(img.RepoDigests), created = img.Created,
      size = img.Size, labels = img.Labels ~= json.null and img.Labels or {},
      containers = img.Containers,
    }
  end
  table.sort(out, function(a, b)
    if (a.created or 0) ~= (b.created or 0) then return (a.created or 0) > (b.created or 0) end
    return a.id < b.id
  end)
  return out
end

local prune_opts = set("client", "images", "containers", "dangling_only", "until", "label", "timeout")

-- Remove stopped containers (Swarm's finished task containers among them)
-- and unused images: dangling ones only unless dangling_only = false.
-- until ("24h", a timestamp) and label ("key" / "key=value", or a list)
-- narrow both.
function M.prune(opts)
  local fname = "docker.prune"
  opts = client.check_opts("docker.prune", opts, prune_opts)
  local c = opts.client or client.default()
  local common = {}
  if opts["until"] ~= nil then common["until"] = { tostring(opts["until"]) } end
  if opts.label ~= nil then
    local labels = type(opts.label) == "table" and opts.label or { opts.label }
    for _, l in ipairs(labels) do
      if type(l) ~= "string" or l == "" then
        error(client.where() .. fname .. ": label must be a string or a list of strings", 0)
      end
    end
    common.label = labels
  end
  local result = { images_deleted = {}, images_untagged = {}, containers_deleted = {}, space_reclaimed = 0 }
  local timeout = opts.timeout or "5m"
  -- containers first: an image a stopped container held is unused after
  if opts.containers ~= false then
    local body = c:call(fname, "POST", "/containers/prune",
      { query = { filters = filters_query(fname, common) }, subject = "containers", timeout = timeout }) or {}
    result.containers_deleted = list_of(body.ContainersDeleted)
    result.space_reclaimed = result.space_reclaimed + (body.SpaceReclaimed or 0)
  end
  if opts.images ~= false then
    local f = {}
    for k, v in pairs(common) do f[k] = v end
    f.dangling = { opts.dangling_only == false and "false" or "true" }
    local body = c:call(fname, "POST", "/images/prune",
      { query = { filters = filters_query(fname, f) }, subject = "images", timeout = timeout }) or {}
    for _, entry in ipairs(list_of(body.ImagesDeleted)) do
      if entry.Deleted then result.images_deleted[#result.images_deleted + 1] = entry.Deleted end
      if entry.Untagged then result.images_untagged[#result.images_untagged + 1] = entry.Untagged end
    end
    result.space_reclaimed = result.space_reclaimed + (body.SpaceReclaimed or 0)
  end
  return result
end

return M
