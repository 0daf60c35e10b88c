/*
 * batch.c
 *		Batched data migrations.  A migration registered with batch options
 *		({"table": ..., "key": ..., "size": ..., "target": ..., "pause": ...})
 *		has one data-modifying statement that uses $1 and $2 as the lower
 *		(exclusive) and upper (inclusive) key of a batch of the table's key.
 *
 *		Registration checks what it can: the options, the statement's kind
 *		and parameters, and, when the table exists already, its key.  Only a
 *		job runs such a migration (worker.c hands it to run_batched()): the
 *		worker walks the key in order through its unique btree index, one
 *		batch per transaction, and commits each batch together with its
 *		checkpoint in migrate.batch_progress, so that after a cancel, a
 *		failure or a crash the next job goes on after the last committed
 *		batch and no batch runs twice.  The walk ends at the largest key
 *		there was when the migration started.  Between batches the worker
 *		reads requests (pause, cancel), options registered anew, and what the
 *		database says of its load (sessions that waited for a batch's locks,
 *		replica lag, autovacuum on the table): it slows down or waits, and
 *		says why in the job's row.  After the last batch, the migration's
 *		checks run once, in a transaction of their own.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_locale.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "migrate.h"

int			migrate_batch_max_lag = 10000;	/* ms; 0: not looked at */
int			migrate_batch_max_blocked = 0;	/* -1: not looked at */
int			migrate_batch_lock_retries = 5;

#define BATCH_DEFAULT_TARGET_MS 200.0
#define BATCH_FIRST_SIZE 1000	/* an adaptive walk starts here */
#define BATCH_MIN_SIZE 10		/* and stays within these */
#define BATCH_MAX_SIZE 1000000
#define BATCH_DEFAULT_LOCK_TIMEOUT "5s" /* when lock_timeout is 0 */
#define BATCH_RECENT 10			/* batches the rate is measured over */

/* ---- options ---- */

typedef struct BatchOptions
{
	char	   *table;			/* as written */
	char	   *key;			/* NULL: the primary key */
	int			size;			/* 0: adaptive */
	double		target_ms;
	double		pause_ms;
} BatchOptions;

static void
bad_option(const char *version, const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 errdetail("In the batch options of migration %s.", version),
			 errhint("%s", hint ? hint :
					 "Batch options are \"table\" (required), \"key\", \"size\" or \"target\", and \"pause\", "
					 "such as {\"table\": \"legacy_tasks\", \"size\": 5000}.")));
}

static char *
jsonb_value_text(JsonbValue *v)
{
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

typedef struct IntervalParse
{
	const char *text;
	Interval   *iv;
} IntervalParse;

static void
interval_parse_body(void *arg)
{
	IntervalParse *ip = arg;

	ip->iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(ip->text),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* A duration option: an interval ("50 ms", "2s") or a number of milliseconds, within [lo, hi] ms. */
static double
duration_option(const char *version, const char *name, JsonbValue *v, double lo, double hi)
{
	char	   *text = jsonb_value_text(v);
	double		ms;

	if (text == NULL)
		bad_option(version, psprintf("batch option \"%s\" must be a duration, such as \"50 ms\"", name), NULL);
	if (v->type == jbvNumeric)
		ms = strtod(text, NULL);
	else
	{
		IntervalParse ip = {text, NULL};
		ErrorData  *edata = run_in_subtransaction(interval_parse_body, &ip, true);
		Interval   *iv = ip.iv;

		if (edata)
		{
			/* only a bad input is this option's error; a cancel, say, goes on */
			if (edata->sqlerrcode != ERRCODE_INVALID_DATETIME_FORMAT &&
				edata->sqlerrcode != ERRCODE_DATETIME_VALUE_OUT_OF_RANGE &&
				edata->sqlerrcode != ERRCODE_INTERVAL_FIELD_OVERFLOW)
				ReThrowError(edata);
			bad_option(version, psprintf("batch option \"%s\" is not a duration: \"%s\"", name, text), NULL);
		}
		ms = (double) iv->time / 1000.0 + (double) iv->day * 86400000.0 + (double) iv->month * 30 * 86400000.0;
	}
	if (!(ms >= lo && ms <= hi))
		bad_option(version, psprintf("batch option \"%s\" is out of range: %s", name, text),
				   psprintf("\"%s\" is between %g ms and %g ms.", name, lo, hi));
	return ms;
}

static BatchOptions *
batch_options(const char *json, const char *version)
{
	Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	BatchOptions *o = palloc0(sizeof(BatchOptions));
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		has_target = false;

	o->target_ms = BATCH_DEFAULT_TARGET_MS;
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		bad_option(version, psprintf("the batch options of migration %s must be a JSON object", version), NULL);
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(name, "table") == 0 || strcmp(name, "key") == 0)
		{
			char	   *s = v.type == jbvString ? pnstrdup(v.val.string.val, v.val.string.len) : NULL;

			if (s == NULL || s[strspn(s, " \t\r\n")] == '\0')
				bad_option(version, psprintf("batch option \"%s\" must be a non-empty string", name), NULL);
			if (strcmp(name, "table") == 0)
				o->table = s;
			else
				o->key = s;
		}
		else if (strcmp(name, "size") == 0)
		{
			char	   *s = v.type == jbvNumeric ? jsonb_value_text(&v) : NULL;
			char	   *end;
			long		n = s ? strtol(s, &end, 10) : 0;

			if (s == NULL || *end != '\0')
				bad_option(version, "batch option \"size\" must be a whole number of rows", NULL);
			if (n < 1 || n > BATCH_MAX_SIZE)
				bad_option(version, psprintf("batch option \"size\" is out of range: %s", s),
						   psprintf("\"size\" is between 1 and %d rows.", BATCH_MAX_SIZE));
			o->size = (int) n;
		}
		else if (strcmp(name, "target") == 0)
		{
			o->target_ms = duration_option(version, name, &v, 10, 60000);
			has_target = true;
		}
		else if (strcmp(name, "pause") == 0)
			o->pause_ms = duration_option(version, name, &v, 0, 3600000);
		else
			bad_option(version, psprintf("unknown batch option \"%s\"", name), NULL);
	}
	if (o->table == NULL)
		bad_option(version, psprintf("the batch options of migration %s name no table", version), NULL);
	if (o->size > 0 && has_target)
		bad_option(version, "batch options \"size\" and \"target\" exclude each other",
				   "\"size\" fixes the number of rows of a batch; \"target\" adapts it to take about that long.");
	return o;
}

char *
batch_table_name(const char *batch_json)
{
	const char *table = jsonb_field_text(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(batch_json))),
										 "table");

	return table ? pstrdup(table) : "?";
}

/* ---- the key ---- */

typedef struct BatchKey
{
	Oid			relid;
	char	   *relname;		/* schema-qualified, quoted */
	char	   *column;			/* the key column's name */
	Oid			type;			/* its base type: $1 and $2 have it */
	const char *bottom;			/* a value of it below every key, as text */
} BatchKey;

/*
 * A value below every key, passed as $1 of the first batch: the walk needs
 * one, since $1 is exclusive.  Only types that have such a value are walked.
 */
static const char *
type_bottom(Oid type)
{
	switch (type)
	{
		case INT2OID:
			return "-32768";
		case INT4OID:
			return "-2147483648";
		case INT8OID:
			return "-9223372036854775808";
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return "-Infinity";
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return "-infinity";
		case TEXTOID:
		case VARCHAROID:
		case BYTEAOID:
			return "";
		case UUIDOID:
			return "00000000-0000-0000-0000-000000000000";
		default:
			return NULL;
	}
}

static void
key_error(int sqlstate, const char *version, const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", msg),
			 errdetail("Migration %s is batched on that key.", version),
			 errhint("%s", hint)));
}

static Oid
rel_am(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			am = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		am = ((Form_pg_class) GETSTRUCT(tup))->relam;
		ReleaseSysCache(tup);
	}
	return am;
}

/* Whether relid has a valid, unique, non-partial btree index on attnum alone, in its order. */
static bool
has_unique_index_on(Relation rel, AttrNumber attnum, Oid atttype, Oid attcoll)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index idx;
		bool		isnull;
		Datum		d;

		if (!HeapTupleIsValid(tup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(tup);
		if (idx->indisunique && idx->indisvalid && idx->indnkeyatts == 1 && idx->indkey.values[0] == attnum &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) && heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			rel_am(idx->indexrelid) == BTREE_AM_OID)
		{
			oidvector  *classes;
			oidvector  *colls;

			d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
			classes = (oidvector *) DatumGetPointer(d);
			d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indcollation, &isnull);
			colls = (oidvector *) DatumGetPointer(d);
			if (classes->values[0] == GetDefaultOpClass(atttype, BTREE_AM_OID) && colls->values[0] == attcoll)
				found = true;
		}
		ReleaseSysCache(tup);
		if (found)
			break;
	}
	list_free(indexes);
	return found;
}

/* Lock the table only if the current user may read it: registering never locks another's table. */
static void
check_table_rights(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	if (OidIsValid(relid) && pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", rv->relname),
				 errdetail("Batched migration %s walks its key: its role needs SELECT on it.", (char *) arg)));
}

/*
 * Resolve the table and its key (locked ACCESS SHARE to the end of the
 * transaction).  A missing table is false with missing_ok; every other
 * problem is an ERROR naming it.
 */
static bool
batch_key_resolve(BatchOptions *o, const char *version, bool missing_ok, BatchKey *k)
{
	RangeVar   *rv;
	Relation	rel;
	AttrNumber	attnum;
	Form_pg_attribute att;
	char	   *relname;
	Oid			base;

	rv = makeRangeVarFromNameList(stringToQualifiedNameList(o->table));
	k->relid = RangeVarGetRelidExtended(rv, AccessShareLock, RVR_MISSING_OK, check_table_rights, (void *) version);
	if (!OidIsValid(k->relid))
	{
		if (missing_ok)
			return false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s\" of batched migration %s does not exist", o->table, version),
				 errhint("Create it in an earlier migration, or correct \"table\" in the batch options.")));
	}
	rel = relation_open(k->relid, NoLock);
	relname = RelationGetRelationName(rel);
	if (rel->rd_rel->relkind != RELKIND_RELATION && rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		key_error(ERRCODE_WRONG_OBJECT_TYPE, version, psprintf("\"%s\" is not a table", o->table),
				  "A batched migration walks the key of a table.");
	if (o->key)
	{
		attnum = get_attnum(k->relid, o->key);
		if (attnum <= 0)
			key_error(ERRCODE_UNDEFINED_COLUMN, version,
					  psprintf("column \"%s\" of table \"%s\" does not exist", o->key, relname),
					  "Name the key column in \"key\", or leave \"key\" out to walk the primary key.");
	}
	else
	{
		Oid			pk = RelationGetPrimaryKeyIndex(rel);
		HeapTuple	tup;
		Form_pg_index idx;

		if (!OidIsValid(pk))
			key_error(ERRCODE_INVALID_COLUMN_REFERENCE, version,
					  psprintf("table \"%s\" has no primary key", relname),
					  "Name a unique, indexed, NOT NULL column with \"key\".");
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", pk);
		idx = (Form_pg_index) GETSTRUCT(tup);
		if (idx->indnkeyatts != 1 || idx->indkey.values[0] == 0)
		{
			int			n = idx->indnkeyatts;

			ReleaseSysCache(tup);
			key_error(ERRCODE_FEATURE_NOT_SUPPORTED, version,
					  psprintf("the primary key of table \"%s\" has %d columns", relname, n),
					  "A batch walks one column: name a unique, indexed, NOT NULL column with \"key\".");
		}
		attnum = idx->indkey.values[0];
		ReleaseSysCache(tup);
	}
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	k->column = pstrdup(NameStr(att->attname));
	if (!att->attnotnull)
		key_error(ERRCODE_INVALID_COLUMN_REFERENCE, version,
				  psprintf("key column \"%s\" of table \"%s\" is not NOT NULL", k->column, relname),
				  "A batch walks keys in order, and rows with a null key would never be in a batch: "
				  "SET NOT NULL on the column, or name another one.");
	base = getBaseType(att->atttypid);
	k->type = base;
	k->bottom = type_bottom(base);
	if (k->bottom == NULL)
		key_error(ERRCODE_FEATURE_NOT_SUPPORTED, version,
				  psprintf("key column \"%s\" of table \"%s\" has type %s, which a batch cannot walk",
						   k->column, relname, format_type_be(att->atttypid)),
				  "Keys of type smallint, integer, bigint, numeric, real, double precision, date, timestamp, "
				  "timestamptz, text, varchar, bytea or uuid are walked; name another key with \"key\".");
	if (OidIsValid(att->attcollation) && !get_collation_isdeterministic(att->attcollation))
		key_error(ERRCODE_FEATURE_NOT_SUPPORTED, version,
				  psprintf("key column \"%s\" of table \"%s\" has a nondeterministic collation", k->column, relname),
				  "Keys that compare equal while they differ cannot mark where a batch ends; name another key.");
	if (!has_unique_index_on(rel, attnum, att->atttypid, att->attcollation))
		key_error(ERRCODE_INVALID_COLUMN_REFERENCE, version,
				  psprintf("key column \"%s\" of table \"%s\" has no unique index of its own", k->column, relname),
				  "A batch needs a valid, unique, non-partial btree index on the key column alone (a primary key "
				  "is one), in the column's own collation: create one, or name another key.");
	k->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), relname);
	relation_close(rel, NoLock);
	return true;
}

/* ---- the statement ---- */

typedef struct ParamUse
{
	bool		used[3];
	int			beyond;			/* a parameter number other than 1 and 2, or 0 */
} ParamUse;

static bool
param_walker(Node *node, void *arg)
{
	ParamUse   *p = arg;

	if (node == NULL)
		return false;
	if (IsA(node, ParamRef))
	{
		int			n = ((ParamRef *) node)->number;

		if (n == 1 || n == 2)
			p->used[n] = true;
		else if (p->beyond == 0)
			p->beyond = n;
		return false;
	}
	return raw_expression_tree_walker(node, param_walker, arg);
}

/* A data-modifying WITH at the top of a SELECT. */
static bool
modifying_with(WithClause *with)
{
	ListCell   *lc;

	if (with == NULL)
		return false;
	foreach(lc, with->ctes)
	{
		Node	   *q = ((CommonTableExpr *) lfirst(lc))->ctequery;

		if (IsA(q, InsertStmt) || IsA(q, UpdateStmt) || IsA(q, DeleteStmt))
			return true;
	}
	return false;
}

static void
statement_error(int sqlstate, const char *version, int line, const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", msg),
			 errdetail("In the up script of batched migration %s, line %d.", version, line),
			 errhint("%s", hint)));
}

#define STATEMENT_HINT "The up script of a batched migration is one INSERT ... SELECT, UPDATE, DELETE or MERGE " \
	"(or a SELECT whose WITH modifies data) that uses $1 and $2 as the lower (exclusive) and upper (inclusive) " \
	"key of a batch, such as: UPDATE t SET b = a * 2 WHERE id > $1 AND id <= $2"

/* Check the up script: one data-modifying statement that uses $1 and $2 and no other parameter. */
static void
check_batch_statement(Migration *m)
{
	Script	   *script = migration_script(m, "up");
	ScriptStmt *st;
	Node	   *tree;
	ParamUse	use = {{false, false, false}, 0};

	if (script->nstmts != 1)
		statement_error(ERRCODE_FEATURE_NOT_SUPPORTED, m->version,
						script->nstmts > 1 ? script->spans[1].line : 1,
						script->nstmts == 0 ? psprintf("the up script of batched migration %s has no statement", m->version)
						: psprintf("the up script of batched migration %s has %d statements", m->version, script->nstmts),
						STATEMENT_HINT ".");
	st = script_stmt(script, 0);
	tree = st->parsetree;
	if (!(IsA(tree, InsertStmt) || IsA(tree, UpdateStmt) || IsA(tree, DeleteStmt) || IsA(tree, MergeStmt) ||
		  (IsA(tree, SelectStmt) && modifying_with(((SelectStmt *) tree)->withClause))))
		statement_error(ERRCODE_FEATURE_NOT_SUPPORTED, m->version, st->line,
						psprintf("the up script of batched migration %s is %s, which modifies no data", m->version,
								 GetCommandTagName(CreateCommandTag(tree))),
						STATEMENT_HINT ".");
	(void) param_walker(tree, &use);
	if (use.beyond)
		statement_error(ERRCODE_UNDEFINED_PARAMETER, m->version, st->line,
						psprintf("the up script of batched migration %s uses $%d", m->version, use.beyond),
						"A batch passes two parameters: $1, the lower (exclusive) key, and $2, the upper (inclusive) key.");
	for (int n = 1; n <= 2; n++)
		if (!use.used[n])
			statement_error(ERRCODE_INVALID_PARAMETER_VALUE, m->version, st->line,
							psprintf("the up script of batched migration %s does not use $%d", m->version, n),
							STATEMENT_HINT "; without both, every batch would do the same work, or all of it.");
}

/*
 * Check a batched migration when it is registered: its options, its
 * statement, and its table and key if the table exists already (else when a
 * job runs it: an earlier migration may create it).  Adds a note.
 */
void
batch_prepare(Migration *m)
{
	BatchOptions *o;
	BatchKey	k;
	Jsonb	   *jb;
	bool		exists;

	if (m->repeatable)
		bad_option(m->version, psprintf("repeatable migration %s cannot be batched", m->version),
				   "A batched migration runs once; give it a version.");
	if (!m->transactional)
		bad_option(m->version, psprintf("batched migration %s cannot be registered with transactional => false",
										m->version),
				   "Each batch runs in a transaction of its own, with its checkpoint.");
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->batch)));
	m->batch = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	o = batch_options(m->batch, m->version);
	check_batch_statement(m);
	exists = batch_key_resolve(o, m->version, true, &k);
	m->notes = lappend(m->notes,
					   psprintf("batched: on table %s, key %s, %s%s%s", o->table,
								exists ? k.column : o->key ? o->key : "its primary key",
								o->size ? psprintf("%d rows a batch", o->size) :
								psprintf("batches of about %g ms", o->target_ms),
								o->pause_ms > 0 ? psprintf(", %g ms between batches", o->pause_ms) : "",
								exists ? "" : " (the table does not exist yet: checked when a job runs it)"));
}

/* ---- running: a job's worker ---- */

typedef struct BatchRun
{
	Job		   *j;
	Migration  *m;
	int			step;
	int			total;
	BatchOptions *opts;
	BatchKey	key;
	Script	   *script;
	List	   *locked_tables;	/* OIDs of the tables a batch locks, for naming who holds them */
	SPIPlanPtr	bounds_plan;	/* the next batch's upper key and size */
	SPIPlanPtr	stmt_plan;		/* the migration's statement */
	Datum		lower;			/* exclusive; the bottom value before the first batch */
	Datum		max;			/* the largest key when the migration started */
	int16		typlen;
	bool		typbyval;
	int			size;
	int64		keys_total;		/* estimated; -1 when unknown */
	int64		keys_done;
	int64		rows_done;
	int64		batches;
	double		last_ms;
	double		longest_ms;
	int			blocked;		/* sessions that waited for the last batch's locks */
	char	   *note;			/* why the job slows down or waits, or NULL */
	/* the recent batches, for the rate: rows, keys, wall time since the one before */
	int			nrecent;
	double		recent_rows[BATCH_RECENT];
	double		recent_keys[BATCH_RECENT];
	double		recent_ms[BATCH_RECENT];
	instr_time	last_end;
	char	   *range;			/* the keys of the batch being run, for its errors */
	char	   *counts;			/* JSON: each expectation's table -> its count at the start */
	char	   *checkpoint_checksum;
	bool		walk;			/* there are keys to walk (the table was not empty) */
} BatchRun;

static bytea *
key_bytes(BatchRun *r, Datum value)
{
	Oid			send;
	bool		varlena;

	getTypeBinaryOutputInfo(r->key.type, &send, &varlena);
	return OidSendFunctionCall(send, value);
}

static Datum
key_from_bytes(BatchRun *r, bytea *b)
{
	Oid			recv;
	Oid			ioparam;
	StringInfoData buf;

	getTypeBinaryInputInfo(r->key.type, &recv, &ioparam);
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	return OidReceiveFunctionCall(recv, &buf, ioparam, -1);
}

static char *
key_text(BatchRun *r, Datum value)
{
	Oid			out;
	bool		varlena;

	getTypeOutputInfo(r->key.type, &out, &varlena);
	return OidOutputFunctionCall(out, value);
}

static Datum
key_in(BatchRun *r, const char *text)
{
	Oid			in;
	Oid			ioparam;

	getTypeInputInfo(r->key.type, &in, &ioparam);
	return OidInputFunctionCall(in, (char *) text, ioparam, -1);
}

/* Keep a key in the step's memory (it lives across the batches' transactions). */
static Datum
key_keep(BatchRun *r, Datum value)
{
	MemoryContext old = MemoryContextSwitchTo(job_step_context);
	Datum		copy = datumCopy(value, r->typbyval, r->typlen);

	MemoryContextSwitchTo(old);
	return copy;
}

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Rows of the table by its statistics, or -1 when it was never analyzed. */
static int64
table_rows_estimate(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	float4		reltuples = -1;

	if (HeapTupleIsValid(tup))
	{
		reltuples = ((Form_pg_class) GETSTRUCT(tup))->reltuples;
		ReleaseSysCache(tup);
	}
	return reltuples >= 0 ? (int64) reltuples : -1;
}

/* With integer keys and no statistics: the key range bounds the number of keys. */
static int64
key_range_estimate(BatchRun *r, Datum min)
{
	switch (r->key.type)
	{
		case INT2OID:
			return (int64) DatumGetInt16(r->max) - DatumGetInt16(min) + 1;
		case INT4OID:
			return (int64) DatumGetInt32(r->max) - DatumGetInt32(min) + 1;
		case INT8OID:
			{
				int64		a = DatumGetInt64(r->max),
							b = DatumGetInt64(min);

				return (b < 0 && a > PG_INT64_MAX + b) ? -1 : a - b + 1;
			}
		default:
			return -1;
	}
}

static void
checkpoint_insert(BatchRun *r, bool empty)
{
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	values[0] = CStringGetTextDatum(r->m->key);
	values[1] = CStringGetTextDatum(r->m->checksum);
	values[2] = ObjectIdGetDatum(r->key.relid);
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(r->key.column));
	values[4] = empty ? (Datum) 0 : PointerGetDatum(key_bytes(r, r->max));
	nulls[4] = empty ? 'n' : ' ';
	values[5] = empty ? (Datum) 0 : CStringGetTextDatum(key_text(r, r->max));
	nulls[5] = empty ? 'n' : ' ';
	values[6] = Int64GetDatum(r->keys_total);
	nulls[6] = r->keys_total >= 0 ? ' ' : 'n';
	values[7] = r->counts ? CStringGetTextDatum(r->counts) : (Datum) 0;
	nulls[7] = r->counts ? ' ' : 'n';
	catalog_exec("DELETE FROM migrate.batch_progress WHERE version_key = $1", 1, (Oid[]) {TEXTOID}, values, NULL);
	catalog_exec("INSERT INTO migrate.batch_progress (version_key, checksum, table_name, key_column, max_key, "
				 "       max_key_text, keys_total, counts) "
				 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
				 8, (Oid[]) {TEXTOID, TEXTOID, REGCLASSOID, NAMEOID, BYTEAOID, TEXTOID, INT8OID, TEXTOID},
				 values, nulls);
}

/*
 * Where the migration stands: its checkpoint, if its table and key are the
 * same (its text may have been corrected since a failure), else a new one,
 * with the largest key there is now, the estimated number of keys, and the
 * counts its expectations are checked against.  False when there is nothing
 * to walk (an empty table).
 */
static bool
batch_start(BatchRun *r)
{
	Datum		arg = CStringGetTextDatum(r->m->key);
	bool		resumed = false;
	bool		empty = false;
	bool		isnull;

	get_typlenbyval(r->key.type, &r->typlen, &r->typbyval);
	r->lower = key_keep(r, key_in(r, r->key.bottom));
	catalog_exec("SELECT table_name::oid, key_column::text, last_key, max_key, keys_total, keys_done, rows_done, "
				 "       batches, size, counts::text, longest_ms, checksum "
				 "  FROM migrate.batch_progress WHERE version_key = $1",
				 1, (Oid[]) {TEXTOID}, &arg, NULL);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *column = SPI_getvalue(tup, desc, 2);

		if (relid == r->key.relid && strcmp(column, r->key.column) == 0)
		{
			Datum		d;
			MemoryContext old = MemoryContextSwitchTo(job_step_context);

			resumed = true;
			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
				r->lower = key_keep(r, key_from_bytes(r, DatumGetByteaPP(d)));
			d = SPI_getbinval(tup, desc, 4, &isnull);
			empty = isnull;
			if (!isnull)
				r->max = key_keep(r, key_from_bytes(r, DatumGetByteaPP(d)));
			d = SPI_getbinval(tup, desc, 5, &isnull);
			r->keys_total = isnull ? -1 : DatumGetInt64(d);
			r->keys_done = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
			r->rows_done = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
			r->batches = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
			d = SPI_getbinval(tup, desc, 9, &isnull);
			if (!isnull && r->opts->size == 0)
				r->size = DatumGetInt32(d);
			r->counts = SPI_getvalue(tup, desc, 10);
			r->longest_ms = DatumGetFloat8(SPI_getbinval(tup, desc, 11, &isnull));
			r->checkpoint_checksum = SPI_getvalue(tup, desc, 12);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_freetuptable(SPI_tuptable);
	if (resumed)
		return !empty;

	/* a new walk: the keys there are now, and the counts "before" */
	{
		char	   *col = pstrdup(quote_identifier(r->key.column));
		char	   *sql = psprintf("SELECT (SELECT k.%s FROM %s k ORDER BY k.%s LIMIT 1), "
								   "       (SELECT k.%s FROM %s k ORDER BY k.%s DESC LIMIT 1)",
								   col, r->key.relname, col, col, r->key.relname, col);
		Datum		min = (Datum) 0;

		if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the key range of %s", r->key.relname);
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		empty = isnull;
		if (!empty)
		{
			min = key_keep(r, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			r->max = key_keep(r, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		}
		SPI_freetuptable(SPI_tuptable);
		if (!empty)
		{
			/* the first batch's $1 must be below every key */
			Datum		args[2] = {r->lower, min};
			char	   *below = psprintf("SELECT $1 OPERATOR(pg_catalog.<) $2");

			if (SPI_execute_with_args(below, 2, (Oid[]) {r->key.type, r->key.type}, args, NULL, true, 1) !=
				SPI_OK_SELECT)
				elog(ERROR, "could not compare keys");
			if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("the smallest key of table %s is %s, below which no value can be passed as $1",
								r->key.relname, key_text(r, min)),
						 errdetail("Batched migration %s passes the first batch a lower (exclusive) key below "
								   "every key of the table: %s for type %s.", r->m->version,
								   *r->key.bottom ? r->key.bottom : "''", format_type_be(r->key.type)),
						 errhint("Name another key with \"key\".")));
			SPI_freetuptable(SPI_tuptable);
		}
		r->keys_total = table_rows_estimate(r->key.relid);
		if (r->keys_total < 0 && !empty)
			r->keys_total = key_range_estimate(r, min);
		if (r->m->expect)
		{
			Jsonb	   *expect = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(r->m->expect)));
			MemoryContext old = MemoryContextSwitchTo(job_step_context);

			List	   *exps = expect_parse(expect);
			List	   *counts = expect_count_all(exps, r->m->version);
			ListCell   *le;
			ListCell   *lcount;
			StringInfoData buf;

			initStringInfo(&buf);
			forboth(le, exps, lcount, counts)
				appendStringInfo(&buf, "%s%s: %s", buf.len ? ", " : "{",
								 quote_json(((Expectation *) lfirst(le))->table), (char *) lfirst(lcount));
			appendStringInfoChar(&buf, '}');
			r->counts = buf.data;
			MemoryContextSwitchTo(old);
		}
		checkpoint_insert(r, empty);
	}
	return !empty;
}

/* Write the job row's progress: batches, rows, the estimated total, the rate, the ETA, the note. */
static void
progress_write(BatchRun *r)
{
	double		rows = 0,
				keys = 0,
				ms = 0;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		rows_total = -1;

	for (int i = 0; i < Min(r->nrecent, BATCH_RECENT); i++)
	{
		rows += r->recent_rows[i];
		keys += r->recent_keys[i];
		ms += r->recent_ms[i];
	}
	if (r->keys_total >= 0)
	{
		if (r->keys_done > r->keys_total)
			r->keys_total = r->keys_done;	/* statistics were behind */
		rows_total = r->keys_done > 0 ? (int64) ((double) r->rows_done * r->keys_total / r->keys_done)
			: r->keys_total;
	}
	values[0] = Int64GetDatum(r->j->id);
	values[1] = Int64GetDatum(r->batches);
	values[2] = Int64GetDatum(r->rows_done);
	values[3] = Int64GetDatum(rows_total);
	nulls[3] = rows_total >= 0 ? ' ' : 'n';
	values[4] = Float8GetDatum(ms > 0 ? rows * 1000.0 / ms : 0);
	nulls[4] = ms > 0 ? ' ' : 'n';
	if (ms > 0 && keys > 0 && r->keys_total >= 0)
		values[5] = PointerGetDatum(ms_interval((double) (r->keys_total - r->keys_done) * ms / keys));
	else
		nulls[5] = 'n';
	values[6] = r->note ? CStringGetTextDatum(r->note) : (Datum) 0;
	nulls[6] = r->note ? ' ' : 'n';
	catalog_exec("UPDATE migrate.job_state SET batches_done = $2, rows_done = $3, rows_total = $4, "
				 "       rows_per_second = round($5::numeric), eta = date_trunc('second', $6), note = $7, "
				 "       attempts = 0 "
				 " WHERE id = $1",
				 7, (Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, FLOAT8OID, INTERVALOID, TEXTOID}, values, nulls);
}

static void
note_write(BatchRun *r)
{
	Datum		values[2] = {Int64GetDatum(r->j->id), r->note ? CStringGetTextDatum(r->note) : (Datum) 0};
	char		nulls[2] = {' ', r->note ? ' ' : 'n'};

	catalog_exec("UPDATE migrate.job_state SET note = $2 WHERE id = $1 AND note IS DISTINCT FROM $2",
				 2, (Oid[]) {INT8OID, TEXTOID}, values, nulls);
}

/* Sessions holding locks on the tables a batch locks: who to name when a lock wait timed out. */
static char *
lock_holders(BatchRun *r)
{
	List	   *tables = r->locked_tables;

	/* the wait was for the table itself, before its key was resolved */
	if (tables == NIL && r->opts)
	{
		Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(r->opts->table)),
											 NoLock, true);

		if (OidIsValid(relid))
			tables = list_make1_oid(relid);
	}
	return lock_holders_text(tables);
}

/*
 * One batch, from r->lower: its upper key and size, the statement, the
 * checkpoint and the job's progress, in one transaction.  Returns the error,
 * or NULL; *last when the walk is done after it (or there was nothing left).
 */
static ErrorData *
run_one_batch(BatchRun *r, bool *last)
{
	ErrorData  *volatile edata = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool started = false;
	BatchRun	before = *r;	/* what a rolled-back batch must not have changed */

	*last = false;
	PG_TRY();
	{
		Datum		hi = (Datum) 0;
		int64		n = 0;
		Datum		args[3];
		bool		isnull;
		instr_time	start,
					end;
		uint64		rows;
		Datum		cp[7];

		INSTR_TIME_SET_CURRENT(start);
		worker_tx_begin();
		started = true;
		if (strcmp(GetConfigOption("lock_timeout", false, false), "0") == 0)
			(void) set_config_option("lock_timeout", BATCH_DEFAULT_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);

		/* where the batch ends: its size-th key, or the last one up to the largest at the start */
		args[0] = r->lower;
		args[1] = r->max;
		args[2] = Int64GetDatum(r->size);
		if (SPI_execute_plan(r->bounds_plan, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not find where the next batch ends");
		if (SPI_processed > 0)
		{
			n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			hi = key_keep(r, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_freetuptable(SPI_tuptable);
		if (n == 0)
		{
			*last = true;
			worker_tx_commit();
		}
		else
		{
			int			rc;
			int			guc_level;

			r->range = MemoryContextStrdup(job_step_context,
										   r->batches == 0 ? psprintf("keys up to %s", key_text(r, hi))
										   : psprintf("keys above %s up to %s", key_text(r, r->lower),
													  key_text(r, hi)));
			args[1] = hi;
			pgstat_report_activity(STATE_RUNNING, r->m->up);
			/* what the statement sets for the session (set_config(..., false)) ends with the batch */
			guc_level = NewGUCNestLevel();
			rc = SPI_execute_plan(r->stmt_plan, args, NULL, false, 0);
			AtEOXact_GUC(false, guc_level);
			if (rc < 0)
				elog(ERROR, "the statement of batched migration %s failed: %s", r->m->version,
					 SPI_result_code_string(rc));
			rows = SPI_processed;
			SPI_freetuptable(SPI_tuptable);
			pgstat_report_activity(STATE_IDLE, NULL);

			/* who waited for this batch's locks, while it still holds them */
			r->blocked = 0;
			if (migrate_batch_max_blocked >= 0)
			{
				/* only sessions waiting for a lock can wait for ours: one look at pg_locks, then those */
				if (SPI_execute("SELECT pg_catalog.count(*) "
								"  FROM (SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l WHERE NOT l.granted) w "
								" WHERE pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.=) "
								"       ANY (pg_catalog.pg_blocking_pids(w.pid))", true, 1) == SPI_OK_SELECT)
					r->blocked = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
																   1, &isnull));
				SPI_freetuptable(SPI_tuptable);
			}

			INSTR_TIME_SET_CURRENT(end);
			INSTR_TIME_SUBTRACT(end, start);
			r->last_ms = INSTR_TIME_GET_MILLISEC(end);
			r->keys_done += n;
			r->rows_done += rows;
			r->batches++;
			r->longest_ms = Max(r->longest_ms, r->last_ms);
			*last = n < r->size;

			cp[0] = CStringGetTextDatum(r->m->key);
			cp[1] = PointerGetDatum(key_bytes(r, hi));
			cp[2] = CStringGetTextDatum(key_text(r, hi));
			cp[3] = Int64GetDatum(n);
			cp[4] = Int64GetDatum(rows);
			cp[5] = Int32GetDatum(r->size);
			cp[6] = Float8GetDatum(r->last_ms);
			catalog_exec("UPDATE migrate.batch_progress SET last_key = $2, last_key_text = $3, "
						 "       keys_done = keys_done + $4, rows_done = rows_done + $5, batches = batches + 1, "
						 "       size = $6, last_ms = $7, longest_ms = greatest(longest_ms, $7), "
						 "       updated_at = pg_catalog.clock_timestamp() "
						 " WHERE version_key = $1",
						 7, (Oid[]) {TEXTOID, BYTEAOID, TEXTOID, INT8OID, INT8OID, INT4OID, FLOAT8OID}, cp, NULL);
			if (SPI_processed != 1)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the checkpoint of batched migration %s is gone", r->m->version),
						 errhint("Start a new job: it walks the table from its start again.")));

			/* the rate over the recent batches: rows and keys per wall time, pauses included */
			{
				instr_time	now;
				int			i = r->nrecent % BATCH_RECENT;

				INSTR_TIME_SET_CURRENT(now);
				r->recent_rows[i] = rows;
				r->recent_keys[i] = n;
				if (r->nrecent == 0 || INSTR_TIME_IS_ZERO(r->last_end))
					r->recent_ms[i] = r->last_ms;
				else
				{
					instr_time	since = now;

					INSTR_TIME_SUBTRACT(since, r->last_end);
					r->recent_ms[i] = INSTR_TIME_GET_MILLISEC(since);
				}
				r->last_end = now;
				r->nrecent++;
			}
			progress_write(r);
			worker_tx_commit();
			if (!r->typbyval)
				pfree(DatumGetPointer(r->lower));
			r->lower = hi;
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(job_step_context);
		edata = CopyErrorData();
		FlushErrorState();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (started)
			worker_abort();
		MemoryContextSwitchTo(cxt);
		{
			char	   *range = r->range;

			*r = before;
			r->range = range;
		}
	}
	PG_END_TRY();
	return edata;
}

/* Sleep up to ms, woken by a request (a pause or a cancel sets the latch). */
static void
batch_sleep(double ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, (long) ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

typedef enum Between
{
	BETWEEN_GO,					/* run the next batch */
	BETWEEN_AGAIN,				/* look again (a pause ended, a wait goes on) */
	BETWEEN_STOP				/* the job ended */
} Between;

/* End the job as failed (not the migration): it changed under the job. */
static void
fail_changed(BatchRun *r, const char *what)
{
	ErrorData	e = {0};

	e.sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
	e.message = psprintf("batched migration %s was %s while the job ran it", r->m->version, what);
	e.detail = psprintf("%lld batches (%lld rows) were done and stay committed.",
						(long long) r->batches, (long long) r->rows_done);
	e.hint = "Start a new job: it goes on after the last committed batch if the table and key are the same, "
		"else from the start.";
	job_fail(r->j, &e, r->m->version, 0, 0);
}

/*
 * Between two batches, in a transaction of its own: requests, options
 * registered anew, and the load the database shows.  Sets *extra_ms to how
 * much longer than the pause to wait before the next batch.
 */
static Between
between_batches(BatchRun *r, double *extra_ms)
{
	Job		   *now;
	Datum		arg = CStringGetTextDatum(r->m->key);
	char	   *note = NULL;
	bool		isnull;
	Between		result = BETWEEN_GO;

	*extra_ms = 0;
	worker_tx_begin();
	now = job_read(r->j->id, false);
	if (now == NULL)
	{
		worker_tx_commit();
		return BETWEEN_STOP;
	}
	if (now->request && strcmp(now->request, "cancel") == 0)
	{
		job_update(r->j->id, "cancelled", "", NULL, -1, -1, -1, NULL);
		job_wake_waiters(r->j->id);
		worker_tx_commit();
		return BETWEEN_STOP;
	}
	if (now->request && strcmp(now->request, "pause") == 0)
	{
		job_update(r->j->id, "paused", NULL, NULL, -1, -1, -1, NULL);
		job_wake_waiters(r->j->id);
		worker_tx_commit();
		worker_wait_while_paused(r->j->id);
		return BETWEEN_AGAIN;
	}

	/* options registered anew take effect now; another text or table ends the job */
	catalog_exec("SELECT checksum, batch::text FROM migrate.migrations WHERE version_key = $1",
				 1, (Oid[]) {TEXTOID}, &arg, NULL);
	if (SPI_processed == 0)
	{
		fail_changed(r, "removed");
		worker_tx_commit();
		return BETWEEN_STOP;
	}
	{
		char	   *checksum = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *batch = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		if (strcmp(checksum, r->m->checksum) != 0)
		{
			fail_changed(r, "registered again with other text");
			worker_tx_commit();
			return BETWEEN_STOP;
		}
		if (batch == NULL)
		{
			fail_changed(r, "registered again without batch options");
			worker_tx_commit();
			return BETWEEN_STOP;
		}
		if (strcmp(batch, r->m->batch) != 0)
		{
			MemoryContext old = MemoryContextSwitchTo(job_step_context);
			BatchOptions *o = batch_options(batch, r->m->version);
			BatchKey	k;

			(void) batch_key_resolve(o, r->m->version, false, &k);
			if (k.relid != r->key.relid || strcmp(k.column, r->key.column) != 0)
			{
				MemoryContextSwitchTo(old);
				fail_changed(r, "registered again on another table or key");
				worker_tx_commit();
				return BETWEEN_STOP;
			}
			r->m->batch = pstrdup(batch);
			if (o->size > 0)
				r->size = o->size;
			else if (r->opts->size > 0)
				r->size = BATCH_FIRST_SIZE;
			r->opts = o;
			MemoryContextSwitchTo(old);
		}
	}
	SPI_freetuptable(SPI_tuptable);

	/* the load: replica lag, autovacuum on the table, sessions the last batch blocked */
	if (migrate_batch_max_lag > 0)
	{
		double		lag_ms;

		/* physical replicas: a logical walsender (a subscription, a CDC consumer) is not one */
		if (SPI_execute("SELECT pg_catalog.max(pg_catalog.date_part('epoch', r.replay_lag)) OPERATOR(pg_catalog.*) 1000 "
						"  FROM pg_catalog.pg_stat_replication r "
						" WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots s "
						"                    WHERE s.active_pid OPERATOR(pg_catalog.=) r.pid "
						"                      AND s.slot_type OPERATOR(pg_catalog.=) 'logical')", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read pg_stat_replication");
		lag_ms = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (!isnull && lag_ms > migrate_batch_max_lag)
		{
			note = psprintf("waiting: replica replay lag %.1f s is above migrate.batch_max_lag (%.1f s)",
							lag_ms / 1000.0, migrate_batch_max_lag / 1000.0);
			result = BETWEEN_AGAIN;
		}
		else if (!isnull && lag_ms > migrate_batch_max_lag / 2.0)
		{
			note = psprintf("slowed down: replica replay lag %.1f s is above half of migrate.batch_max_lag (%.1f s)",
							lag_ms / 1000.0, migrate_batch_max_lag / 1000.0);
			*extra_ms = Max(*extra_ms, r->last_ms);
		}
	}
	if (result == BETWEEN_GO)
	{
		Datum		relid = ObjectIdGetDatum(r->key.relid);

		if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_progress_vacuum v "
								  " WHERE v.relid OPERATOR(pg_catalog.=) $1 "
								  "   AND v.datid OPERATOR(pg_catalog.=) "
								  "       (SELECT d.oid FROM pg_catalog.pg_database d "
								  "         WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))",
								  1, (Oid[]) {OIDOID}, &relid, NULL, true, 1) == SPI_OK_SELECT &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		{
			note = psprintf("%s%sslowed down: vacuum is working on table %s", note ? note : "", note ? "; " : "",
							r->key.relname);
			*extra_ms = Max(*extra_ms, r->last_ms);
		}
		if (migrate_batch_max_blocked >= 0 && r->blocked > migrate_batch_max_blocked)
		{
			note = psprintf("%s%sslowed down: %d session%s waited for the locks of the last batch "
							"(migrate.batch_max_blocked is %d)", note ? note : "", note ? "; " : "",
							r->blocked, r->blocked == 1 ? "" : "s", migrate_batch_max_blocked);
			*extra_ms = Max(*extra_ms, r->last_ms);
			if (r->opts->size == 0)
				r->size = Max(BATCH_MIN_SIZE, r->size / 2);
		}
	}
	{
		MemoryContext old = MemoryContextSwitchTo(job_step_context);

		if (r->note)
			pfree(r->note);
		r->note = note ? pstrdup(note) : NULL;
		MemoryContextSwitchTo(old);
	}
	note_write(r);
	worker_tx_commit();
	if (result == BETWEEN_AGAIN)
		batch_sleep(1000);
	return result;
}

/* The next adaptive size: about target_ms a batch, at most doubling, within bounds. */
static void
adapt_size(BatchRun *r)
{
	double		next;

	if (r->opts->size > 0)
	{
		r->size = r->opts->size;
		return;
	}
	next = r->last_ms > 0.5 ? r->size * r->opts->target_ms / r->last_ms : r->size * 2.0;
	next = Min(next, r->size * 2.0);
	r->size = (int) Max(BATCH_MIN_SIZE, Min(BATCH_MAX_SIZE, next));
}

/* The error of a failed batch: the statement's own, with the batch's key range. */
static ErrorData *
batch_error(BatchRun *r, ErrorData *edata, int retries)
{
	const char *table = r->key.relname ? r->key.relname : r->opts ? r->opts->table : "?";
	char	   *range = r->range
		? psprintf("In batch %lld of migration %s, %s of table %s; the %lld batches (%lld rows) before it "
				   "stay committed.", (long long) r->batches + 1, r->m->version, r->range, table,
				   (long long) r->batches, (long long) r->rows_done)
		: psprintf("Before batch %lld of migration %s on table %s; the %lld batches (%lld rows) before it "
				   "stay committed.", (long long) r->batches + 1, r->m->version, table,
				   (long long) r->batches, (long long) r->rows_done);

	edata->detail = edata->detail ? psprintf("%s %s", edata->detail, range) : range;
	if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
	{
		char	   *holders;

		worker_tx_begin();
		holders = lock_holders(r);
		holders = holders ? MemoryContextStrdup(job_step_context, holders) : NULL;
		worker_tx_commit();
		edata->detail = psprintf("%s Tried %d times, each waiting at most lock_timeout. %s", edata->detail,
								 retries + 1, holders ? psprintf("Locks on its tables are held by: %s.", holders)
								 : "No other session holds a lock on its tables now.");
		edata->hint = "End or wait for the session that holds the lock, or raise lock_timeout, then start a new job: "
			"it goes on after the last committed batch.";
	}
	else if (edata->hint == NULL)
		edata->hint = "Correct the data or the migration (register it again, or migrate_repair()), then start a new job: "
			"it goes on at this batch.";
	return edata;
}

typedef struct FinalChecks
{
	BatchRun   *r;
	List	   *touched;
	ApplyRecord *rec;
	List	   *expectations;
} FinalChecks;

static void
final_checks_body(void *arg)
{
	FinalChecks *fc = arg;
	Migration  *m = fc->r->m;

	if (m->expect)
	{
		Jsonb	   *expect = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->expect)));
		Jsonb	   *start = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															   CStringGetDatum(fc->r->counts ? fc->r->counts : "{}")));
		List	   *counts = NIL;
		ListCell   *le;

		fc->expectations = expect_parse(expect);

		/* each table's count at the start; one of an expectation registered since is taken now */
		foreach(le, fc->expectations)
			counts = lappend(counts, (char *) jsonb_field_text(start, ((Expectation *) lfirst(le))->table));
		expect_restore_before(fc->expectations, counts, m->version);
		fc->rec->checks += expect_check_after(fc->expectations, m->version);
		fc->rec->counts = expect_counts_json(fc->expectations);
	}
	if (m->verify)
		fc->rec->checks += verify_query_raise(m);
	if (m->assertion)
		fc->rec->checks += assert_query_raise(m);
	fc->rec->checks += verify_constraints_raise(fc->touched, m->version);
}

/* After the last batch: the checks, then the migration is applied; in one transaction. */
static StepResult
batch_finish(BatchRun *r, double ms)
{
	Migration  *now;
	ListCell   *lc;
	FinalChecks fc = {0};
	ApplyRecord rec = {0};
	ErrorData  *edata;

	worker_tx_begin();
	worker_reset_settings(r->j);	/* the checks with the job's settings */
	catalog_lock();
	now = catalog_find(catalog_load(false), r->m->key);
	if (now == NULL || strcmp(now->checksum, r->m->checksum) != 0)
	{
		fail_changed(r, now ? "registered again with other text" : "removed");
		worker_tx_commit();
		return STEP_FINISHED;
	}
	if (now->applied && !migration_is_pending(now))
	{
		/* applied by another session meanwhile (a baseline): nothing to record twice */
		catalog_exec("DELETE FROM migrate.batch_progress WHERE version_key = $1", 1, (Oid[]) {TEXTOID},
					 (Datum[]) {CStringGetTextDatum(r->m->key)}, NULL);
		job_update(r->j->id, NULL, NULL, NULL, 0, r->step, -1, NULL);
		worker_tx_commit();
		return STEP_DONE;
	}
	r->m->expect = now->expect;		/* expectations and verify query as registered now */
	r->m->verify = now->verify;
	r->m->assertion = now->assertion;
	r->m->registered_by = now->registered_by;
	foreach(lc, stmt_written_relations(script_stmt(r->script, 0)->parsetree))
	{
		Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

		if (OidIsValid(relid))
			fc.touched = touched_add(fc.touched, relid);
	}
	fc.r = r;
	fc.rec = &rec;
	edata = run_in_subtransaction(final_checks_body, &fc, true);
	if (edata)
	{
		edata->detail = psprintf("%s%sThe checks run after the last batch; the %lld batches (%lld rows) stay committed.",
								 edata->detail ? edata->detail : "", edata->detail ? " " : "",
								 (long long) r->batches, (long long) r->rows_done);
		edata->hint = "Correct the data, or the expectation or verify query (register it again), then start a new "
			"job: it runs the checks again. To undo the batches, run the down script yourself.";
		record_failure(r->m, edata, job_step_json(r->j, r->step, r->total));
		job_fail(r->j, edata, r->m->version, 0, 0);
		worker_tx_commit();
		return STEP_FINISHED;
	}
	rec.duration_ms = ms;
	rec.rows = r->rows_done;
	rec.touched = touched_names(fc.touched);
	rec.touched_oids = touched_existing(fc.touched);
	rec.action = "apply";
	rec.detail = psprintf("{%s, \"batches\": %lld, \"longest_batch_ms\": %.1f}",
						  job_step_json(r->j, r->step, r->total), (long long) r->batches, r->longest_ms);
	catalog_record_applied(r->m, &rec);
	histories_record_apply(r->m, r->script, ms, NULL);	/* and the checkpoint is deleted */
	catalog_mark_changed();
	r->note = NULL;
	note_write(r);
	job_update(r->j->id, NULL, NULL, NULL, 0, r->step, -1, NULL);
	job_wake_waiters(r->j->id);
	worker_tx_commit();
	return STEP_DONE;
}

static void
free_plans(BatchRun *r)
{
	if (r->bounds_plan)
		SPI_freeplan(r->bounds_plan);
	if (r->stmt_plan)
		SPI_freeplan(r->stmt_plan);
	r->bounds_plan = r->stmt_plan = NULL;
}

/* The options, the key, the checkpoint; the statements prepared once, kept across transactions. */
static void
batch_setup(BatchRun *r)
{
	MemoryContext old = MemoryContextSwitchTo(job_step_context);
	Migration  *m = r->m;
	ListCell   *lc;
	char	   *col;

	free_plans(r);
	r->opts = batch_options(m->batch, m->version);
	(void) batch_key_resolve(r->opts, m->version, false, &r->key);
	r->script = migration_script(m, "up");
	r->size = r->opts->size > 0 ? r->opts->size : BATCH_FIRST_SIZE;
	r->keys_total = -1;
	r->locked_tables = list_make1_oid(r->key.relid);
	foreach(lc, stmt_written_relations(script_stmt(r->script, 0)->parsetree))
	{
		Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

		if (OidIsValid(relid))
			r->locked_tables = list_append_unique_oid(r->locked_tables, relid);
	}
	if (strcmp(GetConfigOption("lock_timeout", false, false), "0") == 0)
		(void) set_config_option("lock_timeout", BATCH_DEFAULT_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	col = pstrdup(quote_identifier(r->key.column));
	r->walk = batch_start(r);
	/* the last key of the next batch, and how many keys it has (not max(): uuid has none) */
	r->bounds_plan = prepare_kept(psprintf("SELECT s.k, s.n FROM "
										   "(SELECT t.%s AS k, pg_catalog.row_number() OVER (ORDER BY t.%s) AS n "
										   "   FROM %s t WHERE t.%s OPERATOR(pg_catalog.>) $1 "
										   "    AND t.%s OPERATOR(pg_catalog.<=) $2 ORDER BY t.%s LIMIT $3) s "
										   "ORDER BY s.n DESC LIMIT 1",
										   col, col, r->key.relname, col, col, col),
								  3, (Oid[]) {r->key.type, r->key.type, INT8OID});
	r->stmt_plan = prepare_kept(m->up, 2, (Oid[]) {r->key.type, r->key.type});
	MemoryContextSwitchTo(old);
	progress_write(r);
}

/* batch_setup() in a transaction of its own; the error, or NULL. */
static ErrorData *
try_setup(BatchRun *r)
{
	ErrorData  *volatile edata = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		worker_tx_begin();
		batch_setup(r);
		worker_tx_commit();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(job_step_context);
		edata = CopyErrorData();
		FlushErrorState();
		worker_abort();
		MemoryContextSwitchTo(cxt);
	}
	PG_END_TRY();
	return edata;
}

/*
 * A batch (or the setup before the first) failed.  A lock wait that timed
 * out is retried with backoff, a bounded number of times: true, after the
 * wait.  Otherwise the job ends (false): cancelled if that was asked, else
 * failed, with the migration marked failed.
 */
static bool
batch_failed(BatchRun *r, ErrorData *edata, int *retries)
{
	Job		   *now;
	bool		cancelled;

	worker_tx_begin();
	now = job_read(r->j->id, false);
	cancelled = now && now->request && strcmp(now->request, "cancel") == 0;
	worker_tx_commit();
	if (!cancelled && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE && *retries < migrate_batch_lock_retries)
	{
		double		backoff = Min(250.0 * (1 << Min(*retries, 10)), 10000.0);

		(*retries)++;
		r->note = MemoryContextStrdup(job_step_context,
									  psprintf("waiting for a lock: batch retried %d of %d times, next in %.0f ms (%s)",
											   *retries, migrate_batch_lock_retries, backoff, edata->message));
		worker_tx_begin();
		note_write(r);
		worker_tx_commit();
		batch_sleep(backoff);
		return true;
	}
	if (!cancelled)
		edata = batch_error(r, edata, *retries);	/* in a transaction of its own */
	worker_tx_begin();
	if (cancelled)
	{
		job_update(r->j->id, "cancelled", "", NULL, -1, -1, -1, NULL);
		job_wake_waiters(r->j->id);
	}
	else
	{
		catalog_lock();
		r->note = NULL;
		note_write(r);
		record_failure(r->m, edata, job_step_json(r->j, r->step, r->total));
		job_fail(r->j, edata, r->m->version, 0, 0);
	}
	worker_tx_commit();
	free_plans(r);
	return false;
}

/*
 * Run a batched migration, from its checkpoint, batch by batch; then its
 * checks.  Each batch commits with its checkpoint.
 */
StepResult
run_batched(Job *j, Migration *m, int step, int total)
{
	BatchRun   *r = palloc0(sizeof(BatchRun));
	int			retries = 0;
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	r->j = j;
	r->m = m;
	r->step = step;
	r->total = total;

	for (;;)
	{
		ErrorData  *edata = try_setup(r);

		if (edata == NULL)
			break;
		if (!batch_failed(r, edata, &retries))
			return STEP_FINISHED;
	}
	retries = 0;

	while (r->walk)
	{
		double		extra_ms = 0;
		Between		b;
		bool		last;
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		if (r->range)
			pfree(r->range);
		r->range = NULL;
		b = between_batches(r, &extra_ms);
		if (b == BETWEEN_STOP)
		{
			free_plans(r);
			return STEP_FINISHED;
		}
		if (b == BETWEEN_AGAIN)
			continue;

		edata = run_one_batch(r, &last);
		if (edata)
		{
			if (batch_failed(r, edata, &retries))
				continue;
			return STEP_FINISHED;
		}
		retries = 0;
		if (last)
			break;
		adapt_size(r);
		batch_sleep(r->opts->pause_ms + extra_ms);
	}
	free_plans(r);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	return batch_finish(r, INSTR_TIME_GET_MILLISEC(elapsed));
}
