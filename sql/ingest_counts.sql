-- INSERT and COPY into a pipeline source report the rows the pipeline
-- stored (0.1.0 reported 0: the source keeps none), as a plain INSERT into
-- the target would: rows dropped by nil and dead letters are not counted.
SET client_min_messages = warning;
CREATE TABLE cnt_raw (ts timestamptz, v int);
CREATE TABLE cnt_ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('cnt_ev', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('cnt_t', $$
function main(r)
  if r.v == 0 then return nil end
  if r.v < 0 then error("negative") end
  return r
end$$);
SELECT talaria.create_pipeline('cnt_raw', 'cnt_ev', 'cnt_t', on_error => 'dead_letter');
INSERT INTO cnt_raw VALUES ('2001-02-03', 1), ('2001-02-03', 0), ('2001-02-03', -1),
                           ('2001-02-04', 2), ('2001-02-05', 3);
\echo INSERT :ROW_COUNT
INSERT INTO cnt_raw VALUES ('2001-02-03', 4);
\echo INSERT :ROW_COUNT
INSERT INTO cnt_raw VALUES ('2001-02-03', 0);
\echo INSERT :ROW_COUNT
INSERT INTO cnt_raw SELECT '2001-02-06', g FROM generate_series(-2, 7) g;
\echo INSERT ... SELECT :ROW_COUNT
COPY cnt_raw FROM stdin;
2001-02-03	10
2001-02-03	0
2001-02-03	-10
2001-02-07	11
\.
\echo COPY :ROW_COUNT
-- through the trigger (the direct path off): the same count
SET talaria.copy_fast_path = off;
COPY cnt_raw FROM stdin;
2001-02-03	12
2001-02-03	0
2001-02-08	13
\.
\echo COPY :ROW_COUNT
RESET talaria.copy_fast_path;
-- inside PL/pgSQL
DO $$
DECLARE n bigint;
BEGIN
    INSERT INTO cnt_raw VALUES ('2001-02-03', 20), ('2001-02-03', 0), ('2001-02-03', 21);
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE WARNING 'ROW_COUNT in PL/pgSQL: %', n;
END $$;
-- rows in = stored + dropped + dead letters
SELECT (SELECT count(*) FROM cnt_ev) AS stored,
       (SELECT count(*) FROM talaria.dead_letters WHERE target = 'cnt_ev'::regclass) AS dead_letters;
-- an INSERT into a plain table is untouched
CREATE TABLE cnt_plain (v int);
INSERT INTO cnt_plain VALUES (1), (2);
\echo INSERT :ROW_COUNT
DROP TABLE cnt_raw, cnt_ev, cnt_plain;
SELECT talaria.drop_transform('cnt_t');
DELETE FROM talaria.dead_letters;

-- a view as the source: its INSTEAD OF trigger returns each row it stored,
-- so INSERT counts them even in a session that has not loaded the library
-- (the hooks above are not there for its first statement)
CREATE TABLE cntv_ev (ts timestamptz NOT NULL, v int);
CREATE VIEW cntv_raw AS SELECT NULL::timestamptz AS ts, NULL::int AS v WHERE false;
SELECT talaria.register_lua('cntv_t', 'function main(r) if r.v == 0 then return nil end return r end');
SELECT talaria.create_pipeline('cntv_raw', 'cntv_ev', 'cntv_t');
SELECT tgname, tgtype & 64 <> 0 AS instead FROM pg_trigger WHERE tgrelid = 'cntv_raw'::regclass ORDER BY 1;
\c
SET client_min_messages = warning;
INSERT INTO cntv_raw VALUES (now(), 1), (now(), 0), (now(), 2);
\echo INSERT into a view, first statement of a session: :ROW_COUNT
INSERT INTO cntv_raw VALUES (now(), 3), (now(), 0);
\echo INSERT into a view: :ROW_COUNT
COPY cntv_raw FROM stdin;
2001-02-03	4
2001-02-03	0
2001-02-03	5
\.
\echo COPY into a view: :ROW_COUNT
SELECT v FROM cntv_ev ORDER BY v;
SELECT talaria.drop_pipeline('cntv_raw');
DROP VIEW cntv_raw;
DROP TABLE cntv_ev;
SELECT talaria.drop_transform('cntv_t');
