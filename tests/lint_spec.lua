-- The project's own Lua is luacheck-clean (Debian's lua-check, configured
-- by .luacheckrc): `make lint` runs the same check. Counted here so that
-- CI's closing "N passed, N failed" line includes it.
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

describe("luacheck", function()
  leaks.check()

  it("finds nothing in lua/, stdlib/, tests/ and tools/", function()
    local r = assert(proc.run({ "make", "-s", "-C", repo.ROOT, "lint" }, { timeout = "5m" }))
    assert.same({ 0, "" }, { r.code, r.stdout }, r.stderr)
  end)

  it("would report what it finds", function()
    local fs = require("slipway.fs")
    local dir = assert(fs.tempdir("slipway-lint-"))
    assert(fs.write(dir .. "/bad.lua", "local unused = 1\nreturn undefined_global\n"))
    local r = assert(proc.run({ "luacheck", "--config", repo.ROOT .. "/.luacheckrc", "--formatter", "plain",
      dir .. "/bad.lua" }))
    assert(fs.remove(dir, { recursive = true }))
    assert.same(1, r.code)
    assert.matches("unused variable 'unused'", r.stdout, 1, true)
    assert.matches("accessing undefined variable 'undefined_global'", r.stdout, 1, true)
  end)
end)
