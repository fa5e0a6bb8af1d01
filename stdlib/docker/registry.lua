-- slipway.docker.registry: what a registry holds under a tag, asked over
-- the Registry HTTP API v2 (the distribution spec) without pulling:
--
--   registry.image(ref, opts) -> { digest, config_digest, labels } | nil, why
--
-- digest is the manifest's (what `docker push` reports), config_digest the
-- image config's (the engine's image ID), labels the config's Labels. A
-- manifest list / OCI index is resolved to the entry of the platform
-- (opts.platform "os/arch[/variant]", else the engine's). Failures are
-- answers (nil and why), never errors: callers use this to skip work, and
-- an unreachable registry only means the work is done.
--
-- Transport: https, except for registries the engine treats as insecure
-- (loopback addresses, and its insecure-registries from /info), which are
-- tried over https without verification and then over plain http, as the
-- engine does; the scheme that answered is remembered per registry.
-- Credentials: opts.auth (a table: username/password or identitytoken;
-- false: none), else ~/.docker/config.json's, for Basic auth or the
-- Bearer token flow (WWW-Authenticate realm/service/scope).
local client = require("slipway.docker.client")
local json = require("slipway.json")
local base64 = require("slipway.base64")
local hash = require("slipway.hash")

local M = {}

local TIMEOUT = "10s"
local MAX_BODY = 4 * 1024 * 1024     -- a manifest or an image config

M.MANIFEST_TYPES = table.concat({
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
}, ", ")

local LIST_TYPES = {
  ["application/vnd.docker.distribution.manifest.list.v2+json"] = true,
  ["application/vnd.oci.image.index.v1+json"] = true,
}

-- "host:5000/a/b:tag" -> { registry = "host:5000", api = "host:5000",
-- name = "a/b", tag = "tag" }; Docker Hub names get library/ and the API
-- host registry-1.docker.io. nil for a reference without a tag or with a
-- digest (nothing to look up by tag).
function M.reference(ref)
  if type(ref) ~= "string" or ref:find("@", 1, true) then return nil end
  local repo, tag = ref:match("^(.+):([%w_][%w_.%-]*)$")
  if not repo or tag:find("/") then return nil end
  local registry = client.registry_of(repo)
  local name = repo
  if registry ~= "docker.io" or repo:match("^docker%.io/") then name = repo:gsub("^[^/]+/", "", 1) end
  local api = registry
  if registry == "docker.io" then
    api = "registry-1.docker.io"
    if not name:find("/") then name = "library/" .. name end
  end
  return { registry = registry, api = api, name = name, tag = tag }
end

---------------------------------------------------------------- transport

local schemes = {}        -- api host -> { scheme, verify } that answered
local tokens = {}         -- api host .. " " .. scope -> bearer token
local insecure_of = setmetatable({}, { __mode = "k" })   -- engine client -> { host = true }

local function loopback(host)
  local h = host:gsub(":%d+$", ""):gsub("^%[(.*)%]$", "%1")
  return h == "localhost" or h == "::1" or h:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end

local function in_cidr(ip, cidr)
  local base, bits = cidr:match("^([%d.]+)/(%d+)$")
  local n, b = ip and ipv4(ip), base and ipv4(base)
  if not n or not b then return false end
  local size = 2 ^ (32 - tonumber(bits))
  return n // size == b // size
end

-- Does the engine behind c treat this registry as insecure (its
-- insecure-registries setting)? Asked once per client; false when the
-- engine cannot be asked.
local function engine_says_insecure(c, registry)
  if not c then return false end
  local known = insecure_of[c]
  if not known then
    known = { configs = {}, cidrs = {} }
    local ok, info = pcall(c.call, c, "docker.registry", "GET", "/info", { timeout = "5s" })
    local rc = ok and type(info) == "table" and type(info.RegistryConfig) == "table" and info.RegistryConfig or {}
    for name, conf in pairs(type(rc.IndexConfigs) == "table" and rc.IndexConfigs or {}) do
      if type(conf) == "table" and conf.Secure == false then known.configs[name] = true end
    end
    for _, cidr in ipairs(type(rc.InsecureRegistryCIDRs) == "table" and rc.InsecureRegistryCIDRs or {}) do
      known.cidrs[#known.cidrs + 1] = cidr
    end
    insecure_of[c] = known
  end
  if known.configs[registry] then return true end
  local host = registry:gsub(":%d+$", "")
  for _, cidr in ipairs(known.cidrs) do
    if in_cidr(host, cidr) then return true end
  end
  return false
end

local function basic(creds)
  if creds and creds.username then
    return "Basic " .. base64.encode(creds.username .. ":" .. (creds.password or ""))
  end
end

-- The parameters of a WWW-Authenticate challenge: scheme, { key = value }.
function M._challenge(header)
  if type(header) ~= "string" then return nil end
  local scheme, rest = header:match("^%s*(%a+)%s*(.*)$")
  if not scheme then return nil end
  local params = {}
  for k, v in rest:gmatch('([%w_]+)%s*=%s*"([^"]*)"') do params[k:lower()] = v end
  return scheme:lower(), params
end

-- A bearer token for scope from the challenge's realm.
local function fetch_token(params, scope, creds)
  local http = require("slipway.http")
  if not params.realm then return nil, "the registry asked for a token without a realm" end
  local q = {}
  if params.service then q[#q + 1] = "service=" .. client.url_escape(params.service) end
  q[#q + 1] = "scope=" .. client.url_escape(scope)
  if creds and creds.identitytoken then
    -- an identity token is a refresh token for the OAuth2 endpoint
    local body = ("grant_type=refresh_token&refresh_token=%s&client_id=slipway&scope=%s%s"):format(
      client.url_escape(creds.identitytoken), client.url_escape(scope),
      params.service and ("&service=" .. client.url_escape(params.service)) or "")
    local res = http.request({ url = params.realm, method = "POST", body = body, timeout = TIMEOUT,
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, max_body = MAX_BODY })
    if res and res.status == 200 then
      local ok, doc = pcall(json.decode, res.body)
      if ok and type(doc) == "table" and (doc.access_token or doc.token) then return doc.access_token or doc.token end
    end
  end
  local url = params.realm .. (params.realm:find("?", 1, true) and "&" or "?") .. table.concat(q, "&")
  local res, err = http.request({ url = url, timeout = TIMEOUT, max_body = MAX_BODY,
    headers = { Authorization = basic(creds) }, follow_redirects = true })
  if not res then return nil, err end
  if res.status ~= 200 then return nil, ("token request: HTTP %d"):format(res.status) end
  local ok, doc = pcall(json.decode, res.body)
  local token = ok and type(doc) == "table" and (doc.token or doc.access_token)
  if type(token) ~= "string" then return nil, "token request: no token in the answer" end
  return token
end

-- GET path on the registry of ref (r: M.reference) with its auth;
-- returns the http response or nil, why.
local function get(r, path, accept, state)
  local http = require("slipway.http")
  -- { scheme, verify TLS } to try, in order
  local order
  if schemes[r.api] then
    order = { schemes[r.api] }
  elseif loopback(r.api) then
    order = { { "http" }, { "https", false } }
  elseif engine_says_insecure(state.client, r.registry) then
    order = { { "https", false }, { "http" } }
  else
    order = { { "https", true } }
  end
  local scope = "repository:" .. r.name .. ":pull"
  local last
  for _, how in ipairs(order) do
    local url = how[1] .. "://" .. r.api .. path
    local headers = { Accept = accept }
    local token = tokens[r.api .. " " .. scope]
    if token then headers.Authorization = "Bearer " .. token end
    local req = { url = url, headers = headers, timeout = TIMEOUT, connect_timeout = "3s",
      max_body = MAX_BODY, follow_redirects = true }
    if how[1] == "https" then req.tls_verify = how[2] end
    local res, err = http.request(req)
    if res and res.status == 401 then
      local kind, params = M._challenge(res.headers["www-authenticate"])
      if kind == "bearer" then
        local t, terr = fetch_token(params, params.scope or scope, state.creds)
        if not t then return nil, terr end
        tokens[r.api .. " " .. scope] = t
        headers.Authorization = "Bearer " .. t
        res, err = http.request(req)
      elseif kind == "basic" and basic(state.creds) then
        headers.Authorization = basic(state.creds)
        res, err = http.request(req)
      end
    end
    -- a plain-http request to a TLS port gets a 400: try the next way
    if res and not (how[1] == "http" and res.status == 400 and #order > 1) then
      schemes[r.api] = how
      return res
    end
    last = err or ("HTTP " .. res.status)
  end
  return nil, last
end

---------------------------------------------------------------- image

local function platform_of(opts)
  local os_name, arch, variant
  if type(opts.platform) == "string" then
    os_name, arch, variant = opts.platform:match("^([^/]+)/([^/]+)/?(.*)$")
  end
  if not os_name and opts.client and opts.client.server then
    os_name, arch = opts.client.server.Os, opts.client.server.Arch
  end
  return os_name or "linux", arch or "amd64", variant ~= "" and variant or nil
end

local function decode(res, what)
  if res.status ~= 200 then
    local msg = ("%s: HTTP %d"):format(what, res.status)
    return nil, msg
  end
  local ok, doc = pcall(json.decode, res.body or "")
  if not ok or type(doc) ~= "table" then return nil, what .. ": not JSON" end
  return doc
end

-- registry.image(ref, { auth, platform, client }) -> { digest,
-- config_digest, labels } or nil, why.
function M.image(ref, opts)
  opts = opts or {}
  local r = M.reference(ref)
  if not r then return nil, "not a tagged reference" end
  local creds = nil
  if type(opts.auth) == "table" then creds = opts.auth
  elseif opts.auth ~= false then creds = client.config_auth(r.registry) end
  local state = { client = opts.client, creds = creds }
  local base = "/v2/" .. r.name
  local res, err = get(r, base .. "/manifests/" .. client.url_escape(r.tag), M.MANIFEST_TYPES, state)
  if not res then return nil, err end
  if res.status == 404 then return nil, "not in the registry" end
  local manifest, why = decode(res, "manifest")
  if not manifest then return nil, why end
  local digest = res.headers["docker-content-digest"] or ("sha256:" .. hash.sha256(res.body))
  local media = manifest.mediaType or res.headers["content-type"] or ""
  if LIST_TYPES[media] or type(manifest.manifests) == "table" then
    local want_os, want_arch, want_variant = platform_of(opts)
    local pick
    for _, m in ipairs(manifest.manifests or {}) do
      local p = type(m.platform) == "table" and m.platform or {}
      if p.os == want_os and p.architecture == want_arch
          and (want_variant == nil or p.variant == want_variant) then
        pick = m
        break
      end
    end
    if not pick then return nil, ("no manifest for %s/%s in the list"):format(want_os, want_arch) end
    res, err = get(r, base .. "/manifests/" .. pick.digest, M.MANIFEST_TYPES, state)
    if not res then return nil, err end
    manifest, why = decode(res, "manifest")
    if not manifest then return nil, why end
    digest = pick.digest
  end
  local config = type(manifest.config) == "table" and manifest.config.digest
  if type(config) ~= "string" then return nil, "the manifest names no image config" end
  local out = { digest = digest, config_digest = config }
  if opts.labels == false then return out end
  res, err = get(r, base .. "/blobs/" .. config, "application/json, */*", state)
  if not res then return nil, err end
  local doc
  doc, why = decode(res, "image config")
  if not doc then return nil, why end
  if "sha256:" .. hash.sha256(res.body) ~= config then return nil, "the image config does not match its digest" end
  local labels = type(doc.config) == "table" and doc.config.Labels
  out.labels = type(labels) == "table" and labels or {}
  return out
end

return M
