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

/*
 * The next line (from *p, which moves past it and its newline): its length
 * without a trailing CR.  *newline says whether a newline ended it.  Lines
 * end at LF only, as the lines of messages count them (script.c).
 */
static int
next_line(const char **p, bool *newline)
{
	const char *start = *p;
	const char *end = strchr(start, '\n');
	int			len;

	if (end == NULL)
		end = start + strlen(start);
	len = end - start;
	*newline = (*end == '\n');
	*p = *newline ? end + 1 : end;
	if (len > 0 && start[len - 1] == '\r')
		len--;
	return len;
}

/*
 * The first line (1-based) at which two scripts differ, a CRLF read as LF
 * and a leading BOM ignored as the checksum does; 0 when equal.  A newline
 * at the end of one only is a difference on the line after the last.
 */
int
first_differing_line(const char *a, const char *b)
{
	const char *pa = script_skip_bom(a);
	const char *pb = script_skip_bom(b);

	for (int line = 1;; line++)
	{
		const char *la = pa;
		const char *lb = pb;
		bool		nla;
		bool		nlb;
		int			na;
		int			nb;

		if (*pa == '\0' && *pb == '\0')
			return 0;
		if (*pa == '\0' || *pb == '\0')
			return line;
		na = next_line(&pa, &nla);
		nb = next_line(&pb, &nlb);
		if (na != nb || memcmp(la, lb, na) != 0)
			return line;
		if (nla != nlb)
			return line + 1;
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
	return applied_text_kept(m, NULL);
}

/* The same, and whether it is the text kept beside a drifted one (*kept). */
char *
applied_text_kept(Migration *m, bool *kept)
{
	Datum		args[2];
	char	   *applied = NULL;

	args[0] = CStringGetTextDatum(m->key);
	args[1] = CStringGetTextDatum(m->applied_checksum);
	catalog_exec("SELECT coalesce(applied_up, CASE WHEN checksum = $2 THEN up END), applied_up IS NOT NULL "
				 "  FROM migrate.migrations WHERE version_key = $1",
				 2, (Oid[]) {TEXTOID, TEXTOID}, args, NULL);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			applied = TextDatumGetCString(d);	/* one copy, from the detoasted value */
		if (kept)
			*kept = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return applied;
}

/*
 * Judge new text `m` for the applied migration `old`: DRIFT_NONE when it is
 * the applied text again, else changed or edited.  Sets *applied_text to the
 * applied text when it is to be kept from now on (NULL when the catalog
 * keeps it already) and *line (where it first differs, 0 unknown).
 */
DriftKind
drift_judge(Migration *old, Migration *m, char **applied_text, int *line)
{
	bool		kept = false;
	char	   *text;
	DriftKind	d;

	*applied_text = NULL;
	*line = 0;
	if (strcmp(old->applied_checksum, m->checksum) == 0)
		return DRIFT_NONE;
	text = applied_text_kept(old, &kept);
	if (text == NULL)
		return DRIFT_CHANGED;
	*line = first_differing_line(text, m->up);
	d = script_tokens_equal(text, m->up) ? DRIFT_EDITED : DRIFT_CHANGED;
	/* a big script: one copy less when the catalog keeps it already */
	if (kept)
		pfree(text);
	else
		*applied_text = text;
	return d;
}

const char *
drift_name(DriftKind d)
{
	return d == DRIFT_EDITED ? "edited" : d == DRIFT_CHANGED ? "changed" : NULL;
}

/* Where drift starts, for messages: "It first differs at line 7 of file "x.sql". ", or "". */
static char *
drift_where(Migration *m, int line)
{
	if (line <= 0)
		return "";
	line = migration_file_line(m, "up", line);
	return migration_from_file(m) ? psprintf("It first differs at line %d of file \"%s\". ", line, m->source)
		: psprintf("It first differs at line %d of its up script. ", line);
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
				 errdetail("%sApplied checksum %s, new checksum %s.",
						   where, old->applied_checksum, m->checksum),
				 errhint("migrate_apply(), migrate_run() and jobs refuse while it is changed. Put the change in a new "
						 "migration and restore the file, or, if the edit of the applied script is intended, accept it: "
						 "SELECT * FROM migrate_repair('%s');", m->version)));
	else if (d == DRIFT_EDITED)
		ereport(NOTICE,
				(errmsg("migration %s is applied, and only comments or whitespace of its text changed: recorded as edited",
						m->version),
				 errdetail("%sApplied checksum %s, new checksum %s.",
						   where, old->applied_checksum, m->checksum),
				 errhint("Nothing is refused; migrate_repair('%s') accepts the new checksum.", m->version)));
}

/* Applied, and its registered statements are not the applied ones. */
bool
migration_is_changed(Migration *m)
{
	return m->applied && !m->repeatable && strcmp(m->applied_checksum, m->checksum) != 0 &&
		!str_equal(m->drift, "edited");
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

		if (!migration_is_changed(m))
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
					   migration_from_file(first) ? " (file " : "",
					   migration_from_file(first)
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

/*
 * Refuse to roll back a changed migration: its registered down script
 * belongs to text that never ran, and would not undo what did.  An edited
 * one (the same statements) rolls back as it is.
 */
void
refuse_changed_rollback(List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;

		if (!migration_is_changed(m))
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot roll back migration %s: it is changed", m->version),
				 errdetail("Its registered up script is not the one applied (applied checksum %s, registered %s), "
						   "so its registered down script would not undo what ran.",
						   m->applied_checksum, m->checksum),
				 errhint("Restore the file and register it again (its down script with it), or accept the new "
						 "text first with SELECT * FROM migrate_repair('%s'); then roll back.", m->version)));
	}
}

/*
 * Whether an applied migration labelled edited is what the label says: the
 * kept applied text and the registered one have the checksums recorded for
 * them and are the same statements.  The label alone is not trusted (a
 * catalog edited by hand could set it): migrate_verify() and
 * migrate_validate() prove it again.
 */
bool
drift_edited_proven(const char *key, const char *applied_checksum, const char *checksum)
{
	Datum		arg = CStringGetTextDatum(key);
	bool		proven = false;

	catalog_exec("SELECT applied_up, up FROM migrate.migrations WHERE version_key = $1 AND drift = 'edited'",
				 1, (Oid[]) {TEXTOID}, &arg, NULL);
	if (SPI_processed > 0)
	{
		char	   *applied_up = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *up = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		proven = applied_up && up && strcmp(script_checksum(applied_up), applied_checksum) == 0 &&
			strcmp(script_checksum(up), checksum) == 0 && script_tokens_equal(applied_up, up);
		if (applied_up)
			pfree(applied_up);
		if (up)
			pfree(up);
	}
	SPI_freetuptable(SPI_tuptable);
	return proven;
}
