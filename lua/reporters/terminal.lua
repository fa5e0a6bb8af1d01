-- slipway.reporters.terminal: the live view on a terminal. Below the lines
-- already printed, one line per running task (spinner, name, elapsed time,
-- its last output line) is redrawn in place ten times a second. A task that
-- ends collapses to one permanent line with its duration; a failure is
-- expanded with its last output lines and the error at the user's
-- file:line. The summary table follows at the end.
--
-- opts: out (default io.stdout), colour, width (a function returning the
-- terminal's columns and rows).
local task = require("slipway.task")
local style = require("slipway.reporters.style")

local M = {}

local SPINNER = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }
local TAIL = 15            -- output lines kept per task for a failure
local INTERVAL = 0.1       -- seconds between redraws

-- Printable text: no escape sequences or control characters (what is left
-- of a broken sequence is dropped with them).
local function clean(s)
  s = s:gsub("\27%[[%d;?]*[%a@]", ""):gsub("\27%][^\7]*\7", ""):gsub("\t", "  ")
  return (s:gsub("[%c]", ""))
end
M.clean = clean

-- At most n columns of s (counting code points; bytes if not UTF-8).
local function clip(s, n)
  if n <= 0 then return "" end
  local len = utf8.len(s)
  if len == nil then return s:sub(1, n) end
  if len <= n then return s end
  local cut = utf8.offset(s, n)       -- keep n-1 code points and an ellipsis
  return s:sub(1, cut - 1) .. "…"
end
M.clip = clip

function M.new(opts)
  local out = opts.out or io.stdout
  local paint = style.painter(opts.colour)
  local width = opts.width or function() return 80 end
  local self = {}
  local running, order = {}, {}     -- name -> {started, last}; start order
  local tails = {}
  local pending = {}                -- permanent lines not yet printed
  local drawn = 0                   -- live lines currently on screen
  local frame = 0
  local ticker
  local t_of = function() return 0 end

  local function permanent(text) pending[#pending + 1] = text end

  local function redraw(final)
    local buf = {}
    if drawn > 0 then buf[#buf + 1] = ("\r\27[%dA\27[J"):format(drawn) end
    for _, l in ipairs(pending) do buf[#buf + 1] = l .. "\n" end
    pending = {}
    drawn = 0
    if not final then
      local cols, rows = width()
      local now = t_of()
      local spin = SPINNER[frame % #SPINNER + 1]
      -- never more live lines than fit: the cursor cannot go back up past
      -- the top of the screen
      local room_lines = math.max(2, (rows or 24) - 2)
      local shown = #order
      if shown > room_lines then shown = room_lines - 1 end
      for i = 1, shown do
        local name = order[i]
        local r = running[name]
        local head = ("%s %s %s"):format(spin, name, style.format_ms(now - r.started))
        local room = cols - 1 - (utf8.len(head) or #head)
        local last = r.last and room > 4 and ("  " .. clip(r.last, room - 2)) or ""
        buf[#buf + 1] = paint("cyan", spin) .. " " .. paint("bold", name) .. " " ..
          paint("dim", style.format_ms(now - r.started)) .. paint("dim", last) .. "\n"
        drawn = drawn + 1
      end
      if shown < #order then
        buf[#buf + 1] = paint("dim", ("  … and %d more running"):format(#order - shown)) .. "\n"
        drawn = drawn + 1
      end
    end
    if #buf > 0 then
      out:write(table.concat(buf))
      out:flush()
    end
  end

  local function remove_running(name)
    if not running[name] then return end
    running[name] = nil
    for i, n in ipairs(order) do
      if n == name then table.remove(order, i) break end
    end
  end

  function self.start(bus)
    t_of = function() return bus:elapsed() end
    ticker = task.spawn(function()
      while true do
        task.sleep(INTERVAL)
        frame = frame + 1
        redraw(false)
      end
    end)
  end

  function self.event(ev)
    local ty = ev.type
    if ty == "output" then
      -- (output lines lose their escape sequences: colours of a compiler
      -- are no use in the live view, and nothing else gets through)
      local name = ev.task and style.printable(ev.task)
      local r = name and running[name]
      local line = clean(ev.line)
      if r then r.last = line end
      if name then
        local tl = tails[name]
        if tl == nil then tl = { n = 0 }; tails[name] = tl end
        tl.n = tl.n + 1
        tl[(tl.n - 1) % TAIL + 1] = line
      end
      return
    end
    ev = style.sanitize(ev)
    if ty == "task_started" then
      if not running[ev.task] then
        running[ev.task] = { started = ev.t }
        order[#order + 1] = ev.task
      end
    elseif ty == "task_finished" then
      remove_running(ev.task)
      local u = { status = ev.status, allowed = ev.allowed, error = ev.error, file = ev.file, line = ev.line }
      local word, colour, mark = style.status(u)
      local attempts = (ev.attempts and ev.attempts > 1) and (" (%d attempts)"):format(ev.attempts) or ""
      permanent(("%s %s %s%s"):format(paint(colour, mark), ev.task,
        paint("dim", style.format_ms(ev.duration_ms)), attempts) ..
        (ev.status == "ok" and "" or ("  " .. paint(colour, word))))
      if ev.status == "failed" then
        local tl = tails[ev.task]
        if tl then
          for i = math.max(1, tl.n - TAIL + 1), tl.n do
            permanent(paint("dim", "  │ ") .. tl[(i - 1) % TAIL + 1])
          end
        end
        for l in (style.error_line(u) .. "\n"):gmatch("([^\n]*)\n") do
          permanent("  " .. paint("red", (l == "" and "" or "→ ") .. l))
        end
      end
      tails[ev.task] = nil
    elseif ty == "task_retrying" then
      permanent(paint("yellow", ("↻ %s attempt %d failed: %s; retrying in %s"):format(ev.task, ev.attempt,
        ev.error or "?", style.format_ms(ev.delay_ms))))
    elseif ty == "task_skipped" then
      permanent(paint("dim", ("○ %s skipped: %s"):format(ev.task, ev.reason)))
    elseif ty == "rollback_finished" then
      local what = ev.change or ev.task
      permanent((ev.status == "ok" and paint("magenta", "↩") or paint("red", "↩")) ..
        (" rolled back %s %s%s"):format(what, paint("dim", style.format_ms(ev.duration_ms)),
        ev.status == "ok" and "" or ("  " .. paint("red", "failed: " .. (ev.error or "?")))))
    elseif ty == "change_recorded" then
      permanent(paint("dim", ("  %s changed %s %s%s"):format(ev.task or "", ev.kind, ev.target,
        ev.summary and (": " .. ev.summary) or "")))
    elseif ty == "warning" then
      permanent(paint("yellow", "! " .. ev.message))
    elseif ty == "run_started" then
      permanent(paint("bold", ("slipway: running %s (%s, -j %d)"):format(ev.file, require("slipway.words").count(#ev.tasks, "task"), ev.jobs)))
    end
  end

  function self.close(result)
    if ticker then ticker:cancel() end
    redraw(true)
    style.print_summary(out, result, paint)
  end

  return self
end

return M
