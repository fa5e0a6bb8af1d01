-- Registry credentials as the CLI finds them: credsStore and credHelpers
-- (docker-credential-<name> get, the server URL on stdin), else "auths".
-- Against a registry of the spec's own with htpasswd authentication on
-- 127.0.0.1 (next to the tests' shared one, which stays as it is), with
-- the fake helper tests/fakes/docker-credential-test; the real docker CLI
-- pushes with the same configuration and asks the helper the same
-- question. Each case runs slipway as a child with its own DOCKER_CONFIG
-- and PATH. No credential may reach output, events or the run record.
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local json = require("slipway.json")
local base64 = require("slipway.base64")
local task = require("slipway.task")
local leaks = require("support.leaks")
local repo = require("support.repo")
local fx = require("support.docker_fixtures")

local SLIPWAY = assert(os.getenv("SLIPWAY"), "SLIPWAY is not set (run through tests/run)")
local FAKES = repo.ROOT .. "/tests/fakes"
local USER, PASSWORD = "slipway-test", "correct-horse-battery"
-- bcrypt of PASSWORD (the registry's htpasswd takes bcrypt only)
local HTPASSWD = USER .. ":$2b$04$PsKWD4D7crAU2YOZMQzRkugxx6fIJIb7SfwEzgHB.11wq/JLrNGoe\n"

describe("registry credentials", function()
  leaks.check()
  local dir, registry, registry_pid, image, config_dir, store

  local function write_config(cfg)
    fx.write(config_dir .. "/config.json", json.encode(cfg))
  end

  local function store_entry(server, user, secret)
    local r = assert(proc.run({ FAKES .. "/docker-credential-test", "store" }, {
      stdin = json.encode({ ServerURL = server, Username = user, Secret = secret }),
      env = { DOCKER_CREDENTIAL_TEST_DIR = store } }))
    assert(r.code == 0, r.stdout)
    fs.remove(store .. "/calls.log")
  end

  local function calls()
    local list = {}
    for l in (fs.read(store .. "/calls.log") or ""):gmatch("[^\n]+") do list[#list + 1] = l end
    fs.remove(store .. "/calls.log")
    return list
  end

  local function env(extra)
    local e = { DOCKER_CONFIG = config_dir, DOCKER_CREDENTIAL_TEST_DIR = store,
                PATH = FAKES .. ":" .. os.getenv("PATH") }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  -- slipway -e code, in the case's environment
  local function slipway(code, extra)
    return assert(proc.run({ SLIPWAY, "-e", code }, { env = env(extra), timeout = "120s" }))
  end

  setup(function()
    dir = fx.tmpdir()
    config_dir, store = dir .. "/docker", dir .. "/store"
    fs.mkdir(config_dir)
    fs.mkdir(store)
    local port = 21000 + math.random(0, 7999)
    registry = "127.0.0.1:" .. port
    fx.write(dir .. "/htpasswd", HTPASSWD)
    fx.write(dir .. "/registry.yml", table.concat({
      "version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
      "    rootdirectory: " .. dir .. "/data",
      "http:", "  addr: " .. registry,
      "auth:", "  htpasswd:", "    realm: slipway-test", "    path: " .. dir .. "/htpasswd", "" }, "\n"))
    local r = assert(proc.run({ "sh", "-c", 'docker-registry serve "$1" >"$2" 2>&1 & echo $!', "sh",
      dir .. "/registry.yml", dir .. "/registry.log" }))
    registry_pid = tonumber(r.stdout:match("%d+"))
    local up = false
    for _ = 1, 100 do
      local res = require("slipway.http").request { url = "http://" .. registry .. "/v2/", timeout = "2s" }
      if res and res.status == 401 then up = true break end
      task.sleep(0.05)
    end
    assert(up, "the registry with auth did not start: " .. tostring(fs.read(dir .. "/registry.log")))
    image = registry .. "/slipway-cred:" .. fx.unique("t")
    fx.app_image(image, { VERSION = "cred" })
  end)

  teardown(function()
    if registry_pid then proc.run({ "kill", tostring(registry_pid) }) end
    pcall(require("slipway.docker").rm_image, image, { force = true, missing_ok = true })
    fx.rmtree(dir)
  end)

  before_each(function()
    for _, f in ipairs(fs.list(store) or {}) do fs.remove(store .. "/" .. f) end
  end)

  it("credsStore: the helper is asked for the registry's host:port, the push is authorised; the CLI asks the same", function()
    write_config({ credsStore = "test" })
    store_entry(registry, USER, PASSWORD)
    local r = slipway(("print((require('slipway.docker').push(%q, { quiet = true })))"):format(image))
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.matches("^sha256:%x+\n$", r.stdout)
    assert.same({ "get " .. registry }, calls())
    local cli = assert(proc.run({ fx.cli_path, "push", "-q", image }, { env = env(), timeout = "120s" }))
    assert.same(0, cli.code, cli.stderr)
    assert.same({ "get " .. registry }, calls())
  end)

  it("credHelpers for the registry win over credsStore", function()
    write_config({ credsStore = "absent", credHelpers = { [registry] = "test" } })
    store_entry(registry, USER, PASSWORD)
    local r = slipway(("print(require('slipway.docker').push(%q, { quiet = true }))"):format(image))
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.same({ "get " .. registry }, calls())
  end)

  it("no credentials: the registry refuses the push, and the error says so", function()
    write_config({ credsStore = "test" })      -- the helper has none: "not found"
    local r = slipway(("require('slipway.docker').push(%q, { quiet = true })"):format(image))
    assert.same(1, r.code)
    assert.matches("docker.push: " .. image:gsub("%p", "%%%0") .. ": .*no basic auth credentials", r.stderr)
    assert.same({ "get " .. registry }, calls())
    -- and the wrong password is refused as well
    store_entry(registry, USER, "not-the-password")
    r = slipway(("require('slipway.docker').push(%q, { quiet = true })"):format(image))
    assert.same(1, r.code)
    assert.matches("unauthorized", r.stderr)
  end)

  it("a helper that cannot run: a warning naming it and where it is configured, no credentials", function()
    write_config({ credsStore = "nosuch" })
    local r = slipway(("require('slipway.docker').push(%q, { quiet = true })"):format(image))
    assert.same(1, r.code)
    assert.truthy(r.stderr:find(("warning: docker: credential helper nosuch (credsStore in %s/config.json): "
      .. "docker-credential-nosuch is not installed (not found on PATH); no credentials for %s\n")
      :format(config_dir, registry), 1, true), r.stderr)
  end)

  it("Docker Hub is asked for as https://index.docker.io/v1/; \"<token>\" makes an identity token; secrets print as ***", function()
    write_config({ credsStore = "test", credHelpers = { ["ghcr.io"] = "test" } })
    store_entry("https://index.docker.io/v1/", "hubuser", PASSWORD)
    store_entry("ghcr.io", "<token>", "a-long-identity-token")
    local r = slipway([[
      local client = require("slipway.docker.client")
      local secret = require("slipway.secret")
      local hub = client.config_auth("docker.io")
      local gh = client.config_auth("ghcr.io")
      print(hub.username, tostring(hub.password), secret.is_secret(hub.password), hub.serveraddress)
      print(gh.username, tostring(gh.identitytoken), secret.reveal(gh.identitytoken) == "a-long-identity-token")
      local header = client.auth_header("alpine:3")
      local doc = require("slipway.json").decode(require("slipway.base64").decode((header:gsub("-", "+"):gsub("_", "/"))))
      print(doc.username, doc.serveraddress, doc.password == "]] .. PASSWORD .. [[")
    ]])
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.same("hubuser\t***\ttrue\thttps://index.docker.io/v1/\nnil\t***\ttrue\nhubuser\thttps://index.docker.io/v1/\ttrue\n",
      r.stdout)
    assert.same({ "get https://index.docker.io/v1/", "get ghcr.io", "get https://index.docker.io/v1/" }, calls())
  end)

  it("a build gets every credential the store lists (X-Registry-Config)", function()
    write_config({ credsStore = "test", auths = { ["other.example"] = { auth = base64.encode("x:not-used-with-a-store") } } })
    store_entry(registry, USER, PASSWORD)
    local r = slipway([[
      local h = require("slipway.docker.client").build_auth_header()
      local doc = require("slipway.json").decode(require("slipway.base64").decode((h:gsub("-", "+"):gsub("_", "/"))))
      local keys = {}
      for k, v in pairs(doc) do keys[#keys + 1] = k .. "=" .. v.username end
      print(table.concat(keys, ","))
    ]])
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.same(registry .. "=" .. USER .. "\n", r.stdout)
    assert.same({ "list", "get " .. registry }, calls())
  end)

  it("a pipeline that pushes and deploys with auth = true: the swarm pulls; no credential in output, events or record", function()
    write_config({ credsStore = "test" })
    store_entry(registry, USER, PASSWORD)
    local project = dir .. "/project"
    fs.mkdir(project)
    local stack = fx.unique("cred")
    fx.write(project .. "/stack.yml", ("services:\n  web:\n    image: %s\n    deploy: { replicas: 1 }\n"):format(image))
    fx.write(project .. "/deploy.lua", ([[
task("push", function()
  docker.push(%q)
end)
task("deploy", { needs = "push" }, function()
  docker.stack.deploy(%q, compose.load("stack.yml"), { auth = true, timeout = "2m" })
end)
]]):format(image, stack))
    local r = assert(proc.run({ SLIPWAY, "run", "--json", project .. "/deploy.lua" },
      { env = env(), timeout = "180s", cwd = project }))
    pcall(require("slipway.docker").stack.rm, stack)
    assert.same(0, r.code, r.stderr)
    assert.truthy(r.stdout:find('"change_recorded"', 1, true))
    local basic = base64.encode(USER .. ":" .. PASSWORD)
    local header = base64.encode(json.encode({ username = USER, password = PASSWORD }))
    local texts = { stdout = r.stdout, stderr = r.stderr }
    local records = 0
    for _, run_dir in ipairs(fs.list(project .. "/.slipway/runs") or {}) do
      for _, f in ipairs(fs.list(project .. "/.slipway/runs/" .. run_dir) or {}) do
        texts[run_dir .. "/" .. f] = fs.read(project .. "/.slipway/runs/" .. run_dir .. "/" .. f) or ""
        records = records + 1
      end
    end
    assert.is_true(records > 0)
    for name, text in pairs(texts) do
      assert.falsy(text:find(PASSWORD, 1, true), name .. " shows the password")
      assert.falsy(text:find(basic, 1, true), name .. " shows user:password in base64")
      assert.falsy(text:find(header:sub(1, 40), 1, true), name .. " shows the auth header")
    end
  end)
end)
