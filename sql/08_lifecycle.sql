--
-- 08_lifecycle: CALL migrate_run() (a commit per migration, failures recorded),
-- migrate_rollback(), migrate_baseline() and migrate_repair().
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
CREATE FUNCTION pg_temp.status()
RETURNS TABLE(version text, name text, state text, checksum text, applied_checksum text)
LANGUAGE sql AS $$
SELECT version, name, state, left(checksum, 12), left(applied_checksum, 12) FROM migrate.status ORDER BY version_key
$$;
CREATE FUNCTION pg_temp.history()
RETURNS TABLE(version text, action text, outcome text, checksum text, detail jsonb)
LANGUAGE sql AS $$
SELECT version, action, outcome, left(checksum, 12), detail FROM migrate.history ORDER BY id
$$;
-- checksums in repair details, shortened to 12 characters
CREATE FUNCTION pg_temp.short(t text) RETURNS text LANGUAGE sql AS $$
SELECT regexp_replace(t, '([0-9a-f]{12})[0-9a-f]{52}', '\1', 'g')
$$;

CREATE SCHEMA life;
SET search_path = life, public;
SET client_min_messages = warning;

--
-- CALL migrate_run(): one transaction per migration
--
SELECT left(migrate_add('1', 'one', 'CREATE TABLE one (id int PRIMARY KEY);',
                        down => 'DROP TABLE one;'), 12) AS checksum;
SELECT left(migrate_add('2', 'two', E'CREATE TABLE two (id int PRIMARY KEY);\nINSERT INTO two VALUES (1), (1);',
                        down => 'DROP TABLE two;'), 12) AS checksum;
SELECT left(migrate_add('3', 'three', 'CREATE TABLE three (id int PRIMARY KEY);',
                        down => 'DROP TABLE three;'), 12) AS checksum;
SELECT * FROM migrate_plan();

-- 2 fails: the original error is raised; 1 stays applied, 3 is not run
CALL migrate_run();
SELECT * FROM pg_temp.status();
SELECT to_regclass('one') AS one, to_regclass('two') AS two, to_regclass('three') AS three;
SELECT version, action, outcome, detail->>'sqlstate' AS sqlstate, detail->>'message' AS message
  FROM pg_temp.history() WHERE action = 'apply';
SELECT pg_temp.short(detail->>'detail') AS detail, detail->>'hint' AS hint
  FROM pg_temp.history() WHERE outcome = 'failed';
SELECT * FROM migrate_validate();
SELECT * FROM migrate_plan();

-- inside a transaction block: 25001 (a function call is one too)
BEGIN;
CALL migrate_run();
ROLLBACK;
SELECT pg_temp.sqlstate_of('CALL migrate_run()');

-- migrate_repair() clears the failure; the same text fails again
SELECT version, name, action, detail FROM migrate_repair();
SELECT * FROM pg_temp.status();
SELECT * FROM migrate_validate();
SELECT version, action, outcome, detail FROM pg_temp.history() WHERE action = 'repair';
CALL migrate_run();
SELECT version, state FROM pg_temp.status();
-- migrate_repair(version) of a migration without failure or change: nothing
SELECT version, name, action, detail FROM migrate_repair('1');

-- a corrected text clears the failure too; the run then finishes
SELECT left(migrate_add('2', 'two', E'CREATE TABLE two (id int PRIMARY KEY);\nINSERT INTO two VALUES (1), (2);',
                        down => 'DROP TABLE two;'), 12) AS checksum;
SELECT * FROM pg_temp.status();
SELECT * FROM migrate_validate();
CALL migrate_run();
SELECT * FROM pg_temp.status();
SELECT version, action, outcome, detail->>'sqlstate' AS sqlstate FROM pg_temp.history();
-- nothing to do
CALL migrate_run();

-- with a target
SELECT left(migrate_add('4', 'four', 'CREATE TABLE four (id int);', down => 'DROP TABLE four;'), 12) AS checksum;
SELECT left(migrate_add('5', 'five', 'CREATE TABLE five (id int);', down => 'DROP TABLE five;'), 12) AS checksum;
CALL migrate_run('4');
SELECT version, state FROM pg_temp.status();
CALL migrate_run();
SELECT version, state FROM pg_temp.status();

--
-- migrate_rollback(): down scripts, newest first, in one transaction
--
SELECT version, name, action, rows FROM migrate_rollback('3');
SELECT version, state FROM pg_temp.status();
SELECT to_regclass('three') AS three, to_regclass('four') AS four, to_regclass('five') AS five;
SELECT version, action, outcome FROM pg_temp.history() WHERE action = 'revert';
-- the target itself and what is older stay; rolling back to it again: nothing
SELECT version, name, action, rows FROM migrate_rollback('3');
SELECT version, rows FROM migrate_apply();

-- without down scripts: 55000 naming every one, nothing reverted
SELECT left(migrate_add('6', 'six', 'CREATE TABLE six (id int);'), 12) AS checksum;
SELECT left(migrate_add('7', 'seven', 'CREATE TABLE seven (id int);'), 12) AS checksum;
SELECT version, rows FROM migrate_apply();
SELECT version, name, action, rows FROM migrate_rollback('2');
SELECT version, name, action, rows FROM migrate_rollback('0');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('2')$$);
SELECT version, state FROM pg_temp.status();
-- a target newer than them needs none of them
SELECT version, name, action, rows FROM migrate_rollback('7');
-- null target: 22004; not a version: 22023
SELECT * FROM migrate_rollback(NULL);
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_rollback(NULL)');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('x')$$);

-- a failing down script: its error, DETAIL names the down script, nothing reverted
SELECT left(migrate_add('6', 'six', 'CREATE TABLE six (id int);', down => 'DROP TABLE six;'), 12) AS checksum;
SELECT left(migrate_add('7', 'seven', 'CREATE TABLE seven (id int);', down => 'DROP TABLE no_such_table;'), 12) AS checksum;
SELECT version, name, action, rows FROM migrate_rollback('5');
SELECT version, state FROM pg_temp.status() WHERE version IN ('6', '7');
SELECT to_regclass('six') AS six, to_regclass('seven') AS seven;

-- rollback re-checks constraints: a down script that orphans rows
SELECT left(migrate_add('7', 'seven', 'CREATE TABLE seven (id int);', down => 'DROP TABLE seven;'), 12) AS checksum;
SELECT left(migrate_add('8', 'parents and children',
    $$CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);$$,
    down => 'DROP TABLE child, parent;'), 12) AS checksum;
SELECT left(migrate_add('9', 'a family',
    $$INSERT INTO parent VALUES (1);
      INSERT INTO child VALUES (10, 1);$$,
    down => $$SET session_replication_role = replica;
              DELETE FROM parent;
              SET session_replication_role = origin;$$), 12) AS checksum;
SELECT version, rows, checks FROM migrate_apply();
SELECT version, name, action, rows FROM migrate_rollback('8');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('8')$$);
SELECT version, state FROM pg_temp.status() WHERE version IN ('8', '9');
SELECT (SELECT count(*) FROM parent) AS parents, (SELECT count(*) FROM child) AS children;
SHOW session_replication_role;
-- a down script that removes the children too is fine
SELECT left(migrate_add('9', 'a family',
    $$INSERT INTO parent VALUES (1);
      INSERT INTO child VALUES (10, 1);$$,
    down => 'DELETE FROM child; DELETE FROM parent;'), 12) AS checksum;
SELECT version, name, action, rows, checks FROM migrate_rollback('8');

-- everything: target '0'; a repeatable migration is never reverted and
-- needs no down script
SELECT file, result FROM migrate_add_script('R__answer.sql',
    'CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS $$SELECT 42$$;');
SELECT version, rows FROM migrate_apply();
SELECT version, name, action, rows FROM migrate_rollback('0');
SELECT version, state FROM pg_temp.status();
SELECT count(*) AS applied FROM migrate.applied;
SELECT to_regclass('one') AS one, to_regclass('parent') AS parent, answer();
SELECT version, count(*) AS reverts FROM pg_temp.history() WHERE action = 'revert' GROUP BY version ORDER BY version;

--
-- migrate_baseline(): an existing database adopts the plan
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
SELECT left(migrate_add('1', 'b one', 'CREATE TABLE b_one (id int);'), 12) AS checksum;
SELECT left(migrate_add('2', 'b two', 'CREATE TABLE b_two (id int);'), 12) AS checksum;
SELECT left(migrate_add('3', 'b three', 'CREATE TABLE b_three (id int);'), 12) AS checksum;
SELECT * FROM migrate_baseline('2');
SELECT * FROM pg_temp.status();
-- they were not run
SELECT to_regclass('b_one') AS b_one, to_regclass('b_two') AS b_two;
SELECT version, action, outcome FROM pg_temp.history();
SELECT version, applied_by = current_user AS by_me, touched FROM migrate.applied ORDER BY version_key;
-- the rest applies as usual
SELECT * FROM migrate_plan();
SELECT version, rows FROM migrate_apply();
SELECT to_regclass('b_three') AS b_three;
-- nothing left to mark
SELECT * FROM migrate_baseline('3');
SELECT * FROM migrate_baseline('99');
SELECT * FROM migrate_baseline(NULL);
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_baseline(NULL)');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_baseline('x')$$);

--
-- migrate_repair()
--
-- a new text for an applied migration: accepted
SELECT version, name, action, pg_temp.short(detail) AS detail
  FROM migrate_repair('3', 'CREATE TABLE b_three (id int, note text);');
SELECT * FROM pg_temp.status();
SELECT up FROM migrate.migrations WHERE version = '3';
SELECT migrate_verify();
SELECT version, action, checksum, pg_temp.short(detail::text) AS detail
  FROM pg_temp.history() WHERE action = 'repair';
-- the new text must parse
SELECT * FROM migrate_repair('3', 'CREATE TABLE b_three (id int,);');
-- text holding sections is a file's: registered as a file, never stored raw (22023)
SELECT * FROM migrate_repair('3', E'CREATE TABLE b_three (id int);\n-- migrate:down\nDROP TABLE b_three;');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_repair('3', E'SELECT 1;\n-- migrate:down\nSELECT 2;')$$) AS sections;
-- a pending migration: 55000; unknown: 42704; up without version: 22004
SELECT left(migrate_add('4', 'b four', 'CREATE TABLE b_four (id int);'), 12) AS checksum;
SELECT * FROM migrate_repair('4', 'CREATE TABLE b_four (id bigint);');
SELECT * FROM migrate_repair('42', 'SELECT 1;');
SELECT * FROM migrate_repair('42');
SELECT * FROM migrate_repair(NULL, 'SELECT 1;');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_repair('4', 'SELECT 1;')$$) AS pending,
       pg_temp.sqlstate_of($$SELECT * FROM migrate_repair('42', 'SELECT 1;')$$) AS unknown,
       pg_temp.sqlstate_of($$SELECT * FROM migrate_repair(NULL, 'SELECT 1;')$$) AS no_version;

-- drift: the registered text of an applied migration changed behind its back
UPDATE migrate.migrations
   SET up = 'CREATE TABLE b_two (id int); -- edited', checksum = migrate_checksum('CREATE TABLE b_two (id int); -- edited')
 WHERE version = '2';
SELECT * FROM pg_temp.status();
SELECT problem, version, name FROM migrate_validate();
SELECT migrate_verify();
-- accepted by migrate_repair()
SELECT version, name, action, pg_temp.short(detail) AS detail FROM migrate_repair();
SELECT * FROM pg_temp.status();
SELECT * FROM migrate_validate();
SELECT migrate_verify();
SELECT version, action, checksum, pg_temp.short(detail::text) AS detail
  FROM pg_temp.history() WHERE action = 'repair';
-- again: nothing to do
SELECT * FROM migrate_repair();

-- a changed migration is not rolled back: its registered down script
-- belongs to text that never ran (55000); an edited one is
SELECT left(migrate_add('3', 'b three', 'CREATE TABLE b_three (id int, note text, more int);',
                        down => 'DROP TABLE b_three;'), 12) AS checksum;
SELECT * FROM migrate_rollback('2');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('2')$$) AS changed_rollback;
SELECT left(migrate_add('3', 'b three', E'-- the note column\nCREATE TABLE b_three (id int, note text);',
                        down => 'DROP TABLE b_three;'), 12) AS checksum;
SELECT version, state FROM pg_temp.status() WHERE version = '3';
-- a label "edited" set by hand over other statements: migrate_verify() proves it again, and fails
BEGIN;
UPDATE migrate.migrations SET up = 'DROP TABLE b_two;', checksum = migrate_checksum('DROP TABLE b_two;'), drift = 'edited'
 WHERE version = '3';
SELECT pg_temp.sqlstate_of('SELECT migrate_verify()') AS hand_made_edited;
SELECT problem, version, name FROM migrate_validate();
ROLLBACK;
SELECT count(*) AS problems_of_the_real_edit FROM migrate_validate();
SELECT migrate_verify() > 0 AS edited_verifies;
SELECT version, action FROM migrate_rollback('2');
SELECT version, state FROM pg_temp.status() WHERE version = '3';
SELECT to_regclass('b_three') IS NULL AS b_three_dropped;
SELECT version, action FROM migrate_apply(target => '3');

-- a non-transactional migration, adopted with a baseline, cannot be rolled
-- back in a transaction: refused before anything runs (25001)
SELECT left(migrate_add('5', 'b five', 'CREATE INDEX CONCURRENTLY b_four_id ON b_four (id);',
                        down => 'DROP INDEX CONCURRENTLY b_four_id;'), 12) AS checksum;
SELECT * FROM migrate_baseline('5');
SELECT * FROM migrate_rollback('4');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('4')$$) AS non_transactional_down;
SELECT version, state FROM pg_temp.status() WHERE version = '5';

DROP TABLE b_three;
DROP FUNCTION answer();
RESET client_min_messages;
