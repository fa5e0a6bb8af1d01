-- Docker CLI contexts: which engine a client reaches, from an explicit host
-- or context, DOCKER_HOST, DOCKER_CONTEXT and config.json's currentContext,
-- read from a private DOCKER_CONFIG whose contexts the real docker CLI
-- created (`docker context create`, `docker context use`). Every case runs
-- slipway and the CLI with the same environment and checks that both reach
-- the same engine (the tests' engine, over its unix socket or its mutual-
-- TLS tcp:// endpoint), or both fail.
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")
local fx = require("support.docker_fixtures")

local SLIPWAY = assert(os.getenv("SLIPWAY"), "SLIPWAY is not set (run through tests/run)")
local CLI = fx.cli_path

describe("docker contexts", function()
  leaks.check()
  local dir, host, tls_host, certs, node_id, script

  -- The environment of a case: our DOCKER_CONFIG, and only the variables
  -- given (false removes one).
  local function case_env(vars)
    local env = { DOCKER_CONFIG = dir, DOCKER_HOST = false, DOCKER_CONTEXT = false,
                  DOCKER_TLS_VERIFY = false, DOCKER_CERT_PATH = false }
    for k, v in pairs(vars or {}) do env[k] = v end
    return env
  end

  local function cli(args, vars)
    local argv = { CLI }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return assert(proc.run(argv, { env = case_env(vars), timeout = "60s" }))
  end

  -- slipway's answer: { code, host, context, node id } or the error line.
  local function slipway(vars, client_opts)
    local r = assert(proc.run({ SLIPWAY, script, client_opts or "{}" }, { env = case_env(vars), timeout = "60s" }))
    if r.code ~= 0 then return { code = r.code, err = r.stderr } end
    local out = json.decode(r.stdout)
    out.code = 0
    return out
  end

  -- The node id the CLI reaches with these variables (nil when it fails).
  local function cli_node(vars)
    local r = cli({ "info", "--format", "{{.Swarm.NodeID}}" }, vars)
    if r.code ~= 0 then return nil, r.stderr end
    return (r.stdout:gsub("%s+$", ""))
  end

  setup(function()
    host = assert(os.getenv("DOCKER_HOST"))
    tls_host = assert(os.getenv("SLIPWAY_DOCKER_TLS_HOST"), "tests/infra/up exports SLIPWAY_DOCKER_TLS_HOST")
    certs = assert(os.getenv("SLIPWAY_DOCKER_CERT_PATH"))
    dir = fx.tmpdir()
    node_id = require("slipway.docker.client").new():call("t", "GET", "/info").Swarm.NodeID
    script = dir .. "/which_engine.lua"
    fx.write(script, [[
local opts = assert(load("return " .. arg[1]))()
local c = require("slipway.docker").client(opts)
local info = c:call("test", "GET", "/info")
print(require("slipway.json").encode({ host = c.conn.host, context = c.conn.context or "-",
  https = (c.conn.base_url or ""):match("^https:") ~= nil, node = info.Swarm.NodeID }))
]])
    local function create(name, docker)
      local r = cli({ "context", "create", name, "--docker", docker })
      assert(r.code == 0, r.stderr)
    end
    create("sw-unix", "host=" .. host)
    create("sw-tls", ("host=%s,ca=%s/ca.pem,cert=%s/cert.pem,key=%s/key.pem"):format(tls_host, certs, certs, certs))
    create("sw-skip", ("host=%s,cert=%s/cert.pem,key=%s/key.pem,skip-tls-verify=true"):format(tls_host, certs, certs))
    create("sw-noca", ("host=%s,cert=%s/cert.pem,key=%s/key.pem"):format(tls_host, certs, certs))
    create("sw-nowhere", "host=unix:///tmp/slipway-no-engine.sock")
  end)

  teardown(function() fx.rmtree(dir) end)

  local function use(name)
    local r = cli({ "context", "use", name })
    assert(r.code == 0, r.stderr)
  end

  it("reads the contexts the CLI wrote: meta.json under the sha256 of the name, TLS files beside it", function()
    local digest = require("slipway.hash").sha256("sw-tls")
    local meta = json.decode(assert(fs.read(("%s/contexts/meta/%s/meta.json"):format(dir, digest))))
    assert.same(tls_host, meta.Endpoints.docker.Host)
    for _, f in ipairs { "ca", "cert", "key" } do
      assert.truthy(fs.exists(("%s/contexts/tls/%s/docker/%s.pem"):format(dir, digest, f)))
    end
  end)

  it("DOCKER_CONTEXT selects a unix:// context", function()
    local vars = { DOCKER_CONTEXT = "sw-unix" }
    assert.same({ code = 0, host = host, context = "sw-unix", https = false, node = node_id }, slipway(vars))
    assert.same(node_id, cli_node(vars))
  end)

  it("currentContext of config.json selects a tcp:// context with mutual TLS", function()
    use("sw-tls")
    assert.same({ code = 0, host = tls_host, context = "sw-tls", https = true, node = node_id }, slipway())
    assert.same(node_id, cli_node())
    use("default")
  end)

  it("SkipTLSVerify: TLS without checking the engine's certificate; without it and without a CA, the check fails", function()
    local r = slipway({ DOCKER_CONTEXT = "sw-skip" })
    assert.same({ 0, true, node_id }, { r.code, r.https, r.node })
    assert.same(node_id, cli_node({ DOCKER_CONTEXT = "sw-skip" }))
    -- the system's CAs did not sign the sandbox's certificate
    local bad = slipway({ DOCKER_CONTEXT = "sw-noca" })
    assert.same(1, bad.code)
    assert.matches("ECERT", bad.err)
    assert.is_nil((cli_node({ DOCKER_CONTEXT = "sw-noca" })))
  end)

  it("DOCKER_CONTEXT wins over currentContext", function()
    use("sw-nowhere")
    local vars = { DOCKER_CONTEXT = "sw-unix" }
    assert.same({ code = 0, host = host, context = "sw-unix", https = false, node = node_id }, slipway(vars))
    assert.same(node_id, cli_node(vars))
    use("default")
  end)

  it("DOCKER_HOST wins over DOCKER_CONTEXT and currentContext", function()
    use("sw-nowhere")
    local vars = { DOCKER_HOST = host, DOCKER_CONTEXT = "sw-nowhere" }
    assert.same({ code = 0, host = host, context = "-", https = false, node = node_id }, slipway(vars))
    assert.same(node_id, cli_node(vars))
    use("default")
  end)

  it("an explicit context wins over DOCKER_HOST (the CLI's --context)", function()
    local vars = { DOCKER_HOST = "unix:///tmp/slipway-no-engine.sock" }
    assert.same({ code = 0, host = host, context = "sw-unix", https = false, node = node_id },
      slipway(vars, '{ context = "sw-unix" }'))
    local r = cli({ "--context", "sw-unix", "info", "--format", "{{.Swarm.NodeID}}" }, vars)
    assert.same(node_id, (r.stdout:gsub("%s+$", "")))
  end)

  it("the context \"default\" is DOCKER_HOST", function()
    use("sw-nowhere")
    local vars = { DOCKER_HOST = host, DOCKER_CONTEXT = "default" }
    assert.same({ code = 0, host = host, context = "-", https = false, node = node_id }, slipway(vars))
    assert.same(node_id, cli_node(vars))
    use("default")
  end)

  it("an unknown context: an error at the caller's line naming it and where it came from", function()
    local r = slipway({ DOCKER_CONTEXT = "nope" })
    assert.same(1, r.code)
    assert.matches("which_engine.lua:2: docker.client: context \"nope\" %(DOCKER_CONTEXT%): not found %(no "
      .. dir:gsub("%p", "%%%0") .. "/contexts/meta/%x+/meta.json", r.err)
    assert.is_nil((cli_node({ DOCKER_CONTEXT = "nope" })))
    use("sw-unix")
    fs.remove(dir .. "/contexts/meta/" .. require("slipway.hash").sha256("sw-unix"), { recursive = true })
    r = slipway()
    assert.matches("context \"sw%-unix\" %(currentContext in " .. dir:gsub("%p", "%%%0") .. "/config.json%): not found", r.err)
    use("default")
    assert.same(0, cli({ "context", "create", "sw-unix", "--docker", "host=" .. host }).code)
  end)

  it("host and context together are refused, like --host with --context", function()
    local r = slipway({}, '{ host = "unix:///x.sock", context = "sw-unix" }')
    assert.same(1, r.code)
    assert.matches("which_engine.lua:2: docker.client: host and context exclude each other", r.err)
  end)
end)
