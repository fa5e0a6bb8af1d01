-- docker.stack.deploy vs the real `docker stack deploy` (the 28.x CLI on
-- the machine): the same compose file deployed once by each, under two
-- stack names, must give the same service specs from /services/{id},
-- apart from the names (tests/support/docker_conformance.lua).
local docker = require("slipway.docker")
local fx = require("support.docker_fixtures")
local conf = require("support.docker_conformance")
local repo = require("support.repo")

local CORPUS = repo.SHARED .. "/corpus/compose/"

-- The Swarm-oriented files of the corpus (those with deploy: sections
-- that the CLI deploys here), and slipway's own stack files.
local corpus_files = {
  "BretFisher_dogvscat__stack-elk", "BretFisher_dogvscat__stack-ghost",
  "BretFisher_dogvscat__stack-portainer", "BretFisher_dogvscat__stack-proxy-global",
  "BretFisher_dogvscat__stack-rexray", "BretFisher_dogvscat__stack-swarmprom",
  "BretFisher_dogvscat__stack-voting", "docker_awesome-compose__minecraft__compose",
  "dockersamples_atsea-sample-shop-app__docker-stack", "dockersamples_example-voting-app__docker-stack",
  "stefanprodan_swarmprom__docker-compose", "stefanprodan_swarmprom__weave-compose",
  "swarmpit_swarmpit__docker-compose", "tiangolo_dockerswarm.rocks__docs__portainer",
  "tiangolo_dockerswarm.rocks__docs__swarmpit", "tiangolo_dockerswarm.rocks__docs__thelounge",
  "tiangolo_dockerswarm.rocks__docs__traefik-host", "tiangolo_dockerswarm.rocks__docs__traefik-v3",
  "vegasbrianc_prometheus__docker-compose", "vegasbrianc_prometheus__docker-stack",
}
local own_files = { "app-full", "ports" }

describe("docker.stack.deploy conformance with docker stack deploy", function()
  local totals = { files = 0, equal_files = 0, services = 0, equal_services = 0 }

  setup(function()
    local tag = fx.registry .. "/slipway-conformance:v1"
    fx.app_image(tag, { VERSION = "conformance" })
    docker.push(tag)
  end)

  teardown(function()
    io.stderr:write(("\nconformance: %d of %d stack files with equal specs (%d of %d services)\n")
      :format(totals.equal_files, totals.files, totals.equal_services, totals.services))
  end)

  local function check(path, env)
    local r = conf.compare(path, env)
    assert.is_nil(r.error)
    totals.files = totals.files + 1
    totals.services = totals.services + r.total
    totals.equal_services = totals.equal_services + r.equal
    if r.equal == r.total then totals.equal_files = totals.equal_files + 1 end
    assert.same({}, r.diffs)
    assert.is_true(r.total > 0)
  end

  it("has a comparison that sees a difference apart from the names", function()
    local a = { Name = "s1_web", Labels = { ["com.docker.stack.namespace"] = "s1" },
      TaskTemplate = { ContainerSpec = { Env = { "A=1" }, Secrets = { { SecretID = "x", SecretName = "s1_k" } } },
        Networks = { { Target = "n1" } } } }
    local b = { Name = "s2_web", Labels = { ["com.docker.stack.namespace"] = "s2" },
      TaskTemplate = { ContainerSpec = { Env = { "A=1" }, Secrets = { { SecretID = "y", SecretName = "s2_k_0123456789ab" } } },
        Networks = { { Target = "n2" } } } }
    local nets = { n1 = "s1_default", n2 = "s2_default" }
    assert.is_nil(conf.diff(conf.normalize(a, "s1", nets, false), conf.normalize(b, "s2", nets, true)))
    b.TaskTemplate.ContainerSpec.Env[1] = "A=2"
    assert.same('web.TaskTemplate.ContainerSpec.Env.1: "A=1" vs "A=2"',
      conf.diff(conf.normalize(a, "s1", nets, false), conf.normalize(b, "s2", nets, true), "web"))
  end)

  for _, name in ipairs(own_files) do
    it("gives the same specs for tests/support/docker_stacks/" .. name .. ".yml", function()
      check("tests/support/docker_stacks/" .. name .. ".yml", {})
    end)
  end

  for _, name in ipairs(corpus_files) do
    it("gives the same specs for the corpus file " .. name, function()
      check(CORPUS .. name .. ".yml", conf.read_env_file(CORPUS .. name .. ".vars.env"))
    end)
  end
end)
