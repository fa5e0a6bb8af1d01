-- slipway.release: the record of a run: what it was given, what each task
-- did, and what it changed (the changes are recorded through
-- slipway.context.add_change, which a run's context routes here).
--
--   release.new_record(fields) -> record (fields kept; changes = {})
--   release.params(values) -> the parameters as a record keeps them
--   release.serializable(record) -> a copy fit for JSON
--   release.encode(record) -> its JSON text (what the ledger stores)
--   release.write(record, dir) -> true | nil, err   (dir/record.json, atomic)
--   (both masked: slipway.secret)
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

-- A copy of v that JSON can hold: what it cannot (functions, userdata,
-- cycles) becomes text. Arrays stay arrays.
local function jsonable(v, seen)
  local json = require("slipway.json")
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" or v == nil or v == json.null then return v end
  if t ~= "table" then return tostring(v) end
  if seen[v] then return "(a cycle)" end
  seen[v] = true
  local out = {}
  for k, item in pairs(v) do
    if type(k) == "string" or math.type(k) == "integer" then out[k] = jsonable(item, seen) end
  end
  seen[v] = nil
  return setmetatable(out, getmetatable(v) == json.array_mt and json.array_mt or getmetatable(v) == json.object_mt and json.object_mt or nil)
end

-- v as it is when JSON can hold it (a change's data is kept in full: it is
-- what a rollback re-applies), else its jsonable copy; secrets as ***
-- (slipway.secret.mask_deep).
local function recordable(v)
  if v == nil then return nil end
  v = require("slipway.secret").mask_deep(v)
  if pcall(require("slipway.json").encode, v) then return v end
  return jsonable(v, {})
end
M.recordable = recordable

-- The parameters' values as records, events and the ledger keep them. (The
-- one place where a value is turned into what gets written: secret
-- parameters are masked here.)
function M.params(values)
  local out = {}
  for k, v in pairs(values or {}) do out[k] = recordable(v) end
  return require("slipway.json").object(out)
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
      kind = c.kind, target = c.target, summary = c.summary, data = recordable(c.data),
      status = c.status, details = c.details, task = c.task, restorer = c.restorer,
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
  local ok, err = fs.mkdir(dir)
  if not ok then return nil, err end
  return fs.write_atomic(dir .. "/record.json", M.encode(record))
end

function M.encode(record)
  local json = require("slipway.json")
  local secret = require("slipway.secret")
  local text = json.encode(secret.mask_deep(M.serializable(record)), { pretty = true, invalid_utf8 = "replace" })
  return secret.mask(text) .. "\n"
end

return M
