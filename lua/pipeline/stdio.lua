-- slipway.pipeline.stdio: while a pipeline runs, what its tasks write with
-- print, io.write, io.stdout:write or io.stderr:write is their output
-- (slipway.context's output: an event of the run, credited to the unit),
-- not bytes on slipway's own stdout, where it would break the terminal
-- view and the NDJSON of --json. Writes outside tasks, to other files, and
-- those of the reporters (through M.stdout and M.stderr) pass unchanged.
--
--   local restore = stdio.redirect()   -- until restore()
--   stdio.flush(unit)                  -- the unit's unterminated last line
--
-- io.write may write part of a line: the rest waits for more output of the
-- same unit, or for flush(unit) as the unit ends.
local task = require("slipway.task")
local context = require("slipway.context")

local M = {}

local real_stdout, real_stderr = io.stdout, io.stderr
local file_methods = getmetatable(io.stdout).__index
local raw_write = file_methods.write

local mask_args = require("slipway.secret")._mask_args

-- Writers for the reporters: slipway's own stdout and stderr, never
-- redirected, and masked (a line written in pieces is masked whole; while
-- no secret exists the pieces pass untouched).
local function raw_file(f)
  return {
    write = function(self, ...)
      raw_write(f, mask_args(...))
      return self
    end,
    flush = function() f:flush() end,
  }
end
M.stdout, M.stderr = raw_file(real_stdout), raw_file(real_stderr)

local partial = {}      -- [unit or false][stream] -> text not ended by a newline

local function write_text(stream, text)
  local unit = context.unit() or false
  local pending = partial[unit]
  local rest = pending and pending[stream]
  local start = 1
  while true do
    local nl = text:find("\n", start, true)
    if nl == nil then break end
    local line = text:sub(start, nl - 1)
    if rest then line, rest = rest .. line, nil end
    context.output(stream, line)
    start = nl + 1
  end
  if start <= #text then rest = (rest or "") .. text:sub(start) end
  if rest or pending then
    pending = pending or {}
    pending[stream] = rest
    partial[unit] = pending
  end
end

function M.flush(unit)
  local pending = partial[unit or false]
  if pending == nil then return end
  partial[unit or false] = nil
  for _, stream in ipairs({ "stdout", "stderr" }) do
    if pending[stream] then context.output(stream, pending[stream]) end
  end
end

-- The values of a write call as text, as io.write turns them into bytes.
local function write_args(fname, ...)
  local parts = table.pack(...)
  for i = 1, parts.n do
    local v = parts[i]
    if math.type(v) == "float" then
      parts[i] = ("%.14g"):format(v)
    elseif type(v) ~= "string" and math.type(v) ~= "integer" then
      error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, fname, type(v)), 3)
    end
  end
  return table.concat(parts, "", 1, parts.n)
end

local function in_task()
  return task.current() ~= nil and context.in_run()
end

function M.redirect()
  local real_print, real_io_write = print, io.write
  print = function(...)
    if not in_task() then return real_print(...) end
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    write_text("stdout", table.concat(parts, "\t", 1, parts.n) .. "\n")
  end
  io.write = function(...)
    if not in_task() or io.output() ~= real_stdout then return real_io_write(...) end
    write_text("stdout", write_args("write", ...))
    return real_stdout
  end
  file_methods.write = function(f, ...)
    if (f == real_stdout or f == real_stderr) and in_task() then
      write_text(f == real_stdout and "stdout" or "stderr", write_args("write", ...))
      return f
    end
    return raw_write(f, ...)
  end
  return function()
    for unit in pairs(partial) do M.flush(unit) end
    print, io.write, file_methods.write = real_print, real_io_write, raw_write
  end
end

return M
