-- `slipway sandbox` against the running shared infra (tests/run starts it
-- with tests/infra/up, itself `slipway sandbox up`, for specs named
-- *docker*): status and env output describe the engine the other docker
-- specs use, up is idempotent and registers users, down leaves the sandbox
-- running while another user lives; and the command's error paths. Never
-- stops the shared infra.
local proc = require("slipway.proc")
local json = require("slipway.json")
local fs = require("slipway.fs")
local leaks = require("support.leaks")

local SLIPWAY = assert(os.getenv("SLIPWAY"), "SLIPWAY is not set (run through tests/run)")

local function sandbox(args, opts)
  local argv = { SLIPWAY, "sandbox" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.timeout = opts.timeout or "90s"
  return assert(proc.run(argv, opts))
end

local function read_pid(path)
  return tonumber((assert(fs.read(path))):match("^%s*(%d+)"))
end

describe("slipway sandbox", function()
  leaks.check()
  local dir, host, registry

  setup(function()
    host = assert(os.getenv("DOCKER_HOST"), "DOCKER_HOST is not set (tests/run sources tests/infra/env)")
    registry = assert(os.getenv("SLIPWAY_REGISTRY"))
    dir = assert(os.getenv("SLIPWAY_INFRA_DIR"))
  end)

  describe("status", function()
    it("shows the running engine, registry and swarm, exit 0", function()
      local r = sandbox { "status", "--dir", dir }
      assert.same({ 0, "" }, { r.code, r.stderr })
      local dpid, rpid = read_pid(dir .. "/dockerd.pid"), read_pid(dir .. "/registry.pid")
      assert.truthy(r.stdout:find(("sandbox %s: up\n"):format(dir), 1, true), r.stdout)
      assert.truthy(r.stdout:find(("\n  engine    up    %s (dockerd "):format(host), 1, true), r.stdout)
      assert.truthy(r.stdout:find((", pid %d)\n"):format(dpid), 1, true), r.stdout)
      assert.truthy(r.stdout:find(("\n  registry  up    %s (pid %d)\n"):format(registry, rpid), 1, true), r.stdout)
      assert.truthy(r.stdout:match("\n  swarm     up    node %w+, manager\n"), r.stdout)
    end)

    it("--json: every part up, with the pids, ports and env a user needs", function()
      local r = sandbox { "status", "--dir", dir, "--json" }
      assert.same(0, r.code)
      local s = json.decode(r.stdout)
      assert.same({ true, true, true, "active", true },
        { s.ok, s.engine.up, s.registry.up, s.swarm.state, s.swarm.manager })
      assert.same(read_pid(dir .. "/dockerd.pid"), s.engine.pid)
      assert.same(read_pid(dir .. "/registry.pid"), s.registry.pid)
      assert.same("1.41", s.engine.api)
      assert.same(host, s.env.DOCKER_HOST)
      assert.same(registry, s.env.SLIPWAY_REGISTRY)
      assert.same(os.getenv("SLIPWAY_DOCKER_TLS_HOST"), s.env.SLIPWAY_DOCKER_TLS_HOST)
      assert.same(tonumber(registry:match(":(%d+)$")), s.registry.port)
      -- the engine's own /info agrees on the swarm node
      local info = assert(proc.run({ "/usr/local/bin/docker", "info", "--format", "{{.Swarm.NodeID}}" },
        { timeout = "30s" }))
      assert.same(info.stdout:gsub("%s+$", ""), s.swarm.node_id)
    end)

    it("--env: export lines that a shell evaluates to the running infra", function()
      local r = sandbox { "status", "--dir", dir, "--env" }
      assert.same(0, r.code)
      assert.truthy(r.stdout:find("export DOCKER_HOST=" .. host .. "\n", 1, true), r.stdout)
      local sh = assert(proc.run({ "sh", "-c", r.stdout .. '\nprintf "%s|%s|%s" "$DOCKER_HOST" "$SLIPWAY_REGISTRY" "$SLIPWAY_DOCKER_CERT_PATH"' },
        { env = { DOCKER_HOST = false, SLIPWAY_REGISTRY = false, SLIPWAY_DOCKER_CERT_PATH = false } }))
      assert.same(("%s|%s|%s"):format(host, registry, os.getenv("SLIPWAY_DOCKER_CERT_PATH") or ""), sh.stdout)
    end)

    it("a directory without a sandbox: everything down, exit 1", function()
      local r = sandbox { "status", "--dir", "/tmp/slipway-sandbox-spec-none", "--json" }
      assert.same(1, r.code)
      local s = json.decode(r.stdout)
      assert.same({ false, false, false, "unknown" }, { s.ok, s.engine.up, s.registry.up, s.swarm.state })
    end)
  end)

  describe("up and down on the running infra", function()
    it("up is idempotent (same daemons), registers the user; down keeps it for the other users", function()
      local dpid, rpid = read_pid(dir .. "/dockerd.pid"), read_pid(dir .. "/registry.pid")
      -- a user of our own, alive for the test
      local user = assert(proc.spawn({ "sleep", "60" }))
      local up = sandbox { "up", "--dir", dir, "--user", tostring(user.pid), "--json" }
      assert.same({ 0, "" }, { up.code, up.stderr })
      local s = json.decode(up.stdout)
      assert.same({ true, dpid, rpid, { dockerd = false, registry = false, swarm = false } },
        { s.ok, s.dockerd_pid, s.registry_pid, s.started })
      assert.same(host, s.env.DOCKER_HOST)
      assert.truthy(fs.exists(dir .. "/users/" .. user.pid))
      -- the run that started the infra is a user too: down only unregisters us
      local down = sandbox { "down", "--dir", dir, "--user", tostring(user.pid), "--json" }
      assert.same(0, down.code)
      local d = json.decode(down.stdout)
      assert.same(false, d.stopped)
      assert.truthy(#d.users >= 1)
      assert.falsy(fs.exists(dir .. "/users/" .. user.pid))
      assert.same(0, sandbox({ "status", "--dir", dir }).code)
      assert.same(dpid, read_pid(dir .. "/dockerd.pid"))
      user:kill("SIGKILL")
      user:wait()
    end)

    it("up with other ports than the running sandbox's is refused, nothing restarted", function()
      local dpid = read_pid(dir .. "/dockerd.pid")
      local port = tonumber(registry:match(":(%d+)$"))
      local r = sandbox { "up", "--dir", dir, "--registry-port", tostring(port + 1) }
      assert.same(1, r.code)
      assert.same(("slipway sandbox up: the sandbox in %s runs with --registry-port %d, not %d: `slipway sandbox down --dir %s` first, or use another --dir\n")
        :format(dir, port, port + 1, dir), r.stderr)
      assert.same(dpid, read_pid(dir .. "/dockerd.pid"))
    end)

    it("a registry port already served: a clear error, and what up started is stopped again", function()
      local dir2 = "/tmp/slipway-sandbox-spec-taken"
      local port = registry:match(":(%d+)$")
      local r = sandbox { "up", "--dir", dir2, "--registry-port", port, "--swarm-port", "2399" }
      assert.same(1, r.code)
      assert.same(("slipway sandbox up: 127.0.0.1:%s already serves a registry that is not this sandbox's (another sandbox?): use --registry-port\n")
        :format(port), r.stderr:match("[^\n]*\n$"))
      -- no daemon of that directory is left running
      local left = {}
      for _, name in ipairs(fs.list("/proc")) do
        local cmdline = name:match("^%d+$") and fs.read("/proc/" .. name .. "/cmdline") or ""
        local state = (fs.read("/proc/" .. name .. "/stat") or ""):match("%) (%S)")
        if cmdline:find(dir2 .. "/", 1, true) and not cmdline:find("flock", 1, true) and state ~= "Z" then
          left[#left + 1] = cmdline:gsub("%z", " ")
        end
      end
      assert.same({}, left)
      assert.same(0, sandbox({ "down", "--dir", dir2, "--force" }).code)
      assert(fs.remove(dir2, { recursive = true }))
    end)

    it("down of a directory without a sandbox does nothing, exit 0", function()
      local r = sandbox { "down", "--dir", "/tmp/slipway-sandbox-spec-none" }
      assert.same({ 0, "sandbox: nothing to stop: /tmp/slipway-sandbox-spec-none does not exist\n" },
        { r.code, r.stderr })
    end)
  end)

  describe("errors", function()
    local usage_case = require("support.nodes_sandbox").usage_case

    it("no subcommand, a bad one: exit 2 with the usage", function()
      usage_case({}, "missing subcommand (up, down or status)")
      usage_case({ "start" }, "unknown subcommand 'start' (expected up, down or status)")
    end)

    it("an unknown flag, a bad value: exit 2", function()
      usage_case({ "status", "--force" }, "status: unknown option '--force' (valid: --dir, --env, --json)")
      usage_case({ "up", "--registry-port", "http" }, "--registry-port: expected a port number (1-65535), got 'http'")
      usage_case({ "up", "--tls-port", "70000" }, "--tls-port: expected a port number (0-65535), got '70000'")
      usage_case({ "down", "--user", "me" }, "--user: expected a process id, got 'me'")
      usage_case({ "status", "--env", "--json" }, "--env and --json exclude each other")
      usage_case({ "status", "--dir" }, "--dir needs a value")
      usage_case({ "status", "extra" }, "status: unexpected argument 'extra'")
    end)

    it("--help prints the usage, exit 0", function()
      local r = sandbox { "--help" }
      assert.same(0, r.code)
      assert.same("usage: slipway sandbox up [--dir D]", r.stdout:sub(1, 35))
    end)

    it("not root: a clear error, nothing started", function()
      local r = assert(proc.run({ "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        SLIPWAY, "sandbox", "up", "--dir", "/tmp/slipway-sandbox-spec-nonroot" }, { timeout = "30s" }))
      assert.same({ 1, "slipway sandbox up: needs root (dockerd runs as root): run it with sudo\n" },
        { r.code, r.stderr })
      assert.falsy(fs.exists("/tmp/slipway-sandbox-spec-nonroot"))
    end)

    it("dockerd missing: says to install docker.io", function()
      local r = sandbox({ "up", "--dir", "/tmp/slipway-sandbox-spec-nodockerd" },
        { env = { PATH = "/usr/bin:/bin" } })
      assert.same({ 1, "slipway sandbox up: dockerd not found: install docker.io (make deps, or apt-get install docker.io)\n" },
        { r.code, r.stderr })
      assert.falsy(fs.exists("/tmp/slipway-sandbox-spec-nodockerd"))
    end)
  end)
end)
