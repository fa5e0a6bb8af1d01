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
--                                          (or streamed to opts.on_line)
--   service.scale(id_or_name, n, opts)  -> { id, name, before, replicas, converged }
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

---------------------------------------------------------------- scale

local scale_opts = set("client", "wait", "timeout", "on_progress")

-- scale(name, replicas, { wait = true, timeout = "2m" }): set the
-- replicated service's Mode.Replicated.Replicas (the image stays as it is
-- pinned), then wait until that many tasks run (slipway.docker.converge).
-- Returns { id, name, before, replicas, converged }.
function M.scale(id, replicas, opts)
  local fname = "docker.service.scale"
  need_string(fname, "id", id)
  if math.type(replicas) ~= "integer" or replicas < 0 then
    error(client.where() .. ("%s: replicas must be a non-negative integer, got %s"):format(fname, tostring(replicas)), 0)
  end
  opts = client.check_opts("docker.service.scale", opts, scale_opts)
  local timeout_ms, err = require("slipway.duration").parse(opts.timeout or "2m")
  if not timeout_ms then error(client.where() .. fname .. ": timeout: " .. err, 0) end
  local c = opts.client or client.default()
  local svc = c:call(fname, "GET", "/services/" .. client.path_escape(id), { subject = id })
  local spec = svc.Spec
  if type(spec.Mode) ~= "table" or type(spec.Mode.Replicated) ~= "table" then
    client.raise(("%s: %s: only a replicated service can be scaled (this one is %s)"):format(
      fname, id, next(spec.Mode or {}) or "of no mode"))
  end
  local before = spec.Mode.Replicated.Replicas or 1
  spec.Mode.Replicated.Replicas = replicas
  c:call(fname, "POST", "/services/" .. svc.ID .. "/update",
    { query = { version = svc.Version.Index }, body = spec, subject = spec.Name })
  local result = { id = svc.ID, name = spec.Name, before = before, replicas = replicas, converged = false }
  if opts.wait == false then return result end
  local converge = require("slipway.docker.converge")
  local ok, reasons, why = converge.wait(c, { { name = spec.Name, id = svc.ID } }, timeout_ms, 250,
    opts.on_progress or function() end)
  if not ok then
    client.raise(("%s: %s: %s%s"):format(fname, spec.Name, why == "timeout" and ("not converged in %s: "):format(
      opts.timeout or "2m") or "", reasons[spec.Name] or "failed"))
  end
  result.converged = true
  return result
end

---------------------------------------------------------------- logs

M.MAX_LOG_LINE = 64 * 1024      -- a longer line comes in pieces of this size
M.MAX_LOG_FRAME = 1024 * 1024   -- a bigger frame means a broken or hostile stream
M.MAX_LOG_LINES = 10000         -- lines kept when logs() returns them

local STOP = setmetatable({}, { __tostring = function() return "docker.service.logs: stopped" end })

-- A body handler for the engine's log stream: frames of an 8-byte header
-- (stream 1 stdout / 2 stderr, 3 zero bytes, big-endian size) and the
-- payload, or plain text when the service has a TTY. on_line(text,
-- stream) gets each line without its newline; returns on_body, finish().
function M._log_lines(on_line)
  local head, framed = "", nil   -- bytes not yet parsed; nil until the first 8 bytes decide
  local partial = { stdout = "", stderr = "" }
  local max = M.MAX_LOG_LINE
  local function text(stream, s)
    local buf, pos = partial[stream] .. s, 1
    while true do
      local nl = buf:find("\n", pos, true)
      if not nl then break end
      while nl - pos > max do
        on_line(buf:sub(pos, pos + max - 1), stream)
        pos = pos + max
      end
      on_line(buf:sub(pos, nl - 1), stream)
      pos = nl + 1
    end
    while #buf - pos + 1 > max do
      on_line(buf:sub(pos, pos + max - 1), stream)
      pos = pos + max
    end
    partial[stream] = buf:sub(pos)
  end
  local function on_body(chunk)
    if framed == false then return text("stdout", chunk) end
    head = head .. chunk
    if framed == nil then
      if #head < 8 then return end
      local kind = head:byte(1)
      framed = kind <= 2 and head:sub(2, 4) == "\0\0\0"
      if not framed then
        local all = head
        head = ""
        return text("stdout", all)
      end
    end
    local pos = 1
    while #head - pos + 1 >= 8 do
      local kind, size = head:byte(pos), string.unpack(">I4", head, pos + 4)
      if size > M.MAX_LOG_FRAME then
        client.raise(("docker.service.logs: the engine sent a frame of %d bytes (at most %d)"):format(size, M.MAX_LOG_FRAME))
      end
      if #head - pos + 1 < 8 + size then break end
      text(kind == 2 and "stderr" or "stdout", head:sub(pos + 8, pos + 7 + size))
      pos = pos + 8 + size
    end
    head = head:sub(pos)
  end
  local function finish()
    for _, stream in ipairs({ "stdout", "stderr" }) do
      if partial[stream] ~= "" then
        local last = partial[stream]
        partial[stream] = ""
        on_line(last, stream)
      end
    end
  end
  return on_body, finish
end

-- The engine's since: Unix seconds, given as such or as a duration ago
-- ("10m", like the CLI's --since 10m).
function M._since(fname, since)
  if since == nil then return nil end
  if type(since) == "number" then return tostring(since) end
  if type(since) == "string" and since:match("^%d+%.?%d*$") then return since end
  local ms = type(since) == "string" and require("slipway.duration").parse(since)
  if not ms then
    error(client.where() .. ("%s: since must be Unix seconds or a duration such as \"10m\", got %s"):format(
      fname, tostring(since)), 0)
  end
  return tostring(os.time() - ms // 1000)
end

local logs_opts = set("client", "tail", "stdout", "stderr", "timestamps", "since", "follow", "on_line",
  "max_lines", "timeout")

-- The service's log lines from every task, streamed: opts.on_line(text,
-- stream) gets each as it arrives (return false to stop), else they are
-- returned as { { stream = "stdout", text = "..." } }. follow = true keeps
-- reading until on_line returns false, max_lines lines came, the timeout
-- (default none when following, else "30s") or the service ends.
function M.logs(id, opts)
  local fname = "docker.service.logs"
  need_string(fname, "id", id)
  opts = client.check_opts("docker.service.logs", opts, logs_opts)
  if opts.on_line ~= nil and type(opts.on_line) ~= "function" then
    error(client.where() .. fname .. ": on_line must be a function", 0)
  end
  if opts.tail ~= nil and (math.type(opts.tail) ~= "integer" or opts.tail < 0) then
    error(client.where() .. fname .. ": tail must be a non-negative integer", 0)
  end
  local max_lines = opts.max_lines or (opts.on_line == nil and M.MAX_LOG_LINES or math.huge)
  if type(max_lines) ~= "number" or max_lines < 1 then
    error(client.where() .. fname .. ": max_lines must be a positive integer", 0)
  end
  local c = opts.client or client.default()
  -- An absent service answers the logs request with a JSON error body,
  -- which a stream handler would take for log text: ask first.
  c:call(fname, "GET", "/services/" .. client.path_escape(id), { subject = id })
  local out, count = {}, 0
  local on_line = opts.on_line or function(text, stream)
    out[#out + 1] = { stream = stream, text = text }
  end
  local on_body, finish = M._log_lines(function(text, stream)
    count = count + 1
    if on_line(text, stream) == false or count >= max_lines then error(STOP, 0) end
  end)
  local q = {
    stdout = opts.stdout ~= false, stderr = opts.stderr ~= false,
    tail = opts.tail and tostring(opts.tail) or "all", timestamps = opts.timestamps and true or nil,
    since = M._since(fname, opts.since), follow = opts.follow and true or nil,
  }
  local ok, res = pcall(c.raw, c, fname, "GET", "/services/" .. client.path_escape(id) .. "/logs",
    { query = q, subject = id, on_body = on_body, timeout = opts.timeout or (opts.follow and 0 or "30s") })
  if ok and res.status >= 400 then
    client.raise(("%s: %s: HTTP %d"):format(fname, id, res.status))
  end
  if ok then ok, res = pcall(finish) end
  if not ok and res ~= STOP then error(res, 0) end
  if opts.on_line then return count end
  return out
end

return M
