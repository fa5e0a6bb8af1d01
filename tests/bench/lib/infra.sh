# tests/bench/lib/infra.sh: sourced by the Docker benchmarks. Uses the
# engine DOCKER_HOST names, or brings up the tests' sandbox, holding the
# machine's sandbox lock shared (see tests/run)
# (tests/infra/up) and sets `started` so the caller's exit trap can take it
# down again with tests/infra/down.
started=""
if [ -z "$DOCKER_HOST" ]; then
  # one Docker sandbox at a time on a machine: share the tests' engine with
  # test runs (the lock is held shared until this script exits)
  exec 9>"${SLIPWAY_SANDBOX_LOCK:-/tmp/slipway-sandbox.lock}"
  flock -s 9
  tests/infra/up || exit 1
  started=1
  . tests/infra/env
fi
