-- slipway.vercel.files: what a deployment sends, and the uploads the API
-- asks for (internal to slipway.vercel).
--
--   files.collect(dir, { archive = "tgz"|nil, tmp = dir }, fail) ->
--       { list = { {file, sha, size, mode} ... }, by_sha = { sha = entry }, bytes }
--   files.upload(client, collected, shas) -> count, bytes   (at most 50 at once)
--
-- collected.list is what the create request sends; by_sha, targets and
-- paths say what to upload for a digest.
--
-- The walk and the hashing are C (slipway._vercel.scan, on the thread
-- pool); the policy is here, as the Vercel CLI has it (vercel/vercel
-- packages/client/src/utils/index.ts): these names are never deployed,
-- whatever the project says, and a `.vercelignore` (or the older
-- `.nowignore`, not both) adds gitignore rules of the project's own;
-- `.vercel/routes.json` goes even though `.vercel` does not.
local fs = require("slipway.fs")
local native = require("slipway._vercel")
local api = require("slipway.vercel.api")

local M = {}

M.ALWAYS_IGNORED = {
  ".hg", ".git", ".gitmodules", ".svn", ".cache", ".next", ".now", ".vercel", ".npmignore",
  ".dockerignore", ".gitignore", ".*.swp", ".DS_Store", ".wafpicke-*", ".lock-wscript",
  ".env.local", ".env.*.local", ".venv", ".yarn/cache", ".pnp*", "npm-debug.log", "config.gypi",
  "node_modules", "__pycache__", "venv", "CVS",
}
M.UPLOADS_AT_ONCE = 50
local TGZ_PART_SIZE = 100 * 1024 * 1024      -- the CLI's chunk of a tgz archive
local TGZ_MODE = 438                         -- 0666, as the CLI gives the parts

-- The ignore rules of dir: the CLI's own, then the project's.
function M.rules(dir, fail)
  local vercelignore = fs.read(dir .. "/.vercelignore")
  local nowignore = fs.read(dir .. "/.nowignore")
  if vercelignore and vercelignore ~= "" and nowignore and nowignore ~= "" then
    fail("cannot use both a .vercelignore and a .nowignore file in " .. dir .. " (delete the .nowignore file)")
  end
  local rules = table.concat(M.ALWAYS_IGNORED, "\n")
  -- Rust projects leave their build output out too (the CLI does).
  if fs.exists(dir .. "/Cargo.toml") then rules = rules .. "\n/target" end
  local own = (vercelignore ~= "" and vercelignore) or nowignore or ""
  return rules .. "\n" .. own
end

function M.collect(dir, o, fail)
  local st = fs.stat(dir)
  if st == nil or st.type ~= "directory" then fail(("dir '%s' is not a directory"):format(dir)) end
  local rules = M.rules(dir, fail)
  local archive = o.archive == "tgz"
  local entries, err = native.scan(dir, { rules = rules, include = { ".vercel/routes.json" }, hash = not archive })
  if entries == nil then fail((err:gsub("^vercel%.scan: ", ""))) end
  local out = { dir = dir, list = {}, by_sha = {}, targets = {}, paths = {}, bytes = 0, count = #entries }
  if archive and #entries > 0 then
    local rels = {}
    for i, e in ipairs(entries) do rels[i] = e.file end
    local parts, terr = native.tgz(dir, rels, { out = o.tmp .. "/source.tgz.part", part_size = TGZ_PART_SIZE })
    if parts == nil then fail((terr:gsub("^vercel%.tgz: ", ""))) end
    local paths = {}
    for i, p in ipairs(parts) do paths[i] = p.path end
    local sums, herr = native.sha1_files(paths)
    if sums == nil then fail((herr:gsub("^vercel%.sha1_files: ", ""))) end
    entries = {}
    for i, p in ipairs(parts) do
      entries[i] = { file = ".vercel/source.tgz.part" .. i, sha = sums[i].sha, size = sums[i].size,
                     mode = TGZ_MODE }
      out.paths[sums[i].sha] = p.path
    end
  end
  -- The scan's own tables are the list sent (file, sha, size, mode) and,
  -- by digest, what to upload: a deployment of many files holds each once.
  for _, e in ipairs(entries) do
    local target = e.target
    e.target = nil
    out.list[#out.list + 1] = e
    if e.sha and not out.by_sha[e.sha] then
      out.by_sha[e.sha] = e
      if target then out.targets[e.sha] = target end
      out.bytes = out.bytes + e.size
    end
  end
  return out
end

-- Upload the files whose digests the API listed as missing, streamed from
-- disk (a symlink: its target text), by UPLOADS_AT_ONCE workers taking the
-- next digest in turn; the first failure stops the rest (parallel.run).
function M.upload(c, collected, shas)
  for _, sha in ipairs(shas) do
    if collected.by_sha[sha] == nil then
      api.fail(c:describe("POST", "/v13/deployments",
        ("the API asked for a file this deployment does not have (%s)"):format(tostring(sha))))
    end
  end
  local bytes, next_index = 0, 0
  local function worker()
    while next_index < #shas do
      next_index = next_index + 1
      local sha = shas[next_index]
      local e, target = collected.by_sha[sha], collected.targets[sha]
      -- A generous limit that still ends a stalled transfer: 60s, plus a
      -- second for every 256 KiB.
      local timeout_ms = 60000 + (e.size // 262144) * 1000
      c:call("POST", "/v2/files", {
        headers = { ["Content-Type"] = "application/octet-stream", ["x-vercel-digest"] = sha },
        body = target, timeout_ms = timeout_ms,
        body_file = target == nil and (collected.paths[sha] or (collected.dir .. "/" .. e.file)) or nil,
      })
      bytes = bytes + e.size
    end
  end
  local workers = {}
  for i = 1, math.min(M.UPLOADS_AT_ONCE, #shas) do workers[i] = worker end
  require("slipway.parallel").run(workers)
  return #shas, bytes
end

return M
