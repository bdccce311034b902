-- Time-partitioned tables: talaria.create_time_table() and run_maintenance().
-- Fixed timestamps far in the past keep the output independent of now();
-- the partitions premade around now() are left out of the listings.
CREATE TABLE tt_daily (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tt_daily', 'ts', '1 day', '30 days', 1);
SELECT target, time_column, partition_interval, retention, premake FROM talaria.time_tables
 WHERE target = 'tt_daily'::regclass;
-- premake made the current interval and one ahead
SELECT count(*) >= 2 AS premade FROM pg_inherits WHERE inhparent = 'tt_daily'::regclass;

-- the partition covering a time: aligned, named sortably, idempotent
SELECT talaria._create_partition('tt_daily', '2001-02-03 17:45');
SELECT talaria._create_partition('tt_daily', '2001-02-03 00:00');
SELECT talaria._create_partition('tt_daily', '2001-02-04 00:00');
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'tt_daily'::regclass AND c.relname < 'tt_daily_p2020' ORDER BY 1;

-- hours, weeks (ISO Monday), months; timestamp and date columns
CREATE TABLE tt_hourly (ts timestamp NOT NULL) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tt_hourly', 'ts', '6 hours', premake => 0);
SELECT talaria._create_partition('tt_hourly', '2001-02-03 17:45');
CREATE TABLE tt_weekly (d date NOT NULL) PARTITION BY RANGE (d);
SELECT talaria.create_time_table('tt_weekly', 'd', '1 week', premake => 0);
SELECT talaria._create_partition('tt_weekly', '2001-02-03');
CREATE TABLE tt_monthly (ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tt_monthly', 'ts', '1 month', premake => 0);
SELECT talaria._create_partition('tt_monthly', '2001-02-03 17:45');
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent IN ('tt_hourly'::regclass, 'tt_weekly'::regclass, 'tt_monthly'::regclass)
   AND c.relname ~ '_p200' ORDER BY 1;

-- indexes and constraints of the parent reach new partitions
CREATE INDEX ON tt_daily (v);
SELECT talaria._create_partition('tt_daily', '2001-03-01');
SELECT count(*) FROM pg_indexes WHERE tablename = 'tt_daily_p20010301';

-- retention: run_maintenance() drops partitions wholly older than 30 days
SELECT talaria.run_maintenance();
SELECT count(*) AS old_partitions_left FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'tt_daily'::regclass AND c.relname < 'tt_daily_p2020';
-- no retention: kept
SELECT count(*) AS kept FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'tt_monthly'::regclass AND c.relname < 'tt_monthly_p2020';
-- re-registering updates the settings
SELECT talaria.create_time_table('tt_monthly', 'ts', '1 month', '1 year', 0);
SELECT retention FROM talaria.time_tables WHERE target = 'tt_monthly'::regclass;

-- bad inputs
SELECT talaria.create_time_table(NULL, 'ts');
SELECT talaria.create_time_table('tt_daily', NULL);
SELECT talaria.create_time_table('tt_daily', 'ts', NULL);
SELECT talaria.create_time_table('tt_daily', 'ts', premake => NULL);
CREATE TABLE tt_plain (ts timestamptz);
SELECT talaria.create_time_table('tt_plain', 'ts');
CREATE VIEW tt_view AS SELECT now() AS ts;
SELECT talaria.create_time_table('tt_view', 'ts');
SELECT talaria.create_time_table('no_such_table', 'ts');
SELECT talaria.create_time_table('tt_daily', 'nope');
CREATE TABLE tt_listed (ts timestamptz, k int) PARTITION BY LIST (k);
SELECT talaria.create_time_table('tt_listed', 'ts');
CREATE TABLE tt_other_key (ts timestamptz, k int) PARTITION BY RANGE (k);
SELECT talaria.create_time_table('tt_other_key', 'ts');
CREATE TABLE tt_two_keys (ts timestamptz, k int) PARTITION BY RANGE (ts, k);
SELECT talaria.create_time_table('tt_two_keys', 'ts');
CREATE TABLE tt_int_key (ts int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tt_int_key', 'ts');
SELECT talaria.create_time_table('tt_daily', 'ts', '30 minutes');
SELECT talaria.create_time_table('tt_daily', 'ts', '5 hours');
SELECT talaria.create_time_table('tt_daily', 'ts', '2 days');
SELECT talaria.create_time_table('tt_daily', 'ts', '2 months');
SELECT talaria.create_time_table('tt_daily', 'ts', '1 hour 30 minutes');
SELECT talaria.create_time_table('tt_weekly', 'd', '1 hour');
SELECT talaria.create_time_table('tt_daily', 'ts', '1 day', '-1 day');
SELECT talaria.create_time_table('tt_daily', 'ts', '1 day', '0');
SELECT talaria.create_time_table('tt_daily', 'ts', '1 day', NULL, -1);
SELECT talaria._create_partition('tt_plain', '2001-01-01');
