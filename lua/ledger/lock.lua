-- slipway.ledger.lock: one lock per pipeline and environment, so that two
-- deploys of one environment never overlap. It lives in the ledger's store
-- (a claim: created only if absent, atomically), carries who holds it and
-- why, and a lease that the holder's heartbeat renews: a holder that died
-- (kill -9, a cancelled CI job) stops renewing, and once the lease has run
-- out the lock is taken over, with a message naming the old holder. A
-- lock taken by `slipway lock acquire` has no lease: it stays until
-- `slipway lock release`.
--
-- Waiting (--lock-wait) is in order: a waiter takes a place in the queue
-- (a claim "<lock>.q<number>", the next free number), renews it while it
-- waits, and only the first live place may take a free lock; a run that
-- does not wait fails at once when the lock is held or others wait for it.
--
--   lock.name(pipeline, environment) -> the claim's name
--   lock.acquire(store, opts) -> held | nil, message
--     opts: pipeline, environment, reason, run_id, lease (seconds; 0: none),
--     wait (seconds, nil: fail at once), poll (seconds),
--     on_wait(text) (what it waits for, each time that changes),
--     on_takeover(info) (the expired holder it replaced)
--   held:renew() -> true | nil, message      held:release() -> true | nil, message
--   lock.status(store, pipeline, environment) -> info | nil
--   lock.describe(info) -> "alice on host-1 (pid 42, run X) since ...: reason"
--   info = { holder = { user, host, pid, run_id, ci_url }, reason, since,
--            lease_s, manual, pipeline, environment, expired, expires_in, entry }
local task = require("slipway.task")
local json = require("slipway.json")
local ledger = require("slipway.ledger")
local events = require("slipway.events")

local M = {}

M.DEFAULT_LEASE = 60

local call = ledger._call

-- "lock-shop.production": readable, and a name a swarm config can have;
-- each character other than letters, digits and "-" is written _XX, so
-- two pipelines or environments never share a name. A long one is named
-- by its hash instead (it has no ".": no readable name is the same).
local function escape(s)
  return (s:gsub("[^%w%-]", function(c) return ("_%02X"):format(c:byte()) end))
end

function M.name(pipeline, environment)
  local name = "lock-" .. escape(pipeline) .. "." .. escape(environment)
  if #name <= 36 then return name end
  return "lock-" .. require("slipway.hash").sha256(pipeline .. "\0" .. environment):sub(1, 16)
end

-- The info of a claim; a claim whose text cannot be read is kept for one
-- default lease after it was written, then counts as expired.
local function info_of(store, entry, now)
  local ok, d = pcall(json.decode, entry.text)
  if not ok or type(d) ~= "table" then d = { damaged = true, lease_s = M.DEFAULT_LEASE } end
  local info = {}
  for k, v in pairs(d) do info[k] = v end
  info.holder = type(d.holder) == "table" and d.holder or {}
  info.entry = entry
  local lease = tonumber(d.lease_s) or M.DEFAULT_LEASE
  if lease > 0 and entry.written_at then
    now = now or call(store, "now") or os.time()
    info.expires_in = lease - (now - entry.written_at)
    info.expired = info.expires_in < 0
  else
    info.expired = false
  end
  return info
end

local function since_text(since)
  return (tostring(since or "?"):gsub("T", " "):gsub("Z$", " UTC"))
end

function M.describe(info)
  local h = info.holder or {}
  local parts = {}
  if h.pid then parts[#parts + 1] = "pid " .. tostring(h.pid) end
  if h.run_id then parts[#parts + 1] = "run " .. tostring(h.run_id) end
  if h.ci_url then parts[#parts + 1] = tostring(h.ci_url) end
  local text = ("%s on %s"):format(tostring(h.user or "?"), tostring(h.host or "?"))
  if #parts > 0 then text = text .. " (" .. table.concat(parts, ", ") .. ")" end
  text = text .. " since " .. since_text(info.since)
  if info.reason and info.reason ~= "" then text = text .. ": " .. tostring(info.reason) end
  if info.damaged then text = "a lock whose record cannot be read (written by another version of slipway?)" end
  return text
end

local function label(opts)
  return ("%s/%s"):format(opts.pipeline, opts.environment)
end

---------------------------------------------------------------- the queue

local function place_number(entry, prefix)
  return tonumber(entry.name:sub(#prefix + 1))
end

-- The live places in the queue, first first; expired ones are removed.
local function queue(store, name, now)
  local prefix = name .. ".q"
  local list = call(store, "claims", prefix) or {}
  local live = {}
  for _, e in ipairs(list) do
    local n = place_number(e, prefix)
    if n then
      local info = info_of(store, e, now)
      if info.expired then call(store, "drop", e) else live[#live + 1] = { n = n, entry = e } end
    end
  end
  table.sort(live, function(a, b) return a.n < b.n end)
  return live
end

-- Take the next place: the next number after the highest one seen.
local function enqueue(store, name, text, labels)
  local prefix = name .. ".q"
  local top = 0
  for _, e in ipairs(call(store, "claims", prefix) or {}) do
    local n = place_number(e, prefix)
    if n and n > top then top = n end
  end
  for n = top + 1, top + 1000 do
    local entry, err = call(store, "claim", ("%s%010d"):format(prefix, n), text, labels)
    if entry then return entry end
    if err ~= "exists" then return nil, err end
  end
  return nil, "could not take a place in the queue"
end

---------------------------------------------------------------- holding

local Held = {}
Held.__index = Held

function Held:renew()
  local entry, err = call(self.store, "renew", self.entry)
  if entry then
    self.entry = entry
    return true
  end
  if err == "gone" then
    local now_held = M.status(self.store, self.pipeline, self.environment)
    return nil, ("lost the lock of %s/%s%s"):format(self.pipeline, self.environment,
      now_held and (": it is now held by " .. M.describe(now_held)) or "")
  end
  return nil, ("could not renew the lock of %s/%s: %s"):format(self.pipeline, self.environment, tostring(err))
end

-- Remove entry unless it is gone already; another process removing the
-- same name ("busy") is waited for.
local function drop(store, entry)
  for _ = 1, 50 do
    local ok, err = call(store, "drop", entry)
    if ok or err == "gone" then return true end
    if err ~= "busy" then return nil, err end
    task.sleep(0.02)
  end
  return nil, "the lock is being removed by another process"
end

function Held:release()
  return drop(self.store, self.entry)
end

-- The text of a claim: who, why, since when, the lease.
local function claim_text(opts, me)
  return require("slipway.secret").mask(json.encode {
    holder = { user = me.user, host = me.host, pid = not opts.manual and me.pid or nil, run_id = opts.run_id,
               ci_url = me.ci and me.ci.url or nil },
    reason = opts.reason, since = events.iso_time(os.time()), lease_s = opts.lease,
    manual = opts.manual or nil, pipeline = opts.pipeline, environment = opts.environment,
    token = require("slipway.hash").random_hex(8),
  })
end

local acquire

-- (a wait cut short, by a cancellation, gives its place in line back)
function M.acquire(store, opts)
  local place = {}
  local r = table.pack(pcall(acquire, store, opts, place))
  if r[1] then return table.unpack(r, 2, r.n) end
  if place.entry then call(store, "drop", place.entry) end
  error(r[2], 0)
end

acquire = function(store, opts, mine)
  local name = M.name(opts.pipeline, opts.environment)
  local me = ledger.identity()
  if opts.lease == nil then opts.lease = M.DEFAULT_LEASE end
  local text = claim_text(opts, me)
  local labels = { pipeline = opts.pipeline, environment = opts.environment }
  local deadline = opts.wait and (task.now() + opts.wait * 1000)
  local poll = opts.poll or store.poll_interval or 0.25
  local place, place_renewed, told = nil, 0, nil
  local function leave_queue()
    if place then call(store, "drop", place) end
    place, mine.entry = nil, nil
  end
  local function busy(why)
    leave_queue()
    return nil, why
  end
  while true do
    local now = call(store, "now")
    local current, err = call(store, "peek", name)
    if err then return busy(("cannot read the lock of %s in %s (nothing ran): %s"):format(label(opts), store.where, err)) end
    local info = current and info_of(store, current, now)
    local waiting_for
    if info and not info.expired then
      waiting_for = "held by " .. M.describe(info)
    else
      local line = queue(store, name, now)
      if #line > 0 and not (place and line[1].entry.name == place.name) then
        waiting_for = ("free, but %s waiting for it in line"):format(#line == 1 and "1 run is" or (#line .. " runs are"))
      end
    end
    if waiting_for == nil then
      local taken_over
      if info then                                   -- expired: remove it first
        local ok, why = call(store, "drop", current)
        if ok then taken_over = info
        elseif why ~= "gone" and why ~= "busy" then
          return busy(("cannot take over the expired lock of %s: %s"):format(label(opts), tostring(why)))
        end
      end
      local entry, cerr = call(store, "claim", name, text, labels)
      if entry then
        leave_queue()
        if taken_over and opts.on_takeover then opts.on_takeover(taken_over) end
        return setmetatable({ store = store, entry = entry, name = name, pipeline = opts.pipeline,
                              environment = opts.environment, lease = opts.lease }, Held)
      elseif cerr ~= "exists" then
        return busy(("cannot take the lock of %s in %s (nothing ran): %s"):format(label(opts), store.where, tostring(cerr)))
      end
      -- someone else was quicker: look again
    else
      if not deadline then
        return busy(("the lock of %s is %s (wait for it with --lock-wait DURATION)"):format(label(opts), waiting_for))
      end
      if task.now() > deadline then
        return busy(("gave up after %s: the lock of %s is %s"):format(events.format_ms(opts.wait * 1000),
          label(opts), waiting_for))
      end
      if not place then
        local perr
        place, perr = enqueue(store, name, text, labels)
        if not place then return busy(("cannot wait for the lock of %s: %s"):format(label(opts), tostring(perr))) end
        mine.entry, place_renewed = place, task.now()
      elseif opts.lease > 0 and task.now() - place_renewed > opts.lease * 1000 / 3 then
        place = call(store, "renew", place)       -- (dropped meanwhile: take a new place)
        mine.entry, place_renewed = place, task.now()
      end
      if told ~= waiting_for and opts.on_wait then
        opts.on_wait(waiting_for)
      end
      told = waiting_for
      task.sleep(poll)
    end
  end
end

-- The lock's holder, or nil when it is free.
function M.status(store, pipeline, environment)
  local entry, err = call(store, "peek", M.name(pipeline, environment))
  if err then error(err, 0) end
  if not entry then return nil end
  return info_of(store, entry)
end

-- The places in the queue of the lock (info, first first).
function M.waiting(store, pipeline, environment)
  local out = {}
  for i, l in ipairs(queue(store, M.name(pipeline, environment))) do out[i] = info_of(store, l.entry) end
  return out
end

-- Remove a lock whatever holds it (`slipway lock release`).
function M.remove(store, info)
  return drop(store, info.entry)
end

return M
