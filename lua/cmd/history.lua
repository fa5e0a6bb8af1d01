-- slipway history: past runs of a pipeline, newest first, from the run
-- records in .slipway/runs/ next to the pipeline file.
local M = {}

M.help = [[
usage: slipway history [FILE] [--env E] [-n N] [--json]

List the recorded runs of the pipeline in FILE (default deploy.lua), newest
first: id, status, duration, environment and what failed. --env keeps the
runs whose `environment` parameter was E; -n shows at most N (default 20);
--json prints the records' summaries as one JSON array.
]]

local function usage_error(msg)
  io.stderr:write("slipway history: ", msg, "\n")
  return 2
end

-- The fields of record.json that history reads, with their JSON types
-- (each may be absent).
local FIELDS = {
  { "id", "string" }, { "status", "string" }, { "exit_code", "number" }, { "started_at", "string" },
  { "duration_ms", "number" }, { "params", "object" }, { "tasks", "array" }, { "git", "object" },
}
local TASK_FIELDS = { { "name", "string" }, { "status", "string" }, { "allowed", "boolean" } }

-- The JSON type of a decoded value: "object" or "array" for tables.
local function json_type(v)
  local json = require("slipway.json")
  if v == json.null then return "null" end
  if type(v) ~= "table" then return type(v) end
  return getmetatable(v) == json.array_mt and "array" or "object"
end

-- The first field of t whose type differs from fields', as "duration_ms:
-- expected number, got string", or nil.
local function wrong_field(t, fields, prefix)
  for _, field in ipairs(fields) do
    local k, want = field[1], field[2]
    local v = t[k]
    if v ~= nil and json_type(v) ~= want then
      return ("%s%s: expected %s, got %s"):format(prefix, k, want, json_type(v))
    end
  end
end

-- read_record(path) -> the decoded record, or nil and why it cannot be
-- listed (unreadable, not JSON, or fields of the wrong type): one damaged
-- record must not hide the others.
local function read_record(path)
  local fs = require("slipway.fs")
  local text, err = fs.read(path)
  if text == nil then
    if err:sub(-#path - 2) == ": " .. path then err = err:sub(1, -#path - 3) end   -- named already
    return nil, err
  end
  local ok, r, derr = pcall(require("slipway.json").decode, text)
  if not ok or r == nil then return nil, "not JSON: " .. tostring(ok and derr or r) end
  if json_type(r) ~= "object" then return nil, ("expected a JSON object, got %s"):format(json_type(r)) end
  local why = wrong_field(r, FIELDS, "")
  if why then return nil, why end
  local environment = r.params and r.params.environment
  if environment ~= nil and type(environment) ~= "string" and type(environment) ~= "number" then
    return nil, "params.environment: expected string, got " .. json_type(environment)
  end
  for i, t in ipairs(r.tasks or {}) do
    if json_type(t) ~= "object" then return nil, ("tasks[%d] is not an object"):format(i) end
    why = wrong_field(t, TASK_FIELDS, ("tasks[%d]."):format(i))
    if why then return nil, why end
  end
  return r
end

function M.main(args)
  local file, env, limit, as_json = nil, nil, 20, false
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--env" or a == "-n" then
      local v = args[i + 1]
      if v == nil then return usage_error(a .. " needs a value") end
      if a == "--env" then env = v
      else
        limit = tonumber(v)
        if limit == nil or limit < 1 or limit ~= math.floor(limit) then
          return usage_error("-n: expected a whole number >= 1, got '" .. v .. "'")
        end
      end
      i = i + 2
    elseif a == "--json" then
      as_json = true
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      return usage_error(("unknown flag '%s'%s (valid: --env, -n, --json)")
        :format(a, require("slipway.words").did_you_mean(a, { "--env", "-n", "--json" })))
    elseif file then
      return usage_error(("unexpected argument '%s'"):format(a))
    else
      file = a
      i = i + 1
    end
  end
  file = file or "deploy.lua"
  local fs = require("slipway.fs")
  local json = require("slipway.json")
  local dir = (file:match("^(.*)/[^/]*$") or ".") .. "/.slipway/runs"
  local ids = {}
  if fs.exists(dir) then
    local list, err = fs.list(dir)
    if not list then return usage_error(("cannot list the recorded runs: %s"):format(err)) end
    ids = list
  end
  table.sort(ids, function(a, b) return a > b end)
  local rows = {}
  for _, id in ipairs(ids) do
    local path = dir .. "/" .. id .. "/record.json"
    local r, why = read_record(path)
    if r == nil then
      io.stderr:write(("slipway history: skipping %s: %s\n"):format(path, why))
    elseif env == nil or (r.params and r.params.environment == env) then
      local failed = {}
      for _, t in ipairs(r.tasks or {}) do
        if t.status == "failed" and not t.allowed then failed[#failed + 1] = t.name end
      end
      rows[#rows + 1] = {
        id = r.id or id, status = r.status, exit_code = r.exit_code, started_at = r.started_at,
        duration_ms = r.duration_ms, environment = r.params and r.params.environment or nil,
        failed = json.array(failed), git = r.git,
      }
      if #rows >= limit then break end
    end
  end
  if as_json then
    io.stdout:write(json.encode(json.array(rows)), "\n")
    return 0
  end
  if #rows == 0 then
    io.stdout:write(("no recorded runs in %s\n"):format(dir))
    return 0
  end
  local fmt = require("slipway.events").format_ms
  local out = { ("%-22s  %-16s  %9s  %-12s  %s"):format("run", "status", "duration", "environment", "failed") }
  for _, r in ipairs(rows) do
    out[#out + 1] = ("%-22s  %-16s  %9s  %-12s  %s"):format(r.id, tostring(r.status):gsub("_", " "),
      fmt(r.duration_ms), r.environment or "-", table.concat(r.failed, ", "))
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  return 0
end

return M
