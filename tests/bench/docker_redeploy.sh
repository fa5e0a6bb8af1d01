#!/bin/sh
# tests/bench/docker_redeploy.sh [SLIPWAY] [ROUNDS]: a redeploy with nothing
# changed, of the docker-demo pipeline (examples/docker-demo: 3 images, 3
# services, 2 replicas each), against the same engine and registry
# (tests/infra/up):
#   slipway:  `slipway run deploy.lua` once (run 1: builds, pushes, deploys,
#             waits, validates), then ROUNDS more times with nothing changed
#             (run 2: every build and push found done, every service
#             unchanged, validation still runs)
#   docker:   the same by hand with the CLI: `docker build` x3 (its layer
#             cache), `docker push` x3, `docker stack deploy --detach=false`,
#             once, then ROUNDS more times
# Each side has its own copy of the pipeline, its own tags and stack.
# Prints the medians and the ratios run 2 / run 1 of slipway (goal <= 0.10)
# and slipway's run 2 / the CLI's run 2 (goal <= 0.25). Never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${2:-3}
DOCKER=/usr/local/bin/docker
. tests/bench/lib/infra.sh
REG=${SLIPWAY_REGISTRY:-127.0.0.1:5000}
work=$(mktemp -d)
id=$$
trap '$DOCKER stack rm "bsw$id" "bcli$id" >/dev/null 2>&1; rm -rf "$work"; [ -n "$started" ] && tests/infra/down' EXIT

# a checkout of the pipeline and the program's sources (records, copies of
# the program and the tags stay out of the tree)
mkdir -p "$work/sw/examples" "$work/sw/tests/apps"
cp -r examples/docker-demo "$work/sw/examples/" && rm -rf "$work/sw/examples/docker-demo/.slipway"
cp tests/apps/health.c tests/apps/Makefile "$work/sw/tests/apps/"
cp -r "$work/sw" "$work/cli"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

sw_run() {
  t0=$(now)
  "$SLIPWAY" run "$work/sw/examples/docker-demo/deploy.lua" -p stack="bsw$id" -p version="bsw$id" \
    --reporter plain >"$work/sw.log" 2>&1 || { cat "$work/sw.log" >&2; echo "slipway run failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}

# The same pipeline by hand: make, copy the program, build, push, deploy
# and wait (the CLI's own wait: --detach=false), validate by reading the
# services' images.
demo=$work/cli/examples/docker-demo
cli_run() {
  t0=$(now)
  make -s -C "$work/cli/tests/apps" health || exit 1
  for s in api web worker; do
    install -m 0755 "$work/cli/tests/apps/health" "$demo/services/$s/health"
    $DOCKER build -q -t "$REG/demo-$s:bcli$id" --build-arg VERSION="$s-bcli$id" --build-arg MODE=healthy \
      "$demo/services/$s" >/dev/null || { echo "docker build failed" >&2; exit 1; }
  done
  for s in api web worker; do
    $DOCKER push -q "$REG/demo-$s:bcli$id" >/dev/null || { echo "docker push failed" >&2; exit 1; }
  done
  REGISTRY=$REG TAG=bcli$id $DOCKER stack deploy --detach=false -c "$demo/stack.yml" "bcli$id" >/dev/null 2>&1 ||
    { echo "docker stack deploy failed" >&2; exit 1; }
  n=$($DOCKER service ls --filter label=com.docker.stack.namespace="bcli$id" --format '{{.Image}}' | grep -c ":bcli$id")
  [ "$n" -eq 3 ] || { echo "the CLI's stack does not run bcli$id" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}

sw1=$(sw_run)
cli1=$(cli_run)
: >"$work/sw2"; : >"$work/cli2"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  sw_run >>"$work/sw2"
  cli_run >>"$work/cli2"
  r=$((r + 1))
done
grep -q "3 unchanged" "$work/sw.log" || echo "warning: slipway's last run did not find the stack unchanged" >&2
sw2=$(median <"$work/sw2"); cli2=$(median <"$work/cli2")
printf 'redeploy of examples/docker-demo with nothing changed (3 images, 3 services; median of %d rounds)\n' "$ROUNDS"
printf '  slipway run 1 (build, push, deploy, wait)   %6.2fs\n' "$sw1"
printf '  slipway run 2 (nothing to do)               %6.2fs   (%s)\n' "$sw2" "$(tr '\n' ' ' <"$work/sw2")"
printf '  docker CLI run 1                            %6.2fs\n' "$cli1"
printf '  docker CLI run 2 (layer cache, --detach=false) %6.2fs   (%s)\n' "$cli2" "$(tr '\n' ' ' <"$work/cli2")"
printf '  ratio slipway run 2 / run 1                 %6.2f   (goal <= 0.10)\n' "$(echo "$sw2 / $sw1" | bc -l)"
printf '  ratio slipway run 2 / CLI run 2             %6.2f   (goal <= 0.25)\n' "$(echo "$sw2 / $cli2" | bc -l)"
