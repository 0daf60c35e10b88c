/*
 * migrate.c
 *		Module entry point and settings.  The extension needs no
 *		shared_preload_libraries entry; settings are defined when the library
 *		is first loaded.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "migrate.h"

PG_MODULE_MAGIC;

int			migrate_verify_constraints = VERIFY_CONSTRAINTS_TOUCHED;

static const struct config_enum_entry verify_constraints_options[] = {
	{"touched", VERIFY_CONSTRAINTS_TOUCHED, false},
	{"all", VERIFY_CONSTRAINTS_ALL, false},
	{"off", VERIFY_CONSTRAINTS_OFF, false},
	{NULL, 0, false}
};

int			migrate_lint_mode = LINT_MODE_ERROR;
int			migrate_lint_large_rows = 100000;
int			migrate_lint_large_bytes = 100 * 1024;	/* kB */

static const struct config_enum_entry lint_options[] = {
	{"error", LINT_MODE_ERROR, false},
	{"warn", LINT_MODE_WARN, false},
	{"off", LINT_MODE_OFF, false},
	{NULL, 0, false}
};

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomEnumVariable("migrate.verify_constraints",
							 "Which tables' FOREIGN KEY and CHECK constraints are re-checked after each migration.",
							 "touched: the tables the migration wrote or altered (and foreign keys referencing them); "
							 "all: every table; off: none.",
							 &migrate_verify_constraints,
							 VERIFY_CONSTRAINTS_TOUCHED,
							 verify_constraints_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("migrate.sync_histories",
							 "Keeps the history tables of other migration tools in step with what migrate does.",
							 "While supabase_migrations.schema_migrations, flyway_schema_history or "
							 "schema_migrations (dbmate, golang-migrate) exists, what migrate applies, reverts, "
							 "baselines, imports or repairs is recorded there too, as that tool would record it.",
							 &migrate_sync_histories,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.batch_max_lag",
							"Replica replay lag above which a batched migration waits (half of it slows it down).",
							"Read from pg_stat_replication between batches; 0 does not look at it.",
							&migrate_batch_max_lag,
							10000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.batch_max_blocked",
							"Sessions that may wait for a batch's locks before batched migrations slow down.",
							"Counted with pg_blocking_pids() at the end of every batch; -1 does not count them.",
							&migrate_batch_max_blocked,
							0, -1, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.batch_lock_retries",
							"How many times a batch that waited lock_timeout for a lock is retried before its job fails.",
							"Retries back off: 250 ms, 500 ms, 1 s, ... at most 10 s apart.",
							&migrate_batch_lock_retries,
							5, 0, 100,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.lock_timeout",
							"How long each statement of a migration waits for a lock before the migration is rolled back and retried.",
							"A shorter lock_timeout of the session stays; a script may SET lock_timeout itself; 0 leaves "
							"the session's lock_timeout.",
							&migrate_lock_timeout,
							5000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.lock_retries",
							"How many times a migration whose statement timed out waiting for a lock is retried from its start.",
							"Each retry waits 250 ms, 500 ms, 1 s, ... (at most 10 s), times a random 0.5 to 1.5; 0 does "
							"not retry (and runs each migration without a subtransaction of its own).",
							&migrate_lock_retries,
							3, 0, 100,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("migrate.lint",
							 "What an error finding of migrate_lint() does to migrate_apply(), migrate_run() and jobs.",
							 "error: refuses to start them (a -- migrate:allow comment allows one statement); "
							 "warn: a WARNING, and they run; off: no linting when they start.",
							 &migrate_lint_mode,
							 LINT_MODE_ERROR,
							 lint_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.lint_large_rows",
							"Rows (from statistics) from which work under a strong lock on a table is a lint error.",
							"Below it such work on a table that is not empty is a warning; on an empty or new table, info.",
							&migrate_lint_large_rows,
							100000, 0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migrate.lint_large_bytes",
							"Size from which work under a strong lock on a table is a lint error (also below lint_large_rows).",
							"0 looks at rows only.",
							&migrate_lint_large_bytes,
							100 * 1024, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("migrate");

	/* preloaded: a launcher resumes, after every start, the jobs that lost their worker */
	if (process_shared_preload_libraries_in_progress)
		launcher_register();
}

/*
 * Run fn(arg) in a subtransaction.  On success keep its work when `keep`
 * (release) or discard it (roll back), and return NULL; on error roll it back
 * and return the error.  pl_exec.c's exception block: memory context and
 * resource owner are restored on every path.
 */
ErrorData *
run_in_subtransaction(void (*fn) (void *), void *arg, bool keep)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
