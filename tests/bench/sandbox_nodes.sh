#!/bin/sh
# tests/bench/sandbox_nodes.sh [SLIPWAY] [ROUNDS]: a 3-node sandbox
# (`slipway sandbox up --nodes 3`), measured three ways, each side by side
# with its peer in one run, ROUNDS times (default 3), medians and ratios:
#   1. bring up a 3-node sandbox (1 manager, 2 workers) and tear it down
#   2. deploy a 30-service stack until converged on the 3 nodes:
#        slipway: docker.stack.deploy(name, compose.load(file), { wait = true })
#        docker:  docker stack deploy --detach=false (the 28.x CLI)
#      (goal: slipway/docker <= 0.7)
#   3. 200 Engine API calls (GET /services) to the manager over ssh://, with
#      sshd running inside the node's namespaces:
#        slipway: one client, one SSH connection for all of them
#        docker:  `docker service ls` x200 with DOCKER_HOST=ssh://, one
#                 ssh connection (and `docker system dial-stdio`) per call
# SLIPWAY_BENCH_PARTS="stack ssh" (the default) picks which of 2. and 3. run.
# It starts engines of its own, so it holds the machine's sandbox lock
# EXCLUSIVE for its whole life (test runs hold it shared), unless its
# caller says it does (SLIPWAY_SANDBOX_LOCK_HELD=exclusive). Needs root.
# Never fails on noise.
cd "$(dirname "$0")/../.." || exit 2
if [ "${SLIPWAY_SANDBOX_LOCK_HELD:-}" != exclusive ]; then
  SLIPWAY_SANDBOX_LOCK_HELD=exclusive exec flock -x "${SLIPWAY_SANDBOX_LOCK:-/tmp/slipway-sandbox.lock}" "$0" "$@"
fi
SLIPWAY=$(realpath "${1:-build/slipway}")
ROUNDS=${2:-3}
PARTS=${SLIPWAY_BENCH_PARTS:-stack ssh}      # which of 2. and 3. to run (1. always)
want() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
DOCKER=/usr/local/bin/docker
DIR=/tmp/slipway-bench-nodes
work=$(mktemp -d)
cleanup() {
  "$SLIPWAY" sandbox down --dir "$DIR" --force >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
"$SLIPWAY" sandbox down --dir "$DIR" --force >/dev/null 2>&1

# 1. up and down
: >"$work/up"; : >"$work/down"
i=1
while [ $i -le "$ROUNDS" ]; do
  t0=$(now)
  "$SLIPWAY" sandbox up --nodes 3 --dir "$DIR" --json >"$work/state.json" 2>"$work/up.log" || { cat "$work/up.log" >&2; exit 1; }
  t1=$(now)
  if [ $i -lt "$ROUNDS" ]; then
    "$SLIPWAY" sandbox down --dir "$DIR" --force 2>/dev/null || exit 1
    echo "$(now) - $t1" | bc >>"$work/down"
  fi
  echo "$t1 - $t0" | bc >>"$work/up"
  i=$((i + 1))
done
printf '3-node sandbox (median of %d rounds)\n' "$ROUNDS"
printf '  up --nodes 3 (3 engines, swarm, registry)  %6.2fs   (%s)\n' "$(median <"$work/up")" "$(tr '\n' ' ' <"$work/up")"
[ "$ROUNDS" -gt 1 ] && printf '  down                                       %6.2fs   (%s)\n' "$(median <"$work/down")" "$(tr '\n' ' ' <"$work/down")"

# the sandbox of the last round stays up for the two other measures
eval "$("$SLIPWAY" sandbox status --dir "$DIR" --env)"
export DOCKER_HOST
REG=$SLIPWAY_REGISTRY
IMAGE=$REG/slipway-bench:v1
make -s -C tests/apps health || exit 1
$DOCKER build -q -t "$IMAGE" --build-arg VERSION=bench tests/apps >/dev/null 2>&1 && $DOCKER push -q "$IMAGE" >/dev/null || exit 1

# 2. a 30-service stack (healthcheck off: on 2 cores, 30 containers exec'ing
# the image's every 300 ms time out, and the swarm replaces them in a loop)
if want stack; then
{
  echo 'services:'
  n=1
  while [ $n -le 30 ]; do
    cat <<EOS
  svc$n:
    image: $IMAGE
    environment: { VERSION: "svc$n" }
    healthcheck: { disable: true }
    deploy:
      replicas: 1
      restart_policy: { condition: any, delay: 1s }
EOS
    n=$((n + 1))
  done
} >"$work/stack.yml"
cat >"$work/bench_deploy.lua" <<'EOS'
local compose = require("slipway.compose")
local docker = require("slipway.docker")
local file, name = arg[1], arg[2]
docker.stack.deploy(name, compose.load(file), { timeout = "5m", quiet = true })
EOS
rm_stack() {
  $DOCKER stack rm "$1" >/dev/null 2>&1
  n=0
  while [ $n -lt 300 ] && [ -n "$($DOCKER network ls -q --filter label=com.docker.stack.namespace="$1")" ]; do
    sleep 0.2; n=$((n + 1))
  done
}
: >"$work/sw"; : >"$work/cli"
i=1
while [ $i -le "$ROUNDS" ]; do
  t0=$(now)
  $DOCKER stack deploy --detach=false -c "$work/stack.yml" "bcli$i" >/dev/null 2>&1 || { echo "docker stack deploy failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc >>"$work/cli"
  rm_stack "bcli$i"
  t0=$(now)
  "$SLIPWAY" "$work/bench_deploy.lua" "$work/stack.yml" "bsw$i" || { echo "slipway deploy failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc >>"$work/sw"
  rm_stack "bsw$i"
  i=$((i + 1))
done
sw=$(median <"$work/sw"); cli=$(median <"$work/cli")
printf '30-service stack until converged on 3 nodes (median of %d rounds)\n' "$ROUNDS"
printf '  slipway docker.stack.deploy                %6.2fs   (%s)\n' "$sw" "$(tr '\n' ' ' <"$work/sw")"
printf '  docker stack deploy --detach=false         %6.2fs   (%s)\n' "$cli" "$(tr '\n' ' ' <"$work/cli")"
printf '  ratio slipway/docker                       %6.2f   (goal <= 0.7)\n' "$(echo "$sw / $cli" | bc -l)"

fi

# 3. 200 API calls over ssh:// to node1 (`service ls` needs a manager),
# sshd inside its namespaces
if want ssh; then
node_pid=$("$SLIPWAY" -e 'local s = require("slipway.json").decode(io.read("a")) print(s.nodes[1].pid, s.nodes[1].addr)' <"$work/state.json")
addr=${node_pid#*	}; node_pid=${node_pid%%	*}
keys=$work/ssh
mkdir -p "$keys"
ssh-keygen -q -t ed25519 -N "" -f "$keys/host" && ssh-keygen -q -t ed25519 -N "" -f "$keys/client" || exit 1
cp "$keys/client.pub" "$keys/authorized_keys"
cat >"$keys/sshd_config" <<EOS
ListenAddress $addr
Port 22
HostKey $keys/host
AuthorizedKeysFile $keys/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
AllowStreamLocalForwarding yes
MaxStartups 100:30:200
EOS
nsenter --target "$node_pid" --net --mount --uts --pid /usr/sbin/sshd -f "$keys/sshd_config" -E "$keys/sshd.log" || exit 1
SSH_OPTS="-i $keys/client -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# the CLI runs plain `ssh`: a wrapper first on its PATH gives it the same options
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec /usr/bin/ssh %s "$@"\n' "$SSH_OPTS" >"$work/bin/ssh"
chmod +x "$work/bin/ssh"
cat >"$work/ssh_calls.lua" <<'EOS'
local host, n = arg[1], tonumber(arg[2])
local opts = {}
for w in arg[3]:gmatch("%S+") do opts[#opts + 1] = w end
local c = require("slipway.docker").client({ host = host, ssh_options = opts })
for _ = 1, n do c:call("bench", "GET", "/services") end
EOS
sleep 0.5
: >"$work/ssw"; : >"$work/scli"
i=1
while [ $i -le "$ROUNDS" ]; do
  t0=$(now)
  "$SLIPWAY" "$work/ssh_calls.lua" "ssh://root@$addr" 200 "$SSH_OPTS" || { echo "slipway over ssh failed" >&2; exit 1; }
  echo "$(now) - $t0" | bc >>"$work/ssw"
  t0=$(now)
  n=0
  while [ $n -lt 200 ]; do
    PATH="$work/bin:$PATH" DOCKER_HOST="ssh://root@$addr" $DOCKER service ls -q >/dev/null || { echo "docker over ssh failed" >&2; exit 1; }
    n=$((n + 1))
  done
  echo "$(now) - $t0" | bc >>"$work/scli"
  i=$((i + 1))
done
sw=$(median <"$work/ssw"); cli=$(median <"$work/scli")
logins=$(grep -c "Accepted publickey" "$keys/sshd.log")
printf '200 API calls over ssh:// (median of %d rounds; %d SSH logins in all)\n' "$ROUNDS" "$logins"
printf '  slipway, one connection                    %6.2fs   (%s)\n' "$sw" "$(tr '\n' ' ' <"$work/ssw")"
printf '  docker service ls x200, one per call       %6.2fs   (%s)\n' "$cli" "$(tr '\n' ' ' <"$work/scli")"
printf '  ratio slipway/docker                       %6.3f\n' "$(echo "$sw / $cli" | bc -l)"
fi
