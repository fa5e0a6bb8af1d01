-- slipway.docker.client: one connection to a Docker engine, spoken to over
-- its HTTP API with slipway.http (no docker CLI).
--
--   local c = client.new{ host = "unix:///var/run/docker.sock" }   -- or tcp://, ssh://
--   local res = c:call("docker.inspect", "GET", "/images/x/json", { subject = "x" })
--
-- Hosts: DOCKER_HOST as the CLI reads it. unix://PATH (default
-- /var/run/docker.sock); tcp://HOST:PORT, with TLS when DOCKER_TLS_VERIFY or
-- DOCKER_CERT_PATH is set (ca.pem, cert.pem, key.pem from DOCKER_CERT_PATH,
-- default ~/.docker); ssh://[USER@]HOST[:PORT] forwards the remote engine's
-- socket to a local one with OpenSSH (`ssh -L`), started on first use and
-- stopped by c:close().
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

-- new{ host =, api_version =, timeout = } : a client; nothing is contacted
-- until the first request.
function M.new(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "host" and k ~= "api_version" and k ~= "timeout" and k ~= "tls"
        and k ~= "ssh_options" and k ~= "remote_socket" then
      error(M.where() .. ("docker.client: unknown option '%s' (valid: api_version, host, remote_socket, ssh_options, timeout, tls)"):format(k), 0)
    end
  end
  local h = M.parse_host(opts.host)
  if opts.tls and h.kind == "tcp" then
    h.tls = opts.tls
    h.base_url = h.base_url:gsub("^http://", "https://")
  end
  h.ssh_options, h.remote_socket = opts.ssh_options, opts.remote_socket
  local c = setmetatable({ conn = h, api = opts.api_version, timeout = opts.timeout or "60s" }, Client)
  return c
end

-- ssh://: `ssh -L` forwards a local socket to the remote engine's. ssh
-- is a child of ours (proc.spawn) until c:close() kills it and reaps it.
local function ssh_forward(c, what)
  local h = c.conn
  if h.socket then return end
  local proc = require("slipway.proc")
  local task = require("slipway.task")
  local dir = os.getenv("TMPDIR") or "/tmp"
  local sock = ("%s/slipway-docker-ssh-%d-%d.sock"):format(dir, math.random(1, 1e9), os.time())
  local remote = h.remote_socket or "/var/run/docker.sock"
  local args = { "ssh", "-nNT", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                 "-o", "StreamLocalBindUnlink=yes", "-o", "ConnectTimeout=10",
                 "-L", sock .. ":" .. remote }
  for _, o in ipairs(h.ssh_options or {}) do args[#args + 1] = o end
  if h.port then args[#args + 1] = "-p"; args[#args + 1] = h.port end
  args[#args + 1] = h.target
  local p, err = proc.spawn(args, { stdout = "null" })
  if not p then M.raise(("%s: ssh %s: %s"):format(what, h.target, err)) end
  local waiter = task.spawn(function() return p:wait() end)
  local deadline = task.now() + 15000
  while true do
    -- a socket cannot be opened as a file: ENXIO says it is there
    local f, _, errno = io.open(sock, "r")
    if f then f:close() end
    if f or errno == 6 then break end
    local st = waiter:status()
    if st == "done" or st == "failed" or task.now() > deadline then
      if st ~= "done" then pcall(p.kill, p) end
      local ok, r = pcall(waiter.join, waiter)
      local detail = ok and type(r) == "table" and type(r.stderr) == "string" and r.stderr:gsub("%s+$", "") or ""
      M.raise(("%s: ssh %s: cannot forward the engine socket%s"):format(what, h.target,
        detail ~= "" and (": " .. detail) or ""))
    end
    task.sleep(0.05)
  end
  h.socket, h.ssh, h.ssh_waiter = sock, p, waiter
end

-- Stop an ssh forwarding this client started (and reap ssh).
function Client:close()
  local h = self.conn
  if h.ssh then
    pcall(h.ssh.kill, h.ssh)
    pcall(h.ssh_waiter.join, h.ssh_waiter)
    os.remove(h.socket)
    h.ssh, h.ssh_waiter, h.socket = nil, nil, nil
  end
end

-- One HTTP request to the engine. path is unversioned ("/images/json").
-- opts: query, body (table -> JSON, or string), body_file, headers,
-- content_type, on_body, timeout, versioned (default true).
-- Returns the http result; transport failures raise "<what>: <subject>: ...".
function Client:raw(what, method, path, opts)
  opts = opts or {}
  local http = require("slipway.http")
  local h = self.conn
  if h.kind == "ssh" then ssh_forward(self, what) end
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

-- A request that raises on HTTP status >= 400 (except those listed in
-- opts.ok, e.g. { [404] = true }) and decodes a JSON answer. Returns
-- decoded body (or nil when empty), res.
function Client:call(what, method, path, opts)
  opts = opts or {}
  local res = self:raw(what, method, path, opts)
  if res.status >= 400 and not (opts.ok and opts.ok[res.status]) then
    local subject = opts.subject and (opts.subject .. ": ") or ""
    M.raise(("%s: %s%s"):format(what, subject, M.engine_message(res)),
      { status = res.status, engine_message = M.engine_message(res) })
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

-- The base64url JSON that X-Registry-Auth carries.
function M.encode_auth(auth)
  if not auth or next(auth) == nil then return "e30=" end   -- {}
  local s = base64.encode(json.encode(auth))
  return (s:gsub("+", "-"):gsub("/", "_"))
end

-- The registry host of an image reference ("docker.io" for Hub images).
function M.registry_of(image)
  local first, rest = image:match("^([^/]+)/(.+)$")
  if first and rest and (first:find("[.:]") or first == "localhost") then return first end
  return "docker.io"
end

-- Credentials for a registry from ~/.docker/config.json "auths" (or
-- $DOCKER_CONFIG/config.json). Credential helpers are not run.
function M.config_auth(registry)
  local dir = os.getenv("DOCKER_CONFIG") or (home() .. "/.docker")
  local f = io.open(dir .. "/config.json", "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, cfg = pcall(json.decode, text)
  if not ok or type(cfg) ~= "table" or type(cfg.auths) ~= "table" then return nil end
  local keys = { registry }
  if registry == "docker.io" then
    keys = { "https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io" }
  else
    keys[#keys + 1] = "https://" .. registry
    keys[#keys + 1] = "http://" .. registry
  end
  for _, k in ipairs(keys) do
    local a = cfg.auths[k]
    if type(a) == "table" then
      local out = { serveraddress = registry }
      if type(a.auth) == "string" and a.auth ~= "" then
        local plain = base64.decode(a.auth) or ""
        out.username, out.password = plain:match("^([^:]*):(.*)$")
      end
      if type(a.identitytoken) == "string" and a.identitytoken ~= "" then out.identitytoken = a.identitytoken end
      if out.username or out.identitytoken then return out end
    end
  end
  return nil
end

-- X-Registry-Config for a build: every registry of config.json "auths",
-- so that FROM images of private registries can be pulled.
function M.build_auth_header()
  local dir = os.getenv("DOCKER_CONFIG") or (home() .. "/.docker")
  local f = io.open(dir .. "/config.json", "r")
  local all = {}
  if f then
    local ok, cfg = pcall(json.decode, f:read("a"))
    f:close()
    if ok and type(cfg) == "table" and type(cfg.auths) == "table" then
      for key in pairs(cfg.auths) do
        local registry = key:gsub("^https?://", ""):gsub("/.*$", "")
        local a = M.config_auth(registry == "index.docker.io" and "docker.io" or registry)
        if a then all[key] = a end
      end
    end
  end
  if next(all) == nil then return "e30=" end
  local s = base64.encode(json.encode(all))
  return (s:gsub("+", "-"):gsub("/", "_"))
end

-- X-Registry-Auth for an image: explicit auth (a table with username,
-- password[, serveraddress] or identitytoken) wins, then config.json.
function M.auth_header(image, auth)
  if auth == false then return "e30=" end
  if type(auth) == "table" then
    local a = {}
    for k, v in pairs(auth) do a[k] = tostring(v) end
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
