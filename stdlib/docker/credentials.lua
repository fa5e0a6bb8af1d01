-- slipway.docker.credentials: registry credentials the way the Docker CLI
-- finds them in config.json ($DOCKER_CONFIG or ~/.docker):
--
--   "credHelpers": { "registry.example.com": "ecr-login" }   per registry
--   "credsStore": "pass"                                       the default
--   "auths": { "registry.example.com": { "auth": base64(user:pass) } }
--
-- A registry with a helper (its own in credHelpers, else credsStore) gets
-- what `docker-credential-<helper> get` prints for it, and nothing from
-- "auths" (as the CLI: the helper's answer replaces the file's, and "not
-- found" means no credentials). The server address given to the helper on
-- stdin is the CLI's: "https://index.docker.io/v1/" for Docker Hub, the
-- registry's host[:port] otherwise. A Username of "<token>" makes the
-- Secret an identity token.
--
-- Passwords and tokens come back as slipway.secret values: they print as
-- *** and the output masker hides them wherever slipway writes. A helper
-- that cannot be run, or fails, is a warning and no credentials (the CLI
-- goes on without them as well); its output is never shown.
local base64 = require("slipway.base64")
local json = require("slipway.json")
local secret = require("slipway.secret")
local contexts = require("slipway.docker.contexts")

local M = {}

M.HUB_SERVER = "https://index.docker.io/v1/"
M.HELPER_TIMEOUT = "30s"
local TOKEN_USERNAME = "<token>"

-- The key the CLI looks a registry up by (and hands to helpers).
function M.server_key(registry)
  if registry == "docker.io" or registry == "index.docker.io" or registry == "registry-1.docker.io" then
    return M.HUB_SERVER
  end
  return registry
end

-- "https://host:port/v1/" -> "host:port", as the CLI compares old keys.
local function hostname_of(key)
  local stripped = key:gsub("^%a[%w+.-]*://", "")
  return (stripped:gsub("/.*$", ""))
end

-- A value worth protecting as a Secret (too short ones cannot be masked).
local function protect(v, name)
  if type(v) ~= "string" or v == "" then return nil end
  if #v >= 4 then return secret.new(v, name) end
  return v
end

local function warn(msg)
  require("slipway.context").warn("docker: " .. msg)
end

---------------------------------------------------------------- helpers

-- Run docker-credential-<helper> <action> with input on stdin. Returns the
-- result table, or nil and why (without the helper's output, which may
-- hold a secret).
local function run_helper(helper, action, input)
  local proc = require("slipway.proc")
  local program = "docker-credential-" .. helper
  local r, err, code = proc.run({ program, action }, { stdin = input, timeout = M.HELPER_TIMEOUT,
    max_output = 1024 * 1024 })
  if not r then
    if code == "ENOENT" then return nil, program .. " is not installed (not found on PATH)" end
    return nil, program .. ": " .. tostring(err)
  end
  return r
end

-- What helper says for server: { username, password | identitytoken } or
-- nil (not found, or a failure that was warned about).
local function helper_get(helper, server, where)
  local r, why = run_helper(helper, "get", server)
  if not r then
    warn(("credential helper %s (%s): %s; no credentials for %s"):format(helper, where, why, server))
    return nil
  end
  local out = r.stdout or ""
  if r.code ~= 0 then
    -- the protocol's "not found" answer is a message on stdout and exit 1
    if out:find("credentials not found", 1, true) then return nil end
    warn(("credential helper %s (%s) failed for %s (exit %d%s); no credentials for it"):format(
      helper, where, server, r.code, r.timed_out and ", timed out" or ""))
    return nil
  end
  local ok, doc = pcall(json.decode, out)
  if not ok or type(doc) ~= "table" then
    warn(("credential helper %s (%s) answered %s with something that is not JSON; no credentials for it"):format(
      helper, where, server))
    return nil
  end
  local name = "docker credentials for " .. server
  if doc.Username == TOKEN_USERNAME then
    return { identitytoken = protect(doc.Secret, name), serveraddress = server }
  end
  return { username = doc.Username, password = protect(doc.Secret, name), serveraddress = server }
end

---------------------------------------------------------------- lookups

local function file_auth(cfg, key)
  local auths = type(cfg.auths) == "table" and cfg.auths or {}
  local entry = auths[key]
  if type(entry) ~= "table" then
    -- older files keep "https://host/v1/" keys: match them by host
    for k, v in pairs(auths) do
      if type(v) == "table" and hostname_of(k) == hostname_of(key) then entry = v break end
    end
  end
  if type(entry) ~= "table" then return nil end
  local out = { serveraddress = key }
  local name = "docker credentials for " .. key
  if type(entry.auth) == "string" and entry.auth ~= "" then
    local plain = base64.decode(entry.auth) or ""
    local user, pass = plain:match("^([^:]*):(.*)$")
    out.username, out.password = user, protect(pass and pass:gsub("%z+$", ""), name)
  end
  if type(entry.identitytoken) == "string" and entry.identitytoken ~= "" then
    out.identitytoken = protect(entry.identitytoken, name)
  end
  if out.username or out.identitytoken then return out end
  return nil
end

-- The helper that serves key, and where it was configured.
local function helper_for(cfg, key, path)
  if type(cfg.credHelpers) == "table" and type(cfg.credHelpers[key]) == "string" and cfg.credHelpers[key] ~= "" then
    return cfg.credHelpers[key], "credHelpers in " .. path
  end
  if type(cfg.credsStore) == "string" and cfg.credsStore ~= "" then
    return cfg.credsStore, "credsStore in " .. path
  end
  return nil
end

-- Credentials for a registry host ("docker.io" for Hub images):
-- { username, password, serveraddress } or { identitytoken, ... }, or nil.
function M.get(registry)
  local ok, cfg, path = pcall(contexts.read_config)
  if not ok then
    warn(tostring(cfg) .. "; no registry credentials from it")
    return nil
  end
  if not cfg then return nil end
  local key = M.server_key(registry)
  local helper, where = helper_for(cfg, key, path)
  if helper then return helper_get(helper, key, where) end
  return file_auth(cfg, key)
end

-- Every credential the configuration knows, keyed by server (for a build,
-- whose FROM images may come from any of them): "auths", what credsStore
-- lists, and each credHelpers registry; helpers' answers win.
function M.all()
  local ok, cfg, path = pcall(contexts.read_config)
  if not ok then
    warn(tostring(cfg) .. "; no registry credentials from it")
    return {}
  end
  if not cfg then return {} end
  local all = {}
  if type(cfg.credsStore) == "string" and cfg.credsStore ~= "" then
    -- with a store, "auths" keeps no secrets of its own: the store lists them
    local r, why = run_helper(cfg.credsStore, "list", "")
    local listed = r and r.code == 0 and select(2, pcall(json.decode, r.stdout or ""))
    if type(listed) == "table" then
      for server in pairs(listed) do
        all[server] = helper_get(cfg.credsStore, server, "credsStore in " .. path)
      end
    else
      warn(("credential helper %s (credsStore in %s) could not list its credentials%s"):format(
        cfg.credsStore, path, why and (": " .. why) or ""))
    end
  else
    for key in pairs(type(cfg.auths) == "table" and cfg.auths or {}) do
      local a = file_auth(cfg, key)
      if a then all[key] = a end
    end
  end
  for server, helper in pairs(type(cfg.credHelpers) == "table" and cfg.credHelpers or {}) do
    if type(helper) == "string" and helper ~= "" then
      all[server] = helper_get(helper, server, "credHelpers in " .. path)
    end
  end
  return all
end

-- An auth table with its secrets revealed, for the JSON of a request
-- header (never for output).
function M.plain(auth)
  local plain = {}
  for k, v in pairs(auth) do plain[k] = secret.is_secret(v) and secret.reveal(v) or v end
  return plain
end

return M
