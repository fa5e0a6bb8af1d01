-- `slipway ci github [FILE]`: write the GitHub Actions workflow that runs
-- the pipeline, generated from its declarations (parameters become
-- workflow_dispatch inputs, secrets become environment variables), so the
-- workflow is never written by hand.
--
-- The file starts with a header whose last line holds the sha256 of the
-- rest: a generated file is recognised and rewritten, a file edited by hand
-- (or not made here) is left alone unless --force. An unchanged pipeline
-- gives the same bytes, and an up-to-date file is not written at all.
--
-- Secrets: the generator's one input is def.secrets, the list of secrets
-- the pipeline declares: entries "NAME" or { name = "NAME", env = "VAR",
-- from = "env"|..., param = true } (param.secret). When the DSL does not
-- record that list (def.secrets is nil), it is read from the file's text:
-- every `secret("NAME"` and `param.secret("name"` call (see secrets_of).
local words = require("slipway.words")

local M = {}

M.help = [[
usage: slipway ci github [FILE] [--output PATH] [--force] [--check]
                         [--branches main,develop] [--runs-on LABEL]

Write the GitHub Actions workflow that runs the pipeline in FILE (default
deploy.lua), generated from its declarations: every parameter becomes a
workflow_dispatch input of the same type (choice with its options, boolean,
string, number; a list is a comma-separated string) with its default and
description; a push to the branches (default main,develop; "" for none)
runs it with the defaults; one run at a time per environment (a concurrency
group); one job installs slipway and runs `slipway run FILE` with the
inputs, and each secret the pipeline declares (secret("NAME"),
param.secret) is passed as an environment variable from the repository's
secrets of that name.

  -o, --output PATH   the workflow file (default .github/workflows/deploy.yml)
  --force             overwrite a file that was edited by hand
  --check             write nothing; exit 1 when the file is not up to date
  --branches LIST     push branches that deploy (comma-separated)
  --runs-on LABEL     the runner (default ubuntu-latest)

Run it from the repository's top directory (FILE is named in the workflow
as given). Running it again on an unchanged pipeline changes nothing; a
file edited by hand is not overwritten without --force (exit 1).
The install step builds slipway from the git repository in the repository
variable SLIPWAY_GIT (ref: SLIPWAY_REF, default main).
]]

local DEFAULT_OUTPUT = ".github/workflows/deploy.yml"
local HASH_PREFIX = "# slipway-sha256: "

local function usage(msg)
  io.stderr:write("slipway ci: ", msg, "\n\n", M.help)
  return 2
end

---------------------------------------------------------------- YAML text

-- Words YAML would read as something other than a string.
local YAML_WORDS = {}
for w in ("true false yes no on off null y n ~"):gmatch("%S+") do YAML_WORDS[w] = true end

-- A YAML scalar for string s: plain when that reads back as the same
-- string, else double-quoted (JSON's escapes are YAML's).
local function str(s)
  s = tostring(s)
  if s:match("^[%w][%w_./@-]*$") and not YAML_WORDS[s:lower()] and not tonumber(s)
      and not s:match("^%d") then
    return s
  end
  return require("slipway.json").encode(s)
end

local function number_text(n)
  if math.type(n) == "integer" then return ("%d"):format(n) end
  if n == math.floor(n) and math.abs(n) < 2 ^ 53 then return ("%d"):format(math.tointeger(n)) end
  return ("%.17g"):format(n)
end

---------------------------------------------------------------- secrets

-- GitHub secret names: letters, digits and _, not starting with a digit or
-- GITHUB_.
local function secret_name_ok(name)
  return name:match("^[%a_][%w_]*$") ~= nil and not name:upper():match("^GITHUB_")
end

-- The secrets a pipeline file's text asks for: `secret("NAME"` and
-- `param.secret("name"` calls, in the order first met. The fallback while
-- the DSL records no def.secrets (see the file's header).
function M.secrets_in_text(text)
  local list, seen = {}, {}
  local function add(entry)
    local key = (entry.param and "p:" or "s:") .. entry.name
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = entry
    end
  end
  for pos, name in text:gmatch("()param%.secret%s*%(%s*[\"']([%w_%-]+)[\"']") do
    add({ name = name, param = true, pos = pos })
  end
  for pos, name in text:gmatch("()%f[%w_.:]secret%s*%(%s*[\"']([%w_]+)[\"']") do
    add({ name = name, pos = pos })
  end
  table.sort(list, function(a, b) return a.pos < b.pos end)
  for _, e in ipairs(list) do e.pos = nil end
  return list
end

-- The declared secrets of def: def.secrets, or else what the file's text
-- names.
function M.secrets_of(def)
  if def.secrets ~= nil then return def.secrets end
  local f = io.open(def.file, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return M.secrets_in_text(text)
end

-- { {env = VAR, secret = NAME} } sorted by VAR, one per variable: what the
-- run step's env passes. An entry for a parameter reads
-- SLIPWAY_PARAM_<NAME>; others the variable they are read from.
local function secret_env(list, warn)
  local by_var = {}
  for _, e in ipairs(list) do
    if type(e) == "string" then e = { name = e } end
    local from = e.from
    if from == nil or from == "env" then
      local var, secret
      if e.param then
        var = "SLIPWAY_PARAM_" .. e.name:upper():gsub("%-", "_")
        secret = e.name:upper():gsub("%-", "_")
      else
        var = e.env or e.name
        secret = var
      end
      if not secret_name_ok(secret) then
        warn(("secret '%s': '%s' cannot be a GitHub secret name (letters, digits and _, not GITHUB_...): left out")
          :format(e.name, secret))
      else
        by_var[var] = secret
      end
    end
  end
  local out = {}
  for var, secret in pairs(by_var) do out[#out + 1] = { env = var, secret = secret } end
  table.sort(out, function(a, b) return a.env < b.env end)
  return out
end

---------------------------------------------------------------- the workflow

local INPUT_TYPE = { choice = "choice", bool = "boolean", string = "string", number = "number", list = "string" }

local function default_text(p)
  local v = p.default
  if p.kind == "bool" then return tostring(v) end
  if p.kind == "number" then return number_text(v) end
  if p.kind == "list" then
    local items = {}
    for i, item in ipairs(v) do items[i] = tostring(item) end
    return str(table.concat(items, ","))
  end
  return str(v)
end

-- The environment variable a run step reads input NAME from.
local function input_var(name)
  return "INPUT_" .. name:upper():gsub("%-", "_")
end

-- generate(def, opts) -> text (without the header), warnings
-- opts: file (as named in the workflow), branches (list), runs_on.
function M.generate(def, opts)
  local warnings = {}
  local function warn(msg) warnings[#warnings + 1] = msg end
  local params = {}
  for _, p in ipairs(def.params.list) do
    if INPUT_TYPE[p.kind] then params[#params + 1] = p end
  end
  local env_param = def.params.by_name.environment
  local out = {}
  local function add(line) out[#out + 1] = line end

  add("name: " .. str("deploy (" .. opts.file .. ")"))
  add("")
  add("on:")
  if #opts.branches > 0 then
    add("  push:")
    local b = {}
    for i, name in ipairs(opts.branches) do b[i] = str(name) end
    add("    branches: [" .. table.concat(b, ", ") .. "]")
  end
  if #params == 0 then
    add("  workflow_dispatch: {}")
  else
    add("  workflow_dispatch:")
    add("    inputs:")
    for _, p in ipairs(params) do
      add("      " .. p.name .. ":")
      if p.description then add("        description: " .. str(p.description)) end
      add("        type: " .. INPUT_TYPE[p.kind])
      if p.kind == "choice" then
        add("        options:")
        for _, c in ipairs(p.choices_text) do add("          - " .. str(c)) end
      end
      if p.required then
        add("        required: true")
        if #opts.branches > 0 then
          warn(("parameter '%s' has no default: a run started by a push fails unless the workflow sets %s")
            :format(p.name, require("slipway.pipeline.params").env_name(p.name)))
        end
      else
        add("        required: false")
        add("        default: " .. default_text(p))
      end
    end
  end
  add("")
  add("permissions:")
  add("  contents: read")
  add("")
  -- One deploy at a time per environment; a queued one waits, a running
  -- one is never cancelled half-way.
  add("concurrency:")
  if env_param and env_param.default ~= nil then
    add(("  group: %s"):format(str(("slipway-${{ inputs.environment || '%s' }}")
      :format(tostring(env_param.default):gsub("'", "''")))))
  elseif env_param then
    add("  group: " .. str("slipway-${{ inputs.environment }}"))
  else
    add("  group: slipway-deploy")
  end
  add("  cancel-in-progress: false")
  add("")
  add("jobs:")
  add("  deploy:")
  add("    runs-on: " .. str(opts.runs_on))
  add("    timeout-minutes: 60")
  add("    steps:")
  add("      - uses: actions/checkout@v4")
  add("      - name: Install slipway")
  add("        env:")
  add("          SLIPWAY_GIT: ${{ vars.SLIPWAY_GIT }}")
  add("          SLIPWAY_REF: ${{ vars.SLIPWAY_REF || 'main' }}")
  add("        run: |")
  add("          if [ -z \"$SLIPWAY_GIT\" ]; then")
  add("            echo \"::error::set the repository variable SLIPWAY_GIT to slipway's git URL\"")
  add("            exit 1")
  add("          fi")
  add("          sudo apt-get update -qq")
  add("          sudo apt-get install -y -qq --no-install-recommends gcc make pkg-config liblua5.4-dev \\")
  add("            libuv1-dev libyaml-dev libcurl4-openssl-dev libssl-dev")
  add("          git clone --depth 1 --branch \"$SLIPWAY_REF\" \"$SLIPWAY_GIT\" \"$RUNNER_TEMP/slipway\"")
  add("          make -C \"$RUNNER_TEMP/slipway\" -j2 install PREFIX=\"$HOME/.local\"")
  add("          echo \"$HOME/.local/bin\" >> \"$GITHUB_PATH\"")
  add("      - name: " .. str("slipway run " .. opts.file))
  -- Inputs reach the script through the environment, never spliced into
  -- its text (a value with a quote would otherwise rewrite the command).
  -- A push has no inputs: then each parameter keeps the pipeline's default.
  local env_lines = {}
  for _, p in ipairs(params) do
    env_lines[#env_lines + 1] = ("          %s: ${{ inputs.%s }}"):format(input_var(p.name), p.name)
  end
  for _, s in ipairs(secret_env(M.secrets_of(def), warn)) do
    env_lines[#env_lines + 1] = ("          %s: ${{ secrets.%s }}"):format(s.env, s.secret)
  end
  if #env_lines > 0 then
    add("        env:")
    for _, l in ipairs(env_lines) do add(l) end
  end
  add("        run: |")
  add("          set -- " .. words.shell_quote(opts.file))
  for _, p in ipairs(params) do
    local var = input_var(p.name)
    if p.name == "environment" then
      add(("          if [ -n \"$%s\" ]; then set -- \"$@\" --env \"$%s\"; fi"):format(var, var))
    else
      add(("          if [ -n \"$%s\" ]; then set -- \"$@\" -p \"%s=$%s\"; fi"):format(var, p.name, var))
    end
  end
  add("          exec slipway run \"$@\"")
  return table.concat(out, "\n") .. "\n", warnings
end

-- The header: how the file was made, and the hash of the rest.
local function with_header(body, file)
  local hash = require("slipway.hash").sha256(body)
  return table.concat({
    "# Generated by `slipway ci github` from " .. file .. ": edit the pipeline and run the command again.",
    "# The command does not overwrite this file once it was edited by hand (unless --force).",
    HASH_PREFIX .. hash,
  }, "\n") .. "\n" .. body
end

-- Is text a file this command wrote, unchanged since? -> true, or false
-- and why not.
function M.is_untouched(text)
  local header_end
  local recorded
  local pos = 1
  for _ = 1, 5 do
    local line_end = text:find("\n", pos, true)
    if not line_end then break end
    local line = text:sub(pos, line_end - 1)
    if line:sub(1, #HASH_PREFIX) == HASH_PREFIX then
      recorded, header_end = line:sub(#HASH_PREFIX + 1), line_end
      break
    end
    pos = line_end + 1
  end
  if not recorded then return false, "it was not generated by slipway (no slipway-sha256 line)" end
  if require("slipway.hash").sha256(text:sub(header_end + 1)) ~= recorded then
    return false, "it was edited by hand since it was generated"
  end
  return true
end

---------------------------------------------------------------- command

local function mkdir_p(dir)
  local fs = require("slipway.fs")
  if dir == "" or dir == "." or dir == "/" or fs.exists(dir) then return true end
  local ok, err = mkdir_p(fs.dirname(dir))
  if not ok then return nil, err end
  ok, err = fs.mkdir(dir)
  if not ok and not fs.exists(dir) then return nil, err end
  return true
end

local function parse(args)
  local o = { branches = { "main", "develop" }, runs_on = "ubuntu-latest", output = DEFAULT_OUTPUT }
  local i = 1
  local valid = { "--output", "-o", "--force", "--check", "--branches", "--runs-on" }
  while i <= #args do
    local a = args[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    flag = flag or a
    local function value()
      if inline ~= nil then return inline end
      i = i + 1
      if args[i] == nil then error({ usage = flag .. " needs a value" }) end
      return args[i]
    end
    if flag == "--output" or flag == "-o" then o.output = value()
    elseif flag == "--force" and not inline then o.force = true
    elseif flag == "--check" and not inline then o.check = true
    elseif flag == "--runs-on" then o.runs_on = value()
    elseif flag == "--branches" then
      o.branches = {}
      for b in value():gmatch("[^,%s]+") do o.branches[#o.branches + 1] = b end
    elseif a:sub(1, 1) == "-" then
      error({ usage = ("unknown flag '%s'%s (valid: %s)")
        :format(flag, words.did_you_mean(flag, valid), table.concat(valid, ", ")) })
    elseif o.file then
      error({ usage = ("unexpected argument '%s' (the pipeline file is already %s)"):format(a, o.file) })
    else
      o.file = a
    end
    i = i + 1
  end
  o.file = o.file or "deploy.lua"
  if o.file:sub(1, 1) == "/" then
    error({ usage = ("%s: name the pipeline by its path from the repository's top directory"):format(o.file) })
  end
  return o
end

local function github(args)
  local ok, o = pcall(parse, args)
  if not ok then
    if type(o) == "table" and o.usage then return usage(o.usage) end
    error(o, 0)
  end
  local prepare = require("slipway.pipeline.prepare")
  require("slipway.prelude")
  local lok, def = pcall(prepare.load, { file = o.file, inspect = true })
  if not lok then return prepare.report_input_error(def) end
  local body, warnings = M.generate(def, o)
  for _, w in ipairs(warnings) do io.stderr:write("slipway ci github: warning: ", w, "\n") end
  local text = with_header(body, o.file)
  local fs = require("slipway.fs")
  local old = fs.exists(o.output) and fs.read(o.output) or nil
  if old == text then
    if not o.check then io.stdout:write(("%s is up to date\n"):format(o.output)) end
    return 0
  end
  if o.check then
    io.stderr:write(("slipway ci github: %s is not up to date with %s: run `slipway ci github%s`\n")
      :format(o.output, o.file, o.file == "deploy.lua" and "" or (" " .. o.file)))
    return 1
  end
  if old and not o.force then
    local untouched, why = M.is_untouched(old)
    if not untouched then
      io.stderr:write(("slipway ci github: not overwriting %s: %s (--force overwrites it)\n"):format(o.output, why))
      return 1
    end
  end
  local mok, merr = mkdir_p(fs.dirname(o.output))
  local wok, werr = false, merr
  if mok then wok, werr = fs.write_atomic(o.output, text) end
  if not wok then
    io.stderr:write(("slipway ci github: cannot write %s: %s\n"):format(o.output, tostring(werr)))
    return 1
  end
  local inputs = 0
  for _, p in ipairs(def.params.list) do
    if INPUT_TYPE[p.kind] then inputs = inputs + 1 end
  end
  io.stdout:write(("%s %s (%s, %s)\n"):format(old and "updated" or "wrote", o.output,
    words.count(inputs, "input"), words.count(#secret_env(M.secrets_of(def), function() end), "secret")))
  return 0
end

local SUBCOMMANDS = { github = github }

function M.main(args)
  local sub = args[1]
  if sub == nil then return usage("missing the CI system (github)") end
  local run = SUBCOMMANDS[sub]
  if not run then
    return usage(("unknown CI system '%s'%s (valid: github)"):format(sub, words.did_you_mean(sub, { "github" })))
  end
  if args[2] == "--help" or args[2] == "-h" then
    io.stdout:write(M.help)
    return 0
  end
  return run({ table.unpack(args, 2) })
end

return M
