-- slipway.timeline: a picture of a run as SVG. One row per task (matrix
-- items each get their own), a bar from its start to its end on a shared
-- time axis, coloured by status, so what ran in parallel, and for how long,
-- is visible at a glance. Rollback steps follow as rows of their own.
--
--   timeline.svg(units, { title = "...", duration_ms = N, rollbacks = {...} })
--     units: { name, status, started, finished, allowed } with started and
--     finished in ms on the run's clock (0 = start); skipped units are
--     listed with no bar.
local M = {}

local COLOURS = {
  ok = "#2da44e", failed = "#cf222e", cancelled = "#bf8700", skipped = "#8c959f",
  allowed = "#e16f24", rollback = "#8250df", rollback_failed = "#a40e26",
}

local events = require("slipway.events")

-- Text for the SVG: valid UTF-8, no control character (XML forbids most of
-- them, and they would be no use in a picture), markup escaped.
local function esc(s)
  s = events.printable(require("slipway.json").replace_invalid_utf8(tostring(s)))
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end
M.escape = esc

-- A tick step of 1, 2 or 5 x 10^k ms giving about `want` ticks.
local function tick_step(total, want)
  local raw = total / want
  local p = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs({ 1, 2, 5, 10 }) do
    if m * p >= raw then return m * p end
  end
  return 10 * p
end

local function tick_label(ms, step)
  if step >= 1000 then
    local s = ms / 1000
    if s >= 60 and step >= 60000 then return ("%dm"):format(math.floor(s / 60)) end
    if step % 1000 == 0 then return ("%ds"):format(math.floor(s + 0.5)) end
    return ("%.1fs"):format(s)
  end
  return ("%dms"):format(math.floor(ms + 0.5))
end

local function fmt_ms(ms)
  if ms < 1000 then return ("%dms"):format(math.floor(ms + 0.5)) end
  return ("%.2fs"):format(ms / 1000)
end

function M.svg(units, opts)
  opts = opts or {}
  local rows = {}
  local total = opts.duration_ms or 0
  for _, u in ipairs(units) do
    rows[#rows + 1] = u
    if u.finished and u.finished > total then total = u.finished end
  end
  for _, r in ipairs(opts.rollbacks or {}) do
    rows[#rows + 1] = { name = "↩ " .. r.name, status = r.status == "ok" and "rollback" or "rollback_failed",
                        started = r.started, finished = r.finished }
    if r.finished and r.finished > total then total = r.finished end
  end
  if total <= 0 then total = 1 end

  local label_w = 40
  for _, r in ipairs(rows) do label_w = math.max(label_w, (utf8.len(r.name) or #r.name) * 7 + 16) end
  label_w = math.min(label_w, 320)
  local chart_w = 720
  local row_h, bar_h = 22, 14
  local top, bottom = 48, 48
  local width = label_w + chart_w + 24
  local height = top + #rows * row_h + bottom
  local function x(ms) return label_w + ms / total * chart_w end

  local out = {}
  local function add(s) out[#out + 1] = s end
  add(('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">')
    :format(width, height, width, height))
  add(('<rect width="%d" height="%d" fill="#ffffff"/>'):format(width, height))
  add(('<text x="12" y="22" font-size="14" font-weight="bold" fill="#1f2328">%s</text>')
    :format(esc(opts.title or "slipway run")))

  -- row bands first, so the grid lines stay visible on top of them
  local band_tail = '" width="' .. width .. '" height="' .. row_h .. '" fill="#f6f8fa"/>'
  for i = 2, #rows, 2 do
    add('<rect x="0" y="' .. (top + (i - 1) * row_h) .. band_tail)
  end

  -- time axis: grid lines and labels
  local step = tick_step(total, 8)
  local axis_y = top + #rows * row_h + 6
  local t = 0
  while t <= total + 1e-9 do
    local gx = x(t)
    add(('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#d0d7de" stroke-width="1"/>')
      :format(gx, top - 4, gx, axis_y))
    add(('<text x="%.1f" y="%d" text-anchor="middle" fill="#57606a">%s</text>')
      :format(gx, axis_y + 14, tick_label(t, step)))
    t = t + step
  end

  local LABEL = '<text x="%d" y="%d" text-anchor="end" fill="#1f2328">%s</text>'
  local BAR = '<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="3" fill="%s"><title>%s: %s, %s (%s to %s)</title></rect>'
  local DUR = '<text x="%.1f" y="%d" fill="#57606a" font-size="11"%s>%s</text>'
  local SKIP = '<text x="%d" y="%d" fill="%s" font-size="11" font-style="italic">%s</text>'
  local bar_dy = (row_h - bar_h) // 2
  -- Big runs: no duration label beside each bar and a shorter tooltip
  -- (the picture is for the shape of the run; the record has the numbers).
  -- They are also drawn on whole pixels and written by concatenation,
  -- not string.format: thousands of rows of floats formatted by printf
  -- would cost more than the rest of the run.
  local compact = #rows > 200
  local label_open = '<text x="' .. (label_w - 8) .. '" y="'
  local label_dy, label_mid = row_h // 2 + 4, '" text-anchor="end" fill="#1f2328">'
  local bar_tail = '" height="' .. bar_h .. '" rx="3" fill="'
  local num = require("slipway.events").memo(tostring)   -- x, widths, ms repeat
  for i, r in ipairs(rows) do
    local y = top + (i - 1) * row_h
    local name = r.name:find("[%c&<>\"'\127-\255]") and esc(r.name) or r.name
    local colour = COLOURS[r.allowed and "allowed" or r.status] or COLOURS.skipped
    if compact and r.started and r.finished then
      -- (// 1 | 0: whole numbers as integers, which print without ".0")
      local x0 = (x(r.started) + 0.5) // 1 | 0
      local w = ((x(r.finished) + 0.5) // 1 | 0) - x0
      if w < 2 then w = 2 end
      local ms = r.finished - r.started
      add(label_open .. (y + label_dy) .. label_mid .. name .. '</text>\n<rect x="' .. num[x0] .. '" y="' .. (y + bar_dy) ..
        '" width="' .. num[w] .. bar_tail .. colour .. '"><title>' .. name .. ": " .. r.status .. ", " ..
        (ms < 999.5 and (num[(ms + 0.5) // 1 | 0] .. "ms") or fmt_ms(ms)) .. "</title></rect>")
    elseif r.started and r.finished then
      add(LABEL:format(label_w - 8, y + row_h // 2 + 4, name))
      local x0 = x(r.started)
      local w = math.max(2, x(r.finished) - x0)
      local text = fmt_ms(r.finished - r.started)
      add(BAR:format(x0, y + bar_dy, w, bar_h, colour, name, r.status, text, fmt_ms(r.started), fmt_ms(r.finished)))
      local tx = x0 + w + 4
      if tx + 40 > width then tx = x0 - 4 end
      add(DUR:format(tx, y + row_h // 2 + 4, tx < x0 and ' text-anchor="end"' or "", text))
    else
      add(LABEL:format(label_w - 8, y + row_h // 2 + 4, name))
      add(SKIP:format(label_w + 4, y + row_h // 2 + 4, COLOURS.skipped, esc(r.status or "skipped")))
    end
  end

  -- legend
  local lx, ly = label_w, height - 14
  for _, item in ipairs({ { "ok", "ok" }, { "failed", "failed" }, { "cancelled", "cancelled" },
                          { "allowed", "failed (allowed)" }, { "rollback", "rollback" } }) do
    add(('<rect x="%d" y="%d" width="12" height="12" rx="2" fill="%s"/>'):format(lx, ly - 10, COLOURS[item[1]]))
    add(('<text x="%d" y="%d" fill="#57606a">%s</text>'):format(lx + 16, ly, item[2]))
    lx = lx + 30 + #item[2] * 7
  end
  add("</svg>")
  return table.concat(out, "\n") .. "\n"
end

return M
