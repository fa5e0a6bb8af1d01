-- `slipway ci github`: the workflow generated from a pipeline's
-- declarations. Its inputs are the parameters exactly (read back with
-- slipway.yaml), it passes actionlint, a second run changes nothing, and
-- a file edited by hand is kept unless --force.
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local yaml = require("slipway.yaml")
local leaks = require("support.leaks")
local repo = require("support.repo")

local PIPELINE = [[
param.choice("environment", { "production", "staging", "development" }, "production", "where to deploy")
param.bool("deploy_frontend", true, "also deploy the web app")
param.bool("deploy_monitoring", false)
param.string("region", "eu-west-1", { description = "cloud region: \"quoted\", with: colons" })
param.number("replicas", 2)
param.number("ratio", 0.25)
param.list("services", { "api", "worker" })
param.choice("tier", { 1, 2, "yes" }, 2)
param.string("release_note")

task("build", function(p) sh "true" end)
task("frontend", { needs = "build", when = "deploy_frontend" }, function(p)
  vercel.deploy { dir = "web", token = secret("VERCEL_TOKEN") }
end)
task("push", { needs = "build" }, function()
  local password = secret("REGISTRY_PASSWORD", { from = "env" })
  local again = secret("VERCEL_TOKEN")
end)
]]

local WORKFLOW = ".github/workflows/deploy.yml"

local function run(dir, args)
  local argv = { "ci", "github" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.run(dir, argv)
end

local function load_workflow(dir, path)
  return assert(yaml.decode(assert(fs.read(dir .. "/" .. (path or WORKFLOW)))))
end

-- The run step (the last step of the deploy job).
local function run_step(wf)
  local steps = wf.jobs.deploy.steps
  return steps[#steps]
end

describe("slipway ci github", function()
  leaks.check()
  after_each(H.cleanup)

  it("makes every parameter an input of the same type, choices, default and description", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local r = run(dir)
    assert.same(0, r.code, r.stderr)
    assert.matches("wrote " .. WORKFLOW, r.stdout, 1, true)
    local inputs = load_workflow(dir).on.workflow_dispatch.inputs
    assert.same({
      environment = { description = "where to deploy", type = "choice", required = false,
                      options = { "production", "staging", "development" }, default = "production" },
      deploy_frontend = { description = "also deploy the web app", type = "boolean", required = false, default = true },
      deploy_monitoring = { type = "boolean", required = false, default = false },
      region = { description = 'cloud region: "quoted", with: colons', type = "string", required = false,
                 default = "eu-west-1" },
      replicas = { type = "number", required = false, default = 2 },
      ratio = { type = "number", required = false, default = 0.25 },
      services = { type = "string", required = false, default = "api,worker" },
      tier = { type = "choice", required = false, options = { "1", "2", "yes" }, default = "2" },
      release_note = { type = "string", required = true },
    }, inputs)
    -- the pipeline's declaration order is kept
    local text = fs.read(dir .. "/" .. WORKFLOW)
    local order = {}
    for line in text:match("\n    inputs:\n(.-)\n\n"):gmatch("[^\n]+") do
      order[#order + 1] = line:match("^      ([%w_]+):$")
    end
    assert.same({ "environment", "deploy_frontend", "deploy_monitoring", "region", "replicas", "ratio",
                  "services", "tier", "release_note" }, order)
    -- a parameter without a default cannot run from a push: said so
    assert.matches("parameter 'release_note' has no default", r.stderr, 1, true)
  end)

  it("triggers on pushes, one run at a time per environment, secrets from the repository's secrets", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, run(dir).code)
    local wf = load_workflow(dir)
    assert.same({ branches = { "main", "develop" } }, wf.on.push)
    assert.same({ group = "slipway-${{ inputs.environment || 'production' }}", ["cancel-in-progress"] = false },
      wf.concurrency)
    local step = run_step(wf)
    assert.same("${{ secrets.VERCEL_TOKEN }}", step.env.VERCEL_TOKEN)
    assert.same("${{ secrets.REGISTRY_PASSWORD }}", step.env.REGISTRY_PASSWORD)
    assert.same("${{ inputs.region }}", step.env.INPUT_REGION)
    -- inputs reach the command through the environment, never spliced into the script
    assert.is_nil(step.run:find("${{", 1, true))
    assert.matches('--env "$INPUT_ENVIRONMENT"', step.run, 1, true)
    assert.matches('-p "deploy_frontend=$INPUT_DEPLOY_FRONTEND"', step.run, 1, true)
    assert.matches('exec slipway run "$@"', step.run, 1, true)

    local other = H.project { ["deploy.lua"] = 'param.bool("x")\ntask("t", function() end)\n' }
    assert.same(0, run(other, { "--branches", "release, hotfix" }).code)
    wf = load_workflow(other)
    assert.same({ branches = { "release", "hotfix" } }, wf.on.push)
    assert.same("slipway-deploy", wf.concurrency.group)       -- no environment parameter
    assert.same(0, run(other, { "--branches=", "--force" }).code)
    assert.is_nil(load_workflow(other).on.push)
  end)

  it("runs the script the step holds: the inputs given, the defaults on a push", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, run(dir).code)
    local script = run_step(load_workflow(dir)).run:gsub("exec slipway run", "printf '%%s\\n'")
    local r = assert(proc.run({ "sh", "-c", script }, { env = {
      INPUT_ENVIRONMENT = "staging", INPUT_DEPLOY_FRONTEND = "false", INPUT_REGION = "it's; $(reboot)",
      INPUT_RELEASE_NOTE = "", INPUT_REPLICAS = false } }))
    assert.same("deploy.lua\n--env\nstaging\n-p\ndeploy_frontend=false\n-p\nregion=it's; $(reboot)\n", r.stdout)
    r = assert(proc.run({ "sh", "-c", script }, { env = { INPUT_ENVIRONMENT = false } }))
    assert.same("deploy.lua\n", r.stdout)
  end)

  it("passes actionlint", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, run(dir).code)
    local lint = repo.ROOT .. "/tools/actionlint"
    local r = assert(proc.run({ lint, dir .. "/" .. WORKFLOW }))
    assert.same({ 0, "" }, { r.code, r.stdout }, r.stderr)
    -- and it finds what is wrong
    local broken = fs.read(dir .. "/" .. WORKFLOW):gsub("inputs%.region", "inputs.regoin")
    assert(fs.write(dir .. "/broken.yml", broken))
    r = assert(proc.run({ lint, dir .. "/broken.yml" }))
    assert.same(1, r.code, r.stderr)
    assert.matches('property "regoin" is not defined', r.stdout, 1, true)
  end)

  it("changes nothing on an unchanged pipeline, and follows a changed one", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, run(dir).code)
    local path = dir .. "/" .. WORKFLOW
    local first, st = fs.read(path), fs.stat(path)
    local r = run(dir)
    assert.same({ 0, WORKFLOW .. " is up to date\n" }, { r.code, r.stdout })
    assert.same(first, fs.read(path))
    assert.same(st.ino, fs.stat(path).ino)            -- not even rewritten
    assert.same(0, run(dir, { "--check" }).code)
    -- a new parameter: --check says the file is stale, a run updates it
    assert(fs.write(dir .. "/deploy.lua", PIPELINE .. 'param.bool("dry_run", false)\n'))
    r = run(dir, { "--check" })
    assert.same(1, r.code)
    assert.matches("not up to date", r.stderr, 1, true)
    assert.same(first, fs.read(path))
    r = run(dir)
    assert.same(0, r.code, r.stderr)
    assert.matches("^updated ", r.stdout)
    assert.same({ type = "boolean", required = false, default = false },
      load_workflow(dir).on.workflow_dispatch.inputs.dry_run)
  end)

  it("keeps a file edited by hand unless --force", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, run(dir).code)
    local path = dir .. "/" .. WORKFLOW
    local edited = fs.read(path):gsub("timeout%-minutes: 60", "timeout-minutes: 90")
    assert(fs.write(path, edited))
    local r = run(dir)
    assert.same(1, r.code)
    assert.same("slipway ci github: not overwriting " .. WORKFLOW
      .. ": it was edited by hand since it was generated (--force overwrites it)", r.stderr:match("([^\n]*)\n$"))
    assert.same(edited, fs.read(path))
    -- a workflow slipway did not write is kept too
    assert(fs.write(path, "on: push\n"))
    r = run(dir)
    assert.same(1, r.code)
    assert.matches("it was not generated by slipway", r.stderr, 1, true)
    r = run(dir, { "--force" })
    assert.same(0, r.code, r.stderr)
    assert.matches("timeout-minutes: 60", fs.read(path), 1, true)
  end)

  it("writes where --output says, naming the pipeline file as given", function()
    local dir = H.project {}
    assert(fs.mkdir(dir .. "/ops"))
    assert(fs.write(dir .. "/ops/deploy.lua", 'task("t", function() end)\n'))
    local r = run(dir, { "ops/deploy.lua", "--output", "ci/wf.yml" })
    assert.same(0, r.code, r.stderr)
    local wf = load_workflow(dir, "ci/wf.yml")
    assert.is_nil(wf.on.workflow_dispatch.inputs)
    assert.matches("set -- ops/deploy.lua\n", run_step(wf).run, 1, true)
    assert.matches("^# Generated by `slipway ci github` from ops/deploy.lua", fs.read(dir .. "/ci/wf.yml"))
  end)

  it("takes secrets from the declarations the pipeline records", function()
    local ci = require("slipway.cmd.ci")
    assert.same({ { name = "db-password", param = true }, { name = "API_KEY" } },
      ci.secrets_in_text('param.secret("db-password")\ntask("t", function() x(secret( "API_KEY" )) end)\n'
        .. 'local s = my.secret("NOT_ME") local t = m:secret("NOR_ME")\n'))
    -- def.secrets, when the DSL records it, is the one input
    local def = { file = "deploy.lua", params = { list = {}, by_name = {} },
                  secrets = { "PLAIN", { name = "db-password", param = true },
                              { name = "token", env = "GH_TOKEN" }, { name = "F", from = "file" },
                              { name = "GITHUB_TOKEN" } } }
    local text, warnings = ci.generate(def, { file = "deploy.lua", branches = {}, runs_on = "ubuntu-latest" })
    local env = run_step(assert(yaml.decode(text))).env
    assert.same({ PLAIN = "${{ secrets.PLAIN }}", SLIPWAY_PARAM_DB_PASSWORD = "${{ secrets.DB_PASSWORD }}",
                  GH_TOKEN = "${{ secrets.GH_TOKEN }}" }, env)
    assert.same(1, #warnings)
    assert.matches("'GITHUB_TOKEN' cannot be a GitHub secret name", warnings[1], 1, true)
  end)

  it("reports bad input with exit 2", function()
    local dir = H.project { ["deploy.lua"] = 'task("t", function() end)\nparam.bool(3)\n' }
    local r = run(dir)
    assert.same(2, r.code)
    assert.matches("^slipway: deploy.lua:2: param.bool", r.stderr)
    r = run(dir, { "--brnaches", "x" })
    assert.same(2, r.code)
    assert.matches("unknown flag '--brnaches' (did you mean '--branches'?)", r.stderr, 1, true)
    r = H.run(dir, { "ci", "gitlab" })
    assert.same(2, r.code)
    assert.matches("unknown CI system 'gitlab'", r.stderr, 1, true)
    r = H.run(H.project {}, { "ci", "github" })
    assert.same(2, r.code)
    assert.matches("no deploy.lua here", r.stderr, 1, true)
  end)
end)
