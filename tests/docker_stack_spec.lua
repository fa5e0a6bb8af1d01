-- docker.stack: compose Stack -> service specs, and deploy / wait /
-- stack-wide rollback against the real swarm (tests/infra/up).
local docker = require("slipway.docker")
local convert = require("slipway.docker.convert")
local json = require("slipway.json")
local task = require("slipway.task")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

describe("docker.stack", function()
  describe("convert", function()
    it("converts a service the way docker stack deploy does", function()
      local stack = {
        services = {
          web = {
            image = "nginx",
            command = { "serve", "--port", "80" },
            entrypoint = { "/bin/app" },
            environment = { B = "2", A = "1", EMPTY = json.null },
            labels = { tier = "front" },
            hostname = "h", user = "app", working_dir = "/srv",
            extra_hosts = { "db.local:10.0.0.5", "v6:::1" },
            healthcheck = { test = { "CMD", "/health", "healthcheck" }, interval = "1m30s", timeout = "1.5s",
                            retries = 3, start_period = "500ms" },
            stop_grace_period = "20s",
            cap_add = { "net_admin", "CAP_SYS_TIME" }, cap_drop = { "mknod" },
            ulimits = { nproc = 65535, nofile = { soft = 20000, hard = 40000 } },
            ports = { { mode = "ingress", target = 80, published = 8080, protocol = "tcp" },
                      { mode = "host", target = 443, published = 443, protocol = "tcp" } },
            volumes = { { type = "volume", source = "data", target = "/data", read_only = true },
                        { type = "bind", source = "/etc/x", target = "/x" },
                        { type = "tmpfs", target = "/tmp", tmpfs = { size = 1000 } } },
            secrets = { { source = "key" }, { source = "ext", target = "/run/x", uid = "1", gid = "2", mode = 256 } },
            networks = { front = { aliases = { "www" } }, back = json.null },
            deploy = {
              mode = "replicated", replicas = 3, labels = { team = "a" },
              update_config = { parallelism = 2, delay = "10s", failure_action = "rollback", monitor = "1m0s",
                                max_failure_ratio = 0.3, order = "start-first" },
              rollback_config = { monitor = "5s" },
              restart_policy = { condition = "on-failure", delay = "5s", max_attempts = 3, window = "2m0s" },
              resources = { limits = { cpus = "0.5", memory = "52428800", pids = 100 },
                            reservations = { cpus = "0.25", memory = "20M" } },
              placement = { constraints = { "node.role==manager" }, preferences = { { spread = "node.labels.az" } },
                            max_replicas_per_node = 2 },
              endpoint_mode = "VIP",
            },
          },
        },
        networks = { front = {}, back = { name = "shared-back", external = true } },
        volumes = { data = { driver = "local", labels = { keep = "yes" } } },
        secrets = { key = { file = "/dev/null" }, ext = { name = "prod-ext", external = true } },
      }
      local conv = assert(convert.stack("shop", stack))
      local spec = conv.services.web
      assert.same({
        Name = "shop_web",
        Labels = { team = "a", ["com.docker.stack.namespace"] = "shop", ["com.docker.stack.image"] = "nginx" },
        TaskTemplate = {
          ContainerSpec = {
            Image = "nginx",
            Labels = { tier = "front", ["com.docker.stack.namespace"] = "shop" },
            Command = { "/bin/app" }, Args = { "serve", "--port", "80" },
            Hostname = "h", Dir = "/srv", User = "app",
            Env = { "A=1", "B=2", "EMPTY" },
            Privileges = {},
            Mounts = {
              { Type = "volume", Source = "shop_data", Target = "/data", ReadOnly = true,
                VolumeOptions = { Labels = { keep = "yes", ["com.docker.stack.namespace"] = "shop" },
                                  DriverConfig = { Name = "local" } } },
              { Type = "bind", Source = "/etc/x", Target = "/x" },
              { Type = "tmpfs", Target = "/tmp", TmpfsOptions = { SizeBytes = 1000 } },
            },
            StopGracePeriod = 20000000000,
            Healthcheck = { Test = { "CMD", "/health", "healthcheck" }, Interval = 90000000000,
                            Timeout = 1500000000, Retries = 3, StartPeriod = 500000000 },
            Hosts = { "10.0.0.5 db.local", "::1 v6" },
            Secrets = {
              { key = "ext", name = "prod-ext", File = { Name = "/run/x", UID = "1", GID = "2", Mode = 256 } },
              { key = "key", name = "shop_key", File = { Name = "key", UID = "0", GID = "0", Mode = 292 } },
            },
            CapabilityAdd = { "CAP_NET_ADMIN", "CAP_SYS_TIME" }, CapabilityDrop = { "CAP_MKNOD" },
            Ulimits = { { Name = "nofile", Soft = 20000, Hard = 40000 }, { Name = "nproc", Soft = 65535, Hard = 65535 } },
          },
          Resources = { Limits = { NanoCPUs = 500000000, MemoryBytes = 52428800, Pids = 100 },
                        Reservations = { NanoCPUs = 250000000, MemoryBytes = 20971520 } },
          RestartPolicy = { Condition = "on-failure", Delay = 5000000000, MaxAttempts = 3, Window = 120000000000 },
          Placement = { Constraints = { "node.role==manager" },
                        Preferences = { { Spread = { SpreadDescriptor = "node.labels.az" } } }, MaxReplicas = 2 },
          Networks = { { Target = "shared-back", Aliases = { "web" } },
                       { Target = "shop_front", Aliases = { "www", "web" } } },
        },
        EndpointSpec = { Mode = "vip", Ports = {
          { Protocol = "tcp", TargetPort = 443, PublishedPort = 443, PublishMode = "host" },
          { Protocol = "tcp", TargetPort = 80, PublishedPort = 8080, PublishMode = "ingress" } } },
        Mode = { Replicated = { Replicas = 3 } },
        UpdateConfig = { Parallelism = 2, Delay = 10000000000, FailureAction = "rollback", Monitor = 60000000000,
                         MaxFailureRatio = 0.3, Order = "start-first" },
        RollbackConfig = { Parallelism = 1, Delay = 0, Monitor = 5000000000, MaxFailureRatio = 0 },
      }, spec)
      assert.same({ "shop_front" }, convert.sorted_keys(conv.networks))
      assert.same({ "shared-back" }, conv.external_networks)
      assert.same("overlay", conv.networks.shop_front.Driver)
      assert.same(1, #conv.secrets)
      assert.same("shop_key", conv.secrets[1].name)
    end)

    it("maps restart, global and job modes, and the default network", function()
      local conv = assert(convert.stack("s", { services = {
        a = { image = "x:1", restart = "on-failure:4", deploy = { mode = "global" } },
        b = { image = "x:1", restart = "always", deploy = { mode = "replicated-job", replicas = 3 } },
        c = { image = "x:1", restart = "no", deploy = { mode = "global-job" } },
      } }))
      assert.same({ Condition = "on-failure", MaxAttempts = 4 }, conv.services.a.TaskTemplate.RestartPolicy)
      assert.same({ Global = {} }, conv.services.a.Mode)
      assert.same({ Condition = "any" }, conv.services.b.TaskTemplate.RestartPolicy)
      assert.same({ ReplicatedJob = { MaxConcurrent = 3, TotalCompletions = 3 } }, conv.services.b.Mode)
      assert.same(nil, conv.services.c.TaskTemplate.RestartPolicy)
      assert.same({ { Target = "s_default", Aliases = { "c" } } }, conv.services.c.TaskTemplate.Networks)
      assert.same({ "s_default" }, convert.sorted_keys(conv.networks))
    end)

    it("reads Go durations, sizes, CPUs and shell commands like the CLI", function()
      assert.same({ 90000000000, 1500000000, 250000000, 3600000000000, 0, 2000 },
        { convert.duration_ns("1m30s"), convert.duration_ns("1.5s"), convert.duration_ns("250ms"),
          convert.duration_ns("1h"), convert.duration_ns("0"), convert.duration_ns("2us") })
      assert.same({ 52428800, 52428800, 1073741824, 512 },
        { convert.bytes("52428800"), convert.bytes("50M"), convert.bytes("1g"), convert.bytes(512) })
      assert.same({ 500000000, 1000, 2000000000 },
        { convert.nano_cpus("0.5"), convert.nano_cpus("0.000001"), convert.nano_cpus("2") })
      assert.same({ "sh", "-c", "echo 'a b' \"c\"", "x y" },
        convert.shell_split([[sh -c "echo 'a b' \"c\"" x\ y]]))
    end)

    it("rejects what docker stack deploy rejects, with its message", function()
      assert.same({ nil, 'service a: undefined network "nope"' },
        { convert.stack("s", { services = { a = { image = "x", networks = { nope = json.null } } } }) })
      assert.same({ nil, "service a: replicas can only be used with replicated or replicated-job mode" },
        { convert.stack("s", { services = { a = { image = "x", deploy = { mode = "global", replicas = 2 } } } }) })
      assert.same({ nil, 'service a: undefined secret "k"' },
        { convert.stack("s", { services = { a = { image = "x", secrets = { { source = "k" } } } } }) })
      assert.same({ nil, "service a: value is too precise" },
        { convert.stack("s", { services = { a = { image = "x", deploy = { resources = { limits = { cpus = "0.0000000001" } } } } } }) })
      assert.same({ nil, 'bad duration "5 minutes" for stop_grace_period (expected e.g. 10s, 1m30s, 500ms)' },
        { convert.stack("s", { services = { a = { image = "x", stop_grace_period = "5 minutes" } } }) })
    end)
  end)

  describe("deploy", function()
    leaks.check()

    local function app_stack(tags, extra)
      local services = {}
      for name, tag in pairs(tags) do
        services[name] = {
          image = tag,
          deploy = {
            replicas = 2,
            update_config = { parallelism = 1, monitor = "1s", failure_action = "pause" },
            restart_policy = { condition = "any", delay = "1s" },
          },
        }
        for k, v in pairs(extra or {}) do services[name][k] = v end
      end
      return { services = services }
    end

    local specs_of = fx.live_specs

    it("builds 3 images in parallel, deploys, updates, and rolls a broken update back stack-wide", function()
      local name = fx.unique("e2e")
      local apps = { "api", "web", "worker" }
      local function tag(app, v) return ("%s/slipway-e2e-%s:%s"):format(REG, app, v) end
      fx.app_binary()
      -- build + push v1 of three images in parallel
      local function build_and_push(app, v, args)
        docker.build({ context = "tests/apps", tag = tag(app, v), build_args = args })
        return docker.push(tag(app, v))
      end
      local jobs = {}
      for i, app in ipairs(apps) do
        jobs[i] = task.spawn(build_and_push, app, "v1", { VERSION = app .. "-v1" })
      end
      local digests = {}
      for i, app in ipairs(apps) do digests[app] = jobs[i]:join() end
      -- v2 of each, and a broken web (it exits at start), also in parallel
      jobs = {}
      for i, app in ipairs(apps) do
        jobs[i] = task.spawn(build_and_push, app, "v2", { VERSION = app .. "-v2" })
      end
      jobs[4] = task.spawn(build_and_push, "web", "broken", { VERSION = "broken", MODE = "crash" })
      for i = 1, 4 do jobs[i]:join() end

      local function tags_for(v, web)
        return { api = tag("api", v), web = tag("web", web or v), worker = tag("worker", v) }
      end

      -- run 1: v1, converged
      local r1 = docker.stack.deploy(name, app_stack(tags_for("v1")), { timeout = "90s" })
      assert.is_true(r1.converged)
      assert.same({ "created", "created", "created" },
        { r1.services.api.action, r1.services.web.action, r1.services.worker.action })
      local v1 = specs_of(name)
      for _, app in ipairs(apps) do
        local s = docker.service.inspect(name .. "_" .. app)
        assert.same(tag(app, "v1") .. "@" .. digests[app], s.Spec.TaskTemplate.ContainerSpec.Image)
        local running = 0
        for _, t in ipairs(docker.service.tasks(s.ID)) do
          if t.DesiredState == "running" and t.Status.State == "running" then running = running + 1 end
        end
        assert.same(2, running)
      end

      -- run 2: v2 converges...
      local r2 = docker.stack.deploy(name, app_stack(tags_for("v2")), { timeout = "90s" })
      assert.is_true(r2.converged)
      assert.same("updated", r2.services.web.action)
      local v2 = specs_of(name)
      assert.matches("slipway%-e2e%-api:v2@sha256:", v2[name .. "_api"].TaskTemplate.ContainerSpec.Image)

      -- ...then a broken web: Swarm pauses the update, slipway rolls every
      -- service of the stack back to the spec it had (v2)
      local run, ok, err = require("support.fake_run").within(function()
        local r = docker.stack.deploy(name, app_stack(tags_for("v2", "broken")), { timeout = "90s" })
        return r       -- (not a tail call: the error names this line)
      end)
      local entries = {}
      for _, c in ipairs(run.changes) do entries[#entries + 1] = c[1] end
      assert.is_false(ok)
      -- the release record: the deploy recorded its change (web updated;
      -- api and worker are on v2 already, so left alone), then marked it
      -- rolled back itself (so a pipeline does not undo it twice)
      local broken = entries[1]
      assert.same({ "docker.stack", name, "updated 1 service, 2 unchanged", "rolled_back" },
        { broken.kind, broken.target, broken.summary, broken.status })
      assert.same(entries[1], entries[#entries])
      assert.matches("update paused", broken.details.reason)
      assert.matches("^tests/docker_stack_spec.lua:%d+: docker.stack.deploy: " .. name
        .. ": " .. name .. "_web: update paused: .* exit %(3%).* %(the stack was rolled back%)$", err)
      local after = specs_of(name)
      for _, app in ipairs(apps) do
        local full = name .. "_" .. app
        assert.is_true(docker.stack.same(v2[full], after[full]), full .. " is back on its v2 spec")
      end

      -- the run fails, so the run's earlier change (v2) is undone too, in
      -- reverse order, as the pipeline does with release records
      r2.change.undo()
      require("slipway.context").mark_change(r2.change, "rolled_back", { reason = "a later deploy failed" })
      local final = specs_of(name)
      for _, app in ipairs(apps) do
        local full = name .. "_" .. app
        assert.is_true(docker.stack.same(v1[full], final[full]), full .. " is back on its v1 spec")
      end
      assert.same("rolled_back", r2.change.status)
      fx.remove_stack(name)
    end)

    it("names secrets by content: a rotated value is a new secret and the old one goes", function()
      local name = fx.unique("sec")
      local dir = fx.tmpdir()
      local tagv = REG .. "/slipway-e2e-api:v1"
      if not docker.exists(tagv) then fx.app_image(tagv, { VERSION = "api-v1" }) end
      local function stack()
        return {
          services = { app = { image = tagv, secrets = { { source = "token" } }, deploy = { replicas = 1,
            update_config = { monitor = "1s" } } } },
          secrets = { token = { file = dir .. "/token" } },
        }
      end
      fx.write(dir .. "/token", "one")
      docker.stack.deploy(name, stack(), { timeout = "60s" })
      local function secret_names()
        local out = {}
        local list = fx.client.default():call("t", "GET", "/secrets", { query = { filters = json.encode({
          label = { "com.docker.stack.namespace=" .. name } }) } })
        for _, s in ipairs(list) do out[#out + 1] = s.Spec.Name end
        table.sort(out)
        return out
      end
      local h1 = require("slipway.hash").sha256("one"):sub(1, 12)
      local h2 = require("slipway.hash").sha256("two"):sub(1, 12)
      assert.same({ name .. "_token_" .. h1 }, secret_names())
      local ref = docker.service.inspect(name .. "_app").Spec.TaskTemplate.ContainerSpec.Secrets[1]
      assert.same({ name .. "_token_" .. h1, "token" }, { ref.SecretName, ref.File.Name })
      fx.write(dir .. "/token", "two")
      docker.stack.deploy(name, stack(), { timeout = "60s" })
      ref = docker.service.inspect(name .. "_app").Spec.TaskTemplate.ContainerSpec.Secrets[1]
      assert.same(name .. "_token_" .. h2, ref.SecretName)
      assert.same({ name .. "_token_" .. h2 }, secret_names())
      -- the same value again: the same secret, the service left alone
      local again = docker.stack.deploy(name, stack(), { timeout = "60s" })
      assert.same("unchanged", again.services.app.action)
      fx.remove_stack(name)
      fx.rmtree(dir)
    end)

    it("waits for one-shot jobs to complete and prunes services no longer in the file", function()
      local name = fx.unique("job")
      local tagv = REG .. "/slipway-e2e-api:v1"
      if not docker.exists(tagv) then fx.app_image(tagv, { VERSION = "api-v1" }) end
      local r = docker.stack.deploy(name, { services = {
        once = { image = tagv, environment = { MODE = "exit" }, deploy = { mode = "replicated-job", replicas = 2 } },
        keep = { image = tagv, deploy = { replicas = 1 } },
      } }, { timeout = "60s" })
      assert.is_true(r.converged)
      local complete = 0
      for _, t in ipairs(docker.service.tasks(name .. "_once")) do
        if t.Status.State == "complete" then complete = complete + 1 end
      end
      assert.same(2, complete)
      -- what the job printed, from the engine's multiplexed log stream
      local logs = docker.service.logs(name .. "_once")
      assert.same({ { stream = "stdout", text = "health api-v1: done" }, { stream = "stdout", text = "health api-v1: done" } }, logs)
      r = docker.stack.deploy(name, { services = { keep = { image = tagv, deploy = { replicas = 1 } } } },
        { timeout = "60s", prune = true })
      assert.same("removed", r.services.once.action)
      assert.same({ name .. "_keep" }, (function()
        local out = {}
        for _, s in ipairs(docker.stack.services(name)) do out[#out + 1] = s.Spec.Name end
        return out
      end)())
      fx.remove_stack(name)
    end)

    it("redeploys an unchanged stack without restarting a task", function()
      local name = fx.unique("same")
      local tagv = REG .. "/slipway-e2e-api:v1"
      if not docker.exists(tagv) then fx.app_image(tagv, { VERSION = "api-v1" }) docker.push(tagv) end
      local stack = { services = { app = { image = tagv, deploy = { replicas = 1 } } } }
      docker.stack.deploy(name, stack, { timeout = "60s" })
      local function running_tasks()
        local ids = {}
        for _, t in ipairs(docker.service.tasks(name .. "_app")) do
          if t.DesiredState == "running" then ids[#ids + 1] = t.ID end
        end
        return ids
      end
      local before = running_tasks()
      local version = docker.service.inspect(name .. "_app").Version.Index
      local r = docker.stack.deploy(name, stack, { timeout = "60s" })
      assert.same("unchanged", r.services.app.action)
      assert.same("1 unchanged", r.summary)
      assert.same(before, running_tasks())
      assert.same(1, #before)
      -- nothing was sent: the service's version did not move
      assert.same(version, docker.service.inspect(name .. "_app").Version.Index)
      fx.remove_stack(name)
    end)

    it("finds a stack with everything the converter knows unchanged when it is deployed again", function()
      local name = fx.unique("full")
      finally(function() fx.remove_stack(name) end)
      local tagv = fx.registry .. "/slipway-conformance:v1"
      if not docker.exists(tagv) then fx.app_image(tagv, { VERSION = "conformance" }) end
      docker.push(tagv, { quiet = true })
      local file = "tests/support/docker_stacks/app-full.yml"
      local first = docker.stack.deploy(name, require("slipway.compose").load(file), { wait = false, quiet = true })
      assert.same("4 created", first.summary)
      -- secrets, configs, ports, healthcheck, resources, placement, networks...
      local again = docker.stack.deploy(name, require("slipway.compose").load(file), { wait = false, quiet = true })
      assert.same("4 unchanged", again.summary)
      -- a change behind the deploy's back is a difference
      local web = docker.service.inspect(name .. "_web")
      web.Spec.Labels.extra = "by hand"
      docker.service.update(web.ID, web.Spec, { version = web.Version.Index, resolve_image = false })
      local third = docker.stack.deploy(name, require("slipway.compose").load(file), { wait = false, quiet = true })
      assert.same({ "3 unchanged, 1 updated", "updated" }, { third.summary, third.services.web.action })
      assert.matches("^Labels%.extra: unset vs \"by hand\"$", third.services.web.difference)
    end)

    it("is undone by the pipeline when a later task of the run fails", function()
      local name = fx.unique("run")
      local tagv = REG .. "/slipway-e2e-api:v1"
      if not docker.exists(tagv) then fx.app_image(tagv, { VERSION = "api-v1" }) docker.push(tagv) end
      -- a copy, so that the run records (.slipway/ next to it) stay out of the tree
      local dir = fx.tmpdir()
      require("slipway.proc").run({ "cp", "tests/support/docker_pipeline/deploy.lua", dir .. "/deploy.lua" })
      local function run(version, fail)
        return require("slipway.proc").run({ os.getenv("SLIPWAY") or "build/slipway", "run",
          dir .. "/deploy.lua", "-p", "stack=" .. name, "-p", "image=" .. tagv,
          "-p", "version=" .. version, "-p", "fail=" .. tostring(fail), "--json" })
      end
      local r1 = run("one", false)
      assert.same(0, r1.code)
      local v1 = docker.service.inspect(name .. "_app").Spec
      local r2 = run("two", true)
      assert.same(1, r2.code)
      -- the run's events: the deploy's change was rolled back by the run
      local rolled = false
      for line in r2.stdout:gmatch("[^\n]+") do
        local ok, ev = pcall(json.decode, line)
        if ok and type(ev) == "table" and ev.type == "run_finished" then rolled = ev.status == "rolled_back" end
      end
      assert.is_true(rolled, r2.stdout)
      assert.is_true(docker.stack.same(v1, docker.service.inspect(name .. "_app").Spec))
      fx.rmtree(dir)
      fx.remove_stack(name)
    end)

    it("refuses bad arguments naming the caller's line", function()
      assert.matches("^tests/docker_stack_spec.lua:%d+: docker.stack.deploy: unknown option 'wiat'",
        raises(docker.stack.deploy, "s", { services = {} }, { wiat = true }))
      assert.matches("^tests/docker_stack_spec.lua:%d+: docker.stack.deploy: stack name must be",
        raises(docker.stack.deploy, "bad name", { services = {} }))
    end)
  end)
end)
