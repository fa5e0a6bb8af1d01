-- The fake Pulumi CLI of the tests (tests/fakes/pulumi runs it with the
-- slipway binary under test). The real CLI cannot be installed here; this
-- one answers the commands slipway.pulumi runs the way pulumi/pulumi's
-- sources do (pkg/cmd/pulumi, sdk/go/auto: see ../shared/specs/pulumi/
-- NOTES.md): the same flags (and "error: unknown flag: --x" for others),
-- the same messages where slipway matches them (no stack named 'S'
-- found, the DIY backend's lock message, the service's 409), the same
-- files, and engine events shaped like the real streams (pulumi_engine.lua).
--
--   version | stack select | stack init | stack output | stack history
--   config [set | set-all] | preview | up | refresh | destroy | cancel
--
-- State: PULUMI_BACKEND_URL=file://DIR keeps stacks as the DIY backend
-- does (DIR/.pulumi/stacks/<project>/<stack>.json, locks under
-- DIR/.pulumi/locks/organization/<project>/<stack>/); any other backend is
-- "the service" (needs PULUMI_ACCESS_TOKEN; stacks under
-- $PULUMI_HOME/fake-cloud/, updates have a permalink). Config lives in the
-- project's Pulumi.<stack>.yaml, secrets encrypted: with the passphrase
-- (PULUMI_CONFIG_PASSPHRASE[_FILE]) on the DIY backend. The program is
-- the project's Pulumi.yaml (runtime: yaml, resources:, outputs:).
--
-- Faults and knobs, from the environment:
--   FAKE_PULUMI_FAIL=res [FAKE_PULUMI_FAIL_MESSAGE=..]  that resource's step fails
--   FAKE_PULUMI_DELAY=seconds     pause before each resource step (a slow update)
--   FAKE_PULUMI_WARN=msg, FAKE_PULUMI_INFO=msg  diagnostics on the stack
--   FAKE_PULUMI_DRIFT=res         refresh finds that resource changed
--   FAKE_PULUMI_BENCH_EVENTS=n    up writes n generated events, in bursts
--   FAKE_PULUMI_NO_SELECT_CREATE=1  an old CLI: stack select has no --create
--   FAKE_PULUMI_LOG=file          append one JSON line per run: argv, pid,
--                                 PULUMI_AUTOMATION_API, and any signal received
-- A secret on the command line is refused (exit 99): a `config set --secret`
-- value, a `set-all --secret` pair, or any word containing a stored secret
-- config value, PULUMI_ACCESS_TOKEN or the passphrase.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local engine = require("pulumi_engine")
local fs = require("slipway.fs")
local json = require("slipway.json")
local yaml = require("slipway.yaml")
local task = require("slipway.task")

local ARGV = { table.unpack(arg, 1, #arg) }
local VERSION = "v3.140.0"

local function log_run(extra)
  local file = os.getenv("FAKE_PULUMI_LOG")
  if not file then return end
  local entry = { argv = ARGV, pid = tonumber(io.open("/proc/self/stat"):read("l"):match("^%d+")),
                  automation_api = os.getenv("PULUMI_AUTOMATION_API") }
  for k, v in pairs(extra or {}) do entry[k] = v end
  assert(fs.append(file, json.encode(entry) .. "\n"))
end

local DIE_RAISES = false   -- while looking for stored secrets: failures are no answer

local function die(msg, code)
  if DIE_RAISES then error(msg, 0) end
  io.stderr:write("error: ", msg, "\n")
  os.exit(code or 255)
end

---------------------------------------------------------------- flags

local B, S, A, I = "bool", "string", "stringArray", "int"
local GLOBAL = { ["non-interactive"] = { B }, color = { S }, cwd = { S, "C" }, verbose = { I, "v" },
  logtostderr = { B }, logflow = { B }, emoji = { B }, ["disable-integrity-checking"] = { B },
  tracing = { S }, profiling = { S }, memprofilerate = { I } }

local UPDATE_FLAGS = { stack = { S, "s" }, ["event-log"] = { S }, ["exec-kind"] = { S }, message = { S, "m" },
  diff = { B }, target = { A, "t" }, ["target-dependents"] = { B }, parallel = { I, "p" },
  ["suppress-outputs"] = { B }, ["suppress-progress"] = { B }, json = { B, "j" }, ["config-file"] = { S },
  ["expect-no-changes"] = { B }, ["exec-agent"] = { S }, ["show-secrets"] = { B },
  ["show-replacement-steps"] = { B }, ["show-sames"] = { B }, debug = { B, "d" }, client = { S } }

local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

local COMMANDS = {
  ["version"] = { flags = {}, max = 0 },
  ["stack select"] = { flags = { stack = { S, "s" }, create = { B, "c" }, ["secrets-provider"] = { S } }, max = 1 },
  ["stack init"] = { flags = { stack = { S, "s" }, ["secrets-provider"] = { S }, ["copy-config-from"] = { S },
    ["no-select"] = { B }, teams = { A } }, max = 1 },
  ["stack output"] = { flags = { stack = { S, "s" }, json = { B, "j" }, ["show-secrets"] = { B }, shell = { B } }, max = 1 },
  ["stack history"] = { flags = { stack = { S, "s" }, json = { B, "j" }, ["show-secrets"] = { B },
    ["page-size"] = { I }, page = { I }, ["full-dates"] = { B } }, max = 0 },
  ["config"] = { flags = { stack = { S, "s" }, json = { B, "j" }, ["show-secrets"] = { B }, ["config-file"] = { S },
    open = { B } }, max = 0 },
  ["config set"] = { flags = { stack = { S, "s" }, path = { B }, plaintext = { B }, secret = { B }, type = { S },
    ["config-file"] = { S } }, min = 1, max = 2 },
  ["config set-all"] = { flags = { stack = { S, "s" }, path = { B }, plaintext = { A }, secret = { A },
    json = { S }, ["config-file"] = { S } }, max = 0 },
  ["preview"] = { flags = with(UPDATE_FLAGS, { refresh = { B, "r" }, replace = { A }, ["save-plan"] = { S },
    ["import-file"] = { S }, config = { A, "c" }, ["config-path"] = { B }, ["policy-pack"] = { A },
    ["policy-pack-config"] = { A }, ["show-reads"] = { B } }), max = 0 },
  ["up"] = { flags = with(UPDATE_FLAGS, { yes = { B, "y" }, ["skip-preview"] = { B, "f" }, refresh = { B, "r" },
    replace = { A }, plan = { S }, config = { A, "c" }, ["config-path"] = { B }, ["policy-pack"] = { A },
    ["policy-pack-config"] = { A }, ["continue-on-error"] = { B }, ["show-reads"] = { B },
    ["show-config"] = { B } }), max = 1 },
  ["refresh"] = { flags = with(UPDATE_FLAGS, { yes = { B, "y" }, ["skip-preview"] = { B, "f" },
    ["preview-only"] = { B }, ["clear-pending-creates"] = { B }, ["skip-pending-creates"] = { B },
    ["run-program"] = { B } }), max = 0 },
  ["destroy"] = { flags = with(UPDATE_FLAGS, { yes = { B, "y" }, ["skip-preview"] = { B, "f" },
    ["preview-only"] = { B }, refresh = { S, "r" }, remove = { B }, ["continue-on-error"] = { B },
    ["exclude-protected"] = { B }, ["run-program"] = { B } }), max = 0 },
  ["cancel"] = { flags = { stack = { S, "s" }, yes = { B, "y" } }, max = 1 },
}
if os.getenv("FAKE_PULUMI_NO_SELECT_CREATE") then COMMANDS["stack select"].flags.create = nil end

-- pflag's rules: --name=value, --name value, -s value, -svalue, -yf;
-- bools take no separate value; `--` ends the flags.
local function parse(args)
  local words, i = {}, 1
  while args[i] and args[i]:sub(1, 1) ~= "-" and #words < 2 do
    words[#words + 1] = args[i]
    i = i + 1
  end
  local name
  for n = #words, 1, -1 do
    local candidate = table.concat(words, " ", 1, n)
    if COMMANDS[candidate] then
      name = candidate
      i = i - (#words - n)
      break
    end
  end
  if not name then
    if #words == 0 then die("a command is required") end
    die(('unknown command "%s" for "pulumi"'):format(words[#words] or ""))
  end
  local spec = COMMANDS[name]
  local function lookup(long, short)
    for k, f in pairs(spec.flags) do
      if (long and k == long) or (short and f[2] == short) then return k, f end
    end
    for k, f in pairs(GLOBAL) do
      if (long and k == long) or (short and f[2] == short) then return k, f end
    end
  end
  local flags, positional = {}, {}
  local function set(k, f, v)
    if f[1] == A then
      flags[k] = flags[k] or {}
      table.insert(flags[k], v)
    elseif f[1] == B then
      if v ~= "true" and v ~= "false" then die(('invalid argument "%s" for "--%s" flag: strconv.ParseBool: parsing "%s": invalid syntax'):format(v, k, v)) end
      flags[k] = v == "true"
    elseif f[1] == I then
      if not tostring(v):match("^%-?%d+$") then die(('invalid argument "%s" for "--%s" flag'):format(v, k)) end
      flags[k] = tonumber(v)
    else
      flags[k] = v
    end
  end
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do positional[#positional + 1] = args[j] end
      break
    elseif a:sub(1, 2) == "--" then
      local long, value = a:match("^%-%-([^=]+)=(.*)$")
      long = long or a:sub(3)
      local k, f = lookup(long)
      if not k then die("unknown flag: --" .. long) end
      if value == nil then
        if f[1] == B then value = "true"
        else
          i = i + 1
          if args[i] == nil then die("flag needs an argument: --" .. long) end
          value = args[i]
        end
      end
      set(k, f, value)
    elseif a:sub(1, 1) == "-" and #a > 1 then
      local j = 2
      while j <= #a do
        local c = a:sub(j, j)
        local k, f = lookup(nil, c)
        if not k then die(("unknown shorthand flag: '%s' in %s"):format(c, a)) end
        if f[1] == B then
          set(k, f, "true")
          j = j + 1
        else
          local value = a:sub(j + 1)
          if value == "" then
            i = i + 1
            if args[i] == nil then die(("flag needs an argument: '%s' in %s"):format(c, a)) end
            value = args[i]
          end
          set(k, f, value)
          break
        end
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if #positional > spec.max then
    die(("accepts at most %d arg(s), received %d"):format(spec.max, #positional))
  end
  if #positional < (spec.min or 0) then
    die(("requires at least %d arg(s), only received %d"):format(spec.min, #positional))
  end
  return name, flags, positional
end

---------------------------------------------------------------- workspace

local CWD
local function project()
  local text = fs.read(CWD .. "/Pulumi.yaml")
  if not text then
    die(("no Pulumi.yaml project file found (searching upwards from %s). If you have not created a project yet, use `pulumi new` to do so: no project file found"):format(CWD))
  end
  local program = assert(yaml.decode(text))
  return program.name, program
end

local function home()
  return os.getenv("PULUMI_HOME") or ((os.getenv("HOME") or "/tmp") .. "/.pulumi")
end

local function backend()
  local url = os.getenv("PULUMI_BACKEND_URL")
  local dir = url and url:match("^file://(.+)$")
  if dir then return { kind = "diy", url = url, dir = dir } end
  if not os.getenv("PULUMI_ACCESS_TOKEN") then
    die("PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")
  end
  return { kind = "service", url = url or "https://api.pulumi.com", dir = home() .. "/fake-cloud" }
end

local function short_name(s)
  return (s:match("([^/]+)$"))
end

local function workspace_file(proj)
  return ("%s/workspaces/%s-workspace.json"):format(home(), proj)
end

local function selected_stack(flags, proj)
  if flags.stack and flags.stack ~= "" then return short_name(flags.stack) end
  local w = fs.read(workspace_file(proj))
  if w then return json.decode(w).stack end
  die("no stack selected; please use `pulumi stack select` to choose one, or `pulumi stack init` to create one")
end

local function select(proj, stack)
  assert(fs.mkdir(home() .. "/workspaces"))
  assert(fs.write_atomic(workspace_file(proj), json.encode({ stack = stack })))
end

local function state_path(b, proj, stack)
  return ("%s/.pulumi/stacks/%s/%s.json"):format(b.dir, proj, stack)
end

local function load_state(b, proj, stack)
  local text = fs.read(state_path(b, proj, stack))
  return text and json.decode(text)
end

local function require_state(b, proj, stack)
  return load_state(b, proj, stack) or die(("no stack named '%s' found"):format(stack))
end

local function save_state(b, proj, stack, st)
  local path = state_path(b, proj, stack)
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write_atomic(path, json.encode(st)))
end

---------------------------------------------------------------- secrets

local function passphrase()
  local p = os.getenv("PULUMI_CONFIG_PASSPHRASE")
  if p == nil and os.getenv("PULUMI_CONFIG_PASSPHRASE_FILE") then
    p = fs.read(os.getenv("PULUMI_CONFIG_PASSPHRASE_FILE"))
  end
  return p
end

local function config_path(stack)
  return ("%s/Pulumi.%s.yaml"):format(CWD, stack)
end

local function read_stack_yaml(stack)
  local text = fs.read(config_path(stack))
  return text and assert(yaml.decode(text)) or {}
end

-- The secrets manager of a stack: encrypt(text) / decrypt(ciphertext).
local function secrets(b, st, stack, ps)
  local key
  if st.fake.secrets_provider == "passphrase" then
    local p = passphrase()
    if not p then
      die("getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables")
    end
    local salt = (ps.encryptionsalt or ""):match("^v1:(%x+):")
    if salt and ps.encryptionsalt ~= ("v1:%s:%s"):format(salt, engine.digest(p .. salt)) then
      die("constructing secrets manager of type \"passphrase\": incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase or set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the passphrase")
    end
    key = engine.digest(p .. (salt or ""))
  else
    key = engine.digest("service:" .. b.url .. ":" .. stack)
  end
  local function stream(n)
    local out, i = {}, 0
    while #table.concat(out) < n do
      i = i + 1
      out[#out + 1] = engine.digest(key .. i)
    end
    return table.concat(out)
  end
  local m = {}
  function m.encrypt(text)
    local ks = stream(#text)
    return "v1:" .. (text:gsub("()(.)", function(i, c)
      return ("%02x"):format(string.byte(c) ~ string.byte(ks, i))
    end))
  end
  function m.decrypt(cipher)
    local hex = cipher:match("^v1:(%x*)$") or die("failed to decrypt: bad ciphertext")
    local ks = stream(#hex // 2)
    local i = 0
    return (hex:gsub("%x%x", function(h)
      i = i + 1
      return string.char(tonumber(h, 16) ~ string.byte(ks, i))
    end))
  end
  return m
end

-- The stack's config: { ["proj:key"] = { value = string, secret = bool } }
-- (secrets decrypted when `sm` is given, else value nil).
local function read_config(stack, sm)
  local cfg = {}
  local function walk(prefix, v)
    if type(v) == "table" and v.secure then
      cfg[prefix] = { secret = true, value = sm and sm.decrypt(v.secure) or nil }
    elseif type(v) == "table" then
      for k, x in pairs(v) do walk(prefix .. "." .. k, x) end
    else
      cfg[prefix] = { value = tostring(v), secret = false }
    end
  end
  for k, v in pairs(read_stack_yaml(stack).config or {}) do walk(k, v) end
  return cfg
end

local function write_config_value(proj, stack, key, value, path)
  local ps = read_stack_yaml(stack)
  ps.config = ps.config or {}
  if not key:find(":", 1, true) then key = proj .. ":" .. key end
  if path then
    local ns, rest = key:match("^([^:]+:)(.*)$")
    local parts = {}
    for p in rest:gmatch("[^.]+") do parts[#parts + 1] = p end
    local t = ps.config
    for n = 1, #parts - 1 do
      local k = (n == 1 and ns or "") .. parts[n]
      t[k] = type(t[k]) == "table" and not t[k].secure and t[k] or {}
      t = t[k]
    end
    t[(#parts == 1 and ns or "") .. parts[#parts]] = value
  else
    ps.config[key] = value
  end
  local order = {}
  for _, k in ipairs({ "secretsprovider", "encryptionsalt", "config" }) do
    if ps[k] ~= nil then order[#order + 1] = k end
  end
  yaml.order(ps, order)
  yaml.order(ps.config, engine.sorted(ps.config))
  assert(fs.write(config_path(stack), yaml.encode(ps)))
end

-- Secrets must never be on the command line, where every process can read
-- them (/proc/PID/cmdline).
local function refuse_secret_argv(values)
  for n, word in ipairs(ARGV) do
    for _, v in ipairs(values) do
      if #v >= 4 and word:find(v, 1, true) then
        io.stderr:write(("fake pulumi: argument %d holds a secret value: any process can read it in /proc/%s/cmdline\n")
          :format(n, "PID"))
        os.exit(99)
      end
    end
  end
end

---------------------------------------------------------------- locks

local function lock_dir(b, proj, stack)
  return ("%s/.pulumi/locks/organization/%s/%s"):format(b.dir, proj, stack)
end

local function take_lock(b, proj, stack)
  local dir = lock_dir(b, proj, stack)
  local held = {}
  for _, name in ipairs(fs.list(dir) or {}) do
    if name:match("%.json$") then held[#held + 1] = name end
  end
  if #held > 0 then
    if b.kind == "service" then die("[409] Conflict: Another update is currently in progress.") end
    local lines = { ("the stack is currently locked by %d lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`."):format(#held) }
    for _, name in ipairs(held) do
      local l = json.decode(assert(fs.read(dir .. "/" .. name)))
      lines[#lines + 1] = ("  %s/.pulumi/locks/organization/%s/%s/%s: created by %s@%s (pid %d) at %s"):format(
        b.url, proj, stack, name, l.username, l.hostname, l.pid, l.timestamp)
    end
    die(table.concat(lines, "\n"))
  end
  assert(fs.mkdir(dir))
  local path = ("%s/%s.json"):format(dir, engine.random_hex(16))
  assert(fs.write(path, json.encode({ pid = tonumber(io.open("/proc/self/stat"):read("l"):match("^%d+")),
    username = os.getenv("USER") or "root", hostname = "fakehost", timestamp = os.date("!%Y-%m-%dT%H:%M:%SZ") })))
  return path
end

---------------------------------------------------------------- commands

local cmd = {}

cmd["version"] = function()
  print(VERSION)
end

local function init_stack(b, proj, stack, provider)
  if load_state(b, proj, stack) then die(("stack '%s' already exists"):format(stack)) end
  provider = (provider == nil or provider == "default") and (b.kind == "diy" and "passphrase" or "service") or provider
  local st = { version = 3, checkpoint = { stack = engine.stack_urn(stack, proj), latest = { resources = json.array({}) } },
               fake = { secrets_provider = provider, history = json.array({}) } }
  if provider == "passphrase" then
    local p = passphrase()
    if not p then
      die("passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables")
    end
    local ps = read_stack_yaml(stack)
    if not ps.encryptionsalt then
      local salt = engine.random_hex(8)
      ps.encryptionsalt = ("v1:%s:%s"):format(salt, engine.digest(p .. salt))
      assert(fs.write(config_path(stack), yaml.encode(ps)))
    end
  end
  save_state(b, proj, stack, st)
  print(("Created stack '%s'"):format(stack))
end

cmd["stack init"] = function(flags, pos)
  local proj = project()
  local b = backend()
  local stack = short_name(pos[1] or flags.stack or die("missing stack name"))
  init_stack(b, proj, stack, flags["secrets-provider"])
  if not flags["no-select"] then select(proj, stack) end
end

cmd["stack select"] = function(flags, pos)
  local proj = project()
  local b = backend()
  if pos[1] and flags.stack then die("only one of --stack or argument stack name may be specified, not both") end
  local stack = short_name(pos[1] or flags.stack or die("no stack given (interactive selection is off)"))
  if not load_state(b, proj, stack) then
    if not flags.create then die(("no stack named '%s' found"):format(stack)) end
    init_stack(b, proj, stack, flags["secrets-provider"])
  end
  select(proj, stack)
end

local function stack_context(flags)
  local proj, program = project()
  local b = backend()
  local stack = selected_stack(flags, proj)
  local st = require_state(b, proj, stack)
  return { proj = proj, program = program, b = b, stack = stack, st = st }
end

local function manager(c)
  c.sm = c.sm or secrets(c.b, c.st, c.stack, read_stack_yaml(c.stack))
  return c.sm
end

cmd["config set"] = function(flags, pos)
  local c = stack_context(flags)
  local value = pos[2]
  if flags.secret and value ~= nil then
    io.stderr:write("fake pulumi: a --secret value on the command line: any process can read it in /proc/PID/cmdline\n")
    os.exit(99)
  end
  if value == nil then
    local tty = fs.realpath("/proc/self/fd/0") or ""
    if tty:match("^/dev/pts/") or tty:match("^/dev/tty") then
      die("config value must be specified in non-interactive mode")
    end
    value = (io.read("a") or ""):gsub("\r?\n$", "")
  end
  local stored = value
  if flags.secret then stored = { secure = manager(c).encrypt(value) } end
  write_config_value(c.proj, c.stack, pos[1], stored, flags.path)
end

cmd["config set-all"] = function(flags)
  local c = stack_context(flags)
  if flags.secret then
    io.stderr:write("fake pulumi: --secret values on the command line: any process can read them in /proc/PID/cmdline\n")
    os.exit(99)
  end
  for _, pair in ipairs(flags.plaintext or {}) do
    local k, v = pair:match("^([^=]+)=(.*)$")
    if not k then die(("could not parse %s as a configuration key/value pair"):format(pair)) end
    write_config_value(c.proj, c.stack, k, v, flags.path)
  end
end

cmd["config"] = function(flags)
  local c = stack_context(flags)
  local cfg = read_config(c.stack, flags["show-secrets"] and manager(c) or nil)
  local out = {}
  for k, v in pairs(cfg) do
    out[k] = { value = v.value, secret = v.secret }
  end
  print(json.encode(json.object(out), { pretty = true }))
end

-- The stack's outputs { name = {v, secret} } from its state.
local function outputs_of(c)
  for _, r in ipairs(c.st.checkpoint.latest.resources) do
    if r.type == "pulumi:pulumi:Stack" then
      return engine.unshown(r.outputs, function(ct) return manager(c).decrypt(ct) end)
    end
  end
  return {}
end

cmd["stack output"] = function(flags, pos)
  if flags.json and flags.shell then die("only one of --json and --shell may be set") end
  local c = stack_context(flags)
  local outs = outputs_of(c)
  local shown = {}
  for k, o in pairs(outs) do
    shown[k] = (o.secret and not flags["show-secrets"]) and "[secret]" or o.v
  end
  if pos[1] then
    if shown[pos[1]] == nil then die(("current stack does not have output property '%s'"):format(pos[1])) end
    print(flags.json and json.encode(shown[pos[1]]) or tostring(shown[pos[1]]))
  elseif flags.json then
    print(json.encode(json.object(shown), { pretty = true }))
  else
    print("Current stack outputs (" .. #engine.sorted(shown) .. "):")
    for _, k in ipairs(engine.sorted(shown)) do print(("    %s  %s"):format(k, tostring(shown[k]))) end
  end
end

cmd["stack history"] = function(flags)
  local c = stack_context(flags)
  local list = {}
  local history = c.st.fake.history
  local size = flags["page-size"] or #history
  local first = ((flags.page or 1) - 1) * size
  for n = #history - first, math.max(1, #history - first - size + 1), -1 do
    local h = history[n]
    local config = {}
    for k, v in pairs(h.config) do
      config[k] = { secret = v.secret, value = v.secret and (flags["show-secrets"] and manager(c).decrypt(v.value) or "[secret]") or v.value }
    end
    list[#list + 1] = { version = h.version, kind = h.kind, startTime = h.startTime, endTime = h.endTime,
                        message = h.message, environment = json.object(h.environment), config = json.object(config),
                        result = h.result, resourceChanges = json.object(h.resourceChanges) }
  end
  print(json.encode(json.array(list), { pretty = true }))
end

cmd["cancel"] = function(flags, pos)
  local proj = project()
  local b = backend()
  local stack = short_name(pos[1] or flags.stack or selected_stack(flags, proj))
  if not flags.yes then die("--yes must be passed in to proceed when running in non-interactive mode") end
  fs.remove(lock_dir(b, proj, stack), { recursive = true })
  print("The currently running update for '" .. stack .. "' has been canceled!")
end

---------------------------------------------------------------- operations

require("pulumi_operations")(cmd, {
  engine = engine, die = die, log_run = log_run, stack_context = stack_context, manager = manager,
  read_config = read_config, outputs_of = outputs_of, take_lock = take_lock, save_state = save_state,
})

---------------------------------------------------------------- main

log_run()
local name, flags, pos = parse(ARGV)
CWD = flags.cwd or fs.realpath(".")
do
  local forbidden = {}
  for _, var in ipairs({ "PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE" }) do
    forbidden[#forbidden + 1] = os.getenv(var)
  end
  -- the stored secrets of the stack this command is for, when readable
  DIE_RAISES = true
  local ok, stored = pcall(function()
    local proj = project()
    local stack = flags.stack and short_name(flags.stack)
    if not stack then return {} end
    local values = {}
    local b = backend()
    local st = load_state(b, proj, stack)
    if st and passphrase() or (st and st.fake.secrets_provider ~= "passphrase") then
      for _, v in pairs(read_config(stack, secrets(b, st, stack, read_stack_yaml(stack)))) do
        if v.secret then values[#values + 1] = v.value end
      end
    end
    return values
  end)
  DIE_RAISES = false
  if ok then
    for _, v in ipairs(stored) do forbidden[#forbidden + 1] = v end
  end
  refuse_secret_argv(forbidden)
end
cmd[name](flags, pos)
task.sleep(0)
