-- The request checks of the stand-in Vercel API (tests/fakes/vercel_api.lua):
-- an OpenAPI 3.0 document read as it is (../shared/specs/vercel/), its
-- operations found by method and path template, and each request's path
-- and query parameters, headers and JSON body checked against the
-- operation's schemas, the way the real API rejects a bad request: 400
-- with {"error": {"code": "bad_request", "message": "Invalid request: ...",
-- "keyword", "dataPath", "params"}} (the fields the Vercel CLI reads back
-- into SchemaValidationFailed: packages/cli/src/util/deploy/create-deploy.ts).
--
--   local openapi = require("fakes.vercel_openapi")
--   local doc = openapi.load(path)          (or openapi.from_table(decoded))
--   local op, params = doc:operation("POST", "/v13/deployments/dpl_1")
--   local problem = doc:check_request(op, params, req, extensions)
--     -> nil | { keyword, dataPath, message, params }
--   doc:check_value(schema, value, path) -> nil | problem (responses too)
--
-- Keywords it does not know raise, so a schema using something new cannot
-- be half-checked without anyone noticing.
local json = require("slipway.json")
local fs = require("slipway.fs")

local M = {}

local Doc = {}
Doc.__index = Doc

local ANNOTATIONS = {
  description = true, example = true, title = true, deprecated = true, default = true,
  format = true, readOnly = true, writeOnly = true, externalDocs = true,
}

local function problem(keyword, path, message, params)
  return { keyword = keyword, dataPath = path, message = message, params = params or {} }
end

local function json_type(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "string" or t == "boolean" then return t end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == json.array_mt then return "array" end
    if mt == json.object_mt then return "object" end
    return next(v) == nil and "object" or (v[1] ~= nil and "array" or "object")
  end
  return t
end

local function type_ok(want, v)
  local have = json_type(v)
  if want == "number" then return have == "number" or have == "integer" end
  if want == "integer" then
    return have == "integer" or (have == "number" and v == math.floor(v))
  end
  return have == want
end

function Doc:resolve(schema)
  local ref = schema["$ref"]
  if ref == nil then return schema end
  local name = ref:match("^#/components/schemas/(.+)$")
  local target = name and self.raw.components.schemas[name]
  if target == nil then error("vercel_openapi: cannot resolve " .. ref) end
  return target
end

local function shown(v)
  local ok, s = pcall(json.encode, v)
  return ok and s or tostring(v)
end

-- The first problem of value against schema, or nil. path is the
-- ajv-style dataPath of value (".files[0].sha").
function Doc:check_value(schema, v, path)
  schema = self:resolve(schema)
  for k in pairs(schema) do
    if not (ANNOTATIONS[k] or k == "type" or k == "nullable" or k == "enum" or k == "properties" or
        k == "required" or k == "additionalProperties" or k == "items" or k == "oneOf" or
        k == "anyOf" or k == "maxLength" or k == "maxProperties" or k == "minItems" or
        k == "maxItems") then
      error("vercel_openapi: unknown schema keyword '" .. k .. "' at " .. path)
    end
  end
  if v == json.null then
    if schema.nullable then return nil end
    if schema.enum then
      for _, e in ipairs(schema.enum) do if e == json.null then return nil end end
    end
    if schema.type or schema.enum then
      return problem("type", path, ("`%s` should be %s"):format(path, schema.type or "one of the allowed values"),
        { type = schema.type })
    end
  end
  if schema.type and not type_ok(schema.type, v) then
    return problem("type", path, ("`%s` should be %s"):format(path, schema.type), { type = schema.type })
  end
  if schema.enum then
    local found = false
    for _, e in ipairs(schema.enum) do if e == v then found = true; break end end
    if not found then
      return problem("enum", path, ("`%s` should be equal to one of the allowed values: %s"):format(
        path, shown(schema.enum)), { allowedValues = schema.enum })
    end
  end
  if schema.maxLength and type(v) == "string" and utf8.len(v) and utf8.len(v) > schema.maxLength then
    return problem("maxLength", path, ("`%s` should NOT be longer than %d characters"):format(path, schema.maxLength),
      { limit = schema.maxLength })
  end
  local jt = json_type(v)
  if jt == "array" then
    if schema.minItems and #v < schema.minItems then
      return problem("minItems", path, ("`%s` should NOT have fewer than %d items"):format(path, schema.minItems))
    end
    if schema.maxItems and #v > schema.maxItems then
      return problem("maxItems", path, ("`%s` should NOT have more than %d items"):format(path, schema.maxItems))
    end
    if schema.items then
      for i, item in ipairs(v) do
        local p = self:check_value(schema.items, item, ("%s[%d]"):format(path, i - 1))
        if p then return p end
      end
    end
  elseif jt == "object" then
    if schema.required then
      for _, name in ipairs(schema.required) do
        if v[name] == nil then
          return problem("required", path, ("`%s` missing required property `%s`"):format(path, name),
            { missingProperty = name })
        end
      end
    end
    if schema.maxProperties then
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      if n > schema.maxProperties then
        return problem("maxProperties", path,
          ("`%s` should NOT have more than %d properties"):format(path, schema.maxProperties))
      end
    end
    local props = schema.properties or {}
    local names = {}
    for k in pairs(v) do names[#names + 1] = k end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(names) do
      local sub = props[k]
      local p
      if sub then
        p = self:check_value(sub, v[k], path .. "." .. k)
      elseif schema.additionalProperties == false then
        p = problem("additionalProperties", path,
          ("`%s` should NOT have additional property `%s`"):format(path, k), { additionalProperty = k })
      elseif type(schema.additionalProperties) == "table" then
        p = self:check_value(schema.additionalProperties, v[k], path .. "." .. k)
      end
      if p then return p end
    end
  end
  -- How many alternatives value matches, and the first one's problem.
  local function matches(alternatives)
    local matched, first = 0, nil
    for _, sub in ipairs(alternatives) do
      local p = self:check_value(sub, v, path)
      if p == nil then matched = matched + 1 else first = first or p end
    end
    return matched, first
  end
  -- The document's answers have oneOf alternatives that overlap (neither
  -- forbids other properties, so a full deployment matches both): for the
  -- stand-in's own answers (loose_one_of) one match is enough.
  if schema.oneOf then
    local matched, first = matches(schema.oneOf)
    if matched == 0 then return first end
    if matched > 1 and not self.loose_one_of then
      return problem("oneOf", path, ("`%s` should match exactly one schema in oneOf"):format(path),
        { passingSchemas = matched })
    end
  end
  if schema.anyOf then
    local matched, first = matches(schema.anyOf)
    if matched == 0 then return first end
  end
  return nil
end

-- The operation for method and a concrete path, and its path parameters.
function Doc:operation(method, path)
  method = method:lower()
  for _, route in ipairs(self.routes) do
    local caps = { path:match(route.pattern) }
    if #caps > 0 or path:match(route.pattern) then
      local op = self.raw.paths[route.template][method]
      if op then
        local params = {}
        for i, name in ipairs(route.names) do params[name] = caps[i] end
        return op, params, route.template
      end
    end
  end
  return nil
end

-- A query or header value as the schema's type wants it ("1" -> 1).
local function coerce(schema, s)
  local t = schema.type
  if t == nil and schema.oneOf then
    for _, sub in ipairs(schema.oneOf) do
      if sub.type == "number" and tonumber(s) then return tonumber(s) end
    end
    return s
  end
  if (t == "number" or t == "integer") then return tonumber(s) or s end
  if t == "boolean" then
    if s == "true" or s == "1" then return true elseif s == "false" or s == "0" then return false end
  end
  if t == nil and schema.enum then
    for _, e in ipairs(schema.enum) do
      if type(e) == "number" and tonumber(s) == e then return e end
    end
  end
  return s
end

-- Check a request: req = { query = {k = v}, headers = {lower-case = v},
-- body = string|nil, json = decoded body|nil }. extensions names body
-- properties the real API takes although the document leaves them out
-- (what the official client sends): { body = {name = schema},
-- file_item = {name = schema} }.
function Doc:check_request(op, path_params, req, extensions)
  for _, param in ipairs(op.parameters or {}) do
    local where, name = param["in"], param.name
    local raw
    if where == "path" then raw = path_params[name]
    elseif where == "query" then raw = req.query[name]
    elseif where == "header" then raw = req.headers[name:lower()] end
    if raw == nil then
      if param.required then
        return problem("required", where, ("missing required %s parameter `%s`"):format(where, name),
          { missingProperty = name })
      end
    else
      local schema = self:resolve(param.schema or {})
      local p = self:check_value(schema, coerce(schema, raw), ("%s.%s"):format(where, name))
      if p then return p end
    end
  end
  local body = op.requestBody
  if body then
    if body.required and (req.body == nil or req.body == "") then
      return problem("required", "body", "request body is required")
    end
    local ctype = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)") or ""
    local content = body.content or {}
    if req.body and req.body ~= "" and content[ctype:lower()] == nil then
      local allowed = {}
      for k in pairs(content) do allowed[#allowed + 1] = k end
      table.sort(allowed)
      return problem("contentType", "headers.content-type",
        ("content-type `%s` is not accepted here (expected %s)"):format(ctype, table.concat(allowed, " or ")))
    end
    if ctype:lower() == "application/json" and req.body and req.body ~= "" then
      local value, err = json.decode(req.body)
      if err then return problem("json", "body", "the body is not valid JSON: " .. err) end
      req.json = value
      local schema = self:resolve(content["application/json"].schema)
      if extensions then schema = M.extend(schema, extensions) end
      local p = self:check_value(schema, value, "")
      if p then return p end
    end
  end
  return nil
end

-- A copy of a request-body schema that also takes the extension
-- properties (top level, and in each item of `files`).
function M.extend(schema, ext)
  local copy = {}
  for k, v in pairs(schema) do copy[k] = v end
  copy.properties = {}
  for k, v in pairs(schema.properties or {}) do copy.properties[k] = v end
  for k, v in pairs(ext.body or {}) do copy.properties[k] = v end
  local files = schema.properties and schema.properties.files
  if files and ext.file_item then
    local items = { oneOf = {} }
    for i, alt in ipairs(files.items.oneOf) do
      local a = {}
      for k, v in pairs(alt) do a[k] = v end
      a.properties = {}
      for k, v in pairs(alt.properties) do a.properties[k] = v end
      for k, v in pairs(ext.file_item) do a.properties[k] = v end
      items.oneOf[i] = a
    end
    copy.properties.files = { type = "array", items = items }
  end
  return copy
end

-- A document from its decoded JSON.
function M.from_table(raw)
  local self = setmetatable({ raw = raw, routes = {} }, Doc)
  for template in pairs(raw.paths) do
    local names = {}
    local pattern = "^" .. template:gsub("[%-%.]", "%%%0"):gsub("{([^}]+)}", function(name)
      names[#names + 1] = name
      return "([^/]+)"
    end) .. "$"
    self.routes[#self.routes + 1] = { template = template, pattern = pattern, names = names }
  end
  -- literal segments win over parameters (/v4/aliases before /v4/aliases/{x})
  table.sort(self.routes, function(a, b)
    if #a.names ~= #b.names then return #a.names < #b.names end
    return a.template < b.template
  end)
  return self
end

function M.load(path)
  return M.from_table(assert(json.decode(assert(fs.read(path)))))
end

-- The paths the stand-in serves from the whole document, besides those of
-- the deployments subset.
M.PROJECT_PATHS = { "/v9/projects/{idOrName}", "/v10/projects/{projectId}/promote/{deploymentId}" }

local function refs_in(v, found)
  if type(v) ~= "table" then return found end
  for k, x in pairs(v) do
    if k == "$ref" and type(x) == "string" then found[#found + 1] = x end
    refs_in(x, found)
  end
  return found
end

-- The stand-in's one document, from the two of ../shared/specs/vercel (DIR):
-- the deployments subset, the project operations of the whole document,
-- and every schema they refer to, directly or not. (The repository keeps it
-- as tests/fakes/vercel-openapi.standin.json, written by
-- tools/vercel-standin-spec, so the stand-in runs without ../shared: the
-- demo on a fresh clone.)
function M.standin_document(dir)
  local raw = assert(json.decode(assert(fs.read(dir .. "/vercel-openapi.deployments-subset.json"))))
  local whole = assert(json.decode(assert(fs.read(dir .. "/vercel-openapi.json"))))
  for _, template in ipairs(M.PROJECT_PATHS) do raw.paths[template] = assert(whole.paths[template], template) end
  local from, schemas = raw.components.schemas, {}
  local pending = refs_in(raw.paths, {})
  while #pending > 0 do
    local name = table.remove(pending):match("^#/components/schemas/(.+)$")
    if name and schemas[name] == nil then
      schemas[name] = assert(from[name] or whole.components.schemas[name], name)
      refs_in(schemas[name], pending)
    end
  end
  raw.components.schemas = schemas
  return raw
end

-- The document without the prose the checks never read (a string
-- description, title or example), for the repository's copy.
function M.without_prose(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if (k == "description" or k == "title" or k == "example") and type(x) == "string" then v[k] = nil
    else M.without_prose(x) end
  end
  return v
end

return M
