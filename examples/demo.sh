#!/usr/bin/env bash
# The demo command: on a fresh Debian 12 machine, as root,
#     bash examples/demo.sh
# installs what is missing, builds and installs the extension, starts a
# throw-away PostgreSQL 15 cluster (unix socket only), applies the example
# plan in examples/demo.sql (a job with CREATE INDEX CONCURRENTLY, a batched
# data migration) and shows migrate_status().  Removes the cluster.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin

bash "$REPO/test/deps.sh"
make -C "$REPO" -s
make -C "$REPO" -s install

TMP=$(mktemp -d /tmp/migrate-demo.XXXXXX)
cp "$REPO/examples/demo.sql" "$TMP/"
chown -R postgres "$TMP"
as_pg() { runuser -u postgres -- env "PATH=$PG_BIN:$PATH" "$@"; }
cleanup() {
	as_pg pg_ctl -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

as_pg initdb -D "$TMP/data" -A trust --no-locale -E UTF8 >/dev/null
as_pg pg_ctl -D "$TMP/data" -l "$TMP/server.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$TMP' -p 54330" start >/dev/null
as_pg createdb -h "$TMP" -p 54330 demo
as_pg psql -X -h "$TMP" -p 54330 -d demo -q -c 'CREATE EXTENSION migrate'
as_pg psql -X -h "$TMP" -p 54330 -d demo -f "$TMP/demo.sql"
