-- slipway.env: reading environment variables in scripts and pipelines.
--
--   env("DOCKER_REGISTRY", "registry.example.com")  -- the value or the default
--   env("API_TOKEN")          -- raises "FILE:LINE: env: API_TOKEN is not set"
--   env.get("X")              -- the value or nil, never raises
--   env.bool("DEBUG", false)  -- true/false from 1/0, yes/no, true/false, on/off
--
-- An empty value counts as set. A missing required variable at the top level
-- of a pipeline is bad input (exit 2).
local M = {}

-- A cached task records the variables it reads (lua/pipeline/cache.lua:
-- its unit's `reads`), here as everywhere its code runs.
local unit = require("slipway.context").unit
local function note(name)
  local u = unit()
  if u and u.reads then u.reads.env[name] = true end
end

local function check_name(fname, name)
  if type(name) ~= "string" or name == "" then
    error(("%s: expected a variable name, got %s"):format(fname, type(name)), 3)
  end
end

function M.get(name, default)
  check_name("env.get", name)
  note(name)
  local v = os.getenv(name)
  if v == nil then return default end
  return v
end

local TRUE = { ["1"] = true, yes = true, ["true"] = true, on = true }
local FALSE = { ["0"] = true, no = true, ["false"] = true, off = true, [""] = true }

function M.bool(name, default)
  check_name("env.bool", name)
  note(name)
  local v = os.getenv(name)
  if v == nil then
    if default == nil then error(("env.bool: %s is not set"):format(name), 2) end
    return default
  end
  local l = v:lower()
  if TRUE[l] then return true end
  if FALSE[l] then return false end
  error(("env.bool: %s='%s' is not a boolean (expected 1/0, yes/no, true/false, on/off)"):format(name, v), 2)
end

return setmetatable(M, {
  __call = function(_, name, default)
    check_name("env", name)
    note(name)
    local v = os.getenv(name)
    if v ~= nil then return v end
    if default ~= nil then return default end
    error(("env: %s is not set (give a default: env(\"%s\", \"...\"))"):format(name, name), 2)
  end,
})
