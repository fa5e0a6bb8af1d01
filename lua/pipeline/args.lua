-- slipway.pipeline.args: the command-line flags `run`, `plan`, `graph` and
-- `rollback` share.
--
--   [FILE] [--env E] [-p k=v]... [--only T,..] [--skip T,..] [-j N]
--   [--json] [--no-color] [--timestamps] [--reporter NAME]
--   [--ledger local|swarm] [--lock-wait DURATION] [--reason TEXT]
--   [--force[=T,..]] [--no-cache]
--
-- parse(args, allowed) -> opts | nil, message
-- opts = { file, settings = {{name, value, origin}}, only = {}, skip = {},
--          jobs, json, no_color, timestamps, reporter, format, ledger,
--          lock_wait (seconds), reason, force (true: --force, --no-cache;
--          or the list of --force=T,..) }
local words = require("slipway.words")

local M = {}

-- name -> { key, takes_value }
local FLAGS = {
  ["--env"] = { "env", true },
  ["-p"] = { "param", true }, ["--param"] = { "param", true },
  ["--only"] = { "only", true }, ["--skip"] = { "skip", true },
  ["-j"] = { "jobs", true }, ["--jobs"] = { "jobs", true },
  ["--json"] = { "json", false }, ["--no-color"] = { "no_color", false },
  ["--timestamps"] = { "timestamps", false }, ["--reporter"] = { "reporter", true },
  ["--format"] = { "format", true },
  ["--ledger"] = { "ledger", true }, ["--lock-wait"] = { "lock_wait", true }, ["--reason"] = { "reason", true },
  ["--force"] = { "force", "optional" }, ["--no-cache"] = { "no_cache", false },
  ["--to"] = { "to", true }, ["--dry-run"] = { "dry_run", false }, ["--validate"] = { "validate", false },
}
M.LEDGERS = { "local", "swarm" }

local REPORTERS = { "terminal", "plain", "github", "json" }
local REPORTER_SET = {}
for _, r in ipairs(REPORTERS) do REPORTER_SET[r] = true end

local function split_list(v, into)
  for item in v:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then into[#into + 1] = item end
  end
end

-- allowed: list of flag names this command takes (for the message).
function M.parse(args, allowed)
  local allow = {}
  for _, f in ipairs(allowed) do allow[f] = true end
  local opts = { settings = {}, only = {}, skip = {} }
  local i = 1
  local function valid()
    return table.concat(allowed, ", ")
  end
  while i <= #args do
    local a = args[i]
    local flag, inline = a, nil
    if a:sub(1, 2) == "--" and a:find("=", 1, true) then
      flag, inline = a:match("^([^=]+)=(.*)$")
    elseif a:match("^%-[pj].+") then
      flag, inline = a:sub(1, 2), a:sub(3)
    end
    if a:sub(1, 1) == "-" and a ~= "-" then
      local spec = FLAGS[flag]
      if spec == nil or not allow[flag] then
        return nil, ("unknown flag '%s'%s (valid: %s)"):format(flag, words.did_you_mean(flag, allowed), valid())
      end
      local key, takes = spec[1], spec[2]
      local value
      if takes == "optional" then      -- --force or --force=A,B
        value = inline
      elseif takes then
        value = inline
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then return nil, ("%s needs a value"):format(flag) end
        end
      elseif inline ~= nil then
        return nil, ("%s takes no value"):format(flag)
      end
      if key == "env" then
        opts.settings[#opts.settings + 1] = { name = "environment", value = value, origin = flag .. " " .. value }
      elseif key == "param" then
        local name, v = value:match("^([^=]+)=(.*)$")
        if not name then
          return nil, ("%s %s: expected name=value"):format(flag, value)
        end
        opts.settings[#opts.settings + 1] = { name = name, value = v, origin = "-p " .. value }
      elseif key == "only" or key == "skip" then
        split_list(value, opts[key])
      elseif key == "force" or key == "no_cache" then
        if value == nil or opts.force == true then
          opts.force = true
        else
          opts.force = opts.force or {}
          split_list(value, opts.force)
          if #opts.force == 0 then return nil, ("%s: expected task names, got '%s'"):format(flag, value) end
        end
      elseif key == "jobs" then
        local n = math.tointeger(tonumber(value))     -- (nil for 1.5, 1e400, 2^63)
        if n == nil or n < 1 then
          return nil, ("%s: expected a whole number >= 1, got '%s'"):format(flag, value)
        end
        opts.jobs = n
      elseif key == "reporter" then
        if not REPORTER_SET[value] then
          return nil, ("--reporter: unknown reporter '%s'%s (valid: %s)")
            :format(value, words.did_you_mean(value, REPORTERS), table.concat(REPORTERS, ", "))
        end
        opts.reporter = value
      elseif key == "format" or key == "reason" or key == "to" then
        opts[key] = value
      elseif key == "ledger" then
        if value ~= "local" and value ~= "swarm" then
          return nil, ("--ledger: expected local or swarm, got '%s'"):format(value)
        end
        opts.ledger = value
      elseif key == "lock_wait" then
        local ms, why = require("slipway.duration").parse(value)
        if ms == nil or ms < 0 then
          return nil, ("--lock-wait: %s"):format(why or ("expected a duration like \"30s\" or \"5m\", got '" .. value .. "'"))
        end
        opts.lock_wait = ms / 1000
      else
        opts[key] = true
      end
    else
      if opts.file then
        return nil, ("unexpected argument '%s' (the pipeline file is already %s)"):format(a, opts.file)
      end
      opts.file = a
    end
    i = i + 1
  end
  opts.file = opts.file or "deploy.lua"
  return opts
end

-- The default -j: the machine's CPU count + 2 (as ninja does), at least 4.
function M.default_jobs()
  local n = 0
  local f = io.open("/proc/cpuinfo", "r")
  if f then
    for line in f:lines() do
      if line:match("^processor%s*:") then n = n + 1 end
    end
    f:close()
  end
  return math.max(4, n + 2)
end

return M
