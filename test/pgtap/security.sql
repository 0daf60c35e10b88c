-- Privileges and hostile look-alikes.
--   app_owner: granted EXECUTE on the migrate functions, nothing on the
--              catalog; its migrations run with its own rights.
--   stranger:  nothing at all.
-- Roles are cluster-wide, but CREATE ROLE is transactional: the final
-- ROLLBACK removes them.
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

SELECT plan(66);

-- ---------------------------------------------------------------- setup (superuser)
CREATE ROLE app_owner NOLOGIN;
CREATE ROLE stranger NOLOGIN;
CREATE SCHEMA app AUTHORIZATION app_owner;     -- where app_owner's migrations create things
CREATE SCHEMA evil AUTHORIZATION app_owner;    -- where it plants look-alikes
CREATE SCHEMA locked;                          -- usable, but not writable, by app_owner
GRANT USAGE ON SCHEMA locked TO app_owner;
CREATE TABLE locked.secret (id int);           -- app_owner may not even read it
INSERT INTO locked.secret VALUES (1), (2);
GRANT EXECUTE ON FUNCTION
    migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text),
    migrate_apply(text, boolean, boolean, text),
    migrate_plan(text, boolean),
    migrate_validate(),
    migrate_verify(text),
    migrate_check(text),
    migrate_checksum(text),
    migrate_version_key(text),
    migrate_status()
    TO app_owner;

-- Run sql, return 'ok' or 'SQLSTATE: message'.  Plain PL/pgSQL with no
-- operator of its own beyond ||, so it behaves the same under any search_path.
CREATE FUNCTION pg_temp.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- ---------------------------------------------------------------- the functions themselves
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.proname)
       FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
      WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e' AND p.prosecdef
        AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')),
    ARRAY['migrate_status()'],
    'migrate_status() is the only SECURITY DEFINER function of the extension');
SELECT is(
    (SELECT proconfig FROM pg_proc WHERE oid = 'migrate_status()'::regprocedure),
    ARRAY['search_path=pg_catalog, pg_temp', 'jit=off'],
    'migrate_status() pins search_path = pg_catalog, pg_temp (and needs no JIT)');
SELECT is(
    (SELECT count(*) FROM pg_depend d
      WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')),
    33::bigint,
    'the extension has 33 routines (27 migrate_* and 6 catalog helpers: append-only and chain triggers, row hash, registered_by and job role triggers, status rows)');
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text COLLATE "C")
       FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
      WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
        AND p.pronamespace <> 'migrate'::regnamespace),
    ARRAY['migrate_add(text,text,text,text,text,jsonb,text[],boolean,jsonb,text)', 'migrate_add_script(text,text)',
          'migrate_add_scripts(text[],text[])', 'migrate_apply(text,boolean,boolean,text)', 'migrate_baseline(text)',
          'migrate_cancel(bigint)', 'migrate_check(text)', 'migrate_checksum(text)',
          'migrate_compare_scripts(text[],text[])', 'migrate_histories()', 'migrate_import_history(text)',
          'migrate_jobs()', 'migrate_lint(text)', 'migrate_load(text)', 'migrate_pause(bigint)',
          'migrate_plan(text,boolean)', 'migrate_remove(text)', 'migrate_repair(text,text)', 'migrate_resume(bigint)',
          'migrate_rollback(text)', 'migrate_run(text,boolean,text)', 'migrate_start(text,boolean,text)',
          'migrate_status()', 'migrate_validate()', 'migrate_verify(text)', 'migrate_version_key(text)',
          'migrate_wait(bigint,interval,text,integer,integer)'],
    'the 27 migrate_* routines, migrate_lint(text) among them (the 6 helpers are in schema migrate)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure
        FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
       WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
         AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
         AND has_function_privilege('stranger', p.oid, 'EXECUTE')$$,
    'stranger (PUBLIC) may execute none of the extension''s functions');
SELECT ok(NOT has_schema_privilege('stranger', 'migrate', 'USAGE')
          AND NOT has_schema_privilege('app_owner', 'migrate', 'USAGE'),
          'neither role has USAGE on schema migrate');
SELECT is_empty(
    $$SELECT c.relname, r.role
        FROM pg_class c CROSS JOIN (VALUES ('stranger'), ('app_owner')) AS r (role)
       WHERE c.relnamespace = 'migrate'::regnamespace AND c.relkind IN ('r', 'v')
         AND has_table_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')$$,
    'neither role has any privilege on the catalog tables');

-- ---------------------------------------------------------------- app_owner: the normal path
SET ROLE app_owner;

SELECT lives_ok($$
    SELECT migrate_add('001', 'widgets',
        'CREATE TABLE app.widgets (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO app.widgets VALUES (1, ''one''), (2, ''two''), (3, ''three'');
         CREATE TABLE app.who AS SELECT current_user::text AS cu, session_user::text AS su;',
        verify => 'SELECT current_user = ''app_owner'';
                   SELECT EXISTS (SELECT FROM app.widgets WHERE id = 3);',
        expect => '{"app.widgets": 3}')
$$, 'app_owner can register a migration');
SELECT results_eq(
    $$SELECT version, action, rows, checks FROM migrate_apply()$$,
    $$VALUES ('001', 'applied', 4::bigint, 3)$$,
    'app_owner can apply it (verify query ran as app_owner)');
SELECT results_eq(
    $$SELECT version, state FROM migrate_status()$$,
    $$VALUES ('001', 'applied')$$,
    'app_owner can read migrate_status()');
SELECT results_eq(
    $$SELECT cu COLLATE "default", su COLLATE "default" FROM app.who$$,
    $$VALUES ('app_owner', session_user::text COLLATE "default")$$,
    'inside the migration current_user was app_owner (session_user unchanged)');
SELECT is((SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'widgets'),
          'app_owner', 'the table the migration created belongs to app_owner');
SELECT is(migrate_verify(), 3, 'app_owner can run migrate_verify()');
SELECT is_empty($$SELECT * FROM migrate_validate()$$, 'app_owner can run migrate_validate()');

-- migrations run with app_owner's rights, not the catalog owner's
SELECT lives_ok($$SELECT migrate_add('002', 'second', 'CREATE TABLE locked.forbidden (id int);')$$,
                'register 002: CREATE TABLE in a schema app_owner may not create in');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$, '42501', 'permission denied for schema locked',
                 'the migration fails: app_owner may not create in schema locked');
SELECT lives_ok($$SELECT migrate_add('002', 'second',
    'INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
     VALUES (''99'', ''99'', ''forged'', ''x'', ''postgres'');')$$,
    'replace 002: a migration that writes the catalog itself');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$, '42501', 'permission denied for schema migrate',
                 'the migration fails: its SQL does not run as the catalog owner');
SELECT lives_ok($$SELECT migrate_add('002', 'second', 'INSERT INTO app.widgets VALUES (4, ''four'');',
    expect => '{"app.widgets": "+1", "locked.secret": "="}')$$,
    'replace 002: an expectation on a table app_owner may not read');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$, '42501', 'permission denied for table secret',
                 'expectations are counted with app_owner''s rights');
SELECT results_eq($$SELECT version, state FROM migrate_status()$$,
                  $$VALUES ('001', 'applied'), ('002', 'pending')$$,
                  'after the failures 002 is still pending');

-- the catalog is out of reach
SELECT throws_ok($$INSERT INTO migrate.migrations (version_key, version, name, up, checksum, registered_by)
                   VALUES ('0199', '99', 'forged', 'SELECT 1;', 'x', 'app_owner')$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot INSERT into migrate.migrations');
SELECT throws_ok($$UPDATE migrate.migrations SET up = 'DROP TABLE app.widgets;'$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot UPDATE migrate.migrations');
SELECT throws_ok($$INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
                   VALUES ('0199', '99', 'forged', 'x', 'app_owner')$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot INSERT into migrate.applied');
SELECT throws_ok($$DELETE FROM migrate.applied$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot DELETE from migrate.applied');
SELECT throws_ok($$UPDATE migrate.applied SET checksum = 'x'$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot UPDATE migrate.applied');
SELECT throws_ok($$INSERT INTO migrate.history (version, action, performed_by) VALUES ('99', 'apply', 'x')$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot INSERT into migrate.history');
SELECT throws_ok($$UPDATE migrate.history SET outcome = 'failed'$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot UPDATE migrate.history');
SELECT throws_ok($$SELECT * FROM migrate.migrations$$,
                 '42501', 'permission denied for schema migrate', 'app_owner cannot read migrate.migrations');

-- ---------------------------------------------------------------- stranger
SET ROLE stranger;
SELECT throws_ok($$SELECT migrate_add('003', 'x', 'SELECT 1;')$$,
                 '42501', 'permission denied for function migrate_add', 'stranger cannot call migrate_add');
SELECT throws_ok($$SELECT * FROM migrate_apply()$$,
                 '42501', 'permission denied for function migrate_apply', 'stranger cannot call migrate_apply');
SELECT throws_ok($$SELECT * FROM migrate_status()$$,
                 '42501', 'permission denied for function migrate_status', 'stranger cannot call migrate_status');
SELECT throws_ok($$SELECT * FROM migrate_plan()$$,
                 '42501', 'permission denied for function migrate_plan', 'stranger cannot call migrate_plan');
SELECT throws_ok($$SELECT * FROM migrate_lint()$$,
                 '42501', 'permission denied for function migrate_lint', 'stranger cannot call migrate_lint');
SELECT throws_ok($$SELECT * FROM migrate.status$$,
                 '42501', 'permission denied for schema migrate', 'stranger cannot read migrate.status');

-- ---------------------------------------------------------------- hostile look-alikes
SET ROLE app_owner;
-- tables named like the catalog, in a schema first in search_path and in pg_temp
CREATE TABLE evil.migrations (version_key text, version text, name text, kind text, up text, down text,
                              verify text, expect jsonb, requires text[], transactional boolean,
                              checksum text, source text, registered_by name, registered_at timestamptz);
CREATE TABLE evil.applied (version_key text, version text, name text, checksum text, applied_by name,
                           applied_at timestamptz, touched text[]);
CREATE TABLE evil.history (id bigint, version text, version_key text, name text, action text, checksum text,
                           performed_by name, performed_at timestamptz, duration interval,
                           rows_affected bigint, counts jsonb, checks integer, outcome text, detail jsonb);
CREATE TABLE evil.status (version text, name text, kind text, state text, checksum text,
                          applied_checksum text, applied_at timestamptz, applied_by name,
                          transactional boolean, requires text[], version_key text);
CREATE TABLE evil.catalog_lock (id integer, changed_at timestamptz, changed_by name);
CREATE TEMP TABLE migrations (LIKE evil.migrations);
CREATE TEMP TABLE applied (LIKE evil.applied);
CREATE TEMP TABLE history (LIKE evil.history);
-- functions, an aggregate and operators named like built-ins
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '1999-12-31 00:00+00'::timestamptz$$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$SELECT '1999-12-31 00:00+00'::timestamptz$$;
CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS $$SELECT 'hijacked'$$;
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql AS $$SELECT 'hijacked'$$;
CREATE FUNCTION evil.count_step(bigint) RETURNS bigint LANGUAGE sql AS $$SELECT $1 + 1000$$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION evil.always(text, text) RETURNS boolean LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.always);
CREATE FUNCTION evil.never(oid, oid) RETURNS boolean LANGUAGE sql AS $$SELECT false$$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.never);
CREATE FUNCTION evil.never_char("char", "char") RETURNS boolean LANGUAGE sql AS $$SELECT false$$;
CREATE OPERATOR evil.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = evil.never_char);
CREATE FUNCTION evil.lt(text, text) RETURNS boolean LANGUAGE sql AS $$SELECT false$$;
CREATE OPERATOR evil.< (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.lt);

-- With pg_catalog implicitly first, then evil first of the rest, with pg_temp
-- last; then pg_temp first; then pg_catalog explicitly after evil, so that
-- the look-alike functions and operators really shadow the built-ins.  The
-- outcomes are collected with the hostile path in force and checked later
-- under a normal one (pgTAP itself would be hijacked otherwise).
SET search_path = evil, public, pg_temp;
SELECT pg_temp.outcome($$SELECT migrate_add('002', 'second',
    'INSERT INTO app.widgets VALUES (4, ''four''), (5, ''five'');', expect => '{"app.widgets": "+2"}')$$)
    AS add_002 \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_002 \gset
SELECT string_agg(version || ' ' || state, ', ') AS status_1 FROM migrate_status() \gset

SET search_path = pg_temp, evil, public;
SELECT pg_temp.outcome($$SELECT migrate_add('003', 'third', 'INSERT INTO app.widgets VALUES (6, ''six'');',
    expect => '{"app.widgets": "+1"}')$$) AS add_003 \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_003 \gset

SET search_path = evil, pg_catalog, public, pg_temp;
SELECT pg_temp.outcome($$SELECT migrate_add('004', 'fourth',
    'INSERT INTO app.widgets VALUES (7, ''seven''), (8, ''eight'');
     CREATE TABLE app.parts (id int PRIMARY KEY, widget_id int REFERENCES app.widgets, qty int NOT NULL);
     INSERT INTO app.parts VALUES (1, 1, 0);',
    expect => '{"app.widgets": "+2", "app.parts": 1}')$$) AS add_004 \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_004 \gset
SELECT pg_temp.outcome($$SELECT migrate_add('004', 'fourth', 'SELECT 1;')$$) AS readd_004 \gset
SELECT state AS state_004 FROM migrate_status() WHERE version OPERATOR(pg_catalog.=) '004' \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_changed \gset
-- the applied text again (hostile search_path still): restored
SELECT pg_temp.outcome($$SELECT migrate_add('004', 'fourth',
    'INSERT INTO app.widgets VALUES (7, ''seven''), (8, ''eight'');
     CREATE TABLE app.parts (id int PRIMARY KEY, widget_id int REFERENCES app.widgets, qty int NOT NULL);
     INSERT INTO app.parts VALUES (1, 1, 0);',
    expect => '{"app.widgets": "+2", "app.parts": 1}')$$) AS restore_004 \gset
SELECT string_agg(version || ' ' || state, ', ') AS status_2 FROM migrate_status() \gset
SELECT pg_temp.outcome($$SELECT migrate_verify()$$) AS verify_all \gset
SELECT pg_temp.outcome($$SELECT migrate_add('005', 'bad count', 'INSERT INTO app.widgets VALUES (9, ''nine'');',
    expect => '{"app.widgets": "+2"}')$$) AS add_005 \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_005 \gset
SELECT pg_temp.outcome($$SELECT migrate_add('005', 'bad count',
    'ALTER TABLE app.parts ADD CONSTRAINT parts_qty_positive CHECK (qty > 0) NOT VALID;')$$)
    AS readd_005 \gset
SELECT pg_temp.outcome($$SELECT * FROM migrate_apply()$$) AS apply_005b \gset
SET search_path TO DEFAULT;

SELECT is(:'add_002'::text, 'ok', 'search_path evil, public, pg_temp: migrate_add (replace 002) works');
SELECT is(:'apply_002'::text, 'ok', 'search_path evil, public, pg_temp: migrate_apply works');
SELECT is(:'status_1'::text, '001 applied, 002 applied', 'search_path evil, public, pg_temp: migrate_status is right');
SELECT is(:'add_003'::text, 'ok', 'search_path pg_temp, evil, public: migrate_add works');
SELECT is(:'apply_003'::text, 'ok', 'search_path pg_temp, evil, public: migrate_apply works');
SELECT is(:'add_004'::text, 'ok', 'search_path evil, pg_catalog, ...: migrate_add works');
SELECT is(:'apply_004'::text, 'ok', 'search_path evil, pg_catalog, ...: migrate_apply works (counts not hijacked)');
SELECT is(:'readd_004'::text, 'ok', 'search_path evil, pg_catalog, ...: new text for applied 004 is registered');
SELECT is(:'state_004'::text, 'changed',
          'search_path evil, pg_catalog, ...: the applied checksum is still compared correctly (changed)');
SELECT is(:'apply_changed'::text, '55000: migrate_apply() refuses to apply while an applied migration is changed',
          'search_path evil, pg_catalog, ...: applying is refused while 004 is changed');
SELECT is(:'restore_004'::text, 'ok', 'search_path evil, pg_catalog, ...: the applied text registered again');
SELECT is(:'status_2'::text, '001 applied, 002 applied, 003 applied, 004 applied',
          'search_path evil, pg_catalog, ...: migrate_status is right');
SELECT is(:'verify_all'::text, 'ok', 'search_path evil, pg_catalog, ...: migrate_verify passes');
SELECT is(:'add_005'::text, 'ok', 'search_path evil, pg_catalog, ...: register 005 with a wrong expectation');
SELECT is(:'apply_005'::text,
          '23000: row count expectation failed for table "app.widgets": expected 10 (+2 from 8), found 9',
          'search_path evil, pg_catalog, ...: a wrong expectation is still caught (real count(*))');
SELECT is(:'readd_005'::text, 'ok', 'search_path evil, pg_catalog, ...: replace 005 by a NOT VALID CHECK that a row violates');
SELECT is(:'apply_005b'::text, '23514: check constraint "parts_qty_positive" on table "parts" is violated',
          'search_path evil, pg_catalog, ...: constraint re-checks still find their constraints');

SELECT results_eq(
    $$SELECT version, state, applied_at IS NOT NULL FROM migrate_status()$$,
    $$VALUES ('001', 'applied', true), ('002', 'applied', true),
             ('003', 'applied', true), ('004', 'applied', true), ('005', 'pending', false)$$,
    'migrate_status() under the default search_path agrees');
SELECT is((SELECT count(*) FROM app.widgets), 8::bigint, 'app.widgets has 8 rows');

-- ---------------------------------------------------------------- the real catalog (superuser)
RESET ROLE;
SELECT is(
    (SELECT (SELECT count(*) FROM evil.migrations) + (SELECT count(*) FROM evil.applied)
          + (SELECT count(*) FROM evil.history) + (SELECT count(*) FROM evil.status)
          + (SELECT count(*) FROM evil.catalog_lock)),
    0::bigint, 'the look-alike tables in schema evil stay empty');
SELECT is(
    (SELECT (SELECT count(*) FROM pg_temp.migrations) + (SELECT count(*) FROM pg_temp.applied)
          + (SELECT count(*) FROM pg_temp.history)),
    0::bigint, 'the look-alike temp tables stay empty');
SELECT results_eq(
    $$SELECT version, name, registered_by FROM migrate.migrations ORDER BY version_key$$,
    $$VALUES ('001', 'widgets', 'app_owner'::name), ('002', 'second', 'app_owner'),
             ('003', 'third', 'app_owner'), ('004', 'fourth', 'app_owner'), ('005', 'bad count', 'app_owner')$$,
    'the real migrate.migrations holds what app_owner registered');
SELECT results_eq(
    $$SELECT version, applied_by, applied_at = now() FROM migrate.applied ORDER BY version_key$$,
    $$VALUES ('001', 'app_owner'::name, true), ('002', 'app_owner', true),
             ('003', 'app_owner', true), ('004', 'app_owner', true)$$,
    'the real migrate.applied holds 001-004, applied by app_owner at the real now()');
SELECT results_eq(
    $$SELECT version, action, performed_by FROM migrate.history ORDER BY id$$,
    $$VALUES ('001', 'register', 'app_owner'::name), ('001', 'apply', 'app_owner'),
             ('002', 'register', 'app_owner'), ('002', 'replace', 'app_owner'), ('002', 'replace', 'app_owner'),
             ('002', 'replace', 'app_owner'), ('002', 'apply', 'app_owner'),
             ('003', 'register', 'app_owner'), ('003', 'apply', 'app_owner'),
             ('004', 'register', 'app_owner'), ('004', 'apply', 'app_owner'),
             ('004', 'replace', 'app_owner'), ('004', 'replace', 'app_owner'),
             ('005', 'register', 'app_owner'), ('005', 'replace', 'app_owner')$$,
    'the real migrate.history holds every action, performed by app_owner');
SELECT is((SELECT counts FROM migrate.history WHERE version = '004' AND action = 'apply'),
          '{"app.widgets": {"expect": "+2", "before": 6, "after": 8}, "app.parts": {"expect": "1", "after": 1}}'::jsonb,
          'the counts of 004 are real counts, not the look-alike count(*)');
SELECT ok((SELECT bool_and(performed_at > '2000-01-01') FROM migrate.history),
          'history timestamps come from the real clock_timestamp()');
SELECT is_empty($$SELECT * FROM migrate.applied WHERE version = '99' OR name = 'forged'$$,
                'no forged row reached the catalog');
SELECT is((SELECT changed_by FROM migrate.catalog_lock), 'app_owner'::name,
          'the real catalog_lock records app_owner as the last writer');

-- history is append-only, even for the superuser
SELECT throws_ok($$UPDATE migrate.history SET outcome = 'failed'$$, '55000', 'migrate.history is append-only',
                 'UPDATE of migrate.history is refused, even for a superuser');
SELECT throws_ok($$DELETE FROM migrate.history$$, '55000', 'migrate.history is append-only',
                 'DELETE from migrate.history is refused, even for a superuser');
SELECT throws_ok($$TRUNCATE migrate.history$$, '55000', 'migrate.history is append-only',
                 'TRUNCATE of migrate.history is refused, even for a superuser');

SELECT * FROM finish();
ROLLBACK;
