/*
 * plan.c
 *		Which pending migrations run, and in what order: version order, except
 *		that a migration runs after the ones it requires.  Kahn's algorithm
 *		with the smallest ready version first.
 */
#include "postgres.h"

#include "funcapi.h"
#include "executor/spi.h"
#include "lib/binaryheap.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_plan);

/* Items are in key order, so comparing indexes compares versions. */
static int
index_cmp(Datum a, Datum b, void *arg)
{
	int			ia = DatumGetInt32(a),
				ib = DatumGetInt32(b);

	/* binaryheap is a max-heap: invert for smallest first */
	return (ia < ib) ? 1 : (ia > ib) ? -1 : 0;
}

/*
 * A pending migration that cannot run in a transaction, or that requires one
 * (directly or not): it waits for the background worker.
 */
bool
waits_for_worker(Catalog *cat, Migration *m, int depth)
{
	ListCell   *lc;

	if (!m->transactional)
		return true;
	if (depth > cat->n)
		return false;
	foreach(lc, m->requires_keys)
	{
		Migration  *r = catalog_find(cat, lfirst(lc));

		if (r && migration_is_pending(r) && waits_for_worker(cat, r, depth + 1))
			return true;
	}
	return false;
}

List *
plan_pending(Catalog *cat, const char *target_key, bool out_of_order, bool check_out_of_order)
{
	int			n = cat->n;
	bool	   *in_plan = palloc0(sizeof(bool) * Max(n, 1));
	int		   *indegree = palloc0(sizeof(int) * Max(n, 1));
	List	  **dependents = palloc0(sizeof(List *) * Max(n, 1));
	binaryheap *ready = binaryheap_allocate(Max(n, 1), index_cmp, NULL);
	List	   *steps = NIL;
	int			planned = 0;

	for (int i = 0; i < n; i++)
	{
		Migration  *m = cat->items[i];

		in_plan[i] = migration_is_pending(m) &&
			(target_key == NULL || strcmp(m->key, target_key) <= 0);
		/* what waits for the worker, and what requires it, is not out of order */
		if (in_plan[i] && check_out_of_order && !out_of_order && !waits_for_worker(cat, m, 0) &&
			cat->newest_applied_key && strcmp(m->key, cat->newest_applied_key) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pending migration %s is older than the newest applied migration", m->version),
					 errdetail("Applying %s (\"%s\") now would run it out of order.", m->version, m->name),
					 errhint("Allow it with out_of_order => true, or register it under a newer version.")));
	}

	/* edges: a pending requirement must run first */
	for (int i = 0; i < n; i++)
	{
		Migration  *m = cat->items[i];
		ListCell   *lc;

		if (!in_plan[i])
			continue;
		foreach(lc, m->requires_keys)
		{
			int			r = catalog_find_index(cat, lfirst(lc));

			if (r < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("migration %s requires version %s, which is not registered",
								m->version, (char *) list_nth(m->requires, foreach_current_index(lc))),
						 errhint("Register the required migration, or register %s again without the requirement.",
								 m->version)));
			if (cat->items[r]->applied)
				continue;
			if (!in_plan[r])
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration %s requires %s, which lies beyond the target",
								m->version, cat->items[r]->version),
						 errhint("Choose a target at or after %s.", cat->items[r]->version)));
			indegree[i]++;
			dependents[r] = lappend_int(dependents[r], i);
		}
	}

	for (int i = 0; i < n; i++)
		if (in_plan[i] && indegree[i] == 0)
			binaryheap_add_unordered(ready, Int32GetDatum(i));
	binaryheap_build(ready);

	while (!binaryheap_empty(ready))
	{
		int			i = DatumGetInt32(binaryheap_remove_first(ready));
		Migration  *m = cat->items[i];
		PlanStep   *step = palloc0(sizeof(PlanStep));
		StringInfoData why;
		ListCell   *lc;

		initStringInfo(&why);
		if (!m->repeatable)
			appendStringInfoString(&why, "version order");
		else if (m->applied)
			appendStringInfoString(&why, "repeatable, changed since it was applied");
		else
			appendStringInfoString(&why, "repeatable, after every versioned migration");
		if (m->requires != NIL)
		{
			appendStringInfoString(&why, "; after its requirements ");
			foreach(lc, m->requires)
				appendStringInfo(&why, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
								 (char *) lfirst(lc));
		}
		if (cat->newest_applied_key && strcmp(m->key, cat->newest_applied_key) < 0)
			appendStringInfoString(&why, "; out of order: older than the newest applied migration");
		if (!m->transactional)
			appendStringInfoString(&why, "; non-transactional: needs the background worker");
		step->m = m;
		step->reason = why.data;
		steps = lappend(steps, step);
		planned++;

		foreach(lc, dependents[i])
		{
			int			d = lfirst_int(lc);

			if (--indegree[d] == 0)
				binaryheap_add(ready, Int32GetDatum(d));
		}
	}

	/* Registration refuses cycles, so this is a can't-happen. */
	for (int i = 0; i < n && planned < n; i++)
		if (in_plan[i] && indegree[i] > 0)
			elog(ERROR, "requirements of migration %s form a cycle", cat->items[i]->version);
	return steps;
}

/*
 * Refuse a requirement that is not registered, or that would close a cycle
 * through m (the rest of the graph is acyclic: every registration checks).
 */
static bool
find_path(Catalog *cat, Migration *m, Migration *from, List **path, int depth)
{
	ListCell   *lc;
	List	   *keys = (from == m) ? m->requires_keys : from->requires_keys;

	if (depth > cat->n + 1)
		return false;
	foreach(lc, keys)
	{
		char	   *key = lfirst(lc);
		Migration  *next;

		if (strcmp(key, m->key) == 0)
		{
			*path = lcons(m->version, *path);
			return true;
		}
		next = catalog_find(cat, key);
		if (next && next != m && find_path(cat, m, next, path, depth + 1))
		{
			*path = lcons(next->version, *path);
			return true;
		}
	}
	return false;
}

void
plan_check_requirements(Catalog *cat, Migration *m)
{
	ListCell   *lc;
	List	   *path = NIL;

	foreach(lc, m->requires_keys)
	{
		char	   *key = lfirst(lc);

		if (strcmp(key, m->key) != 0 && catalog_find(cat, key) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("migration %s requires version %s, which is not registered",
							m->version, (char *) list_nth(m->requires, foreach_current_index(lc))),
					 errhint("Register the required migration first.")));
	}
	if (find_path(cat, m, m, &path, 0))
	{
		StringInfoData chain;

		initStringInfo(&chain);
		appendStringInfoString(&chain, m->version);
		foreach(lc, path)
			appendStringInfo(&chain, " -> %s", (char *) lfirst(lc));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("requirements of migration %s form a cycle", m->version),
				 errdetail("The chain is %s (each requires the next).", chain.data),
				 errhint("Remove one of the requirements in the chain.")));
	}
}

/* migrate_plan(target, out_of_order): what migrate_apply would do, in order. */
Datum
migrate_plan(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		out_of_order = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	char	   *target_key = target ? version_key(target) : NULL;
	Catalog    *cat;
	List	   *steps;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	cat = catalog_load(false);
	steps = plan_pending(cat, target_key, out_of_order, true);
	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		Datum		values[8] = {0};
		bool		nulls[8] = {false, false, false, false, true, true, true, true};

		values[0] = Int32GetDatum(foreach_current_index(lc) + 1);
		values[1] = CStringGetTextDatum(s->m->version);
		values[2] = CStringGetTextDatum(s->m->name);
		values[3] = CStringGetTextDatum(s->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
