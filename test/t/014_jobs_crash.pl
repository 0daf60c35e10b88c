# Background jobs whose worker dies:
#
#  - without shared_preload_libraries: a worker killed with SIGKILL in the
#    middle of a concurrent index build (waiting for an older snapshot, its
#    invalid index already in the catalog) leaves the job running; the next
#    migrate_jobs() resumes it, the leftover invalid index is dropped, the
#    build runs again and the job succeeds (CALL migrate_wait follows it);
#  - a job whose worker died and whose role was then dropped, or lost
#    CONNECT on the database, fails with the reason (28000) instead of
#    being restarted again and again;
#  - with shared_preload_libraries = 'migrate': after a worker is killed
#    with SIGKILL (a crash restart), and after an immediate shutdown and a
#    start, the launcher resumes the job with no client call (only the view
#    migrate.jobs is read), a non-transactional one at the statement it was
#    on, and the job succeeds.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('jcrash');
$node->init;
# Cluster.pm turns this off; a worker killed with SIGKILL makes the
# postmaster reinitialise.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;

sub run_sql
{
	my ($sql) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql(
		'postgres', $sql,
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $stdout, $stderr);
}

sub query { return scalar $node->safe_psql('postgres', $_[0]); }

sub job_row
{
	my ($id, $cols) = @_;
	return query("SELECT $cols FROM migrate.jobs WHERE id = $id");
}

# Wait until the worker of job $id waits on wait event $event; its pid.
sub worker_waiting_in
{
	my ($id, $event) = @_;
	my $where = qq{backend_type = 'migrate job' AND application_name = 'migrate job $id'
	               AND wait_event = '$event'};
	return undef
	  unless $node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE $where");
	return query("SELECT pid FROM pg_stat_activity WHERE $where");
}

# SIGKILL a worker; wait for the postmaster to reinitialise.
sub kill9_and_wait
{
	my ($pid) = @_;
	my $log_offset = -s $node->logfile;
	ok(kill('KILL', $pid), "SIGKILL sent to worker $pid");
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'the server accepts connections again');
	ok( $node->log_contains(qr/background worker "migrate job" \(PID $pid\) was terminated by signal 9/,
			$log_offset),
		'the postmaster saw the worker die of SIGKILL');
}

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

# ====================================================================
# 1. SIGKILL in a concurrent index build, no launcher
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE c (id int PRIMARY KEY, v int);
	INSERT INTO c SELECT g, g % 1000 FROM generate_series(1, 100000) g;
	SELECT migrate_add('001', 'index c', 'CREATE INDEX CONCURRENTLY c_v_idx ON c (v);');
});

# A snapshot older than the build: the build's last phase waits for it.
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM c;');

my $job1 = query('SELECT migrate_start()');
my $pid = worker_waiting_in($job1, 'virtualxid');
ok($pid, 'the build waits for the older snapshot');
is(query(q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'c_v_idx'::regclass}),
	'f', 'its index is in the catalog, not valid yet');
is(job_row($job1, 'state, version, statement'), 'running|001|1', 'job: running 001 statement 1');

kill9_and_wait($pid);
eval { $holder->quit; };    # its backend is gone too

is(job_row($job1, 'state'), 'running', 'after the crash, the view shows the job running');
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'0', 'and no worker runs it');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '1',
	'the killed build left an invalid index');

my ($rc, $out, $err) = run_sql(qq{SELECT state FROM migrate_jobs() WHERE id = $job1});
like($err, qr/NOTICE:  00000: migration job $job1 lost its worker; a new worker resumes it/,
	'migrate_jobs() resumes the job');
($rc, $out, $err) = run_sql("CALL migrate_wait($job1)");
is($out, 'succeeded|1|1', 'CALL migrate_wait(): the job succeeds');
like($err, qr/NOTICE:  00000: \[1\/1\] 001 index c \.\.\. ok \d+ ms/, 'with its step NOTICE');
is(query(q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'c_v_idx'::regclass}),
	't', 'c_v_idx is valid');
is(query(q{SELECT count(*) FROM pg_index WHERE NOT indisvalid}), '0', 'no invalid index is left');
is(query(q{SELECT count(*) FROM pg_indexes WHERE tablename = 'c'}), '2',
	'c has its primary key and c_v_idx, nothing more');
is(query(q{SELECT state FROM migrate_status() WHERE version = '001'}), 'applied', '001 applied');

# ====================================================================
# 2. the worker died, then its role was dropped
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE ROLE dora LOGIN;
	GRANT EXECUTE ON FUNCTION migrate_start(text, boolean, text), migrate_jobs() TO dora;
	SELECT migrate_add('002', 'gate', 'SELECT pg_advisory_xact_lock(5002);');
});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(5002)');
my $job2 = $node->safe_psql('postgres', 'SELECT migrate_start()', extra_params => [ '-U', 'dora' ]);
$pid = worker_waiting_in($job2, 'advisory');
ok($pid, "dora's job waits at the gate");
is(query("SELECT pg_terminate_backend($pid)"), 't', 'its worker is terminated');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate job'"),
	'the worker is gone');
is(job_row($job2, 'state'), 'running', 'the job is left running');
$node->safe_psql('postgres', 'DROP OWNED BY dora; DROP ROLE dora;');

($rc, $out, $err) = run_sql(qq{SELECT state, error_sqlstate FROM migrate_jobs() WHERE id = $job2});
is($out, 'failed|28000', 'migrate_jobs(): the job failed with 28000');
unlike($err, qr/lost its worker/, 'no new worker was started for it');
like(job_row($job2, 'error_message'), qr/job $job2 cannot be resumed: its role no longer exists/,
	'the reason is recorded');
($rc, $out, $err) = run_sql(qq{SELECT state FROM migrate_jobs() WHERE id = $job2});
is($out, 'failed', 'it stays failed');
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'0', 'no worker runs');
is(query(q{SELECT state FROM migrate_status() WHERE version = '002'}), 'pending', '002 is still pending');

# The same when the role lost CONNECT on the database (its new worker
# would die as it connects, again and again).
$node->safe_psql(
	'postgres', q{
	CREATE ROLE erin LOGIN;
	GRANT EXECUTE ON FUNCTION migrate_start(text, boolean, text) TO erin;
});
my $job2b = $node->safe_psql('postgres', 'SELECT migrate_start()', extra_params => [ '-U', 'erin' ]);
$pid = worker_waiting_in($job2b, 'advisory');
ok($pid, "erin's job waits at the gate");
is(query("SELECT pg_terminate_backend($pid)"), 't', 'its worker is terminated');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate job'"),
	'the worker is gone');
$node->safe_psql('postgres', 'REVOKE CONNECT ON DATABASE postgres FROM PUBLIC');
($rc, $out, $err) = run_sql(qq{SELECT state, error_sqlstate FROM migrate_jobs() WHERE id = $job2b});
is($out, 'failed|28000', 'migrate_jobs(): the job failed with 28000');
unlike($err, qr/lost its worker/, 'no new worker was started for it');
like(job_row($job2b, 'error_message'),
	qr/job $job2b cannot be resumed: its role erin has no CONNECT privilege on database postgres/,
	'the reason is recorded');
$node->safe_psql('postgres', 'GRANT CONNECT ON DATABASE postgres TO PUBLIC');

$gate->query_safe('SELECT pg_advisory_unlock(5002)');
$gate->quit;

# ====================================================================
# 3. with the launcher: SIGKILL, then immediate shutdown
# ====================================================================
$node->append_conf('postgresql.conf', q{shared_preload_libraries = 'migrate'});
$node->restart;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'migrate launcher'}),
	'the launcher runs');

# 002 (the gate) is pending, then 003, transactional, waits at its own gate.
$node->safe_psql('postgres',
	q{SELECT migrate_add('003', 'gated table', 'SELECT pg_advisory_xact_lock(5003); CREATE TABLE after_kill (id int);')});
$gate = $node->background_psql('postgres', on_error_stop => 0);
$gate->query_safe('SELECT pg_advisory_lock(5003)');
my $job3 = query('SELECT migrate_start()');
$pid = worker_waiting_in($job3, 'advisory');
ok($pid, 'the job waits at the gate of 003 (002 applied)');
is(job_row($job3, 'state, version, steps_done'), 'running|003|1', 'running 003, step 2 of 2');

kill9_and_wait($pid);    # the gate's session goes too
eval { $gate->quit; };
ok($node->poll_query_until('postgres', "SELECT state = 'succeeded' FROM migrate.jobs WHERE id = $job3"),
	'the launcher resumed the job: it succeeded with no client call');
is(job_row($job3, 'steps_done, steps_total'), '2|2', 'both steps done');
is(query(q{SELECT to_regclass('after_kill') IS NOT NULL}), 't', 'the table of 003 exists');
is( query(qq{SELECT string_agg(version, ',' ORDER BY id) FROM migrate.history
	          WHERE action = 'apply' AND (detail ->> 'job')::bigint = $job3}),
	'002,003', 'each migration applied once by the job');

# Immediate shutdown while a non-transactional migration is at statement 2.
$node->safe_psql('postgres',
	q{SELECT migrate_add('004', 'index then gate',
	                     E'CREATE INDEX CONCURRENTLY c_id_v_idx ON c (id, v);\nSELECT pg_advisory_xact_lock(5004);')});
$gate = $node->background_psql('postgres', on_error_stop => 0);
$gate->query_safe('SELECT pg_advisory_lock(5004)');
my $job4 = query('SELECT migrate_start()');
ok(worker_waiting_in($job4, 'advisory'), 'the job waits at statement 2 of 004');
is(job_row($job4, 'state, version, statement'), 'running|004|2', 'running 004 statement 2');
my $index_oid = query(q{SELECT 'c_id_v_idx'::regclass::oid});

$node->stop('immediate');
eval { $gate->quit; };
$node->start;
ok($node->poll_query_until('postgres', "SELECT state IN ('succeeded', 'failed', 'cancelled') FROM migrate.jobs WHERE id = $job4"),
	'after the restart the job ends with no client call');
is(job_row($job4, 'state, error_message'), 'succeeded|', 'it succeeded');
is(query(q{SELECT 'c_id_v_idx'::regclass::oid}), $index_oid,
	'it resumed at statement 2 (the index of statement 1 untouched)');
is(query(q{SELECT state FROM migrate_status() WHERE version = '004'}), 'applied', '004 applied');
is(query(q{SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running', 'paused')}),
	'0', 'no job is left unfinished');

$node->stop;
done_testing();
