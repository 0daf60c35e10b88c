--
-- 09_import: migrate_import_history() from the history tables of the Supabase
-- CLI, Flyway, dbmate and golang-migrate (created exactly as each tool
-- creates them), and the mirroring of what migrate applies into the tools'
-- tables (migrate.sync_histories; test/t/016_sync_histories.pl has the rest).
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
-- status and history without timestamps (string bodies: they survive DROP EXTENSION)
CREATE FUNCTION pg_temp.status() RETURNS TABLE(version text, name text, kind text, state text)
LANGUAGE sql AS $$
SELECT version, name, kind, state FROM migrate.status ORDER BY version_key
$$;
CREATE FUNCTION pg_temp.history() RETURNS TABLE(version text, action text, outcome text, detail jsonb)
LANGUAGE sql AS $$
SELECT version, action, outcome, detail FROM migrate.history WHERE action <> 'register' ORDER BY id
$$;

CREATE SCHEMA imp;
SET search_path = imp, public;
SET client_min_messages = warning;

-- unknown or null source: 22023, 22004
SELECT * FROM migrate_import_history('liquibase');
SELECT * FROM migrate_import_history(NULL);
-- the tools' tables do not exist (yet): 42P01
SELECT * FROM migrate_import_history('supabase');
SELECT * FROM migrate_import_history('flyway');
SELECT * FROM migrate_import_history('dbmate');
SELECT * FROM migrate_import_history('golang-migrate');
SELECT source, pg_temp.sqlstate_of(format('SELECT * FROM migrate_import_history(%L)', source))
  FROM unnest(ARRAY['liquibase', NULL, 'supabase', 'flyway', 'dbmate', 'golang-migrate']) AS source;

--
-- Supabase CLI: supabase_migrations.schema_migrations
--
-- as the CLI creates it (pkg/migration/history.go)
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;
-- what `supabase db push` recorded
CREATE TABLE chats (id int PRIMARY KEY);
CREATE TABLE memories (id int PRIMARY KEY);
INSERT INTO supabase_migrations.schema_migrations (version, statements, name) VALUES
    ('20240103000001', ARRAY['CREATE TABLE chats (id int PRIMARY KEY)'], 'chat_schema'),
    ('20240215093000', ARRAY['CREATE TABLE memories (id int PRIMARY KEY)'], 'memories'),
    ('20240301000000', ARRAY['CREATE TABLE gone (id int)'], 'only_in_supabase'),
    ('legacy', NULL, 'hand_made');

-- the project's files
SELECT file, version, result
  FROM migrate_add_scripts(ARRAY['20240103000001_chat_schema.sql', '20240215093000_memories.sql',
                                 '20251003_minutes.sql'],
                           ARRAY[E'-- migrate:up\nCREATE TABLE chats (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE chats;\n',
                                 E'-- migrate:up\nCREATE TABLE memories (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE memories;\n',
                                 E'-- migrate:up\nCREATE TABLE minutes (id int PRIMARY KEY);\nCREATE INDEX ON minutes (id);\n-- migrate:down\nDROP TABLE minutes;\n']);
SELECT * FROM migrate_import_history('supabase') ORDER BY version;
SELECT * FROM pg_temp.status();
SELECT * FROM pg_temp.history();
SELECT version, touched FROM migrate.applied ORDER BY version_key;
-- again: already applied
SELECT * FROM migrate_import_history('supabase') ORDER BY version;
SELECT count(*) AS imports FROM migrate.history WHERE action = 'import';

-- what migrate applies is recorded in Supabase's table too
SELECT version, rows FROM migrate_apply();
SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version;
-- a repeatable migration is not
SELECT file, result FROM migrate_add_script('R__chat_count.sql',
    'CREATE OR REPLACE FUNCTION chat_count() RETURNS bigint LANGUAGE sql AS $$SELECT count(*) FROM chats$$;');
SELECT version, rows FROM migrate_apply();
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version;
-- nor is a dry run
SELECT file, result FROM migrate_add_script('20251004_seconds.sql',
    E'-- migrate:up\nCREATE TABLE seconds (id int);\n-- migrate:down\nDROP TABLE seconds;\n');
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version;
-- a rollback removes the rows of what it reverts
SELECT version, action FROM migrate_rollback('20240215093000');
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version;
SELECT version, state FROM pg_temp.status();
-- also of what was imported
SELECT version, action FROM migrate_rollback('0');
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version;

-- newer CLIs have more columns; the mirror still works
DROP TABLE supabase_migrations.schema_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text,
                                                    created_by text, idempotency_key text);
SELECT version, rows FROM migrate_apply(target => '20251003');
-- and CALL migrate_run() records too
CALL migrate_run();
SELECT version, name, statements, created_by, idempotency_key
  FROM supabase_migrations.schema_migrations ORDER BY version;
SELECT * FROM migrate_import_history('supabase') ORDER BY version;
SELECT version, action FROM migrate_rollback('0');
SELECT count(*) AS supabase_rows FROM supabase_migrations.schema_migrations;
-- a baseline marks migrations applied without running them; Supabase's
-- table records them too (with no statements), until they are reverted
CREATE TABLE chats (id int PRIMARY KEY);
CREATE TABLE memories (id int PRIMARY KEY);
SELECT * FROM migrate_baseline('20240215093000');
SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version;
SELECT version, action FROM migrate_rollback('0');
SELECT count(*) AS supabase_rows FROM supabase_migrations.schema_migrations;
-- without Supabase's table, nothing is mirrored
DROP SCHEMA supabase_migrations CASCADE;
SELECT version, rows FROM migrate_apply(target => '20251003');
SELECT version, state FROM pg_temp.status();
SELECT version, action FROM migrate_rollback('0');
DROP FUNCTION chat_count();

--
-- Flyway: flyway_schema_history
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;
-- as Flyway creates it (createMetaDataTable.sql for PostgreSQL)
CREATE TABLE "imp"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "imp"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "imp"."flyway_schema_history" ("success");
-- V1 and V1.1 applied, V2 failed, R__refresh_views applied, V3 (no file
-- here) applied, and V1.1 undone (Flyway Teams): the latest row of a version
-- decides, so V1.1 is not imported
INSERT INTO flyway_schema_history
       (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 1447519722, 'postgres', 12, true),
    (2, '1.1', 'add email', 'SQL', 'V1.1__add_email.sql', -1284771920, 'postgres', 5, true),
    (3, NULL, 'refresh views', 'SQL', 'R__refresh_views.sql', 89021373, 'postgres', 4, true),
    (4, '2', 'add orders', 'SQL', 'V2__add_orders.sql', 1029384756, 'postgres', 7, false),
    (5, '3', 'add invoices', 'SQL', 'V3__add_invoices.sql', 564738291, 'postgres', 6, true),
    (6, '1.1', 'add email', 'UNDO_SQL', 'U1.1__add_email.sql', 918273645, 'postgres', 3, true);
SELECT file, version, kind, result
  FROM migrate_add_scripts(ARRAY['V1__create_users.sql', 'V1.1__add_email.sql', 'U1.1__add_email.sql',
                                 'V2__add_orders.sql', 'R__refresh_views.sql'],
                           ARRAY['CREATE TABLE users (id int PRIMARY KEY);',
                                 'ALTER TABLE users ADD COLUMN email text;',
                                 'ALTER TABLE users DROP COLUMN email;',
                                 'CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users);',
                                 'CREATE OR REPLACE VIEW user_ids AS SELECT id FROM users;']);
CREATE TABLE users (id int PRIMARY KEY);
CREATE VIEW user_ids AS SELECT id FROM users;
SELECT * FROM migrate_import_history('flyway');
SELECT * FROM pg_temp.status();
SELECT * FROM pg_temp.history();
SELECT * FROM migrate_plan();
-- V1.1 applied again after its undo: imported now
INSERT INTO flyway_schema_history
       (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
    (8, '1.1', 'add email', 'SQL', 'V1.1__add_email.sql', -1284771920, 'postgres', 5, true);
SELECT * FROM migrate_import_history('flyway');
SELECT * FROM pg_temp.status();
-- Flyway's schema creation marker and baseline rows are not migrations: skipped
INSERT INTO flyway_schema_history
       (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
    (0, NULL, '<< Flyway Schema Creation >>', 'SCHEMA', '"imp"', NULL, 'postgres', 0, true),
    (7, '0.9', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'postgres', 0, true);
SELECT * FROM migrate_import_history('flyway');
-- a DELETE row (flyway repair of a missing migration) takes V3 back
INSERT INTO flyway_schema_history
       (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
    (9, '3', 'add invoices', 'DELETE', 'V3__add_invoices.sql', 564738291, 'postgres', 0, true);
SELECT * FROM migrate_import_history('flyway');
DROP TABLE flyway_schema_history;
DROP VIEW user_ids;
DROP TABLE users;

--
-- dbmate: schema_migrations (version varchar(128) primary key)
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;
CREATE SCHEMA dbm;
-- as dbmate creates it
CREATE TABLE IF NOT EXISTS dbm.schema_migrations (version varchar(128) PRIMARY KEY);
INSERT INTO dbm.schema_migrations (version) VALUES ('20151129054053'), ('20151129054512'), ('20160101000000');
SELECT file, version, result
  FROM migrate_add_scripts(ARRAY['20151129054053_create_users.sql', '20151129054512_create_posts.sql',
                                 '20160210080000_add_titles.sql'],
                           ARRAY[E'-- migrate:up\nCREATE TABLE dbm_users (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE dbm_users;\n',
                                 E'-- migrate:up\nCREATE TABLE dbm_posts (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE dbm_posts;\n',
                                 E'-- migrate:up\nALTER TABLE dbm_posts ADD COLUMN title text;\n-- migrate:down\nALTER TABLE dbm_posts DROP COLUMN title;\n']);
-- not in search_path: 42P01
SELECT * FROM migrate_import_history('dbmate');
SET search_path = dbm, imp, public;
-- (with Supabase's table present, imported migrations are recorded there too)
CREATE SCHEMA supabase_migrations;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
SELECT * FROM migrate_import_history('dbmate') ORDER BY version;
SELECT * FROM pg_temp.status();
SELECT * FROM pg_temp.history();
SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version;
DROP SCHEMA supabase_migrations CASCADE;
SELECT * FROM migrate_import_history('dbmate') ORDER BY version;
-- golang-migrate's reader refuses dbmate's table: 42809
SELECT * FROM migrate_import_history('golang-migrate');

--
-- golang-migrate: schema_migrations (version bigint, dirty boolean), one row
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;
CREATE SCHEMA gol;
SET search_path = gol, imp, public;
-- as golang-migrate creates it (database/postgres)
CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
SELECT file, version, part, result
  FROM migrate_add_scripts(ARRAY['1_create_users.up.sql', '1_create_users.down.sql',
                                 '2_create_posts.up.sql', '2_create_posts.down.sql',
                                 '10_index_posts.up.sql', '10_index_posts.down.sql'],
                           ARRAY['CREATE TABLE gol_users (id int PRIMARY KEY);', 'DROP TABLE gol_users;',
                                 'CREATE TABLE gol_posts (id int PRIMARY KEY);', 'DROP TABLE gol_posts;',
                                 'CREATE INDEX gol_posts_id ON gol_posts (id);', 'DROP INDEX gol_posts_id;']);
-- an empty table: nothing to import
SELECT * FROM migrate_import_history('golang-migrate');
-- dirty: 55000
INSERT INTO schema_migrations VALUES (2, true);
SELECT * FROM migrate_import_history('golang-migrate');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_import_history('golang-migrate')$$);
SELECT version, state FROM pg_temp.status();
-- clean at version 2: every registered version up to 2
UPDATE schema_migrations SET dirty = false;
SELECT * FROM migrate_import_history('golang-migrate');
SELECT * FROM pg_temp.status();
SELECT * FROM pg_temp.history();
-- dbmate's reader refuses golang-migrate's table: 42809
SELECT * FROM migrate_import_history('dbmate');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_import_history('dbmate')$$) AS dbmate_on_golang;
SET search_path = dbm, imp, public;
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_import_history('golang-migrate')$$) AS golang_on_dbmate;
SET search_path = gol, imp, public;
-- at version 11, which is not registered: 10 is imported too
UPDATE schema_migrations SET version = 11;
SELECT * FROM migrate_import_history('golang-migrate');
SELECT version, state FROM pg_temp.status();

DROP SCHEMA dbm, gol CASCADE;

--
-- Another role's tables.  They are read and written with the caller's
-- rights, so what is attached to them would run with the caller's rights,
-- and what they say decides what is marked applied: only a plain table owned
-- by the caller or a superuser, in a schema owned by one of them, with no
-- rule and nothing attached that uses another role's code, is used.  The
-- sync skips any other (one WARNING a transaction); the import refuses it:
-- 42501.
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;
CREATE ROLE regress_migrate_mallory;
CREATE SCHEMA mal AUTHORIZATION regress_migrate_mallory;
SET search_path = mal, imp, public;
SELECT file, version, result
  FROM migrate_add_scripts(ARRAY['1_one.sql', '2_two.sql'],
                           ARRAY[E'-- migrate:up\nCREATE TABLE imp.one (id int);\n-- migrate:down\nDROP TABLE IF EXISTS imp.one;\n',
                                 E'-- migrate:up\nCREATE TABLE imp.two (id int);\n-- migrate:down\nDROP TABLE IF EXISTS imp.two;\n']);
-- Supabase's schema and table, created by her first
CREATE SCHEMA supabase_migrations AUTHORIZATION regress_migrate_mallory;
SET ROLE regress_migrate_mallory;
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
INSERT INTO supabase_migrations.schema_migrations VALUES ('2', NULL, 'two');
RESET ROLE;
SELECT version, action FROM migrate_apply();
SELECT version, action FROM migrate_rollback('0');
SELECT * FROM migrate_baseline('1');
SELECT * FROM migrate_import_history('supabase');
SELECT version FROM supabase_migrations.schema_migrations;
SELECT version, state FROM pg_temp.status();
-- a superuser's table in her schema: she may replace it at will
ALTER TABLE supabase_migrations.schema_migrations OWNER TO CURRENT_USER;
SELECT * FROM migrate_import_history('supabase');
SELECT version, action FROM migrate_rollback('0');
-- a view
ALTER SCHEMA supabase_migrations OWNER TO CURRENT_USER;
DROP TABLE supabase_migrations.schema_migrations;
CREATE VIEW supabase_migrations.schema_migrations AS SELECT '2'::text AS version, 'two'::text AS name;
SELECT * FROM migrate_import_history('supabase');
DROP VIEW supabase_migrations.schema_migrations;
-- a superuser's table with her trigger (a careless GRANT TRIGGER)
CREATE TABLE supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY, statements text[], name text);
GRANT USAGE ON SCHEMA supabase_migrations TO regress_migrate_mallory;
GRANT TRIGGER ON supabase_migrations.schema_migrations TO regress_migrate_mallory;
SET ROLE regress_migrate_mallory;
CREATE FUNCTION mal.note() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER note AFTER INSERT ON supabase_migrations.schema_migrations
    FOR EACH STATEMENT EXECUTE FUNCTION mal.note();
RESET ROLE;
SELECT version, action FROM migrate_apply();
SELECT * FROM migrate_import_history('supabase');
DROP TRIGGER note ON supabase_migrations.schema_migrations;
-- a superuser's table with a rule
CREATE RULE keep AS ON DELETE TO supabase_migrations.schema_migrations DO INSTEAD NOTHING;
SELECT * FROM migrate_import_history('supabase');
SELECT version, action FROM migrate_rollback('0');
DROP RULE keep ON supabase_migrations.schema_migrations;
-- none of that: used
SELECT version, action FROM migrate_apply();
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version;
SELECT * FROM migrate_import_history('supabase') ORDER BY version;
SELECT version, action FROM migrate_rollback('0');
SELECT count(*) AS supabase_rows FROM supabase_migrations.schema_migrations;
DROP SCHEMA supabase_migrations CASCADE;
-- Flyway's, dbmate's and golang-migrate's tables are found through
-- search_path: hers come first
SET ROLE regress_migrate_mallory;
CREATE TABLE mal.flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
                                        type varchar(20), success boolean);
CREATE TABLE mal.schema_migrations (version varchar(128) PRIMARY KEY);
RESET ROLE;
SELECT * FROM migrate_import_history('flyway');
SELECT * FROM migrate_import_history('dbmate');
SELECT * FROM migrate_import_history('golang-migrate');
SELECT source, pg_temp.sqlstate_of(format('SELECT * FROM migrate_import_history(%L)', source))
  FROM unnest(ARRAY['flyway', 'dbmate', 'golang-migrate']) AS source;
SELECT version, state FROM pg_temp.status();
-- the sync skips them, one WARNING each a transaction (42501), and
-- migrate_histories() says why
SELECT version, action FROM migrate_apply();
\set VERBOSITY sqlstate
BEGIN;
SELECT version, action FROM migrate_rollback('0');
ROLLBACK;
\set VERBOSITY default
SELECT version, action FROM migrate_rollback('0');
SELECT * FROM migrate_histories();

DROP SCHEMA mal CASCADE;
DROP ROLE regress_migrate_mallory;

--
-- Kept in step: a version the tool cannot express is reported, not written;
-- golang-migrate's dirty row is left alone: 01000
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;
CREATE SCHEMA gsync;
SET search_path = gsync, imp, public;
CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
SELECT migrate_add('1', 'one', 'SELECT 1', 'SELECT 1');
SELECT migrate_add('1.5', 'dotted', 'SELECT 1', 'SELECT 1');
SELECT version, action FROM migrate_apply(target => '1');
SELECT * FROM schema_migrations;
\set VERBOSITY sqlstate
BEGIN;
SELECT version, action FROM migrate_apply();
ROLLBACK;
\set VERBOSITY default
SELECT version, action FROM migrate_apply();
SELECT * FROM schema_migrations;
UPDATE schema_migrations SET dirty = true;
\set VERBOSITY sqlstate
BEGIN;
SELECT version, action FROM migrate_rollback('0');
ROLLBACK;
\set VERBOSITY default
SELECT version, action FROM migrate_rollback('0');
SELECT * FROM schema_migrations;
-- turned off: nothing written, and migrate_histories() says so
DELETE FROM schema_migrations;
SET migrate.sync_histories = off;
SELECT version, action FROM migrate_apply(target => '1');
SELECT count(*) AS golang_rows FROM schema_migrations;
SELECT * FROM migrate_histories();
RESET migrate.sync_histories;
SELECT * FROM migrate_histories();
DROP SCHEMA gsync CASCADE;
RESET client_min_messages;
