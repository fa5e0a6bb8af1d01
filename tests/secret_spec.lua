-- slipway.secret: values that print as *** and are remembered for masking.
local secret = require("slipway.secret")
local leaks = require("support.leaks")

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
end)
