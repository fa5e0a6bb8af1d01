-- The command line as users meet it: `help` lists what exists, a mistyped
-- command gets a suggestion, and mistakes (a directory where a file is
-- expected, a damaged run record, an absurd -j) are clear messages with
-- exit 2 (or the command's documented code), never "internal error" and a
-- traceback with exit 70.
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local json = require("slipway.json")

-- The first line of a text.
local function first_line(s)
  return s:match("^[^\n]*")
end

-- r has no sign of an internal error.
local function no_internal_error(r)
  assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
  assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
  assert.are_not.equal(70, r.code)
end

describe("slipway help", function()
  after_each(H.cleanup)

  it("lists only commands that exist: each answers --help", function()
    local dir = H.project {}
    local r = H.run(dir, { "help" })
    assert.same(0, r.code)
    local section = r.stdout:match("\ncommands:\n(.-)\n\n")
    assert.is_string(section, r.stdout)
    local names = {}
    for name in section:gmatch("%f[^\n%z]  (%S+)") do names[#names + 1] = name end
    assert.same({ "run", "plan", "graph", "compose", "probe", "history", "show", "rollback", "lock", "sandbox", "ci", "init",
      "version", "help" }, names)
    for _, name in ipairs(names) do
      local h = H.run(dir, { name, "--help" })
      assert.same({ name, 0, "" }, { name, h.code, h.stderr })
      assert.matches("^usage: slipway", h.stdout)
    end
    assert.same(r.stdout, H.run(dir, { "--help" }).stdout)
  end)

  it("a mistyped command suggests the closest one, exit 2", function()
    local dir = H.project {}
    local r = H.run(dir, { "pln" })
    assert.same(2, r.code)
    assert.same("slipway: unknown command or file 'pln' (did you mean 'plan'?)", first_line(r.stderr))
    r = H.run(dir, { "hist" })
    assert.same({ 2, "slipway: unknown command or file 'hist' (did you mean 'history'?)" }, { r.code, first_line(r.stderr) })
    r = H.run(dir, { "frobnicate" })
    assert.same({ 2, "slipway: unknown command or file 'frobnicate'" }, { r.code, first_line(r.stderr) })
    r = H.run(dir, { "help", "pln" })
    assert.same({ 2, "", "slipway help: unknown command 'pln' (did you mean 'plan'?); commands: run, plan, graph, "
      .. "compose, probe, history, show, rollback, lock, sandbox, ci, init, version, help\n" }, { r.code, r.stdout, r.stderr })
  end)

  it("unknown flags and values of every command suggest the close ones", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    local cases = {
      { { "plan", "--onyl", "a" }, "slipway plan: unknown flag '--onyl' (did you mean '--only'?) (valid: --env, -p, "
        .. "--param, --only, --skip, --json, --no-color, --force, --no-cache)\n" },
      { { "run", "-x" }, "slipway run: unknown flag '-x' (valid: --env, -p, --param, --only, --skip, -j, --jobs, "
        .. "--json, --no-color, --timestamps, --reporter, --ledger, --lock-wait, --reason, --force, --no-cache)\n" },
      { { "run", "--ledger", "swam" }, "slipway run: --ledger: expected local or swarm, got 'swam'\n" },
      { { "run", "--lock-wait", "soon" }, "slipway run: --lock-wait: bad duration 'soon' (expected e.g. 250ms, 5s, 1h30m)\n" },
      { { "run", "--reporter", "jsn" }, "slipway run: --reporter: unknown reporter 'jsn' (did you mean 'json'?) "
        .. "(valid: terminal, plain, github, json)\n" },
      { { "graph", "--format", "mermiad" }, "slipway graph: unknown format 'mermiad' (did you mean 'mermaid'?) "
        .. "(valid: mermaid, dot)\n" },
      { { "history", "--jsn" }, "slipway history: unknown flag '--jsn' (did you mean '--json'?) (valid: --env, -n, "
        .. "--json, --ledger)\n" },
      { { "show" }, "slipway show: which release? (give its id: `slipway history` lists them)\n" },
      { { "lock", "stats" }, "slipway lock: unknown action 'stats' (did you mean 'status'?) (valid: status, acquire, release)\n" },
      { { "lock", "release", "--forse" }, "slipway lock release: unknown flag '--forse' (did you mean '--force'?) "
        .. "(valid: --env, --force, --ledger)\n" },
      { { "probe", "http://127.0.0.1:9/", "--timout", "1s" }, "slipway probe: unknown option '--timout' (did you mean "
        .. "'--timeout'?) (valid: --backoff, --ca, --concurrency, --contains, --expect, --header, --insecure, "
        .. "--interval, --json, --method, --retries, --stable-for, --success-threshold, --timeout, --unix-socket, --within)\n" },
    }
    for _, c in ipairs(cases) do
      local r = H.run(dir, c[1])
      assert.same({ 2, c[2] }, { r.code, r.stderr })
    end
    local r = H.run(dir, { "compose", "confg" })
    assert.same({ 2, "slipway compose: unknown subcommand 'confg' (did you mean 'config'?)" }, { r.code, first_line(r.stderr) })
    r = H.run(dir, { "sandbox", "stats" })
    assert.same({ 2, "slipway sandbox: unknown subcommand 'stats' (did you mean 'status'?) (expected up, down or status)" },
      { r.code, first_line(r.stderr) })
  end)
end)

describe("user mistakes on the command line", function()
  after_each(H.cleanup)

  it("a directory as the pipeline file: exit 2 naming it, for run, plan and graph", function()
    local dir = H.project {}
    assert(fs.mkdir(dir .. "/ci"))
    for _, args in ipairs { { "run", "ci/" }, { "run", "ci" }, { "plan", "ci" }, { "graph", "ci/" } } do
      local r = H.run(dir, args)
      no_internal_error(r)
      assert.same({ 2, "", ("slipway: cannot read the pipeline %s: Is a directory\n"):format(args[2]) },
        { r.code, r.stdout, r.stderr })
    end
    local r = H.run(dir, { "ci/" })
    assert.same({ 2, "cannot read ci/: Is a directory\n" }, { r.code, r.stderr })
    assert(fs.write(dir .. "/ci/deploy.lua", 'task("a", function() end)\n'))
    r = H.run(dir, { "plan", "ci/" })
    assert.same({ 2, "slipway: cannot read the pipeline ci/: Is a directory (did you mean 'ci/deploy.lua'?)\n" },
      { r.code, r.stderr })
    assert(fs.mkdir(dir .. "/deploy.lua"))
    r = H.run(dir, { "run" })
    assert.same({ 2, "slipway: cannot read the pipeline deploy.lua: Is a directory\n" }, { r.code, r.stderr })
    assert.is_false(fs.exists(dir .. "/.slipway"))
    assert.is_false(fs.exists(dir .. "/ci/.slipway"))
  end)

  it("a pipeline file that cannot be read names the reason", function()
    local dir = H.project {}
    assert(require("slipway.proc").run({ "ln", "-s", "nowhere.lua", dir .. "/dangling.lua" }).code == 0)
    local r = H.run(dir, { "plan", "dangling.lua" })
    assert.same({ 2, "slipway: cannot read the pipeline dangling.lua: No such file or directory\n" }, { r.code, r.stderr })
  end)

  it("-j too large for a whole number is bad input", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    for _, j in ipairs { "99999999999999999999", "1e400", "nan", "0", "2.5" } do
      local r = H.run(dir, { "run", "-j", j })
      no_internal_error(r)
      assert.same({ 2, ("slipway run: -j: expected a whole number >= 1, got '%s'\n"):format(j) }, { r.code, r.stderr })
    end
    assert.same(0, H.run(dir, { "run", "-j", "1e3" }).code)
  end)

  it("compose config: a directory as a compose or env file is bad input (exit 2)", function()
    local dir = H.project { ["c.yml"] = "services:\n  web:\n    image: nginx\n" }
    assert(fs.mkdir(dir .. "/d"))
    for flag, args in pairs { ["--compose-file"] = { "compose", "config", "-c", "d" },
                              ["--env-file"] = { "compose", "config", "-c", "c.yml", "--env-file", "d" } } do
      local r = H.run(dir, args)
      no_internal_error(r)
      assert.same({ 2, "", ("slipway compose: %s d: is a directory, expected a file\n"):format(flag) },
        { r.code, r.stdout, r.stderr })
    end
  end)
end)

describe("slipway history with damaged records", function()
  after_each(H.cleanup)

  it("skips each damaged record with a warning and lists the others", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    assert.same(0, H.run(dir, { "run" }).code)
    local runs = dir .. "/.slipway/runs"
    local good = fs.list(runs)[1]
    local damaged = {
      ["zz1-truncated"] = '{"id": "zz1", "status": "succ',
      ["zz2-not-json"] = "hello",
      ["zz3-array"] = "[1, 2]",
      ["zz4-types"] = '{"id": "zz4", "status": "success", "duration_ms": "long"}',
      ["zz5-tasks"] = '{"id": "zz5", "tasks": "none"}',
      ["zz6-task-row"] = '{"id": "zz6", "tasks": [{"name": 1, "status": "failed"}]}',
      ["zz7-env"] = '{"id": "zz7", "params": {"environment": ["x"]}}',
      ["zz8-null"] = '{"id": "zz8", "status": null}',
    }
    for id, text in pairs(damaged) do
      assert(fs.mkdir(runs .. "/" .. id))
      assert(fs.write(runs .. "/" .. id .. "/record.json", text))
    end
    assert(fs.mkdir(runs .. "/zz9-empty"))
    local r = H.run(dir, { "history" })
    no_internal_error(r)
    assert.same(0, r.code)
    assert.matches("^release +started +who +git +version +environment +status +verified +duration\n"
      .. good:gsub("%p", "%%%0") .. " +%d+%-%d+%-%d+ %d+:%d+:%d+ +%S+ +%- +%- +default +success +yes +%d+ms\n$", r.stdout)
    local w = "slipway history: skipping " .. fs.realpath(dir) .. "/.slipway/runs/%s/record.json: %s\n"
    assert.same(table.concat {
      w:format("zz9-empty", "ENOENT: no such file or directory"),
      w:format("zz8-null", "status: expected string, got null"),
      w:format("zz7-env", "params.environment: expected string, got array"),
      w:format("zz6-task-row", "tasks[1].name: expected string, got number"),
      w:format("zz5-tasks", "tasks: expected array, got string"),
      w:format("zz4-types", "duration_ms: expected number, got string"),
      w:format("zz3-array", "expected a JSON object, got array"),
      w:format("zz2-not-json", "not JSON: json: (why)"),
      w:format("zz1-truncated", "not JSON: json: (why)"),
    }, (r.stderr:gsub("(not JSON: json: )[^\n]+", "%1(why)")))     -- (the decoder's words are its own)
    r = H.run(dir, { "history", "--json" })
    assert.same(0, r.code)
    local rows = json.decode(r.stdout)
    assert.same({ 1, good }, { #rows, rows[1].id })
  end)

  it("a runs directory that is not a directory is exit 2", function()
    local dir = H.project { ["deploy.lua"] = 'task("a", function() end)\n' }
    assert(fs.mkdir(dir .. "/.slipway"))
    assert(fs.write(dir .. "/.slipway/runs", "x"))
    local r = H.run(dir, { "history" })
    local slipway = fs.realpath(dir) .. "/.slipway"
    assert.same({ 2, ("slipway history: cannot list the releases in %s: ENOTDIR: not a directory: %s/runs\n")
      :format(slipway, slipway) }, { r.code, r.stderr })
  end)
end)

describe("counts", function()
  after_each(H.cleanup)

  it("read '1 task', '1 item' in plan and in the run's output", function()
    local dir = H.project { ["deploy.lua"] = 'task("build", { matrix = { "api" } }, function() end)\n' }
    local r = H.run(dir, { "plan" })
    assert.same(0, r.code, r.stderr)
    assert.same("pipeline deploy.lua: 1 task", first_line(r.stdout))
    r = H.run(dir, { "run", "-j", "1" })
    assert.same(0, r.code, r.stderr)
    assert.same("slipway: running deploy.lua (1 task, -j 1)", first_line(r.stdout))
    assert.truthy(r.stdout:find("\n[build] matrix: 1 item (api)\n", 1, true), r.stdout)
    r = H.run(dir, { "run", "--reporter", "github" })
    assert.same("slipway: running deploy.lua (1 task, -j 4)", first_line(r.stdout:gsub("%-j %d+", "-j 4")))
  end)
end)
