#!/bin/bash
# tests/bench/pipeline.sh [SLIPWAY]: the pipeline scheduler, measured side by
# side in one run (ROUNDS alternating runs, default 5, medians). Reports,
# never fails on noise.
#
# 1. 200 tasks each running `sleep 0.2`, -j 200, against `make -j200` on an
#    equivalent Makefile (goal: wall ratio <= 1.0). make runs a recipe
#    without metacharacters without a shell; so does sh's string form
#    (`sh "sleep 0.2"`), measured next to the argv form (`sh {"sleep", "0.2"}`).
# 2. A 2,000-task random DAG of no-op tasks (each needs up to 3 earlier
#    ones), goal <= 20 us per task:
#    - the whole run, as a user runs it: `slipway run dag.lua -j 16` (not a
#      terminal: the plain reporter; the record and timeline written), CPU
#      (user + sys) and wall of the whole process / 2000, with the part
#      that is not `slipway plan` of the same file alongside;
#    - the scheduler alone, in one process: CPU time of scheduler.run over
#      the same DAG (loaded and planned beforehand), with no reporter and
#      with the plain one writing to /dev/null;
#    - peak RSS of the run (goal <= 40 MB).
# 3. `slipway plan` of examples/ci-demo/deploy.lua (goal: median <= 10 ms,
#    peak RSS <= 10 MB).
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${ROUNDS:-5}
work=$(mktemp -d /tmp/slipway-bench-pipeline.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
unset CI GITHUB_ACTIONS

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# wall ms of one run of "$@" (output discarded)
wall_ms() {
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s%N)
  echo $(( (e - s) / 1000 )) | awk '{printf "%.1f\n", $1 / 1000}'
}
# CPU ms (user + sys, children included) of one run of "$@"
cpu_ms() {
  local t TIMEFORMAT='%3U %3S'
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | awk '{printf "%.1f\n", ($1 + $2) * 1000}'
}
# peak RSS in MB of one run of "$@"
rss_mb() {
  /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1 | awk '{printf "%.1f\n", $1 / 1024}'
}

# ---------------------------------------------------------------- 1
mkdir -p "$work/sleep" "$work/sleep_str"
{
  for i in $(seq 1 200); do
    printf 'task("t%d", function() sh { "sleep", "0.2" } end)\n' "$i"
  done
} > "$work/sleep/deploy.lua"
{
  for i in $(seq 1 200); do
    printf 'task("t%d", function() sh "sleep 0.2" end)\n' "$i"
  done
} > "$work/sleep_str/deploy.lua"
{
  printf 'all:'
  for i in $(seq 1 200); do printf ' t%d' "$i"; done
  printf '\n.PHONY: all'
  for i in $(seq 1 200); do printf ' t%d' "$i"; done
  printf '\n'
  for i in $(seq 1 200); do printf 't%d:\n\t@sleep 0.2\n' "$i"; done
} > "$work/sleep/Makefile"
: > "$work/s.slipway"; : > "$work/s.make"; : > "$work/s.string"
for _ in $(seq "$ROUNDS"); do
  wall_ms make -s -C "$work/sleep" -j200 >> "$work/s.make"
  wall_ms "$SLIPWAY" run "$work/sleep/deploy.lua" -j 200 --reporter plain >> "$work/s.slipway"
  wall_ms "$SLIPWAY" run "$work/sleep_str/deploy.lua" -j 200 --reporter plain >> "$work/s.string"
done
mw=$(median < "$work/s.make"); sw=$(median < "$work/s.slipway"); tw=$(median < "$work/s.string")
echo "200 x sleep 0.2, -j 200:    make ${mw} ms   slipway sh {argv} ${sw} ms   ratio $(awk -v a="$sw" -v b="$mw" 'BEGIN {printf "%.2f", a / b}')   (goal <= 1.0)"
echo "                            slipway sh \"sleep 0.2\" ${tw} ms   ratio $(awk -v a="$tw" -v b="$mw" 'BEGIN {printf "%.2f", a / b}')   (goal <= 1.0)"

# ---------------------------------------------------------------- 2
mkdir -p "$work/dag"
"$SLIPWAY" -e '
  math.randomseed(42)
  local out = {}
  for i = 1, 2000 do
    local needs = {}
    if i > 1 then
      for _ = 1, math.random(0, 3) do needs[#needs + 1] = ("%q"):format("t" .. math.random(1, i - 1)) end
    end
    out[#out + 1] = ("task(\"t%d\", { needs = { %s } }, function() end)"):format(i, table.concat(needs, ", "))
  end
  io.open(arg[1], "w"):write(table.concat(out, "\n"), "\n")
' "$work/dag/deploy.lua"
: > "$work/d.run"; : > "$work/d.plan"; : > "$work/d.json"; : > "$work/c.run"; : > "$work/c.plan"
for _ in $(seq "$ROUNDS"); do
  wall_ms "$SLIPWAY" plan "$work/dag/deploy.lua" >> "$work/d.plan"
  wall_ms "$SLIPWAY" run "$work/dag/deploy.lua" -j 16 >> "$work/d.run"
  wall_ms "$SLIPWAY" run "$work/dag/deploy.lua" --json -j 16 >> "$work/d.json"
  cpu_ms "$SLIPWAY" plan "$work/dag/deploy.lua" >> "$work/c.plan"
  cpu_ms "$SLIPWAY" run "$work/dag/deploy.lua" -j 16 >> "$work/c.run"
done
pw=$(median < "$work/d.plan"); rw=$(median < "$work/d.run"); jw=$(median < "$work/d.json")
pc=$(median < "$work/c.plan"); rc=$(median < "$work/c.run")
rss=$(rss_mb "$SLIPWAY" run "$work/dag/deploy.lua" -j 16)
per() { awk -v a="$1" -v b="${2:-0}" 'BEGIN {printf "%.1f", (a - b) * 1000 / 2000}'; }
ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN {printf "%.2f", (a - b) * 1000 / 2000 / 20}'; }
echo "2000-task random DAG (goal <= 20 us/task; ratio = us/task / 20):"
echo "  whole run, CPU:           $(per "$rc") us/task   ratio $(ratio "$rc")   (run ${rc} ms; without its plan part $(per "$rc" "$pc") us/task)"
echo "  whole run, wall:          $(per "$rw") us/task   ratio $(ratio "$rw")   (run ${rw} ms; without its plan part $(per "$rw" "$pw") us/task; --json $(per "$jw") us/task)"
# The scheduler alone, in one process: CPU time of scheduler.run over the
# same DAG (loaded and planned beforehand), with no reporter and with the
# plain one writing to /dev/null; median of ROUNDS runs.
"$SLIPWAY" -e '
  require("slipway.prelude")
  local dsl = require("slipway.pipeline.dsl")
  local graph = require("slipway.pipeline.graph")
  local scheduler = require("slipway.pipeline.scheduler")
  local events = require("slipway.events")
  local def = dsl.load(arg[1])
  graph.check(def)
  local plan = graph.plan(def, {}, {})
  local n, rounds = #def.tasks, tonumber(arg[2])
  local function median(t) table.sort(t) return t[(#t + 1) // 2] end
  for _, mode in ipairs({ "none", "plain" }) do
    local times = {}
    for r = 1, rounds do
      local bus = events.new()
      if mode ~= "none" then
        bus:subscribe(require("slipway.reporters." .. mode).new({ out = io.open("/dev/null", "w") }).event)
      end
      collectgarbage()
      local c = os.clock()
      scheduler.run { def = def, plan = plan, values = {}, jobs = 16, bus = bus }
      times[r] = (os.clock() - c) * 1e6 / n
    end
    local us = median(times)
    print(("  scheduler alone, CPU:     %.1f us/task   ratio %.2f   (in one process, %s)"):format(us, us / 20,
      mode == "none" and "no reporter" or "the plain reporter"))
  end
' "$work/dag/deploy.lua" "$ROUNDS"
echo "  peak RSS of the run:      ${rss} MB   (goal <= 40)"

# ---------------------------------------------------------------- 3
: > "$work/p.plan"
for _ in $(seq $((ROUNDS * 4))); do
  wall_ms "$SLIPWAY" plan examples/ci-demo/deploy.lua >> "$work/p.plan"
done
echo "plan of examples/ci-demo:   median $(median < "$work/p.plan") ms   peak RSS $(rss_mb "$SLIPWAY" plan examples/ci-demo/deploy.lua) MB   (goals <= 10 ms, <= 10 MB)"
