-- Values cross into Lua and back without loss.
SET client_min_messages = warning;
SELECT talaria.register_lua('identity', 'function main(row) return row end');

-- untouched values come back unchanged (jsonb equality and text)
WITH docs(doc) AS (VALUES
  ('{"big": 123456789012345678901234567890, "beyond53": 9007199254740993, "i64max": 9223372036854775807, "i64min": -9223372036854775808}'::jsonb),
  ('{"num": 3.141592653589793238462643383279, "small": 1e-30, "f": 0.1, "neg": -2.5, "zero": 0, "exp": 1.5e30}'),
  ('{"trailing_zero": 3.0, "scaled": 1.50, "negzero": -0.0, "huge": 1e400, "tiny": 1e-400}'),
  ('{"ascii": "plain", "unicode": "héllo wörld ✓", "astral": "😀𝄞", "escapes": "tab\tnewline\nquote\"backslash\\", "empty": ""}'),
  ('{"empty_object": {}, "empty_array": [], "null": null, "true": true, "false": false}'),
  ('{"nested": [{"a": [1, {"b": null, "c": []}]}, [[], [{}]], "x"], "deep": {"a": {"b": {"c": {"d": [1, 2, 3]}}}}}'),
  ('[1, "two", null, {"three": 3}]'),
  ('[]'), ('{}'), ('"just a string"'), ('42'), ('12345678901234567890'), ('true'), ('null')
)
SELECT left(doc::text, 60) AS doc, talaria.transform_row('identity', doc) = doc AS same,
       talaria.transform_row('identity', doc)::text = doc::text AS same_text
FROM docs;

-- rows of many shapes (the per-key-set constructors), odd keys included
SELECT count(*) AS same_rows
FROM generate_series(1, 40) i,
     LATERAL (SELECT jsonb_build_object('k' || (i % 25), i, 'const', true,
                                        E'quote" back\\ nl\n é 😀', i, '', 'empty key') AS doc) d
WHERE talaria.transform_row('identity', d.doc)::text = d.doc::text;

-- text kept for untouched decimals; a top-level field left in place keeps
-- its own text even when another field has the same value; nested, an
-- integer equal to a decimal of the same row is ambiguous and is written
-- in its shortest form
SELECT talaria.transform_row('identity', '{"a": 20, "b": 20.00, "c": 3.0, "d": [1.50, 2.500]}');
SELECT talaria.transform_row('identity', '{"n": [20, 20.00]}');

-- the Lua view of values: types, null vs missing, exact numbers
SELECT talaria.register_lua('inspect', $$
local json = require("json")
function main(row)
  local out = {}
  for k, v in pairs(row) do
    local t = type(v)
    if v == json.null then t = 'json.null' end
    if t == 'userdata' then t = 'exact number ' .. tostring(v) end
    if t == 'table' then t = (next(v) == nil) and 'empty table' or 'table' end
    out[k] = t
  end
  out.missing_is_nil = (row.no_such_key == nil)
  return out
end
$$);
SELECT talaria.transform_row('inspect',
  '{"n": 1, "f": 1.5, "big": 9007199254740993, "dec": 0.1234567890123456789, "s": "x", "b": false, "nul": null, "o": {}, "a": [], "t": {"k": 1}}');

-- exact numbers still do arithmetic (as doubles) and compare
SELECT talaria.register_lua('arith', $$
function main(row)
  return { sum = row.big + 1, twice = row.big * 2, text = tostring(row.big),
           concat = 'v=' .. row.big, cmp = row.big > row.small, cmp_num = tonumber(row.big) > 1, eq = row.big == row.big2,
           num = tonumber(row.big), neg = -row.small }
end
$$);
SELECT talaria.transform_row('arith', '{"big": 12345678901234567890, "big2": 12345678901234567890, "small": 0.10000000000000000001}');

-- results: Lua numbers, integers, nil drops, scalars, arrays vs objects
SELECT talaria.register_lua('results', $$
local json = require("json")
function main(row)
  if row.kind == 'nil' then return nil end
  if row.kind == 'null' then return json.null end
  if row.kind == 'int' then return 2^53 end
  if row.kind == 'bigint' then return 2^62 end
  if row.kind == 'float' then return 1/3 end
  if row.kind == 'string' then return 'text' end
  if row.kind == 'bool' then return true end
  if row.kind == 'array' then return {1, 2, {x = 'y'}} end
  if row.kind == 'empty' then return {} end
  if row.kind == 'sparse' then return {[1] = 'a', [3] = 'c'} end
  if row.kind == 'keep_empty_array' then row.list[#row.list + 1] = nil return row end
  return row
end
$$);
SELECT k, talaria.transform_row('results', jsonb_build_object('kind', k, 'list', '[]'::jsonb)) AS result,
       talaria.transform_row('results', jsonb_build_object('kind', k, 'list', '[]'::jsonb)) IS NULL AS is_sql_null
FROM unnest(ARRAY['nil', 'null', 'int', 'bigint', 'float', 'string', 'bool', 'array', 'empty', 'keep_empty_array']) AS k;

-- SQL NULL in, SQL NULL out (STRICT)
SELECT talaria.transform_row('identity', NULL) IS NULL AS null_in_null_out;

-- results that cannot be JSON are clear errors
SELECT talaria.transform_row('results', '{"kind": "sparse"}');
SELECT talaria.register_lua('bad_results', $$
function main(row)
  if row.kind == 'function' then return function() end end
  if row.kind == 'nan' then return 0/0 end
  if row.kind == 'inf' then return { x = math.huge } end
  if row.kind == 'mixed' then return { 1, 2, x = 3 } end
  if row.kind == 'numkey' then return { [1.5] = 'x' } end
  if row.kind == 'cycle' then local t = {} t.self = t return t end
  if row.kind == 'nul' then return 'a\0b' end
  if row.kind == 'badutf8' then return string.char(255, 254) end
  if row.kind == 'boolkey' then return { [true] = 1 } end
  return row
end
$$);
SELECT talaria.transform_row('bad_results', '{"kind": "function"}');
SELECT talaria.transform_row('bad_results', '{"kind": "nan"}');
SELECT talaria.transform_row('bad_results', '{"kind": "inf"}');
SELECT talaria.transform_row('bad_results', '{"kind": "mixed"}');
SELECT talaria.transform_row('bad_results', '{"kind": "numkey"}');
SELECT talaria.transform_row('bad_results', '{"kind": "cycle"}');
SELECT talaria.transform_row('bad_results', '{"kind": "nul"}');
SELECT talaria.transform_row('bad_results', '{"kind": "badutf8"}');
SELECT talaria.transform_row('bad_results', '{"kind": "boolkey"}');

-- every decimal keeps its value through Lua and json.encode: numbers of up
-- to 15 significant digits as doubles (also beyond 2^53), the rest exact
SELECT talaria.register_lua('num_text', $$
local json = require("json")
function main(row)
  local out = {}
  for i, v in ipairs(row) do out[i] = json.encode(v) end
  return out
end$$);
SELECT setseed(0.25);
WITH nums AS (
  SELECT (random() * 10 ^ (floor(random() * 40) - 20))::numeric(60, 25) * (CASE WHEN random() < 0.5 THEN -1 ELSE 1 END) AS n
  FROM generate_series(1, 3000)
  UNION ALL SELECT round(random() * 1e18)::numeric FROM generate_series(1, 1000)
  UNION ALL SELECT (random() * 1e6)::numeric(20, 3) FROM generate_series(1, 1000)
  UNION ALL SELECT x::numeric FROM unnest(ARRAY['0', '0.0', '-0.000', '10000', '99990000.00010000', '1e-30', '1e30', '0.1', '123.4500', '237852396099599000.00']) x
), j AS (SELECT jsonb_agg(n) AS arr, array_agg(n::text) AS texts FROM nums)
SELECT count(*) FILTER (WHERE (o.out ->> (i - 1))::numeric <> j.texts[i]::numeric) AS encode_mismatches,
       count(*) FILTER (WHERE o.ident -> (i - 1) <> j.arr -> (i - 1)) AS identity_mismatches,
       count(*) AS numbers
FROM j, LATERAL (SELECT talaria.transform_row('num_text', j.arr) AS out,
                        talaria.transform_row('identity', j.arr) AS ident) o,
     generate_series(1, array_length(j.texts, 1)) i;

-- an untouched number keeps its text at every depth, also when another
-- number of the row has the same value with another text (0.1.0 wrote
-- "price": 20 for 20.00 inside an object the script changed)
SELECT talaria.register_lua('lv_nested', 'function main(r) r.doc.key1 = nil return r end');
SELECT talaria.transform_row('lv_nested', '{"doc": {"price": 20.00, "score": 20, "key1": 1, "list": [1.50, 1.5, 20.00]}, "top": 20.0}');
-- (copy is price's value, read alone: 20.00; when every member of doc was
-- converted on reading it, score's 20 made the value ambiguous: 20)
SELECT talaria.register_lua('lv_nested2', 'function main(r) local d = r.doc d.extra = true return { doc = d, copy = d.price } end');
SELECT talaria.transform_row('lv_nested2', '{"doc": {"price": 20.00, "score": 20}}');
SELECT talaria.drop_transform('lv_nested');
SELECT talaria.drop_transform('lv_nested2');

-- the text check of result strings (a fast ASCII path, pg_verify_mbstr for
-- the rest) at every position: some bytes after n ASCII bytes and before m
-- more, in a string and in a key; only 0x7F and whole UTF-8 characters pass
SELECT talaria.register_lua('lv_bytes', $$
function main(r)
  local t = {}
  for i, b in ipairs(r.mid) do t[i] = string.char(b) end
  local s = string.rep("a", r.n) .. table.concat(t) .. string.rep("b", r.m)
  if r.key then return { [s] = 1 } end
  return { s = s }
end$$);
CREATE FUNCTION lv_valid(n int, mid int[], m int, key boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM talaria.transform_row('lv_bytes',
    jsonb_build_object('n', n, 'm', m, 'mid', to_jsonb(mid), 'key', key));
  RETURN true;
EXCEPTION WHEN data_exception THEN
  RETURN false;
END$$;
SELECT label, count(*) FILTER (WHERE lv_valid(n, mid, m, key)) AS valid, count(*) AS tried
FROM (VALUES ('nul', '{0}'::int[]), ('0x01', '{1}'), ('0x7f', '{127}'), ('0x80', '{128}'),
             ('0xc3 alone', '{195}'), ('0xff', '{255}'), ('e acute', '{195,169}'),
             ('euro', '{226,130,172}'), ('truncated euro', '{226,130}')) b(label, mid),
     generate_series(0, 17) n, generate_series(0, 9) m, (VALUES (false), (true)) k(key)
GROUP BY label ORDER BY label;
-- and into a text column: the same bytes stored or dead-lettered
CREATE TABLE lv_bytes_out (label text, s text);
CREATE TABLE lv_bytes_in (label text, n int, m int, mid jsonb);
SELECT talaria.register_lua('lv_bytes_col', $$
function main(r)
  local t = {}
  for i, b in ipairs(r.mid) do t[i] = string.char(b) end
  return { label = r.label, s = string.rep("a", r.n) .. table.concat(t) .. string.rep("b", r.m) }
end$$);
SELECT talaria.create_pipeline('lv_bytes_in', 'lv_bytes_out', 'lv_bytes_col', 'dead_letter');
INSERT INTO lv_bytes_in
SELECT label, n, m, to_jsonb(mid)
FROM (VALUES ('nul', '{0}'::int[]), ('0x7f', '{127}'), ('0x80', '{128}'), ('0xff', '{255}'),
             ('e acute', '{195,169}'), ('truncated euro', '{226,130}')) b(label, mid),
     generate_series(0, 17) n, generate_series(0, 3) m;
SELECT label, count(*) AS stored, min(length(s)) AS min_chars, max(length(s)) AS max_chars
  FROM lv_bytes_out GROUP BY label ORDER BY label;
SELECT "row"->>'label' AS label, count(*) AS dead_letters, min(error) AS error
  FROM talaria.dead_letters WHERE transform = 'lv_bytes_col' GROUP BY 1 ORDER BY 1;
SELECT talaria.drop_pipeline('lv_bytes_in');
SELECT talaria.drop_transform('lv_bytes');
SELECT talaria.drop_transform('lv_bytes_col');
DROP FUNCTION lv_valid;
