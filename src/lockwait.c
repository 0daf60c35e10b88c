/*-------------------------------------------------------------------------
 *
 * lockwait.c
 *	  Lock waits that cannot stall production: every statement of a
 *	  migration waits at most migrate.lock_timeout for a lock; a migration
 *	  that times out is rolled back to its start and retried.
 *
 * An ALTER TABLE that queues behind one long transaction makes every later
 * query of that table queue behind it.  So a migration's statements run with
 * lock_timeout = migrate.lock_timeout (unless the caller's own lock_timeout
 * is shorter, or the script sets one itself), and when a statement cannot
 * get its lock in time (55P03) the migration's subtransaction is rolled
 * back, which lets the queue behind it go, and the migration runs again
 * after a backoff with jitter, at most migrate.lock_retries times.  A NOTICE
 * names the sessions holding locks on its tables at each retry; the last
 * error names them too.
 *
 * migrate_apply() runs every migration of the call in one transaction: a
 * retry releases what the failing migration locked, not what the migrations
 * before it in the same call hold until the call commits.  CALL
 * migrate_run() and jobs commit after each migration, so there a retry
 * waits behind nothing of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "migrate.h"

int			migrate_lock_timeout = 5000;	/* ms; 0: the session's own */
int			migrate_lock_retries = 3;

/* The lock_timeout a migration's statements get, in ms (0: none). */
static int
effective_lock_timeout(void)
{
	if (migrate_lock_timeout > 0 && (LockTimeout <= 0 || LockTimeout > migrate_lock_timeout))
		return migrate_lock_timeout;
	return LockTimeout;
}

/*
 * The value of a "-- migrate:lock_timeout 30s" line of a script (the first),
 * or NULL.  *line gets its line.
 */
char *
lock_timeout_directive(const char *script, int *line)
{
	List	   *found = script_directives(script, "lock_timeout");
	ScriptDirective *d;

	if (found == NIL)
		return NULL;
	d = linitial(found);
	if (line)
		*line = d->line;
	return d->arg;
}

/*
 * A lock_timeout directive's value in ms; ereports (22023) on a value that
 * is not a time.  `what` names the script.
 */
int
lock_timeout_directive_ms(const char *value, int line, const char *what)
{
	int			ms;
	const char *hint = NULL;

	if (!parse_int(value, &ms, GUC_UNIT_MS, &hint) || ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s sets an invalid lock timeout \"%s\"", what, value),
				 errdetail("Line %d: -- migrate:lock_timeout takes a time, such as 30s or 500ms (0: wait as long as it takes).",
						   line),
				 hint ? errhint("%s", hint) : 0));
	return ms;
}

/*
 * Give the migration's statements lock_timeout = migrate.lock_timeout, in
 * the GUC nest level the caller opened for the migration (its end puts the
 * caller's back).  A shorter lock_timeout of the caller's stays.  A
 * "-- migrate:lock_timeout" line of the script sets the migration's own,
 * longer or shorter (0: no limit).
 */
void
lockwait_set_timeout(const char *script)
{
	int			line;
	char	   *own = lock_timeout_directive(script, &line);
	int			ms;

	if (own)
		ms = lock_timeout_directive_ms(own, line, "the up script");
	else if ((ms = effective_lock_timeout()) == LockTimeout)
		return;
	(void) set_config_option("lock_timeout", psprintf("%d", ms), PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
}

/*
 * A script's SET search_path (or RESET), followed where its table names are
 * resolved ahead of running it, in a GUC nest level the caller closes: the
 * names resolve as they will when the script runs.  Whether it was one.
 */
static bool
follow_search_path(Node *stmt)
{
	VariableSetStmt *set = (VariableSetStmt *) stmt;

	if (!IsA(stmt, VariableSetStmt) || set->name == NULL || strcmp(set->name, "search_path") != 0)
		return false;
	(void) set_config_option("search_path", set->kind == VAR_SET_VALUE ? ExtractSetVariableArgs(set) : NULL,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
	return true;
}

/*
 * The tables a script's statements name, as they resolve now, each under
 * the search_path the script had set by then.
 */
static List *
script_tables(const char *up)
{
	List	   *relids = NIL;
	Script	   *script;
	int			guc_level;

	if (up == NULL)
		return NIL;
	script = script_parse(up, "the up script");
	guc_level = NewGUCNestLevel();
	for (int i = 0; i < script->nstmts; i++)
	{
		Node	   *stmt = script_stmt(script, i)->parsetree;
		ListCell   *lc;

		if (follow_search_path(stmt))
			continue;
		foreach(lc, stmt_locked_relations(stmt))
		{
			Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

			if (OidIsValid(relid))
				relids = list_append_unique_oid(relids, relid);
		}
	}
	AtEOXact_GUC(false, guc_level);
	return relids;
}

/*
 * The sessions holding locks on the given tables, oldest transaction first:
 * "pid 4242 (role app, application "psql", idle in transaction since
 * 2026-11-29 10:00:00+00, holding RowExclusiveLock on tasks)"; NULL when
 * none.  What a role without pg_read_all_stats may not see of another
 * role's session shows as "?".
 */
char *
lock_holders_text(List *relids)
{
	Datum		arg;
	char	   *result = NULL;

	if (relids == NIL)
		return NULL;
	arg = PointerGetDatum(oid_list_to_array(relids));
	if (SPI_execute_with_args("SELECT pg_catalog.string_agg(pg_catalog.format('%s (role %s, application \"%s\", %s, "
							  "holding %s on %s)', coalesce('pid ' OPERATOR(pg_catalog.||) l.pid, "
							  "'a prepared transaction (' OPERATOR(pg_catalog.||) l.virtualtransaction OPERATOR(pg_catalog.||) ')'), "
							  "coalesce(a.usename::pg_catalog.text, '?'), "
							  "coalesce(a.application_name, ''), coalesce(a.state, 'state unknown') "
							  "  OPERATOR(pg_catalog.||) coalesce(' since ' OPERATOR(pg_catalog.||) "
							  "  pg_catalog.date_trunc('second', a.state_change)::pg_catalog.text, ''), l.mode, "
							  "  l.relation::pg_catalog.regclass), '; ' "
							  "  ORDER BY a.xact_start) "
							  "  FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a "
							  "    ON a.pid OPERATOR(pg_catalog.=) l.pid "
							  " WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted "
							  "   AND l.relation OPERATOR(pg_catalog.=) ANY ($1) "
							  "   AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()",
							  1, (Oid[]) {OIDARRAYOID}, &arg, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed > 0)
		result = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return result;
}

/* Sleep ms, waking for interrupts (a cancel ends the wait). */
static void
sleep_ms(long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Whether a script's DDL names a table that exists now (ALTER, CREATE
 * INDEX, DROP, LOCK, TRUNCATE, ...): what waits behind other sessions, so
 * what a retry is for.  Only such migrations get a subtransaction of their
 * own: more than 64 in one transaction would slow every other session's
 * snapshots until it ends (PostgreSQL's subtransaction cache overflows).
 */
static void
locks_existing_table(ScriptStmt *st, void *arg)
{
	bool	   *found = arg;
	Node	   *tree = st->parsetree;
	ListCell   *lc;

	if (*found || follow_search_path(tree) || IsA(tree, InsertStmt) || IsA(tree, UpdateStmt) ||
		IsA(tree, DeleteStmt) || IsA(tree, MergeStmt) || IsA(tree, SelectStmt) || IsA(tree, CreateStmt))
		return;
	foreach(lc, stmt_locked_relations(tree))
		if (OidIsValid(RangeVarGetRelid(lfirst(lc), NoLock, true)))
			*found = true;
}

static bool
takes_table_locks(const char *up)
{
	bool		found = false;
	int			guc_level = NewGUCNestLevel();	/* for the script's search_path */

	/* a syntax error is left to apply_step(), which reports it in its context */
	if (up != NULL)
		(void) script_walk(up, "the up script", true, locks_existing_table, &found);
	AtEOXact_GUC(false, guc_level);
	return found;
}

typedef struct StepCall
{
	Migration  *m;
	int			step;
	int			nsteps;
	bool		dry_run;
	ApplyRecord *rec;
	ApplyRecord start;			/* *rec as it was before the first try */
} StepCall;

static void
step_body(void *arg)
{
	StepCall   *c = arg;

	*c->rec = c->start;
	apply_step(c->m, c->step, c->nsteps, c->dry_run, c->rec);
}

/*
 * apply_step(), retried when a lock wait timed out: each try in a
 * subtransaction, rolled back on that error, then a backoff of 250 ms, 500
 * ms, 1 s, ... (at most 10 s) times a random 0.5 to 1.5.  Any other error,
 * or the last try's, is raised, the lock holders named.  In a transaction
 * shared by many migrations (`shared_transaction`: migrate_apply()), only a
 * migration that takes_table_locks() is run so.
 */
void
apply_step_retrying(Migration *m, int step, int nsteps, bool dry_run, bool shared_transaction, ApplyRecord *rec)
{
	StepCall	c = {m, step, nsteps, dry_run, rec, *rec};
	bool		prepares;
	List	   *prepared_before = NIL;

	if (migrate_lock_retries <= 0 || (shared_transaction && !takes_table_locks(m->up)))
	{
		apply_step(m, step, nsteps, dry_run, rec);
		return;
	}
	/* a PREPARE outlives the rollback of a try: what a try prepared goes before the next */
	prepares = strcasestr(m->up, "prepare") != NULL;
	if (prepares)
		prepared_before = session_prepared_names();
	for (int attempt = 0;; attempt++)
	{
		ErrorData  *edata = run_in_subtransaction(step_body, &c, true);
		char	   *holders;
		long		backoff;

		if (edata == NULL)
			return;
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		holders = lock_holders_text(script_tables(m->up));
		if (attempt >= migrate_lock_retries)
		{
			int			line;
			char	   *own = lock_timeout_directive(m->up, &line);
			int			waited = own ? lock_timeout_directive_ms(own, line, "the up script") : effective_lock_timeout();

			edata->detail = psprintf("%s%sMigration %s was tried %d times, each statement waiting at most "
									 "%d ms for a lock (unless the script sets lock_timeout itself). %s",
									 edata->detail ? edata->detail : "", edata->detail ? " " : "",
									 m->version, attempt + 1, waited,
									 holders ? psprintf("Locks on its tables are held by: %s.", holders)
									 : "No other session holds a lock on its tables now.");
			edata->hint = psprintf("%s. End or wait for the session holding the lock, or raise "
								   "migrate.lock_timeout or migrate.lock_retries, and run again.",
								   nothing_kept_text());
			ReThrowError(edata);
		}
		backoff = Min(10000L, 250L << Min(attempt, 6));
		backoff = (long) (backoff * (0.5 + pg_prng_double(&pg_global_prng_state)));
		ereport(NOTICE,
				(errmsg("migration %s could not get a lock in time: rolled back to its start, try %d of %d "
						"in %ld ms", m->version, attempt + 2, migrate_lock_retries + 1, backoff),
				 errdetail("%s%s", edata->message,
						   holders ? psprintf("; locks on its tables are held by: %s", holders) : "")));
		FreeErrorData(edata);
		if (prepares)
			deallocate_prepared_since(prepared_before);
		sleep_ms(backoff);
	}
}
