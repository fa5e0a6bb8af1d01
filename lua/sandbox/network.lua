-- slipway.sandbox.network: the private network of a multi-node sandbox.
--
-- One Linux bridge per sandbox with a /24 of 198.18.0.0/15 (the range set
-- aside for network benchmarks, RFC 2544: no real network uses it) that no
-- route or address of the host covers; one network namespace per node,
-- joined to the bridge by a veth pair (eth0 inside, .11, .12, ... as
-- addresses); the host keeps .1, where the sandbox registry listens. Names
-- derive from the sandbox directory, so two sandboxes never share one:
--   bridge      slw<6 hex>            veth of node k  slw<6 hex>n<k>
--   namespace   slipway-<6 hex>-n<k>
-- Everything here is created by `ip` and removed by name; what the host's
-- firewall needs (an ACCEPT rule for the bridge when FORWARD drops) is
-- added only then, and removed by the same rule text.
local fs = require("slipway.fs")
local hash = require("slipway.hash")
local host = require("slipway.sandbox.host")

local M = {}
local fail, run, must = host.fail, host.run, host.must

M.RANGE_FIRST = (198 << 24) | (18 << 16)      -- 198.18.0.0/15: 512 /24s
M.RANGE_SIZE = 512

---------------------------------------------------------------- addresses

local function ip_to_int(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return (tonumber(a) << 24) | (tonumber(b) << 16) | (tonumber(c) << 8) | tonumber(d)
end

local function int_to_ip(n)
  return ("%d.%d.%d.%d"):format((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)
end
M.int_to_ip = int_to_ip

-- "10.0.0.0/8" -> first, last address as integers (nil for "default")
function M._prefix_range(text)
  local addr, len = text:match("^([%d.]+)/(%d+)$")
  if not addr then addr, len = text:match("^([%d.]+)$"), 32 end
  local n = addr and ip_to_int(addr)
  if not n then return nil end
  len = tonumber(len)
  local mask = len == 0 and 0 or ((0xffffffff << (32 - len)) & 0xffffffff)
  local first = n & mask
  return first, first | (~mask & 0xffffffff)
end

-- Every IPv4 prefix the host has a route or an address for.
local function host_prefixes()
  local list = {}
  local routes = run({ "ip", "-4", "route", "show", "table", "all" })
  local addrs = run({ "ip", "-4", "-o", "addr", "show" })
  local function add(prefix)
    local first, last = M._prefix_range(prefix)
    -- a default route (0.0.0.0/0) covers everything: not a conflict
    if first and last - first < 0xffffffff then list[#list + 1] = { first, last } end
  end
  for line in (routes.stdout or ""):gmatch("[^\n]+") do
    local first_word, second = line:match("^(%S+)%s+(%S+)")
    -- "local 127.0.0.0/8 dev lo ...", "broadcast ...": a route type first
    add(first_word and first_word:match("^%d") and first_word or second or "")
  end
  for prefix in (addrs.stdout or ""):gmatch("inet ([%d.]+/%d+)") do add(prefix) end
  return list
end

-- A /24 of 198.18.0.0/15 nothing on the host uses, starting from one the
-- directory's name picks (so a sandbox mostly keeps its subnet).
-- used: { {first, last}, ... } (default: the host's routes and addresses)
function M._free_subnet(tag, used)
  used = used or host_prefixes()
  local start = tonumber(tag:sub(1, 4), 16) % M.RANGE_SIZE
  for i = 0, M.RANGE_SIZE - 1 do
    local first = M.RANGE_FIRST + ((start + i) % M.RANGE_SIZE) * 256
    local last = first + 255
    local taken = false
    for _, r in ipairs(used) do
      if r[1] <= last and first <= r[2] then taken = true break end
    end
    if not taken then return first end
  end
  fail("no free /24 left in 198.18.0.0/15 for the sandbox network")
end

---------------------------------------------------------------- the plan

-- The names and addresses of dir's network with n nodes. old: the state
-- of a sandbox that runs there (its subnet is kept).
function M.plan(dir, n, old)
  local tag = hash.sha256(dir):sub(1, 6)
  local net = { tag = tag, bridge = "slw" .. tag }
  local base = old and old.subnet and M._prefix_range(old.subnet) or M._free_subnet(tag)
  net.subnet = int_to_ip(base) .. "/24"
  net.gateway = int_to_ip(base + 1)
  net.nodes = {}
  for k = 1, n do
    net.nodes[k] = {
      name = "node" .. k,
      netns = ("slipway-%s-n%d"):format(tag, k),
      veth = ("slw%sn%d"):format(tag, k),
      addr = int_to_ip(base + 10 + k),
    }
  end
  return net
end

---------------------------------------------------------------- checks

-- What the machine must offer, checked before anything is created.
function M.check_programs()
  for _, p in ipairs { { "ip", "iproute2" }, { "unshare", "util-linux" }, { "nsenter", "util-linux" },
                       { "setsid", "util-linux" }, { "flock", "util-linux" } } do
    if not host.which(p[1]) then fail("%s not found: install %s", p[1], p[2]) end
  end
end

local function link_exists(name, netns)
  local argv = netns and { "ip", "-n", netns, "link", "show", name } or { "ip", "link", "show", name }
  return run(argv).code == 0
end
M.link_exists = link_exists

function M.netns_exists(name)
  return fs.exists("/run/netns/" .. name)
end

-- The kernel can make a vxlan link (overlay networks are vxlan): tried in
-- a node's namespace, so the host never sees it.
function M.check_vxlan(netns)
  local r = run({ "ip", "-n", netns, "link", "add", "slwvxprobe", "type", "vxlan", "id", "4242", "dstport", "4789" })
  if r.code ~= 0 then
    fail("this machine cannot make a vxlan link (Swarm's overlay networks need one): %s",
      (r.stderr or ""):gsub("%s+$", ""))
  end
  run({ "ip", "-n", netns, "link", "del", "slwvxprobe" })
end

---------------------------------------------------------------- creating

function M.ensure_bridge(net)
  if not link_exists(net.bridge) then
    local r = run({ "ip", "link", "add", net.bridge, "type", "bridge" })
    if r.code ~= 0 then
      fail("cannot create the bridge %s: %s", net.bridge, (r.stderr or ""):gsub("%s+$", ""))
    end
  end
  local addrs = run({ "ip", "-4", "-o", "addr", "show", "dev", net.bridge }).stdout or ""
  if not addrs:find(" " .. net.gateway .. "/", 1, true) then
    must({ "ip", "addr", "add", net.gateway .. "/24", "dev", net.bridge })
  end
  must({ "ip", "link", "set", net.bridge, "up" })
end

-- A node's namespace, its veth pair on the bridge and its address.
function M.ensure_node(net, node)
  if not M.netns_exists(node.netns) then
    local r = run({ "ip", "netns", "add", node.netns })
    if r.code ~= 0 then
      fail("this machine cannot create network namespaces (ip netns add %s): %s", node.netns,
        (r.stderr or ""):gsub("%s+$", ""))
    end
  end
  if not link_exists(node.veth) then
    must({ "ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns })
  end
  must({ "ip", "link", "set", node.veth, "master", net.bridge, "up" })
  local addrs = run({ "ip", "-n", node.netns, "-4", "-o", "addr", "show", "dev", "eth0" }).stdout or ""
  if not addrs:find(" " .. node.addr .. "/", 1, true) then
    must({ "ip", "-n", node.netns, "addr", "add", node.addr .. "/24", "dev", "eth0" })
  end
  must({ "ip", "-n", node.netns, "link", "set", "eth0", "up" })
  must({ "ip", "-n", node.netns, "link", "set", "lo", "up" })
  local routes = run({ "ip", "-n", node.netns, "-4", "route", "show", "default" }).stdout or ""
  if routes == "" then must({ "ip", "-n", node.netns, "route", "add", "default", "via", net.gateway }) end
end

-- The ACCEPT rule the bridge needs when bridged traffic passes the host's
-- FORWARD chain (br_netfilter) and that chain drops by default; nil when
-- none is needed.
function M.forward_rule(net)
  if (fs.read("/proc/sys/net/bridge/bridge-nf-call-iptables") or "0"):match("^%s*1") == nil then return nil end
  if not host.which("iptables") then return nil end
  local r = run({ "iptables", "-w", "5", "-S", "FORWARD" })
  if r.code ~= 0 or not (r.stdout or ""):match("^%-P FORWARD DROP") then return nil end
  return { "FORWARD", "-i", net.bridge, "-o", net.bridge, "-j", "ACCEPT" }
end

local function iptables(op, rule)
  local argv = { "iptables", "-w", "5", op }
  for _, w in ipairs(rule) do argv[#argv + 1] = w end
  return run(argv)
end

function M.add_rule(rule)
  if iptables("-C", rule).code ~= 0 then
    local r = iptables("-I", rule)
    if r.code ~= 0 then fail("iptables -I %s: %s", table.concat(rule, " "), (r.stderr or ""):gsub("%s+$", "")) end
  end
end

function M.remove_rule(rule)
  while iptables("-C", rule).code == 0 do
    if iptables("-D", rule).code ~= 0 then break end
  end
end

---------------------------------------------------------------- removing

-- The namespaces and links of the sandbox with this tag that exist now
-- (found by their names, whatever a state file says).
function M.leftovers(tag)
  local found = { netns = {}, links = {} }
  for _, name in ipairs(fs.list("/run/netns") or {}) do
    if name:sub(1, #tag + 9) == "slipway-" .. tag .. "-" then found.netns[#found.netns + 1] = name end
  end
  local links = run({ "ip", "-o", "link", "show" }).stdout or ""
  for name in links:gmatch("\n?%d+: ([^:@%s]+)") do
    if name:sub(1, 3 + #tag) == "slw" .. tag then found.links[#found.links + 1] = name end
  end
  return found
end

-- Remove the namespaces, veths and bridge of tag (plus the ones named in
-- net), then wait until the kernel has let go of them.
function M.remove(tag, net)
  local seen = {}
  local netns, links = {}, {}
  local function add(list, name) if name and not seen[name] then seen[name] = true; list[#list + 1] = name end end
  for _, node in ipairs(net and net.nodes or {}) do add(netns, node.netns); add(links, node.veth) end
  local found = M.leftovers(tag)
  for _, n in ipairs(found.netns) do add(netns, n) end
  for _, l in ipairs(found.links) do add(links, l) end
  if net and net.bridge then add(links, net.bridge) end
  for _, n in ipairs(netns) do
    if M.netns_exists(n) then run({ "ip", "netns", "del", n }) end
  end
  -- veths first (their peers go with them), the bridge last
  table.sort(links, function(a, b) return #a > #b end)
  for _, l in ipairs(links) do
    if link_exists(l) then run({ "ip", "link", "del", l }) end
  end
  local task = require("slipway.task")
  for _ = 1, 50 do
    local left = M.leftovers(tag)
    if #left.netns == 0 and #left.links == 0 then return true end
    task.sleep(0.1)
  end
  local left = M.leftovers(tag)
  fail("could not remove %s", table.concat(left.netns, ", ") .. " " .. table.concat(left.links, ", "))
end

return M
