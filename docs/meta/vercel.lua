---@meta slipway.vercel
-- Editor stubs (LuaLS) for require("slipway.vercel") and the global
-- `vercel`. See docs/vercel.md.

---@class slipway.vercel
vercel = {}

---@class slipway.VercelCommon
---@field team? string a team id ("team_...") or its slug; default $VERCEL_TEAM_ID
---@field token? slipway.Secret|string default the secret $VERCEL_TOKEN
---@field timeout? string|number how long to wait for the build or the job (deploy: "30m", others: "3m")

---@class slipway.VercelDeployOptions: slipway.VercelCommon
---@field dir string the directory to deploy (walked as the Vercel CLI walks it: .vercelignore, never .git, node_modules, .vercel...)
---@field project string the project's name or id (created on its first deployment)
---@field production? boolean deploy to production (default false: a preview)
---@field env? table<string, string> the deployment's runtime environment (not secret: use Vercel's project variables for secrets)
---@field build_env? table<string, string> the build's environment
---@field meta? table<string, string> metadata, at most 100 keys
---@field archive? "tgz" send one archive instead of every file (for very many files)
---@field project_settings? table projectSettings for a project's first deployment (framework, buildCommand, outputDirectory...); without it Vercel detects them

---@class slipway.VercelDeployment
---@field id string "dpl_..."
---@field url string https://... of this deployment
---@field readyState string "READY"
---@field inspector_url? string the deployment's page in the Vercel dashboard
---@field alias string[] the aliases assigned to it
---@field production boolean
---@field previous? string the deployment that served production before (production only)
---@field files integer files in the deployment
---@field uploaded integer files uploaded (the API had the rest)
---@field uploaded_bytes integer
---@field change? slipway.Change the record of a production deploy (kind "vercel.production")

---@class slipway.VercelMove
---@field status "succeeded"|"skipped"|"queued" queued: a promote waits for an active rolling release
---@field previous? string the deployment that served production before
---@field change? slipway.Change the record (kind "vercel.production"); its undo moves production back

---@class slipway.VercelPromoteOptions: slipway.VercelCommon
---@field project string
---@field deployment string a deployment id or URL, built for production

---@class slipway.VercelRollbackOptions: slipway.VercelCommon
---@field project string
---@field to string a deployment id or URL that served production before

---Deploy dir to Vercel: hash every file (in C, on the thread pool), create
---the deployment, upload exactly the files the API lacks (50 at a time,
---streamed from disk), and follow the build until READY (for production:
---until the production alias is assigned), each state a line of the task's
---output. A production deploy records the deployment that served before
---it; undoing that change (a failed run does) rolls production back to it.
---Raises with the caller's file:line, the request, and the API's error
---code and message (a failed build: its message and the log's last lines).
---@async
---@param opts slipway.VercelDeployOptions
---@return slipway.VercelDeployment
function vercel.deploy(opts) end

---Point the project's production domains at a deployment
---(POST /v10/projects/{id}/promote/{deployment}) and follow the job.
---@async
---@param opts slipway.VercelPromoteOptions
---@return slipway.VercelMove
function vercel.promote(opts) end

---Roll the project's production back to an earlier deployment
---(POST /v9/projects/{id}/rollback/{deployment}) and follow the job until
---it has succeeded (pending -> in-progress -> succeeded).
---@async
---@param opts slipway.VercelRollbackOptions
---@return slipway.VercelMove
function vercel.rollback(opts) end

---The data of a recorded vercel.production change (change.data in a
---release record): the deployment that change put in production.
---@class slipway.VercelProductionRecord
---@field project string
---@field team? string
---@field deployment {id: string, url?: string} the deployment production served after the change
---@field previous? {id: string, url?: string} the one it served before
---@field via string "deploy", "promote" or "rollback"

---Put production back on the deployment a recorded vercel.production change
---put there (what `slipway rollback` does, as the change's restorer): an
---instant rollback, recorded like vercel.rollback; nothing when production
---serves it already. The team is the record's.
---@async
---@param data slipway.VercelProductionRecord
---@param opts? {token?: slipway.Secret|string, timeout?: string|number} token: default the secret $VERCEL_TOKEN; timeout: for the rollback's job (default "3m")
---@return {summary: string, status?: "succeeded"|"skipped"|"queued", change?: slipway.Change} result summary: "unchanged" when production serves it already
function vercel.restore(data, opts) end

---What vercel.restore(data) would change, changing nothing: one row, the
---project's, "rollback" with the difference when production serves
---another deployment now.
---@async
---@param data slipway.VercelProductionRecord
---@param opts? {token?: slipway.Secret|string} default the secret $VERCEL_TOKEN
---@return {name: string, action: "unchanged"|"rollback", difference?: string}[]
function vercel.restore_diff(data, opts) end

return vercel
