/*
 * tool_histories.c
 *		The history tables of other tools: Supabase CLI
 *		(supabase_migrations.schema_migrations), Flyway (flyway_schema_history),
 *		dbmate and golang-migrate (schema_migrations).  Which of them may be
 *		used, and keeping them in step while they exist (setting
 *		migrate.sync_histories): what migrate applies, reverts, baselines,
 *		imports or repairs is written there too, in the same transaction, as
 *		that tool would write it, so that `supabase migration list`,
 *		`flyway info`, `dbmate status` or `migrate version` agree and the team
 *		can go back to the old tool at any time.  migrate_histories() says
 *		which tables are kept.  (Reading one to adopt it: import.c.)
 *
 *		The other tools' tables are read and written with the caller's rights,
 *		so whatever is attached to them runs with the caller's rights too: a
 *		trigger, a default, a policy, the function behind a view.  They are
 *		found by name (Supabase's in a schema anyone with CREATE on the
 *		database could have created first, the others through search_path),
 *		so they are used only when trusted (foreign_history_trusted): the
 *		sync skips any other with a WARNING, the import refuses it (42501).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/pg_crc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_histories);

/* ---- which of the other tools' tables may be used ---- */

/*
 * Whose code may run with the caller's rights: the caller's own, and a
 * superuser's (who could do anything anyway).  Not that of a role the caller
 * is a member of: its code would gain the caller's other rights.
 */
static bool
trusted_role(Oid role)
{
	/* pg_database_owner (owner of schema public) stands for the database's owner */
	if (role == ROLE_PG_DATABASE_OWNER)
	{
		HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
		role = ((Form_pg_database) GETSTRUCT(tup))->datdba;
		ReleaseSysCache(tup);
	}
	return role == GetUserId() || superuser_arg(role);
}

static char *
role_text(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? psprintf("\"%s\"", name) : psprintf("%u (dropped)", role);
}

static const char *
relkind_text(char relkind)
{
	switch (relkind)
	{
		case RELKIND_VIEW:
			return "a view";
		case RELKIND_MATVIEW:
			return "a materialized view";
		case RELKIND_PARTITIONED_TABLE:
			return "a partitioned table";
		case RELKIND_FOREIGN_TABLE:
			return "a foreign table";
		case RELKIND_SEQUENCE:
			return "a sequence";
		case RELKIND_COMPOSITE_TYPE:
			return "a composite type";
		case RELKIND_INDEX:
		case RELKIND_PARTITIONED_INDEX:
			return "an index";
		default:
			return "another kind of relation";
	}
}

/*
 * What is attached to a table and runs when it is read or written (triggers,
 * row-security policies, defaults, constraints, indexes, the types of its
 * columns and their domain constraints) and what each of them uses: every
 * function (an operator's too), type and relation, with its owner.  Rules
 * come last, with no owner: a rule may turn a write into anything.  Runs as
 * the catalog owner, for the pinned search_path (and a kept plan).
 */
static const char *const attached_code_sql =
	"WITH attached (classid, objid, what) AS ("
	"      SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass::pg_catalog.oid, t.oid, "
	"             pg_catalog.format('trigger \"%s\"', t.tgname) "
	"        FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) $1 "
	"   UNION ALL "
	"      SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass::pg_catalog.oid, p.oid, "
	"             pg_catalog.format('policy \"%s\"', p.polname) "
	"        FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) $1 "
	"   UNION ALL "
	"      SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass::pg_catalog.oid, d.oid, "
	"             pg_catalog.format('default of column \"%s\"', a.attname) "
	"        FROM pg_catalog.pg_attrdef d "
	"        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid "
	"                                      AND a.attnum OPERATOR(pg_catalog.=) d.adnum "
	"       WHERE d.adrelid OPERATOR(pg_catalog.=) $1 "
	"   UNION ALL "
	"      SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, c.oid, "
	"             pg_catalog.format('constraint \"%s\"', c.conname) "
	"        FROM pg_catalog.pg_constraint c WHERE c.conrelid OPERATOR(pg_catalog.=) $1 "
	"   UNION ALL "
	"      SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, c.oid, "
	"             pg_catalog.format('column \"%s\" (constraint \"%s\" of its type)', a.attname, c.conname) "
	"        FROM pg_catalog.pg_attribute a "
	"        JOIN pg_catalog.pg_constraint c ON c.contypid OPERATOR(pg_catalog.=) a.atttypid "
	"       WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 "
	"         AND NOT a.attisdropped "
	"   UNION ALL "
	"      SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, i.indexrelid, "
	"             pg_catalog.format('index \"%s\"', c.relname) "
	"        FROM pg_catalog.pg_index i "
	"        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid "
	"       WHERE i.indrelid OPERATOR(pg_catalog.=) $1), "
	"uses (what, classid, objid) AS ("
	"      SELECT a.what, d.refclassid, d.refobjid "
	"        FROM attached a "
	"        JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) a.classid "
	"                                   AND d.objid OPERATOR(pg_catalog.=) a.objid "
	"       WHERE d.refclassid OPERATOR(pg_catalog.=) ANY ('{pg_catalog.pg_proc, pg_catalog.pg_operator, "
	"                                                  pg_catalog.pg_type, pg_catalog.pg_class}'::pg_catalog.regclass[]) "
	"         AND NOT (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	"                  AND d.refobjid OPERATOR(pg_catalog.=) $1) "
	"   UNION "		/* built-in functions and types have no pg_depend rows */
	"      SELECT pg_catalog.format('trigger \"%s\"', t.tgname), "
	"             'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid, t.tgfoid "
	"        FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) $1 "
	"   UNION "
	"      SELECT pg_catalog.format('column \"%s\"', a.attname), "
	"             'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, a.atttypid "
	"        FROM pg_catalog.pg_attribute a "
	"       WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 "
	"         AND NOT a.attisdropped), "
	"runs (what, classid, objid) AS ("
	"      SELECT * FROM uses "
	"   UNION "
	"      SELECT u.what, 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid, o.oprcode::pg_catalog.oid "
	"        FROM uses u JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) u.objid "
	"       WHERE u.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass) "
	"SELECT r.what, pg_catalog.pg_describe_object(r.classid, r.objid, 0), "
	"       COALESCE(p.proowner, o.oprowner, t.typowner, c.relowner), false "
	"  FROM runs r "
	"  LEFT JOIN pg_catalog.pg_proc p ON r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass "
	"                                AND p.oid OPERATOR(pg_catalog.=) r.objid "
	"  LEFT JOIN pg_catalog.pg_operator o ON r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass "
	"                                    AND o.oid OPERATOR(pg_catalog.=) r.objid "
	"  LEFT JOIN pg_catalog.pg_type t ON r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass "
	"                                AND t.oid OPERATOR(pg_catalog.=) r.objid "
	"  LEFT JOIN pg_catalog.pg_class c ON r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	"                                 AND c.oid OPERATOR(pg_catalog.=) r.objid "
	"UNION ALL "
	"SELECT pg_catalog.format('rule \"%s\"', w.rulename), NULL, NULL, true "
	"  FROM pg_catalog.pg_rewrite w WHERE w.ev_class OPERATOR(pg_catalog.=) $1 "
	" ORDER BY 4, 1, 2";

/*
 * Whether nothing is attached to the table that could run code: no trigger,
 * rule, row security, CHECK constraint, default or generated column, no index
 * on an expression or with a predicate, and only columns of built-in types.
 * The usual case (a table as its tool created it), decided from the relcache
 * without a query.  The table must be locked.
 */
static bool
nothing_attached(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	Form_pg_class form = RelationGetForm(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		bare = !form->relhastriggers && !form->relhasrules && !form->relrowsecurity &&
		form->relchecks == 0;
	List	   *indexes;
	ListCell   *lc;

	for (int i = 0; bare && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		bare = att->attisdropped ||
			(!att->atthasdef && att->attgenerated == '\0' && att->atttypid < FirstNormalObjectId);
	}
	indexes = bare ? RelationGetIndexList(rel) : NIL;
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		bare &= heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		ReleaseSysCache(tup);
	}
	relation_close(rel, NoLock);
	return bare;
}

/*
 * Whether another tool's table may be read or written with the caller's
 * rights: a plain table owned by the caller or a superuser, in a schema owned
 * by the caller or a superuser, with no rule, and nothing attached to it that
 * uses a function, operator, type or relation of another role (one level
 * deep: what a trusted function calls in turn is its owner's business).
 * With `attached` false, only the first part (the kind and the two owners):
 * what can be checked without a lock.  When not, *detail names the table, its
 * owner and what is wrong, and *hint the way out.
 */
static bool
foreign_history_trusted(Oid relid, bool attached, char **detail, char **hint)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class rel;
	char	   *table;
	char	   *owner;
	const char *me = quote_identifier(current_user_name());
	Oid			nspowner;
	char		relkind;
	bool		relispartition;
	Oid			relowner;
	Oid			nsp;
	bool		trusted = true;

	if (!HeapTupleIsValid(tup))
	{
		*detail = psprintf("Relation %u was dropped while it was being checked.", relid);
		*hint = pstrdup("Try again.");
		return false;
	}
	rel = (Form_pg_class) GETSTRUCT(tup);
	relkind = rel->relkind;
	relispartition = rel->relispartition;
	relowner = rel->relowner;
	nsp = rel->relnamespace;
	table = quote_qualified_identifier(get_namespace_name(nsp), NameStr(rel->relname));
	ReleaseSysCache(tup);
	owner = role_text(relowner);

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	nspowner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	if (!trusted_role(relowner))
	{
		*detail = psprintf("Table %s is owned by role %s, which is neither you nor a superuser: "
						   "what runs when it is read or written would run with your rights.",
						   table, owner);
		*hint = psprintf("If it really is the tool's table, have a superuser check it and run "
						 "ALTER TABLE %s OWNER TO %s; otherwise drop it.", table, me);
		trusted = false;
	}
	else if (!trusted_role(nspowner))
	{
		*detail = psprintf("Table %s (owned by role %s) is in schema %s, owned by role %s, "
						   "which is neither you nor a superuser: that role may replace the table at will.",
						   table, owner, quote_identifier(get_namespace_name(nsp)), role_text(nspowner));
		*hint = psprintf("If it really is the tool's schema, have a superuser check it and run "
						 "ALTER SCHEMA %s OWNER TO %s; otherwise drop it.",
						 quote_identifier(get_namespace_name(nsp)), me);
		trusted = false;
	}
	else if (relkind != RELKIND_RELATION || relispartition)
	{
		*detail = psprintf("Relation %s (owned by role %s) is %s, not a plain table.", table, owner,
						   relispartition ? "a partition" : relkind_text(relkind));
		*hint = psprintf("Only a plain table is read or written there: drop %s, or rename it.", table);
		trusted = false;
	}
	else if (attached && !nothing_attached(relid))
	{
		catalog_exec(attached_code_sql, 1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)}, NULL);
		for (uint64 i = 0; trusted && i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			bool		no_owner;
			bool		rule = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
			Oid			uses_owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &no_owner));
			char	   *what = SPI_getvalue(row, desc, 1);

			if (rule)
			{
				*detail = psprintf("Table %s (owned by role %s) has %s, which may turn what is written "
								   "into any other statement.", table, owner, what);
				*hint = psprintf("Drop the rules on %s.", table);
				trusted = false;
			}
			else if (no_owner || !trusted_role(uses_owner))
			{
				char	   *uses = SPI_getvalue(row, desc, 2);

				if (uses == NULL)
					uses = "an object that no longer exists";

				*detail = psprintf("Table %s is owned by role %s, but its %s uses %s, owned by role %s, "
								   "which is neither you nor a superuser: it would run with your rights.",
								   table, owner, what, uses, no_owner ? "(none)" : role_text(uses_owner));
				*hint = psprintf("Drop its %s, or have a superuser check %s and take it over "
								 "(ALTER ... OWNER TO).", what, uses);
				trusted = false;
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return trusted;
}

/*
 * Find another tool's table by name and lock it (lockmode, for the rest of
 * the transaction) once trusted, so that it stays what was checked: nothing
 * is attached to a table, nor is it dropped or given away, without a lock
 * that conflicts.  Returns InvalidOid when there is no such relation;
 * otherwise its OID, with *detail and *hint set when it may not be used.  An
 * untrusted table is not locked: its owner's locks must not stall us.
 */
Oid
foreign_history_open(RangeVar *rv, LOCKMODE lockmode, char **detail, char **hint)
{
	Oid			relid;

	*detail = *hint = NULL;
	for (;;)
	{
		relid = RangeVarGetRelid(rv, NoLock, true);
		if (!OidIsValid(relid))
			return InvalidOid;
		if (!foreign_history_trusted(relid, false, detail, hint))
			return relid;
		LockRelationOid(relid, lockmode);
		/* while we waited, the name may have gone, or gone to another relation */
		if (RangeVarGetRelid(rv, NoLock, true) == relid)
			break;
		UnlockRelationOid(relid, lockmode);
		CHECK_FOR_INTERRUPTS();
	}
	(void) foreign_history_trusted(relid, true, detail, hint);
	return relid;
}

/* ---- the other tools' tables, kept in step ---- */

bool		migrate_sync_histories = true;

typedef enum HistoryTool
{
	TOOL_SUPABASE,
	TOOL_FLYWAY,
	TOOL_DBMATE,
	TOOL_GOLANG,
	NUM_TOOLS
} HistoryTool;

static const char *const tool_names[NUM_TOOLS] = {"supabase", "flyway", "dbmate", "golang-migrate"};
static const char *const tool_titles[NUM_TOOLS] = {"Supabase", "Flyway", "dbmate", "golang-migrate"};

/* The relation's name, schema-qualified and quoted. */
char *
qualified_table(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		return psprintf("(dropped relation %u)", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

bool
has_column(Oid relid, const char *column)
{
	return get_attnum(relid, column) != InvalidAttrNumber;
}

/*
 * The tool's table, if there is one, locked with lockmode when it is trusted;
 * InvalidOid when there is none.  dbmate's and golang-migrate's are both
 * schema_migrations (through search_path): golang-migrate's has a "dirty"
 * column.  Supabase's table reached by that name is Supabase's, not theirs.
 * When not usable, *why says so (and *hint the way out, for an untrusted one).
 */
static Oid
tool_table(HistoryTool tool, LOCKMODE lockmode, char **why, char **hint)
{
	RangeVar   *rv;
	Oid			relid;
	AclMode		needed;

	*why = *hint = NULL;
	if (tool == TOOL_SUPABASE)
		rv = makeRangeVar("supabase_migrations", "schema_migrations", -1);
	else if (tool == TOOL_FLYWAY)
		rv = makeRangeVar(NULL, "flyway_schema_history", -1);
	else
	{
		Oid			found = RangeVarGetRelid(makeRangeVar(NULL, "schema_migrations", -1), NoLock, true);

		if (!OidIsValid(found) ||
			found == RangeVarGetRelid(makeRangeVar("supabase_migrations", "schema_migrations", -1), NoLock, true) ||
			has_column(found, "dirty") != (tool == TOOL_GOLANG))
			return InvalidOid;
		rv = makeRangeVar(get_namespace_name(get_rel_namespace(found)), "schema_migrations", -1);
	}
	relid = foreign_history_open(rv, lockmode, why, hint);
	if (!OidIsValid(relid) || *why != NULL)
		return relid;
	/* replaced by the other tool's table while we waited for the lock */
	if (tool != TOOL_SUPABASE && tool != TOOL_FLYWAY &&
		has_column(relid, "dirty") != (tool == TOOL_GOLANG))
		return InvalidOid;
	/* what keeping it in step needs: Flyway's repair updates a row */
	needed = ACL_SELECT | ACL_INSERT | ACL_DELETE | (tool == TOOL_FLYWAY ? ACL_UPDATE : 0);
	if (pg_class_aclmask(relid, GetUserId(), needed, ACLMASK_ALL) != needed)
	{
		const char *privileges = tool == TOOL_FLYWAY ? "SELECT, INSERT, UPDATE, DELETE" : "SELECT, INSERT, DELETE";

		*why = psprintf("Role %s may not %s on table %s.", quote_identifier(current_user_name()),
						privileges, qualified_table(relid));
		*hint = psprintf("GRANT %s ON %s TO %s; or, if that tool is no longer used, "
						 "SET migrate.sync_histories = off.", privileges, qualified_table(relid),
						 quote_identifier(current_user_name()));
	}
	return relid;
}

/*
 * The tool's table when it is to be kept in step: there, trusted, and the
 * sync not turned off.  One that may not be used is skipped, with a WARNING
 * the first time in a transaction.
 */
static Oid
sync_table(HistoryTool tool)
{
	static LocalTransactionId warned[NUM_TOOLS];
	char	   *detail;
	char	   *hint;
	Oid			relid;

	if (!migrate_sync_histories)
		return InvalidOid;
	relid = tool_table(tool, RowExclusiveLock, &detail, &hint);
	if (!OidIsValid(relid) || detail == NULL)
		return relid;
	if (warned[tool] != MyProc->lxid)
	{
		warned[tool] = MyProc->lxid;
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("skipping %s's history table %s", tool_titles[tool], qualified_table(relid)),
				 errdetail_internal("%s", detail),
				 errhint("%s", hint)));
	}
	return InvalidOid;
}

/* Run a statement on another tool's table as the caller; raises on SPI failure. */
static void
exec_as_caller(const char *sql, int nargs, Oid *types, Datum *values)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		elog(ERROR, "query failed: %s: %s", SPI_result_code_string(rc), sql);
}

/* Warn that a version cannot be written in a tool's history, once per version and transaction. */
static void
warn_inexpressible(HistoryTool tool, const char *version, const char *why)
{
	ereport(WARNING,
			(errcode(ERRCODE_WARNING),
			 errmsg("version \"%s\" cannot be recorded in %s's history", version, tool_titles[tool]),
			 errdetail("%s", why),
			 errhint("Until a version %s can express is applied, %s sees what it recorded last; "
					 "set migrate.sync_histories = off if you will not go back to %s.",
					 tool_titles[tool], tool_titles[tool], tool_titles[tool])));
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * Flyway's checksum of a script: CRC-32 of its lines, each without its line
 * ending (\n, \r\n or \r), as UTF-8, a BOM removed from the first; the result
 * read as a signed 32-bit integer.  Line endings drop out; trailing spaces
 * count.  (Flyway: ChecksumCalculator and the resource's calculateChecksum,
 * which read lines with BufferedReader.readLine(), BomFilter and
 * StringUtils.trimLineBreak.)
 */
int32
flyway_checksum(const char *text)
{
	pg_crc32	crc;
	const char *p = text;

	if ((unsigned char) p[0] == 0xEF && (unsigned char) p[1] == 0xBB && (unsigned char) p[2] == 0xBF)
		p += 3;
	INIT_TRADITIONAL_CRC32(crc);
	while (*p)
	{
		size_t		n = strcspn(p, "\r\n");

		COMP_TRADITIONAL_CRC32(crc, p, n);
		p += n;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	FIN_TRADITIONAL_CRC32(crc);
	return (int32) crc;
}

/* The registered up script of m (loaded from the catalog when m was loaded without it). */
static char *
registered_up(Migration *m)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *up = NULL;

	if (m->up)
		return m->up;
	catalog_exec("SELECT up FROM migrate.migrations WHERE version_key = $1", 1, (Oid[]) {TEXTOID},
				 (Datum[]) {CStringGetTextDatum(m->key)}, NULL);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed > 0)
		up = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);
	return up ? up : "";
}

/*
 * Flyway's version for m ("2.1" for V2_1__x.sql: '_' separates as '.'
 * does), or NULL with *why when Flyway has none for it.
 */
static char *
flyway_version(Migration *m, const char **why)
{
	char	   *v = pstrdup(m->version);

	for (char *p = v; *p; p++)
	{
		if (*p == '_')
			*p = '.';
		else if (*p == '-')
		{
			*why = "Flyway's versions separate their parts with \".\" or \"_\" only.";
			return NULL;
		}
	}
	return v;
}

/* What Flyway writes in `description`: the name, underscores as spaces. */
static char *
flyway_description(Migration *m)
{
	char	   *d = pstrdup(m->name);

	for (char *p = d; *p; p++)
		if (*p == '_')
			*p = ' ';
	return d;
}

/* What Flyway writes in `script`: the file's name, or the one Flyway would give it. */
static char *
flyway_script(Migration *m)
{
	if (migration_from_file(m))
		return m->source;
	if (m->repeatable)
		return psprintf("R__%s.sql", m->name);
	return psprintf("V%s__%s.sql", m->version, m->name);
}

/*
 * Append a row to Flyway's table as Flyway writes it, unless Flyway already
 * counts it: the latest row of the version a successful one of this type (a
 * repeatable one: of this description and checksum).
 */
static void
flyway_insert(Oid relid, Migration *m, const char *type, int32 checksum, double ms)
{
	const char *why = NULL;
	char	   *version = m->repeatable ? NULL : flyway_version(m, &why);
	char	   *table = qualified_table(relid);
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (!m->repeatable && version == NULL)
	{
		warn_inexpressible(TOOL_FLYWAY, m->version, why);
		return;
	}
	values[0] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[0] = version ? ' ' : 'n';
	values[1] = CStringGetTextDatum(flyway_description(m));
	values[2] = CStringGetTextDatum(type);
	values[3] = CStringGetTextDatum(flyway_script(m));
	values[4] = Int32GetDatum(checksum);
	values[5] = CStringGetTextDatum(current_user_name());
	values[6] = Int32GetDatum((int32) Min(ms + 0.5, (double) PG_INT32_MAX));
	if (SPI_execute_with_args(psprintf(
		"INSERT INTO %s (installed_rank, version, description, type, script, checksum, "
		"                installed_by, installed_on, execution_time, success) "
		"SELECT coalesce((SELECT pg_catalog.max(installed_rank) FROM ONLY %s), 0) OPERATOR(pg_catalog.+) 1, "
		"       $1, $2, $3, $4, $5, $6, pg_catalog.now(), $7, true "
		" WHERE NOT EXISTS ("
		"   SELECT FROM (SELECT type, checksum, success FROM ONLY %s "
		"                 WHERE CASE WHEN $1 IS NULL THEN version IS NULL AND description OPERATOR(pg_catalog.=) $2 "
		"                            ELSE version OPERATOR(pg_catalog.=) $1 END "
		"                   AND type OPERATOR(pg_catalog.<>) 'BASELINE' "
		"                 ORDER BY installed_rank DESC LIMIT 1) latest "
		"    WHERE latest.success AND latest.type OPERATOR(pg_catalog.=) $3 "
		"      AND ($1 IS NOT NULL OR latest.checksum OPERATOR(pg_catalog.=) $5))",
		table, table, table),
		7, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, INT4OID},
		values, nulls, false, 0) < 0)
		elog(ERROR, "could not write to %s", table);
}

/*
 * golang-migrate's one row: the newest versioned migration migrate has
 * applied, clean; no row when there is none.  A newer version golang-migrate
 * recorded itself is kept after an apply (raise only); a dirty one is left
 * alone, with a WARNING.
 */
static void
golang_set_newest(Oid relid, bool raise_only)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *table = qualified_table(relid);
	char	   *newest = NULL;
	int64		current = -1;
	int64		number = -1;

	catalog_exec("SELECT version FROM migrate.applied WHERE version_key OPERATOR(pg_catalog.!~~) '~%' "
				 " ORDER BY version_key DESC LIMIT 1", 0, NULL, NULL, NULL);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed > 0)
		newest = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);

	if (newest)
	{
		char	   *end;

		errno = 0;
		number = all_digits(newest) ? strtoi64(newest, &end, 10) : -1;
		if (number < 0 || errno != 0)
		{
			warn_inexpressible(TOOL_GOLANG, newest,
							   "golang-migrate's version is a bigint: digits only, at most 9223372036854775807.");
			return;
		}
	}

	if (SPI_execute(psprintf("SELECT version, dirty FROM ONLY %s", table), false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", table);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		bool		dirty = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		current = DatumGetInt64(v);
		if (dirty)
		{
			SPI_freetuptable(SPI_tuptable);
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("golang-migrate's history table %s is dirty at version " INT64_FORMAT ": left as it is",
							table, current),
					 errhint("Fix the database by hand and set dirty = false in %s.", table)));
			return;
		}
	}
	SPI_freetuptable(SPI_tuptable);
	if ((raise_only && current >= number) || (newest == NULL && current < 0) ||
		(newest != NULL && current == number))
		return;
	exec_as_caller(psprintf("DELETE FROM ONLY %s", table), 0, NULL, NULL);
	if (newest)
		exec_as_caller(psprintf("INSERT INTO %s (version, dirty) VALUES ($1, false)", table),
					   1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(number)});
}

/*
 * Record in every other tool's table that is kept in step that m was applied
 * (by migrate_apply/migrate_run or a job: script is what ran; by a baseline,
 * import or repair: NULL), as that tool would have; not in the table of
 * `except`, the tool an import reads (NULL: none).  Call after
 * catalog_record_applied().
 */
void
histories_record_apply(Migration *m, Script *script, double ms, const char *except)
{
	Oid			relid;

	for (int tool = 0; tool < NUM_TOOLS; tool++)
	{
		if (except && strcmp(except, tool_names[tool]) == 0)
			continue;
		/* only Flyway keeps repeatable migrations */
		if (m->repeatable && tool != TOOL_FLYWAY)
			continue;
		relid = sync_table(tool);
		if (!OidIsValid(relid))
			continue;
		switch ((HistoryTool) tool)
		{
			case TOOL_SUPABASE:
				{
					List	   *statements = NIL;

					/* a migration that was not run here has no statements to show */
					for (int i = 0; script && i < script->nstmts; i++)
						statements = lappend(statements, pnstrdup(script->text + script->spans[i].offset,
																  script->spans[i].len));
					exec_as_caller("INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
								   "SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT FROM ONLY supabase_migrations.schema_migrations "
								   "                                     WHERE version OPERATOR(pg_catalog.=) $1)",
								   3, (Oid[]) {TEXTOID, TEXTOID, TEXTARRAYOID},
								   (Datum[]) {CStringGetTextDatum(m->version), CStringGetTextDatum(m->name),
								   PointerGetDatum(string_list_to_array(statements))});
					break;
				}
			case TOOL_FLYWAY:
				flyway_insert(relid, m, "SQL", flyway_checksum(registered_up(m)), ms);
				break;
			case TOOL_DBMATE:
				if (!all_digits(m->version))
				{
					warn_inexpressible(TOOL_DBMATE, m->version, "dbmate's versions are digits only.");
					break;
				}
				exec_as_caller(psprintf("INSERT INTO %s (version) SELECT $1 WHERE NOT EXISTS "
										"(SELECT FROM ONLY %s WHERE version OPERATOR(pg_catalog.=) $1)",
										qualified_table(relid), qualified_table(relid)),
							   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(m->version)});
				break;
			case TOOL_GOLANG:
				golang_set_newest(relid, true);
				break;
			case NUM_TOOLS:
				break;
		}
	}
}

/*
 * Record in every table kept in step that m was reverted: Supabase's and
 * dbmate's row removed; golang-migrate's row set to the newest version still
 * applied; for Flyway a DELETE row (what `flyway repair` writes for a
 * migration taken away; Flyway Community has no undo).  Call after m's row
 * left migrate.applied.
 */
void
histories_record_revert(Migration *m)
{
	Oid			relid;

	for (int tool = 0; tool < NUM_TOOLS; tool++)
	{
		if (m->repeatable)
			break;
		relid = sync_table(tool);
		if (!OidIsValid(relid))
			continue;
		switch ((HistoryTool) tool)
		{
			case TOOL_SUPABASE:
			case TOOL_DBMATE:
				exec_as_caller(psprintf("DELETE FROM ONLY %s WHERE version OPERATOR(pg_catalog.=) $1",
										qualified_table(relid)),
							   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(m->version)});
				break;
			case TOOL_FLYWAY:
				{
					const char *why;
					char	   *version = flyway_version(m, &why);
					bool		applied;

					/* only over a row Flyway counts as applied */
					if (version == NULL)
						break;
					if (SPI_execute_with_args(psprintf(
						"SELECT FROM (SELECT type, success FROM ONLY %s WHERE version OPERATOR(pg_catalog.=) $1 "
						"               AND type OPERATOR(pg_catalog.<>) 'BASELINE' "
						"             ORDER BY installed_rank DESC LIMIT 1) latest "
						" WHERE latest.success AND latest.type OPERATOR(pg_catalog.!~~) 'UNDO_%%' "
						"   AND latest.type OPERATOR(pg_catalog.<>) 'DELETE'", qualified_table(relid)),
						1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(version)}, NULL, true, 0) != SPI_OK_SELECT)
						elog(ERROR, "could not read %s", qualified_table(relid));
					applied = SPI_processed > 0;
					SPI_freetuptable(SPI_tuptable);
					if (applied)
						flyway_insert(relid, m, "DELETE", flyway_checksum(registered_up(m)), 0);
					break;
				}
			case TOOL_GOLANG:
				golang_set_newest(relid, false);
				break;
			case NUM_TOOLS:
				break;
		}
	}
}

/*
 * Record that the text up (NULL: the registered one) was accepted for the
 * applied m: Flyway's latest row of the version takes its checksum, as
 * `flyway repair` realigns it.  The others keep no checksum.
 */
void
histories_record_repair(Migration *m, const char *up)
{
	Oid			relid = sync_table(TOOL_FLYWAY);
	const char *why;
	char	   *version = m->repeatable ? NULL : flyway_version(m, &why);

	if (!OidIsValid(relid) || version == NULL)
		return;
	exec_as_caller(psprintf("UPDATE ONLY %s SET checksum = $2 WHERE installed_rank OPERATOR(pg_catalog.=) "
							"(SELECT pg_catalog.max(installed_rank) FROM ONLY %s "
							"  WHERE version OPERATOR(pg_catalog.=) $1 AND success "
							"    AND type OPERATOR(pg_catalog.!~~) 'UNDO_%%' AND type OPERATOR(pg_catalog.<>) 'DELETE' "
							"    AND type OPERATOR(pg_catalog.<>) 'BASELINE')",
							qualified_table(relid), qualified_table(relid)),
				   2, (Oid[]) {TEXTOID, INT4OID},
				   (Datum[]) {CStringGetTextDatum(version), Int32GetDatum(flyway_checksum(up ? up : registered_up(m)))});
}

/*
 * migrate_histories(): for each tool, its table and whether it is kept in
 * step, and why (not).  Reads only; takes the lock a reader takes.
 */
Datum
migrate_histories(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	for (int tool = 0; tool < NUM_TOOLS; tool++)
	{
		char	   *why;
		char	   *hint;
		Oid			relid = tool_table(tool, AccessShareLock, &why, &hint);
		Datum		values[4];
		bool		nulls[4] = {false, !OidIsValid(relid), false, false};
		bool		kept = OidIsValid(relid) && why == NULL && migrate_sync_histories;

		values[0] = CStringGetTextDatum(tool_names[tool]);
		values[1] = OidIsValid(relid) ? CStringGetTextDatum(qualified_table(relid)) : (Datum) 0;
		values[2] = BoolGetDatum(kept);
		if (!OidIsValid(relid))
			why = "no such table";
		else if (why && hint && strncmp(hint, "GRANT ", 6) == 0)
			why = psprintf("no privilege: %s", why);
		else if (why)
			why = psprintf("not trusted: %s", why);
		else if (!migrate_sync_histories)
			why = "migrate.sync_histories is off";
		else
			why = "kept in step";
		values[3] = CStringGetTextDatum(why);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
