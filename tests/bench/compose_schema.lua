-- tests/bench/compose_schema.lua: run as `build/slipway tests/bench/compose_schema.lua`
-- (from any directory). Validates the 60 accepted corpus files (decoded
-- once) with slipway.compose.schema, and with the peer measured side by
-- side in the same process: a direct interpretation of docker's official
-- JSON schema for the same version (tests/support/jsonschema_ref.lua,
-- gojsonschema's rules). Prints ms per pass over all files and the ratio
-- slipway/peer, plus the time for invalid documents (which take the
-- message-picking walk). Reports, never fails on noise.
local bench_dir = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
package.path = bench_dir .. "/../?.lua;" .. package.path
local json = require("slipway.json")
local yaml = require("slipway.yaml")
local schema = require("slipway.compose.schema")
local ref = require("support.jsonschema_ref")
local repo = require("support.repo")

local CORPUS = repo.SHARED .. "/corpus/compose/"
local SPECS = repo.SHARED .. "/specs/docker-cli-compose-schema/"
local ROUNDS = tonumber(os.getenv("ROUNDS") or "") or 20

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function kind(v)
  local t = type(v)
  if t == "table" then return getmetatable(v) == json.array_mt and "list" or "mapping" end
  if t == "number" then return (math.type(v) == "integer" or v == math.floor(v)) and "integer" or "number" end
  if v == json.null then return "null" end
  return t
end

local function canon(v)
  if type(v) == "table" then return json.encode(v) end
  return type(v) .. ":" .. tostring(type(v) == "number" and v + 0.0 or v)
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local peers = {}
local function peer_for(version)
  if not peers[version] then
    peers[version] = ref.new(json.decode(read(SPECS .. "config_schema_v" .. version .. ".json")), {
      null = json.null, kind = kind, canon = canon, order = sorted,
      formats = { duration = schema.duration_ok, ports = schema.ports_ok },
    })
  end
  return peers[version]
end

local docs = {}
for line in read(CORPUS .. "MANIFEST.tsv"):gmatch("[^\n]+") do
  local file, code = line:match("^([^\t]+)\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t(%d)")
  if file and code == "0" then
    local doc = yaml.decode(read(CORPUS .. file))
    docs[#docs + 1] = { doc = doc, version = schema.version_of(doc) }
  end
end

local function time(fn)
  local t0 = os.clock()
  for _ = 1, ROUNDS do fn() end
  return (os.clock() - t0) * 1000 / ROUNDS
end

local function bench(label, set)
  local mine = time(function() for _, d in ipairs(set) do schema.validate(d.doc, d.version) end end)
  local peer = time(function() for _, d in ipairs(set) do peer_for(d.version):validate(d.doc) end end)
  print(("%-44s slipway %7.2f ms   peer %7.2f ms   ratio %.2f"):format(label, mine, peer, mine / peer))
end

bench(("%d accepted corpus files, one pass"):format(#docs), docs)
-- the same files with one problem each (a service gets an unknown key)
local bad = {}
for _, d in ipairs(docs) do
  if type(d.doc.services) == "table" then
    local copy = json.decode(json.encode(d.doc))
    local name = next(copy.services)
    if name and type(copy.services[name]) == "table" then
      copy.services[name].profiles = json.array({ "debug" })
      bad[#bad + 1] = { doc = copy, version = d.version }
    end
  end
end
bench(("%d files made invalid, one pass"):format(#bad), bad)
