#!/bin/sh
# tests/bench/vercel_upload.sh [SLIPWAY] [FILES]: a Vercel deployment of a
# FILES-file directory (default 2000, about 10 MB; the largest 1 MiB) of
# which the API already has half, to the tests' stand-in Vercel API
# (tests/fakes/vercel_api.lua): slipway's vercel.deploy against a
# sequential `curl` loop making the same requests (create, an upload per
# missing file, create again), side by side in one run (ROUNDS alternating
# rounds, default 3, medians). Prints wall time and requests made by both
# and the ratio; the hashing of the same files by slipway (walk + SHA-1 on
# the thread pool) against `sha1sum`; and slipway's peak RSS against its
# budget, 2 x the largest file + 20 MB. Never fails on noise: the goals
# are reported, not enforced.
cd "$(dirname "$0")/../.." || exit 2
SLIPWAY=$(realpath "${1:-build/slipway}")
FILES=${2:-2000}
ROUNDS=${ROUNDS:-3}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "vercel_upload.sh: needs /usr/bin/time (tools/install-deps)" >&2; exit 2; }
command -v curl > /dev/null || { echo "vercel_upload.sh: needs curl" >&2; exit 2; }
export LUA_PATH="./tests/?.lua;;"

dir=$(mktemp -d /tmp/slipway-bench-vercel.XXXXXX)
api_pid=""
cleanup() { [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

# ------------------------------------------------------------ the files
# 1 file of 1 MiB, 19 of 100 KiB, the rest 1-6.5 KiB: about 10 MB in all.
site="$dir/site"
cat > "$dir/make_site.lua" <<'EOF'
local fs = require("slipway.fs")
local site, n = arg[1], tonumber(arg[2])
local random = assert(io.open("/dev/urandom", "rb"))
for i = 1, n do
  local size = i == 1 and 1048576 or i <= 20 and 102400 or 1024 + (i * 7919) % 5632
  local sub = ("%s/d%d"):format(site, i % 40)
  assert(fs.mkdir(sub))
  assert(fs.write(("%s/f%d.bin"):format(sub, i), random:read(size)))
end
EOF
"$SLIPWAY" "$dir/make_site.lua" "$site" "$FILES" || exit 1
bytes=$(du -sb "$site" | awk '{ print $1 }')
largest=1048576

# ------------------------------------------------------------ the stand-in
token="bench-token-0123456789"
team="team_bench000000000000"
printf '%s\n' "$token" > "$dir/tokens"
tcp=$("$SLIPWAY" -e 'package.path = "./tests/?.lua;" .. package.path
print(require("fakes.vercel_standin").tcp_module())') || exit 1
"$SLIPWAY" tests/fakes/vercel_api.lua --tcp-module "$tcp" \
  --port-file "$dir/port" --tokens-file "$dir/tokens" --team "$team" > /dev/null 2> "$dir/api.err" &
api_pid=$!
n=0
while [ ! -s "$dir/port" ]; do
  sleep 0.05; n=$((n + 1))
  [ $n -gt 400 ] && { echo "the stand-in did not start:" >&2; cat "$dir/api.err" >&2; exit 1; }
done
api="http://127.0.0.1:$(cat "$dir/port")"

# The digests of every file; the API is given every other one before each run.
( cd "$site" && find . -type f | sed 's|^\./||' | sort | xargs sha1sum ) > "$dir/sums"
awk 'NR % 2 == 0 { print $1 }' "$dir/sums" | while read -r sha; do
  printf '{"sha":"%s","size":0},' "$sha"
done | sed 's/,$//; s/^/[/; s/$/]/' > "$dir/known.json"
prepare() {
  curl -sS -X POST "$api/_fake/reset" -d '{}' > /dev/null &&
  curl -sS -X POST "$api/_fake/config" -d '{"queue_ms":0,"build_ms":0,"alias_ms":0}' > /dev/null &&
  curl -sS -X POST "$api/_fake/blobs" -H 'Content-Type: application/json' --data-binary "@$dir/known.json" > /dev/null
}
requests() {
  curl -sS "$api/_fake/log" | grep -o '"method":' | wc -l
}

# ------------------------------------------------------------ slipway
cat > "$dir/vercel_deploy.lua" <<'EOF'
local r = require("slipway.vercel").deploy({ dir = arg[1], project = "bench" })
io.stderr:write(("uploaded %d of %d files\n"):format(r.uploaded, r.files))
EOF

# ------------------------------------------------------------ curl: the same requests, one at a time
# The create body is the one slipway sent (the same files, digests, sizes).
cat > "$dir/body.lua" <<'EOF'
local json = require("slipway.json")
local entries = assert(require("slipway._vercel").scan(arg[1], { rules = "" }))
local files = {}
for i, e in ipairs(entries) do files[i] = { file = e.file, sha = e.sha, size = e.size, mode = e.mode } end
io.write(json.encode({ name = "bench", project = "bench", files = json.array(files) }))
for _, e in ipairs(entries) do io.stderr:write(e.sha, " ", arg[1], "/", e.file, "\n") end
EOF
"$SLIPWAY" "$dir/body.lua" "$site" > "$dir/body.json" 2> "$dir/paths"
printf 'Authorization: Bearer %s\n' "$token" > "$dir/auth.header"
cat > "$dir/curl_deploy.sh" <<EOF
#!/bin/sh
q="teamId=$team&skipAutoDetectionConfirmation=1"
curl -sS -X POST "$api/v13/deployments?\$q" -H @$dir/auth.header \\
  -H 'Content-Type: application/json' --data-binary @$dir/body.json > $dir/create.out
# the missing digests with their paths, in one pass (the loop below runs curl only)
grep -o '"missing":\[[^]]*\]' $dir/create.out | grep -o '[0-9a-f]\{40\}' |
  awk 'NR == FNR { if (!(\$1 in path)) path[\$1] = \$2; next } { print \$1, path[\$1] }' $dir/paths - > $dir/uploads
while read -r sha path; do
  curl -sS --fail -X POST "$api/v2/files?teamId=$team" -H @$dir/auth.header \\
    -H 'Content-Type: application/octet-stream' -H "x-vercel-digest: \$sha" --data-binary "@\$path" > /dev/null || exit 1
done < $dir/uploads
curl -sS --fail -X POST "$api/v13/deployments?\$q" -H @$dir/auth.header \\
  -H 'Content-Type: application/json' --data-binary @$dir/body.json > /dev/null
EOF
chmod +x "$dir/curl_deploy.sh"

# one measurement: "wall rss_kb requests" (wall from a ns clock)
measure() {
  prepare || exit 1
  t0=$(date +%s%N)
  env VERCEL_API_URL="$api" VERCEL_TOKEN="$token" VERCEL_TEAM_ID="$team" \
    $TIME -f '%M' -o "$dir/time.out" "$@" > /dev/null 2> "$dir/err.out" ||
    { echo "failed: $*" >&2; cat "$dir/err.out" >&2; exit 1; }
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000 )) $(cat "$dir/time.out") $(requests)" |
    awk '{ printf "%.4f %s %s\n", $1 / 1e6, $2, $3 }'
}

# hashing: slipway's walk + hash (in the process) against sha1sum on the files
cat > "$dir/hash.lua" <<'EOF'
local task = require("slipway.task")
local t0 = task.now()
local entries = assert(require("slipway._vercel").scan(arg[1], { rules = "" }))
print(("%.4f %d"):format((task.now() - t0) / 1000, #entries))
EOF
( cd "$site" && find . -type f | sort > "$dir/list" )

: > "$dir/sw"; : > "$dir/curl"; : > "$dir/hash_sw"; : > "$dir/hash_sha1sum"
r=1
while [ $r -le "$ROUNDS" ]; do
  measure "$SLIPWAY" "$dir/vercel_deploy.lua" "$site" >> "$dir/sw" || exit 1
  measure "$dir/curl_deploy.sh" >> "$dir/curl" || exit 1
  "$SLIPWAY" "$dir/hash.lua" "$site" | awk '{ print $1 }' >> "$dir/hash_sw"
  t0=$(date +%s%N); ( cd "$site" && xargs sha1sum < "$dir/list" > /dev/null ); t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000 ))" | awk '{ printf "%.4f\n", $1 / 1e6 }' >> "$dir/hash_sha1sum"
  r=$((r + 1))
done

median() {   # column $2 of file $1
  sort -g -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
sw_wall=$(median "$dir/sw" 1); sw_rss=$(median "$dir/sw" 2); sw_req=$(median "$dir/sw" 3)
cu_wall=$(median "$dir/curl" 1); cu_req=$(median "$dir/curl" 3)
h_sw=$(median "$dir/hash_sw" 1); h_sum=$(median "$dir/hash_sha1sum" 1)
missing=$(wc -l < "$dir/uploads")
echo "vercel upload: $FILES files, $((bytes / 1000)) KB (largest $((largest / 1024)) KiB), $missing missing; median of $ROUNDS rounds"
printf '  %-22s wall %7.3fs  requests %5d  peak rss %6d KB\n' "slipway vercel.deploy" "$sw_wall" "$sw_req" "$sw_rss"
printf '  %-22s wall %7.3fs  requests %5d\n' "curl loop (sequential)" "$cu_wall" "$cu_req"
awk -v a="$sw_wall" -v b="$cu_wall" 'BEGIN { printf "  ratio curl/slipway wall: %.1fx (slipway %.1f%% of the time)\n", b / a, 100 * a / b }'
printf '  hashing %d files: slipway scan (walk + SHA-1, thread pool) %.4fs, sha1sum %.4fs' "$FILES" "$h_sw" "$h_sum"
awk -v a="$h_sw" -v b="$h_sum" 'BEGIN { printf " (ratio slipway/sha1sum %.2f, goal <= 1)\n", a / b }'
budget=$(( (2 * largest + 20 * 1000 * 1000) / 1024 ))
awk -v r="$sw_rss" -v b="$budget" 'BEGIN { printf "  peak rss %d KB, budget 2 x largest + 20 MB = %d KB: %s\n", r, b, (r <= b ? "within" : "OVER") }'
