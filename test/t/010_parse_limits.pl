# Registering a big script: interruptible, bounded in memory, and the server
# stays up.
#
#  - pg_cancel_backend() while migrate_add() splits a 50 MB script (5
#    million statements; the whole call takes seconds): the statement ends
#    with 57014 within a second (the split checks for interrupts between any
#    two tokens);
#  - pg_terminate_backend() likewise ends the backend within a second;
#  - registering a 35 MB script of one-line INSERTs raises the backend's
#    peak memory (VmHWM, /proc/<pid>/status) by less than 12 times the text
#    (the parse trees of all statements are never kept at once), and gives
#    the right line for an error near the end;
#  - the server is up throughout.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('parse_limits');
$node->init;
$node->start;

sub query { return scalar $node->safe_psql('postgres', $_[0]); }

# The scripts, made on the server and stored uncompressed, so that reading
# them back costs little.
query(
	q{
	CREATE EXTENSION migrate;
	CREATE TABLE src (k text PRIMARY KEY, s text);
	ALTER TABLE src ALTER s SET STORAGE EXTERNAL;
	INSERT INTO src SELECT 'selects', repeat(E'SELECT 1;\n', 5000000);
	INSERT INTO src
	SELECT 'inserts', string_agg(format('INSERT INTO big (id, name) VALUES (%s, %L);', g, 'row ' || g), E'\n')
	  FROM generate_series(1, 600000) g;
});
my $selects_bytes = query(q{SELECT octet_length(s) FROM src WHERE k = 'selects'});
my $inserts_bytes = query(q{SELECT octet_length(s) FROM src WHERE k = 'inserts'});
cmp_ok($selects_bytes, '>=', 50_000_000, "a script of $selects_bytes bytes (5 million statements)");

# Start migrate_add() of the big script in a second session; returns the
# session and its backend's pid once the call is running.
sub start_registration
{
	my ($label) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	chomp $pid;
	$bg->query_until(qr/started/,
		qq{\\echo started\nSELECT length(migrate_add('1', 'big', s)) FROM src WHERE k = 'selects';\n});
	# Reading the argument and its checksum take a small part of the call;
	# half a second into it, the script is being split.
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE pid = $pid AND state = 'active' AND query LIKE '%migrate_add%'
		   AND clock_timestamp() - query_start > interval '0.5 s'}),
		"$label: migrate_add() of the big script has run for half a second");
	return ($bg, $pid);
}

# ------------------------------------------------------------ cancel
{
	my ($bg, $pid) = start_registration('cancel');
	my $t0 = time;
	is(query("SELECT pg_cancel_backend($pid)"), 't', 'pg_cancel_backend() sent');
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT state LIKE 'idle%' FROM pg_stat_activity WHERE pid = $pid}),
		'the registration ends');
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 1.0, sprintf('... within a second of the cancel (%.2f s)', $elapsed));
	$bg->query('SELECT 1');
	like($bg->{stderr}, qr/canceling statement due to user request/, 'the call was cancelled');
	is(query(q{SELECT count(*) FROM migrate.migrations}), '0', 'nothing registered');
	$bg->quit;
}

# ------------------------------------------------------------ terminate
{
	my ($bg, $pid) = start_registration('terminate');
	my $t0 = time;
	is(query("SELECT pg_terminate_backend($pid)"), 't', 'pg_terminate_backend() sent');
	ok( $node->poll_query_until(
			'postgres', qq{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid}),
		'the backend ends');
	my $elapsed = time - $t0;
	cmp_ok($elapsed, '<', 1.0, sprintf('... within a second of the terminate (%.2f s)', $elapsed));
	eval { $bg->quit; };    # its connection is gone
}

is(query('SELECT 1'), '1', 'the server is up');

# ------------------------------------------------------------ memory
# Peak resident memory of one backend, before and after registering the
# 35 MB script.  The text itself is copied a few times (the argument, the C
# string, the scanner's buffer, the catalog row and its TOAST); the parse
# trees of its 600,000 statements are never kept at once.
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	chomp $pid;
	my $hwm = sub {
		open(my $fh, '<', "/proc/$pid/status") or die "cannot read /proc/$pid/status: $!";
		my ($kb) = map { /^VmHWM:\s+(\d+) kB/ ? $1 : () } <$fh>;
		close $fh;
		return $kb * 1024;
	};
	$bg->query_safe(q{SELECT count(*) FROM src});    # warm the session up
	my $before = $hwm->();
	my $t0 = time;
	my $checksum = $bg->query_safe(
		q{SELECT length(migrate_add('2', 'inserts', s)) FROM src WHERE k = 'inserts'});
	my $seconds = time - $t0;
	chomp $checksum;
	is($checksum, '64', sprintf('the 35 MB script is registered (%.2f s)', $seconds));
	my $growth = $hwm->() - $before;
	cmp_ok(
		$growth, '<',
		12 * $inserts_bytes,
		sprintf(
			'peak memory grew by %.0f MB, %.1f times the %.0f MB text',
			$growth / 1048576,
			$growth / $inserts_bytes,
			$inserts_bytes / 1048576));

	# a syntax error near the end names its line, counted on from the
	# previous statement rather than from the start of the text
	$bg->query(
		q{SELECT migrate_add('3', 'broken', s || E'\nINSERT INTO big VALUES (1,;') FROM src WHERE k = 'inserts'});
	like($bg->{stderr}, qr/In the up script of migration 3, line 600001\./,
		'a syntax error on the last line names line 600001');
	$bg->quit;
}

is(query(q{SELECT string_agg(version, ',') FROM migrate.migrations}), '2', 'migration 2 registered, 1 and 3 not');
is(query('SELECT 1'), '1', 'the server is still up');

$node->stop;
done_testing();
