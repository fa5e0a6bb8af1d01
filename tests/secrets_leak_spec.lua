-- The secret leak test: one pipeline uses secrets everywhere a deploy
-- would (env, -p and SLIPWAY_PARAM_* parameters, param.secret from a
-- command, a file and a .env file, command lines, HTTP headers and bodies,
-- URLs with passwords, task return values, changes, warnings, error
-- messages, a matrix label) and prints them in every form (raw, base64 at
-- three offsets, URL-encoded, JSON-escaped, each line of a multi-line
-- value, a line written in pieces). It runs on the plain, terminal (in a
-- pseudo-terminal), GitHub and JSON reporters, and a grep over everything
-- each run leaves (stdout, stderr, NDJSON, every file under .slipway,
-- $GITHUB_OUTPUT, the step summary, timeline.svg) finds no value in any
-- form (support/secret_forms.lua computes them). Meanwhile no process but
-- slipway itself (whose -p the user typed) has a value on its command line.
local H = require("support.pipeline_helper")
local forms = require("support.secret_forms")
local nginx = require("support.nginx")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local hash = require("slipway.hash")

local PIPELINE = [=[
param.secret("token", "the deploy token, given with -p")
param.secret("api_key", "from SLIPWAY_PARAM_API_KEY")
param.secret("signing_key", { from = "cmd", cmd = "cat signing.key" })
local env_secret = secret("LEAK_ENV_SECRET")
local pem = secret("pem", { from = "file", path = "leak.pem" })
local db = secret("DB_PASSWORD", { from = "dotenv" })
local url_pw = os.getenv("LEAK_URL_PASSWORD")
local port = os.getenv("LEAK_HTTP_PORT")
local json, base64, context = require("slipway.json"), require("slipway.base64"), require("slipway.context")

print("at the top level: " .. env_secret:reveal())

local function all(p) return { env_secret, p.token, p.api_key, p.signing_key, pem, db } end
local function url_encode(s, plus)
  return (s:gsub("[^%w%-%._~]", function(c) return (c == " " and plus) and "+" or ("%%%02X"):format(c:byte()) end))
end

task("child-output", function(p)
  local env = {}
  for i, s in ipairs(all(p)) do env["S" .. i] = s end
  sh([[for v in "$S1" "$S2" "$S3" "$S4" "$S5" "$S6"; do
    printf '%s\n' "$v"
    printf '%s' "$v" | base64 -w0; echo
    printf 'x%s' "$v" | base64 -w0; echo
    printf 'xy%s' "$v" | base64 -w0; echo
    printf 'value: %s\n' "$v" >&2
  done
  printf '%s' "$S2" | head -c 5; sleep 0.2; printf '%s' "$S2" | tail -c +6; echo]], { env = env })
end)

task("lua-output", function(p)
  for _, s in ipairs(all(p)) do
    local v = s:reveal()
    print(v)
    print(json.encode({ v = v }))
    print(url_encode(v), url_encode(v, true))
    for offset = 0, 2 do print(base64.encode(("x"):rep(offset) .. v), base64.encode(("x"):rep(offset) .. v, { url = true })) end
    io.write(v:sub(1, 5))
    task.sleep(0.02)
    io.write(v:sub(6), "\n")
    io.stderr:write("to stderr: ", v, "\n")
  end
  context.warn("a warning that names " .. p.token:reveal())
end)

task("http", function(p)
  local res = assert(http.request { url = "http://127.0.0.1:" .. port .. "/echo", method = "POST",
    headers = { ["X-Test"] = p.token }, body = db })
  print("echoed header " .. res.headers["x-test"] .. " and body " .. res.body)
  return { header_sent = res.headers["x-test"] == p.token:reveal(), body_sent = res.body == db:reveal() }
end)

task("urls", function(p)
  local url = ("http://deploy:%s@127.0.0.1:%s/small.txt"):format(url_pw, port)
  local res = assert(http.request(url))
  print("fetched " .. url .. " -> " .. res.status .. " " .. res.url)
  local _, err = http.request(("http://deploy:%s@127.0.0.1:1/"):format(url_pw))
  print("refused: " .. err)
  local r = probe.http { url = ("http://deploy:%s@127.0.0.1:1/health"):format(url_pw), check = false, timeout = "1s" }
  print(json.encode(r))
  return url
end)

task("command-line", { continue_on_error = true }, function(p)
  local ok, err = pcall(sh, "curl -H 'Authorization: Bearer " .. p.token:reveal() .. "' http://127.0.0.1:" .. port)
  print("refused: " .. tostring(not ok) .. ": " .. err)
  sh { "echo", p.api_key }
end)

task("failing-command", { continue_on_error = true }, function(p)
  sh('echo "the token is $T" >&2; echo "the password is $D"; exit 3', { env = { T = p.token, D = db } })
end)

task("returns", function(p)
  context.add_change { kind = "leak.test", target = "app", summary = "set key " .. p.signing_key:reveal(),
    data = { key = p.signing_key:reveal(), pem = pem:reveal() } }
  return { token = p.token:reveal(), nested = { pem = pem:reveal() }, as_secret = env_secret,
           url = "https://deploy:" .. url_pw .. "@registry.internal/v2/" }
end)

task("plain-return", function() return db:reveal() end)

task("error-message", { continue_on_error = true }, function()
  error("failed while using " .. env_secret:reveal() .. " at http://deploy:" .. url_pw .. "@db.internal/")
end)

task("matrix", { matrix = function(p) return { "m-" .. p.token:reveal() } end }, function(item)
  print("matrix item " .. item)
end)

task("long-child", function(p)
  sh("sleep 0.6", { env = { T = p.token, S = env_secret, D = db } })
end)
]=]

local function random(n) return hash.random_hex(n) end

-- Every value the run must never show, and the project that uses them.
local function setup_project(port)
  local v = {
    env = ('env "Secret" a+b/c=d \\ \195\188-') .. random(6),
    token = "tok" .. random(8),
    api_key = "apikey-" .. random(8),
    signing = "sign " .. random(6) .. " +/=",
    pem = "-----BEGIN LEAK KEY-----\n" .. random(16) .. "\n" .. random(16) .. "\n-----END LEAK KEY-----",
    db = "db&pw<" .. random(6) .. ">",
  }
  local url_pw = "UrlPw" .. random(6)
  local dir = H.project {
    ["deploy.lua"] = PIPELINE,
    ["signing.key"] = v.signing .. "\n",
    ["leak.pem"] = v.pem .. "\n",
    [".env"] = ('DB_PASSWORD="%s"\n'):format(v.db),
  }
  local env = {
    LEAK_ENV_SECRET = v.env, SLIPWAY_PARAM_API_KEY = v.api_key,
    LEAK_URL_PASSWORD = url_pw, LEAK_HTTP_PORT = tostring(port),
  }
  local values = { v.env, v.token, v.api_key, v.signing, v.pem, v.db }
  return dir, env, values, url_pw, v
end

-- The text of every file under dir (recursively): { path = text }.
local function files_under(dir, out)
  out = out or {}
  for _, name in ipairs(fs.list(dir) or {}) do
    local path = dir .. "/" .. name
    local st = fs.stat(path)
    if st.type == "directory" then files_under(path, out) else out[path] = assert(fs.read(path)) end
  end
  return out
end

-- Assert that no text of `texts` ({ where = text }) shows a value in any form
-- nor the URL password.
local function assert_no_leak(texts, values, url_pw)
  local n = 0
  for where, text in pairs(texts) do
    n = n + 1
    local leak = forms.find(text, values, where)
    assert(leak == nil, leak)
    assert(not text:find(url_pw, 1, true), where .. ": the URL password shows: " .. text)
  end
  assert(n > 0)
end

-- The command lines of every process but slipway itself and this one that
-- hold a value: { "pid: cmdline" }; and whether `sleep 0.6` was seen.
-- (A child between posix_spawn and exec still shows slipway's own command
-- line, which the user typed: own_cmdline, not counted.)
local function scan_cmdlines(values, except, own_cmdline)
  local found, saw_child = {}, false
  for _, pid in ipairs(fs.list("/proc") or {}) do
    if pid:match("^%d+$") and not except[pid] then
      local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
      local cmdline = f and f:read("a") or ""
      if f then f:close() end
      if cmdline == own_cmdline then cmdline = "" end
      if cmdline == "sleep\0" .. "0.6\0" then saw_child = true end
      for _, v in ipairs(values) do
        if cmdline:find(v, 1, true) then found[#found + 1] = pid .. ": " .. cmdline:gsub("%z", " ") end
      end
    end
  end
  return found, saw_child
end

local function env_with(base, extra)
  local e = {}
  for k, val in pairs(H.base_env) do e[k] = val end
  for k, val in pairs(base) do e[k] = val end
  for k, val in pairs(extra or {}) do e[k] = val end
  return e
end

describe("secrets never leak", function()
  local srv
  setup(function() srv = nginx.start {} end)
  teardown(function()
    require("slipway.http").close_idle()
    srv:stop()
  end)
  after_each(H.cleanup)

  local function port() return srv:url("/"):match(":(%d+)/$") end

  -- What every run must have done with the secrets (they were used).
  local function check_record(dir)
    local runs = fs.list(dir .. "/.slipway/runs")
    assert.same(1, #runs)
    local record = json.decode(assert(fs.read(dir .. "/.slipway/runs/" .. runs[1] .. "/record.json")))
    local by = {}
    for _, t in ipairs(record.tasks) do by[t.name] = t end
    assert.same({ body_sent = true, header_sent = true }, by.http.result)
    assert.same({ "failed", "failed", "failed", "ok", "ok" }, { by["command-line"].status, by["failing-command"].status,
      by["error-message"].status, by["matrix[m-***]"].status, by["long-child"].status })
    assert.same({ token = "***", nested = { pem = "***" }, as_secret = "***",
                  url = "https://deploy:***@registry.internal/v2/" }, by.returns.result)
    assert.same({ api_key = "***", signing_key = "***", token = "***" }, record.params)
    return record
  end

  it("on the plain reporter, and no child has a value on its command line", function()
    local dir, env, values, url_pw = setup_project(port())
    local token = values[2]
    local argv = { H.slipway, "run", "--reporter", "plain", "-p", "token=" .. token }
    local own_cmdline = table.concat(argv, "\0") .. "\0"
    local child = assert(proc.spawn(argv, { cwd = dir, env = env_with(env), timeout = "60s" }))
    local waiter = task.spawn(function() return child:wait() end)
    local except = { [tostring(child.pid)] = true, [require("support.leaks").pid()] = true }
    local offenders, saw_child = {}, false
    while waiter:status() ~= "done" and waiter:status() ~= "failed" do
      local found, saw = scan_cmdlines(values, except, own_cmdline)
      for _, f in ipairs(found) do offenders[#offenders + 1] = f end
      saw_child = saw_child or saw
      task.sleep(0.005)
    end
    local r = waiter:join()
    assert.same({}, offenders)
    assert.is_true(saw_child, "the scan never saw the task's `sleep 0.6`")
    assert.same(0, r.code, r.stderr)
    assert_no_leak({ stdout = r.stdout, stderr = r.stderr }, values, url_pw)
    assert_no_leak(files_under(dir .. "/.slipway"), values, url_pw)
    check_record(dir)
    -- the values were printed, and masked
    for _, line in ipairs({ "[child-output] ***\n", "[http] echoed header *** and body ***\n",
                            "[command-line] refused: true: ", "[failing-command] the password is ***\n",
                            "[failing-command]   the token is ***\n", "[matrix[m-***]] matrix item m-***\n",
                            "[urls] fetched http://deploy:***@127.0.0.1:", "warning: a warning that names ***\n",
                            ": deploy.lua:84: failed while using *** at http://deploy:***@db.internal/\n",
                            "sh: cmd[2] is a secret: a secret never goes on a command line" }) do
      assert(r.stdout:find(line, 1, true), "no " .. line .. " in:\n" .. r.stdout)
    end
    assert.same("at the top level: ***\n", r.stderr)
  end)

  it("on the JSON reporter: no NDJSON event holds a value", function()
    local dir, env, values, url_pw = setup_project(port())
    local r = H.run_json(dir, { "-p", "token=" .. values[2] }, { env = env, timeout = "60s" })
    assert.same(0, r.code, r.stderr)
    assert_no_leak({ stdout = r.stdout, stderr = r.stderr }, values, url_pw)
    assert_no_leak(files_under(dir .. "/.slipway"), values, url_pw)
    check_record(dir)
    assert.same({ api_key = "***", signing_key = "***", token = "***" }, r.events[1].params)
    local masked = 0
    for _, ev in ipairs(H.of(r.events, "output")) do
      if ev.line:find("***", 1, true) then masked = masked + 1 end
    end
    assert.is_true(masked > 60, "only " .. masked .. " output lines were masked")
  end)

  it("on the GitHub reporter: ::add-mask:: first, then nothing in stdout, $GITHUB_OUTPUT or the step summary", function()
    local dir, env, values, url_pw, v = setup_project(port())
    local outputs, summary = dir .. "/github_output", dir .. "/step_summary.md"
    assert(fs.write(outputs, ""))
    assert(fs.write(summary, ""))
    local r = H.run(dir, { "run", "-p", "token=" .. values[2] }, { timeout = "60s", env = env_with(env,
      { GITHUB_ACTIONS = "true", GITHUB_OUTPUT = outputs, GITHUB_STEP_SUMMARY = summary }) })
    assert.same(0, r.code, r.stderr)
    -- every value, and each line of the multi-line one, announced before slipway prints anything
    local announced, rest = {}, {}
    for line in r.stdout:gmatch("[^\n]*\n") do
      local value = line:match("^::add%-mask::(.*)\n$")
      if value and #rest == 0 then announced[#announced + 1] = value else rest[#rest + 1] = line end
    end
    local escaped = v.pem:gsub("\n", "%%0A")
    local pem_lines = {}
    for l in v.pem:gmatch("[^\n]+") do pem_lines[#pem_lines + 1] = l end
    table.sort(announced)
    local want = { v.env, values[2], v.api_key, v.signing, escaped, v.db, table.unpack(pem_lines) }
    table.sort(want)
    assert.same(want, announced)
    local stdout = table.concat(rest)
    assert.is_nil(stdout:find("::add-mask::", 1, true))
    assert_no_leak({ stdout = stdout, stderr = r.stderr, github_output = assert(fs.read(outputs)),
                     step_summary = assert(fs.read(summary)) }, values, url_pw)
    fs.remove(outputs)
    fs.remove(summary)
    assert_no_leak(files_under(dir .. "/.slipway"), values, url_pw)
    check_record(dir)
  end)

  it("on the terminal reporter, in a pseudo-terminal", function()
    local dir, env, values, url_pw = setup_project(port())
    local typescript = dir .. "/typescript"
    local cmd = ("%s run -p token=%s"):format(H.slipway, values[2])
    local r = assert(proc.run({ "script", "-qfec", cmd, typescript },
      { cwd = dir, env = env_with(env, { TERM = "xterm", COLUMNS = "200", LINES = "50" }), timeout = "60s" }))
    assert.same(0, r.code, r.stdout)
    -- (without script's own header and footer, which name the command it ran)
    local screen = assert(fs.read(typescript)):gsub("^Script started[^\n]*\n", ""):gsub("\nScript done[^\n]*\n?$", "")
    assert.truthy(screen:find("slipway: running deploy.lua", 1, true))
    assert.truthy(screen:find("\27[", 1, true), "not the terminal reporter")
    fs.remove(typescript)
    assert_no_leak({ typescript = screen, stdout = r.stdout }, values, url_pw)
    assert_no_leak(files_under(dir .. "/.slipway"), values, url_pw)
    check_record(dir)
  end)
end)
