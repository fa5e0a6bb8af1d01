-- slipway.pulumi: infrastructure with the Pulumi CLI, driven the way the
-- Automation API drives it (see docs/pulumi.md):
--
--   pulumi.stack{ cwd, stack, config, secret_config }  -> { created, config, secret_keys }
--   pulumi.preview{ cwd, stack, ... }   -> { changes, steps, duration, permalink? }
--   pulumi.up{ cwd, stack, ... }        -> { changes, outputs, duration, version, permalink? }
--   pulumi.refresh{ ... }, pulumi.destroy{ ... }  -> like up
--   pulumi.outputs{ cwd, stack }        -> { name = value | Secret }
--   pulumi.describe("up", { cwd, stack }) -> "pulumi up --stack prod (in infra)"
--
-- preview and up select the stack and create it when it does not exist;
-- all of them set `config` and `secret_config` first. The engine's events
-- are the task's progress while the CLI runs (slipway.pulumi.events). up,
-- refresh and destroy record a change (kind "pulumi.stack") in a pipeline
-- run; its undo is opt-in: rollback = "pulumi" puts the stack's previous
-- config back and runs `up` again. Failures raise "FILE:LINE: pulumi.up:
-- `pulumi up --stack dev` failed (exit 255): <the CLI's errors>".
local caller = require("slipway.caller")
local duration = require("slipway.duration")
local fs = require("slipway.fs")
local secret = require("slipway.secret")
local context = require("slipway.context")
local task = require("slipway.task")
local shell_quote = require("slipway.words").shell_quote
local cli = require("slipway.pulumi.cli")
local events = require("slipway.pulumi.events")
local stack = require("slipway.pulumi.stack")

local M = {}

local OPERATION_TIMEOUT = "1h"
local LOCK_BACKOFF_MAX_MS = 30000

local function list(...)
  local out = {}
  for _, l in ipairs({ ... }) do
    for _, v in ipairs(l) do out[#out + 1] = v end
  end
  return out
end

local BASE = { "cwd", "stack", "backend", "home", "env", "bin", "timeout" }
local STACK = list(BASE, { "secrets_provider", "config", "secret_config", "config_path" })
local OPERATION = list(STACK, { "lock_wait", "message", "target", "refresh", "parallel" })
local UP = list(OPERATION, { "rollback" })

---------------------------------------------------------------- options

local function check_type(c, opts, key, want, what)
  local v = opts[key]
  if v ~= nil and type(v) ~= want then
    c.fail(("option '%s' must be %s, got %s"):format(key, what or ("a " .. want), type(v)))
  end
end

local function check_map(c, opts, key, values_ok, what)
  local t = opts[key]
  if t == nil then return {} end
  if type(t) ~= "table" then c.fail(("option '%s' must be a table { name = value }, got %s"):format(key, type(t))) end
  for k, v in pairs(t) do
    if type(k) ~= "string" or k == "" then c.fail(("%s: keys must be non-empty strings, got %s"):format(key, tostring(k))) end
    if not values_ok(v) then c.fail(("%s.%s must be %s, got %s"):format(key, k, what, type(v))) end
  end
  return t
end

local function is_text(v) return type(v) == "string" or secret.is_secret(v) end

-- The call: options checked, with c.fail(msg) raising at the user's line.
local function prepare(fname, opts, allowed)
  local where = caller.where()
  local c = { fname = fname, where = where }
  function c.fail(msg) error(where .. fname .. ": " .. msg, 0) end
  if type(opts) ~= "table" then c.fail("expected a table of options { cwd = ..., stack = ... }, got " .. type(opts)) end
  caller.check_options(fname, opts, allowed)
  for _, key in ipairs({ "cwd", "stack", "backend", "home", "bin", "secrets_provider", "message" }) do
    check_type(c, opts, key, "string")
  end
  if opts.cwd == nil then c.fail("option 'cwd' is required (the Pulumi project's directory)") end
  if opts.stack == nil or opts.stack == "" then c.fail("option 'stack' is required (the stack's name)") end
  c.cwd = fs.realpath(opts.cwd) or c.fail(("cwd %s: no such directory"):format(opts.cwd))
  c.stack = opts.stack
  c.backend, c.home, c.secrets_provider, c.message = opts.backend, opts.home, opts.secrets_provider, opts.message
  c.bin = opts.bin or os.getenv("PULUMI_BIN") or "pulumi"
  c.env = check_map(c, opts, "env", function(v)
    return is_text(v) or type(v) == "number" or v == false
  end, "a string, a Secret, a number or false")
  c.config = check_map(c, opts, "config", function(v)
    return is_text(v) or type(v) == "number" or type(v) == "boolean"
  end, "a string, a number, a boolean or a Secret")
  c.secret_config = check_map(c, opts, "secret_config", is_text, "a string or a Secret")
  check_type(c, opts, "config_path", "boolean")
  c.config_path = opts.config_path
  for _, key in ipairs({ "timeout", "lock_wait" }) do
    if opts[key] ~= nil then
      local ms, err = duration.parse(opts[key])
      if not ms then c.fail(("option '%s': %s"):format(key, err)) end
      c[key .. "_ms"] = ms
    end
  end
  c.timeout_text = opts.timeout ~= nil and duration.format(c.timeout_ms) or OPERATION_TIMEOUT
  if opts.target ~= nil then
    c.targets = type(opts.target) == "table" and opts.target or { opts.target }
    for _, t in ipairs(c.targets) do
      if type(t) ~= "string" then c.fail("option 'target' must be a URN or a list of URNs") end
    end
  end
  check_type(c, opts, "refresh", "boolean")
  c.refresh = opts.refresh
  if opts.parallel ~= nil and math.type(opts.parallel) ~= "integer" then
    c.fail("option 'parallel' must be an integer, got " .. tostring(opts.parallel))
  end
  c.parallel = opts.parallel
  if opts.rollback ~= nil and opts.rollback ~= "pulumi" and opts.rollback ~= false then
    c.fail(('option \'rollback\' must be "pulumi" (re-run up with the previous config) or false, got %s')
      :format(tostring(opts.rollback)))
  end
  c.rollback = opts.rollback
  return c
end

---------------------------------------------------------------- operations

local COMMANDS = {
  preview = { "preview" },
  update = { "up", "--yes", "--skip-preview" },
  refresh = { "refresh", "--yes", "--skip-preview" },
  destroy = { "destroy", "--yes", "--skip-preview" },
}

local function operation_args(kind, c)
  local args = {}
  for _, a in ipairs(COMMANDS[kind]) do args[#args + 1] = a end
  args[#args + 1] = "--exec-kind=auto.local"
  if c.message then
    args[#args + 1] = "--message"
    args[#args + 1] = c.message
  end
  for _, t in ipairs(c.targets or {}) do args[#args + 1] = "--target=" .. t end
  if c.refresh and (kind == "update" or kind == "preview" or kind == "destroy") then args[#args + 1] = "--refresh" end
  if c.parallel then args[#args + 1] = "--parallel=" .. c.parallel end
  args[#args + 1] = "--stack"
  args[#args + 1] = c.stack
  return args
end

local PERMALINK = { "View Live: ", "View in Browser: ", "View in Browser (Ctrl+O): ", "Permalink: " }

local function permalink_of(line)
  for _, p in ipairs(PERMALINK) do
    local at = line:find(p, 1, true)
    if at then return (line:sub(at + #p):match("^%S+")) end
  end
end

-- Run the operation, waiting out another update's lock when lock_wait
-- allows. Returns the CLI's result, the progress and the permalink.
local function run_operation(kind, c, args)
  local deadline = c.lock_wait_ms and task.now() + c.lock_wait_ms
  local backoff, waiting = 1000, false
  while true do
    local progress = events.progress(kind)
    local permalink
    local r = events.run(c, args, progress, {
      timeout = c.timeout_ms and c.timeout_ms / 1000 or OPERATION_TIMEOUT,
      on_stdout = function(line) permalink = permalink or permalink_of(line) end,
    })
    local lock = r.code ~= 0 and cli.lock_conflict(r)
    if not lock then return r, progress, permalink end
    local who = lock.holder and (" by " .. lock.holder) or ""
    if not deadline or task.now() + backoff > deadline then
      local hint = deadline and (" (waited %s)"):format(duration.format(c.lock_wait_ms))
        or ': wait for it with lock_wait = "5m", or clear a stale lock with `pulumi cancel`'
      c.fail(("stack %s is locked%s: another update is in progress%s"):format(c.stack, who, hint))
    end
    if not waiting then
      context.output("stderr", ("pulumi: stack %s is locked%s; waiting up to %s"):format(c.stack, who,
        duration.format(c.lock_wait_ms)))
      waiting = true
    end
    task.sleep(backoff / 1000)
    backoff = math.min(backoff * 2, LOCK_BACKOFF_MAX_MS)
  end
end

-- Why it failed: the engine's error diagnostics, else what the CLI said.
local function failure_detail(r, progress)
  if #progress.errors > 0 then return table.concat(progress.errors, "; ") end
  return cli.complaint(r)
end

local function git_revision(dir)
  local ok, sha = pcall(require("slipway.git").sha, { cwd = dir })
  return ok and sha or nil
end

-- A backend URL without credentials in it.
local function safe_url(url)
  return url and (url:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1")) or nil
end

local VERBS = { update = "up", refresh = "refresh", destroy = "destroy" }

-- The change an operation made, in the run's record; its undo only with
-- rollback = "pulumi".
local function record(kind, c, info, result, failed)
  local nonsecret = {}
  for k, v in pairs(result.outputs or {}) do
    if not secret.is_secret(v) then nonsecret[k] = v end
  end
  local parts = {}
  for _, op in ipairs({ "create", "update", "replace", "delete" }) do
    if (result.changes[op] or 0) > 0 then parts[#parts + 1] = ("%d %s"):format(result.changes[op], op) end
  end
  local summary = ("%s %s: %s%s"):format(VERBS[kind], c.stack, #parts > 0 and table.concat(parts, ", ") or "no changes",
    failed and " (failed part way)" or "")
  local undo
  if c.rollback == "pulumi" and kind == "update" then
    if info.created_in_run then
      context.warn(("%s: rollback = \"pulumi\": stack %s was created by this run, there is no earlier config to go back to; it will be left in place")
        :format(c.fname, c.stack))
    else
      undo = function()
        local path, settings = info.settings.path, info.settings.text
        if settings then assert(fs.write(path, settings)) else fs.remove(path) end
        local again = {}
        for k, v in pairs(c) do again[k] = v end
        again.config, again.secret_config = {}, {}
        local r, progress = run_operation("update", again, operation_args("update", again))
        if r.code ~= 0 then cli.raise(again, operation_args("update", again), r, failure_detail(r, progress)) end
      end
    end
  end
  context.add_change({
    kind = "pulumi.stack", target = c.stack, summary = summary, undo = undo,
    data = {
      stack = c.stack, operation = VERBS[kind], backend = safe_url(c.backend), version = result.version,
      changes = result.changes, outputs = nonsecret, config = info.config, secret_config_keys = info.secret_keys,
      revision = git_revision(c.cwd), result = failed and "failed" or "succeeded", permalink = result.permalink,
    },
  })
end

local function operation(kind, fname, opts, allowed)
  local c = prepare(fname, opts, allowed)
  local started = task.now()
  local info = stack.prepare(c, kind == "update" or kind == "preview")
  local args = operation_args(kind, c)
  context.output("stdout", ("%s: stack %s"):format(cli.show(args):match("^pulumi %S+"), c.stack))
  local r, progress, permalink = run_operation(kind, c, args)
  local seconds = (task.now() - started) / 1000
  local result = { stack = c.stack, changes = progress:changes(), duration = seconds, permalink = permalink,
                   steps = progress.steps, warnings = progress.warnings, events = progress.events }
  context.output("stdout", progress:summary_line(seconds))
  if r.code ~= 0 then
    local changed = false
    for _, op in ipairs({ "create", "update", "replace", "delete" }) do
      if (progress.counts[op] or 0) > 0 then changed = true end
    end
    if changed and kind ~= "preview" then record(kind, c, info, result, true) end
    cli.raise(c, args, r, failure_detail(r, progress))
  end
  if kind ~= "preview" then
    if kind ~= "destroy" then result.outputs = stack.outputs(c) end
    local last = stack.last_update(c)
    result.version = last and last.version
    record(kind, c, info, result, false)
  end
  return result
end

---------------------------------------------------------------- the API

function M.stack(opts)
  local c = prepare("pulumi.stack", opts, STACK)
  local info = stack.prepare(c, true)
  return { stack = c.stack, created = info.created, config = info.config, secret_keys = info.secret_keys }
end

function M.preview(opts) return operation("preview", "pulumi.preview", opts, OPERATION) end
function M.up(opts) return operation("update", "pulumi.up", opts, UP) end
function M.refresh(opts) return operation("refresh", "pulumi.refresh", opts, OPERATION) end
function M.destroy(opts) return operation("destroy", "pulumi.destroy", opts, OPERATION) end

function M.outputs(opts)
  local c = prepare("pulumi.outputs", opts, BASE)
  stack.prepare(c, false)
  return (stack.outputs(c))
end

-- What an operation would run, for a task's description (`slipway plan`
-- shows it): no I/O, nothing run.
function M.describe(op, opts)
  local kinds = { preview = "preview", up = "update", refresh = "refresh", destroy = "destroy" }
  local where = caller.where()
  if not kinds[op] then
    error(("%spulumi.describe: the operation must be \"preview\", \"up\", \"refresh\" or \"destroy\", got %s")
      :format(where, tostring(op)), 0)
  end
  if type(opts) ~= "table" or type(opts.stack) ~= "string" or type(opts.cwd) ~= "string" then
    error(where .. "pulumi.describe: expected { cwd = ..., stack = ... }", 0)
  end
  local words = { "pulumi", op }
  for _, a in ipairs(COMMANDS[kinds[op]]) do
    if a ~= COMMANDS[kinds[op]][1] then words[#words + 1] = a end
  end
  words[#words + 1] = "--stack"
  words[#words + 1] = shell_quote(opts.stack)
  return ("%s (in %s)"):format(table.concat(words, " "), opts.cwd)
end

return M
