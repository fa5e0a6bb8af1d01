-- probe.docker against the real engine and swarm of tests/infra/up (tests/run
-- starts it for specs named *docker*). The services run the test app of
-- tests/apps (FROM scratch, HEALTHCHECK every 1s): one healthy, one whose
-- healthcheck fails (MODE=unhealthy). Images and services are made with the
-- docker CLI, so this spec does not depend on slipway.docker.
local probe = require("slipway.probe")
local http = require("slipway.http")
local proc = require("slipway.proc")
local leaks = require("support.leaks")

local DOCKER = "/usr/local/bin/docker"

local function docker(...)
  local res = assert(proc.run({ DOCKER, ... }, { timeout = 120 }))
  assert(res.code == 0, ("docker %s: %s"):format(table.concat({ ... }, " "), res.stderr))
  return (res.stdout:gsub("%s+$", ""))
end

local function unique(prefix)
  local f = io.open("/proc/self/stat")
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return prefix .. pid
end

describe("probe.docker", function()
  local image, good, bad, flappy, context

  setup(function()
    assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (run through tests/run, which starts tests/infra/up)")
    local r = assert(proc.run({ "make", "-s", "-C", "tests/apps", "health" }))
    assert(r.code == 0, r.stderr)
    -- our own build context and Dockerfile, so the healthcheck timing this
    -- spec relies on does not move with tests/apps/Dockerfile
    context = assert(proc.run({ "mktemp", "-d" })).stdout:gsub("%s+$", "")
    assert(assert(proc.run({ "cp", "tests/apps/health", context .. "/health" })).code == 0)
    local f = assert(io.open(context .. "/Dockerfile", "w"))
    f:write([[
FROM scratch
ENV MODE=healthy PORT=8080
COPY health /health
HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=2 CMD ["/health", "healthcheck"]
ENTRYPOINT ["/health"]
]])
    f:close()
    image = unique("slipway-probe-test:")
    docker("build", "-q", "-t", image, context)
    good, bad, flappy = unique("probegood"), unique("probebad"), unique("probeflappy")
    docker("service", "create", "-q", "--detach", "--no-resolve-image", "--replicas", "2",
           "--name", good, image)
    docker("service", "create", "-q", "--detach", "--no-resolve-image",
           "--name", bad, "-e", "MODE=unhealthy", image)
    -- healthy for its first 3 seconds, then failing: swarm replaces it
    docker("service", "create", "-q", "--detach", "--no-resolve-image",
           "--name", flappy, "-e", "MODE=unhealthy", "-e", "FAIL_AFTER=3", image)
  end)

  teardown(function()
    http.close_idle()
    pcall(docker, "service", "rm", good, bad, flappy)
    pcall(docker, "image", "rm", "-f", image)
    if context and context:match("^/tmp/") then proc.run({ "rm", "-rf", context }) end
  end)

  leaks.check()

  it("passes once every task of the service runs and reports healthy", function()
    local r = probe.docker { service = good, within = "60s", interval = "500ms" }
    assert.same({ true, "docker", good, 2, "2/2 tasks running and healthy" }, { r.ok, r.kind, r.target, r.status, r.reason })
    assert.is_nil(r.error)
  end)

  it("fails a service whose healthcheck fails, saying which task and why", function()
    local r = probe.docker { service = bad, within = "5s", interval = "1s" }
    assert.same({ false, "EUNHEALTHY", 0 }, { r.ok, r.error, r.status })
    assert.matches("^0/1 tasks running and healthy: task %w+ %a+.*%(not healthy within 5s%)$", r.reason)
    assert.is_true(r.attempts >= 4, "attempts " .. r.attempts)
  end)

  it("does not take healthy once for healthy: stable_for sees the task fail", function()
    local r = probe.docker { service = flappy, within = "10s", stable_for = "5s", interval = "500ms" }
    assert.same({ false, "EUNHEALTHY" }, { r.ok, r.error })
    assert.matches("^0/1 tasks running and healthy: task .*%(after being healthy%) %(not healthy within 10s%)$", r.reason)
    assert.is_true(r.passes == 0 and r.attempts >= 6, "attempts " .. r.attempts)
  end)

  it("says when the service does not exist or the engine cannot be reached", function()
    local r = probe.docker { service = "no-such-service-" .. good }
    assert.same({ false, "ENOSERVICE", "service 'no-such-service-" .. good .. "' not found" }, { r.ok, r.error, r.reason })
    r = probe.docker { service = good, docker_host = "unix:///nonexistent/docker.sock" }
    assert.same({ false, "ECONNREFUSED",
      "docker: cannot connect to unix socket /nonexistent/docker.sock: no such file or directory" },
      { r.ok, r.error, r.reason })
  end)

  it("runs with the other kinds in probe.all and raises inside a pipeline-style check", function()
    local ok, err = pcall(probe.all, { { service = good }, { service = bad } }, { check = true, timeout = "10s" })
    assert.is_false(ok)
    assert.matches("^tests/probe_docker_spec.lua:%d+: probe.all: 1 of 2 probes failed:\n  docker " .. bad ..
      ": 0/1 tasks running and healthy: ", err)
  end)

  it("rejects a bad docker_host", function()
    local ok, err = pcall(probe.docker, { service = good, docker_host = "ftp://x" })
    assert.same({ false, "tests/probe_docker_spec.lua:" .. (debug.getinfo(1, "l").currentline - 1) ..
      ": probe.docker: bad docker_host 'ftp://x' (expected unix:///path or tcp://host:port)" }, { ok, err })
  end)
end)
