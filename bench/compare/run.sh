#!/usr/bin/env bash
# make bench-compare: oidcgate beside the Node oidc-provider, each server
# pinned to CPU 1 (oidcgate with GOMAXPROCS=1), the load generator pinned to
# CPU 0, every scenario in one run. Prints one table and writes it to
# bench/compare/results.md. Every process it starts it stops by PID.
#
# Settings (environment): DURATION (10s), WARMUP (3s), CONNECTIONS (32),
# DATABASE_URL (a PostgreSQL database for the oidcgate-on-PostgreSQL rows;
# default: a fresh one on 127.0.0.1 if psql can create it, else skipped),
# EDGE_TOKENS (100000: distinct tokens cached for the edge memory figure).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
EDGE_TOKENS=${EDGE_TOKENS:-100000}
SECRET=compare-secret-compare-secret-0123456789
SERVER_CPU=1
LOAD_CPU=0
out=bench/compare/results.md
work=$(mktemp -d)
pids=()

stop_all() {
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_all
  [ -n "${made_db:-}" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $made_db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench-compare needs $1 ($2)"; exit 1; }; }
need taskset "util-linux"
need node "Debian's nodejs, or any Node.js ≥ 20"
need npm "npm"

make -s build
bin=$root/bin/oidcgate
(cd bench/compare && npm ci --no-audit --no-fund --silent)

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# wait_http URL: until it answers 200 (30 s at most).
wait_http() {
  for _ in $(seq 300); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1"; exit 1
}

# start NAME CMD...: pinned to the server CPU, in the background.
start() {
  local name=$1; shift
  taskset -c $SERVER_CPU "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  last_pid=$!
}

# load SCENARIO TARGET CLIENT [extra bench flags]: prints "rps p50 p99".
load() {
  local scenario=$1 target=$2 client=$3; shift 3
  local json
  if ! json=$(GOMAXPROCS=1 taskset -c $LOAD_CPU "$bin" bench --scenario "$scenario" --target "$target" \
      --client-id "$client" --client-secret "$SECRET" --connections "$CONNECTIONS" --duration "$DURATION" \
      --warmup "$WARMUP" --json "$@" 2>"$work/bench.err"); then
    echo "bench $scenario against $target failed:" >&2; cat "$work/bench.err" >&2; echo "$json" >&2; exit 1
  fi
  node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const ms = (ns) => (ns / 1e6).toFixed(2);
    console.log(r.rps.toFixed(0), ms(r.latency_ns["p50"]), ms(r.latency_ns["p99"]));' <<<"$json"
}

rows=()
# row LABEL OIDCGATE_RESULT OIDCGATE_RSS PEER_RESULT PEER_RSS
row() {
  local label=$1 a=($2) ar=$3 b=(${4:--}) br=${5:--}
  local ratio=-
  [ "${b[0]}" != "-" ] && ratio=$(node -e "console.log(($((${a[0]})) / ${b[0]}).toFixed(1) + '×')")
  rows+=("| $label | ${a[0]} | ${a[1]} | ${a[2]} | $ar | ${b[0]:--} | ${b[1]:--} | ${b[2]:--} | $br | $ratio |")
  echo "${rows[-1]}"
}

echo "== oidc-provider 9.13.3 (Node $(node --version)) on CPU $SERVER_CPU"
start node env PORT=13000 NODE_ENV=production node bench/compare/server.mjs
node_pid=$last_pid
wait_http http://127.0.0.1:13000/.well-known/openid-configuration
node_idle=$(rss $node_pid)
n_es=$(load token http://127.0.0.1:13000 jwt-es256);   n_es_rss=$(rss $node_pid)
n_rs=$(load token http://127.0.0.1:13000 jwt-rs256);   n_rs_rss=$(rss $node_pid)
n_op=$(load token http://127.0.0.1:13000 opaque);      n_op_rss=$(rss $node_pid)
n_in=$(load introspect http://127.0.0.1:13000 opaque); n_in_rss=$(rss $node_pid)
n_jw=$(load jwks http://127.0.0.1:13000 opaque);       n_jw_rss=$(rss $node_pid)
n_di=$(load discovery http://127.0.0.1:13000 opaque);  n_di_rss=$(rss $node_pid)
stop_all

# provider STORE_FLAGS...: starts oidcgate's provider on 18080.
provider() {
  rm -rf "$work/data"
  start provider env GOMAXPROCS=1 "$bin" provider --issuer http://127.0.0.1:18080 --public-addr 127.0.0.1:18080 \
    --admin-addr 127.0.0.1:18081 --ops-addr 127.0.0.1:19090 --data-dir "$work/data" --log-level warn \
    --bootstrap bench/compare/clients.yaml "$@"
  prov_pid=$last_pid
  wait_http http://127.0.0.1:19090/readyz
}

echo "== $($bin version) on CPU $SERVER_CPU, embedded store"
provider
sleep 1
o_idle=$(rss $prov_pid)
o_es=$(load token http://127.0.0.1:18080 jwt);        o_es_rss=$(rss $prov_pid)
o_op=$(load token http://127.0.0.1:18080 opaque);     o_op_rss=$(rss $prov_pid)
o_in=$(load introspect http://127.0.0.1:18080 opaque); o_in_rss=$(rss $prov_pid)
o_jw=$(load jwks http://127.0.0.1:18080 jwt);         o_jw_rss=$(rss $prov_pid)
o_di=$(load discovery http://127.0.0.1:18080 jwt);    o_di_rss=$(rss $prov_pid)
stop_all
provider --access-token-alg RS256
o_rs=$(load token http://127.0.0.1:18080 jwt);        o_rs_rss=$(rss $prov_pid)
stop_all

pg_rows=0
db_url=${DATABASE_URL:-}
if [ -z "$db_url" ] && command -v psql >/dev/null &&
   psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE oidcgate_compare_$$" 2>/dev/null; then
  made_db=oidcgate_compare_$$
  db_url="postgres://postgres@127.0.0.1:5432/$made_db?sslmode=disable"
fi
if [ -n "$db_url" ]; then
  echo "== oidcgate on PostgreSQL"
  provider --database-url "$db_url" --auto-migrate
  p_es=$(load token http://127.0.0.1:18080 jwt);        p_es_rss=$(rss $prov_pid)
  p_op=$(load token http://127.0.0.1:18080 opaque);     p_op_rss=$(rss $prov_pid)
  p_in=$(load introspect http://127.0.0.1:18080 opaque); p_in_rss=$(rss $prov_pid)
  stop_all
  pg_rows=1
fi

echo "== edge (oidcgate edge, JWKS from oidcgate provider) on CPU $SERVER_CPU"
# The provider issuing the tokens runs on the load CPU; it is idle while
# the edge is measured.
rm -rf "$work/data"
taskset -c $LOAD_CPU "$bin" provider --issuer http://127.0.0.1:18080 --public-addr 127.0.0.1:18080 \
  --admin-addr 127.0.0.1:18081 --ops-addr 127.0.0.1:19090 --data-dir "$work/data" --log-level warn \
  --bootstrap bench/compare/clients.yaml >"$work/issuer.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:19090/readyz
start bare env GOMAXPROCS=1 "$bin" echo --bare --addr 127.0.0.1:18500
wait_http http://127.0.0.1:18500/
e_bare=$(load edge http://127.0.0.1:18500 jwt --bench-issuer http://127.0.0.1:18080 --path /api --unique-tokens 100)
kill "$last_pid"; wait "$last_pid" 2>/dev/null || true
edge() {
  start edge env GOMAXPROCS=1 "$bin" edge --issuer http://127.0.0.1:18080 --edge-addr 127.0.0.1:18000 \
    --ops-addr 127.0.0.1:19091 --audience https://api.example.com --log-level warn "$@"
  edge_pid=$last_pid
  wait_http http://127.0.0.1:19091/readyz
}
edge
e_hit=$(load edge http://127.0.0.1:18000 jwt --bench-issuer http://127.0.0.1:18080 --forward-auth /_oidcgate/auth --path /api --unique-tokens 100)
e_hit_rss=$(rss $edge_pid)
kill "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
edge --token-cache-ttl 1ns
e_miss=$(load edge http://127.0.0.1:18000 jwt --bench-issuer http://127.0.0.1:18080 --forward-auth /_oidcgate/auth --path /api --unique-tokens 100)
kill "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
edge
echo "   caching $EDGE_TOKENS distinct tokens (fetching them takes a while)"
e_many=$(DURATION=${EDGE_MANY_DURATION:-30s} load edge http://127.0.0.1:18000 jwt --bench-issuer http://127.0.0.1:18080 \
  --forward-auth /_oidcgate/auth --path /api --unique-tokens "$EDGE_TOKENS" --warmup 0s)
e_many_rss=$(rss $edge_pid)
stop_all

{
  echo "# make bench-compare"
  echo
  echo "- Machine: $(nproc) CPUs ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)), $(free -g | awk '/Mem/ {print $2}') GiB; $(uname -sr)."
  echo "- Date: $(date -u +%F). $($bin version); oidc-provider 9.13.3 on Node $(node --version)."
  echo "- Servers pinned to CPU $SERVER_CPU (oidcgate with GOMAXPROCS=1), load generator (oidcgate bench, GOMAXPROCS=1) to CPU $LOAD_CPU;"
  echo "  $CONNECTIONS connections, $WARMUP warm-up, $DURATION measured per scenario; every answer checked."
  echo
  echo "| scenario | oidcgate req/s | p50 ms | p99 ms | RSS MiB | oidc-provider req/s | p50 ms | p99 ms | RSS MiB | ratio |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$out"
row "token, JWT ES256" "$o_es" "$o_es_rss" "$n_es" "$n_es_rss"
row "token, JWT RS256" "$o_rs" "$o_rs_rss" "$n_rs" "$n_rs_rss"
row "token, opaque" "$o_op" "$o_op_rss" "$n_op" "$n_op_rss"
row "introspect, opaque" "$o_in" "$o_in_rss" "$n_in" "$n_in_rss"
row "jwks" "$o_jw" "$o_jw_rss" "$n_jw" "$n_jw_rss"
row "discovery" "$o_di" "$o_di_rss" "$n_di" "$n_di_rss"
if [ $pg_rows = 1 ]; then
  row "PostgreSQL: token, JWT ES256" "$p_es" "$p_es_rss" "$n_es" "$n_es_rss"
  row "PostgreSQL: token, opaque" "$p_op" "$p_op_rss" "$n_op" "$n_op_rss"
  row "PostgreSQL: introspect, opaque" "$p_in" "$p_in_rss" "$n_in" "$n_in_rss"
fi
row "edge ceiling: bare fasthttp 200" "$e_bare" "-"
row "edge forward-auth, cache hit (ES256)" "$e_hit" "$e_hit_rss"
row "edge forward-auth, cache miss (ES256)" "$e_miss" "-"
row "edge, $EDGE_TOKENS distinct tokens" "$e_many" "$e_many_rss"
{
  printf '%s\n' "${rows[@]}"
  echo
  echo "Idle RSS: oidcgate provider ${o_idle} MiB, oidc-provider ${node_idle} MiB."
  echo "Edge cache hit vs the bare ceiling: $(node -e "console.log((100 * $(echo $e_hit | cut -d' ' -f1) / $(echo $e_bare | cut -d' ' -f1)).toFixed(0))") %."
} >>"$out.tmp"
# rows were echoed as they came; the file gets them in order once.
tail -n +1 "$out.tmp" >>"$out"
rm -f "$out.tmp"
echo
cat "$out"
