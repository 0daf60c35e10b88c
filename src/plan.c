/*
 * plan.c
 *		The requirement graph of the catalog and every walk over it: cycles,
 *		what waits for the background worker, and which pending migrations
 *		run, in what order: version order, except that a migration runs after
 *		the ones it requires (Kahn's algorithm with the smallest ready version
 *		first).  Every walk is a loop over explicit arrays, linear in
 *		migrations plus requirements, and checks for interrupts, so that
 *		100,000 migrations in a chain neither overflow the stack nor hold the
 *		migration lock past a cancel.  And the checksum of a plan, so that
 *		what runs is what was reviewed.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "funcapi.h"
#include "executor/spi.h"
#include "lib/binaryheap.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_plan);

/* ---- the requirement graph ---- */

/*
 * The graph of a loaded catalog, built once: keys are resolved through an
 * open-addressing hash table of the items (twice as many slots as items),
 * so building it costs O(nodes + edges).
 */
ReqGraph *
plan_graph(Catalog *cat)
{
	ReqGraph   *g;
	int			n = cat->n;
	int			nslots = 2;
	int		   *slots;
	int			nedges = 0;

	if (cat->graph)
		return cat->graph;
	while (nslots < 2 * n)
		nslots <<= 1;
	slots = palloc(sizeof(int) * nslots);
	memset(slots, -1, sizeof(int) * nslots);
	for (int i = 0; i < n; i++)
	{
		const char *key = cat->items[i]->key;
		uint32		h = hash_bytes((const unsigned char *) key, strlen(key)) & (nslots - 1);

		CHECK_FOR_INTERRUPTS();
		while (slots[h] >= 0)
			h = (h + 1) & (nslots - 1);
		slots[h] = i;
		nedges += list_length(cat->items[i]->requires_keys);
	}

	g = palloc(sizeof(ReqGraph));
	g->n = n;
	g->off = palloc(sizeof(int) * (n + 1));
	g->to = palloc(sizeof(int) * Max(nedges, 1));
	nedges = 0;
	for (int i = 0; i < n; i++)
	{
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		g->off[i] = nedges;
		foreach(lc, cat->items[i]->requires_keys)
		{
			const char *key = lfirst(lc);
			uint32		h = hash_bytes((const unsigned char *) key, strlen(key)) & (nslots - 1);

			while (slots[h] >= 0 && strcmp(cat->items[slots[h]]->key, key) != 0)
				h = (h + 1) & (nslots - 1);
			g->to[nedges++] = slots[h];
		}
	}
	g->off[n] = nedges;
	pfree(slots);
	cat->graph = g;
	return g;
}

/*
 * Depth-first walk over requirements from the given roots (all items when
 * roots is NULL), with an explicit stack.  Returns the items it finished in
 * post-order (every item after the items it requires; *nvisited of them)
 * and, in *cycles, the cycle closed by each edge back into the stack (only
 * the first with all = false, which also ends the walk).
 */
static int *
graph_walk(Catalog *cat, const int *roots, int nroots, bool all, List **cycles, int *nvisited)
{
	ReqGraph   *g = plan_graph(cat);
	int			n = g->n;
	char	   *state = palloc0(Max(n, 1));	/* 0 unseen, 1 on the stack, 2 done */
	int		   *depth_of = palloc(sizeof(int) * Max(n, 1));	/* stack position */
	int		   *stack = palloc(sizeof(int) * Max(n, 1));
	int		   *next = palloc(sizeof(int) * Max(n, 1)); /* next edge of each stack entry */
	int		   *order = palloc(sizeof(int) * Max(n, 1));
	int			norder = 0;

	*cycles = NIL;
	for (int k = 0; k < (roots ? nroots : n); k++)
	{
		int			root = roots ? roots[k] : k;
		int			top = 0;

		if (root < 0 || state[root] != 0)
			continue;
		stack[0] = root;
		next[0] = g->off[root];
		depth_of[root] = 0;
		state[root] = 1;
		while (top >= 0)
		{
			int			u = stack[top];

			CHECK_FOR_INTERRUPTS();
			if (next[top] < g->off[u + 1])
			{
				int			w = g->to[next[top]++];

				if (w < 0 || state[w] == 2)
					continue;
				if (state[w] == 1)
				{
					List	   *cycle = NIL;

					for (int d = depth_of[w]; d <= top; d++)
						cycle = lappend_int(cycle, stack[d]);
					*cycles = lappend(*cycles, cycle);
					if (!all)
					{
						*nvisited = norder;
						return order;
					}
					continue;
				}
				top++;
				stack[top] = w;
				next[top] = g->off[w];
				depth_of[w] = top;
				state[w] = 1;
				continue;
			}
			state[u] = 2;
			order[norder++] = u;
			top--;
		}
	}
	pfree(state);
	pfree(depth_of);
	pfree(stack);
	pfree(next);
	*nvisited = norder;
	return order;
}

List *
plan_find_cycles(Catalog *cat, const int *roots, int nroots, bool all)
{
	List	   *cycles;
	int			nvisited;

	pfree(graph_walk(cat, roots, nroots, all, &cycles, &nvisited));
	return cycles;
}

char *
plan_cycle_chain(Catalog *cat, List *cycle)
{
	StringInfoData chain;
	ListCell   *lc;

	initStringInfo(&chain);
	foreach(lc, cycle)
		appendStringInfo(&chain, "%s -> ", cat->items[lfirst_int(lc)]->version);
	appendStringInfoString(&chain, cat->items[linitial_int(cycle)]->version);
	return chain.data;
}

static void
cycle_error(Catalog *cat, List *cycle)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("requirements of migration %s form a cycle",
					cat->items[linitial_int(cycle)]->version),
			 errdetail("The chain is %s (each requires the next).", plan_cycle_chain(cat, cycle)),
			 errhint("Remove one of the requirements in the chain.")));
}

/*
 * One post-order pass: an item is decided after the items it requires.  An
 * edge that closes a cycle (only in a catalog edited by hand) adds nothing.
 */
bool *
plan_waits_for_worker(Catalog *cat)
{
	ReqGraph   *g = plan_graph(cat);
	bool	   *waits = palloc0(sizeof(bool) * Max(g->n, 1));
	List	   *cycles;
	int			nvisited;
	int		   *order = graph_walk(cat, NULL, 0, true, &cycles, &nvisited);

	for (int k = 0; k < nvisited; k++)
	{
		int			i = order[k];
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		if (!migration_is_pending(m))
			continue;
		waits[i] = migration_needs_worker(m);
		for (int e = g->off[i]; e < g->off[i + 1] && !waits[i]; e++)
			waits[i] = g->to[e] >= 0 && waits[g->to[e]];
	}
	pfree(order);
	return waits;
}

bool
plan_out_of_order(Catalog *cat, Migration *m, bool waits)
{
	return !m->applied && !m->repeatable && !waits && cat->newest_applied_key &&
		strcmp(m->key, cat->newest_applied_key) < 0;
}

/*
 * After registering, check the registered migrations' requirements against
 * the catalog as it now is: unknown versions and cycles are refused (which
 * rolls the registration back).  One walk from all of them: the rest of the
 * graph is acyclic (every registration checks), so a cycle passes through a
 * migration registered now, and the walk, which starts at those in the order
 * given, names the first of them on it.
 */
void
plan_check_requirements(Catalog *cat, List *migrations)
{
	ReqGraph   *g = plan_graph(cat);
	int		   *roots = palloc(sizeof(int) * Max(list_length(migrations), 1));
	int			nroots = 0;
	ListCell   *lc;
	List	   *cycles;

	foreach(lc, migrations)
	{
		int			i = catalog_find_index(cat, ((Migration *) lfirst(lc))->key);
		Migration  *m;

		CHECK_FOR_INTERRUPTS();
		if (i < 0)
			continue;
		m = cat->items[i];
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
			if (g->to[e] < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("migration %s requires version %s, which is not registered",
								m->version, (char *) list_nth(m->requires, e - g->off[i])),
						 errhint("Register the required migration first.")));
		roots[nroots++] = i;
	}
	cycles = plan_find_cycles(cat, roots, nroots, false);
	if (cycles != NIL)
		cycle_error(cat, linitial(cycles));
}

/* The up script of a migration, from the catalog when the caller did not load it. */
const char *
migration_up_text(Migration *m)
{
	Datum		arg;
	const char *up = NULL;

	if (m->up)
		return m->up;
	arg = CStringGetTextDatum(m->key);
	catalog_exec("SELECT up FROM migrate.migrations WHERE version_key = $1", 1, (Oid[]) {TEXTOID}, &arg, NULL);
	if (SPI_processed > 0)
		up = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return up;
}

/*
 * The steps that need a commit before them, marked and said so in their
 * reason: a step that uses an enum value an earlier step of the same plan
 * adds cannot run in the transaction that adds it (PostgreSQL's 55P04), and
 * a step after one that sets constraint modes would run with them (they last
 * until a commit; commit.c).  Registration noted every value a migration
 * adds and every SET CONSTRAINTS; the scripts after an adder are read only
 * then.
 */
static void
plan_mark_needed_commits(List *steps)
{
	List	   *values = NIL;	/* values added so far */
	List	   *adders = NIL;	/* the version that added each */
	const char *modes_setter = NULL;	/* the step before, if it sets constraint modes */
	ListCell   *lc;

	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		ListCell   *ln;

		CHECK_FOR_INTERRUPTS();
		if (values != NIL && s->m->up != NULL)
		{
			ListCell   *lv;
			ListCell   *la;

			forboth(lv, values, la, adders)
			{
				if (script_uses_value(s->m->up, "", lfirst(lv)))
				{
					s->enum_value = lfirst(lv);
					s->enum_adder = lfirst(la);
					s->reason = psprintf("%s; uses enum value %s added by %s: needs %s committed first "
										 "(migrate_apply() stops before it)", s->reason,
										 quote_literal_cstr(s->enum_value), s->enum_adder, s->enum_adder);
					break;
				}
			}
		}
		if (modes_setter != NULL && s->enum_adder == NULL)
		{
			s->modes_setter = modes_setter;
			s->reason = psprintf("%s; follows %s, which sets constraint modes until it commits: needs %s "
								 "committed first (migrate_apply() stops before it)",
								 s->reason, modes_setter, modes_setter);
		}
		modes_setter = NULL;
		foreach(ln, s->m->notes)
		{
			if (strncmp(lfirst(ln), ENUM_ADD_NOTE, strlen(ENUM_ADD_NOTE)) == 0)
			{
				values = lappend(values, (char *) lfirst(ln) + strlen(ENUM_ADD_NOTE));
				adders = lappend(adders, s->m->version);
			}
			if (strncmp(lfirst(ln), CONSTRAINT_MODES_NOTE, strlen(CONSTRAINT_MODES_NOTE)) == 0)
				modes_setter = s->m->version;
		}
		/* the up scripts after an adder are needed: load them now */
		if (values != NIL && lnext(steps, lc))
		{
			PlanStep   *next = lfirst(lnext(steps, lc));

			next->m->up = (char *) migration_up_text(next->m);
		}
	}
}

/* ---- plans ---- */

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
 * The migrations a plan orders, by index into cat->items, with their
 * requirements among themselves both ways: how many of each one's are still
 * to be planned, and who requires each (for Kahn's algorithm).
 */
typedef struct PendingGraph
{
	bool	   *in_plan;		/* item i is in the plan */
	int			nplan;			/* how many are */
	int		   *indegree;		/* i's pending requirements not yet planned */
	int		   *dep_off;		/* n + 1 offsets into dependents[] */
	int		   *dependents;		/* of r: dependents[dep_off[r] .. dep_off[r + 1] - 1] */
} PendingGraph;

/*
 * Put in the plan every pending migration up to target_key (NULL: all);
 * with refuse_out_of_order, refuse one older than the newest applied (what
 * waits for the worker, and what requires it, is not out of order).
 */
static void
pending_select(Catalog *cat, const char *target_key, bool refuse_out_of_order,
			   const bool *waits, PendingGraph *pg)
{
	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		pg->in_plan[i] = migration_is_pending(m) &&
			(target_key == NULL || strcmp(m->key, target_key) <= 0);
		pg->nplan += pg->in_plan[i];
		if (pg->in_plan[i] && refuse_out_of_order && plan_out_of_order(cat, m, waits[i]))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pending migration %s is older than the newest applied migration", m->version),
					 errdetail("Applying %s (\"%s\") now would run it out of order.", m->version, m->name),
					 errhint("Allow it with out_of_order => true, or register it under a newer version.")));
	}
}

/*
 * The edges of the plan: a pending requirement must run first.  Counts each
 * planned migration's pending requirements (indegree) and its dependents
 * (into dep_off[r + 1]); refuses a requirement that is not registered, or
 * pending beyond the target.
 */
static void
pending_requirements(Catalog *cat, ReqGraph *g, PendingGraph *pg)
{
	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		CHECK_FOR_INTERRUPTS();
		if (!pg->in_plan[i])
			continue;
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
		{
			int			r = g->to[e];

			if (r < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("migration %s requires version %s, which is not registered",
								m->version, (char *) list_nth(m->requires, e - g->off[i])),
						 errhint("Register the required migration, or register %s again without the requirement.",
								 m->version)));
			if (cat->items[r]->applied)
				continue;
			if (!pg->in_plan[r])
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration %s requires %s, which lies beyond the target",
								m->version, cat->items[r]->version),
						 errhint("Choose a target at or after %s.", cat->items[r]->version)));
			pg->indegree[i]++;
			pg->dep_off[r + 1]++;
		}
	}
}

/* The reverse edges: dependents counted into dep_off, made offsets, and listed. */
static void
pending_dependents(Catalog *cat, ReqGraph *g, PendingGraph *pg)
{
	int			n = cat->n;
	int		   *fill;

	for (int i = 0; i < n; i++)
		pg->dep_off[i + 1] += pg->dep_off[i];
	pg->dependents = palloc(sizeof(int) * Max(pg->dep_off[n], 1));
	fill = palloc(sizeof(int) * Max(n, 1));
	memcpy(fill, pg->dep_off, sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!pg->in_plan[i])
			continue;
		for (int e = g->off[i]; e < g->off[i + 1]; e++)
			if (!cat->items[g->to[e]]->applied)
				pg->dependents[fill[g->to[e]]++] = i;
	}
	pfree(fill);
}

/* Why a step is where it is in the plan: its reason. */
static char *
step_reason(Catalog *cat, Migration *m)
{
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
	if (m->batch)
		appendStringInfoString(&why, "; batched: needs the background worker");
	else if (!m->transactional)
		appendStringInfoString(&why, "; non-transactional: needs the background worker");
	return why.data;
}

/* The step of item i: its migration, reason, and whether (and with what) it waits for the worker. */
static PlanStep *
make_step(Catalog *cat, ReqGraph *g, const bool *waits, int i)
{
	Migration  *m = cat->items[i];
	PlanStep   *step = palloc0(sizeof(PlanStep));

	step->m = m;
	step->reason = step_reason(cat, m);
	step->waits_worker = waits[i];
	/* the last requirement that waits too (its pending requirements are in the plan) */
	for (int e = g->off[i]; e < g->off[i + 1]; e++)
		if (waits[g->to[e]])
			step->blocker = list_nth(m->requires, e - g->off[i]);
	return step;
}

/*
 * Refuse a plan whose migrations could not all be ordered (only `planned`
 * were): those left wait on a cycle.  Registration refuses cycles: only a
 * catalog edited by hand has one.
 */
static void
refuse_unordered(Catalog *cat, PendingGraph *pg, int planned)
{
	int		   *left = palloc(sizeof(int) * pg->nplan);
	int			nleft = 0;
	List	   *cycles;

	for (int i = 0; i < cat->n; i++)
		if (pg->in_plan[i] && pg->indegree[i] > 0)
			left[nleft++] = i;
	cycles = plan_find_cycles(cat, left, nleft, false);
	if (cycles == NIL)
		elog(ERROR, "%d pending migrations could not be ordered", pg->nplan - planned);
	cycle_error(cat, linitial(cycles));
}

/*
 * The pending migrations up to target_key (NULL: all), ordered: version
 * order, except that a migration runs after the ones it requires.  Refuses a
 * plan that cannot run: out of order (unless allowed, or not checked), a
 * requirement missing or beyond the target, a cycle.
 */
List *
plan_pending(Catalog *cat, const char *target_key, bool out_of_order, bool check_out_of_order)
{
	int			n = cat->n;
	ReqGraph   *g = plan_graph(cat);
	bool	   *waits = plan_waits_for_worker(cat);
	PendingGraph pg = {0};
	binaryheap *ready = binaryheap_allocate(Max(n, 1), index_cmp, NULL);
	List	   *steps = NIL;
	int			planned = 0;

	pg.in_plan = palloc0(sizeof(bool) * Max(n, 1));
	pg.indegree = palloc0(sizeof(int) * Max(n, 1));
	pg.dep_off = palloc0(sizeof(int) * (n + 1));
	pending_select(cat, target_key, check_out_of_order && !out_of_order, waits, &pg);
	pending_requirements(cat, g, &pg);
	pending_dependents(cat, g, &pg);

	/* Kahn's algorithm, the smallest ready version first */
	for (int i = 0; i < n; i++)
		if (pg.in_plan[i] && pg.indegree[i] == 0)
			binaryheap_add_unordered(ready, Int32GetDatum(i));
	binaryheap_build(ready);
	while (!binaryheap_empty(ready))
	{
		int			i = DatumGetInt32(binaryheap_remove_first(ready));

		CHECK_FOR_INTERRUPTS();
		steps = lappend(steps, make_step(cat, g, waits, i));
		planned++;
		for (int d = pg.dep_off[i]; d < pg.dep_off[i + 1]; d++)
			if (--pg.indegree[pg.dependents[d]] == 0)
				binaryheap_add(ready, Int32GetDatum(pg.dependents[d]));
	}
	if (planned < pg.nplan)
		refuse_unordered(cat, &pg, planned);
	plan_mark_needed_commits(steps);
	return steps;
}

/* ---- reviewed plans ---- */

/*
 * Append one field to a step's text: "<name> <length>:<bytes>\n", or
 * "<name> null\n".  The length says where the value ends whatever bytes it
 * holds, so two different plans never have the same text.
 */
static void
append_field(StringInfo buf, const char *name, const char *value)
{
	if (value == NULL)
	{
		appendStringInfo(buf, "%s null\n", name);
		return;
	}
	appendStringInfo(buf, "%s %zu:", name, strlen(value));
	appendBinaryStringInfo(buf, value, strlen(value));
	appendStringInfoChar(buf, '\n');
}

/*
 * What one step adds to the plan checksum: what decides what runs and what
 * is checked (the up script's checksum as registered, the checksums of the
 * verify query and the down script, the expectations as normalised jsonb
 * text, the requirements' keys, the transactional flag; the batch options
 * and the assert query's checksum when there are) and what the
 * reviewer saw of it (key, version, name).  Not the reason: it is English
 * derived from these.  Nothing here depends on a session setting.
 */
static void
step_text(PlanStep *s)
{
	Migration  *m = s->m;
	StringInfoData text;
	ListCell   *lc;

	s->verify_checksum = m->verify ? script_checksum(m->verify) : NULL;
	s->down_checksum = m->down ? script_checksum(m->down) : NULL;
	initStringInfo(&text);
	append_field(&text, "key", m->key);
	append_field(&text, "version", m->version);
	append_field(&text, "name", m->name);
	append_field(&text, "up", m->checksum);
	append_field(&text, "verify", s->verify_checksum);
	append_field(&text, "down", s->down_checksum);
	append_field(&text, "expect", m->expect);
	appendStringInfo(&text, "requires %d\n", list_length(m->requires_keys));
	foreach(lc, m->requires_keys)
		append_field(&text, "require", lfirst(lc));
	appendStringInfo(&text, "transactional %s\n", m->transactional ? "true" : "false");
	if (m->batch)
		append_field(&text, "batch", m->batch);
	if (m->assertion)
		append_field(&text, "assert", script_checksum(m->assertion));
	s->text = text.data;
}

/*
 * The checksum of a plan: hex SHA-256 of "migrate plan 1\n", "steps <n>\n"
 * and the text of every step in order.  It covers every step migrate_plan()
 * shows, including those apply leaves pending for the worker.  The target
 * and out_of_order are not in it: they matter only through the steps.
 */
char *
plan_checksum(List *steps)
{
	StringInfoData plan;
	ListCell   *lc;

	initStringInfo(&plan);
	appendStringInfo(&plan, "migrate plan 1\nsteps %d\n", list_length(steps));
	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		step_text(s);
		appendStringInfoString(&plan, s->text);
	}
	return sha256_hex(plan.data, plan.len);
}

char *
plan_checksum_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *arg;
	char	   *hex;
	int			len;

	/* a database still on the 0.1.0 definitions has no such argument */
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	arg = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(arg);
	if (len > 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"plan\" is not a plan checksum"),
				 errdetail("It is %d bytes long; a plan checksum is 64 hexadecimal digits.", len),
				 errhint("Pass the plan_checksum column of SELECT * FROM migrate_plan().")));
	hex = text_to_cstring(arg);
	if (len != 64 || strspn(hex, "0123456789abcdefABCDEF") != 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"plan\" is not a plan checksum"),
				 errdetail("\"%s\" is not 64 hexadecimal digits.", hex),
				 errhint("Pass the plan_checksum column of SELECT * FROM migrate_plan().")));
	for (char *p = hex; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return hex;
}

/* A step for messages: 002 "add users", or R__views. */
static void
append_step_name(StringInfo buf, Migration *m)
{
	if (m->repeatable)
		appendStringInfoString(buf, m->version);
	else
		appendStringInfo(buf, "%s \"%s\"", m->version, m->name);
}

/* "no steps", "1 step: 002 \"x\"", "12 steps: ... and 2 more" */
static char *
describe_steps(List *steps)
{
	StringInfoData buf;
	ListCell   *lc;
	int			n = list_length(steps);

	initStringInfo(&buf);
	if (n == 0)
	{
		appendStringInfoString(&buf, "no steps");
		return buf.data;
	}
	appendStringInfo(&buf, "%d step%s: ", n, n == 1 ? "" : "s");
	foreach(lc, steps)
	{
		int			i = foreach_current_index(lc);

		if (i == 10)
		{
			appendStringInfo(&buf, " and %d more", n - i);
			break;
		}
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		append_step_name(&buf, ((PlanStep *) lfirst(lc))->m);
	}
	return buf.data;
}

List *
plan_check_reviewed(List *steps, const char *reviewed)
{
	char	   *current = plan_checksum(steps);
	List	   *result = NIL;
	ListCell   *lc;

	if (strcmp(current, reviewed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the pending plan differs from the reviewed plan"),
				 errdetail("The current plan has checksum %s and %s.", current, describe_steps(steps)),
				 errhint("Review it again with SELECT * FROM migrate_plan() (same target and out_of_order), then pass its plan_checksum as plan.")));
	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		ReviewedStep *r = palloc(sizeof(ReviewedStep));

		r->key = pstrdup(s->m->key);
		r->text = pstrdup(s->text);
		result = lappend(result, r);
	}
	return result;
}

static ReviewedStep *
find_reviewed(List *reviewed, const char *key)
{
	ListCell   *lc;

	foreach(lc, reviewed)
		if (strcmp(((ReviewedStep *) lfirst(lc))->key, key) == 0)
			return lfirst(lc);
	return NULL;
}

/*
 * Between commits another session may register or change migrations: the
 * next step must be a reviewed one, as reviewed.  When none of the steps
 * left was reviewed, the reviewed plan is done: what was registered since
 * stays pending.
 */
bool
plan_next_step_reviewed(List *reviewed, List *steps, int done)
{
	PlanStep   *next;
	ReviewedStep *r;
	ListCell   *lc;
	bool		reviewed_left = false;

	if (steps == NIL)
		return false;
	next = linitial(steps);
	step_text(next);
	r = find_reviewed(reviewed, next->m->key);
	if (r && strcmp(r->text, next->text) == 0)
		return true;

	foreach(lc, steps)
		if (find_reviewed(reviewed, ((PlanStep *) lfirst(lc))->m->key))
			reviewed_left = true;
	if (!reviewed_left)
	{
		ereport(NOTICE,
				(errmsg("migration %s was not reviewed and stays pending", next->m->version),
				 errdetail("It was registered after the plan was reviewed; no reviewed migration is left to run.")));
		return false;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 r ? errmsg("migration %s changed since the plan was reviewed", next->m->version)
			 : errmsg("migration %s is not part of the reviewed plan", next->m->version),
			 errdetail("It was registered or changed while the reviewed plan was being applied; %d migration%s of that plan %s applied and committed before it.",
					   done, done == 1 ? "" : "s", done == 1 ? "was" : "were"),
			 errhint("Review what is left with SELECT * FROM migrate_plan(), then run again with plan => its plan_checksum.")));
	return false;				/* not reached */
}

/*
 * migrate_plan(target, out_of_order): what migrate_apply would do, in order,
 * with the checksums of every script and of the whole plan.  The result is
 * built for the columns the SQL definition declares: the 0.1.0 one has only
 * the first four.
 */
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
	char	   *checksum = NULL;
	List	   *findings = NIL;
	int			natts;

	InitMaterializedSRF(fcinfo, 0);
	natts = rsinfo->setDesc->natts;
	if (natts != 4 && natts != 8 && natts != 9)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("migrate_plan() is declared with %d result columns", natts),
				 errdetail("This version of the migrate library returns 4, 8 or 9 columns."),
				 errhint("Run ALTER EXTENSION migrate UPDATE.")));
	SPI_connect();
	cat = catalog_load(natts == 9);
	steps = plan_pending(cat, target_key, out_of_order, true);
	if (natts >= 8)
		checksum = plan_checksum(steps);
	if (natts == 9)
		findings = lint_steps(steps);
	foreach(lc, steps)
	{
		PlanStep   *s = lfirst(lc);
		Datum		values[9];
		bool		nulls[9] = {false, false, false, false, false, false, false, false, false};

		values[0] = Int32GetDatum(foreach_current_index(lc) + 1);
		values[1] = CStringGetTextDatum(s->m->version);
		values[2] = CStringGetTextDatum(s->m->name);
		values[3] = CStringGetTextDatum(s->reason);
		if (natts >= 8)
		{
			values[4] = CStringGetTextDatum(s->m->checksum);
			values[5] = s->verify_checksum ? CStringGetTextDatum(s->verify_checksum) : (Datum) 0;
			nulls[5] = s->verify_checksum == NULL;
			values[6] = s->down_checksum ? CStringGetTextDatum(s->down_checksum) : (Datum) 0;
			nulls[6] = s->down_checksum == NULL;
			values[7] = CStringGetTextDatum(checksum);
		}
		if (natts == 9)
		{
			List	   *texts = NIL;
			ListCell   *lf;

			foreach(lf, findings)
				if (strcmp(((LintFinding *) lfirst(lf))->version, s->m->version) == 0)
					texts = lappend(texts, lint_finding_text(lfirst(lf)));
			values[8] = PointerGetDatum(string_list_to_array(texts));
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
