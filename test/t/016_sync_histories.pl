# Switching tools without a flag day: while another tool's history table
# exists, what migrate applies, reverts, baselines, imports or repairs is
# recorded there as that tool would record it (migrate.sync_histories).
#
#  1. dbmate, with the real binary (test/deps.sh installs it into
#     test/.tools): dbmate applies part of test/fixtures/dbmate, migrate
#     adopts it, applies the next migration and reverts it; `dbmate status`
#     and `dbmate up` agree with migrate at every step, and nothing runs twice.
#     Skipped, with a message, when the binary is not there.
#  2. dbmate's table as dbmate creates it, without the binary: baseline,
#     revert, a version dbmate cannot express (WARNING), the setting off.
#  3. golang-migrate's one row: the newest applied version, clean; a version
#     a bigint cannot hold (WARNING), a dirty row left alone.
#  4. Flyway's rows: installed_rank, version ('2.1' for V2_1__x.sql),
#     description, type, script, checksum by Flyway's rule (checked against
#     an independent Perl implementation, on files with CRLF, a BOM and
#     trailing spaces), DELETE rows for reverts, a realigned checksum for a
#     repair; migrate_import_history('flyway') reads back what was written.
#  5. migrate_histories() says which tables are kept, and why not.
use strict;
use warnings;

use Cwd qw(abs_path);
use Encode qw(decode);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root     = abs_path("$FindBin::Bin/../..");
my $fixtures = "$root/test/fixtures";

my $node = PostgreSQL::Test::Cluster->new('sync_histories');
$node->init;
$node->start;

# SQL that must succeed: its output (rows as lines, columns |).
sub query
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql);
}

# SQL whose WARNINGs matter: (exit code, stdout, stderr), SQLSTATEs shown.
sub run_sql
{
	my ($db, $sql) = @_;
	my ($out, $err);
	my $rc = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1);
	return ($rc, $out, $err);
}

sub new_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION migrate');
}

# ------------------------------------------------------------ Flyway's rule
# CRC-32 (IEEE 802.3, reflected, as java.util.zip.CRC32), bit by bit: an
# implementation independent of zlib's and of the extension's.
sub crc32_bitwise
{
	my ($bytes) = @_;
	my $crc = 0xFFFFFFFF;
	for my $byte (unpack 'C*', $bytes)
	{
		$crc ^= $byte;
		for (1 .. 8)
		{
			$crc = ($crc & 1) ? (($crc >> 1) ^ 0xEDB88320) : ($crc >> 1);
		}
	}
	return $crc ^ 0xFFFFFFFF;
}

# Flyway's checksum of a file's bytes: the text read as UTF-8, split into
# lines as BufferedReader.readLine() does (\r\n, \r or \n end a line, and are
# not part of it), a BOM taken off the first line, each line's UTF-8 bytes
# fed to CRC32 in turn; the value as a Java int (signed 32 bits).
sub flyway_checksum
{
	my ($bytes) = @_;
	my $text = decode('UTF-8', $bytes);
	my @lines = split /\r\n|\r|\n/, $text, -1;
	pop @lines if @lines && $lines[-1] eq '';    # no line after the last ending
	$lines[0] =~ s/^\x{FEFF}// if @lines;
	my $crc = crc32_bitwise(join '', map { Encode::encode('UTF-8', $_) } @lines);
	return $crc >= 2**31 ? $crc - 2**32 : $crc;
}

# known values: CRC-32 of "123456789" is 0xCBF43926; a line ending adds nothing
is(crc32_bitwise('123456789'), 0xCBF43926, 'the Perl CRC-32 is the standard one');
is(flyway_checksum("123456789\r\n"), 0xCBF43926 - 2**32,
	"Flyway's rule: line endings drop out, the value is signed");
is(flyway_checksum("\xEF\xBB\xBF1234\r\n56789"), flyway_checksum("123456789"),
	"Flyway's rule: a BOM drops out");
isnt(flyway_checksum("123456789 "), flyway_checksum('123456789'),
	"Flyway's rule: trailing spaces count");

# ------------------------------------------------------------ 1. the real dbmate
my ($dbmate) = grep { -x $_ }
  (glob("$root/test/.tools/node_modules/\@dbmate/*/bin/dbmate"));
SKIP:
{
	skip 'the dbmate binary is not installed (test/deps.sh puts it in test/.tools with npm)', 12
	  unless $dbmate;

	new_db('dbm_real');
	my $dir = tempdir('dbmate-XXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0755, $dir;
	my @files = sort glob("$fixtures/dbmate/*.sql");
	# the first three, then the fourth: the fifth cannot run in a transaction
	copy($_, $dir) or die "copy $_: $!" for @files[ 0 .. 2 ];

	my $url = sprintf('postgres://%s@/dbm_real?host=%s&port=%d&sslmode=disable',
		scalar(getpwuid($<)), $node->host, $node->port);
	my $run_dbmate = sub {
		my ($out, $err) = ('', '');
		IPC::Run::run([ $dbmate, '--url', $url, '--migrations-dir', $dir, '--no-dump-schema', @_ ],
			'<', \undef, '>', \$out, '2>', \$err);
		return ($? >> 8, $out . $err);
	};

	my ($rc, $out) = $run_dbmate->('up');
	is($rc, 0, 'dbmate applied the first three migrations') or diag($out);

	copy($files[3], $dir) or die "copy $files[3]: $!";
	is( query(
			'dbm_real', "SELECT count(*) FROM migrate_load('$dir');
			             SELECT result FROM migrate_import_history('dbmate') ORDER BY version"),
		"4\nimported\nimported\nimported",
		'migrate adopts what dbmate applied');
	is(query('dbm_real', "SELECT string_agg(version, ',') FROM migrate_apply()"),
		'20160210080000', 'migrate applies the new migration');
	is(query('dbm_real', 'SELECT string_agg(version, \',\' ORDER BY version) FROM schema_migrations'),
		'20151129054053,20151129054512,20160103101500,20160210080000',
		"dbmate's table has its row");
	($rc, $out) = $run_dbmate->('status');
	like($out, qr/Applied: 4\s+Pending: 0/, 'dbmate status: all four applied, nothing pending')
	  or diag($out);
	($rc, $out) = $run_dbmate->('up');
	unlike($out, qr/Applying/, 'dbmate up runs nothing migrate applied') or diag($out);

	# revert the new one: dbmate then has it pending, and runs it once
	is( query('dbm_real', "SELECT string_agg(version, ',') FROM migrate_rollback('20160103101500')"),
		'20160210080000', 'migrate reverts it');
	($rc, $out) = $run_dbmate->('status');
	like($out, qr/\[ \] 20160210080000_post_counts\.sql.*Applied: 3\s+Pending: 1/s,
		'dbmate status: the reverted one is pending') or diag($out);
	($rc, $out) = $run_dbmate->('up');
	ok($rc == 0 && $out =~ /Applying: 20160210080000_post_counts\.sql/ && $out !~ /Applying: 2015/,
		'dbmate up runs only the reverted one') or diag($out);
	($rc, $out) = $run_dbmate->('status');
	like($out, qr/Applied: 4\s+Pending: 0/, 'dbmate status: nothing pending') or diag($out);

	# back in migrate: adopted, and nothing left to run on either side
	is( query(
			'dbm_real', "SELECT string_agg(version || ':' || result, ',') FROM migrate_import_history('dbmate')
			              WHERE result = 'imported';
			             SELECT count(*) FROM migrate_plan()"),
		"20160210080000:imported\n0", 'migrate adopts what dbmate ran; nothing pending');
	($rc, $out) = $run_dbmate->('up');
	unlike($out, qr/Applying/, 'dbmate up still runs nothing') or diag($out);
}

# ------------------------------------------------------------ 2. dbmate's table, shaped
new_db('dbm');
query('dbm', q{
	-- as dbmate creates it (pkg/driver/postgres/postgres.go, CreateMigrationsTable)
	CREATE TABLE IF NOT EXISTS public.schema_migrations (version varchar(128) PRIMARY KEY);
	SELECT count(*) FROM migrate_load('} . "$fixtures/dbmate" . q{');
});
is(query('dbm', "SELECT count(*) FROM migrate_apply(target => '20151129054053');
                 SELECT count(*) FROM migrate_baseline('20151129054512');
                 SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
	"1\n1\n20151129054053,20151129054512", 'an apply and a baseline are recorded for dbmate');
query('dbm', q{SELECT count(*) FROM migrate_apply(target => '20160103101500')});
is(query('dbm', "SELECT count(*) FROM schema_migrations"), '3', '... and the next apply');
query('dbm', q{SELECT count(*) FROM migrate_rollback('20151129054512')});
is(query('dbm', "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
	'20151129054053,20151129054512', 'a rollback is recorded for dbmate');
my ($rc, $out, $err) = run_sql('dbm',
	q{SELECT migrate_add('1.5', 'dotted', 'SELECT 1'); SELECT version FROM migrate_apply(target => '1.5', out_of_order => true)});
like($err, qr/WARNING:  01000: version "1\.5" cannot be recorded in dbmate's history/,
	'a version dbmate cannot express: WARNING naming it and the tool');
is(query('dbm', "SELECT count(*) FROM schema_migrations WHERE version = '1.5'"),
	'0', '... and nothing written');
query('dbm', q{SET migrate.sync_histories = off; SELECT count(*) FROM migrate_apply(target => '20160103101500')});
is(query('dbm', "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
	'20151129054053,20151129054512', 'migrate.sync_histories = off: nothing written');
is(query('dbm', "SET migrate.sync_histories = off; SELECT tool, \"table\", kept, reason FROM migrate_histories() WHERE tool = 'dbmate'"),
	'dbmate|public.schema_migrations|f|migrate.sync_histories is off', 'migrate_histories() says it is off');
is(query('dbm', "SELECT tool, coalesce(\"table\", '-'), kept, reason FROM migrate_histories()"),
	"supabase|-|f|no such table\nflyway|-|f|no such table\n"
	  . "dbmate|public.schema_migrations|t|kept in step\ngolang-migrate|-|f|no such table",
	'migrate_histories(): dbmate is kept in step');

# ------------------------------------------------------------ 3. golang-migrate
new_db('gol');
query('gol', q{
	-- as golang-migrate creates it (database/postgres/postgres.go, ensureVersionTable)
	CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
	SELECT count(*) FROM migrate_load('} . "$fixtures/golang" . q{');
});
my $golang = "SELECT coalesce(string_agg(version || ':' || dirty, ','), 'none') FROM schema_migrations";
query('gol', q{SELECT count(*) FROM migrate_apply(target => '2')});
is(query('gol', $golang), '2:false', 'golang-migrate: one row, the newest applied, clean');
query('gol', q{SELECT count(*) FROM migrate_apply()});
is(query('gol', $golang), '10:false', 'golang-migrate: 10 after applying all');
query('gol', q{SELECT count(*) FROM migrate_rollback('1')});
is(query('gol', $golang), '1:false', 'golang-migrate: the newest still applied after a rollback');
query('gol', q{SELECT count(*) FROM migrate_rollback('0')});
is(query('gol', $golang), 'none', 'golang-migrate: no row when none is applied');
query('gol', q{INSERT INTO schema_migrations VALUES (7, true)});
($rc, $out, $err) = run_sql('gol', q{SELECT count(*) FROM migrate_apply(target => '1')});
like($err, qr/WARNING:  01000: golang-migrate's history table public\.schema_migrations is dirty at version 7/,
	'golang-migrate: a dirty row is left alone, with a WARNING') or diag($err);
is(query('gol', $golang), '7:true', '... as it was');
query('gol', q{DELETE FROM schema_migrations});
($rc, $out, $err) = run_sql('gol',
	q{SELECT migrate_add('2.5', 'dotted', 'SELECT 1'); SELECT count(*) FROM migrate_apply(target => '2.5')});
like($err, qr/WARNING:  01000: version "2\.5" cannot be recorded in golang-migrate's history/,
	'golang-migrate: a dotted version is reported') or diag($err);
is(query('gol', $golang), '2:false', '... and not written: golang-migrate stays at 2');

# ------------------------------------------------------------ 4. Flyway
new_db('fly');
my $fdir = tempdir('flyway-XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $fdir;
copy($_, $fdir) or die "copy $_: $!" for glob("$fixtures/flyway/*.sql");
my %extra = (
	'V3__crlf_lines.sql'     => "CREATE TABLE crlf (id int);\r\nCOMMENT ON TABLE crlf IS 'x';\r\n",
	'U3__crlf_lines.sql'     => "DROP TABLE crlf;\r\n",
	'V4__with_bom.sql'       => "\xEF\xBB\xBFCREATE TABLE bom (id int);\n-- \xC3\xA9t\xC3\xA9\n",
	'U4__with_bom.sql'       => "DROP TABLE bom;\n",
	'V5__trailing_space.sql' => "CREATE TABLE trail_sp (id int);   \n\t\n\nSELECT 1;  ",
	'U5__trailing_space.sql' => "DROP TABLE trail_sp;\n");
for my $f (keys %extra)
{
	open my $fh, '>:raw', "$fdir/$f" or die "$f: $!";
	print $fh $extra{$f};
	close $fh;
}
query('fly', q{
	-- as Flyway creates it (flyway-database-postgresql, createMetaDataTable.sql)
	CREATE TABLE "public"."flyway_schema_history" (
	    "installed_rank" INT NOT NULL,
	    "version" VARCHAR(50),
	    "description" VARCHAR(200) NOT NULL,
	    "type" VARCHAR(20) NOT NULL,
	    "script" VARCHAR(1000) NOT NULL,
	    "checksum" INTEGER,
	    "installed_by" VARCHAR(100) NOT NULL,
	    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
	    "execution_time" INTEGER NOT NULL,
	    "success" BOOLEAN NOT NULL
	);
	ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
	CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
	INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum,
	                                   installed_by, execution_time, success)
	VALUES (1, NULL, '<< Flyway Schema Creation >>', 'SCHEMA', '"public"', NULL, 'postgres', 0, true);
});
query('fly', "SELECT count(*) FROM migrate_load('$fdir'); SELECT count(*) FROM migrate_apply()");

sub file_bytes
{
	my ($f) = @_;
	open my $fh, '<:raw', "$fdir/$f" or die "$f: $!";
	local $/;
	return scalar <$fh>;
}
my $user = query('fly', 'SELECT current_user');
my $rows = query('fly', q{SELECT installed_rank, coalesce(version, '-'), description, type, script, checksum,
                                  installed_by, installed_on <= now()::timestamp, execution_time >= 0, success
                             FROM flyway_schema_history ORDER BY installed_rank});
my @expected = ("1|-|<< Flyway Schema Creation >>|SCHEMA|\"public\"||postgres|t|t|t");
my $rank = 2;
for my $m ([ '1', 'create tables', 'V1__create_tables.sql' ], [ '1.1', 'add email', 'V1.1__add_email.sql' ],
	[ '2', 'seed', 'V2__seed.sql' ], [ '2.1', 'add index', 'V2_1__add_index.sql' ],
	[ '3', 'crlf lines', 'V3__crlf_lines.sql' ], [ '4', 'with bom', 'V4__with_bom.sql' ],
	[ '5', 'trailing space', 'V5__trailing_space.sql' ], [ '-', 'functions', 'R__functions.sql' ],
	[ '-', 'refresh views', 'R__refresh_views.sql' ])
{
	push @expected, join '|', $rank++, $m->[0], $m->[1], 'SQL', $m->[2],
	  flyway_checksum(file_bytes($m->[2])), $user, 't', 't', 't';
}
is($rows, join("\n", @expected), "Flyway's rows, as Flyway writes them (checksums by Flyway's rule)");

# revert 5, 4, 3: DELETE rows, which Flyway (and migrate_import_history) read as not applied
query('fly', q{SELECT count(*) FROM migrate_rollback('2.1')});
is( query('fly', q{SELECT string_agg(installed_rank || ':' || version || ':' || type || ':' || checksum, ',' ORDER BY installed_rank)
                     FROM flyway_schema_history WHERE installed_rank > 10}),
	join(',', map { sprintf('%d:%d:DELETE:%d', 16 - $_, $_, flyway_checksum(file_bytes($_ == 5 ? 'V5__trailing_space.sql' : $_ == 4 ? 'V4__with_bom.sql' : 'V3__crlf_lines.sql'))) } 5, 4, 3),
	'a revert appends a DELETE row of the version');
query('fly', q{SELECT count(*) FROM migrate_apply(target => '3')});
is(query('fly', q{SELECT version || ':' || type FROM flyway_schema_history ORDER BY installed_rank DESC LIMIT 1}),
	'3:SQL', 'applied again: a new SQL row');

# repair: Flyway's latest row of the version takes the accepted text's checksum
# (the edited file registered, recorded as changed, then accepted)
query('fly', q{SET client_min_messages = error;
               SELECT count(*) FROM migrate_add_script('V2__seed.sql', E'INSERT INTO customers VALUES (1, \'a\');\n');
               SELECT count(*) FROM migrate_repair('2')});
is( query('fly', q{SELECT checksum FROM flyway_schema_history WHERE version = '2'}),
	flyway_checksum("INSERT INTO customers VALUES (1, 'a');\n"),
	'a repair realigns the checksum');

# what was written reads back: a fresh catalog adopts exactly what is applied
my $applied = query('fly', q{SELECT string_agg(version, ',' ORDER BY version_key) FROM migrate.applied});
query('fly', "DROP EXTENSION migrate; CREATE EXTENSION migrate; SELECT count(*) FROM migrate_load('$fdir')");
is( query('fly', q{SELECT count(*) FROM migrate_import_history('flyway') WHERE result = 'imported';
                   SELECT string_agg(version, ',' ORDER BY version_key) FROM migrate.applied}),
	"7\n$applied", 'migrate_import_history(flyway) reads back what was written');

# a version Flyway cannot express
($rc, $out, $err) = run_sql('fly',
	q{SELECT migrate_add('2025-01-01_1', 'dashed', 'SELECT 1'); SELECT count(*) FROM migrate_apply(target => '2025-01-01_1')});
like($err, qr/WARNING:  01000: version "2025-01-01_1" cannot be recorded in Flyway's history/,
	'Flyway: a dashed version is reported') or diag($err);

$node->stop;
done_testing();
