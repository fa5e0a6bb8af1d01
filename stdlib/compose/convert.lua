-- slipway.compose.convert: the value conversions docker/cli's compose loader
-- applies, written to give the same results: Go durations (parse and
-- print), byte sizes (go-units RAMInBytes), strconv.Atoi/ParseFloat, Go's
-- %v and %s of a value (fmt.Sprint, fmt.Sprintf), integers above 2^63-1
-- (go-yaml's uint64), strconv.Quote, shell-splitting of command strings
-- (google/shlex), and path joining/cleaning (path/filepath).
local yaml = require("slipway.yaml")

local M = {}
local NULL = yaml.null

---------------------------------------------------------------------------
-- Go's strconv.Quote: printable text as is, the rest escaped.

local QUOTE_ESC = {
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v", ["\\"] = "\\\\", ['"'] = '\\"',
}

function M.quote(s)
  local out = { '"' }
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      local ch = string.char(c)
      if QUOTE_ESC[ch] then out[#out + 1] = QUOTE_ESC[ch]
      elseif c < 0x20 or c == 0x7F then out[#out + 1] = ("\\x%02x"):format(c)
      else out[#out + 1] = ch end
      i = i + 1
    else
      local len = c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC0 and 2 or 1
      local seq = s:sub(i, i + len - 1)
      if len > 1 and utf8.len(seq) == 1 then
        out[#out + 1] = seq
        i = i + len
      else
        out[#out + 1] = ("\\x%02x"):format(c)
        i = i + 1
      end
    end
  end
  out[#out + 1] = '"'
  return table.concat(out)
end

---------------------------------------------------------------------------
-- Integers above 2^63-1, which go-yaml reads as a uint64 (slipway.yaml
-- gives a slipway.Uint64: tostring is its digits)

local function is_uint64(v)
  return getmetatable(v) == yaml.uint64_mt
end
M.is_uint64 = is_uint64

-- Go's int64(x) of one: the same bits, a negative number.
function M.uint64_bits(v)
  local n = 0
  for d in tostring(v):gmatch("%d") do n = n * 10 + (d:byte() - 48) end   -- wraps around
  return n
end

---------------------------------------------------------------------------
-- fmt.Sprint of a decoded YAML value

local function sprint(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "NaN" end
    if v == math.huge then return "+Inf" end
    if v == -math.huge then return "-Inf" end
    return yaml.format_float(v)
  end
  if v == nil or v == NULL then return "<nil>" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == yaml.array_mt or (#v > 0 and next(v, #v) == nil) then
      local parts = {}
      for i = 1, #v do parts[i] = sprint(v[i]) end
      return "[" .. table.concat(parts, " ") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = sprint(k) .. ":" .. sprint(v[k]) end
    return "map[" .. table.concat(parts, " ") .. "]"
  end
  return tostring(v)                          -- a uint64 too: its digits
end
M.sprint = sprint

-- fmt.Sprintf("%s", v): a string as it is, a number as Go marks a wrong
-- verb, "%!s(int=5)", "%!s(uint64=...)", "%!s(float64=1.5)".
function M.sprint_s(v)
  if type(v) == "string" then return v end
  local go_type = is_uint64(v) and "uint64" or math.type(v) == "integer" and "int"
    or math.type(v) == "float" and "float64" or type(v) == "boolean" and "bool" or nil
  if not go_type then return sprint(v) end
  return ("%%!s(%s=%s)"):format(go_type, sprint(v))
end

---------------------------------------------------------------------------
-- strconv.Atoi / ParseFloat / docker's boolean cast, with Go's messages

function M.atoi(s)
  local sign, digits = s:match("^([+-]?)(%d+)$")
  if not digits then
    return nil, ("strconv.Atoi: parsing %s: invalid syntax"):format(M.quote(s))
  end
  digits = digits:gsub("^0+(%d)", "%1")
  local limit = sign == "-" and "9223372036854775808" or "9223372036854775807"
  if #digits > #limit or (#digits == #limit and digits > limit) then
    return nil, ("strconv.Atoi: parsing %s: value out of range"):format(M.quote(s))
  end
  if sign == "-" and digits == "9223372036854775808" then return math.mininteger end
  local v = math.tointeger(tonumber(digits))
  return sign == "-" and -v or v
end

function M.parse_float(s)
  local lower = s:lower()
  local body = lower:gsub("^[+-]", "")
  if body == "inf" or body == "infinity" then return lower:sub(1, 1) == "-" and -math.huge or math.huge end
  if body == "nan" then return 0 / 0 end
  local ok = s:match("^[+-]?%d+%.?%d*$") or s:match("^[+-]?%.%d+$")
    or s:match("^[+-]?%d+%.?%d*[eE][+-]?%d+$") or s:match("^[+-]?%.%d+[eE][+-]?%d+$")
  local v = ok and tonumber(s)
  if not v then return nil, ("strconv.ParseFloat: parsing %s: invalid syntax"):format(M.quote(s)) end
  if v == math.huge or v == -math.huge then
    return nil, ("strconv.ParseFloat: parsing %s: value out of range"):format(M.quote(s))
  end
  return v + 0.0
end

local BOOLS = { y = true, yes = true, ["true"] = true, on = true, n = false, no = false, ["false"] = false, off = false }

function M.to_boolean(s)
  local b = BOOLS[s:lower()]
  if b == nil then return nil, "invalid boolean: " .. s end
  return b
end

---------------------------------------------------------------------------
-- Go durations (time.ParseDuration and Duration.String), in nanoseconds

local UNITS = {
  ns = 1, us = 1000, ["\u{b5}s"] = 1000, ["\u{3bc}s"] = 1000, ms = 1000000,
  s = 1000000000, m = 60000000000, h = 3600000000000,
}

function M.parse_duration(orig)
  local s = orig
  local neg = false
  local c = s:sub(1, 1)
  if c == "-" or c == "+" then neg = c == "-"; s = s:sub(2) end
  if s == "0" then return 0 end
  local bad = "time: invalid duration " .. M.quote(orig)
  if s == "" then return nil, bad end
  local total = 0
  while s ~= "" do
    if not s:match("^[%d.]") then return nil, bad end
    local int, frac = s:match("^(%d*)"), nil
    s = s:sub(#int + 1)
    if s:sub(1, 1) == "." then
      frac = s:match("^%.(%d*)")
      s = s:sub(#frac + 2)
    end
    if int == "" and (frac == nil or frac == "") then return nil, bad end
    local unit = s:match("^[^%d.]+")
    if not unit then return nil, "time: missing unit in duration " .. M.quote(orig) end
    s = s:sub(#unit + 1)
    local scale = UNITS[unit]
    if not scale then return nil, "time: unknown unit " .. M.quote(unit) .. " in duration " .. M.quote(orig) end
    local v = int == "" and 0 or math.tointeger(tonumber(int))
    if not v or v > math.maxinteger // scale then return nil, bad end
    v = v * scale
    if frac and frac ~= "" then                  -- as Go: f * (unit / 10^digits)
      frac = frac:sub(1, 18)
      v = v + math.floor(tonumber(frac) * (scale / 10.0 ^ #frac))
    end
    total = total + v
    if total < 0 then return nil, bad end
  end
  return neg and -total or total
end

local function frac_text(u, prec)
  -- u's last prec digits as a fraction with trailing zeros removed
  local digits = {}
  local print_ = false
  for _ = 1, prec do
    local d = u % 10
    print_ = print_ or d ~= 0
    if print_ then table.insert(digits, 1, tostring(d)) end
    u = u // 10
  end
  local f = #digits > 0 and ("." .. table.concat(digits)) or ""
  return f, u
end

function M.format_duration(ns)
  if ns == 0 then return "0s" end
  local neg = ns < 0
  local u = neg and -ns or ns
  local out
  if u < 1000000000 then
    local unit, prec
    if u < 1000 then unit, prec = "ns", 0
    elseif u < 1000000 then unit, prec = "\u{b5}s", 3
    else unit, prec = "ms", 6 end
    local f, whole = frac_text(u, prec)
    out = tostring(whole) .. f .. unit
  else
    local f, secs = frac_text(u, 9)
    out = tostring(secs % 60) .. f .. "s"
    local mins = secs // 60
    if mins > 0 then
      out = tostring(mins % 60) .. "m" .. out
      local hours = mins // 60
      if hours > 0 then out = tostring(hours) .. "h" .. out end
    end
  end
  return neg and ("-" .. out) or out
end

---------------------------------------------------------------------------
-- go-units RAMInBytes: "50M" -> 52428800 (binary multiples)

local MULT = { k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4, p = 1024 ^ 5 }

function M.ram_in_bytes(str)
  local sep
  for i = #str, 1, -1 do
    if str:sub(i, i):match("[%d. ]") then sep = i break end
  end
  if not sep then return nil, ("invalid size: '%s'"):format(str) end
  local num, sfx
  if str:sub(sep, sep) ~= " " then num, sfx = str:sub(1, sep), str:sub(sep + 1)
  else num, sfx = str:sub(1, sep - 1), str:sub(sep + 1) end
  local size = M.parse_float(num)
  if not size then return nil, ("strconv.ParseFloat: parsing %s: invalid syntax"):format(M.quote(num)) end
  if size < 0 then return nil, ("invalid size: '%s'"):format(str) end
  local function bad() return nil, ("invalid suffix: '%s'"):format(sfx) end
  if #sfx > 0 then
    if #sfx > 3 then return bad() end
    sfx = sfx:lower()
    if sfx:sub(1, 1) == "b" then
      if #sfx > 1 then return bad() end
    else
      local mul = MULT[sfx:sub(1, 1)]
      if not mul then return bad() end
      size = size * mul
      if (#sfx == 2 and sfx:sub(2) ~= "b") or (#sfx == 3 and sfx:sub(2) ~= "ib") then return bad() end
    end
  end
  if size >= 2 ^ 63 then return math.maxinteger end
  return math.tointeger(size // 1) or math.floor(size)
end

---------------------------------------------------------------------------
-- google/shlex Split: words, quotes, backslash escapes, # comments

function M.shell_split(s)
  local words = {}
  local i, n = 1, #s
  local function space(c) return c == " " or c == "\t" or c == "\r" or c == "\n" end
  while true do
    while i <= n and space(s:sub(i, i)) do i = i + 1 end
    if i > n then break end
    if s:sub(i, i) == "#" then                   -- a comment to the end of the line
      while i <= n and s:sub(i, i) ~= "\n" do i = i + 1 end
    else
      local word = {}
      while i <= n do
        local c = s:sub(i, i)
        if space(c) then break end
        if c == "\\" then
          if i == n then return nil, "EOF found after escape character" end
          word[#word + 1] = s:sub(i + 1, i + 1)
          i = i + 2
        elseif c == "'" then
          local j = s:find("'", i + 1, true)
          if not j then return nil, "EOF found when expecting closing quote" end
          word[#word + 1] = s:sub(i + 1, j - 1)
          i = j + 1
        elseif c == '"' then
          i = i + 1
          while true do
            if i > n then return nil, "EOF found when expecting closing quote" end
            local d = s:sub(i, i)
            if d == '"' then i = i + 1 break end
            if d == "\\" then
              if i == n then return nil, "EOF found after escape character" end
              word[#word + 1] = s:sub(i + 1, i + 1)
              i = i + 2
            else
              word[#word + 1] = d
              i = i + 1
            end
          end
        else
          word[#word + 1] = c
          i = i + 1
        end
      end
      words[#words + 1] = table.concat(word)
    end
  end
  return words
end

---------------------------------------------------------------------------
-- Paths (path/filepath on Unix, plus docker's Windows-path test)

function M.clean_path(p)
  if p == "" then return "." end
  local rooted = p:sub(1, 1) == "/"
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." then
      if #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
      elseif not rooted then parts[#parts + 1] = ".." end
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  local out = table.concat(parts, "/")
  if rooted then return "/" .. out end
  return out == "" and "." or out
end

-- filepath.Join(dir, p) unless p is absolute
function M.abs_path(dir, p)
  if p:sub(1, 1) == "/" then return p end
  if p == "" then return M.clean_path(dir) end
  return M.clean_path(dir .. "/" .. p)
end

-- docker's isAbs for Windows paths (C:\x, \\server\share\x)
function M.is_windows_abs(p)
  local function slash(c) return c == "\\" or c == "/" end
  if #p < 2 then return false end
  local l = 0
  if p:sub(2, 2) == ":" and p:sub(1, 1):match("%a") then
    l = 2
  elseif #p >= 5 and slash(p:sub(1, 1)) and slash(p:sub(2, 2)) and not slash(p:sub(3, 3)) and p:sub(3, 3) ~= "." then
    local n = 4
    while n < #p do
      if slash(p:sub(n, n)) then
        n = n + 1
        if not slash(p:sub(n, n)) and p:sub(n, n) ~= "." then
          while n <= #p and not slash(p:sub(n, n)) do n = n + 1 end
          l = n - 1
        end
        break
      end
      n = n + 1
    end
  end
  if l == 0 then return false end
  local rest = p:sub(l + 1)
  return rest ~= "" and slash(rest:sub(1, 1))
end

return M
