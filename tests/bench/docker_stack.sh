#!/bin/sh
# tests/bench/docker_stack.sh [SLIPWAY] [ROUNDS]: deploy a 10-service stack
# and wait until it has converged (every replica running and healthy):
#   slipway:  docker.stack.deploy(name, compose.load(file), { wait = true })
#             (waiting on the engine's event stream)
#   wait:     `docker stack deploy --detach=false` (the 28.x CLI waits
#             itself, service by service)
#   poll:     `docker stack deploy --detach=true`, then `docker service ls`
#             every 0.2s until every service shows N/N replicas
# All run against the same engine (tests/infra/up), alternately, ROUNDS
# times (default 3); each stack is removed before the next round. Prints
# the medians, the ratios (goals: slipway/wait <= 0.2, slipway/poll <= 0.7)
# and where slipway's time went in its last round (from its progress
# lines, which come from the engine's events: services created, containers
# started, healthy, converged). Never fails on noise.
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

# slipway's deploy, with its progress lines timed (ms since the start)
cat >"$work/bench_deploy.lua" <<'EOS'
local compose = require("slipway.compose")
local docker = require("slipway.docker")
local task = require("slipway.task")
local file, name, log = arg[1], arg[2], arg[3]
local t0, lines = task.now(), {}
docker.stack.deploy(name, compose.load(file), { timeout = "5m",
  on_progress = function(l) lines[#lines + 1] = ("%.0f %s"):format(task.now() - t0, l) end })
local f = assert(io.open(log, "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
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
poll_round() {
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
wait_round() {
  t0=$(now)
  $DOCKER stack deploy --detach=false -c "$work/stack.yml" "$1" >/dev/null 2>&1 || { echo "docker stack deploy failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}
sw_round() {
  t0=$(now)
  "$SLIPWAY" "$work/bench_deploy.lua" "$work/stack.yml" "$1" "$work/progress.log" || { echo "slipway deploy failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$work/sw"; : >"$work/poll"; : >"$work/wait"
i=1
while [ $i -le "$ROUNDS" ]; do
  s=$(poll_round "bpoll$i"); echo "$s" >>"$work/poll"; rm_stack "bpoll$i"
  s=$(sw_round "bsw$i"); echo "$s" >>"$work/sw"; rm_stack "bsw$i"
  s=$(wait_round "bwait$i"); echo "$s" >>"$work/wait"; rm_stack "bwait$i"
  i=$((i + 1))
done
sw=$(median <"$work/sw"); poll=$(median <"$work/poll"); wait=$(median <"$work/wait")
printf 'deploy 10 services and wait until converged (median of %d rounds)\n' "$ROUNDS"
printf '  slipway docker.stack.deploy (events)         %6.2fs   (%s)\n' "$sw" "$(tr '\n' ' ' <"$work/sw")"
printf '  docker stack deploy --detach=false           %6.2fs   (%s)\n' "$wait" "$(tr '\n' ' ' <"$work/wait")"
printf '  docker stack deploy + service ls every 0.2s  %6.2fs   (%s)\n' "$poll" "$(tr '\n' ' ' <"$work/poll")"
printf '  ratio slipway / --detach=false               %6.2f   (goal <= 0.2)\n' "$(echo "$sw / $wait" | bc -l)"
printf '  ratio slipway / service ls loop              %6.2f   (goal <= 0.7)\n' "$(echo "$sw / $poll" | bc -l)"
# where the time went (slipway's last round, ms from the start)
awk '
  / created$/ { created = $1 }
  /: container started$/ { if (!first_start) first_start = $1; last_start = $1 }
  /: healthy$/ { if (!first_healthy) first_healthy = $1; last_healthy = $1 }
  / converged$/ { converged = $1 }
  END {
    printf "  where slipway'"'"'s time went (last round, ms from the start):\n"
    printf "    services created (specs sent)           %6d\n", created
    printf "    containers started (first .. last)      %6d .. %d\n", first_start, last_start
    printf "    containers healthy (first .. last)      %6d .. %d\n", first_healthy, last_healthy
    printf "    every service converged                 %6d\n", converged
  }' "$work/progress.log"
