#!/bin/sh
# tests/fuzz/run.sh [SECONDS] [TARGET...]: build the libFuzzer targets
# (make fuzz -> build-fuzz/fuzz_*) and run each for SECONDS (default 20),
# one after the other, one process at a time. Exits 1 when a target found a
# crash, an internal error, a timeout or an out-of-memory input (the input is
# saved as build-fuzz/artifacts/<target>/crash-*; keep it as a regression
# seed under tests/fuzz/regressions/<target>/), 2 when the build fails.
#
# Inputs: tests/fuzz/seeds/<target>/, tests/fuzz/regressions/<target>/ (a
# saved crash fails the run at once if it comes back) and, for yaml and
# compose, the compose files of the shared corpus ($SLIPWAY_COMPOSE_CORPUS,
# default ../shared/corpus/compose), read where they are.
# FUZZ_CORPUS=dir keeps the corpus the fuzzer grows across runs (default: a
# temporary directory, removed at the end). FUZZ_ARGS adds libFuzzer flags.
cd "$(dirname "$0")/../.." || exit 2
secs=${1:-20}
[ $# -gt 0 ] && shift
targets=${*:-"yaml interpolate compose json"}
shared=${SLIPWAY_COMPOSE_CORPUS:-../shared/corpus/compose}

make -s fuzz >build-fuzz.log 2>&1 || { cat build-fuzz.log; rm -f build-fuzz.log; exit 2; }
rm -f build-fuzz.log

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# The compose target writes its files under a directory of its own in
# $TMPDIR; a fuzzer stopped by a signal leaves that directory behind.
export TMPDIR="$work"
# The shared corpus, compose files only (not the .expected.yml outputs).
mkdir -p "$work/shared"
if [ -d "$shared" ]; then
  for f in "$shared"/*.yml; do
    case "$f" in *.expected.yml) ;; *) ln -s "$(realpath "$f")" "$work/shared/" ;; esac
  done
fi

status=0
for t in $targets; do
  corpus=${FUZZ_CORPUS:+$FUZZ_CORPUS/$t}
  corpus=${corpus:-$work/corpus-$t}
  artifacts=build-fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "tests/fuzz/regressions/$t"
  extra=""
  case "$t" in yaml|compose) extra="$work/shared" ;; esac
  log=build-fuzz/fuzz_$t.log
  before=$(ls "$artifacts" | wc -l)
  start=$(date +%s)
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a runaway.
  # -detect_leaks=0: Lua's collector frees memory inputs later, so libFuzzer
  # would run a whole-heap leak check after nearly every input (50x slower);
  # LeakSanitizer still checks the whole process when it exits.
  build-fuzz/fuzz_$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 \
    -print_final_stats=1 -dict="tests/fuzz/$t.dict" -artifact_prefix="$artifacts/" \
    $FUZZ_ARGS "$corpus" "tests/fuzz/seeds/$t" "tests/fuzz/regressions/$t" $extra >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  # FUZZ_ARGS="-fork=1 -ignore_crashes=1" keeps going after a crash and
  # exits 0: new files in the artifacts directory are what counts.
  found=$(( $(ls "$artifacts" | wc -l) - before ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' "$log" | tail -n 1)
  rate=$(( ${runs:-0} / (took > 0 ? took : 1) ))
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
    printf 'fuzz_%-12s ok      %ss %s runs %s exec/s %s\n' "$t" "$took" "${runs:-?}" "$rate" "$cov"
  else
    status=1
    printf 'fuzz_%-12s FAILED  (exit %d, %d new input(s) in %s) %ss %s runs log: %s\n' \
      "$t" "$rc" "$found" "$artifacts" "$took" "${runs:-?}" "$log"
    grep -E 'INTERNAL|internal error|ERROR: |SUMMARY|Test unit written' "$log" | head -n 20 | sed 's/^/    /'
  fi
done
exit $status
