-- `slipway init` on three sample repositories (tests/fixtures/init/): the
-- deploy.lua it writes plans at once and names the steps each repository
-- calls for; .luarc.json points at the editor stubs; an existing
-- deploy.lua is kept unless --force.
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local json = require("slipway.json")
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

local FIXTURES = repo.ROOT .. "/tests/fixtures/init"

-- A copy of a sample repository in a fresh directory.
local function sample(name)
  local dir = H.project {}
  local r = assert(proc.run({ "cp", "-R", FIXTURES .. "/" .. name .. "/.", dir }))
  assert.same(0, r.code, r.stderr)
  return dir
end

-- `slipway plan --json` of dir/deploy.lua -> the decoded plan.
local function plan(dir, args)
  local argv = { "plan", "--json" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = H.run(dir, argv)
  assert.same(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

local function task_names(p)
  local names = {}
  for i, t in ipairs(p.tasks) do names[i] = t.name end
  return names
end

local function task_of(p, name)
  for _, t in ipairs(p.tasks) do
    if t.name == name then return t end
  end
end

local function init(dir, args)
  local argv = { "init" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.run(dir, argv)
end

describe("slipway init", function()
  leaks.check()
  after_each(H.cleanup)

  it("compose only: a stack deploy of the compose file", function()
    local dir = sample("compose-only")
    local r = init(dir, { "--stack", "shop" })
    assert.same(0, r.code, r.stderr)
    assert.matches("wrote ./deploy.lua", r.stdout, 1, true)
    local p = plan(dir)
    assert.same({ "deploy" }, task_names(p))
    local text = fs.read(dir .. "/deploy.lua")
    assert.matches('compose.load("docker-compose.yml"', text, 1, true)
    assert.matches('docker.stack.deploy("shop", stack', text, 1, true)
    assert.matches("-- The stack: docker-compose.yml (cache, web).", text, 1, true)
    assert.same({ environment = "production" }, p.params)
  end)

  it("Dockerfiles and a frontend: a quality gate, a build matrix, a Vercel step", function()
    local dir = sample("docker-frontend")
    assert.same(0, init(dir).code)
    local p = plan(dir)
    assert.same({ "quality-gate", "build", "frontend" }, task_names(p))
    assert.same({ "api", "worker" }, task_of(p, "build").items)
    assert.same({ "quality-gate" }, task_of(p, "build").needs)
    assert.same({ "build" }, task_of(p, "frontend").needs)
    local text = fs.read(dir .. "/deploy.lua")
    assert.matches('sh "make test"', text, 1, true)
    assert.matches('vercel.deploy { dir = "web"', text, 1, true)
    assert.matches('secret("VERCEL_TOKEN")', text, 1, true)
    -- the frontend step follows its parameter
    local off = plan(dir, { "-p", "deploy_frontend=false" })
    assert.is_false(task_of(off, "frontend").run)
  end)

  it("Pulumi and compose: infrastructure and images before the stack", function()
    local dir = sample("pulumi-compose")
    assert.same(0, init(dir).code)
    local p = plan(dir, { "--env", "staging" })
    assert.same({ "quality-gate", "build", "infrastructure", "deploy" }, task_names(p))
    assert.same({ "build", "infrastructure" }, task_of(p, "deploy").needs)
    assert.same({ "backend" }, task_of(p, "build").items)        -- named after its compose service
    local text = fs.read(dir .. "/deploy.lua")
    assert.matches('pulumi.up { cwd = "infrastructure/pulumi", stack = p.environment }', text, 1, true)
    assert.matches('compose.load("docker-compose.unified.yml"', text, 1, true)
    assert.matches("IMAGE_TAG = image_tag(),", text, 1, true)
    assert.matches("DOCKER_REGISTRY = p.registry,", text, 1, true)
    assert.matches('sh "python3 -m pytest -q"', text, 1, true)
    assert.matches('sh "ruff check ."', text, 1, true)
  end)

  it("writes a deploy.lua that luacheck finds clean", function()
    for _, name in ipairs { "compose-only", "docker-frontend", "pulumi-compose" } do
      local dir = sample(name)
      assert.same(0, init(dir).code)
      local r = assert(proc.run({ "luacheck", "--config", repo.ROOT .. "/.luacheckrc", "--std", "lua54+slipway",
        "--formatter", "plain", dir .. "/deploy.lua" }))
      assert.same({ name, 0, "" }, { name, r.code, r.stdout })
    end
  end)

  it("writes .luarc.json pointing at the editor stubs `slipway version --meta` names", function()
    local dir = sample("compose-only")
    assert.same(0, init(dir).code)
    local rc = json.decode(fs.read(dir .. "/.luarc.json"))
    local meta = H.run(dir, { "version", "--meta" })
    assert.same(0, meta.code, meta.stderr)
    assert.same({ (meta.stdout:gsub("\n$", "")) }, rc["workspace.library"])
    assert.is_true(fs.exists(rc["workspace.library"][1] .. "/globals.lua"))
    assert.same("Lua 5.4", rc["runtime.version"])
  end)

  it("keeps an existing deploy.lua unless --force", function()
    local dir = sample("compose-only")
    assert(fs.write(dir .. "/deploy.lua", "-- mine\n"))
    assert(fs.write(dir .. "/.luarc.json", "{}\n"))
    local r = init(dir)
    assert.same({ 1, "slipway init: ./deploy.lua exists: not overwriting it (--force does)\n" }, { r.code, r.stderr })
    assert.same("-- mine\n", fs.read(dir .. "/deploy.lua"))
    r = init(dir, { "--force" })
    assert.same(0, r.code, r.stderr)
    assert.matches("docker.stack.deploy", fs.read(dir .. "/deploy.lua"), 1, true)
    assert.are_not.same("{}\n", fs.read(dir .. "/.luarc.json"))
  end)

  it("an empty repository still gets a pipeline that plans; bad usage is exit 2", function()
    local dir = H.project {}
    assert.same(0, init(dir).code)
    assert.same({ "hello" }, task_names(plan(dir)))
    local r = init(dir, { "--forse" })
    assert.same(2, r.code)
    assert.matches("did you mean '--force'", r.stderr, 1, true)
    r = init(dir, { "nowhere" })
    assert.same({ 2, "slipway init: nowhere is not a directory\n" }, { r.code, r.stderr })
  end)
end)
