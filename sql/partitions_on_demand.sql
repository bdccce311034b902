-- Partitions on demand through the database's partition worker: a
-- statement's rows of missing partitions wait aside while the worker makes
-- them, then land in the right partitions; counts, row numbers in errors
-- and the worker's errors (with their SQLSTATE) are the statement's.
SET client_min_messages = warning;
SET timezone = 'UTC';
SELECT talaria.register_lua('pod_pass', 'function main(r) return r end');
CREATE TABLE pod_raw (ts timestamptz, v int);
CREATE TABLE pod_ev (ts timestamptz NOT NULL, v int CHECK (v <> -13)) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('pod_ev', 'ts', '1 day', premake => 0);
SELECT talaria.create_pipeline('pod_raw', 'pod_ev', 'pod_pass');

-- 60 new days in one statement, rows in time order, and out of order
INSERT INTO pod_raw SELECT '2001-01-01 00:00+00'::timestamptz + i * interval '1 hour', i
  FROM generate_series(0, 60 * 24 - 1) i;
INSERT INTO pod_raw SELECT '2001-06-01 00:00+00'::timestamptz + ((i * 37) % 60) * interval '1 day', i
  FROM generate_series(1, 600) i;
SELECT count(*) AS partitions, sum(n) AS rows, min(n), max(n),
       bool_and(ok) AS every_row_in_its_day
  FROM (SELECT c.relname, count(*) AS n,
               bool_and(c.relname = 'pod_ev_p' || to_char(e.ts AT TIME ZONE 'UTC', 'YYYYMMDD')) AS ok
          FROM pod_ev e JOIN pg_class c ON c.oid = e.tableoid GROUP BY 1) p;
-- the command tag counts the rows kept aside too
\set QUIET 0
COPY pod_raw FROM stdin;
2002-01-01 00:00:00+00	1
2002-01-02 00:00:00+00	2
2001-01-01 00:00:00+00	3
2002-01-03 00:00:00+00	4
\.
\set QUIET 1
SELECT v, tableoid::regclass FROM pod_ev WHERE ts >= '2002-01-01' ORDER BY v;

-- a view source (INSTEAD OF trigger): rows of new days count as inserted
CREATE VIEW pod_view AS SELECT NULL::timestamptz AS ts, NULL::int AS v WHERE false;
SELECT talaria.create_pipeline('pod_view', 'pod_ev', 'pod_pass');
\set QUIET 0
INSERT INTO pod_view VALUES ('2002-02-01 00:00+00', 1), ('2002-02-02 00:00+00', 2);
\set QUIET 1
SELECT count(*) AS view_rows FROM pod_ev WHERE ts >= '2002-02-01';

-- date and hourly time tables
CREATE TABLE pod_d_raw (d date, v int);
CREATE TABLE pod_d (d date NOT NULL, v int) PARTITION BY RANGE (d);
SELECT talaria.create_time_table('pod_d', 'd', '1 week', premake => 0);
SELECT talaria.create_pipeline('pod_d_raw', 'pod_d', 'pod_pass');
INSERT INTO pod_d_raw SELECT date '2001-01-01' + i, i FROM generate_series(0, 20) i;
SELECT tableoid::regclass, min(d), max(d), count(*) FROM pod_d GROUP BY 1 ORDER BY 2;
CREATE TABLE pod_h_raw (ts timestamp, v int);
CREATE TABLE pod_h (ts timestamp NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('pod_h', 'ts', '6 hours', premake => 0);
SELECT talaria.create_pipeline('pod_h_raw', 'pod_h', 'pod_pass');
INSERT INTO pod_h_raw SELECT timestamp '2001-01-01 22:00' + i * interval '1 hour', i FROM generate_series(0, 9) i;
SELECT tableoid::regclass, min(ts), max(ts), count(*) FROM pod_h GROUP BY 1 ORDER BY 2;

-- a default partition takes what no other partition covers: nothing is made
CREATE TABLE pod_def_raw (ts timestamptz, v int);
CREATE TABLE pod_def (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE pod_def_other PARTITION OF pod_def DEFAULT;
SELECT talaria.create_time_table('pod_def', 'ts', '1 day', premake => 0);
SELECT talaria.create_pipeline('pod_def_raw', 'pod_def', 'pod_pass');
INSERT INTO pod_def_raw VALUES ('2001-01-01 00:00+00', 1), ('2001-01-05 00:00+00', 2);
SELECT tableoid::regclass, count(*) FROM pod_def GROUP BY 1;

-- in a transaction that holds a lock the worker would wait for, the
-- partitions are made in that transaction; rolled back, they go with it
BEGIN;
LOCK TABLE pod_ev IN SHARE UPDATE EXCLUSIVE MODE;
INSERT INTO pod_raw VALUES ('2003-01-01 00:00+00', 1), ('2003-01-02 00:00+00', 2);
SELECT count(*) AS made_here FROM pod_ev WHERE ts >= '2003-01-01';
ROLLBACK;
SELECT count(*) AS after_rollback FROM pg_class WHERE relname LIKE 'pod_ev_p2003%';
-- made by the worker, they stay: an ingest that rolls back leaves them
BEGIN;
INSERT INTO pod_raw VALUES ('2003-02-01 00:00+00', 1);
ROLLBACK;
SELECT relname AS left_behind FROM pg_class WHERE relname LIKE 'pod_ev_p200302%';

-- errors
-- a row kept aside that breaks a constraint is named by its own number,
-- also in the middle of a COPY (not by the line being read)
INSERT INTO pod_raw VALUES ('2001-01-01 00:00+00', 1), ('2004-01-01 00:00+00', -13),
  ('2001-01-01 00:00+00', 3), ('2001-01-01 00:00+00', 4);
SET talaria.ingest_batch_size = 1;
COPY pod_raw FROM stdin;
2001-01-01 00:00:00+00	1
2004-01-02 00:00:00+00	-13
2004-01-03 00:00:00+00	3
2004-01-04 00:00:00+00	4
2004-01-05 00:00:00+00	5
2001-01-01 00:00:00+00	6
\.
RESET talaria.ingest_batch_size;
-- the worker's error reaches the statement, with its SQLSTATE
CREATE TABLE pod_ev_p20040201 (ts timestamptz, v int);
INSERT INTO pod_raw VALUES ('2004-02-01 12:00+00', 1);
DO $$
BEGIN
    INSERT INTO pod_raw VALUES ('2004-02-01 12:00+00', 1);
EXCEPTION WHEN duplicate_table THEN
    RAISE WARNING 'refused (%): %', SQLSTATE, SQLERRM;
END $$;
-- the same error when the partition is made in the ingesting transaction
BEGIN;
LOCK TABLE pod_ev IN SHARE UPDATE EXCLUSIVE MODE;
INSERT INTO pod_raw VALUES ('2004-02-01 12:00+00', 1);
ROLLBACK;
-- the worker's settings: superuser and server-wide
SET talaria.partition_worker_idle_timeout = '1s';
SHOW talaria.partition_worker_idle_timeout;
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'talaria.partition_worker%' ORDER BY 1;
