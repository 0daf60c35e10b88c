-- migrate 0.4.0 -> 0.5.0: drift as a state, and files' own line numbers.
\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit

-- As the earlier scripts, this runs as the bootstrap superuser for a trusted
-- extension: every operator, function and table below is qualified.

-- The helpers of the 0.3.0 -> 0.4.0 script, again (an update script cannot
-- call what an earlier one dropped):
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


-- ==== 1. New text for an applied migration is registered, never run in its
-- place: the migration is 'changed' (its statements differ from the applied
-- ones; migrate_apply(), migrate_run() and jobs refuse until migrate_repair()
-- accepts it or the file is restored) or 'edited' (only comments or
-- whitespace differ; blocking nothing).  The applied text is kept beside the
-- registered one meanwhile.  Drift recorded before 0.5.0 (a catalog edited by
-- hand) stays 'changed', with no applied text kept.
ALTER TABLE migrate.migrations
    ADD COLUMN applied_up pg_catalog.text,
    ADD COLUMN drift pg_catalog.text
        CHECK (drift OPERATOR(pg_catalog.=) ANY (ARRAY['changed', 'edited']));
COMMENT ON COLUMN migrate.migrations.applied_up IS
    'The up script that was applied, kept while the registered one differs from it (drift), else null';
COMMENT ON COLUMN migrate.migrations.drift IS
    'changed (statements differ from the applied ones: applying is refused) or edited (comments or whitespace only), while the registered up script differs from the applied one';

-- ==== 2. Errors about a file's text name the file and the line in the file,
-- whatever its sections: each section's pieces and the file lines they start
-- at.
ALTER TABLE migrate.migrations ADD COLUMN lines pg_catalog.jsonb;
COMMENT ON COLUMN migrate.migrations.lines IS
    'Where the sections of its file start: {"up": [script line, file line, ...], "down": ..., "down_file": name}; null when the scripts'' lines are the file''s';

COMMENT ON FUNCTION @extschema@.migrate_repair(text, text) IS
    'Accepts the registered text of changed or edited applied migrations (or of one), or new text of one registered by migrate_add(); clears recorded failures';

-- ==== 3. migrate_status() fits a 120-column terminal: the state of every
-- migration, its checksum shortened to 12 digits, when it was applied (to the
-- second), and its first note, shortened, with how many more it has.  Every
-- column in full (both checksums, kind, who applied it, requirements, whether
-- it runs in a transaction, every note) stays in the view migrate.status.
SELECT migrate.replace_routine('@extschema@.migrate_status()', '@extschema@.migrate_status()', $def$
CREATE FUNCTION @extschema@.migrate_status()
RETURNS TABLE (version text, name text, state text, checksum text, applied_at timestamptz, note text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
    SELECT version, name, state, pg_catalog.left(checksum, 12), pg_catalog.date_trunc('second', applied_at),
           CASE WHEN pg_catalog.cardinality(notes) OPERATOR(pg_catalog.>) 0 THEN
               CASE WHEN pg_catalog.length(notes[1]) OPERATOR(pg_catalog.>) 30
                    THEN pg_catalog.left(notes[1], 29) OPERATOR(pg_catalog.||) '…' ELSE notes[1] END
               OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.cardinality(notes) OPERATOR(pg_catalog.>) 1
                    THEN pg_catalog.format(' (+%s)', pg_catalog.cardinality(notes) OPERATOR(pg_catalog.-) 1)
                    ELSE '' END
           END
      FROM migrate.status
     ORDER BY version_key
$$
$def$);
COMMENT ON FUNCTION @extschema@.migrate_status() IS
    'Every registered migration with its state, short checksum, when it was applied and its first note, shortened (the view migrate.status has every column in full)';

DROP FUNCTION migrate.replace_routine(pg_catalog.regprocedure, pg_catalog.text, pg_catalog.text);
DROP FUNCTION migrate.revoke_default_grants(pg_catalog.regprocedure);
