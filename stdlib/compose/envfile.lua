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

-- parse_dotenv(path, max_bytes) -> {NAME = value}, {names in order}
--   | nil, "path:line: message" (or the error of reading it), code
-- (the syntax: slipway.dotenv, which secret(..., {from = "dotenv"}) reads too)
function M.parse_dotenv(path, max_bytes)
  local text, err, code = input.read(path, max_bytes)
  if not text then return nil, err, code end
  return require("slipway.dotenv").parse(text, path)
end

return M
