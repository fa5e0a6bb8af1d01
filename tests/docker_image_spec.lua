-- docker: connection, .dockerignore, build context tar, build, tag, push,
-- inspect, exists, rm_image, against the real engine and registry that
-- tests/infra/up starts.
local docker = require("slipway.docker")
local native = require("slipway._docker")
local client = require("slipway.docker.client")
local json = require("slipway.json")
local http = require("slipway.http")
local task = require("slipway.task")
local proc = require("slipway.proc")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry

-- pcall here, so that the errors name this file's line
local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

describe("docker", function()
  describe(".dockerignore", function()
    it("parses like the CLI: comments, blanks, spaces, !, cleaning, leading /", function()
      local text = "\239\187\191# comment\n  *.log \n\n!keep.log\n/abs/../x//y/\n!  spaced \n # not a comment\n./a/./b\r\n"
      assert.same({ "*.log", "!keep.log", "x/y", "!spaced", "# not a comment", "a/b" },
        native.ignore_patterns(text))
    end)

    it("lets the last matching pattern decide, parents included", function()
      local p = { "*.log", "!keep.log", "build", "docs/**/*.md", "!docs/README.md", "**/tmp" }
      local cases = {
        ["a.log"] = true, ["keep.log"] = false, ["sub/a.log"] = false,
        ["build"] = true, ["build/x/y.o"] = true, ["builder"] = false,
        ["docs/a.md"] = true, ["docs/x/y/z.md"] = true, ["docs/README.md"] = false,
        ["docs/a.txt"] = false, ["tmp"] = true, ["a/b/tmp/c"] = true, ["src/main.c"] = false,
      }
      for path, want in pairs(cases) do
        assert.same({ path, want }, { path, native.ignore_match(p, path) })
      end
    end)

    it("matches *, ?, [classes], ** and escapes the way the CLI's regexps do", function()
      assert.is_true(native.ignore_match({ "a/**/b" }, "a/b"))
      assert.is_true(native.ignore_match({ "a/**/b" }, "a/x/y/b"))
      assert.is_false(native.ignore_match({ "**.go" }, "x.go"))      -- "**" then ".go": (.*/)?\.go
      assert.is_true(native.ignore_match({ "**.go" }, "x/.go"))
      assert.is_true(native.ignore_match({ "[a-c]?" }, "bz"))
      assert.is_false(native.ignore_match({ "[^a]x" }, "ax"))
      assert.is_false(native.ignore_match({ "*" }, "a/b") == false)  -- parent "a" matches
      assert.is_true(native.ignore_match({ "\\*x" }, "*x"))
      assert.is_false(native.ignore_match({ "\\*x" }, "ax"))
      assert.is_false(native.ignore_match({ "?" }, "ab"))
    end)

    it("rejects a bad pattern with the reason", function()
      local ok, err = pcall(native.ignore_match, { "[abc" }, "a")
      assert.is_false(ok)
      assert.matches("syntax error in pattern '%[abc'", err)
      ok, err = pcall(native.ignore_match, { "!" }, "a")
      assert.is_false(ok)
      assert.matches('illegal exclusion pattern: "!"', err)
    end)
  end)

  describe("context_excludes", function()
    it("always keeps the Dockerfile and .dockerignore, like the CLI", function()
      local dir = fx.tmpdir()
      fx.write(dir .. "/.dockerignore", "*\n!src\n")
      assert.same({ "*", "!src", "!.dockerignore", "!build/Dockerfile.prod" },
        require("slipway.docker.image")._context_excludes(dir, "build/Dockerfile.prod"))
      fx.write(dir .. "/.dockerignore", "*.md\n")
      assert.same({ "*.md" }, require("slipway.docker.image")._context_excludes(dir, "Dockerfile"))
      fx.rmtree(dir)
      assert.same({}, require("slipway.docker.image")._context_excludes(dir, "Dockerfile"))
    end)
  end)

  describe("client", function()
    it("reads DOCKER_HOST like the CLI", function()
      local env = function(t) return function(k) return t[k] end end
      assert.same({ kind = "unix", host = "unix:///var/run/docker.sock", socket = "/var/run/docker.sock" },
        client.parse_host(nil, env({})))
      assert.same({ kind = "tcp", host = "tcp://h:2375", base_url = "http://h:2375" },
        client.parse_host("tcp://h:2375", env({})))
      assert.same({ kind = "tcp", host = "tcp://h", base_url = "https://h:2376",
        tls = { verify = true, ca = "/c/ca.pem", cert = "/c/cert.pem", key = "/c/key.pem" } },
        client.parse_host("tcp://h", env({ DOCKER_TLS_VERIFY = "1", DOCKER_CERT_PATH = "/c" })))
      assert.same({ kind = "ssh", host = "ssh://me@box:2222", target = "me@box", port = "2222" },
        client.parse_host("ssh://me@box:2222", env({})))
      assert.matches("bad DOCKER_HOST \"ftp://x\"", select(2, pcall(client.parse_host, "ftp://x", env({}))))
    end)

    it("encodes registry auth as base64url JSON, e30= for none", function()
      assert.same("e30=", client.encode_auth(nil))
      local enc = client.auth_header("reg.example:5000/a:1", { username = "u", password = "p?>" })
      local std = enc:gsub("-", "+"):gsub("_", "/")
      assert.same({ username = "u", password = "p?>", serveraddress = "reg.example:5000" },
        json.decode(require("slipway.base64").decode(std)))
    end)

    it("takes credentials from config.json auths", function()
      local dir = fx.tmpdir()
      fx.write(dir .. "/config.json", json.encode({ auths = {
        ["reg.example:5000"] = { auth = require("slipway.base64").encode("bob:s3cret") } } }))
      local old = os.getenv("DOCKER_CONFIG")
      assert.same(nil, old)
      -- os.getenv cannot be set from Lua: read through an explicit dir
      local saved = os.getenv
      os.getenv = function(k) if k == "DOCKER_CONFIG" then return dir end return saved(k) end
      local ok, a = pcall(client.config_auth, "reg.example:5000")
      local ok2, all = pcall(client.build_auth_header)
      os.getenv = saved
      fx.rmtree(dir)
      assert.is_true(ok)
      -- the password is a secret: it prints as ***, its value is kept
      local secret = require("slipway.secret")
      assert.is_true(secret.is_secret(a.password))
      assert.same("***", tostring(a.password))
      assert.same({ username = "bob", password = "s3cret", serveraddress = "reg.example:5000" },
        { username = a.username, password = secret.reveal(a.password), serveraddress = a.serveraddress })
      assert.is_true(ok2)
      assert.same({ ["reg.example:5000"] = { username = "bob", password = "s3cret", serveraddress = "reg.example:5000" } },
        json.decode(require("slipway.base64").decode((all:gsub("-", "+"):gsub("_", "/")))))
    end)

    it("splits the engine's JSON lines across chunks, in linear time, up to a limit", function()
      local got = {}
      local on_body, finish = client.json_lines(function(m) got[#got + 1] = m end)
      on_body('{"a":1}\n{"b"')
      on_body(':2}\n\n{"c":')
      on_body("3}")
      assert.same({ { a = 1 }, { b = 2 } }, got)
      finish()
      assert.same({ { a = 1 }, { b = 2 }, { c = 3 } }, got)
      -- a 16 MiB line in 1 KiB chunks: joining as it comes would copy
      -- gigabytes; pieces are joined once
      local big = nil
      on_body = client.json_lines(function(m) big = m end, 32 * 1024 * 1024)
      local chunk = ("x"):rep(1024)
      local started = os.clock()
      on_body('{"s":"')
      for _ = 1, 16 * 1024 do on_body(chunk) end
      on_body('"}\n')
      assert.is_true(os.clock() - started < 2, "took " .. (os.clock() - started) .. " s")
      assert.same(16 * 1024 * 1024, #big.s)
      -- beyond the limit: an error, not unbounded memory
      on_body = client.json_lines(function() end, 1000)
      on_body(("y"):rep(600))
      local ok, err = pcall(on_body, ("y"):rep(600))
      assert.is_false(ok)
      assert.matches("docker: the engine sent a line longer than 1000 bytes", err)
    end)

    it("negotiates the API version from /version", function()
      local c = client.new()
      assert.same("1.41", c:api_version())
      assert.same("1.41", c.server.ApiVersion)
    end)

    it("talks to tcp:// with TLS client certificates", function()
      local host, certs = os.getenv("SLIPWAY_DOCKER_TLS_HOST"), os.getenv("SLIPWAY_DOCKER_CERT_PATH")
      assert(host and certs, "tests/infra/up exports SLIPWAY_DOCKER_TLS_HOST and SLIPWAY_DOCKER_CERT_PATH")
      local c = client.new({ host = host, tls = { verify = true, ca = certs .. "/ca.pem",
        cert = certs .. "/cert.pem", key = certs .. "/key.pem" } })
      assert.same("1.41", c:api_version())
      assert.is_false(docker.exists("slipway-no-such-image:1", { client = c }))
      -- no client certificate: the engine refuses the TLS handshake
      local bare = client.new({ host = host, tls = { verify = true, ca = certs .. "/ca.pem" } })
      assert.matches("^tests/docker_image_spec.lua:%d+: docker: ", raises(bare.api_version, bare))
      -- a CA that did not sign the engine's certificate: verification fails
      local wrong = client.new({ host = host, tls = { verify = true, ca = "/etc/ssl/certs/ca-certificates.crt",
        cert = certs .. "/cert.pem", key = certs .. "/key.pem" } })
      assert.matches("docker: ECERT: ", raises(wrong.api_version, wrong))
    end)

    it("says clearly when the engine is not running", function()
      local c = client.new({ host = "unix:///tmp/slipway-no-engine.sock" })
      local err = raises(docker.inspect, "x", { client = c })
      assert.matches("^tests/docker_image_spec.lua:%d+: docker.inspect: cannot reach the Docker engine at unix:///tmp/slipway%-no%-engine.sock: ", err)
    end)

    it("refuses unknown options naming the caller's line", function()
      local err = raises(docker.build, { context = "tests/apps", tagg = "x" })
      assert.matches("^tests/docker_image_spec.lua:%d+: docker.build: unknown option 'tagg' %(valid: ", err)
    end)
  end)

  describe("ssh:// hosts", function()
    leaks.check()
    local sshd = require("support.docker_sshd")
    local server
    setup(function() server = sshd.start() end)
    teardown(function() sshd.stop(server) end)

    it("forwards the remote engine's socket with OpenSSH and talks API through it", function()
      local remote = os.getenv("DOCKER_HOST"):match("^unix://(.+)$")
      local c = client.new({ host = server.host, ssh_options = server.options, remote_socket = remote })
      assert.same("1.41", c:api_version())
      assert.is_false(docker.exists("slipway-no-such-image:1", { client = c }))
      assert.matches("^/tmp/slipway%-docker%-ssh%-", c.conn.socket)
      local sock = c.conn.socket
      c:close()
      assert.same(2, select(3, io.open(sock)))   -- ENOENT: removed
    end)

    it("says why when ssh cannot connect", function()
      local c = client.new({ host = "ssh://nobody@127.0.0.1:1", ssh_options = server.options })
      local err = raises(c.api_version, c)
      assert.matches("docker: ssh nobody@127.0.0.1: cannot forward the engine socket: .*[Cc]onnection refused", err)
      c:close()
    end)
  end)

  describe("images", function()
    leaks.check()
    local tag = REG .. "/slipway-test-app:" .. fx.unique("t")

    it("builds from a context, streaming the output, and the image exists", function()
      local lines = {}
      -- (forced: an image of the same inputs may be in the engine already)
      fx.app_binary()
      local r = docker.build({ context = "tests/apps", tag = tag, build_args = { VERSION = "v1" }, force = true })
      assert.matches("^sha256:%x+$", r.id)
      assert.same({ tag }, r.tags)
      assert.matches("Successfully tagged " .. tag:gsub("%p", "%%%0"), r.output)
      assert.is_true(docker.exists(tag))
      local info = docker.inspect(tag)
      assert.same(r.id, info.Id)
      assert.same({ "/health" }, info.Config.Entrypoint)
      assert.is_true(#lines == 0)
      -- a rebuild of the same inputs is not even sent (docker_cache_spec);
      -- forced, it is served from the engine's layer cache and streams
      -- through on_output
      local r2 = docker.build({ context = "tests/apps", tag = tag, build_args = { VERSION = "v1" },
        force = true, on_output = function(l) lines[#lines + 1] = l end })
      assert.same(r.id, r2.id)
      assert.is_true(#lines > 5)
      assert.matches("Using cache", table.concat(lines, "\n"))
    end)

    it("builds a matrix of images in parallel on the loop", function()
      fx.app_binary()
      local started = task.now()
      local tasks = {}
      for i = 1, 3 do
        tasks[i] = task.spawn(docker.build, { context = "tests/apps", tag = tag .. "-m" .. i,
          build_args = { VERSION = "m" .. i } })
      end
      local ids = {}
      for i = 1, 3 do ids[i] = tasks[i]:join().id end
      assert.is_true(ids[1] ~= ids[2] and ids[2] ~= ids[3])
      for i = 1, 3 do
        local env = table.concat(docker.inspect(tag .. "-m" .. i).Config.Env, " ")
        assert.matches("VERSION=m" .. i .. " ", env)
        docker.rm_image(tag .. "-m" .. i)
      end
      assert.is_true(task.now() - started < 60000)
    end)

    it("sends the context without what .dockerignore excludes", function()
      local dir = fx.tmpdir()
      fx.write(dir .. "/Dockerfile", "FROM scratch\nCOPY . /ctx/\n")
      fx.write(dir .. "/.dockerignore", "secret.txt\n*.tmp\nDockerfile\n")
      fx.write(dir .. "/secret.txt", "no\n")
      fx.write(dir .. "/a.tmp", "no\n")
      fx.write(dir .. "/keep.txt", "yes\n")
      local t = REG .. "/slipway-ignore:" .. fx.unique("i")
      docker.build({ context = dir, tag = t })
      -- list the image's files by exporting a container's filesystem
      local id = fx.cli({ "create", t, "x" }).stdout:gsub("%s+$", "")
      local r = fx.cli({ "export", "-o", dir .. "/fs.tar", id })
      fx.cli({ "rm", id })
      local list = proc.run({ "tar", "-tf", dir .. "/fs.tar" }).stdout
      local files = {}
      for l in list:gmatch("[^\n]+") do if l:match("^ctx/.") then files[#files + 1] = l end end
      table.sort(files)
      assert.same(0, r.code)
      -- (the engine applies .dockerignore to COPY itself, so the Dockerfile
      -- that had to be sent for the build does not land in /ctx)
      assert.same({ "ctx/.dockerignore", "ctx/keep.txt" }, files)
      docker.rm_image(t)
      fx.rmtree(dir)
    end)

    it("fails a build with the engine's error detail", function()
      local dir = fx.tmpdir()
      fx.write(dir .. "/Dockerfile", "FROM scratch\nCOPY missing.txt /\n")
      local err = raises(docker.build, { context = dir, tag = REG .. "/slipway-bad:1" })
      assert.matches("^tests/docker_image_spec.lua:%d+: docker.build: " .. REG:gsub("%p", "%%%0")
        .. "/slipway%-bad:1: COPY failed: .*missing.txt", err)
      fx.write(dir .. "/Dockerfile", "FROM scratch\nBOGUS x\n")
      err = raises(docker.build, { context = dir, tag = REG .. "/slipway-bad:1" })
      assert.matches("docker.build: [^:]+:%d+/slipway%-bad:1: .*unknown instruction: BOGUS", err)
      err = raises(docker.build, { context = dir .. "/nope" })
      assert.matches("docker.build: " .. dir:gsub("%p", "%%%0") .. "/nope: the build context is not a directory", err)
      fx.rmtree(dir)
    end)

    it("tags and pushes, returning the digest the registry stored", function()
      local t2 = REG .. "/slipway-pushed:" .. fx.unique("p")
      assert.is_true(docker.tag(tag, t2))
      local digest = docker.push(t2)
      assert.matches("^sha256:%x+$", digest)
      local repo, ref = t2:match("^[^/]+/(.+):(.+)$")
      local res = http.request({ url = "http://" .. REG .. "/v2/" .. repo .. "/manifests/" .. ref, method = "HEAD",
        headers = { Accept = "application/vnd.docker.distribution.manifest.v2+json" } })
      assert.same(200, res.status)
      assert.same(digest, res.headers["docker-content-digest"])
      assert.same(digest, docker.inspect(t2).RepoDigests[1]:match("@(.*)$"))
    end)

    it("fails a push with the registry's error", function()
      local err = raises(docker.push, REG .. "/slipway-never-built:1")
      assert.matches("docker.push: [^ ]+/slipway%-never%-built:1: An image does not exist locally", err)
      local t3 = "127.0.0.1:5999/slipway-down:1"      -- no registry there
      docker.tag(tag, t3)
      err = raises(docker.push, t3)
      assert.matches("^tests/docker_image_spec.lua:%d+: docker.push: 127.0.0.1:5999/slipway%-down:1: .*connection refused", err)
      docker.rm_image(t3)
    end)

    it("removes images; exists and inspect see it", function()
      local t4 = REG .. "/slipway-rm:" .. fx.unique("r")
      docker.tag(tag, t4)
      assert.is_true(docker.exists(t4))
      local out = docker.rm_image(t4)
      assert.same({ Untagged = t4 }, out[1])
      assert.is_false(docker.exists(t4))
      local err = raises(docker.inspect, t4)
      assert.matches("docker.inspect: " .. t4:gsub("%p", "%%%0") .. ": no such image", err)
      assert.same({}, docker.rm_image(t4, { missing_ok = true }))
      err = raises(docker.rm_image, t4)
      assert.matches("docker.rm_image: .*No such image", err)
    end)
  end)
end)
