# The health signals of a batched migration job (README, "Batched data
# migrations", Health and Progress), as migrate.jobs shows them:
#
#  1. replica replay lag: a primary with a streaming standby; the job is
#     started with migrate.batch_max_lag = '2s' (a migrate.* setting of the
#     calling session, kept by the job).  Replay is paused on the standby
#     while the job runs: pg_stat_replication.replay_lag keeps growing (the
#     standby keeps replying), the job first slows down (note "slowed down:
#     replica replay lag ... above half"), then waits (note "waiting: replica
#     replay lag X s is above migrate.batch_max_lag (2.0 s)", X >= 2) with
#     batches_done standing still and the job still running; after
#     pg_wal_replay_resume() it goes on by itself and succeeds; every row was
#     bumped exactly once, on the primary and on the standby;
#  2. blocked sessions: each batch is made slow (an AFTER UPDATE ... FOR EACH
#     STATEMENT trigger sleeps 300 ms, in the job's worker only) and another
#     session keeps updating the first key of the batch after the last
#     committed one, so it waits for the running batch's row lock: the note
#     says "slowed down: 1 session waited for the locks of the last batch
#     (migrate.batch_max_blocked is 0)"; once the session stops, the job
#     succeeds, every row bumped exactly once;
#  3. migrate.batch_max_lag = 0 does not look at replica lag: with replay
#     paused and replay_lag above 2 s, a job started with it runs through
#     (it never waits, its note never names the replica), while replay stays
#     paused; resumed, the standby catches up with the result;
#  4. new options for a running job (the same text registered again with a
#     bigger size and no pause) are taken before its next batch.
#
# Every wait is a poll (that batches_done stands still is read after
# replay_lag has grown by 2 s more).  The tables have autovacuum off: a vacuum on them is a note too.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
# the standby reports its positions every second: replay_lag is fresh
$standby->append_conf('postgresql.conf', 'wal_receiver_status_interval = 1');
$standby->start;

sub query { return scalar $primary->safe_psql('postgres', $_[0]); }

sub job_row
{
	my ($id, $cols) = @_;
	return query("SELECT $cols FROM migrate.jobs WHERE id = $id");
}

# Poll job $id (every 100 ms, up to the default timeout) until $until (SQL
# over migrate.jobs j) holds; returns (whether it did, "state|note" when it
# did, the distinct non-null notes seen on the way, in order).
sub notes_until
{
	my ($id, $until) = @_;
	my (@notes, %seen);
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my ($done, $state, $note) = split /\|/,
		  query("SELECT ($until), j.state, coalesce(j.note, '') FROM migrate.jobs j WHERE j.id = $id"), 3;
		push @notes, $note if $note ne '' && !$seen{$note}++;
		return (1, "$state|$note", @notes) if $done eq 't';
		usleep(100_000);
	}
	return (0, '', @notes);
}

sub replay_lag_s
{
	return query(q{SELECT coalesce(extract(epoch FROM replay_lag), -1) FROM pg_stat_replication});
}

$primary->safe_psql(
	'postgres', q{
	CREATE EXTENSION migrate;
	-- no autovacuum: "vacuum is working on table" would be a note of its own
	CREATE TABLE big (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);
	INSERT INTO big (id) SELECT generate_series(1, 300000);
	ANALYZE big;
});
$primary->wait_for_catchup($standby);
is(query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'),
	't', 'jobs run as the test user, a superuser: pg_stat_replication.replay_lag is visible to it');

# ====================================================================
# 1. replica replay lag above migrate.batch_max_lag: the job waits
# ====================================================================
query(q{SELECT migrate_add('001', 'bump', 'UPDATE big SET n = n + 1 WHERE id > $1 AND id <= $2',
          batch => '{"table": "big", "size": 2000, "pause": "20 ms"}')});
my $job1 = query(q{SET migrate.batch_max_lag = '2s'; SELECT migrate_start()});
ok( $primary->poll_query_until('postgres',
		"SELECT batches_done >= 5 AND state = 'running' FROM migrate.jobs WHERE id = $job1"),
	'job 1 runs its batches (150 of 2000 rows)');

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my ($waits, $row, @notes) =
  notes_until($job1, q{j.note LIKE 'waiting: replica replay lag%' OR j.state <> 'running'});
ok($waits, 'with replay paused on the standby, job 1 ...');
like($row, qr/^running\|/, '... is still running');
like(
	$row,
	qr/\|waiting: replica replay lag ([2-9]|\d\d+)\.\d s is above migrate\.batch_max_lag \(2\.0 s\)$/,
	'... and waits: its note gives the lag (2 s or more) and the setting');
ok( (grep { /^slowed down: replica replay lag [12]\.\d s is above half of migrate\.batch_max_lag \(2\.0 s\)$/ } @notes),
	'before it waited, it slowed down, saying so (lag above half of the setting)')
  or diag explain \@notes;

# While it waits: batches_done stands still, replay_lag grows.
my $lag0 = replay_lag_s();
cmp_ok($lag0, '>', 2, "pg_stat_replication.replay_lag is above 2 s ($lag0 s)");
my $done0 = job_row($job1, 'batches_done');
cmp_ok($done0, '<', 150, "the walk is not over ($done0 of 150 batches)");
# the job looks at the lag every second: once replay_lag has grown by 2 s
# more, it has looked again at least once, and waited on
ok( $primary->poll_query_until('postgres',
		"SELECT extract(epoch FROM replay_lag) > $lag0 + 2 FROM pg_stat_replication"),
	'replay_lag grows by 2 s more while the job waits');
is(job_row($job1, 'batches_done'), $done0, 'batches_done did not advance meanwhile');
like(job_row($job1, 'state || note'), qr/^runningwaiting: replica replay lag/, 'the job still waits');
my $lag1 = replay_lag_s();
cmp_ok($lag1, '>', $lag0, "replay_lag keeps growing while replay is paused ($lag0 s, then $lag1 s)");

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok($primary->poll_query_until('postgres', "SELECT state = 'succeeded' FROM migrate.jobs WHERE id = $job1"),
	'replay resumed: job 1 goes on by itself and succeeds');
is(job_row($job1, 'batches_done || \'|\' || rows_done || \'|\' || coalesce(note, \'-\')'),
	'150|300000|-', 'job 1: 150 batches, 300000 rows, no note left');
is(query('SELECT count(*), min(n), max(n) FROM big'), '300000|1|1', 'every row was bumped once');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*), min(n), max(n) FROM big'),
	'300000|1|1', 'the standby has the same rows');

# ====================================================================
# 2. a session waits for the row locks of the running batch: slowed down
# ====================================================================
$primary->safe_psql(
	'postgres', q{
	CREATE TABLE slow (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);
	INSERT INTO slow (id) SELECT generate_series(1, 24000);
	CREATE TABLE stop_blocker ();
	-- the job's batches hold their row locks 300 ms; other sessions' updates are quick
	CREATE FUNCTION slow_batch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()) = 'migrate job' THEN
			PERFORM pg_sleep(0.3);
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER slow_batch AFTER UPDATE ON slow FOR EACH STATEMENT EXECUTE FUNCTION slow_batch();
	SELECT migrate_add('002', 'bump slow', 'UPDATE slow SET n = n + 1 WHERE id > $1 AND id <= $2',
	       batch => '{"table": "slow", "size": 2000, "pause": "20 ms"}');
});
my $job2 = query('SELECT migrate_start()');
ok($primary->poll_query_until('postgres', "SELECT batches_done >= 1 FROM migrate.jobs WHERE id = $job2"),
	'job 2 runs its batches (12 of 2000 rows, 300 ms each)');
is(job_row($job2, "coalesce(note, '-')"), '-', 'no note while nobody waits for it');

# Over and over, in transactions of its own: update the first key of the
# batch after the last committed one (the running batch's, or the next's).
my $blocker = $primary->background_psql('postgres');
$blocker->query_until(
	qr/blocking/, qq{
\\echo blocking
DO \$\$
DECLARE k int;
BEGIN
	LOOP
		EXIT WHEN EXISTS (SELECT FROM stop_blocker)
		       OR (SELECT state FROM migrate.jobs WHERE id = $job2) <> 'running';
		SELECT coalesce(max(last_key_text::int), 0) + 1 INTO k FROM migrate.batch_progress;
		UPDATE slow SET n = n WHERE id = k;
		COMMIT;
		PERFORM pg_sleep(0.01);
	END LOOP;
END \$\$;
});
($waits, $row, @notes) =
  notes_until($job2, q{j.note LIKE '%slowed down:%session%waited%' OR j.state <> 'running'});
ok($waits, 'with a session waiting for its row locks, job 2 ...');
is( $row,
	'running|slowed down: 1 session waited for the locks of the last batch (migrate.batch_max_blocked is 0)',
	'... still runs, slowed down, and says why');

query('INSERT INTO stop_blocker DEFAULT VALUES');
$blocker->quit;
ok($primary->poll_query_until('postgres', "SELECT state = 'succeeded' FROM migrate.jobs WHERE id = $job2"),
	'the session gone, job 2 succeeds');
is(job_row($job2, "batches_done || '|' || rows_done || '|' || coalesce(note, '-')"),
	'12|24000|-', 'job 2: 12 batches, 24000 rows, no note left');
is(query('SELECT count(*), min(n), max(n) FROM slow'), '24000|1|1',
	'every row was bumped once (the waiting updates set n = n)');

# ====================================================================
# 3. migrate.batch_max_lag = 0: replica lag is not looked at
# ====================================================================
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
query(q{SELECT migrate_add('003', 'bump again', 'UPDATE big SET n = n + 1 WHERE id > $1 AND id <= $2',
          batch => '{"table": "big", "size": 2000, "pause": "20 ms"}')});
ok( $primary->poll_query_until('postgres', q{SELECT replay_lag > '2s' FROM pg_stat_replication}),
	'replay paused again: replay_lag goes above 2 s');
my $job3 = query(q{SET migrate.batch_max_lag = 0; SELECT migrate_start()});
($waits, $row, @notes) = notes_until($job3, q{j.state <> 'running'});
is(job_row($job3, 'state'), 'succeeded', 'with migrate.batch_max_lag = 0, job 3 runs through');
is_deeply(\@notes, [], 'its note never named the replica (nor anything else)');
is(job_row($job3, 'batches_done'), '150', 'job 3: 150 batches');
is($standby->safe_psql('postgres', 'SELECT pg_is_wal_replay_paused()'), 't', 'replay was paused all along');
cmp_ok(replay_lag_s(), '>', 2, 'and replay_lag is still above 2 s');
is(query('SELECT count(*), min(n), max(n) FROM big'), '300000|2|2', 'every row was bumped once more');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*), min(n), max(n) FROM big'),
	'300000|2|2', 'replay resumed, the standby has them');

# ====================================================================
# 4. new options for a running job: the migration registered again with the
#    same text and a bigger size, no pause; the job takes them before its
#    next batch (README: "To change size, target or pause of a running job")
# ====================================================================
query(q{CREATE TABLE tune (id int PRIMARY KEY, n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);
        INSERT INTO tune (id) SELECT generate_series(1, 20000)});
my $tune_sql = 'UPDATE tune SET n = n + 1 WHERE id > $1 AND id <= $2';
query(qq{SELECT migrate_add('004', 'tune', '$tune_sql', batch => '{"table": "tune", "size": 100, "pause": "200 ms"}')});
my $job4 = query('SELECT migrate_start()');
ok( $primary->poll_query_until('postgres',
		"SELECT batches_done >= 2 FROM migrate.jobs WHERE id = $job4"),
	'job 4 walks 100 keys a batch, 200 ms apart (200 batches would take 40 s)');
query(qq{SELECT migrate_add('004', 'tune', '$tune_sql', batch => '{"table": "tune", "size": 5000}')});
is(query(q{SELECT action FROM migrate.history WHERE version = '004' ORDER BY id DESC LIMIT 1}), 'update',
	'registering the same text with new options is an update');
ok($primary->poll_query_until('postgres', "SELECT state = 'succeeded' FROM migrate.jobs WHERE id = $job4"),
	'job 4 succeeds');
my $batches = job_row($job4, 'batches_done');
cmp_ok($batches, '<', 20, "... in $batches batches: it took the new size (5000) before its next batch");
is(query('SELECT count(*), min(n), max(n) FROM tune'), '20000|1|1', 'every row was bumped once');

$standby->stop;
$primary->stop;
done_testing();
