-- slipway.compose.envfile: the two kinds of variable files.
--
-- env_file (service key): docker's own format (opts.ParseEnvFile): one
-- VAR=value per line taken literally (no quotes, no expansion), leading
-- whitespace ignored, `#` lines are comments, a bare `VAR` takes the value
-- from the environment or is left out.
--
-- --env-file / opts.env_file (slipway's addition, what docker/cli#939 asks
-- for): `.env` syntax as compose users write it: `export ` prefix allowed,
-- 'single quotes' literal, "double quotes" with \n \t \" \\ escapes and
-- multi-line values, unquoted values end at " #" and are trimmed.
local input = require("slipway.compose.input")

local M = {}

-- parse_env_file(path, lookup, max_bytes) -> {"K=V" or "K", ...} in file
-- order ("K" only when the bare variable is set in the environment:
-- "K=value") | nil, message, code.
function M.parse_env_file(path, lookup, max_bytes)
  local text, err, code = input.read(path, max_bytes)
  if not text then return nil, err, code end
  local out = {}
  local lineno = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if utf8.len(line) == nil then
      return nil, ("env file %s contains invalid utf8 bytes at line %d"):format(path, lineno)
    end
    if lineno == 1 then line = line:gsub("^\239\187\191", "") end
    line = line:gsub("^%s+", "")
    if #line > 0 and line:sub(1, 1) ~= "#" then
      local eq = line:find("=", 1, true)
      local var = eq and line:sub(1, eq - 1) or line
      var = var:gsub("^[ \t]+", "")
      if var:find("[ \t]") then return nil, ("variable '%s' contains whitespaces"):format(var) end
      if #var == 0 then return nil, ("no variable name on line '%s'"):format(line) end
      if eq then
        out[#out + 1] = var .. "=" .. line:sub(eq + 1)
      else
        local v = lookup(line)
        if v ~= nil then out[#out + 1] = var .. "=" .. v end
      end
    end
  end
  return out
end

local ESC = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["$"] = "$" }

-- parse_dotenv(path, max_bytes) -> {NAME = value}, {names in order}
--   | nil, "path:line: message" (or the error of reading it), code
function M.parse_dotenv(path, max_bytes)
  local text, err, code = input.read(path, max_bytes)
  if not text then return nil, err, code end
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
