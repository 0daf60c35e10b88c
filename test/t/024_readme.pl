# The README runs as written: its quick start, run as it stands in a fresh
# database, prints the rows the README shows (version, name, action, rows,
# checks: durations aside); its grant example gives a deployer everything it
# takes to register, review, lint and apply (migrate_apply() and CALL
# migrate_run()), and an auditor everything it reads.  The SQL is taken from
# the README itself, so an edit that breaks an example breaks this test.
use strict;
use warnings;
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = "$FindBin::RealBin/../../README.md";
open(my $fh, '<', $readme) or die "cannot read $readme: $!";
my $text = do { local $/; <$fh> };
close $fh;

# The first ```sql block after a line matching $after (and one containing $needle, if given).
sub block_after
{
	my ($after, $needle) = @_;
	my $at = $text =~ /$after/g ? pos($text) : die "README has no $after";
	while ($text =~ /\G.*?^```sql\n(.*?)^```\n/msg)
	{
		my $sql = $1;
		return $sql if !defined $needle || $sql =~ /$needle/;
	}
	die "no sql block after $after";
}

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
$node->start;

# ---- the quick start
my $quick = block_after(qr/^## Quick start in psql$/m);
like($quick, qr/CREATE EXTENSION migrate;/, 'the quick start creates the extension itself');
$node->safe_psql('postgres', 'CREATE DATABASE quick');
my ($rc, $out, $err) = $node->psql('quick', $quick, extra_params => [ '-v', 'ON_ERROR_STOP=1', '-F', '|' ]);
is($rc, 0, 'the quick start runs as written') or diag($err);
# migrate_apply()'s rows: six columns, the third 'applied'
my @got = map { join('|', @{$_}[ 0, 1, 2, 4, 5 ]) }
  grep { @$_ == 6 && $_->[2] eq 'applied' } map { [ split /\|/, $_, -1 ] } split /\n/, $out;

# the rows the README shows for migrate_apply()
my ($shown) = $text =~ /and returns one row per migration:\n\n```\n(.*?)```/s;
ok(defined $shown, 'the README shows the rows migrate_apply() returns');
my @want = map { my @c = map { s/^\s+|\s+$//gr } split /\|/; join('|', @c[ 0, 1, 2, 4, 5 ]) }
  grep { /^\s*\d{8}_\d\d\s*\|/ } split /\n/, $shown // '';
is(scalar @want, 2, '... two of them');
is_deeply(\@got, \@want, 'migrate_apply() returns what the README shows (version, name, action, rows, checks)');
like($err, qr/NOTICE:  \[1\/2\] 20251110_01 strategic priorities \.\.\. ok \d+ ms/, '... and the NOTICE it shows');

# ---- the grants of a deployer and of an auditor
my $grants = block_after(qr/^- \*\*Grants\.\*\*/m, qr/TO deployer;/);
$node->safe_psql('postgres', q{
    CREATE ROLE deployer LOGIN;
    CREATE ROLE auditor LOGIN;
    CREATE DATABASE granted;
});
$node->safe_psql('granted', 'CREATE EXTENSION migrate; GRANT CREATE ON SCHEMA public TO deployer;');
$node->safe_psql('granted', $grants);
sub as
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('granted', $sql,
		connstr => $node->connstr('granted') . " user=$role", extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
	return ($rc, $out, $err);
}
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
	my ($rc, $out, $err) = as('deployer', $case->[0]);
	is($rc, 0, "the deployer of the README calls $case->[1]") or diag($err);
}
is($node->safe_psql('granted', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'1:applied,2:applied', '... and applied both migrations');
for my $case (
	[ q{SELECT count(*) FROM migrate_status()}, 'migrate_status' ],
	[ q{SELECT count(*) FROM migrate_validate()}, 'migrate_validate' ],
	[ q{SELECT count(*) FROM migrate_plan()}, 'migrate_plan' ],
	[ q{SELECT count(*) FROM migrate_lint()}, 'migrate_lint' ],
	[ q{SELECT count(*) FROM migrate_check()}, 'migrate_check' ],
	[ q{SELECT count(*) FROM migrate.history}, 'migrate.history' ])
{
	my ($rc, $out, $err) = as('auditor', $case->[0]);
	is($rc, 0, "the auditor of the README reads $case->[1]") or diag($err);
}
my ($arc, $aout, $aerr) = as('auditor', q{SELECT migrate_add('3', 'x', 'SELECT 1')});
isnt($arc, 0, 'the auditor cannot register');
like($aerr, qr/permission denied for function migrate_add/, '... 42501');

$node->stop;
done_testing();
