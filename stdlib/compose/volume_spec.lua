-- slipway.compose.volume_spec: the short volume syntax
-- ("./data:/data:ro", "cache:/cache:nocopy", "/tmp") to the long form, as
-- docker/cli's loader.ParseVolume reads it: Windows drive letters are not
-- separators, ro/rw/nocopy and bind propagation options are understood,
-- other options (z, Z, ...) are dropped silently.
local M = {}

local PROPAGATIONS = { rprivate = true, private = true, rshared = true, shared = true, rslave = true, slave = true }

local function is_windows_drive(buffer, c)
  return c == ":" and #buffer == 1 and buffer[1]:match("^%a$") ~= nil
end

local function is_file_path(source)
  local c = source:sub(1, 1)
  if c == "." or c == "/" or c == "~" then return true end
  if utf8.len(source) == 1 then return false end
  if source:sub(1, 2) == "\\\\" then return true end
  local first = source:match("^[%z\1-\127\194-\244][\128-\191]*")
  local next_char = source:sub(#first + 1, #first + 1)
  return is_windows_drive({ first }, next_char)
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
  local buffer = {}
  local chars = {}
  for _, cp in utf8.codes(spec) do chars[#chars + 1] = utf8.char(cp) end
  chars[#chars + 1] = false                                -- end of spec
  for _, c in ipairs(chars) do
    if c and is_windows_drive(buffer, c) then
      buffer[#buffer + 1] = c
    elseif c == ":" or c == false then
      local s = table.concat(buffer)
      local err
      if #buffer == 0 then err = "empty section between colons"
      elseif (v.source == nil) and c == false then v.target = s
      elseif v.source == nil then v.source = s
      elseif v.target == nil then v.target = s
      elseif c == ":" then err = "too many colons"
      else
        for option in (s .. ","):gmatch("(.-),") do
          if option == "ro" then v.read_only = true
          elseif option == "rw" then v.read_only = nil
          elseif option == "nocopy" then v.volume = { nocopy = true }
          elseif PROPAGATIONS[option] then v.bind = { propagation = option } end
        end
      end
      if err then return nil, ("invalid spec: %s: %s"):format(spec, err) end
      buffer = {}
    else
      buffer[#buffer + 1] = c
    end
  end
  populate_type(v)
  return v
end

return M
