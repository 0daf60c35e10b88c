--
-- 02_versions: migrate_version_key() and the order of versions.
--
-- SQLSTATE and message of an error, to show error codes in this file
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- the key of each kind of version
SELECT v AS version, migrate_version_key(v) AS key
  FROM (VALUES ('1'), ('01'), ('1.0'), ('1.0.0'), ('1.2'), ('1.10'), ('1.2.10'), ('001'),
               ('024'), ('24'), ('100'), ('0'), ('0.0'), ('0.1'), ('0.0.1'), ('1.0.5'),
               ('1-2'), ('1_2'), ('2025-10-08_18'), ('2025-10-09_01'),
               ('20251003'), ('20251108'), ('20240103000001'), ('2025100312'),
               ('202510031200'), ('20251003120000'), ('20251003.1'),
               ('12345678'), ('99999999'), ('20251332'), ('1899123'),
               ('000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001'))
       AS t(v);

-- ORDER BY migrate_version_key(v) COLLATE "C" sorts versions as people mean them
SELECT v AS version
  FROM (VALUES ('1.10'), ('100'), ('1.2'), ('024'), ('001'), ('2025-10-09_01'), ('2025-10-08_18'),
               ('20251108'), ('20240103000001'), ('20251003'), ('1.2.10'), ('1.9'), ('2'), ('0.9'),
               ('2025-10-08_2')) AS t(v)
 ORDER BY migrate_version_key(v) COLLATE "C", v;

-- each claim on its own
SELECT migrate_version_key('1.2') < migrate_version_key('1.10') COLLATE "C" AS "1.2 < 1.10",
       migrate_version_key('1.9') < migrate_version_key('1.10') COLLATE "C" AS "1.9 < 1.10",
       migrate_version_key('1.10') < migrate_version_key('2') COLLATE "C" AS "1.10 < 2";
SELECT migrate_version_key('001') < migrate_version_key('024') COLLATE "C" AS "001 < 024",
       migrate_version_key('024') < migrate_version_key('100') COLLATE "C" AS "024 < 100",
       migrate_version_key('99') < migrate_version_key('100') COLLATE "C" AS "99 < 100";
SELECT migrate_version_key('2025-10-08_18') < migrate_version_key('2025-10-09_01') COLLATE "C"
         AS "2025-10-08_18 < 2025-10-09_01",
       migrate_version_key('2025-10-08_2') < migrate_version_key('2025-10-08_18') COLLATE "C"
         AS "2025-10-08_2 < 2025-10-08_18";
SELECT migrate_version_key('20240103000001') < migrate_version_key('20251003') COLLATE "C"
         AS "20240103000001 < 20251003",
       migrate_version_key('20251003') < migrate_version_key('20251108') COLLATE "C"
         AS "20251003 < 20251108",
       migrate_version_key('20251003') < migrate_version_key('2025100301') COLLATE "C"
         AS "20251003 < 2025100301",
       migrate_version_key('2025100323') < migrate_version_key('20251004') COLLATE "C"
         AS "2025100323 < 20251004";
SELECT migrate_version_key('1') = migrate_version_key('1.0') AS "1 = 1.0",
       migrate_version_key('1.0') = migrate_version_key('1.0.0') AS "1.0 = 1.0.0",
       migrate_version_key('024') = migrate_version_key('24') AS "024 = 24",
       migrate_version_key('1.2') = migrate_version_key('1-2') AS "1.2 = 1-2",
       migrate_version_key('1-2') = migrate_version_key('1_2') AS "1-2 = 1_2",
       migrate_version_key('20251003') = migrate_version_key('20251003000000')
         AS "20251003 = 20251003000000";
SELECT migrate_version_key('1') <> migrate_version_key('1.0.1') AS "1 <> 1.0.1",
       migrate_version_key('1.0') < migrate_version_key('1.0.1') COLLATE "C" AS "1.0 < 1.0.1",
       migrate_version_key('0.0.1') < migrate_version_key('0.1') COLLATE "C" AS "0.0.1 < 0.1",
       migrate_version_key('0') < migrate_version_key('0.1') COLLATE "C" AS "0 < 0.1";

-- strict: null in, null out
SELECT migrate_version_key(NULL) IS NULL AS null_is_null;

-- invalid versions, each on its own line: message, DETAIL and HINT
SELECT migrate_version_key('');
SELECT migrate_version_key('v1');
SELECT migrate_version_key('1..2');
SELECT migrate_version_key('1.');
SELECT migrate_version_key('.1');
SELECT migrate_version_key('1 2');
SELECT migrate_version_key('1a');
SELECT migrate_version_key('x');
SELECT migrate_version_key(' 1');
SELECT migrate_version_key('-1');
SELECT migrate_version_key('1/2');
-- and their SQLSTATE
SELECT v AS version, pg_temp.sqlstate_of(format('SELECT migrate_version_key(%L)', v)) AS error
  FROM (VALUES (1, ''), (2, 'v1'), (3, '1..2'), (4, '1.'), (5, '.1'), (6, '1 2'), (7, '1a'),
               (8, 'x'), (9, ' 1'), (10, '-1'), (11, '1/2')) AS t(n, v)
 ORDER BY n;

-- a non-ASCII character: the DETAIL should name the whole character (é is
-- the two bytes \303\251 in UTF-8); shown as bytes, since the DETAIL is sent
-- to the client as is
SELECT pg_temp.sqlstate_of($$SELECT migrate_version_key('1é')$$) AS error;
CREATE FUNCTION pg_temp.detail_bytes_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN encode(textsend(d), 'escape');
END
$$;
SELECT pg_temp.detail_bytes_of($$SELECT migrate_version_key('1é')$$) AS detail_bytes;

-- a first group of 8 to 14 digits that is not a date (YYYYMMDD...) is a
-- plain number, and sorts before every date-like group of any width
SELECT migrate_version_key('99999999') < migrate_version_key('20251003') COLLATE "C"
         AS "99999999 < 20251003",
       migrate_version_key('20251332') < migrate_version_key('20240103') COLLATE "C"
         AS "20251332 < 20240103",
       migrate_version_key('30000101') < migrate_version_key('29991231') COLLATE "C"
         AS "30000101 < 29991231",
       migrate_version_key('20250231') < migrate_version_key('20250301') COLLATE "C"
         AS "20250231 < 20250301";

-- a group may have at most 99 significant digits; leading zeros do not count
SELECT length(migrate_version_key(repeat('9', 99))) AS key_length_99_digits;
SELECT length(migrate_version_key(repeat('0', 200) || repeat('9', 99))) AS key_length_99_with_zeros;
SELECT migrate_version_key('1' || repeat('0', 99));
SELECT pg_temp.sqlstate_of(format('SELECT migrate_version_key(%L)', '1.' || repeat('1', 100)))
       AS hundred_digit_group;
