-- slipway.ledger.session: the ledger's side of one run. Before any task
-- runs it takes the lock of the pipeline and environment (waiting in line
-- with --lock-wait), writes the release ("running"; a store that cannot be
-- written is found here, not halfway), and marks the releases of the same
-- pipeline and environment that were left running by a process that died
-- as interrupted. While the run goes, a heartbeat (a task of the runtime's
-- own) renews the lock's lease and keeps the release fresh; units and
-- changes update the release. At the end it writes the finished release
-- and releases the lock.
--
--   session.open(opts) -> session | nil, message[, signal name (SIGINT or
--   SIGTERM ended the wait for the lock)]
--     opts: store, record (the run's, kept up to date by the run), def,
--     values, lock (boolean), wait (seconds or nil), reason, lease
--     (seconds), reserve (bytes), say(message) (before the run starts),
--     before_write() (refresh the record before each write)
--   s.notes             messages for the run's output once it started
--   s.warn = fn         where warnings go once the run started
--   s:unit_finished(u)  s:change_recorded(entry)  s:changed()
--   s:close(status) -> true | nil, err  (the record holds the final fields)
local task = require("slipway.task")
local ledger = require("slipway.ledger")
local lock = require("slipway.ledger.lock")

local M = {}

local Session = {}
Session.__index = Session

local function describe_release(rec)
  return ("run %s (started %s by %s)"):format(rec.id, (tostring(rec.started_at or "?"):gsub("T", " "):gsub("Z$", " UTC")),
    tostring(rec.who or "?"))
end

-- The heartbeat: renew the lock a few times per lease, and write the
-- release if nothing did for as long.
local function start_heartbeat(s, interval)
  return task.spawn_with(false, function()
    while true do
      task.sleep(interval)
      if s.held then
        local ok, err = s.held:renew()
        if not ok and not s.lost then
          s.lost = true
          s.warn(err)
        end
      end
      s.writer:keepalive(interval)
    end
  end)
end

-- Waiting in line can take long: SIGINT/SIGTERM end the wait (the place
-- in line is given back). -> held | nil, message[, signal name]
local function acquire_interruptibly(store, opts)
  if not opts.wait then return lock.acquire(store, opts) end
  local watcher = require("slipway.signal").watch { "SIGINT", "SIGTERM" }
  local waiting = task.spawn_with(false, lock.acquire, store, opts)
  local got
  local listener = task.spawn_with(false, function()
    local ok, name = pcall(watcher.next, watcher)
    if ok and name then
      got = name
      waiting:cancel()
    end
  end)
  waiting:wait()
  listener:cancel()
  listener:wait()
  watcher:close()
  local r = table.pack(waiting:result())
  if got then
    if r[1] and r[2] then r[2]:release() end
    return nil, ("interrupted by %s while waiting for the lock"):format(got), got
  end
  if not r[1] then error(r[2], 0) end
  return r[2], r[3]
end

function M.open(o)
  local store, record = o.store, o.record
  local me = ledger.identity()
  record.pipeline = ledger.pipeline_name(o.def)
  record.environment = ledger.environment(o.values)
  record.version = ledger.version(o.values)
  record.status, record.verified = "running", false
  record.who, record.host, record.ci = me.user, me.host, me.ci
  record.process = { pid = me.pid, start = me.start, boot_id = me.boot_id }
  record.lease_s, record.ledger = o.lease, store.kind
  local say = o.say or function(msg) io.stderr:write("slipway: ", msg, "\n") end
  local s = setmetatable({ store = store, record = record, notes = {}, warn = say }, Session)

  if o.lock then
    local held, err, signame = acquire_interruptibly(store, {
      pipeline = record.pipeline, environment = record.environment, run_id = record.id, lease = o.lease,
      wait = o.wait,
      reason = o.reason or ("slipway run %s"):format(o.def.file),
      on_wait = function(what)
        say(("waiting for the lock of %s/%s: it is %s"):format(record.pipeline, record.environment, what))
      end,
      on_takeover = function(old)
        s.notes[#s.notes + 1] = ("took over the lock of %s/%s: its lease ran out (held by %s)")
          :format(record.pipeline, record.environment, lock.describe(old))
      end,
    })
    if not held then return nil, err, signame end
    s.held = held
  end

  -- (the release starts once it holds the lock: the wait is not its time)
  record.started_at = require("slipway.events").iso_time(os.time())
  local writer, err = ledger.begin(store, record, {
    reserve = o.reserve,
    warn = function(msg) s.warn(msg) end,
    before_write = o.before_write,
    started = { pipeline = record.pipeline, environment = record.environment, who = record.who,
                host = record.host, pid = me.pid, version = record.version },
  })
  if not writer then
    if s.held then s.held:release() end
    return nil, ("cannot write the release to %s (nothing ran): %s"):format(store.where, tostring(err))
  end
  s.writer = writer

  for _, rec in ipairs(ledger.mark_interrupted(store, record, record.id)) do
    s.notes[#s.notes + 1] = ("%s was interrupted: %s; its release is now marked interrupted")
      :format(describe_release(rec), rec.why or "its process is gone")
  end
  s.heartbeat = start_heartbeat(s, math.max(0.2, (o.lease or 60) / 3))
  return s
end

function Session:changed()
  if self.writer then self.writer:touch() end
end

function Session:unit_finished(u)
  self.writer:task_finished(u.name, u.status,
    (u.started and u.finished) and ((u.finished - u.started) * 10 + 0.5) // 1 / 10 or nil)
end

function Session:change_recorded(entry)
  self.writer:event { event = "change", task = entry.task, kind = entry.kind, target = entry.target,
                      summary = entry.summary }
end

-- The last write (the record holds the final status, verified, tasks...),
-- then the lock goes.
function Session:close()
  if self.heartbeat then
    self.heartbeat:cancel()
    self.heartbeat:wait()
  end
  local r = self.record
  local ok, err = self.writer:finish { event = "finished", status = r.status, verified = r.verified,
                                       exit_code = r.exit_code, duration_ms = r.duration_ms }
  if self.held then
    local released, rerr = self.held:release()
    if not released then self.warn("could not release the lock: " .. tostring(rerr)) end
  end
  return ok, err
end

-- Where people can open the release (a path), or nil.
function Session:location()
  return self.store:location(self.record.id)
end

return M
