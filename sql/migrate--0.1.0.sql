-- migrate 0.1.0: catalog and core functions.
\echo Use "CREATE EXTENSION migrate" to load this file. \quit

-- A trusted extension: this script runs as the bootstrap superuser, with the
-- extension's schema (often public, writable by the role that installs it)
-- first in search_path.  So every operator, function, aggregate and collation
-- below is qualified (OPERATOR(pg_catalog.=), pg_catalog., migrate.,
-- @extschema@.), and IN lists are written "= ANY (ARRAY[...])" to qualify
-- their operator.  Unqualified type names are safe: pg_catalog is searched
-- first and a type name must match exactly.  test/t/006_hostile_install.pl
-- installs and updates under a public schema full of look-alikes.

-- The catalog.  Written only by the extension's functions, which switch to the
-- catalog's owner for their catalog statements; users get no write privilege.
CREATE SCHEMA migrate;
COMMENT ON SCHEMA migrate IS 'catalog of the migrate extension: registered and applied migrations, and their history';

CREATE TABLE migrate.migrations (
    version_key   text COLLATE pg_catalog."C" PRIMARY KEY,
    version       text NOT NULL,
    name          text NOT NULL,
    kind          text NOT NULL DEFAULT 'versioned'
                  CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['versioned', 'repeatable'])),
    up            text NOT NULL,
    down          text,
    verify        text,
    expect        jsonb,
    requires      text[] NOT NULL DEFAULT '{}',
    transactional boolean NOT NULL DEFAULT true,
    checksum      text NOT NULL,
    source        text NOT NULL DEFAULT 'migrate_add',
    registered_by name NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    notes         text[] NOT NULL DEFAULT '{}',
    failure       jsonb
);
COMMENT ON TABLE migrate.migrations IS 'every registered migration; version_key orders versions as people mean them (repeatable ones, ~name, after all)';
COMMENT ON COLUMN migrate.migrations.notes IS 'what registration found: absorbed BEGIN/COMMIT, why it is non-transactional, unsafe mixes';
COMMENT ON COLUMN migrate.migrations.failure IS 'the last durable failure (migrate_run), until the migration applies, is replaced or repaired';

-- One row per migration whose changes are committed.  A row exists if and only
-- if the migration's changes do: both are written in the same transaction.
CREATE TABLE migrate.applied (
    version_key text COLLATE pg_catalog."C" PRIMARY KEY,
    version     text NOT NULL,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_by  name NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    touched     text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE migrate.applied IS 'applied migrations: the checksum that ran and the tables it wrote or altered';

CREATE TABLE migrate.history (
    id            bigserial PRIMARY KEY,
    version       text,
    version_key   text COLLATE pg_catalog."C",
    name          text,
    action        text NOT NULL CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY[
                                  'register', 'replace', 'update', 'apply', 'revert',
                                  'baseline', 'repair', 'import'])),
    checksum      text,
    performed_by  name NOT NULL,
    performed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    duration      interval,
    rows_affected bigint,
    counts        jsonb,
    checks        integer,
    outcome       text NOT NULL DEFAULT 'ok'
                  CHECK (outcome OPERATOR(pg_catalog.=) ANY (ARRAY['ok', 'failed'])),
    detail        jsonb
);
CREATE INDEX history_version_key_id_idx ON migrate.history (version_key, id);
COMMENT ON TABLE migrate.history IS 'append-only log of what was done to each migration';

CREATE FUNCTION migrate.history_is_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'migrate.history is append-only'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'History rows are never changed or removed; the extension appends new ones.';
END
$$;
CREATE TRIGGER history_no_update_or_delete BEFORE UPDATE OR DELETE ON migrate.history
    FOR EACH ROW EXECUTE FUNCTION migrate.history_is_append_only();
CREATE TRIGGER history_no_truncate BEFORE TRUNCATE ON migrate.history
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.history_is_append_only();

-- A single row that every catalog writer locks; a writer that changed the
-- catalog updates it, so a REPEATABLE READ or SERIALIZABLE transaction that
-- waited for it gets a serialization failure instead of a stale view.
CREATE TABLE migrate.catalog_lock (
    id         integer PRIMARY KEY CHECK (id OPERATOR(pg_catalog.=) 1),
    changed_at timestamptz,
    changed_by name
);
INSERT INTO migrate.catalog_lock VALUES (1, NULL, NULL);

SELECT pg_catalog.pg_extension_config_dump('migrate.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.applied', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.history', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.history_id_seq', '');

CREATE FUNCTION @extschema@.migrate_version_key(version text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_version_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- One row per migration, registered or applied, with its state.  Repeatable
-- migrations (version_key '~name') are pending again when their text changes.
CREATE VIEW migrate.status AS
SELECT coalesce(m.version, a.version) AS version,
       coalesce(m.name, a.name) AS name,
       coalesce(m.kind, 'versioned') AS kind,
       CASE
           WHEN m.version_key IS NULL THEN 'missing'
           WHEN a.version_key IS NOT NULL AND a.checksum OPERATOR(pg_catalog.=) m.checksum THEN 'applied'
           WHEN m.failure IS NOT NULL THEN 'failed'
           WHEN a.version_key IS NOT NULL AND m.kind OPERATOR(pg_catalog.=) 'versioned' THEN 'changed'
           WHEN a.version_key IS NOT NULL THEN 'pending'
           WHEN m.kind OPERATOR(pg_catalog.=) 'versioned' AND m.transactional
                AND m.version_key OPERATOR(pg_catalog.<) newest.key
                AND NOT EXISTS (
                    -- it waits with a non-transactional migration it requires
                    SELECT FROM pg_catalog.unnest(m.requires) AS r(v)
                      JOIN migrate.migrations d
                        ON d.version_key OPERATOR(pg_catalog.=) @extschema@.migrate_version_key(r.v)
                     WHERE NOT d.transactional
                       AND NOT EXISTS (SELECT FROM migrate.applied da
                                        WHERE da.version_key OPERATOR(pg_catalog.=) d.version_key))
                THEN 'out of order'
           ELSE 'pending'
       END AS state,
       m.checksum,
       a.checksum AS applied_checksum,
       a.applied_at,
       a.applied_by,
       m.transactional,
       m.requires,
       m.notes,
       coalesce(m.version_key, a.version_key) AS version_key
  FROM migrate.migrations m
  FULL JOIN migrate.applied a ON a.version_key OPERATOR(pg_catalog.=) m.version_key
 CROSS JOIN (SELECT pg_catalog.max(version_key) AS key
               FROM migrate.applied
              WHERE version_key OPERATOR(pg_catalog.<) '~') newest;

-- Functions.  They run with the caller's rights (SECURITY INVOKER); the C code
-- switches to the catalog's owner only for its own catalog statements.

CREATE FUNCTION @extschema@.migrate_add(
    version text, name text, up text,
    down text DEFAULT NULL, verify text DEFAULT NULL, expect jsonb DEFAULT NULL,
    requires text[] DEFAULT NULL, transactional boolean DEFAULT true)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_add' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_add_script(filename text, script text)
RETURNS TABLE (file text, version text, name text, kind text, part text, result text, detail text)
AS 'MODULE_PATHNAME', 'migrate_add_script' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_add_scripts(filenames text[], scripts text[])
RETURNS TABLE (file text, version text, name text, kind text, part text, result text, detail text)
AS 'MODULE_PATHNAME', 'migrate_add_scripts' LANGUAGE C VOLATILE;

-- Reads server files: superusers and pg_read_server_files members only (checked in C).
CREATE FUNCTION @extschema@.migrate_load(directory text)
RETURNS TABLE (file text, version text, name text, kind text, part text, result text, detail text)
AS 'MODULE_PATHNAME', 'migrate_load' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_apply(
    target text DEFAULT NULL, dry_run boolean DEFAULT false, out_of_order boolean DEFAULT false)
RETURNS TABLE (version text, name text, action text, duration interval, rows bigint, checks integer)
AS 'MODULE_PATHNAME', 'migrate_apply' LANGUAGE C VOLATILE;

-- Commits after each migration: a procedure, CALLed outside a transaction block.
CREATE PROCEDURE @extschema@.migrate_run(target text DEFAULT NULL, out_of_order boolean DEFAULT false)
AS 'MODULE_PATHNAME', 'migrate_run' LANGUAGE C;

CREATE FUNCTION @extschema@.migrate_rollback(target text)
RETURNS TABLE (version text, name text, action text, duration interval, rows bigint, checks integer)
AS 'MODULE_PATHNAME', 'migrate_rollback' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_baseline(version text)
RETURNS TABLE (version text, name text, action text)
AS 'MODULE_PATHNAME', 'migrate_baseline' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_repair(version text DEFAULT NULL, up text DEFAULT NULL)
RETURNS TABLE (version text, name text, action text, detail text)
AS 'MODULE_PATHNAME', 'migrate_repair' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_import_history(source text)
RETURNS TABLE (version text, name text, result text, detail text)
AS 'MODULE_PATHNAME', 'migrate_import_history' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_plan(target text DEFAULT NULL, out_of_order boolean DEFAULT false)
RETURNS TABLE (step integer, version text, name text, reason text)
AS 'MODULE_PATHNAME', 'migrate_plan' LANGUAGE C STABLE;

CREATE FUNCTION @extschema@.migrate_validate()
RETURNS TABLE (problem text, version text, name text, detail text)
AS 'MODULE_PATHNAME', 'migrate_validate' LANGUAGE C STABLE;

CREATE FUNCTION @extschema@.migrate_verify(version text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'migrate_verify' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_check(version text DEFAULT NULL)
RETURNS TABLE (version text, name text, "check" text, object text, ok boolean, sqlstate text, message text)
AS 'MODULE_PATHNAME', 'migrate_check' LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.migrate_checksum(script text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_checksum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION @extschema@.migrate_status()
RETURNS TABLE (version text, name text, kind text, state text, checksum text,
               applied_checksum text, applied_at timestamptz, applied_by name,
               transactional boolean, requires text[], notes text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
    SELECT version, name, kind, state, checksum, applied_checksum, applied_at, applied_by,
           transactional, requires, notes
      FROM migrate.status
     ORDER BY version_key
$$;

-- Privileges: nothing for PUBLIC (nor Supabase's API roles); the extension's
-- owner may execute everything, read the catalog, and grant both onward.
DO $$
DECLARE
    f pg_catalog.regprocedure;
    r pg_catalog.text;
BEGIN
    FOR f IN
        SELECT d.objid::pg_catalog.regprocedure
          FROM pg_catalog.pg_depend d
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid
           AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                  WHERE e.extname OPERATOR(pg_catalog.=) 'migrate')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
        FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
            IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
                EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM %I', f, r);
            END IF;
        END LOOP;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA migrate FROM %I', r);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA migrate FROM PUBLIC;
REVOKE ALL ON SCHEMA migrate FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    @extschema@.migrate_add(text, text, text, text, text, jsonb, text[], boolean),
    @extschema@.migrate_add_script(text, text),
    @extschema@.migrate_add_scripts(text[], text[]),
    @extschema@.migrate_load(text),
    @extschema@.migrate_apply(text, boolean, boolean),
    @extschema@.migrate_rollback(text),
    @extschema@.migrate_baseline(text),
    @extschema@.migrate_repair(text, text),
    @extschema@.migrate_import_history(text),
    @extschema@.migrate_plan(text, boolean),
    @extschema@.migrate_validate(),
    @extschema@.migrate_verify(text),
    @extschema@.migrate_check(text),
    @extschema@.migrate_checksum(text),
    @extschema@.migrate_version_key(text),
    @extschema@.migrate_status()
    TO @extowner@ WITH GRANT OPTION;
GRANT EXECUTE ON PROCEDURE @extschema@.migrate_run(text, boolean) TO @extowner@ WITH GRANT OPTION;
GRANT USAGE ON SCHEMA migrate TO @extowner@ WITH GRANT OPTION;
GRANT SELECT ON migrate.migrations, migrate.applied, migrate.history, migrate.status
    TO @extowner@ WITH GRANT OPTION;
