#!/bin/sh
# Pulumi event log tailing: the fake Pulumi CLI (tests/fakes/pulumi) writes
# a 50,000-event engine log (resource steps shaped like the recorded EKS
# update in ../shared/specs/pulumi, ~1 KB each, in bursts of 500) while
# slipway's pulumi.up reads it as it grows (src/pulumi.c), turns each
# event into the task's progress and the summary. Measured: slipway's own
# CPU time (os.clock: the process, not the fake) for the up, minus the
# same up with 5 events (stack select, config, outputs, history: the fixed
# cost), per event. Peers over the same log file once it is complete:
# `jq -c .` and Python's json.loads per line (CPU, user+sys). Alternating
# rounds, medians, ratios. Goal: <= 10 us per event. Never fails on noise.
#   tests/bench/pulumi_events.sh [ROUNDS]      SLIPWAY=build/slipway N=50000
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${SLIPWAY:-build/slipway}")
export SLIPWAY N=${N:-50000} ROUNDS=${1:-${ROUNDS:-3}} ROOT=$PWD
exec python3 - <<'PY'
import json, os, resource, shutil, statistics, subprocess, tempfile, time
n, rounds, slipway, root = int(os.environ["N"]), int(os.environ["ROUNDS"]), os.environ["SLIPWAY"], os.environ["ROOT"]
fake = root + "/tests/fakes/pulumi"
work = tempfile.mkdtemp(prefix="slipway-bench-pulumi-")
project, state, home = work + "/project", work + "/state", work + "/home"
for d in (project, state, home):
    os.makedirs(d)
open(project + "/Pulumi.yaml", "w").write("name: bench\nruntime: yaml\n")
env = dict(os.environ, PULUMI_BACKEND_URL="file://" + state, PULUMI_HOME=home,
           PULUMI_CONFIG_PASSPHRASE="bench-passphrase")

lua = r'''
local events = tonumber(arg[1])
local opts = { cwd = %r, stack = "bench", bin = %r, backend = %r, home = %r,
  env = { PULUMI_CONFIG_PASSPHRASE = "bench-passphrase", FAKE_PULUMI_BENCH_EVENTS = tostring(events) } }
local t0, w0 = os.clock(), require("slipway.task").now()
local r = pulumi.up(opts)
io.stderr:write(("%%d %%.6f %%.3f\n"):format(r.events, os.clock() - t0, (require("slipway.task").now() - w0) / 1000))
''' % (project, fake, "file://" + state, home)
script = work + "/up.lua"
open(script, "w").write(lua)

def slipway_up(events):
    p = subprocess.run([slipway, script, str(events)], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=True)
    got, cpu, wall = p.stderr.strip().splitlines()[-1].split()
    return int(got), float(cpu), float(wall)

# the log the peers read: what the fake writes for the same up
log = work + "/events.ndjson"
subprocess.run([fake, "stack", "select", "--stack", "bench", "--create", "--non-interactive"], cwd=project, env=env,
               check=True, stdout=subprocess.DEVNULL)
subprocess.run([fake, "up", "--yes", "--skip-preview", "--event-log", log, "--stack", "bench", "--non-interactive"],
               cwd=project, env=dict(env, FAKE_PULUMI_BENCH_EVENTS=str(n)), check=True, stdout=subprocess.DEVNULL)
lines = sum(1 for _ in open(log))
size = os.path.getsize(log)

def child_cpu(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

peers = {
    "jq -c .": ["jq", "-c", ".", log],
    "python json.loads": ["python3", "-c", "import json, sys\nfor line in open(sys.argv[1]): json.loads(line)", log],
}
per_event, walls, peer_cpu = [], [], {k: [] for k in peers}
slipway_up(5)                                   # warm-up
for i in range(rounds):
    got, cpu_n, wall = slipway_up(n)
    _, cpu_0, _ = slipway_up(5)
    assert got == n, "slipway read %d events, expected %d" % (got, n)
    per_event.append((cpu_n - cpu_0) / (n - 5) * 1e6)
    walls.append(wall)
    for name, cmd in peers.items():
        peer_cpu[name].append(child_cpu(cmd) / lines * 1e6)
shutil.rmtree(work)
print("pulumi events: %d events (%.1f MB, %.0f bytes each) streamed by the fake while slipway tails them, %d rounds"
      % (lines, size / 1e6, size / lines, rounds))
us = statistics.median(per_event)
print("slipway pulumi.up  cpu per event median %5.2f us (min %5.2f, max %5.2f)  wall per up median %.2f s  (goal <= 10 us)"
      % (us, min(per_event), max(per_event), statistics.median(walls)))
for name in peers:
    peer = statistics.median(peer_cpu[name])
    print("%-18s cpu per event median %5.2f us (complete file)  ratio slipway/peer %.2f" % (name, peer, us / peer))
PY
