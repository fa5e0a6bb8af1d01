-- examples/unified end to end, as `make demo` runs it, against the engine,
-- registry and swarm of tests/infra/up: the fake Pulumi CLI, the stand-in
-- Vercel API and the example's own deployment records endpoint
-- (examples/unified/records). v1 is deployed and verified; v2, whose
-- backend API fails while its healthcheck passes, is caught by validation
-- and rolled back by the run itself: the stack and Vercel's production are
-- on v1 again. The records endpoint gets both releases with their status;
-- `slipway history` and `slipway rollback --dry-run` read them back.
local H = require("support.pipeline_helper")
local F = require("support.docker_fixtures")
local repo = require("support.repo")
local standin = require("fakes.vercel_standin")
local leaks = require("support.leaks")
local docker = require("slipway.docker")
local fs = require("slipway.fs")
local http = require("slipway.http")
local json = require("slipway.json")
local proc = require("slipway.proc")
local task = require("slipway.task")

local TOKEN = "vtok_Unified+Example/=0042"
local PASSPHRASE = "unified example passphrase"
local PROJECT = "sophia-frontend"

local live_specs = F.live_specs

local function env_of(spec)
  local out = {}
  for _, kv in ipairs(spec.TaskTemplate.ContainerSpec.Env or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    out[k] = v
  end
  return out
end

-- The example's records endpoint, built by its Makefile, on a free port;
-- a task waits for it (and so gets its output lines) until it is stopped.
local function start_records(dir)
  local url
  local p = assert(proc.spawn({ dir .. "/.build/records", "0", dir .. "/records.ndjson" }, {
    stdout = function(line) url = url or line:match("^listening on (http://%S+)$") end, stderr = "inherit" }))
  local waiter = task.spawn(function() return p:wait() end)
  local deadline = task.now() + 10000
  while not url do
    if task.now() > deadline then
      p:kill("SIGKILL")
      waiter:join()
      error("the records endpoint did not start within 10s")
    end
    task.sleep(0.02)
  end
  return { process = p, waiter = waiter }, url .. "/deployments"
end

local function records(url)
  local r = assert(http.request({ url = url, timeout = "10s" }))
  assert.same(200, r.status)
  local out = {}
  for line in r.body:gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end

describe("examples/unified", function()
  leaks.check()
  local api, dir, stack, env, records_process, records_url

  setup(function()
    assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (run through tests/run, which starts tests/infra/up)")
    stack = F.unique("unified")
    api = standin.start({ tokens = { TOKEN }, check_responses = true })
    api:config({ queue_ms = 0, build_ms = 200, alias_ms = 0 })
    -- the example as a team would check it out, in a directory of its own
    dir = H.project()
    local cp = assert(proc.run({ "cp", "-R", repo.ROOT .. "/examples/unified/.", dir }))
    assert(cp.code == 0, cp.stderr)
    for _, left in ipairs({ ".slipway", ".pulumi-state", ".build" }) do fs.remove(dir .. "/" .. left, { recursive = true }) end
    local built = assert(proc.run({ "make", "-s", "-C", dir, "check", "APP_SOURCE=" .. repo.ROOT .. "/tests/apps/health.c" }))
    assert(built.code == 0, built.stderr)
    records_process, records_url = start_records(dir)
    env = {
      VERCEL_TOKEN = TOKEN, VERCEL_API_URL = api.url, RECORDS_URL = records_url,
      PULUMI_BIN = repo.ROOT .. "/tests/fakes/pulumi", PULUMI_HOME = dir .. "/.pulumi-home",
      PULUMI_CONFIG_PASSPHRASE = PASSPHRASE, APP_SOURCE = repo.ROOT .. "/tests/apps/health.c",
      -- a sandbox's timings (the process environment wins over environments/*.env)
      UPDATE_DELAY = "1s", UPDATE_MONITOR = "1s", HEALTH_INTERVAL = "1s", HEALTH_START_PERIOD = "5s",
      RESTART_DELAY = "1s",
    }
  end)

  teardown(function()
    if api then api:stop() end
    if records_process then
      records_process.process:kill("SIGTERM")
      records_process.waiter:join()
    end
    if stack then F.remove_stack(stack) end
    H.cleanup()
  end)

  local function run(version, more)
    local args = { "run", "--reporter", "plain", "-p", "version=" .. version, "-p", "stack=" .. stack }
    for _, a in ipairs(more or {}) do args[#args + 1] = a end
    return H.run(dir, args, { env = env, timeout = "240s" })
  end

  it("deploys v1, catches a broken v2 in validation and puts the stack and Vercel back on v1; both are recorded", function()
    -- v1: every step, verified
    local good = run("v1")
    assert.same(0, good.code, good.stdout .. good.stderr)
    for _, name in ipairs({ "build[backend]", "build[mcp-github]", "build[mcp-linear]", "build[mcp-slack]" }) do
      assert.truthy(good.stdout:find("\n" .. name:gsub("%p", "%%%0") .. " +ok"), name .. "\n" .. good.stdout)
    end
    assert.falsy(good.stdout:find("notion", 1, true))          -- not a *_v2 directory
    assert.falsy(good.stdout:find("build[monitoring]", 1, true))  -- deploy_monitoring is off by default
    local v1 = live_specs(stack)
    local names = {}
    for name in pairs(v1) do names[#names + 1] = name end
    table.sort(names)
    assert.same({ stack .. "_backend", stack .. "_mcp-github", stack .. "_mcp-linear", stack .. "_mcp-slack" }, names)
    -- the compose file with production's values and the Pulumi output
    local backend = v1[stack .. "_backend"]
    assert.same(2, backend.Mode.Replicated.Replicas)                        -- REPLICAS_BACKEND
    assert.same(1, v1[stack .. "_mcp-github"].Mode.Replicated.Replicas)     -- REPLICAS_MCP
    local benv = env_of(backend)
    assert.same({ "production", "info" }, { benv.ENVIRONMENT, benv.LOG_LEVEL })
    assert.truthy(benv.ASSETS_BUCKET and benv.ASSETS_BUCKET ~= "", "no ASSETS_BUCKET")
    assert.same("http", env_of(v1[stack .. "_mcp-slack"]).MCP_TRANSPORT)     -- the x-mcp-server template
    assert.same("rollback", backend.UpdateConfig.FailureAction)             -- x-default-deploy
    assert.same({ "CMD", "/app", "healthcheck" }, backend.TaskTemplate.ContainerSpec.Healthcheck.Test)
    local v1_site = api:state().projects[PROJECT].production
    assert.truthy(v1_site)

    -- v2: deployed, caught by validation, rolled back by the run
    local bad = run("v2", { "-p", "broken=true" })
    assert.same(1, bad.code, bad.stdout .. bad.stderr)
    assert.truthy(bad.stdout:find("status 500, expected 2xx", 1, true), bad.stdout)
    assert.truthy(bad.stdout:find("\ndeploy +ok, rolled back"), bad.stdout)
    assert.truthy(bad.stdout:find("\nfrontend +ok, rolled back"), bad.stdout)
    assert.truthy(bad.stdout:find("\nvalidate +failed"), bad.stdout)
    local now = live_specs(stack)
    for name, spec in pairs(v1) do
      assert.is_true(docker.stack.same(spec, now[name]), name .. " is not back on v1's spec")
      assert.same(spec.TaskTemplate.ContainerSpec.Image, now[name].TaskTemplate.ContainerSpec.Image)
    end
    assert.same(v1_site, api:state().projects[PROJECT].production)

    -- the finally step recorded both releases, in order, with their status
    local got = records(records_url)
    assert.same(2, #got)
    assert.same({ "v1", "success", true, "production", "sophia" },
      { got[1].version, got[1].status, got[1].verified, got[1].environment, got[1].pipeline })
    assert.same({ "v2", "rolled_back", false }, { got[2].version, got[2].status, got[2].verified })
    assert.same("failed", got[2].tasks.validate)
    assert.truthy(got[2].recorded_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
    for _, r in ipairs(got) do
      assert.falsy(json.encode(r):find(TOKEN, 1, true))
      assert.falsy(json.encode(r):find(PASSPHRASE, 1, true))
    end

    -- the ledger: history, and a dry-run rollback that has nothing to do
    local history = H.run(dir, { "history", "--json" }, { env = env })
    assert.same(0, history.code, history.stderr)
    local list = json.decode(history.stdout)
    assert.same({ "rolled_back", "success" }, { list[1].status, list[2].status })
    local dry = H.run(dir, { "rollback", "--dry-run" }, { env = env, timeout = "60s" })
    assert.same(0, dry.code, dry.stdout .. dry.stderr)
    assert.truthy(dry.stdout:find("rollback to release " .. got[1].id, 1, true), dry.stdout)
    assert.truthy(dry.stdout:find("unchanged " .. stack .. "_backend", 1, true), dry.stdout)
    assert.truthy(dry.stdout:find("unchanged " .. PROJECT, 1, true), dry.stdout)
  end)
end)
