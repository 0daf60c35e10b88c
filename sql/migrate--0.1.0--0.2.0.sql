-- migrate 0.1.0 -> 0.2.0: security hardening.
\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit

-- Like the install script, this runs as the bootstrap superuser for a trusted
-- extension, with the extension's schema first in search_path: every
-- operator, function, type and table below is qualified (pg_catalog.,
-- OPERATOR(pg_catalog.=), migrate., @extschema@.), so that nothing another
-- role created can be resolved.

-- Replace a routine whose signature changes, keeping the privileges granted on
-- it since installation: the extension's own grants are made again (and stay
-- its initial privileges, which pg_dump leaves out), the grants that DBAs made
-- are made again and kept out of the initial privileges, so pg_dump still
-- dumps them.  Dropped again at the end of this script.
CREATE FUNCTION migrate.replace_routine(old pg_catalog.regprocedure, new_signature pg_catalog.text,
                                        definition pg_catalog.text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    acl      pg_catalog.aclitem[];
    kind     pg_catalog."char";
    proowner pg_catalog.oid;
    extowner pg_catalog.oid;
    routine  pg_catalog.regprocedure;
    initial  pg_catalog.aclitem[];
    g        record;
BEGIN
    SELECT p.proacl, p.prokind, p.proowner INTO acl, kind, proowner
      FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) old::pg_catalog.oid;
    SELECT e.extowner INTO extowner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE pg_catalog.format('DROP %s %s',
                              CASE WHEN kind OPERATOR(pg_catalog.=) 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, old);
    EXECUTE definition;
    routine := pg_catalog.to_regprocedure(new_signature);
    EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', routine);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %I WITH GRANT OPTION',
                              routine, pg_catalog.pg_get_userbyid(extowner));
    SELECT p.proacl INTO initial FROM pg_catalog.pg_proc p
     WHERE p.oid OPERATOR(pg_catalog.=) routine::pg_catalog.oid;
    FOR g IN
        SELECT a.grantee, a.is_grantable
          FROM pg_catalog.aclexplode(acl) a
         WHERE a.grantee OPERATOR(pg_catalog.<>) proowner
           AND a.grantee OPERATOR(pg_catalog.<>) extowner
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s%s', routine,
                                  CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    UPDATE pg_catalog.pg_init_privs SET initprivs = initial
     WHERE objoid OPERATOR(pg_catalog.=) routine::pg_catalog.oid
       AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid
       AND objsubid OPERATOR(pg_catalog.=) 0;
END
$fn$;

-- ==== 1. Reviewed plans: migrate_plan() shows the checksums of every script
-- it would run and of the whole plan; migrate_apply() and migrate_run() take
-- that plan checksum and refuse a plan that changed since.
SELECT migrate.replace_routine(
    '@extschema@.migrate_plan(pg_catalog.text, pg_catalog.bool)',
    '@extschema@.migrate_plan(pg_catalog.text, pg_catalog.bool)', $def$
CREATE FUNCTION @extschema@.migrate_plan(target text DEFAULT NULL, out_of_order boolean DEFAULT false)
RETURNS TABLE (step integer, version text, name text, reason text,
               checksum text, verify_checksum text, down_checksum text, plan_checksum text)
AS 'MODULE_PATHNAME', 'migrate_plan' LANGUAGE C STABLE
$def$);
SELECT migrate.replace_routine(
    '@extschema@.migrate_apply(pg_catalog.text, pg_catalog.bool, pg_catalog.bool)',
    '@extschema@.migrate_apply(pg_catalog.text, pg_catalog.bool, pg_catalog.bool, pg_catalog.text)', $def$
CREATE FUNCTION @extschema@.migrate_apply(
    target text DEFAULT NULL, dry_run boolean DEFAULT false, out_of_order boolean DEFAULT false,
    plan text DEFAULT NULL)
RETURNS TABLE (version text, name text, action text, duration interval, rows bigint, checks integer)
AS 'MODULE_PATHNAME', 'migrate_apply' LANGUAGE C VOLATILE
$def$);
SELECT migrate.replace_routine(
    '@extschema@.migrate_run(pg_catalog.text, pg_catalog.bool)',
    '@extschema@.migrate_run(pg_catalog.text, pg_catalog.bool, pg_catalog.text)', $def$
CREATE PROCEDURE @extschema@.migrate_run(target text DEFAULT NULL, out_of_order boolean DEFAULT false,
                                         plan text DEFAULT NULL)
AS 'MODULE_PATHNAME', 'migrate_run' LANGUAGE C
$def$);

-- ==== 2. Verify queries re-run as the role that registered them: nothing to
-- change in the catalog (migrate.migrations.registered_by names that role).

-- ==== 3. Touched tables kept by OID.  regclass survives a rename, and pg_dump
-- writes it as a name that a restore resolves again; a dropped table keeps its
-- old OID, so a table created later under the same name is never taken for it.
ALTER TABLE migrate.applied ADD COLUMN touched_tables pg_catalog.regclass[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN migrate.applied.touched IS 'the tables the migration wrote or altered, by name as they were then';
COMMENT ON COLUMN migrate.applied.touched_tables IS 'the same tables by OID: re-checks follow these, never a name';
-- Migrations applied by 0.1.0 kept names only: resolve them once, now (the
-- two arrays are parallel: the n-th name is the n-th table).
UPDATE migrate.applied a
   SET touched_tables = ARRAY(SELECT pg_catalog.to_regclass(t.name)
                                FROM pg_catalog.unnest(a.touched) WITH ORDINALITY AS t(name, i)
                               WHERE pg_catalog.to_regclass(t.name) IS NOT NULL
                               ORDER BY t.i),
       touched = ARRAY(SELECT t.name
                         FROM pg_catalog.unnest(a.touched) WITH ORDINALITY AS t(name, i)
                        WHERE pg_catalog.to_regclass(t.name) IS NOT NULL
                        ORDER BY t.i);

-- ==== 4. Serialisation without a public advisory lock key: the C code locks
-- migrate.catalog_lock, which no role but its owner can lock.

-- ==== 5. Dump and restore by the extension's owner, with no superuser.  pg_dump
-- reads the catalog and its sequence; a restore writes them back.  Rows that
-- the extension's own code does not write are marked as registered by the
-- role that wrote them, so a restored (or hand-written) verify query never
-- runs with another role's rights.
CREATE FUNCTION migrate.registered_by_writer() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r
             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        NEW.registered_by := CURRENT_USER;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER migrations_registered_by_writer BEFORE INSERT OR UPDATE ON migrate.migrations
    FOR EACH ROW EXECUTE FUNCTION migrate.registered_by_writer();
ALTER TABLE migrate.migrations ENABLE ALWAYS TRIGGER migrations_registered_by_writer;

DO $$
DECLARE
    owner pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE 'GRANT SELECT, UPDATE ON SEQUENCE migrate.history_id_seq TO ' OPERATOR(pg_catalog.||) owner;
    EXECUTE 'GRANT INSERT ON migrate.migrations, migrate.applied, migrate.history TO ' OPERATOR(pg_catalog.||) owner;
END
$$;

-- ==== 6. A tamper-evident history.  Each row carries a hash of its content and
-- of the row before it; migrate_validate() and migrate_verify() recompute the
-- chain.  The triggers fire in replica mode too (session_replication_role).

-- The hash that a history row must carry when it follows a row whose hash is
-- prev (NULL for the first): SHA-256 of prev and of the row's content,
-- serialised the same whatever the session's settings (src/history.c).
CREATE FUNCTION migrate.history_hash(prev pg_catalog.text, h migrate.history) RETURNS pg_catalog.text
AS 'MODULE_PATHNAME', 'migrate_history_hash' LANGUAGE C STABLE PARALLEL SAFE;

ALTER TABLE migrate.history ADD COLUMN hash text;
COMMENT ON COLUMN migrate.history.hash IS
    'SHA-256 of this row''s content and of the previous row''s hash: an edited, removed or inserted row breaks the chain';

-- Chain the rows that 0.1.0 wrote, in order.
ALTER TABLE migrate.history DISABLE TRIGGER history_no_update_or_delete;
DO $$
DECLARE
    prev pg_catalog.text;
    h    migrate.history;
BEGIN
    FOR h IN SELECT * FROM migrate.history ORDER BY id LOOP
        prev := migrate.history_hash(prev, h);
        UPDATE migrate.history SET hash = prev WHERE id OPERATOR(pg_catalog.=) h.id;
    END LOOP;
END
$$;
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_update_or_delete;
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_no_truncate;

-- New rows are chained as they are written (a restore brings its own hashes).
CREATE FUNCTION migrate.history_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.hash IS NULL THEN
        NEW.hash := migrate.history_hash(
            (SELECT h.hash FROM migrate.history h
              WHERE h.id OPERATOR(pg_catalog.<) NEW.id ORDER BY h.id DESC LIMIT 1),
            NEW);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER history_chain BEFORE INSERT ON migrate.history
    FOR EACH ROW EXECUTE FUNCTION migrate.history_chain();
ALTER TABLE migrate.history ENABLE ALWAYS TRIGGER history_chain;
ALTER TABLE migrate.history ALTER COLUMN hash SET NOT NULL;

REVOKE ALL ON FUNCTION migrate.registered_by_writer(), migrate.history_hash(pg_catalog.text, migrate.history),
    migrate.history_chain() FROM PUBLIC;

-- ==== 7. One truth about states.  The view migrate.status (which
-- migrate_status() reads) selects migrate.status_rows(), whose C code is the
-- one migrate_validate() and migrate_apply() use: a migration that waits with
-- a non-transactional one it requires, however many requirements deep, is
-- 'pending' there and 'needs worker' in migrate_validate(), never 'out of
-- order'.  It walks the requirement graph once: linear in migrations plus
-- requirements.  A role that reads the view directly needs EXECUTE on it too.
CREATE FUNCTION migrate.status_rows()
RETURNS TABLE (version pg_catalog.text, name pg_catalog.text, kind pg_catalog.text,
               state pg_catalog.text, checksum pg_catalog.text, applied_checksum pg_catalog.text,
               applied_at pg_catalog.timestamptz, applied_by pg_catalog.name,
               transactional pg_catalog.bool, requires pg_catalog.text[], notes pg_catalog.text[],
               version_key pg_catalog.text)
AS 'MODULE_PATHNAME', 'migrate_status_rows' LANGUAGE C STABLE ROWS 1000;
CREATE OR REPLACE VIEW migrate.status AS
SELECT s.version, s.name, s.kind, s.state, s.checksum, s.applied_checksum, s.applied_at,
       s.applied_by, s.transactional, s.requires, s.notes,
       s.version_key COLLATE pg_catalog."C" AS version_key
  FROM migrate.status_rows() s;
REVOKE ALL ON FUNCTION migrate.status_rows() FROM PUBLIC;
DO $$
DECLARE
    owner pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE 'GRANT EXECUTE ON FUNCTION migrate.status_rows() TO ' OPERATOR(pg_catalog.||) owner
            OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
END
$$;

-- ==== 8. Background jobs: what cannot run in a transaction, or must outlive
-- the client, runs in a background worker of this database, as the role that
-- started it (src/jobs.c, src/worker.c).
CREATE TABLE migrate.job_state (
    id             bigserial PRIMARY KEY,
    role           name NOT NULL,
    role_oid       oid NOT NULL,
    target         text,
    out_of_order   boolean NOT NULL DEFAULT false,
    plan           text,
    settings       text[] NOT NULL DEFAULT '{}',
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'paused', 'succeeded',
                                                                  'failed', 'cancelled'])),
    request        text CHECK (request OPERATOR(pg_catalog.=) ANY (ARRAY['pause', 'cancel'])),
    version        text,
    statement      integer,
    steps_done     integer NOT NULL DEFAULT 0,
    steps_total    integer,
    worker_pid     integer,
    attempts       integer NOT NULL DEFAULT 0,
    launched_at    timestamptz,
    waiters        integer[] NOT NULL DEFAULT '{}',
    queued_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    error          jsonb
);
COMMENT ON TABLE migrate.job_state IS
    'one row per background job: who started it, what it applies, where it is, how it ended';
COMMENT ON COLUMN migrate.job_state.settings IS
    'search_path and migrate.* settings of the session that started the job, as name=value';
COMMENT ON COLUMN migrate.job_state.attempts IS
    'workers started for the job since it last made progress: past a few, the job fails instead of starting another';
COMMENT ON COLUMN migrate.job_state.waiters IS
    'process ids of sessions in migrate_wait(): the worker sets their latches at every step';

-- Where a non-transactional migration stands: statements that completed, and
-- the invalid indexes that existed when the running statement started (a
-- failed concurrent build leaves one more, which is dropped by its OID).
CREATE TABLE migrate.statement_progress (
    version_key    text COLLATE "C" PRIMARY KEY,
    checksum       text NOT NULL,
    done           integer NOT NULL,
    invalid_before oid[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE migrate.statement_progress IS
    'checkpoints of non-transactional migrations run by jobs: a rerun resumes after the last completed statement';

-- A job row written by hand (or restored by the owner) runs as the role that
-- wrote it, never as a role it names: the worker connects as role_oid.
CREATE FUNCTION migrate.job_role_writer() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r
             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        NEW.role := CURRENT_USER;
        NEW.role_oid := (SELECT r.oid FROM pg_catalog.pg_roles r
                          WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER job_state_role_writer BEFORE INSERT OR UPDATE ON migrate.job_state
    FOR EACH ROW EXECUTE FUNCTION migrate.job_role_writer();
ALTER TABLE migrate.job_state ENABLE ALWAYS TRIGGER job_state_role_writer;
REVOKE ALL ON FUNCTION migrate.job_role_writer() FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('migrate.job_state', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.job_state_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.statement_progress', '');

CREATE VIEW migrate.jobs AS
SELECT j.id, j.role, j.target, j.state, j.request, j.version, j.statement, j.steps_done, j.steps_total,
       j.worker_pid, j.queued_at, j.started_at, j.finished_at,
       j.error OPERATOR(pg_catalog.->>) 'sqlstate' AS error_sqlstate,
       j.error OPERATOR(pg_catalog.->>) 'message' AS error_message,
       j.error OPERATOR(pg_catalog.->>) 'detail' AS error_detail
  FROM migrate.job_state j
 ORDER BY j.id;
COMMENT ON VIEW migrate.jobs IS 'one row per background job (migrate_jobs() also resumes jobs whose worker died)';

CREATE FUNCTION @extschema@.migrate_start(target text DEFAULT NULL, out_of_order boolean DEFAULT false,
                                          plan text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_start' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_jobs()
RETURNS TABLE (id bigint, role name, target text, state text, request text, version text,
               statement integer, steps_done integer, steps_total integer, worker_pid integer,
               queued_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error_sqlstate text, error_message text, error_detail text)
AS 'MODULE_PATHNAME', 'migrate_jobs' LANGUAGE C VOLATILE;

CREATE PROCEDURE @extschema@.migrate_wait(job bigint, timeout interval DEFAULT NULL,
                                          INOUT state text DEFAULT NULL, INOUT steps_done integer DEFAULT NULL,
                                          INOUT steps_total integer DEFAULT NULL)
AS 'MODULE_PATHNAME', 'migrate_wait' LANGUAGE C;

CREATE FUNCTION @extschema@.migrate_pause(job bigint) RETURNS text
AS 'MODULE_PATHNAME', 'migrate_pause' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.migrate_resume(job bigint) RETURNS text
AS 'MODULE_PATHNAME', 'migrate_resume' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION @extschema@.migrate_cancel(job bigint) RETURNS text
AS 'MODULE_PATHNAME', 'migrate_cancel' LANGUAGE C VOLATILE STRICT;

REVOKE ALL ON TABLE migrate.job_state, migrate.statement_progress, migrate.jobs FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.job_state_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.migrate_start(text, boolean, text), @extschema@.migrate_jobs(),
    @extschema@.migrate_pause(bigint), @extschema@.migrate_resume(bigint), @extschema@.migrate_cancel(bigint)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.migrate_wait(bigint, interval, text, integer, integer) FROM PUBLIC;
DO $$
DECLARE
    owner pg_catalog.text;
    r     pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE 'GRANT EXECUTE ON FUNCTION @extschema@.migrate_start(text, boolean, text), @extschema@.migrate_jobs(), '
            '@extschema@.migrate_pause(bigint), @extschema@.migrate_resume(bigint), '
            '@extschema@.migrate_cancel(bigint) TO ' OPERATOR(pg_catalog.||) owner
            OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
    EXECUTE 'GRANT EXECUTE ON PROCEDURE @extschema@.migrate_wait(bigint, interval, text, integer, integer) TO '
            OPERATOR(pg_catalog.||) owner OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
    EXECUTE 'GRANT SELECT ON migrate.jobs TO ' OPERATOR(pg_catalog.||) owner OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
    -- dump and restore by the owner, as for the other catalog tables
    EXECUTE 'GRANT SELECT, INSERT ON migrate.job_state, migrate.statement_progress TO ' OPERATOR(pg_catalog.||) owner;
    EXECUTE 'GRANT SELECT, UPDATE ON SEQUENCE migrate.job_state_id_seq TO ' OPERATOR(pg_catalog.||) owner;
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON migrate.jobs, migrate.job_state FROM %I', r);
        END IF;
    END LOOP;
END
$$;

-- ==== 9. Switching tools without a flag day: the other tools' history tables
-- are kept in step (setting migrate.sync_histories); migrate_histories() says
-- which are, and why not.  migrate_status() keeps its result type.
CREATE FUNCTION @extschema@.migrate_histories(OUT tool pg_catalog.text, OUT "table" pg_catalog.text,
                                              OUT kept pg_catalog.bool, OUT reason pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'migrate_histories' LANGUAGE C STABLE ROWS 4;
REVOKE ALL ON FUNCTION @extschema@.migrate_histories() FROM PUBLIC;
DO $$
DECLARE
    owner pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE 'GRANT EXECUTE ON FUNCTION @extschema@.migrate_histories() TO ' OPERATOR(pg_catalog.||) owner
            OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
END
$$;

DROP FUNCTION migrate.replace_routine(pg_catalog.regprocedure, pg_catalog.text, pg_catalog.text);
