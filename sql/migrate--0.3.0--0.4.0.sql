-- migrate 0.3.0 -> 0.4.0: safety checks before a migration runs (migrate_lint()).
\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit

-- As the earlier scripts, this runs as the bootstrap superuser for a trusted
-- extension: every operator, function and table below is qualified.

-- Take back what a new routine of the extension was given at its creation
-- beyond its owner's: the grants that default privileges of the creating role
-- add (a platform's for its API roles, as Supabase's for anon and
-- authenticated), which the install script revoked from every routine of
-- 0.1.0.  Dropped again at the end of this script.
CREATE FUNCTION migrate.revoke_default_grants(routine pg_catalog.regprocedure)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    who pg_catalog.oid;
BEGIN
    FOR who IN
        SELECT DISTINCT a.grantee
          FROM pg_catalog.pg_proc p CROSS JOIN pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid OPERATOR(pg_catalog.=) routine::pg_catalog.oid
           AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM %s', routine,
                                  CASE WHEN who OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(who)) END);
    END LOOP;
END
$fn$;

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
    PERFORM migrate.revoke_default_grants(routine);
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

-- ==== 1. migrate_lint(): one row per finding of the pending migrations (or
-- of one), from their parse trees and the live catalog.
CREATE FUNCTION @extschema@.migrate_lint(version text DEFAULT NULL)
RETURNS TABLE (version text, statement integer, line integer, rule text, severity text,
               table_name text, table_rows bigint, table_bytes bigint, lock text,
               message text, hint text, allowed boolean)
AS 'MODULE_PATHNAME', 'migrate_lint' LANGUAGE C VOLATILE;
SELECT migrate.revoke_default_grants('@extschema@.migrate_lint(pg_catalog.text)');
REVOKE ALL ON FUNCTION @extschema@.migrate_lint(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.migrate_lint(text) IS
    'What the pending migrations (or one) would do to the live database: rewrites, scans and index builds under strong locks, what drops break, security gaps; one row per finding';

-- ==== 2. An assert query: checked when the migration is applied, before its
-- commit, like the verify query, but never again (migrate_verify() runs the
-- verify query only): for what holds once ("150 tools were imported").
ALTER TABLE migrate.migrations ADD COLUMN assert pg_catalog.text;
COMMENT ON COLUMN migrate.migrations.assert IS
    'The assert query: checked when the migration is applied (every row''s first column true), never re-run by migrate_verify()';
SELECT migrate.replace_routine(
    '@extschema@.migrate_add(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, '
    'pg_catalog.jsonb, pg_catalog.text[], pg_catalog.bool, pg_catalog.jsonb)',
    '@extschema@.migrate_add(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, '
    'pg_catalog.jsonb, pg_catalog.text[], pg_catalog.bool, pg_catalog.jsonb, pg_catalog.text)', $def$
CREATE FUNCTION @extschema@.migrate_add(
    version text, name text, up text,
    down text DEFAULT NULL, verify text DEFAULT NULL, expect jsonb DEFAULT NULL,
    requires text[] DEFAULT NULL, transactional boolean DEFAULT true, batch jsonb DEFAULT NULL,
    "assert" text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_add' LANGUAGE C VOLATILE
$def$);

-- ==== 3. migrate_plan() shows each step's findings.
SELECT migrate.replace_routine(
    '@extschema@.migrate_plan(pg_catalog.text, pg_catalog.bool)',
    '@extschema@.migrate_plan(pg_catalog.text, pg_catalog.bool)', $def$
CREATE FUNCTION @extschema@.migrate_plan(target text DEFAULT NULL, out_of_order boolean DEFAULT false)
RETURNS TABLE (step integer, version text, name text, reason text,
               checksum text, verify_checksum text, down_checksum text, plan_checksum text,
               lint text[])
AS 'MODULE_PATHNAME', 'migrate_plan' LANGUAGE C VOLATILE
$def$);

DO $$
DECLARE
    owner pg_catalog.text;
BEGIN
    SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.extowner)) INTO owner
      FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'migrate';
    EXECUTE 'GRANT EXECUTE ON FUNCTION @extschema@.migrate_lint(text) TO '
            OPERATOR(pg_catalog.||) owner OPERATOR(pg_catalog.||) ' WITH GRANT OPTION';
END
$$;

-- ==== 4. Nothing for PUBLIC nor Supabase's API roles, as the install script
-- of 0.1.0 has it: the 0.1.0 -> 0.2.0 and 0.2.0 -> 0.3.0 scripts created
-- routines and tables that default privileges of a platform (EXECUTE on new
-- functions for anon, as Supabase sets them) could reach.  Only objects
-- that have such a grant are touched, and their initial privileges lose
-- just those grants: a REVOKE in an extension script records the object's
-- whole ACL as initial, which would hide a DBA's grants from pg_dump.
DO $$
DECLARE
    o        record;
    who      pg_catalog.oid[];
    init     pg_catalog.aclitem[];
    g        pg_catalog.oid;
BEGIN
    who := ARRAY(SELECT 0::pg_catalog.oid UNION ALL
                 SELECT r.oid FROM pg_catalog.pg_roles r
                  WHERE r.rolname OPERATOR(pg_catalog.=) ANY (ARRAY['anon', 'authenticated']));
    FOR o IN
        SELECT d.classid, d.objid,
               CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid
                    THEN 'ROUTINE ' OPERATOR(pg_catalog.||) d.objid::pg_catalog.regprocedure::pg_catalog.text
                    ELSE 'TABLE ' OPERATOR(pg_catalog.||) d.objid::pg_catalog.regclass::pg_catalog.text END AS what,
               ARRAY(SELECT DISTINCT a.grantee
                       FROM pg_catalog.aclexplode(coalesce(p.proacl, c.relacl)) a
                      WHERE a.grantee OPERATOR(pg_catalog.=) ANY (who)) AS grantees
          FROM pg_catalog.pg_depend d
          LEFT JOIN pg_catalog.pg_proc p
            ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid
           AND p.oid OPERATOR(pg_catalog.=) d.objid
          LEFT JOIN pg_catalog.pg_class c
            ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
           AND c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid
           AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                  WHERE e.extname OPERATOR(pg_catalog.=) 'migrate')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND (p.oid IS NOT NULL OR c.oid IS NOT NULL)
    LOOP
        CONTINUE WHEN pg_catalog.cardinality(o.grantees) OPERATOR(pg_catalog.=) 0;
        SELECT i.initprivs INTO init FROM pg_catalog.pg_init_privs i
         WHERE i.objoid OPERATOR(pg_catalog.=) o.objid AND i.classoid OPERATOR(pg_catalog.=) o.classid
           AND i.objsubid OPERATOR(pg_catalog.=) 0;
        FOREACH g IN ARRAY o.grantees LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', o.what,
                                      CASE WHEN g OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                                           ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g)) END);
        END LOOP;
        UPDATE pg_catalog.pg_init_privs
           SET initprivs = ARRAY(SELECT a FROM pg_catalog.unnest(init) a
                                  WHERE NOT EXISTS (SELECT FROM pg_catalog.aclexplode(ARRAY[a]) x
                                                     WHERE x.grantee OPERATOR(pg_catalog.=) ANY (o.grantees)))
         WHERE objoid OPERATOR(pg_catalog.=) o.objid AND classoid OPERATOR(pg_catalog.=) o.classid
           AND objsubid OPERATOR(pg_catalog.=) 0;
    END LOOP;
END
$$;

-- ==== 5. Every routine says what it is (\df+ and pg_description).
COMMENT ON FUNCTION @extschema@.migrate_add(text, text, text, text, text, jsonb, text[], boolean, jsonb, text) IS
    'Registers one migration (up script; down, verify, assert, expectations, requirements, batch options) and returns its checksum';
COMMENT ON FUNCTION @extschema@.migrate_add_script(text, text) IS
    'Registers one migration file by name and content (sections and directives read from it); one row per file';
COMMENT ON FUNCTION @extschema@.migrate_add_scripts(text[], text[]) IS
    'Registers a set of migration files, all or nothing (the laptop path: bin/migrate-bundle); one row per file';
COMMENT ON FUNCTION @extschema@.migrate_load(text) IS
    'Registers every migration file of a server directory, all or nothing; one row per file';
COMMENT ON FUNCTION @extschema@.migrate_compare_scripts(text[], text[]) IS
    'What a set of files would change, registering nothing: applied, pending, changed, not registered, missing';
COMMENT ON FUNCTION @extschema@.migrate_checksum(text) IS
    'The SHA-256 checksum migrate records for a script';
COMMENT ON FUNCTION @extschema@.migrate_version_key(text) IS
    'The order key of a version: versions ordered the way people mean them';
COMMENT ON FUNCTION @extschema@.migrate_plan(text, boolean) IS
    'What migrate_apply() would run, in order and why, with checksums to review and lint findings; changes nothing';
COMMENT ON FUNCTION @extschema@.migrate_apply(text, boolean, boolean, text) IS
    'Applies the pending migrations in one transaction, each checked before the commit; dry_run rolls back';
COMMENT ON PROCEDURE @extschema@.migrate_run(text, boolean, text) IS
    'Applies the pending migrations one transaction each, committing after each';
COMMENT ON FUNCTION @extschema@.migrate_rollback(text) IS
    'Runs the down scripts of the migrations newer than target, newest first, in one transaction';
COMMENT ON FUNCTION @extschema@.migrate_baseline(text) IS
    'Records the migrations up to a version as applied without running them';
COMMENT ON FUNCTION @extschema@.migrate_repair(text, text) IS
    'Accepts the registered text of changed applied migrations, or new text for one, and clears recorded failures';
COMMENT ON FUNCTION @extschema@.migrate_remove(text) IS
    'Unregisters a pending migration (recorded in history); an applied one is refused';
COMMENT ON FUNCTION @extschema@.migrate_import_history(text) IS
    'Adopts the history of another migration tool (Flyway, Supabase, dbmate, golang-migrate)';
COMMENT ON FUNCTION @extschema@.migrate_histories() IS
    'The other tools'' history tables migrate keeps in step, and why each is or is not';
COMMENT ON FUNCTION @extschema@.migrate_status() IS
    'Every registered migration with its state, checksums, when and by whom it was applied, and notes';
COMMENT ON FUNCTION @extschema@.migrate_validate() IS
    'Problems of the catalog: drift, a broken history chain, unrecorded or lost migrations, broken down scripts';
COMMENT ON FUNCTION @extschema@.migrate_verify(text) IS
    'Re-runs the checks of applied migrations (checksums, verify queries, constraints, indexes); raises the first failure';
COMMENT ON FUNCTION @extschema@.migrate_check(text) IS
    'The checks of migrate_verify() as rows, never raising';
COMMENT ON FUNCTION @extschema@.migrate_start(text, boolean, text) IS
    'Starts a background job that applies the pending migrations, those that cannot run in a transaction included';
COMMENT ON PROCEDURE @extschema@.migrate_wait(bigint, interval, text, integer, integer) IS
    'Waits for a job to finish (or reach a state), with progress NOTICEs';
COMMENT ON FUNCTION @extschema@.migrate_pause(bigint) IS
    'Asks a job to pause between statements or batches';
COMMENT ON FUNCTION @extschema@.migrate_resume(bigint) IS
    'Resumes a paused job';
COMMENT ON FUNCTION @extschema@.migrate_cancel(bigint) IS
    'Asks a job to stop between statements or batches';
COMMENT ON FUNCTION @extschema@.migrate_jobs() IS
    'Background jobs and their progress';
COMMENT ON FUNCTION migrate.status_rows() IS
    'The rows of the migrate.status view (the states of migrate_status())';
COMMENT ON FUNCTION migrate.history_hash(text, migrate.history) IS
    'The hash of a history row, chained to the previous row''s hash';
COMMENT ON FUNCTION migrate.history_chain() IS
    'Trigger: chains each new history row to the previous one';
COMMENT ON FUNCTION migrate.history_is_append_only() IS
    'Trigger: the history is append-only';
COMMENT ON FUNCTION migrate.registered_by_writer() IS
    'Trigger: a migration''s registrant is the role that registers it';
COMMENT ON FUNCTION migrate.job_role_writer() IS
    'Trigger: a job runs as the role that starts it';

DROP FUNCTION migrate.replace_routine(pg_catalog.regprocedure, pg_catalog.text, pg_catalog.text);
DROP FUNCTION migrate.revoke_default_grants(pg_catalog.regprocedure);
