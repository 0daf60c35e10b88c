-- The data-migration plan from the users' write-up, applied for real:
-- five protected tables that must not change, then
--   001 strategic_priorities (7 rows, protected tables "=")
--   002 tools copied from the dh_tool source table (150 rows)
--   003 116 + 111 new workflows ("+227": 141 -> 368)
--   004 tasks (343 rows) with a foreign key to workflows and a verify query.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
-- migrate_apply() reports progress (with timings) as NOTICEs
SET LOCAL client_min_messages = warning;

SELECT plan(48);

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

-- a fingerprint of every protected table, to prove that they did not change
CREATE TEMP TABLE protected_before AS
SELECT 'prompts' AS t, count(*) AS n, md5(string_agg(id || ':' || body, ',' ORDER BY id)) AS fp FROM prompts
UNION ALL SELECT 'jtbd_library', count(*), md5(string_agg(id || ':' || job, ',' ORDER BY id)) FROM jtbd_library
UNION ALL SELECT 'workflows', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM workflows
UNION ALL SELECT 'agents', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM agents
UNION ALL SELECT 'personas', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM personas;

-- ---------------------------------------------------------------- register
SELECT is(
    migrate_add('001', 'create strategic priorities',
        $up$
CREATE TABLE strategic_priorities (
    id    int PRIMARY KEY,
    title text NOT NULL,
    rank  int NOT NULL CHECK (rank BETWEEN 1 AND 7)
);
INSERT INTO strategic_priorities (id, title, rank)
SELECT g, 'priority ' || g, g FROM generate_series(1, 7) g;
$up$,
        down => 'DROP TABLE strategic_priorities;',
        expect => '{"strategic_priorities": 7, "prompts": "=", "agents": "=", "personas": "="}'),
    migrate_checksum($up$
CREATE TABLE strategic_priorities (
    id    int PRIMARY KEY,
    title text NOT NULL,
    rank  int NOT NULL CHECK (rank BETWEEN 1 AND 7)
);
INSERT INTO strategic_priorities (id, title, rank)
SELECT g, 'priority ' || g, g FROM generate_series(1, 7) g;
$up$),
    'migrate_add returns the checksum of the up script');

SELECT lives_ok($$
    SELECT migrate_add('002', 'seed tools from dh_tool',
        'CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL UNIQUE, category text NOT NULL);
         INSERT INTO tools (id, name, category) SELECT id, name, category FROM dh_tool;',
        down => 'DROP TABLE tools;',
        expect => '{"tools": 150}')
$$, 'register 002 (tools from dh_tool)');

SELECT lives_ok($$
    SELECT migrate_add('003', 'add workflows',
        'INSERT INTO workflows (id, name)
         SELECT 141 + g, ''imported workflow '' || g FROM generate_series(1, 116) g;
         INSERT INTO workflows (id, name)
         SELECT 257 + g, ''designed workflow '' || g FROM generate_series(1, 111) g;',
        down => 'DELETE FROM workflows WHERE id > 141;',
        expect => '{"workflows": "+227"}')
$$, 'register 003 (workflows +227)');

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
$$, 'register 004 (tasks with a foreign key and a verify query)');

SELECT results_eq(
    $$SELECT version, state FROM migrate_status()$$,
    $$VALUES ('001', 'pending'), ('002', 'pending'), ('003', 'pending'), ('004', 'pending')$$,
    'all four migrations are pending');

SELECT results_eq(
    $$SELECT step, version, name, reason FROM migrate_plan()$$,
    $$VALUES (1, '001', 'create strategic priorities', 'version order'),
             (2, '002', 'seed tools from dh_tool', 'version order'),
             (3, '003', 'add workflows', 'version order'),
             (4, '004', 'create tasks', 'version order')$$,
    'migrate_plan lists the four migrations in version order');

SELECT is((SELECT count(*) FROM migrate.history WHERE action = 'register'), 4::bigint,
          'four register entries in history');
SELECT is_empty($$SELECT * FROM migrate_validate()$$, 'migrate_validate finds no problem before applying');

-- ---------------------------------------------------------------- dry run
SELECT results_eq(
    $$SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true)$$,
    $$VALUES ('001', 'create strategic priorities', 'dry run', 7::bigint, 6),
             ('002', 'seed tools from dh_tool', 'dry run', 150::bigint, 2),
             ('003', 'add workflows', 'dry run', 227::bigint, 2),
             ('004', 'create tasks', 'dry run', 343::bigint, 5)$$,
    'a dry run runs and checks all four migrations');
SELECT hasnt_table('strategic_priorities', 'the dry run left no strategic_priorities');
SELECT hasnt_table('tools', 'the dry run left no tools');
SELECT hasnt_table('tasks', 'the dry run left no tasks');
SELECT is((SELECT count(*) FROM workflows), 141::bigint, 'the dry run left workflows at 141 rows');
SELECT is_empty($$SELECT * FROM migrate.applied$$, 'the dry run recorded nothing as applied');
SELECT is((SELECT count(*) FROM migrate.history WHERE action <> 'register'), 0::bigint,
          'the dry run wrote no history');

-- ---------------------------------------------------------------- apply up to 002
SELECT results_eq(
    $$SELECT version, name, action, rows, checks FROM migrate_apply('002')$$,
    $$VALUES ('001', 'create strategic priorities', 'applied', 7::bigint, 6),
             ('002', 'seed tools from dh_tool', 'applied', 150::bigint, 2)$$,
    'migrate_apply(''002'') applies 001 and 002');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status()$$,
    $$VALUES ('001', 'applied'), ('002', 'applied'), ('003', 'pending'), ('004', 'pending')$$,
    'after applying to 002: 001 and 002 applied, 003 and 004 pending');
SELECT results_eq(
    $$SELECT step, version FROM migrate_plan()$$,
    $$VALUES (1, '003'), (2, '004')$$,
    'the plan now holds 003 and 004');

-- ---------------------------------------------------------------- apply the rest
SELECT results_eq(
    $$SELECT version, name, action, rows, checks FROM migrate_apply()$$,
    $$VALUES ('003', 'add workflows', 'applied', 227::bigint, 2),
             ('004', 'create tasks', 'applied', 343::bigint, 5)$$,
    'migrate_apply() applies 003 and 004');
SELECT is_empty($$SELECT * FROM migrate_apply()$$, 'a second migrate_apply() has nothing to do');
SELECT is_empty($$SELECT * FROM migrate_plan()$$, 'nothing is left in the plan');

-- ---------------------------------------------------------------- data
SELECT is((SELECT count(*) FROM strategic_priorities), 7::bigint, 'strategic_priorities has 7 rows');
SELECT is((SELECT count(*) FROM tools), 150::bigint, 'tools has 150 rows');
SELECT set_eq($$SELECT id, name, category FROM tools$$, $$SELECT id, name, category FROM dh_tool$$,
              'tools holds exactly the dh_tool rows');
SELECT is((SELECT count(*) FROM workflows), 368::bigint, 'workflows went from 141 to 368 rows');
SELECT is((SELECT count(*) FROM tasks), 343::bigint, 'tasks has 343 rows');
SELECT fk_ok('tasks', 'workflow_id', 'workflows', 'id');
SELECT results_eq(
    $$SELECT t, n, fp FROM protected_before WHERE t <> 'workflows' ORDER BY t$$,
    $$SELECT 'agents', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM agents
      UNION ALL SELECT 'jtbd_library', count(*), md5(string_agg(id || ':' || job, ',' ORDER BY id)) FROM jtbd_library
      UNION ALL SELECT 'personas', count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM personas
      UNION ALL SELECT 'prompts', count(*), md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM prompts$$,
    'prompts, jtbd_library, agents and personas are unchanged, row for row');
SELECT is(
    (SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM workflows WHERE id <= 141),
    (SELECT fp FROM protected_before WHERE t = 'workflows'),
    'the 141 original workflows are unchanged');

-- ---------------------------------------------------------------- catalog
SELECT results_eq(
    $$SELECT version, state, applied_by FROM migrate.status ORDER BY version_key$$,
    $$VALUES ('001', 'applied', current_user), ('002', 'applied', current_user),
             ('003', 'applied', current_user), ('004', 'applied', current_user)$$,
    'all four migrations are applied, by the current user');
SELECT results_eq(
    $$SELECT version, name, checksum, touched FROM migrate.applied ORDER BY version_key$$,
    $$SELECT version, name, checksum, ARRAY[t] FROM migrate.migrations
        JOIN (VALUES ('001', 'public.strategic_priorities'), ('002', 'public.tools'),
                     ('003', 'public.workflows'), ('004', 'public.tasks')) AS v (ver, t)
          ON ver = version
       ORDER BY version_key$$,
    'migrate.applied: the registered checksums and the tables each migration wrote');
SELECT results_eq(
    $$SELECT version, action, outcome, rows_affected, checks FROM migrate.history ORDER BY id$$,
    $$VALUES ('001', 'register', 'ok', NULL::bigint, NULL::int),
             ('002', 'register', 'ok', NULL, NULL),
             ('003', 'register', 'ok', NULL, NULL),
             ('004', 'register', 'ok', NULL, NULL),
             ('001', 'apply', 'ok', 7, 6),
             ('002', 'apply', 'ok', 150, 2),
             ('003', 'apply', 'ok', 227, 2),
             ('004', 'apply', 'ok', 343, 5)$$,
    'history: four registrations, then four applies with their rows and checks');
SELECT is((SELECT counts FROM migrate.history WHERE version = '001' AND action = 'apply'),
          '{"strategic_priorities": {"expect": "7", "after": 7},
            "prompts":  {"expect": "=", "unchanged": "no row inserted or deleted"},
            "agents":   {"expect": "=", "unchanged": "no row inserted or deleted"},
            "personas": {"expect": "=", "unchanged": "no row inserted or deleted"}}'::jsonb,
          'history counts of 001: 7 priorities, protected tables proven unchanged without counting');
SELECT is((SELECT counts FROM migrate.history WHERE version = '002' AND action = 'apply'),
          '{"tools": {"expect": "150", "after": 150}}'::jsonb,
          'history counts of 002: 150 tools');
SELECT is((SELECT counts FROM migrate.history WHERE version = '003' AND action = 'apply'),
          '{"workflows": {"expect": "+227", "before": 141, "after": 368}}'::jsonb,
          'history counts of 003: workflows +227, 141 -> 368');
SELECT is((SELECT counts FROM migrate.history WHERE version = '004' AND action = 'apply'),
          '{"tasks": {"expect": "343", "after": 343},
            "workflows": {"expect": "=", "unchanged": "no row inserted or deleted"}}'::jsonb,
          'history counts of 004: 343 tasks, workflows unchanged at 368');
SELECT is((SELECT count(*) FROM migrate.history WHERE action = 'apply' AND duration IS NOT NULL
                                                  AND performed_by = current_user),
          4::bigint, 'every apply entry has a duration and the applying user');

-- ---------------------------------------------------------------- verification
-- 001: checksum, CHECK (rank), indexes; 002: checksum, indexes;
-- 003: checksum, the foreign key of tasks that references workflows, indexes;
-- 004: checksum, verify query, foreign key, indexes.
SELECT is(migrate_verify(), 12, 'migrate_verify() passes all 12 checks');
SELECT is(migrate_verify('004'), 4, 'migrate_verify(''004'') passes its 4 checks');
SELECT is(migrate_verify('003'), 3, 'migrate_verify(''003'') includes the foreign key that references workflows');
SELECT throws_ok($$SELECT migrate_verify('005')$$, '42704', 'migration 005 is not applied',
                 'migrate_verify of an unknown version');
SELECT set_eq(
    $$SELECT version, "check", object, ok, sqlstate, message FROM migrate_check()$$,
    $$SELECT v, c, o, true AS ok, NULL::text AS sqlstate, NULL::text AS message FROM (VALUES
        ('001', 'checksum', (SELECT checksum FROM migrate.applied WHERE version = '001')),
        ('001', 'check constraint', 'strategic_priorities_rank_check on public.strategic_priorities'),
        ('001', 'indexes', 'indexes of 1 table'),
        ('002', 'checksum', (SELECT checksum FROM migrate.applied WHERE version = '002')),
        ('002', 'indexes', 'indexes of 1 table'),
        ('003', 'checksum', (SELECT checksum FROM migrate.applied WHERE version = '003')),
        ('003', 'foreign key', 'tasks_workflow_id_fkey on public.tasks'),
        ('003', 'indexes', 'indexes of 1 table'),
        ('004', 'checksum', (SELECT checksum FROM migrate.applied WHERE version = '004')),
        ('004', 'verify', 'verify query'),
        ('004', 'foreign key', 'tasks_workflow_id_fkey on public.tasks'),
        ('004', 'indexes', 'indexes of 1 table')) AS x (v, c, o)$$,
    'migrate_check(): the 12 checks, all ok');
SELECT is_empty($$SELECT * FROM migrate_check() WHERE NOT ok$$, 'migrate_check() reports no failure');
SELECT is_empty($$SELECT * FROM migrate_validate()$$, 'migrate_validate finds no problem after applying');

-- a task pointed at a missing workflow behind the foreign key's back is found
SET LOCAL session_replication_role = replica;
UPDATE tasks SET workflow_id = 9999 WHERE id = 7;
RESET session_replication_role;
SELECT throws_ok($$SELECT migrate_verify('003')$$, '23503',
                 'foreign key constraint "tasks_workflow_id_fkey" on table "tasks" is violated',
                 'migrate_verify(''003'') finds a task whose workflow is missing');
SELECT throws_ok($$SELECT migrate_verify('004')$$, '23000',
                 'verify query of migration 004 failed: row 1 returned false',
                 'migrate_verify(''004'') fails on its verify query first (orphan check)');
SELECT results_eq(
    $$SELECT version, "check", sqlstate FROM migrate_check() WHERE NOT ok ORDER BY version, "check"$$,
    $$VALUES ('003', 'foreign key', '23503'), ('004', 'foreign key', '23503'), ('004', 'verify', '23000')$$,
    'migrate_check lists the broken foreign key (for 003 and 004) and the failed verify query');
UPDATE tasks SET workflow_id = 8 WHERE id = 7;
SELECT is(migrate_verify(), 12, 'after repairing the task, all 12 checks pass again');

SELECT * FROM finish();
ROLLBACK;
