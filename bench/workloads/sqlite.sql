-- sqlite3 workload for bench/run.py: run as `sqlite3 :memory: < sqlite.sql`, after run.py's first line
-- `CREATE TEMP TABLE param(n); INSERT INTO param VALUES(N);` sets the number of orders (scale).
-- An in-memory shop: customers and orders generated from a deterministic LCG, indexes built after the load,
-- joins, aggregates, a sort without an index (the sorter's buffers), string building, updates and deletes
-- that leave holes in the b-trees, and a VACUUM that rebuilds them. Every page and every sort run is a
-- malloc'd block (the page cache is large): the database is the allocator's workload.
PRAGMA cache_size = -400000;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, tier INTEGER, notes TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, day INTEGER, amount INTEGER, item TEXT, memo BLOB);

WITH RECURSIVE c(i, x) AS (
    SELECT 1, 777
    UNION ALL
    SELECT i + 1, (x * 1664525 + 1013904223) % 4294967296 FROM c WHERE i < (SELECT n FROM param) / 10
)
INSERT INTO customer SELECT i, 'cust' || (x % 100003), 'city' || (x % 211), x % 5,
       substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor', 1 + x % 40,
              10 + x % 37)
FROM c;

WITH RECURSIVE o(i, x) AS (
    SELECT 1, 4242
    UNION ALL
    SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM o WHERE i < (SELECT n FROM param)
)
INSERT INTO orders SELECT i, 1 + x % ((SELECT n FROM param) / 10), x % 365, x % 50000,
       'item-' || (x % 4999) || '-' || char(65 + x % 26, 97 + (x / 26) % 26), zeroblob(x % 200)
FROM o;

CREATE INDEX orders_customer ON orders(customer, day);
CREATE INDEX orders_item ON orders(item);
CREATE INDEX customer_city ON customer(city, tier);

SELECT 'load', (SELECT count(*) FROM customer), count(*), sum(amount), sum(length(memo)) FROM orders;
SELECT 'city', c.city, count(*), sum(o.amount)
FROM orders o JOIN customer c ON c.id = o.customer
GROUP BY c.city ORDER BY sum(o.amount) DESC, c.city LIMIT 5;
SELECT 'tier', c.tier, count(DISTINCT o.item), avg(o.amount)
FROM customer c JOIN orders o ON o.customer = c.id
WHERE o.day BETWEEN 30 AND 200 GROUP BY c.tier ORDER BY c.tier;
SELECT 'sorted', id, amount, item FROM orders ORDER BY (amount * 7919 + id) % 100003, id LIMIT 3 OFFSET 1000;
SELECT 'items', item, count(*) AS k FROM orders GROUP BY item ORDER BY k DESC, item LIMIT 5;
SELECT 'names', length(group_concat(name || '@' || city, ';')) FROM (SELECT name, city FROM customer ORDER BY name);
SELECT 'top', c.name, sum(o.amount) AS s
FROM customer c JOIN orders o ON o.customer = c.id
GROUP BY c.id ORDER BY s DESC, c.id LIMIT 5;

-- churn: rewrite a seventh of the rows with longer text, delete a fifth, add fresh rows
UPDATE orders SET item = item || '/' || amount || '/' || day, memo = zeroblob(amount % 500) WHERE id % 7 = 0;
DELETE FROM orders WHERE amount % 5 = 0;
UPDATE customer SET notes = notes || ' ' || notes || ' ' || name WHERE tier = 2;
INSERT INTO orders(customer, day, amount, item, memo)
SELECT customer, (day + 1) % 365, amount + 1, item || '+', memo FROM orders WHERE id % 11 = 0;
SELECT 'churned', count(*), sum(amount), sum(length(item)), sum(length(memo)) FROM orders;
SELECT 'window', customer, day, amount, rank() OVER (PARTITION BY customer ORDER BY amount DESC, id) AS r
FROM orders WHERE customer IN (5, 50, 500) ORDER BY customer, r LIMIT 9;
VACUUM;
SELECT 'after vacuum', count(*), sum(amount) FROM orders;
PRAGMA integrity_check;
