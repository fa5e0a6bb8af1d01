-- slipway history: the releases of a pipeline, newest first, from its
-- ledger (slipway.ledger): .slipway/ next to the pipeline file, or the
-- swarm's (`ledger = "swarm"`, --ledger swarm). Also the argument handling
-- that `show` and `lock` share (M.ledger_args).
local ledger = require("slipway.ledger")
local words = require("slipway.words")
local events = require("slipway.events")

local M = {}

M.help = [[
usage: slipway history [FILE] [--env E] [-n N] [--json] [--ledger local|swarm]

List the releases of the pipeline in FILE (default deploy.lua), newest
first: id, when it started, who ran it, the git commit, the version (a
`version` or `tag` parameter), the environment, the status (success,
failed, rolled back, rollback failed, interrupted, running), whether it is
verified (its `verifies = true` tasks passed; without such tasks: it
succeeded) and how long it took. A release left "running" by a process that
is gone, or that nothing renewed within its lease, reads "interrupted".

  --env E          only the releases of environment E
  -n N             at most N releases (default 20)
  --json           one JSON array of the releases' summaries
  --ledger KIND    local (.slipway/ next to FILE) or swarm (the swarm of
                   DOCKER_HOST); default: the pipeline's `ledger`, else local

Releases that cannot be read are skipped with a warning. `slipway show ID`
prints one release.
]]

local FLAG_VALUES = { ["--env"] = true, ["-n"] = true, ["--ledger"] = true, ["--reason"] = true }

-- parse(command, args, flags, positional) -> opts | nil, exit code
-- flags: the flags the command takes; positional: names for the plain
-- arguments in order (the last may be "file").
local function parse(command, args, flags, positional)
  local allowed = {}
  for _, f in ipairs(flags) do allowed[f] = true end
  local opts, plain = { limit = 20 }, {}
  local function usage(msg)
    io.stderr:write("slipway ", command, ": ", msg, "\n")
    return nil, 2
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    local flag, inline = a, nil
    if a:sub(1, 2) == "--" and a:find("=", 1, true) then flag, inline = a:match("^([^=]+)=(.*)$") end
    if a:sub(1, 1) == "-" and a ~= "-" then
      if not allowed[flag] then
        return usage(("unknown flag '%s'%s (valid: %s)"):format(flag, words.did_you_mean(flag, flags),
          table.concat(flags, ", ")))
      end
      local value
      if FLAG_VALUES[flag] then
        value = inline
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil then return usage(flag .. " needs a value") end
      elseif inline ~= nil then
        return usage(flag .. " takes no value")
      end
      if flag == "-n" then
        local n = math.tointeger(tonumber(value))
        if n == nil or n < 1 then return usage("-n: expected a whole number >= 1, got '" .. value .. "'") end
        opts.limit = n
      elseif flag == "--ledger" then
        if value ~= "local" and value ~= "swarm" then
          return usage(("--ledger: expected local or swarm, got '%s'"):format(value))
        end
        opts.ledger = value
      else
        opts[flag:gsub("^%-+", ""):gsub("%-", "_")] = value == nil and true or value
      end
    else
      if #plain >= #positional then return usage(("unexpected argument '%s'"):format(a)) end
      plain[#plain + 1] = a
      opts[positional[#plain]] = a
    end
    i = i + 1
  end
  opts.file = opts.file or "deploy.lua"
  return opts
end

-- The environment a lock command is about: --env, SLIPWAY_PARAM_ENVIRONMENT,
-- the `environment` parameter's default, else "default".
local function environment_of(def, given)
  if given then return given end
  local from_env = os.getenv("SLIPWAY_PARAM_ENVIRONMENT")
  if from_env and from_env ~= "" then return from_env end
  local decl = def.params.by_name.environment
  if decl and decl.default ~= nil then return tostring(decl.default) end
  return "default"
end

-- What history, show and lock begin with: their arguments, the pipeline
-- (loaded: its name and `ledger`), the store. -> opts, def, store | nil,
-- exit code (the problem printed).
function M.ledger_args(command, args, flags, positional)
  local opts, code = parse(command, args, flags, positional or { "file" })
  if not opts then return nil, code end
  local prepare = require("slipway.pipeline.prepare")
  require("slipway.prelude")
  local ok, def = pcall(prepare.load, { file = opts.file, inspect = true })
  if not ok then return nil, prepare.report_input_error(def) end
  opts.pipeline = ledger.pipeline_name(def)
  opts.environment = environment_of(def, opts.env)
  local store = require("slipway.cmd.run").ledger_store(def, opts.ledger)
  return opts, def, store
end

-- Run fn(...) -> exit code as the main task (the swarm's store talks to
-- the engine), once the pipeline was loaded outside tasks (where its top
-- level cannot wait for anything).
function M.in_task(command, fn, ...)
  local ok, code = require("slipway.task").run(fn, ...)
  if ok then return code end
  io.stderr:write("slipway ", command, ": internal error: ", tostring(code), "\n")
  return 70
end

-- "2026-12-05T09:26:43Z" -> "2026-12-05 09:26:43"
function M.when(iso)
  return (tostring(iso or "-"):gsub("T", " "):gsub("Z$", ""))
end

-- A release's summary, as history prints it and --json gives it.
local function summary_of(r)
  local failed = {}
  for _, t in ipairs(r.tasks or {}) do
    if t.status == "failed" and not t.allowed then failed[#failed + 1] = t.name end
  end
  local json = require("slipway.json")
  return {
    id = r.id, pipeline = r.pipeline, environment = r.environment, started_at = r.started_at,
    finished_at = r.finished_at, duration_ms = r.duration_ms, who = r.who, host = r.host,
    ci_url = type(r.ci) == "table" and r.ci.url or nil, git = r.git, version = r.version,
    status = r.effective or r.status, verified = r.verified == true, exit_code = r.exit_code,
    failed = json.array(failed), interrupted = r.why,
  }
end
M.summary_of = summary_of

-- Rows of text as columns two spaces apart (the last one unpadded).
function M.columns(rows)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      local n = utf8.len(cell) or #cell
      if i < #row and n > (widths[i] or 0) then widths[i] = n end
    end
  end
  local out = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and (cell .. (" "):rep(widths[i] - (utf8.len(cell) or #cell))) or cell
    end
    out[r] = table.concat(cells, "  "):gsub("%s+$", "")
  end
  return table.concat(out, "\n") .. "\n"
end

local function short_sha(git)
  return type(git) == "table" and type(git.sha) == "string" and git.sha:sub(1, 7) .. (git.dirty and "+" or "") or "-"
end

local function list_releases(opts, store)
  local list, skipped = ledger.read(store, { pipeline = opts.pipeline, environment = opts.env },
    { limit = opts.limit })
  if not list then
    io.stderr:write(("slipway history: cannot list the releases in %s: %s\n"):format(store.where, tostring(skipped)))
    return opts.ledger == "swarm" and 1 or 2
  end
  for _, s in ipairs(skipped) do
    io.stderr:write(("slipway history: skipping %s: %s\n"):format(s.where, s.why))
  end
  local json = require("slipway.json")
  local rows = {}
  for i, r in ipairs(list) do rows[i] = summary_of(r) end
  if opts.json then
    io.stdout:write(json.encode(json.array(rows)), "\n")
    return 0
  end
  if #rows == 0 then
    io.stdout:write(("no releases of %s%s in %s\n"):format(opts.pipeline,
      opts.env and (" (environment " .. opts.env .. ")") or "", store.where))
    return 0
  end
  local text = { { "release", "started", "who", "git", "version", "environment", "status", "verified", "duration" } }
  for _, r in ipairs(rows) do
    text[#text + 1] = {
      r.id, M.when(r.started_at), events.printable(tostring(r.who or "-")), short_sha(r.git),
      events.printable(tostring(r.version or "-")), events.printable(tostring(r.environment or "-")),
      (tostring(r.status):gsub("_", " ")), r.verified and "yes" or "no", events.format_ms(r.duration_ms),
    }
  end
  io.stdout:write(M.columns(text))
  return 0
end

function M.main(args)
  local opts, def, store = M.ledger_args("history", args, { "--env", "-n", "--json", "--ledger" })
  if not opts then return def end
  return M.in_task("history", list_releases, opts, store)
end

return M
