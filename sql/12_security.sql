--
-- 12_security: the errors and reports of the security model: an old catalog
-- under a new library, verify queries re-run as their registrant, constraint
-- re-checks as the table's owner, touched tables by OID, the hash-chained
-- history, the catalog lock no advisory key can hold.
--
SET client_min_messages = warning;

-- SQLSTATE and message of an error
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

--
-- a catalog at 0.1.0 under this library: refused until it is updated
--
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate VERSION '0.1.0';
\set VERBOSITY default
SELECT * FROM migrate_validate();
SELECT migrate_add('001', 'x', 'SELECT 1');
ALTER EXTENSION migrate UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'migrate';
SELECT * FROM migrate_validate();
DROP EXTENSION migrate;
CREATE EXTENSION migrate;

CREATE SCHEMA sec;
SET search_path = sec, public;
CREATE ROLE regress_registrant;
CREATE ROLE regress_other;
CREATE ROLE regress_mallory;
GRANT USAGE, CREATE ON SCHEMA sec TO regress_registrant, regress_mallory;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
                          migrate_check(text), migrate_verify(text), migrate_status()
   TO regress_registrant, regress_other;

--
-- verify queries re-run as the role that registered them
--
SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                   verify => 'SELECT count(*) >= 0 FROM tools') IS NOT NULL AS registered;
SELECT version, checks FROM migrate_apply();
-- the registrant of the same up text with a new verify query: it is noted,
-- with both checksums, and the query now runs as that role
SET ROLE regress_registrant;
SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                   verify => 'SELECT current_user = ''regress_registrant''') IS NOT NULL AS registered;
RESET ROLE;
SELECT version, state, notes FROM migrate.status ORDER BY version_key;
SELECT action, performed_by, detail ? 'verify' AS verify_checksums FROM migrate.history
 WHERE version = '001' ORDER BY id;
-- a superuser re-runs it, as regress_registrant
SELECT "check", ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'verify';
-- a role without regress_registrant's privileges may not
SET ROLE regress_other;
SELECT "check", ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'verify';
SELECT pg_temp.sqlstate_of('SELECT migrate_verify(''001'')');
RESET ROLE;
-- in a security-restricted operation: no role change, no temporary table
SET ROLE regress_registrant;
SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                   verify => 'CREATE TEMP TABLE t AS SELECT 1 AS ok; SELECT true') IS NOT NULL AS registered;
RESET ROLE;
SELECT "check", ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'verify';
-- a registrant that no longer exists; the same text registered again by an
-- existing role adopts it
SET ROLE regress_other;
SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                   verify => 'SELECT true') IS NOT NULL AS registered;
RESET ROLE;
DROP OWNED BY regress_other;
DROP ROLE regress_other;
SELECT "check", ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'verify';
SELECT migrate_add('001', 'tools', 'CREATE TABLE tools (id int PRIMARY KEY, n int CHECK (n > 0))',
                   verify => 'SELECT true') IS NOT NULL AS registered;
SELECT action, performed_by, detail FROM migrate.history WHERE version = '001' ORDER BY id DESC LIMIT 1;
SELECT "check", ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'verify';

--
-- constraint re-checks run as the table's owner
--
SET ROLE regress_mallory;
CREATE TABLE seen (who name);
CREATE FUNCTION sec.note_checker(int) RETURNS boolean LANGUAGE sql AS
  $$INSERT INTO sec.seen VALUES (current_user) RETURNING true$$;
CREATE TABLE mallory_t (n int CHECK (sec.note_checker(n)));
INSERT INTO mallory_t VALUES (1);
TRUNCATE seen;
RESET ROLE;
SET migrate.verify_constraints = 'all';
SELECT migrate_add('002', 'more tools', 'INSERT INTO tools VALUES (1, 1)') IS NOT NULL AS registered;
SELECT version, checks FROM migrate_apply();
SELECT DISTINCT who FROM seen;
RESET migrate.verify_constraints;
-- foreign keys whose tables' owners cannot read each other's table: one over
-- built-in types is checked by the caller (no user code runs); one whose
-- equality is not built in cannot be checked without lending rights
SET ROLE regress_mallory;
CREATE TABLE mallory_parent (id int PRIMARY KEY);
CREATE TYPE mallory_pair AS (a int, b int);
CREATE TABLE mallory_pairs (p mallory_pair PRIMARY KEY);
RESET ROLE;
SELECT migrate_add('003', 'child', $$CREATE TABLE child (id int PRIMARY KEY, p int);
GRANT REFERENCES ON mallory_parent TO regress_registrant;
ALTER TABLE child OWNER TO regress_registrant;
SET ROLE regress_registrant;
ALTER TABLE child ADD FOREIGN KEY (p) REFERENCES mallory_parent;
RESET ROLE;$$) IS NOT NULL AS registered;
SELECT version, checks FROM migrate_apply();
SELECT migrate_add('004', 'pair child', $$CREATE TABLE pair_child (p mallory_pair);
GRANT REFERENCES ON mallory_pairs TO regress_registrant;
ALTER TABLE pair_child OWNER TO regress_registrant;
SET ROLE regress_registrant;
ALTER TABLE pair_child ADD FOREIGN KEY (p) REFERENCES mallory_pairs;
RESET ROLE;$$) IS NOT NULL AS registered;
SELECT version, checks FROM migrate_apply();
DELETE FROM migrate.migrations WHERE version = '004';

-- foreign keys across types and collations are re-checked as PostgreSQL
-- checks them: an int referencing a bigint, text keys of two collations
SELECT migrate_add('003.5', 'keys', $$CREATE TABLE big_parent (k bigint PRIMARY KEY);
CREATE TABLE int_child (k int REFERENCES big_parent);
CREATE TABLE c_parent (k text COLLATE "C" PRIMARY KEY);
CREATE TABLE posix_child (k text COLLATE "POSIX" REFERENCES c_parent);
INSERT INTO big_parent VALUES (1); INSERT INTO int_child VALUES (1);
INSERT INTO c_parent VALUES ('a'); INSERT INTO posix_child VALUES ('a');$$) IS NOT NULL AS registered;
SELECT version, checks FROM migrate_apply();
SET session_replication_role = replica;
INSERT INTO int_child VALUES (2);
INSERT INTO posix_child VALUES ('b');
RESET session_replication_role;
SELECT "check", object, ok, sqlstate, message FROM migrate_check('003.5') WHERE "check" = 'foreign key';
DELETE FROM int_child WHERE k = 2;
DELETE FROM posix_child WHERE k = 'b';

--
-- touched tables by OID: dropped since, and an impostor under the same name
--
DROP TABLE child;
SELECT "check", object, ok, message FROM migrate_check('003') WHERE "check" = 'table';
SET ROLE regress_mallory;
CREATE TABLE child (id int CHECK (sec.note_checker(id)));
INSERT INTO child VALUES (7);
TRUNCATE seen;
RESET ROLE;
SELECT "check", object, ok, message FROM migrate_check('003') WHERE "check" = 'table';
SELECT count(*) AS impostor_checked FROM seen;

--
-- the migration lock is a lock on migrate.catalog_lock, which no other role
-- can take (test/isolation/specs/advisory_lock_no_block.spec: the old
-- advisory key blocks nothing)
--
BEGIN;
SET ROLE regress_mallory;
LOCK TABLE migrate.catalog_lock;
ROLLBACK;
SELECT migrate_add('004', 'after the lock', 'SELECT 1') IS NOT NULL AS registered;
SELECT version FROM migrate_apply();

--
-- the history is hash-chained and explains every applied row
--
SELECT count(*) AS rows, count(DISTINCT hash) AS hashes,
       bool_and(hash = migrate.history_hash(lag, h)) AS chained
  FROM (SELECT h, h.hash, lag(h.hash) OVER (ORDER BY h.id) FROM migrate.history h) x(h, hash, lag);
SET session_replication_role = replica;
UPDATE migrate.history SET outcome = 'failed' WHERE version = '004';
DELETE FROM migrate.history WHERE version = '004';
RESET session_replication_role;
BEGIN;
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
UPDATE migrate.history SET performed_by = 'someone_else' WHERE version = '002' AND action = 'apply';
SELECT * FROM migrate_validate();
SELECT pg_temp.sqlstate_of('SELECT migrate_verify()');
SELECT "check", object, ok, sqlstate, message FROM migrate_check() WHERE NOT ok;
ROLLBACK;
BEGIN;
INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
VALUES ('0099', '99', 'by hand', 'x', 'postgres');
SELECT * FROM migrate_validate();
SELECT pg_temp.sqlstate_of('SELECT migrate_verify(''99'')');
ROLLBACK;
-- the converse: a migration the history says is applied, its applied row removed
BEGIN;
DELETE FROM migrate.applied WHERE version = '004';
SELECT * FROM migrate_validate();
SELECT "check", object, ok, sqlstate, message FROM migrate_check() WHERE NOT ok;
ROLLBACK;
SELECT * FROM migrate_validate();

RESET search_path;
DROP SCHEMA sec CASCADE;
DROP OWNED BY regress_registrant, regress_mallory;
DROP ROLE regress_registrant, regress_mallory;
RESET client_min_messages;
