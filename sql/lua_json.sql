-- require("json"): encode, decode and null, on json-c.
SET client_min_messages = warning;
SELECT talaria.register_lua('roundtrip', $$
local json = require("json")
function main(row) return json.decode(json.encode(row)) end
$$);
SELECT doc, talaria.transform_row('roundtrip', doc) = doc AS same
FROM (VALUES
  ('{"a": 1, "b": [1, 2.5, "x", null, true], "c": {}, "d": [], "e": {"f": [{}]}}'::jsonb),
  ('{"big": 123456789012345678901234567890, "i": 9007199254740993, "min": -9223372036854775808}'),
  ('{"u": "😀 é \u0001 \"q\" \\ /"}'),
  ('[[], {}, [[]]]')
) AS d(doc);

SELECT talaria.register_lua('enc', $$
local json = require("json")
function main(row)
  return {
    scalar = json.encode(1.5), int = json.encode(2^53), str = json.encode('a"b'),
    null = json.encode(json.null), arr = json.encode({1, 2}), empty = json.encode({}),
    nested = json.encode({a = {b = {}}}), exact = json.encode(row.big),
    decoded_type = type(json.decode('{"x": 1}')), null_is_null = json.decode('null') == json.null,
    decoded_big = tostring(json.decode('123456789012345678901234567890')),
    decoded_arr_len = #json.decode('[1, 2, 3]'),
    reencoded_empty_array = json.encode(json.decode('[]')),
    reencoded_empty_object = json.encode(json.decode('{}'))
  }
end
$$);
SELECT jsonb_pretty(talaria.transform_row('enc', '{"big": 98765432109876543210}'));

-- errors are Lua errors with a message
SELECT talaria.register_lua('dec', $$
local json = require("json")
function main(row)
  local ok, err = pcall(json.decode, row.text)
  if ok then return { ok = true } end
  return { ok = false, error = err }
end
$$);
SELECT t, talaria.transform_row('dec', jsonb_build_object('text', t))
FROM unnest(ARRAY['{"a": 1', '[1, 2] x', '', 'nul', '{"a": 1}']) AS t;

SELECT talaria.register_lua('enc_err', $$
local json = require("json")
function main(row)
  if row.kind == 'fn' then return json.encode({f = print}) end
  if row.kind == 'nan' then return json.encode(0/0) end
  if row.kind == 'cycle' then local t = {} t[1] = t return json.encode(t) end
  if row.kind == 'key' then return json.encode({[{}] = 1}) end
end
$$);
SELECT talaria.transform_row('enc_err', '{"kind": "fn"}');
SELECT talaria.transform_row('enc_err', '{"kind": "nan"}');
SELECT talaria.transform_row('enc_err', '{"kind": "cycle"}');
SELECT talaria.transform_row('enc_err', '{"kind": "key"}');

-- json.encode is deterministic: object members in the byte order of their
-- keys, whatever order the table was filled in (0.1.0: hash order)
SELECT talaria.register_lua('je_order', $$
local json = require("json")
function main(r)
  local a, b = {}, {}
  for i = 1, 50 do a["k" .. i] = i end
  for i = 50, 1, -1 do b["k" .. i] = i end
  local c = {}
  for i = 1, 200 do c["x" .. i] = i end
  for i = 1, 190 do c["x" .. i] = nil end
  return { same = json.encode(a) == json.encode(b),
           text = json.encode({ b = 1, a = 2, B = 3, aa = 4, [""] = 5, c = { z = 1, y = 2 } }),
           sparse = json.encode(c),
           row = json.encode(r) }
end$$);
SELECT talaria.transform_row('je_order', '{"zeta": 1, "alpha": {"y": 1, "x": [3, 2]}, "mid": null}');
SELECT talaria.drop_transform('je_order');
