-- A nested object a Lua transform changes is written back from the input's
-- bytes: the members it keeps are copied as stored (numbers keep their
-- text, containers their bytes), realigned where a deletion moves a number
-- or a container off its 4-byte boundary; added members are written from
-- Lua.  Every result is compared, as text and as jsonb, with what
-- PostgreSQL's own operators give, on objects of 1 to 40 members (past
-- jsonb's offset stride of 32) whose values have every size and alignment.
CREATE TABLE sp_docs AS
  SELECT n, jsonb_object_agg('k' || i,
           CASE i % 10
             WHEN 0 THEN to_jsonb(i)
             WHEN 1 THEN to_jsonb((i * 1.5)::numeric(10, 2))
             WHEN 2 THEN to_jsonb(repeat('s', i % 5))
             WHEN 3 THEN 'true'::jsonb
             WHEN 4 THEN 'null'::jsonb
             WHEN 5 THEN jsonb_build_object('x', i, 'y', 'z', 'w', 2.50)
             WHEN 6 THEN jsonb_build_array(i, 'a', 20.00, jsonb_build_object('q', 1))
             WHEN 7 THEN '123456789012345678901.000'::jsonb
             WHEN 8 THEN to_jsonb('é' || repeat('x', i % 3))
             ELSE '1e-3'::jsonb END) AS doc
  FROM generate_series(1, 40) n, generate_series(1, n) i
  GROUP BY n;

-- script, and the SQL that makes the same doc
CREATE TABLE sp_cases (name text, script text, expected text);
INSERT INTO sp_cases VALUES
  ('sp_every3', 'for i = 1, 40, 3 do d["k" .. i] = nil end',
   $$doc - ARRAY(SELECT 'k' || g FROM generate_series(1, 40, 3) g)$$),
  ('sp_odd', 'for i = 1, 40, 2 do d["k" .. i] = nil end',
   $$doc - ARRAY(SELECT 'k' || g FROM generate_series(1, 40, 2) g)$$),
  ('sp_first', 'd.k1 = nil', $$doc - 'k1'$$),
  ('sp_k10', 'd.k10 = nil', $$doc - 'k10'$$),
  ('sp_lengths', 'd.k2 = nil d.k12 = nil d.k22 = nil d.k32 = nil',
   $$doc - '{k2,k12,k22,k32}'::text[]$$),
  ('sp_all_but_one', 'for i = 1, 40 do if i ~= 7 then d["k" .. i] = nil end end',
   $$doc - ARRAY(SELECT 'k' || g FROM generate_series(1, 40) g WHERE g <> 7)$$),
  ('sp_absent', 'd.nothere = nil d.k1 = nil', $$doc - 'k1'$$),
  ('sp_add', 'd.k3 = nil d.k33 = nil d.aa = "new" d.zzz = 2.5 d.k4 = false',
   $$(doc - '{k3,k33}'::text[]) || '{"aa": "new", "zzz": 2.5, "k4": false}'$$),
  ('sp_readd', 'd.k1 = nil d.k2 = nil d.k2 = "back"',
   $$(doc - '{k1,k2}'::text[]) || '{"k2": "back"}'$$),
  ('sp_inner', 'd.k2 = nil if type(d.k5) == "table" then d.k5.y = nil end',
   $$CASE WHEN doc ? 'k5' THEN jsonb_set(doc - 'k2', '{k5}', (doc->'k5') - 'y')
          ELSE doc - 'k2' END$$),
  ('sp_read_then_drop', 'local s = 0 for i = 1, 40 do if type(d["k" .. i]) == "number" then s = s + 1 end end d.k9 = nil d.k19 = nil',
   $$doc - '{k9,k19}'::text[]$$);
SELECT talaria.register_lua(name, 'function main(row) local d = row.doc ' || script ||
                            ' return row end')
FROM sp_cases ORDER BY name;

CREATE FUNCTION sp_expected(e text, doc jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
  EXECUTE 'SELECT ' || e USING doc INTO r;
  RETURN r;
END$$;
CREATE TABLE sp_results AS
  SELECT c.name, d.n,
         talaria.transform_row(c.name, jsonb_build_object('ts', d.n, 'doc', d.doc))->'doc' AS got,
         sp_expected(replace(c.expected, 'doc', '$1'), d.doc) AS want
  FROM sp_cases c, sp_docs d;

-- every case on every doc: the very text and the same jsonb
SELECT name, count(*) AS docs,
       count(*) FILTER (WHERE got::text = want::text AND got = want) AS same
FROM sp_results GROUP BY name ORDER BY name;
SELECT name, n, got, want FROM sp_results
WHERE got::text IS DISTINCT FROM want::text OR got IS DISTINCT FROM want
ORDER BY name, n LIMIT 5;
-- the results read back member by member, numbers' text included
SELECT count(*) AS members,
       count(*) FILTER (WHERE g.value::text = w.value::text) AS same
FROM sp_results r, jsonb_each(r.got) g, jsonb_each(r.want) w
WHERE g.key = w.key;

-- the same through a pipeline: INSERT ... SELECT, directly and through the
-- row trigger
CREATE TABLE sp_target (ts timestamptz NOT NULL, n int, doc jsonb) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('sp_target', 'ts', '1 day', premake => 0);
CREATE TABLE sp_raw (ts timestamptz, n int, doc jsonb);
SELECT talaria.register_lua('sp_pipe', $$function main(row) local d = row.doc
  for i = 1, 40, 3 do d["k" .. i] = nil end d.k20 = nil return row end$$);
SELECT talaria.create_pipeline('sp_raw', 'sp_target', 'sp_pipe');
INSERT INTO sp_raw SELECT '2024-03-01', n, doc FROM sp_docs;
SET talaria.insert_fast_path = off;
INSERT INTO sp_raw SELECT '2024-03-02', n, doc FROM sp_docs;
RESET talaria.insert_fast_path;
SELECT t.ts::date, count(*) AS rows,
       count(*) FILTER (WHERE t.doc::text =
         (d.doc - ARRAY(SELECT 'k' || g FROM generate_series(1, 40, 3) g) - 'k20')::text) AS same
FROM sp_target t JOIN sp_docs d USING (n) GROUP BY 1 ORDER BY 1;
