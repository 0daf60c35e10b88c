--
-- 14_registration_limits: what registration checks, whichever way a script
-- comes in (migrate_add, a file, a down file on its own): COPY from the
-- client and pg_dump data blocks, statements that turn
-- standard_conforming_strings off (every script is split with it on), down
-- scripts that do not parse (a warning and a flag, not an error), and
-- arguments too long for the catalog.
--
-- a fresh catalog
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA lim;
SET search_path = lim, public;

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
-- COPY from or to the client: refused at registration, with the line
--
SELECT migrate_add('001', 'copy', E'CREATE TABLE t (id int, name text);\nCOPY t FROM STDIN;');
-- a pg_dump data block: the COPY is refused, not its rows read as SQL
SELECT migrate_add('001', 'dump', E'CREATE TABLE t (id int, name text);\n\nCOPY t (id, name) FROM stdin;\n1\thammer\n2\tsaw\n\\.\n\nSELECT 1;');
SELECT * FROM migrate_add_script('001_dump.sql', E'CREATE TABLE t (id int, name text);\nCOPY public.t (id, name) FROM stdin;\n1\thammer\n\\.\n');
SELECT migrate_add('001', 'copy out', E'CREATE TABLE t (id int);\nCOPY t TO STDOUT;');
SELECT migrate_add('001', 'copy in down', 'CREATE TABLE t (id int);', down => E'DROP TABLE t;\nCOPY t FROM STDIN;');
SELECT migrate_add('001', 'copy in verify', 'CREATE TABLE t (id int);', verify => E'COPY (SELECT true) TO STDOUT;');
-- COPY with a server file or a program is left to the server's privileges
BEGIN;
SELECT migrate_add('001', 'copy file', E'CREATE TABLE t (id int);\nCOPY t FROM ''/nonexistent/t.csv'';') IS NOT NULL AS registered;
ROLLBACK;
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('001', 'copy', E'CREATE TABLE t (id int);\nCOPY t FROM STDIN;')$$),
               (2, $$SELECT migrate_add('001', 'copy', E'CREATE TABLE t (id int);\nCOPY t (id) FROM stdin;\n1\n\\.\n')$$),
               (3, $$SELECT migrate_add('001', 'copy', E'COPY (SELECT 1) TO STDOUT')$$),
               (4, $$SELECT * FROM migrate_add_script('001_copy.sql', E'COPY t FROM stdin;\n1\n\\.\n')$$),
               (5, $$SELECT * FROM migrate_add_scripts(ARRAY['001_copy.up.sql', '001_copy.down.sql'],
                                                       ARRAY['SELECT 1;', E'COPY t FROM stdin;\n1\n\\.\n'])$$))
       AS t(n, sql)
 ORDER BY n;

--
-- standard_conforming_strings: every script is split with it on, whatever the
-- session says, and a statement that turns it off is refused
--
-- (the issue: a statement hidden in a string under "on", which a migration
-- that turns the setting off would have run unseen)
SELECT migrate_add('002', 'hidden', $m$CREATE TABLE tools (id int);
SET standard_conforming_strings = off;
SELECT 'a\', ' ; SET session_replication_role = replica; SELECT ' AS x -- '
;$m$);
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('002', 'x', 'SET standard_conforming_strings = off')$$),
               (2, $$SELECT migrate_add('002', 'x', E'SELECT 1;\nSET LOCAL standard_conforming_strings TO ''false''')$$),
               (3, $$SELECT migrate_add('002', 'x', 'SET SESSION standard_conforming_strings = 0')$$),
               (4, $$SELECT migrate_add('002', 'x', 'SET standard_conforming_strings TO DEFAULT')$$),
               (5, $$SELECT migrate_add('002', 'x', 'RESET standard_conforming_strings')$$),
               (6, $$SELECT migrate_add('002', 'x', 'ALTER DATABASE postgres SET standard_conforming_strings = off')$$),
               (7, $$SELECT migrate_add('002', 'x', 'ALTER ROLE CURRENT_USER SET standard_conforming_strings = off')$$),
               (8, $$SELECT migrate_add('002', 'x', 'ALTER SYSTEM SET standard_conforming_strings = off')$$),
               (9, $$SELECT migrate_add('002', 'x', 'SELECT set_config(''standard_conforming_strings'', ''off'', false)')$$),
               (10, $$SELECT migrate_add('002', 'x', 'SELECT pg_catalog.set_config(''Standard_Conforming_Strings''::text, ''no'', true) FROM (SELECT 1) s')$$),
               (11, $$SELECT migrate_add('002', 'x', 'UPDATE pg_settings SET setting = ''off'' WHERE name = ''standard_conforming_strings''')$$),
               (12, $$SELECT migrate_add('002', 'x', 'SELECT 1', down => 'SET standard_conforming_strings = off')$$),
               (13, $$SELECT migrate_add('002', 'x', 'SELECT 1', verify => 'SELECT set_config(''standard_conforming_strings'', ''off'', true) IS NULL')$$))
       AS t(n, sql)
 ORDER BY n;
-- turning it on is no change
BEGIN;
SELECT migrate_add('002', 'on', E'SET standard_conforming_strings = on;\nSELECT set_config(''standard_conforming_strings'', ''true'', true);') IS NOT NULL AS registered;
ROLLBACK;
-- a session with it off splits as a session with it on: the SAVEPOINT is
-- seen (split with the session's "off", it was part of a string)
SET standard_conforming_strings = off;
SELECT migrate_add('002', 'split', $m$SELECT 'a\'; SAVEPOINT s; --'$m$);
SELECT * FROM migrate_add_script('002_split.sql', $m$SELECT 'a\'; SAVEPOINT s; --'$m$);
RESET standard_conforming_strings;
-- and statements run as they were split: a session with it off does not run
-- the hidden INSERT
CREATE TABLE hidden_rows (n int);
SELECT migrate_add('002', 'string', $m$SELECT 'a\', ' ; INSERT INTO hidden_rows VALUES (1); SELECT ' AS x -- '
;$m$) IS NOT NULL AS registered;
SET standard_conforming_strings = off;
SET client_min_messages = warning;
SELECT version, name, action, rows FROM migrate_apply();
RESET client_min_messages;
SELECT count(*) AS hidden_rows FROM hidden_rows;
SHOW standard_conforming_strings;
RESET standard_conforming_strings;

--
-- a down script that does not parse: registered with a WARNING naming where
-- and the line, flagged in the notes; migrate_rollback() refuses to run it.
-- Statements that cannot run in a migration stay errors.
--
SELECT migrate_add('003', 'tools', 'CREATE TABLE tools3 (id int);',
                   down => E'DROP TABLE tools3;\nDROP TABLE;') IS NOT NULL AS registered;
SELECT version, ARRAY(SELECT n FROM unnest(notes) AS n WHERE n NOT LIKE 'changed after it was applied%') AS notes
  FROM migrate.migrations WHERE version = '003';
-- the same text again: no second warning
SELECT migrate_add('003', 'tools', 'CREATE TABLE tools3 (id int);',
                   down => E'DROP TABLE tools3;\nDROP TABLE;') IS NOT NULL AS registered;
SET client_min_messages = warning;
SELECT version, name, action FROM migrate_apply();
RESET client_min_messages;
SELECT * FROM migrate_rollback('002');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_rollback('002')$$);
-- a down file on its own gets the same checks: a warning and the flag ...
SELECT * FROM migrate_add_script('003_tools.down.sql', E'DROP TABLE tools3;\n\nDROP TABLE tools3 CASCADE CASCADE;');
SELECT version, ARRAY(SELECT n FROM unnest(notes) AS n WHERE n NOT LIKE 'changed after it was applied%') AS notes
  FROM migrate.migrations WHERE version = '003';
-- ... and migrate_validate() lists it as a broken down script
SELECT problem, version, detail FROM migrate_validate() WHERE problem = 'broken down script';
-- ... an error for a statement that cannot run in a migration ...
SELECT * FROM migrate_add_script('003_tools.down.sql', E'SAVEPOINT s;\nDROP TABLE tools3;');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_add_script('U003__tools.sql', E'DROP TABLE tools3;\nROLLBACK;')$$);
-- ... and a down script that parses clears the flag; the rollback runs
SELECT * FROM migrate_add_script('003_tools.down.sql', 'DROP TABLE tools3;');
SELECT version, ARRAY(SELECT n FROM unnest(notes) AS n WHERE n NOT LIKE 'changed after it was applied%') AS notes
  FROM migrate.migrations WHERE version = '003';
SET client_min_messages = warning;
SELECT version, name, action FROM migrate_rollback('002');
RESET client_min_messages;
-- a directory: the warning names the file, the ups are registered
SELECT * FROM migrate_add_scripts(ARRAY['004_a.up.sql', '004_a.down.sql', 'V005__b.sql', 'U005__b.sql'],
                                  ARRAY['CREATE TABLE a4 (id int);', E'DROP TABLE a4;\nDROP TABL b;',
                                        'CREATE TABLE b5 (id int);', E'-- down\nDROP TABLE b5'])
 ORDER BY file;
-- a -- migrate:down section
SELECT * FROM migrate_add_script('006_c.sql', E'-- migrate:up\nCREATE TABLE c6 (id int);\n-- migrate:down\nDROP TABLE c6;\nDROP c6;\n');
SELECT version, notes FROM migrate.migrations WHERE version IN ('004', '005', '006') ORDER BY version;
SELECT problem, version FROM migrate_validate() WHERE problem = 'broken down script' ORDER BY version;
-- a statement that cannot run in a migration, in the down file of a pair: the
-- error is said of the down file, not of its up file
SELECT * FROM migrate_add_scripts(ARRAY['007_d.up.sql', '007_d.down.sql'],
                                  ARRAY['CREATE TABLE d7 (id int);', E'DROP TABLE d7;\nSAVEPOINT s;']);
SELECT * FROM migrate_add_scripts(ARRAY['V008__e.sql', 'U008__e.sql'],
                                  ARRAY['CREATE TABLE e8 (id int);', E'-- undo\n\nROLLBACK;']);

--
-- arguments too long for the catalog: refused up front, naming the argument
-- and the limit
--
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add(repeat('1.', 2300) || '1', 'long', 'SELECT 1')$$),
               (2, $$SELECT migrate_add('R__' || repeat('x', 500), 'long', 'SELECT 1')$$),
               (3, $$SELECT migrate_add('010', repeat('n', 1001), 'SELECT 1')$$),
               (4, $$SELECT migrate_add('010', 'x', 'SELECT 1', requires => ARRAY['001', repeat('1.', 300) || '1'])$$),
               (5, $$SELECT * FROM migrate_add_script('V' || repeat('1.', 300) || '1__long.sql', 'SELECT 1')$$),
               (6, $$SELECT * FROM migrate_add_script('010_' || repeat('n', 1001) || '.sql', 'SELECT 1')$$),
               (7, $$SELECT * FROM migrate_add_scripts(ARRAY['R__' || repeat('r', 600) || '.sql'], ARRAY['SELECT 1'])$$),
               (8, $$SELECT * FROM migrate_add_script('010_x.sql', E'-- migrate:requires ' || repeat('1.', 300) || E'1\nSELECT 1')$$),
               (9, $$SELECT * FROM migrate_apply(target => repeat('1.', 300) || '1')$$),
               (10, $$SELECT * FROM migrate_plan(repeat('1.', 300) || '1')$$),
               (11, $$SELECT * FROM migrate_rollback(repeat('1.', 300) || '1')$$),
               (12, $$SELECT * FROM migrate_baseline(repeat('1.', 300) || '1')$$),
               (13, $$SELECT * FROM migrate_repair(repeat('1.', 300) || '1')$$),
               (14, $$SELECT * FROM migrate_verify(repeat('1.', 300) || '1')$$),
               (15, $$SELECT migrate_version_key(repeat('1.', 300) || '1')$$))
       AS t(n, sql)
 ORDER BY n;
-- the whole message
SELECT migrate_add(repeat('1.', 2300) || '1', 'long', 'SELECT 1');
SELECT migrate_add('010', repeat('n', 1001), 'SELECT 1');
-- at the limits: accepted
BEGIN;
SELECT migrate_add(repeat('1.', 249) || '11', repeat('n', 1000), 'SELECT 1') IS NOT NULL AS registered;
SELECT octet_length(version) AS version_bytes, octet_length(name) AS name_bytes FROM migrate.migrations
 WHERE octet_length(name) = 1000;
ROLLBACK;

RESET search_path;
DROP SCHEMA lim CASCADE;
