-- slipway.sandbox.env: the variables a user of a sandbox exports, printed
-- as `export` lines (for eval) or as a table (for --json).
local words = require("slipway.words")

local M = {}

function M.export_line(name, value)
  return "export " .. name .. "=" .. words.shell_quote(tostring(value))
end

-- vars: { {name, value}, ... } in order; note: a trailing comment line.
function M.print(vars, note)
  for _, v in ipairs(vars) do io.stdout:write(M.export_line(v[1], v[2]), "\n") end
  if note then io.stdout:write("# ", note, "\n") end
end

function M.table(vars)
  local t = {}
  for _, v in ipairs(vars) do t[v[1]] = v[2] end
  return t
end

return M
