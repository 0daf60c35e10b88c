/*
 * lifecycle.c
 *		The lifecycle commands of a mature migration tool:
 *		migrate_run()      apply with a commit after each migration, a failure
 *		                   recorded durably;
 *		migrate_rollback() run down scripts, the migration applied last first
 *		                   and dependents before their requirements, in one
 *		                   transaction;
 *		migrate_baseline() adopt an existing database: mark migrations applied;
 *		migrate_repair()   accept an intended edit, clear failures.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/binaryheap.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_run);
PG_FUNCTION_INFO_V1(migrate_rollback);
PG_FUNCTION_INFO_V1(migrate_baseline);
PG_FUNCTION_INFO_V1(migrate_repair);
PG_FUNCTION_INFO_V1(migrate_remove);

/* Append "key": "value" (escaped) to a JSON object under construction. */
static void
json_field(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* ---- migrate_run ---- */

typedef struct RunStep
{
	Migration  *m;
	int			step;
	int			nsteps;
} RunStep;

static void
run_step_body(void *arg)
{
	RunStep    *rs = arg;
	ApplyRecord rec = {0};

	apply_step_retrying(rs->m, rs->step, rs->nsteps, false, false, &rec);
}

/*
 * Record a failed run of m: its failure state and a history row, in the
 * transaction that still holds the catalog lock; the caller commits it.
 * extra_json: more fields for the history row's detail ("\"job\": 7, ..."),
 * or NULL.
 */
void
record_failure(Migration *m, ErrorData *edata, const char *extra_json)
{
	StringInfoData json;
	Datum		values[6];

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	json_field(&json, "sqlstate", unpack_sql_state(edata->sqlerrcode));
	json_field(&json, "message", edata->message);
	json_field(&json, "detail", edata->detail);
	json_field(&json, "hint", edata->hint);
	if (extra_json)
		appendStringInfo(&json, ", %s", extra_json);
	appendStringInfoChar(&json, '}');

	values[0] = CStringGetTextDatum(m->key);
	values[1] = CStringGetTextDatum(m->version);
	values[2] = CStringGetTextDatum(m->name);
	values[3] = CStringGetTextDatum(m->checksum);
	values[4] = CStringGetTextDatum(json.data);
	values[5] = DirectFunctionCall1(namein, CStringGetDatum(current_user_name()));
	catalog_exec("WITH f AS (UPDATE migrate.migrations SET failure = $5::jsonb "
				 "            WHERE version_key = $1) "
				 "INSERT INTO migrate.history (version, version_key, name, action, checksum, "
				 "       performed_by, outcome, detail) "
				 "VALUES ($2, $1, $3, 'apply', $4, $6, 'failed', $5::jsonb)",
				 6, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID}, values, NULL);
}

/*
 * CALL migrate_run(target, out_of_order, plan): apply pending migrations one
 * transaction each.  What succeeded stays; a failure is recorded and
 * committed, then raised.  With a reviewed plan checksum, the first plan
 * must be that plan, and each later step one of its steps, unchanged.
 */
Datum
migrate_run(PG_FUNCTION_ARGS)
{
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		out_of_order = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	char	   *target_key = target ? version_key(target) : NULL;
	char	   *plan = plan_checksum_arg(fcinfo, 2);
	List	   *reviewed = NIL;
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	MemoryContext step_cxt;
	int			done = 0;
	int			total = -1;
	int			left_pending = 0;
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("migrate_run() cannot run inside a transaction block"),
				 errdetail("It commits after each migration."),
				 errhint("Run CALL migrate_run(); on its own, or SELECT * FROM migrate_apply(); to apply everything in this transaction.")));

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	step_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate_run step",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext saved = MemoryContextSwitchTo(step_cxt);
		Catalog    *cat;
		List	   *steps;
		List	   *left;
		RunStep		rs;
		ErrorData  *edata;

		/*
		 * Plan afresh each time: another session may have applied meanwhile.
		 * Non-transactional migrations are left pending (warned about once).
		 */
		catalog_lock();
		cat = catalog_load(true);
		refuse_while_changed(cat, "migrate_run()");
		steps = plan_pending(cat, target_key, out_of_order, true);
		if (plan && total < 0)
		{
			/* checked once, before the first commit; kept across commits */
			MemoryContextSwitchTo(saved);
			reviewed = plan_check_reviewed(steps, plan);
			MemoryContextSwitchTo(step_cxt);
		}
		steps = leave_non_transactional(steps, &left, total < 0);
		left_pending = list_length(left);
		if (total < 0)
		{
			total = list_length(steps);
			lint_refuse(steps, "CALL migrate_run()");
		}
		if (steps == NIL || (plan && !plan_next_step_reviewed(reviewed, steps, done)))
		{
			MemoryContextSwitchTo(saved);
			break;
		}
		rs.m = ((PlanStep *) linitial(steps))->m;
		rs.step = done + 1;
		rs.nsteps = Max(total, done + 1);
		edata = run_in_subtransaction(run_step_body, &rs, true);
		if (edata)
		{
			record_failure(rs.m, edata, NULL);
			SPI_commit();
			ReThrowError(edata);
		}
		catalog_mark_changed();
		SPI_commit();
		done++;
		MemoryContextSwitchTo(saved);
		MemoryContextReset(step_cxt);
	}
	SPI_finish();
	/* what the call did, in one line at its end */
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	ereport(NOTICE,
			(errmsg_internal("migrate_run: %d migration%s applied in %.0f ms%s", done, done == 1 ? "" : "s",
							 INSTR_TIME_GET_MILLISEC(elapsed),
							 left_pending > 0 ? psprintf(", %d left pending for a job (SELECT migrate_start())",
														 left_pending) : "")));
	PG_RETURN_VOID();
}

/* ---- migrate_rollback ---- */

static void
revert_one(Migration *m, ApplyRecord *rec)
{
	char	   *what = psprintf("Down script of migration %s \"%s\"", m->version, m->name);
	Script	   *script = migration_script(m, "down");
	List	   *touched = NIL;
	int			guc_level = NewGUCNestLevel();	/* settings last until its end */
	instr_time	start,
				elapsed;
	Datum		values[4];

	INSTR_TIME_SET_CURRENT(start);
	rec->rows += run_statements(script, what,
								"Nothing of this rollback was kept; correct the down script, register it again and rerun.",
								&touched);
	AtEOXact_GUC(false, guc_level);
	/* the re-checks with the caller's settings, as after an apply */
	guc_level = NewGUCNestLevel();
	rec->checks += verify_constraints_raise(touched, m->version);
	AtEOXact_GUC(false, guc_level);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	rec->duration_ms = INSTR_TIME_GET_MILLISEC(elapsed);

	values[0] = CStringGetTextDatum(m->key);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(current_user_name()));
	values[2] = CStringGetTextDatum(psprintf("%.3f ms", rec->duration_ms));
	values[3] = Int64GetDatum(rec->rows);
	/* reverted, it is pending with its registered text: no drift from what ran */
	catalog_exec("WITH a AS (DELETE FROM migrate.applied WHERE version_key = $1 RETURNING *), "
				 "     d AS (UPDATE migrate.migrations SET applied_up = NULL, drift = NULL "
				 "            WHERE version_key = $1 AND (applied_up IS NOT NULL OR drift IS NOT NULL)) "
				 "INSERT INTO migrate.history (version, version_key, name, action, checksum, "
				 "       performed_by, duration, rows_affected, checks) "
				 "SELECT a.version, a.version_key, a.name, 'revert', a.checksum, $2, $3::interval, $4, $5 "
				 "  FROM a",
				 5, (Oid[]) {TEXTOID, NAMEOID, TEXTOID, INT8OID, INT4OID},
				 (Datum[]) {values[0], values[1], values[2], values[3], Int32GetDatum(rec->checks)},
				 NULL);
	histories_record_revert(m);
}

/* Refuse a rollback that needs a non-transactional migration's down script. */
static void
refuse_non_transactional_downs(List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;

		if (!m->transactional)
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("migration %s cannot be rolled back in a transaction", m->version),
					 errdetail("Migration %s \"%s\" %s; its down script is expected to need the same.",
							   m->version, m->name, non_transactional_reason(m)),
					 errhint("Roll back to %s or a later version; the background worker will run such down scripts.",
							 m->version)));
	}
}

/* Order of reverting: the migration applied last first (larger rank), then the newer version. */
static int
revert_cmp(Datum a, Datum b, void *arg)
{
	const int  *rank = arg;
	int			ia = DatumGetInt32(a),
				ib = DatumGetInt32(b);

	if (rank[ia] != rank[ib])
		return rank[ia] < rank[ib] ? -1 : 1;
	return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/*
 * The applied versioned migrations newer than target_key, in the order to
 * revert them: the reverse of the order in which they were applied (their
 * latest apply, baseline or import row in migrate.history), and in any case
 * each before the migrations it requires (Kahn's algorithm over the
 * requirements among them, the one applied last first).  Refuses (55000)
 * when a migration that stays applied requires one of them.  Those without
 * a down script are appended to *missing.
 */
static List *
revert_order(Catalog *cat, const char *target, const char *target_key, StringInfo missing)
{
	ReqGraph   *g = plan_graph(cat);
	int			n = cat->n;
	bool	   *revert = palloc0(sizeof(bool) * Max(n, 1));
	int		   *rank = palloc0(sizeof(int) * Max(n, 1));
	int		   *dependents = palloc0(sizeof(int) * Max(n, 1));
	binaryheap *ready = binaryheap_allocate(Max(n, 1), revert_cmp, rank);
	List	   *steps = NIL;
	int			nrevert = 0;

	for (int i = 0; i < n; i++)
	{
		Migration  *m = cat->items[i];

		revert[i] = m->applied && !m->repeatable && strcmp(m->key, target_key) > 0;
		nrevert += revert[i];
	}

	/* what stays applied keeps its requirements */
	for (int i = 0; i < n; i++)
	{
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		if (!m->applied || revert[i])
			continue;
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
		{
			Migration  *r;

			if (g->to[e] < 0 || !revert[g->to[e]])
				continue;
			r = cat->items[g->to[e]];
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot roll back to %s: migration %s requires %s", target, m->version, r->version),
					 errdetail("Migration %s \"%s\" stays applied, and the rollback would revert %s \"%s\", which it requires.",
							   m->version, m->name, r->version, r->name),
					 m->repeatable
					 ? errhint("Register %s again without the requirement, or roll back to %s or a later version.",
							   m->version, r->version)
					 : errhint("Roll back to a version older than %s, so that it is reverted too, or to %s or a later version.",
							   m->version, r->version)));
		}
	}
	if (nrevert == 0)
		return NIL;

	/* the order in which they were applied: 1 for the first */
	catalog_exec("SELECT a.version_key "
				 "  FROM migrate.applied a "
				 " WHERE a.version_key > $1 AND a.version_key < '~' "
				 " ORDER BY (SELECT max(h.id) FROM migrate.history h "
				 "            WHERE h.version_key = a.version_key AND h.outcome = 'ok' "
				 "              AND h.action IN ('apply', 'baseline', 'import')) NULLS FIRST, "
				 "          a.applied_at, a.version_key",
				 1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(target_key)}, NULL);
	for (uint64 k = 0; k < SPI_processed; k++)
	{
		int			i = catalog_find_index(cat, SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1));

		CHECK_FOR_INTERRUPTS();
		if (i >= 0)
			rank[i] = (int) k + 1;
	}
	SPI_freetuptable(SPI_tuptable);

	/* a migration is reverted once none that requires it is left applied */
	for (int i = 0; i < n; i++)
		if (revert[i])
			for (int e = g->off[i]; e < g->off[i + 1]; e++)
				if (g->to[e] >= 0 && revert[g->to[e]])
					dependents[g->to[e]]++;
	for (int i = 0; i < n; i++)
		if (revert[i] && dependents[i] == 0)
			binaryheap_add_unordered(ready, Int32GetDatum(i));
	binaryheap_build(ready);
	while (!binaryheap_empty(ready))
	{
		int			i = DatumGetInt32(binaryheap_remove_first(ready));
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		if (m->down == NULL)
			appendStringInfo(missing, "%s%s", missing->len > 0 ? ", " : "", m->version);
		else
		{
			PlanStep   *s = palloc0(sizeof(PlanStep));

			s->m = m;
			steps = lappend(steps, s);
		}
		nrevert--;
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
			if (g->to[e] >= 0 && revert[g->to[e]] && --dependents[g->to[e]] == 0)
				binaryheap_add(ready, Int32GetDatum(g->to[e]));
	}
	if (nrevert > 0)
	{
		/* only a catalog edited by hand has a cycle */
		int		   *left = palloc(sizeof(int) * Max(n, 1));
		int			nleft = 0;
		List	   *cycles;

		for (int i = 0; i < n; i++)
			if (revert[i] && dependents[i] > 0)
				left[nleft++] = i;
		cycles = plan_find_cycles(cat, left, nleft, false);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("requirements of migration %s form a cycle",
						cycles ? cat->items[linitial_int(linitial(cycles))]->version : cat->items[left[0]]->version),
				 cycles ? errdetail("The chain is %s (each requires the next).",
									plan_cycle_chain(cat, linitial(cycles))) : 0,
				 errhint("Remove one of the requirements in the chain.")));
	}
	return steps;
}

/* revert_one(), and commit_call_end() if it fails. */
static void
revert_one_guarded(Migration *m, ApplyRecord *rec)
{
	PG_TRY();
	{
		revert_one(m, rec);
	}
	PG_CATCH();
	{
		commit_call_end();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * migrate_rollback(target): revert the applied migrations newer than target,
 * the one applied last first, each before those it requires.
 */
Datum
migrate_rollback(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *target;
	char	   *target_key;
	Catalog    *cat;
	List	   *revert = NIL;
	StringInfoData missing;
	ListCell   *lc;
	MemoryContext step_cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the target of a rollback must not be null"),
				 errhint("migrate_rollback('0') reverts every migration.")));
	target = text_to_cstring(PG_GETARG_TEXT_PP(0));
	target_key = version_key(target);
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);

	/* applied, but not registered: there is no down script to run */
	catalog_exec("SELECT pg_catalog.string_agg(a.version, ', ' ORDER BY a.version_key DESC) "
				 "  FROM migrate.applied a "
				 " WHERE a.version_key > $1 AND a.version_key < '~' "
				 "   AND NOT EXISTS (SELECT FROM migrate.migrations m WHERE m.version_key = a.version_key)",
				 1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(target_key)}, NULL);
	initStringInfo(&missing);
	if (SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))
		appendStringInfoString(&missing, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));

	revert = revert_order(cat, target, target_key, &missing);
	if (missing.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot roll back to %s: some migrations have no down script", target),
				 errdetail("Without a down script: %s.", missing.data),
				 errhint("Register their down scripts, with the same up script (an applied migration takes a down "
						 "script that way): migrate_add(..., down => ...); in a file, a -- migrate:down section "
						 "after the up one, or a file of its own (U<version>__name.sql as Flyway names it, "
						 "<version>_name.down.sql as golang-migrate does). Or roll back to a later version.")));
	refuse_changed_rollback(revert);
	refuse_non_transactional_downs(revert);
	refuse_unparsed_downs(revert);

	/* what the caller's transaction did with temporary tables before the call (commit.c) */
	commit_call_begin();
	/* each down script's parse trees and checks in a context reset after it */
	step_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate_rollback step", ALLOCSET_DEFAULT_SIZES);
	foreach(lc, revert)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;
		ApplyRecord rec = {0};
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};
		MemoryContext saved = MemoryContextSwitchTo(step_cxt);

		CHECK_FOR_INTERRUPTS();
		revert_one_guarded(m, &rec);
		progress_notice("reverted", foreach_current_index(lc) + 1, list_length(revert), m, rec.duration_ms);
		values[0] = CStringGetTextDatum(m->version);
		values[1] = CStringGetTextDatum(m->name);
		values[2] = CStringGetTextDatum("reverted");
		values[3] = IntervalPGetDatum(ms_interval(rec.duration_ms));
		values[4] = Int64GetDatum(rec.rows);
		values[5] = Int32GetDatum(rec.checks);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(saved);
		MemoryContextReset(step_cxt);
	}
	commit_call_end();
	if (revert != NIL)
		catalog_mark_changed();
	SPI_finish();
	return (Datum) 0;
}

/* ---- migrate_baseline ---- */

/*
 * migrate_baseline(version): mark registered migrations up to version
 * applied, unrun, in the order migrate_apply(target => version) would run
 * them; refused, as that is, when one requires a migration beyond version.
 */
Datum
migrate_baseline(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *key;
	Catalog    *cat;
	List	   *steps;
	ListCell   *lc;
	int			marked = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the version of a baseline must not be null")));
	key = version_key(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);
	steps = plan_pending(cat, key, true, false);
	foreach(lc, steps)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;
		ApplyRecord rec = {0};
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		CHECK_FOR_INTERRUPTS();
		if (m->applied || m->repeatable)
			continue;
		rec.action = "baseline";
		catalog_record_applied(m, &rec);
		histories_record_apply(m, NULL, 0, NULL);
		values[0] = CStringGetTextDatum(m->version);
		values[1] = CStringGetTextDatum(m->name);
		values[2] = CStringGetTextDatum("baseline");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		marked++;
	}
	if (marked > 0)
		catalog_mark_changed();
	SPI_finish();
	return (Datum) 0;
}

/* ---- migrate_repair ---- */

static void
put_repair_row(ReturnSetInfo *rsinfo, Migration *m, const char *action, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(m->version);
	values[1] = CStringGetTextDatum(m->name);
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(detail);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Accept `checksum` as applied for m (and, with new_up, register that text). */
static void
accept_checksum(Migration *m, const char *new_up, const char *checksum)
{
	StringInfoData json;

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	json_field(&json, "previous_applied_checksum", m->applied_checksum);
	appendStringInfoChar(&json, '}');
	if (new_up)
		catalog_exec("UPDATE migrate.migrations SET up = $2, checksum = $3, failure = NULL "
					 " WHERE version_key = $1",
					 3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID},
					 (Datum[]) {CStringGetTextDatum(m->key), CStringGetTextDatum(new_up),
					 CStringGetTextDatum(checksum)}, NULL);
	catalog_exec("WITH d AS (UPDATE migrate.migrations SET applied_up = NULL, drift = NULL "
				 "            WHERE version_key = $1 AND (applied_up IS NOT NULL OR drift IS NOT NULL)) "
				 "UPDATE migrate.applied SET checksum = $2 WHERE version_key = $1",
				 2, (Oid[]) {TEXTOID, TEXTOID},
				 (Datum[]) {CStringGetTextDatum(m->key), CStringGetTextDatum(checksum)}, NULL);
	catalog_history(m->version, m->key, m->name, "repair", checksum, json.data);
	histories_record_repair(m, new_up);
}

/*
 * migrate_repair(version, up): with up, register new text for an applied
 * migration and accept it; without, accept the registered text of changed
 * applied migrations and clear recorded failures (of all, or of version).
 */
Datum
migrate_repair(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *version = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *up = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *key = version ? migration_key(version) : NULL;
	Catalog    *cat;
	int			repaired = 0;

	if (up && version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a new up script needs the version it belongs to"),
				 errhint("Call migrate_repair(version => '...', up => ...).")));
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);
	if (key && catalog_find(cat, key) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration %s is not registered", version)));

	if (up)
	{
		Migration  *m = catalog_find(cat, key);
		Migration	edited = *m;

		if (!m->applied)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s is not applied", version),
					 errhint("migrate_add() replaces the text of a pending migration.")));
		/* a file's text is its sections: they are registered from the file, never taken raw */
		if (migration_from_file(m))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s was registered from file \"%s\": its new text comes from the file", version,
							m->source),
					 errdetail("A file's sections (up, down, verify, assert) and directives are read when it is registered."),
					 errhint("Register the edited file (migrate_load(), migrate_add_script(s), or the bundle), then accept "
							 "it: SELECT * FROM migrate_repair('%s');", version)));
		if (text_has_section_markers(up))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the new up script of migration %s holds section markers", version),
					 errdetail("An up script given as text is stored as it is, -- migrate:down and the rest included."),
					 errhint("Register it as a file with migrate_add_script('<file name>', <text>), then accept it: "
							 "SELECT * FROM migrate_repair('%s');", version)));
		edited.up = up;
		migration_prepare(&edited);
		accept_checksum(m, up, edited.checksum);
		put_repair_row(rsinfo, m, "accepted",
					   psprintf("new text accepted: checksum %s, was %s", edited.checksum, m->applied_checksum));
		repaired++;
	}
	else
	{
		for (int i = 0; i < cat->n; i++)
		{
			Migration  *m = cat->items[i];

			if (key && strcmp(m->key, key) != 0)
				continue;
			if (m->applied && !m->repeatable && strcmp(m->applied_checksum, m->checksum) != 0)
			{
				accept_checksum(m, NULL, m->checksum);
				put_repair_row(rsinfo, m, "accepted",
							   psprintf("registered text accepted: checksum %s, was %s",
										m->checksum, m->applied_checksum));
				repaired++;
			}
			if (m->failed)
			{
				catalog_exec("UPDATE migrate.migrations SET failure = NULL WHERE version_key = $1",
							 1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(m->key)}, NULL);
				catalog_history(m->version, m->key, m->name, "repair", m->checksum,
								"{\"cleared\": \"failure\"}");
				put_repair_row(rsinfo, m, "cleared failure", "it will run again with the next apply");
				repaired++;
			}
		}
	}
	if (repaired > 0)
		catalog_mark_changed();
	SPI_finish();
	return (Datum) 0;
}

/* ---- migrate_remove ---- */

/*
 * migrate_remove(version): unregister a pending migration (registered by
 * mistake, its file deleted), recorded in history.  An applied one is
 * refused: roll it back first.  So is one that pending migrations require,
 * and one a job is running.
 */
Datum
migrate_remove(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *version;
	char	   *key;
	Catalog    *cat;
	Migration  *m;
	StringInfoData required_by;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Datum		arg;

	version = text_to_cstring(PG_GETARG_TEXT_PP(0));	/* STRICT: never null */
	key = migration_key(version);
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);
	m = catalog_find(cat, key);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration %s is not registered", version),
				 errhint("SELECT * FROM migrate_status() lists the registered migrations.")));
	if (m->applied)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is applied", m->version),
				 errdetail("Removing it would leave its changes in the database with no record of them."),
				 errhint("Roll it back first (migrate_rollback() to the version before it), then remove it.")));
	initStringInfo(&required_by);
	for (int i = 0; i < cat->n; i++)
	{
		ListCell   *lc;

		foreach(lc, cat->items[i]->requires_keys)
			if (strcmp(lfirst(lc), key) == 0)
				appendStringInfo(&required_by, "%s%s", required_by.len ? ", " : "", cat->items[i]->version);
	}
	if (required_by.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("migration %s is required by %s", m->version, required_by.data),
				 errhint("Remove those first, or register them again without the requirement.")));
	arg = CStringGetTextDatum(m->version);
	catalog_exec("SELECT id FROM migrate.job_state WHERE version = $1 AND state IN ('running', 'paused')",
				 1, (Oid[]) {TEXTOID}, &arg, NULL);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration %s is being run by migration job %s", m->version,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errhint("Cancel the job first: SELECT migrate_cancel(%s);",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))));

	arg = CStringGetTextDatum(m->key);
	catalog_exec("WITH s AS (DELETE FROM migrate.statement_progress WHERE version_key = $1), "
				 "     b AS (DELETE FROM migrate.batch_progress WHERE version_key = $1) "
				 "DELETE FROM migrate.migrations WHERE version_key = $1",
				 1, (Oid[]) {TEXTOID}, &arg, NULL);
	catalog_history(m->version, m->key, m->name, "remove", m->checksum,
					psprintf("{\"source\": %s}", quote_json(m->source)));
	catalog_mark_changed();
	values[0] = CStringGetTextDatum(m->version);
	values[1] = CStringGetTextDatum(m->name);
	values[2] = CStringGetTextDatum("removed");
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	SPI_finish();
	return (Datum) 0;
}
