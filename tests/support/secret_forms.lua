-- The forms a secret value takes in text, computed here from their
-- definitions (not by the masker under test), for the specs that grep
-- output for leaks: raw, each line of a multi-line value, JSON-escaped,
-- URL-encoded (%20 and +), and base64 (standard and URL alphabets) of the
-- value starting at byte 0, 1 or 2 of a larger buffer: the characters
-- every such buffer shares, whatever bytes surround the value.
--
--   forms.of(value) -> { { name = "raw", text = ... }, ... }
--   forms.find(text, values) -> nil | "what leaked: the form, where"
local base64 = require("slipway.base64")
local json = require("slipway.json")

local M = {}

local function url_encode(s, plus)
  return (s:gsub("[^%w%-%._~]", function(c)
    if c == " " and plus then return "+" end
    return ("%%%02X"):format(c:byte())
  end))
end

-- The characters of base64(prefix .. v .. suffix) that are the same for
-- every prefix of `offset` bytes and every suffix: found by encoding with
-- two different surroundings and keeping the common run where v sits.
local function stable_base64(v, offset, url)
  local opts = { url = url }
  local a = base64.encode(("\0"):rep(offset) .. v .. "\0\0\0", opts)
  local b = base64.encode(("\255"):rep(offset) .. v .. "\255\255\255", opts)
  local first = (offset * 8 + 5) // 6 + 1       -- 1-based: the first character of v's bits alone
  local last = (offset + #v) * 8 // 6            -- the last whole one
  local sa, sb = a:sub(first, last), b:sub(first, last)
  assert(sa == sb, "the stable base64 part differs between surroundings")
  assert(a:sub(first - 1, first - 1) ~= b:sub(first - 1, first - 1) or offset == 0,
    "the character before the stable part should depend on the prefix")
  return sa
end

function M.of(v)
  local out = { { name = "raw", text = v } }
  if v:find("\n", 1, true) then
    for line in (v .. "\n"):gmatch("([^\n]*)\n") do
      line = line:gsub("\r$", "")
      if #line >= 4 then out[#out + 1] = { name = "line", text = line } end
    end
  end
  out[#out + 1] = { name = "json", text = json.encode(v):sub(2, -2) }
  out[#out + 1] = { name = "url", text = url_encode(v, false) }
  out[#out + 1] = { name = "url+", text = url_encode(v, true) }
  for offset = 0, 2 do
    out[#out + 1] = { name = "base64@" .. offset, text = stable_base64(v, offset, false) }
    out[#out + 1] = { name = "base64url@" .. offset, text = stable_base64(v, offset, true) }
  end
  return out
end

-- The first form of any of values found in text, described; nil if none.
function M.find(text, values, where)
  for _, v in ipairs(values) do
    for _, f in ipairs(M.of(v)) do
      local at = text:find(f.text, 1, true)
      if at then
        return ("%s: the %s form of a secret (%q) at byte %d: ...%s..."):format(where or "text", f.name, f.text,
          at, text:sub(math.max(1, at - 40), at + #f.text + 40))
      end
    end
  end
  return nil
end

return M
