#!/bin/sh
# Start-up time: `slipway -e ''` against `lua5.4 -e ''`, side by side in one
# hyperfine run. Goal: median ratio <= 1.5. Prints the medians and the ratio.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=${SLIPWAY:-build/slipway}
out=$(mktemp)
hyperfine -N --warmup 50 --runs ${RUNS:-500} --export-json "$out" \
  "$SLIPWAY -e ''" "lua5.4 -e ''" >/dev/null 2>&1 || { echo "hyperfine failed"; exit 1; }
"$SLIPWAY" -e '
  local r = json.decode(fs.read(arg[1])).results
  local s, l = r[1].median * 1000, r[2].median * 1000
  print(("startup  slipway %.2f ms  lua5.4 %.2f ms  ratio %.2f (goal <= 1.5)"):format(s, l, s / l))
' "$out" 2>/dev/null || python3 -c "
import json,sys; r=json.load(open('$out'))['results']; s=r[0]['median']*1e3; l=r[1]['median']*1e3
print('startup  slipway %.2f ms  lua5.4 %.2f ms  ratio %.2f (goal <= 1.5)'%(s,l,s/l))"
rm -f "$out"
