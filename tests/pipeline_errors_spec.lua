-- Bad input to `slipway run`/`plan`: each is exit 2, with the pipeline's
-- file:line and a message that says what is wrong and what is valid, and
-- nothing runs.
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")

-- Run `slipway run` (or args) on a deploy.lua with this text; expect exit 2
-- and return stderr.
local function bad(text, args, env)
  local dir = H.project { ["deploy.lua"] = text }
  local r = H.run(dir, args or { "run" }, { env = env })
  assert.same(2, r.code, "exit code; stderr: " .. r.stderr .. " stdout: " .. r.stdout)
  assert.same("", r.stdout)
  assert.is_false(fs.exists(dir .. "/.slipway"), "a run was recorded")
  return r.stderr
end

describe("bad input", function()
  after_each(H.cleanup)

  it("a dependency cycle names the cycle", function()
    local err = bad([[
task("a", { needs = "c" }, function() end)
task("b", { needs = "a" }, function() end)
task("c", { needs = "b" }, function() end)
]])
    assert.same("slipway: deploy.lua:1: dependency cycle: a -> c -> b -> a (each task needs the next)\n", err)
  end)

  it("a task that needs itself", function()
    local err = bad('task("a", { needs = "a" }, function() end)\n')
    assert.same("slipway: deploy.lua:1: dependency cycle: a -> a (a task cannot need itself)\n", err)
  end)

  it("an unknown task in needs, with a suggestion and the valid names", function()
    local err = bad([[
task("build", function() end)
task("deploy", { needs = { "biuld" } }, function() end)
]])
    assert.same("slipway: deploy.lua:2: task 'deploy' needs 'biuld', which is not a task (did you mean 'build'?); tasks: build, deploy\n", err)
  end)

  it("a duplicate task", function()
    local err = bad('task("a", function() end)\n\ntask("a", function() end)\n')
    assert.same("slipway: deploy.lua:3: task 'a' is already declared at deploy.lua:1 (task names must be unique)\n", err)
  end)

  it("an unknown parameter, from -p, from the environment", function()
    local text = 'param.bool("dry_run", false)\nparam.string("region", "eu")\ntask("a", function() end)\n'
    assert.same("slipway: deploy.lua:1: unknown parameter 'regoin' (-p regoin=us) (did you mean 'region'?); valid parameters: dry_run, region\n",
      bad(text, { "run", "-p", "regoin=us" }))
    assert.same("slipway: deploy.lua:1: unknown parameter in the environment: SLIPWAY_PARAM_REGOIN (did you mean 'SLIPWAY_PARAM_REGION'?); valid parameters: dry_run, region\n",
      bad(text, { "run" }, { SLIPWAY_PARAM_REGOIN = "us" }))
    assert.same("slipway: deploy.lua:1: unknown parameter in the environment: SLIPWAY_PARAM_ZONE; valid parameters: dry_run, region\n",
      bad(text, { "run" }, { SLIPWAY_PARAM_ZONE = "us" }))
    assert.same("slipway: deploy.lua:1: unknown parameter 'environment' (--env prod); valid parameters: dry_run, region\n",
      bad(text, { "run", "--env", "prod" }))
  end)

  it("a bad parameter value names the declaration and the valid values", function()
    local text = [[
param.choice("environment", { "production", "staging" }, "staging")
param.number("replicas", 1)
param.bool("dry_run", false)
task("a", function() end)
]]
    assert.same("slipway: deploy.lua:1: parameter 'environment': bad value 'prod' (from --env prod): expected one of production, staging\n",
      bad(text, { "run", "--env", "prod" }))
    assert.same("slipway: deploy.lua:2: parameter 'replicas': bad value 'many' (from -p replicas=many): expected a number\n",
      bad(text, { "plan", "-p", "replicas=many" }))
    assert.same("slipway: deploy.lua:3: parameter 'dry_run': bad value 'maybe' (from SLIPWAY_PARAM_DRY_RUN=maybe): expected true or false (also yes/no, 1/0, on/off)\n",
      bad(text, { "run" }, { SLIPWAY_PARAM_DRY_RUN = "maybe" }))
  end)

  it("a number parameter that does not fit, before anything runs", function()
    local text = 'param.number("replicas", 1)\ntask("a", function() io.open("ran", "w"):close() end)\n'
    for _, v in ipairs({ "1e400", "-1e400" }) do
      assert.same(("slipway: deploy.lua:1: parameter 'replicas': bad value '%s' (from -p replicas=%s): " ..
        "expected a finite number (%s does not fit)\n"):format(v, v, v), bad(text, { "run", "-p", "replicas=" .. v }))
    end
    for _, v in ipairs({ "nan", "inf", "-inf" }) do
      assert.same(("slipway: deploy.lua:1: parameter 'replicas': bad value '%s' (from -p replicas=%s): expected a number\n")
        :format(v, v), bad(text, { "run", "-p", "replicas=" .. v }))
    end
    assert.same("slipway: deploy.lua:1: parameter 'replicas': bad value '1e999' (from SLIPWAY_PARAM_REPLICAS=1e999): " ..
      "expected a finite number (1e999 does not fit)\n", bad(text, { "run" }, { SLIPWAY_PARAM_REPLICAS = "1e999" }))
    assert.same("slipway: deploy.lua:1: param.number: 'n': bad default inf: expected a finite number\n",
      bad('param.number("n", math.huge)\n'))
  end)

  it("a required parameter that is not set", function()
    assert.same("slipway: deploy.lua:2: parameter 'version' is required: set it with -p version=VALUE or SLIPWAY_PARAM_VERSION\n",
      bad('task("a", function() end)\nparam.string("version")\n'))
  end)

  it("a bad default", function()
    assert.same("slipway: deploy.lua:1: param.choice: 'env': bad default 'qa': expected one of a, b\n",
      bad('param.choice("env", { "a", "b" }, "qa")\n'))
  end)

  it("side effects at load time: processes, sh, os.execute, file writes", function()
    local hint = " (the top level of a pipeline only declares tasks and parameters; do this inside a task function)\n"
    assert.same("slipway: deploy.lua:2: sh: call this inside a task" .. hint,
      bad('task("a", function() end)\nsh "touch should-not-exist"\n'))
    assert.same("slipway: deploy.lua:1: os.execute: call this inside a task" .. hint,
      bad('os.execute("touch should-not-exist")\n'))
    assert.same("slipway: deploy.lua:1: fs.write: call this inside a task" .. hint,
      bad('fs.write("should-not-exist", "x")\n'))
    assert.same("slipway: deploy.lua:1: io.open: opening a file for writing: call this inside a task" .. hint,
      bad('io.open("should-not-exist", "w")\n'))
    assert.same("slipway: deploy.lua:2: io.popen: call this inside a task" .. hint,
      bad('local function helper()\n  local p = io.popen("touch x")\n  return p\nend\nhelper()\n'))
    local err = bad('local r = require("slipway.proc").run({ "touch", "should-not-exist" })\n')
    assert.matches("^slipway: deploy.lua:1: proc.run: call this inside a task", err)
  end)

  it("a syntax error", function()
    assert.same("slipway: deploy.lua:3: unexpected symbol near ')'\n",
      bad('task("a", function()\n  local x = 1\n  x = )\nend)\n'))
  end)

  it("an error raised at the top level", function()
    assert.same("slipway: deploy.lua:2: attempt to perform arithmetic on a nil value (global 'undefined_thing')\n",
      bad('local x = 1\nlocal y = undefined_thing + 1\n'))
  end)

  it("a missing required environment variable", function()
    assert.same('slipway: deploy.lua:1: env: SLIPWAY_TEST_UNSET_VAR is not set (give a default: env("SLIPWAY_TEST_UNSET_VAR", "..."))\n',
      bad('local v = env("SLIPWAY_TEST_UNSET_VAR")\n'))
  end)

  it("bad task declarations", function()
    assert.same("slipway: deploy.lua:1: task 'a': unknown option 'need' (valid: needs, when, matrix, timeout, retries, backoff, continue_on_error, rollback, description, finally, verifies, inputs, cache)\n",
      bad('task("a", { need = "b" }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': timeout: bad duration '5 parsecs' (expected e.g. 250ms, 5s, 1h30m)\n",
      bad('task("a", { timeout = "5 parsecs" }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': timeout: duration '1e+300' is too large (the limit is 100 years)\n",
      bad('task("a", { timeout = 1e300 }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': timeout: duration '99999999999999h' is too large (the limit is 100 years)\n",
      bad('task("a", { timeout = "99999999999999h" }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': timeout: duration '-5' must not be negative\n",
      bad('task("a", { timeout = -5 }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': retries must be a whole number >= 0, got -1\n",
      bad('task("a", { retries = -1 }, function() end)\n'))
    assert.same("slipway: deploy.lua:1: task 'a': expected a function as the last argument, got nil\n",
      bad('task("a", {})\n'))
    assert.same("slipway: deploy.lua:1: task 'a': when = 'deploy_frontent' is not a parameter (did you mean 'deploy_frontend'?); parameters: deploy_frontend\n",
      bad('task("a", { when = "deploy_frontent" }, function() end)\nparam.bool("deploy_frontend", true)\n'))
  end)

  it("when = NAME takes only a param.bool; anything else is an error at the task's line", function()
    local params = 'param.string("region", "eu")\nparam.list("services", { "api" })\nparam.bool("fast", false)\n'
    assert.same("slipway: deploy.lua:5: task 'b': when = 'region' names a param.string (deploy.lua:1); when takes the "
      .. "name of a param.bool, or a function(p) for any other condition\n",
      bad(params .. 'task("a", { when = "fast" }, function() end)\ntask("b", { when = "region" }, function() end)\n'))
    assert.same("slipway: deploy.lua:4: task 'a': when = 'services' names a param.list (deploy.lua:2); when takes the "
      .. "name of a param.bool, or a function(p) for any other condition\n",
      bad(params .. 'task("a", { when = "services" }, function() end)\n', { "plan" }))
  end)

  it("a parameter nobody declared, read in a when function: exit 2 with a suggestion", function()
    local text = 'param.bool("deploy_frontend", true)\nparam.string("region", "eu")\n'
      .. 'task("web", { when = function(p) return p.deploy_frontnd end }, function() end)\n'
    assert.same("slipway: deploy.lua:3: task 'web': its when function failed: deploy.lua:3: unknown parameter "
      .. "'deploy_frontnd' (did you mean 'deploy_frontend'?); valid parameters: deploy_frontend, region\n",
      bad(text, { "plan" }))
  end)

  it("a parameter nobody declared, read in a task: the task fails at that line, naming the valid ones", function()
    local dir = H.project { ["deploy.lua"] = [[
param.string("region", "eu")
param.bool("dry_run", false)
task("prepare", { rollback = function(p) return p.regin end }, function() end)
task("deploy", { needs = "prepare" }, function(p)
  print(p.region, p.dry_run)
  print(p.regoin)
end)
task("build", { matrix = function(p) return { p.region } end }, function(item, p) return p.dry_rn end)
]] }
    local r = H.run_json(dir, { "-j", "1", "--skip", "build" })
    assert.same(1, r.code)
    local errors = {}
    for _, ev in ipairs(H.of(r.events, "task_finished")) do errors[ev.task] = ev.error end
    assert.same("deploy.lua:6: unknown parameter 'regoin' (did you mean 'region'?); valid parameters: region, dry_run",
      errors.deploy)
    local rollback = H.of(r.events, "rollback_finished")[1]
    assert.same({ "prepare", "failed" }, { rollback.task, rollback.status })
    assert.matches("^deploy.lua:3: unknown parameter 'regin' %(did you mean 'region'%?%)", rollback.error)
    assert.same({ "eu\tfalse" }, (function()
      local out = {}
      for _, ev in ipairs(H.of(r.events, "output")) do out[#out + 1] = ev.line end
      return out
    end)())
    r = H.run_json(dir, { "--only", "build" })
    assert.same(1, r.code)
    errors = {}
    for _, ev in ipairs(H.of(r.events, "task_finished")) do errors[ev.task] = ev.error end
    assert.same("deploy.lua:8: unknown parameter 'dry_rn' (did you mean 'dry_run'?); valid parameters: region, dry_run",
      errors["build[eu]"])
  end)

  it("a mistyped parameter kind suggests the right one", function()
    assert.same("slipway: deploy.lua:1: param.boolean: no such parameter kind (did you mean 'param.bool'?) (valid: "
      .. "param.bool, param.choice, param.list, param.number, param.secret, param.string)\n", bad('param.boolean("fast")\n'))
  end)

  it("unknown flags and tasks on the command line list the valid ones", function()
    local text = 'task("build", function() end)\ntask("test", function() end)\n'
    assert.same("slipway run: unknown flag '--forse' (did you mean '--force'?) (valid: --env, -p, --param, --only, --skip, -j, --jobs, "
      .. "--json, --no-color, --timestamps, --reporter, --ledger, --lock-wait, --reason, --force, --no-cache)\n",
      bad(text, { "run", "--forse" }))
    assert.same("slipway: deploy.lua: --only: unknown task 'tset' (did you mean 'test'?); tasks: build, test\n",
      bad(text, { "run", "--only", "tset" }))
    assert.same("slipway: deploy.lua: --skip: unknown task 'x'; tasks: build, test\n",
      bad(text, { "plan", "--skip", "x" }))
    assert.same("slipway run: -j: expected a whole number >= 1, got 'lots'\n", bad(text, { "run", "-j", "lots" }))
    local matrix = text .. 'task("m", { matrix = { "svc/api", "svc/web" } }, function() end)\n' ..
      'task("f", { matrix = function() return { "a", "b" } end }, function() end)\n'
    assert.same("slipway: deploy.lua: --only: unknown matrix item 'm[apx]' (did you mean 'm[api]'?); items of m: api, web\n",
      bad(matrix, { "run", "--only", "m[apx]" }))
    assert.same("slipway: deploy.lua: --skip: unknown matrix item 'f[zzz]'; items of f: a, b\n",
      bad(matrix, { "plan", "--skip", "m[web],f[zzz]" }))
    assert.same("slipway: deploy.lua: --only: unknown task 'build[x]' (build is not a matrix task); tasks: build, test, m, f\n",
      bad(matrix, { "run", "--only", "build[x]" }))
    assert.same("slipway run: -p oops: expected name=value\n", bad(text, { "run", "-p", "oops" }))
    assert.same("slipway graph: unknown format 'png' (valid: mermaid, dot)\n", bad(text, { "graph", "--format", "png" }))
  end)

  it("no deploy.lua", function()
    local dir = H.project {}
    local r = H.run(dir, { "run" })
    assert.same({ 2, "slipway: no deploy.lua here (give the pipeline file: slipway run FILE)\n" }, { r.code, r.stderr })
  end)
end)
