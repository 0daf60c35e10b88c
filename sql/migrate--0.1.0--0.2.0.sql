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
    EXECUTE pg_catalog.format('DROP %s %s', CASE kind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, old);
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

-- ==== 2. Verify queries re-run as the role that registered them.

-- ==== 3. Touched tables kept by OID.

-- ==== 4. Serialisation without a public advisory lock key (nothing here: C only).

-- ==== 5. Dump and restore by the extension's owner.

-- ==== 6. A tamper-evident history.

DROP FUNCTION migrate.replace_routine(pg_catalog.regprocedure, pg_catalog.text, pg_catalog.text);
