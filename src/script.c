/*
 * script.c
 *		Migration scripts split into statements by PostgreSQL's own parser,
 *		which knows $$ bodies, comments and E'' strings, and gives each
 *		statement's place in the script for error messages.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/defrem.h"
#include "common/keywords.h"
#include "executor/spi.h"
#include "tcop/dest.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/gram.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "migrate.h"

/*
 * How a script is split.  PostgreSQL's scanner reads the text once, token by
 * token, and a statement ends at a ';' outside parentheses and outside a
 * BEGIN ATOMIC body (where CASE ... END nests); each statement is then
 * parsed on its own by raw_parser().  So the time is linear in the text, an
 * interrupt is seen between any two tokens, and a caller that does not keep
 * the statements needs memory for one statement at a time, not for the
 * parse trees of the whole script.
 *
 * Every script is split with standard_conforming_strings on, whatever the
 * session's setting, so that a script means the same statements for everyone
 * who registers, applies or reverts it; statements run with it on as well
 * (script_exec_stmt), and a statement that turns it off is refused.
 */

/* Newlines in the first len bytes of p. */
static int
count_lines(const char *p, int len)
{
	const char *end = p + len;
	int			n = 0;

	while (p < end && (p = memchr(p, '\n', end - p)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		n++;
		p++;
	}
	return n;
}

/* Line numbers of offsets asked in increasing order: each is counted on from the last. */
typedef struct LineCounter
{
	const char *text;
	int			pos;
	int			line;
} LineCounter;

static int
line_of(LineCounter *lc, int offset)
{
	if (offset < lc->pos)
	{
		lc->pos = 0;
		lc->line = 1;
	}
	lc->line += count_lines(lc->text + lc->pos, offset - lc->pos);
	lc->pos = offset;
	return lc->line;
}

/* Byte offset of the 1-based character position `cursorpos` in text. */
int
char_to_byte_offset(const char *text, int cursorpos)
{
	const char *p = text;

	for (int i = 1; i < cursorpos && *p; i++)
	{
		CHECK_FOR_INTERRUPTS();
		p += pg_mblen(p);
	}
	return p - text;
}

/* Line of a byte offset inside a statement of a script. */
int
script_stmt_line_at(ScriptStmt *st, int offset)
{
	return st->line + count_lines(st->sql, Min(offset, st->len));
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
		CHECK_FOR_INTERRUPTS();
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
		CHECK_FOR_INTERRUPTS();
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
 * Error context callback around the scanner and raw_parser(): keep the
 * syntax error's position for ourselves.  Otherwise, when migrate_add() is
 * itself called through SPI (a DO block, a deploy function, pgTAP), the outer
 * query's callback would turn it into a position in the outer query's text.
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

/* An error the parser may give for a script that is not valid SQL (not a resource error). */
static bool
is_parse_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION ||
		category == ERRCODE_DATA_EXCEPTION ||
		sqlerrcode == ERRCODE_FEATURE_NOT_SUPPORTED;
}

/* Whether a line "\." (the end of COPY data) follows offset `from`. */
static bool
copy_data_end_follows(const char *text, int from)
{
	const char *p = text + from;

	while ((p = strstr(p, "\n\\.")) != NULL)
	{
		p += 3;
		if (*p == '\n' || *p == '\r' || *p == '\0')
			return true;
	}
	return false;
}

/* Refuse a statement that cannot stand in a migration, naming `what` and its line. */
void
script_refuse_stmt(const char *what, int line, const char *reason, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s contains a statement that cannot run in a migration", what),
			 errdetail("Line %d: %s.", line, reason),
			 errhint("%s", hint)));
}

/* What a walk over a script's statements needs. */
typedef struct ScriptWalk
{
	const char *text;
	const char *what;
	ScriptStmtCallback callback;
	void	   *arg;
	MemoryContext caller_cxt;
	MemoryContext stmt_cxt;		/* reset after each statement */
	LineCounter lines;
	const LineMap *map;			/* script lines to file lines, or NULL */
	int			nstmts;
	/* where the parse is, for an error's line */
	volatile int phase;			/* 0 nothing, 1 scanning the script, 2 parsing a statement */
	int			chunk_start;
	int			chunk_line;
	char	   *chunk;
} ScriptWalk;

/* Parse the text from offset start to end (one statement) and hand it to the callback. */
static void
walk_statement(ScriptWalk *w, int start, int end)
{
	List	   *raw;
	ListCell   *lc;
	int			nraw;

	w->chunk_start = start;
	w->chunk_line = line_of(&w->lines, start);
	MemoryContextSwitchTo(w->stmt_cxt);
	w->chunk = pnstrdup(w->text + start, end - start);
	w->phase = 2;
	raw = raw_parser(w->chunk, RAW_PARSE_DEFAULT);
	w->phase = 0;
	nraw = list_length(raw);
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		ScriptStmt	st;
		int			s = rs->stmt_location < 0 ? 0 : rs->stmt_location;
		int			e = rs->stmt_len > 0 ? s + rs->stmt_len : end - start;

		/* the statement's text ends before its ';' */
		if (nraw == 1)
			w->chunk[e] = '\0';

		CHECK_FOR_INTERRUPTS();
		/* the statement's text starts at its first token */
		s = Min(skip_blanks_and_comments(w->chunk, s), e);
		st.parsetree = rs->stmt;
		st.offset = start + s;
		st.len = e - s;
		st.sql = (nraw == 1 && s == 0) ? w->chunk : pnstrdup(w->chunk + s, e - s);
		st.line = line_map_apply(w->map, w->chunk_line + count_lines(w->chunk, s));
		st.index = w->nstmts++;

		/*
		 * COPY FROM STDIN is refused here, before the rows that may follow it
		 * (a pg_dump data block) are read as SQL.
		 */
		if (IsA(st.parsetree, CopyStmt) && ((CopyStmt *) st.parsetree)->is_from &&
			((CopyStmt *) st.parsetree)->filename == NULL)
			script_refuse_stmt(w->what, st.line,
							   "COPY ... FROM STDIN reads rows from the client, and a migration has no client",
							   copy_data_end_follows(w->text, end)
							   ? "This is a pg_dump data block (COPY ... FROM stdin; rows; \\.): dump the data as INSERT "
							   "statements (pg_dump --inserts), or load it with COPY FROM a file on the server."
							   : "Load the rows with INSERT statements, or with COPY FROM a file on the server.");
		MemoryContextSwitchTo(w->caller_cxt);
		w->callback(&st, w->arg);
	}
	MemoryContextReset(w->stmt_cxt);
}

/* Split the script into statements, handing each to the callback; see above. */
static void
walk_script(ScriptWalk *w, MemoryContext token_cxt)
{
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	int			start = -1;		/* offset of the current statement's first token */
	int			parens = 0;
	int			atomic = 0;		/* depth of BEGIN ATOMIC ... END, and CASE ... END in it */
	int			prev = 0;

	/* the scanner's copy of the text goes with the walk's context */
	MemoryContextSwitchTo(MemoryContextGetParent(token_cxt));
	scanner = scanner_init(w->text, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.standard_conforming_strings = true;
	for (;;)
	{
		core_YYSTYPE lval;
		int			loc;
		int			tok;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(token_cxt);
		w->phase = 1;
		tok = core_yylex(&lval, &loc, scanner);
		w->phase = 0;
		MemoryContextSwitchTo(w->caller_cxt);
		if (tok == 0)
			break;
		if (start < 0)
		{
			if (tok == ';')
				continue;		/* an empty statement */
			start = loc;
			parens = atomic = prev = 0;
		}
		if (tok == '(')
			parens++;
		else if (tok == ')' && parens > 0)
			parens--;
		else if (parens == 0 && prev != AS && prev != '.')
		{
			/* "AS end", "t.end": a label, not a keyword that nests */
			if (tok == ATOMIC && prev == BEGIN_P)
				atomic++;
			else if (tok == CASE && atomic > 0)
				atomic++;
			else if (tok == END_P && atomic > 0)
				atomic--;
		}
		if (tok == ';' && parens == 0 && atomic == 0)
		{
			/* with its ';', for the parser's messages ("at or near ";"") */
			walk_statement(w, start, loc + 1);
			MemoryContextReset(token_cxt);
			start = -1;
		}
		prev = tok;
	}
	if (start >= 0)
		walk_statement(w, start, strlen(w->text));
	scanner_finish(scanner);
}

/*
 * Hand each statement of a script to `callback`, in order; see above.  The
 * statement (its parse tree and text) lasts only for the callback, which
 * runs in the caller's memory context.  A syntax error is an ERROR naming `what` (e.g. "the up script of
 * migration 001") and the line, or with `soft` is returned instead (the
 * statements before it were handed over).  Statements refused wherever they
 * stand (COPY FROM STDIN) are always an ERROR.
 */
ScriptSyntaxError *
script_walk(const char *input, const char *what, bool soft,
			ScriptStmtCallback callback, void *arg)
{
	return script_walk_mapped(input, NULL, what, soft, callback, arg);
}

/*
 * A line of a script as a line of the file it came from: `map` holds pairs
 * (first script line of a piece, its line in the file), in script order.
 */
int
line_map_apply(const LineMap *map, int line)
{
	int			k = -1;

	if (map == NULL)
		return line;
	for (int i = 0; i < map->n && map->pairs[2 * i] <= line; i++)
		k = i;
	return k < 0 ? line : map->pairs[2 * k + 1] + (line - map->pairs[2 * k]);
}

/* script_walk(), with lines counted as the lines of the file the script came from. */
ScriptSyntaxError *
script_walk_mapped(const char *input, const LineMap *map, const char *what, bool soft,
				   ScriptStmtCallback callback, void *arg)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext walk_cxt = AllocSetContextCreate(caller_cxt, "migrate script",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext token_cxt = AllocSetContextCreate(walk_cxt, "migrate script tokens",
													ALLOCSET_DEFAULT_SIZES);
	ScriptWalk	w = {0};
	volatile bool saved_scs = standard_conforming_strings;
	volatile int error_pos = 0;
	ErrorContextCallback errcb;
	ScriptSyntaxError *result = NULL;

	w.text = script_skip_bom(input);
	w.what = what;
	w.callback = callback;
	w.arg = arg;
	w.caller_cxt = caller_cxt;
	w.stmt_cxt = AllocSetContextCreate(walk_cxt, "migrate script statement", ALLOCSET_DEFAULT_SIZES);
	w.lines.text = w.text;
	w.lines.line = 1;
	w.map = map;

	errcb.callback = parse_position_callback;
	errcb.arg = (void *) &error_pos;
	errcb.previous = error_context_stack;
	PG_TRY();
	{
		/* raw_parser() reads the setting itself */
		standard_conforming_strings = true;
		error_context_stack = &errcb;
		walk_script(&w, token_cxt);
		error_context_stack = errcb.previous;
		standard_conforming_strings = saved_scs;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			line;

		standard_conforming_strings = saved_scs;
		if (w.phase == 0)
			PG_RE_THROW();
		MemoryContextSwitchTo(caller_cxt);
		edata = CopyErrorData();
		if (!is_parse_error(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		if (w.phase == 2)
			line = w.chunk_line + (error_pos > 0
								   ? count_lines(w.chunk, char_to_byte_offset(w.chunk, error_pos)) : 0);
		else
			line = error_pos > 0 ? line_of(&w.lines, char_to_byte_offset(w.text, error_pos))
				: w.lines.line;
		line = line_map_apply(w.map, line);
		if (!soft)
			ereport(ERROR,
					(errcode(edata->sqlerrcode),
					 errmsg("%s", edata->message),
					 errdetail("In %s, line %d.", what, line),
					 errhint("Correct the script and register it again.")));
		result = palloc(sizeof(ScriptSyntaxError));
		result->sqlerrcode = edata->sqlerrcode;
		result->message = edata->message;
		result->line = line;
	}
	PG_END_TRY();
	MemoryContextDelete(walk_cxt);
	return result;
}

static void
keep_statement(ScriptStmt *st, void *arg)
{
	Script	   *script = arg;

	if (script->nstmts == script->allocated)
	{
		script->allocated *= 2;
		script->spans = repalloc_huge(script->spans, sizeof(ScriptSpan) * script->allocated);
	}
	script->spans[script->nstmts].offset = st->offset;
	script->spans[script->nstmts].len = st->len;
	script->spans[script->nstmts].line = st->line;
	script->nstmts++;
}

/*
 * A script split into statements (see script_walk); a syntax error is an
 * ERROR.  Where each statement is is kept, not its parse tree: see
 * script_stmt().
 */
Script *
script_parse(const char *input, const char *what)
{
	return script_parse_mapped(input, NULL, what);
}

/* script_parse(), with lines counted as the lines of the file the script came from. */
Script *
script_parse_mapped(const char *input, const LineMap *map, const char *what)
{
	Script	   *script = palloc0(sizeof(Script));

	script->text = script_skip_bom(input);
	script->allocated = 16;
	script->spans = palloc(sizeof(ScriptSpan) * script->allocated);
	script->current = -1;
	(void) script_walk_mapped(input, map, what, false, keep_statement, script);
	return script;
}

/*
 * Statement i of a parsed script: its text parsed again (it parsed when the
 * script was split), in a memory context of the script's that is emptied
 * when another statement is asked for.  So a loop over the statements needs
 * memory for one parse tree at a time; what must outlast the statement is
 * copied out by the caller.
 */
ScriptStmt *
script_stmt(Script *script, int i)
{
	ScriptSpan *sp = &script->spans[i];
	ScriptStmt *st = &script->stmt;
	volatile bool saved_scs = standard_conforming_strings;
	MemoryContext old;
	List	   *raw;

	Assert(i >= 0 && i < script->nstmts);
	if (script->current == i)
		return st;
	script->current = -1;
	if (script->stmt_cxt == NULL)
		script->stmt_cxt = AllocSetContextCreate(GetMemoryChunkContext(script), "migrate script statement",
												 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(script->stmt_cxt);
	old = MemoryContextSwitchTo(script->stmt_cxt);
	st->sql = pnstrdup(script->text + sp->offset, sp->len);
	st->len = sp->len;
	st->offset = sp->offset;
	st->line = sp->line;
	st->index = i;
	/* split with standard_conforming_strings on: parsed so again */
	PG_TRY();
	{
		standard_conforming_strings = true;
		raw = raw_parser(st->sql, RAW_PARSE_DEFAULT);
	}
	PG_FINALLY();
	{
		standard_conforming_strings = saved_scs;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	if (list_length(raw) != 1)
		elog(ERROR, "statement %d of a script parsed into %d statements", i + 1, list_length(raw));
	st->parsetree = linitial_node(RawStmt, raw)->stmt;
	script->current = i;
	return st;
}

static void
count_statement(ScriptStmt *st, void *arg)
{
	(*(int *) arg)++;
}

/* How many statements a script has; a syntax error is an ERROR. */
int
script_count(const char *input, const char *what)
{
	int			n = 0;

	(void) script_walk(input, what, false, count_statement, &n);
	return n;
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
 * The tables a statement locks by name: those it writes
 * (stmt_written_relations()), and those that DDL renames, drops, locks,
 * triggers on, indexes, or references from a new foreign key.  For naming
 * who holds a lock it waited for; a table reached only inside a query or a
 * function is not listed.
 */
List *
stmt_locked_relations(Node *parsetree)
{
	List	   *result = stmt_written_relations(parsetree);
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
			{
				AlterTableCmd *cmd = lfirst(lc);
				List	   *constraints = NIL;
				ListCell   *lc2;

				if (cmd->def && IsA(cmd->def, Constraint))
					constraints = list_make1(cmd->def);
				else if (cmd->def && IsA(cmd->def, ColumnDef))
					constraints = ((ColumnDef *) cmd->def)->constraints;
				foreach(lc2, constraints)
					if (((Constraint *) lfirst(lc2))->contype == CONSTR_FOREIGN &&
						((Constraint *) lfirst(lc2))->pktable)
						result = lappend(result, ((Constraint *) lfirst(lc2))->pktable);
			}
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->relation)
				result = lappend(result, ((RenameStmt *) parsetree)->relation);
			break;
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) parsetree;

				if (d->removeType == OBJECT_TABLE || d->removeType == OBJECT_VIEW ||
					d->removeType == OBJECT_MATVIEW || d->removeType == OBJECT_INDEX ||
					d->removeType == OBJECT_SEQUENCE || d->removeType == OBJECT_FOREIGN_TABLE)
					foreach(lc, d->objects)
						result = lappend(result, makeRangeVarFromNameList(lfirst(lc)));
				break;
			}
		case T_LockStmt:
			result = list_concat(result, list_copy(((LockStmt *) parsetree)->relations));
			break;
		case T_CreateTrigStmt:
			result = lappend(result, ((CreateTrigStmt *) parsetree)->relation);
			break;
		case T_CreatePolicyStmt:
			result = lappend(result, ((CreatePolicyStmt *) parsetree)->table);
			break;
		case T_ReindexStmt:
			if (((ReindexStmt *) parsetree)->relation)
				result = lappend(result, ((ReindexStmt *) parsetree)->relation);
			break;
		case T_ClusterStmt:
			if (((ClusterStmt *) parsetree)->relation)
				result = lappend(result, ((ClusterStmt *) parsetree)->relation);
			break;
		case T_VacuumStmt:
			foreach(lc, ((VacuumStmt *) parsetree)->rels)
				if (((VacuumRelation *) lfirst(lc))->relation)
					result = lappend(result, ((VacuumRelation *) lfirst(lc))->relation);
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

/* n, or the expression a cast is applied to. */
static Node *
uncast(Node *n)
{
	while (n && IsA(n, TypeCast))
		n = ((TypeCast *) n)->arg;
	return n;
}

/* A string constant naming standard_conforming_strings. */
static bool
names_scs(Node *n)
{
	n = uncast(n);
	return n && IsA(n, A_Const) && !((A_Const *) n)->isnull &&
		IsA(&((A_Const *) n)->val, String) &&
		pg_strcasecmp(strVal(&((A_Const *) n)->val), "standard_conforming_strings") == 0;
}

/* A constant that a boolean setting reads as true (on, true, yes, 1). */
static bool
is_true_const(Node *n)
{
	A_Const    *c;
	bool		value;

	n = uncast(n);
	if (n == NULL || !IsA(n, A_Const) || ((A_Const *) n)->isnull)
		return false;
	c = (A_Const *) n;
	if (IsA(&c->val, String))
		return parse_bool(strVal(&c->val), &value) && value;
	if (IsA(&c->val, Integer))
		return intVal(&c->val) == 1;
	if (IsA(&c->val, Boolean))
		return boolVal(&c->val);
	return false;
}

/* A SET (or RESET) that may leave standard_conforming_strings off. */
static bool
variable_set_scs_off(VariableSetStmt *vs)
{
	if (vs == NULL || vs->name == NULL ||
		pg_strcasecmp(vs->name, "standard_conforming_strings") != 0)
		return false;
	/* RESET and SET ... TO DEFAULT give the default of the session, which may be off */
	return vs->kind != VAR_SET_VALUE || list_length(vs->args) != 1 || !is_true_const(linitial(vs->args));
}

/*
 * Calls of set_config('standard_conforming_strings', <not on>, ...), and
 * with *context true (an UPDATE of pg_settings), any mention of the setting.
 */
static bool
scs_off_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall))
	{
		FuncCall   *fc = (FuncCall *) node;

		if (strcmp(strVal(llast(fc->funcname)), "set_config") == 0 && list_length(fc->args) >= 2 &&
			names_scs(linitial(fc->args)) && !is_true_const(lsecond(fc->args)))
			return true;
	}
	if (*(bool *) context && names_scs(node))
		return true;
	return raw_expression_tree_walker(node, scs_off_walker, context);
}

/* How a statement turns standard_conforming_strings off, as far as its parse tree shows, or NULL. */
static const char *
stmt_turns_scs_off(Node *parsetree)
{
	bool		pg_settings = false;

	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:
			if (!variable_set_scs_off((VariableSetStmt *) parsetree))
				return NULL;
			switch (((VariableSetStmt *) parsetree)->kind)
			{
				case VAR_SET_VALUE:
					return "SET standard_conforming_strings to a value other than on";
				case VAR_SET_DEFAULT:
					return "SET standard_conforming_strings TO DEFAULT";
				case VAR_RESET:
				case VAR_RESET_ALL:
					return "RESET standard_conforming_strings";
				default:
					return "SET standard_conforming_strings";
			}
		case T_AlterRoleSetStmt:
			return variable_set_scs_off(((AlterRoleSetStmt *) parsetree)->setstmt)
				? "ALTER ROLE ... SET standard_conforming_strings" : NULL;
		case T_AlterDatabaseSetStmt:
			return variable_set_scs_off(((AlterDatabaseSetStmt *) parsetree)->setstmt)
				? "ALTER DATABASE ... SET standard_conforming_strings" : NULL;
		case T_AlterSystemStmt:
			return variable_set_scs_off(((AlterSystemStmt *) parsetree)->setstmt)
				? "ALTER SYSTEM SET standard_conforming_strings" : NULL;
		case T_UpdateStmt:
			pg_settings = strcmp(((UpdateStmt *) parsetree)->relation->relname, "pg_settings") == 0;
			return scs_off_walker(parsetree, &pg_settings)
				? (pg_settings ? "UPDATE pg_settings" : "set_config('standard_conforming_strings', ...)") : NULL;
		case T_SelectStmt:
		case T_InsertStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			return scs_off_walker(parsetree, &pg_settings)
				? "set_config('standard_conforming_strings', ...)" : NULL;
		case T_CallStmt:
			return scs_off_walker((Node *) ((CallStmt *) parsetree)->funccall, &pg_settings)
				? "set_config('standard_conforming_strings', ...)" : NULL;
		case T_ExplainStmt:
			return stmt_turns_scs_off(((ExplainStmt *) parsetree)->query);
		case T_CreateTableAsStmt:
			return stmt_turns_scs_off(((CreateTableAsStmt *) parsetree)->query);
		default:
			return NULL;
	}
}

/*
 * Why a statement may not stand in a migration script, or NULL; *hint (when
 * given) says what to do instead.
 */
const char *
stmt_forbidden_reason(Node *parsetree, const char **hint)
{
	const char *what;
	const char *dummy;

	if (hint == NULL)
		hint = &dummy;
	if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->filename == NULL)
	{
		if (((CopyStmt *) parsetree)->is_from)
		{
			*hint = "Load the rows with INSERT statements, or with COPY FROM a file on the server.";
			return "COPY ... FROM STDIN reads rows from the client, and a migration has no client";
		}
		*hint = "Write the rows to a file on the server (COPY ... TO 'file'), or select them in a query.";
		return "COPY ... TO STDOUT writes rows to the client, and a migration has no client";
	}
	if ((what = stmt_turns_scs_off(parsetree)) != NULL)
	{
		*hint = "Remove the statement, and write string literals as standard_conforming_strings = on reads them: "
			"E'...' for backslash escapes, '' for a quote.";
		return psprintf("%s would change how the statements after it are read, but migrate splits and runs "
						"every script with standard_conforming_strings on", what);
	}
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
		case TRANS_STMT_ROLLBACK_PREPARED:
			what = "ROLLBACK PREPARED";
			break;
		default:
			what = "A transaction statement";
			break;
	}
	*hint = "Remove it: the whole migration commits or rolls back as one.";
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

/* ---- uses of a string constant ---- */

typedef struct ValueUse
{
	const char *value;
	const char *quoted;			/* as a literal in SQL text */
	bool		found;
} ValueUse;

static bool
const_walker(Node *node, void *arg)
{
	ValueUse   *u = arg;

	if (node == NULL || u->found)
		return u->found;
	if (IsA(node, A_Const))
	{
		A_Const    *c = (A_Const *) node;

		if (!c->isnull && IsA(&c->val, String) && strcmp(strVal(&c->val), u->value) == 0)
			u->found = true;
		return u->found;
	}
	return raw_expression_tree_walker(node, const_walker, arg);
}

static void
use_in_statement(ScriptStmt *st, void *arg)
{
	ValueUse   *u = arg;
	Node	   *tree = st->parsetree;

	if (u->found)
		return;
	/* in queries, the parse tree's constants; in DDL (a DEFAULT, a CHECK), the literal in its text */
	if (IsA(tree, SelectStmt) || IsA(tree, InsertStmt) || IsA(tree, UpdateStmt) ||
		IsA(tree, DeleteStmt) || IsA(tree, MergeStmt))
		(void) const_walker(tree, u);
	else if (strstr(st->sql, u->quoted) != NULL)
		u->found = true;
}

/* Whether a statement uses a string constant (see script_uses_value()). */
bool
stmt_uses_value(ScriptStmt *st, const char *value)
{
	ValueUse	u = {value, quote_literal_cstr(value), false};

	use_in_statement(st, &u);
	return u.found;
}

/*
 * Whether a script uses a string constant (an enum value a migration before
 * it adds): any statement may, so a match is not proof of a use, but a
 * statement that uses it as a constant always matches.
 */
bool
script_uses_value(const char *script, const char *what, const char *value)
{
	ValueUse	u = {value, quote_literal_cstr(value), false};

	(void) script_walk(script, what, true, use_in_statement, &u);
	return u.found;
}

/*
 * SPI_execute(), or with `discard` the same with the rows a statement returns
 * sent nowhere (pg_cron's DestNone): a SELECT of millions of rows in a
 * migration costs no memory.
 */
static int
exec_sql(const char *sql, bool read_only, bool discard)
{
	SPIExecuteOptions options = {0};

	if (!discard)
		return SPI_execute(sql, read_only, 0);
	options.read_only = read_only;
	options.dest = CreateDestReceiver(DestNone);
	return SPI_execute_extended(sql, &options);
}

/*
 * Run statement i of a script with SPI as the current user.  An error keeps
 * its SQLSTATE and message and gains a DETAIL naming `what` (the migration),
 * the statement number and its line, and `hint`, the next step.
 * With `discard`, the rows it returns are sent nowhere.  Returns the SPI
 * result code; the caller frees SPI_tuptable.
 */
int
script_exec_stmt(Script *script, int i, const char *what, const char *hint, bool read_only, bool discard)
{
	MemoryContext cxt = CurrentMemoryContext;
	ScriptStmt *st = script_stmt(script, i);
	const char *reason = stmt_forbidden_reason(st->parsetree, NULL);
	const char *absorbed = stmt_absorbed(st->parsetree);
	int			rc = 0;

	if (absorbed)
	{
		if (strcmp(absorbed, "COMMIT") == 0)
			ereport(NOTICE,
					(errmsg("%s, line %d: COMMIT absorbed: what a commit ends ends here (local settings, "
							"deferred constraints, ON COMMIT temporary tables); the migration goes on in its "
							"one transaction", what, st->line)));
		else
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
		/*
		 * The statement was split with standard_conforming_strings on; it
		 * runs so too, or SPI would read it as other statements.  Its own
		 * settings outlast it, as function SET clauses do.
		 */
		if (!standard_conforming_strings)
		{
			int			guc_level = NewGUCNestLevel();

			(void) set_config_option("standard_conforming_strings", "on", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			rc = exec_sql(st->sql, read_only, discard);
			AtEOXact_GUC(true, guc_level);
		}
		else
			rc = exec_sql(st->sql, read_only, discard);
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
			line = script_stmt_line_at(st, char_to_byte_offset(st->sql, edata->internalpos));
		edata->detail = psprintf("%s, statement %d of %d, line %d.%s%s",
								 what, i + 1, script->nstmts, line,
								 edata->detail ? " " : "",
								 edata->detail ? edata->detail : "");
		edata->hint = psprintf("%s%s%s%s",
							   edata->hint ? edata->hint : "",
							   edata->hint ? " " : "",
							   edata->sqlerrcode == ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE
							   ? "An enum value added earlier in this transaction cannot be used before it commits: "
							   "if another migration adds it, use CALL migrate_run() or a job (SELECT migrate_start()), "
							   "which commit after each migration; if this one does, move the use into a later "
							   "migration. " : "",
							   hint);
		ReThrowError(edata);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("statement %d cannot run in a migration: %s", i + 1,
						rc == SPI_ERROR_COPY ? "COPY to or from the client" :
						rc == SPI_ERROR_TRANSACTION ? "transaction control" :
						"a statement that SPI does not run"),
				 errdetail("%s, statement %d of %d, line %d.", what, i + 1, script->nstmts, st->line),
				 errhint("Remove the statement and register the migration again.")));
	return rc;
}
