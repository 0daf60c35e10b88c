--
-- 17_batch: batched data migrations: every registration error with its
-- SQLSTATE, the file directive, migrate_apply() leaving them pending, and a
-- small job that walks keys of several types.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;

CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE SCHEMA batch;
SET search_path = batch, public;
CREATE TABLE legacy (id bigint PRIMARY KEY, title text NOT NULL, n int NOT NULL DEFAULT 0, code text NOT NULL UNIQUE,
                     maybe int UNIQUE, plain int NOT NULL, pt point NOT NULL DEFAULT '(0,0)');
CREATE UNIQUE INDEX legacy_pt ON legacy (plain) WHERE plain > 0;
INSERT INTO legacy (id, title, code, maybe, plain) SELECT g, 'task ' || g, 'c' || g, g, g FROM generate_series(1, 50) g;
CREATE TABLE two_keys (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE no_key (a int NOT NULL);
CREATE VIEW legacy_view AS SELECT * FROM legacy;
CREATE TABLE tasks (id bigint PRIMARY KEY, title text NOT NULL);

-- the options
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '[1]')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": ""}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": 5}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "rows": 5}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "size": 0}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "size": 1000001}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "size": 2.5}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "size": "100"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "pause": "soon"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "pause": "2 hours"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "target": "1 ms"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "target": true}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "size": 10, "target": "1s"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}', transactional => false)$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('R__x', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "a.b.c.d"}')$$);

-- the statement
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2; UPDATE legacy SET n = 2 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', '-- nothing but a comment', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'SELECT * FROM legacy WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'ALTER TABLE legacy ADD COLUMN z int', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = $3 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2 AND', batch => '{"table": "legacy"}')$$);

-- the table and its key, when the table exists
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy_view"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "key": "nope"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "key": "ctid"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "key": "maybe"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "key": "plain"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy", "key": "pt"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "two_keys"}')$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "no_key"}')$$);
-- a key whose equal values may differ (a nondeterministic collation)
CREATE COLLATION batch_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE by_ci (k text COLLATE batch_ci PRIMARY KEY, n int NOT NULL DEFAULT 0);
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE by_ci SET n = 1 WHERE k > $1 AND k <= $2', batch => '{"table": "by_ci"}')$$);

-- a role that may not read the table cannot register a walk of it (nor lock it meanwhile)
CREATE ROLE regress_batch_nobody;
GRANT USAGE ON SCHEMA batch TO regress_batch_nobody;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
    pg_temp.sqlstate_of(text) TO regress_batch_nobody;
SET ROLE regress_batch_nobody;
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'x', 'UPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2', batch => '{"table": "legacy"}')$$);
RESET ROLE;
REVOKE ALL ON SCHEMA batch FROM regress_batch_nobody;
REVOKE ALL ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
    pg_temp.sqlstate_of(text) FROM regress_batch_nobody;
DROP ROLE regress_batch_nobody;
SELECT count(*) AS registered FROM migrate.migrations;

-- a table that does not exist yet is checked when a job runs the migration
SELECT migrate_add('001', 'later', 'UPDATE later SET n = 1 WHERE id > $1 AND id <= $2',
                   batch => '{"table": "later", "size": 100}') IS NOT NULL AS registered;
SELECT notes FROM migrate.status WHERE version = '001';

-- a key other than the primary key, and a data-modifying WITH; in a file, the directive
SELECT migrate_add('002', 'copy', $$WITH moved AS (UPDATE legacy SET n = n + 1 WHERE code > $1 AND code <= $2 RETURNING id, title)
    INSERT INTO tasks SELECT id, title FROM moved$$,
                   batch => '{"table": "legacy", "key": "code", "size": 7, "pause": "1 ms"}',
                   expect => '{"tasks": "+50"}') IS NOT NULL AS registered;
SELECT file, version, result FROM migrate_add_script('003_bump.sql', $$-- migrate:batch {"table": "batch.legacy", "target": "50 ms"}
UPDATE legacy SET n = n + 10 WHERE id > $1 AND id <= $2;
$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_add_script('004_x.sql', E'-- migrate:batch [1]\nUPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2;')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_add_script('004_x.sql', E'-- migrate:batch {"table": "legacy"}\n-- migrate:batch {"table": "legacy"}\nUPDATE legacy SET n = 1 WHERE id > $1 AND id <= $2;')$$);
SELECT version, notes FROM migrate.status ORDER BY version_key;

-- new options for a pending migration: an update, in history
SELECT migrate_add('002', 'copy', $$WITH moved AS (UPDATE legacy SET n = n + 1 WHERE code > $1 AND code <= $2 RETURNING id, title)
    INSERT INTO tasks SELECT id, title FROM moved$$,
                   batch => '{"table": "legacy", "key": "code", "size": 9}',
                   expect => '{"tasks": "+50"}') IS NOT NULL AS registered;
SELECT version, action FROM migrate.history WHERE version = '002' ORDER BY id;

-- migrate_apply() and its dry run leave them pending; the plan says why
SELECT migrate_add('000', 'later table', 'CREATE TABLE later (id int PRIMARY KEY, n int)') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, action FROM migrate_apply();
SELECT version, reason FROM migrate_plan();
SELECT problem, version, detail FROM migrate_validate() WHERE problem = 'needs worker' ORDER BY version;

-- a job runs them
SET migrate.batch_max_blocked = -1;
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT state, steps_done, steps_total, batches_done, rows_done, note, error_message FROM migrate.jobs WHERE id = :job;
SELECT n, count(*) FROM legacy GROUP BY n ORDER BY n;
SELECT count(*) AS tasks FROM tasks;
SELECT version, state FROM migrate_status() ORDER BY version;
SELECT version, rows_affected, detail->'batches' AS batches FROM migrate.history WHERE action = 'apply' ORDER BY id;
SELECT count(*) AS checkpoints FROM migrate.batch_progress;

-- keys of other types: uuid, text, timestamptz, numeric; an empty table
CREATE TABLE by_uuid (id uuid PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO by_uuid (id) SELECT md5(g::text)::uuid FROM generate_series(1, 40) g;
INSERT INTO by_uuid (id) VALUES ('00000000-0000-0000-0000-000000000001');
CREATE TABLE by_time (at timestamptz PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO by_time (at) SELECT '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 30) g;
CREATE TABLE by_num (k numeric PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO by_num (k) SELECT g / 7.0 - 3 FROM generate_series(1, 30) g;
CREATE TABLE empty_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
SELECT migrate_add('010', 'uuid', 'UPDATE by_uuid SET n = n + 1 WHERE id > $1 AND id <= $2', batch => '{"table": "by_uuid", "size": 6}') IS NOT NULL AS registered;
SELECT migrate_add('011', 'time', 'UPDATE by_time SET n = n + 1 WHERE at > $1 AND at <= $2', batch => '{"table": "by_time", "size": 4}', expect => '{"by_time": "="}') IS NOT NULL AS registered;
SELECT migrate_add('012', 'numeric', 'UPDATE by_num SET n = n + 1 WHERE k > $1 AND k <= $2', batch => '{"table": "by_num", "size": 8}') IS NOT NULL AS registered;
SELECT migrate_add('013', 'empty', 'UPDATE empty_t SET n = n + 1 WHERE id > $1 AND id <= $2', batch => '{"table": "empty_t"}') IS NOT NULL AS registered;
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT state, steps_done, error_message FROM migrate.jobs WHERE id = :job;
SELECT 'uuid' AS t, n, count(*) FROM by_uuid GROUP BY n
UNION ALL SELECT 'time', n, count(*) FROM by_time GROUP BY n
UNION ALL SELECT 'numeric', n, count(*) FROM by_num GROUP BY n ORDER BY 1, 2;
SELECT version, rows_affected, detail->'batches' AS batches FROM migrate.history WHERE action = 'apply' AND version >= '010' ORDER BY id;

-- a key that is the smallest value of its type cannot be walked: the job fails and says why
CREATE TABLE tiny (id smallint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO tiny (id) VALUES (-32768), (1);
SELECT migrate_add('020', 'tiny', 'UPDATE tiny SET n = n + 1 WHERE id > $1 AND id <= $2', batch => '{"table": "tiny"}') IS NOT NULL AS registered;
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT state, error_sqlstate, error_message FROM migrate.jobs WHERE id = :job;
SELECT n, count(*) FROM tiny GROUP BY n;

-- a table that did not exist at registration, and still does not when the job
-- reaches the migration: the job fails with the registration's error
SELECT version, action FROM migrate_remove('020');
SELECT migrate_add('030', 'gone', 'UPDATE gone SET n = 1 WHERE id > $1 AND id <= $2',
                   batch => '{"table": "gone"}') IS NOT NULL AS registered;
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT state, error_sqlstate, error_message FROM migrate.jobs WHERE id = :job;
SELECT version, state FROM migrate_status() WHERE version = '030';
