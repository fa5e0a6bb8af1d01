#!/bin/bash
# tests/bench/compose.sh [SLIPWAY]: `slipway compose config` vs `docker stack
# config` (/usr/local/bin/docker) on each of the 60 accepted corpus files,
# measured side by side in one run (ROUNDS alternating runs per file, default
# 5, medians), as the corpus README runs them (env -i HOME PATH + .vars.env,
# the file copied into a fresh directory). Prints each file's wall-time and
# CPU-time (user+sys) ratios and their medians (goal: wall ratio <= 0.25);
# then, in one slipway process, load + render of all 60 files (goal <= 50 ms
# in total). Reports, never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
DOCKER=${DOCKER:-/usr/local/bin/docker}
CORPUS=${COMPOSE_CORPUS:-$(realpath -m ../shared/corpus/compose)}
ROUNDS=${ROUNDS:-5}
[ -x "$DOCKER" ] || { echo "compose.sh: $DOCKER not found" >&2; exit 2; }

work=$(mktemp -d /tmp/slipway-bench-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
TIMEFORMAT='%3R %3U %3S'

# run DIR OUT CMD...: append "wall_ms cpu_ms" of one run to OUT (bash's own
# `time`: wall clock and the child's user+sys CPU, millisecond resolution)
run() {
  local d=$1 out=$2 t; shift 2
  t=$( { time env -i -C "$d" HOME=/home/corpus PATH=/usr/bin:/bin "${VARS[@]}" "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | awk '{printf "%.1f %.1f\n", $1 * 1000, ($2 + $3) * 1000}' >> "$out"
}

names=$(awk -F'\t' 'NR > 1 && $7 == 0 {sub(/\.yml$/, "", $1); print $1}' "$CORPUS/MANIFEST.tsv")
: > "$work/wall"; : > "$work/cpu"
printf '%-80s %9s %9s %6s %8s %8s %6s\n' "file" "docker" "slipway" "wall" "docker" "slipway" "cpu"
for n in $names; do
  d="$work/$n"
  mkdir -p "$d"
  cp "$CORPUS/$n.yml" "$d/"
  [ -d "$CORPUS/$n.support" ] && cp -r "$CORPUS/$n.support/." "$d/"
  mapfile -t VARS < "$CORPUS/$n.vars.env"
  : > "$d/t.docker"; : > "$d/t.slipway"
  for _ in $(seq "$ROUNDS"); do
    run "$d" "$d/t.docker" "$DOCKER" stack config -c "$n.yml"
    run "$d" "$d/t.slipway" "$SLIPWAY" compose config -c "$n.yml"
  done
  dw=$(cut -d' ' -f1 "$d/t.docker" | median); sw=$(cut -d' ' -f1 "$d/t.slipway" | median)
  dc=$(cut -d' ' -f2 "$d/t.docker" | median); sc=$(cut -d' ' -f2 "$d/t.slipway" | median)
  rw=$(awk -v a="$sw" -v b="$dw" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')
  rc=$(awk -v a="$sc" -v b="$dc" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}')
  echo "$rw" >> "$work/wall"; echo "$rc" >> "$work/cpu"
  printf '%-80s %7sms %7sms %6s %6sms %6sms %6s\n' "${n:0:80}" "$dw" "$sw" "$rw" "$dc" "$sc" "$rc"
done
echo "median per-file ratio slipway/docker: wall $(median < "$work/wall") (goal <= 0.25), cpu $(median < "$work/cpu"); $ROUNDS rounds per file"

# One process: load + render every accepted file (each with its own
# variables and working directory), timed inside slipway.
cat > "$work/all.lua" <<'EOF'
local compose = require("slipway.compose")
local task = require("slipway.task")
local work, corpus = arg[1], arg[2]
local jobs = {}
for name in io.lines(work .. "/names") do
  local environ = { HOME = "/home/corpus", PATH = "/usr/bin:/bin" }
  for line in io.lines(corpus .. "/" .. name .. ".vars.env") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then environ[k] = v end
  end
  jobs[#jobs + 1] = { file = work .. "/" .. name .. "/" .. name .. ".yml", environ = environ }
end
local best, best_cpu
for _ = 1, 5 do
  local t0, c0 = task.now(), os.clock()
  for _, j in ipairs(jobs) do compose.render((compose.load(j.file, { environ = j.environ }))) end
  local ms, cpu = task.now() - t0, (os.clock() - c0) * 1000
  best = best and math.min(best, ms) or ms
  best_cpu = best_cpu and math.min(best_cpu, cpu) or cpu
end
print(("one process, load + render of %d files: %.1f ms wall, %.1f ms CPU (best of 5; goal <= 50 ms)")
  :format(#jobs, best, best_cpu))
EOF
echo "$names" > "$work/names"
"$SLIPWAY" "$work/all.lua" "$work" "$CORPUS"
