local json = require("slipway.json")

describe("json", function()
  describe("decode", function()
    it("decodes objects, arrays and scalars", function()
      local t = json.decode('{"a": [1, "two", true, false, null], "b": {"c": "d"}}')
      assert.same({ a = { 1, "two", true, false, json.null }, b = { c = "d" } }, t)
    end)

    it("keeps integers integers and floats floats", function()
      local t = json.decode('[1, 2.0, 3e2, -7, 9223372036854775807, 0.1, 1e400]')
      assert.same("integer", math.type(t[1]))
      assert.same("float", math.type(t[2]))
      assert.same("float", math.type(t[3]))
      assert.same(300.0, t[3])
      assert.same(-7, t[4])
      assert.same(math.maxinteger, t[5])
      assert.same(0.1, t[6])
      assert.same(math.huge, t[7])
    end)

    it("reads integers beyond 64 bits as floats", function()
      local v = json.decode("18446744073709551616")
      assert.same("float", math.type(v))
      assert.same(2.0 ^ 64, v)
    end)

    it("decodes top-level scalars", function()
      assert.same("x", json.decode('"x"'))
      assert.same(json.null, json.decode(" null "))
      assert.same(false, json.decode("false"))
      assert.same(42, json.decode("42"))
    end)

    it("decodes string escapes and UTF-8", function()
      assert.same('a"\\/\b\f\n\r\té😀', json.decode('"a\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"'))
      assert.same("héllo", json.decode('"héllo"'))
    end)

    it("marks arrays and objects so that empty ones round-trip", function()
      local t = json.decode('{"list": [], "map": {}}')
      assert.equal(json.array_mt, getmetatable(t.list))
      assert.equal(json.object_mt, getmetatable(t.map))
      assert.equal(json.object_mt, getmetatable(t))
      assert.same('{"list":[],"map":{}}', json.encode(t))
    end)

    it("the null sentinel is lightuserdata NULL", function()
      assert.same("userdata", type(json.null))
      local ok, yaml = pcall(require, "slipway.yaml")
      if ok then assert.equal(yaml.null, json.null) end
    end)

    it("reports the byte position of syntax errors", function()
      assert.same({ nil, "json: unexpected character '1' at byte 6", "EJSON" }, { json.decode('{"a" 1}') })
      assert.same({ nil, "json: unexpected end of input at byte 5", "EJSON" }, { json.decode("[1,2") })
      assert.same({ nil, "json: unexpected end of input at byte 1", "EJSON" }, { json.decode("") })
      assert.same({ nil, "json: unexpected data after the value at byte 7", "EJSON" }, { json.decode("[1,2] x") })
      assert.same({ nil, "json: unexpected character ']' at byte 4", "EJSON" }, { json.decode("[1,]") })
      assert.same({ nil, "json: unexpected character 'x' at byte 1", "EJSON" }, { json.decode("xyz") })
    end)

    it("rejects numbers JSON does not allow", function()
      assert.same({ nil, "json: invalid number at byte 6", "EJSON" }, { json.decode('{"a":01}') })
      assert.same({ nil, "json: invalid number at byte 2", "EJSON" }, { json.decode("[1.]") })
    end)

    it("rejects invalid UTF-8 with its position", function()
      assert.same({ nil, "json: invalid UTF-8 at byte 3", "EJSON" }, { json.decode('["\xff"]') })
      assert.same({ nil, "json: invalid UTF-8 at byte 2", "EJSON" }, { json.decode('"\xed\xa0\x80"') })
      assert.same({ nil, "json: unexpected byte 0xFF at byte 2", "EJSON" }, { json.decode('[\xff]') })
    end)

    it("decodes \\u0000 to a NUL byte, in values and keys", function()
      local s = json.decode('"a\\u0000b"')
      assert.same("a\0b", s)
      assert.same(3, #s)
      assert.same({ ["k\0"] = "\0\0" }, json.decode('{"k\\u0000": "\\u0000\\u0000"}'))
    end)

    it("keeps integers that fit in 64 bits exact, at both ends", function()
      local t = json.decode("[-9223372036854775808, 9223372036854775807, 123456789012345678, " ..
        "-1234567890123456789, -0, 9223372036854775808, -9223372036854775809]")
      assert.same({ math.mininteger, math.maxinteger, 123456789012345678, -1234567890123456789, 0 },
        { t[1], t[2], t[3], t[4], t[5] })
      for i = 1, 5 do assert.same("integer", math.type(t[i])) end
      assert.same({ "float", 2.0 ^ 63, "float", -(2.0 ^ 63) },
        { math.type(t[6]), t[6], math.type(t[7]), t[7] })
      local long = "1" .. string.rep("0", 600)
      assert.same(math.huge, json.decode(long))
      assert.same(1.5, json.decode("1.5" .. string.rep("0", 600)))
    end)

    it("reports bad escapes, control characters and literals", function()
      assert.same({ nil, "json: invalid escape at byte 3", "EJSON" }, { json.decode('"a\\x"') })
      assert.same({ nil, "json: invalid \\u escape at byte 2", "EJSON" }, { json.decode('"\\u12g4"') })
      assert.same({ nil, "json: invalid \\u escape at byte 2", "EJSON" }, { json.decode('"\\ud800x"') })
      assert.same({ nil, "json: invalid \\u escape at byte 2", "EJSON" }, { json.decode('"\\udc00\\ud800"') })
      assert.same({ nil, "json: unescaped control character in a string at byte 3", "EJSON" },
        { json.decode('"a\nb"') })
      assert.same({ nil, "json: unexpected character 'x' at byte 4", "EJSON" }, { json.decode("trux") })
      assert.same({ nil, "json: unexpected end of input at byte 4", "EJSON" }, { json.decode("nul") })
      assert.same({ nil, "json: unexpected end of input at byte 4", "EJSON" }, { json.decode('"ab') })
      assert.same({ nil, "json: unexpected data after the value at byte 3", "EJSON" }, { json.decode("{}}") })
    end)

    it("rejects each malformed number at its first byte", function()
      for _, text in ipairs({ "-", "-a", "1e", "1e+", "01.5", "1.2.3", "1-2" }) do
        local v, err, code = json.decode("[" .. text .. "]")
        assert.same({ nil, "EJSON" }, { v, code }, text)
        assert.matches("^json: invalid number at byte 2$", err, 1, false, text)
      end
      assert.same({ nil, "json: unexpected character 'x' at byte 3", "EJSON" }, { json.decode("[0x10]") })
      assert.same({ nil, "json: unexpected character '.' at byte 2", "EJSON" }, { json.decode("[.5]") })
    end)

    it("decodes 1000 levels of nesting and reports the 1001st", function()
      local ok = json.decode(string.rep("[", 1000) .. string.rep("]", 1000))
      assert.same("table", type(ok))
      assert.same({ nil, "json: nesting deeper than 1000 levels at byte 1001", "EJSON" },
        { json.decode(string.rep("[", 1001) .. string.rep("]", 1001)) })
      assert.same({ nil, "json: nesting deeper than 1000 levels at byte 5001", "EJSON" },
        { json.decode(string.rep('{"a":', 1001)) })
    end)

    it("raises on a non-string argument", function()
      assert.has_error(function() json.decode({}) end)
    end)
  end)

  describe("encode", function()
    it("encodes scalars", function()
      assert.same("null", json.encode(json.null))
      assert.same("null", json.encode(nil))
      assert.same("true", json.encode(true))
      assert.same("42", json.encode(42))
      assert.same("-9223372036854775808", json.encode(math.mininteger))
      assert.same('"a\\"\\\\\\n\\u0001/é"', json.encode('a"\\\n\1/é'))
    end)

    it("writes floats so they read back identical and stay floats", function()
      assert.same("0.1", json.encode(0.1))
      assert.same("0.3333333333333333", json.encode(1 / 3))
      assert.same("2.0", json.encode(2.0))
      assert.same("1e+300", json.encode(1e300))
      for _, v in ipairs({ 0.1, 1 / 3, 2.0, 1e300, 5e-324, 123456.789, -0.0 }) do
        local back = json.decode(json.encode(v))
        assert.same(v, back)
        assert.same("float", math.type(back))
      end
    end)

    it("uses the array rule: keys 1..n is an array, anything else an object", function()
      assert.same("[1,2,3]", json.encode({ 1, 2, 3 }))
      assert.same("{}", json.encode({}))
      assert.same("[]", json.encode(json.array()))
      assert.same("{}", json.encode(json.object({})))
      assert.same('{"1":"a"}', json.encode(json.object({ "a" })))
      assert.same('{"1":1,"3":3}', json.encode({ [1] = 1, [3] = 3 }))
      assert.same('{"1":"x","a":1}', json.encode({ "x", a = 1 }))
    end)

    it("sorts keys by default and keeps table order with sort_keys=false", function()
      assert.same('{"a":1,"b":2,"c":3}', json.encode({ c = 3, a = 1, b = 2 }))
      local out = json.encode({ c = 3, a = 1, b = 2 }, { sort_keys = false })
      assert.same({ a = 1, b = 2, c = 3 }, json.decode(out))
    end)

    it("pretty-prints with two-space indentation", function()
      assert.same('{\n  "a": [\n    1,\n    2\n  ],\n  "b": {},\n  "c": []\n}',
        json.encode({ a = { 1, 2 }, b = {}, c = json.array() }, { pretty = true }))
    end)

    it("round-trips a decoded document", function()
      local text = '{"a":[1,2.5,"x",null,{}],"b":{"c":[],"d":false},"e":-3}'
      assert.same(text, json.encode(json.decode(text)))
    end)

    it("raises a clear error for values JSON cannot hold", function()
      assert.has_error(function() json.encode({ a = { b = print } }) end,
        "json.encode: cannot encode a function at $.a.b")
      local c = {}
      c.x = { c }
      assert.has_error(function() json.encode(c) end,
        "json.encode: cycle (a table contains itself) at $.x[1]")
      assert.has_error(function() json.encode({ "ok", "\xff" }) end,
        "json.encode: invalid UTF-8 in a string at $[2]")
      assert.has_error(function() json.encode({ v = 0 / 0 }) end,
        "json.encode: cannot encode NaN or infinity at $.v")
      assert.has_error(function() json.encode({ [true] = 1 }) end,
        "json.encode: object key of type boolean (keys must be strings) at $")
    end)

    it("encodes the same table twice when it is shared, not cyclic", function()
      local shared = { 1 }
      assert.same('{"a":[1],"b":[1]}', json.encode({ a = shared, b = shared }))
    end)

    it("rejects unknown options", function()
      assert.has_error(function() json.encode({}, { indent = 2 }) end)
    end)

    it("writes NUL and the other control bytes as \\u escapes", function()
      assert.same('"a\\u0000b"', json.encode("a\0b"))
      assert.same('{"\\u0000":"\\u001f\\u007f"}', json.encode({ ["\0"] = "\31\127" }))
      local s = "x\0y\0"
      assert.same(s, json.decode(json.encode(s)))
    end)

    it("writes integers exactly and they decode as integers", function()
      for _, v in ipairs({ 0, -1, 7, 1000000, math.maxinteger, math.mininteger, math.mininteger + 1,
                           123456789012345678, -999999999999999999 }) do
        assert.same(("%d"):format(v), json.encode(v))
        local back = json.decode(json.encode(v))
        assert.same(v, back)
        assert.same("integer", math.type(back))
      end
    end)

    -- The float text's contract, the way slipway has always written it.
    local function shortest(v)
      local s = ("%.15g"):format(v)
      if tonumber(s) ~= v then s = ("%.16g"):format(v) end
      if tonumber(s) ~= v then s = ("%.17g"):format(v) end
      if not s:find("[.eEn]") then s = s .. ".0" end
      return s
    end

    it("writes every float as the shortest %.15g..%.17g text that reads back, staying a float", function()
      local values = { 12.3, -12.3, 0.5, 0.0005, 0.0001, 0.00012, 1e-5, 99999999999999.9, 999999999999999.0,
                       1e15, 1e14 + 0.5, 123456.789, 0.1 + 0.2, 2 ^ 53, 2.0 ^ 60, -0.0, 0.0, 1.25e-7, 3e22 }
      math.randomseed(7)
      for _ = 1, 3000 do
        values[#values + 1] = math.random(-10 ^ 9, 10 ^ 9) / 10 ^ math.random(0, 8)
        values[#values + 1] = (math.random() - 0.5) * 10.0 ^ math.random(-20, 20)
        values[#values + 1] = string.unpack("d", string.pack("i8", math.random(math.mininteger, math.maxinteger)))
      end
      for _, v in ipairs(values) do
        if v == v and v - v == 0 then
          assert.same(shortest(v), json.encode(v))
          local back = json.decode(json.encode(v))
          assert.same("float", math.type(back))
          assert(back == v and (1 / back > 0) == (1 / v > 0), json.encode(v))
        end
      end
    end)

    it("encodes 1000 levels of nesting and raises at the 1001st with the path", function()
      local function nest(n)
        local t = {}
        for _ = 2, n do t = { t } end
        return t
      end
      assert.same(string.rep("[", 999) .. "{}" .. string.rep("]", 999), json.encode(nest(1000)))
      local ok, err = pcall(json.encode, nest(1001))
      assert.is_false(ok)
      assert.same("json.encode: nesting deeper than 1000 levels at $" .. string.rep("[1]", 1000), err)
    end)

    it("replaces bytes that are not UTF-8 with U+FFFD when asked, one for each", function()
      local r = "\u{FFFD}"
      local opts = { invalid_utf8 = "replace" }
      assert.same('"ok' .. r .. ' end"', json.encode("ok\xff end", opts))
      assert.same('"' .. r .. r .. '"', json.encode("\xe2\x82", opts))            -- cut short
      assert.same('"' .. r .. r .. r .. '"', json.encode("\xed\xa0\x80", opts))    -- a surrogate
      assert.same('"' .. r .. r .. '"', json.encode("\xc0\xaf", opts))             -- overlong
      assert.same('{"k' .. r .. '":["\\n' .. r .. 'é"]}', json.encode({ ["k\xfe"] = { "\n\x80é" } }, opts))
      assert.same('"héllo 😀"', json.encode("héllo 😀", opts))
      assert.has_error(function() json.encode("\xff", { invalid_utf8 = "error" }) end,
        "json.encode: invalid UTF-8 in a string at $")
      assert.has_error(function() json.encode({ ["k\xfe"] = 1 }) end,
        "json.encode: invalid UTF-8 in a string at $.k\xfe")
      assert.has_error(function() json.encode("x", { invalid_utf8 = "drop" }) end,
        [[json.encode: option 'invalid_utf8' must be "error" or "replace", got drop]])
    end)

    it("pretty-prints nested containers, deeper than one run of spaces too", function()
      assert.same('[\n  {\n    "a": {\n      "b": [\n        true\n      ]\n    }\n  },\n  null\n]',
        json.encode({ { a = { b = { true } } }, json.null }, { pretty = true }))
      local t, want = "x", '"x"'
      for depth = 39, 0, -1 do
        t = { t }
        local pad = string.rep("  ", depth)
        want = "[\n" .. pad .. "  " .. want .. "\n" .. pad .. "]"
      end
      assert.same(want, json.encode(t, { pretty = true }))
    end)

    it("sorts keys bytewise, number keys by their text, many keys too", function()
      assert.same('{"10":1,"2":2,"B":3,"a":4,"b":5,"é":6}',
        json.encode({ [10] = 1, [2] = 2, B = 3, a = 4, b = 5, ["é"] = 6 }))
      local t, keys = {}, {}
      for i = 1, 100 do
        local k = ("k%03d"):format((i * 37) % 100)
        t[k] = i
        keys[#keys + 1] = k
      end
      table.sort(keys)
      local order = {}
      for k in json.encode(t):gmatch('"(k%d+)"') do order[#order + 1] = k end
      assert.same(keys, order)
    end)

    it("round-trips nested objects and arrays of every size", function()
      math.randomseed(11)
      local function random_value(depth)
        local r = math.random(depth > 4 and 4 or 6)
        if r == 1 then return math.random(-1000, 1000) end
        if r == 2 then return ("s%d\0\n\"é"):format(math.random(100)) end
        if r == 3 then return math.random() end
        if r == 4 then return math.random(2) == 1 end
        local t = r == 5 and json.array() or json.object()
        for i = 1, math.random(0, 20) do
          if r == 5 then t[i] = random_value(depth + 1) else t["k" .. math.random(50)] = random_value(depth + 1) end
        end
        return t
      end
      for _ = 1, 50 do
        local v = random_value(0)
        assert.same(v, json.decode(json.encode(v)))
        assert.same(json.encode(v), json.encode(json.decode(json.encode(v, { pretty = true }))))
        assert.same(v, json.decode(json.encode(v, { sort_keys = false })))
      end
    end)
  end)

  describe("replace_invalid_utf8", function()
    it("replaces each byte that is not part of valid UTF-8 with U+FFFD", function()
      assert.same("ok \u{FFFD}\u{FFFD} end", json.replace_invalid_utf8("ok \xff\xfe end"))
      assert.same("\u{FFFD}\u{FFFD}x", json.replace_invalid_utf8("\xe2\x82x"))
      assert.same("é😀\0", json.replace_invalid_utf8("é😀\0"))
      assert.same("", json.replace_invalid_utf8(""))
    end)

    it("gives what encode writes with invalid_utf8 = 'replace'", function()
      for _, s in ipairs({ "a\xffb", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc2", "ok" }) do
        assert.same(json.replace_invalid_utf8(s), json.decode(json.encode(s, { invalid_utf8 = "replace" })))
      end
    end)
  end)
end)
