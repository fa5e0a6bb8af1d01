-- slipway.docker.contexts: Docker CLI contexts (`docker context create`),
-- read from the CLI's own store so that a pipeline reaches the engine the
-- user's `docker` reaches.
--
-- Which engine, as the CLI decides it:
--   1. docker.client{ host = ... }          (an explicit host)
--   2. docker.client{ context = "name" }    (an explicit context; the CLI's
--                                            --context, which also beats
--                                            DOCKER_HOST)
--   3. DOCKER_HOST                          (the "default" context)
--   4. DOCKER_CONTEXT
--   5. "currentContext" of config.json      ($DOCKER_CONFIG or ~/.docker)
--   6. unix:///var/run/docker.sock
-- The context "default" means 3 or 6. A context is
--   $DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json
--     { "Name": ..., "Endpoints": { "docker": { "Host": "ssh://...",
--       "SkipTLSVerify": false } } }
--   $DOCKER_CONFIG/contexts/tls/<sha256 of its name>/docker/{ca,cert,key}.pem
-- A tcp:// endpoint speaks TLS when it has TLS files or SkipTLSVerify is
-- set (then the engine's certificate is not verified).
local fs = require("slipway.fs")
local hash = require("slipway.hash")
local json = require("slipway.json")

local M = {}

M.DEFAULT = "default"

-- The CLI's configuration directory.
function M.config_dir(env)
  env = env or os.getenv
  local dir = env("DOCKER_CONFIG")
  if dir ~= nil and dir ~= "" then return dir end
  return (env("HOME") or "/root") .. "/.docker"
end

-- config.json as a table (nil when absent); raises on a file that is not
-- JSON, naming it.
function M.read_config(env)
  local path = M.config_dir(env) .. "/config.json"
  local text = fs.read(path)
  if not text then return nil, path end
  local ok, cfg = pcall(json.decode, text)
  if not ok or type(cfg) ~= "table" then
    error(("%s: not a JSON object (%s)"):format(path, ok and type(cfg) or tostring(cfg):gsub("^.-: ", "")), 0)
  end
  return cfg, path
end

-- The context the environment selects when no host or context is given:
-- a name, or nil for DOCKER_HOST / the default socket.
function M.selected(env)
  env = env or os.getenv
  local h = env("DOCKER_HOST")
  if h ~= nil and h ~= "" then return nil end
  local name = env("DOCKER_CONTEXT")
  if name ~= nil and name ~= "" then return name, "DOCKER_CONTEXT" end
  local cfg, path = M.read_config(env)
  if cfg and type(cfg.currentContext) == "string" and cfg.currentContext ~= "" then
    return cfg.currentContext, "currentContext in " .. path
  end
  return nil
end

-- The endpoint of context `name`: { host = "tcp://...", tls = {...} | nil,
-- name = name }; nil for "default". `from` says where the name came from,
-- for the error when it does not exist.
function M.endpoint(name, from, env)
  if name == M.DEFAULT then return nil end
  if type(name) ~= "string" or not name:match("^[%w][%w_.+%-]*$") then
    error(("context %q: not a valid context name"):format(tostring(name)), 0)
  end
  local dir = M.config_dir(env) .. "/contexts"
  local digest = hash.sha256(name)
  local meta_path = ("%s/meta/%s/meta.json"):format(dir, digest)
  local text = fs.read(meta_path)
  if not text then
    error(("context %q%s: not found (no %s; `docker context ls` lists the contexts)"):format(
      name, from and (" (" .. from .. ")") or "", meta_path), 0)
  end
  local ok, meta = pcall(json.decode, text)
  local ep = ok and type(meta) == "table" and type(meta.Endpoints) == "table" and meta.Endpoints.docker
  if type(ep) ~= "table" or type(ep.Host) ~= "string" or ep.Host == "" then
    error(("context %q: %s has no Endpoints.docker.Host"):format(name, meta_path), 0)
  end
  local out = { name = name, host = ep.Host, skip_tls_verify = ep.SkipTLSVerify == true }
  local tls_dir = ("%s/tls/%s/docker"):format(dir, digest)
  local files = {}
  for _, f in ipairs { "ca", "cert", "key" } do
    local path = tls_dir .. "/" .. f .. ".pem"
    if fs.exists(path) then files[f] = path end
  end
  if next(files) or out.skip_tls_verify then
    out.tls = { verify = not out.skip_tls_verify, ca = files.ca, cert = files.cert, key = files.key }
  end
  return out
end

return M
