--
-- 11_reviewed_plan: migrate_plan() shows the checksum of every script it
-- would run and of the whole plan; migrate_apply(plan => ...) and
-- CALL migrate_run(plan => ...) run nothing unless the plan is still the one
-- that was reviewed.  A role that may register swaps a pending migration
-- between review and apply; the applier's call refuses.
--
-- a fresh catalog (10_real_files drops the extension with its schema)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
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
-- the plan checksum migrate_plan() shows (every row has the same one; the
-- empty plan has one too, which only a refusal's DETAIL shows)
CREATE FUNCTION pg_temp.plan_checksum(target text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
SELECT DISTINCT plan_checksum FROM migrate_plan(target)
$$;
-- the plan checksum as the README documents it, computed in SQL from the
-- catalog: SHA-256 of "migrate plan 1", the number of steps, then for each
-- step its fields, each "<field> <bytes>:<value>" or "<field> null"
CREATE FUNCTION pg_temp.field(name text, value text) RETURNS text LANGUAGE sql AS $$
SELECT CASE WHEN value IS NULL THEN name || E' null\n'
            ELSE name || ' ' || octet_length(value) || ':' || value || E'\n' END
$$;
CREATE FUNCTION pg_temp.documented_checksum(target text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
SELECT encode(sha256(convert_to(
           E'migrate plan 1\nsteps ' || count(*) || E'\n' ||
           coalesce(string_agg(
               pg_temp.field('key', migrate_version_key(m.version)) ||
               pg_temp.field('version', m.version) ||
               pg_temp.field('name', m.name) ||
               pg_temp.field('up', m.checksum) ||
               pg_temp.field('verify', migrate_checksum(m.verify)) ||
               pg_temp.field('down', migrate_checksum(m.down)) ||
               pg_temp.field('expect', m.expect::text) ||
               'requires ' || cardinality(m.requires) || E'\n' ||
               coalesce((SELECT string_agg(pg_temp.field('require', migrate_version_key(r)), '' ORDER BY i)
                           FROM unnest(m.requires) WITH ORDINALITY AS u(r, i)), '') ||
               'transactional ' || m.transactional || E'\n',
               '' ORDER BY p.step), ''),
           'UTF8')), 'hex')
  FROM migrate_plan(target) p JOIN migrate.migrations m USING (version)
$$;
-- migrate_apply() with a plan checksum, for sqlstate_of()
CREATE FUNCTION pg_temp.apply_sql(plan text, dry_run boolean DEFAULT false) RETURNS text LANGUAGE sql AS $$
SELECT format('SELECT * FROM migrate_apply(dry_run => %L, plan => %L)', dry_run, plan)
$$;
-- status and history without timestamps (string bodies: they survive DROP EXTENSION)
CREATE FUNCTION pg_temp.status() RETURNS TABLE(version text, name text, state text)
LANGUAGE sql AS $$ SELECT version, name, state FROM migrate_status() $$;

CREATE SCHEMA rev;
SET search_path = rev, public;

-- a role that may register but not apply: what it registers runs with the
-- rights of whoever applies next
CREATE ROLE regress_registrar;
GRANT EXECUTE ON FUNCTION migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text)
    TO regress_registrar;

--
-- the checksums of every script, and of the plan
--
SELECT left(migrate_add('001', 'users', 'CREATE TABLE users (id int PRIMARY KEY);',
                        down => 'DROP TABLE users;'), 12) AS checksum;
SELECT left(migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                        verify => 'SELECT count(*) = 2 FROM users;',
                        expect => '{"users": "+2"}', requires => '{001}'), 12) AS checksum;
SELECT left(migrate_add('003', 'users index', 'CREATE INDEX CONCURRENTLY users_id ON users (id);'), 12) AS checksum;
SELECT * FROM migrate_plan();
-- checksum, verify_checksum and down_checksum are migrate_checksum() of the texts
SELECT p.version, p.checksum = migrate_checksum(m.up) AS up,
       p.verify_checksum IS NOT DISTINCT FROM migrate_checksum(m.verify) AS verify,
       p.down_checksum IS NOT DISTINCT FROM migrate_checksum(m.down) AS down
  FROM migrate_plan() p JOIN migrate.migrations m USING (version) ORDER BY p.step;
SELECT count(DISTINCT plan_checksum) AS plan_checksums FROM migrate_plan();
-- the reviewer keeps the plan checksum
SELECT pg_temp.plan_checksum() AS reviewed \gset
-- the same under other session settings
SET DateStyle = 'SQL, DMY';
SET extra_float_digits = -10;
SET bytea_output = 'escape';
SET IntervalStyle = 'iso_8601';
SELECT pg_temp.plan_checksum() = :'reviewed' AS same;
RESET DateStyle;
RESET extra_float_digits;
RESET bytea_output;
RESET IntervalStyle;
-- what the README documents
SELECT pg_temp.documented_checksum() = :'reviewed' AS documented,
       pg_temp.documented_checksum('001') = pg_temp.plan_checksum('001') AS documented_001;
-- the same for a target that leaves out nothing; another for one that does
SELECT pg_temp.plan_checksum('003') = :'reviewed' AS same_steps,
       pg_temp.plan_checksum('002') = :'reviewed' AS fewer_steps;

-- a dry run of the reviewed plan (upper case is accepted too)
SELECT version, name, action, rows, checks FROM migrate_apply(dry_run => true, plan => :'reviewed');
SELECT version, action FROM migrate_apply(dry_run => true, plan => upper(:'reviewed'));

--
-- between review and apply, the registrar swaps the up script of 002
--
SET ROLE regress_registrar;
SELECT left(migrate_add('002', 'seed', E'INSERT INTO users VALUES (1), (2);\nGRANT ALL ON users TO PUBLIC;',
                        verify => 'SELECT count(*) = 2 FROM users;',
                        expect => '{"users": "+2"}', requires => '{001}'), 12) AS checksum;
RESET ROLE;
-- migrate_plan() shows it, with another plan checksum
SELECT step, version, left(checksum, 12) AS checksum, plan_checksum = :'reviewed' AS reviewed,
       plan_checksum = pg_temp.documented_checksum() AS documented
  FROM migrate_plan();
-- apply refuses the reviewed plan, before running anything; so does a dry run
SELECT * FROM migrate_apply(plan => :'reviewed');
SELECT * FROM migrate_apply(dry_run => true, plan => :'reviewed');
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply,
       pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed', dry_run => true)) AS dry_run;
SELECT to_regclass('users') AS users;
SELECT version, action FROM migrate.history WHERE action NOT IN ('register', 'replace') ORDER BY id;
-- registering the reviewed text again makes it the reviewed plan again
SET ROLE regress_registrar;
SELECT left(migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                        verify => 'SELECT count(*) = 2 FROM users;',
                        expect => '{"users": "+2"}', requires => '{001}'), 12) AS checksum;
RESET ROLE;
SELECT pg_temp.plan_checksum() = :'reviewed' AS reviewed;

--
-- any other part swapped, one at a time: the plan is not the reviewed one
--
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT true;',
                   expect => '{"users": "+2"}', requires => '{001}') IS NOT NULL AS new_verify;
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT count(*) = 2 FROM users;', down => 'DROP TABLE users;',
                   expect => '{"users": "+2"}', requires => '{001}') IS NOT NULL AS new_down;
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT count(*) = 2 FROM users;',
                   expect => '{"users": "="}', requires => '{001}') IS NOT NULL AS new_expect;
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT count(*) = 2 FROM users;',
                   expect => '{"users": "+2"}') IS NOT NULL AS no_requires;
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT count(*) = 2 FROM users;',
                   expect => '{"users": "+2"}', requires => '{001}',
                   transactional => false) IS NOT NULL AS non_transactional;
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
-- a new pending migration is a new step
SELECT migrate_add('002', 'seed', 'INSERT INTO users VALUES (1), (2);',
                   verify => 'SELECT count(*) = 2 FROM users;',
                   expect => '{"users": "+2"}', requires => '{001}') IS NOT NULL AS restored;
SELECT migrate_add('001.5', 'audit', 'CREATE TABLE audit (id int);') IS NOT NULL AS added;
SELECT * FROM migrate_apply(plan => :'reviewed');
SELECT pg_temp.sqlstate_of(pg_temp.apply_sql(:'reviewed')) AS apply;
DELETE FROM migrate.migrations WHERE version = '001.5';
SELECT pg_temp.plan_checksum() = :'reviewed' AS reviewed;

--
-- a plan argument that is not a plan checksum: 22023, one per line
--
SELECT * FROM migrate_apply(plan => 'abc');
SELECT * FROM migrate_apply(plan => repeat('g', 64));
SELECT * FROM migrate_apply(plan => ' ' || :'reviewed');
SELECT * FROM migrate_apply(dry_run => true, plan => '');
CALL migrate_run(plan => 'abc');
SELECT :'LAST_ERROR_SQLSTATE' AS run;
SELECT n, pg_temp.sqlstate_of(sql)
  FROM (VALUES (1, pg_temp.apply_sql('abc')),
               (2, pg_temp.apply_sql(repeat('g', 64))),
               (3, pg_temp.apply_sql(' ' || :'reviewed')),
               (4, pg_temp.apply_sql('', dry_run => true)),
               (5, pg_temp.apply_sql(left(:'reviewed', 63))),
               (6, pg_temp.apply_sql(:'reviewed' || '0'))) AS t(n, sql)
 ORDER BY n;

--
-- the reviewed plan applies: 003 is part of it and left pending for the worker
--
SELECT version, name, action, rows, checks FROM migrate_apply(plan => :'reviewed');
SELECT * FROM pg_temp.status();

-- an empty plan has a checksum too, compared as any other
SELECT count(*) AS steps FROM migrate_plan('002');
SELECT pg_temp.documented_checksum('002') AS empty \gset
SELECT :'empty' = encode(sha256(E'migrate plan 1\nsteps 0\n'::bytea), 'hex') AS documented;
SELECT * FROM migrate_apply(target => '002', plan => :'empty');
SELECT * FROM migrate_apply(target => '002', plan => :'reviewed');
SELECT * FROM migrate_apply(plan => :'empty');
SELECT pg_temp.sqlstate_of(format('SELECT * FROM migrate_apply(target => %L, plan => %L)', '002', :'reviewed')) AS target_002,
       pg_temp.sqlstate_of(pg_temp.apply_sql(:'empty')) AS no_target;

--
-- CALL migrate_run(plan => ...): checked under the catalog lock before the
-- first commit
--
SELECT left(migrate_add('004', 'orders', 'CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users);'), 12) AS checksum;
SELECT left(migrate_add('005', 'order seed', 'INSERT INTO orders VALUES (1, 1);'), 12) AS checksum;
SELECT pg_temp.plan_checksum() AS reviewed_run \gset
SET ROLE regress_registrar;
SELECT left(migrate_add('005', 'order seed', 'INSERT INTO orders VALUES (1, 1), (2, 2);'), 12) AS checksum;
RESET ROLE;
CALL migrate_run(plan => :'reviewed_run');
SELECT :'LAST_ERROR_SQLSTATE' AS run;
-- nothing was committed, not even 004
SELECT * FROM pg_temp.status();
SELECT to_regclass('orders') AS orders;
SELECT migrate_add('005', 'order seed', 'INSERT INTO orders VALUES (1, 1);') IS NOT NULL AS restored;
CALL migrate_run(plan => :'reviewed_run');
SELECT * FROM pg_temp.status();

--
-- migrate_run commits between steps: each later step must be a reviewed
-- one, unchanged.  (Here the migrations themselves register, as another
-- session could between two commits.)
--
-- 006 changes 007 as it applies: 006 stays applied, 007 is refused
SELECT migrate_add('006', 'changes 007', $$SELECT migrate_add('007', 'later', 'CREATE TABLE later2 (id int);');$$) IS NOT NULL AS registered;
SELECT migrate_add('007', 'later', 'CREATE TABLE later (id int);') IS NOT NULL AS registered;
SELECT pg_temp.plan_checksum() AS reviewed_run \gset
CALL migrate_run(plan => :'reviewed_run');
SELECT :'LAST_ERROR_SQLSTATE' AS run;
SELECT * FROM pg_temp.status() WHERE version >= '006';
-- 008 registers 008.5 before 009, which is reviewed: 008.5 is refused
SELECT migrate_add('007', 'later', 'CREATE TABLE later (id int);') IS NOT NULL AS restored;
SELECT migrate_add('008', 'adds 008.5', $$SELECT migrate_add('008.5', 'sneaked in', 'CREATE TABLE sneaked (id int);');$$) IS NOT NULL AS registered;
SELECT migrate_add('009', 'last', 'CREATE TABLE last (id int);') IS NOT NULL AS registered;
SELECT pg_temp.plan_checksum() AS reviewed_run \gset
CALL migrate_run(plan => :'reviewed_run');
SELECT :'LAST_ERROR_SQLSTATE' AS run;
SELECT * FROM pg_temp.status() WHERE version >= '006';
-- 010 registers 011 after it: every reviewed step ran, 011 stays pending
DELETE FROM migrate.migrations WHERE version = '008.5';
SELECT migrate_add('010', 'adds 011', $$SELECT migrate_add('011', 'afterwards', 'CREATE TABLE afterwards (id int);');$$) IS NOT NULL AS registered;
SELECT pg_temp.plan_checksum() AS reviewed_run \gset
CALL migrate_run(plan => :'reviewed_run');
SELECT * FROM pg_temp.status() WHERE version >= '006';
SELECT to_regclass('afterwards') AS afterwards;

--
-- a database still at 0.1.0 under this library: refused until it is updated
-- (12_security shows the error); then the reviewed plan works there too
--
DROP EXTENSION migrate;
CREATE EXTENSION migrate VERSION '0.1.0' SCHEMA public;
CREATE SCHEMA old;
SET search_path = old, public;
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate_plan()') AS at_0_1_0;
ALTER EXTENSION migrate UPDATE;
SELECT left(migrate_add('1', 'one', 'CREATE TABLE one (id int);'), 12) AS checksum;
SELECT left(migrate_add('2', 'two', 'CREATE TABLE two (id int);'), 12) AS checksum;
SELECT * FROM migrate_plan();
SELECT pg_temp.plan_checksum() AS reviewed \gset
CALL migrate_run(plan => :'reviewed');
SELECT * FROM pg_temp.status();

RESET client_min_messages;
RESET search_path;
DROP SCHEMA rev CASCADE;
DROP SCHEMA old CASCADE;
DROP ROLE regress_registrar;
