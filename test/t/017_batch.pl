# Batched data migrations (src/batch.c) run by jobs, seen from sessions:
#
#  1. kill -9: a non-idempotent UPDATE (n = n + 1) of a 1,000,000-row table,
#     20,000 rows a batch, with shared_preload_libraries = 'migrate'.
#     migrate_apply() leaves it pending (WARNING).  The job's worker is
#     killed with SIGKILL twice, each time in the middle of a batch (batch
#     11, then batch 31, part of whose rows it has updated); after each
#     crash restart the checkpoint says the batches before it, no row of the
#     interrupted batch is changed, and the launcher resumes the job with no
#     client call, at that batch (migrate.jobs.worker_pid names the new
#     worker).  The job succeeds: every row was updated exactly once, the
#     migration is applied once, after 50 batches.
#  2. pause, resume, cancel between batches: paused, the job stays so and
#     no batch runs (its checkpoint and the table stay as they were for a
#     second, where 20 batches would have run); resumed, it goes on;
#     cancelled, it ends 'cancelled', the migration is not applied, the
#     checkpoint is kept and matches the table (the rows up to its last key
#     updated, none after); a new job goes on after it: every row updated
#     exactly once.
#  3. adaptive size ("target": "100 ms", no "size"): a statement that takes
#     1 ms a row or more starts at 1000 rows (a batch of at least 1 s), then
#     its batches shrink to 100 rows or fewer and take about the target (well
#     under 500 ms); a fast statement's batches grow (200,000 rows in far
#     fewer than 200 batches).
#  4. lock waits: a session holds ACCESS EXCLUSIVE on the table when the
#     job starts (lock_timeout 200 ms in the starting session): the job
#     says "waiting for a lock" in migrate.jobs.note and retries; a session
#     calling migrate_jobs() between two tries finds the job's worker alive
#     (no second worker is started: the worker keeps its job lock through
#     the failed tries); once the lock is released the job succeeds, every
#     row updated exactly once.  Then,
#     with migrate.batch_lock_retries = 1 and lock_timeout 100 ms, a lock
#     taken in the middle of the walk and held: the job fails with 55P03,
#     its error_detail naming the holder's pid and the 2 tries, the
#     migration failed; a new job goes on after the last committed batch.
#  5. a batch that fails in the middle (text cast to int, one 'x'): the job
#     fails with 22P02 (migrate.jobs, CALL migrate_wait), its detail naming
#     the batch and its keys; the earlier batches stay committed; the text
#     corrected (migrate_add again), a new job resumes at that batch: each
#     row copied exactly once, and the "+10000" expectation is counted from
#     the start of the migration (the first job), not of the second job.
#  6. a concurrent writer inserting and updating rows of the table while
#     the job walks it: the writer sees no error and no update is lost; the
#     walk ends at the largest key at the start of the migration: every row
#     up to it updated once, the rows inserted after it untouched.
#
# Gates: in 1, a trigger on two rows waits while a row of table gate names
# them, so that the test knows which batch the worker is in; the gate is
# a table (not a lock) so that it outlives the crash restart.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('batch');
$node->init;
# Cluster.pm turns restart_after_crash off; the launcher resumes jobs after a
# crash restart.
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'migrate'
restart_after_crash = on
});
$node->start;

# Run SQL; returns (exit code, stdout, stderr).  Errors are printed with
# their SQLSTATE (VERBOSITY verbose).
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

# The checkpoint of migration $version: the columns asked for.
sub checkpoint
{
	my ($version, $cols) = @_;
	return query(
		"SELECT $cols FROM migrate.batch_progress WHERE version_key = migrate_version_key('$version')");
}

# Number of job workers running.
sub workers
{
	return query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate job'});
}

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

# ====================================================================
# 1. kill -9 in the middle of a batch, twice; the launcher resumes
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE big (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO big (id) SELECT g FROM generate_series(1, 1000000) g;
	CREATE TABLE gate (at bigint PRIMARY KEY);
	INSERT INTO gate VALUES (210000), (610000);
	-- each check reads gate anew (a volatile function's statement takes a new snapshot)
	CREATE FUNCTION gate_wait() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
	    WHILE EXISTS (SELECT FROM gate WHERE at = NEW.id) LOOP
	        PERFORM pg_sleep(0.01);
	    END LOOP;
	    RETURN NEW;
	END $$;
	CREATE TRIGGER big_gate BEFORE UPDATE ON big FOR EACH ROW
	    WHEN (NEW.id IN (210000, 610000)) EXECUTE FUNCTION gate_wait();
});
$node->safe_psql('postgres', 'VACUUM ANALYZE big');
$node->safe_psql('postgres',
	q{SELECT migrate_add('001', 'bump big', 'UPDATE big SET n = n + 1 WHERE id > $1 AND id <= $2',
	                     batch => '{"table": "big", "size": 20000}')});

my ($rc, $out, $err) = run_sql(q{SELECT version, action FROM migrate_apply()});
is($out, '001|left pending', 'migrate_apply() leaves the batched migration pending');
like($err, qr/WARNING:  01000: migration 001 was left pending: it is batched/, 'with a WARNING');
is(query(q{SELECT count(*) FROM big WHERE n <> 0}), '0', 'and changes no row');

# Kill the worker of $job once it waits at the gate with $done batches
# committed; wait for the crash restart.  Returns the killed pid.
sub kill_at_gate
{
	my ($job, $done, $what) = @_;
	my $where = q{backend_type = 'migrate job' AND wait_event = 'PgSleep'};
	ok( $node->poll_query_until(
			'postgres', qq{
			SELECT count(*) = 1 FROM pg_stat_activity WHERE $where
			   AND (SELECT batches_done FROM migrate.jobs WHERE id = $job) = $done}),
		"$what: the worker waits at the gate with $done batches committed");
	my $pid = query("SELECT pid FROM pg_stat_activity WHERE $where");
	my $log_offset = -s $node->logfile;
	ok(kill('KILL', $pid), "$what: SIGKILL sent to worker $pid");
	# (a connection made before the postmaster noticed would not show the restart)
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	ok( $node->log_contains(qr/background worker "migrate job" \(PID $pid\) was terminated by signal 9/,
			$log_offset),
		"$what: the postmaster saw the worker die of SIGKILL and reinitialised");
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'), "$what: the server accepts connections again");
	return $pid;
}

my $job1 = query('SELECT migrate_start()');
like($job1, qr/^\d+$/, "migrate_start() returns job id $job1");

# first kill: in batch 11 (keys 200001 to 220000), at key 210000
my $pid = kill_at_gate($job1, 10, 'first kill');
is(checkpoint('001', 'batches, last_key_text, keys_done, rows_done, max_key_text'),
	'10|200000|200000|200000|1000000', 'after the crash the checkpoint says 10 batches, up to key 200000');
is(query(q{SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n NOT IN (0, 1)), max(id) FILTER (WHERE n = 1) FROM big}),
	'200000|0|200000', 'the rows of batches 1 to 10 are updated once, none of batch 11');
is(job_row($job1, 'state'), 'running', 'the job is still running');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'migrate job' AND wait_event = 'PgSleep' AND pid <> $pid}),
	'the launcher resumed the job (no client call): a new worker is at the gate of batch 11 again');
is(job_row($job1, 'batches_done'), '10', 'it went on after batch 10');
# (a row naming no worker would look, for 10 s, like a job whose worker is starting)
is(job_row($job1, 'worker_pid'), query(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'migrate.jobs names the new worker');
$node->safe_psql('postgres', 'DELETE FROM gate WHERE at = 210000');

# second kill: in batch 31 (keys 600001 to 620000), at key 610000, of the resumed worker
$pid = kill_at_gate($job1, 30, 'second kill');
is(checkpoint('001', 'batches, last_key_text, keys_done'),
	'30|600000|600000', 'after the second crash the checkpoint says 30 batches, up to key 600000');
is(query(q{SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n NOT IN (0, 1)), max(id) FILTER (WHERE n = 1) FROM big}),
	'600000|0|600000', 'the rows of batches 1 to 30 are updated once, none of batch 31');
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'migrate job' AND wait_event = 'PgSleep' AND pid <> $pid}),
	'the launcher resumed the job again, at batch 31');
is(job_row($job1, 'worker_pid'), query(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'migrate.jobs names the new worker');
$node->safe_psql('postgres', 'DELETE FROM gate WHERE at = 610000');

ok($node->poll_query_until('postgres', "SELECT state = 'succeeded' FROM migrate.jobs WHERE id = $job1"),
	'the job succeeded with no client call');
is(job_row($job1, 'batches_done, rows_done, steps_done, steps_total'),
	'50|1000000|1|1', 'migrate.jobs: 50 batches, 1,000,000 rows');
is(query(q{SELECT count(*) FROM big WHERE n <> 1}), '0', 'every row of big was updated exactly once');
is(query(q{SELECT state FROM migrate_status() WHERE version = '001'}), 'applied', '001 applied');
is( query(
		q{SELECT count(*), min(rows_affected), min((detail ->> 'batches')::int) FROM migrate.history
		   WHERE version = '001' AND action = 'apply'}),
	'1|1000000|50',
	'one history row: applied once, 1,000,000 rows in 50 batches');
is(query(q{SELECT count(*) FROM migrate.batch_progress}), '0', 'its checkpoint is gone');

# ====================================================================
# 2. pause, resume, cancel between batches
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE pr (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO pr (id) SELECT g FROM generate_series(1, 40000) g;
	SELECT migrate_add('002', 'bump pr', 'UPDATE pr SET n = n + 1 WHERE id > $1 AND id <= $2',
	                   batch => '{"table": "pr", "size": 1000, "pause": "50 ms"}');
});
my $job2 = query('SELECT migrate_start()');
ok($node->poll_query_until('postgres', "SELECT batches_done >= 3 FROM migrate.jobs WHERE id = $job2"),
	'the job runs batches');
is(query("SELECT migrate_pause($job2)"), 'pausing', 'migrate_pause(): pausing');
ok($node->poll_query_until('postgres', "SELECT state = 'paused' FROM migrate.jobs WHERE id = $job2"),
	'the job is paused between batches');
my $paused = job_row($job2, 'batches_done');
my $table = query(q{SELECT count(*) FILTER (WHERE n = 1), sum(n) FROM pr});
is(checkpoint('002', 'batches'), $paused, 'the checkpoint has as many batches as the job');
# A batch a ~50 ms: in a second, about 20 batches would have run.
ok( $node->poll_query_until(
		'postgres', q{
		SELECT clock_timestamp() > updated_at + interval '1 s' FROM migrate.batch_progress
		 WHERE version_key = migrate_version_key('002')}),
	'a second passes with no batch committed');
is(job_row($job2, 'state, batches_done'), "paused|$paused", "still paused, still $paused batches");
is(query(q{SELECT count(*) FILTER (WHERE n = 1), sum(n) FROM pr}), $table, 'the table has not changed');
is(checkpoint('002', 'keys_done'), (split /\|/, $table)[0], 'the checkpoint matches the table');

is(query("SELECT migrate_resume($job2)"), 'running', 'migrate_resume(): running');
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' AND batches_done >= $paused + 3 FROM migrate.jobs WHERE id = $job2"),
	'resumed, the job runs batches again');

is(query("SELECT migrate_cancel($job2)"), 'cancelling', 'migrate_cancel(): cancelling');
ok(wait_finished($job2), 'the job ends');
is(job_row($job2, 'state'), 'cancelled', 'cancelled');
my ($cancelled_at, $last_key) = split /\|/, checkpoint('002', 'batches, last_key_text');
cmp_ok($cancelled_at, '>', $paused + 2, "the checkpoint is kept: $cancelled_at batches");
cmp_ok($cancelled_at, '<', 40, 'before the end');
is(job_row($job2, 'batches_done'), $cancelled_at, 'as many as the job did');
is(query(q{SELECT state FROM migrate_status() WHERE version = '002'}), 'pending', '002 is not applied');
is(query(qq{SELECT count(*) FILTER (WHERE n = 1 AND id <= $last_key), count(*) FILTER (WHERE n <> 0 AND id > $last_key),
                   count(*) FILTER (WHERE n NOT IN (0, 1)) FROM pr}),
	"$last_key|0|0", "the rows up to key $last_key are updated once, none after");

my $job2b = query('SELECT migrate_start()');
isnt($job2b, $job2, 'a new job');
($rc, $out, $err) = run_sql("CALL migrate_wait($job2b)");
is($out, 'succeeded|1|1', 'the new job succeeds');
is(query(q{SELECT count(*) FROM pr WHERE n <> 1}), '0', 'every row of pr was updated exactly once');
is(query(q{SELECT (detail ->> 'batches')::int FROM migrate.history WHERE version = '002' AND action = 'apply'}),
	'40', 'applied after 40 batches in all');

# ====================================================================
# 3. adaptive batch size
# ====================================================================
# slow_row() takes at least 1 ms a row.
$node->safe_psql(
	'postgres', q{
	CREATE TABLE slow (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO slow (id) SELECT g FROM generate_series(1, 2000) g;
	CREATE FUNCTION slow_row(v int) RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
	    PERFORM pg_sleep(0.001);
	    RETURN v;
	END $$;
	SELECT migrate_add('003', 'slow rows', 'UPDATE slow SET n = slow_row(n + 1) WHERE id > $1 AND id <= $2',
	                   batch => '{"table": "slow", "target": "100 ms"}');
});
my $job3 = query('SELECT migrate_start()');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT batches >= 4 FROM migrate.batch_progress WHERE version_key = migrate_version_key('003')}),
	'the job has run 4 batches');
my ($size, $last_ms, $longest_ms) = split /\|/, checkpoint('003', 'size, round(last_ms), round(longest_ms)');
note "adapted size $size, last batch $last_ms ms, longest $longest_ms ms";
cmp_ok($longest_ms, '>=', 1000, 'the first batch (1000 rows at 1 ms) took 1 s or more');
cmp_ok($size, '<=', 200, 'the size dropped well below 1000 rows');
cmp_ok($size, '>=', 10, 'but not below the minimum of 10');
cmp_ok($last_ms, '<', 500, 'a batch of the adapted size takes about the target, not 1 s');
($rc, $out, $err) = run_sql("CALL migrate_wait($job3)");
is($out, 'succeeded|1|1', 'the job succeeds');
is(query(q{SELECT count(*) FROM slow WHERE n <> 1}), '0', 'every row of slow was updated exactly once');
cmp_ok(query(q{SELECT (detail ->> 'batches')::int FROM migrate.history WHERE version = '003' AND action = 'apply'}),
	'>', 10, 'in more than 10 batches (2 of the first size would have done)');

$node->safe_psql(
	'postgres', q{
	CREATE TABLE fast (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
	INSERT INTO fast (id) SELECT g FROM generate_series(1, 200000) g;
	SELECT migrate_add('003.1', 'fast rows', 'UPDATE fast SET n = n + 1 WHERE id > $1 AND id <= $2',
	                   batch => '{"table": "fast", "target": "100 ms"}');
});
($rc, $out, $err) = run_sql(q{SELECT migrate_start() AS id \gset
CALL migrate_wait(:id);});
is($out, 'succeeded|1|1', 'a fast statement: the job succeeds');
is(query(q{SELECT count(*) FROM fast WHERE n <> 1}), '0', 'every row of fast was updated exactly once');
my $fast_batches =
  query(q{SELECT (detail ->> 'batches')::int FROM migrate.history WHERE version = '003.1' AND action = 'apply'});
cmp_ok($fast_batches, '<', 50, "the batches grew: 200,000 rows in $fast_batches batches (200 of the first size)");

# ====================================================================
# 4. lock waits and retries
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE lk (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, m int NOT NULL DEFAULT 0);
	INSERT INTO lk (id) SELECT g FROM generate_series(1, 10000) g;
	SELECT migrate_add('004', 'bump lk.n', 'UPDATE lk SET n = n + 1 WHERE id > $1 AND id <= $2',
	                   batch => '{"table": "lk", "size": 1000, "pause": "200 ms"}');
});
my $holder = $node->background_psql('postgres');
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_safe('BEGIN; LOCK TABLE lk IN ACCESS EXCLUSIVE MODE;');

my $job4 = query(q{SET lock_timeout = '200ms'; SELECT migrate_start();});
ok( $node->poll_query_until(
		'postgres', "SELECT note LIKE 'waiting for a lock%' FROM migrate.jobs WHERE id = $job4"),
	'the job waits for the lock, and says so in migrate.jobs.note');
like(job_row($job4, 'note'), qr/^waiting for a lock: \w+ retried \d of 5 times, next in \d+ ms \(canceling statement due to lock timeout\)$/,
	'the note: retried n of 5 times, the next try, the error');
is(job_row($job4, 'state'), 'running', 'the job is running');
# A session that looks at the job meanwhile finds its worker alive.
($rc, $out, $err) = run_sql("SELECT state FROM migrate_jobs() WHERE id = $job4");
is($out, 'running', 'migrate_jobs(): running');
unlike($err, qr/lost its worker/, 'migrate_jobs() does not find that the job lost its worker');
is(workers(), '1', 'one worker runs the job');
ok( $node->poll_query_until('postgres', "SELECT note ~ 'retried [2-5] of' FROM migrate.jobs WHERE id = $job4"),
	'it retries again');
($rc, $out, $err) = run_sql("SELECT state FROM migrate_jobs() WHERE id = $job4");
unlike($err, qr/lost its worker/, 'after another failed try, its worker is still alive');
is(workers(), '1', 'still one worker');
$holder->query_safe('COMMIT');

($rc, $out, $err) = run_sql("CALL migrate_wait($job4)");
is($out, 'succeeded|1|1', 'the lock released, the job succeeds');
unlike($err, qr/lost its worker/, 'CALL migrate_wait() started no other worker');
is(job_row($job4, 'batches_done, note IS NULL'), '10|t', 'migrate.jobs: 10 batches, no note left');
is(query(q{SELECT count(*) FROM lk WHERE n <> 1}), '0', 'every row of lk was updated exactly once');
is(query(q{SELECT state FROM migrate_status() WHERE version = '004'}), 'applied', '004 applied');

# The failure path: one retry, lock_timeout 100 ms, a lock taken in the
# middle of the walk and held.
$node->safe_psql('postgres',
	q{SELECT migrate_add('005', 'bump lk.m', 'UPDATE lk SET m = m + 1 WHERE id > $1 AND id <= $2',
	                     batch => '{"table": "lk", "size": 1000, "pause": "200 ms"}')});
my $job5 = query(q{SET migrate.batch_lock_retries = 1; SET lock_timeout = '100ms'; SELECT migrate_start();});
ok($node->poll_query_until('postgres', "SELECT batches_done >= 2 FROM migrate.jobs WHERE id = $job5"),
	'the job runs batches');
$holder->query_safe('BEGIN; LOCK TABLE lk IN ACCESS EXCLUSIVE MODE;');
ok(wait_finished($job5), 'with the lock held, the job ends');
is(job_row($job5, 'state, error_sqlstate'), 'failed|55P03', 'failed with 55P03');
my ($done5, $last5) = split /\|/, checkpoint('005', 'batches, last_key_text');
my $detail5 = job_row($job5, 'error_detail');
like($detail5, qr/pid $holder_pid \(role /, "error_detail names the session holding the lock (pid $holder_pid)");
like($detail5, qr/Tried 2 times/, 'error_detail: tried twice (one retry)');
like(
	$detail5,
	qr/\b[Bb]atch @{[$done5 + 1]} of migration 005\b.* table public\.lk; the $done5 batches \(@{[$done5 * 1000]} rows\) before it stay committed\./,
	'error_detail: the batch, and the batches before it committed');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'its worker is gone');
$holder->query_safe('ROLLBACK');
$holder->quit;
is(query(q{SELECT state FROM migrate_status() WHERE version = '005'}), 'failed', '005 failed');
is(job_row($job5, 'batches_done'), $done5, "the checkpoint is kept: $done5 batches");
is(query(qq{SELECT count(*) FILTER (WHERE m = 1 AND id <= $last5), count(*) FILTER (WHERE m <> 0 AND id > $last5) FROM lk}),
	"$last5|0", "the rows up to key $last5 are updated, none after");
my $job5b = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql("CALL migrate_wait($job5b)");
is($out, 'succeeded|1|1', 'a new job succeeds');
is(query(q{SELECT count(*) FROM lk WHERE m <> 1}), '0', 'every row of lk was updated exactly once');

# ====================================================================
# 5. a batch fails in the middle; corrected, a new job resumes at it
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE legacy (id int PRIMARY KEY, v text NOT NULL);
	INSERT INTO legacy SELECT g, g::text FROM generate_series(1, 10000) g;
	UPDATE legacy SET v = 'x' WHERE id = 5500;
	CREATE TABLE target (id int PRIMARY KEY, v int);
	SELECT migrate_add('006', 'copy legacy',
	                   'INSERT INTO target (id, v) SELECT id, v::int FROM legacy WHERE id > $1 AND id <= $2',
	                   expect => '{"target": "+10000"}',
	                   batch => '{"table": "legacy", "size": 1000}');
});
my $job6 = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql("CALL migrate_wait($job6)");
isnt($rc, 0, 'CALL migrate_wait() fails');
like($err, qr/ERROR:  22P02: invalid input syntax for type integer: "x"/, "it raises the batch's error, 22P02");
like($err, qr/DETAIL:  In batch 6 of migration 006, keys above 5000 up to 6000 of table public\.legacy; the 5 batches \(5000 rows\) before it stay committed\./,
	'DETAIL: batch 6, its keys, the 5 batches before it committed');
is(job_row($job6, 'state, error_sqlstate, batches_done'), 'failed|22P02|5', 'migrate.jobs: failed, 22P02, 5 batches');
like(job_row($job6, 'error_detail'), qr/In batch 6 of migration 006/, 'migrate.jobs: error_detail names the batch');
is(query(q{SELECT state FROM migrate_status() WHERE version = '006'}), 'failed', '006 failed');
is(query(q{SELECT count(*), min(id), max(id) FROM target}), '5000|1|5000', 'the rows of batches 1 to 5 are in target');
is(checkpoint('006', 'batches, last_key_text'), '5|5000', 'the checkpoint: 5 batches, up to key 5000');

$node->safe_psql('postgres',
	q{SELECT migrate_add('006', 'copy legacy',
	                     'INSERT INTO target (id, v) SELECT id, NULLIF(v, ''x'')::int FROM legacy WHERE id > $1 AND id <= $2',
	                     expect => '{"target": "+10000"}',
	                     batch => '{"table": "legacy", "size": 1000}')});
my $job6b = query('SELECT migrate_start()');
($rc, $out, $err) = run_sql("CALL migrate_wait($job6b)");
is($out, 'succeeded|1|1', 'corrected, a new job succeeds');
is(job_row($job6b, 'batches_done'), '10', 'after 10 batches in all');
is(query(q{SELECT count(*), count(DISTINCT id), min(id), max(id), count(*) FILTER (WHERE v IS NULL) FROM target}),
	'10000|10000|1|10000|1', 'target has each row of legacy exactly once (the earlier batches were not run again)');
is(query(q{SELECT count(*) FROM legacy l JOIN target t USING (id) WHERE t.v IS DISTINCT FROM NULLIF(l.v, 'x')::int}),
	'0', 'with its value');
is(query(q{SELECT state FROM migrate_status() WHERE version = '006'}), 'applied', '006 applied');
is( query(q{SELECT checks > 0, counts::text FROM migrate.history WHERE version = '006' AND action = 'apply' AND outcome = 'ok'}),
	't|{"target": {"after": 10000, "before": 0, "expect": "+10000"}}',
	'the expectation "+10000" was checked against the count when the migration started (0, not 5000)');

# ====================================================================
# 6. a concurrent writer
# ====================================================================
$node->safe_psql(
	'postgres', q{
	CREATE TABLE w (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0, m int NOT NULL DEFAULT 0);
	INSERT INTO w (id) SELECT g FROM generate_series(1, 200000) g;
	SELECT setval('w_id_seq', 200000);
	CREATE TABLE writes (inserted bigint, updated bigint, at timestamptz);
	CREATE TABLE writer_stop ();
	SELECT migrate_add('007', 'bump w', 'UPDATE w SET n = n + 1 WHERE id > $1 AND id <= $2',
	                   batch => '{"table": "w", "size": 5000, "pause": "20 ms"}');
});
$node->safe_psql('postgres', 'VACUUM ANALYZE w');

# The writer: a row inserted and an older row's m incremented, a transaction
# each, until told to stop.
my $writer = $node->background_psql('postgres', on_error_stop => 0);
$writer->query_until(
	qr/writing/, q{\echo writing
DO $$
DECLARE
    k bigint;
    stop_at timestamptz := clock_timestamp() + interval '120 s';
BEGIN
    LOOP
        k := 1 + (random() * 199999)::int;
        INSERT INTO w DEFAULT VALUES;
        UPDATE w SET m = m + 1 WHERE id = k;
        INSERT INTO writes VALUES (currval('w_id_seq'), k, clock_timestamp());
        COMMIT;
        EXIT WHEN clock_timestamp() > stop_at OR EXISTS (SELECT FROM writer_stop);
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
});
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 20 FROM writes'), 'the writer is writing');

my $job7 = query('SELECT migrate_start()');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM migrate.batch_progress WHERE version_key = migrate_version_key('007')}),
	'the migration has started');
my $max7 = checkpoint('007', 'max_key_text');
cmp_ok($max7, '>', 200000, "the walk ends at key $max7, the largest at the start (rows the writer inserted before it included)");
ok($node->poll_query_until('postgres', "SELECT batches_done >= 5 FROM migrate.jobs WHERE id = $job7"),
	'the job runs batches while the writer writes');
ok(wait_finished($job7), 'the job ends');
$node->safe_psql('postgres', 'INSERT INTO writer_stop DEFAULT VALUES');
$writer->query('SELECT 1');    # returns once the DO has ended
my $writer_err = $writer->{stderr};
$writer->quit;
is(job_row($job7, 'state'), 'succeeded', 'the job succeeded');
unlike($writer_err, qr/ERROR/, 'the writer saw no error');

is( query(qq{SELECT count(*) FILTER (WHERE id <= $max7), count(*) FILTER (WHERE id <= $max7 AND n <> 1) FROM w}),
	"$max7|0", "every row up to key $max7 was updated exactly once");
my ($after, $after_bad) = split /\|/,
  query(qq{SELECT count(*), count(*) FILTER (WHERE n <> 0) FROM w WHERE id > $max7});
cmp_ok($after, '>', 0, "$after rows were inserted after the migration started");
is($after_bad, '0', 'none of them was touched');
cmp_ok(
	query(
		qq{SELECT count(*) FROM writes, migrate.jobs j
		    WHERE j.id = $job7 AND writes.at BETWEEN j.started_at AND j.finished_at}),
	'>', 0, 'rows were written while the job ran');
is(query(q{SELECT (SELECT sum(m) FROM w) = (SELECT count(*) FROM writes)}), 't',
	"no update of the writer was lost (sum(m) is the writer's number of updates)");
is(query(q{SELECT count(*) FROM w WHERE id NOT IN (SELECT inserted FROM writes) AND id > 200000}), '0',
	'every row above 200000 is one the writer inserted');
is(query(q{SELECT state FROM migrate_status() WHERE version = '007'}), 'applied', '007 applied');

is(query(q{SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running', 'paused')}),
	'0', 'no job is left unfinished');
is(query(q{SELECT count(*) FROM migrate.batch_progress}), '0', 'no checkpoint is left');

$node->stop;
done_testing();
