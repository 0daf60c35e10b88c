-- Attack: constraint re-checks run code that belongs to a table (its CHECK
-- expressions); they must run as that table's owner, never as the role that
-- applies or verifies migrations (here the superuser).
--   mallory: owns schema m and tables there whose CHECK constraints call her
--            functions: one records current_user and search_path and tries
--            ALTER ROLE mallory SUPERUSER and COPY ... TO a server file, one
--            is true only for current_user mallory.  She may also create
--            tables in schema app, where the superuser's migrations create
--            theirs: after one is dropped she plants an impostor of the same
--            name whose CHECK raises when re-checked.
--   pat:     owns public.parent, which mallory may reference but not read.
-- Roles are cluster-wide, but CREATE ROLE is transactional: the final
-- ROLLBACK removes them (and undoes an escalation, should one succeed).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_ROLLBACK 1
\set ON_ERROR_STOP true

BEGIN;
CREATE EXTENSION pgtap;
CREATE EXTENSION migrate;
SET LOCAL client_min_messages = warning;

SELECT plan(24);

-- ---------------------------------------------------------------- setup (superuser)
CREATE ROLE mallory NOLOGIN;
CREATE ROLE pat NOLOGIN;
CREATE SCHEMA m AUTHORIZATION mallory;
CREATE SCHEMA app;
GRANT USAGE, CREATE ON SCHEMA app TO mallory;
CREATE TABLE public.seen (n serial, who text, detail text, what text);
GRANT INSERT ON public.seen TO mallory;
GRANT USAGE ON SEQUENCE public.seen_n_seq TO mallory;
-- a file the escalation would write; unique to this backend and transaction
DO $$BEGIN
    PERFORM set_config('attack.file',
                       '/tmp/migrate_attack_constraint_' || pg_backend_pid() || '_' || txid_current(), true);
END$$;

SET ROLE mallory;
CREATE FUNCTION m.spy(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen (who, detail, what) VALUES (current_user, current_setting('search_path'), 'check');
    BEGIN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
        INSERT INTO public.seen (who, detail, what) VALUES (current_user, NULL, 'ALTER ROLE succeeded');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO public.seen (who, detail, what) VALUES (current_user, SQLSTATE, 'ALTER ROLE refused');
    END;
    BEGIN
        EXECUTE format('COPY (SELECT 1) TO %L', current_setting('attack.file'));
        INSERT INTO public.seen (who, detail, what) VALUES (current_user, NULL, 'COPY succeeded');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO public.seen (who, detail, what) VALUES (current_user, SQLSTATE, 'COPY refused');
    END;
    RETURN true;
END
$$;
CREATE FUNCTION m.is_mallory() RETURNS boolean LANGUAGE sql AS $$SELECT current_user = 'mallory'$$;
-- true when mallory inserts; raises in a re-check (search_path pinned)
CREATE FUNCTION m.boom() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('search_path') = 'pg_catalog, pg_temp' THEN
        RAISE EXCEPTION 'impostor checked as %', current_user;
    END IF;
    RETURN true;
END
$$;
CREATE TABLE m.t (id int PRIMARY KEY, v int CHECK (m.spy(v)));
CREATE TABLE m.t2 (id int PRIMARY KEY CHECK (m.is_mallory()));
INSERT INTO m.t VALUES (1, 1);
INSERT INTO m.t2 VALUES (1);
RESET ROLE;
TRUNCATE public.seen;

-- ---------------------------------------------------------------- apply, verify_constraints = all
SET migrate.verify_constraints = 'all';
SELECT lives_ok($$SELECT migrate_add('001', 'unrelated', 'CREATE TABLE public.t1 (id int);')$$,
                'the superuser registers 001, which does not touch mallory''s tables');
SELECT lives_ok($$SELECT * FROM migrate_apply()$$,
                'the superuser applies 001 with verify_constraints = all: m.t2''s CHECK passed (it ran as mallory)');
SELECT results_eq(
    $$SELECT who, detail, what FROM public.seen ORDER BY n$$,
    $$VALUES ('mallory', 'pg_catalog, pg_temp', 'check'),
             ('mallory', '42501', 'ALTER ROLE refused'),
             ('mallory', '42501', 'COPY refused')$$,
    'm.t''s CHECK ran once, as mallory, with search_path pinned; its escalations were refused');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false, 'mallory is not a superuser');
SELECT is(pg_stat_file(current_setting('attack.file'), true), NULL, 'no server file was written');

-- ---------------------------------------------------------------- apply, verify_constraints = touched
SET migrate.verify_constraints = 'touched';
TRUNCATE public.seen;
-- a DELETE touches m.t without evaluating its CHECK as the superuser
SELECT lives_ok($$SELECT migrate_add('002', 'touch mallory''s tables',
                                     'DELETE FROM m.t WHERE id < 0; DELETE FROM m.t2 WHERE id < 0;')$$,
                'the superuser registers 002, which writes mallory''s tables');
SELECT lives_ok($$SELECT * FROM migrate_apply()$$,
                'the superuser applies 002 (verify_constraints = touched): m.t2''s CHECK passed as mallory');
SELECT is((SELECT touched FROM migrate.applied WHERE version = '002'), ARRAY['m.t', 'm.t2'],
          '002 touched m.t and m.t2');
SELECT results_eq(
    $$SELECT who, detail, what FROM public.seen ORDER BY n$$,
    $$VALUES ('mallory', 'pg_catalog, pg_temp', 'check'),
             ('mallory', '42501', 'ALTER ROLE refused'),
             ('mallory', '42501', 'COPY refused')$$,
    'the re-check of m.t after 002 ran as mallory only');

-- ---------------------------------------------------------------- migrate_check / migrate_verify
SELECT results_eq(
    $$SELECT "check", object, ok, sqlstate FROM migrate_check('002') WHERE "check" = 'check constraint' ORDER BY object$$,
    $$VALUES ('check constraint', 't2_check on m.t2', true, NULL::text),
             ('check constraint', 't_v_check on m.t', true, NULL::text)$$,
    'migrate_check(''002'') re-checks both CHECKs as mallory: m.t2''s passes');
SELECT is(migrate_verify('002'), 4, 'migrate_verify(''002'') passes: checksum, two CHECKs, indexes');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), false, 'mallory is still not a superuser');
SELECT is(pg_stat_file(current_setting('attack.file'), true), NULL, 'still no server file');

-- ---------------------------------------------------------------- foreign keys
-- over built-in types the key's equality runs no user code: when neither
-- owner can read the other table, the caller checks it (as PostgreSQL did)
CREATE TABLE public.parent (id int PRIMARY KEY);
ALTER TABLE public.parent OWNER TO pat;
GRANT REFERENCES ON public.parent TO mallory;
SET ROLE mallory;
CREATE TABLE m.child (id int PRIMARY KEY, parent_id int REFERENCES public.parent);
RESET ROLE;
SET migrate.verify_constraints = 'all';
SELECT results_eq(
    $$SELECT ok, sqlstate FROM migrate_check('001') WHERE "check" = 'foreign key'$$,
    $$VALUES (true, NULL::text)$$,
    'a foreign key over built-in types that neither owner can read across is re-checked by the caller');
DROP TABLE m.child;
-- over a type that is not built in, the key's equality is code that must not
-- run with the caller's rights
CREATE TYPE public.pair AS (a int, b int);
CREATE TABLE public.pair_parent (p public.pair PRIMARY KEY);
ALTER TABLE public.pair_parent OWNER TO pat;
SET ROLE pat;
GRANT REFERENCES ON public.pair_parent TO mallory;
RESET ROLE;
SET ROLE mallory;
CREATE TABLE m.child (id int PRIMARY KEY, p public.pair REFERENCES public.pair_parent);
RESET ROLE;
SELECT results_eq(
    $$SELECT ok, sqlstate, message FROM migrate_check('001') WHERE "check" = 'foreign key'$$,
    $$VALUES (false, '42501'::text,
              'cannot re-check foreign key constraint "child_p_fkey" on table "child"'::text)$$,
    'a foreign key over a user type that neither owner can read across is not re-checked by the superuser: 42501');
GRANT SELECT ON public.pair_parent TO mallory;
SELECT results_eq(
    $$SELECT ok, sqlstate FROM migrate_check('001') WHERE "check" = 'foreign key'$$,
    $$VALUES (true, NULL::text)$$,
    'once mallory may read public.pair_parent, the foreign key is re-checked (as mallory)');
DROP TABLE m.child;

-- ---------------------------------------------------------------- impostor tables
SET migrate.verify_constraints = 'touched';
SELECT lives_ok($$
    SELECT migrate_add('003', 'victim', 'CREATE TABLE app.victim (id int PRIMARY KEY, v int CHECK (v > 0));
                                         INSERT INTO app.victim VALUES (1, 1);'),
           migrate_add('004', 'gone', 'CREATE TABLE app.gone (id int CHECK (id > 0));'),
           migrate_add('005', 'renamed', 'CREATE TABLE app.ren (id int CHECK (id > 0));')
$$, 'the superuser registers 003..005, each creating a table in schema app');
SELECT is((SELECT count(*) FROM migrate_apply()), 3::bigint, 'and applies them');
DROP TABLE app.victim, app.gone;
ALTER TABLE app.ren RENAME TO ren2;
SET ROLE mallory;
CREATE TABLE app.victim (id int PRIMARY KEY, v int CHECK (m.boom()));
INSERT INTO app.victim VALUES (1, 1);
RESET ROLE;

SELECT results_eq(
    $$SELECT "check", object, ok, sqlstate, message FROM migrate_check('003') WHERE "check" <> 'checksum'$$,
    $$VALUES ('table', 'app.victim', true, NULL::text,
              'table app.victim was dropped since migration 003 was applied; the table of that name now, owned by mallory, is another one: not checked')$$,
    'migrate_check(''003''): mallory''s impostor app.victim is reported and never checked');
SELECT is(migrate_verify('003'), 1, 'migrate_verify(''003'') passes without checking the impostor');
SELECT results_eq(
    $$SELECT "check", object, ok, sqlstate, message FROM migrate_check('004') WHERE "check" <> 'checksum'$$,
    $$VALUES ('table', 'app.gone', true, NULL::text,
              'table app.gone was dropped since migration 004 was applied: not checked')$$,
    'migrate_check(''004''): a table dropped since is reported, not checked');
SELECT results_eq(
    $$SELECT "check", object, ok FROM migrate_check('005') WHERE "check" = 'check constraint'$$,
    $$VALUES ('check constraint', 'ren_id_check on app.ren2', true)$$,
    'migrate_check(''005''): a renamed table is still the same table and is checked');
SELECT lives_ok($$SELECT migrate_verify()$$, 'migrate_verify() of everything passes (touched)');
-- verify_constraints = all checks every table, the impostor too, but as its owner
SET migrate.verify_constraints = 'all';
SELECT results_eq(
    $$SELECT ok, message FROM migrate_check('001') WHERE "check" = 'check constraint' AND object LIKE '%app.victim'$$,
    $$VALUES (false, 'impostor checked as mallory')$$,
    'with verify_constraints = all the impostor''s CHECK runs, as mallory');

SELECT * FROM finish();
ROLLBACK;
