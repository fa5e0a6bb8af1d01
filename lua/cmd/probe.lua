-- `slipway probe TARGET...`: ad-hoc health probes from the command line,
-- run concurrently with slipway.probe, printed as a table (or JSON).
local M = {}

M.help = [[
usage: slipway probe TARGET... [options]

Probe every TARGET at once and print one line per result.

targets:
  http://HOST[:PORT]/PATH, https://...   an HTTP(S) request; passes on 2xx unless --expect
  tcp://HOST:PORT                         a TCP connect

options:
  --expect LIST            statuses that pass: 200 | 200,204 | 2xx   (default 2xx)
  --contains TEXT          the response body must contain TEXT
  --method M               HTTP method (default GET)
  --header 'NAME: VALUE'   add a request header (repeatable)
  --timeout D              one attempt's limit (default 5s)
  --retries N              failed attempts allowed before giving up (default 0)
  --interval D             wait between attempts (default 1s)
  --within D               keep trying until D has passed (a deadline)
  --success-threshold N    passes in a row needed (default 1)
  --stable-for D           after passing, must stay healthy for D
  --backoff F              multiply the wait by F after each failure
  --insecure               do not verify TLS certificates
  --ca FILE                trust the CA certificate(s) in FILE
  --unix-socket PATH       send HTTP targets through this unix socket
  --concurrency N          probes in flight at once (default 100)
  --json                   print one JSON object with every result
  -h, --help               this text

Durations: 250ms, 5s, 2m, 1h30m. Exit status: 0 every probe passed,
1 a probe failed, 2 bad input.

examples:
  slipway probe https://api.example.com/health --within 2m --interval 5s
  slipway probe tcp://db:5432 http://localhost:8080/ready --expect 200,204
]]

local VALUE_FLAGS = {
  ["--expect"] = "expect", ["--contains"] = "body_contains", ["--method"] = "method",
  ["--header"] = "header", ["--timeout"] = "timeout", ["--retries"] = "retries",
  ["--interval"] = "interval", ["--within"] = "within",
  ["--success-threshold"] = "success_threshold", ["--stable-for"] = "stable_for",
  ["--backoff"] = "backoff", ["--ca"] = "ca", ["--unix-socket"] = "unix_socket",
  ["--concurrency"] = "concurrency",
}
local BOOL_FLAGS = { ["--insecure"] = true, ["--json"] = true }

local BadInput = {}

local function bad(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, BadInput), 0)
end

local function unknown_flag(a)
  local list = {}
  for f in pairs(VALUE_FLAGS) do list[#list + 1] = f end
  for f in pairs(BOOL_FLAGS) do list[#list + 1] = f end
  table.sort(list)
  bad("unknown option '%s'%s (valid: %s)", a, require("slipway.words").did_you_mean(a:match("^[^=]*"), list),
    table.concat(list, ", "))
end

local function integer(flag, s)
  local n = math.tointeger(tonumber(s))
  if not n then bad("%s: expected a whole number, got '%s'", flag, s) end
  return n
end

-- argv -> targets, flags
local function parse(args)
  local targets, flags, headers = {}, {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a:sub(1, 2) == "--" then
      local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
      name = name or a
      if VALUE_FLAGS[name] then
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then bad("%s needs a value", name) end
        end
        if name == "--header" then
          local k, v = value:match("^([^:]+):%s*(.*)$")
          if not k then bad("--header: expected 'Name: value', got '%s'", value) end
          headers[k] = v
        else
          flags[VALUE_FLAGS[name]] = value
        end
      elseif BOOL_FLAGS[name] and value == nil then
        flags[name:sub(3)] = true
      else
        unknown_flag(a)
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      unknown_flag(a)
    else
      targets[#targets + 1] = a
    end
    i = i + 1
  end
  if next(headers) then flags.headers = headers end
  return targets, flags
end

local function expect_list(s)
  local list = {}
  for part in s:gmatch("[^,]+") do
    part = part:match("^%s*(.-)%s*$")
    list[#list + 1] = math.tointeger(tonumber(part)) or part
  end
  if #list == 0 then bad("--expect: expected e.g. 200, 200,204 or 2xx") end
  return #list == 1 and list[1] or list
end

-- TARGET -> probe spec
local function spec_for(target, flags)
  local spec = {}
  for _, k in ipairs { "timeout", "interval", "within", "stable_for" } do spec[k] = flags[k] end
  if flags.retries then spec.retries = integer("--retries", flags.retries) end
  if flags.success_threshold then spec.success_threshold = integer("--success-threshold", flags.success_threshold) end
  if flags.backoff then
    spec.backoff = tonumber(flags.backoff)
    if not spec.backoff then bad("--backoff: expected a number, got '%s'", flags.backoff) end
  end
  if target:match("^[hH][tT][tT][pP][sS]?://") then
    spec.url = target
    if flags.expect then spec.expect = expect_list(flags.expect) end
    spec.body_contains, spec.method, spec.headers = flags.body_contains, flags.method, flags.headers
    spec.ca, spec.unix_socket = flags.ca, flags.unix_socket
    if flags.insecure then spec.tls_verify = false end
    return "http", spec
  end
  local rest = target:match("^[tT][cC][pP]://(.*)$")
  if rest then
    local host, port = rest:match("^%[([^%]]+)%]:(%d+)/?$")
    if not host then host, port = rest:match("^([^:/]+):(%d+)/?$") end
    if not host then bad("bad target '%s' (expected tcp://HOST:PORT)", target) end
    for _, f in ipairs { "expect", "body_contains", "method", "headers", "ca", "unix_socket", "insecure" } do
      if flags[f] ~= nil then
        bad("--%s applies to http(s) targets only (%s is tcp)", (f:gsub("_", "-"):gsub("body%-contains", "contains")), target)
      end
    end
    spec.host, spec.port = host, tonumber(port)
    return "tcp", spec
  end
  bad("bad target '%s' (expected http://HOST/PATH, https://HOST/PATH or tcp://HOST:PORT)", target)
end

local function fmt_latency(ms)
  if ms == nil then return "-" end
  if ms < 1 then return ("%.2fms"):format(ms) end
  if ms < 1000 then return ("%.1fms"):format(ms) end
  return ("%.2fs"):format(ms / 1000)
end

local function print_table(out)
  local rows = { { "RESULT", "KIND", "TARGET", "TRIES", "LATENCY", "REASON" } }
  for _, r in ipairs(out.results) do
    rows[#rows + 1] = { r.ok and "ok" or "FAIL", r.kind, r.target, tostring(r.attempts),
                        fmt_latency(r.latency_ms), r.reason or "" }
  end
  local width = {}
  for _, row in ipairs(rows) do
    for c = 1, 5 do width[c] = math.max(width[c] or 0, #row[c]) end
  end
  for _, row in ipairs(rows) do
    local cells = {}
    for c = 1, 5 do cells[c] = row[c] .. (" "):rep(width[c] - #row[c]) end
    cells[6] = row[6]
    io.stdout:write(table.concat(cells, "  "), "\n")
  end
  io.stdout:write(("%s: %d passed, %d failed\n"):format(require("slipway.words").count(#out.results, "probe"),
    out.passed, out.failed))
end

local function strip_where(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", ""))
end

function M.main(args)
  local probe = require("slipway.probe")
  local ok, targets, flags = pcall(parse, args)
  local specs = {}
  if ok then
    if #targets == 0 then
      ok, targets = false, setmetatable({ msg = "no TARGET given (try `slipway probe --help`)" }, BadInput)
    end
  end
  local concurrency
  if ok then
    ok, targets = pcall(function()
      for i, t in ipairs(targets) do
        local kind, spec = spec_for(t, flags)
        local pok, err = pcall(probe._plan, kind, spec, nil, "slipway probe")
        if not pok then
          local msg = strip_where(err):gsub("^slipway probe: ", "")
            :gsub("option '([%w_]+)'", function(k) return "--" .. k:gsub("_", "-") end)
          bad("%s", msg)
        end
        specs[i] = spec
      end
      if flags.concurrency then
        concurrency = integer("--concurrency", flags.concurrency)
        if concurrency < 1 then bad("--concurrency must be at least 1") end
      end
      return targets
    end)
  end
  if not ok then
    local msg = getmetatable(targets) == BadInput and targets.msg or tostring(targets)
    io.stderr:write("slipway probe: ", require("slipway.secret").redact_urls(msg), "\n")   -- (URL passwords as ***)
    return 2
  end
  local task = require("slipway.task")
  local done, out = task.run(function()
    return probe.all(specs, { concurrency = concurrency, check = false })
  end)
  if not done then
    io.stderr:write("slipway probe: ", require("slipway.secret").redact_urls(tostring(out)), "\n")
    return 1
  end
  if flags.json then
    local json = require("slipway.json")
    io.stdout:write(json.encode({ ok = out.ok, passed = out.passed, failed = out.failed,
                                  results = json.array(out.results) }), "\n")
  else
    print_table(out)
  end
  return out.ok and 0 or 1
end

return M
