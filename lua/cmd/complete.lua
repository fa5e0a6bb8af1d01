-- `slipway complete [--bash] -- WORD...` (hidden; the shell completion
-- scripts in completion/ call it): the candidates for the last WORD of a
-- command line (the words after `slipway`; the last may be empty), one per
-- line. Commands and their flags come from the command list and each
-- command's help text; task names, matrix items, parameter names and
-- choices from the pipeline (loaded as `plan` loads it: declarations only).
-- A line ":files" asks the shell to complete file names instead.
--
-- --bash: bash splits a word at '=' and ':' (COMP_WORDBREAKS); the
-- candidates are then given from after the last of those in the word.
local M = {}

M.help = [[
usage: slipway complete [--bash] -- WORD...

The shell completion scripts' helper: print the completions of the last
WORD of `slipway WORD...`, one per line.
]]

local PIPELINE_COMMANDS = { run = true, plan = true, graph = true, history = true, ci = true, rollback = true,
                            lock = true }
local SUBCOMMANDS = {
  sandbox = { "up", "down", "status" },
  compose = { "config" },
  ci = { "github" },
  lock = { "status", "acquire", "release" },
}
local FLAG_VALUES = {
  ["--reporter"] = { "terminal", "plain", "github", "json" },
  ["--format"] = { "mermaid", "dot" },
  ["--ledger"] = { "local", "swarm" },
}
local FILE_FLAGS = { ["-c"] = true, ["--compose-file"] = true, ["--env-file"] = true, ["--output"] = true,
                     ["-o"] = true, ["--dir"] = true }

-- The flags a command's help text names: "--env", "-p", ...
local function flags_of(help)
  local set, list = { ["--help"] = true }, { "--help" }
  for flag in help:gmatch("%f[%w%-]%-%-?[%a][%w-]*") do
    if not set[flag] and flag ~= "-" then
      set[flag] = true
      list[#list + 1] = flag
    end
  end
  table.sort(list)
  return list
end

local function command_module(name)
  local mod = ({ init = "scaffold" })[name] or name
  local ok, m = pcall(require, "slipway.cmd." .. mod)
  return ok and type(m) == "table" and m or nil
end

-- Flags whose next word is their value (not the pipeline file).
local TAKES_VALUE = {}
for f in ("--env -p --param --only --skip -j --jobs --reporter --format -o --output --branches --runs-on -n --stack "
    .. "--to --ledger --lock-wait --reason")
    :gmatch("%S+") do
  TAKES_VALUE[f] = true
end

-- The pipeline the words name (the first argument that is not a flag or a
-- flag's value, after the subcommand of ci and lock), loaded; or nil.
local function load_pipeline(words)
  local file = "deploy.lua"
  local start = words[1]:match("%.lua$") and 1 or 2
  if SUBCOMMANDS[words[1]] and PIPELINE_COMMANDS[words[1]] then start = 3 end
  local i = start
  while i < #words do
    local w = words[i]
    if TAKES_VALUE[w] then i = i + 1
    elseif w:sub(1, 1) ~= "-" then file = w break end
    i = i + 1
  end
  local fs = require("slipway.fs")
  if not fs.exists(file) then return nil end
  local ok, def = pcall(function()
    require("slipway.prelude")
    -- A pipeline's top-level print goes to stderr, which the completion
    -- scripts discard.
    return require("slipway.pipeline.prepare").load({ file = file, inspect = true })
  end)
  return ok and def or nil
end

-- Task names and, for list matrices, their items: build[api].
local function task_names(def)
  local graph = require("slipway.pipeline.graph")
  local list = {}
  for _, t in ipairs(def.tasks) do
    list[#list + 1] = t.name
    for _, label in ipairs(graph.list_labels(t) or {}) do list[#list + 1] = t.name .. "[" .. label .. "]" end
  end
  return list
end

local function choices_of(p)
  if p.kind == "choice" then return p.choices_text end
  if p.kind == "bool" then return { "true", "false" } end
  return {}
end

-- Candidates for word cur given the words before it.
local function candidates(words)
  local cur = words[#words] or ""
  local prev = words[#words - 1]
  local first = words[1]
  if #words <= 1 then
    local list = {}
    for _, name in ipairs(require("slipway.cli").COMMANDS) do list[#list + 1] = name end
    if cur:sub(1, 1) == "-" then
      local run = command_module("run")
      for _, f in ipairs(flags_of(run.help)) do list[#list + 1] = f end
      list[#list + 1] = "--help"
      list[#list + 1] = "--version"
      list[#list + 1] = "-e"
    else
      list[#list + 1] = ":files"
    end
    return list
  end
  local command = first
  if first:sub(1, 1) == "-" or first:match("%.lua$") then command = "run" end
  local cmd = command_module(command)
  if cmd == nil then return { ":files" } end
  if command == "help" then return require("slipway.cli").COMMANDS end

  if prev and FILE_FLAGS[prev] then return { ":files" } end
  if prev and FLAG_VALUES[prev] then return FLAG_VALUES[prev] end
  local sub = SUBCOMMANDS[command]
  if sub and #words == 2 and cur:sub(1, 1) ~= "-" then return sub end

  if PIPELINE_COMMANDS[command] and prev and (prev == "--env" or prev == "-p" or prev == "--param"
      or prev == "--only" or prev == "--skip") then
    local def = load_pipeline(words)
    if not def then return {} end
    if prev == "--env" then
      local p = def.params.by_name.environment
      return p and choices_of(p) or {}
    elseif prev == "--only" or prev == "--skip" then
      local done = cur:match("^(.*,)") or ""
      local list = {}
      for _, name in ipairs(task_names(def)) do list[#list + 1] = done .. name end
      return list
    else
      local name = cur:match("^([^=]*)=")
      if name then
        local p = def.params.by_name[name]
        local list = {}
        for _, c in ipairs(p and choices_of(p) or {}) do list[#list + 1] = name .. "=" .. c end
        return list
      end
      local list = {}
      for _, p in ipairs(def.params.list) do list[#list + 1] = p.name .. "=" end
      return list
    end
  end
  if cur:sub(1, 1) == "-" then return flags_of(cmd.help or "") end
  if PIPELINE_COMMANDS[command] or command == "init" then return { ":files" } end
  return {}
end

function M.main(args)
  local bash = false
  local i = 1
  if args[i] == "--bash" then bash, i = true, i + 1 end
  if args[i] ~= "--" then
    io.stderr:write("slipway complete: usage: slipway complete [--bash] -- WORD...\n")
    return 2
  end
  local words = { table.unpack(args, i + 1) }
  if #words == 0 then words[1] = "" end
  local cur = words[#words]
  local out = {}
  for _, c in ipairs(candidates(words)) do
    if c == ":files" then
      out[#out + 1] = c
    elseif c:sub(1, #cur) == cur then
      if bash then
        local cut = cur:match("^.*()[=:]")
        if cut then c = c:sub(cut + 1) end
      end
      out[#out + 1] = c
    end
  end
  if #out > 0 then io.stdout:write(table.concat(out, "\n"), "\n") end
  return 0
end

return M
