-- The slipway command line. `slipway COMMAND ...` runs the module
-- slipway.cmd.COMMAND (lua/cmd/COMMAND.lua); `slipway FILE.lua args` runs a
-- script like `lua FILE.lua args`, inside a task; `slipway -e CODE` runs code.
-- (slipway.words is required where a suggestion is made: not at start-up)

local M = {}

-- The commands `slipway help` lists, in that order; each is a module
-- lua/cmd/NAME.lua (init: lua/cmd/scaffold.lua), except help.
local COMMANDS = {
  { "run", "run the pipeline in FILE (default deploy.lua)" },
  { "plan", "show the task graph and what would run, without side effects" },
  { "graph", "print the task graph (--format mermaid|dot)" },
  { "compose", "compose files: `slipway compose config -c FILE...`" },
  { "probe", "health probes: `slipway probe URL...`" },
  { "history", "the releases of the pipeline: who deployed what, when, how it ended" },
  { "show", "one release: `slipway show ID`" },
  { "rollback", "back to the last verified release (or --to ID), every system it changed" },
  { "lock", "the deploy lock of an environment: status | acquire | release" },
  { "sandbox", "a private local Docker engine + registry + swarm: up | down | status" },
  { "ci", "generate the CI workflow from the pipeline: `slipway ci github`" },
  { "init", "scaffold a deploy.lua from what the repository holds" },
  { "version", "versions of slipway and the libraries it embeds (--meta: the editor stubs)" },
  { "help", "this text; `slipway COMMAND --help` for one command" },
}

local COMMAND_NAMES = {}
local usage_lines = {}
for i, c in ipairs(COMMANDS) do
  COMMAND_NAMES[i] = c[1]
  usage_lines[i] = ("  %-10s  %s"):format(c[1], c[2])
end

local USAGE = [[
usage: slipway [run] [FILE] [--env E] [-p k=v]... [--only T,..] [--skip T,..] [-j N] [--json] [--no-color]
       slipway COMMAND [ARGS...]
       slipway SCRIPT.lua [ARGS...]
       slipway -e CODE

commands:
]] .. table.concat(usage_lines, "\n") .. [[


Exit codes: 0 success, 1 a task failed, 2 bad input, 130/143 interrupted.
]]

M.COMMANDS = COMMAND_NAMES
M.USAGE = USAGE

local function stderr(...)
  io.stderr:write(...)
end

-- Run fn(...) as the main task; print what an uncaught error says.
-- Returns the exit status.
local function run_main_task(fn, ...)
  local task = require("slipway.task")
  local results = table.pack(task.run(fn, ...))
  if results[1] then return 0, table.unpack(results, 2, results.n) end
  local err, tb = results[2], results[3]
  if task.is_cancelled(err) then
    stderr("slipway: interrupted\n")
    return 130
  end
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    err = (mt and mt.__tostring) and tostring(err) or ("(error object is a %s value)"):format(type(err))
    if tb then tb = tb:gsub("^[^\n]*", err) end
  end
  stderr(require("slipway.secret").mask(tb or err), "\n")     -- (secrets and URL passwords as ***)
  return 1
end
M.run_main_task = run_main_task

local function run_chunk(fn, ...)
  require("slipway.prelude")
  return (run_main_task(fn, ...))
end

local function run_script(argv, first)
  local path = argv[first]
  local fn, err = loadfile(path, "t")
  if not fn then
    stderr(err, "\n")
    return 2
  end
  local script_arg = { [-1] = argv[0], [0] = path }
  for i = first + 1, #argv do script_arg[#script_arg + 1] = argv[i] end
  _G.arg = script_arg
  return run_chunk(fn, table.unpack(script_arg))
end

local function run_code(argv)
  local code = argv[2]
  if code == nil then
    stderr("slipway: -e needs an argument\n")
    return 2
  end
  local fn, err = load(code, "=(command line)", "t")
  if not fn then
    stderr(err, "\n")
    return 2
  end
  local script_arg = { [-1] = argv[0], [0] = "-e" }
  for i = 3, #argv do script_arg[#script_arg + 1] = argv[i] end
  _G.arg = script_arg
  return run_chunk(fn, table.unpack(script_arg))
end

-- Commands whose module has another name: lua/cmd/init.lua would be the
-- package slipway.cmd itself.
local MODULE_OF = { init = "scaffold" }

local function command_module(name)
  local modname = "slipway.cmd." .. (MODULE_OF[name] or name)
  if package.preload[modname] then return require(modname) end
  return nil
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

function M.main(argv)
  local first = argv[1]
  if first == "-e" then return run_code(argv) end
  if first == "-h" or first == "--help" or first == "help" then
    local name = argv[2]
    local cmd = name and command_module(name)
    if name and not cmd and name ~= "help" and name:sub(1, 1) ~= "-" then
      stderr(("slipway help: unknown command '%s'%s; commands: %s\n")
        :format(name, require("slipway.words").did_you_mean(name, COMMAND_NAMES), table.concat(COMMAND_NAMES, ", ")))
      return 2
    end
    io.stdout:write(cmd and cmd.help or USAGE)
    return 0
  end
  if first == "-v" or first == "--version" then first = "version" end
  local args = {}
  for i = 2, #argv do args[#args + 1] = argv[i] end
  local cmd = first and not first:find("[/.]") and command_module(first)
  if cmd then
    if args[1] == "--help" or args[1] == "-h" then
      io.stdout:write(cmd.help or USAGE)
      return 0
    end
    return cmd.main(args) or 0
  end
  if first and first:sub(1, 1) ~= "-" and (first:match("%.lua$") or file_exists(first)) then
    local run = command_module("run")
    if run and run.is_pipeline and run.is_pipeline(first) then
      return run.main({ first, table.unpack(args) }) or 0
    end
    return run_script(argv, 1)
  end
  -- `slipway` and `slipway --env x ...` run the pipeline in deploy.lua
  local run = command_module("run")
  if first == nil or first:sub(1, 1) == "-" then
    if run then
      local all = {}
      for i = 1, #argv do all[i] = argv[i] end
      return run.main(all) or 0
    end
    io.stderr:write(USAGE)
    return 2
  end
  stderr(("slipway: unknown command or file '%s'%s\n\n"):format(first, require("slipway.words").did_you_mean(first, COMMAND_NAMES)), USAGE)
  return 2
end

return M
