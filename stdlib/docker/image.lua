-- slipway.docker.image: build, tag, push, inspect, exists, rm_image.
-- Every function takes an optional `client` option (default: DOCKER_HOST).
local client = require("slipway.docker.client")
local native = require("slipway._docker")
local json = require("slipway.json")
local fs = require("slipway.fs")
local secret = require("slipway.secret")

local M = {}

local check_opts, set, need_string = client.check_opts, client.set, client.need_string

-- Split "host:5000/a/b:tag@sha256:x" into repository and tag (or digest).
function M._split_reference(ref)
  local name, digest = ref:match("^(.-)@(sha256:%x+)$")
  if name then ref = name end
  local repo, tag = ref:match("^(.+):([%w_][%w_.%-]*)$")
  if repo and not tag:find("/") then return repo, tag, digest end
  return ref, nil, digest
end

-- Where build and push output goes: opts.on_output(line), else the
-- command output sink (client.output_line: the task's output in a
-- pipeline run, stdout otherwise), or nowhere with quiet = true (it is in
-- result.output either way).
local function output_sink(opts)
  if opts.on_output then return opts.on_output end
  if opts.quiet then return nil end
  return client.output_line
end

local function read_file(path)
  return (fs.read(path))
end

local function is_dir(path)
  local st = fs.stat(path, { follow = true })
  return st ~= nil and st.type == "directory"
end

---------------------------------------------------------------- build

local build_opts = set("context", "dockerfile", "tag", "tags", "build_args", "target",
  "labels", "no_cache", "pull", "platform", "on_output", "quiet", "timeout", "client", "network", "auth")

-- The exclude patterns the CLI sends for a context: .dockerignore, with
-- the Dockerfile and .dockerignore themselves always kept.
function M._context_excludes(context, dockerfile)
  local text = read_file(context .. "/.dockerignore")
  local excludes = text and native.ignore_patterns(text) or {}
  if #excludes > 0 then
    if native.ignore_match(excludes, ".dockerignore") then excludes[#excludes + 1] = "!.dockerignore" end
    if native.ignore_match(excludes, dockerfile) then excludes[#excludes + 1] = "!" .. dockerfile end
  end
  return excludes
end

-- docker.build{ context = dir, dockerfile = "Dockerfile", tag = "x:1" | tags = {..},
--   build_args = {} (values may be secrets), target =, labels = {}, no_cache = false, pull = false,
--   platform =, network =, on_output = function(line), quiet = false, timeout = "30m" }
-- -> { id = "sha256:...", tags = {...}, output = "all build output" }
function M.build(opts)
  local fname = "docker.build"
  if type(opts) ~= "table" then error(client.where() .. fname .. ": expects a table of options", 0) end
  check_opts(fname, opts, build_opts)
  need_string(fname, "context", opts.context)
  local c = opts.client or client.default()
  local context = opts.context:gsub("/+$", "")
  if context == "" then context = "/" end
  if not is_dir(context) then
    client.raise(("%s: %s: the build context is not a directory"):format(fname, context))
  end
  local dockerfile = opts.dockerfile or "Dockerfile"
  if dockerfile:sub(1, 1) == "/" or dockerfile:match("^%.%./") then
    client.raise(("%s: dockerfile %s must be a path inside the context %s"):format(fname, dockerfile, context))
  end
  if not read_file(context .. "/" .. dockerfile) then
    client.raise(("%s: %s: no %s in the build context"):format(fname, context, dockerfile))
  end
  local tags = {}
  if opts.tag then tags[#tags + 1] = opts.tag end
  for _, t in ipairs(opts.tags or {}) do tags[#tags + 1] = t end
  local subject = tags[1] or context

  local tarfile = os.tmpname()
  local ok, err, code = native.tar_context(context, {
    excludes = M._context_excludes(context, dockerfile), out = tarfile })
  if not ok then
    os.remove(tarfile)
    client.raise(("%s: %s: %s"):format(fname, subject, err), { code = code })
  end

  local q = { t = tags, dockerfile = dockerfile, rm = true, forcerm = true }
  if opts.no_cache then q.nocache = true end
  if opts.pull then q.pull = true end
  if opts.target then q.target = opts.target end
  if opts.platform then q.platform = opts.platform end
  if opts.network then q.networkmode = opts.network end
  if opts.build_args and next(opts.build_args) then
    -- a Secret is sent as its plain text (and masked in the build's output,
    -- and in any error naming the request)
    local args = {}
    for k, v in pairs(opts.build_args) do args[k] = secret.is_secret(v) and secret.reveal(v) or tostring(v) end
    q.buildargs = json.encode(args)
  end
  if opts.labels and next(opts.labels) then
    local l = {}
    for k, v in pairs(opts.labels) do l[k] = tostring(v) end
    q.labels = json.encode(l)
  end

  local sink = output_sink(opts)
  local out, id, failure = {}, nil, nil
  local on_body, finish = client.json_lines(function(msg)
    if msg.stream then
      out[#out + 1] = msg.stream
      if sink then
        for l in msg.stream:gmatch("[^\n]+") do sink(l) end
      end
    elseif msg.status and sink then
      sink(msg.status .. (msg.progress and (" " .. msg.progress) or ""))
    end
    if type(msg.aux) == "table" and msg.aux.ID then id = msg.aux.ID end
    if type(msg.message) == "string" and not msg.stream then failure = failure or msg.message end
    if msg.error or msg.errorDetail then
      failure = (type(msg.errorDetail) == "table" and msg.errorDetail.message) or msg.error
    end
  end)
  -- Registry credentials for FROM images, all of config.json's auths.
  local headers = { ["X-Registry-Config"] = client.build_auth_header() }
  local pok, perr = pcall(function()
    return c:raw(fname, "POST", "/build", {
      query = q, body_file = tarfile, content_type = "application/x-tar",
      headers = headers, on_body = on_body, timeout = opts.timeout or "30m", subject = subject,
    })
  end)
  os.remove(tarfile)
  if not pok then error(perr, 0) end
  local res = perr
  finish()
  if res.status >= 400 then
    -- on_body took the body: the error object came through it
    local msg = failure or table.concat(out):gsub("%s+$", "")
    client.raise(("%s: %s: %s"):format(fname, subject, msg), { status = res.status })
  end
  if failure then
    client.raise(("%s: %s: %s"):format(fname, subject, tostring(failure):gsub("%s+$", "")))
  end
  if not id then
    local short = table.concat(out):match("Successfully built (%x+)")
    if short then
      local info = c:call(fname, "GET", "/images/" .. short .. "/json", { subject = subject })
      id = info.Id
    end
  end
  return { id = id, tags = tags, output = table.concat(out) }
end

---------------------------------------------------------------- tag, push

local tag_opts = set("client")

-- docker.tag(source, target): give an image another name.
function M.tag(source, target, opts)
  need_string("docker.tag", "source", source)
  need_string("docker.tag", "target", target)
  opts = check_opts("docker.tag", opts, tag_opts)
  local c = opts.client or client.default()
  local repo, tag = M._split_reference(target)
  c:call("docker.tag", "POST", "/images/" .. client.path_escape(source) .. "/tag",
    { query = { repo = repo, tag = tag or "latest" }, subject = source .. " -> " .. target })
  return true
end

local push_opts = set("auth", "on_output", "quiet", "timeout", "client")

-- docker.push(image, { auth = { username =, password = } | false })
-- -> "sha256:..." (the digest the registry stored)
function M.push(image, opts)
  local fname = "docker.push"
  need_string(fname, "image", image)
  opts = check_opts(fname, opts, push_opts)
  local c = opts.client or client.default()
  local repo, tag = M._split_reference(image)
  local sink = output_sink(opts)
  local digest, failure = nil, nil
  local on_body, finish = client.json_lines(function(msg)
    if type(msg.aux) == "table" and msg.aux.Digest then digest = msg.aux.Digest end
    if type(msg.message) == "string" then failure = failure or msg.message end
    if msg.error or msg.errorDetail then
      failure = (type(msg.errorDetail) == "table" and msg.errorDetail.message) or msg.error
    end
    if sink and msg.status and not msg.progressDetail then
      sink((msg.id and (msg.id .. ": ") or "") .. msg.status)
    end
  end)
  local res = c:raw(fname, "POST", "/images/" .. client.path_escape(repo) .. "/push", {
    query = { tag = tag or "latest" },
    headers = { ["X-Registry-Auth"] = client.auth_header(image, opts.auth) },
    on_body = on_body, timeout = opts.timeout or "30m", subject = image,
  })
  finish()
  if res.status >= 400 then
    client.raise(("%s: %s: %s"):format(fname, image, failure or ("HTTP " .. res.status)),
      { status = res.status })
  end
  if failure then client.raise(("%s: %s: %s"):format(fname, image, failure)) end
  if not digest then client.raise(("%s: %s: the engine reported no digest"):format(fname, image)) end
  return digest
end

---------------------------------------------------------------- inspect

local inspect_opts = set("client")

-- docker.inspect(image) -> the engine's image record (raises when absent)
function M.inspect(image, opts)
  need_string("docker.inspect", "image", image)
  opts = check_opts("docker.inspect", opts, inspect_opts)
  local c = opts.client or client.default()
  return (c:call("docker.inspect", "GET", "/images/" .. client.path_escape(image) .. "/json",
    { subject = image }))
end

-- docker.exists(image) -> boolean
function M.exists(image, opts)
  need_string("docker.exists", "image", image)
  opts = check_opts("docker.exists", opts, inspect_opts)
  local c = opts.client or client.default()
  local _, res = c:call("docker.exists", "GET", "/images/" .. client.path_escape(image) .. "/json",
    { subject = image, ok = { [404] = true } })
  return res.status == 200
end

local rm_opts = set("force", "prune", "client", "missing_ok")

-- docker.rm_image(image, { force = false, prune = true, missing_ok = false })
-- -> list of { Untagged = .. } / { Deleted = .. } entries
function M.rm_image(image, opts)
  need_string("docker.rm_image", "image", image)
  opts = check_opts("docker.rm_image", opts, rm_opts)
  local c = opts.client or client.default()
  local body, res = c:call("docker.rm_image", "DELETE", "/images/" .. client.path_escape(image), {
    query = { force = opts.force and true or nil, noprune = opts.prune == false and true or nil },
    subject = image, ok = opts.missing_ok and { [404] = true } or nil,
  })
  if res.status == 404 then return {} end
  return body or {}
end

return M
