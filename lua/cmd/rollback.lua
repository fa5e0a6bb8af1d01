-- slipway rollback: bring what the pipeline changed back to the state of
-- its last verified release (or --to ID), as a run of its own: the lock,
-- a release in the ledger (kind "rollback"), the reporters, the finally
-- tasks. The work is one task, "rollback", that restores each target
-- (slipway.ledger.restore); with --validate the pipeline's verifies tasks
-- run after it.
local task = require("slipway.task")
local argparse = require("slipway.pipeline.args")
local prepare = require("slipway.pipeline.prepare")
local graph = require("slipway.pipeline.graph")
local ledger = require("slipway.ledger")
local restore = require("slipway.ledger.restore")
local run_cmd = require("slipway.cmd.run")

local M = {}

M.help = [[
usage: slipway rollback [FILE] [--env E] [-p name=value]... [--to ID] [--dry-run]
                        [--validate] [--ledger local|swarm] [--lock-wait DURATION]
                        [--reason TEXT] [--json] [--no-color] [--reporter NAME]

Bring everything the pipeline in FILE (default: deploy.lua) changed in an
environment back to its last verified release (or to release ID, --to: an
id or the start of one, from `slipway history`). For a Docker stack every
service gets the exact spec and image digest it had then; services created
since are removed; the wait for convergence and health is the deploy's. A
Vercel production alias goes back to the deployment of that release. The
rollback takes the lock of the pipeline and environment and is itself a
release in the ledger (`slipway history` shows it).

  --to ID        the release to go back to (default: the newest verified one)
  --dry-run      print, per service, what would change (the live spec against
                 the release's) and change nothing
  --validate     then run the pipeline's validation tasks (verifies = true);
                 the rollback release is verified only when they pass
  --env, -p      the parameters, as for `run` (the environment names the
                 history and the lock)
  --ledger, --lock-wait, --reason, --json, --no-color, --reporter: as for `run`

Exit codes: 0 restored (and validated), 1 it failed or there is nothing to
roll back to, 2 bad input, 130/143 interrupted.
]]

local FLAGS = { "--env", "-p", "--param", "--to", "--dry-run", "--validate", "--json", "--no-color",
                "--timestamps", "--reporter", "--ledger", "--lock-wait", "--reason", "-j", "--jobs" }

-- The release to go back to: --to, else the newest verified one.
local function choose_target(store, releases, filter, to)
  if to then
    local rec, err = ledger.find(store, to, filter)
    if not rec then return nil, err end
    return rec
  end
  local rec = restore.last_verified(releases)
  if not rec then
    return nil, ("no verified release of %s (%s) in %s to go back to (`slipway history` lists the releases)")
      :format(filter.pipeline, filter.environment, store.where)
  end
  return rec
end

local function print_diff(target, states, unknown)
  local out = io.stdout
  out:write(("rollback to release %s (%s, %s):\n"):format(target.id, target.started_at or "?",
    target.verified and "verified" or "not verified"))
  for _, st in ipairs(states) do
    out:write(("%s %s (as release %s left it):\n"):format(st.kind, st.target, st.release))
    local rows = restore.diff(st)
    if not rows then
      out:write("  (restored as a whole: no per-item diff)\n")
    else
      for _, r in ipairs(rows) do
        out:write(("  %-9s %s%s\n"):format(r.action, r.name, r.difference and ("  " .. r.difference) or ""))
      end
    end
  end
  for _, k in ipairs(unknown) do
    out:write(("%s: created after release %s, no earlier state: left as it is\n"):format(k, target.id))
  end
end

-- The pipeline `rollback` runs: the "rollback" task, the verifies tasks
-- after it (--validate), the finally tasks.
local function rollback_def(def, target, states, unknown, validate)
  local name = def.by_name["rollback"] and "rollback-release" or "rollback"
  local tasks, by_name = {}, {}
  local function add(t)
    t.index = #tasks + 1
    tasks[t.index], by_name[t.name] = t, t
  end
  add {
    name = name, file = def.file, line = 0, needs = {}, retries = 0, backoff_ms = 1000,
    continue_on_error = false, finally = false,
    description = "back to release " .. target.id,
    fn = function()
      for _, k in ipairs(unknown) do
        require("slipway.context").warn(("%s: created after release %s, no earlier state: left as it is"):format(k, target.id))
      end
      local results = {}
      for _, st in ipairs(states) do
        local r = restore.apply(st)
        results[#results + 1] = { kind = st.kind, target = st.target, from_release = st.release,
                                  summary = type(r) == "table" and r.summary or nil }
      end
      return results
    end,
  }
  for _, t in ipairs(def.tasks) do
    if (validate and t.verifies) or t.finally then
      local copy = {}
      for k, v in pairs(t) do copy[k] = v end
      copy.needs = t.finally and {} or { name }
      add(copy)
    end
  end
  local out = {}
  for k, v in pairs(def) do out[k] = v end
  out.tasks, out.by_name = tasks, by_name
  return out
end

function M.main(args)
  local opts, def, values = prepare.from_args("rollback", args, FLAGS)
  if not opts then return def end
  local store = run_cmd.ledger_store(def, opts.ledger)
  local filter = { pipeline = ledger.pipeline_name(def), environment = ledger.environment(values) }
  local code
  local ok, err = task.run(function()
    local releases, rerr = ledger.read(store, filter)
    if not releases then
      io.stderr:write("slipway rollback: ", tostring(rerr), "\n")
      code = 1
      return
    end
    local target, why = choose_target(store, releases, filter, opts.to)
    if not target then
      io.stderr:write("slipway rollback: ", why, "\n")
      code = 1
      return
    end
    local states, unknown = restore.states(releases, target.id)
    if #states == 0 then
      io.stderr:write(("slipway rollback: release %s recorded no change slipway can restore\n"):format(target.id))
      code = 1
      return
    end
    if opts.dry_run then
      print_diff(target, states, unknown)
      code = 0
      return
    end
    local lease, lwhy = run_cmd.lock_lease()
    if not lease then
      io.stderr:write("slipway rollback: ", lwhy, "\n")
      code = 2
      return
    end
    local rdef = rollback_def(def, target, states, unknown, opts.validate)
    graph.check(rdef)
    local plan = graph.plan(rdef, values, {})
    opts.jobs = opts.jobs or argparse.default_jobs()
    opts.ledger = { store = store, wait = opts.lock_wait, reason = opts.reason or ("rollback to " .. target.id),
                    lease = lease }
    opts.record_fields = { kind = "rollback", rollback_to = target.id }
    code = require("slipway.pipeline.run").execute(rdef, values, plan, opts, run_cmd.reporter(opts))
  end)
  if not ok then
    io.stderr:write("slipway: internal error: ", require("slipway.secret").mask(tostring(err)), "\n")
    return 70
  end
  return code
end

return M
