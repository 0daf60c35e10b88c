# Fuzzing registration: thousands of generated scripts, file names, section
# markers and arguments go through migrate_add, migrate_add_script,
# migrate_add_scripts and migrate_load, and a subset through migrate_plan,
# migrate_apply (dry run and real), migrate_rollback, migrate_validate,
# migrate_status and migrate_check.  The server must never crash, and every
# error must carry a SQLSTATE other than XX000 (internal error) and name no
# internal (SPI_ERROR..., "cache lookup failed", ...).
#
# The generators are seeded and deterministic for a seed; the seed is printed.
#
#   MIGRATE_FUZZ_SEED=N     replay a run (default: derived from time and pid)
#   MIGRATE_FUZZ_CASES=N    cases per run (default 8000: about 25 s on 2 cores)
#
# Two databases:
#   fuzz     accumulates: every case registers for good (one transaction per
#            batch of cases, each call in its own subtransaction); after each
#            batch, plan / dry-run apply / validate / status / check run over
#            everything registered so far.
#   fuzzone  one case at a time against an empty catalog: register, plan,
#            dry run, apply, rollback, validate, status, check, then all of it
#            is rolled back (so the next case starts empty again).  Directory
#            cases (migrate_load of files written to disk) run here.
#
# What could be sent, and what could not: scripts and file names travel as
# bytea and are turned into text by convert_from(..., 'UTF8') on the server,
# so every valid UTF-8 character (controls, BOMs, CR, astral planes, U+FFFF)
# reaches migrate's C code.  Invalid UTF-8 cannot reach it through a text
# argument: PostgreSQL validates text input (convert_from, client encoding
# conversion, E'\xff' literals) before any function sees it, with 22021;
# those attempts are counted as "not sendable".  migrate_load() is the one way
# bytes reach migrate unvalidated: the file contents (checked by migrate,
# 22021) and the file names (22021 too).  NUL bytes
# cannot be in a text at all; they are sent only inside files to migrate_load.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path qw(make_path);
use JSON::PP;
use Time::HiRes qw(time);

my $seed = $ENV{MIGRATE_FUZZ_SEED} // ((int(time() * 1000) ^ ($$ << 12)) & 0x7fffffff);
my $ncases = $ENV{MIGRATE_FUZZ_CASES} // 8000;
die "MIGRATE_FUZZ_SEED must be a number" unless $seed =~ /^\d+$/;
die "MIGRATE_FUZZ_CASES must be a number" unless $ncases =~ /^\d+$/;
diag("fuzz seed $seed, $ncases cases (replay: MIGRATE_FUZZ_SEED=$seed MIGRATE_FUZZ_CASES=$ncases)");
srand($seed);

# ------------------------------------------------------------ random helpers
sub rint { my ($lo, $hi) = @_; return $lo + int(rand($hi - $lo + 1)); }
sub pick { return $_[ int(rand(@_)) ]; }
sub chance { return rand() < $_[0]; }

# Weighted choice: pick_w([w, value], ...); a CODE value is called.
sub pick_w
{
	my $total = 0;
	$total += $_->[0] for @_;
	my $r = rand($total);
	for (@_)
	{
		$r -= $_->[0];
		next if $r >= 0;
		return ref($_->[1]) eq 'CODE' ? $_->[1]->() : $_->[1];
	}
	my $last = $_[-1][1];
	return ref($last) eq 'CODE' ? $last->() : $last;
}

# A random valid UTF-8 character (as bytes): controls (never NUL), ASCII,
# Latin-1, BMP (incl. U+FEFF, U+FFFF, U+2028), astral.
sub rchar
{
	my $cp = pick_w(
		[ 30, sub { rint(0x20, 0x7e) } ],
		[ 6,  sub { pick(0x01 .. 0x1f, 0x7f) } ],
		[ 4,  sub { rint(0x80, 0x7ff) } ],
		[ 4,  sub { my $c; do { $c = rint(0x800, 0xffff) } while ($c >= 0xd800 && $c <= 0xdfff); $c } ],
		[ 2,  sub { pick(0xfeff, 0xffff, 0xfffe, 0x2028, 0x200b, 0x202e) } ],
		[ 2,  sub { rint(0x10000, 0x10ffff) } ]);
	my $s = chr($cp);
	utf8::encode($s);
	return $s;
}
sub rtext { my $n = shift; return join('', map { rchar() } 1 .. $n); }

# Bytes that are not valid UTF-8 (never NUL).
sub bad_utf8
{
	return pick("\xff", "\xfe", "\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xc0\xaf", "\x80", "caf\xe9", "\xf0\x9f\x98");
}

# NUL-free binary noise.
sub noise { my $n = shift; return join('', map { chr(rint(1, 255)) } 1 .. $n); }

# ------------------------------------------------------------ generators
my @tables = map { "fz_$_" } 1 .. 10;

sub tbl
{
	return pick_w(
		[ 20, sub { pick(@tables) } ],
		[ 2,  sub { '"fz ""q"";' . rint(1, 3) . '"' } ],
		[ 1,  sub { 'U&"fz\0061' . rint(1, 3) . '"' } ],
		[ 1,  sub { "\"fz \xc3\xbc" . rint(1, 3) . '"' } ],
		[ 1,  sub { 'public.' . pick(@tables) } ]);
}

sub str_lit
{
	return pick_w(
		[ 4, sub { "'a;b'" } ],
		[ 2, sub { "'it''s; -- migrate:down'" } ],
		[ 2, sub { "E'x\\n-- migrate:up\\n;\\'y'" } ],
		[ 2, sub { "E'\\x41\\101\\u00e9\\U0001F600\\t'" } ],
		[ 1, sub { "U&'d\\0061t\\+000061;'" } ],
		[ 1, sub { "U&'d!0061t' UESCAPE '!'" } ],
		[ 1, sub { "\$\$dollar ; '\$\$" } ],
		[ 1, sub { "\$q\$ -- migrate:verify\n; \$\$ \$q\$" } ],
		[ 2, sub { my $t = rtext(rint(1, 20)); $t =~ s/'/''/g; "'$t'" } ],
		[ 1, sub { "'/* not a comment */'" } ]);
}

sub comment
{
	return pick_w(
		[ 3, "-- plain comment; with semicolon\n" ],
		[ 2, "/* block ; comment */" ],
		[ 2, "/* outer /* nested ; */ still outer -- migrate:down */" ],
		[ 1, "/* multi\nline\n-- migrate:up\n*/" ],
		[ 1, sub { "-- " . rtext(rint(1, 30)) . "\n" } ],
		[ 1, "--\n" ],
		[ 1, "-- migrate:up inside? no, a real marker only at line start\n" ]);
}

# Hostile statements (refused, unterminated, garbage) are left out of clean scripts.
our $CLEAN = 0;

sub statement
{
	my $h = $CLEAN ? 0 : 1;
	my $t = tbl();
	my $k = rint(1, 50);
	return pick_w(
		# DDL
		[ 8, "CREATE TABLE IF NOT EXISTS $t (id int PRIMARY KEY, v text DEFAULT 'a;b', n int CHECK (n >= 0))" ],
		[ 3, "ALTER TABLE IF EXISTS $t ADD COLUMN IF NOT EXISTS c$k int" ],
		[ 2, "CREATE INDEX IF NOT EXISTS fz_i$k ON $t (id)" ],
		[ 2, "CREATE INDEX CONCURRENTLY IF NOT EXISTS fz_ic$k ON $t (id)" ],
		[ 2, "DROP TABLE IF EXISTS $t CASCADE" ],
		[ 2, "CREATE OR REPLACE VIEW fz_v$k AS SELECT 1 AS one, " . str_lit() . " AS s" ],
		[ 1, "CREATE TABLE IF NOT EXISTS fz_p (id int) PARTITION BY RANGE (id)" ],
		[ 1, "CREATE TABLE IF NOT EXISTS fz_p1 PARTITION OF fz_p FOR VALUES FROM (0) TO (100)" ],
		[ 1, "ALTER TABLE fz_p DETACH PARTITION fz_p1 CONCURRENTLY" ],
		[ 1, "ALTER TABLE IF EXISTS $t ADD CONSTRAINT fz_fk$k FOREIGN KEY (n) REFERENCES $t (id) NOT VALID" ],
		[ 1, "CREATE TYPE fz_e$k AS ENUM ('a', 'b')" ],
		[ 1, "ALTER TYPE fz_e$k ADD VALUE IF NOT EXISTS 'c'" ],
		[ 1, "SELECT 'c'::fz_e$k" ],
		[ 1, "CREATE SCHEMA IF NOT EXISTS fz_s$k" ],
		[ 1, "COMMENT ON TABLE $t IS " . str_lit() ],
		[ 1, "CREATE TABLE fz_ctas$k AS SELECT 1 AS a" ],
		[ 1, "SELECT 1 AS a INTO fz_into$k" ],
		[ 1, "TRUNCATE $t" ],
		# DML
		[ 6, "INSERT INTO $t (id, v) SELECT g, md5(g::text) FROM generate_series(1, $k) g ON CONFLICT DO NOTHING" ],
		[ 3, "UPDATE $t SET v = " . str_lit() . " WHERE id < $k" ],
		[ 2, "DELETE FROM $t WHERE id % 2 = 0" ],
		[ 1, "WITH d AS (DELETE FROM $t WHERE id > $k RETURNING *) SELECT count(*) FROM d" ],
		[ 1, "MERGE INTO $t t USING (SELECT $k AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)" ],
		[ 1, "EXPLAIN (ANALYZE, COSTS OFF) INSERT INTO $t (id) VALUES ($k + 1000)" ],
		[ 1, "LOCK TABLE $t IN ACCESS EXCLUSIVE MODE" ],
		# bodies
		[ 3, "DO \$\$ BEGIN PERFORM 1; RAISE NOTICE 'semi;colon -- migrate:down'; END \$\$" ],
		[ 2, "DO \$body\$ DECLARE x text := \$\$inner; \$\$; BEGIN IF x IS NULL THEN RAISE EXCEPTION 'x'; END IF; END \$body\$" ],
		[ 1, "DO LANGUAGE plpgsql \$x\$ BEGIN EXECUTE 'CREATE TABLE IF NOT EXISTS fz_dyn (a int)'; END \$x\$" ],
		[ 3, "CREATE OR REPLACE FUNCTION fz_f$k() RETURNS int LANGUAGE plpgsql AS \$fn\$ BEGIN RETURN $k; /* ; */ END \$fn\$" ],
		[ 2, "CREATE OR REPLACE FUNCTION fz_g$k(a int) RETURNS int LANGUAGE sql AS \$\$ SELECT a + $k; \$\$" ],
		[ 1, "CREATE OR REPLACE PROCEDURE fz_pr() LANGUAGE plpgsql AS \$\$ BEGIN COMMIT; END \$\$" ],
		[ 1, "CALL fz_pr()" ],
		# strings, identifiers, comments
		[ 3, "SELECT " . str_lit() . " AS \"we\"\"ird;col\"" ],
		[ 2, "SELECT 1 " . comment() . " + 2" ],
		[ 2, "CREATE TABLE IF NOT EXISTS \"fz \"\"q\"\";x\" (a int)" ],
		[ 1, "SELECT U&\"d\\0061t\" FROM (SELECT 1 AS dat) s" ],
		# transaction control
		[ 1, "BEGIN" ], [ 1, "COMMIT" ], [ 1, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE" ],
		[ 1, "END" ], [ 1, "begin" ], [ $h, "ROLLBACK" ], [ $h, "SAVEPOINT s$k" ],
		[ $h, "RELEASE SAVEPOINT s$k" ], [ $h, "ROLLBACK TO SAVEPOINT s$k" ],
		[ $h, "PREPARE TRANSACTION 'fz$k'" ], [ $h, "COMMIT PREPARED 'fz$k'" ],
		[ $h, "ROLLBACK PREPARED 'fz$k'" ], [ 1, "COMMIT AND CHAIN" ], [ $h, "ABORT" ],
		# COPY, psql meta-commands
		[ $h, "COPY $t (id) FROM STDIN;\n1\n2\n\\." ],
		[ $h, "COPY (SELECT 1) TO STDOUT" ],
		[ $h, "\\i other.sql" ],
		[ $h, "\\set x 1\nSELECT :'x'" ],
		[ $h, "\\echo hello" ],
		# settings
		[ 2, "SET search_path = fz_s1, public" ],
		[ 1, "RESET ALL" ],
		[ 1, "SET LOCAL lock_timeout = '5s'" ],
		[ 1, "SET session_replication_role = replica" ],
		# things that cannot run in a transaction
		[ 1, "VACUUM $t" ],
		[ 1, "REINDEX SCHEMA public" ],
		[ 1, "CREATE DATABASE fz_db$k" ],
		[ 1, "DISCARD ALL" ],
		[ 1, "ALTER SYSTEM SET work_mem = '8MB'" ],
		# cursors, prepared statements, notifications
		[ 1, "DECLARE fz_c CURSOR FOR SELECT 1" ],
		[ 1, "PREPARE fz_s$k AS SELECT \$1::int" ],
		[ 1, "NOTIFY fz, 'x;y'" ],
		# garbage and extremes
		[ 2 * $h, sub { join(' ', map { pick('SELECT', 'FROM', '(', ')', ',', '1', "'", '"', '$$', '$a$', '/*', '*/', '--', 'E', "U&'", ';', 'TABLE', 'x') } 1 .. rint(1, 12)) } ],
		[ $h, sub { rtext(rint(1, 80)) } ],
		[ 1, sub { "SELECT '" . ('x' x rint(1000, 100000)) . "'" } ],
		[ 1, sub { "SELECT " . join('+', (1) x rint(100, 3000)) } ],
		[ $h, sub { my $n = rint(10, 3000); "SELECT " . ('(' x $n) . '1' . (')' x $n) } ],
		[ $h, "SELECT 'unterminated" ],
		[ $h, "SELECT \"unterminated" ],
		[ $h, "SELECT /* unterminated" ],
		[ $h, "DO \$\$ BEGIN unterminated" ],
		[ $h, "SELECT \$tag\$ unterminated \$ta\$" ],
		[ $h, "SELECT E'\\" ],
		[ $h, "SELECT U&'\\D800'" ],
		[ $h, "" ]);
}

# Section marker and directive lines.
my @versions_pool;

sub some_version
{
	return @versions_pool && chance(0.7) ? pick(@versions_pool) : version();
}

sub marker
{
	my $h = $CLEAN ? 0 : 1;
	my $pre = pick('', '', '', ' ', "\t");
	my $dash = pick('-- ', '-- ', '--', "--\t");
	return $pre . $dash . pick_w(
		[ 6, 'migrate:up' ],
		[ 5, 'migrate:down' ],
		[ 3, 'migrate:verify' ],
		[ 2, 'migrate:up transaction:false' ],
		[ 1, 'migrate:down transaction:false' ],
		[ 1, 'migrate:up transaction:true' ],
		[ $h, 'migrate:up transaction:maybe' ],
		[ 2, sub { 'migrate:requires ' . join(pick(', ', ' ', ',', "\t"), map { some_version() } 1 .. rint(1, 3)) } ],
		[ $h, 'migrate:requires' ],
		[ $h, 'migrate:requires R__x' ],
		[ 3, sub { 'migrate:expect ' . expect_json() } ],
		[ $h, 'migrate:expect {bad json' ],
		[ $h, 'migrate:expect [1, 2]' ],
		[ $h, 'migrate:expect "fz_1"' ],
		[ $h, 'migrate:expect' ],
		[ $h, 'migrate:expect {"fz_1": 1} trailing' ],
		[ $h, 'migrate:bogus' ],
		[ $h, 'migrate:' ],
		[ $h, 'migrate:UP' ]);
}

sub expect_value
{
	return pick_w(
		[ 4, sub { rint(0, 60) } ],
		[ 2, sub { '"+' . rint(0, 9) . '"' } ],
		[ 2, sub { '"-' . rint(0, 9) . '"' } ],
		[ 3, '"="' ],
		[ 1, '"abc"' ], [ 1, '-1' ], [ 1, '1.5' ], [ 1, '1e100' ], [ 1, 'null' ],
		[ 1, 'true' ], [ 1, '[1]' ], [ 1, '{"a": 1}' ], [ 1, '"+99999999999999999999999"' ],
		[ 1, '99999999999999999999' ], [ 1, '""' ], [ 1, '"+"' ], [ 1, '" 5"' ]);
}

sub expect_json
{
	my $n = rint(0, 3);
	my @kv = map {
		my $name = pick_w(
			[ 6, sub { pick(@tables) } ],
			[ 1, '"fz \"q\""' ],
			[ 1, 'public.fz_1' ], [ 1, 'a.b.c.d' ], [ 1, '' ], [ 1, 'pg_class' ],
			[ 1, 'migrate.migrations' ], [ 1, 'fz_i1' ], [ 1, 'fz_v1' ], [ 1, '"' ],
			[ 1, sub { my $t = rtext(rint(1, 8)); $t =~ s/[\x00-\x1f"\\]//g; $t } ]);
		my $j = JSON::PP->new->allow_nonref->encode($name);
		"$j: " . expect_value();
	} 1 .. $n;
	return '{' . join(', ', @kv) . '}';
}

sub newline { return pick_w([ 10, "\n" ], [ 2, "\r\n" ], [ 1, "\r" ]); }

# A whole script: statements, separators, comments, markers, extremes.
sub script
{
	my (%o) = @_;
	local $CLEAN = chance(0.6);
	return pick_w(
		[ 2, '' ],
		[ 2, sub { pick(' ', "\n\n", "\t\r\n", "\xef\xbb\xbf") } ],
		[ 2, sub { join('', map { comment() } 1 .. rint(1, 4)) } ],
		[ 1, sub { noise(rint(1, 200)) } ],    # usually invalid UTF-8
		[ 2, sub { rtext(rint(1, 200)) } ],
		[ 1, sub { "SELECT 1;" . bad_utf8() . "\n" } ],
		[ 90, sub {
			my $s = chance(0.15) ? "\xef\xbb\xbf" : '';
			my $nl = newline();
			my $n = rint(1, 6);
			for my $i (1 .. $n)
			{
				$s .= marker() . $nl if $o{markers} && chance(0.3);
				$s .= comment() if chance(0.15);
				$s .= statement();
				$s .= pick_w([ 10, ';' ], [ 1, '' ], [ 1, ';;' ], [ 1, ' ;' ]);
				$s .= chance(0.9) ? $nl : ' ';
			}
			$s .= marker() if $o{markers} && chance(0.1);    # at the very end, no newline
			$s;
		} ]);
}

sub version
{
	return pick_w(
		[ 10, sub { sprintf('%03d', rint(0, 300)) } ],
		[ 6,  sub { rint(1, 300) } ],
		[ 4,  sub { join(pick('.', '_', '-'), map { rint(0, 20) } 1 .. rint(2, 4)) } ],
		[ 4,  sub { sprintf('2024%02d%02d%02d%02d%02d', rint(1, 12), rint(1, 28), rint(0, 23), rint(0, 59), rint(0, 59)) } ],
		[ 2,  sub { sprintf('2025%02d%02d', rint(1, 12), rint(1, 28)) } ],
		[ 2,  sub { sprintf('2025-%02d-%02d_%02d', rint(1, 12), rint(1, 28), rint(0, 23)) } ],
		[ 1,  sub { '9' x rint(15, 120) } ],
		[ 1,  sub { '0' x rint(1, 120) } ],
		[ 1,  sub { '0' . ('.0' x rint(0, 3)) } ],
		[ 1,  sub { pick('', ' ', '1..2', '1.', '.1', 'v1', '1a', '1 2', "1\n", '-1', '+1', '1e3', "\xd9\xa1", "\xef\xbc\x91", 'R__', 'R__x', 'R__ ', 'r__x', '99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999') } ]);
}

sub name
{
	return pick_w(
		[ 10, sub { pick('init', 'add_users', 'seed', 'x', 'tools') . rint(1, 99) } ],
		[ 1,  sub { rtext(rint(1, 30)) } ],
		[ 1,  sub { pick('', ' ', 'a b', '..', '../etc', 'a/b', "new\nline", 'x' x 300) } ]);
}

# A file name in one of the layouts, or garbage.
sub file_name
{
	my $v = version();
	my $n = name();
	$n =~ s{/}{_}g if chance(0.8);
	return pick_w(
		[ 5, "V${v}__$n.sql" ],
		[ 2, "R__$n.sql" ],
		[ 2, "U${v}__$n.sql" ],
		[ 6, "${v}_$n.sql" ],
		[ 2, "${v}_$n.up.sql" ],
		[ 2, "${v}_$n.down.sql" ],
		[ 3, sub { sprintf('2024%02d%02d%06d_%s.sql', rint(1, 12), rint(1, 28), rint(0, 235959), $n) } ],
		[ 2, sub { sprintf('2025-%02d-%02d_%02d_%s.sql', rint(1, 12), rint(1, 28), rint(0, 23), $n) } ],
		[ 1, sub { pick('README.md', '.gitkeep', 'schema.sql', 'seed.sql', 'V57__readme.md', '.sql', 'R__.sql', 'V1__.sql', 'V__x.sql', 'V1.sql', '001.sql', '001_.sql', '001_x.up', '.up.sql', '1.up.sql', '001_x.sql.sql', '001__x.sql', 'V1_1__x.sql', 'U1__x.sql') } ],
		[ 1, sub { ('9' x rint(20, 150)) . "_$n.sql" } ],
		[ 1, sub { pick('dir/001_x.sql', '../001_x.sql', '/abs/path/002_y.sql', '001_x.sql/', 'a/b/', ' 001_x.sql', '001_x.sql ', '001 x.sql', "001_\xc3\xa9t\xc3\xa9.sql", "001_\xe2\x80\xae.sql", '001_x.SQL', "001_x\n.sql") } ]);
}

# ------------------------------------------------------------ cases
# A case: { fn => add|script|scripts|misc|load, args..., deep => bool }
sub gen_case
{
	my $deep = chance(0.15);
	my $fn = pick_w([ 10, 'add' ], [ 8, 'script' ], [ 3, 'scripts' ], [ 1, 'misc' ]);
	my %c = (fn => $fn, deep => $deep);
	if ($fn eq 'add')
	{
		my $v = version();
		$v = 'R__' . name() if chance(0.05);
		push @versions_pool, $v if chance(0.5) && length($v) < 20;
		%c = (
			%c,
			a1 => $v,
			a2 => chance(0.97) ? name() : undef,
			a3 => chance(0.98) ? script() : undef,
			a4 => chance(0.3) ? script() : undef,    # down
			a5 => chance(0.3) ? pick_w([ 4, 'SELECT true' ], [ 1, "SELECT 'ok 1'" ], [ 1, "SELECT 'not ok 1'" ], [ 1, 'SELECT NULL' ], [ 1, 'SELECT 1' ], [ 1, 'SELECT FROM generate_series(1, 2)' ], [ 1, 'CREATE TABLE fz_verify (a int)' ], [ 1, 'SELECT true; SELECT false' ], [ 1, sub { script() } ]) : undef,
			expect => chance(0.25) ? expect_json() : undef,
			requires => chance(0.12) ? [ map { chance(0.05) ? undef : some_version() } 1 .. rint(0, 2) ] : undef,
			transactional => pick(undef, 1, 1, 0));
	}
	elsif ($fn eq 'script')
	{
		%c = (%c, a1 => chance(0.98) ? file_name() : undef, a2 => chance(0.99) ? script(markers => 1) : undef);
	}
	elsif ($fn eq 'scripts')
	{
		my $n = rint(0, 12);
		my @files;
		for (1 .. $n)
		{
			push @files, [ chance(0.99) ? file_name() : undef, chance(0.95) ? script(markers => 1) : undef ];
			# the same version twice, or an up/down pair
			if (chance(0.1) && $files[-1][0] && $files[-1][0] =~ /^(\d+)_/)
			{
				push @files, [ pick("$1_other.sql", "$1_x.down.sql", "U$1__x.sql"), script(markers => 1) ];
			}
		}
		$c{files} = \@files;
		$c{mismatch} = chance(0.02);    # arrays of different lengths
	}
	else
	{
		my $a = pick_w([ 3, sub { version() } ], [ 1, sub { script() } ], [ 1, sub { rtext(rint(0, 20)) } ]);
		%c = (%c, a1 => $a, a2 => pick('version_key', 'checksum', 'plan', 'apply', 'status_of'));
	}
	return \%c;
}

# ------------------------------------------------------------ the cluster
my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
restart_after_crash = on
log_error_verbosity = verbose
max_prepared_transactions = 0
});
$node->start;

my $setup = q{
CREATE EXTENSION migrate;
CREATE SCHEMA fuzzer;
CREATE TABLE fuzzer.cases (id int PRIMARY KEY, batch int NOT NULL, fn text NOT NULL, deep boolean NOT NULL,
    a1 bytea, a2 bytea, a3 bytea, a4 bytea, a5 bytea, expect bytea, requires bytea, transactional boolean,
    mismatch boolean);
CREATE TABLE fuzzer.files (case_id int NOT NULL, ord int NOT NULL, filename bytea, script bytea);
CREATE TABLE fuzzer.errors (case_id int, call text, sqlstate text, message text, detail text, hint text, context text);
CREATE TABLE fuzzer.calls (case_id int, call text, ok boolean);

-- Run q with the given arguments; [{call, ok, and the error if not ok}].
CREATE FUNCTION fuzzer.try(call text, q text, t1 text, t2 text, t3 text, t4 text, t5 text,
                           e jsonb, r text[], tx boolean, fa text[], sa text[])
RETURNS jsonb LANGUAGE plpgsql AS $f$
DECLARE st text; msg text; det text; hnt text; ctx text;
BEGIN
    EXECUTE q USING t1, t2, t3, t4, t5, e, r, tx, fa, sa;
    RETURN jsonb_build_array(jsonb_build_object('call', call, 'ok', true));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT, ctx = PG_EXCEPTION_CONTEXT;
    RETURN jsonb_build_array(jsonb_build_object('call', call, 'ok', false, 'sqlstate', st, 'message', msg,
                                                'detail', det, 'hint', hnt, 'context', ctx));
END $f$;

CREATE FUNCTION fuzzer.txt(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT convert_from(b, 'UTF8') $$;

-- One case; isolated: everything it did is rolled back afterwards.
CREATE FUNCTION fuzzer.run_case(c fuzzer.cases, isolated boolean) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    res jsonb := '[]';
    t1 text; t2 text; t3 text; t4 text; t5 text; e jsonb; r text[]; fa text[]; sa text[];
    q text;
    reg text;
BEGIN
    -- arguments: text conversion is PostgreSQL's, not migrate's
    BEGIN
        t1 := fuzzer.txt(c.a1); t2 := fuzzer.txt(c.a2); t3 := fuzzer.txt(c.a3);
        t4 := fuzzer.txt(c.a4); t5 := fuzzer.txt(c.a5);
        e := fuzzer.txt(c.expect)::jsonb;
        r := ARRAY(SELECT jsonb_array_elements_text(fuzzer.txt(c.requires)::jsonb));
        IF c.requires IS NULL THEN r := NULL; END IF;
        SELECT array_agg(fuzzer.txt(filename) ORDER BY ord), array_agg(fuzzer.txt(script) ORDER BY ord)
          INTO fa, sa FROM fuzzer.files WHERE case_id = c.id;
        IF c.fn = 'scripts' AND fa IS NULL THEN fa := '{}'; sa := '{}'; END IF;
        IF c.mismatch THEN sa := sa || 'SELECT 1'::text; END IF;
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO fuzzer.calls SELECT c.id, 'convert', false;
        INSERT INTO fuzzer.errors (case_id, call, sqlstate, message) VALUES (c.id, 'convert', SQLSTATE, SQLERRM);
        RETURN;
    END;

    reg := CASE c.fn
        WHEN 'add' THEN $q$SELECT migrate_add($1, $2, $3, down => $4, verify => $5, expect => $6, requires => $7, transactional => $8)$q$
        WHEN 'script' THEN $q$SELECT count(*) FROM migrate_add_script($1, $2)$q$
        WHEN 'scripts' THEN $q$SELECT count(*) FROM migrate_add_scripts($9, $10)$q$
        WHEN 'load' THEN $q$SELECT count(*) FROM migrate_load($1)$q$
        WHEN 'misc' THEN CASE t2
            WHEN 'version_key' THEN $q$SELECT migrate_version_key($1)$q$
            WHEN 'checksum' THEN $q$SELECT migrate_checksum($1)$q$
            WHEN 'plan' THEN $q$SELECT count(*) FROM migrate_plan($1, out_of_order => true)$q$
            WHEN 'apply' THEN $q$SELECT count(*) FROM migrate_apply($1, dry_run => true, out_of_order => true)$q$
            ELSE $q$SELECT count(*) FROM migrate_status() WHERE version = $1$q$ END
        END;
    BEGIN
        res := res || fuzzer.try(c.fn, reg, t1, t2, t3, t4, t5, e, r, c.transactional, fa, sa);
        IF isolated THEN
            res := res || fuzzer.try('plan', $q$SELECT count(*) FROM migrate_plan(out_of_order => true)$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('dry_run', $q$SELECT count(*) FROM migrate_apply(dry_run => true, out_of_order => true)$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('apply', $q$SELECT count(*) FROM migrate_apply(out_of_order => true)$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('status', $q$SELECT count(*) FROM migrate_status()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('validate', $q$SELECT count(*) FROM migrate_validate()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('check', $q$SELECT count(*) FROM migrate_check()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('rollback', $q$SELECT count(*) FROM migrate_rollback('0')$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
                       || fuzzer.try('validate_after', $q$SELECT count(*) FROM migrate_validate()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
            RAISE EXCEPTION USING ERRCODE = 'ZZ999';
        END IF;
    EXCEPTION WHEN SQLSTATE 'ZZ999' THEN
        NULL;    -- the isolated case is undone; res survives (a variable)
    END;
    INSERT INTO fuzzer.calls SELECT c.id, x->>'call', (x->>'ok')::boolean FROM jsonb_array_elements(res) x;
    INSERT INTO fuzzer.errors
    SELECT c.id, x->>'call', x->>'sqlstate', x->>'message', x->>'detail', x->>'hint', x->>'context'
      FROM jsonb_array_elements(res) x WHERE NOT (x->>'ok')::boolean;
END $f$;

-- A batch: its cases, then what looks at everything registered so far.
CREATE FUNCTION fuzzer.run_batch(b int, isolated boolean) RETURNS int LANGUAGE plpgsql AS $f$
DECLARE c fuzzer.cases; n int := 0; res jsonb := '[]';
BEGIN
    FOR c IN SELECT * FROM fuzzer.cases WHERE batch = b ORDER BY id LOOP
        PERFORM fuzzer.run_case(c, isolated);
        n := n + 1;
    END LOOP;
    IF NOT isolated THEN
        res := fuzzer.try('batch_plan', $q$SELECT count(*) FROM migrate_plan(out_of_order => true)$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
            || fuzzer.try('batch_dry_run', $q$SELECT count(*) FROM migrate_apply(dry_run => true, out_of_order => true)$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
            || fuzzer.try('batch_status', $q$SELECT count(*) FROM migrate_status()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
            || fuzzer.try('batch_validate', $q$SELECT count(*) FROM migrate_validate()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
            || fuzzer.try('batch_check', $q$SELECT count(*) FROM migrate_check()$q$, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO fuzzer.calls SELECT -b, x->>'call', (x->>'ok')::boolean FROM jsonb_array_elements(res) x;
        INSERT INTO fuzzer.errors
        SELECT -b, x->>'call', x->>'sqlstate', x->>'message', x->>'detail', x->>'hint', x->>'context'
          FROM jsonb_array_elements(res) x WHERE NOT (x->>'ok')::boolean;
    END IF;
    RETURN n;
END $f$;

-- Is a text valid in the database encoding?
CREATE FUNCTION fuzzer.valid(t text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM convert_from(convert_to(t, 'UTF8'), 'UTF8');
    RETURN true;
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
    RETURN false;
END $f$;
};
for my $db ('fuzz', 'fuzzone')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, $setup);
}

# A session that stays idle throughout: a backend crash anywhere makes the
# postmaster terminate it too, so it must still be there at the end.
my $watch = $node->background_psql('postgres');
my $watch_pid = $watch->query_safe('SELECT pg_backend_pid()');

# ------------------------------------------------------------ generate
my $batch_size = 100;
my $dirs = $node->basedir . '/fuzzdirs';
make_path($dirs);

sub hexb { my $s = shift; return defined($s) ? '\\\\x' . unpack('H*', $s) : '\\N'; }
sub boolc { my $b = shift; return defined($b) ? ($b ? 't' : 'f') : '\\N'; }

my (@case_rows, @file_rows);
my $t0 = time();
my $id = 0;
for my $i (1 .. $ncases)
{
	my $c = gen_case();
	$id++;
	# deep cases run in fuzzone, the others in fuzz
	my $batch = int(($i - 1) / $batch_size) + 1;
	my $req;
	if (defined $c->{requires})
	{
		# JSON::PP needs characters: decode the UTF-8 bytes first
		my @r = map { my $x = $_; defined $x && utf8::decode($x) ? $x : undef } @{ $c->{requires} };
		$req = JSON::PP->new->encode(\@r);
		utf8::encode($req);
	}
	push @case_rows,
	  join("\t", $id, $batch, $c->{fn}, boolc($c->{deep}), (map { hexb($c->{$_}) } qw(a1 a2 a3 a4 a5 expect)),
		hexb($req), boolc($c->{transactional}), boolc($c->{mismatch}));
	my $ord = 0;
	for my $f (@{ $c->{files} // [] })
	{
		push @file_rows, join("\t", $id, ++$ord, hexb($f->[0]), hexb($f->[1]));
	}
}

# Directories for migrate_load: contents and names the client could not send.
my $nload = int($ncases / 50) + 2;
for my $k (1 .. $nload)
{
	my $dir = "$dirs/d$k";
	make_path($dir);
	my $nfiles = rint(1, 6);
	for my $j (1 .. $nfiles)
	{
		my $fname = file_name();
		$fname =~ s{[/\x00]}{_}g;
		$fname = "f$j.sql" if $fname eq '' || $fname eq '.' || $fname eq '..';
		$fname = "${j}_" . $fname if chance(0.3);
		if (chance(0.05)) { $fname = sprintf('%03d_%s%s.sql', rint(1, 50), pick('caf', 'x', ''), bad_utf8()); }
		my $content = pick_w(
			[ 30, sub { script(markers => 1) } ],
			[ 1,  sub { "SELECT 1;\x00SELECT 2;" } ],
			[ 1,  sub { 'SELECT 1; -- ' . bad_utf8() . "\n" } ],
			[ 1,  sub { noise(rint(1, 300)) } ]);
		next if -e "$dir/$fname";
		open(my $fh, '>', "$dir/$fname") or next;
		binmode $fh;
		print $fh $content;
		close $fh;
	}
	make_path("$dir/subdir.sql") if chance(0.2);
	$id++;
	push @case_rows, join("\t", $id, int(($id - 1) / $batch_size) + 1, 'load', 't', hexb($dir), ('\\N') x 7, '\\N');
}
my $nbatches = int(($id - 1) / $batch_size) + 1;

# Load the cases into both databases (each runs its own).
my $case_file = $node->basedir . '/cases.copy';
my $file_file = $node->basedir . '/files.copy';
{
	open(my $fh, '>', $case_file) or die;
	binmode $fh;
	print $fh "$_\n" for @case_rows;
	close $fh;
	open($fh, '>', $file_file) or die;
	binmode $fh;
	print $fh "$_\n" for @file_rows;
	close $fh;
}
for my $db ('fuzz', 'fuzzone')
{
	$node->safe_psql(
		$db, qq{
		COPY fuzzer.cases FROM '$case_file';
		COPY fuzzer.files FROM '$file_file';
		DELETE FROM fuzzer.cases WHERE deep <> ('$db' = 'fuzzone');
	});
}
note(sprintf('generated %d cases (%d directories) in %.1f s', $id, $nload, time() - $t0));

# ------------------------------------------------------------ run
my (@crashes, @batch_failures);

# After a crash: wait for the end of crash recovery (logged after $offset).
sub server_up
{
	my ($offset) = @_;
	eval { $node->wait_for_log(qr/all server processes terminated; reinitializing(?s:.*)ready to accept connections/, $offset) };
	return $node->poll_query_until('postgres', 'SELECT 1', '1');
}

# Run a batch; on a lost connection, find the case that crashed the server.
for my $b (1 .. $nbatches)
{
	for my $db ('fuzz', 'fuzzone')
	{
		my ($out, $err);
		my $offset = -s $node->logfile;
		my $rc = $node->psql(
			$db, "SET client_min_messages = error; SELECT fuzzer.run_batch($b, " . ($db eq 'fuzzone' ? 'true' : 'false') . ')',
			stdout => \$out, stderr => \$err);
		next if $rc == 0;
		push @batch_failures, "batch $b in $db: $err";
		next unless $err =~ /server closed the connection|connection to server was lost|terminated abnormally/;
		server_up($offset);
		# one case at a time
		my @ids = split /\n/, $node->safe_psql($db, "SELECT id FROM fuzzer.cases WHERE batch = $b ORDER BY id");
		for my $cid (@ids)
		{
			my ($o, $e);
			$offset = -s $node->logfile;
			my $r = $node->psql($db,
				"SET client_min_messages = error; SELECT fuzzer.run_case(c, " . ($db eq 'fuzzone' ? 'true' : 'false') . ") FROM fuzzer.cases c WHERE id = $cid",
				stdout => \$o, stderr => \$e);
			next if $r == 0;
			if ($e =~ /server closed the connection|connection to server was lost|terminated abnormally/)
			{
				server_up($offset);
				push @crashes, "$db case $cid: " . case_input($db, $cid);
			}
		}
	}
}
note(sprintf('ran %d batches in %.1f s', $nbatches, time() - $t0));

# ------------------------------------------------------------ verdicts
ok(!@crashes, 'no case crashed the server') or diag("crashing cases: @crashes");
ok(!@batch_failures, 'every batch ran to its end') or diag(join("\n", @batch_failures));

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'the postmaster log shows no backend crash');
# (asked from another session: the idle one's own query timer may have run out on a long run)
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $watch_pid"), '1',
	'the idle session survived the whole run');

# Every error, as "db case call sqlstate message | detail | hint".
sub errors_where
{
	my ($cond) = @_;
	my @rows;
	for my $db ('fuzz', 'fuzzone')
	{
		push @rows, map { "$db $_" } grep { length } split /\n/, $node->safe_psql(
			$db, qq{SELECT case_id || ' ' || call || ' ' || coalesce(sqlstate, '?') || ' ' || coalesce(message, '')
			                 || ' | ' || coalesce(detail, '') || ' | ' || coalesce(hint, '')
			          FROM fuzzer.errors WHERE $cond ORDER BY case_id, call});
	}
	return @rows;
}

# The inputs of a case, printable (bytes escaped), for a report.
sub case_input
{
	my ($db, $cid) = @_;
	return '' if $cid <= 0;    # a batch-level call
	return $node->safe_psql($db, qq{
		SELECT 'fn=' || fn || coalesce(' a1=' || left(encode(a1, 'escape'), 2000), '')
		       || coalesce(' a2=' || left(encode(a2, 'escape'), 2000), '') || coalesce(' a3=' || left(encode(a3, 'escape'), 2000), '')
		       || coalesce(' a4=' || left(encode(a4, 'escape'), 500), '') || coalesce(' a5=' || left(encode(a5, 'escape'), 500), '')
		       || coalesce(' expect=' || encode(expect, 'escape'), '') || coalesce(' requires=' || encode(requires, 'escape'), '')
		       || coalesce(' transactional=' || transactional, '')
		       || coalesce((SELECT string_agg(' file ' || ord || '=' || coalesce(encode(filename, 'escape'), 'NULL') || ': '
		                                      || coalesce(left(encode(script, 'escape'), 1000), 'NULL'), '' ORDER BY ord)
		                      FROM fuzzer.files WHERE case_id = c.id), '')
		  FROM fuzzer.cases c WHERE id = $cid});
}

sub show
{
	my @r = @_;
	my @out = map { length > 400 ? substr($_, 0, 400) . '...' : $_ } @r[ 0 .. ($#r < 9 ? $#r : 9) ];
	push @out, '... (' . scalar(@r) . ' in all)' if @r > 10;
	for my $row (@r[ 0 .. ($#r < 2 ? $#r : 2) ])
	{
		my ($db, $cid) = split / /, $row;
		push @out, "input of $db case $cid: " . case_input($db, $cid) if $cid > 0;
	}
	return join("\n", @out);
}

# Internal names: PostgreSQL's own elog() texts and SPI result codes.
my $internal = q{(message || ' ' || coalesce(detail, '') || ' ' || coalesce(hint, '')) ~ '(SPI_ERROR|SPI_OK|cache lookup failed|unrecognized node type|unexpected type|null conbin|could not prepare|catalog query failed|TRAP|Assert)'};

my @xx = errors_where(q{sqlstate = 'XX000' OR sqlstate IS NULL OR sqlstate = ''});
ok(!@xx, 'no error is XX000 (internal error)') or diag(show(@xx));
my @xx_other = errors_where(q{sqlstate LIKE 'XX%'});
ok(!@xx_other, 'no error of class XX (internal)') or diag(show(@xx_other));
my @internal = errors_where($internal);
ok(!@internal, 'no error names an internal of the server or of SPI') or diag(show(@internal));

# What the fuzz reached: errors by SQLSTATE, calls that succeeded.
for my $db ('fuzz', 'fuzzone')
{
	note("$db: calls ok/failed by call: " . $node->safe_psql($db,
			q{SELECT string_agg(call || ' ' || ok || '/' || failed, ', ' ORDER BY call)
			    FROM (SELECT call, count(*) FILTER (WHERE ok) ok, count(*) FILTER (WHERE NOT ok) failed
			            FROM fuzzer.calls GROUP BY call) s}));
	note("$db: errors by SQLSTATE: " . $node->safe_psql($db,
			q{SELECT string_agg(sqlstate || ' ' || n, ', ' ORDER BY n DESC) FROM (SELECT sqlstate, count(*) n FROM fuzzer.errors GROUP BY 1) s}));
	note("$db: most frequent errors:\n" . $node->safe_psql($db,
			q{SELECT string_agg(n || ' ' || call || ' ' || sqlstate || ' ' || m, E'\n' ORDER BY n DESC)
			    FROM (SELECT call, sqlstate, left(regexp_replace(message, '[0-9]+|"[^"]*"', '#', 'g'), 70) m, count(*) n
			            FROM fuzzer.errors GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 25) s}));
}
my $registered = $node->safe_psql('fuzz', 'SELECT count(*) FROM migrate.migrations');
note("fuzz: $registered migrations registered");
cmp_ok($registered, '>', $ncases / 20, 'the accumulating database registered many migrations');
cmp_ok($node->safe_psql('fuzzone', q{SELECT count(*) FROM fuzzer.calls WHERE call IN ('apply', 'dry_run') AND ok}),
	'>', 0, 'some isolated cases were applied');
is($node->safe_psql('fuzz', q{SELECT count(*) FROM fuzzer.errors WHERE sqlstate = '22021' AND call <> 'convert'}),
	'0', 'invalid UTF-8 never reached migrate through a text argument');

# The catalog after the fuzz: its functions work, its texts are valid.
for my $db ('fuzz', 'fuzzone')
{
	my ($rc, $out, $err) = $node->psql($db, 'SELECT count(*) FROM migrate_validate()');
	is($rc, 0, "$db: migrate_validate() works after the fuzz") or diag($err);
	($rc, $out, $err) = $node->psql($db, 'SELECT count(*) FROM migrate_status()');
	is($rc, 0, "$db: migrate_status() works after the fuzz") or diag($err);
	($rc, $out, $err) = $node->psql($db, 'SELECT count(*) FROM migrate_plan(out_of_order => true)');
	is($rc, 0, "$db: migrate_plan() works after the fuzz") or diag($err);
	is($node->safe_psql($db, q{SELECT count(*) FROM migrate.migrations
	     WHERE NOT (fuzzer.valid(version) AND fuzzer.valid(name) AND fuzzer.valid(up)
	                AND fuzzer.valid(coalesce(down, '')) AND fuzzer.valid(coalesce(verify, ''))
	                AND fuzzer.valid(coalesce(source, '')))}),
		'0', "$db: every registered text is valid UTF-8");
}
is($node->safe_psql('fuzzone', 'SELECT count(*) FROM migrate.migrations'), '0',
	'fuzzone: every isolated case was rolled back');

# ------------------------------------------------------------ found by fuzzing
# Each block: a minimal reproduction of a bug the fuzzing found (all fixed).
$node->safe_psql('postgres', 'CREATE DATABASE found');
$node->safe_psql('found', 'CREATE EXTENSION migrate');

sub found_psql
{
	my ($sql) = @_;
	my ($out, $err);
	my $rc = $node->psql('found', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out // '', $err // '');
}

{
	my ($rc, $out, $err) = found_psql(q{SELECT migrate_add('900', 'copy', E'CREATE TABLE c1 (a int);\nCOPY c1 FROM STDIN;')});
	like($err, qr/ERROR:  0A000:/, 'COPY FROM STDIN is refused at registration with 0A000');
	found_psql(q{SELECT migrate_add('900', 'copy', 'SELECT 1')}) if $rc == 0;
}

{
	my ($rc, $out, $err) = found_psql(q{
		BEGIN;
		SELECT migrate_add('902', 'copy out', 'COPY (SELECT 1) TO STDOUT');
		SELECT count(*) FROM migrate_apply(dry_run => true);
		ROLLBACK;});
	like($err, qr/ERROR:  0A000: (?!.*SPI_ERROR)/, 'COPY TO STDOUT at apply: 0A000, naming no SPI result code');
}

{
	my $dir = "$dirs/badname";
	make_path($dir);
	for my $f ("901_caf\xe9.sql", "R__\xff\xfe.sql")
	{
		open(my $fh, '>', "$dir/$f") or die;
		print $fh "SELECT 1;\n";
		close $fh;
	}
	$node->safe_psql('found', q{
	     CREATE FUNCTION fuzzer_valid(t text) RETURNS boolean LANGUAGE plpgsql AS $f$
	     BEGIN PERFORM convert_from(convert_to(t, 'UTF8'), 'UTF8'); RETURN true;
	     EXCEPTION WHEN character_not_in_repertoire THEN RETURN false; END $f$});
	my ($rc, $out, $err) = found_psql(qq{SELECT count(*) FROM migrate_load('$dir')});
	like($err, qr/ERROR:  22021:/, 'a file name that is not valid UTF-8 is refused with 22021');
	is($node->safe_psql('found', q{SELECT count(*) FROM migrate.migrations
	     WHERE NOT (fuzzer_valid(version) AND fuzzer_valid(name) AND fuzzer_valid(source))}), '0',
		'no invalid UTF-8 in the catalog');
}

# Requirements where each migration requires the two before it: the number
# of paths doubles (Fibonacci) with each migration, and registration
# (find_path), migrate_plan/validate/apply (waits_for_worker) walk them all,
# with no CHECK_FOR_INTERRUPTS: at 40 migrations a plan takes ~15 s, and
# statement_timeout fires only after it.  Compare the server-side cost of a
# plan at 22 and at 32 migrations: linear work grows by 1.5, path walking by
# about 120.
{
	my $chain = sub {
		my ($from, $to) = @_;
		$node->safe_psql('found', qq{
		     DO \$\$ BEGIN FOR k IN $from..$to LOOP
		         PERFORM migrate_add(k::text, 'a' || k, 'SELECT 1',
		                             requires => ARRAY[(k - 1)::text, (k - 2)::text]);
		     END LOOP; END \$\$;});
	};
	my $plan_ms = sub {
		return $node->safe_psql('found', 'SELECT min(plan_ms()) FROM generate_series(1, 3)');
	};
	$node->safe_psql('found', q{
	     CREATE FUNCTION plan_ms() RETURNS float8 LANGUAGE plpgsql AS $f$
	     DECLARE s timestamptz := clock_timestamp();
	     BEGIN
	         PERFORM count(*) FROM migrate_plan();
	         RETURN 1000 * extract(epoch FROM clock_timestamp() - s);
	     END $f$;
	     SELECT migrate_add('1000', 'a1000', 'SELECT 1');
	     SELECT migrate_add('1001', 'a1001', 'SELECT 1', requires => ARRAY['1000']);});
	$chain->(1002, 1021);
	my $ms22 = $plan_ms->();
	$chain->(1022, 1031);
	my $ms32 = $plan_ms->();
	note(sprintf('migrate_plan(): %.1f ms at 22 chained migrations, %.1f ms at 32', $ms22, $ms32));
	cmp_ok($ms32, '<', 5 * $ms22 + 20, 'planning cost grows about linearly with chained requirements');
}

eval { $watch->quit; };
$node->stop;
done_testing();
