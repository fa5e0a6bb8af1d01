-- examples/unified without an engine: its one compose file gives each
-- environment its values through x- anchors, <<: merges and ${VAR:-default}
-- interpolation; its parameters are the seed's workflow inputs; `slipway
-- plan` shows the steps each switch leaves out; `slipway ci github` makes
-- the seed's single workflow from it. (tests/unified_docker_spec.lua runs
-- it end to end.)
local H = require("support.pipeline_helper")
local repo = require("support.repo")
local leaks = require("support.leaks")
local compose = require("slipway.compose")
local fs = require("slipway.fs")
local json = require("slipway.json")
local proc = require("slipway.proc")
local yaml = require("slipway.yaml")

local EXAMPLE = repo.ROOT .. "/examples/unified"
local SECRETS = { VERCEL_TOKEN = "vtok_unified_plan", PULUMI_CONFIG_PASSPHRASE = "plan passphrase" }

local function load(environment, environ)
  environ = environ or {}
  environ.DOCKER_REGISTRY, environ.ASSETS_BUCKET = "registry.test", "assets-1"
  return compose.load(EXAMPLE .. "/docker-compose.unified.yml", {
    env_file = EXAMPLE .. "/environments/" .. environment .. ".env", environ = environ,
  })
end

local function plan(args)
  local argv = { "plan", "--json", EXAMPLE .. "/deploy.lua" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = H.run(repo.ROOT, argv, { env = SECRETS })
  assert.same(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

describe("examples/unified", function()
  leaks.check()
  after_each(H.cleanup)

  it("gives every environment its values from one compose file", function()
    local want = { production = { 2, 2, "info" }, staging = { 1, 2, "debug" }, development = { 1, 1, "debug" } }
    for environment, w in pairs(want) do
      local s = load(environment).services
      assert.same({ w[2], w[3], environment }, { s.backend.deploy.replicas, s.backend.environment.LOG_LEVEL,
        s.backend.environment.ENVIRONMENT }, environment)
      assert.same(w[1], s.monitoring.deploy.replicas == 1 and w[1] or s.monitoring.deploy.replicas)
      -- x-default-deploy and x-default-healthcheck, merged into each service
      assert.same("rollback", s.backend.deploy.update_config.failure_action)
      assert.same({ "CMD", "/app", "healthcheck" }, s.monitoring.healthcheck.test)
      assert.same("registry.test/sophia-ai:latest", s.backend.image)
      assert.same("assets-1", s.backend.environment.ASSETS_BUCKET)
    end
    -- the seed's timings where nothing overrides them; the process environment wins over the env file
    local prod = load("production").services.backend
    assert.same({ "10s", "30s", "1m0s" }, { prod.deploy.update_config.delay, prod.healthcheck.interval,
      prod.healthcheck.start_period })
    local dev = load("development", { HEALTH_INTERVAL = "3s", REPLICAS_BACKEND = "4" }).services.backend
    assert.same({ "1s", "3s", 4 }, { dev.deploy.update_config.delay, dev.healthcheck.interval, dev.deploy.replicas })
    -- the MCP servers' template
    local template = load("production")["x-mcp-server"]
    assert.same("http", template.environment.MCP_TRANSPORT)
    assert.same("rollback", template.deploy.update_config.failure_action)
  end)

  it("refuses to deploy the backend without the Pulumi output it needs", function()
    local ok, err = pcall(compose.load, EXAMPLE .. "/docker-compose.unified.yml", {
      env_file = EXAMPLE .. "/environments/production.env", environ = { DOCKER_REGISTRY = "r" },
    })
    assert.is_false(ok)
    assert.matches("the Pulumi stack's assetsBucket output", tostring(err), 1, true)
  end)

  it("has the seed's parameters, and plan shows what each switch leaves out", function()
    local all = plan()
    assert.same("production", all.params.environment)
    for name, default in pairs({ deploy_backend = true, deploy_mcp = true, deploy_frontend = true,
                                 deploy_monitoring = false }) do
      assert.same(default, all.params[name], name)
    end
    local function steps(p)
      local out = {}
      for _, t in ipairs(p.tasks) do out[t.name] = t.run and "run" or "skip" end
      return out
    end
    assert.same({ ["quality-gate"] = "run", build = "run", infrastructure = "run", deploy = "run",
                  frontend = "run", validate = "run", record = "run" }, steps(all))
    assert.same("skip", steps(plan({ "-p", "deploy_frontend=false" })).frontend)
  end)

  it("makes the seed's one workflow: its inputs are the parameters, its secrets the pipeline's", function()
    local dir = H.project()
    local cp = assert(proc.run({ "cp", "-R", EXAMPLE .. "/.", dir }))
    assert.same(0, cp.code, cp.stderr)
    local r = H.run(dir, { "ci", "github" })
    assert.same(0, r.code, r.stderr)
    local wf = assert(yaml.decode(assert(fs.read(dir .. "/.github/workflows/deploy.yml"))))
    local inputs = wf.on.workflow_dispatch.inputs
    assert.same({ "choice", "production" }, { inputs.environment.type, inputs.environment.default })
    assert.same({ "production", "staging", "development" }, inputs.environment.options)
    for _, name in ipairs({ "deploy_backend", "deploy_mcp", "deploy_frontend" }) do
      assert.same({ "boolean", true }, { inputs[name].type, inputs[name].default }, name)
    end
    assert.same({ "boolean", false }, { inputs.deploy_monitoring.type, inputs.deploy_monitoring.default })
    assert.same({ "main", "develop" }, wf.on.push.branches)
    local text = assert(fs.read(dir .. "/.github/workflows/deploy.yml"))
    assert.matches("VERCEL_TOKEN: ${{ secrets.VERCEL_TOKEN }}", text, 1, true)
    assert.matches("PULUMI_CONFIG_PASSPHRASE: ${{ secrets.PULUMI_CONFIG_PASSPHRASE }}", text, 1, true)
    local lint = assert(proc.run({ repo.ROOT .. "/tools/actionlint", dir .. "/.github/workflows/deploy.yml" }))
    assert.same({ 0, "" }, { lint.code, lint.stdout }, lint.stderr)
  end)
end)
