-- slipway.dotenv: the `.env` file syntax as compose users write it, read by
-- secret(name, { from = "dotenv" }) and by compose's --env-file
-- (slipway.compose.envfile): one NAME=value per line, `export ` prefix
-- allowed, `#` comment lines, 'single quotes' literal, "double quotes" with
-- \n \t \r \" \\ \$ escapes and values over several lines, unquoted values
-- end at " #" and are trimmed; a UTF-8 BOM and CRLF line ends are accepted.
--
--   dotenv.parse(text, path) -> {NAME = value}, {names in order}
--                             | nil, "path:line: message"
local M = {}

local ESC = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["$"] = "$" }

function M.parse(text, path)
  text = text:gsub("^\239\187\191", ""):gsub("\r\n", "\n")
  local vars, order = {}, {}
  local i, n, line = 1, #text, 1
  local function fail(msg) return nil, ("%s:%d: %s"):format(path, line, msg) end
  while i <= n do
    local eol = text:find("\n", i, true) or n + 1
    local raw = text:sub(i, eol - 1)
    local s = raw:gsub("^%s+", "")
    if s == "" or s:sub(1, 1) == "#" then
      i = eol + 1
      line = line + 1
    else
      s = s:gsub("^export%s+", "")
      local name, rest = s:match("^([%a_][%w_%.%-]*)%s*=%s*(.*)$")
      if not name then return fail("expected NAME=value") end
      local value
      local q = rest:sub(1, 1)
      if q == "'" or q == '"' then
        -- the value may run over several lines: search from the quote
        local start = i + (#raw - #rest) + 1
        local j = start
        local buf = {}
        while true do
          if j > n then return fail("unterminated " .. q .. " quote") end
          local c = text:sub(j, j)
          if c == q then break end
          if c == "\\" and q == '"' and j < n then
            local e = text:sub(j + 1, j + 1)
            buf[#buf + 1] = ESC[e] or ("\\" .. e)
            j = j + 2
          else
            if c == "\n" then line = line + 1 end
            buf[#buf + 1] = c
            j = j + 1
          end
        end
        value = table.concat(buf)
        local after_eol = text:find("\n", j, true) or n + 1
        local trailing = text:sub(j + 1, after_eol - 1)
        if not trailing:match("^%s*$") and not trailing:match("^%s+#") then
          return fail("unexpected text after the closing quote")
        end
        i = after_eol + 1
      else
        value = rest:gsub("%s+#.*$", ""):gsub("%s+$", "")
        i = eol + 1
      end
      line = line + 1
      if vars[name] == nil then order[#order + 1] = name end
      vars[name] = value
    end
  end
  return vars, order
end

return M
