/*
 * catalog.c
 *		The migrate.* catalog: read and written only here, as the catalog's
 *		owner with a pinned search_path, so that callers need no privilege on
 *		the tables and hostile objects in their search_path change nothing.
 *		Migration SQL itself never runs inside an OwnerScope.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "migrate.h"

static Oid
catalog_owner(void)
{
	Oid			nsp = get_namespace_oid("migrate", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("migrations", nsp) : InvalidOid;
	Oid			history = OidIsValid(nsp) ? get_relname_relid("history", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(rel) || !OidIsValid(history))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the migrate catalog is missing"),
				 errdetail("Table migrate.migrations or migrate.history does not exist."),
				 errhint("Run CREATE EXTENSION migrate, or ALTER EXTENSION migrate UPDATE.")));
	if (get_attnum(history, "hash") == InvalidAttrNumber || get_attnum(rel, "batch") == InvalidAttrNumber ||
		get_attnum(rel, "assert") == InvalidAttrNumber || get_attnum(rel, "drift") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the migrate catalog of this database is older than the migrate library"),
				 errdetail("The library is version %s; the catalog is an earlier version.", MIGRATE_VERSION),
				 errhint("Run ALTER EXTENSION migrate UPDATE as the extension's owner.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", rel);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

void
catalog_enter(OwnerScope *scope)
{
	Oid			owner = catalog_owner();

	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	scope->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/* catalog queries are short: compiling them would cost more than it saves */
	(void) set_config_option("jit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

void
catalog_leave(OwnerScope *scope)
{
	AtEOXact_GUC(true, scope->save_nestlevel);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Plans of catalog statements, kept for the session, found by their text (a
 * copy of it is kept: a caller's string may be freed and its address reused).
 * PostgreSQL's plan cache replans them after DDL on the catalog.  Writes
 * get a generic plan: a custom plan would copy every value into the plan
 * (twice, while it is made), a 50 MB script included, and the plan of an
 * INSERT or UPDATE by key does not depend on the values.
 */
#define MAX_CACHED_PLANS 64

static struct
{
	const char *sql;
	SPIPlanPtr	plan;
}			cached_plans[MAX_CACHED_PLANS];
static int	n_cached_plans = 0;

static SPIPlanPtr
catalog_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < n_cached_plans; i++)
		if (strcmp(cached_plans[i].sql, sql) == 0)
			return cached_plans[i].plan;
	plan = SPI_prepare_cursor(sql, nargs, argtypes,
							  (pg_strncasecmp(sql, "INSERT", 6) == 0 || pg_strncasecmp(sql, "UPDATE", 6) == 0)
							  ? CURSOR_OPT_GENERIC_PLAN : 0);
	if (plan == NULL)
		elog(ERROR, "could not prepare catalog query: %s: %s",
			 SPI_result_code_string(SPI_result), sql);
	if (n_cached_plans < MAX_CACHED_PLANS && SPI_keepplan(plan) == 0)
	{
		cached_plans[n_cached_plans].sql = MemoryContextStrdup(TopMemoryContext, sql);
		cached_plans[n_cached_plans].plan = plan;
		n_cached_plans++;
	}
	return plan;
}

/*
 * Run a catalog statement (a string constant) as the catalog's owner.
 * Never read_only: a read-only SPI query reuses the calling statement's
 * snapshot and would miss what the migration, or a session we waited for,
 * has written.
 */
int
catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
			 const char *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	OwnerScope	scope;
	int			rc;

	catalog_enter(&scope);
	rc = SPI_execute_plan(catalog_plan(sql, nargs, argtypes), values, nulls, false, 0);
	catalog_leave(&scope);
	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		elog(ERROR, "catalog query failed: %s: %s", SPI_result_code_string(rc), sql);
	return rc;
}

char *
current_user_name(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

/* The current user as a Datum of type name. */
static Datum
current_user_datum(void)
{
	return DirectFunctionCall1(namein, CStringGetDatum(current_user_name()));
}

/* Describe who holds the migration lock, for the error when we cannot get it. */
static char *
lock_holder_description(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *result = NULL;
	int			rc;

	rc = SPI_execute("SELECT pg_catalog.format('Process %s (role %s, application %s) holds it, in a transaction started at %s.', "
					 "       a.pid, pg_catalog.quote_ident(a.usename::pg_catalog.text), "
					 "       pg_catalog.quote_literal(a.application_name), a.xact_start) "
					 "  FROM pg_catalog.pg_locks l "
					 "  JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid "
					 " WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted "
					 "   AND l.mode OPERATOR(pg_catalog.=) 'ShareRowExclusiveLock' "
					 "   AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() "
					 "   AND l.relation OPERATOR(pg_catalog.=) "
					 "       (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE n.nspname OPERATOR(pg_catalog.=) 'migrate' AND c.relname OPERATOR(pg_catalog.=) 'catalog_lock')",
					 false, 1);
	MemoryContextSwitchTo(cxt);
	if (rc == SPI_OK_SELECT && SPI_processed > 0)
		result = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return result ? result : "Another session holds it.";
}

/*
 * Take the migration lock, waiting at most lock_timeout: a lock on the table
 * migrate.catalog_lock that conflicts with itself, which no role but the
 * catalog's owner can take (no advisory lock key that anyone could hold),
 * then lock its row.  Under REPEATABLE READ and SERIALIZABLE, locking that
 * row fails if another writer changed the catalog after our snapshot: we
 * must not plan from a stale view of what is applied.
 *
 * Runs in a subtransaction so that a failure can be reported with who holds
 * the lock (pl_exec.c's exception-block pattern).
 */
static void
lock_catalog_rows(void *arg)
{
	catalog_exec("LOCK TABLE migrate.catalog_lock IN SHARE ROW EXCLUSIVE MODE",
				 0, NULL, NULL, NULL);
	catalog_exec("SELECT 1 FROM migrate.catalog_lock WHERE id = 1 FOR UPDATE",
				 0, NULL, NULL, NULL);
}

void
catalog_lock(void)
{
	ErrorData  *edata = run_in_subtransaction(lock_catalog_rows, NULL, true);

	if (edata == NULL)
		return;
	if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not obtain the migration lock within lock_timeout (%s)",
						GetConfigOptionByName("lock_timeout", NULL, false)),
				 errdetail("%s", lock_holder_description()),
				 errhint("Wait for that session to finish, or raise lock_timeout, and run the command again.")));
	if (edata->sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the migration catalog changed after this transaction took its snapshot"),
				 errdetail("Another session registered or applied migrations and committed while this %s transaction waited for the migration lock.",
						   XactIsoLevel == XACT_SERIALIZABLE ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Run the command again in a new transaction; it will see what the other session did.")));
	ReThrowError(edata);
}

void
catalog_mark_changed(void)
{
	Datum		who = current_user_datum();

	catalog_exec("UPDATE migrate.catalog_lock SET changed_at = pg_catalog.now(), changed_by = $1 WHERE id = 1",
				 1, (Oid[]) {NAMEOID}, &who, NULL);
}

static char *
getstr(HeapTuple tup, TupleDesc desc, int col)
{
	return SPI_getvalue(tup, desc, col);
}

static bool
getbool(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

/* A text[] column as a List of C strings (NIL for NULL). */
static List *
gettextlist(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	if (isnull)
		return NIL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/* A JSON string literal. */
char *
quote_json(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

ArrayType *
oid_list_to_array(List *oids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

/* A top-level field of a JSON object as text (strings unquoted), or NULL. */
const char *
jsonb_field_text(Jsonb *jb, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(jb))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

ArrayType *
string_list_to_array(List *l)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(l), 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, l)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	return construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * Every registered migration in version order, with whether it is applied.
 * The up text is loaded only for pending ones when asked (apply needs it;
 * status-like callers over many applied migrations do not).
 */
Catalog *
catalog_load(bool with_up_of_pending)
{
	Catalog    *cat = palloc0(sizeof(Catalog));
	Datum		arg = BoolGetDatum(with_up_of_pending);
	TupleDesc	desc;

	catalog_exec("SELECT m.version, m.version_key, m.name, "
				 "       CASE WHEN $1 AND (a.version_key IS NULL OR a.checksum <> m.checksum) THEN m.up END, "
				 "       m.down, m.verify, m.expect::text, m.requires, m.transactional, m.checksum, "
				 "       a.version_key IS NOT NULL, a.checksum, a.touched, "
				 "       m.kind = 'repeatable', m.source, m.failure IS NOT NULL, m.notes, m.registered_by, "
				 "       m.batch::text, m.assert, m.drift, m.lines::text "
				 "  FROM migrate.migrations m "
				 "  LEFT JOIN migrate.applied a ON a.version_key = m.version_key "
				 " ORDER BY m.version_key",
				 1, (Oid[]) {BOOLOID}, &arg, NULL);
	desc = SPI_tuptable->tupdesc;
	cat->n = SPI_processed;
	cat->items = palloc0(sizeof(Migration *) * Max(cat->n, 1));
	for (int i = 0; i < cat->n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		Migration  *m = palloc0(sizeof(Migration));
		ListCell   *lc;

		m->version = getstr(tup, desc, 1);
		m->key = getstr(tup, desc, 2);
		m->name = getstr(tup, desc, 3);
		m->up = getstr(tup, desc, 4);
		m->down = getstr(tup, desc, 5);
		m->verify = getstr(tup, desc, 6);
		m->expect = getstr(tup, desc, 7);
		m->requires = gettextlist(tup, desc, 8);
		foreach(lc, m->requires)
			m->requires_keys = lappend(m->requires_keys, version_key(lfirst(lc)));
		m->transactional = getbool(tup, desc, 9);
		m->checksum = getstr(tup, desc, 10);
		m->applied = getbool(tup, desc, 11);
		m->applied_checksum = getstr(tup, desc, 12);
		m->touched = gettextlist(tup, desc, 13);
		m->repeatable = getbool(tup, desc, 14);
		m->source = getstr(tup, desc, 15);
		m->failed = getbool(tup, desc, 16);
		m->notes = gettextlist(tup, desc, 17);
		m->registered_by = getstr(tup, desc, 18);
		m->batch = getstr(tup, desc, 19);
		m->assertion = getstr(tup, desc, 20);
		m->drift = getstr(tup, desc, 21);
		m->lines = getstr(tup, desc, 22);
		cat->items[i] = m;
	}
	SPI_freetuptable(SPI_tuptable);

	catalog_exec("SELECT max(version_key) FROM migrate.applied WHERE version_key < '~'",
				 0, NULL, NULL, NULL);
	cat->newest_applied_key = getstr(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);
	return cat;
}

/* Index of a key by binary search (items are in key order), or -1. */
int
catalog_find_index(Catalog *cat, const char *key)
{
	int			lo = 0,
				hi = cat->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(cat->items[mid]->key, key);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

Migration *
catalog_find(Catalog *cat, const char *key)
{
	int			i = catalog_find_index(cat, key);

	return i < 0 ? NULL : cat->items[i];
}

/*
 * Record a successful apply (or baseline, import): the applied row, replaced
 * for a repeatable migration applied again, and its history entry.
 */
void
catalog_record_applied(Migration *m, ApplyRecord *rec)
{
	char		duration[64];
	Datum		values[13];
	char		nulls[13];

	snprintf(duration, sizeof(duration), "%.3f ms", rec->duration_ms);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(m->key);
	values[1] = CStringGetTextDatum(m->version);
	values[2] = CStringGetTextDatum(m->name);
	values[3] = CStringGetTextDatum(m->checksum);
	values[4] = current_user_datum();
	values[5] = PointerGetDatum(string_list_to_array(rec->touched));
	values[6] = CStringGetTextDatum(duration);
	values[7] = Int64GetDatum(rec->rows);
	values[8] = rec->counts ? CStringGetTextDatum(rec->counts) : (Datum) 0;
	nulls[8] = rec->counts ? ' ' : 'n';
	values[9] = Int32GetDatum(rec->checks);
	values[10] = CStringGetTextDatum(rec->action);
	values[11] = rec->detail ? CStringGetTextDatum(rec->detail) : (Datum) 0;
	nulls[11] = rec->detail ? ' ' : 'n';
	values[12] = PointerGetDatum(oid_list_to_array(rec->touched_oids));

	catalog_exec("WITH a AS (INSERT INTO migrate.applied "
				 "             (version_key, version, name, checksum, applied_by, touched, touched_tables) "
				 "           VALUES ($1, $2, $3, $4, $5, $6, $13::pg_catalog.regclass[]) "
				 "           ON CONFLICT (version_key) DO UPDATE SET checksum = EXCLUDED.checksum, "
				 "             applied_by = EXCLUDED.applied_by, applied_at = EXCLUDED.applied_at, "
				 "             touched = EXCLUDED.touched, touched_tables = EXCLUDED.touched_tables), "
				 "     f AS (UPDATE migrate.migrations SET failure = NULL "
				 "            WHERE version_key = $1 AND failure IS NOT NULL), "
				 /* whatever applied it, a job's checkpoint of it is over */
				 "     s AS (DELETE FROM migrate.statement_progress WHERE version_key = $1), "
				 "     b AS (DELETE FROM migrate.batch_progress WHERE version_key = $1) "
				 "INSERT INTO migrate.history (version, version_key, name, action, checksum, "
				 "       performed_by, duration, rows_affected, counts, checks, detail) "
				 "VALUES ($2, $1, $3, $11, $4, $5, $7::interval, $8, $9::jsonb, $10, $12::jsonb)",
				 13, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID, TEXTARRAYOID,
				 TEXTOID, INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, OIDARRAYOID},
				 values, nulls);
}

/* Append a history row for a registration-side action. */
void
catalog_history(const char *version, const char *key, const char *name,
				const char *action, const char *checksum, const char *detail_json)
{
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(version);
	values[1] = CStringGetTextDatum(key);
	values[2] = CStringGetTextDatum(name);
	values[3] = CStringGetTextDatum(action);
	values[4] = checksum ? CStringGetTextDatum(checksum) : (Datum) 0;
	nulls[4] = checksum ? ' ' : 'n';
	values[5] = detail_json ? CStringGetTextDatum(detail_json) : (Datum) 0;
	nulls[5] = detail_json ? ' ' : 'n';
	values[6] = current_user_datum();
	catalog_exec("INSERT INTO migrate.history (version, version_key, name, action, checksum, "
				 "       performed_by, detail) "
				 "VALUES ($1, $2, $3, $4, $5, $7, $6::jsonb)",
				 7, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID},
				 values, nulls);
}
