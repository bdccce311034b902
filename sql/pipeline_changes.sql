-- Pipelines survive changes to their tables (issue 12, item 7): renames of
-- the target, the source and their schemas; a source that is a partition
-- is refused, and one attached later still works through its parent;
-- a source whose pipeline trigger is gone refuses rows instead of keeping
-- them; drop_pipeline removes a pipeline cleanly.
SET client_min_messages = warning;
CREATE SCHEMA pc;
CREATE TABLE pc.raw (ts timestamptz, v int);
CREATE TABLE pc.ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('pc.ev', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('pc_pass', 'function main(r) return r end');
SELECT talaria.create_pipeline('pc.raw', 'pc.ev', 'pc_pass');
SELECT source, target, transform, on_error FROM talaria.pipelines WHERE source = 'pc.raw'::regclass;
INSERT INTO pc.raw VALUES ('2001-02-03', 1);
-- rename the target, then its schema, then the source
ALTER TABLE pc.ev RENAME TO ev_renamed;
INSERT INTO pc.raw VALUES ('2001-02-03', 2);
ALTER SCHEMA pc RENAME TO pc2;
INSERT INTO pc2.raw VALUES ('2001-02-04', 3);
ALTER TABLE pc2.raw RENAME TO raw_renamed;
COPY pc2.raw_renamed FROM stdin;
2001-02-05	4
\.
SELECT v FROM pc2.ev_renamed ORDER BY v;
SELECT source, target FROM talaria.pipelines WHERE transform = 'pc_pass';
ALTER SCHEMA pc2 RENAME TO pc;
ALTER TABLE pc.raw_renamed RENAME TO raw;

-- a partition as source: refused
CREATE TABLE pc.parent (ts timestamptz, v int) PARTITION BY RANGE (ts);
CREATE TABLE pc.part PARTITION OF pc.parent FOR VALUES FROM ('2001-01-01') TO ('2002-01-01');
SELECT talaria.create_pipeline('pc.part', 'pc.ev_renamed', 'pc_pass');
-- a source attached as a partition later: rows through its parent work
CREATE TABLE pc.raw2 (ts timestamptz, v int);
SELECT talaria.create_pipeline('pc.raw2', 'pc.ev_renamed', 'pc_pass');
ALTER TABLE pc.parent ATTACH PARTITION pc.raw2 FOR VALUES FROM ('2002-01-01') TO ('2003-01-01');
INSERT INTO pc.parent VALUES ('2002-02-03', 5), ('2002-02-04', 6);
INSERT INTO pc.raw2 VALUES ('2002-02-05', 7);
SELECT v FROM pc.ev_renamed WHERE v >= 5 ORDER BY v;
SELECT count(*) AS kept_in_source FROM pc.raw2;
ALTER TABLE pc.parent DETACH PARTITION pc.raw2;

-- a source whose trigger was dropped by hand refuses rows
DROP TRIGGER talaria_ingest ON pc.raw2;
DROP TRIGGER talaria_ingest_flush ON pc.raw2;
INSERT INTO pc.raw2 VALUES ('2002-02-06', 8);
SELECT count(*) AS kept_in_source FROM pc.raw2;
-- drop_pipeline removes triggers, guard and record: a plain table again
SELECT talaria.drop_pipeline('pc.raw2');
INSERT INTO pc.raw2 VALUES ('2002-02-06', 8);
SELECT count(*) AS kept_in_source FROM pc.raw2;
SELECT talaria.drop_pipeline('pc.raw2');
SELECT talaria.drop_pipeline('pc.raw');
SELECT count(*) AS pipelines_left FROM talaria.pipelines WHERE transform = 'pc_pass';
SELECT conname FROM pg_constraint WHERE conrelid = 'pc.raw'::regclass;
-- dropping a source or a target forgets its pipeline
SELECT talaria.create_pipeline('pc.raw', 'pc.ev_renamed', 'pc_pass');
DROP TABLE pc.ev_renamed;
SELECT count(*) AS pipelines_left FROM talaria.pipelines WHERE transform = 'pc_pass';
DROP SCHEMA pc CASCADE;
SELECT talaria.drop_transform('pc_pass');
