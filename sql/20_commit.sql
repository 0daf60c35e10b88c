--
-- 20_commit: what a COMMIT ends, an absorbed COMMIT ends too, and so does
-- the end of every migration (each behaves as if psql -1 ran it alone):
-- SET LOCAL, set_config(..., true) and SET LOCAL ROLE revert (plain SET and
-- SET ROLE last to the migration's end); deferred constraints are checked,
-- an error naming that line; ON COMMIT DROP / DELETE ROWS temporary tables
-- are dropped / emptied.  What cannot be ended exactly (SET CONSTRAINTS) is
-- refused at registration, or waits for a real commit.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;
CREATE SCHEMA cm;
SET search_path = cm, public;
CREATE ROLE cm_authenticated NOLOGIN;
CREATE ROLE cm_other NOLOGIN;
GRANT cm_authenticated, cm_other TO CURRENT_USER;
GRANT USAGE ON SCHEMA cm TO cm_authenticated, cm_other;

-- what the session looks like at each point of a script
CREATE TABLE cm.seen (n serial, at text, who text, path text, claims text, mem text);
GRANT INSERT, SELECT ON cm.seen TO cm_authenticated, cm_other;
GRANT USAGE ON SEQUENCE cm.seen_n_seq TO cm_authenticated, cm_other;
CREATE FUNCTION cm.look(at text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO cm.seen (at, who, path, claims, mem)
  VALUES (at, CASE WHEN current_user = session_user THEN 'caller' ELSE current_user END,
          current_setting('search_path'),
          current_setting('request.jwt.claims', true), current_setting('work_mem'))
$$;
-- Supabase's test helper: local settings and a local role
CREATE FUNCTION cm.simulate_login(claims text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('request.jwt.claims', claims, true);
  SET LOCAL ROLE cm_authenticated;
END $$;

-- 1. two begin/end blocks, each logging in with local settings
SELECT version, result FROM migrate_add_script('001_two_logins.sql', $m$
begin;
select cm.simulate_login('{"sub":"a"}');
select cm.look('block 1');
end;
select cm.look('after block 1');
begin;
select cm.simulate_login('{"sub":"b"}');
select cm.look('block 2');
commit;
select cm.look('after block 2');
$m$);
SELECT version, notes FROM migrate.status ORDER BY version_key;
SELECT version, action, rows FROM migrate_apply();
SELECT at, who, claims FROM cm.seen ORDER BY n;
SELECT current_user = session_user AS caller_role_back, current_setting('request.jwt.claims', true) AS claims;

-- 2. plain SET lasts to the migration's end, SET LOCAL to the COMMIT,
--    whichever order they come in, and SET ROLE under SET LOCAL ROLE
TRUNCATE cm.seen;
SELECT version, result FROM migrate_add_script('002_plain_and_local.sql', $m$
set work_mem = '5MB';
set local work_mem = '7MB';
set search_path = cm, public;
set role cm_other;
set local role cm_authenticated;
select look('local over plain');
commit;
select look('after commit: the plain ones');
set local work_mem = '9MB';
set work_mem = '11MB';
commit;
select look('plain over local');
$m$);
SELECT version, action FROM migrate_apply();
SELECT at, who, path, mem FROM cm.seen ORDER BY n;
-- the next migration starts with the caller's settings
SELECT version, result FROM migrate_add_script('003_next.sql', $m$select cm.look('next migration');$m$);
SELECT version, action FROM migrate_apply();
SELECT at, who, path, mem FROM cm.seen WHERE at = 'next migration';
-- the caller's own SET LOCAL outlives migrate_apply(), whatever commits it absorbs
BEGIN;
SET LOCAL work_mem = '3MB';
SELECT version, result FROM migrate_add_script('004_commits.sql', $m$set local work_mem = '8MB'; commit; select cm.look('004');$m$);
SELECT version, action FROM migrate_apply();
SHOW work_mem;
COMMIT;
SELECT mem FROM cm.seen WHERE at = '004';

-- 3. deferred constraints: checked at the absorbed COMMIT, as psql checks them
CREATE TABLE cm.parent (id int PRIMARY KEY);
CREATE TABLE cm.child (id int, pid int REFERENCES cm.parent DEFERRABLE INITIALLY DEFERRED);
SELECT version, result FROM migrate_add_script('005_deferred.sql', $m$
begin;
insert into cm.child values (1, 10);
commit;
insert into cm.parent values (10);
$m$);
SELECT version, action FROM migrate_apply();
SELECT count(*) AS children FROM cm.child;
-- repaired before its COMMIT, it applies
SELECT version, result FROM migrate_add_script('005_deferred.sql', $m$
begin;
insert into cm.child values (1, 10);
insert into cm.parent values (10);
commit;
$m$);
SELECT version, action, rows FROM migrate_apply();
-- left violated at a migration's end, repaired by the next: fails at the first
SELECT version, result FROM migrate_add_script('006_left.sql', $m$insert into cm.child values (2, 20);$m$);
SELECT version, result FROM migrate_add_script('007_repair.sql', $m$insert into cm.parent values (20);$m$);
SELECT version, action FROM migrate_apply();
SELECT version, state FROM migrate_status() WHERE version IN ('006', '007') ORDER BY version;
SELECT version, action FROM migrate_remove('007');
SELECT version, result FROM migrate_add_script('006_left.sql', $m$insert into cm.parent values (20); insert into cm.child values (2, 20);$m$);
-- the modes stay: after the check at the COMMIT, the constraint is still
-- deferred (child 4 comes before its parent)
SELECT version, result FROM migrate_add_script('008_modes_kept.sql', $m$
insert into cm.child values (3, 30);
insert into cm.parent values (30);
commit;
insert into cm.child values (4, 40);
insert into cm.parent values (40);
$m$);
SELECT version, action FROM migrate_apply();
SELECT id, pid FROM cm.child ORDER BY id;

-- 4. temporary tables ON COMMIT DROP and DELETE ROWS
SELECT version, result FROM migrate_add_script('009_temp.sql', $m$
create temp table scratch (x int) on commit drop;
insert into scratch values (1);
commit;
create temp table scratch (x int) on commit drop;
create temp table keep_rows (x int) on commit delete rows;
insert into keep_rows values (1), (2);
commit;
insert into cm.parent select 90 + count(*) from keep_rows;
$m$);
SELECT version, result FROM migrate_add_script('010_temp_again.sql', $m$create temp table scratch (x int) on commit drop;$m$);
SELECT version, action FROM migrate_apply();
SELECT id FROM cm.parent WHERE id >= 90;
SELECT count(*) AS temp_tables_left FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't';

-- what a commit ends before ON COMMIT acts: the deferred checks of a
-- temporary table (they are run for real), the block's cursors; and the
-- transaction's own characteristics do not carry over
SELECT version, result FROM migrate_add_script('010.1_temp_deferred.sql', $m$
begin;
create temp table tp (id int primary key) on commit drop;
create temp table tc (pid int references tp deferrable initially deferred) on commit drop;
insert into tc values (1);
insert into tp values (1);
declare cur cursor for select * from tp;
create temp table gone (x int);
insert into gone values (1);
drop table gone;
commit;
begin;
set transaction_read_only = on;
commit;
create table cm.after_blocks (x int);
$m$);
SELECT version, action FROM migrate_apply();
SELECT to_regclass('cm.after_blocks') IS NOT NULL AS created_after, count(*) AS cursors_left FROM pg_cursors;
-- a caller's transaction that used temporary tables before the call: its
-- ON COMMIT DELETE ROWS rows stay, and a migration that makes an ON COMMIT
-- table is refused at its commit point
BEGIN;
CREATE TEMP TABLE mine (x int) ON COMMIT DELETE ROWS;
INSERT INTO mine VALUES (1), (2);
SELECT version, result FROM migrate_add_script('010.2_plain.sql', $m$insert into cm.parent values (130); commit; insert into cm.parent values (131);$m$);
SELECT version, action FROM migrate_apply();
SELECT count(*) AS my_rows_kept FROM mine;
SELECT version, result FROM migrate_add_script('010.3_temp.sql', $m$create temp table t2 (x int) on commit drop; commit;$m$);
SELECT version, action FROM migrate_apply();
ROLLBACK;
SELECT version, result FROM migrate_add_script('010.2_plain.sql', $m$insert into cm.parent values (130); commit; insert into cm.parent values (131);$m$);
SELECT version, action FROM migrate_apply();

-- 5. SET CONSTRAINTS: its modes last until a commit
-- before an absorbed COMMIT, refused, in an up or a down script
SELECT version, result FROM migrate_add_script('011_modes.sql', $m$
begin;
set constraints all deferred;
insert into cm.parent values (110);
commit;
insert into cm.parent values (111);
$m$);
SELECT version, result FROM migrate_add_script('011_modes.sql', $m$
insert into cm.parent values (110);
-- migrate:down
set constraints all immediate;
delete from cm.parent where id = 110;
commit;
delete from cm.parent where id = 111;
$m$);
-- a COMMIT that only ends the script is fine: the migration's end ends the modes
SELECT version, result FROM migrate_add_script('011_modes.sql', $m$
begin;
set constraints all deferred;
insert into cm.parent values (110);
commit;
$m$);
SELECT version, notes FROM migrate.status WHERE version = '011';
-- in a migration of its own: the next one waits for a commit
SELECT version, result FROM migrate_add_script('011_modes.sql', $m$set constraints all immediate; insert into cm.parent values (110);$m$);
SELECT version, result FROM migrate_add_script('012_after_modes.sql', $m$insert into cm.child values (12, 120); insert into cm.parent values (120);$m$);
SELECT version, notes FROM migrate.status WHERE version = '011';
SELECT version, reason FROM migrate_plan();
SELECT version, action FROM migrate_apply();
SELECT version, action FROM migrate_apply();

-- 6. a down script with blocks: its local role reverts too
SELECT version, result FROM migrate_add_script('013_down_blocks.sql', $m$
select cm.look('013 up');
-- migrate:down
begin;
select cm.simulate_login('{"sub":"down"}');
select cm.look('013 down block 1');
commit;
select cm.look('013 down after');
$m$);
SELECT version, action FROM migrate_apply();
SELECT version, action FROM migrate_rollback('012');
SELECT at, who, claims FROM cm.seen WHERE at LIKE '013 down%' ORDER BY n;

DROP EXTENSION migrate;
DROP SCHEMA cm CASCADE;
DROP OWNED BY cm_authenticated, cm_other;
DROP ROLE cm_authenticated, cm_other;
