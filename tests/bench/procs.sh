#!/bin/sh
# Parallel processes: 200 x `sleep 0.2` all at once. slipway spawns 200
# tasks that each await proc.run{"sleep", "0.2"} (output captured through
# pipes, as proc.run does by default) and joins them; the peer is
# `xargs -P 200` running the same 200 sleeps. Both run through `sh -c` so
# each pays the same shell start. Side by side in one hyperfine run,
# several rounds; prints the median wall times, CPU, and the ratio.
# Goal: median ratio <= 1.0.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${SLIPWAY:-build/slipway}")
N=${N:-200}
out=$(mktemp)
lua_code="local t = {} for i = 1, $N do t[i] = spawn(proc.run, {'sleep', '0.2'}) end for i = 1, $N do assert(t[i]:join().code == 0) end"
hyperfine -N --warmup 2 --runs "${RUNS:-10}" --export-json "$out" \
  -n slipway "sh -c \"$SLIPWAY -e \\\"$lua_code\\\"\"" \
  -n xargs "sh -c 'seq $N | xargs -P $N -I{} sleep 0.2'" >/dev/null 2>&1 \
  || { echo "hyperfine failed"; rm -f "$out"; exit 1; }
python3 - "$out" "$N" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s, x = r["slipway"], r["xargs"]
def line(name, v):
    return "%-8s median %6.1f ms  min %6.1f ms  max %6.1f ms  cpu user %5.1f ms sys %5.1f ms" % (
        name, v["median"] * 1e3, v["min"] * 1e3, v["max"] * 1e3, v["user"] * 1e3, v["system"] * 1e3)
print("procs: %s x sleep 0.2, all at once, %d rounds each" % (sys.argv[2], len(s["times"])))
print(line("slipway", s))
print(line("xargs", x))
print("ratio slipway/xargs (median wall) %.2f (goal <= 1.0)" % (s["median"] / x["median"]))
PY
rm -f "$out"
