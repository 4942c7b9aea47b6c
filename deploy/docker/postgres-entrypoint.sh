#!/usr/bin/env bash
# First start: a cluster whose user `iiko` (password $POSTGRES_PASSWORD) owns the databases `iiko` (warehouse)
# and `dagster` (instance). Listens on 127.0.0.1:$PGPORT only; password (scram) auth over TCP.
set -euo pipefail
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
port="${PGPORT:-5433}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" --username=postgres --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p $port" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -p "$port" -U postgres -q \
    -c "CREATE ROLE iiko LOGIN PASSWORD '${POSTGRES_PASSWORD//\'/\'\'}'" \
    -c "CREATE DATABASE iiko OWNER iiko" -c "CREATE DATABASE dagster OWNER iiko"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses=127.0.0.1 -p "$port"
