/*
 * version.c
 *		Versions and the order people mean by them.
 *
 * A version is one or more groups of digits separated by '.', '-' or '_'.
 * Groups compare as numbers, left to right, so 1.2 < 1.10 and 001 < 024 < 100,
 * and 2025-10-08_18 < 2025-10-09_01.  Trailing zero groups do not count
 * (1 = 1.0), nor do leading zeros (024 = 24).  A first group of 8 to 14
 * digits that reads as a date (YYYYMMDD[hh[mm[ss]]]) is a timestamp and is
 * padded with zeros to 14 digits, so that timestamps of different widths sort
 * by time: 20240103000001 < 20251003 < 20251108.
 *
 * The order key is a string that sorts with memcmp (COLLATE "C") in that
 * order: each group as two digits of length followed by its digits.  Equal
 * keys are the same version.  Repeatable migrations ("R__name") have the key
 * "~name", after every version.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_version_key);

#define MAX_GROUP_DIGITS 99

/* The (possibly multibyte) character at p, for messages. */
static char *
char_at(const char *p)
{
	return pnstrdup(p, pg_mblen(p));
}

static void
invalid_version(const char *version, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid migration version \"%s\"", version),
			 errdetail("%s", why),
			 errhint("A version is one or more groups of digits separated by \".\", \"-\" or \"_\", "
					 "such as 001, 1.2.10, 2025-10-08_18 or 20240103000001.")));
}

/*
 * Refuse a version longer than MIGRATE_VERSION_MAX_BYTES, whatever the
 * function it is given to: its key could not be indexed in the catalog.
 */
static void
check_version_length(const char *version)
{
	size_t		len = strlen(version);

	if (len > MIGRATE_VERSION_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the version is too long (%zu bytes)", len),
				 errdetail("A version has at most %d bytes.", MIGRATE_VERSION_MAX_BYTES),
				 errhint("Choose a shorter one.")));
}

/* Does the group of `len` digits at `s` read as YYYYMMDD[hh[mm[ss]]]? */
static bool
is_timestamp_group(const char *s, int len)
{
	int			year,
				month,
				day;

	if (len < 8 || len > 14)
		return false;
	year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	month = (s[4] - '0') * 10 + (s[5] - '0');
	day = (s[6] - '0') * 10 + (s[7] - '0');
	return year >= 1900 && year <= 2999 && month >= 1 && month <= 12 &&
		day >= 1 && day <= 31;
}

char *
version_key(const char *version)
{
	StringInfoData key;
	const char *p = version;
	int			group = 0;
	int			keep_len = 0;	/* key length up to the last non-zero group */

	check_version_length(version);
	if (version[0] == '\0')
		invalid_version(version, "The version is empty.");

	initStringInfo(&key);
	for (;;)
	{
		const char *start = p;
		const char *digits;
		int			len;
		char		padded[15];

		while (*p >= '0' && *p <= '9')
			p++;
		len = p - start;
		if (len == 0)
		{
			if (*p == '\0')
				invalid_version(version, "The version ends with a separator.");
			else if (*p == '.' || *p == '-' || *p == '_')
				invalid_version(version, "A separator must stand between two groups of digits.");
			else
				invalid_version(version, psprintf("Character \"%s\" is neither a digit nor a separator.", char_at(p)));
		}

		digits = start;
		if (group == 0 && is_timestamp_group(start, len))
		{
			memset(padded, '0', 14);
			memcpy(padded, start, len);
			padded[14] = '\0';
			digits = padded;
			len = 14;
		}
		while (len > 0 && *digits == '0')
		{
			digits++;
			len--;
		}
		if (len > MAX_GROUP_DIGITS)
			invalid_version(version, psprintf("A group of digits may have at most %d significant digits.",
											  MAX_GROUP_DIGITS));
		appendStringInfo(&key, "%02d", len);
		appendBinaryStringInfo(&key, digits, len);
		if (len > 0)
			keep_len = key.len;
		group++;

		if (*p == '\0')
			break;
		if (*p != '.' && *p != '-' && *p != '_')
			invalid_version(version, psprintf("Character \"%s\" is neither a digit nor a separator.", char_at(p)));
		p++;
	}
	key.data[keep_len] = '\0';
	return key.data;
}

/*
 * The catalog key of a migration: a version's order key, or for a repeatable
 * migration (written "R__name") "~name", which sorts after every version, so
 * repeatable migrations run after the versioned ones, in name order.
 */
char *
migration_key(const char *version)
{
	check_version_length(version);
	if (strncmp(version, REPEATABLE_PREFIX, strlen(REPEATABLE_PREFIX)) == 0)
	{
		const char *name = version + strlen(REPEATABLE_PREFIX);

		if (*name == '\0')
			invalid_version(version, "A repeatable migration needs a name after \"R__\".");
		return psprintf("~%s", name);
	}
	return version_key(version);
}

/* migration_key(), or NULL for text that is not a version (another tool's). */
char *
migration_key_or_null(const char *version)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile key = NULL;

	PG_TRY();
	{
		key = migration_key(version);
	}
	PG_CATCH();
	{
		/* a pure computation: no state to roll back */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
	return key;
}

/* migrate_version_key(text) -> text: the order key of a version (or R__name). */
Datum
migrate_version_key(PG_FUNCTION_ARGS)
{
	char	   *version = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(migration_key(version)));
}
