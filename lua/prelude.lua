-- Globals every script gets: the task primitives, and each stdlib module
-- under its short name, loaded on first use (`fs.read` requires
-- slipway.fs the first time `fs` is touched).
local task = require("slipway.task")

spawn = task.spawn
sleep = task.sleep

local lazy = {
  task = "slipway.task", fs = "slipway.fs", json = "slipway.json",
  yaml = "slipway.yaml", http = "slipway.http", proc = "slipway.proc",
  hash = "slipway.hash", base64 = "slipway.base64", duration = "slipway.duration",
  parallel = "slipway.parallel", sh = "slipway.sh",
  compose = "slipway.compose", docker = "slipway.docker", probe = "slipway.probe",
  git = "slipway.git", env = "slipway.env", context = "slipway.context",
  vercel = "slipway.vercel",
  secret = "slipway.secrets",
  pulumi = "slipway.pulumi",
}

setmetatable(_G, {
  __index = function(t, name)
    local modname = lazy[name]
    if modname == nil then return nil end
    local value = require(modname)
    rawset(t, name, value)
    return value
  end,
})

return true
