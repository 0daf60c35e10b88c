/*
 * history.c
 *		The hash chain of migrate.history.  Each row's hash is the SHA-256 of
 *		the previous row's hash and of the row's own content, so a row edited,
 *		removed or inserted outside migrate breaks the chain.  The content is
 *		serialised here, the same whatever the session's settings (DateStyle,
 *		TimeZone, IntervalStyle, extra_float_digits): the insert trigger and
 *		the check share this one definition.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_history_hash);

/* The columns of a history row that its hash covers, in order. */
static const struct
{
	const char *name;
	Oid			type;
}			content_columns[] = {
	{"id", INT8OID},
	{"version", TEXTOID},
	{"version_key", TEXTOID},
	{"name", TEXTOID},
	{"action", TEXTOID},
	{"checksum", TEXTOID},
	{"performed_by", NAMEOID},
	{"performed_at", TIMESTAMPTZOID},
	{"duration", INTERVALOID},
	{"rows_affected", INT8OID},
	{"counts", JSONBOID},
	{"checks", INT4OID},
	{"outcome", TEXTOID},
	{"detail", JSONBOID},
};

#define N_CONTENT_COLUMNS lengthof(content_columns)

/* One field: "N;" for NULL, else "<length>:<canonical text>;". */
static void
append_field(StringInfo buf, Datum value, bool isnull, Oid type)
{
	char	   *str;
	int			len;

	if (isnull)
	{
		appendStringInfoString(buf, "N;");
		return;
	}
	switch (type)
	{
		case TEXTOID:
			{
				text	   *t = DatumGetTextPP(value);

				str = VARDATA_ANY(t);
				len = VARSIZE_ANY_EXHDR(t);
				break;
			}
		case NAMEOID:
			str = NameStr(*DatumGetName(value));
			len = strlen(str);
			break;
		case INT8OID:
			str = psprintf(INT64_FORMAT, DatumGetInt64(value));
			len = strlen(str);
			break;
		case INT4OID:
			str = psprintf("%d", DatumGetInt32(value));
			len = strlen(str);
			break;
		case TIMESTAMPTZOID:
			/* microseconds since 2000-01-01 UTC: no DateStyle, no TimeZone */
			str = psprintf(INT64_FORMAT, DatumGetTimestampTz(value));
			len = strlen(str);
			break;
		case INTERVALOID:
			{
				Interval   *iv = DatumGetIntervalP(value);

				str = psprintf("%d,%d," INT64_FORMAT, iv->month, iv->day, iv->time);
				len = strlen(str);
				break;
			}
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				/* jsonb's text is canonical: keys sorted, one spacing */
				str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
				len = strlen(str);
				break;
			}
		default:
			elog(ERROR, "unexpected type %u in a history row", type);
	}
	appendStringInfo(buf, "%d:", len);
	appendBinaryStringInfo(buf, str, len);
	appendStringInfoChar(buf, ';');
}

/*
 * Hex SHA-256 of prev (NULL for the first row), a newline, and the content,
 * into hex (PG_SHA256_DIGEST_LENGTH * 2 + 1 bytes), with a context that the
 * caller creates once.
 */
static void
chain_hash(pg_cryptohash_ctx *ctx, const char *prev, StringInfo content, char *hex)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		(prev && pg_cryptohash_update(ctx, (const uint8 *) prev, strlen(prev)) < 0) ||
		pg_cryptohash_update(ctx, (const uint8 *) "\n", 1) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) content->data, content->len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256 digest: %s", pg_cryptohash_error(ctx))));
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
}

/*
 * migrate.history_hash(prev text, h migrate.history) -> text: the hash that
 * row h must carry when it follows a row whose hash is prev.
 */
Datum
migrate_history_hash(PG_FUNCTION_ARGS)
{
	HeapTupleHeader row;
	StringInfoData content;
	pg_cryptohash_ctx *ctx;
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the history row must not be null")));
	row = PG_GETARG_HEAPTUPLEHEADER(1);
	initStringInfo(&content);
	for (int i = 0; i < N_CONTENT_COLUMNS; i++)
	{
		bool		isnull;
		Datum		value = GetAttributeByName(row, content_columns[i].name, &isnull);

		append_field(&content, value, isnull, content_columns[i].type);
	}
	ctx = pg_cryptohash_create(PG_SHA256);
	chain_hash(ctx, PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)), &content, hex);
	pg_cryptohash_free(ctx);
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/*
 * Follow what the history says about one migration of the catalog: it is
 * applied by the history's account after an apply, baseline or import that
 * no revert followed; and, when it is marked applied, explained when its
 * latest apply, baseline, import or repair was of the applied checksum and
 * not reverted since.
 */
static bool
text_is(Datum d, const char *s)
{
	text	   *t = DatumGetTextPP(d);
	int			len = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

static bool
jsonb_has_key(Datum d, const char *key)
{
	Jsonb	   *jb = DatumGetJsonbP(d);
	JsonbValue	k;

	if (!JB_ROOT_IS_OBJECT(jb))
		return false;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k) != NULL;
}

static void
note_action(Catalog *cat, Datum *values, bool *nulls)
{
	Datum		action = values[4];
	bool		revert;
	Migration  *m;

	if (nulls[4] || nulls[2] || nulls[12] || !text_is(values[12], "ok"))
		return;
	revert = text_is(action, "revert");
	if (!revert && !text_is(action, "apply") && !text_is(action, "baseline") &&
		!text_is(action, "import") && !text_is(action, "repair"))
		return;
	/* a repair that cleared a failure says nothing about what is applied */
	if (text_is(action, "repair") && !nulls[13] && jsonb_has_key(values[13], "cleared"))
		return;
	m = catalog_find(cat, TextDatumGetCString(values[2]));
	if (m == NULL)
		return;
	/* a repair changes what was applied, not whether */
	if (revert)
		m->history_applied = false;
	else if (!text_is(action, "repair"))
		m->history_applied = true;
	if (m->applied)
		m->explained = !revert && !nulls[5] && text_is(values[5], m->applied_checksum);
}

/*
 * The first history row whose hash does not follow from the row before it
 * and its own content, or NULL; and, on the way, which applied migrations of
 * the catalog the history explains (Migration.explained).  Reads the history
 * in batches through a cursor, as the catalog's owner: memory stays bounded
 * however long it is.
 */
HistoryBreak *
history_scan(Catalog *cat)
{
	static const char *sql =
		"SELECT id, version, version_key, name, action, checksum, performed_by, performed_at, "
		"       duration, rows_affected, counts, checks, outcome, detail, hash "
		"  FROM migrate.history ORDER BY id";
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext row_cxt = AllocSetContextCreate(cxt, "history chain", ALLOCSET_DEFAULT_SIZES);
	HistoryBreak *result = NULL;
	char	   *prev = NULL;
	char		expected[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	Datum		values[N_CONTENT_COLUMNS + 1];
	bool		nulls[N_CONTENT_COLUMNS + 1];
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	OwnerScope	scope;
	Portal		portal;

	catalog_enter(&scope);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, false, 0);
	for (int i = 0; i < cat->n; i++)
		cat->items[i]->explained = cat->items[i]->history_applied = false;
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			StringInfoData content;

			CHECK_FOR_INTERRUPTS();
			MemoryContextSwitchTo(row_cxt);
			heap_deform_tuple(tup, desc, values, nulls);
			note_action(cat, values, nulls);
			initStringInfo(&content);
			for (int i = 0; i < N_CONTENT_COLUMNS; i++)
				append_field(&content, values[i], nulls[i], content_columns[i].type);
			chain_hash(ctx, prev, &content, expected);
			MemoryContextSwitchTo(cxt);
			if (prev)
				pfree(prev);
			/* the next row follows the hash this row carries */
			prev = nulls[N_CONTENT_COLUMNS] ? NULL : TextDatumGetCString(values[N_CONTENT_COLUMNS]);
			if (result == NULL && (prev == NULL || strcmp(prev, expected) != 0))
			{
				result = palloc0(sizeof(HistoryBreak));
				result->id = DatumGetInt64(values[0]);
				result->version = SPI_getvalue(tup, desc, 2);
				result->name = SPI_getvalue(tup, desc, 4);
			}
			MemoryContextReset(row_cxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	catalog_leave(&scope);
	pg_cryptohash_free(ctx);
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(row_cxt);
	return result;
}
