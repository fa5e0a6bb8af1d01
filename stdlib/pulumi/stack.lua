-- slipway.pulumi.stack: a stack ready for an operation (selected, created
-- when the CLI says it does not exist, its config set), its outputs and
-- its last update, with the CLI commands the Automation API runs for them.
--
-- Plain config goes in one `config set-all --stack S [--path] --plaintext
-- k=v ...`; each secret in its own `config set KEY --secret --stack S`
-- with the value on the CLI's stdin (the Automation API puts it on argv,
-- where any process can read it in /proc/PID/cmdline: slipway does not).
local fs = require("slipway.fs")
local json = require("slipway.json")
local secret = require("slipway.secret")
local context = require("slipway.context")
local cli = require("slipway.pulumi.cli")

local M = {}

-- Pulumi.<stack>.yaml (or .yml, .json) in the project: where the CLI keeps
-- the stack's config. Its path, and its text now (nil when there is none).
function M.settings_file(c)
  local name = c.stack:match("([^/]+)$")
  for _, ext in ipairs({ ".yaml", ".yml", ".json" }) do
    local path = ("%s/Pulumi.%s%s"):format(c.cwd, name, ext)
    local text = fs.read(path)
    if text then return path, text end
  end
  return ("%s/Pulumi.%s.yaml"):format(c.cwd, name), nil
end

local function run_or_raise(c, args, opts)
  local r = cli.run(c, args, opts)
  if r.code ~= 0 then cli.raise(c, args, r) end
  return r
end

-- Select the stack; create it when it does not exist and create is set
-- (`stack select --create`, or `stack init` on a CLI without --create).
-- Returns whether it was created.
local function select(c, create)
  local args = { "stack", "select", "--stack", c.stack }
  local r = cli.run(c, args)
  if r.code == 0 then return false end
  if not (create and cli.no_such_stack(r)) then cli.raise(c, args, r) end
  args = { "stack", "select", "--stack", c.stack, "--create" }
  if c.secrets_provider then
    args[#args + 1] = "--secrets-provider"
    args[#args + 1] = c.secrets_provider
  end
  r = cli.run(c, args)
  if r.code ~= 0 and cli.unknown_flag(r, "--create") then
    args = { "stack", "init", c.stack }
    if c.secrets_provider then
      args[#args + 1] = "--secrets-provider"
      args[#args + 1] = c.secrets_provider
    end
    r = cli.run(c, args)
  end
  if r.code ~= 0 then cli.raise(c, args, r) end
  return true
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Set the config. Returns the plain config { key = text } and the names
-- of the secret keys.
local function set_config(c)
  local plain, secrets, pairs_args = {}, {}, {}
  for _, key in ipairs(sorted_keys(c.config)) do
    local v = c.config[key]
    if secret.is_secret(v) then
      secrets[#secrets + 1] = { key = key, value = v }
    else
      plain[key] = tostring(v)
      pairs_args[#pairs_args + 1] = key .. "=" .. tostring(v)
    end
  end
  for _, key in ipairs(sorted_keys(c.secret_config)) do
    secrets[#secrets + 1] = { key = key, value = c.secret_config[key] }
  end
  if #pairs_args > 0 then
    local args = { "config", "set-all", "--stack", c.stack }
    if c.config_path then args[#args + 1] = "--path" end
    for _, pair in ipairs(pairs_args) do
      args[#args + 1] = "--plaintext"
      args[#args + 1] = pair
    end
    run_or_raise(c, args)
  end
  local secret_keys = {}
  for _, s in ipairs(secrets) do
    local value = secret.reveal(s.value)
    if not secret.is_secret(s.value) then
      -- a plain string given as a secret is one from now on (the masker knows it)
      local ok, err = pcall(secret.new, value, "pulumi config " .. s.key)
      if not ok then c.fail(("secret_config.%s: %s"):format(s.key, tostring(err):gsub("^.-secret%.new: ", ""))) end
    end
    local args = { "config", "set", s.key, "--secret", "--stack", c.stack }
    if c.config_path then args[#args + 1] = "--path" end
    run_or_raise(c, args, { stdin = value })
    secret_keys[#secret_keys + 1] = s.key
  end
  return plain, secret_keys
end

-- The stack's settings file as the run first found it, and whether the
-- run created the stack: { [run] = { [path] = { text, created } } }. An
-- `up` after a `pulumi.stack` that set the config (or created the stack)
-- in the same run must undo to what was there before the run, not to
-- what that call left.
local first_seen = setmetatable({}, { __mode = "k" })

local function as_the_run_found_it(path, before, created)
  local run = context.run()
  if not run then return before, created end
  first_seen[run] = first_seen[run] or {}
  local seen = first_seen[run][path]
  if not seen then
    seen = { text = before, created = created }
    first_seen[run][path] = seen
  end
  return seen.text, seen.created
end

-- The stack ready for an operation: { created (by this call), config =
-- {plain}, secret_keys, settings = { path, text } as they were before this
-- run set any config, created_in_run }.
function M.prepare(c, create)
  local created = select(c, create)
  local path, before = M.settings_file(c)
  local run_before, created_in_run = as_the_run_found_it(path, before, created)
  local plain, secret_keys = set_config(c)
  if created then context.output("stdout", ("pulumi: created stack %s"):format(c.stack)) end
  return { created = created, config = plain, secret_keys = secret_keys, settings = { path = path, text = run_before },
           created_in_run = created_in_run }
end

-- The stack's outputs: secret ones (shown as "[secret]" without
-- --show-secrets, as the Automation API tells them) become slipway
-- Secrets named "pulumi:<key>". Returns outputs, { key = true } secret.
function M.outputs(c)
  local shown = run_or_raise(c, { "stack", "output", "--json", "--stack", c.stack }, { capture = true })
  local revealed = run_or_raise(c, { "stack", "output", "--json", "--show-secrets", "--stack", c.stack }, { capture = true })
  local plain, err = json.decode(shown.output ~= "" and shown.output or "{}")
  local full, err2 = json.decode(revealed.output ~= "" and revealed.output or "{}")
  if type(plain) ~= "table" or type(full) ~= "table" then
    c.fail("`pulumi stack output --json` printed something that is not a JSON object: " .. tostring(err or err2))
  end
  local outputs, secret_keys = {}, {}
  for key, value in pairs(full) do
    local marker = plain[key]
    if marker ~= nil and json.encode(marker):find("[secret]", 1, true) then
      local text = type(value) == "string" and value or json.encode(value)
      local ok, s = pcall(secret.new, text, "pulumi:" .. key)
      if ok then
        outputs[key] = s
      else
        context.warn(("%s: secret output '%s' is shorter than 4 bytes: slipway cannot mask it, so it is left out")
          :format(c.fname, key))
      end
      secret_keys[key] = true
    else
      outputs[key] = value
    end
  end
  return outputs, secret_keys
end

-- The stack's last update (`stack history`, secrets not shown): its
-- version and config as recorded, or nil.
function M.last_update(c)
  local r = cli.run(c, { "stack", "history", "--json", "--page-size", "1", "--page", "1", "--stack", c.stack },
    { capture = true })
  if r.code ~= 0 then return nil end
  local list = json.decode(r.output)
  return type(list) == "table" and list[1] or nil
end

return M
