---@meta slipway.secrets
-- Editor stubs (LuaLS) for the global `secret` (require("slipway.secrets"),
-- lua/secrets.lua): resolving secrets, and the masking behind every output
-- path (src/secret.c, src/mask.c). Guide: docs/secrets.md.

---A secret value: prints as "***" (tostring, %s, errors, reporters);
---concatenating it (`"Bearer " .. token`) gives its plain text; env values,
---stdin, http headers and bodies, docker build args take it as it is; a
---command line refuses it. Its value is masked in everything slipway writes.
---@class slipway.Secret
---@field name? string where it came from ("VERCEL_TOKEN")
---@field reveal fun(self: slipway.Secret): string the plain value

---@class slipway.SecretOptions
---@field from? "env"|"file"|"dotenv"|"cmd" where to read it (default "env")
---@field path? string file: default /run/secrets/NAME; dotenv: default .env (relative to the current directory)
---@field key? string env, dotenv: the variable (default NAME)
---@field cmd? string|string[] cmd: a shell string or argv list whose stdout, trimmed, is the value ("op read op://...")
---@field timeout? string|number cmd: how long the command may take (default "30s")
---@field optional? boolean nil instead of an error when the secret is not there

---Resolve a secret: `secret("VERCEL_TOKEN")`, `secret("db", { from = "file" })`.
---A missing, empty or too short (under 4 characters) one raises
---"FILE:LINE: secret NAME: ..." naming where it looked (exit 2 at the top
---level of a pipeline).
---@class slipway.secrets
---@overload fun(name: string, opts?: slipway.SecretOptions): slipway.Secret|nil
secret = {}

---A secret holding value (4 bytes or more; shorter ones are refused: masking
---them would hide ordinary text).
---@param value string
---@param name? string
---@return slipway.Secret
function secret.new(value, name) end

---The plain string of a Secret; a string is returned as it is.
---@param v slipway.Secret|string
---@return string
function secret.reveal(v) end

---@param v any
---@return boolean
function secret.is_secret(v) end

---Every secret value made so far, in the order they were made.
---@return string[]
function secret.values() end

---Text as slipway shows it: every secret value (raw, each line of it,
---base64 at any offset, URL-encoded, JSON- and XML-escaped) and every
---password in a URL replaced by "***"; a Secret gives "***"; other values
---are returned as they are.
---@generic T
---@param v T
---@return T
function secret.mask(v) end

---v with every string value masked and every Secret as "***", tables copied
---where something changed (keys are left alone; the original is untouched).
---@generic T
---@param v T
---@return T
function secret.mask_deep(v) end

---text with the password of every URL (scheme://user:password@host) as
---"***", secret or not.
---@param text string
---@return string
function secret.redact_urls(text) end

---Whether text holds a secret's value in any of its forms.
---@param text string
---@return boolean
function secret.contains(text) end

---Whether any secret exists yet (masking costs nothing until then).
---@return boolean
function secret.active() end

return secret
