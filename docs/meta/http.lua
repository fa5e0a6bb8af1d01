---@meta slipway.http
-- Editor stubs (LuaLS) for require("slipway.http") and the global `http`.

---@class slipway.http
---@field curl_version string libcurl's version string
http = {}

---@class slipway.HttpOptions
---@field url string|slipway.Secret http:// or https:// (required); errors show its password as ***
---@field method? string default "GET", or "POST" when a body is given; an HTTP token (letters, digits, !#$%&'*+-.^_`|~), else it raises
---@field headers? table<string, string|number|slipway.Secret> request headers, name -> value (names are HTTP tokens; a value with CR or LF raises)
---@field body? string|slipway.Secret request body
---@field body_file? string stream the request body from this file
---@field unix_socket? string talk HTTP over this unix socket (Docker)
---@field timeout? string|number whole request (default "30s"; 0 = no limit)
---@field connect_timeout? string|number default "10s"
---@field tls_verify? boolean default true
---@field ca? string CA certificate file to trust
---@field cert? string client certificate file
---@field key? string client key file
---@field follow_redirects? boolean default false
---@field max_redirects? integer default 10
---@field on_body? fun(chunk: string) receives the body chunk by chunk (then res.body is nil)
---@field response_headers? boolean default true; false leaves res.headers out (cheaper when only status/body matter)
---@field response_body? boolean default true; false reads the body and drops it (res.body is nil), for callers that only look at the status
---@field max_body? integer bytes of body kept for res.body (default 64 MiB); more fails with EBODYTOOLARGE (not for on_body or response_body = false)

---@class slipway.HttpResponse
---@field status integer HTTP status (>= 400 is data, not a failure)
---@field headers? table<string, string> lower-case names; repeated headers joined with ", " (nil with response_headers = false)
---@field body? string the body (nil when on_body took it)
---@field time_ms number total time of the transfer
---@field url string the effective URL (after redirects)

---Make an HTTP(S) request on the event loop (libcurl multi; connections are
---reused). Transport failures return nil, "ECONNREFUSED: connection refused:
---URL", "ECONNREFUSED" (codes: ECONNREFUSED, ETIMEDOUT, ECERT, EDNS,
---ECONNRESET, EINVAL, ECANCELED, EHTTP; EBODYTOOLARGE for a body beyond
---max_body, EHEADERSTOOLARGE for response headers beyond 256 KiB, ENOMEM).
---Unknown options, a bad method or header, a string with a NUL byte raise.
---@async
---@param opts slipway.HttpOptions|string the options, or the url followed by them
---@param opts2? slipway.HttpOptions
---@return slipway.HttpResponse|nil response
---@return string? message
---@return string? code
function http.request(opts, opts2) end

---Close the pooled idle connections (only when no request is running).
---@return boolean closed
function http.close_idle() end

---@return {running: integer, sockets: integer, pauses: integer}
function http.stats() end
