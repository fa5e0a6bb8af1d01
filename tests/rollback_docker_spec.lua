-- `slipway rollback` and the automatic rollback to the last verified
-- release, on the real engine and swarm of tests/infra/up: v1 and v2 are
-- deployed and validated, v3 is interrupted by SIGINT after its deploy
-- (the stack left on an unvalidated version, with a service v3 added);
-- `slipway rollback` brings every service back to v2's exact spec and
-- digest and removes v3's service, `--to <v1>` brings v1 back, and a broken
-- v4 after another interrupted v3 goes back to v2's state, not v3's.
local H = require("support.pipeline_helper")
local F = require("support.docker_fixtures")
local docker = require("slipway.docker")
local proc = require("slipway.proc")
local json = require("slipway.json")
local leaks = require("support.leaks")

local PIPELINE = [[
pipeline { name = "%s" }
param.string("stack", "")
param.string("image", "")
param.string("version", "v1")
param.string("mode", "healthy")
param.bool("extra", false)
param.bool("hang", false)

task("deploy", function(p)
  local services = {
    api = { image = p.image, environment = { VERSION = p.version, MODE = p.mode, FAIL_AFTER = "0" },
            deploy = { update_config = { monitor = "2s" } } },
    web = { image = p.image, environment = { VERSION = "web-" .. p.version },
            deploy = { update_config = { monitor = "500ms" } } },
  }
  if p.extra then services.extra = { image = p.image, environment = { VERSION = "extra" } } end
  docker.stack.deploy(p.stack, { services = services }, { timeout = "60s" })
end)

task("smoke", { needs = "deploy", verifies = true }, function(p)
  if p.hang then
    fs.write("smoke-started", p.version)
    sleep(120)
  end
end)
]]

local function lit(s) return (s:gsub("%p", "%%%0")) end

local live_specs = F.live_specs

-- Are the live services exactly `want` (names and specs, digests included)?
local function assert_state(stack, want)
  local live = live_specs(stack)
  local names, wanted = {}, {}
  for n in pairs(live) do names[#names + 1] = n end
  for n in pairs(want) do wanted[#wanted + 1] = n end
  table.sort(names)
  table.sort(wanted)
  assert.same(wanted, names)
  for n, spec in pairs(want) do
    assert.is_true(docker.stack.same(spec, live[n]), n .. " differs from the release's spec")
    assert.same(spec.TaskTemplate.ContainerSpec.Image, live[n].TaskTemplate.ContainerSpec.Image)
  end
end

describe("slipway rollback", function()
  leaks.check()
  local stack, dir, image, pipeline_name
  local function run(version, more)
    local args = { "run", "--reporter", "plain", "-p", "stack=" .. stack, "-p", "image=" .. image,
                   "-p", "version=" .. version }
    for _, a in ipairs(more or {}) do args[#args + 1] = a end
    return H.run(dir, args, { timeout = "120s" })
  end
  local function history()
    local r = H.run(dir, { "history", "--json" })
    assert.same(0, r.code, r.stderr)
    return json.decode(r.stdout)
  end
  -- v3: deployed (with the extra service), then interrupted while it validates
  local function interrupted_v3()
    proc.run({ "rm", "-f", dir .. "/smoke-started" })
    local p = H.start_run(dir, { "-p", "stack=" .. stack, "-p", "image=" .. image, "-p", "version=v3",
                                 "-p", "extra=true", "-p", "hang=true" })
    H.wait_file(dir .. "/smoke-started", 90000)
    assert.same(0, proc.run({ "kill", "-INT", tostring(p.pid) }).code)
    local r = p:wait()
    assert.same(130, r.code, r.stderr)
    assert.truthy(live_specs(stack)[stack .. "_extra"], "v3 left its service running")
  end

  setup(function()
    assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (run through tests/run, which starts tests/infra/up)")
    stack = F.unique("rb")
    pipeline_name = stack .. "-pipeline"
    image = F.registry .. "/slipway-rollback:v1"
    if not docker.exists(image) then F.app_image(image, { VERSION = "rollback" }) end
    docker.push(image, { quiet = true })
    dir = H.project { ["deploy.lua"] = PIPELINE:format(pipeline_name) }
  end)

  teardown(function()
    F.remove_stack(stack)
    H.cleanup()
  end)

  it("goes back to the last verified release, then to the one --to names, and records itself", function()
    local r1 = run("v1")
    assert.same(0, r1.code, r1.stderr)
    local v1 = live_specs(stack)
    local r2 = run("v2")
    assert.same(0, r2.code, r2.stderr)
    local v2 = live_specs(stack)
    assert.is_false(docker.stack.same(v1[stack .. "_api"], v2[stack .. "_api"]))
    interrupted_v3()
    local h = history()
    assert.same({ "interrupted", "success", "success" }, { h[1].status, h[2].status, h[3].status })
    local v1_id, v2_id = h[3].id, h[2].id

    -- --dry-run: the per-service difference, nothing changed
    local dry = H.run(dir, { "rollback", "--dry-run" })
    assert.same(0, dry.code, dry.stderr)
    assert.matches("rollback to release " .. lit(v2_id), dry.stdout)
    assert.matches("update%s+" .. lit(stack) .. "_api%s+TaskTemplate%.ContainerSpec%.Env", dry.stdout)
    assert.matches("remove%s+" .. lit(stack) .. "_extra", dry.stdout)
    assert.truthy(live_specs(stack)[stack .. "_extra"])

    -- back to v2: its specs exactly, v3's service removed
    local rb = H.run(dir, { "rollback", "--reporter", "plain" }, { timeout = "120s" })
    assert.same(0, rb.code, rb.stdout .. rb.stderr)
    assert_state(stack, v2)
    h = history()
    assert.same("success", h[1].status)
    local shown = H.run(dir, { "show", h[1].id, "--json" })
    local rec = json.decode(shown.stdout)
    assert.same({ "rollback", v2_id }, { rec.kind, rec.rollback_to })
    assert.same("docker.stack", rec.changes[1].kind)
    assert.matches("updated 2 services", rec.changes[1].summary)
    assert.matches("removed 1 service", rec.changes[1].summary)

    -- and to v1, by id (the start of it is enough)
    rb = H.run(dir, { "rollback", "--to", v1_id:sub(1, 22), "--reporter", "plain" }, { timeout = "120s" })
    assert.same(0, rb.code, rb.stdout .. rb.stderr)
    assert_state(stack, v1)
  end)

  it("after an interrupted v3, a broken v4 goes back to v2's state, not v3's", function()
    assert.same(0, run("v2").code)
    local v2 = live_specs(stack)
    interrupted_v3()
    local r4 = run("v4", { "-p", "mode=unhealthy" })
    assert.same(1, r4.code, r4.stdout)
    assert.matches("back to verified release", r4.stdout)
    assert_state(stack, v2)
    local h = history()
    assert.same("rolled_back", h[1].status)
  end)

  it("says so when there is nothing verified to go back to, and takes no bad flag", function()
    local empty = H.project { ["deploy.lua"] = PIPELINE:format(pipeline_name .. "-empty") }
    local r = H.run(empty, { "rollback" })
    assert.same(1, r.code)
    assert.matches("^slipway rollback: no verified release of " .. lit(pipeline_name) .. "%-empty %(default%)", r.stderr)
    r = H.run(empty, { "rollback", "--only", "deploy" })
    assert.same(2, r.code)
    assert.matches("unknown flag '%-%-only'", r.stderr)
  end)
end)
