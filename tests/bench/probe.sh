#!/bin/sh
# tests/bench/probe.sh [SLIPWAY] [N] [PARALLEL]: N HTTP probes (default 5000)
# of a small file on a local nginx, PARALLEL (default 500) at a time:
# slipway (probe.all over slipway.probe) vs `curl --parallel --parallel-max
# PARALLEL` on the same URLs, side by side in one run (3 alternating
# rounds, medians). Prints wall, CPU (user+sys), peak RSS and the p99 of
# the per-request latency of both (slipway: each result's latency_ms;
# curl: -w %{time_total}). Reports the goal (wall ratio <= 1.0), never
# fails on noise.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
N=${2:-5000}
PAR=${3:-500}
ROUNDS=${ROUNDS:-3}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "probe.sh: needs /usr/bin/time (tools/install-deps)" >&2; exit 2; }

dir=$(mktemp -d /tmp/slipway-bench-probe.XXXXXX)
connections=8192
. tests/bench/lib/nginx.sh
printf 'ok\n' > "$dir/www/health"

url="http://127.0.0.1:$port/health"
{
  echo 'write-out = "%{time_total}\n"'
  j=1
  while [ $j -le "$N" ]; do printf 'url = "%s?%d"\noutput = "/dev/null"\n' "$url" $j; j=$((j + 1)); done
} > "$dir/curl.cfg"

cat > "$dir/client.lua" <<'EOF'
local probe = require("slipway.probe")
local url, n, par, out = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local list = {}
for i = 1, n do list[i] = { url = url .. "?" .. i } end
local res = probe.all(list, { concurrency = par })
if res.passed ~= n then
  io.stderr:write(("only %d of %d probes passed\n"):format(res.passed, n))
  os.exit(1)
end
local f = assert(io.open(out, "w"))
for _, r in ipairs(res.results) do f:write(r.latency_ms / 1000, "\n") end
f:close()
EOF

# one measurement: "wall cpu rss_kb" on stdout; the command's stdout goes to $1
measure() {
  out=$1; shift
  t0=$(date +%s%N)
  $TIME -f '%U %S %M' -o "$dir/time.out" "$@" > "$out" 2> "$dir/err.out" ||
    { echo "failed: $*" >&2; cat "$dir/err.out" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v w=$(( (t1 - t0) / 1000 )) '{ printf "%.4f %.2f %s\n", w / 1e6, $1 + $2, $3 }' "$dir/time.out"
}

p99() {   # seconds, one per line -> p99 in ms
  sort -g "$1" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < NR * 0.99) i++; printf "%.2f", v[i] * 1000 }'
}

# curl's tool caps --parallel-max at 300 (MAX_PARALLEL in curl 7.88: its
# progress meter shows at most 300 live transfers), so with PAR > 300 it
# runs fewer at once than asked. slipway also runs at curl's effective
# concurrency, for a like-for-like line.
EFF=$PAR; [ "$EFF" -gt 300 ] && EFF=300
: > "$dir/sw"; : > "$dir/curl"; : > "$dir/sw.p99"; : > "$dir/curl.p99"; : > "$dir/sweff"; : > "$dir/sweff.p99"
r=1
while [ $r -le "$ROUNDS" ]; do
  if [ "$EFF" -ne "$PAR" ]; then
    measure /dev/null "$SLIPWAY" "$dir/client.lua" "$url" "$N" "$EFF" "$dir/sw.lat" >> "$dir/sweff"
    p99 "$dir/sw.lat" >> "$dir/sweff.p99"; echo >> "$dir/sweff.p99"
  fi
  measure /dev/null "$SLIPWAY" "$dir/client.lua" "$url" "$N" "$PAR" "$dir/sw.lat" >> "$dir/sw"
  p99 "$dir/sw.lat" >> "$dir/sw.p99"; echo >> "$dir/sw.p99"
  measure "$dir/curl.lat" curl -sS --no-progress-meter --fail --parallel --parallel-max "$PAR" -K "$dir/curl.cfg" >> "$dir/curl"
  p99 "$dir/curl.lat" >> "$dir/curl.p99"; echo >> "$dir/curl.p99"
  [ "$(wc -l < "$dir/curl.lat")" -eq "$N" ] || { echo "curl did not report $N transfers" >&2; exit 1; }
  r=$((r + 1))
done

best() {     # smallest value of column $2 of file $1 (noise only adds time)
  sort -g -k"$2" "$1" | awk -v c="$2" 'NR == 1 { print $c }'
}
median() {   # column $2 of file $1
  sort -g -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
sw_wall=$(median "$dir/sw" 1); sw_cpu=$(median "$dir/sw" 2); sw_rss=$(median "$dir/sw" 3); sw_p99=$(median "$dir/sw.p99" 1)
cu_wall=$(median "$dir/curl" 1); cu_cpu=$(median "$dir/curl" 2); cu_rss=$(median "$dir/curl" 3); cu_p99=$(median "$dir/curl.p99" 1)
echo "probe: $N HTTP probes of $url, $PAR at a time, median of $ROUNDS rounds"
printf '  %-8s wall %7.4fs  cpu %6.2fs  peak rss %7d KB  p99 %8.2f ms\n' slipway "$sw_wall" "$sw_cpu" "$sw_rss" "$sw_p99"
printf '  %-8s wall %7.4fs  cpu %6.2fs  peak rss %7d KB  p99 %8.2f ms\n' curl "$cu_wall" "$cu_cpu" "$cu_rss" "$cu_p99"
sw_best=$(best "$dir/sw" 1); cu_best=$(best "$dir/curl" 1)
awk -v a="$sw_wall" -v b="$cu_wall" -v c="$sw_cpu" -v d="$cu_cpu" -v e="$sw_rss" -v f="$cu_rss" -v g="$sw_p99" -v h="$cu_p99" \
    -v i="$sw_best" -v j="$cu_best" 'BEGIN {
  printf "  ratio slipway/curl: wall %.2f (goal <= 1.0; best of each: %.2f), cpu %.2f, rss %.2f, p99 %.2f\n",
    a / (b > 0 ? b : 0.01), i / (j > 0 ? j : 0.01), c / (d > 0 ? d : 0.01), e / f, g / (h > 0 ? h : 0.01) }'
if [ "$EFF" -ne "$PAR" ]; then
  ew=$(median "$dir/sweff" 1); ec=$(median "$dir/sweff" 2); er=$(median "$dir/sweff" 3); ep=$(median "$dir/sweff.p99" 1)
  echo "  curl ran at most $EFF at a time (its cap); slipway at $EFF too:"
  printf '  %-8s wall %7.4fs  cpu %6.2fs  peak rss %7d KB  p99 %8.2f ms\n' "slipway" "$ew" "$ec" "$er" "$ep"
  awk -v a="$ew" -v b="$cu_wall" -v c="$ec" -v d="$cu_cpu" -v g="$ep" -v h="$cu_p99" 'BEGIN {
    printf "  ratio slipway@%d/curl: wall %.2f, cpu %.2f, p99 %.2f\n", '"$EFF"', a / (b > 0 ? b : 0.01),
      c / (d > 0 ? d : 0.01), g / (h > 0 ? h : 0.01) }'
fi
