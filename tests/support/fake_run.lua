-- support.fake_run: code under test, run as if a pipeline unit ran it. The
-- calling task's context (slipway.context) names a run object that only
-- collects what it receives, for the duration of fn.
--
--   local run, ok, ... = fake_run.within(fn [, unit])
--   run.lines     -- { "stdout: text", "stderr: text", ... }
--   run.warnings  -- { message, ... }
--   run.changes   -- { { entry, what }, ... } (what: "added" | "marked")
local task = require("slipway.task")
local context = require("slipway.context")

local M = {}

local Run = {}
Run.__index = Run
function Run:output(_, stream, line) self.lines[#self.lines + 1] = stream .. ": " .. line end
function Run:warn(_, message) self.warnings[#self.warnings + 1] = message end
function Run:change(_, entry, what) self.changes[#self.changes + 1] = { entry, what } end

function M.new()
  return setmetatable({ lines = {}, warnings = {}, changes = {} }, Run)
end

function M.within(fn, unit)
  local run = M.new()
  local previous = task.context()
  task.set_context(context._for_unit(run, unit or { name = "test" }))
  local r = table.pack(pcall(fn))
  task.set_context(previous)
  return run, table.unpack(r, 1, r.n)
end

return M
