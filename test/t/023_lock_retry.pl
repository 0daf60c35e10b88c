# Lock waits bounded by migrate.lock_timeout and retried (src/lockwait.c),
# and lint refusals (src/lint.c lint_refuse()), seen from sessions:
#
#  A. The production outage, and how migrate avoids it: session H ("h_holder")
#     holds a long transaction that read table t.  An ALTER TABLE t ADD
#     COLUMN migration run by migrate_apply() with migrate.lock_timeout =
#     '300ms' and migrate.lock_retries = 5 waits 300 ms, is rolled back to its
#     start (its CREATE TABLE too: the next try creates it again) and retried
#     after a jittered backoff, each time with a NOTICE naming H (pid, role,
#     application, state, since).  Two reader sessions loop on SELECT count(*)
#     FROM t meanwhile, each read timed: the longest read waits about the lock
#     timeout (< 3x it).  The same ALTER TABLE by plain psql (no lock_timeout)
#     makes the readers queue behind it until H ends: H is kept until a reader
#     has been queued 2 s, and that longest wait is several times (> 3x)
#     migrate's.  Once H commits, the migration succeeds on its next try, with
#     one history row.
#  B. The last try fails: H keeps its lock; with lock_retries = 1 the call
#     fails with 55P03, the DETAIL naming H (pid, role, application) and the
#     number of tries; a shorter session lock_timeout (100ms) stays and is
#     named; nothing of the migration is kept (its table and column absent,
#     migrate_status() pending).
#  C. CALL migrate_run() (default lock_retries, 3) and a job (migrate_start(),
#     CALL migrate_wait()) retry the same way; H ends after the second try:
#     applied.  A job whose H never ends (lock_retries = 1) fails with 55P03,
#     migrate.jobs.error_sqlstate and error_detail naming H; once H is gone,
#     CALL migrate_run() applies it.  The backoffs seen are jittered (not all
#     exactly 250 ms * 2^k).  RENAME COLUMN, LOCK TABLE, a foreign key
#     referencing t and DROP TABLE behind H name H too.
#  D. A CREATE INDEX (no CONCURRENTLY) on an analysed table of 120,000 rows
#     (default migrate.lint_large_rows, 100,000) is refused by
#     migrate_apply(), CALL migrate_run() and migrate_start() (0A000, the
#     DETAIL naming migration, statement, line, rule), nothing applied and no
#     job queued; with SET migrate.lint = 'warn' a WARNING and it runs; with
#     "-- migrate:allow index-without-concurrently" on the line before, it runs
#     without a word.  An allow of another rule, or one not on the line just
#     before, allows nothing.  The error starts at migrate.lint_large_rows rows
#     (set to the table's 120000: refused; 120001: a warning, applied).
#
# Every wait is a poll (of pg_stat_activity, pg_locks.waitstart or of the
# NOTICEs a session has received), bounded by $WAIT_S seconds so that a broken
# feature fails quickly instead of hanging.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $LOCK_MS = 300;    # migrate.lock_timeout of the scenarios
my $WAIT_S  = 30;     # bound of every wait that depends on the feature

my $node = PostgreSQL::Test::Cluster->new('lock_retry');
$node->init;
# no autovacuum: its locks on t would be holders of their own
$node->append_conf('postgresql.conf', "fsync = off\nautovacuum = off\n");
$node->start;

sub query { return scalar $node->safe_psql('postgres', $_[0]); }

# Run SQL in a new session, errors with their SQLSTATE; (exit code, stdout, stderr).
sub run_sql
{
	my ($sql) = @_;
	my ($stdout, $stderr, $timed_out);
	my $rc = $node->psql(
		'postgres', $sql,
		stdout        => \$stdout,
		stderr        => \$stderr,
		on_error_stop => 1,
		timeout       => $WAIT_S,
		timed_out     => \$timed_out,
		extra_params  => [ '-v', 'VERBOSITY=verbose' ]);
	$stderr .= "\n(psql timed out after $WAIT_S s)" if $timed_out;
	return ($rc, $stdout // '', $stderr // '');
}

# poll_query_until, bounded by $WAIT_S.
sub wait_until
{
	my ($sql) = @_;
	local $PostgreSQL::Test::Utils::timeout_default = $WAIT_S;
	return $node->poll_query_until('postgres', $sql);
}

# The first non-empty value $sql returns, polled every 20 ms ('' after $WAIT_S).
sub poll_value
{
	my ($sql) = @_;
	my $deadline = time + $WAIT_S;
	while (time < $deadline)
	{
		my $v = query($sql);
		return $v if $v ne '';
		usleep(20_000);
	}
	return '';
}

# Pump background session $s until its stderr (its NOTICEs) matches $re.
sub wait_stderr
{
	my ($s, $re) = @_;
	my $deadline = time + $WAIT_S;
	while ($s->{stderr} !~ $re)
	{
		if (time > $deadline || !$s->{run}->pumpable)
		{
			diag("no $re in the session's stderr:\n$s->{stderr}");
			return 0;
		}
		$s->{run}->pump_nb;
		usleep(20_000);
	}
	return 1;
}

# The retry NOTICEs of migration $v in $text: a list of [try, of, backoff ms, holders].
sub retries
{
	my ($text, $v) = @_;
	my @r;
	while ($text =~
		/NOTICE:  (?:00000: )?migration \Q$v\E could not get a lock in time: rolled back to its start, try (\d+) of (\d+) in (\d+) ms\nDETAIL:  canceling statement due to lock timeout(?:; locks on its tables are held by: ([^\n]*))?\n/g
	  )
	{
		push @r, [ $1, $2, $3, $4 // '(no holders named)' ];
	}
	return @r;
}

my @backoffs;    # [try, ms] of every retry NOTICE seen, for the jitter check
my $h_named;     # how a NOTICE or DETAIL names H (set once H is connected)

# Checks of the retry NOTICEs of one call: tries 2, 3, ... of $of, each
# backoff in 250 ms * 2^(try - 2) * [0.5, 1.5), each naming H.
sub check_retries
{
	my ($what, $text, $v, $of, $min) = @_;
	my @r = retries($text, $v);
	cmp_ok(scalar @r, '>=', $min, "$what: at least $min retry NOTICEs") or diag($text);
	is(join(',', map { $_->[0] } @r), join(',', 2 .. @r + 1), "$what: the NOTICEs count the tries 2, 3, ...");
	is(join(',', map { $_->[1] } @r), join(',', ($of) x @r), "$what: ... of $of (lock_retries + 1)");
	my @off = grep {
		my $nominal = 250 * 2**($_->[0] - 2);
		$_->[2] < 0.5 * $nominal || $_->[2] >= 1.5 * $nominal
	} @r;
	is(scalar @off, 0, "$what: each backoff is 250 ms, 500 ms, ... times 0.5 to 1.5")
	  or diag(join(', ', map { "try $_->[0] in $_->[2] ms" } @off));
	push @backoffs, map { [ $_->[0], $_->[2] ] } @r;
	my @unnamed = grep { $_->[3] !~ $h_named } @r;
	is(scalar @unnamed, 0, "$what: each NOTICE names H: its pid, role, application, state and since")
	  or diag(join("\n", map { $_->[3] } @unnamed));
	return @r;
}

sub column_exists
{
	my ($col) = @_;
	return query(
		"SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = '$col' AND NOT attisdropped");
}

sub status_of { return query("SELECT state FROM migrate_status() WHERE version = '$_[0]'"); }

sub job_row
{
	my ($id, $cols) = @_;
	return query("SELECT $cols FROM migrate.jobs WHERE id = $id");
}

$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION migrate;
	CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
	INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 10000) g;
	ANALYZE t;
	-- each read of t by a reader: when it started, how long it took
	CREATE TABLE read_log (phase text, reader int, started timestamptz, took interval);
	CREATE TABLE reader_stop (phase text);
	CREATE PROCEDURE read_loop(p text, r int) LANGUAGE plpgsql AS $$
	DECLARE
	    t0 timestamptz;
	    n bigint;
	BEGIN
	    LOOP
	        EXIT WHEN EXISTS (SELECT FROM reader_stop WHERE phase = p);
	        t0 := clock_timestamp();
	        SELECT count(*) INTO n FROM t;
	        INSERT INTO read_log VALUES (p, r, t0, clock_timestamp() - t0);
	        COMMIT;    -- no lock on t kept between reads
	        PERFORM pg_sleep(0.02);
	    END LOOP;
	END $$;
});
my $role = query('SELECT current_user');

# H: the long transaction that read t.
my $h = $node->background_psql('postgres');
$h->query_safe(q{SET application_name = 'h_holder'});
my $hpid = $h->query_safe('SELECT pg_backend_pid()');
sub h_begin { $h->query_safe('BEGIN; SELECT count(*) FROM t;'); }
sub h_end   { $h->query_safe('COMMIT'); }
$h_named = qr/pid $hpid \(role \Q$role\E, application "h_holder", idle in transaction since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d, holding AccessShareLock on t\)/;

my @readers = map { $node->background_psql('postgres') } 1 .. 2;
my $reader_pids = join(',', map { $_->query_safe('SELECT pg_backend_pid()') } @readers);

sub readers_start
{
	my ($phase) = @_;
	for my $i (0 .. $#readers)
	{
		$readers[$i]->query_until(qr/reading/, "\\echo reading\nCALL read_loop('$phase', $i);\n");
	}
	return wait_until("SELECT count(DISTINCT reader) = 2 FROM read_log WHERE phase = '$phase'");
}

sub readers_stop
{
	my ($phase) = @_;
	query("INSERT INTO reader_stop VALUES ('$phase')");
	$_->query_safe('SELECT 1') for @readers;    # returns once the CALL has ended
}

# (longest wait in s, number of reads) of a phase
sub reads_of
{
	my ($phase) = @_;
	return split /\|/,
	  query("SELECT extract(epoch FROM max(took)), count(*) FROM read_log WHERE phase = '$phase'");
}

# ====================================================================
# A. migrate_apply() retries; readers wait at most about lock_timeout
# ====================================================================
query(q{SELECT migrate_add('001', 'audit table and c1',
        E'CREATE TABLE t_a (id int);\nALTER TABLE t ADD COLUMN c1 int;')});
is(query(q{SELECT count(*) FROM migrate_lint() WHERE severity = 'error'}), '0',
	'001 has no lint error: nothing refuses it');

h_begin();
ok(readers_start('migrate'), 'H holds its transaction; both readers read t');

my $m = $node->background_psql('postgres', on_error_stop => 0);
my $mpid = $m->query_safe('SELECT pg_backend_pid()');
$m->query_safe("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 5");
$m->query_until(qr/applying/, "\\echo applying\nSELECT version, action FROM migrate_apply();\n");
ok(wait_until("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $mpid"),
	'migrate_apply(): the ALTER TABLE of 001 waits for the lock H holds');
my $t_first_wait = time;
ok(wait_stderr($m, qr/try 4 of 6/), 'its lock wait times out, it is rolled back and retried: 4th try announced');
my $migrate_held = time - $t_first_wait;
h_end();

my ($m_out) = $m->query("SELECT 'done'");
my $m_err = $m->{stderr};
readers_stop('migrate');
is($m_out, "001|applied\ndone", 'H committed: 001 is applied by the same migrate_apply() call');
unlike($m_err, qr/ERROR/, 'no error');
my @r = check_retries('migrate_apply()', $m_err, '001', 6, 3);
cmp_ok(scalar @r, '<', 5, 'it succeeded on the try after H ended, before its last try');
like($m_err, qr/NOTICE:  \[1\/1\] 001 audit table and c1 \.\.\. ok \d+ ms/, 'progress NOTICE: 001 ok');
is(query(q{SELECT to_regclass('t_a') IS NOT NULL}) . column_exists('c1'), 't1',
	'its CREATE TABLE (rolled back at each retry, created again) and its column are there');
is( query(
		q{SELECT string_agg(action || '=' || outcome, ',' ORDER BY id) FROM migrate.history WHERE version = '001' AND action <> 'register'}
	),
	'apply=ok',
	'one history row: the failed tries left none');
is(status_of('001'), 'applied', 'migrate_status(): 001 applied');

my ($m_wait, $m_reads) = reads_of('migrate');
note sprintf('migrate_apply(): H held the lock %.2f s after the ALTER first waited; %d reads, the longest %.3f s',
	$migrate_held, $m_reads, $m_wait);
cmp_ok($m_reads, '>=', 10, "the readers kept reading meanwhile ($m_reads reads)");
cmp_ok($m_wait, '>', 0.1,
	"readers did queue behind the waiting ALTER TABLE (longest read $m_wait s): the measure sees lock waits");
cmp_ok($m_wait, '<', 3 * $LOCK_MS / 1000,
	"with migrate, no reader waited longer than 3x migrate.lock_timeout (longest $m_wait s)");
cmp_ok($migrate_held, '>', 3 * $m_wait,
	sprintf('H held its lock %.2f s meanwhile: more than 3x the longest reader wait', $migrate_held));

# The same ALTER TABLE by plain psql: readers queue until H ends.
h_begin();
ok(readers_start('plain'), 'H holds a new transaction; both readers read t');
my $p = $node->background_psql('postgres', on_error_stop => 0);
my $ppid = $p->query_safe('SELECT pg_backend_pid()');
$p->query_safe('SET lock_timeout = 0');
$p->query_until(qr/altering/, "\\echo altering\nALTER TABLE t ADD COLUMN p1 int;\n");
ok(wait_until("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $ppid"),
	'plain psql: ALTER TABLE waits for the lock H holds');
ok( wait_until(
		"SELECT count(*) > 0 FROM pg_locks WHERE pid IN ($reader_pids) AND NOT granted
		    AND waitstart < clock_timestamp() - interval '2 s'"),
	'a reader has been queued behind it for 2 s');
h_end();
$p->query_safe('SELECT 1');    # the ALTER has ended
like($p->{stderr}, qr/^$/, 'plain psql: the ALTER TABLE succeeded once H ended');
$p->quit;
readers_stop('plain');
my ($p_wait, $p_reads) = reads_of('plain');
note sprintf('plain psql: %d reads, the longest %.3f s', $p_reads, $p_wait);
cmp_ok($p_wait, '>', 3 * $m_wait,
	"plain psql: the longest reader wait ($p_wait s) is more than 3x migrate's ($m_wait s)");

# ====================================================================
# B. the last try fails: 55P03 naming H, nothing kept
# ====================================================================
query(q{SELECT migrate_add('002', 'b table and c2', E'CREATE TABLE t_b (id int);\nALTER TABLE t ADD COLUMN c2 int;')});
h_begin();
my ($rc, $out, $err) =
  run_sql("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 1; SELECT * FROM migrate_apply();");
isnt($rc, 0, 'lock_retries = 1, H keeps its lock: migrate_apply() fails');
like($err, qr/ERROR:  55P03: canceling statement due to lock timeout\n/, '... with 55P03');
like(
	$err,
	qr/\nDETAIL:  [^\n]*Migration 002 was tried 2 times, each statement waiting at most $LOCK_MS ms for a lock[^\n]*Locks on its tables are held by: [^\n]*$h_named/,
	'its DETAIL says how many tries, how long each waited, and names H (pid, role, application)');
check_retries('migrate_apply(), lock_retries = 1', $err, '002', 2, 1);
is(scalar(() = $err =~ /could not get a lock in time/g), 1, 'one retry, no more');

($rc, $out, $err) = run_sql(
	"SET lock_timeout = '100ms'; SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 1;
	 SELECT * FROM migrate_apply();");
like(
	$err,
	qr/ERROR:  55P03: .*\nDETAIL:  [^\n]*Migration 002 was tried 2 times, each statement waiting at most 100 ms for a lock/,
	'a shorter session lock_timeout (100ms) stays: the DETAIL says 100 ms');
is( query(q{SELECT to_regclass('t_b') IS NULL}) . column_exists('c2'),
	't0', 'nothing of 002 is kept: neither its table nor its column');
is(status_of('002'), 'pending', 'migrate_status(): 002 pending');

# ====================================================================
# C. CALL migrate_run() and jobs retry too
# ====================================================================
# H still holds its transaction of B.
$m->{stderr} = '';
$m->query_safe('RESET migrate.lock_retries');    # the default: 3
$m->query_until(qr/running/, "\\echo running\nCALL migrate_run();\n");
ok(wait_stderr($m, qr/try 3 of 4/), 'CALL migrate_run(), default lock_retries: 002 retried twice');
h_end();
$m->query("SELECT 'done'");
$m_err = $m->{stderr};
unlike($m_err, qr/ERROR/, 'H ended: no error');
check_retries('CALL migrate_run()', $m_err, '002', 4, 2);
like($m_err, qr/NOTICE:  \[1\/1\] 002 b table and c2 \.\.\. ok \d+ ms/, 'progress NOTICE: 002 ok');
like($m_err, qr/NOTICE:  migrate_run: 1 migration applied/, 'migrate_run: 1 migration applied');
is(query(q{SELECT to_regclass('t_b') IS NOT NULL}) . column_exists('c2') . status_of('002'),
	't1applied', '002 applied: its table and column are there');
$m->quit;

# A job, default lock_retries: H ends after the job's second try began.
query(q{SELECT migrate_add('003', 'c3', 'ALTER TABLE t ADD COLUMN c3 int;')});
h_begin();
my $job = query("SET migrate.lock_timeout = '${LOCK_MS}ms'; SELECT migrate_start()");
my $job_wait = q{SELECT l.waitstart FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	 WHERE a.backend_type = 'migrate job' AND l.relation = 't'::regclass AND NOT l.granted
	   AND l.waitstart IS NOT NULL};
my $ws1 = poll_value($job_wait);
isnt($ws1, '', "job $job: its worker waits for the lock H holds");
my $ws2 = poll_value("$job_wait AND l.waitstart > '$ws1'");
isnt($ws2, '', "job $job: that wait timed out and a new try waits again ($ws1, then $ws2)");
is(job_row($job, 'state'), 'running', 'the job is still running meanwhile');
h_end();
($rc, $out, $err) = run_sql("CALL migrate_wait($job)");
is($out, 'succeeded|1|1', 'H ended: CALL migrate_wait() returns (succeeded, 1, 1)');
is(job_row($job, q{state || '|' || coalesce(error_sqlstate, '-')}), 'succeeded|-', 'migrate.jobs: succeeded, no error');
is(column_exists('c3') . status_of('003'), '1applied', '003 applied: column c3 is there');

# A job whose H never ends: lock_retries = 1, it fails.
query(q{SELECT migrate_add('004', 'd table and c4', E'CREATE TABLE t_d (id int);\nALTER TABLE t ADD COLUMN c4 int;')});
h_begin();
$job = query("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 1; SELECT migrate_start()");
($rc, $out, $err) = run_sql("CALL migrate_wait($job)");
isnt($rc, 0, "job $job, H keeps its lock: CALL migrate_wait() raises the job's error");
like($err, qr/ERROR:  55P03: /, '... 55P03');
is(job_row($job, q{state || '|' || error_sqlstate}), 'failed|55P03', 'migrate.jobs: failed, error_sqlstate 55P03');
like(
	job_row($job, 'error_detail'),
	qr/Migration 004 was tried 2 times, each statement waiting at most $LOCK_MS ms for a lock[^\n]*Locks on its tables are held by: [^\n]*$h_named/,
	'migrate.jobs.error_detail: tried 2 times, H named (pid, role, application)');
is(query(q{SELECT to_regclass('t_d') IS NULL}) . column_exists('c4'), 't0', 'nothing of 004 is kept');
h_end();
($rc, $out, $err) = run_sql('CALL migrate_run()');
is($rc . column_exists('c4') . status_of('004'), '01applied', 'H gone: CALL migrate_run() applies 004')
  or diag($err);

# Statements that lock a table they do not write (RENAME, DROP TABLE, LOCK
# TABLE, the referenced table of a new foreign key): the lock
# wait is retried, and the holders of those tables are named too.
$node->safe_psql('postgres', q{CREATE TABLE IF NOT EXISTS child5 (id int, t_id int)});
for my $case (
	[ 'ALTER TABLE t RENAME COLUMN c4 TO c4_renamed;', 'RENAME COLUMN' ],
	[ 'LOCK TABLE t IN ACCESS EXCLUSIVE MODE;', 'LOCK TABLE' ],
	[ 'ALTER TABLE t ADD CONSTRAINT t_id_unique UNIQUE (id); ALTER TABLE child5 ADD FOREIGN KEY (t_id) REFERENCES t (id);', 'a foreign key to t' ],
	[ 'DROP TABLE t;', 'DROP TABLE' ])
{
	my ($sql, $what) = @$case;
	query(qq{SELECT migrate_add('005', 'locks t', \$m\$$sql\$m\$)});
	h_begin();
	($rc, $out, $err) =
	  run_sql("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 1; SET migrate.lint = off; SELECT * FROM migrate_apply();");
	like($err, qr/ERROR:  55P03: .*\nDETAIL:  [^\n]*Migration 005 was tried 2 times/,
		"$what behind H, lock_retries = 1: 55P03 after 2 tries");
	like($err, qr/\nDETAIL:  [^\n]*Locks on its tables are held by: [^\n]*$h_named/, "... the DETAIL names H");
	h_end();
	query(q{SELECT migrate_remove('005')});
}

# The backoffs are jittered: not all of them the nominal 250 ms * 2^k.
my @exact = grep { $_->[1] == 250 * 2**($_->[0] - 2) } @backoffs;
cmp_ok(scalar @backoffs, '>=', 6, scalar(@backoffs) . ' backoffs seen');
cmp_ok(scalar @exact, '<', scalar @backoffs, 'the backoffs are jittered: not all exactly 250 ms, 500 ms, ...')
  or diag(join(', ', map { "try $_->[0] in $_->[1] ms" } @backoffs));

$h->quit;
$_->quit for @readers;

# ====================================================================
# D. lint refusals
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE big (id int PRIMARY KEY, col int, col2 int);
	INSERT INTO big SELECT g, g % 100, g % 7 FROM generate_series(1, 120000) g;
	ANALYZE big;
});
is(query("LOAD 'migrate'; SHOW migrate.lint_large_rows"), '100000', 'migrate.lint_large_rows is its default, 100000');

my @callers = (
	[ 'migrate_apply()',    'SELECT version, action FROM migrate_apply();' ],
	[ 'CALL migrate_run()', 'CALL migrate_run();' ],
	[ 'migrate_start()',    "SELECT migrate_start() AS job \\gset\nCALL migrate_wait(:job);" ]);
my $n = 0;
for my $c (@callers)
{
	my ($what, $call) = @$c;
	$n++;
	my ($v, $va) = ("0${n}0", "0${n}1");
	my $jobs = query('SELECT count(*) FROM migrate.jobs');

	query(qq{SELECT migrate_add('$v', 'index col', E'-- an index on col\\nCREATE INDEX big_$v ON big (col);')});
	is(query(qq{SELECT rule || '|' || severity || '|' || line || '|' || allowed FROM migrate_lint('$v')}),
		'index-without-concurrently|error|2|false', "$v: migrate_lint() finds an error on line 2");
	($rc, $out, $err) = run_sql($call);
	isnt($rc, 0, "$what refuses $v");
	like($err, qr/ERROR:  0A000: \Q$what\E refused: 1 lint error in the pending migrations\n/,
		"$what: 0A000, refused: 1 lint error");
	like(
		$err,
		qr/\nDETAIL:  Migration $v, statement 1, line 2, index-without-concurrently: CREATE INDEX builds over every row of public\.big \(120000 rows/,
		"$what: the DETAIL names the migration, statement, line and rule");
	is(query(qq{SELECT to_regclass('big_$v') IS NULL}) . status_of($v), 'tpending', "$what: nothing applied");
	is(query('SELECT count(*) FROM migrate.jobs'), $jobs, "$what: no job queued");

	($rc, $out, $err) = run_sql("SET migrate.lint = 'warn';\n$call");
	is($rc, 0, "$what with migrate.lint = 'warn' runs $v") or diag($err);
	like(
		$err,
		qr/WARNING:  01000: migration $v, statement 1, line 2: CREATE INDEX builds over every row of public\.big[^\n]*\nDETAIL:  Lint rule index-without-concurrently \(error\); migrate\.lint = 'warn' lets it run\./,
		"$what: a WARNING instead, naming the migration, line and rule");
	is(query(qq{SELECT to_regclass('big_$v') IS NOT NULL}) . status_of($v), 'tapplied', "$what: $v applied");

	query(qq{SELECT migrate_add('$va', 'allowed index',
	        E'SELECT 1;\\n-- migrate:allow index-without-concurrently\\nCREATE INDEX big_$va ON big (col2);')});
	is(query(qq{SELECT rule || '|' || severity || '|' || line || '|' || allowed FROM migrate_lint('$va')}),
		'index-without-concurrently|error|3|true', "$va: the finding is listed, allowed");
	($rc, $out, $err) = run_sql($call);
	is($rc, 0, "$what runs $va, allowed by the comment on the line before") or diag($err);
	unlike($err, qr/WARNING|refused/, "$what: no WARNING, no refusal for $va");
	is(query(qq{SELECT to_regclass('big_$va') IS NOT NULL}) . status_of($va), 'tapplied', "$what: $va applied");
}

# An allow of another rule, or above another statement, allows nothing
# (blank and comment lines between an allow and its statement are fine:
# 21_lint shows that).
for my $case (
	[ 'another rule',              '-- migrate:allow table-rewrite\\nCREATE INDEX big_x ON big (col);' ],
	[ 'the line before the other', '-- migrate:allow index-without-concurrently\\nSELECT 1;\\nCREATE INDEX big_x ON big (col);' ])
{
	my ($what, $up) = @$case;
	query(qq{SELECT migrate_add('090', 'misplaced allow', E'$up')});
	($rc, $out, $err) = run_sql('SELECT * FROM migrate_apply();');
	like($err, qr/ERROR:  0A000: migrate_apply\(\) refused: 1 lint error/, "an allow with $what: refused");
	query(q{SELECT migrate_remove('090')});
}
is(query(q{SELECT to_regclass('big_x') IS NULL}), 't', 'big_x never built');

# The threshold: an error from migrate.lint_large_rows rows on (big has 120000).
query(q{SELECT migrate_add('091', 'index col2', 'CREATE INDEX big_y ON big (col2);')});
($rc, $out, $err) = run_sql("SET migrate.lint_large_rows = 120000;\nSELECT * FROM migrate_apply();");
like($err, qr/ERROR:  0A000: migrate_apply\(\) refused: 1 lint error/,
	'migrate.lint_large_rows = 120000, the table has 120000 rows: refused');
($rc, $out, $err) = run_sql("SET migrate.lint_large_rows = 120001;\nSELECT version, action FROM migrate_apply();");
is($out, '091|applied', 'migrate.lint_large_rows = 120001: below it, a warning finding, not refused: applied')
  or diag($err);

# A retried migration that PREPAREs: a PREPARE outlives the rollback of a
# try, so what the failed try prepared is deallocated before the next one
# (else: prepared statement "p095" already exists).
query(q{SELECT migrate_add('095', 'prepares',
        E'PREPARE p095 AS SELECT 1;\nALTER TABLE t ADD COLUMN c95 int;\nEXECUTE p095;\nDEALLOCATE p095;')});
h_begin();
my $pm = $node->background_psql('postgres', on_error_stop => 0);
$pm->query_safe("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 5");
$pm->query_until(qr/applying/, "\\echo applying\nSELECT version, action FROM migrate_apply();\n");
ok(wait_stderr($pm, qr/try 2 of 6/), 'a migration that PREPAREs waits for the lock H holds and is retried');
h_end();
my ($pm_out) = $pm->query("SELECT 'done'");
unlike($pm->{stderr}, qr/ERROR/, '... the retry does not fail on its own PREPARE');
is($pm_out, "095|applied\ndone", '... and it is applied');
is(scalar $pm->query(q{SELECT count(*) FROM pg_prepared_statements}), '0', '... leaving no prepared statement');
$pm->quit;

# A script that sets its own search_path: the holders of its tables are
# found under that path (not the caller's), in the NOTICE and the error.
query(q{CREATE SCHEMA own_path; CREATE TABLE own_path.ht (id int)});
query(q{SELECT migrate_add('096', 'own path', E'SET search_path = own_path;\nALTER TABLE ht ADD COLUMN c int;')});
$h->query_safe('BEGIN; SELECT count(*) FROM own_path.ht;');
my ($op_rc, $op_out, $op_err) =
  run_sql("SET migrate.lock_timeout = '${LOCK_MS}ms'; SET migrate.lock_retries = 1; SELECT * FROM migrate_apply();");
h_end();
like($op_err, qr/NOTICE: .*migration 096 could not get a lock in time.*\nDETAIL:  .*held by: pid \d+ \(.*holding AccessShareLock on own_path\.ht\)/,
	'a script with its own search_path: the holder of its table is named in the NOTICE');
like($op_err, qr/ERROR: .*\nDETAIL: .*Locks on its tables are held by: pid \d+ \(.*on own_path\.ht\)/s, '... and in the error');

done_testing();
