-- slipway.events: the one event stream of a run. The scheduler emits plain
-- tables ({type = "task_started", task = "build[a]", ...}); every reporter
-- (terminal, plain, GitHub, NDJSON) and the run record subscribe to the same
-- stream. The schema is documented in docs/events.md.
--
--   local bus = events.new()
--   bus:subscribe(function(ev) ... end)
--   bus:emit{ type = "warning", message = "..." }   -- adds ev.t
--   bus:emit(ev, at)                                 -- ev.t from task.now() reading at
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

local now = task.now

local mask_event = require("slipway.secret")._mask_event

-- at: the task.now() reading the event happened at, if the caller has it.
-- The sinks get the event as people may see it (slipway.secret.mask_deep:
-- secret values and passwords in URLs as ***, a copy where that changed
-- anything); the emitter keeps its own.
function Bus:emit(ev, at)
  ev.t = (((at or now()) - self.t0) * 10 + 0.5) // 1 / 10
  local shown = mask_event(ev)
  local sinks = self.sinks
  for i = 1, self.nsinks do sinks[i](shown) end
  return ev
end

-- Text as people may safely be shown it: every control character a
-- terminal or a log reader would act on (ESC, CR, backspace, newlines...;
-- not tab), DEL and the C1 controls become \x1b-style escapes, so that no
-- line of output, task name or matrix label can move the cursor, recolour
-- the screen or pass for another line. keep_newlines leaves \n for the
-- reporter to split a multi-line message into prefixed lines.
local function hex_escape(c) return ("\\x%02x"):format(c:byte()) end
local function escape_c0(c)
  if c == "\t" then return c end
  return hex_escape(c)
end
local function escape_c0_keep_nl(c)
  if c == "\t" or c == "\n" then return c end
  return hex_escape(c)
end
function M.printable(s, keep_newlines)
  if not s:find("[%c\127\194]") then return s end
  s = s:gsub("[%c\127]", keep_newlines and escape_c0_keep_nl or escape_c0)
  return (s:gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end))
end

-- ISO 8601 UTC time of a wall-clock instant (seconds).
function M.iso_time(secs)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", secs)
end

-- A table whose missing entries are make(key), made once: for texts a big
-- run would otherwise format thousands of times.
function M.memo(make)
  return setmetatable({}, { __index = function(t, key)
    local value = make(key)
    t[key] = value
    return value
  end })
end

-- The keys of table t, sorted (for output in a stable order).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- "1.2s", "350ms", "2m05s": how durations are shown to people.
local short_ms = M.memo(function(n) return ("%dms"):format(n) end)
function M.format_ms(ms)
  if ms == nil then return "-" end
  if ms < 999.5 then return short_ms[(ms + 0.5) // 1 | 0] end    -- (| 0: an integer key)
  if ms < 60000 then return ("%.1fs"):format(ms / 1000) end
  local s = math.floor(ms / 1000 + 0.5)
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60)
end

return M
