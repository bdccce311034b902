-- The row a Lua transform gets is an ordinary table to the script, even
-- though its fields become Lua values only when read (README, "Lua
-- transforms").  Every way of looking at a table must see every field.
SET client_min_messages = warning;
CREATE TEMP TABLE rowdocs(doc jsonb);
INSERT INTO rowdocs VALUES
  ('{"a": 1, "b": "two", "c": 3.50, "d": null, "e": [1, {"f": 2}], "g": {"h": true}}');

-- deleting, reading then deleting, changing, adding, re-adding a deleted key
SELECT talaria.register_lua('rows_edit', $$
function main(row)
  row.a = nil
  local b = row.b
  row.b = nil
  row.c = row.c * 2
  row.new = b .. "!"
  row.g = nil
  row.g = "back"
  row.gone = 1
  row.gone = nil
  return row
end$$);
SELECT talaria.transform_row('rows_edit', doc) FROM rowdocs;

-- a deleted field reads as nil; an untouched one has its value
SELECT talaria.register_lua('rows_read', $$
function main(row)
  row.a = nil
  return {a = row.a == nil, b = row.b, missing = row.nope == nil, again = row.b}
end$$);
SELECT talaria.transform_row('rows_read', doc) FROM rowdocs;

-- pairs, next, rawget, rawset, table.foreach and table.maxn see all fields
SELECT talaria.register_lua('rows_pairs', $$
function main(row)
  row.a = nil
  row.x = 10
  local keys = {}
  for k in pairs(row) do keys[#keys + 1] = k end
  table.sort(keys)
  return table.concat(keys, ",")
end$$);
SELECT talaria.transform_row('rows_pairs', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_next', $$
function main(row)
  local n = 0
  local k = next(row)
  while k ~= nil do n = n + 1 k = next(row, k) end
  return n
end$$);
SELECT talaria.transform_row('rows_next', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_raw', $$
function main(row)
  local b = rawget(row, "b")
  rawset(row, "a", nil)
  rawset(row, "z", b)
  return row
end$$);
SELECT talaria.transform_row('rows_raw', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_foreach', $$
function main(row)
  local n = 0
  table.foreach(row, function() n = n + 1 end)
  return {n = n, maxn = table.maxn(row)}
end$$);
SELECT talaria.transform_row('rows_foreach', doc) FROM rowdocs;

-- metatables: none to see, and one can be set
SELECT talaria.register_lua('rows_meta', $$
function main(row)
  local before = getmetatable(row)
  setmetatable(row, {__index = function(t, k) return "default" end})
  return {before = before == nil, b = row.b, nope = row.nope, mt = getmetatable(row) ~= nil}
end$$);
SELECT talaria.transform_row('rows_meta', doc) FROM rowdocs;

-- json.encode and the row nested in the result
SELECT talaria.register_lua('rows_json', $$
local json = require("json")
function main(row)
  row.e = nil
  return {text = json.decode(json.encode(row)), row = row}
end$$);
SELECT talaria.transform_row('rows_json', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_nested', $$
function main(row) row.d = nil return {inner = row, b = row.b} end$$);
SELECT talaria.transform_row('rows_nested', doc) FROM rowdocs;

-- a row kept past its call keeps all its fields (the input is gone by then)
SELECT talaria.register_lua('rows_keep', $$
local prev
function main(row)
  local out = {}
  if prev then
    collectgarbage()
    out = {prev_b = prev.b, prev_a = prev.a, prev_e = prev.e, prev_c = prev.c}
    local n = 0
    for _ in pairs(prev) do n = n + 1 end
    out.prev_fields = n
  end
  row.a = nil
  prev = row
  return out
end$$);
SELECT talaria.transform_row('rows_keep', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_keep', '{"b": "next row"}');
SELECT talaria.register_lua('rows_keep_return', $$
local prev
function main(row)
  local out = prev or row
  prev = row
  return out
end$$);
SELECT talaria.transform_row('rows_keep_return', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_keep_return', '{"b": "next row"}');

-- untouched numbers keep their text; read and handed back unchanged too
SELECT talaria.register_lua('rows_numbers', $$
function main(row) row.y = row.y return row end$$);
SELECT talaria.transform_row('rows_numbers', '{"x": 1.50, "y": 2.50, "z": 12345678901234567890}')::text;

-- bad keys are still errors
SELECT talaria.register_lua('rows_numkey', 'function main(row) row[1] = 5 return row end');
SELECT talaria.transform_row('rows_numkey', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_nilkey', 'function main(row) row[nil] = 1 return row end');
SELECT talaria.transform_row('rows_nilkey', doc) FROM rowdocs;
SELECT talaria.register_lua('rows_nilkey_del', 'function main(row) row[nil] = nil return row end');
SELECT talaria.transform_row('rows_nilkey_del', doc) FROM rowdocs;

-- many key sets in one backend: the first few get a key map, the rest are
-- plain tables; both behave alike
SELECT talaria.register_lua('rows_shapes', $$
function main(row) row.drop = nil row.n = (row.n or 0) + 1 return row end$$);
SELECT count(*) FILTER (WHERE talaria.transform_row('rows_shapes', d)
                        = (d - 'drop') || jsonb_build_object('n', 1)) AS ok,
       count(*) AS total
FROM (SELECT jsonb_build_object('k' || i, i, 'drop', true) AS d
      FROM generate_series(1, 40) i) s;

-- arrays and scalars at the top are not rows: unchanged behaviour
SELECT talaria.register_lua('rows_identity', 'function main(row) return row end');
SELECT talaria.transform_row('rows_identity', v)
FROM (VALUES ('[1, 2]'::jsonb), ('"s"'), ('{}'), ('{"only": 1}')) t(v);

-- rows the script cannot keep are not copied (the scan in
-- lua_instrument.c; DEBUG says which); every way of keeping one is seen
SET client_min_messages = debug2;
SELECT talaria.register_lua('rows_local_trim', $$
function main(row)
  row.a = nil
  if row.b == "x" then return row end
  row["c"] = row.c
  return row
end$$);
SELECT talaria.register_lua('rows_keep_alias', $$
local keep
function main(row) local prev = keep; local r = row; keep = r
  if prev then return {b = prev.b} end return {} end$$);
SELECT talaria.register_lua('rows_keep_box', $$
local box
function main(row)
  if box then local b = box[1].b; box = nil; return {b = b} end
  box = {row}
  return {}
end$$);
SELECT talaria.register_lua('rows_keep_self', $$
local keep
function main(row) local out = keep and {b = keep.b} or {} row.self = row; keep = row.self
  row.self = nil return out end$$);
SELECT talaria.register_lua('rows_keep_closure', $$
function main(row) local f = function() return row end; kept = f; return {} end$$);
SELECT talaria.register_lua('rows_keep_two', 'function main(row) return row, row end');
SELECT talaria.register_lua('rows_keep_G', 'function main(row) _G["k"] = row.a return row end');
SELECT talaria.register_lua('rows_keep_method', 'function main(row) row:f() return row end');
RESET client_min_messages;
SELECT talaria.transform_row('rows_local_trim', doc) FROM rowdocs;
SELECT talaria.transform_row(t, doc), talaria.transform_row(t, '{"b": "second"}')
FROM rowdocs, unnest(ARRAY['rows_keep_alias', 'rows_keep_box', 'rows_keep_self']) t;

-- a row that cannot outlive its call lends its table to the next call when
-- the call left nothing in it; rows that read, added, dropped or failed
-- never leak into the next one
SELECT talaria.register_lua('rows_reuse', $$
function main(row)
  if row.err then error("boom " .. row.a) end
  if row.add then row.extra = row.a end
  if row.drop then return nil end
  row.gone = nil
  return row
end$$);
SELECT i, talaria.transform_row('rows_reuse', d)
FROM (VALUES (1, '{"a": 1, "gone": 0}'::jsonb), (2, '{"a": 2, "gone": 0}'),
             (3, '{"a": 3, "add": true}'), (4, '{"a": 4, "gone": 0}'),
             (5, '{"a": 5, "drop": true}'), (6, '{"a": 6}'), (7, '{"a": 7}'),
             (8, '{"b": "other keys"}'), (9, '{"a": 9}')) v(i, d)
ORDER BY i;
SELECT talaria.transform_row('rows_reuse', '{"a": 10, "err": true}');
SELECT talaria.transform_row('rows_reuse', '{"a": 11}');

-- garbage is collected even when a call allocates almost nothing (a reused
-- row, fields only deleted): 200,000 calls stay within a 2 MB state
SET talaria.lua_memory_limit = 2048;
SELECT count(talaria.transform_row('rows_reuse', jsonb_build_object('a', i, 'gone', 0)))
FROM generate_series(1, 200000) i;
RESET talaria.lua_memory_limit;

-- bad arguments to the functions that unlazy a row: a clear error naming
-- the script's own line, as before they were wrapped
SELECT talaria.register_lua('rows_bad_' || n, format(E'function main(row)\n  %s\n  return row\nend', c))
FROM (VALUES (1, 'pairs(nil)'), (2, 'next(1)'), (3, 'rawget(nil, "a")'), (4, 'rawset(1, 2, 3)'),
             (5, 'setmetatable(nil, {})'), (6, 'setmetatable(row, 5)'),
             (7, 'table.foreach(nil, print)'), (8, 'table.maxn("x")'), (9, 'rawset(row, nil, 1)')) v(n, c);
SELECT talaria.transform_row('rows_bad_1', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_2', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_3', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_4', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_5', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_6', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_7', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_8', doc) FROM rowdocs;
SELECT talaria.transform_row('rows_bad_9', doc) FROM rowdocs;
