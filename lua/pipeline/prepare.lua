-- slipway.pipeline.prepare: from command-line options to a checked plan,
-- without running anything: load the file, check the graph, resolve the
-- parameters, decide what runs. Shared by `run`, `plan` and `graph`.
-- Raises { input_error = message } for anything the user must fix.
local dsl = require("slipway.pipeline.dsl")
local graph = require("slipway.pipeline.graph")
local params = require("slipway.pipeline.params")

local M = {}

local function environ()
  -- SLIPWAY_PARAM_* names nobody declared are typos: find them. Lua has no
  -- environ(); /proc/self/environ has the process's environment.
  local list = {}
  local f = io.open("/proc/self/environ", "rb")
  if f then
    local data = f:read("a")
    f:close()
    for entry in data:gmatch("[^%z]+") do
      if entry:sub(1, 14) == "SLIPWAY_PARAM_" then list[#list + 1] = entry end
    end
  end
  return list
end

function M.load(opts)
  local f, err, errno = io.open(opts.file, "r")
  if f then
    -- a directory opens; reading it fails (EISDIR)
    local _, rerr, rerrno = f:read(0)
    f:close()
    err, errno = rerr, rerrno
  end
  if err then
    local msg = opts.file == "deploy.lua" and errno == 2
      and "slipway: no deploy.lua here (give the pipeline file: slipway run FILE)"
      or ("slipway: cannot read the pipeline %s: %s"):format(opts.file, err:gsub("^.-: ", "", 1))
    local inside = opts.file:gsub("/*$", "") .. "/deploy.lua"
    if errno == 21 and require("slipway.fs").exists(inside) then         -- EISDIR
      msg = ("%s (did you mean '%s'?)"):format(msg, inside)
    end
    error({ input_error = msg }, 0)
  end
  -- a command that only inspects the pipeline reads no secret
  local def = opts.inspect and require("slipway.secrets")._inspect(dsl.load, opts.file) or dsl.load(opts.file)
  graph.check(def)
  return def
end

function M.prepare(opts)
  local def = M.load(opts)
  local values = params.resolve(def.params, opts.settings, { file = def.file, environ = environ() })
  local plan = graph.plan(def, params.guarded(values, def.params), { only = opts.only, skip = opts.skip })
  return def, values, plan
end

-- What `run`, `plan` and `graph` begin with: parse their arguments (the
-- flags they take), check them further with check(opts) -> message or nil,
-- then prepare. -> opts, def, values, plan; or nil and the exit code, the
-- problem printed.
function M.from_args(command, args, flags, check)
  local opts, err = require("slipway.pipeline.args").parse(args, flags)
  if opts then opts.inspect = command == "plan" or command == "graph" end
  if opts and check then
    err = check(opts)
    if err then opts = nil end
  end
  if not opts then
    io.stderr:write("slipway ", command, ": ", err, "\n")
    return nil, 2
  end
  require("slipway.prelude")
  local ok, def, values, plan = pcall(M.prepare, opts)
  if not ok then return nil, M.report_input_error(def) end
  return opts, def, values, plan
end

-- Print an input error (or re-raise anything else) and return exit code 2.
function M.report_input_error(err)
  if dsl.is_input_error(err) then
    local msg = err.input_error
    if not msg:match("^slipway:") then msg = "slipway: " .. msg end
    io.stderr:write(require("slipway.secret").mask(msg), "\n")
    return 2
  end
  error(err, 0)
end

return M
