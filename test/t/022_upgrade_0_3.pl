# 0.3.0 is released and in use.  No catalog table changed since, so the new
# library works on a 0.3.0 database before it is updated (migrate_plan() with
# its 8 columns, migrate_add(), migrate_apply()).  A database created at
# 0.3.0, with an applied and a pending migration and a DBA's grants on
# migrate_plan() (one WITH GRANT OPTION, used by its grantee), is then updated
# with ALTER EXTENSION migrate UPDATE to the default version of migrate.control:
# it has exactly the objects of a fresh install, keeps every row and grant
# (on migrate_plan, replaced for its 9th column lint), migrate_lint() runs only
# for the extension's owner and whom it grants it to (42501 for anyone else),
# default privileges of a platform (Supabase's for its API roles) give nobody
# the new or the replaced routine, and a dump of the updated database restores.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MigrateUpgrade qw($OBJECTS_SQL $CONFIG_SQL $INIT_PRIVS_SQL control_default_version);

my $node = PostgreSQL::Test::Cluster->new('upgrade_0_3');
$node->init;
$node->start;

my $latest = control_default_version($node);
is($node->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'migrate'}),
	$latest, "the default version is migrate.control's ($latest)");
isnt($latest, '0.3.0', '... which is newer than 0.3.0');

$node->safe_psql('postgres', q{
    CREATE ROLE dba LOGIN CREATEDB;
    CREATE ROLE deployer LOGIN;
    CREATE ROLE reviewer LOGIN;
    CREATE ROLE auditor LOGIN;
    CREATE ROLE stranger LOGIN;
    CREATE ROLE anon LOGIN;
    CREATE DATABASE upgraded OWNER dba;
    CREATE DATABASE fresh OWNER dba;
    CREATE DATABASE platform OWNER dba;
    CREATE DATABASE restored OWNER dba;
});

sub as_role
{
	my ($role, $db, $sql) = @_;
	return $node->safe_psql($db, "SET client_min_messages = warning;\n$sql",
		connstr => $node->connstr($db) . " user=$role");
}
sub as_dba { return as_role('dba', @_); }

# (exit code, stderr) of SQL run as $role, errors with their SQLSTATE
sub fails_as
{
	my ($role, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, $sql,
		connstr => $node->connstr($db) . " user=$role",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $err);
}

sub denied
{
	my ($role, $db, $sql, $function, $what) = @_;
	my ($rc, $err) = fails_as($role, $db, $sql);
	isnt($rc, 0, "$what: refused");
	like($err, qr/ERROR:  42501: permission denied for function \Q$function\E\b/, "... 42501, on $function");
}

my $extversion = q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'};
my $plan_oid = q{SELECT 'migrate_plan(text, boolean)'::regprocedure::oid};
my $plan_result = q{SELECT pg_get_function_result('migrate_plan(text, boolean)'::regprocedure)};
my $lint_exists = q{SELECT to_regprocedure('migrate_lint(text)') IS NOT NULL};
# The grants made on the extension's members to the roles of this test
# ("*": with grant option).
my $grants = q{
SELECT string_agg(g, E'\n' ORDER BY g COLLATE "C") FROM (
SELECT pg_describe_object(d.classid, d.objid, 0) || ' ' || pg_get_userbyid(x.grantee) || ' ' || x.privilege_type
       || CASE WHEN x.is_grantable THEN '*' ELSE '' END
  FROM pg_depend d
  JOIN (SELECT 'pg_proc'::regclass, oid, proacl FROM pg_proc
        UNION ALL SELECT 'pg_class'::regclass, oid, relacl FROM pg_class
        UNION ALL SELECT 'pg_namespace'::regclass, oid, nspacl FROM pg_namespace) o(classid, objid, acl)
    ON o.classid = d.classid AND o.objid = d.objid
 CROSS JOIN aclexplode(o.acl) x
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND x.grantee IN (SELECT oid FROM pg_roles WHERE rolname IN ('deployer', 'reviewer', 'auditor', 'stranger', 'anon'))
) s(g)};
my $history_rows = q{SELECT string_agg(id || ' ' || version || ' ' || action || ' ' || hash, E'\n' ORDER BY id)
                       FROM migrate.history};
my $status = q{SELECT string_agg(version || ':' || state || ':' || checksum, ',' ORDER BY version) FROM migrate_status()};

# ---- a database at 0.3.0, in use: the DBA's grants, then the deployer
# registers two migrations with 0.3.0's migrate_add() and applies the first
# with migrate_apply(), all through the new library on the 0.3.0 catalog.
as_dba('upgraded', q{CREATE EXTENSION migrate VERSION '0.3.0'});
is(as_dba('upgraded', $extversion), '0.3.0', 'installed at 0.3.0');
is(as_dba('upgraded', $lint_exists), 'f', '... without migrate_lint()');
unlike(as_dba('upgraded', $plan_result), qr/lint/, '... and with the 8 columns of migrate_plan() of 0.3.0');
as_dba('upgraded', q{
    GRANT CREATE ON SCHEMA public TO deployer;
    GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb),
                              migrate_apply(text, boolean, boolean, text), migrate_status() TO deployer;
    GRANT EXECUTE ON FUNCTION migrate_plan(text, boolean) TO deployer WITH GRANT OPTION;
});
as_role('deployer', 'upgraded', q{GRANT EXECUTE ON FUNCTION migrate_plan(text, boolean) TO reviewer});
is(as_role('deployer', 'upgraded', q{
    SELECT migrate_add('001', 'accounts',
                       'CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL DEFAULT 0);
                        INSERT INTO accounts (id) SELECT generate_series(1, 50)',
                       down => 'DROP TABLE accounts', expect => '{"accounts": 50}') IS NOT NULL;
    SELECT migrate_add('002', 'wider', 'ALTER TABLE accounts ALTER COLUMN balance TYPE bigint',
                       down => 'ALTER TABLE accounts ALTER COLUMN balance TYPE integer') IS NOT NULL}),
	"t\nt", 'at 0.3.0, deployer registers two migrations (migrate_add of 0.3.0)');
my @cols = split /\|/, as_role('reviewer', 'upgraded', q{SELECT * FROM migrate_plan() WHERE step = 1}), -1;
is(scalar @cols, 8, 'at 0.3.0, migrate_plan() returns its 8 columns (reviewer, granted by deployer)');
is(join(' ', @cols[ 0 .. 3 ]), '1 001 accounts version order', '... the first step');
is(as_role('reviewer', 'upgraded', q{SELECT string_agg(version, ',' ORDER BY step) FROM migrate_plan()}), '001,002',
	'... both pending migrations planned');
is(as_role('deployer', 'upgraded', q{SELECT version || ':' || action || ':' || rows FROM migrate_apply('001')}),
	'001:applied:50', 'at 0.3.0, deployer applies the first with migrate_apply()');
is(as_role('deployer', 'upgraded', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001:applied,002:pending', '... the second is left pending');

my $before_grants = as_dba('upgraded', $grants);
is($before_grants, join("\n",
	'function migrate_add(text,text,text,text,text,jsonb,text[],boolean,jsonb) deployer EXECUTE',
	'function migrate_apply(text,boolean,boolean,text) deployer EXECUTE',
	'function migrate_plan(text,boolean) deployer EXECUTE*',
	'function migrate_plan(text,boolean) reviewer EXECUTE',
	'function migrate_status() deployer EXECUTE'),
	"the DBA's grants at 0.3.0 (on migrate_plan with grant option, and deployer's onward grant)");
my $before_history = as_dba('upgraded', $history_rows);
my $before_status = as_dba('upgraded', $status);
my $before_plan_oid = as_dba('upgraded', $plan_oid);

# ---- the update
as_dba('upgraded', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('upgraded', $extversion), $latest, "updated to $latest");
isnt(as_dba('upgraded', $plan_oid), $before_plan_oid, 'migrate_plan(text, boolean) was replaced');
like(as_dba('upgraded', $plan_result), qr/, plan_checksum text, lint text\[\]\)$/, '... with its 9th column lint');
is(as_dba('upgraded', $lint_exists), 't', 'migrate_lint() exists');

# ---- a fresh install
as_dba('fresh', 'CREATE EXTENSION migrate');
my $got = as_dba('upgraded', $OBJECTS_SQL);
my $want = as_dba('fresh', $OBJECTS_SQL);
like($want, qr/^function migrate_lint\(text\) comment: What the pending migrations/m, 'the listing has migrate_lint()');
like($want, qr/^ RETURNS TABLE\(step integer, .*, lint text\[\]\)$/m, '... and the lint column of migrate_plan()');
is(as_dba('upgraded', $grants), $before_grants,
	"every grant of the DBA's is kept, on the replaced migrate_plan with its grant option");
# the DBA's grants exist only in the upgraded database: set them aside
my $set_aside = ($got =~ s/ (?:deployer|reviewer)=EXECUTE\*?//g);
is($set_aside, 5, '... and they are the only difference in the ACLs listed');
is($got, $want, 'the upgraded extension has exactly the objects of a fresh install');
is(as_dba('upgraded', $CONFIG_SQL), as_dba('fresh', $CONFIG_SQL), 'the same tables are dumped by pg_dump');
is(as_dba('upgraded', $INIT_PRIVS_SQL) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr,
	as_dba('fresh', $INIT_PRIVS_SQL) =~ s/=([A-Za-z*]+)\/\w+/=$1/gr,
	"the extension's initial privileges are the same (the DBA's grants are not among them)");

# ---- the rows of 0.3.0 are kept
is(as_dba('upgraded', $history_rows), $before_history, 'every history row kept, with its hash');
is(as_dba('upgraded', $status), $before_status, 'every migration kept, in its state');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_validate()}), '0', 'validate finds no problem');

# ---- the kept grants work on the replaced migrate_plan
my $plan_row = as_role('deployer', 'upgraded', q{SELECT * FROM migrate_plan()});
@cols = split /\|/, $plan_row, -1;
is(scalar @cols, 9, 'deployer calls the new migrate_plan(): 9 columns');
like($plan_row, qr/^1\|002\|wider\|version order\|.*\|\{"warning table-rewrite, line 1: ALTER TABLE rewrites public\.accounts /,
	'... the pending migration with its lint finding');
is(as_role('reviewer', 'upgraded', q{SELECT string_agg(version || ':' || cardinality(lint), ',') FROM migrate_plan()}),
	'002:1', 'reviewer (granted by deployer at 0.3.0) calls it');
denied('stranger', 'upgraded', q{SELECT * FROM migrate_plan()}, 'migrate_plan', 'stranger calls migrate_plan()');

# ---- migrate_lint(): the extension's owner's, and whom it grants it to
my $lint = q{SELECT string_agg(concat_ws(':', version, statement, line, rule, severity, table_name, lock, allowed), E'\n')
               FROM migrate_lint()};
for my $role ('deployer', 'reviewer', 'stranger')
{
	denied($role, 'upgraded', q{SELECT * FROM migrate_lint()}, 'migrate_lint', "$role calls migrate_lint() ungranted");
}
my $finding = '002:1:1:table-rewrite:warning:public.accounts:ACCESS EXCLUSIVE:f';
is(as_dba('upgraded', $lint), $finding, 'the extension owner runs migrate_lint(): the rewrite of the pending migration');
as_dba('upgraded', q{GRANT EXECUTE ON FUNCTION migrate_lint(text) TO deployer});
is(as_role('deployer', 'upgraded', $lint), $finding, 'granted by the owner, deployer runs migrate_lint()');
is(as_role('deployer', 'upgraded', q{SELECT count(*) FROM migrate_lint('002')}), '1', '... and migrate_lint(version)');
denied('stranger', 'upgraded', q{SELECT * FROM migrate_lint('002')}, 'migrate_lint', 'stranger still');
denied('reviewer', 'upgraded', q{SELECT * FROM migrate_lint()}, 'migrate_lint', 'reviewer still');

# ---- applying goes on
is(as_role('deployer', 'upgraded', q{SELECT version || ':' || action FROM migrate_apply()}), '002:applied',
	'deployer applies the pending migration (a lint warning does not refuse it)');
is(as_dba('upgraded', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                         WHERE attrelid = 'accounts'::regclass AND attname = 'balance'}), 'bigint', '... it ran');
is(as_dba('upgraded', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001:applied,002:applied', 'every migration applied');
is(as_dba('upgraded', q{SELECT count(*) FROM migrate_validate()}), '0', 'validate finds nothing');

# ---- a dump of the updated database has the DBA's grants, and restores.
# The DBA, a member of deployer, reads its tables; the restore, by the DBA
# too, leaves them the DBA's (--no-owner: deployer's CREATE on schema public
# comes back only with the grants, after the tables).
$node->safe_psql('postgres', 'GRANT deployer TO dba');
my $dump = $node->basedir . '/upgraded.sql';
$node->command_ok([ 'pg_dump', '--no-owner', '-f', $dump, '-d', $node->connstr('upgraded') . ' user=dba' ],
	'pg_dump as the owner');
my $dumped = slurp_file($dump);
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_plan\(target text, out_of_order boolean\) TO deployer WITH GRANT OPTION;$/m,
	"pg_dump dumps the DBA's grant on the replaced migrate_plan, with grant option");
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_plan\(target text, out_of_order boolean\) TO reviewer;$/m,
	"... deployer's onward grant");
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_lint\(version text\) TO deployer;$/m,
	'... and the grant on migrate_lint');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored') . ' user=dba',
		'-f', $dump ], 'the dump restores (psql -f as the database owner)');
is(as_dba('restored', $extversion), $latest, "... at $latest");
is(as_dba('restored', $status), as_dba('upgraded', $status), '... with every migration in its state');
is(as_dba('restored', $history_rows), as_dba('upgraded', $history_rows), '... every history row');
is(as_dba('restored', q{SELECT count(*) FROM migrate_validate()}), '0', '... an intact history chain');
is(as_dba('restored', $OBJECTS_SQL), as_dba('upgraded', $OBJECTS_SQL),
	'... and the objects and grants of the updated database');
is(as_role('deployer', 'restored', $lint), '', 'deployer runs migrate_lint() in the restored database');

# the grant option deployer was given at 0.3.0 works on the replaced routine
as_role('deployer', 'upgraded', q{GRANT EXECUTE ON FUNCTION migrate_plan(text, boolean) TO auditor});
is(as_role('auditor', 'upgraded', q{SELECT count(*) FROM migrate_plan()}), '0',
	"deployer's grant option is kept: it grants migrate_plan() to auditor, who calls it");

# ---- a platform's default privileges on new functions (Supabase's for its
# API roles, here anon) give it neither the new migrate_lint nor the replaced
# migrate_plan: the update leaves what the install revoked revoked.
as_dba('platform', q{CREATE EXTENSION migrate VERSION '0.3.0'});
my $bootstrap = $node->safe_psql('platform', q{SELECT rolname FROM pg_roles WHERE oid = 10});
$node->safe_psql('platform',
	qq{ALTER DEFAULT PRIVILEGES FOR ROLE "$bootstrap" IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon});
denied('anon', 'platform', q{SELECT * FROM migrate_plan()}, 'migrate_plan', 'at 0.3.0, anon calls migrate_plan()');
as_dba('platform', 'ALTER EXTENSION migrate UPDATE');
denied('anon', 'platform', q{SELECT * FROM migrate_lint()}, 'migrate_lint', 'updated, anon calls migrate_lint()');
denied('anon', 'platform', q{SELECT * FROM migrate_plan()}, 'migrate_plan', 'updated, anon calls migrate_plan()');
is(as_dba('platform', $grants), '', 'anon has no grant on any routine of the extension');
is(as_dba('platform', $OBJECTS_SQL), $want, '... which has exactly the objects of a fresh install');

# ---- the same default privileges in place before the extension came: the
# 0.1.0 -> 0.2.0 and 0.2.0 -> 0.3.0 scripts let them grant anon routines they
# created (migrate_remove, migrate_start, ...); the 0.4.0 update revokes them,
# and a DBA's own grant to another role stays, dumped by pg_dump.
$node->safe_psql('postgres', 'CREATE DATABASE platform2 OWNER dba');
$node->safe_psql('platform2',
	qq{ALTER DEFAULT PRIVILEGES FOR ROLE "$bootstrap" GRANT EXECUTE ON FUNCTIONS TO anon});
as_dba('platform2', q{CREATE EXTENSION migrate VERSION '0.3.0'});
like(as_dba('platform2', $grants), qr/^function migrate_remove\(text\) anon EXECUTE$/m,
	'at 0.3.0 the default privileges gave anon migrate_remove()');
as_dba('platform2', q{GRANT EXECUTE ON FUNCTION migrate_status() TO deployer});
as_dba('platform2', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('platform2', $grants), 'function migrate_status() deployer EXECUTE',
	'updated, anon has no grant on any routine of the extension; the DBA grant to deployer stays');
denied('anon', 'platform2', q{SELECT * FROM migrate_remove('1')}, 'migrate_remove', 'updated, anon calls migrate_remove()');
my ($dump) = run_command([ 'pg_dump', '--schema-only', '-d', $node->connstr('platform2') ]);
like($dump, qr/GRANT ALL ON FUNCTION public\.migrate_status\(\) TO deployer;/, '... and pg_dump dumps that grant');

$node->stop;
done_testing();
