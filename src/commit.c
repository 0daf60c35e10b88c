/*-------------------------------------------------------------------------
 *
 * commit.c
 *	  What a COMMIT ends, at a COMMIT that a migration absorbs and at the end
 *	  of every migration.
 *
 * A file written for psql may commit in its middle (begin; ...; end; begin;
 * ...; end;), and each migration must behave as if run by psql -1 on its
 * own, while migrate_apply() runs them all in one transaction.  So at each
 * such point the session is given what a commit gives it, in the order
 * CommitTransaction() does it:
 *
 *	 - deferred constraints are checked (SET CONSTRAINTS ALL IMMEDIATE
 *	   semantics), in a subtransaction that is then rolled back, so that the
 *	   constraint modes stay as they were and the events stay queued for the
 *	   real commit (which checks them once more); an error is attributed to
 *	   the COMMIT's line;
 *	 - temporary tables created ON COMMIT DROP are dropped and ON COMMIT
 *	   DELETE ROWS ones emptied (PreCommit_on_commit_actions(), as at commit);
 *	 - at an absorbed COMMIT, what SET LOCAL, set_config(..., true) and SET
 *	   LOCAL ROLE set reverts, while plain SET and SET ROLE keep their value
 *	   to the end of the migration (the migration's own GUC nest level,
 *	   closed by its caller, ends those).
 *
 * The settings: the statements between two commit points run in a GUC nest
 * level of their own (a "block").  At the COMMIT the block's level is closed
 * as an abort closes it, which puts back exactly what was there before it
 * (assign hooks and all, the current role included), and the values that
 * plain SETs of the block gave are set again in a new block level with the
 * context and role that set them.
 *
 * What PostgreSQL does not let an extension end exactly is refused when the
 * script is registered (register.c): a SET CONSTRAINTS before an absorbed
 * COMMIT; and migrate_apply() stops before a migration that follows one
 * that sets constraint modes (plan.c), as a commit must come between them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/tablecmds.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "migrate.h"

/* Check the deferred constraints now: SET CONSTRAINTS ALL IMMEDIATE. */
static void
fire_deferred(void *arg)
{
	(void) arg;
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not check deferred constraints");
}

/*
 * Deferred constraints and ON COMMIT actions, as at commit.  `where` says
 * what commits, for an error ("line 12: COMMIT", "the end of the migration").
 */
static void
commit_checks(const char *what, const char *where, const char *hint)
{
	ErrorData  *edata = run_in_subtransaction(fire_deferred, NULL, false);

	if (edata)
	{
		const char *ours = "SQL statement \"SET CONSTRAINTS ALL IMMEDIATE\"";

		edata->detail = psprintf("%s, %s: deferred constraints are checked there, as a commit checks them.%s%s",
								 what, where, edata->detail ? " " : "", edata->detail ? edata->detail : "");
		edata->hint = psprintf("%s%s%s", edata->hint ? edata->hint : "", edata->hint ? " " : "", hint);
		/* the statement that checked them is migrate's, not the script's */
		if (edata->context && strncmp(edata->context, ours, strlen(ours)) == 0)
			edata->context = edata->context[strlen(ours)] == '\n'
				? pstrdup(edata->context + strlen(ours) + 1) : NULL;
		ReThrowError(edata);
	}
	PreCommit_on_commit_actions();
}

/* A value of a setting as set_config_option() reads it back exactly. */
static char *
setting_text(struct config_generic *gconf, config_var_value *value)
{
	switch (gconf->vartype)
	{
		case PGC_BOOL:
			return pstrdup((value ? value->val.boolval : *((struct config_bool *) gconf)->variable)
						   ? "on" : "off");
		case PGC_INT:
			return psprintf("%d", value ? value->val.intval : *((struct config_int *) gconf)->variable);
		case PGC_REAL:
			return psprintf("%.17g", value ? value->val.realval : *((struct config_real *) gconf)->variable);
		case PGC_STRING:
			{
				char	   *s = value ? value->val.stringval : *((struct config_string *) gconf)->variable;

				return pstrdup(s ? s : "");
			}
		case PGC_ENUM:
			return pstrdup(config_enum_lookup_by_value((struct config_enum *) gconf,
													   value ? value->val.enumval
													   : *((struct config_enum *) gconf)->variable));
	}
	elog(ERROR, "unexpected setting type %d", (int) gconf->vartype);
	return NULL;
}

/* A plain SET made in the block, to be made again after its level closes. */
typedef struct PlainSet
{
	const char *name;
	char	   *value;
	GucContext	context;
	Oid			role;
} PlainSet;

/*
 * End the block at an absorbed COMMIT: its local settings revert, its plain
 * SETs stay.  *level is the block's nest level; a new one is opened.
 */
static void
end_block_settings(int *level)
{
	struct config_generic **gucs = get_guc_variables();
	int			n = GetNumConfigOptions();
	List	   *plain = NIL;
	ListCell   *lc;

	for (int i = 0; i < n; i++)
	{
		GucStack   *stack = gucs[i]->stack;
		PlainSet   *p;

		if (stack == NULL || stack->nest_level < *level)
			continue;
		if (stack->state == GUC_SET)
		{
			p = palloc(sizeof(PlainSet));
			p->value = setting_text(gucs[i], NULL);
			p->context = gucs[i]->scontext;
			p->role = gucs[i]->srole;
		}
		else if (stack->state == GUC_SET_LOCAL)
		{
			p = palloc(sizeof(PlainSet));
			p->value = setting_text(gucs[i], &stack->masked);
			p->context = stack->masked_scontext;
			p->role = stack->masked_srole;
		}
		else
			continue;			/* GUC_LOCAL (or GUC_SAVE): the commit ends it */
		p->name = gucs[i]->name;
		/* a session authorization resets the role: it goes first */
		if (strcmp(p->name, "session_authorization") == 0)
			plain = lcons(p, plain);
		else
			plain = lappend(plain, p);
	}

	AtEOXact_GUC(false, *level);
	*level = NewGUCNestLevel();
	foreach(lc, plain)
	{
		PlainSet   *p = lfirst(lc);

		(void) set_config_option_ext(p->name, p->value, p->context, PGC_S_SESSION, p->role,
									 GUC_ACTION_SET, true, ERROR, false);
	}
}

/* Open the first block of a script; returns its nest level. */
int
commit_block_begin(void)
{
	return NewGUCNestLevel();
}

/*
 * An absorbed COMMIT at `line` of a script run as `what`: what a commit ends
 * ends; an error gets `hint`, the next step.  *level is the block's nest level, replaced by the next block's.
 */
void
commit_absorbed(const char *what, const char *hint, int line, int *level)
{
	commit_checks(what, psprintf("line %d: COMMIT", line), hint);
	end_block_settings(level);
}

/*
 * The end of a migration's script: deferred constraints and ON COMMIT
 * actions.  Its settings end when the caller closes the migration's nest
 * level, which holds every block's.
 */
void
commit_script_end(const char *what, const char *hint)
{
	commit_checks(what, "the end of its script", hint);
}
