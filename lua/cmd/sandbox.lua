-- `slipway sandbox up|down|status`: a private local Docker engine, registry
-- and swarm to try pipelines on, built from slipway's own modules (proc for
-- the daemons, fs for the state, http over the engine's unix socket,
-- slipway.docker for the swarm). This file is the command line; the work
-- is in lua/sandbox/:
--   single.lua    the default: one dockerd in the host's network namespace,
--                 a registry on 127.0.0.1, a one-node swarm (engine.lua,
--                 registry.lua)
--   nodes.lua     --nodes N [--managers M]: N dockerd nodes, each in its own
--                 network, mount, UTS and PID namespaces on a private bridge
--                 (network.lua), one swarm, a registry every node reaches
--   host.lua      processes, helper programs, root, the directory's lock
local M = {}

local DEFAULT_DIR = "/tmp/slipway-sandbox"

M.help = [[
usage: slipway sandbox up [--dir D] [--registry-port N] [--swarm-port N] [--tls-port N]
                          [--user PID] [--env | --json]
       slipway sandbox up --nodes N [--managers M] [--dir D] [--registry-port N]
                          [--user PID] [--env | --json]
       slipway sandbox down [--dir D] [--user PID] [--force] [--json]
       slipway sandbox status [--dir D] [--env | --json]

A private local Docker engine + registry + swarm for trying pipelines, all
under one directory (needs root: dockerd runs as root).

  up       start dockerd (Debian's docker.io) on DIR/docker.sock, a registry
           (Debian's docker-registry) on 127.0.0.1:PORT without auth, and
           `swarm init` on 127.0.0.1; then print the variables to export.
           Idempotent: what already runs is kept. Registers the caller as a
           user of the sandbox.
           With --nodes N: N engines, each one a node in its own network
           namespace (plus mount, UTS and PID namespaces) with its own
           address on a private bridge, joined into one swarm with M
           managers (default 1); the registry listens on the bridge, where
           every node reaches it. DOCKER_HOST is the first manager's.
  down     unregister the caller; when no other live user is left, leave the
           swarm, stop dockerd (and its containerd) and the registry by pid,
           unmount what is left and remove the state (images, swarm, registry
           storage); for --nodes also the namespaces, veths, bridge and any
           firewall rule up added. --force stops it whoever still uses it.
  status   engine, registry and swarm state (with --nodes: every node's).
           Exit 0 when everything is up, 1 otherwise.

options:
  --dir D             the sandbox directory (default $SLIPWAY_SANDBOX_DIR or
                      /tmp/slipway-sandbox); one sandbox per directory
  --nodes N           up: N nodes (1-16) in network namespaces instead of one
                      engine in the host's (needs ip, unshare, nsenter and a
                      kernel that makes vxlan links)
  --managers M        up: how many of the nodes are managers (default 1; 3
                      keeps the swarm working when one is lost)
  --registry-port N   the registry's port (default 5000)
  --swarm-port N      the swarm's listen port on 127.0.0.1 (default 2377)
  --tls-port N        also serve the engine on tcp://127.0.0.1:N with mutual
                      TLS (certificates in DIR/tls; default 0: off)
  --user PID          the user to (un)register (default the parent process,
                      i.e. your shell); a user counts while its process lives
  --force             down: stop even when other users are alive
  --env               print only `export NAME=value` lines, for
                      eval "$(slipway sandbox up --env)"
  --json              print one JSON object

Exit status: 0 done (status: all up), 1 failed (status: not all up),
2 bad usage.

example:
  eval "$(slipway sandbox up --env)"
  slipway run examples/docker-demo/deploy.lua -p version=v1
  slipway sandbox down
]]

local fs = require("slipway.fs")
local json = require("slipway.json")
local words = require("slipway.words")

---------------------------------------------------------------- arguments

local Usage = {}

local function usage_error(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Usage), 0)
end

local SUBCOMMANDS = {
  up = { ["--dir"] = 1, ["--registry-port"] = 1, ["--swarm-port"] = 1, ["--tls-port"] = 1,
         ["--user"] = 1, ["--env"] = 0, ["--json"] = 0, ["--nodes"] = 1, ["--managers"] = 1 },
  down = { ["--dir"] = 1, ["--user"] = 1, ["--force"] = 0, ["--json"] = 0 },
  status = { ["--dir"] = 1, ["--env"] = 0, ["--json"] = 0 },
}

local MAX_NODES = 16

local function flag_list(allowed)
  local list = {}
  for f in pairs(allowed) do list[#list + 1] = f end
  table.sort(list)
  return list
end

local function port_value(flag, v, allow_zero)
  local n = math.tointeger(tonumber(v))
  if not n or n < (allow_zero and 0 or 1) or n > 65535 then
    usage_error("%s: expected a port number (%s65535), got '%s'", flag, allow_zero and "0-" or "1-", v)
  end
  return n
end

local function count_value(flag, v, max)
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 or n > max then
    usage_error("%s: expected a number from 1 to %d, got '%s'", flag, max, v)
  end
  return n
end

-- args -> { cmd, dir, registry_port, swarm_port, tls_port, nodes, managers,
-- user, env, json, force }
local function parse(args)
  local cmd = args[1]
  if cmd == nil then usage_error("missing subcommand (up, down or status)") end
  local allowed = SUBCOMMANDS[cmd]
  if not allowed then
    usage_error("unknown subcommand '%s'%s (expected up, down or status)", cmd, words.did_you_mean(cmd, { "up", "down", "status" }))
  end
  local o = { cmd = cmd }
  local i = 2
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local arity = allowed[name]
    if arity == nil then
      if a:sub(1, 1) == "-" then
        local list = flag_list(allowed)
        usage_error("%s: unknown option '%s'%s (valid: %s)", cmd, a, words.did_you_mean(name, list), table.concat(list, ", "))
      end
      usage_error("%s: unexpected argument '%s'", cmd, a)
    end
    if arity == 1 then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil or value == "" then usage_error("%s needs a value", name) end
      end
    elseif value ~= nil then
      usage_error("%s takes no value", name)
    end
    local key = name:sub(3):gsub("-", "_")
    if key == "registry_port" or key == "swarm_port" then
      value = port_value(name, value)
    elseif key == "tls_port" then
      value = port_value(name, value, true)
    elseif key == "nodes" or key == "managers" then
      value = count_value(name, value, MAX_NODES)
    elseif key == "user" then
      local n = math.tointeger(tonumber(value))
      if not n or n < 1 then usage_error("--user: expected a process id, got '%s'", value) end
      value = n
    elseif arity == 0 then
      value = true
    end
    o[key] = value
    i = i + 1
  end
  if o.env and o.json then usage_error("--env and --json exclude each other") end
  if o.managers and not o.nodes then usage_error("--managers needs --nodes") end
  if o.nodes then
    if o.swarm_port then usage_error("--swarm-port is for the one-engine sandbox (each node listens on its own address)") end
    if o.tls_port then usage_error("--tls-port is for the one-engine sandbox") end
    if (o.managers or 1) > o.nodes then
      usage_error("--managers %d: more managers than --nodes %d", o.managers, o.nodes)
    end
  end
  local dir = o.dir or os.getenv("SLIPWAY_SANDBOX_DIR")
  if dir == nil or dir == "" then dir = DEFAULT_DIR end
  if dir:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD") or fs.realpath(".")
    dir = cwd .. "/" .. dir
  end
  o.dir = dir:gsub("/+$", "")
  if o.dir == "" or o.dir:find("[%s'\"\\]") then
    usage_error("--dir: '%s' must be a non-root path without spaces or quotes", dir)
  end
  o.default_dir = DEFAULT_DIR
  return o
end

---------------------------------------------------------------- commands

local function up(o)
  if o.nodes then
    local nodes = require("slipway.sandbox.nodes")
    return nodes.up(o, nodes.paths(o.dir))
  end
  local single = require("slipway.sandbox.single")
  return single.up(o, single.paths(o.dir))
end

local function status(o)
  local nodes = require("slipway.sandbox.nodes")
  local code = nodes.status(o, nodes.paths(o.dir))
  if code then return code end
  local single = require("slipway.sandbox.single")
  return single.status(o, single.paths(o.dir))
end

local function down(o)
  local host = require("slipway.sandbox.host")
  local single = require("slipway.sandbox.single")
  local p = single.paths(o.dir)
  if not fs.exists(p.dir) then
    if o.json then io.stdout:write(json.encode({ ok = true, stopped = false, reason = "no sandbox" }), "\n")
    else host.say("nothing to stop: %s does not exist", p.dir) end
    return 0
  end
  host.check_root()
  local nodes = require("slipway.sandbox.nodes")
  local stop = single.stop
  if nodes.present(p.dir) then
    stop = function() return nodes.stop(nodes.paths(p.dir)) end
  end
  local r = single.down(o, p, stop)
  if o.json then
    io.stdout:write(json.encode({ ok = true, stopped = r.stopped, users = json.array(r.users),
      dockerd_pid = r.dockerd_pid, registry_pid = r.registry_pid, nodes = r.nodes }), "\n")
  elseif not r.stopped then
    local pids = {}
    for _, u in ipairs(r.users) do pids[#pids + 1] = tostring(u) end
    host.say("left running: still used by pid %s (`slipway sandbox down%s --force` stops it anyway)",
      table.concat(pids, ", "), p.dir == DEFAULT_DIR and "" or (" --dir " .. p.dir))
  elseif o.force and #r.users > 0 then
    host.say("stopped %s (forced; it was still used by %s)", p.dir, words.count(#r.users, "other user"))
  else
    host.say("stopped %s", p.dir)
  end
  return 0
end

---------------------------------------------------------------- main

function M.main(args)
  local ok, o = pcall(parse, args)
  if not ok then
    if getmetatable(o) == Usage then
      io.stderr:write("slipway sandbox: ", o.msg, "\n\n", M.help)
      return 2
    end
    error(o, 0)
  end
  local task = require("slipway.task")
  local done, code = task.run(function()
    local host = require("slipway.sandbox.host")
    if o.user == nil then
      local _, ppid = host.self_pid()
      o.user = ppid
    end
    host.quiet = o.json or false
    local run_cmd = ({ up = up, down = down, status = status })[o.cmd]
    local rok, rc = pcall(run_cmd, o)
    if not rok then
      if host.is_failure(rc) then
        if o.json then
          io.stdout:write(json.encode({ ok = false, error = rc.msg }), "\n")
        end
        io.stderr:write("slipway sandbox ", o.cmd, ": ", rc.msg, "\n")
        return 1
      end
      error(rc, 0)
    end
    return rc
  end)
  if not done then
    if task.is_cancelled(code) then
      io.stderr:write("slipway sandbox: interrupted\n")
      return 130
    end
    io.stderr:write("slipway sandbox ", o.cmd, ": ", tostring(code), "\n")
    return 1
  end
  return code
end

return M
