-- The stand-in Vercel API checks requests against the repository's copy of
-- the documented contract (tests/fakes/vercel-openapi.standin.json), so
-- that it runs without ../shared (`make demo` on a fresh clone). That copy
-- must be exactly what tools/vercel-standin-spec makes of
-- ../shared/specs/vercel today, and hold every operation the stand-in
-- serves.
local openapi = require("fakes.vercel_openapi")
local repo = require("support.repo")
local fs = require("slipway.fs")
local json = require("slipway.json")

describe("the stand-in's Vercel document", function()
  local committed = assert(fs.read(repo.ROOT .. "/tests/fakes/vercel-openapi.standin.json"))

  it("is what tools/vercel-standin-spec writes from ../shared/specs/vercel", function()
    local doc = openapi.without_prose(openapi.standin_document(repo.SHARED .. "/specs/vercel"))
    local want = json.encode(doc, { sort_keys = true }) .. "\n"
    assert.is_true(want == committed, "tests/fakes/vercel-openapi.standin.json is out of date: run tools/vercel-standin-spec")
  end)

  it("has every operation the stand-in serves, and their schemas", function()
    local doc = openapi.from_table(json.decode(committed))
    for _, route in ipairs({
      { "POST", "/v13/deployments" }, { "GET", "/v13/deployments/dpl_1" },
      { "GET", "/v3/deployments/dpl_1/events" }, { "GET", "/v9/projects/web" },
      { "POST", "/v10/projects/prj_1/promote/dpl_1" },
    }) do
      assert.truthy(doc:operation(route[1], route[2]), table.concat(route, " "))
    end
    -- every reference resolves inside the copy
    local text = committed
    for name in text:gmatch('"%$ref":"#/components/schemas/([^"]+)"') do
      assert.truthy(doc.raw.components.schemas[name], name)
    end
  end)
end)
