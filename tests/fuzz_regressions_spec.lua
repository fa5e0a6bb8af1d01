-- Fuzz regressions: every input the libFuzzer targets (tests/fuzz/) found
-- a bug with, and every seed, replayed through the same property checks
-- (tests/fuzz/checks.lua) without libFuzzer, so a fixed bug stays fixed in
-- the ordinary suite. The named cases below pin the fixed behaviour itself.
local fs = require("slipway.fs")
local yaml = require("slipway.yaml")
local compose = require("slipway.compose")
local interpolate = require("slipway.compose.interpolate")
local checks = dofile("tests/fuzz/checks.lua")

local TARGETS = { "yaml", "interpolate", "compose", "json" }

local function inputs(kind, target)
  local dir = ("tests/fuzz/%s/%s"):format(kind, target)
  if not fs.exists(dir) then return {} end
  local out = {}
  for _, name in ipairs(fs.list(dir)) do
    if not name:match("^%.") then out[#out + 1] = dir .. "/" .. name end
  end
  return out
end

describe("fuzz regressions", function()
  local tmp
  setup(function()
    tmp = fs.tempdir("fuzz-regressions")
    FUZZ_TMPDIR = tmp
  end)
  teardown(function()
    FUZZ_TMPDIR = nil
    fs.remove(tmp, { recursive = true })
  end)

  for _, target in ipairs(TARGETS) do
    describe(target, function()
      for _, kind in ipairs({ "regressions", "seeds" }) do
        for _, path in ipairs(inputs(kind, target)) do
          it(path, function()
            checks[target](fs.read(path))
          end)
        end
      end
    end)
  end

  -- found by tests/fuzz/differential.sh (docker stack config vs slipway on
  -- interpolation templates): Go's (?i)[_a-z] folds U+017F and U+212A
  describe("interpolation of names docker's case folding accepts", function()
    local vars = { ["\u{17F}"] = "long-s", ["A\u{212A}"] = "kelvin", A = "a" }
    local function lookup(name) return vars[name] end

    it("reads U+017F and U+212A as name letters, braced or not", function()
      assert.same({ "long-s" }, { interpolate.substitute("$\u{17F}", lookup) })
      assert.same({ "long-s" }, { interpolate.substitute("${\u{17F}}", lookup) })
      assert.same({ "kelvin!" }, { interpolate.substitute("$A\u{212A}!", lookup) })
      assert.same({ "def" }, { interpolate.substitute("${\u{17F}x:-def}", lookup) })
      assert.same({ "a" }, { interpolate.substitute("$A-x", lookup) })       -- "${A-x}"
    end)

    it("still rejects other non-ASCII letters and a leading digit", function()
      assert.same({ nil, "$\u{141}" }, { interpolate.substitute("$\u{141}", lookup) })
      assert.same({ nil, "${\u{E9}}" }, { interpolate.substitute("${\u{E9}}", lookup) })
      assert.same({ nil, "$1\u{17F}" }, { interpolate.substitute("$1\u{17F}", lookup) })
    end)
  end)

  describe("the checks themselves", function()
    it("raise INTERNAL when the code under test raises", function()
      local real = interpolate.substitute
      interpolate.substitute = function() error("attempt to index a nil value (local 'x')", 0) end
      local ok, err = pcall(checks.interpolate, "${A}")
      interpolate.substitute = real
      assert.same({ false, "INTERNAL: substitute raised: attempt to index a nil value (local 'x')" }, { ok, err })
      assert.same({ true }, { pcall(checks.interpolate, "${A}") })
    end)

    it("raise INTERNAL when a rejection does not name the file", function()
      local real = compose.try_load
      compose.try_load = function() return nil, "something failed", "ECOMPOSE" end
      local ok, err = pcall(checks.compose, "services: {web: {image: x}}\n")
      compose.try_load = real
      assert.same({ false, "INTERNAL: the error does not name the file: something failed" }, { ok, err })
    end)

    it("compare decoded values with key order", function()
      local a = yaml.decode("a: 1\nb: 2\n")
      local b = yaml.decode("b: 2\na: 1\n")
      assert.same({ false, "$ (key order)" }, { checks.same(a, b, "$") })
      assert.same({ true }, { checks.same(a, yaml.decode("{a: 1.0, b: 2}"), "$") })
    end)
  end)
end)
