-- Where the repository is, found from this file's own path, so that specs
-- and benchmarks work from any directory and on any machine:
--   M.ROOT    the repository's top directory
--   M.PARENT  the directory that holds it
--   M.SHARED  the shared inputs next to it (../shared: the compose corpus,
--             docker's official compose schemas), which are not part of
--             the repository
local fs = require("slipway.fs")

local M = {}

local here = assert(fs.realpath(debug.getinfo(1, "S").source:sub(2)))  -- tests/support/repo.lua
M.ROOT = fs.dirname(fs.dirname(fs.dirname(here)))
M.PARENT = fs.dirname(M.ROOT)
M.SHARED = M.PARENT .. "/shared"

return M
