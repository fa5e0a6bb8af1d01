local task = require("slipway.task")
local leaks = require("support.leaks")

describe("task", function()
  leaks.check()

  describe("spawn/join", function()
    it("runs a function as a task and returns its results", function()
      local t = task.spawn(function(a, b) task.sleep("5ms") return a + b, "x" end, 1, 2)
      assert.same({ 3, "x" }, { t:join() })
      assert.same("done", t:status())
    end)

    it("surfaces the task's error at join with its traceback", function()
      local t = task.spawn(function() error("boom") end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.matches("^tests/task_spec.lua:%d+: boom", err)
      assert.matches("stack traceback", err)
      assert.same("failed", t:status())
    end)

    it("keeps non-string error values as they are", function()
      local t = task.spawn(function() error({ code = 7 }) end)
      local ok, err = pcall(t.join, t)
      assert.same({ false, { code = 7 } }, { ok, err })
    end)

    it("starts tasks in order once the spawner waits", function()
      local order = {}
      local a = task.spawn(function() order[#order + 1] = "a" end)
      local b = task.spawn(function() order[#order + 1] = "b" end)
      order[#order + 1] = "main"
      a:join(); b:join()
      assert.same({ "main", "a", "b" }, order)
    end)

    it("joins a task that already finished", function()
      local t = task.spawn(function() return 1 end)
      task.sleep(0)
      assert.same("done", t:status())
      assert.same(1, t:join())
    end)

    it("refuses to join itself", function()
      local t
      t = task.spawn(function() task.sleep(0); return t:join() end)
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.matches("cannot wait for itself", err)
    end)
  end)

  describe("sleep", function()
    it("waits at least the duration", function()
      local t0 = task.now()
      task.sleep("30ms")
      assert.is_true(task.now() - t0 >= 30)
    end)

    it("rejects bad durations", function()
      assert.has_error(function() task.sleep("5 parsecs") end)
      assert.has_error(function() task.sleep(-1) end)
    end)

    it("runs sleeps concurrently", function()
      local t0 = task.now()
      local ts = {}
      for i = 1, 50 do ts[i] = task.spawn(task.sleep, "40ms") end
      for i = 1, 50 do ts[i]:join() end
      local ms = task.now() - t0
      assert.is_true(ms < 200, "took " .. ms .. " ms")
    end)
  end)

  describe("cancel", function()
    it("cancels a sleeping task and runs the timer's cleanup", function()
      local reached = false
      local t = task.spawn(function() task.sleep("10s"); reached = true end)
      task.sleep(0)
      t:cancel()
      assert.is_true(t:wait())
      assert.same("cancelled", t:status())
      assert.is_false(reached)
      local ok, err = t:result()
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err))
    end)

    it("cancels a task before it starts", function()
      local ran = false
      local t = task.spawn(function() ran = true end)
      t:cancel()
      t:wait()
      assert.same({ false, "cancelled" }, { ran, t:status() })
    end)

    it("lets the task's own pcall see the cancellation and clean up", function()
      local cleaned = false
      local t = task.spawn(function()
        local ok, err = pcall(task.sleep, "10s")
        cleaned = not ok and task.is_cancelled(err)
        task.sleep(0)   -- any further await raises again
      end)
      task.sleep(0)
      t:cancel()
      t:wait()
      assert.is_true(cleaned)
      assert.same("cancelled", t:status())
    end)

    it("a join of a cancelled task raises the cancellation", function()
      local t = task.spawn(task.sleep, "10s")
      task.sleep(0)
      t:cancel()
      local ok, err = pcall(t.join, t)
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err))
    end)

    it("cancelling a task that waits on another frees the wait", function()
      local inner = task.spawn(task.sleep, "50ms")
      local outer = task.spawn(function() return inner:join() end)
      task.sleep(0)
      outer:cancel()
      outer:wait()
      assert.same("cancelled", outer:status())
      inner:join()
    end)
  end)

  describe("wait", function()
    it("returns false when the deadline passes first", function()
      local t = task.spawn(task.sleep, "200ms")
      assert.is_false(t:wait("10ms"))
      t:cancel()
      assert.is_true(t:wait())
    end)
  end)

  describe("outside a task", function()
    it("names the function and says where to call it", function()
      local co = coroutine.create(function() task.sleep(0) end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("sleep: call this inside a task", err)
    end)
  end)

  describe("stats", function()
    it("counts live tasks", function()
      local base = task.stats().tasks
      local t = task.spawn(task.sleep, "5ms")
      assert.same(base + 1, task.stats().tasks)
      t:join()
      assert.same(base, task.stats().tasks)
    end)
  end)

  describe("context", function()
    it("is inherited by the tasks a task spawns, and set per task", function()
      local seen = {}
      local t = task.spawn_with({ name = "outer" }, function()
        seen[1] = task.context().name
        spawn(function()
          seen[2] = task.context().name
          task.set_context({ name = "inner" })
          spawn(function() seen[3] = task.context().name end):join()
        end):join()
        seen[4] = task.context().name
      end)
      t:join()
      assert.same({ "outer", "outer", "inner", "outer" }, seen)
      assert.is_nil(task.spawn(function() return task.context() end):join())
    end)

    it("is nil outside tasks", function()
      local co = coroutine.wrap(function() return task.context() end)
      assert.is_nil(task.spawn(co):join())
    end)
  end)

  describe("take_strays", function()
    it("returns what a task spawned and left running or failed unread, in spawn order", function()
      local owner = task.spawn_with(false, function()
        spawn(function() end)                                  -- ends well: not a stray
        spawn(function() error("unread") end)
        local read = spawn(function() error("read") end)
        spawn(function() spawn(task.sleep, 5) end)             -- its child passes up to us
        task.sleep(0.02)
        assert.is_false(pcall(read.join, read))
      end)
      owner:join()
      local strays = task.take_strays(owner)
      local states = {}
      for i, s in ipairs(strays) do states[i] = s:status() end
      assert.same({ "failed", "waiting" }, states)
      assert.is_nil(task.take_strays(owner))
      strays[2]:cancel()
      strays[2]:wait()
    end)

    it("does not count tasks spawned with spawn_with", function()
      local owner = task.spawn_with(false, function()
        task.spawn_with(false, function() error("not mine") end)
        task.sleep(0.01)
      end)
      owner:join()
      assert.is_nil(task.take_strays(owner))
    end)
  end)

  describe("a task that never awaits", function()
    it("is preempted, so timers, other tasks and cancellation still work", function()
      local ticks = 0
      local ticker = task.spawn(function()
        for _ = 1, 5 do task.sleep(0.01); ticks = ticks + 1 end
      end)
      local spinner = task.spawn(function() local x = 0 while true do x = x + 1 end end)
      local t0 = task.now()
      assert.is_true(ticker:wait(2))
      assert.same(5, ticks)
      assert.is_false(spinner:wait(0.1))
      spinner:cancel()
      assert.is_true(spinner:wait(1))
      assert.same("cancelled", spinner:status())
      assert.is_true(task.now() - t0 < 2000)
    end)

    it("yielding in a loop does not starve timers", function()
      local fired = false
      local sleeper = task.spawn(function() task.sleep(0.02); fired = true end)
      local yielder = task.spawn(function() while not fired do task.yield() end end)
      assert.is_true(yielder:wait(2))
      sleeper:join()
    end)

    it("is stopped by cancellation even when it catches errors", function()
      local spinner = task.spawn(function()
        local tries = 0
        while tries < 3 do
          pcall(function() while true do end end)
          tries = tries + 1
        end
        while true do end
      end)
      assert.is_false(spinner:wait(0.1))
      spinner:cancel()
      assert.is_true(spinner:wait(2))
      assert.same("cancelled", spinner:status())
    end)
  end)
end)
