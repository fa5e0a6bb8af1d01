-- examples/unified/deploy.lua: the seed's "one badass deployment path" in
-- one file. It replaces production-deployment.yml, deploy_v2_mcp_servers.yml,
-- deploy-sophia-platform.yml and the scripts around them:
--
--   quality-gate    make check (the services' programs build warning-free)
--   build           the backend and every MCP server found under
--                   infrastructure/mcp_servers/*_v2, as a parallel matrix
--                   (one Dockerfile, COMPONENT naming each one's directory);
--                   built and pushed only when their inputs changed
--   infrastructure  Pulumi (infrastructure/pulumi, the stack named after the
--                   environment): its outputs go into the stack
--   deploy          one compose file (docker-compose.unified.yml) with the
--                   environment's values, deployed as a Swarm stack, waiting
--                   until every service converged and is healthy
--   frontend        frontend/ to Vercel (production for production)
--   validate        Swarm health of every service, the backend's API over
--                   HTTP, Vercel serving this run's deployment (verifies)
--   record          whatever happened: the release summary POSTed to the
--                   deployment records endpoint (the seed's INSERT INTO
--                   deployments (version, timestamp, status))
--
-- A failed run rolls back on its own: the stack and Vercel's production go
-- back to what they were, and where that was not a verified release, on to
-- the last verified one. `slipway history` lists the releases, `slipway
-- rollback` goes back to the last verified one by hand.
--
-- Secrets come from the environment (VERCEL_TOKEN, PULUMI_CONFIG_PASSPHRASE),
-- the registry from SLIPWAY_REGISTRY, the records endpoint from RECORDS_URL.
-- README.md runs it against a private sandbox; `make demo` does all of it.
pipeline { name = "sophia" }

param.choice("environment", { "production", "staging", "development" }, "production", "where to deploy")
param.bool("deploy_backend", true, "build and deploy the backend")
param.bool("deploy_mcp", true, "build and deploy the MCP servers (infrastructure/mcp_servers/*_v2)")
param.bool("deploy_frontend", true, "deploy the frontend to Vercel")
param.bool("deploy_monitoring", false, "build and deploy the monitoring service")
param.string("version", "dev", "the release: the images' tag and the frontend's version")
param.string("stack", "sophia-ai", "the Swarm stack")
param.string("backend_url", "", "where validation reaches the backend's API (default: its tasks on this node)")
param.bool("broken", false, "ship a backend whose API fails while its healthcheck passes (validation catches it)")

local here = fs.realpath(fs.dirname(debug.getinfo(1, "S").source:sub(2)))
local registry = env("SLIPWAY_REGISTRY", "127.0.0.1:5000")
local records_url = env("RECORDS_URL", "http://127.0.0.1:8099/deployments")
local vercel_token = secret("VERCEL_TOKEN")
local passphrase = secret("PULUMI_CONFIG_PASSPHRASE")
local pulumi_state = here .. "/.pulumi-state"
local pulumi_backend = env("PULUMI_BACKEND_URL", "file://" .. pulumi_state)

-- What one step hands the next (the tasks of a run share this file's locals).
local infra         -- the Pulumi stack's outputs
local site          -- the Vercel deployment

-- ------------------------------------------------------------ components

-- The MCP servers: infrastructure/mcp_servers/<name>_v2 (the seed's
-- glob("infrastructure/mcp_servers/*_v2")), sorted.
local function mcp_servers()
  local names = {}
  for _, dir in ipairs(fs.glob(here .. "/infrastructure/mcp_servers/*_v2")) do
    names[#names + 1] = fs.basename(dir):gsub("_v2$", "")
  end
  table.sort(names)
  return names
end

-- What this run builds and deploys, each { name (the service's), dir (its
-- directory here: the Dockerfile's COMPONENT), image }.
local function components(p)
  local list = {}
  local function add(name, dir, repo)
    list[#list + 1] = { name = name, dir = dir, image = ("%s/%s:%s"):format(registry, repo, p.version) }
  end
  if p.deploy_backend then add("backend", "backend", "sophia-ai") end
  if p.deploy_mcp then
    for _, name in ipairs(mcp_servers()) do
      add("mcp-" .. name, "infrastructure/mcp_servers/" .. name .. "_v2", "sophia-mcp-" .. name)
    end
  end
  if p.deploy_monitoring then add("monitoring", "monitoring", "sophia-monitoring") end
  return list
end

local function deep_copy(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for k, v in pairs(t) do out[k] = deep_copy(v) end
  return out
end

-- The stack: the compose file with the environment's values, one service
-- per MCP server from its x-mcp-server template, and only the components
-- this run deploys (the others keep running as they are).
local function load_stack(p)
  local stack = compose.load(here .. "/docker-compose.unified.yml", {
    env_file = here .. "/environments/" .. p.environment .. ".env",
    env = { DOCKER_REGISTRY = registry, IMAGE_TAG = p.version, ASSETS_BUCKET = infra.assetsBucket },
  })
  local template = stack["x-mcp-server"]
  local services = {}
  for _, c in ipairs(components(p)) do
    local s = stack.services[c.name] or deep_copy(template)
    s.image = c.image
    services[c.name] = s
  end
  stack.services = services
  return stack
end

-- ------------------------------------------------------------ tasks

task("quality-gate", function()
  sh { "make", "-s", "-C", here, "check" }
end)

-- one matrix item per component, labelled with its name
task("build", { needs = "quality-gate", matrix = components }, function(c, p)
  -- one Dockerfile for every component: this directory is the context
  -- (.dockerignore keeps the program and the service.conf files)
  local built = docker.build {
    context = here, tag = c.image, quiet = true,
    build_args = { COMPONENT = c.dir, VERSION = c.name .. "-" .. p.version,
                   MODE = (p.broken and c.name == "backend") and "degraded" or "healthy" },
  }
  local digest, already = docker.push(c.image, { quiet = true })
  print(("%s: %s, %s %s"):format(c.image, built.cached and "cached" or "built",
    already and "already in the registry as" or "pushed as", digest))
end)

-- The options every Pulumi call of this pipeline shares, plus extra ones.
local function pulumi_opts(p, extra)
  local o = { cwd = here .. "/infrastructure/pulumi", stack = p.environment, backend = pulumi_backend,
              env = { PULUMI_CONFIG_PASSPHRASE = passphrase } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

task("infrastructure", { needs = "quality-gate" }, function(p)
  if pulumi_backend == "file://" .. pulumi_state then fs.mkdir(pulumi_state) end
  pulumi.stack(pulumi_opts(p))                           -- selected; created on the first run
  local up = pulumi.up(pulumi_opts(p, { config = { environment = p.environment, release = p.version } }))
  infra = up.outputs
  print(("%s: swarm manager %s, assets bucket %s"):format(p.environment, infra.managerAddress, infra.assetsBucket))
  return { assets_bucket = infra.assetsBucket, pulumi_version = up.version }
end)

task("deploy", { needs = { "build", "infrastructure" } }, function(p)
  docker.stack.deploy(p.stack, load_stack(p), { timeout = "3m" })
end)

task("frontend", { needs = "deploy", when = "deploy_frontend" }, function(p)
  site = vercel.deploy {
    dir = here .. "/frontend", project = "sophia-frontend", production = p.environment == "production",
    token = vercel_token, meta = { version = p.version, environment = p.environment },
  }
  print(("%s serves %s at %s"):format(site.id, p.environment, site.url))
  return { deployment = site.id, url = site.url }
end)

-- Where the backend's API answers: -p backend_url, else each of its running
-- tasks on this node, at its address on docker_gwbridge (a private sandbox
-- has no ingress routing mesh to publish a port with).
local function backend_urls(p)
  if p.backend_url ~= "" then return { p.backend_url } end
  local bridge = docker.client():call("validate", "GET", "/networks/docker_gwbridge")
  local urls = {}
  for _, t in ipairs(docker.service.tasks(p.stack .. "_backend", { desired_state = "running" })) do
    local status = t.Status and t.Status.ContainerStatus
    local endpoint = status and (bridge.Containers or {})[status.ContainerID]
    if endpoint then urls[#urls + 1] = "http://" .. endpoint.IPv4Address:gsub("/%d+$", "") .. ":8080/" end
  end
  if #urls == 0 then error("no running task of " .. p.stack .. "_backend answers on this node: give -p backend_url") end
  return urls
end

task("validate", { needs = { "deploy", "frontend" }, verifies = true }, function(p)
  for _, c in ipairs(components(p)) do
    probe.docker { service = p.stack .. "_" .. c.name, within = "30s", interval = "500ms" }
  end
  if p.deploy_backend then
    for _, url in ipairs(backend_urls(p)) do
      probe.http { url = url, body_contains = "backend-" .. p.version, within = "10s", interval = "500ms" }
    end
  end
  if site and p.environment == "production" then
    local api = env("VERCEL_API_URL", "https://api.vercel.com")
    probe.http {
      url = api .. "/v9/projects/sophia-frontend", headers = { Authorization = "Bearer " .. vercel_token },
      json = { ["targets.production.id"] = site.id }, within = "30s", interval = "500ms",
    }
  end
  print(("%s %s is healthy and serves %s"):format(p.environment, p.stack, p.version))
end)

task("record", { finally = true }, function(_, release)
  release.recorded_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local r, err = http.request { method = "POST", url = records_url, timeout = "10s",
                                headers = { ["Content-Type"] = "application/json" }, body = json.encode(release) }
  if not r then error(("the records endpoint %s: %s"):format(records_url, err)) end
  if r.status ~= 201 then error(("the records endpoint %s answered %d: %s"):format(records_url, r.status, r.body)) end
  print(("recorded release %s (%s) at %s"):format(release.id, release.status, records_url))
end)
