-- tests/fuzz/templates_to_compose.lua IN OUT: turn each interpolation
-- template in directory IN (a fuzz_interpolate corpus) into compose files
-- in OUT that use it as an image, an environment value, a label and a
-- replica count, so tests/fuzz/differential.sh can compare slipway's interpolation
-- with docker's. Templates that are not valid UTF-8 or hold control
-- characters are skipped (a YAML file cannot carry them).
local yaml = require("slipway.yaml")
local fs = require("slipway.fs")

local n = 0
for _, name in ipairs(fs.list(arg[1])) do
  local t = fs.read(arg[1] .. "/" .. name)
  if utf8.len(t) and not t:find("[%z\1-\8\11-\31\127]") then
    -- two files: a typed field that fails must not hide the plain ones
    local plain = { services = { web = { image = t, environment = { V = t }, labels = { l = t } } } }
    local typed = { services = { web = { image = "x", deploy = { replicas = t } } } }
    fs.write(("%s/%s.plain.yml"):format(arg[2], name), yaml.encode(plain))
    fs.write(("%s/%s.typed.yml"):format(arg[2], name), yaml.encode(typed))
    n = n + 2
  end
end
print(("%d compose files written to %s"):format(n, arg[2]))
