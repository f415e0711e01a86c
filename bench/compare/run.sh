#!/usr/bin/env bash
# make bench-compare: oidcgate beside the Node oidc-provider, each server
# pinned to CPU 1 (oidcgate with GOMAXPROCS=1), the load generator pinned to
# CPU 0, every scenario in one run. Prints one table and writes it to
# bench/compare/results.md. Every process it starts it stops by PID.
#
# This VM's speed drifts by tens of per cent over minutes, so the peers are
# never measured minutes apart: all servers run at once (idle when not under
# load) and each scenario is measured in ROUNDS rounds, the peers taking
# turns (A B, B A, …); the table gives each peer's median. Besides req/s it
# gives each server's CPU time per request (from /proc/PID/stat over the
# measured window), the cost on one core whatever else the machine did.
#
# Settings (environment): ROUNDS (3), DURATION (5s), WARMUP (2s),
# CONNECTIONS (32), DATABASE_URL (a PostgreSQL database for the
# oidcgate-on-PostgreSQL rows; default: a fresh one on 127.0.0.1 if psql can
# create it, else skipped), EDGE_TOKENS (100000: distinct tokens cached for
# the edge memory rows), EDGE_MEMORY_LIMIT (48MiB: the limited edge row).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
EDGE_TOKENS=${EDGE_TOKENS:-100000}
EDGE_MEMORY_LIMIT=${EDGE_MEMORY_LIMIT:-48MiB}
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

# measure ROW PID SCENARIO TARGET CLIENT [extra bench flags]: one timed run
# against the server PID; appends "ROW rps p50_ms p99_ms cpu_us rss_mib" to
# the results.
measure() {
  local row=$1 pid=$2 scenario=$3 target=$4 client=$5; shift 5
  local json
  if ! json=$(GOMAXPROCS=1 taskset -c $LOAD_CPU "$bin" bench --scenario "$scenario" --target "$target" \
      --client-id "$client" --client-secret "$SECRET" --connections "$CONNECTIONS" --duration "$DURATION" \
      --warmup "$WARMUP" --server-pid "$pid" --json "$@" 2>"$work/bench.err"); then
    echo "bench $scenario against $target failed:" >&2; cat "$work/bench.err" >&2; echo "$json" >&2; exit 1
  fi
  local line
  line=$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const ms = (ns) => (ns / 1e6).toFixed(2);
    console.log(r.rps.toFixed(0), ms(r.latency_ns["p50"]), ms(r.latency_ns["p99"]),
      (r.server_cpu_per_request_ns / 1e3).toFixed(1));' <<<"$json")
  echo "$row $line $(rss "$pid")" | tee -a "$work/results"
}

# pair ROUND ROW_A ARGS_A -- ROW_B ARGS_B: both, in an order that turns
# with the round, so that neither peer always goes first.
pair() {
  local round=$1; shift
  local a=() b=()
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift; b=("$@")
  if [ $((round % 2)) = 1 ]; then measure "${a[@]}"; measure "${b[@]}"
  else measure "${b[@]}"; measure "${a[@]}"; fi
}

# raw ALG ROW: the raw crypto/* signing cost (keys benchmarks: SHA-256 and
# the bare ecdsa/rsa call) on the server CPU, measured beside the token rows
# it is held against; appends "ROW ns_per_signature" to the raw results.
go test -c -o "$work/keys.test" ./keys
raw() {
  local ns
  ns=$(cd keys && taskset -c $SERVER_CPU "$work/keys.test" -test.run '^$' -test.bench "^BenchmarkSign/$1/raw\$" \
    -test.benchtime 1s -test.cpu 1 | awk '/^BenchmarkSign/ {print $3}')
  echo "$2 $ns" | tee -a "$work/raw"
}

echo "== servers on CPU $SERVER_CPU: oidc-provider 9.13.3 (Node $(node --version)), $($bin version)"
start node env PORT=13000 NODE_ENV=production node bench/compare/server.mjs
node_pid=$last_pid
# provider NAME PORT_BASE STORE_FLAGS...: oidcgate's provider on PORT_BASE
# (public), +1 (admin), +1000 (ops).
provider() {
  local name=$1 port=$2; shift 2
  start "$name" env GOMAXPROCS=1 "$bin" provider --issuer "http://127.0.0.1:$port" --public-addr "127.0.0.1:$port" \
    --admin-addr "127.0.0.1:$((port + 1))" --ops-addr "127.0.0.1:$((port + 1000))" --data-dir "$work/$name" \
    --log-level warn --bootstrap bench/compare/clients.yaml "$@"
  wait_http "http://127.0.0.1:$((port + 1000))/readyz"
}
provider og 18080;                               og_pid=$last_pid
provider ogrs 18180 --access-token-alg RS256;    ogrs_pid=$last_pid
pg=0
db_url=${DATABASE_URL:-}
if [ -z "$db_url" ] && command -v psql >/dev/null &&
   psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE oidcgate_compare_$$" 2>/dev/null; then
  made_db=oidcgate_compare_$$
  db_url="postgres://postgres@127.0.0.1:5432/$made_db?sslmode=disable"
fi
if [ -n "$db_url" ]; then
  provider ogpg 18280 --database-url "$db_url" --auto-migrate; ogpg_pid=$last_pid
  pg=1
fi
wait_http http://127.0.0.1:13000/.well-known/openid-configuration
sleep 1
node_idle=$(rss $node_pid); og_idle=$(rss $og_pid)

OG=http://127.0.0.1:18080 OGRS=http://127.0.0.1:18180 OGPG=http://127.0.0.1:18280 NODE=http://127.0.0.1:13000
for round in $(seq "$ROUNDS"); do
  echo "-- round $round of $ROUNDS"
  raw ES256 r_es
  pair "$round" o_es $og_pid token $OG jwt -- n_es $node_pid token $NODE jwt-es256
  raw ES256 r_es
  raw RS256 r_rs
  pair "$round" o_rs $ogrs_pid token $OGRS jwt -- n_rs $node_pid token $NODE jwt-rs256
  raw RS256 r_rs
  pair "$round" o_op $og_pid token $OG opaque -- n_op $node_pid token $NODE opaque
  pair "$round" o_in $og_pid introspect $OG opaque -- n_in $node_pid introspect $NODE opaque
  pair "$round" o_jw $og_pid jwks $OG jwt -- n_jw $node_pid jwks $NODE opaque
  pair "$round" o_di $og_pid discovery $OG jwt -- n_di $node_pid discovery $NODE opaque
  if [ $pg = 1 ]; then
    measure p_es $ogpg_pid token $OGPG jwt
    measure p_op $ogpg_pid token $OGPG opaque
    measure p_in $ogpg_pid introspect $OGPG opaque
  fi
done
stop_all

echo "== edge on CPU $SERVER_CPU (JWKS from an oidcgate provider on CPU $LOAD_CPU, idle while the edge is measured)"
taskset -c $LOAD_CPU "$bin" provider --issuer http://127.0.0.1:18080 --public-addr 127.0.0.1:18080 \
  --admin-addr 127.0.0.1:18081 --ops-addr 127.0.0.1:19080 --data-dir "$work/issuer" --log-level warn \
  --bootstrap bench/compare/clients.yaml >"$work/issuer.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:19080/readyz
# edge NAME PORT [flags]: an edge on PORT, ops on PORT+1000.
edge() {
  local name=$1 port=$2; shift 2
  start "$name" env GOMAXPROCS=1 "$bin" edge --issuer http://127.0.0.1:18080 --edge-addr "127.0.0.1:$port" \
    --ops-addr "127.0.0.1:$((port + 1000))" --audience https://api.example.com --log-level warn "$@"
  wait_http "http://127.0.0.1:$((port + 1000))/readyz"
}
start bare env GOMAXPROCS=1 "$bin" echo --bare --addr 127.0.0.1:18500; bare_pid=$last_pid
wait_http http://127.0.0.1:18500/
edge hit 18000;                          hit_pid=$last_pid
edge miss 18001 --token-cache-ttl 1ns;   miss_pid=$last_pid
EDGE=(--bench-issuer http://127.0.0.1:18080 --path /api --unique-tokens 100)
FA=(--forward-auth /_oidcgate/auth)
for round in $(seq "$ROUNDS"); do
  echo "-- round $round of $ROUNDS"
  pair "$round" e_hit $hit_pid edge http://127.0.0.1:18000 jwt "${EDGE[@]}" "${FA[@]}" -- \
    e_bare $bare_pid edge http://127.0.0.1:18500 jwt "${EDGE[@]}"
  measure e_miss $miss_pid edge http://127.0.0.1:18001 jwt "${EDGE[@]}" "${FA[@]}"
done
kill $hit_pid $miss_pid $bare_pid
echo "   caching $EDGE_TOKENS distinct tokens, without and with --memory-limit $EDGE_MEMORY_LIMIT (fetching them takes a while)"
edge many 18002;                                         many_pid=$last_pid
edge manylim 18003 --memory-limit "$EDGE_MEMORY_LIMIT";  manylim_pid=$last_pid
MANY=(--bench-issuer http://127.0.0.1:18080 --path /api --unique-tokens "$EDGE_TOKENS" "${FA[@]}")
DURATION=${EDGE_MANY_DURATION:-30s} WARMUP=0s measure e_many $many_pid edge http://127.0.0.1:18002 jwt "${MANY[@]}"
DURATION=${EDGE_MANY_DURATION:-30s} WARMUP=0s measure e_manylim $manylim_pid edge http://127.0.0.1:18003 jwt "${MANY[@]}"
stop_all

# The medians of each row over its rounds: "ROW rps p50 p99 cpu_us rss".
node -e '
  const rows = {};
  for (const l of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")) {
    const [row, ...v] = l.split(" ");
    (rows[row] ||= []).push(v.map(Number));
  }
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length;
    return m % 2 ? s[(m - 1) / 2] : (s[m / 2 - 1] + s[m / 2]) / 2; };
  for (const [row, runs] of Object.entries(rows)) {
    const col = (i) => median(runs.map((r) => r[i]));
    console.log(row, col(0).toFixed(0), col(1).toFixed(2), col(2).toFixed(2), col(3).toFixed(1),
      runs[runs.length - 1][4].toFixed(1), runs.length);
  }' "$work/results" >"$work/medians"

raw_es=$(awk '$1 == "r_es" {print $2}' "$work/raw" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
raw_rs=$(awk '$1 == "r_rs" {print $2}' "$work/raw" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
get() { awk -v r="$1" -v c="$2" '$1 == r { print $c }' "$work/medians"; }
ratio() { node -e "console.log(($1 / $2).toFixed(1) + '×')"; }
# row LABEL OIDCGATE_ROW [PEER_ROW]: one table line.
row() {
  local label=$1 o=$2 n=${3:-}
  local line="| $label | $(get $o 2) | $(get $o 3) | $(get $o 4) | $(get $o 5) | $(get $o 6) |"
  if [ -n "$n" ]; then
    line+=" $(get $n 2) | $(get $n 3) | $(get $n 4) | $(get $n 5) | $(get $n 6) | $(ratio "$(get $o 2)" "$(get $n 2)") | $(ratio "$(get $n 5)" "$(get $o 5)") |"
  else
    line+=" - | - | - | - | - | - | - |"
  fi
  echo "$line"
}
pct() { node -e "console.log((100 * $1 / $2).toFixed(0) + ' %')"; }

{
  echo "# make bench-compare"
  echo
  echo "- Machine: $(nproc) CPUs ($(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)), $(free -g | awk '/Mem/ {print $2}') GiB; $(uname -sr)."
  echo "- Date: $(date -u +%F). $($bin version); oidc-provider 9.13.3 on Node $(node --version)."
  echo "- Servers pinned to CPU $SERVER_CPU (oidcgate with GOMAXPROCS=1), load generator (oidcgate bench, GOMAXPROCS=1) to CPU $LOAD_CPU;"
  echo "  $CONNECTIONS connections, $WARMUP warm-up, $DURATION measured per run, $ROUNDS rounds with the peers taking turns; medians; every answer checked."
  echo "- CPU µs/req: the server's user + system CPU time over the measured window ÷ requests. Ratios: req/s, and per core"
  echo "  (oidc-provider's CPU per request ÷ oidcgate's)."
  echo
  echo "| scenario | oidcgate req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | oidc-provider req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | ratio req/s | ratio per core |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  row "token, JWT ES256" o_es n_es
  row "token, JWT RS256" o_rs n_rs
  row "token, opaque" o_op n_op
  row "introspect, opaque" o_in n_in
  row "jwks" o_jw n_jw
  row "discovery" o_di n_di
  if [ $pg = 1 ]; then
    row "PostgreSQL: token, JWT ES256" p_es n_es
    row "PostgreSQL: token, opaque" p_op n_op
    row "PostgreSQL: introspect, opaque" p_in n_in
  fi
  row "edge ceiling: bare fasthttp 200" e_bare
  row "edge forward-auth, cache hit (ES256)" e_hit
  row "edge forward-auth, cache miss (ES256)" e_miss
  row "edge, $EDGE_TOKENS distinct tokens" e_many
  row "edge, $EDGE_TOKENS distinct tokens, --memory-limit $EDGE_MEMORY_LIMIT" e_manylim
  echo
  echo "Raw signing on CPU $SERVER_CPU (keys benchmarks, before and after each token pair; median): ES256 $raw_es ns ($(node -e "console.log((1e9 / $raw_es).toFixed(0))")/s), RS256 $raw_rs ns ($(node -e "console.log((1e9 / $raw_rs).toFixed(0))")/s)."
  echo "Token ES256 vs raw signing: $(pct "$(get o_es 2)" "$(node -e "console.log(1e9 / $raw_es)")") of the rate, $(pct "$raw_es" "$(node -e "console.log(1000 * $(get o_es 5))")") per core."
  echo "Token RS256 vs raw signing: $(pct "$(get o_rs 2)" "$(node -e "console.log(1e9 / $raw_rs)")") of the rate, $(pct "$raw_rs" "$(node -e "console.log(1000 * $(get o_rs 5))")") per core."
  echo "Edge cache hit vs the bare ceiling: $(pct "$(get e_hit 2)" "$(get e_bare 2)") of the rate, $(pct "$(get e_bare 5)" "$(get e_hit 5)") per core."
  echo "Idle RSS: oidcgate provider ${og_idle} MiB, oidc-provider ${node_idle} MiB."
} >"$out"
echo
cat "$out"
