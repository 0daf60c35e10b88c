-- A realistic data-migration plan, as teams write it down today:
--   five protected tables that must not change, new tables filled to exact
--   counts, one table grown by a known delta, a foreign key across them, and
--   a verify query.  migrate checks all of it before COMMIT.
\set ON_ERROR_STOP on
SET client_min_messages = notice;

-- The database as it is before the plan (protected data and sources).
CREATE TABLE prompts      AS SELECT g AS id, 'prompt ' || g AS body FROM generate_series(1, 3570) g;
CREATE TABLE jtbd_library AS SELECT g AS id, NULL::int AS strategic_priority_id FROM generate_series(1, 371) g;
CREATE TABLE workflows    (id int PRIMARY KEY, definition jsonb NOT NULL DEFAULT '{}');
INSERT INTO workflows SELECT g FROM generate_series(1, 141) g;
CREATE TABLE agents       AS SELECT g AS id FROM generate_series(1, 190) g;
CREATE TABLE personas     AS SELECT g AS id FROM generate_series(1, 210) g;
CREATE TABLE dh_tool      AS SELECT g AS id, 'tool ' || g AS name FROM generate_series(1, 150) g;
CREATE TABLE dh_workflow  AS SELECT 1000 + g AS id, 'dh workflow ' || g AS title FROM generate_series(1, 116) g;
CREATE TABLE dh_task      AS SELECT g AS id, 1000 + (g % 116) + 1 AS workflow_id FROM generate_series(1, 343) g;

-- The plan, registered inside the database.
SELECT migrate_add('20251110_01', 'strategic priorities',
    $$CREATE TABLE strategic_priorities (id text PRIMARY KEY, title text NOT NULL);
      INSERT INTO strategic_priorities SELECT 'SP0' || g, 'Strategic priority ' || g FROM generate_series(1, 7) g;
      UPDATE jtbd_library SET strategic_priority_id = 1 WHERE id <= 105;$$,
    expect => '{"strategic_priorities": 7, "jtbd_library": "=", "prompts": "=", "agents": "=", "personas": "="}');

SELECT migrate_add('20251110_02', 'migrate tools',
    $$CREATE TABLE tools (id int PRIMARY KEY, name text NOT NULL, metadata jsonb);
      INSERT INTO tools SELECT id, name, to_jsonb(d) FROM dh_tool d;$$,
    expect => '{"tools": 150, "prompts": "="}');

SELECT migrate_add('20251110_03', 'migrate workflows',
    $$INSERT INTO workflows (id, definition) SELECT id, jsonb_build_object('title', title) FROM dh_workflow;
      INSERT INTO workflows (id, definition)
      SELECT 2000 + g, jsonb_build_object('title', 'Medical Affairs workflow ' || g) FROM generate_series(1, 111) g;$$,
    expect => '{"workflows": "+227", "agents": "=", "personas": "="}');

SELECT migrate_add('20251110_04', 'migrate tasks',
    $$CREATE TABLE tasks (id int PRIMARY KEY, workflow_id int NOT NULL REFERENCES workflows);
      INSERT INTO tasks SELECT id, workflow_id FROM dh_task;$$,
    expect => '{"tasks": 343}',
    verify => $$SELECT count(*) = 105 FROM jtbd_library WHERE strategic_priority_id IS NOT NULL$$,
    requires => '{20251110_03}');

\echo
\echo '== migrate_plan(): what will run, in order, and the checksum of that plan'
SELECT step, version, name, reason, left(plan_checksum, 12) AS plan FROM migrate_plan();
SELECT DISTINCT plan_checksum AS reviewed FROM migrate_plan() \gset

\echo '== migrate_apply(plan => ...): all of it, checked, in this transaction, if it is the plan reviewed'
SELECT version, name, action, rows, checks FROM migrate_apply(plan => :'reviewed');

\echo '== migrate_status()'
SELECT * FROM migrate_status();

\echo '== what history kept of the counts'
SELECT version, counts FROM migrate.history WHERE action = 'apply' ORDER BY id;

\echo '== migrate_verify(): what a nightly pg_cron job runs'
SELECT migrate_verify() AS checks_passed;

\echo '== a wrong expectation rolls the whole change back'
SELECT migrate_add('20251111_01', 'more tools', $$INSERT INTO tools VALUES (151, 'one more');$$,
                   expect => '{"tools": 152}');
\set ON_ERROR_STOP off
SELECT version, action FROM migrate_apply();
\set ON_ERROR_STOP on
SELECT count(*) AS tools_still FROM tools;
SELECT version, name, state FROM migrate_status() WHERE state <> 'applied';

\echo '== a background job: CREATE INDEX CONCURRENTLY cannot run in a transaction'
-- the wrong one stays pending until it is fixed: register it as it should be
SELECT migrate_add('20251111_01', 'more tools', $$INSERT INTO tools VALUES (151, 'one more');$$,
                   expect => '{"tools": 151}') IS NOT NULL AS fixed;
SELECT migrate_add('20251112_01', 'index tasks by workflow',
                   'CREATE INDEX CONCURRENTLY tasks_workflow_idx ON tasks (workflow_id)') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT id, state, steps_done, steps_total FROM migrate.jobs;
SELECT version, name, state FROM migrate_status() WHERE version >= '20251111';

\echo '== a batched data migration: 200,000 legacy rows moved 20,000 at a time, each batch committed with its checkpoint'
CREATE TABLE legacy_tasks AS SELECT g AS id, 'legacy task ' || g AS title FROM generate_series(1, 200000) g;
ALTER TABLE legacy_tasks ADD PRIMARY KEY (id);
SELECT migrate_add('20251113_01', 'task archive',
                   'CREATE TABLE task_archive (id int PRIMARY KEY, title text NOT NULL)') IS NOT NULL AS registered;
SELECT migrate_add('20251113_02', 'move legacy tasks',
                   $$INSERT INTO task_archive SELECT l.id, l.title FROM legacy_tasks l WHERE l.id > $1 AND l.id <= $2$$,
                   batch => '{"table": "legacy_tasks", "size": 20000}',
                   expect => '{"task_archive": 200000, "legacy_tasks": "="}') IS NOT NULL AS registered;
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT id, state, batches_done, rows_done FROM migrate.jobs WHERE id = :job;
SELECT version, rows_affected, counts, detail -> 'batches' AS batches
  FROM migrate.history WHERE version = '20251113_02' AND action = 'apply';
