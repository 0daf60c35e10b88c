# What the Perl tests that run psql like a user share (test/t/005_real_directories.pl,
# test/t/021_commit_points.pl): psql with its exit code and both outputs, a
# query that must work, and writing files byte for byte.
package MigratePsql;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;

our @EXPORT_OK = qw(run_psql query spew);

# Run psql against $db of $node; returns (exit code, stdout, stderr).
# Options: user, file (run with -f FILE), stdin (a command piped into psql),
# single_transaction.
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

1;
