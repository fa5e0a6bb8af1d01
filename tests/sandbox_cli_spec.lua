-- `slipway sandbox` without starting anything: the --nodes/--managers
-- arguments and their errors, the refusal without root, and the names and
-- subnet a multi-node sandbox's network would get (slipway.sandbox.network:
-- derived from the directory, in 198.18.0.0/15, clear of the host's routes).
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local hash = require("slipway.hash")
local leaks = require("support.leaks")

local N = require("support.nodes_sandbox")

local SLIPWAY = N.SLIPWAY

local function sandbox(args) return N.sandbox(args, { timeout = "30s" }) end

describe("slipway sandbox --nodes (arguments)", function()
  leaks.check()

  local usage_case = N.usage_case

  it("bad counts and combinations: exit 2 with the usage", function()
    usage_case({ "up", "--nodes", "0" }, "--nodes: expected a number from 1 to 16, got '0'")
    usage_case({ "up", "--nodes", "17" }, "--nodes: expected a number from 1 to 16, got '17'")
    usage_case({ "up", "--nodes", "two" }, "--nodes: expected a number from 1 to 16, got 'two'")
    usage_case({ "up", "--managers", "1" }, "--managers needs --nodes")
    usage_case({ "up", "--nodes", "2", "--managers", "3" }, "--managers 3: more managers than --nodes 2")
    usage_case({ "up", "--nodes", "3", "--tls-port", "2376" }, "--tls-port is for the one-engine sandbox")
    usage_case({ "up", "--nodes", "3", "--swarm-port", "2400" },
      "--swarm-port is for the one-engine sandbox (each node listens on its own address)")
    usage_case({ "status", "--nodes", "3" }, "status: unknown option '--nodes' (valid: --dir, --env, --json)")
  end)

  it("--help describes --nodes and --managers", function()
    local r = sandbox { "--help" }
    assert.same(0, r.code)
    assert.truthy(r.stdout:find("slipway sandbox up --nodes N [--managers M]", 1, true))
    assert.truthy(r.stdout:find("\n  --managers M ", 1, true))
  end)

  it("not root: a clear error, nothing made", function()
    local dir = "/tmp/slipway-sandbox-spec-nodes-nonroot"
    local r = assert(proc.run({ "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
      SLIPWAY, "sandbox", "up", "--nodes", "3", "--dir", dir }, { timeout = "30s" }))
    assert.same({ 1, "slipway sandbox up: needs root (network namespaces and dockerd need root): run it with sudo\n" },
      { r.code, r.stderr })
    assert.falsy(fs.exists(dir))
  end)
end)

describe("slipway.sandbox.network.plan", function()
  leaks.check()
  local network = require("slipway.sandbox.network")

  it("names everything after the directory, one namespace and veth per node", function()
    local net = network.plan("/tmp/sw-plan-a", 3)
    local tag = hash.sha256("/tmp/sw-plan-a"):sub(1, 6)
    assert.same({ tag, "slw" .. tag }, { net.tag, net.bridge })
    for k = 1, 3 do
      assert.same({ "node" .. k, ("slipway-%s-n%d"):format(tag, k), ("slw%sn%d"):format(tag, k) },
        { net.nodes[k].name, net.nodes[k].netns, net.nodes[k].veth })
      assert.is_true(#net.nodes[k].veth <= 15)      -- IFNAMSIZ
    end
    local a, b, c = net.subnet:match("^198%.(1[89])%.(%d+)%.0/24$")
    assert.truthy(a, net.subnet)
    assert.same(("198.%s.%s.1"):format(a, b), net.gateway)
    assert.same(("198.%s.%s.12"):format(a, b), net.nodes[2].addr)
    assert.is_nil(c)
  end)

  it("another directory: another bridge and subnet; a running sandbox keeps its subnet", function()
    local a, b = network.plan("/tmp/sw-plan-a", 1), network.plan("/tmp/sw-plan-b", 1)
    assert.are_not.equal(a.bridge, b.bridge)
    assert.are_not.equal(a.subnet, b.subnet)
    assert.same("198.19.7.0/24", network.plan("/tmp/sw-plan-a", 1, { subnet = "198.19.7.0/24" }).subnet)
  end)

  it("skips every /24 a route or address of the host covers", function()
    local tag = "0000aa"                   -- picks 198.18.0.0/24 first (0x0000 % 512)
    local function range(p) return { network._prefix_range(p) } end
    assert.same(198 << 24 | 18 << 16, network._free_subnet(tag, {}))
    -- a route over the first /24, an address in the second: the third is free
    assert.same(198 << 24 | 18 << 16 | 2 << 8,
      network._free_subnet(tag, { range("198.18.0.0/24"), range("198.18.1.77/32") }))
    -- a wide route (198.0.0.0/8) covers the whole range: none is free
    local ok, err = pcall(network._free_subnet, tag, { range("198.0.0.0/8") })
    assert.is_false(ok)
    assert.same("no free /24 left in 198.18.0.0/15 for the sandbox network", err.msg)
    -- the host's real routes are never picked
    local net = network.plan("/tmp/sw-plan-a", 1)
    local routes = assert(proc.run({ "ip", "-4", "route", "show", "table", "all" })).stdout
    assert.falsy(routes:find(net.subnet, 1, true))
  end)
end)
