-- slipway.release: the record of what a run changed and how to undo it.
-- (The contract integrations code against: /work/briefs/release-contract.md.)
--
--   release.current()            -- the active run record, or nil
--   release.add_change{ kind = "docker.stack", target = "sophia",
--     summary = "updated 3 services", data = {...}, undo = function() end }
--                                -- -> the change entry (a table)
--   release.mark_change(entry, "rolled_back" | "undo_failed", details)
--
-- During a pipeline run the record is the run's; it is written to
-- .slipway/runs/<id>/record.json (atomic write) at the end. On a failed run
-- the pipeline calls the `undo` functions in reverse order, interleaved with
-- task `rollback` functions by the order they were recorded, skipping
-- entries already marked. Outside a run (plain scripts, tests) add_change
-- works on an in-memory record that is never written.
--
-- Entry fields: kind, target, summary, data, undo (not written), task (the
-- task that made the change, when known), at (ms since the run started),
-- status ("applied", then "rolled_back" or "undo_failed"), details.
local task = require("slipway.task")

local M = {}

local active = nil       -- the run record while a pipeline runs
local scratch = nil      -- the in-memory record outside runs
local listeners = {}     -- fn(entry, what) for the pipeline ("added", "marked")

local CHANGE_KEYS = { kind = "string", target = "string", summary = "string", data = "table", undo = "function" }
local CHANGE_ORDER = { "kind", "target", "summary", "data", "undo" }
local MARKS = { rolled_back = true, undo_failed = true }

local function new_record(fields)
  local r = { changes = {} }
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

function M.current()
  return active or scratch
end

-- For the pipeline: make `record` the active one (fields it already has are
-- kept); returns it. end_run() makes no record active again.
function M.begin_run(record)
  active = new_record(record)
  return active
end

function M.end_run()
  local r = active
  active = nil
  return r
end

-- For the pipeline: fn(entry, what) is called on every add and mark.
function M.on_change(fn)
  listeners[#listeners + 1] = fn
  return function()
    for i, l in ipairs(listeners) do
      if l == fn then table.remove(listeners, i) break end
    end
  end
end

local function notify(entry, what)
  for _, l in ipairs(listeners) do l(entry, what) end
end

-- The task (unit) name that is running, set by the pipeline.
M.task_name = function() return nil end

function M.add_change(change)
  if type(change) ~= "table" then
    error("release.add_change: expected a table { kind, target, summary, data, undo }, got " .. type(change), 2)
  end
  for k, v in pairs(change) do
    local want = CHANGE_KEYS[k]
    if want == nil then
      error(("release.add_change: unknown field '%s' (valid: %s)"):format(tostring(k), table.concat(CHANGE_ORDER, ", ")), 2)
    end
    if type(v) ~= want then
      error(("release.add_change: %s must be a %s, got %s"):format(k, want, type(v)), 2)
    end
  end
  if change.kind == nil or change.target == nil then
    error("release.add_change: kind and target are required", 2)
  end
  local record = active
  if record == nil then
    scratch = scratch or new_record({ status = "scratch" })
    record = scratch
  end
  local entry = {
    kind = change.kind, target = change.target, summary = change.summary,
    data = change.data, undo = change.undo, status = "applied",
    task = M.task_name(), at = record.t0 and (task.now() - record.t0) or nil,
  }
  record.changes[#record.changes + 1] = entry
  notify(entry, "added")
  return entry
end

function M.mark_change(entry, status, details)
  if type(entry) ~= "table" or entry.status == nil then
    error("release.mark_change: expected an entry returned by release.add_change", 2)
  end
  if not MARKS[status] then
    error(("release.mark_change: status must be 'rolled_back' or 'undo_failed', got %s"):format(tostring(status)), 2)
  end
  if details ~= nil and type(details) ~= "string" and type(details) ~= "table" then
    error("release.mark_change: details must be a string or a table, got " .. type(details), 2)
  end
  entry.status = status
  entry.details = details
  notify(entry, "marked")
  return entry
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

-- v as pretty JSON; strings that are not UTF-8 (a program's output in an
-- error message) get U+FFFD for their bad bytes.
local function encode_pretty(json, v)
  local ok, text = pcall(json.encode, v, { pretty = true })
  if ok then return text end
  return json.encode(require("slipway.events").fix_strings(v), { pretty = true })
end

-- A finite number as slipway.json writes it: integers in decimal, floats
-- as the shortest of %.15g..%.17g that reads back the same, with ".0" if
-- that looks like an integer.
local DIGIT = { [0] = "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" }
local function number_text(v)
  if math.type(v) == "integer" then return tostring(v) end
  -- Times in the record have one decimal (12.3): written without printf,
  -- whose %.15g costs more than the rest of a row.
  if v > 0 and v < 1e14 then
    local t = math.floor(v * 10 + 0.5)
    if t / 10 == v then return (t // 10) .. "." .. DIGIT[t % 10] end
  end
  local s = ("%.15g"):format(v)
  if tonumber(s) ~= v then
    s = ("%.16g"):format(v)
    if tonumber(s) ~= v then s = ("%.17g"):format(v) end
  end
  if not s:find("[.eEn]") then s = s .. ".0" end
  return s
end

-- A function that joins a row's n value texts (a list) with the text
-- around them (pieces, n + 1 of them) in one concatenation:
-- p[1] .. a[1] .. p[2] .. ... .. a[n] .. p[n + 1]. (table.concat costs
-- several times more per piece.)
local function joiner(pieces, n)
  local code = { "local p = ... return function(a) return p[1]" }
  for j = 1, n do code[j + 1] = (" .. a[%d] .. p[%d]"):format(j, j + 1) end
  code[n + 2] = " end"
  return assert(load(table.concat(code), "=(record row)", "t"))(pieces)
end

-- The task rows of a record: a JSON array of flat objects, byte for byte
-- what json.encode(rows, {pretty = true}) gives at depth 1. Written here
-- because the general encoder's bookkeeping per value made it the largest
-- cost of a run of thousands of tasks: rows with the same set of keys (a
-- bit each) share one template, the text around their values. Plain
-- ASCII strings, finite numbers and booleans are written here; anything
-- else goes through json.encode.
local function encode_rows(json, rows)
  if #rows == 0 then return "[]" end
  local bit, nbits = {}, 0  -- key -> its bit in a row's shape
  local templates = {}      -- shape -> { joiner, sorted keys }
  -- value -> its text, for strings (false if they need escapes), fractional
  -- floats and booleans: row values repeat a lot (statuses, times). No
  -- integers, so that an integral float's text is never taken for one.
  local texts = {}
  local ints = {}           -- integer -> text
  local out, args = {}, {}
  for i, row in ipairs(rows) do
    local text
    if type(row) == "table" and getmetatable(row) == nil then
      local shape = 0
      for k in pairs(row) do
        local b = bit[k]
        if b == nil then
          if type(k) ~= "string" or nbits == 62 or k:find('[%c"\\\128-\255]') then shape = nil break end
          b = 1 << nbits
          nbits = nbits + 1
          bit[k] = b
        end
        shape = shape | b
      end
      local tpl = shape and templates[shape]
      if shape and shape ~= 0 and tpl == nil then
        local keys, pieces = require("slipway.events").sorted_keys(row), {}
        for j, k in ipairs(keys) do
          pieces[j] = (j == 1 and '    {\n      "' or ',\n      "') .. k .. '": '
        end
        pieces[#keys + 1] = "\n    }"
        tpl = { joiner(pieces, #keys), keys }
        templates[shape] = tpl
      end
      if tpl then
        local keys = tpl[2]
        for j = 1, #keys do
          local v = row[keys[j]]
          local a = texts[v]
          if not a then
            local ty = type(v)
            if ty == "string" then
              if a == nil then
                a = not v:find('[%c"\\\128-\255]') and ('"' .. v .. '"')
                texts[v] = a
              end
              a = a or encode_pretty(json, v)
            elseif ty == "number" and v == v and v - v == 0 then
              if math.type(v) == "integer" then
                a = ints[v]
                if a == nil then
                  a = tostring(v)
                  ints[v] = a
                end
              else
                a = number_text(v)
                if v % 1 ~= 0 then texts[v] = a end
              end
            elseif ty == "boolean" then
              a = v and "true" or "false"
              texts[v] = a
            else
              a = encode_pretty(json, v):gsub("\n", "\n      ")
            end
          end
          args[j] = a
        end
        text = tpl[1](args)
      elseif shape == 0 then
        text = "    {}"
      end
    end
    out[i] = text or ("    " .. encode_pretty(json, row):gsub("\n", "\n    "))
  end
  return "[\n" .. table.concat(out, ",\n") .. "\n  ]"
end

-- Write record.json into dir (created if needed), atomically: the text of
-- json.encode(M.serializable(record), {pretty = true}), with the task rows
-- written by encode_rows.
function M.write(record, dir)
  local fs = require("slipway.fs")
  local json = require("slipway.json")
  local ok, err = fs.mkdir(dir)
  if not ok then return nil, err end
  local data = M.serializable(record)
  local parts = {}
  for i, k in ipairs(require("slipway.events").sorted_keys(data)) do
    local v = data[k]
    local text
    if k == "tasks" and type(v) == "table" then
      text = encode_rows(json, v)
    else
      text = encode_pretty(json, v):gsub("\n", "\n  ")
    end
    parts[i] = "  " .. encode_pretty(json, k) .. ": " .. text
  end
  local text = #parts == 0 and "{}" or ("{\n" .. table.concat(parts, ",\n") .. "\n}")
  return fs.write_atomic(dir .. "/record.json", text .. "\n")
end

-- Tests: forget the scratch record.
function M._reset()
  scratch = nil
end

return M
