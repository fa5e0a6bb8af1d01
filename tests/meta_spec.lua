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
  "^slipway%.docker%.client$", "^slipway%.docker%.convert$", "^slipway%.pulumi%.",
  "^slipway%.docker%.converge$", "^slipway%.docker%.registry$", "^slipway%.docker%.spec_diff$",
  "^slipway%.docker%.ssh$", "^slipway%.docker%.contexts$", "^slipway%.docker%.housekeeping$", "^slipway%.docker%.credentials$", "^slipway%.sandbox%.",
  "^slipway%.release$", "^slipway%.guard$", "^slipway%.words$", "^slipway%.caller$",
  "^slipway%.vercel%.",
  "^slipway%.ledger$", "^slipway%.ledger%.", "^slipway%.docker%.ledger_store$",
  "^slipway%.dotenv$",
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
    -- (the userdata of internal modules, slipway._x.Class, are theirs)
    if type(name) == "string" and name:match("^slipway%.") and not name:match("^slipway%._") and type(mt) == "table" then
      local index = type(mt.__index) == "table" and mt.__index or mt.methods
      if type(index) == "table" then methods(name, index) end
    end
  end

  -- The pipeline file's own globals: task(name, opts, fn), param.* and
  -- pipeline{...}.
  local dir = assert(fs.tempdir("slipway-meta-"))
  assert(fs.write(dir .. "/deploy.lua", 'task("t", function() end)\n'))
  local path = package.path
  local def = require("slipway.pipeline.dsl").load(dir .. "/deploy.lua")
  package.path = path
  assert(fs.remove(dir, { recursive = true }))
  if getmetatable(def.env.task).__call then found["task()"] = true end
  for kind, f in pairs(def.params.api) do found["param." .. kind] = f end
  if type(def.env.pipeline) == "function" then found["pipeline()"] = true end

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

---------------------------------------------------------------- options

-- Where the code lists the options a function accepts (the arrays C
-- natives pass to sw_check_options, the lists Lua passes to
-- caller.check_options / unknown_option / docker's check_opts) when the
-- check does not name that function literally (those are found by
-- all_option_lists), and the stubs that describe them: an options ---@class (its fields, with those
-- of the classes it extends) or a function whose `opts` parameter (or the
-- one named after ':') is an inline table type. Both must name the same
-- options.
local OPTION_LISTS = {
  { "src/base64.c", "allowed", { "base64.encode" } },
  { "src/hash.c", "allowed", { "hash.sha256", "hash.sha1" } },
  { "src/http.c", "request_options", { "slipway.HttpOptions" } },
  { "src/proc.c", "run_options", { "slipway.ProcOptions" } },
  { "src/yaml.c", "decode_opts", { "yaml.decode", "yaml.decode_all" } },
  { "lua/git.lua", "OPTIONS", { "git.sha", "git.short_sha", "git.branch", "git.head" } },
  { "lua/parallel.lua", "OPTIONS", { "slipway.ParallelOptions" } },
  { "lua/pipeline/dsl.lua", "TASK_OPTIONS", { "slipway.TaskOptions" } },
  { "lua/pipeline/dsl.lua", "PIPELINE_OPTIONS", { "slipway.PipelineOptions" } },
  { "lua/secrets.lua", "OPTIONS", { "slipway.SecretOptions" } },
  { "lua/context.lua", "CHANGE_ORDER", { "context.add_change:change" } },
  { "stdlib/sh.lua", "OPTIONS", { "slipway.ShOptions" } },
  { "stdlib/compose/init.lua", "LOAD_OPTS", { "slipway.compose.LoadOptions" } },
  { "stdlib/docker/image.lua", "build_opts", { "slipway.docker.BuildOptions" } },
  { "stdlib/docker/image.lua", "push_opts", { "slipway.docker.PushOptions" } },
  { "stdlib/docker/image.lua", "inspect_opts", { "docker.inspect", "docker.exists" } },
  { "stdlib/docker/image.lua", "rm_opts", { "slipway.docker.RmImageOptions" } },
  { "stdlib/docker/service.lua", "create_opts", { "slipway.docker.ServiceWriteOptions" } },
  { "stdlib/docker/service.lua", "update_opts", { "slipway.docker.ServiceUpdateOptions" } },
  { "stdlib/docker/service.lua", "inspect_opts", { "docker.service.inspect", "docker.service.find" } },
  { "stdlib/docker/service.lua", "logs_opts", { "slipway.docker.LogsOptions" } },
  { "stdlib/docker/service.lua", "scale_opts", { "slipway.docker.ScaleOptions" } },
  { "stdlib/docker/housekeeping.lua", "prune_opts", { "slipway.docker.PruneOptions" } },
  { "stdlib/docker/node.lua", "update_opts", { "slipway.docker.NodeUpdateOptions" } },
  { "stdlib/docker/stack.lua", "deploy_opts", { "slipway.docker.DeployOptions" } },
  { "stdlib/docker/stack.lua", "restore_opts", { "slipway.docker.RestoreOptions" } },
  { "stdlib/docker/swarm.lua", "object_opts", { "slipway.docker.SwarmObjectOptions" } },
}

-- Option lists of internal functions, and the generic check helpers'
-- own parameters: no stub describes them.
local INTERNAL_OPTION_LISTS = {
  ["src/docker.c tar_opts"] = "slipway._docker.tar_context",
  ["src/vercel.c scan_opts"] = "slipway._vercel.scan",
  ["src/vercel.c tgz_opts"] = "slipway._vercel.tgz",
  ["stdlib/docker/client.lua names"] = "check_opts passes its caller's list on",
  ["stdlib/docker/client.lua allowed"] = "(the definition of check_opts itself)",
  ["stdlib/pulumi/init.lua allowed"] = "prepare passes its caller's list on",
  ["stdlib/vercel/init.lua allowed"] = "check_table passes its caller's list on",
}

-- Differences found, to be settled in files being rewritten elsewhere (to
-- clean after merge): "target option" -> why. Each must still differ.
local KNOWN_OPTION_GAPS = {
  ["slipway.docker.BuildOptions auth"] = "docker.build accepts auth and ignores it (it sends every config.json credential)",
}

-- Options classes the code does not check against a list (yet): each must
-- exist; remove an entry once its options are checked.
local UNCHECKED_OPTIONS_CLASSES = {
  ["slipway.docker.RequestOptions"] = "Client:raw reads known keys and ignores others",
  ["slipway.docker.CallOptions"] = "Client:call passes them to Client:raw",
  ["slipway.docker.ClientOptions"] = "docker.client reads known keys",
  ["slipway.ProbeAllOptions"] = "probe.all checks its policy fields, not against a list",
  -- checked against lists these checks cannot read: passed on through a
  -- module's own helper (INTERNAL_OPTION_LISTS), or a set of keys
  ["slipway.PulumiStackOptions"] = "pulumi's prepare checks them against STACK, built with list()",
  ["slipway.PulumiOptions"] = "pulumi's prepare checks them against OPERATION, built with list()",
  ["slipway.PulumiUpOptions"] = "pulumi's prepare checks them against UP, built with list()",
  ["slipway.VercelDeployOptions"] = "vercel's check_table checks them against DEPLOY_OPTS",
  ["slipway.VercelPromoteOptions"] = "vercel's check_table checks them against a list built in move()",
  ["slipway.VercelRollbackOptions"] = "vercel's check_table checks them against a list built in move()",
  ["slipway.SecretParamOptions"] = "param.secret checks them against SECRET_OPTIONS, a set (lua/pipeline/params.lua)",
}

-- The option lists the code passes to its checks: { ["path name"] =
-- the function name the check is given when it is a literal, else true };
-- an inline set(...) is named by that function name.
local function code_option_lists()
  local found = {}
  local function add(path, name, fname)
    local literal = fname and fname:match('^"([^"]+)"$')
    found[path .. " " .. name] = literal or found[path .. " " .. name] or true
  end
  local function scan(path)
    local text = read(path)
    if path:match("%.c$") then
      for fname, name in text:gmatch("sw_check_options%(L,%s*[^,]+,%s*([^,]+),%s*([%w_]+)%)") do
        add(path, name, fname)
      end
    else
      for fname, name in text:gmatch("check_options%(%s*([^,()]+),%s*[^,()]+,%s*([%w_]+)%s*%)") do
        add(path, name, fname)
      end
      for name in text:gmatch("unknown_option%(%s*[^,()]+,%s*([%w_]+)%s*%)") do
        add(path, name)
      end
      for fname, name in text:gmatch("check_opts%(%s*([^,()]+),%s*[^,()]+,%s*([%w_]+)%s*%)") do
        add(path, name, fname)
      end
      for fname in text:gmatch('check_opts%(%s*"([^"]+)",%s*[^,()]+,%s*set%(') do
        if not fname:find("%._") then add(path, fname, '"' .. fname .. '"') end
      end
    end
  end
  local r = assert(proc.run({ "git", "-C", repo.ROOT, "ls-files", "src/*.c", "lua/*.lua", "stdlib/*.lua" }))
  for path in r.stdout:gmatch("[^\n]+") do
    if path ~= "src/options.c" and path ~= "src/caller.c" then scan(path) end
  end
  return found
end

-- OPTION_LISTS, and every other list whose check names its function
-- literally (sw_check_options(L, 2, "proc.kill_all", ...)), checked against
-- that function's stub.
local function all_option_lists()
  local all, listed = {}, {}
  for _, entry in ipairs(OPTION_LISTS) do
    all[#all + 1] = entry
    listed[entry[1] .. " " .. entry[2]] = true
  end
  local extra = {}
  for key, fname in pairs(code_option_lists()) do
    if not listed[key] and not INTERNAL_OPTION_LISTS[key] and fname ~= true then
      local path, name = key:match("^(%S+) (.+)$")
      extra[#extra + 1] = { path, name, { fname } }
    end
  end
  table.sort(extra, function(a, b) return a[1] .. a[2] < b[1] .. b[2] end)
  for _, entry in ipairs(extra) do all[#all + 1] = entry end
  return all
end

-- The names a code list holds: a C array, a Lua list, a Lua set("a", ...),
-- or the inline set(...) given to the check of function `name`.
local function code_list(path, name)
  local text = read(path)
  local body = text:match(name .. "%[%]%s*=%s*(%b{})")
    or text:match("local%s+" .. name .. "%s*=%s*(%b{})")
    or text:match("local%s+" .. name .. "%s*=%s*set(%b())")
    or text:match('check_opts%(%s*"' .. name:gsub("%p", "%%%0") .. '",%s*[^,()]+,%s*set(%b())')
  assert(body, path .. ": no option list " .. name)
  local names = {}
  for option in body:gmatch('"([^"]+)"') do names[#names + 1] = option end
  table.sort(names)
  return names
end

-- From the stubs: the options classes { name = {fields = set, parent} }
-- and each function's parameter types { ["proc.run"] = {opts = "..."} }.
local function stub_options()
  local classes, params = {}, {}
  for _, file in ipairs(assert(fs.list(repo.ROOT .. "/docs/meta"))) do
    if file:match("%.lua$") then
      local path = "docs/meta/" .. file
      local class_of, current, pending = {}, nil, {}
      for line in read(path):gmatch("[^\n]*") do
        local cname, parent = line:match("^%-%-%-@class%s+([%w_.]+)%s*:?%s*([%w_.]*)")
        if cname then
          current = { fields = {}, parent = parent ~= "" and parent or nil, file = path }
          classes[cname] = current
          pending.class = cname
        elseif line:match("^%-%-%-@field") and current then
          local field = line:match("^%-%-%-@field%s+([%w_]+)")
          if field then current.fields[field] = true end
        elseif line:match("^%-%-%-@param") then
          local pname, ptype = line:match("^%-%-%-@param%s+([%w_]+)%??%s+(.*)$")
          if pname then pending[pname] = ptype end
        elseif not line:match("^%-%-%-") then
          current = nil
          local var = line:match("^local%s+([%w_]+)%s*=%s*{%s*}")
          if var and pending.class then class_of[var] = pending.class end
          local fname = line:match("^function%s+([%w_.:]+)%s*%(")
          if fname then
            local obj, method = fname:match("^([%w_]+):([%w_]+)$")
            if obj and class_of[obj] then fname = class_of[obj] .. ":" .. method end
            pending.class = nil
            params[fname] = pending
          end
          pending = {}
        end
      end
    end
  end
  return classes, params
end

-- The top-level keys of an inline table type "{a?: T, b: {c: U}}".
local function inline_keys(ty)
  local body = ty:match("^(%b{})")
  local keys, depth, start = {}, 0, 2
  body = body:sub(1, -2) .. ","
  for i = 2, #body do
    local c = body:sub(i, i)
    if c == "{" or c == "(" or c == "<" or c == "[" then depth = depth + 1
    elseif c == "}" or c == ")" or c == ">" or c == "]" then depth = depth - 1
    elseif c == "," and depth == 0 then
      local key = body:sub(start, i - 1):match("^%s*([%w_]+)%??%s*:")
      if key then keys[#keys + 1] = key end
      start = i + 1
    end
  end
  table.sort(keys)
  return keys
end

-- The option names a stub describes: target "slipway.ProcOptions" (a
-- class) or "proc.run" / "context.add_change:change" (a function's
-- parameter; default opts). -> sorted names, or nil and why.
local function stub_list(classes, params, target)
  local function fields_of(cname)
    local names, seen = {}, {}
    while cname do
      local c = classes[cname]
      if not c then return nil end
      for f in pairs(c.fields) do
        if not seen[f] then seen[f], names[#names + 1] = true, f end
      end
      cname = c.parent
    end
    table.sort(names)
    return names
  end
  if classes[target] then return fields_of(target) end
  local fname, pname = target:match("^([^:]+):?(.*)$")
  local p = params[fname]
  if not p then return nil, "no stub for " .. fname end
  local ty = p[pname ~= "" and pname or "opts"]
  if not ty then return nil, fname .. ": no parameter " .. (pname ~= "" and pname or "opts") end
  if ty:match("^{") then return inline_keys(ty) end
  local cname = ty:match("^([%w_.]+)")
  local names = cname and fields_of(cname)
  if not names then return nil, fname .. ": the type of its options is neither a class nor an inline table" end
  return names
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

  it("describes exactly the options the code accepts", function()
    local classes, params = stub_options()
    local wrong, gaps_seen = {}, {}
    for _, entry in ipairs(all_option_lists()) do
      local path, name, targets = entry[1], entry[2], entry[3]
      local accepted = code_list(path, name)
      for _, target in ipairs(targets) do
        local described, why = stub_list(classes, params, target)
        if not described then
          wrong[#wrong + 1] = why
        else
          local in_code, in_stub = {}, {}
          for _, n in ipairs(accepted) do in_code[n] = true end
          for _, n in ipairs(described) do in_stub[n] = true end
          for _, n in ipairs(accepted) do
            if not in_stub[n] and KNOWN_OPTION_GAPS[target .. " " .. n] then
              gaps_seen[target .. " " .. n] = true
            elseif not in_stub[n] then
              wrong[#wrong + 1] = ("%s: option '%s' (accepted by %s %s) has no definition"):format(target, n, path, name)
            end
          end
          for _, n in ipairs(described) do
            if not in_code[n] and KNOWN_OPTION_GAPS[target .. " " .. n] then
              gaps_seen[target .. " " .. n] = true
            elseif not in_code[n] then
              wrong[#wrong + 1] = ("%s: option '%s' is defined but %s %s does not accept it"):format(target, n, path, name)
            end
          end
        end
      end
    end
    for gap in pairs(KNOWN_OPTION_GAPS) do
      if not gaps_seen[gap] then wrong[#wrong + 1] = "settled, remove from KNOWN_OPTION_GAPS: " .. gap end
    end
    assert.same({}, wrong)
  end)

  it("knows every option list of the code and every options class of the stubs", function()
    local listed = {}
    for _, entry in ipairs(OPTION_LISTS) do listed[entry[1] .. " " .. entry[2]] = true end
    local unknown = {}
    for key, fname in pairs(code_option_lists()) do
      -- (a check that names its function literally is checked against its stub)
      if not listed[key] and not INTERNAL_OPTION_LISTS[key] and fname == true then unknown[#unknown + 1] = key end
    end
    table.sort(unknown)
    assert.same({}, unknown)
    -- and every listed one is still there
    local lists = code_option_lists()
    local stale = {}
    for key in pairs(listed) do
      if not lists[key] then stale[#stale + 1] = key end
    end
    for key in pairs(INTERNAL_OPTION_LISTS) do
      if not lists[key] then stale[#stale + 1] = key end
    end
    table.sort(stale)
    assert.same({}, stale)

    local classes = stub_options()
    local described = {}
    for _, entry in ipairs(all_option_lists()) do
      for _, target in ipairs(entry[3]) do described[target] = true end
    end
    -- a class another described class extends is described through it
    for cname in pairs(described) do
      local c = classes[cname]
      while c and c.parent do described[c.parent], c = true, classes[c.parent] end
    end
    local unchecked = {}
    for cname in pairs(classes) do
      if cname:match("Options$") and not described[cname] and not UNCHECKED_OPTIONS_CLASSES[cname] then
        unchecked[#unchecked + 1] = cname
      end
    end
    for cname in pairs(UNCHECKED_OPTIONS_CLASSES) do
      if not classes[cname] then unchecked[#unchecked + 1] = "stale: " .. cname end
    end
    table.sort(unchecked)
    assert.same({}, unchecked)
  end)

  it("reads option lists from C, Lua and the stubs", function()
    assert.same({ "excludes", "out" }, code_list("src/docker.c", "tar_opts"))
    assert.same({ "limit" }, code_list("lua/parallel.lua", "OPTIONS"))
    assert.same({ "client", "wait" }, code_list("stdlib/docker/stack.lua", "docker.stack.rm"))
    local lists = code_option_lists()
    assert.same("fs.stat", lists["src/fs.c stat_options"])                  -- named literally: checked by name
    assert.same("docker.stack.rm", lists["stdlib/docker/stack.lua docker.stack.rm"])
    assert.is_true(lists["src/proc.c run_options"])                        -- named by a variable
    local auto = {}
    for _, entry in ipairs(all_option_lists()) do auto[entry[1] .. " " .. entry[2]] = entry[3][1] end
    assert.same("fs.remove", auto["src/fs.c remove_options"])
    assert.same({ "a", "b", "c" }, inline_keys("{a?: boolean, b: {x: integer, y?: string}, c?: fun(a: integer, b: string)}"))
    local classes, params = stub_options()
    assert.same({ "cancel_signal", "check", "cwd", "env", "env_clear", "kill_grace", "max_output", "stderr", "stdin",
      "stdout", "timeout" }, (stub_list(classes, params, "slipway.ShOptions")))
    assert.same({ "follow" }, (stub_list(classes, params, "fs.stat")))
  end)

  it("reads method classes and callables from the stubs", function()
    assert.same("docs/meta/task.lua", stubs["slipway.Task:join"])
    assert.same("docs/meta/sh.lua", stubs["sh()"])
    assert.same("docs/meta/globals.lua", stubs["spawn()"])
    assert.same("docs/meta/docker.lua", stubs["docker.stack.deploy"])
  end)
end)
