-- slipway.ledger.restore: which state a rollback goes back to, read from
-- release records alone (the Docker side: tests/rollback_docker_spec.lua).
local restore = require("slipway.ledger.restore")

-- A release, newest first in the lists below: id, status, verified, and
-- its changes as { kind, target, status, data }.
local function rel(id, status, verified, changes)
  local list = {}
  for i, c in ipairs(changes or {}) do
    list[i] = { kind = c[1], target = c[2], status = c[3] or "applied", data = c[4] or { v = id },
                restorer = c.restorer == nil and "test.restorer" or c.restorer or nil }
  end
  return { id = id, status = status, verified = verified, changes = list }
end

describe("slipway.ledger.restore", function()
  it("last_verified: the newest successful, verified release that left a restorable change", function()
    local releases = {
      rel("r5", "interrupted", false, { { "docker.stack", "shop" } }),
      rel("r4", "success", true, {}),                                   -- changed nothing
      rel("r3", "success", false, { { "docker.stack", "shop" } }),      -- validation failed
      rel("r2", "success", true, { { "docker.stack", "shop" } }),
      rel("r1", "success", true, { { "docker.stack", "shop" } }),
    }
    assert.same("r2", restore.last_verified(releases).id)
    assert.same("r1", restore.last_verified(releases, "r2").id)
    assert.is_nil(restore.last_verified({ releases[1], releases[3] }))
  end)

  it("states: every target the release or a later one touched, as of that release", function()
    local releases = {
      rel("r4", "interrupted", false, { { "docker.stack", "shop" }, { "docker.stack", "new" } }),
      rel("r3", "rolled_back", false, { { "vercel.production", "web", "rolled_back" } }),
      rel("r2", "success", true, { { "docker.stack", "shop" } }),
      rel("r1", "success", true, { { "vercel.production", "web" }, { "docker.stack", "old" } }),
    }
    local states, unknown = restore.states(releases, "r2")
    assert.same({
      { kind = "docker.stack", target = "shop", restorer = "test.restorer", data = { v = "r2" }, release = "r2" },
      { kind = "vercel.production", target = "web", restorer = "test.restorer", data = { v = "r1" }, release = "r1" },
    }, states)
    -- created after r2, nothing to go back to; "old" nobody touched since: left alone
    assert.same({ "docker.stack new" }, unknown)
    assert.same({}, (restore.states(releases, "nosuch")))
  end)

  it("states: a change without a restorer, or not applied, is no state", function()
    local releases = {
      rel("r2", "success", true, { { "shell", "x", restorer = false } }),
      rel("r1", "success", true, { { "docker.stack", "shop", "undo_failed" } }),
    }
    assert.same({}, (restore.states(releases, "r2")))
  end)

  it("state_before: only when the release before the run left the target unverified", function()
    local verified_before = {
      rel("run", "running", false, { { "docker.stack", "shop", "rolled_back" } }),
      rel("r2", "success", true, { { "docker.stack", "shop" } }),
    }
    assert.is_nil(restore.state_before(verified_before, "docker.stack", "shop", "run"))
    local unverified_before = {
      rel("run", "running", false, { { "docker.stack", "shop", "rolled_back" } }),
      rel("r3", "interrupted", false, { { "docker.stack", "shop" } }),
      rel("r2", "success", true, { { "docker.stack", "shop" } }),
    }
    local st = restore.state_before(unverified_before, "docker.stack", "shop", "run")
    assert.same({ "r2", { v = "r2" } }, { st.release, st.data })
    -- never verified: nothing to go to
    assert.is_nil(restore.state_before({ unverified_before[1], unverified_before[2] }, "docker.stack", "shop", "run"))
  end)

  it("apply names a restorer that cannot be loaded", function()
    local ok, err = pcall(restore.apply, { kind = "k", target = "t", restorer = "no.such.module", data = {} })
    assert.is_false(ok)
    assert.matches("^k t: its restorer no%.such%.module cannot be loaded: module 'no.such.module' not found", err)
  end)
end)
