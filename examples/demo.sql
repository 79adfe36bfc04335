-- The main job's workload: sqlite3 building, indexing and joining tables on osmem.
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount INTEGER, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
INSERT INTO customers SELECT i, 'customer-' || i, 'city-' || (i % 37) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
INSERT INTO orders SELECT i, 1 + (i * 7919) % 5000, (i * 31) % 1000, printf('%.*c', i % 200, 'x') FROM n;
CREATE INDEX orders_customer ON orders(customer);
SELECT c.city, count(*), sum(o.amount), max(length(o.note))
FROM orders o JOIN customers c ON c.id = o.customer
GROUP BY c.city ORDER BY sum(o.amount) DESC LIMIT 5;
DELETE FROM orders WHERE amount < 500;
VACUUM;
SELECT count(*), sum(amount) FROM orders;
