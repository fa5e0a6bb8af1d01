-- The guides a new user follows use commands and flags that exist: every
-- `slipway COMMAND ... --flag` line in their shell blocks names a command
-- `slipway help` lists (or one another change is adding, listed below) and
-- flags its help text names; every guide the README links to exists.
local fs = require("slipway.fs")
local leaks = require("support.leaks")
local repo = require("support.repo")

local GUIDES = { "README.md", "docs/getting-started.md", "docs/migration.md", "docs/sandbox.md", "docs/pipeline.md" }

-- Commands the guides describe by their contract while another branch
-- builds them: { name = "the issue: its usage" }; an entry is stale once
-- the command exists. (None now: rollback, issue 10, exists.)
local PENDING = {}

local function command_help(name)
  local mod = ({ init = "scaffold" })[name] or name
  local ok, m = pcall(require, "slipway.cmd." .. mod)
  return ok and type(m) == "table" and m.help or nil
end

-- {file, line, command, flags} of each `slipway ...` command line in the
-- shell blocks of a guide.
local function command_lines(path)
  local list, in_sh, n = {}, false, 0
  for line in (fs.read(repo.ROOT .. "/" .. path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*```sh") then in_sh = true
    elseif line:match("^%s*```") then in_sh = false
    elseif in_sh then
      local rest = line:gsub("#.*$", ""):match("slipway%s+(.*)$")
      if rest then
        local words = {}
        for w in rest:gmatch("%S+") do words[#words + 1] = w end
        local command = words[1]
        if command and command:match("^%a+$") then
          local flags = {}
          for _, w in ipairs(words) do
            local f = w:match("^(%-%-?[%a][%w-]*)")
            if f then flags[#flags + 1] = f end
          end
          list[#list + 1] = { file = path, line = n, command = command, flags = flags }
        end
      end
    end
  end
  return list
end

describe("the guides", function()
  leaks.check()

  it("use commands and flags that exist", function()
    local commands = {}
    for _, name in ipairs(require("slipway.cli").COMMANDS) do commands[name] = true end
    local wrong, checked = {}, 0
    for _, path in ipairs(GUIDES) do
      for _, c in ipairs(command_lines(path)) do
        checked = checked + 1
        local where = ("%s:%d: slipway %s"):format(c.file, c.line, c.command)
        if not commands[c.command] and not PENDING[c.command] then
          wrong[#wrong + 1] = where .. ": no such command"
        elseif commands[c.command] then
          local help = command_help(c.command) or ""
          for _, f in ipairs(c.flags) do
            if f ~= "--help" and not help:find(f, 1, true) then
              wrong[#wrong + 1] = where .. ": its help names no " .. f
            end
          end
        end
      end
    end
    assert.same({}, wrong)
    assert.is_true(checked > 20)
  end)

  it("describe by contract only commands that do not exist yet", function()
    local stale = {}
    for _, name in ipairs(require("slipway.cli").COMMANDS) do
      if PENDING[name] then stale[#stale + 1] = name end
    end
    assert.same({}, stale)
  end)

  it("linked from the README exist", function()
    local missing = {}
    for target in fs.read(repo.ROOT .. "/README.md"):gmatch("%]%(([%w_./-]+%.md)%)") do
      if not fs.exists(repo.ROOT .. "/" .. target) then missing[#missing + 1] = target end
    end
    assert.same({}, missing)
  end)
end)
