---@meta slipway.pulumi
-- Editor stubs (LuaLS) for require("slipway.pulumi") and the global
-- `pulumi`: infrastructure through the Pulumi CLI, driven the way the
-- Automation API drives it. See docs/pulumi.md.

---@class slipway.pulumi
pulumi = {}

---@class slipway.PulumiCall
---@field cwd string the Pulumi project's directory (where Pulumi.yaml is)
---@field stack string the stack's name ("dev", "org/project/dev")
---@field backend? string PULUMI_BACKEND_URL for the CLI ("file:///state", "s3://bucket"); default: the CLI's login
---@field home? string PULUMI_HOME for the CLI
---@field env? table<string, string|slipway.Secret|number|false> more environment for the CLI (tokens: PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE); Secrets are revealed there only
---@field bin? string the CLI (default $PULUMI_BIN, else `pulumi` on PATH)
---@field timeout? string|number the operation's deadline (default "1h"; the small commands 5m each): SIGINT, then SIGKILL 10 s later

---@class slipway.PulumiStackOptions: slipway.PulumiCall
---@field secrets_provider? string for a stack created here ("passphrase", "awskms://...")
---@field config? table<string, string|number|boolean|slipway.Secret> plain config (`config set-all --plaintext`); a Secret value is set as a secret
---@field secret_config? table<string, string|slipway.Secret> secret config, each through the CLI's stdin (never argv)
---@field config_path? boolean keys are paths (`--path`: "a.b" sets b inside a)

---@class slipway.PulumiOptions: slipway.PulumiStackOptions
---@field lock_wait? string|number wait this long for another update's lock (retrying with backoff) instead of failing
---@field message? string the update's message
---@field target? string|string[] only these resource URNs (`--target`)
---@field refresh? boolean refresh the state first (`--refresh`)
---@field parallel? integer resource operations at once (`--parallel`)

---@class slipway.PulumiUpOptions: slipway.PulumiOptions
---@field rollback? "pulumi"|false undo (a failed run's rollback): put the stack's previous config back and run `up` again; default: none, the infrastructure is left in place

---@class slipway.PulumiStep
---@field op string "create", "update", "delete", "replace", ...
---@field type string the resource type ("aws:s3/bucket:Bucket")
---@field name string the resource's name
---@field urn string
---@field diffs? string[] the properties that change
---@field detailed_diff? table<string, {diffKind: string, inputDiff: boolean}>

---@class slipway.PulumiResult
---@field stack string
---@field changes {create: integer, update: integer, delete: integer, replace: integer, same: integer} resource changes (the engine's summary; other ops as they come)
---@field outputs? table<string, any|slipway.Secret> the stack's outputs after up/refresh (secret ones are Secrets)
---@field duration number seconds
---@field version? integer the update's version in the stack's history
---@field permalink? string the update's page on the Pulumi Cloud
---@field steps slipway.PulumiStep[] a preview's planned resource steps (empty for the others: their steps are the output)
---@field warnings string[] the engine's warnings
---@field events integer how many engine events were read

---Select the stack, create it when the CLI says it does not exist
---(`stack select --create`, or `stack init` on an older CLI), and set its
---config. Returns whether it was created and the config set.
---@async
---@param opts slipway.PulumiStackOptions
---@return {stack: string, created: boolean, config: table<string, string>, secret_keys: string[]}
function pulumi.stack(opts) end

---`pulumi preview`: the changes an up would make, shown as the task's
---output; the stack is created when missing, its config set first.
---@async
---@param opts slipway.PulumiOptions
---@return slipway.PulumiResult
function pulumi.preview(opts) end

---`pulumi up --yes --skip-preview`: the resources' progress is the task's
---output while the CLI runs; a change (kind "pulumi.stack") is recorded in
---a pipeline run. The stack is created when missing, its config set first.
---@async
---@param opts slipway.PulumiUpOptions
---@return slipway.PulumiResult
function pulumi.up(opts) end

---`pulumi refresh --yes --skip-preview` (recorded like up).
---@async
---@param opts slipway.PulumiOptions
---@return slipway.PulumiResult
function pulumi.refresh(opts) end

---`pulumi destroy --yes --skip-preview` (recorded like up).
---@async
---@param opts slipway.PulumiOptions
---@return slipway.PulumiResult
function pulumi.destroy(opts) end

---The stack's outputs; secret ones are slipway Secrets named "pulumi:<key>".
---@async
---@param opts slipway.PulumiCall
---@return table<string, any|slipway.Secret>
function pulumi.outputs(opts) end

---What an operation would run, for a task's description (shown by
---`slipway plan`): "pulumi up --yes --skip-preview --stack prod (in infra)".
---Runs nothing.
---@param op "preview"|"up"|"refresh"|"destroy"
---@param opts {cwd: string, stack: string}
---@return string
function pulumi.describe(op, opts) end

return pulumi
