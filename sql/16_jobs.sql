--
-- 16_jobs: background jobs: migrate_start(), migrate.jobs, migrate_jobs(),
-- CALL migrate_wait(), migrate_pause/resume/cancel(); a non-transactional
-- migration applied by a job; every refusal with its SQLSTATE.
--
SET client_min_messages = warning;
-- a fresh catalog
DROP EXTENSION IF EXISTS migrate;
CREATE EXTENSION migrate;

-- SQLSTATE and message of an error
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.sqlstate_of(text) TO PUBLIC;

CREATE SCHEMA jobs;
SET search_path = jobs, public;
CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 1000) g;

SELECT migrate_add('001', 'table', 'CREATE TABLE t (id int)') IS NOT NULL AS registered;
SELECT migrate_add('002', 'index', 'CREATE INDEX CONCURRENTLY big_id ON big (id)') IS NOT NULL AS registered;
SELECT migrate_add('003', 'after', 'CREATE TABLE u (id int)', requires => '{002}') IS NOT NULL AS registered;

-- migrate_apply() leaves the non-transactional one (and what requires it)
-- pending, and says how to go on
SELECT version, action FROM migrate_apply();

-- a job applies them: one statement at a time at top level for 002
SELECT migrate_start() AS job \gset
CALL migrate_wait(:job);
SELECT id = :job AS this_job, role, state, version, steps_done, steps_total, error_sqlstate
  FROM migrate.jobs;
SELECT state, steps_done FROM migrate_jobs() WHERE id = :job;
SELECT version, state FROM migrate_status();
SELECT indexrelid::regclass AS index, indisvalid FROM pg_index WHERE indrelid = 'big'::regclass;
SELECT version, action, detail ? 'job' AS by_job FROM migrate.history
 WHERE action = 'apply' ORDER BY id;
SELECT count(*) AS checkpoints_left FROM migrate.statement_progress;

-- nothing pending: the job succeeds at once
SELECT migrate_start() AS job_empty \gset
CALL migrate_wait(:job_empty);

--
-- a failed concurrent build: the job fails with the build's error, and no
-- invalid index is left; once the data is fixed, a new job resumes
--
INSERT INTO big VALUES (1);
SELECT migrate_add('004', 'unique', 'CREATE UNIQUE INDEX CONCURRENTLY big_u ON big (id)') IS NOT NULL AS registered;
SELECT migrate_start() AS job_fail \gset
\set VERBOSITY default
CALL migrate_wait(:job_fail);
SELECT state, version, statement, error_sqlstate, error_message, error_detail
  FROM migrate.jobs WHERE id = :job_fail;
SELECT indexrelid::regclass AS index, indisvalid FROM pg_index WHERE indrelid = 'big'::regclass ORDER BY 1;
SELECT version, state FROM migrate_status() WHERE version = '004';
DELETE FROM big WHERE ctid = (SELECT max(ctid) FROM big WHERE id = 1);
SELECT migrate_start() AS job_fixed \gset
CALL migrate_wait(:job_fixed);
SELECT version, state FROM migrate_status() WHERE version = '004';

--
-- refusals
--
-- waiting inside a transaction block would hold a snapshot
BEGIN;
CALL migrate_wait(:job);
ROLLBACK;
CALL migrate_wait(NULL);
SELECT migrate_pause(999999);
SELECT migrate_cancel(:job);
SELECT migrate_resume(:job);
SELECT migrate_pause(:job_fail);
-- a plan that is not the reviewed one
SELECT migrate_add('005', 'five', 'CREATE TABLE five (id int)') IS NOT NULL AS registered;
SELECT pg_temp.sqlstate_of($$SELECT migrate_start(plan => repeat('0', 64))$$);
SELECT pg_temp.sqlstate_of($$SELECT migrate_start(plan => 'not a checksum')$$);
-- a role that cannot log in cannot have a worker
CREATE ROLE regress_job_nologin NOLOGIN;
CREATE ROLE regress_job_other LOGIN;
GRANT EXECUTE ON FUNCTION migrate_start(text, boolean, text), migrate_pause(bigint), migrate_cancel(bigint)
   TO regress_job_nologin, regress_job_other;
SET ROLE regress_job_nologin;
SELECT pg_temp.sqlstate_of('SELECT migrate_start()');
RESET ROLE;
-- only the job's role, its members and superusers control a job
SET ROLE regress_job_other;
SELECT pg_temp.sqlstate_of('SELECT migrate_pause(' || :job_fixed || ')');
SELECT pg_temp.sqlstate_of('SELECT migrate_cancel(' || :job_fixed || ')');
RESET ROLE;
-- no EXECUTE, no job
CREATE ROLE regress_job_nobody LOGIN;
SET ROLE regress_job_nobody;
SELECT pg_temp.sqlstate_of('SELECT migrate_start()');
SELECT pg_temp.sqlstate_of('SELECT * FROM migrate.jobs');
RESET ROLE;

-- a job row restored from another cluster is never resumed as whoever has its role's OID
INSERT INTO migrate.job_state (role, role_oid, state) VALUES ('restored_role', 10, 'paused')
RETURNING id AS planted \gset
SELECT migrate_resume(:planted);
DELETE FROM migrate.job_state WHERE id = :planted;

SELECT migrate_start() AS job_last \gset
CALL migrate_wait(:job_last);
SELECT count(*) FILTER (WHERE state = 'applied') AS applied, count(*) AS migrations FROM migrate_status();
SELECT * FROM migrate_validate();

RESET search_path;
DROP SCHEMA jobs CASCADE;
DROP OWNED BY regress_job_nologin, regress_job_other, regress_job_nobody;
DROP ROLE regress_job_nologin, regress_job_other, regress_job_nobody;
RESET client_min_messages;
