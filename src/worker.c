/*
 * worker.c
 *		The background worker of a job (jobs.c queues it): connected to the
 *		job's database as the job's role, it applies the plan step by step,
 *		each step in transactions of its own, so that it never holds back
 *		the xmin horizon for the length of a job:
 *		  - a transactional migration: one transaction, as migrate_run() does;
 *		  - a non-transactional one (CREATE INDEX CONCURRENTLY, VACUUM, ...):
 *		    one statement at a time at top level, as psql would run it, each
 *		    checkpointed in migrate.statement_progress, so that a rerun
 *		    resumes at the statement that did not complete;
 *		  - a batched one: batch by batch (batch.c), each batch committed
 *		    with its checkpoint in migrate.batch_progress.
 *		Requests (pause, cancel) are looked at between steps and statements;
 *		a cancel also interrupts the running statement (SIGINT).
 *
 *		With shared_preload_libraries = 'migrate', a launcher starts after
 *		every server start (crash restarts included) and resumes the jobs of
 *		every database that lost their worker.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/ps_status.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "migrate.h"

PGDLLEXPORT void migrate_job_main(Datum arg);
PGDLLEXPORT void migrate_launcher_main(Datum arg);
PGDLLEXPORT void migrate_recover_main(Datum arg);

/* Memory that lives for the whole job, across transactions; and for one step. */
static MemoryContext job_cxt;
MemoryContext job_step_context;

/* ---- the job's lock ---- */

/* The job this worker runs. */
static int64 worker_job_id;

/*
 * Take the job's lock (a session lock: see job_locktag()).  A session that
 * checks whether the job's worker lives holds it for a moment: try for a
 * second before taking it that another worker runs the job, and leave.
 */
static void
job_lock_or_leave(int64 id)
{
	LOCKTAG		tag;

	for (int tries = 0;; tries++)
	{
		bool		got;

		StartTransactionCommand();
		job_locktag(&tag, MyDatabaseId, id);
		got = LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
		CommitTransactionCommand();		/* a session lock outlives it */
		if (got)
			return;
		if (tries == 20)
			proc_exit(0);		/* another worker runs this job */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Abort the current top-level transaction, and take the job's lock again:
 * PostgreSQL releases every session lock of the default lock method when a
 * transaction aborts (ProcReleaseLocks), the job's lock with them.  A session
 * that looked in between may have started another worker (it waits for the
 * lock, then leaves) and cleared the row's worker_pid: name this worker again.
 * Every top-level abort in a job's worker goes through here.
 */
void
worker_abort(void)
{
	AbortCurrentTransaction();
	job_lock_or_leave(worker_job_id);
	worker_tx_begin();
	catalog_exec("UPDATE migrate.job_state SET worker_pid = pg_catalog.pg_backend_pid() "
				 " WHERE id = $1 AND worker_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() "
				 "   AND state IN ('running', 'paused')",
				 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(worker_job_id)}, NULL);
	worker_tx_commit();
}

/* ---- running one statement at top level ---- */

/*
 * Run one SQL statement as a top-level statement in a transaction of its
 * own, as psql runs it (a statement that commits on its own, such as
 * CREATE INDEX CONCURRENTLY, does so).  Returns the error, or NULL.
 */
static ErrorData *
exec_toplevel(const char *sql)
{
	MemoryContext stmt_cxt = AllocSetContextCreate(job_step_context, "migrate statement", ALLOCSET_DEFAULT_SIZES);
	ErrorData  *volatile edata = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, sql);
	PG_TRY();
	{
		MemoryContext old = MemoryContextSwitchTo(stmt_cxt);
		List	   *parsetrees = pg_parse_query(sql);
		ListCell   *lc;

		MemoryContextSwitchTo(old);
		foreach(lc, parsetrees)
		{
			RawStmt    *raw = lfirst_node(RawStmt, lc);
			CommandTag	tag = CreateCommandTag(raw->stmt);
			bool		snapshot = analyze_requires_snapshot(raw);
			List	   *queries;
			List	   *plans;
			Portal		portal;
			DestReceiver *dest;
			QueryCompletion qc;

			set_ps_display(GetCommandTagName(tag));
			if (snapshot)
				PushActiveSnapshot(GetTransactionSnapshot());
			/* parse trees and plans outlive the commits the statement makes */
			old = MemoryContextSwitchTo(stmt_cxt);
			queries = pg_analyze_and_rewrite_fixedparams(raw, sql, NULL, 0, NULL);
			plans = pg_plan_queries(queries, sql, CURSOR_OPT_PARALLEL_OK, NULL);
			if (snapshot)
				PopActiveSnapshot();
			CHECK_FOR_INTERRUPTS();
			portal = CreatePortal("", true, true);
			portal->visible = false;
			PortalDefineQuery(portal, NULL, sql, tag, plans, NULL);
			PortalStart(portal, NULL, 0, InvalidSnapshot);
			dest = CreateDestReceiver(DestNone);
			MemoryContextSwitchTo(old);
			/* as postgres.c does for each statement: a migration's own statement_timeout counts */
			if (StatementTimeout > 0)
				enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
			(void) PortalRun(portal, FETCH_ALL, list_length(parsetrees) == 1, true, dest, dest, &qc);
			disable_timeout(STATEMENT_TIMEOUT, false);
			PortalDrop(portal, false);
			CommandCounterIncrement();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(job_step_context);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		worker_abort();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	set_ps_display("idle");
	MemoryContextDelete(stmt_cxt);
	return edata;
}

/* ---- transactions of the worker ---- */

void
worker_tx_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
}

void
worker_tx_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Apply the settings the job took from the session that started it. */
static void
apply_settings(Job *j)
{
	ListCell   *lc;

	foreach(lc, j->settings)
	{
		char	   *setting = pstrdup(lfirst(lc));
		char	   *eq = strchr(setting, '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		(void) set_config_option(setting, eq + 1, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
	}
}

/*
 * Each migration of a job starts with the job's settings, as in a session of
 * its own (psql -1 per file): what a non-transactional migration SET at top
 * level, or a batch's statement set for the session, is gone, before the
 * next migration and before a migration's own checks.
 */
void
worker_reset_settings(Job *j)
{
	ResetAllOptions();
	(void) set_config_option("role", NULL, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
	apply_settings(j);
}

/* Wait, holding no transaction, until the job is resumed or cancelled. */
void
worker_wait_while_paused(int64 id)
{
	for (;;)
	{
		Job		   *j;
		bool		paused;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		worker_tx_begin();
		j = job_read(id, true);
		paused = j && j->request && strcmp(j->request, "pause") == 0;
		if (j && !paused)
			job_update(id, "running", NULL, NULL, -1, -1, -1, NULL);
		worker_tx_commit();
		if (!paused)
			return;
	}
}

/*
 * End the job as failed (or cancelled, when that was asked), in the current
 * transaction; the error's migration, and its file, statement and line when
 * known.
 */
static void
job_fail_at(Job *j, ErrorData *edata, const char *version, const char *file, int statement, int line)
{
	Job		   *now = job_read(j->id, true);
	bool		cancelled = now && now->request && strcmp(now->request, "cancel") == 0;

	job_update(j->id, cancelled ? "cancelled" : "failed", "", NULL, -1, -1, -1,
			   job_error_json(edata, version, file, statement, line));
	job_wake_waiters(j->id);
}

void
job_fail(Job *j, ErrorData *edata, const char *version, int statement, int line)
{
	job_fail_at(j, edata, version, NULL, statement, line);
}

/*
 * A statement of a migration failed: the line of the error in the
 * migration's file (its position in the statement, which top-level
 * execution reports as cursorpos), and the file.
 */
static void
job_fail_in_statement(Job *j, ErrorData *edata, Migration *m, ScriptStmt *st)
{
	int			line = st->line;

	if (edata->cursorpos > 0)
		line = script_stmt_line_at(st, char_to_byte_offset(st->sql, edata->cursorpos));
	job_fail_at(j, edata, m->version, migration_from_file(m) ? m->source : NULL, st->index + 1, line);
}

/* A deep copy of a migration, in the current memory context. */
static Migration *
migration_copy(Migration *src)
{
	Migration  *m = palloc(sizeof(Migration));
	ListCell   *lc;

#define COPY_STR(f) m->f = src->f ? pstrdup(src->f) : NULL
	*m = *src;
	COPY_STR(version);
	COPY_STR(key);
	COPY_STR(name);
	COPY_STR(up);
	COPY_STR(down);
	COPY_STR(verify);
	COPY_STR(expect);
	COPY_STR(batch);
	COPY_STR(checksum);
	COPY_STR(source);
	COPY_STR(registered_by);
	COPY_STR(applied_checksum);
	COPY_STR(assertion);
	COPY_STR(drift);
	COPY_STR(lines);
#undef COPY_STR
	m->updated_parts = m->result_detail = NULL;
	m->down_where = NULL;
	m->down_error = NULL;
	m->requires = m->requires_keys = m->notes = m->warnings = m->touched = NIL;
	foreach(lc, src->requires)
		m->requires = lappend(m->requires, pstrdup(lfirst(lc)));
	foreach(lc, src->requires_keys)
		m->requires_keys = lappend(m->requires_keys, pstrdup(lfirst(lc)));
	foreach(lc, src->notes)
		m->notes = lappend(m->notes, pstrdup(lfirst(lc)));
	return m;
}

/* The checks of a non-transactional migration, after its last statement. */
typedef struct FinalChecks
{
	Migration  *m;
	List	   *touched;
	ApplyRecord *rec;
} FinalChecks;

static void
final_checks_body(void *arg)
{
	FinalChecks *fc = arg;

	if (fc->m->verify)
		fc->rec->checks += verify_query_raise(fc->m);
	if (fc->m->assertion)
		fc->rec->checks += assert_query_raise(fc->m);
	fc->rec->checks += verify_constraints_raise(fc->touched, fc->m->version);
}

/* Run them in a subtransaction; the error, or NULL. */
static ErrorData *
non_transactional_checks(Migration *m, List *touched, ApplyRecord *rec)
{
	FinalChecks fc = {m, touched, rec};

	return run_in_subtransaction(final_checks_body, &fc, true);
}

/* The fields that tie a history row to a job's step, and the row's detail made of them alone. */
char *
job_step_json(Job *j, int step, int total)
{
	return psprintf("\"job\": " INT64_FORMAT ", \"step\": %d, \"of\": %d", j->id, step, total);
}

char *
job_step_detail(Job *j, int step, int total)
{
	return psprintf("{%s}", job_step_json(j, step, total));
}

typedef struct TxStep
{
	Migration  *m;
	int			step;
	int			total;
	char	   *detail;
} TxStep;

static void
tx_step_body(void *arg)
{
	TxStep	   *ts = arg;
	ApplyRecord rec = {0};

	rec.detail = ts->detail;
	apply_step_retrying(ts->m, ts->step, ts->total, false, false, &rec);
}

/* The indexes of rel that are invalid now (a failed concurrent build leaves one). */
static List *
invalid_indexes(Oid relid)
{
	Datum		arg = ObjectIdGetDatum(relid);
	List	   *result = NIL;

	if (!OidIsValid(relid))
		return NIL;
	catalog_exec("SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = $1 AND NOT indisvalid",
				 1, (Oid[]) {OIDOID}, &arg, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result = lappend_oid(result, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc, 1, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

/* The table a concurrent index build or rebuild works on, or InvalidOid. */
static Oid
concurrent_build_table(Node *parsetree)
{
	if (IsA(parsetree, IndexStmt) && ((IndexStmt *) parsetree)->concurrent)
		return RangeVarGetRelid(((IndexStmt *) parsetree)->relation, NoLock, true);
	if (IsA(parsetree, ReindexStmt) && ((ReindexStmt *) parsetree)->relation)
	{
		ReindexStmt *rs = (ReindexStmt *) parsetree;
		Oid			relid = RangeVarGetRelid(rs->relation, NoLock, true);

		if (OidIsValid(relid) && rs->kind == REINDEX_OBJECT_INDEX)
			return IndexGetRelation(relid, true);
		return rs->kind == REINDEX_OBJECT_TABLE ? relid : InvalidOid;
	}
	return InvalidOid;
}

/*
 * Drop, by OID, the invalid indexes of relid that were not invalid before
 * the statement started: what a failed concurrent build left behind.  Each
 * DROP INDEX CONCURRENTLY runs at top level.  Returns how many.
 */
static int
drop_leftover_indexes(Oid relid, Node *parsetree, List *before)
{
	List	   *now;
	List	   *names = NIL;
	ListCell   *lc;
	const char *own_name = NULL;

	/*
	 * Only what this statement may have left: CREATE INDEX CONCURRENTLY of a
	 * named index leaves that name; REINDEX CONCURRENTLY leaves _ccnew and
	 * _ccold ones.  Another session's build in progress is also invalid:
	 * it is never taken for ours by a name it does not have.
	 */
	if (IsA(parsetree, IndexStmt))
		own_name = ((IndexStmt *) parsetree)->idxname;

	worker_tx_begin();
	now = invalid_indexes(relid);
	foreach(lc, now)
	{
		Oid			idx = lfirst_oid(lc);
		char	   *rel = get_rel_name(idx);
		bool		ours;

		if (rel == NULL || list_member_oid(before, idx))
			continue;
		if (IsA(parsetree, ReindexStmt))
			ours = strstr(rel, "_ccnew") != NULL || strstr(rel, "_ccold") != NULL;
		else
			ours = own_name == NULL || strcmp(rel, own_name) == 0;
		if (ours)
		{
			MemoryContext old = MemoryContextSwitchTo(job_step_context);

			names = lappend(names, psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s",
											quote_qualified_identifier(get_namespace_name(get_rel_namespace(idx)), rel)));
			MemoryContextSwitchTo(old);
		}
	}
	worker_tx_commit();
	foreach(lc, names)
	{
		char	   *lock_timeout = MemoryContextStrdup(job_step_context, GetConfigOption("lock_timeout", false, false));
		ErrorData  *edata;

		/* never wait long: the old transactions a stuck build waited for may last */
		(void) set_config_option("lock_timeout", "5s", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
		edata = exec_toplevel(lfirst(lc));
		(void) set_config_option("lock_timeout", lock_timeout, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, 0, false);

		if (edata)
			ereport(WARNING,
					(errmsg("could not drop an invalid index a failed build left: %s", edata->message),
					 errhint("The next run of the migration drops it before building again.")));
	}
	return list_length(names);
}

static List *
oid_array_list(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			result = lappend_oid(result, DatumGetObjectId(elems[i]));
	return result;
}


/* Write a non-transactional migration's checkpoint. */
static void
progress_save(Migration *m, int done, List *invalid_before)
{
	Datum		values[4] = {CStringGetTextDatum(m->key), CStringGetTextDatum(m->checksum),
	Int32GetDatum(done), PointerGetDatum(oid_list_to_array(invalid_before))};

	catalog_exec("INSERT INTO migrate.statement_progress (version_key, checksum, done, invalid_before) "
				 "VALUES ($1, $2, $3, $4) ON CONFLICT (version_key) DO UPDATE "
				 "SET checksum = EXCLUDED.checksum, done = EXCLUDED.done, invalid_before = EXCLUDED.invalid_before",
				 4, (Oid[]) {TEXTOID, TEXTOID, INT4OID, OIDARRAYOID}, values, NULL);
}

/*
 * Run a non-transactional migration statement by statement, from its
 * checkpoint; then its checks and its catalog rows in one transaction.
 */
static StepResult
run_non_transactional(Job *j, Migration *m, int step, int total)
{
	MemoryContext old;
	Script	   *script;
	int			done = 0;
	bool		resumed = false;
	List	   *invalid_before = NIL;
	Datum		args[2];
	instr_time	start,
				elapsed;

	INSTR_TIME_SET_CURRENT(start);

	/* the script and where it stands */
	worker_tx_begin();
	old = MemoryContextSwitchTo(job_step_context);
	script = migration_script(m, "up");
	MemoryContextSwitchTo(old);
	args[0] = CStringGetTextDatum(m->key);
	args[1] = CStringGetTextDatum(m->checksum);
	catalog_exec("SELECT done, invalid_before FROM migrate.statement_progress WHERE version_key = $1 AND checksum = $2",
				 2, (Oid[]) {TEXTOID, TEXTOID}, args, NULL);
	if (SPI_processed > 0)
	{
		bool		isnull;

		resumed = true;
		done = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		old = MemoryContextSwitchTo(job_step_context);
		invalid_before = oid_array_list(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContextSwitchTo(old);
	}
	worker_tx_commit();

	for (int i = done; i < script->nstmts; i++)
	{
		ScriptStmt *st = script_stmt(script, i);
		Oid			build_table;
		ErrorData  *edata;
		Job		   *now;

		/*
		 * A crash in a concurrent build left an invalid index: drop it, then
		 * build again.  The checkpoint lists the invalid indexes there were
		 * before the statement started (often none: an empty list).
		 */
		worker_tx_begin();
		build_table = concurrent_build_table(st->parsetree);
		worker_tx_commit();
		if (OidIsValid(build_table) && i == done && resumed)
			(void) drop_leftover_indexes(build_table, st->parsetree, invalid_before);

		/* between statements: requests, and the checkpoint before the statement */
		worker_tx_begin();
		now = job_read(j->id, true);
		if (now && now->request && strcmp(now->request, "cancel") == 0)
		{
			job_update(j->id, "cancelled", "", NULL, -1, -1, -1, NULL);
			job_wake_waiters(j->id);
			worker_tx_commit();
			return STEP_FINISHED;
		}
		if (now && now->request && strcmp(now->request, "pause") == 0)
		{
			job_update(j->id, "paused", NULL, NULL, -1, -1, -1, NULL);
			job_wake_waiters(j->id);
			worker_tx_commit();
			worker_wait_while_paused(j->id);
			i--;
			continue;
		}
		old = MemoryContextSwitchTo(job_step_context);
		invalid_before = invalid_indexes(build_table);
		MemoryContextSwitchTo(old);
		progress_save(m, i, invalid_before);
		job_update(j->id, NULL, NULL, m->version, i + 1, -1, -1, NULL);
		job_wake_waiters(j->id);
		worker_tx_commit();

		if (stmt_absorbed(st->parsetree))
			edata = NULL;		/* BEGIN/COMMIT around a statement that cannot be in a transaction */
		else
		{
			/*
			 * A concurrent build waits for older transactions as long as they
			 * last: lock_timeout must not cut that wait short.
			 */
			char	   *lock_timeout = MemoryContextStrdup(job_step_context, GetConfigOption("lock_timeout", false, false));

			if (OidIsValid(build_table))
				(void) set_config_option("lock_timeout", "0", PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_SET, true, 0, false);
			edata = exec_toplevel(st->sql);
			if (OidIsValid(build_table))
				(void) set_config_option("lock_timeout", lock_timeout, PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_SET, true, 0, false);
		}
		if (edata)
		{
			/*
			 * What a failed concurrent build left is dropped before the job
			 * ends, so that a failed job leaves no invalid index; the drop
			 * waits for old transactions at most a few seconds (they may be
			 * what the build was waiting for), else the next run drops it
			 * before building again.
			 */
			if (OidIsValid(build_table))
				(void) drop_leftover_indexes(build_table, st->parsetree, invalid_before);
			worker_tx_begin();
			catalog_lock();		/* every history row is written under it: one chain order */
			record_failure(m, edata, job_step_json(j, step, total));
			job_fail_in_statement(j, edata, m, st);
			worker_tx_commit();
			return STEP_FINISHED;
		}
		/*
		 * The next statement has not started: its checkpoint lists the
		 * invalid indexes of the table it builds on as they are now, so that
		 * a rerun drops only what that statement may leave.
		 */
		worker_tx_begin();
		{
			Oid			next_table = InvalidOid;

			if (i + 1 < script->nstmts)
				next_table = concurrent_build_table(script_stmt(script, i + 1)->parsetree);
			progress_save(m, i + 1, invalid_indexes(next_table));
			job_progressed(j->id);
		}
		worker_tx_commit();
	}

	/* every statement ran: the checks (with the job's settings, not the migration's), then it is applied */
	worker_tx_begin();
	worker_reset_settings(j);
	catalog_lock();
	{
		ErrorData  *edata;
		List	   *touched = NIL;
		ApplyRecord rec = {0};
		Migration  *now = catalog_find(catalog_load(false), m->key);

		/*
		 * While its statements ran (without the catalog lock), another
		 * session may have baselined it, re-registered it or removed it.
		 */
		if (now == NULL || strcmp(now->checksum, m->checksum) != 0)
		{
			ErrorData	changed = {0};

			changed.sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			changed.message = psprintf("migration %s was %s while the job ran it", m->version,
									   now ? "registered again with other text" : "removed");
			changed.hint = "Start a new job: it runs the migration as it is registered now.";
			job_fail(j, &changed, m->version, 0, 0);
			worker_tx_commit();
			return STEP_FINISHED;
		}
		if (now->applied && !migration_is_pending(now))
		{
			/* applied by another session meanwhile (a baseline): nothing to record twice */
			catalog_exec("DELETE FROM migrate.statement_progress WHERE version_key = $1", 1, (Oid[]) {TEXTOID},
						 (Datum[]) {CStringGetTextDatum(m->key)}, NULL);
			job_update(j->id, NULL, NULL, NULL, 0, step, -1, NULL);
			worker_tx_commit();
			return STEP_DONE;
		}

		for (int i = 0; i < script->nstmts; i++)
		{
			ListCell   *lc;

			foreach(lc, stmt_written_relations(script_stmt(script, i)->parsetree))
			{
				Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

				if (OidIsValid(relid))
					touched = touched_add(touched, relid);
			}
		}
		edata = non_transactional_checks(m, touched, &rec);
		if (edata)
		{
			record_failure(m, edata, job_step_json(j, step, total));
			job_fail(j, edata, m->version, 0, 0);
			worker_tx_commit();
			return STEP_FINISHED;
		}
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		rec.duration_ms = INSTR_TIME_GET_MILLISEC(elapsed);
		rec.touched = touched_names(touched);
		rec.touched_oids = touched_existing(touched);
		rec.action = "apply";
		rec.detail = job_step_detail(j, step, total);
		catalog_record_applied(m, &rec);
		histories_record_apply(m, script, rec.duration_ms, NULL);	/* and the checkpoint is deleted */
		catalog_mark_changed();
		job_update(j->id, NULL, NULL, NULL, 0, step, -1, NULL);
		job_wake_waiters(j->id);
	}
	worker_tx_commit();
	return STEP_DONE;
}

/*
 * One step of a job.  First, under the catalog lock, plan afresh (another
 * session may have applied meanwhile) and show which migration is next, in a
 * transaction of its own, so that every session sees it while it runs.  Then
 * apply it: a transactional migration in one transaction that plans again
 * under the lock (if it is no longer next, the step just ends); the job's row
 * is locked only at the end of a transaction, so that migrate_cancel() and
 * migrate_pause() never wait for a step.
 */
static StepResult
run_step(Job *j, bool first)
{
	Job		   *now;
	Catalog    *cat;
	List	   *steps;
	PlanStep   *s;
	int			step;
	int			total;
	char	   *next_key;

	worker_tx_begin();
	worker_reset_settings(j);
	catalog_lock();
	now = job_read(j->id, false);
	if (now == NULL)
	{
		worker_tx_commit();
		return STEP_FINISHED;	/* removed by a restore, or by hand */
	}
	if (now->request && strcmp(now->request, "cancel") == 0)
	{
		job_update(j->id, "cancelled", "", NULL, 0, -1, -1, NULL);
		job_wake_waiters(j->id);
		worker_tx_commit();
		return STEP_FINISHED;
	}
	if (now->request && strcmp(now->request, "pause") == 0)
	{
		job_update(j->id, "paused", NULL, NULL, -1, -1, -1, NULL);
		job_wake_waiters(j->id);
		worker_tx_commit();
		worker_wait_while_paused(j->id);
		return STEP_DONE;
	}
	cat = catalog_load(true);
	refuse_while_changed(cat, "a migration job");
	steps = plan_pending(cat, j->target ? version_key(j->target) : NULL, j->out_of_order, true);
	/* the reviewed plan is checked when the job first runs (later, its steps are its own) */
	if (first && j->plan && now->steps_done == 0)
		(void) plan_check_reviewed(steps, j->plan);
	if (steps == NIL)
	{
		job_update(j->id, "succeeded", "", NULL, 0, -1, now->steps_done, NULL);
		job_wake_waiters(j->id);
		worker_tx_commit();
		return STEP_FINISHED;
	}
	s = linitial(steps);
	step = now->steps_done + 1;
	total = now->steps_done + list_length(steps);
	job_update(j->id, "running", NULL, s->m->version, 0, -1, total, NULL);
	job_wake_waiters(j->id);
	/* the figures of a batched migration before it are not this step's */
	catalog_exec("UPDATE migrate.job_state SET batches_done = NULL, rows_done = NULL, rows_total = NULL, "
				 "       rows_per_second = NULL, eta = NULL, note = NULL "
				 " WHERE id = $1 AND batches_done IS NOT NULL",
				 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(j->id)}, NULL);

	if (migration_needs_worker(s->m))
	{
		Migration  *m;
		MemoryContext old;

		old = MemoryContextSwitchTo(job_step_context);
		m = migration_copy(s->m);
		MemoryContextSwitchTo(old);
		worker_tx_commit();
		if (m->batch)
			return run_batched(j, m, step, total);
		return run_non_transactional(j, m, step, total);
	}
	next_key = MemoryContextStrdup(job_step_context, s->m->key);
	worker_tx_commit();

	worker_tx_begin();
	catalog_lock();
	cat = catalog_load(true);
	refuse_while_changed(cat, "a migration job");	/* drift recorded since the first look */
	steps = plan_pending(cat, j->target ? version_key(j->target) : NULL, j->out_of_order, true);
	s = steps ? linitial(steps) : NULL;
	if (s == NULL || strcmp(s->m->key, next_key) != 0 || migration_needs_worker(s->m))
	{
		worker_tx_commit();			/* the plan changed meanwhile: plan again */
		return STEP_DONE;
	}
	{
		TxStep		ts = {s->m, step, total, job_step_detail(j, step, total)};
		ErrorData  *edata = run_in_subtransaction(tx_step_body, &ts, true);

		if (edata)
		{
			record_failure(s->m, edata, job_step_json(j, step, total));
			job_fail(j, edata, s->m->version, 0, 0);
			worker_tx_commit();
			return STEP_FINISHED;
		}
	}
	catalog_mark_changed();
	job_update(j->id, NULL, NULL, NULL, 0, step, -1, NULL);
	job_wake_waiters(j->id);
	worker_tx_commit();
	return STEP_DONE;
}

/* Start running a job: its settings, its worker pid; false if there is nothing to run. */
static bool
job_begin(int64 id, Job **job)
{
	Job		   *j;

	worker_tx_begin();
	j = job_read(id, false);
	if (j == NULL || job_finished(j->state))
	{
		worker_tx_commit();
		return false;			/* the starting transaction rolled back, or it is over */
	}
	{
		MemoryContext old = MemoryContextSwitchTo(job_cxt);
		Job		   *copy = palloc(sizeof(Job));
		ListCell   *lc;

		*copy = *j;
		copy->role = pstrdup(j->role);
		copy->target = j->target ? pstrdup(j->target) : NULL;
		copy->plan = j->plan ? pstrdup(j->plan) : NULL;
		copy->settings = NIL;
		foreach(lc, j->settings)
			copy->settings = lappend(copy->settings, pstrdup(lfirst(lc)));
		copy->state = copy->request = copy->version = copy->error = NULL;
		j = copy;
		MemoryContextSwitchTo(old);
	}
	catalog_exec("UPDATE migrate.job_state SET worker_pid = pg_catalog.pg_backend_pid(), "
				 "       state = CASE WHEN state = 'queued' THEN 'running' ELSE state END, "
				 "       started_at = coalesce(started_at, pg_catalog.now()) WHERE id = $1",
				 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(id)}, NULL);
	job_wake_waiters(id);
	worker_tx_commit();
	*job = j;
	/* after the commit: a bad setting fails the job, it does not stop the worker */
	apply_settings(j);
	return true;
}

/*
 * The job, step by step, until it ends.  Every error is caught and ends the
 * job as failed (or cancelled): a worker that died on an error would be
 * started again and again.
 */
static void
run_job(int64 id)
{
	Job		   *volatile j = NULL;
	volatile bool first = true;

	for (;;)
	{
		volatile StepResult result = STEP_FINISHED;

		MemoryContextReset(job_step_context);
		PG_TRY();
		{
			CHECK_FOR_INTERRUPTS();
			if (j == NULL)
			{
				Job		   *started = NULL;

				if (job_begin(id, &started))
				{
					j = started;
					result = run_step(j, first);
				}
			}
			else
				result = run_step(j, first);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(job_cxt);
			edata = CopyErrorData();
			EmitErrorReport();	/* the server log has it too */
			FlushErrorState();
			worker_abort();	/* the lock is kept until the job's end is committed */
			if (j == NULL)
			{
				j = MemoryContextAllocZero(job_cxt, sizeof(Job));
				j->id = id;
			}
			worker_tx_begin();
			job_fail(j, edata, NULL, 0, 0);
			worker_tx_commit();
			result = STEP_FINISHED;
		}
		PG_END_TRY();
		first = false;
		if (result == STEP_FINISHED)
			break;
	}
}

/*
 * Entry point of a job's worker: connect as the job's role, hold the job's
 * lock for life (a second worker for the job leaves at once), wait for the
 * transaction that queued the job, then run it.
 */
void
migrate_job_main(Datum arg)
{
	int64		id = DatumGetInt64(arg);
	JobWorkerArgs args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.role, 0);
	pgstat_report_appname(psprintf("migrate job " INT64_FORMAT, id));
	job_cxt = AllocSetContextCreate(TopMemoryContext, "migrate job", ALLOCSET_DEFAULT_SIZES);
	job_step_context = AllocSetContextCreate(job_cxt, "migrate job step", ALLOCSET_DEFAULT_SIZES);

	/* the job's lock, for life (taken again after every abort: worker_abort()) */
	worker_job_id = id;
	job_lock_or_leave(id);

	/* wait for the transaction that queued the job; a cancel meanwhile is the job's business */
	PG_TRY();
	{
		StartTransactionCommand();
		if (TransactionIdIsValid(args.wait_xid))
			XactLockTableWait(args.wait_xid, NULL, NULL, XLTW_None);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		worker_abort();
	}
	PG_END_TRY();

	run_job(id);
	proc_exit(0);
}

/* ---- after a restart: resuming jobs ---- */

/*
 * A short-lived worker of one database: if migrate is installed there (and
 * up to date), resume its jobs that lost their worker.  Runs as the
 * bootstrap superuser, only this code; each job's worker runs as its role.
 */
void
migrate_recover_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("migrate recover");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		if (OidIsValid(get_extension_oid("migrate", true)))
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			SPI_connect();
			/* never wait long on a lock: ALTER EXTENSION, or a migration, may hold it */
			(void) set_config_option("lock_timeout", "5s", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
			catalog_lock();
			(void) jobs_recover();
			SPI_finish();
			PopActiveSnapshot();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	proc_exit(0);
}

/*
 * The launcher (shared_preload_libraries only): after each server start,
 * one short recover worker per database that accepts connections, one at a
 * time; then it idles, so that it is started again after a crash restart.
 * It connects to no database (it never blocks DROP DATABASE).
 */
void
migrate_launcher_main(Datum arg)
{
	List	   *databases = NIL;
	ListCell   *lc;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("migrate launcher");

	StartTransactionCommand();
	{
		Relation	rel = table_open(DatabaseRelationId, AccessShareLock);
		TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
		HeapTuple	tup;

		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

			if (db->datallowconn && !db->datistemplate)
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				databases = lappend_oid(databases, db->oid);
				MemoryContextSwitchTo(old);
			}
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	CommitTransactionCommand();

	foreach(lc, databases)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		pid_t		pid;

		bgworker_init(&worker, "migrate_recover_main", "migrate recover");
		snprintf(worker.bgw_name, BGW_MAXLEN, "migrate recover %u", lfirst_oid(lc));
		worker.bgw_main_arg = ObjectIdGetDatum(lfirst_oid(lc));
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		{
			ereport(WARNING,
					(errmsg("migrate launcher: no background worker slot is free to resume the jobs of database %u",
							lfirst_oid(lc)),
					 errhint("They are resumed by the next migrate_start(), migrate_wait() or migrate_jobs() there.")));
			continue;
		}
		if (WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED)
			(void) WaitForBackgroundWorkerShutdown(handle);
	}

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* A background worker of this library, connected to a database, never restarted. */
void
bgworker_init(BackgroundWorker *worker, const char *function, const char *type)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "migrate");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", type);
}

/* Register the launcher (from _PG_init, when preloaded). */
void
launcher_register(void)
{
	BackgroundWorker worker;

	bgworker_init(&worker, "migrate_launcher_main", "migrate launcher");
	worker.bgw_restart_time = 10;	/* started again after a crash restart */
	RegisterBackgroundWorker(&worker);
}
