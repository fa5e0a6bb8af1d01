-- Fixtures for the docker specs: the test app image (tests/apps), unique
-- names, the docker CLI (the reference the conformance spec compares
-- with), and clean-up. The specs run against the private engine that
-- tests/infra/up starts (tests/run sources tests/infra/env).
local proc = require("slipway.proc")
local docker = require("slipway.docker")
local client = require("slipway.docker.client")

local M = {}

M.registry = os.getenv("SLIPWAY_REGISTRY") or "127.0.0.1:5000"
M.cli_path = "/usr/local/bin/docker"

-- A name nobody else uses (several test runs may share one engine).
local counter = 0
function M.unique(prefix)
  counter = counter + 1
  local f = io.open("/proc/self/stat")
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return ("%s%s%d"):format(prefix, pid, counter)
end

-- Build tests/apps/health once per process (make is quick when it is
-- up to date).
local built = false
function M.app_binary()
  if built then return end
  local r = proc.run({ "make", "-s", "-C", "tests/apps", "health" })
  assert(r and r.code == 0, "make -C tests/apps health failed: " .. tostring(r and r.stderr))
  built = true
end

-- Build the test app image as `tag` with slipway's own docker.build.
function M.app_image(tag, args)
  M.app_binary()
  return docker.build({ context = "tests/apps", tag = tag, build_args = args })
end

-- Run the docker CLI against the test engine; returns proc.run's table.
function M.cli(args, opts)
  local argv = { M.cli_path }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = proc.run(argv, opts or {})
  assert(r, "cannot run " .. M.cli_path)
  return r
end

-- A temporary directory (removed by M.rmtree).
function M.tmpdir()
  local r = proc.run({ "mktemp", "-d" })
  return (r.stdout:gsub("%s+$", ""))
end

function M.rmtree(dir)
  if dir and dir:match("^/tmp/") then proc.run({ "rm", "-rf", dir }) end
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The live specs of a stack's services: { [service name] = Spec }.
function M.live_specs(stack, opts)
  local out = {}
  for _, s in ipairs(docker.stack.services(stack, opts)) do out[s.Spec.Name] = s.Spec end
  return out
end

-- Remove a stack (services, networks, secrets, configs), ignoring errors.
function M.remove_stack(name)
  pcall(docker.stack.rm, name)
end

-- Expect fn to raise; return the message.
function M.raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

M.client = client
return M
