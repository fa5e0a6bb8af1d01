-- slipway.git: facts about the git checkout a pipeline runs from.
--
--   git.sha()         -- "3f2a9c..." (40 hex digits) of HEAD
--   git.short_sha()   -- "3f2a9c1" (git's own abbreviation, unique in the repo)
--   git.branch()      -- "main"; on a detached HEAD the CI's branch name
--                     -- (GITHUB_HEAD_REF, GITHUB_REF_NAME, CI_COMMIT_REF_NAME)
--                     -- or nil
--   git.head()        -- { sha =, branch = } with one git process
--   git.dirty()       -- true when tracked files differ from HEAD (changed
--                     -- or staged; untracked files do not count)
--   opts: { cwd = "path" } (default: the current directory)
--
-- Reading git is not a side effect, so these work at the top level of a
-- pipeline too: there (outside tasks) git runs as a blocking child, inside a
-- task through slipway.proc without blocking other tasks. Outside a
-- repository they raise "git.sha: <git's message>".
local task = require("slipway.task")

local M = {}

local caller = require("slipway.caller")
local shell_quote = require("slipway.words").shell_quote

local OPTIONS = { "cwd" }

local function check_opts(fname, opts)
  caller.check_options(fname, opts, OPTIONS)
  if opts and opts.cwd ~= nil and type(opts.cwd) ~= "string" then
    error(caller.where() .. ("%s: cwd must be a string, got %s"):format(fname, type(opts.cwd)), 0)
  end
  return opts or {}
end

-- git(args...) -> trimmed stdout | raises "fname: message"
local function git(fname, opts, ...)
  local args = { ... }
  local out, ok, errtext
  if task.current() then
    local proc = require("slipway.proc")
    local argv = { "git" }
    if opts.cwd then argv[#argv + 1] = "-C"; argv[#argv + 1] = opts.cwd end
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local r, msg = proc.run(argv, { stdout = "capture", stderr = "capture", timeout = 30 })
    if r == nil then error(("%s: %s"):format(fname, msg), 3) end
    out, ok, errtext = r.stdout or "", r.code == 0, r.stderr or ""
  else
    local words = { "git" }
    if opts.cwd then words[#words + 1] = "-C " .. shell_quote(opts.cwd) end
    for _, a in ipairs(args) do words[#words + 1] = shell_quote(a) end
    -- (the real io.popen: reading git is allowed while a pipeline loads)
    local p = require("slipway.guard").real.popen(table.concat(words, " ") .. " 2>&1", "r")
    out = p:read("a")
    ok = p:close()
    errtext = out
  end
  if not ok then
    local first = errtext:match("^%s*([^\n]+)") or "git failed"
    error(("%s: %s"):format(fname, first), 3)
  end
  return (out:gsub("%s+$", ""))
end

function M.sha(opts)
  return git("git.sha", check_opts("git.sha", opts), "rev-parse", "HEAD")
end

function M.short_sha(opts)
  return git("git.short_sha", check_opts("git.short_sha", opts), "rev-parse", "--short", "HEAD")
end

local function branch_name(name)
  if name ~= "HEAD" then return name end
  for _, var in ipairs({ "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME" }) do
    local v = os.getenv(var)
    if v and v ~= "" then return v end
  end
  return nil
end

function M.branch(opts)
  return branch_name(git("git.branch", check_opts("git.branch", opts), "rev-parse", "--abbrev-ref", "HEAD"))
end

function M.dirty(opts)
  return git("git.dirty", check_opts("git.dirty", opts), "status", "--porcelain", "--untracked-files=no") ~= ""
end

function M.head(opts)
  local out = git("git.head", check_opts("git.head", opts), "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
  local sha, name = out:match("^(%x+)\n(.+)$")
  if sha == nil then error("git.head: unexpected output from git rev-parse: " .. out, 2) end
  return { sha = sha, branch = branch_name(name) }
end

return M
