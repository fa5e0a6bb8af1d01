-- slipway.events: the one event stream of a run. The scheduler emits plain
-- tables ({type = "task_started", task = "build[a]", ...}); every reporter
-- (terminal, plain, GitHub, NDJSON) and the run record subscribe to the same
-- stream. The schema is documented in docs/events.md.
--
--   local bus = events.new()
--   bus:subscribe(function(ev) ... end)
--   bus:emit{ type = "warning", message = "..." }   -- adds ev.t
--
-- ev.t is milliseconds since the bus was created (the run's start), with
-- 0.1 ms resolution, so a whole run can be laid out on one time axis.
local task = require("slipway.task")

local M = {}

local Bus = {}
Bus.__index = Bus

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    sinks = {},
    nsinks = 0,
    t0 = opts.t0 or task.now(),
    wall0 = os.time(),
  }, Bus)
end

function Bus:subscribe(fn)
  self.nsinks = self.nsinks + 1
  self.sinks[self.nsinks] = fn
end

-- ms since the start, rounded to 0.1 ms
function Bus:elapsed()
  return math.floor((task.now() - self.t0) * 10 + 0.5) / 10
end

function Bus:emit(ev)
  ev.t = math.floor((task.now() - self.t0) * 10 + 0.5) / 10
  local sinks = self.sinks
  for i = 1, self.nsinks do sinks[i](ev) end
  return ev
end

-- ISO 8601 UTC time of a wall-clock instant (seconds).
function M.iso_time(secs)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", secs)
end

-- "1.2s", "350ms", "2m05s": how durations are shown to people.
function M.format_ms(ms)
  if ms == nil then return "-" end
  if ms < 1000 then return ("%dms"):format(math.floor(ms + 0.5)) end
  if ms < 60000 then return ("%.1fs"):format(ms / 1000) end
  local s = math.floor(ms / 1000 + 0.5)
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
end

return M
