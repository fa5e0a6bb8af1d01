---@meta
-- Editor stubs (LuaLS) for the globals of a pipeline file (deploy.lua):
-- task, param, pipeline, env, git. (Other globals: sh, proc, fs, json, parallel...
-- have their own stubs.) See lua/pipeline/dsl.lua for the full contract.

---@alias slipway.Params table<string, any> the resolved parameter values

---@class slipway.TaskOptions
---@field needs? string|string[] tasks that must be done first
---@field when? string|fun(p: slipway.Params): boolean a bool parameter's name, or a pure function of the parameters (evaluated before the run, also by `plan`)
---@field matrix? any[]|fun(p: slipway.Params): any[] one sub-task per item, `name[label]`, all in parallel (a function is called at run time)
---@field timeout? string|number a duration ("30s", "5m"; a number is seconds) per attempt
---@field retries? integer extra attempts after a failure (default 0)
---@field backoff? string|number delay before the first retry, doubled each time (default "1s")
---@field continue_on_error? boolean a failure is reported but does not fail the run
---@field finally? boolean run after everything else, whatever happened, as fn(p, release) (no needs, matrix or rollback)
---@field rollback? function run after a later failure, with the task's arguments and then what it returned
---@field description? string
---@field verifies? boolean a validation task: the release is verified only when every such task passed (without any: when the run succeeded)
---@field cache? boolean skip the task as "up to date", reusing its recorded result, when its inputs, code and options, the parameters and env() values it read and slipway's version are those of its last successful run (--force runs it)
---@field inputs? string[] the files its key covers (with cache = true): .dockerignore-style patterns relative to the pipeline's directory ("src/**", "Dockerfile", "!**/*.log" excludes); contents count, mtimes do not

---Declare a task. Only at the top level of the pipeline file. The function
---gets the parameters (`fn(p)`), or the matrix item first (`fn(item, p)`).
---Inside tasks, `task` is also the slipway.task module (task.sleep...).
---@overload fun(name: string, fn: async fun(p: slipway.Params): any)
---@param name string
---@param opts slipway.TaskOptions
---@param fn async fun(...): any
function task(name, opts, fn) end

---@class slipway.PipelineOptions
---@field name? string the pipeline's name in the ledger and its lock (default: the directory of a deploy.lua, else the file's name without .lua)
---@field ledger? "local"|"swarm" where releases and the lock live: .slipway/ next to the file (default), or configs in DOCKER_HOST's swarm
---@field on_interrupt? "stop"|"rollback" what SIGINT/SIGTERM does to a run (default "stop": stop and record)
---@field lock? boolean hold the lock of the pipeline and environment while a run runs (default true)

---Declare the pipeline itself: its name, ledger, interrupt behaviour and
---lock. At most once, at the top level of the file.
---@param opts slipway.PipelineOptions
function pipeline(opts) end

---@class slipway.ParamDecl
param = {}

---A parameter with a fixed set of values. No default: required.
---@param name string
---@param choices (string|number)[]
---@param default? string|number
---@param description? string|{description: string}
function param.choice(name, choices, default, description) end

---true/false (also yes/no, 1/0, on/off on the command line); default false.
---@param name string
---@param default? boolean
---@param description? string|{description: string}
function param.bool(name, default, description) end

---@param name string
---@param default? string
---@param description? string|{description: string}
function param.string(name, default, description) end

---@param name string
---@param default? number
---@param description? string|{description: string}
function param.number(name, default, description) end

---A list; on the command line comma-separated (-p services=api,web).
---@param name string
---@param default? string[]
---@param description? string|{description: string}
function param.list(name, default, description) end

---@class slipway.SecretParamOptions: slipway.SecretOptions
---@field description? string

---A secret parameter: its value is a slipway.Secret (*** in plans, events
---and records), from -p NAME=VALUE or SLIPWAY_PARAM_<NAME> (better: the
---process list shows -p), else resolved like secret(name, opts) when opts
---has `from`; otherwise required, unless optional = true (then false).
---@param name string
---@param opts? string|slipway.SecretParamOptions a description, or options
function param.secret(name, opts) end

---An environment variable, or the default; raises when unset without one.
---@class slipway.env
---@overload fun(name: string, default?: string): string
env = {}

---The value or nil (never raises).
---@param name string
---@param default? string
---@return string|nil
function env.get(name, default) end

---1/0, yes/no, true/false, on/off.
---@param name string
---@param default? boolean
---@return boolean
function env.bool(name, default) end

---Facts about the git checkout (reading only, so allowed at the top level).
---Each runs `git`: inside a task it waits for it (other tasks go on), at
---the top level of a pipeline it blocks.
git = {}

---@async
---@param opts? {cwd: string}
---@return string sha the 40-hex id of HEAD
function git.sha(opts) end

---@async
---@param opts? {cwd: string}
---@return string short git's abbreviation of HEAD
function git.short_sha(opts) end

---@async
---@param opts? {cwd: string}
---@return string|nil branch the branch, or on a detached HEAD the CI's branch name, or nil
function git.branch(opts) end

---sha and branch with one git process.
---@async
---@param opts? {cwd: string}
---@return {sha: string, branch: string|nil}
function git.head(opts) end

---Whether tracked files differ from HEAD (changed or staged; untracked files
---do not count).
---@param opts? {cwd: string}
---@return boolean
function git.dirty(opts) end
