--
-- 21_lint: migrate_lint(), the safety checks of pending migrations against
-- the live database.  Each rule fires, and does not fire for the same kind
-- of statement done safely or on a table that is new in the plan:
-- table-rewrite, scan-under-lock, index-without-concurrently,
-- lock-held-during-data-change, breaks-dependents,
-- security-definer-search-path, table-without-rls, write-grant-to-api-role,
-- enum-value-in-transaction.  Severities follow the table's size from its
-- statistics (migrate.lint_large_rows, migrate.lint_large_bytes); a
-- "-- migrate:allow" comment allows one statement's findings (an unknown
-- rule is refused at registration, 22023); migrate_plan() shows the
-- findings, a dry run warns of them, and migrate_apply(), CALL migrate_run()
-- and migrate_start() refuse an error finding (0A000) unless migrate.lint is
-- 'warn' or 'off'.  The tables are analysed and never autovacuumed, so that
-- their statistics (and the sizes in the messages) are the same every run.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA li;
SET search_path = li, public;

-- SQLSTATE and message of an error
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- register a migration
CREATE PROCEDURE pg_temp.add(version text, name text, up text) LANGUAGE sql AS $$
    SELECT migrate_add(version, name, up);
$$;
-- every pending migration with its findings (no row of findings: nothing fired)
CREATE VIEW pg_temp.lint AS
SELECT s.version, s.name, l.statement AS stmt, l.line, l.rule, l.severity, l.table_name, l.table_rows,
       l.lock, l.allowed
  FROM migrate_status() s
  LEFT JOIN migrate_lint() l ON l.version = s.version
 WHERE s.state = 'pending'
 ORDER BY s.version, l.statement, l.rule;

-- the API roles of a Supabase-like project
CREATE ROLE anon NOLOGIN;
CREATE ROLE authenticated NOLOGIN;

-- the live database: a large table, a small one, an empty one
CREATE TABLE big (id int PRIMARY KEY, n int, v varchar(10), s text, amount numeric(10,2))
    WITH (autovacuum_enabled = off);
INSERT INTO big SELECT i, i, 'v' || i % 100, 's', i FROM generate_series(1, 2000) i;
CREATE UNIQUE INDEX big_id_n_idx ON big (id, n);
CREATE TABLE small (id int PRIMARY KEY, big_id int, n int) WITH (autovacuum_enabled = off);
INSERT INTO small SELECT i, i, i FROM generate_series(1, 10) i;
CREATE TABLE empty (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = off);
-- a column proved NOT NULL by a validated CHECK constraint
CREATE TABLE checked (id int, n int, CONSTRAINT checked_n_not_null CHECK (n IS NOT NULL))
    WITH (autovacuum_enabled = off);
INSERT INTO checked SELECT i, i FROM generate_series(1, 10) i;
-- a table used by a view, a foreign key and a function with an SQL body,
-- and one that nothing uses
CREATE TABLE parent (id int PRIMARY KEY, name text, note text, extra text) WITH (autovacuum_enabled = off);
INSERT INTO parent SELECT i, 'p' || i, 'n', 'e' FROM generate_series(1, 10) i;
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent) WITH (autovacuum_enabled = off);
INSERT INTO child SELECT i, i FROM generate_series(1, 10) i;
CREATE VIEW parent_names AS SELECT id, name FROM parent;
CREATE FUNCTION parent_notes() RETURNS bigint LANGUAGE sql
BEGIN ATOMIC
    SELECT count(note) FROM li.parent;
END;
CREATE TABLE lonely (id int, extra text) WITH (autovacuum_enabled = off);
INSERT INTO lonely SELECT i, 'e' FROM generate_series(1, 10) i;
CREATE TYPE mood AS ENUM ('sad', 'ok');
-- a schema the API role authenticated can use; li itself is not one
CREATE SCHEMA li_api;
GRANT USAGE ON SCHEMA li_api TO authenticated;
ANALYZE big, small, empty, checked, parent, child, lonely;
SELECT relname, reltuples, relpages FROM pg_class
 WHERE relnamespace = 'li'::regnamespace AND relkind = 'r' ORDER BY relname;

-- 1000 rows make a table large here (the default is 100000)
SET migrate.lint_large_rows = 1000;

--
-- table-rewrite
--
CALL pg_temp.add('101', 'volatile default on big', 'ALTER TABLE big ADD COLUMN r float8 DEFAULT random();');
CALL pg_temp.add('102', 'volatile default on small', 'ALTER TABLE small ADD COLUMN r float8 DEFAULT random();');
CALL pg_temp.add('103', 'volatile default on empty', 'ALTER TABLE empty ADD COLUMN r float8 DEFAULT random();');
CALL pg_temp.add('104', 'volatile default on a new table', $m$
CREATE TABLE fresh (id int);
ALTER TABLE fresh ADD COLUMN r float8 DEFAULT random();
$m$);
CALL pg_temp.add('105', 'constant and stable defaults on big', $m$
ALTER TABLE big ADD COLUMN c int DEFAULT 0;
ALTER TABLE big ADD COLUMN l text NOT NULL DEFAULT 'x';
ALTER TABLE big ADD COLUMN t timestamptz DEFAULT now();
ALTER TABLE big ADD COLUMN k int DEFAULT 1 + 1;
ALTER TABLE big ADD COLUMN plain int;
$m$);
CALL pg_temp.add('106', 'serial, identity, stored generated on big', $m$
ALTER TABLE big ADD COLUMN sn serial;
ALTER TABLE big ADD COLUMN idn bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE big ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;
$m$);
CALL pg_temp.add('107', 'varchar(10) to varchar(20)', 'ALTER TABLE big ALTER COLUMN v TYPE varchar(20);');
CALL pg_temp.add('108', 'varchar to text', 'ALTER TABLE big ALTER COLUMN v TYPE text;');
CALL pg_temp.add('109', 'numeric(10,2) to numeric(12,2)', 'ALTER TABLE big ALTER COLUMN amount TYPE numeric(12,2);');
CALL pg_temp.add('110', 'int to bigint', 'ALTER TABLE big ALTER COLUMN n TYPE bigint;');
CALL pg_temp.add('111', 'type with USING', 'ALTER TABLE big ALTER COLUMN s TYPE text USING upper(s);');
CALL pg_temp.add('112', 'varchar(10) to varchar(5)', 'ALTER TABLE big ALTER COLUMN v TYPE varchar(5);');
CALL pg_temp.add('113', 'int to bigint on a new table', $m$
CREATE TABLE fresh2 (id int);
ALTER TABLE fresh2 ALTER COLUMN id TYPE bigint;
$m$);
CALL pg_temp.add('114', 'unlogged', 'ALTER TABLE big SET UNLOGGED;');
CALL pg_temp.add('115', 'vacuum full', 'VACUUM FULL big;');
CALL pg_temp.add('116', 'plain vacuum', 'VACUUM (ANALYZE) big;');
CALL pg_temp.add('117', 'cluster', 'CLUSTER big USING big_pkey;');

--
-- scan-under-lock
--
CALL pg_temp.add('120', 'set not null on big', 'ALTER TABLE big ALTER COLUMN n SET NOT NULL;');
CALL pg_temp.add('121', 'set not null, checked', 'ALTER TABLE checked ALTER COLUMN n SET NOT NULL;');
CALL pg_temp.add('122', 'not valid, validate, set not null', $m$
ALTER TABLE big ADD CONSTRAINT big_n_nn CHECK (n IS NOT NULL) NOT VALID;
ALTER TABLE big VALIDATE CONSTRAINT big_n_nn;
ALTER TABLE big ALTER COLUMN n SET NOT NULL;
$m$);
CALL pg_temp.add('123', 'not valid, set not null', $m$
ALTER TABLE big ADD CONSTRAINT big_amount_nn CHECK (amount IS NOT NULL) NOT VALID;
ALTER TABLE big ALTER COLUMN amount SET NOT NULL;
$m$);
CALL pg_temp.add('124', 'validated check, set not null', $m$
ALTER TABLE big ADD CONSTRAINT big_n_nn CHECK (n IS NOT NULL);
ALTER TABLE big ALTER COLUMN n SET NOT NULL;
$m$);
CALL pg_temp.add('125', 'set not null on a new table', $m$
CREATE TABLE fresh3 (id int);
ALTER TABLE fresh3 ALTER COLUMN id SET NOT NULL;
$m$);
CALL pg_temp.add('126', 'check', 'ALTER TABLE big ADD CONSTRAINT big_n_positive CHECK (n > 0);');
CALL pg_temp.add('127', 'check not valid', 'ALTER TABLE big ADD CONSTRAINT big_n_positive CHECK (n > 0) NOT VALID;');
CALL pg_temp.add('128', 'foreign key', 'ALTER TABLE small ADD CONSTRAINT small_big_fk FOREIGN KEY (big_id) REFERENCES big;');
CALL pg_temp.add('129', 'foreign key not valid',
                   'ALTER TABLE small ADD CONSTRAINT small_big_fk FOREIGN KEY (big_id) REFERENCES big NOT VALID;');
CALL pg_temp.add('130', 'unique and primary key', $m$
ALTER TABLE big ADD CONSTRAINT big_id_n_key UNIQUE (id, n);
ALTER TABLE lonely ADD PRIMARY KEY (id);
$m$);
CALL pg_temp.add('131', 'unique using index', 'ALTER TABLE big ADD CONSTRAINT big_id_n_key UNIQUE USING INDEX big_id_n_idx;');
CALL pg_temp.add('132', 'add column references', 'ALTER TABLE big ADD COLUMN small_id int REFERENCES small;');
CALL pg_temp.add('133', 'constraints on a new table', $m$
CREATE TABLE fresh4 (id int, big_id int);
ALTER TABLE fresh4 ADD PRIMARY KEY (id);
ALTER TABLE fresh4 ADD CONSTRAINT fresh4_big_fk FOREIGN KEY (big_id) REFERENCES big;
ALTER TABLE fresh4 ADD CONSTRAINT fresh4_id_positive CHECK (id > 0);
$m$);

--
-- index-without-concurrently
--
CALL pg_temp.add('140', 'index on big', 'CREATE INDEX big_s_idx ON big (s);');
CALL pg_temp.add('141', 'index on small', 'CREATE INDEX small_n_idx ON small (n);');
CALL pg_temp.add('142', 'index on a new table', $m$
CREATE TABLE fresh5 (id int);
CREATE INDEX fresh5_id_idx ON fresh5 (id);
$m$);
-- non-transactional (a migration of its own): no finding
CALL pg_temp.add('143', 'index concurrently', 'CREATE INDEX CONCURRENTLY big_s_idx ON big (s);');
CALL pg_temp.add('144', 'reindex', $m$
REINDEX TABLE big;
REINDEX INDEX small_pkey;
$m$);
CALL pg_temp.add('145', 'reindex concurrently', 'REINDEX TABLE CONCURRENTLY big;');

--
-- lock-held-during-data-change
--
CALL pg_temp.add('150', 'lock, then update', $m$
ALTER TABLE big ADD COLUMN flag boolean;
UPDATE big SET flag = true;
$m$);
CALL pg_temp.add('151', 'update without a lock', 'UPDATE big SET n = n + 1;');
CALL pg_temp.add('152', 'lock, then other changes', $m$
CREATE INDEX big_n_idx ON big (n);
INSERT INTO small VALUES (100, 1, 1);
INSERT INTO small SELECT id + 1000, big_id, n FROM small;
DELETE FROM small WHERE id > 1000;
MERGE INTO small USING big ON small.id = big.id WHEN MATCHED THEN UPDATE SET n = big.n;
$m$);
CALL pg_temp.add('153', 'lock, then change an empty or new table', $m$
ALTER TABLE big ADD COLUMN y int;
CREATE TABLE fresh6 (id int);
INSERT INTO fresh6 SELECT id FROM big;
UPDATE fresh6 SET id = id + 1;
UPDATE empty SET n = 1;
$m$);
CALL pg_temp.add('154', 'lock on a new table, then update', $m$
CREATE TABLE fresh7 (id int);
ALTER TABLE fresh7 ADD COLUMN x int;
UPDATE big SET n = n + 1;
$m$);

--
-- breaks-dependents
--
CALL pg_temp.add('160', 'drop a used table', 'DROP TABLE parent;');
CALL pg_temp.add('161', 'drop a used table cascade', 'DROP TABLE parent CASCADE;');
CALL pg_temp.add('162', 'drop unused tables', 'DROP TABLE lonely, child;');
CALL pg_temp.add('163', 'drop a column a view uses', 'ALTER TABLE parent DROP COLUMN name;');
CALL pg_temp.add('164', 'drop a column a function uses', 'ALTER TABLE parent DROP COLUMN note;');
CALL pg_temp.add('165', 'drop an unused column', 'ALTER TABLE parent DROP COLUMN extra;');
CALL pg_temp.add('166', 'rename a used table', 'ALTER TABLE parent RENAME TO parents;');
CALL pg_temp.add('167', 'rename a used column', 'ALTER TABLE parent RENAME COLUMN name TO title;');
CALL pg_temp.add('168', 'rename what nothing uses', $m$
ALTER TABLE lonely RENAME TO alone;
ALTER TABLE parent RENAME COLUMN extra TO spare;
$m$);

--
-- security-definer-search-path
--
CALL pg_temp.add('170', 'security definer', $m$
CREATE FUNCTION li.definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
$m$);
CALL pg_temp.add('171', 'security definer with search_path, invoker', $m$
CREATE FUNCTION li.pinned() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT 1';
CREATE FUNCTION li.invoker() RETURNS int LANGUAGE sql SECURITY INVOKER AS 'SELECT 1';
$m$);

--
-- table-without-rls
--
CALL pg_temp.add('180', 'tables in schemas API roles use', $m$
CREATE TABLE li_api.notes (id int);
CREATE TABLE li_api.notes_copy AS SELECT 1 AS id;
CREATE TABLE public.li_public (id int);
$m$);
CALL pg_temp.add('181', 'with row level security, elsewhere, temporary', $m$
CREATE TABLE li_api.todos (id int);
ALTER TABLE li_api.todos ENABLE ROW LEVEL SECURITY;
CREATE TABLE li.private (id int);
CREATE TEMP TABLE scratch (id int);
$m$);

--
-- write-grant-to-api-role
--
CALL pg_temp.add('190', 'write grants to API roles', $m$
GRANT INSERT, UPDATE ON big TO authenticated;
GRANT ALL ON small TO anon;
GRANT DELETE ON big TO PUBLIC;
GRANT SELECT, TRUNCATE ON big TO anon, authenticated;
GRANT UPDATE (n) ON big TO anon;
GRANT INSERT ON ALL TABLES IN SCHEMA li_api TO authenticated;
$m$);
CALL pg_temp.add('191', 'other grants', $m$
GRANT SELECT ON big TO anon, authenticated;
GRANT INSERT ON big TO li_writer;
REVOKE INSERT ON big FROM anon;
GRANT USAGE ON SCHEMA li TO anon;
$m$);

--
-- enum-value-in-transaction (registration warns of it too)
--
CALL pg_temp.add('195', 'enum value used where added', $m$
ALTER TYPE mood ADD VALUE 'happy';
SELECT 'happy'::mood;
$m$);
CALL pg_temp.add('196', 'enum value added', 'ALTER TYPE mood ADD VALUE ''meh'';');
CALL pg_temp.add('197', 'enum value used later', 'SELECT ''meh''::mood;');

-- every finding of the plan, in order; migrations without a finding have none
SELECT * FROM pg_temp.lint;
-- what each says
SELECT version, statement, message FROM migrate_lint() ORDER BY version, statement, rule;
SELECT DISTINCT rule, hint FROM migrate_lint() ORDER BY rule, hint;
-- the sizes are the statistics'
SELECT DISTINCT table_name, table_rows, table_bytes FROM migrate_lint() WHERE table_rows IS NOT NULL ORDER BY 1;

--
-- one migration, alone: what earlier migrations of the plan create is not
-- there yet either; an unknown version is an error
--
SELECT version, statement, rule, severity, table_name FROM migrate_lint('104');
SELECT version, statement, rule, severity, table_name FROM migrate_lint('150');
SELECT * FROM migrate_lint('999');
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_lint('999')$$);

--
-- severities from the settings
--
CREATE VIEW pg_temp.sizes AS
SELECT version, table_name, table_rows, severity FROM migrate_lint()
 WHERE version IN ('101', '102', '103') ORDER BY version;
RESET migrate.lint_large_rows;
SELECT current_setting('migrate.lint_large_rows') AS large_rows, current_setting('migrate.lint_large_bytes') AS large_bytes;
SELECT * FROM pg_temp.sizes;
SET migrate.lint_large_rows = 5;
SELECT * FROM pg_temp.sizes;
SET migrate.lint_large_rows = 0;
SELECT * FROM pg_temp.sizes;
-- big is 104 kB
SET migrate.lint_large_rows = 1000000;
SET migrate.lint_large_bytes = '100kB';
SELECT * FROM pg_temp.sizes;
SET migrate.lint_large_bytes = '200kB';
SELECT * FROM pg_temp.sizes;
SET migrate.lint_large_bytes = 0;
SELECT * FROM pg_temp.sizes;
RESET migrate.lint_large_bytes;
SET migrate.lint_large_rows = 1000;

--
-- allow directives, the plan, a dry run, and what refuses to run
--
DROP VIEW pg_temp.lint, pg_temp.sizes;
DROP EXTENSION migrate;
CREATE EXTENSION migrate;
CREATE VIEW pg_temp.lint AS
SELECT s.version, s.name, l.statement AS stmt, l.line, l.rule, l.severity, l.table_name, l.table_rows,
       l.lock, l.allowed
  FROM migrate_status() s
  LEFT JOIN migrate_lint() l ON l.version = s.version
 WHERE s.state = 'pending'
 ORDER BY s.version, l.statement, l.rule;
-- an unknown rule is refused when the migration is registered
SELECT migrate_add('200', 'typo', E'-- migrate:allow table-rewrite, rewrite\nALTER TABLE big ALTER COLUMN n TYPE bigint;');
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('200', 'typo', E'-- migrate:allow rewrite\nSELECT 1;')$$);
SELECT count(*) AS registered FROM migrate_status();
-- directive lines inside a function's body are the function's, not the
-- script's: neither an allow nor a lock timeout (nor an error)
SELECT version, part, result FROM migrate_add_script('210_body.sql', $f$-- a function whose body holds directive-like lines
CREATE FUNCTION pg_temp.f210() RETURNS int LANGUAGE sql AS $body$
-- migrate:allow no-such-rule
-- migrate:lock_timeout soon
SELECT 1
$body$;
$f$);
SELECT notes FROM migrate.status WHERE version = '210';
-- in a file, the lines of an allow and of a lock timeout are the file's
SELECT version, part, result FROM migrate_add_script('211_allow.sql', $f$-- header
-- migrate:up
-- migrate:lock_timeout 2s
-- migrate:allow table-rewrite
ALTER TABLE big ALTER COLUMN n TYPE bigint;
$f$);
SELECT notes FROM migrate.status WHERE version = '211';
SELECT count(*) FROM (SELECT migrate_remove(v) FROM unnest(ARRAY['210', '211']) v) r;

-- allowed: an error, two rules of one statement, one rule of two; not
-- allowed: a rule the comment does not name
CALL pg_temp.add('201', 'allowed', $m$CREATE TABLE audit (id int);
-- migrate:allow table-rewrite
ALTER TABLE big ALTER COLUMN amount TYPE numeric(12,3);
-- migrate:allow table-rewrite, scan-under-lock
ALTER TABLE small ALTER COLUMN n TYPE bigint, ADD CONSTRAINT small_n_positive CHECK (n > 0);
-- migrate:allow table-rewrite
ALTER TABLE small ADD COLUMN r float8 DEFAULT random(), ADD CONSTRAINT small_id_positive CHECK (id > 0);
-- migrate:allow scan-under-lock
CREATE INDEX small_n_idx ON small (n);
$m$);
CALL pg_temp.add('202', 'refused', $m$ALTER TABLE big ALTER COLUMN n TYPE bigint;
CREATE INDEX big_s_idx ON big (s);
$m$);
-- non-transactional, left for a job by migrate_apply() and CALL migrate_run()
CALL pg_temp.add('203', 'concurrently', 'CREATE INDEX CONCURRENTLY big_v_idx ON big (v);');
CALL pg_temp.add('204', 'vacuum full', 'VACUUM FULL big;');
SELECT version, transactional, notes FROM migrate.status ORDER BY version_key;
SELECT * FROM pg_temp.lint;

-- the plan lists each step's findings
SELECT step, version, reason, lint FROM migrate_plan();

-- a dry run warns of each error and warning not allowed, and goes on
SELECT version, action FROM migrate_apply(dry_run => true);

-- migrate_apply() and CALL migrate_run() refuse the errors of what they
-- would run; migrate_start() those of the non-transactional ones too
SELECT version, action FROM migrate_apply();
SELECT pg_temp.sqlstate_of($$SELECT * FROM migrate_apply()$$);
CALL migrate_run();
SELECT migrate_start();
SELECT pg_temp.sqlstate_of($$SELECT migrate_start()$$);
SELECT version, state FROM migrate_status();
-- up to 201, nothing is refused: its error is allowed
SELECT version, action FROM migrate_apply(target => '201');
ANALYZE big, small;

-- migrate.lint = 'warn': each error finding a WARNING, and it runs
SET migrate.lint = 'warn';
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, action FROM migrate_apply();
RESET migrate.lint;
SELECT version, state FROM migrate_status();
ANALYZE big, small;

-- migrate.lint = 'off': nothing linted when applying; migrate_lint() and
-- migrate_plan() still list the findings
CALL pg_temp.add('205', 'another rewrite', 'ALTER TABLE big ALTER COLUMN v TYPE varchar(5);');
SELECT version, action FROM migrate_apply();
SET migrate.lint = 'off';
SELECT version, rule, severity, table_name, table_rows, allowed FROM migrate_lint();
SELECT version, lint FROM migrate_plan();
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, action FROM migrate_apply();
RESET migrate.lint;
SELECT version, state FROM migrate_status();

-- what a review of the rules found, each case firing or not as it should
SELECT count(*) FROM (SELECT migrate_remove(version) FROM migrate_status() WHERE state = 'pending') r;
-- never analysed: the real size, not the planner's 10-page guess; empty: info
CREATE TABLE tiny (id int) WITH (autovacuum_enabled = off);
INSERT INTO tiny VALUES (1);
CREATE TABLE never (id int) WITH (autovacuum_enabled = off);
CALL pg_temp.add('301', 'never analysed', E'CREATE INDEX tiny_idx ON tiny (id);\nALTER TABLE never ADD COLUMN r float DEFAULT random();');
-- NOT VALID, VALIDATE and SET NOT NULL each in a migration of its own: no scan under a lock
CALL pg_temp.add('311', 'nn check', 'ALTER TABLE big ADD CONSTRAINT big_n_nn CHECK (n IS NOT NULL) NOT VALID;');
CALL pg_temp.add('312', 'nn validate', 'ALTER TABLE big VALIDATE CONSTRAINT big_n_nn;');
CALL pg_temp.add('313', 'nn set', 'ALTER TABLE big ALTER COLUMN n SET NOT NULL;');
-- in one migration, VALIDATE scans under the ACCESS EXCLUSIVE that ADD CONSTRAINT took
CALL pg_temp.add('314', 'nn at once', E'ALTER TABLE big ADD CONSTRAINT big_s_nn CHECK (s IS NOT NULL) NOT VALID;\nALTER TABLE big VALIDATE CONSTRAINT big_s_nn;\nALTER TABLE big ALTER COLUMN s SET NOT NULL;');
-- what uses a table, dropped before it: nothing breaks
CREATE TABLE dparent (id int PRIMARY KEY);
CREATE TABLE dchild (id int, parent_id int REFERENCES dparent);
CREATE VIEW dpv AS SELECT id FROM dparent;
CALL pg_temp.add('321', 'drop in order', E'DROP VIEW dpv;\nALTER TABLE dchild DROP CONSTRAINT dchild_parent_id_fkey;\nDROP TABLE dparent;');
CREATE TABLE eparent (id int PRIMARY KEY);
CREATE TABLE echild (id int, parent_id int REFERENCES eparent);
CALL pg_temp.add('322', 'drop both', 'DROP TABLE echild, eparent;');
-- a non-transactional migration commits each statement: no lock held over the UPDATE
SELECT migrate_add('331', 'non-transactional', E'ALTER TABLE big ADD COLUMN f boolean;\nUPDATE big SET f = true;', transactional => false) IS NOT NULL AS registered;
-- LOCK TABLE and TRUNCATE hold their locks too
CALL pg_temp.add('332', 'lock then update', E'LOCK TABLE small IN ACCESS EXCLUSIVE MODE;\nUPDATE big SET n = n;');
CALL pg_temp.add('333', 'truncate then copy', E'TRUNCATE small;\nINSERT INTO big SELECT id + 5000, n FROM big;');
-- a column added earlier in the same migration: changing its type still rewrites the table
CALL pg_temp.add('334', 'new column retyped', E'ALTER TABLE big ADD COLUMN z int;\nALTER TABLE big ALTER COLUMN z TYPE bigint;');
-- CREATE TABLE IF NOT EXISTS of a table that is there creates nothing new
CALL pg_temp.add('335', 'if not exists', E'CREATE TABLE IF NOT EXISTS big (id int);\nCREATE INDEX ON big (n);');
-- an allow over a blank line and another comment still allows
CALL pg_temp.add('336', 'allow above', E'-- migrate:allow table-rewrite\n\n-- the type grows\nALTER TABLE big ALTER COLUMN id TYPE bigint;');
-- REFERENCES of a column added to a table new in the plan; SET LOGGED of a logged table
CALL pg_temp.add('337', 'new and no-ops', E'CREATE TABLE fr (id int);\nALTER TABLE fr ADD COLUMN p int REFERENCES small;\nALTER TABLE big SET LOGGED;\nALTER TABLE big ALTER COLUMN id SET NOT NULL;');
SELECT * FROM pg_temp.lint;
SELECT version, statement, message FROM migrate_lint() WHERE version IN ('301', '314', '334');

-- a second review: a domain with constraints rewrites; a default with a
-- subquery is not analysed (it would lock); statistics of a table analysed
-- empty and loaded since are scaled to its size; a partitioned table's
-- index hint; what the caller may not look up is "not-linted", not an error
SELECT count(*) FROM (SELECT migrate_remove(version) FROM migrate_status() WHERE state = 'pending') r;
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE grown (id int) WITH (autovacuum_enabled = off);
ANALYZE grown;
INSERT INTO grown SELECT generate_series(1, 3000);
CREATE TABLE parts (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100000) WITH (autovacuum_enabled = off);
INSERT INTO parts SELECT g, g FROM generate_series(1, 3000) g;
CREATE SCHEMA hidden;
CREATE TABLE hidden.secret (id int);
CREATE ROLE li_auditor;
GRANT USAGE ON SCHEMA li TO li_auditor;
GRANT EXECUTE ON FUNCTION migrate_lint(text) TO li_auditor;
CALL pg_temp.add('501', 'domain column', 'ALTER TABLE big ADD COLUMN p posint DEFAULT 1;');
CALL pg_temp.add('502', 'subquery default', 'ALTER TABLE big ADD COLUMN q int DEFAULT (SELECT max(id) FROM small);');
CALL pg_temp.add('503', 'grown since analysed', 'CREATE INDEX ON grown (id);');
CALL pg_temp.add('504', 'partitioned index', 'CREATE INDEX ON parts (v);');
CALL pg_temp.add('505', 'hidden', 'ALTER TABLE hidden.secret ADD COLUMN y int;');
-- a function option RESET ALL (a Supabase dump has them) names no setting
CALL pg_temp.add('506', 'reset all', 'CREATE FUNCTION li.f506() RETURNS int LANGUAGE sql SECURITY DEFINER RESET ALL AS ''SELECT 1'';');
SELECT version, statement, rule, severity, table_name, table_rows, message FROM migrate_lint() ORDER BY version;
SELECT version, hint FROM migrate_lint() WHERE version = '504';
SET ROLE li_auditor;
SELECT version, rule, severity, message FROM migrate_lint('505');
RESET ROLE;
SELECT count(*) FROM (SELECT migrate_remove(version) FROM migrate_status() WHERE state = 'pending') r;
DROP SCHEMA hidden CASCADE;
REVOKE ALL ON SCHEMA li FROM li_auditor;
REVOKE ALL ON FUNCTION migrate_lint(text) FROM li_auditor;
DROP ROLE li_auditor;

-- lock waits: each statement waits at most migrate.lock_timeout (a shorter
-- lock_timeout of the session stays); "-- migrate:lock_timeout" sets the
-- migration's own, longer or shorter; a value that is not a time is refused
SELECT count(*) FROM (SELECT migrate_remove(version) FROM migrate_status() WHERE state = 'pending') r;
SELECT pg_temp.sqlstate_of($$SELECT migrate_add('401', 'bad', E'-- migrate:lock_timeout soon\nSELECT 1;')$$);
CALL pg_temp.add('401', 'own timeout', E'-- migrate:lock_timeout 250ms\nCREATE TABLE seen_401 AS SELECT current_setting(''lock_timeout'') AS lt;');
CALL pg_temp.add('402', 'default timeout', E'CREATE TABLE seen_402 AS SELECT current_setting(''lock_timeout'') AS lt;');
SELECT version, notes FROM migrate.status WHERE version IN ('401', '402') ORDER BY version_key;
SELECT version, action FROM migrate_apply();
SET lock_timeout = '100ms';
CALL pg_temp.add('403', 'session timeout', E'CREATE TABLE seen_403 AS SELECT current_setting(''lock_timeout'') AS lt;');
SELECT version, action FROM migrate_apply();
RESET lock_timeout;
SELECT (SELECT lt FROM seen_401) AS own, (SELECT lt FROM seen_402) AS default, (SELECT lt FROM seen_403) AS session_shorter,
       current_setting('lock_timeout') AS after;

RESET migrate.lint_large_rows;
RESET search_path;
DROP VIEW pg_temp.lint;
DROP EXTENSION migrate;
DROP SCHEMA li CASCADE;
DROP SCHEMA li_api CASCADE;
DROP ROLE anon, authenticated;
