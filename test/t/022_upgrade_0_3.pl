# 0.3.0 is released and in use: a database created at 0.3.0, with an applied
# and a pending migration and a DBA's grants on migrate_add() and
# migrate_plan() (one WITH GRANT OPTION, used by its grantee).  0.4.0 added the
# catalog column migrate.migrations.assert, so the new library refuses the
# 0.3.0 catalog (55000, with a hint) until ALTER EXTENSION migrate UPDATE.
# Updated to the default version of migrate.control, it has exactly the
# objects of a fresh install, keeps every row and grant (on migrate_plan,
# replaced for its 9th column lint, and on migrate_add, replaced for its last
# parameter "assert"), migrate_lint() runs only for the extension's owner and
# whom it grants it to (42501 for anyone else), the deployer applies the
# pending migration and one whose assert query fails is refused (23000),
# default privileges of a platform (Supabase's for its API roles) give nobody
# the new or the replaced routines, and a dump of the updated database restores.
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
sub fails_as { return MigrateUpgrade::fails_as($node, @_); }

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
my $add_oid = q{SELECT oid FROM pg_proc WHERE proname = 'migrate_add' AND pronamespace = 'public'::regnamespace};
my $add_args = q{SELECT pg_get_function_identity_arguments(oid) FROM pg_proc
                  WHERE proname = 'migrate_add' AND pronamespace = 'public'::regnamespace};
my $assert_column = q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                       WHERE attrelid = 'migrate.migrations'::regclass AND attname = 'assert' AND NOT attisdropped};
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
# (migrate_status() shows 12 digits of a checksum from 0.5.0 on)
my $status = q{SELECT string_agg(version || ':' || state || ':' || left(checksum, 12), ',' ORDER BY version) FROM migrate_status()};

# ---- a database at 0.3.0, in use.  This library refuses a 0.3.0 catalog
# (below), so the rows are written as 0.3.0's code wrote them when deployer
# registered two migrations with migrate_add() and applied the first with
# migrate_apply(): the applied migration's SQL run as deployer, then the
# catalog rows of registering and applying (history rows are chained by
# 0.3.0's trigger).  The values are those 0.3.0 wrote (its 2 checks: the
# expectation and the constraint re-check; its counts of the expectation).
as_dba('upgraded', q{CREATE EXTENSION migrate VERSION '0.3.0'});
is(as_dba('upgraded', $extversion), '0.3.0', 'installed at 0.3.0');
is(as_dba('upgraded', $lint_exists), 'f', '... without migrate_lint()');
unlike(as_dba('upgraded', $plan_result), qr/lint/, '... with the 8 columns of migrate_plan() of 0.3.0');
is(as_dba('upgraded', $assert_column), '', '... and without the column migrate.migrations.assert');
as_dba('upgraded', q{
    GRANT CREATE ON SCHEMA public TO deployer;
    GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb),
                              migrate_apply(text, boolean, boolean, text), migrate_status() TO deployer;
    GRANT EXECUTE ON FUNCTION migrate_plan(text, boolean) TO deployer WITH GRANT OPTION;
});
as_role('deployer', 'upgraded', q{GRANT EXECUTE ON FUNCTION migrate_plan(text, boolean) TO reviewer});
$node->safe_psql('upgraded', q{
    SET ROLE deployer;
    CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL DEFAULT 0);
    INSERT INTO accounts (id) SELECT generate_series(1, 50);
    RESET ROLE;
    CREATE TEMP TABLE m (version text, name text, up text, down text, expect jsonb);
    INSERT INTO m VALUES
        ('001', 'accounts', 'CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL DEFAULT 0);
                        INSERT INTO accounts (id) SELECT generate_series(1, 50)',
         'DROP TABLE accounts', '{"accounts": 50}'),
        ('002', 'wider', 'ALTER TABLE accounts ALTER COLUMN balance TYPE bigint',
         'ALTER TABLE accounts ALTER COLUMN balance TYPE integer', NULL);
    INSERT INTO migrate.migrations (version_key, version, name, up, down, expect, checksum, registered_by)
    SELECT migrate_version_key(version), version, name, up, down, expect, migrate_checksum(up), 'deployer' FROM m;
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
    SELECT version, migrate_version_key(version), name, 'register', migrate_checksum(up), 'deployer'
      FROM m ORDER BY version;
    INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by, touched, touched_tables)
    SELECT migrate_version_key(version), version, name, migrate_checksum(up), 'deployer',
           '{public.accounts}', '{accounts}'
      FROM m WHERE version = '001';
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, duration,
                                rows_affected, counts, checks)
    SELECT version, migrate_version_key(version), name, 'apply', migrate_checksum(up), 'deployer', '5.228 ms',
           50, '{"accounts": {"after": 50, "expect": "50"}}', 2
      FROM m WHERE version = '001';
});
is(as_dba('upgraded', q{SELECT string_agg(m.version || ':' || (a.version_key IS NOT NULL)::text || ':' || m.registered_by,
                                          ',' ORDER BY m.version)
                          FROM migrate.migrations m LEFT JOIN migrate.applied a USING (version_key)}),
	'001:true:deployer,002:false:deployer', 'at 0.3.0, two migrations of deployer, the first applied');
# migrate_status() refuses the 0.3.0 catalog too (below): the states it
# showed at 0.3.0, read from the catalog
my $before_status = as_dba('upgraded', q{
    SELECT string_agg(m.version || ':' || CASE WHEN a.version_key IS NULL THEN 'pending' ELSE 'applied' END
                      || ':' || left(m.checksum, 12), ',' ORDER BY m.version)
      FROM migrate.migrations m LEFT JOIN migrate.applied a USING (version_key)});

my $before_grants = as_dba('upgraded', $grants);
is($before_grants, join("\n",
	'function migrate_add(text,text,text,text,text,jsonb,text[],boolean,jsonb) deployer EXECUTE',
	'function migrate_apply(text,boolean,boolean,text) deployer EXECUTE',
	'function migrate_plan(text,boolean) deployer EXECUTE*',
	'function migrate_plan(text,boolean) reviewer EXECUTE',
	'function migrate_status() deployer EXECUTE'),
	"the DBA's grants at 0.3.0 (on migrate_plan with grant option, and deployer's onward grant)");
my $before_history = as_dba('upgraded', $history_rows);
my $before_plan_oid = as_dba('upgraded', $plan_oid);
my $before_add_oid = as_dba('upgraded', $add_oid);

# ---- the new library refuses the 0.3.0 catalog, and says what to do: to the
# DBA, and to deployer and reviewer through their grants (past the privilege
# check: not 42501)
for my $case ([ 'dba', 'SELECT * FROM migrate_validate()' ],
	[ 'deployer', q{SELECT migrate_add('003', 'x', 'SELECT 1')} ],
	[ 'deployer', q{SELECT * FROM migrate_apply('002')} ],
	[ 'deployer', 'SELECT * FROM migrate_status()' ],
	[ 'reviewer', 'SELECT * FROM migrate_plan()' ])
{
	my ($rc, $err) = fails_as($case->[0], 'upgraded', $case->[1]);
	isnt($rc, 0, "0.3.0 catalog refused ($case->[0]): $case->[1]");
	like($err, qr/ERROR:  55000: the migrate catalog of this database is older than the migrate library.*HINT:  Run ALTER EXTENSION migrate UPDATE/s,
		'... 55000, with a hint to update');
}
is(as_dba('upgraded', $history_rows), $before_history, '... nothing was written');
is(as_dba('upgraded', q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                         WHERE attrelid = 'accounts'::regclass AND attname = 'balance'}), 'integer',
	'... and the pending migration did not run');

# ---- the update
as_dba('upgraded', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('upgraded', $extversion), $latest, "updated to $latest");
isnt(as_dba('upgraded', $plan_oid), $before_plan_oid, 'migrate_plan(text, boolean) was replaced');
like(as_dba('upgraded', $plan_result), qr/, plan_checksum text, lint text\[\]\)$/, '... with its 9th column lint');
is(as_dba('upgraded', $lint_exists), 't', 'migrate_lint() exists');
is(as_dba('upgraded', $assert_column), 'text', 'the column migrate.migrations.assert exists');
isnt(as_dba('upgraded', $add_oid), $before_add_oid, 'migrate_add was replaced');
like(as_dba('upgraded', $add_args), qr/, batch jsonb, assert text$/, '... with its last parameter "assert" text');

# ---- a fresh install
as_dba('fresh', 'CREATE EXTENSION migrate');
my $got = as_dba('upgraded', $OBJECTS_SQL);
my $want = as_dba('fresh', $OBJECTS_SQL);
like($want, qr/^function migrate_lint\(text\) comment: What the pending migrations/m, 'the listing has migrate_lint()');
like($want, qr/^ RETURNS TABLE\(step integer, .*, lint text\[\]\)$/m, '... and the lint column of migrate_plan()');
is(as_dba('upgraded', $grants), join("\n",
	'function migrate_add(text,text,text,text,text,jsonb,text[],boolean,jsonb,text) deployer EXECUTE',
	'function migrate_apply(text,boolean,boolean,text) deployer EXECUTE',
	'function migrate_plan(text,boolean) deployer EXECUTE*',
	'function migrate_plan(text,boolean) reviewer EXECUTE',
	'function migrate_status() deployer EXECUTE'),
	"every grant of the DBA's is kept: on the replaced migrate_add, and on the replaced migrate_plan with its grant option");
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
my @cols = split /\|/, $plan_row, -1;
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

# ---- the new column in the updated database: deployer registers a migration
# with an assert query (its grant on the replaced migrate_add), which fails the
# apply, then with one that holds
my $bonus = q{UPDATE accounts SET balance = balance + 10 WHERE id <= 10};
is(as_role('deployer', 'upgraded', qq{
    SELECT migrate_add('003', 'bonus', '$bonus',
                       "assert" => 'SELECT count(*) = 50 FROM accounts WHERE balance = 10') IS NOT NULL}),
	't', 'deployer registers a migration with an assert query (migrate_add(..., "assert" => ...))');
is(as_dba('upgraded', q{SELECT "assert" FROM migrate.migrations WHERE version = '003'}),
	'SELECT count(*) = 50 FROM accounts WHERE balance = 10', '... kept in migrate.migrations.assert');
my ($rc, $err) = fails_as('deployer', 'upgraded', q{SELECT * FROM migrate_apply()});
isnt($rc, 0, 'its assert query (10 rows changed, not 50) fails the apply');
like($err, qr/ERROR:  23000: assert query of migration 003 failed: row 1 returned false/, '... 23000, naming it');
is(as_role('deployer', 'upgraded', q{SELECT state || ':' || (SELECT count(*) FROM accounts WHERE balance <> 0)
                                      FROM migrate_status() WHERE version = '003'}),
	'pending:0', '... which is rolled back: 003 pending, no row changed');
is(as_role('deployer', 'upgraded', qq{
    SELECT migrate_add('003', 'bonus', '$bonus',
                       "assert" => 'SELECT count(*) = 10 FROM accounts WHERE balance = 10') IS NOT NULL}),
	't', 'deployer corrects the assert query');
is(as_role('deployer', 'upgraded', q{SELECT version || ':' || action || ':' || rows || ':' || checks FROM migrate_apply()}),
	'003:applied:10:2', '... then the apply passes (the assert query and the constraint re-check)');
is(as_dba('upgraded', q{SELECT string_agg(action || ':' || outcome, ',' ORDER BY id) FROM migrate.history
                         WHERE version = '003'}),
	'register:ok,update:ok,apply:ok', '... history: registered, updated (the assert query only), applied once');
is(as_dba('upgraded', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001:applied,002:applied,003:applied', 'every migration applied');
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
like($dumped, qr/^GRANT ALL ON FUNCTION public\.migrate_add\(version text, .*, batch jsonb, assert text\) TO deployer;$/m,
	'... the grant on the replaced migrate_add');
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
# migrate_plan and migrate_add: the update leaves what the install revoked
# revoked.
as_dba('platform', q{CREATE EXTENSION migrate VERSION '0.3.0'});
my $bootstrap = $node->safe_psql('platform', q{SELECT rolname FROM pg_roles WHERE oid = 10});
$node->safe_psql('platform',
	qq{ALTER DEFAULT PRIVILEGES FOR ROLE "$bootstrap" IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon});
denied('anon', 'platform', q{SELECT * FROM migrate_plan()}, 'migrate_plan', 'at 0.3.0, anon calls migrate_plan()');
denied('anon', 'platform', q{SELECT migrate_add('9', 'x', 'SELECT 1')}, 'migrate_add',
	'at 0.3.0, anon calls migrate_add()');
as_dba('platform', 'ALTER EXTENSION migrate UPDATE');
denied('anon', 'platform', q{SELECT * FROM migrate_lint()}, 'migrate_lint', 'updated, anon calls migrate_lint()');
denied('anon', 'platform', q{SELECT * FROM migrate_plan()}, 'migrate_plan', 'updated, anon calls migrate_plan()');
denied('anon', 'platform', q{SELECT migrate_add('9', 'x', 'SELECT 1')}, 'migrate_add',
	'updated, anon calls migrate_add()');
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
my ($schema_dump) = run_command([ 'pg_dump', '--schema-only', '-d', $node->connstr('platform2') ]);
like($schema_dump, qr/GRANT ALL ON FUNCTION public\.migrate_status\(\) TO deployer;/, '... and pg_dump dumps that grant');

$node->stop;
done_testing();
