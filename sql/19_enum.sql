--
-- 19_enum: an enum value added by one migration and used by a later one.
-- One transaction cannot use an enum value it adds (55P04): the plan says
-- where a commit is needed, migrate_apply() stops before the use (applying
-- what comes before) and a second call applies the rest.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA en;
SET search_path = en, public;

SELECT count(*) FROM migrate_add_scripts(
    ARRAY['001_mood.sql', '002_more_moods.sql', '003_people.sql', '004_default.sql', '005_plain.sql'],
    ARRAY['CREATE TYPE mood AS ENUM (''sad'', ''ok'');',
          E'ALTER TYPE mood ADD VALUE ''happy'';\nALTER TYPE mood ADD VALUE IF NOT EXISTS ''it''''s fine'';',
          E'CREATE TABLE people (id int PRIMARY KEY, m mood NOT NULL);\nINSERT INTO people VALUES (1, ''ok''), (2, ''happy'');',
          'ALTER TABLE people ALTER COLUMN m SET DEFAULT ''it''''s fine'';',
          'CREATE TABLE plain (id int);']);
SELECT version, notes FROM migrate.status ORDER BY version_key;

-- the plan says where a commit is needed
SELECT step, version, reason FROM migrate_plan();

-- migrate_apply() applies 001 and 002, and leaves 003 and what follows pending
SELECT version, action FROM migrate_apply(dry_run => true);
SELECT version, action FROM migrate_apply();
SELECT version, state FROM migrate_status() ORDER BY version;
-- the next call (a transaction of its own) applies the rest: 004 uses a value 002 added, committed now
SELECT version, action FROM migrate_apply();
SELECT * FROM people ORDER BY id;
SELECT column_default FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'm';

-- a value used in the same migration that adds it: a registration warning, as before
SELECT migrate_add('006', 'same', E'ALTER TYPE mood ADD VALUE ''meh'';\nSELECT ''meh''::mood;') IS NOT NULL AS registered;

RESET search_path;
DROP SCHEMA en CASCADE;
