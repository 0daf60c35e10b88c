/*-------------------------------------------------------------------------
 *
 * drift.c
 *		New text for an applied migration: drift, a state, not a wall.
 *
 *		Registering other text for an applied (versioned) migration never
 *		replaces what was applied.  The new text is registered and the
 *		migration is recorded as
 *
 *		  changed  its statements differ from the applied ones: migrate_apply(),
 *		           migrate_run() and jobs refuse until it is accepted
 *		           (migrate_repair(version)) or the file is restored;
 *		  edited   only comments or whitespace differ (the token streams are
 *		           equal): shown by migrate_status(), blocking nothing.
 *
 *		The applied text is kept in migrate.migrations.applied_up while the
 *		registered one differs, so a second edit is compared with what ran,
 *		and a restored file is recognised by its checksum.  The checksum stays
 *		the SHA-256 of the normalised text; the token comparison is beside it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"
#include "common/keywords.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/scanner.h"
#include "parser/gram.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "migrate.h"

/* The value of a token that carries one, compared beside its code. */
static bool
token_values_equal(int tok, core_YYSTYPE *a, core_YYSTYPE *b)
{
	switch (tok)
	{
		case IDENT:
		case UIDENT:
		case FCONST:
		case SCONST:
		case USCONST:
		case BCONST:
		case XCONST:
		case Op:
			return strcmp(a->str, b->str) == 0;
		case ICONST:
		case PARAM:
			return a->ival == b->ival;
		default:
			/* a keyword or punctuation: its code says all */
			return true;
	}
}

/*
 * Whether two scripts are the same statements: their token streams, as
 * PostgreSQL's scanner reads them, are equal (comments and whitespace
 * dropped, unquoted names and keywords case-folded).  The scanners run side
 * by side, each token freed after its comparison: memory does not grow with
 * the scripts.
 */
bool
script_tokens_equal(const char *a, const char *b)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext token_cxt = AllocSetContextCreate(caller, "migrate tokens", ALLOCSET_SMALL_SIZES);
	core_yy_extra_type extra_a;
	core_yy_extra_type extra_b;
	core_yyscan_t sa;
	core_yyscan_t sb;
	bool		equal = true;

	sa = scanner_init(script_skip_bom(a), &extra_a, &ScanKeywords, ScanKeywordTokens);
	sb = scanner_init(script_skip_bom(b), &extra_b, &ScanKeywords, ScanKeywordTokens);
	extra_a.standard_conforming_strings = extra_b.standard_conforming_strings = true;
	for (;;)
	{
		core_YYSTYPE la;
		core_YYSTYPE lb;
		int			loc;
		int			ta;
		int			tb;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(token_cxt);
		ta = core_yylex(&la, &loc, sa);
		tb = core_yylex(&lb, &loc, sb);
		MemoryContextSwitchTo(caller);
		if (ta != tb || !token_values_equal(ta, &la, &lb))
		{
			equal = false;
			break;
		}
		MemoryContextReset(token_cxt);
		if (ta == 0)
			break;
	}
	scanner_finish(sa);
	scanner_finish(sb);
	MemoryContextDelete(token_cxt);
	return equal;
}

/* The next line of s (from *p, which moves past it): its length, without CR or LF. */
static int
next_line(const char **p)
{
	const char *start = *p;
	const char *end = start + strcspn(start, "\r\n");

	*p = end;
	if (**p == '\r')
		(*p)++;
	if (**p == '\n')
		(*p)++;
	return end - start;
}

/*
 * The first line (1-based) at which two scripts differ, reading CRLF and CR
 * as LF and ignoring a leading BOM as the checksum does; 0 when equal.
 */
int
first_differing_line(const char *a, const char *b)
{
	const char *pa = script_skip_bom(a);
	const char *pb = script_skip_bom(b);

	for (int line = 1;; line++)
	{
		bool		end_a = (*pa == '\0');
		bool		end_b = (*pb == '\0');
		const char *la = pa;
		const char *lb = pb;
		int			na;
		int			nb;

		if (end_a && end_b)
			return 0;
		if (end_a || end_b)
			return line;
		na = next_line(&pa);
		nb = next_line(&pb);
		if (na != nb || memcmp(la, lb, na) != 0)
			return line;
	}
}

/*
 * What was applied of an applied migration, when the catalog still has it:
 * the registered up script while its checksum is the applied one, else the
 * text kept beside it when it drifted; NULL for drift recorded before 0.5.0
 * kept it.
 */
char *
migration_applied_text(Migration *m)
{
	Datum		args[2];
	char	   *text = NULL;

	args[0] = CStringGetTextDatum(m->key);
	args[1] = CStringGetTextDatum(m->applied_checksum);
	catalog_exec("SELECT coalesce(applied_up, CASE WHEN checksum = $2 THEN up END) "
				 "  FROM migrate.migrations WHERE version_key = $1",
				 2, (Oid[]) {TEXTOID, TEXTOID}, args, NULL);
	if (SPI_processed > 0)
		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_freetuptable(SPI_tuptable);
	return text;
}

/*
 * Judge new text `m` for the applied migration `old`: DRIFT_NONE when it is
 * the applied text again, else changed or edited.  Sets *applied_text (to
 * keep while it drifts) and *line (where it first differs, 0 unknown).
 */
DriftKind
drift_judge(Migration *old, Migration *m, char **applied_text, int *line)
{
	*applied_text = NULL;
	*line = 0;
	if (strcmp(old->applied_checksum, m->checksum) == 0)
		return DRIFT_NONE;
	*applied_text = migration_applied_text(old);
	if (*applied_text == NULL)
		return DRIFT_CHANGED;
	*line = first_differing_line(*applied_text, m->up);
	return script_tokens_equal(*applied_text, m->up) ? DRIFT_EDITED : DRIFT_CHANGED;
}

const char *
drift_name(DriftKind d)
{
	return d == DRIFT_EDITED ? "edited" : d == DRIFT_CHANGED ? "changed" : NULL;
}

/* Where drift starts, for messages: "line 7 of file "x.sql"", "line 7 of its up script". */
static char *
drift_where(Migration *m, int line)
{
	bool		from_file = m->source && strcmp(m->source, "migrate_add") != 0;

	if (line <= 0)
		return from_file ? psprintf("file \"%s\"", m->source) : pstrdup("its up script");
	line = migration_file_line(m, "up", line);
	return from_file ? psprintf("line %d of file \"%s\"", line, m->source)
		: psprintf("line %d of its up script", line);
}

/*
 * Tell the registering session what drift it recorded: a WARNING for
 * changed (apply refuses from now on), a NOTICE for edited.
 */
void
drift_report(Migration *old, Migration *m, DriftKind d, int line)
{
	char	   *where = drift_where(m, line);

	if (d == DRIFT_CHANGED)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is applied, and its text changed: recorded as changed", m->version),
				 errdetail("It first differs at %s. Applied checksum %s, new checksum %s.",
						   where, old->applied_checksum, m->checksum),
				 errhint("migrate_apply(), migrate_run() and jobs refuse while it is changed. Put the change in a new "
						 "migration and restore the file, or, if the edit of the applied script is intended, accept it: "
						 "SELECT * FROM migrate_repair('%s');", m->version)));
	else if (d == DRIFT_EDITED)
		ereport(NOTICE,
				(errmsg("migration %s is applied, and only comments or whitespace of its text changed: recorded as edited",
						m->version),
				 errdetail("It first differs at %s. Applied checksum %s, new checksum %s.",
						   where, old->applied_checksum, m->checksum),
				 errhint("Nothing is refused; migrate_repair('%s') accepts the new checksum.", m->version)));
}

/*
 * Refuse to apply while an applied migration is changed: what ran is not
 * what the catalog holds, so what runs next may build on the wrong thing.
 */
void
refuse_while_changed(Catalog *cat, const char *caller)
{
	StringInfoData versions;
	Migration  *first = NULL;
	int			n = 0;

	initStringInfo(&versions);
	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		if (strcmp(migration_state(cat, m, false), "changed") != 0)
			continue;
		if (first == NULL)
			first = m;
		if (n++ < 10)
			appendStringInfo(&versions, "%s%s", versions.len ? ", " : "", m->version);
	}
	if (first == NULL)
		return;
	if (n > 10)
		appendStringInfo(&versions, " and %d more", n - 10);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s refuses to apply while an applied migration is changed", caller),
			 errdetail("Changed since applied: %s%s%s.", versions.data,
					   first->source && strcmp(first->source, "migrate_add") != 0 ? " (file " : "",
					   first->source && strcmp(first->source, "migrate_add") != 0
					   ? psprintf("\"%s\"%s)", first->source, n > 1 ? ", ..." : "") : ""),
			 errhint("Restore the file and register it again, or accept the new text: SELECT * FROM migrate_repair('%s');",
					 first->version)));
}

/* The detail of a registration result that recorded drift (or its end). */
char *
drift_detail(Migration *old, Migration *m, DriftKind d, int line)
{
	char	   *where = line > 0 ? psprintf(" at line %d", migration_file_line(m, "up", line)) : "";

	if (d == DRIFT_CHANGED)
		return psprintf("applied with checksum %s, changed%s: applying is refused until migrate_repair('%s') "
						"accepts it or the file is restored", old->applied_checksum, where, m->version);
	if (d == DRIFT_EDITED)
		return psprintf("applied with checksum %s; comments or whitespace edited%s (blocks nothing)",
						old->applied_checksum, where);
	return psprintf("the applied text again (checksum %s)", m->checksum);
}
