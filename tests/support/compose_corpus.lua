-- The compose corpus (../shared/corpus/compose) as the tests and the
-- benchmark use it: which files docker accepted or rejected, and a runner
-- that does what the corpus README describes: copy the file(s) and their
-- .support/ files into a fresh directory under /tmp, then run a command
-- there with the environment exactly HOME=/home/corpus, PATH=/usr/bin:/bin
-- plus the lines of the .vars.env file.
local yaml = require("slipway.yaml")
local repo = require("support.repo")

local M = {}

M.DIR = os.getenv("COMPOSE_CORPUS") or (repo.SHARED .. "/corpus/compose")

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read = read

local function lines(text)
  local out = {}
  for line in (text or ""):gmatch("([^\n]*)\n?") do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
M.shell_quote = shell_quote

-- MANIFEST.tsv rows: {file, name, exit_code}
function M.manifest()
  local rows = {}
  local text = assert(read(M.DIR .. "/MANIFEST.tsv"), "corpus MANIFEST.tsv not found")
  for i, line in ipairs(lines(text)) do
    if i > 1 then
      local cols = {}
      for c in (line .. "\t"):gmatch("(.-)\t") do cols[#cols + 1] = c end
      rows[#rows + 1] = { file = cols[1], name = cols[1]:gsub("%.yml$", ""), exit_code = tonumber(cols[7]) }
    end
  end
  return rows
end

function M.accepted()
  local out = {}
  for _, r in ipairs(M.manifest()) do if r.exit_code == 0 then out[#out + 1] = r.name end end
  return out
end

function M.rejected()
  local out = {}
  for _, r in ipairs(M.manifest()) do if r.exit_code ~= 0 then out[#out + 1] = r.name end end
  return out
end

-- cases/CASES.tsv rows: {name, files = {...}, exit_code}
function M.cases()
  local rows = {}
  local text = assert(read(M.DIR .. "/cases/CASES.tsv"), "corpus CASES.tsv not found")
  for i, line in ipairs(lines(text)) do
    if i > 1 then
      local cols = {}
      for c in (line .. "\t"):gmatch("(.-)\t") do cols[#cols + 1] = c end
      local files = {}
      for f in cols[2]:gmatch("%S+") do files[#files + 1] = f:gsub("%.yml$", "") end
      rows[#rows + 1] = { name = cols[1], files = files, exit_code = tonumber(cols[4]) }
    end
  end
  return rows
end

local counter = 0

-- Prepare a working directory with the given corpus files (names without
-- .yml) and their support files; returns the directory.
function M.prepare(names)
  counter = counter + 1
  local dir = ("/tmp/compose-corpus-%s-%d"):format(require("support.leaks").pid(), counter)
  local cmd = { "rm -rf " .. dir, "mkdir -p " .. dir }
  for _, n in ipairs(names) do
    cmd[#cmd + 1] = ("cp %s %s/"):format(shell_quote(M.DIR .. "/" .. n .. ".yml"), dir)
    local support = M.DIR .. "/" .. n .. ".support"
    cmd[#cmd + 1] = ("if [ -d %s ]; then cp -r %s/. %s/; fi"):format(shell_quote(support), shell_quote(support), dir)
  end
  assert(os.execute(table.concat(cmd, " && ")))
  return dir
end

function M.cleanup(dir)
  assert(dir:match("^/tmp/compose%-corpus%-"))
  os.execute("rm -rf " .. dir)
end

-- The environment of a run: the .vars.env lines (cases: cases/<name>.vars.env)
function M.vars(name, is_case)
  local path = M.DIR .. (is_case and "/cases/" or "/") .. name .. ".vars.env"
  return lines(read(path) or "")
end

-- Run `argv` (a list) in dir with the corpus environment. Returns
-- {code, stdout, stderr}.
function M.run_in(dir, vars, argv)
  local env = { "HOME=/home/corpus", "PATH=/usr/bin:/bin" }
  for _, v in ipairs(vars) do env[#env + 1] = v end
  if os.getenv("SLIPWAY_SRC") then env[#env + 1] = "SLIPWAY_SRC=" .. os.getenv("SLIPWAY_SRC") end
  local q = {}
  for i, e in ipairs(env) do q[i] = shell_quote(e) end
  local a = {}
  for i, x in ipairs(argv) do a[i] = shell_quote(x) end
  local cmd = ("cd %s && env -i %s %s >out.yml 2>err.txt; echo $?"):format(shell_quote(dir), table.concat(q, " "),
    table.concat(a, " "))
  local p = io.popen(cmd)
  local code = tonumber(p:read("a"):match("%d+"))
  p:close()
  return { code = code, stdout = read(dir .. "/out.yml") or "", stderr = read(dir .. "/err.txt") or "" }
end

-- `slipway compose config -c f1 -c f2 ...` for corpus names
function M.config(slipway, names, vars)
  local dir = M.prepare(names)
  local argv = { slipway, "compose", "config" }
  for _, n in ipairs(names) do
    argv[#argv + 1] = "-c"
    argv[#argv + 1] = n .. ".yml"
  end
  local r = M.run_in(dir, vars, argv)
  r.dir = dir
  -- outputs name the working directory; the expectations say /tmp/compose-corpus
  r.normalized = r.stdout:gsub(dir:gsub("%p", "%%%0"), "/tmp/compose-corpus")
  return r
end

-- Deep equality of decoded YAML, types included (1 ~= 1.0 ~= "1").
function M.same_data(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return math.type(a) == math.type(b) and a == b end
  if type(a) ~= "table" then return a == b end
  if (getmetatable(a) == yaml.array_mt) ~= (getmetatable(b) == yaml.array_mt) then return false end
  for k, v in pairs(a) do if not M.same_data(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- The docker messages a rejected run may produce (stderr.txt; several when
-- docker's own choice varied between runs).
function M.expected_messages(name, is_case)
  local text = read(M.DIR .. (is_case and "/cases/" or "/") .. name .. ".stderr.txt") or ""
  local out = {}
  for _, l in ipairs(lines(text)) do
    if not l:match("^# NONDETERMINISTIC") and not l:match("^level=") then out[#out + 1] = l end
  end
  return out
end

-- The class of an error message: what went wrong, without which service
-- or key docker happened to visit first.
function M.class(msg)
  msg = msg:gsub("^[^\n]-:%d+:%d+: ", ""):gsub("\n.*", "")
  if msg:find("invalid interpolation format", 1, true) then
    local req = msg:match('"required variable (%S+) is missing a value')
    return req and ("required variable " .. req) or "invalid interpolation format"
  end
  if msg:find("failed to cast to expected type", 1, true) then return "cast to expected type" end
  local prop = msg:match("Additional property (%S+) is not allowed")
  if prop then return "additional property " .. prop end
  local field, what = msg:match("([%w_%-]+) must be (.*)$")
  if field then return field .. " must be " .. what end
  if msg:find("forbidden properties", 1, true) then return "forbidden properties" end
  if msg:find("version mismatched", 1, true) then return "version mismatched" end
  if msg:find("unsupported Compose file version", 1, true) then return "unsupported version" end
  return msg
end

return M
