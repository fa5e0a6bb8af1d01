-- The ledger with its local store (.slipway/ next to the pipeline): a run
-- is a release written when it starts and as it goes; a run killed with
-- -9 reads "interrupted" and the next run says so; a disk that cannot take
-- the release stops the run before anything runs; history and show; the
-- pipeline{...} declaration and the `verifies` task option.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")

-- s as a Lua pattern that matches it literally.
local function lit(s) return (s:gsub("%p", "%%%0")) end

-- A task that says it started (the file `started`) and waits for the file
-- `go`.
local WAITING = [[
task("work", function()
  fs.write("started", "yes")
  while not fs.exists("go") do sleep(0.02) end
  return "done"
end)
]]

local function history(dir, args, env)
  local a = { "history", "--json" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local r = H.run(dir, a, { env = env })
  assert.same(0, r.code, r.stderr)
  return json.decode(r.stdout), r
end

local function show(dir, id, env)
  local r = H.run(dir, { "show", id, "--json" }, { env = env })
  assert.same(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

-- Mount a tmpfs (opts: "size=64k", "ro,size=64k") on dir; false when this
-- machine does not let us (not root).
local function mount_tmpfs(dir, opts)
  assert(fs.mkdir(dir))
  local r = proc.run({ "mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir })
  return r ~= nil and r.code == 0
end

local function umount(dir)
  proc.run({ "umount", dir })
end

describe("the ledger", function()
  leaks.check()
  after_each(H.cleanup)

  it("writes a release when the run starts: it reads running while the run runs, then its final status", function()
    local dir = H.project { ["deploy.lua"] = WAITING }
    local p = H.start_run(dir)
    H.wait_file(dir .. "/started", 10000)
    local rows = history(dir)
    assert.same(1, #rows)
    assert.same({ "running", false }, { rows[1].status, rows[1].verified })
    local rec = show(dir, rows[1].id)
    assert.same({ "running", "running", rows[1].id }, { rec.status, rec.effective_status, rec.id })
    -- its history so far: the started line, fsync'd before the task ran
    local events = assert(fs.read(dir .. "/.slipway/runs/" .. rows[1].id .. "/events.ndjson"))
    assert.same("started", json.decode(events:match("^[^\n]+")).event)
    assert(fs.write(dir .. "/go", ""))
    assert.same(0, p:wait().code)
    rows = history(dir)
    assert.same({ "success", true, 0 }, { rows[1].status, rows[1].verified, rows[1].exit_code })
    local lines = {}
    for l in fs.read(dir .. "/.slipway/runs/" .. rows[1].id .. "/events.ndjson"):gmatch("[^\n]+") do
      local ev = json.decode(l)
      lines[#lines + 1] = ev.event .. (ev.task and (" " .. ev.task .. " " .. ev.status) or "")
        .. (ev.event == "finished" and (" " .. ev.status) or "")
    end
    assert.same({ "started", "task_finished work ok", "finished success" }, lines)
    assert.is_false(fs.exists(dir .. "/.slipway/runs/" .. rows[1].id .. "/reserve"))
  end)

  it("a run killed with -9 reads interrupted; the next run says so and takes the lock over once its lease ran out", function()
    local dir = H.project { ["deploy.lua"] = WAITING }
    local env = { SLIPWAY_LOCK_LEASE = "2s" }
    local p = H.start_run(dir, { "--reason", "deploying v1" }, env)
    H.wait_file(dir .. "/started", 10000)
    task.sleep(0.5)                                  -- (the release is rewritten with its running task)
    local first = history(dir, nil, env)[1].id
    p:kill("SIGKILL")
    p:wait()
    local rows = history(dir, nil, env)
    assert.same({ first, "interrupted" }, { rows[1].id, rows[1].status })
    assert.matches("its process %(pid %d+ on .+%) is gone", rows[1].interrupted)
    -- the lock is still held until its lease runs out: the next run stops, naming it
    assert(fs.write(dir .. "/go", ""))
    local r = H.run(dir, { "run" }, { env = env })
    assert.same(1, r.code)
    assert.matches("^slipway: the lock of .+/default is held by %S+ on %S+ %(pid %d+, run " .. first:gsub("%p", "%%%0")
      .. "%) since [%d%- :]+ UTC: deploying v1 %(wait for it with %-%-lock%-wait DURATION%)\n$", r.stderr)
    assert.same(1, #history(dir, nil, env))           -- (it left no release)
    task.sleep(2.5)
    r = H.run(dir, { "run" }, { env = env })
    assert.same(0, r.code, r.stderr)
    assert.matches("warning: took over the lock of [^\n]+: its lease ran out %(held by [^\n]+run "
      .. first:gsub("%p", "%%%0") .. "%)[^\n]*: deploying v1%)", r.stdout)
    assert.matches("warning: run " .. first:gsub("%p", "%%%0") .. " %(started [^\n]+%) was interrupted: its process "
      .. "%(pid %d+ on [^\n]+%) is gone; its release is now marked interrupted", r.stdout)
    rows = history(dir, nil, env)
    assert.same({ "success", "interrupted" }, { rows[1].status, rows[2].status })
    local rec = show(dir, first, env)
    assert.same({ "interrupted", rows[1].id, "work", "interrupted" },
      { rec.status, rec.interrupted.detected_by, rec.tasks[1].name, rec.tasks[1].status })
    assert.is_false(fs.exists(dir .. "/.slipway/runs/" .. first .. "/reserve"))
  end)

  it("a full disk (a 64 KiB tmpfs) stops the run before anything runs, without a half-written release", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() io.open("ran", "w"):close() end)\n' }
    if not mount_tmpfs(dir .. "/.slipway", "size=64k") then
      pending("mounting a tmpfs needs root")
      return
    end
    local r = H.run(dir, { "run" })
    umount(dir .. "/.slipway")
    assert.same(1, r.code)
    assert.same("", r.stdout)
    assert.matches("^slipway: cannot write the release to " .. fs.realpath(dir):gsub("%p", "%%%0")
      .. "/%.slipway %(nothing ran%): ENOSPC: no space left on device: [^\n]+\n$", r.stderr)
    assert.is_false(fs.exists(dir .. "/ran"))
  end)

  it("the tmpfs again, seen through history: no release, and the lock was released", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    if not mount_tmpfs(dir .. "/.slipway", "size=64k") then
      pending("mounting a tmpfs needs root")
      return
    end
    local r = H.run(dir, { "run" })
    local listed = H.run(dir, { "history" })
    local locked = H.run(dir, { "lock", "status" })
    local runs = fs.list(dir .. "/.slipway/runs")
    umount(dir .. "/.slipway")
    assert.same(1, r.code)
    assert.same({}, runs)
    assert.matches("^no releases of ", listed.stdout)
    assert.matches("^the lock of .+/default is free\n$", locked.stdout)
  end)

  it("a read-only .slipway stops the run before anything runs", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() io.open("ran", "w"):close() end)\n' }
    if not mount_tmpfs(dir .. "/.slipway", "ro,size=64k") then
      pending("mounting a tmpfs needs root")
      return
    end
    local r = H.run(dir, { "run", "--json" })
    umount(dir .. "/.slipway")
    assert.same({ 1, "" }, { r.code, r.stdout })
    assert.matches("^slipway: cannot take the lock of .+/default in [^\n]+ %(nothing ran%): EROFS: read%-only file "
      .. "system: [^\n]+\n$", r.stderr)
    assert.is_false(fs.exists(dir .. "/ran"))
  end)

  it("a disk that fills up during the run still gets the finished release (the space reserved for it)", function()
    local dir = H.project { ["deploy.lua"] = [[
task("fill", function()
  -- fill the ledger's disk to the last byte
  local f = io.open(".slipway/filler", "w")
  local chunk = ("x"):rep(4096)
  while f:write(chunk) and f:flush() do end
  f:close()
  return ("r"):rep(20000)
end)
]] }
    if not mount_tmpfs(dir .. "/.slipway", "size=1m") then
      pending("mounting a tmpfs needs root")
      return
    end
    local r = H.run(dir, { "run", "--reporter", "plain" })
    local text = fs.read(dir .. "/.slipway/runs/" .. (fs.list(dir .. "/.slipway/runs")[1] or "?") .. "/record.json")
    umount(dir .. "/.slipway")
    assert.same(0, r.code, r.stderr)
    local rec = json.decode(assert(text))
    assert.same({ "success", 20000 }, { rec.status, #rec.tasks[1].result })
  end)

  it("keeps what each change recorded, data in full, and marks the release verified only when its checks passed", function()
    local dir = H.project { ["deploy.lua"] = [[
param.string("version", "v1")
param.bool("break_check", false)
task("deploy", function(p)
  context.add_change { kind = "test.stack", target = "shop", summary = "2 services",
    data = { previous = { web = { image = "web:v0", mounts = json.array {}, env = { A = "1" } } }, new = { web = { image = "web:" .. p.version } },
             list = { 1, 2, 3 } },
    undo = function() end }
end)
task("smoke", { needs = "deploy", verifies = true }, function(p)
  if p.break_check then error("smoke test failed") end
end)
]] }
    assert.same(0, H.run(dir, { "run", "-p", "version=v2" }).code)
    assert.same(1, H.run(dir, { "run", "-p", "version=v3", "-p", "break_check=true" }).code)
    assert.same(0, H.run(dir, { "run", "-p", "version=v4", "--skip", "smoke" }).code)
    local rows = history(dir)
    assert.same({ { "v4", "success", false }, { "v3", "rolled_back", false }, { "v2", "success", true } },
      { { rows[1].version, rows[1].status, rows[1].verified }, { rows[2].version, rows[2].status, rows[2].verified },
        { rows[3].version, rows[3].status, rows[3].verified } })
    local rec = show(dir, rows[3].id)
    assert.same({ previous = { web = { image = "web:v0", mounts = {}, env = { A = "1" } } }, new = { web = { image = "web:v2" } },
                  list = { 1, 2, 3 } }, rec.changes[1].data)
    assert.same({ "test.stack", "shop", "applied", true, "deploy" },
      { rec.changes[1].kind, rec.changes[1].target, rec.changes[1].status, rec.changes[1].undo, rec.changes[1].task })
    -- (an empty array stays an array: what a rollback re-applies must be the same JSON)
    local text = fs.read(dir .. "/.slipway/runs/" .. rows[3].id .. "/record.json")
    assert.matches('"mounts": []', text, 1, true)
    assert.same({ true }, { rec.tasks[2].verifies })
  end)
end)

describe("slipway history and show", function()
  leaks.check()
  after_each(H.cleanup)

  local PIPELINE = [[
param.choice("environment", { "staging", "production" }, "staging")
param.string("tag", "t0")
task("build", function(p) return { image = "app:" .. p.tag } end)
task("check", { needs = "build", verifies = true }, function(p) if p.tag == "bad" then error("check failed: bad tag") end end)
]]

  local function git(dir, ...)
    local r = proc.run({ "git", "-C", dir, ... })
    assert.same(0, r.code, r.stderr)
    return (r.stdout:gsub("%s+$", ""))
  end

  it("list newest first: id, when, who, git sha, version, environment, status, verified, duration", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    git(dir, "init", "-q", "-b", "main")
    git(dir, "-c", "user.name=t", "-c", "user.email=t@t", "add", "deploy.lua")
    git(dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    local sha = git(dir, "rev-parse", "HEAD")
    local env = { USER = "alice" }
    assert.same(0, H.run(dir, { "run", "-p", "tag=t1" }, { env = env }).code)
    assert(fs.write(dir .. "/deploy.lua", PIPELINE .. "-- changed\n"))   -- a dirty checkout
    assert.same(1, H.run(dir, { "run", "--env", "production", "-p", "tag=bad" },
      { env = { GITHUB_ACTIONS = "true", GITHUB_ACTOR = "octocat", GITHUB_SERVER_URL = "https://github.example",
                GITHUB_REPOSITORY = "acme/shop", GITHUB_RUN_ID = "42" } }).code)
    assert.same(0, H.run(dir, { "run", "--env", "production", "-p", "tag=t2" }, { env = env }).code)
    local rows = history(dir)
    assert.same(3, #rows)
    local seen = {}
    for i, r in ipairs(rows) do
      seen[i] = { r.version, r.environment, r.status, r.verified, r.who, r.git.sha, r.git.dirty, r.git.branch,
                  r.failed, r.ci_url or "-" }
    end
    assert.same({
      { "t2", "production", "success", true, "alice", sha, true, "main", {}, "-" },
      { "bad", "production", "failed", false, "octocat", sha, true, "main", { "check" },
        "https://github.example/acme/shop/actions/runs/42" },
      { "t1", "staging", "success", true, "alice", sha, false, "main", {}, "-" },
    }, seen)
    assert.is_true(rows[1].id > rows[2].id and rows[2].id > rows[3].id)
    for _, r in ipairs(rows) do
      assert.is_number(r.duration_ms)
      assert.matches("^%d+%-%d+%-%d+T%d+:%d+:%d+Z$", r.started_at)
      assert.same(r.pipeline, fs.basename(fs.realpath(dir)))
    end
    -- the table
    local r = H.run(dir, { "history" })
    assert.same(0, r.code)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.same(4, #lines)
    assert.matches("^release +started +who +git +version +environment +status +verified +duration$", lines[1])
    assert.matches("^" .. lit(rows[1].id) .. " +%d+%-%d+%-%d+ %d+:%d+:%d+ +alice +" .. sha:sub(1, 7)
      .. "%+ +t2 +production +success +yes +%d+m?s$", lines[2])
    assert.matches("^" .. lit(rows[2].id) .. " .* octocat +" .. sha:sub(1, 7) .. "%+ +bad +production +failed +no +", lines[3])
    assert.matches("^" .. lit(rows[3].id) .. " .* alice +" .. sha:sub(1, 7) .. " +t1 +staging +success +yes +", lines[4])
    -- -n and --env
    assert.same({ rows[1].id }, (function() local x = history(dir, { "-n", "1" }) return { x[1].id, x[2] } end)())
    local staging = history(dir, { "--env", "staging" })
    assert.same({ 1, rows[3].id }, { #staging, staging[1].id })
    local prod = history(dir, { "--env", "production", "-n", "5" })
    assert.same({ rows[1].id, rows[2].id }, { prod[1].id, prod[2].id })
    assert.same({ 0, "no releases of " .. rows[1].pipeline .. " (environment qa) in " .. fs.realpath(dir) .. "/.slipway\n" },
      (function() local x = H.run(dir, { "history", "--env", "qa" }) return { x.code, x.stdout } end)())
  end)

  it("show prints one release, by id or the start of one", function()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    assert.same(0, H.run(dir, { "run", "-p", "tag=t1" }).code)
    require("slipway.task").sleep(1.05)            -- (ids start with the second)
    assert.same(1, H.run(dir, { "run", "-p", "tag=bad" }).code)
    local rows = history(dir)
    local r = H.run(dir, { "show", rows[1].id })
    assert.same(0, r.code, r.stderr)
    local root = fs.realpath(dir)
    assert.matches(table.concat({
      "^release   " .. lit(rows[1].id),
      "pipeline  " .. fs.basename(root):gsub("%p", "%%%0") .. ", environment staging",
      "status    failed, not verified",
      "version   bad",
      "started   [%d%- :]+ UTC by %S+ on %S+ %(pid %d+%)",
      "finished  [%d%- :]+ UTC, after %d+m?s %(exit 1%)",
      "params    environment=staging tag=bad",
      "tasks",
      "  build  ok      %d+m?s +%-> {\"image\":\"app:bad\"}",
      "  check  failed  %d+m?s +%(verifies%) deploy%.lua:4: check failed: bad tag",
      "changes",
      "  %(none%)",
      "record    " .. lit(root) .. "/%.slipway/runs/" .. lit(rows[1].id) .. "/record%.json\n$",
    }, "\n"), r.stdout)
    -- the start of an id names it when only one release has it
    local prefix = rows[2].id:sub(1, 16)
    assert.same(rows[2].id, show(dir, prefix).id)
    local j = show(dir, rows[2].id)
    assert.same({ "success", "success", true, "t1", { image = "app:t1" } },
      { j.status, j.effective_status, j.verified, j.version, j.tasks[1].result })
    r = H.run(dir, { "show", "20991231" })
    assert.same({ 1, "slipway show: no release 20991231 in " .. root .. "/.slipway\n" }, { r.code, r.stderr })
    r = H.run(dir, { "show", "2" })
    assert.same(1, r.code)
    assert.matches("^slipway show: 2 names 2 releases %(", r.stderr)
  end)
end)

describe("pipeline { ... }", function()
  leaks.check()
  after_each(H.cleanup)

  local function bad(text)
    local dir = H.project { ["deploy.lua"] = text }
    local r = H.run(dir, { "run" })
    assert.same({ 2, "" }, { r.code, r.stdout })
    assert.is_false(fs.exists(dir .. "/.slipway"), "a run was recorded")
    return r.stderr
  end

  it("names the pipeline in the ledger", function()
    local dir = H.project { ["deploy.lua"] = 'pipeline { name = "shop" }\ntask("a", function() end)\n' }
    assert.same(0, H.run(dir, { "run" }).code)
    assert.same("shop", history(dir)[1].pipeline)
    -- a file of another name in the same directory is another pipeline: its own history
    assert(fs.write(dir .. "/jobs.pipeline.lua", 'task("b", function() end)\n'))
    assert.same(0, H.run(dir, { "run", "jobs.pipeline.lua" }).code)
    local jobs = history(dir, { "jobs.pipeline.lua" })
    assert.same({ 1, "jobs" }, { #jobs, jobs[1].pipeline })
    assert.same(1, #history(dir))
  end)

  it("rejects unknown options and bad values with the file's line, and a second declaration", function()
    assert.same("slipway: deploy.lua:2: pipeline: unknown option 'ledgr' (did you mean 'ledger'?) (valid: name, ledger, "
      .. "on_interrupt, lock)\n", bad('task("a", function() end)\npipeline { ledgr = "swarm" }\n'))
    assert.same('slipway: deploy.lua:1: pipeline: ledger must be "local" or "swarm", got \'s3\'\n',
      bad('pipeline { ledger = "s3" }\n'))
    assert.same('slipway: deploy.lua:1: pipeline: on_interrupt must be "stop" or "rollback", got boolean\n',
      bad('pipeline { on_interrupt = true }\n'))
    assert.same("slipway: deploy.lua:1: pipeline: lock must be true or false, got string\n", bad('pipeline { lock = "no" }\n'))
    assert.same("slipway: deploy.lua:1: pipeline: name must be a non-empty string, got ''\n", bad('pipeline { name = "" }\n'))
    assert.same("slipway: deploy.lua:1: pipeline: expected pipeline { name = ..., ledger = ..., on_interrupt = ..., "
      .. "lock = ... }, got string\n", bad('pipeline "shop"\n'))
    assert.same("slipway: deploy.lua:3: pipeline: already declared at deploy.lua:1 (declare it once)\n",
      bad('pipeline { name = "a" }\n\npipeline { name = "b" }\n'))
    local dir = H.project { ["deploy.lua"] = 'task("a", function() pipeline { name = "x" } end)\n' }
    local r = H.run(dir, { "run", "--reporter", "plain" })
    assert.same(1, r.code)
    assert.matches("deploy%.lua:1: pipeline: declare the pipeline at the top level of the file, not while it runs",
      r.stdout)
    assert.same("slipway: deploy.lua:1: task 'a': verifies must be true or false, got string\n",
      bad('task("a", { verifies = "yes" }, function() end)\n'))
  end)

  it("keeps on_interrupt in the definition, stop by default", function()
    local dsl = require("slipway.pipeline.dsl")
    local path = package.path
    local dir = H.project { ["deploy.lua"] = 'pipeline { on_interrupt = "rollback", lock = false }\ntask("a", function() end)\n',
                            ["plain.pipeline.lua"] = 'task("a", function() end)\n' }
    local def = dsl.load(dir .. "/deploy.lua")
    assert.same({ "rollback", false, "local" }, { def.pipeline.on_interrupt, def.pipeline.lock, def.pipeline.ledger })
    def = dsl.load(dir .. "/plain.pipeline.lua")
    package.path = path
    assert.same({ "stop", true, "local" }, { def.pipeline.on_interrupt, def.pipeline.lock, def.pipeline.ledger })
  end)
end)
