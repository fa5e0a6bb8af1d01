-- slipway.pulumi.events: an operation (preview, up, refresh, destroy) with
-- its engine event log read while the CLI runs, turned into the task's
-- progress lines and the operation's outcome.
--
-- The log is a file in a private temporary directory, passed as
-- `--event-log FILE`; src/pulumi.c reads what the CLI appended (every
-- POLL, on a task of its own, until the CLI exits, then the rest). Events
-- (apitype.EngineEvent) become:
--   resource steps   "+ aws:s3/bucket:Bucket media created [diff: ~acl]"
--                    (planned ones in a preview: "+ ... media create",
--                    also kept as the preview's steps)
--   resOpFailedEvent "! aws:... media update failed"
--   diagnostics      warnings -> context.warn, errors -> stderr lines (and
--                    the failure's message), info -> program output lines
--   summaryEvent     "Resources: 1 created, 5 unchanged (8s)"
--   cancelEvent      the end of the operation
local task = require("slipway.task")
local fs = require("slipway.fs")
local json = require("slipway.json")
local context = require("slipway.context")
local native = require("slipway._pulumi")
local cli = require("slipway.pulumi.cli")

local M = {}

M.POLL = 0.1                    -- seconds between reads of the log

local SYMBOL = {
  create = "+", update = "~", delete = "-", replace = "+-", read = ">", import = "=",
  ["create-replacement"] = "++", ["delete-replaced"] = "--", refresh = "~", ["read-replacement"] = ">>",
  ["import-replacement"] = "=>", discard = "-", ["discard-replaced"] = "-",
}
local DONE = {
  create = "created", update = "updated", delete = "deleted", replace = "replaced", read = "read",
  import = "imported", refresh = "refreshed", discard = "discarded",
}
local PAST = { create = "created", update = "updated", delete = "deleted", replace = "replaced", same = "unchanged" }
local SUMMARY_ORDER = { "create", "update", "replace", "delete", "same" }

-- The name in a URN (urn:pulumi:stack::project::type::name): what follows
-- the last colon, found from the end (a pattern would try every start).
local function resource_name(urn)
  if type(urn) ~= "string" then return "?" end
  local i = #urn
  while i > 0 and urn:byte(i) ~= 58 do i = i - 1 end
  return urn:sub(i + 1)
end

local function skipped_type(t)
  return t == "pulumi:pulumi:Stack" or (t and t:match("^pulumi:providers:"))
end

-- "[diff: ~acl, +tags]" from a step's detailedDiff, or its diffs.
local function diff_text(m)
  local marks = {}
  if type(m.detailedDiff) == "table" and next(m.detailedDiff) then
    local keys = {}
    for k in pairs(m.detailedDiff) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local kind = type(m.detailedDiff[k]) == "table" and m.detailedDiff[k].diffKind or "update"
      local sign = kind:match("^add") and "+" or kind:match("^delete") and "-" or "~"
      marks[#marks + 1] = sign .. k
    end
  elseif type(m.diffs) == "table" then
    for _, k in ipairs(m.diffs) do marks[#marks + 1] = "~" .. k end
  end
  return #marks > 0 and (" [diff: " .. table.concat(marks, ", ") .. "]") or ""
end

---------------------------------------------------------------- progress

local Progress = {}
Progress.__index = Progress

function M.progress(kind, quiet)
  return setmetatable({
    kind = kind, quiet = quiet, events = 0, ended = false, errors = {}, warnings = {},
    steps = {}, failed_steps = {}, stack_outputs = nil, summary = nil, counts = {},
  }, Progress)
end

function Progress:say(stream, line)
  if not self.quiet then context.output(stream, line) end
end

function Progress:resource(kind, body)
  local m = body.metadata
  if type(m) ~= "table" then return end
  if m.type == "pulumi:pulumi:Stack" then
    if kind == "resOutputsEvent" and type(m.new) == "table" then self.stack_outputs = m.new.outputs end
    return
  end
  if skipped_type(m.type) then return end
  local op = m.op
  if kind == "resOpFailedEvent" then
    self.failed_steps[#self.failed_steps + 1] = { op = op, type = m.type, name = resource_name(m.urn), urn = m.urn }
    self:say("stderr", ("! %s %s %s failed"):format(m.type, resource_name(m.urn), op))
    return
  end
  if op == "same" or op == "create-replacement" or op == "delete-replaced" then return end
  if body.planning then
    -- a preview: what would happen, once per step
    if kind == "resourcePreEvent" then
      self.steps[#self.steps + 1] = { op = op, type = m.type, name = resource_name(m.urn), urn = m.urn,
                                      diffs = m.diffs, detailed_diff = m.detailedDiff }
      self:say("stdout", ("%s %s %s %s%s"):format(SYMBOL[op] or op, m.type, resource_name(m.urn), op, diff_text(m)))
    end
  elseif kind == "resOutputsEvent" then
    -- (not kept in a list: a table per resource of a 50,000-event update
    -- costs more, in collecting garbage, than reading the event did)
    self.counts[op] = (self.counts[op] or 0) + 1
    self:say("stdout", ("%s %s %s %s%s"):format(SYMBOL[op] or op, m.type, resource_name(m.urn),
      DONE[op] or op, diff_text(m)))
  end
end

function Progress:diagnostic(d)
  if d.ephemeral or d.severity == "debug" then return end
  local message = cli.plain(tostring(d.message or "")):gsub("%s+$", "")
  if message == "" then return end
  local subject = d.urn and not d.urn:match("pulumi:pulumi:Stack::") and (resource_name(d.urn) .. ": ") or ""
  if d.severity == "warning" then
    self.warnings[#self.warnings + 1] = subject .. message
    if not self.quiet then context.warn("pulumi: " .. subject .. message) end
  elseif d.severity == "error" then
    self.errors[#self.errors + 1] = subject .. message
    self:say("stderr", "error: " .. subject .. message)
  else
    for line in message:gmatch("[^\n]+") do
      self:say(d.severity == "info#err" and "stderr" or "stdout", subject .. line)
    end
  end
end

function Progress:handle(e)
  self.events = self.events + 1
  local kind, body = e.kind, e.body
  if kind == "resourcePreEvent" or kind == "resOutputsEvent" or kind == "resOpFailedEvent" then
    self:resource(kind, body)
  elseif kind == "diagnosticEvent" then
    self:diagnostic(body)
  elseif kind == "stdoutEvent" then
    self:say("stdout", (cli.plain(tostring(body.message or "")):gsub("%s+$", "")))
  elseif kind == "policyEvent" then
    local d = { severity = body.enforcementLevel == "mandatory" and "error" or "warning", urn = body.resourceUrn,
                message = ("policy %s: %s"):format(tostring(body.policyName), tostring(body.message)) }
    self:diagnostic(d)
  elseif kind == "summaryEvent" then
    self.summary = body
  elseif kind == "cancelEvent" then
    self.ended = true
  elseif kind == "invalid" then
    self.invalid = (self.invalid or 0) + 1
    if self.invalid == 1 then
      context.warn(("pulumi: the event log has a line that is not an event (%s): %s"):format(e.error, e.line))
    end
  end
end

-- The resource changes: the summary's, or counted from the events.
function Progress:changes()
  local src = self.summary and type(self.summary.resourceChanges) == "table" and self.summary.resourceChanges or self.counts
  local out = {}
  for k, v in pairs(src) do out[k] = v end
  for _, k in ipairs(SUMMARY_ORDER) do out[k] = out[k] or 0 end
  return out
end

function Progress:summary_line(duration)
  local changes, parts = self:changes(), {}
  for _, k in ipairs(SUMMARY_ORDER) do
    if changes[k] > 0 then
      parts[#parts + 1] = ("%d %s"):format(changes[k], self.summary and self.summary.isPreview and
        ({ create = "to create", update = "to update", replace = "to replace", delete = "to delete", same = "unchanged" })[k] or PAST[k])
    end
  end
  return ("Resources: %s (%.1fs)"):format(#parts > 0 and table.concat(parts, ", ") or "no changes", duration)
end

---------------------------------------------------------------- the tail

local function drain(log, progress, final)
  while true do
    local list, err = log:read(final)
    if list == nil then error(err, 0) end
    if #list == 0 then return end
    for _, e in ipairs(list) do progress:handle(e) end
  end
end

-- Run `pulumi <args> --event-log FILE` for call c, its events handled by
-- progress while it runs. Returns the CLI's result (cli.run's).
function M.run(c, args, progress, opts)
  local dir = assert(fs.tempdir("slipway-pulumi-"))
  local path = dir .. "/events.ndjson"
  local full = {}
  for i, a in ipairs(args) do full[i] = a end
  full[#full + 1] = "--event-log"
  full[#full + 1] = path
  local log = native.event_log(path, json.decode)
  local tail_error
  local tailer = task.spawn(function()
    local ok, err = pcall(function()
      while not progress.ended do
        drain(log, progress, false)
        task.sleep(M.POLL)
      end
    end)
    if not ok and not task.is_cancelled(err) then tail_error = err end
  end)
  local ok, r = pcall(cli.run, c, full, opts)
  tailer:cancel()
  if ok then
    ok, r = pcall(function()
      if tail_error then error(tail_error, 0) end
      drain(log, progress, true)
      return r
    end)
  end
  log:close()
  fs.remove(dir, { recursive = true })
  if not ok then error(r, 0) end
  return r
end

return M
