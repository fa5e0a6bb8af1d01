-- slipway.probe and `slipway probe` against real local servers: nginx
-- (tests/support/nginx.lua) for HTTP, TLS with a self-signed certificate,
-- a server that never answers (/hang), a slow one (/sleep/S), one that
-- answers 503 until a file appears (/flaky), and closed ports.
local probe = require("slipway.probe")
local http = require("slipway.http")
local proc = require("slipway.proc")
local json = require("slipway.json")
local task = require("slipway.task")
local leaks = require("support.leaks")
local nginx = require("support.nginx")

local SLIPWAY = os.getenv("SLIPWAY") or "build/slipway"

-- Under AddressSanitizer freed memory sits in its quarantine, so RSS says
-- nothing there; LeakSanitizer checks for leaks at exit instead.
local function sanitized()
  local f = assert(io.open("/proc/self/maps"))
  local maps = f:read("a")
  f:close()
  return maps:find("libasan", 1, true) ~= nil
end

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("l"):match("^%d+ (%d+)")
  f:close()
  return tonumber(pages) * 4
end

-- Run `slipway probe ARGS...`: code, stdout, stderr.
local function cli(...)
  local res = assert(proc.run({ SLIPWAY, "probe", ... }, { timeout = 30 }))
  return res.code, res.stdout, res.stderr
end

describe("probe", function()
  local srv, closed

  setup(function()
    srv = nginx.start { tls = true }
    closed = nginx.free_port()
  end)
  teardown(function()
    http.close_idle()
    srv:stop()
  end)
  before_each(function() srv:remove("healthy") end)

  leaks.check()

  describe("http", function()
    it("passes on 2xx and says why", function()
      local r = probe.http { url = srv:url("/small.txt") }
      assert.is_number(r.latency_ms)
      assert.is_number(r.elapsed_ms)
      r.latency_ms, r.elapsed_ms = nil, nil
      assert.same({ ok = true, kind = "http", target = srv:url("/small.txt"), name = srv:url("/small.txt"),
                    attempts = 1, passes = 1, status = 200, reason = "status 200" }, r)
    end)

    it("fails on an unexpected status, with the status in the reason", function()
      local r = probe.http { url = srv:url("/missing.txt") }
      assert.same({ false, 404, "ESTATUS", "status 404, expected 2xx", 1 },
        { r.ok, r.status, r.error, r.reason, r.attempts })
    end)

    it("takes expect as a status, a list or a class", function()
      assert.is_true(probe.http { url = srv:url("/missing.txt"), expect = 404 }.ok)
      assert.is_true(probe.http { url = srv:url("/status/204"), expect = { 200, 204 } }.ok)
      assert.is_true(probe.http { url = srv:url("/status/500"), expect = "5xx" }.ok)
      local r = probe.http { url = srv:url("/small.txt"), expect = { 201, 204 } }
      assert.same({ false, "status 200, expected 201 or 204" }, { r.ok, r.reason })
    end)

    it("checks the body and JSON fields", function()
      assert.is_true(probe.http { url = srv:url("/small.txt"), body_contains = "from nginx" }.ok)
      local r = probe.http { url = srv:url("/small.txt"), body_contains = "ready" }
      assert.same({ false, "EBODY", 'status 200, but the body does not contain "ready"' }, { r.ok, r.error, r.reason })
      assert.is_true(probe.http { url = srv:url("/json"), json = { status = "ok", ["db.up"] = true } }.ok)
      r = probe.http { url = srv:url("/json"), json = { ["db.up"] = false } }
      assert.same({ false, "EJSON", "json db.up is true, expected false" }, { r.ok, r.error, r.reason })
      r = probe.http { url = srv:url("/small.txt"), json = { status = "ok" } }
      assert.same({ false, "EJSON", "status 200, but the body is not a JSON object" }, { r.ok, r.error, r.reason })
    end)

    it("drops a body it never reads instead of keeping it", function()
      local function peak_rss_kb()
        local f = assert(io.open("/proc/self/status"))
        local kb = f:read("a"):match("VmHWM:%s*(%d+)")
        f:close()
        return tonumber(kb)
      end
      assert(os.execute("truncate -s 100M " .. srv.root .. "/huge.bin"))   -- beyond http's max_body
      local before = peak_rss_kb()
      local r = probe.http { url = srv:url("/huge.bin"), timeout = "20s" }
      srv:remove("huge.bin")
      assert.same({ true, "status 200" }, { r.ok, r.reason })
      if not sanitized() then
        local grew = peak_rss_kb() - before
        assert.is_true(grew < 32 * 1024, "peak RSS grew by " .. grew .. " kB")
      end
    end)

    it("verifies TLS certificates, with ca or tls_verify = false as ways out", function()
      local r = probe.http { url = srv:tls_url("/small.txt") }
      assert.same({ false, "ECERT", "certificate verify failed: SSL certificate problem: self-signed certificate" },
        { r.ok, r.error, r.reason })
      assert.is_true(probe.http { url = srv:tls_url("/small.txt"), ca = srv.cert }.ok)
      assert.is_true(probe.http { url = srv:tls_url("/small.txt"), tls_verify = false }.ok)
    end)

    it("times out against a server that never answers", function()
      local r = probe.http { url = srv:url("/hang"), timeout = "200ms" }
      assert.same({ false, "ETIMEDOUT", "timeout after 200ms" }, { r.ok, r.error, r.reason })
      assert.is_true(r.elapsed_ms >= 195 and r.elapsed_ms < 1500, "elapsed " .. r.elapsed_ms)
    end)

    it("waits for a slow server within its timeout", function()
      local r = probe.http { url = srv:url("/sleep/0.3"), timeout = "2s" }
      assert.same({ true, "status 200" }, { r.ok, r.reason })
      assert.is_true(r.latency_ms >= 290, "latency " .. r.latency_ms)
      r = probe.http { url = srv:url("/sleep/0.3"), timeout = "100ms" }
      assert.same({ false, "timeout after 100ms" }, { r.ok, r.reason })
    end)

    it("reports a closed port as refused", function()
      local r = probe.http { url = ("http://127.0.0.1:%d/health"):format(closed) }
      assert.same({ false, "ECONNREFUSED", "connection refused" }, { r.ok, r.error, r.reason })
    end)
  end)

  describe("policy", function()
    it("retries a 503 until it turns 200 (within)", function()
      local flip = task.spawn(function() task.sleep("250ms"); srv:write("healthy", "") end)
      local r = probe.http { url = srv:url("/flaky"), within = "5s", interval = "50ms" }
      flip:join()
      assert.same({ true, 200, "status 200" }, { r.ok, r.status, r.reason })
      assert.is_true(r.attempts >= 3 and r.attempts <= 12, "attempts " .. r.attempts)
      assert.is_true(r.elapsed_ms >= 240, "elapsed " .. r.elapsed_ms)
    end)

    it("gives up after the retries, keeping the interval between attempts", function()
      local r = probe.http { url = srv:url("/flaky"), retries = 3, interval = "100ms" }
      assert.same({ false, 4, "status 503, expected 2xx" }, { r.ok, r.attempts, r.reason })
      assert.is_true(r.elapsed_ms >= 300 and r.elapsed_ms < 1000, "elapsed " .. r.elapsed_ms)
    end)

    it("backs off: each wait is the last one times backoff, up to max_interval", function()
      local url = ("http://127.0.0.1:%d/"):format(closed)
      local r = probe.http { url = url, retries = 3, interval = "50ms", backoff = 2 }
      assert.same({ false, 4 }, { r.ok, r.attempts })
      assert.is_true(r.elapsed_ms >= 350 and r.elapsed_ms < 1000, "elapsed " .. r.elapsed_ms)   -- 50+100+200
      r = probe.http { url = url, retries = 3, interval = "50ms", backoff = 4, max_interval = "60ms" }
      assert.is_true(r.elapsed_ms >= 170 and r.elapsed_ms < 500, "elapsed " .. r.elapsed_ms)    -- 50+60+60
    end)

    it("stops at the within deadline and says so", function()
      local r = probe.tcp { host = "127.0.0.1", port = closed, within = "300ms", interval = "100ms" }
      assert.same({ false, "ECONNREFUSED", "connection refused (not healthy within 300ms)" }, { r.ok, r.error, r.reason })
      assert.is_true(r.attempts >= 3 and r.attempts <= 5, "attempts " .. r.attempts)
      assert.is_true(r.elapsed_ms >= 295 and r.elapsed_ms < 900, "elapsed " .. r.elapsed_ms)
    end)

    it("needs success_threshold passes in a row", function()
      local r = probe.http { url = srv:url("/small.txt"), success_threshold = 3, interval = "30ms" }
      assert.same({ true, 3, 3 }, { r.ok, r.attempts, r.passes })
      assert.is_true(r.elapsed_ms >= 55, "elapsed " .. r.elapsed_ms)
    end)

    it("is not healthy when healthy only once (stable_for)", function()
      srv:write("healthy", "")
      local flap = task.spawn(function() task.sleep("120ms"); srv:remove("healthy") end)
      local r = probe.http { url = srv:url("/flaky"), stable_for = "600ms", interval = "40ms" }
      flap:join()
      assert.same({ false, "ESTATUS", "status 503, expected 2xx (after being healthy)" }, { r.ok, r.error, r.reason })
      assert.is_true(r.attempts >= 3, "attempts " .. r.attempts)
      srv:write("healthy", "")
      r = probe.http { url = srv:url("/flaky"), stable_for = "200ms", interval = "50ms" }
      assert.same({ true, "status 200" }, { r.ok, r.reason })
      assert.is_true(r.elapsed_ms >= 195 and r.attempts >= 4, "elapsed " .. r.elapsed_ms)
    end)

    it("raises with the reason when check = true, naming the caller's line", function()
      local ok, err = pcall(probe.http, { url = srv:url("/missing.txt"), check = true })
      assert.same({ false, ("tests/probe_spec.lua:%d: probe.http: %s: status 404, expected 2xx (1 attempt)")
        :format(debug.getinfo(1, "l").currentline - 2, srv:url("/missing.txt")) }, { ok, err })
    end)

    it("fails the pipeline task it runs in: raises inside a run unless check = false", function()
      local url = srv:url("/missing.txt")
      local ok, err, ok_all, err_all, r
      require("support.fake_run").within(function()
        ok, err = pcall(probe.http, { url = url })
        ok_all, err_all = pcall(probe.all, { { url = url } })
        r = probe.http { url = url, check = false }
      end)
      assert.same({ false, false }, { ok, ok_all })
      assert.matches("^tests/probe_spec.lua:%d+: probe.http: .* status 404, expected 2xx %(1 attempt%)$", err)
      assert.matches("^tests/probe_spec.lua:%d+: probe.all: 1 of 1 probe failed:\n  http ", err_all)
      assert.same(false, r.ok)
      assert.same(false, probe.http { url = url }.ok)        -- outside a run: a result
    end)

    it("rejects bad input with a clear message", function()
      local function msg(f, spec)
        local ok, err = pcall(f, spec)
        assert.is_false(ok)
        return (err:gsub("^tests/probe_spec.lua:%d+: ", ""))
      end
      assert.same("probe.http: bad URL 'htp://x' (expected http(s)://host[:port]/path)", msg(probe.http, { url = "htp://x" }))
      assert.same("probe.http: option 'interval' must not be negative, got '-1s'",
        msg(probe.http, { url = srv:url("/"), interval = "-1s" }))
      assert.same("probe.tcp: option 'interval' must not be negative, got -1", msg(probe.tcp, { host = "x", port = 1, interval = -1 }))
      assert.same("probe.tcp: option 'within': duration '1e+300' is too large (the limit is 100 years)",
        msg(probe.tcp, { host = "x", port = 1, within = 1e300 }))
      assert.same("probe.tcp: option 'host' contains a NUL byte", msg(probe.tcp, { host = "127.0.0.1\0evil", port = 1 }))
      assert.same("probe.http: bad URL 'http://a\0b/' (expected http(s)://host[:port]/path)",
        msg(probe.http, { url = "http://a\0b/" }))
      assert.matches("^probe.http: unknown option 'retry' %(valid: url, method, ", msg(probe.http, { url = srv:url("/"), retry = 1 }))
      assert.same("probe.tcp: option 'port' must be an integer 1-65535, got 70000", msg(probe.tcp, { host = "x", port = 70000 }))
      assert.same("probe.http: option 'expect': bad status 'ok' (expected e.g. 200, {200, 204} or \"2xx\")",
        msg(probe.http, { url = srv:url("/"), expect = "ok" }))
      assert.same("probe.cmd: give either 'argv' (a list) or 'sh' (a string)", msg(probe.cmd, {}))
      assert.same("probe.http: option 'success_threshold' must be at least 1, got 0",
        msg(probe.http, { url = srv:url("/"), success_threshold = 0 }))
    end)

    it("cancels cleanly in the middle of a probe", function()
      local t = task.spawn(probe.http, { url = srv:url("/hang"), timeout = "10s" })
      task.sleep("50ms")
      t:cancel()
      local ok, err = pcall(t.join, t)
      assert.same({ false, true }, { ok, task.is_cancelled(err) })
    end)
  end)

  describe("tcp", function()
    it("connects to an open port and reports a closed one", function()
      local r = probe.tcp { host = "127.0.0.1", port = srv.port }
      assert.same({ true, "tcp", "127.0.0.1:" .. srv.port, "connected to 127.0.0.1" }, { r.ok, r.kind, r.target, r.reason })
      r = probe.tcp { host = "localhost", port = closed }
      assert.same({ false, "ECONNREFUSED", "connection refused" }, { r.ok, r.error, r.reason })
    end)

    it("times out when the server accepts nothing", function()
      local stalled = nginx.start { backlog = 1 }
      stalled:pause()
      local r
      for _ = 1, 10 do     -- the first connects fill the listen queue
        r = probe.tcp { host = "127.0.0.1", port = stalled.port, timeout = "200ms" }
        if not r.ok then break end
      end
      stalled:stop()
      assert.same({ false, "ETIMEDOUT", "timeout after 200ms" }, { r.ok, r.error, r.reason })
      assert.is_true(r.elapsed_ms >= 195 and r.elapsed_ms < 1500, "elapsed " .. r.elapsed_ms)
    end)

    it("resolves names and says when it cannot", function()
      local r = probe.tcp { host = "localhost", port = srv.port }
      assert.is_true(r.ok)
      r = probe.tcp { host = "no-such-host.invalid", port = 80 }
      assert.same({ false, "EDNS", "cannot resolve host" }, { r.ok, r.error, r.reason })
    end)
  end)

  describe("cmd", function()
    it("passes on the expected exit code and shows the last stderr line otherwise", function()
      assert.same({ true, 0, "exit code 0" }, (function()
        local r = probe.cmd { argv = { "true" } }
        return { r.ok, r.status, r.reason }
      end)())
      local r = probe.cmd { sh = "echo fine; echo 'db: not ready' >&2; exit 3" }
      assert.same({ false, "ECODE", 3, "exit code 3, expected 0: db: not ready" }, { r.ok, r.error, r.status, r.reason })
      assert.is_true(probe.cmd { sh = "exit 3", expect_code = 3 }.ok)
    end)

    it("times out a command that hangs", function()
      local r = probe.cmd { argv = { "sleep", "10" }, timeout = "200ms" }
      assert.same({ false, "ETIMEDOUT", "timeout after 200ms" }, { r.ok, r.error, r.reason })
    end)

    it("retries until the command passes", function()
      local flag = os.tmpname()
      os.remove(flag)
      local flip = task.spawn(function() task.sleep("150ms"); io.open(flag, "w"):close() end)
      local r = probe.cmd { argv = { "test", "-f", flag }, within = "3s", interval = "40ms" }
      flip:join()
      os.remove(flag)
      assert.same({ true, "exit code 0" }, { r.ok, r.reason })
      assert.is_true(r.attempts >= 2)
    end)
  end)

  describe("all", function()
    it("runs every kind at once and returns the results in order", function()
      local out = probe.all({
        { url = srv:url("/small.txt") },
        { host = "127.0.0.1", port = closed },
        { sh = "exit 0" },
        { url = srv:url("/missing.txt"), name = "missing page" },
      }, { timeout = "2s" })
      assert.same({ false, 2, 2 }, { out.ok, out.passed, out.failed })
      local got = {}
      for i, r in ipairs(out.results) do got[i] = { r.kind, r.ok, r.reason } end
      assert.same({
        { "http", true, "status 200" },
        { "tcp", false, "connection refused" },
        { "cmd", true, "exit code 0" },
        { "http", false, "status 404, expected 2xx" },
      }, got)
      assert.same("missing page", out.results[4].name)
    end)

    it("bounds concurrency", function()
      local list = {}
      for i = 1, 12 do list[i] = { url = srv:url("/sleep/0.1") } end
      local t0 = task.now()
      local out = probe.all(list, { concurrency = 4 })
      local ms = task.now() - t0
      assert.same({ true, 12 }, { out.ok, out.passed })
      assert.is_true(ms >= 290 and ms < 1500, "took " .. ms)   -- 3 rounds of 100ms
    end)

    it("lists every failing reason when it raises", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(probe.all, {
        { url = srv:url("/missing.txt") },
        { host = "127.0.0.1", port = closed },
        { url = srv:url("/small.txt") },
      }, { check = true })
      assert.is_false(ok)
      assert.same(table.concat({
        ("tests/probe_spec.lua:%d: probe.all: 2 of 3 probes failed:"):format(line),
        ("  http %s: status 404, expected 2xx (1 attempt)"):format(srv:url("/missing.txt")),
        ("  tcp 127.0.0.1:%d: connection refused (1 attempt)"):format(closed),
      }, "\n"), err)
    end)

    it("checks every spec before running any", function()
      local ok, err = pcall(probe.all, { { url = srv:url("/") }, { url = srv:url("/"), interval = "soon" } })
      assert.is_false(ok)
      assert.matches("^tests/probe_spec.lua:%d+: probe.all: probe #2 %(http%): option 'interval': bad duration 'soon'", err)
      ok, err = pcall(probe.all, { { nothing = 1 } })
      assert.is_false(ok)
      assert.matches("probe #1: cannot tell its kind", err)
      ok, err = pcall(probe.all, {}, { limit = 3 })
      assert.is_false(ok)
      assert.matches("probe.all: unknown option 'limit' %(valid: backoff, check, concurrency, ", err)
    end)

    it("runs 10,000 probes with no fd or handle left and memory back near its start", function()
      local function batch(n)
        local list = {}
        for i = 1, n do list[i] = { url = srv:url("/small.txt"), timeout = "10s" } end
        return probe.all(list, { concurrency = 200 })
      end
      local trim = require("slipway._probe").trim  -- malloc_trim: hand freed pages back
      batch(1000)                                  -- warm up pools and the heap
      http.close_idle()
      collectgarbage()
      collectgarbage()
      trim()
      local rss0, lua0, fds0 = rss_kb(), collectgarbage("count"), leaks.fd_count()
      local out = batch(10000)
      assert.same({ true, 10000, 0 }, { out.ok, out.passed, out.failed })
      out = nil -- luacheck: ignore 311 (let the 10,000 results be collected)
      http.close_idle()
      task.sleep(0)
      collectgarbage()
      collectgarbage()
      trim()
      local rss1, lua1 = rss_kb(), collectgarbage("count")
      assert.same(fds0, leaks.fd_count())
      assert.same(0, http.stats().running)
      assert.is_true(lua1 < lua0 * 1.5 + 256, ("Lua heap %.0f KB -> %.0f KB"):format(lua0, lua1))
      if not sanitized() then
        assert.is_true(rss1 < rss0 + 4 * 1024, ("RSS %d KB -> %d KB"):format(rss0, rss1))
      end
    end)
  end)

  describe("slipway probe", function()
    it("prints a table and exits 0 when every target passes", function()
      local code, out, err = cli(srv:url("/small.txt"), "tcp://127.0.0.1:" .. srv.port)
      assert.same({ 0, "" }, { code, err })
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.same(4, #lines)
      assert.matches("^RESULT%s+KIND%s+TARGET%s+TRIES%s+LATENCY%s+REASON$", lines[1])
      assert.matches("^ok%s+http%s+" .. srv:url("/small.txt"):gsub("%p", "%%%0") .. "%s+1%s+[%d.]+m?s%s+status 200$", lines[2])
      assert.matches("^ok%s+tcp%s+127.0.0.1:" .. srv.port .. "%s+1%s+[%d.]+m?s%s+connected to 127.0.0.1$", lines[3])
      assert.same("2 probes: 2 passed, 0 failed", lines[4])
    end)

    it("exits 1 when a target fails, with the reason", function()
      local code, out = cli(srv:url("/missing.txt"), "--retries", "1", "--interval", "10ms")
      assert.same(1, code)
      assert.matches("FAIL%s+http%s+%S+%s+2%s+%S+%s+status 404, expected 2xx\n", out)
      code = cli(srv:url("/missing.txt"), "--expect", "404,410")
      assert.same(0, code)
    end)

    it("prints JSON with --json", function()
      local code, out = cli("--json", "tcp://127.0.0.1:" .. closed, srv:url("/small.txt"))
      assert.same(1, code)
      local doc = json.decode(out)
      assert.same({ false, 1, 1 }, { doc.ok, doc.passed, doc.failed })
      assert.same({ "tcp", "connection refused", "ECONNREFUSED" },
        { doc.results[1].kind, doc.results[1].reason, doc.results[1].error })
      assert.same({ "http", true, 200 }, { doc.results[2].kind, doc.results[2].ok, doc.results[2].status })
    end)

    it("exits 2 on bad input with a clear message", function()
      assert.same({ 2, "", "slipway probe: bad target 'htp://example.com' (expected http://HOST/PATH, " ..
                           "https://HOST/PATH or tcp://HOST:PORT)\n" }, { cli("htp://example.com") })
      assert.same({ 2, "", "slipway probe: --interval must not be negative, got '-5s'\n" },
        { cli(srv:url("/"), "--interval", "-5s") })
      local code, out, err = cli(srv:url("/"), "--retry", "3")
      assert.same({ 2, "" }, { code, out })
      assert.matches("^slipway probe: unknown option '%-%-retry' %(valid: %-%-backoff, ", err)
      assert.same({ 2, "", "slipway probe: no TARGET given (try `slipway probe --help`)\n" }, { cli() })
      assert.same({ 2, "", "slipway probe: bad URL 'http://exa mple.com/' (expected http(s)://host[:port]/path)\n" },
        { cli("http://exa mple.com/") })
      assert.same({ 2, "", "slipway probe: --timeout: bad duration 'soon' (expected e.g. 250ms, 5s, 1h30m)\n" },
        { cli(srv:url("/"), "--timeout", "soon") })
    end)

    it("fails its pipeline task, listing every reason, and so rolls back (slipway run)", function()
      local dir = assert(proc.run({ "mktemp", "-d" })).stdout:gsub("%s+$", "")
      local f = assert(io.open(dir .. "/deploy.lua", "w"))
      f:write(([[
task("deploy", { rollback = function() io.open("%s/rolled-back", "w"):close() end }, function() end)
task("validate", { needs = "deploy" }, function()
  probe.all { { url = "%s" }, { host = "127.0.0.1", port = %d }, { url = "%s" } }
end)
]]):format(dir, srv:url("/missing.txt"), closed, srv:url("/small.txt")))
      f:close()
      local res = assert(proc.run({ SLIPWAY, "run", "deploy.lua", "--no-color" }, { cwd = dir, timeout = 30 }))
      local rolled = io.open(dir .. "/rolled-back")
      if rolled then rolled:close() end
      proc.run({ "rm", "-rf", dir })
      assert.same(1, res.code)
      local out = res.stdout .. res.stderr
      -- (every line of the message carries the task's prefix)
      assert.truthy(out:find(table.concat({
        "deploy.lua:3: probe.all: 2 of 3 probes failed:",
        ("[validate]   http %s: status 404, expected 2xx (1 attempt)"):format(srv:url("/missing.txt")),
        ("[validate]   tcp 127.0.0.1:%d: connection refused (1 attempt)"):format(closed),
      }, "\n"), 1, true), out)
      assert.truthy(rolled, "the deploy task's rollback ran")
    end)

    it("has help", function()
      local res = assert(proc.run({ SLIPWAY, "probe", "--help" }))
      assert.same(0, res.code)
      assert.matches("^usage: slipway probe TARGET%.%.%. %[options%]", res.stdout)
    end)
  end)
end)
