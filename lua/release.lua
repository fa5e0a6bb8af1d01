-- slipway.release: the record of a run: what it was given, what each task
-- did, and what it changed (the changes are recorded through
-- slipway.context.add_change, which a run's context routes here).
--
--   release.new_record(fields) -> record (fields kept; changes = {})
--   release.serializable(record) -> a copy fit for JSON
--   release.write(record, dir) -> true | nil, err   (dir/record.json, atomic;
--                                                    masked: slipway.secret)
--
-- Change entry fields: kind, target, summary, data, undo (not written),
-- task (the unit that made the change), at (ms since the run started),
-- status ("applied", then "rolled_back" or "undo_failed"), details.
local M = {}

function M.new_record(fields)
  local r = { changes = {} }
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

-- A copy of the record fit for JSON: no functions, no internal fields.
function M.serializable(record)
  local json = require("slipway.json")
  local out = {}
  for k, v in pairs(record) do
    if k ~= "changes" and k ~= "t0" and type(v) ~= "function" then out[k] = v end
  end
  local changes = {}
  for i, c in ipairs(record.changes or {}) do
    changes[i] = {
      kind = c.kind, target = c.target, summary = c.summary, data = c.data,
      status = c.status, details = c.details, task = c.task,
      at_ms = c.at and math.floor(c.at + 0.5) or nil, undo = c.undo ~= nil,
    }
  end
  out.changes = json.array(changes)
  return out
end

-- Write record.json into dir (created if needed), atomically: the record as
-- pretty JSON; strings that are not UTF-8 (a program's output in an error
-- message) get U+FFFD for their bad bytes. Secrets are masked: a Secret
-- (a secret parameter) is "***", and so is every secret value or URL
-- password in the text (slipway.secret.mask_deep, then mask).
function M.write(record, dir)
  local fs = require("slipway.fs")
  local json = require("slipway.json")
  local secret = require("slipway.secret")
  local ok, err = fs.mkdir(dir)
  if not ok then return nil, err end
  local text = json.encode(secret.mask_deep(M.serializable(record)), { pretty = true, invalid_utf8 = "replace" })
  return fs.write_atomic(dir .. "/record.json", secret.mask(text) .. "\n")
end

return M
