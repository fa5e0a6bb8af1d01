---@meta slipway.docker
-- Editor stubs (LuaLS) for slipway.docker (stdlib/docker/). Every function
-- talks to the engine's HTTP API (DOCKER_HOST: unix://, tcp:// + TLS,
-- ssh://) and waits, so call it inside a task (any pipeline task or
-- script). Failures raise "docker.<op>: <subject>: <engine message>" at
-- the caller's line.
local docker = {}

---@class slipway.docker.Client
local Client = {}
---@async
---@return string api the negotiated API version ("1.41")
function Client:api_version() end
---Close the SSH connection of an ssh:// client's host (shared by every
---client of that host; the next request connects again). Not needed at
---the end of a script or run: idle connections close by themselves then.
---@async
function Client:close() end

---@class slipway.docker.RequestOptions
---@field query? table<string, string|number|boolean|string[]> the query string: keys sorted, a list repeats its key, booleans are 1/0
---@field body? table|string a table is sent as JSON (Content-Type: application/json); a POST without one sends an empty body
---@field body_file? string stream the body from this file (when no body is given)
---@field headers? table<string, string> extra request headers
---@field content_type? string the Content-Type header
---@field on_body? fun(chunk: string) receives the response body chunk by chunk (then it is not in the response)
---@field timeout? string|number the whole request (default: the client's timeout, "60s")
---@field versioned? boolean prefix the path with /v<api version>, negotiating it first (default true)
---@field subject? string what the request is about, named in error messages ("<what>: <subject>: ...")

---@class slipway.docker.CallOptions: slipway.docker.RequestOptions
---@field ok? table<integer, boolean> HTTP statuses >= 400 that are answers, not errors ({[404] = true})

---One request to the engine's API; path is unversioned ("/images/json").
---An HTTP error status is data here; transport failures raise
---"<what>: <subject>: <message>" at the caller's line.
---@async
---@param what string the operation, for error messages ("docker.push")
---@param method string "GET", "POST", "DELETE", ...
---@param path string
---@param opts? slipway.docker.RequestOptions
---@return slipway.HttpResponse response
function Client:raw(what, method, path, opts) end

---A request that raises "<what>: <subject>: <engine message>" on an HTTP
---status >= 400 (except those in opts.ok), and decodes a JSON answer.
---@async
---@param what string the operation, for error messages ("docker.inspect")
---@param method string
---@param path string unversioned ("/services")
---@param opts? slipway.docker.CallOptions
---@return any body the decoded JSON, else the body text, or nil when empty
---@return slipway.HttpResponse response
function Client:call(what, method, path, opts) end

---@class slipway.docker.ClientOptions
---@field host? string DOCKER_HOST form; default: as the CLI picks it ($DOCKER_HOST, $DOCKER_CONTEXT, config.json's currentContext, unix:///var/run/docker.sock)
---@field context? string a Docker CLI context (`docker context ls`), read from $DOCKER_CONFIG or ~/.docker; wins over $DOCKER_HOST, like --context; excludes host
---@field api_version? string skip the negotiation
---@field timeout? string|number default per-request timeout ("60s")
---@field tls? {verify?: boolean, ca?: string, cert?: string, key?: string} for tcp://
---@field ssh_options? string[] extra ssh arguments (-i key, -o ...)
---@field remote_socket? string the engine socket on the ssh host (/var/run/docker.sock)

---A client for one engine (pass it as `client =` to any docker function):
---e.g. one per swarm, to deploy to several in parallel. An unknown
---context, or host and context together, raise at the caller's line.
---@param opts? slipway.docker.ClientOptions
---@return slipway.docker.Client
function docker.client(opts) end

---@class slipway.docker.BuildOptions
---@field context string directory sent as the build context (.dockerignore honoured)
---@field dockerfile? string path inside the context (default "Dockerfile")
---@field tag? string
---@field tags? string[]
---@field build_args? table<string, string|number|slipway.Secret> (a Secret is sent as its plain text and masked in the output)
---@field target? string
---@field labels? table<string, string>
---@field no_cache? boolean
---@field pull? boolean
---@field platform? string
---@field network? string
---@field on_output? fun(line: string) build output (default: the task's output)
---@field quiet? boolean no output lines
---@field timeout? string|number default "30m"
---@field force? boolean build even when the engine or the registry has the result (default false; no_cache and pull build too)
---@field client? slipway.docker.Client

---@class slipway.docker.BuildResult
---@field id string "sha256:..." the image ID (its config digest)
---@field tags string[]
---@field output string the whole build output ("" when cached)
---@field content_digest string "sha256:..." of what the build sends (context contents and modes, Dockerfile path, build args, target, platform, labels; not mtimes); the image's io.slipway.content-digest label
---@field cached boolean the build was skipped: its result exists
---@field cached_in? "engine"|"registry" where it was found (registry: not pulled)
---@field digests? table<string, string> for a build found in the registry: tag -> manifest digest

---Build an image, unless one built from the same inputs (content_digest)
---is already in the engine or, under every tag, in its registry.
---@async
---@param opts slipway.docker.BuildOptions
---@return slipway.docker.BuildResult
function docker.build(opts) end

---@async
---@param source string
---@param target string
---@param opts? {client?: slipway.docker.Client}
---@return true
function docker.tag(source, target, opts) end

---Push; credentials from `auth`, else ~/.docker/config.json as the CLI
---reads it (the registry's credHelpers entry or credsStore helper, else
---`auths`), sent as X-Registry-Auth (`e30=` when none).
---@class slipway.docker.PushOptions
---@field auth? table|false registry credentials {username, password[, serveraddress]} or {identitytoken}; false sends none (default: ~/.docker/config.json)
---@field on_output? fun(line: string) push progress lines (default: the task's output)
---@field quiet? boolean no progress lines
---@field timeout? string|number default "30m"
---@field force? boolean push even when the registry's tag already holds the image (default false)
---@field client? slipway.docker.Client default: DOCKER_HOST's

---Push, unless the registry's tag already holds the image (checked over
---the Registry HTTP API: nothing is sent then).
---@async
---@param image string
---@param opts? slipway.docker.PushOptions
---@return string digest "sha256:..." the manifest digest the registry has
---@return boolean cached true when nothing was pushed
function docker.push(image, opts) end

---@async
---@param image string
---@param opts? {client?: slipway.docker.Client}
---@return table image the engine's image record (raises when absent)
function docker.inspect(image, opts) end

---@async
---@param image string
---@param opts? {client?: slipway.docker.Client}
---@return boolean
function docker.exists(image, opts) end

---@class slipway.docker.RmImageOptions
---@field force? boolean remove it even when containers use it or it has several tags (default false)
---@field prune? boolean also delete untagged parent images (default true)
---@field missing_ok? boolean an absent image is no error: {} (default false)
---@field client? slipway.docker.Client default: DOCKER_HOST's

---@async
---@param image string
---@param opts? slipway.docker.RmImageOptions
---@return table[] entries {Untagged=...} / {Deleted=...}
function docker.rm_image(image, opts) end

---@class slipway.docker.ImageSummary
---@field id string "sha256:..."
---@field tags string[] "repo:tag" references (empty for a dangling image)
---@field digests string[] "repo@sha256:..." references from registries
---@field created integer Unix seconds
---@field size integer bytes
---@field labels table<string, string>
---@field containers integer containers using it (-1 when the engine did not count)

---The engine's images, newest first, like `docker image ls`.
---@async
---@param opts? {filters?: table<string, string|string[]>, all?: boolean, client?: slipway.docker.Client} filters: the engine's (reference = "app:*", label, dangling = "true", before, since); all: intermediate layers too (default false)
---@return slipway.docker.ImageSummary[]
function docker.images(opts) end

---@class slipway.docker.PruneOptions
---@field images? boolean remove unused images (default true)
---@field dangling_only? boolean only untagged images, like `docker image prune`; false: every image no container uses, like `-a` (default true)
---@field containers? boolean remove stopped containers, finished Swarm tasks' among them (default true)
---@field until? string|integer only what was created before this ("24h", RFC 3339, Unix seconds)
---@field label? string|string[] only what has these labels ("key" or "key=value"; "label!=..." is not supported)
---@field timeout? string|number deadline of each request (default "5m")
---@field client? slipway.docker.Client default: DOCKER_HOST's

---@class slipway.docker.PruneResult
---@field containers_deleted string[] container ids
---@field images_deleted string[] image and layer ids
---@field images_untagged string[] references removed
---@field space_reclaimed integer bytes freed

---Remove stopped containers and unused images (POST /containers/prune,
---then /images/prune), like `docker container prune -f` and `docker image
---prune -f`.
---@async
---@param opts? slipway.docker.PruneOptions
---@return slipway.docker.PruneResult
function docker.prune(opts) end

---@class slipway.docker.DeployOptions
---@field wait? boolean wait until converged (default true)
---@field timeout? string|number deadline of the wait (default "5m")
---@field rollback? boolean roll the whole stack back when the deploy fails (default true)
---@field prune? boolean remove the stack's services that are not in the file
---@field resolve_image? "always"|"changed"|"never" pin images to registry digests (default "always")
---@field auth? table|true registry credentials sent with creates/updates, so that every node can pull; true: from config.json and its credential helpers (the CLI's --with-registry-auth)
---@field poll? string|number how often the wait looks when the engine's event stream is down (default "250ms")
---@field events? boolean wait on the engine's event stream (default true); false: poll every `poll`
---@field record? boolean record the change and its undo with slipway.context.add_change (default true)
---@field on_progress? fun(line: string)
---@field quiet? boolean
---@field client? slipway.docker.Client

---@class slipway.docker.DeployResult
---@field name string
---@field services table<string, {id: string, action: "unchanged"|"created"|"updated"|"removed", difference?: string}> difference: what differed first, for an update ("TaskTemplate.ContainerSpec.Image: ...")
---@field counts {unchanged: integer, created: integer, updated: integer, removed: integer}
---@field summary string "3 unchanged, 1 updated"
---@field converged? boolean
---@field nodes_down? string[] the nodes (hostnames) that went down while it waited, whose tasks the swarm rescheduled on the others
---@field warnings string[]
---@field change? slipway.Change the entry context.add_change made
---@field _state slipway.docker.DeployState what docker.stack.rollback undoes

---What one deploy changed (result._state of docker.stack.deploy).
---@class slipway.docker.DeployState
---@field name string the stack
---@field client slipway.docker.Client
---@field changes {name: string, id: string, action: "created"|"updated"|"removed", previous?: table}[] in the order made; previous is the spec before
---@field say fun(line: string) the progress sink
---@field timeout_ms number the deploy's timeout
---@field poll_ms number the deploy's poll interval
---@field events? boolean the deploy's events option

---@class slipway.docker.stack
docker.stack = {}

---Deploy a Stack (compose.load) like `docker stack deploy`, wait until it
---converged, and roll every service back together when it does not.
---@async
---@param name string
---@param stack table
---@param opts? slipway.docker.DeployOptions
---@return slipway.docker.DeployResult
function docker.stack.deploy(name, stack, opts) end

---Undo one deploy: services it updated go back to their previous spec,
---services it created are removed, services it pruned come back; then
---wait until the restored ones converged. docker.stack.deploy does this
---itself when a deploy fails (rollback = true) and records it as the
---change's undo.
---@async
---@param state slipway.docker.DeployState result._state of docker.stack.deploy
---@param opts? {wait?: boolean, timeout_ms?: number} wait: for the restored services (default true); timeout_ms: its deadline (default state.timeout_ms, else 300000)
---@return boolean ok
---@return string? err what could not be undone, or which services did not converge
function docker.stack.rollback(state, opts) end

---The data of a recorded docker.stack change (change.data in a release
---record): every service of the stack as that change left it, with its
---full spec (images pinned to digests).
---@class slipway.docker.StackRecord
---@field stack string the stack's name
---@field services {name: string, id?: string, action: string, image_before?: string, spec?: table}[] name: the service's full name ("<stack>_<service>"); action: what the change did to it

---@class slipway.docker.RestoreOptions
---@field wait? boolean wait until the restored services converged (default true)
---@field timeout? string|number deadline of the wait (default "5m")
---@field poll? string|number how often the wait looks when the engine's event stream is down (default "250ms")
---@field events? boolean wait on the engine's event stream (default true); false: poll every `poll`
---@field record? boolean record the restore as a docker.stack change, with its undo (default true)
---@field on_progress? fun(line: string)
---@field quiet? boolean
---@field client? slipway.docker.Client

---@class slipway.docker.RestoreResult
---@field name string the stack
---@field services table<string, {id: string, action: "unchanged"|"created"|"updated"|"removed"}> by short service name
---@field counts {unchanged: integer, created: integer, updated: integer, removed: integer}
---@field summary string "2 unchanged, 1 updated"
---@field converged boolean whether it waited (wait ~= false) for the services to converge
---@field change? slipway.Change the entry context.add_change made (record ~= false)

---Bring the stack back to the state a recorded docker.stack change left it
---in (what `slipway rollback` does, as the change's restorer): every
---service the record lists gets its recorded spec and image digest back
---(created again when it is gone), the stack's services the record does
---not list (created later) are removed; then the wait, as a deploy waits.
---An environment value the record masks (a secret's) is taken from the
---live service. Records itself as a docker.stack change; when it does not
---converge, it puts the services back as it found them and raises.
---@async
---@param data slipway.docker.StackRecord
---@param opts? slipway.docker.RestoreOptions
---@return slipway.docker.RestoreResult
function docker.stack.restore(data, opts) end

---What docker.stack.restore(data) would change, changing nothing: one row
---per service, by name ("<stack>_<service>"); difference: what differs
---first, for an update. Of the options only `client` counts.
---@async
---@param data slipway.docker.StackRecord
---@param opts? slipway.docker.RestoreOptions
---@return {name: string, action: "update"|"create"|"remove"|"unchanged", difference?: string}[]
function docker.stack.restore_diff(data, opts) end

---@class slipway.docker.StackWatch
---@field name string the service's full name ("<stack>_<service>")
---@field id string the service's id
---@field update_started? string UpdateStatus.StartedAt before this change: an update status from before does not count

---Wait until every watched service converged: its desired replicas
---running (healthy, where it has a healthcheck) on its current spec, an
---update completed, a job completed. Stops at the first service that
---failed (an update paused or rolled back, the service gone). Follows the
---engine's event stream and looks at a service when an event names it
---(and every 2 s); polls every poll_ms while the stream is down.
---@async
---@param client slipway.docker.Client
---@param watches slipway.docker.StackWatch[]
---@param timeout_ms number the deadline
---@param poll_ms number how often to look when the event stream is down
---@param say fun(line: string) gets progress lines: from the events, and "<name> converged"
---@param opts? {events?: boolean, stats?: table} events = false: poll only; stats gets connects, drops, events, looks
---@return boolean converged
---@return table<string, string> reasons why, per service that did not converge
---@return "timeout"? why "timeout" when the deadline passed
function docker.stack.wait(client, watches, timeout_ms, poll_ms, say, opts) end

---@async
---@param name string
---@param opts? {client?: slipway.docker.Client}
---@return table[] services
function docker.stack.services(name, opts) end

---Remove the stack's services, then its secrets, configs and networks.
---@async
---@param name string
---@param opts? {client?: slipway.docker.Client, wait?: boolean}
---@return integer removed services
function docker.stack.rm(name, opts) end

---The service specs `docker stack deploy` would send (no engine needed).
---@param name string
---@param stack table
---@return table|nil converted {services, order, networks, external_networks, secrets, configs}
---@return string? err
function docker.stack.convert(name, stack) end

---@class slipway.docker.service
docker.service = {}

---@class slipway.docker.ServiceWriteOptions
---@field auth? table|true registry credentials sent as X-Registry-Auth (also used to resolve the image; true: from config.json and its credential helpers; default: none sent, config.json for resolving)
---@field resolve_image? boolean pin the image to its registry digest and record its platforms, like `docker service create` (default true; a tag-less image becomes :latest either way)
---@field client? slipway.docker.Client default: DOCKER_HOST's

---@class slipway.docker.ServiceUpdateOptions: slipway.docker.ServiceWriteOptions
---@field version? integer the Version.Index the spec is based on (default: fetched now)
---@field rollback? "previous" ask Swarm to go back to the service's previous spec (spec may be nil; the image is not resolved)

---Create a service from an Engine API ServiceSpec.
---@async
---@param spec table
---@param opts? slipway.docker.ServiceWriteOptions
---@return string id
---@return string[] warnings the engine's, and one when the image could not be resolved
function docker.service.create(spec, opts) end

---@async
---@param id string id or name
---@param spec table|nil the whole new ServiceSpec (nil with rollback = "previous")
---@param opts? slipway.docker.ServiceUpdateOptions
---@return string[] warnings
function docker.service.update(id, spec, opts) end

---@async
---@param id string id or name
---@param opts? {client?: slipway.docker.Client}
---@return table service (raises when absent)
function docker.service.inspect(id, opts) end

---@async
---@param id string id or name
---@param opts? {client?: slipway.docker.Client}
---@return table|nil service nil when absent
function docker.service.find(id, opts) end

---@async
---@param opts? {filters?: table<string, string|string[]>, stack?: string, client?: slipway.docker.Client} filters: the engine's (label, name, id, mode); stack: the services of this stack
---@return table[]
function docker.service.list(opts) end

---@async
---@param id string id or name
---@param opts? {missing_ok?: boolean, client?: slipway.docker.Client} missing_ok: an absent service is no error (default false)
---@return boolean removed false when it was absent
function docker.service.rm(id, opts) end

---@async
---@param id string id or name
---@param opts? {desired_state?: "running"|"shutdown"|"accepted", client?: slipway.docker.Client} desired_state: only tasks with it (default: all)
---@return table[] tasks
function docker.service.tasks(id, opts) end

---@class slipway.docker.LogsOptions
---@field tail? integer only the last N lines (default: all)
---@field stdout? boolean default true
---@field stderr? boolean default true
---@field timestamps? boolean prefix each line with its time (default false)
---@field since? string|integer only lines since this time: Unix seconds, or a duration ago ("10m")
---@field follow? boolean keep reading new lines until on_line returns false, max_lines came, or the timeout (default false)
---@field on_line? fun(text: string, stream: "stdout"|"stderr"): boolean? gets each line as it arrives, without its newline (return false to stop); then logs returns the count
---@field max_lines? integer stop after this many lines (default 10000 when the lines are returned, else no limit)
---@field timeout? string|number deadline of the whole read (default "30s", none when following)
---@field client? slipway.docker.Client

---The service's log lines, from every task, streamed from the engine
---(stdout/stderr frames taken apart; a line longer than 64 KiB comes in
---pieces).
---@async
---@param id string id or name
---@param opts? slipway.docker.LogsOptions
---@return {stream: "stdout"|"stderr", text: string}[]|integer lines the lines, or their count when on_line took them
function docker.service.logs(id, opts) end

---@class slipway.docker.ScaleOptions
---@field wait? boolean wait until that many tasks run (default true)
---@field timeout? string|number deadline of the wait (default "2m")
---@field on_progress? fun(line: string) gets the wait's progress lines (default: none)
---@field client? slipway.docker.Client

---@class slipway.docker.ScaleResult
---@field id string
---@field name string
---@field before integer the replicas it had
---@field replicas integer the replicas it has now
---@field converged boolean whether it waited and they run

---Set a replicated service's replica count (its spec is otherwise left
---as it is), like `docker service scale name=n`; raises when it does not
---converge in time.
---@async
---@param id string id or name
---@param replicas integer
---@param opts? slipway.docker.ScaleOptions
---@return slipway.docker.ScaleResult
function docker.service.scale(id, replicas, opts) end

---Ask the engine (which asks the registry) for an image's digest and
---platforms, as `docker service create` does; create/update and
---docker.stack.deploy use it.
---@async
---@param client slipway.docker.Client
---@param ref string a tagged reference ("registry:5000/app:1")
---@param auth? table|false credentials for the registry (default: ~/.docker/config.json; false: none)
---@return string|nil pinned "ref@sha256:...", or nil when no registry has it
---@return {Architecture: string, OS: string}[]|string|nil platforms the image's platforms (nil when it names none), or the warning when pinned is nil
function docker.service.resolve_image(client, ref, auth) end

---@class slipway.docker.node
docker.node = {}

---@class slipway.docker.NodeSummary
---@field id string
---@field version integer its Version.Index
---@field hostname string
---@field name? string the name given to it, if any
---@field role "manager"|"worker"
---@field availability "active"|"pause"|"drain"
---@field state string "ready", "down", ...
---@field addr string
---@field leader boolean the swarm's leading manager
---@field manager_reachability? string "reachable" ... (managers only)
---@field labels table<string, string>
---@field engine string the engine's version

---The swarm's nodes, by hostname (needs a manager).
---@async
---@param opts? {filters?: table<string, string|string[]>, client?: slipway.docker.Client} filters: the engine's (id, label, name, role, membership)
---@return slipway.docker.NodeSummary[]
function docker.node.list(opts) end

---@class slipway.docker.NodeUpdateOptions
---@field availability? "active"|"pause"|"drain" drain: Swarm moves the node's tasks elsewhere
---@field role? "manager"|"worker"
---@field labels? table<string, string|false> merged into the node's labels; false removes one
---@field client? slipway.docker.Client

---Update a node (by id, name or hostname) with the version it was read at,
---like `docker node update --availability drain`.
---@async
---@param id string
---@param opts? slipway.docker.NodeUpdateOptions
---@return slipway.docker.NodeSummary node as it is after the update
function docker.node.update(id, opts) end

---@class slipway.docker.swarm
docker.swarm = {}

---The engine's /info; raises with the CLI's advice unless the engine is a
---swarm manager.
---@async
---@param opts? {what?: string, client?: slipway.docker.Client} what: the operation named in the error (default "docker.swarm")
---@return table info
function docker.swarm.ensure_manager(opts) end

---Create the network unless one with this name exists.
---@async
---@param name string
---@param body? table the /networks/create body without Name (Driver default "overlay")
---@param opts? {client?: slipway.docker.Client}
---@return string id
---@return boolean created
function docker.swarm.network(name, body, opts) end

---@class slipway.docker.SwarmObjectOptions
---@field labels? table<string, string> extra labels (io.slipway.name and io.slipway.content-hash are always set)
---@field driver? {Name: string, Options?: table<string, string>} a secret store driver (then data may be nil)
---@field template_driver? string templating driver name ("golang")
---@field client? slipway.docker.Client

---A secret named "<name>_<12 hex of sha256(data)>": a rotated value is a
---new secret (created unless it exists). The value is masked in all output
---from then on (slipway.secret).
---@async
---@param name string
---@param data string|slipway.Secret|nil
---@param opts? slipway.docker.SwarmObjectOptions
---@return {id: string, name: string, created: boolean}
function docker.swarm.secret(name, data, opts) end

---A config, content-named like docker.swarm.secret.
---@async
---@param name string
---@param data string
---@param opts? slipway.docker.SwarmObjectOptions
---@return {id: string, name: string, created: boolean}
function docker.swarm.config(name, data, opts) end

---Remove content-named secrets/configs (with all of opts.labels) that no
---service uses, except those named in opts.keep.
---@async
---@param kind "secret"|"config"
---@param opts? {labels?: table<string, string>, keep?: string[], client?: slipway.docker.Client}
---@return string[] removed names, sorted
function docker.swarm.cleanup(kind, opts) end

return docker
