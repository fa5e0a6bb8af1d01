-- slipway.reporters.json: `--json`: every event as one JSON object per line
-- (NDJSON) on stdout, nothing else on stdout. Schema: docs/events.md.
local json = require("slipway.json")
local events = require("slipway.events")

local M = {}

function M.new(opts)
  local out = opts.out or io.stdout
  local encode = json.encode
  local self = {}
  function self.event(ev)
    local ok, line = pcall(encode, ev)
    if not ok then line = encode(events.fix_strings(ev)) end   -- e.g. binary output
    out:write(line, "\n")
  end
  function self.close()
    out:flush()
  end
  return self
end

return M
