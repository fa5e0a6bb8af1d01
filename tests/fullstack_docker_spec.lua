-- examples/fullstack end to end, as `slipway run` child processes: the
-- fake Pulumi CLI (tests/fakes/pulumi) for the infrastructure, the real
-- engine and swarm of tests/infra/up for the stack, the stand-in Vercel
-- API (tests/fakes/vercel_standin.lua) for the frontend. A good run is
-- verified; a second run whose validation fails puts the stack back to the
-- first run's specs and Vercel production back to the first deployment,
-- and reports the Pulumi stack as left in place; no form of any secret
-- (the Vercel token, the passphrase, the secret config value, the secret
-- output) is in the output of either reporter, the records, the files or
-- any command line.
local H = require("support.pipeline_helper")
local F = require("support.docker_fixtures")
local forms = require("support.secret_forms")
local leaks = require("support.leaks")
local repo = require("support.repo")
local standin = require("fakes.vercel_standin")
local docker = require("slipway.docker")
local fs = require("slipway.fs")
local json = require("slipway.json")
local proc = require("slipway.proc")
local task = require("slipway.task")

local FAKE_PULUMI = repo.ROOT .. "/tests/fakes/pulumi"
local TOKEN = "vtok_Fullstack+S3cret/=0042"
local TEAM = "team_fullstackexample01"
local PASSPHRASE = "fullstack passphrase: 7 horses"
local DB_PASSWORD = "db p@ss/w0rd+=?&"       -- characters every encoding changes
local PROJECT = "fullstack-web"

-- Every file under dir, as { path = text }.
local function files_under(dir, out)
  out = out or {}
  for _, name in ipairs(fs.list(dir) or {}) do
    local path = dir .. "/" .. name
    local st = fs.stat(path)
    if st and st.type == "directory" then files_under(path, out)
    elseif st and st.type == "file" then out[path] = assert(fs.read(path)) end
  end
  return out
end

-- The command lines of every process, read every 20 ms until stopped:
-- what any user of the machine could see while the runs went on.
local function cmdline_sampler()
  local seen, stop = {}, false
  local t = task.spawn(function()
    while not stop do
      for _, pid in ipairs(fs.list("/proc") or {}) do
        if pid:match("^%d+$") then
          local text = fs.read("/proc/" .. pid .. "/cmdline")
          if text and text ~= "" then seen[text:gsub("%z", " ")] = true end
        end
      end
      task.sleep(0.02)
    end
  end)
  return function()
    if not stop then
      stop = true
      t:join()
    end
    local list = {}
    for text in pairs(seen) do list[#list + 1] = text end
    return list
  end
end

local live_specs = F.live_specs

local function records(dir)
  local out = {}
  for _, path in ipairs(fs.glob(dir .. "/.slipway/runs/*/record.json") or {}) do
    out[#out + 1] = json.decode(assert(fs.read(path)))
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

local function changes_by_kind(record)
  local out = {}
  for _, c in ipairs(record.changes or {}) do out[c.kind] = c end
  return out
end

describe("examples/fullstack", function()
  leaks.check()
  local api, dir, stack, image, env, work, stop_sampling

  after_each(function()
    if stop_sampling then stop_sampling() end      -- also when an assertion failed half way
  end)

  setup(function()
    assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (run through tests/run, which starts tests/infra/up)")
    stack = F.unique("fullstack")
    image = F.registry .. "/slipway-fullstack:v1"
    if not docker.exists(image) then F.app_image(image, { VERSION = "fullstack" }) end
    docker.push(image, { quiet = true })
    api = standin.start({ tokens = { TOKEN }, team = TEAM, check_responses = true })
    api:config({ queue_ms = 0, build_ms = 200, alias_ms = 0 })
    -- the example as a team would check it out, in a directory of its own
    dir = H.project()
    local cp = assert(proc.run({ "cp", "-R", repo.ROOT .. "/examples/fullstack/.", dir }))
    assert(cp.code == 0, cp.stderr)
    for _, left in ipairs({ ".slipway", ".pulumi-state" }) do fs.remove(dir .. "/" .. left, { recursive = true }) end
    for _, f in ipairs(fs.glob(dir .. "/infra/Pulumi.*.yaml") or {}) do fs.remove(f) end
    work = assert(fs.tempdir("slipway-fullstack-"))
    env = {
      VERCEL_TOKEN = TOKEN, VERCEL_API_URL = api.url, VERCEL_TEAM_ID = TEAM,
      PULUMI_BIN = FAKE_PULUMI, PULUMI_HOME = work .. "/pulumi-home", PULUMI_CONFIG_PASSPHRASE = PASSPHRASE,
      FAKE_PULUMI_LOG = work .. "/fake-pulumi.log", SLIPWAY_PARAM_DB_PASSWORD = DB_PASSWORD,
    }
  end)

  teardown(function()
    if api then api:stop() end
    if stack then F.remove_stack(stack) end
    if work then fs.remove(work, { recursive = true }) end
    H.cleanup()
  end)

  local function args(version, more)
    local a = { "-p", "version=" .. version, "-p", "stack=" .. stack, "-p", "image=" .. image }
    for _, x in ipairs(more or {}) do a[#a + 1] = x end
    return a
  end

  it("deploys, then undoes a release that fails validation, leaving the infrastructure in place; no secret leaks", function()
    stop_sampling = cmdline_sampler()

    -- (a) a good run: verified, and every integration recorded its change
    local good = H.run_json(dir, args("v1"), { env = env, timeout = "120s" })
    assert.same(0, good.code, good.stderr .. good.stdout)
    local first = records(dir)[1]
    assert.same({ "success", true }, { first.status, first.verified })
    local c1 = changes_by_kind(first)
    assert.truthy(c1["pulumi.stack"], "no pulumi.stack change")
    assert.truthy(c1["docker.stack"], "no docker.stack change")
    assert.truthy(c1["vercel.production"], "no vercel.production change")
    assert.same("up", c1["pulumi.stack"].data.operation)
    assert.same({ "dbPassword" }, c1["pulumi.stack"].data.secret_config_keys)
    local bucket = c1["pulumi.stack"].data.outputs.assetsBucket
    assert.truthy(bucket)
    assert.is_nil(c1["pulumi.stack"].data.outputs.databaseUrl)       -- a secret output is not recorded
    local v1_specs = live_specs(stack)
    local api_spec = v1_specs[stack .. "_api"]
    assert.truthy(api_spec, "the stack has no api service")
    local env_of_api = table.concat(api_spec.TaskTemplate.ContainerSpec.Env, " ")
    assert.truthy(env_of_api:find("ASSETS_BUCKET=" .. bucket, 1, true), env_of_api)   -- the output reached the stack
    assert.same(1, #api_spec.TaskTemplate.ContainerSpec.Secrets)
    local first_deployment = api:state().projects[PROJECT].production
    assert.same(c1["vercel.production"].data.deployment.id, first_deployment)

    -- the secret output, as the fake stack holds it
    local shown = assert(proc.run({ FAKE_PULUMI, "stack", "output", "--json", "--show-secrets", "--stack", "dev" },
      { cwd = dir .. "/infra", env = { PULUMI_BACKEND_URL = "file://" .. dir .. "/.pulumi-state",
        PULUMI_HOME = env.PULUMI_HOME, PULUMI_CONFIG_PASSPHRASE = PASSPHRASE } }))
    assert.same(0, shown.code, shown.stderr)
    local database_url = json.decode(shown.stdout).databaseUrl
    assert.truthy(database_url:find(DB_PASSWORD, 1, true))

    -- (b) v2 deploys, then its validation fails: the run undoes the stack
    -- and the frontend, and leaves the infrastructure in place
    local bad = H.run(dir, { "run", "--reporter", "plain", table.unpack(args("v2", { "-p", "fail_validation=true" })) },
      { env = env, timeout = "120s" })
    local sampled = stop_sampling()
    assert.same(1, bad.code, bad.stderr .. bad.stdout)
    local second = records(dir)[2]
    assert.same({ "rolled_back", false }, { second.status, second.verified })
    local c2 = changes_by_kind(second)
    assert.same("left_in_place", c2["pulumi.stack"].status)
    assert.same("rolled_back", c2["docker.stack"].status)
    assert.same("rolled_back", c2["vercel.production"].status)
    assert.truthy(bad.stdout:find("validation failed (asked for with -p fail_validation=true)", 1, true), bad.stdout)
    -- the summary: the infrastructure stays, the rest was rolled back
    local said = bad.stdout .. bad.stderr
    assert.truthy(said:find("warning: pulumi.stack dev has no undo: left in place", 1, true), said)
    assert.truthy(said:find("\ninfrastructure +ok, left in place +%d"), said)
    assert.truthy(said:find("\nstack +ok, rolled back +%d"), said)
    assert.truthy(said:find("\nfrontend +ok, rolled back +%d"), said)
    assert.truthy(said:find("\nvalidate +failed +%d"), said)
    -- the stack: the first run's specs again, digests included
    local now = live_specs(stack)
    for name, spec in pairs(v1_specs) do
      assert.is_true(docker.stack.same(spec, now[name]), name .. " is not back at the first run's spec")
      assert.same(spec.TaskTemplate.ContainerSpec.Image, now[name].TaskTemplate.ContainerSpec.Image)
    end
    -- Vercel: production serves the first deployment again
    assert.same(first_deployment, api:state().projects[PROJECT].production)

    -- (c) no form of any secret anywhere
    local secrets = { TOKEN, PASSPHRASE, DB_PASSWORD, database_url }
    local texts = {
      ["run 1 stdout (--json)"] = good.stdout, ["run 1 stderr (--json)"] = good.stderr,
      ["run 2 stdout (plain)"] = bad.stdout, ["run 2 stderr (plain)"] = bad.stderr,
    }
    for path, text in pairs(files_under(dir)) do texts[path] = text end   -- records, events, the stack's files
    texts["the fake's argv log"] = assert(fs.read(env.FAKE_PULUMI_LOG))
    local fake_cmdlines = 0
    for i, text in ipairs(sampled) do
      texts["a command line seen in /proc (" .. i .. ")"] = text
      if text:find("fakes/pulumi.lua", 1, true) then fake_cmdlines = fake_cmdlines + 1 end
    end
    assert.is_true(fake_cmdlines > 0, "the sampler never saw the fake pulumi running")
    for where, text in pairs(texts) do
      local found = forms.find(text, secrets, where)
      assert.is_nil(found, found)
    end
  end)
end)
