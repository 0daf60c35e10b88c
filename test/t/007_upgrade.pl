# 0.1.0 is released and in use: a database created at 0.1.0, with applied
# migrations, history and grants, then ALTER EXTENSION migrate UPDATE, ends
# with exactly the objects of a fresh install and keeps every row and grant.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MigrateUpgrade qw($OBJECTS_SQL $CONFIG_SQL $INIT_PRIVS_SQL);

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $latest = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'migrate'});
isnt($latest, '0.1.0', "the default version ($latest) is newer than 0.1.0");

$node->safe_psql('postgres', q{
    CREATE ROLE dba LOGIN CREATEDB;
    CREATE ROLE deployer LOGIN;
    CREATE DATABASE upgraded OWNER dba;
    CREATE DATABASE fresh OWNER dba;
});

sub as_dba
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql, connstr => $node->connstr($db) . ' user=dba');
}

# ---- a database at 0.1.0, in use.  This library refuses a 0.1.0 catalog
# (below), so the rows are written as 0.1.0's code wrote them: the
# migrations' SQL run, then the catalog rows of registering and applying them.
as_dba('upgraded', q{CREATE EXTENSION migrate VERSION '0.1.0'});
$node->safe_psql('upgraded', q{
    SET ROLE dba;
    CREATE TABLE tools (id int PRIMARY KEY);
    INSERT INTO tools SELECT generate_series(1, 5);
    RESET ROLE;
    CREATE TEMP TABLE m (version text, name text, up text, down text, verify text, expect jsonb);
    INSERT INTO m VALUES
        ('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY)', 'DROP TABLE tools', NULL, NULL),
        ('002', 'seed', 'INSERT INTO tools SELECT generate_series(1, 5)', 'DELETE FROM tools',
         'SELECT count(*) = 5 FROM tools', '{"tools": 5}'),
        ('003', 'pending', 'CREATE TABLE later (id int)', 'DROP TABLE later', NULL, NULL);
    INSERT INTO migrate.migrations (version_key, version, name, up, down, verify, expect, checksum, registered_by)
    SELECT migrate_version_key(version), version, name, up, down, verify, expect, migrate_checksum(up), 'dba' FROM m;
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
    SELECT version, migrate_version_key(version), name, 'register', migrate_checksum(up), 'dba' FROM m ORDER BY version;
    INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by, touched)
    SELECT migrate_version_key(version), version, name, migrate_checksum(up), 'dba',
           CASE version WHEN '001' THEN '{public.tools}' WHEN '002' THEN '{public.tools,public.gone}' END::text[]
      FROM m WHERE version < '003';
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, duration,
                                rows_affected, counts, checks)
    SELECT version, migrate_version_key(version), name, 'apply', migrate_checksum(up), 'dba', '1 ms',
           CASE version WHEN '002' THEN 5 ELSE 0 END,
           CASE version WHEN '002' THEN '{"tools": {"before": 0, "after": 5}}'::jsonb END, 1
      FROM m WHERE version < '003' ORDER BY version;
});
as_dba('upgraded', q{
    GRANT EXECUTE ON FUNCTION migrate_apply(text, boolean, boolean), migrate_status() TO deployer;
    GRANT USAGE ON SCHEMA migrate TO deployer;
    GRANT CREATE ON SCHEMA public TO deployer;
});
my $before_history = as_dba('upgraded', q{SELECT count(*) FROM migrate.history});
my $before_status = as_dba('upgraded',
	q{SELECT string_agg(version || ':' || state || ':' || left(checksum, 12), ',' ORDER BY version) FROM migrate_status()});
is(as_dba('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}), '0.1.0',
	'installed at 0.1.0');

# the new library refuses to work on the old catalog, and says what to do
my ($rc, $out, $err) = $node->psql('upgraded', 'SELECT * FROM migrate_validate()',
	connstr => $node->connstr('upgraded') . ' user=dba');
isnt($rc, 0, 'the 0.1.0 catalog is refused by the new library');
like($err, qr/older than the migrate library.*\n.*\n?HINT:  Run ALTER EXTENSION migrate UPDATE/s,
	'... with a hint to update');

as_dba('upgraded', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}), $latest,
	"updated to $latest");

# ---- a fresh install of the new version
as_dba('fresh', 'CREATE EXTENSION migrate');

my $objects = $OBJECTS_SQL;
my $config = $CONFIG_SQL;

my $got = as_dba('upgraded', $objects);
my $want = as_dba('fresh', $objects);
# the DBA's grants exist only in the upgraded database: set them aside
my $grants_seen = ($got =~ s/ deployer=(EXECUTE|USAGE)//g);
is($grants_seen, 3, "the DBA's grants to deployer are kept (migrate_apply, migrate_status, schema migrate)");
is($got, $want, 'the upgraded extension has exactly the objects of a fresh install');
is(as_dba('upgraded', $config), as_dba('fresh', $config), 'the same tables are dumped by pg_dump');
my $init = $INIT_PRIVS_SQL;
is(as_dba('upgraded', $init) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr, as_dba('fresh', $init) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr,
	"the extension's initial privileges are the same (the DBA's grants are not among them)");

# ---- every row is kept, and the catalog works on
is(as_dba('upgraded', q{SELECT count(*) FROM migrate.history}), $before_history, 'every history row kept');
is(as_dba('upgraded',
	q{SELECT string_agg(version || ':' || state || ':' || left(checksum, 12), ',' ORDER BY version) FROM migrate_status()}),
	$before_status, 'every migration and its state kept');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_validate()}), '0',
	'the rows written by 0.1.0 are chained: validate finds nothing');
is(as_dba('upgraded', q{SELECT touched::text || ' ' || touched_tables::text FROM migrate.applied ORDER BY version}),
	"{public.tools} {tools}\n{public.tools} {tools}",
	'touched tables of 0.1.0 are resolved to OIDs (a table gone since is left out of both)');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_check() WHERE NOT ok}), '0', 'every check passes after the upgrade');
is($node->safe_psql('upgraded', q{SET client_min_messages = warning; SELECT version FROM migrate_apply()},
		connstr => $node->connstr('upgraded') . ' user=deployer'),
	'003', 'deployer still applies with its grant from 0.1.0');
is(as_dba('upgraded', q{SELECT string_agg(version, ',') FROM migrate_rollback('001')}), '003,002',
	'rollback after the upgrade');

# a dump of the upgraded database keeps the DBA's grant on the replaced routine
my $dump = $node->basedir . '/upgraded.sql';
$node->command_ok([ 'pg_dump', '-f', $dump, '-d', $node->connstr('upgraded') . ' user=dba' ], 'pg_dump as the owner');
like(slurp_file($dump), qr/GRANT ALL ON FUNCTION public\.migrate_apply\(target text, dry_run boolean, out_of_order boolean, plan text\) TO deployer;/,
	"pg_dump dumps the DBA's grant on the replaced migrate_apply");

$node->stop;
done_testing();
