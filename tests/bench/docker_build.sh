#!/bin/sh
# tests/bench/docker_build.sh [SLIPWAY] [ROUNDS]: build 5 images of the
# test app (tests/apps, no cache, distinct build args):
#   slipway:  five docker.build calls in parallel tasks on one loop
#   docker:   `docker build` five times in sequence
# against the same engine (tests/infra/up), alternately, ROUNDS times
# (default 1). Prints the medians and the ratio slipway/docker. Never fails
# on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${2:-1}
DOCKER=/usr/local/bin/docker
. tests/bench/lib/infra.sh
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "$started" ] && tests/infra/down' EXIT
make -s -C tests/apps health || exit 1

cat >"$work/build5.lua" <<'EOS'
local docker = require("slipway.docker")
local task = require("slipway.task")
local round = arg[1]
local jobs = {}
for i = 1, 5 do
  jobs[i] = task.spawn(docker.build, { context = "tests/apps", tag = ("slipway-bench-build:sw%s-%d"):format(round, i),
    build_args = { VERSION = ("sw%s-%d"):format(round, i) }, no_cache = true, quiet = true })
end
for i = 1, 5 do jobs[i]:join() end
EOS

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cleanup_images() {
  $DOCKER images -q "slipway-bench-build" | sort -u | xargs -r $DOCKER rmi -f >/dev/null 2>&1
}

: >"$work/sw"; : >"$work/cli"
r=1
while [ $r -le "$ROUNDS" ]; do
  cleanup_images
  t0=$(now)
  for i in 1 2 3 4 5; do
    $DOCKER build -q --no-cache -t "slipway-bench-build:cli$r-$i" --build-arg VERSION="cli$r-$i" tests/apps >/dev/null 2>&1 ||
      { echo "docker build failed" >&2; exit 1; }
  done
  echo "$(now) - $t0" | bc >>"$work/cli"
  cleanup_images
  t0=$(now)
  "$SLIPWAY" "$work/build5.lua" "$r" || { echo "slipway build failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc >>"$work/sw"
  r=$((r + 1))
done
cleanup_images
sw=$(median <"$work/sw"); cli=$(median <"$work/cli")
printf 'build 5 images, no cache (median of %d rounds)\n' "$ROUNDS"
printf '  slipway docker.build x5 in parallel   %6.2fs   (%s)\n' "$sw" "$(tr '\n' ' ' <"$work/sw")"
printf '  docker build x5 in sequence           %6.2fs   (%s)\n' "$cli" "$(tr '\n' ' ' <"$work/cli")"
printf '  ratio slipway/docker                  %6.2f\n' "$(echo "$sw / $cli" | bc -l)"
