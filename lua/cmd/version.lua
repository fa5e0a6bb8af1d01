-- slipway version: the versions of slipway and the libraries it embeds.
local M = {}

M.help = [[
usage: slipway version

Print slipway's version and those of Lua, libuv, libcurl and libyaml.
]]

function M.main(args)
  if args[1] ~= nil then
    io.stderr:write(("slipway version: unexpected argument '%s'\n"):format(args[1]))
    return 2
  end
  local v = require("slipway.version")
  local ok, curl = pcall(v.libcurl)
  if not ok then curl = "not available (" .. tostring(curl) .. ")" end
  io.stdout:write(("slipway %s\n  Lua      %s\n  libuv    %s\n  libcurl  %s\n  libyaml  %s\n")
    :format(v.slipway, v.lua:gsub("^Lua ", ""), v.libuv, curl, v.libyaml))
  return 0
end

return M
