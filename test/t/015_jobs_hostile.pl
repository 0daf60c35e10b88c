# Jobs against migrations and rows that try to break them: a migration that
# releases every lock it can (the job's own lock must survive, or a second
# worker would apply it again), a migration that kills its own worker (no
# endless restarts), and a job row naming a role by an OID that is not that
# role's (never run as whoever has the OID).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('jobs_hostile');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION migrate');

sub psql_all
{
	my ($sql, %o) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose' ], %o);
	return ($rc, $out, $err);
}

# ---- 1. pg_advisory_unlock_all() and DISCARD ALL in a job's migration
$node->safe_psql('postgres', q{
    SET client_min_messages = warning;
    CREATE TABLE t (id int);
    SELECT migrate_add('001', 'unlocks', $m$VACUUM t;
SELECT pg_advisory_unlock_all();
DISCARD ALL;
SELECT pg_sleep(2);$m$);
});
my $job = $node->safe_psql('postgres', 'SELECT migrate_start()');
ok($node->poll_query_until('postgres',
		"SELECT statement >= 3 FROM migrate.jobs WHERE id = $job"), 'the job runs past the unlocks');
my ($rc, $out, $err) = psql_all('SELECT count(*) FROM migrate_jobs()');
unlike($err, qr/lost its worker/, 'the job has not lost its worker: its lock is not an advisory one');
($rc, $out, $err) = psql_all("CALL migrate_wait($job)");
is($rc, 0, 'the job ends') or diag($err);
like($out, qr/^succeeded/, '... succeeded');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migrate.history WHERE version = '001' AND action = 'apply' AND outcome = 'ok'}),
	'1', 'applied once');

# ---- 2. a migration that terminates its own worker: a few tries, then failed
$node->safe_psql('postgres', q{
    SET client_min_messages = warning;
    SELECT migrate_add('002', 'kills its worker', 'SELECT pg_terminate_backend(pg_backend_pid())');
});
$job = $node->safe_psql('postgres', 'SELECT migrate_start()');
# each poll notices the dead worker and starts another, until the job fails
ok( $node->poll_query_until('postgres',
		"SELECT state FROM migrate_jobs() WHERE id = $job", 'failed'),
	'the job fails instead of being restarted forever');
like($node->safe_psql('postgres', "SELECT error_message FROM migrate.jobs WHERE id = $job"),
	qr/its worker was started 5 times and died each time before making progress, last at migration 002/,
	'the reason says why');
is($node->safe_psql('postgres', "SELECT error_sqlstate FROM migrate.jobs WHERE id = $job"), '28000',
	'... with a SQLSTATE');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'migrate job'}),
	'0', 'no worker runs for it');
$node->safe_psql('postgres', q{DELETE FROM migrate.migrations WHERE version = '002'});

# ---- 3. a job row naming a role by an OID that is not that role's
$node->safe_psql('postgres', q{
    SET client_min_messages = warning;
    SELECT migrate_add('003', 'who', 'CREATE TABLE who AS SELECT current_user AS u');
    INSERT INTO migrate.job_state (role, role_oid, state, launched_at)
    VALUES ('restored_role', 10, 'queued', now() - interval '1 hour');
});
my $planted = $node->safe_psql('postgres', q{SELECT max(id) FROM migrate.job_state});
($rc, $out, $err) = psql_all('SELECT count(*) FROM migrate_jobs()');
is($node->safe_psql('postgres', "SELECT state || ' ' || error_sqlstate FROM migrate.jobs WHERE id = $planted"),
	'failed 28000', 'the planted job fails');
like($node->safe_psql('postgres', "SELECT error_message FROM migrate.jobs WHERE id = $planted"),
	qr/its role restored_role is not the role with OID 10 that started it/, '... naming the mismatch');
is($node->safe_psql('postgres', q{SELECT to_regclass('who') IS NULL}), 't',
	'nothing ran as the role with that OID');

# ---- 4. a long job, followed to its end (its result row once read freed memory)
$node->safe_psql('postgres', q{
    SET client_min_messages = warning;
    SELECT count(*) FROM migrate_add_scripts(
        ARRAY(SELECT format('V%s__t%s.sql', 1000 + g, g) FROM generate_series(1, 500) g),
        ARRAY(SELECT format('CREATE TABLE long_%s (id int PRIMARY KEY); INSERT INTO long_%s VALUES (1);', g, g)
                FROM generate_series(1, 500) g));
});
$job = $node->safe_psql('postgres', 'SELECT migrate_start()');
($rc, $out, $err) = psql_all("SET client_min_messages = warning; CALL migrate_wait($job)");
is($rc, 0, 'a job of 500 migrations is waited for to its end') or diag($err);
like($out, qr/^succeeded\|501\|501$/m, '... and its result row is right (the 500, and 003 left from above)');
ok($node->safe_psql('postgres', 'SELECT 1') eq '1', 'the server is up');

$node->stop;
done_testing();
