-- slipway.pipeline.graph: the task graph of a loaded pipeline: checking it
-- (unknown needs, cycles, `when` parameters), its order, what a run with
-- given parameters and --only/--skip would do, and diagrams of it.
-- Pure functions of the definition: nothing here runs a task.
local M = {}

local function input_error(t, msg)
  error({ input_error = ("%s:%d: %s"):format(t.file, t.line, msg) }, 0)
end

local suggest = require("slipway.words").did_you_mean

local function task_names(def)
  local names = {}
  for i, t in ipairs(def.tasks) do names[i] = t.name end
  return names
end
M.task_names = task_names

-- `when = NAME` takes the name of a param.bool: a string or a list
-- parameter would make "is it set?" a guess; function(p) says it exactly.
local function check_when(def, t)
  local p = def.params.by_name[t.when]
  if p == nil then
    local pnames = {}
    for i, q in ipairs(def.params.list) do pnames[i] = q.name end
    input_error(t, ("task '%s': when = '%s' is not a parameter%s; parameters: %s")
      :format(t.name, t.when, suggest(t.when, pnames),
        #pnames > 0 and table.concat(pnames, ", ") or "(none declared)"))
  elseif p.kind ~= "bool" then
    input_error(t, ("task '%s': when = '%s' names a param.%s (%s:%d); when takes the name of a param.bool, "
      .. "or a function(p) for any other condition"):format(t.name, t.when, p.kind, p.file, p.line))
  end
end

-- check(def): raises {input_error} for an unknown task in needs, a `when`
-- naming no param.bool, or a dependency cycle (naming the cycle).
function M.check(def)
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      local need = def.by_name[n]
      if need and need.finally then
        input_error(t, ("task '%s' needs '%s', a finally task (those run after all the others)"):format(t.name, n))
      end
      if not need then
        local names = task_names(def)
        input_error(t, ("task '%s' needs '%s', which is not a task%s; tasks: %s")
          :format(t.name, n, suggest(n, names), table.concat(names, ", ")))
      end
      if n == t.name then
        input_error(t, ("dependency cycle: %s -> %s (a task cannot need itself)"):format(n, n))
      end
    end
    if type(t.when) == "string" then check_when(def, t) end
  end
  -- Depth-first search; a grey node met again closes a cycle. (Colours by
  -- declaration index: lists are cheaper than tables keyed by name.)
  local colour, stack, by_name = {}, {}, def.by_name
  local function visit(t)
    colour[t.index] = "grey"
    stack[#stack + 1] = t.name
    local needs = t.needs
    for j = 1, #needs do
      local n = needs[j]
      local need = by_name[n]
      local c = colour[need.index]
      if c == "grey" then
        local cycle, start = {}, nil
        for i, s in ipairs(stack) do
          if s == n then start = i end
          if start then cycle[#cycle + 1] = s end
        end
        cycle[#cycle + 1] = n
        -- Report at the declaration of the cycle's first task in the file.
        local first = def.by_name[n]
        for _, s in ipairs(cycle) do
          if def.by_name[s].index < first.index then first = def.by_name[s] end
        end
        input_error(first, ("dependency cycle: %s (each task needs the next)")
          :format(table.concat(cycle, " -> ")))
      elseif c == nil then
        visit(need)
      end
    end
    stack[#stack] = nil
    colour[t.index] = "black"
  end
  local tasks = def.tasks
  for i = 1, #tasks do
    if colour[i] == nil then visit(tasks[i]) end
  end
end

-- order(def) -> tasks in an order where needs come first; ties keep the
-- declaration order; finally tasks (no needs, needed by none) last, as
-- they run.
function M.order(def)
  -- by declaration index: lists are cheaper than tables keyed by name
  local tasks, by_name = def.tasks, def.by_name
  local indeg, dependants = {}, {}
  for i = 1, #tasks do
    local t = tasks[i]
    local needs = t.needs
    indeg[i] = #needs
    for j = 1, #needs do
      local k = by_name[needs[j]].index
      local deps = dependants[k]
      if deps then deps[#deps + 1] = t else dependants[k] = { t } end
    end
  end
  -- A FIFO ready list seeded in declaration order.
  local ready, out, finally = {}, {}, {}
  for i = 1, #tasks do
    if tasks[i].finally then finally[#finally + 1] = tasks[i]
    elseif indeg[i] == 0 then ready[#ready + 1] = tasks[i] end
  end
  local head = 1
  while head <= #ready do
    local t = ready[head]
    head = head + 1
    out[#out + 1] = t
    local deps = dependants[t.index]
    if deps then
      for j = 1, #deps do
        local d = deps[j]
        local n = indeg[d.index] - 1
        indeg[d.index] = n
        if n == 0 then ready[#ready + 1] = d end
      end
    end
  end
  for i = 1, #finally do out[#out + 1] = finally[i] end
  return out
end

-- Label of a matrix item: strings (paths shortened to their last part),
-- numbers, or tables with a name/id field, else key=value pairs.
local function item_label(item, i)
  local ty = type(item)
  if ty == "string" then
    local base = item:match("([^/]+)/*$") or item
    return base ~= "" and base or tostring(i)
  elseif ty == "number" or ty == "boolean" then
    return tostring(item)
  elseif ty == "table" then
    if type(item.name) == "string" or type(item.name) == "number" then return tostring(item.name) end
    if type(item.id) == "string" or type(item.id) == "number" then return tostring(item.id) end
    local keys = {}
    for k, v in pairs(item) do
      if type(k) == "string" and (type(v) == "string" or type(v) == "number" or type(v) == "boolean") then
        keys[#keys + 1] = k
      end
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(item[k]) end
    if #parts > 0 then return table.concat(parts, ",") end
  end
  return tostring(i)
end
M.item_label = item_label

-- The labels of a matrix's items, in order (sub-task t[label] each); a
-- label met before gets "#<position>" so that every one is unique.
function M.item_labels(items)
  local labels, seen = {}, {}
  for i, item in ipairs(items) do
    local label = item_label(item, i)
    if seen[label] then label = label .. "#" .. i end
    seen[label] = true
    labels[i] = label
  end
  return labels
end

-- The item labels of matrix task t when its matrix is a list, else nil (a
-- matrix function is called in the run, after the needs).
function M.list_labels(t)
  return type(t.matrix) == "table" and M.item_labels(t.matrix) or nil
end

local SHOWN_LABELS = 8      -- plan and diagrams show this many, then "and N more"

-- How plan and diagrams describe matrix task t: "matrix of 3: api, web,
-- worker", or "matrix (at run time)" for a matrix function.
function M.matrix_text(t)
  local labels = M.list_labels(t)
  if labels == nil then return "matrix (at run time)" end
  local n = #labels
  if n == 0 then return "matrix of 0" end
  local shown = table.concat(labels, ", ", 1, math.min(n, SHOWN_LABELS))
  if n > SHOWN_LABELS then shown = ("%s and %d more"):format(shown, n - SHOWN_LABELS) end
  return ("matrix of %d: %s"):format(n, shown)
end

-- The item labels of matrix task t, or nil when they are known only at run
-- time: its matrix function is called here (outside a task, so anything
-- that waits for I/O raises) and if that fails, the run checks the labels.
local function matrix_labels(t, values)
  local items = t.matrix
  if type(items) == "function" then
    local ok, res = pcall(items, values)
    if not ok or type(res) ~= "table" then return nil end
    items = res
  end
  return M.item_labels(items)
end

-- "a[x]" -> "a", "x"
local function split_item(name)
  return name:match("^(.-)%[(.*)%]$")
end
M.split_item = split_item

-- The message for a selector naming an item the matrix does not have.
function M.unknown_item(flag, name, labels)
  local base = split_item(name)
  local valid = {}
  for i, l in ipairs(labels) do valid[i] = base .. "[" .. l .. "]" end
  return ("%s: unknown matrix item '%s'%s; items of %s: %s"):format(flag, name,
    suggest(name, valid), base, #labels > 0 and table.concat(labels, ", ") or "(none)")
end

-- Check the names given to --only/--skip (each may repeat): a task, or an
-- item of a matrix task, `build[api]`. Raises {input_error} naming the flag
-- and the valid names. -> set of task names, { [task] = set of labels }
function M.check_names(def, flag, list, values)
  local set, items = {}, {}
  for _, name in ipairs(list or {}) do
    local base, label = split_item(name)
    local t = def.by_name[base or name]
    local msg
    if t == nil then
      local names = task_names(def)
      msg = ("%s: unknown task '%s'%s; tasks: %s"):format(flag, name, suggest(base or name, names),
        table.concat(names, ", "))
    elseif base and t.matrix == nil then
      msg = ("%s: unknown task '%s' (%s is not a matrix task); tasks: %s"):format(flag, name, base,
        table.concat(task_names(def), ", "))
    elseif base then
      local labels = matrix_labels(t, values or {})
      local found = labels == nil
      for _, l in ipairs(labels or {}) do
        if l == label then found = true end
      end
      if not found then msg = M.unknown_item(flag, name, labels) end
    end
    if msg then error({ input_error = ("%s: %s"):format(def.file, msg) }, 0) end
    if base then
      items[base] = items[base] or {}
      items[base][label] = true
    else
      set[name] = true
    end
  end
  return set, items
end

local RUN = { run = true }

-- plan(def, values, opts) -> { order = {tasks}, decision = { [name] =
--   { run = true } | { run = false, reason = "..." } } }
-- A matrix task of which --only or --skip named items runs with
-- only_items and/or skip_items (sets of labels) in its decision, and
-- only_flag (the --only text, for reasons).
-- opts.only / opts.skip: lists of task names or items ("build[api]").
-- `when` functions are called here with the parameter values (they must
-- be pure).
function M.plan(def, values, opts)
  opts = opts or {}
  local only, only_items
  if opts.only and #opts.only > 0 then only, only_items = M.check_names(def, "--only", opts.only, values) end
  local skip, skip_items = M.check_names(def, "--skip", opts.skip, values)
  local selected
  if only then
    selected = {}
    local function mark(name)
      if selected[name] then return end
      selected[name] = true
      for _, n in ipairs(def.by_name[name].needs) do mark(n) end
    end
    for name in pairs(only) do mark(name) end
    for name in pairs(only_items) do
      for _, n in ipairs(def.by_name[name].needs) do mark(n) end
    end
  end
  local only_text = only and ("--only " .. table.concat(opts.only, ",")) or nil
  local decision = {}
  local order = M.order(def)
  for _, t in ipairs(order) do
    local d
    -- (finally tasks belong to the run as a whole: --only leaves them in)
    if selected and not selected[t.name] and not only_items[t.name] and not t.finally then
      d = { run = false, reason = "not selected (" .. only_text .. ")" }
    elseif skip[t.name] then
      d = { run = false, reason = "skipped by --skip" }
    elseif t.when == nil then
      d = nil                  -- (most tasks: no type() call)
    elseif type(t.when) == "string" then
      if not values[t.when] then d = { run = false, reason = ("when: parameter %s is false"):format(t.when) } end
    elseif type(t.when) == "function" then
      local ok, res = pcall(t.when, values)
      if not ok then
        local msg = type(res) == "string" and res or tostring(res)
        input_error(t, ("task '%s': its when function failed: %s"):format(t.name, msg))
      end
      if not res then d = { run = false, reason = "when: the condition is false" } end
    end
    if d == nil then
      -- a task also selected whole (or needed by one) runs all its items
      local oi = selected and not selected[t.name] and only_items[t.name] or nil
      local si = skip_items[t.name]
      d = (oi or si) and { run = true, only_items = oi, skip_items = si, only_flag = oi and only_text } or RUN
    end
    decision[t.name] = d
  end
  return { order = order, decision = decision }
end

-- Diagrams. Node ids are t1, t2... so any task name is safe.
local function ids(def)
  local id = {}
  for i, t in ipairs(def.tasks) do id[t.name] = "t" .. i end
  return id
end

-- "build", "build [matrix of 2: api, web]", "build [matrix]" (a function).
local function diagram_label(t)
  if t.matrix == nil then return t.name end
  return ("%s [%s]"):format(t.name, type(t.matrix) == "table" and M.matrix_text(t) or "matrix")
end

-- An edge from each task to each task that needs it: fmt:format(from, to).
local function add_edges(out, def, id, fmt)
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      out[#out + 1] = fmt:format(id[n], id[t.name])
    end
  end
end

function M.mermaid(def, plan)
  local id = ids(def)
  local out = { "flowchart LR" }
  for _, t in ipairs(def.tasks) do
    local label = diagram_label(t):gsub('"', "#quot;")
    out[#out + 1] = ('  %s["%s"]'):format(id[t.name], label)
  end
  add_edges(out, def, id, "  %s --> %s")
  if plan then
    local skipped = {}
    for _, t in ipairs(def.tasks) do
      if not plan.decision[t.name].run then skipped[#skipped + 1] = id[t.name] end
    end
    if #skipped > 0 then
      out[#out + 1] = "  classDef skipped stroke-dasharray: 5 5,opacity:0.6"
      out[#out + 1] = "  class " .. table.concat(skipped, ",") .. " skipped"
    end
  end
  return table.concat(out, "\n") .. "\n"
end

function M.dot(def, plan)
  local id = ids(def)
  local out = { "digraph pipeline {", "  rankdir=LR;", "  node [shape=box, style=rounded];" }
  for _, t in ipairs(def.tasks) do
    local label = diagram_label(t)
    local attrs = ('label="%s"'):format(label:gsub('\\', '\\\\'):gsub('"', '\\"'))
    if plan and not plan.decision[t.name].run then attrs = attrs .. ', style="rounded,dashed"' end
    out[#out + 1] = ("  %s [%s];"):format(id[t.name], attrs)
  end
  add_edges(out, def, id, "  %s -> %s;")
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

return M
