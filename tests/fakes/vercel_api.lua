-- The stand-in Vercel REST API the tests deploy to (the real one cannot be
-- reached here). Run by the slipway binary as a server:
--
--   slipway tests/fakes/vercel_api.lua [--tokens-file F] [--team team_x]
--       [--port N] [--port-file F] [--check-responses]
--       [--tcp-module SO]
--
-- The valid tokens come in a file, one a line, so that none is in argv.
-- Without --port-file it prints "listening on http://127.0.0.1:PORT". The
-- TCP module is compiled when not given (tests/fakes/vercel_standin.lua).
-- The document it checks requests against is the repository's copy of the
-- documented contract (tests/fakes/vercel-openapi.standin.json, made from
-- ../shared/specs/vercel by tools/vercel-standin-spec), so that it runs
-- on a fresh clone too (`make demo`).
--
-- It implements, from ../shared/specs/vercel/ (NOTES.md, the OpenAPI
-- documents) and the official client's behaviour (vercel/vercel
-- packages/client and packages/cli):
--   POST /v2/files                          upload one file (digest and size checked)
--   POST /v13/deployments                   create; `missing_files` with the SHAs it lacks
--   GET  /v13/deployments/{idOrUrl}         QUEUED -> BUILDING -> READY | ERROR, then aliasAssigned
--   GET  /v3/deployments/{idOrUrl}/events   build log lines
--   GET  /v9/projects/{idOrName}            targets.production, lastAliasRequest
--   POST /v10/projects/{id}/promote/{dpl}   201 (a job), or 202 queued (rolling release)
--   POST /v9/projects/{id}/rollback/{dpl}   (the CLI's; not in the document) a job
--                                           pending -> in-progress -> succeeded, one
--                                           step per read of the project
-- Every request is checked against the document's operation (parameters,
-- headers, JSON body) and rejected the way the real API rejects it: 400
-- bad_request with the problem, 401 without a valid bearer token, 403 when
-- --team is set and the request does not name it (teamId or slug), 404 for
-- an unknown route or resource. --check-responses checks its own answers
-- against the document too (a wrong stand-in fails loudly: 500).
--
-- Test control (no token; not Vercel's):
--   POST /_fake/config  {build_ms, queue_ms, alias_ms, fail_build, promote_queued}
--                       for deployments created from now on
--   POST /_fake/faults  [{match = "POST /v2/files", times = n, status, retry_after,
--                         retry_after_in (seconds from now, sent as an HTTP date),
--                         reset = true, delay_ms}]  the next matching requests
--   POST /_fake/blobs   [{sha, size}]  files already uploaded
--   GET  /_fake/log     every request: method, path, route, query, status, digest,
--                       auth, at/done_at, and the body of each deployment create
--   GET  /_fake/state   projects and deployments
--   POST /_fake/reset
local here = debug.getinfo(1, "S").source:sub(2)
local tests_dir = here:match("^(.*)/fakes/[^/]*$") or "tests"
package.path = tests_dir .. "/?.lua;" .. package.path

local json = require("slipway.json")
local hash = require("slipway.hash")
local task = require("slipway.task")
local fs = require("slipway.fs")
local http_server = require("fakes.vercel_http")
local openapi = require("fakes.vercel_openapi")

---------------------------------------------------------------- options

local opts = { tokens = {}, port = 0 }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--tokens-file" then
      for t in assert(fs.read(arg[i + 1])):gmatch("[^\n]+") do opts.tokens[t] = true end
      i = i + 1
    elseif a == "--team" then opts.team = arg[i + 1]; i = i + 1
    elseif a == "--port" then opts.port = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--port-file" then opts.port_file = arg[i + 1]; i = i + 1
    elseif a == "--tcp-module" then opts.tcp_module = arg[i + 1]; i = i + 1
    elseif a == "--check-responses" then opts.check_responses = true
    else error("vercel_api: unknown argument " .. a) end
    i = i + 1
  end
  local standin = require("fakes.vercel_standin")
  opts.tcp_module = opts.tcp_module or standin.tcp_module()
end

local doc = openapi.load(tests_dir .. "/fakes/vercel-openapi.standin.json")

-- Body properties the real API takes although the document leaves them
-- out: the official client sends them on every deployment
-- (packages/client/src/create-deployment.ts sets `version: 2`;
-- utils/index.ts prepareFiles gives each file its `mode`; the CLI's
-- deploy command sends `env` and `build.env`).
local EXTENSIONS = {
  body = {
    version = { type = "number", enum = { 2 } },
    env = { type = "object", additionalProperties = { type = "string" } },
    build = { type = "object", additionalProperties = false,
              properties = { env = { type = "object", additionalProperties = { type = "string" } } } },
  },
  file_item = { mode = { type = "number" } },
}

---------------------------------------------------------------- state

local wall0 = os.time() * 1000 - task.now()
local function now() return math.floor(wall0 + task.now()) end

local ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local function random_id(prefix, n)
  local hex = hash.random_hex(n)
  local out = {}
  for i = 1, n do
    local b = tonumber(hex:sub(2 * i - 1, 2 * i), 16) % #ALNUM + 1
    out[i] = ALNUM:sub(b, b)
  end
  return prefix .. table.concat(out)
end

local DEFAULT_CONFIG = { queue_ms = 50, build_ms = 300, alias_ms = 100, fail_build = false, promote_queued = false }
local S

local function reset()
  S = {
    projects = {}, deployments = {}, order = {}, blobs = {}, log = {}, faults = {},
    config = {},
  }
  for k, v in pairs(DEFAULT_CONFIG) do S.config[k] = v end
end
reset()

local TEAM_SLUG = "slipway-tests"
local USER = { uid = "usr_standin0000000000000001", username = "standin", email = "standin@example.com" }

local function find_project(id_or_name)
  for _, p in pairs(S.projects) do
    if p.id == id_or_name or p.name == id_or_name then return p end
  end
  return nil
end

local function find_deployment(id_or_url)
  local host = id_or_url:gsub("^https?://", ""):gsub("/.*$", "")
  for _, d in pairs(S.deployments) do
    if d.id == id_or_url or d.url == host then return d end
  end
  return nil
end

-- Move a deployment along its life, by the clock.
local function advance(d)
  local t = now()
  local age = t - d.createdAt
  if d.readyState == "QUEUED" and age >= d.cfg.queue_ms then
    d.readyState, d.buildingAt = "BUILDING", d.createdAt + d.cfg.queue_ms
  end
  if d.readyState == "BUILDING" and age >= d.cfg.build_ms then
    d.ready = d.createdAt + d.cfg.build_ms
    if d.cfg.fail_build then
      d.readyState = "ERROR"
      d.errorCode = "BUILD_FAILED"
      d.errorMessage = 'Command "npm run build" exited with 1'
    else
      d.readyState = "READY"
    end
  end
  if d.readyState == "READY" and not d.aliasAssigned and t >= d.ready + d.cfg.alias_ms then
    d.aliasAssigned = true
    local p = S.projects[d.projectId]
    d.alias = { ("%s-%s.vercel.app"):format(p.name, TEAM_SLUG) }
    if d.target == "production" then
      if p.rolled_back then
        d.readySubstate = "STAGED"       -- a rolled-back project is not auto-promoted
      else
        d.readySubstate = "PROMOTED"
        d.alias[#d.alias + 1] = p.name .. ".vercel.app"
        p.production = d.id
      end
    end
  end
end

local function advance_all()
  for _, id in ipairs(S.order) do advance(S.deployments[id]) end
end

---------------------------------------------------------------- rendering

local function deployment_object(d)
  local p = S.projects[d.projectId]
  local envs, build_envs = {}, {}
  for k in pairs(d.env or {}) do envs[#envs + 1] = k end
  for k in pairs(d.build_env or {}) do build_envs[#build_envs + 1] = k end
  table.sort(envs)
  table.sort(build_envs)
  local o = {
    id = d.id, url = d.url, name = d.name, projectId = d.projectId, ownerId = d.ownerId,
    readyState = d.readyState, status = d.readyState, createdAt = d.createdAt,
    bootedAt = d.createdAt, buildingAt = d.buildingAt or d.createdAt,
    aliasAssigned = d.aliasAssigned == true, alias = json.array(d.alias or {}),
    aliasError = json.null, buildSkipped = false, public = false, type = "LAMBDAS", version = 2,
    plan = "pro", createdIn = "sfo1", regions = json.array({ "iad1" }), routes = json.null,
    meta = json.object(d.meta or {}), creator = { uid = USER.uid, username = USER.username },
    inspectorUrl = ("https://vercel.com/%s/%s/%s"):format(TEAM_SLUG, p.name, d.id:gsub("^dpl_", "")),
    isInConcurrentBuildsQueue = false, isInSystemBuildsQueue = false,
    env = json.array(envs), build = { env = json.array(build_envs) },
    projectSettings = json.object(d.projectSettings or {}),
    target = d.target or json.null,
  }
  if d.ready then o.ready = d.ready end
  if d.readySubstate then o.readySubstate = d.readySubstate end
  if d.errorCode then o.errorCode, o.errorMessage = d.errorCode, d.errorMessage end
  return o
end

local function target_object(d)
  return {
    id = d.id, createdAt = d.createdAt, createdIn = "sfo1", creator = USER,
    deploymentHostname = d.url:gsub("%.vercel%.app$", ""), name = d.name, plan = "pro",
    private = false, readyState = d.readyState, type = "LAMBDAS", url = d.url, userId = USER.uid,
    target = d.target or json.null, aliasAssigned = d.aliasAssigned == true,
    alias = json.array(d.alias or {}), readySubstate = d.readySubstate,
  }
end

local function project_object(p)
  local o = {
    id = p.id, name = p.name, accountId = p.accountId, directoryListing = false,
    nodeVersion = "20.x", resourceConfig = { functionDefaultRegions = json.array({ "iad1" }) },
    defaultResourceConfig = { functionDefaultRegions = json.array({ "iad1" }) },
    targets = json.object({}), lastAliasRequest = json.null,
  }
  if p.job then                    -- a copy: the job moves on after this read
    o.lastAliasRequest = {}
    for k, v in pairs(p.job) do o.lastAliasRequest[k] = v end
  end
  if p.production then o.targets.production = target_object(S.deployments[p.production]) end
  return o
end

---------------------------------------------------------------- answers

local function answer(status, value, headers)
  return { status = status, body = json.encode(value), headers = headers }
end

local function api_error(status, code, message, extra)
  local e = { code = code, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return answer(status, { error = e })
end

local function bad_request(p)
  return api_error(400, "bad_request", "Invalid request: " .. p.message,
    { keyword = p.keyword, dataPath = p.dataPath, params = p.params })
end

-- Check the request against its operation; nil when it is fine.
local function check(op, params, req, ext)
  local p = doc:check_request(op, params, req, ext)
  if p then return bad_request(p) end
  return nil
end

---------------------------------------------------------------- routes

local routes = {}

routes["POST /v2/files"] = function(req, op, params)
  local bad = check(op, params, req)
  if bad then return bad end
  local digest = req.headers["x-vercel-digest"] or req.headers["x-now-digest"]
  if digest == nil then return api_error(400, "bad_request", "Missing `x-vercel-digest` header") end
  local size = tonumber(req.headers["x-now-size"] or req.headers["content-length"])
  if size ~= #req.body then return api_error(400, "bad_request", "File size is not valid") end
  if hash.sha1(req.body) ~= digest:lower() then return api_error(400, "bad_request", "Digest is not valid") end
  S.blobs[digest:lower()] = #req.body
  return answer(200, json.object({}))
end

local function new_project(name)
  local p = { id = random_id("prj_", 24), name = name, accountId = opts.team or USER.uid }
  S.projects[p.id] = p
  return p
end

routes["POST /v13/deployments"] = function(req, op, params)
  local bad = check(op, params, req, EXTENSIONS)
  if bad then return bad end
  local body = req.json
  -- Files the request names that were never uploaded, once each, in order.
  local missing, seen = {}, {}
  for _, f in ipairs(body.files or {}) do
    if f.sha and not S.blobs[f.sha] and not seen[f.sha] then
      seen[f.sha] = true
      missing[#missing + 1] = f.sha
    end
  end
  if #missing > 0 then
    return api_error(400, "missing_files", "Missing files", { missing = json.array(missing) })
  end
  local pname = body.project or body.name
  local p = find_project(pname)
  if p == nil then
    if body.projectSettings == nil and req.query.skipAutoDetectionConfirmation ~= "1" then
      return api_error(400, "missing_project_settings",
        "The `projectSettings` object is required for new projects, but is missing in the deployment payload",
        { framework = json.null })
    end
    p = new_project(body.project or body.name)
  end
  local d = {
    id = random_id("dpl_", 28), name = p.name, projectId = p.id, ownerId = p.accountId,
    target = body.target, meta = body.meta, env = body.env, build_env = body.build and body.build.env,
    projectSettings = body.projectSettings, createdAt = now(), readyState = "QUEUED",
    files = #(body.files or {}),
    cfg = {},
  }
  for k, v in pairs(S.config) do d.cfg[k] = v end
  d.url = ("%s-%s-%s.vercel.app"):format(p.name, random_id("", 9):lower(), TEAM_SLUG)
  S.deployments[d.id] = d
  S.order[#S.order + 1] = d.id
  advance(d)
  return answer(200, deployment_object(d))
end

routes["GET /v13/deployments/{idOrUrl}"] = function(req, op, params)
  local bad = check(op, params, req)
  if bad then return bad end
  local d = find_deployment(params.idOrUrl)
  if d == nil then return api_error(404, "not_found", "Deployment not found") end
  return answer(200, deployment_object(d))
end

routes["GET /v3/deployments/{idOrUrl}/events"] = function(req, op, params)
  local bad = check(op, params, req)
  if bad then return bad end
  local d = find_deployment(params.idOrUrl)
  if d == nil then return api_error(404, "not_found", "Deployment not found") end
  local texts = { "Cloning completed", "Running \"vercel build\"", "Installing dependencies...",
                  "Running \"npm run build\"" }
  if d.readyState == "ERROR" then
    texts[#texts + 1] = "src/App.tsx(3,8): error TS2307: Cannot find module './missing'"
    texts[#texts + 1] = "Error: Command \"npm run build\" exited with 1"
  elseif d.readyState == "READY" then
    texts[#texts + 1] = "Build Completed in /vercel/output"
  end
  local events = {}
  for i, text in ipairs(texts) do
    events[i] = {
      type = (i > 4 and d.readyState == "ERROR") and "stderr" or "stdout", created = d.createdAt + i,
      date = d.createdAt + i, deploymentId = d.id, id = ("%s-%d"):format(d.id, i), serial = tostring(i),
      text = text, info = { type = "build", name = "bld_standin" },
    }
  end
  local limit = tonumber(req.query.limit or "")
  if req.query.direction == "backward" then
    local rev = {}
    for i = #events, 1, -1 do rev[#rev + 1] = events[i] end
    events = rev
  end
  if limit and limit >= 0 then
    while #events > limit do table.remove(events) end
  end
  return answer(200, json.array(events))
end

-- A promote or rollback job: one step per read of the project.
local function advance_job(p)
  local job = p.job
  if job == nil or job.jobStatus == "succeeded" or job.jobStatus == "failed" then return end
  if job.jobStatus == "pending" then
    job.jobStatus = "in-progress"
  elseif job.jobStatus == "in-progress" then
    job.jobStatus = "succeeded"
    p.production = job.toDeploymentId
    p.rolled_back = job.type == "rollback"
  end
end

routes["GET /v9/projects/{idOrName}"] = function(req, op, params)
  local bad = check(op, params, req)
  if bad then return bad end
  local p = find_project(params.idOrName)
  if p == nil then return api_error(404, "not_found", "Project not found") end
  local o = project_object(p)     -- the job as it was, then one step on
  advance_job(p)
  return answer(200, o)
end

local function start_job(p, d, kind)
  p.job = {
    fromDeploymentId = p.production or "", toDeploymentId = d.id, jobStatus = "pending",
    requestedAt = now(), type = kind,
  }
end

local function job_target(params, kind)
  local p = find_project(params.projectId)
  if p == nil then return nil, api_error(404, "not_found", "Project not found") end
  local d = S.deployments[params.deploymentId]
  if d == nil or d.projectId ~= p.id then return nil, api_error(404, "not_found", "Deployment not found") end
  if d.readyState ~= "READY" then
    return nil, api_error(400, "deployment_not_ready", ("Cannot %s to a deployment that is not ready"):format(kind))
  end
  if d.target ~= "production" then
    return nil, api_error(400, "not_production",
      ("Cannot %s to a deployment that was not built for production"):format(kind))
  end
  return p, d
end

routes["POST /v10/projects/{projectId}/promote/{deploymentId}"] = function(req, op, params)
  local bad = check(op, params, req)
  if bad then return bad end
  local p, d = job_target(params, "promote")
  if p == nil then return d end
  if S.config.promote_queued then return { status = 202, body = "" } end
  start_job(p, d, "promote")
  return { status = 201, body = "" }
end

-- Not in the OpenAPI document: the CLI's `vercel rollback`
-- (packages/cli/src/commands/rollback/request-rollback.ts) posts an empty
-- JSON object here.
routes["POST /v9/projects/{projectId}/rollback/{deploymentId}"] = function(req, _op, params)
  for name in pairs(req.query) do
    if name ~= "teamId" and name ~= "slug" then
      return api_error(400, "bad_request", ("Invalid request: query should NOT have additional property `%s`"):format(name))
    end
  end
  local value = json.decode(req.body ~= "" and req.body or "null")
  if type(value) ~= "table" or (req.headers["content-type"] or ""):match("^application/json") == nil then
    return api_error(400, "bad_request", "Invalid request: the body must be a JSON object")
  end
  local p, d = job_target(params, "rollback")
  if p == nil then return d end
  start_job(p, d, "rollback")
  return answer(201, json.object({}))
end

local ROLLBACK_ROUTE = { template = "/v9/projects/{projectId}/rollback/{deploymentId}",
                         pattern = "^/v9/projects/([^/]+)/rollback/([^/]+)$" }

---------------------------------------------------------------- control

local control = {}

control["POST /_fake/config"] = function(req)
  for k, v in pairs(json.decode(req.body)) do
    if DEFAULT_CONFIG[k] == nil then return api_error(400, "bad_config", "unknown config " .. k) end
    S.config[k] = v
  end
  return answer(200, S.config)
end

control["POST /_fake/faults"] = function(req)
  for _, f in ipairs(json.decode(req.body)) do
    f.times = f.times or 1
    S.faults[#S.faults + 1] = f
  end
  return answer(200, json.object({}))
end

control["POST /_fake/blobs"] = function(req)
  for _, b in ipairs(json.decode(req.body)) do S.blobs[b.sha] = b.size end
  return answer(200, json.object({}))
end

control["GET /_fake/log"] = function() return answer(200, json.array(S.log)) end

control["GET /_fake/state"] = function()
  advance_all()
  local out = { projects = {}, deployments = {} }
  for _, p in pairs(S.projects) do
    out.projects[p.name] = { id = p.id, production = p.production or json.null, job = p.job or json.null,
                             rolled_back = p.rolled_back == true }
  end
  for _, id in ipairs(S.order) do
    local d = S.deployments[id]
    out.deployments[#out.deployments + 1] = {
      id = d.id, url = d.url, target = d.target or json.null, readyState = d.readyState,
      project = S.projects[d.projectId].name, files = d.files, meta = json.object(d.meta or {}),
    }
  end
  out.deployments = json.array(out.deployments)
  return answer(200, out)
end

control["POST /_fake/reset"] = function()
  reset()
  return answer(200, json.object({}))
end

---------------------------------------------------------------- dispatch

-- The HTTP date of t seconds from now (IMF-fixdate, RFC 9110).
local function http_date(seconds_from_now)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + seconds_from_now)
end

local function take_fault(key)
  for i, f in ipairs(S.faults) do
    local m = f.match
    if m == key or m == "*" or (m:sub(-1) == "*" and key:sub(1, #m - 1) == m:sub(1, -2)) then
      f.times = f.times - 1
      if f.times <= 0 then table.remove(S.faults, i) end
      return f
    end
  end
  return nil
end

local function auth_state(req)
  local h = req.headers.authorization
  if h == nil then return "missing" end
  local token = h:match("^Bearer (.+)$")
  if token and opts.tokens[token] then return "ok" end
  return "bad"
end

local function route_of(method, path)
  local op, params, template = doc:operation(method, path)
  if op then return template, op, params end
  local a, b = path:match(ROLLBACK_ROUTE.pattern)
  if a and method == "POST" then
    return ROLLBACK_ROUTE.template, {}, { projectId = a, deploymentId = b }
  end
  return nil
end

local function self_check(op, res, key)
  if not (opts.check_responses and op.responses and res.body and res.body ~= "") then return res end
  local spec = op.responses[tostring(res.status)]
  local content = spec and spec.content and spec.content["application/json"]
  if content == nil then return res end
  local value = json.decode(res.body)
  doc.loose_one_of = true
  local p = doc:check_value(content.schema, value, "")
  doc.loose_one_of = false
  if p then
    io.stderr:write(("vercel stand-in: its own answer to %s does not match the document: %s\n"):format(key, p.message))
    return api_error(500, "standin_response_invalid", key .. ": " .. p.message)
  end
  return res
end

local function handle(req)
  local ctl = control[req.method .. " " .. req.path]
  if ctl then return ctl(req) end
  local template, op, params = route_of(req.method, req.path)
  local key = req.method .. " " .. (template or req.path)
  local entry = {
    method = req.method, path = req.path, route = template or json.null, query = json.object(req.query),
    content_type = req.headers["content-type"], digest = req.headers["x-vercel-digest"] or req.headers["x-now-digest"],
    length = tonumber(req.headers["content-length"]), user_agent = req.headers["user-agent"],
    at = now(),
  }
  S.log[#S.log + 1] = entry
  local res
  local fault = take_fault(key)
  if fault and fault.delay_ms then task.sleep(fault.delay_ms / 1000) end
  entry.auth = auth_state(req)
  if fault and fault.reset then
    entry.status = "reset"
    return { reset = true }
  elseif fault and fault.status then
    local headers = {}
    if fault.retry_after then headers["Retry-After"] = tostring(fault.retry_after) end
    if fault.retry_after_in then headers["Retry-After"] = http_date(fault.retry_after_in) end
    local code = fault.status == 429 and "rate_limited" or "internal_server_error"
    local message = fault.status == 429 and "Rate limit exceeded" or "An unexpected internal error occurred"
    res = api_error(fault.status, fault.code or code, fault.message or message)
    res.headers = headers
  elseif template == nil then
    res = api_error(404, "not_found", "The requested API endpoint was not found")
  elseif entry.auth ~= "ok" then
    res = api_error(401, "forbidden", "Not authorized", { invalidToken = true })
  elseif opts.team and req.query.teamId ~= opts.team and req.query.slug ~= TEAM_SLUG then
    res = api_error(403, "forbidden", "You don't have permission to access this resource: the token belongs to "
      .. "a team and the request names none (teamId)")
  else
    local route = routes[key]
    if route == nil then
      res = api_error(405, "method_not_allowed", "Method not allowed")
    else
      advance_all()
      res = self_check(op, route(req, op, params), key)
    end
  end
  entry.status = res.status
  entry.done_at = now()
  if req.json and template == "/v13/deployments" then entry.body = req.json end
  return res
end

---------------------------------------------------------------- start

local tcp = assert(package.loadlib(opts.tcp_module, "luaopen_vercel_tcp"))()
local server = http_server.serve(tcp, opts.port, handle)
if opts.port_file then
  fs.write(opts.port_file .. ".tmp", tostring(server.port))
  os.rename(opts.port_file .. ".tmp", opts.port_file)
else
  print("listening on http://127.0.0.1:" .. server.port)
  io.stdout:flush()
end
server.task:join()
