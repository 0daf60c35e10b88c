-- migrate_apply(dry_run => true): runs and checks everything, then rolls it
-- back.  When a dry run fails, the error must leave the caller's transaction
-- state as any other error does: an enclosing exception block (a
-- subtransaction) rolls back everything it did and the session goes on.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
-- psql's per-statement savepoints (ON_ERROR_ROLLBACK) around failing dry runs
-- once crashed the backend, when a failed dry run left its subtransaction open.
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
SET LOCAL client_min_messages = warning;

SELECT plan(21);

CREATE TABLE marker (note text);
CREATE TABLE items (id int PRIMARY KEY);

-- Run sql inside an exception block that first writes a marker row; return
-- the SQLSTATE caught ('none' if nothing was raised).
CREATE FUNCTION pg_temp.caught(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO marker VALUES ('written in the block before: ' || sql);
    EXECUTE sql;
    RETURN 'none';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

SELECT lives_ok($$SELECT migrate_add('1', 'three items',
    'INSERT INTO items SELECT generate_series(1, 3);', expect => '{"items": "+3"}')$$,
    'register 1');
SELECT lives_ok($$SELECT migrate_add('2', 'table two',
    'CREATE TABLE two (id int PRIMARY KEY CHECK (id > 0)); INSERT INTO two VALUES (1), (2);',
    expect => '{"two": 2}')$$,
    'register 2');

-- ---------------------------------------------------------------- success
SELECT results_eq(
    $$SELECT version, action, rows, checks FROM migrate_apply(dry_run => true)$$,
    $$VALUES ('1', 'dry run', 3::bigint, 2), ('2', 'dry run', 2::bigint, 3)$$,
    'a dry run reports both migrations with action ''dry run''');
SELECT is((SELECT count(*) FROM items), 0::bigint, 'the dry run left items empty');
SELECT hasnt_table('two', 'the dry run left no table two');
SELECT is_empty($$SELECT * FROM migrate.applied$$, 'the dry run applied nothing');
SELECT results_eq($$SELECT action FROM migrate.history ORDER BY id$$,
                  $$VALUES ('register'), ('register')$$, 'the dry run wrote no history');
SELECT is((SELECT changed_by FROM migrate.catalog_lock), current_user,
          'catalog_lock still shows the last registration');
SELECT results_eq(
    $$SELECT version, action FROM migrate_apply('1', dry_run => true)$$,
    $$VALUES ('1', 'dry run')$$,
    'a dry run honours the target');
SELECT results_eq($$SELECT version, state FROM migrate_status()$$,
                  $$VALUES ('1', 'pending'), ('2', 'pending')$$, 'both are still pending');

-- ---------------------------------------------------------------- real apply
SELECT results_eq($$SELECT version, action FROM migrate_apply()$$,
                  $$VALUES ('1', 'applied'), ('2', 'applied')$$,
                  'after the dry runs, a real apply of 1 and 2 works');

-- ---------------------------------------------------------------- failure, caught
SELECT lives_ok($$SELECT migrate_add('3', 'bad count',
    'INSERT INTO items VALUES (100);', expect => '{"items": "+2"}')$$,
    'register 3 with a wrong expectation');

SELECT is(pg_temp.caught('SELECT * FROM migrate_apply()'), '23000',
          'a failing real apply raises 23000 into the exception block');
SELECT is((SELECT count(*) FROM marker), 0::bigint,
          'the exception block''s own write was rolled back with it (real apply)');
SELECT is((SELECT count(*) FROM items), 3::bigint, 'the failed real apply left items at 3 rows');

SELECT is(pg_temp.caught('SELECT * FROM migrate_apply(dry_run => true)'), '23000',
          'a failing dry run raises 23000 into the exception block');
SELECT is((SELECT count(*) FROM marker), 0::bigint,
          'the exception block''s own write was rolled back with it (dry run)');
SELECT is((SELECT count(*) FROM items), 3::bigint, 'the failed dry run left items at 3 rows');
SELECT results_eq($$SELECT version, state FROM migrate_status()$$,
                  $$VALUES ('1', 'applied'), ('2', 'applied'), ('3', 'pending')$$,
                  'status: 1 and 2 applied, 3 pending');

-- a second failing dry run in the same transaction, then ordinary work
SELECT is(pg_temp.caught('SELECT * FROM migrate_apply(dry_run => true)'), '23000',
          'a second failing dry run raises 23000 too');
INSERT INTO marker VALUES (42);
SELECT is((SELECT count(*) FROM marker), 1::bigint, 'the transaction goes on after failed dry runs');

SELECT * FROM finish();
ROLLBACK;
