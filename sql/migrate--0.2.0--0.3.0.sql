-- migrate 0.2.0 -> 0.3.0: batched data migrations.
\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit

-- As the earlier scripts, this runs as the bootstrap superuser for a trusted
-- extension: every operator, function and table below is qualified.

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

-- ==== 1. A migration registered with batch options runs batch by batch in a
-- job: migrate_add() takes them (batch => '{"table": ..., "size": ...}'),
-- files give them with -- migrate:batch {...}.
ALTER TABLE migrate.migrations ADD COLUMN batch pg_catalog.jsonb;
COMMENT ON COLUMN migrate.migrations.batch IS
    'batch options of a batched data migration (table, key, size or target, pause), or null';

SELECT migrate.replace_routine(
    '@extschema@.migrate_add(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, '
    'pg_catalog.jsonb, pg_catalog.text[], pg_catalog.bool)',
    '@extschema@.migrate_add(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, '
    'pg_catalog.jsonb, pg_catalog.text[], pg_catalog.bool, pg_catalog.jsonb)', $def$
CREATE FUNCTION @extschema@.migrate_add(
    version text, name text, up text,
    down text DEFAULT NULL, verify text DEFAULT NULL, expect jsonb DEFAULT NULL,
    requires text[] DEFAULT NULL, transactional boolean DEFAULT true, batch jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_add' LANGUAGE C VOLATILE
$def$);

-- ==== 2. Where a batched migration stands: the largest key when it started
-- (the walk ends there), the last key of the last committed batch (committed
-- with it), what was done, and the row counts its expectations are checked
-- against.  Keys are kept in their type's binary form, and as text to read.
CREATE TABLE migrate.batch_progress (
    version_key    text COLLATE "C" PRIMARY KEY,
    checksum       text NOT NULL,
    table_name     regclass NOT NULL,
    key_column     name NOT NULL,
    last_key       bytea,
    last_key_text  text,
    max_key        bytea,
    max_key_text   text,
    keys_total     bigint,
    keys_done      bigint NOT NULL DEFAULT 0,
    rows_done      bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    size           integer,
    last_ms        double precision,
    longest_ms     double precision NOT NULL DEFAULT 0,
    counts         jsonb,
    started_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    updated_at     timestamptz
);
COMMENT ON TABLE migrate.batch_progress IS
    'checkpoints of batched migrations: each batch commits with its row here, and a job resumes after it';
COMMENT ON COLUMN migrate.batch_progress.max_key IS
    'the largest key when the migration started (null: the table was empty); the walk ends there';
COMMENT ON COLUMN migrate.batch_progress.counts IS
    'row counts when the migration started, one per expectation, that "+N" and "=" are checked against';
SELECT pg_catalog.pg_extension_config_dump('migrate.batch_progress', '');

-- ==== 3. A job's progress through a batched migration, and why it slows down
-- or waits.
ALTER TABLE migrate.job_state
    ADD COLUMN batches_done    bigint,
    ADD COLUMN rows_done       bigint,
    ADD COLUMN rows_total      bigint,
    ADD COLUMN rows_per_second numeric,
    ADD COLUMN eta             interval,
    ADD COLUMN note            text;
COMMENT ON COLUMN migrate.job_state.rows_total IS
    'estimated rows of the running batched migration, from statistics or the key range (never a count)';
COMMENT ON COLUMN migrate.job_state.note IS
    'why the job slows down or waits (replica lag, blocked sessions, vacuum, a lock), while it does';

CREATE OR REPLACE VIEW migrate.jobs AS
SELECT j.id, j.role, j.target, j.state, j.request, j.version, j.statement, j.steps_done, j.steps_total,
       j.worker_pid, j.queued_at, j.started_at, j.finished_at,
       j.error OPERATOR(pg_catalog.->>) 'sqlstate' AS error_sqlstate,
       j.error OPERATOR(pg_catalog.->>) 'message' AS error_message,
       j.error OPERATOR(pg_catalog.->>) 'detail' AS error_detail,
       j.batches_done, j.rows_done, j.rows_total, j.rows_per_second, j.eta, j.note
  FROM migrate.job_state j
 ORDER BY j.id;

SELECT migrate.replace_routine(
    '@extschema@.migrate_jobs()',
    '@extschema@.migrate_jobs()', $def$
CREATE FUNCTION @extschema@.migrate_jobs()
RETURNS TABLE (id bigint, role name, target text, state text, request text, version text,
               statement integer, steps_done integer, steps_total integer, worker_pid integer,
               queued_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error_sqlstate text, error_message text, error_detail text,
               batches_done bigint, rows_done bigint, rows_total bigint, rows_per_second numeric,
               eta interval, note text)
AS 'MODULE_PATHNAME', 'migrate_jobs' LANGUAGE C VOLATILE
$def$);

-- ==== 4. Looking from a laptop without registering: what a directory would
-- change (bin/migrate-bundle --status).
CREATE FUNCTION @extschema@.migrate_compare_scripts(filenames text[], scripts text[])
RETURNS TABLE (file text, version text, name text, state text, checksum text, registered_checksum text,
               detail text)
AS 'MODULE_PATHNAME', 'migrate_compare_scripts' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.migrate_compare_scripts(text[], text[]) FROM PUBLIC;

-- ==== 5. Taking back a pending migration registered by mistake.
ALTER TABLE migrate.history DROP CONSTRAINT history_action_check;
ALTER TABLE migrate.history ADD CONSTRAINT history_action_check CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY[
    'register', 'replace', 'update', 'apply', 'revert', 'baseline', 'repair', 'import', 'remove']));
CREATE FUNCTION @extschema@.migrate_remove(version text)
RETURNS TABLE (version text, name text, action text)
AS 'MODULE_PATHNAME', 'migrate_remove' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION @extschema@.migrate_remove(text) FROM PUBLIC;

-- ==== 6. migrate_plan() and migrate_validate() read the catalog through SPI
-- as its owner, with statements that are not read-only (the catalog lock):
-- VOLATILE, as what they run is.
ALTER FUNCTION @extschema@.migrate_plan(pg_catalog.text, pg_catalog.bool) VOLATILE;
ALTER FUNCTION @extschema@.migrate_validate() VOLATILE;

REVOKE ALL ON TABLE migrate.batch_progress FROM PUBLIC;
DO $$
DECLARE
    owner pg_catalog.text;
    r     pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    -- dump and restore by the owner, as for the other catalog tables
    EXECUTE 'GRANT SELECT, INSERT ON migrate.batch_progress TO ' OPERATOR(pg_catalog.||) owner;
    EXECUTE 'GRANT EXECUTE ON FUNCTION @extschema@.migrate_compare_scripts(text[], text[]), '
            '@extschema@.migrate_remove(text) TO '
            OPERATOR(pg_catalog.||) owner OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON migrate.batch_progress FROM %I', r);
        END IF;
    END LOOP;
END
$$;

DROP FUNCTION migrate.replace_routine(pg_catalog.regprocedure, pg_catalog.text, pg_catalog.text);
