# What a COMMIT ends, at the COMMITs migrate absorbs and at the end of every
# migration: small directories shaped like real projects, whose files commit
# in their middle (begin; ... end; blocks), give the same result through
# migrate as through psql running each file on its own (the reference:
# psql -X -v ON_ERROR_STOP=1 -f FILE, one file after another, in a fresh
# database).
#
# Each directory goes through (a) the reference, (b) migrate_load(DIR) +
# migrate_apply() as superuser (server path) and (c) bin/migrate-bundle DIR |
# psql --single-transaction as a non-superuser owning its database, then
# migrate_apply() (laptop path); the table rows and pg_dump --schema-only of
# (b) and (c) must equal those of (a).
#
#  1. Supabase login simulation: a function does set_config(..., true) and
#     SET LOCAL ROLE authenticated; a file runs it in two begin/end blocks,
#     inserting a row in each, then inserts and grants outside the blocks:
#     that row is the caller's, with no claims, and the GRANT is the owner's
#     (the local role and setting reverted at the absorbed END; they used to
#     last to the end of the migration: the row was authenticated's and the
#     GRANT only warned).
#  2. One file creating the same ON COMMIT DROP temp table in two blocks
#     (and an ON COMMIT DELETE ROWS table emptied by the COMMIT).
#  3. Two migrations creating the same ON COMMIT DROP temp table, no blocks:
#     the end of the first drops it, in one migrate_apply().  Such files are
#     written for a tool that runs each in one transaction (plain psql -f
#     would drop the table right after its CREATE): the reference is psql -1
#     -f, which is what migrate says each migration behaves as.
#  4. A DEFERRABLE INITIALLY DEFERRED foreign key violated in a block and
#     repaired after its COMMIT: psql fails at that COMMIT (exit 3, 23503,
#     at the COMMIT's line); migrate_apply() fails too, 23503, its DETAIL
#     naming "line N: COMMIT", and keeps nothing of the call.  The file
#     repaired before its COMMIT applies in both.
#  5. golang-migrate layout whose down file has two blocks each doing SET
#     LOCAL ROLE and writes, then a REVOKE as the owner: migrate_rollback()
#     writes the same rows, with the same roles, and revokes, as psql
#     running the down file.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path);
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib "$FindBin::RealBin/lib";
use MigratePsql qw(spew);

# test/run.sh runs this file from a copy of the repository.
my $root    = abs_path("$FindBin::Bin/../..");
my $bundler = "$root/bin/migrate-bundle";
my $have_bundler = -x $bundler;
ok($have_bundler, "bin/migrate-bundle found in the repository copy ($bundler)")
  or diag('test/run.sh must copy bin/ into its copy of the repository');

my $node = PostgreSQL::Test::Cluster->new('commit_points');
$node->init;
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir();

# Supabase's roles; the non-superuser of the laptop path may become them,
# as Supabase's postgres role may.
$node->safe_psql(
	'postgres', q{
CREATE ROLE app_owner LOGIN;
CREATE ROLE authenticated NOLOGIN;
CREATE ROLE service_role NOLOGIN;
GRANT authenticated, service_role TO app_owner;
});

# psql as a user runs it, against $node (test/t/lib/MigratePsql.pm)
sub run_psql { return MigratePsql::run_psql($node, @_); }
sub query { return MigratePsql::query($node, @_); }

# Write the files of a project directory; returns the directory.
sub project
{
	my ($dir, %files) = @_;
	make_path($dir);
	spew("$dir/$_", $files{$_}) for keys %files;
	return $dir;
}

# The line of the first line of $text equal to $line (1-based).
sub line_of
{
	my ($text, $line) = @_;
	my @lines = split /\n/, $text;
	for my $i (0 .. $#lines)
	{
		return $i + 1 if $lines[$i] eq $line;
	}
	die "no line '$line'";
}

# pg_dump of 15.14 and later writes \restrict KEY / \unrestrict KEY lines
# with a random key unless given one; older ones have no such option.
my ($dump_help, $dump_help_err) = ('', '');
IPC::Run::run([ 'pg_dump', '--help' ], '<', \undef, '>', \$dump_help, '2>', \$dump_help_err);
my @restrict_key = $dump_help =~ /--restrict-key/ ? ('--restrict-key=migrate') : ();

# Schema dump of the project's schema app, privileges included (the grants
# to authenticated are part of it), owners left out.
sub schema_dump
{
	my ($db) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			'pg_dump', '--schema-only', '--no-owner', @restrict_key,
			'--schema=app', '-d', $node->connstr($db)
		],
		'<', \undef, '>', \$out, '2>', \$err)
	  or die "pg_dump $db failed: $err";
	$out =~ s/^\\(?:un)?restrict .*\n//mg;
	return $out;
}

sub same_text { return MigratePsql::same_text($tmp, @_); }

# (a) the reference: each file with psql -f, one after another; returns
# true if all succeeded.  A first argument { single => 1 } runs psql -1 -f:
# each file in one transaction of its own.
sub reference
{
	my ($db, $dir, @files) = @_;
	my %o = ref $files[0] ? %{ shift @files } : ();
	for my $f (@files)
	{
		my ($rc, $out, $err) = run_psql($db, undef, file => "$dir/$f",
			single_transaction => $o{single});
		if ($rc != 0)
		{
			diag("$f: $err");
			return 0;
		}
	}
	return 1;
}

sub new_db
{
	my ($db, $owner) = @_;
	$node->safe_psql('postgres',
		"CREATE DATABASE $db" . ($owner ? " OWNER $owner" : ''));
	return $db;
}

# A database with the extension, for the server path (superuser) or the
# laptop path (app_owner owns the database and may call migrate's routines).
sub migrate_db
{
	my ($db, $laptop) = @_;
	new_db($db, $laptop ? 'app_owner' : undef);
	$node->safe_psql($db, 'CREATE EXTENSION migrate');
	$node->safe_psql($db,
		'GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO app_owner')
	  if $laptop;
	return $db;
}

# Register a directory: migrate_load(DIR) as superuser, or the bundle piped
# into psql as app_owner.  Returns (exit code, the file|result rows, stderr).
sub register
{
	my ($db, $dir, $laptop) = @_;
	if ($laptop)
	{
		my ($rc, $out, $err) = run_psql(
			$db, undef,
			stdin              => [ $bundler, $dir ],
			user               => 'app_owner',
			single_transaction => 1);
		# the bundle's rows: file|version|name|kind|part|result|detail
		return ($rc,
			join("\n", map { my @c = split /\|/, $_, -1; "$c[0]|$c[5]" } grep { /\|/ } split /\n/, $out),
			$err);
	}
	return run_psql($db,
		"SELECT file || '|' || result FROM migrate_load('$dir') ORDER BY file COLLATE \"C\"");
}

# migrate_apply() (warnings and errors on stderr); returns (exit code, the
# version|action rows, stderr).
sub apply
{
	my ($db, $laptop, $args) = @_;
	$args //= '';
	return run_psql(
		$db,
		"SET client_min_messages = warning; SELECT version || '|' || action FROM migrate_apply($args);",
		$laptop ? (user => 'app_owner') : ());
}

# The paths, each with a label and whether it is the laptop one.
my @paths = ([ 'load', 0 ], ($have_bundler ? ([ 'bundle', 1 ]) : ()));

# Compare a directory through both paths with its reference.  $rows: a
# query of the project's rows, run as the user that ran the migrations
# (who = session_user is that user).  Options: single (the reference runs
# psql -1 -f), ref_more (code run on the reference database after its files,
# e.g. a down file), more (code run after the apply, given (db, label,
# laptop), e.g. a rollback).  Returns the reference's rows.
sub compare_directory
{
	my (%o) = @_;
	my ($name, $dir, $files, $rows) = @o{qw(name dir files rows)};
	my $ref = new_db("ref_$name");
	ok(reference($ref, $dir, { single => $o{single} }, @$files),
		"$name: reference: " . scalar(@$files) . ' files run with psql '
		  . ($o{single} ? '-1 ' : '') . '-f, one after another');
	$o{ref_more}->($ref) if $o{ref_more};
	my $ref_rows = query($ref, $rows);
	my $ref_dump = schema_dump($ref);

	for my $p (@paths)
	{
		my ($label, $laptop) = @$p;
		my $db = migrate_db("${label}_$name", $laptop);
		my %as = $laptop ? (user => 'app_owner') : ();
		my ($rc, $out, $err) = register($db, $dir, $laptop);
		is($rc, 0, "$name ($label): registered") or diag($err);
		opendir(my $dh, $dir) or die "cannot open $dir: $!";
		my $nfiles = grep { -f "$dir/$_" } readdir $dh;
		closedir $dh;
		my @new = grep { /\|new$/ } split /\n/, $out;
		is(scalar @new, $nfiles, "$name ($label): the $nfiles files registered as new")
		  or diag($out);
		($rc, $out, $err) = apply($db, $laptop);
		is($rc, 0, "$name ($label): migrate_apply()") or diag($err);
		next if $rc != 0;
		$o{more}->($db, "$name ($label)", $laptop) if $o{more};
		same_text("$name.$label.rows", $ref_rows, query($db, $rows, %as),
			"$name ($label): rows equal the reference's");
		same_text("$name.$label.schema", $ref_dump, schema_dump($db),
			"$name ($label): schema dump equals the reference's");
	}
	return $ref_rows;
}

# ------------------------------------------------------------ 1. Supabase login simulation
{
	my $dir = project(
		"$tmp/logins/supabase/migrations",
		'20240101000000_setup.sql' => <<'EOF',
create schema app;
create table app.notes (
  id serial primary key,
  who text default current_user,
  claims text default current_setting('request.jwt.claims', true)
);
-- Supabase's test helper
create function app.simulate_login(claims text) returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', claims, true);
  set local role authenticated;
end
$$;
grant usage on schema app to authenticated;
grant select, insert on app.notes to authenticated;
grant usage on sequence app.notes_id_seq to authenticated;
EOF
		'20240102000000_logins.sql' => <<'EOF',
-- each block logs in as someone, as a test of the policies would
begin;
select app.simulate_login('{"sub":"a"}');
insert into app.notes default values;
end;

begin;
select app.simulate_login('{"sub":"b"}');
insert into app.notes default values;
end;

-- written and granted as the caller (as authenticated, the GRANT would
-- only warn: no privileges were granted)
insert into app.notes default values;
grant select on app.notes to service_role;
EOF
	);
	my $ref_rows = compare_directory(
		name  => 'logins',
		dir   => $dir,
		files => [ '20240101000000_setup.sql', '20240102000000_logins.sql' ],
		rows  => q{SELECT id, CASE WHEN who = session_user THEN 'caller' ELSE who END,
		                  coalesce(claims, 'NULL') FROM app.notes ORDER BY id});
	is( $ref_rows,
		qq{1|authenticated|{"sub":"a"}\n2|authenticated|{"sub":"b"}\n3|caller|},
		'logins: reference: each block as authenticated with its claims, the last row as the caller with none'
	);
}

# ------------------------------------------------------------ 2. ON COMMIT DROP in two blocks of a file
{
	my $dir = project(
		"$tmp/blocks/supabase/migrations",
		'20240201000000_totals.sql' => <<'EOF',
create schema app;
create table app.totals (label text primary key, n int, s int);
EOF
		'20240202000000_staged_import.sql' => <<'EOF',
begin;
create temp table staging (k int, v text) on commit drop;
insert into staging values (1, 'a'), (2, 'b');
insert into app.totals select 'first', count(*), sum(k) from staging;
commit;

begin;
create temp table staging (k int, v text) on commit drop;
insert into staging values (3, 'c');
insert into app.totals select 'second', count(*), sum(k) from staging;
commit;

create temp table pending (k int) on commit delete rows;
begin;
insert into pending values (1), (2);
insert into app.totals select 'pending in block', count(*), 0 from pending;
commit;
insert into app.totals select 'pending after commit', count(*), 0 from pending;
EOF
	);
	my $ref_rows = compare_directory(
		name  => 'blocks',
		dir   => $dir,
		files => [ '20240201000000_totals.sql', '20240202000000_staged_import.sql' ],
		rows  => q{SELECT label, n, s FROM app.totals ORDER BY label});
	is( $ref_rows,
		"first|2|3\npending after commit|0|0\npending in block|2|0\nsecond|1|3",
		'blocks: reference: each block had its own staging table; the COMMIT emptied pending');
}

# ------------------------------------------------------------ 3. ON COMMIT DROP in two migrations
{
	my $scratch = <<'EOF';
create temp table incoming (line text) on commit drop;
insert into incoming values %s;
insert into app.imports select '%s', count(*) from incoming;
EOF
	my $dir = project(
		"$tmp/scratch/supabase/migrations",
		'20240301000000_imports.sql' => "create schema app;\ncreate table app.imports (src text, n int);\n",
		'20240302000000_import_a.sql' => sprintf($scratch, q{('x'), ('y')}, 'a'),
		'20240303000000_import_b.sql' => sprintf($scratch, q{('z')}, 'b'));
	my $ref_rows = compare_directory(
		name  => 'scratch',
		dir   => $dir,
		files => [
			'20240301000000_imports.sql', '20240302000000_import_a.sql',
			'20240303000000_import_b.sql'
		],
		rows   => q{SELECT src, n FROM app.imports ORDER BY src},
		single => 1);
	is($ref_rows, "a|2\nb|1", 'scratch: reference: each migration had its own incoming table');
}

# ------------------------------------------------------------ 4. a deferred foreign key checked at the COMMIT
{
	my $broken = <<'EOF';
-- link the members to their team
-- (the team row comes later)

begin;
insert into app.member values (1, 10);
commit;
insert into app.team values (10);
EOF
	my $repaired = <<'EOF';
-- link the members to their team

begin;
insert into app.member values (1, 10);
insert into app.team values (10);
commit;
insert into app.member values (2, 10);
EOF
	my $commit_line = line_of($broken, 'commit;');
	my $dir = project(
		"$tmp/deferred/supabase/migrations",
		'20240401000000_teams.sql' => <<'EOF',
create schema app;
create table app.team (id int primary key);
create table app.member (
  id int primary key,
  team int references app.team deferrable initially deferred
);
insert into app.team values (1);
EOF
		'20240402000000_first_team.sql' => "insert into app.team values (5);\n",
		'20240403000000_members.sql'    => $broken);
	my @files = ('20240401000000_teams.sql', '20240402000000_first_team.sql',
		'20240403000000_members.sql');
	my $rows = q{SELECT 'team ' || id FROM app.team UNION ALL SELECT 'member ' || id || ' ' || team FROM app.member ORDER BY 1};

	# (a) psql fails at the COMMIT, and runs nothing after it
	my $ref = new_db('ref_deferred');
	ok(reference($ref, $dir, @files[ 0 .. 1 ]), 'deferred: reference: the first two files');
	my ($rc, $out, $err) = run_psql($ref, undef, file => "$dir/$files[2]");
	is($rc, 3, 'deferred: reference: psql exits 3 (ON_ERROR_STOP) on the file that violates the key');
	like($err, qr/^psql:[^\n]*:$commit_line: ERROR:  23503: /m,
		"deferred: reference: psql fails with 23503 at the COMMIT (line $commit_line)");
	is(query($ref, $rows), "team 1\nteam 5",
		'deferred: reference: the block is rolled back, the repair after it not run');

	for my $p (@paths)
	{
		my ($label, $laptop) = @$p;
		my %as = $laptop ? (user => 'app_owner') : ();
		my $db = migrate_db("${label}_deferred", $laptop);
		($rc, $out, $err) = register($db, $dir, $laptop);
		is($rc, 0, "deferred ($label): registered") or diag($err);
		($rc, $out, $err) = apply($db, $laptop, "target => '20240401000000'");
		is($rc, 0, "deferred ($label): migrate_apply(target) applies the tables") or diag($err);

		my $state = q{SELECT string_agg(version || ' ' || state, ', ' ORDER BY version) FROM migrate_status()};
		my $before_rows  = query($db, $rows,  %as);
		my $before_state = query($db, $state, %as);
		is($before_rows, 'team 1', "deferred ($label): before the call, the first migration's row");
		($rc, $out, $err) = apply($db, $laptop);
		note("migrate_apply(): $err");
		isnt($rc, 0, "deferred ($label): migrate_apply() fails, as psql does")
		  or diag($out);
		like($err, qr/ERROR:  23503: /, "deferred ($label): ... with 23503");
		my ($detail) = $err =~ /^DETAIL:  (.*)$/m;
		like($detail // '', qr/\bline $commit_line: COMMIT\b/,
			"deferred ($label): ... its DETAIL names line $commit_line: COMMIT")
		  or diag($err);
		like($detail // '', qr/\b20240403000000\b/,
			"deferred ($label): ... and the migration") or diag($err);
		is(query($db, $rows, %as), $before_rows,
			"deferred ($label): the tables are as before the call: nothing of 20240402000000 nor of the block kept");
		is(query($db, $state, %as), $before_state,
			"deferred ($label): the migrations are as before the call");
	}

	# repaired before its COMMIT: both apply it
	spew("$dir/$files[2]", $repaired);
	($rc, $out, $err) = run_psql($ref, undef, file => "$dir/$files[2]");
	is($rc, 0, 'deferred: reference: the repaired file runs') or diag($err);
	my $ref_rows = query($ref, $rows);
	is($ref_rows, "member 1 10\nmember 2 10\nteam 1\nteam 10\nteam 5",
		'deferred: reference: rows of the repaired file');
	my $ref_dump = schema_dump($ref);
	for my $p (@paths)
	{
		my ($label, $laptop) = @$p;
		my %as = $laptop ? (user => 'app_owner') : ();
		my $db = "${label}_deferred";
		($rc, $out, $err) = register($db, $dir, $laptop);
		like($out, qr/^20240403000000_members\.sql\|changed$/m,
			"deferred ($label): the repaired file is registered (changed)")
		  or diag($out, $err);
		($rc, $out, $err) = apply($db, $laptop);
		is($rc, 0, "deferred ($label): migrate_apply() applies the repaired file") or diag($err);
		same_text("deferred.$label.rows", $ref_rows, query($db, $rows, %as),
			"deferred ($label): rows equal the reference's");
		same_text("deferred.$label.schema", $ref_dump, schema_dump($db),
			"deferred ($label): schema dump equals the reference's");
	}
}

# ------------------------------------------------------------ 5. golang-migrate: a down file with blocks
{
	my $dir = project(
		"$tmp/golang/migrations",
		'1_audit.up.sql' => <<'EOF',
create schema app;
create table app.audit (
  id serial primary key,
  who text not null default current_user,
  what text not null
);
create table app.items (id int primary key, label text);
grant usage on schema app to authenticated, service_role;
grant select, insert on app.audit, app.items to authenticated, service_role;
grant usage on sequence app.audit_id_seq to authenticated, service_role;
EOF
		'1_audit.down.sql' => "drop schema app cascade;\n",
		'2_items.up.sql'   => <<'EOF',
grant delete on app.items to authenticated, service_role;
insert into app.items values (1, 'one'), (2, 'two');
insert into app.audit (what) values ('items added');
EOF
		'2_items.down.sql' => <<'EOF',
begin;
set local role authenticated;
delete from app.items where id = 1;
insert into app.audit (what) values ('item 1 removed');
commit;

begin;
set local role service_role;
delete from app.items where id = 2;
insert into app.audit (what) values ('item 2 removed');
commit;

-- as the caller, the owner (as service_role, the REVOKE would only warn)
revoke delete on app.items from authenticated, service_role;
insert into app.audit (what) values ('items removed');
EOF
	);
	my $ref_rows = compare_directory(
		name     => 'golang',
		dir      => $dir,
		files    => [ '1_audit.up.sql', '2_items.up.sql' ],
		rows     => q{SELECT 'audit', id, CASE WHEN who = session_user THEN 'caller' ELSE who END, what FROM app.audit
		              UNION ALL SELECT 'item', id, label, NULL FROM app.items ORDER BY 1, 2},
		ref_more => sub {
			my ($db) = @_;
			ok(reference($db, $dir, '2_items.down.sql'),
				'golang: reference: the down file of 2 run with psql -f');
		},
		more => sub {
			my ($db, $label, $laptop) = @_;
			my ($rc, $out, $err) = run_psql(
				$db,
				"SET client_min_messages = warning; SELECT version || '|' || action FROM migrate_rollback('1');",
				$laptop ? (user => 'app_owner') : ());
			is($rc, 0, "$label: migrate_rollback('1')") or diag($err);
			like($out, qr/^2\|/m, "$label: ... reverts 2") or diag($out);
		});
	is( $ref_rows,
		"audit|1|caller|items added\naudit|2|authenticated|item 1 removed\n"
		  . "audit|3|service_role|item 2 removed\naudit|4|caller|items removed",
		'golang: reference: each block of the down file wrote as its role, the last row as the caller');
}

$node->stop;
done_testing();
