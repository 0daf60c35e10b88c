/*
 * apply.c
 *		migrate_apply(): run the pending migrations in order inside the
 *		caller's transaction, verifying each before the next starts.  All of
 *		them are kept or none: an error anywhere aborts the caller's
 *		transaction, and dry_run runs it all in a subtransaction that is rolled
 *		back on every path.  Given the checksum of a reviewed plan, it runs
 *		nothing unless the plan is still that one.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/prepare.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "nodes/value.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_apply);

/* What the error context says about the migration being applied. */
typedef struct ApplyContext
{
	Migration  *m;
	int			step;
	int			nsteps;
} ApplyContext;

static void
apply_error_context(void *arg)
{
	ApplyContext *ac = arg;

	if (migration_from_file(ac->m))
		errcontext("applying migration %s \"%s\" (%d of %d), from file \"%s\"",
				   ac->m->version, ac->m->name, ac->step, ac->nsteps, ac->m->source);
	else
		errcontext("applying migration %s \"%s\" (%d of %d)",
				   ac->m->version, ac->m->name, ac->step, ac->nsteps);
}

/* Send a NOTICE now, so psql shows progress as it happens. */
void
progress_notice(const char *fmt_result, int step, int nsteps, Migration *m, double ms)
{
	ereport(NOTICE,
			(errmsg_internal("[%d/%d] %s%s%s ... %s %.0f ms", step, nsteps, m->version,
							 m->repeatable ? "" : " ", m->repeatable ? "" : m->name,
							 fmt_result, ms)));
	if (whereToSendOutput == DestRemote)
		pq_flush();
}

/*
 * The migration apply_step() is running, for the NOTICE that says it is
 * still running: a backend cannot send a message in the middle of a
 * statement, so it is given before the first statement that starts after
 * PROGRESS_AFTER_MS (pg_stat_activity.query shows the statement meanwhile).
 */
#define PROGRESS_AFTER_MS 3000
static struct
{
	Migration  *m;				/* NULL when none */
	int			step;
	int			nsteps;
	instr_time	start;
	bool		announced;
} running;

/* Before statement i (0-based) of the running migration: say it runs, once, when it has run a while. */
void
progress_still_running(int i, int nstmts, int line)
{
	instr_time	now;
	double		ms;

	if (running.m == NULL || running.announced || i == 0)
		return;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, running.start);
	ms = INSTR_TIME_GET_MILLISEC(now);
	if (ms < PROGRESS_AFTER_MS)
		return;
	running.announced = true;
	ereport(NOTICE,
			(errmsg_internal("[%d/%d] %s%s%s ... running for %.0f s, now statement %d of %d (line %d)",
							 running.step, running.nsteps, running.m->version, running.m->repeatable ? "" : " ",
							 running.m->repeatable ? "" : running.m->name, ms / 1000.0, i + 1, nstmts, line)));
	if (whereToSendOutput == DestRemote)
		pq_flush();
}

/*
 * The session's prepared statements and cursors when a dry run began (NULL
 * outside dry runs).  A dry run's subtransaction rollback drops the cursors
 * it declared and forgets its LISTEN and UNLISTEN, but prepared statements
 * outlive it, and a DEALLOCATE or CLOSE of what the session had cannot be
 * rolled back.
 */
typedef struct SessionObjects
{
	List	   *prepared;		/* names, as String nodes */
	List	   *cursors;
} SessionObjects;

static SessionObjects *dry_run_session = NULL;

/* The names a query's first column returns. */
static List *
session_names(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *names = NIL;

	SPI_connect();
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list session objects: %s", sql);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		MemoryContext spi_cxt = MemoryContextSwitchTo(cxt);

		names = lappend(names, makeString(pstrdup(name)));
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	return names;
}

/*
 * The session's prepared statements.  A PREPARE outlives a rollback: what a
 * dry run prepared, and what a try that a lock timeout rolled back prepared
 * (lockwait.c), is deallocated with deallocate_prepared_since().
 */
List *
session_prepared_names(void)
{
	return session_names("SELECT name FROM pg_catalog.pg_prepared_statements");
}

static void
session_objects(SessionObjects *so)
{
	so->prepared = session_prepared_names();
	so->cursors = session_names("SELECT name FROM pg_catalog.pg_cursors");
}

/*
 * After a dry run: deallocate the prepared statements it made, so the
 * session is as it was; warn about those of the session it deallocated in
 * code migrate could not see (a DO block, a function).
 */
static void
session_restore(SessionObjects *before)
{
	List	   *now;
	ListCell   *lc;

	deallocate_prepared_since(before->prepared);
	now = session_prepared_names();
	foreach(lc, before->prepared)
		if (!list_member(now, lfirst(lc)))
			ereport(WARNING,
					(errmsg("the dry run deallocated prepared statement \"%s\" of this session",
							strVal(lfirst(lc))),
					 errdetail("A DEALLOCATE is not undone by rolling back; the dry run rolled back everything else."),
					 errhint("PREPARE it again if it is still needed.")));
}

void
deallocate_prepared_since(List *before)
{
	ListCell   *lc;

	foreach(lc, session_prepared_names())
		if (!list_member(before, lfirst(lc)))
			DropPreparedStatement(strVal(lfirst(lc)), false);
}

/*
 * In a dry run, refuse a DEALLOCATE or CLOSE of what the session had before
 * it: rolling back cannot give it back.
 */
void
refuse_in_dry_run(Script *script, int i, const char *what)
{
	ScriptStmt *st = script_stmt(script, i);
	Node	   *stmt = st->parsetree;
	const char *reason = NULL;

	if (dry_run_session == NULL)
		return;
	if (IsA(stmt, DeallocateStmt))
	{
		char	   *name = ((DeallocateStmt *) stmt)->name;

		if (name == NULL && dry_run_session->prepared != NIL)
			reason = "DEALLOCATE ALL would deallocate the prepared statements of the session";
		else if (name && list_member(dry_run_session->prepared, makeString(name)))
			reason = psprintf("DEALLOCATE would deallocate prepared statement \"%s\" of the session", name);
	}
	else if (IsA(stmt, ClosePortalStmt))
	{
		char	   *name = ((ClosePortalStmt *) stmt)->portalname;

		if (name == NULL && dry_run_session->cursors != NIL)
			reason = "CLOSE ALL would close the cursors of the session";
		else if (name && list_member(dry_run_session->cursors, makeString(name)))
			reason = psprintf("CLOSE would close cursor \"%s\" of the session", name);
	}
	if (reason)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement %d cannot run in a dry run", i + 1),
				 errdetail("%s, statement %d of %d, line %d: %s, and a dry run leaves the session as it found it: rolling back cannot undo that.",
						   what, i + 1, script->nstmts, st->line, reason),
				 errhint("Nothing was kept. Run it without dry_run, or deallocate or close it before the dry run.")));
}

/*
 * Apply one migration: expectations counted before, statements, then
 * expectations, verify query and constraint re-checks; then the catalog rows.
 * Raises on any failure.
 */
static void
apply_one(Migration *m, ApplyRecord *rec)
{
	char	   *what = psprintf("Migration %s \"%s\"", m->version, m->name);
	List	   *expectations = NIL;
	List	   *touched = NIL;
	Script	   *script;
	int			guc_level;
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);
	script = migration_script(m, "up");

	/*
	 * Settings a migration changes (SET search_path, SET statement_timeout,
	 * RESET ALL) last until its end, as if each migration ran in a session of
	 * its own: they must not leak into the next migration or the caller.
	 * Its lock waits, the expectations' SHARE locks included, are bounded.
	 */
	guc_level = NewGUCNestLevel();
	lockwait_set_timeout(m->up);
	if (m->expect)
	{
		List	   *written = NIL;

		expectations = expect_parse(DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																	   CStringGetDatum(m->expect))));
		/*
		 * The tables that statements may truncate, rewrite or replace, as
		 * they resolve now: those are counted before.  Rows that DML inserts
		 * or deletes are seen by the statistics, so DML needs no such count.
		 */
		for (int i = 0; i < script->nstmts; i++)
		{
			Node	   *stmt = script_stmt(script, i)->parsetree;
			ListCell   *lc;

			if (IsA(stmt, InsertStmt) || IsA(stmt, UpdateStmt) || IsA(stmt, DeleteStmt) ||
				IsA(stmt, MergeStmt) || IsA(stmt, CopyStmt) ||
				(IsA(stmt, SelectStmt) && ((SelectStmt *) stmt)->intoClause == NULL))
				continue;
			foreach(lc, stmt_written_relations(stmt))
			{
				Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

				if (OidIsValid(relid))
					written = lappend_oid(written, relid);
			}
		}
		expect_count_before(expectations, written, m->version);
	}

	rec->rows += run_statements(script, what,
								psprintf("%s; correct the script, register it again and rerun.", nothing_kept_text()),
								&touched);
	AtEOXact_GUC(false, guc_level);

	/*
	 * The checks run with the caller's settings, the migration's are gone: a
	 * script cannot switch off its own checks (SET migrate.verify_constraints
	 * = off), nor give them its search_path, role or row_security.  What
	 * their own code sets does not outlive them either.
	 */
	guc_level = NewGUCNestLevel();
	rec->checks += expect_check_after(expectations, m->version);
	if (m->verify)
		rec->checks += verify_query_raise(m);
	if (m->assertion)
		rec->checks += assert_query_raise(m);
	rec->checks += verify_constraints_raise(touched, m->version);
	AtEOXact_GUC(false, guc_level);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	rec->duration_ms = INSTR_TIME_GET_MILLISEC(elapsed);
	rec->counts = expect_counts_json(expectations);
	rec->touched = touched_names(touched);
	rec->touched_oids = touched_existing(touched);
	rec->action = "apply";
	catalog_record_applied(m, rec);
	histories_record_apply(m, script, rec->duration_ms, NULL);
}

/*
 * Apply one migration as step `step` of `nsteps`, with the error context and
 * the progress NOTICE.  Raises on any failure.
 */
void
apply_step(Migration *m, int step, int nsteps, bool dry_run, ApplyRecord *rec)
{
	ApplyContext ac = {m, step, nsteps};
	ErrorContextCallback errcb;

	errcb.callback = apply_error_context;
	errcb.arg = &ac;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	running.m = m;
	running.step = step;
	running.nsteps = nsteps;
	running.announced = false;
	INSTR_TIME_SET_CURRENT(running.start);
	PG_TRY();
	{
		apply_one(m, rec);
	}
	PG_FINALLY();
	{
		running.m = NULL;
	}
	PG_END_TRY();

	error_context_stack = errcb.previous;
	progress_notice(dry_run ? "ok (dry run)" : "ok", step, nsteps, m, rec->duration_ms);
}

Interval *
ms_interval(double ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) (ms * 1000.0);
	return iv;
}

/* Why a migration is non-transactional, for messages: "holds VACUUM at line 3". */
const char *
non_transactional_reason(Migration *m)
{
	ListCell   *lc;

	if (m->batch)
		return psprintf("is a batched data migration (on table %s)", batch_table_name(m->batch));
	foreach(lc, m->notes)
		if (strncmp(lfirst(lc), NON_TRANSACTIONAL_NOTE, strlen(NON_TRANSACTIONAL_NOTE)) == 0)
			return psprintf("holds %s", (char *) lfirst(lc) + strlen(NON_TRANSACTIONAL_NOTE));
	return "is registered with transactional => false";
}

/*
 * Split planned steps into those that can run in a transaction and those
 * left pending: non-transactional migrations, and migrations that require
 * one left pending.  With `warn`, each gets a WARNING with the way on.
 */
List *
leave_non_transactional(List *steps, List **left, bool warn)
{
	List	   *runnable = NIL;
	ListCell   *lc;

	*left = NIL;
	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		const char *blocker = s->blocker;	/* plan_pending() found it */

		if (!s->waits_worker)
		{
			runnable = lappend(runnable, s);
			continue;
		}
		*left = lappend(*left, s);
		if (!warn)
			continue;
		if (blocker)
			ereport(WARNING,
					(errmsg("migration %s was left pending: it requires %s, which was left pending",
							s->m->version, blocker)));
		else
			ereport(WARNING,
					(errmsg("migration %s was left pending: %s", s->m->version,
							s->m->batch ? "it is batched" : "it cannot run in a transaction"),
					 errdetail("Migration %s \"%s\" %s.", s->m->version, s->m->name,
							   non_transactional_reason(s->m)),
					 errhint("Apply it, and the migrations that require it, with a background job: SELECT migrate_start();")));
	}
	return runnable;
}

/*
 * Stop before the first step that needs a commit before it (the plan marked
 * it): one that uses an enum value an earlier step adds (PostgreSQL's
 * 55P04), or one after a step that sets constraint modes (SET CONSTRAINTS
 * lasts until a commit).  It and what follows are left pending, for the next
 * call or for CALL migrate_run() or a job, which commit between migrations.
 */
static List *
stop_before_needed_commit(List *steps, List **left)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		const char *hint = psprintf("The migrations before %s are applied by this call: run migrate_apply() again "
									"once it has committed, or use CALL migrate_run() or SELECT migrate_start(), "
									"which commit after each migration.", s->m->version);

		if (s->enum_adder != NULL)
			ereport(WARNING,
					(errmsg("migration %s and the migrations after it were left pending: it uses enum value %s, "
							"which migration %s adds in this same transaction",
							s->m->version, quote_literal_cstr(s->enum_value), s->enum_adder),
					 errdetail("PostgreSQL refuses an enum value before the transaction that adds it commits (55P04)."),
					 errhint("%s", hint)));
		else if (s->modes_setter != NULL)
			ereport(WARNING,
					(errmsg("migration %s and the migrations after it were left pending: migration %s before it "
							"sets constraint modes, which last until a commit",
							s->m->version, s->modes_setter),
					 errdetail("Migration %s runs SET CONSTRAINTS; run on its own, as psql -1 would run it, "
							   "its modes end when it commits, and no migration after it runs with them.",
							   s->modes_setter),
					 errhint("%s", hint)));
		else
			continue;
		*left = list_concat(list_copy_tail(steps, foreach_current_index(lc)), *left);
		return list_truncate(steps, foreach_current_index(lc));
	}
	return steps;
}

/*
 * How many migrations the running migrate_apply() call applied before the
 * one that runs now, all in its one transaction: an error rolls them back
 * too, and its hint says so (0 outside migrate_apply(): migrate_run() and
 * jobs commit each migration).
 */
static int	call_applied_before = 0;

/* "Nothing of this migration was kept", or of the whole call when more went. */
const char *
nothing_kept_text(void)
{
	if (call_applied_before > 0)
		return psprintf("Nothing of this call was kept (%d migrations rolled back: this one and the %d before it)",
						call_applied_before + 1, call_applied_before);
	return "Nothing of this migration was kept";
}

/* The arguments of one migrate_apply() call. */
typedef struct ApplyCall
{
	ReturnSetInfo *rsinfo;
	char	   *target_key;
	bool		dry_run;
	bool		out_of_order;
	char	   *plan;			/* the reviewed plan checksum, or NULL */
} ApplyCall;

/* Plan, then apply each pending migration, adding a result row for each. */
static void
apply_pending(void *arg)
{
	ApplyCall  *call = arg;
	MemoryContext step_cxt;
	Catalog    *cat;
	List	   *steps;
	List	   *left;
	ListCell   *lc;
	int			nsteps;

	SPI_connect();
	step_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate_apply step",
									 ALLOCSET_DEFAULT_SIZES);
	catalog_lock();
	cat = catalog_load(true);
	refuse_while_changed(cat, "migrate_apply()");
	steps = plan_pending(cat, call->target_key, call->out_of_order, true);
	if (call->plan)
		(void) plan_check_reviewed(steps, call->plan);
	steps = leave_non_transactional(steps, &left, true);
	steps = stop_before_needed_commit(steps, &left);
	nsteps = list_length(steps);
	if (call->dry_run)
		lint_report(steps);
	else
		lint_refuse(steps, "migrate_apply()");

	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		ApplyRecord rec = {0};
		MemoryContext saved = MemoryContextSwitchTo(step_cxt);
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		/* an error rolls back this migration and those before it in the call */
		call_applied_before = foreach_current_index(lc);
		PG_TRY();
		{
			apply_step_retrying(s->m, foreach_current_index(lc) + 1, nsteps, call->dry_run, true, &rec);
		}
		PG_FINALLY();
		{
			call_applied_before = 0;
		}
		PG_END_TRY();

		values[0] = CStringGetTextDatum(s->m->version);
		values[1] = CStringGetTextDatum(s->m->name);
		values[2] = CStringGetTextDatum(call->dry_run ? "dry run" : "applied");
		values[3] = IntervalPGetDatum(ms_interval(rec.duration_ms));
		values[4] = Int64GetDatum(rec.rows);
		values[5] = Int32GetDatum(rec.checks);
		tuplestore_putvalues(call->rsinfo->setResult, call->rsinfo->setDesc, values, nulls);

		MemoryContextSwitchTo(saved);
		MemoryContextReset(step_cxt);
	}
	foreach(lc, left)
	{
		PlanStep   *s = lfirst(lc);
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = CStringGetTextDatum(s->m->version);
		values[1] = CStringGetTextDatum(s->m->name);
		values[2] = CStringGetTextDatum("left pending");
		nulls[3] = nulls[4] = nulls[5] = true;
		tuplestore_putvalues(call->rsinfo->setResult, call->rsinfo->setDesc, values, nulls);
	}
	if (nsteps > 0 && !call->dry_run)
		catalog_mark_changed();
	SPI_finish();
}

static void apply_call(ApplyCall *call);

Datum
migrate_apply(PG_FUNCTION_ARGS)
{
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	ApplyCall	call;

	call.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	call.target_key = target ? version_key(target) : NULL;
	call.dry_run = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	call.out_of_order = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	call.plan = plan_checksum_arg(fcinfo, 3);
	InitMaterializedSRF(fcinfo, 0);

	/* what the caller's transaction did with temporary tables before the call (commit.c) */
	commit_call_begin();
	PG_TRY();
	{
		apply_call(&call);
	}
	PG_FINALLY();
	{
		commit_call_end();
	}
	PG_END_TRY();
	return (Datum) 0;
}

/* migrate_apply(), in a subtransaction rolled back for a dry run. */
static void
apply_call(ApplyCall *call_arg)
{
	ApplyCall	call = *call_arg;

	if (call.dry_run)
	{
		/*
		 * everything in a subtransaction that is rolled back, whatever
		 * happens; then the session is left as it was found
		 */
		SessionObjects before;
		SessionObjects *outer = dry_run_session;
		ErrorData  *edata;

		session_objects(&before);
		dry_run_session = &before;
		edata = run_in_subtransaction(apply_pending, &call, false);
		dry_run_session = outer;
		session_restore(&before);
		if (edata)
			ReThrowError(edata);
	}
	else
		apply_pending(&call);
}
