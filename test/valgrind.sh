#!/usr/bin/env bash
# Run the pg_regress and pgTAP tiers against a server running under valgrind,
# and report every valgrind error whose stack passes through migrate.so.
#
#   bash test/valgrind.sh [regress] [pgtap]      (default: both)
#
# As root: installs valgrind if missing, builds and installs the extension
# (unless MIGRATE_SKIP_BUILD=1), then runs a throw-away cluster as the
# `postgres` OS user (unix socket only).  Slow: valgrind runs every backend
# 20-50 times slower; expect 10-20 minutes.  Not part of test/run.sh.
#
# The last line is `valgrind: N errors in migrate.so (M in PostgreSQL itself)`;
# the exit status is 1 when N > 0.  Errors of PostgreSQL itself (Debian's
# build is not made for valgrind: uninitialised padding written to files and
# sockets) are counted, not failed.
#
# Environment: PG_CONFIG (as for test/run.sh), MIGRATE_VALGRIND_PORT (54399),
# MIGRATE_KEEP_TMP=1 keeps the logs.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")")
PORT=${MIGRATE_VALGRIND_PORT:-54399}
TIERS=("$@")
((${#TIERS[@]})) || TIERS=(regress pgtap)

as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- env "PATH=$PG_BIN:$PATH" "$@"
	else
		env "PATH=$PG_BIN:$PATH" "$@"
	fi
}

if ! command -v valgrind >/dev/null; then
	((EUID == 0)) || { echo "valgrind.sh: valgrind is not installed" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
if [[ "${MIGRATE_SKIP_BUILD:-}" != 1 ]]; then
	bash "$REPO/test/deps.sh"
	make -C "$REPO" -s PG_CONFIG="$PG_CONFIG"
	make -C "$REPO" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
fi

TMP=$(mktemp -d /tmp/migrate-valgrind.XXXXXX)
mkdir -p "$TMP/vg" "$TMP/sock"
cp -a "$REPO/sql" "$REPO/expected" "$REPO/test" "$TMP/"
chmod 755 "$TMP"
((EUID != 0)) || chown -R postgres: "$TMP"
cd "$TMP"

server_pid=""
cleanup() {
	[[ -z "$server_pid" ]] || as_pg pg_ctl -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
	if [[ "${MIGRATE_KEEP_TMP:-}" == 1 ]]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

as_pg initdb -D "$TMP/data" -A trust -U postgres --no-locale -E UTF8 >"$TMP/initdb.log"
# The postmaster runs under valgrind; every backend it forks is traced.
as_pg env VALGRIND_OPTS="--trace-children=yes --track-origins=yes --read-var-info=no --num-callers=30 \
--error-limit=no --log-file=$TMP/vg/%p.log" \
	bash -c "valgrind postgres -D '$TMP/data' -c listen_addresses='' -c unix_socket_directories='$TMP/sock' \
		-c port=$PORT -c fsync=off -c max_prepared_transactions=0 >'$TMP/server.log' 2>&1 &"
server_pid=started
for _ in $(seq 1 600); do
	as_pg pg_isready -q -h "$TMP/sock" -p "$PORT" && break
	sleep 0.5   # waiting for a server to accept connections: nothing to poll but the server
done

failed_tests=0
for tier in "${TIERS[@]}"; do
	case "$tier" in
	regress)
		mapfile -t tests < <(cd "$TMP/sql" && ls *.sql | grep -v '^migrate--' | sed 's/\.sql$//' | LC_ALL=C sort)
		as_pg "$PGXS_DIR/src/test/regress/pg_regress" --host="$TMP/sock" --port="$PORT" \
			--inputdir="$TMP" --outputdir="$TMP/regress" --dbname=contrib_regression \
			"${tests[@]}" | tee "$TMP/regress.log" || failed_tests=1
		;;
	pgtap)
		i=0
		for f in "$TMP"/test/pgtap/*.sql; do
			i=$((i + 1))
			as_pg createdb -h "$TMP/sock" -p "$PORT" "vg_$i"
			(cd "$TMP" && as_pg pg_prove -h "$TMP/sock" -p "$PORT" -d "vg_$i" "test/pgtap/$(basename "$f")") ||
				failed_tests=1
		done
		;;
	*) echo "valgrind.sh: unknown tier $tier" >&2; exit 2 ;;
	esac
done

as_pg pg_ctl -D "$TMP/data" -m fast -w stop >/dev/null || true
server_pid=""

# Each log file is one process; an error block ends at a blank line.
ours=0
theirs=0
for log in "$TMP"/vg/*.log; do
	while IFS= read -r -d '' block; do
		[[ "$block" == *"=="*"  at "* || "$block" == *"=="*"by 0x"* ]] || continue
		if [[ "$block" == *migrate.so* ]]; then
			ours=$((ours + 1))
			printf '%s\n\n' "$block"
		else
			theirs=$((theirs + 1))
		fi
	done < <(awk -v RS='==[0-9]+== \n' 'NF && /(Invalid|uninitialised|Conditional jump|Mismatched|free\(\)|overlap)/ {printf "%s%c", $0, 0}' "$log")
done
((failed_tests == 0)) || echo "valgrind.sh: some tests failed under valgrind (see above)"
echo "valgrind: $ours errors in migrate.so ($theirs in PostgreSQL itself)"
((ours == 0 && failed_tests == 0))
