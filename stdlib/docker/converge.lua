-- slipway.docker.converge: wait until Swarm services converged, driven by
-- the engine's event stream.
--
--   converge.wait(c, watches, timeout_ms, poll_ms, say, opts) -> ok, reasons, why
--   converge.service_state(c, svc, tasks, watch)        -> state, explain
--   converge.lost_nodes(c, watches, since)              -> { [node name] = { service, ... } }
--
-- The wait subscribes to GET /events (service and container events: what
-- Swarm emits on API 1.41; task state lives in the manager and has no
-- events of its own) and looks again only at the services an event names,
-- instead of looking at every service every poll interval. A container
-- event comes a moment before the manager records the task's new state,
-- so a service that is still pending after its event is looked at again
-- shortly after (100 ms, 300 ms, 900 ms), and every pending service is looked at
-- every SAFETY_MS whatever happens. When the stream drops, the wait polls
-- every poll_ms while it reconnects (from the time of the last event it
-- saw, so the engine replays what happened meanwhile). Progress lines come
-- from the events as they arrive: a task's container started, healthy,
-- exited; an update's state.
local client = require("slipway.docker.client")
local node = require("slipway.docker.node")
local json = require("slipway.json")
local task = require("slipway.task")

local M = {}

M.SAFETY_MS = 2000          -- look at every pending service at least this often
M.FOLLOW_UP_MS = 100        -- look again this long after an event, then 3x as long...
M.RECONNECT_MS = { 100, 250, 500, 1000, 2000 }

local function set(...)
  local t = {}
  for _, k in ipairs({ ... }) do t[k] = true end
  return t
end

local TERMINAL = set("complete", "shutdown", "failed", "rejected", "remove", "orphaned")
local BAD_UPDATE = set("paused", "rollback_started", "rollback_paused", "rollback_completed")
M.TERMINAL = TERMINAL

local function short(id) return (id or ""):sub(1, 12) end

-- Deep equality of decoded JSON values (key order does not matter).
local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M.same = same

-- Is a task on the service's current task template? The engine leaves
-- Runtime out of task specs, and Swarm keeps tasks whose node still fits a
-- changed Placement, so neither counts.
local function current_task(spec, tmpl)
  if type(spec) ~= "table" or type(tmpl) ~= "table" then return false end
  for _, t in ipairs({ spec, tmpl }) do
    for k, v in pairs(t) do
      if k ~= "Runtime" and k ~= "Placement" then
        local other = (t == spec) and tmpl[k] or spec[k]
        if not same(v, other) then return false end
      end
    end
  end
  return true
end

---------------------------------------------------------------- state

-- The last health check output of a task's container, if it has one.
local function health_note(c, t)
  local cid = t.Status and t.Status.ContainerStatus and t.Status.ContainerStatus.ContainerID
  if not cid then return "" end
  local ok, info = pcall(c.call, c, "docker.stack.deploy", "GET", "/containers/" .. cid .. "/json",
    { ok = { [404] = true } })
  local h = ok and type(info) == "table" and info.State and info.State.Health
  if type(h) == "table" and type(h.Log) == "table" and #h.Log > 0 then
    local last = h.Log[#h.Log]
    return ("; health %s: %s"):format(h.Status, (tostring(last.Output or ""):gsub("%s+$", "")))
  end
  return ""
end

-- Why the service's tasks are not running: the newest task error (else
-- the newest task's state) and the node it ran on, the nodes that are down
-- and held one of all_tasks (old ones too: a task of the old spec on a
-- lost node holds up an update), and the last health check output of the
-- newest container that has one. nodes: node._by_id's table (asked for
-- when not given).
local function task_reason(c, tasks, all_tasks, nodes)
  table.sort(tasks, function(a, b)
    return (a.Status.Timestamp or a.UpdatedAt or "") > (b.Status.Timestamp or b.UpdatedAt or "")
  end)
  nodes = nodes or node._by_id(c, "docker.stack.deploy")
  local count = 0
  for _ in pairs(nodes) do count = count + 1 end
  if count < 2 then nodes = {} end         -- (one node: naming it would say nothing)
  local reason
  for _, t in ipairs(tasks) do
    local st = t.Status or {}
    if st.Err or st.State == "failed" or st.State == "rejected" then
      reason = ("task %s %s%s: %s"):format(short(t.ID), st.State or "?", node._where(nodes, t), st.Err or st.Message or "?")
      break
    end
  end
  if not reason and tasks[1] then
    local t = tasks[1]
    reason = ("task %s %s%s: %s"):format(short(t.ID), t.Status.State or "?", node._where(nodes, t), t.Status.Message or "")
  end
  if not reason then return "no tasks were scheduled" end
  local lost = node._lost(nodes, all_tasks or tasks)
  if #lost > 0 then
    reason = ("%s; node %s %s down"):format(reason, table.concat(lost, ", "), #lost > 1 and "are" or "is")
  end
  local looked = 0
  for _, t in ipairs(tasks) do
    if looked >= 3 then break end
    if t.Status and t.Status.ContainerStatus and t.Status.ContainerStatus.ContainerID then
      looked = looked + 1
      local note = health_note(c, t)
      if note ~= "" then return reason .. note end
    end
  end
  return reason
end

-- One look at a service, given the service and its tasks: "converged",
-- "pending" or "failed", and a function that explains why (it may ask the
-- engine for health logs, so it is called only when the answer is needed).
-- nodes: the swarm's nodes by ID (node._by_id), when known; tasks on a
-- node that is not ready still read running, with desired state running,
-- until the swarm gives up on them: they do not count.
function M.service_state(c, svc, tasks, watch, nodes)
  if not svc then return "failed", function() return "the service was removed" end end
  local tmpl = svc.Spec.TaskTemplate
  local us = svc.UpdateStatus
  local fresh_update = us and us ~= json.null and (watch == nil or us.StartedAt ~= watch.update_started)
  if fresh_update and BAD_UPDATE[us.State] then
    return "failed", function()
      return ("update %s: %s; %s"):format(us.State, us.Message or "", task_reason(c, tasks, nil, nodes))
    end
  end
  local mode = svc.Spec.Mode or {}
  local current, running, complete, active = {}, 0, 0, 0
  for _, t in ipairs(tasks) do
    local on = nodes and nodes[t.NodeID or ""]
    if current_task(t.Spec, tmpl) and not (on and on.state ~= "ready") then
      current[#current + 1] = t
      local st = t.Status and t.Status.State
      if st == "complete" then complete = complete + 1 end
      if not TERMINAL[t.DesiredState] then
        active = active + 1
        if st == "running" then running = running + 1 end
      end
    end
  end
  local updating = fresh_update and (us.State == "updating")
  -- explain with the tasks of the new spec (old ones are shutting down)
  local why_tasks = #current > 0 and current or tasks
  if mode.ReplicatedJob or mode.GlobalJob then
    local want = mode.ReplicatedJob and (mode.ReplicatedJob.TotalCompletions or 1) or nil
    if (want and complete >= want) or (not want and #current > 0 and active == 0 and complete > 0) then
      return "converged"
    end
    return "pending", function()
      return ("%d/%s completed; %s"):format(complete, want or "?", task_reason(c, why_tasks, tasks, nodes))
    end
  end
  local want
  if mode.Replicated then want = mode.Replicated.Replicas or 1
  else want = math.max(active, 1) end
  if running >= want and active <= want and not updating then return "converged" end
  return "pending", function()
    return ("%d/%d running; %s"):format(running, want, task_reason(c, why_tasks, tasks, nodes))
  end
end

-- "Sat, 05 Dec 2026 09:30:00 GMT" -> Unix seconds (nil if unreadable).
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
                 Oct = 10, Nov = 11, Dec = 12 }
function M._http_date(s)
  local d, mon, y, h, mi, sec = tostring(s or ""):match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+)")
  local m = MONTHS[mon or ""]
  if not m then return nil end
  y, m, d = tonumber(y), m, tonumber(d)
  -- days from 1970-01-01 of a civil date (proleptic Gregorian)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

-- The services (by id) and the tasks of the given service ids, the
-- engine's clock (Unix seconds) from the answer, and the swarm's nodes
-- (node._by_id), in three requests.
local function look(c, ids)
  local svcs, res = c:call("docker.stack.deploy", "GET", "/services",
    { query = { filters = json.encode({ id = ids }) } })
  local tasks = c:call("docker.stack.deploy", "GET", "/tasks",
    { query = { filters = json.encode({ service = ids }) } }) or {}
  local by_id, tasks_of = {}, {}
  for _, s in ipairs(svcs or {}) do by_id[s.ID] = s end
  for _, t in ipairs(tasks) do
    tasks_of[t.ServiceID] = tasks_of[t.ServiceID] or {}
    table.insert(tasks_of[t.ServiceID], t)
  end
  return by_id, tasks_of, M._http_date(res and res.headers and res.headers.date),
    (node._by_id(c, "docker.stack.deploy"))
end

---------------------------------------------------------------- events

-- The actions worth waking for: services changing, containers of tasks
-- starting, getting healthy or not, ending.
local EVENT_FILTERS = json.encode({
  type = { "service", "container" },
  event = { "create", "update", "remove", "start", "die", "health_status", "destroy", "oom" },
})

-- The line an event gives, or nil.
local function event_line(ev, name)
  local a = type(ev.Actor) == "table" and type(ev.Actor.Attributes) == "table" and ev.Actor.Attributes or {}
  local action = tostring(ev.Action or "")
  if ev.Type == "service" then
    if a["updatestate.new"] then return ("%s: update %s"):format(name, a["updatestate.new"]) end
    return nil
  end
  local slot = tostring(a["com.docker.swarm.task.name"] or name):match("^(.-)%.[%w]+$") or name
  if action == "start" then return slot .. ": container started" end
  if action == "die" then return ("%s: container exited (%s)"):format(slot, a.exitCode or "?") end
  if action == "oom" then return slot .. ": container ran out of memory" end
  local health = action:match("^health_status: (%a+)")
  if health then return ("%s: %s"):format(slot, health) end
  return nil
end

-- The feed: one task reading the event stream into `hits` (service id ->
-- true) and waking the waiter, reconnecting when the stream ends.
local Feed = {}
Feed.__index = Feed

local function ring(f)
  local bell = f.bell
  if bell then
    f.bell = nil
    bell:cancel()
  end
end

function Feed:on_event(ev)
  if type(ev) ~= "table" then return end
  local a = type(ev.Actor) == "table" and type(ev.Actor.Attributes) == "table" and ev.Actor.Attributes or {}
  local id = ev.Type == "service" and ev.Actor.ID or a["com.docker.swarm.service.id"]
  if type(ev.timeNano) == "number" then self.last_ns = ev.timeNano end
  local w = id and self.watched[id]
  if not w then return end
  self.events = self.events + 1
  if not w.done then
    local line = event_line(ev, w.name)
    if line then self.say(line) end
  end
  self.hits[id] = true
  ring(self)
end

function Feed:run()
  local attempt, said_at = 0, nil
  while not self.stopped do
    local on_body, finish = client.json_lines(function(ev) self:on_event(ev) end)
    local q = { filters = EVENT_FILTERS }
    if self.last_ns then
      q.since = ("%d.%09d"):format(self.last_ns // 1000000000, self.last_ns % 1000000000)
    elseif self.since then
      q.since = tostring(self.since)
    end
    self.connects = self.connects + 1
    local seen = self.events
    self.up = true
    local ok, res = pcall(self.c.raw, self.c, "docker.stack.deploy", "GET", "/events",
      { query = q, on_body = on_body, timeout = 0 })
    self.up = false
    if task.is_cancelled(res) then error(res, 0) end
    if self.stopped then break end
    if ok and res.status >= 400 then
      -- an engine that refuses the stream: poll for the rest of the wait
      self.say(("event stream refused (HTTP %d); polling every %s"):format(res.status, self.poll_text))
      ring(self)
      return
    end
    if ok then pcall(finish) end
    self.drops = self.drops + 1
    if said_at == nil or self.events > said_at then   -- once per outage
      local why = ok and "closed by the engine"
        or tostring(res):gsub("^.-docker%.stack%.deploy: ", ""):gsub(": https?://%S+$", "")
      self.say(("event stream lost (%s); polling every %s until it is back"):format(why, self.poll_text))
      said_at = self.events
    end
    ring(self)
    attempt = self.events > seen and 1 or attempt + 1   -- it worked a while: start over
    task.sleep(M.RECONNECT_MS[math.min(attempt, #M.RECONNECT_MS)] / 1000)
  end
end

local function start_feed(c, watched, since, say, poll_ms)
  local f = setmetatable({ c = c, watched = watched, hits = {}, say = say, since = since,
    connects = 0, drops = 0, events = 0, up = false,
    poll_text = ("%gms"):format(poll_ms) }, Feed)
  f.task = task.spawn(function() return f:run() end)
  return f
end

function Feed:stop()
  self.stopped = true
  ring(self)
  self.task:cancel()
  pcall(self.task.wait, self.task)   -- (a cancelled waiter cannot wait: it ends anyway)
end

-- Wait at most ms, or until an event rings.
function Feed:sleep(ms)
  if next(self.hits) then return end
  local bell = task.spawn(task.sleep, ms / 1000)
  self.bell = bell
  bell:wait()
  if self.bell == bell then self.bell = nil end
end

---------------------------------------------------------------- wait

-- Sleep until some pending service is due for a look; returns their ids.
-- Due: an event named it; its follow-up time came; it was last looked at
-- an interval ago (SAFETY_MS while the stream is up, else poll_ms); the
-- deadline passed.
local function next_due(pending, feed, poll_ms, deadline)
  while true do
    local now = task.now()
    local interval = (feed and feed.up) and M.SAFETY_MS or poll_ms
    local hits = feed and feed.hits or {}
    if feed then feed.hits = {} end
    local due, soonest = {}, deadline
    for id, w in pairs(pending) do
      if hits[id] then
        w.follow_ms = M.FOLLOW_UP_MS
        w.next_look = now + w.follow_ms
        due[#due + 1] = id
      elseif w.next_look and now >= w.next_look then
        w.follow_ms = w.follow_ms * 3
        w.next_look = w.follow_ms < M.SAFETY_MS and (now + w.follow_ms) or nil
        due[#due + 1] = id
      elseif now >= w.last_look + interval or now >= deadline then
        due[#due + 1] = id
      else
        soonest = math.min(soonest, w.last_look + interval, w.next_look or math.huge)
      end
    end
    if #due > 0 then
      table.sort(due)
      return due
    end
    local ms = math.max(soonest - now, 1)
    if feed then feed:sleep(ms) else task.sleep(ms / 1000) end
  end
end

-- Wait until every watched service converged; returns true or false and
-- { [name] = reason } for the ones that did not (or failed at once), and
-- "timeout" when the deadline passed. opts.events = false: poll only.
-- opts.stats (a table) gets connects, drops, events (of the watched
-- services) and looks (requests for services and tasks, counted in pairs).
function M.wait(c, watches, timeout_ms, poll_ms, say, opts)
  opts = opts or {}
  if #watches == 0 then return true, {} end
  local deadline = task.now() + timeout_ms
  local pending, watched = {}, {}
  for _, w in ipairs(watches) do
    pending[w.id], watched[w.id] = w, w
    w.follow_ms, w.next_look, w.done = nil, nil, nil
  end
  local stats = opts.stats or {}
  stats.looks = 0
  local feed

  local function loop()
    local due = {}
    for id in pairs(pending) do due[#due + 1] = id end
    table.sort(due)
    local reasons = {}
    while true do
      local by_id, tasks_of, engine_time, nodes = look(c, due)
      stats.looks = stats.looks + 1
      if not feed and opts.events ~= false then
        -- from a second before this look: nothing in between is missed
        feed = start_feed(c, watched, engine_time and (engine_time - 1), say, poll_ms)
      end
      local now = task.now()
      for _, id in ipairs(due) do
        local w = pending[id]
        local state, why = M.service_state(c, by_id[id], tasks_of[id] or {}, w, nodes)
        if state == "converged" then
          say(("%s converged"):format(w.name))
          w.done = true
          pending[id] = nil
        elseif state == "failed" then
          reasons[w.name] = why()
          return false, reasons
        else
          w.why, w.last_look = why, now
        end
      end
      if next(pending) == nil then return true, {} end
      if task.now() >= deadline then
        for _, w in pairs(pending) do reasons[w.name] = w.why and w.why() or "not converged" end
        return false, reasons, "timeout"
      end
      due = next_due(pending, feed, poll_ms, deadline)
    end
  end

  local ok, converged, reasons, why = pcall(loop)
  if feed then
    feed:stop()
    stats.connects, stats.drops, stats.events = feed.connects, feed.drops, feed.events
  end
  if not ok then error(converged, 0) end
  return converged, reasons, why
end

---------------------------------------------------------------- lost nodes

-- After a wait converged: the nodes that are down now and held tasks of
-- the watched services that changed since `since` (the manager's clock,
-- "YYYY-MM-DDTHH:MM:SS"), i.e. nodes lost while the deploy ran, with the
-- names of their services.
function M.lost_nodes(c, watches, since)
  local ids, name_of = {}, {}
  for _, w in ipairs(watches) do ids[#ids + 1] = w.id; name_of[w.id] = w.name end
  if #ids == 0 then return {} end
  local ok, tasks = pcall(c.call, c, "docker.stack.deploy", "GET", "/tasks",
    { query = { filters = json.encode({ service = ids }) } })
  if not ok or type(tasks) ~= "table" then return {} end
  local nodes = node._by_id(c, "docker.stack.deploy")
  local lost, seen = {}, {}
  for _, t in ipairs(tasks) do
    local n = t.NodeID and nodes[t.NodeID]
    local svc = name_of[t.ServiceID]
    if n and n.state ~= "ready" and svc and (t.UpdatedAt or ""):sub(1, 19) >= (since or "") then
      lost[n.name] = lost[n.name] or {}
      if not seen[n.name .. "\0" .. svc] then
        seen[n.name .. "\0" .. svc] = true
        table.insert(lost[n.name], svc)
      end
    end
  end
  return lost
end

return M
