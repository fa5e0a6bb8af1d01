-- slipway.release: the record of what a run changed and how to undo it.
-- (The contract integrations code against: /work/briefs/release-contract.md.)
--
--   release.current()            -- the active run record, or nil
--   release.add_change{ kind = "docker.stack", target = "sophia",
--     summary = "updated 3 services", data = {...}, undo = function() end }
--                                -- -> the change entry (a table)
--   release.mark_change(entry, "rolled_back" | "undo_failed", details)
--
-- During a pipeline run the record is the run's; it is written to
-- .slipway/runs/<id>/record.json (atomic write) at the end. On a failed run
-- the pipeline calls the `undo` functions in reverse order, interleaved with
-- task `rollback` functions by the order they were recorded, skipping
-- entries already marked. Outside a run (plain scripts, tests) add_change
-- works on an in-memory record that is never written.
--
-- Entry fields: kind, target, summary, data, undo (not written), task (the
-- task that made the change, when known), at (ms since the run started),
-- status ("applied", then "rolled_back" or "undo_failed"), details.
local task = require("slipway.task")

local M = {}

local active = nil       -- the run record while a pipeline runs
local scratch = nil      -- the in-memory record outside runs
local listeners = {}     -- fn(entry, what) for the pipeline ("added", "marked")

local CHANGE_KEYS = { kind = "string", target = "string", summary = "string", data = "table", undo = "function" }
local CHANGE_ORDER = { "kind", "target", "summary", "data", "undo" }
local MARKS = { rolled_back = true, undo_failed = true }

local function new_record(fields)
  local r = { changes = {} }
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

function M.current()
  return active or scratch
end

-- For the pipeline: make `record` the active one (fields it already has are
-- kept); returns it. end_run() makes no record active again.
function M.begin_run(record)
  active = new_record(record)
  return active
end

function M.end_run()
  local r = active
  active = nil
  return r
end

-- For the pipeline: fn(entry, what) is called on every add and mark.
function M.on_change(fn)
  listeners[#listeners + 1] = fn
  return function()
    for i, l in ipairs(listeners) do
      if l == fn then table.remove(listeners, i) break end
    end
  end
end

local function notify(entry, what)
  for _, l in ipairs(listeners) do l(entry, what) end
end

-- The task (unit) name that is running, set by the pipeline.
M.task_name = function() return nil end

function M.add_change(change)
  if type(change) ~= "table" then
    error("release.add_change: expected a table { kind, target, summary, data, undo }, got " .. type(change), 2)
  end
  for k, v in pairs(change) do
    local want = CHANGE_KEYS[k]
    if want == nil then
      error(("release.add_change: unknown field '%s' (valid: %s)"):format(tostring(k), table.concat(CHANGE_ORDER, ", ")), 2)
    end
    if type(v) ~= want then
      error(("release.add_change: %s must be a %s, got %s"):format(k, want, type(v)), 2)
    end
  end
  if change.kind == nil or change.target == nil then
    error("release.add_change: kind and target are required", 2)
  end
  local record = active
  if record == nil then
    scratch = scratch or new_record({ status = "scratch" })
    record = scratch
  end
  local entry = {
    kind = change.kind, target = change.target, summary = change.summary,
    data = change.data, undo = change.undo, status = "applied",
    task = M.task_name(), at = record.t0 and (task.now() - record.t0) or nil,
  }
  record.changes[#record.changes + 1] = entry
  notify(entry, "added")
  return entry
end

function M.mark_change(entry, status, details)
  if type(entry) ~= "table" or entry.status == nil then
    error("release.mark_change: expected an entry returned by release.add_change", 2)
  end
  if not MARKS[status] then
    error(("release.mark_change: status must be 'rolled_back' or 'undo_failed', got %s"):format(tostring(status)), 2)
  end
  if details ~= nil and type(details) ~= "string" and type(details) ~= "table" then
    error("release.mark_change: details must be a string or a table, got " .. type(details), 2)
  end
  entry.status = status
  entry.details = details
  notify(entry, "marked")
  return entry
end

-- A copy of the record fit for JSON: no functions, no internal fields.
function M.serializable(record)
  local json = require("slipway.json")
  local out = {}
  for k, v in pairs(record) do
    if k ~= "changes" and k ~= "t0" and type(v) ~= "function" then out[k] = v end
  end
  local changes = {}
  for i, c in ipairs(record.changes or {}) do
    changes[i] = {
      kind = c.kind, target = c.target, summary = c.summary, data = c.data,
      status = c.status, details = c.details, task = c.task,
      at_ms = c.at and math.floor(c.at + 0.5) or nil, undo = c.undo ~= nil,
    }
  end
  out.changes = json.array(changes)
  return out
end

-- Write record.json into dir (created if needed), atomically: the record as
-- pretty JSON; strings that are not UTF-8 (a program's output in an error
-- message) get U+FFFD for their bad bytes.
function M.write(record, dir)
  local fs = require("slipway.fs")
  local json = require("slipway.json")
  local ok, err = fs.mkdir(dir)
  if not ok then return nil, err end
  local text = json.encode(M.serializable(record), { pretty = true, invalid_utf8 = "replace" })
  return fs.write_atomic(dir .. "/record.json", text .. "\n")
end

-- Tests: forget the scratch record.
function M._reset()
  scratch = nil
end

return M
