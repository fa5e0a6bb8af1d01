-- slipway graph: the task graph as a Mermaid or Graphviz diagram.
local prepare = require("slipway.pipeline.prepare")

local M = {}

M.help = [[
usage: slipway graph [FILE] [--format mermaid|dot] [--env E] [-p name=value]... [--only T,..] [--skip T,..]

Print the task graph of the pipeline in FILE (default deploy.lua): an edge
from each task to the tasks that need it. Tasks the given parameters and
flags would skip are drawn dashed. Default format: mermaid.
]]

local FLAGS = { "--format", "--env", "-p", "--param", "--only", "--skip" }

function M.main(args)
  local opts, def, _, plan = prepare.from_args("graph", args, FLAGS, function(o)
    local format = o.format or "mermaid"
    if format ~= "mermaid" and format ~= "dot" then
      return ("unknown format '%s'%s (valid: mermaid, dot)")
        :format(format, require("slipway.words").did_you_mean(format, { "mermaid", "dot" }))
    end
  end)
  if not opts then return def end
  local graph = require("slipway.pipeline.graph")
  io.stdout:write(graph[opts.format or "mermaid"](def, plan))
  return 0
end

return M
