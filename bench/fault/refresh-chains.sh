#!/usr/bin/env bash
# Fault run: refresh-token chains under a crash or a database outage.
#
#   bench/fault/refresh-chains.sh kill      # bolt: kill -9 the provider under load, restart it
#   bench/fault/refresh-chains.sh postgres  # PostgreSQL stopped for 10 s under load (stops the local cluster!)
#
# 64 users' refresh tokens are rotated by clients that retry a 503 or a lost
# connection with the same token. A chain that gets invalid_grant is a user
# logged out; the run fails if any is. Loopback only; bounded in time.
# PROVIDER_BIN=path runs another build of the provider (e.g. an older one).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-kill}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
make -s build >/dev/null
bin=$PWD/bin/oidcgate
port=18080
args=(provider --issuer "http://127.0.0.1:$port" --public-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0
  --ops-addr 127.0.0.1:0 --bootstrap bench/fault/bootstrap.yaml --log-level warn --key-encryption-key "$(head -c32 /dev/urandom | base64)")
case $mode in
  kill) args+=(--store bolt --data-dir "$work/data") ;;
  postgres)
    db="oidcgate_fault_$$"
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
    args+=(--database-url "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" --auto-migrate) ;;
  *) echo "usage: $0 kill|postgres" >&2; exit 2 ;;
esac
start() { "${PROVIDER_BIN:-$bin}" "${args[@]}" 2>>"$work/provider.log" & pid=$!; for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/jwks" >/dev/null && return; sleep 0.1; done; }
start
"$bin" bench --scenario refresh-chains --target "http://127.0.0.1:$port" --client-id chains \
  --client-secret chains-secret-0123456789abcdefghijklmnop --redirect-uri http://127.0.0.1:9/cb \
  --username chains-user --password chains-password-123 --chains 64 --duration 25s 2>"$work/progress.log" >"$work/result.json" &
bench=$!
sleep 8
case $mode in
  kill)
    for round in 1 2 3; do
      kill -9 "$pid"; wait "$pid" 2>/dev/null || true
      echo "round $round: provider killed (kill -9) under refresh load; restarting"
      sleep 0.5; start; sleep 3
    done ;;
  postgres)
    cluster=$(ls /etc/postgresql)
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main stop -m fast
    echo "PostgreSQL stopped under refresh load; 10 s outage"
    sleep 10
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
    echo "PostgreSQL back" ;;
esac
status=0; wait "$bench" || status=$?
cat "$work/result.json"; tail -3 "$work/progress.log"
kill "$pid" 2>/dev/null || true
if [ "$mode" = postgres ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; fi
exit $status
