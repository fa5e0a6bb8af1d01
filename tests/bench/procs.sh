#!/bin/sh
# Parallel processes: 200 x `sleep 0.2` all at once. slipway spawns 200
# tasks that each await proc.run{"sleep", "0.2"} (output captured through
# pipes, as proc.run does by default) and joins them; the peer is
# `xargs -P 200` running the same 200 sleeps. Both start through `sh -c`.
# The two alternate round by round (so load from elsewhere hits both alike);
# prints the median wall times, the CPU time (user+sys, children included)
# and the ratio. Goal: median ratio <= 1.0. Never fails on noise.
#   tests/bench/procs.sh [ROUNDS]      SLIPWAY=build/slipway N=200
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${SLIPWAY:-build/slipway}")
export SLIPWAY N=${N:-200} ROUNDS=${1:-${ROUNDS:-10}}
exec python3 - <<'PY'
import os, resource, statistics, subprocess, time
n, rounds, slipway = int(os.environ["N"]), int(os.environ["ROUNDS"]), os.environ["SLIPWAY"]
lua = ("local t = {} for i = 1, %d do t[i] = spawn(proc.run, {'sleep', '0.2'}) end "
       "for i = 1, %d do assert(t[i]:join().code == 0) end") % (n, n)
cmds = {
    "slipway": ["sh", "-c", '"$0" -e "$1"', slipway, lua],
    "xargs": ["sh", "-c", "seq %d | xargs -P %d -I{} sleep 0.2" % (n, n)],
}
wall = {k: [] for k in cmds}
cpu = {k: [] for k in cmds}
def once(name):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmds[name], check=True)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
for name in cmds:          # warm-up
    once(name)
for i in range(rounds):
    order = ["slipway", "xargs"] if i % 2 == 0 else ["xargs", "slipway"]
    for name in order:
        w, c = once(name)
        wall[name].append(w)
        cpu[name].append(c)
print("procs: %d x sleep 0.2 at once, %d alternating rounds" % (n, rounds))
for name in cmds:
    print("%-8s wall median %6.1f ms (min %6.1f, max %6.1f)  cpu median %6.1f ms" % (
        name, statistics.median(wall[name]) * 1e3, min(wall[name]) * 1e3,
        max(wall[name]) * 1e3, statistics.median(cpu[name]) * 1e3))
print("ratio slipway/xargs (median wall) %.2f (goal <= 1.0)" % (
    statistics.median(wall["slipway"]) / statistics.median(wall["xargs"])))
PY
