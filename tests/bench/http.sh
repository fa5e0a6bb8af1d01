#!/bin/sh
# tests/bench/http.sh [SLIPWAY] [N] [PARALLEL]: N GETs (default 2000) of a
# small file from a local nginx, PARALLEL (default 100) at a time: slipway
# (tasks over slipway.http) vs `curl --parallel --parallel-max PARALLEL` on
# the same URLs, measured side by side in one run (5 alternating rounds,
# medians, and the ratio of the best runs). Prints wall, CPU (user+sys) and peak RSS of both and the ratios.
# Never fails on noise: the goal (wall ratio <= 1.1) is reported, not enforced.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
N=${2:-2000}
PAR=${3:-100}
ROUNDS=${ROUNDS:-5}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "http.sh: needs /usr/bin/time (tools/install-deps)" >&2; exit 2; }

dir=$(mktemp -d /tmp/slipway-bench-http.XXXXXX)
connections=4096
. tests/bench/lib/nginx.sh
printf 'hello from nginx\n' > "$dir/www/small.txt"

url="http://127.0.0.1:$port/small.txt"
: > "$dir/curl.cfg"
j=1
while [ $j -le "$N" ]; do echo "url = \"$url?$j\"" >> "$dir/curl.cfg"; j=$((j + 1)); done

cat > "$dir/client.lua" <<'EOF'
local http, task = require("slipway.http"), require("slipway.task")
local url, n, par = arg[1], tonumber(arg[2]), tonumber(arg[3])
local i, ok = 0, 0
local function worker()
  while i < n do
    i = i + 1
    local res = http.request { url = url .. "?" .. i }
    if res and res.status == 200 then ok = ok + 1 end
  end
end
local ts = {}
for k = 1, par do ts[k] = task.spawn(worker) end
for k = 1, par do ts[k]:join() end
if ok ~= n then io.stderr:write(("only %d of %d requests succeeded\n"):format(ok, n)) os.exit(1) end
EOF

# one measurement: "wall cpu rss_kb" on stdout (wall from a ns clock: the
# runs take tens of ms and time's %e has 10 ms steps)
measure() {
  t0=$(date +%s%N)
  $TIME -f '%U %S %M' -o "$dir/time.out" "$@" > /dev/null 2> "$dir/err.out" ||
    { echo "failed: $*" >&2; cat "$dir/err.out" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v w=$(( (t1 - t0) / 1000 )) '{ printf "%.4f %.2f %s\n", w / 1e6, $1 + $2, $3 }' "$dir/time.out"
}

: > "$dir/sw"; : > "$dir/curl"
r=1
while [ $r -le "$ROUNDS" ]; do
  measure "$SLIPWAY" "$dir/client.lua" "$url" "$N" "$PAR" >> "$dir/sw"
  measure curl -sS --no-progress-meter --fail --parallel --parallel-max "$PAR" -K "$dir/curl.cfg" >> "$dir/curl"
  r=$((r + 1))
done

best() {     # smallest value of column $2 of file $1 (noise only adds time)
  sort -g -k"$2" "$1" | awk -v c="$2" 'NR == 1 { print $c }'
}
median() {   # column $2 of file $1
  sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
sw_wall=$(median "$dir/sw" 1); sw_cpu=$(median "$dir/sw" 2); sw_rss=$(median "$dir/sw" 3)
cu_wall=$(median "$dir/curl" 1); cu_cpu=$(median "$dir/curl" 2); cu_rss=$(median "$dir/curl" 3)
echo "http: $N GETs of $url, $PAR at a time, median of $ROUNDS rounds"
printf '  %-8s wall %7.4fs  cpu %6.2fs  peak rss %7d KB\n' slipway "$sw_wall" "$sw_cpu" "$sw_rss"
printf '  %-8s wall %7.4fs  cpu %6.2fs  peak rss %7d KB\n' curl "$cu_wall" "$cu_cpu" "$cu_rss"
sw_best=$(best "$dir/sw" 1); cu_best=$(best "$dir/curl" 1)
awk -v a="$sw_wall" -v b="$cu_wall" -v c="$sw_cpu" -v d="$cu_cpu" -v e="$sw_rss" -v f="$cu_rss" \
    -v g="$sw_best" -v h="$cu_best" 'BEGIN {
  printf "  ratio slipway/curl: wall %.2f (goal <= 1.1; best of each: %.2f), cpu %.2f, rss %.2f\n",
    a / (b > 0 ? b : 0.01), g / (h > 0 ? h : 0.01), c / (d > 0 ? d : 0.01), e / f }'
