-- Other tools' history tables, planted by an attacker.
--   mallory:   may create schemas (CREATE on the database), nothing else.  She
--              plants look-alikes of Supabase's, Flyway's, dbmate's and
--              golang-migrate's tables, with code that runs as whoever writes
--              (or reads) them: it notes who ran it and, when that is a
--              superuser, makes mallory one.
--   app_owner: a non-superuser that applies migrations (the victim when no
--              superuser is around); owns its own copy of Supabase's table.
-- migrate reads or writes such a table only when it is a plain table owned by
-- the caller or a superuser, in a schema owned by one of them, with nothing
-- attached that runs code of another role; otherwise the sync skips it (with
-- a WARNING, checked in sql/09_import.sql) and the import refuses (42501).
-- Roles are cluster-wide, but CREATE ROLE is transactional: the final
-- ROLLBACK removes them.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
-- the sync's WARNINGs are shown by sql/09_import.sql; here only effects count
SET LOCAL client_min_messages = error;
SET LOCAL search_path = public;

SELECT plan(71);

-- ---------------------------------------------------------------- setup (superuser)
CREATE ROLE mallory NOLOGIN;
CREATE ROLE app_owner NOLOGIN;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO mallory, app_owner', current_database()); END $$;
GRANT EXECUTE ON FUNCTION
    migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
    migrate_apply(text, boolean, boolean, text),
    migrate_rollback(text),
    migrate_baseline(text),
    migrate_import_history(text),
    migrate_status()
    TO app_owner;

-- mallory's kit: a log of who ran her code, and the code
SET ROLE mallory;
CREATE SCHEMA kit;
GRANT USAGE ON SCHEMA kit TO PUBLIC;
CREATE TABLE kit.loot (who text, how text);
GRANT INSERT ON kit.loot TO PUBLIC;
CREATE FUNCTION kit.take(how text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kit.loot VALUES (current_user, how);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
        ALTER ROLE mallory SUPERUSER;
    END IF;
    RETURN '1';
END
$$;
CREATE FUNCTION kit.pwn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kit.take(TG_OP || ' on ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END
$$;
RESET ROLE;

-- What mallory got, and a clean slate for the next test.
CREATE FUNCTION pg_temp.harm() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    got text;
BEGIN
    SELECT string_agg(who || ': ' || how, '; ' ORDER BY who, how) INTO got FROM kit.loot;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory') THEN
        got := concat_ws('; ', got, 'mallory is a superuser');
        ALTER ROLE mallory NOSUPERUSER;
    END IF;
    DELETE FROM kit.loot;
    RETURN coalesce(got, 'none');
END
$$;

SELECT lives_ok($$
    SELECT migrate_add('001', 'one', 'CREATE TABLE public.one (id int);', 'DROP TABLE IF EXISTS public.one;');
    SELECT migrate_add('002', 'two', 'CREATE TABLE public.two (id int);', 'DROP TABLE IF EXISTS public.two;');
$$, 'register 001 and 002 (with down scripts)');
GRANT CREATE ON SCHEMA public TO app_owner;

-- ---------------------------------------------------------------- Supabase's table planted by mallory
SET ROLE mallory;
CREATE SCHEMA supabase_migrations;
GRANT USAGE ON SCHEMA supabase_migrations TO PUBLIC;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
GRANT ALL ON supabase_migrations.schema_migrations TO PUBLIC;
-- what she claims was applied (so that the import would skip 002)
INSERT INTO supabase_migrations.schema_migrations VALUES ('002', NULL, 'two');
CREATE TRIGGER pwn BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON supabase_migrations.schema_migrations
    FOR EACH STATEMENT EXECUTE FUNCTION kit.pwn();
RESET ROLE;

SELECT results_eq($$SELECT version, action FROM migrate_apply()$$,
                  $$VALUES ('001', 'applied'), ('002', 'applied')$$,
                  'mallory''s Supabase table: migrate_apply() applies');
SELECT is(pg_temp.harm(), 'none', 'migrate_apply() ran none of mallory''s code');
SELECT results_eq($$SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1$$,
                  $$VALUES ('002')$$, 'nor wrote to her table');
SELECT results_eq($$SELECT version, action FROM migrate_rollback('0')$$,
                  $$VALUES ('002', 'reverted'), ('001', 'reverted')$$,
                  'migrate_rollback() reverts');
SELECT is(pg_temp.harm(), 'none', 'migrate_rollback() ran none of mallory''s code');
SELECT results_eq($$SELECT version, action FROM migrate_baseline('001')$$,
                  $$VALUES ('001', 'baseline')$$, 'migrate_baseline() marks 001');
SELECT is(pg_temp.harm(), 'none', 'migrate_baseline() ran none of mallory''s code');
SELECT results_eq($$SELECT version FROM supabase_migrations.schema_migrations ORDER BY 1$$,
                  $$VALUES ('002')$$, 'her table is as she left it');
SELECT throws_ok($$SELECT * FROM migrate_import_history('supabase')$$, '42501',
                 'refusing to read Supabase CLI''s history table supabase_migrations.schema_migrations',
                 'migrate_import_history(''supabase'') refuses her table: 42501');
SELECT results_eq($$SELECT version, state FROM migrate_status()$$,
                  $$VALUES ('001', 'applied'), ('002', 'pending')$$,
                  'her claim that 002 was applied is not believed');
SELECT is(pg_temp.harm(), 'none', 'the refused import ran none of mallory''s code');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');

-- a non-superuser victim: same
SET ROLE app_owner;
SELECT results_eq($$SELECT version, action FROM migrate_apply(target => '001')$$,
                  $$VALUES ('001', 'applied')$$, 'app_owner applies 001 under mallory''s table');
SELECT throws_ok($$SELECT * FROM migrate_import_history('supabase')$$, '42501', NULL,
                 'app_owner''s import refuses her table too');
RESET ROLE;
SELECT is(pg_temp.harm(), 'none', 'app_owner ran none of mallory''s code');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');

-- a view in her schema, with her function behind it
SET ROLE mallory;
DROP TABLE supabase_migrations.schema_migrations;
CREATE VIEW supabase_migrations.schema_migrations AS
    SELECT v AS version, NULL::text[] AS statements, kit.take('read through a view') AS name
      FROM (VALUES ('002')) AS claims (v);
RESET ROLE;
SELECT throws_ok($$SELECT * FROM migrate_import_history('supabase')$$, '42501', NULL,
                 'a view as Supabase''s table: the import refuses');
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply under the view');
SELECT is(pg_temp.harm(), 'none', 'neither ran mallory''s code');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');

-- a superuser's table in her schema: she may drop and replace it at will
DROP VIEW supabase_migrations.schema_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, a superuser''s table in mallory''s schema');
SELECT is_empty($$SELECT * FROM supabase_migrations.schema_migrations$$, 'the table in her schema is not written');
SELECT throws_ok($$SELECT * FROM migrate_import_history('supabase')$$, '42501', NULL,
                 'nor read');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP SCHEMA supabase_migrations CASCADE;

-- ---------------------------------------------------------------- a superuser's table with mallory's code attached
CREATE SCHEMA supabase_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);

-- a trigger of hers (a careless GRANT TRIGGER)
GRANT USAGE ON SCHEMA supabase_migrations TO mallory;
GRANT TRIGGER ON supabase_migrations.schema_migrations TO mallory;
SET ROLE mallory;
CREATE TRIGGER pwn BEFORE INSERT OR DELETE ON supabase_migrations.schema_migrations
    FOR EACH STATEMENT EXECUTE FUNCTION kit.pwn();
RESET ROLE;
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, a superuser''s table with mallory''s trigger');
SELECT is(pg_temp.harm(), 'none', 'her trigger did not run');
SELECT is_empty($$SELECT * FROM supabase_migrations.schema_migrations$$, 'the table is not written');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP TRIGGER pwn ON supabase_migrations.schema_migrations;

-- a column default calling her function (a careless superuser)
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN created_by text DEFAULT kit.take('column default');
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, a default calling mallory''s function');
SELECT is(pg_temp.harm(), 'none', 'her function did not run');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
ALTER TABLE supabase_migrations.schema_migrations DROP COLUMN created_by;

-- an index on an expression with her function (IMMUTABLE is only a label)
SET ROLE mallory;
CREATE FUNCTION kit.key(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM kit.take('kit.key'); RETURN v; END
$$;
RESET ROLE;
CREATE INDEX ON supabase_migrations.schema_migrations (kit.key(name));
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, an index calling mallory''s function');
SELECT is(pg_temp.harm(), 'none', 'her function did not run');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP INDEX supabase_migrations.schema_migrations_key_idx;

-- a column of her domain, whose CHECK she may change at will
SET ROLE mallory;
CREATE DOMAIN kit.label AS text CHECK (kit.take('domain check') = '1');
RESET ROLE;
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN label kit.label DEFAULT 'x';
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, a column of mallory''s domain');
SELECT is(pg_temp.harm(), 'none', 'her domain''s check did not run');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
ALTER TABLE supabase_migrations.schema_migrations DROP COLUMN label;

-- a row-security policy calling her function, for a non-superuser caller
GRANT USAGE ON SCHEMA supabase_migrations TO app_owner;
GRANT SELECT, INSERT, DELETE ON supabase_migrations.schema_migrations TO app_owner;
ALTER TABLE supabase_migrations.schema_migrations ENABLE ROW LEVEL SECURITY;
CREATE POLICY pwn ON supabase_migrations.schema_migrations USING (kit.take('policy') = '1');
SET ROLE app_owner;
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'app_owner applies, a policy calling mallory''s function');
RESET ROLE;
SELECT is(pg_temp.harm(), 'none', 'her function did not run');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP POLICY pwn ON supabase_migrations.schema_migrations;
ALTER TABLE supabase_migrations.schema_migrations DISABLE ROW LEVEL SECURITY;

-- a partition: inserting into it checks the parent's key, an expression with her function
DROP SCHEMA supabase_migrations CASCADE;
CREATE SCHEMA supabase_migrations;
CREATE TABLE supabase_migrations.all_migrations (version text NOT NULL, statements text[], name text)
    PARTITION BY LIST (kit.key(version));
CREATE TABLE supabase_migrations.schema_migrations PARTITION OF supabase_migrations.all_migrations
    FOR VALUES IN ('001', '002');
SELECT lives_ok($$SELECT * FROM migrate_apply(target => '001')$$, 'apply, a partition keyed by mallory''s function');
SELECT is(pg_temp.harm(), 'none', 'her function did not run');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP SCHEMA supabase_migrations CASCADE;
CREATE SCHEMA supabase_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);

-- ---------------------------------------------------------------- the legitimate paths
-- a superuser's table, with a superuser's trigger: written, read
CREATE TABLE public.audit (what text);
CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit VALUES (TG_OP); RETURN NULL; END
$$;
CREATE TRIGGER audit AFTER INSERT OR DELETE ON supabase_migrations.schema_migrations
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit();
SELECT lives_ok($$SELECT * FROM migrate_apply()$$, 'a superuser''s table: apply');
SELECT results_eq($$SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY 1$$,
                  $$VALUES ('001', 'one'), ('002', 'two')$$, 'the applied migrations are recorded');
SELECT lives_ok($$SELECT * FROM migrate_rollback('001')$$, 'rollback of 002');
SELECT results_eq($$SELECT version FROM supabase_migrations.schema_migrations$$,
                  $$VALUES ('001')$$, 'its row is removed');
SELECT results_eq($$SELECT what FROM public.audit ORDER BY 1$$, $$VALUES ('DELETE'), ('INSERT'), ('INSERT')$$,
                  'the superuser''s trigger ran');
INSERT INTO supabase_migrations.schema_migrations VALUES ('002', NULL, 'two');
SELECT results_eq($$SELECT version, result FROM migrate_import_history('supabase') ORDER BY 1$$,
                  $$VALUES ('001', 'already applied'), ('002', 'imported')$$, 'and it is imported from');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
SELECT is_empty($$SELECT * FROM supabase_migrations.schema_migrations$$, 'the rows are removed');
SELECT results_eq($$SELECT version FROM migrate_baseline('002') ORDER BY 1$$, $$VALUES ('001'), ('002')$$,
                  'a baseline');
SELECT results_eq($$SELECT version, statements FROM supabase_migrations.schema_migrations ORDER BY 1$$,
                  $$VALUES ('001', '{}'::text[]), ('002', '{}')$$, 'is recorded too (with no statements)');
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP SCHEMA supabase_migrations CASCADE;

-- the caller's own schema and table (a non-superuser)
SET ROLE app_owner;
CREATE SCHEMA supabase_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
SELECT results_eq($$SELECT version, action FROM migrate_apply(target => '001')$$,
                  $$VALUES ('001', 'applied')$$, 'app_owner''s own table: apply');
SELECT results_eq($$SELECT version, name FROM supabase_migrations.schema_migrations$$,
                  $$VALUES ('001', 'one')$$, 'is recorded in it');
RESET ROLE;
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
DROP SCHEMA supabase_migrations CASCADE;

-- ---------------------------------------------------------------- Flyway's, dbmate's and golang-migrate's tables
-- found through search_path, where mallory got first
SET ROLE mallory;
CREATE TABLE kit.flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
                                        type varchar(20), script varchar(1000), checksum int, installed_by varchar(100),
                                        installed_on timestamp DEFAULT now(), execution_time int, success boolean);
INSERT INTO kit.flyway_schema_history (installed_rank, version, description, type, script, installed_by,
                                       execution_time, success)
     VALUES (1, '2', 'two', 'SQL', 'V2__two.sql', 'mallory', 1, true);
CREATE TABLE kit.schema_migrations (version varchar(128) PRIMARY KEY);
INSERT INTO kit.schema_migrations VALUES ('002');
RESET ROLE;
SET LOCAL search_path = kit, public;
SELECT throws_ok($$SELECT * FROM migrate_import_history('flyway')$$, '42501',
                 'refusing to read Flyway''s history table kit.flyway_schema_history',
                 'Flyway''s table owned by mallory: 42501');
SELECT throws_ok($$SELECT * FROM migrate_import_history('dbmate')$$, '42501',
                 'refusing to read dbmate''s history table kit.schema_migrations',
                 'dbmate''s table owned by mallory: 42501');
SET ROLE mallory;
DROP TABLE kit.schema_migrations;
CREATE TABLE kit.schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO kit.schema_migrations VALUES (2, false);
RESET ROLE;
SELECT throws_ok($$SELECT * FROM migrate_import_history('golang-migrate')$$, '42501',
                 'refusing to read golang-migrate''s history table kit.schema_migrations',
                 'golang-migrate''s table owned by mallory: 42501');
-- a view named schema_migrations with her function behind it
SET ROLE mallory;
DROP TABLE kit.schema_migrations;
CREATE VIEW kit.schema_migrations AS SELECT kit.take('read through a view')::bigint + 1 AS version, false AS dirty;
RESET ROLE;
SELECT throws_ok($$SELECT * FROM migrate_import_history('golang-migrate')$$, '42501', NULL,
                 'a view named schema_migrations: 42501 (golang-migrate)');
SELECT throws_ok($$SELECT * FROM migrate_import_history('dbmate')$$, '42501', NULL,
                 'a view named schema_migrations: 42501 (dbmate)');
SELECT is(pg_temp.harm(), 'none', 'no import ran mallory''s code');
SELECT results_eq($$SELECT version, state FROM migrate_status()$$,
                  $$VALUES ('001', 'pending'), ('002', 'pending')$$, 'and nothing was imported');

-- the same tables owned by a superuser: imported
SET LOCAL search_path = public;
CREATE SCHEMA fly;
CREATE TABLE fly.flyway_schema_history AS SELECT * FROM kit.flyway_schema_history;
CREATE TABLE fly.schema_migrations (version varchar(128) PRIMARY KEY);
INSERT INTO fly.schema_migrations VALUES ('001');
SET LOCAL search_path = fly, public;
SELECT results_eq($$SELECT version, result FROM migrate_import_history('flyway')$$,
                  $$VALUES ('002', 'imported')$$, 'a superuser''s Flyway table is imported');
-- (002, imported from Flyway's table, was recorded in dbmate's too: it is kept in step)
SELECT results_eq($$SELECT version, result FROM migrate_import_history('dbmate')$$,
                  $$VALUES ('001', 'imported'), ('002', 'already applied')$$, 'a superuser''s dbmate table is imported');

-- in schema public, owned by pg_database_owner (the database's owner, a superuser here)
SELECT lives_ok($$SELECT * FROM migrate_rollback('0')$$, 'back to nothing applied');
SET LOCAL search_path = public;
CREATE TABLE public.flyway_schema_history AS SELECT * FROM kit.flyway_schema_history;
SELECT results_eq($$SELECT version, result FROM migrate_import_history('flyway')$$,
                  $$VALUES ('002', 'imported')$$, 'a superuser''s Flyway table in public is imported');
-- app_owner's table: app_owner imports it, a superuser does not
SET ROLE app_owner;
CREATE TABLE public.schema_migrations (version varchar(128) PRIMARY KEY);
INSERT INTO public.schema_migrations VALUES ('001');
RESET ROLE;
SELECT throws_ok($$SELECT * FROM migrate_import_history('dbmate')$$, '42501',
                 'refusing to read dbmate''s history table public.schema_migrations',
                 'a superuser does not read app_owner''s dbmate table');
SET ROLE app_owner;
SELECT results_eq($$SELECT version, result FROM migrate_import_history('dbmate')$$,
                  $$VALUES ('001', 'imported')$$, 'app_owner imports its own dbmate table in public');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
