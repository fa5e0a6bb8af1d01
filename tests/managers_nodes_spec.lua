-- The swarm ledger and lock in a swarm of three managers (`slipway sandbox
-- up --nodes 3 --managers 3`): releases and the lock are configs in the
-- managers' Raft store, so when one manager (the leader) crashes, the other
-- two elect a leader and `slipway history`, `slipway lock status` and
-- `slipway rollback` work against them; when a second one crashes the swarm
-- has no quorum, and slipway says so instead of hanging.
--
-- It starts engines of its own: tests/run runs *_nodes_spec.lua apart,
-- holding the machine's sandbox lock exclusive. Needs root.
local N = require("support.nodes_sandbox")
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local json = require("slipway.json")
local task = require("slipway.task")
local repo = require("support.repo")

assert(N.is_root(), "tests/managers_nodes_spec.lua needs root: the nodes are dockerd daemons in network namespaces")

local DIR = "/tmp/slipway-managers-spec"

local PIPELINE = [[
pipeline { name = "quorum", ledger = "swarm" }
param.string("image", "")
param.string("version", "v1")
task("deploy", function(p)
  docker.stack.deploy("quorum", { services = { web = { image = p.image,
    environment = { VERSION = p.version }, deploy = { replicas = 2,
    update_config = { parallelism = 2, monitor = "1s" } } } } }, { timeout = "60s" })
end)
task("smoke", { needs = "deploy", verifies = true }, function() end)
]]

describe("three managers", function()
  local release, S, dir, image, client

  setup(function()
    release = require("support.machine_lock").acquire()
    N.down(DIR)
    client = require("slipway.docker.client")
  end)

  teardown(function()
    if client then client.close_all() end
    N.down(DIR)
    H.cleanup()
    if release then release() end
  end)

  -- slipway ARGS in the project against one node's engine.
  local function slipway(node, args, timeout)
    return H.run(dir, args, { env = { DOCKER_HOST = "unix://" .. node.socket }, timeout = timeout or "120s" })
  end

  local function web_version(node)
    local svc = client.new({ host = "unix://" .. node.socket }):call("test", "GET", "/services/quorum_web")
    for _, e in ipairs(svc.Spec.TaskTemplate.ContainerSpec.Env or {}) do
      local v = e:match("^VERSION=(.*)$")
      if v then return v end
    end
  end

  it("come up: three managers, one leader, and two releases in the swarm's ledger", function()
    S = N.up(DIR, { "--nodes", "3", "--managers", "3" })
    assert.same({ "manager", "manager", "manager" }, { S.nodes[1].role, S.nodes[2].role, S.nodes[3].role })
    local st = N.status(DIR)
    assert.same({ true, true, false, false },
      { st.ok, st.nodes[1].swarm.leader, st.nodes[2].swarm.leader, st.nodes[3].swarm.leader })
    assert.same({ "reachable", "reachable" }, { st.nodes[2].swarm.reachability, st.nodes[3].swarm.reachability })

    require("support.docker_fixtures").app_binary()
    image = S.env.SLIPWAY_REGISTRY .. "/quorum-app:v1"
    local docker = require("slipway.docker")
    local c = client.new({ host = S.env.DOCKER_HOST })
    docker.build({ context = repo.ROOT .. "/tests/apps", tag = image, client = c, quiet = true })
    docker.push(image, { client = c, quiet = true })

    dir = H.project { ["deploy.lua"] = PIPELINE }
    for _, v in ipairs { "v1", "v2" } do
      local r = slipway(S.nodes[1], { "run", "--reporter", "plain", "-p", "image=" .. image, "-p", "version=" .. v })
      assert.same(0, r.code, r.stdout .. r.stderr)
    end
    assert.same("v2", web_version(S.nodes[1]))
  end)

  it("the leader crashes: history, lock status and rollback work against the other two", function()
    N.crash(S.nodes[1])
    local survivor = S.nodes[2]
    -- a new leader among node2 and node3 (the swarm says 11-14 s)
    local started = task.now()
    N.wait_for("a new leader", function()
      local s = N.status(DIR)
      return s.nodes[2].swarm.leader or s.nodes[3].swarm.leader
    end, 60)
    io.stderr:write(("[new leader after %.1fs]\n"):format((task.now() - started) / 1000))

    local r = slipway(survivor, { "history", "--json" })
    assert.same(0, r.code, r.stderr)
    local rows = json.decode(r.stdout)
    assert.same({ { "v2", "success", true }, { "v1", "success", true } },
      { { rows[1].version, rows[1].status, rows[1].verified }, { rows[2].version, rows[2].status, rows[2].verified } })
    local v1_id = rows[2].id

    r = slipway(survivor, { "lock", "status", "--json" })
    assert.same(0, r.code, r.stderr)
    assert.is_nil(json.decode(r.stdout).holder)

    r = slipway(S.nodes[3], { "rollback", "--to", v1_id, "--reporter", "plain" })
    assert.same(0, r.code, r.stdout .. r.stderr)
    assert.same("v1", web_version(survivor))
    r = slipway(survivor, { "history", "--json" })
    assert.same(0, r.code, r.stderr)
    rows = json.decode(r.stdout)
    assert.same({ 3, "v1", "success" }, { #rows, rows[1].version, rows[1].status })
  end)

  it("a second manager crashes: 'swarm has no quorum', not a hang", function()
    N.crash(S.nodes[2])
    local last = S.nodes[3]
    -- a change needs a Raft commit: refused at once, or when the engine's
    -- own deadline passes, never later than slipway's
    local started = task.now()
    local r = slipway(last, { "lock", "acquire", "--reason", "no quorum" }, "150s")
    local took = (task.now() - started) / 1000
    io.stderr:write(("[lock acquire without quorum: exit %d after %.1fs]\n"):format(r.code, took))
    assert.same(1, r.code, r.stdout .. r.stderr)
    assert.matches("swarm has no quorum", r.stderr)
    assert.is_true(took < 75, ("took %.0fs"):format(took))
    -- a read: answered by the last manager while it still thinks it leads,
    -- then refused once it has stepped down (no leader to ask)
    started = task.now()
    N.wait_for("history to say there is no quorum", function()
      local t0 = task.now()
      r = slipway(last, { "history" }, "150s")
      assert.is_true(task.now() - t0 < 75000, "history took more than 75s")
      return r.code ~= 0
    end, 90)
    io.stderr:write(("[history refused %.1fs after the second crash]\n"):format((task.now() - started) / 1000 + took))
    assert.is_true(r.code ~= 0, r.stdout .. r.stderr)
    assert.matches("swarm has no quorum", r.stderr)
  end)

  it("down leaves nothing behind", function()
    N.down(DIR)
    assert.same({}, N.leftovers(DIR))
    assert.is_false(fs.exists(DIR .. "/nodes"))
  end)
end)
