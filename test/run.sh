#!/usr/bin/env bash
# The test command of the migrate extension.
#
#   bash test/run.sh [regress] [isolation] [pgtap] [tap]    (default: all tiers)
#
# As root it installs missing dependencies (test/deps.sh), builds and installs
# the extension (make && make install), then runs every test tier as the
# `postgres` OS user against throw-away clusters in a fresh temp directory:
#
#   regress    sql/*.sql (minus sql/migrate--*.sql) vs expected/<name>.out   (pg_regress)
#   isolation  test/isolation/specs/*.spec vs test/isolation/expected/*.out   (pg_isolation_regress)
#   pgtap      test/pgtap/*.sql, one fresh database per file                  (pg_prove)
#   tap        test/t/*.pl using PostgreSQL::Test::Cluster                    (prove)
#
# A tier without test files is skipped.  The last line of output is always
#   summary: N passed, M failed[, K skipped]
# (N, M count test files/specs/scripts; K counts skipped tiers).  Exit status
# is 0 only if nothing failed and at least one test ran.
#
# Environment:
#   MIGRATE_SKIP_BUILD=1   skip test/deps.sh and make/make install
#   MIGRATE_KEEP_TMP=1     keep the temp directory even when everything passed
#                          (it is always kept when something failed)
#   MIGRATE_TEST_PORT      port of the pgTAP cluster (default 54329; unix socket only)
#   MIGRATE_ONLY=PATTERN   run only the tests whose name contains PATTERN
#   PG_CONFIG              the pg_config of the PostgreSQL 15 to build and test
#                          against (default /usr/lib/postgresql/15/bin/pg_config;
#                          a relocated copy of it keeps parallel work apart)
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PGXS_DIR=$(dirname "$(dirname "$(dirname "$("$PG_CONFIG" --pgxs 2>/dev/null || echo /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk)")")")
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
# pg_isolation_regress finds isolationtester next to itself (find_other_exec
# on its own argv[0] directory), so it must be run by this absolute path.
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress
PG_PERL_LIB=$PGXS_DIR/src/test/perl
PGTAP_PORT=${MIGRATE_TEST_PORT:-54329}
ALL_TIERS=(regress isolation pgtap tap)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---------------------------------------------------------------- arguments
usage() {
	echo "usage: bash test/run.sh [${ALL_TIERS[*]}]" >&2
	exit 2
}
TIERS=()
for arg in "$@"; do
	case "$arg" in
	regress | isolation | pgtap | tap) TIERS+=("$arg") ;;
	-h | --help) usage ;;
	*)
		echo "run.sh: unknown tier '$arg'" >&2
		usage
		;;
	esac
done
((${#TIERS[@]})) || TIERS=("${ALL_TIERS[@]}")

passed=0
failed=0
skipped=0
TMP=""
PGTAP_DATA=""

print_summary() {
	local line="summary: $passed passed, $failed failed"
	((skipped == 0)) || line+=", $skipped skipped"
	echo "$line"
}

# Run a command as the postgres OS user (initdb and pg_ctl refuse root);
# when not root, run it as the current user.  PATH gets the PG 15 binaries.
as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- env "PATH=$PG_BIN:$PATH" "$@"
	else
		env "PATH=$PG_BIN:$PATH" "$@"
	fi
}

stop_pgtap_cluster() {
	if [[ -n "$PGTAP_DATA" && -f "$PGTAP_DATA/postmaster.pid" ]]; then
		as_pg pg_ctl -D "$PGTAP_DATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

# Only reached on abnormal exit (signal, unexpected error): the normal path
# cleans up itself and disarms this trap before printing the summary.
on_exit() {
	local rc=$?
	stop_pgtap_cluster
	[[ -z "$TMP" ]] || echo "run.sh: aborted (status $rc); artifacts kept in $TMP" >&2
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- discovery
# discover TIER: fill TESTS with the tier's test names (sorted, C collation).
discover() {
	local f name
	local -a found=()
	TESTS=()
	case "$1" in
	regress)
		for f in "$REPO"/sql/*.sql; do
			[[ -e "$f" ]] || continue
			name=$(basename "$f" .sql)
			[[ "$name" == migrate--* ]] && continue # extension install/upgrade scripts
			found+=("$name")
		done
		;;
	isolation)
		for f in "$REPO"/test/isolation/specs/*.spec; do
			[[ -e "$f" ]] && found+=("$(basename "$f" .spec)")
		done
		;;
	pgtap)
		for f in "$REPO"/test/pgtap/*.sql; do
			[[ -e "$f" ]] && found+=("test/pgtap/$(basename "$f")")
		done
		;;
	tap)
		for f in "$REPO"/test/t/*.pl; do
			[[ -e "$f" ]] && found+=("test/t/$(basename "$f")")
		done
		;;
	esac
	if [[ -n "${MIGRATE_ONLY:-}" ]]; then
		local -a kept=()
		for f in "${found[@]}"; do
			[[ "$f" == *"$MIGRATE_ONLY"* ]] && kept+=("$f")
		done
		found=("${kept[@]}")
	fi
	if ((${#found[@]})); then
		mapfile -t TESTS < <(printf '%s\n' "${found[@]}" | LC_ALL=C sort)
	fi
}

# ---------------------------------------------------------------- deps + build
if [[ "${MIGRATE_SKIP_BUILD:-}" != 1 ]]; then
	build_ok=1
	echo "== deps"
	bash "$REPO/test/deps.sh" || build_ok=0
	if ((build_ok)); then
		echo "== build"
		(cd "$REPO" && make -j"$(nproc)" PG_CONFIG="$PG_CONFIG" && make install PG_CONFIG="$PG_CONFIG") || build_ok=0
	fi
	if ((!build_ok)); then
		# Nothing can run: count every discovered test (at least 1) as failed.
		for tier in "${TIERS[@]}"; do
			discover "$tier"
			failed=$((failed + ${#TESTS[@]}))
		done
		((failed)) || failed=1
		echo "run.sh: dependency installation or build failed; no tests run" >&2
		trap - EXIT
		print_summary
		exit 1
	fi
else
	echo "== deps + build skipped (MIGRATE_SKIP_BUILD=1)"
fi

# ---------------------------------------------------------------- temp dir
# Layout:  $TMP/src         copy of sql/ expected/ test/ bin/ src/ (readable by postgres;
#                           test/t/006 reads the SQL of src/*.c)
#          $TMP/temp.conf   extra postgresql.conf lines for every test cluster
#          $TMP/results/    per-tier counts;  $TMP/<tier>/  tier outputs and logs
# Always under /tmp: root's $TMPDIR may not be reachable by postgres, and
# unix socket paths (max 107 bytes) must stay short.
TMP=$(mktemp -d /tmp/migrate-test.XXXXXX)
SRC=$TMP/src
RESULTS=$TMP/results
mkdir -p "$SRC" "$RESULTS"
for d in sql expected test bin src; do
	if [[ -d "$REPO/$d" ]]; then
		cp -a "$REPO/$d" "$SRC/"
	else
		mkdir -p "$SRC/$d"
	fi
done
cp "$REPO/README.md" "$SRC/" # test/t/024_readme.pl runs its examples

# Settings added to every test cluster (pg_regress --temp-config, the pgTAP
# cluster's postgresql.conf, TEMP_CONFIG for PostgreSQL::Test::Cluster).
# Add e.g. migrate.verify_constraints or shared_preload_libraries here.
TEMP_CONF=$TMP/temp.conf
PGTAP_DATA=$TMP/pgtap/data # global so the EXIT trap can stop that cluster
cat >"$TEMP_CONF" <<'EOF'
# added by test/run.sh
max_prepared_transactions = 0
EOF

chmod 755 "$TMP"
((EUID != 0)) || chown -R postgres: "$TMP"
cd "$TMP" # keep the postgres user out of a possibly unreadable cwd

# Write a tier's counts; the main loop reads them back.
record() { # record TIER PASSED FAILED [EXTRA-INFO]
	echo "$2 $3 ${4:-}" >"$RESULTS/$1"
}

# ---------------------------------------------------------------- tiers
# Each tier_* runs in a subshell with errexit; it returns 0 after recording
# its counts even if tests failed.  A non-zero exit without a record means
# the tier itself broke (e.g. initdb failed) and all its tests count as failed.

# Count "... ok" / "... FAILED" lines of pg_regress-style output.
count_regress() { # count_regress TIER LOGFILE NTESTS
	local ok
	ok=$(grep -cE '\.\.\. ok( |$)' "$2" || true)
	((ok <= $3)) || ok=$3
	record "$1" "$ok" $(($3 - ok))
}

show_regress_failure() { # show_regress_failure OUTDIR EXPECTEDDIR
	local t f shown=0
	# A missing expected file makes pg_regress abort; show the actual output
	# so that it can be reviewed and copied into place.
	for t in "${TESTS[@]}"; do
		[[ ! -e "$2/$t.out" && -s "$1/results/$t.out" ]] || continue
		echo "---- missing $2/$t.out; actual output $1/results/$t.out (first 100 lines):"
		head -n 100 "$1/results/$t.out"
		shown=1
	done
	if [[ -s "$1/regression.diffs" ]]; then
		echo "---- $1/regression.diffs (first 300 lines)"
		head -n 300 "$1/regression.diffs"
	elif ((!shown)); then # pg_regress itself failed: show the instance logs
		for f in "$1"/log/initdb.log "$1"/log/postmaster.log; do
			[[ -s "$f" ]] || continue
			echo "---- tail of $f"
			tail -n 50 "$f"
		done
	fi
}

tier_regress() {
	local out=$TMP/regress rc=0
	# table statistics change only where a test says ANALYZE: the linter's
	# sizes in expected outputs come from them
	{ cat "$TEMP_CONF"; echo "autovacuum = off"; } | as_pg tee "$TMP/regress.conf" >/dev/null
	as_pg "$PG_REGRESS" \
		--temp-instance="$TMP/regress_instance" \
		--temp-config="$TMP/regress.conf" \
		--bindir="$PG_BIN" \
		--inputdir="$SRC" \
		--outputdir="$out" \
		--dbname=contrib_regression \
		--no-locale --encoding=UTF8 \
		"${TESTS[@]}" 2>&1 | tee "$TMP/regress.log" || rc=$?
	count_regress regress "$TMP/regress.log" "${#TESTS[@]}"
	((rc == 0)) || show_regress_failure "$out" "$SRC/expected"
}

tier_isolation() {
	local out=$TMP/isolation rc=0
	as_pg "$PG_ISOLATION_REGRESS" \
		--temp-instance="$TMP/isolation_instance" \
		--temp-config="$TEMP_CONF" \
		--bindir="$PG_BIN" \
		--inputdir="$SRC/test/isolation" \
		--outputdir="$out" \
		--no-locale --encoding=UTF8 \
		"${TESTS[@]}" 2>&1 | tee "$TMP/isolation.log" || rc=$?
	count_regress isolation "$TMP/isolation.log" "${#TESTS[@]}"
	((rc == 0)) || show_regress_failure "$out" "$SRC/test/isolation/expected"
}

tier_pgtap() {
	local dir=$TMP/pgtap sock=$TMP/pgtap/sock log=$TMP/pgtap/postmaster.log
	local ok=0 bad=0 cases=0 i=0 f db rc n
	trap stop_pgtap_cluster EXIT
	as_pg mkdir -p "$sock"
	as_pg initdb -D "$PGTAP_DATA" -A trust -U postgres --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 ||
		{
			tail -n 30 "$dir/initdb.log"
			return 1
		}
	as_pg tee -a "$PGTAP_DATA/postgresql.conf" >/dev/null <<EOF
# added by test/run.sh
listen_addresses = ''
unix_socket_directories = '$sock'
port = $PGTAP_PORT
fsync = off
EOF
	as_pg tee -a "$PGTAP_DATA/postgresql.conf" <"$TEMP_CONF" >/dev/null
	as_pg pg_ctl -D "$PGTAP_DATA" -l "$log" -w -t 60 start >/dev/null ||
		{
			tail -n 30 "$log"
			return 1
		}
	cd "$SRC" # test files may \i paths relative to the repo root
	for f in "${TESTS[@]}"; do
		i=$((i + 1))
		db="pgtap_$i"
		rc=0
		as_pg createdb -h "$sock" -p "$PGTAP_PORT" -U postgres "$db" || rc=$?
		if ((rc == 0)); then
			as_pg pg_prove --failures --comments -h "$sock" -p "$PGTAP_PORT" -U postgres -d "$db" "$f" \
				2>&1 | tee "$dir/$i.log" || rc=$?
		fi
		n=$(sed -nE 's/.*Tests=([0-9]+).*/\1/p' "$dir/$i.log" 2>/dev/null | tail -n 1 || true)
		cases=$((cases + ${n:-0}))
		if ((rc == 0)); then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	done
	stop_pgtap_cluster
	((bad == 0)) || { echo "---- tail of $log" && tail -n 40 "$log"; }
	record pgtap "$ok" "$bad" "$cases assertions"
}

tier_tap() {
	local testdir=$TMP/tap rc=0 bad f base logf cases
	as_pg mkdir -p "$testdir/tmp"
	cd "$SRC"
	# Files are passed explicitly: given a directory, prove only picks *.t.
	# PostgreSQL::Test::Utils puts tmp_check/ (data dirs, log/) under $TESTDIR;
	# Cluster.pm runs $PG_REGRESS --config-auth after initdb and appends
	# $TEMP_CONFIG to postgresql.conf; tempdir_short (socket dirs) uses TMPDIR.
	# initdb takes its locale from the environment: pin it (C.UTF-8, UTF8).
	as_pg env TESTDIR="$testdir" PG_REGRESS="$PG_REGRESS" TEMP_CONFIG="$TEMP_CONF" \
		TMPDIR="$testdir/tmp" LANG=C.UTF-8 LC_ALL= \
		prove -I "$PG_PERL_LIB" "${TESTS[@]}" 2>&1 | tee "$TMP/tap.log" || rc=$?
	# Failed scripts are listed in prove's "Test Summary Report" as
	# "test/t/NAME.pl (Wstat: ...".
	bad=$(grep -cE '^test/t/[^ ]+\.pl +\(Wstat' "$TMP/tap.log" || true)
	((rc == 0 || bad > 0)) || bad=${#TESTS[@]}
	((bad <= ${#TESTS[@]})) || bad=${#TESTS[@]}
	cases=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+).*/\1/p' "$TMP/tap.log" | tail -n 1)
	record tap $((${#TESTS[@]} - bad)) "$bad" "${cases:-0} assertions"
	if ((rc != 0)); then
		for f in $(grep -oE '^test/t/[^ ]+\.pl +\(Wstat' "$TMP/tap.log" | cut -d' ' -f1 | sort -u || true); do
			base=$(basename "$f" .pl)
			for logf in "$testdir/tmp_check/log/regress_log_$base" "$testdir/tmp_check/log/${base}_"*.log; do
				[[ -s "$logf" ]] || continue
				echo "---- tail of $logf"
				tail -n 60 "$logf"
			done
		done
	fi
}

# ---------------------------------------------------------------- main loop
declare -a tier_lines=()
for tier in "${TIERS[@]}"; do
	discover "$tier"
	if ((${#TESTS[@]} == 0)); then
		echo "== $tier: no test files, skipped"
		skipped=$((skipped + 1))
		tier_lines+=("$tier: skipped (no test files)")
		continue
	fi
	echo "== $tier: ${#TESTS[@]} test file(s)"
	set +e
	(
		set -e
		"tier_$tier"
	)
	rc=$?
	set -e
	if [[ -f "$RESULTS/$tier" ]]; then
		read -r p f info <"$RESULTS/$tier"
	else
		echo "run.sh: tier $tier aborted (status $rc)" >&2
		p=0 f=${#TESTS[@]} info="tier aborted"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	tier_lines+=("$tier: $p passed, $f failed${info:+ ($info)}")
done

# ---------------------------------------------------------------- summary
stop_pgtap_cluster
trap - EXIT
cd /
echo "== results"
printf '  %s\n' "${tier_lines[@]}"
if ((failed > 0)) || [[ "${MIGRATE_KEEP_TMP:-}" == 1 ]]; then
	echo "test artifacts kept in $TMP"
else
	rm -rf "$TMP"
fi
print_summary
((failed == 0 && passed > 0))
