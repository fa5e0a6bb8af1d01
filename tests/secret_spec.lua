-- slipway.secret: values that print as *** and are registered with the
-- masker (src/mask.c); the masker itself (every form of a value, URL
-- passwords); and the natives that take a Secret where a string goes
-- (env, stdin, http, files) or refuse one (a command line, JSON, YAML).
local secret = require("slipway.secret")
local leaks = require("support.leaks")
local forms = require("support.secret_forms")
local base64 = require("slipway.base64")
local json = require("slipway.json")
local proc = require("slipway.proc")
local fs = require("slipway.fs")

local SLIPWAY = os.getenv("SLIPWAY")

-- `slipway -e code` with env; -> the proc.run result.
local function slipway_e(code, env)
  return assert(proc.run({ SLIPWAY, "-e", code }, { env = env, timeout = "20s" }))
end

describe("slipway.secret", function()
  leaks.check()

  it("prints as *** but concatenates to the plain text", function()
    local s = secret.new("hunter2-pw", "DB_PASSWORD")
    assert.same({ "***", "***", "Bearer hunter2-pw", "hunter2-pw!", 10 },
      { tostring(s), ("%s"):format(s), "Bearer " .. s, s .. "!", #s })
    assert.same({ "hunter2-pw", "hunter2-pw", "DB_PASSWORD" }, { s:reveal(), secret.reveal(s), s.name })
    assert.same("plain", secret.reveal("plain"))
    assert.is_true(secret.is_secret(s))
    assert.is_false(secret.is_secret("hunter2-pw"))
    assert.is_true(s == secret.new("hunter2-pw"))
  end)

  it("remembers every value once, in order, for the masker", function()
    local before = #secret.values()
    secret.new("first-value")
    secret.new("second-value")
    secret.new("first-value")
    local values = secret.values()
    assert.same({ "first-value", "second-value" }, { values[before + 1], values[before + 2] })
    assert.same(before + 2, #values)
  end)

  it("refuses values shorter than 4 characters, and other types", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(secret.new, "abc")
    assert.is_false(ok)
    assert.same(("tests/secret_spec.lua:%d: secret.new: a secret must be 4 characters or more, this one has 3 "
      .. "(masking so short a value would hide ordinary text everywhere)"):format(line), err)
    assert.has_error(function() secret.new(1234) end)
    assert.has_error(function() secret.new("abc\0def") end)
    assert.has_error(function() secret.reveal(42) end)
  end)

  describe("the masker", function()
    -- A value with what JSON, URLs and XML escape, and bytes outside ASCII.
    local value = 'pa ss"w\\ord/+&<x>=ü-1'
    secret.new(value, "MASK_TEST")

    it("replaces the value in every form it takes", function()
      assert.same("a *** b", secret.mask("a " .. value .. " b"))
      assert.same('{"k":"***"}', secret.mask(json.encode({ k = value })))
      for _, f in ipairs(forms.of(value)) do
        assert.same("<***>", secret.mask("<" .. f.text .. ">"), f.name)
      end
      local xml = value:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" })
      assert.same("<***>", secret.mask("<" .. xml .. ">"))
      -- (a query string holding JSON: the Docker engine's build arguments)
      assert.same("q=%22***%22&x=1", secret.mask("q=" .. json.encode(value):gsub("[^%w%-%._~]",
        function(c) return ("%%%02X"):format(c:byte()) end) .. "&x=1"))
    end)

    it("finds base64 of the value wherever it starts in the encoded buffer", function()
      for offset = 0, 5 do
        for _, url in ipairs({ false, true }) do
          local encoded = base64.encode(("z"):rep(offset) .. value .. "tail", { url = url })
          local masked = secret.mask(encoded)
          assert.is_truthy(masked:find("***", 1, true), encoded)
          assert.is_nil(forms.find(masked, { value }), masked)
        end
      end
    end)

    it("masks each line of a multi-line value; lines under 4 characters stay", function()
      local pem = "-----BEGIN TEST KEY-----\r\nMIIBOgIBAAJBAKj34GkxFhD9\r\nab\r\n-----END TEST KEY-----"
      secret.new(pem, "PEM")
      assert.same("*** and ***", secret.mask("MIIBOgIBAAJBAKj34GkxFhD9 and -----END TEST KEY-----"))
      assert.same("ab", secret.mask("ab"))
      assert.same("***", secret.mask(pem))
    end)

    it("merges overlapping and touching matches into one ***", function()
      secret.new("alpha-beta", "A")
      secret.new("beta-gamma", "B")
      assert.same("<***>", secret.mask("<alpha-beta-gamma>"))
      assert.same("<***>", secret.mask("<alpha-betabeta-gamma>"))
      assert.same("***", secret.mask("alpha-beta"))
      assert.same("x *** y *** z", secret.mask("x alpha-beta y beta-gamma z"))
    end)

    it("gives the same string back when there is nothing to mask", function()
      local text = ("plain text "):rep(100)
      assert.is_true(rawequal(text, secret.mask(text)))
      assert.same({ 42, true }, { secret.mask(42), secret.mask(true) })
      assert.same("***", secret.mask(secret.new("whole-secret")))
    end)

    it("mask_deep copies the tables where something changed, keeps metatables, leaves the rest shared", function()
      local s = secret.new("deep-secret-1")
      local untouched = { n = 1, text = "nothing here" }
      local list = json.array({ "a", "deep-secret-1 in a list" })
      local t = { a = "x", nested = { v = "got deep-secret-1" }, same = untouched, list = list, s = s, [1] = s }
      local m = secret.mask_deep(t)
      assert.are_not.equal(t, m)
      assert.same({ "x", "got ***", "***", "***" }, { m.a, m.nested.v, m.s, m[1] })
      assert.equal(untouched, m.same)
      assert.same({ "a", "*** in a list" }, { m.list[1], m.list[2] })
      assert.equal(getmetatable(list), getmetatable(m.list))
      assert.same("got deep-secret-1", t.nested.v)
      assert.equal(s, t.s)
      assert.equal(untouched, secret.mask_deep(untouched))
    end)

    it("contains tells whether a text holds a value in any form", function()
      secret.new("contained-value")
      assert.is_true(secret.contains("x " .. base64.encode("..contained-value..") .. " y"))
      assert.is_false(secret.contains("contained-valu"))
    end)

    it("costs nothing and changes nothing before the first secret", function()
      local r = slipway_e([[
        local secret = require("slipway.secret")
        local t = { a = "x" }
        print(secret.active(), secret.mask_deep(t) == t, secret._mask_args("a", 1, "b"))
        secret.new("first-one")
        print(secret.active(), secret._mask_args("a", "first-one", 1))]])
      assert.same("false\ttrue\ta\t1\tb\ntrue\ta***1\n", r.stdout)
    end)

    it("masks a line written in pieces, across the pieces, without copying the usual line", function()
      secret.new("split-across-pieces")
      assert.same("x *** y", secret._mask_args("x split-", "across-", "pieces y"))
      assert.same("***\n", secret._mask_args("split-across-pieces", "\n"))
      assert.same({ "[t] ", "no secret here", "\n" }, { secret._mask_args("[t] ", "no secret here", "\n") })
    end)
  end)

  describe("redact_urls", function()
    it("replaces the password of every URL, secret or not", function()
      local cases = {
        { "http://user:hunter22@host/x", "http://user:***@host/x" },
        { "fetch https://a:b@c:8443?x=1 and postgres://u:p@ss@db:5432/app, done",
          "fetch https://a:***@c:8443?x=1 and postgres://u:***@db:5432/app, done" },
        { '{"url":"redis://:pw-only@cache:6379"}', '{"url":"redis://:***@cache:6379"}' },
        { "ssh://git@github.com/x.git", "ssh://git@github.com/x.git" },
        { "http://user:@host", "http://user:@host" },
        { "http://host:8080/a@b", "http://host:8080/a@b" },
        { "mailto:me@x and ://a:b@c", "mailto:me@x and ://a:b@c" },
        { "http://u:***@h", "http://u:***@h" },
      }
      for _, c in ipairs(cases) do assert.same(c[2], secret.redact_urls(c[1]), c[1]) end
      assert.same("see http://u:***@h", secret.mask("see http://u:pw12@h"))
    end)
  end)

  describe("natives", function()
    local token = secret.new("native-token-123", "TOKEN")

    it("give children a Secret through env and stdin as its plain text", function()
      local r = proc.run({ "sh", "-c", 'printf "%s|" "$TOKEN"; cat' }, { env = { TOKEN = token }, stdin = token })
      assert.same({ 0, "native-token-123|native-token-123" }, { r.code, r.stdout })
    end)

    it("refuse a secret on a command line, saying to use env or stdin", function()
      local tail = ": a secret never goes on a command line (any user can read it there); pass it through "
        .. "env or stdin, e.g. sh('curl -H \"Authorization: Bearer $TOKEN\" ...', { env = { TOKEN = token } })"
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(proc.run, { "echo", token })
      assert.same({ false, ("tests/secret_spec.lua:%d: proc.run: cmd[2] is a secret" .. tail):format(line) }, { ok, err })
      ok, err = pcall(proc.run, { "curl", "-H", "Authorization: Bearer " .. token })
      assert.is_false(ok)
      assert.matches("proc.run: cmd%[3%] contains the value of a secret: a secret never", err)
      ok, err = pcall(proc.spawn, "echo " .. token:reveal())
      assert.is_false(ok)
      assert.matches("proc.spawn: the command contains the value of a secret", err)
      ok, err = pcall(proc.run, "echo " .. base64.encode(token:reveal()))
      assert.is_false(ok)
      assert.matches("the command contains the value of a secret", err)
      ok, err = pcall(proc.run, token)
      assert.is_false(ok)
      assert.matches("proc.run: the command is a secret", err)
      ok, err = pcall(require("slipway.sh"), "curl -u admin:" .. token)
      assert.is_false(ok)
      assert.matches("^tests/secret_spec.lua:%d+: sh: the command contains the value of a secret", err)
      assert.is_nil(err:find("native-token-123", 1, true))
    end)

    it("give a stack's service a Secret environment value as its plain text, not ***", function()
      local convert = require("slipway.docker.convert")
      local conv = assert(convert.stack("s", { services = {
        api = { image = "a", environment = { TOKEN = token, PLAIN = "x" } },
        web = { image = "a", environment = { token, "PLAIN=x" } },
      } }))
      assert.same({ "PLAIN=x", "TOKEN=native-token-123" }, conv.services.api.TaskTemplate.ContainerSpec.Env)
      assert.same({ "PLAIN=x", "native-token-123" }, conv.services.web.TaskTemplate.ContainerSpec.Env)
    end)

    it("write a file that holds a secret readable by its owner only", function()
      local dir = assert(fs.tempdir())
      assert(fs.write(dir .. "/plain", "nothing"))
      assert(fs.write(dir .. "/secret", token))
      assert(fs.write(dir .. "/env", "TOKEN=" .. token .. "\n"))
      assert(fs.write_atomic(dir .. "/atomic", "x" .. token))
      assert(fs.write(dir .. "/plain2", "nothing"))
      assert(fs.append(dir .. "/plain2", "then " .. token))
      local modes = {}
      for _, name in ipairs({ "plain", "secret", "env", "atomic", "plain2" }) do
        modes[#modes + 1] = ("%o"):format(fs.stat(dir .. "/" .. name).mode & 511)
      end
      assert.same("native-token-123", fs.read(dir .. "/secret"))
      fs.remove(dir, { recursive = true })
      local umask_default = modes[1]
      assert.same({ umask_default, "600", "600", "600", "600" }, modes)
    end)

    it("refuse to encode a Secret as JSON or YAML (it would send *** silently)", function()
      local ok, err = pcall(json.encode, { t = token })
      assert.same({ false, "json.encode: cannot encode a secret (pass secret.reveal(value) where its plain "
        .. "text must be sent) at $.t" }, { ok, err })
      ok, err = pcall(require("slipway.yaml").encode, { token })
      assert.is_false(ok)
      assert.matches("cannot encode a secret", err)
    end)

    it("mask a child's inherited output outside runs once a secret exists", function()
      local r = slipway_e([[
        local s = require("slipway.secret").new("inherited-secret")
        require("slipway.proc").run({ "sh", "-c", 'echo "out $S"; echo "err $S" >&2' },
          { env = { S = s }, stdout = "inherit", stderr = "inherit" })
        require("slipway.sh")('echo "via sh $S"; echo http://u:pw-x@h', { env = { S = s } })]])
      assert.same({ 0, "out ***\nvia sh ***\nhttp://u:***@h\n", "err ***\n" }, { r.code, r.stdout, r.stderr })
    end)

    it("announce every new value to GitHub Actions with ::add-mask:: before anything else", function()
      local code = [[
        local secret = require("slipway.secret")
        secret.new("100%-sure\nsecond-line\nxy")
        secret.new("100%-sure\nsecond-line\nxy")
        io.write("after\n")
        secret._announce_to("stderr")
        secret.new("to-stderr-now")]]
      local r = slipway_e(code, { GITHUB_ACTIONS = "true" })
      assert.same("::add-mask::100%25-sure%0Asecond-line%0Axy\n::add-mask::100%25-sure\n"
        .. "::add-mask::second-line\nafter\n", r.stdout)
      assert.same("::add-mask::to-stderr-now\n", r.stderr)
      r = slipway_e(code, { GITHUB_ACTIONS = false })
      assert.same({ "after\n", "" }, { r.stdout, r.stderr })
    end)
  end)

  -- (last: the values it registers stay registered in this process)
  describe("the masker, at random", function()
      it("leaves no form of any value in random texts made of values, their forms and noise", function()
        math.randomseed(20261205)
        local alphabet = "ab+/= \"\\\nxyz0"
        local function random_text(n)
          local t = {}
          for i = 1, n do
            local k = math.random(#alphabet)
            t[i] = alphabet:sub(k, k)
          end
          return table.concat(t)
        end
        local values = {}
        while #values < 30 do
          local v = random_text(math.random(4, 24))
          if not v:find("\n", 1, true) and v:find("%S") then
            secret.new(v)
            values[#values + 1] = v
          end
        end
        for _ = 1, 300 do
          local parts = {}
          for i = 1, math.random(1, 8) do
            local fs_of = forms.of(values[math.random(#values)])
            parts[i] = random_text(math.random(0, 6)) .. fs_of[math.random(#fs_of)].text
          end
          local text = table.concat(parts) .. random_text(3)
          local masked = secret.mask(text)
          assert(forms.find(masked, values) == nil, forms.find(masked, values))
          assert.is_truthy(masked:find("***", 1, true))
        end
      end)
  end)
end)
