-- slipway.docker: the Docker engine from deploy scripts, over the Engine
-- API (no docker CLI). Images, Swarm services and stacks:
--
--   docker.build{ context = "app", tag = "reg/app:1" }   -> { id, tags, output }
--   docker.tag(src, target)            docker.push(image) -> "sha256:..."
--   docker.inspect(image)              docker.exists(image) -> boolean
--   docker.rm_image(image, opts)
--   docker.images{ filters = { reference = "app" } }   -> { { id, tags, created, size, labels } }
--   docker.prune{ images = true, dangling_only = true, until = "24h", containers = true }
--   docker.stack.deploy(name, stack, { wait = true, timeout = "5m" })
--   docker.stack.rm(name)              docker.stack.services(name)
--   docker.service.create/update/inspect/find/list/rm/tasks/logs/scale
--   docker.node.list{}                 docker.node.update(name, { availability = "drain" })
--   docker.swarm.ensure_manager/network/secret/config/cleanup
--   docker.client{ host = "ssh://user@host" }  -> a client for `client = ...` options
--
-- The engine is DOCKER_HOST's (unix://, tcp:// with DOCKER_TLS_VERIFY and
-- DOCKER_CERT_PATH, ssh://), API version negotiated. Failures raise
-- "docker.<op>: <subject>: <engine message>" at the caller's line.
local client = require("slipway.docker.client")
local image = require("slipway.docker.image")
local housekeeping = require("slipway.docker.housekeeping")

local M = {
  build = image.build,
  tag = image.tag,
  push = image.push,
  inspect = image.inspect,
  exists = image.exists,
  rm_image = image.rm_image,
  images = housekeeping.images,
  prune = housekeeping.prune,
  client = client.new,
}

-- Submodules load on first use: a script that only builds images does not
-- pay for the stack code.
local lazy = {
  stack = "slipway.docker.stack",
  service = "slipway.docker.service",
  swarm = "slipway.docker.swarm",
  node = "slipway.docker.node",
}

return setmetatable(M, {
  __index = function(t, k)
    local modname = lazy[k]
    if not modname then return nil end
    local mod = require(modname)
    rawset(t, k, mod)
    return mod
  end,
})
