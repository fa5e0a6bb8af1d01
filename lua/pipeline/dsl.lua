-- slipway.pipeline.dsl: evaluating a deploy.lua. Top-level code only
-- declares: `task(...)`, `param.*(...)`, `pipeline{...}`, reading the
-- environment and git.
-- It runs on the main thread, outside any task, so every native that waits
-- for I/O (processes, network, docker...) raises "...: call this inside a
-- task", and while it runs slipway.guard makes the blocking side effects of
-- the standard library and slipway.fs raise the same way, in the file and in
-- whatever it requires or loads. That is what makes `plan` and `graph` safe.
--
--   task(name, [opts], fn)
--     opts: needs (a name or a list), when (a parameter name, or
--     function(params) -> boolean), matrix (a list, or function(params)
--     returning one; run time), timeout (duration), retries (integer),
--     backoff (duration, default 1s, doubled per retry), continue_on_error,
--     finally (runs after everything else, whatever the outcome, with the
--     release summary: fn(params, release); no needs, matrix or rollback),
--     rollback (function, same arguments as fn, then what fn returned),
--     description, verifies (boolean: a validation task; the release is
--     verified only when every such task passed), cache (boolean) and
--     inputs (a list of file patterns): skipped as up to date when nothing
--     it depends on changed (lua/pipeline/cache.lua).
--     fn(params) for a plain task, fn(item, params) for a matrix task.
--
--   pipeline{ name, ledger, on_interrupt, lock }  (at most once)
--     name (string; default: the directory of a deploy.lua, else the file's
--     name), ledger ("local" | "swarm"), on_interrupt ("stop" | "rollback"),
--     lock (boolean, default true): def.pipeline, defaults filled in.
--
-- load(path) -> def | raises { input_error = "deploy.lua:LINE: message" }
-- def = { file, tasks = { ... in declaration order }, by_name, params, pipeline }
local task = require("slipway.task")
local params = require("slipway.pipeline.params")
local duration = require("slipway.duration")
local guard = require("slipway.guard")
local caller = require("slipway.caller")
require("slipway.prelude")         -- the globals scripts get (fs, sh, git, env...)

local M = {}

local TASK_OPTIONS = {
  "needs", "when", "matrix", "timeout", "retries", "backoff",
  "continue_on_error", "rollback", "description", "finally", "verifies", "inputs", "cache",
}
local DURATION_OPTIONS = { "timeout", "backoff" }

local LOAD_HINT = " (the top level of a pipeline only declares tasks and parameters; do this inside a task function)"

-- The {file, line} of the innermost frame running the pipeline file `source`
-- ("@deploy.lua"), or else of the user's call site (slipway.caller).
local function where_in(source)
  local file, line = caller.location(source)
  return { file = file or "?", line = line or 0 }
end

local function is_input_error(e)
  return type(e) == "table" and e.input_error ~= nil
end
M.is_input_error = is_input_error

local NAME_PATTERN = "^[%w_][%w_%-%.:/]*$"
local EMPTY = {}          -- the options of task(name, fn); never written

-- Raise an input error at file:line.
local function fail(file, line, msg)
  error({ input_error = ("%s:%d: %s"):format(file, line, msg) }, 0)
end

-- The options of task t besides `needs`, checked; errors name the
-- declaration's line.
local function check_options(t, opts)
  local name, file, line = t.name, t.file, t.line
  if opts.finally ~= nil and type(opts.finally) ~= "boolean" then
    fail(file, line, ("task '%s': finally must be true or false, got %s"):format(name, type(opts.finally)))
  end
  if opts.finally then
    for _, key in ipairs({ "needs", "matrix", "rollback" }) do
      if opts[key] ~= nil then
        fail(file, line, ("task '%s': a finally task runs after all the others, whatever happened: it takes no %s")
          :format(name, key))
      end
    end
  end
  if t.when ~= nil and type(t.when) ~= "string" and type(t.when) ~= "function" then
    fail(file, line, ("task '%s': when must be a parameter name or a function(params), got %s"):format(name, type(t.when)))
  end
  if t.matrix ~= nil and type(t.matrix) ~= "table" and type(t.matrix) ~= "function" then
    fail(file, line, ("task '%s': matrix must be a list or a function returning one, got %s"):format(name, type(t.matrix)))
  end
  if t.rollback ~= nil and type(t.rollback) ~= "function" then
    fail(file, line, ("task '%s': rollback must be a function, got %s"):format(name, type(t.rollback)))
  end
  if t.description ~= nil and type(t.description) ~= "string" then
    fail(file, line, ("task '%s': description must be a string, got %s"):format(name, type(t.description)))
  end
  if opts.verifies ~= nil and type(opts.verifies) ~= "boolean" then
    fail(file, line, ("task '%s': verifies must be true or false, got %s"):format(name, type(opts.verifies)))
  end
  t.verifies = opts.verifies or nil
  require("slipway.pipeline.cache").check_declaration(t, opts, fail)
  for i = 1, #DURATION_OPTIONS do
    local key = DURATION_OPTIONS[i]
    local v = opts[key]
    if v ~= nil then
      local ms, why
      if type(v) == "number" or type(v) == "string" then ms, why = duration.parse(v) end
      if ms == nil or ms < 0 then
        fail(file, line, ("task '%s': %s: %s"):format(name, key,
          why or ("expected a duration like \"30s\" or \"5m\", got " .. tostring(v))))
      end
      t[key .. "_ms"] = ms
    end
  end
  if opts.retries ~= nil then
    if math.type(opts.retries) ~= "integer" or opts.retries < 0 then
      fail(file, line, ("task '%s': retries must be a whole number >= 0, got %s"):format(name, tostring(opts.retries)))
    end
    t.retries = opts.retries
  end
end

-- pipeline{...}: its options, checked, with their defaults.
local PIPELINE_OPTIONS = { "name", "ledger", "on_interrupt", "lock" }
local PIPELINE_CHOICES = { ledger = { "local", "swarm" }, on_interrupt = { "stop", "rollback" } }
M.DEFAULT_PIPELINE = { ledger = "local", on_interrupt = "stop", lock = true }

local function pipeline_options(opts, file, line)
  if type(opts) ~= "table" then
    fail(file, line, ("pipeline: expected pipeline { name = ..., ledger = ..., on_interrupt = ..., lock = ... }, got %s")
      :format(type(opts)))
  end
  local unknown = caller.unknown_option(opts, PIPELINE_OPTIONS)
  if unknown ~= nil then
    fail(file, line, ("pipeline: unknown option '%s'%s (valid: %s)"):format(tostring(unknown),
      require("slipway.words").did_you_mean(tostring(unknown), PIPELINE_OPTIONS), table.concat(PIPELINE_OPTIONS, ", ")))
  end
  if opts.name ~= nil and (type(opts.name) ~= "string" or opts.name == "") then
    fail(file, line, ("pipeline: name must be a non-empty string, got %s")
      :format(opts.name == "" and "''" or type(opts.name)))
  end
  for _, key in ipairs({ "ledger", "on_interrupt" }) do
    local choices, v = PIPELINE_CHOICES[key], opts[key]
    local fine = v == nil
    for _, c in ipairs(choices) do fine = fine or v == c end
    if not fine then
      fail(file, line, ("pipeline: %s must be \"%s\", got %s"):format(key, table.concat(choices, "\" or \""),
        type(v) == "string" and ("'" .. v .. "'") or type(v)))
    end
  end
  if opts.lock ~= nil and type(opts.lock) ~= "boolean" then
    fail(file, line, ("pipeline: lock must be true or false, got %s"):format(type(opts.lock)))
  end
  return {
    name = opts.name, ledger = opts.ledger or "local", on_interrupt = opts.on_interrupt or "stop",
    lock = opts.lock ~= false, file = file, line = line,
  }
end

-- The message of a load-time error, placed at the pipeline's own line.
local function at_user_line(source, err)
  if is_input_error(err) then return err end
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    if task.is_cancelled(err) then err = "cancelled"
    elseif mt and mt.__tostring then err = tostring(err)
    else err = "error object is a " .. type(err) .. " value" end
  end
  local file = source:sub(2)
  local msg = err
  if msg:sub(1, #file + 1) ~= file .. ":" then
    local loc = where_in(source)
    local rest = msg:match("^[^\n:]+:%d+: (.*)$") or msg
    if loc.file == file then msg = ("%s:%d: %s"):format(file, loc.line, rest) end
  end
  if msg:find("call this inside a task", 1, true) and not msg:find(LOAD_HINT, 1, true) then
    msg = msg:gsub("call this inside a task[^\n]*", "call this inside a task" .. LOAD_HINT, 1)
  end
  return { input_error = msg }
end

-- Evaluate the pipeline file. Returns def, or raises {input_error=}.
-- opts.env_overrides: extra globals (tests).
function M.load(path)
  local source = "@" .. path
  local def = { file = path, tasks = {}, by_name = {}, loading = true }
  local function where() return where_in(source) end
  def.params = params.new_set(where)

  local function fail_at(loc, msg) fail(loc.file, loc.line, msg) end

  local chunk                 -- the pipeline file's main function, once loaded
  local getinfo = debug.getinfo

  -- (called as the __call of the `task` global: self is that table)
  local function declare(_, name, opts, fn)
    -- Usually called from the file's top level: its line without the
    -- search where() does.
    local file, line
    local info = getinfo(2, "fl")
    if info and info.func == chunk then
      file, line = path, info.currentline
    else
      local loc = where()
      file, line = loc.file, loc.line
    end
    if not def.loading then
      fail(file, line, "task: declare tasks at the top level of the pipeline, not while it runs")
    end
    local tf = type(opts)
    if tf == "function" and fn == nil then opts, fn, tf = EMPTY, opts, "table" end
    if type(name) ~= "string" or not name:match(NAME_PATTERN) then
      fail(file, line, ("task: the first argument must be a task name (letters, digits, and _ - . : /), got %s")
        :format(type(name) == "string" and ("'" .. name .. "'") or type(name)))
    end
    if tf ~= "table" then
      fail(file, line, ("task '%s': expected task(name, [options], function), got a %s as the second argument")
        :format(name, tf))
    end
    if type(fn) ~= "function" then
      fail(file, line, ("task '%s': expected a function as the last argument, got %s"):format(name, type(fn)))
    end
    local prev = def.by_name[name]
    if prev then
      fail(file, line, ("task '%s' is already declared at %s:%d (task names must be unique)")
        :format(name, prev.file, prev.line))
    end
    local unknown = caller.unknown_option(opts, TASK_OPTIONS)
    if unknown ~= nil then
      fail(file, line, ("task '%s': unknown option '%s' (valid: %s)")
        :format(name, tostring(unknown), table.concat(TASK_OPTIONS, ", ")))
    end
    local needs = opts.needs
    local list = {}
    local tn = needs ~= nil and type(needs)
    if tn == "string" then
      list[1] = needs
    elseif tn then
      if tn ~= "table" then
        fail(file, line, ("task '%s': needs must be a task name or a list of names, got %s"):format(name, type(needs)))
      end
      for i, n in ipairs(needs) do
        if type(n) ~= "string" then
          fail(file, line, ("task '%s': needs[%d] must be a task name, got %s"):format(name, i, type(n)))
        end
        list[i] = n
      end
    end
    local t = {
      name = name, fn = fn, file = file, line = line, index = #def.tasks + 1,
      needs = list, retries = 0, backoff_ms = 1000,
      description = opts.description, rollback = opts.rollback,
      continue_on_error = opts.continue_on_error and true or false,
      finally = opts.finally and true or false,
      when = opts.when, matrix = opts.matrix, timeout_ms = nil,
    }
    check_options(t, opts)
    def.tasks[t.index] = t
    def.by_name[name] = t
    return t
  end

  -- `task` is the declaration function and, for use inside tasks, the
  -- slipway.task module (task.sleep, task.spawn...).
  local task_global = setmetatable({}, {
    __call = declare,
    __index = task,
  })

  -- At load time print goes to stderr (masked, like all output: secrets
  -- may be resolved already), so that `slipway plan` output stays what
  -- plan prints; inside tasks it is the task's output.
  local function pipeline_print(...)
    if task.current() then return print(...) end
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    io.stderr:write(require("slipway.secret").mask(table.concat(parts, "\t")), "\n")
  end

  -- Parameters too are declared only while the file loads.
  local param_global = setmetatable({}, {
    __index = function(_, kind)
      local f = def.params.api[kind]
      return function(...)
        if not def.loading then
          local loc = where()
          fail_at(loc, "param." .. kind .. ": declare parameters at the top level of the pipeline, not while it runs")
        end
        return f(...)
      end
    end,
  })

  -- pipeline{...}: once, while the file loads.
  local function declare_pipeline(opts)
    local loc = where()
    if not def.loading then
      fail_at(loc, "pipeline: declare the pipeline at the top level of the file, not while it runs")
    end
    if def.pipeline then
      fail_at(loc, ("pipeline: already declared at %s:%d (declare it once)"):format(def.pipeline.file, def.pipeline.line))
    end
    def.pipeline = pipeline_options(opts, loc.file, loc.line)
  end

  local api = {
    task = task_global,
    param = param_global,
    pipeline = declare_pipeline,
    print = pipeline_print,
  }
  local env = setmetatable({}, {
    __index = function(_, k)
      local v = api[k]
      if v ~= nil then return v end
      return _G[k]
    end,
  })
  def.env = env

  local fh, oerr = io.open(path, "rb")
  if not fh then
    error({ input_error = ("slipway: cannot read the pipeline: %s"):format(oerr) }, 0)
  end
  local text = fh:read("a")
  fh:close()
  if text:sub(1, 1) == "#" then text = "--" .. text end   -- a #! line
  -- Modules next to the pipeline file can be required by name.
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "." then
    package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  end
  local serr
  chunk, serr = load(text, source, "t", env)
  if not chunk then
    if serr:sub(1, #path + 1) ~= path .. ":" then      -- Lua shortened a long path
      serr = serr:gsub("^%.%.%.[^:]*:", path .. ":", 1)
    end
    error({ input_error = serr }, 0)
  end
  local restore = guard.install(LOAD_HINT)
  local ok, err = xpcall(chunk, function(e) return at_user_line(source, e) end)
  restore()
  def.loading = false
  if not ok then error(err, 0) end
  if not def.pipeline then
    def.pipeline = {}
    for k, v in pairs(M.DEFAULT_PIPELINE) do def.pipeline[k] = v end
  end
  return def
end

return M
