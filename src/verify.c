/*
 * verify.c
 *		Checks that a migration did what it claims: its verify query, and the
 *		FOREIGN KEY and CHECK constraints and index validity of the tables it
 *		wrote or altered, re-checked with plain queries so that NOT VALID
 *		constraints and rows written with triggers disabled are covered too.
 *		migrate_verify() and migrate_check() re-run them on applied migrations.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_verify);
PG_FUNCTION_INFO_V1(migrate_check);

#define MAX_SHOWN_KEYS 5

/* ---- touched tables ---- */

List *
touched_add(List *reloids, Oid relid)
{
	reloids = list_append_unique_oid(reloids, relid);
	if (get_rel_relispartition(relid))
	{
		ListCell   *lc;

		foreach(lc, get_partition_ancestors(relid))
			reloids = list_append_unique_oid(reloids, lfirst_oid(lc));
	}
	return reloids;
}

/* Qualified names of relations that still exist, for the catalog. */
List *
touched_names(List *reloids)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, reloids)
	{
		Oid			relid = lfirst_oid(lc);
		char	   *rel = get_rel_name(relid);

		if (rel)
			names = lappend(names,
							quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel));
	}
	return names;
}

/* The relations that still exist, in order (parallel to touched_names()). */
List *
touched_existing(List *reloids)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, reloids)
		if (get_rel_name(lfirst_oid(lc)) != NULL)
			result = lappend_oid(result, lfirst_oid(lc));
	return result;
}

/* ---- constraint checks ---- */


/*
 * Run a query that reads pg_catalog and returns one oid column.  It runs
 * through catalog_exec() for its pinned search_path: look-alike operators in
 * the caller's search_path must not change what is checked.
 */
static List *
oid_query(const char *sql, List *reloids)
{
	Datum		arg = PointerGetDatum(oid_list_to_array(reloids));
	List	   *result = NIL;

	catalog_exec(sql, 1, (Oid[]) {OIDARRAYOID}, &arg, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result = lappend_oid(result,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/*
 * FOREIGN KEY and CHECK constraints to re-check: those on the given tables
 * and the foreign keys that reference them (a deleted parent row breaks the
 * child's key), or every one in the database when `all`.  Partitions' copies
 * of a parent's foreign key are covered by the parent's.
 */
static List *
constraints_to_check(List *reloids, bool all)
{
	if (all)
		return oid_query("SELECT c.oid FROM pg_catalog.pg_constraint c "
						 "  JOIN pg_catalog.pg_class r ON r.oid = c.conrelid "
						 "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace "
						 " WHERE c.contype IN ('f', 'c') AND c.conparentid = 0 "
						 "   AND r.relkind IN ('r', 'p') AND $1 IS NOT NULL "
						 "   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'migrate') "
						 "   AND n.nspname NOT LIKE 'pg\\_toast%' "
						 "   AND (r.relpersistence <> 't' OR n.oid = pg_my_temp_schema()) "
						 " ORDER BY c.conrelid, c.conname", reloids);
	if (reloids == NIL)
		return NIL;
	return oid_query("SELECT c.oid FROM pg_catalog.pg_constraint c "
					 " WHERE c.contype IN ('f', 'c') AND c.conparentid = 0 "
					 "   AND (c.conrelid = ANY ($1) OR (c.contype = 'f' AND c.confrelid = ANY ($1))) "
					 " ORDER BY c.conrelid, c.conname", reloids);
}

/* The elements of an array column of a pg_constraint tuple (int2[] or oid[]). */
static void *
constraint_array(HeapTuple tup, AttrNumber att, int *n)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(CONSTROID, tup, att, &isnull);
	ArrayType  *arr;

	if (isnull)
		elog(ERROR, "null array in constraint");
	arr = DatumGetArrayTypeP(d);
	*n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	return ARR_DATA_PTR(arr);
}

static char *
qualified_rel(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* "ONLY t" for plain tables, "t" for partitioned ones (rows live in partitions). */
static char *
scan_target(Oid relid)
{
	return psprintf("%s%s", get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
					qualified_rel(relid));
}

static char *
qualified_operator(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/* Columns that identify a row of relid in messages: its primary key, or ctid. */
static List *
row_identity_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	List	   *cols = NIL;

	if (OidIsValid(pk))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
		Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);

		for (int i = 0; i < idx->indnkeyatts; i++)
			cols = lappend(cols, get_attname(relid, idx->indkey.values[i], false));
		ReleaseSysCache(tup);
	}
	table_close(rel, AccessShareLock);
	if (cols == NIL)
		cols = list_make1("ctid");
	return cols;
}

/* Run a violation query; return "(a, b)=(1, 2), ..." for up to 5 rows, or NULL. */
static char *
offending_keys(const char *sql, List *colnames)
{
	MemoryContext cxt = CurrentMemoryContext;
	StringInfoData buf;
	StringInfoData names;
	ListCell   *lc;
	int			rc;
	int			save_nestlevel;

	/* rows hidden by row-level security must not hide a violation: fail loudly instead */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* the memory PostgreSQL's own VALIDATE CONSTRAINT gives its anti-join */
	(void) set_config_option("work_mem", psprintf("%d", maintenance_work_mem),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/*
	 * The LIMIT is in the query, not a tuple count for SPI: with a count
	 * the executor would not start parallel workers.
	 */
	rc = SPI_execute(psprintf("%s LIMIT %d", sql, MAX_SHOWN_KEYS), false, 0);
	AtEOXact_GUC(true, save_nestlevel);
	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "constraint check query failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return NULL;
	}

	initStringInfo(&names);
	foreach(lc, colnames)
		appendStringInfo(&names, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_identifier(lfirst(lc)));
	initStringInfo(&buf);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		appendStringInfo(&buf, "%s(%s)=(", r > 0 ? ", " : "", names.data);
		for (int c = 1; c <= SPI_tuptable->tupdesc->natts; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c);

			appendStringInfo(&buf, "%s%s", c > 1 ? ", " : "", v ? v : "null");
		}
		appendStringInfoChar(&buf, ')');
	}
	SPI_freetuptable(SPI_tuptable);
	return buf.data;
}

/*
 * Code that belongs to a table (its CHECK expressions, the equality operators
 * of its foreign keys) runs as the table's owner in a security-restricted
 * operation, with search_path pinned, as VACUUM and ANALYZE run index and
 * constraint code: never with the rights of whoever asked for the check.
 */
typedef struct AsOwner
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} AsOwner;

static Oid
rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

static void
as_owner_enter(AsOwner *scope, Oid owner)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION | SECURITY_NOFORCE_RLS);
	scope->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

static void
as_owner_leave(AsOwner *scope)
{
	/* what the table's code set is not kept (as PostgreSQL's own checks do) */
	AtEOXact_GUC(false, scope->save_nestlevel);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Whether re-checking a foreign key runs no code but PostgreSQL's own: its
 * equality operators are built in, over built-in types (or domains over them,
 * or enums).  A scan runs no user code; row-level security is off for it.
 */
static bool
foreign_key_runs_builtin_code_only(HeapTuple tup, Form_pg_constraint con)
{
	int			nop;
	int			nkey;
	Oid		   *ops = constraint_array(tup, Anum_pg_constraint_conpfeqop, &nop);
	int16	   *keys = constraint_array(tup, Anum_pg_constraint_conkey, &nkey);

	for (int i = 0; i < nop; i++)
		if (ops[i] >= FirstNormalObjectId)
			return false;
	for (int i = 0; i < nkey; i++)
	{
		Oid			type = getBaseType(get_atttype(con->conrelid, keys[i]));

		if (type >= FirstNormalObjectId && get_typtype(type) != TYPTYPE_ENUM)
			return false;
	}
	return true;
}

/*
 * Whose rights re-check a foreign key: the referencing table's owner, who
 * must be able to read both tables; else the referenced table's owner, if
 * that one can.  Else, when the check runs no user code, the caller (as it
 * always did).  Otherwise the check cannot be made without lending one role's
 * rights to another's code: refuse it.
 */
static Oid
foreign_key_checker(HeapTuple tup, Form_pg_constraint con)
{
	Oid			fk_owner = rel_owner(con->conrelid);
	Oid			pk_owner = rel_owner(con->confrelid);

	if (pg_class_aclcheck(con->confrelid, fk_owner, ACL_SELECT) == ACLCHECK_OK)
		return fk_owner;
	if (pg_class_aclcheck(con->conrelid, pk_owner, ACL_SELECT) == ACLCHECK_OK)
		return pk_owner;
	if (foreign_key_runs_builtin_code_only(tup, con))
		return GetUserId();
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot re-check foreign key constraint \"%s\" on table \"%s\"",
					NameStr(con->conname), get_rel_name(con->conrelid)),
			 errdetail("Constraints are re-checked as a table's owner: role %s (owner of \"%s\") cannot read \"%s\", "
					   "and role %s (owner of \"%s\") cannot read \"%s\".",
					   GetUserNameFromId(fk_owner, false), get_rel_name(con->conrelid),
					   get_rel_name(con->confrelid), GetUserNameFromId(pk_owner, false),
					   get_rel_name(con->confrelid), get_rel_name(con->conrelid)),
			 errhint("GRANT SELECT on one table to the other table's owner: the key's equality runs code that is not built in.")));
	return InvalidOid;			/* keep the compiler quiet */
}

static void check_constraint_as_owner(Oid conoid, const char *version);

/* Re-check one constraint over every row as the owner of its table; raises when a row violates it. */
static void
check_constraint(Oid conoid, const char *version)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Form_pg_constraint con;
	Oid			checker;
	AsOwner		scope;

	if (!HeapTupleIsValid(tup))
		return;					/* dropped meanwhile: nothing to check */
	con = (Form_pg_constraint) GETSTRUCT(tup);
	checker = con->contype == CONSTRAINT_FOREIGN ? foreign_key_checker(tup, con) : rel_owner(con->conrelid);
	ReleaseSysCache(tup);

	as_owner_enter(&scope, checker);
	check_constraint_as_owner(conoid, version);
	as_owner_leave(&scope);
}

/* Re-check one constraint over every row; raises when a row violates it. */
static void
check_constraint_as_owner(Oid conoid, const char *version)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Form_pg_constraint con;
	StringInfoData sql;
	List	   *cols = NIL;
	char	   *keys;

	if (!HeapTupleIsValid(tup))
		return;					/* dropped meanwhile: nothing to check */
	con = (Form_pg_constraint) GETSTRUCT(tup);
	initStringInfo(&sql);

	if (con->contype == CONSTRAINT_FOREIGN)
	{
		int			nfk,
					npk,
					nop;
		int16	   *fk = constraint_array(tup, Anum_pg_constraint_conkey, &nfk);
		int16	   *pk = constraint_array(tup, Anum_pg_constraint_confkey, &npk);
		Oid		   *ops = constraint_array(tup, Anum_pg_constraint_conpfeqop, &nop);
		bool		full = (con->confmatchtype == FKCONSTR_MATCH_FULL);
		StringInfoData notnull,
					anynull,
					join;

		initStringInfo(&notnull);
		initStringInfo(&anynull);
		initStringInfo(&join);
		appendStringInfoString(&sql, "SELECT ");
		for (int i = 0; i < nfk; i++)
		{
			const char *fcol = quote_identifier(get_attname(con->conrelid, fk[i], false));
			const char *pcol = quote_identifier(get_attname(con->confrelid, pk[i], false));
			Oid			fk_type,
						pk_type,
						fk_coll,
						pk_coll;
			int32		typmod;

			/*
			 * Keys of different collations compare under the referenced
			 * key's, as PostgreSQL's own foreign key checks do.
			 */
			get_atttypetypmodcoll(con->conrelid, fk[i], &fk_type, &typmod, &fk_coll);
			get_atttypetypmodcoll(con->confrelid, pk[i], &pk_type, &typmod, &pk_coll);
			cols = lappend(cols, get_attname(con->conrelid, fk[i], false));
			appendStringInfo(&sql, "%sfk.%s", i > 0 ? ", " : "", fcol);
			appendStringInfo(&notnull, "%sfk.%s IS NOT NULL", i > 0 ? " AND " : "", fcol);
			appendStringInfo(&anynull, "%sfk.%s IS NOT NULL", i > 0 ? " OR " : "", fcol);
			appendStringInfo(&join, "%spk.%s %s fk.%s%s%s", i > 0 ? " AND " : "", pcol,
							 qualified_operator(ops[i]), fcol,
							 OidIsValid(pk_coll) && pk_coll != fk_coll ? " COLLATE " : "",
							 OidIsValid(pk_coll) && pk_coll != fk_coll ? generate_collation_name(pk_coll) : "");
		}
		/* MATCH SIMPLE: a key with a null is not checked; MATCH FULL: all or none null */
		appendStringInfo(&sql, " FROM %s fk WHERE ", scan_target(con->conrelid));
		if (full)
			appendStringInfo(&sql, "(%s) AND (NOT (%s) OR ", anynull.data, notnull.data);
		else
			appendStringInfo(&sql, "%s AND (", notnull.data);
		appendStringInfo(&sql, "NOT EXISTS (SELECT 1 FROM %s pk WHERE %s))",
						 scan_target(con->confrelid), join.data);

		keys = offending_keys(sql.data, cols);
		if (keys)
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("foreign key constraint \"%s\" on table \"%s\" is violated",
							NameStr(con->conname), get_rel_name(con->conrelid)),
					 errdetail("Checked for migration %s: rows of \"%s\" reference rows missing from \"%s\": %s.",
							   version, get_rel_name(con->conrelid), get_rel_name(con->confrelid), keys),
					 errhint("Rows written with triggers disabled or session_replication_role = replica "
							 "are not checked by PostgreSQL itself; fix or delete them.")));
	}
	else
	{
		bool		isnull;
		Datum		bin = SysCacheGetAttr(CONSTROID, tup, Anum_pg_constraint_conbin, &isnull);
		char	   *expr;
		ListCell   *lc;

		if (isnull)
			elog(ERROR, "null conbin for constraint %u", conoid);
		expr = TextDatumGetCString(DirectFunctionCall2(pg_get_expr, bin,
													   ObjectIdGetDatum(con->conrelid)));
		cols = row_identity_columns(con->conrelid);
		appendStringInfoString(&sql, "SELECT ");
		foreach(lc, cols)
			appendStringInfo(&sql, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfo(&sql, " FROM %s WHERE NOT (%s)", scan_target(con->conrelid), expr);

		keys = offending_keys(sql.data, cols);
		if (keys)
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("check constraint \"%s\" on table \"%s\" is violated",
							NameStr(con->conname), get_rel_name(con->conrelid)),
					 errdetail("Checked for migration %s: these rows fail CHECK (%s): %s.",
							   version, expr, keys),
					 errhint("Fix the rows, or correct the migration that wrote them.")));
	}
	ReleaseSysCache(tup);
}

/* Raise if any index on the tables is invalid (a failed concurrent build). */
static void
check_indexes(List *reloids, const char *version)
{
	Datum		arg = PointerGetDatum(oid_list_to_array(reloids));

	catalog_exec("SELECT i.indexrelid::pg_catalog.regclass::text, "
							   "       i.indrelid::pg_catalog.regclass::text "
							   "  FROM pg_catalog.pg_index i "
							   " WHERE i.indrelid = ANY ($1) AND NOT i.indisvalid "
							   " ORDER BY i.indexrelid LIMIT 1",
				 1, (Oid[]) {OIDARRAYOID}, &arg, NULL);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index %s on table %s is invalid",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
				 errdetail("Checked for migration %s: an invalid index is left by a failed concurrent build and is not used.",
						   version),
				 errhint("Drop it, or rebuild it with REINDEX INDEX CONCURRENTLY.")));
	SPI_freetuptable(SPI_tuptable);
}

/* Tables to check under the current migrate.verify_constraints setting. */
static List *
tables_for_mode(List *touched)
{
	if (migrate_verify_constraints == VERIFY_CONSTRAINTS_ALL)
		return oid_query("SELECT r.oid FROM pg_catalog.pg_class r "
						 "  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace "
						 " WHERE r.relkind IN ('r', 'p') AND $1 IS NOT NULL "
						 "   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'migrate') "
						 "   AND n.nspname NOT LIKE 'pg\\_toast%' "
						 "   AND (r.relpersistence <> 't' OR n.oid = pg_my_temp_schema()) "
						 " ORDER BY r.oid", touched);
	return touched;
}

int
verify_constraints_raise(List *touched, const char *version)
{
	List	   *tables;
	List	   *constraints;
	ListCell   *lc;
	int			passed = 0;

	if (migrate_verify_constraints == VERIFY_CONSTRAINTS_OFF)
		return 0;
	tables = tables_for_mode(touched);
	constraints = constraints_to_check(tables,
									   migrate_verify_constraints == VERIFY_CONSTRAINTS_ALL);
	foreach(lc, constraints)
	{
		check_constraint(lfirst_oid(lc), version);
		passed++;
	}
	if (tables != NIL)
	{
		check_indexes(tables, version);
		passed++;
	}
	return passed;
}

/* ---- verify queries ---- */

/*
 * Run a check script, `kind` "verify" or "assert": every statement must
 * run, and every row's first column must be true (boolean) or not begin
 * with "not ok" (text, as pgTAP's ok() and friends print).  Counts as one
 * check.
 */
static int
check_query_raise(Migration *m, const char *kind)
{
	/* its lines are its file's (files.c) */
	Script	   *script = migration_script(m, kind);
	const char *version = m->version;
	char	   *what = migration_script_what(m, kind) + strlen("the ");

	what[0] = pg_toupper((unsigned char) what[0]);	/* "Verify query of ...": it begins a DETAIL */

	for (int i = 0; i < script->nstmts; i++)
	{
		TupleDesc	desc;
		Oid			type;

		script_exec_stmt(script, i, what, psprintf("Correct the %s query, or the data it checks.", kind), false, false);
		if (SPI_tuptable == NULL)
			continue;
		desc = SPI_tuptable->tupdesc;
		type = desc->natts > 0 ? getBaseType(TupleDescAttr(desc, 0)->atttypid) : InvalidOid;
		if (type != BOOLOID && type != TEXTOID && type != VARCHAROID && type != BPCHAROID &&
			type != NAMEOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the first column of %s %s query must be boolean or text, not %s",
							kind[0] == 'a' ? "an" : "a", kind,
							type == InvalidOid ? "nothing" : format_type_be(type)),
					 errdetail("%s, statement %d of %d, line %d.", what, i + 1, script->nstmts,
							   script->spans[i].line),
					 errhint("Return a boolean that is true when the check passes, or pgTAP's ok() lines.")));
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[r], desc, 1, &isnull);
			char	   *shown = NULL;

			if (type == BOOLOID && (isnull || !DatumGetBool(d)))
				shown = isnull ? "null" : "false";
			else if (type != BOOLOID && !isnull)
			{
				char	   *line = SPI_getvalue(SPI_tuptable->vals[r], desc, 1);

				if (strncmp(line, "not ok", 6) == 0)
					shown = line;
			}
			if (shown)
				ereport(ERROR,
						(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
						 errmsg("%s query of migration %s failed: row %llu returned %s",
								kind, version, (unsigned long long) r + 1, shown),
						 errdetail("%s, statement %d of %d, line %d.", what, i + 1, script->nstmts,
								   script->spans[i].line),
						 errhint("Every row's first column must be true.")));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return 1;
}

/* A verify query: checked when applied, and again by migrate_verify(). */
int
verify_query_raise(Migration *m)
{
	return check_query_raise(m, "verify");
}

/* An assert query: checked when applied, before the commit, and never again. */
int
assert_query_raise(Migration *m)
{
	return check_query_raise(m, "assert");
}

/* ---- re-verification of applied migrations ---- */

typedef enum GuardedKind
{
	GUARDED_VERIFY,
	GUARDED_CONSTRAINT,
	GUARDED_INDEXES
} GuardedKind;

typedef struct GuardedCheck
{
	GuardedKind kind;
	const char *version;
	Migration  *m;				/* GUARDED_VERIFY: its verify query, registrant, file */
	Oid			conoid;
	List	   *tables;
} GuardedCheck;

/*
 * Re-run a verify query with no more rights than the role that registered
 * it, as a security-restricted operation: text that one role registered
 * never runs with another role's rights.  Only that role, its members and
 * superusers may re-run it (anyone else would lend it their search_path).
 */
static void
verify_query_as_registrant(Migration *m)
{
	const char *version = m->version;
	const char *registered_by = m->registered_by;
	Oid			role = get_role_oid(registered_by, true);
	Oid			save_userid;
	int			save_sec_context;

	if (!OidIsValid(role))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the verify query of migration %s was registered by role %s, which no longer exists",
						version, quote_identifier(registered_by)),
				 errhint("Register the migration again as an existing role to re-run its verify query.")));
	if (!has_privs_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the verify query of migration %s runs as role %s, whose privileges you do not have",
						version, quote_identifier(registered_by)),
				 errdetail("A verify query re-runs as the role that registered it."),
				 errhint("Run migrate_verify() as %s, a member of it, or a superuser.",
						 quote_identifier(registered_by))));
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	verify_query_raise(m);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

static void
guarded_check_body(void *arg)
{
	GuardedCheck *g = arg;

	if (g->kind == GUARDED_VERIFY)
		verify_query_as_registrant(g->m);
	else if (g->kind == GUARDED_CONSTRAINT)
		check_constraint(g->conoid, g->version);
	else
		check_indexes(g->tables, g->version);
}

/* Run one check in a subtransaction that leaves no trace; an error is a failed result. */
static void
run_guarded(GuardedKind kind, const char *version, Migration *m, Oid conoid, List *tables, CheckResult *res)
{
	GuardedCheck g = {kind, version, m, conoid, tables};
	ErrorData  *edata = run_in_subtransaction(guarded_check_body, &g, false);

	res->ok = (edata == NULL);
	if (edata)
	{
		strlcpy(res->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(res->sqlstate));
		res->message = edata->message;
		res->detail = edata->detail;
	}
}

/* A copy of a check's result, in the current memory context. */
static CheckResult *
check_result_copy(CheckResult *r)
{
	CheckResult *c = palloc(sizeof(CheckResult));

	*c = *r;
	c->version = pstrdup(r->version);
	c->name = pstrdup(r->name);
	c->check = pstrdup(r->check);
	c->object = r->object ? pstrdup(r->object) : NULL;
	c->message = r->message ? pstrdup(r->message) : NULL;
	c->detail = r->detail ? pstrdup(r->detail) : NULL;
	return c;
}

static CheckResult *
new_result(List **results, const char *version, const char *name, const char *check,
		   const char *object)
{
	CheckResult *res = palloc0(sizeof(CheckResult));

	res->version = pstrdup(version);
	res->name = pstrdup(name);
	res->check = pstrdup(check);
	res->object = object ? pstrdup(object) : NULL;
	*results = lappend(*results, res);
	return res;
}

static char *
constraint_label(Oid conoid)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Form_pg_constraint con;
	char	   *label;

	if (!HeapTupleIsValid(tup))
		return psprintf("constraint %u", conoid);
	con = (Form_pg_constraint) GETSTRUCT(tup);
	label = psprintf("%s on %s", quote_identifier(NameStr(con->conname)), qualified_rel(con->conrelid));
	ReleaseSysCache(tup);
	return label;
}

/*
 * The tables an applied migration touched, by OID: those that still exist,
 * with their partition ancestors.  A table dropped since, or a different
 * table that now has the name, is reported (never checked in its place).
 */
static List *
touched_tables(HeapTuple row, TupleDesc desc, Datum names_d, List **results,
			   const char *version, const char *name)
{
	bool		isnull;
	Datum		oids_d = SPI_getbinval(row, desc, 7, &isnull);
	List	   *reloids = NIL;
	Datum	   *oids;
	Datum	   *names;
	bool	   *nulls;
	int			noids;
	int			nnames;

	if (isnull || names_d == (Datum) 0)
		return NIL;
	/* touched (names as they were) and touched_tables (OIDs) are parallel */
	deconstruct_array(DatumGetArrayTypeP(oids_d), OIDOID, sizeof(Oid), true, TYPALIGN_INT,
					  &oids, &nulls, &noids);
	deconstruct_array(DatumGetArrayTypeP(names_d), TEXTOID, -1, false, TYPALIGN_INT,
					  &names, &nulls, &nnames);
	for (int e = 0; e < noids; e++)
	{
		Oid			relid = DatumGetObjectId(oids[e]);
		char	   *table;
		Oid			now;
		CheckResult *res;

		if (get_rel_name(relid) != NULL)
		{
			reloids = touched_add(reloids, relid);
			continue;
		}
		table = e < nnames ? TextDatumGetCString(names[e]) : psprintf("with OID %u", relid);
		now = e < nnames ? RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(table)),
											NoLock, true) : InvalidOid;
		res = new_result(results, version, name, "table", table);
		res->ok = true;
		res->info = true;
		res->message = OidIsValid(now)
			? psprintf("table %s was dropped since migration %s was applied; the table of that name now, owned by %s, is another one: not checked",
					   table, version, GetUserNameFromId(rel_owner(now), false))
			: psprintf("table %s was dropped since migration %s was applied: not checked", table, version);
	}
	return reloids;
}

/*
 * Every check of the applied migrations (or of one version): the registered
 * text against the checksum that was applied, the verify query, and the
 * constraints and indexes of the tables each migration touched.
 */
static List *
check_applied(const char *version)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext iter_cxt;
	List	   *results = NIL;
	Datum		arg = version ? CStringGetTextDatum(migration_key(version)) : (Datum) 0;
	int			n;
	HeapTuple  *rows;
	TupleDesc	desc;

	catalog_exec("SELECT a.version, coalesce(m.name, a.name), a.checksum, m.checksum, m.verify, a.touched, "
				 "       a.touched_tables::pg_catalog.oid[], m.registered_by, m.drift, m.source, m.lines::text, "
				 "       a.version_key "
				 "  FROM migrate.applied a "
				 "  LEFT JOIN migrate.migrations m ON m.version_key = a.version_key "
				 " WHERE $1 IS NULL OR a.version_key = $1 "
				 " ORDER BY a.version_key",
				 1, (Oid[]) {TEXTOID}, &arg, version ? NULL : "n");
	n = SPI_processed;
	desc = SPI_tuptable->tupdesc;
	rows = palloc(sizeof(HeapTuple) * Max(n, 1));
	for (int i = 0; i < n; i++)
		rows[i] = SPI_copytuple(SPI_tuptable->vals[i]);
	desc = CreateTupleDescCopy(desc);
	SPI_freetuptable(SPI_tuptable);
	MemoryContextSwitchTo(cxt);

	if (version && n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration %s is not applied", version),
				 errhint("migrate_status() lists every migration and its state.")));

	/* the history itself: its hash chain, and an applied row it does not explain */
	{
		ListCell   *lc;

		foreach(lc, history_findings(catalog_load(false), version ? migration_key(version) : NULL))
		{
			HistoryFinding *f = lfirst(lc);
			CheckResult *res = new_result(&results, f->version, f->name, "history",
										  strcmp(f->problem, "history") == 0 ? "hash chain" : "applied row");

			res->ok = false;
			strlcpy(res->sqlstate, unpack_sql_state(ERRCODE_DATA_CORRUPTED), sizeof(res->sqlstate));
			res->message = strcmp(f->problem, "history") == 0
				? pstrdup("the history of migrations was changed outside migrate")
				: strcmp(f->problem, "lost") == 0
				? psprintf("migration %s is applied by the history's account but not marked applied", f->version)
				: psprintf("migration %s is marked applied without a history row that records it", f->version);
			res->detail = f->detail;
		}
	}

	/*
	 * Each migration's checks in a memory context reset after it (amcheck's
	 * per-page reset): only its results are kept, copied out.
	 */
	iter_cxt = AllocSetContextCreate(cxt, "migrate check_applied migration", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
	{
		MemoryContext outer = MemoryContextSwitchTo(iter_cxt);
		List	   *mine = NIL;
		char	   *v = SPI_getvalue(rows[i], desc, 1);
		char	   *name = SPI_getvalue(rows[i], desc, 2);
		char	   *applied_sum = SPI_getvalue(rows[i], desc, 3);
		char	   *registered_sum = SPI_getvalue(rows[i], desc, 4);
		char	   *verify = SPI_getvalue(rows[i], desc, 5);
		char	   *registered_by = SPI_getvalue(rows[i], desc, 8);
		bool		isnull;
		Datum		touched_d = SPI_getbinval(rows[i], desc, 6, &isnull);
		List	   *tables;
		CheckResult *res;
		ListCell   *lc;

		res = new_result(&mine, v, name, "checksum", applied_sum);
		/*
		 * Edited (comments or whitespace only: drift.c) is the same
		 * statements: proven again here, not taken from the label, which a
		 * catalog edited by hand could set.
		 */
		res->ok = registered_sum && strcmp(registered_sum, applied_sum) == 0;
		if (!res->ok && registered_sum && str_equal(SPI_getvalue(rows[i], desc, 9), "edited"))
			res->ok = drift_edited_proven(SPI_getvalue(rows[i], desc, 12), applied_sum, registered_sum);
		if (!res->ok)
		{
			strlcpy(res->sqlstate, unpack_sql_state(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), 6);
			res->message = registered_sum
				? psprintf("%smigration %s was changed after it was applied",
						   v[0] == 'R' ? "repeatable " : "", v)
				: psprintf("migration %s is applied but no longer registered", v);
			res->detail = registered_sum
				? psprintf("Applied checksum %s, registered checksum %s.", applied_sum, registered_sum)
				: psprintf("Applied checksum %s.", applied_sum);
		}

		if (verify)
		{
			Migration  *m = palloc0(sizeof(Migration));

			m->version = v;
			m->verify = verify;
			m->registered_by = registered_by;
			m->source = SPI_getvalue(rows[i], desc, 10);
			m->lines = SPI_getvalue(rows[i], desc, 11);
			run_guarded(GUARDED_VERIFY, v, m, InvalidOid, NIL, new_result(&mine, v, name, "verify", "verify query"));
		}

		if (migrate_verify_constraints == VERIFY_CONSTRAINTS_OFF)
			goto keep;
		tables = tables_for_mode(touched_tables(rows[i], desc, isnull ? (Datum) 0 : touched_d,
												&mine, v, name));
		foreach(lc, constraints_to_check(tables, migrate_verify_constraints == VERIFY_CONSTRAINTS_ALL))
		{
			Oid			conoid = lfirst_oid(lc);
			HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
			bool		fk;

			if (!HeapTupleIsValid(tup))
				continue;
			fk = ((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_FOREIGN;
			ReleaseSysCache(tup);
			run_guarded(GUARDED_CONSTRAINT, v, NULL, conoid, NIL,
						new_result(&mine, v, name, fk ? "foreign key" : "check constraint",
								   constraint_label(conoid)));
		}
		if (tables != NIL)
			run_guarded(GUARDED_INDEXES, v, NULL, InvalidOid, tables,
						new_result(&mine, v, name, "indexes",
								   psprintf("indexes of %d table%s", list_length(tables),
											list_length(tables) == 1 ? "" : "s")));
keep:
		MemoryContextSwitchTo(outer);
		foreach(lc, mine)
			results = lappend(results, check_result_copy(lfirst(lc)));
		MemoryContextReset(iter_cxt);
	}
	MemoryContextDelete(iter_cxt);
	return results;
}

/* migrate_verify(version): number of checks passed; raises on the first failure. */
Datum
migrate_verify(PG_FUNCTION_ARGS)
{
	char	   *version = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *results;
	ListCell   *lc;
	CheckResult *first = NULL;
	int			passed = 0;
	int			failed = 0;

	SPI_connect();
	results = check_applied(version);
	foreach(lc, results)
	{
		CheckResult *res = lfirst(lc);

		if (res->info)
			continue;
		if (res->ok)
			passed++;
		else if (failed++ == 0)
			first = res;
	}
	if (first)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE(first->sqlstate[0], first->sqlstate[1], first->sqlstate[2],
									   first->sqlstate[3], first->sqlstate[4])),
				 errmsg("%s", first->message),
				 errdetail("Migration %s (\"%s\"), %s check: %s %d of %d checks failed.",
						   first->version, first->name, first->check,
						   first->detail ? first->detail : "", failed, passed + failed),
				 errhint("SELECT * FROM migrate_check() WHERE NOT ok; lists every failure.")));
	SPI_finish();
	PG_RETURN_INT32(passed);
}

/* migrate_check(version): every check as a row; never raises for a failed check. */
Datum
migrate_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *version = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *results;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	results = check_applied(version);
	foreach(lc, results)
	{
		CheckResult *res = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		values[0] = CStringGetTextDatum(res->version);
		values[1] = CStringGetTextDatum(res->name);
		values[2] = CStringGetTextDatum(res->check);
		values[3] = res->object ? CStringGetTextDatum(res->object) : (Datum) 0;
		nulls[3] = res->object == NULL;
		values[4] = BoolGetDatum(res->ok);
		values[5] = res->ok ? (Datum) 0 : CStringGetTextDatum(res->sqlstate);
		nulls[5] = res->ok;
		values[6] = res->message ? CStringGetTextDatum(res->message) : (Datum) 0;
		nulls[6] = res->message == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
