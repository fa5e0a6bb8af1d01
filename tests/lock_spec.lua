-- The deploy lock of a pipeline and environment (local store): a second run
-- fails at once naming the holder and the reason, or waits its turn in
-- line with --lock-wait; the lease is renewed by the run's heartbeat and
-- the lock goes at the end whatever the outcome; `slipway lock`
-- status/acquire/release; the store's claims underneath.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")

local function lit(s) return (s:gsub("%p", "%%%0")) end

-- A run that says it started (the file started-<tag>) and holds on until
-- the file go-<tag> exists; it writes its start and end times (task.wall)
-- to times-<tag>.
local PIPELINE = [[
param.string("tag", "a")
task("work", function(p)
  local t0 = task.wall()
  fs.write("started-" .. p.tag, "yes")
  while not fs.exists("go-" .. p.tag) do sleep(0.02) end
  fs.write("times-" .. p.tag, ("%.3f %.3f"):format(t0, task.wall()))
end)
]]

local function times(dir, tag)
  local a, b = assert(fs.read(dir .. "/times-" .. tag)):match("^(%S+) (%S+)$")
  return tonumber(a), tonumber(b)
end

local function lock_cmd(dir, args, env)
  local a = { "lock" }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return H.run(dir, a, { env = env })
end

describe("the deploy lock", function()
  leaks.check()
  after_each(H.cleanup)

  it("a second run of the environment fails at once, naming the holder and the reason", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local first = H.start_run(dir, { "--reason", "release 1.4 (ticket OPS-7)" })
    H.wait_file(dir .. "/started-a", 10000)
    local t0 = task.now()
    local r = H.run(dir, { "run", "-p", "tag=b" })
    assert.is_true(task.now() - t0 < 3000)
    assert.same({ 1, "" }, { r.code, r.stdout })
    local id = json.decode(H.run(dir, { "history", "--json" }).stdout)[1].id
    assert.matches("^slipway: the lock of " .. lit(fs.basename(fs.realpath(dir))) .. "/default is held by %S+ on %S+ "
      .. "%(pid " .. first.pid .. ", run " .. lit(id) .. "%) since [%d%-]+ [%d:]+ UTC: release 1%.4 %(ticket OPS%-7%) "
      .. "%(wait for it with %-%-lock%-wait DURATION%)\n$", r.stderr)
    assert.is_false(fs.exists(dir .. "/started-b"))
    -- another environment has a lock of its own
    local other = H.project { ["deploy.lua"] = 'param.string("environment", "x")\ntask("a", function() end)\n' }
    assert(fs.write(dir .. "/envs.pipeline.lua", 'param.string("environment", "x")\ntask("a", function() end)\n'))
    assert.same(0, H.run(other, { "run", "--env", "production" }).code)
    assert.same(0, H.run(dir, { "run", "envs.pipeline.lua", "--env", "production" }).code)
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, first:wait().code)
    -- free again
    assert(fs.write(dir .. "/go-b", ""))
    assert.same(0, H.run(dir, { "run", "-p", "tag=b" }).code)
  end)

  it("--lock-wait waits for the holder, and waiters go in the order they came", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local a = H.start_run(dir, { "-p", "tag=a" })
    H.wait_file(dir .. "/started-a", 10000)
    local b = H.start_run(dir, { "-p", "tag=b", "--lock-wait", "30s" })
    -- b has taken its place in line before c comes
    local deadline = task.now() + 10000
    while #fs.glob(dir .. "/.slipway/locks/*.q*") < 1 do
      assert(task.now() < deadline, "b never queued")
      task.sleep(0.02)
    end
    local c = H.start_run(dir, { "-p", "tag=c", "--lock-wait", "30s" })
    while #fs.glob(dir .. "/.slipway/locks/*.q*") < 2 do
      assert(task.now() < deadline, "c never queued")
      task.sleep(0.02)
    end
    -- while both wait, a run that does not wait stops
    local r = H.run(dir, { "run", "-p", "tag=d" })
    assert.same(1, r.code)
    -- let them all through: each finishes as soon as it starts
    for _, tag in ipairs({ "b", "c" }) do assert(fs.write(dir .. "/go-" .. tag, "")) end
    task.sleep(0.5)
    assert.is_false(fs.exists(dir .. "/started-b"), "b ran while a held the lock")
    assert(fs.write(dir .. "/go-a", ""))
    local ra, rb, rc = a:wait(), b:wait(), c:wait()
    assert.same({ 0, 0, 0 }, { ra.code, rb.code, rc.code }, rb.stderr .. rc.stderr)
    local _, a_end = times(dir, "a")
    local b_start, b_end = times(dir, "b")
    local c_start = times(dir, "c")
    assert.is_true(a_end <= b_start, "b started before a ended")
    assert.is_true(b_end <= c_start, "c started before b ended")
    assert.matches("slipway: waiting for the lock of [^\n]+: it is held by [^\n]+ %(pid " .. a.pid, rb.stderr)
    assert.same({}, fs.glob(dir .. "/.slipway/locks/*"))
  end)

  it("SIGINT while waiting in line ends the wait at once and gives the place back", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local a = H.start_run(dir)
    H.wait_file(dir .. "/started-a", 10000)
    local b = H.start_run(dir, { "-p", "tag=b", "--lock-wait", "60s" })
    local deadline = task.now() + 10000
    while #fs.glob(dir .. "/.slipway/locks/*.q*") < 1 do
      assert(task.now() < deadline, "b never queued")
      task.sleep(0.02)
    end
    local t0 = task.now()
    b:kill("SIGINT")
    local rb = b:wait()
    assert.is_true(task.now() - t0 < 2000)
    assert.same(130, rb.code)
    assert.matches("slipway: interrupted by SIGINT while waiting for the lock\n$", rb.stderr)
    assert.same({}, fs.glob(dir .. "/.slipway/locks/*.q*"))
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, a:wait().code)
    -- nobody left in line: a run that does not wait goes at once
    assert(fs.write(dir .. "/go-c", ""))
    assert.same(0, H.run(dir, { "run", "-p", "tag=c" }).code)
    assert.is_false(fs.exists(dir .. "/started-b"))
  end)

  it("--lock-wait gives up after its time, leaving no place in line", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local a = H.start_run(dir)
    H.wait_file(dir .. "/started-a", 10000)
    local r = H.run(dir, { "run", "-p", "tag=b", "--lock-wait", "500ms" })
    assert.same(1, r.code)
    assert.matches("slipway: gave up after 500ms: the lock of [^\n]+ is held by [^\n]+\n$", r.stderr)
    assert.same(1, #fs.glob(dir .. "/.slipway/locks/*"))       -- a's lock alone
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, a:wait().code)
  end)

  it("the heartbeat renews the lease while the run runs; the lock goes when it fails or is interrupted", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE .. [[
task("fail", { needs = "work" }, function(p) if p.tag == "f" then error("broken") end end)
]] }
    local env = { SLIPWAY_LOCK_LEASE = "1s" }
    local a = H.start_run(dir, {}, env)
    H.wait_file(dir .. "/started-a", 10000)
    task.sleep(2.5)                         -- more than two leases
    local r = H.run(dir, { "run", "-p", "tag=b" }, { env = env })
    assert.same(1, r.code)
    assert.matches("is held by", r.stderr)
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, a:wait().code)
    -- a failed run releases it
    assert(fs.write(dir .. "/go-f", ""))
    assert.same(1, H.run(dir, { "run", "-p", "tag=f" }, { env = env }).code)
    assert.same({ 0, "the lock of " .. fs.basename(fs.realpath(dir)) .. "/default is free\n" },
      (function() local x = lock_cmd(dir, { "status" }) return { x.code, x.stdout } end)())
    -- and an interrupted one
    local i = H.start_run(dir, { "-p", "tag=i" }, env)
    H.wait_file(dir .. "/started-i", 10000)
    i:kill("SIGINT")
    assert.same(130, i:wait().code)
    assert.matches("is free\n$", lock_cmd(dir, { "status" }).stdout)
  end)

  it("pipeline { lock = false } lets runs overlap", function()
    local dir = H.project { ["deploy.lua"] = "pipeline { lock = false }\n" .. PIPELINE }
    local a = H.start_run(dir)
    H.wait_file(dir .. "/started-a", 10000)
    assert(fs.write(dir .. "/go-b", ""))
    assert.same(0, H.run(dir, { "run", "-p", "tag=b" }).code)
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, a:wait().code)
  end)
end)

describe("slipway lock", function()
  leaks.check()
  after_each(H.cleanup)

  it("acquire holds the lock until release; runs stop naming who and why; status tells", function()
    local dir = H.project { ["deploy.lua"] = 'param.choice("environment", { "staging", "production" }, "staging")\n'
      .. 'task("a", function() end)\n' }
    local name = fs.basename(fs.realpath(dir))
    local env = { USER = "carol" }
    local r = lock_cmd(dir, { "acquire", "--env", "production" }, env)
    assert.same({ 2, "slipway lock acquire: say why with --reason TEXT (it is shown to the runs it stops)\n" },
      { r.code, r.stderr })
    r = lock_cmd(dir, { "acquire", "--env", "production", "--reason", "freeze: audit" }, env)
    assert.same({ 0, ("took the lock of %s/production: freeze: audit (`slipway lock release` frees it)\n"):format(name) },
      { r.code, r.stdout })
    r = H.run(dir, { "run", "--env", "production" })
    assert.same(1, r.code)
    assert.matches("^slipway: the lock of " .. lit(name) .. "/production is held by carol on %S+ since [%d%- :]+ UTC: "
      .. "freeze: audit %(wait", r.stderr)
    assert.same(0, H.run(dir, { "run" }).code)             -- (staging: another lock)
    r = lock_cmd(dir, { "acquire", "--env", "production", "--reason", "again" }, env)
    assert.same(1, r.code)
    assert.matches("^slipway lock acquire: the lock of [^\n]+ is held by carol", r.stderr)
    r = lock_cmd(dir, { "status", "--env", "production" })
    assert.matches("^the lock of " .. lit(name) .. "/production is held by carol on %S+ since [%d%- :]+ UTC: freeze: audit\n"
      .. "  no lease %(taken by hand: `slipway lock release` frees it%)\n$", r.stdout)
    local j = json.decode(lock_cmd(dir, { "status", "--env", "production", "--json" }).stdout)
    assert.same({ name, "production", true, "carol", "freeze: audit", true, 0, {} },
      { j.pipeline, j.environment, j.held, j.holder.user, j.reason, j.manual, j.lease_s, j.waiting })
    -- SLIPWAY_PARAM_ENVIRONMENT names the environment too
    assert.matches("is held by carol", lock_cmd(dir, { "status" }, { SLIPWAY_PARAM_ENVIRONMENT = "production" }).stdout)
    assert.matches("staging is free", lock_cmd(dir, { "status" }).stdout)
    -- someone else cannot release it without --force; its owner can
    r = lock_cmd(dir, { "release", "--env", "production" }, { USER = "dave" })
    assert.same(1, r.code)
    assert.matches("held by carol .*%(%-%-force removes it anyway%)\n$", r.stderr)
    r = lock_cmd(dir, { "release", "--env", "production" }, env)
    assert.same(0, r.code, r.stderr)
    assert.matches("^released the lock of " .. lit(name) .. "/production %(held by carol", r.stdout)
    assert.same(0, H.run(dir, { "run", "--env", "production" }).code)
    r = lock_cmd(dir, { "release", "--env", "production" }, env)
    assert.same({ 0, ("the lock of %s/production is free\n"):format(name) }, { r.code, r.stdout })
  end)

  it("names the CI job that holds the lock", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    local gh = { GITHUB_ACTIONS = "true", GITHUB_ACTOR = "octocat", GITHUB_SERVER_URL = "https://github.example",
                 GITHUB_REPOSITORY = "acme/shop", GITHUB_RUN_ID = "42" }
    assert.same(0, lock_cmd(dir, { "acquire", "--reason", "hotfix window" }, gh).code)
    local r = H.run(dir, { "run" })
    assert.same(1, r.code)
    assert.matches("is held by octocat on %S+ %(https://github%.example/acme/shop/actions/runs/42%) since [^\n]+: "
      .. "hotfix window", r.stderr)
    local j = json.decode(lock_cmd(dir, { "status", "--json" }).stdout)
    assert.same({ "octocat", "https://github.example/acme/shop/actions/runs/42" }, { j.holder.user, j.holder.ci_url })
    assert.same(0, lock_cmd(dir, { "release" }, gh).code)
  end)

  it("release refuses a running run's lock without --force", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local a = H.start_run(dir)
    H.wait_file(dir .. "/started-a", 10000)
    local r = lock_cmd(dir, { "release" })
    assert.same(1, r.code)
    assert.matches("%(pid " .. a.pid .. ", run [^\n]+%-%-force removes it anyway; the run holding it goes on without it%)\n$",
      r.stderr)
    assert.matches("lease of 60s, runs out in %d+s unless renewed", lock_cmd(dir, { "status" }).stdout)
    r = lock_cmd(dir, { "release", "--force" })
    assert.same(0, r.code, r.stderr)
    assert.matches("is free", lock_cmd(dir, { "status" }).stdout)
    assert(fs.write(dir .. "/go-a", ""))
    assert.same(0, a:wait().code)
  end)
end)

describe("the local store's claims", function()
  leaks.check()

  it("create once, renew and drop only the very entry, a drop under way is seen", function()
    local dir = assert(fs.tempdir("slipway-claims-"))
    local store = require("slipway.ledger.files").new(dir)
    local e1 = assert(store:claim("lock-x", "one"))
    assert.same({ nil, "exists" }, { store:claim("lock-x", "two") })
    assert.same("one", store:peek("lock-x").text)
    local renewed = assert(store:renew(e1))
    assert.same("one", renewed.text)
    assert.is_true(store:drop(e1))
    assert.is_nil(store:peek("lock-x"))
    local e2 = assert(store:claim("lock-x", "two"))
    -- the old entry is gone: renewing or dropping it leaves the new one alone
    assert.same({ nil, "gone" }, { store:renew(e1) })
    assert.same({ nil, "gone" }, { store:drop(e1) })
    assert.same("two", store:peek("lock-x").text)
    -- while another process drops it, a drop waits its turn; a marker
    -- left by a process that died is cleared after a while
    assert(fs.write(dir .. "/locks/lock-x.dropping", ""))
    assert.same({ nil, "busy" }, { store:drop(e2) })
    assert.same({ nil, "gone" }, { store:renew(e2) })
    assert(proc.run({ "touch", "-d", "1 minute ago", dir .. "/locks/lock-x.dropping" }))
    assert.same({ nil, "busy" }, { store:drop(e2) })
    assert.is_true(store:drop(e2))
    assert.same({}, store:claims("lock-x"))
    fs.remove(dir, { recursive = true })
  end)

  it("names a lock after its pipeline and environment, one name each", function()
    local lock = require("slipway.ledger.lock")
    assert.same("lock-shop.production", lock.name("shop", "production"))
    assert.same("lock-a_2Eb.c", lock.name("a.b", "c"))
    assert.same("lock-a.b_2Ec", lock.name("a", "b.c"))
    assert.same("lock-my_20app.eu_2Fwest", lock.name("my app", "eu/west"))
    local long = lock.name(("x"):rep(40), "production")
    assert.matches("^lock%-%x+$", long)
    assert.same(21, #long)
  end)

  it("a free lock with runs waiting in line is not for a run that does not wait; an expired place is cleared", function()
    local dir = assert(fs.tempdir("slipway-claims-"))
    local store = require("slipway.ledger.files").new(dir)
    local lock = require("slipway.ledger.lock")
    local name = lock.name("shop", "production")
    local text = json.encode { holder = { user = "erin", host = "ci-7" }, lease_s = 60, since = "2026-01-01T00:00:00Z" }
    assert(store:claim(name .. ".q0000000001", text))
    local held, err = lock.acquire(store, { pipeline = "shop", environment = "production", reason = "r" })
    assert.same({ nil, "the lock of shop/production is free, but 1 run is waiting for it in line (wait for it with "
      .. "--lock-wait DURATION)" }, { held, err })
    -- the waiter died: once its place's lease ran out, the place goes
    assert(proc.run({ "touch", "-d", "2 minutes ago", dir .. "/locks/" .. name .. ".q0000000001" }))
    held = assert(lock.acquire(store, { pipeline = "shop", environment = "production", reason = "r", run_id = "R1" }))
    local names = {}
    for _, e in ipairs(store:claims("lock-")) do names[#names + 1] = e.name end
    assert.same({ name }, names)
    assert.is_true(held:release())
    fs.remove(dir, { recursive = true })
  end)
end)
