# A backend killed with SIGKILL in the middle of registering a large
# directory (migrate_add_scripts), of migrate_apply() and of CALL
# migrate_run() leaves a catalog that tells the truth after crash recovery:
#
#  - registration is all or nothing: none of the killed batch is registered,
#    and no history row names it; registering the batch again registers all;
#  - migrate_apply() runs in the caller's transaction: nothing of it is kept;
#  - migrate_run() commits after each migration: exactly the migrations
#    committed before the kill are applied;
#  - at every point a migration is applied iff its table exists, and
#    migrate_validate() finds no problem.
#
# "In the middle" is made certain, never guessed with a sleep: a second
# session holds what the killed backend needs at a chosen point (an
# uncommitted catalog row with the key of a file in the middle of the
# batch; a migration that waits in pg_sleep), and the test polls
# pg_stat_activity until the backend waits there.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $nfiles = $ENV{MIGRATE_CRASH_FILES} // 3000;    # files in the directory
my $middle = int($nfiles / 2);
my $nmig = 40;                                       # migrations to apply
my $slow = 25;                                       # the one that waits

my $node = PostgreSQL::Test::Cluster->new('crashreg');
$node->init;
# Cluster.pm turns this off; the postmaster must reinitialise after SIGKILL.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

sub query { return scalar $node->safe_psql('postgres', $_[0]); }

# Kill the backend whose query matches $like once it waits as $wait says
# (after $before->($pid), if given); wait for crash recovery to end.
sub kill_when_waiting
{
	my ($like, $wait, $what, $before) = @_;
	my $cond = qq{query LIKE '$like' AND pid <> pg_backend_pid() AND $wait};
	ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE $cond"),
		"$what is waiting where it should");
	my $pid = query("SELECT pid FROM pg_stat_activity WHERE $cond");
	like($pid, qr/^\d+$/, "pid of the backend running $what");
	$before->($pid) if $before;
	my $offset = -s $node->logfile;
	ok(kill('KILL', $pid), "SIGKILL to $what (backend $pid)");
	# A connection may succeed before the postmaster has even noticed the
	# death: wait for its log lines, then for the end of crash recovery.
	ok(eval { $node->wait_for_log(qr/server process \(PID $pid\) was terminated by signal 9/, $offset) },
		'the postmaster saw the backend die of SIGKILL');
	ok(eval { $node->wait_for_log(qr/all server processes terminated; reinitializing(?s:.*)database system is ready to accept connections/, $offset) },
		'the postmaster reinitialised and is ready');
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'the server accepts connections again');
}

# ------------------------------------------------------------ registration
# A directory of $nfiles files: NNNNN_tNNNNN.sql, each creating its table,
# with a down section.
my $files_sql = qq{
	ARRAY(SELECT format('%s_t%s.sql', lpad(g::text, 5, '0'), g) FROM generate_series(1, $nfiles) g),
	ARRAY(SELECT format(E'-- migrate:up\\nCREATE TABLE t%s (id int PRIMARY KEY);\\n'
	                    '-- migrate:down\\nDROP TABLE t%s;\\n', g, g)
	        FROM generate_series(1, $nfiles) g)};

# A session inserts, without committing, the catalog row of the file in the
# middle: the batch writes the files before it, then waits on that row.
my $holder = $node->background_psql('postgres', on_error_stop => 1);
my $mid_version = sprintf('%05d', $middle);
$holder->query_safe(qq{
	BEGIN;
	INSERT INTO migrate.migrations (version_key, version, name, up, checksum, registered_by)
	VALUES (migrate_version_key('$mid_version'), '$mid_version', 'held', 'SELECT 1',
	        migrate_checksum('SELECT 1'), current_user);
});

my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/,
	"\\echo started\nSELECT count(*) FROM migrate_add_scripts($files_sql);\n");
# Its history rows are written as it goes: holding a write lock on
# migrate.history shows that it has registered files already.
sub history_written
{
	my ($pid) = @_;
	return query(qq{SELECT count(*) FROM pg_locks
	                 WHERE pid = $pid AND relation = 'migrate.history'::regclass AND granted
	                   AND mode = 'RowExclusiveLock'});
}
kill_when_waiting('%migrate_add_scripts%', q{wait_event = 'transactionid'},
	"migrate_add_scripts() of $nfiles files",
	sub { is(history_written($_[0]), '1', 'the batch has written to the catalog before it waits'); });
eval { $bg->quit; };
eval { $holder->quit; };

is(query('SELECT count(*) FROM migrate.migrations'), '0', 'no file of the killed batch is registered');
is(query('SELECT count(*) FROM migrate.history'), '0', 'no history row names the killed batch');
is(query('SELECT count(*) FROM migrate_validate()'), '0', 'migrate_validate() finds no problem');

# The same batch again registers all of it.
is(query("SELECT count(*) FROM migrate_add_scripts($files_sql) WHERE result = 'new'"),
	$nfiles, "the batch registers again: all $nfiles files");
is(query('SELECT count(*) FROM migrate.migrations WHERE down IS NOT NULL'), $nfiles,
	'every migration has its down script');
is(query(q{SELECT count(*) FROM migrate.history WHERE action = 'register'}), $nfiles,
	'one register history row per file');

# A second batch killed while it waits for the catalog lock (before it
# writes anything): the first batch is untouched.
$holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe(q{BEGIN; SELECT migrate_add('99999', 'lock holder', 'SELECT 1');});
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/,
	"\\echo started\nSELECT count(*) FROM migrate_add_scripts(ARRAY['90000_x.sql', '90001_y.sql'], ARRAY['SELECT 1', 'SELECT 2']);\n");
kill_when_waiting('%migrate_add_scripts%', q{wait_event_type = 'Lock'},
	'migrate_add_scripts() waiting for the catalog lock',
	sub { is(history_written($_[0]), '0', 'the batch has written nothing before it waits'); });
eval { $bg->quit; };
eval { $holder->quit; };
is(query('SELECT count(*) FROM migrate.migrations'), $nfiles, 'the first batch is still registered, nothing more');
is(query(q{SELECT count(*) FROM migrate.migrations WHERE version IN ('90000', '90001', '99999')}), '0',
	'neither the killed batch nor the holder\'s migration is registered');

# Start over with a small catalog for the applies.
$node->safe_psql('postgres', 'DROP EXTENSION migrate; CREATE EXTENSION migrate');

# ------------------------------------------------------------ apply
# $nmig migrations, each creating table a<i>; migration $slow waits in
# pg_sleep after creating its table.
$node->safe_psql('postgres', qq{
	SELECT count(*) FROM migrate_add_scripts(
	    ARRAY(SELECT format('%s_a%s.sql', lpad(g::text, 3, '0'), g) FROM generate_series(1, $nmig) g),
	    ARRAY(SELECT format('CREATE TABLE a%s (id int PRIMARY KEY); INSERT INTO a%s VALUES (1);', g, g)
	                 || CASE WHEN g = $slow THEN ' SELECT pg_sleep(600);' ELSE '' END
	            FROM generate_series(1, $nmig) g));
});

# Applied iff its table exists, for every migration; and the number applied.
sub consistent
{
	my ($what, $expect_applied) = @_;
	is( query(qq{
		SELECT count(*) FROM migrate_status() s
		 WHERE (s.state = 'applied') <> (to_regclass('public.a' || ltrim(s.version, '0')) IS NOT NULL)}),
		'0', "$what: a migration is applied iff its table exists");
	is(query(q{SELECT count(*) FROM migrate_status() WHERE state = 'applied'}),
		$expect_applied, "$what: $expect_applied migrations applied");
	is(query(q{SELECT count(*) FROM migrate.applied}),
		$expect_applied, "$what: $expect_applied rows in migrate.applied");
	is(query(q{SELECT count(*) FROM migrate.history WHERE action = 'apply'}),
		$expect_applied, "$what: $expect_applied apply history rows");
	is(query('SELECT count(*) FROM migrate_validate()'), '0', "$what: migrate_validate() finds no problem");
}

# pg_stat_activity names the migration and statement that runs
my $slow_running = sprintf('/* migrate: Migration %03d %%', $slow);
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, "\\echo started\nSELECT count(*) FROM migrate_apply();\n");
kill_when_waiting($slow_running, q{wait_event = 'PgSleep'},
	"migrate_apply() in migration $slow of $nmig");
eval { $bg->quit; };
consistent('after the kill in migrate_apply()', 0);

# ------------------------------------------------------------ run
# migrate_run() commits after each migration: those before $slow stay.
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, "\\echo started\nCALL migrate_run();\n");
kill_when_waiting($slow_running, q{wait_event = 'PgSleep'},
	"CALL migrate_run() in migration $slow of $nmig");
eval { $bg->quit; };
consistent('after the kill in migrate_run()', $slow - 1);
my $slow_version = sprintf('%03d', $slow);
is(query(qq{SELECT count(*) FROM migrate.history WHERE version = '$slow_version'}), '1',
	"migration $slow: only its register row in history (no apply, no failure)");

# Replace the slow migration and finish.
$node->safe_psql('postgres',
	qq{SELECT migrate_add('$slow_version', 'a$slow', 'CREATE TABLE a$slow (id int PRIMARY KEY); INSERT INTO a$slow VALUES (1);')});
is(query('SELECT count(*) FROM migrate_apply()'), $nmig - $slow + 1, 'the rest applies');
consistent('after the rest applied', $nmig);
is(query('SELECT migrate_verify() > 0'), 't', 'migrate_verify() passes');

$node->stop;
done_testing();
