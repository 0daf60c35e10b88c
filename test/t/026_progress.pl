# While a long migration runs, the session that runs it hears so: a
# migration still running 3 s after it started says so (which statement of
# how many, and its line) before its next statement, once; a short one says
# nothing until it ends.  Another session sees in pg_stat_activity.query
# which migration and statement run (polled, not slept for).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('progress');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION migrate;
    SELECT migrate_add('001', 'quick', E'CREATE TABLE quick (id int);\nINSERT INTO quick VALUES (1);');
    SELECT migrate_add('002', 'slow', E'CREATE TABLE slow (id int);\nSELECT pg_sleep(3.2);\n\nINSERT INTO slow VALUES (1);\nINSERT INTO slow VALUES (2);');
});

my $apply = $node->background_psql('postgres');
$apply->query_until(qr/started/, q{\echo started
SELECT version, action FROM migrate_apply();
\echo done
});
ok( $node->poll_query_until('postgres', q{
        SELECT count(*) = 1 FROM pg_stat_activity
         WHERE wait_event = 'PgSleep' AND query LIKE '/* migrate: Migration 002 "slow", statement 2 of 4, line 2 */ SELECT pg_sleep(3.2)'}),
	'pg_stat_activity.query shows the running migration and statement');
$apply->query_until(qr/done/, '');
my $err = $apply->{stderr};
$apply->quit;

like($err, qr/NOTICE:  \[1\/2\] 001 quick \.\.\. ok \d+ ms/, 'the short migration: its result only');
unlike($err, qr/001 quick \.\.\. running/, '... and no running notice');
like($err, qr/NOTICE:  \[2\/2\] 002 slow \.\.\. running for \d+ s, now statement 3 of 4 \(line 4\)\n.*NOTICE:  \[2\/2\] 002 slow \.\.\. ok \d+ ms/s,
	'the long one says it is running, at the statement after 3 s (its line), then its result');
is(() = $err =~ /002 slow \.\.\. running/g, 1, '... once');

done_testing();
