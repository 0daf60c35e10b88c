-- Attack: the history must be tamper-evident, and the catalog rows that the
-- extension's owner may now write (to restore a dump without a superuser)
-- must not let it lend the superuser's rights to a verify query.
--   ext_owner: a plain role with CREATE on the database; it creates the
--              (trusted) extension, so it owns it.
--   postgres:  registers and applies migrations, then tampers with the
--              history the way a superuser can (triggers disabled, replica
--              mode, rows inserted by hand).
-- pgTAP keeps its results in this transaction, so no tampering is undone by
-- ROLLBACK TO SAVEPOINT: each one is repaired by hand before the next.
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
SET LOCAL client_min_messages = warning;

SELECT plan(40);

-- ---------------------------------------------------------------- setup
CREATE ROLE ext_owner NOLOGIN;
DO $$BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO ext_owner', current_database());
    -- a file the escalation would write; unique to this backend and transaction
    PERFORM set_config('attack.file',
                       '/tmp/migrate_attack_history_' || pg_backend_pid() || '_' || txid_current(), true);
END$$;
SET ROLE ext_owner;
CREATE EXTENSION migrate;
RESET ROLE;
SELECT is((SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'migrate'), 'ext_owner',
          'ext_owner, not a superuser, owns the extension');

-- The chain as the extension defines it, recomputed here.
CREATE FUNCTION pg_temp.chain_ok() RETURNS boolean LANGUAGE sql AS $$
    SELECT coalesce(bool_and(h.hash = migrate.history_hash(h.prev, h.r)), true)
      FROM (SELECT x.hash, lag(x.hash) OVER (ORDER BY x.id) AS prev, x AS r
              FROM migrate.history x) h
$$;
CREATE FUNCTION pg_temp.history_id(v text, a text) RETURNS bigint LANGUAGE sql AS $$
    SELECT max(id) FROM migrate.history WHERE version = v AND action = a
$$;
CREATE FUNCTION pg_temp.failed_checks() RETURNS TABLE (version text, "check" text, object text, sqlstate text)
LANGUAGE sql AS $$
    SELECT c.version, c."check", c.object, c.sqlstate FROM migrate_check() c WHERE NOT c.ok ORDER BY 1, 2
$$;

-- ---------------------------------------------------------------- a normal history
SELECT lives_ok($$
    SELECT count(migrate_add(v, 'm' || v, format('CREATE TABLE t%s (id int);', v)))
      FROM unnest(ARRAY['001', '002', '003', '005']) AS v
$$, 'the superuser registers 001, 002, 003 and 005');
SELECT is((SELECT count(*) FROM migrate_apply(target => '003')), 3::bigint, 'and applies 001..003');
SELECT is((SELECT count(*) FROM migrate.history WHERE hash IS NULL OR hash !~ '^[0-9a-f]{64}$'), 0::bigint,
          'every history row has a SHA-256 hash');
SELECT ok(pg_temp.chain_ok(), 'each row''s hash covers its content and the previous row''s hash');
SELECT is_empty($$SELECT * FROM migrate_validate()$$, 'migrate_validate() finds nothing wrong');
SELECT lives_ok($$SELECT migrate_verify()$$, 'migrate_verify() passes');

-- ---------------------------------------------------------------- append-only, even in replica mode
SET session_replication_role = replica;
SELECT throws_ok($$UPDATE migrate.history SET performed_by = 'nobody'$$, '55000', 'migrate.history is append-only',
                 'UPDATE of migrate.history is refused with session_replication_role = replica');
SELECT throws_ok($$DELETE FROM migrate.history WHERE version = '002'$$, '55000', 'migrate.history is append-only',
                 'DELETE from migrate.history is refused with session_replication_role = replica');
SELECT throws_ok($$TRUNCATE migrate.history$$, '55000', 'migrate.history is append-only',
                 'TRUNCATE of migrate.history is refused with session_replication_role = replica');
SELECT lives_ok($$INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, hash)
                  VALUES ('003', migrate_version_key('003'), 'm003', 'apply', 'x', 'postgres', NULL)
                  RETURNING 1$$,
                'a row inserted in replica mode without a hash ...');
RESET session_replication_role;
SELECT ok(pg_temp.chain_ok(), '... is chained all the same (the chain trigger fires always)');
-- (that row claims an apply of 003 with checksum x: 003 is now unexplained)
SELECT results_eq($$SELECT problem, version FROM migrate_validate()$$, $$VALUES ('unrecorded', '003')$$,
                  'a chained apply row with another checksum leaves 003 unexplained');
-- explain 003 again, the way the extension would (a repair-like row of its checksum)
INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
SELECT version, version_key, name, 'apply', checksum, 'postgres' FROM migrate.applied WHERE version = '003';
SELECT is_empty($$SELECT * FROM migrate_validate()$$, 'with an apply row of its checksum, 003 is explained again');

-- ---------------------------------------------------------------- an applied row written by hand
INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
SELECT version_key, version, name, checksum, 'postgres' FROM migrate.migrations WHERE version = '005';
SELECT results_eq($$SELECT problem, version, detail FROM migrate_validate()$$,
                  $$SELECT 'unrecorded'::text, '005'::text,
                           format('Marked applied with checksum %s, but no history row records applying it: the row was written outside migrate.',
                                  (SELECT checksum FROM migrate.migrations WHERE version = '005'))$$,
                  'migrate_validate(): 005, marked applied by hand, is unrecorded');
SELECT throws_ok($$SELECT migrate_verify()$$, 'XX001', 'migration 005 is marked applied without a history row that records it',
                 'migrate_verify() raises XX001');
SELECT results_eq($$SELECT * FROM pg_temp.failed_checks()$$, $$VALUES ('005', 'history', 'applied row', 'XX001')$$,
                  'migrate_check() shows the failed history check of 005');
DELETE FROM migrate.applied WHERE version = '005';
SELECT is_empty($$SELECT * FROM migrate_validate()$$, '(repaired)');

-- ---------------------------------------------------------------- the newest applied row deleted by hand
-- The history's latest word on 003 is that it was applied; without its
-- applied row it would be pending again and the next migrate_apply() would
-- re-run it: reported as 'lost'.
DELETE FROM migrate.applied WHERE version = '003';
SELECT results_eq($$SELECT problem, version FROM migrate_validate() WHERE version = '003'$$,
                  $$VALUES ('lost'::text, '003'::text)$$,
                  'migrate_validate(): 003, applied per the history, has lost its applied row');
INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by, applied_at)
SELECT version_key, version, name, checksum, performed_by, performed_at
  FROM migrate.history WHERE id = pg_temp.history_id('003', 'apply');
SELECT is_empty($$SELECT * FROM migrate_validate()$$, '(repaired)');

-- ---------------------------------------------------------------- a middle row edited, triggers disabled
SELECT is((SELECT performed_by::text FROM migrate.history WHERE id = pg_temp.history_id('002', 'apply')), 'postgres',
          'the apply row of 002 says postgres applied it');
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
UPDATE migrate.history SET performed_by = 'somebody_else' WHERE id = pg_temp.history_id('002', 'apply');
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_update_or_delete;
SELECT results_eq(
    $$SELECT problem, version, detail FROM migrate_validate()$$,
    $$SELECT 'history'::text, '002'::text,
             format('The history''s hash chain breaks at row %s: that row, or the one before it, was edited, inserted or removed outside migrate.',
                    pg_temp.history_id('002', 'apply'))$$,
    'migrate_validate(): an edited middle row breaks the chain at that row');
SELECT throws_ok($$SELECT migrate_verify()$$, 'XX001', 'the history of migrations was changed outside migrate',
                 'migrate_verify() raises XX001');
SELECT results_eq($$SELECT * FROM pg_temp.failed_checks()$$, $$VALUES ('002', 'history', 'hash chain', 'XX001')$$,
                  'migrate_check() shows a failed history check');
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
UPDATE migrate.history SET performed_by = 'postgres' WHERE id = pg_temp.history_id('002', 'apply');
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_update_or_delete;
SELECT is_empty($$SELECT * FROM migrate_validate()$$, '(repaired: the edit undone, the chain holds again)');

-- ---------------------------------------------------------------- a middle row deleted, triggers disabled
CREATE TEMP TABLE removed AS SELECT * FROM migrate.history WHERE id = pg_temp.history_id('002', 'register');
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
DELETE FROM migrate.history WHERE id = (SELECT id FROM removed);
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_update_or_delete;
SELECT results_eq(
    $$SELECT problem, detail FROM migrate_validate()$$,
    $$SELECT 'history'::text,
             format('The history''s hash chain breaks at row %s: that row, or the one before it, was edited, inserted or removed outside migrate.',
                    (SELECT min(id) FROM migrate.history WHERE id > (SELECT id FROM removed)))$$,
    'migrate_validate(): a deleted middle row breaks the chain at the next row');
SELECT throws_ok($$SELECT migrate_verify()$$, 'XX001', NULL, 'migrate_verify() raises XX001');
INSERT INTO migrate.history SELECT * FROM removed;
SELECT is_empty($$SELECT * FROM migrate_validate()$$, '(repaired: the row put back, hash and all)');

-- ---------------------------------------------------------------- a row with a forged hash
INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, hash)
SELECT version, version_key, name, 'apply', checksum, 'postgres', repeat('0', 64)
  FROM migrate.applied WHERE version = '003';
SELECT results_eq(
    $$SELECT problem, version, detail FROM migrate_validate()$$,
    $$SELECT 'history'::text, '003'::text,
             format('The history''s hash chain breaks at row %s: that row, or the one before it, was edited, inserted or removed outside migrate.',
                    (SELECT max(id) FROM migrate.history))$$,
    'migrate_validate(): a row inserted with a forged hash breaks the chain');
SELECT throws_ok($$SELECT migrate_verify()$$, 'XX001', NULL, 'migrate_verify() raises XX001');
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
DELETE FROM migrate.history WHERE id = (SELECT max(id) FROM migrate.history);
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_update_or_delete;
SELECT is_empty($$SELECT * FROM migrate_validate()$$, '(repaired)');

-- ---------------------------------------------------------------- the owner's INSERT grants
SET ROLE ext_owner;
SELECT throws_ok($$UPDATE migrate.migrations SET verify = 'SELECT false'$$, '42501', NULL,
                 'ext_owner may not UPDATE migrate.migrations');
SELECT throws_ok($$ALTER TABLE migrate.migrations DISABLE TRIGGER migrations_registered_by_writer$$, '42501', NULL,
                 'ext_owner may not disable the registered_by trigger');
SELECT lives_ok(format($f$
    INSERT INTO migrate.migrations (version_key, version, name, up, verify, checksum, registered_by)
    VALUES (migrate_version_key('004'), '004', 'restored', 'CREATE TABLE t004 (id int);', %L,
            migrate_checksum('CREATE TABLE t004 (id int);'), 'postgres')$f$,
    format('COPY (SELECT 1) TO %L; ALTER ROLE ext_owner SUPERUSER; SELECT current_user = ''postgres''',
           current_setting('attack.file'))),
    'ext_owner inserts a migration claiming registered_by = postgres, with a hostile verify query');
-- and marks it applied, the way a restore would: an applied row and a chained
-- history row that explains it, so that migrate_validate() has nothing to say.
-- history_hash() is not granted to it, but its definition (src/history.c) is
-- public and sha256() is not restricted: the grant below only saves
-- re-implementing it here.
RESET ROLE;
GRANT EXECUTE ON FUNCTION migrate.history_hash(text, migrate.history) TO ext_owner;
SET ROLE ext_owner;
SELECT lives_ok($$
    WITH a AS (INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
               SELECT version_key, version, name, checksum, 'postgres' FROM migrate.migrations WHERE version = '004'
               RETURNING *)
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
    SELECT version, version_key, name, 'apply', checksum, applied_by FROM a
$$, 'ext_owner marks it applied (applied row and history row)');
RESET ROLE;
SELECT is((SELECT registered_by::text FROM migrate.migrations WHERE version = '004'), 'ext_owner',
          'the trigger recorded the writer, ext_owner, as registered_by');
SELECT results_eq(
    $$SELECT ok, sqlstate FROM migrate_check('004') WHERE "check" = 'verify'$$,
    $$VALUES (false, '42501'::text)$$,
    'the superuser''s migrate_check(''004''): the verify query ran as ext_owner and was refused');
SELECT throws_ok($$SELECT migrate_verify('004')$$, '42501', NULL,
                 'the superuser''s migrate_verify(''004'') fails with 42501');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'ext_owner'), false, 'ext_owner is not a superuser');
SELECT is(pg_stat_file(current_setting('attack.file'), true), NULL, 'no server file was written');

SELECT * FROM finish();
ROLLBACK;
