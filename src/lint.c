/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  Safety checks before a migration runs: migrate_lint().
 *
 * Each rule is decided from the statement's raw parse tree and the live
 * catalog (never by matching text): what the statement does, to which table,
 * how big that table is now (statistics: pg_class.reltuples and relpages, or
 * the relation's size when it was never analysed and can be looked at
 * without waiting), and the lock it takes (AlterTableGetLockLevel() for
 * ALTER TABLE, as PostgreSQL itself decides it).
 *
 * Severity: the rules about work done under a strong lock (a rewrite, a
 * scan, an index build, a data change while a strong lock is held) take it
 * from the table's size: `info` for a table that is new in the plan or
 * empty, `error` from migrate.lint_large_rows rows or
 * migrate.lint_large_bytes bytes, `warning` between.  The other rules have a
 * fixed one.
 *
 * A finding is allowed, for one statement, by a comment on the line before
 * it: "-- migrate:allow table-rewrite" (several rules: separated by commas
 * or blanks).  Registration checks the rule names and notes each allow.
 *
 * Linting runs when planning (migrate_plan(), migrate_apply(), migrate_run(),
 * migrate_start()), against the database as it is then; an `error` finding
 * not allowed keeps migrate_apply(), migrate_run() and jobs from starting
 * unless migrate.lint = 'warn' (lint_refuse()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "catalog/index.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/plancat.h"
#include "parser/analyze.h"
#include "parser/parse_coerce.h"
#include "parser/parse_type.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_lint);

/* The rules, with what each is about (for the README and for checks of allow directives). */
static const char *const lint_rules[] = {
	"table-rewrite",
	"scan-under-lock",
	"index-without-concurrently",
	"lock-held-during-data-change",
	"breaks-dependents",
	"security-definer-search-path",
	"table-without-rls",
	"write-grant-to-api-role",
	"enum-value-in-transaction",
	"not-linted",
	NULL
};

/* The rules, "a, b, c", for messages. */
char *
lint_rule_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; lint_rules[i]; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", lint_rules[i]);
	return buf.data;
}

/* Whether `rule` names a rule. */
bool
lint_rule_exists(const char *rule)
{
	for (int i = 0; lint_rules[i]; i++)
		if (strcmp(lint_rules[i], rule) == 0)
			return true;
	return false;
}

const char *
lint_severity_name(LintSeverity s)
{
	return s == LINT_ERROR ? "error" : s == LINT_WARNING ? "warning" : "info";
}

/* The SQL name of a lock mode, as LOCK TABLE spells it. */
static const char *
lock_name(LOCKMODE mode)
{
	static const char *const names[] = {
		NULL, "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
		"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"
	};

	return (mode >= 1 && mode <= 8) ? names[mode] : NULL;
}

/* ---- the tables a statement acts on ---- */

typedef struct LintTable
{
	Oid			relid;			/* InvalidOid: does not exist now */
	char	   *name;			/* qualified when it exists, else as written */
	bool		is_new;			/* created in this plan (or not there yet) */
	bool		estimated;		/* rows estimated from its size: never analysed */
	double		rows;			/* -1: unknown */
	int64		bytes;			/* -1: unknown */
} LintTable;

/*
 * What one lint call keeps across the statements and migrations it reads.
 * Each migration is read in a memory context emptied after it; what the
 * run keeps (the findings, what the plan did so far) is made in keep_cxt
 * (KEEP()).
 */
typedef struct LintRun
{
	MemoryContext keep_cxt;
	List	   *created;		/* RangeVars created so far in the plan */
	List	   *findings;		/* LintFinding *, in order */
	/* the migration being read */
	Migration  *m;
	Script	   *script;
	int			stmt;			/* 0-based */
	bool		one_transaction;	/* its statements share a transaction (not a non-transactional one) */
	int		   *line_starts;	/* offset of each line of the script (1-based), once needed */
	int			nlines;
	List	   *strong_locks;	/* (LintTable *, lock name, line) held so far: a List of 3-lists */
	List	   *enum_values;	/* values this migration adds */
	List	   *rls_enabled;	/* RangeVars given ENABLE ROW LEVEL SECURITY in it */
	List	   *pending_rls;	/* (RangeVar, API role, statement) of tables created in an API schema */
	/* across the plan */
	List	   *not_null_checks;	/* "table\ncolumn" of checks (col IS NOT NULL) validated in the plan */
	List	   *pending_checks; /* (constraint name, "table\ncolumn") added NOT VALID in the plan */
	List	   *validated;		/* "table\nconstraint" validated in the plan */
	List	   *dropped_rels;	/* OIDs of tables and views dropped so far in the plan */
	List	   *dropped_constraints;	/* "table\nconstraint" dropped so far in the plan */
} LintRun;

/* Run `stmt` with what it makes kept for the whole lint call. */
#define KEEP(run, stmt) \
	do { \
		MemoryContext keep_old_ = MemoryContextSwitchTo((run)->keep_cxt); \
		stmt; \
		MemoryContextSwitchTo(keep_old_); \
	} while (0)

static bool
rangevar_equal(RangeVar *a, RangeVar *b)
{
	return strcmp(a->relname, b->relname) == 0 &&
		(a->schemaname == NULL || b->schemaname == NULL || strcmp(a->schemaname, b->schemaname) == 0);
}

/* Size of a relation from its statistics, without a lock. */
static void
stats_size(Oid relid, double *rows, int64 *bytes)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class rel;

	*rows = -1;
	*bytes = -1;
	if (!HeapTupleIsValid(tup))
		return;
	rel = (Form_pg_class) GETSTRUCT(tup);
	*rows = rel->reltuples;
	*bytes = (int64) rel->relpages * BLCKSZ;
	ReleaseSysCache(tup);
}

/*
 * The size of a table now: its statistics, or, when it was never analysed
 * and nobody holds a lock that conflicts with a read, the planner's own
 * estimate from its current size (estimate_rel_size()).  A partitioned
 * table counts its partitions.  Never waits for a lock.
 */
static void
table_size(Oid relid, double *rows, int64 *bytes, bool *estimated)
{
	char		relkind = get_rel_relkind(relid);
	double		reltuples;
	int64		relbytes;

	if (relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *parts = find_all_inheritors(relid, NoLock, NULL);
		ListCell   *lc;
		bool		unknown = false;

		*rows = 0;
		*bytes = 0;
		foreach(lc, parts)
		{
			double		r;
			int64		b;
			bool		e = false;

			if (lfirst_oid(lc) == relid || get_rel_relkind(lfirst_oid(lc)) == RELKIND_PARTITIONED_TABLE)
				continue;
			table_size(lfirst_oid(lc), &r, &b, &e);
			unknown |= (r < 0 && b < 0);
			*estimated |= e;
			*rows += Max(r, 0);
			*bytes += Max(b, 0);
		}
		if (unknown && *rows == 0 && *bytes == 0)
			*rows = *bytes = -1;
		return;
	}
	stats_size(relid, &reltuples, &relbytes);
	*rows = reltuples;
	*bytes = relbytes;
	if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW)
		return;

	/*
	 * The statistics, scaled to the table's size now, as the planner scales
	 * them (a table analysed empty and loaded since is not empty); never
	 * analysed: the planner's density.  Only when the table can be looked
	 * at without waiting; else the statistics, or unknown.
	 */
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
	{
		if (reltuples < 0)
			*rows = *bytes = -1;
		return;
	}
	{
		Relation	rel = try_relation_open(relid, NoLock);

		if (rel)
		{
			BlockNumber real = RelationGetNumberOfBlocks(rel);
			BlockNumber relpages = (BlockNumber) (relbytes / BLCKSZ);
			BlockNumber pages;
			double		tuples;
			double		allvisfrac;

			*bytes = (int64) real * BLCKSZ;
			if (real == 0)
				*rows = 0;
			else if (reltuples >= 0 && relpages > 0)
			{
				*rows = rint(reltuples * real / relpages);
				*estimated = (real != relpages);
			}
			else
			{
				/* the planner's density, over the real size (it assumes 10 pages at least) */
				estimate_rel_size(rel, NULL, &pages, &tuples, &allvisfrac);
				*rows = pages > 0 ? rint(tuples * real / pages) : -1;
				*estimated = true;
			}
			relation_close(rel, NoLock);
		}
		UnlockRelationOid(relid, AccessShareLock);
	}
}

static LintTable *
lint_table(LintRun *run, RangeVar *rv)
{
	LintTable  *t = palloc0(sizeof(LintTable));
	ListCell   *lc;

	t->relid = RangeVarGetRelid(rv, NoLock, true);
	t->rows = -1;
	t->bytes = -1;
	foreach(lc, run->created)
		if (rangevar_equal(lfirst(lc), rv))
			t->is_new = true;
	if (!OidIsValid(t->relid))
	{
		t->is_new = true;
		t->name = rv->schemaname ? psprintf("%s.%s", rv->schemaname, rv->relname) : pstrdup(rv->relname);
		return t;
	}
	t->name = psprintf("%s.%s", get_namespace_name(get_rel_namespace(t->relid)), get_rel_name(t->relid));
	if (!t->is_new)
		table_size(t->relid, &t->rows, &t->bytes, &t->estimated);
	return t;
}

/* Severity of work on a table that grows with its size. */
static LintSeverity
size_severity(LintTable *t)
{
	if (t->is_new || (t->rows == 0 && t->bytes <= 0) || (t->rows < 0 && t->bytes == 0))
		return LINT_INFO;
	if (t->rows < 0 && t->bytes < 0)
		return LINT_WARNING;	/* cannot be told now: another session holds a lock on it */
	if (t->rows >= migrate_lint_large_rows ||
		(migrate_lint_large_bytes > 0 && t->bytes >= (int64) migrate_lint_large_bytes * 1024))
		return LINT_ERROR;
	return LINT_WARNING;
}

/* "1,234 rows, 56 MB" of a table, for messages. */
static char *
size_text(LintTable *t)
{
	if (t->is_new)
		return pstrdup("new in this plan");
	if (t->rows < 0 && t->bytes < 0)
		return pstrdup("size unknown: never analysed, and locked by another session now");
	return psprintf("%s rows%s, %s",
					t->rows < 0 ? "unknown" :
					psprintf(t->estimated && t->rows > 0 ? "about %.0f" : "%.0f", t->rows),
					t->estimated && t->rows > 0 ? " (estimated from its size now)" : "",
					t->bytes < 0 ? "size unknown" :
					text_to_cstring(DatumGetTextPP(DirectFunctionCall1(pg_size_pretty,
																	   Int64GetDatum(t->bytes)))));
}

/* ---- findings ---- */

/* Whether a line (from its start) is blank or a -- comment. */
static bool
blank_or_comment(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	return *p == '\n' || *p == '\0' || (p[0] == '-' && p[1] == '-');
}

/*
 * The rules that "-- migrate:allow" comments before the statement at line
 * `stmt_line` allow: those on the lines just above it, up to the first line
 * that is neither blank nor a comment.
 */
static List *
allowed_rules(LintRun *run, int stmt_line)
{
	const char *text = run->script->text;
	List	   *rules = NIL;

	if (run->line_starts == NULL)
	{
		int			n = 1;

		for (const char *p = text; *p; p++)
			n += (*p == '\n');
		run->line_starts = palloc((n + 1) * sizeof(int));
		run->nlines = n;
		run->line_starts[1] = 0;
		n = 1;
		for (const char *p = text; *p; p++)
			if (*p == '\n')
				run->line_starts[++n] = p + 1 - text;
	}
	for (int line = stmt_line - 1; line >= 1 && line <= run->nlines; line--)
	{
		const char *p = text + run->line_starts[line];

		if (!blank_or_comment(p))
			break;
		rules = list_concat(rules, lint_allow_directive(p, NULL));
	}
	return rules;
}

static LintFinding *
add_finding(LintRun *run, const char *rule, LintSeverity severity, LintTable *t,
			const char *lock, char *message, char *hint)
{
	LintFinding *f = MemoryContextAllocZero(run->keep_cxt, sizeof(LintFinding));
	int			line = run->script->spans[run->stmt].line;
	List	   *allowed = allowed_rules(run, line);
	ListCell   *lc;

	f->seq = list_length(run->findings);
	f->version = run->m->version;
	f->stmt = run->stmt + 1;
	f->line = line;
	f->rule = rule;
	f->severity = severity;
	if (t)
	{
		f->table = MemoryContextStrdup(run->keep_cxt, t->name);
		f->rows = t->is_new ? -1 : t->rows;
		f->bytes = t->is_new ? -1 : t->bytes;
	}
	else
		f->rows = f->bytes = -1;
	f->lock = lock ? MemoryContextStrdup(run->keep_cxt, lock) : NULL;
	f->message = message ? MemoryContextStrdup(run->keep_cxt, message) : NULL;
	f->hint = hint ? MemoryContextStrdup(run->keep_cxt, hint) : NULL;
	foreach(lc, allowed)
		if (strcmp(strVal(lfirst(lc)), rule) == 0)
			f->allowed = true;
	KEEP(run, run->findings = lappend(run->findings, f));
	return f;
}

/*
 * Parse a "-- migrate:allow rule, rule" comment starting at `line` (blanks
 * first): the rules as String nodes, NIL when the line is not one.  An
 * unknown rule name is returned in *unknown (when given), else skipped.
 */
List *
lint_allow_directive(const char *line, char **unknown)
{
	const char *p = line;
	List	   *rules = NIL;

	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] != '-' || p[1] != '-')
		return NIL;
	p += 2;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "migrate:allow", 13) != 0 || (p[13] != ' ' && p[13] != '\t'))
		return NIL;
	p += 13;
	for (;;)
	{
		const char *word;
		char	   *rule;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0' || *p == '\n' || *p == '\r')
			break;
		word = p;
		while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != '\n' && *p != '\r')
			p++;
		rule = pnstrdup(word, p - word);
		if (!lint_rule_exists(rule))
		{
			if (unknown && *unknown == NULL)
				*unknown = rule;
			continue;
		}
		rules = lappend(rules, makeString(rule));
	}
	return rules;
}

/* ---- rules: work under a strong lock ---- */

/* Whether a raw default expression calls a volatile function (nextval(), random(), now() is stable). */
typedef struct VolatileCheck
{
	Node	   *expr;
	bool		is_volatile;
} VolatileCheck;

static void
analyze_default(void *arg)
{
	VolatileCheck *vc = arg;
	SelectStmt *select = makeNode(SelectStmt);
	ResTarget  *target = makeNode(ResTarget);
	RawStmt    *raw = makeNode(RawStmt);
	Query	   *query;

	target->val = copyObject(vc->expr);
	target->location = -1;
	select->targetList = list_make1(target);
	raw->stmt = (Node *) select;
	raw->stmt_location = -1;
	query = parse_analyze_fixedparams(raw, "", NULL, 0, NULL);
	vc->is_volatile = contain_volatile_functions((Node *) query->targetList);
}

static bool
sublink_walker(Node *node, void *arg)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, sublink_walker, arg);
}

static bool
has_sublink(Node *expr)
{
	return sublink_walker(expr, NULL);
}

/*
 * Whether a column default makes ADD COLUMN rewrite the table: a volatile
 * default.  A default that cannot be analysed now (it uses a function an
 * earlier statement creates) counts as volatile: say so rather than miss it.
 */
static bool
default_rewrites(Node *expr, bool *unknown)
{
	VolatileCheck vc = {expr, false};
	Node	   *e = expr;
	ErrorData  *edata;

	*unknown = false;
	while (e && IsA(e, TypeCast))
		e = ((TypeCast *) e)->arg;
	if (e && IsA(e, A_Const))
		return false;
	/* analysing a subquery would lock its tables, and the linter never waits */
	if (has_sublink(expr))
	{
		*unknown = true;
		return true;
	}
	edata = run_in_subtransaction(analyze_default, &vc, false);
	if (edata)
	{
		FreeErrorData(edata);
		*unknown = true;
		return true;
	}
	return vc.is_volatile;
}

static bool
is_serial_type(TypeName *tn)
{
	const char *name;

	if (tn == NULL || tn->names == NIL || list_length(tn->names) != 1 || tn->arrayBounds != NIL)
		return false;
	name = strVal(linitial(tn->names));
	return strcmp(name, "serial") == 0 || strcmp(name, "serial4") == 0 ||
		strcmp(name, "bigserial") == 0 || strcmp(name, "serial8") == 0 ||
		strcmp(name, "smallserial") == 0 || strcmp(name, "serial2") == 0;
}

/* Why ADD COLUMN rewrites the table, or NULL. */
static char *
add_column_rewrite(ColumnDef *def)
{
	ListCell   *lc;

	if (is_serial_type(def->typeName))
		return psprintf("column \"%s\" is serial: every row gets a value from its sequence", def->colname);
	{
		Type		typ = def->typeName ? LookupTypeName(NULL, def->typeName, NULL, true) : NULL;

		if (typ)
		{
			Oid			typid = ((Form_pg_type) GETSTRUCT(typ))->oid;

			ReleaseSysCache(typ);
			if (get_typtype(typid) == TYPTYPE_DOMAIN && DomainHasConstraints(typid))
				return psprintf("column \"%s\" is of domain %s, which has constraints: every row is checked "
								"and written", def->colname, format_type_be(typid));
		}
	}
	foreach(lc, def->constraints)
	{
		Constraint *c = lfirst(lc);
		bool		unknown;

		if (c->contype == CONSTR_IDENTITY)
			return psprintf("column \"%s\" is an identity column: every row gets a value from its sequence",
							def->colname);
		if (c->contype == CONSTR_GENERATED)
			return psprintf("column \"%s\" is generated and stored: every row is computed and written",
							def->colname);
		if (c->contype == CONSTR_DEFAULT && c->raw_expr && default_rewrites(c->raw_expr, &unknown))
			return unknown
				? psprintf("the default of column \"%s\" cannot be checked without running it (a subquery, or "
						   "what an earlier statement creates): a volatile default writes every row", def->colname)
				: psprintf("the default of column \"%s\" is volatile: every row gets its own value, written now",
						   def->colname);
	}
	return NULL;
}

/* Whether a typmod change of one type keeps the stored values (PostgreSQL's *_support functions). */
static bool
typmod_change_keeps_data(Oid type, int32 oldmod, int32 newmod)
{
	if (newmod == oldmod)
		return true;
	switch (type)
	{
		case VARCHAROID:
		case VARBITOID:
			return newmod < 0 || (oldmod >= 0 && newmod >= oldmod);
		case NUMERICOID:
			if (newmod < 0)
				return true;
			if (oldmod < 0)
				return false;
			/* same scale, precision not smaller */
			return ((oldmod - VARHDRSZ) & 0x7ff) == ((newmod - VARHDRSZ) & 0x7ff) &&
				((newmod - VARHDRSZ) >> 16) >= ((oldmod - VARHDRSZ) >> 16);
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TIMEOID:
		case TIMETZOID:
			return newmod < 0 || (oldmod >= 0 && newmod >= oldmod);
		default:
			return false;
	}
}

/* Why ALTER COLUMN TYPE rewrites the table, or NULL. */
static char *
alter_type_rewrite(LintTable *t, AlterTableCmd *cmd)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	HeapTuple	att;
	Oid			oldtype;
	int32		oldmod;
	Oid			newtype;
	int32		newmod;
	Type		typ;

	if (def->raw_default)
		return psprintf("column \"%s\" changes type with USING: every row is computed and written", cmd->name);
	if (!OidIsValid(t->relid))
		return NULL;
	att = SearchSysCacheAttName(t->relid, cmd->name);
	if (!HeapTupleIsValid(att))
		return psprintf("column \"%s\", added earlier in the plan, changes type: the whole table is rewritten",
						cmd->name);
	oldtype = ((Form_pg_attribute) GETSTRUCT(att))->atttypid;
	oldmod = ((Form_pg_attribute) GETSTRUCT(att))->atttypmod;
	ReleaseSysCache(att);
	typ = LookupTypeName(NULL, def->typeName, &newmod, true);
	if (typ == NULL)
		return psprintf("column \"%s\" changes to a type that does not exist now: a change of type "
						"rewrites the table unless the new one is binary-coercible", cmd->name);
	newtype = ((Form_pg_type) GETSTRUCT(typ))->oid;
	ReleaseSysCache(typ);
	if (newtype == oldtype && typmod_change_keeps_data(oldtype, oldmod, newmod))
		return NULL;
	if (newtype != oldtype && IsBinaryCoercible(oldtype, newtype) && newmod < 0)
		return NULL;
	return psprintf("column \"%s\" changes from %s to %s, which is not binary-coercible: every row is rewritten",
					cmd->name, format_type_with_typemod(oldtype, oldmod), format_type_with_typemod(newtype, newmod));
}

/* Whether a check constraint's expression proves attnum NOT NULL (as PostgreSQL's proof would). */
static bool
proves_not_null(Node *expr, AttrNumber attnum)
{
	if (expr == NULL)
		return false;
	if (IsA(expr, NullTest))
	{
		NullTest   *nt = (NullTest *) expr;

		return nt->nulltesttype == IS_NOT_NULL && !nt->argisrow && nt->arg && IsA(nt->arg, Var) &&
			((Var *) nt->arg)->varattno == attnum;
	}
	if (IsA(expr, BoolExpr) && ((BoolExpr *) expr)->boolop == AND_EXPR)
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) expr)->args)
			if (proves_not_null(lfirst(lc), attnum))
				return true;
	}
	if (IsA(expr, List))
	{
		ListCell   *lc;

		foreach(lc, (List *) expr)
			if (proves_not_null(lfirst(lc), attnum))
				return true;
	}
	return false;
}

/*
 * A validated CHECK constraint of the table (in the catalog, or by a VALIDATE
 * earlier in the plan: "table\nconstraint" in `validated`) proves the column
 * NOT NULL: SET NOT NULL skips its scan.
 */
static bool
has_not_null_check(Oid relid, const char *table, const char *column, List *validated)
{
	AttrNumber	attnum = get_attnum(relid, column);
	Relation	conrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (attnum == InvalidAttrNumber)
		return false;
	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		bin;

		if (con->contype != CONSTRAINT_CHECK ||
			(!con->convalidated &&
			 !list_member(validated, makeString(psprintf("%s\n%s", table, NameStr(con->conname))))))
			continue;
		bin = heap_getattr(tup, Anum_pg_constraint_conbin, RelationGetDescr(conrel), &isnull);
		if (!isnull)
			found = proves_not_null(stringToNode(TextDatumGetCString(bin)), attnum);
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return found;
}

/* Whether a column is NOT NULL already: SET NOT NULL does nothing. */
static bool
column_not_null(Oid relid, const char *column)
{
	HeapTuple	att = SearchSysCacheAttName(relid, column);
	bool		result = false;

	if (HeapTupleIsValid(att))
	{
		result = ((Form_pg_attribute) GETSTRUCT(att))->attnotnull;
		ReleaseSysCache(att);
	}
	return result;
}

/* The column a raw CHECK expression proves NOT NULL ("col IS NOT NULL"), or NULL. */
static char *
raw_not_null_column(Node *expr)
{
	NullTest   *nt;
	ColumnRef  *cr;

	if (expr == NULL || !IsA(expr, NullTest))
		return NULL;
	nt = (NullTest *) expr;
	if (nt->nulltesttype != IS_NOT_NULL || nt->arg == NULL || !IsA(nt->arg, ColumnRef))
		return NULL;
	cr = (ColumnRef *) nt->arg;
	if (list_length(cr->fields) != 1 || !IsA(linitial(cr->fields), String))
		return NULL;
	return strVal(linitial(cr->fields));
}

static char *
table_column_key(LintTable *t, const char *column)
{
	return psprintf("%s\n%s", t->name, column);
}

/* ---- rules: what others still use ---- */

/* The relation a rewrite rule (a view's _RETURN) belongs to. */
static Oid
rule_relation(Oid rule)
{
	Relation	rel = table_open(RewriteRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	ScanKeyInit(&key, Anum_pg_rewrite_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(rule));
	scan = systable_beginscan(rel, RewriteOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		result = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * What depends on a table (attnum 0) or one of its columns, other than the
 * table itself: views, foreign keys of other tables, functions with SQL
 * bodies; not what the plan drops before (run->dropped_rels,
 * run->dropped_constraints).  Descriptions.
 */
static List *
dependents(LintRun *run, Oid relid, AttrNumber attnum)
{
	Relation	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(deprel, DependReferenceIndexId, true, NULL, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
		char	   *what = NULL;

		if (dep->deptype != DEPENDENCY_NORMAL)
			continue;
		if (attnum != 0 && dep->refobjsubid != attnum)
			continue;
		if (dep->classid == RewriteRelationId)
		{
			Oid			view = rule_relation(dep->objid);

			if (OidIsValid(view) && view != relid && !list_member_oid(run->dropped_rels, view))
				what = psprintf("view %s.%s", get_namespace_name(get_rel_namespace(view)), get_rel_name(view));
		}
		else if (dep->classid == ConstraintRelationId || dep->classid == ProcedureRelationId)
		{
			ObjectAddress addr = {dep->classid, dep->objid, 0};

			what = getObjectDescription(&addr, true);
			/* a constraint of the table itself goes with it */
			if (dep->classid == ConstraintRelationId)
			{
				HeapTuple	con = SearchSysCache1(CONSTROID, ObjectIdGetDatum(dep->objid));

				if (HeapTupleIsValid(con))
				{
					Form_pg_constraint c = (Form_pg_constraint) GETSTRUCT(con);

					if (c->conrelid == relid || list_member_oid(run->dropped_rels, c->conrelid) ||
						list_member(run->dropped_constraints,
									makeString(psprintf("%s.%s\n%s", get_namespace_name(get_rel_namespace(c->conrelid)),
														get_rel_name(c->conrelid), NameStr(c->conname)))))
						what = NULL;
					ReleaseSysCache(con);
				}
			}
		}
		if (what && !list_member(result, makeString(what)))
			result = lappend(result, makeString(what));
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);
	return result;
}

static char *
list_text(List *names)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (foreach_current_index(lc) == 3)
		{
			appendStringInfo(&buf, " and %d more", list_length(names) - 3);
			break;
		}
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", strVal(lfirst(lc)));
	}
	return buf.data;
}

static void
check_dependents(LintRun *run, LintTable *t, const char *column, bool drop, bool cascade)
{
	List	   *deps;
	AttrNumber	attnum = 0;
	const char *what;

	if (!OidIsValid(t->relid) || t->is_new)
		return;
	if (column)
	{
		attnum = get_attnum(t->relid, column);
		if (attnum == InvalidAttrNumber)
			return;
	}
	deps = dependents(run, t->relid, attnum);
	if (deps == NIL)
		return;
	what = column ? psprintf("column \"%s\" of %s", column, t->name) : psprintf("table %s", t->name);
	if (drop)
		add_finding(run, "breaks-dependents", LINT_ERROR, t, NULL,
					cascade ? psprintf("DROP ... CASCADE of %s drops what uses it: %s", what, list_text(deps))
					: psprintf("%s is still used by %s: the DROP fails", what, list_text(deps)),
					pstrdup("Change or drop what uses it first, in an earlier migration, then drop it."));
	else
		add_finding(run, "breaks-dependents", LINT_WARNING, t, NULL,
					psprintf("renaming %s, which %s use%s: they follow the rename, but application queries "
							 "and PL/pgSQL bodies that name it break", what, list_text(deps),
							 list_length(deps) == 1 ? "s" : ""),
					pstrdup("Rename in steps: add the new name (a column written by both, or a view), move "
							"the readers, then drop the old name in a later migration."));
}

/* ---- statements ---- */

/*
 * A lock of SHARE or stronger, taken by a statement on an existing table,
 * is held to the end of the migration's transaction (not in a
 * non-transactional migration, whose statements commit one by one).
 */
static void
note_strong_lock(LintRun *run, LintTable *t, LOCKMODE mode)
{
	if (t->is_new || mode < ShareLock || !run->one_transaction)
		return;
	run->strong_locks = lappend(run->strong_locks,
								list_make3(t, (void *) lock_name(mode),
										   makeInteger(run->script->spans[run->stmt].line)));
}

/* The strong lock an earlier statement of the migration holds on t: (t, lock name, line), or NIL. */
static List *
strong_lock_held(LintRun *run, LintTable *t)
{
	ListCell   *lc;

	foreach(lc, run->strong_locks)
	{
		List	   *held = lfirst(lc);

		if (strcmp(((LintTable *) linitial(held))->name, t->name) == 0)
			return held;
	}
	return NIL;
}

static void
lint_alter_table(LintRun *run, AlterTableStmt *stmt)
{
	LintTable  *t;
	List	   *held;
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_MATVIEW)
		return;
	t = lint_table(run, stmt->relation);
	held = strong_lock_held(run, t);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		const char *lock = lock_name(AlterTableGetLockLevel(list_make1(cmd)));
		char	   *why = NULL;

		switch (cmd->subtype)
		{
			case AT_AddColumn:
				why = add_column_rewrite((ColumnDef *) cmd->def);
				if (why == NULL && !t->is_new)
				{
					ListCell   *lc2;

					foreach(lc2, ((ColumnDef *) cmd->def)->constraints)
						if (((Constraint *) lfirst(lc2))->contype == CONSTR_FOREIGN)
							add_finding(run, "scan-under-lock", size_severity(t), t, lock,
										psprintf("ADD COLUMN \"%s\" with REFERENCES checks every row of %s (%s) under %s",
												 ((ColumnDef *) cmd->def)->colname, t->name, size_text(t), lock),
										pstrdup("Add the column, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, "
												"then VALIDATE CONSTRAINT in a later migration (it takes a lock "
												"that lets reads and writes go on)."));
				}
				break;
			case AT_AlterColumnType:
				why = alter_type_rewrite(t, cmd);
				break;
			case AT_SetLogged:
			case AT_SetUnLogged:
				/* to what it is already: nothing is done */
				if (OidIsValid(t->relid) &&
					get_rel_persistence(t->relid) == (cmd->subtype == AT_SetLogged ? RELPERSISTENCE_PERMANENT
													  : RELPERSISTENCE_UNLOGGED))
					break;
				why = psprintf("SET %sLOGGED writes the whole table anew", cmd->subtype == AT_SetLogged ? "" : "UN");
				break;
			case AT_SetNotNull:
				{
					char	   *key = table_column_key(t, cmd->name);

					if (t->is_new || !OidIsValid(t->relid) || column_not_null(t->relid, cmd->name) ||
						list_member(run->not_null_checks, makeString(key)) ||
						has_not_null_check(t->relid, t->name, cmd->name, run->validated))
						break;
					add_finding(run, "scan-under-lock", size_severity(t), t, lock,
								psprintf("SET NOT NULL on \"%s\" scans every row of %s (%s) under %s",
										 cmd->name, t->name, size_text(t), lock),
								psprintf("First ADD CONSTRAINT c CHECK (%s IS NOT NULL) NOT VALID; in a later "
										 "migration VALIDATE CONSTRAINT c (a lock that lets reads and writes go on); "
										 "then SET NOT NULL skips the scan, and the check can be dropped.",
										 quote_identifier(cmd->name)));
					break;
				}
			case AT_AddConstraint:
				{
					Constraint *c = (Constraint *) cmd->def;
					char	   *column;

					if (c->contype == CONSTR_CHECK && (column = raw_not_null_column(c->raw_expr)) != NULL)
					{
						if (c->skip_validation && c->conname)
							KEEP(run, run->pending_checks = lappend(run->pending_checks,
																	list_make2(makeString(pstrdup(c->conname)),
																			   makeString(table_column_key(t, column)))));
						else
							KEEP(run, run->not_null_checks = lappend(run->not_null_checks,
																	 makeString(table_column_key(t, column))));
					}
					if (t->is_new)
						break;
					if ((c->contype == CONSTR_FOREIGN || c->contype == CONSTR_CHECK) && !c->skip_validation)
						add_finding(run, "scan-under-lock", size_severity(t), t, lock,
									psprintf("ADD %s checks every row of %s (%s) under %s",
											 c->contype == CONSTR_FOREIGN ? "FOREIGN KEY" : "CHECK",
											 t->name, size_text(t), lock),
									pstrdup("Add it NOT VALID (new rows are checked at once), then VALIDATE "
											"CONSTRAINT in a later migration: that scan takes a lock that lets "
											"reads and writes go on."));
					else if ((c->contype == CONSTR_PRIMARY || c->contype == CONSTR_UNIQUE ||
							  c->contype == CONSTR_EXCLUSION) && c->indexname == NULL)
						add_finding(run, "scan-under-lock", size_severity(t), t, lock,
									psprintf("ADD %s builds its index over every row of %s (%s) under %s",
											 c->contype == CONSTR_PRIMARY ? "PRIMARY KEY" :
											 c->contype == CONSTR_UNIQUE ? "UNIQUE" : "EXCLUDE",
											 t->name, size_text(t), lock),
									pstrdup("CREATE UNIQUE INDEX CONCURRENTLY first (in a migration of its own), "
											"then ADD CONSTRAINT ... USING INDEX."));
					break;
				}
			case AT_ValidateConstraint:
				{
					ListCell   *lc2;

					KEEP(run, run->validated = lappend(run->validated,
													   makeString(psprintf("%s\n%s", t->name, cmd->name))));
					if (held && !t->is_new)
						add_finding(run, "scan-under-lock", size_severity(t), t, (char *) lsecond(held),
									psprintf("VALIDATE CONSTRAINT %s scans every row of %s (%s) while %s on it, "
											 "taken at line %d, is held", quote_identifier(cmd->name), t->name,
											 size_text(t), (char *) lsecond(held), intVal(lthird(held))),
									pstrdup("Validate in a migration of its own, after the one that adds the "
											"constraint NOT VALID: alone, VALIDATE takes a lock that lets reads "
											"and writes go on."));
					foreach(lc2, run->pending_checks)
					{
						List	   *pc = lfirst(lc2);

						if (strcmp(strVal(linitial(pc)), cmd->name) == 0)
							KEEP(run, run->not_null_checks = lappend(run->not_null_checks, lsecond(pc)));
					}
					break;
				}
			case AT_DropColumn:
				check_dependents(run, t, cmd->name, true, cmd->behavior == DROP_CASCADE);
				break;
			case AT_DropConstraint:
				KEEP(run, run->dropped_constraints = lappend(run->dropped_constraints,
															 makeString(psprintf("%s\n%s", t->name, cmd->name))));
				break;
			case AT_EnableRowSecurity:
				run->rls_enabled = lappend(run->rls_enabled, copyObject(stmt->relation));
				break;
			default:
				break;
		}
		if (why && !t->is_new)
			add_finding(run, "table-rewrite", size_severity(t), t, lock,
						psprintf("%s rewrites %s (%s) under %s: %s", "ALTER TABLE", t->name, size_text(t), lock, why),
						pstrdup("Expand and contract: add a nullable column without a volatile default, backfill "
								"it in batches (a batched migration), then add the constraint NOT VALID and "
								"VALIDATE it."));
	}
	note_strong_lock(run, t, AlterTableGetLockLevel(stmt->cmds));
}

static void
lint_index(LintRun *run, IndexStmt *stmt)
{
	LintTable  *t = lint_table(run, stmt->relation);

	if (stmt->concurrent || t->is_new)
		return;
	note_strong_lock(run, t, ShareLock);
	add_finding(run, "index-without-concurrently", size_severity(t), t, "SHARE",
				psprintf("CREATE INDEX builds over every row of %s (%s) while its writes wait (SHARE lock)",
						 t->name, size_text(t)),
				get_rel_relkind(t->relid) == RELKIND_PARTITIONED_TABLE
				? pstrdup("A partitioned table takes no CONCURRENTLY: CREATE INDEX ... ON ONLY it (at once, "
						  "invalid), then CREATE INDEX CONCURRENTLY on each partition and ALTER INDEX ... ATTACH "
						  "PARTITION each (a job runs them).")
				: pstrdup("CREATE INDEX CONCURRENTLY, in a migration of its own (a job runs it, outside a transaction)."));
}

static void
lint_reindex(LintRun *run, ReindexStmt *stmt)
{
	ListCell   *lc;
	LintTable  *t;

	foreach(lc, stmt->params)
		if (strcmp(((DefElem *) lfirst(lc))->defname, "concurrently") == 0 && defGetBoolean(lfirst(lc)))
			return;
	if (stmt->relation == NULL)
		return;
	t = lint_table(run, stmt->relation);
	if (stmt->kind == REINDEX_OBJECT_INDEX && OidIsValid(t->relid))
	{
		Oid			heap = IndexGetRelation(t->relid, true);

		if (OidIsValid(heap))
		{
			t->relid = heap;
			t->name = psprintf("%s.%s", get_namespace_name(get_rel_namespace(heap)), get_rel_name(heap));
			table_size(heap, &t->rows, &t->bytes, &t->estimated);
		}
	}
	if (t->is_new)
		return;
	add_finding(run, "index-without-concurrently", size_severity(t), t, "SHARE",
				psprintf("REINDEX rebuilds over every row of %s (%s) while its writes wait and readers of the index wait",
						 t->name, size_text(t)),
				pstrdup("REINDEX ... CONCURRENTLY, in a migration of its own (a job runs it)."));
	note_strong_lock(run, t, ShareLock);
}

static void
lint_rewrite_all(LintRun *run, RangeVar *rv, const char *what)
{
	LintTable  *t = lint_table(run, rv);

	if (t->is_new)
		return;
	note_strong_lock(run, t, AccessExclusiveLock);
	add_finding(run, "table-rewrite", size_severity(t), t, "ACCESS EXCLUSIVE",
				psprintf("%s rewrites %s (%s) under ACCESS EXCLUSIVE: nothing reads or writes it meanwhile",
						 what, t->name, size_text(t)),
				pstrdup("Leave it to maintenance (pg_repack rewrites without the long lock), not a migration."));
}

static void
lint_data_change(LintRun *run, RangeVar *rv, const char *what)
{
	LintTable  *t;
	ListCell   *lc;

	if (run->strong_locks == NIL || rv == NULL)
		return;
	t = lint_table(run, rv);
	if (size_severity(t) == LINT_INFO)
		return;
	foreach(lc, run->strong_locks)
	{
		List	   *held = lfirst(lc);
		LintTable  *locked = linitial(held);

		add_finding(run, "lock-held-during-data-change", size_severity(t), t, NULL,
					psprintf("%s of %s (%s) runs while %s on %s, taken at line %d, is held: it waits until the "
							 "migration commits", what, t->name, size_text(t), (char *) lsecond(held), locked->name,
							 intVal(lthird(held))),
					pstrdup("Move the data change into a migration of its own (or a batched one), before or after "
							"the one that takes the lock."));
		break;					/* one finding per statement: the first lock */
	}
}

static bool
has_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, name) == 0)
			return true;
	return false;
}

static void
lint_function(LintRun *run, CreateFunctionStmt *stmt)
{
	ListCell   *lc;
	bool		definer = false;
	bool		pinned = false;

	foreach(lc, stmt->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "security") == 0)
			definer = defGetBoolean(d);
		else if (strcmp(d->defname, "set") == 0 && IsA(d->arg, VariableSetStmt) &&
				 ((VariableSetStmt *) d->arg)->name != NULL &&	/* RESET ALL has none */
				 strcmp(((VariableSetStmt *) d->arg)->name, "search_path") == 0)
			pinned = true;
	}
	if (definer && !pinned)
		add_finding(run, "security-definer-search-path", LINT_WARNING, NULL, NULL,
					psprintf("SECURITY DEFINER function %s runs with its caller's search_path: a caller can "
							 "put its own objects in front of the ones it means", NameListToString(stmt->funcname)),
					pstrdup("Pin it: SET search_path = pg_catalog, pg_temp (and qualify the names it uses), "
							"or SET search_path = '' ."));
}

/* The API roles of a Supabase-like project that exist here. */
static List *
api_roles(void)
{
	List	   *roles = NIL;
	const char *names[] = {"anon", "authenticated"};

	for (int i = 0; i < 2; i++)
		if (OidIsValid(get_role_oid(names[i], true)))
			roles = lappend(roles, (void *) names[i]);
	return roles;
}

static void
lint_create_table(LintRun *run, RangeVar *rv, bool if_not_exists)
{
	Oid			nsp;
	ListCell   *lc;

	/* IF NOT EXISTS of a table that is there: nothing is created */
	if (if_not_exists && OidIsValid(RangeVarGetRelid(rv, NoLock, true)))
		return;
	/* kept after the statement's parse tree and the migration are gone */
	KEEP(run, run->created = lappend(run->created, rv = copyObject(rv)));
	if (rv->relpersistence == RELPERSISTENCE_TEMP)
		return;
	/* a schema an earlier statement creates is not there to look at */
	nsp = rv->schemaname ? get_namespace_oid(rv->schemaname, true) : RangeVarGetCreationNamespace(rv);
	if (!OidIsValid(nsp))
		return;
	foreach(lc, api_roles())
	{
		Oid			role = get_role_oid(lfirst(lc), false);

		if (pg_namespace_aclcheck(nsp, role, ACL_USAGE) == ACLCHECK_OK)
		{
			run->pending_rls = lappend(run->pending_rls,
									   list_make3(rv, lfirst(lc), makeInteger(run->stmt)));
			break;
		}
	}
}

/* Tables created in schemas an API role uses, without ROW LEVEL SECURITY by the end of the migration. */
static void
finish_rls(LintRun *run)
{
	ListCell   *lc;
	int			stmt = run->stmt;
	LintTable	t = {InvalidOid, NULL, true, false, -1, -1};

	foreach(lc, run->pending_rls)
	{
		List	   *p = lfirst(lc);
		RangeVar   *rv = linitial(p);
		ListCell   *le;
		bool		enabled = false;

		foreach(le, run->rls_enabled)
			if (rangevar_equal(lfirst(le), rv))
				enabled = true;
		if (enabled)
			continue;
		run->stmt = intVal(lthird(p));
		t.name = psprintf("%s.%s", rv->schemaname ? rv->schemaname
						  : get_namespace_name(RangeVarGetCreationNamespace(rv)), rv->relname);
		add_finding(run, "table-without-rls", LINT_WARNING, &t, NULL,
					psprintf("table %s is created in a schema that role %s can use, and this migration does "
							 "not enable row level security on it", t.name, (char *) lsecond(p)),
					psprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, and add the policies it needs, in the "
							 "same migration.", quote_identifier(rv->relname)));
	}
	run->stmt = stmt;
	run->pending_rls = NIL;
}

static void
lint_grant(LintRun *run, GrantStmt *stmt)
{
	ListCell   *lc;
	List	   *writes = NIL;
	List	   *to = NIL;

	if (!stmt->is_grant || stmt->objtype != OBJECT_TABLE)
		return;
	if (stmt->privileges == NIL)
		writes = lappend(writes, makeString("ALL"));
	foreach(lc, stmt->privileges)
	{
		AccessPriv *p = lfirst(lc);

		if (p->priv_name == NULL)
			writes = lappend(writes, makeString("ALL"));
		else if (strcmp(p->priv_name, "insert") == 0 || strcmp(p->priv_name, "update") == 0 ||
				 strcmp(p->priv_name, "delete") == 0 || strcmp(p->priv_name, "truncate") == 0)
			writes = lappend(writes, makeString(asc_toupper(p->priv_name, strlen(p->priv_name))));
	}
	if (writes == NIL)
		return;
	foreach(lc, stmt->grantees)
	{
		RoleSpec   *r = lfirst(lc);

		if (r->roletype == ROLESPEC_PUBLIC)
			to = lappend(to, makeString("PUBLIC"));
		else if (r->roletype == ROLESPEC_CSTRING &&
				 (strcmp(r->rolename, "anon") == 0 || strcmp(r->rolename, "authenticated") == 0))
			to = lappend(to, makeString(r->rolename));
	}
	if (to == NIL)
		return;
	add_finding(run, "write-grant-to-api-role", LINT_WARNING, NULL, NULL,
				psprintf("GRANT %s to %s: anyone who can connect as %s can write these tables",
						 list_text(writes), list_text(to), list_length(to) == 1 ? "it" : "them"),
				pstrdup("Grant the writes to the roles that need them, or keep row level security with "
						"policies on every table granted."));
}

static void
lint_statement(LintRun *run, ScriptStmt *st)
{
	Node	   *tree = st->parsetree;
	ListCell   *lc;

	CHECK_FOR_INTERRUPTS();
	/* a use of an enum value added earlier in this migration */
	foreach(lc, run->enum_values)
		if (stmt_uses_value(st, strVal(lfirst(lc))))
		{
			add_finding(run, "enum-value-in-transaction", LINT_ERROR, NULL, NULL,
						psprintf("enum value %s is used in the transaction that adds it: PostgreSQL refuses "
								 "it before that commits (55P04)", quote_literal_cstr(strVal(lfirst(lc)))),
						pstrdup("Move the use into a later migration (CALL migrate_run() and jobs commit between migrations)."));
			break;
		}

	switch (nodeTag(tree))
	{
		case T_AlterTableStmt:
			lint_alter_table(run, (AlterTableStmt *) tree);
			break;
		case T_IndexStmt:
			lint_index(run, (IndexStmt *) tree);
			break;
		case T_ReindexStmt:
			lint_reindex(run, (ReindexStmt *) tree);
			break;
		case T_VacuumStmt:
			{
				VacuumStmt *v = (VacuumStmt *) tree;

				if (!v->is_vacuumcmd || !has_option(v->options, "full"))
					break;
				foreach(lc, v->rels)
					lint_rewrite_all(run, ((VacuumRelation *) lfirst(lc))->relation, "VACUUM FULL");
				break;
			}
		case T_ClusterStmt:
			if (((ClusterStmt *) tree)->relation)
				lint_rewrite_all(run, ((ClusterStmt *) tree)->relation, "CLUSTER");
			break;
		case T_CreateStmt:
			lint_create_table(run, ((CreateStmt *) tree)->relation, ((CreateStmt *) tree)->if_not_exists);
			break;
		case T_CreateTableAsStmt:
			if (((CreateTableAsStmt *) tree)->objtype == OBJECT_TABLE)
				lint_create_table(run, ((CreateTableAsStmt *) tree)->into->rel,
								  ((CreateTableAsStmt *) tree)->if_not_exists);
			break;
		case T_UpdateStmt:
			lint_data_change(run, ((UpdateStmt *) tree)->relation, "UPDATE");
			break;
		case T_DeleteStmt:
			lint_data_change(run, ((DeleteStmt *) tree)->relation, "DELETE");
			break;
		case T_InsertStmt:
			if (((InsertStmt *) tree)->selectStmt &&
				((SelectStmt *) ((InsertStmt *) tree)->selectStmt)->valuesLists == NIL)
				lint_data_change(run, ((InsertStmt *) tree)->relation, "INSERT ... SELECT");
			break;
		case T_MergeStmt:
			lint_data_change(run, ((MergeStmt *) tree)->relation, "MERGE");
			break;
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) tree;

				if (r->relation && (r->renameType == OBJECT_TABLE || r->renameType == OBJECT_COLUMN))
					check_dependents(run, lint_table(run, r->relation),
									 r->renameType == OBJECT_COLUMN ? r->subname : NULL, false, false);
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) tree;
				List	   *tables = NIL;

				if (d->removeType != OBJECT_TABLE && d->removeType != OBJECT_VIEW &&
					d->removeType != OBJECT_MATVIEW)
					break;
				/* what the statement drops does not hold up the rest of it */
				foreach(lc, d->objects)
				{
					LintTable  *t = lint_table(run, makeRangeVarFromNameList(lfirst(lc)));

					tables = lappend(tables, t);
					if (OidIsValid(t->relid))
						KEEP(run, run->dropped_rels = lappend_oid(run->dropped_rels, t->relid));
				}
				if (d->removeType != OBJECT_TABLE)
					break;
				foreach(lc, tables)
					check_dependents(run, lfirst(lc), NULL, true, d->behavior == DROP_CASCADE);
				break;
			}
		case T_LockStmt:
			{
				LockStmt   *l = (LockStmt *) tree;

				foreach(lc, l->relations)
					note_strong_lock(run, lint_table(run, lfirst(lc)), l->mode);
				break;
			}
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) tree)->relations)
				note_strong_lock(run, lint_table(run, lfirst(lc)), AccessExclusiveLock);
			break;
		case T_CreateFunctionStmt:
			lint_function(run, (CreateFunctionStmt *) tree);
			break;
		case T_GrantStmt:
			lint_grant(run, (GrantStmt *) tree);
			break;
		default:
			break;
	}

	{
		const char *added = stmt_new_enum_value(tree);

		if (added && run->one_transaction)
			run->enum_values = lappend(run->enum_values, makeString(pstrdup(added)));
	}
}

/* Lint one migration's up script, adding to run->findings. */
static int
finding_cmp(const ListCell *a, const ListCell *b)
{
	LintFinding *fa = lfirst(a);
	LintFinding *fb = lfirst(b);

	if (fa->stmt != fb->stmt)
		return fa->stmt < fb->stmt ? -1 : 1;
	return fa->seq < fb->seq ? -1 : fa->seq > fb->seq;
}

/* Parse the up script and read every statement (in a subtransaction: lint_one()). */
static void
lint_script(void *arg)
{
	LintRun    *run = arg;

	run->script = migration_script(run->m, "up");
	for (run->stmt = 0; run->stmt < run->script->nstmts; run->stmt++)
		lint_statement(run, script_stmt(run->script, run->stmt));
	run->stmt = 0;
	finish_rls(run);
}

static void
lint_one(LintRun *run, Migration *m)
{
	int			first = list_length(run->findings);
	ErrorData  *edata;

	if (m->batch != NULL)
		return;
	if (m->up == NULL)
		m->up = (char *) migration_up_text(m);
	if (m->up == NULL)
		return;
	run->m = m;
	run->script = NULL;
	run->one_transaction = m->transactional;
	run->line_starts = NULL;
	run->strong_locks = NIL;
	run->enum_values = NIL;
	run->rls_enabled = NIL;
	run->pending_rls = NIL;

	/*
	 * A script that does not parse is for apply to report, with its line;
	 * a name the caller may not look up (a schema without USAGE), a type
	 * modifier its type refuses: the migration is not linted, and says so.
	 */
	edata = run_in_subtransaction(lint_script, run, false);
	/* a cancel, a shutdown, running out of memory: not a finding */
	if (edata && (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION ||
				  ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES ||
				  ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_PROGRAM_LIMIT_EXCEEDED))
		ReThrowError(edata);
	if (edata)
	{
		run->findings = list_truncate(run->findings, first);
		if (run->script && run->script->nstmts > 0)
		{
			run->stmt = Min(run->stmt, run->script->nstmts - 1);
			add_finding(run, "not-linted", LINT_WARNING, NULL, NULL,
						psprintf("the migration could not be linted at statement %d: %s", run->stmt + 1,
								 edata->message),
						pstrdup("Run migrate_lint() as a role that can see every object the migration "
								"names, or review the statement by hand."));
			run->stmt = 0;
		}
		FreeErrorData(edata);
	}
	/* a migration's findings in statement order (the end-of-migration ones last found) */
	if (list_length(run->findings) > first + 1)
	{
		List	   *mine = list_copy_tail(run->findings, first);

		list_sort(mine, finding_cmp);
		KEEP(run, run->findings = list_concat(list_truncate(run->findings, first), mine));
	}
}

/*
 * The findings of the planned steps, in order (LintFinding *).  Each
 * step's up script must be loaded (m->up).
 */
List *
lint_steps(List *steps)
{
	LintRun		run = {0};
	MemoryContext migration_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate lint migration",
														ALLOCSET_DEFAULT_SIZES);
	ListCell   *lc;

	run.keep_cxt = CurrentMemoryContext;
	foreach(lc, steps)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;
		MemoryContext old;

		if (m->up == NULL && m->batch == NULL)
			m->up = (char *) migration_up_text(m);	/* the caller's migration keeps it */
		old = MemoryContextSwitchTo(migration_cxt);
		lint_one(&run, m);
		MemoryContextSwitchTo(old);
		MemoryContextReset(migration_cxt);
	}
	MemoryContextDelete(migration_cxt);
	return run.findings;
}

/* "error table-rewrite, line 3: ..." of a finding, for plans and messages. */
char *
lint_finding_text(LintFinding *f)
{
	return psprintf("%s %s, line %d: %s%s", lint_severity_name(f->severity), f->rule, f->line, f->message,
					f->allowed ? " (allowed)" : "");
}

/*
 * Before migrate_apply(), migrate_run() or a job starts: with migrate.lint =
 * 'error', an error finding that is not allowed refuses the call (0A000,
 * every such finding listed); with 'warn' each is a WARNING; with 'off'
 * nothing is linted.  `what` names the call.
 */
void
lint_refuse(List *steps, const char *what)
{
	List	   *findings;
	ListCell   *lc;
	StringInfoData detail;
	int			n = 0;
	LintFinding *first = NULL;

	if (migrate_lint_mode == LINT_MODE_OFF || steps == NIL)
		return;
	findings = lint_steps(steps);
	initStringInfo(&detail);
	foreach(lc, findings)
	{
		LintFinding *f = lfirst(lc);

		if (f->severity != LINT_ERROR || f->allowed)
			continue;
		if (migrate_lint_mode == LINT_MODE_WARN)
		{
			ereport(WARNING,
					(errmsg("migration %s, statement %d, line %d: %s", f->version, f->stmt, f->line, f->message),
					 errdetail("Lint rule %s (error); migrate.lint = 'warn' lets it run.", f->rule),
					 errhint("%s", f->hint)));
			continue;
		}
		if (first == NULL)
			first = f;
		n++;
		appendStringInfo(&detail, "%sMigration %s, statement %d, line %d, %s: %s",
						 detail.len ? "\n" : "", f->version, f->stmt, f->line, f->rule, f->message);
	}
	if (n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s refused: %d lint error%s in the pending migrations", what, n, n == 1 ? "" : "s"),
				 errdetail("%s", detail.data),
				 errhint("%s Or allow it for that statement with a comment on the line before it: "
						 "-- migrate:allow %s (SELECT * FROM migrate_lint() lists every finding; "
						 "SET migrate.lint = 'warn' lets them run).", first->hint, first->rule)));
}

/*
 * In a dry run: each error and warning finding not allowed is a WARNING,
 * and the dry run goes on (what migrate_apply() would refuse is said so).
 */
void
lint_report(List *steps)
{
	ListCell   *lc;

	if (migrate_lint_mode == LINT_MODE_OFF || steps == NIL)
		return;
	foreach(lc, lint_steps(steps))
	{
		LintFinding *f = lfirst(lc);

		if (f->severity == LINT_INFO || f->allowed)
			continue;
		ereport(WARNING,
				(errmsg("migration %s, statement %d, line %d: %s", f->version, f->stmt, f->line, f->message),
				 errdetail("Lint rule %s (%s)%s.", f->rule, lint_severity_name(f->severity),
						   f->severity == LINT_ERROR && migrate_lint_mode == LINT_MODE_ERROR
						   ? ": migrate_apply() refuses to run it" : ""),
				 errhint("%s", f->hint)));
	}
}

/* ---- migrate_lint() ---- */

Datum
migrate_lint(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *version = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	Catalog    *cat;
	List	   *steps = NIL;
	List	   *findings;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	cat = catalog_load(true);
	if (version)
	{
		char	   *key = version_key(version);
		PlanStep   *s = NULL;

		for (int i = 0; i < cat->n; i++)
			if (strcmp(cat->items[i]->key, key) == 0)
			{
				s = palloc0(sizeof(PlanStep));
				s->m = cat->items[i];
			}
		if (s == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("migration %s is not registered", version),
					 errhint("SELECT * FROM migrate_status() lists the registered migrations.")));
		s->m->up = (char *) migration_up_text(s->m);
		steps = list_make1(s);
	}
	else
		steps = plan_pending(cat, NULL, false, true);
	findings = lint_steps(steps);
	foreach(lc, findings)
	{
		LintFinding *f = lfirst(lc);
		Datum		values[12];
		bool		nulls[12] = {0};

		values[0] = CStringGetTextDatum(f->version);
		values[1] = Int32GetDatum(f->stmt);
		values[2] = Int32GetDatum(f->line);
		values[3] = CStringGetTextDatum(f->rule);
		values[4] = CStringGetTextDatum(lint_severity_name(f->severity));
		values[5] = f->table ? CStringGetTextDatum(f->table) : (Datum) 0;
		nulls[5] = f->table == NULL;
		values[6] = Int64GetDatum((int64) f->rows);
		nulls[6] = f->rows < 0;
		values[7] = Int64GetDatum(f->bytes);
		nulls[7] = f->bytes < 0;
		values[8] = f->lock ? CStringGetTextDatum(f->lock) : (Datum) 0;
		nulls[8] = f->lock == NULL;
		values[9] = CStringGetTextDatum(f->message);
		values[10] = CStringGetTextDatum(f->hint);
		values[11] = BoolGetDatum(f->allowed);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
