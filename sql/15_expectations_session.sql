--
-- 15_expectations_session: row-count expectations that cannot be fooled (a
-- TRUNCATE hidden in a function, a migration's own search_path, another
-- session writing the table), and session state: a dry run leaves the
-- session as it found it; a migration's own statement_timeout and
-- lock_timeout apply to its following statements.
--
-- Each case runs in a transaction that is rolled back, so its registration
-- goes with it.
--
SET client_min_messages = warning;
\set VERBOSITY default
-- the lock waits below fail at once, as they did before migrations were
-- retried after a lock timeout (test/t/023_lock_retry.pl covers retries)
SET migrate.lock_retries = 0;

-- SQLSTATE and message of an error
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA exp15;
CREATE SCHEMA exp15_app;
SET search_path = exp15, public;
CREATE TABLE exp15.t (id int);
INSERT INTO exp15.t SELECT generate_series(1, 5);
CREATE TABLE exp15_app.t (id int);
INSERT INTO exp15_app.t SELECT generate_series(1, 6);

--
-- "=" and a TRUNCATE hidden in a function, of a table created earlier in
-- the same migrate_apply(): the truncate empties the file in place, where
-- the snapshot kept from before cannot see the rows it removed, and resets
-- the statistics; it is found, and refused like any hidden TRUNCATE
--
BEGIN;
SELECT migrate_add('101', 'tools', $$
CREATE TABLE tools (id int);
INSERT INTO tools SELECT generate_series(1, 5);
CREATE FUNCTION zap_tools() RETURNS void LANGUAGE sql AS 'TRUNCATE tools';
$$) IS NOT NULL AS registered;
SELECT migrate_add('102', 'zap', 'SELECT zap_tools()', expect => '{"tools": "="}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- the same in a dry run (a subtransaction)
BEGIN;
SELECT migrate_add('101', 'tools', $$
CREATE TABLE tools (id int);
INSERT INTO tools SELECT generate_series(1, 5);
CREATE FUNCTION zap_tools() RETURNS void LANGUAGE sql AS 'TRUNCATE tools';
$$) IS NOT NULL AS registered;
SELECT migrate_add('102', 'zap', 'SELECT zap_tools()', expect => '{"tools": "="}') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply(dry_run => true)');
ROLLBACK;
-- a table given a new file earlier in the call (a rewrite): its statistics
-- count nothing before and nothing after the TRUNCATE, and still it is found
BEGIN;
SELECT migrate_add('101', 'rewrite', $$
ALTER TABLE t ALTER COLUMN id TYPE bigint;
CREATE FUNCTION zap_t() RETURNS void LANGUAGE sql AS 'TRUNCATE t';
$$) IS NOT NULL AS registered;
SELECT migrate_add('102', 'zap', 'SELECT zap_t()', expect => '{"t": "="}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- an exact count checks it
BEGIN;
SELECT migrate_add('101', 'tools', $$
CREATE TABLE tools (id int);
INSERT INTO tools SELECT generate_series(1, 5);
CREATE FUNCTION zap_tools() RETURNS void LANGUAGE sql AS 'TRUNCATE tools; INSERT INTO tools SELECT generate_series(1, 5)';
$$) IS NOT NULL AS registered;
SELECT migrate_add('102', 'zap', 'SELECT zap_tools()', expect => '{"tools": 5}') IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
SELECT counts FROM migrate.history WHERE version = '102' AND action = 'apply';
ROLLBACK;

--
-- a name means one table for the whole check: resolved with the caller's
-- search_path (exp15, public), whatever the migration sets
--
-- the migration's own search_path finds exp15_app.t (6 rows): exp15.t is
-- still the one counted, and it did not grow
BEGIN;
SELECT migrate_add('101', 'path', 'SET search_path = exp15_app, public; SELECT count(*) FROM t',
                   expect => '{"t": "+1"}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- it grows: a row inserted into exp15.t by its qualified name
BEGIN;
SELECT migrate_add('101', 'path', 'SET search_path = exp15_app, public; INSERT INTO exp15.t VALUES (6); INSERT INTO t VALUES (7)',
                   expect => '{"t": "+1", "exp15_app.t": "+1"}') IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
SELECT counts FROM migrate.history WHERE version = '101' AND action = 'apply';
ROLLBACK;
-- "=": the migration writes exp15_app.t only; exp15.t is proven unchanged
BEGIN;
SELECT migrate_add('101', 'path', 'SET search_path = exp15_app, public; DELETE FROM t',
                   expect => '{"t": "="}') IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
SELECT counts FROM migrate.history WHERE version = '101' AND action = 'apply';
ROLLBACK;
-- a table the migration creates is looked up after it with the caller's
-- search_path too: one made in exp15_app is not "newt" to the caller
BEGIN;
SELECT migrate_add('101', 'path', 'SET search_path = exp15_app; CREATE TABLE newt AS SELECT 1 AS id',
                   expect => '{"newt": 1}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
BEGIN;
SELECT migrate_add('101', 'path', 'SET search_path = exp15_app; CREATE TABLE newt AS SELECT 1 AS id',
                   expect => '{"exp15_app.newt": 1}') IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
ROLLBACK;

--
-- another session writing the table: under READ COMMITTED the tables of "+n"
-- and "=" are locked in SHARE mode from the count before to the end of the
-- transaction, waiting at most lock_timeout for other writers
--
CREATE EXTENSION dblink SCHEMA exp15;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s',
                      split_part(current_setting('unix_socket_directories'), ',', 1),
                      current_setting('port'), current_database()));
SELECT dblink_exec('other', 'BEGIN; INSERT INTO exp15.t VALUES (100)');
BEGIN;
SET LOCAL lock_timeout = '100ms';
SELECT migrate_add('101', 'grow', 'INSERT INTO t VALUES (6)', expect => '{"t": "+1"}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- an exact count takes no such lock: it counts what the transaction sees
BEGIN;
SET LOCAL lock_timeout = '100ms';
SELECT migrate_add('101', 'grow', 'INSERT INTO t VALUES (6)', expect => '{"t": 6}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- under REPEATABLE READ the counts come from the transaction's snapshot: no lock
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL lock_timeout = '100ms';
SELECT migrate_add('101', 'grow', 'INSERT INTO t VALUES (6)', expect => '{"t": "+1"}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
SELECT dblink_exec('other', 'ROLLBACK');
-- the lock needs the right LOCK TABLE ... IN SHARE MODE needs
CREATE ROLE regress_exp15_reader;
GRANT USAGE ON SCHEMA exp15 TO regress_exp15_reader;
GRANT SELECT ON exp15.t TO regress_exp15_reader;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
                          migrate_apply(text, boolean, boolean, text)
   TO regress_exp15_reader;
BEGIN;
SET LOCAL ROLE regress_exp15_reader;
SELECT migrate_add('101', 'reads', 'SELECT 1', expect => '{"t": "="}') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL ROLE regress_exp15_reader;
SELECT migrate_add('101', 'reads', 'SELECT 1', expect => '{"t": "="}') IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
ROLLBACK;

--
-- a dry run leaves the session as it found it: what its migrations prepared,
-- declared WITH HOLD or listened to is gone, and the real apply right after
-- runs the same statements
--
BEGIN;
SELECT migrate_add('101', 'session', $$
PREPARE tool_count AS SELECT count(*) FROM t;
EXECUTE tool_count;
DECLARE tool_cursor CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id;
LISTEN tool_channel;
$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT name FROM pg_prepared_statements;
SELECT name FROM pg_cursors;
SELECT pg_listening_channels();
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, action FROM migrate_apply();
COMMIT;
-- a real apply leaves them, as psql running the file would
SELECT name FROM pg_prepared_statements;
SELECT name FROM pg_cursors;
SELECT pg_listening_channels();
FETCH 2 FROM tool_cursor;
CLOSE tool_cursor;
UNLISTEN tool_channel;
-- a dry run cannot deallocate or close what the session had: rolling back
-- would not give it back
BEGIN;
SELECT migrate_add('102', 'deallocate', 'DEALLOCATE tool_count') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
ROLLBACK;
BEGIN;
SELECT migrate_add('102', 'deallocate', 'DEALLOCATE ALL') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply(dry_run => true)');
DECLARE mine CURSOR FOR SELECT 1;
SELECT migrate_add('102', 'deallocate', 'CLOSE mine') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply(dry_run => true)');
SELECT migrate_add('102', 'deallocate', 'CLOSE ALL') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_apply(dry_run => true)');
-- what it prepared and deallocated itself is fine
SELECT migrate_add('102', 'deallocate', 'PREPARE mine AS SELECT 1; DEALLOCATE mine; DECLARE c CURSOR FOR SELECT 1; CLOSE c')
       IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
ROLLBACK;
-- out of sight (a DO block), it is done, and said
BEGIN;
SELECT migrate_add('102', 'deallocate', $$DO 'BEGIN EXECUTE ''DEALLOCATE tool_count''; END'$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
ROLLBACK;
SELECT name FROM pg_prepared_statements;

--
-- a migration's own timeouts apply to its following statements
--
BEGIN;
SELECT migrate_add('102', 'slow', $$SELECT 1;
SET statement_timeout = '100ms';
SELECT pg_sleep(1);
$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
-- in a dry run too (a cancel is not caught by PL/pgSQL's WHEN OTHERS)
BEGIN;
SELECT migrate_add('102', 'slow', $$SET statement_timeout = '100ms';
SELECT pg_sleep(1);
$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
ROLLBACK;
-- statements within it pass; the caller's setting is untouched
BEGIN;
SELECT migrate_add('102', 'slow', $$SET statement_timeout = '10s';
SELECT pg_sleep(0.01);
$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply(dry_run => true);
SHOW statement_timeout;
ROLLBACK;
-- lock_timeout: another session holds the lock
SELECT dblink_exec('other', 'BEGIN; LOCK TABLE exp15.t IN ACCESS EXCLUSIVE MODE');
BEGIN;
SELECT migrate_add('102', 'locks', $$SET lock_timeout = '100ms';
ALTER TABLE t ADD COLUMN note text;
$$) IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
ROLLBACK;
SELECT dblink_exec('other', 'ROLLBACK');
SELECT dblink_disconnect('other');

RESET search_path;
DROP EXTENSION dblink;
DROP SCHEMA exp15, exp15_app CASCADE;
DROP OWNED BY regress_exp15_reader;
DROP ROLE regress_exp15_reader;
RESET client_min_messages;
