-- workload_pg.sql: PostgreSQL's backend on osmem (tests/test_programs.py, check_postgres). Every query's memory
-- comes from palloc's contexts, which take their blocks from malloc (8 KiB doubling to 8 MiB, and one block per
-- chunk past 8 KiB) and give them back at the context's reset: sorts that spill and sorts in memory, hash joins
-- and hash aggregates, TOASTed values of a few MiB, arrays, jsonb, regular expressions, a plpgsql loop whose
-- exceptions roll back subtransactions, and an index build. Prints digests that do not depend on the allocator.
\set ON_ERROR_STOP 1
SET work_mem = '64kB';
CREATE TABLE t AS SELECT g, md5(g::text) AS s, (g * 7919) % 100003 AS k FROM generate_series(1, 200000) g;
-- an external sort (64 kB of work_mem: runs on tapes, then a merge)
SELECT 'sort-spill', md5(string_agg(s, ',' ORDER BY k, g)) FROM t;
SET work_mem = '256MB';
-- the same in memory, a hash aggregate and a hash join
SELECT 'sort-mem', md5(string_agg(s, ',' ORDER BY s DESC)) FROM t;
SELECT 'hashagg', count(*), sum(c), md5(string_agg(x::text || ':' || c, ',' ORDER BY x))
  FROM (SELECT k % 5000 AS x, count(*) AS c FROM t GROUP BY 1) q;
SELECT 'hashjoin', count(*), sum(a.g + b.g) FROM t a JOIN t b ON a.k = b.g WHERE a.g % 3 = 0;
-- window functions
SELECT 'window', md5(string_agg(r::text, ',' ORDER BY g)) FROM
  (SELECT g, rank() OVER (PARTITION BY k % 97 ORDER BY s) AS r FROM t WHERE g <= 50000) q;
-- large values: TOAST, 1-4 MiB strings built and compared (chunks far past the mmap threshold)
CREATE TABLE big AS SELECT i, repeat(md5(i::text), 32768 * i) AS v FROM generate_series(1, 4) i;
SELECT 'toast', i, length(v), md5(v) FROM big ORDER BY i;
SELECT 'concat', length(string_agg(v, '' ORDER BY i)), md5(string_agg(v, '' ORDER BY i DESC)) FROM big;
-- arrays, jsonb, regular expressions
SELECT 'array', array_length(a, 1), md5(array_to_string(a, ',')) FROM
  (SELECT array_agg(s ORDER BY g) AS a FROM t WHERE g % 2 = 0) q;
SELECT 'jsonb', md5(jsonb_agg(jsonb_build_object('g', g, 's', s, 'k', k) ORDER BY g)::text) FROM t WHERE g <= 40000;
SELECT 'regex', count(*), md5(string_agg(m, ',' ORDER BY g)) FROM
  (SELECT g, (regexp_match(s, '([0-9]+)[a-f]+([0-9]+)'))[2] AS m FROM t WHERE g <= 60000) q WHERE m IS NOT NULL;
-- a recursive query
WITH RECURSIVE r(n, v) AS (SELECT 1, md5('x') UNION ALL SELECT n + 1, md5(v || n) FROM r WHERE n < 20000)
SELECT 'recursive', count(*), max(v) FROM r;
-- plpgsql: subtransactions that fail and roll back, 5,000 of them
CREATE FUNCTION churn(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE bad int := 0; x text;
BEGIN
  FOR i IN 1..n LOOP
    BEGIN
      x := repeat(md5(i::text), i % 200);
      IF i % 3 = 0 THEN PERFORM 1 / 0; END IF;
    EXCEPTION WHEN division_by_zero THEN bad := bad + 1;
    END;
  END LOOP;
  RETURN bad;
END $$;
SELECT 'plpgsql', churn(5000);
-- an index build (a sort of 200k keys), then queries through it, an update and a VACUUM FULL (a table rewrite)
CREATE INDEX t_s ON t (s);
SELECT 'index', count(*) FROM t WHERE s > 'f0' AND s < 'f8';
UPDATE t SET s = md5(s) WHERE g % 4 = 0;
VACUUM FULL t;
SELECT 'after', count(*), md5(string_agg(s, ',' ORDER BY g)) FROM t;
