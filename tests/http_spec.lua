-- slipway.http against a real nginx started by the test (tests/support/nginx.lua).
local http = require("slipway.http")
local task = require("slipway.task")
local leaks = require("support.leaks")
local nginx = require("support.nginx")
local tcp = require("slipway._probe").tcp

local function tmpfile(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

-- Deterministic bytes of every value 0..255, n long.
local function pattern(n)
  local t = {}
  for i = 1, 256 do t[i] = string.char(i - 1) end
  local block = table.concat(t)
  return block:rep(n // 256 + 1):sub(1, n)
end

describe("http.request", function()
  local srv
  local big = pattern(3 * 1024 * 1024 + 17)

  setup(function()
    srv = nginx.start { unix = true, tls = true, files = { ["big.bin"] = big } }
  end)
  teardown(function()
    http.close_idle()
    srv:stop()
  end)

  leaks.check()

  describe("GET", function()
    it("returns status, lower-case headers, body, time and effective url", function()
      local res = http.request { url = srv:url("/small.txt") }
      assert.same(200, res.status)
      assert.same("hello from nginx\n", res.body)
      assert.same("17", res.headers["content-length"])
      assert.same("text/plain", res.headers["content-type"])
      assert.same(srv:url("/small.txt"), res.url)
      assert.is_true(res.time_ms > 0 and res.time_ms < 5000)
    end)

    it("leaves the headers out when response_headers = false", function()
      local res = http.request { url = srv:url("/small.txt"), response_headers = false }
      assert.same({ 200, "hello from nginx\n", nil }, { res.status, res.body, res.headers })
      res = http.request { url = srv:url("/small.txt"), response_headers = true }
      assert.same("17", res.headers["content-length"])
      assert.has_error(function() http.request { url = srv:url("/"), response_headers = "no" } end)
    end)

    it("takes the url as a first argument too, without touching the options", function()
      local opts = { timeout = "5s" }
      local res = http.request(srv:url("/small.txt"), opts)
      assert.same("hello from nginx\n", res.body)
      assert.same({ timeout = "5s" }, opts)
    end)

    it("treats an HTTP error status as data", function()
      local res = http.request { url = srv:url("/missing.txt") }
      assert.same(404, res.status)
      res = http.request { url = srv:url("/status/500") }
      assert.same({ 500, "status 500\n" }, { res.status, res.body })
      res = http.request { url = srv:url("/status/204") }
      assert.same({ 204, "" }, { res.status, res.body })
    end)

    it("sends HEAD without waiting for a body", function()
      local res = http.request { url = srv:url("/small.txt"), method = "HEAD" }
      assert.same({ 200, "", "17" }, { res.status, res.body, res.headers["content-length"] })
    end)

    it("reuses the connection for the next request", function()
      local a = http.request { url = srv:url("/conn") }
      local b = http.request { url = srv:url("/conn") }
      assert.same(a.body, b.body)
      http.close_idle()
      local c = http.request { url = srv:url("/conn") }
      assert.are_not.same(a.body, c.body)
    end)

    it("does not follow redirects unless asked", function()
      local res = http.request { url = srv:url("/redirect") }
      assert.same(302, res.status)
      assert.same(srv:url("/small.txt"), res.headers.location)
      res = http.request { url = srv:url("/redirect"), follow_redirects = true }
      assert.same({ 200, "hello from nginx\n", srv:url("/small.txt") }, { res.status, res.body, res.url })
    end)

    it("gives a large body whole", function()
      local res = http.request { url = srv:url("/big.bin") }
      assert.same(#big, #res.body)
      assert.is_true(res.body == big)
    end)
  end)

  describe("request bodies", function()
    it("POSTs a body with its headers", function()
      local res = http.request {
        url = srv:url("/echo"), body = "name=slipway",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Test"] = 42 },
      }
      assert.same(200, res.status)
      assert.same("name=slipway", res.body)
      assert.same({ "POST", "42", "application/x-www-form-urlencoded", "12" }, {
        res.headers["x-method"], res.headers["x-test"], res.headers["x-content-type"], res.headers["x-length"] })
    end)

    it("sends other methods with or without a body", function()
      local res = http.request { url = srv:url("/echo"), method = "PUT", body = "v2" }
      assert.same({ "PUT", "v2" }, { res.headers["x-method"], res.body })
      res = http.request { url = srv:url("/echo"), method = "DELETE" }
      assert.same({ "DELETE", "" }, { res.headers["x-method"], res.body })
      res = http.request { url = srv:url("/echo"), method = "POST" }
      assert.same({ "POST", "0", "" }, { res.headers["x-method"], res.headers["x-length"], res.body })
    end)

    it("streams the body from a file (body_file)", function()
      local data = pattern(700 * 1024)
      local path = tmpfile(data)
      local res = http.request { url = srv:url("/echo"), body_file = path,
                                 headers = { ["Content-Type"] = "application/x-tar" } }
      os.remove(path)
      assert.same({ 200, "POST", tostring(#data), "application/x-tar" },
        { res.status, res.headers["x-method"], res.headers["x-length"], res.headers["x-content-type"] })
      assert.is_true(res.body == data)
    end)

    it("returns ENOENT for a missing body_file", function()
      assert.same({ nil, "ENOENT: no such file or directory: /nonexistent/ctx.tar", "ENOENT" },
        { http.request { url = srv:url("/echo"), body_file = "/nonexistent/ctx.tar" } })
    end)
  end)

  describe("unix sockets", function()
    it("talks HTTP over a unix socket", function()
      local res = http.request { url = "http://localhost/small.txt", unix_socket = srv.socket }
      assert.same({ 200, "hello from nginx\n" }, { res.status, res.body })
    end)

    it("says which socket it could not reach", function()
      assert.same({ nil, "ECONNREFUSED: cannot connect to unix socket /nonexistent/docker.sock: " ..
                    "no such file or directory: http://localhost/version", "ECONNREFUSED" },
        { http.request { url = "http://localhost/version", unix_socket = "/nonexistent/docker.sock" } })
    end)
  end)

  describe("TLS", function()
    it("verifies certificates by default", function()
      local url = srv:tls_url("/small.txt")
      assert.same({ nil, "ECERT: certificate verify failed: SSL certificate problem: self-signed certificate: " .. url,
                    "ECERT" }, { http.request { url = url } })
    end)

    it("accepts a certificate signed by the given ca", function()
      local res = http.request { url = srv:tls_url("/small.txt"), ca = srv.cert }
      assert.same({ 200, "hello from nginx\n" }, { res.status, res.body })
    end)

    it("skips verification when tls_verify = false", function()
      local res = http.request { url = srv:tls_url("/small.txt"), tls_verify = false }
      assert.same(200, res.status)
    end)
  end)

  describe("failures", function()
    it("reports a refused connection", function()
      local url = ("http://127.0.0.1:%d/x"):format(nginx.free_port())
      assert.same({ nil, "ECONNREFUSED: connection refused: " .. url, "ECONNREFUSED" }, { http.request { url = url } })
    end)

    it("rejects URLs it cannot use", function()
      assert.same({ nil, "EINVAL: bad URL (expected http:// or https://): ftp://example.com/x", "EINVAL" },
        { http.request { url = "ftp://example.com/x" } })
      assert.same({ nil, "EINVAL: bad URL (expected http:// or https://): not a url", "EINVAL" },
        { http.request { url = "not a url" } })
      local res, msg, code = http.request { url = "http://exa mple.com/" }
      assert.same({ nil, "EINVAL" }, { res, code })
      assert.matches("^EINVAL: bad URL %(.+%): http://exa mple.com/$", msg)
    end)

    it("reports a host that does not resolve", function()
      assert.same({ nil, "EDNS: cannot resolve host: http://no-such-host.invalid/", "EDNS" },
        { http.request { url = "http://no-such-host.invalid/" } })
    end)

    it("times out against a server that never answers", function()
      local url = srv:url("/hang")
      local t0 = task.now()
      assert.same({ nil, "ETIMEDOUT: timeout after 300ms: " .. url, "ETIMEDOUT" },
        { http.request { url = url, timeout = "300ms" } })
      local ms = task.now() - t0
      assert.is_true(ms >= 290 and ms < 2000, "took " .. ms)
    end)

    it("times out connecting to a server that accepts nothing, again and again", function()
      -- a stopped nginx with a listen queue of 1: once the queue is full,
      -- connects hang (a regression test: the second attempt used to stall
      -- on the watcher curl's first, silently closed, socket left behind)
      local stalled = nginx.start { backlog = 1 }
      stalled:pause()
      for _ = 1, 10 do
        if not tcp("127.0.0.1", stalled.port, 200) then break end
      end
      local url = stalled:url("/")
      local t0 = task.now()
      assert.same({ nil, "ETIMEDOUT: connect timeout after 200ms: " .. url, "ETIMEDOUT" },
        { http.request { url = url, connect_timeout = "200ms" } })
      assert.same({ nil, "ETIMEDOUT: connect timeout after 300ms: " .. url, "ETIMEDOUT" },
        { http.request { url = url, timeout = "300ms" } })
      assert.same({ nil, "ETIMEDOUT: connect timeout after 200ms: " .. url, "ETIMEDOUT" },
        { http.request { url = url, connect_timeout = "200ms" } })
      local ms = task.now() - t0
      assert.is_true(ms >= 690 and ms < 3000, "took " .. ms)
      assert.same(0, http.stats().sockets)   -- no watcher left on the failed sockets
      stalled:stop()
    end)

    it("raises on an unknown option, naming the caller's line", function()
      local ok, err = pcall(http.request, { url = srv:url("/"), timeuot = "1s" })
      assert.is_false(ok)
      assert.matches("^tests/http_spec.lua:%d+: http.request: unknown option 'timeuot' %(valid: url, method", err)
    end)

    it("raises on options of the wrong type", function()
      assert.has_error(function() http.request { url = srv:url("/"), headers = "x" } end)
      assert.has_error(function() http.request { url = srv:url("/"), body = 12 } end)
      assert.has_error(function() http.request { url = srv:url("/"), timeout = "soon" } end)
      assert.has_error(function() http.request { method = "GET" } end)
      assert.has_error(function() http.request { url = srv:url("/"), headers = { ["X-A"] = "a\r\nb" } } end)
    end)

    it("raises outside a task", function()
      local ok, err = coroutine.wrap(function() return pcall(http.request, { url = srv:url("/") }) end)()
      assert.is_false(ok)
      assert.matches("http.request: call this inside a task", err)
    end)
  end)

  describe("limits", function()
    it("stops a body beyond max_body that has no Content-Length, as it arrives", function()
      local data = pattern(2 * 1024 * 1024)
      local url = srv:url("/echo")   -- echoes chunked, without a length
      assert.same({ nil, "EBODYTOOLARGE: the response body passed max_body (1 MiB): " .. url, "EBODYTOOLARGE" },
        { http.request { url = url, body = data, max_body = 1024 * 1024 } })
      local res = http.request { url = url, body = data, max_body = #data }
      assert.is_true(res.body == data)
      assert.same(0, http.stats().running)
    end)

    it("refuses a body whose Content-Length is beyond max_body before reading it", function()
      local url = srv:url("/big.bin")
      assert.same({ nil, "EBODYTOOLARGE: the response body passed max_body (1000 bytes): " .. url, "EBODYTOOLARGE" },
        { http.request { url = url, max_body = 1000 } })
      assert.same(#big, #http.request { url = url, max_body = #big }.body)
    end)

    it("keeps at most 64 MiB of a body by default", function()
      assert(os.execute("truncate -s 65M " .. srv.root .. "/huge.bin"))
      local url = srv:url("/huge.bin")
      local res, msg, code = http.request { url = url }
      srv:remove("huge.bin")
      assert.same({ nil, "EBODYTOOLARGE: the response body passed max_body (64 MiB): " .. url, "EBODYTOOLARGE" },
        { res, msg, code })
    end)

    it("applies max_body neither to on_body nor to a dropped body", function()
      local seen = 0
      local res = http.request { url = srv:url("/big.bin"), max_body = 10, on_body = function(c) seen = seen + #c end }
      assert.same({ 200, #big }, { res.status, seen })
      res = http.request { url = srv:url("/big.bin"), max_body = 10, response_body = false }
      assert.same({ 200, nil }, { res.status, res.body })
    end)

    it("drops the body with response_body = false", function()
      local res = http.request { url = srv:url("/small.txt"), response_body = false }
      assert.same({ 200, nil, "17" }, { res.status, res.body, res.headers["content-length"] })
      assert.has_error(function() http.request { url = srv:url("/"), response_body = "no" } end)
    end)

    it("stops response headers beyond 256 KiB, read or not", function()
      local url = srv:url("/pad_headers?pad=" .. ("h"):rep(4000))   -- 80 headers of 4000 bytes
      local want = { nil, "EHEADERSTOOLARGE: the response headers passed 256 KiB: " .. url, "EHEADERSTOOLARGE" }
      assert.same(want, { http.request { url = url } })
      assert.same(want, { http.request { url = url, response_headers = false } })
      local res = http.request { url = srv:url("/pad_headers?pad=" .. ("h"):rep(3000)) }
      assert.same({ 200, 3000 }, { res.status, #res.headers["x-pad-80"] })
    end)

    it("refuses a max_body that is not a size", function()
      local ok, err = pcall(http.request, { url = srv:url("/"), max_body = -1 })
      assert.same({ false, "tests/http_spec.lua:" .. debug.getinfo(1, "l").currentline - 1 ..
        ": http.request: option 'max_body' must be a size in bytes (a whole number >= 0), got -1" }, { ok, err })
      assert.has_error(function() http.request { url = srv:url("/"), max_body = "1MB" } end)
    end)
  end)

  describe("caller mistakes that would change the request", function()
    local function raises(opts)
      local ok, err = pcall(http.request, opts)
      assert.is_false(ok)
      return err
    end

    it("takes only an HTTP token as method", function()
      for _, m in ipairs({ "GET /x HTTP/1.1\r\nX-Injected: 1\r\n", "GET\n", "GE T", "", "GET:" }) do
        assert.matches("^tests/http_spec.lua:%d+: http.request: option 'method' must be an HTTP token",
          raises { url = srv:url("/echo"), method = m }, nil, false)
      end
      local res = http.request { url = srv:url("/echo"), method = "M-SEARCH" }
      assert.same("M-SEARCH", res.headers["x-method"])
    end)

    it("takes only an HTTP token as header name, and no line break in a value", function()
      assert.matches("header name 'X A' is not an HTTP token",
        raises { url = srv:url("/"), headers = { ["X A"] = "1" } })
      assert.matches("header name 'X:A' is not an HTTP token",
        raises { url = srv:url("/"), headers = { ["X:A"] = "1" } })
      assert.matches("^tests/http_spec.lua:%d+: http.request: header 'X%-A' contains a line break",
        raises { url = srv:url("/"), headers = { ["X-A"] = "a\nb" } })
    end)

    it("rejects NUL bytes instead of cutting the string there", function()
      local ok, err = pcall(http.request, { url = "http://127.0.0.1/a\0b" })
      assert.same({ false, 'tests/http_spec.lua:' .. debug.getinfo(1, "l").currentline - 1 ..
        ': http.request: option \'url\' contains a NUL byte: "http://127.0.0.1/a\\0b"' }, { ok, err })
      assert.matches('header \'X%-Test\' contains a NUL byte: "ok\\0evil"',
        raises { url = srv:url("/"), headers = { ["X-Test"] = "ok\0evil" } })
      assert.matches('a header name contains a NUL byte',
        raises { url = srv:url("/"), headers = { ["X-Test\0"] = "1" } })
      assert.matches("option 'unix_socket' contains a NUL byte",
        raises { url = srv:url("/"), unix_socket = srv.socket .. "\0x" })
      assert.matches("option 'body_file' contains a NUL byte",
        raises { url = srv:url("/echo"), body_file = "/etc/hostname\0x" })
    end)

    it("rejects a negative max_redirects (curl would take it as no limit)", function()
      assert.matches("option 'max_redirects' must not be negative",
        raises { url = srv:url("/redirect"), follow_redirects = true, max_redirects = -1 })
    end)
  end)

  describe("on_body", function()
    it("streams the body chunk by chunk", function()
      local chunks = {}
      local res = http.request { url = srv:url("/big.bin"), on_body = function(c) chunks[#chunks + 1] = c end }
      assert.same(200, res.status)
      assert.is_nil(res.body)
      assert.is_true(#chunks > 1)
      assert.is_true(table.concat(chunks) == big)
    end)

    it("keeps up when the consumer is slow (the transfer pauses)", function()
      local seen, pauses = 0, http.stats().pauses
      local res = http.request { url = srv:url("/big.bin"), on_body = function(c)
        seen = seen + #c
        local t0 = os.clock()
        while os.clock() - t0 < 0.01 do end  -- a slow consumer
      end }
      assert.same({ 200, #big }, { res.status, seen })
      assert.is_true(http.stats().pauses > pauses)
    end)

    it("stops the transfer when on_body raises", function()
      local ok, err = pcall(http.request, { url = srv:url("/big.bin"), on_body = function() error("enough") end })
      assert.is_false(ok)
      assert.matches("http_spec.lua:%d+: enough", err)
      assert.same(0, http.stats().running)
    end)
  end)

  describe("cancellation", function()
    it("removes and frees the curl handle of a cancelled request", function()
      local t = task.spawn(http.request, { url = srv:url("/hang") })
      task.sleep("50ms")
      assert.same(1, http.stats().running)
      assert.same(1, task.stats().ops)
      t:cancel()
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err))
      assert.same(0, http.stats().running)
    end)

    it("cancels a streaming request between chunks", function()
      local got = 0
      local t
      t = task.spawn(http.request, { url = srv:url("/big.bin"), on_body = function(c)
        got = got + #c
        t:cancel()
      end })
      local ok, err = pcall(t.join, t)
      assert.same({ false, true }, { ok, task.is_cancelled(err) })
      assert.is_true(got > 0 and got < #big)
      assert.same(0, http.stats().running)
    end)
  end)

  describe("load", function()
    it("runs 2,000 requests, 100 at a time, and gives every fd back", function()
      http.close_idle()
      task.sleep(0)
      local fds = leaks.fd_count()
      local next_i, ok_count, peak = 0, 0, 0
      local function worker()
        while next_i < 2000 do
          next_i = next_i + 1
          local res = http.request { url = srv:url("/small.txt") }
          if res and res.status == 200 and res.body == "hello from nginx\n" then ok_count = ok_count + 1 end
          local running = http.stats().running
          if running > peak then peak = running end
        end
      end
      local ts = {}
      for i = 1, 100 do ts[i] = task.spawn(worker) end
      for i = 1, 100 do ts[i]:join() end
      assert.same(2000, ok_count)
      assert.is_true(peak > 50, "peak concurrency " .. peak)
      assert.is_true(leaks.fd_count() > fds)  -- pooled keep-alive connections
      http.close_idle()
      task.sleep(0)
      assert.same(fds, leaks.fd_count())
    end)
  end)
end)
