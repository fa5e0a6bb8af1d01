-- examples/ci-demo/deploy.lua: a pipeline that runs on any machine, on this
-- repository's own sources (the README's main job: `make demo`).
--
--   slipway run examples/ci-demo/deploy.lua            # or: make demo
--   slipway plan examples/ci-demo/deploy.lua --env staging
--   slipway graph examples/ci-demo/deploy.lua --format mermaid
--
-- quality gate -> a matrix of real archive+checksum jobs in parallel ->
-- a manifest -> verification of every archive -> (production only) a
-- release note. Every step runs real commands (tar, sha256sum, sh).
param.choice("environment", { "production", "staging", "development" }, "development",
  "where the (pretend) release goes")
param.list("parts", { "src", "lua", "stdlib", "tests", "docs" }, "source trees to package")

-- Paths: the repository is two levels up from this file.
local here = fs.dirname(debug.getinfo(1, "S").source:sub(2))
local root = fs.realpath(here .. "/../..")
local out          -- the artifact directory, made by the first task

task("quality-gate", { description = "every Lua file parses, every shell script too" }, function()
  local bad = 0
  local lua_files = fs.glob(root .. "/lua/**/*.lua")
  for _, f in ipairs(fs.glob(root .. "/stdlib/**/*.lua")) do lua_files[#lua_files + 1] = f end
  for _, f in ipairs(lua_files) do
    local ok, err = loadfile(f)
    if not ok then print(err); bad = bad + 1 end
  end
  for _, f in ipairs(fs.glob(root .. "/tools/*")) do
    if fs.read(f):sub(1, 2) == "#!" and fs.read(f):match("^#![^\n]*sh") then
      sh { "sh", "-n", f }
    end
  end
  print(("%d Lua files parse"):format(#lua_files - bad))
  if bad > 0 then error(bad .. " Lua files do not parse") end
  out = fs.tempdir("slipway-ci-demo-")
end)

task("package", {
  needs = "quality-gate",
  matrix = function(p) return p.parts end,
  retries = 1, backoff = "200ms", timeout = "2m",
}, function(part)
  local archive = ("%s/%s.tar.gz"):format(out, part)
  sh { "tar", "-czf", archive, "-C", root, part }
  local r = sh { "sha256sum", archive }
  local sum = r.stdout:match("^(%x+)")
  fs.write(archive .. ".sha256", sum .. "  " .. fs.basename(archive) .. "\n")
  print(("%s: %d bytes, sha256 %s"):format(part, fs.stat(archive).size, sum:sub(1, 12)))
  return { sha256 = sum }
end)

task("manifest", { needs = "package" }, function(p)
  local lines = {}
  for _, f in ipairs(fs.glob(out .. "/*.sha256")) do lines[#lines + 1] = fs.read(f) end
  fs.write(out .. "/MANIFEST", table.concat(lines))
  print(("manifest of %d archives for %s"):format(#lines, p.environment))
end)

task("verify", { needs = "manifest" }, function()
  sh("cd " .. out .. " && sha256sum -c MANIFEST")
  for _, a in ipairs(fs.glob(out .. "/*.tar.gz")) do
    local r = sh({ "tar", "-tzf", a }, { stdout = "capture" })
    local n = select(2, r.stdout:gsub("\n", ""))
    print(("%s: %d entries"):format(fs.basename(a), n))
  end
end)

task("release-note", { needs = "verify", when = function(p) return p.environment == "production" end }, function()
  print("would publish " .. out .. "/MANIFEST")
end)

task("clean-up", { needs = { "verify", "release-note" } }, function()
  fs.remove(out, { recursive = true })
end)
