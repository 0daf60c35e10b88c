-- migrate 0.4.0 -> 0.5.0: drift as a state, and files' own line numbers.
\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit

-- As the earlier scripts, this runs as the bootstrap superuser for a trusted
-- extension: every operator, function and table below is qualified.

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
