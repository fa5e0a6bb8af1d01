-- luacheck (Debian's lua-check) configuration: `make lint` checks lua/,
-- stdlib/, tests/, examples/ and tools/gen-reference; .ci/run runs it before the tests.

std = "lua54+slipway"
max_line_length = 240

-- The globals the runtime gives every script and pipeline (lua/prelude.lua,
-- the pipeline DSL), read-only; secret, pulumi and vercel for pipelines
-- that use them.
stds.slipway = {
  read_globals = {
    "task", "param", "sh", "spawn", "sleep", "parallel", "fs", "proc", "json", "yaml", "http", "hash",
    "base64", "duration", "compose", "docker", "probe", "git", "env", "context", "secret", "pulumi", "vercel",
    "pipeline",
  },
}

files["tests/"] = { std = "+busted" }

-- What the runtime does on purpose: prelude defines the globals, the load
-- guard and the run's stdio redirection replace io/os/print functions.
files["lua/prelude.lua"] = { globals = { "spawn", "sleep" } }
files["lua/guard.lua"] = { ignore = { "122" } }            -- io.open, io.output replaced while a pipeline loads
files["lua/pipeline/stdio.lua"] = { ignore = { "121", "122" } } -- print, io.write redirected in a run
files["lua/pipeline/run.lua"] = { ignore = { "122" } }     -- os.exit refused in tasks
-- Tests that replace os.getenv for one call, and the fuzz corpus's global.
files["tests/docker_image_spec.lua"] = { ignore = { "122" } }
files["tests/fuzz/checks.lua"] = { read_globals = { "FUZZ_TMPDIR" } }
files["tests/fuzz_regressions_spec.lua"] = { globals = { "FUZZ_TMPDIR" } }
-- not (x < y) on purpose: the comparisons must also hold for NaN.
files["tests/yaml_spec.lua"] = { ignore = { "581" } }
