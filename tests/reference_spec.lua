-- docs/reference.md is what tools/gen-reference makes of the LuaLS
-- definitions (docs/meta/) and the commands' help: regenerated, it is the
-- same, and every stubbed function and command is in it.
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

local GEN = repo.ROOT .. "/tools/gen-reference"

local function check(file)
  return assert(proc.run({ GEN, "--check", file }, { env = { SLIPWAY = os.getenv("SLIPWAY") } }))
end

describe("docs/reference.md", function()
  leaks.check()

  it("is the output of tools/gen-reference", function()
    local r = check()
    assert.same({ 0, "" }, { r.code, r.stderr })
  end)

  it("is found stale when it differs", function()
    local dir = assert(fs.tempdir("slipway-reference-"))
    local text = fs.read(repo.ROOT .. "/docs/reference.md")
    assert(fs.write(dir .. "/reference.md", (text:gsub("#### `proc.run%(cmd, opts%)`", "#### `proc.run(cmd)`"))))
    local r = check(dir .. "/reference.md")
    assert(fs.remove(dir, { recursive = true }))
    assert.same(1, r.code)
    assert.matches("is not the output of tools/gen-reference", r.stderr, 1, true)
  end)

  it("has every stubbed function and every command", function()
    local text = fs.read(repo.ROOT .. "/docs/reference.md")
    local missing = {}
    for _, file in ipairs(assert(fs.list(repo.ROOT .. "/docs/meta"))) do
      for name in (fs.read(repo.ROOT .. "/docs/meta/" .. file) or ""):gmatch("\nfunction ([%w_.]+)%(") do
        if not text:find("#### `" .. name .. "(", 1, true) then missing[#missing + 1] = file .. ": " .. name end
      end
    end
    for _, name in ipairs(require("slipway.cli").COMMANDS) do
      if name ~= "help" and not text:find("\n### slipway " .. name .. "\n", 1, true) then
        missing[#missing + 1] = "command " .. name
      end
    end
    assert.same({}, missing)
  end)
end)
