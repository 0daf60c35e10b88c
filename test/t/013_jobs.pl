# Background jobs (migrate_start and its worker), seen from sessions:
#
#  - a CREATE INDEX CONCURRENTLY migration applied by a job on a table of
#    300,000 rows while another session keeps writing to it: no write waits
#    long, the index ends valid; a session in CALL migrate_wait() during the
#    build holds no snapshot the build waits for (no deadlock) and gets one
#    progress NOTICE per step;
#  - a job started from a psql that exits at once still finishes;
#  - a session that starts a job and looks at it at once (in the same
#    transaction, or with CALL migrate_wait) is not told that the job "lost
#    its worker", and the job runs once;
#  - a failing concurrent unique index build: no invalid index is left, the
#    job is failed with 23505 (migrate.jobs, CALL migrate_wait), the
#    migration failed; once the duplicate is gone, a new job resumes at the
#    failed statement and succeeds;
#  - cancel of a concurrent build waiting for an older snapshot: cancelled
#    (57014), its invalid index dropped, built by the next job;
#  - pause, resume and cancel of a job running a statement, by its role and
#    by a member of it; a second migrate_start() returns the running job;
#    another role gets 42501 from pause, resume, cancel and wait;
#    CALL migrate_wait() refuses a transaction block (25001) and returns at
#    its timeout with the job's state;
#  - refusals: a NOLOGIN role (28000), a role without CONNECT on the
#    database (28000), a standby (25006), no free worker slot (53400
#    naming max_worker_processes).
#
# Gates: a migration statement waits for an advisory lock that a test
# session holds, so that the test knows which statement the job is on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('jobs');
$node->init(allows_streaming => 1);
$node->start;

# Run SQL (as $user when given); returns (exit code, stdout, stderr).  Errors
# are printed with their SQLSTATE (VERBOSITY verbose).
sub run_sql
{
	my ($db, $sql, $user) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql(
		$db, $sql,
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose', (defined $user ? ('-U', $user) : ()) ]);
	return ($rc, $stdout, $stderr);
}

sub query { return scalar $node->safe_psql('postgres', $_[0]); }

# A job's row in migrate.jobs (the view: reading it resumes nothing).
sub job_row
{
	my ($id, $cols) = @_;
	return query("SELECT $cols FROM migrate.jobs WHERE id = $id");
}

# Wait until job $id is finished (succeeded, failed or cancelled).
sub wait_finished
{
	my ($id) = @_;
	return $node->poll_query_until('postgres',
		"SELECT state IN ('succeeded', 'failed', 'cancelled') FROM migrate.jobs WHERE id = $id");
}

# Wait until the worker of job $id waits on wait event $event.
sub wait_worker_in
{
	my ($id, $event) = @_;
	return $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'migrate job' AND application_name = 'migrate job $id'
		   AND wait_event = '$event'});
}

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

# ====================================================================
# 1. CREATE INDEX CONCURRENTLY under writes, followed by CALL migrate_wait
# ====================================================================
# slow_key() makes the build last a few seconds (so that writes overlap it,
# and a blocking build would hold a write for that long).
$node->safe_psql(
	'postgres', q{
	CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL, pad text);
	INSERT INTO t (v, pad) SELECT g, md5(g::text) FROM generate_series(1, 300000) g;
	CREATE FUNCTION slow_key(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
	DECLARE s int := 0;
	BEGIN
	    FOR i IN 1..300 LOOP s := s + i; END LOOP;
	    RETURN v + s;
	END $$;
	CREATE TABLE write_log (started timestamptz, took interval);
	VACUUM ANALYZE t;
	SET client_min_messages = warning;
	SELECT migrate_add('001', 'gate', 'SELECT pg_advisory_xact_lock(4242);');
	SELECT migrate_add('002', 'index t by key', 'CREATE INDEX CONCURRENTLY t_key_idx ON t (slow_key(v));');
});
is(query(q{SELECT transactional FROM migrate.status WHERE version = '002'}),
	'f', '002 (CREATE INDEX CONCURRENTLY) is non-transactional');

my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');

my $job1 = query('SELECT migrate_start()');
like($job1, qr/^\d+$/, "migrate_start() returns job id $job1");
ok(wait_worker_in($job1, 'advisory'), 'the worker runs 001 and waits at the gate');
is(job_row($job1, 'state, version, steps_total'), 'running|001|2', 'job: running 001 of 2 steps');

# A writer: inserts and updates, a transaction each, timed, until the job ends.
my $writer = $node->background_psql('postgres');
$writer->query_until(
	qr/writing/, qq{\\echo writing
DO \$\$
DECLARE
    t0 timestamptz;
    k bigint;
    stop_at timestamptz := clock_timestamp() + interval '150 s';
BEGIN
    LOOP
        k := 1 + (random() * 299999)::int;
        t0 := clock_timestamp();
        INSERT INTO t (v, pad) VALUES ((random() * 1e6)::int, 'new');
        UPDATE t SET pad = 'updated' WHERE id = k;
        INSERT INTO write_log VALUES (t0, clock_timestamp() - t0);
        COMMIT;
        EXIT WHEN clock_timestamp() > stop_at
               OR (SELECT state IN ('succeeded', 'failed', 'cancelled') FROM migrate.jobs WHERE id = $job1);
        PERFORM pg_sleep(0.01);
    END LOOP;
END \$\$;
});
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 5 FROM write_log'),
	'the writer is writing');

# The waiter starts before the build: had it a snapshot, the build would
# wait for it, and it for the build (its timeout bounds that).
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/waiting/,
	"\\echo waiting\nCALL migrate_wait($job1, timeout => '120 s');\n");
ok( $node->poll_query_until(
		'postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE query LIKE 'CALL migrate_wait%' AND wait_event = 'Extension'}),
	'CALL migrate_wait() is waiting');

$gate->query_safe('SELECT pg_advisory_unlock(4242)');

# query() returns once the CALL has returned.
my ($wait_out) = $waiter->query('SELECT 1');
my $wait_err = $waiter->{stderr};
is($wait_out, "succeeded|2|2\n1",
	'CALL migrate_wait() returns (succeeded, 2, 2) while the build ran: no deadlock');
like(
	$wait_err,
	qr/NOTICE:  \[1\/2\] 001 gate \.\.\. ok \d+ ms\n(?:.*\n)*?.*NOTICE:  \[2\/2\] 002 index t by key \.\.\. ok \d+ ms/,
	'NOTICEs [1/2] and [2/2], in order');
unlike($wait_err, qr/ERROR|lost its worker/, 'no error, no "lost its worker"');
$waiter->quit;

$writer->query_safe('SELECT 1');    # the DO loop has ended
$writer->quit;
$gate->quit;

is( query(q{SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = 't_key_idx'::regclass}),
	't', 'the index is valid');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '0', 'no invalid index');
is( query(q{SELECT string_agg(version || '=' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001=applied,002=applied',
	'both migrations applied');
is( query(
		qq{SELECT string_agg(version || ' ' || detail::text, ', ' ORDER BY id)
		     FROM migrate.history WHERE action = 'apply'}),
	qq{001 {"of": 2, "job": $job1, "step": 1}, 002 {"of": 2, "job": $job1, "step": 2}},
	'history rows carry the job and the step');

# The build of 002: from performed_at - duration to performed_at.
my ($writes, $during, $max_ms, $build_ms) = split /\|/, query(
	q{WITH b AS (SELECT performed_at - duration AS b0, performed_at AS b1, duration
	               FROM migrate.history WHERE version = '002' AND action = 'apply')
	  SELECT count(*),
	         count(*) FILTER (WHERE started > b0 AND started + took < b1),
	         round(extract(epoch FROM max(took)) * 1000),
	         round(extract(epoch FROM min(duration)) * 1000)
	    FROM write_log, b});
note "$writes writes, $during during the build of ${build_ms} ms, longest ${max_ms} ms";
cmp_ok($during, '>=', 10, 'writes completed while the index was being built');
cmp_ok($max_ms, '<', 2000, 'no write waited 2 s or more');

# ====================================================================
# 2. a job started from a psql that exits at once
# ====================================================================
$node->safe_psql('postgres',
	q{SELECT migrate_add('003', 'after quit', 'SELECT pg_advisory_xact_lock(4243); CREATE TABLE after_quit (id int);')});
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4243)');
my ($rc, $out, $err) = run_sql('postgres', q{SELECT migrate_start()});
is($rc, 0, 'psql -c "SELECT migrate_start()" exits');
my $job2 = $out;
ok(wait_worker_in($job2, 'advisory'), 'its job runs after psql has gone');
is( query(q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%migrate_start%' AND pid <> pg_backend_pid()}),
	'0', 'no session of the starting psql is left');
$gate->query_safe('SELECT pg_advisory_unlock(4243)');
ok(wait_finished($job2), 'the job ends');
is(job_row($job2, 'state, steps_done'), 'succeeded|1', 'the job succeeded');
is(query(q{SELECT to_regclass('after_quit') IS NOT NULL}), 't', 'its table exists');
$gate->quit;

# ====================================================================
# 3. looking at a job just after starting it
# ====================================================================
# The worker may not have started yet: its lock is free, yet it has not
# lost it.  In the starting transaction too (the worker waits for it).
for my $v ('004', '005', '006')
{
	$node->safe_psql('postgres', "SELECT migrate_add('$v', 'quick', 'CREATE TABLE quick_$v (id int);')");
	($rc, $out, $err) = run_sql(
		'postgres', q{
		BEGIN;
		SELECT migrate_start() AS id \gset
		SELECT state FROM migrate_jobs() WHERE id = :id;
		COMMIT;
		CALL migrate_wait(:id);
	});
	is($out, "queued\nsucceeded|1|1", "$v: queued in the starting transaction, then succeeded");
	unlike($err, qr/lost its worker/, "$v: the new job has not \"lost its worker\"");
}
$node->safe_psql('postgres', q{SELECT migrate_add('007', 'quick', 'CREATE TABLE quick_007 (id int);')});
($rc, $out, $err) = run_sql('postgres',
	q{SELECT migrate_start() AS id \gset
	  CALL migrate_wait(:id);});
is($out, "succeeded|1|1", '007: started, then waited for at once');
unlike($err, qr/lost its worker/, '007: no "lost its worker"');
is(query(q{SELECT count(*) FROM migrate.history WHERE version IN ('004', '005', '006', '007') AND action = 'apply'}),
	'4', 'each quick migration applied once');

# ====================================================================
# 4. a failing concurrent unique index build
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE u (id int NOT NULL, code int);
	INSERT INTO u SELECT g, g FROM generate_series(1, 20000) g;
	INSERT INTO u VALUES (20001, 77);
	SET client_min_messages = error;
	SELECT migrate_add('008', 'index u',
	                   E'CREATE INDEX CONCURRENTLY u_id_idx ON u (id);\nCREATE UNIQUE INDEX CONCURRENTLY u_code_key ON u (code);');
});
my $job3 = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job3)");
isnt($rc, 0, 'CALL migrate_wait() fails');
like($err, qr/ERROR:  23505: could not create unique index "u_code_key"/,
	'CALL migrate_wait() raises the job\'s error with its SQLSTATE 23505');
like($err, qr/DETAIL:  Key \(code\)=\(77\) is duplicated\./, 'with its DETAIL');
like($err, qr/CONTEXT:  migration job $job3, migration 008, statement 2, line 2/,
	'CONTEXT: the job, the migration, the statement and its line');
is( job_row($job3, 'state, version, statement, error_sqlstate'),
	'failed|008|2|23505',
	'migrate.jobs: failed at 008 statement 2 with 23505');
like(job_row($job3, 'error_message'), qr/could not create unique index "u_code_key"/,
	'migrate.jobs: the error message');
is(query(q{SELECT state FROM migrate_status() WHERE version = '008'}), 'failed',
	'migrate_status(): 008 failed');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '0',
	'no invalid index is left');
is(query(q{SELECT to_regclass('u_code_key') IS NULL}), 't', 'u_code_key does not exist');
my $u_id_oid = query(q{SELECT 'u_id_idx'::regclass::oid});

$node->safe_psql('postgres', 'DELETE FROM u WHERE id = 20001');
my $job4 = query('SELECT migrate_start()');
isnt($job4, $job3, 'a new job');
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job4)");
is($out, 'succeeded|1|1', 'the new job succeeds');
# statement 1 again would fail: u_id_idx exists
is(query(q{SELECT 'u_id_idx'::regclass::oid}), $u_id_oid, 'it resumed at statement 2 (u_id_idx untouched)');
is(query(q{SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = 'u_code_key'::regclass}),
	't', 'u_code_key is a valid unique index');
is(query(q{SELECT state FROM migrate_status() WHERE version = '008'}), 'applied', '008 applied');
is(query(q{SELECT count(*) FROM migrate.statement_progress}), '0', 'no checkpoint left');

# Cancel of a concurrent build waiting for an older snapshot: the build is
# interrupted, its invalid index dropped (DROP INDEX CONCURRENTLY waits for
# that same old transaction: the job ends once it has ended), and a new job
# builds it.
$node->safe_psql('postgres',
	q{SELECT migrate_add('008.1', 'index u by id and code', 'CREATE INDEX CONCURRENTLY u_id_code_idx ON u (id, code);')});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM u;');
my $job_c = query('SELECT migrate_start()');
ok(wait_worker_in($job_c, 'virtualxid'), 'the build waits for the older snapshot');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '1', 'its index is not valid yet');
is(query("SELECT migrate_cancel($job_c)"), 'cancelling', 'migrate_cancel() of the build: cancelling');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 0 FROM pg_stat_activity
		 WHERE application_name = 'migrate job $job_c' AND query LIKE 'CREATE INDEX%'}),
	'the build is interrupted');
$holder->query_safe('COMMIT');
$holder->quit;
ok(wait_finished($job_c), 'the job ends');
is(job_row($job_c, 'state, error_sqlstate'), 'cancelled|57014', 'cancelled, with 57014');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '0', 'the invalid index was dropped');
my $job_c2 = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job_c2)");
is($out, 'succeeded|1|1', 'a new job builds it');
is(query(q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'u_id_code_idx'::regclass}), 't',
	'u_id_code_idx is valid');

# ====================================================================
# 5. pause, resume, cancel; who may
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE carol LOGIN IN ROLE alice;
	CREATE ROLE bob LOGIN;
	CREATE ROLE nolog NOLOGIN;
	GRANT EXECUTE ON FUNCTION migrate_start(text, boolean, text), migrate_jobs(), migrate_pause(bigint),
	      migrate_resume(bigint), migrate_cancel(bigint) TO alice, bob, carol, nolog;
	GRANT EXECUTE ON PROCEDURE migrate_wait(bigint, interval, text, integer, integer) TO alice, bob, carol, nolog;
	SELECT migrate_add('009', 'two waits', E'SELECT pg_advisory_xact_lock(4244);\nSELECT pg_sleep(600);',
	                   transactional => false);
});
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4244)');
my $job5 = $node->safe_psql('postgres', 'SELECT migrate_start()', extra_params => [ '-U', 'alice' ]);
ok(wait_worker_in($job5, 'advisory'), 'alice\'s job waits at the gate (statement 1)');
is(job_row($job5, 'role, state, version, statement'), 'alice|running|009|1', 'running 009 statement 1 as alice');
is( query(qq{SELECT usename FROM pg_stat_activity WHERE application_name = 'migrate job $job5'}),
	'alice', 'the worker is connected as alice');

($rc, $out, $err) = run_sql('postgres', 'SELECT migrate_start()', 'alice');
is($out, $job5, 'a second migrate_start() returns the running job');
like($err, qr/NOTICE:  00000: migration job $job5 is already running; returning its id/,
	'with a NOTICE');

for my $f ('pause', 'resume', 'cancel')
{
	($rc, $out, $err) = run_sql('postgres', "SELECT migrate_$f($job5)", 'bob');
	like($err, qr/ERROR:  42501: permission denied to $f migration job $job5/,
		"bob (not a member of alice) may not $f it: 42501");
}
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job5, timeout => '1 s')", 'bob');
like($err, qr/ERROR:  42501: permission denied to wait for migration job $job5/,
	'bob may not wait for it: 42501');

is($node->safe_psql('postgres', "SELECT migrate_pause($job5)", extra_params => [ '-U', 'carol' ]),
	'pausing', 'carol (a member of alice) pauses it: pausing');
is(job_row($job5, 'state, request'), 'running|pause', 'the pause waits for the statement to end');
$gate->query_safe('SELECT pg_advisory_unlock(4244)');
ok($node->poll_query_until('postgres', "SELECT state = 'paused' FROM migrate.jobs WHERE id = $job5"),
	'paused after statement 1');
is( query(qq{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'migrate job $job5' AND wait_event = 'PgSleep'}),
	'0', 'statement 2 has not started');
is(query(q{SELECT done FROM migrate.statement_progress WHERE version_key = migrate_version_key('009')}), '1',
	'checkpoint: 1 statement done');
($rc, $out, $err) = run_sql('postgres', "BEGIN; CALL migrate_wait($job5);", 'alice');
like($err, qr/ERROR:  25001: migrate_wait\(\) cannot wait inside a transaction block/,
	'CALL migrate_wait() in a transaction block: 25001');
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job5, timeout => '200 ms')", 'alice');
is($out, 'paused|0|1', 'CALL migrate_wait() with a timeout returns the paused job');
like($err, qr/NOTICE:  00000: migration job $job5 is still paused after the timeout/,
	'with a NOTICE saying so');

is($node->safe_psql('postgres', "SELECT migrate_resume($job5)", extra_params => [ '-U', 'alice' ]),
	'running', 'alice resumes it');
ok(wait_worker_in($job5, 'PgSleep'), 'statement 2 runs');
is(job_row($job5, 'state, statement'), 'running|2', 'running statement 2');

is($node->safe_psql('postgres', "SELECT migrate_cancel($job5)", extra_params => [ '-U', 'carol' ]),
	'cancelling', 'carol cancels it: cancelling');
ok(wait_finished($job5), 'the job ends');
is(job_row($job5, 'state, error_sqlstate'), 'cancelled|57014', 'cancelled, with 57014 recorded');
like(job_row($job5, 'error_message'), qr/canceling statement due to user request/, 'the error message');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'migrate job $job5'"),
	'the worker is gone');
($rc, $out, $err) = run_sql('postgres', "SELECT migrate_resume($job5)", 'alice');
like($err, qr/ERROR:  55000: cannot resume migration job $job5: it has been cancelled/,
	'a cancelled job cannot be resumed');
$gate->quit;
is(query(q{SELECT state FROM migrate_status() WHERE version = '009'}), 'failed', '009 failed');
# replaced by a quick one, applied below
$node->safe_psql('postgres', q{SELECT migrate_add('009', 'two waits', 'SELECT 1;')});

# ====================================================================
# 6. refusals
# ====================================================================
$node->safe_psql('postgres', q{SELECT migrate_add('010', 'later', 'CREATE TABLE later (id int);')});
my $jobs_before = query('SELECT count(*) FROM migrate.job_state');

($rc, $out, $err) = run_sql('postgres', 'SET ROLE nolog; SELECT migrate_start()');
like($err, qr/ERROR:  28000: role nolog cannot start a migration job/, 'a NOLOGIN role: 28000');
like($err, qr/DETAIL:  .*cannot log in \(NOLOGIN\)/, 'DETAIL: it cannot log in');

# A role that may not connect to the database (its worker could not).
$node->safe_psql(
	'postgres', q{
	CREATE ROLE noconn LOGIN;
	GRANT EXECUTE ON FUNCTION migrate_start(text, boolean, text) TO noconn;
	REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
});
($rc, $out, $err) = run_sql('postgres', 'SET ROLE noconn; SELECT migrate_start()');
like($err, qr/ERROR:  28000: role noconn cannot start a migration job/,
	'a role without CONNECT on the database: 28000');
like($err, qr/DETAIL:  .*has no CONNECT privilege on database postgres/, 'DETAIL: no CONNECT privilege');
$node->safe_psql('postgres', 'GRANT CONNECT ON DATABASE postgres TO PUBLIC');
is(query('SELECT count(*) FROM migrate.job_state'), $jobs_before, 'no job was queued');

# A standby.
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
my $stderr;
$standby->psql('postgres', 'SELECT migrate_start()', stderr => \$stderr,
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/ERROR:  25006: cannot start a migration job on a standby/, 'on a standby: 25006');
is( $standby->safe_psql('postgres', "SELECT state FROM migrate_jobs() WHERE id = $job5"),
	'cancelled', 'migrate_jobs() works on a standby');
$standby->stop;

# No free worker slot: two jobs of other databases take both.
$node->append_conf(
	'postgresql.conf', q{
max_worker_processes = 2
max_parallel_workers = 0
max_logical_replication_workers = 0
});
$node->restart;
my %slot_job;
for my $db ('slot1', 'slot2')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql(
		$db, q{
		CREATE EXTENSION migrate;
		SELECT migrate_add('001', 'sleep', 'SELECT pg_sleep(600);');
	});
	$slot_job{$db} = $node->safe_psql($db, 'SELECT migrate_start()');
}
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'migrate job' AND wait_event = 'PgSleep'"),
	'two jobs hold both worker slots');
($rc, $out, $err) = run_sql('postgres', 'SELECT migrate_start()');
like($err, qr/ERROR:  53400: no background worker slot is free for migration job \d+/,
	'no free slot: 53400');
like($err, qr/DETAIL:  max_worker_processes is 2,/, 'DETAIL names max_worker_processes');
like($err, qr/HINT:  .*raise max_worker_processes/, 'HINT: raise max_worker_processes');
is(query('SELECT count(*) FROM migrate.job_state'), $jobs_before, 'no job is left queued');

for my $db ('slot1', 'slot2')
{
	$node->safe_psql($db, "SELECT migrate_cancel($slot_job{$db})");
	ok( $node->poll_query_until($db, "SELECT state = 'cancelled' FROM migrate.jobs WHERE id = $slot_job{$db}"),
		"$db: its job is cancelled");
}
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate job'"),
	'the slots are free');
# the postmaster frees a slot a moment after its worker has gone
ok($node->poll_query_until('postgres', 'SELECT migrate_start() IS NOT NULL'),
	'with a free slot, migrate_start() succeeds');
($rc, $out, $err) = run_sql('postgres', 'SELECT max(id) AS id FROM migrate.job_state \gset
CALL migrate_wait(:id);');
is($out, 'succeeded|2|2', 'and the job runs (009 and 010)');

# ====================================================================
# 6. a failed statement of a file's migration: the file, and the line of the error in it
# ====================================================================
$node->safe_psql('postgres', q{
	SET client_min_messages = error;
	SELECT count(*) FROM migrate_add_script('011_nt.sql', E'-- migrate:down\ndrop index if exists i11;\n\n'
	    '-- migrate:up transaction:false\ncreate table t11 (x int);\n\ncreate index concurrently i11\n  on t11 ((x + nosuch));\n');
});
my $job6 = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql('postgres', "CALL migrate_wait($job6)");
like($err, qr/ERROR:  42703: column "nosuch" does not exist/, 'a job fails on a multi-line statement of a file');
like($err, qr/CONTEXT:  migration job $job6, migration 011, statement 2, line 8 of file "011_nt.sql"/,
	'CONTEXT: the line of the error in the file (the statement starts on line 7), and the file');

$node->stop;
done_testing();
