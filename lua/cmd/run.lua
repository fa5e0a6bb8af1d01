-- slipway run: run a pipeline (the default command).
local task = require("slipway.task")
local argparse = require("slipway.pipeline.args")
local prepare = require("slipway.pipeline.prepare")

local M = {}

M.help = [[
usage: slipway [run] [FILE] [--env E] [-p name=value]... [--only T,..] [--skip T,..]
                     [-j N] [--json] [--no-color] [--timestamps] [--reporter NAME]

Run the pipeline in FILE (default: deploy.lua). Tasks run as soon as the
tasks they need are done, at most N at a time (-j; default: the number of
CPUs + 2, at least 4; each matrix item counts as one). The first failure
cancels the running tasks, skips the rest and runs the rollback functions of
the completed tasks (and the undo steps of recorded changes) in reverse order.

  --env E           set the parameter `environment` (same as -p environment=E)
  -p name=value     set a parameter (also: SLIPWAY_PARAM_<NAME>=value)
  --only T,..       run only these tasks and what they need; an item of a
                    matrix task is named with its label: --only build[api]
  --skip T,..       skip these tasks or matrix items (they count as done for
                    their dependants)
  -j N, --jobs N    run at most N tasks at once
  --json            NDJSON events on stdout (schema: docs/events.md)
  --no-color        no colours (also when NO_COLOR is set)
  --timestamps      prefix plain output lines with the time since the start
  --reporter NAME   terminal | plain | github | json (default: terminal on a
                    terminal, github when GITHUB_ACTIONS=true, else plain)

Each run is recorded in .slipway/runs/<id>/ next to the pipeline file
(record.json and timeline.svg). Exit codes: 0 success, 1 a task failed (rolled
back if it could), 2 bad input, 130/143 interrupted by SIGINT/SIGTERM.
]]

local FLAGS = { "--env", "-p", "--param", "--only", "--skip", "-j", "--jobs", "--json",
                "--no-color", "--timestamps", "--reporter" }

-- Is path a pipeline (rather than a plain script)? deploy.lua and
-- *.pipeline.lua are; otherwise a file that declares a task or parameter
-- at the start of a line.
function M.is_pipeline(path)
  local base = path:match("([^/]*)$")
  if base == "deploy.lua" or base:match("%.pipeline%.lua$") then return true end
  local f = io.open(path, "r")
  if not f then return false end
  local text = f:read(65536) or ""
  f:close()
  for line in text:gmatch("[^\n]+") do
    if line:match("^%s*task%s*%(%s*[\"'%[]") or line:match("^%s*task%s*[\"']")
      or line:match("^%s*param%.%a+%s*%(") then
      return true
    end
  end
  return false
end

local function choose_reporter(opts)
  local term = require("slipway.term")
  local tty = term.isatty(1)
  local no_color = opts.no_color or (os.getenv("NO_COLOR") or "") ~= ""
  local colour = not no_color and (tty or (os.getenv("FORCE_COLOR") or "") ~= "")
  local name = opts.reporter
  if opts.json then name = "json" end
  if name == nil then
    if os.getenv("GITHUB_ACTIONS") == "true" then name = "github"
    elseif tty and os.getenv("CI") ~= "true" and os.getenv("TERM") ~= "dumb" then name = "terminal"
    else name = "plain" end
  end
  local mod = require("slipway.reporters." .. name)
  return mod.new {
    colour = colour, timestamps = opts.timestamps, out = require("slipway.pipeline.stdio").stdout,
    width = function()
      local cols, rows = term.size(1)
      return cols or tonumber(os.getenv("COLUMNS") or "") or 80, rows or tonumber(os.getenv("LINES") or "") or 24
    end,
  }, name
end

-- With --json, stdout carries only NDJSON: GitHub's ::add-mask:: lines for
-- secrets (made while the pipeline loads) go to stderr, which the runner
-- reads for workflow commands too.
local function announce_secrets_on(opts)
  if opts.json or opts.reporter == "json" then require("slipway.secret")._announce_to("stderr") end
end

function M.main(args)
  local opts, def, values, plan = prepare.from_args("run", args, FLAGS, announce_secrets_on)
  if not opts then return def end
  opts.jobs = opts.jobs or argparse.default_jobs()
  local reporter = choose_reporter(opts)
  local r = table.pack(task.run(require("slipway.pipeline.run").execute, def, values, plan, opts, reporter))
  if r[1] then return r[2] end
  io.stderr:write("slipway: internal error: ", require("slipway.secret").mask(tostring(r[3] or r[2])), "\n")
  return 70
end

return M
