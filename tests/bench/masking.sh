#!/bin/sh
# The cost of masking: a pipeline task prints 100 MB of output through `sh`
# (1,000,000 lines of about 100 bytes; one line in 100 holds one of the
# secret values), on the plain reporter into /dev/null. Run A resolves the
# 20 values with secret() (registered with the masker: every output line is
# scanned, as event and as written text, and the lines holding a value are
# rewritten); run B reads the same 20 values as plain environment variables
# (no secret exists, masking costs nothing). The two alternate round by
# round; prints the median CPU time (user+sys of slipway and its children)
# and wall time of each, and the CPU ratio. Goal: ratio <= 1.3. Never fails
# on noise.
#   tests/bench/masking.sh [ROUNDS]      SLIPWAY=build/slipway MB=100
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${SLIPWAY:-build/slipway}")
export SLIPWAY ROUNDS=${1:-${ROUNDS:-3}} MB=${MB:-100}
exec python3 - <<'PY'
import os, resource, secrets, statistics, subprocess, tempfile, time
slipway, rounds, mb = os.environ["SLIPWAY"], int(os.environ["ROUNDS"]), int(os.environ["MB"])
values = ["bench-secret-%02d-%s" % (i, secrets.token_hex(8)) for i in range(20)]
d = tempfile.mkdtemp(prefix="slipway-bench-masking-")
# 1 MB block: 10,000 lines, every 100th holds a value; printed MB times
lines = []
for i in range(10000):
    text = "line %05d " % i
    if i % 100 == 0:
        text += "token=" + values[(i // 100) % 20] + " "
    text += "the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKL"
    lines.append(text[:99])
block = os.path.join(d, "block.txt")
with open(block, "w") as f:
    f.write("\n".join(lines) + "\n")
body = """
task("print", function()
  sh('for i in $(seq %d); do cat block.txt; done', { max_output = 1024 * 1024 * 1024 })
end)
""" % mb
resolve = "\n".join('secret("BENCH_SECRET_%d")' % i for i in range(20))
plain = "\n".join('os.getenv("BENCH_SECRET_%d")' % i for i in range(20))
with open(os.path.join(d, "masked.pipeline.lua"), "w") as f:
    f.write(resolve + "\n" + body)
with open(os.path.join(d, "plain.pipeline.lua"), "w") as f:
    f.write(plain + "\n" + body)
env = dict(os.environ, CI="true", NO_COLOR="1")
for k in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
    env.pop(k, None)
for i, v in enumerate(values):
    env["BENCH_SECRET_%d" % i] = v
cmds = {
    "20 secrets": [slipway, "run", "masked.pipeline.lua", "--reporter", "plain"],
    "none": [slipway, "run", "plain.pipeline.lua", "--reporter", "plain"],
}
cpu = {k: [] for k in cmds}
wall = {k: [] for k in cmds}
def once(name):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(os.path.join(d, "out.txt"), "wb") as out:
        subprocess.run(cmds[name], cwd=d, env=env, stdout=out, check=True)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(d, "out.txt"), "rb") as f:
        text = f.read()
    leaked = sum(text.count(v.encode()) for v in values)
    if name == "20 secrets":
        assert leaked == 0, "a value was printed unmasked"
    else:
        assert leaked == mb * 100, "expected %d values in the plain run, got %d" % (mb * 100, leaked)
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
for i in range(rounds):
    order = list(cmds) if i % 2 == 0 else list(reversed(list(cmds)))
    for name in order:
        w, c = once(name)
        wall[name].append(w)
        cpu[name].append(c)
subprocess.run(["rm", "-rf", d])
print("masking: a task printing %d MB (%d lines) through sh, plain reporter, %d alternating rounds"
      % (mb, mb * 10000, rounds))
for name in cmds:
    print("%-11s cpu median %6.2f s (min %6.2f, max %6.2f)  wall median %6.2f s" % (
        name, statistics.median(cpu[name]), min(cpu[name]), max(cpu[name]), statistics.median(wall[name])))
print("ratio 20 secrets/none (median cpu) %.2f (goal <= 1.3)" % (
    statistics.median(cpu["20 secrets"]) / statistics.median(cpu["none"])))
PY
