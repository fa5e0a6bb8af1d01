---@meta slipway.parallel
-- Editor stubs (LuaLS) for require("slipway.parallel") and the global
-- `parallel` (lua/parallel.lua).

---@class slipway.ParallelOptions
---@field limit? integer at most this many functions run at a time (a positive integer; default: all at once)

---Run functions concurrently as tasks and return their first results in
---order. Fail-fast: the first error cancels everything still running or
---waiting, then is raised with its traceback. Unknown options raise.
---`parallel(fns, opts)` is parallel.run.
---@class slipway.parallel
---@overload async fun(fns: (fun(): any)[], opts?: slipway.ParallelOptions): any[]
parallel = {}

---Call every function in fns concurrently (at most opts.limit at a time).
---@async
---@param fns (fun(): any)[]
---@param opts? slipway.ParallelOptions
---@return any[] results the first result of each function, in the order of fns
function parallel.run(fns, opts) end

---Call fn(item, i) for every item of list concurrently (at most opts.limit
---at a time), the same way as parallel.run.
---@async
---@generic T
---@param list T[]
---@param fn async fun(item: T, i: integer): any
---@param opts? slipway.ParallelOptions
---@return any[] results the first result of each call, in the order of list
function parallel.map(list, fn, opts) end

return parallel
