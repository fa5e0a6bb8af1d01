-- slipway.pulumi against the fake Pulumi CLI (tests/fakes/pulumi: the real
-- one cannot be installed here; the fake answers as pulumi/pulumi's sources
-- do, with engine events shaped like ../shared/specs/pulumi's samples),
-- and the event log reader (src/pulumi.c) against those real samples.
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local base64 = require("slipway.base64")
local secret = require("slipway.secret")
local native = require("slipway._pulumi")
local pulumi = require("slipway.pulumi")
local fake_run = require("support.fake_run")
local repo = require("support.repo")
local H = require("support.pipeline_helper")
local leaks = require("support.leaks")
local support = require("support.proc_helpers")

local FAKE = repo.ROOT .. "/tests/fakes/pulumi"
local SAMPLES = repo.SHARED .. "/specs/pulumi/engine-events"
local PASSPHRASE = "correct horse battery staple"
local DB_PASSWORD = "s3cr3t/p@ss+w0rd=?"
local TOKEN = "pul-0123456789abcdef0123456789abcdef"
secret.new(PASSPHRASE, "PULUMI_CONFIG_PASSPHRASE")
secret.new(DB_PASSWORD, "DB_PASSWORD")
secret.new(TOKEN, "PULUMI_ACCESS_TOKEN")

local PROGRAM = [[
name: infra
runtime: yaml
resources:
  bucket:
    type: aws:s3/bucket:Bucket
    properties:
      acl: ${acl}
      region: ${region}
    options:
      replaceOnChanges: [ region ]
  db:
    type: aws:rds/instance:Instance
    properties:
      password: ${dbPassword}
      size: ${size}
outputs:
  bucketName: ${bucket.id}
  dbPassword: ${dbPassword}
  size: ${size}
]]

local CONFIG = { acl = "private", region = "eu", size = "small" }

---------------------------------------------------------------- helpers

local spaces = {}

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

-- A project, a DIY backend and a PULUMI_HOME in a fresh directory.
local function workspace(program)
  local root = assert(fs.tempdir("slipway-pulumi-spec-"))
  spaces[#spaces + 1] = root
  local w = { root = root, project = root .. "/project", state = root .. "/state", home = root .. "/home",
              log = root .. "/fake.log" }
  for _, d in ipairs({ w.project, w.state, w.home }) do assert(fs.mkdir(d)) end
  assert(fs.write(w.project .. "/Pulumi.yaml", program or PROGRAM))
  -- the options of a call, extra ones (and extra env) added
  function w.opts(extra)
    local o = { cwd = w.project, stack = "dev", bin = FAKE, backend = "file://" .. w.state, home = w.home,
                env = { PULUMI_CONFIG_PASSPHRASE = secret.new(PASSPHRASE), FAKE_PULUMI_LOG = w.log } }
    for k, v in pairs(extra or {}) do
      if k == "env" then
        for ek, ev in pairs(v) do o.env[ek] = ev end
      else
        o[k] = v
      end
    end
    return o
  end
  -- the up every test starts from
  function w.up(extra)
    local o = { config = copy(CONFIG), secret_config = { dbPassword = DB_PASSWORD } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return pulumi.up(w.opts(o))
  end
  -- the fake's runs so far: { argv, pid, automation_api, signal? }
  function w.runs()
    local out = {}
    for line in (fs.read(w.log) or ""):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
    return out
  end
  function w.commands()
    local out = {}
    for _, r in ipairs(w.runs()) do
      if r.argv then out[#out + 1] = table.concat(r.argv, " ") end
    end
    return out
  end
  -- the fake run directly
  function w.fake(args, env)
    local e = { PULUMI_BACKEND_URL = "file://" .. w.state, PULUMI_HOME = w.home, PULUMI_CONFIG_PASSPHRASE = PASSPHRASE }
    for k, v in pairs(env or {}) do e[k] = v end
    local argv = { FAKE }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return assert(proc.run(argv, { cwd = w.project, env = e }))
  end
  return w
end

local function cleanup()
  for _, d in ipairs(spaces) do fs.remove(d, { recursive = true }) end
  spaces = {}
  H.cleanup()
end

-- Lines that say `pattern` (plain text).
local function find(lines, text)
  for _, l in ipairs(lines) do
    if l:find(text, 1, true) then return l end
  end
end

local function line_of(f)
  return debug.getinfo(f or 2, "l").currentline
end

-- Every form of a secret that must not show: raw, base64, URL-encoded.
local function forms(value)
  local url = value:gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  return { value, base64.encode(value), url, url:lower() }
end

local function leaked(text, values)
  for _, v in ipairs(values) do
    for _, f in ipairs(forms(v)) do
      if text:find(f, 1, true) then return f end
    end
  end
end

local ALL_SECRETS = { PASSPHRASE, DB_PASSWORD, TOKEN }

---------------------------------------------------------------- the event log

describe("the event log reader", function()
  leaks.check()
  after_each(cleanup)

  local function decoded(line)
    local e = json.decode(line)
    for k, v in pairs(e) do
      if k ~= "sequence" and k ~= "timestamp" then return k, v, e end
    end
  end

  it("reads every real sample stream as the JSON decoder does, old and new states left out", function()
    local n = 0
    for _, name in ipairs(assert(fs.list(SAMPLES))) do
      if name:match("%.ndjson$") then
        local text = assert(fs.read(SAMPLES .. "/" .. name))
        local log = native.event_log(SAMPLES .. "/" .. name, json.decode)
        local events = assert(log:read(true))
        log:close()
        local i = 0
        for line in text:gmatch("[^\n]+") do
          i = i + 1
          n = n + 1
          local kind, body, whole = decoded(line)
          local e = events[i]
          assert.same(kind, e.kind, name .. ":" .. i)
          assert.same(whole.sequence, e.sequence)
          assert.same(whole.timestamp, e.timestamp)
          if body.metadata then
            local m = body.metadata
            assert.same({ m.op, m.urn, m.type, m.logical }, { e.body.metadata.op, e.body.metadata.urn, e.body.metadata.type, e.body.metadata.logical })
            assert.is_nil(e.body.metadata.old)
            assert.is_nil(e.body.metadata.provider)
            if m.type == "pulumi:pulumi:Stack" and m.new ~= json.null then
              assert.same(m.new, e.body.metadata.new)
            else
              assert.is_nil(e.body.metadata.new)
            end
            assert.same(m.diffs, e.body.metadata.diffs)
            assert.same(m.detailedDiff ~= json.null and m.detailedDiff or nil, e.body.metadata.detailedDiff)
            assert.same(body.planning, e.body.planning)
            assert.same(body.status, e.body.status)
          else
            assert.same(body, e.body)
          end
        end
        assert.same(i, #events, name)
      end
    end
    assert.is_true(n > 80)
  end)

  it("gives complete lines only, as the writer appends them, and the rest when told it is final", function()
    local w = workspace()
    local path = w.root .. "/events.ndjson"
    local log = native.event_log(path, json.decode)
    assert.same({}, assert(log:read()))                     -- not created yet
    assert(fs.write(path, '{"sequence":1,"timestamp":2,"cancelEv'))
    assert.same({}, assert(log:read()))
    assert(fs.append(path, 'ent":{}}\n{"sequence":2,"timestamp":3,"summaryEvent":{"resourceChanges":{"create":1}}}\n{"seq'))
    local got = assert(log:read())
    assert.same({ { kind = "cancelEvent", sequence = 1, timestamp = 2, body = {} },
                  { kind = "summaryEvent", sequence = 2, timestamp = 3, body = { resourceChanges = { create = 1 } } } }, got)
    assert(fs.append(path, 'uence":3,"timestamp":4,"stdoutEvent":{"message":"hi","color":"raw"}}'))
    assert.same({}, assert(log:read()))
    assert.same({ { kind = "stdoutEvent", sequence = 3, timestamp = 4, body = { message = "hi", color = "raw" } } },
      assert(log:read(true)))
    log:close()
  end)

  it("reads in batches, an event longer than a batch whole, and takes the unterminated rest only at the end", function()
    local w = workspace()
    local path = w.root .. "/events.ndjson"
    local big = ('{"sequence":1,"timestamp":2,"stdoutEvent":{"message":"%s","color":"raw"}}\n'):format(("x"):rep(300000))
    local small = {}
    for i = 1, 3000 do small[i] = ('{"sequence":%d,"timestamp":2,"cancelEvent":{}}'):format(i + 1) end
    assert(fs.write(path, big .. table.concat(small, "\n")))      -- the last one unterminated
    local log = native.event_log(path, json.decode)
    local got = {}
    repeat
      local list = assert(log:read(true))
      for _, e in ipairs(list) do got[#got + 1] = e end
    until #list == 0
    log:close()
    assert.same(3001, #got)
    assert.same(300000, #got[1].body.message)
    for i = 2, 3001 do assert.same({ i, "cancelEvent" }, { got[i].sequence, got[i].kind }) end
  end)

  it("decodes escaped values in a resource event with the JSON decoder", function()
    local w = workspace()
    local path = w.root .. "/events.ndjson"
    assert(fs.write(path, '{"sequence":1,"timestamp":2,"resourcePreEvent":{"metadata":{"op":"create",'
      .. '"urn":"urn:pulumi:dev::p::t:m:T::caf\\u00e9 \\"q\\"","type":"t:m:T","old":{"x":[1,{"y":"\\"}"}]},'
      .. '"new":null,"diffs":["a\\nb"],"detailedDiff":{"a":{"diffKind":"add","inputDiff":true}},"logical":true},'
      .. '"planning":true}}\n'))
    local log = native.event_log(path, json.decode)
    local e = assert(log:read())[1]
    log:close()
    assert.same({ metadata = { op = "create", urn = 'urn:pulumi:dev::p::t:m:T::café "q"', type = "t:m:T",
      diffs = { "a\nb" }, detailedDiff = { a = { diffKind = "add", inputDiff = true } }, logical = true },
      planning = true }, e.body)
  end)

  it("turns what is not one event into an invalid event and goes on", function()
    local w = workspace()
    local path = w.root .. "/events.ndjson"
    assert(fs.write(path, table.concat({
      'not json', '[1,2]', '{"sequence":1}', '{"a":{},"b":{}}', '{"summaryEvent":{"x":tru}}',
      '{"resOutputsEvent":{"metadata":{"op":"same","urn":"u","type":"t","old":{"a":[}}}}', '{"cancelEvent":{}} x',
      '', '{"cancelEvent":{}}', '' }, "\n")))
    local log = native.event_log(path, json.decode)
    local events = assert(log:read())
    log:close()
    local kinds, errors = {}, {}
    for i, e in ipairs(events) do
      kinds[i] = e.kind
      errors[i] = e.error
    end
    assert.same({ "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "cancelEvent" }, kinds)
    assert.same("not json", events[1].line)
    assert.same("no event in the object", errors[3])
    assert.same("more than one event in the object", errors[4])
    assert.truthy(errors[5]:find("json:", 1, true))
    assert.same("unexpected data after the event", errors[7])
  end)
end)

---------------------------------------------------------------- stacks

describe("pulumi.stack", function()
  leaks.check()
  after_each(cleanup)

  it("creates a stack the CLI says does not exist, with select --create, every call non-interactive", function()
    local w = workspace()
    local r = pulumi.stack(w.opts({ secrets_provider = "passphrase" }))
    assert.same({ stack = "dev", created = true, config = {}, secret_keys = {} }, r)
    assert.same({ "stack select --stack dev --non-interactive",
                  "stack select --stack dev --create --secrets-provider passphrase --non-interactive" }, w.commands())
    for _, run in ipairs(w.runs()) do assert.same("true", run.automation_api) end
    -- a second time it is there
    assert.same(false, pulumi.stack(w.opts()).created)
  end)

  it("falls back to stack init on a CLI without select --create", function()
    local w = workspace()
    assert.is_true(pulumi.stack(w.opts({ env = { FAKE_PULUMI_NO_SELECT_CREATE = "1" } })).created)
    assert.same({ "stack select --stack dev --non-interactive", "stack select --stack dev --create --non-interactive",
                  "stack init dev --non-interactive" }, w.commands())
    assert.same(0, w.fake({ "stack", "select", "--stack", "dev" }).code)
  end)

  it("sets plain config in one set-all and each secret through the CLI's stdin, never on argv", function()
    local w = workspace()
    local r = pulumi.stack(w.opts({ config = { acl = "private", replicas = 3, public = false, token = secret.new("tok-secret-1") },
                                     secret_config = { dbPassword = DB_PASSWORD } }))
    assert.same({ acl = "private", replicas = "3", public = "false" }, r.config)
    assert.same({ "token", "dbPassword" }, r.secret_keys)
    local commands = w.commands()
    assert.same("config set-all --stack dev --plaintext acl=private --plaintext public=false --plaintext replicas=3 --non-interactive", commands[3])
    assert.same("config set token --secret --stack dev --non-interactive", commands[4])
    assert.same("config set dbPassword --secret --stack dev --non-interactive", commands[5])
    local settings = assert(fs.read(w.project .. "/Pulumi.dev.yaml"))
    assert.is_nil(leaked(settings, { DB_PASSWORD, "tok-secret-1" }))
    assert.truthy(settings:find("infra:dbPassword:\n    secure: v1:", 1, true))
    -- the CLI got the values: it decrypts them back
    local shown = json.decode(w.fake({ "config", "--json", "--show-secrets", "--stack", "dev" }).stdout)
    assert.same({ value = DB_PASSWORD, secret = true }, shown["infra:dbPassword"])
    assert.same({ value = "tok-secret-1", secret = true }, shown["infra:token"])
    assert.same({ value = "3", secret = false }, shown["infra:replicas"])
  end)

  it("makes a plain secret_config value a Secret, and refuses one too short to mask", function()
    local w = workspace()
    pulumi.stack(w.opts({ secret_config = { apiKey = "plain-api-key-1" } }))
    local known = {}
    for _, v in ipairs(secret.values()) do known[v] = true end
    assert.is_true(known["plain-api-key-1"])
    local line = line_of(); local ok, err = pcall(pulumi.stack, w.opts({ secret_config = { pin = "123" } }))
    assert.same(false, ok)
    assert.truthy(err:find(("^tests/pulumi_spec.lua:%d: pulumi.stack: secret_config.pin: a secret must be 4 characters or more"):format(line)))
  end)

  it("raises on bad options at the caller's line", function()
    local w = workspace()
    local cases = {
      { { cwd = w.project, stack = "dev", confg = {} }, "pulumi.stack: unknown option 'confg'" },
      { { stack = "dev" }, "pulumi.stack: option 'cwd' is required (the Pulumi project's directory)" },
      { { cwd = w.project }, "pulumi.stack: option 'stack' is required (the stack's name)" },
      { { cwd = w.root .. "/nope", stack = "dev" }, "pulumi.stack: cwd " .. w.root .. "/nope: no such directory" },
      { { cwd = w.project, stack = "dev", config = { a = {} } }, "pulumi.stack: config.a must be a string, a number, a boolean or a Secret, got table" },
      { { cwd = w.project, stack = "dev", secret_config = { a = 1 } }, "pulumi.stack: secret_config.a must be a string or a Secret, got number" },
      { { cwd = w.project, stack = "dev", timeout = "soon" }, "pulumi.stack: option 'timeout': " },
    }
    for _, case in ipairs(cases) do
      local line = line_of(); local ok, err = pcall(pulumi.stack, case[1])
      assert.same(false, ok)
      local want = ("tests/pulumi_spec.lua:%d: %s"):format(line, case[2])
      assert.same(want, err:sub(1, #want))
    end
    local line = line_of(); local ok, err = pcall(pulumi.up, w.opts({ rollback = "always" }))
    assert.same(false, ok)
    assert.truthy(err:find(("^tests/pulumi_spec.lua:%d: pulumi.up: option 'rollback' must be \"pulumi\""):format(line)))
  end)

  it("says what to do when the CLI is not there", function()
    local w = workspace()
    local line = line_of(); local ok, err = pcall(pulumi.stack, w.opts({ bin = "pulumi-not-installed" }))
    assert.same({ false, ("tests/pulumi_spec.lua:%d: pulumi.stack: cannot run the Pulumi CLI: pulumi-not-installed is not on PATH (install it, or set PULUMI_BIN or bin = \"/path/to/pulumi\")"):format(line) },
      { ok, err })
  end)

  it("finds the CLI in PULUMI_BIN", function()
    local w = workspace()
    local r = H.run(w.project, { "-e", ([[print(pulumi.stack{ cwd = %q, stack = "dev", backend = %q, home = %q,
      env = { PULUMI_CONFIG_PASSPHRASE = "x1234" } }.created)]]):format(w.project, "file://" .. w.state, w.home) },
      { env = { PULUMI_BIN = FAKE } })
    assert.same({ 0, "true\n" }, { r.code, r.stdout:match("[^\n]*\n$") }, r.stderr)
  end)
end)

---------------------------------------------------------------- up

describe("pulumi.up", function()
  leaks.check()
  after_each(cleanup)

  it("shows each resource as the engine reports it and returns the changes and outputs", function()
    local w = workspace()
    local run, ok, r = fake_run.within(function() return w.up() end)
    assert.is_true(ok, r)
    assert.same({
      "stdout: pulumi: created stack dev",
      "stdout: pulumi up: stack dev",
      "stdout: + aws:s3/bucket:Bucket bucket created",
      "stdout: + aws:rds/instance:Instance db created",
    }, { table.unpack(run.lines, 1, 4) })
    assert.truthy(run.lines[5]:match("^stdout: Resources: 3 created %(%d+%.%ds%)$"), run.lines[5])
    assert.same({ create = 3, update = 0, replace = 0, delete = 0, same = 0 }, r.changes)
    assert.same(1, r.version)
    assert.is_true(r.duration > 0)
    assert.same({ "bucketName", "dbPassword", "size" }, (function()
      local k = {}
      for name in pairs(r.outputs) do k[#k + 1] = name end
      table.sort(k)
      return k
    end)())
    assert.same("small", r.outputs.size)
    assert.truthy(r.outputs.bucketName:match("^bucket%-%x+$"))
    assert.is_true(secret.is_secret(r.outputs.dbPassword))
    assert.same("***", tostring(r.outputs.dbPassword))
    assert.same(DB_PASSWORD, secret.reveal(r.outputs.dbPassword))
    assert.same("pulumi:dbPassword", r.outputs.dbPassword.name)
    -- the commands, as the Automation API runs them
    local commands = w.commands()
    assert.same("up --yes --skip-preview --exec-kind=auto.local --stack dev --event-log", commands[5]:match("^(.-) /"))
    assert.same({ "stack output --json --stack dev --non-interactive",
                  "stack output --json --show-secrets --stack dev --non-interactive",
                  "stack history --json --page-size 1 --page 1 --stack dev --non-interactive" },
                { table.unpack(commands, 6, 8) })
    -- a later run with new config: the diff, then a replacement, then a deletion
    run, ok, r = fake_run.within(function()
      return w.up({ config = { acl = "public-read", region = "eu", size = "large" } })
    end)
    assert.is_true(ok, r)
    assert.truthy(find(run.lines, "stdout: ~ aws:s3/bucket:Bucket bucket updated [diff: ~acl]"))
    assert.truthy(find(run.lines, "stdout: ~ aws:rds/instance:Instance db updated [diff: ~size]"))
    assert.same({ create = 0, update = 2, replace = 0, delete = 0, same = 1 }, r.changes)
    assert.same(2, r.version)
    run, ok, r = fake_run.within(function() return w.up({ config = { acl = "public-read", region = "us", size = "large" } }) end)
    assert.is_true(ok, r)
    assert.truthy(find(run.lines, "stdout: +- aws:s3/bucket:Bucket bucket replaced [diff: ~region]"))
    assert.same(1, r.changes.replace)
    assert(fs.write(w.project .. "/Pulumi.yaml", (PROGRAM:gsub("  db:.-\noutputs:", "outputs:"):gsub("  dbPassword: %${dbPassword}\n  size: %${size}\n", ""))))
    run, ok, r = fake_run.within(function() return w.up({ config = { acl = "public-read", region = "us", size = "large" } }) end)
    assert.is_true(ok, r)
    assert.truthy(find(run.lines, "stdout: - aws:rds/instance:Instance db deleted"))
    assert.same(1, r.changes.delete)
  end)

  it("shows the engine's diagnostics: warnings as warnings, program output as output", function()
    local w = workspace()
    local run, ok, r = fake_run.within(function()
      return w.up({ env = { FAKE_PULUMI_WARN = "deprecated property acl", FAKE_PULUMI_INFO = "hello from the program" } })
    end)
    assert.is_true(ok, r)
    assert.same({ "pulumi: deprecated property acl" }, run.warnings)
    assert.same({ "deprecated property acl" }, r.warnings)
    assert.truthy(find(run.lines, "stdout: hello from the program"))
  end)

  it("records the change, without secrets and with no undo unless asked", function()
    local w = workspace()
    local run, ok = fake_run.within(function() return w.up() end)
    assert.is_true(ok)
    assert.same(1, #run.changes)
    local entry, what = run.changes[1][1], run.changes[1][2]
    assert.same("added", what)
    assert.same({ "pulumi.stack", "dev", "up dev: 3 create", "applied" }, { entry.kind, entry.target, entry.summary, entry.status })
    assert.is_nil(entry.undo)
    local d = entry.data
    assert.same({ stack = "dev", operation = "up", backend = "file://" .. w.state, version = 1,
                  changes = { create = 3, update = 0, replace = 0, delete = 0, same = 0 },
                  config = { acl = "private", region = "eu", size = "small" }, secret_config_keys = { "dbPassword" },
                  result = "succeeded" },
      { stack = d.stack, operation = d.operation, backend = d.backend, version = d.version, changes = d.changes,
        config = d.config, secret_config_keys = d.secret_config_keys, result = d.result })
    assert.same({ "bucketName", "size" }, (function()
      local k = {}
      for name in pairs(d.outputs) do k[#k + 1] = name end
      table.sort(k)
      return k
    end)())
    assert.is_nil(leaked(json.encode(d), ALL_SECRETS))
  end)

  it("undoes with rollback = \"pulumi\": the previous config back, and up again", function()
    local w = workspace()
    local run, ok, r = fake_run.within(function() return w.up({ rollback = "pulumi" }) end)
    assert.is_true(ok, r)
    assert.is_nil(run.changes[1][1].undo)             -- a new stack has nothing to go back to
    assert.same({ 'pulumi.up: rollback = "pulumi": stack dev was created by this run, there is no earlier config to go back to; it will be left in place' },
      run.warnings)
    run, ok, r = fake_run.within(function()
      return w.up({ rollback = "pulumi", config = { acl = "public-read", region = "eu", size = "large" } })
    end)
    assert.is_true(ok, r)
    assert.same("public-read", json.decode(w.fake({ "config", "--json", "--stack", "dev" }).stdout)["infra:acl"].value)
    local entry = run.changes[1][1]
    assert.is_function(entry.undo)
    local undo_run, undone = fake_run.within(entry.undo)
    assert.is_true(undone)
    assert.truthy(find(undo_run.lines, "stdout: ~ aws:s3/bucket:Bucket bucket updated [diff: ~acl]"))
    assert.same("private", json.decode(w.fake({ "config", "--json", "--stack", "dev" }).stdout)["infra:acl"].value)
    local outputs = pulumi.outputs(w.opts())
    assert.same("small", outputs.size)
  end)

  it("undoes to the config the run found, when pulumi.stack set the config before up", function()
    local w = workspace()
    -- the stack is created by pulumi.stack in the same run: nothing to go back to
    local run, ok, r = fake_run.within(function()
      pulumi.stack(w.opts({ config = copy(CONFIG), secret_config = { dbPassword = DB_PASSWORD } }))
      return pulumi.up(w.opts({ rollback = "pulumi" }))
    end)
    assert.is_true(ok, r)
    assert.is_nil(run.changes[1][1].undo)
    assert.same(1, #run.warnings)
    -- an existing stack: its config changed by pulumi.stack, then up
    run, ok, r = fake_run.within(function()
      pulumi.stack(w.opts({ config = { acl = "public-read", region = "eu", size = "large" } }))
      return pulumi.up(w.opts({ rollback = "pulumi" }))
    end)
    assert.is_true(ok, r)
    assert.same("public-read", json.decode(w.fake({ "config", "--json", "--stack", "dev" }).stdout)["infra:acl"].value)
    local undo_run, undone = fake_run.within(run.changes[1][1].undo)
    assert.is_true(undone)
    assert.truthy(find(undo_run.lines, "stdout: ~ aws:s3/bucket:Bucket bucket updated [diff: ~acl]"))
    assert.same("private", json.decode(w.fake({ "config", "--json", "--stack", "dev" }).stdout)["infra:acl"].value)
    assert.same("small", pulumi.outputs(w.opts()).size)
  end)

  it("fails with the engine's errors, naming the command and the caller's line, and records what changed", function()
    local w = workspace()
    w.up()
    local line
    local run, ok, err = fake_run.within(function()
      local opts = w.opts({ config = { acl = "public-read", region = "eu", size = "large" },
        env = { FAKE_PULUMI_FAIL = "db", FAKE_PULUMI_FAIL_MESSAGE = "InvalidParameterValue: size large is not offered" } })
      line = line_of(); local r = pulumi.up(opts)
      return r
    end)
    assert.same(false, ok)
    assert.same(("tests/pulumi_spec.lua:%d: pulumi.up: pulumi up --yes --skip-preview --exec-kind=auto.local --stack dev failed (exit 255): "
      .. "db: updating urn:pulumi:dev::infra::aws:rds/instance:Instance::db: InvalidParameterValue: size large is not offered; update failed"):format(line), err)
    assert.truthy(find(run.lines, "stderr: ! aws:rds/instance:Instance db update failed"))
    assert.truthy(find(run.lines, "stdout: ~ aws:s3/bucket:Bucket bucket updated [diff: ~acl]"))
    assert.same(1, #run.changes)
    assert.same("up dev: 1 update (failed part way)", run.changes[1][1].summary)
    assert.same("failed", run.changes[1][1].data.result)
  end)

  it("names the holder of a locked stack, and waits for the lock with lock_wait", function()
    local w = workspace()
    w.up()
    local dir = w.state .. "/.pulumi/locks/organization/infra/dev"
    assert(fs.mkdir(dir))
    assert(fs.write(dir .. "/other.json", json.encode({ pid = 4242, username = "ci", hostname = "runner-7",
      timestamp = "2026-01-02T03:04:05Z" })))
    local line = line_of(); local ok, err = pcall(w.up)
    assert.is_false(ok)
    assert.same(("tests/pulumi_spec.lua:%d: pulumi.up: stack dev is locked by ci@runner-7, pid 4242, since 2026-01-02T03:04:05Z: "
      .. 'another update is in progress: wait for it with lock_wait = "5m", or clear a stale lock with `pulumi cancel`'):format(line), err)
    -- the other update ends 1.5 s later
    local releaser = task.spawn(function()
      task.sleep(1.5)
      assert(fs.remove(dir .. "/other.json"))
    end)
    local t0 = task.now()
    local run, ok2, r = fake_run.within(function() return w.up({ lock_wait = "1m" }) end)
    releaser:join()
    assert.is_true(ok2, r)
    assert.is_true(task.now() - t0 >= 1500)
    assert.truthy(find(run.lines, "stderr: pulumi: stack dev is locked by ci@runner-7, pid 4242, since 2026-01-02T03:04:05Z; waiting up to 1m0s"))
    -- and gives up when the wait is over
    assert(fs.write(dir .. "/other.json", json.encode({ pid = 1, username = "a", hostname = "b", timestamp = "t" })))
    line = line_of(); ok, err = pcall(w.up, { lock_wait = "1s" })
    assert.same(false, ok)
    assert.truthy(err:find(("^tests/pulumi_spec.lua:%d: pulumi.up: stack dev is locked by a@b, pid 1, since t: another update is in progress %%(waited 1s%%)"):format(line)), err)
  end)

  it("knows the service's 409 and its permalink", function()
    local w = workspace()
    local opts = function(extra)
      local o = w.opts(extra)
      o.backend = "https://api.pulumi.example"
      o.env.PULUMI_ACCESS_TOKEN = secret.new(TOKEN)
      return o
    end
    local r = pulumi.up(opts({ config = copy(CONFIG), secret_config = { dbPassword = DB_PASSWORD } }))
    assert.same("https://app.pulumi.com/organization/infra/dev/updates/1", r.permalink)
    local dir = w.home .. "/fake-cloud/.pulumi/locks/organization/infra/dev"
    assert(fs.mkdir(dir))
    assert(fs.write(dir .. "/x.json", "{}"))
    local line = line_of(); local ok, err = pcall(pulumi.up, opts())
    assert.same(false, ok)
    assert.same(("tests/pulumi_spec.lua:%d: pulumi.up: stack dev is locked: another update is in progress: "):format(line),
      err:sub(1, #("tests/pulumi_spec.lua:%d: pulumi.up: stack dev is locked: another update is in progress: "):format(line)))
  end)

  it("sends SIGINT when its task is cancelled, so the CLI releases the lock, and does not wait for it", function()
    local w = workspace()
    w.up()
    local run
    local t = task.spawn(function()
      run = fake_run.new()
      task.set_context(require("slipway.context")._for_unit(run, { name = "infra" }))
      return w.up({ config = { acl = "public-read", region = "eu", size = "large" }, env = { FAKE_PULUMI_DELAY = "0.4" } })
    end)
    support.wait_for(function() return find(run and run.lines or {}, "bucket updated") end, 20000)
    local t0 = task.now()
    t:cancel()
    t:wait()
    assert.same("cancelled", t:status())
    assert.is_true(task.now() - t0 < 300)
    support.wait_for(function() return #proc.live() == 0 end, 15000)
    local signals = {}
    for _, r in ipairs(w.runs()) do
      if r.signal then signals[#signals + 1] = r.signal end
    end
    assert.same({ "SIGINT" }, signals)
    assert.same({}, fs.list(w.state .. "/.pulumi/locks/organization/infra/dev") or {})
    -- the stack is usable at once
    assert.same(1, w.up().changes.update)
  end)

  it("stops the CLI with SIGINT when the timeout passes", function()
    local w = workspace()
    w.up()
    local line = line_of(); local ok, err = pcall(w.up, { timeout = "1s", config = { acl = "x-acl", region = "eu", size = "large" },
      env = { FAKE_PULUMI_DELAY = "0.6" } })
    assert.same(false, ok)
    assert.truthy(err:find(("^tests/pulumi_spec.lua:%d: pulumi.up: pulumi up .* failed %%(timed out after 1s%%)"):format(line)), err)
    local signals = {}
    for _, r in ipairs(w.runs()) do
      if r.signal then signals[#signals + 1] = r.signal end
    end
    assert.same({ "SIGINT" }, signals)
    assert.same({}, fs.list(w.state .. "/.pulumi/locks/organization/infra/dev") or {})
  end)
end)

---------------------------------------------------------------- preview, refresh, destroy, outputs

describe("pulumi.preview, refresh, destroy and outputs", function()
  leaks.check()
  after_each(cleanup)

  it("previews the diff without changing anything or recording a change", function()
    local w = workspace()
    w.up()
    local run, ok, r = fake_run.within(function()
      return pulumi.preview(w.opts({ config = { acl = "public-read", region = "us" } }))
    end)
    assert.is_true(ok, r)
    assert.same({
      "stdout: pulumi preview: stack dev",
      "stdout: +- aws:s3/bucket:Bucket bucket replace [diff: ~acl, ~region]",
    }, { table.unpack(run.lines, 1, 2) })
    assert.truthy(run.lines[3]:match("^stdout: Resources: 1 to replace, 2 unchanged"), run.lines[3])
    assert.same({}, run.changes)
    assert.same({ create = 0, update = 0, replace = 1, delete = 0, same = 2 }, r.changes)
    assert.same("replace", r.steps[#r.steps].op)
    assert.same("bucket", r.steps[#r.steps].name)
    assert.same("small", pulumi.outputs(w.opts()).size)
  end)

  it("refreshes and destroys, recording each", function()
    local w = workspace()
    w.up()
    local run, ok, r = fake_run.within(function() return pulumi.refresh(w.opts({ env = { FAKE_PULUMI_DRIFT = "db" } })) end)
    assert.is_true(ok, r)
    assert.truthy(find(run.lines, "stdout: ~ aws:rds/instance:Instance db updated [diff: ~tags]"))
    assert.same("refresh dev: 1 update", run.changes[1][1].summary)
    run, ok, r = fake_run.within(function() return pulumi.destroy(w.opts()) end)
    assert.is_true(ok, r)
    assert.truthy(find(run.lines, "stdout: - aws:s3/bucket:Bucket bucket deleted"))
    assert.truthy(find(run.lines, "stdout: - aws:rds/instance:Instance db deleted"))
    assert.same(2, r.changes.delete)
    assert.same("destroy dev", run.changes[1][1].summary:match("^destroy dev"))
    assert.same({}, pulumi.outputs(w.opts()))
    -- destroy does not create a stack that is not there
    local line = line_of(); local ok2, err = pcall(pulumi.destroy, w.opts({ stack = "nope" }))
    assert.same(false, ok2)
    assert.same(("tests/pulumi_spec.lua:%d: pulumi.destroy: pulumi stack select --stack nope failed (exit 255): error: no stack named 'nope' found"):format(line), err)
  end)

  it("reads outputs, the secret ones as Secrets", function()
    local w = workspace()
    w.up()
    local o = pulumi.outputs(w.opts())
    assert.same("small", o.size)
    assert.is_true(secret.is_secret(o.dbPassword))
    assert.same(DB_PASSWORD, secret.reveal(o.dbPassword))
  end)

  it("describes an operation for a task's description, without running anything", function()
    assert.same("pulumi up --yes --skip-preview --stack prod (in infra/pulumi)",
      pulumi.describe("up", { cwd = "infra/pulumi", stack = "prod" }))
    assert.same("pulumi preview --stack 'my stack' (in .)", pulumi.describe("preview", { cwd = ".", stack = "my stack" }))
    local line = line_of(); local ok, err = pcall(pulumi.describe, "apply", { cwd = ".", stack = "x" })
    assert.same({ false, ('tests/pulumi_spec.lua:%d: pulumi.describe: the operation must be "preview", "up", "refresh" or "destroy", got apply'):format(line) }, { ok, err })
  end)
end)

---------------------------------------------------------------- in a pipeline

describe("pulumi in a pipeline run", function()
  leaks.check()
  after_each(cleanup)

  local function pipeline(w, body)
    return H.project({ ["deploy.lua"] = ([[
local secret = require("slipway.secret")
local PASS = secret.new(os.getenv("TEST_PASSPHRASE"), "PULUMI_CONFIG_PASSPHRASE")
local DB = secret.new(os.getenv("TEST_DB_PASSWORD"), "DB_PASSWORD")
local function opts(extra)
  local o = { cwd = %q, stack = "dev", bin = %q, backend = %q, home = %q,
              env = { PULUMI_CONFIG_PASSPHRASE = PASS, FAKE_PULUMI_LOG = %q, FAKE_PULUMI_DELAY = os.getenv("TEST_DELAY") } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
%s
]]):format(w.project, FAKE, "file://" .. w.state, w.home, w.log, body) })
  end

  local ENV = { TEST_PASSPHRASE = PASSPHRASE, TEST_DB_PASSWORD = DB_PASSWORD }

  it("leaves no secret in the output, the events, the record, the files or any argv", function()
    local w = workspace()
    local dir = pipeline(w, [[
task("infra", { description = pulumi.describe("up", opts()) }, function()
  local r = pulumi.up(opts({ config = { acl = "private", region = "eu", size = "small" }, secret_config = { dbPassword = DB } }))
  print("db password output:", r.outputs.dbPassword)
  print("outputs again:", pulumi.outputs(opts()).dbPassword)
  pulumi.preview(opts({ config = { size = "large" } }))
end)
]])
    local env = copy(ENV)
    env.TEST_DELAY = "0.3"
    -- argv of the fake as other processes see it, read while it runs
    local cmdlines = {}
    local watcher = task.spawn(function()
      while true do
        for _, r in ipairs(w.runs()) do
          local text = fs.read("/proc/" .. r.pid .. "/cmdline")
          if text then cmdlines[r.pid] = text end
        end
        task.sleep(0.05)
      end
    end)
    local r = H.run_json(dir, {}, { env = env, timeout = "120s" })
    watcher:cancel()
    assert.same(0, r.code, r.stderr)
    assert.is_true(#w.runs() >= 8)
    local seen = 0
    for _, text in pairs(cmdlines) do
      seen = seen + 1
      assert.is_nil(leaked(text, ALL_SECRETS), text)
    end
    assert.is_true(seen >= 1)
    for _, run in ipairs(w.runs()) do
      assert.is_nil(leaked(table.concat(run.argv or {}, " "), ALL_SECRETS))
    end
    -- everything slipway printed or wrote
    assert.is_nil(leaked(r.stdout .. r.stderr, ALL_SECRETS))
    local texts = { r.stdout }
    local function walk(d)
      for _, name in ipairs(fs.list(d) or {}) do
        local p = d .. "/" .. name
        if fs.stat(p).type == "directory" then walk(p) else texts[#texts + 1] = assert(fs.read(p)) end
      end
    end
    walk(dir .. "/.slipway")
    walk(w.project)
    assert.is_true(#texts >= 4)
    for _, text in ipairs(texts) do assert.is_nil(leaked(text, ALL_SECRETS)) end
    -- the record has the change
    local records = fs.glob(dir .. "/.slipway/runs/*/record.json")
    local record = json.decode(assert(fs.read(records[1])))
    assert.truthy(json.encode(record):find('"kind":"pulumi.stack"', 1, true))
    -- the progress was the task's output
    local outputs = {}
    for _, ev in ipairs(H.of(r.events, "output")) do outputs[#outputs + 1] = ev.line end
    assert.truthy(find(outputs, "+ aws:s3/bucket:Bucket bucket created"))
    assert.truthy(find(outputs, "db password output:\t***"))
  end)

  it("on Ctrl-C gives the CLI SIGINT and its grace, and the stack stays unlocked", function()
    local w = workspace()
    local dir = pipeline(w, [[
task("infra", function()
  pulumi.up(opts({ config = { acl = "private", region = "eu", size = "small" }, secret_config = { dbPassword = DB } }))
end)
]])
    local env = copy(H.base_env)
    for k, v in pairs(ENV) do env[k] = v end
    env.TEST_DELAY = "0.5"
    local p = assert(proc.spawn({ H.slipway, "run" }, { cwd = dir, env = env }))
    support.wait_for(function()
      for _, r in ipairs(w.runs()) do
        if r.argv and r.argv[1] == "up" then return true end
      end
    end, 30000)
    task.sleep(0.6)
    p:kill("SIGINT")
    local r = p:wait()
    assert.same(130, r.code, r.stderr)
    local signals = {}
    for _, run in ipairs(w.runs()) do
      if run.signal then signals[#signals + 1] = run.signal end
    end
    assert.same({ "SIGINT" }, signals)
    assert.same({}, fs.list(w.state .. "/.pulumi/locks/organization/infra/dev") or {})
  end)

  it("shows the step in slipway plan from its description", function()
    local w = workspace()
    local dir = pipeline(w, [[
task("infra", { description = pulumi.describe("up", opts()) }, function() pulumi.up(opts()) end)
]])
    local r = H.run(dir, { "plan", "--json" }, { env = ENV })
    assert.same(0, r.code, r.stderr)
    local plan = json.decode(r.stdout)
    assert.same("pulumi up --yes --skip-preview --stack dev (in " .. w.project .. ")", plan.tasks[1].description)
    r = H.run(dir, { "plan" }, { env = ENV })
    assert.same(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("  run  infra  -- pulumi up --yes --skip-preview --stack dev (in " .. w.project .. ")\n", 1, true), r.stdout)
    assert.same({}, w.runs())                -- nothing was run
  end)
end)
