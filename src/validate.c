/*
 * validate.c
 *		migrate_validate(): every problem of the catalog at once, as rows.
 *		An empty result means migrate_apply() can run and the applied
 *		migrations are as they were registered.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_validate);

static void
put_problem(ReturnSetInfo *rsinfo, const char *problem, const char *version,
			const char *name, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(problem);
	values[1] = CStringGetTextDatum(version);
	values[2] = CStringGetTextDatum(name);
	values[3] = CStringGetTextDatum(detail);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * The history is a hash chain: each row's hash covers its content and the
 * hash of the row before it, so an edited, removed or inserted row breaks it
 * (only the newest rows can be cut off unseen).  And every applied row must
 * be explained by the history: its latest apply, baseline, import or repair
 * was of the checksum that is applied, and not reverted since; and every
 * migration the history says is applied must be marked applied.
 * only_key limits the second check to one migration.
 */
List *
history_findings(Catalog *cat, const char *only_key)
{
	List	   *result = NIL;
	Datum		arg = only_key ? CStringGetTextDatum(only_key) : (Datum) 0;
	HistoryBreak *brk = history_scan(cat);

	if (brk)
	{
		HistoryFinding *f = palloc0(sizeof(HistoryFinding));

		f->problem = "history";
		f->version = brk->version ? brk->version : "";
		f->name = brk->name ? brk->name : "";
		f->detail = psprintf("The history's hash chain breaks at row " INT64_FORMAT ": that row, or the one before it, "
							 "was edited, inserted or removed outside migrate.", brk->id);
		result = lappend(result, f);
	}

	/* registered migrations: history_scan() followed them */
	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];
		HistoryFinding *f;

		if (only_key && strcmp(only_key, m->key) != 0)
			continue;
		if (!m->applied && m->history_applied && !m->repeatable)
		{
			f = palloc0(sizeof(HistoryFinding));
			f->problem = "lost";
			f->version = m->version;
			f->name = m->name;
			f->detail = pstrdup("The history records applying it and no revert, but it is not marked applied: "
								"its row in migrate.applied was removed outside migrate, and migrate_apply() would run it again.");
			result = lappend(result, f);
			continue;
		}
		if (!m->applied || m->explained)
			continue;
		f = palloc0(sizeof(HistoryFinding));
		f->problem = "unrecorded";
		f->version = m->version;
		f->name = m->name;
		f->detail = psprintf("Marked applied with checksum %s, but no history row records applying it: "
							 "the row was written outside migrate.", m->applied_checksum);
		result = lappend(result, f);
	}

	/* applied ones that are no longer registered (few): asked of the history */
	catalog_exec("SELECT a.version, a.name, a.checksum FROM migrate.applied a "
				 " WHERE ($1 IS NULL OR a.version_key = $1) "
				 "   AND NOT EXISTS (SELECT FROM migrate.migrations m WHERE m.version_key = a.version_key) "
				 "   AND NOT EXISTS ("
				 "       SELECT FROM migrate.history h "
				 "        WHERE h.version_key = a.version_key AND h.checksum = a.checksum "
				 "          AND h.action IN ('apply', 'baseline', 'import', 'repair') AND h.outcome = 'ok' "
				 "          AND NOT EXISTS (SELECT FROM migrate.history r "
				 "                           WHERE r.version_key = h.version_key AND r.action = 'revert' "
				 "                             AND r.id > h.id)) "
				 " ORDER BY a.version_key",
				 1, (Oid[]) {TEXTOID}, &arg, only_key ? NULL : "n");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HistoryFinding *f = palloc0(sizeof(HistoryFinding));

		f->problem = "unrecorded";
		f->version = SPI_getvalue(tup, desc, 1);
		f->name = SPI_getvalue(tup, desc, 2);
		f->detail = psprintf("Marked applied with checksum %s, but no history row records applying it: "
							 "the row was written outside migrate.", SPI_getvalue(tup, desc, 3));
		result = lappend(result, f);
	}
	SPI_freetuptable(SPI_tuptable);
	return result;
}

Datum
migrate_validate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Catalog    *cat;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	cat = catalog_load(false);

	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];
		ListCell   *lc;

		if (m->applied && !m->repeatable && strcmp(m->applied_checksum, m->checksum) != 0)
			put_problem(rsinfo, "changed", m->version, m->name,
						psprintf("Applied with checksum %s; the registered text has checksum %s.",
								 m->applied_checksum, m->checksum));
		if (!m->applied && !waits_for_worker(cat, m, 0) && cat->newest_applied_key &&
			strcmp(m->key, cat->newest_applied_key) < 0)
			put_problem(rsinfo, "out of order", m->version, m->name,
						"Pending, but older than the newest applied migration: migrate_apply() refuses it unless out_of_order => true.");
		if (m->failed && migration_is_pending(m))
			put_problem(rsinfo, "failed", m->version, m->name,
						"Its last run failed (migrate.history has the error); fix it and register it again, or clear it with migrate_repair().");
		if (migration_is_pending(m) && waits_for_worker(cat, m, 0))
			put_problem(rsinfo, "needs worker", m->version, m->name,
						m->transactional
						? "It requires a migration that cannot run in a transaction; both wait for the background worker."
						: psprintf("It %s; migrate_apply() and migrate_run() leave it pending for the background worker.",
								   non_transactional_reason(m)));
		foreach(lc, m->requires_keys)
		{
			Migration  *r = catalog_find(cat, lfirst(lc));
			char	   *rv = list_nth(m->requires, foreach_current_index(lc));

			if (r == NULL)
				put_problem(rsinfo, "unmet requirement", m->version, m->name,
							psprintf("Requires %s, which is not registered.", rv));
			else if (m->applied && !r->applied)
				put_problem(rsinfo, "unmet requirement", m->version, m->name,
							psprintf("Applied, but requires %s, which is not applied.", rv));
			else if (r == m)
				put_problem(rsinfo, "cycle", m->version, m->name, "Requires itself.");
		}
	}

	/* applied migrations that are no longer registered */
	catalog_exec("SELECT a.version, a.name, a.checksum FROM migrate.applied a "
				 " WHERE NOT EXISTS (SELECT FROM migrate.migrations m WHERE m.version_key = a.version_key) "
				 " ORDER BY a.version_key", 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		put_problem(rsinfo, "missing", SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
					psprintf("Applied with checksum %s, but no longer registered.",
							 SPI_getvalue(tup, desc, 3)));
	}
	SPI_freetuptable(SPI_tuptable);
	foreach(lc, history_findings(cat, NULL))
	{
		HistoryFinding *f = lfirst(lc);

		put_problem(rsinfo, f->problem, f->version, f->name, f->detail);
	}
	SPI_finish();
	return (Datum) 0;
}
