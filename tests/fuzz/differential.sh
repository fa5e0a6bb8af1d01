#!/bin/sh
# tests/fuzz/differential.sh DIR [SLIPWAY]: `slipway compose config` against
# `docker stack config` on every input in DIR (a fuzz_compose corpus, e.g.
# FUZZ_CORPUS=build-fuzz/corpus tests/fuzz/run.sh 600 compose, then
# build-fuzz/corpus/compose). Inputs are split like tests/fuzz/checks.lua
# does (compose file, override after "#@@override"; the .env part is dropped:
# docker has no --env-file) and run with the variables of checks.lua. Needs the docker
# CLI (no daemon: `docker stack config` works offline). For the
# interpolation corpus, make compose files of its templates first:
#   build/slipway tests/fuzz/templates_to_compose.lua build-fuzz/corpus/interpolate D
#   tests/fuzz/differential.sh D
#
# Prints one line per disagreement (accepted by one, rejected by the other,
# or different output data) and a summary; exits 1 when any were found.
# Saves each disagreeing input under build-fuzz/differential/.
cd "$(dirname "$0")/../.." || exit 2
dir=${1:?usage: tests/fuzz/differential.sh DIR [SLIPWAY]}
slipway=$(realpath "${2:-build/slipway}")
command -v docker >/dev/null || { echo "differential.sh: no docker CLI" >&2; exit 2; }
out=build-fuzz/differential
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
vars="TAG=1.0 HOME=/home/fuzz EMPTY= REPLICAS=2 PORT=8080 A=a B=b-c BR=} DOL=\$x NUM=3 T=true F=1.5 DOCKER_CONFIG=$work/docker PATH=$PATH"

same=0; differ=0; both_rejected=0; skipped=0
for f in "$dir"/*; do
  [ -f "$f" ] || continue
  rm -f "$work"/*.yml
  # split at the marker lines; a NUL byte cannot be in a file name argument
  # or in YAML anyway
  if tr -d '\000' <"$f" | cmp -s - "$f"; then :; else skipped=$((skipped + 1)); continue; fi
  awk -v dir="$work" '
    $0 == "#@@override" { part = "override"; next }
    $0 == "#@@env" { part = "env"; next }
    part == "" { print > (dir "/compose.yml") }
    part == "override" { print > (dir "/override.yml") }
  ' "$f"
  [ -f "$work/compose.yml" ] || : >"$work/compose.yml"
  set -- -c compose.yml
  [ -f "$work/override.yml" ] && set -- "$@" -c override.yml
  (cd "$work" && env -i $vars timeout 20 docker stack config "$@" >d.out 2>d.err); drc=$?
  (cd "$work" && env -i $vars timeout 20 "$slipway" compose config "$@" >s.out 2>s.err); src=$?
  name=$(basename "$f")
  if [ $drc -ne 0 ] && [ $src -ne 0 ]; then
    both_rejected=$((both_rejected + 1))
  elif [ $drc -eq 0 ] && [ $src -eq 0 ] && "$slipway" tests/fuzz/same_yaml.lua "$work/d.out" "$work/s.out" >"$work/why" 2>&1; then
    same=$((same + 1))
  else
    differ=$((differ + 1))
    cp "$f" "$out/$name"
    if [ $drc -ne 0 ]; then
      echo "$name: docker rejects ($(head -c 200 "$work/d.err" | tr '\n' ' ')), slipway accepts"
    elif [ $src -ne 0 ]; then
      echo "$name: slipway rejects ($(head -c 200 "$work/s.err" | tr '\n' ' ')), docker accepts"
    else
      echo "$name: both accept, output differs: $(head -c 300 "$work/why" | tr '\n' ' ')"
    fi
  fi
done
echo "differential: $same same output, $both_rejected rejected by both, $differ disagreements, $skipped skipped (NUL bytes)"
[ $differ -eq 0 ]
