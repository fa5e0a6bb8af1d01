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
    colour = colour, timestamps = opts.timestamps,
    width = function()
      local cols, rows = term.size(1)
      return cols or tonumber(os.getenv("COLUMNS") or "") or 80, rows or tonumber(os.getenv("LINES") or "") or 24
    end,
  }, name
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function new_run_id()
  return os.date("!%Y%m%dT%H%M%SZ") .. ("-%04x"):format(math.random(0, 0xffff))
end

local function round1(x) return x and (x * 10 + 0.5) // 1 / 10 or nil end

-- The rows of the run record and the timeline: times on the run's clock.
local function unit_rows(units, t0)
  local rows = {}
  for i, u in ipairs(units) do
    rows[i] = {
      name = u.name, task = u.base, item = u.label, status = u.status, reason = u.reason,
      started = u.started and round1(u.started - t0), finished = u.finished and round1(u.finished - t0),
      duration_ms = (u.started and u.finished) and round1(u.finished - u.started) or nil,
      attempts = u.attempts > 0 and u.attempts or nil, error = u.error, file = u.file, line = u.line,
      allowed = u.allowed, rollback = u.rollback, rollback_error = u.rollback_error,
    }
  end
  return rows
end

local function git_facts(dir)
  local ok, head = pcall(require("slipway.git").head, { cwd = dir })
  return ok and head or nil
end

-- The run itself, inside the main task.
local function run_pipeline(def, values, plan, opts, reporter)
  local events = require("slipway.events")
  local scheduler = require("slipway.pipeline.scheduler")
  local release = require("slipway.release")
  local json = require("slipway.json")
  local bus = events.new()
  bus:subscribe(reporter.event)
  local run_id = new_run_id()
  local started_at = os.time()
  local record = release.begin_run {
    id = run_id, file = def.file, t0 = bus.t0, params = values,
    started_at = events.iso_time(started_at), jobs = opts.jobs,
  }

  local S
  local function current_unit()
    if S == nil then return nil end
    local u = S.unit_of(task.current())
    if u then return u end
    return #S.active == 1 and S.active[1] or nil
  end
  release.task_name = function()
    local u = current_unit()
    return u and u.name
  end

  local sh = require("slipway.sh")
  local previous_output = sh.set_output(function(stream, line)
    local u = current_unit()
    bus:emit { type = "output", task = u and u.name, stream = stream, line = line }
  end)

  -- What tasks print (print, io.write) goes to the event stream too,
  -- credited to the task, instead of straight to stdout where it would
  -- break the terminal's live view and the NDJSON of --json. io.write may
  -- write part of a line: the rest waits for more or for the task's end.
  local partial = {}      -- unit (false: unknown) -> text not ended by a newline
  local function write_text(text)
    local u = current_unit()
    local key = u or false
    local pending, start = partial[key], 1
    while true do
      local nl = text:find("\n", start, true)
      if nl == nil then break end
      local line = text:sub(start, nl - 1)
      if pending then line, pending = pending .. line, nil end
      bus:emit { type = "output", task = u and u.name, stream = "stdout", line = line }
      start = nl + 1
    end
    if start <= #text then pending = (pending or "") .. text:sub(start) end
    partial[key] = pending
  end
  local function flush_partial(u)
    local text = partial[u]
    if text then
      partial[u] = nil
      bus:emit { type = "output", task = u and u.name or nil, stream = "stdout", line = text }
    end
  end
  def.print_hook = function(line) write_text(line .. "\n") end
  local real_print, real_write = print, io.write
  print = function(...)
    if task.current() == nil then return real_print(...) end
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    write_text(table.concat(parts, "\t", 1, parts.n) .. "\n")
  end
  io.write = function(...)
    if task.current() == nil or io.output() ~= io.stdout then return real_write(...) end
    local parts = table.pack(...)
    for i = 1, parts.n do
      local v = parts[i]
      if math.type(v) == "float" then
        parts[i] = ("%.14g"):format(v)          -- as io.write writes numbers
      elseif type(v) ~= "string" and math.type(v) ~= "integer" then
        error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
      end
    end
    write_text(table.concat(parts, "", 1, parts.n))
    return io.stdout
  end

  if reporter.start then reporter.start(bus) end
  local task_list = {}
  for i, t in ipairs(plan.order) do
    local d = plan.decision[t.name]
    task_list[i] = { name = t.name, needs = json.array(t.needs), run = d.run, reason = d.reason,
                     matrix = t.matrix ~= nil or nil, file = t.file, line = t.line }
  end
  bus:emit { type = "run_started", run_id = run_id, file = def.file, params = json.object(values),
             jobs = opts.jobs, tasks = json.array(task_list), time = events.iso_time(started_at) }

  -- Signals: the first SIGINT/SIGTERM cancels everything (each cancelled
  -- task's children die with their process groups) and gives both signals
  -- back their default action, so a second one ends slipway at once, even
  -- if a task is blocked in a call that holds up the event loop.
  local signal = require("slipway.signal")
  local watcher = signal.watch { "SIGINT", "SIGTERM" }
  -- git facts for the record, gathered while the tasks run
  local git_task = task.spawn(git_facts, dirname(def.file))
  local sigtask
  local summary = scheduler.run {
    def = def, plan = plan, values = require("slipway.pipeline.params").guarded(values, def.params), jobs = opts.jobs, bus = bus, release = release,
    on_unit_end = flush_partial,
    on_start = function(state)
      S = state
      sigtask = task.spawn(function()
        local got, name = pcall(watcher.next, watcher)
        if not got or not name then return end
        local again = watcher:pending() > 0
        watcher:close()
        if again then
          local proc = package.loaded["slipway.proc"]
          if proc then proc.kill_all("SIGKILL") end
          io.stderr:write("slipway: interrupted twice: exiting now\n")
          os.exit(name == "SIGTERM" and 143 or 130)
        end
        bus:emit { type = "warning", message = ("interrupted by %s: cancelling all tasks (again to exit at once)"):format(name) }
        S.interrupt(name)
        local proc = package.loaded["slipway.proc"]
        if proc then proc.kill_all("SIGKILL") end
      end)
    end,
  }
  if sigtask then sigtask:cancel() end
  watcher:close()
  for u in pairs(partial) do flush_partial(u) end
  print, io.write = real_print, real_write

  local finished_at = os.time()
  local duration_ms = round1(task.now() - bus.t0)
  local code = 0
  if summary.status == "interrupted" then
    code = summary.signal == "SIGTERM" and 143 or 130
  elseif summary.input_error then
    code = 2           -- --only/--skip named an item the matrix does not have
  elseif summary.status ~= "success" then
    code = 1
  end

  -- The record and the timeline, next to the pipeline file.
  local rows = unit_rows(summary.units, bus.t0)
  local rollbacks = {}
  for i, r in ipairs(summary.rollbacks) do
    rollbacks[i] = { name = r.name, kind = r.kind, status = r.status, error = r.error,
                     started = round1(r.started - bus.t0), finished = round1(r.finished - bus.t0),
                     duration_ms = r.duration_ms }
  end
  record.status = summary.status
  record.exit_code = code
  record.finished_at = events.iso_time(finished_at)
  record.duration_ms = duration_ms
  record.tasks = json.array(rows)
  record.rollbacks = json.array(rollbacks)
  local got_git, facts = pcall(git_task.join, git_task)
  record.git = got_git and facts or nil
  local fs = require("slipway.fs")
  local project = fs.realpath(dirname(def.file)) or dirname(def.file)
  local dir = project .. "/.slipway/runs/" .. run_id
  local ok, err = release.write(record, dir)
  local record_dir
  if ok then
    local timeline = require("slipway.timeline")
    local svg = timeline.svg(rows, {
      title = ("%s — %s in %s (run %s)"):format(def.file, summary.status:gsub("_", " "),
        events.format_ms(duration_ms), run_id),
      duration_ms = duration_ms, rollbacks = rollbacks,
    })
    ok, err = fs.write(dir .. "/timeline.svg", svg)     -- a picture: no fsync needed
    if ok then record_dir = dir end
  end
  if not ok then
    bus:emit { type = "warning", message = "could not write the run record: " .. tostring(err) }
  end

  local result = {
    status = summary.status, exit_code = code, duration_ms = duration_ms, units = summary.units,
    rollbacks = summary.rollbacks, record_dir = record_dir, run_id = run_id, file = def.file,
  }
  local brief = {}
  for i, r in ipairs(rows) do
    brief[i] = { task = r.name, status = r.status, duration_ms = r.duration_ms }
  end
  bus:emit { type = "run_finished", run_id = run_id, status = summary.status, exit_code = code,
             duration_ms = duration_ms, summary = json.array(brief),
             record = record_dir and (record_dir .. "/record.json") or nil,
             timeline = record_dir and (record_dir .. "/timeline.svg") or nil }
  reporter.close(result)
  sh.set_output(previous_output)
  release.end_run()
  release.task_name = function() return nil end
  return code
end

function M.main(args)
  local opts, def, values, plan = prepare.from_args("run", args, FLAGS)
  if not opts then return def end
  opts.jobs = opts.jobs or argparse.default_jobs()
  local reporter = choose_reporter(opts)
  local r = table.pack(task.run(run_pipeline, def, values, plan, opts, reporter))
  if r[1] then return r[2] end
  io.stderr:write("slipway: internal error: ", tostring(r[3] or r[2]), "\n")
  return 70
end

return M
