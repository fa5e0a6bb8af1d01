-- slipway lock: the deploy lock of a pipeline and environment, by hand:
-- who holds it, take it (a freeze), give it back.
local lock = require("slipway.ledger.lock")
local ledger = require("slipway.ledger")
local history = require("slipway.cmd.history")

local M = {}

M.help = [[
usage: slipway lock status  [FILE] [--env E] [--json] [--ledger local|swarm]
       slipway lock acquire [FILE] --reason TEXT [--env E] [--ledger local|swarm]
       slipway lock release [FILE] [--env E] [--force] [--ledger local|swarm]

Every run of the pipeline in FILE (default deploy.lua) holds the lock of its
environment while it runs, so two deploys of one environment never overlap:
a second run fails at once naming the holder (exit 1), or waits its turn
with `slipway run --lock-wait DURATION`. A run's lock has a lease (60s,
SLIPWAY_LOCK_LEASE) that its heartbeat renews; the lock of a run that died
is taken over once its lease ran out.

  status    who holds the lock (user, host, pid, run, CI job), why, since
            when, when its lease runs out, and the runs waiting for it
  acquire   take the lock until `slipway lock release` (no lease): runs of
            that environment stop, naming you and the reason; exit 1 when
            it is held
  release   give back a lock taken with `acquire` (by you), or one whose
            lease ran out; --force removes any lock (a run holding it goes
            on without it)

The environment is --env, else the `environment` parameter's value
(SLIPWAY_PARAM_ENVIRONMENT or its default), else "default". The lock lives
in the pipeline's ledger: .slipway/ next to FILE, or the swarm of DOCKER_HOST
(`ledger = "swarm"` in the pipeline, or --ledger swarm).
]]

local function label(opts) return opts.pipeline .. "/" .. opts.environment end

local function lease_text(info)
  if not info.lease_s or info.lease_s == 0 then return "no lease (taken by hand: `slipway lock release` frees it)" end
  if info.expired then return ("its lease of %ds ran out %ds ago"):format(info.lease_s, math.floor(-info.expires_in)) end
  return ("lease of %ds, runs out in %ds unless renewed"):format(info.lease_s, math.ceil(info.expires_in or 0))
end

local function status(opts, store)
  local info = lock.status(store, opts.pipeline, opts.environment)
  local waiting = lock.waiting(store, opts.pipeline, opts.environment)
  if opts.json then
    local json = require("slipway.json")
    local out = { pipeline = opts.pipeline, environment = opts.environment, held = info ~= nil, waiting = {} }
    if info then
      out.holder, out.reason, out.since, out.lease_s = info.holder, info.reason, info.since, info.lease_s
      out.expired, out.expires_in, out.manual = info.expired, info.expires_in, info.manual == true
    end
    for i, w in ipairs(waiting) do out.waiting[i] = { holder = w.holder, since = w.since, reason = w.reason } end
    out.waiting = json.array(out.waiting)
    io.stdout:write(json.encode(out), "\n")
    return 0
  end
  if not info then
    io.stdout:write(("the lock of %s is free\n"):format(label(opts)))
  else
    io.stdout:write(("the lock of %s is held by %s\n  %s\n"):format(label(opts), lock.describe(info), lease_text(info)))
  end
  for i, w in ipairs(waiting) do
    io.stdout:write(("  waiting %d: %s\n"):format(i, lock.describe(w)))
  end
  return 0
end

local function acquire(opts, store)
  if not opts.reason or opts.reason == "" then
    io.stderr:write("slipway lock acquire: say why with --reason TEXT (it is shown to the runs it stops)\n")
    return 2
  end
  local held, err = lock.acquire(store, { pipeline = opts.pipeline, environment = opts.environment,
                                          reason = opts.reason, lease = 0, manual = true })
  if not held then
    io.stderr:write("slipway lock acquire: ", err, "\n")
    return 1
  end
  io.stdout:write(("took the lock of %s: %s (`slipway lock release` frees it)\n"):format(label(opts), opts.reason))
  return 0
end

local function release(opts, store)
  local info = lock.status(store, opts.pipeline, opts.environment)
  if not info then
    io.stdout:write(("the lock of %s is free\n"):format(label(opts)))
    return 0
  end
  local mine = info.manual and info.holder.user == ledger.identity().user
  if not (opts.force or mine or info.expired) then
    io.stderr:write(("slipway lock release: the lock of %s is held by %s (--force removes it anyway%s)\n")
      :format(label(opts), lock.describe(info), info.manual and "" or "; the run holding it goes on without it"))
    return 1
  end
  local ok, err = lock.remove(store, info)
  if not ok then
    io.stderr:write("slipway lock release: ", tostring(err), "\n")
    return 1
  end
  io.stdout:write(("released the lock of %s (held by %s)\n"):format(label(opts), lock.describe(info)))
  return 0
end

local ACTIONS = { status = status, acquire = acquire, release = release }
local FLAGS = {
  status = { "--env", "--json", "--ledger" },
  acquire = { "--env", "--reason", "--ledger" },
  release = { "--env", "--force", "--ledger" },
}

function M.main(args)
  local action = args[1]
  if ACTIONS[action] == nil then
    io.stderr:write(("slipway lock: %s (valid: status, acquire, release)\n"):format(action == nil and "which action?"
      or ("unknown action '%s'%s"):format(action, require("slipway.words").did_you_mean(action, { "status", "acquire", "release" }))))
    return 2
  end
  local rest = table.move(args, 2, #args, 1, {})
  local opts, def, store = history.ledger_args("lock " .. action, rest, FLAGS[action])
  if not opts then return def end
  return history.in_task("lock " .. action, function()
    local ok, code = pcall(ACTIONS[action], opts, store)
    if not ok then
      io.stderr:write(("slipway lock %s: %s\n"):format(action, tostring(code)))
      return 1
    end
    return code
  end)
end

return M
