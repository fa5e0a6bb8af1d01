-- ssh:// engines: one SSH connection per host for the whole process
-- (slipway.docker.ssh), against a private sshd on 127.0.0.1 that forwards
-- to the tests' engine (support.docker_sshd). Every login shows in sshd's
-- log, which is how these tests count connections.
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local task = require("slipway.task")
local leaks = require("support.leaks")
local fx = require("support.docker_fixtures")
local client = require("slipway.docker.client")
local ssh = require("slipway.docker.ssh")

local SLIPWAY = assert(os.getenv("SLIPWAY"), "SLIPWAY is not set (run through tests/run)")

describe("ssh:// engines", function()
  leaks.check()
  local sshd = require("support.docker_sshd")
  local server, remote, log

  local function logins()
    local n = 0
    for _ in (fs.read(log) or ""):gmatch("Accepted publickey") do n = n + 1 end
    return n
  end

  local function new_client()
    return client.new({ host = server.host, ssh_options = server.options, remote_socket = remote })
  end

  -- A Lua table literal of the ssh options, for scripts run as children.
  local function options_literal()
    local parts = {}
    for _, o in ipairs(server.options) do parts[#parts + 1] = ("%q"):format(o) end
    return "{ " .. table.concat(parts, ", ") .. " }"
  end

  setup(function()
    server = sshd.start()
    log = server.dir .. "/sshd.log"
    remote = os.getenv("DOCKER_HOST"):match("^unix://(.+)$")
  end)
  teardown(function()
    client.close_all()
    sshd.stop(server)
  end)

  it("one login carries every call, of every client of that host, from parallel tasks", function()
    local before = logins()
    local a, b = new_client(), new_client()
    local jobs = {}
    for i = 1, 6 do
      jobs[i] = task.spawn(function()
        local c = i % 2 == 0 and a or b
        for _ = 1, 10 do c:call("test", "GET", "/services") end
      end)
    end
    for _, t in ipairs(jobs) do t:join() end
    assert.same(1, ssh.count())
    assert.same(a.conn.socket, b.conn.socket)
    assert.same(before + 1, logins())
    client.close_all()
  end)

  it("close() ends that host's connection; the next call logs in again", function()
    local before = logins()
    local c = new_client()
    c:api_version()
    local sock = c.conn.socket
    c:close()
    assert.same(0, ssh.count())
    assert.same(2, select(3, io.open(sock)))      -- ENOENT: its socket is gone
    c:call("test", "GET", "/_ping", { versioned = false })
    assert.same(before + 2, logins())
    client.close_all()
  end)

  it("ssh dying mid-run: the next call connects again", function()
    local before = logins()
    local c = new_client()
    c:api_version()
    -- the ssh process of the connection (its parent is this process)
    local me = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
    local killed = 0
    for _, name in ipairs(fs.list("/proc")) do
      local stat = name:match("^%d+$") and fs.read("/proc/" .. name .. "/stat") or ""
      local cmdline = (fs.read("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ")
      if stat:match("%) %S (%d+)") == me and cmdline:find(" -L " .. c.conn.socket, 1, true) then
        proc.run({ "kill", "-9", name })
        killed = killed + 1
      end
    end
    assert.same(1, killed)
    task.sleep(0.2)
    assert.same("1.41", c:call("test", "GET", "/version").ApiVersion)
    assert.same(before + 2, logins())
    client.close_all()
  end)

  it("a pipeline keeps one connection across its tasks; the run ends without closing it", function()
    local dir = fx.tmpdir()
    fx.write(dir .. "/deploy.lua", ([[
local function engine()
  return docker.client({ host = %q, ssh_options = %s, remote_socket = %q })
end
task("first", function() assert(engine():api_version() == "1.41") end)
task("second", { needs = "first" }, function()
  for _ = 1, 5 do engine():call("test", "GET", "/services") end
end)
task("third", { needs = "second", matrix = { 1, 2, 3 } }, function()
  engine():call("test", "GET", "/info")
end)
]]):format(server.host, options_literal(), remote))
    local before = logins()
    local started = task.now()
    local r = assert(proc.run({ SLIPWAY, "run", dir .. "/deploy.lua" }, { cwd = dir, timeout = "60s" }))
    assert.same(0, r.code, r.stdout .. r.stderr)
    assert.is_true(task.now() - started < 20000)
    assert.same(before + 1, logins())
    fx.rmtree(dir)
  end)

  it("a script that never closes ends at once, and its ssh with it", function()
    local dir = fx.tmpdir()
    fx.write(dir .. "/script.lua", ([[
local c = require("slipway.docker").client({ host = %q, ssh_options = %s, remote_socket = %q })
print(c:api_version())
]]):format(server.host, options_literal(), remote))
    local r = assert(proc.run({ SLIPWAY, dir .. "/script.lua" }, { timeout = "30s" }))
    assert.same({ 0, "1.41\n", false }, { r.code, r.stdout, r.timed_out or false })
    assert.is_true(r.duration_ms < 10000)
    -- no ssh of that script is left, nor its socket directory
    for _, name in ipairs(fs.list("/proc")) do
      local cmdline = name:match("^%d+$") and (fs.read("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ") or ""
      assert.falsy(cmdline:find("-p " .. server.port, 1, true) and cmdline:find("^ssh ") and cmdline, cmdline)
    end
    fx.rmtree(dir)
  end)
end)
