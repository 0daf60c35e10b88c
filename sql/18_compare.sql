--
-- 18_compare: migrate_compare_scripts() (bin/migrate-bundle --status): what a
-- directory would change, registering nothing.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA cmp;
SET search_path = cmp, public;

-- the database: 000, 001 and 002 applied, 003 and 004 pending; the directory
-- no longer has 000 (applied) and 007 (pending)
SELECT count(*) FROM migrate_add_scripts(
    ARRAY['001_a.sql', '002_b.up.sql', '002_b.down.sql', '003_c.sql', '004_d.sql', '000_f.sql', '007_g.sql'],
    ARRAY['CREATE TABLE a (id int);', 'CREATE TABLE b (id int);', 'DROP TABLE b;',
          'CREATE TABLE c (id int);', 'CREATE TABLE d (id int);', 'CREATE TABLE f (id int);',
          'CREATE TABLE g (id int);']);
SELECT version, action FROM migrate_apply(target => '002');
SELECT count(*) AS history_rows FROM migrate.history \gset

-- the directory now: 001 as it was; 002 edited after it was applied, and its
-- down file too; 003 as it was; 004 edited while pending (with an
-- expectation now); 005 new; a README; 000 and 007 gone
SELECT file, version, name, state, left(checksum, 8) AS checksum, left(registered_checksum, 8) AS registered,
       regexp_replace(detail, '[0-9a-f]{64}', '<sha256>', 'g') AS detail
  FROM migrate_compare_scripts(
    ARRAY['001_a.sql', '002_b.up.sql', '002_b.down.sql', '003_c.sql', '004_d.sql', '005_e.sql', 'README.md'],
    ARRAY['CREATE TABLE a (id int);', E'CREATE TABLE b (id int);\n-- a comment added', 'DROP TABLE b CASCADE;',
          'CREATE TABLE c (id int);', E'-- migrate:expect {"d": 0}\nCREATE TABLE d (id bigint);',
          'CREATE TABLE e (id int);', NULL]);

-- nothing was registered or recorded
SELECT count(*) - :history_rows AS new_history_rows FROM migrate.history;
SELECT version, state FROM migrate_status() ORDER BY version;

-- the catalog holds other text of applied 001 (changed): a file that is the
-- applied text says it would restore it; one that differs from both names
-- all three checksums
SET client_min_messages = error;
SELECT count(*) FROM migrate_add_scripts(ARRAY['001_a.sql'], ARRAY['CREATE TABLE a (id bigint);']);
RESET client_min_messages;
SELECT file, state, regexp_replace(detail, '[0-9a-f]{64}', '<sha256>', 'g') AS detail
  FROM migrate_compare_scripts(ARRAY['001_a.sql'], ARRAY['CREATE TABLE a (id int);']);
SELECT file, state, regexp_replace(detail, '[0-9a-f]{64}', '<sha256>', 'g') AS detail
  FROM migrate_compare_scripts(ARRAY['001_a.sql'], ARRAY['CREATE TABLE a (id smallint);']);
-- a newline added at the end only: edited, at the line after the last
SELECT file, state, regexp_replace(detail, '[0-9a-f]{64}', '<sha256>', 'g') AS detail
  FROM migrate_compare_scripts(ARRAY['001_a.sql'], ARRAY[E'CREATE TABLE a (id int);\n']);
SELECT count(*) FROM migrate_add_scripts(ARRAY['001_a.sql'], ARRAY['CREATE TABLE a (id int);']);
SELECT version, state FROM migrate_status() WHERE version = '001';

-- the same errors as registering: a file that does not parse, two files of one version
SELECT * FROM migrate_compare_scripts(ARRAY['008_h.sql'], ARRAY['CREATE TABL h (id int);']);
SELECT * FROM migrate_compare_scripts(ARRAY['009_i.sql', '009_j.sql'], ARRAY['SELECT 1;', 'SELECT 2;']);
SELECT * FROM migrate_compare_scripts(ARRAY['009_i.sql'], ARRAY['SELECT 1;', 'SELECT 2;']);

-- a directory registered again lists the pending migrations it lacks ...
SELECT file, version, result, detail
  FROM migrate_add_scripts(ARRAY['001_a.sql', '003_c.sql', '004_d.sql'],
                           ARRAY['CREATE TABLE a (id int);', 'CREATE TABLE c (id int);', 'CREATE TABLE d (id int);']);
-- ... and migrate_remove() takes back one registered by mistake, in history
SELECT * FROM migrate_remove('007');
SELECT version, action, detail FROM migrate.history WHERE action = 'remove';
SELECT version, state FROM migrate_status() ORDER BY version;
SELECT count(*) AS history_problems FROM migrate_validate() WHERE problem IN ('history', 'unrecorded');
-- what it refuses: an unknown version, an applied one, one that others
-- require, one a job runs, and text that is not a version
SELECT * FROM migrate_remove('007');
SELECT * FROM migrate_remove('001');
SELECT migrate_add('008', 'h', 'SELECT 1', requires => '{004}') IS NOT NULL AS registered;
SELECT * FROM migrate_remove('004');
INSERT INTO migrate.job_state (role, role_oid, state, version) VALUES (current_user, 10, 'paused', '008');
SELECT * FROM migrate_remove('008');
DELETE FROM migrate.job_state;
SELECT * FROM migrate_remove('x.y');
SELECT * FROM migrate_remove(NULL);
SELECT * FROM migrate_remove('008');
SELECT * FROM migrate_remove('004');

-- only the extension's owner (and whom it grants) may look
CREATE ROLE regress_cmp_nobody;
SET ROLE regress_cmp_nobody;
SELECT * FROM migrate_compare_scripts(ARRAY['001_a.sql'], ARRAY['CREATE TABLE a (id int);']);
RESET ROLE;
DROP ROLE regress_cmp_nobody;

RESET search_path;
DROP SCHEMA cmp CASCADE;
