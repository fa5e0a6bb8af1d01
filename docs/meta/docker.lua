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
---Stop the ssh forwarding an ssh:// client started.
---@async
function Client:close() end

---@class slipway.docker.ClientOptions
---@field host? string DOCKER_HOST form; default $DOCKER_HOST or unix:///var/run/docker.sock
---@field api_version? string skip the negotiation
---@field timeout? string|number default per-request timeout ("60s")
---@field tls? {verify?: boolean, ca?: string, cert?: string, key?: string} for tcp://
---@field ssh_options? string[] extra ssh arguments (-i key, -o ...)
---@field remote_socket? string the engine socket on the ssh host (/var/run/docker.sock)

---@param opts? slipway.docker.ClientOptions
---@return slipway.docker.Client
function docker.client(opts) end

---@class slipway.docker.BuildOptions
---@field context string directory sent as the build context (.dockerignore honoured)
---@field dockerfile? string path inside the context (default "Dockerfile")
---@field tag? string
---@field tags? string[]
---@field build_args? table<string, string|number>
---@field target? string
---@field labels? table<string, string>
---@field no_cache? boolean
---@field pull? boolean
---@field platform? string
---@field network? string
---@field on_output? fun(line: string) build output (default: the task's output)
---@field quiet? boolean no output lines
---@field timeout? string|number default "30m"
---@field client? slipway.docker.Client

---@class slipway.docker.BuildResult
---@field id string "sha256:..."
---@field tags string[]
---@field output string the whole build output

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

---Push; credentials from ~/.docker/config.json `auths`, or `auth`, sent as
---X-Registry-Auth (`e30=` when none).
---@async
---@param image string
---@param opts? {auth?: table|false, on_output?: fun(line: string), quiet?: boolean, timeout?: string|number, client?: slipway.docker.Client}
---@return string digest "sha256:..."
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

---@async
---@param image string
---@param opts? {force?: boolean, prune?: boolean, missing_ok?: boolean, client?: slipway.docker.Client}
---@return table[] entries {Untagged=...} / {Deleted=...}
function docker.rm_image(image, opts) end

---@class slipway.docker.DeployOptions
---@field wait? boolean wait until converged (default true)
---@field timeout? string|number deadline of the wait (default "5m")
---@field rollback? boolean roll the whole stack back when the deploy fails (default true)
---@field prune? boolean remove the stack's services that are not in the file
---@field resolve_image? "always"|"changed"|"never" pin images to registry digests (default "always")
---@field auth? table registry credentials sent with creates/updates
---@field poll? string|number how often the wait looks (default "250ms")
---@field record? boolean record the change and its undo with slipway.release (default true)
---@field on_progress? fun(line: string)
---@field quiet? boolean
---@field client? slipway.docker.Client

---@class slipway.docker.DeployResult
---@field name string
---@field services table<string, {id: string, action: "created"|"updated"|"removed"}>
---@field converged? boolean
---@field warnings string[]
---@field change? table the release record entry

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
---@async
---@return string id
---@return string[] warnings
function docker.service.create(spec, opts) end
---@async
---@return string[] warnings
function docker.service.update(id, spec, opts) end
---@async
---@return table service
function docker.service.inspect(id, opts) end
---@async
---@return table|nil service
function docker.service.find(id, opts) end
---@async
---@param opts? {filters?: table, stack?: string, client?: slipway.docker.Client}
---@return table[]
function docker.service.list(opts) end
---@async
---@return boolean removed
function docker.service.rm(id, opts) end
---@async
---@return table[] tasks
function docker.service.tasks(id, opts) end
---@async
---@param opts? {tail?: integer, stdout?: boolean, stderr?: boolean, timestamps?: boolean, since?: string, client?: slipway.docker.Client}
---@return {stream: "stdout"|"stderr", text: string}[]
function docker.service.logs(id, opts) end

---@class slipway.docker.swarm
docker.swarm = {}
---@async
---@return table info raises unless the engine is a swarm manager
function docker.swarm.ensure_manager(opts) end
---@async
---@return string id
---@return boolean created
function docker.swarm.network(name, body, opts) end
---A secret named "<name>_<12 hex of sha256(data)>": a rotated value is a new secret.
---@async
---@return {id: string, name: string, created: boolean}
function docker.swarm.secret(name, data, opts) end
---@async
---@return {id: string, name: string, created: boolean}
function docker.swarm.config(name, data, opts) end
---Remove content-named secrets/configs no service uses.
---@async
---@param kind "secret"|"config"
---@return string[] removed
function docker.swarm.cleanup(kind, opts) end

return docker
