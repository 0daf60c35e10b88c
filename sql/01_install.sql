--
-- 01_install: what CREATE EXTENSION migrate installs, its privileges, its
-- setting, and migrate_checksum().
--
CREATE EXTENSION migrate;

-- SQLSTATE and message of an error, to show error codes in this file
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- the extension: version, schema, trusted
SELECT e.extname, e.extversion, e.extnamespace::regnamespace AS schema, e.extrelocatable
  FROM pg_extension e WHERE e.extname = 'migrate';
SELECT a.name, a.default_version, a.installed_version, v.trusted, v.superuser, v.relocatable,
       v.schema, v.requires, a.comment
  FROM pg_available_extensions a
  JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
 WHERE a.name = 'migrate';

-- its functions with their argument lists and results
SELECT p.pronamespace::regnamespace AS schema, p.proname,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND d.deptype = 'e'
 ORDER BY p.proname;

-- volatility, strictness, security and language of each function
SELECT p.proname, p.provolatile, p.proisstrict, p.prosecdef, l.lanname, p.proparallel,
       p.proconfig
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND d.deptype = 'e'
 ORDER BY p.proname;

-- the catalog in schema migrate: tables, views, sequences, indexes
SELECT c.relname, c.relkind
  FROM pg_class c
 WHERE c.relnamespace = 'migrate'::regnamespace
 ORDER BY c.relname;

-- columns of the catalog tables and of the view
SELECT a.attrelid::regclass AS rel, a.attnum, a.attname,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
  FROM pg_attribute a
 WHERE a.attrelid IN ('migrate.migrations'::regclass, 'migrate.applied'::regclass,
                      'migrate.history'::regclass, 'migrate.catalog_lock'::regclass,
                      'migrate.status'::regclass)
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid::regclass::text, a.attnum;

-- the append-only triggers on migrate.history
SELECT tgname, tgrelid::regclass, tgfoid::regproc
  FROM pg_trigger WHERE tgrelid = 'migrate.history'::regclass AND NOT tgisinternal
 ORDER BY tgname;

-- EXECUTE is not granted to PUBLIC on any function of the extension
SELECT p.proname,
       EXISTS (SELECT FROM aclexplode(p.proacl) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute,
       (SELECT string_agg(a.grantee::regrole::text || ':' || a.privilege_type
                          || CASE WHEN a.is_grantable THEN ' (grantable)' ELSE '' END, ', ')
          FROM aclexplode(p.proacl) a) AS grants
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND d.deptype = 'e'
 ORDER BY p.proname;

-- a role without grants may execute none of them, nor read or use the catalog
CREATE ROLE regress_migrate_nobody;
SELECT p.proname,
       has_function_privilege('regress_migrate_nobody', p.oid, 'EXECUTE') AS nobody_execute,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
   AND d.deptype = 'e'
 ORDER BY p.proname;
SELECT has_schema_privilege('regress_migrate_nobody', 'migrate', 'USAGE') AS schema_usage;
SELECT c.relname,
       has_table_privilege('regress_migrate_nobody', c.oid, 'SELECT') AS nobody_select,
       has_table_privilege('regress_migrate_nobody', c.oid, 'INSERT') AS nobody_insert
  FROM pg_class c
 WHERE c.relnamespace = 'migrate'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname;
DROP ROLE regress_migrate_nobody;

-- the catalog tables are dumped with the database's data (pg_extension_config_dump)
SELECT unnest(extconfig::regclass[]) AS dumped, unnest(extcondition) AS condition
  FROM pg_extension WHERE extname = 'migrate';

-- the setting migrate.verify_constraints: default and allowed values
SELECT name, setting, boot_val, vartype, context, enumvals
  FROM pg_settings WHERE name = 'migrate.verify_constraints';
SHOW migrate.verify_constraints;
SET migrate.verify_constraints = 'all';
SHOW migrate.verify_constraints;
SET migrate.verify_constraints = 'off';
SHOW migrate.verify_constraints;
SET migrate.verify_constraints = 'bogus';
SELECT pg_temp.sqlstate_of($$SET migrate.verify_constraints = 'bogus'$$);
SET migrate.verify_constraints = '';
SHOW migrate.verify_constraints;
RESET migrate.verify_constraints;
SHOW migrate.verify_constraints;
-- the prefix is reserved: a misspelt setting is an error, not a placeholder
SET migrate.verify_constraint = 'all';
SELECT pg_temp.sqlstate_of($$SET migrate.verify_constraint = 'all'$$);

-- migrate_checksum(): SHA-256 of the text with CRLF/CR as LF and without a leading BOM
SELECT migrate_checksum(E'a\nb') AS lf;
SELECT migrate_checksum(E'a\r\nb') = migrate_checksum(E'a\nb') AS crlf_same,
       migrate_checksum(E'a\rb') = migrate_checksum(E'a\nb') AS cr_same,
       migrate_checksum(convert_from('\xefbbbf'::bytea, 'UTF8') || E'a\nb')
         = migrate_checksum(E'a\nb') AS bom_same,
       migrate_checksum(convert_from('\xefbbbf'::bytea, 'UTF8') || E'a\r\nb')
         = migrate_checksum(E'a\nb') AS bom_crlf_same;
-- different text, different checksum; blanks and trailing newlines count
SELECT migrate_checksum(E'a\nc') = migrate_checksum(E'a\nb') AS other_text_same,
       migrate_checksum(E'a\nb\n') = migrate_checksum(E'a\nb') AS trailing_lf_same,
       migrate_checksum(E'a\n\nb') = migrate_checksum(E'a\r\n\rb') AS cr_crlf_two_lines_same,
       migrate_checksum(E'a\n\nb') = migrate_checksum(E'a\r\nb') AS one_vs_two_lines_same,
       migrate_checksum('A') = migrate_checksum('a') AS case_same;
-- a BOM is removed only at the very start
SELECT migrate_checksum('x' || convert_from('\xefbbbf'::bytea, 'UTF8') || 'y')
         = migrate_checksum('xy') AS inner_bom_removed;
-- equal to sha256() of the normalised text
SELECT migrate_checksum('CREATE TABLE t (id int);')
         = encode(sha256(convert_to('CREATE TABLE t (id int);', 'UTF8')), 'hex') AS equals_sha256,
       migrate_checksum(E'SELECT 1;\r\nSELECT 2;\r\n')
         = encode(sha256(convert_to(E'SELECT 1;\nSELECT 2;\n', 'UTF8')), 'hex') AS crlf_equals_sha256_lf,
       migrate_checksum('') = encode(sha256(''::bytea), 'hex') AS empty_equals_sha256;
SELECT migrate_checksum('') AS empty, migrate_checksum('CREATE TABLE t (id int);') AS create_t;
-- strict: null in, null out
SELECT migrate_checksum(NULL) IS NULL AS null_is_null;
