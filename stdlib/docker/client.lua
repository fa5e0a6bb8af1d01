-- slipway.docker.client: one connection to a Docker engine, spoken to over
-- its HTTP API with slipway.http (no docker CLI).
--
--   local c = client.new{ host = "unix:///var/run/docker.sock" }   -- or tcp://, ssh://
--   local res = c:call("docker.inspect", "GET", "/images/x/json", { subject = "x" })
--
-- Hosts: as the CLI finds them (slipway.docker.contexts): an explicit
-- host or context, DOCKER_HOST, DOCKER_CONTEXT, config.json's
-- currentContext, the default socket. unix://PATH (default
-- /var/run/docker.sock); tcp://HOST:PORT, with TLS when DOCKER_TLS_VERIFY or
-- DOCKER_CERT_PATH is set (ca.pem, cert.pem, key.pem from DOCKER_CERT_PATH,
-- default ~/.docker) or the context has TLS files; ssh://[USER@]HOST[:PORT]
-- forwards the remote engine's socket to a local one with OpenSSH, one
-- connection per host for the whole process (slipway.docker.ssh).
--
-- Registry credentials (slipway.docker.credentials): config.json's
-- credHelpers, credsStore and auths, as the CLI reads them; passwords and
-- tokens are slipway.secret values.
--
-- The API version is negotiated on the first request from GET /version:
-- the engine's ApiVersion, capped at the newest this client knows.
-- Engine errors become errors that read "<op>: <subject>: <engine message>"
-- and name the user's file:line; transport failures likewise
-- ("docker.push: x: ECONNREFUSED: connection refused: ...").
local json = require("slipway.json")
local base64 = require("slipway.base64")

local M = {}

M.MAX_API = "1.50"          -- the newest API this client is written against
M.MIN_API = "1.41"          -- Debian's 20.10 engine; older engines are refused

local Client = {}
Client.__index = Client

---------------------------------------------------------------- errors

-- The user's call site, "file:line: " (slipway.caller).
M.where = require("slipway.caller").where

-- Raise message prefixed with the user's file:line. Extra fields (the
-- engine's status, a code) are kept for the wrappers in M.last_error.
function M.raise(message, fields)
  M.last_error = fields
  error(M.where() .. message, 0)
end

---------------------------------------------------------------- helpers

local function url_escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.url_escape = url_escape

-- Path segments keep "/" (image names) and ":" readable, escape the rest.
local function path_escape(s)
  return (tostring(s):gsub("[^%w%-%._~/:@]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.path_escape = path_escape

-- A query string from a table; list values repeat the key (t=a&t=b);
-- booleans become 1/0; keys are sorted so URLs are stable.
function M.query(q)
  if not q then return "" end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for _, item in ipairs(v) do parts[#parts + 1] = url_escape(k) .. "=" .. url_escape(item) end
    elseif type(v) == "boolean" then
      parts[#parts + 1] = url_escape(k) .. "=" .. (v and "1" or "0")
    elseif v ~= nil then
      parts[#parts + 1] = url_escape(k) .. "=" .. url_escape(v)
    end
  end
  if #parts == 0 then return "" end
  return "?" .. table.concat(parts, "&")
end

-- Compare "1.41" and "1.50" numerically: -1, 0, 1.
function M.compare_versions(a, b)
  local am, an = tostring(a):match("^(%d+)%.(%d+)")
  local bm, bn = tostring(b):match("^(%d+)%.(%d+)")
  am, an, bm, bn = tonumber(am) or 0, tonumber(an) or 0, tonumber(bm) or 0, tonumber(bn) or 0
  if am ~= bm then return am < bm and -1 or 1 end
  if an ~= bn then return an < bn and -1 or 1 end
  return 0
end

---------------------------------------------------------------- hosts

local function home()
  return os.getenv("HOME") or "/root"
end

local function parse_host(host, env)
  env = env or os.getenv
  host = host or env("DOCKER_HOST")
  if host == nil or host == "" then host = "unix:///var/run/docker.sock" end
  local path = host:match("^unix://(.+)$")
  if path then return { kind = "unix", host = host, socket = path } end
  local addr = host:match("^tcp://([^/]+)/?$")
  if addr then
    local tls_verify = env("DOCKER_TLS_VERIFY")
    local cert_path = env("DOCKER_CERT_PATH")
    local tls = (tls_verify ~= nil and tls_verify ~= "") or (cert_path ~= nil and cert_path ~= "")
    if not addr:match(":%d+$") then addr = addr .. (tls and ":2376" or ":2375") end
    local h = { kind = "tcp", host = host, base_url = (tls and "https://" or "http://") .. addr }
    if tls then
      local dir = (cert_path ~= nil and cert_path ~= "") and cert_path or (home() .. "/.docker")
      h.tls = {
        verify = tls_verify ~= nil and tls_verify ~= "" and tls_verify ~= "0",
        ca = dir .. "/ca.pem", cert = dir .. "/cert.pem", key = dir .. "/key.pem",
      }
    end
    return h
  end
  local target = host:match("^ssh://(.+)$")
  if target then
    local userhost, port = target:match("^([^/]-):(%d+)/?$")
    if not userhost then userhost = target:match("^([^/]+)/?$") end
    if not userhost then
      error(("docker: bad DOCKER_HOST %q (expected ssh://[user@]host[:port])"):format(host), 0)
    end
    return { kind = "ssh", host = host, target = userhost, port = port }
  end
  error(("docker: bad DOCKER_HOST %q (expected unix://PATH, tcp://HOST:PORT or ssh://USER@HOST)"):format(host), 0)
end

-- Parse a DOCKER_HOST value into { kind, host (as messages show it: a
-- password in it as ***, here and in errors), socket | base_url, ... }.
function M.parse_host(host, env)
  local redact = require("slipway.secret").redact_urls
  local ok, h = pcall(parse_host, host, env)
  if not ok then error(redact(tostring(h)), 0) end
  h.host = redact(h.host)
  return h
end

---------------------------------------------------------------- client

local CLIENT_OPTIONS = { "api_version", "context", "host", "remote_socket", "ssh_options", "timeout", "tls" }

-- The connection of a context's endpoint.
local function context_conn(ep)
  local h = M.parse_host(ep.host, function() return nil end)
  h.context = ep.name
  if h.kind == "tcp" and ep.tls then
    h.tls = ep.tls
    h.base_url = h.base_url:gsub("^http://", "https://")
  end
  return h
end

-- The engine a client with these options talks to, as the CLI picks it.
local function resolve_conn(opts)
  local contexts = require("slipway.docker.contexts")
  if opts.host ~= nil then return M.parse_host(opts.host) end
  local name, from = opts.context, "context option"
  if name == nil then name, from = contexts.selected() end
  local ep = name and contexts.endpoint(name, from)
  if ep then return context_conn(ep) end
  return M.parse_host()
end

-- new{ host =, context =, api_version =, timeout = } : a client; nothing
-- is contacted until the first request.
function M.new(opts)
  opts = opts or {}
  require("slipway.caller").check_options("docker.client", opts, CLIENT_OPTIONS)
  if opts.host ~= nil and opts.context ~= nil then
    error(M.where() .. "docker.client: host and context exclude each other (the CLI's --host and --context)", 0)
  end
  local ok, h = pcall(resolve_conn, opts)
  if not ok then error(M.where() .. "docker.client: " .. tostring(h), 0) end
  if opts.tls and h.kind == "tcp" then
    h.tls = opts.tls
    h.base_url = h.base_url:gsub("^http://", "https://")
  end
  h.ssh_options, h.remote_socket = opts.ssh_options, opts.remote_socket
  local c = setmetatable({ conn = h, api = opts.api_version, timeout = opts.timeout or "60s" }, Client)
  return c
end

-- Close the ssh connection of this client's host (other clients of the
-- same host connect again on their next request).
function Client:close()
  local h = self.conn
  if h.kind == "ssh" then
    require("slipway.docker.ssh").close(h)
    h.socket = nil
  end
end

-- Close every ssh connection of the process.
function M.close_all()
  require("slipway.docker.ssh").close_all()
end

-- One HTTP request to the engine. path is unversioned ("/images/json").
-- opts: query, body (table -> JSON, or string), body_file, headers,
-- content_type, on_body, timeout, versioned (default true).
-- Returns the http result; transport failures raise "<what>: <subject>: ...".
function Client:raw(what, method, path, opts)
  opts = opts or {}
  local http = require("slipway.http")
  local h = self.conn
  if h.kind == "ssh" then h.socket = require("slipway.docker.ssh").socket(h, what, M.raise) end
  if opts.versioned ~= false and not self.api then self:negotiate(what) end
  local prefix = opts.versioned == false and "" or ("/v" .. self.api)
  local base = h.kind == "tcp" and h.base_url or "http://docker"
  local req = {
    url = base .. prefix .. path .. M.query(opts.query),
    method = method,
    headers = {},
    timeout = opts.timeout or self.timeout,
    connect_timeout = "5s",
  }
  for k, v in pairs(opts.headers or {}) do req.headers[k] = v end
  if h.kind ~= "tcp" then req.unix_socket = h.socket end
  if h.tls then
    req.tls_verify = h.tls.verify ~= false
    req.ca, req.cert, req.key = h.tls.ca, h.tls.cert, h.tls.key
  end
  if opts.body ~= nil then
    if type(opts.body) == "table" then
      req.body = json.encode(opts.body)
      req.headers["Content-Type"] = "application/json"
    else
      req.body = opts.body
    end
  elseif opts.body_file then
    req.body_file = opts.body_file
  elseif method == "POST" then
    req.body = ""
  end
  if opts.content_type then req.headers["Content-Type"] = opts.content_type end
  req.on_body = opts.on_body
  local res, err, code = http.request(req)
  if not res then
    local subject = opts.subject and (opts.subject .. ": ") or ""
    if code == "ECONNREFUSED" or (code == "EHTTP" and h.kind ~= "tcp" and tostring(err):match("[Cc]ouldn't connect")) then
      M.raise(("%s: %scannot reach the Docker engine at %s: %s"):format(what, subject, h.host, err),
        { code = code })
    end
    M.raise(("%s: %s%s"):format(what, subject, err), { code = code })
  end
  return res
end

-- The engine's message from an error response body.
function M.engine_message(res)
  local body = res.body or ""
  local ok, doc = pcall(json.decode, body)
  if ok and type(doc) == "table" and type(doc.message) == "string" then return doc.message end
  body = body:gsub("%s+$", "")
  if body == "" then return ("HTTP %d"):format(res.status) end
  return body
end

-- What a manager answers when too few managers are reachable for Raft to
-- elect a leader or commit a change (dockerd 20.10 .. 28).
local NO_QUORUM = {
  "does not have a leader", "lost leader status", "raft: failed to process the request",
  "rpc error: code = DeadlineExceeded", "context deadline exceeded",
}

function M.no_quorum(message)
  for _, p in ipairs(NO_QUORUM) do
    if tostring(message):find(p, 1, true) then return true end
  end
  return false
end

-- A request that raises on HTTP status >= 400 (except those listed in
-- opts.ok, e.g. { [404] = true }) and decodes a JSON answer. Returns
-- decoded body (or nil when empty), res.
function Client:call(what, method, path, opts)
  opts = opts or {}
  local res = self:raw(what, method, path, opts)
  if res.status >= 400 and not (opts.ok and opts.ok[res.status]) then
    local subject = opts.subject and (opts.subject .. ": ") or ""
    local message = M.engine_message(res)
    if M.no_quorum(message) then
      M.raise(("%s: %sswarm has no quorum (too few managers reachable for Raft; bring managers back or "
        .. "`docker swarm init --force-new-cluster` on one that is left): %s"):format(what, subject, message),
        { status = res.status, engine_message = message, no_quorum = true })
    end
    M.raise(("%s: %s%s"):format(what, subject, message),
      { status = res.status, engine_message = message })
  end
  local body = res.body
  if body and body ~= "" and (res.headers["content-type"] or ""):match("json") then
    local ok, doc = pcall(json.decode, body)
    if ok then return doc, res end
  end
  if body == "" then body = nil end
  return body, res
end

-- Negotiate the API version from GET /version (done once per client).
function Client:negotiate(what)
  local res = self:raw(what or "docker", "GET", "/version", { versioned = false, timeout = "15s" })
  if res.status >= 400 then
    M.raise(("%s: /version: %s"):format(what or "docker", M.engine_message(res)))
  end
  local v = json.decode(res.body)
  local server = v.ApiVersion or M.MIN_API
  if M.compare_versions(server, M.MIN_API) < 0 then
    M.raise(("%s: the engine at %s speaks API %s; slipway needs %s or newer"):format(
      what or "docker", self.conn.host, server, M.MIN_API))
  end
  self.api = M.compare_versions(server, M.MAX_API) > 0 and M.MAX_API or server
  self.server = v
  return self.api
end

function Client:api_version()
  if not self.api then self:negotiate("docker") end
  return self.api
end

---------------------------------------------------------------- streams

-- Write a line of progress where the running code's output goes (in a
-- pipeline run: the task's output events; elsewhere stdout).
function M.output_line(line)
  require("slipway.context").output("stdout", line)
end

-- The longest line json_lines takes (a build's or a push's message, an
-- event): beyond it the stream is broken or hostile.
M.MAX_LINE = 4 * 1024 * 1024

-- A body handler for the engine's JSON-lines streams (build, push, pull,
-- events): on_message(msg) gets every decoded object; returns the on_body
-- function and a finish() that flushes a last unterminated line. A line
-- arriving in many chunks is kept as a list of pieces and joined once, so
-- the work stays linear in the bytes received however long the stream
-- lives; a line longer than max_line (default M.MAX_LINE) raises.
function M.json_lines(on_message, max_line)
  max_line = max_line or M.MAX_LINE
  local parts, pending = {}, 0       -- the pieces of an unfinished line, their length
  local function line(l)
    if l:match("^%s*$") then return end
    local ok, msg = pcall(json.decode, l)
    if ok and type(msg) == "table" then on_message(msg) else on_message({ stream = l .. "\n" }) end
  end
  local function too_long()
    M.raise(("docker: the engine sent a line longer than %d bytes"):format(max_line))
  end
  local function on_body(chunk)
    local pos = 1
    while true do
      local nl = chunk:find("\n", pos, true)
      if not nl then break end
      local piece = chunk:sub(pos, nl - 1)
      if pending > 0 then
        parts[#parts + 1] = piece
        piece = table.concat(parts)
        parts, pending = {}, 0
      end
      if #piece > max_line then too_long() end
      line(piece)
      pos = nl + 1
    end
    if pos <= #chunk then
      pending = pending + (#chunk - pos + 1)
      if pending > max_line then too_long() end
      parts[#parts + 1] = chunk:sub(pos)
    end
  end
  local function finish()
    if pending > 0 then
      local l = table.concat(parts)
      parts, pending = {}, 0
      line(l)
    end
  end
  return on_body, finish
end

---------------------------------------------------------------- auth

-- The base64url JSON that X-Registry-Auth carries (secrets revealed: it
-- goes into a request header, never into output).
function M.encode_auth(auth)
  if not auth or next(auth) == nil then return "e30=" end   -- {}
  local s = base64.encode(json.encode(require("slipway.docker.credentials").plain(auth)))
  return (s:gsub("+", "-"):gsub("/", "_"))
end

-- The registry host of an image reference ("docker.io" for Hub images).
function M.registry_of(image)
  local first, rest = image:match("^([^/]+)/(.+)$")
  if first and rest and (first:find("[.:]") or first == "localhost") then return first end
  return "docker.io"
end

-- Credentials for a registry from config.json ($DOCKER_CONFIG or
-- ~/.docker): its credential helper, else "auths". Passwords and tokens
-- are slipway.secret values.
function M.config_auth(registry)
  return require("slipway.docker.credentials").get(registry)
end

-- X-Registry-Config for a build: every registry the configuration has
-- credentials for, so that FROM images of private registries can be pulled.
function M.build_auth_header()
  local credentials = require("slipway.docker.credentials")
  local all = credentials.all()
  if next(all) == nil then return "e30=" end
  local plain = {}
  for k, a in pairs(all) do plain[k] = credentials.plain(a) end
  local s = base64.encode(json.encode(plain))
  return (s:gsub("+", "-"):gsub("/", "_"))
end

-- X-Registry-Auth for an image: explicit auth (a table with username,
-- password[, serveraddress] or identitytoken) wins, then config.json
-- (also for auth = true).
function M.auth_header(image, auth)
  if auth == false then return "e30=" end
  if type(auth) == "table" then
    local a = {}
    local secret = require("slipway.secret")
    for k, v in pairs(auth) do a[k] = secret.is_secret(v) and v or tostring(v) end
    a.serveraddress = a.serveraddress or M.registry_of(image)
    return M.encode_auth(a)
  end
  return M.encode_auth(M.config_auth(M.registry_of(image)))
end

---------------------------------------------------------------- default

local default
-- The client for DOCKER_HOST, created on first use.
function M.default()
  if not default then default = M.new() end
  return default
end

-- Forget the default client (tests switch DOCKER_HOST).
function M.reset_default()
  if default then default:close() end
  default = nil
end

-- Options table check shared by every docker function: unknown keys raise
-- naming the caller's file:line and the valid keys.
local names_of = setmetatable({}, { __mode = "k" })   -- a set -> its sorted names
function M.check_opts(fname, opts, allowed)
  local names = names_of[allowed]
  if names == nil then
    names = {}
    for n in pairs(allowed) do names[#names + 1] = n end
    table.sort(names)
    names_of[allowed] = names
  end
  require("slipway.caller").check_options(fname, opts, names)
  return opts or {}
end

-- A set of option names: set("client", "timeout") -> {client = true, ...}
function M.set(...)
  local t = {}
  for _, k in ipairs({ ... }) do t[k] = true end
  return t
end

function M.need_string(fname, what, v)
  if type(v) ~= "string" or v == "" then
    error(M.where() .. ("%s: %s must be a non-empty string"):format(fname, what), 0)
  end
end

return M
