/*
 * script.c
 *		Migration scripts split into statements by PostgreSQL's own parser,
 *		which knows $$ bodies, comments and E'' strings, and gives each
 *		statement's place in the script for error messages.
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"

#include "migrate.h"

/* 1-based line of a byte offset in text. */
int
script_line_at(const char *text, int offset)
{
	int			line = 1;

	for (int i = 0; i < offset && text[i]; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

/* Byte offset of the 1-based character position `cursorpos` in text. */
static int
char_to_byte_offset(const char *text, int cursorpos)
{
	const char *p = text;

	for (int i = 1; i < cursorpos && *p; i++)
		p += pg_mblen(p);
	return p - text;
}

/*
 * Past the block comment starting at p (SQL block comments nest), counting
 * its newlines into *lines when given.
 */
const char *
skip_block_comment(const char *p, int *lines)
{
	int			depth = 1;

	p += 2;
	while (*p && depth > 0)
	{
		if (p[0] == '/' && p[1] == '*')
			depth++, p += 2;
		else if (p[0] == '*' && p[1] == '/')
			depth--, p += 2;
		else if (*p++ == '\n' && lines)
			(*lines)++;
	}
	return p;
}

/* Offset of the first token at or after `offset`: skips blanks and comments. */
static int
skip_blanks_and_comments(const char *text, int offset)
{
	const char *p = text + offset;

	for (;;)
	{
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
			p++;
		if (p[0] == '-' && p[1] == '-')
		{
			while (*p && *p != '\n')
				p++;
		}
		else if (p[0] == '/' && p[1] == '*')
			p = skip_block_comment(p, NULL);
		else
			return p - text;
	}
}

/*
 * Error context callback around raw_parser(): keep the syntax error's position
 * for ourselves.  Otherwise, when migrate_add() is itself called through SPI
 * (a DO block, a deploy function, pgTAP), the outer query's callback would
 * turn it into a position in the outer query's text.
 */
static void
parse_position_callback(void *arg)
{
	int		   *pos = arg;
	int			cursorpos = geterrposition();

	if (cursorpos > 0)
	{
		*pos = cursorpos;
		errposition(0);
	}
}

/* The text after a leading UTF-8 byte order mark, which is not part of a script. */
const char *
script_skip_bom(const char *text)
{
	if ((unsigned char) text[0] == 0xEF && (unsigned char) text[1] == 0xBB &&
		(unsigned char) text[2] == 0xBF)
		return text + 3;
	return text;
}

/* raw_parser(), with a syntax error rethrown naming `what` and the line. */
static List *
parse_with_line(const char *text, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *raw = NIL;
	ErrorContextCallback errcb;
	int			error_pos = 0;

	errcb.callback = parse_position_callback;
	errcb.arg = &error_pos;
	errcb.previous = error_context_stack;
	PG_TRY();
	{
		error_context_stack = &errcb;
		raw = raw_parser(text, RAW_PARSE_DEFAULT);
		error_context_stack = errcb.previous;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			line = 0;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (error_pos > 0)
			line = script_line_at(text, char_to_byte_offset(text, error_pos));
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("%s", edata->message),
				 line > 0 ? errdetail("In %s, line %d.", what, line)
				 : errdetail("In %s.", what),
				 errhint("Correct the script and register it again.")));
	}
	PG_END_TRY();
	return raw;
}

Script *
script_parse(const char *input, const char *what)
{
	const char *text = script_skip_bom(input);
	Script	   *script = palloc0(sizeof(Script));
	List	   *raw = parse_with_line(text, what);
	ListCell   *lc;
	int			i = 0;

	script->text = text;
	script->nstmts = list_length(raw);
	script->stmts = palloc0(sizeof(ScriptStmt) * Max(script->nstmts, 1));
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		ScriptStmt *st = &script->stmts[i++];
		int			start = rs->stmt_location < 0 ? 0 : rs->stmt_location;
		int			end = rs->stmt_len > 0 ? start + rs->stmt_len : (int) strlen(text);

		/* the statement's text starts at its first token */
		start = Min(skip_blanks_and_comments(text, start), end);
		st->parsetree = rs->stmt;
		st->offset = start;
		st->sql = pnstrdup(text + start, end - start);
		st->line = script_line_at(text, start);
	}
	return script;
}

/* Append the DML targets of a WITH clause's data-modifying CTEs. */
static List *
with_written_relations(List *result, WithClause *with)
{
	ListCell   *lc;

	if (with == NULL)
		return result;
	foreach(lc, with->ctes)
	{
		CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

		result = list_concat(result, stmt_written_relations(cte->ctequery));
	}
	return result;
}

/*
 * The relations a statement writes or alters, as the parser saw them.  Writes
 * hidden in functions or DO blocks are not visible here; the "all" setting of
 * migrate.verify_constraints covers those.
 */
List *
stmt_written_relations(Node *parsetree)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (parsetree == NULL)
		return NIL;

	switch (nodeTag(parsetree))
	{
		case T_InsertStmt:
			{
				InsertStmt *s = (InsertStmt *) parsetree;

				result = lappend(result, s->relation);
				result = with_written_relations(result, s->withClause);
				break;
			}
		case T_UpdateStmt:
			{
				UpdateStmt *s = (UpdateStmt *) parsetree;

				result = lappend(result, s->relation);
				result = with_written_relations(result, s->withClause);
				break;
			}
		case T_DeleteStmt:
			{
				DeleteStmt *s = (DeleteStmt *) parsetree;

				result = lappend(result, s->relation);
				result = with_written_relations(result, s->withClause);
				break;
			}
		case T_MergeStmt:
			{
				MergeStmt  *s = (MergeStmt *) parsetree;

				result = lappend(result, s->relation);
				result = with_written_relations(result, s->withClause);
				break;
			}
		case T_SelectStmt:
			{
				SelectStmt *s = (SelectStmt *) parsetree;

				if (s->intoClause)
					result = lappend(result, s->intoClause->rel);
				result = with_written_relations(result, s->withClause);
				break;
			}
		case T_CopyStmt:
			{
				CopyStmt   *s = (CopyStmt *) parsetree;

				if (s->is_from && s->relation)
					result = lappend(result, s->relation);
				break;
			}
		case T_CreateStmt:
			{
				CreateStmt *s = (CreateStmt *) parsetree;

				result = lappend(result, s->relation);
				/* CREATE TABLE ... PARTITION OF p: p's constraints now cover it */
				if (s->partbound)
					result = list_concat(result, list_copy(s->inhRelations));
				break;
			}
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *s = (CreateTableAsStmt *) parsetree;

				if (s->objtype == OBJECT_TABLE)
					result = lappend(result, s->into->rel);
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *s = (AlterTableStmt *) parsetree;

				if (s->objtype != OBJECT_TABLE && s->objtype != OBJECT_FOREIGN_TABLE)
					break;
				result = lappend(result, s->relation);
				foreach(lc, s->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if ((cmd->subtype == AT_AttachPartition) && cmd->def)
						result = lappend(result, ((PartitionCmd *) cmd->def)->name);
				}
				break;
			}
		case T_IndexStmt:
			result = lappend(result, ((IndexStmt *) parsetree)->relation);
			break;
		case T_TruncateStmt:
			result = list_copy(((TruncateStmt *) parsetree)->relations);
			break;
		default:
			break;
	}
	return result;
}

/*
 * BEGIN, START TRANSACTION, COMMIT and END at top level: files written for
 * psql often wrap themselves in a transaction.  A migration already runs
 * atomically, so these are absorbed: skipped, with a notice.
 */
const char *
stmt_absorbed(Node *parsetree)
{
	TransactionStmt *ts;

	if (!IsA(parsetree, TransactionStmt))
		return NULL;
	ts = (TransactionStmt *) parsetree;
	if (ts->kind == TRANS_STMT_BEGIN)
		return "BEGIN";
	if (ts->kind == TRANS_STMT_START)
		return "START TRANSACTION";
	if (ts->kind == TRANS_STMT_COMMIT)
		return "COMMIT";
	return NULL;
}

/* Why a statement may not stand in a migration script, or NULL. */
const char *
stmt_forbidden_reason(Node *parsetree)
{
	const char *what;

	if (!IsA(parsetree, TransactionStmt) || stmt_absorbed(parsetree) != NULL)
		return NULL;
	switch (((TransactionStmt *) parsetree)->kind)
	{
		case TRANS_STMT_ROLLBACK:
			what = "ROLLBACK";
			break;
		case TRANS_STMT_SAVEPOINT:
			what = "SAVEPOINT";
			break;
		case TRANS_STMT_RELEASE:
			what = "RELEASE";
			break;
		case TRANS_STMT_ROLLBACK_TO:
			what = "ROLLBACK TO";
			break;
		case TRANS_STMT_PREPARE:
			what = "PREPARE TRANSACTION";
			break;
		case TRANS_STMT_COMMIT_PREPARED:
			what = "COMMIT PREPARED";
			break;
		default:
			what = "ROLLBACK PREPARED";
			break;
	}
	return psprintf("%s cannot stand in a migration, whose transaction migrate controls "
					"(BEGIN and COMMIT are skipped)", what);
}

static bool
has_true_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, name) == 0)
			return opt->arg == NULL || defGetBoolean(opt);
	}
	return false;
}

/*
 * The statement, if it cannot run inside a transaction block (so the
 * migration holding it cannot be transactional), or NULL.
 */
const char *
stmt_non_transactional(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_IndexStmt:
			return ((IndexStmt *) parsetree)->concurrent ? "CREATE INDEX CONCURRENTLY" : NULL;
		case T_DropStmt:
			return ((DropStmt *) parsetree)->concurrent ? "DROP INDEX CONCURRENTLY" : NULL;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) parsetree;

				if (has_true_option(r->params, "concurrently"))
					return "REINDEX CONCURRENTLY";
				if (r->kind == REINDEX_OBJECT_SCHEMA)
					return "REINDEX SCHEMA";
				if (r->kind == REINDEX_OBJECT_SYSTEM)
					return "REINDEX SYSTEM";
				if (r->kind == REINDEX_OBJECT_DATABASE)
					return "REINDEX DATABASE";
				return NULL;
			}
		case T_VacuumStmt:
			return ((VacuumStmt *) parsetree)->is_vacuumcmd ? "VACUUM" : NULL;
		case T_ClusterStmt:
			return ((ClusterStmt *) parsetree)->relation == NULL ? "CLUSTER without a table" : NULL;
		case T_CreatedbStmt:
			return "CREATE DATABASE";
		case T_DropdbStmt:
			return "DROP DATABASE";
		case T_AlterDatabaseStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
					if (strcmp(lfirst_node(DefElem, lc)->defname, "tablespace") == 0)
						return "ALTER DATABASE ... SET TABLESPACE";
				return NULL;
			}
		case T_CreateTableSpaceStmt:
			return "CREATE TABLESPACE";
		case T_DropTableSpaceStmt:
			return "DROP TABLESPACE";
		case T_AlterSystemStmt:
			return "ALTER SYSTEM";
		case T_AlterTableStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (cmd->subtype == AT_DetachPartition && cmd->def &&
						((PartitionCmd *) cmd->def)->concurrent)
						return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY";
				}
				return NULL;
			}
		case T_DiscardStmt:
			return ((DiscardStmt *) parsetree)->target == DISCARD_ALL ? "DISCARD ALL" : NULL;
		default:
			return NULL;
	}
}

/* The value an ALTER TYPE ... ADD VALUE adds, or NULL. */
const char *
stmt_new_enum_value(Node *parsetree)
{
	if (IsA(parsetree, AlterEnumStmt) && ((AlterEnumStmt *) parsetree)->oldVal == NULL)
		return ((AlterEnumStmt *) parsetree)->newVal;
	return NULL;
}

/*
 * Run statement i of a script with SPI as the current user.  An error keeps
 * its SQLSTATE and message and gains a DETAIL naming `what` (the migration),
 * the statement number and its line, and `hint`, the next step.
 * Returns the SPI result code; the caller frees SPI_tuptable.
 */
int
script_exec_stmt(Script *script, int i, const char *what, const char *hint, bool read_only)
{
	MemoryContext cxt = CurrentMemoryContext;
	ScriptStmt *st = &script->stmts[i];
	const char *reason = stmt_forbidden_reason(st->parsetree);
	const char *absorbed = stmt_absorbed(st->parsetree);
	int			rc = 0;

	if (absorbed)
	{
		ereport(NOTICE,
				(errmsg("%s, line %d: %s skipped: the migration already runs in one transaction",
						what, st->line, absorbed)));
		SPI_tuptable = NULL;
		SPI_processed = 0;
		return SPI_OK_UTILITY;
	}

	if (reason)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement %d cannot run in a migration", i + 1),
				 errdetail("%s, statement %d of %d, line %d: %s.", what, i + 1, script->nstmts,
						   st->line, reason),
				 errhint("Remove the statement and register the migration again.")));

	PG_TRY();
	{
		rc = SPI_execute(st->sql, read_only, 0);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			line = st->line;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		/* a position inside the statement gives the exact line */
		if (edata->internalpos > 0 && edata->internalquery &&
			strcmp(edata->internalquery, st->sql) == 0)
			line = script_line_at(script->text,
								  st->offset + char_to_byte_offset(st->sql, edata->internalpos));
		edata->detail = psprintf("%s, statement %d of %d, line %d.%s%s",
								 what, i + 1, script->nstmts, line,
								 edata->detail ? " " : "",
								 edata->detail ? edata->detail : "");
		edata->hint = psprintf("%s%s%s%s",
							   edata->hint ? edata->hint : "",
							   edata->hint ? " " : "",
							   edata->sqlerrcode == ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE
							   ? "An enum value added earlier in this transaction cannot be used before it commits: "
							   "apply up to the migration that adds it first, or use CALL migrate_run(), which "
							   "commits after each migration. " : "",
							   hint);
		ReThrowError(edata);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement %d cannot run in a migration: %s",
						i + 1, SPI_result_code_string(rc)),
				 errdetail("%s, statement %d of %d, line %d.", what, i + 1, script->nstmts, st->line),
				 errhint("Remove the statement and register the migration again.")));
	return rc;
}
