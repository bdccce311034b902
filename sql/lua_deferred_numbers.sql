-- A Lua transform's input decimals (numeric columns, non-integral jsonb
-- numbers) get their text only when something needs it (README, "Lua
-- transforms"): a value the script never reads goes back as the Numeric
-- it was.  Whatever reads one must see its exact text: the script, a
-- copy the script keeps past its row, a text column, json.encode, a
-- native computed column, a dead letter.
SET client_min_messages = warning;
SELECT talaria.register_lua('dn_same', 'function main(row) return row end');
SELECT talaria.register_lua('dn_read', $$
function main(row)
  row.p_text = tostring(row.price)
  row.p_twice = row.price * 2
  row.p_back = row.price
  row.d_back = row.doc.d
  row.doc.e = row.doc.d
  return row
end$$);
-- a row kept past its call (copy mode), and a nested object kept
SELECT talaria.register_lua('dn_keep', $$
function main(row)
  local prev, prevdoc = G, GD
  G = row
  GD = row.doc
  if prev then
    row.prev_price = prev.price
    row.prev_doc = prevdoc
  end
  return row
end$$);
SELECT talaria.register_lua('dn_encode', $$
local json = require("json")
function main(row)
  row.enc = json.encode(row.doc)
  return row
end$$);

CREATE TEMP TABLE dn_in (ts timestamptz, price numeric, doc jsonb);
INSERT INTO dn_in VALUES
  ('2024-01-01 00:00+00', 20.00, '{"d": 1.50, "n": {"x": 0.10, "y": [2.0, 1e2]}, "k": 3}'),
  ('2024-01-01 01:00+00', -0.0, '{"d": 123456789012345678901.000, "n": {"x": -0.0}}'),
  ('2024-01-01 02:00+00', 3.14159, '{"d": 1e-3, "n": {}}'),
  ('2024-01-01 03:00+00', NULL, '{"d": null}');

-- transform_row: the untouched row, the read one
SELECT talaria.transform_row('dn_same', to_jsonb(i) - 'ts') FROM dn_in i ORDER BY ts;
SELECT talaria.transform_row('dn_read', to_jsonb(i) - 'ts') FROM dn_in i WHERE price IS NOT NULL ORDER BY ts;
-- a scalar row
SELECT talaria.transform_row('dn_same', '12345678901234567890.50'),
       talaria.transform_row('dn_same', '2.500');

-- pipelines: a numeric, a text and a jsonb column for every number
CREATE TABLE dn_out (ts timestamptz NOT NULL, price numeric, doc jsonb,
                     p_text text, p_twice numeric, p_back numeric, d_back numeric,
                     prev_price text, prev_doc jsonb, enc text, native_enc text)
    PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('dn_out', 'ts', premake => 0);
CREATE TABLE dn_raw (LIKE dn_in);
CREATE TABLE dn_raw_read (LIKE dn_in);
CREATE TABLE dn_raw_keep (LIKE dn_in);
CREATE TABLE dn_raw_enc (LIKE dn_in);
SELECT talaria.create_pipeline('dn_raw', 'dn_out', 'dn_same');
SELECT talaria.create_pipeline('dn_raw_read', 'dn_out', 'dn_read');
SELECT talaria.create_pipeline('dn_raw_keep', 'dn_out', 'dn_keep');
SELECT talaria.create_pipeline('dn_raw_enc', 'dn_out', 'dn_encode');
-- a native computed column reads every value of the Lua result
SET talaria.native_library_path = '$libdir/talaria_test_plugins';
SELECT talaria.register_native('dn_native_enc', '$libdir/talaria_test_plugins/encode.so', 'encode');
SELECT talaria.add_computed_column('dn_out', 'native_enc', 'dn_native_enc');

INSERT INTO dn_raw SELECT * FROM dn_in;
INSERT INTO dn_raw_read SELECT * FROM dn_in WHERE price IS NOT NULL;
INSERT INTO dn_raw_keep SELECT * FROM dn_in ORDER BY ts;
COPY dn_raw_enc FROM STDIN (FORMAT csv);
2024-01-01 00:00+00,20.00,"{""d"": 1.50, ""n"": {""x"": 0.10, ""y"": [2.0, 1e2]}, ""k"": 3}"
2024-01-01 01:00+00,-0.0,"{""d"": 123456789012345678901.000, ""n"": {""x"": -0.0}}"
2024-01-01 02:00+00,3.14159,"{""d"": 1e-3, ""n"": {}}"
2024-01-01 03:00+00,,"{""d"": null}"
\.
SELECT tableoid::regclass AS part, ts, price, price::text AS price_text, doc,
       p_text, p_twice, p_back, d_back, prev_price, prev_doc, enc,
       native_enc::jsonb AS native_enc  -- (its key order is the Lua table's)
  FROM dn_out ORDER BY enc IS NOT NULL, prev_price IS NOT NULL, p_text IS NOT NULL, ts;
-- the stored numbers are the input's, to the last digit
SELECT count(*) AS rows, count(*) FILTER (WHERE o.price::text = i.price::text) AS same_price,
       count(*) FILTER (WHERE o.doc->'d' = i.doc->'d' AND (o.doc->'d')::text = (i.doc->'d')::text) AS same_d
  FROM dn_out o JOIN dn_in i USING (ts);

-- a text column gets a decimal's text; a dead letter keeps the row and the result
CREATE TABLE dn_txt (ts timestamptz NOT NULL, price text, doc text NOT NULL) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('dn_txt', 'ts', premake => 0);
CREATE TABLE dn_raw_txt (LIKE dn_in);
SELECT talaria.create_pipeline('dn_raw_txt', 'dn_txt', 'dn_same', on_error => 'dead_letter');
DELETE FROM talaria.dead_letters;
INSERT INTO dn_raw_txt VALUES ('2024-01-02 00:00+00', 20.00, '{"d": 1.50}'),
                              ('2024-01-02 01:00+00', 0.10, NULL);
SELECT ts, price, doc FROM dn_txt ORDER BY ts;
SELECT "row", error, result FROM talaria.dead_letters ORDER BY at;
DELETE FROM talaria.dead_letters;
-- integers of a jsonb value are deferred too: read, moved into integer,
-- numeric and text columns, left alone, very large
SELECT talaria.register_lua('dn_ints', $$
function main(row)
  local d = row.doc
  row.i_plus = d.i + 1
  row.i_int = d.i
  row.big_text = d.big
  row.neg_num = d.neg
  return row
end$$);
CREATE TABLE dn_int_out (ts timestamptz NOT NULL, doc jsonb, i_plus bigint, i_int int,
                         big_text text, neg_num numeric) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('dn_int_out', 'ts', premake => 0);
CREATE TABLE dn_raw_int (ts timestamptz, doc jsonb);
SELECT talaria.create_pipeline('dn_raw_int', 'dn_int_out', 'dn_ints');
INSERT INTO dn_raw_int VALUES
  ('2024-01-03 00:00+00', '{"i": 7, "big": 9007199254740993, "neg": -5, "z": 0, "m": {"n": 12}}'),
  ('2024-01-03 01:00+00', '{"i": -2147483648, "big": -9223372036854775808, "neg": 1e3, "z": 10.0}');
SELECT ts, doc, i_plus, i_int, big_text, neg_num FROM dn_int_out ORDER BY ts;
SELECT talaria.transform_row('dn_ints', '{"doc": {"i": 1, "big": 18446744073709551616, "neg": 2.50}}');
SELECT talaria.transform_row('dn_same', '{"a": 1, "b": [2, 3.0, {"c": 4}], "d": 9223372036854775807}');
-- clean up (later tests count transforms)
DROP TABLE dn_raw, dn_raw_read, dn_raw_keep, dn_raw_enc, dn_raw_txt, dn_raw_int,
           dn_out, dn_txt, dn_int_out;
SELECT count(talaria.drop_transform(name, cascade => true)) FROM talaria.transforms
 WHERE name LIKE 'dn\_%';
RESET talaria.native_library_path;
RESET client_min_messages;
