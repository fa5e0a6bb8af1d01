# tests/bench/lib/infra.sh: sourced by the Docker benchmarks. Uses the
# engine DOCKER_HOST names, or brings up the tests' sandbox
# (tests/infra/up) and sets `started` so the caller's exit trap can take it
# down again with tests/infra/down.
started=""
if [ -z "$DOCKER_HOST" ]; then
  tests/infra/up || exit 1
  started=1
  . tests/infra/env
fi
