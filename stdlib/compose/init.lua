-- slipway.compose: compose files read exactly as `docker stack config` /
-- `docker stack deploy` read them (docker/cli's v3 stack loader), into a
-- Stack that scripts can read and change, and rendered back to YAML.
--
--   local stack, warnings = compose.load("compose.yml", { env = { TAG = tag } })
--   stack.services.web.deploy.replicas = 3
--   print(compose.render(stack))
--
-- load(files, opts): files is a path or a list of paths merged in order
-- (like `-c a.yml -c b.yml`). opts:
--   env      = { NAME = "value" | false }  variables that win over all others
--   env_file = path or list of paths       `.env` files (below the process
--                                           environment, as compose does)
--   environ  = { NAME = "value" }          use this instead of the process
--                                           environment
--   workdir  = dir                          base of relative paths (default:
--                                           the first file's directory)
--   skip_interpolation = true               leave ${...} as written (docker's
--                                           --skip-interpolation)
--   max_bytes = n                           refuse a compose or env file
--                                           larger than n bytes (default
--                                           16 MiB), "EFBIG"
-- Returns the Stack and a list of warnings ("file:line:col: message") for
-- what Swarm ignores (build, container_name, a host IP in ports, ...).
-- Raises "compose.load: file:line:col: message" on a bad file; nothing is
-- deployed from a file that does not load.
--
-- Per file, in docker's order: YAML (go-yaml v3 scalars, anchors, merge
-- keys) -> version agreement between files -> forbidden keys -> variable
-- interpolation with the typed-field casts -> schema of the file's
-- version (slipway.compose.schema) -> normalization (slipway.compose.
-- normalize); then the files are merged (slipway.compose.merge).
local yaml = require("slipway.yaml")
local interpolate = require("slipway.compose.interpolate")
local normalize = require("slipway.compose.normalize")
local merge = require("slipway.compose.merge")
local render = require("slipway.compose.render")
local envfile = require("slipway.compose.envfile")
local convert = require("slipway.compose.convert")
local input = require("slipway.compose.input")

local caller = require("slipway.caller")
local M = {}
local NULL = yaml.null

-- The schema check is its own module; load it when it is there.
local function schema_module()
  if package.preload["slipway.compose.schema"] or package.loaded["slipway.compose.schema"] then
    return require("slipway.compose.schema")
  end
  return nil
end

local FORBIDDEN = {
  extends = true, volume_driver = true, volumes_from = true, cpu_quota = true, cpu_shares = true,
  cpuset = true, mem_limit = true, memswap_limit = true,
}

-- A failure inside loading: raised as a table, returned as nil, msg, code.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.msg end

local function throw(msg, code) error(setmetatable({ msg = msg, code = code }, Failure), 0) end

local function where(file, pos, holder, key)
  local p = holder ~= nil and pos and pos[holder]
  local at = p and key ~= nil and p.keys[key] or p
  if at and at.line then return ("%s:%d:%d: "):format(file, at.line, at.col) end
  return file .. ": "
end

-- path "-" is standard input, like docker's "-c -"
local function read_file(path, max_bytes)
  local text, err, code = input.read(path, max_bytes)
  if not text then throw(err, code) end
  return text
end

local function cwd()
  return require("slipway.fs").realpath(".") or os.getenv("PWD") or "/"
end

-- Variables: opts.env > environment (opts.environ or the process's) > env files
local function make_lookup(opts)
  local files = {}
  if opts.env_file then
    local list = type(opts.env_file) == "table" and opts.env_file or { opts.env_file }
    for _, path in ipairs(list) do
      local vars, err, code = envfile.parse_dotenv(path, opts.max_bytes)
      if not vars then throw(err, code or "EENVFILE") end
      files[#files + 1] = vars
    end
  end
  local env, environ = opts.env or {}, opts.environ
  return function(name)
    local v = env[name]
    if v == false then return nil end
    if v ~= nil then return tostring(v) end
    if environ then v = environ[name] else v = os.getenv(name) end
    if v ~= nil then return v end
    for i = #files, 1, -1 do
      if files[i][name] ~= nil then return files[i][name] end
    end
    return nil
  end
end

local function check_forbidden(doc, pos, file)
  local services = doc.services
  if type(services) ~= "table" or getmetatable(services) == yaml.array_mt then return end
  for _, name in ipairs(yaml.keys(services)) do
    local svc = services[name]
    if type(svc) == "table" then
      for _, k in ipairs(yaml.keys(svc)) do
        if FORBIDDEN[k] then throw(where(file, pos, svc, k) .. "Configuration contains forbidden properties", "ESCHEMA") end
      end
    end
  end
end

local function version_of(doc)
  local v = doc.version
  if v == nil then return "3.13" end
  local s = convert.sprint(v)
  if s == "" or s == "3" then return "3.13" end
  return s
end

-- Load one file into its own Stack.
local function load_file(path, opts, state)
  local text = read_file(path, opts.max_bytes)
  local doc, pos = yaml.decode(text, { filename = path, positions = true, max_bytes = opts.max_bytes })
  if doc == nil then throw(pos, "EYAML") end
  if type(doc) ~= "table" or getmetatable(doc) == yaml.array_mt then
    throw(path .. ": top-level object must be a mapping", "ECOMPOSE")
  end
  local schema = schema_module()
  local version = schema and schema.version_of and schema.version_of(doc) or version_of(doc)
  state.version = state.version or version
  if version ~= state.version then
    throw(where(path, pos, doc, doc.version ~= nil and "version" or nil)
      .. ("version mismatched between two composefiles : %s and %s"):format(state.version, version), "ECOMPOSE")
  end
  if schema and schema.check_forbidden then
    local ok, msg, code = schema.check_forbidden(doc, pos, path)
    if not ok then throw(msg, code or "ESCHEMA") end
  else
    check_forbidden(doc, pos, path)
  end
  local fail = function(holder, key, msg) throw(where(path, pos, holder, key) .. msg, "ECOMPOSE") end
  if not opts.skip_interpolation then
    interpolate.interpolate(doc, {
      lookup = state.lookup,
      fail = function(holder, key, msg) throw(where(path, pos, holder, key) .. msg, "EINTERPOLATE") end,
    })
  end
  if schema and schema.validate then
    local ok, msg, code = schema.validate(doc, state.version, pos, path)
    if not ok then throw(msg, code or "ESCHEMA") end
  end
  local ctx = {
    version = state.version,
    workdir = state.workdir,
    lookup = state.lookup,
    max_bytes = opts.max_bytes,
    fail = fail,
    warn = function(holder, key, msg) state.warnings[#state.warnings + 1] = where(path, pos, holder, key) .. msg end,
  }
  return normalize.stack(doc, ctx)
end

local LOAD_OPTS = { "env", "env_file", "environ", "workdir", "skip_interpolation", "max_bytes" }

local function check_opts(fname, opts)
  caller.check_options(fname, opts, LOAD_OPTS)
  if opts == nil then return {} end
  local max = opts.max_bytes
  if max ~= nil and (math.type(max) ~= "integer" or max < 0) then
    error(("%s%s: max_bytes must be a non-negative integer, got %s"):format(caller.where(), fname, tostring(max)), 0)
  end
  return opts
end

-- The non-raising form: stack, warnings | nil, message, code
function M.try_load(files, opts)
  if type(files) == "string" then files = { files } end
  if type(files) ~= "table" or #files == 0 then return nil, "no compose file given", "EUSAGE" end
  opts = opts or {}
  local ok, result = pcall(function()
    local state = { warnings = {}, lookup = make_lookup(opts) }
    local first = files[1]
    if opts.workdir then
      state.workdir = opts.workdir
    elseif first == "-" then
      state.workdir = cwd()
    else
      local abs = first:sub(1, 1) == "/" and first or (cwd() .. "/" .. first)
      state.workdir = convert.clean_path(abs):match("^(.*)/[^/]*$")
      if state.workdir == "" then state.workdir = "/" end
    end
    local stacks = {}
    for i, path in ipairs(files) do stacks[i] = load_file(path, opts, state) end
    return { stack = merge.merge(stacks), warnings = state.warnings }
  end)
  if ok then return result.stack, result.warnings end
  if getmetatable(result) == Failure then return nil, result.msg, result.code end
  error(result, 0)
end

function M.load(files, opts)
  opts = check_opts("compose.load", opts)
  local stack, warnings_or_msg = M.try_load(files, opts)
  if not stack then error("compose.load: " .. warnings_or_msg, 2) end
  return stack, warnings_or_msg
end

-- render(stack, {escape_dollars = bool}) -> YAML text, as docker prints it
-- (escape_dollars writes "$$" so that the text loads back unchanged).
function M.render(stack, opts)
  return render.render(stack, opts)
end

-- config(files, opts) -> the YAML `docker stack config` prints, warnings
function M.config(files, opts)
  opts = check_opts("compose.config", opts)
  local stack, warnings_or_msg = M.try_load(files, opts)
  if not stack then error("compose.config: " .. warnings_or_msg, 2) end
  return render.render(stack), warnings_or_msg
end

M.null = NULL

return M
