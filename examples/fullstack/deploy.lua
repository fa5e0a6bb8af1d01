-- examples/fullstack/deploy.lua: the whole path of a release, in four
-- steps that each hand the next what it needs:
--
--   infrastructure  Pulumi: the stack's config (one value secret), `up`,
--                   and its outputs (one of them secret)
--   stack           a Swarm stack whose service gets the outputs: the
--                   bucket as an environment value, the database URL as a
--                   Swarm secret
--   frontend        the static site in frontend/ to Vercel production
--   validate        the service is healthy, and Vercel's production is the
--                   deployment this run made (`verifies = true`: only then
--                   is the release verified)
--
-- A failed validation undoes the run in reverse order: Vercel production
-- goes back to the deployment that served before, the stack back to the
-- specs it had; the Pulumi stack is left in place (undoing infrastructure
-- is opt-in: rollback = "pulumi"), and the summary says so. No secret (the
-- Vercel token, the Pulumi passphrase, the database password, the database
-- URL) reaches the output, the records or a command line.
--
-- Secrets come from the environment: VERCEL_TOKEN, PULUMI_CONFIG_PASSPHRASE
-- and SLIPWAY_PARAM_DB_PASSWORD. README.md says how to run it against the
-- stand-ins the tests use (a fake `pulumi`, a stand-in Vercel API, the
-- private Docker sandbox).
pipeline { name = "fullstack" }

param.string("version", "v1", "the release: the service's VERSION and the frontend's meta")
param.string("image", env("SLIPWAY_REGISTRY", "127.0.0.1:5000") .. "/fullstack-api:latest",
  "the API's image (the test app, tests/apps)")
param.string("stack", "fullstack", "the Swarm stack's name")
param.choice("environment", { "dev", "staging", "production" }, "dev", "also the Pulumi stack's name")
param.string("vercel_project", "fullstack-web", "the Vercel project")
param.secret("db_password", { description = "the database's password (give it as SLIPWAY_PARAM_DB_PASSWORD)" })
param.bool("fail_validation", false, "fail the validation after a good deploy, to see the rollback")

local here = fs.realpath(fs.dirname(debug.getinfo(1, "S").source:sub(2)))
local vercel_token = secret("VERCEL_TOKEN")
local passphrase = secret("PULUMI_CONFIG_PASSPHRASE")
local state_dir = here .. "/.pulumi-state"
local backend = env("PULUMI_BACKEND_URL", "file://" .. state_dir)

-- What a step hands the next (tasks of a run share this file's locals).
local infra         -- the Pulumi stack's outputs
local site          -- the Vercel deployment

-- The options every Pulumi call of this pipeline shares, plus extra ones.
local function pulumi_opts(p, extra)
  local o = { cwd = here .. "/infra", stack = p.environment, backend = backend,
              env = { PULUMI_CONFIG_PASSPHRASE = passphrase } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

task("infrastructure", { description = "pulumi up in infra/, the stack named after the environment" }, function(p)
  if backend == "file://" .. state_dir then fs.mkdir(state_dir) end
  local s = pulumi.stack(pulumi_opts(p))                 -- selected; created on the first run
  if s.created then print("created the Pulumi stack " .. s.stack) end
  -- the config goes with the update, so that its record names it
  local up = pulumi.up(pulumi_opts(p, {
    config = { release = p.version, dbSize = "db.t4g.micro" },
    secret_config = { dbPassword = p.db_password },      -- through the CLI's stdin, never its argv
  }))
  infra = up.outputs
  -- databaseUrl is a Secret (the stack marks it secret): it prints as ***
  print(("assets bucket %s, database %s"):format(infra.assetsBucket, infra.databaseUrl))
  return { assets_bucket = infra.assetsBucket, pulumi_version = up.version }
end)

task("stack", { needs = "infrastructure" }, function(p)
  docker.stack.deploy(p.stack, {
    services = {
      api = {
        image = p.image,
        environment = { VERSION = p.version, ASSETS_BUCKET = infra.assetsBucket },
        secrets = { "database_url" },                    -- /run/secrets/database_url
        deploy = {
          replicas = 1,
          update_config = { monitor = "1s", failure_action = "pause" },
          restart_policy = { condition = "any", delay = "1s" },
        },
      },
    },
    -- named by content: a new database URL is a new Swarm secret
    secrets = { database_url = { content = infra.databaseUrl } },
  }, { timeout = "2m" })
end)

task("frontend", { needs = "stack" }, function(p)
  site = vercel.deploy {
    dir = here .. "/frontend", project = p.vercel_project, production = true,
    token = vercel_token, meta = { version = p.version },
  }
  print(("%s serves production at %s"):format(site.id, site.url))
  return { deployment = site.id, url = site.url }
end)

task("validate", { needs = "frontend", verifies = true }, function(p)
  probe.docker { service = p.stack .. "_api", within = "30s", interval = "500ms" }
  -- Vercel's production is the deployment this run made. (With a real
  -- domain, probe.http { url = "https://www.example.com/" } as well.)
  local api = env("VERCEL_API_URL", "https://api.vercel.com")
  local team = env.get("VERCEL_TEAM_ID")
  probe.http {
    url = ("%s/v9/projects/%s%s"):format(api, p.vercel_project, team and ("?teamId=" .. team) or ""),
    headers = { Authorization = "Bearer " .. vercel_token },
    json = { ["targets.production.id"] = site.id },
    within = "30s", interval = "500ms",
  }
  if p.fail_validation then error("validation failed (asked for with -p fail_validation=true)") end
  print(("%s is healthy; Vercel production is %s"):format(p.stack, site.id))
end)
