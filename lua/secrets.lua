-- slipway.secrets: resolving secrets; scripts and pipelines reach it as the
-- global `secret`.
--
--   secret("VERCEL_TOKEN")                               -- environment variable VERCEL_TOKEN
--   secret("db_password", { from = "file" })             -- /run/secrets/db_password
--   secret("API_KEY", { from = "file", path = "keys/api.txt" })
--   secret("STRIPE_KEY", { from = "dotenv" })            -- STRIPE_KEY in ./.env
--   secret("db", { from = "dotenv", path = ".env.prod", key = "DATABASE_URL" })
--   secret("NPM_TOKEN", { from = "cmd", cmd = "op read op://ci/npm/token" })
--   secret("SENTRY_DSN", { optional = true })            -- nil when it is not set
--
-- Each gives a slipway.Secret (src/secret.c): it prints as ***, the value
-- is masked in everything slipway writes, and natives that send it (env,
-- stdin, http headers and body) take it as it is. Options: from ("env",
-- the default; "file"; "dotenv"; "cmd"), path (file: default
-- /run/secrets/NAME; dotenv: default .env; relative to the current
-- directory), key (env, dotenv: the variable, default NAME), cmd (a shell string
-- or an argv list; its stdout, trimmed, is the value), timeout (cmd,
-- default 30s), optional (true: nil when the secret is not there). A file's
-- value loses one final newline. A secret that is missing, empty, or
-- shorter than 4 characters raises "FILE:LINE: secret NAME: ..." saying
-- where it looked; at the top level of a pipeline that is bad input (exit 2).
-- The command runs at the top level too (reading a secret is not a side
-- effect): as a child with a timeout, like git.
--
-- The global also carries slipway.secret's functions: secret.new,
-- reveal, is_secret, values, mask, mask_deep, redact_urls, contains, active.
local native = require("slipway.secret")
local caller = require("slipway.caller")

local M = {}
for k, v in pairs(native) do M[k] = v end

M.DIR = "/run/secrets"               -- where from = "file" looks by default
local MAX_BYTES = 1024 * 1024        -- the most a secret file, .env or command may bring
local OPTIONS = { "from", "path", "key", "cmd", "timeout", "optional" }
local SOURCES = {                    -- the options each source takes
  env = { key = true }, file = { path = true }, dotenv = { path = true, key = true },
  cmd = { cmd = true, timeout = true },
}
local SOURCE_NAMES = { "env", "file", "dotenv", "cmd" }

-- A problem with the call itself: raised at the user's line.
local function misuse(name, msg)
  error(caller.where() .. ("secret %s: %s"):format(name, msg), 0)
end

-- The options of a secret checked: opts, from | nil, why.
local function check(name, opts)
  if type(name) ~= "string" or name == "" then
    return nil, ("expected a name (a non-empty string), got %s"):format(type(name) == "string" and "''" or type(name))
  end
  if opts ~= nil and type(opts) ~= "table" then return nil, "options must be a table, got " .. type(opts) end
  opts = opts or {}
  local unknown = caller.unknown_option(opts, OPTIONS)
  if unknown ~= nil then
    return nil, ("unknown option '%s' (valid: %s)"):format(tostring(unknown), table.concat(OPTIONS, ", "))
  end
  local from = opts.from or "env"
  if not SOURCES[from] then
    return nil, ("from must be %s, got %s"):format('"env", "file", "dotenv" or "cmd"', tostring(from))
  end
  for _, k in ipairs({ "path", "key", "cmd", "timeout" }) do
    if opts[k] ~= nil and not SOURCES[from][k] then
      local takes = {}
      for _, src in ipairs(SOURCE_NAMES) do
        if SOURCES[src][k] then takes[#takes + 1] = ('"%s"'):format(src) end
      end
      return nil, ("option '%s' is for from = %s, not \"%s\""):format(k, table.concat(takes, " or "), from)
    end
  end
  for _, k in ipairs({ "path", "key" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "") then
      return nil, ("option '%s' must be a non-empty string, got %s"):format(k, type(opts[k]))
    end
  end
  if from == "cmd" and type(opts.cmd) ~= "string" and type(opts.cmd) ~= "table" then
    return nil, ("from = \"cmd\" needs cmd = a shell string or an argv list, got %s"):format(type(opts.cmd))
  end
  if from == "file" and opts.path == nil and (name:find("/", 1, true) or name == "." or name == "..") then
    return nil, "the name is no file name under " .. M.DIR .. ": give path = ..."
  end
  if opts.optional ~= nil and type(opts.optional) ~= "boolean" then
    return nil, "option 'optional' must be a boolean, got " .. type(opts.optional)
  end
  return opts, from
end
M._check = check

-- The contents of path (at most MAX_BYTES) | nil, why, missing (true when
-- the file is not there).
local function read_file(path)
  local f, err, errno = io.open(path, "rb")
  if not f then return nil, ("cannot read %s: %s"):format(path, (err:gsub("^.-: ", "", 1))), errno == 2 end
  local text, rerr = f:read(MAX_BYTES + 1)
  f:close()
  if text == nil and rerr then return nil, ("cannot read %s: %s"):format(path, rerr) end
  text = text or ""
  if #text > MAX_BYTES then return nil, ("%s is larger than 1 MiB"):format(path) end
  return text
end

-- Run cmd: inside a task through slipway.proc, at the top level of a
-- pipeline (no task yet) as a task of its own.
local function run_command(cmd, timeout)
  local proc = require("slipway.proc")
  local task = require("slipway.task")
  local opts = { stdout = "capture", stderr = "capture", timeout = timeout or "30s", max_output = MAX_BYTES }
  if task.current() then return proc.run(cmd, opts) end
  local ok, r, msg = task.run(proc.run, cmd, opts)
  if not ok then error(r, 0) end
  return r, msg
end

local function show_cmd(cmd)
  if type(cmd) == "string" then return cmd end
  local words = {}
  for i, w in ipairs(cmd) do words[i] = require("slipway.words").shell_quote(tostring(w)) end
  return table.concat(words, " ")
end

-- The value of a source | nil, why, missing (true: it is simply not there,
-- which optional = true allows), and what it came from, for messages.
local function lookup(name, opts, from)
  if from == "env" then
    local var = opts.key or name
    local v = os.getenv(var)
    if v == nil then return nil, "the environment variable " .. var .. " is not set", true end
    return v, nil, nil, "the environment variable " .. var
  elseif from == "file" then
    local path = opts.path or (M.DIR .. "/" .. name)
    local text, why, missing = read_file(path)
    if not text then return nil, why, missing end
    return (text:gsub("\r?\n$", "", 1)), nil, nil, path
  elseif from == "dotenv" then
    local path, key = opts.path or ".env", opts.key or name
    local text, why, missing = read_file(path)
    if not text then return nil, why, missing end
    local vars, perr = require("slipway.dotenv").parse(text, path)
    if not vars then return nil, perr end
    if vars[key] == nil then return nil, ("%s has no %s"):format(path, key), true end
    return vars[key], nil, nil, ("%s in %s"):format(key, path)
  end
  local shown = show_cmd(opts.cmd)
  local r, msg = run_command(opts.cmd, opts.timeout)
  if r == nil then return nil, ("the command `%s` could not run: %s"):format(shown, msg) end
  if r.code ~= 0 then
    local limit = opts.timeout or "30s"
    if type(limit) == "number" then limit = limit .. "s" end
    local what = r.timed_out and ("timed out after " .. limit) or ("exit code " .. r.code)
    local first = (r.stderr or ""):match("^%s*([^\n]-)%s*\n") or (r.stderr or ""):match("^%s*(.-)%s*$")
    return nil, ("the command `%s` failed: %s%s"):format(shown, what, first ~= "" and (": " .. first) or "")
  end
  return (r.stdout:gsub("^%s+", ""):gsub("%s+$", "")), nil, nil, ("the output of `%s`"):format(shown)
end

-- The secret name's options (checked by check) describe: Secret | nil,
-- why, missing (true: simply not there, which optional = true allows).
function M._lookup(name, opts, from)
  local value, why, missing, origin = lookup(name, opts, from or opts.from or "env")
  if value == "" then return nil, origin .. " is empty", true end
  if value == nil then return nil, why, missing end
  if #value < native.MIN_LENGTH then
    return nil, ("%s is %s long; a secret must be %d or more (masking so short a value would hide "
      .. "ordinary text everywhere)"):format(origin, require("slipway.words").count(#value, "character"),
      native.MIN_LENGTH)
  end
  return native.new(value, name)
end

-- While a command only inspects a pipeline (plan, graph, ci github,
-- completion, history), secret() reads nothing: each secret is a stand-in
-- Secret that names it, so those commands work where the secrets are not
-- (a developer's machine, a fresh CI job). The run checks them for real.
local inspecting = false

-- _inspect(fn, ...): fn(...) with secrets not read; raises what fn raises.
function M._inspect(fn, ...)
  local was = inspecting
  inspecting = true
  local r = table.pack(pcall(fn, ...))
  inspecting = was
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- secret(name, opts) -> Secret | nil (optional and missing)
local function resolve(_, name, opts)
  local from, why
  opts, from = check(name, opts)
  if not opts then
    if type(name) ~= "string" or name == "" then error(caller.where() .. "secret: " .. from, 0) end
    misuse(name, from)
  end
  if inspecting then return native.new(("<secret %s, not read by this command>"):format(name), name) end
  local s, missing
  s, why, missing = M._lookup(name, opts, from)
  if s then return s end
  if missing and opts.optional then return nil end
  misuse(name, why)
end

return setmetatable(M, { __call = resolve })
