-- slipway.compose.schema against docker's official compose schemas.
--
-- The official v3.0 .. v3.13 schema files are read at test time from
-- ../shared/specs/docker-cli-compose-schema/ (they are not part of the
-- repository) and:
--   1. walked side by side with slipway's compiled rules: at every path the
--      same kinds, fields, key patterns, closedness, required keys, items,
--      uniqueness, formats, enums and minimums;
--   2. used to generate documents (a valid value at every path, and at every
--      path each wrong kind, unknown/extension/badly named keys, missing
--      required keys, bad enum/format values, duplicates, negatives), each
--      judged by slipway's validator and by a reference interpreter of the
--      official schema (tests/support/jsonschema_ref.lua, gojsonschema's
--      rules): same verdict and same message;
--   3. when the docker 28 client is on the machine, a sample of the same
--      documents is also given to `docker stack config`.
-- Then the corpus: the 60 accepted files pass, the 19 files docker rejects
-- for schema reasons are rejected with the same class of message.
local json = require("slipway.json")
local schema = require("slipway.compose.schema")
local rules = require("slipway.compose.schema_rules")
local ref = require("support.jsonschema_ref")
local repo = require("support.repo")

local SPECS = repo.SHARED .. "/specs/docker-cli-compose-schema/"
local CORPUS = repo.SHARED .. "/corpus/compose/"
local DOCKER = "/usr/local/bin/docker"
local NULL = json.null

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local official = {}
for m = 0, rules.LAST_MINOR do
  official[m] = json.decode(read(SPECS .. "config_schema_v3." .. m .. ".json"))
end

-- Values as the reference sees them --------------------------------------

local function kind(v)
  local t = type(v)
  if t == "table" then
    if getmetatable(v) == json.array_mt then return "list" end
    return "mapping"
  elseif t == "number" then
    if math.type(v) == "integer" or v == math.floor(v) then return "integer" end
    return "number"
  elseif v == NULL then return "null" end
  return t
end

local function canon(v)
  local k = kind(v)
  if k == "string" then return "s" .. #v .. ":" .. v end
  if k == "integer" or k == "number" then return "n" .. string.format("%.17g", v + 0.0) end
  if k == "list" then
    local out = {}
    for i, x in ipairs(v) do out[i] = canon(x) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  if k == "mapping" then
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = key end
    table.sort(keys)
    local out = {}
    for i, key in ipairs(keys) do out[i] = #key .. ":" .. key .. "=" .. canon(v[key]) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return tostring(v)
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local reference = {}
for m = 0, rules.LAST_MINOR do
  reference[m] = ref.new(official[m], {
    null = NULL, kind = kind, canon = canon, order = sorted,
    formats = { duration = schema.duration_ok, ports = schema.ports_ok },
  })
end

local function list(...) return json.array({ ... }) end
local function obj(t) return json.object(t or {}) end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- 1. Structure ----------------------------------------------------------

-- Docker's key patterns and slipway's names for them.
local PATTERN_CLASS = {
  ["^[a-zA-Z0-9._-]+$"] = "name", ["^x-"] = "x", ["^.+$"] = "text", [".+"] = "some", ["^[a-z]+$"] = "lower",
}
local JSON_KIND = { object = "mapping", array = "list" }

local function resolve(root, s)
  while s["$ref"] do
    local node = root
    for part in s["$ref"]:sub(3):gmatch("[^/]+") do node = node[part] end
    s = node
  end
  return s
end

local function set_of(t)
  local out = {}
  for k in pairs(t or {}) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local HANDLED = {
  ["$schema"] = true, id = true, default = true, definitions = true, type = true, properties = true,
  patternProperties = true, additionalProperties = true, required = true, items = true,
  oneOf = true, uniqueItems = true, format = true, enum = true, minimum = true,
}

-- Compares official node s with compiled rule r at path; appends
-- differences to diffs; returns the number of paths compared.
local function compare(root, s, r, path, diffs)
  s = resolve(root, s)
  local n = 1
  local function differ(what, a, b)
    diffs[#diffs + 1] = ("%s: %s: official %s, slipway %s"):format(path, what, a, b)
  end
  for k in pairs(s) do
    if not HANDLED[k] then differ("keyword", k, "-") end
  end
  if r == nil then differ("rule", "present", "missing") return n end
  local types = s.type and (type(s.type) == "string" and { s.type } or s.type) or nil
  local want = nil
  if types then
    want = {}
    for i, t in ipairs(types) do want[i] = JSON_KIND[t] or t end
  end
  if canon(want and list(table.unpack(want)) or "any") ~= canon(r.is and list(table.unpack(r.is)) or "any") then
    differ("kinds", table.concat(want or { "any" }, ","), table.concat(r.is or { "any" }, ","))
  end
  -- alternatives
  local alts = s.oneOf or {}
  if #alts ~= #(r.either or {}) then
    differ("alternatives", #alts, #(r.either or {}))
  else
    for i, alt in ipairs(alts) do n = n + compare(root, alt, r.either[i], path .. "|" .. i, diffs) end
  end
  -- fields
  local props, fields = set_of(s.properties), set_of(r.fields)
  if table.concat(props, " ") ~= table.concat(fields, " ") then
    differ("fields", table.concat(props, " "), table.concat(fields, " "))
  else
    for _, k in ipairs(props) do n = n + compare(root, s.properties[k], r.fields[k], path .. "." .. k, diffs) end
  end
  -- key patterns
  local pats = {}
  for re in pairs(s.patternProperties or {}) do
    pats[#pats + 1] = PATTERN_CLASS[re] or ("regex " .. re)
  end
  table.sort(pats)
  local classes = {}
  for _, kc in ipairs(r.keys or {}) do classes[#classes + 1] = kc[1] end
  table.sort(classes)
  if table.concat(pats, " ") ~= table.concat(classes, " ") then
    differ("key classes", table.concat(pats, " "), table.concat(classes, " "))
  else
    for re, sub in pairs(s.patternProperties or {}) do
      for _, kc in ipairs(r.keys) do
        if kc[1] == PATTERN_CLASS[re] then n = n + compare(root, sub, kc[2], path .. "./" .. re .. "/", diffs) end
      end
    end
  end
  local ap = s.additionalProperties
  if type(ap) == "table" then differ("additionalProperties", "schema", "-") end
  if (ap == false) ~= (r.closed == true) then differ("closed", tostring(ap == false), tostring(r.closed == true)) end
  if canon(list(table.unpack(s.required or {}))) ~= canon(list(table.unpack(r.need or {}))) then
    differ("required", table.concat(s.required or {}, ","), table.concat(r.need or {}, ","))
  end
  if (s.items ~= nil) ~= (r.item ~= nil) then
    differ("items", tostring(s.items ~= nil), tostring(r.item ~= nil))
  elseif s.items then
    n = n + compare(root, s.items, r.item, path .. "[]", diffs)
  end
  if (s.uniqueItems == true) ~= (r.unique == true) then
    -- uniqueItems has no effect where no value can be a list (docker's 3.2+
    -- volume entries carry one next to a string-or-mapping choice)
    local can_be_list = types == nil and #alts == 0
    for _, t in ipairs(types or {}) do if t == "array" then can_be_list = true end end
    for _, alt in ipairs(alts) do
      local a = resolve(root, alt)
      local at = type(a.type) == "string" and { a.type } or a.type or { "array" }
      for _, t in ipairs(at) do if t == "array" then can_be_list = true end end
    end
    if can_be_list then differ("unique", tostring(s.uniqueItems), tostring(r.unique)) end
  end
  if s.format ~= r.format then differ("format", tostring(s.format), tostring(r.format)) end
  if canon(s.enum and list(table.unpack(s.enum)) or NULL) ~= canon(r.oneof and list(table.unpack(r.oneof)) or NULL) then
    differ("enum", canon(s.enum or NULL), canon(r.oneof or NULL))
  end
  if s.minimum ~= r.min then differ("minimum", tostring(s.minimum), tostring(r.min)) end
  return n
end

-- 2. Generated documents --------------------------------------------------

local SAMPLE_KEY = {
  ["^[a-zA-Z0-9._-]+$"] = "Svc_1.a-b", ["^x-"] = "x-extra", ["^.+$"] = "opt.one",
  [".+"] = "KEY", ["^[a-z]+$"] = "nofile",
}
local FORMAT_SAMPLE = { duration = "1m30s", ports = "8080:80/udp", expose = "3000" }

-- A valid value for official node s (first alternative, first kind).
local function gen(root, s, depth)
  s = resolve(root, s)
  depth = depth or 0
  if s.oneOf then return gen(root, s.oneOf[1], depth) end
  local t = s.type and (type(s.type) == "string" and s.type or s.type[1]) or "string"
  if t == "object" then
    local o = obj()
    if depth < 12 then
      for k, sub in pairs(s.properties or {}) do o[k] = gen(root, sub, depth + 1) end
      for re, sub in pairs(s.patternProperties or {}) do o[SAMPLE_KEY[re]] = gen(root, sub, depth + 1) end
    end
    return o
  elseif t == "array" then
    if s.items then return list(gen(root, s.items, depth + 1)) end
    return list()
  elseif t == "string" then
    if s.enum then return s.enum[1] end
    return FORMAT_SAMPLE[s.format] or "text"
  elseif t == "integer" then return s.minimum or 3
  elseif t == "number" then return s.format == "ports" and 8080 or 2.5
  elseif t == "boolean" then return true
  elseif t == "null" then return NULL end
  error("gen: type " .. t)
end

-- Every site (path) of the official schema, with a function placing a
-- value there in an otherwise minimal valid document.
local function sites(root, s, place, path, out)
  s = resolve(root, s)
  out[#out + 1] = { node = s, place = place, path = path }
  for i, alt in ipairs(s.oneOf or {}) do sites(root, alt, place, path .. "|" .. i, out) end
  local function parent_with(k, v)
    local o = obj()
    for _, need in ipairs(s.required or {}) do
      if s.properties and s.properties[need] then o[need] = gen(root, s.properties[need]) end
    end
    o[k] = v
    return o
  end
  for _, k in ipairs(sorted(s.properties or {})) do
    local sub = s.properties[k]
    sites(root, sub, function(v) return place(parent_with(k, v)) end, path .. "." .. k, out)
  end
  for _, re in ipairs(sorted(s.patternProperties or {})) do
    local sub, key = s.patternProperties[re], SAMPLE_KEY[re]
    sites(root, sub, function(v) return place(parent_with(key, v)) end, path .. "./" .. re .. "/", out)
  end
  if s.items then
    sites(root, s.items, function(v) return place(list(v)) end, path .. "[]", out)
  end
  return out
end

local WRONG = {
  function() return true end, function() return "zz" end, function() return 7 end,
  function() return 1.5 end, function() return obj() end, function() return list() end,
  function() return list("zz") end, function() return NULL end,
}
local BAD = {
  duration = { "", "5", "5x", "1h30", "-1.5h", "1.5.5s", ".s", "9999999999999999999ns", "2562047h", "2562048h" },
  ports = { "", "zz", "80/xyz", "70000", "1-2:3-5", "127.0.0.1:80:80", "[::1]:80:80", "localhost:80:80",
            "80-81:90", "8000-8001:80", "0080:080/UDP", ":80:80", "1.2.3.04:80:80", 70000, -1, 80.5, 0.5 },
  expose = { "zz", -3 },
}

-- All documents for one site: {doc, label}
local function variants(root, site)
  local s, place, out = site.node, site.place, {}
  local function add(v, label) out[#out + 1] = { place(v), site.path .. " " .. label } end
  local good = gen(root, s)
  add(good, "valid")
  for i, w in ipairs(WRONG) do add(w(), "kind" .. i) end
  if kind(good) == "mapping" then
    for _, k in ipairs({ "zz_unknown", "x-zz", "bad key!", "Upper", "" }) do
      local v = copy(good); v[k] = 1; add(v, "key " .. k)
    end
    for _, need in ipairs(s.required or {}) do
      local v = copy(good); v[need] = nil; add(v, "without " .. need)
    end
  end
  if s.enum then add("zz", "enum") end
  if s.format then for _, b in ipairs(BAD[s.format] or {}) do add(b, "format " .. tostring(b)) end end
  if s.uniqueItems and kind(good) == "list" and #good > 0 then
    add(list(good[1], copy(good[1])), "duplicate")
    add(list(good[1], copy(good[1]), good[1]), "duplicate3")
  end
  if s.minimum then add(s.minimum - 1, "below minimum") end
  return out
end

local function all_documents(m)
  local root = official[m]
  local docs = {}
  for _, site in ipairs(sites(root, root, function(v) return v end, "", {})) do
    for _, d in ipairs(variants(root, site)) do docs[#docs + 1] = d end
  end
  return docs
end

local function strip(msg) return msg and (msg:gsub("^[^:]*:%d+:%d+: ", "")) end

describe("compose schema", function()
  describe("structure", function()
    it("has the same rule as docker's schema at every path of every version 3.0-3.13", function()
      local total, diffs = 0, {}
      for m = 0, rules.LAST_MINOR do
        local root = official[m]
        total = total + compare(root, root, rules.compile(m), "3." .. m, diffs)
      end
      assert.same({}, diffs)
      assert.is_true(total > 14 * 250)
      io.stderr:write(("  structure: %d paths compared over 14 versions\n"):format(total))
    end)

    it("names docker's key patterns with key classes that match the same keys", function()
      local keys = { "web", "x-foo", "x-", "x", "", "a\nb", "\n", "\nx", "Web_1.2-x", "ABC", "abc", "a b",
                     "é", "-x", "x-\n", "nofile", "no_file", "a.b", "1" }
      for re, class in pairs(PATTERN_CLASS) do
        for _, k in ipairs(keys) do
          local want = k:find(ref.go_regex_to_lua(re)) ~= nil
          assert.equal(want, schema.KEY_CLASSES[class](k), ("%s on %q"):format(re, k))
        end
      end
    end)

    it("lists the supported versions", function()
      local v = schema.versions()
      assert.equal(14, #v)
      assert.equal("3.0", v[1])
      assert.equal("3.13", v[14])
    end)
  end)

  describe("generated documents", function()
    it("get the same verdict and message as the official schema, for every version", function()
      local count, invalid, mismatches = 0, 0, {}
      for m = 0, rules.LAST_MINOR do
        local version = "3." .. m
        for _, d in ipairs(all_documents(m)) do
          count = count + 1
          local ok_ref, msg_ref = reference[m]:validate(d[1])
          local ok, msg = schema.validate(d[1], version, nil, nil, { order = "name" })
          if not ok_ref then invalid = invalid + 1 end
          if (ok_ref == true) ~= (ok == true) or (not ok_ref and msg_ref ~= msg) then
            mismatches[#mismatches + 1] = ("%s %s: official %s, slipway %s"):format(version, d[2],
              tostring(msg_ref or ok_ref), tostring(msg or ok))
          end
        end
      end
      assert.same({}, { table.unpack(mismatches, 1, 20) })
      assert.is_true(invalid > count / 2 and invalid < count)
      io.stderr:write(("  samples: %d documents compared (%d invalid)\n"):format(count, invalid))
    end)

    it("with several problems each, get the same verdict and the same chosen message", function()
      -- random documents from the official schema: random alternatives and
      -- kinds, some keys left out, and now and then a random value, an
      -- unknown key or a duplicate list element (fixed seed: reproducible)
      math.randomseed(4)
      local R = math.random
      local KEYS = { ["^[a-zA-Z0-9._-]+$"] = { "web", "db.1", "a_b-c" }, ["^x-"] = { "x-a", "x-" },
                     ["^.+$"] = { "k", "A.b" }, [".+"] = { "K", "a b" }, ["^[a-z]+$"] = { "nofile", "nproc" } }
      local SCALARS = { "zz", "", "1m", "80:80", "8080-8081:80-81/udp", true, false, 3, 0, -1, 2.5, NULL,
                        "start-first", "10s", "a\nb" }
      local function scalar() return SCALARS[R(#SCALARS)] end
      local function junk(depth)
        local r = R(10)
        if depth > 3 or r <= 6 then return scalar() end
        if r <= 8 then
          local l = list()
          for i = 1, R(3) - 1 do l[i] = junk(depth + 1) end
          return l
        end
        local o = obj()
        for _ = 1, R(3) - 1 do o[({ "a", "x-y", "type", "soft", "target", "name" })[R(6)]] = junk(depth + 1) end
        return o
      end
      local function rand(root, s, depth)
        s = resolve(root, s)
        if depth > 8 then return scalar() end
        if depth > 0 and R(12) == 1 then return junk(0) end
        if s.oneOf then return rand(root, s.oneOf[R(#s.oneOf)], depth) end
        local types = s.type and (type(s.type) == "string" and { s.type } or s.type) or { "string" }
        local t = types[R(#types)]
        if t == "object" then
          local o = obj()
          for _, k in ipairs(sorted(s.properties or {})) do
            if R(3) == 1 then o[k] = rand(root, s.properties[k], depth + 1) end
          end
          for _, need in ipairs(s.required or {}) do
            if R(8) > 1 then o[need] = rand(root, s.properties[need], depth + 1) end
          end
          for _, re in ipairs(sorted(s.patternProperties or {})) do
            for _ = 1, R(3) - 1 do
              local ks = KEYS[re]
              o[ks[R(#ks)]] = rand(root, s.patternProperties[re], depth + 1)
            end
          end
          if R(15) == 1 then o.zz = scalar() end
          if R(15) == 1 then o["bad key"] = scalar() end
          return o
        elseif t == "array" then
          local l = list()
          for i = 1, R(4) - 1 do l[i] = s.items and rand(root, s.items, depth + 1) or scalar() end
          if #l > 0 and R(6) == 1 then l[#l + 1] = copy(l[1]) end
          return l
        elseif t == "string" then
          if s.enum then return R(5) == 1 and "zz" or s.enum[R(#s.enum)] end
          if s.format == "duration" then return ({ "1s", "5x", "1h30m", "" })[R(4)] end
          if s.format == "ports" then return ({ "80", "80:80", "a:80", "127.0.0.1:80:80/tcp" })[R(4)] end
          return "str"
        elseif t == "integer" then return ({ 3, 0, -1, 65536 })[R(4)]
        elseif t == "number" then return ({ 3, 2.5, 80.5, -1 })[R(4)]
        elseif t == "boolean" then return R(2) == 1
        end
        return NULL
      end
      local count, invalid, mismatches = 0, 0, {}
      for _ = 1, 1500 do
        local m = R(14) - 1
        local doc = rand(official[m], official[m], 0)
        local ok_ref, msg_ref = reference[m]:validate(doc)
        local ok, msg = schema.validate(doc, "3." .. m, nil, nil, { order = "name" })
        count = count + 1
        if not ok_ref then invalid = invalid + 1 end
        if (ok_ref == true) ~= (ok == true) or (not ok_ref and msg_ref ~= msg) then
          mismatches[#mismatches + 1] = ("3.%d %s: official %s, slipway %s"):format(m, json.encode(doc),
            tostring(msg_ref or ok_ref), tostring(msg or ok))
        end
      end
      assert.same({}, { table.unpack(mismatches, 1, 5) })
      assert.is_true(invalid > count / 3 and invalid < count)
      io.stderr:write(("  random: %d documents compared (%d invalid)\n"):format(count, invalid))
    end)

    local have_docker = exists(DOCKER)
    local pit = have_docker and it or pending
    pit("get the same verdict and message from `docker stack config` (sample)", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      local count, rejected, mismatches = 0, 0, {}
      -- about 35 documents per version, a different stretch of sites each
      for m = 0, rules.LAST_MINOR do
        local docs = all_documents(m)
        local stride = #docs // 35
        for i = 1 + m, #docs, stride do
          local doc = docs[i][1]
          if type(doc) == "table" and kind(doc) == "mapping" then
            doc.version = "3." .. m
            local file = dir .. "/c.yml"
            local f = assert(io.open(file, "w"))
            f:write(json.encode(doc))
            f:close()
            local p = io.popen("cd " .. dir .. " && env -i HOME=/nonexistent PATH=/usr/bin:/bin " .. DOCKER
              .. " stack config -c c.yml 2>&1 >/dev/null")
            local out = p:read("a"):gsub("\n$", "")
            p:close()
            local ok, msg = schema.validate(doc, nil, nil, nil, { order = "name" })
            count = count + 1
            local schema_like = out:match(" must be a ") or out:match("Additional property")
              or out:match("^unsupported Compose") or out:match("^json: ") or out:match(" is required$")
              or out:match("Does not match format") or out:match("must be unique") or out:match("must be one of")
            if ok and schema_like then
              mismatches[#mismatches + 1] = docs[i][2] .. ": docker " .. out .. ", slipway accepts"
            elseif not ok then
              rejected = rejected + 1
              if out ~= msg then mismatches[#mismatches + 1] = docs[i][2] .. ": docker " .. out .. ", slipway " .. msg end
            end
          end
        end
      end
      os.execute("rm -rf " .. dir)
      assert.same({}, { table.unpack(mismatches, 1, 20) })
      assert.is_true(rejected > count / 3)
      io.stderr:write(("  docker stack config: %d documents compared, %d rejected by both with the same message\n"):format(count, rejected))
    end)
  end)

  describe("formats", function()
    local have_docker = exists(DOCKER)
    local pit = have_docker and it or pending
    pit("judge ports and durations like `docker stack config`", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      local cases = {}
      for _, v in ipairs({ "80", "80:80", "8000-8001:80-81", "8000-8010:80", "127.0.0.1:80:80", "127.0.0.1::80",
                           "[::1]:80:80", "::1:80:80", "80/udp", "80/SCTP", "0080:080", "80/", "80/tcp/extra",
                           "1-2-3", "65535", "", "zz", "70000", "80:70000", "80-81:90-92", "80/xyz",
                           "localhost:80:80", "1.2.3.04:80:80", "1.2.3:80:80", "[::1:80:80", "::1%eth0:80:80",
                           "/tcp", "81-80", "-1", "[fe80::1%eth0]:80:80", "::ffff:1.2.3.4:80:80", "1::2::3:80:80",
                           80, 80.5, 0.5, 65536, -1, 1e20 }) do
        cases[#cases + 1] = { field = "ports", value = list(v), check = schema.ports_ok(v) }
      end
      for _, v in ipairs({ "0", "1s", "1m30s", "1.5h", "-1.5h", "+2ms", ".5s", "5.s", "1h2m3s4ms5us6ns",
                           "1\194\181s", "2562047h", "9223372036854775807ns", "0.0000000001s", "", "5",
                           "5x", "1h30", ".s", "1.5.5s", "2562048h", "9223372036854775808ns", "1S" }) do
        cases[#cases + 1] = { field = "stop_grace_period", value = v, check = schema.duration_ok(v) }
      end
      local mismatches = {}
      for _, c in ipairs(cases) do
        local doc = obj { version = "3.13", services = obj { web = obj { image = "busybox", [c.field] = c.value } } }
        local f = assert(io.open(dir .. "/c.yml", "w"))
        f:write(json.encode(doc))
        f:close()
        local p = io.popen("cd " .. dir .. " && env -i HOME=/nonexistent PATH=/usr/bin:/bin " .. DOCKER
          .. " stack config -c c.yml 2>&1 >/dev/null")
        local out = p:read("a")
        p:close()
        local docker_ok = not out:match("Does not match format")
        local ok, msg = schema.validate(doc)
        if docker_ok ~= c.check or (ok == true) ~= c.check or (not ok and out:gsub("\n$", "") ~= msg) then
          mismatches[#mismatches + 1] = ("%s %s: docker %q, slipway %s"):format(c.field, json.encode(c.value), out,
            tostring(msg or ok))
        end
      end
      os.execute("rm -rf " .. dir)
      assert.same({}, mismatches)
    end)

    it("reads durations like Go's time.ParseDuration", function()
      for _, s in ipairs({ "0", "1s", "1m30s", "1.5h", "-1.5h", "+2ms", ".5s", "5.s", "1h2m3s4ms5us6ns",
                           "1\194\181s", "1\206\188s", "2562047h", "9223372036854775807ns", "-9223372036854775808ns",
                           "0.0000000001s" }) do
        assert.is_true(schema.duration_ok(s), s)
      end
      for _, s in ipairs({ "", "5", "-", "+", "5x", "1h30", ".s", "s", "1.5.5s", "2562048h",
                           "9223372036854775808ns", "9999999999999999999ns", "1 s", "1S", " 1s" }) do
        assert.is_false(schema.duration_ok(s), s)
      end
      assert.is_false(schema.duration_ok(5))
    end)

    it("reads port specs like docker's nat.ParsePortSpec", function()
      for _, v in ipairs({ "80", "80:80", "8000-8001:80-81", "8000-8010:80", "127.0.0.1:80:80",
                           "127.0.0.1::80", "[::1]:80:80", "::1:80:80", "80/udp", "80/SCTP", "0080:080",
                           "80/", "80/tcp/extra", "1-2-3", "[]:80:80", "65535", 80, 80.5, 0.5, 0 }) do
        assert.is_true(schema.ports_ok(v), tostring(v))
      end
      for _, v in ipairs({ "", "zz", "70000", "80:70000", "80-81:90-92", "80/xyz", "localhost:80:80",
                           "1.2.3.04:80:80", "1.2.3:80:80", "[::1:80:80", "::1%eth0:80:80", "/tcp",
                           "81-80", "-1", 65536, -1, 1e20, true }) do
        assert.is_false(schema.ports_ok(v), tostring(v))
      end
    end)

    it("knows IP addresses like Go's net.ParseIP", function()
      for _, s in ipairs({ "1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "fe80::1",
                           "1:2:3:4:5:6:7:8", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1::1.2.3.4" }) do
        assert.is_true(schema.ip_ok(s), s)
      end
      for _, s in ipairs({ "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "1.2.3.4.", ":::", "1:2:3:4:5:6:7:8:9",
                           "1::2::3", "12345::", "fe80::1%eth0", "1:2:3:4:5:6:7:1.2.3.4", "g::1", "1.2.3.4:80",
                           "1:2:3:4:5:6:7::8" }) do
        assert.is_false(schema.ip_ok(s), s)
      end
    end)
  end)

  describe("versions", function()
    it("reads the version docker reads", function()
      assert.equal("3.13", schema.version_of({}))
      assert.equal("3.13", schema.version_of({ version = "3" }))
      assert.equal("3.13", schema.version_of({ version = "" }))
      assert.equal("3.7", schema.version_of({ version = "3.7" }))
      assert.equal("3.1", schema.version_of({ version = 3.1 }))
      assert.equal("2", schema.version_of({ version = 2 }))
    end)

    it("checks a version value exactly like docker", function()
      assert.same({ "3.13" }, { schema.check_version(nil) })
      assert.same({ "3.13" }, { schema.check_version("3") })
      assert.same({ "3.0" }, { schema.check_version("3.0") })
      assert.same({ nil, "unsupported Compose file version: 2", "ESCHEMA" }, { schema.check_version("2") })
      assert.same({ nil, "unsupported Compose file version: 2", "ESCHEMA" }, { schema.check_version(2) })
      assert.same({ nil, "unsupported Compose file version: 3.14", "ESCHEMA" }, { schema.check_version("3.14") })
      assert.same({ nil, "unsupported Compose file version: <nil>", "ESCHEMA" }, { schema.check_version(NULL) })
      assert.same({ nil, "version must be a string", "ESCHEMA" }, { schema.check_version(3) })
      assert.same({ nil, "version must be a string", "ESCHEMA" }, { schema.check_version(3.1) })
      assert.same({ nil, "version must be a string", "ESCHEMA" }, { schema.check_version(3.0) })
      -- docker prints the value with Go's %v (checked against docker 28)
      -- (floats as table keys would turn into integers: pairs in a list)
      for _, c in ipairs({ { 1000000.0, "1e+06" }, { 1234567.0, "1.234567e+06" }, { 0.00001, "1e-05" },
                           { 123456.0, "123456" }, { 2.5, "2.5" }, { 1000000, "1000000" } }) do
        assert.same({ nil, "unsupported Compose file version: " .. c[2], "ESCHEMA" }, { schema.check_version(c[1]) })
      end
      assert.same({ nil, "unsupported Compose file version: [3 a]", "ESCHEMA" }, { schema.check_version(list(3, "a")) })
      assert.same({ nil, "unsupported Compose file version: map[a:1]", "ESCHEMA" }, { schema.check_version(obj { a = 1 }) })
      assert.same({ nil, "unsupported Compose file version: true", "ESCHEMA" }, { schema.check_version(true) })
    end)

    it("validates with the document's version when none is given", function()
      local doc = obj { version = "3.0", services = obj { web = obj { image = "x", init = true } } }
      assert.same({ nil, "services.web Additional property init is not allowed", "ESCHEMA" }, { schema.validate(doc) })
      doc.version = "3.7"
      assert.is_true(schema.validate(doc))
      doc.version = 3
      assert.same({ nil, "version must be a string", "ESCHEMA" }, { schema.validate(doc) })
      doc.version = "2"
      assert.same({ nil, "unsupported Compose file version: 2", "ESCHEMA" }, { schema.validate(doc) })
    end)
  end)

  describe("messages", function()
    local yaml_ok, yaml = pcall(require, "slipway.yaml")
    local yit = yaml_ok and it or pending

    yit("name the file, line and column of the offending key", function()
      local text = table.concat({
        "version: '3.8'",
        "services:",
        "  web:",
        "    image: nginx",
        "    deploy:",
        "      replicas: '3'",
        "  db:",
        "    image: postgres",
        "    profiles: [debug]",
      }, "\n")
      local doc, pos = yaml.decode(text, { positions = true })
      local ok, msg, code = schema.validate(doc, nil, pos, "compose.yml")
      assert.is_nil(ok)
      assert.equal("ESCHEMA", code)
      -- two problems at the same depth: docker picks at random, slipway the
      -- first in the file
      assert.equal("compose.yml:6:7: services.web.deploy.replicas must be a integer", msg)
      doc.services.web.deploy.replicas = 3
      assert.same({ nil, "compose.yml:9:5: services.db Additional property profiles is not allowed", "ESCHEMA" },
        { schema.validate(doc, nil, pos, "compose.yml") })
    end)

    yit("report forbidden keys before looking at the version", function()
      local doc, pos = yaml.decode("version: '2'\nservices:\n  a:\n    image: x\n    volumes_from: [b]\n",
        { positions = true })
      assert.same({ nil, "c.yml:5:5: Configuration contains forbidden properties", "ESCHEMA" },
        { schema.check_forbidden(doc, pos, "c.yml") })
      assert.same({ nil, "c.yml:5:5: Configuration contains forbidden properties", "ESCHEMA" },
        { schema.validate(doc, nil, pos, "c.yml") })
    end)

    it("compare list elements as docker does (through JSON)", function()
      local function caps(...) return obj { services = obj { web = obj { image = "x", expose = list(...) } } } end
      assert.is_true(schema.validate(caps("n3", 3)))
      assert.is_true(schema.validate(caps("s3:abc", "abc")))
      assert.is_true(schema.validate(caps("3", 3)))
      assert.same({ nil, "services.web.expose array items[0,1] must be unique", "ESCHEMA" },
        { schema.validate(caps(3, 3.0)) })
      -- invalid UTF-8 becomes U+FFFD on the way to JSON
      assert.same({ nil, "services.web.expose array items[0,1] must be unique", "ESCHEMA" },
        { schema.validate(caps("a\255", "a\254")) })
      assert.same({ nil, "services.web.expose array items[1,2] must be unique", "ESCHEMA" },
        { schema.validate(caps("a", "b", "b")) })
    end)

    it("refuse unknown options", function()
      assert.has_error(function() schema.validate(obj(), nil, nil, nil, { sort = true }) end,
        "schema.validate: unknown option sort")
    end)

    it("refuse what docker cannot turn into JSON", function()
      local doc = obj { services = obj { web = obj { image = "x" } }, ["x-a"] = 0 / 0 }
      assert.same({ nil, "json: unsupported value: NaN", "ESCHEMA" }, { schema.validate(doc) })
      doc["x-a"] = -math.huge
      assert.same({ nil, "json: unsupported value: -Inf", "ESCHEMA" }, { schema.validate(doc) })
    end)
  end)

  describe("corpus", function()
    local yaml_ok, yaml = pcall(require, "slipway.yaml")
    local interp_ok, interpolate = pcall(require, "slipway.compose.interpolate")
    local cit = (yaml_ok and interp_ok) and it or pending
    local manifest = {}
    for line in read(CORPUS .. "MANIFEST.tsv"):gmatch("[^\n]+") do
      local file, code = line:match("^([^\t]+)\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t(%d)")
      if file then manifest[#manifest + 1] = { file = file, code = tonumber(code) } end
    end

    -- The classes docker reports for the corpus' rejected files.
    local function class_of(msg)
      msg = strip(msg)
      return msg:match("^(%S+ must be a %a+)") or msg:match("(Additional property %S+ is not allowed)")
        or msg:match("^(Configuration contains forbidden properties)") or msg:match("^(error while interpolating)")
        or msg
    end

    cit("accepts the 60 accepted files and rejects the 19 schema rejections with docker's class", function()
      assert.equal(80, #manifest)
      local accepted, rejected, verdicts, problems = 0, 0, {}, {}
      for _, entry in ipairs(manifest) do
        local name = entry.file:gsub("%.yml$", "")
        local doc, pos = yaml.decode(read(CORPUS .. entry.file), { positions = true, filename = entry.file })
        local env = {}
        for l in read(CORPUS .. name .. ".vars.env"):gmatch("[^\n]+") do
          local k, v = l:match("^([^=]+)=(.*)$")
          if k then env[k] = v end
        end
        -- docker validates after interpolation and the casts of typed
        -- fields (slipway.compose.interpolate, in place: positions stay)
        local iok, ierr = pcall(interpolate.interpolate, doc, {
          lookup = function(n) return env[n] end,
          fail = function(_, _, msg) error({ msg = msg }) end,
        })
        local ok, msg = true, nil
        if iok then ok, msg = schema.validate(doc, nil, pos, entry.file) end
        local stderr = exists(CORPUS .. name .. ".stderr.txt") and read(CORPUS .. name .. ".stderr.txt") or ""
        local expected = {}
        for l in stderr:gmatch("[^\n]+") do
          if not l:match("^#") and not l:match("^level=") then expected[class_of(l)] = true end
        end
        if entry.code == 0 then
          if not iok then problems[#problems + 1] = entry.file .. " should interpolate: " .. tostring(ierr.msg)
          elseif ok then accepted = accepted + 1
          else problems[#problems + 1] = entry.file .. " should pass: " .. msg end
        elseif not iok then
          -- rejected while interpolating (a typed field from a variable):
          -- docker never reaches the schema
          assert.is_true(expected[class_of(ierr.msg)], ierr.msg)
          verdicts[#verdicts + 1] = entry.file .. ": interpolation"
        elseif ok then
          problems[#problems + 1] = entry.file .. " should be rejected"
        elseif not expected[class_of(msg)] then
          problems[#problems + 1] = entry.file .. ": " .. msg .. " is not docker's class"
        else
          rejected = rejected + 1
          assert.matches("^" .. entry.file:gsub("%p", "%%%0") .. ":%d+:%d+: ", msg)
        end
      end
      assert.same({}, problems)
      assert.same({ 60, 19 }, { accepted, rejected })
      io.stderr:write(("  corpus: %d accepted, %d rejected with docker's class, %s\n"):format(
        accepted, rejected, table.concat(verdicts, "; ")))
    end)
  end)
end)
