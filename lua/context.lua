-- slipway.context: where the running code is, and the one way its output
-- and its changes leave it.
--
-- Every task carries a context value (slipway.task: context(),
-- set_context(), spawn_with()); a task that another one spawns inherits
-- it, so code deep inside a module, or in a task it started, knows which
-- run and which unit of the pipeline it works for without anyone passing
-- it along. During a pipeline run the context of a unit's tasks is the
-- table M._for_unit(run, unit) makes; outside runs (plain scripts, tests) it
-- is nil and everything below still works:
--
--   context.in_run()                  -- inside a pipeline run?
--   context.run(), context.unit()     -- the run object and the unit (task,
--                                     -- matrix item or rollback) or nil
--   context.output(stream, line)      -- one line of output ("stdout" or
--                                     -- "stderr"), without its newline
--   context.warn(message)             -- a warning of the current code
--   (both masked, in runs and outside: slipway.secret)
--   context.add_change{ kind, target, summary, data, undo, restorer } -> entry
--     (restorer: the module whose restore(data) brings the target back to
--     the state data records, for `slipway rollback`; see
--     lua/ledger/restore.lua)
--   context.mark_change(entry, "rolled_back" | "undo_failed", details)
--
-- The run object (lua/pipeline/run.lua makes it) answers
-- run:output(unit, stream, line), run:warn(unit, message) and
-- run:change(unit, entry, what) (what: "added" or "marked"). Natives read
-- one field of a context, `output`, a function(line, stream) for children
-- whose output was to be inherited (src/proc.c): inside a run it becomes
-- the unit's output too.
local task = require("slipway.task")

local M = {}

local get = task.context

local mask = require("slipway.secret").mask

-- Outside runs: lines go where a plain Lua script would write them, masked
-- (secret values, passwords in URLs) as a run's output events are.
local function write_plain(stream, line)
  local f = stream == "stderr" and io.stderr or io.stdout
  f:write(mask(line), "\n")
end

function M.output(stream, line)
  local c = get()
  if c then return c.run:output(c.unit, stream, line) end
  write_plain(stream, line)
end

-- (the `output` field of every run context: the line-callback shape proc
-- uses)
local function child_line(line, stream)
  local c = get()
  if c then return c.run:output(c.unit, stream, line) end
  write_plain(stream, line)
end

-- The context of the tasks that work for `unit` of `run` (unit nil: the
-- run itself).
function M._for_unit(run, unit)
  return { run = run, unit = unit, output = child_line }
end

function M.in_run()
  return get() ~= nil
end

function M.run()
  local c = get()
  return c and c.run
end

function M.unit()
  local c = get()
  return c and c.unit
end

function M.warn(message)
  local c = get()
  if c then return c.run:warn(c.unit, message) end
  io.stderr:write("warning: ", mask(message), "\n")
end

local CHANGE_KEYS = { kind = "string", target = "string", summary = "string", data = "table", undo = "function",
                      restorer = "string" }
local CHANGE_ORDER = { "kind", "target", "summary", "data", "undo", "restorer" }
local unknown_option = require("slipway.caller").unknown_option
local MARKS = { rolled_back = true, undo_failed = true }

-- Record that the current code changed something (a stack, a deployment),
-- with how to undo it. Returns the entry: kind, target, summary, data,
-- undo, status ("applied"), and, in a run, the unit's name as `task`.
function M.add_change(change)
  if type(change) ~= "table" then
    error("context.add_change: expected a table { kind, target, summary, data, undo }, got " .. type(change), 2)
  end
  local unknown = unknown_option(change, CHANGE_ORDER)
  if unknown ~= nil then
    error(("context.add_change: unknown field '%s' (valid: %s)"):format(tostring(unknown), table.concat(CHANGE_ORDER, ", ")), 2)
  end
  for k, v in pairs(change) do
    local want = CHANGE_KEYS[k]
    if type(v) ~= want then
      error(("context.add_change: %s must be a %s, got %s"):format(k, want, type(v)), 2)
    end
  end
  if change.kind == nil or change.target == nil then
    error("context.add_change: kind and target are required", 2)
  end
  local entry = {
    kind = change.kind, target = change.target, summary = change.summary,
    data = change.data, undo = change.undo, restorer = change.restorer, status = "applied",
  }
  local c = get()
  if c then c.run:change(c.unit, entry, "added") end
  return entry
end

function M.mark_change(entry, status, details)
  if type(entry) ~= "table" or entry.status == nil then
    error("context.mark_change: expected an entry returned by context.add_change", 2)
  end
  if not MARKS[status] then
    error(("context.mark_change: status must be 'rolled_back' or 'undo_failed', got %s"):format(tostring(status)), 2)
  end
  if details ~= nil and type(details) ~= "string" and type(details) ~= "table" then
    error("context.mark_change: details must be a string or a table, got " .. type(details), 2)
  end
  entry.status = status
  entry.details = details
  local c = get()
  if c then c.run:change(c.unit, entry, "marked") end
  return entry
end

return M
