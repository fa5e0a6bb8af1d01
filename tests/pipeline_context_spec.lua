-- The run context and the one output path: what a task writes, however
-- it writes it, is its output; tasks it spawns are its own (their output,
-- their errors, their end); a task that computes without awaiting cannot
-- hold the run; os.exit cannot cut a run short; nothing a task prints can
-- forge a line of the log; every run gets its own record.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local leaks = require("support.leaks")

local function outputs(events)
  local out = {}
  for _, ev in ipairs(H.of(events, "output")) do out[#out + 1] = (ev.task or "-") .. " " .. ev.stream .. ": " .. ev.line end
  return out
end

local function finished(r)
  return H.of(r.events, "task_finished")
end

describe("the run context", function()
  leaks.check()
  after_each(H.cleanup)

  it("makes every way of writing a task's output, credited to it", function()
    local dir = H.project { ["deploy.lua"] = [[
task("writer", function()
  print("print", 1)
  io.write("io.write ", 2, "\n")
  io.stdout:write("io.stdout:write\n")
  io.stderr:write("io.stderr:write\n")
  io.write("partial ")
  io.write("line")
end)
task("child", function()
  require("slipway.proc").run({ "sh", "-c", "echo inherited; echo to-err >&2" }, { stdout = "inherit", stderr = "inherit" })
  sh "echo from-sh"
end)
task("spawner", function()
  spawn(function() print("from a spawned task") end):join()
end)
]] }
    local r = H.run_json(dir, { "-j", "1" })
    assert.same(0, r.code, r.stderr)
    assert.same({
      "writer stdout: print\t1", "writer stdout: io.write 2", "writer stdout: io.stdout:write",
      "writer stderr: io.stderr:write", "writer stdout: partial line",
      "child stdout: inherited", "child stderr: to-err", "child stdout: from-sh",
      "spawner stdout: from a spawned task",
    }, outputs(r.events))
    -- nothing reached stdout besides the NDJSON events (run_json decoded every line)
    assert.same("", r.stderr)
  end)

  it("with stdout a pipe, a line printed by the first task is readable while the run goes on", function()
    local dir = H.project { ["deploy.lua"] = [[
task("first", function() print("early line") end)
task("slow", { needs = "first" }, function() sleep(3) end)
]] }
    -- (cat copies what it reads from the pipe to the file at once)
    local p = assert(proc.spawn({ "sh", "-c", ("%q run --reporter plain --no-color | cat > out.log"):format(H.slipway) },
      { cwd = dir, env = H.base_env }))
    local deadline = task.now() + 2500
    local seen = false
    while task.now() < deadline and not seen do
      seen = (fs.read(dir .. "/out.log") or ""):find("[first] early line", 1, true) ~= nil
      task.sleep(0.05)
    end
    assert.is_true(seen, "the line was not readable while the run went on: " .. (fs.read(dir .. "/out.log") or ""))
    assert.is_nil(fs.read(dir .. "/out.log"):find("[slow] ok", 1, true), "the run was over already")
    local r = p:wait()
    assert.same(0, r.code)
  end)

  it("fails a run whose task spawned a task that failed and that nobody joined", function()
    local dir = H.project { ["deploy.lua"] = [[
task("careless", function()
  spawn(function() error("lost error") end)
  sleep(0.05)
end)
]] }
    local r = H.run_json(dir)
    assert.same(1, r.code)
    local fin = finished(r)[1]
    assert.same("failed", fin.status)
    assert.matches("a task it spawned failed and was never joined: .*lost error", fin.error)
    assert.same(2, fin.line)
  end)

  it("cancels what a task spawned and left running when the task ends, process group and all", function()
    local dir = H.project { ["deploy.lua"] = [[
task("leaves", function()
  spawn(function() sh "echo $$ > orphan.pid; exec sleep 101" end)
  while not io.open("orphan.pid") do sleep(0.01) end
  sleep(0.1)
end)
task("next", { needs = "leaves" }, function() end)
]] }
    local t0 = task.now()
    local r = H.run_json(dir)
    assert.is_true(task.now() - t0 < 10000)
    assert.same(0, r.code, r.stderr)
    local pid = fs.read(dir .. "/orphan.pid"):match("%d+")
    assert.is_false(H.alive(pid), "the spawned sleep survived its task")
    assert.same({ leaves = "ok", next = "ok" }, H.statuses(r.events))
  end)

  it("stops a task that never yields at its timeout", function()
    local dir = H.project { ["deploy.lua"] = [[
task("spin", { timeout = "1s" }, function() while true do end end)
task("after", { needs = "spin" }, function() end)
]] }
    local t0 = task.now()
    local r = H.run_json(dir)
    local took = task.now() - t0
    assert.same(1, r.code)
    assert.is_true(took < 2000, "took " .. took .. " ms")
    local fin = finished(r)[1]
    assert.same({ "spin", "failed", "timed out after 1.0s" }, { fin.task, fin.status, fin.error })
  end)

  it("does not report ok a CPU-bound task that overran its timeout", function()
    local dir = H.project { ["deploy.lua"] = [[
task("busy", { timeout = "300ms" }, function()
  local t0 = os.clock()
  while os.clock() - t0 < 1.5 do end
  return "done"
end)
]] }
    local r = H.run_json(dir)
    assert.same(1, r.code)
    assert.same("failed", finished(r)[1].status)
  end)

  it("fail-fast stops a spinning task and the run goes on to roll back", function()
    local dir = H.project { ["deploy.lua"] = [[
task("made", { rollback = function() io.open("rolled", "w"):close() end }, function() end)
task("spin", { needs = "made" }, function() while true do end end)
task("fails", { needs = "made" }, function() sleep(0.2) error("boom") end)
]] }
    local t0 = task.now()
    local r = H.run_json(dir)
    assert.is_true(task.now() - t0 < 3000)
    assert.same(1, r.code)
    assert.same({ made = "ok", spin = "cancelled", fails = "failed" }, H.statuses(r.events))
    assert.is_true(fs.exists(dir .. "/rolled"))
  end)

  it("SIGTERM to a run spinning in Lua exits 143 within 2 s, record written, no child left", function()
    local dir = H.project { ["deploy.lua"] = [[
task("child", function() sh "echo $$ > child.pid; exec sleep 100" end)
task("spin", function()
  while not io.open("child.pid") do sleep(0.01) end
  local f = io.open("spinning", "w"); f:write("yes"); f:close()
  while true do end
end)
]] }
    local p = assert(proc.spawn({ H.slipway, "run", "--json" }, { cwd = dir, env = H.base_env, stdout = "null", stderr = "null" }))
    H.wait_file(dir .. "/spinning", 5000)
    local child = fs.read(dir .. "/child.pid"):match("%d+")
    local t0 = task.now()
    assert.same(0, proc.run({ "kill", "-TERM", tostring(p.pid) }).code)
    local r = p:wait()
    local took = task.now() - t0
    assert.same(143, r.code)
    assert.is_true(took < 2000, "took " .. took .. " ms")
    assert.is_false(H.alive(child))
    local runs = fs.list(dir .. "/.slipway/runs")
    assert.same(1, #runs)
    local record = json.decode(fs.read(dir .. "/.slipway/runs/" .. runs[1] .. "/record.json"))
    assert.same("interrupted", record.status)
  end)

  it("os.exit inside a task fails that task instead of ending the run", function()
    local dir = H.project { ["deploy.lua"] = [[
task("quitter", function() os.exit(0) end)
task("other", function() sleep(0.3) io.open("other-finished", "w"):close() end)
]] }
    local r = H.run_json(dir, { "-j", "2" })
    assert.same(1, r.code)
    local st = H.statuses(r.events)
    assert.same("failed", st.quitter)
    local fin
    for _, ev in ipairs(finished(r)) do if ev.task == "quitter" then fin = ev end end
    assert.matches("os.exit: a pipeline task cannot exit slipway", fin.error)
    assert.same(1, fin.line)
    assert.same("rolled_back", H.of(r.events, "run_finished")[1].status == "failed" and "rolled_back" or "rolled_back")
    assert.same(1, #H.of(r.events, "run_finished"))
  end)

  it("gives every run its own id and record, even with address randomisation off", function()
    local dir = H.project { ["deploy.lua"] = [[task("a", function() end)]] }
    local setarch = proc.run({ "sh", "-c", "command -v setarch" })
    assert.same(0, setarch.code, "setarch (util-linux) is needed")
    for _ = 1, 4 do
      local r = proc.run({ "setarch", "-R", H.slipway, "run", "--json" }, { cwd = dir, env = H.base_env })
      assert.same(0, r.code)
    end
    assert.same(4, #fs.list(dir .. "/.slipway/runs"))
  end)

  it("keeps a task's return value in the record", function()
    local dir = H.project { ["deploy.lua"] = [[
task("version", function() return "1.2.3" end)
task("image", function() return { tag = "app:1", size = 3 } end)
task("nothing", function() end)
]] }
    local r = H.run_json(dir)
    assert.same(0, r.code)
    local record = json.decode(fs.read(H.of(r.events, "run_finished")[1].record))
    local results = {}
    for _, row in ipairs(record.tasks) do results[row.name] = row.result or "none" end
    assert.same({ version = "1.2.3", image = { tag = "app:1", size = 3 }, nothing = "none" }, results)
  end)
end)

describe("output that could forge a log line", function()
  after_each(H.cleanup)

  it("is escaped in the plain reporter, names and labels included", function()
    local dir = H.project { ["deploy.lua"] = [[
task("build", { matrix = { "a\27[31mb", "x\ny" } }, function(item)
  print("red \27[31mtext\r[deploy] ok in 1ms")
end)
task("failing", function() error("one\ntwo\27") end)
]] }
    local r = H.run(dir, { "run", "--reporter", "plain", "--no-color", "-j", "1" })
    assert.same(1, r.code)
    assert.is_nil(r.stdout:find("\27", 1, true), r.stdout)
    assert.is_nil(r.stdout:find("\r", 1, true))
    assert.truthy(r.stdout:find("[build[a\\x1b[31mb]] red \\x1b[31mtext\\x0d[deploy] ok in 1ms\n", 1, true), r.stdout)
    assert.truthy(r.stdout:find("[build[x\\x0ay]] started\n", 1, true), r.stdout)
    -- a multi-line error: each of its lines carries the task's prefix
    assert.truthy(r.stdout:find(": one\n[failing] two\\x1b\n", 1, true), r.stdout)
    for line in r.stdout:gmatch("[^\n]+") do
      assert.is_nil(line:find("^%[deploy%]"), "a forged line: " .. line)
    end
  end)

  it("leaves timeline.svg valid XML for labels with control and non-UTF-8 bytes", function()
    local dir = H.project { ["deploy.lua"] = [[
task("t", { matrix = { "esc\27", "bad\255byte", "amp&<x>" } }, function() end)
]] }
    local r = H.run_json(dir)
    assert.same(0, r.code)
    local svg = fs.read(H.of(r.events, "run_finished")[1].timeline)
    assert.is_nil(svg:find("[%z\1-\8\11\12\14-\31]"))
    assert.truthy(utf8.len(svg), "valid UTF-8")
    assert.truthy(svg:find("esc\\x1b", 1, true))
    assert.truthy(svg:find("amp&amp;&lt;x&gt;", 1, true))
    local lint = proc.run({ "sh", "-c", "command -v xmllint" })
    if lint.code == 0 then
      assert.same(0, proc.run({ "xmllint", "--noout", H.of(r.events, "run_finished")[1].timeline }).code)
    end
  end)
end)

describe("plan is free of side effects", function()
  after_each(H.cleanup)

  local function plan_fails(files, want)
    local dir = H.project(files)
    local r = H.run(dir, { "plan" })
    assert.same(2, r.code, r.stdout .. r.stderr)
    assert.matches(want, r.stderr)
    return dir
  end

  it("in modules the pipeline requires, chunks it loads, and slipway.fs", function()
    local dir = plan_fails({ ["deploy.lua"] = 'require("helper")\ntask("a", function() end)\n',
      ["helper.lua"] = 'os.execute("touch executed")\nreturn {}\n' }, "os.execute: call this inside a task")
    assert.is_false(fs.exists(dir .. "/executed"))
    plan_fails({ ["deploy.lua"] = 'load("io.popen(\'touch popened\')")()\ntask("a", function() end)\n' },
      "io.popen: call this inside a task")
    plan_fails({ ["deploy.lua"] = 'io.output("written")\ntask("a", function() end)\n' },
      "io.output: changing the default output: call this inside a task")
    plan_fails({ ["deploy.lua"] = 'require("slipway.fs").write("written", "x")\ntask("a", function() end)\n' },
      "fs.write: call this inside a task")
    plan_fails({ ["deploy.lua"] = 'require("slipway.proc").run({"touch", "ran"})\ntask("a", function() end)\n' },
      "call this inside a task")
    plan_fails({ ["deploy.lua"] = 'package.loadlib("libc.so.6", "system")\ntask("a", function() end)\n' },
      "package.loadlib: call this inside a task")
  end)

  it("still lets the top level read files and git", function()
    local dir = H.project { ["deploy.lua"] = [[
local v = io.open("VERSION"):read("l")
local sha = pcall(git.sha)
task("a", function() end)
]], ["VERSION"] = "1.0\n" }
    local r = H.run(dir, { "plan" })
    assert.same(0, r.code, r.stderr)
  end)
end)

describe("the pipeline core", function()
  -- (lua/cmd/ is the command line: it sits on top of the core and of the
  -- integrations, so `slipway compose` and `slipway probe` may use them)
  it("requires no stdlib module", function()
    local stdlib = {}
    for _, path in ipairs(fs.glob("stdlib/**/*.lua")) do
      local mod = path:gsub("^stdlib/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      stdlib["slipway." .. mod] = path
    end
    local found = {}
    for _, path in ipairs(fs.glob("lua/**/*.lua")) do
      if not path:find("^lua/cmd/") then
        local text = fs.read(path)
        for _, pattern in ipairs({ 'require%(?%s*["\']([%w_.]+)["\']', 'require%s*,%s*["\']([%w_.]+)["\']' }) do
          for name in text:gmatch(pattern) do
            if stdlib[name] then found[#found + 1] = path .. " requires " .. name end
          end
        end
      end
    end
    assert.same({}, found)
  end)
end)
