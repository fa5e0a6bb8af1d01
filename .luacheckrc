std = "lua54+slipway"
max_line_length = 200
stds.slipway = {
  read_globals = { "task", "param", "sh", "spawn", "sleep", "parallel", "fs", "proc", "json", "yaml", "http",
                   "hash", "base64", "duration", "compose", "docker", "probe", "git", "env", "context",
                   "secret", "pulumi", "vercel" },
}
files["tests/"] = { std = "+busted" }
