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

    it("rejects invalid UTF-8 and NUL escapes with their position", function()
      assert.same({ nil, "json: invalid UTF-8 at byte 3", "EJSON" }, { json.decode('["\xff"]') })
      assert.same({ nil, "json: invalid UTF-8 at byte 2", "EJSON" }, { json.decode('"\xed\xa0\x80"') })
      assert.same({ nil, "json: \\u0000 in a string is not supported at byte 3", "EJSON" },
        { json.decode('"a\\u0000b"') })
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
  end)
end)
