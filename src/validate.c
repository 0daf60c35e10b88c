/*
 * validate.c
 *		migrate_validate(): every problem of the catalog at once, as rows.
 *		An empty result means migrate_apply() can run and the applied
 *		migrations are as they were registered.  And the state of every
 *		migration (the migrate.status view, migrate_status()), decided by the
 *		same code: what validate calls "out of order" or "needs worker",
 *		status shows as such.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_validate);
PG_FUNCTION_INFO_V1(migrate_status_rows);

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

	ReqGraph   *g;
	bool	   *waits;
	List	   *cycles;
	int		   *on_cycle;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	cat = catalog_load(false);
	g = plan_graph(cat);
	waits = plan_waits_for_worker(cat);

	/* cycles (only a catalog edited by hand has one): reported at their first migration */
	cycles = plan_find_cycles(cat, NULL, 0, true);
	on_cycle = palloc0(sizeof(int) * Max(cat->n, 1));
	foreach(lc, cycles)
		if (on_cycle[linitial_int((List *) lfirst(lc))] == 0)
			on_cycle[linitial_int((List *) lfirst(lc))] = foreach_current_index(lc) + 1;

	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		if (migration_is_changed(m))
			put_problem(rsinfo, "changed", m->version, m->name,
						psprintf("Applied with checksum %s; the registered text has checksum %s.",
								 m->applied_checksum, m->checksum));
		else if (str_equal(m->drift, "edited") && m->applied && strcmp(m->applied_checksum, m->checksum) != 0 &&
				 !drift_edited_proven(m->key, m->applied_checksum, m->checksum))
			put_problem(rsinfo, "changed", m->version, m->name,
						psprintf("Applied with checksum %s; the registered text has checksum %s, recorded as edited, "
								 "but the kept applied text and the registered one are not the same statements.",
								 m->applied_checksum, m->checksum));
		if (plan_out_of_order(cat, m, waits[i]))
			put_problem(rsinfo, "out of order", m->version, m->name,
						"Pending, but older than the newest applied migration: migrate_apply() refuses it unless out_of_order => true.");
		if (m->failed && migration_is_pending(m))
			put_problem(rsinfo, "failed", m->version, m->name,
						"Its last run failed (migrate.history has the error); fix it and register it again, or clear it with migrate_repair().");
		foreach(lc, m->notes)
			if (strncmp(lfirst(lc), DOWN_UNPARSED_NOTE, strlen(DOWN_UNPARSED_NOTE)) == 0)
				put_problem(rsinfo, "broken down script", m->version, m->name,
							psprintf("Its down script does not parse (%s); the up script runs, but "
									 "migrate_rollback() refuses to run this down script until it is "
									 "corrected and registered again.",
									 (char *) lfirst(lc) + strlen(DOWN_UNPARSED_NOTE)));
		if (waits[i])
			put_problem(rsinfo, "needs worker", m->version, m->name,
						!migration_needs_worker(m)
						? "It requires a migration that cannot run in a transaction; both wait for the background worker."
						: psprintf("It %s; migrate_apply() and migrate_run() leave it pending for the background worker.",
								   non_transactional_reason(m)));
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
		{
			int			r = g->to[e];
			char	   *rv = list_nth(m->requires, e - g->off[i]);

			if (r < 0)
				put_problem(rsinfo, "unmet requirement", m->version, m->name,
							psprintf("Requires %s, which is not registered.", rv));
			else if (m->applied && !cat->items[r]->applied)
				put_problem(rsinfo, "unmet requirement", m->version, m->name,
							psprintf("Applied, but requires %s, which is not applied.", rv));
		}
		if (on_cycle[i])
		{
			List	   *cycle = list_nth(cycles, on_cycle[i] - 1);

			put_problem(rsinfo, "cycle", m->version, m->name,
						list_length(cycle) == 1 ? pstrdup("Requires itself.") :
						psprintf("Its requirements form a cycle: %s.", plan_cycle_chain(cat, cycle)));
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

/* ---- states ---- */

const char *
migration_state(Catalog *cat, Migration *m, bool waits)
{
	if (m->applied && strcmp(m->applied_checksum, m->checksum) == 0)
		return "applied";
	if (m->failed)
		return "failed";
	if (m->applied && m->repeatable)
		return "pending";
	/* drift: edited when only comments or whitespace differ (drift.c) */
	if (m->applied)
		return migration_is_changed(m) ? "changed" : "edited";
	if (plan_out_of_order(cat, m, waits))
		return "out of order";
	return "pending";
}

/* the columns of migrate.status_rows(), in order; then what decides the state */
enum
{
	S_VERSION, S_NAME, S_KIND, S_STATE, S_CHECKSUM, S_APPLIED_CHECKSUM, S_APPLIED_AT,
	S_APPLIED_BY, S_TRANSACTIONAL, S_REQUIRES, S_NOTES, S_VERSION_KEY, S_NCOLS,
	S_REGISTERED = S_NCOLS, S_APPLIED, S_FAILED, S_DRIFT, S_NQUERY
};

/*
 * migrate.status_rows(): one row per registered or applied migration, in
 * version order, with its state; the view migrate.status selects it.  One
 * catalog query (no script text), then one walk of the requirement graph.
 * Each row is deformed once per pass; a Migration gets what its state needs.
 */
Datum
migrate_status_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Catalog    *cat = palloc0(sizeof(Catalog));
	SPITupleTable *tab;
	uint64		nrows;
	int		   *item_of;
	bool	   *waits;
	Datum		values[S_NQUERY];
	bool		nulls[S_NQUERY];
	const char *state_names[] = {"applied", "failed", "changed", "edited", "pending", "out of order", "missing"};
	Datum		states[lengthof(state_names)];

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != S_NCOLS)
		elog(ERROR, "migrate.status_rows() is declared with %d result columns, not %d",
			 rsinfo->setDesc->natts, S_NCOLS);
	for (int k = 0; k < lengthof(state_names); k++)
		states[k] = CStringGetTextDatum(state_names[k]);
	SPI_connect();
	catalog_exec("SELECT coalesce(m.version, a.version), coalesce(m.name, a.name), "
				 "       coalesce(m.kind, 'versioned'), NULL::text, m.checksum, a.checksum, "
				 "       a.applied_at, a.applied_by, m.transactional AND m.batch IS NULL, m.requires, m.notes, "
				 "       coalesce(m.version_key, a.version_key), "
				 "       m.version_key IS NOT NULL, a.version_key IS NOT NULL, m.failure IS NOT NULL, m.drift "
				 "  FROM migrate.migrations m "
				 "  FULL JOIN migrate.applied a ON a.version_key = m.version_key "
				 " ORDER BY 12",
				 0, NULL, NULL, NULL);
	tab = SPI_tuptable;
	nrows = SPI_processed;
	if (tab->tupdesc->natts != S_NQUERY)
		elog(ERROR, "status query returned %d columns, not %d", tab->tupdesc->natts, S_NQUERY);
	item_of = palloc(sizeof(int) * Max(nrows, 1));
	cat->items = palloc(sizeof(Migration *) * Max(nrows, 1));
	for (uint64 r = 0; r < nrows; r++)
	{
		char	   *key;
		Migration  *m;

		CHECK_FOR_INTERRUPTS();
		heap_deform_tuple(tab->vals[r], tab->tupdesc, values, nulls);
		key = TextDatumGetCString(values[S_VERSION_KEY]);
		/* rows are in key order: the last applied versioned one is the newest */
		if (DatumGetBool(values[S_APPLIED]) && key[0] != REPEATABLE_KEY_CHAR)
			cat->newest_applied_key = key;
		item_of[r] = -1;
		if (!DatumGetBool(values[S_REGISTERED]))
			continue;
		m = palloc0(sizeof(Migration));
		m->version = key;		/* for messages only; none here */
		m->key = key;
		m->repeatable = (key[0] == REPEATABLE_KEY_CHAR);
		m->applied = DatumGetBool(values[S_APPLIED]);
		if (m->applied)
		{
			m->checksum = TextDatumGetCString(values[S_CHECKSUM]);
			m->applied_checksum = TextDatumGetCString(values[S_APPLIED_CHECKSUM]);
		}
		m->transactional = DatumGetBool(values[S_TRANSACTIONAL]);
		m->failed = DatumGetBool(values[S_FAILED]);
		m->drift = nulls[S_DRIFT] ? NULL : TextDatumGetCString(values[S_DRIFT]);
		if (!nulls[S_REQUIRES])
		{
			Datum	   *elems;
			bool	   *enulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(values[S_REQUIRES]), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &n);
			for (int k = 0; k < n; k++)
				if (!enulls[k])
					m->requires_keys = lappend(m->requires_keys,
											   version_key(TextDatumGetCString(elems[k])));
		}
		item_of[r] = cat->n;
		cat->items[cat->n++] = m;
	}

	waits = plan_waits_for_worker(cat);
	for (uint64 r = 0; r < nrows; r++)
	{
		const char *state = "missing";

		CHECK_FOR_INTERRUPTS();
		heap_deform_tuple(tab->vals[r], tab->tupdesc, values, nulls);
		if (item_of[r] >= 0)
			state = migration_state(cat, cat->items[item_of[r]], waits[item_of[r]]);
		for (int k = 0; k < lengthof(state_names); k++)
			if (strcmp(state, state_names[k]) == 0)
				values[S_STATE] = states[k];
		nulls[S_STATE] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
