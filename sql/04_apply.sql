--
-- 04_apply: migrate_plan(), migrate_apply() and migrate_status() on a
-- realistic plan.  Progress NOTICEs carry timings, so client_min_messages is
-- warning around every apply.
--
-- a fresh catalog
DROP EXTENSION migrate;
CREATE EXTENSION migrate;

-- SQLSTATE and message of an error, to show error codes in this file
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- status without timestamps
CREATE VIEW pg_temp.status AS
SELECT version, name, kind, state, left(checksum, 12) AS checksum,
       left(applied_checksum, 12) AS applied_checksum, applied_by, transactional, requires
  FROM migrate.status ORDER BY version_key;
CREATE VIEW pg_temp.applied AS
SELECT version, name, applied_by, touched FROM migrate.applied ORDER BY version_key;

CREATE SCHEMA app;
SET search_path = app, public;

-- the data before the plan
CREATE TABLE dh_tool AS SELECT g AS id, 'tool ' || g AS name FROM generate_series(1, 150) g;
CREATE TABLE dh_workflow AS SELECT 1000 + g AS id, 'workflow ' || g AS title FROM generate_series(1, 12) g;
CREATE TABLE prompts AS SELECT g AS id, 'prompt ' || g AS body FROM generate_series(1, 40) g;

-- the plan
SELECT left(migrate_add('001', 'create tools',
    $$CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL);$$,
    down => 'DROP TABLE tools;',
    expect => '{"tools": 0}'), 12) AS checksum;
SELECT left(migrate_add('002', 'seed tools',
    $$INSERT INTO tools SELECT id, name FROM dh_tool;$$,
    expect => '{"tools": 150, "dh_tool": "=", "prompts": "="}'), 12) AS checksum;
SELECT left(migrate_add('003', 'workflows',
    $$CREATE TABLE workflows (id int PRIMARY KEY, title text NOT NULL);
      INSERT INTO workflows SELECT id, title FROM dh_workflow;
      INSERT INTO workflows SELECT 2000 + g, 'extra ' || g FROM generate_series(1, 3) g;$$,
    expect => '{"workflows": 15}',
    verify => 'SELECT count(*) = 3 FROM workflows WHERE id > 2000;'), 12) AS checksum;
SELECT left(migrate_add('004', 'tasks',
    $$CREATE TABLE tasks (id int PRIMARY KEY,
                          workflow_id int NOT NULL REFERENCES workflows,
                          tool_id int REFERENCES tools,
                          CHECK (id > 0));
      INSERT INTO tasks SELECT g, 1000 + (g % 12) + 1, g FROM generate_series(1, 30) g;$$,
    expect => '{"tasks": "+30", "tools": "="}',
    requires => '{003}'), 12) AS checksum;

SELECT * FROM migrate_plan();
SELECT * FROM migrate_plan(target => '002');
SELECT * FROM pg_temp.status;

-- a dry run does everything, returns 'dry run' rows, and keeps nothing
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true);
RESET client_min_messages;
SELECT * FROM pg_temp.status;
SELECT to_regclass('app.tools') AS tools, to_regclass('app.tasks') AS tasks;
SELECT count(*) AS applied_rows FROM migrate.applied;
SELECT action, count(*) FROM migrate.history GROUP BY action ORDER BY action;

-- inside an explicit transaction that rolls back, nothing is kept either
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT version, action FROM migrate_apply();
SELECT version, state FROM pg_temp.status;
ROLLBACK;
SELECT version, state FROM pg_temp.status;
SELECT to_regclass('app.tools') AS tools;

-- only up to a target
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply(target => '002');
RESET client_min_messages;
SELECT * FROM pg_temp.status;
SELECT * FROM pg_temp.applied;
SELECT count(*) AS tools FROM tools;

-- a bad target
SELECT * FROM migrate_apply(target => 'latest');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply(target => 'latest')$$);
SELECT * FROM migrate_plan(target => 'latest');

-- a migration registered late under an older version runs only when asked
SELECT left(migrate_add('001.1', 'late fix',
    $$UPDATE tools SET name = upper(name) WHERE id <= 10;$$,
    expect => '{"tools": "="}'), 12) AS checksum;
SELECT version, name, state FROM pg_temp.status;
SELECT * FROM migrate_plan();
SELECT * FROM migrate_validate();
SET client_min_messages = warning;
SELECT version, action FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
SELECT version, name, action, rows, checks FROM migrate_apply(target => '001.1', out_of_order => true);
RESET client_min_messages;
SELECT count(*) FILTER (WHERE name = upper(name)) AS upper_names FROM tools;
SELECT version, name, state FROM pg_temp.status;

-- requirements reorder the plan: 005 requires 007, so 007 runs first (a
-- requirement must be registered before the migration that requires it)
SELECT left(migrate_add('006', 'prompt tags',
    $$ALTER TABLE prompts ADD COLUMN tag text;$$), 12) AS checksum;
SELECT left(migrate_add('007', 'categories',
    $$CREATE TABLE categories (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO categories VALUES (1, 'hand'), (2, 'power'), (3, 'garden');$$,
    expect => '{"categories": 3}'), 12) AS checksum;
SELECT left(migrate_add('005', 'tool categories',
    $$ALTER TABLE tools ADD COLUMN category_id int REFERENCES categories;
      UPDATE tools SET category_id = 1 + id % 3;$$,
    requires => '{007}'), 12) AS checksum;
SELECT * FROM migrate_plan();
-- a target between 005 and 007 would leave 005 without 007
SELECT * FROM migrate_plan(target => '005');
SELECT * FROM migrate_apply(target => '005');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply(target => '005')$$);

-- a non-transactional migration in range is left pending: the rest of the
-- call runs, it gets a WARNING (with the way on) and a row 'left pending'
SELECT left(migrate_add('008', 'index tool names',
    $$CREATE INDEX CONCURRENTLY tools_name_idx ON tools (name);$$,
    transactional => false), 12) AS checksum;
SELECT * FROM migrate_plan();
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply();
RESET client_min_messages;
SELECT version, state, transactional FROM pg_temp.status;
SELECT to_regclass('app.workflows') AS workflows, to_regclass('app.categories') AS categories,
       to_regclass('app.tools_name_idx') AS tools_name_idx;
SELECT category_id, count(*) FROM tools GROUP BY category_id ORDER BY category_id;
-- older than the newest applied, it is still 'pending', not 'out of order':
-- it needs the background worker
SELECT problem, version, name FROM migrate_validate();
-- the next call leaves it pending again, without an error; a dry run too
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true);
-- a target before it does not reach it
SELECT version, name, action, rows, checks FROM migrate_apply(target => '007');
RESET client_min_messages;
SELECT version, state FROM pg_temp.status;

-- registered as transactional, CREATE INDEX CONCURRENTLY still makes the
-- migration non-transactional (nothing changes: no history row)
SELECT left(migrate_add('008', 'index tool names',
    $$CREATE INDEX CONCURRENTLY tools_name_idx ON tools (name);$$,
    transactional => true), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '008';
SELECT version, action FROM migrate.history WHERE version = '008' ORDER BY id;
-- hidden from registration (EXECUTE in a DO block), CREATE INDEX CONCURRENTLY
-- runs and fails with its own SQLSTATE
SELECT left(migrate_add('008', 'index tool names',
    $$DO $do$ BEGIN EXECUTE 'CREATE INDEX CONCURRENTLY tools_name_idx ON tools (name)'; END $do$;$$), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '008';
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
SELECT left(migrate_add('008', 'index tool names',
    $$CREATE INDEX tools_name_idx ON tools (name);$$), 12) AS checksum;

-- a statement that fails in the 3rd migration of a call: the error names the
-- migration, the statement and its line; the earlier migrations of the call
-- are rolled back with it
SELECT left(migrate_add('009', 'owners',
    $$CREATE TABLE owners (id int PRIMARY KEY, name text);
      INSERT INTO owners VALUES (1, 'ops');$$), 12) AS checksum;
SELECT left(migrate_add('010', 'more tools',
    $$INSERT INTO tools (id, name)
      SELECT 1000 + g, 'new tool ' || g
        FROM generate_series(1, 5) g;
      INSERT INTO tools (id, name)
      SELECT id, nme
        FROM dh_tool
       WHERE id = 1;$$), 12) AS checksum;
SELECT * FROM migrate_plan();
SET client_min_messages = warning;
SELECT version, action FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
RESET client_min_messages;
SELECT version, state FROM pg_temp.status;
SELECT to_regclass('app.owners') AS owners, to_regclass('app.tools_name_idx') AS tools_name_idx;
-- the original SQLSTATE and DETAIL are kept: a duplicate key
SELECT left(migrate_add('010', 'more tools',
    $$INSERT INTO tools (id, name)
      SELECT 1000 + g, 'new tool ' || g
        FROM generate_series(1, 5) g;
      INSERT INTO tools (id, name) VALUES (1, 'dup');$$), 12) AS checksum;
SET client_min_messages = warning;
SELECT version, action FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
RESET client_min_messages;
SELECT version, state FROM pg_temp.status;
SELECT left(migrate_add('010', 'more tools',
    $$INSERT INTO tools (id, name)
      SELECT 1000 + g, 'new tool ' || g
        FROM generate_series(1, 5) g;$$,
    expect => '{"tools": "+5"}'), 12) AS checksum;
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply();
RESET client_min_messages;

-- nothing pending: no rows
SELECT * FROM migrate_plan();
SELECT count(*) FROM migrate_apply();
SELECT count(*) FROM migrate_apply(dry_run => true);

SELECT * FROM pg_temp.status;
SELECT * FROM pg_temp.applied;
SELECT * FROM migrate_validate();

-- what history kept: one apply row per migration, with rows, checks and counts
SELECT version, action, rows_affected, checks, outcome, counts
  FROM migrate.history WHERE action = 'apply' ORDER BY id;
SELECT action, count(*) FROM migrate.history GROUP BY action ORDER BY action;
SELECT count(*) AS history_rows_with_duration FROM migrate.history
 WHERE action = 'apply' AND duration >= '0'::interval;

-- the way a web SQL editor sends it: several statements in one query string,
-- run as one implicit transaction
SET client_min_messages = warning;
SELECT left(migrate_add('011', 'suppliers', 'CREATE TABLE suppliers (id int PRIMARY KEY);'), 12) AS checksum\; SELECT left(migrate_add('012', 'seed suppliers', 'INSERT INTO suppliers VALUES (1), (2);', expect => '{"suppliers": 2}'), 12) AS checksum\; SELECT count(*) FROM migrate_apply();
SELECT version, state FROM pg_temp.status WHERE version >= '011';
-- and when the last statement fails, the registrations of the same string are gone too
SELECT left(migrate_add('013', 'vendors', 'CREATE TABLE vendors (id int PRIMARY KEY);'), 12) AS checksum\; SELECT left(migrate_add('014', 'seed vendors', 'INSERT INTO vendors VALUES (1), (1);'), 12) AS checksum\; SELECT count(*) FROM migrate_apply();
RESET client_min_messages;
SELECT version, state FROM pg_temp.status WHERE version >= '011';
SELECT to_regclass('app.vendors') AS vendors;

RESET search_path;
DROP SCHEMA app CASCADE;
