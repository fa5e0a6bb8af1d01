-- HTTP/1.1 for the stand-in Vercel API: requests read off the connections
-- of tests/fakes/vercel_tcp.c, one task per connection, kept alive between
-- requests. Enough of RFC 9112 for curl and Node's fetch (undici):
-- Content-Length and chunked bodies, keep-alive, "Connection: close".
--
--   local server = require("fakes.vercel_http").serve(tcp, port, handler)
--   handler(req) -> res
--     req = { method, target, path, query = {k = v}, headers = {lower = v}, body }
--     res = { status, headers = {Name = v}, body } | { reset = true } (RST,
--           no answer) | { close = true } (FIN, no answer)
--   server.port, server:close()
local task = require("slipway.task")

local M = {}

local MAX_HEAD = 64 * 1024
local MAX_BODY = 512 * 1024 * 1024

local REASONS = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content", [400] = "Bad Request",
  [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [413] = "Payload Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable",
}

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local t = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    t[unescape(k)] = unescape(v)
  end
  return t
end

-- A buffered reader over one connection.
local Reader = {}
Reader.__index = Reader

function Reader:fill()
  local chunk, err = self.conn:read()
  if chunk == nil then return nil, err or "eof" end
  self.buf = self.buf .. chunk
  return true
end

function Reader:until_marker(marker, limit)
  while true do
    local i = self.buf:find(marker, 1, true)
    if i then
      local out = self.buf:sub(1, i - 1)
      self.buf = self.buf:sub(i + #marker)
      return out
    end
    if #self.buf > limit then return nil, "too large" end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

function Reader:bytes(n)
  local parts, have = {}, 0
  while have < n do
    if #self.buf == 0 then
      local ok, err = self:fill()
      if not ok then return nil, err end
    end
    local take = math.min(n - have, #self.buf)
    parts[#parts + 1] = self.buf:sub(1, take)
    self.buf = self.buf:sub(take + 1)
    have = have + take
  end
  return table.concat(parts)
end

local function read_request(r)
  local head, err = r:until_marker("\r\n\r\n", MAX_HEAD)
  if head == nil then return nil, err end
  local line, rest = head:match("^([^\r\n]*)\r?\n?(.*)$")
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if method == nil then return nil, "bad request line: " .. line end
  local headers = {}
  for hl in rest:gmatch("[^\r\n]+") do
    local name, value = hl:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
  local body = ""
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts, total = {}, 0
    while true do
      local size_line, e = r:until_marker("\r\n", 1024)
      if size_line == nil then return nil, e end
      local size = tonumber(size_line:match("^%x+"), 16)
      if size == nil then return nil, "bad chunk size" end
      if size == 0 then
        local _, e2 = r:until_marker("\r\n", MAX_HEAD)   -- trailers, then the blank line
        if e2 then return nil, e2 end
        break
      end
      total = total + size
      if total > MAX_BODY then return nil, "body too large" end
      local data, e3 = r:bytes(size)
      if data == nil then return nil, e3 end
      parts[#parts + 1] = data
      local _, e4 = r:bytes(2)
      if e4 then return nil, e4 end
    end
    body = table.concat(parts)
  elseif headers["content-length"] then
    local n = tonumber(headers["content-length"])
    if n == nil or n < 0 or n > MAX_BODY then return nil, "bad content-length" end
    local data, e = r:bytes(n)
    if data == nil then return nil, e end
    body = data
  end
  local path, q = target:match("^([^?]*)%??(.*)$")
  return {
    method = method, target = target, path = path, query = parse_query(q), headers = headers,
    body = body, version = version,
  }
end

local function write_response(conn, res, keep)
  local body = res.body or ""
  local lines = { ("HTTP/1.1 %d %s"):format(res.status, REASONS[res.status] or "Status") }
  local has_type = false
  for k, v in pairs(res.headers or {}) do
    if k:lower() == "content-type" then has_type = true end
    lines[#lines + 1] = k .. ": " .. v
  end
  if not has_type and #body > 0 then lines[#lines + 1] = "Content-Type: application/json; charset=utf-8" end
  lines[#lines + 1] = "Content-Length: " .. #body
  lines[#lines + 1] = "Connection: " .. (keep and "keep-alive" or "close")
  conn:write(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
end

local function serve_connection(conn, handler)
  local r = setmetatable({ conn = conn, buf = "" }, Reader)
  while true do
    local req = read_request(r)
    if req == nil then conn:close(); return end
    local ok, res = pcall(handler, req)
    if not ok then
      io.stderr:write("vercel stand-in: handler error: ", tostring(res), "\n")
      res = { status = 500, body = '{"error":{"code":"internal_server_error","message":"An unexpected internal error occurred"}}' }
    end
    if res.reset then conn:reset(); return end
    if res.close then conn:close(); return end
    local keep = (req.headers.connection or ""):lower() ~= "close"
    write_response(conn, res, keep)
    if not keep then conn:close(); return end
  end
end

function M.serve(tcp, port, handler)
  local listener, bound = tcp.listen("127.0.0.1", port)
  if listener == nil then error("vercel stand-in: cannot listen: " .. tostring(bound)) end
  local server = { port = bound }
  server.task = task.spawn(function()
    while true do
      local conn = listener:accept()
      task.spawn(serve_connection, conn, handler)
    end
  end)
  function server:close()
    self.task:cancel()
    listener:close()
  end
  return server
end

return M
