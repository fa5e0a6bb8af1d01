-- slipway.vercel.api: requests to the Vercel REST API, with one retry
-- policy and one way of reporting a failure (internal to slipway.vercel).
--
--   local c = api.client{ fname = "vercel.deploy", where = "deploy.lua:3: ",
--                         token = secret, team = "team_x" | "my-team" | nil }
--   c:call(method, path, { query, json, body, body_file, headers, timeout_ms,
--                          ok = {[404] = true} }) -> status, value, headers
--
-- The base URL is $VERCEL_API_URL (default https://api.vercel.com), so a
-- stand-in can take the real API's place. Every request carries the bearer
-- token (sent as a header only: never in a URL, argv or message) and the
-- team (teamId, or slug for a name). Policy:
--   * network errors and 5xx: retried, backing off 0.5s, 1s, 2s, 4s, 8s
--     (Vercel's own client gives up on the first 5xx of an upload);
--   * 429 (and 503 with Retry-After): wait Retry-After, in seconds or as an
--     HTTP date, clamped to 5-60s (5s when absent), as the official client
--     does; at most 6 attempts in all;
--   * any other 4xx: fails at once, with the API's error.code and message.
-- A failure raises a slipway.vercel.Error (error.message is the text:
-- "deploy.lua:3: vercel.deploy: POST /v13/deployments: 400 bad_request:
-- Invalid request: ..."; error.code and error.status the API's).
local http = require("slipway.http")
local json = require("slipway.json")
local task = require("slipway.task")
local secret = require("slipway.secret")
local context = require("slipway.context")
local duration = require("slipway.duration")

local M = {}

M.DEFAULT_URL = "https://api.vercel.com"
M.ATTEMPTS = 6
M.REQUEST_TIMEOUT_MS = 30000
M.BACKOFF_MS = { 500, 1000, 2000, 4000, 8000 }
local RETRY_AFTER_MIN_MS, RETRY_AFTER_MAX_MS, RETRY_AFTER_DEFAULT_MS = 5000, 60000, 5000

-- The error every failure of the module raises: a table, so that it goes
-- through parallel.map and task joins as it is; tostring gives the text.
local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end
M.Error = Error

function M.fail(message, fields)
  local e = setmetatable({ message = message }, Error)
  for k, v in pairs(fields or {}) do e[k] = v end
  error(e, 0)
end

function M.is_error(v)
  return getmetatable(v) == Error
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Seconds since the epoch of an HTTP date (RFC 9110 IMF-fixdate, and the
-- obsolete RFC 850 and asctime forms), or nil.
local function http_date(s)
  local d, mon, y, h, mi, sec = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, h, mi, sec = s:match("^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then y = tonumber(y) + (tonumber(y) < 70 and 2000 or 1900) end
  end
  if not d then
    mon, d, h, mi, sec, y = s:match("^%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  local m = mon and MONTHS[mon]
  if not m then return nil end
  y, d, h, mi, sec = tonumber(y), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  -- days from the civil date (Howard Hinnant's algorithm), UTC
  local yy = m <= 2 and y - 1 or y
  local era = (yy >= 0 and yy or yy - 399) // 400
  local yoe = yy - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + sec
end
M._http_date = http_date

-- How long to wait before retrying an answer with this Retry-After value
-- (nil when there is none): seconds or an HTTP date, clamped to 5-60s.
function M.retry_after_ms(value, now_s)
  local ms
  if value ~= nil then
    local secs = tonumber(value)
    if secs then
      ms = secs * 1000
    else
      local at = http_date(value:match("^%s*(.-)%s*$"))
      if at then ms = (at - (now_s or os.time())) * 1000 end
    end
  end
  ms = ms or RETRY_AFTER_DEFAULT_MS
  return math.min(RETRY_AFTER_MAX_MS, math.max(RETRY_AFTER_MIN_MS, ms))
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local Client = {}
Client.__index = Client

function M.client(o)
  local base = os.getenv("VERCEL_API_URL")
  if base == nil or base == "" then base = M.DEFAULT_URL end
  local c = setmetatable({
    fname = o.fname, where = o.where or "", team = o.team, base = base:gsub("/+$", ""),
    requests = 0,
  }, Client)
  -- The header is built once; the text lives only in this table, which
  -- nothing prints (and the masker knows the value: it is a Secret).
  c.headers = { Authorization = "Bearer " .. secret.reveal(o.token), Accept = "application/json" }
  return c
end

function Client:url(path, query)
  local parts = {}
  if self.team then
    if self.team:match("^team_") then parts[1] = "teamId=" .. escape(self.team)
    else parts[1] = "slug=" .. escape(self.team) end
  end
  local keys = {}
  for k in pairs(query or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = escape(k) .. "=" .. escape(query[k]) end
  return self.base .. path .. (#parts > 0 and ("?" .. table.concat(parts, "&")) or "")
end

-- The text of a failure: who, which request, what the API said.
function Client:describe(method, path, text)
  return ("%s%s: %s %s: %s"):format(self.where, self.fname, method, path, text)
end

local function say(line)
  context.output("stdout", "vercel: " .. line)
end

-- The API's own words for a failed answer: "code: message", and the code.
local function api_words(res)
  local body = res.body and json.decode(res.body)
  local e = type(body) == "table" and (body.error or body.err)
  if type(e) == "table" and (e.code or e.message) then
    local code = e.code and tostring(e.code) or nil
    local text = e.message and tostring(e.message) or ""
    return (code and (code .. ": ") or "") .. text, code, e
  end
  local snippet = (res.body or ""):gsub("%s+", " "):sub(1, 200)
  return snippet ~= "" and snippet or "no error details", nil, nil
end

local NETWORK = { ECONNREFUSED = true, ECONNRESET = true, ETIMEDOUT = true, EDNS = true, EHTTP = true }

function Client:call(method, path, o)
  o = o or {}
  local headers = {}
  for k, v in pairs(self.headers) do headers[k] = v end
  for k, v in pairs(o.headers or {}) do headers[k] = v end
  local body = o.body
  if o.json ~= nil then
    body = json.encode(o.json)
    headers["Content-Type"] = "application/json"
  end
  local request = {
    url = self:url(path, o.query), method = method, headers = headers, body = body,
    body_file = o.body_file, timeout = (o.timeout_ms or M.REQUEST_TIMEOUT_MS) / 1000,
    connect_timeout = 10, max_body = 16 * 1024 * 1024,
  }
  local last
  for attempt = 1, M.ATTEMPTS do
    self.requests = self.requests + 1
    local res, err, code = http.request(request)
    local wait_ms
    if res == nil then
      if not NETWORK[code] then M.fail(self:describe(method, path, err), { code = code }) end
      last = { text = err, code = code }
      wait_ms = M.BACKOFF_MS[attempt]
    elseif res.status < 400 or (o.ok and o.ok[res.status]) then
      local value = nil
      if res.body and res.body ~= "" then
        local decoded, jerr = json.decode(res.body)
        if jerr and not (o.ok and o.ok[res.status]) then
          M.fail(self:describe(method, path, ("%d: the answer is not JSON: %s"):format(res.status, jerr)))
        end
        value = decoded
      end
      return res.status, value, res.headers
    else
      local words, api_code, detail = api_words(res)
      last = { text = ("%d %s"):format(res.status, words), code = api_code, status = res.status, detail = detail }
      if res.status == 429 or (res.status == 503 and res.headers["retry-after"]) then
        wait_ms = M.retry_after_ms(res.headers["retry-after"])
      elseif res.status >= 500 then
        wait_ms = M.BACKOFF_MS[attempt]
      else
        M.fail(self:describe(method, path, last.text),
          { code = api_code, status = res.status, detail = detail })
      end
    end
    if attempt == M.ATTEMPTS then break end
    say(("%s %s: %s; retrying in %s (attempt %d of %d)"):format(method, path, last.text,
      duration.format(wait_ms), attempt + 1, M.ATTEMPTS))
    -- a little jitter, so that many uploads do not come back at once
    task.sleep((wait_ms + math.random(0, math.floor(wait_ms / 10))) / 1000)
  end
  M.fail(self:describe(method, path, ("%s (gave up after %d attempts)"):format(last.text, M.ATTEMPTS)),
    { code = last.code, status = last.status, detail = last.detail })
end

return M
