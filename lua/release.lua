-- slipway.release: the record of a run: what it was given, what each task
-- did, and what it changed (the changes are recorded through
-- slipway.context.add_change, which a run's context routes here).
--
--   release.new_record(fields) -> record (fields kept; changes = {})
--   release.serializable(record) -> a copy fit for JSON
--   release.write(record, dir) -> true | nil, err   (dir/record.json, atomic)
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

return M
