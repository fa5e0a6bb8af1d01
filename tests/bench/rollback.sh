#!/bin/sh
# tests/bench/rollback.sh [SLIPWAY] [ROUNDS]: going back to the previous
# version of a 10-service stack on the local swarm (tests/infra/up), until
# it converged:
#   slipway:  `slipway run` v1, `slipway run` v2 (both validated), then
#             `slipway rollback --to <v1's release>` (every service back to
#             v1's recorded spec and digest, in parallel, waited for)
#   docker:   `docker stack deploy --detach=false` v1 then v2, then
#             `docker service rollback` of each service in a loop (each
#             waits for its service; it goes back one spec only, and a
#             stack has no rollback of its own: docker/cli#595)
# Same image, same services (the default update and rollback configs: one
# task at a time, 5 s monitor; but failure_action continue on both sides,
# so that a task the sandbox engine fails to start now and then, "network
# sandbox does not exist", does not pause an update; and the image's 300 ms
# healthcheck off: on 2 cores, 20 containers exec'ing it kept the engine
# busy), each side its own stack. ROUNDS (default 3)
# times v2 -> v1; prints the medians and the ratio slipway / docker (goal
# <= 1.0, and <= 30 s). Never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${2:-3}
DOCKER=/usr/local/bin/docker
. tests/bench/lib/infra.sh
REG=${SLIPWAY_REGISTRY:-127.0.0.1:5000}
IMAGE=$REG/slipway-bench-rollback:v1
N=10
work=$(mktemp -d)
id=$$
trap '$DOCKER stack rm "brs$id" "brc$id" >/dev/null 2>&1; rm -rf "$work"; [ -n "$started" ] && tests/infra/down' EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

make -s -C tests/apps health || exit 1
$DOCKER build -q -t "$IMAGE" tests/apps >/dev/null && $DOCKER push -q "$IMAGE" >/dev/null ||
  { echo "cannot build and push $IMAGE" >&2; exit 1; }

# slipway's side: a pipeline of one deploy of N services
cat >"$work/deploy.lua" <<EOF
pipeline { name = "bench-rollback-$id" }
param.string("version", "v1")
task("deploy", function(p)
  local services = {}
  for i = 1, $N do
    services["s" .. i] = { image = "$IMAGE", environment = { VERSION = p.version .. "-" .. i },
      healthcheck = { disable = true },
      deploy = { update_config = { failure_action = "continue" }, rollback_config = { failure_action = "continue" } } }
  end
  docker.stack.deploy("brs$id", { services = services }, { timeout = "5m" })
end)
task("smoke", { needs = "deploy", verifies = true }, function() end)
EOF

# the CLI's side: the same services in a compose file
compose() {
  echo "version: \"3.8\""
  echo "services:"
  i=1
  while [ "$i" -le "$N" ]; do
    printf '  s%d:\n    image: %s\n    environment:\n      VERSION: %s-%d\n' "$i" "$IMAGE" "$1" "$i"
    printf '    healthcheck: {disable: true}\n'
    printf '    deploy:\n      update_config: {failure_action: continue}\n      rollback_config: {failure_action: continue}\n'
    i=$((i + 1))
  done
}
compose v1 >"$work/v1.yml"
compose v2 >"$work/v2.yml"

sw() { "$SLIPWAY" "$@" --reporter plain >>"$work/sw.log" 2>&1 || { tail -30 "$work/sw.log" >&2; echo "slipway $* failed" >&2; exit 1; }; }
cli_deploy() { $DOCKER stack deploy --detach=false -c "$work/$1.yml" "brc$id" >/dev/null 2>&1 || { echo "docker stack deploy $1 failed" >&2; exit 1; }; }

sw run "$work/deploy.lua" -p version=v1
v1_id=$("$SLIPWAY" history "$work/deploy.lua" --json | "$SLIPWAY" -e 'print(require("slipway.json").decode(io.read("a"))[1].id)')
[ -n "$v1_id" ] || { echo "no release id for v1" >&2; exit 1; }
cli_deploy v1

: >"$work/sw.times"; : >"$work/cli.times"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  sw run "$work/deploy.lua" -p version=v2
  t0=$(now); sw rollback "$work/deploy.lua" --to "$v1_id"; echo "$(now) - $t0" | bc >>"$work/sw.times"

  cli_deploy v2
  t0=$(now)
  for s in $($DOCKER service ls --filter label=com.docker.stack.namespace="brc$id" --format '{{.Name}}'); do
    $DOCKER service rollback --detach=false "$s" >/dev/null 2>&1 || { echo "docker service rollback $s failed" >&2; exit 1; }
  done
  echo "$(now) - $t0" | bc >>"$work/cli.times"
  # both sides are on v1 again
  for stack in "brs$id" "brc$id"; do
    n=$($DOCKER service ls --filter label=com.docker.stack.namespace="$stack" -q | xargs $DOCKER service inspect \
      --format '{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{println .}}{{end}}' | grep -c '^VERSION=v1-')
    [ "$n" -eq "$N" ] || echo "warning: $stack has $n of $N services on v1 after the rollback" >&2
  done
  r=$((r + 1))
done
sw_t=$(median <"$work/sw.times"); cli_t=$(median <"$work/cli.times")
printf 'rollback of a %d-service stack, v2 -> v1, until converged (median of %d rounds)\n' "$N" "$ROUNDS"
printf '  slipway rollback --to <v1>                  %6.2fs   (%s)\n' "$sw_t" "$(tr '\n' ' ' <"$work/sw.times")"
printf '  docker service rollback x%d (a loop)        %6.2fs   (%s)\n' "$N" "$cli_t" "$(tr '\n' ' ' <"$work/cli.times")"
printf '  ratio slipway / docker                      %6.2f   (goal <= 1.0, and <= 30 s)\n' "$(echo "$sw_t / $cli_t" | bc -l)"
