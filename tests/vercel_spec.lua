-- slipway.vercel against the stand-in Vercel API (tests/fakes/vercel_api.lua,
-- which checks every request against ../shared/specs/vercel/ and its own
-- answers too): the files a deployment sends and the CLI's ignore rules,
-- hashing on the thread pool, the missing-files flow and its uploads,
-- following a build, the retry policy, team scoping, promote/rollback jobs,
-- the production change and its undo, no token anywhere it could leak, and
-- Vercel's own client deploying to the same stand-in.
local fs = require("slipway.fs")
local json = require("slipway.json")
local hash = require("slipway.hash")
local task = require("slipway.task")
local proc = require("slipway.proc")
local base64 = require("slipway.base64")
local leaks = require("support.leaks")
local repo = require("support.repo")
local fake_run = require("support.fake_run")
local H = require("support.pipeline_helper")
local standin = require("fakes.vercel_standin")

local vercel = require("slipway.vercel")
local vapi = require("slipway.vercel.api")
local vwait = require("slipway.vercel.wait")
local native = require("slipway._vercel")

local TOKEN = "vtok_S3cret+/=value-0042"
local TEAM = "team_slipwaytests00001"
local FAST = { queue_ms = 0, build_ms = 0, alias_ms = 0, fail_build = false, promote_queued = false }

local api                 -- the stand-in, for the whole file
local root                -- fixtures, removed at the end

local function write_tree(dir, files)
  for name, data in pairs(files) do
    local path = dir .. "/" .. name
    assert(fs.mkdir(fs.dirname(path)))
    assert(fs.write(path, data))
  end
  return dir
end

local n_sites = 0
local function site(files)
  n_sites = n_sites + 1
  local dir = root .. "/site" .. n_sites
  assert(fs.mkdir(dir))
  return write_tree(dir, files or {
    ["index.html"] = "<h1>hello</h1>\n", ["assets/app.js"] = "console.log('app')\n",
    ["assets/site.css"] = "body { margin: 0 }\n",
  })
end

-- vercel.deploy (or any function) as a pipeline unit would run it.
local function within(fn)
  local run, ok, res = fake_run.within(fn)
  return run, ok, res
end

local function output_of(run)
  return table.concat(run.lines, "\n")
end

local function count(list, pred)
  local n = 0
  for _, v in ipairs(list) do if pred(v) then n = n + 1 end end
  return n
end

local function by_route(route)
  return api:requests(route)
end

local function sh_ok(cmd)
  local r = assert(proc.run(cmd))
  assert(r.code == 0, (type(cmd) == "table" and table.concat(cmd, " ") or cmd) .. ": " .. r.stderr)
  return r.stdout
end

describe("vercel", function()
  setup(function()
    root = assert(fs.tempdir("slipway-vercel-spec"))
    api = standin.start({ tokens = { TOKEN }, team = TEAM, check_responses = true })
    standin.setenv("VERCEL_API_URL", api.url)
    standin.setenv("VERCEL_TOKEN", TOKEN)
    standin.setenv("VERCEL_TEAM_ID", TEAM)
  end)

  teardown(function()
    api:stop()
    standin.setenv("VERCEL_API_URL", nil)
    standin.setenv("VERCEL_TOKEN", nil)
    standin.setenv("VERCEL_TEAM_ID", nil)
    fs.remove(root, { recursive = true })
  end)

  before_each(function()
    api:reset()
    api:config(FAST)
  end)

  leaks.check()

  ------------------------------------------------------------ files

  describe("the files of a deployment", function()
    it("are walked as the CLI does: its ignore list, .vercelignore, symlinks, empty directories", function()
      local dir = site({
        ["index.html"] = "<p>index</p>\n", ["src/App.js"] = "export default 1\n",
        ["src/deep/x/y.js"] = "y\n", ["debug.log"] = "log\n", ["Debug.LOG"] = "LOG\n",
        ["secret/key.txt"] = "k\n", ["secret/keep.txt"] = "keep\n",
        ["node_modules/pkg/index.js"] = "m\n", ["src/node_modules/x.js"] = "m\n",
        [".git/HEAD"] = "ref\n", [".vercel/project.json"] = "{}\n", [".vercel/routes.json"] = "[]\n",
        [".env.local"] = "TOKEN=1\n", [".env.production.local"] = "TOKEN=2\n", [".env"] = "PUBLIC=1\n",
        [".vercelignore"] = "# comments and blank lines\n\n*.log\n/secret/\n!secret/keep.txt\n./drafts\n",
        ["drafts/a.md"] = "draft\n", ["docs/drafts/b.md"] = "out too: ./drafts is drafts, at any level\n",
      })
      assert(fs.mkdir(dir .. "/empty/inner"))
      sh_ok({ "ln", "-s", "index.html", dir .. "/link.html" })
      local run, ok, res = within(function() local r = vercel.deploy({ dir = dir, project = "walk" }) return r end)
      assert.is_true(ok, tostring(res))
      local creates = by_route("POST /v13/deployments")
      local sent = {}
      for _, f in ipairs(creates[#creates].body.files) do sent[f.file] = f end
      local names = {}
      for name in pairs(sent) do names[#names + 1] = name end
      table.sort(names)
      -- docs is left with nothing in it, so it goes as an empty directory
      assert.same({ ".env", ".vercel/routes.json", ".vercelignore", "docs", "empty/inner",
                    "index.html", "link.html", "src/App.js", "src/deep/x/y.js" }, names)
      -- every regular file: its SHA-1 and size, and its mode
      for _, name in ipairs({ "index.html", "src/App.js", ".vercel/routes.json" }) do
        local path = dir .. "/" .. name
        assert.same(hash.sha1_file(path), sent[name].sha)
        assert.same(#fs.read(path), sent[name].size)
        assert.same(fs.stat(path).mode | 0x8000, sent[name].mode)
      end
      -- a symlink is its target text; an empty directory has no digest
      assert.same(hash.sha1("index.html"), sent["link.html"].sha)
      assert.same(10, sent["link.html"].size)
      assert.same(0xA000, sent["link.html"].mode & 0xF000)
      assert.is_nil(sent["empty/inner"].sha)
      assert.same(0x4000, sent["empty/inner"].mode & 0xF000)
      assert.matches(": 9 files, ", output_of(run), 1, true)
    end)

    it("refuses a directory with both a .vercelignore and a .nowignore, naming the caller", function()
      local dir = site({ ["index.html"] = "x\n", [".vercelignore"] = "a\n", [".nowignore"] = "b\n" })
      local _, ok, err = within(function() local r = vercel.deploy({ dir = dir, project = "both" }) return r end)
      assert.is_false(ok)
      assert.matches("vercel_spec%.lua:%d+: vercel%.deploy: cannot use both a %.vercelignore and a %.nowignore", err)
      assert.same(0, #api:log())
    end)

    it("match ignore rules the way gitignore (and the CLI's `ignore` package) does", function()
      local cases = {
        { "*.js", "a/b/c.js", false, true }, { "*.JS", "a/B.js", false, true },   -- without regard to case
        { "/a.js", "x/a.js", false, false }, { "/a.js", "a.js", false, true },
        { "build/", "build", false, false }, { "build/", "build", true, true },
        { "a/**/z", "a/z", false, true }, { "a/**/z", "a/b/c/z", false, true },
        { "**/z", "q/z", false, true }, { "a/**", "a/b", false, true }, { "a/**", "a", true, false },
        { "d?t.txt", "dot.txt", false, true }, { "d?t.txt", "d/t.txt", false, false },
        { "[a-c]x", "bx", false, true }, { "[!a-c]x", "bx", false, false },
        { "\\#lit", "#lit", false, true }, { "#comment", "#comment", false, false },
        { "*.log\n!keep.log", "keep.log", false, false }, { "*.log\n!keep.log", "x.log", false, true },
        { "trail  ", "trail", false, true }, { "a/b", "x/a/b", false, false },
      }
      for _, c in ipairs(cases) do
        assert.same(c[4], native.ignored(c[1], c[2], c[3]), ("%q against %q"):format(c[1], c[2]))
      end
    end)

    it("are hashed on the thread pool, as sha1sum hashes them, while the loop keeps running", function()
      local dir = root .. "/many"
      local files = {}
      for i = 1, 300 do files[("d%d/f%03d.bin"):format(i % 7, i)] = ("%d"):format(i):rep(i * 37) end
      write_tree(dir, files)
      assert(proc.run({ "sh", "-c", "head -c 60000000 /dev/urandom > " .. dir .. "/big.bin" }))
      local ticks, stop = 0, false
      local ticker = task.spawn(function()
        while not stop do ticks = ticks + 1; task.sleep(0.001) end
      end)
      local entries = assert(native.scan(dir, { rules = "" }))
      stop = true
      ticker:join()
      assert.is_true(ticks > 5, "the loop stalled while hashing: " .. ticks .. " ticks")
      local want = {}
      for line in sh_ok({ "sh", "-c", "cd " .. dir .. " && find . -type f | xargs sha1sum" }):gmatch("[^\n]+") do
        local sum, name = line:match("^(%x+)  %./(.+)$")
        want[name] = sum
      end
      local got = {}
      for _, e in ipairs(entries) do got[e.file] = e.sha end
      assert.same(want, got)
      fs.remove(dir, { recursive = true })
    end)

    it("let go of everything when the task is cancelled while they are hashed", function()
      local dir = root .. "/cancel"
      local files = {}
      for i = 1, 200 do files[("f%03d.bin"):format(i)] = ("x"):rep(200000) end
      write_tree(dir, files)
      local t = task.spawn(function() return native.scan(dir, { rules = "" }) end)
      task.sleep(0.002)
      t:cancel()
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err))
      task.sleep(0.3)          -- the pool's threads finish what they had begun
      fs.remove(dir, { recursive = true })
    end)

    it("fail with the path when a file cannot be read", function()
      local dir = site({ ["ok.txt"] = "ok\n", ["locked.txt"] = "no\n" })
      assert(proc.run({ "chmod", "000", dir .. "/locked.txt" }))
      local entries, err, code
      if proc.run({ "id", "-u" }).stdout == "0\n" then
        -- root reads a mode 000 file: scan as nobody, in a child (a copy
        -- of the binary beside the files: the checkout may be out of
        -- nobody's reach)
        local copy = root .. "/slipway"
        assert(proc.run({ "cp", os.getenv("SLIPWAY"), copy }))
        assert(proc.run({ "chmod", "755", root, dir, copy }))
        local code_text = ("local e, m, c = require('slipway._vercel').scan(%q, { rules = '' }) "
          .. "io.write(tostring(e), '\\t', tostring(m), '\\t', tostring(c))"):format(dir)
        local r = assert(proc.run({ "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
          copy, "-e", code_text }))
        local e
        e, err, code = r.stdout:match("^(.-)\t(.-)\t(.*)$")
        entries = e ~= "nil" and e or nil
      else
        entries, err, code = native.scan(dir, { rules = "" })
      end
      assert(proc.run({ "chmod", "644", dir .. "/locked.txt" }))
      assert.is_nil(entries)
      assert.same("EACCES", code)
      assert.matches("locked.txt", err, 1, true)
    end)

    it("can go as one tgz archive, in parts named as the CLI names them", function()
      local dir = site()
      local parts = assert(native.tgz(dir, { "index.html", "assets/app.js", "assets/site.css" },
        { out = root .. "/t.tgz.part", part_size = 100 }))
      assert.is_true(#parts > 1)
      local cat = {}
      for _, p in ipairs(parts) do cat[#cat + 1] = assert(fs.read(p.path)); assert.is_true(p.size <= 100) end
      assert(fs.write(root .. "/whole.tgz", table.concat(cat)))
      assert.same("index.html\nassets/app.js\nassets/site.css\n", sh_ok({ "tar", "tzf", root .. "/whole.tgz" }))
      for _, p in ipairs(parts) do fs.remove(p.path) end
      local run, ok, res = within(function() local r = vercel.deploy({ dir = dir, project = "tgz", archive = "tgz" }) return r end)
      assert.is_true(ok, tostring(res))
      local body = by_route("POST /v13/deployments")[1].body
      assert.same(1, #body.files)
      assert.same(".vercel/source.tgz.part1", body.files[1].file)
      assert.same(438, body.files[1].mode)
      assert.same(1, #by_route("POST /v2/files"))
      assert.matches("sent as 1 archive part", output_of(run), 1, true)
    end)
  end)

  ------------------------------------------------------------ uploads

  describe("the missing-files flow", function()
    it("uploads exactly what the API lacks, streamed, with its digest, then creates again", function()
      local dir = site()
      local _, ok, res = within(function() local r = vercel.deploy({ dir = dir, project = "up" }) return r end)
      assert.is_true(ok, tostring(res))
      assert.same(3, res.uploaded)
      local uploads = by_route("POST /v2/files")
      assert.same(3, #uploads)
      for _, u in ipairs(uploads) do
        assert.same("application/octet-stream", u.content_type)
        assert.same(TEAM, u.query.teamId)
      end
      local digests = {}
      for _, u in ipairs(uploads) do digests[u.digest] = u.length end
      for _, name in ipairs({ "index.html", "assets/app.js", "assets/site.css" }) do
        assert.same(#fs.read(dir .. "/" .. name), digests[hash.sha1_file(dir .. "/" .. name)])
      end
      assert.same({ 400, 200 }, { by_route("POST /v13/deployments")[1].status, by_route("POST /v13/deployments")[2].status })

      -- the same files again: nothing to upload, one create
      api:faults({})
      local before = #api:log()
      local _, ok2, res2 = within(function() local r = vercel.deploy({ dir = dir, project = "up" }) return r end)
      assert.is_true(ok2, tostring(res2))
      assert.same(0, res2.uploaded)
      local after = api:log()
      assert.same(1, count({ table.unpack(after, before + 1) }, function(e) return e.method == "POST" end))
    end)

    it("uploads only the half the API does not have, identical contents once", function()
      local files = {}
      for i = 1, 40 do files[("f%02d.txt"):format(i)] = "content " .. (i % 20) end   -- 20 distinct
      local dir = site(files)
      local known = {}
      for i = 0, 9 do known[#known + 1] = { sha = hash.sha1("content " .. i), size = #("content " .. i) } end
      api:blobs(known)
      local _, ok, res = within(function() local r = vercel.deploy({ dir = dir, project = "half" }) return r end)
      assert.is_true(ok, tostring(res))
      assert.same(10, res.uploaded)
      local uploads = by_route("POST /v2/files")
      assert.same(10, #uploads)
      local seen = {}
      for _, u in ipairs(uploads) do
        assert.is_nil(seen[u.digest])
        seen[u.digest] = true
      end
      for _, k in ipairs(known) do assert.is_nil(seen[k.sha]) end
    end)

    it("keeps at most 50 uploads in flight, and more than one", function()
      local files = {}
      for i = 1, 120 do files[("f%03d.txt"):format(i)] = "file " .. i end
      local dir = site(files)
      api:faults({ { match = "POST /v2/files", delay_ms = 200, times = 120 } })
      local _, ok, res = within(function() local r = vercel.deploy({ dir = dir, project = "fifty" }) return r end)
      assert.is_true(ok, tostring(res))
      local marks = {}
      for _, u in ipairs(by_route("POST /v2/files")) do
        marks[#marks + 1] = { u.at, 1 }
        marks[#marks + 1] = { u.done_at, -1 }
      end
      table.sort(marks, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
      local live, most = 0, 0
      for _, m in ipairs(marks) do live = live + m[2]; most = math.max(most, live) end
      assert.is_true(most <= 50, "in flight at once: " .. most)
      assert.is_true(most >= 25, "in flight at once: " .. most)
    end)

    it("streams a large file instead of holding it (peak memory of the process)", function()
      local dir = site({ ["index.html"] = "x\n" })
      local size = 96 * 1024 * 1024
      assert(proc.run({ "sh", "-c", ("head -c %d /dev/zero > %s/big.bin"):format(size, dir) }))
      local script = root .. "/stream.lua"
      assert(fs.write(script, ([[
local r = require("slipway.vercel").deploy({ dir = %q, project = "stream" })
local status = io.open("/proc/self/status"):read("a")
print("uploaded", r.uploaded, "peak_kb", status:match("VmHWM:%%s*(%%d+)"))
]]):format(dir)))
      local r = assert(proc.run({ H.slipway, script }, { timeout = "60s" }))
      assert.same(0, r.code, r.stderr)
      local uploaded, peak_kb = r.stdout:match("uploaded\t(%d+)\tpeak_kb\t(%d+)")
      assert.same("2", uploaded)
      assert.is_true(tonumber(peak_kb) * 1024 < size / 2,
        ("peak RSS %d KiB for a %d MiB file: it was held in memory"):format(peak_kb, size >> 20))
      local big = by_route("POST /v2/files")
      assert.same(size, math.max(big[1].length, big[2].length))
    end)
  end)

  ------------------------------------------------------------ waiting

  describe("following a deployment", function()
    it("streams each state into the task output, polling at Vercel's pace", function()
      api:config({ queue_ms = 300, build_ms = 2200, alias_ms = 0 })
      local run, ok, res = within(function() local r = vercel.deploy({ dir = site(), project = "slow" }) return r end)
      assert.is_true(ok, tostring(res))
      local states = {}
      for _, line in ipairs(run.lines) do
        local s = line:match("^stdout: vercel: dpl_%w+ (.+)$")
        if s then states[#states + 1] = s end
      end
      assert.same({ "QUEUED", "BUILDING", "READY" }, states)
      local polls = by_route("GET /v13/deployments/{idOrUrl}")
      assert.is_true(#polls >= 2)
      for i = 2, #polls do
        assert.is_true(polls[i].at - polls[i - 1].at >= 900, "polled again after " .. (polls[i].at - polls[i - 1].at) .. "ms")
      end
      assert.same("READY", res.readyState)
      assert.matches("^https://slow%-%w+%-", res.url)
      assert.matches("^https://vercel.com/", res.inspector_url)
    end)

    it("backs off as the official client does: 1s for 15s, then 5s, 15s, 30s", function()
      assert.same({ 1000, 1000, 5000, 5000, 15000, 15000, 30000 }, {
        vwait.polling_delay_ms(0), vwait.polling_delay_ms(15000), vwait.polling_delay_ms(15001),
        vwait.polling_delay_ms(60000), vwait.polling_delay_ms(60001), vwait.polling_delay_ms(300000),
        vwait.polling_delay_ms(300001) })
    end)

    it("fails a build error with the API's message and the build log tail, naming the caller", function()
      api:config({ build_ms = 200, fail_build = true })
      local run, ok, err = within(function()
        local r = vercel.deploy({ dir = site(), project = "broken", production = true })
        return r
      end)
      assert.is_false(ok)
      assert.matches("vercel_spec%.lua:%d+: vercel%.deploy: GET /v13/deployments/dpl_%w+: deployment dpl_%w+ is ERROR: BUILD_FAILED", err)
      assert.matches('Command "npm run build" exited with 1', err, 1, true)
      assert.matches("error TS2307: Cannot find module './missing'", err, 1, true)
      assert.matches("build log (last 6 lines)", err, 1, true)
      assert.same(0, #run.changes)        -- production never moved
    end)

    it("waits for the production alias", function()
      api:config({ build_ms = 0, alias_ms = 1500 })
      local run, ok, res = within(function()
        local r = vercel.deploy({ dir = site(), project = "alias", production = true })
        return r
      end)
      assert.is_true(ok, tostring(res))
      assert.matches("READY, assigning the production alias", output_of(run), 1, true)
      assert.same(res.id, api:state().projects.alias.production)
    end)

    it("gives up after its timeout", function()
      api:config({ build_ms = 60000 })
      local _, ok, err = within(function()
        local r = vercel.deploy({ dir = site(), project = "forever", timeout = "1500ms" })
        return r
      end)
      assert.is_false(ok)
      assert.matches("still BUILDING after 1.5s", err, 1, true)
    end)
  end)

  ------------------------------------------------------------ retries

  describe("errors and retries", function()
    local saved
    before_each(function()
      saved = { vapi.BACKOFF_MS, vapi.REQUEST_TIMEOUT_MS }
      vapi.BACKOFF_MS = { 10, 10, 10, 10, 10 }
    end)
    after_each(function()
      vapi.BACKOFF_MS, vapi.REQUEST_TIMEOUT_MS = saved[1], saved[2]
    end)

    it("fail at once on a bad token (401), with the API's code and message", function()
      local _, ok, err = within(function()
        local r = vercel.deploy({ dir = site(), project = "x", token = "not-the-token" })
        return r
      end)
      assert.is_false(ok)
      assert.matches("vercel_spec%.lua:%d+: vercel%.deploy: POST /v13/deployments: 401 forbidden: Not authorized$", err)
      assert.same(1, #api:log())
    end)

    it("fail at once on any other 4xx", function()
      api:faults({ { match = "POST /v13/deployments", status = 402, code = "payment_required",
                     message = "Your plan's limit was reached" } })
      local _, ok, err = within(function() local r = vercel.deploy({ dir = site(), project = "x" }) return r end)
      assert.is_false(ok)
      assert.matches("402 payment_required: Your plan's limit was reached", err, 1, true)
      assert.same(1, #api:log())
    end)

    it("retry 5xx and connection resets until they pass", function()
      api:faults({
        { match = "POST /v13/deployments", status = 500, times = 2 },
        { match = "POST /v2/files", status = 503, times = 2 },
        { match = "POST /v2/files", reset = true, times = 2 },
        { match = "GET /v9/projects/{idOrName}", reset = true, times = 1 },
      })
      local run, ok, res = within(function()
        local r = vercel.deploy({ dir = site(), project = "flaky", production = true })
        return r
      end)
      assert.is_true(ok, tostring(res))
      assert.same(3, res.uploaded)
      assert.same(3 + 4, #by_route("POST /v2/files"))
      assert.matches("500 internal_server_error: An unexpected internal error occurred; retrying", output_of(run), 1, true)
      assert.matches("ECONNRESET", output_of(run), 1, true)
    end)

    it("give up on a persistent 5xx after 6 attempts", function()
      api:faults({ { match = "POST /v13/deployments", status = 502, times = 10 } })
      local _, ok, err = within(function() local r = vercel.deploy({ dir = site(), project = "down" }) return r end)
      assert.is_false(ok)
      assert.matches("POST /v13/deployments: 502 internal_server_error: An unexpected internal error occurred (gave up after 6 attempts)", err, 1, true)
      assert.same(6, #by_route("POST /v13/deployments"))
    end)

    it("end a request that hangs at its timeout, and retry it", function()
      vapi.REQUEST_TIMEOUT_MS = 400
      api:config({ build_ms = 500 })
      api:faults({ { match = "GET /v13/deployments/{idOrUrl}", delay_ms = 1500, times = 1 } })
      local run, ok, res = within(function() local r = vercel.deploy({ dir = site(), project = "hang" }) return r end)
      assert.is_true(ok, tostring(res))
      assert.matches("ETIMEDOUT: timeout after 400ms", output_of(run), 1, true)
    end)

    it("honour Retry-After on 429, in seconds and as an HTTP date, clamped to 5-60s", function()
      api:faults({
        { match = "POST /v13/deployments", status = 429, retry_after = "6", times = 1 },
        { match = "POST /v13/deployments", status = 429, retry_after_in = 8, times = 1 },
      })
      local dir = site()
      local t0 = task.now()
      local a = task.spawn(function() return within(function() local r = vercel.deploy({ dir = dir, project = "ra" }) return r end) end)
      local b = task.spawn(function() return within(function() local r = vercel.deploy({ dir = dir, project = "rb" }) return r end) end)
      local _, ok_a, res_a = a:join()
      local _, ok_b, res_b = b:join()
      assert.is_true(ok_a, tostring(res_a))
      assert.is_true(ok_b, tostring(res_b))
      local creates = by_route("POST /v13/deployments")
      local limited, passed = {}, {}
      for _, e in ipairs(creates) do
        if e.status == 429 then limited[#limited + 1] = e.at elseif e.status == 200 then passed[#passed + 1] = e.at end
      end
      assert.same(2, #limited)
      assert.same(2, #passed)
      table.sort(limited)
      table.sort(passed)
      -- the uploads happen between; each deploy waited at least ~6s for its 429
      assert.is_true(task.now() - t0 >= 5900)
      assert.is_true(task.now() - t0 < 12000)
      assert.is_true(passed[1] - limited[1] >= 5900, tostring(passed[1] - limited[1]))
    end)

    it("read Retry-After as seconds or an HTTP date, clamped to 5-60s", function()
      local now = 1800000000
      local function date(t) return os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
      assert.same(5000, vapi.retry_after_ms(nil, now))
      assert.same(5000, vapi.retry_after_ms("1", now))
      assert.same(30000, vapi.retry_after_ms("30", now))
      assert.same(60000, vapi.retry_after_ms("600", now))
      assert.same(20000, vapi.retry_after_ms(date(now + 20), now))
      assert.same(60000, vapi.retry_after_ms(date(now + 3600), now))
      assert.same(5000, vapi.retry_after_ms(date(now - 100), now))
      assert.same(5000, vapi.retry_after_ms("soon", now))
      assert.same(now + 20, vapi._http_date(os.date("!%A, %d-%b-%y %H:%M:%S GMT", now + 20)))   -- RFC 850
      assert.same(now + 20, vapi._http_date(os.date("!%a %b %e %H:%M:%S %Y", now + 20)))       -- asctime
    end)

    it("name the caller for bad options", function()
      local cases = {
        { { dir = "x", project = "p", prodution = true }, "unknown option 'prodution'" },
        { { project = "p" }, "option 'dir' is required" },
        { { dir = "x", project = "p", production = "yes" }, "option 'production' must be a boolean" },
        { { dir = "x", project = "p", archive = "zip" }, "option 'archive' must be \"tgz\"" },
        { { dir = "x", project = "p", env = { A = {} } }, "option 'env': A must be a string" },
        { { dir = "x", project = "p", timeout = "soon" }, "option 'timeout'" },
        { { dir = "x", project = "p", token = 42 }, "option 'token' must be a Secret or a string" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(vercel.deploy, c[1])
        assert.is_false(ok)
        assert.matches("vercel_spec%.lua:%d+: vercel%.deploy: ", err)
        assert.matches(c[2], err, 1, true)
      end
      local meta = {}
      for i = 1, 101 do meta["k" .. i] = "v" end
      local ok, err = pcall(vercel.deploy, { dir = "x", project = "p", meta = meta })
      assert.is_false(ok)
      assert.matches("Vercel takes at most 100", err, 1, true)
      assert.same(0, #api:log())
    end)
  end)

  ------------------------------------------------------------ team, token

  describe("team and token", function()
    it("scope every request to the team, by id or by slug", function()
      local _, ok, res = within(function()
        local r = vercel.deploy({ dir = site(), project = "scoped", production = true })
        return r
      end)
      assert.is_true(ok, tostring(res))
      local log = api:log()
      assert.is_true(#log >= 5)
      for _, e in ipairs(log) do assert.same(TEAM, e.query.teamId, e.method .. " " .. e.path) end
      local _, ok2, res2 = within(function()
        local r = vercel.deploy({ dir = site(), project = "scoped", team = "slipway-tests" })
        return r
      end)
      assert.is_true(ok2, tostring(res2))
      local last = api:log()
      assert.same("slipway-tests", last[#last].query.slug)
    end)

    it("without a team, the team's API refuses (403) and the error says so", function()
      standin.setenv("VERCEL_TEAM_ID", nil)
      local _, ok, err = within(function() local r = vercel.deploy({ dir = site(), project = "noteam" }) return r end)
      standin.setenv("VERCEL_TEAM_ID", TEAM)
      assert.is_false(ok)
      assert.matches("403 forbidden: ", err, 1, true)
    end)

    it("come from VERCEL_TOKEN by default, and a missing one is a clear error", function()
      local _, ok, res = within(function() local r = vercel.deploy({ dir = site(), project = "envtok" }) return r end)
      assert.is_true(ok, tostring(res))
      assert.is_true(count(api:log(), function(e) return e.auth == "ok" end) >= 2)
      standin.setenv("VERCEL_TOKEN", nil)
      local ok2, err = pcall(vercel.deploy, { dir = site(), project = "notok" })
      standin.setenv("VERCEL_TOKEN", TOKEN)
      assert.is_false(ok2)
      assert.matches("vercel_spec%.lua:%d+: vercel%.deploy: no token: set VERCEL_TOKEN", err)
    end)

    it("take the token as a Secret", function()
      local token = require("slipway.secret").new(TOKEN, "VERCEL_TOKEN")
      local _, ok, res = within(function() local r = vercel.deploy({ dir = site(), project = "sec", token = token }) return r end)
      assert.is_true(ok, tostring(res))
    end)
  end)

  ------------------------------------------------------------ production

  describe("production", function()
    it("records the deployment that served before, and undo points production back at it", function()
      local dir = site()
      local run1, ok1, first = within(function() local r = vercel.deploy({ dir = dir, project = "web", production = true }) return r end)
      assert.is_true(ok1, tostring(first))
      -- the first production deployment: recorded, nothing to go back to
      assert.same(1, #run1.changes)
      assert.is_nil(run1.changes[1][1].undo)
      assert.matches("the first: nothing to roll back to", run1.changes[1][1].summary, 1, true)

      local run2, ok2, second = within(function()
        local r = vercel.deploy({ dir = dir, project = "web", production = true, meta = { commit = "abc123" } })
        return r
      end)
      assert.is_true(ok2, tostring(second))
      assert.same(first.id, second.previous)
      local entry = run2.changes[1][1]
      assert.same("vercel.production", entry.kind)
      assert.same("web", entry.target)
      assert.same(second.id, entry.data.deployment.id)
      assert.same(first.id, entry.data.previous.id)
      assert.same(TEAM, entry.data.team)
      assert.same(second.id, api:state().projects.web.production)

      local run3, ok3, err3 = within(function() entry.undo() end)
      assert.is_true(ok3, tostring(err3))
      local state = api:state().projects.web
      assert.same(first.id, state.production)
      assert.same("rollback", state.job.type)
      assert.matches("rollback of web to " .. first.id .. ": succeeded", output_of(run3), 1, true)

      -- the project is rolled back now, so Vercel stages the next
      -- production deployment; deploy promotes it, production was asked
      local run4, ok4, third = within(function() local r = vercel.deploy({ dir = dir, project = "web", production = true }) return r end)
      assert.is_true(ok4, tostring(third))
      assert.matches("Vercel staged " .. third.id .. "; promoting it", output_of(run4), 1, true)
      assert.same(third.id, api:state().projects.web.production)
      assert.same(first.id, third.previous)
    end)

    it("rollback follows the job pending -> in-progress -> succeeded, and records its own undo", function()
      local dir = site()
      local _, _, first = within(function() local r = vercel.deploy({ dir = dir, project = "rb", production = true }) return r end)
      local _, _, second = within(function() local r = vercel.deploy({ dir = dir, project = "rb", production = true }) return r end)
      local run, ok, res = within(function() local r = vercel.rollback({ project = "rb", to = first.url }) return r end)
      assert.is_true(ok, tostring(res))
      assert.same("succeeded", res.status)
      assert.same(second.id, res.previous)
      local states = {}
      for _, line in ipairs(run.lines) do states[#states + 1] = line:match("rollback of rb to dpl_%w+: (.+)$") end
      assert.same({ "pending", "in-progress", "succeeded" }, states)
      assert.same(first.id, api:state().projects.rb.production)
      local post = by_route("POST /v9/projects/{projectId}/rollback/{deploymentId}")
      assert.same(1, #post)
      -- undoing the rollback promotes what served before it
      local _, ok2, err2 = within(function() run.changes[1][1].undo() end)
      assert.is_true(ok2, tostring(err2))
      assert.same(second.id, api:state().projects.rb.production)
      assert.same("promote", api:state().projects.rb.job.type)
    end)

    it("promote: 201 is a job to follow, 202 is queued behind a rolling release", function()
      local dir = site()
      local _, _, first = within(function() local r = vercel.deploy({ dir = dir, project = "pr", production = true }) return r end)
      local _, _, second = within(function() local r = vercel.deploy({ dir = dir, project = "pr", production = true }) return r end)
      local _, ok, res = within(function() local r = vercel.promote({ project = "pr", deployment = first.id }) return r end)
      assert.is_true(ok, tostring(res))
      assert.same("succeeded", res.status)
      assert.same(first.id, api:state().projects.pr.production)
      api:config({ promote_queued = true })
      local run, ok2, res2 = within(function() local r = vercel.promote({ project = "pr", deployment = second.id }) return r end)
      assert.is_true(ok2, tostring(res2))
      assert.same("queued", res2.status)
      assert.same(0, #run.changes)
      assert.same(first.id, api:state().projects.pr.production)
    end)

    it("promote of a preview deployment is refused with the API's words", function()
      local _, _, preview = within(function() local r = vercel.deploy({ dir = site(), project = "pv" }) return r end)
      local _, ok, err = within(function() local r = vercel.promote({ project = "pv", deployment = preview.id }) return r end)
      assert.is_false(ok)
      assert.matches("vercel_spec%.lua:%d+: vercel%.promote: POST /v10/projects/pv/promote/dpl_%w+: 400 not_production", err)
    end)
  end)

  ------------------------------------------------------------ a whole run

  describe("in a pipeline run", function()
    after_each(H.cleanup)

    it("a failed validation rolls production back; the token is in no output, event, record or argv", function()
      local dir = H.project({ ["deploy.lua"] = [[
param.bool("fail", false)
task("frontend", function()
  local r = vercel.deploy { dir = "site", project = "shop", production = true }
  print("deployed " .. r.id)
end)
task("validate", { needs = "frontend" }, function(p)
  if p.fail then error("validation failed") end
end)
]] })
      write_tree(dir .. "/site", { ["index.html"] = "shop\n", ["app.js"] = "1\n" })
      local env = { VERCEL_TOKEN = TOKEN, VERCEL_API_URL = api.url, VERCEL_TEAM_ID = TEAM }
      local good = H.run_json(dir, {}, { env = env })
      assert.same(0, good.code, good.stderr)
      local first = api:state().projects.shop.production

      -- the second run fails validation, with argv sampled while it runs
      local argv_seen = {}
      local sampler_stop = false
      local sampler = task.spawn(function()
        while not sampler_stop do
          for _, pid in ipairs(fs.list("/proc") or {}) do
            if pid:match("^%d+$") then
              local cmd = fs.read("/proc/" .. pid .. "/cmdline")
              if cmd then argv_seen[#argv_seen + 1] = cmd end
            end
          end
          task.sleep(0.05)
        end
      end)
      local bad = H.run_json(dir, { "-p", "fail=true" }, { env = env })
      sampler_stop = true
      sampler:join()
      assert.same(1, bad.code, bad.stderr)
      assert.same(first, api:state().projects.shop.production)
      local changes = H.of(bad.events, "change_recorded")
      assert.same(1, #changes)
      assert.same("vercel.production", changes[1].kind)
      local rolled = H.of(bad.events, "rollback_finished")
      assert.same("ok", rolled[1].status)
      local lines = {}
      for _, ev in ipairs(H.of(bad.events, "output")) do lines[#lines + 1] = ev.line end
      assert.matches("vercel: undo: rollback production back to " .. first, table.concat(lines, "\n"), 1, true)

      -- no form of the token anywhere
      local forms = { TOKEN, base64.encode(TOKEN), (TOKEN:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)) }
      local haystacks = { good.stdout, good.stderr, bad.stdout, bad.stderr, table.concat(argv_seen, "\n") }
      for _, f in ipairs(fs.glob(dir .. "/.slipway/runs/*/*") or {}) do haystacks[#haystacks + 1] = fs.read(f) or "" end
      local records = fs.glob(dir .. "/.slipway/runs/*/record.json")
      assert.same(2, #records)
      assert.is_true(#argv_seen > 0)
      for _, hay in ipairs(haystacks) do
        for _, form in ipairs(forms) do
          assert.is_nil(hay:find(form, 1, true), "found the token (" .. form .. ")")
        end
      end
      local rec
      for _, r in ipairs(records) do
        local t = json.decode(fs.read(r))
        if t.status == "rolled_back" then rec = t end
      end
      assert.same("rolled_back", rec.changes[1].status)
      assert.same(first, rec.changes[1].data.previous.id)
    end)
  end)

  ------------------------------------------------------------ the official client

  describe("Vercel's own client (@vercel/client)", function()
    it("deploys to the stand-in, sending the same files slipway sends", function()
      local client_dir = repo.ROOT .. "/tests/fakes/vercel_client"
      if not proc.run({ "sh", "-c", "command -v npm" }).stdout:match("%S") then
        return pending("npm is not installed here, so @vercel/client cannot be; tools/install-deps installs it")
      end
      assert(fs.exists(client_dir .. "/node_modules/@vercel/client"),
        "@vercel/client is not installed: run tools/install-deps")
      local dir = site({
        ["index.html"] = "<p>x</p>\n", ["src/a.js"] = "a\n", ["src/b/c.js"] = "c\n", ["debug.log"] = "l\n",
        [".vercelignore"] = "*.log\n", ["node_modules/m/i.js"] = "m\n", [".git/HEAD"] = "h\n",
      })
      assert(fs.mkdir(dir .. "/empty"))
      sh_ok({ "ln", "-s", "src/a.js", dir .. "/link.js" })
      local r = assert(proc.run({ "node", client_dir .. "/deploy.js", dir, "official", TEAM, "production" },
        { env = { VERCEL_TOKEN = TOKEN, VERCEL_API_URL = api.url, VERCEL_TEAM_ID = false }, timeout = "60s" }))
      assert.same(0, r.code, r.stdout .. r.stderr)
      assert.matches("event alias-assigned", r.stdout, 1, true)
      local theirs = by_route("POST /v13/deployments")
      local their_files = theirs[#theirs].body.files
      assert.same(0, count(api:log(), function(e) return e.status == 400 and e.path ~= "/v13/deployments" end))

      api:reset()
      api:config(FAST)
      local _, ok, res = within(function() local d = vercel.deploy({ dir = dir, project = "official", production = true }) return d end)
      assert.is_true(ok, tostring(res))
      local ours = by_route("POST /v13/deployments")
      local function keyed(list)
        local out = {}
        for _, f in ipairs(list) do out[f.file] = { sha = f.sha, size = f.size, mode = f.mode } end
        return out
      end
      assert.same(keyed(their_files), keyed(ours[#ours].body.files))
    end)
  end)
end)
