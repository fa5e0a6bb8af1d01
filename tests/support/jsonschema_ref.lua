-- support.jsonschema_ref: a small JSON Schema (draft-04) interpreter used
-- only by tests/compose_schema_spec.lua as the reference that slipway's
-- compose rules are compared with. It reads docker's official schema files
-- as they are and evaluates them the way the Go library docker uses
-- (gojsonschema 1.2) does: the same keywords, the same problems in the
-- same visiting order, the same "score" that picks which failed oneOf
-- branch's problems are kept, and docker's choice and wording of the one
-- problem it reports (cli/compose/schema: deepest path wins, a type error
-- wins a tie, a failed oneOf reports its closest branch's reason).
--
--   local ref = require("support.jsonschema_ref")
--   local v = ref.new(schema_table, { null = json.null, formats = {name = fn},
--                                     kind = fn(value) -> kind, order = fn(t) -> keys })
--   v:validate(doc) -> true | false, message
--
-- Keywords it does not know raise an error, so a schema using something
-- new cannot be silently half-checked.
local M = {}

-- Go regexp (RE2) subset -> Lua pattern: anchors, ".", classes, and the
-- quantifiers + * ?. Go's "." does not match a newline.
local function go_regex_to_lua(re)
  local out, i = {}, 1
  local anchored_start = re:sub(1, 1) == "^"
  if anchored_start then out[1] = "^"; i = 2 end
  while i <= #re do
    local c = re:sub(i, i)
    if c == "." then out[#out + 1] = "[^\n]"
    elseif c == "[" then
      local j = re:find("]", i + 2, true)
      assert(j, "jsonschema_ref: unsupported regex " .. re)
      local body = re:sub(i + 1, j - 1):gsub("%%", "%%%%"):gsub("([%.%-])", "%%%1")
      -- a-z style ranges were escaped above; put them back
      body = body:gsub("(%w)%%%-(%w)", "%1-%2")
      out[#out + 1] = "[" .. body .. "]"
      i = j
    elseif c == "$" and i == #re then out[#out + 1] = "$"
    elseif c == "+" or c == "*" or c == "?" then out[#out + 1] = c
    elseif c:match("[%w_%-]") then out[#out + 1] = c:match("%w") and c or "%" .. c
    elseif c == "\\" then i = i + 1; out[#out + 1] = "%" .. re:sub(i, i)
    else error("jsonschema_ref: unsupported regex " .. re) end
    i = i + 1
  end
  return table.concat(out)
end
M.go_regex_to_lua = go_regex_to_lua

local KNOWN = {
  ["$schema"] = true, id = true, definitions = true, default = true, description = true,
  type = true, properties = true, patternProperties = true, additionalProperties = true,
  required = true, items = true, additionalItems = true, oneOf = true, anyOf = true,
  allOf = true, ["not"] = true, enum = true, format = true, minimum = true, maximum = true,
  exclusiveMinimum = true, exclusiveMaximum = true, minLength = true, maxLength = true,
  pattern = true, uniqueItems = true, minItems = true, maxItems = true,
  minProperties = true, maxProperties = true, dependencies = true, ["$ref"] = true,
}

local V = {}
V.__index = V

function M.new(schema, opts)
  local self = setmetatable({ root = schema, null = opts.null, formats = opts.formats or {},
                              kind = opts.kind, order = opts.order, canon = opts.canon }, V)
  self.patterns = {}
  return self
end

function V:resolve(ref)
  assert(ref:sub(1, 2) == "#/", "jsonschema_ref: only local refs: " .. ref)
  local node = self.root
  for part in ref:sub(3):gmatch("[^/]+") do
    node = node[part]
    assert(node ~= nil, "jsonschema_ref: unresolved " .. ref)
  end
  return node
end

function V:matches(re, s)
  local p = self.patterns[re]
  if not p then p = go_regex_to_lua(re); self.patterns[re] = p end
  return s:find(p) ~= nil
end

-- JSON type of a value ("integer" for integral numbers)
function V:jtype(v)
  local k = self.kind(v)
  if k == "mapping" then return "object" elseif k == "list" then return "array" end
  return k
end

local function add(res, what, ctx, detail)
  detail = detail or {}
  detail.what, detail.ctx = what, ctx
  res.errs[#res.errs + 1] = detail
  res.score = res.score - 2
end

local function merge(res, sub)
  for _, e in ipairs(sub.errs) do res.errs[#res.errs + 1] = e end
  res.score = res.score + sub.score
end

local function types_of(s)
  if s.type == nil then return nil end
  if type(s.type) == "string" then return { s.type } end
  return s.type
end

local function type_ok(types, given)
  for _, t in ipairs(types) do
    if t == given or (t == "number" and given == "integer") then return true end
  end
  return false
end

function V:sub(s, v, ctx)
  local res = { errs = {}, score = 0 }
  self:rec(s, v, res, ctx)
  return res
end

-- gojsonschema's validateRecursive
function V:rec(s, v, res, ctx)
  for k in pairs(s) do assert(KNOWN[k], "jsonschema_ref: unknown keyword " .. tostring(k)) end
  if s["$ref"] then return self:rec(self:resolve(s["$ref"]), v, res, ctx) end
  local given = self:jtype(v)
  local types = types_of(s)
  if types and not type_ok(types, given) then
    add(res, "type", ctx, { expected = types, given = given })
    return
  end
  self:schema_checks(s, v, res, ctx)
  if given == "integer" or given == "number" then
    self:number_checks(s, v, res, ctx)
    self:common(s, v, res, ctx)
  elseif given == "array" then
    self:array_checks(s, v, res, ctx)
    self:common(s, v, res, ctx)
  elseif given == "object" then
    self:object_checks(s, v, res, ctx)
    self:common(s, v, res, ctx)
    if s.properties then
      for _, k in ipairs(self.order(v)) do
        if s.properties[k] ~= nil then self:rec(s.properties[k], v[k], res, ctx .. "." .. k) end
      end
    end
  elseif given == "string" then
    self:common(s, v, res, ctx)
    self:string_checks(s, v, res, ctx)
  else
    self:common(s, v, res, ctx)
  end
  res.score = res.score + 1
end

function V:schema_checks(s, v, res, ctx)
  if s.anyOf then
    local ok, best = false, nil
    for _, alt in ipairs(s.anyOf) do
      if not ok then
        local r = self:sub(alt, v, ctx)
        ok = #r.errs == 0
        if not ok and (best == nil or r.score > best.score) then best = r end
      end
    end
    if not ok then add(res, "anyof", ctx); if best then merge(res, best) end end
  end
  if s.oneOf then
    local n, best = 0, nil
    for _, alt in ipairs(s.oneOf) do
      local r = self:sub(alt, v, ctx)
      if #r.errs == 0 then n = n + 1
      elseif n == 0 and (best == nil or r.score > best.score) then best = r end
    end
    if n ~= 1 then
      add(res, "oneof", ctx)
      if n == 0 then merge(res, best) end
    end
  end
  if s.allOf then
    local n = 0
    for _, alt in ipairs(s.allOf) do
      local r = self:sub(alt, v, ctx)
      if #r.errs == 0 then n = n + 1 end
      merge(res, r)
    end
    if n ~= #s.allOf then add(res, "allof", ctx) end
  end
  if s["not"] then
    if #self:sub(s["not"], v, ctx).errs == 0 then add(res, "not", ctx) end
  end
  if s.dependencies and self:jtype(v) == "object" then
    for _, k in ipairs(self.order(v)) do
      local dep = s.dependencies[k]
      if dep ~= nil then
        if self.kind(dep) == "list" then
          for _, need in ipairs(dep) do
            if v[need] == nil then add(res, "dependency", ctx, { dependency = need }) end
          end
        else
          self:rec(dep, v, res, ctx)
        end
      end
    end
  end
  res.score = res.score + 1
end

function V:common(s, v, res, ctx)
  if s.enum then
    local c, found = self.canon(v), false
    for _, e in ipairs(s.enum) do if self.canon(e) == c then found = true end end
    if not found then add(res, "enum", ctx, { allowed = s.enum }) end
  end
  res.score = res.score + 1
end

function V:number_checks(s, v, res, ctx)
  if s.maximum ~= nil then
    if (s.exclusiveMaximum == true and v >= s.maximum) or v > s.maximum then
      add(res, "maximum", ctx, { max = s.maximum })
    end
  end
  if s.minimum ~= nil then
    if (s.exclusiveMinimum == true and v <= s.minimum) or v < s.minimum then
      add(res, "minimum", ctx, { min = s.minimum })
    end
  end
  if s.format and self.formats[s.format] and not self.formats[s.format](v) then
    add(res, "format", ctx, { format = s.format })
  end
  res.score = res.score + 1
end

function V:string_checks(s, v, res, ctx)
  local len = utf8.len(v) or #v
  if s.minLength and len < s.minLength then add(res, "minLength", ctx, { min = s.minLength }) end
  if s.maxLength and len > s.maxLength then add(res, "maxLength", ctx, { max = s.maxLength }) end
  if s.pattern and not self:matches(s.pattern, v) then add(res, "pattern", ctx, { pattern = s.pattern }) end
  if s.format and self.formats[s.format] and not self.formats[s.format](v) then
    add(res, "format", ctx, { format = s.format })
  end
  res.score = res.score + 1
end

function V:array_checks(s, v, res, ctx)
  local n = #v
  if s.items ~= nil then
    if self.kind(s.items) == "list" then
      for i = 1, math.min(n, #s.items) do merge(res, self:sub(s.items[i], v[i], ctx .. "." .. (i - 1))) end
      if #s.items < n then
        if s.additionalItems == false then add(res, "additionalItems", ctx)
        elseif type(s.additionalItems) == "table" then
          for i = #s.items + 1, n do merge(res, self:sub(s.additionalItems, v[i], ctx .. "." .. (i - 1))) end
        end
      end
    else
      for i = 1, n do merge(res, self:sub(s.items, v[i], ctx .. "." .. (i - 1))) end
    end
  end
  if s.minItems and n < s.minItems then add(res, "minItems", ctx) end
  if s.maxItems and n > s.maxItems then add(res, "maxItems", ctx) end
  if s.uniqueItems then
    local seen = {}
    for j = 1, n do
      local c = self.canon(v[j])
      if seen[c] then add(res, "unique", ctx, { i = seen[c] - 1, j = j - 1 }) end
      seen[c] = j
    end
  end
  res.score = res.score + 1
end

function V:object_checks(s, v, res, ctx)
  local keys = self.order(v)
  if s.minProperties and #keys < s.minProperties then add(res, "minProperties", ctx) end
  if s.maxProperties and #keys > s.maxProperties then add(res, "maxProperties", ctx) end
  for _, name in ipairs(s.required or {}) do
    if v[name] ~= nil then res.score = res.score + 1
    else add(res, "required", ctx, { property = name }) end
  end
  local pats = {}
  for re, sub in pairs(s.patternProperties or {}) do pats[#pats + 1] = { re, sub } end
  table.sort(pats, function(a, b) return a[1] < b[1] end)
  for _, k in ipairs(keys) do
    local found = s.properties ~= nil and s.properties[k] ~= nil
    local matched = false
    for _, p in ipairs(pats) do
      if self:matches(p[1], k) then
        matched = true
        merge(res, self:sub(p[2], v[k], ctx .. "." .. k))
      end
    end
    if matched then res.score = res.score + 1 end
    if not found and not matched then
      local ap = s.additionalProperties
      if ap == false then add(res, "additional", ctx, { property = k })
      elseif type(ap) == "table" then merge(res, self:sub(ap, v[k], ctx .. "." .. k)) end
    end
  end
  res.score = res.score + 1
end

-- docker's report of a failed validation (cli/compose/schema toError)

local function field(e)
  if e.ctx == "(root)" then return "(root)" end
  return (e.ctx:gsub("^%(root%)%.", ""))
end

local function specificity(e)
  local n = 1
  for _ in field(e):gmatch("%.") do n = n + 1 end
  return n
end

local function human(t)
  if t == "object" then return "mapping" elseif t == "array" then return "list" end
  return t
end

local function type_text(types)
  if #types == 1 then return types[1] end
  return "[" .. table.concat(types, ",") .. "]"
end

local function description(e)
  local w = e.what
  if w == "type" then return ("Invalid type. Expected: %s, given: %s"):format(type_text(e.expected), e.given)
  elseif w == "oneof" then return "Must validate one and only one schema (oneOf)"
  elseif w == "anyof" then return "Must validate at least one schema (anyOf)"
  elseif w == "allof" then return "Must validate all the schemas (allOf)"
  elseif w == "not" then return "Must not validate the schema (not)"
  elseif w == "required" then return e.property .. " is required"
  elseif w == "additional" then return "Additional property " .. e.property .. " is not allowed"
  elseif w == "enum" then
    local q = {}
    for i, a in ipairs(e.allowed) do q[i] = '"' .. a .. '"' end
    return field(e) .. " must be one of the following: " .. table.concat(q, ", ")
  elseif w == "format" then return "Does not match format '" .. e.format .. "'"
  elseif w == "pattern" then return "Does not match pattern '" .. e.pattern .. "'"
  elseif w == "unique" then return ("array items[%d,%d] must be unique"):format(e.i, e.j)
  elseif w == "minimum" then return "Must be greater than or equal to " .. string.format("%.10g", e.min)
  elseif w == "maximum" then return "Must be less than or equal to " .. string.format("%.10g", e.max)
  end
  return w
end

function M.report(errs)
  local most = 1
  for i, e in ipairs(errs) do
    local a, b = specificity(e), specificity(errs[most])
    if a > b then most = i
    elseif a == b and e.what == "type" and errs[most].what ~= "type" then most = i end
  end
  local parent = errs[most]
  local child = (most < #errs and (parent.what == "oneof" or parent.what == "anyof")) and errs[most + 1] or nil
  local text
  if parent.what == "type" then
    local names = {}
    for i, t in ipairs(parent.expected) do names[i] = human(t) end
    if #names == 1 then text = "must be a " .. names[1]
    else text = "must be a " .. table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names] end
  elseif child then text = description(child)
  else text = description(parent) end
  return field(parent) .. " " .. text
end

function V:validate(doc)
  local res = { errs = {}, score = 0 }
  self:rec(self.root, doc, res, "(root)")
  if #res.errs == 0 then return true end
  return false, M.report(res.errs)
end

return M
