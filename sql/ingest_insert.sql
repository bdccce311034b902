-- INSERT into a pipeline source runs without the row trigger when only the
-- pipeline's own triggers would fire and the INSERT is plain
-- (talaria.insert_fast_path): the same rows, defaults, computed columns,
-- dead letters, errors and command tags as through the trigger; anything
-- else goes through the trigger.  The DEBUG line says when the direct path
-- ran.
SELECT talaria.register_lua('in_trim', $$
function main(row)
  if row.doc.fail then error("bad event " .. tostring(row.doc.fail)) end
  if row.doc.drop then return nil end
  row.doc.key1 = nil
  return { ts = row.ts, id = row.id, doc = row.doc, kind = row.doc.kind,
           tag = row.tag }
end$$);
SELECT talaria.register_lua('in_len', 'function main(r) return #(r.kind or "") end');
CREATE DOMAIN in_tag AS text CHECK (VALUE <> 'bad');
CREATE TABLE in_events (ts timestamptz NOT NULL, id bigint, kind text, doc jsonb,
                        note text DEFAULT 'dflt', kind_len int, tag text)
    PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('in_events', 'ts', '1 day', premake => 0);
SELECT talaria.add_computed_column('in_events', 'kind_len', 'in_len');
-- a dropped column, a default, a domain, an identity column
CREATE TABLE in_raw (gone int, id bigint, ts timestamptz,
                     doc jsonb DEFAULT '{"kind": "from default"}', tag in_tag,
                     n int GENERATED ALWAYS AS IDENTITY);
ALTER TABLE in_raw DROP COLUMN gone;
SELECT talaria.create_pipeline('in_raw', 'in_events', 'in_trim', 'dead_letter');

-- a function that reports the command tag's count
CREATE FUNCTION in_count(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE q;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END$$;

-- the same rows through both paths (ids n and n + 100)
SET client_min_messages = debug1;
INSERT INTO in_raw (id, ts, doc, tag) VALUES
  (1, '2001-01-01 10:00+00', '{"kind": "a", "key1": 1, "price": 20.00}', 'x'),
  (2, '2001-01-02 10:00+00', '{"drop": true}', NULL),
  (3, '2001-01-01 11:00+00', '{"fail": 3}', NULL),
  (4, '2001-01-03 10:00+00', '{"kind": "bb"}', NULL);
INSERT INTO in_raw (id, ts) VALUES (5, '2001-01-01 12:00+00');
INSERT INTO in_raw (id, ts, doc)
  SELECT 5 + g, '2001-01-01 13:00+00'::timestamptz + g * interval '1 hour',
         jsonb_build_object('kind', repeat('k', g))
  FROM generate_series(1, 3) g;
RESET client_min_messages;
SET talaria.insert_fast_path = off;
SET client_min_messages = debug1;
INSERT INTO in_raw (id, ts, doc, tag) VALUES
  (101, '2001-01-01 10:00+00', '{"kind": "a", "key1": 1, "price": 20.00}', 'x'),
  (102, '2001-01-02 10:00+00', '{"drop": true}', NULL),
  (103, '2001-01-01 11:00+00', '{"fail": 3}', NULL),
  (104, '2001-01-03 10:00+00', '{"kind": "bb"}', NULL);
INSERT INTO in_raw (id, ts) VALUES (105, '2001-01-01 12:00+00');
INSERT INTO in_raw (id, ts, doc)
  SELECT 105 + g, '2001-01-01 13:00+00'::timestamptz + g * interval '1 hour',
         jsonb_build_object('kind', repeat('k', g))
  FROM generate_series(1, 3) g;
RESET client_min_messages;
RESET talaria.insert_fast_path;
SELECT count(*) AS kept_in_source FROM in_raw;
SELECT a.id, a.tableoid::regclass, a.ts, a.kind, a.doc, a.note, a.kind_len, a.tag,
       (b.tableoid, b.ts, b.kind, b.doc, b.note, b.kind_len, b.tag)
         IS NOT DISTINCT FROM (a.tableoid, a.ts, a.kind, a.doc, a.note, a.kind_len, a.tag)
         AS same_through_trigger
FROM in_events a LEFT JOIN in_events b ON b.id = a.id + 100
WHERE a.id < 100 ORDER BY a.id;
SELECT "row"->>'id' AS id, "row"->>'n' IS NOT NULL AS has_identity, error, sqlstate,
       "row" - '{id,n}'::text[] AS "row"
  FROM talaria.dead_letters WHERE transform = 'in_trim' ORDER BY ("row"->>'id')::int;

-- the command tag counts the rows stored, both ways
SELECT in_count($$INSERT INTO in_raw (id, ts) VALUES (20, '2001-01-01 10:00+00'), (21, '2001-01-01 10:00+00')$$) AS fast;
SET talaria.insert_fast_path = off;
SELECT in_count($$INSERT INTO in_raw (id, ts) VALUES (22, '2001-01-01 10:00+00'), (23, '2001-01-01 10:00+00')$$) AS trigger;
RESET talaria.insert_fast_path;
SELECT in_count($$INSERT INTO in_raw (id, ts) SELECT 1, now() WHERE false$$) AS none;

-- a prepared INSERT run again and again (its plan is cached)
PREPARE in_ins(bigint) AS INSERT INTO in_raw (id, ts, doc) VALUES ($1, '2001-01-01 10:00+00', '{"kind": "p"}');
EXECUTE in_ins(30); EXECUTE in_ins(31); EXECUTE in_ins(32); EXECUTE in_ins(33);
EXECUTE in_ins(34); EXECUTE in_ins(35); EXECUTE in_ins(36);
DEALLOCATE in_ins;
SELECT count(*) AS prepared_stored FROM in_events WHERE id BETWEEN 30 AND 36;

-- the domain's check is the plan's: the same error both ways
INSERT INTO in_raw (id, ts, tag) VALUES (40, '2001-01-01 10:00+00', 'bad');
SET talaria.insert_fast_path = off;
INSERT INTO in_raw (id, ts, tag) VALUES (40, '2001-01-01 10:00+00', 'bad');
RESET talaria.insert_fast_path;

-- abort mode: the same error and context both ways
CREATE TABLE in_raw2 (id bigint, ts timestamptz, doc jsonb);
SELECT talaria.create_pipeline('in_raw2', 'in_events', 'in_trim');
INSERT INTO in_raw2 VALUES (206, '2001-01-01 10:00+00', '{"kind": "ok"}'),
                           (207, '2001-01-01 10:00+00', '{"fail": 7}');
SET talaria.insert_fast_path = off;
INSERT INTO in_raw2 VALUES (206, '2001-01-01 10:00+00', '{"kind": "ok"}'),
                           (207, '2001-01-01 10:00+00', '{"fail": 7}');
RESET talaria.insert_fast_path;
-- a conversion error (NOT NULL in the target), both ways
INSERT INTO in_raw2 VALUES (208, NULL, '{"kind": "no time"}');
SET talaria.insert_fast_path = off;
INSERT INTO in_raw2 VALUES (208, NULL, '{"kind": "no time"}');
RESET talaria.insert_fast_path;
SELECT count(*) AS none_stored FROM in_events WHERE id IN (206, 207, 208);
-- in a transaction, statement after statement, then rolled back
BEGIN;
INSERT INTO in_raw2 VALUES (9, '2001-01-01 10:00+00', '{"kind": "t"}');
INSERT INTO in_raw2 VALUES (10, '2001-01-01 10:00+00', '{"kind": "t"}');
SELECT count(*) AS seen_in_transaction FROM in_events WHERE id IN (9, 10);
ROLLBACK;
SELECT count(*) AS rolled_back FROM in_events WHERE id IN (9, 10);

-- not taken: RETURNING, ON CONFLICT, a modifying WITH, EXPLAIN ANALYZE,
-- another trigger, a disabled pipeline trigger; each still stores its rows
SET client_min_messages = debug1;
INSERT INTO in_raw2 VALUES (50, '2001-01-01 10:00+00', '{"kind": "r"}') RETURNING id;
INSERT INTO in_raw2 VALUES (51, '2001-01-01 10:00+00', '{"kind": "c"}') ON CONFLICT DO NOTHING;
WITH w AS (INSERT INTO in_raw2 VALUES (52, '2001-01-01 10:00+00', '{"kind": "w"}'))
  INSERT INTO in_raw2 VALUES (53, '2001-01-01 10:00+00', '{"kind": "w"}');
RESET client_min_messages;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  INSERT INTO in_raw2 VALUES (54, '2001-01-01 10:00+00', '{"kind": "e"}');
CREATE FUNCTION in_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'other trigger saw %', NEW.id; RETURN NEW; END$$;
CREATE TRIGGER in_other BEFORE INSERT ON in_raw2 FOR EACH ROW EXECUTE FUNCTION in_note();
SET client_min_messages = debug1;
INSERT INTO in_raw2 VALUES (55, '2001-01-01 10:00+00', '{"kind": "o"}');
RESET client_min_messages;
DROP TRIGGER in_other ON in_raw2;
ALTER TABLE in_raw2 DISABLE TRIGGER talaria_ingest_flush;
SET client_min_messages = debug1;
INSERT INTO in_raw2 VALUES (56, '2001-01-01 10:00+00', '{"kind": "d"}');
RESET client_min_messages;
ALTER TABLE in_raw2 ENABLE TRIGGER talaria_ingest_flush;
SELECT id, kind FROM in_events WHERE id BETWEEN 50 AND 59 ORDER BY id;

-- from PL/pgSQL (SPI): taken, counted
DO $$
DECLARE n bigint;
BEGIN
  INSERT INTO in_raw2 SELECT 60 + g, '2001-01-01 10:00+00', '{"kind": "spi"}' FROM generate_series(0, 4) g;
  GET DIAGNOSTICS n = ROW_COUNT;
  RAISE NOTICE 'stored %', n;
END$$;
SELECT count(*) AS from_plpgsql FROM in_events WHERE id BETWEEN 60 AND 64;

-- a Lua state knows a source's rows by their source map (shapes): a
-- source whose columns change, and another source with other names, in
-- one session, through INSERT, COPY and transform_row in turn
SELECT talaria.register_lua('in_keys', $$
function main(r)
  return { id = r.id, a = r.a, b = r.b, c = r.c }
end$$);
CREATE TABLE in_keys_out (id int, a text, b text, c text);
CREATE TABLE in_keys1 (id int, a text, b text);
CREATE TABLE in_keys2 (id int, a text, c text);
SELECT talaria.create_pipeline('in_keys1', 'in_keys_out', 'in_keys');
SELECT talaria.create_pipeline('in_keys2', 'in_keys_out', 'in_keys');
INSERT INTO in_keys1 VALUES (1, 'a1', 'b1');
INSERT INTO in_keys2 VALUES (2, 'a2', 'c2');
SELECT talaria.transform_row('in_keys', '{"id": 0, "b": "b0", "c": "c0", "a": "a0"}');
INSERT INTO in_keys1 VALUES (3, 'a3', 'b3');
ALTER TABLE in_keys1 RENAME COLUMN b TO c;
INSERT INTO in_keys1 VALUES (4, 'a4', 'c4');
ALTER TABLE in_keys1 DROP COLUMN a;
INSERT INTO in_keys1 VALUES (5, 'c5');
COPY in_keys2 FROM stdin;
6	a6	c6
\.
COPY in_keys1 FROM stdin;
7	c7
\.
SELECT * FROM in_keys_out ORDER BY id;
