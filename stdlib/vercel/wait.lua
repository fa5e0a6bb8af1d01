-- slipway.vercel.wait: following a deployment until it is ready, and a
-- promote or rollback job until it is done (internal to slipway.vercel).
--
--   wait.deployment(client, deployment, { production, timeout_ms, say }) -> deployment
--   wait.alias_job(client, project, deployment_id, kind, { timeout_ms, say }) -> job
--
-- A deployment is polled at Vercel's own pace (packages/client/src/utils/
-- get-polling-delay.ts: every second for 15s, then every 5s up to a
-- minute, 15s up to five minutes, 30s after that); each new state is a
-- line of the task's output. READY is done (for production: once the
-- production alias is assigned); ERROR, anything ending in _ERROR and
-- CANCELED fail with the API's message and the tail of the build log.
-- A job (GET /v9/projects/{id} -> lastAliasRequest) is polled every 250ms
-- as the CLI does, until it names the deployment and has succeeded.
local json = require("slipway.json")
local task = require("slipway.task")
local duration = require("slipway.duration")
local api = require("slipway.vercel.api")

local M = {}

M.LOG_TAIL = 20
local JOB_POLL_MS = 250

function M.polling_delay_ms(elapsed_ms)
  if elapsed_ms <= 15000 then return 1000 end
  if elapsed_ms <= 60000 then return 5000 end
  if elapsed_ms <= 300000 then return 15000 end
  return 30000
end

local function is_failed(state)
  return state == "ERROR" or state == "CANCELED" or (type(state) == "string" and state:match("_ERROR$") ~= nil)
end

local function present(v)
  return v ~= nil and v ~= json.null
end

-- The last lines of the build log, oldest first ({} when it cannot be had).
local function log_tail(c, id)
  local ok, _, events = pcall(c.call, c, "GET", "/v3/deployments/" .. id .. "/events",
    { query = { builds = 1, direction = "backward", limit = M.LOG_TAIL } })
  if not ok or type(events) ~= "table" then return {} end
  local lines = {}
  for i = #events, 1, -1 do
    local e = events[i]
    local text = type(e) == "table" and (e.text or (type(e.payload) == "table" and e.payload.text))
    if type(text) == "string" and text ~= "" then lines[#lines + 1] = text end
  end
  while #lines > M.LOG_TAIL do table.remove(lines, 1) end
  return lines
end

local function failure(c, d)
  local parts = { ("deployment %s is %s"):format(d.id, tostring(d.readyState)) }
  if present(d.errorCode) then parts[#parts + 1] = tostring(d.errorCode) end
  local text = table.concat(parts, ": ")
  if present(d.errorMessage) then text = text .. ": " .. tostring(d.errorMessage) end
  local lines = log_tail(c, d.id)
  if #lines > 0 then
    text = text .. "\nbuild log (last " .. #lines .. " lines):\n  " .. table.concat(lines, "\n  ")
  end
  api.fail(c:describe("GET", "/v13/deployments/" .. d.id, text),
    { code = present(d.errorCode) and d.errorCode or d.readyState, deployment = d })
end

function M.deployment(c, d, o)
  local start = task.now()
  local shown
  while true do
    local state = d.readyState
    local note = state
    if state == "READY" and o.production and not d.aliasAssigned and d.readySubstate ~= "STAGED" then
      note = "READY, assigning the production alias"
    end
    if note ~= shown then
      o.say(("%s %s"):format(d.id, note))
      shown = note
    end
    if present(d.aliasError) then
      local e = d.aliasError
      api.fail(c:describe("GET", "/v13/deployments/" .. d.id, ("alias error: %s: %s"):format(
        tostring(e.code), tostring(e.message))), { code = e.code, deployment = d })
    end
    -- a production deployment Vercel staged (the project is rolled back)
    -- gets no production alias: the caller decides what to do with it
    if state == "READY" and (not o.production or d.aliasAssigned or d.readySubstate == "STAGED") then return d end
    if is_failed(state) then failure(c, d) end
    local elapsed = task.now() - start
    if elapsed >= o.timeout_ms then
      api.fail(c:describe("GET", "/v13/deployments/" .. d.id, ("still %s after %s"):format(
        tostring(state), duration.format(o.timeout_ms))), { code = "ETIMEDOUT", deployment = d })
    end
    local delay = math.min(M.polling_delay_ms(elapsed), o.timeout_ms - elapsed)
    task.sleep(delay / 1000)
    local _, value = c:call("GET", "/v13/deployments/" .. d.id)
    d = value
  end
end

function M.alias_job(c, project, id, kind, o)
  local start = task.now()
  local shown
  local path = "/v9/projects/" .. project
  while true do
    local _, p = c:call("GET", path)
    local job = type(p) == "table" and p.lastAliasRequest
    if present(job) and job.toDeploymentId == id then
      if job.jobStatus ~= shown then
        o.say(("%s of %s to %s: %s"):format(kind, project, id, tostring(job.jobStatus)))
        shown = job.jobStatus
      end
      if job.jobStatus == "succeeded" or job.jobStatus == "skipped" then return job end
      if job.jobStatus == "failed" then
        api.fail(c:describe("GET", path, ("the %s to %s failed: not every alias moved"):format(kind, id)),
          { code = "failed" })
      end
    end
    if task.now() - start >= o.timeout_ms then
      api.fail(c:describe("GET", path, ("the %s to %s did not finish within %s (last status: %s)"):format(
        kind, id, duration.format(o.timeout_ms), tostring(shown or "not started"))), { code = "ETIMEDOUT" })
    end
    task.sleep(JOB_POLL_MS / 1000)
  end
end

return M
