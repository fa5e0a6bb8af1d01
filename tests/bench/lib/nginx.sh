# tests/bench/lib/nginx.sh: sourced by the HTTP benchmarks. Starts a local
# nginx serving $dir/www on a free 127.0.0.1 port, stopped (and $dir
# removed) on exit. The caller sets `dir` (a fresh temp dir) and
# `connections` (worker_connections) first; afterwards `port` is set.
chmod 755 "$dir"
mkdir -p "$dir/www" "$dir/tmp"
port=$(( 20000 + $$ % 12000 ))
while curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do port=$((port + 1)); done
user=""; [ "$(id -u)" = 0 ] && user="user root;"
cat > "$dir/nginx.conf" <<CONF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections ${connections:-4096}; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $dir/tmp/body; proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fcgi; uwsgi_temp_path $dir/tmp/uwsgi; scgi_temp_path $dir/tmp/scgi;
  server { listen 127.0.0.1:$port backlog=4096; root $dir/www; }
}
CONF
start_nginx() {
  sed -i "s/listen 127.0.0.1:[0-9]*/listen 127.0.0.1:$port/" "$dir/nginx.conf"
  nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>/dev/null &
  nginx_pid=$!
  i=0
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    i=$((i + 1))
    if ! kill -0 $nginx_pid 2>/dev/null || [ $i -gt 100 ]; then return 1; fi
    sleep 0.05
  done
}
trap 'kill $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
tries=0
until start_nginx; do
  kill $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null
  tries=$((tries + 1))
  [ $tries -ge 5 ] && { echo "nginx did not start" >&2; cat "$dir/error.log" >&2; exit 2; }
  port=$((port + 97))
done
