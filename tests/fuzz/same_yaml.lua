-- tests/fuzz/same_yaml.lua A B: exit 0 when two YAML files hold the same
-- data with the same types (integer vs float, string vs number); otherwise
-- print the first path where they differ and exit 1. Used by
-- tests/fuzz/differential.sh to compare docker's and slipway's output.
local yaml = require("slipway.yaml")
local fs = require("slipway.fs")

local function kind(v)
  if v == yaml.null then return "null" end
  if type(v) == "number" then return math.type(v) end
  if type(v) == "table" then return getmetatable(v) == yaml.array_mt and "seq" or "map" end
  return type(v)
end

local function diff(a, b, path)
  if kind(a) ~= kind(b) then return ("%s: %s vs %s"):format(path, kind(a), kind(b)) end
  if type(a) ~= "table" then
    if a == b or (a ~= a and b ~= b) then return nil end
    return ("%s: %q vs %q"):format(path, tostring(a), tostring(b))
  end
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return ("%s.%s: only in the second"):format(path, tostring(k)) end
  end
  return nil
end

local a, ea = yaml.decode(fs.read(arg[1]), { filename = arg[1] })
local b, eb = yaml.decode(fs.read(arg[2]), { filename = arg[2] })
if a == nil and ea then print(ea) os.exit(1) end
if b == nil and eb then print(eb) os.exit(1) end
local d = diff(a, b, "$")
if d then print(d) os.exit(1) end
os.exit(0)
