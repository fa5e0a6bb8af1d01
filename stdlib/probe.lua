-- slipway.probe: health probes with one policy for every kind.
--
--   probe.http { url = "https://api.example.com/health", expect = 200, within = "2m" }
--   probe.tcp { host = "db", port = 5432, retries = 5, interval = "2s" }
--   probe.cmd { argv = { "pg_isready" }, expect_code = 0 }
--   probe.cmd { sh = "redis-cli ping | grep -q PONG" }
--   probe.docker { service = "sophia_api" }       -- every running task healthy
--   probe.all({ { url = "http://a/health" }, { host = "db", port = 5432 } }, { within = "1m" })
--
-- Kinds and their options:
--   http:   url, method, headers, body, expect (status | {list} | "2xx"),
--           body_contains, json ({["path.to.key"] = value}), tls_verify, ca,
--           cert, key, follow_redirects, unix_socket, connect_timeout
--   tcp:    host, port
--   cmd:    argv (list) or sh (string), expect_code (default 0), cwd, env
--   docker: service, docker_host (default $DOCKER_HOST or unix:///var/run/docker.sock)
-- Policy (every kind):
--   timeout           one attempt (default 5s)
--   interval          wait between attempts (default 1s)
--   retries           attempts allowed to fail before giving up (default 0,
--                     or unlimited when `within` is given)
--   within            deadline for becoming healthy (success_threshold passes)
--   success_threshold passes in a row needed (default 1)
--   stable_for        after that, it must stay healthy this long (probed at
--                     `interval`); a failure meanwhile starts over, as far as
--                     retries/within allow
--   backoff           multiply the wait by this after each failure (default 1)
--   max_interval      cap for the backed-off wait (default 30s)
--   check             true: raise when the probe fails; false: return the
--                     result; default: raise inside a pipeline run (so a failed
--                     probe fails its task and triggers rollback), return
--                     the result in plain scripts
--   name              a label for reports (default the target)
--
-- Result: { ok, kind, target, name, attempts, passes, status, latency_ms,
-- elapsed_ms, error, reason }. `target` shows a URL's password as *** (a
-- url given as a secret shows as *** whole; url and header values may be
-- secrets). `reason` says in words what happened
-- ("status 503, expected 2xx", "connection refused", "timeout after 5s",
-- "certificate verify failed: ..."); `error` is the code (ECONNREFUSED,
-- ETIMEDOUT, ECERT, EDNS, ESTATUS, EBODY, EJSON, ECODE, EUNHEALTHY...).
local task = require("slipway.task")
local http = require("slipway.http")
local duration = require("slipway.duration")
local native = require("slipway._probe")
local words = require("slipway.words")
local secret = require("slipway.secret")

local M = {}

local where = require("slipway.caller").where

-- fname is a string, or {index = i, kind = k} for probe.all's items (one
-- table reused, so 10,000 probes do not build 10,000 names).
local function raise(fname, fmt, ...)
  if type(fname) == "table" then fname = ("probe.all: probe #%d (%s)"):format(fname.index, fname.kind) end
  error(where() .. fname .. ": " .. fmt:format(...), 0)
end

-- ------------------------------------------------------------ options

local POLICY = { "timeout", "interval", "retries", "within", "success_threshold",
                 "stable_for", "backoff", "max_interval", "check", "name" }
local KIND_OPTS = {
  http = { "url", "method", "headers", "body", "expect", "body_contains", "json",
           "tls_verify", "ca", "cert", "key", "follow_redirects", "unix_socket", "connect_timeout" },
  tcp = { "host", "port" },
  cmd = { "argv", "sh", "expect_code", "cwd", "env" },
  docker = { "service", "docker_host" },
}
local ALLOWED, VALID_TEXT = {}, {}
for kind, names in pairs(KIND_OPTS) do
  local set, list = { kind = true }, {}
  for _, n in ipairs(names) do set[n] = true; list[#list + 1] = n end
  for _, n in ipairs(POLICY) do set[n] = true; list[#list + 1] = n end
  ALLOWED[kind], VALID_TEXT[kind] = set, table.concat(list, ", ")
end

local function fmt_ms(ms)
  return duration.format(ms)
end

-- A duration option by duration.parse's rule (not negative, at most 100
-- years), in ms.
local function opt_duration(fname, spec, key, default)
  local v = spec[key]
  if v == nil then return default end
  if type(v) ~= "number" and type(v) ~= "string" then
    raise(fname, "option '%s' must be a duration (e.g. \"5s\"), got %s", key, type(v))
  end
  local ms, why = duration.parse(v)
  if ms then return ms end
  if type(v) == "number" and v < 0 then
    raise(fname, "option '%s' must not be negative, got %s", key, tostring(v))
  elseif type(v) == "string" and v:match("^%s*%-") and duration.parse((v:gsub("^%s*%-", ""))) then
    raise(fname, "option '%s' must not be negative, got '%s'", key, v)
  end
  raise(fname, "option '%s': %s", key, why)
end

local function opt_integer(fname, spec, key, default, min)
  local v = spec[key]
  if v == nil then return default end
  if math.type(v) ~= "integer" then
    raise(fname, "option '%s' must be an integer, got %s", key, type(v) == "number" and tostring(v) or type(v))
  end
  if v < min then raise(fname, "option '%s' must be at least %d, got %d", key, min, v) end
  return v
end

local function opt_type(fname, spec, key, ty)
  local v = spec[key]
  if v ~= nil and type(v) ~= ty then
    raise(fname, "option '%s' must be a %s, got %s", key, ty, type(v))
  end
  return v
end

-- expect: 200 | {200, 204} | "2xx" | "200" -> matcher(status), text
local expect_cache = {}
local function parse_expect(fname, v)
  if v == nil then v = "2xx" end
  local cached = expect_cache[v]
  if cached then return cached[1], cached[2] end
  local codes = {}
  local function add(x)
    if math.type(x) == "integer" and x >= 100 and x <= 599 then
      codes[#codes + 1] = tostring(x)
      return function(s) return s == x end
    end
    if type(x) == "string" then
      local class = x:match("^([1-5])[xX][xX]$")
      if class then
        codes[#codes + 1] = class .. "xx"
        local lo = tonumber(class) * 100
        return function(s) return s >= lo and s < lo + 100 end
      end
      local n = tonumber(x)
      if n and math.type(n) == "integer" and n >= 100 and n <= 599 then return add(n) end
    end
    raise(fname, "option 'expect': bad status %s (expected e.g. 200, {200, 204} or \"2xx\")",
      type(x) == "string" and ("'" .. x .. "'") or tostring(x))
  end
  local tests = {}
  if type(v) == "table" then
    if #v == 0 then raise(fname, "option 'expect': empty list of statuses") end
    for _, x in ipairs(v) do tests[#tests + 1] = add(x) end
  else
    tests[1] = add(v)
  end
  local text = #codes == 1 and codes[1] or table.concat(codes, ", ", 1, #codes - 1) .. " or " .. codes[#codes]
  local match = #tests == 1 and tests[1] or function(status)
    for _, t in ipairs(tests) do if t(status) then return true end end
    return false
  end
  if type(v) ~= "table" then expect_cache[v] = { match, text } end
  return match, text
end

local function infer_kind(spec)
  if spec.kind then return spec.kind end
  if spec.url then return "http" end
  if spec.service then return "docker" end
  if spec.argv or spec.sh then return "cmd" end
  if spec.host or spec.port then return "tcp" end
  return nil
end

local HTTP_STRING_OPTS = { "ca", "cert", "key", "unix_socket" }
-- The http options whose type plan() checks: when a spec has none of them
-- (the usual {url = ...}), the dozen checks are skipped (each would see nil).
local HTTP_TYPED = { body_contains = true, json = true, method = true, headers = true, body = true,
                     tls_verify = true, follow_redirects = true, ca = true, cert = true, key = true,
                     unix_socket = true, connect_timeout = true }

-- Check a spec and return the plan the runner uses; raises on bad input.
local function plan(kind, spec, defaults, fname)
  if type(spec) ~= "table" then raise(fname, "expected a table of options, got %s", type(spec)) end
  local allowed = ALLOWED[kind]
  if not allowed then raise(fname, "unknown probe kind '%s' (valid: http, tcp, cmd, docker)", tostring(kind)) end
  local typed = false
  for k in pairs(spec) do
    if not allowed[k] then
      raise(fname, "unknown option '%s' (valid: %s)", tostring(k), VALID_TEXT[kind])
    end
    if HTTP_TYPED[k] then typed = true end
  end
  if defaults and next(defaults) then
    local merged = {}
    for k, v in pairs(defaults) do merged[k] = v end
    for k, v in pairs(spec) do merged[k] = v end
    spec = merged
  end
  local backoff = spec.backoff
  if backoff ~= nil and (type(backoff) ~= "number" or backoff < 1) then
    raise(fname, "option 'backoff' must be a number >= 1 (the wait's multiplier), got %s", tostring(backoff))
  end
  -- One constructor with every policy field: the table is sized once (the
  -- nil ones leave room for target, match, expect_text and request) instead
  -- of growing through five rehashes; probe.all plans thousands of these.
  local p = {
    kind = kind, spec = spec,
    timeout = opt_duration(fname, spec, "timeout", 5000),
    interval = opt_duration(fname, spec, "interval", 1000),
    within = opt_duration(fname, spec, "within", nil),
    stable_for = opt_duration(fname, spec, "stable_for", nil),
    max_interval = opt_duration(fname, spec, "max_interval", 30000),
    retries = opt_integer(fname, spec, "retries", nil, 0),
    success_threshold = opt_integer(fname, spec, "success_threshold", 1, 1),
    backoff = backoff or 1,
    check = opt_type(fname, spec, "check", "boolean"),
    name = opt_type(fname, spec, "name", "string"),
  }

  if kind == "http" then
    local url = spec.url
    local hidden = secret.is_secret(url)             -- a URL that is a secret (a webhook's)
    if hidden then url = secret.reveal(url) end
    if type(url) ~= "string" then raise(fname, "option 'url' is required (a string)") end
    -- Reports show the URL with its password as *** (http.request's
    -- errors do the same), a secret URL as ***.
    local shown = secret.redact_urls(url)
    -- http:// or https:// (any case), then a host: not empty, not starting
    -- with / ? or #; no white space or NUL anywhere
    local rest = url:match("^[hH][tT][tT][pP][sS]?://()")
    local c = rest and url:byte(rest)
    if not c or c == 47 or c == 63 or c == 35 or not url:find("^[^%s\0]*$", rest) then
      raise(fname, "bad URL '%s' (expected http(s)://host[:port]/path)", hidden and "***" or shown)
    end
    p.target, p.url_in_errors = hidden and "***" or shown, shown
    p.match, p.expect_text = parse_expect(fname, spec.expect)
    if typed then
      opt_type(fname, spec, "body_contains", "string")
      opt_type(fname, spec, "json", "table")
      opt_type(fname, spec, "method", "string")
      opt_type(fname, spec, "headers", "table")
      opt_type(fname, spec, "body", "string")
      opt_type(fname, spec, "tls_verify", "boolean")
      opt_type(fname, spec, "follow_redirects", "boolean")
      for _, k in ipairs(HTTP_STRING_OPTS) do opt_type(fname, spec, k, "string") end
      p.connect_timeout = opt_duration(fname, spec, "connect_timeout", nil)
    end
  elseif kind == "tcp" then
    if type(spec.host) ~= "string" or spec.host == "" then raise(fname, "option 'host' is required (a string)") end
    if spec.host:find("\0", 1, true) then raise(fname, "option 'host' contains a NUL byte") end
    local port = spec.port
    if type(port) == "string" and port:match("^%d+$") then port = tonumber(port) end
    if math.type(port) ~= "integer" or port < 1 or port > 65535 then
      raise(fname, "option 'port' must be an integer 1-65535, got %s", tostring(spec.port))
    end
    p.host, p.port = spec.host, port
    p.target = (spec.host:find(":") and "[%s]:%d" or "%s:%d"):format(spec.host, port)
  elseif kind == "cmd" then
    if (spec.argv == nil) == (spec.sh == nil) then raise(fname, "give either 'argv' (a list) or 'sh' (a string)") end
    if spec.argv ~= nil then
      if type(spec.argv) ~= "table" or #spec.argv == 0 then raise(fname, "option 'argv' must be a non-empty list of strings") end
      p.cmd = spec.argv
      local parts = {}
      for i, a in ipairs(spec.argv) do parts[i] = tostring(a) end
      p.target = table.concat(parts, " ")
    else
      if type(spec.sh) ~= "string" or spec.sh == "" then raise(fname, "option 'sh' must be a non-empty string") end
      p.cmd, p.target = spec.sh, spec.sh
    end
    p.expect_code = opt_integer(fname, spec, "expect_code", 0, 0)
    opt_type(fname, spec, "cwd", "string")
    opt_type(fname, spec, "env", "table")
  elseif kind == "docker" then
    if type(spec.service) ~= "string" or spec.service == "" then raise(fname, "option 'service' is required (a string)") end
    p.target = spec.service
    local host = spec.docker_host or os.getenv("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if type(host) ~= "string" then raise(fname, "option 'docker_host' must be a string") end
    local sock = host:match("^unix://(.+)$")
    if sock then
      p.docker_socket, p.docker_base = sock, "http://localhost"
    elseif host:match("^tcp://") then
      p.docker_base = "http://" .. host:sub(7)
    elseif host:match("^https?://") then
      p.docker_base = host
    else
      raise(fname, "bad docker_host '%s' (expected unix:///path or tcp://host:port)", host)
    end
  end
  return p
end

-- ------------------------------------------------------------ attempts

-- "ECONNREFUSED: connection refused: http://x/" -> "connection refused"
local function plain_reason(msg, target)
  msg = msg:gsub("^%u+: ", "")
  local suffix = ": " .. target
  if msg:sub(-#suffix) == suffix then msg = msg:sub(1, -#suffix - 1) end
  return msg
end

local function json_path(doc, path)
  local v = doc
  for part in tostring(path):gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    local n = tonumber(part)
    if n and v[n] ~= nil then v = v[n] else v = v[part] end
  end
  return v
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if v == nil then return "missing" end
  if type(v) == "table" then return "a " .. (v[1] ~= nil and "list" or "table") end
  return tostring(v)
end

local attempt = {}
local STATUS_TEXT = {}   -- 200 -> "status 200": one string per status, not per attempt

function attempt.http(p, timeout_ms)
  local s = p.spec
  local req = p.request                -- the same request for every attempt
  if not req then
    req = {
      url = s.url, method = s.method, headers = s.headers, body = s.body,
      tls_verify = s.tls_verify, ca = s.ca, cert = s.cert, key = s.key,
      follow_redirects = s.follow_redirects, unix_socket = s.unix_socket,
      timeout = timeout_ms / 1000, response_headers = false,   -- a verdict never reads them
      response_body = s.body_contains ~= nil or s.json ~= nil,  -- dropped as it comes, else
      connect_timeout = p.connect_timeout and p.connect_timeout / 1000 or math.min(timeout_ms, 10000) / 1000,
    }
    p.request = req
  end
  local res, msg, code = http.request(req)
  if not res then
    return false, { error = code, reason = plain_reason(msg, p.url_in_errors) }
  end
  local out = { status = res.status, latency_ms = res.time_ms, error = nil, reason = nil }  -- sized for 4
  if not p.match(res.status) then
    out.error = "ESTATUS"
    out.reason = ("status %d, expected %s"):format(res.status, p.expect_text)
    return false, out
  end
  if s.body_contains and not res.body:find(s.body_contains, 1, true) then
    out.error = "EBODY"
    out.reason = ("status %d, but the body does not contain %q"):format(res.status, s.body_contains)
    return false, out
  end
  if s.json then
    local json = require("slipway.json")
    local ok, doc = pcall(json.decode, res.body)
    if not ok or type(doc) ~= "table" then
      out.error = "EJSON"
      out.reason = ("status %d, but the body is not a JSON object"):format(res.status)
      return false, out
    end
    local keys = {}
    for k in pairs(s.json) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local want, got = s.json[k], json_path(doc, k)
      if got ~= want then
        out.error = "EJSON"
        out.reason = ("json %s is %s, expected %s"):format(k, show(got), show(want))
        return false, out
      end
    end
  end
  local text = STATUS_TEXT[res.status]
  if not text then
    text = ("status %d"):format(res.status)
    STATUS_TEXT[res.status] = text
  end
  out.reason = text
  return true, out
end

function attempt.tcp(p, timeout_ms)
  local res, msg, code = native.tcp(p.host, p.port, timeout_ms)
  if not res then return false, { error = code, reason = plain_reason(msg, p.target) } end
  return true, { latency_ms = res.latency_ms, reason = "connected to " .. res.address }
end

local function last_line(s)
  s = (s or ""):gsub("%s+$", "")
  return s:match("([^\n]*)$")
end

function attempt.cmd(p, timeout_ms)
  local proc = require("slipway.proc")
  local t0 = task.now()
  local res, msg, code = proc.run(p.cmd, { timeout = timeout_ms / 1000, cwd = p.spec.cwd, env = p.spec.env })
  local latency = task.now() - t0
  if not res then return false, { error = code, reason = msg, latency_ms = latency } end
  local out = { status = res.code, latency_ms = latency }
  if res.timed_out then
    out.error, out.reason = "ETIMEDOUT", "timeout after " .. fmt_ms(timeout_ms)
    return false, out
  end
  if res.code == p.expect_code then
    out.reason = "exit code " .. res.code
    return true, out
  end
  out.error = "ECODE"
  if res.signal and res.signal ~= 0 and res.signal ~= "" then
    out.reason = ("killed by signal %s, expected exit code %d"):format(tostring(res.signal), p.expect_code)
  else
    out.reason = ("exit code %s, expected %d"):format(tostring(res.code), p.expect_code)
  end
  local tail = last_line(res.stderr)
  if tail == "" then tail = last_line(res.stdout) end
  if tail ~= "" then out.reason = out.reason .. ": " .. tail end
  return false, out
end

local function urlencode(s)
  return (s:gsub("[^%w%-_.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- GET a Docker Engine API path; the decoded JSON or nil, reason, code.
local function docker_get(p, path, timeout_ms)
  local url = p.docker_base .. path
  local res, msg, code = http.request { url = url, unix_socket = p.docker_socket, timeout = timeout_ms / 1000 }
  if not res then return nil, "docker: " .. plain_reason(msg, url), code end
  local json = require("slipway.json")
  local ok, doc = pcall(json.decode, res.body)
  if res.status ~= 200 then
    local detail = ok and type(doc) == "table" and doc.message or res.body
    return nil, ("docker: %s: status %d: %s"):format(path:match("^[^?]*"), res.status, detail), "EDOCKER", res.status
  end
  if not ok then return nil, "docker: " .. path:match("^[^?]*") .. ": the answer is not JSON", "EDOCKER" end
  return doc
end

local function short_id(id) return tostring(id or "?"):sub(1, 12) end

local ENDED = { complete = true, failed = true, rejected = true, shutdown = true, orphaned = true, remove = true }

function attempt.docker(p, timeout_ms)
  local json = require("slipway.json")
  local t0 = task.now()
  local svc_name = p.target
  local services, reason, code = docker_get(p, "/services?filters=" ..
    urlencode(json.encode({ name = { svc_name } })), timeout_ms)
  if not services then return false, { error = code, reason = reason } end
  local svc
  for _, s in ipairs(services) do
    if s.Spec and s.Spec.Name == svc_name then svc = s end
  end
  if not svc then return false, { error = "ENOSERVICE", reason = ("service '%s' not found"):format(svc_name) } end
  local tasks
  tasks, reason, code = docker_get(p, "/tasks?filters=" ..
    urlencode(json.encode({ service = { svc.ID } })), timeout_ms)
  if not tasks then return false, { error = code, reason = reason } end
  local desired
  local mode = svc.Spec.Mode or {}
  if mode.Replicated then desired = mode.Replicated.Replicas or 1 end
  -- What the last healthcheck of a container said, or nil when it has no
  -- healthcheck or is healthy.
  local function container_health(st)
    local cid = st.ContainerStatus and st.ContainerStatus.ContainerID
    if not cid or cid == "" then return nil end
    local c = docker_get(p, "/containers/" .. cid .. "/json", timeout_ms)
    local health = c and c.State and c.State.Health
    if not health or health.Status == "healthy" then return nil end
    local text = "health " .. tostring(health.Status)
    local log = health.Log and health.Log[#health.Log]
    if log and log.Output and last_line(log.Output) ~= "" then
      text = text .. " (" .. last_line(log.Output) .. ")"
    elseif log and log.ExitCode then
      text = text .. " (check exit code " .. tostring(log.ExitCode) .. ")"
    end
    return text
  end
  local running, total, problems, ended = 0, 0, {}, nil
  for _, t in ipairs(tasks) do
    local st = t.Status or {}
    if t.DesiredState == "running" then
      total = total + 1
      -- Swarm keeps a task whose image has a healthcheck "starting" until it
      -- is healthy; its container (when it runs on this engine) also says
      -- what the last check answered.
      local health = container_health(st)
      if st.State == "running" and not health then
        running = running + 1
      else
        problems[#problems + 1] = ("task %s %s%s%s"):format(short_id(t.ID), st.State or "unknown",
          health and (", " .. health) or "", (st.Err and st.Err ~= "") and (": " .. st.Err) or "")
      end
    elseif t.DesiredState == "ready" then
      problems[#problems + 1] = ("task %s waiting to start"):format(short_id(t.ID))
    elseif ENDED[st.State] and (not ended or (st.Timestamp or "") > ((ended.Status or {}).Timestamp or "")) then
      ended = t                        -- the task that ended last
    end
  end
  local want = desired or total
  local out = { status = running, latency_ms = task.now() - t0 }
  if running >= want and want > 0 and #problems == 0 then
    out.reason = ("%d/%d tasks running and healthy"):format(running, want)
    return true, out
  end
  out.error = "EUNHEALTHY"
  local text = ("%d/%d tasks running and healthy"):format(running, want)
  if #problems > 0 then text = text .. ": " .. table.concat(problems, "; ") end
  if ended then
    local st = ended.Status or {}
    local health = container_health(st)
    local exit = st.ContainerStatus and st.ContainerStatus.ExitCode
    text = text .. ("%s the last task to end, %s, %s%s%s"):format(#problems > 0 and ";" or ":",
      short_id(ended.ID), st.State or "?",
      (st.Err and st.Err ~= "") and (": " .. st.Err) or (exit and exit ~= 0 and (" (exit code " .. exit .. ")") or ""),
      health and (", " .. health) or "")
  end
  out.reason = text
  return false, out
end

-- ------------------------------------------------------------ policy

-- Run one planned probe to its verdict. Never raises except to unwind a
-- cancelled task. `within` is a deadline for starting attempts: the last one
-- starts at the latest at the deadline and runs its own timeout.
local function run(p)
  local t0 = task.now()
  local deadline = p.within and t0 + p.within
  local retries = p.retries
  if retries == nil then retries = deadline and math.huge or 0 end
  local attempts, passes, failures = 0, 0, 0
  local stable_since, was_healthy = nil, false
  local wait = p.interval
  local last, verdict, last_try
  while true do
    attempts = attempts + 1
    local pok, ok, info = pcall(attempt[p.kind], p, p.timeout)
    if not pok then
      if task.is_cancelled(ok) then error(ok, 0) end
      ok, info = false, { error = "EPROBE", reason = "probe error: " .. tostring(ok) }
    end
    last = info
    local now = task.now()
    if ok then
      passes = passes + 1
      wait = p.interval
      if passes >= p.success_threshold then
        was_healthy = true
        if not p.stable_for then verdict = "ok" break end
        stable_since = stable_since or now
        if now - stable_since >= p.stable_for then verdict = "ok" break end
      end
    else
      failures = failures + 1
      if was_healthy then info.reason = info.reason .. " (after being healthy)" end
      passes, stable_since = 0, nil
      if failures > retries then verdict = "retries" break end
    end
    if deadline and not stable_since and (now >= deadline or last_try) then verdict = "deadline" break end
    local pause = wait
    if not ok then wait = math.min(wait * p.backoff, math.max(p.max_interval, p.interval)) end
    if stable_since then
      pause = math.min(pause, math.max(0, p.stable_for - (now - stable_since)))
    elseif deadline and now + pause >= deadline then
      pause, last_try = deadline - now, true   -- one more attempt, at the deadline
    end
    task.sleep(pause / 1000)
  end
  local res = {
    ok = verdict == "ok", kind = p.kind, target = p.target, name = p.name or p.target,
    attempts = attempts, passes = passes, status = last.status, latency_ms = last.latency_ms,
    elapsed_ms = task.now() - t0, reason = last.reason, error = nil,
  }
  if verdict ~= "ok" then
    res.error = last.error or "EUNHEALTHY"
    if verdict == "deadline" then
      if last.error == nil then   -- passing, but not enough times in a row
        res.reason = ("%s, but only %d of %d passes in a row"):format(last.reason, passes, p.success_threshold)
      end
      res.reason = ("%s (not healthy within %s)"):format(res.reason, fmt_ms(p.within))
    end
  end
  return res
end

-- Whether a failed probe should raise: explicitly, or inside a pipeline run.
local function should_raise(check)
  if check ~= nil then return check end
  return require("slipway.context").in_run()
end

local function describe(r, with_kind)
  local label = r.name ~= r.target and (r.name .. " (" .. r.target .. ")") or r.target
  return ("%s%s: %s (%s)"):format(with_kind and (r.kind .. " ") or "", label, r.reason or "?",
    words.count(r.attempts, "attempt"))
end

local function single(kind)
  local fname = "probe." .. kind
  return function(spec)
    if not task.current() then raise(fname, "call this inside a task (it waits for I/O)") end
    local p = plan(kind, spec, nil, fname)
    local r = run(p)
    if not r.ok and should_raise(p.check) then
      error(where() .. fname .. ": " .. describe(r), 0)
    end
    return r
  end
end

M.http = single("http")
M.tcp = single("tcp")
M.cmd = single("cmd")
M.docker = single("docker")

local ALL_OPTS = { concurrency = true, check = true }
for _, n in ipairs(POLICY) do if n ~= "name" then ALL_OPTS[n] = true end end

-- all(list, opts) -> {ok, passed, failed, results = {...}} (results in order)
-- opts: concurrency (default 100), check, and policy options used as
-- defaults for every probe in the list.
function M.all(list, opts)
  local fname = "probe.all"
  if not task.current() then raise(fname, "call this inside a task (it waits for I/O)") end
  if type(list) ~= "table" then raise(fname, "expected a list of probes, got %s", type(list)) end
  opts = opts or {}
  if type(opts) ~= "table" then raise(fname, "options must be a table, got %s", type(opts)) end
  local defaults = {}
  for k, v in pairs(opts) do
    if not ALL_OPTS[k] then
      local valid = {}
      for n in pairs(ALL_OPTS) do valid[#valid + 1] = n end
      table.sort(valid)
      raise(fname, "unknown option '%s' (valid: %s)", tostring(k), table.concat(valid, ", "))
    end
    if k ~= "concurrency" and k ~= "check" then defaults[k] = v end
  end
  local concurrency = opt_integer(fname, opts, "concurrency", 100, 1)
  opt_type(fname, opts, "check", "boolean")
  local plans, label = {}, {}
  for i, spec in ipairs(list) do
    if type(spec) ~= "table" then raise(fname, "probe #%d: expected a table, got %s", i, type(spec)) end
    local kind = infer_kind(spec)
    if not kind then raise(fname, "probe #%d: cannot tell its kind (give url, host/port, argv/sh, service or kind)", i) end
    label.index, label.kind = i, kind
    plans[i] = plan(kind, spec, defaults, label)
  end
  local results, next_i, n = {}, 0, #plans
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      local i = next_i
      local p = plans[i]
      plans[i] = false                 -- let the plan go as soon as it has run
      results[i] = run(p)
    end
  end
  local workers = {}
  for w = 1, math.min(concurrency, n) do workers[w] = task.spawn(worker) end
  local ok, err = pcall(function() for _, w in ipairs(workers) do w:join() end end)
  if not ok then
    for _, w in ipairs(workers) do w:cancel() end
    error(err, 0)
  end
  local passed, failed, reasons = 0, 0, {}
  for _, r in ipairs(results) do
    if r.ok then passed = passed + 1 else
      failed = failed + 1
      reasons[#reasons + 1] = "  " .. describe(r, true)
    end
  end
  local out = { ok = failed == 0, passed = passed, failed = failed, results = results }
  if failed > 0 and should_raise(opts.check) then
    error(("%s%s: %d of %s failed:\n%s"):format(where(), fname, failed, words.count(n, "probe"), table.concat(reasons, "\n")), 0)
  end
  return out
end

-- For the command line and tests: check a spec without running it.
M._plan = plan
M._infer_kind = infer_kind

return M
