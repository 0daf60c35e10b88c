# Real-sized migration directories (test/fixtures/real/*, 55-63 migrations
# each, one per tool layout) give the same schema through migrate as through
# the tool's own way of running them: plain psql, one file after another.
#
# For each directory:
#  (a) reference: every migration file in the tool's order, each run with
#      psql -X -v ON_ERROR_STOP=1 -f as it is (files wrapped in BEGIN/COMMIT
#      included), non-migration files skipped;
#  (b) server load: migrate_load(DIR) + migrate_apply() as superuser;
#  (c) laptop: bin/migrate-bundle DIR | psql --single-transaction as a
#      non-superuser owning its database, then migrate_apply();
# then pg_dump --schema-only of (b) and (c) must equal that of (a), and so
# must the seeded rows.  Also: non-migration files are listed as 'skipped';
# migrate_status() has one row per migration file; non-transactional
# migrations (a lone CREATE INDEX CONCURRENTLY) are 'left pending' by
# migrate_apply() and applied by a job (migrate_start(), migrate_wait());
# files wrapped in BEGIN/COMMIT carry a note; migrate_verify() passes.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempfile);
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib "$FindBin::RealBin/lib";
use MigratePsql qw(spew);

# test/run.sh runs this file from a copy of the repository.
my $root    = abs_path("$FindBin::Bin/../..");
my $real    = "$root/test/fixtures/real";
my $bundler = "$root/bin/migrate-bundle";
ok(-d "$real/supabase", "fixtures found in $real");
my $have_bundler = -x $bundler;
ok($have_bundler, "bin/migrate-bundle found in the repository copy ($bundler)")
  or diag('test/run.sh must copy bin/ into its copy of the repository');

# Per directory: files that are not migrations (listed as 'skipped'), the
# migrations that cannot run in a transaction block, and how many files the
# tool wraps in BEGIN/COMMIT (a guard on the regex below).
my @sets = (
	{
		name    => 'supabase',
		skipped => [ '.gitkeep', 'README.md', 'seed.sql' ],
		nontx   => ['20240603120000'],
		wrapped => 5,
	},
	{
		name    => 'flyway',
		skipped => [ 'README.md', 'V57__readme.md' ],
		nontx   => [],
		wrapped => 0,
	},
	{
		name    => 'dbmate',
		skipped => [],
		nontx   => ['20200706090000'],
		wrapped => 0,
	},
	{
		name    => 'golang',
		skipped => [],
		nontx   => [],
		wrapped => 1,
	});

my $node = PostgreSQL::Test::Cluster->new('real_directories');
$node->init;
$node->start;
my $tmp = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres', 'CREATE ROLE app_owner LOGIN');

# psql as a user runs it, against $node (test/t/lib/MigratePsql.pm)
sub run_psql { return MigratePsql::run_psql($node, @_); }
sub query { return MigratePsql::query($node, @_); }

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or die "cannot read $path: $!";
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

# Flyway version groups, compared numerically; trailing zero groups do not
# count (1 = 1.0), and '_' separates like '.' (V2_1 = 2.1).
sub version_cmp
{
	my ($x, $y) = @_;
	my @x = split /[._]/, $x;
	my @y = split /[._]/, $y;
	pop @x while @x > 1 && $x[-1] == 0;
	pop @y while @y > 1 && $y[-1] == 0;
	for my $i (0 .. ($#x > $#y ? $#x : $#y))
	{
		return -1 if $i > $#x;
		return 1  if $i > $#y;
		my $c = $x[$i] <=> $y[$i];
		return $c if $c;
	}
	return 0;
}

# dbmate: the up sections of a file (several up/down pairs: ups in order).
sub dbmate_up
{
	my ($text) = @_;
	my @ups = $text =~ /^-- migrate:up[^\n]*\n(.*?)(?=^-- migrate:down)/msg;
	die "no -- migrate:up section" unless @ups;
	return join('', @ups);
}

# The migrations of a directory in the tool's own order: a list of
# { file, version, up } (up: the text psql runs).
sub tool_order
{
	my ($set) = @_;
	my $dir = "$real/$set";
	opendir(my $dh, $dir) or die "cannot open $dir: $!";
	my @files = grep { -f "$dir/$_" } readdir $dh;
	closedir $dh;
	my @m;
	for my $f (@files)
	{
		my $text = slurp("$dir/$f");
		if ($set eq 'supabase' && $f =~ /^(\d{8,14})_.+\.sql$/)
		{
			# by time: an 8-digit date is midnight of that day
			push @m, { file => $f, version => $1, up => $text,
				key => $1 . ('0' x (14 - length $1)) };
		}
		elsif ($set eq 'flyway' && $f =~ /^V(\d+(?:[._]\d+)*)__.+\.sql$/)
		{
			push @m, { file => $f, version => $1, up => $text, fly => 0 };
		}
		elsif ($set eq 'flyway' && $f =~ /^(R__.+)\.sql$/)
		{
			push @m, { file => $f, version => $1, up => $text, fly => 1 };
		}
		elsif ($set eq 'dbmate' && $f =~ /^(\d+)_.+\.sql$/)
		{
			push @m, { file => $f, version => $1, up => dbmate_up($text), key => $f };
		}
		elsif ($set eq 'golang' && $f =~ /^(\d+)_.+\.up\.sql$/)
		{
			push @m, { file => $f, version => $1, up => $text, key => $1 };
		}
	}
	if ($set eq 'flyway')
	{
		return sort {
			     $a->{fly} <=> $b->{fly}
			  || ($a->{fly} ? $a->{file} cmp $b->{file}
				  : version_cmp($a->{version}, $b->{version}))
		} @m;
	}
	return sort { $a->{key} <=> $b->{key} } @m if $set eq 'golang';
	return sort { $a->{key} cmp $b->{key} } @m;
}

# pg_dump of 15.14 and later writes \restrict KEY / \unrestrict KEY lines
# with a random key unless given one; older ones have no such option.
my ($dump_help, $dump_help_err) = ('', '');
IPC::Run::run([ 'pg_dump', '--help' ], '<', \undef, '>', \$dump_help, '2>', \$dump_help_err);
my @restrict_key = $dump_help =~ /--restrict-key/ ? ('--restrict-key=migrate') : ();

# Schema dump without the extension and its catalog schema.
sub schema_dump
{
	my ($db) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			'pg_dump', '--schema-only', '--no-owner', '--no-privileges',
			@restrict_key, '--exclude-schema=migrate',
			'-d', $node->connstr($db)
		],
		'<', \undef, '>', \$out, '2>', \$err)
	  or die "pg_dump $db failed: $err";
	$out =~ s/^\\(?:un)?restrict .*\n//mg;
	# drop the TOC entries of the extension itself (and its comment)
	my @chunks = split /(?=^--\n-- Name: )/m, $out;
	return join '', grep {
		!/\A--\n-- Name: (?:migrate; Type: EXTENSION|EXTENSION migrate; Type: COMMENT);/
	} @chunks;
}

# Count and digest of every table's rows (columns that do not depend on the
# clock or on random(): timestamps, dates and uuids are left out).
sub data_digest
{
	my ($db) = @_;
	my $sql = query(
		$db, q{
	SELECT string_agg(format(
	         'SELECT %L || '' '' || count(*) || '' '' || coalesce(md5(string_agg(r, E''\n'' ORDER BY r)), ''-'') FROM (SELECT ROW(%s)::text AS r FROM %s) s',
	         c.oid::regclass, cols, c.oid::regclass), E'\nUNION ALL\n' ORDER BY c.oid::regclass::text)
	FROM pg_class c
	CROSS JOIN LATERAL (
	    SELECT coalesce(string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), 'NULL') AS cols
	    FROM pg_attribute a
	    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	      AND a.atttypid NOT IN ('timestamp'::regtype, 'timestamptz'::regtype, 'date'::regtype, 'uuid'::regtype)
	) a
	WHERE c.relkind IN ('r', 'p')
	  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
	  AND c.relnamespace::regnamespace::text NOT IN ('migrate', 'pg_toast')});
	return query($db, "$sql ORDER BY 1");
}

sub same_text { return MigratePsql::same_text($tmp, @_); }

# Apply everything registered in $db, as migrate_apply() does for a user.
# A directory that adds an enum value in one migration and uses it in a
# later one cannot go through ONE migrate_apply() (one transaction): the
# value must be committed first (55P04).  The plan finds the use: one call
# applies up to it and leaves the rest pending with a WARNING that says how
# to go on, and the next call (after that commit) goes on.  Returns the
# versions the last call reported as 'left pending'.
sub apply_all
{
	my ($db, $label, $migrations, %o) = @_;
	my $sql =
	  q{SET client_min_messages = warning; SELECT version, action FROM migrate_apply();};
	my @enum_adds =
	  map { $_->{version} } grep { $_->{up} =~ /\bADD\s+VALUE\b/i } @$migrations;
	my ($out, $first_err, $calls, $stopped) = ('', undef, 0, 0);
	for (;;)
	{
		my ($rc, $o, $err) = run_psql($db, $sql, %o);
		$calls++;
		$first_err //= $err;
		if ($rc != 0)
		{
			fail("$label: migrate_apply() (call $calls)");
			diag($err);
			return undef;
		}
		$out = $o;
		last unless $err =~ /uses enum value/;
		$stopped++;
		if ($calls > 20)
		{
			fail("$label: migrate_apply() keeps stopping at an enum value");
			return undef;
		}
	}
	if (@enum_adds)
	{
		ok($stopped > 0,
			"$label: one migrate_apply() stops before a migration that uses an enum value an earlier one adds");
		like($first_err, qr/55P04/, "$label: ... its WARNING names PostgreSQL's 55P04");
		like($first_err, qr/CALL migrate_run\(\)/, "$label: ... and the hint names migrate_run()");
	}
	pass("$label: migrate_apply() ($calls calls)");
	my %pending;
	for (split /\n/, $out)
	{
		my ($v, $action) = split /\|/;
		$pending{$v} = 1 if defined $action && $action eq 'left pending';
	}
	return [ sort keys %pending ];
}

# Checks common to (b) and (c) after the apply; then runs the left-pending
# migrations by hand.
sub after_apply
{
	my ($db, $label, $s, $migrations, $left_pending, %o) = @_;
	my @nontx = sort @{ $s->{nontx} };
	is(join(',', @$left_pending), join(',', @nontx),
		"$label: left pending by migrate_apply(): the non-transactional ones");

	my $n = scalar @$migrations;
	is( query(
			$db, q{SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'applied')
			                 || ' ' || coalesce(string_agg(version, ',' ORDER BY version) FILTER (WHERE state <> 'applied'), '')
			          FROM migrate_status()}, %o),
		"$n " . ($n - @nontx) . ' ' . join(',', @nontx),
		"$label: migrate_status(): $n migrations, all applied but the non-transactional ones (pending)");

	# the notes of the files wrapped in BEGIN/COMMIT
	my @wrapped = map { $_->{version} }
	  grep { $_->{up} =~ /^\s*(?:BEGIN|START\s+TRANSACTION)\s*;/mi } @$migrations;
	is(scalar @wrapped, $s->{wrapped}, "$label: files wrapped in BEGIN/COMMIT found");
	if (@wrapped)
	{
		my $list = join(',', map { "'$_'" } @wrapped);
		# (every note is in the view migrate.status, read here as superuser)
		my ($rc, $out, $err) = run_psql(
			$db, qq{SELECT coalesce(string_agg(version, ',' ORDER BY version), '')
			          FROM migrate.status
			         WHERE version IN ($list)
			           AND array_to_string(notes, ' ') ~* '(begin|commit|transaction)'});
		is($out, join(',', sort @wrapped),
			"$label: files wrapped in BEGIN/COMMIT have a note in migrate.status.notes")
		  or diag($err);
	}

	# the left-pending migrations are applied by a job, as a user would:
	# migrate_start(), then CALL migrate_wait()
	if (@nontx)
	{
		my ($rc, $job, $err) = run_psql($db, 'SELECT migrate_start()', %o);
		is($rc, 0, "$label: migrate_start() queues a job for the non-transactional migrations")
		  or diag($err);
		($rc, my $out, $err) = run_psql($db, "CALL migrate_wait($job)", %o);
		is($rc, 0, "$label: CALL migrate_wait($job) ends without error") or diag($err);
		like($out, qr/^succeeded\|/, "$label: the job succeeded");
		is( query(
				$db, q{SELECT count(*) FILTER (WHERE state <> 'applied') FROM migrate_status()}, %o),
			'0', "$label: every migration is applied");
	}

	my ($rc, $out, $err) = run_psql($db, 'SELECT migrate_verify()', %o);
	ok($rc == 0 && $out =~ /^\d+$/, "$label: migrate_verify() passes ($out checks)")
	  or diag($err);
	return;
}

# ------------------------------------------------------------ the directories
for my $s (@sets)
{
	my $set = $s->{name};
	my $dir = "$real/$set";
	my @migrations = tool_order($set);

	# ---- (a) reference: plain psql, file by file
	my $ref = "ref_$set";
	$node->safe_psql('postgres', "CREATE DATABASE $ref");
	my $ref_ok = 1;
	for my $m (@migrations)
	{
		my $f = "$dir/$m->{file}";
		if ($set eq 'dbmate')
		{
			$f = "$tmp/$m->{file}";
			spew($f, $m->{up});
		}
		my ($rc, $out, $err) = run_psql($ref, undef, file => $f);
		if ($rc != 0)
		{
			$ref_ok = 0;
			diag("$set/$m->{file}: $err");
			last;
		}
	}
	ok($ref_ok, "$set: reference: " . scalar(@migrations) . ' files applied with psql in the tool\'s order');
	cmp_ok(scalar @migrations, '>=', 50, "$set: at least 50 migrations");
	my $ref_dump = schema_dump($ref);
	my $ref_data = data_digest($ref);

	my $skipped = join(',', sort @{ $s->{skipped} });

	# ---- (b) migrate_load() + migrate_apply(), superuser
	my $load = "load_$set";
	$node->safe_psql('postgres', "CREATE DATABASE $load");
	$node->safe_psql($load, 'CREATE EXTENSION migrate');
	my ($rc, $out, $err) = run_psql($load,
		"SELECT file || '|' || result FROM migrate_load('$dir') ORDER BY file COLLATE \"C\"");
	is($rc, 0, "$set: migrate_load()") or diag($err);
	my @rows = split /\n/, $out;
	is(join(',', sort map { (split /\|/)[0] } grep { /\|skipped$/ } @rows),
		$skipped, "$set: migrate_load() lists the non-migration files as skipped");
	if ($rc == 0)
	{
		my $pending = apply_all($load, "$set (load)", \@migrations);
		if ($pending)
		{
			after_apply($load, "$set (load)", $s, \@migrations, $pending);
			same_text("$set.load.schema", $ref_dump, schema_dump($load),
				"$set (load): schema dump equals the reference");
			same_text("$set.load.data", $ref_data, data_digest($load),
				"$set (load): table contents equal the reference");
		}
	}

	# ---- (c) bin/migrate-bundle | psql as a non-superuser, then migrate_apply()
  SKIP:
	{
		skip 'bin/migrate-bundle is missing from the repository copy', 1
		  unless $have_bundler;
		my $bun = "bundle_$set";
		$node->safe_psql('postgres', "CREATE DATABASE $bun OWNER app_owner");
		$node->safe_psql($bun, 'CREATE EXTENSION migrate');
		$node->safe_psql($bun,
			'GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO app_owner');
		($rc, $out, $err) = run_psql(
			$bun, undef,
			stdin              => [ $bundler, $dir ],
			user               => 'app_owner',
			single_transaction => 1);
		is($rc, 0, "$set (bundle): bin/migrate-bundle | psql as app_owner")
		  or diag($err);
		is(join(',', sort map { (split /\|/)[0] } grep { /\|skipped\|/ } split /\n/, $out),
			$skipped, "$set (bundle): the non-migration files are listed as skipped");
		last if $rc != 0;
		my $pending =
		  apply_all($bun, "$set (bundle)", \@migrations, user => 'app_owner');
		last unless $pending;
		after_apply($bun, "$set (bundle)", $s, \@migrations, $pending,
			user => 'app_owner');
		same_text("$set.bundle.schema", $ref_dump, schema_dump($bun),
			"$set (bundle): schema dump equals the reference");
		same_text("$set.bundle.data", $ref_data, data_digest($bun),
			"$set (bundle): table contents equal the reference");
	}
}

# A SET in a migration file ends with that file when psql runs it; in
# migrate_apply() it lasts for the rest of the caller's session.
# (20240402101500 sets statement_timeout; psql runs each file in its own
# session.)
{
	my $db = 'guc_scope';
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION migrate');
	my ($rc, $out, $err) = run_psql(
		$db, qq{SET client_min_messages = warning;
		       SELECT count(*) FROM migrate_load('$real/supabase');
		       SELECT count(*) FROM migrate_apply(target => '20240318121212');
		       SELECT count(*) FROM migrate_apply(target => '20240415143000');
		       SHOW statement_timeout;});
	is((split /\n/, $out)[-1] // '', '0',
		'statement_timeout set by migration 20240402101500 does not outlive it')
	  or diag($err);
}

$node->stop;
done_testing();
