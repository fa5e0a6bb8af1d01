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
      return usage_error(("unknown flag '%s' (valid: --env, -n, --json)"):format(a))
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
  local ids = fs.exists(dir) and fs.list(dir) or {}
  table.sort(ids, function(a, b) return a > b end)
  local rows = {}
  for _, id in ipairs(ids) do
    local text = fs.read(dir .. "/" .. id .. "/record.json")
    local r = text and json.decode(text)
    if type(r) == "table" and (env == nil or (type(r.params) == "table" and r.params.environment == env)) then
      local failed = {}
      for _, t in ipairs(r.tasks or {}) do
        if t.status == "failed" and not t.allowed then failed[#failed + 1] = t.name end
      end
      rows[#rows + 1] = {
        id = r.id or id, status = r.status, exit_code = r.exit_code, started_at = r.started_at,
        duration_ms = r.duration_ms, environment = type(r.params) == "table" and r.params.environment or nil,
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
