-- slipway show ID: one release of a pipeline's ledger, for people or as
-- JSON.
local ledger = require("slipway.ledger")
local history = require("slipway.cmd.history")
local events = require("slipway.events")

local M = {}

M.help = [[
usage: slipway show ID [FILE] [--json] [--ledger local|swarm]

Print release ID (or the start of one, when only one release has it) of the
pipeline in FILE (default deploy.lua): its status and whether it is
verified, who ran it where and when, the git commit, the parameters, each
task's status, duration and result, and what each integration changed.
--json prints the release as the ledger keeps it (with `effective_status`:
"interrupted" for a release left running by a process that is gone).
Exit 0; 1 when there is no such release.
]]

local printable = events.printable

local function short(v, max)
  local text = type(v) == "string" and v or require("slipway.json").encode(v, { invalid_utf8 = "replace" })
  text = printable(text)
  if #text > max then text = text:sub(1, max - 3) .. "..." end
  return text
end

local function params_text(params)
  if type(params) ~= "table" then return "-" end
  local parts = {}
  for _, k in ipairs(events.sorted_keys(params)) do
    parts[#parts + 1] = ("%s=%s"):format(printable(tostring(k)), short(params[k], 60))
  end
  return #parts > 0 and table.concat(parts, " ") or "(none)"
end

-- The release as text for people.
local function describe(r, where)
  local out = {}
  local function line(label, text) out[#out + 1] = ("%-9s %s"):format(label, text) end
  local status = tostring(r.effective or r.status):gsub("_", " ")
  line("release", r.id)
  line("pipeline", ("%s, environment %s"):format(printable(tostring(r.pipeline or "?")),
    printable(tostring(r.environment or "?"))))
  line("status", status .. (r.verified and ", verified" or ", not verified"))
  if r.why then line("", r.why) end
  if type(r.interrupted) == "table" then
    line("", ("marked interrupted by run %s at %s UTC%s"):format(tostring(r.interrupted.detected_by),
      history.when(r.interrupted.detected_at),
      r.interrupted.reason and (": " .. printable(tostring(r.interrupted.reason))) or ""))
  end
  if r.version then line("version", printable(tostring(r.version))) end
  local by = printable(tostring(r.who or "?")) .. " on " .. printable(tostring(r.host or "?"))
  if type(r.process) == "table" and r.process.pid then by = by .. (" (pid %s)"):format(tostring(r.process.pid)) end
  line("started", history.when(r.started_at) .. " UTC by " .. by)
  if r.finished_at then
    line("finished", ("%s UTC, after %s%s"):format(history.when(r.finished_at), events.format_ms(r.duration_ms),
      r.exit_code and (" (exit " .. tostring(r.exit_code) .. ")") or ""))
  end
  if type(r.git) == "table" and r.git.sha then
    line("git", ("%s%s%s"):format(r.git.sha, r.git.branch and (" on " .. printable(tostring(r.git.branch))) or "",
      r.git.dirty and " (with uncommitted changes)" or ""))
  end
  if type(r.ci) == "table" and r.ci.url then line("ci", printable(tostring(r.ci.url))) end
  line("params", params_text(r.params))
  out[#out + 1] = "tasks"
  local rows = {}
  for _, t in ipairs(r.tasks or {}) do
    local note = t.error and printable(tostring(t.error):match("^[^\n]*"))
      or t.reason and printable(tostring(t.reason))
      or t.result ~= nil and ("-> " .. short(t.result, 60)) or ""
    if t.verifies then note = "(verifies) " .. note end
    rows[#rows + 1] = { "  " .. printable(tostring(t.name)), tostring(t.status), events.format_ms(t.duration_ms), note }
  end
  if #rows > 0 then out[#out + 1] = history.columns(rows):gsub("\n$", "") else out[#out + 1] = "  (none)" end
  out[#out + 1] = "changes"
  rows = {}
  for _, c in ipairs(r.changes or {}) do
    local undo = c.undo and "" or ", no undo"
    rows[#rows + 1] = { "  " .. printable(tostring(c.kind)), printable(tostring(c.target)),
                        tostring(c.status or "applied") .. undo, printable(tostring(c.summary or "")) }
  end
  if #rows > 0 then out[#out + 1] = history.columns(rows):gsub("\n$", "") else out[#out + 1] = "  (none)" end
  if where then line("record", where) end
  return table.concat(out, "\n") .. "\n"
end

local function show(opts, store)
  local r, err = ledger.find(store, opts.id, { pipeline = opts.pipeline })
  if not r then
    io.stderr:write("slipway show: ", tostring(err), "\n")
    return 1
  end
  if opts.json then
    local json = require("slipway.json")
    r.effective_status, r.effective, r.written_at = r.effective or r.status, nil, nil
    r.interrupted_because, r.why = r.why, nil
    io.stdout:write(json.encode(r, { pretty = true, invalid_utf8 = "replace" }), "\n")
    return 0
  end
  io.stdout:write(describe(r, store:location(r.id)))
  return 0
end

function M.main(args)
  local opts, def, store = history.ledger_args("show", args, { "--json", "--ledger" }, { "id", "file" })
  if not opts then return def end
  if not opts.id then
    io.stderr:write("slipway show: which release? (give its id: `slipway history` lists them)\n")
    return 2
  end
  return history.in_task("show", show, opts, store)
end

return M
