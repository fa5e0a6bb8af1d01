-- The global `secret` (slipway.secrets): resolving a secret from the
-- environment, a file, a .env file or a command, with errors that say
-- where it looked; and param.secret, a pipeline parameter whose value is a
-- Secret (*** in plans, events and records).
local secrets = require("slipway.secrets")
local leaks = require("support.leaks")
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local json = require("slipway.json")

local HERE = "tests/secrets_spec.lua"

-- pcall(secrets, ...) -> false, message with this file's line replaced by "N"
local function fails(...)
  local ok, err = pcall(secrets, ...)
  assert.is_false(ok)
  return (err:gsub("^" .. HERE:gsub("%p", "%%%0") .. ":%d+: ", ""))
end

describe("secret()", function()
  leaks.check()
  local dir
  before_each(function()
    dir = assert(fs.tempdir("slipway-secrets-"))
  end)
  after_each(function()
    fs.remove(dir, { recursive = true })
  end)

  it("reads the environment by default, the variable named by key if given", function()
    local s = secrets("HOME")
    assert.same({ "***", os.getenv("HOME"), "HOME", true }, { tostring(s), s:reveal(), s.name, secrets.is_secret(s) })
    assert.same(os.getenv("PATH"), secrets("search_path", { key = "PATH" }):reveal())
    assert.same("the environment variable SLIPWAY_NO_SUCH_SECRET is not set",
      fails("SLIPWAY_NO_SUCH_SECRET"):match("^secret SLIPWAY_NO_SUCH_SECRET: (.*)$"))
    assert.is_nil(secrets("SLIPWAY_NO_SUCH_SECRET", { optional = true }))
  end)

  it("reads a file, /run/secrets/NAME by default, without its final newline", function()
    assert(fs.write(dir .. "/db", "file-secret-value\n"))
    assert(fs.write(dir .. "/pem", "-----BEGIN-----\nabcd\n-----END-----\n\n"))
    assert.same("file-secret-value", secrets("db", { from = "file", path = dir .. "/db" }):reveal())
    assert.same("-----BEGIN-----\nabcd\n-----END-----\n", secrets("pem", { from = "file", path = dir .. "/pem" }):reveal())
    assert.same("secret slipway_test_absent: cannot read /run/secrets/slipway_test_absent: No such file or directory",
      fails("slipway_test_absent", { from = "file" }))
    assert.is_nil(secrets("slipway_test_absent", { from = "file", optional = true }))
    assert.same("secret a/b: the name is no file name under /run/secrets: give path = ...", fails("a/b", { from = "file" }))
  end)

  it("reads a .env file (./.env by default), the variable named by key if given", function()
    assert(fs.write(dir .. "/.env", 'export STRIPE_KEY="sk live\\nsecond"\nDATABASE_URL=postgres://u:p@db/app # prod\nSHORT=abc\n'))
    local path = dir .. "/.env"
    assert.same("sk live\nsecond", secrets("STRIPE_KEY", { from = "dotenv", path = path }):reveal())
    assert.same("postgres://u:p@db/app", secrets("db", { from = "dotenv", path = path, key = "DATABASE_URL" }):reveal())
    assert.same(("secret MISSING: %s has no MISSING"):format(path), fails("MISSING", { from = "dotenv", path = path }))
    assert.same(("secret SHORT: SHORT in %s is 3 characters long; a secret must be 4 or more (masking so short a "
      .. "value would hide ordinary text everywhere)"):format(path), fails("SHORT", { from = "dotenv", path = path }))
    assert(fs.write(dir .. "/bad.env", "A=1\nnot a line\n"))
    assert.same(("secret A: %s/bad.env:2: expected NAME=value"):format(dir),
      fails("A", { from = "dotenv", path = dir .. "/bad.env", optional = true }))
  end)

  it("runs a command (a shell string or an argv list) and takes its stdout, trimmed", function()
    assert.same("cmd-value-1", secrets("a", { from = "cmd", cmd = "printf '  cmd-value-1\\n\\n'" }):reveal())
    assert.same("argv-value", secrets("b", { from = "cmd", cmd = { "printf", "%s", "argv-value" } }):reveal())
    assert.same("secret c: the command `echo denied >&2; exit 3` failed: exit code 3: denied",
      fails("c", { from = "cmd", cmd = "echo denied >&2; exit 3", optional = true }))
    assert.same("secret d: the command `sleep 5` failed: timed out after 200ms",
      fails("d", { from = "cmd", cmd = "sleep 5", timeout = "200ms" }))
    assert.same("secret e: the output of `true` is empty", fails("e", { from = "cmd", cmd = "true" }))
    assert.is_nil(secrets("e", { from = "cmd", cmd = "true", optional = true }))
  end)

  it("refuses values under 4 characters, and names the mistakes in the call", function()
    assert.same("secret SLIPWAY_SHORT: the environment variable SLIPWAY_SHORT is 2 characters long; a secret must "
      .. "be 4 or more (masking so short a value would hide ordinary text everywhere)",
      require("slipway.proc").run and (function()
        local r = assert(require("slipway.proc").run({ os.getenv("SLIPWAY"), "-e", "secret('SLIPWAY_SHORT')" },
          { env = { SLIPWAY_SHORT = "ab" } }))
        return r.stderr:match("^%(command line%):1: (.-)\n")
      end)())
    assert.same("secret x: from must be \"env\", \"file\", \"dotenv\" or \"cmd\", got vault", fails("x", { from = "vault" }))
    assert.same("secret x: option 'path' is for from = \"file\" or \"dotenv\", not \"env\"", fails("x", { path = "p" }))
    assert.same("secret x: option 'cmd' is for from = \"cmd\", not \"file\"", fails("x", { from = "file", cmd = "c" }))
    assert.same("secret x: from = \"cmd\" needs cmd = a shell string or an argv list, got nil", fails("x", { from = "cmd" }))
    assert.same("secret x: unknown option 'form' (valid: from, path, key, cmd, timeout, optional)", fails("x", { form = "env" }))
    assert.same("secret: expected a name (a non-empty string), got number", fails(42))
  end)
end)

describe("secrets in a pipeline", function()
  after_each(H.cleanup)

  it("a secret missing at the top level is bad input (exit 2) naming where it looked", function()
    local dir = H.project { ["deploy.lua"] = 'local t = secret("SLIPWAY_TEST_TOKEN")\ntask("a", function() end)\n' }
    local r = H.run(dir, { "run" })
    assert.same({ 2, "", "slipway: deploy.lua:1: secret SLIPWAY_TEST_TOKEN: the environment variable "
      .. "SLIPWAY_TEST_TOKEN is not set\n" }, { r.code, r.stdout, r.stderr })
  end)

  it("plan, graph, ci github and history read no secret: they work where the secrets are not", function()
    local dir = H.project {
      ["deploy.lua"] = [[
local key = secret("api", { from = "cmd", cmd = "touch command-ran; echo api-key-1" })
local token = secret("SLIPWAY_TEST_TOKEN")
print("token " .. token:reveal())
task("deploy", function() sh('test -n "$T"', { env = { T = token } }) end)
]],
    }
    for _, args in ipairs({ { "plan" }, { "graph" }, { "ci", "github" }, { "history" } }) do
      local r = H.run(dir, args)
      assert.same(0, r.code, table.concat(args, " ") .. ": " .. r.stderr)
      assert.is_nil((r.stdout .. r.stderr):find("not read by this command", 1, true), r.stdout .. r.stderr)
    end
    assert.is_false(fs.exists(dir .. "/command-ran"))
    assert.matches("SLIPWAY_TEST_TOKEN: ${{ secrets.SLIPWAY_TEST_TOKEN }}",
      assert(fs.read(dir .. "/.github/workflows/deploy.yml")), 1, true)
    -- the run reads them, and one that is not there stops it before anything runs
    local r = H.run(dir, { "run" })
    assert.same(2, r.code)
    assert.matches("secret SLIPWAY_TEST_TOKEN: the environment variable SLIPWAY_TEST_TOKEN is not set", r.stderr, 1, true)
    assert.is_true(fs.exists(dir .. "/command-ran"))
  end)

  it("passwords in URLs are *** in output, events and records without any secret", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function()
  print("cloning https://bot:gh-pass-1@github.com/x.git")
  return { db = "postgres://app:db-pass-2@db:5432/app" }
end)
task("b", { needs = "a" }, function()
  local _, err = http.request("http://user:curl-pass-3@127.0.0.1:1/")
  error(err)
end)
]] }
    local r = H.run_json(dir)
    assert.same(1, r.code)
    for _, pw in ipairs({ "gh-pass-1", "db-pass-2", "curl-pass-3" }) do
      assert.is_nil(r.stdout:find(pw, 1, true), pw)
    end
    assert.same("cloning https://bot:***@github.com/x.git", H.of(r.events, "output")[1].line)
    assert.matches("ECONNREFUSED: connection refused: http://user:%*%*%*@127.0.0.1:1/$",
      H.of(r.events, "task_finished")[2].error)
    local record = assert(fs.read(H.of(r.events, "run_finished")[1].record))
    assert.truthy(record:find("postgres://app:***@db:5432/app", 1, true))
    assert.is_nil(record:find("pass-", 1, true))
  end)

  it("a command runs at the top level (reading is no side effect), and plan shows nothing of it", function()
    local dir = H.project {
      ["deploy.lua"] = [[
local key = secret("api", { from = "cmd", cmd = "cat key.txt" })
print("loaded " .. key:reveal())
task("use", function() sh('test "$K" = "$(cat key.txt)" && echo "ok $K"', { env = { K = key } }) end)
]],
      ["key.txt"] = "load-time-key\n",
    }
    local r = H.run(dir, { "run", "--reporter", "plain" })
    assert.same(0, r.code)
    assert.same("loaded ***\n", r.stderr)
    assert.truthy(r.stdout:find("[use] ok ***\n", 1, true))
    assert.is_nil(r.stdout:find("load-time-key", 1, true))
    r = H.run(dir, { "plan" })
    assert.same({ 0, "loaded ***\n" }, { r.code, r.stderr })
  end)

  local PARAMS = [[
param.secret("token", "the deploy token")
param.secret("registry_password", { from = "file", path = "registry.pw", description = "registry" })
param.secret("sentry_dsn", { optional = true })
task("show", function(p)
  print(p.token, p.registry_password, tostring(p.sentry_dsn))
  -- (the values through env: a command line holding them is refused)
  sh('test "$T:$R" = "$E" && echo same', { env = { T = p.token, R = p.registry_password,
    E = "given-token-1:from-file-pw" } })
  return p.token
end)
]]

  it("param.secret: from -p, SLIPWAY_PARAM_* or its source; *** in the plan, events and record", function()
    local dir = H.project { ["deploy.lua"] = PARAMS, ["registry.pw"] = "from-file-pw\n" }
    local r = H.run_json(dir, { "-p", "token=given-token-1" })
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.same({ registry_password = "***", sentry_dsn = false, token = "***" }, r.events[1].params)
    local lines = {}
    for _, ev in ipairs(H.of(r.events, "output")) do lines[#lines + 1] = ev.line end
    assert.same({ "***\t***\tfalse", "same" }, lines)
    local record_path = H.of(r.events, "run_finished")[1].record
    local record = assert(fs.read(record_path))
    assert.is_nil(record:find("given-token-1", 1, true))
    assert.is_nil(record:find("from-file-pw", 1, true))
    local doc = json.decode(record)
    assert.same({ registry_password = "***", sentry_dsn = false, token = "***" }, doc.params)
    assert.same("***", doc.tasks[1].result)

    r = H.run(dir, { "run", "--json" }, { env = { SLIPWAY_PARAM_TOKEN = "given-token-1" } })
    assert.same(0, r.code)
    r = H.run(dir, { "plan", "--json" }, { env = { SLIPWAY_PARAM_TOKEN = "given-token-1" } })
    assert.same({ registry_password = "***", sentry_dsn = false, token = "***" }, json.decode(r.stdout).params)
    r = H.run(dir, { "plan" }, { env = { SLIPWAY_PARAM_TOKEN = "given-token-1" } })
    assert.is_nil(r.stdout:find("given-token-1", 1, true))
    assert.truthy(r.stdout:find("token = ***", 1, true))
  end)

  it("param.secret: required, too short, or a bad source is bad input that shows no value", function()
    local dir = H.project { ["deploy.lua"] = PARAMS, ["registry.pw"] = "from-file-pw\n" }
    local r = H.run(dir, { "run" })
    assert.same({ 2, "slipway: deploy.lua:1: parameter 'token': a secret is required: set SLIPWAY_PARAM_TOKEN "
      .. "(or -p token=VALUE, which other users can see in the process list)\n" }, { r.code, r.stderr })
    r = H.run(dir, { "run", "-p", "token=abc" })
    assert.same({ 2, "slipway: deploy.lua:1: parameter 'token': the value from -p token is 3 characters long; "
      .. "a secret must be 4 or more (masking so short a value would hide ordinary text everywhere)\n" },
      { r.code, r.stderr })
    r = H.run(dir, { "run" }, { env = { SLIPWAY_PARAM_TOKEN = "xyz" } })
    assert.same("slipway: deploy.lua:1: parameter 'token': the value from SLIPWAY_PARAM_TOKEN is 3 characters long; "
      .. "a secret must be 4 or more (masking so short a value would hide ordinary text everywhere)\n", r.stderr)
    fs.remove(dir .. "/registry.pw")
    r = H.run(dir, { "run", "-p", "token=given-token-1" })
    assert.same({ 2, "slipway: deploy.lua:2: parameter 'registry_password': cannot read registry.pw: "
      .. "No such file or directory\n" }, { r.code, r.stderr })
    dir = H.project { ["deploy.lua"] = 'param.secret("t", { from = "cmd" })\n' }
    r = H.run(dir, { "plan" })
    assert.same({ 2, "slipway: deploy.lua:1: param.secret: 't': from = \"cmd\" needs cmd = a shell string or an argv "
      .. "list, got nil\n" }, { r.code, r.stderr })
    dir = H.project { ["deploy.lua"] = 'param.secret("t", { default = "x" })\n' }
    r = H.run(dir, { "plan" })
    assert.same("slipway: deploy.lua:1: param.secret: unknown option 'default' (valid: description, from, path, key, "
      .. "cmd, timeout, optional)\n", r.stderr)
  end)
end)
