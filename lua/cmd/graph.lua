-- slipway graph: the task graph as a Mermaid or Graphviz diagram.
local argparse = require("slipway.pipeline.args")
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
  local opts, err = argparse.parse(args, FLAGS)
  if not opts then
    io.stderr:write("slipway graph: ", err, "\n")
    return 2
  end
  local format = opts.format or "mermaid"
  if format ~= "mermaid" and format ~= "dot" then
    io.stderr:write(("slipway graph: unknown format '%s' (valid: mermaid, dot)\n"):format(format))
    return 2
  end
  require("slipway.prelude")
  local ok, def, _, plan = pcall(prepare.prepare, opts)
  if not ok then return prepare.report_input_error(def) end
  local graph = require("slipway.pipeline.graph")
  io.stdout:write(graph[format](def, plan))
  return 0
end

return M
