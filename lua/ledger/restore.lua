-- slipway.ledger.restore: the state a release left what it changed in, and
-- bringing it back. A recorded change names its `restorer`, a module whose
-- restore(data) makes the target what data describes (and whose
-- restore_diff(data) says what that would change); this module only reads
-- records, so the pipeline core names no integration.
--
--   restore.last_verified(releases, skip_id) -> release | nil
--   restore.states(releases, target_id) -> states, unknown
--     states: { { kind, target, restorer, data, release = id }... }, one per
--     target the chosen release or a later one touched, as of the chosen
--     release; unknown: { "kind target"... } touched later with no state
--     at or before it (left as they are).
--   restore.state_before(releases, kind, target, run_id) -> state | nil
--     for a failed run: the last verified state of a target when the
--     release that touched it before the run was not verified; nil when
--     the run's own undo already brought it back to a verified state.
--   restore.apply(state, opts) -> the restorer's result
--   restore.diff(state, opts) -> the restorer's rows
local M = {}

local function key_of(c) return c.kind .. " " .. c.target end

-- Did this release leave its changes applied? (A run that rolled back did
-- not; a rollback release that succeeded did.)
local function kept(rec) return rec.status == "success" end

-- A release that counts as known-good.
local function good(rec) return rec.verified == true and kept(rec) end

-- The restorable changes a release left applied, by key.
local function applied_changes(rec)
  local out = {}
  for _, c in ipairs(rec.changes or {}) do
    if type(c) == "table" and c.restorer and c.status == "applied" and type(c.data) == "table" then
      out[key_of(c)] = c
    end
  end
  return out
end

local function state_of(c, rec)
  return { kind = c.kind, target = c.target, restorer = c.restorer, data = c.data, release = rec.id }
end

-- releases: newest first (slipway.ledger.read).
function M.last_verified(releases, skip_id)
  for _, rec in ipairs(releases) do
    if rec.id ~= skip_id and good(rec) and next(applied_changes(rec)) then return rec end
  end
  return nil
end

function M.states(releases, target_id)
  local at
  for i, rec in ipairs(releases) do
    if rec.id == target_id then at = i end
  end
  if not at then return {}, {} end
  -- what the chosen release and the later ones touched
  local touched, order = {}, {}
  for i = 1, at do
    for _, c in ipairs(releases[i].changes or {}) do
      if type(c) == "table" and c.restorer then
        local k = key_of(c)
        if not touched[k] then touched[k], order[#order + 1] = true, k end
      end
    end
  end
  -- each one as of the chosen release: its own change, else the newest
  -- good release before it that left one
  local found = {}
  for i = at, #releases do
    local rec = releases[i]
    if i == at or good(rec) then
      for k, c in pairs(applied_changes(rec)) do
        if touched[k] and not found[k] then found[k] = state_of(c, rec) end
      end
    end
  end
  table.sort(order)
  local states, unknown = {}, {}
  for _, k in ipairs(order) do
    if found[k] then states[#states + 1] = found[k] else unknown[#unknown + 1] = k end
  end
  return states, unknown
end

function M.state_before(releases, kind, target, run_id)
  local k = kind .. " " .. target
  local before
  for _, rec in ipairs(releases) do
    if rec.id ~= run_id then
      for _, c in ipairs(rec.changes or {}) do
        if type(c) == "table" and c.kind == kind and c.target == target then before = rec end
      end
      if before then break end
    end
  end
  if not before or good(before) then return nil end
  for _, rec in ipairs(releases) do
    if rec.id ~= run_id and good(rec) then
      local c = applied_changes(rec)[k]
      if c then return state_of(c, rec) end
    end
  end
  return nil
end

local function restorer(state)
  local ok, mod = pcall(require, state.restorer)
  if not ok or type(mod) ~= "table" or type(mod.restore) ~= "function" then
    error(("%s %s: its restorer %s cannot be loaded%s"):format(state.kind, state.target, state.restorer,
      ok and "" or (": " .. tostring(mod):match("^[^\n]*"))), 0)
  end
  return mod
end

function M.apply(state, opts)
  return restorer(state).restore(state.data, opts)
end

function M.diff(state, opts)
  local mod = restorer(state)
  if type(mod.restore_diff) ~= "function" then return nil end
  return mod.restore_diff(state.data, opts)
end

return M
