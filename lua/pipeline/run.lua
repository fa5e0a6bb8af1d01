-- slipway.pipeline.run: one run of a planned pipeline, from its first
-- event to its record. It makes the run object that every unit's context
-- names (slipway.context): the one output path (output, warn), and the
-- changes integrations record; it turns tasks' own writes into output
-- (slipway.pipeline.stdio), watches SIGINT/SIGTERM, runs the scheduler,
-- and keeps the run's release in the ledger (slipway.ledger.session: the
-- lock, the release written when the run starts, updated as units finish
-- and changes are recorded, finished at the end), with the timeline in
-- .slipway/runs/<id>/ next to the pipeline file.
--
--   run.execute(def, values, plan, opts, reporter) -> exit code
--   (inside a task: the run's main task)
--   opts: jobs, force (true, or a list of task names: cached tasks run
--   anyway), ledger = { store, lock, wait, reason, lease } (default: the
--   local store, locked, a 60 s lease), record_fields (more fields of the
--   release: `slipway rollback` says what it is)
local task = require("slipway.task")
local context = require("slipway.context")
local events = require("slipway.events")
local scheduler = require("slipway.pipeline.scheduler")
local params = require("slipway.pipeline.params")
local stdio = require("slipway.pipeline.stdio")
local release = require("slipway.release")
local ledger = require("slipway.ledger")
local json = require("slipway.json")
local fs = require("slipway.fs")

local M = {}

local real_exit = os.exit        -- (a run refuses os.exit to its tasks)

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function round1(x) return x and (x * 10 + 0.5) // 1 / 10 or nil end

-- A run id no other run has: the time to the millisecond (ids sort as the
-- runs started: the ledger lists them so), and random bits from the OS (a
-- seed from the clock and ASLR repeats when ASLR is off).
local function new_run_id()
  local now = task.wall()
  return os.date("!%Y%m%dT%H%M%S", math.floor(now)) .. ("%03dZ-"):format(math.floor(now * 1000) % 1000)
    .. require("slipway.hash").random_hex(4)
end

local recordable = release.recordable

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
      result = (u.status == "ok" or u.status == "up_to_date") and recordable(u.result) or nil,
      cache = u.cache_row,
      verifies = u.node and u.node.task.verifies or nil,
    }
  end
  return rows
end

---------------------------------------------------------------- the run object

local Run = {}
Run.__index = Run

function Run:output(unit, stream, line)
  self.bus:emit { type = "output", task = unit and unit.name, stream = stream, line = line }
end

function Run:warn(unit, message)
  self.bus:emit { type = "warning", task = unit and unit.name, message = message }
end

function Run:change(unit, entry, what)
  if what ~= "added" then
    if self.ledger then self.ledger:changed() end
    return
  end
  entry.task = unit and unit.name
  entry.at = task.now() - self.bus.t0
  local changes = self.record.changes
  changes[#changes + 1] = entry
  if self.scheduler then self.scheduler:change_recorded(entry) end
  self.bus:emit { type = "change_recorded", task = entry.task, kind = entry.kind, target = entry.target,
                  summary = entry.summary }
  if self.ledger then self.ledger:change_recorded(entry) end
end

---------------------------------------------------------------- signals

-- The first SIGINT/SIGTERM cancels everything (each cancelled task's
-- children die with their process groups) and gives both signals back
-- their default action, so a second one ends slipway at once, even if a
-- task is blocked in a call that holds up the event loop.
local function watch_signals(run, S)
  local signal = require("slipway.signal")
  local watcher = signal.watch { "SIGINT", "SIGTERM" }
  local sigtask = task.spawn_with(S.run_context, function()
    local got, name = pcall(watcher.next, watcher)
    if not got or not name then return end
    local again = watcher:pending() > 0
    watcher:close()
    local proc = package.loaded["slipway.proc"]
    if again then
      if proc then proc.kill_all("SIGKILL") end
      io.stderr:write("slipway: interrupted twice: exiting now\n")
      real_exit(name == "SIGTERM" and 143 or 130)
    end
    run.bus:emit { type = "warning", message = ("interrupted by %s: cancelling all tasks (again to exit at once)"):format(name) }
    S:interrupt(name)
    -- (children cancelled with a cancel_signal, such as the Pulumi CLI
    -- releasing its lock, get their grace; a second signal kills them too)
    if proc then proc.kill_all("SIGKILL", { spare_cancelling = true }) end
  end)
  return function()
    sigtask:cancel()
    watcher:close()
  end
end

-- os.exit inside a run would leave children running and the record
-- unwritten: it raises instead, as an error of the task that called it.
local function refuse_exit()
  local real = os.exit
  os.exit = function()
    error("os.exit: a pipeline task cannot exit slipway (its children and the run record would be lost); "
      .. "raise an error to fail the task, or return", 2)
  end
  return function() os.exit = real end
end

---------------------------------------------------------------- the record

-- The project's .slipway/ directory, next to the pipeline file.
local function slipway_dir(def)
  return (fs.realpath(dirname(def.file)) or dirname(def.file)) .. "/.slipway"
end

-- The run's own directory, .slipway/runs/<id>/ (the release's with the
-- local ledger): the timeline goes there.
local function run_dir(def, run_id)
  return slipway_dir(def) .. "/runs/" .. run_id
end

local function write_timeline(dir, rows, rollbacks, summary, def, duration_ms, run_id)
  local timeline = require("slipway.timeline")
  local svg = timeline.svg(rows, {
    title = ("%s — %s in %s (run %s)"):format(def.file, summary.status:gsub("_", " "),
      events.format_ms(duration_ms), run_id),
    duration_ms = duration_ms, rollbacks = rollbacks,
  })
  local ok, err = fs.mkdir(dir)
  -- (a picture: no fsync needed; masked like everything slipway writes)
  if ok then ok, err = fs.write(dir .. "/timeline.svg", require("slipway.secret").mask(svg)) end
  return ok, err
end

-- The ledger's side of the run (slipway.ledger.session), opened before
-- anything runs: nil and the message when the lock is held or the release
-- cannot be written.
local function open_ledger(def, values, plan, opts, record, run)
  local o = opts.ledger or {}
  local store = o.store or require("slipway.ledger.files").new(slipway_dir(def))
  local lock_on = o.lock
  if lock_on == nil then lock_on = not (def.pipeline and def.pipeline.lock == false) end
  return require("slipway.ledger.session").open {
    store = store, record = record, def = def, values = values,
    lock = lock_on, wait = o.wait, reason = o.reason, lease = o.lease or 60,
    -- room for the record's last writes: 256 KiB and 512 bytes a task
    reserve = 256 * 1024 + 512 * #plan.order,
    before_write = function()      -- (at the end, the run has set the final rows)
      if run.scheduler and record.status == "running" then
        record.tasks = json.array(unit_rows(run.scheduler.units, run.bus.t0))
      end
    end,
  }
end

local function exit_code(summary)
  if summary.status == "interrupted" then
    return summary.signal == "SIGTERM" and 143 or 130
  elseif summary.input_error then
    return 2           -- --only/--skip named an item the matrix does not have
  elseif summary.status ~= "success" then
    return 1
  end
  return 0
end

-- What a finally task gets: the release as it ended.
local function release_summary(run, def, values, summary, run_id, git_task)
  local durations, tasks = {}, {}
  for _, u in ipairs(summary.units) do
    if not u.node.task.finally then
      durations[u.name] = (u.started and u.finished) and round1(u.finished - u.started) or nil
      tasks[u.name] = u.status
    end
  end
  local changes = {}
  for i, c in ipairs(run.record.changes) do
    changes[i] = { kind = c.kind, target = c.target, summary = c.summary, status = c.status, task = c.task }
  end
  pcall(git_task.join, git_task)
  return {
    id = run_id, file = def.file, pipeline = run.record.pipeline, environment = run.record.environment,
    status = summary.status, verified = ledger.verified(summary.status, summary.units),
    params = release.params(values), version = values.version or values.tag, git = run.record.git,
    tasks = tasks, durations = durations, changes = json.array(changes),
    started_at = run.record.started_at, finished_at = events.iso_time(os.time()),
    duration_ms = round1(task.now() - run.bus.t0),
  }
end

-- After this run's own undo: the targets it changed that its undo took
-- back to a state no run verified (the release before this one touched
-- them and was interrupted, failed half way or not validated) go on to the
-- last verified release's state (slipway.ledger.restore). -> { {name, fn} }
local function restore_steps(run, session, def, values, run_id)
  local restore = require("slipway.ledger.restore")
  local wanted = {}
  for _, c in ipairs(run.record.changes) do
    if c.restorer and c.status == "rolled_back" then wanted[#wanted + 1] = c end
  end
  if #wanted == 0 then return {} end
  local releases, err = ledger.read(session.store,
    { pipeline = ledger.pipeline_name(def), environment = ledger.environment(values) })
  if not releases then
    run.bus:emit { type = "warning", message = "the ledger cannot be read for the last verified release: " .. tostring(err) }
    return {}
  end
  local steps, seen = {}, {}
  for _, c in ipairs(wanted) do
    local key = c.kind .. " " .. c.target
    local st = not seen[key] and restore.state_before(releases, c.kind, c.target, run_id)
    seen[key] = true
    if st then
      steps[#steps + 1] = {
        name = ("%s: back to verified release %s"):format(key, st.release),
        fn = function() restore.apply(st) end,
      }
    end
  end
  return steps
end

local function git_facts(dir)
  local ok, git = pcall(require, "slipway.git")
  if not ok then return nil end
  local got, head = pcall(git.head, { cwd = dir })
  if not got then return nil end
  local read, dirty = pcall(git.dirty, { cwd = dir })
  if read then head.dirty = dirty end
  return head
end

function M.execute(def, values, plan, opts, reporter)
  local bus = events.new()
  bus:subscribe(reporter.event)
  local run_id = new_run_id()
  local started_at = os.time()
  local record = release.new_record {
    id = run_id, file = def.file, params = release.params(values),
    started_at = events.iso_time(started_at), jobs = opts.jobs, tasks = json.array {},
  }
  for k, v in pairs(opts.record_fields or {}) do record[k] = v end
  local run = setmetatable({ bus = bus, record = record, scheduler = nil }, Run)
  -- git facts for the record, gathered while the tasks run
  local git_task = task.spawn(function()
    record.git = git_facts(dirname(def.file))
    if run.ledger then run.ledger:changed() end
  end)
  local session, why, signame = open_ledger(def, values, plan, opts, record, run)
  if not session then
    git_task:cancel()
    io.stderr:write("slipway: ", why, "\n")
    if signame then return signame == "SIGTERM" and 143 or 130 end
    return 1
  end
  run.ledger = session
  -- cached tasks: the last successful runs' keys, from the ledger
  local cache
  local guarded = params.guarded(values, def.params)
  for _, t in ipairs(def.tasks) do
    if t.cache and not cache then
      local made, c = pcall(require("slipway.pipeline.cache").new, def, guarded, session.store, opts.force)
      if not made then
        git_task:cancel()
        record.status = "failed"
        session:close()
        error(c, 0)
      end
      cache = c
    end
  end
  -- (waiting for the lock is not the run's time)
  bus.t0, bus.wall0, started_at = task.now(), os.time(), os.time()
  task.set_context(context._for_unit(run, nil))
  local restore_stdio = stdio.redirect()
  local restore_exit = refuse_exit()

  if reporter.start then reporter.start(bus) end
  local task_list = {}
  for i, t in ipairs(plan.order) do
    local d = plan.decision[t.name]
    task_list[i] = { name = t.name, needs = json.array(t.needs), run = d.run, reason = d.reason,
                     matrix = t.matrix ~= nil or nil, file = t.file, line = t.line }
  end
  bus:emit { type = "run_started", run_id = run_id, file = def.file, params = record.params,
             jobs = opts.jobs, tasks = json.array(task_list), time = events.iso_time(started_at) }
  session.warn = function(message) bus:emit { type = "warning", message = message } end
  if cache and cache.read_error then session.warn("the ledger cannot be read for the keys of cached tasks (they run): " .. cache.read_error) end
  for _, note in ipairs(session.notes) do session.warn(note) end

  local stop_watching
  -- (a bug of slipway's own must still put the signals, stdio and
  -- os.exit back: the signal watcher alone would keep the loop running)
  local ran, summary = xpcall(scheduler.run, debug.traceback, {
    def = def, plan = plan, values = guarded, jobs = opts.jobs, bus = bus, run = run,
    cache = cache,
    on_unit_end = function(u)
      if cache and u.node.task.cache then cache:finished(u) end
      stdio.flush(u)
      session:unit_finished(u)
    end,
    release_of = function(summary) return release_summary(run, def, values, summary, run_id, git_task) end,
    restore_steps = function() return restore_steps(run, session, def, values, run_id) end,
    on_interrupt = def.pipeline and def.pipeline.on_interrupt,
    on_start = function(S)
      run.scheduler = S
      stop_watching = watch_signals(run, S)
    end,
  })
  if stop_watching then stop_watching() end
  restore_exit()
  restore_stdio()
  if not ran then
    record.status = "failed"
    session:close()
    error(summary, 0)
  end

  local duration_ms = round1(task.now() - bus.t0)
  local code = exit_code(summary)
  local rows = unit_rows(summary.units, bus.t0)
  local rollbacks = {}
  for i, r in ipairs(summary.rollbacks) do
    rollbacks[i] = { name = r.name, kind = r.kind, status = r.status, error = r.error,
                     started = round1(r.started - bus.t0), finished = round1(r.finished - bus.t0),
                     duration_ms = r.duration_ms }
  end
  record.status = summary.status
  record.rollback_status = summary.rollback_status      -- (on_interrupt = "rollback")
  record.exit_code = code
  record.finished_at = events.iso_time(os.time())
  record.duration_ms = duration_ms
  record.tasks = json.array(rows)
  record.rollbacks = json.array(rollbacks)
  record.verified = ledger.verified(summary.status, summary.units)
  pcall(git_task.join, git_task)
  local written, err = session:close()
  if not written then
    bus:emit { type = "warning", message = "could not write the run record: " .. tostring(err) }
  end
  local record_path = written and session:location() or nil
  local record_dir = run_dir(def, run_id)
  local drawn, derr = write_timeline(record_dir, rows, rollbacks, summary, def, duration_ms, run_id)
  if not drawn then
    bus:emit { type = "warning", message = "could not write the timeline: " .. tostring(derr) }
    record_dir = nil
  end

  local brief = {}
  for i, r in ipairs(rows) do
    brief[i] = { task = r.name, status = r.status, duration_ms = r.duration_ms }
  end
  bus:emit { type = "run_finished", run_id = run_id, status = summary.status, exit_code = code,
             duration_ms = duration_ms, summary = json.array(brief),
             record = record_path, timeline = record_dir and (record_dir .. "/timeline.svg") or nil }
  reporter.close {
    status = summary.status, exit_code = code, duration_ms = duration_ms, units = summary.units,
    rollbacks = summary.rollbacks, record_dir = record_dir, run_id = run_id, file = def.file,
    record = record_path or ("release " .. run_id .. " in " .. session.store.where),
  }
  task.set_context(nil)
  return code
end

return M
