-- A pipeline for tests/docker_stack_spec.lua: deploy one service at the
-- given version, then fail validation when asked, so that the run undoes
-- the deploy through the release record.
param.string("stack", "", "stack name")
param.string("image", "", "image to deploy")
param.string("version", "v1", "VERSION of the app")
param.bool("fail", false, "fail after the deploy")

task("deploy", function(p)
  docker.stack.deploy(p.stack, { services = { app = {
    image = p.image, environment = { VERSION = p.version },
    deploy = { replicas = 1, update_config = { monitor = "500ms" } },
  } } }, { timeout = "60s" })
end)

task("validate", { needs = "deploy" }, function(p)
  if p.fail then error("validation failed") end
end)
