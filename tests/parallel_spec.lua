local task = require("slipway.task")
local parallel = require("slipway.parallel")
local leaks = require("support.leaks")

describe("parallel", function()
  leaks.check()

  it("returns results in order", function()
    local fns = {}
    for i = 1, 5 do
      fns[i] = function() task.sleep((6 - i) * 0.005) return i * 10 end
    end
    assert.same({ 10, 20, 30, 40, 50 }, parallel(fns))
  end)

  it("runs at most `limit` at a time", function()
    local active, peak = 0, 0
    local fns = {}
    for i = 1, 12 do
      fns[i] = function()
        active = active + 1
        peak = math.max(peak, active)
        task.sleep("5ms")
        active = active - 1
        return i
      end
    end
    local r = parallel(fns, { limit = 3 })
    assert.same(3, peak)
    assert.same(12, #r)
  end)

  it("runs everything concurrently without a limit", function()
    local t0 = task.now()
    local fns = {}
    for i = 1, 20 do fns[i] = function() task.sleep("30ms") end end
    parallel(fns)
    assert.is_true(task.now() - t0 < 150)
  end)

  it("fails fast: cancels the rest and raises the first error", function()
    local finished = 0
    local started = 0
    local fns = {
      function() task.sleep("5ms") error("first failure") end,
    }
    for i = 2, 6 do
      fns[i] = function() started = started + 1 task.sleep("2s") finished = finished + 1 end
    end
    for i = 7, 20 do fns[i] = function() started = started + 1 end end
    local t0 = task.now()
    local ok, err = pcall(parallel, fns, { limit = 6 })
    assert.is_false(ok)
    assert.matches("^tests/parallel_spec.lua:%d+: first failure", err)
    assert.matches("stack traceback", err)
    assert.same(0, finished)
    assert.same(5, started)      -- items 7..20 never started
    assert.is_true(task.now() - t0 < 1000)
  end)

  it("maps over a list", function()
    assert.same({ "a1", "b2" }, parallel.map({ "a", "b" }, function(x, i) task.sleep(0) return x .. i end))
  end)

  it("handles an empty list", function()
    assert.same({}, parallel({}))
  end)

  it("rejects bad arguments with the caller's line", function()
    assert.has_error(function() parallel({ 1 }) end, "parallel: item 1 is a number, expected a function")
    local ok, err = pcall(parallel, {}, { limt = 2 })
    assert.is_false(ok)
    assert.matches("unknown option 'limt' %(valid: limit%)", err)
    ok, err = pcall(parallel, {}, { limit = 0 })
    assert.is_false(ok)
    assert.matches("limit must be a positive integer", err)
  end)

  it("cancelling the caller cancels the workers", function()
    local finished = false
    local t = task.spawn(function()
      parallel({ function() task.sleep("2s") finished = true end })
    end)
    task.sleep("5ms")
    t:cancel()
    t:wait()
    task.sleep("5ms")
    assert.same("cancelled", t:status())
    assert.is_false(finished)
  end)
end)
