-- docs/meta/*.lua (the LuaLS stubs editors read) against the runtime, both
-- ways: every public function and method a script can reach has a stub,
-- and every function a stub declares exists.
--
-- Names are written the way a script reaches them: `docker.stack.deploy`,
-- `parallel.map`; methods by their LuaLS class, `slipway.Task:join`; a
-- callable global or module as `sh()`. The stubs follow the same rule:
-- `function docker.stack.deploy(...)`, `function Task:join()` after
-- `---@class slipway.Task` / `local Task = {}`, `function spawn(...)`, and
-- `---@overload` on `sh = {}` for a callable module.
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

-- Modules a script reaches other than through the globals of
-- lua/prelude.lua: by require, or through another module's results.
local ALSO_PUBLIC = { "slipway.signal", "slipway.docker.image", "slipway.secret" }

-- The runtime's own modules, which scripts do not use: the command line,
-- the pipeline machinery and reporters, and the pieces behind compose and
-- docker. Every other slipway.* module must be public (and stubbed).
local INTERNAL = {
  "^slipway%._", "^slipway%.cli$", "^slipway%.cmd%.", "^slipway%.pipeline%.",
  "^slipway%.reporters%.", "^slipway%.events$", "^slipway%.timeline$", "^slipway%.prelude$",
  "^slipway%.term$", "^slipway%.version$", "^slipway%.compose%.",
  "^slipway%.docker%.client$", "^slipway%.docker%.convert$", "^slipway%.docker%.ssh$",
  "^slipway%.docker%.contexts$", "^slipway%.docker%.credentials$", "^slipway%.sandbox%.",
  "^slipway%.release$", "^slipway%.guard$", "^slipway%.words$", "^slipway%.caller$",
}

-- Objects that public functions return, reached without I/O, under their
-- LuaLS class. (C userdata classes are found in the registry by their
-- metatable's name.)
local OBJECTS = {
  ["slipway.docker.Client"] = function()
    return require("slipway.docker").client({ host = "unix:///nonexistent/docker.sock" })
  end,
}

-- Internal helpers that still have public names, in files being rewritten
-- elsewhere; they are to become `_`-named there. Listed so that they need
-- no stub; each must still exist, so a rename shows up here as a stale
-- entry to delete.
local AWAITING_RENAME = {
  "docker.stack.same", "docker.stack.service_state",
  "slipway.docker.Client:negotiate",
}

-- Lua 5.4's own globals: anything else a fresh runtime defines is ours.
local LUA_GLOBALS = {}
for name in ([[_G _VERSION arg assert collectgarbage coroutine debug dofile error
    getmetatable io ipairs load loadfile math next os package pairs pcall print rawequal
    rawget rawlen rawset require select setmetatable string table tonumber tostring type
    utf8 warn xpcall]]):gmatch("%S+") do
  LUA_GLOBALS[name] = true
end

local function read(path)
  return assert(fs.read(repo.ROOT .. "/" .. path))
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

---------------------------------------------------------------- stubs

-- The function names the stubs declare: name -> "docs/meta/file.lua".
local function stub_names()
  local names = {}
  for _, file in ipairs(assert(fs.list(repo.ROOT .. "/docs/meta"))) do
    if file:match("%.lua$") then
      local path = "docs/meta/" .. file
      local class_of = {}          -- local Task = {} after ---@class slipway.Task
      local class, callable = nil, false
      for line in read(path):gmatch("[^\n]*") do
        local var = line:match("^local%s+([%w_]+)%s*=%s*{%s*}") or line:match("^([%w_][%w_.]*)%s*=%s*{%s*}")
        if var then
          if class then class_of[var] = class end
          if callable then names[var .. "()"] = path end
        end
        local fname = line:match("^function%s+([%w_.:]+)%s*%(")
        if fname then
          local obj, method = fname:match("^([%w_]+):([%w_]+)$")
          if obj then
            assert(class_of[obj], path .. ": " .. fname .. ": a method of a table with no ---@class")
            fname = class_of[obj] .. ":" .. method
          elseif not fname:find(".", 1, true) then
            fname = fname .. "()"
          end
          names[fname] = path
        end
        -- annotations bind to the statement right after them
        class = line:match("^%-%-%-@class%s+([%w_.]+)") or (line:match("^%-%-%-") and class) or nil
        callable = line:match("^%-%-%-@overload") ~= nil or (line:match("^%-%-%-") ~= nil and callable)
      end
    end
  end
  return names
end

---------------------------------------------------------------- runtime

-- prelude's lazy globals: { global name = module name } for the modules
-- that exist.
local function prelude_modules()
  local block = read("lua/prelude.lua"):match("local lazy = (%b{})")
  assert(block, "lua/prelude.lua: no `local lazy = { ... }` table")
  local mods = {}
  for global, modname in block:gmatch('([%w_]+)%s*=%s*"(slipway%.[%w_.]+)"') do
    if package.preload[modname] then mods[global] = modname end
  end
  return mods
end

local function is_internal(modname)
  for _, pattern in ipairs(INTERNAL) do
    if modname:match(pattern) then return true end
  end
  return false
end

-- Everything public the runtime has: name -> the function (true for a
-- callable), and the modules that were walked.
local function runtime_names()
  local found, reached = {}, {}

  local function walk(t, prefix, seen)
    if seen[t] then return end
    seen[t] = true
    reached[t] = true
    local mt = getmetatable(t)
    if mt and mt.__call then found[prefix .. "()"] = true end
    if mt and type(mt.__index) == "function" then
      -- submodules loaded on first use (docker.stack): touch each one
      local parent = "slipway." .. prefix .. "."
      for modname in pairs(package.preload) do
        local sub = modname:sub(1, #parent) == parent and modname:sub(#parent + 1)
        if sub and sub:match("^[%a][%w_]*$") then local _ = t[sub] end
      end
    end
    for k, v in pairs(t) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" then
        if type(v) == "function" then
          found[prefix .. "." .. k] = v
        elseif type(v) == "table" then
          walk(v, prefix .. "." .. k, seen)
        end
      end
    end
  end

  local function walk_module(name, modname)
    walk(require(modname), name, {})
  end
  for global, modname in pairs(prelude_modules()) do walk_module(global, modname) end
  for _, modname in ipairs(ALSO_PUBLIC) do walk_module((modname:gsub("^slipway%.", "")), modname) end

  local function methods(class, index)
    for k, v in pairs(index) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then
        found[class .. ":" .. k] = v
      end
    end
  end
  for class, new in pairs(OBJECTS) do methods(class, getmetatable(new()).__index) end
  for name, mt in pairs(debug.getregistry()) do
    if type(name) == "string" and name:match("^slipway%.") and type(mt) == "table" then
      local index = type(mt.__index) == "table" and mt.__index or mt.methods
      if type(index) == "table" then methods(name, index) end
    end
  end

  -- The pipeline file's own globals: task(name, opts, fn) and param.*.
  local dir = assert(fs.tempdir("slipway-meta-"))
  assert(fs.write(dir .. "/deploy.lua", 'task("t", function() end)\n'))
  local path = package.path
  local def = require("slipway.pipeline.dsl").load(dir .. "/deploy.lua")
  package.path = path
  assert(fs.remove(dir, { recursive = true }))
  if getmetatable(def.env.task).__call then found["task()"] = true end
  for kind, f in pairs(def.params.api) do found["param." .. kind] = f end

  local walked = {}
  for modname, value in pairs(package.loaded) do
    if reached[value] then walked[modname] = true end
  end
  return found, walked
end

-- The globals a fresh runtime defines (spawn, sleep): those are not seen
-- from here, where busted has added its own.
local function runtime_globals(found)
  local r = assert(proc.run({ assert(os.getenv("SLIPWAY"), "run through tests/run"), "-e",
    "for k, v in pairs(_G) do print(k, type(v)) end" }, { stdout = "capture" }))
  assert.same(0, r.code)
  for name, kind in r.stdout:gmatch("([^\t\n]+)\t([^\n]+)") do
    if not LUA_GLOBALS[name] then
      assert.same("function", kind, "a global that is not a function: " .. name)
      found[name .. "()"] = true
    end
  end
end

-- Modules are loaded here, outside the tests: loading one opens what it
-- keeps for the process's life, which the leak checks would count.
local found, walked = runtime_names()
local stubs = stub_names()

describe("docs/meta", function()
  leaks.check()

  it("has a stub for every public function and method", function()
    runtime_globals(found)
    local awaiting = {}
    for _, name in ipairs(AWAITING_RENAME) do awaiting[name] = true end
    -- A module function reachable under several names (docker.build is
    -- docker.image.build) needs one stub.
    local stubbed_fns = {}
    for name, f in pairs(found) do
      if stubs[name] and type(f) == "function" and not name:find(":", 1, true) then
        stubbed_fns[f] = true
      end
    end
    local missing = {}
    for name, f in pairs(found) do
      local aliased = type(f) == "function" and stubbed_fns[f] and not name:find(":", 1, true)
      if not stubs[name] and not awaiting[name] and not aliased then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("declares no function that does not exist", function()
    runtime_globals(found)
    local unknown = {}
    for _, name in ipairs(sorted(stubs)) do
      if found[name] == nil then unknown[#unknown + 1] = stubs[name] .. ": " .. name end
    end
    assert.same({}, unknown)
  end)

  it("knows every slipway module as public or internal", function()
    local unclassified = {}
    for _, modname in ipairs(sorted(package.preload)) do
      if modname:match("^slipway%.") and not walked[modname] and not is_internal(modname) then
        unclassified[#unclassified + 1] = modname
      end
    end
    assert.same({}, unclassified)
  end)

  it("lists only internal names that still exist and have no stub", function()
    local stale = {}
    for _, name in ipairs(AWAITING_RENAME) do
      if found[name] == nil or stubs[name] then stale[#stale + 1] = name end
    end
    assert.same({}, stale)
  end)

  it("reads method classes and callables from the stubs", function()
    assert.same("docs/meta/task.lua", stubs["slipway.Task:join"])
    assert.same("docs/meta/sh.lua", stubs["sh()"])
    assert.same("docs/meta/globals.lua", stubs["spawn()"])
    assert.same("docs/meta/docker.lua", stubs["docker.stack.deploy"])
  end)
end)
