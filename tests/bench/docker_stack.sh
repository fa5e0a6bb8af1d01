#!/bin/sh
# tests/bench/docker_stack.sh [SLIPWAY] [ROUNDS]: deploy a 10-service stack
# and wait until it has converged (every replica running and healthy):
#   slipway:  docker.stack.deploy(name, compose.load(file), { wait = true })
#   docker:   docker stack deploy -c file, then `docker service ls` every
#             0.2s until every service shows N/N replicas
# Both run against the same engine (tests/infra/up), alternately, ROUNDS
# times (default 3); each stack is removed before the next round. Prints
# the medians and the ratio slipway/docker (goal <= 1.0). Never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${2:-3}
DOCKER=/usr/local/bin/docker
. tests/bench/lib/infra.sh
REG=${SLIPWAY_REGISTRY:-127.0.0.1:5000}
IMAGE=$REG/slipway-bench:v1
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "$started" ] && tests/infra/down' EXIT

make -s -C tests/apps health || exit 1
$DOCKER build -q -t "$IMAGE" --build-arg VERSION=bench tests/apps >/dev/null && $DOCKER push -q "$IMAGE" >/dev/null || exit 1

{
  echo 'version: "3.8"'
  echo 'services:'
  for i in 1 2 3 4 5 6 7 8 9 10; do
    cat <<EOS
  svc$i:
    image: $IMAGE
    environment: { VERSION: "svc$i" }
    deploy:
      replicas: 1
      restart_policy: { condition: any, delay: 1s }
EOS
  done
} >"$work/stack.yml"

cat >"$work/bench_deploy.lua" <<'EOS'
local compose = require("slipway.compose")
local docker = require("slipway.docker")
local file, name = arg[1], arg[2]
docker.stack.deploy(name, compose.load(file), { timeout = "5m", quiet = true })
EOS

now() { date +%s.%N; }
rm_stack() {
  $DOCKER stack rm "$1" >/dev/null 2>&1
  # wait until its tasks and network are gone, so rounds do not overlap
  n=0
  while [ $n -lt 150 ] && [ -n "$($DOCKER network ls -q --filter label=com.docker.stack.namespace="$1")" ]; do
    sleep 0.2; n=$((n + 1))
  done
}
cli_round() {
  t0=$(now)
  $DOCKER stack deploy --detach=true -c "$work/stack.yml" "$1" >/dev/null 2>&1 || { echo "docker stack deploy failed" >&2; exit 1; }
  while :; do
    out=$($DOCKER service ls --filter label=com.docker.stack.namespace="$1" --format '{{.Replicas}}')
    total=$(echo "$out" | grep -c .)
    ok=$(echo "$out" | awk -F'[/ ]' '$1 == $2 && $1 > 0' | grep -c .)
    [ "$total" -eq 10 ] && [ "$ok" -eq 10 ] && break
    sleep 0.2
  done
  echo "$(now) - $t0" | bc
}
sw_round() {
  t0=$(now)
  "$SLIPWAY" "$work/bench_deploy.lua" "$work/stack.yml" "$1" || { echo "slipway deploy failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$work/sw"; : >"$work/cli"
i=1
while [ $i -le "$ROUNDS" ]; do
  s=$(cli_round "bcli$i"); echo "$s" >>"$work/cli"; rm_stack "bcli$i"
  s=$(sw_round "bsw$i"); echo "$s" >>"$work/sw"; rm_stack "bsw$i"
  i=$((i + 1))
done
sw=$(median <"$work/sw"); cli=$(median <"$work/cli")
printf 'deploy 10 services and wait until converged (median of %d rounds)\n' "$ROUNDS"
printf '  slipway docker.stack.deploy          %6.2fs   (%s)\n' "$sw" "$(tr '\n' ' ' <"$work/sw")"
printf '  docker stack deploy + service ls     %6.2fs   (%s)\n' "$cli" "$(tr '\n' ' ' <"$work/cli")"
printf '  ratio slipway/docker                 %6.2f   (goal <= 1.0)\n' "$(echo "$sw / $cli" | bc -l)"
