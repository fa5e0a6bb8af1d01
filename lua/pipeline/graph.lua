-- slipway.pipeline.graph: the task graph of a loaded pipeline: checking it
-- (unknown needs, cycles, `when` parameters), its order, what a run with
-- given parameters and --only/--skip would do, and diagrams of it.
-- Pure functions of the definition: nothing here runs a task.
local M = {}

local function input_error(t, msg)
  error({ input_error = ("%s:%d: %s"):format(t.file, t.line, msg) }, 0)
end

-- Edit distance with adjacent transpositions (optimal string alignment),
-- for "did you mean" suggestions.
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- The closest candidate: a small edit away, or one that starts with name.
local function suggest(name, candidates)
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = distance(name, c)
    if #name >= 3 and c:sub(1, #name) == name then d = math.min(d, 1) end
    if d <= math.max(1, #name // 3) and d < #name and (bestd == nil or d < bestd) then best, bestd = c, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end
M.suggest = suggest

local function task_names(def)
  local names = {}
  for i, t in ipairs(def.tasks) do names[i] = t.name end
  return names
end
M.task_names = task_names

-- check(def): raises {input_error} for an unknown task in needs, a `when`
-- naming no parameter, or a dependency cycle (naming the cycle).
function M.check(def)
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      if not def.by_name[n] then
        local names = task_names(def)
        input_error(t, ("task '%s' needs '%s', which is not a task%s; tasks: %s")
          :format(t.name, n, suggest(n, names), table.concat(names, ", ")))
      end
      if n == t.name then
        input_error(t, ("dependency cycle: %s -> %s (a task cannot need itself)"):format(n, n))
      end
    end
    if t.when ~= nil and type(t.when) == "string" and not def.params.by_name[t.when] then
      local pnames = {}
      for i, p in ipairs(def.params.list) do pnames[i] = p.name end
      input_error(t, ("task '%s': when = '%s' is not a parameter%s; parameters: %s")
        :format(t.name, t.when, suggest(t.when, pnames),
          #pnames > 0 and table.concat(pnames, ", ") or "(none declared)"))
    end
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
-- declaration order.
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
  local ready, out = {}, {}
  for i = 1, #tasks do
    if indeg[i] == 0 then ready[#ready + 1] = tasks[i] end
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
  local base, label = split_item(name)
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
    if selected and not selected[t.name] and not only_items[t.name] then
      d = { run = false, reason = "not selected (" .. only_text .. ")" }
    elseif skip[t.name] then
      d = { run = false, reason = "skipped by --skip" }
    elseif t.when == nil then
      d = nil                  -- (most tasks: no type() call)
    elseif type(t.when) == "string" then
      local v = values[t.when]
      if v == false or v == nil or v == "" or (type(v) == "table" and #v == 0) then
        d = { run = false, reason = ("when: parameter %s is %s"):format(t.when, v == nil and "unset" or
          (type(v) == "table" and "empty" or tostring(v == "" and "empty" or v))) }
      end
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
    local label = t.name
    if t.matrix then label = label .. " [matrix]" end
    label = label:gsub('"', "#quot;")
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
    local label = t.name .. (t.matrix and " [matrix]" or "")
    local attrs = ('label="%s"'):format(label:gsub('\\', '\\\\'):gsub('"', '\\"'))
    if plan and not plan.decision[t.name].run then attrs = attrs .. ', style="rounded,dashed"' end
    out[#out + 1] = ("  %s [%s];"):format(id[t.name], attrs)
  end
  add_edges(out, def, id, "  %s -> %s;")
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

return M
