-- preview, up, refresh and destroy of the fake Pulumi CLI (pulumi.lua):
-- the stack lock, the steps, the engine events, the new state, history.
-- SIGINT stops before the next step, writes a "canceled" summary, releases
-- the lock and exits, as the real engine does on a first Ctrl-C; SIGTERM
-- exits at once (the lock stays). The signal is recorded in FAKE_PULUMI_LOG.
local json = require("slipway.json")
local task = require("slipway.task")

return function(cmd, h)
  local engine = h.engine

  local function name_of(urn) return urn:match("::([^:]*)$") end

  -- The resources of a state: name -> { type, urn, id, inputs }.
  local function old_resources(c)
    local old = {}
    for _, r in ipairs(c.st.checkpoint.latest.resources) do
      if r.type ~= "pulumi:pulumi:Stack" then
        old[name_of(r.urn)] = { name = name_of(r.urn), type = r.type, urn = r.urn, id = r.id, replace_on = {},
          inputs = engine.unshown(r.inputs, function(ct) return h.manager(c).decrypt(ct) end) }
      end
    end
    return old
  end

  -- The events of a benchmark: n of them, resource steps shaped like the
  -- recorded EKS update, written in bursts while the reader tails the log.
  local function bench(log, c, n)
    local stack_urn = engine.stack_urn(c.stack, c.proj)
    local policy = '{"Version":"2008-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    -- the prelude is out: the stack's steps, resource pairs, summary and cancel make the rest
    local batch = { { "resourcePreEvent", { metadata = engine.metadata("same", "pulumi:pulumi:Stack", stack_urn, nil, nil) } } }
    local pairs_n = (n - 5) // 2
    for i = 1, pairs_n do
      local name = ("role-%d"):format(i)
      local r = { type = "aws:iam/role:Role", urn = engine.urn(c.stack, c.proj, "aws:iam/role:Role", name), id = name .. "-24b1266",
        inputs = { assumeRolePolicy = { v = policy }, forceDetachPolicies = { v = false }, maxSessionDuration = { v = 3600 },
                   name = { v = name .. "-24b1266" }, path = { v = "/" },
                   managedPolicyArns = { v = json.array({ "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", "arn:aws:iam::aws:policy/AmazonEKSServicePolicy" }) } } }
      local new = engine.resource_state(r, stack_urn, false)
      batch[#batch + 1] = { "resourcePreEvent", { metadata = engine.metadata("create", r.type, r.urn, nil, new) } }
      batch[#batch + 1] = { "resOutputsEvent", { metadata = engine.metadata("create", r.type, r.urn, nil,
        engine.resource_state(r, stack_urn, true)) } }
      if #batch >= 500 then
        log:emit_batch(batch)
        batch = {}
        task.sleep(0.005)
      end
    end
    batch[#batch + 1] = { "resOutputsEvent", { metadata = engine.metadata("same", "pulumi:pulumi:Stack", stack_urn, nil, nil) } }
    batch[#batch + 1] = { "summaryEvent", { maybeCorrupt = false, durationSeconds = 1, resourceChanges = { create = pairs_n, same = 1 },
      PolicyPacks = json.object({}), isPreview = false, result = "succeeded" } }
    if (n - 5) % 2 == 1 then
      batch[#batch + 1] = { "diagnosticEvent", engine.diagnostic("info", "benchmark done", stack_urn) }
    end
    batch[#batch + 1] = { "cancelEvent", json.object({}) }
    log:emit_batch(batch)
  end

  local function operation(kind, flags)
    local c = h.stack_context(flags)
    local preview = kind == "preview" or flags["preview-only"] == true
    if not preview and not flags.yes then
      h.die("--yes or --skip-preview must be passed in to proceed when running in non-interactive mode")
    end
    local sm = h.manager(c)
    local cfg = h.read_config(c.stack, sm)

    local signal = require("slipway.signal")
    local watcher = signal.watch({ "SIGINT", "SIGTERM" })
    local got
    local sigtask = task.spawn(function()
      local name = watcher:next()
      if not name then return end
      got = name
      h.log_run({ signal = name })
      if name == "SIGTERM" then os.exit(143) end
      io.stdout:write("^C received; cancelling the current operation. Press ^C again to force cancel.\n")
    end)
    local function pause(seconds)
      local deadline = task.now() + seconds * 1000
      while not got and task.now() < deadline do task.sleep(0.02) end
    end

    local lock = not preview and h.take_lock(c.b, c.proj, c.stack)
    local log = engine.event_log(flags["event-log"])
    local version = #c.st.fake.history + 1
    local started = os.time()
    if c.b.kind == "service" then
      print(("View in Browser (Ctrl+O): https://app.pulumi.com/organization/%s/%s/%s"):format(c.proj, c.stack,
        preview and "previews/" .. version or "updates/" .. version))
    end
    local titles = { preview = "Previewing update", update = "Updating", refresh = "Refreshing", destroy = "Destroying" }
    print(("%s (%s):"):format(preview and (kind == "update" and "Previewing update" or "Previewing " .. kind) or titles[kind], c.stack))

    local shown_cfg = {}
    for k, v in pairs(cfg) do shown_cfg[k] = v.secret and "[secret]" or v.value end
    log:emit("preludeEvent", { config = json.object(shown_cfg) })

    if os.getenv("FAKE_PULUMI_BENCH_EVENTS") then
      bench(log, c, tonumber(os.getenv("FAKE_PULUMI_BENCH_EVENTS")))
      log:close()
      if lock then os.remove(lock) end
      watcher:close()
      sigtask:cancel()
      return
    end

    local stack_urn = engine.stack_urn(c.stack, c.proj)
    local old = old_resources(c)
    local old_outputs = h.outputs_of(c)
    local planning = preview or nil
    local first = #c.st.checkpoint.latest.resources == 0
    local stack_op = kind == "destroy" and "delete" or first and "create" or "same"
    local stack_old = not first and engine.stack_state(c.stack, c.proj, old_outputs) or nil
    log:emit("resourcePreEvent", { metadata = engine.metadata(stack_op, "pulumi:pulumi:Stack", stack_urn, stack_old,
      engine.stack_state(c.stack, c.proj, {})), planning = planning })
    if os.getenv("FAKE_PULUMI_WARN") then
      log:emit("diagnosticEvent", engine.diagnostic("warning", os.getenv("FAKE_PULUMI_WARN"), stack_urn))
    end
    if os.getenv("FAKE_PULUMI_INFO") then
      log:emit("diagnosticEvent", engine.diagnostic("info", os.getenv("FAKE_PULUMI_INFO"), stack_urn))
    end

    local steps, outputs
    if kind == "refresh" then
      steps = {}
      for _, name in ipairs(engine.sorted(old)) do
        local drift = os.getenv("FAKE_PULUMI_DRIFT") == name
        steps[#steps + 1] = { op = "refresh", shown_op = drift and "update" or "same", resource = old[name], old = old[name],
                              diffs = drift and { "tags" } or nil }
      end
    elseif kind == "destroy" then
      steps = {}
      local names = engine.sorted(old)
      for n = #names, 1, -1 do steps[#steps + 1] = { op = "delete", resource = old[names[n]], old = old[names[n]] } end
    else
      local ok, resources, outs = pcall(engine.evaluate, c.program, cfg, c.stack, c.proj)
      if not ok then
        log:emit("diagnosticEvent", engine.diagnostic("error", resources, stack_urn))
        log:emit("summaryEvent", { maybeCorrupt = false, durationSeconds = 0, resourceChanges = json.object({}),
          PolicyPacks = json.object({}), isPreview = preview, result = "failed" })
        log:emit("cancelEvent", json.object({}))
        if lock then os.remove(lock) end
        h.die(resources)
      end
      steps, outputs = engine.diff(old, resources), outs
    end

    local delay = tonumber(os.getenv("FAKE_PULUMI_DELAY") or "0")
    local failing = not preview and os.getenv("FAKE_PULUMI_FAIL")
    local changes, failed, done = {}, false, {}
    local cipher = function(text) return sm.encrypt(text) end
    for _, step in ipairs(steps) do
      if delay > 0 then pause(delay) end
      if got then break end
      local r = step.resource
      local extra = { diffs = step.diffs and json.array(step.diffs) or nil,
                      detailedDiff = step.detailed and next(step.detailed) and step.detailed or nil }
      local old_state = step.old and engine.resource_state(step.old, stack_urn, true) or nil
      local new_state = step.op ~= "delete" and engine.resource_state(r, stack_urn, false) or nil
      local subs = step.op == "replace" and { "create-replacement", "replace", "delete-replaced" } or { step.op }
      for _, op in ipairs(subs) do
        local meta = engine.metadata(op, r.type, r.urn, old_state, new_state, extra)
        log:emit("resourcePreEvent", { metadata = meta, planning = planning })
        if failing == r.name then
          log:emit("diagnosticEvent", engine.diagnostic("error",
            ("%s %s: %s"):format(op == "delete" and "deleting" or op == "create" and "creating" or "updating", r.urn,
              os.getenv("FAKE_PULUMI_FAIL_MESSAGE") or "AccessDenied: not authorized to perform this operation"), r.urn))
          log:emit("resOpFailedEvent", { metadata = meta, status = 2, steps = 1 })
          failed = true
          break
        end
        local out_op = step.shown_op or op
        local after = out_op ~= "delete" and op ~= "delete-replaced" and engine.resource_state(r, stack_urn, true) or nil
        log:emit("resOutputsEvent", { metadata = engine.metadata(out_op, r.type, r.urn, old_state, after, extra),
                                      planning = planning })
      end
      if failed then break end
      local counted = step.shown_op or step.op
      changes[counted] = (changes[counted] or 0) + 1
      done[r.name] = step
    end
    if stack_op ~= "delete" and not got then changes[stack_op] = (changes[stack_op] or 0) + 1 end

    -- the state after the steps that were done
    local final_outputs = (failed or got or preview) and old_outputs or (kind == "destroy" and {} or outputs or old_outputs)
    if kind ~= "update" and kind ~= "preview" then final_outputs = kind == "destroy" and {} or old_outputs end
    log:emit("resOutputsEvent", { metadata = engine.metadata(stack_op, "pulumi:pulumi:Stack", stack_urn, stack_old,
      engine.stack_state(c.stack, c.proj, final_outputs)), planning = planning })
    local result = got and "canceled" or failed and "failed" or "succeeded"
    if failed then
      log:emit("diagnosticEvent", engine.diagnostic("error", kind == "update" and "update failed" or kind .. " failed"))
    end
    log:emit("summaryEvent", { maybeCorrupt = false, durationSeconds = os.time() - started,
      resourceChanges = json.object(changes), PolicyPacks = json.object({}), isPreview = preview, result = result })
    log:emit("cancelEvent", json.object({}))
    log:close()

    if not preview then
      local resources = {}
      local names = engine.sorted(old)
      local program_order = {}
      for _, step in ipairs(steps) do program_order[#program_order + 1] = step.resource.name end
      local kept = {}
      for _, name in ipairs(program_order) do
        local step = done[name]
        if step and step.op ~= "delete" then
          resources[#resources + 1] = engine.resource_state(step.resource, stack_urn, true, cipher)
          kept[name] = true
        elseif not step and old[name] then
          resources[#resources + 1] = engine.resource_state(old[name], stack_urn, true, cipher)
          kept[name] = true
        end
      end
      for _, name in ipairs(names) do
        if not kept[name] and not (done[name] and done[name].op == "delete") then
          resources[#resources + 1] = engine.resource_state(old[name], stack_urn, true, cipher)
        end
      end
      if kind ~= "destroy" or #resources > 0 then
        table.insert(resources, 1, engine.stack_state(c.stack, c.proj, final_outputs, cipher))
      end
      c.st.checkpoint.latest.resources = json.array(resources)
      local used = {}
      for k, v in pairs(cfg) do used[k] = { secret = v.secret, value = v.secret and sm.encrypt(v.value) or v.value } end
      c.st.fake.history = json.array(c.st.fake.history)
      table.insert(c.st.fake.history, { version = version, kind = kind, message = flags.message or "",
        startTime = os.date("!%Y-%m-%dT%H:%M:%SZ", started), endTime = os.date("!%Y-%m-%dT%H:%M:%SZ"),
        environment = { ["exec.kind"] = flags["exec-kind"] or "cli" }, config = used, result = result,
        resourceChanges = changes })
      h.save_state(c.b, c.proj, c.stack, c.st)
      if lock then os.remove(lock) end
    end

    print("Resources:")
    for _, op in ipairs(engine.sorted(changes)) do print(("    %s %d"):format(op, changes[op])) end
    print(("\nDuration: %ds"):format(os.time() - started))
    watcher:close()
    sigtask:cancel()
    if got then h.die(kind .. " canceled") end
    if failed then h.die(kind == "update" and "update failed" or kind .. " failed") end
  end

  cmd["preview"] = function(flags) operation("preview", flags) end
  cmd["up"] = function(flags) operation("update", flags) end
  cmd["refresh"] = function(flags) operation("refresh", flags) end
  cmd["destroy"] = function(flags) operation("destroy", flags) end
end
