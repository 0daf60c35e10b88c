# Crash safety of migrate_apply(), the migration lock seen from a second
# session, and the progress NOTICE format.
#
#  - a backend killed with SIGKILL in the middle of a migration leaves no
#    trace of it: still pending, its table absent, no 'apply' history row;
#    the migration can then be replaced and applied;
#  - an applied migration survives an immediate shutdown (no checkpoint:
#    the catalog row and the table come back from WAL together);
#  - lock_timeout expiry gives 55P03 naming the session that holds the lock;
#  - migrate_apply() reports "[i/n] version name ... ok N ms" per migration.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
# Cluster.pm turns this off; the SIGKILL test needs the postmaster to
# reinitialise after a backend crash.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;

# Run SQL in database postgres; returns (exit code, stdout, stderr).  Errors
# are printed with their SQLSTATE (VERBOSITY verbose).
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

$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

# ------------------------------------------------------------ 001, applied
$node->safe_psql(
	'postgres', q{
	SET client_min_messages = warning;
	SELECT migrate_add('001', 'create a', 'CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1), (2), (3);');
	SELECT count(*) FROM migrate_apply();
});
is(query(q{SELECT state FROM migrate_status() WHERE version = '001'}),
	'applied', '001 applied');

# ------------------------------------------------------------ 002 killed mid-way
my $slow_up =
  'CREATE TABLE big AS SELECT g FROM generate_series(1, 1000) g; SELECT pg_sleep(300);';
$node->safe_psql('postgres',
	"SELECT migrate_add('002', 'big', \$m\$$slow_up\$m\$)");

my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, qq{\\echo started\nSELECT * FROM migrate_apply();\n});

# The apply is inside the migration's pg_sleep(): big exists, uncommitted.
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE wait_event = 'PgSleep' AND query LIKE '/* migrate: Migration 002 %'}),
	'migrate_apply() is running 002 (waiting in pg_sleep; pg_stat_activity names the migration)');
my $apply_pid = query(
	q{SELECT pid FROM pg_stat_activity
	   WHERE wait_event = 'PgSleep' AND query LIKE '/* migrate: Migration 002 %'});
like($apply_pid, qr/^\d+$/, 'pid of the applying backend');

my $log_offset = -s $node->logfile;
ok(kill('KILL', $apply_pid), "SIGKILL sent to backend $apply_pid");

# The postmaster terminates every backend and reinitialises (crash recovery).
ok( $node->poll_query_until('postgres', 'SELECT 1', '1'),
	'server accepts connections again after the crash');
ok( $node->log_contains(
		qr/server process \(PID $apply_pid\) was terminated by signal 9/,
		$log_offset),
	'the postmaster saw the backend die of SIGKILL');
ok($node->log_contains(qr/all server processes terminated; reinitializing/,
		$log_offset),
	'the postmaster reinitialised');
eval { $bg->quit; };    # its connection is gone; psql has exited or will

is( query(
		q{SELECT string_agg(version || '=' || state, ',' ORDER BY version) FROM migrate_status()}
	),
	'001=applied,002=pending',
	'after the crash: 001 still applied, 002 pending');
is(query(q{SELECT to_regclass('public.big') IS NULL}),
	't', 'table big of the killed migration does not exist');
is(query(q{SELECT count(*) FROM a}), '3', 'table a of 001 is intact');
is( query(
		q{SELECT count(*) FROM migrate.history WHERE version = '002' AND action = 'apply'}),
	'0',
	'no apply history row for 002');
is(query(q{SELECT count(*) FROM migrate.applied WHERE version = '002'}),
	'0', 'no applied row for 002');
is(query(q{SELECT count(*) FROM migrate_validate()}),
	'0', 'migrate_validate() finds no problem');

# Replace the pending 002 with a fast version and apply it.
$node->safe_psql('postgres',
	q{SELECT migrate_add('002', 'big', 'CREATE TABLE big AS SELECT g FROM generate_series(1, 1000) g;')}
);
is( query(
		q{SELECT string_agg(action, ',' ORDER BY id) FROM migrate.history WHERE version = '002'}),
	'register,replace',
	'002 registered, then replaced');
is( query(
		q{SET client_min_messages = warning; SELECT version || ' ' || action FROM migrate_apply()}),
	'002 applied',
	'the replaced 002 applies (no lock left behind by the killed backend)');
is(query(q{SELECT count(*) FROM big}), '1000', 'table big has its rows');

# ------------------------------------------------------------ immediate stop
$node->safe_psql(
	'postgres', q{
	SET client_min_messages = warning;
	SELECT migrate_add('003', 'create c', 'CREATE TABLE c (id int PRIMARY KEY, a_id int REFERENCES a); INSERT INTO c VALUES (1, 1), (2, 2);',
	                   verify => 'SELECT count(*) = 2 FROM c');
	SELECT count(*) FROM migrate_apply();
});
$node->stop('immediate');
$node->start;

is( query(
		q{SELECT string_agg(version || '=' || state, ',' ORDER BY version) FROM migrate_status()}
	),
	'001=applied,002=applied,003=applied',
	'after an immediate stop: all three applied');
is(query(q{SELECT count(*) FROM c}), '2', 'table c of 003 is present');
is( query(
		q{SELECT count(*) FROM migrate.history WHERE version = '003' AND action = 'apply'}),
	'1',
	'one apply history row for 003');
# Checks: the checksum and the indexes of the table each migration touched
# (a, big, c); the verify query of 003; the foreign key c -> a, both for 003
# (on c) and for 001 (it references a).
is( query(
		q{SELECT string_agg(version || ' ' || "check" || ' ' || ok, ', ' ORDER BY version, "check") FROM migrate_check()}
	),
	'001 checksum true, 001 foreign key true, 001 indexes true, '
	  . '002 checksum true, 002 indexes true, '
	  . '003 checksum true, 003 foreign key true, 003 indexes true, 003 verify true',
	'migrate_check(): every check passes');
is(query(q{SELECT migrate_verify()}), '9', 'migrate_verify() passes 9 checks');

# ------------------------------------------------------------ lock_timeout
$node->safe_psql(
	'postgres', q{
	SELECT migrate_add('004', 'create d', 'CREATE TABLE d (id int);');
	SELECT migrate_add('005', 'create e', 'CREATE TABLE e (id int);');
});
my $holder = $node->background_psql('postgres');
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_safe(
	'SET client_min_messages = warning; BEGIN; SELECT count(*) FROM migrate_apply()');
my ($rc, $out, $err) = run_sql(
	q{SET lock_timeout = '200ms'; SELECT count(*) FROM migrate_apply();});
isnt($rc, 0, 'migrate_apply() fails while another session holds the lock');
like(
	$err,
	qr/ERROR:  55P03: could not obtain the migration lock within lock_timeout \(200ms\)/,
	'55P03 with the lock_timeout in effect');
like(
	$err,
	qr/DETAIL:  Process $holder_pid .* holds it, in a transaction started at /,
	'DETAIL names the holding backend');
like($err, qr/Process \d+ .* holds it, in a transaction started at/, 'DETAIL format');

# migrate_add() queues behind the same lock.
($rc, $out, $err) = run_sql(
	q{SET lock_timeout = '200ms'; SELECT migrate_add('006', 'create f', 'CREATE TABLE f (id int);');}
);
like(
	$err,
	qr/55P03: could not obtain the migration lock/,
	'migrate_add() also times out on the lock');

$holder->query_safe('ROLLBACK');
$holder->quit;
is( query(
		q{SELECT string_agg(version, ',' ORDER BY version) FROM migrate_status() WHERE state = 'pending'}
	),
	'004,005',
	'the holder rolled back: 004 and 005 still pending, 006 not registered');

# ------------------------------------------------------------ progress NOTICEs
my $stderr;
$rc = $node->psql(
	'postgres', q{SELECT count(*) FROM migrate_apply();},
	stdout => \$out,
	stderr => \$stderr);
is($rc, 0, 'migrate_apply() of 004 and 005');
is($out, '2', 'two migrations applied');
like(
	$stderr,
	qr/NOTICE:  \[1\/2\] 004 \S.* \.\.\. ok \d+ ms/,
	'progress NOTICE for 004');
like(
	$stderr,
	qr/^(?:psql:\S+ )?NOTICE:  \[1\/2\] 004 create d \.\.\. ok \d+ ms\n(?:psql:\S+ )?NOTICE:  \[2\/2\] 005 create e \.\.\. ok \d+ ms$/m,
	'progress NOTICEs, exact format and order');

$node->stop;
done_testing();
