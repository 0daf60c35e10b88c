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

/*
 * The order key of a version; or NULL, with *why saying what is wrong (and
 * *too_long for a version too long to index).  Never throws: a validator that
 * can fail returns its reason, as SplitIdentifierString() does.
 */
static char *
try_version_key(const char *version, const char **why, bool *too_long)
{
	StringInfoData key;
	const char *p = version;
	int			group = 0;
	int			keep_len = 0;	/* key length up to the last non-zero group */

	*too_long = strlen(version) > MIGRATE_VERSION_MAX_BYTES;
	if (*too_long)
	{
		*why = psprintf("A version has at most %d bytes.", MIGRATE_VERSION_MAX_BYTES);
		return NULL;
	}
	if (version[0] == '\0')
	{
		*why = "The version is empty.";
		return NULL;
	}

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
				*why = "The version ends with a separator.";
			else if (*p == '.' || *p == '-' || *p == '_')
				*why = "A separator must stand between two groups of digits.";
			else
				*why = psprintf("Character \"%s\" is neither a digit nor a separator.", char_at(p));
			return NULL;
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
		{
			*why = psprintf("A group of digits may have at most %d significant digits.", MAX_GROUP_DIGITS);
			return NULL;
		}
		appendStringInfo(&key, "%02d", len);
		appendBinaryStringInfo(&key, digits, len);
		if (len > 0)
			keep_len = key.len;
		group++;

		if (*p == '\0')
			break;
		if (*p != '.' && *p != '-' && *p != '_')
		{
			*why = psprintf("Character \"%s\" is neither a digit nor a separator.", char_at(p));
			return NULL;
		}
		p++;
	}
	key.data[keep_len] = '\0';
	return key.data;
}

/* The catalog key of a migration (see migration_key()), or NULL with the reason. */
static char *
try_migration_key(const char *version, const char **why, bool *too_long)
{
	if (strncmp(version, REPEATABLE_PREFIX, strlen(REPEATABLE_PREFIX)) == 0)
	{
		const char *name = version + strlen(REPEATABLE_PREFIX);

		*too_long = strlen(version) > MIGRATE_VERSION_MAX_BYTES;
		if (*too_long)
		{
			*why = psprintf("A version has at most %d bytes.", MIGRATE_VERSION_MAX_BYTES);
			return NULL;
		}
		if (*name == '\0')
		{
			*why = "A repeatable migration needs a name after \"R__\".";
			return NULL;
		}
		return psprintf("~%s", name);
	}
	return try_version_key(version, why, too_long);
}

/* Raise the error try_version_key() or try_migration_key() described. */
static void
refuse_version(const char *version, const char *why, bool too_long)
{
	if (too_long)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the version is too long (%zu bytes)", strlen(version)),
				 errdetail("%s", why),
				 errhint("Choose a shorter one.")));
	invalid_version(version, why);
}

char *
version_key(const char *version)
{
	const char *why;
	bool		too_long;
	char	   *key = try_version_key(version, &why, &too_long);

	if (key == NULL)
		refuse_version(version, why, too_long);
	return key;
}

/*
 * The catalog key of a migration: a version's order key, or for a repeatable
 * migration (written "R__name") "~name", which sorts after every version, so
 * repeatable migrations run after the versioned ones, in name order.
 */
char *
migration_key(const char *version)
{
	const char *why;
	bool		too_long;
	char	   *key = try_migration_key(version, &why, &too_long);

	if (key == NULL)
		refuse_version(version, why, too_long);
	return key;
}

/* migration_key(), or NULL for text that is not a version (another tool's). */
char *
migration_key_or_null(const char *version)
{
	const char *why;
	bool		too_long;

	return try_migration_key(version, &why, &too_long);
}

/* migrate_version_key(text) -> text: the order key of a version (or R__name). */
Datum
migrate_version_key(PG_FUNCTION_ARGS)
{
	char	   *version = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(migration_key(version)));
}
