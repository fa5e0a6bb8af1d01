local fs = require("slipway.fs")
local leaks = require("support.leaks")

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

describe("fs", function()
  -- busted leaves files it has read for the collector to close: do it now,
  -- before the first fd snapshot
  setup(function() collectgarbage() collectgarbage() end)
  leaks.check()

  local dir
  before_each(function() dir = assert(fs.tempdir("fs-spec-")) end)
  after_each(function() assert(fs.remove(dir, { recursive = true })) end)

  describe("read/write/append", function()
    it("writes, reads back and appends", function()
      local p = dir .. "/f.txt"
      assert.same(true, fs.write(p, "hello\0binary\n"))
      assert.same("hello\0binary\n", fs.read(p))
      assert.same(true, fs.append(p, "more"))
      assert.same("hello\0binary\nmore", fs.read(p))
      assert.same(true, fs.write(p, "x"))
      assert.same("x", fs.read(p))
    end)

    it("appends to a file that does not exist yet", function()
      assert.same(true, fs.append(dir .. "/new", "a"))
      assert.same("a", fs.read(dir .. "/new"))
    end)

    it("reads a large file whole", function()
      local data = string.rep("abcdefgh", 200000)
      fs.write(dir .. "/big", data)
      assert.is_true(fs.read(dir .. "/big") == data)
    end)

    it("returns error triples", function()
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/none", "ENOENT" },
        { fs.read(dir .. "/none") })
      assert.same({ nil, "EISDIR: illegal operation on a directory: " .. dir, "EISDIR" },
        { fs.read(dir) })
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/no/f", "ENOENT" },
        { fs.write(dir .. "/no/f", "x") })
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/no/f", "ENOENT" },
        { fs.append(dir .. "/no/f", "x") })
    end)

    it("raises on bad arguments", function()
      assert.has_error(function() fs.write(dir .. "/f") end)
      assert.has_error(function() fs.read() end)
    end)
  end)

  describe("write_atomic", function()
    it("replaces the file and leaves no temp file behind", function()
      local p = dir .. "/state.json"
      assert.same(true, fs.write_atomic(p, "one"))
      assert.same(true, fs.write_atomic(p, "two"))
      assert.same("two", fs.read(p))
      assert.same({ "state.json" }, fs.list(dir))
    end)

    it("keeps the permission bits of the file it replaces", function()
      local p = dir .. "/script.sh"
      fs.write(p, "old")
      os.execute("chmod 0750 " .. p)
      fs.write_atomic(p, "new")
      assert.same({ "file", 3, tonumber("750", 8) }, { fs.stat(p).type, fs.stat(p).size, fs.stat(p).mode })
    end)

    it("never shows a torn file to a reader", function()
      local p = dir .. "/f"
      local a, b = string.rep("a", 1 << 20), string.rep("b", 1 << 20)
      fs.write_atomic(p, a)
      for i = 1, 5 do
        fs.write_atomic(p, i % 2 == 0 and a or b)
        local got = fs.read(p)
        assert.is_true(got == a or got == b)
      end
    end)

    it("returns an error triple when the directory is missing", function()
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/no/f", "ENOENT" },
        { fs.write_atomic(dir .. "/no/f", "x") })
      assert.same({ "" }, { table.concat(fs.list(dir)) })
    end)
  end)

  describe("mkdir", function()
    it("creates every missing parent and accepts an existing directory", function()
      assert.same(true, fs.mkdir(dir .. "/a/b/c"))
      assert.same(true, fs.mkdir(dir .. "/a/b/c"))
      assert.same(true, fs.mkdir(dir .. "/a/b/c/"))
      assert.same("directory", fs.stat(dir .. "/a/b/c").type)
    end)

    it("fails on a file in the way", function()
      fs.write(dir .. "/f", "")
      assert.same({ nil, "EEXIST: file already exists: " .. dir .. "/f", "EEXIST" }, { fs.mkdir(dir .. "/f") })
      assert.same({ nil, "ENOTDIR: not a directory: " .. dir .. "/f/x", "ENOTDIR" }, { fs.mkdir(dir .. "/f/x") })
    end)
  end)

  describe("remove", function()
    it("removes a file and an empty directory", function()
      fs.write(dir .. "/f", "")
      fs.mkdir(dir .. "/d")
      assert.same({ true, true }, { fs.remove(dir .. "/f"), fs.remove(dir .. "/d") })
      assert.same({}, fs.list(dir))
    end)

    it("refuses a non-empty directory unless recursive", function()
      fs.mkdir(dir .. "/d/e")
      fs.write(dir .. "/d/e/f", "")
      assert.same({ nil, "ENOTEMPTY: directory not empty: " .. dir .. "/d", "ENOTEMPTY" }, { fs.remove(dir .. "/d") })
      assert.same(true, fs.remove(dir .. "/d", { recursive = true }))
      assert.is_false(fs.exists(dir .. "/d"))
    end)

    it("removes a symlink without following it", function()
      fs.mkdir(dir .. "/keep")
      fs.write(dir .. "/keep/f", "x")
      fs.mkdir(dir .. "/d")
      os.execute(("ln -s %s/keep %s/d/link"):format(dir, dir))
      assert.same(true, fs.remove(dir .. "/d", { recursive = true }))
      assert.same("x", fs.read(dir .. "/keep/f"))
    end)

    it("returns ENOENT for a missing path", function()
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/x", "ENOENT" }, { fs.remove(dir .. "/x") })
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/x", "ENOENT" },
        { fs.remove(dir .. "/x", { recursive = true }) })
    end)

    it("rejects unknown options naming the caller", function()
      local line = debug.getinfo(1, "l").currentline; local ok, err = pcall(fs.remove, dir, { recurse = true })
      assert.same({ false, ("tests/fs_spec.lua:%d: fs.remove: unknown option 'recurse' (valid: recursive)"):format(line) }, { ok, err })
    end)
  end)

  describe("list", function()
    it("lists names sorted, dotfiles included", function()
      for _, n in ipairs({ "b", ".hidden", "a", "C" }) do fs.write(dir .. "/" .. n, "") end
      fs.mkdir(dir .. "/sub")
      assert.same({ ".hidden", "C", "a", "b", "sub" }, fs.list(dir))
    end)

    it("returns error triples", function()
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/x", "ENOENT" }, { fs.list(dir .. "/x") })
      fs.write(dir .. "/f", "")
      assert.same({ nil, "ENOTDIR: not a directory: " .. dir .. "/f", "ENOTDIR" }, { fs.list(dir .. "/f") })
    end)
  end)

  describe("stat and exists", function()
    it("describes files, directories and links", function()
      fs.write(dir .. "/f", "12345")
      os.execute("chmod 0640 " .. dir .. "/f")
      os.execute(("ln -s f %s/l"):format(dir))
      local st = fs.stat(dir .. "/f")
      assert.same({ "mode", "mtime", "size", "type" }, sorted_keys(st))
      assert.same({ "file", 5, tonumber("640", 8) }, { st.type, st.size, st.mode })
      assert.is_true(math.abs(st.mtime - os.time()) < 60)
      assert.same("directory", fs.stat(dir).type)
      assert.same("link", fs.stat(dir .. "/l").type)
      assert.same("file", fs.stat(dir .. "/l", { follow = true }).type)
      assert.same("char", fs.stat("/dev/null").type)
    end)

    it("returns an error triple for a missing path", function()
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/x", "ENOENT" }, { fs.stat(dir .. "/x") })
    end)

    it("exists follows links", function()
      fs.write(dir .. "/f", "")
      os.execute(("ln -s f %s/good; ln -s nothing %s/broken"):format(dir, dir))
      assert.same({ true, true, true, false, false },
        { fs.exists(dir), fs.exists(dir .. "/f"), fs.exists(dir .. "/good"),
          fs.exists(dir .. "/broken"), fs.exists(dir .. "/x") })
    end)
  end)

  describe("glob", function()
    before_each(function()
      for _, p in ipairs({ "a/x.c", "a/y.h", "a/b/z.c", "a/b/c/deep.c", "a/.hid/h.c", "a/.dot.c",
                           "top.c", "top.txt", "s1/svc_v2/Dockerfile", "s2/svc_v1/Dockerfile",
                           "s1/api_v2/Dockerfile" }) do
        fs.mkdir(fs.dirname(dir .. "/" .. p))
        fs.write(dir .. "/" .. p, "")
      end
    end)

    local function rel(list)
      local out = {}
      for i, p in ipairs(list) do out[i] = p:sub(#dir + 2) end
      return out
    end

    it("matches * ? and [...] within one segment, sorted", function()
      assert.same({ "top.c", "top.txt" }, rel(fs.glob(dir .. "/top.*")))
      assert.same({ "a/x.c", "a/y.h" }, rel(fs.glob(dir .. "/a/?.?")))
      assert.same({ "a/x.c" }, rel(fs.glob(dir .. "/a/[wx].[a-c]")))
      assert.same({ "a/b", "a/y.h" }, rel(fs.glob(dir .. "/a/[!x]*")))
      assert.same({ "s1/api_v2", "s1/svc_v2" }, rel(fs.glob(dir .. "/*/*_v2")))
    end)

    it("matches ** across any depth, zero directories included", function()
      assert.same({ "a/b/c/deep.c", "a/b/z.c", "a/x.c", "top.c" }, rel(fs.glob(dir .. "/**/*.c")))
      assert.same({ "a/b/c/deep.c", "a/b/z.c" }, rel(fs.glob(dir .. "/a/b/**/*.c")))
      assert.same({ "s1/api_v2/Dockerfile", "s1/svc_v2/Dockerfile", "s2/svc_v1/Dockerfile" },
        rel(fs.glob(dir .. "/**/Dockerfile")))
      assert.same({ "a/b/c", "a/b/c/deep.c", "a/b/z.c" }, rel(fs.glob(dir .. "/a/b/**")))
    end)

    it("skips dotfiles unless the pattern names them", function()
      assert.same({ "a/.dot.c" }, rel(fs.glob(dir .. "/a/.*.c")))
      assert.same({ "a/.hid/h.c" }, rel(fs.glob(dir .. "/a/.hid/*")))
    end)

    it("gives relative paths for relative patterns", function()
      assert.same({ "tests/fs_spec.lua" }, fs.glob("tests/fs_sp?c.lua"))
      assert.same({ "tests/support/leaks.lua" }, fs.glob("**/sup*/leaks.lua"))
    end)

    it("returns an empty list when nothing matches", function()
      assert.same({}, fs.glob(dir .. "/nothing/*"))
      assert.same({}, fs.glob(dir .. "/*.none"))
    end)
  end)

  describe("outside tasks", function()
    it("works in a plain coroutine (not a task)", function()
      local co = coroutine.wrap(function()
        fs.write(dir .. "/co", "plain")
        return fs.read(dir .. "/co"), fs.list(dir), fs.exists(dir .. "/co")
      end)
      assert.same({ "plain", { "co" }, true }, { co() })
    end)
  end)

  describe("paths", function()
    it("basename", function()
      assert.same({ "c.txt", "b", "/", "a", ".", "b" },
        { fs.basename("/a/b/c.txt"), fs.basename("/a/b/"), fs.basename("/"), fs.basename("a"),
          fs.basename(""), fs.basename("a//b") })
    end)

    it("dirname", function()
      assert.same({ "/a/b", "/a", "/", ".", ".", "/", "a" },
        { fs.dirname("/a/b/c.txt"), fs.dirname("/a/b/"), fs.dirname("/a"), fs.dirname("a"),
          fs.dirname(""), fs.dirname("/"), fs.dirname("a//b") })
    end)

    it("join", function()
      assert.same({ "a/b/c", "a/b", "/etc/x", "a", "/x/y" },
        { fs.join("a", "b", "c"), fs.join("a/", "b"), fs.join("a", "/etc", "x"), fs.join("a", ""),
          fs.join("/x", "y") })
      assert.has_error(function() fs.join() end, "fs.join: expected at least one path")
    end)

    it("realpath", function()
      fs.mkdir(dir .. "/r/s")
      os.execute(("ln -s r/s %s/link"):format(dir))
      local real = fs.realpath(dir)
      assert.same(real .. "/r/s", fs.realpath(dir .. "/link/../s/."))
      assert.same({ nil, "ENOENT: no such file or directory: " .. dir .. "/none", "ENOENT" },
        { fs.realpath(dir .. "/none") })
    end)

    it("tempdir makes a new private directory each time", function()
      local a, b = fs.tempdir("x-"), fs.tempdir()
      assert.is_true(a ~= b)
      assert.matches("/x%-[%w]+$", a)
      assert.matches("/slipway%-[%w]+$", b)
      assert.same({ "directory", tonumber("700", 8) }, { fs.stat(a).type, fs.stat(a).mode })
      fs.remove(a)
      fs.remove(b)
      assert.has_error(function() fs.tempdir("a/b") end, "fs.tempdir: prefix must not contain '/'")
    end)
  end)

  describe("NUL bytes", function()
    it("raise instead of naming the file before the NUL", function()
      local victim = dir .. "/victim"
      fs.write(victim, "keep")
      local evil = victim .. "\0.tmp"
      local calls = {
        read = { evil }, write = { evil, "x" }, append = { evil, "x" }, write_atomic = { evil, "x" },
        mkdir = { evil }, remove = { evil }, list = { evil }, stat = { evil }, exists = { evil },
        realpath = { evil }, glob = { evil },
      }
      for name, args in pairs(calls) do
        local ok, err = pcall(fs[name], table.unpack(args))
        local what = name == "glob" and "pattern" or "path"
        assert.is_false(ok, name)
        assert.same(("tests/fs_spec.lua:%d: fs.%s: %s contains a NUL byte"):format(debug.getinfo(1, "l").currentline - 3,
          name, what), err:match("^(.-): \""), name)
      end
      assert.same("keep", fs.read(victim))
      assert.has_error(function() fs.tempdir("x\0y") end)
      assert.has_error(function() fs.remove(evil, { recursive = true }) end)
      assert.same({ "victim" }, fs.list(dir))
    end)
  end)
end)
