-- The maintenance side of slipway.docker against the one-node swarm of
-- tests/infra/up: service.scale, service.logs as a stream, images, prune,
-- node.list/update; and the scripts of examples/scripts run once each.
--
-- The engine is shared with other test runs: prune is narrowed to this
-- spec's own label, and the node is only paused (drain would stop every
-- run's tasks), then made active again whatever happens.
local docker = require("slipway.docker")
local client = require("slipway.docker.client")
local proc = require("slipway.proc")
local task = require("slipway.task")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry
local APP = REG .. "/slipway-maintenance:v1"
local SLIPWAY = assert(os.getenv("SLIPWAY"), "run through tests/run (SLIPWAY unset)")
local LABEL = "io.slipway.test-maintenance"

local function create_service(name, replicas)
  local id = docker.service.create({
    Name = name,
    TaskTemplate = { ContainerSpec = { Image = APP }, RestartPolicy = { Condition = "any", Delay = 200000000 } },
    Mode = { Replicated = { Replicas = replicas } },
  }, { resolve_image = false })
  return id
end

local function running(name)
  local n = 0
  for _, t in ipairs(docker.service.tasks(name, { desired_state = "running" })) do
    if t.Status.State == "running" then n = n + 1 end
  end
  return n
end

-- the log lines, once the service has written want (a task's first lines
-- reach the log a moment after it runs)
local function logs_until(name, want, opts)
  local deadline = task.now() + 15000
  while true do
    local lines = docker.service.logs(name, opts)
    local text = {}
    for _, l in ipairs(lines) do text[#text + 1] = l.text end
    text = table.concat(text, "\n")
    if text:find(want, 1, true) or task.now() > deadline then return lines, text end
    task.sleep(0.2)
  end
end

-- the message of a failed pcall (the call is on the test's line)
local function raised(ok, err)
  assert(not ok, "expected an error")
  return tostring(err)
end

local function script(name, ...)
  return proc.run({ SLIPWAY, "examples/scripts/" .. name, ... }, { stdout = "capture", stderr = "capture" })
end

-- A file of this size makes a layer whose removal reclaims space.
local function labelled_image(dir, tag, run_label, content)
  fx.write(dir .. "/Dockerfile", "FROM scratch\nCOPY blob /blob\n")
  fx.write(dir .. "/blob", content)
  return docker.build({ context = dir, tag = tag, labels = { [LABEL] = run_label }, quiet = true })
end

describe("docker maintenance", function()
  leaks.check()

  local service                   -- one small service the tests share
  setup(function()
    if not docker.exists(APP) then fx.app_image(APP, { VERSION = "maintenance" }) end
    service = fx.unique("maint")
    create_service(service, 1)
  end)
  teardown(function()
    pcall(docker.service.rm, service, { missing_ok = true })
  end)

  describe("service.scale", function()
    it("scales 1 -> 2 -> 1 and waits until that many tasks run", function()
      local r = docker.service.scale(service, 2, { timeout = "60s" })
      assert.same({ name = service, before = 1, replicas = 2, converged = true }, {
        name = r.name, before = r.before, replicas = r.replicas, converged = r.converged })
      assert.same(2, running(service))
      assert.same(2, docker.service.inspect(service).Spec.Mode.Replicated.Replicas)
      local lines = {}
      r = docker.service.scale(service, 1, { on_progress = function(l) lines[#lines + 1] = l end })
      assert.same({ 2, 1, true }, { r.before, r.replicas, r.converged })
      assert.same(1, running(service))
      assert.same(service .. " converged", lines[#lines])
    end)

    it("does not wait with wait = false", function()
      local r = docker.service.scale(service, 1, { wait = false })
      assert.same({ 1, 1, false }, { r.before, r.replicas, r.converged })
    end)

    it("raises naming the caller's line for bad arguments and absent services", function()
      local line = debug.getinfo(1, "l").currentline
      local err = raised(pcall(docker.service.scale, service, -1))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 1) .. ": docker%.service%.scale: replicas must be a non%-negative integer, got %-1", err)
      err = raised(pcall(docker.service.scale, service, 1, { replica = 2 }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 3) .. ": docker%.service%.scale: unknown option 'replica'", err)
      err = raised(pcall(docker.service.scale, "slipway-no-such-service", 1))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 5) .. ": docker%.service%.scale: slipway%-no%-such%-service: .*not found", err)
    end)
  end)

  describe("service.logs", function()
    it("returns the recent lines of every task", function()
      local lines, text = logs_until(service, "listening on 8080", { tail = 100 })
      assert.matches("health maintenance: mode healthy, listening on 8080", text)
      assert.same("stdout", lines[1].stream)
    end)

    it("streams lines to on_line, stops when it returns false, keeps to max_lines", function()
      logs_until(service, "listening on 8080", { tail = 100 })
      local seen = {}
      local n = docker.service.logs(service, { follow = true, tail = 100, timestamps = true, on_line = function(text, stream)
        seen[#seen + 1] = { text, stream }
        if text:find("listening on 8080", 1, true) then return false end
      end })
      assert.same(#seen, n)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z health maintenance: mode healthy, listening on 8080$", seen[#seen][1])
      assert.same("stdout", seen[#seen][2])
      assert.same(1, #docker.service.logs(service, { max_lines = 1 }))
      assert.same({}, docker.service.logs(service, { since = os.time() + 3600 }))
      assert.is_true(#docker.service.logs(service, { since = "1h" }) >= 1)
    end)

    it("takes frames apart across chunk boundaries, long lines in pieces", function()
      local got = {}
      local on_body, finish = require("slipway.docker.service")._log_lines(function(text, stream)
        got[#got + 1] = stream .. ":" .. text
      end)
      local function frame(kind, s) return string.char(kind, 0, 0, 0) .. string.pack(">I4", #s) .. s end
      local body = frame(1, "a\nb") .. frame(2, "err\n") .. frame(1, "c\n") .. frame(1, "tail")
      for i = 1, #body, 3 do on_body(body:sub(i, i + 2)) end
      finish()
      assert.same({ "stdout:a", "stderr:err", "stdout:bc", "stdout:tail" }, got)
      got = {}
      on_body, finish = require("slipway.docker.service")._log_lines(function(text) got[#got + 1] = #text end)
      on_body(frame(1, string.rep("x", 64 * 1024 + 10) .. "\n"))
      finish()
      assert.same({ 64 * 1024, 10 }, got)
    end)

    it("raises for an absent service and a bad option, naming the caller's line", function()
      local line = debug.getinfo(1, "l").currentline
      local err = raised(pcall(docker.service.logs, "slipway-no-such-service"))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 1) .. ": docker%.service%.logs: slipway%-no%-such%-service: .*not found", err)
      err = raised(pcall(docker.service.logs, service, { on_line = 3 }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 3) .. ": docker%.service%.logs: on_line must be a function", err)
      err = raised(pcall(docker.service.logs, service, { since = "yesterday" }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 5) .. ': docker%.service%.logs: since must be Unix seconds or a duration such as "10m", got yesterday', err)
    end)
  end)

  describe("images and prune", function()
    it("lists the engine's images with their tags, newest first", function()
      local found
      for _, img in ipairs(docker.images({ filters = { reference = REG .. "/slipway-maintenance" } })) do
        for _, t in ipairs(img.tags) do
          if t == APP then found = img end
        end
      end
      assert.is_table(found, "the test image is listed")
      assert.matches("^sha256:%x+$", found.id)
      assert.is_true(found.size > 0 and found.created > 0)
      local all = docker.images()
      for i = 2, #all do assert.is_true(all[i - 1].created >= all[i].created) end
    end)

    it("prunes dangling images and stopped containers, and says what was reclaimed", function()
      local run_label = fx.unique("prune")
      local dir = fx.tmpdir()
      finally(function() fx.rmtree(dir) end)
      local tag = REG .. "/slipway-prune-" .. run_label .. ":1"
      local old = labelled_image(dir, tag, run_label, string.rep("a", 100000) .. run_label)
      labelled_image(dir, tag, run_label, string.rep("b", 100000) .. run_label)   -- old is dangling now
      finally(function() pcall(docker.rm_image, tag, { force = true, missing_ok = true }) end)
      local c = client.default()
      local created = c:call("test", "POST", "/containers/create", {
        body = { Image = APP, Labels = { [LABEL] = run_label } }, query = { name = run_label } })
      local filter = LABEL .. "=" .. run_label
      local dangling = docker.images({ filters = { dangling = "true", label = filter } })
      assert.same({ old.id }, { dangling[1] and dangling[1].id })

      local r = docker.prune({ label = filter })
      assert.same({ created.Id }, r.containers_deleted)
      assert.is_true(#r.images_deleted >= 1)
      assert.same(old.id, r.images_deleted[1])
      assert.is_true(r.space_reclaimed >= 100000, "reclaimed " .. r.space_reclaimed)
      assert.same({}, docker.images({ filters = { dangling = "true", label = filter } }))
      assert.is_true(docker.exists(tag), "the tagged image stays")
      -- nothing left to remove
      r = docker.prune({ label = filter })
      assert.same({ {}, {}, 0 }, { r.containers_deleted, r.images_deleted, r.space_reclaimed })
    end)

    it("raises naming the caller's line for a bad option", function()
      local line = debug.getinfo(1, "l").currentline
      local err = raised(pcall(docker.prune, { dangling = true }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 1) .. ": docker%.prune: unknown option 'dangling'", err)
      err = raised(pcall(docker.prune, { label = { 1 } }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 3) .. ": docker%.prune: label must be a string", err)
    end)
  end)

  describe("node", function()
    it("lists the swarm's one node", function()
      local nodes = docker.node.list()
      assert.same(1, #nodes)
      local n = nodes[1]
      assert.same({ "manager", "ready", true }, { n.role, n.state, n.leader })
      assert.matches("^%w+$", n.id)
      assert.is_string(n.hostname)
    end)

    it("changes availability and labels with the version it read, and back", function()
      local n = docker.node.list()[1]
      assert.same("active", n.availability)
      finally(function() docker.node.update(n.id, { availability = "active", labels = { [LABEL] = false } }) end)
      local paused = docker.node.update(n.hostname, { availability = "pause", labels = { [LABEL] = "yes" } })
      assert.same({ "pause", "yes" }, { paused.availability, paused.labels[LABEL] })
      assert.is_true(paused.version > n.version)
      local back = docker.node.update(n.id, { availability = "active", labels = { [LABEL] = false } })
      assert.same({ "active", nil }, { back.availability, back.labels[LABEL] })
    end)

    it("raises naming the caller's line for a bad availability", function()
      local line = debug.getinfo(1, "l").currentline
      local err = raised(pcall(docker.node.update, "self", { availability = "off" }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 1) .. ': docker%.node%.update: availability must be "active", "pause" or "drain", got off', err)
      err = raised(pcall(docker.node.update, "slipway-no-such-node", { availability = "active" }))
      assert.matches("docker_maintenance_spec%.lua:" .. (line + 3) .. ": docker%.node%.update: slipway%-no%-such%-node: ", err)
    end)
  end)

  describe("examples/scripts", function()
    it("scale.lua, versions.lua, logs.lua run against the engine", function()
      local r = script("scale.lua", service, "2")
      assert.same({ 0, "" }, { r.code, r.stderr })
      assert.matches(service .. ": 1 %-> 2 replicas, running", r.stdout)
      r = script("scale.lua", service, "1")
      assert.same(0, r.code)
      r = script("versions.lua")
      assert.same(0, r.code, r.stderr)
      assert.matches("SERVICE%s+IMAGE%s+RUNNING", r.stdout)
      assert.matches(service .. "%s+" .. APP:gsub("%p", "%%%0") .. "%s+1/1", r.stdout)
      r = script("logs.lua", service, "5")
      assert.same(0, r.code, r.stderr)
      assert.matches("health maintenance: mode healthy, listening on 8080", r.stdout)
    end)

    it("prune.lua and node.lua run against the engine", function()
      local r = script("prune.lua", "--label", LABEL .. "=" .. fx.unique("none"))
      assert.same({ 0, "" }, { r.code, r.stderr })
      assert.matches("removed 0 containers, 0 images; reclaimed 0%.0 kB", r.stdout)
      r = script("node.lua")
      assert.same(0, r.code, r.stderr)
      assert.matches("HOSTNAME%s+ROLE%s+STATUS%s+AVAIL", r.stdout)
      assert.matches("manager%s+ready%s+active", r.stdout)
      local host = docker.node.list()[1].hostname
      finally(function() docker.node.update(host, { availability = "active" }) end)
      r = script("node.lua", host, "pause")
      assert.same({ 0, host .. ": availability pause\n" }, { r.code, r.stdout })
      r = script("node.lua", host, "active")
      assert.same({ 0, host .. ": availability active\n" }, { r.code, r.stdout })
    end)

    it("each exits 2 with a usage line on bad arguments", function()
      for _, case in ipairs({ { "scale.lua" }, { "scale.lua", "web", "x" }, { "versions.lua", "--x" },
          { "prune.lua", "--until" }, { "logs.lua" }, { "node.lua", "n1", "off" } }) do
        local r = script(table.unpack(case))
        assert.same({ case[1], 2, "" }, { case[1], r.code, r.stdout })
        assert.matches("^usage: slipway " .. case[1]:gsub("%p", "%%%0"), r.stderr)
      end
    end)
  end)
end)
