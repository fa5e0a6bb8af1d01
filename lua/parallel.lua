-- parallel(fns, {limit = N}) runs functions concurrently as tasks, at most
-- `limit` at a time, and returns their first results in order. Fail-fast:
-- the first error cancels everything still running or waiting, then is
-- raised with its traceback. parallel.map(list, fn, opts) calls fn(item, i)
-- for every item the same way.
local task = require("slipway.task")
local caller = require("slipway.caller")

local M = {}

local OPTIONS = { "limit" }

local function check_opts(opts, fname)
  caller.check_options(fname, opts, OPTIONS)
  if opts == nil then return {} end
  local limit = opts.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 1) then
    error(("%s: limit must be a positive integer, got %s"):format(fname, tostring(limit)), 3)
  end
  return opts
end

local function run(fns, opts, fname)
  local n = #fns
  local limit = math.min(opts.limit or n, n)
  local results, workers = {}, {}
  local nexti, failure = 0, nil

  local function capture(err)
    if task.is_cancelled(err) then return err end
    return { err = err, traceback = debug.traceback(tostring(err), 2) }
  end

  local function worker()
    while failure == nil do
      nexti = nexti + 1
      local i = nexti
      if i > n then return end
      local ok, value = xpcall(fns[i], capture)
      if not ok then
        if task.is_cancelled(value) then error(value, 0) end
        if failure == nil then
          failure = value
          local me = task.current()
          for _, w in ipairs(workers) do
            if w ~= me then w:cancel() end
          end
        end
        return
      end
      results[i] = value
    end
  end

  for i = 1, limit do workers[i] = task.spawn(worker) end
  for i = 1, limit do
    local ok, err = pcall(workers[i].wait, workers[i])
    if not ok then                       -- we were cancelled: so are they
      for _, w in ipairs(workers) do w:cancel() end
      error(err, 0)
    end
  end
  if failure then
    local err = failure.err
    if type(err) == "string" then
      error(err .. "\n(in parallel " .. fname .. ")" .. failure.traceback:gsub("^[^\n]*", ""), 0)
    end
    error(err, 0)
  end
  return results
end

function M.run(fns, opts)
  if type(fns) ~= "table" then
    error(("parallel: expected a list of functions, got %s"):format(type(fns)), 2)
  end
  for i = 1, #fns do
    if type(fns[i]) ~= "function" then
      error(("parallel: item %d is a %s, expected a function"):format(i, type(fns[i])), 2)
    end
  end
  return run(fns, check_opts(opts, "parallel"), "parallel")
end

function M.map(list, fn, opts)
  if type(list) ~= "table" then
    error(("parallel.map: expected a list, got %s"):format(type(list)), 2)
  end
  if type(fn) ~= "function" then
    error(("parallel.map: expected a function, got %s"):format(type(fn)), 2)
  end
  local fns = {}
  for i, item in ipairs(list) do fns[i] = function() return fn(item, i) end end
  return run(fns, check_opts(opts, "parallel.map"), "parallel.map")
end

return setmetatable(M, { __call = function(_, fns, opts) return M.run(fns, opts) end })
