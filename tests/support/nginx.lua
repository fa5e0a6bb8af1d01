-- A real nginx for the tests: started as a foreground child of the test
-- process with its own prefix, config and document root in a temp dir, on a
-- free port of 127.0.0.1 (and optionally a unix socket and a TLS port with a
-- self-signed certificate). Debian's nginx-light with its echo module.
--
--   local nginx = require("support.nginx")
--   local srv = nginx.start{ files = { ["a.txt"] = "hello" }, unix = true, tls = true }
--   srv:url("/a.txt")      -- http://127.0.0.1:PORT/a.txt
--   srv:tls_url("/a.txt")  -- https://localhost:TLSPORT/a.txt (cert in srv.cert)
--   srv.socket             -- unix socket path (http://localhost/a.txt over it)
--   srv:pause()/resume() -- SIGSTOP/SIGCONT: a server that accepts nothing
--   srv:stop()
--
-- Locations besides the static files under srv.root:
--   /hook          a webhook: answers "ok" and appends each request's body
--                  as one line to srv.root/hooks.log
--   /echo          reads the request body and sends it back; the response
--                  headers x-method, x-test, x-content-type, x-length echo the request
--   /sleep/SECS    answers "ok" after SECS seconds (a slow server)
--   /hang          never answers (until nginx stops)
--   /flaky         503 until the file srv.root/healthy exists, then 200 "ok"
--   /status/500, /status/204   answer with that status
--   /redirect      302 to /small.txt
--   /conn          the serial number of the connection (to see reuse)
--   /json          {"status":"ok","db":{"up":true}} as application/json
--   /pad_headers?pad=TEXT   "ok", with 80 headers x-pad-1..80 whose value is TEXT
--                  (large response headers)
local http = require("slipway.http")
local task = require("slipway.task")

local M = {}

local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("command failed: " .. cmd, 2) end
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function mktemp()
  local p = io.popen("mktemp -d /tmp/slipway-nginx.XXXXXX")
  local dir = p:read("l")
  p:close()
  sh("chmod 755 " .. dir)
  return dir
end

-- A port nothing listens on right now (a connect attempt is refused), below
-- the kernel's ephemeral range so no outgoing connection holds it.
local seeded = false
function M.free_port()
  if not seeded then
    math.randomseed(os.time(), math.floor(task.now() * 1000) + tonumber(require("support.leaks").pid()))
    seeded = true
  end
  for _ = 1, 50 do
    local port = math.random(10000, 32000)
    local _, _, code = http.request { url = ("http://127.0.0.1:%d/"):format(port), connect_timeout = "200ms", timeout = "1s" }
    if code == "ECONNREFUSED" then return port end
  end
  error("no free port found")
end

-- A self-signed certificate for localhost and 127.0.0.1: cert, key paths.
function M.self_signed(dir)
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost " ..
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s -out %s 2>/dev/null"):format(key, cert))
  return cert, key
end

local PAD_HEADERS = {}
for i = 1, 80 do PAD_HEADERS[i] = ("add_header x-pad-%d $arg_pad;"):format(i) end

local CONFIG = [[
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
%s
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  log_format hook escape=none '$request_body';
  default_type text/plain;
  keepalive_requests 100000;
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  server {
    %s
    root %s/www;
    client_max_body_size 64m;
    client_body_buffer_size 64m;
    location = /echo {
      echo_read_request_body;
      add_header x-method $request_method;
      add_header x-test $http_x_test;
      add_header x-content-type $content_type;
      add_header x-length $content_length;
      echo_request_body;
    }
    location = /hook {
      echo_read_request_body;
      access_log www/hooks.log hook;
      echo ok;
    }
    location ~ ^/sleep/(?<secs>[0-9.]+)$ { echo_sleep $secs; echo ok; }
    location = /hang { echo_sleep 3600; echo late; }
    location = /flaky {
      if (-f $document_root/healthy) { return 200 "ok\n"; }
      return 503 "not yet\n";
    }
    location = /status/500 { return 500 "status 500\n"; }
    location = /status/204 { return 204; }
    location = /conn { return 200 "$connection\n"; }
    location = /redirect { return 302 /small.txt; }
    location = /json {
      default_type application/json;
      return 200 '{"status":"ok","db":{"up":true},"version":"1.2.3"}';
    }
    location = /pad_headers { ]] .. table.concat(PAD_HEADERS, " ") .. [[ return 200 "ok\n"; }
  }
}
]]

local Server = {}
Server.__index = Server

function Server:url(path)
  return ("http://127.0.0.1:%d%s"):format(self.port, path or "/")
end

function Server:tls_url(path)
  return ("https://localhost:%d%s"):format(self.tls_port, path or "/")
end

function Server:write(name, data)
  write(self.root .. "/" .. name, data)
end

function Server:remove(name)
  os.remove(self.root .. "/" .. name)
end

-- The pids of the master and its workers.
function Server:pids()
  local master = (read(self.prefix .. "/nginx.pid") or ""):match("%d+")
  local pids = { master }
  local p = io.popen("pgrep -P " .. master)
  for line in p:lines() do pids[#pids + 1] = line end
  p:close()
  return pids
end

-- pause(): SIGSTOP nginx, so it accepts nothing: once its listen queue
-- (see start{backlog = N}) is full, connects hang. resume() undoes it.
function Server:pause()
  os.execute("kill -STOP " .. table.concat(self:pids(), " "))
  self.paused = true
end

function Server:resume()
  os.execute("kill -CONT " .. table.concat(self:pids(), " "))
  self.paused = false
end

function Server:stop()
  if self.paused then self:resume() end
  if not self.proc then return end
  local pid = read(self.prefix .. "/nginx.pid")
  if pid then os.execute("kill -TERM " .. pid:match("%d+")) end
  self.proc:close()              -- waits for nginx to exit
  self.proc = nil
  sh("rm -rf " .. self.prefix)
end

-- Write the config for fresh ports and start nginx; true once it answers,
-- false (stopped again) when a port was taken meanwhile, raises otherwise.
local function launch(self, opts)
  local prefix = self.prefix
  self.port = M.free_port()
  local listen = ("listen 127.0.0.1:%d%s;"):format(self.port,
    opts.backlog and (" backlog=" .. opts.backlog) or "")
  if opts.unix then
    self.socket = prefix .. "/nginx.sock"
    os.remove(self.socket)
    listen = listen .. (" listen unix:%s;"):format(self.socket)
  end
  if opts.tls then
    if not self.cert then self.cert, self.key = M.self_signed(prefix) end
    repeat self.tls_port = M.free_port() until self.tls_port ~= self.port
    listen = listen .. (" listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s;")
      :format(self.tls_port, self.cert, self.key)
  end
  local id = io.popen("id -u")
  local root = id:read("l") == "0"
  id:close()
  local conf = CONFIG:format(root and "user root;" or "", opts.workers or 1, prefix, prefix,
    prefix, prefix, prefix, prefix, prefix, listen, prefix)
  write(prefix .. "/nginx.conf", conf)
  os.remove(prefix .. "/error.log")
  self.proc = io.popen(("exec nginx -e %s/error.log -p %s -c %s/nginx.conf -g 'daemon off;' 2>&1")
    :format(prefix, prefix, prefix))
  local deadline = task.now() + 5000
  while true do
    local res = http.request { url = self:url("/ready"), timeout = "1s" }
    if res and res.status == 200 then return true end
    local log = read(prefix .. "/error.log") or ""
    if log:find("[emerg]", 1, true) or task.now() > deadline then
      local pid = read(prefix .. "/nginx.pid")
      if pid then os.execute("kill -TERM " .. pid:match("%d+")) end
      self.proc:close()
      self.proc = nil
      if log:find("Address already in use", 1, true) then return false end
      sh("rm -rf " .. prefix)
      error("nginx did not start: " .. log, 3)
    end
    task.sleep("20ms")
  end
end

-- start{files = {name = content}, unix = bool, tls = bool, workers = N,
--       backlog = N (listen queue of the TCP port)}
function M.start(opts)
  opts = opts or {}
  local prefix = mktemp()
  sh(("mkdir -p %s/www %s/tmp"):format(prefix, prefix))
  local self = setmetatable({ prefix = prefix, root = prefix .. "/www" }, Server)
  self:write("small.txt", "hello from nginx\n")
  self:write("ready", "ready\n")
  for name, data in pairs(opts.files or {}) do self:write(name, data) end
  for _ = 1, 5 do
    if launch(self, opts) then
      http.close_idle()
      return self
    end
  end
  sh("rm -rf " .. prefix)
  error("nginx: no free port after 5 tries", 2)
end

return M
