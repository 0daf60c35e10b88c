/*
 * register.c
 *		migrate_add(): register one migration.  The same text again is a
 *		no-op; new text for a pending migration replaces it (recorded in
 *		history); new text for an applied one is refused, since that is the
 *		drift users fear.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_add);

static char *
required_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of a migration must not be null", argname)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[strspn(s, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of a migration must not be empty", argname)));
	return s;
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
list_equal_strings(List *a, List *b)
{
	ListCell   *la,
			   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
		if (strcmp(lfirst(la), lfirst(lb)) != 0)
		return false;
	return true;
}

/* Parse a script at registration so that syntax errors show now, with the line. */
static void
check_script(const char *text, const char *what)
{
	Script	   *script = script_parse(text, what);

	for (int i = 0; i < script->nstmts; i++)
	{
		const char *reason = stmt_forbidden_reason(script->stmts[i].parsetree);

		if (reason)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s contains a statement that cannot run in a migration", what),
					 errdetail("Line %d: %s.", script->stmts[i].line, reason),
					 errhint("Remove BEGIN, COMMIT and ROLLBACK: migrate_apply() already runs all of it in one transaction.")));
	}
}

Datum
migrate_add(PG_FUNCTION_ARGS)
{
	char	   *version = required_text_arg(fcinfo, 0, "the version");
	char	   *name = required_text_arg(fcinfo, 1, "the name");
	char	   *up = required_text_arg(fcinfo, 2, "the up script");
	char	   *down = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *verify = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	Jsonb	   *expect = PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5);
	bool		transactional = PG_ARGISNULL(7) ? true : PG_GETARG_BOOL(7);
	Migration  *m = palloc0(sizeof(Migration));
	Migration  *old;
	Catalog    *cat;
	const char *action;

	m->version = version;
	m->key = version_key(version);
	m->name = name;
	m->up = up;
	m->down = down;
	m->verify = verify;
	m->transactional = transactional;
	m->checksum = script_checksum(up);

	check_script(up, psprintf("the up script of migration %s", version));
	if (down)
		check_script(down, psprintf("the down script of migration %s", version));
	if (verify)
		check_script(verify, psprintf("the verify query of migration %s", version));
	if (expect)
	{
		(void) expect_parse(expect);
		m->expect = JsonbToCString(NULL, &expect->root, VARSIZE(expect));
	}
	if (!PG_ARGISNULL(6))
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(6), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *r;

			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("requirements of migration %s must not contain null", version)));
			r = TextDatumGetCString(elems[i]);
			m->requires = lappend(m->requires, r);
			m->requires_keys = lappend(m->requires_keys, version_key(r));
		}
	}

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);
	old = catalog_find(cat, m->key);

	if (old && strcmp(old->version, version) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("version %s is already registered as %s", version, old->version),
				 errdetail("Leading zeros and trailing zero groups do not make a different version; \"%s\" is migration \"%s\".",
						   old->version, old->name),
				 errhint("Register it as %s to replace the pending migration, or choose another version.",
						 old->version)));
	if (old && strcmp(old->name, name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("version %s is already registered as migration \"%s\"", version, old->name),
				 errdetail("Two migrations cannot share a version: \"%s\" and \"%s\".", old->name, name),
				 errhint("Give the new migration its own version, or use the name \"%s\" to replace the pending one.",
						 old->name)));
	if (old && old->applied && strcmp(old->applied_checksum, m->checksum) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is already applied with different text", version),
				 errdetail("Applied checksum %s, new checksum %s.", old->applied_checksum, m->checksum),
				 errhint("Register a new migration for the change. If the edit of the applied script is intended, accept it with migrate_repair().")));

	plan_check_requirements(cat, m);

	if (old == NULL)
		action = "register";
	else if (strcmp(old->checksum, m->checksum) != 0)
		action = "replace";
	else if (!str_equal(old->down, down) || !str_equal(old->verify, verify) ||
			 !str_equal(old->expect, m->expect) || !list_equal_strings(old->requires, m->requires) ||
			 old->transactional != transactional)
		action = "update";
	else
		action = NULL;			/* identical: nothing to do */

	if (action)
	{
		Datum		values[11];
		char		nulls[11];

		memset(nulls, ' ', sizeof(nulls));
		values[0] = CStringGetTextDatum(m->key);
		values[1] = CStringGetTextDatum(version);
		values[2] = CStringGetTextDatum(name);
		values[3] = CStringGetTextDatum(up);
		values[4] = down ? CStringGetTextDatum(down) : (Datum) 0;
		nulls[4] = down ? ' ' : 'n';
		values[5] = verify ? CStringGetTextDatum(verify) : (Datum) 0;
		nulls[5] = verify ? ' ' : 'n';
		values[6] = m->expect ? CStringGetTextDatum(m->expect) : (Datum) 0;
		nulls[6] = m->expect ? ' ' : 'n';
		values[7] = PointerGetDatum(string_list_to_array(m->requires));
		values[8] = BoolGetDatum(transactional);
		values[9] = CStringGetTextDatum(m->checksum);
		values[10] = DirectFunctionCall1(namein, CStringGetDatum(current_user_name()));
		catalog_exec("INSERT INTO migrate.migrations (version_key, version, name, up, down, verify, "
					 "       expect, requires, transactional, checksum, registered_by) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11) "
					 "ON CONFLICT (version_key) DO UPDATE SET "
					 "  up = EXCLUDED.up, down = EXCLUDED.down, verify = EXCLUDED.verify, "
					 "  expect = EXCLUDED.expect, requires = EXCLUDED.requires, "
					 "  transactional = EXCLUDED.transactional, checksum = EXCLUDED.checksum, "
					 "  registered_by = EXCLUDED.registered_by, registered_at = pg_catalog.now()",
					 11, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
					 TEXTARRAYOID, BOOLOID, TEXTOID, NAMEOID},
					 values, nulls);
		catalog_history(version, m->key, name, action, m->checksum,
						old && strcmp(action, "replace") == 0
						? psprintf("{\"previous_checksum\": \"%s\"}", old->checksum) : NULL);
		catalog_mark_changed();
	}
	SPI_finish();
	/* m->checksum was computed before SPI_connect: it outlives SPI_finish */
	PG_RETURN_TEXT_P(cstring_to_text(m->checksum));
}
