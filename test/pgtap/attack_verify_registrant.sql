-- Attack: a verify query registered by one role must never re-run with
-- another role's rights.
--   mallory: EXECUTE on migrate_add only.  She re-registers a migration that
--            the superuser applied (same up script, so it is an "update")
--            with verify queries that try to escalate; the superuser's
--            nightly migrate_verify() / migrate_check() re-run them.
--   carol:   a member of mallory: may re-run mallory's verify queries.
--   eve:     EXECUTE on migrate_verify/migrate_check, nothing else: may not
--            re-run mallory's verify query (42501).
--   dave:    registers a migration, then is dropped (42704).
-- Roles are cluster-wide, but CREATE ROLE is transactional: the final
-- ROLLBACK removes them (and undoes an escalation, should one succeed).
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

SELECT plan(32);

-- ---------------------------------------------------------------- setup (superuser)
CREATE ROLE mallory NOLOGIN;
CREATE ROLE carol NOLOGIN IN ROLE mallory;
CREATE ROLE eve NOLOGIN;
CREATE ROLE dave NOLOGIN;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text) TO mallory, dave;
GRANT EXECUTE ON FUNCTION migrate_verify(text), migrate_check(text) TO carol, eve;

-- A file the escalation would write; unique to this backend and transaction.
-- Each re-check runs in a subtransaction that is rolled back, so a catalog
-- change (ALTER ROLE) made by a verify query would not outlive it: writing a
-- server file is the escalation that would, and current_user is the tell.
DO $$BEGIN
    PERFORM set_config('attack.file',
                       '/tmp/migrate_attack_verify_' || pg_backend_pid() || '_' || txid_current(), true);
END$$;

-- The one check of a migration (the verify query), as migrate_check() shows it.
CREATE FUNCTION pg_temp.verify_row(v text) RETURNS TABLE (ok boolean, sqlstate text, message text)
LANGUAGE sql AS $$
    SELECT c.ok, c.sqlstate, c.message FROM migrate_check(v) c WHERE c."check" = 'verify'
$$;
GRANT EXECUTE ON FUNCTION pg_temp.verify_row(text) TO carol, eve;

-- ---------------------------------------------------------------- the superuser applies 001..006
SELECT lives_ok($$
    SELECT count(migrate_add(v, 'm' || v, format('CREATE TABLE t%s (id int);', v), verify => 'SELECT true'))
      FROM unnest(ARRAY['001', '002', '003', '004', '005', '006']) AS v
$$, 'the superuser registers 001..006, each with verify query SELECT true');
SELECT is((SELECT count(*) FROM migrate_apply()), 6::bigint, 'the superuser applies them');
SELECT is((SELECT array_agg(DISTINCT registered_by::text) FROM migrate.migrations), ARRAY['postgres'],
          'they are registered by postgres');

-- ---------------------------------------------------------------- mallory swaps the verify queries
SET ROLE mallory;
SELECT lives_ok($$SELECT migrate_add('001', 'm001', 'CREATE TABLE t001 (id int);',
                                     verify => 'ALTER ROLE mallory SUPERUSER; SELECT true')$$,
                '001: mallory re-registers the applied migration with verify ALTER ROLE mallory SUPERUSER');
SELECT lives_ok(format($f$SELECT migrate_add('002', 'm002', 'CREATE TABLE t002 (id int);',
                                     verify => %L)$f$,
                       format('COPY (SELECT 1) TO %L; SELECT true', current_setting('attack.file'))),
                '002: ... with verify COPY ... TO a server file');
SELECT lives_ok($$SELECT migrate_add('003', 'm003', 'CREATE TABLE t003 (id int);',
                                     verify => 'SELECT current_user = ''mallory'' AND session_user = ''postgres''')$$,
                '003: ... with verify SELECT current_user = ''mallory''');
SELECT lives_ok($$SELECT migrate_add('004', 'm004', 'CREATE TABLE t004 (id int);',
                                     verify => 'RESET ROLE; ALTER ROLE mallory SUPERUSER; SELECT true')$$,
                '004: ... with verify RESET ROLE (back to the session user, postgres)');
SELECT lives_ok($$SELECT migrate_add('005', 'm005', 'CREATE TABLE t005 (id int);',
                                     verify => 'SET SESSION AUTHORIZATION postgres; ALTER ROLE mallory SUPERUSER; SELECT true')$$,
                '005: ... with verify SET SESSION AUTHORIZATION postgres');
RESET ROLE;
SET ROLE dave;
SELECT lives_ok($$SELECT migrate_add('006', 'm006', 'CREATE TABLE t006 (id int);', verify => 'SELECT 1 = 1')$$,
                '006: dave re-registers the applied migration with his own verify query');
RESET ROLE;
REVOKE ALL ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text) FROM dave;
DROP ROLE dave;

SELECT is((SELECT registered_by::text FROM migrate.migrations WHERE version = '001'), 'mallory',
          'registered_by of 001 is now mallory');

-- the change is recorded: a note in migrate_status() and the history row's detail
SELECT is((SELECT notes FROM migrate.status WHERE version = '001'),
          ARRAY[format('changed after it was applied: verify query by mallory: checksum %s, now %s',
                       migrate_checksum('SELECT true'),
                       migrate_checksum('ALTER ROLE mallory SUPERUSER; SELECT true'))],
          'migrate_status() notes that mallory changed the verify query of applied 001, with both checksums');
SELECT results_eq(
    $$SELECT action, detail FROM migrate.history WHERE version = '001' ORDER BY id DESC LIMIT 1$$,
    $$SELECT 'update'::text, jsonb_build_object('verify', jsonb_build_object(
          'from', migrate_checksum('SELECT true'),
          'to', migrate_checksum('ALTER ROLE mallory SUPERUSER; SELECT true')))$$,
    'the history has an update row for 001 with {"verify": {"from", "to"}}');

-- ---------------------------------------------------------------- the superuser's nightly verify
SELECT throws_ok($$SELECT migrate_verify()$$, '42501', NULL,
                 'the superuser''s migrate_verify() fails with 42501: mallory''s verify query did not run as postgres');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false,
          'mallory is not a superuser after migrate_verify()');
SELECT results_eq($$SELECT * FROM pg_temp.verify_row('001')$$,
                  $$VALUES (false, '42501'::text,
                            'must be superuser to alter superuser roles or change superuser attribute'::text)$$,
                  '001: ALTER ROLE ... SUPERUSER ran as mallory and was refused');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false,
          'mallory is not a superuser after migrate_check()');
SELECT is((SELECT ok FROM pg_temp.verify_row('002')), false, '002: COPY TO a server file fails');
SELECT is((SELECT sqlstate FROM pg_temp.verify_row('002')), '42501', '002: ... for want of privilege (42501)');
SELECT is(pg_stat_file(current_setting('attack.file'), true), NULL, '002: ... and no file was written');
SELECT results_eq($$SELECT ok FROM pg_temp.verify_row('003')$$, $$VALUES (true)$$,
                  '003: the verify query ran with current_user mallory (session_user unchanged)');
SELECT results_eq($$SELECT ok, sqlstate FROM pg_temp.verify_row('004')$$, $$VALUES (false, '42501'::text)$$,
                  '004: RESET ROLE is refused inside the verify query (security-restricted operation)');
SELECT results_eq($$SELECT ok, sqlstate FROM pg_temp.verify_row('005')$$, $$VALUES (false, '42501'::text)$$,
                  '005: SET SESSION AUTHORIZATION is refused inside the verify query');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false,
          'mallory is still not a superuser');
SELECT results_eq($$SELECT ok, sqlstate, message FROM pg_temp.verify_row('006')$$,
                  $$VALUES (false, '42704'::text,
                            'the verify query of migration 006 was registered by role dave, which no longer exists'::text)$$,
                  '006: registered by a role since dropped: the check fails with 42704');

-- ---------------------------------------------------------------- mallory edits only the up text
-- New up text of an applied migration runs nowhere until accepted: its
-- unchanged verify query keeps running as the role that registered it.
SELECT is((SELECT count(*) FROM migrate_apply()), 0::bigint, 'nothing is pending');
SELECT lives_ok($$SELECT migrate_add('007', 'm007', 'CREATE TABLE t007 (id int);', verify => 'SELECT true');
                  SELECT count(*) FROM migrate_apply()$$, 'the superuser applies 007, with verify query SELECT true');
SET ROLE mallory;
SELECT lives_ok($$SELECT migrate_add('007', 'm007', E'-- a comment\nCREATE TABLE t007 (id int);', verify => 'SELECT true')$$,
                '007: mallory registers its up text with a comment added, the same verify query');
RESET ROLE;
SELECT is((SELECT state FROM migrate_status() WHERE version = '007'), 'edited', '... recorded as edited');
SELECT is((SELECT registered_by::text FROM migrate.migrations WHERE version = '007'), 'postgres',
          '... and its verify query is still postgres''s');

-- ---------------------------------------------------------------- who may re-run mallory's verify query
SET ROLE eve;
SELECT results_eq($$SELECT ok, sqlstate, message FROM pg_temp.verify_row('003')$$,
                  $$VALUES (false, '42501'::text,
                            'the verify query of migration 003 runs as role mallory, whose privileges you do not have'::text)$$,
                  'eve (not a member of mallory) may not re-run mallory''s verify query: 42501');
SELECT throws_ok($$SELECT migrate_verify('003')$$, '42501', NULL,
                 'eve''s migrate_verify(''003'') fails with 42501');
RESET ROLE;
SET ROLE carol;
SELECT results_eq($$SELECT ok FROM pg_temp.verify_row('003')$$, $$VALUES (true)$$,
                  'carol (a member of mallory) re-runs it, as mallory');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
