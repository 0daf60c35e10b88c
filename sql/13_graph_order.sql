--
-- 13_graph_order: the requirement graph.  Rollback reverts the migration
-- applied last first, and dependents before their requirements; it refuses a
-- target that would leave an applied migration without its requirement.
-- Baseline refuses a version whose migrations require one beyond it.
-- migrate_status() and migrate_validate() tell one truth about a migration
-- that waits with a non-transactional one several requirements deep.  Cycles
-- are named with their chain, at registration and in a catalog edited by hand.
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;

-- SQLSTATE and message of an error
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE SCHEMA graph;
SET search_path = graph, public;
SET client_min_messages = warning;

--
-- rollback: a child applied after its parent is reverted first
--
-- 10 (the child, an older version) requires 20 (its parent): 20 runs first
SELECT left(migrate_add('20', 'parent', 'CREATE TABLE parent (id int PRIMARY KEY);',
                        down => 'DROP TABLE parent;'), 12) AS checksum;
SELECT left(migrate_add('10', 'child', 'CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);',
                        down => 'DROP TABLE child;', requires => '{20}'), 12) AS checksum;
SELECT version, action FROM migrate_apply();
-- a target that would revert 20 while 10, which requires it, stays applied
\set VERBOSITY default
SELECT * FROM migrate_rollback('10');
\set VERBOSITY terse
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('10')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('15')$$);
SELECT version, state FROM migrate_status();
-- reverting both: 10 first (it was applied last, and it requires 20), then 20
SELECT version, action FROM migrate_rollback('0');
SELECT to_regclass('child') AS child, to_regclass('parent') AS parent;
SELECT version, action FROM migrate.history WHERE action IN ('apply', 'revert') ORDER BY id;

-- without requirements: the reverse of the order they were applied in
SELECT left(migrate_add('30', 'thirty', 'CREATE TABLE thirty (id int);', down => 'DROP TABLE thirty;'), 12) AS checksum;
SELECT version, action FROM migrate_apply();
SELECT left(migrate_add('25', 'late', 'CREATE TABLE late (id int);', down => 'DROP TABLE late;'), 12) AS checksum;
SELECT version, action FROM migrate_apply(out_of_order => true);
SELECT version, action FROM migrate_rollback('0');

-- history says 45 was applied after 40, but 40 requires 45 (a requirement
-- registered after both were applied): 40 is reverted first all the same
SELECT left(migrate_add('40', 'forty', 'CREATE TABLE forty (id int);', down => 'DROP TABLE forty;'), 12) AS checksum;
SELECT left(migrate_add('45', 'forty-five', 'CREATE TABLE forty_five (id int);', down => 'DROP TABLE forty_five;'), 12) AS checksum;
SELECT version, action FROM migrate_apply();
SELECT left(migrate_add('40', 'forty', 'CREATE TABLE forty (id int);', down => 'DROP TABLE forty;',
                        requires => '{45}'), 12) AS checksum;
SELECT version, action FROM migrate_rollback('0');
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;

--
-- baseline: not past a requirement beyond the version
--
SELECT left(migrate_add('1', 'one', 'SELECT 1;'), 12) AS checksum;
SELECT left(migrate_add('3', 'three', 'SELECT 3;'), 12) AS checksum;
SELECT left(migrate_add('2', 'two', 'SELECT 2;', requires => '{3}'), 12) AS checksum;
\set VERBOSITY default
SELECT * FROM migrate_baseline('2');
\set VERBOSITY terse
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_baseline('2')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply(target => '2')$$);
SELECT version, state FROM migrate_status();
-- up to 3: in the order apply would run them (3 before 2, which requires it)
SELECT * FROM migrate_baseline('3');
SELECT version, action FROM migrate.history WHERE action = 'baseline' ORDER BY id;
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;

--
-- status and validate agree: 53 requires 52 requires 51 requires 50, which
-- cannot run in a transaction; all four are older than the applied 60
--
SELECT left(migrate_add('60', 'newest', 'SELECT 60;'), 12) AS checksum;
SELECT version, action FROM migrate_apply();
CREATE TABLE items (id int);
SELECT left(migrate_add('50', 'index', 'CREATE INDEX CONCURRENTLY items_id ON items (id);'), 12) AS checksum;
SELECT left(migrate_add('51', 'one deep', 'SELECT 51;', requires => '{50}'), 12) AS checksum;
SELECT left(migrate_add('52', 'two deep', 'SELECT 52;', requires => '{51}'), 12) AS checksum;
SELECT left(migrate_add('53', 'three deep', 'SELECT 53;', requires => '{52}'), 12) AS checksum;
SELECT left(migrate_add('55', 'late', 'SELECT 55;'), 12) AS checksum;
SELECT s.version, s.state, string_agg(v.problem, ', ' ORDER BY v.problem) AS problems
  FROM migrate_status() s LEFT JOIN migrate_validate() v USING (version)
 GROUP BY s.version, s.state ORDER BY s.version;
SELECT version, state FROM migrate.status ORDER BY version_key;
-- apply agrees: 55 is out of order; the four wait for the worker
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
SELECT version, action FROM migrate_apply(out_of_order => true);
DROP EXTENSION migrate;
CREATE EXTENSION migrate SCHEMA public;

--
-- cycles name their chain
--
SELECT left(migrate_add('71', 'b', 'SELECT 71;'), 12) AS checksum;
SELECT left(migrate_add('72', 'c', 'SELECT 72;', requires => '{71}'), 12) AS checksum;
SELECT left(migrate_add('73', 'd', 'SELECT 73;', requires => '{72, 71}'), 12) AS checksum;
\set VERBOSITY default
SELECT migrate_add('71', 'b', 'SELECT 71;', requires => '{73}');
-- files registered in one call: the first of them on the cycle is named
SELECT * FROM migrate_add_scripts(
    ARRAY['V80__a.sql', 'V81__b.sql', 'V82__c.sql'],
    ARRAY[E'-- migrate:requires 81\nSELECT 80;', E'-- migrate:requires 82\nSELECT 81;',
          E'-- migrate:requires 81\nSELECT 82;']);
\set VERBOSITY terse
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('71', 'b', 'SELECT 71;', requires => '{73}')$$),
               (2, $$SELECT migrate_add('71', 'b', 'SELECT 71;', requires => '{71}')$$),
               (3, $$SELECT migrate_add('72', 'c', 'SELECT 72;', requires => '{73}')$$),
               (4, $$SELECT count(*) FROM migrate_add_scripts(ARRAY['V90__a.sql', 'V91__b.sql'],
                     ARRAY[E'-- migrate:requires 91\nSELECT 90;', E'-- migrate:requires 90\nSELECT 91;'])$$))
       AS t(n, sql)
 ORDER BY n;
-- a cycle written into the catalog by hand: validate names it, plan and apply refuse it
UPDATE migrate.migrations SET requires = '{73}' WHERE version = '71';
SELECT * FROM migrate_validate();
\set VERBOSITY default
SELECT * FROM migrate_plan();
\set VERBOSITY terse
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_plan()$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
SELECT version, state FROM migrate_status();

DROP SCHEMA graph CASCADE;
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
