--
-- 07_files: migration files: the version, name and kind from the file name,
-- sections and directives from "-- migrate:" lines (migrate_add_script),
-- whole directories (migrate_add_scripts, migrate_load) and repeatable
-- migrations.
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
-- the lines of a registered script, numbered, with their lengths (emptied
-- directive lines stay as empty lines); a string body so that it survives
-- DROP EXTENSION
CREATE FUNCTION pg_temp.lines(v text, part text DEFAULT 'up')
RETURNS TABLE(n bigint, len int, line text) LANGUAGE sql AS $$
SELECT l.n, length(l.line), l.line
  FROM migrate.migrations m,
       regexp_split_to_table(CASE part WHEN 'up' THEN m.up WHEN 'down' THEN m.down ELSE m.verify END,
                             E'\n') WITH ORDINALITY AS l(line, n)
 WHERE m.version = v
 ORDER BY l.n
$$;

CREATE SCHEMA files;
SET search_path = files, public;
SET client_min_messages = warning;

--
-- file names: every form
--
-- Flyway: V<version>__<name>.sql; "_" in a version is a separator (V2_1 = 2.1)
SELECT * FROM migrate_add_script('V2__add_users.sql', 'CREATE TABLE users (id int PRIMARY KEY);');
SELECT * FROM migrate_add_script('V2_1__add_roles.sql', 'CREATE TABLE roles (id int PRIMARY KEY);');
SELECT * FROM migrate_add_script('V1.2.3__dotted.sql', 'CREATE TABLE dotted (id int);');
-- U<version>__<name>.sql: the down script of a registered version
SELECT * FROM migrate_add_script('U2__add_users.sql', 'DROP TABLE users;');
-- R__<name>.sql: repeatable, its version is R__<name>
SELECT * FROM migrate_add_script('R__refresh_views.sql', 'CREATE OR REPLACE VIEW user_ids AS SELECT id FROM users;');
-- Supabase: 14-digit and 8-digit timestamps
SELECT * FROM migrate_add_script('20240103000001_chat_schema.sql', 'CREATE TABLE chats (id int);');
SELECT * FROM migrate_add_script('20251003_memories.sql', 'CREATE TABLE memories (id int);');
-- dated: YYYY-MM-DD_NN_name
SELECT * FROM migrate_add_script('2025-10-08_18_add_minutes.sql', 'CREATE TABLE minutes (id int);');
-- numbered, zero-padded
SELECT * FROM migrate_add_script('003_unified_schema.sql', 'CREATE TABLE unified (id int);');
-- a name that starts with digits is not part of the version: 001, 2fa_setup
SELECT * FROM migrate_add_script('001_2fa_setup.sql', 'CREATE TABLE two_factor (id int);');
-- golang-migrate: .up.sql and .down.sql
SELECT * FROM migrate_add_script('5_create_things.up.sql', 'CREATE TABLE things (id int);');
SELECT * FROM migrate_add_script('5_create_things.down.sql', 'DROP TABLE things;');
-- a directory path is reduced to the base name
SELECT * FROM migrate_add_script('supabase/migrations/20251108_x.sql', 'CREATE TABLE x (id int);');

SELECT version, version_key, name, kind, up, down, source
  FROM migrate.migrations ORDER BY version_key COLLATE "C";
SELECT version, action, detail FROM migrate.history ORDER BY id;

--
-- file names that fit no form: 22023, DETAIL says why, HINT lists the forms
--
SELECT * FROM migrate_add_script('schema.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('README.md', 'SELECT 1;');
SELECT * FROM migrate_add_script('V1a__x.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('V1_x.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('R__.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('001.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('x_001.sql', 'SELECT 1;');
SELECT * FROM migrate_add_script('001_.sql', 'SELECT 1;');
SELECT name, pg_temp.sqlstate_of(format('SELECT * FROM migrate_add_script(%L, %L)', name, 'SELECT 1;'))
  FROM unnest(ARRAY['schema.sql', 'README.md', 'V1a__x.sql', 'V1_x.sql', 'R__.sql',
                    '001.sql', 'x_001.sql', '001_.sql']) AS name;
-- null arguments: 22004
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_add_script(NULL, 'SELECT 1;')$$) AS null_name,
       pg_temp.sqlstate_of($$SELECT * FROM migrate_add_script('009_x.sql', NULL)$$) AS null_script;
SELECT count(*) AS registered FROM migrate.migrations;

--
-- sections and directives
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;

-- no section marker: the whole file is the up script
SELECT * FROM migrate_add_script('010_plain.sql', $f$CREATE TABLE plain (id int PRIMARY KEY);
INSERT INTO plain VALUES (1), (2);
$f$);
SELECT version, up, down, verify, transactional FROM migrate.migrations WHERE version = '010';

-- up, down and verify sections; comments before the first marker are fine
SELECT * FROM migrate_add_script('011_sections.sql', $f$-- a header comment
/* and a block comment */

-- migrate:up
CREATE TABLE sections (id int PRIMARY KEY);
-- migrate:down
DROP TABLE sections;
-- migrate:verify
SELECT count(*) = 0 FROM sections;
$f$);
SELECT * FROM pg_temp.lines('011', 'up');
SELECT * FROM pg_temp.lines('011', 'down');
SELECT * FROM pg_temp.lines('011', 'verify');

-- several up/down pairs (dbmate): the ups in order, the downs in reverse order
SELECT * FROM migrate_add_script('012_pairs.sql', $f$-- migrate:up
CREATE TABLE pair_a (id int);
-- migrate:down
DROP TABLE pair_a;
-- migrate:up
CREATE TABLE pair_b (id int);
-- migrate:down
DROP TABLE pair_b;
$f$);
SELECT * FROM pg_temp.lines('012', 'up');
SELECT * FROM pg_temp.lines('012', 'down');

-- "-- migrate:up transaction:false": a non-transactional migration
SELECT * FROM migrate_add_script('090_concurrently.sql', $f$-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY plain_id ON plain (id);
-- migrate:down transaction:false
DROP INDEX CONCURRENTLY plain_id;
$f$);
SELECT version, transactional, notes FROM migrate.migrations WHERE version = '090';
-- "transaction:true" is the default, accepted
SELECT * FROM migrate_add_script('014_tx.sql', $f$-- migrate:up transaction:true
CREATE TABLE tx (id int);
$f$);
SELECT version, transactional FROM migrate.migrations WHERE version = '014';

-- CRLF line ends: the markers are found, the scripts keep their CRs (shown as <CR>)
SELECT * FROM migrate_add_script('091_crlf.sql',
    E'-- migrate:up transaction:false\r\nCREATE INDEX CONCURRENTLY plain_id2 ON plain (id);\r\n-- migrate:down\r\nDROP INDEX plain_id2;\r\n');
-- a file that starts with a UTF-8 byte order mark (it would show as <BOM>):
-- the marker on line 1 is found, so its transaction:false counts (the
-- statement alone would be transactional) and the BOM is in no script
SELECT * FROM migrate_add_script('092_bom.sql',
    convert_from('\xefbbbf'::bytea, 'UTF8')
    || E'-- migrate:up transaction:false\nCREATE INDEX plain_id3 ON plain (id);\n-- migrate:down\nDROP INDEX plain_id3;\n');
SELECT version, transactional, notes,
       replace(replace(up, E'\r', '<CR>'), convert_from('\xefbbbf'::bytea, 'UTF8'), '<BOM>') AS up,
       replace(down, E'\r', '<CR>') AS down
  FROM migrate.migrations WHERE version IN ('091', '092') ORDER BY version;

-- malformed markers and directives: 22023 naming the file and the line
SELECT * FROM migrate_add_script('015_bad.sql', $f$-- migrate:up
CREATE TABLE bad (id int);
-- migrate:down transaction:maybe
DROP TABLE bad;
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$-- migrate:up
CREATE TABLE bad (id int);
-- migrate:rollback
DROP TABLE bad;
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$-- migrate:requires
CREATE TABLE bad (id int);
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$CREATE TABLE bad (id int);
-- migrate:expect [150]
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$CREATE TABLE bad (id int);
-- migrate:expect {"bad": "abc"}
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$CREATE TABLE bad (id int);
-- migrate:expect {"bad":
$f$);
SELECT * FROM migrate_add_script('015_bad.sql', $f$CREATE TABLE bad (id int);
-- migrate:requires 999
$f$);
SELECT count(*) AS "015 registered" FROM migrate.migrations WHERE version = '015';

-- "-- migrate:" inside dollar bodies, strings, quoted identifiers and block
-- comments, or after a statement on its line, is no marker
SELECT * FROM migrate_add_script('016_not_markers.sql', $f$-- migrate:up
CREATE FUNCTION dollar() RETURNS text LANGUAGE sql AS $$
-- migrate:down
SELECT 'in a dollar body'
$$;
CREATE FUNCTION tagged() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
-- migrate:down
    RETURN $$in a tagged body$$;
END
$body$;
CREATE TABLE texts (t text);
INSERT INTO texts VALUES ('line one
-- migrate:down
line three');
INSERT INTO texts VALUES (E'it\'s
-- migrate:verify
still the string');
INSERT INTO texts VALUES ('it''s
-- migrate:verify
still the string');
CREATE TABLE "odd
-- migrate:down
name" (id int);
/* outer /* nested */
-- migrate:down
still the outer comment */
SELECT 1; -- migrate:down
-- migrate:down
DROP TABLE "odd
-- migrate:up
name";
DROP TABLE texts;
DROP FUNCTION tagged();
DROP FUNCTION dollar();
$f$);
SELECT * FROM pg_temp.lines('016', 'up');
SELECT * FROM pg_temp.lines('016', 'down');

-- directive lines are emptied out of the scripts (the newline kept, so the
-- line numbers stay)
SELECT * FROM migrate_add_script('017_directives.sql', $f$-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (3);
-- migrate:expect {"plain": 3}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT version, requires, expect FROM migrate.migrations WHERE version = '017';
SELECT * FROM pg_temp.lines('017', 'up');
SELECT * FROM pg_temp.lines('017', 'down');

-- plain SQL followed by -- migrate:verify: the text before it is the up script
SELECT * FROM migrate_add_script('018_checked.sql', $f$CREATE TABLE checked (id int);
INSERT INTO checked VALUES (1);
-- migrate:verify
SELECT count(*) = 1 FROM checked;
$f$);
SELECT * FROM pg_temp.lines('018', 'up');
SELECT * FROM pg_temp.lines('018', 'verify');

-- statements before -- migrate:up: an error
SELECT * FROM migrate_add_script('019_before.sql', $f$CREATE TABLE before_up (id int);
-- migrate:up
CREATE TABLE after_up (id int);
$f$);

-- apply: 090, 091 and 092 cannot run in a transaction, they are left
-- pending (a WARNING each); the rest is applied
SELECT * FROM migrate_plan();
SELECT version, action, rows, checks FROM migrate_apply();
SELECT version, state, transactional FROM migrate.status WHERE version >= '090' ORDER BY version_key;

-- changing only an expect directive of an applied migration is an update
-- (once to a value of the same length, once to one of another length: the
-- directive line is emptied out of the script, so its length does not count)
SELECT * FROM migrate_add_script('017_directives.sql', $f$-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (3);
-- migrate:expect {"plain": 4}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT * FROM migrate_add_script('017_directives.sql', $f$-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (3);
-- migrate:expect {"plain": "+1"}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT version, expect FROM migrate.migrations WHERE version = '017';
SELECT version, state FROM migrate_status() WHERE version = '017';
SELECT version, action FROM migrate.history WHERE version = '017' ORDER BY id;
-- a changed statement of an applied migration is drift: recorded as changed
-- (a WARNING naming the file and its line), and applying is refused
SELECT * FROM migrate_add_script('017_directives.sql', $f$-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (4);
-- migrate:expect {"plain": "+1"}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT version, state FROM migrate_status() WHERE version = '017';
SELECT * FROM migrate_apply();
-- the raw text of a file is never taken by migrate_repair(): its sections come from the file
SELECT * FROM migrate_repair('017', up => 'INSERT INTO plain VALUES (4);');
-- the file restored: the applied text again
SELECT file, result, detail FROM migrate_add_script('017_directives.sql', $f$-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (3);
-- migrate:expect {"plain": "+1"}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT version, state FROM migrate_status() WHERE version = '017';
-- a header line added above its sections: the same migration (unchanged, no
-- history row), its sections' file lines kept up to date
SELECT lines FROM migrate.migrations WHERE version = '017';
SELECT file, result FROM migrate_add_script('017_directives.sql', $f$-- directives, and a header line
-- migrate:requires 010, 011
-- migrate:up
-- migrate:requires 012
INSERT INTO plain VALUES (3);
-- migrate:expect {"plain": "+1"}
-- migrate:expect {"sections": "="}
-- migrate:down
DELETE FROM plain WHERE id = 3;
$f$);
SELECT lines FROM migrate.migrations WHERE version = '017';
SELECT count(*) AS history_rows_017 FROM migrate.history WHERE version = '017';

-- a down file alone sets the down script of a registered version
SELECT * FROM migrate_add_script('U18__checked.sql', 'DROP TABLE checked;');
SELECT * FROM migrate_add_script('U18__checked.sql', 'DROP TABLE checked;');
SELECT version, down FROM migrate.migrations WHERE version = '018';
SELECT version, action, detail FROM migrate.history WHERE version = '018' ORDER BY id;
-- for an unknown version: 42704
SELECT * FROM migrate_add_script('99_nothing.down.sql', 'DROP TABLE nothing;');

--
-- migrate_add_scripts(): a whole directory at once, all or nothing
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
DROP TABLE plain, sections, pair_a, pair_b, tx, checked;

-- one script per file name: 2202E otherwise
SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql', '002_b.sql'], ARRAY['SELECT 1;']);
-- a null file name: 22004; null arrays: 22004
SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql', NULL], ARRAY['SELECT 1;', 'SELECT 2;']);
SELECT * FROM migrate_add_scripts(NULL, ARRAY['SELECT 1;']);
SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql'], NULL);
-- empty arrays: nothing to do
SELECT * FROM migrate_add_scripts('{}', '{}');

-- a null script is a file that was not read; names that fit no form are
-- skipped with the reason; the rest is registered, in version order
SELECT * FROM migrate_add_scripts(
    ARRAY['README.md', 'schema.sql', '002_b.sql', '001_a.sql', 'seed.sql', '003_c.sql', 'V1_x.sql'],
    ARRAY[NULL, 'CREATE TABLE s (id int);', 'CREATE TABLE b (id int);', 'CREATE TABLE a (id int);',
          'INSERT INTO a VALUES (1);', NULL, 'SELECT 1;']);
SELECT version, name, source FROM migrate.migrations ORDER BY version_key;

-- two files of one version: 42710 naming both, nothing registered
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
SELECT * FROM migrate_add_scripts(ARRAY['001_ok.sql', '024_a.sql', '024_b.sql'],
                                  ARRAY['CREATE TABLE ok (id int);', 'CREATE TABLE a (id int);',
                                        'CREATE TABLE b (id int);']);
-- V1__x.sql and 1_x.sql are both version 1
SELECT * FROM migrate_add_scripts(ARRAY['V1__x.sql', '1_x.sql'],
                                  ARRAY['CREATE TABLE x (id int);', 'CREATE TABLE x (id int);']);
-- so are 001_x.sql and 1.0_x.sql
SELECT * FROM migrate_add_scripts(ARRAY['001_x.sql', '1.0_x.sql'],
                                  ARRAY['CREATE TABLE x (id int);', 'CREATE TABLE x (id int);']);
-- and two down files of one version
SELECT * FROM migrate_add_scripts(ARRAY['V3__t.sql', 'U3__t.sql', '3_t.down.sql'],
                                  ARRAY['CREATE TABLE t (id int);', 'DROP TABLE t;', 'DROP TABLE t;']);
-- a -- migrate:down section and a down file for the same migration
SELECT * FROM migrate_add_scripts(ARRAY['V3__t.sql', 'U3__t.sql'],
                                  ARRAY[E'-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n',
                                        'DROP TABLE t;']);
-- the SQLSTATEs of the above
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, $$SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql', '002_b.sql'], ARRAY['SELECT 1;'])$$),
               (2, $$SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql', NULL], ARRAY['SELECT 1;', 'SELECT 2;'])$$),
               (3, $$SELECT * FROM migrate_add_scripts(ARRAY['024_a.sql', '024_b.sql'], ARRAY['SELECT 1;', 'SELECT 2;'])$$),
               (4, $$SELECT * FROM migrate_add_scripts(ARRAY['V1__x.sql', '1_x.sql'], ARRAY['SELECT 1;', 'SELECT 2;'])$$),
               (5, $$SELECT * FROM migrate_add_scripts(ARRAY['V3__t.sql', 'U3__t.sql'],
                                                      ARRAY[E'SELECT 1;\n-- migrate:down\nSELECT 2;\n', 'SELECT 3;'])$$))
       AS t(n, sql)
 ORDER BY n;
SELECT count(*) AS registered FROM migrate.migrations;
SELECT count(*) AS history_rows FROM migrate.history;

-- the result of each file across repeated calls
CREATE FUNCTION pg_temp.load(b text, d text, c text) RETURNS SETOF record LANGUAGE sql AS $$
SELECT file, version, part, result, detail
  FROM migrate_add_scripts(ARRAY['001_a.sql', '002_b.up.sql', '002_b.down.sql', '003_c.sql'],
                           ARRAY['CREATE TABLE a (id int);', b, d, c])
$$;
-- first: all new (the down file shares the result of its up file)
SELECT * FROM pg_temp.load('CREATE TABLE b (id int);', 'DROP TABLE b;', E'CREATE TABLE c (id int);\n')
  AS t(file text, version text, part text, result text, detail text);
-- the same again: unchanged
SELECT * FROM pg_temp.load('CREATE TABLE b (id int);', 'DROP TABLE b;', E'CREATE TABLE c (id int);\n')
  AS t(file text, version text, part text, result text, detail text);
SELECT version, rows FROM migrate_apply(target => '001');
-- new up text of pending 002: changed (its down file with it)
SELECT * FROM pg_temp.load('CREATE TABLE b (id bigint);', 'DROP TABLE b;', E'CREATE TABLE c (id int);\n')
  AS t(file text, version text, part text, result text, detail text);
-- a new down script of 002 only, and a verify section added to 003: updated
SELECT * FROM pg_temp.load('CREATE TABLE b (id bigint);', 'DROP TABLE IF EXISTS b;',
                           E'CREATE TABLE c (id int);\n-- migrate:verify\nSELECT true;\n')
  AS t(file text, version text, part text, result text, detail text);
SELECT version, name, up, down, verify FROM migrate.migrations ORDER BY version_key;
SELECT version, action FROM migrate.history ORDER BY id;
-- a changed text of applied 001 blocks nothing else: 001 is recorded as
-- changed, 004 is registered
SELECT * FROM migrate_add_scripts(ARRAY['001_a.sql', '004_d.sql'],
                                  ARRAY['CREATE TABLE a (id bigint);', 'CREATE TABLE d (id int);']);
SELECT count(*) AS "004 registered" FROM migrate.migrations WHERE version = '004';
-- a comment added to the applied file instead: edited, and applying goes on
SELECT file, result, detail FROM migrate_add_scripts(ARRAY['001_a.sql'], ARRAY[E'-- table a\nCREATE TABLE a (id int);']);
SELECT version, state FROM migrate_status() WHERE version IN ('001', '004');
SELECT version, action FROM migrate_apply(target => '002');

--
-- migrate_load(): files of a server directory
--
-- a directory that does not exist
SELECT * FROM migrate_load('/nonexistent/migrations');
SELECT * FROM migrate_load(NULL);
-- a role with EXECUTE, but neither superuser nor in pg_read_server_files: 42501
CREATE ROLE regress_migrate_loader;
GRANT USAGE ON SCHEMA files TO regress_migrate_loader;
GRANT EXECUTE ON FUNCTION migrate_load(text) TO regress_migrate_loader;
SET ROLE regress_migrate_loader;
SELECT * FROM migrate_load('/nonexistent/migrations');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_load('/nonexistent/migrations')$$);
RESET ROLE;
-- in pg_read_server_files it may read the server's files
GRANT pg_read_server_files TO regress_migrate_loader;
SET ROLE regress_migrate_loader;
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_load('/nonexistent/migrations')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION migrate_load(text) FROM regress_migrate_loader;
REVOKE USAGE ON SCHEMA files FROM regress_migrate_loader;
DROP ROLE regress_migrate_loader;

--
-- repeatable migrations: after all versioned ones, again whenever changed
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
DROP TABLE a;
SELECT file, version, kind, result
  FROM migrate_add_scripts(ARRAY['R__user_names.sql', 'V1__users.sql', 'V2__more_users.sql'],
                           ARRAY['CREATE OR REPLACE VIEW user_names AS SELECT name FROM users;',
                                 'CREATE TABLE users (id int PRIMARY KEY, name text);',
                                 $$INSERT INTO users VALUES (1, 'ann'), (2, 'bob');$$]);
SELECT version, name, kind, state FROM migrate.status ORDER BY version_key;
SELECT * FROM migrate_plan();
SELECT version, name, action, rows FROM migrate_apply();
SELECT * FROM user_names;
SELECT version, name, kind, state FROM migrate.status ORDER BY version_key;
-- registered again unchanged: not in the plan
SELECT file, result FROM migrate_add_script('R__user_names.sql',
                                            'CREATE OR REPLACE VIEW user_names AS SELECT name FROM users;');
SELECT * FROM migrate_plan();
-- changed: pending again, and applied again
SELECT file, result FROM migrate_add_script('R__user_names.sql',
                                            'CREATE OR REPLACE VIEW user_names AS SELECT name, id FROM users;');
SELECT version, name, kind, state FROM migrate.status WHERE kind = 'repeatable' ORDER BY version_key;
SELECT * FROM migrate_plan();
SELECT version, name, action, rows FROM migrate_apply();
SELECT * FROM user_names;
SELECT version, name, kind, state FROM migrate.status WHERE kind = 'repeatable' ORDER BY version_key;
SELECT version, action, outcome FROM migrate.history WHERE version LIKE 'R\_\_%' ORDER BY id;
SELECT count(*) AS applied_rows FROM migrate.applied WHERE version = 'R__user_names';
SELECT * FROM migrate_plan();
SELECT * FROM migrate_validate();

DROP VIEW user_names;
DROP TABLE users;
RESET client_min_messages;
