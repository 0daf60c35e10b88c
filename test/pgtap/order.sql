-- Ordering: versions compare as people mean them (numeric groups, 8- and
-- 14-digit timestamps by time), and a migration runs after the ones it
-- requires even when its version is lower.  One catalog, walked forward
-- with targets: 1.x and 2, then 004..008 with requirements, then timestamps.
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

SELECT plan(44);

-- every migration appends its version to run_log, so the order they ran in is visible
CREATE TABLE run_log (n serial PRIMARY KEY, version text NOT NULL);
CREATE FUNCTION pg_temp.add(v text, requires text[] DEFAULT NULL, extra text DEFAULT '')
RETURNS text LANGUAGE sql AS $$
    SELECT migrate_add(v, 'migration ' || v,
                       extra || format('INSERT INTO run_log (version) VALUES (%L);', v),
                       requires => requires)
$$;

-- ---------------------------------------------------------------- numeric groups
SELECT lives_ok($$SELECT pg_temp.add(v) FROM unnest(ARRAY['1.10', '1.2', '1.9', '2', '1.2.1']) AS v$$,
                'register 1.10, 1.2, 1.9, 2, 1.2.1 (shuffled)');
SELECT results_eq(
    $$SELECT step, version, reason FROM migrate_plan()$$,
    $$VALUES (1, '1.2', 'version order'), (2, '1.2.1', 'version order'), (3, '1.9', 'version order'),
             (4, '1.10', 'version order'), (5, '2', 'version order')$$,
    'plan: 1.2 < 1.2.1 < 1.9 < 1.10 < 2');
SELECT results_eq(
    $$SELECT version FROM migrate_status()$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2')$$,
    'migrate_status() lists them in the same order');
SELECT results_eq(
    $$SELECT v FROM unnest(ARRAY['1.10', '1.2', '1.9', '2', '1.2.1']) AS v
       ORDER BY migrate_version_key(v) COLLATE "C"$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2')$$,
    'ORDER BY migrate_version_key(v) COLLATE "C" gives the same order');
SELECT results_eq(
    $$SELECT version FROM migrate_plan('1.9')$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9')$$,
    'plan with target 1.9 stops at 1.9');
SELECT results_eq(
    $$SELECT version FROM migrate_plan('1.9.0.0')$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9')$$,
    'target 1.9.0.0 is the same as 1.9');
SELECT throws_ok($$SELECT pg_temp.add('1.2.0')$$, '42710', 'version 1.2.0 is already registered as 1.2',
                 '1.2.0 is the same version as 1.2');
SELECT throws_ok($$SELECT pg_temp.add('02')$$, '42710', 'version 02 is already registered as 2',
                 '02 is the same version as 2');
SELECT throws_ok($$SELECT pg_temp.add('1.x')$$, '22023', 'invalid migration version "1.x"',
                 '1.x is not a version');

SELECT results_eq(
    $$SELECT version FROM migrate_apply('2')$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2')$$,
    'migrate_apply(''2'') runs them in version order');
SELECT results_eq(
    $$SELECT version FROM run_log ORDER BY n$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2')$$,
    'and that is the order in which their scripts ran');

-- ---------------------------------------------------------------- requirements
-- 007 creates the table that 005 fills, so 005 requires 007.
SELECT lives_ok($$SELECT pg_temp.add('007', extra => 'CREATE TABLE seven (v text);')$$, 'register 007');
SELECT lives_ok($$SELECT pg_temp.add('004', ARRAY['1.10'])$$, 'register 004, requiring the applied 1.10');
SELECT lives_ok($$SELECT pg_temp.add('006')$$, 'register 006');
SELECT lives_ok($$SELECT pg_temp.add('005', ARRAY['007'], 'INSERT INTO seven VALUES (''five'');')$$,
                'register 005, requiring 007');
SELECT lives_ok($$SELECT pg_temp.add('008', ARRAY['007', '005'])$$, 'register 008, requiring 007 and 005');

SELECT results_eq(
    $$SELECT step, version, reason FROM migrate_plan('008')$$,
    $$VALUES (1, '004', 'version order; after its requirements 1.10'),
             (2, '006', 'version order'),
             (3, '007', 'version order'),
             (4, '005', 'version order; after its requirements 007'),
             (5, '008', 'version order; after its requirements 007, 005')$$,
    'plan: 007 moves before 005, which requires it; 008 after both');
SELECT throws_ok($$SELECT * FROM migrate_plan('006')$$, '55000',
                 'migration 005 requires 007, which lies beyond the target',
                 'a target between 005 and its requirement 007 is refused');
SELECT throws_ok($$SELECT pg_temp.add('007', ARRAY['005'], 'CREATE TABLE seven (v text);')$$, '42P17',
                 'requirements of migration 007 form a cycle',
                 '007 cannot require 005, which requires 007');
SELECT throws_ok($$SELECT pg_temp.add('009', ARRAY['009'])$$, '42P17',
                 'requirements of migration 009 form a cycle',
                 'a migration cannot require itself');
SELECT throws_ok($$SELECT pg_temp.add('009', ARRAY['999'])$$, '42704',
                 'migration 009 requires version 999, which is not registered',
                 'an unknown requirement is refused');
SELECT is_empty($$SELECT * FROM migrate.migrations WHERE version = '009'$$,
                'the refused 009 was not registered');
SELECT is((SELECT requires FROM migrate.migrations WHERE version = '007'), '{}'::text[],
          '007 keeps no requirement after the refused cycle');

SELECT results_eq(
    $$SELECT version, action FROM migrate_apply('008')$$,
    $$VALUES ('004', 'applied'), ('006', 'applied'), ('007', 'applied'), ('005', 'applied'), ('008', 'applied')$$,
    'migrate_apply(''008'') runs 004, 006, 007, 005, 008');
SELECT results_eq(
    $$SELECT version FROM run_log WHERE n > 5 ORDER BY n$$,
    $$VALUES ('004'), ('006'), ('007'), ('005'), ('008')$$,
    'the scripts ran in that order (005 found the table of 007)');
SELECT results_eq(
    $$SELECT version FROM migrate.history WHERE action = 'apply' ORDER BY id$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2'), ('004'), ('006'), ('007'), ('005'), ('008')$$,
    'history records the applies in the order they ran');
SELECT results_eq(
    $$SELECT version FROM migrate_status()$$,
    $$VALUES ('1.2'), ('1.2.1'), ('1.9'), ('1.10'), ('2'), ('004'), ('005'), ('006'), ('007'), ('008')$$,
    'migrate_status() stays in version order');

-- ---------------------------------------------------------------- timestamps
SELECT lives_ok(
    $$SELECT pg_temp.add(v)
        FROM unnest(ARRAY['20251108', '20240103000001', '20251003143000', '20251003', '20240101']) AS v$$,
    'register 14-digit (Supabase) and 8-digit timestamps, shuffled');
SELECT results_eq(
    $$SELECT step, version FROM migrate_plan()$$,
    $$VALUES (1, '20240101'), (2, '20240103000001'), (3, '20251003'), (4, '20251003143000'), (5, '20251108')$$,
    'plan: timestamps of both widths sort by time');
SELECT results_eq(
    $$SELECT version FROM migrate_plan('20251003')$$,
    $$VALUES ('20240101'), ('20240103000001'), ('20251003')$$,
    'target 20251003 (midnight) stops before 20251003143000');
SELECT results_eq(
    $$SELECT version FROM migrate_plan('20251003000000')$$,
    $$VALUES ('20240101'), ('20240103000001'), ('20251003')$$,
    'target 20251003000000 is the same as 20251003');
SELECT throws_ok($$SELECT pg_temp.add('20251003000000')$$, '42710',
                 'version 20251003000000 is already registered as 20251003',
                 '20251003000000 is the same version as 20251003');
SELECT ok(migrate_version_key('2025-10-08_18') < migrate_version_key('2025-10-09_01') COLLATE "C",
          '2025-10-08_18 sorts before 2025-10-09_01');
SELECT ok(migrate_version_key('2') < migrate_version_key('20240101') COLLATE "C",
          'small versions sort before timestamps');
SELECT results_eq(
    $$SELECT version FROM migrate_apply()$$,
    $$VALUES ('20240101'), ('20240103000001'), ('20251003'), ('20251003143000'), ('20251108')$$,
    'migrate_apply() runs the timestamps in time order');
SELECT results_eq(
    $$SELECT version FROM run_log WHERE n > 10 ORDER BY n$$,
    $$VALUES ('20240101'), ('20240103000001'), ('20251003'), ('20251003143000'), ('20251108')$$,
    'and their scripts ran in that order');

-- ---------------------------------------------------------------- out of order
SELECT lives_ok($$SELECT pg_temp.add('1.5')$$, 'register 1.5 after 20251108 is applied');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status() WHERE state <> 'applied'$$,
    $$VALUES ('1.5', 'out of order')$$,
    '1.5 is out of order');
SELECT throws_ok($$SELECT * FROM migrate_plan()$$, '55000',
                 'pending migration 1.5 is older than the newest applied migration',
                 'migrate_plan() refuses a plan that runs 1.5 out of order');
SELECT results_eq(
    $$SELECT step, version, reason FROM migrate_plan(out_of_order => true)$$,
    $$VALUES (1, '1.5', 'version order; out of order: older than the newest applied migration')$$,
    'migrate_plan(out_of_order => true) lists it and says why');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$, '55000',
                 'pending migration 1.5 is older than the newest applied migration',
                 'migrate_apply() refuses to run it out of order');
SELECT results_eq(
    $$SELECT version, action FROM migrate_apply(out_of_order => true)$$,
    $$VALUES ('1.5', 'applied')$$,
    'out_of_order => true applies it');
SELECT results_eq(
    $$SELECT version FROM run_log WHERE n > 15 ORDER BY n$$,
    $$VALUES ('1.5')$$,
    '1.5 ran last');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status() WHERE version IN ('1.2.1', '1.5', '1.9')$$,
    $$VALUES ('1.2.1', 'applied'), ('1.5', 'applied'), ('1.9', 'applied')$$,
    'status lists 1.5 between 1.2.1 and 1.9, applied');

SELECT * FROM finish();
ROLLBACK;
