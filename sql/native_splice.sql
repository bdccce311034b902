-- A native transform's result made of the input's own values (an input
-- object less some members, compacted in place, or untouched) is copied
-- from the input's bytes; one the plugin edited in place is written, and
-- checked, as the plugin left it.  test/plugins/edit_doc.c edits doc in
-- place in several ways; each result is compared with what SQL makes.
SET client_min_messages = warning;
SET talaria.native_library_path = '$libdir/talaria_test_plugins';
SELECT talaria.register_native(f, '$libdir/talaria_test_plugins/edit_doc.so', f)
FROM unnest(ARRAY['doc_remove', 'doc_same', 'doc_slice', 'doc_int', 'doc_numlen',
                  'doc_nested', 'doc_swap', 'doc_flip', 'doc_shortkey']) f
ORDER BY f;

CREATE TABLE ns_rows (n int, row jsonb);
INSERT INTO ns_rows VALUES
  (1, $${"ts": 1, "doc": {"drop": 1, "s": "abc", "n": 7, "x": 20.00, "b": true,
         "inner": {"a": 1, "z": [1, 2.50]}, "zz": "é"}}$$),
  (2, $${"ts": 2, "doc": {"s": "éa", "n": 9007199254740993, "x": 1.50, "b": false,
         "inner": {"a": "x"}, "drop": [1, {"q": 2}]}}$$),
  (3, $${"ts": 3, "doc": {"drop": 0}}$$),
  (4, $${"ts": 4, "doc": {"n": 1}}$$);

-- doc less "drop": the very text PostgreSQL's - gives
SELECT n, talaria.transform_row('doc_remove', row) AS result,
       talaria.transform_row('doc_remove', row)::text =
         jsonb_set(row, '{doc}', (row->'doc') - 'drop')::text AS same
FROM ns_rows ORDER BY n;
-- untouched: the row as it was
SELECT n, talaria.transform_row('doc_same', row)::text = row::text AS same
FROM ns_rows ORDER BY n;
-- a string shortened in place is written as it is now, and checked: cutting
-- "é" in two is not valid text
SELECT talaria.transform_row('doc_slice', row) FROM ns_rows WHERE n = 1;
SELECT talaria.transform_row('doc_slice', row) FROM ns_rows WHERE n = 2;
-- an integer, a decimal's text, a nested member and a boolean changed in
-- place: their new values, not the input's
SELECT n, talaria.transform_row('doc_int', row)->'doc'->'n' AS n_plus_1
FROM ns_rows ORDER BY n;
SELECT n, talaria.transform_row('doc_numlen', row)->'doc'->'x' AS x_shorter
FROM ns_rows ORDER BY n;
SELECT n, talaria.transform_row('doc_nested', row)->'doc'->'inner' AS inner_99
FROM ns_rows ORDER BY n;
SELECT n, talaria.transform_row('doc_flip', row)->'doc'->'b' AS b_flipped
FROM ns_rows ORDER BY n;
-- members out of order, a key shortened: written from the tree, in jsonb's
-- order (the last of two equal keys wins)
SELECT n, talaria.transform_row('doc_swap', row)::text =
         jsonb_set(row, '{doc}', (row->'doc') - 'drop')::text AS same
FROM ns_rows ORDER BY n;
SELECT n, talaria.transform_row('doc_shortkey', row)->'doc' AS doc
FROM ns_rows ORDER BY n;

-- through a pipeline (INSERT ... SELECT, COPY-like batches): the same
CREATE TABLE ns_target (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('ns_target', 'ts', '1 day', premake => 0);
CREATE TABLE ns_raw (ts timestamptz, doc jsonb);
SELECT talaria.create_pipeline('ns_raw', 'ns_target', 'doc_remove');
INSERT INTO ns_raw
  SELECT '2024-05-01'::timestamptz + i * interval '1 second',
         jsonb_build_object('drop', i, 'id', i, 'v', i * 1.25, 's', repeat('é', i % 4),
                            'o', jsonb_build_object('k', i), 'a', jsonb_build_array(i, 2.0))
  FROM generate_series(1, 300) i;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE doc::text = (jsonb_build_object(
         'id', id, 'v', id * 1.25, 's', repeat('é', id % 4),
         'o', jsonb_build_object('k', id), 'a', jsonb_build_array(id, 2.0)))::text) AS same
FROM (SELECT doc, (doc->>'id')::int AS id FROM ns_target) t;
