# The requirement graph at sizes that once crashed or hung the server.
#
#  - 100,000 files in one migrate_add_scripts() call, each requiring the
#    next: registration, migrate_plan(), migrate_apply(), migrate_status()
#    and migrate_validate() complete in the same backend (a recursive walk
#    overflowed the stack: SIGSEGV, every session reset);
#  - 40 migrations each requiring the two before it: planned and applied
#    under statement_timeout = 1s (a walk path by path took seconds);
#  - 10,000 migrations each requiring the previous two or three: planned in
#    version order and applied;
#  - pg_cancel_backend() during planning of that graph ends the statement
#    within a second (every walk checks for interrupts).
#
# Times are printed (note), never asserted, except the cancel.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('graph');
$node->init;
$node->append_conf('postgresql.conf', 'fsync = off');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE chain');
$node->safe_psql('postgres', 'CREATE DATABASE dense');
$node->safe_psql('postgres', 'CREATE DATABASE ladder');
$node->safe_psql($_, 'CREATE EXTENSION migrate') for qw(chain dense ladder);

my $log_offset = -s $node->logfile;

# Run a query in a background session, returning (output, stderr of it).
sub timed
{
	my ($session, $what, $sql) = @_;
	$session->{stderr} = '';
	my $t0 = time;
	my $out = $session->query($sql);
	note sprintf('%s: %.0f ms', $what, (time - $t0) * 1000);
	return ($out, $session->{stderr});
}

# ---------------------------------------------------------------- a chain of 100,000
my $n = 100_000;
my $s = $node->background_psql('chain', on_error_stop => 0);
$s->query_safe('SET client_min_messages = warning');
my $pid = $s->query_safe('SELECT pg_backend_pid()');

my ($out, $err) = timed($s, "register a chain of $n", qq{
SELECT count(*) FROM migrate_add_scripts(
    ARRAY(SELECT format('V%s__m%s.sql', g, g) FROM generate_series(1, $n) g),
    ARRAY(SELECT CASE WHEN g < $n THEN format(E'-- migrate:requires %s\\nSELECT %s;', g + 1, g)
                      ELSE 'SELECT 0;' END
            FROM generate_series(1, $n) g))});
is($out, $n, "one migrate_add_scripts() call registers $n files, each requiring the next");
is($err, '', 'without an error');

($out, $err) = timed($s, 'plan the chain', q{
SELECT count(*) || ' ' || min(version) FILTER (WHERE step = 1) || ' ' || min(version) FILTER (WHERE step = 100000)
  FROM migrate_plan()});
is($out, "$n $n 1", "migrate_plan(): $n steps, the last required first, 1 last");

($out, $err) = timed($s, 'apply the chain',
	q{SELECT count(*) FILTER (WHERE action = 'applied') FROM migrate_apply()});
is($out, $n, "migrate_apply() applies all $n");

($out, $err) = timed($s, 'status of the chain',
	q{SELECT count(*) FILTER (WHERE state = 'applied') FROM migrate_status()});
is($out, $n, "migrate_status(): $n applied");
($out, $err) = timed($s, 'validate the chain', q{SELECT count(*) FROM migrate_validate()});
is($out, '0', 'migrate_validate(): no problem');

is($s->query('SELECT pg_backend_pid()'), $pid, 'all of it ran in the same backend');
$s->quit;
ok(!$node->log_contains(qr/terminated by signal/, $log_offset),
	'no server process was terminated by a signal');

# ---------------------------------------------------------------- a ladder under statement_timeout
# Each requires the two before it: 2^40 paths from the top.
$s = $node->background_psql('ladder', on_error_stop => 0);
$s->query_safe('SET client_min_messages = warning');
$s->query_safe(q{
SELECT count(*) FROM migrate_add_scripts(
    ARRAY(SELECT format('V%s__m%s.sql', g, g) FROM generate_series(1, 40) g),
    ARRAY(SELECT CASE WHEN g > 2 THEN format(E'-- migrate:requires %s, %s\nSELECT %s;', g - 1, g - 2, g)
                      ELSE 'SELECT 0;' END
            FROM generate_series(1, 40) g))});
$s->query_safe(q{SET statement_timeout = '1s'});
($out, $err) = timed($s, 'plan the ladder of 40', q{SELECT count(*) FROM migrate_plan()});
is($out, '40', 'a ladder of 40 plans under statement_timeout = 1s');
is($err, '', 'without a timeout');
($out, $err) = timed($s, 'apply the ladder of 40', q{SELECT count(*) FROM migrate_apply()});
is($out, '40', 'and applies under statement_timeout = 1s');
is($err, '', 'without a timeout');
$s->quit;

# ---------------------------------------------------------------- a dense graph of 10,000
my $d = 10_000;
$s = $node->background_psql('dense', on_error_stop => 0);
$s->query_safe('SET client_min_messages = warning');
($out, $err) = timed($s, "register a dense graph of $d", qq{
SELECT count(*) FROM migrate_add_scripts(
    ARRAY(SELECT format('V%s__m%s.sql', g, g) FROM generate_series(1, $d) g),
    ARRAY(SELECT CASE WHEN g > 3 THEN format(E'-- migrate:requires %s\\nSELECT %s;',
                                             concat_ws(', ', g - 1, g - 2, CASE WHEN g % 2 = 0 THEN g - 3 END), g)
                      ELSE 'SELECT 0;' END
            FROM generate_series(1, $d) g))});
is($out, $d, "$d files registered, each requiring the previous two or three");
($out, $err) = timed($s, 'plan the dense graph',
	q{SELECT count(*) || ' ' || bool_and(version::int = step) FROM migrate_plan()});
is($out, "$d true", "migrate_plan(): $d steps, in version order");

# cancel a planning loop: it ends within a second
my $bg = $node->background_psql('dense', on_error_stop => 0);
my $bg_pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/started/, q{\echo started
DO $$ BEGIN FOR i IN 1..1000000 LOOP PERFORM count(*) FROM migrate_plan(); END LOOP; END $$;
});
ok( $node->poll_query_until(
		'dense', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE pid = $bg_pid AND state = 'active' AND query LIKE '%migrate_plan()%'}),
	'the planning loop is running');
my $t0 = time;
is($node->safe_psql('dense', "SELECT pg_cancel_backend($bg_pid)"), 't', 'pg_cancel_backend()');
ok( $node->poll_query_until(
		'dense', qq{SELECT state <> 'active' FROM pg_stat_activity WHERE pid = $bg_pid}),
	'the statement ended');
my $elapsed = time - $t0;
note sprintf('cancel took %.0f ms', $elapsed * 1000);
cmp_ok($elapsed, '<', 1, 'within a second of the cancel');
$bg->query('SELECT 1');
like($bg->{stderr}, qr/canceling statement due to user request/, 'the loop was cancelled');
$bg->quit;

($out, $err) = timed($s, 'apply the dense graph',
	q{SELECT count(*) FILTER (WHERE action = 'applied') FROM migrate_apply()});
is($out, $d, "migrate_apply() applies all $d");
($out, $err) = timed($s, 'status of the dense graph',
	q{SELECT count(*) FILTER (WHERE state = 'applied') FROM migrate_status()});
is($out, $d, "migrate_status(): $d applied");
$s->quit;

ok(!$node->log_contains(qr/terminated by signal/, $log_offset),
	'still no server process terminated by a signal');
$node->stop;
done_testing();
