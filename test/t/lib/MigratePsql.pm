# What the Perl tests that run psql like a user share (test/t/004_directories.pl,
# test/t/005_real_directories.pl, test/t/021_commit_points.pl): psql with its exit code and both outputs, a
# query that must work, writing files byte for byte, and comparing two texts
# with a diff shown when they differ.
package MigratePsql;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use Test::More;

our @EXPORT_OK = qw(run_psql query spew same_text);

# Run psql against $db of $node; returns (exit code, stdout, stderr).
# Options: user, file (run with -f FILE), stdin (a command piped into psql),
# command => 1 (send $sql as ONE query string, psql -c: simple query
# protocol, one implicit transaction), single_transaction.
sub run_psql
{
	my ($node, $db, $sql, %o) = @_;
	my $connstr = $node->connstr($db);
	$connstr .= " user=$o{user}" if $o{user};
	my @psql = ('psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-v',
		'VERBOSITY=verbose', '-d', $connstr);
	push @psql, '--single-transaction' if $o{single_transaction};
	my ($out, $err) = ('', '');
	my $ok;
	if ($o{stdin})
	{
		$ok = IPC::Run::run($o{stdin}, '|', \@psql, '>', \$out, '2>', \$err);
	}
	elsif ($o{command})
	{
		$ok = IPC::Run::run([ @psql, '-c', $sql ], '<', \undef, '>', \$out, '2>', \$err);
	}
	elsif ($o{file})
	{
		$ok = IPC::Run::run([ @psql, '-f', $o{file} ],
			'<', \undef, '>', \$out, '2>', \$err);
	}
	else
	{
		$ok = IPC::Run::run([ @psql, '-f', '-' ], '<', \$sql, '>', \$out,
			'2>', \$err);
	}
	chomp $out;
	return ($ok ? 0 : ($? >> 8 || 1), $out, $err);
}

# The output of SQL that must succeed.
sub query
{
	my ($node, $db, $sql, %o) = @_;
	my ($rc, $out, $err) = run_psql($node, $db, $sql, %o);
	die "query failed in database $db: $sql\n$err" if $rc;
	return $out;
}

# Write $text to $path as it is.
sub spew
{
	my ($path, $text) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $text;
	close($fh) or die "cannot write $path: $!";
	return;
}

# ok() when $got is $want; else a unified diff of both (written under $dir as $name.*).
sub same_text
{
	my ($dir, $name, $want, $got, $label) = @_;
	my $same = $want eq $got;
	return 1 if ok($same, $label);
	my ($fa, $fb) = ("$dir/$name.expected", "$dir/$name.actual");
	spew($fa, $want);
	spew($fb, $got);
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'diff', '-u', $fa, $fb ], '>', \$out, '2>', \$err);
	diag($out);
	return 0;
}

1;
