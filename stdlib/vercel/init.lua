-- slipway.vercel: deploy a directory to Vercel, promote, roll back.
--
--   vercel.deploy { dir = "frontend", project = "web", production = true }
--     -> { id, url, readyState, inspector_url, alias, production, previous,
--          files, uploaded, uploaded_bytes, change }
--   vercel.promote { project = "web", deployment = "dpl_..." } -> { status, previous, change }
--   vercel.rollback { project = "web", to = "dpl_..." } -> { status, previous, change }
--
-- Options every function takes: team (a team id "team_..." or its slug;
-- default $VERCEL_TEAM_ID), token (a slipway Secret or a string; default
-- the secret $VERCEL_TOKEN), timeout (how long to wait for the deployment
-- or the job; default 30m for deploy, 3m otherwise). deploy also takes
-- env, build_env and meta (string maps), archive = "tgz" (send one
-- archive instead of the files), project_settings (for a project's first
-- deployment; without it Vercel detects the framework).
--
-- deploy walks dir as the Vercel CLI does (.vercelignore, and never .git,
-- .vercel, node_modules...: slipway.vercel.files), hashes every file in C
-- on the thread pool, creates the deployment and uploads exactly the files
-- the API says it lacks (50 at a time, streamed from disk), then follows it
-- until READY, each state a line of the task's output. A production deploy
-- records the deployment that served production before it
-- (context.add_change, kind "vercel.production"): undoing the change (a
-- failed run does) rolls production back to it. When the project is in a
-- rolled-back state, Vercel stages production deployments instead of
-- serving them; deploy then promotes its own, since production was asked.
--
-- Errors name the caller's file:line, the request and the API's
-- error.code and message. The token goes in a request header only.
local fs = require("slipway.fs")
local json = require("slipway.json")
local secret = require("slipway.secret")
local caller = require("slipway.caller")
local context = require("slipway.context")
local duration = require("slipway.duration")
local words = require("slipway.words")
local api = require("slipway.vercel.api")
local files = require("slipway.vercel.files")
local wait = require("slipway.vercel.wait")

local M = {}

local DEPLOY_TIMEOUT_MS = 30 * 60 * 1000
local JOB_TIMEOUT_MS = 3 * 60 * 1000
local MAX_META = 100                   -- the API's limit (maxProperties)

---------------------------------------------------------------- options

local function raise(where, fname, fmt, ...)
  error(where .. fname .. ": " .. fmt:format(...), 0)
end

local function check_table(where, fname, opts, allowed)
  if type(opts) ~= "table" then raise(where, fname, "expected a table of options, got %s", type(opts)) end
  caller.check_options(fname, opts, allowed)
end

local function want_string(where, fname, opts, key, required)
  local v = opts[key]
  if v == nil then
    if required then raise(where, fname, "option '%s' is required", key) end
    return nil
  end
  if type(v) ~= "string" or v == "" then
    raise(where, fname, "option '%s' must be a non-empty string, got %s", key,
      type(v) == "string" and "an empty string" or type(v))
  end
  return v
end

local function want_map(where, fname, opts, key, limit)
  local v = opts[key]
  if v == nil then return nil end
  if type(v) ~= "table" then raise(where, fname, "option '%s' must be a table of name = string, got %s", key, type(v)) end
  local out, n = {}, 0
  for k, val in pairs(v) do
    if type(k) ~= "string" then raise(where, fname, "option '%s' must map names to strings, got a %s key", key, type(k)) end
    if type(val) == "number" then val = tostring(val) end
    if type(val) ~= "string" then
      raise(where, fname, "option '%s': %s must be a string, got %s", key, k,
        secret.is_secret(val) and "a Secret (a deployment's env is not secret: use Vercel's project environment variables)" or type(val))
    end
    out[k] = val
    n = n + 1
  end
  if limit and n > limit then raise(where, fname, "option '%s' has %d entries; Vercel takes at most %d", key, n, limit) end
  return json.object(out)
end

local function want_duration(where, fname, opts, key, default)
  local v = opts[key]
  if v == nil then return default end
  local ms, why = duration.parse(v)
  if ms == nil then raise(where, fname, "option '%s': %s", key, tostring(why)) end
  return ms
end

local function want_token(where, fname, opts)
  local t = opts.token
  if t == nil then
    local v = os.getenv("VERCEL_TOKEN")
    if v == nil or v == "" then
      raise(where, fname, "no token: set VERCEL_TOKEN or pass token = secret(\"VERCEL_TOKEN\")")
    end
    if #v < 4 then raise(where, fname, "VERCEL_TOKEN is too short to be a token") end
    return secret.new(v, "VERCEL_TOKEN")
  end
  if secret.is_secret(t) then return t end
  if type(t) == "string" then
    if #t < 4 then raise(where, fname, "option 'token' is too short to be a token") end
    return secret.new(t, "vercel token")      -- so that the masker knows it
  end
  raise(where, fname, "option 'token' must be a Secret or a string, got %s", type(t))
end

local function team_of(where, fname, opts)
  local team = want_string(where, fname, opts, "team")
  if team == nil then
    local env = os.getenv("VERCEL_TEAM_ID")
    if env and env ~= "" then team = env end
  end
  return team
end

-- Run body; the module's own failures leave as their message (a string
-- naming the caller's file:line), everything else as it is.
local function guarded(body)
  local ok, err = pcall(body)
  if ok then return err end
  if api.is_error(err) then error(err.message, 0) end
  error(err, 0)
end

local function say(line)
  context.output("stdout", "vercel: " .. line)
end

local function size_text(bytes)
  if bytes >= 1024 * 1024 then return ("%.1f MiB"):format(bytes / (1024 * 1024)) end
  if bytes >= 1024 then return ("%.1f KiB"):format(bytes / 1024) end
  return words.count(bytes, "byte")
end

local function segment(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

---------------------------------------------------------------- production

-- The deployment serving the project's production now: {id, url} or nil.
local function current_production(c, project)
  local status, p = c:call("GET", "/v9/projects/" .. segment(project), { ok = { [404] = true } })
  if status == 404 or type(p) ~= "table" then return nil end
  local prod = type(p.targets) == "table" and p.targets.production
  if type(prod) ~= "table" or type(prod.id) ~= "string" then return nil end
  return { id = prod.id, url = prod.url and ("https://" .. prod.url) or nil }
end

-- Ask for a promote or a rollback and follow its job. Returns "succeeded",
-- "skipped" or "queued" (a promote behind an active rolling release).
local function move_production(c, kind, project, id, timeout_ms)
  local path
  if kind == "rollback" then
    path = ("/v9/projects/%s/rollback/%s"):format(segment(project), segment(id))
  else
    path = ("/v10/projects/%s/promote/%s"):format(segment(project), segment(id))
  end
  local status = c:call("POST", path, { json = json.object({}) })
  if kind == "promote" and status == 202 then
    say(("promote of %s to %s queued: it starts when the active rolling release completes"):format(project, id))
    return "queued"
  end
  local job = wait.alias_job(c, segment(project), id, kind, { timeout_ms = timeout_ms, say = say })
  return job.jobStatus
end

-- A deployment id from an id or a URL.
local function deployment_id(c, v)
  if v:match("^dpl_") then return v end
  local host = v:gsub("^https?://", ""):gsub("/.*$", "")
  local _, d = c:call("GET", "/v13/deployments/" .. segment(host))
  return d.id
end

-- Record that production moved from previous to now; undo moves it back.
local function record(kind, project, team, token, now, previous, how)
  local data = {
    project = project, team = team, deployment = now, previous = previous or json.null, via = kind,
  }
  local summary
  if previous then
    summary = ("production %s -> %s"):format(previous.id, now.id)
  else
    summary = ("production %s (the first: nothing to roll back to)"):format(now.id)
  end
  local change = { kind = "vercel.production", target = project, summary = summary, data = data,
                   restorer = "slipway.vercel" }
  if previous and previous.id ~= now.id then
    change.undo = function()
      local c = api.client({ fname = "vercel (undo)", token = token, team = team })
      guarded(function()
        say(("undo: %s production back to %s"):format(how, previous.id))
        move_production(c, how, project, previous.id, JOB_TIMEOUT_MS)
      end)
    end
  end
  return context.add_change(change)
end

---------------------------------------------------------------- deploy

local DEPLOY_OPTS = { "dir", "project", "team", "production", "env", "build_env", "meta", "token",
                      "archive", "project_settings", "timeout" }

-- Create the deployment; when the API lists files it does not have,
-- upload exactly those and ask again.
local function create(c, body, query, collected)
  local uploaded, bytes = 0, 0
  for _ = 1, 3 do
    local ok, status_or_err, d = pcall(c.call, c, "POST", "/v13/deployments", { json = body, query = query })
    if ok then return d, uploaded, bytes end
    local err = status_or_err
    if not (api.is_error(err) and err.code == "missing_files" and type(err.detail) == "table"
            and type(err.detail.missing) == "table") then
      error(err, 0)
    end
    local missing = err.detail.missing
    say(("uploading %s the API does not have yet"):format(words.count(#missing, "file")))
    local n, b = files.upload(c, collected, missing)
    uploaded, bytes = uploaded + n, bytes + b
  end
  api.fail(c:describe("POST", "/v13/deployments", "the API still lists missing files after three uploads"))
end

function M.deploy(opts)
  local fname = "vercel.deploy"
  local where = caller.where()
  check_table(where, fname, opts, DEPLOY_OPTS)
  local dir = want_string(where, fname, opts, "dir", true)
  local project = want_string(where, fname, opts, "project", true)
  local team = team_of(where, fname, opts)
  if opts.production ~= nil and type(opts.production) ~= "boolean" then
    raise(where, fname, "option 'production' must be a boolean, got %s", type(opts.production))
  end
  local production = opts.production == true
  local env = want_map(where, fname, opts, "env")
  local build_env = want_map(where, fname, opts, "build_env")
  local meta = want_map(where, fname, opts, "meta", MAX_META)
  local archive = opts.archive
  if archive ~= nil and archive ~= "tgz" then
    raise(where, fname, "option 'archive' must be \"tgz\", got %s", tostring(archive))
  end
  local settings = opts.project_settings
  if settings ~= nil and type(settings) ~= "table" then
    raise(where, fname, "option 'project_settings' must be a table, got %s", type(settings))
  end
  local timeout_ms = want_duration(where, fname, opts, "timeout", DEPLOY_TIMEOUT_MS)
  local token = want_token(where, fname, opts)

  return guarded(function()
    local c = api.client({ fname = fname, where = where, token = token, team = team })
    local tmp
    if archive then tmp = assert(fs.tempdir("slipway-vercel")) end
    local ok, result = pcall(function()
      local collected = files.collect(dir, { archive = archive, tmp = tmp }, function(msg)
        api.fail(where .. fname .. ": " .. msg)
      end)
      if #collected.list == 0 then
        api.fail(("%s%s: nothing to deploy in %s (every file is ignored)"):format(where, fname, dir))
      end
      say(("%s: %s, %s%s"):format(dir, words.count(collected.count, "file"), size_text(collected.bytes),
        archive and (", sent as " .. words.count(#collected.list, "archive part")) or ""))
      local previous = production and current_production(c, project) or nil
      local body = {
        name = project, project = project, files = json.array(collected.list),
        target = production and "production" or nil, meta = meta, env = env,
        build = build_env and { env = build_env } or nil, projectSettings = settings,
      }
      local query = settings == nil and { skipAutoDetectionConfirmation = "1" } or nil
      local d, uploaded, uploaded_bytes = create(c, body, query, collected)
      say(("created %s for %s: https://%s%s"):format(d.id, project, d.url,
        uploaded > 0 and (" (uploaded " .. words.count(uploaded, "file") .. ", " .. size_text(uploaded_bytes) .. ")")
          or " (every file was already uploaded)"))
      local now = { id = d.id, url = "https://" .. d.url }
      local waited_ok, waited = pcall(wait.deployment, c, d, { production = production, timeout_ms = timeout_ms, say = say })
      if not waited_ok then
        -- A failed build never served. One we stopped waiting for (a
        -- timeout, a cancelled run, the API out of reach) may yet become
        -- production, so it is recorded, with its undo.
        local failed_build = api.is_error(waited) and waited.deployment ~= nil and waited.code ~= "ETIMEDOUT"
        if production and not failed_build then record("deploy", project, team, token, now, previous, "rollback") end
        error(waited, 0)
      end
      d = waited
      if production and d.readySubstate == "STAGED" then
        say(("%s is rolled back to an earlier deployment, so Vercel staged %s; promoting it"):format(project, d.id))
        move_production(c, "promote", project, d.id, JOB_TIMEOUT_MS)
      end
      local change
      if production then change = record("deploy", project, team, token, now, previous, "rollback") end
      return {
        id = d.id, url = "https://" .. d.url, readyState = d.readyState,
        inspector_url = type(d.inspectorUrl) == "string" and d.inspectorUrl or nil,
        alias = type(d.alias) == "table" and d.alias or {}, production = production,
        previous = previous and previous.id or nil, files = collected.count, uploaded = uploaded,
        uploaded_bytes = uploaded_bytes, change = change,
      }
    end)
    if tmp then fs.remove(tmp, { recursive = true }) end
    if not ok then error(result, 0) end
    return result
  end)
end

---------------------------------------------------------------- promote, rollback

-- promote and rollback: point production at a deployment of the project
-- (target_key names it: an id or a URL) and follow the job.
local function move(kind, fname, opts, target_key)
  local where = caller.where()
  check_table(where, fname, opts, { "project", target_key, "team", "token", "timeout" })
  local project = want_string(where, fname, opts, "project", true)
  local target = want_string(where, fname, opts, target_key, true)
  local team = team_of(where, fname, opts)
  local timeout_ms = want_duration(where, fname, opts, "timeout", JOB_TIMEOUT_MS)
  local token = want_token(where, fname, opts)
  return guarded(function()
    local c = api.client({ fname = fname, where = where, token = token, team = team })
    local id = deployment_id(c, target)
    local previous = current_production(c, project)
    local status = move_production(c, kind, project, id, timeout_ms)
    local change
    if status == "succeeded" then
      -- undoing a rollback promotes what served before it, and the other way round
      change = record(kind, project, team, token, { id = id }, previous,
        kind == "rollback" and "promote" or "rollback")
    end
    return { status = status, previous = previous and previous.id or nil, change = change }
  end)
end

function M.promote(opts)
  return move("promote", "vercel.promote", opts, "deployment")
end

function M.rollback(opts)
  return move("rollback", "vercel.rollback", opts, "to")
end

---------------------------------------------------------------- restore

-- The deployment a recorded vercel.production change put in production.
local function recorded(fname, data)
  local d = type(data) == "table" and data.deployment
  if type(d) ~= "table" or type(d.id) ~= "string" or type(data.project) ~= "string" then
    error(caller.where() .. fname .. ": expects the data of a recorded vercel.production change (project, deployment)", 0)
  end
  return d.id
end

-- What restore(data) would do: { { name = project, action = "unchanged" |
-- "rollback", difference } }. opts: token, timeout (as for rollback).
function M.restore_diff(data, opts)
  local fname = "vercel.restore_diff"
  local id = recorded(fname, data)
  local where = caller.where()
  local token = want_token(where, fname, opts or {})
  return guarded(function()
    local c = api.client({ fname = fname, where = where, token = token, team = data.team })
    local now = current_production(c, data.project)
    if now and now.id == id then return { { name = data.project, action = "unchanged" } } end
    return { { name = data.project, action = "rollback",
               difference = ("production: %s now, %s then"):format(now and now.id or "none", id) } }
  end)
end

-- Production back to the deployment a recorded change put there (an
-- instant rollback, recorded like vercel.rollback); nothing when it is
-- serving already.
function M.restore(data, opts)
  local id = recorded("vercel.restore", data)
  opts = opts or {}
  local rows = M.restore_diff(data, opts)
  if rows[1].action == "unchanged" then
    say(("%s: production is %s already"):format(data.project, id))
    return { summary = "unchanged" }
  end
  local r = M.rollback({ project = data.project, team = data.team, to = id, token = opts.token, timeout = opts.timeout })
  return { summary = "production " .. id, status = r.status, change = r.change }
end

return M
