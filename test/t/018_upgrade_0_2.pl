# 0.2.0 is released and in use: a database created at 0.2.0, with applied and
# pending migrations, a finished job and a DBA's grants, is refused by the
# new library until ALTER EXTENSION migrate UPDATE; updated to the default
# version of migrate.control (through every later version), it has exactly
# the objects of a fresh install, keeps every row and grant (on migrate_add
# and migrate_jobs, whose signature and result type changed), and a job runs
# a batched migration registered by the DBA's deployer.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MigrateUpgrade qw($OBJECTS_SQL $CONFIG_SQL $INIT_PRIVS_SQL control_default_version);

my $node = PostgreSQL::Test::Cluster->new('upgrade_0_2');
$node->init;
$node->start;

my $latest = control_default_version($node);
is($node->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'migrate'}),
	$latest, "the default version is migrate.control's ($latest)");
isnt($latest, '0.2.0', '... which is newer than 0.2.0');

$node->safe_psql('postgres', q{
    CREATE ROLE dba LOGIN CREATEDB;
    CREATE ROLE deployer LOGIN;
    CREATE DATABASE upgraded OWNER dba;
    CREATE DATABASE fresh OWNER dba;
});

sub as_role
{
	my ($role, $db, $sql) = @_;
	return $node->safe_psql($db, $sql, connstr => $node->connstr($db) . " user=$role");
}
sub as_dba { return as_role('dba', @_); }

# (exit code, stderr) of SQL run as $role, errors with their SQLSTATE
sub fails_as { return MigrateUpgrade::fails_as($node, @_); }

# ---- a database at 0.2.0, in use.  This library refuses a 0.2.0 catalog
# (below), so the rows are written as 0.2.0's code wrote them: the applied
# migration's SQL run, then the catalog rows of registering and applying
# (history rows are chained by 0.2.0's trigger), and the row of the job that
# applied it.
as_dba('upgraded', q{CREATE EXTENSION migrate VERSION '0.2.0'});
$node->safe_psql('upgraded', q{
    SET ROLE dba;
    CREATE TABLE legacy (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
    INSERT INTO legacy (id) SELECT generate_series(1, 35);
    RESET ROLE;
    CREATE TEMP TABLE m (version text, name text, up text, down text);
    INSERT INTO m VALUES
        ('001', 'legacy', 'CREATE TABLE legacy (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)', 'DROP TABLE legacy'),
        ('002', 'pending', 'CREATE TABLE later (id int)', 'DROP TABLE later');
    INSERT INTO migrate.migrations (version_key, version, name, up, down, checksum, registered_by)
    SELECT migrate_version_key(version), version, name, up, down, migrate_checksum(up), 'dba' FROM m;
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
    SELECT version, migrate_version_key(version), name, 'register', migrate_checksum(up), 'dba' FROM m ORDER BY version;
    INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by, touched, touched_tables)
    SELECT migrate_version_key(version), version, name, migrate_checksum(up), 'dba', '{public.legacy}', '{legacy}'
      FROM m WHERE version = '001';
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, duration,
                                rows_affected, checks)
    SELECT version, migrate_version_key(version), name, 'apply', migrate_checksum(up), 'dba', '1 ms', 0, 0
      FROM m WHERE version = '001';
    INSERT INTO migrate.job_state (role, role_oid, state, version, statement, steps_done, steps_total,
                                   attempts, launched_at, queued_at, started_at, finished_at)
    VALUES ('dba', 'dba'::regrole, 'succeeded', '001', 1, 1, 1, 1,
            now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour',
            now() - interval '59 minutes');
});
as_dba('upgraded', q{
    GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean), migrate_jobs()
        TO deployer;
    GRANT USAGE ON SCHEMA migrate TO deployer;
    GRANT SELECT ON migrate.jobs TO deployer;
    GRANT SELECT, UPDATE ON legacy TO deployer;
});
is(as_dba('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}), '0.2.0',
	'installed at 0.2.0');
my $history_rows = q{SELECT string_agg(id || ' ' || version || ' ' || action || ' ' || hash, E'\n' ORDER BY id)
                       FROM migrate.history};
my $before_history = as_dba('upgraded', $history_rows);
my $job_cols = 'id, role, state, version, steps_done, steps_total, started_at, finished_at';
my $before_job = as_dba('upgraded', "SELECT $job_cols FROM migrate.jobs");
is($before_job =~ tr/\n//, 0, 'one job row at 0.2.0');

# ---- the new library refuses the 0.2.0 catalog, and says what to do
for my $case ([ 'dba', 'SELECT * FROM migrate_validate()' ],
	[ 'deployer', 'SELECT * FROM migrate_jobs()' ],
	[ 'deployer', q{SELECT migrate_add('003', 'x', 'SELECT 1')} ])
{
	my ($rc, $err) = fails_as($case->[0], 'upgraded', $case->[1]);
	isnt($rc, 0, "0.2.0 catalog refused: $case->[1]");
	like($err, qr/ERROR:  55000: the migrate catalog of this database is older than the migrate library.*HINT:  Run ALTER EXTENSION migrate UPDATE/s,
		'... 55000, with a hint to update');
}

as_dba('upgraded', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}), $latest,
	"updated to $latest");

# ---- a fresh install
as_dba('fresh', 'CREATE EXTENSION migrate');

my $objects = $OBJECTS_SQL;
my $config = $CONFIG_SQL;

my $got = as_dba('upgraded', $objects);
my $want = as_dba('fresh', $objects);
ok($want =~ /^table migrate\.batch_progress comment: checkpoints/m, 'the listing has the new table');
ok($want =~ /^  batch jsonb collate \S+ comment: batch options/m, '... and the new column of migrate.migrations');
# the DBA's grants exist only in the upgraded database: set them aside
my $grants = q{
SELECT string_agg(g, E'\n' ORDER BY g COLLATE "C") FROM (
SELECT pg_describe_object(d.classid, d.objid, 0) || ' ' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END
  FROM pg_depend d
  JOIN (SELECT 'pg_proc'::regclass, oid, proacl FROM pg_proc
        UNION ALL SELECT 'pg_class'::regclass, oid, relacl FROM pg_class
        UNION ALL SELECT 'pg_namespace'::regclass, oid, nspacl FROM pg_namespace) o(classid, objid, acl)
    ON o.classid = d.classid AND o.objid = d.objid
 CROSS JOIN aclexplode(o.acl) x
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND x.grantee = 'deployer'::regrole) s(g)};
is(as_dba('upgraded', $grants), join("\n",
	'function migrate_add(text,text,text,text,text,jsonb,text[],boolean,jsonb,text) EXECUTE',
	'function migrate_jobs() EXECUTE',
	'schema migrate USAGE',
	'view migrate.jobs SELECT'),
	"the DBA's grants to deployer are kept, on the replaced migrate_add and migrate_jobs too");
$got =~ s/ deployer=\w+//g;
is($got, $want, 'the upgraded extension has exactly the objects of a fresh install');
is(as_dba('upgraded', $config), as_dba('fresh', $config), 'the same tables are dumped by pg_dump');
my $init = $INIT_PRIVS_SQL;
is(as_dba('upgraded', $init) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr, as_dba('fresh', $init) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr,
	"the extension's initial privileges are the same (the DBA's grants are not among them)");

# ---- the rows of 0.2.0 are kept
is(as_dba('upgraded', $history_rows), $before_history, 'every history row kept, with its hash');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_validate()}), '0',
	'validate finds no problem (the history chain of 0.2.0 holds)');
is(as_dba('upgraded', q{SELECT string_agg(s.version || ':' || s.state || ':' || coalesce(m.batch::text, 'null'), ','
                                          ORDER BY s.version)
                          FROM migrate_status() s JOIN migrate.migrations m USING (version)}),
	'001:applied:null,002:pending:null', 'the applied migration is applied, the pending one pending, no batch');
is(as_role('deployer', 'upgraded', "SELECT $job_cols FROM migrate.jobs"), $before_job, 'the job row of 0.2.0 is kept');
is(as_role('deployer', 'upgraded',
		q{SELECT concat_ws(',', batches_done, rows_done, rows_total, rows_per_second, eta, note) FROM migrate_jobs()}),
	'', '... with the new columns null (migrate_jobs(), as deployer)');

# ---- deployer's grants work with the new signatures
is(as_role('deployer', 'upgraded',
		q{SELECT migrate_add('003', 'bump', 'UPDATE legacy SET n = n + 1 WHERE id > $1 AND id <= $2',
                             batch => '{"table": "legacy", "size": 10}') IS NOT NULL}),
	't', 'deployer registers a batched migration with migrate_add(..., batch => ...)');
is(as_dba('upgraded', q{SELECT batch::text || ' ' || registered_by FROM migrate.migrations WHERE version = '003'}),
	'{"size": 10, "table": "legacy"} deployer', '... kept with its batch options');
is(as_role('deployer', 'upgraded', q{SELECT count(*) FROM migrate_jobs()}), '1', 'deployer calls migrate_jobs()');

# ---- a job runs the pending and the batched migration to the end
my $job = as_dba('upgraded', q{SELECT migrate_start()});
cmp_ok($job, '>', 1, "the new job ($job) follows the job of 0.2.0");
as_dba('upgraded', "CALL migrate_wait($job)");
is(as_role('deployer', 'upgraded', "SELECT state, batches_done, rows_done, note FROM migrate.jobs WHERE id = $job"),
	'succeeded|4|35|', 'deployer reads the job: succeeded in 4 batches of 35 rows (migrate.jobs)');
is(as_dba('upgraded', q{SELECT string_agg(n || ':' || c, ',') FROM (SELECT n, count(*) c FROM legacy GROUP BY n) s}),
	'1:35', 'every row changed once');
is(as_dba('upgraded', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001:applied,002:applied,003:applied', 'every migration applied');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_validate()}), '0', 'validate finds nothing');

# a dump of the upgraded database keeps the DBA's grants on the replaced routines
my $dump = $node->basedir . '/upgraded.sql';
$node->command_ok([ 'pg_dump', '-f', $dump, '-d', $node->connstr('upgraded') . ' user=dba' ], 'pg_dump as the owner');
my $dumped = slurp_file($dump);
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_add\(.*, batch jsonb, assert text\) TO deployer;/m,
	"pg_dump dumps the DBA's grant on the replaced migrate_add");
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_jobs\(\) TO deployer;/m,
	"... and on the replaced migrate_jobs");

$node->stop;
done_testing();
