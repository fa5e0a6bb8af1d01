-- slipway.ledger: the history of a pipeline's releases. A run is a
-- release: written when it starts (status "running"), updated as it goes
-- (each finished task, each recorded change), and finished with its
-- status; a crash at any point leaves a release that the next reader finds
-- "running" with its process gone or its lease expired, and reads as
-- "interrupted" (the next run of its pipeline and environment marks it so).
--
-- One logic over two stores, chosen by the command line and handed in:
-- lua/ledger/files.lua (.slipway/ next to the pipeline file) and
-- stdlib/docker/ledger_store.lua (Docker configs in a swarm). A store is:
--
--   store.kind ("local" | "swarm"), store.where (for messages),
--   store.flush_interval (least seconds between two writes of a release),
--   store.poll_interval (how often a run waiting for the lock looks)
--   store:now() -> seconds since the epoch on the store's clock (leases)
--   store:check() -> true           can it be used at all (optional)
--   releases, one record per run:
--   store:put(id, text, labels) -> true[, warning]  create or replace, atomically
--   store:get(id) -> text[, written_at] | nil, err
--   store:list(labels) -> { { id, text?, written_at? }... }  (labels: a hint;
--                                   local keeps only status = "running")
--   store:remove(id)
--   store:append(id, text) -> true[, warning]  the release's event lines
--   store:events(id) -> text | nil  (local only)
--   store:reserve(id, bytes), store:unreserve(id)  (local only)
--   store:location(id) -> a path people can open, or nil
--   claims, for the lock and its queue (lua/ledger/lock.lua):
--   store:claim(name, text, labels) -> entry | nil, "exists"   (atomic)
--   store:peek(name) -> entry | nil
--   store:claims(prefix) -> { entry... }
--   store:renew(entry) -> entry | nil, "gone"
--   store:drop(entry) -> true | nil, "gone" | nil, "busy"
--   entry = { name, text, id (this very entry), written_at }
-- Store methods may raise (an engine's error) or return nil, err; the
-- ledger turns both into nil, err.
--
-- This module:
--   ledger.identity() -> { user, host, pid, boot_id, start, ci = { system, url } }
--   ledger.pipeline_name(def), ledger.environment(values), ledger.version(values)
--   ledger.verified(status, units) -> boolean
--   ledger.begin(store, record, opts) -> writer | nil, err
--     writer:event(fields), writer:task_finished(name, status, ms),
--     writer:touch(), writer:keepalive(interval),
--     writer:finish() -> true | nil, err
--   ledger.decode(text) -> record | nil, why
--   ledger.read(store, filter, opts) -> releases (newest first), skipped
--   ledger.find(store, id_or_prefix, filter) -> release | nil, err
--   ledger.effective_status(store, rec, written_at, me, now) -> status, why
--   ledger.mark_interrupted(store, filter, by) -> { release... }
local task = require("slipway.task")
local json = require("slipway.json")
local fs = require("slipway.fs")
local release = require("slipway.release")
local events = require("slipway.events")
local mask = require("slipway.secret").mask

local M = {}

-- call(store, "method", ...) -> the method's results | nil, err
local function call(store, method, ...)
  local r = table.pack(pcall(store[method], store, ...))
  if not r[1] then
    local err = r[2]
    if type(err) ~= "string" then err = tostring(err) end
    return nil, err
  end
  return table.unpack(r, 2, r.n)
end
M._call = call

---------------------------------------------------------------- facts

local function first_line(path)
  local text = fs.read(path)
  return text and text:match("^[^\n]*") or nil
end

-- The start time of process pid (clock ticks since boot), or nil when it
-- is gone or a zombie.
local function process_start(pid)
  local stat = fs.read("/proc/" .. tostring(pid) .. "/stat")
  if not stat then return nil end
  local rest = stat:match("^%d+ %b() (.*)$")
  if not rest then return nil end
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  if fields[1] == "Z" or fields[1] == "X" then return nil end
  return fields[20]         -- field 22 of the line: starttime
end
M._process_start = process_start

-- Who is deploying: the CI's actor and job page when a CI runs us.
local CI = {
  { system = "github", when = "GITHUB_ACTIONS", who = { "GITHUB_ACTOR" },
    url = function(e)
      local server, repo, id = e("GITHUB_SERVER_URL"), e("GITHUB_REPOSITORY"), e("GITHUB_RUN_ID")
      if server and repo and id then return ("%s/%s/actions/runs/%s"):format(server, repo, id) end
    end },
  { system = "gitlab", when = "GITLAB_CI", who = { "GITLAB_USER_LOGIN" }, url = function(e) return e("CI_JOB_URL") end },
  { system = "buildkite", when = "BUILDKITE", who = { "BUILDKITE_BUILD_CREATOR", "BUILDKITE_BUILD_CREATOR_EMAIL" },
    url = function(e) return e("BUILDKITE_BUILD_URL") end },
  { system = "circleci", when = "CIRCLECI", who = { "CIRCLE_USERNAME" }, url = function(e) return e("CIRCLE_BUILD_URL") end },
  { system = "jenkins", when = "JENKINS_URL", who = { "BUILD_USER_ID" }, url = function(e) return e("BUILD_URL") end },
}

local function getenv(name)
  local v = os.getenv(name)
  if v == nil or v == "" or v == "false" then return nil end
  return v
end

local identity
function M.identity()
  if identity then return identity end
  local pid = tonumber(((fs.realpath("/proc/self") or ""):match("(%d+)$")))
  local user = getenv("USER") or getenv("LOGNAME")
  if not user then                  -- (a container's shell often sets neither)
    local uid = (fs.read("/proc/self/status") or ""):match("\nUid:%s*(%d+)") or "?"
    for line in (fs.read("/etc/passwd") or ""):gmatch("[^\n]+") do
      local name, id = line:match("^([^:]*):[^:]*:(%d+):")
      if id == uid then user = name break end
    end
    user = user or ("uid " .. uid)
  end
  local me = {
    user = user, pid = pid, start = pid and process_start(pid),
    host = first_line("/proc/sys/kernel/hostname") or getenv("HOSTNAME") or "localhost",
    boot_id = first_line("/proc/sys/kernel/random/boot_id"),
  }
  for _, ci in ipairs(CI) do
    if getenv(ci.when) then
      local who
      for _, var in ipairs(ci.who) do who = who or getenv(var) end
      me.ci = { system = ci.system, url = ci.url(getenv) }
      if who then me.user = who end
      break
    end
  end
  identity = me
  return me
end

-- The pipeline's name: pipeline{ name = ... }, else the name of the
-- directory of a deploy.lua, else the file's name without .lua (two
-- pipelines of one directory have two histories and two locks).
function M.pipeline_name(def)
  if def.pipeline and def.pipeline.name then return def.pipeline.name end
  local path = fs.realpath(def.file) or def.file
  local dir, base = path:match("^(.*)/([^/]*)$")
  if not dir then dir, base = fs.realpath(".") or ".", path end
  if base == "deploy.lua" then
    local name = dir:match("([^/]*)$")
    return name ~= "" and name or "/"
  end
  return (base:gsub("%.pipeline%.lua$", ""):gsub("%.lua$", ""))
end

local function text_of(v)
  if type(v) == "string" or type(v) == "number" then return tostring(v) end
  return nil
end

function M.environment(values)
  return text_of(values and values.environment) or "default"
end

-- A `version` or `tag` parameter's value.
function M.version(values)
  return text_of(values and values.version) or text_of(values and values.tag)
end

-- Verified: the run succeeded and its validation tasks (verifies = true)
-- all passed; with no such task, success alone.
function M.verified(status, units)
  if status ~= "success" then return false end
  for _, u in ipairs(units) do
    local t = u.node and u.node.task
    if t and t.verifies and u.status ~= "ok" then return false end
  end
  return true
end

---------------------------------------------------------------- writing

local Writer = {}
Writer.__index = Writer

local function labels_of(record)
  return { pipeline = record.pipeline, environment = record.environment, status = record.status }
end

local last_second, last_iso
local function iso_now()
  local t = os.time()
  if t ~= last_second then last_second, last_iso = t, events.iso_time(t) end
  return last_iso
end

-- (masked: an error message may hold a secret's value)
local function line_of(fields)
  fields.at = fields.at or iso_now()
  return mask(json.encode(fields, { invalid_utf8 = "replace" })) .. "\n"
end

-- begin(store, record, opts) -> writer | nil, err: the first write of a
-- release, before anything runs: the store is usable, the space reserved,
-- the release written ("running") and its "started" event logged.
-- opts: reserve (bytes), warn(message) (a later write failed),
-- before_write() (refresh the record's fields), started (fields of the
-- started line).
function M.begin(store, record, opts)
  opts = opts or {}
  local w = setmetatable({
    store = store, record = record, id = record.id, lines = {}, warned = {},
    warn = opts.warn or function() end, before_write = opts.before_write,
    last = 0, timer = nil, writing = false, closed = false,
  }, Writer)
  local ok, err = true, nil
  if store.check then ok, err = call(store, "check") end
  if ok and store.reserve and (opts.reserve or 0) > 0 then ok, err = call(store, "reserve", w.id, opts.reserve) end
  if ok then ok, err = call(store, "put", w.id, release.encode(record), labels_of(record)) end
  if ok then
    local started = { event = "started", id = w.id }
    for k, v in pairs(opts.started or {}) do started[k] = v end
    ok, err = call(store, "append", w.id, line_of(started))
  end
  if not ok then              -- no half-written release is left behind
    call(store, "remove", w.id)
    return nil, err
  end
  w.last = task.now()
  return w
end

-- Write what changed now: the pending event lines, then the release.
function Writer:write()
  if self.before_write then self.before_write() end
  local store = self.store
  if #self.lines > 0 then
    local ok, err = call(store, "append", self.id, table.concat(self.lines))
    if ok then self.lines = {} end
    self:warn_once(ok, err)
  end
  local ok, err = call(store, "put", self.id, release.encode(self.record), labels_of(self.record))
  self:warn_once(ok, err)
  self.last = task.now()
  if ok then return true end
  return nil, err
end

-- A write that failed (ok nil) or went through with a warning (the disk
-- filled up): said once per kind.
function Writer:warn_once(ok, err)
  if err == nil then return end
  local kind = ok and "warning" or "failure"
  if self.warned[kind] then return end
  self.warned[kind] = true
  self.warn(ok and err or ("could not update the release in %s: %s"):format(self.store.where, tostring(err)))
end

-- Something changed: write it within flush_interval (coalescing what
-- changes meanwhile), in a task of the runtime's own.
function Writer:touch()
  if self.timer or self.closed then return end
  local wait = (self.last + (self.store.flush_interval or 0.2) * 1000 - task.now()) / 1000
  self.timer = task.spawn_with(false, function()
    if wait > 0 then task.sleep(wait) end
    self.writing = true
    self.timer = nil
    self:write()
    self.writing = false
  end)
end

-- An event for the release's history (its fields; `at` is added).
function Writer:event(fields)
  self.lines[#self.lines + 1] = line_of(fields)
  self:touch()
end

-- The "task_finished" event, written without a table per line: a big run
-- finishes thousands of tasks. (Masked: a matrix item's label, part of the
-- name, may hold a secret's value.)
local ENCODE_OPTS = { invalid_utf8 = "replace" }
function Writer:task_finished(name, status, duration_ms)
  self.lines[#self.lines + 1] = mask(('{"at":"%s","duration_ms":%s,"event":"task_finished","status":%s,"task":%s}\n')
    :format(iso_now(), duration_ms and json.encode(duration_ms) or "null", json.encode(status),
      json.encode(name, ENCODE_OPTS)))
  self:touch()
end

-- Keep a release that nothing updates from looking abandoned: write it if
-- it was last written more than `interval` seconds ago.
function Writer:keepalive(interval)
  if task.now() - self.last >= interval * 1000 then self:touch() end
end

-- The last write: the finished release, after any write under way.
function Writer:finish(fields)
  self.closed = true
  local timer = self.timer
  if timer then
    if self.writing then timer:wait() else timer:cancel() end
  end
  while self.writing do task.sleep(0.01) end
  if self.store.unreserve then call(self.store, "unreserve", self.id) end
  self.lines[#self.lines + 1] = line_of(fields)
  return self:write()
end

---------------------------------------------------------------- reading

-- The fields of a release that readers use, with their JSON types (each
-- may be absent).
local FIELDS = {
  { "id", "string" }, { "status", "string" }, { "exit_code", "number" }, { "started_at", "string" },
  { "duration_ms", "number" }, { "params", "object" }, { "tasks", "array" }, { "git", "object" },
  { "pipeline", "string" }, { "environment", "string" }, { "verified", "boolean" }, { "who", "string" },
  { "host", "string" }, { "changes", "array" }, { "lease_s", "number" }, { "process", "object" },
}
local TASK_FIELDS = { { "name", "string" }, { "status", "string" }, { "allowed", "boolean" } }

-- The JSON type of a decoded value: "object" or "array" for tables.
local function json_type(v)
  if v == json.null then return "null" end
  if type(v) ~= "table" then return type(v) end
  return getmetatable(v) == json.array_mt and "array" or "object"
end

-- The first field of t whose type differs from fields', as "duration_ms:
-- expected number, got string", or nil.
local function wrong_field(t, fields, prefix)
  for _, field in ipairs(fields) do
    local k, want = field[1], field[2]
    local v = t[k]
    if v ~= nil and json_type(v) ~= want then
      return ("%s%s: expected %s, got %s"):format(prefix, k, want, json_type(v))
    end
  end
end

-- decode(text) -> record | nil, why it cannot be listed (not JSON, or
-- fields of the wrong type): one damaged release must not hide the others.
function M.decode(text)
  local ok, r, derr = pcall(json.decode, text)
  if not ok or r == nil then return nil, "not JSON: " .. tostring(ok and derr or r) end
  if json_type(r) ~= "object" then return nil, ("expected a JSON object, got %s"):format(json_type(r)) end
  local why = wrong_field(r, FIELDS, "")
  if why then return nil, why end
  local environment = r.params and r.params.environment
  if environment ~= nil and type(environment) ~= "string" and type(environment) ~= "number" then
    return nil, "params.environment: expected string, got " .. json_type(environment)
  end
  for i, t in ipairs(r.tasks or {}) do
    if json_type(t) ~= "object" then return nil, ("tasks[%d] is not an object"):format(i) end
    why = wrong_field(t, TASK_FIELDS, ("tasks[%d]."):format(i))
    if why then return nil, why end
  end
  -- (releases written before the ledger kept only params.environment)
  if r.environment == nil and environment ~= nil then r.environment = tostring(environment) end
  return r
end

-- What a "running" release really is: still running, or interrupted
-- because its process is gone (same machine: checked at once) or because
-- nothing renewed it within its lease (seconds on the store's clock).
function M.effective_status(rec, written_at, me, now)
  if rec.status ~= "running" then return rec.status end
  local p = rec.process
  if type(p) == "table" and p.pid and rec.host == me.host and p.boot_id and p.boot_id == me.boot_id then
    local start = process_start(p.pid)
    if start == nil or (p.start and start ~= p.start) then
      return "interrupted", ("its process (pid %s on %s) is gone"):format(tostring(p.pid), rec.host)
    end
    return "running"
  end
  local lease = tonumber(rec.lease_s) or 60
  if written_at and now and now - written_at > lease then
    return "interrupted", ("nothing renewed it for %ds (its lease is %ds)"):format(math.floor(now - written_at), lease)
  end
  return "running"
end

local function matches(rec, filter)
  if filter.pipeline and rec.pipeline ~= nil and rec.pipeline ~= filter.pipeline then return false end
  if filter.environment and rec.environment ~= filter.environment then return false end
  return true
end

-- read(store, filter, opts) -> releases newest first, skipped
-- filter: pipeline, environment, status (a hint to the store); opts.limit.
-- Each release is its record with .effective (status) and .why; skipped
-- lists { id =, where =, why = } for releases that cannot be read.
function M.read(store, filter, opts)
  filter, opts = filter or {}, opts or {}
  local list, err = call(store, "list", { pipeline = filter.pipeline, environment = filter.environment,
                                          status = filter.status })
  if not list then return nil, err end
  table.sort(list, function(a, b) return a.id > b.id end)
  local me, now = M.identity(), nil
  local out, skipped = {}, {}
  for _, item in ipairs(list) do
    local text, written_at = item.text, item.written_at
    local why
    if text == nil then text, why = call(store, "get", item.id) end
    if text ~= nil and written_at == nil then written_at = why end
    local rec
    if text == nil then
      why = tostring(why)
    else
      rec, why = M.decode(text)
    end
    if rec == nil then
      skipped[#skipped + 1] = { id = item.id, where = store:location(item.id) or ("release " .. item.id), why = why }
    elseif matches(rec, filter) then
      rec.id = rec.id or item.id
      if rec.status == "running" then now = now or call(store, "now") end
      rec.effective, rec.why = M.effective_status(rec, written_at, me, now)
      rec.written_at = written_at
      out[#out + 1] = rec
      if opts.limit and #out >= opts.limit then break end
    end
  end
  return out, skipped
end

-- find(store, id, filter) -> release | nil, err: by id, or by the start of
-- one (unique).
function M.find(store, id, filter)
  local text, written_at = call(store, "get", id)
  local rec
  if text ~= nil then
    local why
    rec, why = M.decode(text)
    if not rec then return nil, ("release %s cannot be read: %s"):format(id, why) end
    rec.written_at = type(written_at) == "number" and written_at or nil
  else
    local all, err = M.read(store, filter)
    if not all then return nil, err end
    local found = {}
    for _, r in ipairs(all) do
      if r.id:sub(1, #id) == id then found[#found + 1] = r end
    end
    if #found == 0 then return nil, ("no release %s in %s"):format(id, store.where) end
    if #found > 1 then
      return nil, ("%s names %d releases (%s, %s...): give more of the id"):format(id, #found, found[1].id, found[2].id)
    end
    return found[1]
  end
  local now = rec.status == "running" and call(store, "now") or nil
  rec.effective, rec.why = M.effective_status(rec, rec.written_at, M.identity(), now)
  return rec
end

-- Mark the releases of filter (pipeline, environment) that read
-- "interrupted" but still say "running": status interrupted, with who
-- found it and why. Returns those releases.
function M.mark_interrupted(store, filter, by)
  local list = M.read(store, { pipeline = filter.pipeline, environment = filter.environment, status = "running" })
  local marked = {}
  for _, rec in ipairs(list or {}) do
    if rec.status == "running" and rec.effective == "interrupted" and rec.id ~= by then
      local why = rec.why
      rec.effective, rec.why, rec.written_at = nil, nil, nil
      rec.status, rec.verified = "interrupted", false
      rec.interrupted = { detected_at = events.iso_time(os.time()), detected_by = by, reason = why }
      for _, t in ipairs(rec.tasks or {}) do
        if t.status == "running" then t.status = "interrupted" end
      end
      if store.unreserve then call(store, "unreserve", rec.id) end
      local text = json.encode(rec, { pretty = true, invalid_utf8 = "replace" }) .. "\n"
      if call(store, "put", rec.id, text, labels_of(rec)) then
        call(store, "append", rec.id, line_of { event = "interrupted", detected_by = by, reason = why })
        rec.why = why
        marked[#marked + 1] = rec
      end
    end
  end
  return marked
end

return M
