# Memory that does not grow with the data: a SELECT in a migration sends its
# rows nowhere (DestNone, as pg_cron runs commands), so a 3,000,000-row SELECT
# costs the backend no more than a few MB, and `rows` counts rows written, not
# rows returned.  Measured as the backend's peak resident memory (VmHWM in
# /proc/<pid>/status, read by the same session with pg_read_file).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs /proc' unless -r "/proc/$$/status";

my $node = PostgreSQL::Test::Cluster->new('memory');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION migrate');
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int);
	SELECT migrate_add('001', 'a big select', 'SELECT g, repeat(''x'', 20) FROM generate_series(1, 3000000) g');
	SELECT migrate_add('002', 'a small write', 'INSERT INTO t SELECT generate_series(1, 5)');
});

# in one session: the peak before, the apply, the peak after (kB)
my $out = $node->safe_psql('postgres', q{
	CREATE FUNCTION pg_temp.peak_kb() RETURNS bigint LANGUAGE sql AS $$
	    SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+) kB'))[1]::bigint
	$$;
	SELECT pg_temp.peak_kb();
	SELECT string_agg(version || '=' || rows, ',' ORDER BY version) FROM migrate_apply();
	SELECT pg_temp.peak_kb();
});
my ($before, $rows, $after) = split /\n/, $out;
like($before, qr/^\d+$/, "peak memory read before the apply ($before kB)");
is($rows, '001=0,002=5', 'rows counts rows written: the SELECT wrote none, the INSERT 5');
my $grown_mb = ($after - $before) / 1024;
note(sprintf('peak resident memory grew by %.1f MB over a 3,000,000-row SELECT', $grown_mb));
cmp_ok($grown_mb, '<', 64,
	'a 3,000,000-row SELECT in a migration does not keep its rows (peak grew by less than 64 MB)');

$node->stop;
done_testing();
