-- Row times that cannot or should not get a partition are that row's error
-- (a dead letter in dead_letter mode), never a new partition in year
-- 55,840 or a lost statement: infinity, BC, beyond year 9999, and times
-- outside the time table's accepted window (max_past, max_future).
SET client_min_messages = warning;
CREATE TABLE win_raw (ts timestamptz, v int);
CREATE TABLE win_ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('win_ev', 'ts', '1 day', premake => 0);
SELECT max_past, max_future FROM talaria.time_tables WHERE target = 'win_ev'::regclass;
SELECT talaria.register_lua('win_pass', 'function main(r) return r end');
SELECT talaria.create_pipeline('win_raw', 'win_ev', 'win_pass', on_error => 'dead_letter');
DELETE FROM talaria.dead_letters;
-- good rows around the bad ones are stored; each bad one is a dead letter
INSERT INTO win_raw VALUES ('2001-02-03 04:05:06+00', 1), ('infinity', 2), ('-infinity', 3),
    ('294276-01-01 00:00:00+00', 4), ('4713-01-01 00:00:00+00 BC', 5),
    ('10000-01-01 00:00:00+00', 6), ('2001-02-04 04:05:06+00', 7);
-- epoch milliseconds sent as seconds: 50 rows, 50 dead letters, no partition
INSERT INTO win_raw SELECT to_timestamp(1700000000000 + i * 86400), 100 + i
  FROM generate_series(1, 50) i;
SELECT v, ts FROM win_ev ORDER BY v;
SELECT "row"->>'v' AS v, error, sqlstate FROM talaria.dead_letters
 WHERE target = 'win_ev'::regclass ORDER BY ("row"->>'v')::int LIMIT 7;
SELECT count(*) AS dead_letters FROM talaria.dead_letters WHERE target = 'win_ev'::regclass;
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'win_ev'::regclass AND c.relname < 'win_ev_p2020' ORDER BY 1;
-- the direct COPY path alike
COPY win_raw FROM stdin;
2001-02-05 04:05:06+00	8
infinity	9
\.
SELECT count(*) AS stored FROM win_ev;
SELECT count(*) AS dead_letters FROM talaria.dead_letters WHERE target = 'win_ev'::regclass;
-- abort mode: the statement fails, naming the row's time and the window
CREATE TABLE win_raw2 (ts timestamptz, v int);
SELECT talaria.create_pipeline('win_raw2', 'win_ev', 'win_pass');
INSERT INTO win_raw2 VALUES ('2001-02-03 04:05:06+00', 1), ('infinity', 2);
-- a window of the table's own: max_past and max_future
SELECT talaria.create_time_table('win_ev', 'ts', '1 day', premake => 0,
                                 max_past => '7 days', max_future => '2 days');
DO $$
BEGIN
    INSERT INTO win_raw2 VALUES (now() - interval '8 days', 1);
EXCEPTION WHEN datetime_field_overflow THEN
    RAISE WARNING 'refused (%): %', SQLSTATE, regexp_replace(SQLERRM, 'time .* in column', 'time ... in column');
END $$;
DO $$
BEGIN
    INSERT INTO win_raw2 VALUES (now() + interval '3 days', 1);
EXCEPTION WHEN datetime_field_overflow THEN
    RAISE WARNING 'refused (%): %', SQLSTATE, regexp_replace(SQLERRM, 'time .* in column', 'time ... in column');
END $$;
INSERT INTO win_raw2 VALUES (now() - interval '6 days', 10), (now() + interval '1 day', 11);
SELECT v FROM win_ev WHERE v >= 10 ORDER BY v;
-- NULL: no limit but years 1 to 9999
SELECT talaria.create_time_table('win_ev', 'ts', '1 day', premake => 0, max_future => NULL);
INSERT INTO win_raw2 VALUES ('2500-01-01 00:00:00+00', 12);
SELECT v, ts FROM win_ev WHERE v = 12;
-- the window is checked for timestamp and date columns too
CREATE TABLE win_d (d date NOT NULL, v int) PARTITION BY RANGE (d);
SELECT talaria.create_time_table('win_d', 'd', '1 day', premake => 0);
CREATE TABLE win_rawd (d date, v int);
SELECT talaria.create_pipeline('win_rawd', 'win_d', 'win_pass', on_error => 'dead_letter');
INSERT INTO win_rawd VALUES ('2001-02-03', 1), ('infinity', 2), ('4713-01-01 BC', 3);
SELECT d, v FROM win_d;
SELECT "row"->>'v' AS v, error FROM talaria.dead_letters WHERE target = 'win_d'::regclass ORDER BY 1;
-- bad settings
SELECT talaria.create_time_table('win_d', 'd', max_past => '-1 day');
SELECT talaria.create_time_table('win_d', 'd', max_future => '0');
DROP TABLE win_raw, win_raw2, win_rawd, win_ev, win_d;
SELECT talaria.drop_transform('win_pass');
DELETE FROM talaria.dead_letters;
