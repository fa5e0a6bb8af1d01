-- slipway.compose.ports: short port syntax ("127.0.0.1:8080:80/udp",
-- "3000-3005", 443) to the long form, as docker/cli's stack loader does it
-- (go-connections nat.ParsePortSpec, then swarm's ConvertPortToPortConfig):
-- one entry per container port of a range, published ports expanded, the
-- host IP dropped with a warning, mode "ingress".
local M = {}

local function port_range(s)
  if s == "" then return nil end
  local a, b = s:match("^(%d+)%-(%d+)$")
  if not a then
    a = s:match("^%d+$")
    b = a
  end
  if not a then return nil end
  a, b = tonumber(a), tonumber(b)
  if a > 65535 or b > 65535 or b < a then return nil end
  return a, b
end
M.port_range = port_range

local function is_ip(s)
  if s:match("^%d+%.%d+%.%d+%.%d+$") then
    for part in s:gmatch("%d+") do
      if tonumber(part) > 255 or (#part > 1 and part:sub(1, 1) == "0") then return false end
    end
    return true
  end
  return s:find(":", 1, true) ~= nil and s:match("^[%x:.]+$") ~= nil
end

local function unspecified(ip)
  return ip == "0.0.0.0" or ip:match("^[0:]+$") ~= nil
end

-- parse(spec) -> list of {mode, target, published?, protocol}, warnings
--              | nil, "message"
function M.parse(spec)
  local parts = {}
  for p in (spec .. ":"):gmatch("(.-):") do parts[#parts + 1] = p end
  local n = #parts
  local ip, host, container
  container = parts[n]
  if n == 2 then host = parts[1]
  elseif n == 3 then ip, host = parts[1], parts[2]
  elseif n > 3 then
    ip = table.concat(parts, ":", 1, n - 2)
    host = parts[n - 1]
  end
  ip, host = ip or "", host or ""
  -- protocol
  local proto = "tcp"
  local slash = { }
  for p in (container .. "/"):gmatch("(.-)/") do slash[#slash + 1] = p end
  if container == "" or slash[1] == "" then
    container, proto = "", ""
  elseif #slash >= 2 and slash[2] ~= "" then
    container, proto = slash[1], slash[2]
  else
    container = slash[1]
  end
  local shown_ip = ip                         -- warnings show it as written ([::1])
  if ip:sub(1, 1) == "[" then
    local inner = ip:match("^%[(.*)%]$")
    if not inner then return nil, "invalid IP address " .. ip end
    ip = inner
  end
  if ip ~= "" and not is_ip(ip) then return nil, "invalid IP address: " .. ip end
  if container == "" then return nil, ("no port specified: %s<empty>"):format(spec) end
  local cstart, cend = port_range(container)
  if not cstart then return nil, "invalid containerPort: " .. container end
  local hstart, hend = 0, 0
  if host ~= "" then
    hstart, hend = port_range(host)
    if not hstart then return nil, "invalid hostPort: " .. host end
    if (cend - cstart) ~= (hend - hstart) and cend ~= cstart then
      return nil, ("invalid ranges specified for container and host Ports: %s and %s"):format(container, host)
    end
  end
  proto = proto:lower()
  if proto ~= "tcp" and proto ~= "udp" and proto ~= "sctp" then return nil, "invalid proto: " .. proto end
  -- one mapping per container port; keys sorted as strings ("10/tcp" < "9/tcp")
  local mappings = {}
  for i = 0, cend - cstart do
    local hp = host
    if host ~= "" then hp = tostring(hstart + i) end
    if cstart == cend and hstart ~= hend then hp = ("%s-%d"):format(hp, hend) end
    mappings[#mappings + 1] = { key = ("%d/%s"):format(cstart + i, proto), port = cstart + i, host = hp }
  end
  table.sort(mappings, function(a, b) return a.key < b.key end)
  local out, warnings = {}, {}
  for _, m in ipairs(mappings) do
    if ip ~= "" and is_ip(ip) and not unspecified(ip) then
      warnings[#warnings + 1] = ("ignoring IP-address (%s:%s:%s) service will listen on '0.0.0.0'")
        :format(shown_ip, m.host, m.key)
    end
    local a, b = port_range(m.host)
    if not a then
      if m.host ~= "" then
        return nil, ("invalid hostport binding (%s) for port (%d)"):format(m.host, m.port)
      end
      a, b = 0, 0
    end
    for p = a, b do
      out[#out + 1] = { mode = "ingress", target = m.port, published = p ~= 0 and p or nil, protocol = proto }
    end
  end
  return out, warnings
end

return M
