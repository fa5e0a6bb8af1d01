-- slipway.reporters.json: `--json`: every event as one JSON object per line
-- (NDJSON) on stdout, nothing else on stdout. Schema: docs/events.md.
local json = require("slipway.json")

local M = {}

function M.new(opts)
  local out = opts.out or io.stdout
  local encode, replace = json.encode, { invalid_utf8 = "replace" }
  local self = {}
  function self.event(ev)
    out:write(encode(ev, replace), "\n")   -- bytes that are not UTF-8 (binary output) become U+FFFD
  end
  function self.close()
    out:flush()
  end
  return self
end

return M
