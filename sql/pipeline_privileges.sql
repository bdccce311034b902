-- Non-superusers build their own pipelines; nobody touches what another
-- role owns.  (The session's user is what the catalog writers check.)
SET client_min_messages = warning;
SELECT current_user AS admin \gset
CREATE ROLE regress_carol LOGIN;
CREATE ROLE regress_mallory LOGIN;
GRANT USAGE ON SCHEMA talaria TO regress_carol, regress_mallory;
CREATE SCHEMA carol AUTHORIZATION regress_carol;
GRANT USAGE ON SCHEMA carol TO regress_mallory;

\c - regress_carol
SET client_min_messages = warning;
CREATE TABLE carol.ev (ts timestamptz NOT NULL, v int, n int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('carol.ev', 'ts', '1 day', premake => 0);
CREATE TABLE carol.raw (ts timestamptz, v int);
SELECT talaria.register_lua('carol_pass', 'function main(r) return r end');
SELECT talaria.register_lua('carol_n', 'function main(r) return 42 end');
SELECT talaria.create_pipeline('carol.raw', 'carol.ev', 'carol_pass');
SELECT talaria.add_computed_column('carol.ev', 'n', 'carol_n');
INSERT INTO carol.raw VALUES ('2001-02-03 04:05:06+00', 1), ('2001-02-04 04:05:06+00', 2);
SELECT ts, v, n FROM carol.ev ORDER BY ts;
SELECT count(*) FROM carol.raw;
GRANT INSERT ON carol.raw TO regress_mallory;

-- another role may ingest when granted INSERT (the ingest runs as the
-- inserting user: it needs INSERT on the target too), but may not change
-- anything
\c - regress_mallory
SET client_min_messages = warning;
INSERT INTO carol.raw VALUES ('2001-02-05 04:05:06+00', 3);
\c - regress_carol
GRANT INSERT ON carol.ev TO regress_mallory;
\c - regress_mallory
SET client_min_messages = warning;
INSERT INTO carol.raw VALUES ('2001-02-05 04:05:06+00', 3);
SELECT talaria.create_time_table('carol.ev', 'ts');
-- the internal helpers are not callable (0.1.0's were, by PUBLIC)
SELECT talaria._create_partition('carol.ev', '2001-02-05');
SELECT talaria._validate_time_table('carol.ev', 'ts', '1 hour', NULL, 0, NULL, NULL, 'drop', NULL, true, NULL);
SELECT talaria._drop_expired('carol.ev');
SELECT talaria.run_maintenance('carol.ev');
SELECT talaria.add_computed_column('carol.ev', 'v', 'carol_n');
SELECT talaria.create_pipeline('carol.raw', 'carol.ev', 'carol_pass');
SELECT talaria.register_lua('carol_pass', 'function main(r) return nil end');
SELECT talaria.drop_transform('carol_n');
INSERT INTO talaria.time_tables VALUES ('carol.ev', 'ts', '1 hour', NULL, 0);
UPDATE talaria.computed_columns SET transform = 'x';

\c - regress_carol
SELECT count(*) AS rows_stored FROM carol.ev;
SELECT partition_interval FROM talaria.time_tables WHERE target = 'carol.ev'::regclass;
SELECT column_name, transform FROM talaria.computed_columns WHERE target = 'carol.ev'::regclass;

\c - :admin
SET client_min_messages = warning;
ALTER TABLE carol.ev DROP COLUMN n;
SELECT count(*) AS computed_left FROM talaria.computed_columns WHERE target = 'carol.ev'::regclass;
DROP SCHEMA carol CASCADE;
-- the catalogs forget dropped tables
SELECT count(*) AS time_tables_left FROM talaria.time_tables WHERE target::oid NOT IN (SELECT oid FROM pg_class);
SELECT talaria.drop_transform('carol_pass');
SELECT talaria.drop_transform('carol_n');
REVOKE USAGE ON SCHEMA talaria FROM regress_carol, regress_mallory;
DROP ROLE regress_mallory;
DROP ROLE regress_carol;
