/*
 * files.c
 *		Migration files as people have them: the version, name and kind come
 *		from the file name (Flyway V/U/R, Supabase and dbmate timestamps,
 *		dated and numbered names, golang-migrate .up/.down pairs); sections and
 *		directives from "-- migrate:" lines.  migrate_add_script() registers one
 *		file, migrate_add_scripts() and migrate_load() a whole directory, all
 *		or nothing.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_add_script);
PG_FUNCTION_INFO_V1(migrate_add_scripts);
PG_FUNCTION_INFO_V1(migrate_load);
PG_FUNCTION_INFO_V1(migrate_compare_scripts);

#define FILE_NAME_FORMS \
	"V<version>__<name>.sql, U<version>__<name>.sql (its down script), R__<name>.sql (repeatable), " \
	"<version>_<name>.sql, and <version>_<name>.up.sql / .down.sql"

/* One file of a directory, and what became of it. */
typedef struct MigrationFile
{
	char	   *filename;		/* base name */
	char	   *content;		/* NULL: not read (not a .sql file) */
	/* from the name */
	char	   *version;
	char	   *name;
	bool		is_down;
	bool		has_up;			/* a down file whose up file is registered with it */
	struct ScriptSyntaxError *down_error;	/* a down file's syntax error */
	char	   *parts;			/* what the file holds: "up", "up, down, verify", "down" */
	/* outcome */
	char	   *key;
	RegisterResult result;
	char	   *detail;
} MigrationFile;

/* ---- file names ---- */

/*
 * Length of the version at the start of s: digit groups separated by '.',
 * '-' or '_', where a group continues the version only if it is all digits up
 * to the next separator (so "001_2fa_setup" is version 001, name "2fa_setup").
 */
static int
version_prefix_length(const char *s)
{
	int			len = 0;

	if (!isdigit((unsigned char) s[0]))
		return 0;
	while (isdigit((unsigned char) s[len]))
		len++;
	for (;;)
	{
		int			g = len + 1;

		if (s[len] != '.' && s[len] != '-' && s[len] != '_')
			break;
		if (!isdigit((unsigned char) s[g]))
			break;
		while (isdigit((unsigned char) s[g]))
			g++;
		if (s[g] != '\0' && s[g] != '.' && s[g] != '-' && s[g] != '_')
			break;
		len = g;
	}
	return len;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t		ls = strlen(s),
				lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Fill f->version, f->name, f->is_down from f->filename; NULL or why not. */
static const char *
parse_file_name(MigrationFile *f)
{
	char	   *stem;
	int			vlen;

	if (!ends_with(f->filename, ".sql"))
		return "not a .sql file";
	stem = pnstrdup(f->filename, strlen(f->filename) - 4);

	if (strncmp(stem, "R__", 3) == 0)
	{
		if (stem[3] == '\0')
			return "a repeatable migration needs a name after R__";
		f->name = pstrdup(stem + 3);
		f->version = psprintf("%s%s", REPEATABLE_PREFIX, f->name);
		return NULL;
	}
	if ((stem[0] == 'V' || stem[0] == 'U') && isdigit((unsigned char) stem[1]))
	{
		char	   *sep = strstr(stem, "__");

		if (sep == NULL || sep[2] == '\0')
			return "a Flyway file name is V<version>__<name>.sql";
		vlen = version_prefix_length(stem + 1);
		if (stem + 1 + vlen != sep)
			return "the part between V or U and \"__\" is not a version";
		f->version = pnstrdup(stem + 1, vlen);
		f->name = pstrdup(sep + 2);
		f->is_down = (stem[0] == 'U');
		return NULL;
	}
	if (ends_with(stem, ".up") || ends_with(stem, ".down"))
	{
		f->is_down = ends_with(stem, ".down");
		stem[strlen(stem) - (f->is_down ? 5 : 3)] = '\0';
	}
	vlen = version_prefix_length(stem);
	if (vlen == 0)
		return "the name does not start with a version";
	if (stem[vlen] != '_' || stem[vlen + 1] == '\0')
		return "the version must be followed by \"_\" and a name";
	f->version = pnstrdup(stem, vlen);
	f->name = pstrdup(stem + vlen + 1);
	return NULL;
}

/* ---- sections and directives ---- */

typedef struct Marker
{
	int			start;			/* offset of the marker line */
	int			end;			/* offset just after it (after its newline) */
	int			line;
	char	   *directive;		/* up, down, verify, requires, expect */
	char	   *arg;			/* the rest of the line, trimmed */
} Marker;

static bool
is_ident_char(char c)
{
	return isalnum((unsigned char) c) || c == '_' || c == '$' || IS_HIGHBIT_SET(c);
}

/* If "-- migrate:..." starts at p (after blanks), describe it. */
static Marker *
marker_at(const char *text, const char *line_start, int lineno)
{
	const char *p = line_start;
	const char *eol;
	const char *word;
	Marker	   *mk;

	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] != '-' || p[1] != '-')
		return NULL;
	p += 2;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "migrate:", 8) != 0)
		return NULL;
	p += 8;
	eol = strchr(p, '\n');
	if (eol == NULL)
		eol = p + strlen(p);
	word = p;
	while (isalpha((unsigned char) *p))
		p++;
	mk = palloc0(sizeof(Marker));
	mk->start = line_start - text;
	mk->end = (*eol == '\n') ? eol + 1 - text : eol - text;
	mk->line = lineno;
	mk->directive = pnstrdup(word, p - word);
	while (*p == ' ' || *p == '\t')
		p++;
	mk->arg = pnstrdup(p, eol - p);
	/* trim trailing blanks and a CR */
	for (int n = strlen(mk->arg); n > 0 && isspace((unsigned char) mk->arg[n - 1]); n--)
		mk->arg[n - 1] = '\0';
	return mk;
}

/*
 * "-- migrate:" lines outside strings, quoted identifiers, dollar-quoted
 * bodies and block comments, in order.
 */
static List *
find_markers(const char *text)
{
	List	   *markers = NIL;
	const char *p = text;
	int			line = 1;
	bool		line_start = true;

	while (*p)
	{
		CHECK_FOR_INTERRUPTS();
		if (line_start)
		{
			Marker	   *mk = marker_at(text, p, line);

			if (mk)
				markers = lappend(markers, mk);
			line_start = false;
		}
		if (*p == '\n')
		{
			line++;
			line_start = true;
			p++;
		}
		else if (p[0] == '-' && p[1] == '-')
		{
			while (*p && *p != '\n')
				p++;
		}
		else if (p[0] == '/' && p[1] == '*')
			p = skip_block_comment(p, &line);
		else if (*p == '\'')
		{
			bool		escapes = p > text && (p[-1] == 'E' || p[-1] == 'e') &&
				(p - 1 == text || !is_ident_char(p[-2]));

			for (p++; *p; p++)
			{
				if (escapes && *p == '\\' && p[1])
					line += (*++p == '\n');
				else if (*p == '\'' && p[1] == '\'')
					p++;
				else if (*p == '\'')
					break;
				else
					line += (*p == '\n');
			}
			if (*p)
				p++;
		}
		else if (*p == '"')
		{
			for (p++; *p; p++)
			{
				if (*p == '"' && p[1] == '"')
					p++;
				else if (*p == '"')
					break;
				else
					line += (*p == '\n');
			}
			if (*p)
				p++;
		}
		else if (*p == '$' && (p == text || !is_ident_char(p[-1])))
		{
			const char *t = p + 1;

			/* a dollar-quote tag: $$ or $tag$, tag not starting with a digit */
			if (*t != '$' && (isalpha((unsigned char) *t) || *t == '_' || IS_HIGHBIT_SET(*t)))
				while (is_ident_char(*t) && *t != '$')
					t++;
			if (*t == '$')
			{
				char	   *tag = pnstrdup(p, t + 1 - p);
				const char *close = strstr(t + 1, tag);
				const char *end = close ? close + strlen(tag) : t + 1 + strlen(t + 1);

				for (const char *q = p; q < end; q++)
					line += (*q == '\n');
				p = end;
			}
			else
				p++;
		}
		else
			p++;
	}
	return markers;
}

static void
file_error(MigrationFile *f, int line, const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 errdetail("In file \"%s\", line %d.", f->filename, line),
			 errhint("Section markers are -- migrate:up, -- migrate:down, -- migrate:verify and -- migrate:assert "
					 "(up and down may add transaction:false); directives are "
					 "-- migrate:requires <versions>, -- migrate:expect <JSON object> and -- migrate:batch <JSON object>; "
					 "in a script, -- migrate:allow <rules> and -- migrate:lock_timeout <time>.")));
}

/*
 * The text with each marker line emptied (its newline kept, so line numbers
 * stay), and the markers' offsets moved to the emptied lines.  Editing a
 * directive thus changes no script, so it is no drift.
 */
static char *
without_markers(const char *text, List *markers)
{
	StringInfoData clean;
	int			from = 0;
	ListCell   *lc;

	initStringInfo(&clean);
	foreach(lc, markers)
	{
		Marker	   *mk = lfirst(lc);
		bool		newline = mk->end > mk->start && text[mk->end - 1] == '\n';

		appendBinaryStringInfo(&clean, text + from, mk->start - from);
		from = mk->end;
		mk->start = clean.len;
		if (newline)
			appendStringInfoChar(&clean, '\n');
		mk->end = clean.len;
	}
	appendStringInfoString(&clean, text + from);
	return clean.data;
}

/*
 * One section of a file (up, down, verify, assert), joined from its pieces
 * (several up/down pairs: ups in order, downs in reverse), with the file
 * line each piece starts at, in joined order.
 */
typedef struct Section
{
	char	   *text;
	List	   *pieces;			/* texts, in joined order */
	List	   *file_lines;		/* int: file line of each piece */
} Section;

static void
add_piece(Section *sec, char *body, int file_line, bool before)
{
	if (sec->text == NULL)
		sec->text = body;
	else
		sec->text = before ? psprintf("%s\n%s", body, sec->text) : psprintf("%s\n%s", sec->text, body);
	if (before)
	{
		sec->pieces = lcons(body, sec->pieces);
		sec->file_lines = lcons_int(file_line, sec->file_lines);
	}
	else
	{
		sec->pieces = lappend(sec->pieces, body);
		sec->file_lines = lappend_int(sec->file_lines, file_line);
	}
}

/*
 * The section's line map as a JSON array of pairs (first script line of a
 * piece, its file line), appended to buf under `key`; nothing when the
 * script's lines are the file's.
 */
static void
section_lines_json(StringInfo buf, const char *key, Section *sec)
{
	int			script_line = 1;
	ListCell   *lp;
	ListCell   *ll;

	if (sec->text == NULL ||
		(list_length(sec->pieces) == 1 && linitial_int(sec->file_lines) == 1))
		return;
	appendStringInfo(buf, "%s\"%s\": [", buf->len > 1 ? ", " : "", key);
	forboth(lp, sec->pieces, ll, sec->file_lines)
	{
		const char *piece = lfirst(lp);

		appendStringInfo(buf, "%s%d, %d", foreach_current_index(lp) ? ", " : "", script_line, lfirst_int(ll));
		for (const char *c = piece; *c; c++)
			script_line += (*c == '\n');
		script_line++;			/* the newline that joins the next piece */
	}
	appendStringInfoChar(buf, ']');
}

/* Line (1-based) of the byte at offset `off` of text. */
static int
line_at_offset(const char *text, int off)
{
	int			line = 1;

	for (int i = 0; i < off && text[i]; i++)
		line += (text[i] == '\n');
	return line;
}

/*
 * The markers that are the file's, not its scripts': "-- migrate:allow"
 * (lint) and "-- migrate:lock_timeout" lines are comments of the script
 * they stand in, kept in its text (registration checks them there).
 */
static List *
script_markers(List *markers)
{
	List	   *result = NIL;
	ListCell   *lc;

	foreach(lc, markers)
	{
		Marker	   *mk = lfirst(lc);

		if (strcmp(mk->directive, "allow") == 0 ||
			(strcmp(mk->directive, "lock") == 0 && strncmp(mk->arg, "_timeout", 8) == 0))
			continue;
		result = lappend(result, mk);
	}
	return result;
}

/* The text of a section that ends: a piece of up, down, verify or assert. */
static void
add_section_piece(Marker *section, char *body, const char *clean,
				  Section *up, Section *down, Section *verify, Section *assertion)
{
	int			file_line = line_at_offset(clean, section->end);

	if (strcmp(section->directive, "up") == 0)
		add_piece(up, body, file_line, false);
	else if (strcmp(section->directive, "down") == 0)
		add_piece(down, body, file_line, true);
	else if (strcmp(section->directive, "assert") == 0)
		add_piece(assertion, body, file_line, false);
	else
		add_piece(verify, body, file_line, false);
}

/* JSON text as jsonb prints it, so that equal maps compare equal. */
static char *
normalised_jsonb(const char *json)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));

	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

/*
 * What one "-- migrate:" line of a file says: a section starts (true), or a
 * directive (requires, expect, batch) fills the migration (false).
 */
static bool
apply_marker(MigrationFile *f, Migration *m, Marker *mk)
{
	bool		is_section = false;

	if (strcmp(mk->directive, "up") == 0 || strcmp(mk->directive, "down") == 0)
	{
		is_section = true;
		if (strcmp(mk->arg, "transaction:false") == 0)
		{
			if (strcmp(mk->directive, "up") == 0)
				m->transactional = false;
		}
		else if (mk->arg[0] != '\0' && strcmp(mk->arg, "transaction:true") != 0)
			file_error(f, mk->line, psprintf("unknown option \"%s\" of -- migrate:%s", mk->arg, mk->directive));
	}
	else if (strcmp(mk->directive, "verify") == 0 || strcmp(mk->directive, "assert") == 0)
		is_section = true;
	else if (strcmp(mk->directive, "requires") == 0)
	{
		char	   *list = pstrdup(mk->arg);
		char	   *tok;
		char	   *save;
		int			named = 0;

		for (tok = strtok_r(list, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save), named++)
			m->requires = lappend(m->requires, pstrdup(tok));
		if (named == 0)
			file_error(f, mk->line, "-- migrate:requires names no version");
	}
	else if (strcmp(mk->directive, "expect") == 0)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(mk->arg)));

		if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
			file_error(f, mk->line, "-- migrate:expect takes a JSON object, such as {\"tools\": 150}");
		if (m->expect)
			j = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
												   DirectFunctionCall1(jsonb_in, CStringGetDatum(m->expect)),
												   JsonbPGetDatum(j)));
		m->expect = JsonbToCString(NULL, &j->root, VARSIZE(j));
	}
	else if (strcmp(mk->directive, "batch") == 0)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(mk->arg)));

		if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
			file_error(f, mk->line, "-- migrate:batch takes a JSON object, such as {\"table\": \"legacy_tasks\", \"size\": 5000}");
		if (m->batch)
			file_error(f, mk->line, "-- migrate:batch is given twice");
		m->batch = JsonbToCString(NULL, &j->root, VARSIZE(j));
	}
	else
		file_error(f, mk->line, psprintf("unknown directive \"-- migrate:%s\"", mk->directive));
	return is_section;
}

/*
 * Fill a migration from the text of its (up) file: the sections, or the
 * whole text as up; requirements and expectations from directives.
 * Several up/down pairs (dbmate) are joined: ups in order, downs in reverse.
 */
static void
split_sections(MigrationFile *f, Migration *m)
{
	const char *text = script_skip_bom(f->content);
	List	   *markers = script_markers(find_markers(text));
	char	   *clean = without_markers(text, markers);
	Marker	   *section = NULL;
	int			header_end = strlen(clean);
	Section		up = {0},
				down = {0},
				verify = {0},
				assertion = {0};
	StringInfoData lines;
	ListCell   *lc;

	m->transactional = true;
	foreach(lc, markers)
	{
		Marker	   *mk = lfirst(lc);

		if (!apply_marker(f, m, mk))
			continue;
		/* close the previous section at this marker */
		if (section == NULL)
			header_end = mk->start;
		else
			add_section_piece(section, pnstrdup(clean + section->end, mk->start - section->end), clean,
							  &up, &down, &verify, &assertion);
		section = mk;
	}
	if (section)
	{
		add_section_piece(section, pstrdup(clean + section->end), clean, &up, &down, &verify, &assertion);
		/* without an up marker, what stands before the first section is the up script */
		if (up.text == NULL)
			add_piece(&up, pnstrdup(clean, header_end), 1, false);
		else if (script_count(pnstrdup(clean, header_end), psprintf("file \"%s\"", f->filename)) > 0)
			file_error(f, 1, "statements stand before the -- migrate:up section");
	}
	else
		add_piece(&up, clean, 1, false);
	m->up = up.text;
	m->down = down.text;
	m->verify = verify.text;
	m->assertion = assertion.text;

	initStringInfo(&lines);
	appendStringInfoChar(&lines, '{');
	section_lines_json(&lines, "up", &up);
	section_lines_json(&lines, "down", &down);
	section_lines_json(&lines, "verify", &verify);
	section_lines_json(&lines, "assert", &assertion);
	appendStringInfoChar(&lines, '}');
	m->lines = lines.len > 2 ? normalised_jsonb(lines.data) : NULL;
}

/* The line map with the name of the separate file that holds the down script. */
static char *
lines_with_down_file(const char *lines, const char *filename)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (lines)
		appendBinaryStringInfo(&buf, lines, strlen(lines) - 1);	/* without its '}' */
	else
		appendStringInfoChar(&buf, '{');
	appendStringInfoString(&buf, buf.len > 1 ? ", \"down_file\": " : "\"down_file\": ");
	escape_json(&buf, filename);
	appendStringInfoChar(&buf, '}');
	return normalised_jsonb(buf.data);
}

/* Whether text has "-- migrate:up", "down", "verify" or "assert" section lines. */
bool
text_has_section_markers(const char *text)
{
	ListCell   *lc;

	foreach(lc, find_markers(script_skip_bom(text)))
	{
		const char *d = ((Marker *) lfirst(lc))->directive;

		if (strcmp(d, "up") == 0 || strcmp(d, "down") == 0 || strcmp(d, "verify") == 0 || strcmp(d, "assert") == 0)
			return true;
	}
	return false;
}

/*
 * The "-- migrate:<name> ..." lines of a script that stand outside its
 * strings, quoted names, dollar-quoted bodies and block comments (a function
 * body may hold such a line: it is the function's): a list of ScriptDirective,
 * in order, with the script's line and the rest of the line.
 */
List *
script_directives(const char *text, const char *name)
{
	List	   *found = NIL;
	size_t		len = strlen(name);
	ListCell   *lc;

	foreach(lc, find_markers(script_skip_bom(text)))
	{
		Marker	   *mk = lfirst(lc);
		/* "-- migrate:lock_timeout 30s" is read as the word "lock" and the rest */
		char	   *full = psprintf("%s%s%s", mk->directive, mk->arg[0] == '_' ? "" : " ", mk->arg);

		if (strncmp(full, name, len) == 0 && (full[len] == ' ' || full[len] == '\t' || full[len] == '\0'))
		{
			ScriptDirective *d = palloc(sizeof(ScriptDirective));

			d->line = mk->line;
			d->arg = pstrdup(full + len + strspn(full + len, " \t"));
			found = lappend(found, d);
		}
	}
	return found;
}

/* ---- a migration's sections and their lines in its file ---- */

/*
 * The line map of a migration's section ("up", "down", "verify",
 * "assert"), from migrate.migrations.lines; NULL when its lines are the
 * file's (a whole file, or migrate_add()).
 */
LineMap *
migration_line_map(Migration *m, const char *section)
{
	Jsonb	   *j;
	JsonbValue	k;
	JsonbValue *v;
	LineMap    *map;
	int			n;

	if (m->lines == NULL)
		return NULL;
	j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->lines)));
	k.type = jbvString;
	k.val.string.val = (char *) section;
	k.val.string.len = strlen(section);
	v = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	n = JsonContainerSize(v->val.binary.data);
	map = palloc(sizeof(LineMap));
	map->n = n / 2;
	map->pairs = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);

		if (e == NULL || e->type != jbvNumeric)
			elog(ERROR, "line map of migration %s is not pairs of numbers", m->version);
		map->pairs[i] = DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(e->val.numeric)));
	}
	return map;
}

/* Line `line` of a migration's section as the line of its file. */
int
migration_file_line(Migration *m, const char *section, int line)
{
	return line_map_apply(migration_line_map(m, section), line);
}

/*
 * How messages name a migration's section: "the up script of migration
 * 004", and for one from a file ' (file "004_x.sql")': its lines are then
 * the file's.
 */
char *
migration_script_what(Migration *m, const char *section)
{
	const char *part = strcmp(section, "up") == 0 ? "up script"
		: strcmp(section, "down") == 0 ? "down script"
		: strcmp(section, "verify") == 0 ? "verify query" : "assert query";
	char	   *file = NULL;

	if (strcmp(section, "down") == 0 && m->lines)
		file = (char *) jsonb_field_text(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->lines))),
										 "down_file");
	if (file == NULL && migration_from_file(m))
		file = m->source;
	if (file == NULL)
		return psprintf("the %s of migration %s", part, m->version);
	return psprintf("the %s of migration %s (file \"%s\")", part, m->version, file);
}

/* A migration's section parsed, its lines those of its file. */
Script *
migration_script(Migration *m, const char *section)
{
	const char *text = strcmp(section, "up") == 0 ? migration_up_text(m)
		: strcmp(section, "down") == 0 ? m->down
		: strcmp(section, "verify") == 0 ? m->verify : m->assertion;

	return script_parse_mapped(text, migration_line_map(m, section), migration_script_what(m, section));
}

/* ---- registering a set of files ---- */


/* The two file names of a duplicate, in name order, for a stable message. */
#define Min_name(f, g) (strcmp((f)->filename, (g)->filename) < 0 ? (f)->filename : (g)->filename)
#define Max_name(f, g) (strcmp((f)->filename, (g)->filename) < 0 ? (g)->filename : (f)->filename)

static int
file_cmp(const ListCell *a, const ListCell *b)
{
	MigrationFile *fa = lfirst(a),
			   *fb = lfirst(b);

	if (fa->key && fb->key)
	{
		int			c = strcmp(fa->key, fb->key);

		if (c != 0)
			return c;
		return (int) fa->is_down - (int) fb->is_down;
	}
	if (fa->key || fb->key)
		return fa->key ? -1 : 1;
	return strcmp(fa->filename, fb->filename);
}

/* Error context: which file is being read. */
static void
file_error_context(void *arg)
{
	errcontext("migration file \"%s\"", ((MigrationFile *) arg)->filename);
}

/* {"key": "value"} with the value escaped, for history details. */
static char *
json_object_1(const char *key, const char *value)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	escape_json(&buf, key);
	appendStringInfoString(&buf, ": ");
	escape_json(&buf, value);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Set the down script of a registered migration that has no up file here
 * (checked by register_files() before the catalog lock, as migrate_add()
 * checks a down script).
 */
static RegisterResult
register_down_only(Catalog *cat, MigrationFile *down)
{
	Migration  *m = catalog_find(cat, down->key);
	List	   *notes = NIL;
	Datum		values[4];

	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("down script \"%s\" belongs to no registered migration", down->filename),
				 errdetail("No migration has version %s.", down->version),
				 errhint("Register the migration's up script with it.")));
	if (m->down && strcmp(m->down, down->content) == 0)
		return REGISTER_UNCHANGED;
	if (down->down_error)
	{
		warn_down_unparsed(m->version, psprintf("file \"%s\"", down->filename), down->down_error);
		notes = lappend(notes, down_unparsed_note(down->down_error));
	}
	/* a new down script of an applied migration is a note, as in register_migration() */
	if (m->applied)
		notes = lappend(notes,
						psprintf(CHANGED_AFTER_APPLY_NOTE "down script by %s: checksum %s, now %s",
								 current_user_name(), m->down ? script_checksum(m->down) : "none",
								 script_checksum(down->content)));
	values[0] = CStringGetTextDatum(m->key);
	values[1] = CStringGetTextDatum(down->content);
	values[2] = PointerGetDatum(string_list_to_array(notes));
	values[3] = CStringGetTextDatum(DOWN_UNPARSED_NOTE);
	/* the flag of the down script replaced goes with it */
	catalog_exec("UPDATE migrate.migrations "
				 "   SET down = $2, "
				 "       notes = pg_catalog.array_cat(ARRAY(SELECT u.n FROM pg_catalog.unnest(notes) WITH ORDINALITY AS u(n, i) "
				 "                  WHERE NOT pg_catalog.starts_with(u.n, $4) ORDER BY u.i), $3) "
				 " WHERE version_key = $1",
				 4, (Oid[]) {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID}, values, NULL);
	catalog_history(m->version, m->key, m->name, "update", m->checksum,
					json_object_1("down_file", down->filename));
	return REGISTER_UPDATED;
}

static char *
pstrdup_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

static List *
string_list_copy(List *l)
{
	List	   *copy = NIL;
	ListCell   *lc;

	foreach(lc, l)
		copy = lappend(copy, pstrdup(lfirst(lc)));
	return copy;
}

static ScriptSyntaxError *
syntax_error_copy(ScriptSyntaxError *e)
{
	ScriptSyntaxError *copy;

	if (e == NULL)
		return NULL;
	copy = palloc(sizeof(ScriptSyntaxError));
	*copy = *e;
	copy->message = pstrdup(e->message);
	return copy;
}

/*
 * What prepare_files() made of one file's migration, copied into the current
 * memory context: reading and checking the file leaves much more behind
 * (its markers, the statements' checks), which goes with the file's context.
 */
static Migration *
prepared_migration_copy(Migration *m)
{
	Migration  *c = palloc(sizeof(Migration));
	ListCell   *lc;

	*c = *m;
	c->version = pstrdup(m->version);
	c->key = pstrdup(m->key);
	c->name = pstrdup(m->name);
	c->source = pstrdup(m->source);
	c->up = pstrdup(m->up);
	c->down = pstrdup_or_null(m->down);
	c->verify = pstrdup_or_null(m->verify);
	c->assertion = pstrdup_or_null(m->assertion);
	c->expect = pstrdup_or_null(m->expect);
	c->batch = pstrdup_or_null(m->batch);
	c->checksum = pstrdup(m->checksum);
	c->requires = string_list_copy(m->requires);
	c->requires_keys = string_list_copy(m->requires_keys);
	c->notes = string_list_copy(m->notes);
	c->warnings = NIL;
	foreach(lc, m->warnings)
		c->warnings = lappend(c->warnings, string_list_copy(lfirst(lc)));
	c->down_where = pstrdup_or_null(m->down_where);
	c->down_error = syntax_error_copy(m->down_error);
	c->lines = pstrdup_or_null(m->lines);
	/* what only a loaded or registered migration has */
	c->registered_by = c->applied_checksum = c->drift = NULL;
	c->updated_parts = c->result_detail = NULL;
	c->touched = NIL;
	return c;
}

/*
 * Read a set of files as migrations, with no catalog: names, duplicates,
 * sections, and the checks of registration.  Returns (file, migration)
 * pairs of the up files, in version order.  With `strict`, a name that fits
 * no form is an error; otherwise such files are skipped and listed.  Each
 * file is read and checked in a memory context emptied after it.
 */
static List *
prepare_files(List *files, bool strict)
{
	List	   *ups = NIL;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext file_cxt = AllocSetContextCreate(caller, "migrate file", ALLOCSET_DEFAULT_SIZES);

	/* names, duplicates, sections: everything that needs no catalog */
	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		const char *why = parse_file_name(f);

		if (why == NULL && f->content == NULL)
			why = "not read";
		if (why)
		{
			if (strict)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("file name \"%s\" is not a migration file name", f->filename),
						 errdetail("%c%s.", pg_toupper((unsigned char) why[0]), why + 1),
						 errhint("Accepted forms: " FILE_NAME_FORMS ".")));
			f->result = REGISTER_SKIPPED;
			f->detail = psprintf("not a migration: %s", why);
			continue;
		}
		f->key = migration_key(f->version);
	}
	/* in version order, two files of one version and part are neighbours */
	list_sort(files, file_cmp);
	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		MigrationFile *g = lnext(files, lc) ? lfirst(lnext(files, lc)) : NULL;

		if (f->key && g && g->key && strcmp(g->key, f->key) == 0 && g->is_down == f->is_down)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("files \"%s\" and \"%s\" have the same version %s",
							Min_name(f, g), Max_name(f, g), f->version),
					 errdetail("Two %s of one version cannot both be registered.",
							   f->is_down ? "down scripts" : "migrations"),
					 errhint("Renumber one of them; nothing was registered.")));
	}

	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		ErrorContextCallback errcb;
		Migration  *m;
		MigrationFile *down_file;

		if (f->key == NULL || f->is_down)
			continue;
		errcb.callback = file_error_context;
		errcb.arg = f;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;

		MemoryContextSwitchTo(file_cxt);
		m = palloc0(sizeof(Migration));
		m->version = f->version;
		m->name = f->name;
		m->source = f->filename;
		split_sections(f, m);
		f->parts = MemoryContextStrdup(caller, psprintf("up%s%s%s", m->down ? ", down" : "",
														m->verify ? ", verify" : "",
														m->assertion ? ", assert" : ""));
		/* a separate down file (U..., .down.sql) is the down script */
		down_file = NULL;
		if (lnext(files, lc))
		{
			MigrationFile *d = lfirst(lnext(files, lc));

			if (d->key && d->is_down && strcmp(d->key, f->key) == 0)
			{
				if (m->down)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("migration %s has two down scripts", f->version),
							 errdetail("File \"%s\" has a -- migrate:down section, and file \"%s\" is its down script too.",
									   f->filename, d->filename),
							 errhint("Keep one of them.")));
				d->has_up = true;
				down_file = d;
				m->lines = lines_with_down_file(m->lines, d->filename);
			}
		}
		migration_prepare(m);
		if (down_file)
		{
			/* what is wrong with the down file is said of it */
			errcb.arg = down_file;
			m->down = down_file->content;
			migration_prepare_down(m);
		}
		error_context_stack = errcb.previous;
		MemoryContextSwitchTo(caller);
		ups = lappend(ups, list_make2(f, prepared_migration_copy(m)));
		MemoryContextReset(file_cxt);
	}
	/* down files on their own: the same checks as a down script given with its migration */
	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		ErrorContextCallback errcb;
		ScriptSyntaxError *down_error;

		if (f->key == NULL || !f->is_down || f->has_up)
			continue;
		errcb.callback = file_error_context;
		errcb.arg = f;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		MemoryContextSwitchTo(file_cxt);
		down_error = check_down_script(f->content, NULL, psprintf("file \"%s\"", f->filename));
		MemoryContextSwitchTo(caller);
		f->down_error = syntax_error_copy(down_error);
		MemoryContextReset(file_cxt);
		error_context_stack = errcb.previous;
	}
	MemoryContextDelete(file_cxt);
	return ups;
}

/*
 * Register a set of files, all or nothing (see prepare_files()).  For a
 * whole directory, the result also lists the pending migrations it does not
 * have (a file deleted after it was registered): "not in directory".
 */
static List *
register_files(List *files, bool strict, bool directory)
{
	List	   *ups = prepare_files(files, strict);
	List	   *registered = NIL;
	ListCell   *lc;
	Catalog    *cat;
	bool		changed = false;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext file_cxt;

	SPI_connect();
	/* what registering one file leaves behind goes with it */
	file_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate register file", ALLOCSET_DEFAULT_SIZES);
	catalog_lock();
	cat = catalog_load(false);
	foreach(lc, ups)
	{
		MigrationFile *f = linitial(lfirst(lc));
		Migration  *m = lsecond(lfirst(lc));
		MemoryContext spi = MemoryContextSwitchTo(file_cxt);

		f->result = register_migration(cat, m);
		if (!m->transactional)
			f->detail = "transaction:false";
		if (m->updated_parts || m->result_detail)
		{
			MemoryContextSwitchTo(caller);	/* the rows outlive SPI_finish() */
			{
				char	   *what = m->result_detail ? pstrdup(m->result_detail)
					: psprintf("updated: %s", m->updated_parts);

				f->detail = f->detail ? psprintf("%s; %s", f->detail, what) : what;
			}
		}
		MemoryContextSwitchTo(spi);
		/* what register_migration() added to m went too: only m->key is read from here on */
		MemoryContextReset(file_cxt);
		m->updated_parts = m->result_detail = NULL;
		m->notes = NIL;
		m->warnings = NIL;
		changed |= f->result != REGISTER_UNCHANGED;
		registered = lappend(registered, m);
	}
	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		ListCell   *lc2;

		if (f->key == NULL || !f->is_down)
			continue;
		/* the down file of an up file here shares its result */
		foreach(lc2, ups)
		{
			MigrationFile *u = linitial(lfirst(lc2));

			if (strcmp(u->key, f->key) == 0)
				f->result = u->result;
		}
		if (f->result == REGISTER_NONE)
		{
			MemoryContext spi = MemoryContextSwitchTo(file_cxt);

			f->result = register_down_only(cat, f);
			MemoryContextSwitchTo(spi);
			MemoryContextReset(file_cxt);
			changed |= f->result != REGISTER_UNCHANGED;
		}
	}
	if (changed)
	{
		registered_check_requirements(registered);
		catalog_mark_changed();
	}
	if (directory)
	{
		List	   *missing = NIL;
		MemoryContext spi = MemoryContextSwitchTo(caller);	/* the rows outlive SPI_finish() */

		for (int i = 0; i < cat->n; i++)
		{
			Migration  *m = cat->items[i];
			MigrationFile *g;
			bool		here = false;

			/* pending, and registered from a file (not by migrate_add()) */
			if (m->applied || !migration_from_file(m))
				continue;
			foreach(lc, files)
				if (((MigrationFile *) lfirst(lc))->key && strcmp(((MigrationFile *) lfirst(lc))->key, m->key) == 0)
					here = true;
			if (here)
				continue;
			g = palloc0(sizeof(MigrationFile));
			g->version = pstrdup(m->version);
			g->name = pstrdup(m->name);
			g->key = pstrdup(m->key);
			g->result = REGISTER_NOT_IN_DIRECTORY;
			g->detail = psprintf("registered and pending (from %s); if its file was deleted on purpose: "
								 "SELECT * FROM migrate_remove(%s)", m->source, quote_literal_cstr(m->version));
			missing = lappend(missing, g);
		}
		files = list_concat(files, missing);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return files;
}

static void
put_file_rows(FunctionCallInfo fcinfo, List *files)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		bool		known = (f->key != NULL);

		values[0] = f->filename ? CStringGetTextDatum(f->filename) : (Datum) 0;
		nulls[0] = f->filename == NULL;
		values[1] = known ? CStringGetTextDatum(f->version) : (Datum) 0;
		nulls[1] = !known;
		values[2] = known ? CStringGetTextDatum(f->name) : (Datum) 0;
		nulls[2] = !known;
		values[3] = known ? CStringGetTextDatum(f->key[0] == REPEATABLE_KEY_CHAR ? "repeatable" : "versioned") : (Datum) 0;
		nulls[3] = !known;
		values[4] = known ? CStringGetTextDatum(f->parts ? f->parts : f->is_down ? "down" : "up") : (Datum) 0;
		nulls[4] = !known;
		values[5] = CStringGetTextDatum(register_result_name(f->result));
		values[6] = f->detail ? CStringGetTextDatum(f->detail) : (Datum) 0;
		nulls[6] = f->detail == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

static char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return pstrdup(slash ? slash + 1 : path);
}

/* migrate_add_script(filename, script): register one file. */
Datum
migrate_add_script(PG_FUNCTION_ARGS)
{
	MigrationFile *f = palloc0(sizeof(MigrationFile));

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the file name and the script must not be null")));
	f->filename = base_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	f->content = text_arg_cstring(fcinfo, 1);
	InitMaterializedSRF(fcinfo, 0);
	put_file_rows(fcinfo, register_files(list_make1(f), true, false));
	return (Datum) 0;
}

/* The files of a (filenames, scripts) pair of arrays. */
static List *
files_from_arrays(FunctionCallInfo fcinfo)
{
	Datum	   *names,
			   *scripts;
	bool	   *name_nulls,
			   *script_nulls;
	int			nnames,
				nscripts;
	List	   *files = NIL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the file names and the scripts must not be null")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT,
					  &names, &name_nulls, &nnames);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &scripts, &script_nulls, &nscripts);
	if (nnames != nscripts)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the numbers of file names (%d) and of scripts (%d) differ", nnames, nscripts),
				 errhint("Pass one script per file name, NULL for a file that is not a migration.")));
	for (int i = 0; i < nnames; i++)
	{
		MigrationFile *f = palloc0(sizeof(MigrationFile));

		if (name_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("file name %d is null", i + 1)));
		f->filename = base_name(TextDatumGetCString(names[i]));
		f->content = script_nulls[i] ? NULL : TextDatumGetCString(scripts[i]);
		files = lappend(files, f);
	}
	return files;
}

/* migrate_add_scripts(filenames, scripts): register a directory sent by a client. */
Datum
migrate_add_scripts(PG_FUNCTION_ARGS)
{
	List	   *files = files_from_arrays(fcinfo);

	InitMaterializedSRF(fcinfo, 0);
	put_file_rows(fcinfo, register_files(files, false, true));
	return (Datum) 0;
}

static void
put_compare_row(ReturnSetInfo *rsinfo, const char *file, const char *version, const char *name,
				const char *state, const char *checksum, const char *registered, const char *detail)
{
	Datum		values[7];
	bool		nulls[7];
	const char *v[7] = {file, version, name, state, checksum, registered, detail};

	for (int i = 0; i < 7; i++)
	{
		nulls[i] = v[i] == NULL;
		values[i] = v[i] ? CStringGetTextDatum(v[i]) : (Datum) 0;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * migrate_compare_scripts(filenames, scripts): what a directory sent by a
 * client would change, registering nothing.  One row per file: applied,
 * pending, changed (the file's text is not the applied one, or not the
 * registered pending one: both checksums), not registered, or skipped (not a
 * migration); then one per registered migration the directory lacks:
 * missing (applied) or not in directory (pending).  The files are read as
 * migrate_add_scripts() reads them, with the same errors.
 */
Datum
migrate_compare_scripts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *files = files_from_arrays(fcinfo);
	List	   *ups;
	Catalog    *cat;
	bool	   *seen;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	ups = prepare_files(files, false);
	SPI_connect();
	cat = catalog_load(false);
	seen = palloc0(sizeof(bool) * Max(cat->n, 1));
	foreach(lc, files)
	{
		MigrationFile *f = lfirst(lc);
		Migration  *m = NULL;
		Migration  *old;
		ListCell   *lu;
		const char *state;
		const char *registered = NULL;
		char	   *detail = NULL;
		int			i;

		if (f->key == NULL)
		{
			put_compare_row(rsinfo, f->filename, NULL, NULL, "skipped", NULL, NULL, f->detail);
			continue;
		}
		foreach(lu, ups)
			if (linitial(lfirst(lu)) == f)
				m = lsecond(lfirst(lu));
		i = catalog_find_index(cat, f->key);
		old = i >= 0 ? cat->items[i] : NULL;
		if (i >= 0)
			seen[i] = true;
		if (f->is_down)
		{
			/* a down file: its migration's state; whether it is the registered down script */
			state = old == NULL ? "not registered" : migration_state(cat, old, false);
			if (old && (old->down == NULL || strcmp(old->down, f->content) != 0))
			{
				state = "changed";
				detail = psprintf("the down script differs from the one registered (%s, the file's %s)",
								  old->down ? script_checksum(old->down) : "none", script_checksum(f->content));
			}
			put_compare_row(rsinfo, f->filename, f->version, f->name, state, script_checksum(f->content),
							old && old->down ? script_checksum(old->down) : NULL, detail);
			continue;
		}
		if (old == NULL)
			state = "not registered";
		else if (old->applied)
		{
			registered = old->applied_checksum;
			if (strcmp(old->applied_checksum, m->checksum) == 0)
			{
				state = "applied";
				/* the file is what ran, the catalog holds other text: this file would restore it */
				if (strcmp(old->checksum, m->checksum) != 0)
					detail = psprintf("the registered text is %s (checksum %s): registering this file restores it",
									  str_equal(old->drift, "edited") ? "edited" : "changed", old->checksum);
			}
			else if (old->repeatable)
			{
				state = "pending";
				detail = "a repeatable migration changed since it was applied: it runs again";
			}
			else
			{
				/* drift: the statements changed, or only comments or whitespace (drift.c) */
				char	   *applied = migration_applied_text(old);
				int			line = applied ? first_differing_line(applied, m->up) : 0;
				bool		edited = applied && script_tokens_equal(applied, m->up);

				state = edited ? "edited" : "changed";
				detail = psprintf("applied with checksum %s; the file has checksum %s%s%s%s", old->applied_checksum,
								  m->checksum,
								  line > 0 ? psprintf(", first different at line %d", migration_file_line(m, "up", line)) : "",
								  edited ? " (comments or whitespace only)" : "",
								  strcmp(old->checksum, old->applied_checksum) != 0 &&
								  strcmp(old->checksum, m->checksum) != 0
								  ? psprintf("; the registered text has checksum %s", old->checksum) : "");
			}
		}
		else
		{
			registered = old->checksum;
			if (strcmp(old->checksum, m->checksum) == 0)
			{
				state = "pending";
				if (old->failed)
					detail = "its last run failed";
			}
			else
			{
				state = "changed";
				detail = psprintf("pending with checksum %s; the file has checksum %s (registering it replaces it)",
								  old->checksum, m->checksum);
			}
		}
		if (old && strcmp(state, "changed") != 0 &&
			(!str_equal(old->verify, m->verify) || !str_equal(old->assertion, m->assertion) ||
			 !str_equal(old->expect, m->expect) || !str_equal(old->batch, m->batch)))
			detail = psprintf("%s%sits verify or assert query, expectations or batch options differ from the registered ones",
							  detail ? detail : "", detail ? "; " : "");
		put_compare_row(rsinfo, f->filename, f->version, f->name, state, m->checksum, registered, detail);
	}
	for (int i = 0; i < cat->n; i++)
	{
		Migration  *m = cat->items[i];

		/* one registered by migrate_add() was never in a directory */
		if (seen[i] || !migration_from_file(m))
			continue;
		if (m->applied)
			put_compare_row(rsinfo, NULL, m->version, m->name, "missing", NULL, m->applied_checksum,
							psprintf("applied, but not in the directory (registered from %s)", m->source));
		else
			put_compare_row(rsinfo, NULL, m->version, m->name, "not in directory", NULL, m->checksum,
							psprintf("registered and pending, but not in the directory (registered from %s)",
									 m->source));
	}
	SPI_finish();
	return (Datum) 0;
}

/* The whole content of a server file, checked to be text in the database encoding. */
static char *
read_text_file(const char *path, const char *filename)
{
	FILE	   *fp = AllocateFile(path, PG_BINARY_R);
	StringInfoData buf;
	char		chunk[8192];
	size_t		n;

	if (fp == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		appendBinaryStringInfo(&buf, chunk, n);
	if (ferror(fp))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", path)));
	FreeFile(fp);
	if (memchr(buf.data, '\0', buf.len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("file \"%s\" contains a zero byte", filename),
				 errhint("A migration file must be text.")));
	if (!pg_verify_mbstr(GetDatabaseEncoding(), buf.data, buf.len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("file \"%s\" is not valid %s", filename, GetDatabaseEncodingName()),
				 errhint("Convert it to the database encoding.")));
	return buf.data;
}

/* A file name with every byte outside ASCII written as \xNN, to show one that is not valid text. */
static char *
escaped_file_name(const char *name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) name; *p; p++)
	{
		if (*p < 0x80 && *p >= 0x20)
			appendStringInfoChar(&buf, (char) *p);
		else
			appendStringInfo(&buf, "\\x%02x", *p);
	}
	return buf.data;
}

static int
filename_cmp(const ListCell *a, const ListCell *b)
{
	return strcmp(((MigrationFile *) lfirst(a))->filename, ((MigrationFile *) lfirst(b))->filename);
}

/* migrate_load(directory): register every migration file of a server directory. */
Datum
migrate_load(PG_FUNCTION_ARGS)
{
	char	   *dir;
	DIR		   *d;
	struct dirent *de;
	List	   *files = NIL;
	ListCell   *lc;

	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read migration files on the server"),
				 errdetail("Only superusers and members of pg_read_server_files may call migrate_load()."),
				 errhint("Send the files from your machine instead: bin/migrate-bundle DIR | psql.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the directory must not be null")));
	dir = text_to_cstring(PG_GETARG_TEXT_PP(0));
	canonicalize_path(dir);

	d = AllocateDir(dir);
	if (d == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open directory \"%s\": %m", dir)));
	while ((de = ReadDir(d, dir)) != NULL)
	{
		MigrationFile *f;
		char	   *path;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		f = palloc0(sizeof(MigrationFile));
		f->filename = pstrdup(de->d_name);
		/* a name that is not text in the database's encoding is never stored nor shown */
		if (!pg_verify_mbstr(GetDatabaseEncoding(), f->filename, strlen(f->filename), true))
		{
			f->filename = escaped_file_name(de->d_name);
			if (ends_with(de->d_name, ".sql"))
				ereport(ERROR,
						(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
						 errmsg("the name of file \"%s\" is not valid %s", f->filename,
								GetDatabaseEncodingName()),
						 errdetail("Bytes that are not valid are shown as \\xNN; versions and names come from file names."),
						 errhint("Rename the file.")));
			f->result = REGISTER_SKIPPED;
			f->detail = "not a migration: its name is not valid text in the database encoding";
			files = lappend(files, f);
			continue;
		}
		path = psprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", path)));
		if (!S_ISREG(st.st_mode))
		{
			f->result = REGISTER_SKIPPED;
			f->detail = "not a migration: not a regular file";
		}
		else if (ends_with(f->filename, ".sql"))
			f->content = read_text_file(path, f->filename);
		pfree(path);
		files = lappend(files, f);
	}
	FreeDir(d);
	list_sort(files, filename_cmp);

	/* files already skipped (directories) stay listed, unregistered */
	{
		List	   *candidates = NIL;
		List	   *others = NIL;

		foreach(lc, files)
		{
			MigrationFile *f = lfirst(lc);

			if (f->result != REGISTER_NONE)
				others = lappend(others, f);
			else
				candidates = lappend(candidates, f);
		}
		files = list_concat(register_files(candidates, false, true), others);
	}
	InitMaterializedSRF(fcinfo, 0);
	put_file_rows(fcinfo, files);
	return (Datum) 0;
}
