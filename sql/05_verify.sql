--
-- 05_verify: what migrate_apply() checks after each migration (row count
-- expectations, verify queries, constraint re-checks), and the re-checks of
-- applied migrations: migrate_verify(), migrate_check(), migrate_validate().
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

CREATE SCHEMA ver;
SET search_path = ver, public;
-- progress NOTICEs carry timings
SET client_min_messages = warning;

SELECT migrate_add('001', 'items',
    $$CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL);
      INSERT INTO items SELECT g, g FROM generate_series(1, 10) g;$$,
    expect => '{"items": 10}') IS NOT NULL AS registered;
SELECT version, rows, checks FROM migrate_apply();

--
-- row count expectations, each failing on its own
--
-- an exact count
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   expect => '{"items": 14}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a change
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   expect => '{"items": "+4"}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- "=": must not change
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   expect => '{"items": "="}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a negative change
SELECT migrate_add('002', 'more items', 'DELETE FROM items WHERE id > 8;',
                   expect => '{"items": "-3"}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a table that did not exist before counts 0 rows
SELECT migrate_add('002', 'more items',
    $$CREATE TABLE newtab (id int PRIMARY KEY);
      INSERT INTO newtab VALUES (1), (2);$$,
    expect => '{"newtab": "+3"}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- and so does a table that does not exist at all
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   expect => '{"nosuch": 1}') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a table of another database is refused at registration
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   expect => '{"otherdb.ver.items": 13}') IS NOT NULL AS registered;
-- nothing of the failed calls was kept
SELECT version, state FROM migrate_status();
SELECT count(*) AS items FROM items;
SELECT to_regclass('ver.newtab') AS newtab;

--
-- verify queries, each failing on its own
--
-- false
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => 'SELECT count(*) = 99 FROM items;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- null
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => 'SELECT max(qty) > 100 FROM items WHERE id > 100;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- one row of many
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => 'SELECT qty < 12 FROM items ORDER BY id;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- pgTAP-style text lines
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => $$SELECT line FROM (VALUES (1, 'ok 1 - items exist'),
                                                        (2, 'not ok 2 - x')) AS t(n, line)
                                ORDER BY n;$$) IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- the second statement of a verify script
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => E'SELECT count(*) = 13 FROM items;\n\nSELECT min(qty) > 1 FROM items;')
       IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a first column that is neither boolean nor text
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => 'SELECT count(*) FROM items;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- no column at all
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => 'SELECT FROM items;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a verify query that fails keeps its SQLSTATE, the DETAIL names the statement
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => E'SELECT true;\nSELECT 1 / (count(*) - 13) = 0\n  FROM items;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SELECT migrate_add('002', 'more items', 'INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;',
                   verify => E'SELECT true;\nSELECT count(*) = 13\n  FROM items WHERE nosuch;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SELECT version, state FROM migrate_status();

-- passing: expectations (with tables that do not exist), a verify script of
-- several statements, a query returning no rows, text lines
SELECT migrate_add('002', 'more items',
    $$INSERT INTO items SELECT g, g FROM generate_series(11, 13) g;
      CREATE TABLE newtab (id int PRIMARY KEY);
      INSERT INTO newtab VALUES (1), (2);$$,
    expect => '{"items": "+3", "newtab": "+2", "nosuch": 0, "nosuch2": "="}',
    verify => $$SELECT count(*) = 13 FROM items;
                SELECT false FROM items WHERE qty < 0;
                SELECT 'ok 1 - newtab'::text;
                SELECT 'ok'::name, 1;$$) IS NOT NULL AS registered;
SELECT version, rows, checks FROM migrate_apply();
SELECT version, counts FROM migrate.history WHERE action = 'apply' ORDER BY id;

--
-- constraint re-checks
--
SELECT migrate_add('003', 'parents, children, orders',
    $$CREATE TABLE parents (id int PRIMARY KEY);
      CREATE TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents);
      CREATE TABLE orders (id int PRIMARY KEY, item_id int);
      INSERT INTO parents VALUES (1), (2);
      INSERT INTO children VALUES (1, 1), (2, 2);
      INSERT INTO orders VALUES (1, 1), (2, 99), (3, 98);$$) IS NOT NULL AS registered;
SELECT version, rows, checks FROM migrate_apply();
-- orphan rows written with session_replication_role = replica inside the migration
SELECT migrate_add('004', 'bad',
    $$SET session_replication_role = replica;
      INSERT INTO children VALUES (10, 999), (11, 998);
      SET session_replication_role = origin;$$) IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a parent deleted under replica: the foreign keys referencing a touched table count
SELECT migrate_add('004', 'bad',
    $$SET session_replication_role = replica;
      DELETE FROM parents WHERE id = 2;
      SET session_replication_role = origin;$$) IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SHOW session_replication_role;
-- a NOT VALID CHECK constraint over violating rows
SELECT migrate_add('004', 'bad',
    'ALTER TABLE items ADD CONSTRAINT items_qty_max CHECK (qty <= 10) NOT VALID;') IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- a NOT VALID foreign key over violating rows
SELECT migrate_add('004', 'bad',
    'ALTER TABLE orders ADD CONSTRAINT orders_item_fk FOREIGN KEY (item_id) REFERENCES items NOT VALID;')
       IS NOT NULL AS registered;
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
-- the migration's own settings do not reach its checks: a script that switches
-- them off, or moves search_path or row_security, still fails its check
SELECT migrate_add('004', 'bad',
    $$SET migrate.verify_constraints = off;
      SET LOCAL row_security = off;
      SET search_path = pg_catalog;
      ALTER TABLE ver.items ADD CONSTRAINT items_qty_max CHECK (qty <= 10) NOT VALID;$$) IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
SHOW migrate.verify_constraints;
-- migrate.verify_constraints = off lets the NOT VALID CHECK through
SELECT migrate_add('004', 'bad',
    'ALTER TABLE items ADD CONSTRAINT items_qty_max CHECK (qty <= 10) NOT VALID;') IS NOT NULL AS registered;
SET migrate.verify_constraints = off;
SELECT version, rows, checks FROM migrate_apply();
RESET migrate.verify_constraints;
-- = all catches the violation in a migration that does not touch items
SELECT migrate_add('005', 'audit', 'CREATE TABLE audit (id int PRIMARY KEY, note text);') IS NOT NULL AS registered;
SET migrate.verify_constraints = 'all';
SELECT * FROM migrate_apply();
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply()');
RESET migrate.verify_constraints;
-- = touched (the default) does not look at items
SELECT version, rows, checks FROM migrate_apply();
SELECT version, rows_affected, checks FROM migrate.history WHERE action = 'apply' ORDER BY id;

--
-- re-checks of applied migrations
--
-- clean the rows the NOT VALID constraint does not allow: every check passes
UPDATE items SET qty = 10 WHERE qty > 10;
SELECT migrate_verify() AS checks_passed;
SELECT * FROM migrate_check();
SELECT migrate_verify('003') AS checks_passed_003;
SELECT * FROM migrate_check('3.0');
-- an unknown, a pending or an invalid version
SELECT migrate_verify('999');
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('999')$$);
SELECT * FROM migrate_check('999');
SELECT migrate_add('006', 'pending one', 'SELECT 1;') IS NOT NULL AS registered;
SELECT migrate_verify('006');
SELECT migrate_verify('six');
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('six')$$);

-- break things by hand: an orphan row
SET session_replication_role = replica;
INSERT INTO children VALUES (20, 777);
RESET session_replication_role;
SELECT migrate_verify();
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify()$$);
SELECT version, "check", object, sqlstate, message FROM migrate_check() WHERE NOT ok;
-- a row that violates a NOT VALID CHECK (PostgreSQL checks it on UPDATE, so
-- the constraint is dropped and added again)
ALTER TABLE items DROP CONSTRAINT items_qty_max;
UPDATE items SET qty = 50 WHERE id = 12;
ALTER TABLE items ADD CONSTRAINT items_qty_max CHECK (qty <= 10) NOT VALID;
-- a row the verify query of 002 counts
DELETE FROM items WHERE id = 13;
-- an invalid index left by a failed concurrent build
INSERT INTO orders VALUES (4, 1);
CREATE UNIQUE INDEX CONCURRENTLY orders_item_uniq ON orders (item_id);
-- the registered text edited after it was applied, by hand (as superuser): changed
UPDATE migrate.migrations
   SET up = up || E'\n-- edited', checksum = migrate_checksum(up || E'\n-- edited')
 WHERE version = '002';
SELECT migrate_verify();
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify()$$);
SELECT migrate_verify('003');
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('003')$$);
SELECT migrate_verify('004');
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('004')$$);
SELECT migrate_verify('002');
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('002')$$);
SELECT migrate_verify('001') AS checks_passed_001;
SELECT * FROM migrate_check();
SELECT version, state FROM migrate_status();
-- a migration that touches a table with an invalid index is refused
-- (002's edit set aside for it: while 002 is changed, applying is refused first)
SELECT migrate_add('007', 'more orders', 'INSERT INTO orders VALUES (5, 2);') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply(target => '007')$$);
BEGIN;
UPDATE migrate.migrations SET up = left(up, -10), checksum = migrate_checksum(left(up, -10)) WHERE version = '002';
SELECT version, state FROM migrate_status() WHERE version = '002';
SELECT * FROM migrate_apply(target => '007');
ROLLBACK;
BEGIN;
UPDATE migrate.migrations SET up = left(up, -10), checksum = migrate_checksum(left(up, -10)) WHERE version = '002';
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply(target => '007')$$);
ROLLBACK;

--
-- migrate_validate(): every problem of the catalog
--
-- 'changed' (002, edited above)
SELECT * FROM migrate_validate();
-- 'out of order', 'needs worker', and 'missing' with the requirement it breaks
SELECT migrate_add('002.5', 'late', 'SELECT 1;') IS NOT NULL AS registered;
SELECT migrate_add('008', 'concurrent index',
                   'CREATE INDEX CONCURRENTLY audit_note_idx ON audit (note);',
                   transactional => false) IS NOT NULL AS registered;
SELECT migrate_add('009', 'needs 005', 'SELECT 1;', requires => '{005}') IS NOT NULL AS registered;
DELETE FROM migrate.migrations WHERE version = '005';
SELECT * FROM migrate_validate();
SELECT version, name, state, transactional, requires FROM migrate.status ORDER BY version_key;
SELECT version, "check", object, ok, sqlstate, message FROM migrate_check() WHERE "check" = 'checksum';

RESET client_min_messages;
RESET search_path;
DROP SCHEMA ver CASCADE;
