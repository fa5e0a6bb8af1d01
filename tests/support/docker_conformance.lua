-- Conformance of docker.stack.deploy with the real `docker stack deploy`:
-- deploy one compose file once with the CLI (stack A) and once with
-- slipway (stack B) on the same engine, read every service back from
-- /services/{id}, and compare the specs apart from the names:
--   - the stack name (A or B) in names, labels, aliases -> "STACK"
--   - network IDs -> the network's name (then as above)
--   - secret/config IDs dropped; slipway's content-hash suffix dropped
-- Returns { equal = n, total = n, diffs = { [service] = "path: a vs b" } }.
local docker = require("slipway.docker")
local compose = require("slipway.compose")
local json = require("slipway.json")
local fx = require("support.docker_fixtures")

local M = {}

local function read_env_file(path)
  local vars = {}
  local f = io.open(path, "r")
  if not f then return vars end
  for line in f:lines() do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then vars[k] = v end
  end
  f:close()
  return vars
end
M.read_env_file = read_env_file

local function escape(s) return (s:gsub("%p", "%%%0")) end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

-- The spec with every name made independent of the stack's name.
function M.normalize(spec, stack_name, net_names, hashed)
  spec = deep_copy(spec)
  local tt = spec.TaskTemplate or {}
  for _, n in ipairs(tt.Networks or {}) do n.Target = net_names[n.Target] or n.Target end
  for _, n in ipairs(spec.Networks or {}) do n.Target = net_names[n.Target] or n.Target end
  local cs = tt.ContainerSpec or {}
  for _, r in ipairs(cs.Secrets or {}) do
    r.SecretID = nil
    if hashed then r.SecretName = r.SecretName:gsub("_%x%x%x%x%x%x%x%x%x%x%x%x$", "") end
  end
  for _, r in ipairs(cs.Configs or {}) do
    r.ConfigID = nil
    if hashed then r.ConfigName = r.ConfigName:gsub("_%x%x%x%x%x%x%x%x%x%x%x%x$", "") end
  end
  if cs.Privileges and type(cs.Privileges.CredentialSpec) == "table" and cs.Privileges.CredentialSpec.Config then
    cs.Privileges.CredentialSpec.Config = "CONFIG-ID"
  end
  local pat = escape(stack_name)
  local function walk(v)
    if type(v) == "string" then
      if v == stack_name then return "STACK" end
      return (v:gsub("^" .. pat .. "_", "STACK_"))
    end
    if type(v) ~= "table" then return v end
    local out = {}
    for k, x in pairs(v) do out[walk(k)] = walk(x) end
    return setmetatable(out, getmetatable(v))
  end
  spec = walk(spec)
  -- the CLI sorts network attachments by target name, which depends on
  -- the stack's name: compare them in the order of the renamed targets
  local tt2 = spec.TaskTemplate or {}
  if tt2.Networks then table.sort(tt2.Networks, function(x, y) return x.Target < y.Target end) end
  return spec
end

-- The first difference between two decoded JSON values, as "path: a vs b".
function M.diff(a, b, path)
  path = path or ""
  if type(a) ~= type(b) then
    return ("%s: %s vs %s"):format(path, json.encode(a == nil and json.null or a), json.encode(b == nil and json.null or b))
  end
  if type(a) ~= "table" then
    if a ~= b then return ("%s: %s vs %s"):format(path, json.encode(a), json.encode(b)) end
    return nil
  end
  local keys = {}
  for k in pairs(a) do keys[k] = true end
  for k in pairs(b) do keys[k] = true end
  local sorted = {}
  for k in pairs(keys) do sorted[#sorted + 1] = k end
  table.sort(sorted, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(sorted) do
    local d = M.diff(a[k], b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  return nil
end

local function network_names()
  local out = {}
  for _, n in ipairs(fx.client.default():call("t", "GET", "/networks") or {}) do out[n.Id] = n.Name end
  return out
end

-- Create what a file expects to exist already: external networks,
-- secrets and configs. Returns a function that removes them again.
function M.prepare_externals(stack)
  local c = fx.client.default()
  local made = {}
  for key, n in pairs(stack.networks or {}) do
    if type(n) == "table" and n.external then
      local name = n.name or key
      local ok, id, created = pcall(docker.swarm.network, name, { Driver = "overlay", Attachable = true })
      if ok and created then made[#made + 1] = "/networks/" .. id end
    end
  end
  for _, kind in ipairs({ "secret", "config" }) do
    for key, o in pairs(stack[kind .. "s"] or {}) do
      if type(o) == "table" and o.external then
        local name = o.name or key
        local list = c:call("t", "GET", "/" .. kind .. "s",
          { query = { filters = json.encode({ name = { name } }) } })
        local found = false
        for _, x in ipairs(list) do if x.Spec.Name == name then found = true end end
        if not found then
          local r = c:call("t", "POST", "/" .. kind .. "s/create", { body = { Name = name,
            Data = require("slipway.base64").encode("external " .. name) } })
          made[#made + 1] = "/" .. kind .. "s/" .. r.ID
        end
      end
    end
  end
  return function()
    for i = #made, 1, -1 do
      pcall(c.call, c, "t", "DELETE", made[i], { ok = { [404] = true, [400] = true, [403] = true, [500] = true } })
    end
  end
end

-- Copy a corpus file (and its .support/ files) into a temporary directory
-- and create empty stand-ins for the secret/config/env files it names, so
-- that both deploys read the same inputs. Returns the staged path, dir.
function M.stage(file)
  local yaml = require("slipway.yaml")
  local proc = require("slipway.proc")
  local dir = fx.tmpdir()
  local base = file:match("([^/]+)$")
  proc.run({ "cp", file, dir .. "/" .. base })
  local support = file:gsub("%.yml$", ".support")
  proc.run({ "sh", "-c", 'if [ -d "$1" ]; then cp -r "$1"/. "$2"/; fi', "sh", support, dir })
  local f = io.open(file)
  local doc = yaml.decode(f:read("a"))
  f:close()
  local function touch(rel)
    if type(rel) ~= "string" or rel:match("%$") then return end
    local path = rel:sub(1, 1) == "/" and rel or (dir .. "/" .. rel)
    if not path:match("^/tmp/") then return end
    if io.open(path) then return end
    proc.run({ "mkdir", "-p", (path:gsub("/[^/]*$", "")) })
    fx.write(path, "stand-in for " .. rel .. "\n")
  end
  for _, kind in ipairs({ "secrets", "configs" }) do
    for _, o in pairs(type(doc[kind]) == "table" and doc[kind] or {}) do
      if type(o) == "table" then touch(o.file) end
    end
  end
  for _, svc in pairs(type(doc.services) == "table" and doc.services or {}) do
    if type(svc) == "table" then
      local ef = svc.env_file
      if type(ef) == "string" then ef = { ef } end
      for _, e in ipairs(type(ef) == "table" and ef or {}) do touch(type(e) == "table" and e.path or e) end
    end
  end
  return dir .. "/" .. base, dir
end

local function snapshot(name, nets, hashed)
  local out = {}
  for _, s in ipairs(docker.stack.services(name)) do
    out[s.Spec.Name:sub(#name + 2)] = M.normalize(s.Spec, name, nets, hashed)
  end
  return out
end

-- Deploy `file` both ways, one after the other (published ports cannot be
-- shared), and compare. env: variables for interpolation.
function M.compare(file, env)
  env = env or {}
  local base = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), DOCKER_HOST = os.getenv("DOCKER_HOST") }
  local environ = {}
  for k, v in pairs(env) do environ[k] = v end
  for k, v in pairs(base) do environ[k] = environ[k] or v end
  local staged, dir = M.stage(file)
  local result = { total = 0, equal = 0, diffs = {} }
  local ok, stack = pcall(compose.load, staged, { environ = environ })
  if not ok then
    fx.rmtree(dir)
    result.error = "compose.load failed: " .. tostring(stack)
    return result
  end
  local cleanup = M.prepare_externals(stack)
  local a, b = fx.unique("cli"), fx.unique("sw")
  local r = fx.cli({ "stack", "deploy", "--detach=true", "-c", staged, a }, { env = environ, env_clear = true })
  if r.code ~= 0 then
    fx.remove_stack(a); cleanup(); fx.rmtree(dir)
    result.error = "docker stack deploy failed: " .. r.stderr
    return result
  end
  local theirs = snapshot(a, network_names(), false)
  fx.remove_stack(a)
  local dok, err = pcall(docker.stack.deploy, b, stack, { wait = false, record = false })
  local ours = snapshot(b, network_names(), true)
  fx.remove_stack(b)
  cleanup()
  fx.rmtree(dir)
  if not dok then
    result.error = "slipway deploy failed: " .. tostring(err)
    return result
  end
  for short, spec in pairs(theirs) do
    result.total = result.total + 1
    local d = short .. ": missing in slipway's stack"
    if ours[short] then d = M.diff(spec, ours[short], short) end
    if d then result.diffs[short] = d else result.equal = result.equal + 1 end
    ours[short] = nil
  end
  for short in pairs(ours) do
    result.total = result.total + 1
    result.diffs[short] = short .. ": only in slipway's stack"
  end
  return result
end

return M
