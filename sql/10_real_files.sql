--
-- 10_real_files: what real migration directories hold.  Statements that
-- cannot run in a transaction block make a migration non-transactional (with
-- a note), unsafe mixes are warned about at registration, BEGIN/COMMIT
-- written for psql are absorbed, and migrate_apply() / migrate_run() leave
-- non-transactional migrations pending.  Progress NOTICEs carry timings, so
-- client_min_messages is warning except around an apply that fails.
--
-- a fresh catalog
DROP EXTENSION migrate;
CREATE EXTENSION migrate;

CREATE SCHEMA rf;
SET search_path = rf, public;
SET client_min_messages = warning;

--
-- statements that cannot run in a transaction block, each in a file of its
-- own (registered only: none of them runs here), and look-alikes that can
--
SELECT file, version, result, detail
  FROM migrate_add_scripts(
    ARRAY['101_create_index_concurrently.sql', '102_drop_index_concurrently.sql',
          '103_reindex_index_concurrently.sql', '104_reindex_options_concurrently.sql',
          '105_reindex_schema.sql', '106_reindex_database.sql',
          '107_vacuum.sql', '108_vacuum_analyze.sql', '109_vacuum_options.sql',
          '110_cluster_all.sql', '111_create_database.sql', '112_drop_database.sql',
          '113_alter_database_tablespace.sql', '114_create_tablespace.sql', '115_drop_tablespace.sql',
          '116_alter_system.sql', '117_detach_concurrently.sql', '118_discard_all.sql',
          '201_analyze.sql', '202_cluster_table.sql', '203_reindex_table.sql',
          '204_reindex_not_concurrently.sql', '205_alter_database_set.sql', '206_detach.sql',
          '207_discard_temp.sql', '208_create_index.sql'],
    ARRAY['CREATE INDEX CONCURRENTLY items_name_idx ON items (name);',
          'DROP INDEX CONCURRENTLY items_name_idx;',
          'REINDEX INDEX CONCURRENTLY items_name_idx;',
          'REINDEX (CONCURRENTLY) TABLE items;',
          'REINDEX SCHEMA rf;',
          'REINDEX DATABASE regress_migrate_db;',
          'VACUUM items;',
          'VACUUM ANALYZE items;',
          'VACUUM (FREEZE, ANALYZE) items;',
          'CLUSTER;',
          'CREATE DATABASE regress_migrate_db;',
          'DROP DATABASE regress_migrate_db;',
          'ALTER DATABASE regress_migrate_db SET TABLESPACE pg_default;',
          $$CREATE TABLESPACE regress_migrate_ts LOCATION '/nonexistent';$$,
          'DROP TABLESPACE regress_migrate_ts;',
          $$ALTER SYSTEM SET work_mem = '8MB';$$,
          'ALTER TABLE parted DETACH PARTITION parted_1 CONCURRENTLY;',
          'DISCARD ALL;',
          'ANALYZE items;',
          'CLUSTER items USING items_pkey;',
          'REINDEX TABLE items;',
          'REINDEX (CONCURRENTLY false) TABLE items;',
          $$ALTER DATABASE regress_migrate_db SET work_mem = '8MB';$$,
          'ALTER TABLE parted DETACH PARTITION parted_1;',
          'DISCARD TEMP;',
          'CREATE INDEX items_name_idx ON items (name);']);
SELECT version, name, transactional, notes FROM migrate.migrations ORDER BY version_key;
SELECT step, version, reason FROM migrate_plan() WHERE version < '200';

--
-- "-- migrate:up transaction:true" does not make CREATE INDEX CONCURRENTLY
-- transactional; neither does migrate_add(transactional => true)
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
SELECT file, version, result, detail FROM migrate_add_script('001_tx_true.sql', $f$-- migrate:up transaction:true
CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
-- migrate:down
DROP INDEX items_name_idx;
$f$);
SELECT left(migrate_add('002', 'explicit', 'CREATE INDEX CONCURRENTLY items_id_idx ON items (id);',
                        transactional => true), 12) AS checksum;
SELECT version, name, transactional FROM migrate.migrations ORDER BY version_key;

--
-- unsafe mixes: a WARNING at registration and a note
--
-- CREATE INDEX CONCURRENTLY with other statements cannot be atomic
SELECT file, version, result FROM migrate_add_script('003_mixed.sql', $f$CREATE TABLE mixed (id int);
CREATE INDEX CONCURRENTLY mixed_id_idx ON mixed (id);
INSERT INTO mixed VALUES (1);
$f$);
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '003';
-- the same text again (a directory loaded at every deploy): unchanged, no warning
SELECT file, version, result FROM migrate_add_script('003_mixed.sql', $f$CREATE TABLE mixed (id int);
CREATE INDEX CONCURRENTLY mixed_id_idx ON mixed (id);
INSERT INTO mixed VALUES (1);
$f$);
-- a new enum value used in the migration that adds it
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE feelings (m mood);
SELECT file, version, result FROM migrate_add_script('010_happy.sql', $f$ALTER TYPE mood ADD VALUE 'happy';
INSERT INTO feelings VALUES ('happy');
$f$);
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '010';
-- ... is refused by the linter before anything runs (enum-value-in-transaction) ...
SELECT version, action FROM migrate_apply(target => '010');
-- ... and, with the linter off, indeed refused by PostgreSQL
SET migrate.lint = off;
SELECT version, action FROM migrate_apply(target => '010');
RESET migrate.lint;
-- the value added alone, and used in a later migration: no warning, a note of
-- the value added (the plan finds the later use); run with migrate_run(), which
-- commits after each migration
SELECT file, version, result
  FROM migrate_add_scripts(ARRAY['010_happy.sql', '011_feel_happy.sql'],
                           ARRAY[$f$ALTER TYPE mood ADD VALUE 'happy';
$f$, $f$INSERT INTO feelings VALUES ('happy');
$f$]);
SELECT version, transactional, notes FROM migrate.migrations WHERE version IN ('010', '011') ORDER BY version;
CALL migrate_run(target => '011');
SELECT * FROM feelings;
SELECT version, state FROM migrate_status() WHERE version IN ('010', '011') ORDER BY version;

--
-- BEGIN/COMMIT written for psql: absorbed, with a note; statements in DO
-- blocks and function bodies are untouched
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
DROP TABLE feelings;
DROP TYPE mood;
SELECT file, version, result
  FROM migrate_add_scripts(
    ARRAY['030_wrapped.sql', '031_lower_case.sql', '032_start_transaction.sql', '033_two_blocks.sql',
          '034_bodies.sql'],
    ARRAY[$f$BEGIN;
CREATE TABLE wrapped (id int);
COMMIT;
$f$, $f$begin;
create table lower_case (id int);
end;
$f$, $f$START TRANSACTION;
CREATE TABLE started (id int);
COMMIT;
$f$, $f$BEGIN;
CREATE TABLE blocks (id int);
COMMIT;

BEGIN;
INSERT INTO blocks VALUES (1), (2);
COMMIT;
$f$, $f$DO $$
BEGIN
    CREATE TABLE from_do (id int);
END
$$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    RETURN NEW;
END
$body$;
CREATE PROCEDURE batch() LANGUAGE plpgsql AS $body$
BEGIN
    COMMIT;
END
$body$;
$f$]);
SELECT version, name, transactional, notes FROM migrate.status ORDER BY version_key;
SELECT version, name, action, rows, checks FROM migrate_apply();
SELECT to_regclass('rf.wrapped') AS wrapped, to_regclass('rf.lower_case') AS lower_case,
       to_regclass('rf.started') AS started, to_regclass('rf.from_do') AS from_do;
SELECT count(*) AS blocks FROM blocks;
-- a skipped COMMIT commits nothing: a later failure takes the whole migration
-- back.  The NOTICEs name the skipped lines (a failed migration has no
-- timing NOTICE).
SELECT file, version, result FROM migrate_add_script('035_atomic.sql', $f$BEGIN;
CREATE TABLE atomic (id int);
COMMIT;
INSERT INTO atomic VALUES (1 / 0);
$f$);
SELECT version, notes FROM migrate.status WHERE version = '035';
SET client_min_messages = notice;
SELECT version, action FROM migrate_apply();
SET client_min_messages = warning;
SELECT to_regclass('rf.atomic') AS atomic;
SELECT version, state FROM migrate_status() WHERE version = '035';

--
-- migrate_apply() with a non-transactional migration in the middle of the
-- plan: the rest is applied; it and what requires it are left pending
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
DROP TABLE wrapped, lower_case, started, blocks, from_do;
DROP FUNCTION touch();
DROP PROCEDURE batch();
SELECT file, version, result, detail
  FROM migrate_add_scripts(ARRAY['001_items.sql', '002_index_names.sql', '003_notes.sql', '004_cluster_items.sql'],
                           ARRAY[$f$CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items VALUES (1, 'b'), (2, 'a');
$f$, $f$CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
$f$, $f$CREATE TABLE notes (id int PRIMARY KEY, body text);
$f$, $f$-- migrate:requires 002
CLUSTER items USING items_name_idx;
$f$]);
SELECT * FROM migrate_plan();
SELECT version, name, action, rows, checks FROM migrate_apply();
-- 002 is older than the applied 003, but 'pending', not 'out of order'
SELECT version, state, transactional, notes FROM migrate.status ORDER BY version_key;
SELECT problem, version, name FROM migrate_validate();
SELECT version, action FROM migrate.history WHERE action <> 'register' ORDER BY id;
-- the next call, and a dry run, leave them pending again without an error
SELECT version, name, action, rows, checks FROM migrate_apply();
SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true);
-- the way on from the HINT: run the statement outside a transaction block,
-- record it with migrate_baseline(); then what requires it applies
CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
SELECT * FROM migrate_baseline('002');
SELECT version, name, action, rows, checks FROM migrate_apply();
SELECT version, state FROM migrate_status();
SELECT problem, version, name FROM migrate_validate();

--
-- CALL migrate_run() does the same
--
SELECT file, version, result, detail
  FROM migrate_add_scripts(ARRAY['005_index_bodies.sql', '006_tags.sql', '007_note_tags.sql'],
                           ARRAY[$f$CREATE INDEX CONCURRENTLY notes_body_idx ON notes (body);
$f$, $f$CREATE TABLE tags (id int PRIMARY KEY);
$f$, $f$-- migrate:requires 005
ALTER TABLE notes ADD COLUMN tag int REFERENCES tags;
$f$]);
CALL migrate_run();
SELECT version, state, transactional FROM migrate.status ORDER BY version_key;
SELECT problem, version, name FROM migrate_validate();
SELECT to_regclass('rf.tags') AS tags, to_regclass('rf.notes_body_idx') AS notes_body_idx;

RESET search_path;
DROP SCHEMA rf CASCADE;
RESET client_min_messages;
