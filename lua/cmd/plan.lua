-- slipway plan: what a run would do, without doing anything. The pipeline
-- is evaluated (declarations only: side effects raise), parameters are
-- resolved and checked, and the graph is printed in run order with what
-- would run and what would be skipped, and why.
local prepare = require("slipway.pipeline.prepare")
local graph = require("slipway.pipeline.graph")
local words = require("slipway.words")
local params = require("slipway.pipeline.params")

local M = {}

M.help = [[
usage: slipway plan [FILE] [--env E] [-p name=value]... [--only T,..] [--skip T,..] [--json]
                    [--force | --force=T,..] [--no-cache]

--only and --skip take task names or matrix items (build[api]).

Evaluate the pipeline in FILE (default deploy.lua) and print its tasks in run
order: what each needs, whether it would run or be skipped (and why), with
the resolved parameters. Nothing is run: top-level side effects in the file
are errors. A cached task (cache = true) is shown "up to date" when a run
now would not run it (its inputs are hashed, the ledger is read), else with
why not: no previous successful run, which input changed, a parameter or
env() value it reads changed, its code changed, --force. Exit 0, or 2 for
bad input (the same checks as `run`).
]]

local FLAGS = { "--env", "-p", "--param", "--only", "--skip", "--json", "--no-color", "--force", "--no-cache" }

local function show(v)
  return require("slipway.pipeline.params").show(v)
end

local sorted = require("slipway.events").sorted_keys

-- A set of item labels as text: "api, web".
local function labels(set)
  return table.concat(sorted(set), ", ")
end

-- The cache status of each cached task that would run (and of each item
-- of a literal matrix): { [name] = { up_to_date, why } }, or nil. Hashes
-- inputs and reads the ledger: in a task.
local function cache_states(def, values, plan, force)
  local c
  local states = {}
  for _, t in ipairs(plan.order) do
    if t.cache and plan.decision[t.name].run then
      c = c or require("slipway.pipeline.cache").new(def, values,
        require("slipway.cmd.run").ledger_store(def), force)
      if t.matrix == nil then
        local fresh, why = c:status(t)
        states[t.name] = { fresh, why }
      elseif type(t.matrix) == "table" then
        local item_labels = graph.item_labels(t.matrix)
        local fresh, whys = 0, {}
        for i, item in ipairs(t.matrix) do
          local ok, why = c:status(t, item, item_labels[i])
          if ok then fresh = fresh + 1 else whys[#whys + 1] = item_labels[i] .. ": " .. why end
        end
        states[t.name] = { fresh == #t.matrix, table.concat(whys, "; ") }
      else
        states[t.name] = { false, "a matrix function's items are known at run time" }
      end
    end
  end
  return states
end

function M.main(args)
  local opts, def, values, plan = prepare.from_args("plan", args, FLAGS)
  if not opts then return def end
  local bad = require("slipway.pipeline.cache").check_force(def, opts.force)
  if bad then
    io.stderr:write("slipway plan: ", bad, "\n")
    return 2
  end
  local r = table.pack(require("slipway.task").run(cache_states, def, params.guarded(values, def.params), plan, opts.force))
  if not r[1] then error(r[2], 0) end
  local states = r[2]
  if opts.json then
    local json = require("slipway.json")
    local tasks = {}
    for i, t in ipairs(plan.order) do
      local d = plan.decision[t.name]
      local item_labels = graph.list_labels(t)
      tasks[i] = { name = t.name, needs = json.array(t.needs), run = d.run, reason = d.reason,
                   matrix = t.matrix ~= nil and (type(t.matrix) == "table" and #t.matrix or "at run time") or nil,
                   items = item_labels and json.array(item_labels),
                   timeout_ms = t.timeout_ms, retries = t.retries, file = t.file, line = t.line,
                   description = t.description, rollback = t.rollback ~= nil,
                   only_items = d.only_items and json.array(sorted(d.only_items)) or nil,
                   skip_items = d.skip_items and json.array(sorted(d.skip_items)) or nil,
                   up_to_date = states[t.name] and states[t.name][1] or nil,
                   not_up_to_date = states[t.name] and not states[t.name][1] and states[t.name][2] or nil }
    end
    local shown = require("slipway.secret").mask_deep(values)      -- secret parameters as ***
    io.stdout:write(json.encode({ file = def.file, params = json.object(shown), tasks = json.array(tasks) }), "\n")
    return 0
  end
  local out = {}
  out[#out + 1] = ("pipeline %s: %s"):format(def.file, words.count(#def.tasks, "task"))
  if #def.params.list > 0 then
    out[#out + 1] = "parameters:"
    for _, p in ipairs(def.params.list) do
      local extra = p.kind == "choice" and (" (one of " .. table.concat(p.choices_text, ", ") .. ")") or (" (" .. p.kind .. ")")
      out[#out + 1] = ("  %s = %s%s%s"):format(p.name, show(values[p.name]), extra,
        p.description and ("  -- " .. p.description) or "")
    end
  end
  out[#out + 1] = "tasks, in run order:"
  local nrun, nfresh = 0, 0
  for _, t in ipairs(plan.order) do
    local d = plan.decision[t.name]
    local state = states[t.name]
    local mark = d.run and (state and state[1] and "keep" or "run ") or "skip"
    if d.run and not (state and state[1]) then nrun = nrun + 1 end
    if state and state[1] then nfresh = nfresh + 1 end
    local notes = {}
    if #t.needs > 0 then notes[#notes + 1] = "needs " .. table.concat(t.needs, ", ") end
    if t.matrix then
      notes[#notes + 1] = graph.matrix_text(t)
    end
    if t.timeout_ms then notes[#notes + 1] = "timeout " .. require("slipway.events").format_ms(t.timeout_ms) end
    if t.retries > 0 then notes[#notes + 1] = ("retries %d"):format(t.retries) end
    if t.rollback then notes[#notes + 1] = "has rollback" end
    if t.continue_on_error then notes[#notes + 1] = "continue on error" end
    if t.finally then notes[#notes + 1] = "finally: after all the others, whatever happened" end
    if d.only_items then notes[#notes + 1] = "only items " .. labels(d.only_items) end
    if d.skip_items then notes[#notes + 1] = "skip items " .. labels(d.skip_items) end
    if not d.run then notes[#notes + 1] = d.reason end
    if state then notes[#notes + 1] = state[1] and "up to date" or ("not up to date: " .. state[2]) end
    out[#out + 1] = ("  %s %s%s%s"):format(mark, t.name, #notes > 0 and ("  (" .. table.concat(notes, "; ") .. ")") or "",
      t.description and ("  -- " .. t.description) or "")
  end
  out[#out + 1] = ("%d to run, %d skipped"):format(nrun, #plan.order - nrun - nfresh)
    .. (nfresh > 0 and (", %d up to date"):format(nfresh) or "")
  io.stdout:write(table.concat(out, "\n"), "\n")
  return 0
end

return M
