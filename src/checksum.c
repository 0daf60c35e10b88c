/*
 * checksum.c
 *		SHA-256 of a migration's text, as users expect to compare it: the same
 *		script saved with CRLF or CR line ends, or with a UTF-8 byte order
 *		mark, has the same checksum.
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_checksum);

static void
hash_update(pg_cryptohash_ctx *ctx, const char *data, size_t len)
{
	if (len > 0 && pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "could not update SHA-256 checksum: %s", pg_cryptohash_error(ctx));
}

static pg_cryptohash_ctx *
hash_begin(void)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256 checksum: %s", pg_cryptohash_error(ctx));
	return ctx;
}

/* Finish a hash: its digest in lower-case hex. */
static char *
hash_end(pg_cryptohash_ctx *ctx)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex;

	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not finalize SHA-256 checksum: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);
	hex_encode((const char *) digest, PG_SHA256_DIGEST_LENGTH, hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return hex;
}

char *
script_checksum(const char *text)
{
	pg_cryptohash_ctx *ctx = hash_begin();
	const char *p = script_skip_bom(text);
	const char *run;
	const char *end;
	static const char lf = '\n';

	/* hash runs of ordinary bytes; CRLF and lone CR become LF */
	end = p + strlen(p);
	run = p;
	while ((p = memchr(run, '\r', end - run)) != NULL)
	{
		hash_update(ctx, run, p - run);
		hash_update(ctx, &lf, 1);
		run = (p[1] == '\n') ? p + 2 : p + 1;
	}
	hash_update(ctx, run, end - run);
	return hash_end(ctx);
}

/* Hex SHA-256 of bytes as they are (no line-end folding). */
char *
sha256_hex(const char *data, size_t len)
{
	pg_cryptohash_ctx *ctx = hash_begin();

	hash_update(ctx, data, len);
	return hash_end(ctx);
}

/* migrate_checksum(text) -> text: the checksum migrate_add() would record. */
Datum
migrate_checksum(PG_FUNCTION_ARGS)
{
	char	   *script = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(script_checksum(script)));
}
