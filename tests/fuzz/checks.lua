-- tests/fuzz/checks.lua: the property each libFuzzer target checks on one
-- input (tests/fuzz/fuzz_harness.h calls M[target](input)). A check returns
-- when the code handled the input, accepted or rejected with one of its
-- ordinary errors, and raises "INTERNAL: ..." for anything else: a Lua
-- runtime error escaping the code ("attempt to index a nil value"), a
-- rejection that does not name the file, output that does not load back.
-- tests/fuzz_regressions_spec.lua runs the same checks on the saved inputs.
local yaml = require("slipway.yaml")
local json = require("slipway.json")
local compose = require("slipway.compose")
local interpolate = require("slipway.compose.interpolate")

local M = {}
local NULL = yaml.null

local function internal(fmt, ...)
  error("INTERNAL: " .. fmt:format(...), 0)
end

-- Deep equality of decoded values; numbers by value (go-yaml writes the
-- float 1.0 as "1"), NaN equal to itself, and map key order compared too
-- unless unordered.
local function same(a, b, path, unordered)
  if type(a) ~= type(b) then return false, path end
  if type(a) == "number" then
    if a ~= a and b ~= b then return true end
    return a == b, path
  end
  if type(a) ~= "table" then return a == b, path end
  if (getmetatable(a) == yaml.array_mt) ~= (getmetatable(b) == yaml.array_mt) then return false, path end
  for k, v in pairs(a) do
    local ok, where = same(v, b[k], path .. "." .. tostring(k), unordered)
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) end
  end
  if getmetatable(a) ~= yaml.array_mt and not unordered then
    local ka, kb = yaml.keys(a), yaml.keys(b)
    for i = 1, math.max(#ka, #kb) do
      if ka[i] ~= kb[i] then return false, path .. " (key order)" end
    end
  end
  return true
end
M.same = same

local function show(s)
  return ("%q"):format(s)
end

---------------------------------------------------------------------------
-- slipway.yaml

local YAML_ERROR = "^fuzz%.yml:%d+:%d+: "

function M.yaml(text)
  local ok, doc, pos, code = pcall(yaml.decode, text, { filename = "fuzz.yml", positions = true })
  if not ok then internal("yaml.decode raised: %s", tostring(doc)) end
  local ok_all, docs, msg_all = pcall(yaml.decode_all, text, { filename = "fuzz.yml" })
  if not ok_all then internal("yaml.decode_all raised: %s", tostring(docs)) end
  if doc == nil then
    if type(pos) ~= "string" or not pos:match(YAML_ERROR) or code ~= "EYAML" then
      internal("yaml.decode rejected without file:line:col/EYAML: %s %s", tostring(pos), tostring(code))
    end
    if docs ~= nil then internal("decode failed (%s) but decode_all succeeded", pos) end
    return
  end
  if type(pos) ~= "table" then internal("yaml.decode gave no positions") end
  if docs == nil then
    if type(msg_all) ~= "string" or not msg_all:match(YAML_ERROR) then
      internal("yaml.decode_all rejected without file:line:col: %s", tostring(msg_all))
    end
  else
    local first = docs[1]
    if first == nil then first = NULL end
    local eq, where = same(doc, first, "$")
    if not eq then internal("decode and decode_all()[1] differ at %s", where) end
  end
  local ok_enc, out = pcall(yaml.encode, doc)
  if not ok_enc then internal("yaml.encode of a decoded value raised: %s", tostring(out)) end
  local back, err = yaml.decode(out, { filename = "encoded.yml" })
  if back == nil and err ~= nil then
    internal("encoded text does not decode: %s\n--- encoded:\n%s", err, out)
  end
  if back == nil then back = NULL end
  local eq, where = same(doc, back, "$")
  if not eq then internal("encode -> decode changed the value at %s\n--- encoded:\n%s", where, out) end
  -- the same with keys in go-yaml's order (the key sorter sees every key)
  local ok_sorted, sorted = pcall(yaml.encode, doc, { sort_keys = true })
  if not ok_sorted then internal("yaml.encode{sort_keys} raised: %s", tostring(sorted)) end
  local back2, err2 = yaml.decode(sorted, { filename = "sorted.yml" })
  if back2 == nil and err2 ~= nil then internal("sorted text does not decode: %s\n--- encoded:\n%s", err2, sorted) end
  if back2 == nil then back2 = NULL end
  eq, where = same(doc, back2, "$", true)
  if not eq then internal("encode{sort_keys} -> decode changed the value at %s\n--- encoded:\n%s", where, sorted) end
end

---------------------------------------------------------------------------
-- interpolation

-- The variables every input sees (the dictionary names them too).
local VARS = { A = "a", B = "b-c", EMPTY = "", BR = "}", DOL = "$x", NUM = "3", T = "true", F = "1.5" }
local function lookup(name)
  if type(name) ~= "string" then internal("lookup called with a %s", type(name)) end
  return VARS[name]
end

local INTERP_ERRORS = {
  "^invalid interpolation format for ",
  "^error while interpolating ",
  "^required variable ",
}

local function is_interp_error(msg)
  for _, p in ipairs(INTERP_ERRORS) do
    if msg:match(p) then return true end
  end
  return false
end

local Fail = {}

local function with_fail(fn)
  local ctx = {
    lookup = lookup,
    fail = function(holder, key, msg)
      if type(holder) ~= "table" or key == nil then internal("fail without holder/key: %s", tostring(msg)) end
      error(setmetatable({ msg = msg }, Fail), 0)
    end,
  }
  local ok, err = pcall(fn, ctx)
  if ok then return nil end
  if getmetatable(err) ~= Fail then internal("interpolate raised: %s", tostring(err)) end
  if type(err.msg) ~= "string" or not is_interp_error(err.msg) then
    internal("interpolate failed with an unknown message: %s", tostring(err.msg))
  end
  return err.msg
end

local function arr(t) return setmetatable(t, yaml.array_mt) end

function M.interpolate(template)
  local ok, out, err = pcall(interpolate.substitute, template, lookup)
  if not ok then internal("substitute raised: %s", tostring(out)) end
  if out == nil then
    if type(err) ~= "string" then internal("substitute failed without a message") end
  elseif type(out) ~= "string" then
    internal("substitute returned a %s", type(out))
  end
  if not template:find("$", 1, true) and out ~= template then
    internal("a template without $ changed: %s -> %s", show(template), show(out))
  end
  -- "$$" is a literal "$": escaping every "$" must give the text back.
  local escaped = template:gsub("%$", "$$")
  local ok2, back = pcall(interpolate.substitute, escaped, lookup)
  if not ok2 then internal("substitute raised on the escaped text: %s", tostring(back)) end
  if back ~= template then
    internal("substitute(escape(s)) ~= s: %s -> %s", show(escaped), show(tostring(back)))
  end
  -- The same template at a plain field and at typed fields of a document.
  local doc = {
    services = {
      web = {
        image = template,
        privileged = template,
        deploy = { replicas = template, update_config = { max_failure_ratio = template } },
        ports = arr({ { target = template, published = template } }),
        environment = arr({ template }),
        ulimits = { nofile = template },
      },
    },
    ["x-extra"] = { template },
    networks = { front = { external = template } },
  }
  local msg = with_fail(function(ctx) interpolate.interpolate(doc, ctx) end)
  local plain = { services = { web = { image = template } } }
  local msg_plain = with_fail(function(ctx) interpolate.interpolate(plain, ctx) end)
  if out ~= nil then
    if msg_plain then internal("substitute accepted %s but interpolate failed: %s", show(template), msg_plain) end
    if plain.services.web.image ~= out then
      internal("interpolate and substitute disagree on %s", show(template))
    end
    if msg and msg:match("^invalid interpolation format") then
      internal("substitute accepted %s but the document failed: %s", show(template), msg)
    end
  elseif not msg_plain then
    internal("substitute rejected %s but interpolate accepted it", show(template))
  end
end

---------------------------------------------------------------------------
-- compose loader

-- An input is compose.yml, then optionally an override file and a .env
-- file, each after its marker line.
local OVERRIDE_MARK, ENV_MARK = "\n#@@override\n", "\n#@@env\n"

local ENVIRON = { TAG = "1.0", HOME = "/home/fuzz", EMPTY = "", REPLICAS = "2", PORT = "8080", A = "a" }

local function split(data)
  local main, override, env = data, nil, nil
  local e = main:find(ENV_MARK, 1, true)
  if e then main, env = main:sub(1, e - 1), main:sub(e + #ENV_MARK) end
  local o = main:find(OVERRIDE_MARK, 1, true)
  if o then main, override = main:sub(1, o - 1), main:sub(o + #OVERRIDE_MARK) end
  return main, override, env
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function load_quietly(files, opts)
  local ok, stack, warnings, code = pcall(compose.try_load, files, opts)
  if not ok then internal("compose.try_load raised: %s", tostring(stack)) end
  return stack, warnings, code
end

local function check_compose(dir, data)
  local main, override, env = split(data)
  local files = { dir .. "/compose.yml" }
  write(files[1], main)
  if override then
    files[2] = dir .. "/override.yml"
    write(files[2], override)
  end
  local opts = { environ = ENVIRON, workdir = dir }
  if env then
    opts.env_file = dir .. "/vars.env"
    write(opts.env_file, env)
  end
  local stack, warnings, code = load_quietly(files, opts)
  if stack == nil then
    local msg = warnings
    if type(msg) ~= "string" or type(code) ~= "string" then
      internal("try_load failed without a message and code: %s %s", tostring(msg), tostring(code))
    end
    if not msg:find(dir, 1, true) then internal("the error does not name the file: %s", msg) end
    -- A Lua runtime error turned into a rejection names a .lua file and
    -- line (or says "attempt to ...") that the input itself did not contain.
    for leak in msg:gmatch("[%w_%-/%.]+%.lua:%d+:") do
      if not data:find(leak, 1, true) then internal("a Lua error became a load error: %s", msg) end
    end
    if msg:find("attempt to ", 1, true) and not data:find("attempt to ", 1, true) then
      internal("a Lua error became a load error: %s", msg)
    end
    return
  end
  if type(stack) ~= "table" or type(warnings) ~= "table" then internal("try_load returned no Stack") end
  for _, w in ipairs(warnings) do
    if type(w) ~= "string" or not w:find(dir, 1, true) then internal("a warning does not name the file: %s", tostring(w)) end
  end
  local ok, text = pcall(compose.render, stack)
  if not ok then internal("compose.render raised: %s", tostring(text)) end
  -- docker prints long-form ports and volumes whatever the version says, so
  -- its output for a 3.0/3.1 file is only valid under a newer schema: the
  -- round trip is checked under the newest one.
  stack.version = "3.13"
  ok, text = pcall(compose.render, stack)
  if not ok then internal("compose.render raised: %s", tostring(text)) end
  local ok2, escaped = pcall(compose.render, stack, { escape_dollars = true })
  if not ok2 then internal("compose.render{escape_dollars} raised: %s", tostring(escaped)) end
  -- load -> render -> load gives the same Stack
  local again_path = dir .. "/rendered.yml"
  write(again_path, escaped)
  local again, err, again_code = load_quietly({ again_path }, { environ = {}, workdir = dir })
  if again == nil then
    -- docker's own output does not always pass its schema again (a network
    -- "a b" from a list becomes a map key the schema's pattern refuses), but
    -- it is always YAML and never an interpolation error.
    if again_code == "ESCHEMA" or again_code == "ECOMPOSE" then return end
    internal("the rendered config does not load again: %s %s\n--- rendered:\n%s", err, again_code, escaped)
  end
  local ok3, text2 = pcall(compose.render, again)
  if not ok3 then internal("compose.render of the reloaded Stack raised: %s", tostring(text2)) end
  if text ~= text2 then
    internal("load -> render -> load changed the Stack\n--- first:\n%s\n--- again:\n%s", text, text2)
  end
end

local FILES = { "compose.yml", "override.yml", "vars.env", "rendered.yml" }

function M.compose(data)
  local dir = FUZZ_TMPDIR or os.getenv("TMPDIR") or "/tmp"
  local ok, err = pcall(check_compose, dir, data)
  for _, f in ipairs(FILES) do os.remove(dir .. "/" .. f) end
  if not ok then error(err, 0) end
end

---------------------------------------------------------------------------
-- slipway.json

-- Exact equality of decoded values: integer and float differ, -0.0 is not
-- 0.0, arrays and objects keep their markers.
local function same_json(a, b, path)
  if type(a) ~= type(b) then return false, path end
  if type(a) == "number" then
    return math.type(a) == math.type(b) and a == b and (a ~= 0 or 1 / a == 1 / b), path
  end
  if type(a) ~= "table" then return a == b, path end
  if getmetatable(a) ~= getmetatable(b) then return false, path .. " (marker)" end
  for k, v in pairs(a) do
    local ok, where = same_json(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) end
  end
  return true
end

function M.json(text)
  local ok, v, err, code = pcall(json.decode, text)
  if not ok then internal("json.decode raised: %s", tostring(v)) end
  local ok_r, repaired = pcall(json.replace_invalid_utf8, text)
  if not ok_r then internal("json.replace_invalid_utf8 raised: %s", tostring(repaired)) end
  if not utf8.len(repaired) or (utf8.len(text) and repaired ~= text) then
    internal("replace_invalid_utf8 gave %s for %s", show(repaired), show(text))
  end
  local back = json.decode(json.encode(text, { invalid_utf8 = "replace" }))
  if back ~= repaired then internal("encode with invalid_utf8 = 'replace' disagrees with replace_invalid_utf8") end
  if v == nil then
    local at = type(err) == "string" and tonumber(err:match("^json: .+ at byte (%d+)$"))
    if code ~= "EJSON" or not at or at < 1 or at > #text + 1 then
      internal("json.decode failed without its error: %s %s", tostring(err), tostring(code))
    end
    return
  end
  if not utf8.len(text) then internal("json.decode accepted text that is not UTF-8: %s", show(text)) end
  if type(v) == "number" then                      -- Lua's own reader agrees
    local ref = tonumber(text)
    if not same_json(v, ref, "$") then internal("decoded %s as %s, Lua reads %s", show(text), tostring(v), tostring(ref)) end
  end
  local ok_e, encoded = pcall(json.encode, v)
  if not ok_e then
    if tostring(encoded):find("cannot encode NaN or infinity", 1, true) then return end   -- 1e400
    internal("json.encode of a decoded value raised: %s", tostring(encoded))
  end
  for _, opts in ipairs({ {}, { pretty = true }, { sort_keys = false } }) do
    local text2 = json.encode(v, opts)
    local again, err2 = json.decode(text2)
    if again == nil then internal("encoded text does not decode: %s\n--- text:\n%s", err2, text2) end
    local equal, where = same_json(v, again, "$")
    if not equal then internal("decode -> encode -> decode changed the value at %s\n--- text:\n%s", where, text2) end
  end
  if json.encode(json.decode(encoded)) ~= encoded then internal("encode is not stable:\n%s", encoded) end
end

return M
