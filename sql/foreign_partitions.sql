-- A time table with a foreign partition (postgres_fdw, loopback): rows for
-- it go through its FDW, batched by batch_size, in the same statement,
-- with the same errors and dead letters (0.1.0: SIGSEGV in
-- table_multi_insert, every session of the cluster lost).
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
    EXECUTE format('CREATE SERVER fp_loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname %L, host %L, port %L, batch_size %L)',
                   current_database(), split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'), '10');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER fp_loop;
-- the "remote" table, here in the same database
CREATE TABLE fp_remote_day (ts timestamptz NOT NULL, v int CHECK (v < 1000));
CREATE TABLE fp_ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('fp_ev', 'ts', '1 day', premake => 0);
CREATE FOREIGN TABLE fp_ev_p20010204 PARTITION OF fp_ev
    FOR VALUES FROM ('2001-02-04 00:00+00') TO ('2001-02-05 00:00+00')
    SERVER fp_loop OPTIONS (table_name 'fp_remote_day');
CREATE TABLE fp_raw (ts timestamptz, v int);
SELECT talaria.register_lua('fp_pass', 'function main(r) if r.v < 0 then error("neg") end return r end');
SELECT talaria.create_pipeline('fp_raw', 'fp_ev', 'fp_pass', on_error => 'dead_letter');
-- rows for a local day, the foreign day (25: three batches of 10), a new day
INSERT INTO fp_raw SELECT '2001-02-03 12:00+00', 1
    UNION ALL SELECT '2001-02-04 00:00+00'::timestamptz + g * interval '1 minute', g FROM generate_series(1, 25) g
    UNION ALL SELECT '2001-02-05 12:00+00', 2;
\echo INSERT :ROW_COUNT
SELECT tableoid::regclass, count(*) FROM fp_ev GROUP BY 1 ORDER BY 1;
SELECT count(*) AS remote_rows FROM fp_remote_day;
-- the direct COPY path, and a dead letter among foreign rows
COPY fp_raw FROM stdin;
2001-02-04 10:00+00	100
2001-02-04 10:01+00	-1
2001-02-04 10:02+00	101
\.
\echo COPY :ROW_COUNT
SELECT count(*) AS remote_rows FROM fp_remote_day;
SELECT "row"->>'v' AS v, error FROM talaria.dead_letters WHERE target = 'fp_ev'::regclass;
-- the remote refuses a row: the statement fails, nothing of it stays on
-- either side
INSERT INTO fp_raw VALUES ('2001-02-04 11:00+00', 5), ('2001-02-03 13:00+00', 6), ('2001-02-04 11:01+00', 5000);
SELECT count(*) AS remote_rows FROM fp_remote_day;
SELECT count(*) AS local_rows FROM ONLY fp_ev_p20010203;
-- a rolled back transaction leaves nothing on the remote either
BEGIN;
INSERT INTO fp_raw VALUES ('2001-02-04 12:00+00', 7);
ROLLBACK;
SELECT count(*) AS remote_rows FROM fp_remote_day;
-- many rows, several flushes of the ingest buffer through one remote
-- prepared statement (0.2.0: "prepared statement ... does not exist" or
-- garbage bytes from the second flush on: postgres_fdw's statement name
-- was allocated in per-row memory)
INSERT INTO fp_raw SELECT '2001-02-04 14:00+00'::timestamptz + g * interval '1 second', g % 1000
    FROM generate_series(1, 3500) g;
SELECT count(*) AS remote_rows FROM fp_remote_day;
-- without batching (batch_size 1): row by row
ALTER SERVER fp_loop OPTIONS (SET batch_size '1');
INSERT INTO fp_raw VALUES ('2001-02-04 13:00+00', 8), ('2001-02-04 13:01+00', 9);
SELECT count(*) AS remote_rows FROM fp_remote_day;
DROP TABLE fp_raw, fp_ev, fp_remote_day;
SELECT talaria.drop_transform('fp_pass');
DELETE FROM talaria.dead_letters;
DROP USER MAPPING FOR CURRENT_USER SERVER fp_loop;
DROP SERVER fp_loop;
DROP EXTENSION postgres_fdw;
