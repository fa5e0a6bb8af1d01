-- The build context tar (slipway._docker.tar_context, behind docker.build)
-- at the file level: no Docker engine needed. The engine-side tests of the
-- context are in docker_image_spec.lua.
local native = require("slipway._docker")
local task = require("slipway.task")
local proc = require("slipway.proc")
local fs = require("slipway.fs")
local leaks = require("support.leaks")

local function tar_context(dir, opts)
  return task.spawn(native.tar_context, dir, opts):join()
end

-- The entry names of a tar, sorted ("link -> target" for symlinks), and
-- tar's verbose listing.
local function listing(tar)
  local r = assert(proc.run({ "tar", "-tvf", tar }))
  local names = {}
  for line in r.stdout:gmatch("[^\n]+") do
    names[#names + 1] = line:match(" (%S+ %-> %S+)$") or line:match("(%S+)$")
  end
  table.sort(names)
  return names, r.stdout
end

local function symlink(target, link)
  assert.same(0, proc.run({ "ln", "-s", target, link }).code)
end

describe("docker build context tar", function()
  leaks.check()
  local dir, out
  before_each(function()
    dir = assert(fs.tempdir("context-spec-"))
    out = dir .. "/context.tar"
  end)
  after_each(function() assert(fs.remove(dir, { recursive = true })) end)

  it("writes the context in a tar, honouring the excludes, owned by 0:0", function()
    local ctx = dir .. "/ctx"
    for _, d in ipairs({ "/src/deep", "/node_modules/x", "/logs" }) do fs.mkdir(ctx .. d) end
    fs.write(ctx .. "/Dockerfile", "FROM scratch\n")
    fs.write(ctx .. "/src/main.c", "int main;\n")
    fs.write(ctx .. "/src/deep/a.log", "log\n")
    fs.write(ctx .. "/node_modules/x/i.js", "x\n")
    fs.write(ctx .. "/logs/keep.log", "k\n")
    fs.write(ctx .. "/logs/drop.log", "d\n")
    symlink("src/main.c", ctx .. "/link")
    assert.same(0, proc.run({ "chmod", "750", ctx .. "/src/main.c" }).code)
    local excludes = { "**/*.log", "!logs/keep.log", "node_modules", "Dockerfile", "!Dockerfile" }
    local res = tar_context(ctx, { excludes = excludes, out = out })
    assert.same({ files = 3, bytes = 13 + 10 + 2 }, { files = res.files, bytes = res.bytes })
    local names, text = listing(out)
    assert.same({ "Dockerfile", "link -> src/main.c", "logs/", "logs/keep.log", "src/", "src/deep/", "src/main.c" }, names)
    assert.matches("%-rwxr%-x%-%-%- 0/0 +10 [^\n]+src/main.c", text)
  end)

  it("fails with the reason when the directory is missing", function()
    assert.same({ nil, "docker.tar_context: " .. dir .. "/nope: No such file or directory", "ENOENT" },
      { tar_context(dir .. "/nope", { out = out }) })
    assert.is_false(fs.exists(out))
    fs.write(dir .. "/file", "x")
    assert.same({ nil, "docker.tar_context: " .. dir .. "/file: not a directory", "ENOTDIR" },
      { tar_context(dir .. "/file", { out = out }) })
  end)

  it("refuses unknown options; without out it writes nothing and gives the digest", function()
    assert.matches("unknown option 'exclude'", select(2, pcall(native.tar_context, dir, { exclude = {}, out = "x" })))
    fs.mkdir(dir .. "/ctx")
    fs.write(dir .. "/ctx/f", "x")
    local walked = tar_context(dir .. "/ctx", {})
    local written = tar_context(dir .. "/ctx", { out = out })
    assert.same({ walked.files, walked.bytes, walked.digest }, { written.files, written.bytes, written.digest })
    assert.matches("^sha256:%x+$", walked.digest)
  end)

  it("takes empty directories, an empty context too", function()
    fs.mkdir(dir .. "/ctx/empty")
    fs.mkdir(dir .. "/ctx/a/b/c")
    fs.write(dir .. "/ctx/a/f", "x")
    local res = tar_context(dir .. "/ctx", { out = out })
    assert.same({ 1, 1 }, { res.files, res.bytes })
    assert.same({ "a/", "a/b/", "a/b/c/", "a/f", "empty/" }, listing(out))
    fs.mkdir(dir .. "/none")
    res = tar_context(dir .. "/none", { out = out })
    assert.same({ 0, 0 }, { res.files, res.bytes })
    assert.same({}, listing(out))
  end)

  it("keeps symlinks as symlinks and skips what is not a file", function()
    fs.mkdir(dir .. "/ctx")
    fs.write(dir .. "/secret", "SECRET-DATA\n")
    symlink(dir .. "/secret", dir .. "/ctx/link")
    assert.same(0, proc.run({ "mkfifo", dir .. "/ctx/fifo" }).code)
    local res = tar_context(dir .. "/ctx", { out = out })
    assert.same({ 0, 0 }, { res.files, res.bytes })
    assert.same({ "link -> " .. dir .. "/secret" }, listing(out))
    assert.is_nil(fs.read(out):find("SECRET-DATA", 1, true))
  end)

  it("never follows an entry swapped for a symlink while it writes", function()
    -- 20 files and 20 directories of the context change places, again and
    -- again, with symlinks (kept outside the context) to a secret file and
    -- a secret directory. Each run must leave the secret out: it either
    -- writes what lstat saw or fails with ECHANGED.
    local bin = dir .. "/swap_entries"
    assert.same(0, proc.run({ "cc", "-O2", "-o", bin, "tests/support/swap_entries.c" }).code)
    fs.mkdir(dir .. "/secret")
    fs.write(dir .. "/secret/key.txt", "SECRET-DATA\n")
    fs.mkdir(dir .. "/alt")
    local pairs_ = { bin }
    for i = 1, 20 do
      local f, d = dir .. "/ctx/f" .. i, dir .. "/ctx/d" .. i
      fs.mkdir(d)
      fs.write(d .. "/key.txt", "public-data\n")
      fs.write(f, "public-data\n")
      symlink(dir .. "/secret/key.txt", dir .. "/alt/f" .. i)
      symlink(dir .. "/secret", dir .. "/alt/d" .. i)
      for _, p in ipairs({ f, dir .. "/alt/f" .. i, d, dir .. "/alt/d" .. i }) do pairs_[#pairs_ + 1] = p end
    end
    local swapper = assert(proc.spawn(pairs_))
    finally(function()
      swapper:kill("SIGKILL")
      swapper:wait()
    end)
    local changed, kept = 0, {}   -- kept: the distinct numbers of public files in the tars
    for _ = 1, 30 do
      local res, msg, code = tar_context(dir .. "/ctx", { out = out })
      if res then
        local tar = fs.read(out)
        assert.is_nil(tar:find("SECRET-DATA", 1, true), "the secret is in the tar")
        kept[select(2, tar:gsub("public%-data", ""))] = true
      else
        assert.same("ECHANGED", code, msg)
        assert.matches("changed while the context was written", msg)
        changed = changed + 1
      end
    end
    -- the swaps did happen while tars were written
    local distinct = 0
    for _ in pairs(kept) do distinct = distinct + 1 end
    assert.is_true(changed > 0 or distinct > 1, "the swaps never hit")
  end)

  it("raises on a directory name with a NUL byte", function()
    local ok, err = pcall(native.tar_context, dir .. "\0/etc", { out = out })
    assert.is_false(ok)
    assert.matches("^tests/build_context_spec.lua:%d+: docker.tar_context: dir contains a NUL byte", err)
  end)
end)
