# The README runs as written.  Every ```sql block of README.md, and every
# block of output it shows (a ``` block without a language), is either run
# here, as it stands, in a database prepared the way the text around it says,
# with the output compared with what the README shows; or listed below as
# skipped, with the reason.  The blocks are read from README.md itself and
# each is matched to exactly one entry of @BLOCKS by the heading it stands
# under and a needle in its text: a block that no entry names, or that two
# entries name, fails the test, and so does an entry that names no block.
# A new example in the README therefore comes with its test, or with the
# reason why it cannot run.
#
# What a comparison ignores is what truly varies from run to run, and each
# comparison names it (%VARIES below): durations and timings, process ids,
# timestamps, and checksums the README shows abbreviated (4272…61d3).
# Everything else, headers and messages included, must be as shown.
#
# ```sh blocks are shell commands (building, the demo, the tests themselves,
# bin/migrate-bundle, pg_dump), not SQL: they are not matched here.  A block
# in any other language fails the test (no SQL can hide under ```psql).
#
# One cluster, one database per example (named after it), so that the
# examples do not see each other's tables.
use strict;
use warnings;
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib "$FindBin::RealBin/lib";
use MigrateUpgrade qw(control_default_version);

my $readme = "$FindBin::RealBin/../../README.md";
open(my $fh, '<', $readme) or die "cannot read $readme: $!";
my $text = do { local $/; <$fh> };
close $fh;

# ---------------------------------------------------------------- the blocks
# Every fenced block: its language, its text, the heading it stands under
# (without the #s) and the line it starts on.
my @readme_blocks;
{
	my @lines = split /\n/, $text, -1;
	my $heading = '';
	for (my $i = 0; $i < @lines; $i++)
	{
		if ($lines[$i] =~ /^```(\S*)\s*$/)
		{
			my ($lang, $start, @body) = ($1, $i + 1);
			push @body, $lines[$i] while ++$i < @lines && $lines[$i] !~ /^```\s*$/;
			die "README.md: the block of line $start is not closed" if $i >= @lines;
			push @readme_blocks, { lang => $lang, text => join("\n", @body) . "\n",
				heading => $heading, line => $start };
			next;
		}
		$heading = $1 if $lines[$i] =~ /^#+\s+(.*?)\s*$/;
	}
}

# ---------------------------------------------------------------- helpers
my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
$node->start;
# the role "app" that the lock messages of the README name
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');

# psql as a reader runs it: aligned output, default verbosity, stopping at
# the first error.  Returns (exit code, stdout, stderr).
sub psql_as_reader
{
	my ($db, $sql, %o) = @_;
	my $connstr = $node->connstr($db) . ($o{user} ? " user=$o{user}" : '');
	my @cmd = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', @{ $o{extra} // [] },
		'-d', $connstr, '-f', '-');
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \$sql, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# SQL that must work (setup, and the checks of what an example did).
sub sql
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql);
}

# A database of its own for an example, with what it says it needs.
sub fresh_db
{
	my ($db, $setup) = @_;
	sql('postgres', qq{CREATE DATABASE "$db"});
	sql($db, $setup) if defined $setup;
	return $db;
}

# psql's messages on stderr: [the line of the text run that the statement
# ended on, the message with its DETAIL, HINT and CONTEXT lines].
sub messages
{
	my ($err) = @_;
	my @m;
	for my $l (split /\n/, $err)
	{
		if ($l =~ /^psql:[^:]*:(\d+): (.*)$/) { push @m, [ $1, "$2\n" ] }
		elsif (@m) { $m[-1][1] .= "$l\n" }
		else { push @m, [ 0, "$l\n" ] }
	}
	return @m;
}

# The messages of the statement that ends on the line of $sql holding $needle.
sub messages_of
{
	my ($err, $sql, $needle) = @_;
	my $at = index($sql, $needle);
	die "no '$needle' in the SQL run" if $at < 0;
	my $line = 1 + (() = substr($sql, 0, $at + length $needle) =~ /\n/g);
	return join('', map { $_->[0] == $line ? $_->[1] : () } messages($err));
}

# The tables of psql's aligned output (or of a README block showing one):
# each a list of rows of trimmed cells, the header first.
sub tables
{
	my ($out) = @_;
	my @l = split /\n/, $out;
	my @found;
	for (my $i = 0; $i + 1 < @l; $i++)
	{
		next unless $l[ $i + 1 ] =~ /^-+(\+-+)*$/ && $l[$i] =~ /\S/;
		my @rows = ([ cells($l[$i]) ]);
		for ($i += 2; $i < @l && $l[$i] ne '' && $l[$i] !~ /^\(\d+ rows?\)$/; $i++)
		{
			push @rows, [ cells($l[$i]) ];
		}
		push @found, \@rows;
	}
	return @found;
}
sub cells { return map { s/^\s+|\s+$//gr } split /\|/, $_[0], -1 }

# The table whose header is the first row of $want, as text, one row a line,
# cells joined by |; the cells of the columns named in $ignore as <varies>.
sub table_text
{
	my ($rows, @ignore) = @_;
	my @ign = map { my $name = $_; grep { $rows->[0][$_] eq $name } 0 .. $#{ $rows->[0] } } @ignore;
	return join('', map {
		my $r = $_;
		my @c = @$r;
		if ($r != $rows->[0]) { $c[$_] = '<varies>' for @ign }
		join('|', @c) . "\n"
	} @$rows);
}

# Compare a table the README shows with the table of the same header in
# psql's output, ignoring the columns named.
sub same_table
{
	my ($shown, $out, $ignore, $label) = @_;
	my ($want) = tables($shown);
	ok($want, "$label: the README shows a table") or return;
	my $header = join('|', @{ $want->[0] });
	my ($got) = grep { join('|', @{ $_->[0] }) eq $header } tables($out);
	is(table_text($got // [ [] ], @$ignore), table_text($want, @$ignore), $label)
	  or diag("psql printed:\n$out");
}

# What truly varies between runs, and how a comparison blanks it out on both
# sides.  Each comparison names the ones it ignores.
my %VARIES = (
	# how long a migration, a batch or a wait took (machine load)
	ms => sub { $_[0] =~ s/\b\d+(\.\d+)? ms\b/<n> ms/gr },
	# process ids of other sessions
	pid => sub { $_[0] =~ s/\b(pid|Process) \d+/$1 <pid>/gr },
	# when another session started its transaction or entered its state
	# (the digits and the time zone; whether seconds have a fraction stays)
	timestamp => sub {
		($_[0] =~ s/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?/'<timestamp' . ($1 ? '.fraction' : '') . '>'/ger);
	},
	# checksums: the README abbreviates them to 4272…61d3 (the scripts
	# behind them are not shown, so their digits cannot match)
	checksum => sub { $_[0] =~ s/\b[0-9a-f]{64}\b|\b[0-9a-f]{4}…[0-9a-f]{4}\b/<checksum>/gr },
);

sub blank_out
{
	my ($s, @what) = @_;
	for my $w (@what)
	{
		die "unknown variation $w" unless $VARIES{$w};
		$s = $VARIES{$w}->($s);
	}
	return $s;
}

# Compare messages the README shows with those printed, ignoring @what.
sub same_messages
{
	my ($shown, $got, $what, $label) = @_;
	is(blank_out($got, @$what), blank_out($shown, @$what), $label);
}

# A script run as a migration file's text: registered with
# migrate_add_script(), under the file name the text gives.
sub add_script
{
	my ($db, $file, $script) = @_;
	sql($db, qq{SELECT count(*) FROM migrate_add_script('$file', \$readme\$$script\$readme\$)});
}

# What a run left for the output block after it.
my %printed;

# ---------------------------------------------------------------- the examples
# heading: the heading the block stands under (its beginning is enough);
# kind: sql or output; needle: a text of the block; then run (called with
# the block's text) or skip (the reason it is not run).
my @BLOCKS = (
	{
		heading => 'migrate',
		kind => 'sql',
		needle => q{migrate_add('001', 'create tools'},
		run => sub {
			my ($block) = @_;
			# the first lines of the README, in a fresh database
			my $db = fresh_db('intro');
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'the opening example runs as written') or diag($err);
			is(sql($db, q{SELECT string_agg(version || ' ' || state, ', ' ORDER BY version) FROM migrate_status()})
				  . ' ' . sql($db, 'SELECT count(*) FROM tools'),
				'001 applied, 002 applied 150', '... and applies both migrations: 150 tools');
		},
	},
	{
		heading => 'Install',
		kind => 'sql',
		needle => 'CREATE EXTENSION migrate SCHEMA extensions;',
		run => sub {
			my ($block) = @_;
			# two alternatives: each line in a database of its own
			my @lines = grep { /\S/ } split /\n/, $block;
			is(scalar @lines, 2, 'the install example has two alternatives');
			my $db = fresh_db('install_public');
			my ($rc, $out, $err) = psql_as_reader($db, "$lines[0]\n");
			is($rc, 0, 'CREATE EXTENSION migrate runs as written') or diag($err);
			is(sql($db, q{SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'migrate'}),
				'public', '... into public');
			($rc, $out, $err) = psql_as_reader($db, "SELECT migrate_apply();\n");
			is($rc, 0, '... where SELECT migrate_apply(); just works') or diag($err);
			# the schema Supabase keeps extensions in exists there already
			$db = fresh_db('install_extensions', 'CREATE SCHEMA extensions');
			($rc, $out, $err) = psql_as_reader($db, "$lines[1]\n");
			is($rc, 0, 'CREATE EXTENSION migrate SCHEMA extensions runs as written') or diag($err);
			is(sql($db, q{SELECT extnamespace::regnamespace || ' ' || (SELECT count(*) FROM pg_proc
			                WHERE pronamespace = 'extensions'::regnamespace AND proname = 'migrate_apply')
			                FROM pg_extension WHERE extname = 'migrate'}),
				'extensions 1', '... with its functions in extensions');
		},
	},
	{
		heading => 'Install',
		kind => 'sql',
		needle => 'ALTER EXTENSION migrate UPDATE;',
		run => sub {
			my ($block) = @_;
			# a database of each older version the text names, with the new
			# library installed; the upgrade tests (test/t/007, 018, 022)
			# compare the updated catalogs with a fresh install
			my $latest = control_default_version($node);
			for my $from ('0.1.0', '0.2.0', '0.3.0', '0.4.0')
			{
				my $db = fresh_db("upgrade_from_$from", qq{CREATE EXTENSION migrate VERSION '$from'});
				if ($from eq '0.4.0')
				{
					my ($rc, $out, $err) = psql_as_reader($db, "SELECT count(*) FROM migrate_status();\n",
						extra => [ '-v', 'VERBOSITY=verbose' ]);
					like($err, qr/ERROR:  55000: .*\n.*\nHINT:  .*ALTER EXTENSION migrate UPDATE/,
						'before the update the new library refuses the old catalog (55000, with that hint)');
				}
				my ($rc, $out, $err) = psql_as_reader($db, $block);
				is($rc, 0, "the update runs as written from $from") or diag($err);
				is(sql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'}),
					$latest, "... and reaches $latest");
			}
		},
	},
	{
		heading => 'Quick start in psql',
		kind => 'sql',
		needle => 'CREATE TABLE dh_workflow',
		run => sub {
			my ($block) = @_;
			# the block creates everything it needs, the extension included
			like($block, qr/CREATE EXTENSION migrate;/, 'the quick start creates the extension itself');
			my $db = fresh_db('quick');
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'the quick start runs as written') or diag($err);
			$printed{quick} = { out => $out,
				notices => messages_of($err, $block, 'SELECT * FROM migrate_apply();') };
		},
	},
	{
		heading => 'Quick start in psql',
		kind => 'output',
		needle => '] 20251110_01 strategic priorities ... ok',
		run => sub {
			my ($shown) = @_;
			same_messages($shown, $printed{quick}{notices}, ['ms'],
				'migrate_apply() of the quick start prints the NOTICEs shown (durations aside)');
		},
	},
	{
		heading => 'Quick start in psql',
		kind => 'output',
		needle => '20251110_02 | migrate workflows',
		run => sub {
			my ($shown) = @_;
			# the dry run's rows have the same header: the rows shown are those
			# of the apply that commits (action applied)
			my ($want) = tables($shown);
			my ($got) = grep { $_->[0][2] eq 'action' && ($_->[1][2] // '') eq 'applied' } tables($printed{quick}{out});
			is(table_text($got // [ [] ], 'duration'), table_text($want, 'duration'),
				'migrate_apply() of the quick start returns the rows shown (durations aside)');
		},
	},
	{
		heading => 'Sections and directives',
		kind => 'sql',
		needle => '-- migrate:requires 20251003, 20251004',
		run => sub {
			my ($block) = @_;
			# a file's text: registered as a file; the two migrations it
			# requires, the legacy table it reads (150 rows) and a protected
			# table exist
			my $db = fresh_db('sections', q{
				CREATE EXTENSION migrate;
				CREATE TABLE dh_tool (id int PRIMARY KEY, name text NOT NULL);
				INSERT INTO dh_tool SELECT g, 'tool ' || g FROM generate_series(1, 150) g;
				CREATE TABLE prompts (id int PRIMARY KEY);
				SELECT migrate_add('20251003', 'first', 'CREATE TABLE first (id int)');
				SELECT migrate_add('20251004', 'second', 'CREATE TABLE second (id int)');
			});
			add_script($db, '20251110_01_tools.sql', $block);
			is(sql($db, q{SELECT concat_ws(' | ', up LIKE '%CREATE TABLE tools%', btrim(down, E'\\n'), btrim(verify, E'\\n'),
			                                  btrim("assert", E'\\n'), expect, requires)
			                FROM migrate.migrations WHERE version = '20251110_01'}),
				q{t | DROP TABLE tools; | SELECT count(*) = 0 FROM tools WHERE name = ''; | SELECT count(*) = 150 FROM tools; | {"tools": 150, "prompts": "="} | {20251003,20251004}},
				'the sections and directives of the example split the file as the table says');
			is(sql($db, q{SELECT string_agg(version || ' ' || action || ' ' || rows || ' ' || checks, ', ') FROM migrate_apply()}),
				'20251003 applied 0 1, 20251004 applied 0 1, 20251110_01 applied 150 5',
				'... and it applies after what it requires, with its expectations, assert and verify checked');
			is(sql($db, q{SELECT string_agg(version || ' ' || action, ', ') FROM migrate_rollback('20251004')})
				  . ' ' . sql($db, q{SELECT to_regclass('tools') IS NULL}),
				'20251110_01 reverted t', '... and its down script reverts it');
		},
	},
	{
		heading => 'Registering files',
		kind => 'sql',
		needle => q{migrate_load('/srv/app/supabase/migrations')},
		skip => q{$f$ ... $f$ stands for a file's text and /srv/app/supabase/migrations for the reader's }
		  . q{server directory; sql/07_files.sql runs both, with every result}
	},
	{
		heading => 'Registering files',
		kind => 'output',
		needle => 'It first differs at line 7 of file "004_tasks.sql"',
		run => sub {
			my ($shown) = @_;
			# 004_tasks.sql applied, then loaded again with its statement on
			# line 7 (of the file, in its up section) changed
			my $db = fresh_db('drift', q{CREATE EXTENSION migrate; CREATE TABLE tools (id int PRIMARY KEY);});
			my $file = "-- tasks of a tool\n-- migrate:requires 003\n\n-- migrate:up\n"
			  . "CREATE TABLE tasks (id int PRIMARY KEY, tool_id int REFERENCES tools);\n\nINSERT INTO tasks VALUES (1, NULL);\n"
			  . "-- migrate:down\nDROP TABLE tasks;\n";
			sql($db, q{SELECT migrate_add('003', 'tools', 'SELECT 1')});
			add_script($db, '004_tasks.sql', $file);
			sql($db, 'SELECT count(*) FROM migrate_apply()');
			my $edited = $file =~ s/VALUES \(1, NULL\)/VALUES (2, NULL)/r;
			my ($rc, $out, $err) = psql_as_reader($db,
				"SELECT result FROM migrate_add_script('004_tasks.sql', \$readme\$$edited\$readme\$);\n");
			same_messages($shown, join('', map { $_->[1] } messages($err)), ['checksum'],
				'an applied file with a statement changed on line 7 is recorded as shown (checksums aside)');
			is(sql($db, q{SELECT state FROM migrate_status() WHERE version = '004'}), 'changed', '... as changed');
		},
	},
	{
		heading => 'Registering files',
		kind => 'output',
		needle => 'have the same version 024',
		run => sub {
			my ($shown) = @_;
			# a server directory (this test's own) with two files of version 024
			my $dir = PostgreSQL::Test::Utils::tempdir('dup');
			for my $f ([ '024_memories.sql', 'CREATE TABLE memories (id int);' ],
				[ '024_widgets.sql', 'CREATE TABLE widgets (id int);' ])
			{
				open(my $out, '>', "$dir/$f->[0]") or die "cannot write $dir/$f->[0]: $!";
				print $out "$f->[1]\n";
				close $out;
			}
			my $db = fresh_db('duplicate_version', 'CREATE EXTENSION migrate');
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_load('$dir');\n");
			same_messages($shown, join('', map { $_->[1] } messages($err)), [],
				'a directory with two files of one version fails as shown');
			is(sql($db, 'SELECT count(*) FROM migrate.migrations'), '0', '... registering nothing');
		},
	},
	{
		heading => 'From a laptop, or a web SQL editor',
		kind => 'output',
		needle => '001_a.sql',
		skip => q{migrate_compare_scripts() output: its states (changed) and its abbreviated checksums }
		  . q{are under change by issue 15.2/15.7 (lead)},
	},
	{
		heading => 'Lifecycle',
		kind => 'sql',
		needle => 'SELECT * FROM migrate_repair();',
		skip => q{a menu of separate operations on the reader's project (versions 003, 024, 027 of it); }
		  . q{sql/08_lifecycle.sql, sql/03_register.sql and sql/07_files.sql run each},
	},
	{
		heading => 'Background jobs',
		kind => 'sql',
		needle => 'SELECT migrate_start();',
		run => sub {
			my ($block) = @_;
			# the three pending migrations of the output shown: an index built
			# concurrently (what only a job can run), then two more
			my $db = fresh_db('jobs', q{
				CREATE EXTENSION migrate;
				CREATE TABLE tools (id int PRIMARY KEY, name text);
				SELECT migrate_add('007', 'index tool names', 'CREATE INDEX CONCURRENTLY tools_name_idx ON tools (name)');
				SELECT migrate_add('008', 'owners', 'CREATE TABLE owners (id int PRIMARY KEY)');
				SELECT migrate_add('009', 'more tools', $$INSERT INTO tools VALUES (1, 'hammer')$$);
			});
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'the jobs example runs as written (its job is job 1)') or diag($err);
			$printed{jobs} = { out => $out, notices => messages_of($err, $block, 'CALL migrate_wait(1);') };
			my ($jobs) = grep { $_->[0][0] eq 'id' } tables($out);
			is(join(' ', map { $_->[3] } @{$jobs}[ 1 .. $#$jobs ]), 'succeeded', '... and migrate.jobs shows it succeeded');
		},
	},
	{
		heading => 'Background jobs',
		kind => 'output',
		needle => '007 index tool names',
		run => sub {
			my ($shown) = @_;
			my $notices = join('', grep { /^NOTICE/ } split /^/, $shown);
			same_messages($notices, $printed{jobs}{notices}, ['ms'],
				'CALL migrate_wait(1) prints the NOTICEs shown (durations aside)');
			same_table($shown, $printed{jobs}{out}, [], '... and its final state as shown');
		},
	},
	{
		heading => 'Batched data migrations',
		kind => 'sql',
		needle => '-- migrate:batch {"table": "legacy_tasks"',
		run => sub {
			my ($block) = @_;
			# the file, registered as a file; as the text says: 700,000 rows
			# in legacy_tasks, and the table tasks created by the pending
			# migration 20260301_01; then the two commands the text gives
			my ($file) = $block =~ /^-- file (\S+)$/m;
			my $db = fresh_db('batch', q{
				CREATE EXTENSION migrate;
				CREATE TABLE legacy_tasks (id int PRIMARY KEY, title text NOT NULL, owner int);
				INSERT INTO legacy_tasks SELECT g, 'task ' || g, g % 100 FROM generate_series(1, 700000) g;
				SELECT migrate_add('20260301_01', 'tasks table',
				                   'CREATE TABLE tasks (id int PRIMARY KEY, title text NOT NULL, owner_id int)');
			});
			add_script($db, $file, $block);
			my $run = "SELECT migrate_start() AS job \\gset\nCALL migrate_wait(:job);\n";
			like($text, qr/\Q`SELECT migrate_start() AS job \gset` and `CALL migrate_wait(:job);`\E/,
				'the README says how to run it: migrate_start() and CALL migrate_wait()');
			my ($rc, $out, $err) = psql_as_reader($db, $run);
			is($rc, 0, 'the batched migration of the README runs as written') or diag($err);
			$printed{batch} = messages_of($err, $run, 'CALL migrate_wait(:job);');
		},
	},
	{
		heading => 'Batched data migrations',
		kind => 'output',
		needle => '20260301_01 tasks table ... ok',
		run => sub {
			my ($shown) = @_;
			# migrate_wait's progress NOTICEs come every 5 seconds: how many,
			# and their figures, vary with the machine; each must have the
			# form shown, and a run of them counts as one
			my $progress = qr/^NOTICE:  migration 20260301_02: batch \d+, \d+ rows of about 700000, \d+ rows\/s, ETA \d\d:\d\d:\d\d$/m;
			my $fold = sub { ($_[0] =~ s/$progress/<progress>/gr) =~ s/(<progress>\n)+/<progress>\n/gr };
			like($shown, $progress, 'the README shows a progress NOTICE');
			like($printed{batch}, $progress, '... and migrate_wait() prints one');
			same_messages($fold->($shown), $fold->($printed{batch}), ['ms'],
				'CALL migrate_wait() of the batched migration prints the NOTICEs shown (durations and progress figures aside)');
		},
	},
	{
		heading => 'Batched data migrations',
		kind => 'sql',
		needle => q{detail -> 'longest_batch_ms'},
		run => sub {
			my ($block) = @_;
			# the README shows its row expanded (psql's \x)
			my ($rc, $out, $err) = psql_as_reader('batch', $block, extra => ['-x']);
			is($rc, 0, 'the history query of the batched migration runs as written') or diag($err);
			$printed{batch_history} = $out;
		},
	},
	{
		heading => 'Batched data migrations',
		kind => 'output',
		needle => '-[ RECORD 1 ]',
		run => sub {
			my ($shown) = @_;
			# longest_ms is the slowest batch's duration
			my $fields = sub {
				join('', map { /^(\S+)\s*\| (.*)$/ ? ($1 eq 'longest_ms' ? "$1 <varies>\n" : "$1 $2\n") : () }
					split /\n/, $_[0]);
			};
			is($fields->($printed{batch_history}), $fields->($shown),
				'... and returns what the README shows (the longest batch aside)');
		},
	},
	{
		heading => '`migrate_status(',
		kind => 'output',
		needle => 'cannot run in a transaction: …',
		run => sub {
			my ($shown) = @_;
			# one applied migration and one that only a job can run
			my $db = fresh_db('status_form', q{
				CREATE EXTENSION migrate;
				SELECT migrate_add('20251110_01', 'strategic priorities', 'CREATE TABLE sp (id int)');
				SELECT count(*) FROM migrate_apply();
				SELECT migrate_add('20251110_02', 'migrate workflows', 'CREATE INDEX CONCURRENTLY ON sp (id)',
				                   transactional => false);
			});
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_status();\n");
			same_table($shown, $out, [qw(checksum applied_at)],
				'migrate_status() prints the short form shown (checksums and times aside)');
			ok(!grep({ length($_) > 120 } split /\n/, $out), '... in at most 120 columns');
		},
	},
	{
		heading => 'Moving from another tool',
		kind => 'sql',
		needle => q{migrate_import_history('supabase')},
		skip => q{/srv/app/supabase/migrations is the reader's server directory; the migrate_status() }
		  . q{output after it is under change by issue 15.2/15.7 (lead); migrate_import_history() is run }
		  . q{by sql/09_import.sql and test/t/016_sync_histories.pl},
	},
	{
		heading => 'The transition period: both tools agree',
		kind => 'sql',
		needle => 'SELECT * FROM migrate_histories();',
		run => sub {
			my ($block) = @_;
			# the result shown: dbmate's table there, no other tool's
			my $db = fresh_db('histories', q{
				CREATE EXTENSION migrate;
				CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY);
			});
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'migrate_histories() runs as written') or diag($err);
			# the result is shown as comments under the query
			same_table(join('', map { s/^-- ?//r } grep { /^--/ } split /^/, $block), $out, [],
				'... and returns the rows shown');
		},
	},
	{
		heading => '`migrate_add(',
		kind => 'sql',
		needle => q{'CREATE TABLE tools (id bigint PRIMARY KEY, name text NOT NULL);'},
		run => sub {
			my ($block) = @_;
			# 001 "create tools" applied with its first text
			my $db = fresh_db('drift_add', q{
				CREATE EXTENSION migrate;
				SELECT migrate_add('001', 'create tools', 'CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL);');
				SELECT count(*) FROM migrate_apply();
			});
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'new text for an applied migration is registered as written') or diag($err);
			$printed{drift_add} = [ $rc, $out, $err ];
			is(sql($db, q{SELECT state FROM migrate_status() WHERE version = '001'}), 'changed', '... as changed');
			($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_apply();\n");
			like($err, qr/ERROR:  migrate_apply\(\) refuses to apply while an applied migration is changed/,
				'... and migrate_apply() refuses');
		},
	},
	{
		heading => '`migrate_add(',
		kind => 'output',
		needle => 'is applied, and its text changed: recorded as changed',
		run => sub {
			my ($shown) = @_;
			my ($rc, $out, $err) = @{ $printed{drift_add} };
			same_messages($shown, join('', map { $_->[1] } messages($err)), ['checksum'],
				'new text for an applied migration is recorded as shown (checksums aside)');
		},
	},
	{
		heading => '`migrate_checksum(',
		kind => 'sql',
		needle => 'migrate_checksum(',
		run => sub {
			my ($block) = @_;
			my $db = fresh_db('checksum', 'CREATE EXTENSION migrate');
			my ($rc, $out, $err) = psql_as_reader($db, $block, extra => ['-At']);
			is($rc, 0, 'the migrate_checksum() example runs as written') or diag($err);
			# psql prints a boolean as t or f; the comment says true or false
			my ($says) = $block =~ /-- (\S+)\s*$/;
			my %bool = (t => 'true', f => 'false');
			is($bool{ $out =~ s/\n\z//r } // $out, $says, "... and returns $says, as its comment says");
		},
	},
	{
		heading => '`migrate_apply(',
		kind => 'output',
		needle => 'tools_pkey',
		run => sub {
			my ($shown) = @_;
			# the migration of the message: 004 "bad", whose second statement
			# (line 2) inserts a tool that is there already
			my $db = fresh_db('apply_error', q{
				CREATE EXTENSION migrate;
				CREATE TABLE tools (id int PRIMARY KEY, name text);
				INSERT INTO tools VALUES (1000, 'x');
				SELECT migrate_add('004', 'bad', $$INSERT INTO tools VALUES (1001, 'x');
				INSERT INTO tools VALUES (1000, 'y')$$);
			});
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_apply();\n");
			same_messages($shown, join('', map { $_->[1] } messages($err)), [],
				'a failing statement is reported as shown');
		},
	},
	{
		heading => '`migrate_apply(',
		kind => 'output',
		needle => 'the pending plan differs from the reviewed plan',
		run => sub {
			my ($shown) = @_;
			# the plan of the message (001 "users", 002 "seed", 003 "users
			# index"), reviewed before 003 was registered
			my $db = fresh_db('reviewed_plan', q{
				CREATE EXTENSION migrate;
				SELECT migrate_add('001', 'users', 'CREATE TABLE users (id int PRIMARY KEY, email text)');
				SELECT migrate_add('002', 'seed', $$INSERT INTO users VALUES (1, 'a@example.com')$$);
			});
			my $reviewed = sql($db, 'SELECT DISTINCT plan_checksum FROM migrate_plan()');
			sql($db, q{SELECT migrate_add('003', 'users index', 'CREATE INDEX users_email ON users (email)')});
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_apply(plan => '$reviewed');\n");
			same_messages($shown, join('', map { $_->[1] } messages($err)), ['checksum'],
				'a plan that is not the reviewed one is refused as shown (the abbreviated checksum aside)');
		},
	},
	{
		heading => '`migrate_verify(',
		kind => 'sql',
		needle => q{cron.schedule('migrate-verify'},
		skip => q{needs pg_cron (shared_preload_libraries); test/t/002_pg_cron.pl runs migrate_verify() }
		  . q{from a cron job and reads cron.job_run_details},
	},
	{
		heading => 'Safety checks',
		kind => 'sql',
		needle => 'FROM migrate_lint();',
		run => sub {
			my ($block) = @_;
			# what the output shows: app.tasks of 762,000 rows and 180 MB
			# (rows of 240 bytes, 33 a page: 23,091 pages), analysed; the
			# pending migration 0042 adds a column with a volatile default
			# on line 2 and sets a column NOT NULL on line 3
			my $db = fresh_db('lint', q{
				CREATE EXTENSION migrate;
				CREATE SCHEMA app;
				CREATE TABLE app.tasks (id int, owner int, title text);
				INSERT INTO app.tasks SELECT g, g % 100, repeat('x', 204) FROM generate_series(1, 762000) g;
				VACUUM ANALYZE app.tasks;
				SELECT migrate_add('0042', 'task uid and owner', $$-- every task gets a uid, and an owner
				ALTER TABLE app.tasks ADD COLUMN uid uuid DEFAULT gen_random_uuid();
				ALTER TABLE app.tasks ALTER COLUMN owner SET NOT NULL;$$);
			});
			my ($rc, $out, $err) = psql_as_reader($db, $block);
			is($rc, 0, 'the migrate_lint() query runs as written') or diag($err);
			$printed{lint} = $out;
		},
	},
	{
		heading => 'Safety checks',
		kind => 'output',
		needle => 'ALTER TABLE rewrites app.tasks',
		run => sub {
			my ($shown) = @_;
			same_table($shown, $printed{lint}, [], '... and returns the findings shown');
		},
	},
	{
		heading => 'Safety checks',
		kind => 'sql',
		needle => '-- migrate:allow table-rewrite',
		run => sub {
			my ($block) = @_;
			# lines of an up script: registered as one, with its table there
			my $db = fresh_db('lint_allow', q{
				CREATE EXTENSION migrate;
				CREATE TABLE settings (key text PRIMARY KEY, value text);
				INSERT INTO settings VALUES ('theme', '"dark"');
			});
			sql($db, qq{SELECT migrate_add('001', 'settings as jsonb', \$readme\$$block\$readme\$)});
			is(sql($db, q{SELECT string_agg(rule || ' ' || allowed, ', ') FROM migrate_lint()}),
				'table-rewrite true', 'the allowed finding is still listed, with allowed = true');
			like(sql($db, q{SELECT notes::text FROM migrate.status}),
				qr/lint allows table-rewrite, index-without-concurrently/, '... and the allow is noted');
			is(sql($db, q{SELECT action FROM migrate_apply()}), 'applied', '... and the migration applies');
		},
	},
	{
		heading => 'Lock waits that cannot stall production',
		kind => 'sql',
		needle => '-- migrate:lock_timeout 30s',
		run => sub {
			my ($block) = @_;
			# lines of an up script: registered as one, with its table there
			my $db = fresh_db('lock_timeout', q{
				CREATE EXTENSION migrate;
				CREATE TABLE audit_log (id bigint PRIMARY KEY);
			});
			sql($db, qq{SELECT migrate_add('001', 'audit source', \$readme\$$block\$readme\$)});
			like(sql($db, q{SELECT notes::text FROM migrate.status}), qr/lock timeout 30s/,
				'the lock_timeout line is noted');
			is(sql($db, q{SELECT action FROM migrate_apply()}), 'applied', '... and the migration applies');
		},
	},
	{
		heading => 'Lock waits that cannot stall production',
		kind => 'output',
		needle => 'could not get a lock in time',
		run => sub {
			my ($shown) = @_;
			# what the NOTICE names: a session of role app, application
			# "report", idle in transaction after reading tasks; migration
			# 0042 alters tasks.  migrate.lock_timeout is short so that the
			# four tries take little time.  The README shows the first NOTICE.
			my $db = fresh_db('lock_retry', q{
				CREATE EXTENSION migrate;
				CREATE TABLE tasks (id int PRIMARY KEY);
				GRANT SELECT ON tasks TO app;
				SELECT migrate_add('0042', 'task owners', 'ALTER TABLE tasks ADD COLUMN owner_id int');
			});
			my $report = $node->background_psql($db, extra_params => [ '-U', 'app' ]);
			$report->query_safe(q{SET application_name = 'report'; BEGIN; SELECT count(*) FROM tasks;});
			my ($rc, $out, $err) = psql_as_reader($db,
				"SET migrate.lock_timeout = '100ms';\nSELECT * FROM migrate_apply();\n");
			$report->quit;
			isnt($rc, 0, 'a migration that cannot get its lock fails after its tries');
			my ($first) = messages($err);
			# the retry's delay is random: "in 139 ms"
			same_messages($shown, $first->[1], [qw(ms pid timestamp)],
				'... and its first retry prints the NOTICE shown (pid, time and delay aside)');
		},
	},
	{
		heading => 'Verification',
		kind => 'output',
		needle => 'row count expectation failed for table "workflows"',
		run => sub {
			my ($shown) = @_;
			# 141 workflows; the migration inserts 227 where 226 are expected
			my $db = fresh_db('expectation', q{
				CREATE EXTENSION migrate;
				CREATE TABLE workflows (id int PRIMARY KEY);
				INSERT INTO workflows SELECT g FROM generate_series(1, 141) g;
				SELECT migrate_add('004', 'migrate workflows',
				                   $$INSERT INTO workflows SELECT g FROM generate_series(142, 368) g$$,
				                   expect => '{"workflows": "+226"}');
			});
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_apply();\n");
			same_messages($shown, join('', grep { !/^NOTICE/ } map { $_->[1] } messages($err)), [],
				'a failed expectation is reported as shown');
		},
	},
	{
		heading => 'Verification',
		kind => 'output',
		needle => 'foreign key constraint "tasks_tool_id_fkey"',
		run => sub {
			my ($shown) = @_;
			# a task of tool 999, which does not exist, written before the
			# constraint was added NOT VALID; migration 003 writes tasks
			my $db = fresh_db('foreign_key', q{
				CREATE EXTENSION migrate;
				CREATE TABLE tools (id int PRIMARY KEY, name text);
				INSERT INTO tools VALUES (1, 'hammer');
				CREATE TABLE tasks (id int PRIMARY KEY, tool_id int);
				INSERT INTO tasks VALUES (1, 999);
				ALTER TABLE tasks ADD CONSTRAINT tasks_tool_id_fkey FOREIGN KEY (tool_id) REFERENCES tools NOT VALID;
				SELECT migrate_add('003', 'more tasks', 'INSERT INTO tasks VALUES (2, 1)');
			});
			my ($rc, $out, $err) = psql_as_reader($db, "SELECT * FROM migrate_apply();\n");
			same_messages($shown, join('', grep { !/^NOTICE/ } map { $_->[1] } messages($err)), [],
				'a violated foreign key is reported as shown');
		},
	},
	{
		heading => 'Verification',
		kind => 'sql',
		needle => q{SET migrate.verify_constraints = 'all';},
		run => sub {
			my ($block) = @_;
			my $db = fresh_db('verify_all', 'CREATE EXTENSION migrate');
			my ($rc, $out, $err) = psql_as_reader($db, $block . "SHOW migrate.verify_constraints;\n", extra => ['-At']);
			is($rc, 0, 'SET migrate.verify_constraints runs as written') or diag($err);
			is($out, "all\n", '... and sets it');
		},
	},
	{
		heading => 'Concurrency and crashes',
		kind => 'output',
		needle => 'could not obtain the migration lock',
		run => sub {
			my ($shown) = @_;
			# what the DETAIL names: a session of role app, application
			# psql, in a transaction that applied (and holds the lock); the
			# waiting session's lock_timeout is 200ms
			my $db = fresh_db('migration_lock', q{
				CREATE EXTENSION migrate;
				GRANT EXECUTE ON FUNCTION migrate_apply(text, boolean, boolean, text) TO app;
			});
			my $holder = $node->background_psql($db, extra_params => [ '-U', 'app' ]);
			$holder->query_safe(q{SET application_name = 'psql'; BEGIN; SELECT count(*) FROM migrate_apply();});
			my ($rc, $out, $err) = psql_as_reader($db, "SET lock_timeout = '200ms';\nSELECT * FROM migrate_apply();\n");
			$holder->quit;
			same_messages($shown, join('', map { $_->[1] } messages($err)), [qw(pid timestamp)],
				'a migration lock not obtained in time is reported as shown (pid and time aside)');
		},
	},
	{
		heading => 'Security',
		kind => 'sql',
		needle => 'TO deployer;',
		run => \&grants,
	},
);

# ---- the grants of a deployer and of an auditor, in a database where the
# deployer may create tables (what its migrations do)
sub grants
{
	my ($block) = @_;
	sql('postgres', q{
		CREATE ROLE deployer LOGIN;
		CREATE ROLE auditor LOGIN;
	});
	my $db = fresh_db('granted', 'CREATE EXTENSION migrate; GRANT CREATE ON SCHEMA public TO deployer;');
	my ($rc, $out, $err) = psql_as_reader($db, $block);
	is($rc, 0, 'the grants run as written') or diag($err);
	my $as = sub {
		my ($role, $sql) = @_;
		return $node->psql($db, $sql,
			connstr => $node->connstr($db) . " user=$role", extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
	};
	for my $case (
		[ q{SELECT migrate_add('1', 'accounts', 'CREATE TABLE accounts (id int PRIMARY KEY)', "assert" => 'SELECT true') IS NOT NULL}, 'migrate_add' ],
		[ q{SELECT count(*) FROM migrate_add_scripts(ARRAY['2_more.sql'], ARRAY['CREATE TABLE more (id int)'])}, 'migrate_add_scripts' ],
		[ q{SELECT count(*) FROM migrate_plan()}, 'migrate_plan' ],
		[ q{SELECT count(*) FROM migrate_lint()}, 'migrate_lint' ],
		[ q{SELECT count(*) FROM migrate_apply('1')}, 'migrate_apply' ],
		[ q{CALL migrate_run()}, 'migrate_run' ],
		[ q{SELECT count(*) FROM migrate_status()}, 'migrate_status' ],
		[ q{SELECT count(*) FROM migrate_validate()}, 'migrate_validate' ])
	{
		my ($rc, $out, $err) = $as->('deployer', $case->[0]);
		is($rc, 0, "the deployer of the README calls $case->[1]") or diag($err);
	}
	is(sql($db, q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
		'1:applied,2:applied', '... and applied both migrations');
	for my $case (
		[ q{SELECT count(*) FROM migrate_status()}, 'migrate_status' ],
		[ q{SELECT count(*) FROM migrate_validate()}, 'migrate_validate' ],
		[ q{SELECT count(*) FROM migrate_plan()}, 'migrate_plan' ],
		[ q{SELECT count(*) FROM migrate_lint()}, 'migrate_lint' ],
		[ q{SELECT count(*) FROM migrate_check()}, 'migrate_check' ],
		[ q{SELECT count(*) FROM migrate.history}, 'migrate.history' ])
	{
		my ($rc, $out, $err) = $as->('auditor', $case->[0]);
		is($rc, 0, "the auditor of the README reads $case->[1]") or diag($err);
	}
	my ($arc, $aout, $aerr) = $as->('auditor', q{SELECT migrate_add('3', 'x', 'SELECT 1')});
	isnt($arc, 0, 'the auditor cannot register');
	like($aerr, qr/permission denied for function migrate_add/, '... 42501');
}

# ---------------------------------------------------------------- matching
# Each sql and output block to exactly one entry, each entry to exactly one block.
my %matched;
my ($ran, $compared, $skipped) = (0, 0, 0);
my @todo;
for my $b (@readme_blocks)
{
	my $kind = $b->{lang} eq 'sql' ? 'sql' : $b->{lang} eq '' ? 'output' : $b->{lang} eq 'sh' ? next : undef;
	my $where = "README.md line $b->{line} (under \"$b->{heading}\")";
	if (!defined $kind)
	{
		fail("$where: a ```$b->{lang} block; this test knows sql, sh and output blocks");
		next;
	}
	my @entries = grep {
		$_->{kind} eq $kind && index($b->{heading}, $_->{heading}) == 0 && index($b->{text}, $_->{needle}) >= 0
	} @BLOCKS;
	if (@entries != 1)
	{
		fail(@entries
			? "$where: the $kind block is named by " . scalar(@entries) . ' entries of test/t/024_readme.pl'
			: "$where: the $kind block is neither run nor skipped by test/t/024_readme.pl: add it to \@BLOCKS");
		diag($b->{text});
		next;
	}
	$matched{ $entries[0] }++;
	push @todo, [ $b, $entries[0], $where ];
}
for my $e (@BLOCKS)
{
	my $n = $matched{$e} // 0;
	fail("the entry for the $e->{kind} block under \"$e->{heading}\" with \"$e->{needle}\" names $n blocks of README.md")
	  if $n != 1;
}

# ---------------------------------------------------------------- running
for my $t (@todo)
{
	my ($b, $e, $where) = @$t;
	if ($e->{skip})
	{
		note("$where: skipped: $e->{skip}");
		$skipped++;
		next;
	}
	note("$where: $e->{kind} block");
	$e->{run}->($b->{text});
	$e->{kind} eq 'sql' ? $ran++ : $compared++;
}
note("README.md: $ran sql blocks run, $compared output blocks compared, $skipped blocks skipped");
cmp_ok($ran + $compared + $skipped, '==', scalar(@BLOCKS), 'every sql and output block of the README is run, compared or skipped');

$node->stop;
done_testing();
