-- sqlite3 workload for tests/test_programs.py: run as `sqlite3 :memory: < workload.sql`.
-- 200k rows from a recursive CTE (a deterministic LCG), an index, a join, aggregates. In-memory database
-- with a big page cache: every page is a malloc'd block.
PRAGMA cache_size = -200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, val INTEGER, name TEXT, pad BLOB);
WITH RECURSIVE seq(i, x) AS (
    SELECT 1, 12345
    UNION ALL
    SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM seq WHERE i < 200000
)
INSERT INTO t(id, grp, val, name, pad)
SELECT i, x % 997, x % 100000, 'n' || (x % 50021) || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26),
       zeroblob(x % 300)
FROM seq;
CREATE INDEX t_grp_val ON t(grp, val);
CREATE INDEX t_name ON t(name);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT, weight INTEGER);
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 996)
INSERT INTO g SELECT i, 'group-' || printf('%04d', i) || '-' || char(65 + i % 26), (i * 7919) % 101 FROM s;

SELECT 'rows', count(*), sum(val), min(name), max(name), sum(length(pad)) FROM t;
SELECT 'groups', count(DISTINCT grp) FROM t;
SELECT 'join', g.label, count(*), sum(t.val), avg(t.val) * g.weight
FROM t JOIN g ON g.grp = t.grp
WHERE t.val BETWEEN 1000 AND 60000
GROUP BY g.grp ORDER BY count(*) DESC, g.grp LIMIT 12;
SELECT 'top', name, count(*) AS c FROM t GROUP BY name ORDER BY c DESC, name LIMIT 8;
SELECT 'self', count(*) FROM t a JOIN t b ON a.name = b.name AND a.id < b.id WHERE a.grp < 50;
-- churn: update, delete, vacuum
UPDATE t SET name = name || '+' || val, pad = zeroblob(val % 700) WHERE id % 7 = 0;
DELETE FROM t WHERE val % 5 = 0;
SELECT 'after', count(*), sum(length(name)), sum(length(pad)), total(val) FROM t;
SELECT 'window', grp, val, rank() OVER (PARTITION BY grp ORDER BY val DESC) AS r
FROM t WHERE grp IN (3, 500, 996) ORDER BY grp, r, val LIMIT 15;
SELECT 'group_concat', length(group_concat(name, ',')), substr(group_concat(name, ','), 1, 60)
FROM (SELECT name FROM t ORDER BY name LIMIT 20000);
VACUUM;
PRAGMA integrity_check;
