-- COPY into a pipeline source runs without the row trigger when only the
-- pipeline's own triggers would fire (talaria.copy_fast_path): the same
-- rows, defaults, computed columns, dead letters and errors as through the
-- trigger; anything else goes through the trigger.  The DEBUG line says
-- which path ran.
SELECT talaria.register_lua('cp_trim', $$
function main(row)
  if row.doc.fail then error("bad event " .. tostring(row.doc.fail)) end
  if row.doc.drop then return nil end
  row.doc.key1 = nil
  return { ts = row.ts, id = row.id, doc = row.doc, kind = row.doc.kind }
end$$);
SELECT talaria.register_lua('cp_len', 'function main(r) return #(r.kind or "") end');
CREATE TABLE cp_events (ts timestamptz NOT NULL, id bigint, kind text, doc jsonb,
                        note text DEFAULT 'dflt', kind_len int)
    PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('cp_events', 'ts', '1 day', premake => 0);
SELECT talaria.add_computed_column('cp_events', 'kind_len', 'cp_len');
CREATE TABLE cp_raw (id bigint, ts timestamptz, doc jsonb DEFAULT '{"kind": "from default"}');
SELECT talaria.create_pipeline('cp_raw', 'cp_events', 'cp_trim', 'dead_letter');

-- the same rows through both paths (ids n and n + 100)
SET client_min_messages = debug1;
COPY cp_raw FROM stdin;
1	2001-01-01 10:00+00	{"kind": "a", "key1": 1}
2	2001-01-02 10:00+00	{"drop": true}
3	2001-01-01 11:00+00	{"fail": 3}
4	2001-01-03 10:00+00	{"kind": "bb"}
\.
COPY cp_raw (id, ts) FROM stdin (FORMAT csv);
5,2001-01-01 12:00+00
\.
RESET client_min_messages;
SET talaria.copy_fast_path = off;
SET client_min_messages = debug1;
COPY cp_raw FROM stdin;
101	2001-01-01 10:00+00	{"kind": "a", "key1": 1}
102	2001-01-02 10:00+00	{"drop": true}
103	2001-01-01 11:00+00	{"fail": 3}
104	2001-01-03 10:00+00	{"kind": "bb"}
\.
COPY cp_raw (id, ts) FROM stdin (FORMAT csv);
105,2001-01-01 12:00+00
\.
RESET client_min_messages;
RESET talaria.copy_fast_path;
SELECT count(*) AS kept_in_source FROM cp_raw;
SELECT a.id, a.tableoid::regclass, a.ts, a.kind, a.doc, a.note, a.kind_len,
       (b.tableoid, b.ts, b.kind, b.doc, b.note, b.kind_len)
         IS NOT DISTINCT FROM (a.tableoid, a.ts, a.kind, a.doc, a.note, a.kind_len)
         AS same_through_trigger
FROM cp_events a LEFT JOIN cp_events b ON b.id = a.id + 100
WHERE a.id < 100 ORDER BY a.id;
SELECT "row"->>'id' AS id, error, sqlstate FROM talaria.dead_letters
 WHERE transform = 'cp_trim' ORDER BY ("row"->>'id')::int;

-- abort mode: the same error and context through both paths
CREATE TABLE cp_raw2 (id bigint, ts timestamptz, doc jsonb);
SELECT talaria.create_pipeline('cp_raw2', 'cp_events', 'cp_trim');
COPY cp_raw2 FROM stdin;
6	2001-01-01 10:00+00	{"kind": "ok"}
7	2001-01-01 10:00+00	{"fail": 7}
\.
SET talaria.copy_fast_path = off;
COPY cp_raw2 FROM stdin;
6	2001-01-01 10:00+00	{"kind": "ok"}
7	2001-01-01 10:00+00	{"fail": 7}
\.
RESET talaria.copy_fast_path;
-- bad input: COPY's own error and line, both paths
COPY cp_raw2 FROM stdin;
8	not a time	{}
\.
SET talaria.copy_fast_path = off;
COPY cp_raw2 FROM stdin;
8	not a time	{}
\.
RESET talaria.copy_fast_path;
SELECT count(*) AS none_stored FROM cp_events WHERE id IN (6, 7, 8);

-- the reader: talaria's for text and CSV input (test/t/040_copy_reader.pl
-- holds it to PostgreSQL's on hundreds of inputs), PostgreSQL's for binary,
-- HEADER MATCH, an ENCODING that needs transcoding, and with
-- talaria.copy_fast_reader off; the rows are the same
COPY (SELECT 13::bigint, '2001-01-01 17:00+00'::timestamptz, '{"kind": "bin"}'::jsonb)
  TO '/tmp/talaria_ingest_copy.bin' (FORMAT binary);
SET client_min_messages = debug1;
COPY cp_raw (id, ts) FROM stdin (FORMAT csv, HEADER MATCH);
id,ts
9,2001-01-01 13:00+00
\.
COPY cp_raw (id, ts) FROM stdin (ENCODING 'LATIN1');
10	2001-01-01 14:00+00
\.
COPY cp_raw (id, ts) FROM stdin (ENCODING 'UTF8', HEADER);
id	ts
11	2001-01-01 15:00+00
\.
COPY cp_raw FROM '/tmp/talaria_ingest_copy.bin' (FORMAT binary);
SET talaria.copy_fast_reader = off;
COPY cp_raw (id, ts) FROM stdin;
12	2001-01-01 16:00+00
\.
RESET talaria.copy_fast_reader;
RESET client_min_messages;
SELECT id, ts, kind FROM cp_events WHERE id BETWEEN 9 AND 13 ORDER BY id;

-- through the trigger instead: a WHERE clause, another trigger, a disabled
-- pipeline trigger (the source then refuses the rows: its guard constraint
-- talaria_pipeline_source, which the pipeline trigger keeps rows from)
SET client_min_messages = debug1;
COPY cp_raw2 FROM stdin WHERE id > 20;
9	2001-01-01 10:00+00	{"kind": "filtered out"}
21	2001-01-01 10:00+00	{"kind": "where"}
\.
RESET client_min_messages;
CREATE FUNCTION cp_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.doc := NEW.doc || '{"tagged": true}'; RETURN NEW; END $$;
CREATE TRIGGER a_tag BEFORE INSERT ON cp_raw2 FOR EACH ROW EXECUTE FUNCTION cp_tag();
SET client_min_messages = debug1;
COPY cp_raw2 FROM stdin;
22	2001-01-01 10:00+00	{"kind": "other trigger"}
\.
RESET client_min_messages;
DROP TRIGGER a_tag ON cp_raw2;
ALTER TABLE cp_raw2 DISABLE TRIGGER USER;
SET client_min_messages = debug1;
COPY cp_raw2 FROM stdin;
23	2001-01-01 10:00+00	{"kind": "kept"}
\.
RESET client_min_messages;
ALTER TABLE cp_raw2 ENABLE TRIGGER USER;
SELECT id, kind, doc FROM cp_events WHERE id > 20 ORDER BY id;
SELECT id FROM cp_raw2;

-- privileges: INSERT on the source is needed either way; with it, a
-- non-superuser's COPY FROM STDIN takes the fast path
CREATE ROLE regress_cp_user;
GRANT USAGE ON SCHEMA talaria TO regress_cp_user;
SET ROLE regress_cp_user;
COPY cp_raw2 FROM stdin;
24	2001-01-01 10:00+00	{"kind": "denied"}
\.
RESET ROLE;
GRANT INSERT ON cp_raw2 TO regress_cp_user;
GRANT INSERT ON cp_events TO regress_cp_user;
SET ROLE regress_cp_user;
SET client_min_messages = debug1;
COPY cp_raw2 FROM stdin;
25	2001-01-01 10:00+00	{"kind": "granted"}
\.
RESET client_min_messages;
-- a file needs pg_read_server_files, as for any COPY
COPY cp_raw2 FROM '/nonexistent/file';
RESET ROLE;
SELECT id, kind FROM cp_events WHERE id IN (24, 25) ORDER BY id;
REVOKE ALL ON cp_raw2, cp_events FROM regress_cp_user;
REVOKE USAGE ON SCHEMA talaria FROM regress_cp_user;
DROP ROLE regress_cp_user;
