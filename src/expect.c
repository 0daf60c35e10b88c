/*
 * expect.c
 *		Row-count expectations: {"table": 150 | "+227" | "-3" | "="}.
 *		An exact count needs one count(*) after the migration; a delta or "="
 *		needs one before and one after.  A table that does not exist counts 0.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

#include "migrate.h"

static void
invalid_expectation(const char *table, const char *value, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid row count expectation for table \"%s\": %s", table, value),
			 errdetail("%s", why),
			 errhint("An expectation is a row count (150), a change against the count just before "
					 "the migration (\"+227\", \"-3\"), or \"=\" for a table that must not change.")));
}

/* Parse digits into a non-negative int64; false on anything else. */
static bool
parse_count(const char *s, int64 *out)
{
	int64		n = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++)
	{
		if (*s < '0' || *s > '9' || n > (PG_INT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (*s - '0');
	}
	*out = n;
	return true;
}

/* Table names may be qualified and quoted, as in SQL. */
static void
check_table_name(const char *table)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		ok = true;

	PG_TRY();
	{
		List	   *names = stringToQualifiedNameList(table);

		ok = list_length(names) >= 1 && list_length(names) <= 2;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	if (!ok)
		invalid_expectation(table, "(table name)",
							"The key is not a table name: write it as in SQL, table or schema.table.");
}

/* A JSON value that is not a number or a string, as JSON text. */
static char *
json_value_shown(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvBool:
			return v->val.boolean ? "true" : "false";
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return "(value)";
	}
}

List *
expect_parse(Jsonb *expect)
{
	List	   *result = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *table = NULL;

	if (expect == NULL)
		return NIL;
	if (!JB_ROOT_IS_OBJECT(expect) || JB_ROOT_IS_SCALAR(expect))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row count expectations must be a JSON object"),
				 errdetail("Got %s.", JsonbToCString(NULL, &expect->root, VARSIZE(expect))),
				 errhint("Write {\"table\": 150, \"other\": \"+227\", \"protected\": \"=\"}.")));

	it = JsonbIteratorInit(&expect->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Expectation *e;
		char	   *shown;

		if (tok == WJB_KEY)
		{
			table = pnstrdup(v.val.string.val, v.val.string.len);
			check_table_name(table);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;

		e = palloc0(sizeof(Expectation));
		e->table = table;
		e->before = -1;
		e->after = -1;
		if (v.type == jbvNumeric)
		{
			shown = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
			e->kind = EXPECT_EXACT;
			if (!parse_count(shown, &e->n))
				invalid_expectation(table, shown, "A row count must be a whole number, 0 or more.");
		}
		else if (v.type == jbvString)
		{
			char	   *s = pnstrdup(v.val.string.val, v.val.string.len);

			shown = psprintf("\"%s\"", s);
			if (strcmp(s, "=") == 0)
				e->kind = EXPECT_SAME;
			else if (s[0] == '+' || s[0] == '-')
			{
				e->kind = EXPECT_DELTA;
				if (!parse_count(s + 1, &e->n))
					invalid_expectation(table, shown, "A change is a sign followed by a whole number, such as \"+227\" or \"-3\".");
				if (s[0] == '-')
					e->n = -e->n;
			}
			else
			{
				e->kind = EXPECT_EXACT;
				if (!parse_count(s, &e->n))
					invalid_expectation(table, shown, "A string expectation is \"=\", a change such as \"+227\", or a row count.");
			}
		}
		else
		{
			shown = json_value_shown(&v);
			invalid_expectation(table, shown, "An expectation is a number or a string.");
		}
		result = lappend(result, e);
	}
	return result;
}

/* count(*) of a table as the caller sees it; 0 when it does not exist. */
static int64
count_rows(const char *table)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *names = stringToQualifiedNameList(table);
	RangeVar   *rv = makeRangeVarFromNameList(names);
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	char	   *sql;
	bool		isnull;
	int64		n;
	int			rc;

	if (!OidIsValid(relid))
		return 0;
	sql = psprintf("SELECT pg_catalog.count(*) FROM %s",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)));
	rc = SPI_execute(sql, false, 0);
	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count rows of \"%s\": %s", table, SPI_result_code_string(rc));
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

void
expect_count_before(List *expectations)
{
	ListCell   *lc;

	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);

		if (e->kind != EXPECT_EXACT)
			e->before = count_rows(e->table);
	}
}

static char *
expected_text(Expectation *e)
{
	switch (e->kind)
	{
		case EXPECT_EXACT:
			return psprintf(INT64_FORMAT, e->n);
		case EXPECT_DELTA:
			return psprintf("%s" INT64_FORMAT, e->n >= 0 ? "+" : "", e->n);
		case EXPECT_SAME:
			return "=";
	}
	return NULL;
}

int
expect_check_after(List *expectations, const char *version)
{
	ListCell   *lc;
	int			passed = 0;

	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);
		int64		want = 0;

		e->after = count_rows(e->table);
		switch (e->kind)
		{
			case EXPECT_EXACT:
				want = e->n;
				break;
			case EXPECT_DELTA:
				want = e->before + e->n;
				break;
			case EXPECT_SAME:
				want = e->before;
				break;
		}
		if (e->after != want)
			ereport(ERROR,
					(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
					 errmsg("row count expectation failed for table \"%s\": expected %s, found " INT64_FORMAT,
							e->table,
							e->kind == EXPECT_EXACT ? expected_text(e) :
							psprintf(INT64_FORMAT " (%s from " INT64_FORMAT ")", want,
									 e->kind == EXPECT_SAME ? "unchanged" : expected_text(e),
									 e->before),
							e->after),
					 errdetail("Migration %s expected %s in \"%s\"; the table had " INT64_FORMAT
							   " rows after it%s.",
							   version,
							   e->kind == EXPECT_SAME ? "the row count unchanged" :
							   e->kind == EXPECT_DELTA ? psprintf("a change of %s rows", expected_text(e)) :
							   psprintf("%s rows", expected_text(e)),
							   e->table, e->after,
							   e->before >= 0 ? psprintf(" and " INT64_FORMAT " before it", e->before) : ""),
					 errhint("The migration was rolled back. Correct the migration or its expectation, "
							 "register it again and rerun.")));
		passed++;
	}
	return passed;
}

/* {"table": {"expect": "+227", "before": 141, "after": 368}, ...} for history. */
char *
expect_counts_json(List *expectations)
{
	StringInfoData buf;
	ListCell   *lc;
	bool		first = true;

	if (expectations == NIL)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);

		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		escape_json(&buf, e->table);
		appendStringInfoString(&buf, ": {\"expect\": ");
		escape_json(&buf, expected_text(e));
		if (e->before >= 0)
			appendStringInfo(&buf, ", \"before\": " INT64_FORMAT, e->before);
		appendStringInfo(&buf, ", \"after\": " INT64_FORMAT "}", e->after);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}
