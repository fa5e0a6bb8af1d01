---@meta slipway.probe
-- Editor stubs (LuaLS) for require("slipway.probe") and the global `probe`.
-- See docs/probe.md.

---@class slipway.probe
probe = {}

---@class slipway.ProbePolicy
---@field timeout? string|number one attempt (default "5s")
---@field interval? string|number wait between attempts (default "1s")
---@field retries? integer failed attempts allowed (default 0; unlimited with `within`)
---@field within? string|number deadline for becoming healthy
---@field success_threshold? integer passes in a row needed (default 1)
---@field stable_for? string|number must stay healthy this long after passing
---@field backoff? number multiply the wait by this after each failure (default 1)
---@field max_interval? string|number cap of the backed-off wait (default "30s")
---@field check? boolean raise on failure (default: only inside a pipeline run)
---@field name? string label for reports

---@class slipway.ProbeHttp: slipway.ProbePolicy
---@field url string
---@field method? string
---@field headers? table<string, string>
---@field body? string
---@field expect? integer|integer[]|string 200, {200, 204} or "2xx" (default "2xx")
---@field body_contains? string
---@field json? table<string, any> dotted path -> expected value
---@field tls_verify? boolean
---@field ca? string
---@field cert? string
---@field key? string
---@field follow_redirects? boolean
---@field unix_socket? string
---@field connect_timeout? string|number

---@class slipway.ProbeTcp: slipway.ProbePolicy
---@field host string
---@field port integer

---@class slipway.ProbeCmd: slipway.ProbePolicy
---@field argv? string[]
---@field sh? string
---@field expect_code? integer default 0
---@field cwd? string
---@field env? table<string, string|false>

---@class slipway.ProbeDocker: slipway.ProbePolicy
---@field service string the Swarm service's full name ("stack_svc")
---@field docker_host? string default $DOCKER_HOST or unix:///var/run/docker.sock

---@class slipway.ProbeResult
---@field ok boolean
---@field kind "http"|"tcp"|"cmd"|"docker"
---@field target string
---@field name string
---@field attempts integer
---@field passes integer
---@field status? integer HTTP status, exit code, or healthy tasks
---@field latency_ms? number
---@field elapsed_ms number
---@field error? string ECONNREFUSED, ETIMEDOUT, ECERT, EDNS, ESTATUS, EBODY, EJSON, ECODE, EUNHEALTHY...
---@field reason string what happened, in words

---@async
---@param spec slipway.ProbeHttp
---@return slipway.ProbeResult
function probe.http(spec) end

---@async
---@param spec slipway.ProbeTcp
---@return slipway.ProbeResult
function probe.tcp(spec) end

---@async
---@param spec slipway.ProbeCmd
---@return slipway.ProbeResult
function probe.cmd(spec) end

---@async
---@param spec slipway.ProbeDocker
---@return slipway.ProbeResult
function probe.docker(spec) end

---@class slipway.ProbeAllOptions: slipway.ProbePolicy
---@field concurrency? integer probes at once (default 100)

---Run many probes concurrently; results in the order of `list`.
---@async
---@param list (slipway.ProbeHttp|slipway.ProbeTcp|slipway.ProbeCmd|slipway.ProbeDocker)[]
---@param opts? slipway.ProbeAllOptions
---@return {ok: boolean, passed: integer, failed: integer, results: slipway.ProbeResult[]}
function probe.all(list, opts) end
