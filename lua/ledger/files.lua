-- slipway.ledger.files: the ledger's local store, files in the project's
-- .slipway/ directory (next to the pipeline file). It implements the store
-- interface that lua/ledger/init.lua describes; the swarm store
-- (stdlib/docker/ledger_store.lua) implements the same one.
--
--   files.new(dir) -> store        dir: the .slipway directory
--
-- Layout:
--   runs/<id>/record.json    a release, replaced atomically (temp file,
--                            fsync, rename, fsync the directory)
--   runs/<id>/events.ndjson  its history: one JSON line per event,
--                            appended and fsync'd
--   runs/<id>/reserve        space set aside while the run writes (a full
--                            disk is found before anything runs, and the
--                            last write still has room)
--   runs/<id>/running        there while the release says "running"
--   runs/<id>/timeline.svg   (written by the run itself)
--   locks/<name>             a lock or a place in its queue: created with
--                            O_EXCL, so two processes cannot both create it
--   locks/<name>.dropping    while someone removes locks/<name>
local fs = require("slipway.fs")

local M = {}

local Store = {}
Store.__index = Store

-- How long a `.dropping` marker may stand before it is taken for the
-- leftover of a process that died while removing (removing takes
-- microseconds).
local STALE_MARKER_S = 10

function M.new(dir)
  return setmetatable({
    kind = "local", where = dir, dir = dir,
    flush_interval = 0.2,       -- at most 5 release writes a second
    poll_interval = 0.1,        -- how often a run waiting for the lock looks
  }, Store)
end

function Store.now(_self)
  return os.time()
end

local function run_dir(self, id) return self.dir .. "/runs/" .. id end

---------------------------------------------------------------- releases

-- A disk that filled up while the run wrote: give back the reserved space
-- and try once more.
local function with_reserve(self, id, write)
  local ok, err, code = write()
  if ok or code ~= "ENOSPC" then return ok, err, code end
  if not self:unreserve(id) then return ok, err, code end
  ok, err, code = write()
  if ok then return true, "the disk is full: the ledger used the space it had reserved" end
  return ok, err, code
end

-- put(id, text, labels) -> true[, warning] | nil, err: create or replace
-- the release, atomically and durably. Of the labels, a status of
-- "running" is kept as the file `running` beside it, so that finding the
-- releases still running does not read every record.
function Store:put(id, text, labels)
  local dir = run_dir(self, id)
  local ok, err, code = fs.mkdir(dir)
  if not ok then return nil, err, code end
  local running = labels and labels.status == "running"
  if running and not fs.exists(dir .. "/running") then
    ok, err, code = fs.write(dir .. "/running", "")
    if not ok then return nil, err, code end
  end
  local warning
  ok, warning, code = with_reserve(self, id, function() return fs.write_atomic(dir .. "/record.json", text) end)
  if ok and not running then fs.remove(dir .. "/running") end
  return ok, warning, code
end

-- get(id) -> text, written_at | nil, err, code
function Store:get(id)
  local path = run_dir(self, id) .. "/record.json"
  local text, err, code = fs.read(path)
  if text == nil then
    if err:sub(-#path - 2) == ": " .. path then err = err:sub(1, -#path - 3) end   -- (location() names it)
    return nil, err, code
  end
  local st = fs.stat(path)
  return text, st and st.mtime
end

-- The path a person can open for release id (messages, run_finished).
function Store:location(id)
  return run_dir(self, id) .. "/record.json"
end

-- list(labels) -> { { id = }, ... } | nil, err: every release (unsorted),
-- or with labels.status == "running" those marked running.
function Store:list(labels)
  local dir = self.dir .. "/runs"
  if not fs.exists(dir) then return {} end
  local names, err, code = fs.list(dir)
  if not names then return nil, err, code end
  local only_running = labels and labels.status == "running"
  local out = {}
  for _, n in ipairs(names) do
    local d = dir .. "/" .. n
    if only_running then
      if fs.exists(d .. "/running") then out[#out + 1] = { id = n } end
    -- (a run whose release is in the swarm leaves its timeline here alone)
    elseif fs.exists(d .. "/record.json") or not fs.exists(d .. "/timeline.svg") then
      out[#out + 1] = { id = n }
    end
  end
  return out
end

function Store:remove(id)
  return fs.remove(run_dir(self, id), { recursive = true })
end

-- append(id, text): lines for the release's history, durable on return.
function Store:append(id, text)
  local dir = run_dir(self, id)
  local ok, err, code = fs.mkdir(dir)
  if not ok then return nil, err, code end
  return with_reserve(self, id, function() return fs.append(dir .. "/events.ndjson", text, { sync = true }) end)
end

-- events(id) -> the history's text | nil, err
function Store:events(id)
  return fs.read(run_dir(self, id) .. "/events.ndjson")
end

-- reserve(id, bytes): write (not just allocate) that many bytes, so that
-- a disk without room says so now (the file system takes the blocks when
-- the data is written, not when it reaches the disk: no fsync needed);
-- unreserve gives them back.
function Store:reserve(id, bytes)
  local dir = run_dir(self, id)
  local ok, err, code = fs.mkdir(dir)
  if not ok then return nil, err, code end
  local block = ("\0"):rep(65536)        -- (rep of one byte would copy byte by byte)
  ok, err, code = fs.write(dir .. "/reserve", block:rep(bytes // 65536) .. block:sub(1, bytes % 65536))
  if not ok then fs.remove(dir .. "/reserve") end
  return ok, err, code
end

function Store:unreserve(id)
  local path = run_dir(self, id) .. "/reserve"
  if not fs.exists(path) then return false end
  return fs.remove(path) == true
end

---------------------------------------------------------------- claims

local function claim_path(self, name) return self.dir .. "/locks/" .. name end

-- claim(name, text) -> entry | nil, "exists" | nil, err: create the entry
-- unless it exists, atomically. (Not fsync'd: a lock only matters while
-- its holder lives, and a machine that crashed took its holder with it.)
function Store:claim(name, text)
  local ok, err, code = fs.mkdir(self.dir .. "/locks")
  if not ok then return nil, err, code end
  local path = claim_path(self, name)
  ok, err, code = fs.write(path, text, { exclusive = true })
  if not ok then
    if code == "EEXIST" then return nil, "exists" end
    if code ~= "EACCES" and code ~= "EROFS" then fs.remove(path) end   -- ours, half written (a full disk)
    return nil, err, code
  end
  return self:peek(name)
end

-- peek(name) -> entry | nil (absent) | nil, err
-- entry = { name, text, id (what identifies this very entry), written_at }
function Store:peek(name)
  local path = claim_path(self, name)
  local text, err, code = fs.read(path)
  if text == nil then
    if code == "ENOENT" then return nil end
    return nil, err, code
  end
  local st = fs.stat(path)
  return { name = name, text = text, id = text, written_at = st and st.mtime or self:now() }
end

-- claims(prefix) -> { entry... } whose names start with prefix.
function Store:claims(prefix)
  local dir = self.dir .. "/locks"
  if not fs.exists(dir) then return {} end
  local names, err, code = fs.list(dir)
  if not names then return nil, err, code end
  local out = {}
  for _, n in ipairs(names) do
    if n:sub(1, #prefix) == prefix and n:sub(1, 1) ~= "." and not n:match("%.dropping$") then
      local e = self:peek(n)
      if e then out[#out + 1] = e end
    end
  end
  return out
end

-- renew(entry) -> entry (with the new written_at) | nil, "gone": rewrite
-- it if it is still the same entry and nobody is removing it. (Between
-- that check and the rename, a process that found the lease expired could
-- remove it and create another; the heartbeat renews a lease long before
-- it expires, so that takes a holder stalled for most of its lease.)
function Store:renew(entry)
  local path = claim_path(self, entry.name)
  if fs.read(path) ~= entry.id or fs.exists(path .. ".dropping") then return nil, "gone" end
  local ok, err, code = fs.write_atomic(path, entry.text)
  if not ok then return nil, err, code end
  local renewed = self:peek(entry.name)
  if not renewed then return nil, "gone" end
  return renewed
end

-- drop(entry) -> true | nil, "gone" | nil, "busy": remove the entry if it
-- is still this one. One process at a time removes a name (it holds the
-- `.dropping` marker, created with O_EXCL), so two that found the same
-- lease expired cannot both remove it and then remove each other's.
function Store:drop(entry)
  local path = claim_path(self, entry.name)
  local marker = path .. ".dropping"
  local ok, err, code = fs.write(marker, "", { exclusive = true })
  if not ok then
    if code ~= "EEXIST" then return nil, err, code end
    local st = fs.stat(marker)
    if st and self:now() - st.mtime > STALE_MARKER_S then fs.remove(marker) end
    return nil, "busy"
  end
  local result, why = true, nil
  if fs.read(path) ~= entry.id then
    result, why = nil, "gone"
  else
    ok, err, code = fs.remove(path)
    if not ok and code ~= "ENOENT" then result, why = nil, err end
  end
  fs.remove(marker)
  return result, why
end

return M
