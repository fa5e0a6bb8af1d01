-- docker.build's content digest and cache, docker.push's skip, against the
-- real engine and registry (tests/infra/up): what changes the digest and
-- what does not, a build found in the engine, a build found in the
-- registry (nothing pulled), force.
local docker = require("slipway.docker")
local image = require("slipway.docker.image")
local registry = require("slipway.docker.registry")
local proc = require("slipway.proc")
local fx = require("support.docker_fixtures")
local leaks = require("support.leaks")

local REG = fx.registry

local function label_of(ref)
  return docker.inspect(ref).Config.Labels[image.CONTENT_LABEL]
end

-- A context of its own: FROM scratch, one file, a .dockerignore.
local function context()
  local dir = fx.tmpdir()
  fx.write(dir .. "/Dockerfile", "FROM scratch\nARG FLAVOUR=plain\nLABEL flavour=$FLAVOUR\nCOPY data.txt /data.txt\n")
  fx.write(dir .. "/data.txt", "one\n")
  fx.write(dir .. "/.dockerignore", "notes/\n*.log\n")
  return dir
end

describe("docker.build content digest", function()
  leaks.check()

  it("covers build args, target, platform, labels and the Dockerfile's path", function()
    local base = { build_args = { A = "1" } }
    local d = image._content_digest("sha256:ctx", "Dockerfile", base)
    assert.matches("^sha256:%x+$", d)
    assert.same(d, image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = 1 } }))
    local others = {
      image._content_digest("sha256:ctx2", "Dockerfile", base),
      image._content_digest("sha256:ctx", "Dockerfile.prod", base),
      image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = "2" } }),
      image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = "1", B = "" } }),
      image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = "1" }, target = "x" }),
      image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = "1" }, platform = "linux/arm64" }),
      image._content_digest("sha256:ctx", "Dockerfile", { build_args = { A = "1" }, labels = { l = "1" } }),
      -- a label and a build arg of the same name and value are not the same input
      image._content_digest("sha256:ctx", "Dockerfile", { labels = { A = "1" } }),
    }
    local seen = { [d] = true }
    for i, o in ipairs(others) do
      assert.is_nil(seen[o], "input " .. i .. " hashes like another")
      seen[o] = true
    end
  end)

  it("changes with a build arg, the Dockerfile, a context file; not with an mtime or an excluded file", function()
    local dir = context()
    local tag = REG .. "/slipway-cache-digest:" .. fx.unique("d")
    finally(function()
      for _, t in ipairs({ tag, tag .. "-keep" }) do pcall(docker.rm_image, t, { missing_ok = true }) end
      fx.rmtree(dir)
    end)
    local function build(args)
      return docker.build({ context = dir, tag = tag, build_args = args or { FLAVOUR = "plain" }, quiet = true })
    end
    local first = build()
    assert.is_false(first.cached)
    assert.matches("^sha256:%x+$", first.content_digest)
    assert.same(first.content_digest, label_of(tag))   -- the image carries it

    -- the same inputs with a new mtime, a new excluded file: the same build
    assert.same(0, proc.run({ "touch", "-d", "2001-02-03 04:05:06", dir .. "/data.txt", dir .. "/Dockerfile" }).code)
    local again = build()
    assert.same({ true, "engine", first.content_digest, first.id },
      { again.cached, again.cached_in, again.content_digest, again.id })
    proc.run({ "mkdir", dir .. "/notes" })
    fx.write(dir .. "/notes/todo.md", "not sent\n")
    fx.write(dir .. "/debug.log", "not sent\n")
    again = build()
    assert.same({ true, first.content_digest }, { again.cached, again.content_digest })

    -- a build arg
    local arg = build({ FLAVOUR = "spicy" })
    assert.is_false(arg.cached)
    assert.are_not.same(first.content_digest, arg.content_digest)
    assert.same(arg.content_digest, label_of(tag))
    -- back to the first inputs: the first image lost its tag to the
    -- spicy build; with a tag of its own elsewhere it is found by its
    -- label, and gets the tag back
    docker.tag(first.id, tag .. "-keep")
    local back = build()
    assert.same({ true, first.id }, { back.cached, back.id })
    assert.same(first.id, docker.inspect(tag).Id)      -- and it has the tag again

    -- the Dockerfile
    fx.write(dir .. "/Dockerfile", "FROM scratch\nARG FLAVOUR=plain\nLABEL flavour=$FLAVOUR\nCOPY data.txt /data\n")
    local df = build()
    assert.is_false(df.cached)
    assert.are_not.same(first.content_digest, df.content_digest)

    -- a context file
    fx.write(dir .. "/data.txt", "two\n")
    local data = build()
    assert.is_false(data.cached)
    assert.are_not.same(df.content_digest, data.content_digest)
    -- and a file's mode
    assert.same(0, proc.run({ "chmod", "0600", dir .. "/data.txt" }).code)
    local mode = build()
    assert.is_false(mode.cached)
    assert.are_not.same(data.content_digest, mode.content_digest)

  end)

  it("builds anyway with force (and with no_cache)", function()
    local dir = context()
    local tag = REG .. "/slipway-cache-force:" .. fx.unique("f")
    finally(function()
      pcall(docker.rm_image, tag, { missing_ok = true })
      fx.rmtree(dir)
    end)
    local lines = {}
    local first = docker.build({ context = dir, tag = tag, quiet = true })
    local forced = docker.build({ context = dir, tag = tag, force = true, on_output = function(l) lines[#lines + 1] = l end })
    assert.is_false(forced.cached)
    assert.same(first.content_digest, forced.content_digest)
    assert.matches("Successfully tagged", table.concat(lines, "\n"))
    assert.is_false(docker.build({ context = dir, tag = tag, no_cache = true, quiet = true }).cached)
    lines = {}
    local cached = docker.build({ context = dir, tag = tag, on_output = function(l) lines[#lines + 1] = l end })
    assert.is_true(cached.cached)
    assert.same({ tag .. ": cached (" .. first.content_digest:sub(1, 19) .. " in the engine)" }, lines)
  end)
end)

describe("docker.build and docker.push with the registry as the cache", function()
  leaks.check()

  it("finds a pushed build in the registry without pulling it, and skips its push", function()
    local dir = context()
    local tag = REG .. "/slipway-cache-reg:" .. fx.unique("r")
    finally(function()
      pcall(docker.rm_image, tag, { missing_ok = true })
      fx.rmtree(dir)
    end)
    local built = docker.build({ context = dir, tag = tag, quiet = true })
    local digest, already = docker.push(tag, { quiet = true })
    assert.is_false(already)
    -- pushing again sends nothing: the registry's tag holds this image
    local lines = {}
    local again, already2 = docker.push(tag, { on_output = function(l) lines[#lines + 1] = l end })
    assert.same({ digest, true }, { again, already2 })
    assert.same({ tag .. ": cached (the registry has " .. digest:sub(1, 19) .. ")" }, lines)

    -- what the registry says about the tag (the Registry HTTP API)
    local remote = assert(registry.image(tag))
    assert.same({ digest, built.id, built.content_digest },
      { remote.digest, remote.config_digest, remote.labels[image.CONTENT_LABEL] })

    -- another machine: the engine does not have it
    docker.rm_image(tag)
    assert.is_false(docker.exists(tag))
    local cached = docker.build({ context = dir, tag = tag, quiet = true })
    assert.same({ true, "registry", built.id, { [tag] = digest } },
      { cached.cached, cached.cached_in, cached.id, cached.digests })
    assert.is_false(docker.exists(tag))                -- nothing was pulled
    local pushed, skipped = docker.push(tag, { quiet = true })
    assert.same({ digest, true }, { pushed, skipped })

    -- the registry's tag now holds other content: a build again
    fx.write(dir .. "/data.txt", "changed\n")
    local rebuilt = docker.build({ context = dir, tag = tag, quiet = true })
    assert.is_false(rebuilt.cached)
    local pushed2, skipped2 = docker.push(tag, { quiet = true })
    assert.is_false(skipped2)
    assert.are_not.same(digest, pushed2)
    -- force pushes anyway
    local _, skipped3 = docker.push(tag, { quiet = true, force = true })
    assert.is_false(skipped3)
  end)

  it("is no cache when the registry cannot be asked", function()
    local dir = context()
    local tag = "127.0.0.1:5999/slipway-cache-none:" .. fx.unique("n")   -- nothing listens there
    finally(function()
      pcall(docker.rm_image, tag, { missing_ok = true })
      fx.rmtree(dir)
    end)
    assert.same({ nil, "not a tagged reference" }, { registry.image("x@sha256:00") })
    local r1, why = registry.image(tag)
    assert.is_nil(r1)
    assert.matches("ECONNREFUSED", why)
    local built = docker.build({ context = dir, tag = tag, quiet = true })
    assert.is_false(built.cached)
  end)

  it("reads registry challenges", function()
    assert.same({ "bearer", { realm = "https://auth.example/token", service = "reg", scope = "repository:a/b:pull" } },
      { registry._challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"') })
    assert.same({ "basic", { realm = "r" } }, { registry._challenge('Basic realm="r"') })
    assert.same({ registry = "docker.io", api = "registry-1.docker.io", name = "library/redis", tag = "7" },
      registry.reference("redis:7"))
    assert.same({ registry = "127.0.0.1:5000", api = "127.0.0.1:5000", name = "a/b", tag = "v1" },
      registry.reference("127.0.0.1:5000/a/b:v1"))
  end)
end)
