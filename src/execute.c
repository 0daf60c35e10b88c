/*
 * execute.c
 *		Running a script's statements: each through SPI as the current user,
 *		under the statement_timeout the script set, shown in
 *		pg_stat_activity, the tables it writes noted, and at each absorbed
 *		COMMIT and at its end what a commit ends (commit.c).  Shared by
 *		migrate_apply(), migrate_run(), jobs (apply.c's apply_step()) and
 *		migrate_rollback() (down scripts).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "migrate.h"

/*
 * A statement_timeout the migration set itself (SET statement_timeout),
 * armed for one statement, as psql arms it for each statement of a file.
 * The caller's own timeout, running since migrate_apply() started, still
 * limits the whole call: the earlier deadline wins, and the caller's is put
 * back after the statement.
 */
typedef struct StatementTimer
{
	bool		armed;
	bool		outer_active;
	TimestampTz outer_finish;
} StatementTimer;

static void
statement_timer_start(StatementTimer *t, int start_timeout)
{
	TimestampTz finish;

	t->armed = false;
	if (StatementTimeout <= 0 || StatementTimeout == start_timeout)
		return;
	t->outer_active = get_timeout_active(STATEMENT_TIMEOUT);
	t->outer_finish = t->outer_active ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	finish = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), StatementTimeout);
	if (t->outer_active && t->outer_finish <= finish)
		return;
	enable_timeout_at(STATEMENT_TIMEOUT, finish);
	t->armed = true;
}

static void
statement_timer_stop(StatementTimer *t)
{
	if (!t->armed)
		return;
	if (t->outer_active)
		enable_timeout_at(STATEMENT_TIMEOUT, t->outer_finish);
	else
		disable_timeout(STATEMENT_TIMEOUT, false);
	t->armed = false;
}

/* Run statement i under the statement_timeout its script set, if any. */
static void
exec_statement_timed(Script *script, int i, const char *what, const char *hint, int start_timeout)
{
	StatementTimer timer;
	ScriptStmt *st = script_stmt(script, i);

	/*
	 * pg_stat_activity.query shows which migration and statement runs (as
	 * pg_cron's workers show their command), not only "SELECT migrate_apply()".
	 */
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("/* migrate: %s, statement %d of %d, line %d */ %s",
									what, i + 1, script->nstmts, st->line, st->sql));
	statement_timer_start(&timer, start_timeout);
	PG_TRY();
	{
		script_exec_stmt(script, i, what, hint, false, true);
	}
	PG_FINALLY();
	{
		statement_timer_stop(&timer);
	}
	PG_END_TRY();
}

/*
 * Run every statement of a script as the current user; add the relations
 * they write to *touched (resolved right after each statement: a later
 * rename keeps the OID).  Returns the rows they processed.  A
 * statement_timeout the script sets applies to each of its following
 * statements (lock_timeout needs nothing: each lock wait reads it).
 * At each absorbed COMMIT and at the end, what a commit ends ends
 * (commit.c); the caller closes a GUC nest level opened before the call,
 * which ends the script's settings.  What a statement needs only while it
 * runs lives in a memory context emptied after it.
 */
int64
run_statements(Script *script, const char *what, const char *hint, List **touched)
{
	int64		rows = 0;
	int			start_timeout = StatementTimeout;
	CommitBlock block;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext stmt_cxt = AllocSetContextCreate(caller, "migrate statement", ALLOCSET_DEFAULT_SIZES);

	commit_block_begin(&block);
	for (int i = 0; i < script->nstmts; i++)
	{
		ListCell   *lc;
		List	   *written;
		List	   *relids = NIL;
		ScriptStmt *st;
		const char *absorbed;

		MemoryContextSwitchTo(stmt_cxt);
		st = script_stmt(script, i);
		absorbed = stmt_absorbed(st->parsetree);
		refuse_in_dry_run(script, i, what);
		progress_still_running(i, script->nstmts, script->spans[i].line);

		exec_statement_timed(script, i, what, hint, start_timeout);
		/* rows written: what a SELECT returned (to no one) is not counted */
		written = stmt_written_relations(st->parsetree);
		if (written != NIL)
			rows += SPI_processed;
		SPI_freetuptable(SPI_tuptable);
		foreach(lc, written)
		{
			Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

			if (OidIsValid(relid))
			{
				MemoryContextSwitchTo(caller);
				*touched = touched_add(*touched, relid);
				MemoryContextSwitchTo(stmt_cxt);
				relids = lappend_oid(relids, relid);
			}
		}
		/* the block outlasts the statement */
		MemoryContextSwitchTo(caller);
		commit_block_note(&block, st, relids);
		if (absorbed && strcmp(absorbed, "COMMIT") == 0)
			commit_absorbed(&block, what, hint, st->line);
		MemoryContextReset(stmt_cxt);
	}
	MemoryContextDelete(stmt_cxt);
	commit_script_end(&block, what, hint);
	/* the statements ran: the session's own command again */
	if (debug_query_string)
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
	return rows;
}

