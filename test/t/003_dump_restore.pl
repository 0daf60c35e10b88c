# pg_dump keeps the catalog: a restored database knows what was applied,
# its history, and goes on registering and applying.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
    CREATE EXTENSION migrate;
    SET client_min_messages = warning;
    SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY)');
    SELECT migrate_add('002', 'seed', 'INSERT INTO tools SELECT generate_series(1, 5)',
                       expect => '{"tools": 5}');
    SELECT count(*) FROM migrate_apply();
    SELECT migrate_add('003', 'pending', 'SELECT 1');
});

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dump ], 'pg_restore');

is($node->safe_psql('dst', q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()}),
	'001:applied,002:applied,003:pending', 'restored status');
is($node->safe_psql('dst', q{SELECT count(*) FROM migrate.history}),
	$node->safe_psql('src', q{SELECT count(*) FROM migrate.history}), 'history restored');
is($node->safe_psql('dst', q{SELECT counts->'tools'->>'after' FROM migrate.history WHERE version = '002' AND action = 'apply'}),
	'5', 'counts restored');
# per migration: its checksum and the indexes of the table it touched
is($node->safe_psql('dst', 'SELECT migrate_verify()'), '4', 'restored migrations verify');
is($node->safe_psql('dst', 'SELECT migrate_verify()'), $node->safe_psql('src', 'SELECT migrate_verify()'),
	'as many checks as in the source database');

# the history sequence was dumped too: new rows do not collide with restored ones
is($node->safe_psql('dst', q{
    SET client_min_messages = warning;
    SELECT count(*) FROM migrate_apply();
    SELECT count(DISTINCT id) = count(*) FROM migrate.history;
}), "1\nt", 'apply after restore');

$node->stop;
done_testing();
