-- slipway.reporters.plain: one line per event, prefixed with the task's
-- name, for logs and CI (not a terminal, or CI=true). Output lines of
-- parallel tasks interleave but each names its task.
--
--   [build[a]] started
--   [build[a]] Compiling...
--   [build[a]] ok in 1.2s
--   [deploy] failed in 0.3s: deploy.lua:12: sh: exit code 1: make deploy
--
-- opts: out (a file, default io.stdout), colour, timestamps (prefix each
-- line with the time since the start, "+1.234s"). Text from the run is
-- shown escaped (style.sanitize): control characters cannot forge lines.
local style = require("slipway.reporters.style")

local M = {}

function M.new(opts)
  local out = opts.out or io.stdout
  local paint = style.painter(opts.colour)
  local timestamps = opts.timestamps
  local self = {}

  -- task name -> "[name] ", coloured once (a name is seen at least twice:
  -- started, finished)
  local prefixes = require("slipway.events").memo(function(name)
    return opts.colour and (paint(style.name_colour(name), "[" .. name .. "]") .. " ") or ("[" .. name .. "] ")
  end)
  local function one_line(ev, prefix, text)
    if timestamps then
      out:write(paint("dim", ("+%.3fs "):format(ev.t / 1000)), prefix, text, "\n")
    else
      out:write(prefix, text, "\n")
    end
  end
  -- (a multi-line message: every line with the prefix, so none of them can
  -- pass for a line of another task)
  local function line(ev, name, text)
    local prefix = name and prefixes[name] or ""
    if not text:find("\n", 1, true) then return one_line(ev, prefix, text) end
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do one_line(ev, prefix, l) end
  end

  function self.event(ev)
    ev = style.sanitize(ev)
    local ty = ev.type
    if ty == "output" then
      line(ev, ev.task, ev.line)
    elseif ty == "task_started" then
      line(ev, ev.task, "started")
    elseif ty == "task_finished" then
      local word, colour = style.status(ev)
      local text = paint(colour, word) .. " in " .. style.format_ms(ev.duration_ms)
      if ev.status == "failed" then text = text .. ": " .. style.error_line(ev) end
      if ev.attempts and ev.attempts > 1 then text = text .. (" (%d attempts)"):format(ev.attempts) end
      line(ev, ev.task, text)
    elseif ty == "task_retrying" then
      line(ev, ev.task, ("attempt %d failed: %s; retrying in %s"):format(ev.attempt, ev.error or "?",
        style.format_ms(ev.delay_ms)))
    elseif ty == "task_skipped" then
      line(ev, ev.task, paint("dim", "skipped: " .. ev.reason))
    elseif ty == "matrix_expanded" then
      local items = {}
      for i, label in ipairs(ev.items) do items[i] = style.printable(label) end
      line(ev, ev.task, ("matrix: %s (%s)"):format(require("slipway.words").count(#items, "item"), table.concat(items, ", ")))
    elseif ty == "rollback_started" then
      line(ev, ev.task, "rolling back" .. (ev.change and (" " .. ev.change) or ""))
    elseif ty == "rollback_finished" then
      line(ev, ev.task, ("rollback%s %s in %s%s"):format(ev.change and (" of " .. ev.change) or "",
        ev.status == "ok" and paint("green", "ok") or paint("red", "failed"),
        style.format_ms(ev.duration_ms), ev.error and (": " .. ev.error) or ""))
    elseif ty == "change_recorded" then
      line(ev, ev.task, ("changed %s %s%s"):format(ev.kind, ev.target, ev.summary and (": " .. ev.summary) or ""))
    elseif ty == "warning" then
      line(ev, nil, paint("yellow", "warning: " .. ev.message))
    elseif ty == "run_started" then
      line(ev, nil, paint("bold", ("slipway: running %s (%s, -j %d)"):format(ev.file, require("slipway.words").count(#ev.tasks, "task"), ev.jobs)))
    end
  end

  function self.close(result)
    style.print_summary(out, result, paint)
  end

  return self
end

return M
