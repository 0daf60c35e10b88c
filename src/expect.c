/*
 * expect.c
 *		Row-count expectations: {"table": 150 | "+227" | "-3" | "="}.
 *		An exact count needs one count(*) after the migration; a delta one
 *		before and one after.  An unchanged ("=") table usually needs none:
 *		the transaction's statistics prove that no row was inserted or
 *		deleted.  A table that does not exist counts 0.
 *
 *		A name means one table for the whole check: it is resolved before the
 *		migration with the caller's search_path, whatever the migration sets.
 *		Before and after are compared only where other sessions' writes
 *		cannot fall between them: under READ COMMITTED the tables of changes
 *		and "=" are locked in SHARE mode; under REPEATABLE READ both counts
 *		come from the transaction's snapshot.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/acl.h"
#include "catalog/objectaddress.h"
#include "miscadmin.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "pgstat.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/varlena.h"

#include "migrate.h"

static char *expected_text(Expectation *e);

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
	char	   *raw = pstrdup(table);
	List	   *names = NIL;
	bool		ok;

	/* a reason, not an error: SplitIdentifierString() never throws */
	ok = SplitIdentifierString(raw, '.', &names) && list_length(names) >= 1 && list_length(names) <= 2;
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

/* An expectation's name as a RangeVar (checked by expect_parse). */
static RangeVar *
expectation_rangevar(const char *table)
{
	return makeRangeVarFromNameList(stringToQualifiedNameList(table));
}

/*
 * Before an expectation's table is locked: the caller needs the right to
 * read it and, for the SHARE lock of READ COMMITTED, the right LOCK TABLE
 * ... IN SHARE MODE asks for, since that lock holds other writers back until
 * the transaction ends.  (RangeVarGetRelidExtended's callback.)
 */
static void
check_expectation_rights(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	Expectation *e = arg;

	if (!OidIsValid(relid))
		return;
	/* counted or not, an expectation is checked with the caller's rights */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	if (e->kind != EXPECT_EXACT && !IsolationUsesXactSnapshot() &&
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to lock table \"%s\" for its row count expectation", e->table),
				 errdetail("Under READ COMMITTED, a \"%s\" expectation locks its table in SHARE mode until "
						   "the transaction ends, which needs UPDATE, DELETE or TRUNCATE on it, as LOCK TABLE does.",
						   e->kind == EXPECT_SAME ? "=" : "+n"),
				 errhint("Apply under REPEATABLE READ, where the counts come from the transaction's snapshot "
						 "and no lock is taken, or expect an exact count.")));
}

/*
 * Resolve an expectation's name before the migration, and under READ
 * COMMITTED lock the table of a change or "=" expectation in SHARE mode:
 * other sessions' writes then cannot fall between the counts before and
 * after (they wait for this transaction; it waits at most lock_timeout for
 * theirs).  Under REPEATABLE READ or SERIALIZABLE every count comes from the
 * transaction's snapshot, which leaves other sessions' commits out of both.
 */
static void
resolve_before(Expectation *e, const char *version)
{
	RangeVar   *rv = expectation_rangevar(e->table);
	bool		share = e->kind != EXPECT_EXACT && !IsolationUsesXactSnapshot();
	/* an exact count is taken after the migration only: nothing to hold now */
	LOCKMODE	mode = share ? ShareLock : e->kind == EXPECT_EXACT ? NoLock : AccessShareLock;
	MemoryContext cxt = CurrentMemoryContext;

	e->relname = rv->relname;
	PG_TRY();
	{
		e->relid = RangeVarGetRelidExtended(rv, mode, RVR_MISSING_OK, check_expectation_rights, e);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (!share || edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not lock table \"%s\" for its row count expectation within lock_timeout (%s)",
						e->table, GetConfigOptionByName("lock_timeout", NULL, false)),
				 errdetail("Migration %s expects \"%s\" of it; under READ COMMITTED the table is locked in "
						   "SHARE mode from the count before the migration to the end of the transaction, "
						   "and another session is writing it.", version, expected_text(e)),
				 errhint("%s. Rerun when that session is done, raise lock_timeout, or apply under "
						 "REPEATABLE READ, which takes no such lock.", nothing_kept_text())));
	}
	PG_END_TRY();
	e->existed = OidIsValid(e->relid);
	if (e->existed)
		e->nspid = get_rel_namespace(e->relid);
	else if (rv->schemaname == NULL)
		e->search_path = pstrdup(namespace_search_path);
}

/*
 * What the name means after the migration, found once: the table of that
 * name in the schema it was found in before; for a table that did not exist,
 * the name looked up as it was written, with the search_path of before.
 */
static Oid
resolve_after(Expectation *e)
{
	RangeVar   *rv;
	int			level;
	Oid			relid;

	if (OidIsValid(e->nspid))
		return get_relname_relid(e->relname, e->nspid);
	rv = expectation_rangevar(e->table);
	if (e->search_path == NULL)
		return RangeVarGetRelid(rv, NoLock, true);
	level = NewGUCNestLevel();
	(void) set_config_option("search_path", e->search_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	relid = RangeVarGetRelid(rv, NoLock, true);
	AtEOXact_GUC(true, level);
	return relid;
}

/*
 * Whether a TRUNCATE could empty the table's file in place, keeping its
 * relfilenode, which a snapshot taken before cannot see: it was created, or
 * given a new file, in this transaction.
 */
static bool
truncates_in_place(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	bool		result;

	if (!RelationIsValid(rel))
		return false;
	result = rel->rd_createSubid != InvalidSubTransactionId ||
		rel->rd_newRelfilenodeSubid != InvalidSubTransactionId ||
		rel->rd_firstRelfilenodeSubid != InvalidSubTransactionId;
	RelationClose(rel);
	return result;
}

/*
 * count(*) of a table as the caller sees it, through `snapshot` if given (a
 * snapshot taken before the migration sees the table as it was then).
 */
static int64
count_rows(Oid relid, Snapshot snapshot)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *sql = psprintf("SELECT pg_catalog.count(*) FROM %s",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														  get_rel_name(relid)));
	/* a count of a big table is what parallel workers are for */
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, 0, NULL, CURSOR_OPT_PARALLEL_OK);
	bool		isnull;
	int64		n;
	int			rc;

	if (plan == NULL)
		elog(ERROR, "could not prepare %s: %s", sql, SPI_result_code_string(SPI_result));
	rc = snapshot ? SPI_execute_snapshot(plan, NULL, NULL, snapshot, InvalidSnapshot, true, false, 0)
		: SPI_execute_plan(plan, NULL, NULL, false, 0);
	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count rows of %s: %s", sql, SPI_result_code_string(rc));
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	SPI_freeplan(plan);
	return n;
}

/*
 * Whether this transaction's statistics of a plain table can prove that no
 * row was inserted or deleted: they count every insert and delete of the
 * table itself (not of partitions or children) when track_counts is on.
 */
static bool
stats_can_prove(Oid relid)
{
	return pgstat_track_counts && get_rel_relkind(relid) == RELKIND_RELATION &&
		!has_subclass(relid);
}

/* The file of a table: a TRUNCATE or a rewrite gives it a new one. */
static Oid
relation_file(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			file;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	file = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
	ReleaseSysCache(tup);
	return file;
}

static void
xact_counts(Oid relid, int64 *inserted, int64 *deleted)
{
	*inserted = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_inserted, ObjectIdGetDatum(relid)));
	*deleted = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted, ObjectIdGetDatum(relid)));
}

/*
 * Whether this (sub)transaction level's statistics of a table say that it
 * was truncated at this level: where a TRUNCATE empties a file in place.
 */
static bool
truncated_at_this_level(Oid relid)
{
	PgStat_TableStatus *tab = find_tabstat_entry(relid);
	int			level = GetCurrentTransactionNestLevel();

	for (PgStat_TableXactStatus *t = tab ? tab->trans : NULL; t; t = t->upper)
		if (t->nest_level == level)
			return t->truncdropped;
	return false;
}

/*
 * A registered copy of a snapshot, frozen as it is now.  Under REPEATABLE
 * READ the transaction's snapshot is registered already and its command id
 * moves on with each statement: registered again, it would see the
 * migration's own rows.
 */
static Snapshot
snapshot_kept(Snapshot snapshot)
{
	Snapshot	copy;

	PushCopiedSnapshot(snapshot);
	copy = RegisterSnapshot(GetActiveSnapshot());
	PopActiveSnapshot();
	return copy;
}

/*
 * Before the migration.  Every name is resolved (and, under READ COMMITTED,
 * the tables of changes and "=" are locked; see resolve_before).  An exact
 * count needs nothing more now.  A change needs the count before.  An
 * unchanged ("=") table is not counted: its statistics and file are noted,
 * and a snapshot is kept in case they show a change; it is counted now when
 * it is in `written` (tables the statements may truncate, rewrite or
 * replace) or when a TRUNCATE could empty its file in place, which no
 * snapshot sees.
 */
void
expect_count_before(List *expectations, List *written, const char *version)
{
	ListCell   *lc;
	Snapshot	snapshot = NULL;

	foreach(lc, expectations)
		resolve_before(lfirst(lc), version);

	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);

		if (e->kind == EXPECT_EXACT)
			continue;
		if (!e->existed)
			e->before = 0;
		else if (e->kind == EXPECT_DELTA || list_member_oid(written, e->relid) ||
				 !stats_can_prove(e->relid) ||
				 (truncates_in_place(e->relid) && truncated_at_this_level(e->relid)))
			e->before = count_rows(e->relid, NULL);
		else
		{
			e->deferred = true;
			e->in_place = truncates_in_place(e->relid);
			e->relfilenode = relation_file(e->relid);
			xact_counts(e->relid, &e->inserted, &e->deleted);
			/*
			 * The snapshot a count would use now: the transaction's under
			 * REPEATABLE READ (the one "after" is counted with), a new one
			 * under READ COMMITTED, taken after the locks above.
			 */
			if (snapshot == NULL)
			{
				CommandCounterIncrement();
				snapshot = snapshot_kept(GetTransactionSnapshot());
				e->snapshot = snapshot;
			}
			else
				e->snapshot = RegisterSnapshot(snapshot);
		}
	}
}

/* Settle a deferred "=" expectation: proven by statistics, or counted both ways. */
static void
settle_deferred(Expectation *e, const char *version)
{
	Oid			relid = e->relid_after;
	int64		inserted,
				deleted;

	/*
	 * A TRUNCATE that kept the file (of a table created or given a new file
	 * at this level) shows only in the statistics: its counts start again
	 * from 0, so they cannot prove anything, and the snapshot of before sees
	 * the emptied file.
	 */
	if (relid == e->relid && relation_file(relid) == e->relfilenode &&
		!(e->in_place && truncated_at_this_level(relid)))
	{
		xact_counts(relid, &inserted, &deleted);
		if (inserted == e->inserted && deleted == e->deleted)
		{
			e->proven = true;	/* no row inserted or deleted: unchanged */
			return;
		}
		e->before = count_rows(relid, e->snapshot);
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot check the unchanged row count of table \"%s\"", e->table),
			 errdetail("Migration %s dropped, truncated or rewrote it through statements migrate could not see (in a function or a DO block).",
					   version),
			 errhint("Expect an exact count for this table instead of \"=\".")));
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

		e->relid_after = resolve_after(e);
		if (e->deferred)
		{
			settle_deferred(e, version);
			if (e->proven)
			{
				passed++;
				continue;
			}
		}
		e->after = OidIsValid(e->relid_after) ? count_rows(e->relid_after, NULL) : 0;
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
	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);

		if (e->snapshot)
			UnregisterSnapshot(e->snapshot);
		e->snapshot = NULL;
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
		if (e->proven)
		{
			appendStringInfoString(&buf, ", \"unchanged\": \"no row inserted or deleted\"}");
			continue;
		}
		if (e->before >= 0)
			appendStringInfo(&buf, ", \"before\": " INT64_FORMAT, e->before);
		appendStringInfo(&buf, ", \"after\": " INT64_FORMAT "}", e->after);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Batched migrations: their batches commit one by one, so "before" is the
 * count when the migration started, kept in its checkpoint.  Count every
 * table of a "+N" or "=" expectation now (-1 for "exact" ones); later,
 * resolve the names again and take those counts as "before" (NULL in
 * counts: count now, for an expectation registered since).
 */
List *
expect_count_all(List *expectations, const char *version)
{
	List	   *counts = NIL;
	ListCell   *lc;

	foreach(lc, expectations)
	{
		Expectation *e = lfirst(lc);

		resolve_before(e, version);
		if (e->kind == EXPECT_EXACT)
			e->before = -1;
		else
			e->before = e->existed ? count_rows(e->relid, NULL) : 0;
		counts = lappend(counts, psprintf(INT64_FORMAT, e->before));
	}
	return counts;
}

void
expect_restore_before(List *expectations, List *counts, const char *version)
{
	ListCell   *lc;
	ListCell   *lcount;

	forboth(lc, expectations, lcount, counts)
	{
		Expectation *e = lfirst(lc);

		resolve_before(e, version);
		if (lfirst(lcount) != NULL)
			e->before = strtoi64(lfirst(lcount), NULL, 10);
		else if (e->kind == EXPECT_EXACT)
			e->before = -1;
		else
			e->before = e->existed ? count_rows(e->relid, NULL) : 0;
	}
}
