-- slipway.reporters.github: on GitHub Actions (GITHUB_ACTIONS=true).
--   * each task's output is one collapsible ::group:: (printed when the
--     task ends, so parallel tasks do not interleave inside a group), with
--     workflow commands switched off inside it (::stop-commands::), so that
--     a line a task prints cannot pass for one of slipway's annotations,
--     set an output or mask;
--   * a failure is an ::error file=...,line=...:: annotation on the user's
--     line in deploy.lua;
--   * the summary table is appended to $GITHUB_STEP_SUMMARY as Markdown;
--   * outputs go to $GITHUB_OUTPUT: status, run_id, and each task's result
--     (a string or number -> <task>=<value>; a table of them ->
--     <task>_<key>=<value>), names made of [A-Za-z0-9_-];
--   * the step summary and the outputs are masked (slipway.secret), and
--     every secret was announced with ::add-mask:: when it was made
--     (src/secret.c), before anything could print it.
local style = require("slipway.reporters.style")

local M = {}

-- Workflow-command escaping (data, and property values).
local function esc_data(s)
  return (tostring(s):gsub("%%", "%%25"):gsub("\r", "%%0D"):gsub("\n", "%%0A"))
end
local function esc_prop(s)
  return (esc_data(s):gsub(":", "%%3A"):gsub(",", "%%2C"))
end
M.esc_data, M.esc_prop = esc_data, esc_prop

local function output_name(s)
  return (tostring(s):gsub("[^%w_%-]", "_"))
end

local mask = require("slipway.secret").mask

-- (name and value masked: a task may return a secret's value)
local function write_output(f, name, value)
  name, value = mask(name), mask(tostring(value))
  if value:find("\n") then
    local delim = "SLIPWAY_EOF"
    while value:find(delim, 1, true) do delim = delim .. "_" end
    f:write(name, "<<", delim, "\n", value, "\n", delim, "\n")
  else
    f:write(name, "=", value, "\n")
  end
end

function M.new(opts)
  local out = opts.out or io.stdout
  local paint = style.painter(opts.colour)
  local getenv = opts.getenv or os.getenv
  local self = {}
  local buffered = {}      -- task -> output lines until it ends
  local token = require("slipway.hash").random_hex(16)

  local function print_group(title, lines)
    out:write("::group::", title, "\n")
    if lines and #lines > 0 then
      out:write("::stop-commands::", token, "\n")
      for _, l in ipairs(lines) do out:write(l, "\n") end
      out:write("::", token, "::\n")
    end
    out:write("::endgroup::\n")
  end

  function self.event(ev)
    ev = style.sanitize(ev)
    local ty = ev.type
    if ty == "output" then
      local name = ev.task or "(pipeline)"
      local b = buffered[name]
      if b == nil then b = {}; buffered[name] = b end
      b[#b + 1] = ev.line
    elseif ty == "task_finished" then
      local u = { status = ev.status, allowed = ev.allowed, error = ev.error, file = ev.file, line = ev.line }
      local word = style.status(u)
      local _, _, mark = style.status(u)
      print_group(("%s %s (%s, %s)"):format(mark, ev.task, word, style.format_ms(ev.duration_ms)),
        buffered[ev.task])
      buffered[ev.task] = nil
      if ev.status == "failed" then
        local props = { "title=" .. esc_prop(ev.task .. " failed") }
        if ev.file then
          -- annotations want a path relative to the checkout
          local file, ws = ev.file, getenv("GITHUB_WORKSPACE")
          if ws and ws ~= "" and file:sub(1, #ws + 1) == ws .. "/" then file = file:sub(#ws + 2) end
          table.insert(props, 1, "file=" .. esc_prop(file))
        end
        if ev.line then table.insert(props, 2, "line=" .. ev.line) end
        out:write(ev.allowed and "::warning " or "::error ", table.concat(props, ","), "::",
          esc_data(ev.error or "failed"), "\n")
      end
    elseif ty == "task_retrying" then
      out:write("::warning title=", esc_prop(ev.task .. " retrying"), "::",
        esc_data(("attempt %d failed: %s"):format(ev.attempt, ev.error or "?")), "\n")
    elseif ty == "task_skipped" then
      out:write(("○ %s skipped: %s\n"):format(ev.task, ev.reason))
    elseif ty == "rollback_finished" then
      local what = ev.change or ev.task
      out:write(("↩ rollback of %s: %s%s\n"):format(what, ev.status, ev.error and (": " .. ev.error) or ""))
      if ev.status ~= "ok" then
        out:write("::error title=", esc_prop("rollback of " .. what .. " failed"), "::", esc_data(ev.error or "failed"), "\n")
      end
    elseif ty == "warning" then
      out:write("::warning::", esc_data(ev.message), "\n")
    elseif ty == "run_started" then
      out:write(("slipway: running %s (%s, -j %d)\n"):format(ev.file, require("slipway.words").count(#ev.tasks, "task"), ev.jobs))
    end
  end

  function self.close(result)
    for name, lines in pairs(buffered) do print_group(name, lines) end
    style.print_summary(out, result, paint)
    local path = getenv("GITHUB_STEP_SUMMARY")
    if path and path ~= "" then
      local f = io.open(path, "a")
      if f then
        local md = { ("### slipway: %s — %s in %s\n\n"):format(result.file or "pipeline",
          result.status:gsub("_", " "), style.format_ms(result.duration_ms)),
          "| task | status | duration |\n|---|---|---|\n" }
        for _, u in ipairs(result.units) do
          local word, _, mark = style.status(u)
          local dur = (u.started and u.finished) and style.format_ms(u.finished - u.started) or "-"
          md[#md + 1] = ("| %s | %s %s | %s |\n"):format(u.name:gsub("|", "\\|"), mark, word, dur)
        end
        f:write(mask(table.concat(md)), "\n")
        f:close()
      end
    end
    path = getenv("GITHUB_OUTPUT")
    if path and path ~= "" then
      local f = io.open(path, "a")
      if f then
        write_output(f, "status", result.status)
        if result.run_id then write_output(f, "run_id", result.run_id) end
        for _, u in ipairs(result.units) do
          local r = u.result
          local ty = type(r)
          if ty == "string" or ty == "number" or ty == "boolean" then
            write_output(f, output_name(u.name), r)
          elseif ty == "table" then
            local keys = {}
            for k, v in pairs(r) do
              local vt = type(v)
              if type(k) == "string" and (vt == "string" or vt == "number" or vt == "boolean") then
                keys[#keys + 1] = k
              end
            end
            table.sort(keys)
            for _, k in ipairs(keys) do write_output(f, output_name(u.name .. "_" .. k), r[k]) end
          end
        end
        f:close()
      end
    end
  end

  return self
end

return M
