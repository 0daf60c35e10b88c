/*
 * jobs.c
 *		Background jobs, seen from a session: migrate_start() queues a job and
 *		starts its worker (worker.c); migrate_jobs() and the view migrate.jobs
 *		show them; CALL migrate_wait() follows one to its end, holding no
 *		snapshot; migrate_pause(), migrate_resume(), migrate_cancel() steer it.
 *
 *		A job's worker holds a session lock on the job for as long as it
 *		lives (job_locktag()), a lock that SQL cannot take: a job that is not
 *		finished and whose lock is free has lost its worker (a crash, a kill),
 *		and jobs_recover() starts a new one, which resumes where the catalog
 *		says the job stands.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_start);
PG_FUNCTION_INFO_V1(migrate_jobs);
PG_FUNCTION_INFO_V1(migrate_wait);
PG_FUNCTION_INFO_V1(migrate_pause);
PG_FUNCTION_INFO_V1(migrate_resume);
PG_FUNCTION_INFO_V1(migrate_cancel);

/* Workers started for a job without progress, before it fails instead. */
#define JOB_MAX_ATTEMPTS 5

/* The settings a job takes from the session that starts it (besides migrate.*). */
static const char *const job_setting_names[] = {"search_path", "lock_timeout"};

/*
 * The lock a job's worker holds for as long as it lives: a session lock of
 * the default lock method on an "object" whose class is the table
 * migrate.job_state itself.  No DDL locks such an object, and SQL cannot take
 * or release it (pg_advisory_unlock_all() and DISCARD ALL release only
 * advisory locks).
 */
void
job_locktag(LOCKTAG *tag, Oid dboid, int64 job)
{
	Oid			jobs = get_relname_relid("job_state", get_namespace_oid("migrate", false));

	SET_LOCKTAG_OBJECT(*tag, dboid, jobs, (uint32) job, (uint16) ((uint64) job >> 32));
}

/* Whether the job's worker lives: it holds the job's lock (assumed, on a standby). */
bool
job_worker_alive(int64 job)
{
	LOCKTAG		tag;

	if (RecoveryInProgress())
		return true;
	job_locktag(&tag, MyDatabaseId, job);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, false);
	return false;
}

/* ---- reading and writing job rows (as the catalog's owner) ---- */


static Job *
job_from_tuple(HeapTuple tup, TupleDesc desc)
{
	Job		   *j = palloc0(sizeof(Job));
	bool		isnull;
	Datum		d;

	j->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	j->role = SPI_getvalue(tup, desc, 2);
	j->role_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	j->target = SPI_getvalue(tup, desc, 4);
	j->out_of_order = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	j->plan = SPI_getvalue(tup, desc, 6);
	d = SPI_getbinval(tup, desc, 7, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				j->settings = lappend(j->settings, TextDatumGetCString(elems[i]));
	}
	j->state = SPI_getvalue(tup, desc, 8);
	j->request = SPI_getvalue(tup, desc, 9);
	j->version = SPI_getvalue(tup, desc, 10);
	d = SPI_getbinval(tup, desc, 11, &isnull);
	j->statement = isnull ? 0 : DatumGetInt32(d);
	j->steps_done = DatumGetInt32(SPI_getbinval(tup, desc, 12, &isnull));
	d = SPI_getbinval(tup, desc, 13, &isnull);
	j->steps_total = isnull ? -1 : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, 14, &isnull);
	j->worker_pid = isnull ? 0 : DatumGetInt32(d);
	j->error = SPI_getvalue(tup, desc, 15);
	j->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 16, &isnull));
	d = SPI_getbinval(tup, desc, 17, &isnull);
	j->starting = !isnull && DatumGetBool(d);
	return j;
}

/* The job's row, or NULL; locked FOR UPDATE when asked. */
Job *
job_read(int64 id, bool for_update)
{
	Datum		arg = Int64GetDatum(id);
	Job		   *j = NULL;

	/* two statements, as catalog_exec() keys its plans by the string */
	if (for_update)
		catalog_exec("SELECT id, role, role_oid, target, out_of_order, plan, settings, state, request, version, "
					 "       statement, steps_done, steps_total, worker_pid, error::text, attempts, "
					 "       (worker_pid IS NULL AND launched_at >= pg_catalog.pg_postmaster_start_time() AND "
					 "        pg_catalog.clock_timestamp() - launched_at < interval '10 s') "
					 "  FROM migrate.job_state WHERE id = $1 FOR UPDATE",
					 1, (Oid[]) {INT8OID}, &arg, NULL);
	else
		catalog_exec("SELECT id, role, role_oid, target, out_of_order, plan, settings, state, request, version, "
					 "       statement, steps_done, steps_total, worker_pid, error::text, attempts, "
					 "       (worker_pid IS NULL AND launched_at >= pg_catalog.pg_postmaster_start_time() AND "
					 "        pg_catalog.clock_timestamp() - launched_at < interval '10 s') "
					 "  FROM migrate.job_state WHERE id = $1",
					 1, (Oid[]) {INT8OID}, &arg, NULL);
	if (SPI_processed > 0)
		j = job_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	SPI_freetuptable(SPI_tuptable);
	return j;
}

bool
job_finished(const char *state)
{
	return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
		strcmp(state, "cancelled") == 0;
}

/* Set where a job stands (NULL arguments leave a column as it is). */
void
job_update(int64 id, const char *state, const char *request_or_clear, const char *version,
		   int statement, int steps_done, int steps_total, const char *error_json)
{
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = state ? CStringGetTextDatum(state) : (Datum) 0;
	nulls[1] = state ? ' ' : 'n';
	/* "" clears the request */
	values[2] = request_or_clear ? CStringGetTextDatum(request_or_clear) : (Datum) 0;
	nulls[2] = request_or_clear ? ' ' : 'n';
	values[3] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[3] = version ? ' ' : 'n';
	values[4] = Int32GetDatum(statement);
	nulls[4] = statement >= 0 ? ' ' : 'n';
	values[5] = Int32GetDatum(steps_done);
	nulls[5] = steps_done >= 0 ? ' ' : 'n';
	values[6] = Int32GetDatum(steps_total);
	nulls[6] = steps_total >= 0 ? ' ' : 'n';
	values[7] = error_json ? CStringGetTextDatum(error_json) : (Datum) 0;
	nulls[7] = error_json ? ' ' : 'n';
	catalog_exec("UPDATE migrate.job_state SET "
				 "  state = coalesce($2, state), "
				 "  request = CASE WHEN $3 IS NULL THEN request WHEN $3 = '' THEN NULL ELSE $3 END, "
				 "  version = coalesce($4, version), "
				 "  statement = CASE WHEN $5 IS NULL THEN statement WHEN $5 = 0 THEN NULL ELSE $5 END, "
				 "  steps_done = coalesce($6, steps_done), steps_total = coalesce($7, steps_total), "
				 "  attempts = CASE WHEN $6 IS NULL THEN attempts ELSE 0 END, "
				 "  error = coalesce($8::jsonb, error), "
				 "  started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, pg_catalog.now()) "
				 "                    ELSE started_at END, "
				 "  finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') "
				 "                     THEN pg_catalog.clock_timestamp() ELSE finished_at END "
				 "WHERE id = $1",
				 8, (Oid[]) {INT8OID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT4OID, INT4OID, TEXTOID},
				 values, nulls);
}

/* The job made progress (a statement completed): its worker may die again without failing it. */
void
job_progressed(int64 id)
{
	catalog_exec("UPDATE migrate.job_state SET attempts = 0 WHERE id = $1 AND attempts <> 0",
				 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(id)}, NULL);
}

/* An error as the JSON a job keeps: sqlstate, message, detail, hint, and where. */
char *
job_error_json(ErrorData *edata, const char *version, const char *file, int statement, int line)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"sqlstate\": %s, \"message\": %s",
					 quote_json(unpack_sql_state(edata->sqlerrcode)),
					 quote_json(edata->message ? edata->message : ""));
	if (edata->detail)
		appendStringInfo(&buf, ", \"detail\": %s", quote_json(edata->detail));
	if (edata->hint)
		appendStringInfo(&buf, ", \"hint\": %s", quote_json(edata->hint));
	if (version)
		appendStringInfo(&buf, ", \"version\": %s", quote_json(version));
	if (statement > 0)
		appendStringInfo(&buf, ", \"statement\": %d, \"line\": %d", statement, line);
	if (file)
		appendStringInfo(&buf, ", \"file\": %s", quote_json(file));
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * The sessions waiting for a job are woken when the transaction that changed
 * the job commits (a waiter woken before would read the job as it was and
 * sleep again); a rollback wakes no one.
 */
static List *wake_at_commit = NIL;

static void
wake_waiters_at_commit(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (wake_at_commit == NIL)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		foreach(lc, wake_at_commit)
		{
			PGPROC	   *proc = BackendPidGetProc(lfirst_int(lc));

			if (proc)
				SetLatch(&proc->procLatch);
		}
	}
	else if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	list_free(wake_at_commit);
	wake_at_commit = NIL;
}

/* Set the latches of the sessions waiting for a job, when this transaction commits (a stale pid only wakes someone). */
void
job_wake_waiters(int64 id)
{
	static bool registered = false;
	Datum		arg = Int64GetDatum(id);
	bool		isnull;
	Datum		d;

	if (!registered)
	{
		RegisterXactCallback(wake_waiters_at_commit, NULL);
		registered = true;
	}
	catalog_exec("SELECT waiters FROM migrate.job_state WHERE id = $1", 1, (Oid[]) {INT8OID}, &arg, NULL);
	if (SPI_processed == 0)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		MemoryContext old;

		deconstruct_array(DatumGetArrayTypeP(d), INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &elems, &nulls, &n);
		old = MemoryContextSwitchTo(TopMemoryContext);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				wake_at_commit = list_append_unique_int(wake_at_commit, DatumGetInt32(elems[i]));
		MemoryContextSwitchTo(old);
	}
	SPI_freetuptable(SPI_tuptable);
}

/* ---- starting workers ---- */

/*
 * Start a worker for a job, in this database, as the job's role.  With
 * wait_xid, the worker first waits for that transaction (the one that queued
 * the job) to end.  Returns false when no worker slot is free.
 */
bool
job_launch(int64 id, Oid role, TransactionId wait_xid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	JobWorkerArgs args;

	bgworker_init(&worker, "migrate_job_main", "migrate job");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migrate job " INT64_FORMAT, id);
	worker.bgw_main_arg = Int64GetDatum(id);
	args.dboid = MyDatabaseId;
	args.role = role;
	args.wait_xid = wait_xid;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return false;
	/* one more worker for the job: counted, and timed for job_worker_lost() */
	catalog_exec("UPDATE migrate.job_state SET attempts = attempts + 1, launched_at = pg_catalog.clock_timestamp(), "
				 "       worker_pid = NULL WHERE id = $1", 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(id)}, NULL);
	return true;
}

static void
no_free_slot(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("no background worker slot is free for migration job " INT64_FORMAT, id),
			 errdetail("max_worker_processes is %d, shared with parallel query, logical replication and other extensions.",
					   max_worker_processes),
			 errhint("Wait for other background workers to end, or raise max_worker_processes (it needs a restart).")));
}

/*
 * Whether a role may run a job: it exists, can log in and may connect to
 * this database (its worker connects as it, and dies at once otherwise: it
 * would be started again and again); if not, why.
 */
static const char *
role_cannot_run(Oid role)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	const char *why = NULL;
	const char *name;

	if (!HeapTupleIsValid(tup))
		return "its role no longer exists";
	name = quote_identifier(pstrdup(NameStr(((Form_pg_authid) GETSTRUCT(tup))->rolname)));
	if (!((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin)
		why = psprintf("its role %s cannot log in (NOLOGIN)", name);
	else if (pg_database_aclcheck(MyDatabaseId, role, ACL_CONNECT) != ACLCHECK_OK)
		why = psprintf("its role %s has no CONNECT privilege on database %s", name,
					   quote_identifier(get_database_name(MyDatabaseId)));
	ReleaseSysCache(tup);
	return why;
}

/*
 * Whether a job that is not finished has lost its worker: its lock is free.
 * But a worker just started (by migrate_start(), migrate_resume() or a
 * recovery) takes the lock only once it runs, a moment later, and then
 * writes its pid: a job whose new worker has not written its pid, started
 * less than 10 seconds ago and since the server last started, is left alone
 * this time (nobody waits for it with the catalog lock held).  A job written
 * by the current transaction has not lost it either: its worker waits for
 * this transaction to end.
 */
static bool
job_worker_lost(Job *j, TransactionId xmin)
{
	if (job_worker_alive(j->id))
		return false;
	if (TransactionIdIsValid(xmin) && TransactionIdIsCurrentTransactionId(xmin))
		return false;
	return !j->starting;
}

/*
 * Why a new worker must not be started for a job, or NULL: its role cannot
 * run one; the row names a role that this OID is not (a row restored from
 * another cluster); or its workers died again and again without progress.
 */
static const char *
job_cannot_resume(Job *j, int *sqlstate)
{
	const char *why = role_cannot_run(j->role_oid);

	*sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	if (why == NULL && get_role_oid(j->role, true) != j->role_oid)
		why = psprintf("its role %s is not the role with OID %u that started it",
					   quote_identifier(j->role), j->role_oid);
	if (why == NULL && j->attempts >= JOB_MAX_ATTEMPTS)
	{
		*sqlstate = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		why = psprintf("its worker was started %d times and died each time before making progress%s%s",
					   j->attempts, j->version ? ", last at migration " : "", j->version ? j->version : "");
	}
	return why;
}

/*
 * Resume the jobs whose worker died: not finished, their lock free.  A job
 * whose role can no longer run one fails with the reason instead (no retry
 * loop on a dead role).  Needs the catalog lock (jobs_recover_if_needed()
 * takes it only when there is something to do).  Returns how many were
 * started again.
 */
int
jobs_recover(void)
{
	List	   *dead = NIL;
	int			started = 0;
	ListCell   *lc;
	List	   *jobs = NIL;
	TransactionId *xmins;
	int			n = 0;

	catalog_exec("SELECT id, role, role_oid, target, out_of_order, plan, settings, state, request, version, "
				 "       statement, steps_done, steps_total, worker_pid, error::text, attempts, "
				 "       (worker_pid IS NULL AND launched_at >= pg_catalog.pg_postmaster_start_time() AND "
				 "        pg_catalog.clock_timestamp() - launched_at < interval '10 s'), xmin::text "
				 "  FROM migrate.job_state WHERE state IN ('queued', 'running', 'paused') ORDER BY id",
				 0, NULL, NULL, NULL);
	xmins = palloc(sizeof(TransactionId) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *xmin = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 18);

		jobs = lappend(jobs, job_from_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc));
		xmins[i] = xmin ? (TransactionId) strtoul(xmin, NULL, 10) : InvalidTransactionId;
	}
	SPI_freetuptable(SPI_tuptable);
	foreach(lc, jobs)
	{
		if (job_worker_lost(lfirst(lc), xmins[n++]))
			dead = lappend(dead, lfirst(lc));
	}

	foreach(lc, dead)
	{
		Job		   *j = lfirst(lc);
		int			sqlstate;
		const char *why = job_cannot_resume(j, &sqlstate);

		if (why)
		{
			job_update(j->id, "failed", "", NULL, -1, -1, -1,
					   psprintf("{\"sqlstate\": \"28000\", \"message\": %s}",
								quote_json(psprintf("migration job " INT64_FORMAT " cannot be resumed: %s", j->id, why))));
			job_wake_waiters(j->id);
			continue;
		}
		if (j->request && strcmp(j->request, "cancel") == 0)
		{
			job_update(j->id, "cancelled", "", NULL, -1, -1, -1, NULL);
			job_wake_waiters(j->id);
			continue;
		}
		/*
		 * The new worker waits for this transaction: job_launch() writes the
		 * row after the worker is registered, and must not overwrite the
		 * pid the worker writes when it begins.
		 */
		if (!job_launch(j->id, j->role_oid, GetTopTransactionId()))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("migration job " INT64_FORMAT " lost its worker and cannot be resumed now: no background worker slot is free",
							j->id),
					 errhint("It is resumed by the next migrate_start(), migrate_wait() or migrate_jobs().")));
			continue;
		}
		ereport(NOTICE,
				(errmsg("migration job " INT64_FORMAT " lost its worker; a new worker resumes it", j->id)));
		started++;
	}
	return started;
}

/* Lock the catalog, without waiting; false if another session holds it. */
static void
lock_catalog_nowait_body(void *arg)
{
	catalog_exec("LOCK TABLE migrate.catalog_lock IN SHARE ROW EXCLUSIVE MODE NOWAIT", 0, NULL, NULL, NULL);
}

/*
 * Resume dead jobs if there are any, taking the catalog lock only then and
 * only if it is free (a reader must not wait behind a migration, and the
 * session holding the lock will do it, or the next caller).
 */
void
jobs_recover_if_needed(void)
{
	bool		any_dead = false;

	catalog_exec("SELECT id FROM migrate.job_state WHERE state IN ('queued', 'running', 'paused')",
				 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < SPI_processed && !any_dead; i++)
	{
		bool		isnull;

		any_dead = !job_worker_alive(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
																  SPI_tuptable->tupdesc, 1, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	if (!any_dead || RecoveryInProgress())
		return;
	if (run_in_subtransaction(lock_catalog_nowait_body, NULL, true) != NULL)
		return;
	(void) jobs_recover();
}

/* ---- migrate_start ---- */

/* name=value of every setting a job takes from the starting session. */
static ArrayType *
captured_settings(void)
{
	List	   *settings = NIL;
	struct config_generic **vars;
	int			n;

	for (int i = 0; i < lengthof(job_setting_names); i++)
		settings = lappend(settings, psprintf("%s=%s", job_setting_names[i],
											  GetConfigOption(job_setting_names[i], false, false)));
	vars = get_guc_variables();
	n = GetNumConfigOptions();
	for (int i = 0; i < n; i++)
	{
		const char *name = vars[i]->name;

		if (strncmp(name, "migrate.", 8) == 0 && !(vars[i]->flags & GUC_CUSTOM_PLACEHOLDER))
			settings = lappend(settings, psprintf("%s=%s", name, GetConfigOption(name, false, false)));
	}
	return string_list_to_array(settings);
}

/*
 * migrate_start(target, out_of_order, plan) -> job id: queue a job that
 * applies every pending migration up to target, and start its worker.
 */
Datum
migrate_start(PG_FUNCTION_ARGS)
{
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		out_of_order = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	char	   *plan = plan_checksum_arg(fcinfo, 2);
	char	   *target_key = target ? version_key(target) : NULL;
	Oid			role = GetUserId();
	const char *why;
	Catalog    *cat;
	List	   *steps;
	int64		id;
	bool		isnull;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot start a migration job on a standby"),
				 errdetail("A standby is read-only; migrations are applied on the primary and replicated."),
				 errhint("Connect to the primary and call migrate_start() there.")));
	if ((why = role_cannot_run(role)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role %s cannot start a migration job", GetUserNameFromId(role, false)),
				 errdetail("A job's worker connects as the role that starts it, and %s.", why + strlen("its ")),
				 errhint("Start the job as a role that can log in and connect to this database (connect as it, or SET ROLE to it).")));

	SPI_connect();
	catalog_lock();
	(void) jobs_recover();

	/* one job at a time in a database: a second start returns the first */
	catalog_exec("SELECT id, state FROM migrate.job_state WHERE state IN ('queued', 'running', 'paused') "
				 " ORDER BY id LIMIT 1", 0, NULL, NULL, NULL);
	if (SPI_processed > 0)
	{
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		ereport(NOTICE,
				(errmsg("migration job " INT64_FORMAT " is already %s; returning its id", id,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
				 errhint("CALL migrate_wait(" INT64_FORMAT ") follows it; SELECT * FROM migrate.jobs shows it.", id)));
		SPI_finish();
		PG_RETURN_INT64(id);
	}

	/*
	 * Refuse now what the job would refuse: out of order, a changed plan, a
	 * lint error (the up scripts of pending migrations loaded in the one
	 * catalog query, not one query each).
	 */
	cat = catalog_load(true);
	refuse_while_changed(cat, "migrate_start()");
	steps = plan_pending(cat, target_key, out_of_order, true);
	if (plan)
		(void) plan_check_reviewed(steps, plan);
	lint_refuse(steps, "migrate_start()");

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(role, false)));
	values[1] = ObjectIdGetDatum(role);
	values[2] = target ? CStringGetTextDatum(target) : (Datum) 0;
	nulls[2] = target ? ' ' : 'n';
	values[3] = BoolGetDatum(out_of_order);
	values[4] = plan ? CStringGetTextDatum(plan) : (Datum) 0;
	nulls[4] = plan ? ' ' : 'n';
	values[5] = PointerGetDatum(captured_settings());
	catalog_exec("INSERT INTO migrate.job_state (role, role_oid, target, out_of_order, plan, settings, steps_total) "
				 "VALUES ($1, $2, $3, $4, $5, $6, NULL) RETURNING id",
				 6, (Oid[]) {NAMEOID, OIDOID, TEXTOID, BOOLOID, TEXTOID, TEXTARRAYOID}, values, nulls);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	job_update(id, NULL, NULL, NULL, -1, -1, list_length(steps), NULL);

	/* the worker waits for this transaction to commit before it reads the job */
	if (!job_launch(id, role, GetTopTransactionId()))
		no_free_slot(id);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* ---- migrate_jobs ---- */

Datum
migrate_jobs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	jobs_recover_if_needed();
	catalog_exec("SELECT id, role, target, state, request, version, statement, steps_done, steps_total, "
				 "       worker_pid, queued_at, started_at, finished_at, error_sqlstate, error_message, error_detail, "
				 "       batches_done, rows_done, rows_total, rows_per_second, eta, note "
				 "  FROM migrate.jobs ORDER BY id", 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[22];
		bool		nulls[22];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ---- controlling a job ---- */

static void cancel_when_committed(pid_t pid, Oid role);

/* The job, if the current user may control it; ereports otherwise. */
static Job *
job_for_control(int64 id, const char *what)
{
	/* a standby can only be looked at (migrate_wait() follows a job replayed from the primary) */
	Job		   *j = job_read(id, !RecoveryInProgress());

	if (j == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration job " INT64_FORMAT " does not exist", id),
				 errhint("SELECT * FROM migrate.jobs lists the jobs.")));
	if (!has_privs_of_role(GetUserId(), j->role_oid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s migration job " INT64_FORMAT, what, id),
				 errdetail("Job " INT64_FORMAT " runs as role %s.", id, quote_identifier(j->role)),
				 errhint("Only %s, its members and superusers may %s it.", quote_identifier(j->role), what)));
	return j;
}

static void
refuse_finished(Job *j, const char *what)
{
	if (job_finished(j->state))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s migration job " INT64_FORMAT ": it has %s", what, j->id,
						strcmp(j->state, "succeeded") == 0 ? "succeeded" :
						strcmp(j->state, "failed") == 0 ? "failed" : "been cancelled"),
				 errhint("migrate_start() starts a new job.")));
}

/* Wake the job's worker, if it lives, so that it sees a request now. */
static void
job_wake_worker(Job *j)
{
	PGPROC	   *proc;

	if (j->worker_pid <= 0 || !job_worker_alive(j->id))
		return;
	proc = BackendPidGetProc(j->worker_pid);
	if (proc && proc->roleId == j->role_oid && proc->databaseId == MyDatabaseId)
		SetLatch(&proc->procLatch);
}

Datum
migrate_pause(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Job		   *j;
	const char *result;

	SPI_connect();
	j = job_for_control(id, "pause");
	refuse_finished(j, "pause");
	if (strcmp(j->state, "paused") == 0)
		result = "paused";
	else
	{
		job_update(id, NULL, "pause", NULL, -1, -1, -1, NULL);
		job_wake_worker(j);
		result = "pausing";
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

Datum
migrate_resume(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Job		   *j;
	const char *result = "running";

	SPI_connect();
	j = job_for_control(id, "resume");
	refuse_finished(j, "resume");
	if (j->request && strcmp(j->request, "cancel") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot resume migration job " INT64_FORMAT ": it is being cancelled", id)));
	job_update(id, NULL, "", NULL, -1, -1, -1, NULL);
	if (j->worker_pid > 0 && job_worker_alive(id))
		job_wake_worker(j);
	else
	{
		/* the worker is gone (a restart): a paused job needs a new one, if it may have one */
		int			sqlstate;
		const char *why = job_cannot_resume(j, &sqlstate);

		if (why)
			ereport(ERROR,
					(errcode(sqlstate),
					 errmsg("cannot resume migration job " INT64_FORMAT ": %s", id, why),
					 errhint("migrate_start() starts a new job as you.")));
		if (!job_launch(id, j->role_oid, GetTopTransactionId()))
			no_free_slot(id);
		result = "resuming";
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

Datum
migrate_cancel(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Job		   *j;
	const char *result;

	SPI_connect();
	j = job_for_control(id, "cancel");
	refuse_finished(j, "cancel");
	if (j->worker_pid > 0 && job_worker_alive(id))
	{
		job_update(id, NULL, "cancel", NULL, -1, -1, -1, NULL);
		/* its running statement is cancelled when this request commits */
		cancel_when_committed(j->worker_pid, j->role_oid);
		result = "cancelling";
	}
	else
	{
		job_update(id, "cancelled", "", NULL, -1, -1, -1, NULL);
		job_wake_waiters(id);
		result = "cancelled";
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/*
 * A cancel interrupts the worker's running statement only once the request
 * is committed (the worker then sees it, and ends the job cancelled); and
 * only if the pid still belongs to a process of the job's role and database.
 */
static pid_t cancel_pid = 0;
static Oid	cancel_role = InvalidOid;

static void
cancel_at_commit(XactEvent event, void *arg)
{
	if (cancel_pid == 0)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		PGPROC	   *proc = BackendPidGetProc(cancel_pid);

		if (proc && proc->roleId == cancel_role && proc->databaseId == MyDatabaseId)
		{
			SetLatch(&proc->procLatch);
			(void) kill(cancel_pid, SIGINT);
		}
		cancel_pid = 0;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		cancel_pid = 0;
}

static void
cancel_when_committed(pid_t pid, Oid role)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(cancel_at_commit, NULL);
		registered = true;
	}
	cancel_pid = pid;
	cancel_role = role;
}

/* ---- CALL migrate_wait ---- */

/* NOTICE each step the job recorded in history since last_id; returns the newest id. */
/*
 * NOTICE each step the job recorded in history since last_id (the history
 * rows after it are read once, whichever job wrote them); returns the
 * newest history id read.
 */
static int64
notice_new_steps(int64 job, int64 last_id)
{
	Datum		args[2] = {Int64GetDatum(job), Int64GetDatum(last_id)};

	catalog_exec("SELECT id, version, name, outcome, detail ->> 'step', detail ->> 'of', "
				 "       round(extract(epoch FROM duration) * 1000), "
				 "       action = 'apply' AND detail -> 'job' = to_jsonb($1) "
				 "  FROM migrate.history WHERE id > $2 ORDER BY id",
				 2, (Oid[]) {INT8OID, INT8OID}, args, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		mine;
		char	   *step;
		char	   *of;
		char	   *ms;

		last_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		mine = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		if (isnull || !mine)
			continue;
		step = SPI_getvalue(tup, desc, 5);
		of = SPI_getvalue(tup, desc, 6);
		ms = SPI_getvalue(tup, desc, 7);
		ereport(NOTICE,
				(errmsg_internal("[%s/%s] %s %s ... %s %s ms", step ? step : "?", of ? of : "?",
								 SPI_getvalue(tup, desc, 2), SPI_getvalue(tup, desc, 3),
								 strcmp(SPI_getvalue(tup, desc, 4), "ok") == 0 ? "ok" : "FAILED",
								 ms ? ms : "0")));
	}
	SPI_freetuptable(SPI_tuptable);
	if (whereToSendOutput == DestRemote)
		pq_flush();
	return last_id;
}

/*
 * NOTICE where a batched migration of the job stands, if it moved since the
 * last one: batches, rows of the estimated total, rate, ETA, and why it slows
 * down or waits.  Returns what was shown, to compare with next time.
 */
static char *
notice_batch_progress(int64 job, const char *last)
{
	Datum		arg = Int64GetDatum(job);
	char	   *shown = NULL;

	catalog_exec("SELECT pg_catalog.format('migration %s: batch %s, %s rows%s%s%s%s', version, batches_done, rows_done, "
				 "       ' of about ' || rows_total, ', ' || rows_per_second || ' rows/s', ', ETA ' || eta, "
				 "       '; ' || note) "
				 "  FROM migrate.job_state WHERE id = $1 AND state = 'running' AND batches_done IS NOT NULL",
				 1, (Oid[]) {INT8OID}, &arg, NULL);
	if (SPI_processed > 0)
		shown = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (shown && (last == NULL || strcmp(shown, last) != 0))
	{
		ereport(NOTICE, (errmsg_internal("%s", shown)));
		if (whereToSendOutput == DestRemote)
			pq_flush();
	}
	return shown;
}

static void
waiter_register(int64 job, bool add)
{
	Datum		args[2] = {Int64GetDatum(job), Int32GetDatum(MyProcPid)};

	if (RecoveryInProgress())
		return;					/* a standby's waiter polls: no worker runs there to wake it */

	if (add)
		catalog_exec("UPDATE migrate.job_state SET waiters = array_append(array_remove(waiters, $2), $2) "
					 " WHERE id = $1", 2, (Oid[]) {INT8OID, INT4OID}, args, NULL);
	else
		catalog_exec("UPDATE migrate.job_state SET waiters = array_remove(waiters, $2) WHERE id = $1",
					 2, (Oid[]) {INT8OID, INT4OID}, args, NULL);
}

/* Raise a failed job's own error, with its SQLSTATE. */
static void
raise_job_error(Job *j)
{
	Jsonb	   *e = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(j->error ? j->error : "{}")));
	const char *sqlstate = jsonb_field_text(e, "sqlstate");
	const char *message = jsonb_field_text(e, "message");
	const char *detail = jsonb_field_text(e, "detail");
	const char *hint = jsonb_field_text(e, "hint");
	const char *statement = jsonb_field_text(e, "statement");
	const char *line = jsonb_field_text(e, "line");
	const char *file = jsonb_field_text(e, "file");

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		sqlstate = "XX000";
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
			 errmsg("%s", message ? message : "migration job failed"),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 errcontext("migration job " INT64_FORMAT "%s%s%s%s%s%s%s", j->id,
						j->version ? ", migration " : "", j->version ? j->version : "",
						statement ? ", statement " : "", statement ? statement : "",
						line ? ", line " : "", line ? line : "",
						file ? psprintf(" of file \"%s\"", file) : "")));
}

/*
 * CALL migrate_wait(job, timeout): follow a job to its end, a NOTICE per
 * step, holding no snapshot while it waits (a concurrent index build of the
 * job waits for every older snapshot).  Returns the job's state; raises the
 * job's error when it failed.
 */
Datum
migrate_wait(PG_FUNCTION_ARGS)
{
	int64		id;
	Interval   *timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);
	TimestampTz deadline = 0;
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	int64		last_id;
	Job		   *j;
	MemoryContext caller_cxt = CurrentMemoryContext;
	char	   *batch_shown = NULL;
	TimestampTz batch_shown_at = 0;
	char	   *state;
	int			steps_done;
	int			steps_total;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the job to wait for must not be null")));
	id = PG_GETARG_INT64(0);
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("migrate_wait() cannot wait inside a transaction block"),
				 errdetail("A transaction block holds a snapshot, and a concurrent index build of the job waits for every older snapshot: each would wait for the other."),
				 errhint("CALL migrate_wait(" INT64_FORMAT ") on its own, or poll SELECT * FROM migrate.jobs WHERE id = " INT64_FORMAT ".",
						 id, id)));
	if (timeout)
		deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														   TimestampTzGetDatum(GetCurrentTimestamp()),
														   IntervalPGetDatum(timeout)));

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	j = job_for_control(id, "wait for");
	/* every step of the job is shown, those done before this call too */
	last_id = 0;
	waiter_register(id, true);
	SPI_commit();

	for (;;)
	{
		long		wait_ms = 1000;

		jobs_recover_if_needed();
		j = job_read(id, false);
		last_id = notice_new_steps(id, last_id);
		if (j == NULL || job_finished(j->state))
			break;
		/* a batched migration: where it stands, every few seconds */
		if (TimestampDifferenceExceeds(batch_shown_at, GetCurrentTimestamp(), 5000))
		{
			char	   *shown = notice_batch_progress(id, batch_shown);

			batch_shown = shown ? MemoryContextStrdup(caller_cxt, shown) : NULL;
			batch_shown_at = GetCurrentTimestamp();
		}
		if (timeout)
		{
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
			if (secs == 0 && usecs == 0)
				break;
			wait_ms = Min(wait_ms, secs * 1000 + usecs / 1000 + 1);
		}
		/* no snapshot, no lock while waiting */
		SPI_commit();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	waiter_register(id, false);
	SPI_commit();
	if (j && strcmp(j->state, "failed") == 0)
		raise_job_error(j);
	if (j && !job_finished(j->state))
		ereport(NOTICE,
				(errmsg("migration job " INT64_FORMAT " is still %s after the timeout", id, j->state)));

	/* what the row shows, out of the job read in SPI's memory, which SPI_finish() frees */
	state = MemoryContextStrdup(caller_cxt, j ? j->state : "gone");
	steps_done = j ? j->steps_done : 0;
	steps_total = j ? j->steps_total : -1;
	SPI_finish();

	/* the result row, in the caller's memory */
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "migrate_wait: the procedure has no result row");
	desc = BlessTupleDesc(desc);
	values[0] = CStringGetTextDatum(state);
	values[1] = Int32GetDatum(steps_done);
	values[2] = Int32GetDatum(steps_total >= 0 ? steps_total : 0);
	nulls[2] = steps_total < 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
