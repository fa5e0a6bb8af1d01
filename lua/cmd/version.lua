-- slipway version: the versions of slipway and the libraries it embeds;
-- --meta: where the editor stubs (docs/meta, `---@meta` files) are.
local M = {}

M.help = [[
usage: slipway version [--meta]

Print slipway's version and those of Lua, libuv, libcurl and libyaml.

  --meta   print the directory of slipway's LuaLS definitions (`---@meta`
           stubs of every global and module), for an editor's
           workspace.library (`slipway init` writes a .luarc.json with it);
           exit 1 when they are not installed
]]

-- The directory of the ---@meta stubs: installed next to the binary
-- (PREFIX/bin/slipway -> PREFIX/share/slipway/meta), in the checkout the
-- binary was built in (build/slipway -> docs/meta), or under SLIPWAY_SRC.
-- -> the absolute path, or nil.
function M.meta_dir()
  local fs = require("slipway.fs")
  local candidates = {}
  local exe = fs.realpath("/proc/self/exe")
  if exe then
    local prefix = fs.dirname(fs.dirname(exe))
    candidates[#candidates + 1] = prefix .. "/share/slipway/meta"
    candidates[#candidates + 1] = prefix .. "/docs/meta"
  end
  local src = os.getenv("SLIPWAY_SRC")
  if src and src ~= "" then candidates[#candidates + 1] = src .. "/docs/meta" end
  for _, dir in ipairs(candidates) do
    if fs.exists(dir .. "/globals.lua") then return fs.realpath(dir) or dir end
  end
  return nil
end

function M.main(args)
  if args[1] == "--meta" and args[2] == nil then
    local dir = M.meta_dir()
    if not dir then
      io.stderr:write("slipway version: the editor stubs are not installed (make install puts them in PREFIX/share/slipway/meta)\n")
      return 1
    end
    io.stdout:write(dir, "\n")
    return 0
  end
  if args[1] ~= nil then
    local words = require("slipway.words")
    local a = args[1] == "--meta" and args[2] or args[1]
    io.stderr:write(("slipway version: unexpected argument '%s'%s\n"):format(a,
      a:sub(1, 1) == "-" and words.did_you_mean(a, { "--meta" }) or ""))
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
