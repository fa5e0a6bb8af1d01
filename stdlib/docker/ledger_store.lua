-- slipway.docker.ledger_store: the ledger kept in a swarm (`ledger =
-- "swarm"`, `--ledger swarm`): releases and the lock are Docker configs
-- with labels in the swarm that DOCKER_HOST names, so they are replicated
-- by the managers' Raft store and every CI runner that deploys to that
-- swarm sees one history and one lock. It implements the store interface
-- of lua/ledger/init.lua; the command line hands it to the ledger.
--
--   ledger_store.new{ client = c } -> store   (default: DOCKER_HOST's engine)
--
-- A release is a series of revisions, each made of chunks of at most
-- M.CHUNK bytes (a config holds 500 KB on older engines, 1000 KB on newer
-- ones): config "slipway-r-<id>-<rev>-<i>", labelled with the release id,
-- the revision, the chunk and the chunk count. Configs cannot change, so
-- a write creates the chunks of the next revision, then removes the older
-- ones; a reader takes the newest complete revision, so a writer that dies
-- halfway leaves the previous one readable.
--
-- A lock (or a place in its queue) is the config "slipway-c-<name>": the
-- engine refuses a second config of a name, which makes creating it
-- atomic; removing it goes by its ID, which no later config shares; its
-- lease is renewed by updating its labels at its version (a stale version
-- is refused), and measured on the manager's clock (UpdatedAt against the
-- Date of the engine's answers), so runners' clocks do not matter.
--
-- Each release revision is committed to Raft on its own: the swarm keeps
-- no separate event log (append is a no-op).
local client = require("slipway.docker.client")
local base64 = require("slipway.base64")
local json = require("slipway.json")
local task = require("slipway.task")

local M = {}

M.CHUNK = 480000
M.LABEL = "io.slipway.ledger"       -- "release" | "claim"
local L = M.LABEL .. "."            -- the other labels: io.slipway.ledger.<key>

local WHAT = "slipway ledger"

local Store = {}
Store.__index = Store

function M.new(opts)
  opts = opts or {}
  local c = opts.client or client.default()
  return setmetatable({
    kind = "swarm", client = c, where = "the swarm at " .. c.conn.host,
    flush_interval = 1,        -- each revision is a Raft commit (10-200 ms)
    poll_interval = 0.5,       -- how often a run waiting for the lock looks
    revs = {},                 -- release id -> { rev =, ids = { config IDs } } we wrote last
    clock = nil,               -- { engine = seconds, at = task.now() }
  }, Store)
end

---------------------------------------------------------------- time

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                 Nov = 11, Dec = 12 }

-- Seconds since the epoch of a UTC civil date (H. Hinnant's days_from_civil).
local function epoch(y, m, d, hh, mm, ss)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + hh * 3600 + mm * 60 + ss
end

-- "2026-12-05T09:20:04.206593693Z" -> seconds (with the fraction)
function M._rfc3339(s)
  local y, mo, d, h, mi, sec, frac = tostring(s):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)Z$")
  if not y then return nil end
  return epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
    + (frac ~= "" and tonumber("0" .. frac) or 0)
end

-- "Sat, 05 Dec 2026 09:20:04 GMT" (an HTTP Date) -> seconds
function M._http_date(s)
  local d, mon, y, h, mi, sec = tostring(s):match("^%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return epoch(tonumber(y), MONTHS[mon], tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
end

-- Every answer carries the engine's Date: keep the latest as the clock.
local function call(self, method, path, opts)
  local body, res = self.client:call(WHAT, method, path, opts)
  local date = res and res.headers and M._http_date(res.headers.date)
  if date then self.clock = { engine = date, at = task.now() } end
  return body, res
end

-- The manager's clock (one second resolution).
function Store:now()
  if not self.clock then call(self, "GET", "/info") end
  if not self.clock then return os.time() end
  return self.clock.engine + (task.now() - self.clock.at) / 1000
end

-- check() -> true | raises: the engine must be a swarm manager.
function Store:check()
  local info = call(self, "GET", "/info")
  local sw = info and info.Swarm or {}
  if not sw.ControlAvailable then
    client.raise(("%s: %s is not a swarm manager (swarm state: %s); the swarm ledger keeps its records there")
      :format(WHAT, self.client.conn.host, tostring(sw.LocalNodeState or "inactive")))
  end
  return true
end

---------------------------------------------------------------- configs

local function list_configs(self, filters)
  return call(self, "GET", "/configs", { query = { filters = json.encode(filters) } }) or {}
end

local function label_filter(kind, labels)
  local f = { M.LABEL .. "=" .. kind }
  for k, v in pairs(labels or {}) do f[#f + 1] = L .. k .. "=" .. tostring(v) end
  return { label = f }
end

-- -> the new config's ID, or nil when the name is taken
local function create_config(self, name, data, labels)
  local body, res = call(self, "POST", "/configs/create", {
    body = { Name = name, Labels = labels, Data = base64.encode(data) }, subject = name, ok = { [409] = true },
  })
  if res.status == 409 then return nil end
  return body.ID
end

local function delete_config(self, id)
  local _, res = call(self, "DELETE", "/configs/" .. client.url_escape(id), { ok = { [404] = true } })
  return res.status ~= 404
end

---------------------------------------------------------------- releases

-- The newest complete revision of each release among configs:
-- { [id] = { rev (nil when none is complete), text, written_at, top (the
-- highest revision, complete or not), all (every config ID) } }
local function newest_revisions(configs)
  local by = {}                  -- id -> rev -> { n, parts, ids, at }
  for _, c in ipairs(configs) do
    local lb = c.Spec and c.Spec.Labels or {}
    local id, rev, i, n = lb[L .. "id"], tonumber(lb[L .. "rev"]), tonumber(lb[L .. "chunk"]), tonumber(lb[L .. "chunks"])
    if id and rev and i and n then
      by[id] = by[id] or {}
      local r = by[id][rev]
      if not r then
        r = { n = n, parts = {}, count = 0, ids = {}, at = nil }
        by[id][rev] = r
      end
      if r.parts[i] == nil then r.count = r.count + 1 end
      r.parts[i] = c.Spec.Data or ""
      r.ids[#r.ids + 1] = c.ID
      if i == 1 then r.at = M._rfc3339(c.CreatedAt) end
    end
  end
  local out = {}
  for id, revs in pairs(by) do
    local best
    for rev, r in pairs(revs) do
      if r.count == r.n and (best == nil or rev > best) then best = rev end
    end
    local all, top = {}, 0
    for rev, r in pairs(revs) do
      if rev > top then top = rev end
      for _, cid in ipairs(r.ids) do all[#all + 1] = cid end
    end
    out[id] = { rev = best, top = top, all = all }
    if best then
      local r = revs[best]
      local parts = {}
      for i = 1, r.n do parts[i] = base64.decode(r.parts[i]) or "" end
      out[id].text, out[id].written_at = table.concat(parts), r.at
    end
  end
  return out
end

local function release_configs(self, id)
  return list_configs(self, { label = { M.LABEL .. "=release", L .. "id=" .. id } })
end

-- put(id, text, labels) -> true: a new revision, then the older ones go.
function Store:put(id, text, labels)
  local known = self.revs[id]
  local old_ids, rev
  if known then
    rev, old_ids = known.rev + 1, known.ids
  else
    local found = newest_revisions(release_configs(self, id))[id]
    rev, old_ids = 1, {}
    if found then rev, old_ids = found.top + 1, found.all end
  end
  local n = math.max(1, (#text + M.CHUNK - 1) // M.CHUNK)
  local ids = {}
  -- (a revision left incomplete is no reader's; the next write, which
  -- lists what there is, removes it)
  self.revs[id] = nil
  for i = 1, n do
    local lb = { [M.LABEL] = "release", [L .. "id"] = id, [L .. "rev"] = tostring(rev),
                 [L .. "chunk"] = tostring(i), [L .. "chunks"] = tostring(n) }
    for k, v in pairs(labels or {}) do lb[L .. k] = tostring(v) end
    local name = ("slipway-r-%s-%d-%d"):format(id, rev, i)
    ids[i] = create_config(self, name, text:sub((i - 1) * M.CHUNK + 1, i * M.CHUNK), lb)
    if not ids[i] then
      client.raise(("%s: release %s: revision %d was written meanwhile by another process"):format(WHAT, id, rev))
    end
  end
  self.revs[id] = { rev = rev, ids = ids }
  for _, cid in ipairs(old_ids) do delete_config(self, cid) end
  return true
end

-- get(id) -> text, written_at | nil, "not found"
function Store:get(id)
  local found = newest_revisions(release_configs(self, id))[id]
  if not found or not found.rev then return nil, "no such release in " .. self.where end
  return found.text, found.written_at
end

function Store.location(_self, _id)
  return nil
end

-- list(labels) -> { { id, text, written_at } } (one request: the engine
-- lists configs with their data).
function Store:list(labels)
  local out = {}
  for id, r in pairs(newest_revisions(list_configs(self, label_filter("release", labels)))) do
    if r.rev then out[#out + 1] = { id = id, text = r.text, written_at = r.written_at } end
  end
  return out
end

function Store:remove(id)
  for _, c in ipairs(release_configs(self, id)) do delete_config(self, c.ID) end
  self.revs[id] = nil
  return true
end

function Store.append(_self)
  return true
end

---------------------------------------------------------------- claims

local function claim_name(name) return "slipway-c-" .. name end

local function entry_of(c)
  local lb = c.Spec and c.Spec.Labels or {}
  return { name = lb[L .. "claim"], text = base64.decode(c.Spec.Data or "") or "", id = c.ID,
           version = c.Version and c.Version.Index, labels = lb, written_at = M._rfc3339(c.UpdatedAt) }
end

function Store:peek(name)
  local c, res = call(self, "GET", "/configs/" .. client.url_escape(claim_name(name)), { ok = { [404] = true } })
  if res.status == 404 or type(c) ~= "table" then return nil end
  return entry_of(c)
end

function Store:claim(name, text, labels)
  local lb = { [M.LABEL] = "claim", [L .. "claim"] = name, [L .. "renewed"] = "0" }
  for k, v in pairs(labels or {}) do lb[L .. k] = tostring(v) end
  if not create_config(self, claim_name(name), text, lb) then return nil, "exists" end
  local e = self:peek(name)
  if not e then return nil, "exists" end       -- (removed at once by someone who found it expired)
  return e
end

function Store:claims(prefix)
  local out = {}
  for _, c in ipairs(list_configs(self, { name = { claim_name(prefix) }, label = { M.LABEL .. "=claim" } })) do
    local e = entry_of(c)
    if e.name and e.name:sub(1, #prefix) == prefix then out[#out + 1] = e end
  end
  return out
end

function Store:renew(entry)
  local labels = {}
  for k, v in pairs(entry.labels) do labels[k] = v end
  labels[L .. "renewed"] = tostring((tonumber(labels[L .. "renewed"]) or 0) + 1)
  local _, res = call(self, "POST", "/configs/" .. client.url_escape(entry.id) .. "/update", {
    query = { version = entry.version },
    body = { Name = claim_name(entry.name), Labels = labels, Data = base64.encode(entry.text) },
    ok = { [404] = true, [500] = true },      -- gone; "update out of sequence"
  })
  if res.status >= 300 then return nil, "gone" end
  local e = self:peek(entry.name)
  if not e or e.id ~= entry.id then return nil, "gone" end
  return e
end

function Store:drop(entry)
  if delete_config(self, entry.id) then return true end
  return nil, "gone"
end

return M
