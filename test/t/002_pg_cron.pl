# migrate_verify() as a pg_cron job: a scheduled run succeeds while the
# database is as the migrations left it, and fails with the broken check's
# message once an invariant (a migration's verify query) or a constraint
# (rows written under session_replication_role = replica) is broken.
#
# pg_cron 1.4 runs jobs at most once a minute, so the scenarios run side by
# side, one job per database, and the whole test takes two cron ticks:
#
#   database        tick 1                         tick 2
#   cron_ok         clean -> succeeded             (not waited for)
#   cron_invariant  clean -> succeeded             tasks.tool_id NULL -> failed (verify of 002)
#   cron_fk         FK broken -> failed (23503)    row removed -> succeeded
#   cron_job        SELECT migrate_start(): its background job applies a
#                   pending CREATE INDEX CONCURRENTLY after the cron
#                   session has gone (then unscheduled)
#
# pg_cron runs in libpq mode and connects over the node's unix socket only.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

# Longest wait for one cron run: the next minute boundary, plus slack.
my $run_wait = 150;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
my $sockdir = $node->host;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '$sockdir'
cron.use_background_workers = off
log_connections = on
});
$node->start;

is($node->safe_psql('postgres', 'SHOW listen_addresses'),
	'', 'the node listens on no TCP address');
like($sockdir, qr{^/}, 'cron.host is the node\'s socket directory');

my $su = $node->safe_psql('postgres', 'SELECT current_user');
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$su'"),
	't', "jobs run as the superuser $su");

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');

my $up_001 = q{
CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tasks (id int PRIMARY KEY, tool_id int REFERENCES tools);
INSERT INTO tools SELECT g, 'tool ' || g FROM generate_series(1, 3) g;
INSERT INTO tasks SELECT g, 1 + g % 3 FROM generate_series(1, 10) g;
};
my @dbs = qw(cron_ok cron_invariant cron_fk);
for my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql(
		$db, qq{
		SET client_min_messages = warning;
		CREATE EXTENSION migrate;
		SELECT migrate_add('001', 'tools and tasks', \$m\$$up_001\$m\$);
		SELECT migrate_add('002', 'index tasks by tool',
		                   'CREATE INDEX tasks_tool_id_idx ON tasks (tool_id);',
		                   verify => 'SELECT count(*) = 0 FROM tasks WHERE tool_id IS NULL');
		SELECT count(*) FROM migrate_apply();
	});
	is( $node->safe_psql(
			$db, q{SELECT string_agg(version || '=' || state, ',' ORDER BY version) FROM migrate_status()}),
		'001=applied,002=applied',
		"$db: migrations applied");
}
my $checks = $node->safe_psql('cron_ok', 'SELECT migrate_verify()');
like($checks, qr/^[1-9]\d*$/, "migrate_verify() passes by hand ($checks checks)");

# cron_fk: a row that violates the foreign key, written with triggers off.
$node->safe_psql(
	'cron_fk', q{
	SET session_replication_role = replica;
	INSERT INTO tasks VALUES (99, 999);
});
my ($rc, $out, $err) = $node->psql('cron_fk', 'SELECT migrate_verify()');
like($err, qr/foreign key constraint .* is violated/,
	'cron_fk: migrate_verify() by hand reports the broken foreign key');

# cron_job: a pending migration that only a background job can apply.
$node->safe_psql('postgres', 'CREATE DATABASE cron_job');
$node->safe_psql(
	'cron_job', q{
	SET client_min_messages = warning;
	CREATE EXTENSION migrate;
	CREATE TABLE events (id int PRIMARY KEY, kind int);
	INSERT INTO events SELECT g, g % 7 FROM generate_series(1, 50000) g;
	SELECT migrate_add('001', 'index events by kind', 'CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind);');
	SELECT count(*) FROM migrate_apply();
});
is($node->safe_psql('cron_job', q{SELECT state FROM migrate_status()}),
	'pending', 'cron_job: migrate_apply() leaves the concurrent index build pending');

# One job per database, scheduled in one statement (same minute, if lucky).
my %job;
my $jobs = $node->safe_psql(
	'postgres',
	'SELECT '
	  . join(
		', ',
		(map {
			"cron.schedule_in_database('verify $_', '* * * * *', 'SELECT migrate_verify()', '$_')"
		} @dbs),
		q{cron.schedule_in_database('start cron_job', '* * * * *', 'SELECT migrate_start()', 'cron_job')}));
@job{@dbs, 'cron_job'} = split /\|/, $jobs;
for my $db (@dbs)
{
	like($job{$db}, qr/^\d+$/, "$db: job $job{$db} scheduled");
}
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(DISTINCT username, ',') FROM cron.job WHERE command = 'SELECT migrate_verify()'}
	),
	$su,
	"the jobs' user is $su");

# Highest runid of a job so far (runs that already started count).
sub last_runid
{
	my ($jobid) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(max(runid), 0) FROM cron.job_run_details WHERE jobid = $jobid"
	);
}

# Wait for the first finished run of $jobid with runid > $after; returns
# (runid, status, return_message), or () after $run_wait seconds.
sub wait_for_run
{
	my ($jobid, $after) = @_;
	my $deadline = time() + $run_wait;
	while (time() < $deadline)
	{
		my $row = $node->safe_psql(
			'postgres', qq{
			SELECT runid || E'\\x1f' || status || E'\\x1f' || coalesce(return_message, '')
			  FROM cron.job_run_details
			 WHERE jobid = $jobid AND runid > $after
			   AND status IN ('succeeded', 'failed')
			 ORDER BY runid LIMIT 1});
		return split /\x1f/, $row, 3 if $row ne '';
		usleep(500_000);
	}
	diag "no finished run of job $jobid after run $after within $run_wait s:\n"
	  . $node->safe_psql('postgres',
		"SELECT * FROM cron.job_run_details WHERE jobid = $jobid ORDER BY runid");
	return ();
}

# ------------------------------------------------------------ tick 1
my $t0 = time();
my %run;
for my $db (@dbs)
{
	$run{$db} = [ wait_for_run($job{$db}, 0) ];
}
note sprintf('first runs seen after %.0f s', time() - $t0);

is($run{cron_ok}[1], 'succeeded', 'cron_ok: the job succeeds');
is($run{cron_invariant}[1], 'succeeded',
	'cron_invariant: the job succeeds while the invariant holds');
is($run{cron_fk}[1], 'failed', 'cron_fk: the job fails');
like(
	$run{cron_fk}[2] // '',
	qr/foreign key constraint "tasks_tool_id_fkey" on table "tasks" is violated/,
	'cron_fk: return_message names the violated foreign key');

# cron_job: the run only queued a job; its worker applies 001.
my @start = wait_for_run($job{cron_job}, 0);
$node->safe_psql('postgres', "SELECT cron.unschedule($job{cron_job})");
is($start[1], 'succeeded', 'cron_job: SELECT migrate_start() succeeds');
ok( $node->poll_query_until(
		'cron_job', q{SELECT state IN ('succeeded', 'failed', 'cancelled') FROM migrate.jobs ORDER BY id LIMIT 1}),
	'cron_job: the background job ends');
is( $node->safe_psql(
		'cron_job', q{SELECT role || ' ' || state || ' ' || steps_done FROM migrate.jobs ORDER BY id LIMIT 1}),
	"$su succeeded 1",
	"cron_job: the job ran as $su and applied one migration");
is($node->safe_psql('cron_job', q{SELECT state FROM migrate_status()}),
	'applied', 'cron_job: 001 applied');
is( $node->safe_psql(
		'cron_job', q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_idx'::regclass}),
	't', 'cron_job: the index is valid');

# ------------------------------------------------------------ tick 2
# Break the invariant of 002 in cron_invariant; repair cron_fk.
$node->safe_psql('cron_invariant', 'INSERT INTO tasks VALUES (50, NULL)');
$node->safe_psql('cron_fk',
	'SET session_replication_role = replica; DELETE FROM tasks WHERE id = 99');
my %after = map { $_ => last_runid($job{$_}) } qw(cron_invariant cron_fk);

my @inv = wait_for_run($job{cron_invariant}, $after{cron_invariant});
is($inv[1], 'failed',
	'cron_invariant: the next run fails once tool_id is NULL somewhere');
like(
	$inv[2] // '',
	qr/verify query of migration 002 failed/,
	'cron_invariant: return_message names the failed verify query');

my @fk = wait_for_run($job{cron_fk}, $after{cron_fk});
is($fk[1], 'succeeded', 'cron_fk: the next run succeeds after the repair');
note sprintf('second runs seen after %.0f s', time() - $t0);

# A failed verification changes nothing: no history rows, no state change.
for my $db (@dbs)
{
	is( $node->safe_psql(
			$db,
			q{SELECT string_agg(action, ',' ORDER BY id) FROM migrate.history}),
		'register,register,apply,apply',
		"$db: history holds only the registrations and applies");
}

# The job runs were libpq connections over the unix socket.
my $log = slurp_file($node->logfile);
ok($log =~ /connection authorized: user=\Q$su\E database=cron_invariant application_name=pg_cron/,
	'pg_cron connected to cron_invariant as a libpq client');
my @hosts = $log =~ /connection received: host=(\S+)/g;
ok(@hosts && !grep({ $_ ne '[local]' } @hosts),
	'every connection came over the unix socket');

$node->safe_psql('postgres',
	"SELECT cron.unschedule(jobid) FROM cron.job");
$node->stop;
done_testing();
