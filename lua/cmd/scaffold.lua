-- `slipway init [DIR]` (this file is not lua/cmd/init.lua: that would be
-- the package slipway.cmd): scaffold a deploy.lua for an existing repository
-- from what it holds: a compose file (the stack and its services), the
-- Dockerfiles (a build matrix), a frontend (package.json or vercel.json: a
-- Vercel step), Pulumi.yaml (a Pulumi step) and a test target (Makefile,
-- pyproject.toml, package.json: the quality gate). Also writes .luarc.json
-- so that editors complete slipway's API (the stubs `slipway version
-- --meta` names). The result plans at once: everything that does I/O is
-- inside task functions.
local words = require("slipway.words")

local M = {}

M.help = [[
usage: slipway init [DIR] [--force] [--stack NAME]

Look at the repository in DIR (default: the current directory) and write
DIR/deploy.lua: a quality gate (a Makefile test/check target, pytest in
pyproject.toml, an npm test script), a build matrix of the Dockerfiles'
directories (images pushed to the `registry` parameter), Pulumi for each
Pulumi.yaml, a Swarm stack deploy of the compose file, and a Vercel deploy
of the frontend (vercel.json, or a package.json that builds a web app).
Also writes DIR/.luarc.json pointing the Lua language server at slipway's
editor stubs. Then `slipway plan` shows what a run would do.

  --force        overwrite an existing deploy.lua (and .luarc.json)
  --stack NAME   the stack's name (default: the directory's name)

Exit codes: 0 written, 1 deploy.lua exists (without --force) or cannot be
written, 2 bad usage.
]]

-- Directories never looked into.
local SKIP_DIRS = {
  [".git"] = true, node_modules = true, [".venv"] = true, venv = true, vendor = true,
  __pycache__ = true, dist = true, build = true, target = true, [".slipway"] = true,
  [".next"] = true, [".vercel"] = true, [".pulumi"] = true,
}
local MAX_DEPTH = 4
local MAX_ENTRIES = 20000

-- Frameworks whose package.json makes a directory a web frontend.
local FRONTEND_DEPS = { "next", "react", "vue", "svelte", "@sveltejs/kit", "vite", "nuxt", "astro",
                        "@angular/core", "solid-js", "gatsby" }

---------------------------------------------------------------- looking

-- Every file under root (relative paths, sorted), skipping SKIP_DIRS and
-- hidden directories, at most MAX_DEPTH deep.
local function files_under(root)
  local fs = require("slipway.fs")
  local found, seen = {}, 0
  local function walk(rel, depth)
    local names = fs.list(rel == "" and root or (root .. "/" .. rel)) or {}
    table.sort(names)
    for _, name in ipairs(names) do
      seen = seen + 1
      if seen > MAX_ENTRIES then return end
      local path = rel == "" and name or (rel .. "/" .. name)
      local st = fs.stat(root .. "/" .. path)
      if st and st.type == "directory" then
        if depth < MAX_DEPTH and not SKIP_DIRS[name] and name:sub(1, 1) ~= "." then walk(path, depth + 1) end
      elseif st and st.type == "file" then
        found[#found + 1] = path
      end
    end
  end
  walk("", 1)
  return found
end

local function dir_of(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function base_of(path)
  return path:match("([^/]*)$")
end

local function fs_exists(root, path)
  return require("slipway.fs").exists(root .. "/" .. path)
end

local function read(root, path)
  return require("slipway.fs").read(root .. "/" .. path)
end

-- A name fit for images and stacks: lower case, [a-z0-9_-].
local function slug(s)
  s = s:lower():gsub("[^%w_-]+", "-"):gsub("^[-_]+", ""):gsub("[-_]+$", "")
  return s ~= "" and s or "app"
end

local function is_compose_file(name)
  return name:match("^docker%-compose[%w._-]*%.ya?ml$") or name:match("^compose[%w._-]*%.ya?ml$")
end

-- The compose file to deploy: at the top first, then the shortest path;
-- override files (merged by `docker compose`, never by `docker stack`) last.
local function pick_compose(files)
  local list = {}
  for _, f in ipairs(files) do
    if is_compose_file(base_of(f)) then list[#list + 1] = f end
  end
  local function rank(f)
    local depth = select(2, f:gsub("/", ""))
    return depth * 10 + (f:find("override", 1, true) and 5 or 0) + (f:find("dev", 1, true) and 3 or 0)
  end
  table.sort(list, function(a, b)
    local ra, rb = rank(a), rank(b)
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return list[1], list
end

-- The variables a text interpolates: ${NAME...} and $NAME, sorted.
local function variables(text)
  local set = {}
  for name in text:gmatch("%${([%a_][%w_]*)") do set[name] = true end
  for name in text:gmatch("%$([%a_][%w_]*)") do set[name] = true end
  local list = {}
  for name in pairs(set) do list[#list + 1] = name end
  table.sort(list)
  return list
end

local function load_compose(root, path)
  local ok, compose = pcall(require, "slipway.compose")
  if not ok then return nil, tostring(compose) end
  -- An empty environment: what is found must not depend on the shell init
  -- ran in (defaults in ${VAR:-default} apply).
  local stack, warnings = compose.try_load(root .. "/" .. path, { environ = {} })
  if not stack then return nil, warnings end
  return stack
end

-- A Makefile's targets (names before ':' at the start of a line).
local function make_targets(text)
  local set = {}
  for line in text:gmatch("[^\n]+") do
    local names = line:match("^([%w_.%-][%w_.%- ]*):")
    if names and not line:match("^[^:]*:=") then
      for name in names:gmatch("%S+") do set[name] = true end
    end
  end
  return set
end

-- What the repository holds, as the generator needs it.
function M.survey(root)
  local files = files_under(root)
  local s = { dockerfiles = {}, pulumi = {}, frontends = {}, checks = {}, notes = {} }
  local json = require("slipway.json")

  local compose_file, all_compose = pick_compose(files)
  s.compose_files = all_compose
  if compose_file then
    s.compose = { file = compose_file, services = {}, vars = {} }
    local stack, err = load_compose(root, compose_file)
    if stack then
      for name, svc in pairs(stack.services or {}) do
        local ctx = type(svc.build) == "table" and svc.build.context or nil
        s.compose.services[#s.compose.services + 1] = { name = name, image = svc.image, context = ctx }
      end
      table.sort(s.compose.services, function(a, b) return a.name < b.name end)
    else
      s.notes[#s.notes + 1] = ("%s did not load here: %s"):format(compose_file,
        (tostring(err):gsub("^" .. root:gsub("%p", "%%%0") .. "/", "")))
    end
    s.compose.vars = variables(read(root, compose_file) or "")
  end

  for _, f in ipairs(files) do
    local name = base_of(f)
    if name == "Dockerfile" or name:match("^Dockerfile%.[%w_.-]+$") or name:match("%.[Dd]ockerfile$") then
      s.dockerfiles[#s.dockerfiles + 1] = { dir = dir_of(f), file = name }
    elseif name == "Pulumi.yaml" or name == "Pulumi.yml" then
      local text = read(root, f) or ""
      s.pulumi[#s.pulumi + 1] = { dir = dir_of(f), name = text:match("\nname:%s*([^\n#]-)%s*\n")
        or text:match("^name:%s*([^\n#]-)%s*\n") }
    elseif name == "vercel.json" then
      s.frontends[dir_of(f)] = s.frontends[dir_of(f)] or { dir = dir_of(f), why = "vercel.json" }
    elseif name == "package.json" then
      local ok, pkg = pcall(json.decode, read(root, f) or "")
      if ok and type(pkg) == "table" then
        local deps = {}
        for _, field in ipairs { "dependencies", "devDependencies" } do
          if type(pkg[field]) == "table" then for k in pairs(pkg[field]) do deps[k] = true end end
        end
        local scripts = type(pkg.scripts) == "table" and pkg.scripts or {}
        for _, dep in ipairs(FRONTEND_DEPS) do
          if deps[dep] and scripts.build then
            s.frontends[dir_of(f)] = s.frontends[dir_of(f)] or { dir = dir_of(f), why = "package.json (" .. dep .. ")" }
            break
          end
        end
        if type(scripts.test) == "string" and not scripts.test:find("no test specified", 1, true) then
          s.checks[#s.checks + 1] = { dir = dir_of(f), cmd = "npm test", why = f .. ": scripts.test" }
        end
      end
    elseif (name == "Makefile" or name == "makefile" or name == "GNUmakefile") and dir_of(f) == "." then
      local targets = make_targets(read(root, f) or "")
      for _, t in ipairs { "check", "test", "lint" } do
        if targets[t] then
          table.insert(s.checks, 1, { dir = ".", cmd = "make " .. t, why = f .. ": target " .. t })
          break
        end
      end
    elseif name == "pyproject.toml" then
      local text = read(root, f) or ""
      local runner = (text:find("[tool.uv", 1, true) or fs_exists(root, dir_of(f) .. "/uv.lock")) and "uv run " or ""
      if text:find("[tool.ruff", 1, true) or text:find("\"ruff", 1, true) then
        s.checks[#s.checks + 1] = { dir = dir_of(f), cmd = runner .. "ruff check .", why = f .. ": ruff" }
      end
      if text:find("pytest", 1, true) then
        s.checks[#s.checks + 1] = { dir = dir_of(f), cmd = runner .. (runner == "" and "python3 -m pytest -q" or "pytest -q"),
                                    why = f .. ": pytest" }
      end
    end
  end
  -- A Makefile target covers the rest: `make check` usually runs them.
  if s.checks[1] and s.checks[1].cmd:match("^make ") then s.checks = { s.checks[1] } end
  local fl = {}
  for _, f in pairs(s.frontends) do fl[#fl + 1] = f end
  table.sort(fl, function(a, b) return a.dir < b.dir end)
  s.frontends = fl
  return s
end

---------------------------------------------------------------- writing

local function q(s)
  return '"' .. tostring(s):gsub('[\\"]', "\\%0"):gsub("\n", "\\n"):gsub("%c", function(c)
    return ("\\%03d"):format(c:byte())
  end) .. '"'
end

-- The build matrix: one item per Dockerfile, named after the compose
-- service that builds from its directory, else after the directory.
local function build_items(s, stack_name)
  local by_context = {}
  for _, svc in ipairs(s.compose and s.compose.services or {}) do
    if svc.context then
      local ctx = svc.context:gsub("^%./", ""):gsub("/$", "")
      if ctx == "" then ctx = "." end
      by_context[ctx] = by_context[ctx] or svc.name
    end
  end
  local items, used = {}, {}
  for _, d in ipairs(s.dockerfiles) do
    local ctx = d.dir
    local compose_dir = s.compose and dir_of(s.compose.file) or "."
    local rel = compose_dir == "." and ctx or (ctx:sub(1, #compose_dir + 1) == compose_dir .. "/" and ctx:sub(#compose_dir + 2) or nil)
    local name = (rel and by_context[rel]) or (ctx == "." and stack_name or slug(base_of(ctx)))
    if d.file ~= "Dockerfile" then
      local variant = d.file:gsub("^Dockerfile%.", ""):gsub("%.[Dd]ockerfile$", "")
      if used[name] then name = name .. "-" .. slug(variant) end
    end
    while used[name] do name = name .. "-" .. #items end
    used[name] = true
    items[#items + 1] = { name = name, context = ctx, dockerfile = d.file }
  end
  return items
end

-- The compose variables that name the image tag or the registry.
local function image_vars(vars)
  local tag, registry = {}, {}
  for _, v in ipairs(vars) do
    local u = v:upper()
    if u:find("TAG", 1, true) or u:find("VERSION", 1, true) then tag[#tag + 1] = v
    elseif u:find("REGISTRY", 1, true) or u:find("REPO", 1, true) then registry[#registry + 1] = v end
  end
  return tag, registry
end

function M.generate(s, opts)
  local stack_name = opts.stack
  local out = {}
  local function add(line) out[#out + 1] = line or "" end
  local items = build_items(s, stack_name)
  local found = {}
  if s.compose then found[#found + 1] = s.compose.file end
  if #s.dockerfiles > 0 then found[#found + 1] = words.count(#s.dockerfiles, "Dockerfile") end
  for _, p in ipairs(s.pulumi) do found[#found + 1] = (p.dir == "." and "" or p.dir .. "/") .. "Pulumi.yaml" end
  for _, f in ipairs(s.frontends) do found[#found + 1] = "a frontend in " .. f.dir end
  for _, c in ipairs(s.checks) do found[#found + 1] = c.why end

  add("-- deploy.lua: the deployment pipeline of this repository, one file for CI and laptops.")
  add("-- Written by `slipway init` from what it found: " .. (#found > 0 and table.concat(found, ", ") or "nothing to deploy yet") .. ".")
  add("-- Edit it freely. `slipway plan` shows what a run would do, `slipway run` runs it,")
  add("-- `slipway ci github` writes the GitHub Actions workflow that runs it.")
  for _, n in ipairs(s.notes) do add("-- Note: " .. n) end
  add()
  add('param.choice("environment", { "production", "staging", "development" }, "production", "where to deploy")')
  if #items > 0 then
    add('param.string("registry", env.get("SLIPWAY_REGISTRY", "localhost:5000"), "the registry images are pushed to")')
  end
  if #s.frontends > 0 then add('param.bool("deploy_frontend", true, "also deploy the frontend to Vercel")') end
  add()
  local tag_vars, registry_vars = image_vars(s.compose and s.compose.vars or {})
  if #items > 0 or #tag_vars > 0 then
    add("-- The image tag: IMAGE_TAG, else the commit (read when a task asks, so that plan works anywhere).")
    add("local function image_tag()")
    add('  return env.get("IMAGE_TAG") or git.short_sha()')
    add("end")
    add()
  end

  local gate
  if #s.checks > 0 then
    gate = "quality-gate"
    add('task("quality-gate", { description = "the tests and linters" }, function()')
    for _, c in ipairs(s.checks) do
      if c.dir == "." then add(("  sh %s"):format(q(c.cmd)))
      else add(("  sh(%s, { cwd = %s })"):format(q(c.cmd), q(c.dir))) end
    end
    add("end)")
    add()
  end

  local needs_of_deploy = {}
  if #items > 0 then
    add("-- One image per Dockerfile, built and pushed in parallel.")
    add("local IMAGES = {")
    for _, it in ipairs(items) do
      add(("  { name = %s, context = %s, dockerfile = %s },"):format(q(it.name), q(it.context), q(it.dockerfile)))
    end
    add("}")
    add()
    add(('task("build", { %smatrix = IMAGES, description = "build and push the images" }, function(image, p)')
      :format(gate and ('needs = "' .. gate .. '", ') or ""))
    add('  local ref = ("%s/%s:%s"):format(p.registry, image.name, image_tag())')
    add("  docker.build { context = image.context, dockerfile = image.dockerfile, tag = ref }")
    add("  docker.push(ref)")
    add("end)")
    add()
    needs_of_deploy[#needs_of_deploy + 1] = "build"
  end

  for _, p in ipairs(s.pulumi) do
    local name = #s.pulumi == 1 and "infrastructure" or ("infrastructure-" .. slug(p.name or base_of(p.dir)))
    add(("task(%q, { %sdescription = %s }, function(p)"):format(name,
      gate and ('needs = "' .. gate .. '", ') or "", q("pulumi up of " .. (p.name or p.dir))))
    add(("  pulumi.up { cwd = %s, stack = p.environment }"):format(q(p.dir)))
    add("end)")
    add()
    needs_of_deploy[#needs_of_deploy + 1] = name
  end

  local last = gate
  if s.compose then
    local needs = #needs_of_deploy > 0 and needs_of_deploy or (gate and { gate } or {})
    local needs_text = ""
    if #needs == 1 then needs_text = ('needs = "%s", '):format(needs[1])
    elseif #needs > 1 then
      local quoted = {}
      for i, n in ipairs(needs) do quoted[i] = q(n) end
      needs_text = "needs = { " .. table.concat(quoted, ", ") .. " }, "
    end
    local services = {}
    for i, svc in ipairs(s.compose.services) do services[i] = svc.name end
    add(("-- The stack: %s%s."):format(s.compose.file,
      #services > 0 and (" (" .. table.concat(services, ", ") .. ")") or ""))
    if #s.compose.vars > 0 then
      add("-- It interpolates " .. table.concat(s.compose.vars, ", ") .. "; set them in `env` below or in the environment.")
    end
    local header = #out + 1
    add(('task("deploy", { %sdescription = "deploy the stack and wait until it converged" }, function(p)'):format(needs_text))
    local first_var = #out + 1
    for _, v in ipairs(tag_vars) do add(("    %s = image_tag(),"):format(v)) end
    for _, v in ipairs(registry_vars) do
      add(("    %s = %s,"):format(v, #items > 0 and "p.registry" or ('env.get("' .. v .. '", "")')))
    end
    for _, v in ipairs(s.compose.vars) do
      if v:upper() == "ENVIRONMENT" or v:upper() == "ENV" then add(("    %s = p.environment,"):format(v)) end
    end
    if #out >= first_var then
      table.insert(out, first_var, ("  local stack = compose.load(%s, { env = {"):format(q(s.compose.file)))
      add("  } })")
    else
      add(("  local stack = compose.load(%s)"):format(q(s.compose.file)))
    end
    if not table.concat(out, "\n", header + 1):find("p%.") then
      out[header] = out[header]:gsub("function%(p%)$", "function()")
    end
    add(('  docker.stack.deploy(%s, stack, { wait = true, timeout = "5m" })'):format(q(stack_name)))
    add("end)")
    add()
    last = "deploy"
  elseif #needs_of_deploy > 0 then
    last = needs_of_deploy[#needs_of_deploy]
  end

  for _, f in ipairs(s.frontends) do
    local name = #s.frontends == 1 and "frontend" or ("frontend-" .. slug(base_of(f.dir)))
    add(("-- The frontend (%s): a Vercel deployment."):format(f.why))
    add(('task(%q, { %swhen = "deploy_frontend", description = "deploy %s to Vercel" }, function(p)')
      :format(name, last and ('needs = "' .. last .. '", ') or "", f.dir))
    add(("  vercel.deploy { dir = %s, project = %s, production = p.environment == \"production\","):format(q(f.dir),
      q(slug(f.dir == "." and stack_name or base_of(f.dir)))))
    add('                  token = secret("VERCEL_TOKEN") }')
    add("end)")
    add()
  end

  if s.compose then
    add("-- Add health checks of what was deployed; a failure here rolls the stack back:")
    add('-- task("validate", { needs = "deploy" }, function()')
    add('--   probe.http { url = "https://example.com/health", expect = 200, within = "2m" }')
    add("-- end)")
  end
  if #s.checks == 0 and #items == 0 and #s.pulumi == 0 and not s.compose and #s.frontends == 0 then
    add('task("hello", function(p)')
    add('  print("nothing to deploy was found: write the steps of " .. p.environment .. " here")')
    add("end)")
  end
  local text = table.concat(out, "\n")
  return (text:gsub("\n+$", "")) .. "\n"
end

---------------------------------------------------------------- command

local function luarc(meta)
  local json = require("slipway.json")
  return json.encode({
    ["$schema"] = "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
    ["runtime.version"] = "Lua 5.4",
    ["workspace.library"] = json.array({ meta }),
    ["diagnostics.globals"] = json.array({}),
  }, { pretty = true, sort_keys = true }) .. "\n"
end

local function fail(msg)
  io.stderr:write("slipway init: ", msg, "\n")
  return 1
end

function M.main(args)
  local dir, force, stack
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--force" then force = true
    elseif a == "--stack" or a:match("^%-%-stack=") then
      stack = a:match("^%-%-stack=(.*)$")
      if not stack then
        i = i + 1
        stack = args[i]
      end
      if not stack or not stack:match("^[%w][%w_.-]*$") then
        io.stderr:write("slipway init: --stack needs a name (letters, digits, _ . -)\n")
        return 2
      end
    elseif a:sub(1, 1) == "-" then
      io.stderr:write(("slipway init: unknown flag '%s'%s (valid: --force, --stack)\n")
        :format(a, words.did_you_mean(a, { "--force", "--stack" })))
      return 2
    elseif dir then
      io.stderr:write(("slipway init: unexpected argument '%s'\n"):format(a))
      return 2
    else
      dir = a
    end
    i = i + 1
  end
  dir = (dir or "."):gsub("(.)/+$", "%1")
  local fs = require("slipway.fs")
  local st = fs.stat(dir, { follow = true })
  if not st or st.type ~= "directory" then
    io.stderr:write(("slipway init: %s is not a directory\n"):format(dir))
    return 2
  end
  local target = dir .. "/deploy.lua"
  if fs.exists(target) and not force then
    return fail(("%s exists: not overwriting it (--force does)"):format(target))
  end
  local real = fs.realpath(dir) or dir
  stack = stack or slug(base_of(real))
  local s = M.survey(dir)
  local text = M.generate(s, { stack = stack })
  local ok, err = fs.write_atomic(target, text)
  if not ok then return fail(("cannot write %s: %s"):format(target, tostring(err))) end
  io.stdout:write(("wrote %s\n"):format(target))
  local meta = require("slipway.cmd.version").meta_dir()
  local rc_path = dir .. "/.luarc.json"
  if not meta then
    io.stderr:write("slipway init: warning: slipway's editor stubs were not found: no .luarc.json written\n")
  elseif fs.exists(rc_path) and not force then
    io.stdout:write(("kept %s (add %s to its workspace.library for completion)\n"):format(rc_path, meta))
  else
    ok, err = fs.write_atomic(rc_path, luarc(meta))
    if not ok then return fail(("cannot write %s: %s"):format(rc_path, tostring(err))) end
    io.stdout:write(("wrote %s (editor completion from %s)\n"):format(rc_path, meta))
  end
  io.stdout:write(("next: slipway plan%s\n"):format(dir == "." and "" or (" " .. target)))
  return 0
end

return M
