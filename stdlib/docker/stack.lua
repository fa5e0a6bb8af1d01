-- slipway.docker.stack: deploy a compose Stack to Swarm, wait until it has
-- converged, and roll the whole stack back when it does not.
--
--   stack.deploy(name, stack, opts) -> result
--   stack.rollback(state, opts)     -> undo what one deploy changed
--   stack.services(name, opts)      -> the stack's services
--   stack.rm(name, opts)            -> remove the stack's services, networks,
--                                      secrets and configs
--   stack.convert(name, stack)      -> the service specs (see convert.lua)
--
-- A service whose spec did not change (spec_diff: compared with what the
-- engine stored) is not sent and not waited for; the result says
-- "unchanged" for it and sums up ("3 unchanged, 1 updated").
--
-- deploy opts:
--   wait = true          watch the tasks until every service it created or
--                        updated has its desired
--                        replicas running (healthy where a healthcheck
--                        exists: Swarm only reports such a task running once
--                        it is healthy) on the new spec, updates complete,
--                        jobs completed
--   timeout = "5m"       the deadline of that wait
--   rollback = true      when the wait fails, Swarm pauses or rolls back an
--                        update, or the engine rejects a service: put every
--                        service this deploy changed back on its previous
--                        spec and remove the ones it created, then wait for
--                        that; the error says why and that it rolled back
--   prune = false        remove the stack's services that are not in the file
--   resolve_image = "always" | "changed" | "never"   as `docker stack deploy`
--   auth                 registry credentials (table) sent with creates and
--                        updates (X-Registry-Auth); default: none, like the CLI
--   events = true        wait on the engine's event stream (converge.lua)
--   poll = "250ms"       how often the wait looks while the stream is down
--                        (always, with events = false)
--   record = true        record the change and its undo (slipway.context.add_change:
--                        in a pipeline run, the run's record and rollback)
--   client               a docker client (default: DOCKER_HOST)
--   on_progress(line)    progress lines (default: the command output sink, which
--                        a pipeline run turns into the task's output; quiet =
--                        true: none)
local client = require("slipway.docker.client")
local fs = require("slipway.fs")
local convert = require("slipway.docker.convert")
local converge = require("slipway.docker.converge")
local spec_diff = require("slipway.docker.spec_diff")
local service = require("slipway.docker.service")
local swarm = require("slipway.docker.swarm")
local json = require("slipway.json")
local task = require("slipway.task")
local duration = require("slipway.duration")
local context = require("slipway.context")
local secret = require("slipway.secret")

local M = {}

M.convert = convert.stack

-- A rollback gets at least this long to converge, even when the deploy's
-- own deadline was short: giving up half way would leave a mixed stack.
local ROLLBACK_MIN_MS = 120000

local set = client.set

local function progress_sink(opts)
  if opts.on_progress then return opts.on_progress end
  if opts.quiet then return function() end end
  return function(line) client.output_line("docker.stack: " .. line) end
end

local function ms(v, what)
  local n, err = duration.parse(v)
  if not n then error(client.where() .. ("docker.stack.deploy: %s: %s"):format(what, err), 0) end
  return n
end

---------------------------------------------------------------- comparing

M.same = converge.same

---------------------------------------------------------------- objects

-- Create the stack's secrets/configs (content-named) and look up the
-- external ones. Returns { [name in the spec refs] = { id, name } }.
local function ensure_objects(c, ns, objects, defs, kind, fname)
  local found = {}
  for _, o in ipairs(objects) do
    local data, err
    if o.file then
      data, err = fs.read(o.file)
      if not data then client.raise(("%s: %s: %s %s: %s"):format(fname, ns, kind, o.key, err)) end
    elseif o.content then
      data = secret.is_secret(o.content) and secret.reveal(o.content) or tostring(o.content)
    elseif o.environment then
      data = os.getenv(o.environment)
      if not data then
        client.raise(("%s: %s: %s %s: environment variable %s is not set"):format(fname, ns, kind, o.key, o.environment))
      end
    end
    local r = swarm[kind](o.name, data or "", { client = c, labels = o.labels,
      driver = (kind == "secret" and o.driver) and { Name = o.driver, Options = o.driver_opts } or nil,
      template_driver = o.template_driver })
    found[o.name] = r
  end
  -- external ones: by their name, as they are
  for key, def in pairs(defs or {}) do
    if convert.external(def) then
      local name = (type(def) == "table" and def.name and def.name ~= "") and def.name or key
      local list = c:call(fname, "GET", "/" .. kind .. "s",
        { query = { filters = json.encode({ name = { name } }) } }) or {}
      for _, o in ipairs(list) do
        if o.Spec.Name == name then found[name] = { id = o.ID, name = name } end
      end
    end
  end
  return found
end

local function fill_refs(spec, secrets, configs, fname, ns)
  local cs = spec.TaskTemplate.ContainerSpec
  for _, r in ipairs(cs.Secrets or {}) do
    local o = secrets[r.name]
    if not o then client.raise(("%s: %s: secret not found: %s"):format(fname, ns, r.name)) end
    r.SecretID, r.SecretName, r.key, r.name = o.id, o.name, nil, nil
  end
  for _, r in ipairs(cs.Configs or {}) do
    local o = configs[r.name]
    if not o then client.raise(("%s: %s: config not found: %s"):format(fname, ns, r.name)) end
    r.ConfigID, r.ConfigName, r.key, r.name = o.id, o.name, nil, nil
  end
  table.sort(cs.Secrets or {}, function(a, b) return a.SecretName < b.SecretName end)
  table.sort(cs.Configs or {}, function(a, b) return a.ConfigName < b.ConfigName end)
  local cred = cs.Privileges and cs.Privileges.CredentialSpec
  if cred and cred._config_ref then
    local o = configs[cred.Config]
    cs.Privileges.CredentialSpec = { Config = o and o.id or cred.Config }
  end
end

---------------------------------------------------------------- waiting

local TERMINAL = converge.TERMINAL
M.service_state = converge.service_state

-- Wait until every watched service converged (slipway.docker.converge:
-- driven by the engine's events, polling every poll_ms when the stream
-- is down); returns true or false and { [name] = reason }, and "timeout".
function M.wait(c, watches, timeout_ms, poll_ms, say, opts)
  return converge.wait(c, watches, timeout_ms, poll_ms, say, opts)
end

local function reasons_text(reasons)
  local parts = {}
  for _, name in ipairs(convert.sorted_keys(reasons)) do
    parts[#parts + 1] = name .. ": " .. reasons[name]
  end
  return table.concat(parts, "; ")
end

-- A deploy that converged while nodes went down says which, and what of
-- it ran there: the names of those nodes (nil when none).
local function report_lost_nodes(c, watches, since, say)
  local lost = converge.lost_nodes(c, watches, since)
  local names = convert.sorted_keys(lost)
  for _, node in ipairs(names) do
    table.sort(lost[node])
    say(("node %s is down: its tasks of %s were rescheduled on the other nodes"):format(node,
      table.concat(lost[node], ", ")))
  end
  return #names > 0 and names or nil
end

---------------------------------------------------------------- rollback

-- service.update that survives Swarm bumping the version meanwhile (its
-- updater writes the service while an update runs): on "update out of
-- sequence", read the version again and retry.
local function update_service(c, id, spec, opts)
  for attempt = 1, 6 do
    local ok, res = pcall(service.update, id, spec, opts)
    if ok then return res end
    if attempt == 6 or not tostring(res):find("update out of sequence", 1, true) then error(res, 0) end
    task.sleep(0.05 * attempt)
    opts.version = service.inspect(id, { client = c }).Version.Index
  end
end
M._update_service = update_service

-- Undo one deploy: services it updated go back to the spec they had,
-- services it created are removed, services it pruned come back; then
-- wait for the restored ones. state = result._state of deploy.
function M.rollback(state, opts)
  opts = opts or {}
  local c = state.client
  local say = state.say or function() end
  local errors, watches = {}, {}
  for i = #state.changes, 1, -1 do
    local ch = state.changes[i]
    local ok, err = pcall(function()
      if ch.action == "created" then
        service.rm(ch.id, { client = c, missing_ok = true })
        say(("%s removed (rollback)"):format(ch.name))
      elseif ch.action == "updated" then
        local cur = service.find(ch.id, { client = c })
        if not cur then
          local id = service.create(ch.previous, { client = c, resolve_image = false })
          watches[#watches + 1] = { name = ch.name, id = id }
        else
          local before = cur.UpdateStatus ~= json.null and cur.UpdateStatus and cur.UpdateStatus.StartedAt or nil
          update_service(c, ch.id, ch.previous, { client = c, version = cur.Version.Index, resolve_image = false })
          watches[#watches + 1] = { name = ch.name, id = ch.id, update_started = before }
        end
        say(("%s restored to its previous spec (rollback)"):format(ch.name))
      elseif ch.action == "removed" then
        local id = service.create(ch.previous, { client = c, resolve_image = false })
        watches[#watches + 1] = { name = ch.name, id = id }
      end
    end)
    if not ok then errors[#errors + 1] = ch.name .. ": " .. tostring(err) end
  end
  local converged, reasons = true, {}
  if #watches > 0 and opts.wait ~= false then
    converged, reasons = M.wait(c, watches, opts.timeout_ms or state.timeout_ms or 300000,
      state.poll_ms or 250, say, { events = state.events })
  end
  if #errors > 0 or not converged then
    local msg = table.concat(errors, "; ")
    if not converged then msg = msg .. (msg ~= "" and "; " or "") .. "not converged: " .. reasons_text(reasons) end
    return false, msg
  end
  return true
end

---------------------------------------------------------------- deploy

local deploy_opts = set("wait", "timeout", "rollback", "prune", "resolve_image", "auth", "poll",
  "record", "client", "on_progress", "quiet", "events")

local COUNT_ORDER = { "unchanged", "created", "updated", "removed" }

-- "3 unchanged, 1 updated": the counts of the actions, in that order.
local function counts_text(counts)
  local parts = {}
  for _, k in ipairs(COUNT_ORDER) do
    if (counts[k] or 0) > 0 then parts[#parts + 1] = ("%d %s"):format(counts[k], k) end
  end
  return #parts > 0 and table.concat(parts, ", ") or "no services"
end
M._counts_text = counts_text

-- The change summary for the record: "updated 1 service, 2 unchanged".
local function change_summary(counts)
  local words = require("slipway.words")
  local parts = {}
  for _, k in ipairs({ "created", "updated", "removed" }) do
    if counts[k] > 0 then parts[#parts + 1] = ("%s %s"):format(k, words.count(counts[k], "service")) end
  end
  if counts.unchanged > 0 then parts[#parts + 1] = ("%d unchanged"):format(counts.unchanged) end
  return #parts > 0 and table.concat(parts, ", ") or "no services"
end

-- The change a deploy (or a restore) made, for the release record
-- (slipway.context.add_change): every service of the stack as it is now,
-- with its full spec (images pinned to digests), and what happened to it;
-- the undo goes back to the specs the services had before. A later
-- `slipway rollback` brings the stack back to these specs (M.restore, the
-- change's restorer). specs = { [service name] = spec }: the stack's
-- services after the change (the removed ones are not in it).
local function record_change(name, state, counts, specs, timeout_ms)
  local data = { stack = name, services = {} }
  local seen = {}
  for _, ch in ipairs(state.changes) do
    seen[ch.name] = true
    data.services[#data.services + 1] = { name = ch.name, id = ch.id, action = ch.action,
      image_before = ch.image_before, spec = specs[ch.name] }
  end
  for _, sname in ipairs(convert.sorted_keys(specs)) do
    if not seen[sname] then
      data.services[#data.services + 1] = { name = sname, action = "unchanged", spec = specs[sname] }
    end
  end
  return context.add_change({
    kind = "docker.stack", target = name, restorer = "slipway.docker.stack",
    summary = change_summary(counts),
    data = data,
    undo = #state.changes > 0 and function()
      local ok, err = M.rollback(state, { timeout_ms = math.max(timeout_ms, ROLLBACK_MIN_MS) })
      if not ok then error(("docker.stack rollback of %s: %s"):format(name, err), 0) end
    end or nil,
  })
end

-- Network id -> name, for comparing specs (the engine stores ids).
local function network_names(c, fname)
  local names = {}
  for _, n in ipairs(c:call(fname, "GET", "/networks") or {}) do names[n.Id] = n.Name end
  return names
end

function M.deploy(name, stack, opts)
  local fname = "docker.stack.deploy"
  if type(name) ~= "string" or not name:match("^[%w][%w_.%-]*$") then
    error(client.where() .. fname .. ": stack name must be a non-empty string of letters, digits, _ . -", 0)
  end
  if type(stack) ~= "table" then
    error(client.where() .. fname .. ": stack must be a table (from compose.load)", 0)
  end
  opts = client.check_opts(fname, opts, deploy_opts)
  local resolve = opts.resolve_image or "always"
  if resolve ~= "always" and resolve ~= "changed" and resolve ~= "never" then
    error(client.where() .. fname .. ": resolve_image must be always, changed or never", 0)
  end
  local c = opts.client or client.default()
  local say = progress_sink(opts)
  local timeout_ms = ms(opts.timeout or "5m", "timeout")
  local poll_ms = ms(opts.poll or "250ms", "poll")

  local manager_info = swarm.ensure_manager({ client = c, what = fname })
  local started_at = tostring(manager_info.SystemTime or ""):sub(1, 19)
  local conv, cerr = convert.stack(name, stack)
  if not conv then client.raise(("%s: %s: %s"):format(fname, name, cerr)) end

  for _, n in ipairs(conv.external_networks) do
    swarm._check_external_network(n, { client = c, what = fname .. ": " .. name })
  end
  for _, nname in ipairs(convert.sorted_keys(conv.networks)) do
    local _, created = swarm.network(nname, conv.networks[nname], { client = c })
    if created then say(("network %s created"):format(nname)) end
  end
  local secrets = ensure_objects(c, name, conv.secrets, stack.secrets, "secret", fname)
  local configs = ensure_objects(c, name, conv.configs, stack.configs, "config", fname)

  local existing = {}
  for _, s in ipairs(service.list({ client = c, stack = name })) do existing[s.Spec.Name] = s end

  local state = { client = c, changes = {}, say = say, timeout_ms = timeout_ms, poll_ms = poll_ms,
    name = name, events = opts.events }
  local result = { name = name, services = {}, warnings = {}, _state = state }
  local counts = { unchanged = 0, created = 0, updated = 0, removed = 0 }

  local function fail_and_rollback(msg)
    if opts.rollback == false or #state.changes == 0 then
      client.raise(("%s: %s: %s"):format(fname, name, msg))
    end
    say("rolling back the stack: " .. msg)
    local ok, rerr = M.rollback(state, { timeout_ms = math.max(timeout_ms, ROLLBACK_MIN_MS) })
    if result.change then
      context.mark_change(result.change, ok and "rolled_back" or "undo_failed",
        { reason = msg, rollback_error = rerr })
    end
    result.rolled_back = ok
    if ok then
      client.raise(("%s: %s: %s (the stack was rolled back)"):format(fname, name, msg))
    end
    client.raise(("%s: %s: %s; the rollback failed too: %s"):format(fname, name, msg, rerr))
  end

  -- prune first, like the CLI
  local watches = {}
  if opts.prune then
    local keep = {}
    for _, s in ipairs(conv.order) do keep[name .. "_" .. s] = true end
    for sname, s in pairs(existing) do
      if not keep[sname] then
        service.rm(s.ID, { client = c, missing_ok = true })
        state.changes[#state.changes + 1] = { name = sname, id = s.ID, action = "removed", previous = s.Spec }
        result.services[sname:sub(#name + 2)] = { id = s.ID, action = "removed" }
        counts.removed = counts.removed + 1
        say(("%s removed (prune)"):format(sname))
      end
    end
  end

  -- Which images to pin to their registry digest: each distinct one once
  -- (the CLI asks once per service), all at once.
  local to_resolve, order = {}, {}
  for _, short_name in ipairs(conv.order) do
    local spec = conv.services[short_name]
    local cs = spec.TaskTemplate.ContainerSpec
    cs.Image = service._tagged_image(cs.Image)
    local cur = existing[spec.Name]
    local keep_pinned = false
    if cur then
      local label_image = cur.Spec.Labels and cur.Spec.Labels[convert.IMAGE_LABEL]
      keep_pinned = resolve == "never" or (resolve == "changed" and cs.Image == label_image)
    elseif resolve == "never" then
      keep_pinned = true
    end
    if not keep_pinned and not to_resolve[cs.Image] then
      to_resolve[cs.Image] = true
      order[#order + 1] = cs.Image
    end
  end
  local resolving = {}
  for _, ref in ipairs(order) do
    resolving[ref] = task.spawn(function() return { service.resolve_image(c, ref, opts.auth) } end)
  end
  local resolved = {}
  for _, ref in ipairs(order) do resolved[ref] = resolving[ref]:join() end
  local names = next(existing) and network_names(c, fname) or {}

  local jobs = {}
  for _, short_name in ipairs(conv.order) do
    local spec = conv.services[short_name]
    local ok, err = pcall(fill_refs, spec, secrets, configs, fname, name)
    if not ok then fail_and_rollback((tostring(err):gsub("^[^\n]-%.lua:%d+: ", ""))) end
    local cs = spec.TaskTemplate.ContainerSpec
    local cur = existing[spec.Name]
    local r = resolved[cs.Image]
    if r then
      if r[1] then
        cs.Image = r[1]
        if r[2] then spec.TaskTemplate.Placement.Platforms = r[2] end
      else
        result.warnings[#result.warnings + 1] = r[2]
      end
    elseif cur and cs.Image == (cur.Spec.Labels or {})[convert.IMAGE_LABEL] then
      -- keep the digest the previous deploy pinned, so that an unchanged
      -- image does not restart the tasks
      cs.Image = cur.Spec.TaskTemplate.ContainerSpec.Image
      local pl = cur.Spec.TaskTemplate.Placement
      if pl and pl.Platforms then spec.TaskTemplate.Placement.Platforms = pl.Platforms end
    end
    local job = { short = short_name, spec = spec, cur = cur }
    if cur then
      spec.TaskTemplate.ForceUpdate = cur.Spec.TaskTemplate.ForceUpdate
      job.difference = spec_diff.first(spec, cur.Spec, names)
    end
    if cur and not job.difference then
      -- nothing to send, nothing to wait for
      result.services[short_name] = { id = cur.ID, action = "unchanged" }
      counts.unchanged = counts.unchanged + 1
    else
      job.task = task.spawn(function()
        return pcall(function()
          if cur then
            return update_service(c, cur.ID, spec, { client = c, version = cur.Version.Index,
              auth = opts.auth, resolve_image = false })
          end
          local id, warnings = service.create(spec, { client = c, auth = opts.auth, resolve_image = false })
          job.id = id
          return warnings
        end)
      end)
      jobs[#jobs + 1] = job
    end
  end

  local first_error
  for _, job in ipairs(jobs) do
    local ok, warnings = job.task:join()
    local spec, cur = job.spec, job.cur
    if not ok then
      first_error = first_error or tostring(warnings):gsub("^[^\n]-%.lua:%d+: ", "")
    else
      for _, w in ipairs(warnings or {}) do result.warnings[#result.warnings + 1] = w end
      if cur then
        local before = cur.UpdateStatus ~= json.null and cur.UpdateStatus and cur.UpdateStatus.StartedAt or nil
        state.changes[#state.changes + 1] = { name = spec.Name, id = cur.ID, action = "updated",
          previous = cur.Spec, image_before = cur.Spec.TaskTemplate.ContainerSpec.Image }
        watches[#watches + 1] = { name = spec.Name, id = cur.ID, update_started = before }
        result.services[job.short] = { id = cur.ID, action = "updated", difference = job.difference }
        counts.updated = counts.updated + 1
        say(("%s updated (%s)"):format(spec.Name, job.difference))
      else
        state.changes[#state.changes + 1] = { name = spec.Name, id = job.id, action = "created" }
        watches[#watches + 1] = { name = spec.Name, id = job.id }
        result.services[job.short] = { id = job.id, action = "created" }
        counts.created = counts.created + 1
        say(("%s created"):format(spec.Name))
      end
    end
  end
  -- the engine rejected a service: undo what this deploy already did
  if first_error then fail_and_rollback(first_error) end
  result.counts = counts
  result.summary = counts_text(counts)
  say(("%s: %s"):format(name, result.summary))

  if opts.record ~= false then
    local specs = {}
    for _, short_name in ipairs(conv.order) do specs[name .. "_" .. short_name] = conv.services[short_name] end
    result.change = record_change(name, state, counts, specs, timeout_ms)
  end

  if opts.wait ~= false then
    local ok, reasons, why = M.wait(c, watches, timeout_ms, poll_ms, say, { events = opts.events })
    if not ok then
      local msg = why == "timeout"
        and ("not converged within %s: %s"):format(duration.format(timeout_ms), reasons_text(reasons))
        or reasons_text(reasons)
      fail_and_rollback(msg)
    end
    result.converged = true
    result.nodes_down = report_lost_nodes(c, watches, started_at, say)
    -- old content-named secrets/configs that no service uses any more
    -- (only a deploy that moved a service can have freed one)
    if #state.changes > 0 then
      local keep = {}
      for _, o in pairs(secrets) do keep[#keep + 1] = o.name end
      for _, o in pairs(configs) do keep[#keep + 1] = o.name end
      local labels = { [convert.NS_LABEL] = name }
      pcall(swarm.cleanup, "secret", { client = c, labels = labels, keep = keep })
      pcall(swarm.cleanup, "config", { client = c, labels = labels, keep = keep })
    end
  end
  return result
end

---------------------------------------------------------------- restore

-- The services data (a recorded docker.stack change) wants, by name, with
-- their specs as the engine must get them: an environment entry the record
-- masked ("KEY=***": a secret's value never reaches a record) takes its
-- value from the live service, which still has it; nil and a message when
-- the live service does not.
local function wanted_specs(data, live)
  local wanted, order = {}, {}
  for _, svc in ipairs(data.services or {}) do
    if svc.action ~= "removed" and type(svc.spec) == "table" then
      local spec = spec_diff._copy(svc.spec)
      local env = spec.TaskTemplate and spec.TaskTemplate.ContainerSpec and spec.TaskTemplate.ContainerSpec.Env
      for i, entry in ipairs(type(env) == "table" and env or {}) do
        local key = entry:match("^([^=]*)=%*%*%*$")
        if key then
          local cur = live[svc.name]
          local found
          for _, e in ipairs(cur and cur.Spec.TaskTemplate.ContainerSpec.Env or {}) do
            if e:sub(1, #key + 1) == key .. "=" then found = e end
          end
          if not found then
            return nil, ("%s: the record masks the value of %s (a secret) and the live service has none to keep"):format(svc.name, key)
          end
          env[i] = found
        end
      end
      wanted[svc.name] = spec
      order[#order + 1] = svc.name
    end
  end
  table.sort(order)
  return wanted, order
end

local restore_opts = set("client", "timeout", "poll", "events", "on_progress", "quiet", "record", "wait")

local function restore_setup(fname, data, opts)
  if type(data) ~= "table" or type(data.stack) ~= "string" or type(data.services) ~= "table" then
    error(client.where() .. fname .. ": expects the data of a recorded docker.stack change (stack, services with specs)", 0)
  end
  opts = client.check_opts(fname, opts, restore_opts)
  local c = opts.client or client.default()
  local live = {}
  for _, s in ipairs(service.list({ client = c, stack = data.stack })) do live[s.Spec.Name] = s end
  local wanted, order = wanted_specs(data, live)
  if not wanted then client.raise(("%s: %s: %s"):format(fname, data.stack, order)) end
  return opts, c, live, wanted, order, network_names(c, fname)
end

-- What restore(data) would do, changing nothing: { { name, action =
-- "update" | "create" | "remove" | "unchanged", difference } } by name.
function M.restore_diff(data, opts)
  local _, _, live, wanted, order, names = restore_setup("docker.stack.restore_diff", data, opts)
  local out = {}
  for _, sname in ipairs(order) do
    local cur = live[sname]
    if not cur then
      out[#out + 1] = { name = sname, action = "create" }
    else
      local diff = spec_diff.first(wanted[sname], cur.Spec, names)
      out[#out + 1] = { name = sname, action = diff and "update" or "unchanged", difference = diff }
    end
  end
  for _, sname in ipairs(convert.sorted_keys(live)) do
    if not wanted[sname] then out[#out + 1] = { name = sname, action = "remove" } end
  end
  return out
end

-- Bring the stack back to the state a recorded docker.stack change names
-- (data: the change's data, from a release record): every service it lists
-- gets its recorded spec back (created when it is gone), services of the
-- stack it does not list (created later) are removed; then the wait, as a
-- deploy waits. Records itself as a docker.stack change (its undo goes
-- back to the specs found); when it does not converge, it undoes itself
-- and raises. -> { name, services = { [name] = { action } }, counts, summary }
function M.restore(data, opts)
  local fname = "docker.stack.restore"
  local c, live, wanted, order, names
  opts, c, live, wanted, order, names = restore_setup(fname, data, opts)
  local say = progress_sink(opts)
  local timeout_ms = ms(opts.timeout or "5m", "timeout")
  local name = data.stack
  local state = { client = c, changes = {}, say = say, timeout_ms = timeout_ms,
    poll_ms = ms(opts.poll or "250ms", "poll"), name = name, events = opts.events }
  local result = { name = name, services = {} }
  local counts = { unchanged = 0, created = 0, updated = 0, removed = 0 }
  local watches, failures = {}, {}
  local function short(sname) return sname:sub(#name + 2) end
  for _, sname in ipairs(order) do
    local cur, spec = live[sname], wanted[sname]
    local ok, err = pcall(function()
      if cur and not spec_diff.first(spec, cur.Spec, names) then
        result.services[short(sname)] = { id = cur.ID, action = "unchanged" }
        counts.unchanged = counts.unchanged + 1
      elseif cur then
        local before = cur.UpdateStatus ~= json.null and cur.UpdateStatus and cur.UpdateStatus.StartedAt or nil
        spec.TaskTemplate.ForceUpdate = cur.Spec.TaskTemplate.ForceUpdate
        update_service(c, cur.ID, spec, { client = c, version = cur.Version.Index, resolve_image = false })
        state.changes[#state.changes + 1] = { name = sname, id = cur.ID, action = "updated", previous = cur.Spec,
          image_before = cur.Spec.TaskTemplate.ContainerSpec.Image }
        watches[#watches + 1] = { name = sname, id = cur.ID, update_started = before }
        result.services[short(sname)] = { id = cur.ID, action = "updated" }
        counts.updated = counts.updated + 1
        say(("%s restored"):format(sname))
      else
        local id = service.create(spec, { client = c, resolve_image = false })
        state.changes[#state.changes + 1] = { name = sname, id = id, action = "created" }
        watches[#watches + 1] = { name = sname, id = id }
        result.services[short(sname)] = { id = id, action = "created" }
        counts.created = counts.created + 1
        say(("%s created again"):format(sname))
      end
    end)
    if not ok then failures[#failures + 1] = sname .. ": " .. tostring(err):gsub("^[^\n]-%.lua:%d+: ", "") end
  end
  for _, sname in ipairs(convert.sorted_keys(live)) do
    if not wanted[sname] then
      local cur = live[sname]
      service.rm(cur.ID, { client = c, missing_ok = true })
      state.changes[#state.changes + 1] = { name = sname, id = cur.ID, action = "removed", previous = cur.Spec }
      result.services[short(sname)] = { id = cur.ID, action = "removed" }
      counts.removed = counts.removed + 1
      say(("%s removed (not in the release)"):format(sname))
    end
  end
  result.counts, result.summary = counts, counts_text(counts)
  say(("%s: %s"):format(name, result.summary))
  if opts.record ~= false then result.change = record_change(name, state, counts, wanted, timeout_ms) end
  local why
  if #failures > 0 then
    why = table.concat(failures, "; ")
  elseif opts.wait ~= false and #watches > 0 then
    local ok, reasons = M.wait(c, watches, timeout_ms, state.poll_ms, say, { events = opts.events })
    if not ok then why = "not converged: " .. reasons_text(reasons) end
  end
  if why then
    local ok, rerr = M.rollback(state, { timeout_ms = math.max(timeout_ms, ROLLBACK_MIN_MS) })
    if result.change then
      context.mark_change(result.change, ok and "rolled_back" or "undo_failed", { reason = why, rollback_error = rerr })
    end
    client.raise(("%s: %s: %s%s"):format(fname, name, why,
      ok and " (the services went back to what they were)" or ("; going back failed too: " .. tostring(rerr))))
  end
  result.converged = opts.wait ~= false
  return result
end

---------------------------------------------------------------- others

function M.services(name, opts)
  opts = client.check_opts("docker.stack.services", opts, set("client"))
  return service.list({ client = opts.client, stack = name })
end

-- Remove everything labelled with the stack's namespace.
function M.rm(name, opts)
  opts = client.check_opts("docker.stack.rm", opts, set("client", "wait"))
  local c = opts.client or client.default()
  local filters = json.encode({ label = { convert.NS_LABEL .. "=" .. name } })
  local ids = {}
  for _, s in ipairs(service.list({ client = c, stack = name })) do
    service.rm(s.ID, { client = c, missing_ok = true })
    ids[#ids + 1] = s.ID
  end
  -- networks can only go once the tasks are gone
  if opts.wait ~= false and #ids > 0 then
    local deadline = task.now() + 60000
    while task.now() < deadline do
      local left = c:call("docker.stack.rm", "GET", "/tasks",
        { query = { filters = json.encode({ label = { convert.NS_LABEL .. "=" .. name } }) } }) or {}
      local live = 0
      for _, t in ipairs(left) do
        if not TERMINAL[t.Status.State] then live = live + 1 end
      end
      if live == 0 then break end
      task.sleep(0.2)
    end
  end
  for _, kind in ipairs({ "secrets", "configs" }) do
    for _, o in ipairs(c:call("docker.stack.rm", "GET", "/" .. kind, { query = { filters = filters } }) or {}) do
      c:call("docker.stack.rm", "DELETE", "/" .. kind .. "/" .. o.ID, { ok = { [404] = true, [400] = true, [500] = true } })
    end
  end
  for _, n in ipairs(c:call("docker.stack.rm", "GET", "/networks", { query = { filters = filters } }) or {}) do
    -- the engine frees a network a moment after its last task is gone
    for _ = 1, 25 do
      local _, res = c:call("docker.stack.rm", "DELETE", "/networks/" .. n.Id,
        { ok = { [404] = true, [403] = true, [500] = true, [409] = true, [400] = true } })
      if res.status < 300 or res.status == 404 then break end
      task.sleep(0.2)
    end
  end
  return #ids
end

return M
