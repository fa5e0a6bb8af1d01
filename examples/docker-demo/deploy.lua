-- examples/docker-demo/deploy.lua: the product's main path on a local
-- engine: build three images in parallel, push them, deploy the stack and
-- wait until it converged; a web image that crashes (-p broken=true) makes
-- Swarm pause the update and slipway roll the whole stack back.
--
-- Only what changed is done again: a build whose inputs (the service's
-- directory, its Dockerfile, the build args) did not change is skipped,
-- found in the engine or in the registry, and so is its push; a service
-- whose spec did not change is left alone, and the deploy waits only for
-- the ones it updated. Run it twice: the second run builds, pushes and
-- updates nothing, and still validates. Edit services/api/app.conf and
-- run it again: only api is rebuilt and redeployed.
--
--   tests/infra/up && . tests/infra/env        # private engine + registry + swarm
--   slipway run examples/docker-demo/deploy.lua -p version=v1
--   slipway run examples/docker-demo/deploy.lua -p version=v1   # nothing to do
--   slipway run examples/docker-demo/deploy.lua -p version=v2
--   slipway run examples/docker-demo/deploy.lua -p version=v3 -p broken=true   # rolled back
--   slipway run examples/docker-demo/deploy.lua -p version=v4 -p fail_validate=true
--       (deploys v4 fine, then validation fails: the run undoes the deploy)
--   tests/infra/down
param.string("version", "v1", "the image tag to build and deploy")
param.bool("broken", false, "ship a web image that exits at start")
param.bool("fail_validate", false, "fail the validation after a good deploy")
param.string("stack", "demo", "the stack's name")

local registry = env("SLIPWAY_REGISTRY", "127.0.0.1:5000")
local here = fs.dirname(debug.getinfo(1, "S").source:sub(2))
local root = here .. "/../.."          -- the checkout: tests/apps has the program
local SERVICES = { "api", "web", "worker" }

task("app-binary", function()
  sh { "make", "-s", "-C", root .. "/tests/apps", "health" }
  -- into each service's build context (a fresh copy each run: the
  -- content digest of a build ignores mtimes, so an unchanged program
  -- changes no image)
  for _, name in ipairs(SERVICES) do
    sh { "install", "-m", "0755", root .. "/tests/apps/health", here .. "/services/" .. name .. "/health" }
  end
end)

task("build", { needs = "app-binary", matrix = SERVICES }, function(name, p)
  local image = ("%s/demo-%s:%s"):format(registry, name, p.version)
  local built = docker.build {
    context = here .. "/services/" .. name, tag = image, quiet = true,
    build_args = { VERSION = name .. "-" .. p.version,
                   MODE = (p.broken and name == "web") and "crash" or "healthy" },
  }
  local digest, already = docker.push(image, { quiet = true })
  print(("%s: %s, %s %s"):format(image,
    built.cached and ("cached in the " .. built.cached_in) or "built",
    already and "already in the registry as" or "pushed as", digest))
end)

task("deploy", { needs = "build" }, function(p)
  local stack = compose.load(here .. "/stack.yml", { env = { REGISTRY = registry, TAG = p.version } })
  docker.stack.deploy(p.stack, stack, { timeout = "2m" })
end)

task("validate", { needs = "deploy" }, function(p)
  for _, s in ipairs(docker.stack.services(p.stack)) do
    local image = s.Spec.TaskTemplate.ContainerSpec.Image
    if not image:find(":" .. p.version .. "@", 1, true) then
      error(("%s runs %s, not %s"):format(s.Spec.Name, image, p.version))
    end
  end
  if p.fail_validate then error("validation failed (asked for with -p fail_validate=true)") end
  print("every service runs " .. p.version)
end)
