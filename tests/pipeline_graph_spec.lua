-- Pure-Lua units of the pipeline: the graph (order, cycles, selection,
-- diagrams), parameters, matrix labels, the release record API, and the
-- `plan`/`graph` commands end to end.
local graph = require("slipway.pipeline.graph")
local params = require("slipway.pipeline.params")
local scheduler = require("slipway.pipeline.scheduler")
local release = require("slipway.release")
local H = require("support.pipeline_helper")

-- A definition as dsl.load builds it, from { name = needs-list } pairs.
local function def_of(list, param_list)
  local def = { file = "deploy.lua", tasks = {}, by_name = {}, params = params.new_set(function()
    return { file = "deploy.lua", line = 1 }
  end) }
  for i, spec in ipairs(list) do
    local t = { name = spec[1], needs = spec[2] or {}, when = spec.when, matrix = spec.matrix,
                file = "deploy.lua", line = i, index = i, retries = 0 }
    def.tasks[i] = t
    def.by_name[t.name] = t
  end
  for _, p in ipairs(param_list or {}) do def.params.api[p[1]](table.unpack(p, 2)) end
  return def
end

local function names(tasks)
  local out = {}
  for i, t in ipairs(tasks) do out[i] = t.name end
  return out
end

local function input_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_table(err)
  return err.input_error
end

describe("pipeline graph", function()
  it("orders needs first, keeping declaration order among equals", function()
    local def = def_of { { "deploy", { "build", "infra" } }, { "build", { "test" } }, { "infra" }, { "test" },
                         { "validate", { "deploy" } } }
    graph.check(def)
    assert.same({ "infra", "test", "build", "deploy", "validate" }, names(graph.order(def)))
  end)

  it("finds cycles and names them from the first declared task", function()
    local def = def_of { { "a" }, { "b", { "d" } }, { "c", { "b" } }, { "d", { "c" } } }
    assert.same("deploy.lua:2: dependency cycle: b -> d -> c -> b (each task needs the next)",
      input_error(graph.check, def))
  end)

  it("handles a long chain without recursion trouble", function()
    local list = {}
    for i = 1, 3000 do list[i] = { "t" .. i, i > 1 and { "t" .. (i - 1) } or {} } end
    local def = def_of(list)
    graph.check(def)
    local order = graph.order(def)
    assert.same({ "t1", "t3000" }, { order[1].name, order[3000].name })
  end)

  it("plans --only with what it needs, --skip, and when", function()
    local def = def_of({ { "a" }, { "b", { "a" } }, { "c", { "b" } }, { "d", when = "fast" },
                         { "e", when = function(p) return p.fast end } },
                       { { "bool", "fast", false } })
    graph.check(def)
    local plan = graph.plan(def, { fast = false }, { only = { "b" } })
    assert.same({ a = { run = true }, b = { run = true }, c = { run = false, reason = "not selected (--only b)" },
                  d = { run = false, reason = "not selected (--only b)" }, e = { run = false, reason = "not selected (--only b)" } },
      plan.decision)
    plan = graph.plan(def, { fast = false }, { skip = { "a" } })
    assert.same({ a = { run = false, reason = "skipped by --skip" }, b = { run = true }, c = { run = true },
                  d = { run = false, reason = "when: parameter fast is false" },
                  e = { run = false, reason = "when: the condition is false" } }, plan.decision)
    plan = graph.plan(def, { fast = true }, {})
    assert.same({ true, true }, { plan.decision.d.run, plan.decision.e.run })
  end)

  it("draws mermaid and dot diagrams, dashing what would be skipped", function()
    local def = def_of { { "build" }, { "deploy", { "build" } }, { "docs", matrix = function() return { 1 } end } }
    local plan = graph.plan(def, {}, { skip = { "docs" } })
    assert.same('flowchart LR\n  t1["build"]\n  t2["deploy"]\n  t3["docs [matrix]"]\n  t1 --> t2\n' ..
      '  classDef skipped stroke-dasharray: 5 5,opacity:0.6\n  class t3 skipped\n', graph.mermaid(def, plan))
    assert.same('digraph pipeline {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n  t1 [label="build"];\n' ..
      '  t2 [label="deploy"];\n  t3 [label="docs [matrix]", style="rounded,dashed"];\n  t1 -> t2;\n}\n', graph.dot(def, plan))
  end)

  it("diagrams name the items of a list matrix", function()
    local many = {}
    for i = 1, 10 do many[i] = "svc/s" .. i end
    local def = def_of { { "build", matrix = { "svc/api", "svc/web" } }, { "fan", { "build" }, matrix = many },
                         { "none", matrix = {} } }
    assert.same('flowchart LR\n  t1["build [matrix of 2: api, web]"]\n' ..
      '  t2["fan [matrix of 10: s1, s2, s3, s4, s5, s6, s7, s8 and 2 more]"]\n  t3["none [matrix of 0]"]\n' ..
      '  t1 --> t2\n', graph.mermaid(def))
    assert.matches('t1 %[label="build %[matrix of 2: api, web%]"%];', graph.dot(def))
  end)
end)

describe("words", function()
  local words = require("slipway.words")

  it("suggests the closest name: a small edit away, or a prefix either way", function()
    assert.same(" (did you mean 'deploy'?)", words.did_you_mean("deplyo", { "build", "deploy" }))
    assert.same("", words.did_you_mean("xyz", { "build", "deploy" }))
    assert.same({ "plan", "history", "bool", "deploy_frontend" }, {
      words.closest("pln", { "run", "plan", "graph" }), words.closest("hist", { "help", "history" }),
      words.closest("boolean", { "bool", "choice" }), words.closest("deploy_frontnd", { "deploy", "deploy_frontend" }) })
    -- too short to guess, the same name, or nothing near
    assert.same({}, { words.closest("-j", { "-p" }), words.closest("ab", { "ba" }), words.closest("run", { "run" }),
      words.closest("zzzz", { "plan" }), words.closest(1, { "1" }) })
  end)

  it("counts with the noun in the right number", function()
    assert.same({ "0 tasks", "1 task", "2 tasks", "1 entry", "3 entries" },
      { words.count(0, "task"), words.count(1, "task"), words.count(2, "task"),
        words.count(1, "entry", "entries"), words.count(3, "entry", "entries") })
  end)
end)

describe("pipeline params", function()
  local function set_of(decls)
    local set = params.new_set(function() return { file = "deploy.lua", line = 7 } end)
    for _, d in ipairs(decls) do set.api[d[1]](table.unpack(d, 2)) end
    return set
  end

  it("resolves defaults, then environment, then -p (last wins)", function()
    local set = set_of { { "choice", "environment", { "production", "staging" }, "staging" },
                         { "number", "replicas", 2 }, { "list", "services", { "api" } }, { "bool", "dry_run" } }
    local env = { SLIPWAY_PARAM_REPLICAS = "5", SLIPWAY_PARAM_DRY_RUN = "on" }
    local values = params.resolve(set, {
      { name = "environment", value = "production", origin = "--env production" },
      { name = "services", value = "api, web ,worker", origin = "-p services=..." },
      { name = "replicas", value = "3", origin = "-p replicas=3" },
      { name = "replicas", value = "4", origin = "-p replicas=4" },
    }, { getenv = function(k) return env[k] end })
    assert.same({ environment = "production", replicas = 4, services = { "api", "web", "worker" }, dry_run = true }, values)
  end)

  it("guarded values raise on a name nobody declared, and read like the values", function()
    local set = set_of { { "string", "region", "eu" }, { "bool", "dry_run" } }
    local values = params.resolve(set, {}, { getenv = function() end })
    local p = params.guarded(values, set)
    assert.same({ "eu", false }, { p.region, p.dry_run })
    local copy = {}
    for k, v in pairs(p) do copy[k] = v end
    assert.same(values, copy)
    local ok, err = pcall(function() return p.regoin end)
    assert.same({ false, "tests/pipeline_graph_spec.lua:" .. debug.getinfo(1, "l").currentline - 1
      .. ": unknown parameter 'regoin' (did you mean 'region'?); valid parameters: region, dry_run" }, { ok, err })
    assert.is_nil(getmetatable(values))
  end)

  it("when = NAME must name a param.bool", function()
    local def = def_of({ { "a", when = "fast" }, { "b", when = "region" } },
                       { { "bool", "fast", false }, { "string", "region", "eu" } })
    assert.same("deploy.lua:2: task 'b': when = 'region' names a param.string (deploy.lua:1); when takes the name of "
      .. "a param.bool, or a function(p) for any other condition", input_error(graph.check, def))
  end)

  it("rejects bad values, naming the declaration and what is valid", function()
    local set = set_of { { "number", "replicas", 2 } }
    assert.same("deploy.lua:7: parameter 'replicas': bad value 'x' (from -p replicas=x): expected a number",
      input_error(params.resolve, set, { { name = "replicas", value = "x", origin = "-p replicas=x" } },
        { getenv = function() end }))
    assert.same("deploy.lua:7: param.bool: parameter 'replicas' is already declared at deploy.lua:7",
      input_error(set.api.bool, "replicas"))
    assert.same("deploy.lua:7: param.string: 'region': bad default 5: expected a string",
      input_error(set.api.string, "region", 5))
    assert.same("deploy.lua:7: param.list: the first argument must be a parameter name (letters, digits, _ and -), got 'a b'",
      input_error(set.api.list, "a b"))
    assert.has_error(function() return set.api.integer end,
      "param.integer: no such parameter kind (valid: param.bool, param.choice, param.list, param.number, param.secret, param.string)")
  end)
end)

describe("matrix labels", function()
  it("names items by path tail, name/id field, or key=value", function()
    assert.same({ "api", "7", "web", "x", "arch=arm64,os=linux", "3" }, {
      scheduler.item_label("services/api/", 1), scheduler.item_label(7, 2),
      scheduler.item_label({ name = "web" }, 3), scheduler.item_label({ id = "x" }, 4),
      scheduler.item_label({ os = "linux", arch = "arm64" }, 5), scheduler.item_label({ {} }, 3) })
  end)
end)

describe("context change API", function()
  local context = require("slipway.context")
  local fake_run = require("support.fake_run")

  it("outside a run returns the entry and marks it; in a run the run gets both", function()
    assert.is_false(context.in_run())
    local undone = false
    local e = context.add_change { kind = "docker.stack", target = "app", summary = "updated 2", data = { n = 2 },
                                   undo = function() undone = true end }
    assert.same({ "docker.stack", "app", "updated 2", { n = 2 }, "applied" }, { e.kind, e.target, e.summary, e.data, e.status })
    context.mark_change(e, "rolled_back", "by itself")
    assert.same({ "rolled_back", "by itself" }, { e.status, e.details })
    assert.is_false(undone)
    local entry
    local run, ok = fake_run.within(function()
      assert.is_true(context.in_run())
      entry = context.add_change { kind = "k", target = "t" }
      context.mark_change(entry, "undo_failed", "no")
    end)
    assert.is_true(ok)
    assert.same({ { entry, "added" }, { entry, "marked" } }, run.changes)
  end)

  it("rejects unknown fields, missing fields and bad marks", function()
    assert.has_error(function() context.add_change { kind = "k", target = "t", secret = "x" } end,
      "context.add_change: unknown field 'secret' (valid: kind, target, summary, data, undo, restorer)")
    assert.has_error(function() context.add_change { kind = "k" } end, "context.add_change: kind and target are required")
    assert.has_error(function() context.add_change { kind = "k", target = "t", undo = "no" } end,
      "context.add_change: undo must be a function, got string")
    local e = context.add_change { kind = "k", target = "t" }
    assert.has_error(function() context.mark_change(e, "done") end,
      "context.mark_change: status must be 'rolled_back' or 'undo_failed', got done")
  end)

  it("writes record.json as slipway.json's pretty text, rows of any shape included", function()
    local json = require("slipway.json")
    local fs = require("slipway.fs")
    local rows = { { name = "a", task = "a", status = "ok", started = 0.5, finished = 12.3, duration_ms = 11.8, attempts = 1 },
                   { name = "b[x]", task = "b", item = "x", status = "failed", error = 'say "no"\n\tthen \255 stop',
                     file = "deploy.lua", line = 7, allowed = true, started = 1e15 + 0.5, finished = -0.0, duration_ms = 0.1 + 0.2 },
                   {}, { name = "ünïcode", status = "skipped", reason = "50% done", n = 3.0, weird = { 1, { x = 2 } } },
                   { name = "c", task = "c", status = "ok", started = 2.0, finished = 1 / 3, duration_ms = 100, attempts = 2 } }
    local record = release.new_record { id = "r1", status = "failed", params = { env = "prod", list = json.array({ "a" }), none = {} },
                     tasks = json.array(rows), rollbacks = json.array({}) }
    record.changes[1] = context.add_change { kind = "k", target = "t", data = { deep = { 1, "two" } } }
    local dir = assert(fs.tempdir("slipway-record-"))
    assert(release.write(record, dir))
    local data = release.serializable(record)
    assert.same(json.encode(data, { pretty = true, invalid_utf8 = "replace" }) .. "\n", fs.read(dir .. "/record.json"))
    fs.remove(dir, { recursive = true })
  end)
end)

describe("plan and graph commands", function()
  after_each(H.cleanup)

  it("plan shows the items --only and --skip select", function()
    local dir = H.project { ["deploy.lua"] = 'task("build", { matrix = { "a", "b", "c" } }, function() end)\n' ..
      'task("ship", { needs = "build" }, function() end)\n' }
    local r = H.run(dir, { "plan", "--only", "build[c],build[a]" })
    assert.same(0, r.code, r.stderr)
    assert.same([[
pipeline deploy.lua: 2 tasks
tasks, in run order:
  run  build  (matrix of 3: a, b, c; only items a, c)
  skip ship  (needs build; not selected (--only build[c],build[a]))
1 to run, 1 skipped
]], r.stdout)
    r = H.run(dir, { "plan", "--json", "--skip", "build[b]" })
    local j = require("slipway.json").decode(r.stdout)
    assert.same({ { "b" }, true }, { j.tasks[1].skip_items, j.tasks[2].run })
    assert.same({ 3, { "a", "b", "c" }, nil }, { j.tasks[1].matrix, j.tasks[1].items, j.tasks[2].items })
  end)

  it("plan prints the resolved graph and what is skipped and why, running nothing", function()
    local dir = H.project { ["deploy.lua"] = [[
param.choice("environment", { "production", "staging" }, "staging", "where to deploy")
param.bool("deploy_frontend", false)
task("quality-gate", function() sh "touch ran" end)
task("build", { needs = "quality-gate", matrix = function() return fs.glob("x/*") end, retries = 2 }, function() end)
task("deploy", { needs = "build", timeout = "5m", rollback = function() end }, function() end)
task("frontend", { needs = "deploy", when = "deploy_frontend" }, function() end)
]] }
    local r = H.run(dir, { "plan", "--env", "production" })
    assert.same(0, r.code, r.stderr)
    assert.same([[
pipeline deploy.lua: 4 tasks
parameters:
  environment = 'production' (one of production, staging)  -- where to deploy
  deploy_frontend = false (bool)
tasks, in run order:
  run  quality-gate
  run  build  (needs quality-gate; matrix (at run time); retries 2)
  run  deploy  (needs build; timeout 5m00s; has rollback)
  skip frontend  (needs deploy; when: parameter deploy_frontend is false)
3 to run, 1 skipped
]], r.stdout)
    assert.is_false(require("slipway.fs").exists(dir .. "/ran"))
    assert.is_false(require("slipway.fs").exists(dir .. "/.slipway"))
    r = H.run(dir, { "plan", "--json" })
    local j = require("slipway.json").decode(r.stdout)
    assert.same({ "staging", false }, { j.params.environment, j.params.deploy_frontend })
    assert.same({ "quality-gate", true, "build", "at run time", 2, "frontend", false, "when: parameter deploy_frontend is false" },
      { j.tasks[1].name, j.tasks[1].run, j.tasks[2].name, j.tasks[2].matrix, j.tasks[2].retries,
        j.tasks[4].name, j.tasks[4].run, j.tasks[4].reason })
    r = H.run(dir, { "graph", "--format", "dot", "-p", "deploy_frontend=yes" })
    assert.same(0, r.code)
    assert.matches("t1 %-> t2;\n  t2 %-> t3;\n  t3 %-> t4;\n}\n$", r.stdout)
    assert.is_nil(r.stdout:find("dashed"))
  end)

  it("slipway FILE runs a pipeline when the file declares tasks, else a script", function()
    local dir = H.project { ["ci.lua"] = 'task("hello", function() print("hi from task") end)\n',
                            ["script.lua"] = 'print("plain script", ...)\n' }
    local r = H.run(dir, { "ci.lua" })
    assert.same(0, r.code)
    assert.truthy(r.stdout:find("[hello] hi from task", 1, true))
    r = H.run(dir, { "script.lua", "x" })
    assert.same({ 0, "plain script\tx\n" }, { r.code, r.stdout })
  end)

  it("git.sha/short_sha/branch work at load time and in tasks; env() reads variables", function()
    local proc = require("slipway.proc")
    local dir = H.project { ["deploy.lua"] = [[
local sha, short, branch = git.sha(), git.short_sha(), git.branch()
local region = env("SLIPWAY_TEST_REGION", "eu")
local missing = env("SLIPWAY_TEST_MISSING", "default")
task("show", function()
  local head = git.head()
  print(sha == git.sha() and short == git.short_sha() and branch == git.branch() and head.sha == sha and head.branch == branch)
  print(sha, short, branch, region, missing)
end)
]] }
    local function git(...)
      local r = proc.run({ "git", "-C", dir, ... })
      assert.same(0, r.code, r.stderr)
      return (r.stdout:gsub("%s+$", ""))
    end
    git("init", "-q", "-b", "trunk")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    local r = H.run(dir, { "run", "--json" }, { env = { SLIPWAY_TEST_REGION = "us" } })
    assert.same(0, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch('"line":"([^"]*)"') do lines[#lines + 1] = l end
    assert.same({ "true", ("%s\\t%s\\ttrunk\\tus\\tdefault"):format(git("rev-parse", "HEAD"),
      git("rev-parse", "--short", "HEAD")) }, lines)
  end)

  it("history lists recorded runs newest first, filtered by environment", function()
    local json = require("slipway.json")
    local dir = H.project { ["deploy.lua"] = [[
param.choice("environment", { "production", "staging" }, "staging")
task("check", function(p) if p.environment == "production" then error("no") end end)
]] }
    assert.same(0, H.run(dir, { "run" }).code)
    require("slipway.task").sleep(1.1)     -- run ids have second resolution
    assert.same(1, H.run(dir, { "run", "--env", "production" }).code)
    local r = H.run(dir, { "history", "--json" })
    assert.same(0, r.code)
    local rows = json.decode(r.stdout)
    assert.same({ { "failed", "production", { "check" } }, { "success", "staging", {} } },
      { { rows[1].status, rows[1].environment, rows[1].failed }, { rows[2].status, rows[2].environment, rows[2].failed } })
    r = H.run(dir, { "history", "--env", "staging" })
    assert.matches("^release +started +who +git +version +environment +status +verified +duration\n"
      .. "[%dTZ]+%-%x+ +[%d:%- ]+ +%S+ +%- +%- +staging +success +yes +%d+ms\n$", r.stdout)
    assert.same({ 2, "slipway history: unknown flag '--all' (valid: --env, -n, --json, --ledger)\n" },
      (function() local x = H.run(dir, { "history", "--all" }) return { x.code, x.stderr } end)())
  end)

  it("version names slipway and its libraries", function()
    local r = H.run(H.project {}, { "version" })
    assert.same(0, r.code)
    assert.matches("^slipway %d+%.%d+%.%d+\n  Lua      5%.4%.%d+\n  libuv    1%.%d+%.%d+\n  libcurl  %d+%.%d+%.%d+ %(.+%)\n  libyaml  0%.%d+%.%d+\n$", r.stdout)
  end)
end)
