# Migration directories end to end, as a new user meets them:
#
#  1. server directories with migrate_load() (superuser), one database per
#     fixture set: the result rows, the order of migrate_plan() against
#     test/fixtures/README.md, migrate_apply(), migrate_verify(), rollback
#     to '0' where every migration has a down, loading again ('unchanged'),
#     numbered_dup refused (42710), an edited repeatable ('changed', re-run);
#  2. privileges: a non-superuser needs pg_read_server_files for migrate_load;
#  3. the laptop path: bin/migrate-bundle DIR | psql --single-transaction as
#     that non-superuser registers exactly what migrate_load registers, byte
#     for byte (quotes, dollar quotes, backslashes, CRLF, BOM, emoji);
#  4. the web-editor path: bin/migrate-bundle --apply DIR sent as one query
#     string (one implicit transaction): all or nothing;
#  5. supabase_migrations.schema_migrations follows applies and rollbacks.
use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use File::Copy qw(copy);
use FindBin;
use IPC::Run;
use lib "$FindBin::RealBin/lib";
use MigratePsql;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# test/run.sh runs this file from a copy of the repository: find its root
# from this file's own path.
my $root     = abs_path("$FindBin::Bin/../..");
my $fixtures = "$root/test/fixtures";
my $bundler  = "$root/bin/migrate-bundle";
ok(-d "$fixtures/supabase", "fixtures found in $fixtures");
ok(-x $bundler, "bin/migrate-bundle found in the repository copy ($bundler)")
  or diag('test/run.sh must copy bin/ into its copy of the repository');

my $node = PostgreSQL::Test::Cluster->new('directories');
$node->init;
$node->start;

# ------------------------------------------------------------ helpers
# psql (-XAtq, ON_ERROR_STOP, errors with their SQLSTATE), as MigratePsql
# runs it: options user, command (one query string, psql -c),
# single_transaction, stdin.  Returns (exit code, stdout, stderr).
sub run_psql { return MigratePsql::run_psql($node, @_); }

# SQL that must succeed; returns its output (rows as lines, columns |).
sub query { return MigratePsql::query($node, @_); }

# SQL that must fail with an error matching $re.
sub fails_like
{
	my ($db, $sql, $re, $name, %o) = @_;
	my ($rc, $out, $err) = run_psql($db, $sql, %o);
	isnt($rc, 0, "$name: refused");
	like($err, $re, "$name: error");
	return $err;
}

sub new_db
{
	my ($db, $owner) = @_;
	$node->safe_psql('postgres',
		"CREATE DATABASE $db" . ($owner ? " OWNER $owner" : ''));
	$node->safe_psql($db, 'CREATE EXTENSION migrate');
	$node->safe_psql($db,
		"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO $owner")
	  if $owner;
	return;
}

sub lines { return join("\n", @_); }

# What the fixture left in schema public: relations, types, and functions
# other than the extension's own.
sub public_objects
{
	my ($db) = @_;
	return query(
		$db, q{
	SELECT 'relations=' || (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)
	    || ' types=' || (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace)
	    || ' functions=' || (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
	                                                        AND proname NOT LIKE 'migrate\_%')});
}

sub load_rows
{
	my ($db, $dir, %o) = @_;
	return query($db,
		"SELECT file, version, name, kind, part, result, detail FROM migrate_load('$dir') ORDER BY file COLLATE \"C\"",
		%o);
}

sub write_file
{
	my ($path, $bytes) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $bytes;
	close($fh) or die "cannot write $path: $!";
	return;
}

# md5 of a file's bytes; with $skip_bom, less a leading UTF-8 byte order
# mark, which is not part of a script (psql would choke on it too)
sub file_md5
{
	my ($path, $skip_bom) = @_;
	open(my $fh, '<:raw', $path) or die "cannot read $path: $!";
	local $/;
	my $bytes = <$fh>;
	close($fh);
	$bytes =~ s/^\xEF\xBB\xBF// if $skip_bom;
	return Digest::MD5::md5_hex($bytes);
}

sub copy_dir
{
	my ($from, $to) = @_;
	mkdir $to or die "mkdir $to: $!" unless -d $to;
	opendir(my $dh, $from) or die "opendir $from: $!";
	for my $f (grep { -f "$from/$_" } readdir $dh)
	{
		copy("$from/$f", "$to/$f") or die "copy $from/$f: $!";
	}
	closedir $dh;
	return;
}

# The catalog rows that must agree between two ways of registering.
my $catalog_sql = q{
	SELECT version, name, kind, checksum, down IS NULL, md5(up), md5(down), md5(verify),
	       expect::text, requires::text, transactional
	  FROM migrate.migrations ORDER BY version_key COLLATE "C"};

# ------------------------------------------------------------ 1. migrate_load
# Per set: migrate_load() rows (ordered by file name), the order documented
# in test/fixtures/README.md, the apply target (dbmate: the last one is
# transaction:false), and a query showing the migrations' effect.
my %sets = (
	supabase => {
		load => lines(
			'20240103000001_chat_schema.sql|20240103000001|chat_schema|versioned|up|new|',
			'20240103000002_chat_triggers.sql|20240103000002|chat_triggers|versioned|up|new|',
			'20240215093000_message_status.sql|20240215093000|message_status|versioned|up|new|',
			'20251003120000_profile_avatar.sql|20251003120000|profile_avatar|versioned|up|new|',
			'20251003_add_profiles.sql|20251003|add_profiles|versioned|up|new|',
			'20251108093000_room_stats_view.sql|20251108093000|room_stats_view|versioned|up|new|',
			'20251108_seed_rooms.sql|20251108|seed_rooms|versioned|up|new|'),
		order => [
			qw(20240103000001 20240103000002 20240215093000 20251003 20251003120000 20251108 20251108093000)
		],
		effect => [
			q{SELECT string_agg(slug, ',' ORDER BY slug) FROM public_room_stats},
			'general,random'
		],
	},
	dated => {
		load => lines(
			'2025-10-08_09_create_jobs.sql|2025-10-08_09|create_jobs|versioned|up|new|',
			'2025-10-08_18_add_processing_time_minutes.sql|2025-10-08_18|add_processing_time_minutes|versioned|up, verify|new|',
			'2025-10-09_01_create_job_steps.sql|2025-10-09_01|create_job_steps|versioned|up|new|',
			'2025-10-09_02_job_summary_view.sql|2025-10-09_02|job_summary_view|versioned|up|new|',
			'2025-10-10_01_index_jobs_kind.sql|2025-10-10_01|index_jobs_kind|versioned|up|new|'
		),
		order =>
		  [qw(2025-10-08_09 2025-10-08_18 2025-10-09_01 2025-10-09_02 2025-10-10_01)],
		effect => [
			q{SELECT string_agg(kind || ':' || runs, ',' ORDER BY kind) FROM job_summary},
			'export:1,import:2'
		],
	},
	numbered => {
		load => lines(
			'001_create_tools.sql|001|create_tools|versioned|up|new|',
			'002_create_agents.sql|002|create_agents|versioned|up|new|',
			'003_unified_schema.sql|003|unified_schema|versioned|up|new|',
			'004_seed_tools.sql|004|seed_tools|versioned|up|new|',
			'005_agent_tool_count.sql|005|agent_tool_count|versioned|up|new|',
			'024_memories.sql|024|memories|versioned|up|new|'),
		order  => [qw(001 002 003 004 005 024)],
		effect => [
			q{SELECT content FROM memories},
			q{It's a $5 plan; don't lose the $$.}
		],
	},
	dbmate => {
		load => lines(
			'20151129054053_create_users.sql|20151129054053|create_users|versioned|up, down|new|',
			'20151129054512_create_posts.sql|20151129054512|create_posts|versioned|up, down|new|',
			'20160103101500_add_user_role.sql|20160103101500|add_user_role|versioned|up, down|new|',
			'20160210080000_post_counts.sql|20160210080000|post_counts|versioned|up, down|new|',
			'20160301120000_index_posts_created_at.sql|20160301120000|index_posts_created_at|versioned|up, down|new|transaction:false'
		),
		order => [
			qw(20151129054053 20151129054512 20160103101500 20160210080000 20160301120000)
		],
		target   => '20160210080000',
		rollback => 1,
		effect   => [
			q{SELECT count(*) FROM user_post_counts} . q{ WHERE posts = 0},
			'0'
		],
	},
	flyway => {
		load => lines(
			'R__functions.sql|R__functions|functions|repeatable|up|new|',
			'R__refresh_views.sql|R__refresh_views|refresh_views|repeatable|up|new|',
			'U1.1__add_email.sql|1.1|add_email|versioned|down|new|',
			'U2__seed.sql|2|seed|versioned|down|new|',
			'V1.1__add_email.sql|1.1|add_email|versioned|up|new|',
			'V1__create_tables.sql|1|create_tables|versioned|up|new|',
			'V2_1__add_index.sql|2_1|add_index|versioned|up|new|',
			'V2__seed.sql|2|seed|versioned|up|new|'),
		order  => [qw(1 1.1 2 2_1 R__functions R__refresh_views)],
		effect => [
			q{SELECT string_agg(label, ',' ORDER BY id) FROM customer_totals},
			q{Acme (2 orders),O'Brien & Sons (1 order)}
		],
	},
	golang => {
		load => lines(
			'10_add_index.down.sql|10|add_index|versioned|down|new|',
			'10_add_index.up.sql|10|add_index|versioned|up|new|',
			'1_create_users.down.sql|1|create_users|versioned|down|new|',
			'1_create_users.up.sql|1|create_users|versioned|up|new|',
			'2_add_posts.down.sql|2|add_posts|versioned|down|new|',
			'2_add_posts.up.sql|2|add_posts|versioned|up|new|'),
		order    => [qw(1 2 10)],
		rollback => 1,
		effect   => [
			q{SELECT count(*) FROM pg_indexes WHERE indexname = 'posts_author_published_idx'},
			'1'
		],
	},
	directives => {
		load => lines(
			'001_create_catalog.sql|001|create_catalog|versioned|up|new|',
			'002_seed_catalog.sql|002|seed_catalog|versioned|up|new|'),
		order  => [qw(001 002)],
		effect => [
			q{SELECT (SELECT count(*) FROM categories) || ',' || (SELECT count(*) FROM tools) || ','
			      || (SELECT count(*) FROM audit_log)},
			'5,150,1'
		],
	},);
my @set_names = qw(supabase dated numbered dbmate flyway golang directives);

for my $set (@set_names)
{
	my $s   = $sets{$set};
	my $db  = "load_$set";
	my $dir = "$fixtures/$set";
	new_db($db);

	is(load_rows($db, $dir), $s->{load}, "$set: migrate_load() rows");
	$s->{catalog} = query($db, $catalog_sql);    # for the laptop path
	is(query($db, 'SELECT version FROM migrate_plan() ORDER BY step'),
		lines(@{ $s->{order} }), "$set: migrate_plan() in the documented order");

	my @applied = @{ $s->{order} };
	my @actions = map { "$_ applied" } @applied;
	if ($s->{target})
	{
		# the transaction:false migration is left pending, with a warning
		# saying how to go on; everything else applies
		@applied = grep { $_ ne $s->{order}[-1] } @applied;
		@actions = ((map { "$_ applied" } @applied), "$s->{order}[-1] left pending");
	}
	my ($rc_apply, $out_apply, $err_apply) = run_psql($db,
		"SET client_min_messages = warning; SELECT version || ' ' || action FROM migrate_apply()");
	is($rc_apply, 0, "$set: migrate_apply() succeeds") or diag($err_apply);
	is($out_apply, lines(@actions), "$set: migrate_apply() applies in that order");
	if ($s->{target})
	{
		like($err_apply,
			qr/WARNING:  (?:01000: )?migration $s->{order}[-1] was left pending: it cannot run in a transaction/,
			"$set: a warning says the non-transactional migration was left pending");
		like($err_apply, qr/HINT:  Apply it, and the migrations that require it, with a background job: SELECT migrate_start\(\);/,
			"$set: the hint says how to go on");
		is(query($db, "SELECT state FROM migrate_status() WHERE version = '$s->{order}[-1]'"),
			'pending', "$set: the non-transactional migration stays pending, not out of order");
	}
	is(query($db, $s->{effect}[0]), $s->{effect}[1],
		"$set: the migrations did their work");
	like(query($db, 'SELECT migrate_verify()'),
		qr/^[1-9]\d*$/, "$set: migrate_verify() passes");
	is(query($db, 'SELECT count(*) FROM migrate_validate()'),
		$s->{target} ? '1' : '0',
		"$set: migrate_validate() " . ($s->{target} ? 'only flags the non-transactional one' : 'finds nothing'));

	is( query(
			$db,
			"SELECT count(*) FILTER (WHERE result <> 'unchanged') || '/' || count(*) FROM migrate_load('$dir')"
		),
		'0/' . scalar(split /\n/, $s->{load}),
		"$set: loading the directory again: every file unchanged");

	if ($s->{rollback})
	{
		is( query(
				$db,
				"SET client_min_messages = warning; SELECT version || ' ' || action FROM migrate_rollback('0')"
			),
			lines(map { "$_ reverted" } reverse @applied),
			"$set: migrate_rollback('0') reverts newest first");
		is(public_objects($db), 'relations=0 types=0 functions=0',
			"$set: after the rollback the fixture's objects are gone");
		is(query($db, 'SELECT count(*) FROM migrate.applied'),
			'0', "$set: nothing applied any more");
	}
}

# dbmate: the pending non-transactional one is what validate flagged.
is(query('load_dbmate', 'SELECT problem || \' \' || version FROM migrate_validate()'),
	'needs worker 20160301120000',
	'dbmate: validate says the transaction:false migration needs the worker');
# ... and a job applies it, as the hint says
{
	my $job = query('load_dbmate', 'SELECT migrate_start()');
	like(query('load_dbmate', "CALL migrate_wait($job)"), qr/^succeeded\|(\d+)\|\1$/,
		'dbmate: a job applies the transaction:false migration (and what waited for it)');
	is(query('load_dbmate', 'SELECT count(*) FROM migrate_validate()'), '0',
		'dbmate: then validate finds nothing');
	is(query('load_dbmate', "SELECT state FROM migrate_status() WHERE version = '20160301120000'"), 'applied',
		'dbmate: the transaction:false migration is applied');
}

# flyway: 2.1 and 1 have no down script; a rollback below 2.1 is refused
# before anything runs, naming them (newest first).
fails_like(
	'load_flyway',
	q{SELECT * FROM migrate_rollback('2')},
	qr/ERROR:  55000: cannot roll back to 2: some migrations have no down script\n(?:.*\n)*?DETAIL:  Without a down script: 2_1\./,
	'flyway: rollback to 2');
fails_like(
	'load_flyway',
	q{SELECT * FROM migrate_rollback('0')},
	qr/ERROR:  55000: cannot roll back to 0: some migrations have no down script\n(?:.*\n)*?DETAIL:  Without a down script: 2_1, 1\./,
	'flyway: rollback to 0');
is( query(
		'load_flyway',
		q{SELECT count(*) FILTER (WHERE state = 'applied') || '/' || count(*) FROM migrate_status()}
	),
	'6/6',
	'flyway: the refused rollbacks changed nothing');

# numbered_dup: two files with version 024.
fails_like(
	'postgres',
	"CREATE EXTENSION migrate; SELECT * FROM migrate_load('$fixtures/numbered_dup')",
	qr/ERROR:  42710: .*"024_memories\.sql".*"024_widgets\.sql"|ERROR:  42710: .*"024_widgets\.sql".*"024_memories\.sql"/,
	'numbered_dup: migrate_load() names both 024 files');
is( query(
		'postgres',
		q{SELECT (SELECT count(*) FROM migrate.migrations) || '/' || (SELECT count(*) FROM migrate.history)}
	),
	'0/0',
	'numbered_dup: nothing registered');

# flyway: an edited repeatable is loaded as 'changed' and runs again.
my $tmp       = PostgreSQL::Test::Utils::tempdir;
my $flyway_v2 = "$tmp/flyway_edited";
copy_dir("$fixtures/flyway", $flyway_v2);
write_file(
	"$flyway_v2/R__refresh_views.sql", q{-- Repeatable; edited: also counts orders.
CREATE OR REPLACE VIEW customer_totals AS
SELECT c.id,
       customer_label(c.name, count(o.id)) AS label,
       coalesce(sum(o.total_cents), 0) AS total_cents,
       count(o.id) AS orders
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id
GROUP BY c.id, c.name;
});
is( query(
		'load_flyway',
		"SELECT file || ' ' || result FROM migrate_load('$flyway_v2') WHERE result <> 'unchanged'"
	),
	'R__refresh_views.sql changed',
	'flyway: the edited repeatable is changed, every other file unchanged');
is(query('load_flyway', 'SELECT version FROM migrate_plan() ORDER BY step'),
	'R__refresh_views', 'flyway: the plan shows the edited repeatable again');
is( query(
		'load_flyway',
		q{SET client_min_messages = warning; SELECT version || ' ' || action FROM migrate_apply()}
	),
	'R__refresh_views applied',
	'flyway: migrate_apply() runs it again');
is( query(
		'load_flyway',
		q{SELECT count(*) FROM migrate.history WHERE version = 'R__refresh_views' AND action = 'apply'}
	),
	'2',
	'flyway: two apply history rows for R__refresh_views');
is(query('load_flyway', q{SELECT string_agg(orders::text, ',' ORDER BY id) FROM customer_totals}),
	'2,1', 'flyway: the view has its new column');
is(query('load_flyway', 'SELECT count(*) FROM migrate_plan()'),
	'0', 'flyway: nothing left to do');

# ------------------------------------------------------------ 2. privileges
$node->safe_psql('postgres', 'CREATE ROLE deployer LOGIN');
new_db('deploy', 'deployer');
fails_like(
	'deploy',
	"SELECT * FROM migrate_load('$fixtures/golang')",
	qr/ERROR:  42501: permission denied to read migration files on the server/,
	'deployer without pg_read_server_files: migrate_load()',
	user => 'deployer');
is(query('deploy', 'SELECT count(*) FROM migrate.migrations'),
	'0', 'the refused load registered nothing');

$node->safe_psql('postgres', 'GRANT pg_read_server_files TO deployer');
is( query(
		'deploy',
		"SELECT count(*) FILTER (WHERE result = 'new') FROM migrate_load('$fixtures/golang')",
		user => 'deployer'),
	'6',
	'deployer with pg_read_server_files: migrate_load() registers the directory');
is( query(
		'deploy',
		q{SET client_min_messages = warning; SELECT string_agg(version, ',') FROM migrate_apply()},
		user => 'deployer'),
	'1,2,10',
	'deployer applies what it loaded');
is(query('deploy', 'SELECT DISTINCT applied_by FROM migrate.applied'),
	'deployer', 'applied by deployer');
$node->safe_psql('postgres', 'REVOKE pg_read_server_files FROM deployer');

# Parts 3 and 4 need bin/migrate-bundle (test 2 already failed without it).
SKIP:
{
	skip 'bin/migrate-bundle is missing from the repository copy', 1
	  unless -x $bundler;

	# ------------------------------------------------------------ 3. laptop path
	# bin/migrate-bundle DIR | psql -v ON_ERROR_STOP=1 --single-transaction,
	# as deployer (no pg_read_server_files any more): the same catalog rows as
	# migrate_load() of the same directory gave in part 1.
	for my $set (@set_names)
	{
		my $db = "laptop_$set";
		new_db($db, 'deployer');
		my ($rc, $out, $err) = run_psql(
			$db, undef,
			user               => 'deployer',
			single_transaction => 1,
			stdin              => [ $bundler, "$fixtures/$set" ]);
		is($rc, 0, "$set: bundle | psql --single-transaction succeeds")
		  or diag($err);
		is( query($db, $catalog_sql),
			$sets{$set}{catalog},
			"$set: registered exactly what migrate_load() registered");
		my $target = $sets{$set}{target} ? "'$sets{$set}{target}'" : 'NULL';
		my @order  = @{ $sets{$set}{order} };
		pop @order if $sets{$set}{target};
		is( query(
				$db,
				"SET client_min_messages = warning; SELECT string_agg(version, ',') FROM migrate_apply($target)",
				user => 'deployer'),
			join(',', @order),
			"$set: deployer applies the bundled migrations");
		is(query($db, $sets{$set}{effect}[0]), $sets{$set}{effect}[1],
			"$set: the bundled migrations did their work");

		# bin/migrate-bundle --status DIR | psql: each file as the catalog
		# sees it now (applied, or pending past the target), registering nothing
		my $history = query($db, 'SELECT count(*) FROM migrate.history');
		my ($src, $sout, $serr) = run_psql(
			$db, undef,
			user  => 'deployer',
			stdin => [ $bundler, '--status', "$fixtures/$set" ]);
		is($src, 0, "$set: bundle --status | psql succeeds") or diag($serr);
		my %states;
		$states{ (split /\|/, $_, -1)[3] // '' }++ for split /\n/, $sout;
		is(join(',', sort grep { !/^(applied|pending|skipped)$/ } keys %states),
			'', "$set: --status lists every file as applied, pending or skipped")
		  or diag($sout);
		ok($states{applied}, "$set: --status lists applied files");
		is(query($db, 'SELECT count(*) FROM migrate.history'),
			$history, "$set: --status registers nothing");
	}

	# --status of a directory against an empty catalog: every migration file
	# is "not registered"; --status and --apply exclude each other
	{
		my $set = $set_names[0];
		new_db('status_fresh', 'deployer');
		my ($src, $sout, $serr) = run_psql(
			'status_fresh', undef,
			user  => 'deployer',
			stdin => [ $bundler, '--status', "$fixtures/$set" ]);
		is($src, 0, "$set: bundle --status against an empty catalog succeeds") or diag($serr);
		my @states = map { (split /\|/, $_, -1)[3] } split /\n/, $sout;
		ok(@states > 0 && !grep({ !/^(not registered|skipped)$/ } @states),
			"$set: every file is not registered (or skipped)") or diag($sout);
		is(query('status_fresh', 'SELECT count(*) FROM migrate.migrations'), 0,
			'--status registered nothing');
		my ($out, $err);
		IPC::Run::run([ $bundler, '--status', '--apply', "$fixtures/$set" ], '>', \$out, '2>', \$err);
		is($? >> 8, 2, '--status with --apply is a usage error (exit 2)');
		like($err, qr/exclude each other/, '... which says so');
	}

	# Byte for byte: awkward file contents reach the catalog unchanged.  No file
	# has section markers or directives, so each one is stored whole as its up.
	my $awkward = "$tmp/awkward";
	mkdir $awkward or die "mkdir $awkward: $!";
	my %awkward_files = (
		'001_quotes.sql' =>
		  qq{-- O'Reilly's notes: a ' lone quote and a \\ backslash in a comment\n}
		  . qq{CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL);\n}
		  . qq{INSERT INTO notes VALUES (1, 'it''s'), (2, 'C:\\path\\to\\new'), (3, E'tab\\there\\\\'),\n}
		  . qq{    (4, '''quoted'''), (5, '\\\\server\\share\\');\n},
		'002_dollars.sql' =>
		  qq{CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS \$\$\n}
		  . qq{    SELECT upper(t) || '!' -- it's fine: a \$a\$ tag in here\n}
		  . qq{\$\$;\n}
		  . qq{CREATE FUNCTION price() RETURNS text LANGUAGE sql IMMUTABLE AS \$a\$\n}
		  . qq{    SELECT 'costs \$\$5 and \$b\$ tags, don''t panic \\\\'::text\n}
		  . qq{\$a\$;\n}
		  . qq{INSERT INTO notes VALUES (6, shout(\$\$it's \$b\$ and \\ here\$\$)), (7, price());\n},
		'003_crlf.sql' => join("\r\n",
			'-- Written on Windows: CRLF line ends',
			'CREATE TABLE crlf (id integer PRIMARY KEY);',
			q{INSERT INTO notes VALUES (8, 'line one},
			q{line two');},
			''),
		'004_bom.sql' => "\xEF\xBB\xBF"
		  . "-- Saved by an editor that writes a byte order mark\n"
		  . "CREATE TABLE bom (id integer PRIMARY KEY);\n",
		'005_emoji.sql' => "-- \xF0\x9F\x9A\x80 launch \xE2\x80\x94 caf\xC3\xA9\n"
		  . "INSERT INTO notes VALUES (9, 'party \xF0\x9F\x8E\x89 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xC3\xBC');\n",
		'006_no_final_newline.sql' => 'CREATE TABLE last_one (id integer)',
		'README.md'                => "# Migrations\n\nRun them with migrate.\n",
		'.gitkeep'                 => '',);
	write_file("$awkward/$_", $awkward_files{$_}) for keys %awkward_files;
	my @awkward_sql = sort grep { /\.sql$/ } keys %awkward_files;

	new_db('laptop_bytes', 'deployer');
	my ($rc, $out, $err) = run_psql(
		'laptop_bytes', undef,
		user               => 'deployer',
		single_transaction => 1,
		stdin              => [ $bundler, $awkward ]);
	is($rc, 0, 'awkward files: bundle | psql succeeds') or diag($err);
	like($out, qr/^\.gitkeep\|.*\|skipped\|/m,  '.gitkeep skipped');
	like($out, qr/^README\.md\|.*\|skipped\|/m, 'README.md skipped');
	is( query(
			'laptop_bytes', q{SELECT string_agg(version, ',' ORDER BY version) FROM migrate.migrations}),
		'001,002,003,004,005,006',
		'awkward files: every .sql file registered');
	for my $f (@awkward_sql)
	{
		my ($version) = $f =~ /^(\d+)_/;
		is( query(
				'laptop_bytes',
				"SELECT md5(convert_to(up, 'UTF8')) FROM migrate.migrations WHERE version = '$version'"),
			file_md5("$awkward/$f", 1),
			"$f: the registered up text is the file, byte for byte (less a leading BOM)");
		is( query(
				'laptop_bytes',
				"SELECT checksum FROM migrate.migrations WHERE version = '$version'"),
			query('laptop_bytes',
				"SELECT migrate_checksum(up) FROM migrate.migrations WHERE version = '$version'"),
			"$f: checksum is migrate_checksum() of the up text");
	}
	is( query(
			'laptop_bytes',
			q{SET client_min_messages = warning; SELECT count(*) FROM migrate_apply()},
			user => 'deployer'),
		'6',
		'awkward files: all applied');
	is( query(
			'laptop_bytes',
			q{SELECT md5(string_agg(id || '=' || body, E'\n' ORDER BY id)) FROM notes}),
		md5_hex(
			join("\n",
				q{1=it's},
				q{2=C:\path\to\new},
				"3=tab\there\\",
				q{4='quoted'},
				q{5=\\\\server\share\\},
				q{6=IT'S $B$ AND \ HERE!},
				q{7=costs $$5 and $b$ tags, don't panic \\\\},
				"8=line one\r\nline two",
				"9=party \xF0\x9F\x8E\x89 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xC3\xBC")),
		'awkward files: the strings arrived intact (quotes, backslashes, CRLF, UTF-8)');

	# ------------------------------------------------------------ 4. web editor
	# bin/migrate-bundle --apply DIR pasted into an SQL editor: the whole text is
	# ONE query string (psql -c), so one implicit transaction.
	sub bundle_text
	{
		my (@args) = @_;
		my ($text, $berr) = ('', '');
		IPC::Run::run([ $bundler, @args ], '>', \$text, '2>', \$berr)
		  or die "migrate-bundle @args failed: $berr";
		return $text;
	}

	my $web_sql = bundle_text('--apply', "$fixtures/numbered");
	like($web_sql, qr/SELECT \* FROM migrate_apply\(\);\n\z/,
		'--apply ends the bundle with migrate_apply()');
	new_db('web', 'deployer');
	($rc, $out, $err) =
	  run_psql('web', $web_sql, user => 'deployer', command => 1);
	is($rc, 0, 'web editor: the bundle as one query string succeeds') or diag($err);
	is( query(
			'web',
			q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
		'001:applied,002:applied,003:applied,004:applied,005:applied,024:applied',
		'web editor: everything registered and applied');
	is(query('web', $sets{numbered}{effect}[0]),
		$sets{numbered}{effect}[1], 'web editor: the migrations did their work');

	# A migration that fails while applying: the implicit transaction takes the
	# registration down with it.
	my $broken = "$tmp/broken";
	copy_dir("$fixtures/numbered", $broken);
	write_file("$broken/030_broken.sql",
		"INSERT INTO tools (id, name) VALUES (1, 'duplicate of tool 1');\n");
	new_db('web_broken', 'deployer');
	($rc, $out, $err) = run_psql('web_broken', bundle_text('--apply', $broken),
		user => 'deployer', command => 1);
	isnt($rc, 0, 'web editor, broken migration: the bundle fails');
	like($err, qr/ERROR:  23505: duplicate key value violates unique constraint "tools_pkey"/,
		'web editor, broken migration: the original error');
	like($err, qr/applying migration 030 "broken"/,
		'web editor, broken migration: the error names the migration');
	is( query(
			'web_broken',
			q{SELECT (SELECT count(*) FROM migrate.migrations) || '/' || (SELECT count(*) FROM migrate.history)
			      || '/' || (to_regclass('public.tools') IS NULL)}),
		'0/0/true',
		'web editor, broken migration: nothing registered, nothing applied');
}

# ------------------------------------------------------------ 5. Supabase
new_db('supa');
$node->safe_psql(
	'supa', q{
	CREATE SCHEMA supabase_migrations;
	CREATE TABLE supabase_migrations.schema_migrations (version text PRIMARY KEY, statements text[], name text);
});
my $supa_rows = q{
	SELECT version, name, cardinality(statements),
	       (SELECT bool_and(btrim(s, E' \n\t') <> '') FROM unnest(statements) s)
	  FROM supabase_migrations.schema_migrations
	 ORDER BY migrate_version_key(version) COLLATE "C"};
query('supa', "SELECT count(*) FROM migrate_load('$fixtures/supabase')");
is(query('supa', 'SELECT count(*) FROM supabase_migrations.schema_migrations'),
	'0', 'supabase: loading alone records nothing there');
query('supa', 'SET client_min_messages = warning; SELECT count(*) FROM migrate_apply()');
is( query('supa', $supa_rows),
	lines(
		'20240103000001|chat_schema|3|t', '20240103000002|chat_triggers|4|t',
		'20240215093000|message_status|2|t', '20251003|add_profiles|1|t',
		'20251003120000|profile_avatar|2|t', '20251108|seed_rooms|3|t',
		'20251108093000|room_stats_view|1|t'),
	'supabase: schema_migrations lists every applied migration with its name and statements');
is( query('supa',
		q{SELECT string_agg(version || '|' || name, ',' ORDER BY version) FROM supabase_migrations.schema_migrations}),
	query('supa',
		q{SELECT string_agg(version || '|' || name, ',' ORDER BY version) FROM migrate.applied}),
	'supabase: exactly the versions migrate.applied has');

# The fixture has no down scripts: give the last migration one (same up
# text, so only its metadata changes), then roll it back.
query(
	'supa', q{
	SELECT migrate_add(version, name, up, down => 'DROP VIEW public_room_stats')
	  FROM migrate.migrations WHERE version = '20251108093000'});
is( query(
		'supa',
		q{SET client_min_messages = warning; SELECT version || ' ' || action FROM migrate_rollback('20251108')}
	),
	'20251108093000 reverted',
	'supabase: the last migration rolled back');
is( query(
		'supa',
		q{SELECT string_agg(version, ',' ORDER BY migrate_version_key(version) COLLATE "C") FROM supabase_migrations.schema_migrations}
	),
	'20240103000001,20240103000002,20240215093000,20251003,20251003120000,20251108',
	'supabase: its row is gone from schema_migrations');
is(query('supa', q{SELECT to_regclass('public.public_room_stats') IS NULL}),
	't', 'supabase: its view is gone');

# A server file that is not text in the database encoding fails the whole
# load, naming the file; nothing is registered.
new_db('load_bad');
for my $case (
	[ 'nul',  '001_nul.sql',    "SELECT 1;\0\n",         qr/ERROR:  22021: file "001_nul\.sql" contains a zero byte/ ],
	[ 'utf8', '001_latin1.sql', "SELECT 'caf\xE9';\n",  qr/ERROR:  22021: file "001_latin1\.sql" is not valid UTF8/ ])
{
	my ($name, $file, $bytes, $re) = @$case;
	my $dir = "$tmp/bad_$name";
	mkdir $dir or die "mkdir $dir: $!";
	write_file("$dir/000_ok.sql", "CREATE TABLE ok_$name (id int);\n");
	write_file("$dir/$file", $bytes);
	fails_like('load_bad', "SELECT * FROM migrate_load('$dir')", $re,
		"a file with a $name problem fails migrate_load()");
}
is(query('load_bad', 'SELECT count(*) FROM migrate.migrations'),
	'0', 'nothing registered from those directories');

$node->stop;
done_testing();
