-- The same data-migration plan as data_plan.sql, with one wrong expectation:
-- 003 claims workflows "+226" but adds 227 rows.  The apply must fail with
-- 23000 and leave nothing behind: protected tables as they were, no new
-- tables, nothing applied, every migration pending.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
SET LOCAL client_min_messages = warning;

SELECT plan(43);

-- ---------------------------------------------------------------- setup
CREATE TABLE prompts      (id int PRIMARY KEY, body text NOT NULL);
CREATE TABLE jtbd_library (id int PRIMARY KEY, job text NOT NULL);
CREATE TABLE workflows    (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE agents       (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE personas     (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE dh_tool      (id int PRIMARY KEY, name text NOT NULL, category text NOT NULL);
INSERT INTO prompts      SELECT g, 'prompt ' || g   FROM generate_series(1, 3570) g;
INSERT INTO jtbd_library SELECT g, 'job ' || g      FROM generate_series(1, 371) g;
INSERT INTO workflows    SELECT g, 'workflow ' || g FROM generate_series(1, 141) g;
INSERT INTO agents       SELECT g, 'agent ' || g    FROM generate_series(1, 190) g;
INSERT INTO personas     SELECT g, 'persona ' || g  FROM generate_series(1, 210) g;
INSERT INTO dh_tool      SELECT g, 'tool ' || g, 'category ' || (g % 9) FROM generate_series(1, 150) g;

CREATE TEMP TABLE protected_before AS
SELECT 'agents' AS t, count(*) AS n, md5(string_agg(id || ':' || name, ',' ORDER BY id)) AS fp FROM agents
UNION ALL SELECT 'jtbd_library', count(*), md5(string_agg(id || ':' || job, ',' ORDER BY id)) FROM jtbd_library
UNION ALL SELECT 'personas', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM personas
UNION ALL SELECT 'prompts', count(*), md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM prompts
UNION ALL SELECT 'workflows', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM workflows;

CREATE VIEW protected_now AS
SELECT 'agents' AS t, count(*) AS n, md5(string_agg(id || ':' || name, ',' ORDER BY id)) AS fp FROM agents
UNION ALL SELECT 'jtbd_library', count(*), md5(string_agg(id || ':' || job, ',' ORDER BY id)) FROM jtbd_library
UNION ALL SELECT 'personas', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM personas
UNION ALL SELECT 'prompts', count(*), md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM prompts
UNION ALL SELECT 'workflows', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM workflows;

-- The error of a call, caught in a subtransaction (which rolls its work back).
CREATE FUNCTION pg_temp.error_of(sql text)
RETURNS TABLE (state text, message text, detail text, hint text, context text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    state := 'none';
    RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
                            context = PG_EXCEPTION_CONTEXT;
    RETURN NEXT;
END
$$;

-- ---------------------------------------------------------------- register
SELECT lives_ok($$
    SELECT migrate_add('001', 'create strategic priorities',
        'CREATE TABLE strategic_priorities (
             id    int PRIMARY KEY,
             title text NOT NULL,
             rank  int NOT NULL CHECK (rank BETWEEN 1 AND 7)
         );
         INSERT INTO strategic_priorities (id, title, rank)
         SELECT g, ''priority '' || g, g FROM generate_series(1, 7) g;',
        down => 'DROP TABLE strategic_priorities;',
        expect => '{"strategic_priorities": 7, "prompts": "=", "agents": "=", "personas": "="}')
$$, 'register 001');
SELECT lives_ok($$
    SELECT migrate_add('002', 'seed tools from dh_tool',
        'CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL UNIQUE, category text NOT NULL);
         INSERT INTO tools (id, name, category) SELECT id, name, category FROM dh_tool;',
        down => 'DROP TABLE tools;',
        expect => '{"tools": 150}')
$$, 'register 002');
SELECT lives_ok($$
    SELECT migrate_add('003', 'add workflows',
        'INSERT INTO workflows (id, name)
         SELECT 141 + g, ''imported workflow '' || g FROM generate_series(1, 116) g;
         INSERT INTO workflows (id, name)
         SELECT 257 + g, ''designed workflow '' || g FROM generate_series(1, 111) g;',
        down => 'DELETE FROM workflows WHERE id > 141;',
        expect => '{"workflows": "+226"}')
$$, 'register 003 with a wrong expectation (+226 instead of +227)');
SELECT lives_ok($$
    SELECT migrate_add('004', 'create tasks',
        'CREATE TABLE tasks (
             id          int PRIMARY KEY,
             workflow_id int NOT NULL REFERENCES workflows (id),
             title       text NOT NULL
         );
         INSERT INTO tasks (id, workflow_id, title)
         SELECT g, 1 + g % 368, ''task '' || g FROM generate_series(1, 343) g;',
        down => 'DROP TABLE tasks;',
        verify => 'SELECT count(*) = 343 FROM tasks;
                   SELECT NOT EXISTS (SELECT 1 FROM tasks t
                                       WHERE NOT EXISTS (SELECT 1 FROM workflows w
                                                          WHERE w.id = t.workflow_id));',
        expect => '{"tasks": 343, "workflows": "="}')
$$, 'register 004');

-- ---------------------------------------------------------------- the failing apply
SELECT throws_ok(
    $$SELECT * FROM migrate_apply()$$,
    '23000',
    'row count expectation failed for table "workflows": expected 367 (+226 from 141), found 368',
    'migrate_apply() fails on the wrong expectation of 003');

SELECT results_eq(
    $$SELECT state, detail, context LIKE '%applying migration 003 "add workflows" (3 of 4)%'
        FROM pg_temp.error_of('SELECT * FROM migrate_apply()')$$,
    $$VALUES ('23000',
              'Migration 003 expected a change of +226 rows in "workflows"; the table had 368 rows after it and 141 before it.',
              true)$$,
    'the error names the migration, the counts before and after, and its step');

SELECT results_eq($$SELECT t, n, fp FROM protected_now$$, $$SELECT t, n, fp FROM protected_before$$,
                  'all five protected tables are unchanged, row for row');
SELECT is((SELECT count(*) FROM workflows), 141::bigint, 'workflows still has 141 rows');
SELECT is((SELECT count(*) FROM prompts), 3570::bigint, 'prompts still has 3570 rows');
SELECT hasnt_table('strategic_priorities', 'strategic_priorities (from 001, before the failure) is gone');
SELECT hasnt_table('tools', 'tools (from 002, before the failure) is gone');
SELECT hasnt_table('tasks', 'tasks (004, after the failure) was never created');
SELECT is_empty($$SELECT * FROM migrate.applied$$, 'migrate.applied is empty');
SELECT results_eq(
    $$SELECT version, state, applied_at FROM migrate_status()$$,
    $$VALUES ('001', 'pending', NULL::timestamptz), ('002', 'pending', NULL),
             ('003', 'pending', NULL), ('004', 'pending', NULL)$$,
    'every migration is still pending');
SELECT results_eq(
    $$SELECT version, action FROM migrate.history ORDER BY id$$,
    $$VALUES ('001', 'register'), ('002', 'register'), ('003', 'register'), ('004', 'register')$$,
    'history holds only the registrations');
SELECT is(migrate_verify(), 0, 'migrate_verify() has nothing applied to check');
SELECT is_empty($$SELECT * FROM migrate_check()$$, 'migrate_check() has no rows');
SELECT results_eq($$SELECT step, version FROM migrate_plan()$$,
                  $$VALUES (1, '001'), (2, '002'), (3, '003'), (4, '004')$$,
                  'the plan is still the four migrations');

-- (a failing dry run is covered by dry_run.sql)

-- ---------------------------------------------------------------- up to the bad one
SELECT results_eq(
    $$SELECT version, action, rows FROM migrate_apply('002')$$,
    $$VALUES ('001', 'applied', 7::bigint), ('002', 'applied', 150::bigint)$$,
    'migrate_apply(''002'') applies the two migrations before the wrong one');
SELECT throws_ok(
    $$SELECT * FROM migrate_apply()$$,
    '23000',
    'row count expectation failed for table "workflows": expected 367 (+226 from 141), found 368',
    'applying the rest still fails on 003');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status()$$,
    $$VALUES ('001', 'applied'), ('002', 'applied'), ('003', 'pending'), ('004', 'pending')$$,
    'the earlier call''s 001 and 002 stay applied; 003 and 004 stay pending');
SELECT has_table('strategic_priorities', 'strategic_priorities (applied by the earlier call) exists');
SELECT has_table('tools', 'tools (applied by the earlier call) exists');
SELECT hasnt_table('tasks', 'tasks does not exist');
SELECT results_eq($$SELECT t, n, fp FROM protected_now$$, $$SELECT t, n, fp FROM protected_before$$,
                  'the protected tables are still unchanged');
SELECT is((SELECT count(*) FROM migrate.history WHERE action = 'apply'), 2::bigint,
          'history has two apply entries (001, 002), none for the failure');

-- ---------------------------------------------------------------- corrected expectation
SELECT lives_ok($$
    SELECT migrate_add('003', 'add workflows',
        'INSERT INTO workflows (id, name)
         SELECT 141 + g, ''imported workflow '' || g FROM generate_series(1, 116) g;
         INSERT INTO workflows (id, name)
         SELECT 257 + g, ''designed workflow '' || g FROM generate_series(1, 111) g;',
        down => 'DELETE FROM workflows WHERE id > 141;',
        expect => '{"workflows": "+227"}')
$$, 're-register 003 with the correct expectation');
SELECT is((SELECT action FROM migrate.history WHERE version = '003' ORDER BY id DESC LIMIT 1), 'update',
          'the corrected expectation is recorded as an update (same up script)');
SELECT is((SELECT expect FROM migrate.migrations WHERE version = '003'), '{"workflows": "+227"}'::jsonb,
          'the catalog holds the corrected expectation');
SELECT results_eq(
    $$SELECT version, action, rows, checks FROM migrate_apply()$$,
    $$VALUES ('003', 'applied', 227::bigint, 2), ('004', 'applied', 343::bigint, 5)$$,
    'now 003 and 004 apply');
SELECT is((SELECT count(*) FROM workflows), 368::bigint, 'workflows went from 141 to 368 rows');
SELECT is((SELECT count(*) FROM tasks), 343::bigint, 'tasks has 343 rows');
SELECT is((SELECT counts FROM migrate.history WHERE version = '003' AND action = 'apply'),
          '{"workflows": {"expect": "+227", "before": 141, "after": 368}}'::jsonb,
          'history counts of 003: +227, 141 -> 368');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status()$$,
    $$VALUES ('001', 'applied'), ('002', 'applied'), ('003', 'applied'), ('004', 'applied')$$,
    'all four are applied');
SELECT is(migrate_verify(), 12, 'migrate_verify() passes all 12 checks');
SELECT is_empty($$SELECT * FROM migrate_check() WHERE NOT ok$$, 'migrate_check() reports no failure');

-- a registered text change of an applied migration is drift: recorded, never run
SELECT lives_ok($$
    SELECT migrate_add('003', 'add workflows', 'INSERT INTO workflows VALUES (999, ''x'');')
$$, 'new text of an applied migration is registered (with a WARNING)');
SELECT is((SELECT state FROM migrate_status() WHERE version = '003'), 'changed', '... as changed');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$, '55000',
    'migrate_apply() refuses to apply while an applied migration is changed', '... and applying is refused');
SELECT is((SELECT count(*) FROM workflows WHERE id = 999), 0::bigint, '... the new text never ran');
SELECT is(migrate_add('003', 'add workflows',
        'INSERT INTO workflows (id, name)
         SELECT 141 + g, ''imported workflow '' || g FROM generate_series(1, 116) g;
         INSERT INTO workflows (id, name)
         SELECT 257 + g, ''designed workflow '' || g FROM generate_series(1, 111) g;',
        down => 'DELETE FROM workflows WHERE id > 141;',
        expect => '{"workflows": "+227"}'),
    (SELECT checksum FROM migrate.applied WHERE version = '003'),
    'registering the applied text again restores it, returning its checksum');
SELECT is((SELECT state FROM migrate_status() WHERE version = '003'), 'applied', '... applied again');
SELECT is((SELECT count(*) FROM migrate.history WHERE version = '003'), 5::bigint,
          '003 history: register, update, apply, replace (changed), replace (restored)');

SELECT * FROM finish();
ROLLBACK;
