-- Row-count expectations that need no count, and those that must count:
-- an unchanged ("=") table is proven by this transaction's statistics when
-- no row of it was inserted or deleted; a change made where migrate's parser
-- cannot see it (a DO block, a function) is still caught, by counting the
-- table as it was before the migration and as it is after.
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true
BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
SET LOCAL client_min_messages = warning;
SELECT plan(15);

CREATE TABLE protected (id int PRIMARY KEY);
INSERT INTO protected SELECT generate_series(1, 100);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
INSERT INTO parted SELECT generate_series(1, 50);

-- 1: the table is not touched: proven unchanged, no count
SELECT migrate_add('1', 'untouched', 'CREATE TABLE other (id int)', expect => '{"protected": "="}');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'an untouched protected table passes');
SELECT is((SELECT counts->'protected' FROM migrate.history WHERE version = '1' AND action = 'apply'),
          '{"expect": "=", "unchanged": "no row inserted or deleted"}'::jsonb,
          'history says it was proven unchanged, without counting');

-- 2: an UPDATE does not change the count: still proven
SELECT migrate_add('2', 'update', 'UPDATE protected SET id = id + 1000', expect => '{"protected": "="}');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'an UPDATE keeps the count');
SELECT is((SELECT counts->'protected' FROM migrate.history WHERE version = '2' AND action = 'apply'),
          '{"expect": "=", "unchanged": "no row inserted or deleted"}'::jsonb,
          'an UPDATE inserts and deletes no row: proven unchanged without counting');

-- 2b: a table a statement truncates is counted before, as the statistics cannot tell
SELECT migrate_add('2.1', 'refill', 'TRUNCATE protected; INSERT INTO protected SELECT generate_series(1, 100)',
                   expect => '{"protected": "="}');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'a refill to the same count passes');
SELECT is((SELECT counts->'protected' FROM migrate.history WHERE version = '2.1' AND action = 'apply'),
          '{"expect": "=", "before": 100, "after": 100}'::jsonb,
          'a table the statements truncate is counted before and after');

-- 3: a row inserted in a DO block, which the parser cannot see, is caught
SELECT migrate_add('3', 'hidden insert',
                   $m$DO $do$ BEGIN INSERT INTO protected VALUES (5000); END $do$$m$,
                   expect => '{"protected": "="}');
SELECT throws_ok('SELECT * FROM migrate_apply()', '23000',
                 'row count expectation failed for table "protected": expected 100 (unchanged from 100), found 101',
                 'an insert hidden in a DO block is counted and refused');

-- 4: a hidden insert and delete that cancel out: counted, and passes
SELECT migrate_add('3', 'hidden insert',
                   $m$DO $do$ BEGIN INSERT INTO protected VALUES (5000); DELETE FROM protected WHERE id = 5000; END $do$$m$,
                   expect => '{"protected": "="}');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'a net-zero hidden change passes');
SELECT is((SELECT counts->'protected' FROM migrate.history WHERE version = '3' AND action = 'apply'),
          '{"expect": "=", "before": 100, "after": 100}'::jsonb,
          'history has both counts, the before count taken through the earlier snapshot');

-- 5: a TRUNCATE hidden in a DO block cannot be checked: refused, with a way on
SELECT migrate_add('4', 'hidden truncate',
                   $m$DO $do$ BEGIN TRUNCATE protected; INSERT INTO protected SELECT generate_series(1, 100); END $do$$m$,
                   expect => '{"protected": "="}');
SELECT throws_ok('SELECT * FROM migrate_apply()', '55000',
                 'cannot check the unchanged row count of table "protected"',
                 'a hidden TRUNCATE cannot be proven unchanged');
SELECT migrate_add('4', 'hidden truncate',
                   $m$DO $do$ BEGIN TRUNCATE protected; INSERT INTO protected SELECT generate_series(1, 100); END $do$$m$,
                   expect => '{"protected": 100}');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'an exact count works there');

-- 6: partitioned tables are always counted (their rows live in partitions)
SELECT migrate_add('5', 'partitions', 'INSERT INTO parted VALUES (999)', expect => '{"parted": "="}');
SELECT throws_ok('SELECT * FROM migrate_apply()', '23000',
                 'row count expectation failed for table "parted": expected 50 (unchanged from 50), found 51',
                 'a partitioned table is counted');
SELECT migrate_add('5', 'partitions', 'INSERT INTO parted_1 VALUES (999); DELETE FROM parted WHERE id = 999',
                   expect => '{"parted": "="}');
SELECT is((SELECT counts->'parted' FROM migrate.history WHERE version = '5' AND action = 'apply'),
          NULL, 'not applied yet');
SELECT is((SELECT count(*) FROM migrate_apply()), 1::bigint, 'a net-zero change of a partition passes');

-- 7: the caller's rights: an expectation on a table the caller cannot read fails
CREATE ROLE expect_reader;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
                          migrate_apply(text, boolean, boolean, text) TO expect_reader;
GRANT CREATE ON SCHEMA public TO expect_reader;
SELECT migrate_add('6', 'no rights', 'CREATE TABLE mine (id int)', expect => '{"protected": "="}');
SET LOCAL ROLE expect_reader;
SELECT throws_ok('SELECT * FROM migrate_apply()', '42501', 'permission denied for table protected',
                 'an unchanged expectation needs the right to read the table');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
