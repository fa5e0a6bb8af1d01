-- What a user sees: NDJSON checked against the schema in docs/events.md,
-- plain lines, GitHub Actions commands and files, the live terminal view
-- driven through a pseudo-terminal (tmux), and the timeline picture.
local H = require("support.pipeline_helper")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")

-- A pipeline that exercises every event type.
local EVERYTHING = [[
param.string("greeting", "hello")
task("gate", function(p) sh("echo " .. p.greeting .. "; echo to-stderr >&2") end)
task("build", { needs = "gate", matrix = { "svc/api", "svc/web" } }, function(item)
  print("building " .. item)
  return { image = "registry/" .. item:match("[^/]+$") .. ":1" }
end)
task("flaky", { retries = 1, backoff = "10ms" }, function()
  local f = io.open("flaky.count", "r")
  if not f then io.open("flaky.count", "w"):close(); error("first time fails") end
  f:close()
end)
task("deploy", { needs = { "build", "flaky" }, rollback = function() print("undoing deploy") end }, function()
  require("slipway.context").add_change { kind = "test.stack", target = "app", summary = "updated 2 services",
    undo = function() end }
  return "v2"
end)
task("optional", { needs = "deploy", continue_on_error = true }, function() error("optional broke") end)
task("validate", { needs = "deploy" }, function() task.sleep(0.05); error("health check failed") end)
task("never", { needs = "validate" }, function() end)
task("off", { when = function(p) return false end }, function() end)
]]

-- Parse docs/events.md: { [type] = { field = { type =, required = } } }.
local function schema()
  local text = assert(fs.read("docs/events.md"))
  local common, types = {}, {}
  local current
  local target = common
  for line in text:gmatch("[^\n]*") do
    local name = line:match("^### `([%w_]+)`")
    if name then
      current = {}
      types[name] = current
      target = current
    end
    local field, ty, req = line:match("^| `([%w_]+)` | (%a+) | (%a+) |")
    if field then target[field] = { type = ty, required = req == "yes" } end
  end
  return common, types
end

local function json_type(v)
  local ty = type(v)
  if ty == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if ty == "table" then return getmetatable(v) == json.array_mt and "array" or "object" end
  if ty == "boolean" then return "boolean" end
  return ty
end

local function check_event(ev, common, types)
  local spec = types[ev.type]
  assert(spec, "undocumented event type " .. tostring(ev.type))
  for _, fields in ipairs({ common, spec }) do
    for name, f in pairs(fields) do
      if f.required then assert(ev[name] ~= nil, ev.type .. ": missing " .. name) end
    end
  end
  for k, v in pairs(ev) do
    local f = common[k] or spec[k]
    assert(f, ev.type .. ": undocumented field " .. k)
    local got = json_type(v)
    local ok = got == f.type or (f.type == "number" and got == "integer")
    assert(ok, ("%s.%s: expected %s, got %s"):format(ev.type, k, f.type, got))
  end
end

-- Run `slipway run ARGS` in dir on a cols x rows terminal of a private tmux
-- server (its socket in dir); fn(wait_for) checks the screen, where
-- wait_for(text, tries, interval) polls the pane until text shows (or the
-- tries run out) and returns it. The server is killed afterwards.
local function in_tmux(dir, cols, rows, args, fn)
  local function tmux(...)
    return proc.run({ "tmux", "-L", "slipway-test", ... }, { stderr = "capture", env = { TMUX_TMPDIR = dir, TMUX = false } })
  end
  local cmd = ("cd %s && env -u CI -u GITHUB_ACTIONS NO_COLOR=1 TERM=xterm %s run %s; echo EXIT=$?; sleep 30")
    :format(dir, H.slipway, args)
  assert.same(0, tmux("new-session", "-d", "-x", tostring(cols), "-y", tostring(rows), cmd).code)
  local ok, err = pcall(fn, function(text, tries, interval)
    local pane
    for _ = 1, tries do
      task.sleep(interval)
      pane = tmux("capture-pane", "-p").stdout
      if pane:find(text, 1, true) then break end
    end
    return pane
  end)
  tmux("kill-server")
  assert(ok, err)
end

describe("reporters", function()
  after_each(H.cleanup)

  it("--json: every event is one JSON line that matches docs/events.md", function()
    local common, types = schema()
    assert.same({ "change_recorded", "matrix_expanded", "output", "rollback_finished", "rollback_started",
                  "run_finished", "run_started", "task_finished", "task_retrying", "task_skipped", "task_started",
                  "warning" }, (function()
      local names = {}
      for n in pairs(types) do names[#names + 1] = n end
      table.sort(names)
      return names
    end)())
    local dir = H.project { ["deploy.lua"] = EVERYTHING }
    local r = H.run_json(dir, { "-j", "2" })
    assert.same(1, r.code)
    assert.same("", r.stderr)
    local seen = {}
    for _, ev in ipairs(r.events) do
      check_event(ev, common, types)
      seen[ev.type] = true
    end
    for name in pairs(types) do
      if name ~= "warning" then assert.is_true(seen[name] == true, "no " .. name .. " event") end
    end
    assert.same("run_started", r.events[1].type)
    assert.same("run_finished", r.events[#r.events].type)
    local out = {}
    for _, ev in ipairs(H.of(r.events, "output")) do out[#out + 1] = (ev.task or "?") .. "/" .. ev.stream .. ": " .. ev.line end
    table.sort(out)
    assert.same({ "build[api]/stdout: building svc/api", "build[web]/stdout: building svc/web",
                  "deploy/stdout: undoing deploy", "gate/stderr: to-stderr", "gate/stdout: hello" }, out)
    local last = r.events[#r.events]
    assert.same({ "rolled_back", 1 }, { last.status, last.exit_code })
  end)

  it("--json and the record survive output that is not UTF-8", function()
    local dir = H.project { ["deploy.lua"] = [[
task("binary", function() sh "printf 'ok \\377\\376 end\\n'; printf 'bad \\377\\n' >&2; exit 1" end)
]] }
    local r = H.run_json(dir, {})
    assert.same(1, r.code)
    assert.same("", r.stderr)
    assert.same("ok \u{FFFD}\u{FFFD} end", H.of(r.events, "output")[1].line)
    local fin = r.events[#r.events]
    local record = json.decode(fs.read(fin.record))
    assert.matches("sh: exit code 1: .*\n  bad \u{FFFD}$", record.tasks[1].error)
  end)

  it("plain: lines prefixed with the task name, a summary table, no colour codes", function()
    local dir = H.project { ["deploy.lua"] = [[
task("one", function() sh "echo first line; echo second line" end)
task("two", { needs = "one" }, function() error("bad thing") end)
]] }
    local r = H.run(dir, { "run", "-j", "1" })
    assert.same(1, r.code)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.same("slipway: running deploy.lua (2 tasks, -j 1)", lines[1])
    assert.same("[one] started", lines[2])
    assert.same("[one] first line", lines[3])
    assert.same("[one] second line", lines[4])
    assert.matches("^%[one%] ok in %d+ms$", lines[5])
    assert.same("[two] started", lines[6])
    assert.matches("^%[two%] failed in %d+ms: deploy.lua:2: bad thing$", lines[7])
    assert.same("task  status  duration", lines[8])
    assert.matches("^one   ok      %d+ms$", lines[9])
    assert.matches("^two   failed  %d+ms$", lines[10])
    assert.matches("^failed in %d+ms$", lines[11])
    assert.matches("^record: .*/record.json  timeline: .*/timeline.svg$", lines[12])
    assert.is_nil(r.stdout:find("\27", 1, true))
  end)

  it("plain: --timestamps prefixes the time since the start; colours unless NO_COLOR", function()
    local dir = H.project { ["deploy.lua"] = 'task("one", function() end)\n' }
    local r = H.run(dir, { "run", "--timestamps" })
    assert.matches("\n%+0%.%d%d%ds %[one%] started\n", r.stdout)
    r = H.run(dir, { "run", "--reporter", "plain" }, { env = { NO_COLOR = false, FORCE_COLOR = "1" } })
    assert.truthy(r.stdout:find("\27%[32mok\27%[0m"))
    r = H.run(dir, { "run", "--no-color" }, { env = { NO_COLOR = false, FORCE_COLOR = "1" } })
    assert.is_nil(r.stdout:find("\27", 1, true))
  end)

  it("GitHub Actions: groups, error annotations on the user's line, step summary, outputs", function()
    local dir = H.project { ["deploy.lua"] = [[
task("build", function() print("compiling"); return { image = "app:1", digest = "sha256:ab" } end)
task("version", function() return "1.2.3" end)
task("deploy", { needs = { "build", "version" } }, function()
  print("deploying")
  error("rollout failed: 50% of replicas, see\nthe log")
end)
]] }
    local summary, outputs = dir .. "/summary.md", dir .. "/outputs.txt"
    local r = H.run(dir, { "run", "-j", "1" }, { env = { GITHUB_ACTIONS = "true", CI = "true",
      GITHUB_STEP_SUMMARY = summary, GITHUB_OUTPUT = outputs } })
    assert.same(1, r.code)
    -- a task's output is inside its group with workflow commands off, so
    -- no line of it can act as one (the token is new in every run)
    local token = r.stdout:match("::stop%-commands::(%x+)\n")
    assert.same(32, #token)
    assert.truthy(r.stdout:find("::group::✓ build %(ok, %d+ms%)\n::stop%-commands::" .. token .. "\ncompiling\n::"
      .. token .. "::\n::endgroup::\n"))
    assert.truthy(r.stdout:find("::group::✗ deploy %(failed, %d+ms%)\n::stop%-commands::" .. token .. "\ndeploying\n::"
      .. token .. "::\n::endgroup::\n"))
    assert.truthy(r.stdout:find("::error file=deploy.lua,line=5,title=deploy failed::deploy.lua:5: rollout failed: 50%25 of replicas, see%0Athe log\n", 1, true))
    local md = fs.read(summary)
    assert.matches("^### slipway: deploy.lua — failed in %d+ms\n\n| task | status | duration |\n|%-%-%-|%-%-%-|%-%-%-|\n", md)
    assert.matches("| build | ✓ ok | %d+ms |\n", md)
    assert.matches("| deploy | ✗ failed | %d+ms |\n", md)
    local out = fs.read(outputs)
    assert.matches("^status=failed\nrun_id=[%dTZ]+%-%x+\n", out)
    assert.truthy(out:find("\nbuild_digest=sha256:ab\nbuild_image=app:1\nversion=1.2.3\n", 1, true))
  end)

  it("terminal: a live view of running tasks, collapsing to one line each (through tmux)", function()
    local dir = H.project { ["deploy.lua"] = [[
task("quick", function() sh "echo quick done" end)
task("long", { matrix = { "one", "two" } }, function(item)
  sh("echo working on " .. item .. "; sleep 2")
end)
task("broken", { needs = "quick", continue_on_error = true }, function()
  sh "echo about to fail; echo details on stderr >&2; sleep 0.2; exit 3"
end)
]] }
    in_tmux(dir, 100, 30, "", function(wait_for)
      -- wait (on a busy machine, a while) for the failure to be drawn
      local mid = wait_for("→ deploy.lua:6", 30, 0.05)
      -- the finished task collapsed, the failure expanded, the running ones live
      assert.matches("✓ quick %d+ms\n", mid)
      assert.matches("✗ broken %d+ms  failed %(allowed%)\n  │ about to fail\n  │ details on stderr\n  → deploy.lua:6: sh: exit code 3: ", mid)
      local spinner = "\n([^\n ]+) long%%[%s%%] [%%d.]+m?s  working on %s\n"
      local s1 = mid:match(spinner:format("one", "one"))
      local s2 = mid:match(spinner:format("two", "two"))
      assert.truthy(s1 and ("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):find(s1, 1, true), mid)
      assert.same(s1, s2)
      local final = wait_for("EXIT=", 50, 0.1)
      assert.truthy(final:find("EXIT=0", 1, true), final)
      assert.matches("✓ long%[one%] 2%.%ds\n", final)
      assert.matches("✓ long%[two%] 2%.%ds\n", final)
      for _, frame in utf8.codes("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") do
        assert.is_nil(final:find(utf8.char(frame), 1, true), "a live line was left on screen:\n" .. final)
      end
      assert.matches("task       status            duration\n", final)
      assert.matches("\nsuccess in 2%.%ds\n", final)
    end)
  end)

  it("terminal: no more live lines than the terminal has rows", function()
    local dir = H.project { ["deploy.lua"] = [[
task("m", { matrix = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 } }, function() sh "sleep 3" end)
]] }
    in_tmux(dir, 60, 8, "-j 12", function(wait_for)
      local mid = wait_for("more running", 40, 0.05)
      local live = select(2, mid:gsub("m%[%d+%] [%d.]+m?s", ""))
      assert.same(5, live, mid)
      assert.matches("\n  … and 7 more running\n", mid)
      assert.matches("^slipway: running deploy.lua", mid)   -- the header was not scrolled away
    end)
  end)

  it("timeline.svg: one bar per task on a time axis, coloured by status", function()
    local dir = H.project { ["deploy.lua"] = [[
task("a", function() task.sleep(0.1) end)
task("b", function() task.sleep(0.2) end)
task("c", { needs = { "a", "b" }, rollback = function() end }, function() task.sleep(0.05) end)
task("d", { needs = "c" }, function() error("x") end)
]] }
    local r = H.run_json(dir, {})
    local path = r.events[#r.events].timeline
    local svg = fs.read(path)
    -- well-formed enough for a browser: one root, every tag closed
    assert.matches('^<svg xmlns="http://www.w3.org/2000/svg" width="%d+" height="%d+"', svg)
    local bars = {}
    for colour, name in svg:gmatch('rx="3" fill="(#%x+)"><title>([^:]+):') do bars[name] = colour end
    assert.same({ a = "#2da44e", b = "#2da44e", c = "#2da44e", d = "#cf222e", ["↩ c"] = "#8250df" }, bars)
    -- a and b overlap on the axis: both start at the left edge
    local xa = tonumber(svg:match('<rect x="([%d.]+)" y="[%d.]+" width="[%d.]+" height="14" rx="3" fill="#%x+"><title>a:'))
    local xb = tonumber(svg:match('<rect x="([%d.]+)" y="[%d.]+" width="[%d.]+" height="14" rx="3" fill="#%x+"><title>b:'))
    local xc = tonumber(svg:match('<rect x="([%d.]+)" y="[%d.]+" width="[%d.]+" height="14" rx="3" fill="#%x+"><title>c:'))
    assert.is_true(math.abs(xa - xb) < 2)
    assert.is_true(xc > xb + 100, "c starts after b ends")
    -- every element closed, in order, under one root
    local stack, roots = {}, 0
    for close, name, selfclose in svg:gmatch("<(/?)([%w:]+)[^>]-(/?)>") do
      if close == "/" then
        assert.same(stack[#stack], name)
        stack[#stack] = nil
      elseif selfclose ~= "/" then
        if #stack == 0 then roots = roots + 1 end
        stack[#stack + 1] = name
      end
    end
    assert.same({ {}, 1 }, { stack, roots })
  end)
end)
