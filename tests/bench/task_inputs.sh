#!/bin/bash
# tests/bench/task_inputs.sh [SLIPWAY]: hashing the inputs of a cached task
# (slipway._inputs.hash, what `task(..., { inputs = ..., cache = true })`
# runs before the task) over a tree of FILES files (default 20000, sizes
# 0-16 KiB in 200 directories, some excluded by a "!" pattern) against
# `find | sort | xargs sha256sum` over the same files, both from a warm page
# cache, ROUNDS alternating runs each (default 7), medians. Prints the
# ratio slipway / shell (goal: <= 1.0). Reports, never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
FILES=${FILES:-20000}
ROUNDS=${ROUNDS:-7}

work=$(mktemp -d /tmp/slipway-bench-inputs.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
tree=$work/tree
mkdir -p "$tree"
# the tree: FILES files of pseudo-random sizes, plus a build/ directory
# the patterns exclude (not hashed by either side)
awk -v n="$FILES" -v root="$tree" 'BEGIN {
  srand(7)
  for (d = 0; d < 200; d++) system("mkdir -p " root "/src/d" d)
  for (i = 0; i < n; i++) {
    f = root "/src/d" (i % 200) "/f" i ".txt"
    size = int(rand() * 16384)
    line = sprintf("%08d some text of file %d ", i, i)
    s = ""
    while (length(s) < size) s = s line
    printf "%s", substr(s, 1, size) > f
    close(f)
  }
}'
mkdir -p "$tree/build" && for i in $(seq 1 500); do echo "$i" > "$tree/build/o$i"; done
cat > "$work/hash.lua" <<'LUA'
local r = assert(require("slipway._inputs").hash(arg[1], { "src/**", "!build" }))
print(r.files, r.bytes, r.digest)
LUA

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
TIMEFORMAT='%3R'
ms() { { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{printf "%.1f\n", $1 * 1000}'; }
shell_hash() { cd "$tree" && find src -type f | LC_ALL=C sort | xargs -d '\n' sha256sum; }

echo "inputs: $("$SLIPWAY" "$work/hash.lua" "$tree")"
echo "shell:  $(shell_hash | wc -l) files"
: > "$work/s"; : > "$work/c"
for _ in $(seq 1 "$ROUNDS"); do
  ms "$SLIPWAY" "$work/hash.lua" "$tree" >> "$work/s"
  ms shell_hash >> "$work/c"
done
s=$(median < "$work/s"); c=$(median < "$work/c")
printf 'hashing %d files: slipway %.1f ms, find|sort|xargs sha256sum %.1f ms, ratio %.2f (goal <= 1.0)\n' \
  "$FILES" "$s" "$c" "$(awk -v a="$s" -v b="$c" 'BEGIN {print a / b}')"
