-- Helpers for test/bench/run.sh, installed in the benchmark template database.

-- bench_ms(sql, n): run `sql` once to warm up, then n times, each timed with
-- clock_timestamp() on the server; median and minimum milliseconds per call.
CREATE FUNCTION bench_ms(sql text, n integer, OUT median_ms float8, OUT min_ms float8)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    times float8[] := '{}';
BEGIN
    EXECUTE sql;
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        EXECUTE sql;
        times := times || (extract(epoch FROM clock_timestamp() - t0) * 1000)::float8;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), min(x)
      INTO median_ms, min_ms
      FROM unnest(times) x;
END
$$;
