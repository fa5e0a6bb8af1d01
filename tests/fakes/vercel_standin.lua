-- Start and drive the stand-in Vercel API (tests/fakes/vercel_api.lua) from
-- a spec or a benchmark: its TCP module is compiled once per process
-- (tests/fakes/vercel_tcp.c, with the system's cc), then the server runs as
-- a child process of the slipway binary under test on a free port.
--
--   local standin = require("fakes.vercel_standin")
--   local api = standin.start{ tokens = {"tok..."}, team = "team_x", check_responses = true }
--   api.url                       http://127.0.0.1:PORT (what VERCEL_API_URL names)
--   api:config{ build_ms = 2000, fail_build = true }
--   api:faults{ { match = "POST /v2/files", status = 503 } }
--   api:blobs{ { sha = ..., size = ... } }
--   api:log(), api:state(), api:reset(), api:stop()
--   standin.setenv(name, value|nil)   this process's environment (VERCEL_API_URL)
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local http = require("slipway.http")
local json = require("slipway.json")
local task = require("slipway.task")
local hash = require("slipway.hash")
local repo = require("support.repo")

local M = {}

local built      -- path of the compiled module, once per process

-- Compile tests/fakes/vercel_tcp.c; it uses slipway's own exported
-- functions (the await bridge) and Lua's, so it links against nothing.
-- Kept under /tmp by the digest of its source, so that specs and
-- benchmarks compile it once.
function M.tcp_module()
  if built then return built end
  local source = repo.ROOT .. "/tests/fakes/vercel_tcp.c"
  local text = assert(fs.read(source)) .. assert(fs.read(repo.ROOT .. "/src/await.h"))
  local out = ("/tmp/slipway-vercel-tcp-%s.so"):format(hash.sha1(text):sub(1, 16))
  if not fs.exists(out) then
    local flags = assert(proc.run("pkg-config --cflags lua5.4 libuv"))
    local tmp = out .. "." .. hash.random_hex(4)
    local r = assert(proc.run(("cc -shared -fPIC -O2 -I%s/src %s -o %s %s"):format(
      repo.ROOT, flags.stdout:gsub("%s+$", ""), tmp, source)))
    if r.code ~= 0 then error("vercel stand-in: cannot compile its TCP module:\n" .. r.stderr) end
    assert(os.rename(tmp, out))
  end
  built = out
  return out
end

local tcp_lib
function M.setenv(name, value)
  tcp_lib = tcp_lib or assert(package.loadlib(M.tcp_module(), "luaopen_vercel_tcp"))()
  tcp_lib.setenv(name, value)
end

local Api = {}
Api.__index = Api

local function control(self, method, path, value)
  local res, err = http.request({
    url = self.url .. path, method = method, timeout = "10s",
    headers = value ~= nil and { ["Content-Type"] = "application/json" } or nil,
    body = value ~= nil and json.encode(value) or nil,
  })
  if res == nil then error("vercel stand-in: " .. err, 2) end
  if res.status ~= 200 then error(("vercel stand-in: %s %s: %d %s"):format(method, path, res.status, res.body), 2) end
  return json.decode(res.body)
end

function Api:config(t) return control(self, "POST", "/_fake/config", t) end
function Api:faults(list) return control(self, "POST", "/_fake/faults", json.array(list)) end
function Api:blobs(list) return control(self, "POST", "/_fake/blobs", json.array(list)) end
function Api:log() return control(self, "GET", "/_fake/log") end
function Api:state() return control(self, "GET", "/_fake/state") end
function Api:reset() return control(self, "POST", "/_fake/reset", json.object({})) end

-- The requests the stand-in saw, less its own control ones, by route.
function Api:requests(route)
  local out = {}
  for _, e in ipairs(self:log()) do
    if route == nil or (e.method .. " " .. tostring(e.route)) == route then out[#out + 1] = e end
  end
  return out
end

function Api:stop()
  if self.process then
    self.process:kill("SIGKILL")
    self.process:wait()
    self.process = nil
  end
  http.close_idle()
end

function M.start(opts)
  opts = opts or {}
  local dir = assert(fs.tempdir("slipway-vercel-api"))
  local port_file = dir .. "/port"
  local cmd = {
    os.getenv("SLIPWAY") or (repo.ROOT .. "/build/slipway"), repo.ROOT .. "/tests/fakes/vercel_api.lua",
    "--tcp-module", M.tcp_module(), "--port-file", port_file,
  }
  if opts.tokens then
    assert(fs.write(dir .. "/tokens", table.concat(opts.tokens, "\n") .. "\n"))
    cmd[#cmd + 1] = "--tokens-file"
    cmd[#cmd + 1] = dir .. "/tokens"
  end
  if opts.team then
    cmd[#cmd + 1] = "--team"
    cmd[#cmd + 1] = opts.team
  end
  if opts.check_responses then cmd[#cmd + 1] = "--check-responses" end
  local p = assert(proc.spawn(cmd, { stdout = "null", stderr = opts.stderr or "inherit" }))
  local self = setmetatable({ process = p, dir = dir }, Api)
  local deadline = task.now() + 20000
  while not fs.exists(port_file) do
    if task.now() > deadline then
      self:stop()
      error("vercel stand-in: did not start within 20s")
    end
    task.sleep(0.02)
  end
  self.port = tonumber(assert(fs.read(port_file)))
  self.url = "http://127.0.0.1:" .. self.port
  fs.remove(dir, { recursive = true })
  return self
end

return M
