/*
 * import.c
 *		Adopting the histories of other tools, so that moving to migrate loses
 *		nothing: migrate_import_history() reads the table of Supabase CLI
 *		(supabase_migrations.schema_migrations), Flyway
 *		(flyway_schema_history), dbmate or golang-migrate (schema_migrations)
 *		and marks applied what it records.  The table is found, and trusted or
 *		refused (42501), as tool_histories.c finds the tables it keeps in step.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_import_history);

/* A version another tool recorded as applied. */
typedef struct ForeignVersion
{
	char	   *version;
	char	   *name;
} ForeignVersion;

/*
 * The tool's table, locked for reading; only a trusted one (see
 * foreign_history_trusted): what it says decides what is marked applied, and
 * reading it (a view, a policy) may run code with the caller's rights.
 */
static Oid
require_table(const char *qualified, const char *tool)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(qualified));
	char	   *detail;
	char	   *hint;
	Oid			relid = foreign_history_open(rv, AccessShareLock, &detail, &hint);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s's history table %s does not exist", tool, qualified),
				 errhint("Connect to the database %s migrated, with its schema in search_path.", tool)));
	if (detail != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("refusing to read %s's history table %s", tool, qualified_table(relid)),
				 errdetail_internal("%s", detail),
				 errhint("%s", hint)));
	return relid;
}

/* Rows of a query on the other tool's table, as ForeignVersions. */
static List *
foreign_versions(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *result = NIL;
	int			rc = SPI_execute(sql, true, 0);

	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "history query failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		ForeignVersion *fv = palloc0(sizeof(ForeignVersion));

		fv->version = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		fv->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		if (fv->version)
			result = lappend(result, fv);
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

static void
put_import_row(ReturnSetInfo *rsinfo, const char *version, const char *name,
			   const char *result, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, name == NULL, false, detail == NULL};

	values[0] = CStringGetTextDatum(version);
	values[1] = name ? CStringGetTextDatum(name) : (Datum) 0;
	values[2] = CStringGetTextDatum(result);
	values[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Mark a registered migration applied by another tool. */
static void
import_one(ReturnSetInfo *rsinfo, Migration *m, const char *tool, const char *theirs)
{
	ApplyRecord rec = {0};

	if (m->applied)
	{
		put_import_row(rsinfo, m->version, m->name, "already applied", NULL);
		return;
	}
	rec.action = "import";
	rec.detail = psprintf("{\"source\": %s, \"as\": %s}",
						  quote_json(tool), quote_json(theirs));
	catalog_record_applied(m, &rec);
	histories_record_apply(m, NULL, 0, tool);
	put_import_row(rsinfo, m->version, m->name, "imported",
				   psprintf("recorded by %s as %s", tool, theirs));
}

/* Supabase CLI's applied versions, with their names. */
static List *
supabase_versions(void)
{
	Oid			relid = require_table("supabase_migrations.schema_migrations", "Supabase CLI");

	return foreign_versions(psprintf("SELECT version, name FROM ONLY %s ORDER BY version",
									 qualified_table(relid)));
}

/*
 * Flyway's applied versions, with their descriptions.  The latest row of each
 * version decides (a later UNDO or DELETE row takes it back); repeatable rows
 * (no version) go by description.  Flyway's own rows (schema creation,
 * baseline markers) are not migrations.
 */
static List *
flyway_versions(void)
{
	Oid			relid = require_table("flyway_schema_history", "Flyway");

	return foreign_versions(psprintf(
		"SELECT v, description FROM ("
		"  SELECT DISTINCT ON (v) v, description, type, success, installed_rank FROM ("
		"    SELECT coalesce(version, 'R__' OPERATOR(pg_catalog.||) "
		"                    pg_catalog.replace(description, ' ', '_')) AS v, * "
		"      FROM ONLY %s "
		"     WHERE type OPERATOR(pg_catalog.~~) ANY (ARRAY['SQL', 'JDBC', 'SPRING_JDBC', 'SCRIPT', "
		"                                                   'UNDO_%%', 'DELETE'])) r "
		"   ORDER BY v, installed_rank DESC) latest "
		" WHERE success AND type OPERATOR(pg_catalog.!~~) 'UNDO_%%' "
		"   AND type OPERATOR(pg_catalog.<>) 'DELETE' "
		" ORDER BY installed_rank",
		qualified_table(relid)));
}

/* dbmate's applied versions (no names); golang-migrate's table is refused. */
static List *
dbmate_versions(void)
{
	Oid			relid = require_table("schema_migrations", "dbmate");

	if (has_column(relid, "dirty"))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("schema_migrations has a \"dirty\" column: it is golang-migrate's, not dbmate's"),
				 errhint("Call migrate_import_history('golang-migrate').")));
	return foreign_versions(psprintf("SELECT version::pg_catalog.text, NULL FROM ONLY %s ORDER BY 1",
									 qualified_table(relid)));
}

/*
 * golang-migrate's current version (it keeps one row: the version, and
 * whether it is dirty), or NULL when it records none.  A dirty one is
 * refused; dbmate's table is refused.
 */
static char *
golang_current_version(void)
{
	Oid			relid = require_table("schema_migrations", "golang-migrate");
	char	   *table = qualified_table(relid);
	MemoryContext cxt = CurrentMemoryContext;
	char	   *version = NULL;

	if (!has_column(relid, "dirty"))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("schema_migrations has no \"dirty\" column: it is not golang-migrate's"),
				 errhint("For dbmate's table, call migrate_import_history('dbmate').")));
	if (SPI_execute(psprintf("SELECT version::pg_catalog.text, dirty FROM ONLY %s", table), true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", table);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed > 0)
	{
		bool		isnull;

		version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("golang-migrate left version %s dirty", version),
					 errdetail("A dirty version failed half way; what it changed is unknown."),
					 errhint("Fix the database by hand, set dirty = false in %s, then import.", table)));
	}
	return version;
}

/*
 * Import every registered versioned migration up to golang-migrate's current
 * version (key: its order key), and report that version if it is not
 * registered.  Returns whether anything was newly marked applied.
 */
static bool
import_up_to(ReturnSetInfo *rsinfo, Catalog *cat, const char *version, const char *key)
{
	bool		changed = false;

	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		if (!m->repeatable && strcmp(m->key, key) <= 0)
		{
			changed |= !m->applied;
			import_one(rsinfo, m, "golang-migrate", psprintf("at or before version %s", version));
		}
	}
	if (catalog_find(cat, key) == NULL)
		put_import_row(rsinfo, version, NULL, "not registered",
					   "golang-migrate's current version is not registered");
	return changed;
}

/*
 * Import the registered migrations among the versions the tool lists, and
 * report the others.  Returns whether anything was newly marked applied.
 */
static bool
import_listed(ReturnSetInfo *rsinfo, Catalog *cat, const char *source, List *theirs)
{
	bool		changed = false;
	ListCell   *lc;

	foreach(lc, theirs)
	{
		ForeignVersion *fv = lfirst(lc);
		char	   *key = migration_key_or_null(fv->version);
		Migration  *m = key ? catalog_find(cat, key) : NULL;

		if (m == NULL)
			put_import_row(rsinfo, fv->version, fv->name, "not registered",
						   key ? "register its file, then import again" : "not a version migrate understands");
		else
		{
			changed |= !m->applied;
			import_one(rsinfo, m, source, fv->version);
			m->applied = true;	/* a version listed twice is imported once */
		}
	}
	return changed;
}

/*
 * migrate_import_history(source): registered versions that the tool's table
 * records as applied become applied here (history action "import"), without
 * running; versions it records that are not registered are reported.
 */
Datum
migrate_import_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *source;
	List	   *theirs = NIL;
	char	   *golang_key = NULL;
	char	   *golang_version = NULL;
	Catalog    *cat;
	bool		changed = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the source of the history must not be null")));
	source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();

	if (strcmp(source, "supabase") == 0)
		theirs = supabase_versions();
	else if (strcmp(source, "flyway") == 0)
		theirs = flyway_versions();
	else if (strcmp(source, "dbmate") == 0)
		theirs = dbmate_versions();
	else if (strcmp(source, "golang-migrate") == 0)
	{
		golang_version = golang_current_version();
		if (golang_version)
			golang_key = version_key(golang_version);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown history source \"%s\"", source),
				 errhint("Sources are supabase, flyway, dbmate and golang-migrate.")));

	catalog_lock();
	cat = catalog_load(false);
	if (golang_key)
		changed |= import_up_to(rsinfo, cat, golang_version, golang_key);
	changed |= import_listed(rsinfo, cat, source, theirs);
	if (changed)
		catalog_mark_changed();
	SPI_finish();
	return (Datum) 0;
}
