--
-- 22_assert: checks that hold once (assert) and checks that hold forever
-- (verify).  An assert query runs when its migration is applied, before the
-- commit, after the verify query, with the verify query's rules; it is never
-- re-run: migrate_verify() after an ordinary insert still passes.  It comes
-- from migrate_add(assert => ...) or a "-- migrate:assert" section, is
-- parsed at registration, counts in the plan checksum only where there is
-- one, and an updated row says when it changed.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA asr;
SET search_path = asr, public;

SELECT migrate_add('001', 'import tools',
    $$CREATE TABLE asr.tools (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO asr.tools SELECT i, 'tool ' || i FROM generate_series(1, 150) i;$$,
    verify => $$SELECT count(*) = 0 FROM asr.tools WHERE name = ''$$,
    "assert" => $$SELECT count(*) = 150 FROM asr.tools$$) IS NOT NULL AS registered;
SELECT version, action, checks FROM migrate_apply();
-- next day, an ordinary insert: the nightly check still passes (verify only)
INSERT INTO asr.tools VALUES (151, 'tool 151');
SELECT migrate_verify() AS checks_passed;
SELECT ok, "check" FROM migrate_check() ORDER BY 2;

-- a failing assert fails the apply (23000), naming the assert query; nothing kept
SELECT version, part, result, detail FROM migrate_add_script('002_archive.sql', $f$
-- migrate:up
CREATE TABLE asr.archive AS SELECT * FROM asr.tools WHERE id > 100;
-- migrate:assert
SELECT count(*) = 50 FROM asr.archive;
$f$);
SELECT version, action FROM migrate_apply();
SELECT to_regclass('asr.archive') IS NULL AS nothing_kept;
-- assert text that does not parse is refused at registration
SELECT migrate_add('002', 'archive', 'CREATE TABLE asr.archive AS SELECT * FROM asr.tools WHERE id > 100;',
                   "assert" => 'SELEC count(*) = 51 FROM asr.archive');
-- corrected: the same up script, a new assert query: updated (the plan's
-- checksum covers the assert query), and applied
SELECT plan_checksum AS plan_before FROM migrate_plan() \gset
SELECT version, part, result, detail FROM migrate_add_script('002_archive.sql', $f$
-- migrate:up
CREATE TABLE asr.archive AS SELECT * FROM asr.tools WHERE id > 100;
-- migrate:assert
SELECT count(*) = 51 FROM asr.archive;
SELECT 'ok 1 - pgTAP lines pass too';
$f$);
SELECT plan_checksum <> :'plan_before' AS plan_changed FROM migrate_plan();
SELECT version, action, checks FROM migrate_apply();
-- a first column that is neither boolean nor text is refused when it runs
SELECT migrate_add('003', 'odd', 'SELECT 1;', "assert" => 'SELECT 42') IS NOT NULL AS registered;
SELECT version, action FROM migrate_apply();
SELECT migrate_remove('003') IS NOT NULL AS removed;
-- a failing check of a file names the file and the line in the file (its
-- assert section starts at line 5, its second statement fails on line 7)
SELECT version, part, result FROM migrate_add_script('004_more.sql', $f$-- more tools
-- migrate:up
INSERT INTO asr.tools VALUES (500, 'more');
-- migrate:assert
SELECT true;

SELECT 'not ok 1 - one more tool' FROM asr.tools WHERE id = 500;
$f$);
SELECT version, action FROM migrate_apply();
SELECT migrate_remove('004') IS NOT NULL AS removed;
SELECT version, state FROM migrate_status() ORDER BY version;

RESET search_path;
DROP EXTENSION migrate;
DROP SCHEMA asr CASCADE;
