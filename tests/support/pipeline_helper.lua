-- Helpers for the pipeline specs: write a pipeline into a fresh directory
-- and run the slipway binary under test on it as a child process.
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local json = require("slipway.json")

local M = {}

M.slipway = os.getenv("SLIPWAY") or "build/slipway"

-- A clean environment for the child: no CI detection, no colour.
M.base_env = { CI = false, GITHUB_ACTIONS = false, GITHUB_STEP_SUMMARY = false,
               GITHUB_OUTPUT = false, NO_COLOR = "1", FORCE_COLOR = false }

local dirs = {}

-- A new directory holding files { ["deploy.lua"] = text, ... }.
function M.project(files)
  local dir = assert(fs.tempdir("slipway-pipeline-"))
  dirs[#dirs + 1] = dir
  for name, text in pairs(files or {}) do
    assert(fs.write(dir .. "/" .. name, text))
  end
  return dir
end

function M.cleanup()
  for _, d in ipairs(dirs) do fs.remove(d, { recursive = true }) end
  dirs = {}
end

local function command(args, opts)
  local argv = { M.slipway }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local env = {}
  for k, v in pairs(M.base_env) do env[k] = v end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return argv, env
end

-- run(dir, {args...}, {env = {...}, timeout = "20s"}) -> {code, stdout, stderr}
function M.run(dir, args, opts)
  opts = opts or {}
  local argv, env = command(args, opts)
  local r = assert(proc.run(argv, { cwd = dir, env = env, timeout = opts.timeout or "30s" }))
  return r
end

-- start_run(dir, {args...}, env) -> a `slipway run --reporter plain
-- args...` process, started (its output captured: p:wait() gives it)
function M.start_run(dir, args, env)
  local a = { "run", "--reporter", "plain" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local argv, e = command(a, { env = env })
  return assert(proc.spawn(argv, { cwd = dir, env = e }))
end

-- Run with --json and decode the events.
function M.run_json(dir, args, opts)
  local a = { "run", "--json" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local r = M.run(dir, a, opts)
  local evs = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local ev, err = json.decode(line)
    if ev == nil then error("not JSON: " .. line .. " (" .. tostring(err) .. ")") end
    evs[#evs + 1] = ev
  end
  r.events = evs
  return r
end

-- Events of a type, in order.
function M.of(events, ty)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.type == ty then out[#out + 1] = ev end
  end
  return out
end

-- Task names of events of a type, in order.
function M.names(events, ty)
  local out = {}
  for _, ev in ipairs(M.of(events, ty)) do out[#out + 1] = ev.task end
  return out
end

-- The finished status of each task: { name = status }.
function M.statuses(events)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.type == "task_finished" then out[ev.task] = ev.status end
    if ev.type == "task_skipped" then out[ev.task] = "skipped" end
  end
  return out
end

-- Is a process alive? A zombie is not: killed children whose parent died
-- are re-parented to PID 1, which in a container may never reap them.
function M.alive(pid)
  local stat = fs.read("/proc/" .. tostring(pid) .. "/stat")
  if stat == nil then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= "Z" and state ~= "X"
end

-- Wait (at most ms) until the file at path has content; returns it.
function M.wait_file(path, ms)
  local task = require("slipway.task")
  local deadline = task.now() + ms
  while not fs.exists(path) or fs.read(path) == "" do
    if task.now() > deadline then error("timed out waiting for " .. path) end
    task.sleep(0.02)
  end
  return fs.read(path)
end

function M.read(path)
  return fs.read(path)
end

return M
