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
  local names = task_names(def)
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      if not def.by_name[n] then
        input_error(t, ("task '%s' needs '%s', which is not a task%s; tasks: %s")
          :format(t.name, n, suggest(n, names), table.concat(names, ", ")))
      end
      if n == t.name then
        input_error(t, ("dependency cycle: %s -> %s (a task cannot need itself)"):format(n, n))
      end
    end
    if type(t.when) == "string" and not def.params.by_name[t.when] then
      local pnames = {}
      for i, p in ipairs(def.params.list) do pnames[i] = p.name end
      input_error(t, ("task '%s': when = '%s' is not a parameter%s; parameters: %s")
        :format(t.name, t.when, suggest(t.when, pnames),
          #pnames > 0 and table.concat(pnames, ", ") or "(none declared)"))
    end
  end
  -- Depth-first search; a grey node met again closes a cycle.
  local colour, stack = {}, {}
  local function visit(t)
    colour[t.name] = "grey"
    stack[#stack + 1] = t.name
    for _, n in ipairs(t.needs) do
      local c = colour[n]
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
        visit(def.by_name[n])
      end
    end
    stack[#stack] = nil
    colour[t.name] = "black"
  end
  for _, t in ipairs(def.tasks) do
    if colour[t.name] == nil then visit(t) end
  end
end

-- order(def) -> tasks in an order where needs come first; ties keep the
-- declaration order.
function M.order(def)
  local indeg, dependants = {}, {}
  for _, t in ipairs(def.tasks) do
    indeg[t.name] = #t.needs
    for _, n in ipairs(t.needs) do
      dependants[n] = dependants[n] or {}
      table.insert(dependants[n], t)
    end
  end
  -- A simple ready list kept sorted by declaration index: graphs are small
  -- enough (thousands) that insertion sort is fine.
  local ready, out = {}, {}
  for _, t in ipairs(def.tasks) do
    if indeg[t.name] == 0 then ready[#ready + 1] = t end
  end
  local head = 1
  while head <= #ready do
    local t = ready[head]
    head = head + 1
    out[#out + 1] = t
    for _, d in ipairs(dependants[t.name] or {}) do
      indeg[d.name] = indeg[d.name] - 1
      if indeg[d.name] == 0 then ready[#ready + 1] = d end
    end
  end
  return out
end

-- Split "a,b" lists given to --only/--skip (each may repeat) and check the
-- names. Raises {input_error} naming the flag and the valid tasks.
function M.check_names(def, flag, list)
  local set = {}
  local names = task_names(def)
  for _, name in ipairs(list or {}) do
    if not def.by_name[name] then
      error({ input_error = ("%s: %s: unknown task '%s'%s; tasks: %s")
        :format(def.file, flag, name, suggest(name, names), table.concat(names, ", ")) }, 0)
    end
    set[name] = true
  end
  return set
end

-- plan(def, values, opts) -> { order = {tasks}, decision = { [name] =
--   { run = true } | { run = false, reason = "..." } } }
-- opts.only / opts.skip: lists of task names. `when` functions are called
-- here with the parameter values (they must be pure).
function M.plan(def, values, opts)
  opts = opts or {}
  local only = opts.only and #opts.only > 0 and M.check_names(def, "--only", opts.only) or nil
  local skip = M.check_names(def, "--skip", opts.skip)
  local selected
  if only then
    selected = {}
    local function mark(name)
      if selected[name] then return end
      selected[name] = true
      for _, n in ipairs(def.by_name[name].needs) do mark(n) end
    end
    for name in pairs(only) do mark(name) end
  end
  local decision = {}
  local order = M.order(def)
  for _, t in ipairs(order) do
    local d
    if selected and not selected[t.name] then
      d = { run = false, reason = "not selected (--only " .. table.concat(opts.only, ",") .. ")" }
    elseif skip[t.name] then
      d = { run = false, reason = "skipped by --skip" }
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
    decision[t.name] = d or { run = true }
  end
  return { order = order, decision = decision }
end

-- Diagrams. Node ids are t1, t2... so any task name is safe.
local function ids(def)
  local id = {}
  for i, t in ipairs(def.tasks) do id[t.name] = "t" .. i end
  return id
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
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      out[#out + 1] = ("  %s --> %s"):format(id[n], id[t.name])
    end
  end
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
  for _, t in ipairs(def.tasks) do
    for _, n in ipairs(t.needs) do
      out[#out + 1] = ("  %s -> %s;"):format(id[n], id[t.name])
    end
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

return M
