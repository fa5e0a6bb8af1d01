-- slipway.reporters.json: `--json`: every event as one JSON object per line
-- (NDJSON) on stdout, nothing else on stdout. Schema: docs/events.md.
local json = require("slipway.json")

local M = {}

function M.new(opts)
  local out = opts.out or io.stdout
  local encode = json.encode
  local self = {}
  function self.event(ev)
    out:write(encode(ev), "\n")
  end
  function self.close()
    out:flush()
  end
  return self
end

return M
