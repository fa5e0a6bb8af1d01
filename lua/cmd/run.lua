-- slipway run: run a pipeline (the default command).
local task = require("slipway.task")
local argparse = require("slipway.pipeline.args")
local prepare = require("slipway.pipeline.prepare")

local M = {}

M.help = [[
usage: slipway [run] [FILE] [--env E] [-p name=value]... [--only T,..] [--skip T,..]
                     [-j N] [--json] [--no-color] [--timestamps] [--reporter NAME]
                     [--ledger local|swarm] [--lock-wait DURATION] [--reason TEXT]
                     [--force | --force=T,..] [--no-cache]

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
  --ledger KIND     where releases and the lock live: local (.slipway/ next to
                    the pipeline file) or swarm (configs in DOCKER_HOST's
                    swarm); default: the pipeline's `ledger`, else local
  --lock-wait D     when another run holds the lock of this pipeline and
                    environment, wait for it (in line, at most D) instead of
                    failing
  --reason TEXT     why this run holds the lock (shown to those it stops)
  --force, --no-cache
                    run the cached tasks (cache = true) even when they are
                    up to date
  --force=T,..      run these cached tasks even when they are up to date

A task declared with cache = true is not run when its inputs (files), its
code and options, the parameters and env() values it read and slipway's
version are what they were in its last successful run: it is "up to date"
and the result that run recorded is its result (`slipway plan` says why a
task is not up to date).

Each run is a release in the ledger (`slipway history`, `slipway show ID`),
written when it starts and as it goes; the timeline is in .slipway/runs/<id>/.
A run holds the lock of its pipeline and environment while it runs (lease:
SLIPWAY_LOCK_LEASE, default 60s, renewed by a heartbeat). Exit codes: 0
success, 1 a task failed (rolled back if it could), or the run could not start
(the lock is held, the ledger cannot be written), 2 bad input, 130/143
interrupted by SIGINT/SIGTERM.
]]

local FLAGS = { "--env", "-p", "--param", "--only", "--skip", "-j", "--jobs", "--json",
                "--no-color", "--timestamps", "--reporter", "--ledger", "--lock-wait", "--reason", "--force", "--no-cache" }

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

function M.reporter(opts)
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

-- The lock's lease: SLIPWAY_LOCK_LEASE, else 60 s. -> seconds | nil, message
function M.lock_lease()
  local text = os.getenv("SLIPWAY_LOCK_LEASE")
  if text == nil or text == "" then return 60 end
  local ms, why = require("slipway.duration").parse(text)
  if ms == nil or ms < 1000 then
    return nil, ("SLIPWAY_LOCK_LEASE: %s"):format(why or ("expected a duration of 1s or more, got '" .. text .. "'"))
  end
  return ms / 1000
end

-- The ledger's store for pipeline def: `kind` (--ledger), else the
-- pipeline's `ledger`: the project's .slipway/ directory, or the swarm of
-- DOCKER_HOST.
function M.ledger_store(def, kind)
  kind = kind or (def.pipeline and def.pipeline.ledger) or "local"
  if kind == "swarm" then return require("slipway.docker.ledger_store").new() end
  local fs = require("slipway.fs")
  local dir = def.file:match("^(.*)/[^/]*$") or "."
  return require("slipway.ledger.files").new((fs.realpath(dir) or dir) .. "/.slipway")
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
  local bad = require("slipway.pipeline.cache").check_force(def, opts.force)
  if bad then
    io.stderr:write("slipway run: ", bad, "\n")
    return 2
  end
  local lease, why = M.lock_lease()
  if not lease then
    io.stderr:write("slipway run: ", why, "\n")
    return 2
  end
  opts.ledger = { store = M.ledger_store(def, opts.ledger), wait = opts.lock_wait, reason = opts.reason, lease = lease }
  local reporter = M.reporter(opts)
  local r = table.pack(task.run(require("slipway.pipeline.run").execute, def, values, plan, opts, reporter))
  if r[1] then return r[2] end
  io.stderr:write("slipway: internal error: ", require("slipway.secret").mask(tostring(r[3] or r[2])), "\n")
  return 70
end

return M
