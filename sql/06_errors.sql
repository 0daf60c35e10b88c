--
-- 06_errors: the remaining error paths: the append-only history, privileges,
-- a damaged catalog, and statements that cannot run in a migration.
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
GRANT EXECUTE ON FUNCTION pg_temp.sqlstate_of(text) TO PUBLIC;

CREATE SCHEMA err;
SET search_path = err, public;
SET client_min_messages = warning;

SELECT migrate_add('001', 'base', 'CREATE TABLE base (id int PRIMARY KEY);') IS NOT NULL AS registered;
SELECT version, rows, checks FROM migrate_apply();

--
-- migrate.history is append-only, even for a superuser
--
UPDATE migrate.history SET outcome = 'failed';
DELETE FROM migrate.history;
TRUNCATE migrate.history;
SELECT pg_temp.sqlstate_of('UPDATE migrate.history SET outcome = ''failed''') AS "update",
       pg_temp.sqlstate_of('DELETE FROM migrate.history') AS "delete",
       pg_temp.sqlstate_of('TRUNCATE migrate.history') AS "truncate";
SELECT version, action, outcome FROM migrate.history ORDER BY id;

--
-- privileges: a role without grants may not call anything
--
CREATE ROLE regress_migrate_user;
GRANT USAGE, CREATE ON SCHEMA err TO regress_migrate_user;
SET ROLE regress_migrate_user;
SELECT migrate_add('002', 'by user', 'CREATE TABLE by_user (id int);');
SELECT * FROM migrate_apply();
SELECT * FROM migrate_status();
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('002', 'by user', 'CREATE TABLE by_user (id int);')$$),
               (2, 'SELECT * FROM migrate_apply()'),
               (3, 'SELECT * FROM migrate_status()'),
               (4, 'SELECT * FROM migrate_plan()'),
               (5, 'SELECT * FROM migrate_validate()'),
               (6, 'SELECT migrate_verify()'),
               (7, 'SELECT * FROM migrate_check()'),
               (8, $$SELECT migrate_checksum('x')$$),
               (9, $$SELECT migrate_version_key('1')$$),
               (10, 'SELECT * FROM migrate.migrations'),
               (11, 'SELECT * FROM migrate.status')) AS t(n, sql)
 ORDER BY n;
RESET ROLE;

-- with EXECUTE granted it works; the catalog stays out of reach
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
                          migrate_apply(text, boolean, boolean, text),
                          migrate_status()
   TO regress_migrate_user;
SET ROLE regress_migrate_user;
SELECT migrate_add('002', 'by user', 'CREATE TABLE by_user (id int PRIMARY KEY);') IS NOT NULL AS registered;
SELECT version, rows, checks FROM migrate_apply();
SELECT version, name, state FROM migrate_status();
-- who applied each (the view has every column; this role may not read it)
RESET ROLE;
SELECT version, applied_by FROM migrate.status ORDER BY version_key;
SET ROLE regress_migrate_user;
INSERT INTO migrate.migrations (version_key, version, name, up, checksum, registered_by)
VALUES ('013', '003', 'sneaky', 'SELECT 1;', 'x', 'nobody');
UPDATE migrate.applied SET checksum = 'x';
SELECT count(*) FROM migrate.history;
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$INSERT INTO migrate.migrations (version_key, version, name, up, checksum, registered_by)
                     VALUES ('013', '003', 'sneaky', 'SELECT 1;', 'x', 'nobody')$$),
               (2, $$UPDATE migrate.applied SET checksum = 'x'$$),
               (3, 'SELECT count(*) FROM migrate.history'),
               (4, 'SELECT * FROM migrate_plan()')) AS t(n, sql)
 ORDER BY n;
-- migration SQL runs with the caller's rights, not the catalog owner's
SELECT migrate_add('003', 'needs more rights', 'CREATE TABLE public.not_mine (id int);') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SELECT migrate_add('003', 'needs more rights',
                   E'INSERT INTO by_user VALUES (1);\nSET session_replication_role = replica;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
RESET ROLE;
-- who did what
SELECT version, action, performed_by FROM migrate.history ORDER BY id;
SELECT version, registered_by FROM migrate.migrations ORDER BY version_key;
SELECT relname, relowner::regrole FROM pg_class WHERE relnamespace = 'err'::regnamespace AND relkind = 'r'
 ORDER BY relname;

--
-- a damaged catalog
--
-- the catalog table is missing
BEGIN;
ALTER TABLE migrate.migrations RENAME TO migrations_away;
SELECT migrate_add('004', 'x', 'SELECT 1;');
ROLLBACK;
BEGIN;
ALTER TABLE migrate.migrations RENAME TO migrations_away;
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('004', 'x', 'SELECT 1;')$$) AS migrate_add,
       pg_temp.sqlstate_of('SELECT * FROM migrate_apply()') AS migrate_apply;
ROLLBACK;
-- registered text edited by hand into something that cannot run
SELECT migrate_add('003', 'needs more rights', 'SELECT 1;') IS NOT NULL AS registered;
UPDATE migrate.migrations SET up = E'SELECT 1;\nROLLBACK;' WHERE version = '003';
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- (a COMMIT edited in is skipped at apply like a registered one: a dry run passes)
UPDATE migrate.migrations SET up = E'SELECT 1;\nCOMMIT;' WHERE version = '003';
SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true);
UPDATE migrate.migrations SET up = E'SELECT 1;\nSELEC 2;' WHERE version = '003';
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
UPDATE migrate.migrations SET verify = 'ROLLBACK;' WHERE version = '001';
SELECT migrate_verify('001');
SELECT version, "check", ok, sqlstate, message FROM migrate_check('001');
UPDATE migrate.migrations SET verify = NULL WHERE version = '001';
-- a requirement that is no longer registered
SELECT migrate_add('004', 'needs 003', 'SELECT 4;', requires => '{003}') IS NOT NULL AS registered;
DELETE FROM migrate.migrations WHERE version = '003';
SELECT * FROM migrate_plan();
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SELECT * FROM migrate_validate();
DELETE FROM migrate.migrations WHERE version = '004';

--
-- statements the executor cannot run inside migrate_apply()
--
-- COPY from the client is refused at registration (more in 14_registration_limits)
SELECT migrate_add('005', 'copy', E'CREATE TABLE copied (id int);\nCOPY copied FROM STDIN;') IS NOT NULL AS registered;
-- VACUUM hidden from registration (EXECUTE in a DO block) fails with its own SQLSTATE
SELECT migrate_add('005', 'copy',
                   E'CREATE TABLE copied (id int);\nDO $$ BEGIN EXECUTE ''VACUUM copied''; END $$;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- written as a statement, VACUUM is found at registration: the migration
-- becomes non-transactional (with a WARNING about the statement beside it),
-- and migrate_apply() leaves it pending instead of failing
SELECT migrate_add('005', 'copy', E'CREATE TABLE copied (id int);\nVACUUM copied;') IS NOT NULL AS registered;
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '005';
SELECT version, name, action, rows, checks FROM migrate_apply();
SELECT to_regclass('err.copied') AS copied;
DELETE FROM migrate.migrations WHERE version = '005';

--
-- a failed expectation is an ordinary error (23000) that a PL/pgSQL
-- WHEN OTHERS handler, such as pgTAP's throws_ok(), catches
--
SELECT migrate_add('006', 'expects too much', 'INSERT INTO base VALUES (1);',
                   expect => '{"base": 2}') IS NOT NULL AS registered;
DO $$
BEGIN
    PERFORM * FROM migrate_apply();
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'caught %', SQLSTATE;
END
$$;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
DELETE FROM migrate.migrations WHERE version = '006';

SELECT * FROM migrate_validate();
SELECT version, name, state FROM migrate_status();

RESET client_min_messages;
RESET search_path;
DROP SCHEMA err CASCADE;
DROP OWNED BY regress_migrate_user;
DROP ROLE regress_migrate_user;
