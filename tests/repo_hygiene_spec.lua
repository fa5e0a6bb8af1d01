-- The repository names no place outside itself: no tracked file mentions
-- the directory the checkout sits in (on a development machine, where the
-- shared corpus and notes live); specs and benchmarks reach ../shared
-- through support.repo, from their own path.
local fs = require("slipway.fs")
local proc = require("slipway.proc")
local leaks = require("support.leaks")
local repo = require("support.repo")

-- Lines still to be fixed by the change that is rewriting their file: a
-- hit there is allowed while the line is there, and an entry whose line
-- is gone fails, so that it is removed with the fix.
local KNOWN = {
}

local function tracked_files()
  local r = assert(proc.run({ "git", "-C", repo.ROOT, "ls-files", "-z" }))
  assert.same(0, r.code, r.stderr)
  local files = {}
  for path in r.stdout:gmatch("[^%z]+") do files[#files + 1] = path end
  return files
end

-- {file, line, text} for every line of files (paths under root) that names
-- dir as a whole path segment: /srv/x or /srv, not /srvdata or
-- /home/u/srv.
local function lines_naming(root, files, dir)
  local hits = {}
  for _, path in ipairs(files) do
    local text = fs.read(root .. "/" .. path)
    local n = 0
    for line in (text or ""):gmatch("([^\n]*)\n?") do
      n = n + 1
      local from = 1
      while true do
        local s, e = line:find(dir, from, true)
        if not s then break end
        local before, after = line:sub(s - 1, s - 1), line:sub(e + 1, e + 1)
        if not before:match("[%w_.]") and not after:match("[%w_.-]") then
          hits[#hits + 1] = { file = path, line = n, text = line }
          break
        end
        from = e + 1
      end
    end
  end
  return hits
end

describe("the repository", function()
  leaks.check()

  it("names no path in the directory that holds it", function()
    assert.is_true(repo.PARENT ~= "/", "the checkout is at the top of the file system")
    local files = tracked_files()
    assert.is_true(#files > 100)
    local found, used = {}, {}
    for _, hit in ipairs(lines_naming(repo.ROOT, files, repo.PARENT)) do
      local known = false
      for i, k in ipairs(KNOWN) do
        if hit.file == k.file and hit.text:find(k.text, 1, true) then known, used[i] = true, true end
      end
      if not known then found[#found + 1] = ("%s:%d: %s"):format(hit.file, hit.line, hit.text) end
    end
    assert.same({}, found)
    local stale = {}
    for i, k in ipairs(KNOWN) do
      if not used[i] then stale[#stale + 1] = k.file .. ": " .. k.text end
    end
    assert.same({}, stale)
  end)

  it("finds lines that name a directory only as a whole path segment", function()
    local dir = assert(fs.tempdir("slipway-hygiene-"))
    local name = dir:match("[^/]+$")
    local text = table.concat({
      "a " .. dir .. "/x",                         -- 1: hit
      "cd " .. dir,                                -- 2: hit
      "a " .. dir .. "more/x",                     -- 3: another directory
      "a /elsewhere" .. dir .. "/x",               -- 4: inside another path
      "a " .. name .. "/x",                        -- 5: relative
      "X=${Y:-" .. dir .. "/x}",                   -- 6: hit
    }, "\n")
    assert(fs.write(dir .. "/f.txt", text))
    local ok, hits = pcall(lines_naming, dir, { "f.txt" }, dir)
    assert(fs.remove(dir, { recursive = true }))
    assert(ok, hits)
    local lines = {}
    for i, h in ipairs(hits) do lines[i] = h.line end
    assert.same({ 1, 2, 6 }, lines)
  end)

  -- `make install` installs the binary alone: it must name nothing of the
  -- checkout it was built in (debug information included).
  it("builds a binary that names no path of the checkout", function()
    local binary = assert(fs.read(assert(os.getenv("SLIPWAY"), "run through tests/run")))
    assert.is_nil(binary:find(repo.ROOT, 1, true))
  end)

  it("is found by support.repo from any working directory", function()
    local r = assert(proc.run({ assert(os.getenv("SLIPWAY"), "run through tests/run"), "-e",
      'io.write(require("support.repo").ROOT)' },
      { cwd = "/", env = { LUA_PATH = repo.ROOT .. "/tests/?.lua;;" } }))
    assert.same({ 0, repo.ROOT }, { r.code, r.stdout })
    assert.same(repo.ROOT .. "/tests/repo_hygiene_spec.lua",
      fs.realpath(debug.getinfo(1, "S").source:sub(2)))
  end)
end)
