#!/usr/bin/env bash
# Benchmarks of the migrate extension against a plain-PostgreSQL baseline.
#
#   bash test/bench/run.sh [--quick]
#
# Run as root (or as a user that may run initdb).  The extension must be built
# and installed (make && make install).  A throw-away cluster is started in a
# fresh temp directory, unix socket only, run by the postgres OS user, with
# default settings except
#     shared_buffers = 256MB, max_wal_size = 4GB, synchronous_commit = off
# (the same for migrate and for the baseline).  Each benchmark runs the same
# work through migrate and through the baseline in this one run, several
# repetitions alternating which side goes first, and reports the median.
#
#   1 apply        N generated migrations (CREATE TABLE, INSERT 10 rows, CREATE
#                  INDEX): migrate_apply() vs the same SQL as one file through
#                  psql -1 -f; both end to end (psql start included), fresh
#                  database per repetition.  Registration is timed separately.
#   2 status       migrate_status() and migrate_validate() over 1k/10k/50k
#                  registered and applied migrations, per call, server side.
#   3 expectations a migration inserting 100,000 rows into a big table with an
#                  exact-count expectation on it and "=" on another big table,
#                  vs the INSERT plus count(*) of both; migrate.verify_constraints
#                  = off so that only the expectations' cost is compared; and
#                  the same with an UPDATE of one row of the "=" table (info).
#   4 constraints  a migration adding a NOT VALID foreign key to a big child
#                  table (migrate re-checks every row) vs ALTER TABLE ... VALIDATE
#                  CONSTRAINT; also migrate_verify() of that migration.
#   5 checksums    MB/s of migrate_add() (parse + checksum + store) and of
#                  migrate_checksum() on a 5 MB seed script.
#   6 graph        requirement graphs: a chain (each migration requires the
#                  next) of 10k and 100k, a dense graph (each requires the
#                  previous two or three) of 1k and 10k: one
#                  migrate_add_scripts() call, migrate_plan(), migrate_apply();
#                  time per migration, and growth (exponent 1 is linear).
#   7 parse        migrate_add() of 5k, 10k and 20k one-line INSERTs (the
#                  growth must be linear) and of a 50 MB script, vs psql -f
#                  of the same file.
#   8 job          the migrations of benchmark 1 applied by a background job
#                  (migrate_start() + CALL migrate_wait()) vs CALL migrate_run().
#   9 batch        a batched backfill (UPDATE of 2,000,000 rows, adaptive batch
#                  size) run by a job vs one plain UPDATE (target: at least
#                  0.8x its rows/s, no batch longer than 1 s); a batched move
#                  of 200,000 rows into a table with an FK and an exact-count
#                  expectation vs INSERT ... SELECT + count(*) through psql -1
#                  (info).  Fresh copy of a template database per side and run;
#                  adds about 1.5 minutes to the full run.
#  10 lint         migrate_lint() of benchmark 1's pending migrations vs
#                  applying them with psql -1 -f (target: at most 0.10x); the
#                  same risky migration linted against a table of 1,000,000
#                  rows vs one of 10 (target: at most 1.5x: statistics only).
#  11 memory       peak resident memory (VmHWM of /proc/<pid>/status) of the
#                  backend, one fresh connection per case, vs psql -1 -f of the
#                  same SQL: migrate_add() and migrate_apply() of a 50 MB
#                  script; migrate_apply() of a SELECT of 2,000,000 rows; one
#                  migrate_add_scripts() of 1,000 files, migrate_load() of a
#                  directory of them (superuser), migrate_apply() of them.
#                  Bound: at most 32 MB above psql's peak, plus 4 times the
#                  text for the big script (its copies while it is registered:
#                  the argument, its C string, the value bound to the INSERT,
#                  the stored tuple).  About 40 s (--quick: a 10 MB script,
#                  500,000 rows, 200 files, about 10 s).
#
# --quick uses smaller sizes and fewer repetitions (a smoke run, about a
# minute and a half, half of it psql -f of the 50 MB script; the full run
# takes about 5 minutes on 2 cores).  Output: a table on stdout, also written as Markdown to
# test/bench/results.md.  Times never fail the run: the exit status is 0
# unless something is broken.
#
# Environment:
#   MIGRATE_BENCH_PORT   port of the cluster (default 54339; unix socket only)
#   MIGRATE_KEEP_TMP=1   keep the temp directory (cluster, generated files, logs)
#   MIGRATE_BENCH_ONLY   comma-separated benchmarks to run, such as 9 or 1,8
#                        (8 reuses the migrations 1 generates: 8 runs 1 too)
#                        (default: all); results.md then holds only those
#   PG_CONFIG            pg_config of the PostgreSQL 15 to use (default: the system one)
set -euo pipefail
export LC_ALL=C

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR=$REPO/test/bench
RESULTS_MD=$BENCH_DIR/results.md
PORT=${MIGRATE_BENCH_PORT:-54339}

MODE=full QUICK_FLAG=""
for arg in "$@"; do
	case "$arg" in
	--quick) MODE=quick QUICK_FLAG=" --quick" ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument '$arg' (usage: bash test/bench/run.sh [--quick])" >&2
		exit 2
		;;
	esac
done

if [[ $MODE == full ]]; then
	APPLY_N=500 APPLY_REPS=9 JOB_REPS=5
	LINT_REPS=7 LINT_BIG_ROWS=1000000
	STATUS_SIZES=(1000 10000 50000) STATUS_CALLS=15
	EXP_ROWS=5000000 EXP_INSERT=100000 EXP_REPS=7
	FK_CHILD=2000000 FK_PARENT=200000 FK_REPS=7
	SEED_BYTES=$((5 * 1024 * 1024)) SEED_REPS=7
	GRAPH_CHAIN=(10000 100000) GRAPH_DENSE=(1000 10000)
	PARSE_BIG_BYTES=$((50 * 1024 * 1024)) PARSE_REPS=7 PARSE_BIG_REPS=3
	MEM_BIG_BYTES=$((50 * 1024 * 1024)) MEM_ROWS=2000000 MEM_FILES=1000
else
	APPLY_N=100 APPLY_REPS=3 JOB_REPS=2
	LINT_REPS=3 LINT_BIG_ROWS=100000
	STATUS_SIZES=(1000 5000 10000) STATUS_CALLS=5
	EXP_ROWS=500000 EXP_INSERT=10000 EXP_REPS=3
	FK_CHILD=200000 FK_PARENT=20000 FK_REPS=3
	SEED_BYTES=$((1024 * 1024)) SEED_REPS=3
	GRAPH_CHAIN=(2000 20000) GRAPH_DENSE=(500 5000)
	PARSE_BIG_BYTES=$((50 * 1024 * 1024)) PARSE_REPS=3 PARSE_BIG_REPS=1
	MEM_BIG_BYTES=$((10 * 1024 * 1024)) MEM_ROWS=500000 MEM_FILES=200
fi

# ---------------------------------------------------------------- cluster
as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- env "PATH=$PG_BIN:$PATH" LC_ALL=C "$@"
	else
		env "PATH=$PG_BIN:$PATH" "$@"
	fi
}

TMP=$(mktemp -d /tmp/migrate-bench.XXXXXX)
DATA=$TMP/data
SOCK=$TMP/sock
LOG=$TMP/postmaster.log
chmod 755 "$TMP"
((EUID != 0)) || chown postgres: "$TMP"

stop_cluster() {
	if [[ -f "$DATA/postmaster.pid" ]]; then
		as_pg pg_ctl -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
	fi
}
on_exit() {
	local rc=$?
	stop_cluster
	if ((rc != 0)); then
		echo "run.sh: aborted (status $rc); artifacts kept in $TMP" >&2
		[[ ! -s $LOG ]] || { echo "---- tail of $LOG" >&2 && tail -n 20 "$LOG" >&2; }
	elif [[ "${MIGRATE_KEEP_TMP:-}" == 1 ]]; then
		echo "artifacts kept in $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$TMP"
as_pg mkdir -p "$SOCK" "$TMP/gen" "$TMP/out"
as_pg initdb -D "$DATA" -A trust -U postgres --no-locale -E UTF8 >"$TMP/initdb.log" 2>&1 ||
	{
		tail -n 20 "$TMP/initdb.log" >&2
		exit 1
	}
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
# added by test/bench/run.sh
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
shared_buffers = 256MB
max_wal_size = 4GB
synchronous_commit = off
EOF
as_pg pg_ctl -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres)

# q DB SQL: run SQL, print unaligned tuples-only output.
q() { as_pg "${PSQL[@]}" -At -d "$1" -c "$2"; }

# A helper the postgres user runs: `wall.sh OUT CMD...` runs CMD with its
# output in OUT and prints the elapsed wall-clock milliseconds.
WALL=$TMP/wall.sh
cat >"$WALL" <<'EOF'
#!/usr/bin/env bash
out=$1
shift
s=$EPOCHREALTIME
if ! "$@" >"$out" 2>&1; then
	echo "wall.sh: command failed: $*" >&2
	tail -n 20 "$out" >&2
	exit 1
fi
e=$EPOCHREALTIME
s=${s/./} e=${e/./}
awk -v us=$((e - s)) 'BEGIN { printf "%.3f\n", us / 1000 }'
EOF
chmod 755 "$WALL"

# wall OUT CMD...: elapsed ms of CMD run as postgres, its output in OUT.
wall() { as_pg "$WALL" "$@"; }

# timings FILE: the "Time: X ms" lines psql's \timing printed, in ms.
timings() { sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' "$1"; }

# psql_timed DB OUT: run the psql script on stdin; print the sum of its
# \timing lines (the statements between \timing on and \timing off).
psql_timed() {
	as_pg tee "$TMP/out/script.sql" >/dev/null
	as_pg "${PSQL[@]}" -d "$1" -f "$TMP/out/script.sql" >"$2" 2>&1 ||
		{
			echo "run.sh: psql failed in database $1:" >&2
			tail -n 20 "$2" >&2
			exit 1
		}
	timings "$2" | awk '{ s += $1 } END { if (NR == 0) exit 1; printf "%.3f\n", s }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
fmt() { awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else printf "%.2f", x }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

checkpoint() { q postgres "CHECKPOINT" >/dev/null; }

# ---------------------------------------------------------------- results
ROWS=()     # "benchmark|size|migrate|baseline|ratio|target|met"
VERDICTS=() # one line per target
NOTES=()
row() { ROWS+=("$1|$2|$3|$4|$5|$6|$7"); printf '  %-44s %-22s migrate %10s  baseline %10s  ratio %5s  %s %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"; }
V=""
verdict() { # verdict NAME VALUE LIMIT TEXT: sets V to met/MISSED
	if le "$2" "$3"; then V=met; else V=MISSED; fi
	VERDICTS+=("$V: $1 ($4)")
}

# ---------------------------------------------------------------- template
PGVERSION=$(q postgres "SHOW server_version")
echo "== migrate benchmarks ($MODE): PostgreSQL $PGVERSION, $(nproc) cores, temp $TMP"
q postgres "CREATE DATABASE bench_tpl" >/dev/null
q bench_tpl "CREATE EXTENSION migrate" >/dev/null
as_pg "${PSQL[@]}" -d bench_tpl -f "$BENCH_DIR/lib.sql" >/dev/null
MIGRATE_VERSION=$(q bench_tpl "SELECT extversion FROM pg_extension WHERE extname = 'migrate'")
MIGRATE_SO=$(as_pg pg_config --pkglibdir)/migrate.so
MIGRATE_SQL_DIR=$(as_pg pg_config --sharedir)/extension
# every session loads migrate.so anew: a reinstall during the run mixes builds
# (the install script and the upgrade chain: a version may be installed through it)
install_stamp() { stat -c '%Y %s' "$MIGRATE_SO" "$MIGRATE_SQL_DIR"/migrate--*.sql 2>/dev/null | tr '\n' ' '; }
INSTALL_STAMP=$(install_stamp)
MIGRATE_BUILD="migrate.so of $(date -u -r "$MIGRATE_SO" '+%Y-%m-%d %H:%M UTC')"
if git -C "$REPO" rev-parse --short HEAD >/dev/null 2>&1; then
	MIGRATE_BUILD+=", repository at $(git -C "$REPO" rev-parse --short HEAD)"
	[[ -z $(git -C "$REPO" status --porcelain -- src sql 2>/dev/null) ]] || MIGRATE_BUILD+=" with uncommitted changes in src/ or sql/"
fi

fresh_db() { q postgres "CREATE DATABASE $1 TEMPLATE bench_tpl" >/dev/null; }

# A script of about BYTES bytes of one-line INSERTs into parse_t (about 100
# bytes each), on stdout (benchmarks 7 and 11).
gen_big_script() {
	as_pg awk -v bytes="$1" 'BEGIN {
		for (i = 1; n < bytes; i++) {
			line = sprintf("INSERT INTO parse_t VALUES (%d, '\''row %d'\'', '\''a note that makes this statement about a hundred bytes long %d'\'');", i, i, i * 7)
			print line
			n += length(line) + 1
		}
	}'
}
drop_db() { q postgres "DROP DATABASE $1" >/dev/null; }

# gen_apply_files DIR N: the migrations of benchmark 1, one per file, all of
# them in one file (the baseline) and the registration scripts.
gen_apply_files() {
	local dir=$1 n=$2 i
	[[ -f $dir/register_add.sql ]] && return
	mkdir -p "$dir"
	chmod 755 "$dir"
	local sq="'" k
	for ((i = 1; i <= n; i++)); do
		{
			printf 'CREATE TABLE t_%d (id int PRIMARY KEY, v text);\n' "$i"
			printf 'INSERT INTO t_%d VALUES ' "$i"
			for ((k = 1; k <= 10; k++)); do
				printf "(%d, '%s')" "$k" "v$k"
				((k < 10)) && printf ', ' || printf ';\n'
			done
			printf 'CREATE INDEX ON t_%d (v);\n' "$i"
		} >"$dir/m_$i.sql"
	done
	for ((i = 1; i <= n; i++)); do cat "$dir/m_$i.sql"; done >"$dir/baseline.sql"
	{
		echo '\timing on'
		printf 'SELECT count(*) FROM migrate_add_scripts(ARRAY['
		for ((i = 1; i <= n; i++)); do
			((i == 1)) || printf ','
			printf "%sV%d__t_%d.sql%s" "$sq" "$i" "$i" "$sq"
		done
		printf '], ARRAY['
		for ((i = 1; i <= n; i++)); do
			((i == 1)) || printf ','
			printf '$mig$%s$mig$' "$(cat "$dir/m_$i.sql")"
		done
		printf ']);\n'
	} >"$dir/register_scripts.sql"
	for ((i = 1; i <= n; i++)); do
		printf "SELECT migrate_add('%d', 't_%d', \$mig\$%s\$mig\$);\n" "$i" "$i" "$(cat "$dir/m_$i.sql")"
	done >"$dir/register_add.sql"
}

# ================================================================ 1. apply
bench_apply() {
	local n=$APPLY_N dir=$TMP/gen/apply i r
	echo "== 1. apply: $n migrations x $APPLY_REPS repetitions"
	# one migration per file (generated by root, readable by postgres); the
	# baseline is all of them in one file
	gen_apply_files "$dir" "$n"

	local -a reg_scripts=() reg_add=() m_e2e=() m_stmt=() b_e2e=()
	local t db
	for ((r = 1; r <= APPLY_REPS; r++)); do
		fresh_db b1_m
		fresh_db b1_a
		fresh_db b1_b
		checkpoint
		# registration: one migrate_add_scripts call (statement time) ...
		as_pg "${PSQL[@]}" -d b1_m -f "$dir/register_scripts.sql" >"$TMP/out/b1_reg.out" 2>&1
		reg_scripts+=("$(timings "$TMP/out/b1_reg.out")")
		# ... and n migrate_add calls in one psql -1 -f (end to end)
		reg_add+=("$(wall "$TMP/out/b1_add.out" "${PSQL[@]}" -1 -d b1_a -f "$dir/register_add.sql")")
		checkpoint
		run_m() {
			t=$(wall "$TMP/out/b1_m.out" "${PSQL[@]}" -d b1_m -c '\timing on' -c 'SELECT count(*) FROM migrate_apply()')
			m_e2e+=("$t")
			m_stmt+=("$(timings "$TMP/out/b1_m.out")")
		}
		run_b() { b_e2e+=("$(wall "$TMP/out/b1_b.out" "${PSQL[@]}" -1 -d b1_b -f "$dir/baseline.sql")"); }
		if ((r % 2)); then run_m; checkpoint; run_b; else run_b; checkpoint; run_m; fi
		# both sides did the work
		[[ $(q b1_m "SELECT count(*) FROM pg_class WHERE relname LIKE 't\_%' AND relkind = 'r'") == "$n" ]]
		[[ $(q b1_b "SELECT count(*) FROM pg_class WHERE relname LIKE 't\_%' AND relkind = 'r'") == "$n" ]]
		[[ $(q b1_m "SELECT count(*) FROM migrate.applied") == "$n" ]]
		for db in b1_m b1_a b1_b; do q postgres "ALTER DATABASE $db RENAME TO ${db}_$r" >/dev/null; done
	done
	# dropped only now: thousands of just-deleted files make the file system's
	# next file creations slow (ext4 inode allocation), whichever side runs next
	for ((r = 1; r <= APPLY_REPS; r++)); do
		for db in b1_m b1_a b1_b; do drop_db "${db}_$r"; done
	done
	local me mb ms rs ra
	me=$(printf '%s\n' "${m_e2e[@]}" | median)
	mb=$(printf '%s\n' "${b_e2e[@]}" | median)
	ms=$(printf '%s\n' "${m_stmt[@]}" | median)
	rs=$(printf '%s\n' "${reg_scripts[@]}" | median)
	ra=$(printf '%s\n' "${reg_add[@]}" | median)
	APPLY_RATIO=$(ratio "$me" "$mb")
	verdict "apply <= 1.15x baseline" "$APPLY_RATIO" 1.15 "${APPLY_RATIO}x"
	row "1 apply, end to end (psql start included)" "$n migrations" "$(fmt "$me") ms" "$(fmt "$mb") ms" "$APPLY_RATIO" "<= 1.15" "$V"
	row "1 apply, migrate_apply() statement only" "$n migrations" "$(fmt "$ms") ms" "$(fmt "$mb") ms" "$(ratio "$ms" "$mb")" "info" ""
	row "1 registration, 1 migrate_add_scripts()" "$n migrations" "$(fmt "$rs") ms" "-" "-" "info" ""
	row "1 registration, N x migrate_add() (psql -1)" "$n migrations" "$(fmt "$ra") ms" "-" "-" "info" ""
}

# ================================================================ 2. status
bench_status() {
	local size have=0 t st va bl reg base
	local -a st_ms=()
	echo "== 2. status/validate: ${STATUS_SIZES[*]} applied migrations, $STATUS_CALLS calls each"
	fresh_db b2
	for size in "${STATUS_SIZES[@]}"; do
		# register have+1..size as files V<i>__m<i>.sql in one call, then baseline
		reg=$(psql_timed b2 "$TMP/out/b2_reg.out" <<EOF
\\timing on
SELECT count(*) FROM migrate_add_scripts(
    ARRAY(SELECT format('V%s__m%s.sql', g, g) FROM generate_series($((have + 1)), $size) g),
    ARRAY(SELECT format('SELECT %s', g) FROM generate_series($((have + 1)), $size) g));
\\timing off
EOF
		)
		base=$(psql_timed b2 "$TMP/out/b2_base.out" <<EOF
\\timing on
SELECT count(*) FROM migrate_baseline('$size');
\\timing off
EOF
		)
		have=$size
		[[ $(q b2 "SELECT count(*) FROM migrate.applied") == "$size" ]]
		q b2 "VACUUM ANALYZE migrate.migrations, migrate.applied" >/dev/null
		st=$(q b2 "SELECT median_ms FROM bench_ms('SELECT count(*) FROM migrate_status()', $STATUS_CALLS)")
		va=$(q b2 "SELECT median_ms FROM bench_ms('SELECT count(*) FROM migrate_validate()', $STATUS_CALLS)")
		bl=$(q b2 "SELECT median_ms FROM bench_ms('SELECT count(*) FROM (SELECT * FROM migrate.migrations m LEFT JOIN migrate.applied a USING (version_key) ORDER BY version_key) s', $STATUS_CALLS)")
		[[ $(q b2 "SELECT count(*) FROM migrate_validate()") == 0 ]]
		STATUS_MS[$size]=$st
		VALIDATE_MS[$size]=$va
		local target="info" v1="" v2=""
		if ((size == 10000)); then
			target="< 50 ms"
			verdict "migrate_status() < 50 ms at 10,000" "$st" 50 "$(fmt "$st") ms"
			v1=$V
			verdict "migrate_validate() < 50 ms at 10,000" "$va" 50 "$(fmt "$va") ms"
			v2=$V
		fi
		row "2 migrate_status(), per call" "$size applied" "$(fmt "$st") ms" "$(fmt "$bl") ms" "$(ratio "$st" "$bl")" "$target" "$v1"
		row "2 migrate_validate(), per call" "$size applied" "$(fmt "$va") ms" "$(fmt "$bl") ms" "$(ratio "$va" "$bl")" "$target" "$v2"
		REG_MS[$size]=$reg
		REG_N[$size]=$((size - ${prev:-0}))
		row "2 setup: migrate_add_scripts(), migrate_baseline()" "+${REG_N[$size]} files" \
			"$(fmt "$reg") ms ($(awk -v t="$reg" -v n="${REG_N[$size]}" 'BEGIN { printf "%.0f us/file", t * 1000 / n }')), $(fmt "$base") ms" "-" "-" "info" ""
		prev=$size
	done
	drop_db b2
	# growth: time ratio against size ratio; the exponent is 1 for linear, 2 for quadratic
	local s1=${STATUS_SIZES[0]} s2=${STATUS_SIZES[1]} s3=${STATUS_SIZES[2]} f
	for f in status validate; do
		local -n arr=${f^^}_MS
		local g12 g23 e
		g12=$(ratio "${arr[$s2]}" "${arr[$s1]}")
		g23=$(ratio "${arr[$s3]}" "${arr[$s2]}")
		e=$(awk -v a="${arr[$s1]}" -v b="${arr[$s3]}" -v n1="$s1" -v n3="$s3" 'BEGIN { printf "%.2f", log(b / a) / log(n3 / n1) }')
		verdict "migrate_$f() growth not quadratic (exponent $s1->$s3 < 1.5)" "$e" 1.5 "exponent $e"
		row "2 migrate_$f() growth" "${s1}->${s2}->${s3}" "x$g12, x$g23" "(sizes x$((s2 / s1)), x$((s3 / s2)))" "exp $e" "not quadratic" "$V"
		unset -n arr
	done
	# registration: one migrate_add_scripts() call per step, of n1, n2-n1, n3-n2 files
	local e
	e=$(awk -v a="${REG_MS[$s1]}" -v b="${REG_MS[$s3]}" -v n1="${REG_N[$s1]}" -v n3="${REG_N[$s3]}" 'BEGIN { printf "%.2f", log(b / a) / log(n3 / n1) }')
	row "2 migrate_add_scripts() growth (one call)" "${REG_N[$s1]}->${REG_N[$s3]} files" "x$(ratio "${REG_MS[$s3]}" "${REG_MS[$s1]}")" "(files x$((REG_N[$s3] / REG_N[$s1])))" "exp $e" "info" ""
}
declare -A STATUS_MS=() VALIDATE_MS=() REG_MS=() REG_N=()

# ================================================================ 3. expectations
bench_expect() {
	local n=$EXP_ROWS k=$EXP_INSERT r count_a lo hi t
	local -a m_ms=() b_ms=() m2_ms=() b2_ms=()
	echo "== 3. expectations: 2 tables x $n rows, insert $k rows, $EXP_REPS repetitions"
	fresh_db b3
	q b3 "CREATE TABLE exp_a (id bigint PRIMARY KEY, v int NOT NULL);
	      CREATE TABLE exp_b (id bigint PRIMARY KEY, v int NOT NULL);
	      INSERT INTO exp_a SELECT g, g % 1000 FROM generate_series(1, $n) g;
	      INSERT INTO exp_b SELECT g, g % 1000 FROM generate_series(1, $n) g;" >/dev/null
	q b3 "VACUUM ANALYZE exp_a" >/dev/null
	q b3 "VACUUM ANALYZE exp_b" >/dev/null
	count_a=$n
	next_range() { lo=$((count_a + 1)) hi=$((count_a + k)) count_a=$((count_a + k)); }
	# run_m / run_b VERSION EXTRA: EXTRA is another statement of the migration
	# (empty, or one that names the "=" table without changing its row count)
	run_m() {
		q b3 "SELECT migrate_add('$1', 'grow exp_a $1',
		        \$\$INSERT INTO exp_a SELECT g, g % 1000 FROM generate_series($lo, $hi) g;$2\$\$,
		        expect => '{\"exp_a\": $count_a, \"exp_b\": \"=\"}')" >/dev/null
		checkpoint
		psql_timed b3 "$TMP/out/b3_m.out" <<'EOF'
SET migrate.verify_constraints = off;
\timing on
SELECT count(*) FROM migrate_apply();
\timing off
EOF
	}
	run_b() {
		checkpoint
		psql_timed b3 "$TMP/out/b3_b.out" <<EOF
\\timing on
BEGIN;
INSERT INTO exp_a SELECT g, g % 1000 FROM generate_series($lo, $hi) g;$2
SELECT count(*) FROM exp_a;
SELECT count(*) FROM exp_b;
COMMIT;
\\timing off
EOF
	}
	# one step: the next 100,000 ids, then migrate (m) or the baseline (b);
	# not in a subshell, so that count_a advances
	step() { # step m|b VERSION EXTRA ARRAY
		local t
		next_range
		if [[ $1 == m ]]; then t=$(run_m "$2" "$3"); else t=$(run_b "$2" "$3"); fi
		local -n into=$4
		into+=("$t")
		q b3 "VACUUM exp_a, exp_b" >/dev/null
	}
	local upd
	for ((r = 1; r <= EXP_REPS; r++)); do
		upd=" UPDATE exp_b SET v = v + 1 WHERE id = $r;"
		if ((r % 2)); then
			step m "$r" "" m_ms
			step b "$r" "" b_ms
			step m "$r.5" "$upd" m2_ms
			step b "$r.5" "$upd" b2_ms
		else
			step b "$r" "" b_ms
			step m "$r" "" m_ms
			step b "$r.5" "$upd" b2_ms
			step m "$r.5" "$upd" m2_ms
		fi
	done
	[[ $(q b3 "SELECT count(*) FROM exp_a") == "$count_a" ]]
	[[ $(q b3 "SELECT count(*) FROM migrate.applied") == "$((2 * EXP_REPS))" ]]
	# one count(*) of a big table, for the explanation
	t=$(psql_timed b3 "$TMP/out/b3_c.out" <<'EOF'
\timing on
SELECT count(*) FROM exp_b;
SELECT count(*) FROM exp_b;
SELECT count(*) FROM exp_b;
\timing off
EOF
	)
	COUNT_B_MS=$(awk -v s="$t" 'BEGIN { printf "%.3f", s / 3 }')
	drop_db b3
	local mm bm
	mm=$(printf '%s\n' "${m_ms[@]}" | median)
	bm=$(printf '%s\n' "${b_ms[@]}" | median)
	EXPECT_RATIO=$(ratio "$mm" "$bm")
	verdict "expectations <= 1.05x baseline" "$EXPECT_RATIO" 1.05 "${EXPECT_RATIO}x"
	row "3 expectations (exact + \"=\"), verify_constraints=off" "$k into $n rows" "$(fmt "$mm") ms" "$(fmt "$bm") ms" "$EXPECT_RATIO" "<= 1.05" "$V"
	mm=$(printf '%s\n' "${m2_ms[@]}" | median)
	bm=$(printf '%s\n' "${b2_ms[@]}" | median)
	row "3 same, the migration also UPDATEs 1 row of the \"=\" table" "$k into $n rows" "$(fmt "$mm") ms" "$(fmt "$bm") ms" "$(ratio "$mm" "$bm")" "info" ""
	row "3 one count(*) of the \"=\" table (for reference)" "$n rows" "-" "$(fmt "$COUNT_B_MS") ms" "-" "info" ""
}

# ================================================================ 4. constraints
bench_fk() {
	local nc=$FK_CHILD np=$FK_PARENT r t
	local -a m_ms=() b_ms=() v_ms=() vb_ms=()
	echo "== 4. constraint re-check: child $nc rows -> parent $np rows, $FK_REPS repetitions"
	fresh_db b4
	q b4 "CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL);
	      INSERT INTO parent SELECT g, 'parent ' || g FROM generate_series(1, $np) g;
	      CREATE TABLE child (id bigint PRIMARY KEY, pid int NOT NULL);
	      INSERT INTO child SELECT g, 1 + (g::bigint * 7919) % $np FROM generate_series(1, $nc) g;
	      ALTER TABLE child ADD CONSTRAINT child_fk FOREIGN KEY (pid) REFERENCES parent NOT VALID;" >/dev/null
	q b4 "VACUUM ANALYZE parent" >/dev/null
	q b4 "VACUUM ANALYZE child" >/dev/null
	q b4 "SELECT migrate_add('1', 'child fk',
	        \$\$ALTER TABLE child ADD CONSTRAINT child_fk FOREIGN KEY (pid) REFERENCES parent NOT VALID\$\$)" >/dev/null
	# migrate: the migration adds the NOT VALID key (the baseline's copy is
	# dropped first, in the same transaction) and re-checks every row;
	# baseline: VALIDATE CONSTRAINT.  Both rolled back, so every repetition
	# starts from the same state.
	run_m() {
		m_ms+=("$(psql_timed b4 "$TMP/out/b4_m.out" <<'EOF'
BEGIN;
ALTER TABLE child DROP CONSTRAINT child_fk;
\timing on
SELECT count(*) FROM migrate_apply();
\timing off
ROLLBACK;
EOF
		)")
	}
	run_b() {
		b_ms+=("$(psql_timed b4 "$TMP/out/b4_b.out" <<'EOF'
BEGIN;
\timing on
ALTER TABLE child VALIDATE CONSTRAINT child_fk;
\timing off
ROLLBACK;
EOF
		)")
	}
	run_m
	run_b # warm-up, not counted
	m_ms=() b_ms=()
	for ((r = 1; r <= FK_REPS; r++)); do
		if ((r % 2)); then run_m; run_b; else run_b; run_m; fi
	done
	# migrate_verify() of the applied migration against VALIDATE
	q b4 "SET client_min_messages = warning; BEGIN; ALTER TABLE child DROP CONSTRAINT child_fk;
	      SELECT count(*) FROM migrate_apply(); COMMIT;" >/dev/null
	[[ $(q b4 "SELECT count(*) FROM pg_constraint WHERE conname = 'child_fk' AND NOT convalidated") == 1 ]]
	for ((r = 1; r <= FK_REPS; r++)); do
		v_ms+=("$(psql_timed b4 "$TMP/out/b4_v.out" <<'EOF'
\timing on
SELECT migrate_verify('1');
\timing off
EOF
		)")
		run_b
	done
	drop_db b4
	local mm bm vm
	mm=$(printf '%s\n' "${m_ms[@]}" | median)
	bm=$(printf '%s\n' "${b_ms[@]}" | median)
	vm=$(printf '%s\n' "${v_ms[@]}" | median)
	FK_RATIO=$(ratio "$mm" "$bm")
	verdict "constraint re-check <= 1.2x VALIDATE" "$FK_RATIO" 1.2 "${FK_RATIO}x"
	row "4 FK re-check: apply vs VALIDATE CONSTRAINT" "$nc -> $np rows" "$(fmt "$mm") ms" "$(fmt "$bm") ms" "$FK_RATIO" "<= 1.2" "$V"
	row "4 migrate_verify() vs VALIDATE CONSTRAINT" "$nc -> $np rows" "$(fmt "$vm") ms" "$(fmt "$bm") ms" "$(ratio "$vm" "$bm")" "info" ""
}

# ================================================================ 5. checksums
bench_checksum() {
	local bytes=$SEED_BYTES file=$TMP/gen/seed.sql r size mib
	local -a add_ms=() sum_ms=() sha_ms=() ins_ms=()
	echo "== 5. checksums: $((bytes / 1024)) KiB seed script, $SEED_REPS repetitions"
	as_pg awk -v bytes="$bytes" 'BEGIN {
		print "INSERT INTO seed (id, name, note) VALUES"
		n = 40
		for (i = 1; n < bytes; i++) {
			line = sprintf("(%d, '\''seed row %d'\'', '\''a note that makes this row about one hundred bytes long, %d'\'')", i, i, i * 7)
			printf "%s%s", (i > 1 ? ",\n" : ""), line
			n += length(line) + 2
		}
		print ";"
	}' >"$file"
	size=$(stat -c %s "$file")
	mib=$(awk -v b="$size" 'BEGIN { printf "%.3f", b / 1048576 }')
	fresh_db b5
	# stored uncompressed, so that reading it back costs little against the work
	q b5 "CREATE TABLE src (s text); ALTER TABLE src ALTER s SET STORAGE EXTERNAL;
	      INSERT INTO src SELECT pg_read_file('$file');
	      CREATE TABLE plain_store (s text, checksum text);" >/dev/null
	[[ $(q b5 "SELECT octet_length(s) FROM src") == "$size" ]]
	for ((r = 0; r <= SEED_REPS; r++)); do
		psql_timed b5 "$TMP/out/b5.out" >/dev/null <<'EOF'
BEGIN;
\timing on
SELECT length(migrate_add('1', 'seed', s)) FROM src;
\timing off
ROLLBACK;
\timing on
SELECT length(migrate_checksum(s)) FROM src;
SELECT length(encode(sha256(convert_to(s, 'UTF8')), 'hex')) FROM src;
\timing off
BEGIN;
\timing on
INSERT INTO plain_store SELECT s, encode(sha256(convert_to(s, 'UTF8')), 'hex') FROM src;
\timing off
ROLLBACK;
EOF
		((r > 0)) || continue # warm-up
		mapfile -t t < <(timings "$TMP/out/b5.out")
		add_ms+=("${t[0]}") sum_ms+=("${t[1]}") sha_ms+=("${t[2]}") ins_ms+=("${t[3]}")
	done
	drop_db b5
	local am sm hm im
	am=$(printf '%s\n' "${add_ms[@]}" | median)
	sm=$(printf '%s\n' "${sum_ms[@]}" | median)
	hm=$(printf '%s\n' "${sha_ms[@]}" | median)
	im=$(printf '%s\n' "${ins_ms[@]}" | median)
	mbs() { awk -v m="$mib" -v ms="$1" 'BEGIN { printf "%.0f MiB/s", m / (ms / 1000) }'; }
	row "5 migrate_add() (parse + checksum + store)" "$mib MiB script" "$(mbs "$am")" "$(mbs "$im")" "$(ratio "$im" "$am")" "info" ""
	row "5 migrate_checksum() vs sha256()" "$mib MiB script" "$(mbs "$sm")" "$(mbs "$hm")" "$(ratio "$hm" "$sm")" "info" ""
	NOTES+=("5: ratio = throughput of migrate / throughput of the baseline (migrate_add: baseline is INSERT of the text with sha256(); migrate_checksum: baseline is sha256(convert_to(s, 'UTF8'))); medians $(fmt "$am") ms for migrate_add, $(fmt "$sm") ms for migrate_checksum.")
}

# ================================================================ 6. graph
# requires_sql KIND N: SQL for the requirements of migration g (NULL: none)
requires_sql() {
	case $1 in
	chain) echo "CASE WHEN g < $2 THEN (g + 1)::text END" ;;
	dense) echo "CASE WHEN g > 3 THEN concat_ws(', ', g - 1, g - 2, CASE WHEN g % 2 = 0 THEN g - 3 END) END" ;;
	esac
}
bench_graph() {
	local kind size part e name s1 s2
	local -a t=()
	local -A ms=()
	echo "== 6. graph: chains of ${GRAPH_CHAIN[*]}, dense graphs of ${GRAPH_DENSE[*]}: register, plan, apply"
	per() { awk -v t="$1" -v n="$2" 'BEGIN { printf "%.1f us/migration", t * 1000 / n }'; }
	for kind in chain dense; do
		local -n sizes=GRAPH_${kind^^}
		for size in "${sizes[@]}"; do
			fresh_db b6
			checkpoint
			psql_timed b6 "$TMP/out/b6.out" >/dev/null <<EOF
SET client_min_messages = warning;
\\timing on
SELECT count(*) FROM migrate_add_scripts(
    ARRAY(SELECT format('V%s__m%s.sql', g, g) FROM generate_series(1, $size) g),
    ARRAY(SELECT coalesce('-- migrate:requires ' || $(requires_sql $kind $size) || E'\\n', '') || format('SELECT %s;', g)
            FROM generate_series(1, $size) g));
SELECT count(*) FROM migrate_plan();
SELECT count(*) FROM migrate_apply();
\\timing off
EOF
			mapfile -t t < <(timings "$TMP/out/b6.out")
			[[ $(q b6 "SELECT count(*) FROM migrate.applied") == "$size" ]]
			(($(q b6 "SELECT count(*) FROM migrate.migrations WHERE requires <> '{}'") >= size - 3))
			drop_db b6
			ms[$kind.reg.$size]=${t[0]} ms[$kind.plan.$size]=${t[1]} ms[$kind.apply.$size]=${t[2]}
			row "6 graph, $kind: migrate_add_scripts()" "$size migrations" "$(fmt "${t[0]}") ms ($(per "${t[0]}" "$size"))" "-" "-" "info" ""
			row "6 graph, $kind: migrate_plan()" "$size migrations" "$(fmt "${t[1]}") ms ($(per "${t[1]}" "$size"))" "-" "-" "info" ""
			row "6 graph, $kind: migrate_apply()" "$size migrations" "$(fmt "${t[2]}") ms ($(per "${t[2]}" "$size"))" "-" "-" "info" ""
		done
		s1=${sizes[0]} s2=${sizes[-1]}
		for part in reg plan apply; do
			name=$part
			[[ $part != reg ]] || name=register
			e=$(awk -v a="${ms[$kind.$part.$s1]}" -v b="${ms[$kind.$part.$s2]}" -v n1="$s1" -v n2="$s2" \
				'BEGIN { printf "%.2f", log(b / a) / log(n2 / n1) }')
			verdict "graph, $kind: $name growth not quadratic (exponent $s1->$s2 < 1.5)" "$e" 1.5 "exponent $e"
			row "6 graph, $kind: $name growth" "$s1->$s2" "x$(ratio "${ms[$kind.$part.$s2]}" "${ms[$kind.$part.$s1]}")" \
				"(sizes x$((s2 / s1)))" "exp $e" "not quadratic" "$V"
		done
		unset -n sizes
	done
}
# ================================================================ 7. parse
# Registering scripts of many statements: migrate_add() of 5k, 10k and 20k
# one-line INSERTs (the growth must be linear) and of a big script, against
# psql -f of the same file (which sends each statement to the server and runs
# it); the registration itself runs none of them.
bench_parse() {
	local n r f big=$PARSE_BIG_BYTES reg base
	local -a sizes=(5000 10000 20000)
	echo "== 7. parse: registering ${sizes[*]} one-line INSERTs and a $((big / 1048576)) MiB script, $PARSE_REPS/$PARSE_BIG_REPS repetitions"
	fresh_db b6
	q b6 "CREATE TABLE src (k text PRIMARY KEY, s text); ALTER TABLE src ALTER s SET STORAGE EXTERNAL;
	      CREATE TABLE parse_t (id int, name text, note text);" >/dev/null
	for n in "${sizes[@]}"; do
		f=$TMP/gen/parse_$n.sql
		as_pg awk -v n="$n" 'BEGIN { for (i = 1; i <= n; i++) printf "INSERT INTO parse_t VALUES (%d, '\''row %d'\'');\n", i, i }' >"$f"
		q b6 "INSERT INTO src SELECT '$n', pg_read_file('$f')" >/dev/null
	done
	f=$TMP/gen/parse_big.sql
	gen_big_script "$big" >"$f"
	q b6 "INSERT INTO src SELECT 'big', pg_read_file('$f')" >/dev/null
	local big_bytes big_n
	big_bytes=$(stat -c %s "$f")
	big_n=$(wc -l <"$f")
	for n in "${sizes[@]}" big; do
		local -a reg_ms=() base_ms=()
		f=$TMP/gen/parse_$n.sql
		# the big script needs no warm-up repetition of its own: the small ones were one
		local first=0 reps=$PARSE_REPS
		[[ $n != big ]] || first=1 reps=$PARSE_BIG_REPS
		for ((r = first; r <= reps; r++)); do
			# alternate which side goes first
			if ((r % 2)); then
				q b6 "TRUNCATE parse_t" >/dev/null
				base=$(wall "$TMP/out/b6_psql.out" "${PSQL[@]}" -d b6 -f "$f")
			fi
			# the session's first call loads the library and plans the catalog
			# statements: it is not timed
			reg=$(psql_timed b6 "$TMP/out/b6.out" <<EOF
BEGIN;
SELECT length(migrate_add('1', 'parse', s)) FROM src WHERE k = '5000';
ROLLBACK;
BEGIN;
\\timing on
SELECT length(migrate_add('1', 'parse', s)) FROM src WHERE k = '$n';
\\timing off
ROLLBACK;
EOF
			)
			if ((r % 2 == 0)); then
				q b6 "TRUNCATE parse_t" >/dev/null
				base=$(wall "$TMP/out/b6_psql.out" "${PSQL[@]}" -d b6 -f "$f")
			fi
			((r > 0)) || continue # warm-up
			reg_ms+=("$reg") base_ms+=("$base")
		done
		PARSE_MS[$n]=$(printf '%s\n' "${reg_ms[@]}" | median)
		PSQL_MS[$n]=$(printf '%s\n' "${base_ms[@]}" | median)
	done
	drop_db b6
	for n in "${sizes[@]}"; do
		row "7 migrate_add() of one-line INSERTs" "$n statements" "$(fmt "${PARSE_MS[$n]}") ms" "$(fmt "${PSQL_MS[$n]}") ms" \
			"$(ratio "${PARSE_MS[$n]}" "${PSQL_MS[$n]}")" "info" ""
	done
	local s1=${sizes[0]} s2=${sizes[1]} s3=${sizes[2]} e
	e=$(awk -v a="${PARSE_MS[$s1]}" -v b="${PARSE_MS[$s3]}" -v n1="$s1" -v n3="$s3" 'BEGIN { printf "%.2f", log(b / a) / log(n3 / n1) }')
	verdict "migrate_add() time linear in the statements (exponent $s1->$s3 <= 1.2)" "$e" 1.2 "exponent $e"
	row "7 migrate_add() growth" "${s1}->${s2}->${s3}" \
		"x$(ratio "${PARSE_MS[$s2]}" "${PARSE_MS[$s1]}"), x$(ratio "${PARSE_MS[$s3]}" "${PARSE_MS[$s2]}")" \
		"(sizes x2, x2)" "exp $e" "linear" "$V"
	row "7 migrate_add() of a big script" "$(awk -v b="$big_bytes" 'BEGIN { printf "%.0f MiB", b / 1048576 }'), $big_n statements" \
		"$(fmt "${PARSE_MS[big]}") ms" "$(fmt "${PSQL_MS[big]}") ms" "$(ratio "${PARSE_MS[big]}" "${PSQL_MS[big]}")" "info" ""
	NOTES+=("7: migrate = migrate_add() of the script stored in a table (split, checks, checksum, catalog row) in a transaction rolled back, timed by psql's \\timing; baseline = \`psql -f\` of the same file, end to end (it sends and runs every statement, each its own transaction). ratio = migrate / baseline: lower is better. Growth: exponent = log(t3/t1)/log(n3/n1), 1 is linear, 2 quadratic; before the linear split, 5k/10k/20k took 0.57/2.14/8.48 s (exponent 1.95) and a 50 MB script ran for minutes.")
}
declare -A PARSE_MS=() PSQL_MS=()
# ================================================================ 8. job
# The same n small migrations as benchmark 1 (registered the same way), applied
# by a job (SELECT migrate_start(); CALL migrate_wait(id)) vs CALL migrate_run(),
# which also commits after each migration; both end to end from psql.
bench_job() {
	local n=$APPLY_N dir=$TMP/gen/apply r t
	local -a j_e2e=() r_e2e=()
	echo "== 8. job: $n migrations x $JOB_REPS repetitions"
	printf '%s\n' 'SET client_min_messages = warning;' 'SELECT migrate_start() AS job \gset' \
		'CALL migrate_wait(:job);' >"$dir/job.sql"
	chmod 644 "$dir/job.sql"
	for ((r = 1; r <= JOB_REPS; r++)); do
		fresh_db b6_j
		fresh_db b6_r
		as_pg "${PSQL[@]}" -d b6_j -f "$dir/register_scripts.sql" >/dev/null 2>&1
		as_pg "${PSQL[@]}" -d b6_r -f "$dir/register_scripts.sql" >/dev/null 2>&1
		checkpoint
		run_j() {
			j_e2e+=("$(wall "$TMP/out/b6_j.out" "${PSQL[@]}" -d b6_j -v ON_ERROR_STOP=1 -f "$dir/job.sql")")
		}
		run_r() {
			r_e2e+=("$(wall "$TMP/out/b6_r.out" "${PSQL[@]}" -d b6_r -v ON_ERROR_STOP=1 \
				-c 'SET client_min_messages = warning' -c 'CALL migrate_run()')")
		}
		if ((r % 2)); then run_j; checkpoint; run_r; else run_r; checkpoint; run_j; fi
		[[ $(q b6_j "SELECT count(*) FROM migrate.applied") == "$n" ]]
		[[ $(q b6_r "SELECT count(*) FROM migrate.applied") == "$n" ]]
		[[ $(q b6_j "SELECT state FROM migrate.jobs") == succeeded ]]
		drop_db b6_j
		drop_db b6_r
	done
	local jm rm
	jm=$(printf '%s\n' "${j_e2e[@]}" | median)
	rm=$(printf '%s\n' "${r_e2e[@]}" | median)
	row "8 job: migrate_start() + CALL migrate_wait() vs CALL migrate_run()" "$n migrations" "$(fmt "$jm") ms" "$(fmt "$rm") ms" "$(ratio "$jm" "$rm")" "info" ""
	NOTES+=("8: both end to end from psql, fresh database per repetition, registration not included; the job runs in a background worker and commits after each migration, as migrate_run() does.")
}

# ================================================================ 9. batch
# A batched backfill run by a job (SELECT migrate_start(); CALL migrate_wait()):
# the worker walks big's primary key, one transaction and checkpoint row per
# batch, the size adapting to about 200 ms a batch; against one plain UPDATE
# of the same rows.  Then a batched move of rows into a new table with a
# foreign key and an exact-count expectation, against one INSERT ... SELECT
# and count(*) through psql -1.  Each side of each repetition runs in its own
# copy of a template database (CREATE DATABASE ... TEMPLATE, the table already
# VACUUM ANALYZEd), made right before it runs, then CHECKPOINT; registration
# is not timed; both sides end to end from psql.
if [[ $MODE == full ]]; then
	BATCH_ROWS=2000000 BATCH_MOVE=200000 BATCH_REPS=5
else
	BATCH_ROWS=200000 BATCH_MOVE=200000 BATCH_REPS=2
fi
bench_batch() {
	local n=$BATCH_ROWS nv=$BATCH_MOVE dir=$TMP/gen/batch r t d
	local -a u_m=() u_b=() u_long=() u_batches=() u_jrps=() v_m=() v_b=() v_long=() v_batches=() u_av=() u_own=() v_own=()
	echo "== 9. batch: backfill of $n rows, move of $nv rows into a table with an FK, $BATCH_REPS repetitions"
	mkdir -p "$dir"
	chmod 755 "$dir"
	printf '%s\n' 'SET client_min_messages = warning;' 'SELECT migrate_start() AS job \gset' \
		'CALL migrate_wait(:job);' >"$dir/job.sql"
	printf '%s\n' 'UPDATE big SET w = v * 2;' >"$dir/update.sql"
	printf '%s\n' 'INSERT INTO tasks SELECT id, parent FROM legacy;' 'SELECT count(*) FROM tasks;' >"$dir/move.sql"
	chmod 644 "$dir"/*.sql
	# the templates, made once
	q postgres "CREATE DATABASE b9_big_tpl TEMPLATE bench_tpl" >/dev/null
	q b9_big_tpl "CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, w int);
	      INSERT INTO big SELECT g, g % 1000 FROM generate_series(1, $n) g;" >/dev/null
	q b9_big_tpl "VACUUM ANALYZE big" >/dev/null
	q postgres "CREATE DATABASE b9_move_tpl TEMPLATE bench_tpl" >/dev/null
	q b9_move_tpl "CREATE TABLE p (id int PRIMARY KEY);
	      INSERT INTO p SELECT generate_series(1, 100);
	      CREATE TABLE legacy (id bigint PRIMARY KEY, parent int NOT NULL);
	      INSERT INTO legacy SELECT g, 1 + g % 100 FROM generate_series(1, $nv) g;
	      CREATE TABLE tasks (id bigint PRIMARY KEY, parent int REFERENCES p);" >/dev/null
	q b9_move_tpl "VACUUM ANALYZE p, legacy, tasks" >/dev/null
	copy_db() { q postgres "CREATE DATABASE $1 TEMPLATE $2" >/dev/null; }
	# the apply row of migration 001 in the history: batches and the longest batch
	batch_detail() {
		q "$1" "SELECT (detail->>'batches') || ' ' || (detail->>'longest_batch_ms') FROM migrate.history
		         WHERE version = '001' AND action = 'apply' ORDER BY id DESC LIMIT 1"
	}
	# the job's own time, from queued to finished (the rest of the wall clock:
	# psql, migrate_start(), and migrate_wait() seeing the end)
	job_ms() { q "$1" "SELECT round(extract(epoch FROM finished_at - queued_at) * 1000, 1) FROM migrate.jobs"; }
	# the job ended well, its migration is applied, its checkpoint row is gone
	job_done() {
		[[ $(q "$1" "SELECT state || ' ' || rows_done FROM migrate.jobs") == "succeeded $2" ]]
		[[ $(q "$1" "SELECT count(*) FROM migrate.applied") == 1 ]]
		[[ $(q "$1" "SELECT count(*) FROM migrate.batch_progress") == 0 ]]
	}
	run_um() {
		copy_db b9_um b9_big_tpl
		q b9_um "SELECT migrate_add('001', 'double w', 'UPDATE big SET w = v * 2 WHERE id > \$1 AND id <= \$2',
		           batch => '{\"table\": \"big\"}')" >/dev/null
		checkpoint
		u_m+=("$(wall "$TMP/out/b9_um.out" "${PSQL[@]}" -d b9_um -f "$dir/job.sql")")
		job_done b9_um "$n"
		[[ $(q b9_um "SELECT count(*) FROM big WHERE w = v * 2") == "$n" ]]
		read -r d t <<<"$(batch_detail b9_um)"
		u_batches+=("$d") u_long+=("$t")
		u_jrps+=("$(q b9_um "SELECT round(rows_per_second) FROM migrate.jobs")")
		u_own+=("$(job_ms b9_um)")
		u_av+=("$(q b9_um "SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'big'")")
		drop_db b9_um
	}
	run_ub() {
		copy_db b9_ub b9_big_tpl
		checkpoint
		u_b+=("$(wall "$TMP/out/b9_ub.out" "${PSQL[@]}" -d b9_ub -f "$dir/update.sql")")
		[[ $(q b9_ub "SELECT count(*) FROM big WHERE w = v * 2") == "$n" ]]
		drop_db b9_ub
	}
	run_vm() {
		copy_db b9_vm b9_move_tpl
		q b9_vm "SELECT migrate_add('001', 'move legacy into tasks',
		           'INSERT INTO tasks SELECT id, parent FROM legacy l WHERE l.id > \$1 AND l.id <= \$2',
		           expect => '{\"tasks\": $nv}', batch => '{\"table\": \"legacy\"}')" >/dev/null
		checkpoint
		v_m+=("$(wall "$TMP/out/b9_vm.out" "${PSQL[@]}" -d b9_vm -f "$dir/job.sql")")
		job_done b9_vm "$nv"
		[[ $(q b9_vm "SELECT count(*) FROM tasks") == "$nv" ]]
		read -r d t <<<"$(batch_detail b9_vm)"
		v_batches+=("$d") v_long+=("$t")
		v_own+=("$(job_ms b9_vm)")
		drop_db b9_vm
	}
	run_vb() {
		copy_db b9_vb b9_move_tpl
		checkpoint
		v_b+=("$(wall "$TMP/out/b9_vb.out" "${PSQL[@]}" -1 -d b9_vb -f "$dir/move.sql")")
		[[ $(q b9_vb "SELECT count(*) FROM tasks") == "$nv" ]]
		drop_db b9_vb
	}
	for ((r = 1; r <= BATCH_REPS; r++)); do
		if ((r % 2)); then run_um; checkpoint; run_ub; else run_ub; checkpoint; run_um; fi
		checkpoint
		if ((r % 2)); then run_vm; checkpoint; run_vb; else run_vb; checkpoint; run_vm; fi
		checkpoint
	done
	drop_db b9_big_tpl
	drop_db b9_move_tpl
	local mm bm rt lg bt vm vb vl vbt
	rps() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f rows/s", n / (ms / 1000) }'; }
	max() { sort -g | tail -n 1; }
	mm=$(printf '%s\n' "${u_m[@]}" | median)
	bm=$(printf '%s\n' "${u_b[@]}" | median)
	rt=$(ratio "$bm" "$mm") # rows/s of migrate / rows/s of the UPDATE
	lg=$(printf '%s\n' "${u_long[@]}" | max)
	bt=$(printf '%s\n' "${u_batches[@]}" | median)
	if awk -v a="$rt" 'BEGIN { exit !(a >= 0.8) }'; then V=met; else V=MISSED; fi
	VERDICTS+=("$V: batched backfill >= 0.8x the rows/s of one plain UPDATE (${rt}x)")
	row "9 batched backfill vs one plain UPDATE" "$n rows" "$(fmt "$mm") ms, $(rps "$n" "$mm")" \
		"$(fmt "$bm") ms, $(rps "$n" "$bm")" "$rt" ">= 0.8" "$V"
	if awk -v a="$lg" 'BEGIN { exit !(a < 1000) }'; then V=met; else V=MISSED; fi
	VERDICTS+=("$V: longest batch of the backfill < 1000 ms ($(fmt "$lg") ms, the longest of $BATCH_REPS runs)")
	row "9 longest batch of the backfill (of all runs)" "$n rows" "$(fmt "$lg") ms" "-" "-" "< 1000 ms" "$V"
	row "9 backfill: batches, mean rows per batch" "$n rows" \
		"$(printf '%.0f' "$bt") batches, $(awk -v n="$n" -v b="$bt" 'BEGIN { printf "%.0f", n / b }') rows" "-" "-" "info" ""
	row "9 backfill: the job's own time (queued to finished)" "$n rows" "$(fmt "$(printf '%s\n' "${u_own[@]}" | median)") ms" "-" "-" "info" ""
	vm=$(printf '%s\n' "${v_m[@]}" | median)
	vb=$(printf '%s\n' "${v_b[@]}" | median)
	vl=$(printf '%s\n' "${v_long[@]}" | max)
	vbt=$(printf '%s\n' "${v_batches[@]}" | median)
	row "9 move rows into a new table (FK, exact-count expectation)" "$nv rows" "$(fmt "$vm") ms, $(rps "$nv" "$vm")" \
		"$(fmt "$vb") ms, $(rps "$nv" "$vb")" "$(ratio "$vb" "$vm")" "info" ""
	row "9 move: batches, longest batch (of all runs)" "$nv rows" "$(printf '%.0f' "$vbt") batches, $(fmt "$vl") ms" "-" "-" "info" ""
	row "9 move: the job's own time (queued to finished)" "$nv rows" "$(fmt "$(printf '%s\n' "${v_own[@]}" | median)") ms" "-" "-" "info" ""
	NOTES+=("9: medians of $BATCH_REPS repetitions, each side in a fresh copy of a template database (the table VACUUM ANALYZEd), then CHECKPOINT. migrate = \`SELECT migrate_start() \\gset\` + \`CALL migrate_wait()\` of a batched migration registered without \"size\" (the size adapts to about 200 ms a batch, starting at 1,000 rows), end to end from psql; baseline = one plain \`UPDATE big SET w = v * 2\` (backfill) or \`psql -1\` of \`INSERT INTO tasks SELECT id, parent FROM legacy; SELECT count(*) FROM tasks\` (move). ratio = rows/s of migrate / rows/s of the baseline (= baseline ms / migrate ms): higher is better. Longest batch: the largest \"longest_batch_ms\" of the history's apply rows over all runs (a batch's transaction up to its checkpoint). Batches: from the history's detail. The job's own rows_per_second (its last 10 batches): ${u_jrps[*]}; autovacuum/autoanalyze runs on big during the migrate side: ${u_av[*]}. Each run (ms), backfill: migrate ${u_m[*]} (the job's own time, queued_at to finished_at: ${u_own[*]}), baseline ${u_b[*]}, longest batch ${u_long[*]}; move: migrate ${v_m[*]} (job ${v_own[*]}), baseline ${v_b[*]}.")
}

# ================================================================ 10. lint
bench_lint() {
	local n=$APPLY_N dir=$TMP/gen/apply r t
	echo "== 10. lint: $n migrations; and one large table vs a small one"
	gen_apply_files "$dir" "$n"
	local -a l_ms=() b_ms=() big_ms=() small_ms=()
	fresh_db b10_m
	as_pg "${PSQL[@]}" -d b10_m -f "$dir/register_scripts.sql" >/dev/null
	for ((r = 1; r <= LINT_REPS; r++)); do
		as_pg "${PSQL[@]}" -d b10_m -c '\timing on' -c 'SELECT count(*) FROM migrate_lint()' >"$TMP/out/b10_l.out" 2>&1
		l_ms+=("$(timings "$TMP/out/b10_l.out")")
		fresh_db b10_b
		checkpoint
		b_ms+=("$(wall "$TMP/out/b10_b.out" "${PSQL[@]}" -1 -d b10_b -f "$dir/baseline.sql")")
		drop_db b10_b
	done
	drop_db b10_m
	local lm bm
	lm=$(printf '%s\n' "${l_ms[@]}" | median)
	bm=$(printf '%s\n' "${b_ms[@]}" | median)
	verdict "lint of $n migrations <= 0.10x applying them" "$(ratio "$lm" "$bm")" 0.10 "$(ratio "$lm" "$bm")x"
	row "10 lint, migrate_lint() of the apply set" "$n migrations" "$(fmt "$lm") ms" "$(fmt "$bm") ms" "$(ratio "$lm" "$bm")" "<= 0.10" "$V"

	# the same five statements against a table of LINT_BIG_ROWS rows and one of 10
	local db rows
	for db in b10_big b10_small; do
		rows=$LINT_BIG_ROWS
		[[ $db == b10_small ]] && rows=10
		fresh_db "$db"
		q "$db" "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 10);
		         CREATE TABLE t (id bigint PRIMARY KEY, v int, w text);
		         INSERT INTO t SELECT g, g % 10 + 1, md5(g::text) FROM generate_series(1, $rows) g;
		         CREATE VIEW t_view AS SELECT id, w FROM t" >/dev/null
		q "$db" "VACUUM ANALYZE t, parent" >/dev/null
		q "$db" "SELECT migrate_add('1', 'risky', \$m\$
ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();
ALTER TABLE t ALTER COLUMN v TYPE bigint;
ALTER TABLE t ALTER COLUMN w SET NOT NULL;
ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (v) REFERENCES parent (id);
CREATE INDEX ON t (w);
UPDATE t SET v = v + 1;
ALTER TABLE t DROP COLUMN w;
\$m\$)" >/dev/null
	done
	for ((r = 1; r <= LINT_REPS; r++)); do
		for db in b10_big b10_small; do
			as_pg "${PSQL[@]}" -d "$db" -c '\timing on' -c 'SELECT count(*) FROM migrate_lint()' >"$TMP/out/b10_t.out" 2>&1
			t=$(timings "$TMP/out/b10_t.out")
			if [[ $db == b10_big ]]; then big_ms+=("$t"); else small_ms+=("$t"); fi
		done
	done
	[[ $(q b10_big "SELECT count(*) FROM migrate_lint() WHERE severity = 'error'") -ge 6 ]]
	for db in b10_big b10_small; do drop_db "$db"; done
	local gm sm
	gm=$(printf '%s\n' "${big_ms[@]}" | median)
	sm=$(printf '%s\n' "${small_ms[@]}" | median)
	verdict "lint of a $LINT_BIG_ROWS-row table <= 1.5x a 10-row one" "$(ratio "$gm" "$sm")" 1.5 "$(ratio "$gm" "$sm")x"
	row "10 lint, 7 statements on one table" "$LINT_BIG_ROWS vs 10 rows" "$(fmt "$gm") ms" "$(fmt "$sm") ms" "$(ratio "$gm" "$sm")" "<= 1.5" "$V"
	NOTES+=("10: medians of $LINT_REPS calls, statement time. First row: migrate_lint() of the $n pending migrations of benchmark 1 (registered once) vs applying the same SQL with \`psql -1 -f\` in a fresh database (end to end): what linting adds before an apply. Second row: migrate_lint() of one migration of seven risky statements (a volatile default, int -> bigint, SET NOT NULL, a foreign key without NOT VALID, CREATE INDEX, an UPDATE under those locks, a DROP COLUMN a view uses) against a VACUUM ANALYZEd table of $LINT_BIG_ROWS rows vs the same against one of 10 rows: the linter reads statistics, never the table.")
}

# ================================================================ 11. memory
# Peak resident memory (VmHWM of /proc/<pid>/status) of the backend that did
# the work, each case in a connection of its own, read at its end by the same
# session (and in the same transaction, with -1).  It counts the pages of
# shared_buffers the backend touched, as the baseline's does.
MEM_PEAK_SQL="SELECT 'peak_kb=' || (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+) kB'))[1]"
# peak_mb OUT PSQL-ARGS...: one psql connection running PSQL-ARGS (its
# results sent nowhere), then the peak of its backend, in MB.
peak_mb() {
	local out=$1
	shift
	as_pg "${PSQL[@]}" -At -o /dev/null "$@" -c '\o' -c "$MEM_PEAK_SQL" >"$out" 2>&1 ||
		{
			echo "run.sh: psql failed ($*):" >&2
			tail -n 20 "$out" >&2
			exit 1
		}
	sed -nE 's/^peak_kb=([0-9]+)$/\1/p' "$out" | awk '{ printf "%.1f\n", $1 / 1024 }'
}

bench_memory() {
	local big=$MEM_BIG_BYTES rows=$MEM_ROWS nf=$MEM_FILES dir=$TMP/gen/memory f i
	local idle base m d allow
	echo "== 11. memory: a $((big / 1048576)) MiB script, a SELECT of $rows rows, $nf files"
	mkdir -p "$dir/load"
	chmod 755 "$dir" "$dir/load"
	# the bound: a migrate call's peak stays within MEM_BOUND_MB of the same
	# work through psql -1 -f (plus, for a big script, MEM_TEXT_COPIES copies
	# of its text: see the header)
	mem_row() { # mem_row NAME SIZE MIGRATE_MB BASELINE_MB ALLOWANCE_MB
		d=$(awk -v a="$3" -v b="$4" 'BEGIN { printf "%+.1f", a - b }')
		verdict "11 $1: peak within $(fmt "$5") MB of psql's" "$d" "$5" "$(fmt "$3") MB, psql $(fmt "$4") MB, $d MB"
		row "11 $1" "$2" "$(fmt "$3") MB" "$(fmt "$4") MB" "$(ratio "$3" "$4")" "<= +$(fmt "$5") MB" "$V"
	}
	idle=$(peak_mb "$TMP/out/b11.out" -d bench_tpl -c 'SELECT 1')

	# (a) a big script: registered, then applied, vs psql -1 -f of the file
	f=$dir/big.sql
	gen_big_script "$big" >"$f"
	local big_mb big_n
	big_mb=$(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f", b / 1048576 }')
	big_n=$(wc -l <"$f")
	for d in b11_am b11_ab; do
		fresh_db "$d"
		q "$d" "CREATE TABLE parse_t (id int, name text, note text)" >/dev/null
	done
	checkpoint
	base=$(peak_mb "$TMP/out/b11.out" -1 -d b11_ab -f "$f")
	[[ $(q b11_ab "SELECT count(*) FROM parse_t") == "$big_n" ]]
	checkpoint
	m=$(peak_mb "$TMP/out/b11.out" -d b11_am -c "SELECT length(migrate_add('1', 'big script', pg_read_file('$f')))")
	allow=$(awk -v s="$big_mb" -v b="$MEM_BOUND_MB" -v c="$MEM_TEXT_COPIES" 'BEGIN { print b + c * s }')
	mem_row "migrate_add() of a big script" "$big_mb MB, $big_n statements" "$m" "$base" "$allow"
	checkpoint
	m=$(peak_mb "$TMP/out/b11.out" -d b11_am -c 'SELECT count(*) FROM migrate_apply()')
	[[ $(q b11_am "SELECT count(*) FROM parse_t") == "$big_n" ]]
	mem_row "migrate_apply() of that script" "$big_mb MB, $big_n statements" "$m" "$base" "$allow"
	drop_db b11_am
	drop_db b11_ab

	# (b) a migration that is a SELECT of many rows
	local sel="SELECT g, repeat('x', 100) FROM generate_series(1, $rows) g;"
	printf '%s\n' "$sel" >"$dir/select.sql"
	fresh_db b11_sm
	fresh_db b11_sb
	q b11_sm "SELECT migrate_add('1', 'a big select', \$s\$$sel\$s\$)" >/dev/null
	base=$(peak_mb "$TMP/out/b11.out" -1 -d b11_sb -f "$dir/select.sql")
	m=$(peak_mb "$TMP/out/b11.out" -d b11_sm -c 'SELECT count(*) FROM migrate_apply()')
	[[ $(q b11_sm "SELECT count(*) FROM migrate.applied") == 1 ]]
	mem_row "migrate_apply() of a SELECT of many rows" "$rows rows" "$m" "$base" "$MEM_BOUND_MB"
	drop_db b11_sm
	drop_db b11_sb

	# (c) many files: one migrate_add_scripts() call, migrate_load() of the
	# same files in a directory, then applying them, vs psql -1 -f of them all
	gen_apply_files "$dir/files" "$nf"
	for ((i = 1; i <= nf; i++)); do cp "$dir/files/m_$i.sql" "$dir/load/V${i}__t_$i.sql"; done
	chmod 644 "$dir/load"/*.sql
	fresh_db b11_fm
	fresh_db b11_fl
	fresh_db b11_fb
	checkpoint
	base=$(peak_mb "$TMP/out/b11.out" -1 -d b11_fb -f "$dir/files/baseline.sql")
	checkpoint
	m=$(peak_mb "$TMP/out/b11.out" -d b11_fm -f "$dir/files/register_scripts.sql")
	mem_row "one migrate_add_scripts() of many files" "$nf files" "$m" "$base" "$MEM_BOUND_MB"
	checkpoint
	m=$(peak_mb "$TMP/out/b11.out" -d b11_fl -c "SELECT count(*) FROM migrate_load('$dir/load')")
	mem_row "migrate_load() of a directory of them" "$nf files" "$m" "$base" "$MEM_BOUND_MB"
	[[ $(q b11_fl "SELECT count(*) FROM migrate.migrations") == "$nf" ]]
	checkpoint
	m=$(peak_mb "$TMP/out/b11.out" -d b11_fm -c 'SELECT count(*) FROM migrate_apply()')
	[[ $(q b11_fm "SELECT count(*) FROM migrate.applied") == "$nf" ]]
	mem_row "migrate_apply() of them" "$nf migrations" "$m" "$base" "$MEM_BOUND_MB"
	for d in b11_fm b11_fl b11_fb; do drop_db "$d"; done
	NOTES+=("11: peak resident memory (VmHWM of /proc/<pid>/status, read by the session itself at its end) of the backend of one fresh connection per case and side; it counts the pages of shared_buffers that backend touched. A fresh connection that runs \`SELECT 1\` peaks at $(fmt "$idle") MB. migrate = the call shown (the big script read with pg_read_file(); the files as one \`migrate_add_scripts()\` call sent by psql, or \`migrate_load()\` of a directory); baseline = \`psql -1 -f\` of the same SQL (the big script, the SELECT, all the files in one), in a fresh database. Bound: migrate's peak at most $MEM_BOUND_MB MB above psql's, plus $MEM_TEXT_COPIES times the text for the big script (its copies while it is registered: the argument, its C string, the value bound to the INSERT, the stored tuple; applying it holds one).")
}
MEM_BOUND_MB=32 MEM_TEXT_COPIES=4

START=$EPOCHSECONDS
# MIGRATE_BENCH_ONLY: a comma-separated list of the benchmarks to run (default all)
want() { [[ -z ${MIGRATE_BENCH_ONLY:-} || ",${MIGRATE_BENCH_ONLY// /}," == *",$1,"* ]]; }
if want 1 || want 8; then bench_apply; fi
if want 2; then bench_status; fi
if want 3; then bench_expect; fi
if want 4; then bench_fk; fi
if want 5; then bench_checksum; fi
if want 6; then bench_graph; fi
if want 7; then bench_parse; fi
if want 8; then bench_job; fi
if want 9; then bench_batch; fi
if want 10; then bench_lint; fi
if want 11; then bench_memory; fi
ELAPSED=$((EPOCHSECONDS - START))
BUILD_WARNING=""
if [[ $(install_stamp) != "$INSTALL_STAMP" ]]; then
	BUILD_WARNING="**WARNING: the installed extension (migrate.so or its SQL script) changed during this run, so the figures mix two builds; run the benchmarks again.**"
	echo "run.sh: WARNING: the installed extension changed during the run; the figures mix two builds" >&2
fi

# ---------------------------------------------------------------- report
{
	echo "# migrate benchmark results"
	echo
	echo "Generated by \`bash test/bench/run.sh$QUICK_FLAG\`"
	echo "(mode: $MODE; the whole run took ${ELAPSED} s). Do not edit: run the script again."
	echo
	echo "Machine: $(nproc) cores ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)),"
	echo "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; PostgreSQL $PGVERSION;"
	echo "migrate $MIGRATE_VERSION ($MIGRATE_BUILD)."
	echo "Cluster: defaults except shared_buffers = 256MB, max_wal_size = 4GB, synchronous_commit = off"
	echo "(the same for migrate and the baseline). Medians of $APPLY_REPS/$EXP_REPS/$FK_REPS/$SEED_REPS/$PARSE_REPS ($PARSE_BIG_REPS for the big script) repetitions"
	echo "(benchmarks 1/3/4/5/6); benchmark 2: median of $STATUS_CALLS calls timed with clock_timestamp() on the server."
	echo
	[[ -z $BUILD_WARNING ]] || printf '%s\n\n' "$BUILD_WARNING"
	echo "| benchmark | size | migrate | baseline | ratio | target | met |"
	echo "|---|---|---|---|---|---|---|"
	for line in "${ROWS[@]}"; do
		IFS='|' read -r a b c d e f g <<<"$line"
		echo "| $a | $b | $c | $d | $e | $f | $g |"
	done
	echo
	echo "Targets:"
	echo
	for v in "${VERDICTS[@]}"; do echo "- $v"; done
	echo
	echo "Notes:"
	echo
	echo "- 1: migrate = \`psql -c 'SELECT count(*) FROM migrate_apply()'\` after registration; baseline = the same SQL in one file, \`psql -1 -f\`; both end to end, fresh database per repetition. Registration is not included in the apply time."
	echo "- 2: baseline = a plain \`SELECT * FROM migrate.migrations LEFT JOIN migrate.applied ... ORDER BY version_key\`. Growth: time ratio between sizes; exponent = log(t3/t1)/log(n3/n1), 1 is linear, 2 quadratic."
	echo "- 3: migrate.verify_constraints = off for this benchmark, so only the expectations are compared. migrate = migrate_apply() (autocommit); baseline = BEGIN; the same INSERT; count(*) of both tables; COMMIT (sum of statement times). Second row: the migration also UPDATEs one row of the \"=\" table (the baseline too), so migrate cannot skip counting that table: it counts it before and after."
	echo "- 4: migrate = migrate_apply() of a migration adding the NOT VALID foreign key (re-check scans every row), in a transaction rolled back; baseline = ALTER TABLE child VALIDATE CONSTRAINT child_fk, rolled back. Nothing subtracted."
	echo "- 6: chain = migration g requires g + 1 (the plan runs them newest first); dense = migration g requires g - 1, g - 2 and, for even g, g - 3. Each size in a fresh database: one \`migrate_add_scripts()\` call of all files, then \`migrate_plan()\`, then \`migrate_apply()\` (statement times). Growth exponent = log(t2/t1)/log(n2/n1): 1 is linear, 2 quadratic."
	for v in "${NOTES[@]}"; do echo "- $v"; done
} | as_pg tee "$TMP/results.md" >/dev/null
cp "$TMP/results.md" "$RESULTS_MD"
((EUID != 0)) || chown --reference="$REPO" "$RESULTS_MD" 2>/dev/null || true

echo
echo "== results ($MODE, ${ELAPSED} s; written to test/bench/results.md)"
column -t -s '|' <(printf 'benchmark|size|migrate|baseline|ratio|target|met\n'; printf '%s\n' "${ROWS[@]}")
echo
printf '%s\n' "${VERDICTS[@]}"
