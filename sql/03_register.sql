--
-- 03_register: migrate_add(), every path and every error.
--
-- SQLSTATE and message of an error, to show error codes in this file
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- the whole error: SQLSTATE, message, DETAIL and HINT
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(E'\nDETAIL: ' || nullif(d, ''), '')
           || coalesce(E'\nHINT: ' || nullif(h, ''), '');
END
$$;
-- the catalog without timestamps
CREATE VIEW pg_temp.migrations AS
SELECT version, version_key, name, kind, up, down, verify, expect, requires, transactional,
       checksum = migrate_checksum(up) AS checksum_ok, left(checksum, 12) AS checksum,
       source, registered_by
  FROM migrate.migrations ORDER BY version_key;
CREATE VIEW pg_temp.history AS
SELECT row_number() OVER (ORDER BY id) AS n, version, version_key, name, action,
       left(checksum, 12) AS checksum, performed_by, outcome, detail
  FROM migrate.history ORDER BY id;

CREATE SCHEMA reg;
SET search_path = reg, public;

-- a new migration: registered, history 'register', returns the checksum
SELECT migrate_add('001', 'create tools', E'CREATE TABLE tools (id int PRIMARY KEY);\n')
       = migrate_checksum(E'CREATE TABLE tools (id int PRIMARY KEY);\n') AS returns_checksum;
SELECT * FROM pg_temp.migrations;
SELECT * FROM pg_temp.history;

-- the same again: nothing to do, same checksum, no history row
SELECT migrate_add('001', 'create tools', E'CREATE TABLE tools (id int PRIMARY KEY);\n')
       = migrate_checksum(E'CREATE TABLE tools (id int PRIMARY KEY);\n') AS returns_checksum;
SELECT count(*) AS history_rows FROM migrate.history;
-- the same text with CRLF line ends is the same text
SELECT migrate_add('001', 'create tools', E'CREATE TABLE tools (id int PRIMARY KEY);\r\n')
       = migrate_checksum(E'CREATE TABLE tools (id int PRIMARY KEY);\n') AS returns_checksum;
SELECT count(*) AS history_rows FROM migrate.history;
-- and so should be the text with a leading BOM, whose checksum is the same
-- (the BOM is shown as <BOM>)
SELECT migrate_checksum(convert_from('\xefbbbf'::bytea, 'UTF8') || E'CREATE TABLE tools (id int PRIMARY KEY);\n')
       = migrate_checksum(E'CREATE TABLE tools (id int PRIMARY KEY);\n') AS same_checksum;
SELECT replace(pg_temp.error_of(
           $$SELECT migrate_add('001', 'create tools',
                                convert_from('\xefbbbf'::bytea, 'UTF8') || E'CREATE TABLE tools (id int PRIMARY KEY);\n')$$),
           convert_from('\xefbbbf'::bytea, 'UTF8'), '<BOM>') AS bom_registration;
SELECT count(*) AS history_rows FROM migrate.history;

-- new text for the pending migration: replaced, history shows the previous checksum
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);'), 12)
       AS checksum;
SELECT * FROM pg_temp.migrations;
SELECT * FROM pg_temp.history;
SELECT detail->>'previous_checksum' = migrate_checksum(E'CREATE TABLE tools (id int PRIMARY KEY);\n')
       AS previous_checksum_ok
  FROM migrate.history WHERE action = 'replace';

-- same up text, other down/verify/expect/requires/transactional: history 'update'
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);',
                        down => 'DROP TABLE tools;'), 12) AS checksum;
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);',
                        down => 'DROP TABLE tools;',
                        verify => 'SELECT count(*) = 0 FROM tools;'), 12) AS checksum;
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);',
                        down => 'DROP TABLE tools;',
                        verify => 'SELECT count(*) = 0 FROM tools;',
                        expect => '{"tools": 0}'), 12) AS checksum;
SELECT left(migrate_add('002', 'seed tools', $$INSERT INTO tools VALUES (1, 'hammer'), (2, 'saw');$$,
                        expect => '{"tools": "+2"}'), 12) AS checksum;
SELECT left(migrate_add('002', 'seed tools', $$INSERT INTO tools VALUES (1, 'hammer'), (2, 'saw');$$,
                        expect => '{"tools": "+2"}', requires => '{1}'), 12) AS checksum;
SELECT left(migrate_add('002', 'seed tools', $$INSERT INTO tools VALUES (1, 'hammer'), (2, 'saw');$$,
                        expect => '{"tools": "+2"}', requires => '{1}', transactional => false), 12)
       AS checksum;
SELECT left(migrate_add('002', 'seed tools', $$INSERT INTO tools VALUES (1, 'hammer'), (2, 'saw');$$,
                        expect => '{"tools": "+2"}', requires => '{1}', transactional => true), 12)
       AS checksum;
-- and the same again is a no-op (the expectation compares as jsonb)
SELECT left(migrate_add('002', 'seed tools', $$INSERT INTO tools VALUES (1, 'hammer'), (2, 'saw');$$,
                        expect => '{ "tools" : "+2" }', requires => '{1}'), 12) AS checksum;
SELECT * FROM pg_temp.migrations;
SELECT * FROM pg_temp.history;

-- the same version spelt differently
SELECT migrate_add('1', 'create tools', 'CREATE TABLE tools (id int PRIMARY KEY);');
SELECT migrate_add('1.0', 'create tools', 'CREATE TABLE tools (id int PRIMARY KEY);');
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('1', 'create tools', 'SELECT 1;')$$);
-- the same version with another name
SELECT migrate_add('001', 'make tools', 'CREATE TABLE tools (id int PRIMARY KEY);');
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('001', 'make tools', 'SELECT 1;')$$);
SELECT count(*) AS history_rows FROM migrate.history;

-- an applied migration: new text is recorded as drift, never run in its
-- place; the same text is a no-op
SET client_min_messages = warning;
SELECT version, name, action, rows, checks FROM migrate_apply(target => '001');
RESET client_min_messages;
-- other statements: changed (a WARNING), and applying is refused
SELECT left(migrate_add('001', 'create tools', 'CREATE TABLE tools (id int PRIMARY KEY);'), 12) AS checksum;
SELECT version, state, left(checksum, 12) AS checksum, left(applied_checksum, 12) AS applied FROM migrate.status
 WHERE version = '001';
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
-- and the nightly check fails on it
SELECT pg_temp.sqlstate_of($$SELECT migrate_verify('001')$$);
SELECT left(migrate_add('001', 'create tools', 'CREATE TABLE tools (id int);'), 12) AS checksum;
-- only comments, whitespace and the case of keywords differ: edited, blocking nothing
SELECT left(migrate_add('001', 'create tools',
                        E'-- the tools\ncreate table tools (id int primary key,   name text not null);  /* done */'), 12) AS checksum;
SELECT version, state FROM migrate_status() WHERE version = '001';
-- the same statements: the nightly check passes
SELECT migrate_verify('001') AS checks_passed;
-- a quoted name is not the same token as an unquoted one: changed
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE "Tools" (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);'), 12) AS checksum;
SELECT version, state FROM migrate_status() WHERE version = '001';
-- the applied text again (CRLF read as LF): restored
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\r\n    id int PRIMARY KEY,\r\n    name text NOT NULL\r\n);',
                        down => 'DROP TABLE tools;',
                        verify => 'SELECT count(*) = 0 FROM tools;',
                        expect => '{"tools": 0}'), 12) AS same_text_crlf;
-- its down script may still change (history 'update')
SELECT left(migrate_add('001', 'create tools',
                        E'CREATE TABLE tools (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);',
                        down => 'DROP TABLE IF EXISTS tools;',
                        verify => 'SELECT count(*) = 0 FROM tools;',
                        expect => '{"tools": 0}'), 12) AS checksum;
SELECT * FROM pg_temp.history WHERE n > 8;

-- null or blank version, name or up script
SELECT migrate_add(NULL, 'x', 'SELECT 1;');
SELECT migrate_add('010', NULL, 'SELECT 1;');
SELECT migrate_add('010', 'x', NULL);
SELECT migrate_add('', 'x', 'SELECT 1;');
SELECT migrate_add(' ', 'x', 'SELECT 1;');
SELECT migrate_add('010', '', 'SELECT 1;');
SELECT migrate_add('010', E' \t', 'SELECT 1;');
SELECT migrate_add('010', 'x', '');
SELECT migrate_add('010', 'x', E'\n  \r\n');
SELECT migrate_add('v10', 'x', 'SELECT 1;');
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add(NULL, 'x', 'SELECT 1;')$$),
               (2, $$SELECT migrate_add('010', NULL, 'SELECT 1;')$$),
               (3, $$SELECT migrate_add('010', 'x', NULL)$$),
               (4, $$SELECT migrate_add('', 'x', 'SELECT 1;')$$),
               (5, $$SELECT migrate_add(' ', 'x', 'SELECT 1;')$$),
               (6, $$SELECT migrate_add('010', '', 'SELECT 1;')$$),
               (7, $$SELECT migrate_add('010', E' \t', 'SELECT 1;')$$),
               (8, $$SELECT migrate_add('010', 'x', '')$$),
               (9, $$SELECT migrate_add('010', 'x', E'\n  \r\n')$$),
               (10, $$SELECT migrate_add('v10', 'x', 'SELECT 1;')$$)) AS t(n, sql)
 ORDER BY n;

-- syntax errors, with the line in the script
SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nCREATE TABLE b (id int,);');
SELECT migrate_add('010', 'bad up', E'-- comment\n\nCREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1;');
SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nSELEC 1;');
SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\r\nCREATE TABLE b (id int,);');
SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nSELECT $x$ never closed;');
SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nSELECT ''never closed;');
-- a down script that does not parse does not block its migration: a WARNING,
-- and a note (migrate_rollback() refuses to run it; see 14_registration_limits)
BEGIN;
SELECT migrate_add('010', 'bad down', 'CREATE TABLE a (id int);', down => E'DROP TABLE a;\nDROP TABLE;') IS NOT NULL AS registered;
SELECT notes FROM migrate.migrations WHERE version = '010';
ROLLBACK;
SELECT migrate_add('010', 'bad verify', 'CREATE TABLE a (id int);',
                   verify => E'SELECT true;\n\nSELECT count(*) = 0 FROM a WHERE;');
-- the same from inside a function (a DO block, a deploy function, pgTAP's
-- throws_ok()) should name the line too
DO $$ BEGIN PERFORM migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nCREATE TABLE b (id int,);'); END $$;
SELECT pg_temp.error_of($$SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nCREATE TABLE b (id int,);')$$);
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('010', 'bad up', E'CREATE TABLE a (id int);\nCREATE TABLE b (id int,);')$$),
               (2, $$SELECT migrate_add('010', 'bad down', 'SELECT 1;', down => E'DROP TABLE a;\nSAVEPOINT s;')$$),
               (3, $$SELECT migrate_add('010', 'bad verify', 'SELECT 1;', verify => E'SELECT true;\n\nSELECT WHERE;')$$))
       AS t(n, sql)
 ORDER BY n;

-- transaction control inside a script: ROLLBACK, SAVEPOINT, RELEASE,
-- ROLLBACK TO, PREPARE TRANSACTION and COMMIT/ROLLBACK PREPARED are refused
-- (0A000) with their line, in the up script, the down script and the verify query
SELECT migrate_add('010', 'tx', E'CREATE TABLE a (id int);\nROLLBACK;');
SELECT migrate_add('010', 'tx', E'BEGIN;\nCREATE TABLE a (id int);\nSAVEPOINT s;');
SELECT migrate_add('010', 'tx', E'SAVEPOINT s;\nCREATE TABLE a (id int);\nRELEASE SAVEPOINT s;');
SELECT migrate_add('010', 'tx', E'CREATE TABLE a (id int);\n\nROLLBACK TO SAVEPOINT s;');
SELECT migrate_add('010', 'tx', E'CREATE TABLE a (id int);\nPREPARE TRANSACTION ''x'';');
SELECT migrate_add('010', 'tx', 'CREATE TABLE a (id int);', down => E'DROP TABLE a;\nROLLBACK;');
SELECT migrate_add('010', 'tx', 'CREATE TABLE a (id int);', verify => E'SELECT true;\nSAVEPOINT s;');
-- BEGIN, START TRANSACTION, COMMIT and END are absorbed: registered, with a
-- note (shown in a transaction that is rolled back, so that the catalog
-- listed at the end holds nothing of this)
BEGIN;
SELECT left(migrate_add('013', 'tx', E'BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;'), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.status WHERE version = '013';
SELECT left(migrate_add('013', 'tx', E'CREATE TABLE a (id int);\nCOMMIT;'), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.status WHERE version = '013';
SELECT left(migrate_add('013', 'tx', E'begin;\nCREATE TABLE a (id int);\nend;'), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.status WHERE version = '013';
SELECT left(migrate_add('013', 'tx', E'START TRANSACTION;\nSELECT 1;'), 12) AS checksum;
SELECT version, transactional, cardinality(notes) AS notes FROM migrate.status WHERE version = '013';
-- in a down script too (a down script gets no note)
SELECT left(migrate_add('013', 'tx', 'SELECT 1;', down => E'BEGIN;\nSELECT 2;\nCOMMIT;'), 12) AS checksum;
SELECT version, transactional, notes FROM migrate.status WHERE version = '013';
SELECT version, action FROM migrate.history WHERE version = '013' ORDER BY id;
ROLLBACK;
SELECT count(*) AS "013 registered" FROM migrate.migrations WHERE version = '013';
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('010', 'tx', E'CREATE TABLE a (id int);\nROLLBACK;')$$),
               (2, $$SELECT migrate_add('010', 'tx', 'SELECT 1;', down => 'ROLLBACK;')$$),
               (3, $$SELECT migrate_add('010', 'tx', 'SELECT 1;', verify => 'SAVEPOINT s;')$$),
               (4, $$SELECT migrate_add('010', 'tx', 'PREPARE TRANSACTION ''x'';')$$),
               (5, $$SELECT migrate_add('010', 'tx', 'COMMIT PREPARED ''x'';')$$),
               (6, $$SELECT migrate_add('010', 'tx', 'ROLLBACK PREPARED ''x'';')$$))
       AS t(n, sql)
 ORDER BY n;

-- row count expectations: one bad value per line
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '[1, 2]');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '5');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '"tools"');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => 'null');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": "abc"}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": ""}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": "+"}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": "+-3"}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": "3 "}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": -3}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": 1.5}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": 99999999999999999999}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": true}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": null}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": {"a": 1}}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools": [1]}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"a.b.c.d": 1}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"": 1}');
SELECT migrate_add('010', 'expect', 'SELECT 1;', expect => '{"tools; DROP TABLE x": 1}');
SELECT n, expect, pg_temp.sqlstate_of(format('SELECT migrate_add(%L, %L, %L, expect => %L)',
                                             '010', 'expect', 'SELECT 1;', expect))
  FROM (VALUES (1, '[1, 2]'), (2, '5'), (3, '"tools"'), (4, 'null'), (5, '{"tools": "abc"}'),
               (6, '{"tools": ""}'), (7, '{"tools": "+"}'), (8, '{"tools": "+-3"}'),
               (9, '{"tools": "3 "}'), (10, '{"tools": -3}'), (11, '{"tools": 1.5}'),
               (12, '{"tools": 99999999999999999999}'), (13, '{"tools": true}'),
               (14, '{"tools": null}'), (15, '{"tools": {"a": 1}}'), (16, '{"tools": [1]}'),
               (17, '{"a.b.c.d": 1}'), (18, '{"": 1}'), (19, '{"tools; DROP TABLE x": 1}'))
       AS t(n, expect)
 ORDER BY n;
-- valid expectations: counts, changes, "=", qualified and quoted names, empty object
SELECT left(migrate_add('010', 'expect',  'SELECT 1;',
                        expect => '{"tools": 0, "reg.tools": "0", "\"Tools\"": "=", "db.reg.t": "+0", "x": "-0", "y": 1e2}'), 12)
       AS checksum;
SELECT expect FROM migrate.migrations WHERE version = '010';
SELECT left(migrate_add('011', 'no expectations', 'SELECT 1;', expect => '{}'), 12) AS checksum;

-- requirements
SELECT migrate_add('012', 'needs 999', 'SELECT 1;', requires => '{999}');
SELECT migrate_add('012', 'needs bad version', 'SELECT 1;', requires => '{x9}');
SELECT migrate_add('012', 'needs null', 'SELECT 1;', requires => '{011, NULL}');
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('012', 'needs 999', 'SELECT 1;', requires => '{999}')$$),
               (2, $$SELECT migrate_add('012', 'needs bad version', 'SELECT 1;', requires => '{x9}')$$),
               (3, $$SELECT migrate_add('012', 'needs null', 'SELECT 1;', requires => '{011, NULL}')$$))
       AS t(n, sql)
 ORDER BY n;
-- a cycle 020 -> 021 -> 020
SELECT left(migrate_add('021', 'second', 'SELECT 21;'), 12) AS checksum;
SELECT left(migrate_add('020', 'first', 'SELECT 20;', requires => '{021}'), 12) AS checksum;
SELECT migrate_add('021', 'second', 'SELECT 21;', requires => '{020}');
-- a longer one 030 -> 032 -> 031 -> 030, found through another spelling
SELECT left(migrate_add('030', 'a', 'SELECT 30;'), 12) AS checksum;
SELECT left(migrate_add('031', 'b', 'SELECT 31;', requires => '{30}'), 12) AS checksum;
SELECT left(migrate_add('032', 'c', 'SELECT 32;', requires => '{031}'), 12) AS checksum;
SELECT migrate_add('030', 'a', 'SELECT 30;', requires => '{32.0}');
-- a migration that requires itself
SELECT migrate_add('040', 'self', 'SELECT 40;', requires => '{040}');
SELECT migrate_add('040', 'self', 'SELECT 40;', requires => '{011, 40}');
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT migrate_add('021', 'second', 'SELECT 21;', requires => '{020}')$$),
               (2, $$SELECT migrate_add('030', 'a', 'SELECT 30;', requires => '{32.0}')$$),
               (3, $$SELECT migrate_add('040', 'self', 'SELECT 40;', requires => '{040}')$$))
       AS t(n, sql)
 ORDER BY n;

-- an up script with no statement at all
SELECT left(migrate_add('050', 'only a comment', '-- nothing to do'), 12) AS checksum;
SELECT left(migrate_add('051', 'only a semicolon', ';'), 12) AS checksum;

-- what the catalog holds now: nothing of the failed calls
SELECT * FROM pg_temp.migrations;
SELECT * FROM pg_temp.history;
SELECT version, name, state, transactional, requires FROM migrate.status ORDER BY version_key;
-- migrate_status() fits a terminal: checksums of 12 digits, the time to the
-- second, the first note shortened, with how many more there are
SELECT migrate_add('060', 'two notes', E'BEGIN;\nCREATE INDEX CONCURRENTLY tools_idx ON tools (id);\nCOMMIT;',
                   transactional => false) IS NOT NULL AS registered;
SELECT version, name, state, checksum, applied_at = date_trunc('second', applied_at) AS to_the_second, note
  FROM migrate_status();
SELECT max(length(s::text)) AS widest_row FROM migrate_status() s;

RESET search_path;
DROP SCHEMA reg CASCADE;
