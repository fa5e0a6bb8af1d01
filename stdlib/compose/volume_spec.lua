-- slipway.compose.volume_spec: the short volume syntax
-- ("./data:/data:ro", "cache:/cache:nocopy", "/tmp") to the long form, as
-- docker/cli's loader.ParseVolume reads it: Windows drive letters are not
-- separators, ro/rw/nocopy and bind propagation options are understood,
-- other options (z, Z, ...) are dropped silently.
local M = {}

local PROPAGATIONS = { rprivate = true, private = true, rshared = true, shared = true, rslave = true, slave = true }

local function is_file_path(source)
  local c = source:sub(1, 1)
  if c == "." or c == "/" or c == "~" then return true end
  if utf8.len(source) == 1 then return false end
  if source:sub(1, 2) == "\\\\" then return true end
  local first = source:match("^[%z\1-\127\194-\244][\128-\191]*")
  return source:sub(#first + 1, #first + 1) == ":" and first:match("^[%a\128-\255]") ~= nil
end

local function populate_type(v)
  if v.source == nil or v.source == "" then v.type = "volume"
  elseif is_file_path(v.source) then v.type = "bind"
  else v.type = "volume" end
end

-- parse(spec) -> {type, source?, target, read_only?, volume?, bind?} | nil, msg
function M.parse(spec)
  local v = {}
  if #spec == 0 then return nil, "invalid empty volume spec" end
  if #spec <= 2 then
    v.target, v.type = spec, "volume"
    return v
  end
  -- sections end at ":" except right after a one-letter section (C:\x)
  local start, n = 1, #spec
  local i = spec:find(":", 1, true) or n + 1
  while true do
    local c = i <= n and ":" or nil
    local section = spec:sub(start, i - 1)
    if c and utf8.len(section) == 1 and section:match("^[%a\128-\255]") then -- luacheck: ignore 542
      -- a Windows drive letter (C:\x): not a separator
    else
      local err
      if section == "" then err = "empty section between colons"
      elseif v.source == nil and c == nil then v.target = section
      elseif v.source == nil then v.source = section
      elseif v.target == nil then v.target = section
      elseif c then err = "too many colons"
      else
        for option in (section .. ","):gmatch("(.-),") do
          if option == "ro" then v.read_only = true
          elseif option == "rw" then v.read_only = nil
          elseif option == "nocopy" then v.volume = { nocopy = true }
          elseif PROPAGATIONS[option] then v.bind = { propagation = option } end
        end
      end
      if err then return nil, ("invalid spec: %s: %s"):format(spec, err) end
      start = i + 1
    end
    if not c then break end
    i = spec:find(":", i + 1, true) or n + 1
  end
  populate_type(v)
  return v
end

return M
