-- `make install DESTDIR=...`: the binary, the LuaLS stubs (where `slipway
-- version --meta` finds them), the man page, and bash/zsh completion that
-- knows the commands, flags, task names and parameters of the pipeline in
-- the current directory.
local H = require("support.pipeline_helper")
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

local PIPELINE = [[
param.choice("environment", { "production", "staging", "development" }, "production")
param.bool("deploy_frontend", true)
param.string("region", "eu-west-1")
task("build", { matrix = { "api", "web" } }, function(name, p) end)
task("deploy", { needs = "build" }, function(p) end)
task("frontend", { needs = "deploy", when = "deploy_frontend" }, function(p) end)
]]

local PREFIX = "/usr/local"

-- Install into a fresh DESTDIR; -> the DESTDIR.
local function install()
  local dest = H.project {}
  local r = assert(proc.run({ "make", "-s", "-C", repo.ROOT, "install", "DESTDIR=" .. dest, "PREFIX=" .. PREFIX,
    "INSTALL_BIN=" .. H.slipway }, { timeout = "60s" }))
  assert.same(0, r.code, r.stdout .. r.stderr)
  return dest
end

local function sorted_lua_files(dir)
  local list = {}
  for _, name in ipairs(assert(fs.list(dir))) do
    if name:match("%.lua$") then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

-- The candidates a completion run printed, one a line: sorted.
local function offered(r)
  assert.same(0, r.code, r.stderr)
  local list = {}
  for c in r.stdout:gmatch("[^\n]+") do list[#list + 1] = c end
  table.sort(list)
  return list
end

-- Run bash's completion function for the line typed so far (the cursor at
-- its end) in dir, with the installed slipway first on PATH. -> the
-- candidates, sorted.
local function bash_complete(dest, dir, line)
  local script = [=[
    source "$COMPLETION" || exit 9
    COMP_LINE=$1
    COMP_POINT=${#COMP_LINE}
    read -r -a COMP_WORDS <<< "$COMP_LINE"
    [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _slipway slipway "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
  ]=]
  local r = assert(proc.run({ "bash", "-c", script, "bash", line }, { cwd = dir, env = {
    PATH = dest .. PREFIX .. "/bin:" .. os.getenv("PATH"),
    COMPLETION = dest .. PREFIX .. "/share/bash-completion/completions/slipway",
  } }))
  return offered(r)
end

describe("make install", function()
  leaks.check()
  after_each(H.cleanup)

  it("installs the binary, the stubs where version --meta finds them, the man page and completion", function()
    local dest = install()
    local root = dest .. PREFIX
    for _, path in ipairs { "/bin/slipway", "/share/man/man1/slipway.1",
        "/share/bash-completion/completions/slipway", "/share/zsh/site-functions/_slipway" } do
      assert.is_true(fs.exists(root .. path), path)
    end
    assert.same(sorted_lua_files(repo.ROOT .. "/docs/meta"), sorted_lua_files(root .. "/share/slipway/meta"))
    local r = assert(proc.run({ root .. "/bin/slipway", "version", "--meta" }, { env = { SLIPWAY_SRC = false } }))
    assert.same({ 0, fs.realpath(root .. "/share/slipway/meta") .. "\n" }, { r.code, r.stdout })
    -- with no stubs next to it: exit 1, saying where they belong
    assert(fs.remove(root .. "/share/slipway", { recursive = true }))
    r = assert(proc.run({ root .. "/bin/slipway", "version", "--meta" }, { env = { SLIPWAY_SRC = false } }))
    assert.same(1, r.code)
    assert.matches("PREFIX/share/slipway/meta", r.stderr, 1, true)
  end)

  it("installs a man page that renders cleanly and names every command", function()
    local dest = install()
    local page = dest .. PREFIX .. "/share/man/man1/slipway.1"
    local r = assert(proc.run({ "groff", "-man", "-Tutf8", "-ww", "-z", page }))
    assert.same({ 0, "" }, { r.code, r.stderr })
    local text = fs.read(page)
    local missing = {}
    for _, name in ipairs(require("slipway.cli").COMMANDS) do
      if not text:find("\n.BR " .. name .. " ", 1, true) then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("registers a bash completion that completes commands, flags, tasks and parameters", function()
    local dest = install()
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local r = assert(proc.run({ "bash", "-c", 'source "$1" && complete -p slipway', "bash",
      dest .. PREFIX .. "/share/bash-completion/completions/slipway" }))
    assert.same({ 0, "complete -F _slipway slipway\n" }, { r.code, r.stdout })

    assert.same({ "plan", "probe" }, bash_complete(dest, dir, "slipway p"))
    assert.same({ "--env", "--force", "--help", "--json", "--no-cache", "--only", "--skip" },
      bash_complete(dest, dir, "slipway plan --"))
    assert.same({ "development", "production", "staging" }, bash_complete(dest, dir, "slipway run --env "))
    assert.same({ "build", "build[api]", "build[web]", "deploy", "frontend" },
      bash_complete(dest, dir, "slipway run --only "))
    -- a list goes on after its comma: bash replaces the whole word
    assert.same({ "build,deploy" }, bash_complete(dest, dir, "slipway plan --skip build,d"))
    assert.same({ "deploy_frontend=", "environment=", "region=" }, bash_complete(dest, dir, "slipway run -p "))
    -- bash replaces only what follows the '=' (COMP_WORDBREAKS)
    assert.same({ "false", "true" }, bash_complete(dest, dir, "slipway run -p deploy_frontend="))
    assert.same({ "staging" }, bash_complete(dest, dir, "slipway plan -p environment=st"))
    assert.same({ "config" }, bash_complete(dest, dir, "slipway compose c"))
    assert.same({ "down", "status", "up" }, bash_complete(dest, dir, "slipway sandbox "))
    -- rollback: its flags, the environments; lock: its subcommands, the pipeline after them
    assert.same({ "--dry-run" }, bash_complete(dest, dir, "slipway rollback --d"))
    assert.same({ "--to" }, bash_complete(dest, dir, "slipway rollback --t"))
    assert.same({ "--validate" }, bash_complete(dest, dir, "slipway rollback --v"))
    assert.same({ "development", "production", "staging" }, bash_complete(dest, dir, "slipway rollback --to 1a2b --env "))
    assert.same({ "local", "swarm" }, bash_complete(dest, dir, "slipway rollback --ledger "))
    assert.same({ "acquire", "release", "status" }, bash_complete(dest, dir, "slipway lock "))
    assert.same({ "production" }, bash_complete(dest, dir, "slipway lock status --env p"))
    -- file names where a file goes
    assert.same({ "deploy.lua" }, bash_complete(dest, dir, "slipway plan dep"))
    -- no pipeline here: no parameters, no error
    assert.same({}, bash_complete(dest, H.project {}, "slipway run -p "))
  end)

  it("has a zsh completion that zsh reads, fed by the same candidates", function()
    local dest = install()
    local file = dest .. PREFIX .. "/share/zsh/site-functions/_slipway"
    local r = assert(proc.run({ "zsh", "-n", file }))
    assert.same({ 0, "" }, { r.code, r.stderr })
    assert.matches("#compdef slipway\n", fs.read(file))
    -- Run it as zsh's completion system would, with compadd and _files
    -- standing in for zsh's own: -> what it offers, sorted.
    local dir = H.project { ["deploy.lua"] = PIPELINE }
    local function zsh_complete(...)
      local script = [=[
        compadd() {
          local skip=0 a
          for a in "$@"; do
            if (( skip )); then skip=0; continue; fi
            case $a in -S) skip=1 ;; -Q|--) ;; *) print -r -- "$a" ;; esac
          done
        }
        _files() { print -r -- "(files)" }
        words=(slipway "$@")
        CURRENT=${#words}
        source "$COMPLETION"
      ]=]
      local res = assert(proc.run({ "zsh", "-f", "-c", script, "zsh", ... }, { cwd = dir, env = {
        PATH = dest .. PREFIX .. "/bin:" .. os.getenv("PATH"), COMPLETION = file } }))
      return offered(res)
    end
    assert.same({ "(files)", "plan", "probe" }, zsh_complete("p"))      -- a script may come first too
    -- zsh does not split words at '=': the candidates keep their names
    assert.same({ "environment=staging" }, zsh_complete("plan", "-p", "environment=st"))
    assert.same({ "build", "build[api]", "build[web]", "deploy", "frontend" }, zsh_complete("run", "--only", ""))
    assert.same({ "(files)" }, zsh_complete("compose", "config", "-c", ""))
  end)
end)
