local yaml = require("slipway.yaml")
local json = require("slipway.json")

-- decoded value -> plain comparable value (sequences lose their marker)
local function types(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = v == yaml.null and "null" or (math.type(v) or type(v))
  end
  return out
end

describe("yaml", function()
  describe("decode", function()
    it("decodes maps, sequences and scalars", function()
      local v = yaml.decode("a: 1\nb: [x, y]\nc:\n  d: true\n")
      assert.same({ a = 1, b = { "x", "y" }, c = { d = true } }, v)
      assert.equal(json.array_mt, getmetatable(v.b))
      assert.is_nil(getmetatable(v.c))
    end)

    it("shares the null sentinel and the array marker with json", function()
      assert.equal(json.null, yaml.null)
      assert.equal(json.array_mt, yaml.array_mt)
      assert.same('{"a":[],"b":{},"c":null}', json.encode(yaml.decode("a: []\nb: {}\nc: ~\n")))
    end)

    it("resolves plain scalars like go-yaml v3", function()
      local v = yaml.decode([[
- 0755
- 0x1F
- 0o17
- 0b101
- 1_000
- -0x10
- 08
- 1.50
- .5
- 1e3
- +12
- 0.
- 1e400
- 99999999999999999999
- ~
- null
- NULL
-
- true
- True
- FALSE
- tRUE
- yes
- on
- y
- n
- off
- 2001-12-14
- 12:30:00
- .inf
- -.Inf
- '0755'
- "true"
- <<
]])
      assert.same({ 493, 31, 15, 5, 1000, -16, 8.0, 1.5, 0.5, 1000.0, 12, 0.0, "1e400", 1e20,
        yaml.null, yaml.null, yaml.null, yaml.null, true, true, false, "tRUE", "yes", "on", "y", "n", "off",
        "2001-12-14", "12:30:00", math.huge, -math.huge, "0755", "true", "<<" }, v)
      assert.same({ "integer", "integer", "integer", "integer", "integer", "integer", "float", "float",
        "float", "float", "integer", "float", "string", "float" }, { table.unpack(types(v), 1, 14) })
    end)

    -- go-yaml reads these as a uint64 and docker prints every digit; a
    -- float would print 1.2345678901234567e+19
    it("keeps every digit of an integer above 2^63-1 (a slipway.Uint64)", function()
      local v = yaml.decode("[12345678901234567890, 18446744073709551615, 9223372036854775808, "
        .. "0xFFFFFFFFFFFFFFFF, 12_345_678_901_234_567_890, 9223372036854775807, 18446744073709551616, "
        .. "+12345678901234567890, -9223372036854775809, !!float 12345678901234567890, !!int 9223372036854775808]")
      local u = v[1]
      assert.same("userdata", type(u))
      assert.equal(yaml.uint64_mt, getmetatable(u))
      assert.same({ "12345678901234567890", "18446744073709551615", "9223372036854775808",
        "18446744073709551615", "12345678901234567890" },
        { tostring(v[1]), tostring(v[2]), tostring(v[3]), tostring(v[4]), tostring(v[5]) })
      -- int64 range, past uint64 and signed: Lua integers and floats, as go-yaml has them
      assert.same({ math.maxinteger, 18446744073709551616.0, 12345678901234567890.0, -9223372036854775809.0,
        12345678901234567890.0 }, { v[6], v[7], v[8], v[9], v[10] })
      assert.same({ "integer", "float", "float", "float", "float" },
        { math.type(v[6]), math.type(v[7]), math.type(v[8]), math.type(v[9]), math.type(v[10]) })
      assert.equal(yaml.uint64_mt, getmetatable(v[11]))
      -- compared by value, with each other and with numbers
      assert.is_true(u == yaml.decode("12345678901234567890"))
      assert.is_false(u == v[2])
      assert.is_true(u < v[2] and v[3] <= u and not (v[2] < u))
      assert.is_true(u > math.maxinteger and u > -1 and u < 1e20 and 5 < u)
      assert.is_true(v[3] >= 2 ^ 63 and not (v[3] > 2 ^ 63) and v[3] < 2 ^ 63 + 4096)
      assert.is_false(u < 0 / 0 or u >= 0 / 0)
      -- one value while it lives, so it works as a table key like a number
      assert.is_true(rawequal(u, v[5]))
      assert.same("a", yaml.decode("{12345678901234567890: a}")[u])
      -- written back as plain integers
      assert.same("- 12345678901234567890\n- 9223372036854775808\n", yaml.encode({ v[1], v[3] }))
      assert.same('{"a":18446744073709551615}', json.encode({ a = v[2] }))
      assert.same("3: x\n12345678901234567890: \"y\"\n", yaml.encode({ [u] = "y", [3] = "x" }, { sort_keys = true }))
    end)

    it("applies core tags and rejects values that do not fit them", function()
      assert.same({ "12", 13, 3.0, true, yaml.null, "x" },
        yaml.decode('[!!str 12, !!int "13", !!float 3, !!bool true, !!null "", !custom x]'))
      assert.same("float", math.type(yaml.decode("!!float 3")))
      assert.same({ nil, "t.yml:1:4: cannot decode !!str `abc` as a !!int", "EYAML" },
        { yaml.decode("a: !!int abc", { filename = "t.yml" }) })
      assert.same({ nil, "<string>:1:1: cannot decode !!str `yes` as a !!bool", "EYAML" },
        { yaml.decode("!!bool yes") })
    end)

    it("keeps quoted and block scalars as strings", function()
      assert.same({ a = "1", b = "null", c = "line1\nline2\n", d = "folded text" },
        yaml.decode("a: '1'\nb: \"null\"\nc: |\n  line1\n  line2\nd: >-\n  folded\n  text\n"))
    end)

    it("expands aliases into independent copies", function()
      local v = yaml.decode("base: &b {x: {y: 1}}\none: *b\ntwo: *b\n")
      assert.same({ x = { y = 1 } }, v.one)
      v.one.x.y = 2
      assert.same(1, v.two.x.y)
      assert.same(1, v.base.x.y)
    end)

    it("resolves merge keys: local keys win, earlier sources win", function()
      local v = yaml.decode([[
a: &a {k: a, only_a: 1}
b: &b {k: b, only_b: 2, only_a: 9}
one:
  <<: *a
  k: local
two:
  <<: [*a, *b]
three:
  k: local
  <<: [*b, *a]
]])
      assert.same({ k = "local", only_a = 1 }, v.one)
      assert.same({ k = "a", only_a = 1, only_b = 2 }, v.two)
      assert.same({ k = "local", only_a = 9, only_b = 2 }, v.three)
      assert.same({ "k", "only_b", "only_a" }, yaml.keys(v.three))
      assert.same({ "only_a", "k" }, yaml.keys(v.one))   -- merged keys go where << was
    end)

    it("rejects a merge of something that is not a map", function()
      assert.same({ nil, "<string>:1:5: map merge requires map or sequence of maps as the value", "EYAML" },
        { yaml.decode("a: {<<: 1}") })
    end)

    it("keeps key order in a side table", function()
      local v = yaml.decode("zeta: 1\nalpha: 2\nmid: 3\n")
      assert.same({ "zeta", "alpha", "mid" }, yaml.keys(v))
      v.new = 4
      v.alpha = nil
      assert.same({ "zeta", "mid", "new" }, yaml.keys(v))
      assert.same({ zeta = 1, mid = 3, new = 4 }, v)
    end)

    it("returns positions of every table, key and element", function()
      local text = "services:\n  web:\n    image: x\n    ports:\n      - 80\n      - 443\n"
      local v, pos = yaml.decode(text, { positions = true, filename = "c.yml" })
      assert.same({ line = 3, col = 5, keys = { image = { line = 3, col = 5 }, ports = { line = 4, col = 5 } } },
        pos[v.services.web])
      assert.same({ line = 5, col = 7, keys = { { line = 5, col = 9 }, { line = 6, col = 9 } } },
        pos[v.services.web.ports])
      assert.same({ line = 1, col = 1 }, pos[v].keys.services)
    end)

    it("reports syntax errors as file:line:col", function()
      assert.same({ nil, "c.yml:1:5: mapping values are not allowed in this context", "EYAML" },
        { yaml.decode("a: b: c", { filename = "c.yml" }) })
      assert.same({ nil, "c.yml:2:1: mapping key \"a\" already defined at line 1", "EYAML" },
        { yaml.decode("a: 1\na: 2\n", { filename = "c.yml", positions = true }) })
      assert.same({ nil, "<string>:1:4: unknown anchor 'x' referenced", "EYAML" }, { yaml.decode("a: *x") })
      assert.same({ nil, "<string>:1:5: invalid leading UTF-8 octet", "EYAML" }, { yaml.decode('a: "\xff"') })
      assert.same({ nil, "<string>:2:1: did not find expected '-' indicator (while parsing a block collection at line 1)", "EYAML" },
        { yaml.decode("- a\nb: c\n") })
    end)

    it("reads the first document; decode_all reads all", function()
      assert.same({ a = 1 }, yaml.decode("a: 1\n---\nb: 2\n"))
      assert.same({ { a = 1 }, { b = 2 } }, yaml.decode_all("a: 1\n---\nb: 2\n"))
      assert.same(yaml.null, yaml.decode(""))
      assert.same({}, yaml.decode_all(""))
    end)

    it("refuses a text over max_bytes (16 MiB unless given) before parsing it", function()
      assert.same({ nil, "big.yml: document too large (16777217 bytes, the limit is 16777216)", "EFBIG" },
        { yaml.decode(("#"):rep(16 * 1024 * 1024 + 1), { filename = "big.yml" }) })
      assert.same({ nil, "<string>: document too large (6 bytes, the limit is 5)", "EFBIG" },
        { yaml.decode_all("a: 1\n\n", { max_bytes = 5 }) })
      assert.same({ a = 1 }, yaml.decode("a: 1\n", { max_bytes = 5 }))
      assert.same({ { a = 1 } }, yaml.decode_all("a: 1\n", { max_bytes = 17 * 1024 * 1024 }))
      assert.has_error(function() yaml.decode("a", { max_bytes = -1 }) end)
    end)

    it("rejects unknown options", function()
      assert.has_error(function() yaml.decode("a: 1", { file = "x" }) end)
    end)

    -- found while writing the fuzz targets: names past 255 bytes were cut
    it("keeps long anchor names whole on mappings and sequences", function()
      local name = ("a"):rep(300)
      assert.same({ x = { k = 1 }, y = { k = 1 }, s = { 2 }, t = { 2 } },
        yaml.decode(("x: &%s {k: 1}\ny: *%s\ns: &%s [2]\nt: *%s\n"):format(name, name, name .. "s", name .. "s")))
    end)

    -- found by tests/fuzz/differential.sh: go-yaml v3 scans two tokens past
    -- the first document, so docker rejects a bad start of a second one
    it("fails on a syntax error within two tokens after the first document", function()
      assert.same({ nil, "d.yml:2:6: mapping values are not allowed in this context", "EYAML" },
        { yaml.decode("a: 1\n--- x: y\n", { filename = "d.yml" }) })
      assert.same({ nil, "d.yml:2:6: found character that cannot start any token (while scanning for the next token at line 2)", "EYAML" },
        { yaml.decode("a: 1\n--- [@]\n", { filename = "d.yml" }) })
      assert.same(nil, (yaml.decode("a: 1\n# c\n---\n\n@\n")))
      -- further on, docker reads no more of the text than libyaml does
      assert.same({ a = 1 }, yaml.decode("a: 1\n--- [a, @]\n"))
      assert.same({ a = 1 }, yaml.decode("a: 1\n--- a\n@\n"))
      assert.same({ a = 1 }, yaml.decode("a: 1\n...\n# only a comment\n"))
      assert.same({ { a = 1 }, "x" }, yaml.decode_all("a: 1\n--- x\n"))
    end)

    -- found while writing the fuzz targets: a "billion laughs" took minutes
    -- and gigabytes; go-yaml v3's alias/decode ratio limit applies
    it("refuses excessive aliasing like go-yaml", function()
      local lines, prev = { "l0: &l0 [x, x, x, x, x, x, x, x, x, x]" }, "l0"
      for i = 1, 9 do
        lines[#lines + 1] = ("l%d: &l%d [%s]"):format(i, i, ("*" .. prev .. ", "):rep(10):sub(1, -3))
        prev = "l" .. i
      end
      assert.same({ nil, "b.yml:4:20: document contains excessive aliasing", "EYAML" },
        { yaml.decode(table.concat(lines, "\n"), { filename = "b.yml" }) })
      -- ordinary reuse of anchors is far below the limit
      local text = { "base: &b {image: x, env: [A, B]}" }
      for i = 1, 200 do text[#text + 1] = ("s%d: *b"):format(i) end
      local doc = yaml.decode(table.concat(text, "\n"))
      assert.same({ image = "x", env = { "A", "B" } }, doc.s200)
    end)
  end)

  describe("encode", function()
    it("writes maps in recorded order, other keys in go-yaml order", function()
      local t = yaml.order({ b = 1, a = 2, z = 3, svc10 = 4, svc9 = 5 }, { "z", "b" })
      assert.same("z: 3\nb: 1\na: 2\nsvc9: 5\nsvc10: 4\n", yaml.encode(t))
      assert.same("a: 2\nb: 1\nsvc9: 5\nsvc10: 4\nz: 3\n", yaml.encode(t, { sort_keys = true }))
    end)

    it("indents sequences under their key, maps in sequences inline", function()
      assert.same("a:\n  - 1\n  - x: 1\n    \"y\": 2\n  - - 3\n    - 4\nb: {}\nc: []\n",
        yaml.encode(yaml.order({ a = { 1, yaml.order({ x = 1, y = 2 }, { "x", "y" }), { 3, 4 } }, b = {},
          c = json.array() }, { "a", "b", "c" })))
    end)

    it("quotes strings that would read back as something else", function()
      local out = yaml.encode({ "yes", "y", "1", "0755", "1.5", "", "null", "true", "1:20",
        "2001-12-14", "-5", "<<", "plain text", "${VAR}", "80:80", "a: b", "#x", "*.x", "it's",
        " lead", "tab\tx", "é😀" })
      assert.same(table.concat({
        '- "yes"', '- "y"', '- "1"', '- "0755"', '- "1.5"', '- ""', '- "null"', '- "true"', '- "1:20"',
        '- "2001-12-14"', '- "-5"', '- "<<"', "- plain text", "- ${VAR}", "- 80:80", "- 'a: b'", "- '#x'",
        "- '*.x'", "- it's", "- ' lead'", '- "tab\\tx"', '- "é\\U0001F600"', "" }, "\n"), out)
    end)

    it("writes multi-line strings as block literals", function()
      assert.same("a: |-\n  one\n  two\nb: |\n  x\nc: |+\n  x\n\nd: |2-\n   lead\n  x\ne: \"trail \\nx\"\n",
        yaml.encode(yaml.order({ a = "one\ntwo", b = "x\n", c = "x\n\n", d = " lead\nx", e = "trail \nx" },
          { "a", "b", "c", "d", "e" })))
      assert.same("- |-\n  a\n\n  b\n", yaml.encode({ "a\n\nb" }))
    end)

    -- go-yaml writes a break that starts the value as the end of the
    -- header line (so docker's output loses it) and U+2028/U+2029 as they
    -- are; docker_compat gives those bytes, the default text that reads back
    it("writes block literals that start with a line break, a space or a tab", function()
      local values = { "\nfoo\nbar", "\n", "\n\nx", " lead\nx", "\tfoo\nbar", "x\u{2028}y\nz",
        "\u{2028}x\ny", "a\nb\u{2028}", "foo\n\n" }
      local docker = {
        "- |2-\n  foo\n  bar\n",
        "- |2+\n",
        "- |2-\n\n  x\n",
        "- |2-\n   lead\n  x\n",
        "- |-\n  \tfoo\n  bar\n",
        "- |-\n  x\u{2028}  y\n  z\n",
        "- |2-\u{2028}  x\n  y\n",
        "- |\n  a\n  b\u{2028}",
        "- |+\n  foo\n\n",
      }
      local readable = {
        "- |2-\n\n  foo\n  bar\n",
        "- |2+\n\n",
        "- |2-\n\n\n  x\n",
        "- |2-\n   lead\n  x\n",
        "- |2-\n  \tfoo\n  bar\n",
        "- |-\n  x\u{2028}  y\n  z\n",
        "- |2-\n\u{2028}  x\n  y\n",
        "- |\n  a\n  b\u{2028}",
        "- |+\n  foo\n\n",
      }
      for i, s in ipairs(values) do
        assert.same(docker[i], yaml.encode({ s }, { docker_compat = true }))
        assert.same(readable[i], yaml.encode({ s }))
        assert.same({ s }, yaml.decode(readable[i]))
      end
      -- after a final U+2028 the next key follows on the same line, as in docker
      assert.same("a: |\n  x\n  y\u{2028}b: 1\n", yaml.encode(yaml.order({ a = "x\ny\u{2028}", b = 1 }, { "a", "b" })))
      assert.same("- |2-\n    x\n  y\n", yaml.encode({ "  x\ny" }, { docker_compat = true }))
    end)

    it("writes numbers like Go", function()
      assert.same("- 1\n- 1.5\n- 1e+06\n- 123456.7\n- 1e-05\n- 3\n- .inf\n- -.inf\n- .nan\n- -9223372036854775808\n",
        yaml.encode({ 1, 1.5, 1e6, 123456.7, 0.00001, 3.0, math.huge, -math.huge, 0 / 0, math.mininteger }))
      assert.same("1.2345675e+06", yaml.format_float(1234567.5))
    end)

    it("writes null, booleans and scalars at the top level", function()
      assert.same("null\n", yaml.encode(yaml.null))
      assert.same("true\n", yaml.encode(true))
      assert.same("{}\n", yaml.encode({}))
      assert.same("[]\n", yaml.encode(json.array()))
    end)

    it("round-trips a decoded document", function()
      local text = "version: \"3.8\"\nservices:\n  web:\n    image: nginx\n    environment:\n      B: \"yes\"\n      A: \"1\"\n    ports:\n      - 80:80\n"
      assert.same(text, yaml.encode(yaml.decode(text)))
    end)

    it("raises a clear error for values YAML cannot hold", function()
      assert.has_error(function() yaml.encode({ a = { b = print } }) end,
        "yaml.encode: cannot encode a function at $.a.b")
      local c = {}
      c.self = c
      assert.has_error(function() yaml.encode(c) end, "yaml.encode: cycle (a table contains itself) at $.self")
      assert.has_error(function() yaml.encode({ "\xff" }) end, "yaml.encode: invalid UTF-8 in a string at $[1]")
    end)
  end)

  describe("key_less", function()
    it("orders like go-yaml: digit runs numerically, non-letters first", function()
      local keys = { "svc10", "svc9", "a", "B", "A10", "A9", "_x", "a10", "a1b" }
      table.sort(keys, yaml.key_less)
      assert.same({ "_x", "A9", "A10", "B", "a", "a1b", "a10", "svc9", "svc10" }, keys)
    end)

    -- found by tests/fuzz (fuzz_compose, UBSan: signed overflow): a digit
    -- run past int64 wraps as in Go, which `docker stack config` shows
    it("wraps digit runs past int64 like Go", function()
      local keys = { "a9223372036854775807", "a3", "a10000000000000000000", "a2" }
      table.sort(keys, yaml.key_less)
      assert.same({ "a10000000000000000000", "a2", "a3", "a9223372036854775807" }, keys)
    end)
  end)

  describe("round trip property", function()
    -- Mutated documents (fixed seed): whatever decodes must encode to text
    -- that decodes to the same data. Seeds: a few shapes compose files use.
    local seeds = {
      "version: '3.8'\nx-a: &a {image: 'n:1', environment: [A=1, B]}\nservices:\n  web:\n    <<: *a\n    ports: ['80:80', 443]\n    command: |\n      run\n        --flag\n",
      "a: [1, 2.5, -0x1F, 0755, ~, yes, 'yes', \"multi\\nline\", '#x', '- y', ': z', tab\there]\nb: {c: {d: [], e: {}}}\n",
      "- - 1\n  - 2\n- {k: v}\n- \"\\u00e9\\U0001F600\"\n- !!str 12\n- 1e400\n- 2001-12-14\n- '12:30'\n",
    }
    local function same(a, b)
      if type(a) ~= type(b) then return false end
      if type(a) == "number" then
        if a ~= a then return b ~= b end
        return a == b and (math.type(a) == math.type(b) or a == math.floor(a))   -- 3.0 prints as 3, like Go
      end
      if type(a) ~= "table" then return a == b end
      for k, x in pairs(a) do if not same(x, b[k]) then return false end end
      for k in pairs(b) do if a[k] == nil then return false end end
      return true
    end

    it("holds for 400 mutated documents", function()
      local rnd = 12345
      local function random(n)                  -- small LCG: same sequence everywhere
        rnd = (rnd * 1103515245 + 12345) % 2147483648
        return rnd % n + 1
      end
      local chars = " \n:-[]{}&*!|>'\"#,?~.019aé\xff"
      local decoded = 0
      for _ = 1, 400 do
        local s = seeds[random(#seeds)]
        for _ = 1, random(4) do
          local at = random(#s + 1)
          if random(2) == 1 then
            local c = random(#chars)
            s = s:sub(1, at - 1) .. chars:sub(c, c) .. s:sub(at)
          else
            s = s:sub(1, at - 1) .. s:sub(at + random(6))
          end
        end
        local v = yaml.decode(s)
        if v ~= nil then
          decoded = decoded + 1
          local text = yaml.encode(v)
          local back, err = yaml.decode(text)
          assert.is_true(same(v, back), ("round trip differs for %q -> %q (%s)"):format(s, text, tostring(err)))
        end
      end
      assert.is_true(decoded > 50, "too few documents decoded: " .. decoded)
    end)
  end)
end)
