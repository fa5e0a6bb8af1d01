-- examples/rollback-demo/deploy.lua: what a failed deploy looks like. It
-- "releases" a new version into a local directory (recording how to undo
-- it), then its health check fails, so slipway cancels what is still
-- running (a real `sleep` dies with its process group), skips the rest and
-- rolls back in reverse order. Exit code 1; the run is recorded as
-- rolled_back in examples/rollback-demo/.slipway/runs/.
--
--   slipway run examples/rollback-demo/deploy.lua
--   cat examples/rollback-demo/.slipway/runs/*/record.json
local context = require("slipway.context")

param.string("version", "2.0.0", "the version to release")

local here = fs.realpath(fs.dirname(debug.getinfo(1, "S").source:sub(2)))
local site = here .. "/.site"              -- the pretend production

local function current()
  return fs.exists(site .. "/VERSION") and fs.read(site .. "/VERSION") or "none"
end

task("quality-gate", function()
  sh "echo 'checking...'; sh -n /dev/null && echo 'ok: shell syntax'"
end)

task("build", { needs = "quality-gate", matrix = { "api", "worker", "web" } }, function(name, p)
  sh(("echo building %s %s; sleep 0.3; echo %s-%s > /dev/null"):format(name, p.version, name, p.version))
  return name .. ":" .. p.version
end)

task("migrate", {
  needs = "quality-gate",
  rollback = function() print("rolling the (pretend) schema migration back") end,
}, function()
  sh "echo 'migrating schema 41 -> 42'; sleep 0.2"
end)

task("deploy", { needs = { "build", "migrate" } }, function(p)
  fs.mkdir(site)
  local previous = current()
  fs.write(site .. "/VERSION", p.version)
  context.add_change {
    kind = "demo.site", target = site, summary = ("version %s -> %s"):format(previous, p.version),
    data = { previous = previous, version = p.version },
    undo = function()
      if previous == "none" then fs.remove(site .. "/VERSION") else fs.write(site .. "/VERSION", previous) end
      print("site is back at " .. previous)
    end,
  }
  print("site now at " .. current())
end)

task("warm-cache", { needs = "deploy" }, function()
  sh "echo 'warming caches (slow)'; sleep 30"     -- cancelled when validate fails
end)

task("validate", { needs = "deploy" }, function()
  task.sleep(0.3)
  local r = sh("test \"$(cat " .. site .. "/VERSION)\" = 1.0.0", { check = false })
  if r.code ~= 0 then error("health check failed: site reports version " .. current()) end
end)

task("announce", { needs = { "validate", "warm-cache" } }, function()
  print("released!")
end)
