-- examples/parallel-work.lua: a maintenance script run with
--   slipway examples/parallel-work.lua [DIR]
-- It checksums every file under DIR (default: this repository's src/) with
-- real `sha256sum` processes, eight at a time, and compares the result with
-- slipway's own hashing. Independent work, one event loop, no threads.
local dir = arg[1] or (fs.dirname(arg[0]) .. "/../src")
local files = fs.glob(fs.join(dir, "**"))
local regular = {}
for _, f in ipairs(files) do
  if fs.stat(f).type == "file" then regular[#regular + 1] = f end
end
print(("checksumming %d files under %s, 8 at a time"):format(#regular, dir))

local t0 = task.now()
local sums = parallel.map(regular, function(path)
  local r = proc.run({ "sha256sum", path })
  assert(r.code == 0, r.stderr)
  return r.stdout:match("^(%x+)")
end, { limit = 8 })

local mismatches = 0
for i, path in ipairs(regular) do
  if sums[i] ~= hash.sha256_file(path) then
    mismatches = mismatches + 1
    print("MISMATCH " .. path)
  end
end
print(("%d files, %d mismatches, %.0f ms"):format(#regular, mismatches, task.now() - t0))
os.exit(mismatches == 0 and 0 or 1)
