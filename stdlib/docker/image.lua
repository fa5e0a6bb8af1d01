-- slipway.docker.image: build, tag, push, inspect, exists, rm_image.
-- Every function takes an optional `client` option (default: DOCKER_HOST).
--
-- Builds are content-addressed: docker.build hashes exactly what it sends
-- (the context after .dockerignore, file modes and contents but not
-- mtimes, the Dockerfile's path, build args, target, platform, labels)
-- into a content digest and labels the image with it (CONTENT_LABEL).
-- When an image with that label is already in the engine, or every tag
-- is already in its registry with that label (asked over the registry
-- API, nothing pulled), the build is skipped (result.cached); docker.push
-- skips a push when the registry's tag already holds the image.
local client = require("slipway.docker.client")
local registry = require("slipway.docker.registry")
local native = require("slipway._docker")
local json = require("slipway.json")
local fs = require("slipway.fs")
local secret = require("slipway.secret")
local hash = require("slipway.hash")

local M = {}

M.CONTENT_LABEL = "io.slipway.content-digest"
local CONTENT_VERSION = "slipway-build/1"   -- bump when what the digest covers changes

-- Tags a cached build found in their registry (and not in the engine):
-- reference -> the registry's manifest digest, for docker.push.
local in_registry = {}

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
  "labels", "no_cache", "pull", "platform", "on_output", "quiet", "timeout", "client", "network", "auth",
  "force")

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

local function sorted_pairs_text(prefix, t)
  local keys, out = {}, {}
  for k in pairs(t or {}) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do out[#out + 1] = prefix .. k .. "=" .. tostring(t[k]) end
  return out
end

-- The content digest of a build: the context's (tar_context) and every
-- option that changes what the engine builds. Each field is NUL-ended, so
-- no two different builds hash the same text. A secret build argument
-- enters as "***", not its value: the label is readable by whoever can
-- pull the image, and a hash of a short password can be guessed (a rotated
-- secret therefore rebuilds only with force = true).
function M._content_digest(context_digest, dockerfile, opts)
  local fields = { CONTENT_VERSION, "context " .. context_digest, "dockerfile " .. dockerfile,
    "target " .. (opts.target or ""), "platform " .. (opts.platform or "") }
  for _, f in ipairs(sorted_pairs_text("arg ", opts.build_args)) do fields[#fields + 1] = f end
  for _, f in ipairs(sorted_pairs_text("label ", opts.labels)) do fields[#fields + 1] = f end
  return "sha256:" .. hash.sha256(table.concat(fields, "\0") .. "\0")
end

-- A tagged image in the engine labelled with the digest (whatever its
-- tags: a new tag for unchanged content is found too): give it the tags
-- it lacks and return its record, else nil. Untagged (dangling) images
-- do not count: they are what `docker image prune` removes.
local function cached_in_engine(c, fname, digest, tags)
  local list = c:call(fname, "GET", "/images/json", { query = {
    filters = json.encode({ label = { M.CONTENT_LABEL .. "=" .. digest }, dangling = { "false" } }) } }) or {}
  table.sort(list, function(a, b) return (a.Created or 0) > (b.Created or 0) end)
  local img = list[1]
  if not img then return nil end
  local have = {}
  for _, t in ipairs(img.RepoTags ~= json.null and img.RepoTags or {}) do have[t] = true end
  for _, t in ipairs(tags) do
    if not have[t] then M.tag(img.Id, t, { client = c }) end
  end
  return img
end

-- Every tag in its registry with the digest label: { [tag] = manifest
-- digest } and the image ID, else nil. A bare name ("app:dev") is not
-- asked about: it would be Docker Hub's official library/app, which
-- nobody pushes builds to.
local function cached_in_registry(c, digest, tags, opts)
  if #tags == 0 then return nil end
  local found, id = {}, nil
  for _, t in ipairs(tags) do
    if not t:find("/", 1, true) then return nil end
    local img = registry.image(t, { auth = opts.auth, platform = opts.platform, client = c })
    if not img or img.labels[M.CONTENT_LABEL] ~= digest then return nil end
    if id and img.config_digest ~= id then return nil end
    found[t], id = img.digest, img.config_digest
  end
  return found, id
end

-- docker.build{ context = dir, dockerfile = "Dockerfile", tag = "x:1" | tags = {..},
--   build_args = {} (values may be secrets), target =, labels = {}, no_cache = false, pull = false,
--   platform =, network =, on_output = function(line), quiet = false, timeout = "30m",
--   force = false }
-- -> { id = "sha256:...", tags = {...}, output = "all build output",
--      content_digest = "sha256:...", cached = false }
--    cached = true when the build was skipped: cached_in = "engine" or
--    "registry", and for "registry", digests = { [tag] = manifest digest }
--    (the image is not pulled: it stays in the registry).
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
  local sink = output_sink(opts)
  local excludes = M._context_excludes(context, dockerfile)

  -- Skip the build when its result exists: a walk that only hashes.
  -- no_cache and pull ask the engine to do the work again, like force.
  if not (opts.force or opts.no_cache or opts.pull) then
    local walked, err, code = native.tar_context(context, { excludes = excludes })
    if not walked then client.raise(("%s: %s: %s"):format(fname, subject, err), { code = code }) end
    local digest = M._content_digest(walked.digest, dockerfile, opts)
    local img = cached_in_engine(c, fname, digest, tags)
    if img then
      if sink then sink(("%s: cached (%s in the engine)"):format(subject, digest:sub(1, 19))) end
      return { id = img.Id, tags = tags, output = "", cached = true, cached_in = "engine",
        content_digest = digest }
    end
    local digests, id = cached_in_registry(c, digest, tags, opts)
    if digests then
      for t, d in pairs(digests) do in_registry[t] = d end
      if sink then sink(("%s: cached (%s in the registry)"):format(subject, digest:sub(1, 19))) end
      return { id = id, tags = tags, output = "", cached = true, cached_in = "registry",
        digests = digests, content_digest = digest }
    end
  end

  local tarfile = os.tmpname()
  local sent, err, code = native.tar_context(context, { excludes = excludes, out = tarfile })
  if not sent then
    os.remove(tarfile)
    client.raise(("%s: %s: %s"):format(fname, subject, err), { code = code })
  end
  -- the label names what this very tar holds
  local digest = M._content_digest(sent.digest, dockerfile, opts)

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
  local labels = { [M.CONTENT_LABEL] = digest }
  for k, v in pairs(opts.labels or {}) do labels[k] = tostring(v) end
  q.labels = json.encode(labels)

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
  for _, t in ipairs(tags) do in_registry[t] = nil end
  return { id = id, tags = tags, output = table.concat(out), cached = false, content_digest = digest }
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

local push_opts = set("auth", "on_output", "quiet", "timeout", "client", "force")

-- The registry's manifest digest when its tag already holds what a push
-- would send: the engine's image under that name has the config digest
-- the registry's manifest names, or a cached build found it there and the
-- engine has no other image under that name. nil: push.
local function already_pushed(c, image, opts)
  local _, res = c:call("docker.push", "GET", "/images/" .. client.path_escape(image) .. "/json",
    { subject = image, ok = { [404] = true } })
  local info = res.status == 200 and json.decode(res.body) or nil
  if not info then return in_registry[image] end
  local remote = registry.image(image, { auth = opts.auth, client = c, labels = false })
  if remote and remote.config_digest == info.Id then return remote.digest end
  return nil
end

-- docker.push(image, { auth = { username =, password = } | false, force = false })
-- -> "sha256:..." (the digest the registry stored), cached (true when the
-- registry had it already and nothing was sent)
function M.push(image, opts)
  local fname = "docker.push"
  need_string(fname, "image", image)
  opts = check_opts(fname, opts, push_opts)
  local c = opts.client or client.default()
  local repo, tag = M._split_reference(image)
  local sink = output_sink(opts)
  -- the credentials once (a credential helper is a program run per ask):
  -- for the registry's look and the push alike
  local auth = opts.auth
  if auth == nil then auth = client.config_auth(client.registry_of(image)) or false end
  if not opts.force and tag then
    local known = already_pushed(c, image, { auth = auth })
    if known then
      if sink then sink(("%s: cached (the registry has %s)"):format(image, known:sub(1, 19))) end
      return known, true
    end
  end
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
    headers = { ["X-Registry-Auth"] = client.auth_header(image, auth) },
    on_body = on_body, timeout = opts.timeout or "30m", subject = image,
  })
  finish()
  if res.status >= 400 then
    client.raise(("%s: %s: %s"):format(fname, image, failure or ("HTTP " .. res.status)),
      { status = res.status })
  end
  if failure then client.raise(("%s: %s: %s"):format(fname, image, failure)) end
  if not digest then client.raise(("%s: %s: the engine reported no digest"):format(fname, image)) end
  in_registry[image] = nil
  return digest, false
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
