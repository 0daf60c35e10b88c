# The database owner who created the extension, with no superuser, can back
# the database up with pg_dump and restore it with pg_restore (or psql), the
# catalog included: the restored database knows what was applied, its history
# chain is intact, and what restored rows would run runs with the restoring
# role's rights, never with the rights of a role the dump names.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('owner_dump');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
    CREATE ROLE dba LOGIN CREATEDB;
    CREATE DATABASE src OWNER dba;
});
my $dba = $node->connstr('src') . ' user=dba';

sub as_dba
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql, connstr => $node->connstr($db) . ' user=dba');
}

as_dba('src', q{
    CREATE EXTENSION migrate;
    SET client_min_messages = warning;
    SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                       verify => 'SELECT count(*) = 0 FROM tools WHERE n <= 0');
    SELECT migrate_add('002', 'seed', 'INSERT INTO tools SELECT g, g FROM generate_series(1, 5) g',
                       expect => '{"tools": 5}', down => 'DELETE FROM tools');
    SELECT count(*) FROM migrate_apply();
    SELECT migrate_add('003', 'pending', 'SELECT 1', down => 'SELECT 1');
});
# a migration registered by a superuser: after a restore by dba, its verify
# query must not run as that superuser
$node->safe_psql('src', q{
    SET client_min_messages = warning;
    SELECT migrate_add('004', 'by superuser', 'CREATE TABLE su_made (id int)',
                       verify => 'SELECT current_user = ''dba''', down => 'DROP TABLE su_made');
});
as_dba('src', q{SET client_min_messages = warning; SELECT count(*) FROM migrate_apply()});
# a job in the history too: a non-transactional migration applied by a job
as_dba('src', q{
    SET client_min_messages = warning;
    SELECT migrate_add('004.5', 'index', 'CREATE INDEX CONCURRENTLY tools_n ON tools (n)',
                       down => 'DROP INDEX tools_n');
});
my $job = as_dba('src', 'SELECT migrate_start()');
is(as_dba('src', "CALL migrate_wait($job)"), 'succeeded|1|1', 'a job applied the non-transactional migration');

my $rows = q{
    SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()};
my $history = q{SELECT count(*) || ':' || max(id) FROM migrate.history};

for my $format ('custom', 'plain')
{
	my $db = "dst_$format";
	my $dump = $node->basedir . "/src.$format";
	$node->command_ok(
		[ 'pg_dump', "--format=$format", '-f', $dump, '-d', $dba ],
		"$format: pg_dump as the database owner");
	$node->safe_psql('postgres', "CREATE DATABASE $db OWNER dba");
	my $target = $node->connstr($db) . ' user=dba';
	if ($format eq 'custom')
	{
		$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $target, $dump ],
			"$format: pg_restore as the database owner");
	}
	else
	{
		$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $target, '-f', $dump ],
			"$format: psql -f as the database owner");
	}

	is(as_dba($db, $rows), as_dba('src', $rows), "$format: every migration's state restored");
	is(as_dba($db, $history), as_dba('src', $history), "$format: history rows and ids restored");
	is(as_dba($db, q{SELECT string_agg(id || ':' || state || ':' || role, ',') FROM migrate.jobs}),
		"$job:succeeded:dba", "$format: the job and its state restored");
	is(as_dba($db, q{SELECT count(*) FROM migrate_validate()}), '0',
		"$format: the restored history chain is intact, every applied row explained");
	is(as_dba($db, q{SELECT registered_by FROM migrate.migrations WHERE version = '004'}), 'dba',
		"$format: a row restored by dba is registered by dba, whatever the dump said");
	is(as_dba($db, q{SELECT count(*) FROM migrate_check() WHERE NOT ok}), '0',
		"$format: every check passes, the verify query running as dba");
	is(as_dba($db, q{SELECT touched_tables::text FROM migrate.applied WHERE version = '001'}),
		'{tools}', "$format: touched tables resolved again by name in the restored database");
	is(as_dba($db, q{
        SET client_min_messages = warning;
        SELECT migrate_add('005', 'after the restore', 'CREATE TABLE later (id int)', down => 'DROP TABLE later') IS NOT NULL;
        SELECT count(*) FROM migrate_apply();
        SELECT count(*) FROM migrate_validate();
        SELECT count(DISTINCT id) = count(*) FROM migrate.history;
    }), "t\n1\n0\nt", "$format: applying goes on after the restore, the chain too");
	is(as_dba($db, q{SELECT string_agg(version, ',') FROM migrate_rollback('004.5')}), '005',
		"$format: rollback after the restore");
}

# what the grants allow the owner is restoring, not forging unseen: a row
# written by hand into the catalog shows in migrate_validate()
as_dba('src', q{
    INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
    VALUES ('0099', '99', 'forged', 'x', 'dba');
});
is(as_dba('src', q{SELECT string_agg(problem || ':' || version, ',' ORDER BY problem) FROM migrate_validate()}),
	'missing:99,unrecorded:99', 'a hand-written applied row is reported');
my ($rc, $out, $err) = $node->psql('src',
	q{INSERT INTO migrate.history (version, action, performed_by) VALUES ('99', 'apply', 'dba')},
	connstr => $dba);
isnt($rc, 0, 'the owner cannot append a history row without a hash');
like($err, qr/permission denied for function history_hash/, '... it is refused');
as_dba('src', q{
    INSERT INTO migrate.history (version, version_key, action, checksum, performed_by, hash)
    VALUES ('99', '0099', 'apply', 'x', 'dba', repeat('0', 64));
});
is(as_dba('src', q{SELECT string_agg(problem, ',' ORDER BY problem) FROM migrate_validate()}),
	'history,missing', 'a history row with a forged hash breaks the chain (and no longer hides the forged applied row: the chain does)');

$node->stop;
done_testing();
