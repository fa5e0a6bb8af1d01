-- Cached tasks (task(name, { inputs = ..., cache = true }, fn)): `slipway
-- run` in a temporary project, run after run, checked through the events,
-- the record and `slipway plan`.
local H = require("support.pipeline_helper")
local json = require("slipway.json")
local fs = require("slipway.fs")
local proc = require("slipway.proc")

-- build counts its runs in runs.txt and returns what it read.
local PIPELINE = [[
param.string("region", "eu")
param.string("other", "x")
task("build", { inputs = { "src/**", "Dockerfile", "!src/*.log" }, cache = true }, function(p)
  local n = tonumber(fs.read("runs.txt") or "0") + 1
  fs.write("runs.txt", tostring(n))
  return { region = p.region, flavour = env("CACHE_SPEC_FLAVOUR", "plain"), run = n }
end)
task("ship", { needs = "build" }, function(p) end)
]]

local function project(deploy)
  local dir = H.project { ["deploy.lua"] = deploy or PIPELINE, Dockerfile = "FROM scratch\n" }
  assert(fs.mkdir(dir .. "/src"))
  assert(fs.write(dir .. "/src/main.c", "int main(void) { return 0; }\n"))
  assert(fs.write(dir .. "/src/debug.log", "noise\n"))
  return dir
end

-- run -> r (r.status: build's status, r.result: build's recorded result)
local function run(dir, args, env)
  local r = H.run_json(dir, args or {}, { env = env })
  r.statuses = H.statuses(r.events)
  r.status = r.statuses.build
  local fin = H.of(r.events, "run_finished")[1]
  if fin and fin.record then
    local rec = json.decode(assert(fs.read(fin.record)))
    for _, row in ipairs(rec.tasks) do
      if row.name == "build" then r.row, r.result = row, row.result end
    end
  end
  return r
end

local function runs(dir) return tonumber(fs.read(dir .. "/runs.txt") or "0") end

local function plan(dir, args)
  local a = { "plan" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  return H.run(dir, a)
end

describe("cached tasks", function()
  after_each(H.cleanup)

  it("run 2 is up to date and reuses the result; dependants run", function()
    local dir = project()
    local r1 = run(dir)
    assert.same(0, r1.code, r1.stderr)
    assert.same("ok", r1.status)
    assert.is_string(r1.row.cache.key)
    assert.same({ "region" }, r1.row.cache.params)
    assert.same({ "CACHE_SPEC_FLAVOUR" }, r1.row.cache.env)
    local r2 = run(dir)
    assert.same(0, r2.code, r2.stderr)
    assert.same("up_to_date", r2.status)
    assert.same("ok", r2.statuses.ship)
    assert.same(1, runs(dir))
    assert.same({ region = "eu", flavour = "plain", run = 1 }, r2.result)
    assert.same(r1.row.cache.key, r2.row.cache.key)
    -- run 3 still finds the key (carried by run 2's row)
    assert.same("up_to_date", run(dir).status)
    -- the summary says so
    local plain = H.run(dir, { "run", "--reporter", "plain" })
    assert.matches("up to date", plain.stdout)
  end)

  it("an input's content, a parameter it reads, an env() value it reads, its code invalidate", function()
    local dir = project()
    assert.same("ok", run(dir).status)
    assert(fs.write(dir .. "/src/main.c", "int main(void) { return 1; }\n"))
    assert.same("ok", run(dir).status)
    assert.same("up_to_date", run(dir).status)
    -- a parameter it reads
    assert.same("ok", run(dir, { "-p", "region=us" }).status)
    assert.same("up_to_date", run(dir, { "-p", "region=us" }).status)
    -- a parameter it does not read
    assert.same("up_to_date", run(dir, { "-p", "region=us", "-p", "other=y" }).status)
    -- an env() value it reads
    local r = run(dir, { "-p", "region=us" }, { CACHE_SPEC_FLAVOUR = "spicy" })
    assert.same("ok", r.status)
    assert.same("spicy", r.result.flavour)
    assert.same("up_to_date", run(dir, { "-p", "region=us" }, { CACHE_SPEC_FLAVOUR = "spicy" }).status)
    -- the function's body
    assert(fs.write(dir .. "/deploy.lua", (PIPELINE:gsub('"plain"', '"vanilla"'))))
    r = run(dir, { "-p", "region=us" }, { CACHE_SPEC_FLAVOUR = "spicy" })
    assert.same("ok", r.status)
    assert.same(5, runs(dir))
  end)

  it("mtimes, excluded files and unselected files do not count; a new input file does", function()
    local dir = project()
    assert.same("ok", run(dir).status)
    assert.same(0, proc.run({ "touch", "-d", "2001-01-01", dir .. "/src/main.c", dir .. "/Dockerfile" }).code)
    assert.same("up_to_date", run(dir).status)
    assert(fs.write(dir .. "/src/debug.log", "other noise\n"))
    assert(fs.write(dir .. "/README", "not an input\n"))
    assert.same("up_to_date", run(dir).status)
    assert(fs.write(dir .. "/src/extra.h", "#define X 1\n"))
    assert.same("ok", run(dir).status)
  end)

  it("--force, --no-cache and --force=TASK run it again; --force=nosuch is exit 2", function()
    local dir = project()
    assert.same("ok", run(dir).status)
    assert.same("ok", run(dir, { "--force" }).status)
    assert.same("ok", run(dir, { "--no-cache" }).status)
    assert.same("ok", run(dir, { "--force=build" }).status)
    assert.same("up_to_date", run(dir, { "--force=ship" }).status)
    assert.same(4, runs(dir))
    local r = H.run(dir, { "run", "--force=biuld" })
    assert.same(2, r.code)
    assert.matches("no task 'biuld'.*build", r.stderr)
  end)

  it("a failed run leaves no key that later matches", function()
    local dir = project(PIPELINE:gsub('task%("ship", { needs = "build" }, function%(p%) end%)',
      'task("ship", { needs = "build" }, function(p) if env("CACHE_SPEC_FAIL", "") ~= "" then error("boom") end end)'))
    local r = run(dir, {}, { CACHE_SPEC_FAIL = "1" })
    assert.same(1, r.code)
    assert.same("ok", r.status)          -- build itself succeeded, the release did not
    r = run(dir)
    assert.same("ok", r.status)
    assert.same("up_to_date", run(dir).status)
    assert.same(2, runs(dir))
  end)

  it("a task that fails records no key", function()
    local dir = project([[
task("build", { inputs = { "src/**" }, cache = true }, function()
  local n = tonumber(fs.read("runs.txt") or "0") + 1
  fs.write("runs.txt", tostring(n))
  if n == 1 then error("first time fails") end
end)
]])
    assert.same(1, run(dir).code)
    assert.same("ok", run(dir).status)
    assert.same("up_to_date", run(dir).status)
  end)

  it("caches each item of a matrix on its own", function()
    local dir = project([[
task("build", { matrix = { "api", "web" }, inputs = { "src/**" }, cache = true }, function(item)
  fs.write("ran-" .. item, "yes")
  return item
end)
]])
    local r = run(dir)
    assert.same({ ok = 2 }, (function()
      local n = {}
      for _, s in pairs(r.statuses) do n[s] = (n[s] or 0) + 1 end
      return n
    end)())
    assert(fs.remove(dir .. "/ran-api"))
    r = run(dir, { "--force=build" })
    assert.same("ok", r.statuses["build[api]"])
    r = run(dir)
    assert.same("up_to_date", r.statuses["build[api]"])
    assert.same("up_to_date", r.statuses["build[web]"])
    assert.matches("keep build .*up to date", plan(dir).stdout)
  end)

  it("plan says up to date, or why not", function()
    local dir = project()
    local p = plan(dir)
    assert.same(0, p.code, p.stderr)
    assert.matches("run  build .*not up to date: no previous successful run", p.stdout)
    assert.same(0, run(dir).code)
    p = plan(dir)
    assert.matches("keep build .*up to date", p.stdout)
    assert.matches("1 to run, 0 skipped, 1 up to date", p.stdout, 1, true)
    assert(fs.write(dir .. "/src/main.c", "changed\n"))
    assert.matches("not up to date: input 'src/%*%*' changed", plan(dir).stdout)
    assert(fs.write(dir .. "/src/main.c", "int main(void) { return 0; }\n"))
    assert.matches("not up to date: parameter 'region' changed", plan(dir, { "-p", "region=us" }).stdout)
    assert.matches("not up to date: %-%-force", plan(dir, { "--force" }).stdout)
    local j = json.decode(H.run(dir, { "plan", "--json" }).stdout)
    assert.is_true(j.tasks[1].up_to_date)
  end)

  it("bad inputs are exit 2 naming file:line", function()
    local cases = {
      { 'task("b", { inputs = "src/**", cache = true }, function() end)', "inputs must be a list of file patterns" },
      { 'task("b", { inputs = { "src/**", 3 }, cache = true }, function() end)', "inputs%[2%] must be a file pattern" },
      { 'task("b", { inputs = { "../secrets/*" }, cache = true }, function() end)', "inputs%[1%] '%.%./secrets/%*' leads out of the pipeline's directory" },
      { 'task("b", { inputs = { "src/../../x" }, cache = true }, function() end)', "inputs%[1%] 'src/%.%./%.%./x' leads out of the pipeline's directory" },
      { 'task("b", { inputs = { "/etc/passwd" }, cache = true }, function() end)', "inputs%[1%] '/etc/passwd': patterns are relative to the pipeline's directory, not absolute" },
      { 'task("b", { inputs = { "src/**" } }, function() end)', "inputs are the files a cached task's key covers: add cache = true" },
      { 'task("b", { cache = "yes" }, function() end)', "cache must be true or false" },
    }
    for _, c in ipairs(cases) do
      local dir = H.project { ["deploy.lua"] = "-- a comment\n" .. c[1] .. "\n" }
      local r = H.run(dir, { "run" })
      assert.same(2, r.code, c[1])
      assert.matches("deploy.lua:2: task 'b': " .. c[2], r.stderr)
    end
  end)
end)
