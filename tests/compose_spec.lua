-- slipway.compose: the Lua API (load -> change -> render -> load), errors
-- with file:line:col, warnings for what Swarm ignores, interpolation rules,
-- multi-file merges, variable sources, and the `compose config` command.
-- The corpus itself (60 + 20 files, 18 cases) is tests/compose_corpus_spec.lua.
local compose = require("slipway.compose")
local interpolate = require("slipway.compose.interpolate")
local convert = require("slipway.compose.convert")
local yaml = require("slipway.yaml")
local leaks = require("support.leaks")

local SLIPWAY = os.getenv("SLIPWAY")

local dir
local function write(name, text)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(text)
  f:close()
  return dir .. "/" .. name
end

local function load_text(text, opts)
  return compose.load(write("compose.yml", text), opts)
end

local function try_text(text, opts)
  return compose.try_load(write("compose.yml", text), opts)
end

-- the message without the directory of the temporary file
local function short(msg) return (msg:gsub(dir:gsub("%p", "%%%0") .. "/", "")) end

-- the message and code of a rejected text
local function err(text, opts)
  local stack, msg, code = try_text(text, opts)
  assert.is_nil(stack)
  return short(msg), code
end

describe("compose", function()
  leaks.check()

  before_each(function()
    local p = io.popen("mktemp -d /tmp/compose-spec-XXXXXX")
    dir = p:read("l")
    p:close()
  end)
  after_each(function()
    assert(dir:match("^/tmp/compose%-spec%-"))
    os.execute("rm -rf " .. dir)
  end)

  describe("load", function()
    it("normalizes like docker stack config", function()
      local stack = load_text([[
version: "3.8"
services:
  web:
    image: "nginx:${TAG:-1.25}"
    command: nginx -g 'daemon off;'
    ports:
      - "8080:80"
      - 443
    deploy:
      replicas: ${REPLICAS}
      resources:
        limits: {memory: 64M, cpus: "0.5"}
    healthcheck:
      test: curl -f http://localhost/
      interval: 90s
    environment:
      A: 1.50
      B: 0755
      C:
    volumes:
      - ./data:/data:ro
      - cache:/cache:nocopy
networks:
  front:
]], { environ = { REPLICAS = "2" } })
      local web = stack.services.web
      assert.same("3.8", stack.version)
      assert.same("nginx:1.25", web.image)
      assert.same({ "nginx", "-g", "daemon off;" }, web.command)
      assert.same({ { mode = "ingress", target = 80, published = 8080, protocol = "tcp" },
        { mode = "ingress", target = 443, protocol = "tcp" } }, web.ports)
      assert.same(2, web.deploy.replicas)
      assert.same({ limits = { memory = 67108864, cpus = "0.5" } }, web.deploy.resources)
      assert.same({ test = { "CMD-SHELL", "curl -f http://localhost/" }, interval = "1m30s" }, web.healthcheck)
      assert.same({ A = "1.5", B = "493", C = yaml.null }, web.environment)
      assert.same({ { type = "bind", source = dir .. "/data", target = "/data", read_only = true },
        { type = "volume", source = "cache", target = "/cache", volume = { nocopy = true } } }, web.volumes)
      assert.same({ front = {} }, stack.networks)
    end)

    it("load -> change -> render -> load again gives the same Stack", function()
      local stack = load_text([[
version: "3.8"
x-common: &common
  restart: "no"
services:
  api:
    image: registry.example.com/api:1.0
    environment: [MODE=prod, "PRICE=$$5"]
    deploy:
      update_config: {parallelism: 2, delay: 10s}
  worker:
    image: registry.example.com/worker:1.0
    labels: {team: core}
secrets:
  token:
    file: ./token.txt
]])
      -- a script changes it: swap tags, set replicas, add a service
      stack.services.api.image = "registry.example.com/api:2.0"
      stack.services.api.deploy.replicas = 3
      stack.services.worker.deploy = { mode = "global" }
      stack.services.probe = {
        image = "registry.example.com/probe:1.0",
        ports = { { target = 9000, published = 9000, protocol = "tcp", mode = "ingress" } },
        command = { "probe", "--all" },
      }
      local text = compose.render(stack, { escape_dollars = true })
      local again = compose.load(write("rendered.yml", text))
      assert.same(compose.render(stack), compose.render(again))
      assert.same(stack.services.api, again.services.api)
      assert.same(stack.services.probe, again.services.probe)
      assert.same({ mode = "global" }, again.services.worker.deploy)
      assert.same("$5", again.services.api.environment.PRICE)
      assert.same({ name = nil, file = dir .. "/token.txt" }, again.secrets.token)
      assert.same(stack["x-common"], again["x-common"])
    end)

    it("merges files like docker stack deploy -c a -c b", function()
      write("base.yml", [[
version: "3.8"
services:
  web:
    image: app:1
    environment: {A: "1", B: "1"}
    ports: ["80:80", "81:81"]
    cap_add: [NET_ADMIN]
    deploy: {replicas: 2, update_config: {parallelism: 2, delay: 10s}}
networks:
  net: {driver: overlay, labels: {a: b}}
x-base: 1
]])
      write("prod.yml", [[
version: "3.8"
services:
  web:
    image: app:2
    environment: {A: "2", C: "2"}
    ports: ["80:8080"]
    cap_add: [SYS_TIME]
    deploy: {update_config: {delay: 20s}}
  extra:
    image: extra
networks:
  net: {labels: {c: d}}
x-prod: 2
]])
      local stack = compose.load({ dir .. "/base.yml", dir .. "/prod.yml" })
      local web = stack.services.web
      assert.same("app:2", web.image)
      assert.same({ A = "2", B = "1", C = "2" }, web.environment)
      assert.same({ { mode = "ingress", target = 8080, published = 80, protocol = "tcp" },
        { mode = "ingress", target = 81, published = 81, protocol = "tcp" } }, web.ports)
      assert.same({ "NET_ADMIN", "SYS_TIME" }, web.cap_add)
      assert.same({ replicas = 2, update_config = { parallelism = 2, delay = "20s" } }, web.deploy)
      assert.same({ image = "extra" }, stack.services.extra)
      assert.same({ net = { labels = { c = "d" } } }, stack.networks)
      assert.same({ 1, nil }, { stack["x-base"], stack["x-prod"] })
    end)

    it("takes variables from opts.env, then the environment, then env files", function()
      write("prod.env", "# production\nexport TAG=from-file\nREPLICAS='4'\nNOTE=\"two\\nlines\"\nPLAIN=a b  # comment\n")
      local stack = load_text([[
services:
  web:
    image: "app:${TAG}"
    deploy: {replicas: "${REPLICAS}"}
    labels: [note=$NOTE, plain=$PLAIN, home=$HOME]
]], { env_file = dir .. "/prod.env", environ = { HOME = "/home/x", TAG = "from-environ" }, env = { HOME = false } })
      assert.same("app:from-environ", stack.services.web.image)
      assert.same(4, stack.services.web.deploy.replicas)
      assert.same({ note = "two\nlines", plain = "a b", home = "" }, stack.services.web.labels)
      assert.same("app:from-opts", load_text("services: {web: {image: 'app:${TAG}'}}",
        { env = { TAG = "from-opts" }, environ = { TAG = "from-environ" } }).services.web.image)
    end)

    it("merges env_file contents into environment, as docker does", function()
      write("web.env", "# comment\nFROM_FILE=1\nSHARED=file\n  SPACED=x y \nBARE\n")
      local stack = load_text([[
services:
  web:
    image: app
    env_file: web.env
    environment: {SHARED: service, EMPTY: "", UNSET: null}
]], { environ = { BARE = "from-env", EMPTY = "filled" } })
      assert.same({ FROM_FILE = "1", SHARED = "service", SPACED = "x y ", BARE = "from-env", EMPTY = "filled",
        UNSET = yaml.null }, stack.services.web.environment)
      assert.same({ "web.env" }, stack.services.web.env_file)
    end)
  end)

  describe("errors", function()
    it("name file, line and column of bad YAML", function()
      assert.same({ nil, "compose.yml:3:13: mapping values are not allowed in this context", "EYAML" },
        { (function(...) local a, b, c = ... return a, b and short(b), c end)(try_text("services:\n  web:\n    image: a: b\n")) })
    end)

    it("quote a missing required variable's own message", function()
      assert.same({ 'compose.yml:3:5: invalid interpolation format for services.web.image: "required variable TAG is missing a value: set TAG to the release"; you may need to escape any $ with another $', "EINTERPOLATE" },
        { err("services:\n  web:\n    image: app:${TAG:?set TAG to the release}\n", { environ = {} }) })
      assert.same({ 'compose.yml:4:9: invalid interpolation format for services.web.labels.[]: "cost $5"; you may need to escape any $ with another $', "EINTERPOLATE" },
        { err("services:\n  web:\n    labels:\n      - cost $5\n", { environ = {} }) })
    end)

    it("report a typed field that does not cast", function()
      assert.same({ 'compose.yml:5:7: error while interpolating services.web.deploy.replicas: failed to cast to expected type: strconv.Atoi: parsing "two": invalid syntax', "EINTERPOLATE" },
        { err("services:\n  web:\n    image: a\n    deploy:\n      replicas: ${N}\n", { environ = { N = "two" } }) })
      assert.same({ "compose.yml:4:5: error while interpolating services.web.read_only: failed to cast to expected type: invalid boolean: 1", "EINTERPOLATE" },
        { err("services:\n  web:\n    image: a\n    read_only: $RO\n", { environ = { RO = "1" } }) })
    end)

    it("reject forbidden properties and version mismatches", function()
      assert.same({ "compose.yml:4:5: Configuration contains forbidden properties", "ESCHEMA" },
        { err("services:\n  web:\n    image: a\n    volumes_from: [db]\n") })
      write("a.yml", "version: '3.7'\nservices: {}\n")
      write("b.yml", "version: '3.3'\nservices: {}\n")
      local stack, msg = compose.try_load({ dir .. "/a.yml", dir .. "/b.yml" })
      assert.is_nil(stack)
      assert.same("b.yml:1:1: version mismatched between two composefiles : 3.7 and 3.3", short(msg))
    end)

    it("reject what the version's schema rejects, with the position", function()
      if not package.preload["slipway.compose.schema"] then pending("slipway.compose.schema is not built in") return end
      assert.same({ "compose.yml:5:7: services.web.deploy.replicas must be a integer", "ESCHEMA" },
        { err("services:\n  web:\n    image: a\n    deploy:\n      replicas: '3'\n") })
    end)

    it("report a missing env_file and a missing compose file", function()
      local msg, code = err("services:\n  web:\n    image: a\n    env_file: nope.env\n")
      assert.same({ "compose.yml:4:5: open nope.env: no such file or directory", "ECOMPOSE" },
        { msg:gsub(dir:gsub("%p", "%%%0") .. "/", ""), code })
      assert.same({ nil, "open /nonexistent/compose.yml: no such file or directory", "ENOENT" },
        { compose.try_load("/nonexistent/compose.yml") })
    end)

    it("name a directory given as a compose or env file", function()
      os.execute("mkdir " .. dir .. "/sub")
      assert.same({ nil, "read " .. dir .. "/sub: is a directory", "EISDIR" }, { compose.try_load(dir .. "/sub") })
      local ok = write("ok.yml", "services:\n  web:\n    image: a\n")
      assert.same({ nil, "read " .. dir .. "/sub: is a directory", "EISDIR" },
        { compose.try_load(ok, { env_file = dir .. "/sub" }) })
      local msg, code = err("services:\n  web:\n    image: a\n    env_file: sub\n")
      assert.same({ "compose.yml:4:5: read sub: is a directory", "ECOMPOSE" },
        { msg:gsub(dir:gsub("%p", "%%%0") .. "/", ""), code })
    end)

    it("refuse a compose or env file over max_bytes (16 MiB unless given)", function()
      local text = "services:\n  web:\n    image: a\n"       -- 30 bytes
      assert.is_table((load_text(text, { max_bytes = 30 })))
      assert.same({ "read compose.yml: file too large (over 29 bytes, the limit of a compose input file)", "EFBIG" },
        { err(text, { max_bytes = 29 }) })
      local big = write("big.yml", "# " .. ("x"):rep(16 * 1024 * 1024) .. "\n")
      assert.same({ nil, "read " .. big .. ": file too large (over 16 MiB, the limit of a compose input file)", "EFBIG" },
        { compose.try_load(big) })
      assert.same({ nil, "read " .. big .. ": file too large (over 16 MiB, the limit of a compose input file)", "EFBIG" },
        { compose.try_load(write("c.yml", text), { env_file = big }) })
      write("web.env", "A=" .. ("x"):rep(70) .. "\n")
      local msg, code = err(text .. "    env_file: web.env\n", { max_bytes = 60 })
      assert.same({ "compose.yml:4:5: read web.env: file too large (over 60 bytes, the limit of a compose input file)",
        "ECOMPOSE" }, { msg:gsub(dir:gsub("%p", "%%%0") .. "/", ""), code })
      assert.has_error(function() compose.load(big, { max_bytes = "1M" }) end,
        "compose.load: max_bytes must be a non-negative integer, got 1M")
    end)

    it("raise from load naming the caller's line", function()
      local ok, e = pcall(function() load_text("services: [a]\n") end)
      assert.is_false(ok)
      assert.matches("^tests/compose_spec.lua:%d+: compose.load: .*compose.yml", e)
      assert.has_error(function() compose.load("x.yml", { enviroment = {} }) end)
    end)
  end)

  describe("warnings", function()
    it("report what docker stack deploy ignores, with positions", function()
      local _, warnings = load_text([[
version: "3.8"
services:
  web:
    image: app
    build: .
    container_name: web
    ports: ["127.0.0.1:8080:80"]
networks:
  shared:
    external: {name: corp}
]])
      for i, w in ipairs(warnings) do warnings[i] = short(w) end
      assert.same({
        "compose.yml:5:5: services.web.build: not supported by docker stack deploy, ignored",
        "compose.yml:6:5: services.web.container_name: ignored by docker stack deploy: Setting the container name is not supported.",
        "compose.yml:7:13: ignoring IP-address (127.0.0.1:8080:80/tcp) service will listen on '0.0.0.0'",
        "compose.yml:10:5: network shared: network.external.name is deprecated in favor of network.name",
      }, warnings)
    end)
  end)

  describe("render", function()
    it("prints docker's field order and formats", function()
      local stack = load_text([[
services:
  b:
    image: b
    environment: [Z=1, A=yes]
    deploy: {resources: {limits: {memory: 1g}}, replicas: 1, mode: replicated}
  a:
    image: a
x-extra: {z: 1, a: [1, "2"]}
]])
      assert.same([[
version: "3.13"
services:
  a:
    image: a
  b:
    deploy:
      mode: replicated
      replicas: 1
      resources:
        limits:
          memory: "1073741824"
    environment:
      A: "yes"
      Z: "1"
    image: b
x-extra:
  a:
    - 1
    - "2"
  z: 1
]], compose.render(stack))
    end)

    -- docker's go-yaml loses a value's leading line break (the fixture
    -- literals.yml has its bytes); text meant to load back keeps it
    it("writes literals as docker does, and keeps them whole with escape_dollars", function()
      local stack = load_text('services:\n  web:\n    image: a\n    environment: {A: "\\nfoo\\nbar", B: "\\tx\\ny"}\n'
        .. '    extra_hosts: {db: 5}\n')
      assert.same('version: "3.13"\nservices:\n  web:\n    environment:\n      A: |2-\n        foo\n        bar\n'
        .. "      B: |-\n        \tx\n        y\n    extra_hosts:\n      - db:%!s(int=5)\n    image: a\n",
        compose.render(stack))
      local text = compose.render(stack, { escape_dollars = true })
      assert.matches("A: |2%-\n\n        foo\n", text)
      assert.matches("%- db=%%!s%(int=5%)\n", text)
      local again = compose.load(write("again.yml", text))
      assert.same({ A = "\nfoo\nbar", B = "\tx\ny" }, again.services.web.environment)
      assert.same(compose.render(stack), compose.render(again))
    end)

    it("normalizes values a script set, and rejects unknown fields", function()
      local stack = load_text("services:\n  web:\n    image: a\n")
      stack.services.web.deploy = { replicas = 2, restart_policy = { delay = "90s" } }
      stack.services.web.stop_grace_period = "1500ms"
      assert.same("version: \"3.13\"\nservices:\n  web:\n    deploy:\n      replicas: 2\n      restart_policy:\n        delay: 1m30s\n    image: a\n    stop_grace_period: 1.5s\n",
        compose.render(stack))
      stack.services.web.replica = 2
      assert.has_error(function() compose.render(stack) end, "compose.render: services.web: unknown field 'replica'")
      stack.services.web.replica = nil
      stack.services.web.deploy.replicas = "two"
      assert.has_error(function() compose.render(stack) end,
        "compose.render: services.web.deploy.replicas must be an integer, got string")
    end)
  end)

  -- docker's loader decodes integer fields into Go types: checked
  -- against `docker stack config` (client 28.2.2); the accepted forms are
  -- in tests/support/compose_oracle/numbers.yml
  describe("integer fields", function()
    local U = "12345678901234567890"

    it("keep an integer above 2^63-1 in a uint64 field, wrap it in an int64, mask it in a uint32", function()
      local stack = load_text(("services:\n  web:\n    image: a\n    deploy: {replicas: %s, resources: {limits: {pids: %s}}}\n"
        .. "    ports: [{target: 80, published: 4294967297}]\n    x-n: %s\n"):format(U, U, U))
      local d = stack.services.web.deploy
      assert.same({ U, -6101065172474983726, 1 },
        { tostring(d.replicas), d.resources.limits.pids, stack.services.web.ports[1].published })
      assert.equal(yaml.uint64_mt, getmetatable(d.replicas))
      assert.matches("replicas: " .. U .. "\n", compose.render(stack))
      -- and the Engine API gets the same digits
      local spec = require("slipway.docker.convert").stack("s", stack).services.web
      assert.matches('"Replicas":' .. U .. "[,}]", require("slipway.json").encode(spec))
    end)

    it("refuse a negative number in an unsigned field, as docker does", function()
      -- docker: "cannot parse 'Deploy.Replicas', -1 overflows uint"
      assert.same({ "compose.yml:4:14: services.web.deploy.replicas: cannot parse -1, it overflows uint", "ECOMPOSE" },
        { err("services:\n  web:\n    image: a\n    deploy: {replicas: -1}\n") })
      assert.same({ "compose.yml:4:25: services.web.ports[0].published: cannot parse -2, it overflows uint", "ECOMPOSE" },
        { err("services:\n  web:\n    image: a\n    ports: [{target: 1, published: -2}]\n") })
    end)

    it("refuse an integer above 2^63-1 where docker wants a Go int", function()
      -- docker: "invalid type uint64 for ulimits"; for soft/hard it panics
      assert.same({ "compose.yml:4:15: services.web.ulimits.nofile: invalid type uint64 for ulimits", "ECOMPOSE" },
        { err(("services:\n  web:\n    image: a\n    ulimits: {nofile: %s}\n"):format(U)) })
      assert.same({ ("compose.yml:4:24: services.web.ulimits.nofile.soft: %s is out of range for an int"):format(U), "ECOMPOSE" },
        { err(("services:\n  web:\n    image: a\n    ulimits: {nofile: {soft: %s, hard: 1}}\n"):format(U)) })
    end)

    it("drop oom_score_adj, which docker's loader never reads, with a warning", function()
      local stack, warnings = load_text("services:\n  web:\n    image: a\n    oom_score_adj: 0\n")
      assert.is_nil(stack.services.web.oom_score_adj)
      assert.same({ "compose.yml:4:5: services.web.oom_score_adj: ignored by docker stack deploy (its loader does not read it)" },
        { short(warnings[1]) })
      assert.same("version: \"3.13\"\nservices:\n  web:\n    image: a\n", compose.render(stack))
    end)
  end)

  describe("interpolation", function()
    local env = { SET = "v", EMPTY = "" }
    local function lookup(k) return env[k] end
    local function sub(s) return { interpolate.substitute(s, lookup) } end

    it("substitutes the forms docker supports", function()
      assert.same({ "v v v" }, sub("$SET ${SET} ${SET:-d}"))
      assert.same({ "d d - d" }, sub("${UNSET:-d} ${EMPTY:-d} -${EMPTY-d} ${UNSET-d}"))
      assert.same({ "a$b $$" }, sub("a$$b $$$$"))
      assert.same({ "" }, sub("$UNSET"))
      assert.same({ "v" }, sub("${SET:?must be set}"))
      assert.same({ "" }, sub("${EMPTY?must exist}"))
    end)

    it("does not nest, and reads defaults up to the first }", function()
      assert.same({ "${B}" }, sub("${UNSET:-${B}}"))
      assert.same({ "ab}" }, sub("${UNSET:-a}b}"))
      -- the unbraced form takes a modifier too: "$SET-x" is "${SET-x}"
      assert.same({ "v" }, sub("$SET-x"))
      assert.same({ "x" }, sub("$UNSET-x"))
    end)

    it("rejects what docker rejects, quoting the whole string", function()
      for _, bad in ipairs({ "a $ b", "cost $5", "x$", "${A/x/y}", "${A:+x}", "${ A }", "${A" }) do
        assert.same({ nil, bad }, sub(bad))
      end
      assert.same({ nil, "required variable UNSET is missing a value: oops" }, sub("${UNSET:?oops}"))
      assert.same({ nil, "required variable EMPTY is missing a value: oops" }, sub("${EMPTY:?oops}"))
      -- a later expression decides, as in docker
      assert.same({ "-v" }, sub("${UNSET:?oops}-$SET"))
    end)

    it("casts typed fields only where docker does", function()
      assert.is_function(interpolate.caster_for("services.web.deploy.replicas"))
      assert.is_function(interpolate.caster_for("networks.front.external"))
      assert.is_nil(interpolate.caster_for("services.web.image"))
      assert.is_nil(interpolate.caster_for("services.a.b.deploy.replicas"))
    end)
  end)

  describe("conversions", function()
    it("formats Go durations", function()
      local cases = { ["60s"] = "1m0s", ["90s"] = "1m30s", ["2m"] = "2m0s", ["3600s"] = "1h0m0s",
        ["1500ms"] = "1.5s", ["0s"] = "0s", ["1h30m"] = "1h30m0s", ["10us"] = "10µs", ["1.5h"] = "1h30m0s" }
      for input, want in pairs(cases) do
        assert.same(want, convert.format_duration(assert(convert.parse_duration(input))))
      end
      assert.same({ nil, 'time: missing unit in duration "10"' }, { convert.parse_duration("10") })
      assert.same({ nil, 'time: unknown unit "d" in duration "1d"' }, { convert.parse_duration("1d") })
    end)

    it("reads byte sizes like go-units", function()
      assert.same({ 52428800, 1073741824, 1536, 100 },
        { convert.ram_in_bytes("50M"), convert.ram_in_bytes("1g"), convert.ram_in_bytes("1.5KiB"),
          convert.ram_in_bytes("100") })
      assert.same({ nil, "invalid suffix: 'x'" }, { convert.ram_in_bytes("10x") })
    end)

    it("splits commands like a shell", function()
      assert.same({ "sh", "-c", "echo \"hi there\"" }, convert.shell_split([[sh -c 'echo "hi there"']]))
      assert.same({ "a b", "c" }, convert.shell_split([["a b" c # comment]]))
      assert.same({ nil, "EOF found when expecting closing quote" }, { convert.shell_split("'open") })
    end)
  end)

  describe("slipway compose config", function()
    local function run(args, cwd)
      local cmd = ("cd %s && %s compose %s >out.txt 2>err.txt; echo $?"):format(cwd or dir, SLIPWAY, args)
      local p = io.popen(cmd)
      local code = tonumber(p:read("a"):match("%d+"))
      p:close()
      local function slurp(n) local f = io.open(dir .. "/" .. n) local s = f:read("a") f:close() return s end
      return code, slurp("out.txt"), slurp("err.txt")
    end

    it("prints the config, warnings on stderr", function()
      write("c.yml", "services:\n  web:\n    image: app:${TAG}\n    container_name: w\n")
      write("prod.env", "TAG=2.0\n")
      local code, out, errout = run("config -c c.yml --env-file prod.env")
      assert.same(0, code)
      assert.same("version: \"3.13\"\nservices:\n  web:\n    container_name: w\n    image: app:2.0\n", out)
      assert.same("warning: c.yml:4:5: services.web.container_name: ignored by docker stack deploy: Setting the container name is not supported.\n", errout)
    end)

    it("leaves variables alone with --skip-interpolation", function()
      write("v.yml", "services:\n  web:\n    image: app:${TAG:?no tag}\n    deploy: {replicas: 2}\n")
      local code, out = run("config --skip-interpolation -c v.yml")
      assert.same(0, code)
      assert.same("version: \"3.13\"\nservices:\n  web:\n    deploy:\n      replicas: 2\n    image: app:${TAG:?no tag}\n", out)
    end)

    it("reads a file from standard input with -c -", function()
      write("in.yml", "services:\n  web:\n    image: a\n    volumes: [./data:/data]\n")
      local code, out = run("config -c - < in.yml")
      assert.same(0, code)
      assert.same(("version: \"3.13\"\nservices:\n  web:\n    image: a\n    volumes:\n      - type: bind\n        source: %s/data\n        target: /data\n"):format(dir), out)
    end)

    it("exits 2 naming the path when a file argument is a directory", function()
      write("c.yml", "services:\n  web:\n    image: a\n")
      os.execute("mkdir " .. dir .. "/sub")
      local code, out, errout = run("config -c sub")
      assert.same({ 2, "", "slipway compose: --compose-file sub: is a directory, expected a file\n" }, { code, out, errout })
      code, out, errout = run("config -c c.yml --env-file=sub")
      assert.same({ 2, "", "slipway compose: --env-file sub: is a directory, expected a file\n" }, { code, out, errout })
    end)

    it("exits 1 on a file over 16 MiB", function()
      write("big.yml", "# " .. ("x"):rep(16 * 1024 * 1024) .. "\n")
      local code, out, errout = run("config -c big.yml")
      assert.same({ 1, "", "read big.yml: file too large (over 16 MiB, the limit of a compose input file)\n" },
        { code, out, errout })
    end)

    it("exits 1 on a rejected file and 2 on a usage error", function()
      write("bad.yml", "services:\n  web:\n    image: ${X:?X is required}\n")
      local code, out, errout = run("config -c bad.yml")
      assert.same({ 1, "" }, { code, out })
      assert.same('bad.yml:3:5: invalid interpolation format for services.web.image: "required variable X is missing a value: X is required"; you may need to escape any $ with another $\n', errout)
      assert.same(2, (run("config")))
      assert.same(2, (run("frobnicate")))
      local hcode, help = run("--help")
      assert.same(0, hcode)
      assert.matches("usage: slipway compose config %-c FILE", help)
    end)
  end)
end)
