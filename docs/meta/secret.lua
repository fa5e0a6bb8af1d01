---@meta slipway.secret
-- Editor stubs (LuaLS) for require("slipway.secret") (src/secret.c): the
-- functions of the global `secret` (docs/meta/secrets.lua: new, reveal,
-- is_secret, values, mask, mask_deep, redact_urls, contains, active),
-- without the call that resolves a secret by name.
return secret
