-- slipway.guard: while a pipeline file loads, nothing may change the world.
-- `slipway plan` and `slipway graph` evaluate the whole file, so its top
-- level (and every module it requires, and every chunk it loads) may only
-- declare tasks and parameters and read things. install() replaces, in the
-- standard library and in slipway.fs, every function that writes, deletes,
-- starts a process or loads native code with one that raises "NAME: call
-- this inside a task"; restore() puts the real ones back. The natives that
-- wait for I/O (slipway.proc, http, docker...) need a task anyway and raise
-- the same way by themselves.
--
--   local restore = guard.install(hint)   -- hint: appended to the message
--   guard.real.popen                      -- the real io.popen, for reads that
--                                         -- are not side effects (git)
--
-- Not covered: code that digs the real functions out with the debug
-- library, or a C module loaded before install().
local M = {}

local OS_FUNCS = { "execute", "remove", "rename", "exit", "tmpname" }
local IO_FUNCS = { "popen", "tmpfile" }
local FS_WRITES = { "write", "write_atomic", "append", "mkdir", "remove", "tempdir" }

M.real = { popen = io.popen, open = io.open, output = io.output }

local function raiser(name, hint)
  return function()
    error(name .. ": call this inside a task" .. hint, 2)
  end
end

-- Replace tbl[k] for each name in keys; returns the list of what to put back.
local function swap(saved, tbl, prefix, keys, hint)
  for _, k in ipairs(keys) do
    if type(tbl[k]) == "function" then
      saved[#saved + 1] = { tbl, k, tbl[k] }
      tbl[k] = raiser(prefix .. k, hint)
    end
  end
end

function M.install(hint)
  hint = hint or ""
  local saved = {}
  swap(saved, os, "os.", OS_FUNCS, hint)
  swap(saved, io, "io.", IO_FUNCS, hint)
  swap(saved, package, "package.", { "loadlib" }, hint)
  local real_open, real_output = io.open, io.output
  saved[#saved + 1] = { io, "open", real_open }
  io.open = function(path, mode)
    if type(mode) == "string" and mode:find("[wa+]") then
      error("io.open: opening a file for writing: call this inside a task" .. hint, 2)
    end
    return real_open(path, mode)
  end
  saved[#saved + 1] = { io, "output", real_output }
  io.output = function(file)
    if file ~= nil then error("io.output: changing the default output: call this inside a task" .. hint, 2) end
    return real_output()
  end
  -- slipway.fs is synchronous (it works outside tasks): its writes too
  swap(saved, require("slipway.fs"), "fs.", FS_WRITES, hint)
  return function()
    for i = #saved, 1, -1 do
      local s = saved[i]
      s[1][s[2]] = s[3]
    end
  end
end

return M
