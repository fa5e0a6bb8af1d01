-- slipway.reporters.style: what the human-facing reporters share: colours
-- (off unless enabled), status words and marks, durations, the end-of-run
-- summary table.
local events = require("slipway.events")

local M = {}

local CODES = {
  reset = "\27[0m", bold = "\27[1m", dim = "\27[2m", red = "\27[31m", green = "\27[32m",
  yellow = "\27[33m", blue = "\27[34m", magenta = "\27[35m", cyan = "\27[36m",
}
local NAME_COLOURS = { "cyan", "magenta", "blue", "yellow", "green" }

-- A painter: paint("red", text) -> text wrapped in colour codes, or text.
function M.painter(enabled)
  if not enabled then return function(_, text) return text end end
  return function(colour, text) return CODES[colour] .. text .. CODES.reset end
end

-- A stable colour per task name, so parallel output is easy to follow.
function M.name_colour(name)
  local h = 0
  local base = name:match("^[^%[]*")
  for i = 1, #base do h = (h * 31 + base:byte(i)) % 2147483647 end
  return NAME_COLOURS[h % #NAME_COLOURS + 1]
end

M.format_ms = events.format_ms

M.printable = events.printable

local FIELDS = { "task", "line", "error", "message", "reason", "kind", "target", "summary", "change", "file" }
local KEEP_NEWLINES = { error = true, message = true }
local CONTROL = "[%c\127\194]"
local find, printable = string.find, events.printable

-- ev, or a copy of it whose text fields are printable (M.printable; error
-- and message keep their newlines): what the human-facing reporters show.
function M.sanitize(ev)
  local copy
  for i = 1, #FIELDS do
    local k = FIELDS[i]
    local v = ev[k]
    if v and type(v) == "string" and find(v, CONTROL) then
      local safe = printable(v, KEEP_NEWLINES[k])
      if safe ~= v then
        if copy == nil then
          copy = {}
          for key, val in pairs(ev) do copy[key] = val end
        end
        copy[k] = safe
      end
    end
  end
  return copy or ev
end

local STATUS = {
  ok = { "ok", "green", "✓" },
  up_to_date = { "up to date", "green", "≡" },
  failed = { "failed", "red", "✗" },
  cancelled = { "cancelled", "yellow", "⊘" },
  skipped = { "skipped", "dim", "○" },
  pending = { "pending", "dim", "·" },
  running = { "running", "cyan", "…" },
}

-- word, colour, mark of a unit's status
function M.status(u)
  local s = STATUS[u.status] or { u.status, "dim", "?" }
  local word = s[1]
  if u.allowed then word = "failed (allowed)" end
  local colour = u.allowed and "yellow" or s[2]
  if u.rollback == "ok" then word = word .. ", rolled back"
  elseif u.rollback == "failed" then word = word .. ", rollback failed"
  elseif u.rollback == "left_in_place" then word, colour = word .. ", left in place", "yellow" end
  return word, colour, s[3]
end

local spaces = events.memo(function(n) return (" "):rep(n) end)

-- s padded with spaces to n columns; len: its width if known
local function pad(s, n, len)
  len = len or utf8.len(s) or #s
  if len >= n then return s end
  return s .. spaces[n - len]
end
M.pad = pad

-- The summary table printed at the end of every run.
-- units: the scheduler's units; result: { status, duration_ms, record_dir }
function M.summary(units, result, paint)
  local wname, wstatus = #"task", #"status"
  local words, colours, lens = {}, {}, {}
  local names = {}
  for i, u in ipairs(units) do
    local word, colour = M.status(u)
    local name = M.printable(u.name)
    local len = utf8.len(name) or #name
    names[i], words[i], colours[i], lens[i] = name, word, colour, len
    if len > wname then wname = len end
    if #word > wstatus then wstatus = #word end
  end
  local format_ms = M.format_ms
  local out = {}
  out[1] = paint("bold", pad("task", wname) .. "  " .. pad("status", wstatus) .. "  duration")
  for i, u in ipairs(units) do
    local dur = (u.started and u.finished) and format_ms(u.finished - u.started) or "-"
    out[i + 1] = pad(names[i], wname, lens[i]) .. "  " .. paint(colours[i], pad(words[i], wstatus, #words[i])) .. "  " .. dur
  end
  local status = result.status
  local colour = (status == "success") and "green" or (status == "interrupted" and "yellow" or "red")
  local line = ("%s in %s"):format(status:gsub("_", " "), M.format_ms(result.duration_ms))
  out[#out + 1] = paint("bold", paint(colour, line))
  if result.record_dir then
    out[#out + 1] = paint("dim", ("record: %s  timeline: %s/timeline.svg"):format(
      result.record or (result.record_dir .. "/record.json"), result.record_dir))
  end
  return table.concat(out, "\n") .. "\n"
end

-- Write the summary table of result (units, status...) to out, flushed.
function M.print_summary(out, result, paint)
  out:write(M.summary(result.units, result, paint))
  out:flush()
end

-- The first line of an error, and where it happened.
function M.error_line(u)
  local msg = u.error or "failed"
  if u.file and u.line and not msg:find(u.file .. ":" .. u.line, 1, true) then
    msg = ("%s:%d: %s"):format(u.file, u.line, msg)
  end
  return msg
end

return M
