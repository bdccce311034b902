-- A pipeline remembers the leaf partition it last stored into, across
-- statements (ingest.c, route_row): a statement whose rows fall in its
-- range opens that leaf without tuple routing.  Every change of the
-- target's partitions or of that leaf is seen by the next statement.
SET client_min_messages = warning;
SET timezone = 'UTC';
CREATE SCHEMA lc;
CREATE TABLE lc.raw (ts timestamptz, v int);
CREATE TABLE lc.ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('lc.ev', 'ts', '1 day', premake => 0);
CREATE TABLE lc.d3 PARTITION OF lc.ev FOR VALUES FROM ('2001-02-03') TO ('2001-02-04');
SELECT talaria.register_lua('lc_pass', 'function main(r) return r end');
SELECT talaria.create_pipeline('lc.raw', 'lc.ev', 'lc_pass');
CREATE VIEW lc.placed AS
  SELECT tableoid::regclass AS part, ts, v FROM lc.ev ORDER BY v;
INSERT INTO lc.raw VALUES ('2001-02-03 01:00', 1);
INSERT INTO lc.raw VALUES ('2001-02-03 02:00', 2);
-- an index made on the leaf: the next statement maintains it
CREATE UNIQUE INDEX ON lc.d3 (v);
INSERT INTO lc.raw VALUES ('2001-02-03 03:00', 3);
INSERT INTO lc.raw VALUES ('2001-02-03 04:00', 3);
SET enable_seqscan = off;
SELECT v FROM lc.d3 WHERE v = 3;
RESET enable_seqscan;
-- a BEFORE ROW trigger on the leaf is refused, an AFTER ROW one fires
CREATE TABLE lc.log (v int);
CREATE FUNCTION lc.no_op() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION lc.log_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO lc.log VALUES (NEW.v); RETURN NULL; END $$;
CREATE TRIGGER before_row BEFORE INSERT ON lc.d3 FOR EACH ROW EXECUTE FUNCTION lc.no_op();
INSERT INTO lc.raw VALUES ('2001-02-03 05:00', 5);
DROP TRIGGER before_row ON lc.d3;
CREATE TRIGGER after_row AFTER INSERT ON lc.d3 FOR EACH ROW EXECUTE FUNCTION lc.log_row();
INSERT INTO lc.raw VALUES ('2001-02-03 05:00', 5);
SELECT v FROM lc.log;
-- rows of another day in the same statement, then the leaf's day again
INSERT INTO lc.raw VALUES ('2001-02-04 01:00', 6), ('2001-02-03 06:00', 7), ('2001-02-04 02:00', 8);
INSERT INTO lc.raw VALUES ('2001-02-03 07:00', 9);
SELECT * FROM lc.placed;
-- the leaf detached: its day gets a new partition, the detached table no row
ALTER TABLE lc.ev DETACH PARTITION lc.d3;
INSERT INTO lc.raw VALUES ('2001-02-03 08:00', 10);
SELECT count(*) AS rows_in_detached FROM lc.d3;
SELECT * FROM lc.placed WHERE v >= 10;
-- the same within one transaction
BEGIN;
INSERT INTO lc.raw VALUES ('2001-02-03 09:00', 11);
SELECT part AS detached FROM lc.placed WHERE v = 11 \gset
ALTER TABLE lc.ev DETACH PARTITION :detached;
ALTER TABLE :detached RENAME TO d3_second;
INSERT INTO lc.raw VALUES ('2001-02-03 10:00', 12);
SELECT count(*) AS rows_in_detached FROM lc.d3_second;
COMMIT;
SELECT count(*) AS parts_of_the_day FROM lc.placed WHERE v = 12;
-- the leaf dropped
SELECT part AS leaf FROM lc.placed WHERE v = 12 \gset
DROP TABLE :leaf;
INSERT INTO lc.raw VALUES ('2001-02-03 11:00', 13);
SELECT ts, v FROM lc.placed WHERE v >= 12;
-- a leaf with its columns in another order (rows need converting): not
-- cached, every statement routes it right
CREATE TABLE lc.d5 (v int, ts timestamptz NOT NULL);
ALTER TABLE lc.ev ATTACH PARTITION lc.d5 FOR VALUES FROM ('2001-02-05') TO ('2001-02-06');
INSERT INTO lc.raw VALUES ('2001-02-05 01:00', 14);
INSERT INTO lc.raw VALUES ('2001-02-05 02:00', 15);
SELECT * FROM lc.d5 ORDER BY v;
-- a constraint added to the leaf while it is cached
INSERT INTO lc.raw VALUES ('2001-02-04 03:00', 16);
SELECT part AS leaf4 FROM lc.placed WHERE v = 16 \gset
ALTER TABLE :leaf4 ADD CONSTRAINT small_v CHECK (v < 100);
INSERT INTO lc.raw VALUES ('2001-02-04 04:00', 117);
INSERT INTO lc.raw VALUES ('2001-02-04 04:00', 17);
SELECT ts, v FROM lc.placed WHERE v >= 16;
DROP SCHEMA lc CASCADE;
SELECT talaria.drop_transform('lc_pass');
