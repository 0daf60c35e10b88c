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

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "commands/portalcmds.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "migrate.h"

/*
 * Whether the transaction running migrate_apply() (or migrate_rollback())
 * used temporary tables before the call: then ON COMMIT DELETE ROWS tables of the caller may hold
 * rows of this transaction, which PreCommit_on_commit_actions() would empty
 * (not undone by a rollback), so it is not called (commit_call_begin()).
 */
static bool caller_used_temp = false;

void
commit_call_begin(void)
{
	caller_used_temp = (MyXactFlags & XACT_FLAGS_ACCESSEDTEMPNAMESPACE) != 0;
}

void
commit_call_end(void)
{
	caller_used_temp = false;
}

/* Check the deferred constraints now: SET CONSTRAINTS ALL IMMEDIATE. */
static void
fire_deferred(void *arg)
{
	(void) arg;
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not check deferred constraints");
}

/*
 * Deferred constraint triggers of a temporary table that still have events
 * queued: fire them for real (SET CONSTRAINTS <them> IMMEDIATE), then give
 * them their own mode back, so that ON COMMIT DROP or DELETE ROWS can act on
 * the table as after a commit.  Those are the migration's own tables.
 */
static void
retire_temp_events(List *written)
{
	ListCell   *lc;

	foreach(lc, written)
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel;
		StringInfoData deferred;
		StringInfoData immediate;

		/* a table the block dropped again is gone */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ||
			get_rel_persistence(relid) != RELPERSISTENCE_TEMP || !AfterTriggerPendingOnRel(relid))
			continue;
		rel = table_open(relid, AccessShareLock);
		initStringInfo(&deferred);
		initStringInfo(&immediate);
		for (int t = 0; rel->trigdesc && t < rel->trigdesc->numtriggers; t++)
		{
			Trigger    *tg = &rel->trigdesc->triggers[t];
			HeapTuple	con;
			StringInfo	back;
			char	   *name;

			if (!tg->tgdeferrable || !OidIsValid(tg->tgconstraint))
				continue;
			con = SearchSysCache1(CONSTROID, ObjectIdGetDatum(tg->tgconstraint));
			if (!HeapTupleIsValid(con))
				continue;
			name = quote_qualified_identifier(get_namespace_name(((Form_pg_constraint) GETSTRUCT(con))->connamespace),
											  NameStr(((Form_pg_constraint) GETSTRUCT(con))->conname));
			ReleaseSysCache(con);
			back = tg->tginitdeferred ? &deferred : &immediate;
			appendStringInfo(back, "%s%s", back->len ? ", " : "", name);
		}
		table_close(rel, AccessShareLock);
		if (deferred.len > 0)
		{
			SPI_execute(psprintf("SET CONSTRAINTS %s IMMEDIATE", deferred.data), false, 0);
			SPI_execute(psprintf("SET CONSTRAINTS %s DEFERRED", deferred.data), false, 0);
		}
		if (immediate.len > 0)
			SPI_execute(psprintf("SET CONSTRAINTS %s IMMEDIATE", immediate.data), false, 0);
	}
}

/*
 * What a commit does before the end of the transaction, as a commit does
 * it: deferred constraints are checked (when a table written since the last
 * commit point has events queued: the check is rolled back, so the events
 * stay for the real commit, and a later commit point that writes the table
 * checks them again), the cursors the block declared are closed, and ON
 * COMMIT DROP / DELETE ROWS temporary tables are dropped / emptied.
 * `where` says what commits, for an error ("line 12: COMMIT", "the end of
 * its script").
 */
static void
commit_checks(CommitBlock *b, const char *what, const char *where, const char *hint)
{
	ListCell   *lc;
	bool		pending = false;
	ErrorData  *edata = NULL;

	foreach(lc, b->written)
		pending |= AfterTriggerPendingOnRel(lfirst_oid(lc));
	if (pending)
		edata = run_in_subtransaction(fire_deferred, NULL, false);
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

	/* a commit closes the cursors that are not WITH HOLD */
	foreach(lc, b->cursors)
	{
		Portal		portal = GetPortalByName(strVal(lfirst(lc)));

		if (PortalIsValid(portal) && !(portal->cursorOptions & CURSOR_OPT_HOLD))
			PerformPortalClose(strVal(lfirst(lc)));
	}

	if (caller_used_temp)
	{
		/* the caller's ON COMMIT DELETE ROWS tables would be emptied too */
		if (b->on_commit_line > 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot end ON COMMIT temporary tables of this session at a commit migrate absorbs"),
					 errdetail("%s, %s: line %d creates a temporary table ON COMMIT DROP or DELETE ROWS, and "
							   "this transaction used temporary tables before the call: the commit step would "
							   "drop or empty those of the caller too.", what, where, b->on_commit_line),
					 errhint("Call migrate_apply() in a transaction of its own (or CALL migrate_run())."
							 " Nothing of this call was kept.")));
	}
	else
	{
		retire_temp_events(b->written);
		PreCommit_on_commit_actions();
	}
	b->written = NIL;
	b->cursors = NIL;
	b->on_commit_line = 0;
}

/*
 * After statement `st` of the block ran: the tables it wrote (relids), the
 * cursors it declared, whether it made an ON COMMIT temporary table.
 */
void
commit_block_note(CommitBlock *b, ScriptStmt *st, List *written)
{
	Node	   *tree = st->parsetree;
	ListCell   *lc;

	foreach(lc, written)
		b->written = list_append_unique_oid(b->written, lfirst_oid(lc));
	if (IsA(tree, DeclareCursorStmt))
		b->cursors = lappend(b->cursors, makeString(pstrdup(((DeclareCursorStmt *) tree)->portalname)));
	else if (IsA(tree, CreateStmt) && ((CreateStmt *) tree)->oncommit != ONCOMMIT_NOOP &&
			 ((CreateStmt *) tree)->oncommit != ONCOMMIT_PRESERVE_ROWS)
		b->on_commit_line = st->line;
	else if (IsA(tree, CreateTableAsStmt) && ((CreateTableAsStmt *) tree)->into &&
			 ((CreateTableAsStmt *) tree)->into->onCommit != ONCOMMIT_NOOP &&
			 ((CreateTableAsStmt *) tree)->into->onCommit != ONCOMMIT_PRESERVE_ROWS)
		b->on_commit_line = st->line;
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
		/* the next transaction starts with its own characteristics, whatever a SET said */
		if (strncmp(gucs[i]->name, "transaction_", 12) == 0)
			continue;
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

		/* a value no longer valid (its object dropped) stays off, as psql keeps it dangling: a WARNING */
		(void) set_config_option_ext(p->name, p->value, p->context, PGC_S_SESSION, p->role,
									 GUC_ACTION_SET, true, WARNING, false);
	}
}

/* Open the first block of a script. */
void
commit_block_begin(CommitBlock *b)
{
	memset(b, 0, sizeof(CommitBlock));
	b->level = NewGUCNestLevel();
}

/*
 * An absorbed COMMIT at `line` of a script run as `what`: what a commit ends
 * ends; an error gets `hint`, the next step.  The block's nest level is
 * replaced by the next block's.
 */
void
commit_absorbed(CommitBlock *b, const char *what, const char *hint, int line)
{
	commit_checks(b, what, psprintf("line %d: COMMIT", line), hint);
	end_block_settings(&b->level);
}

/*
 * The end of a migration's script: deferred constraints, cursors and ON
 * COMMIT actions.  Its settings end when the caller closes the migration's
 * nest level, which holds every block's.
 */
void
commit_script_end(CommitBlock *b, const char *what, const char *hint)
{
	commit_checks(b, what, "the end of its script", hint);
}
