/*
 * register.c
 *		Registering migrations: migrate_add() for one, and the shared path
 *		that file loads use for many.  The same text again is a no-op; new text
 *		for a pending migration replaces it (recorded in history); new text for
 *		an applied one never replaces what was applied: it is recorded as
 *		drift, changed or edited (drift.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_add);


/* Two strings, either of which may be NULL, are the same. */
bool
str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
list_equal_strings(List *a, List *b)
{
	ListCell   *la,
			   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
		if (strcmp(lfirst(la), lfirst(lb)) != 0)
		return false;
	return true;
}

/*
 * What registration checks in a script, statement by statement (none is kept,
 * so a big script needs memory for one statement at a time): statements that
 * cannot run in a migration are refused; for the up script, what its
 * statements say about the migration is gathered too.
 */
typedef struct EnumAdd
{
	char	   *value;
	char	   *quoted;			/* 'value' */
	int			line;
	int			used_line;		/* first later statement that mentions it, or 0 */
} EnumAdd;

typedef struct ScriptCheck
{
	const char *what;
	bool		up;
	StringInfoData absorbed;
	const char *non_tx;
	int			non_tx_line;
	int			others;
	List	   *enum_adds;
	int			modes_line;		/* of the last SET CONSTRAINTS, or 0 */
	int			modes_commit_line;	/* of a COMMIT after it, or 0 */
} ScriptCheck;

static void
check_statement(ScriptStmt *st, void *arg)
{
	ScriptCheck *c = arg;
	const char *hint;
	const char *reason = stmt_forbidden_reason(st->parsetree, &hint);
	const char *absorbed;
	const char *enum_value;
	ListCell   *lc;

	if (reason)
		script_refuse_stmt(c->what, st->line, reason, hint);

	/*
	 * Constraint modes last until a commit, and an absorbed COMMIT cannot end
	 * them: the blocks after it would run with them (commit.c).
	 */
	absorbed = stmt_absorbed(st->parsetree);
	if (IsA(st->parsetree, ConstraintsSetStmt))
		c->modes_line = st->line;
	else if (c->modes_line > 0 && absorbed != NULL && strcmp(absorbed, "COMMIT") == 0)
		c->modes_commit_line = st->line;
	else if (c->modes_commit_line > 0 && absorbed == NULL)
		script_refuse_stmt(c->what, c->modes_line,
						   psprintf("SET CONSTRAINTS sets constraint modes until the transaction commits, "
									"and the COMMIT at line %d, which migrate absorbs, cannot end them "
									"as a commit would for the statements after it (line %d)",
									c->modes_commit_line, st->line),
						   "Split the script at the COMMIT into two migrations (CALL migrate_run() and jobs "
						   "commit between migrations), or remove the SET CONSTRAINTS.");
	if (!c->up)
		return;

	/*
	 * Transaction control that is absorbed, statements that cannot run in a
	 * transaction block (the migration becomes non-transactional), and uses
	 * of an enum value added earlier in the same migration.
	 */
	if ((absorbed = stmt_absorbed(st->parsetree)) != NULL)
	{
		appendStringInfo(&c->absorbed, "%s%s at line %d", c->absorbed.len ? ", " : "", absorbed, st->line);
		return;
	}
	if (c->non_tx == NULL && (c->non_tx = stmt_non_transactional(st->parsetree)) != NULL)
		c->non_tx = pstrdup(c->non_tx), c->non_tx_line = st->line;
	else
		c->others++;
	foreach(lc, c->enum_adds)
	{
		EnumAdd    *e = lfirst(lc);

		if (e->used_line == 0 && strstr(st->sql, e->quoted))
			e->used_line = st->line;
	}
	if ((enum_value = stmt_new_enum_value(st->parsetree)) != NULL)
	{
		EnumAdd    *e = palloc0(sizeof(EnumAdd));

		e->value = pstrdup(enum_value);
		e->quoted = psprintf("'%s'", enum_value);
		e->line = st->line;
		c->enum_adds = lappend(c->enum_adds, e);
	}
}

/*
 * The lint allows of an up script ("-- migrate:allow rule, ..." on the line
 * before a statement): each rule must exist; each allow becomes a note.
 */
static void
check_allow_directives(Migration *m)
{
	ListCell   *ld;

	foreach(ld, script_directives(m->up, "allow"))
	{
		ScriptDirective *d = lfirst(ld);
		char	   *unknown = NULL;
		List	   *rules = lint_allow_directive(psprintf("-- migrate:allow %s", d->arg), &unknown);
		int			line = migration_file_line(m, "up", d->line);

		if (unknown)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the up script of migration %s allows an unknown lint rule \"%s\"", m->version, unknown),
					 errdetail("Line %d: -- migrate:allow names the rules it allows for the statement after it.", line),
					 errhint("The rules: %s.", lint_rule_names())));
		if (rules != NIL)
		{
			StringInfoData note;
			ListCell   *lc;

			initStringInfo(&note);
			appendStringInfoString(&note, "lint allows ");
			foreach(lc, rules)
				appendStringInfo(&note, "%s%s", foreach_current_index(lc) ? ", " : "", strVal(lfirst(lc)));
			appendStringInfo(&note, " for the statement after line %d", line);
			m->notes = lappend(m->notes, note.data);
		}
	}
}

/*
 * Check the up script; what its statements say about the migration become
 * notes, and unsafe mixes warnings, given when the text is registered (not
 * again for text already registered).
 */
static void
check_up_script(Migration *m)
{
	ScriptCheck c = {0};
	ListCell   *lc;

	c.what = migration_script_what(m, "up");
	c.up = true;
	initStringInfo(&c.absorbed);
	(void) script_walk_mapped(m->up, migration_line_map(m, "up"), c.what, false, check_statement, &c);

	foreach(lc, c.enum_adds)
	{
		EnumAdd    *e = lfirst(lc);
		char	   *note;

		/* what a later migration of the same plan cannot use before this one commits */
		m->notes = lappend(m->notes, psprintf(ENUM_ADD_NOTE "%s", e->value));
		if (e->used_line == 0)
			continue;
		note = psprintf("unsafe: enum value %s is added at line %d and used at line %d; "
						"PostgreSQL refuses a new enum value before its transaction commits",
						e->quoted, e->line, e->used_line);
		m->warnings = lappend(m->warnings,
							  list_make3(psprintf("migration %s uses a new enum value in the transaction that adds it",
												  m->version),
										 note, "Move the use into a later migration."));
		m->notes = lappend(m->notes, note);
	}
	check_allow_directives(m);
	{
		int			line;
		char	   *lock_timeout = lock_timeout_directive(m->up, &line);

		if (lock_timeout)
		{
			line = migration_file_line(m, "up", line);
			(void) lock_timeout_directive_ms(lock_timeout, line, migration_script_what(m, "up"));
			m->notes = lappend(m->notes, psprintf("lock timeout %s (line %d)", lock_timeout, line));
		}
	}
	if (c.modes_line > 0)
		m->notes = lappend(m->notes, psprintf(CONSTRAINT_MODES_NOTE "SET CONSTRAINTS at line %d", c.modes_line));
	if (c.absorbed.len > 0)
		m->notes = lappend(m->notes,
						   psprintf("absorbed at apply, migrate controls the transaction: %s", c.absorbed.data));
	if (c.non_tx)
	{
		m->transactional = false;
		m->notes = lappend(m->notes,
						   psprintf(NON_TRANSACTIONAL_NOTE "%s at line %d", c.non_tx, c.non_tx_line));
		if (c.others > 0)
		{
			char	   *note = psprintf("unsafe: %s at line %d stands with %d other statement%s, so the migration cannot be atomic",
										c.non_tx, c.non_tx_line, c.others, c.others == 1 ? "" : "s");

			m->warnings = lappend(m->warnings,
								  list_make3(psprintf("migration %s mixes %s with other statements", m->version, c.non_tx),
											 note, psprintf("Put %s in a migration of its own.", c.non_tx)));
			m->notes = lappend(m->notes, note);
		}
	}
}

/* Check a script other than the up script: a syntax error is an ERROR, or with `soft` returned. */
static ScriptSyntaxError *
check_other_script(const char *text, const LineMap *map, const char *what, bool soft)
{
	ScriptCheck c = {0};

	c.what = what;
	return script_walk_mapped(text, map, what, soft, check_statement, &c);
}

/*
 * Check a down script.  Statements that cannot run in a migration are
 * refused; a syntax error does not keep the migration from being registered
 * (a broken down script must not block the up scripts): it is returned, to
 * be given as a warning and kept as a note, and migrate_rollback() refuses
 * to run the script.  `where` names it ("file \"003_x.down.sql\"").
 */
ScriptSyntaxError *
check_down_script(const char *text, const LineMap *map, const char *where)
{
	return check_other_script(text, map, where, true);
}

/* The note that flags a down script that does not parse. */
char *
down_unparsed_note(ScriptSyntaxError *e)
{
	return psprintf(DOWN_UNPARSED_NOTE "line %d: %s", e->line, e->message);
}

/* The warning for a down script that does not parse, when it is registered. */
void
warn_down_unparsed(const char *version, const char *where, ScriptSyntaxError *e)
{
	ereport(WARNING,
			(errmsg("the down script of migration %s does not parse", version),
			 errdetail("In %s, line %d: %s.", where, e->line, e->message),
			 errhint("The migration is registered, but migrate_rollback() refuses to run this down script; "
					 "correct it and register it again.")));
}

/* Refuse a rollback whose down scripts were registered not parsing (see check_down_script). */
void
refuse_unparsed_downs(List *steps)
{
	ListCell   *lc;

	foreach(lc, steps)
	{
		Migration  *m = ((PlanStep *) lfirst(lc))->m;
		ListCell   *ln;

		foreach(ln, m->notes)
		{
			const char *note = lfirst(ln);

			if (strncmp(note, DOWN_UNPARSED_NOTE, strlen(DOWN_UNPARSED_NOTE)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the down script of migration %s does not parse", m->version),
						 errdetail("Migration %s \"%s\": %s.", m->version, m->name, note),
						 errhint("Correct the down script and register it again (migrate_add(..., down => ...), "
								 "a U<version>__ or .down.sql file); nothing was rolled back.")));
		}
	}
}

/* Refuse an argument longer than `limit` bytes: it could not be stored or indexed. */
static void
check_length(const char *value, const char *argname, const char *what, int limit)
{
	size_t		len = strlen(value);

	if (len > (size_t) limit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long (%zu bytes)", argname, len),
				 errdetail("%s has at most %d bytes.", what, limit),
				 errhint("Choose a shorter one.")));
}

/*
 * Check a migration before it is registered: its arguments' lengths, its
 * requirements are versions, its expectations are valid (normalised to
 * jsonb text), its scripts parse.  Fills m->key, m->checksum,
 * m->requires_keys.
 */
void
migration_prepare(Migration *m)
{
	ListCell   *lc;

	/* the cheap checks first, before any script is read */
	m->key = migration_key(m->version);
	m->repeatable = (m->key[0] == REPEATABLE_KEY_CHAR);
	if (m->repeatable && m->name == NULL)
		m->name = pstrdup(m->version + strlen(REPEATABLE_PREFIX));
	check_length(m->name, "the name", "A migration's name", MIGRATE_NAME_MAX_BYTES);
	m->requires_keys = NIL;
	foreach(lc, m->requires)
	{
		check_length(lfirst(lc), "a required version", "A version", MIGRATE_VERSION_MAX_BYTES);
		m->requires_keys = lappend(m->requires_keys, version_key(lfirst(lc)));
	}
	if (m->expect)
	{
		Jsonb	   *expect = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->expect)));

		(void) expect_parse(expect);
		m->expect = JsonbToCString(NULL, &expect->root, VARSIZE(expect));
	}

	m->checksum = script_checksum(m->up);
	m->notes = NIL;
	m->warnings = NIL;
	check_up_script(m);
	if (m->batch)
		batch_prepare(m);
	if (m->verify)
		(void) check_other_script(m->verify, migration_line_map(m, "verify"), migration_script_what(m, "verify"), false);
	if (m->assertion)
		(void) check_other_script(m->assertion, migration_line_map(m, "assert"), migration_script_what(m, "assert"),
								  false);
	migration_prepare_down(m);
	if (m->source == NULL)
		m->source = "migrate_add";
}

/*
 * The down script's part of migration_prepare(): a file load calls it on its
 * own, under the error context of the down file that holds the script.
 */
void
migration_prepare_down(Migration *m)
{
	m->down_error = NULL;
	if (m->down)
	{
		if (m->down_where == NULL)
			m->down_where = migration_script_what(m, "down");
		if ((m->down_error = check_down_script(m->down, migration_line_map(m, "down"), m->down_where)) != NULL)
			m->notes = lappend(m->notes, down_unparsed_note(m->down_error));
	}
}

static const char *
checksum_or_none(const char *text)
{
	return text ? script_checksum(text) : "none";
}

/*
 * Record that part of an applied migration (its verify query or down script)
 * is registered with new text: a note with both checksums, and the same in
 * the history row's detail.
 */
static void
changed_part_after_apply(Migration *m, const char *part, const char *was, const char *now,
						 StringInfo detail)
{
	const char *from;
	const char *to;

	if (str_equal(was, now))
		return;
	from = checksum_or_none(was);
	to = checksum_or_none(now);
	m->notes = lappend(m->notes,
					   psprintf(CHANGED_AFTER_APPLY_NOTE "%s by %s: checksum %s, now %s",
								part, current_user_name(), from, to));
	appendStringInfo(detail, "%s\"%s\": {\"from\": \"%s\", \"to\": \"%s\"}",
					 detail->len ? ", " : "", strcmp(part, "verify query") == 0 ? "verify" : "down",
					 from, to);
}

/* What differs between two registrations of one text: "down script, verify query", or NULL. */
static char *
updated_parts(Migration *old, Migration *m)
{
	StringInfoData buf;

	initStringInfo(&buf);
#define PART_DIFFERS(cond, what) \
	if (cond) \
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", what)
	PART_DIFFERS(!str_equal(old->down, m->down), m->down ? (old->down ? "down script" : "down script added") : "down script removed");
	PART_DIFFERS(!str_equal(old->verify, m->verify), m->verify ? (old->verify ? "verify query" : "verify query added") : "verify query removed");
	PART_DIFFERS(!str_equal(old->assertion, m->assertion),
				 m->assertion ? (old->assertion ? "assert query" : "assert query added") : "assert query removed");
	PART_DIFFERS(!str_equal(old->expect, m->expect), "expectations");
	PART_DIFFERS(!list_equal_strings(old->requires, m->requires), "requirements");
	PART_DIFFERS(old->transactional != m->transactional, m->transactional ? "transactional" : "non-transactional");
	PART_DIFFERS(!str_equal(old->batch, m->batch), "batch options");
#undef PART_DIFFERS
	return buf.len ? buf.data : NULL;
}

const char *
register_result_name(RegisterResult r)
{
	switch (r)
	{
		case REGISTER_NEW:
			return "new";
		case REGISTER_UNCHANGED:
			return "unchanged";
		case REGISTER_CHANGED:
			return "changed";
		case REGISTER_UPDATED:
			return "updated";
		case REGISTER_EDITED:
			return "edited";
		case REGISTER_RESTORED:
			return "restored";
		case REGISTER_SKIPPED:
			return "skipped";
		case REGISTER_NOT_IN_DIRECTORY:
			return "not in directory";
		case REGISTER_NONE:
			break;
	}
	elog(ERROR, "unexpected registration result %d", (int) r);
	return NULL;
}

/* Another spelling of a registered version, or another name for it: refused. */
static void
refuse_version_clash(Migration *old, Migration *m)
{
	if (strcmp(old->version, m->version) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("version %s is already registered as %s", m->version, old->version),
				 errdetail("Leading zeros and trailing zero groups do not make a different version; \"%s\" is migration \"%s\".",
						   old->version, old->name),
				 errhint("Register it as %s to replace the pending migration, or choose another version.",
						 old->version)));
	if (strcmp(old->name, m->name) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("version %s is already registered as migration \"%s\"", m->version, old->name),
				 errdetail("Two migrations cannot share a version: \"%s\" and \"%s\".", old->name, m->name),
				 errhint("Give the new migration its own version, or use the name \"%s\" to replace the pending one.",
						 old->name)));
}

/*
 * What registering `action` ("register", "replace", "update") says: a new
 * down script that does not parse (whenever that text is registered), and
 * the warnings of new up text (not again for an update of other parts).
 */
static void
give_registration_warnings(Migration *old, Migration *m, const char *action)
{
	ListCell   *lc;

	if (m->down_error && (old == NULL || !str_equal(old->down, m->down)))
		warn_down_unparsed(m->version, m->down_where, m->down_error);
	if (strcmp(action, "update") == 0)
		return;
	foreach(lc, m->warnings)
	{
		List	   *w = lfirst(lc);

		ereport(WARNING,
				(errmsg("%s", (char *) linitial(w)),
				 errdetail("%s.", (char *) lsecond(w)),
				 errhint("%s", (char *) lthird(w))));
	}
}

/*
 * Write the migration's row, registered by `registrant`: inserted, or its
 * registered text and parts replaced.  `applied_text` and `drift` are kept beside new up text of an
 * applied migration (drift.c); an update of other parts keeps the drift of
 * the text, which it does not change, and a recorded failure.
 */
static void
store_migration(Migration *m, const char *registrant, const char *applied_text, DriftKind drift)
{
	Datum		values[19];
	char		nulls[19];

#define OPTIONAL_TEXT(i, s) \
	(values[i] = (s) ? CStringGetTextDatum(s) : (Datum) 0, nulls[i] = (s) ? ' ' : 'n')
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(m->key);
	values[1] = CStringGetTextDatum(m->version);
	values[2] = CStringGetTextDatum(m->name);
	values[3] = CStringGetTextDatum(m->up);
	OPTIONAL_TEXT(4, m->down);
	OPTIONAL_TEXT(5, m->verify);
	OPTIONAL_TEXT(6, m->expect);
	values[7] = PointerGetDatum(string_list_to_array(m->requires));
	values[8] = BoolGetDatum(m->transactional);
	values[9] = CStringGetTextDatum(m->checksum);
	values[10] = DirectFunctionCall1(namein, CStringGetDatum(registrant));
	values[11] = CStringGetTextDatum(m->repeatable ? "repeatable" : "versioned");
	values[12] = CStringGetTextDatum(m->source);
	values[13] = PointerGetDatum(string_list_to_array(m->notes));
	OPTIONAL_TEXT(14, m->batch);
	OPTIONAL_TEXT(15, m->assertion);
	OPTIONAL_TEXT(16, applied_text);
	OPTIONAL_TEXT(17, drift_name(drift));
	OPTIONAL_TEXT(18, m->lines);
#undef OPTIONAL_TEXT
	catalog_exec("INSERT INTO migrate.migrations (version_key, version, name, up, down, verify, "
				 "       expect, requires, transactional, checksum, registered_by, kind, source, notes, batch, "
				 "       assert, applied_up, drift, lines) "
				 "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, "
				 "        $17, $18, $19::jsonb) "
				 "ON CONFLICT (version_key) DO UPDATE SET "
				 "  up = EXCLUDED.up, down = EXCLUDED.down, verify = EXCLUDED.verify, "
				 "  expect = EXCLUDED.expect, requires = EXCLUDED.requires, "
				 "  transactional = EXCLUDED.transactional, checksum = EXCLUDED.checksum, "
				 "  registered_by = EXCLUDED.registered_by, registered_at = pg_catalog.now(), "
				 "  source = EXCLUDED.source, notes = EXCLUDED.notes, batch = EXCLUDED.batch, "
				 "  assert = EXCLUDED.assert, lines = EXCLUDED.lines, "
				 "  failure = CASE WHEN migrations.checksum = EXCLUDED.checksum "
				 "                 THEN migrations.failure END, "
				 "  applied_up = CASE WHEN migrations.checksum = EXCLUDED.checksum THEN migrations.applied_up "
				 "                    WHEN EXCLUDED.drift IS NULL THEN NULL "
				 "                    ELSE coalesce(EXCLUDED.applied_up, migrations.applied_up) END, "
				 "  drift = CASE WHEN migrations.checksum = EXCLUDED.checksum "
				 "               THEN migrations.drift ELSE EXCLUDED.drift END",
				 19, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
				 TEXTARRAYOID, BOOLOID, TEXTOID, NAMEOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID,
				 TEXTOID, TEXTOID, TEXTOID},
				 values, nulls);
}

/*
 * Register a prepared migration against the loaded catalog (the caller holds
 * the catalog lock).  Returns what happened: new, unchanged, changed (a
 * pending migration's text replaced), updated (its other parts), or, for
 * new text of an applied one (drift.c), changed, edited or restored.
 */
RegisterResult
register_migration(Catalog *cat, Migration *m)
{
	Migration  *old = catalog_find(cat, m->key);
	const char *action;
	StringInfoData detail;
	DriftKind	drift = DRIFT_NONE;
	char	   *applied_text = NULL;
	int			drift_line = 0;
	bool		applied_text_changed;

	if (old)
		refuse_version_clash(old, m);
	applied_text_changed = old && old->applied && !old->repeatable && strcmp(old->checksum, m->checksum) != 0;
	if (applied_text_changed)
		drift = drift_judge(old, m, &applied_text, &drift_line);

	initStringInfo(&detail);
	if (old == NULL)
		action = "register";
	else if (strcmp(old->checksum, m->checksum) != 0)
		action = "replace";
	else if ((m->updated_parts = updated_parts(old, m)) != NULL)
		action = "update";
	else if (!OidIsValid(get_role_oid(old->registered_by, true)))
	{
		/*
		 * The same text, whose registrant was dropped: the role registering
		 * it now adopts it (its verify query runs as that role from now on).
		 */
		action = "update";
		m->updated_parts = psprintf("registered by %s, whose registrant was dropped", current_user_name());
		appendStringInfo(&detail, "\"registered_by\": {\"from\": %s, \"to\": %s}",
						 quote_json(old->registered_by), quote_json(current_user_name()));
	}
	else
	{
		/*
		 * The same migration, its sections elsewhere in its file (a header
		 * comment added, a catalog from before 0.5.0): where its lines stand
		 * is kept, as no change of the migration.
		 */
		if (!str_equal(old->lines, m->lines))
			catalog_exec("UPDATE migrate.migrations SET lines = $2::jsonb WHERE version_key = $1",
						 2, (Oid[]) {TEXTOID, TEXTOID},
						 (Datum[]) {CStringGetTextDatum(m->key), m->lines ? CStringGetTextDatum(m->lines) : (Datum) 0},
						 m->lines ? NULL : " n");
		return REGISTER_UNCHANGED;
	}

	/*
	 * A new verify query or down script for an applied migration changes
	 * what later runs in its name (migrate_verify, migrate_rollback): keep
	 * both checksums in history and a note that migrate.status shows.
	 * Notes of earlier such changes are kept.
	 */
	if (old && old->applied)
	{
		ListCell   *lc;

		foreach(lc, old->notes)
			if (strncmp(lfirst(lc), CHANGED_AFTER_APPLY_NOTE, strlen(CHANGED_AFTER_APPLY_NOTE)) == 0)
				m->notes = lappend(m->notes, lfirst(lc));
		changed_part_after_apply(m, "verify query", old->verify, m->verify, &detail);
		changed_part_after_apply(m, "down script", old->down, m->down, &detail);
	}
	give_registration_warnings(old, m, action);

	/*
	 * New up text of an applied migration runs nowhere until it is accepted:
	 * whoever registers it does not take over an unchanged verify query,
	 * which keeps running as the role that vouched for it.
	 */
	store_migration(m, applied_text_changed && str_equal(old->verify, m->verify) &&
					OidIsValid(get_role_oid(old->registered_by, true))
					? old->registered_by : current_user_name(),
					applied_text, drift);
	if (applied_text)
		pfree(applied_text);

	if (strcmp(action, "replace") == 0)
		appendStringInfo(&detail, "%s\"previous_checksum\": \"%s\"", detail.len ? ", " : "", old->checksum);
	if (applied_text_changed)
	{
		appendStringInfo(&detail, ", \"drift\": \"%s\", \"applied_checksum\": \"%s\"",
						 drift == DRIFT_NONE ? "restored" : drift_name(drift), old->applied_checksum);
		if (drift_line > 0)
			appendStringInfo(&detail, ", \"line\": %d", migration_file_line(m, "up", drift_line));
	}
	catalog_history(m->version, m->key, m->name, action, m->checksum,
					detail.len ? psprintf("{%s}", detail.data) : NULL);

	if (strcmp(action, "register") == 0)
		return REGISTER_NEW;
	if (strcmp(action, "update") == 0)
		return REGISTER_UPDATED;
	if (!applied_text_changed)
		return REGISTER_CHANGED;
	drift_report(old, m, drift, drift_line);
	m->result_detail = drift_detail(old, m, drift, drift_line);
	return drift == DRIFT_EDITED ? REGISTER_EDITED : drift == DRIFT_CHANGED ? REGISTER_CHANGED : REGISTER_RESTORED;
}

/*
 * After registering, check every new migration's requirements against the
 * catalog as it now is: unknown versions and cycles are refused (which rolls
 * the registration back).
 */
void
registered_check_requirements(List *migrations)
{
	plan_check_requirements(catalog_load(false), migrations);
}

/*
 * A text argument as a C string, without keeping its detoasted copy: a big
 * script is then in memory once less.
 */
char *
text_arg_cstring(FunctionCallInfo fcinfo, int argno)
{
	Datum		d = PG_GETARG_DATUM(argno);
	text	   *t = (text *) PG_DETOAST_DATUM_PACKED(d);
	char	   *s = text_to_cstring(t);

	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
	return s;
}

static char *
required_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of a migration must not be null", argname)));
	s = text_arg_cstring(fcinfo, argno);
	if (s[strspn(s, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of a migration must not be empty", argname)));
	return s;
}

/*
 * migrate_add(version, name, up, down, verify, expect, requires,
 * transactional, batch, assert) -> checksum
 */
Datum
migrate_add(PG_FUNCTION_ARGS)
{
	Migration  *m = palloc0(sizeof(Migration));
	Catalog    *cat;

	m->version = required_text_arg(fcinfo, 0, "the version");
	m->name = required_text_arg(fcinfo, 1, "the name");
	m->up = required_text_arg(fcinfo, 2, "the up script");
	m->down = PG_ARGISNULL(3) ? NULL : text_arg_cstring(fcinfo, 3);
	m->verify = PG_ARGISNULL(4) ? NULL : text_arg_cstring(fcinfo, 4);
	if (!PG_ARGISNULL(5))
	{
		Jsonb	   *expect = PG_GETARG_JSONB_P(5);

		m->expect = JsonbToCString(NULL, &expect->root, VARSIZE(expect));
	}
	m->transactional = PG_ARGISNULL(7) ? true : PG_GETARG_BOOL(7);
	if (PG_NARGS() > 8 && !PG_ARGISNULL(8))
	{
		Jsonb	   *batch = PG_GETARG_JSONB_P(8);

		m->batch = JsonbToCString(NULL, &batch->root, VARSIZE(batch));
	}
	if (PG_NARGS() > 9 && !PG_ARGISNULL(9))
		m->assertion = text_arg_cstring(fcinfo, 9);
	if (!PG_ARGISNULL(6))
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(6), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("requirements of migration %s must not contain null", m->version)));
			m->requires = lappend(m->requires, TextDatumGetCString(elems[i]));
		}
	}
	migration_prepare(m);

	SPI_connect();
	catalog_lock();
	cat = catalog_load(false);
	if (register_migration(cat, m) != REGISTER_UNCHANGED)
	{
		registered_check_requirements(list_make1(m));
		catalog_mark_changed();
	}
	SPI_finish();
	/* m->checksum was computed before SPI_connect: it outlives SPI_finish */
	PG_RETURN_TEXT_P(cstring_to_text(m->checksum));
}
