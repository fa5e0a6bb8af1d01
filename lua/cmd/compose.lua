-- `slipway compose config -c FILE [-c FILE]... [--env-file F]...`: print the
-- final compose config, as `docker stack config` does (same output, same
-- exit code 1 and class of error for a file docker rejects).
local M = {}

M.help = [[
usage: slipway compose config -c FILE [-c FILE]... [--env-file F]... [--skip-interpolation] [--quiet]

Print the final configuration of one or more compose files, after
interpolation, merging and normalization, exactly as `docker stack config`
prints it (and as `docker stack deploy` would read it).

  -c, --compose-file FILE   a compose file ("-" reads standard input);
                            several are merged in order
      --env-file F          read variables from a .env file (KEY=value lines;
                            the process environment wins over it)
      --skip-interpolation  leave ${VAR} expressions as written
  -q, --quiet               only check the files: print nothing on success

Warnings (fields a Swarm stack ignores, host IPs dropped from ports) go to
stderr. Exit status: 0 when the configuration loads, 1 when it is rejected
(the message names file:line:col; also a missing file or one over 16 MiB),
2 for a usage error (a directory given as a file, too).
]]

local function usage(msg)
  io.stderr:write("slipway compose: ", msg, "\n\n", M.help)
  return 2
end

-- A directory given where a file belongs is a usage mistake (exit 2), not
-- a file docker would reject (exit 1). Returns the message, or nil.
local function not_a_file(flag, path)
  if path == "-" then return nil end
  local st = require("slipway.fs").stat(path, { follow = true })
  if st and st.type == "directory" then
    return ("%s %s: is a directory, expected a file"):format(flag, path)
  end
  return nil
end

function M.main(args)
  local sub = args[1]
  if sub == nil then return usage("missing subcommand (config)") end
  if sub ~= "config" then
    return usage(("unknown subcommand '%s'%s"):format(sub, require("slipway.words").did_you_mean(sub, { "config" })))
  end
  local files, env_files, quiet, skip = {}, {}, false, false
  local i = 2
  while i <= #args do
    local a = args[i]
    local value = a:match("^%-%-compose%-file=(.*)$") or a:match("^%-%-env%-file=(.*)$")
    if a == "-c" or a == "--compose-file" then
      if not args[i + 1] then return usage(a .. " needs a file") end
      files[#files + 1] = args[i + 1]
      i = i + 2
    elseif a:match("^%-%-compose%-file=") then
      files[#files + 1] = value
      i = i + 1
    elseif a == "--env-file" then
      if not args[i + 1] then return usage("--env-file needs a file") end
      env_files[#env_files + 1] = args[i + 1]
      i = i + 2
    elseif a:match("^%-%-env%-file=") then
      env_files[#env_files + 1] = value
      i = i + 1
    elseif a == "--skip-interpolation" then
      skip = true
      i = i + 1
    elseif a == "-q" or a == "--quiet" then
      quiet = true
      i = i + 1
    elseif a == "-h" or a == "--help" then
      io.stdout:write(M.help)
      return 0
    else
      return usage(("unknown argument '%s'"):format(a))
    end
  end
  if #files == 0 then return usage("Specify a Compose file (with --compose-file)") end
  for _, given in ipairs({ { "--compose-file", files }, { "--env-file", env_files } }) do
    for _, path in ipairs(given[2]) do
      local problem = not_a_file(given[1], path)
      if problem then io.stderr:write("slipway compose: ", problem, "\n"); return 2 end
    end
  end
  local compose = require("slipway.compose")
  local stack, warnings = compose.try_load(files, {
    env_file = #env_files > 0 and env_files or nil,
    skip_interpolation = skip or nil,
  })
  if not stack then
    io.stderr:write(warnings, "\n")
    return 1
  end
  for _, w in ipairs(warnings) do io.stderr:write("warning: ", w, "\n") end
  local ok, text = pcall(compose.render, stack)
  if not ok then
    io.stderr:write(tostring(text), "\n")
    return 1
  end
  if not quiet then io.stdout:write(text) end
  return 0
end

return M
