-- Objects inside the row are lazy like the row (README, "Lua transforms"):
-- a member becomes a Lua value when read, untouched members go back as
-- they came.  Every case runs twice: lazily, and with
-- talaria.lua_lazy_objects off (a nested object becomes a whole table when
-- read), in transforms of their own (a global of one is not the other's);
-- "same" says the two agree.
SET client_min_messages = warning;
CREATE TEMP TABLE nl_docs(n int, doc jsonb);
INSERT INTO nl_docs VALUES
  (1, '{"ts": "2024-01-01T00:00:00+00:00", "doc": {"key1": "a", "key2": "b", "key3": 3, "key4": [1], "key5": {"x": 1},
        "price": 20.00, "score": 20, "ratio": 0.50,
        "m": {"p": 1.50, "z": 7, "q": {"r": 2.0, "s": 100, "t": 1.000}, "arr": [1.0, 2.50, {"u": 4.25}]}}}'),
  (2, '{"ts": "2024-01-02T00:00:00+00:00", "doc": {"key1": "c", "price": 30.10, "score": 30,
        "m": {"p": 2.50, "z": 8, "q": {"r": 3.0, "s": 200, "t": 2.000}, "arr": []}}}'),
  (3, '{"ts": "2024-01-03T00:00:00+00:00", "doc": {"price": 1e2, "m": {}}}');

-- register name and name_eager with the same source
CREATE FUNCTION nl_register(name text, src text) RETURNS void LANGUAGE sql AS $$
  SELECT talaria.register_lua(name, src);
  SELECT talaria.register_lua(name || '_eager', src);
$$;
-- the result (or the error) of one call, lazily or eagerly
CREATE FUNCTION nl_run(name text, doc jsonb, lazy boolean) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('talaria.lua_lazy_objects', lazy::text, true);
  RETURN talaria.transform_row(CASE WHEN lazy THEN name ELSE name || '_eager' END, doc)::text;
EXCEPTION WHEN OTHERS THEN
  RETURN 'ERROR: ' || regexp_replace(SQLERRM, '_eager', '', 'g');
END $$;
-- every doc in order, lazily, and whether the eager run gave the same text
-- (if not, what it gave) and the same value
CREATE FUNCTION nl_check(name text)
RETURNS TABLE (n int, result text, same boolean, same_value boolean, eager_result text)
LANGUAGE plpgsql AS $$
DECLARE
  lazy text[];
  eager text[];
  d record;
BEGIN
  FOR d IN SELECT * FROM nl_docs ORDER BY nl_docs.n LOOP
    lazy := lazy || nl_run(name, d.doc, true);
  END LOOP;
  FOR d IN SELECT * FROM nl_docs ORDER BY nl_docs.n LOOP
    eager := eager || nl_run(name, d.doc, false);
  END LOOP;
  FOR i IN 1 .. array_length(lazy, 1) LOOP
    n := i;
    result := lazy[i];
    same := lazy[i] IS NOT DISTINCT FROM eager[i];
    same_value := same OR (lazy[i] NOT LIKE 'ERROR%' AND eager[i] NOT LIKE 'ERROR%' AND
                           lazy[i]::jsonb = eager[i]::jsonb);
    eager_result := CASE WHEN NOT same THEN eager[i] END;
    RETURN NEXT;
  END LOOP;
END $$;

-- Talaria's event: doc.key1..key5 removed; every untouched number keeps
-- its text at depths 2 and 3 (20.00, 0.50, 1.50, 2.0, 1.000, 2.50)
SELECT nl_register('nl_trim', $$
function main(r)
  local d = r.doc
  d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil
  return r
end$$);
SELECT * FROM nl_check('nl_trim');
-- the same through a chain, changing a member at depth 3
SELECT nl_register('nl_deep', $$
function main(r)
  r.doc.m.q.added = 1
  r.doc.m.z = nil
  return r
end$$);
SELECT * FROM nl_check('nl_deep');

-- numbers read and written back where they were keep their text, even
-- next to another number of the same value (20.00 and 20)
SELECT nl_register('nl_numbers', $$
function main(r)
  local d = r.doc
  d.price = d.price
  d.score = d.score
  local m = d.m
  if m.p ~= nil then m.p = m.p end
  if m.q then m.q.r = m.q.r m.q.t = m.q.t end
  m.sum = (m.p or 0) + (d.score or 0)
  return r
end$$);
SELECT * FROM nl_check('nl_numbers');

-- deleting, reading then deleting, re-adding, deleting a read member
SELECT nl_register('nl_edit', $$
function main(r)
  local d = r.doc
  d.price = nil
  d.price = "back"
  local s = d.score
  d.score = nil
  d.was_score = s
  d.gone = 1
  d.gone = nil
  d.m.z = nil
  d.missing = d.nope == nil
  d.m.q = nil
  d.m.q = {new = true}
  return r
end$$);
SELECT * FROM nl_check('nl_edit');

-- aliasing: one object in two places, changed after both were assigned
SELECT nl_register('nl_alias', $$
function main(r)
  r.copy = r.doc.m
  r.doc.m.added = "x"
  r.copy.z = nil
  r.copy.q.r = nil
  return r
end$$);
SELECT * FROM nl_check('nl_alias');
-- the same object returned twice
SELECT nl_register('nl_twice', $$
function main(r)
  local m = r.doc.m
  m.z = 0
  return {a = m, b = m, same = r.doc.m == m}
end$$);
SELECT * FROM nl_check('nl_twice');

-- kept past the call: in a global, an upvalue, a table of the chunk; read
-- (and changed) by the next calls.  The values agree; the spelling of the
-- kept numbers does not: they are the earlier row's, and the eager mode,
-- having read every decimal of this row, spells 2 as 2.000 and 3 as 3.0
-- after this row's t and r (the number memo); lazily, only what the script
-- read counts
SELECT nl_register('nl_escape', $$
local saved = {}
local up
function main(r)
  local out = {prev = G, up = up, first = saved[1]}
  if G then G.seen = (G.seen or 0) + 1 out.prev_keys = 0 for k in pairs(G) do out.prev_keys = out.prev_keys + 1 end end
  if up then out.up_p = up.p out.up_q = up.q end
  G = r.doc
  up = r.doc.m
  saved[#saved + 1] = r.doc.m.q
  G.key1 = nil
  up.z = "changed after"
  return out
end$$);
SELECT * FROM nl_check('nl_escape');
-- a row kept whole (copied): its objects read during the call, and those
-- read only after it
SELECT nl_register('nl_keep_row', $$
function main(r)
  local out = {}
  if K then out.prev_m = K.doc.m out.prev_price = K.doc.price end
  if L then out.prev_doc = L.doc end
  K = r
  L = r
  r.doc.key1 = nil
  local _ = r.doc.m.q
  return out
end$$);
SELECT * FROM nl_check('nl_keep_row');
-- dropped rows and failed calls may keep objects too
SELECT nl_register('nl_escape_fail', $$
function main(r)
  local out = {kept = K}
  K = r.doc.m
  if r.doc.price == 30.10 then error("fails after keeping it") end
  if r.doc.price == 20 then return nil end
  return out
end$$);
SELECT * FROM nl_check('nl_escape_fail');

-- pairs and next see every member once, deleted ones never
SELECT nl_register('nl_pairs', $$
function main(r)
  local d = r.doc
  d.key1 = nil
  d.extra = 1
  local _ = d.price
  local keys, n = {}, 0
  for k, v in pairs(d) do keys[#keys + 1] = k .. ":" .. type(v) end
  table.sort(keys)
  local k = next(d.m)
  while k ~= nil do n = n + 1 k = next(d.m, k) end
  return {keys = table.concat(keys, ","), mcount = n, empty = next(d.m) == nil}
end$$);
SELECT * FROM nl_check('nl_pairs');

-- arrays inside (tables, eager): length, ipairs, table functions; an
-- object inside an array; an object emptied and refilled as an array
SELECT nl_register('nl_arrays', $$
function main(r)
  local m = r.doc.m
  local out = {}
  if m.arr then
    out.len = #m.arr
    local s = 0
    for i, v in ipairs(m.arr) do if type(v) == "number" then s = s + v end end
    out.sum = s
    table.insert(m.arr, 9)
    if m.arr[3] then m.arr[3].u = m.arr[3].u end
  end
  out.objlen = #r.doc
  local n = 0
  for _ in ipairs(r.doc) do n = n + 1 end
  out.ipairs_obj = n
  local q = m.q
  if q then
    for k in pairs({r = 1, s = 1, t = 1}) do q[k] = nil end
    q[1] = "now"
    q[2] = "an array"
  end
  out.m = m
  return out
end$$);
SELECT * FROM nl_check('nl_arrays');

-- table.insert writes raw (no metamethod): into an object it is the key 1,
-- which an object cannot store, for the row as for a nested object; into
-- an emptied one it makes an array
SELECT nl_register('nl_insert', 'function main(r) table.insert(r.doc.m, "x") return r end');
SELECT * FROM nl_check('nl_insert');
SELECT nl_register('nl_insert_at', 'function main(r) table.insert(r.doc, 3, "x") return r end');
SELECT * FROM nl_check('nl_insert_at');
SELECT nl_register('nl_insert_row', 'function main(r) table.insert(r, "x") return r end');
SELECT * FROM nl_check('nl_insert_row');
SELECT nl_register('nl_insert_empty', $$
function main(r)
  for k in pairs({p = 1, z = 1, q = 1, arr = 1}) do r.doc.m[k] = nil end
  table.insert(r.doc.m, "x")
  return r.doc.m
end$$);
SELECT * FROM nl_check('nl_insert_empty');

-- json.encode of a lazy object (partly read, partly changed)
SELECT nl_register('nl_json', $$
local json = require("json")
function main(r)
  local m = r.doc.m
  m.z = nil
  local _ = m.p
  return {enc = json.encode(m), whole = json.encode(r.doc), back = json.decode(json.encode(r))}
end$$);
SELECT * FROM nl_check('nl_json');

-- metatables, raw access, table functions on a lazy object
SELECT nl_register('nl_meta', $$
function main(r)
  local d = r.doc
  local out = {mt = getmetatable(d) == nil, raw = rawget(d, "score")}
  rawset(d, "rawset", true)
  local m = d.m
  setmetatable(m, {__index = function(t, k) return "default" end})
  out.dflt = m.nope
  out.p = m.p
  setmetatable(m, nil)
  out.m = m
  out.d = d
  return out
end$$);
SELECT * FROM nl_check('nl_meta');

-- type errors name the value as for a table
SELECT nl_register('nl_err_arith', 'function main(r) return r.doc.m + 1 end');
SELECT * FROM nl_check('nl_err_arith');
SELECT nl_register('nl_err_concat', 'function main(r) return r.doc .. "x" end');
SELECT * FROM nl_check('nl_err_concat');
SELECT nl_register('nl_err_call', 'function main(r) return r.doc.m() end');
SELECT * FROM nl_check('nl_err_call');
SELECT nl_register('nl_err_index', 'function main(r) return r.doc.m.nope.deeper end');
SELECT * FROM nl_check('nl_err_index');
SELECT nl_register('nl_err_cycle', 'function main(r) r.doc.m.self = r.doc.m return r end');
SELECT * FROM nl_check('nl_err_cycle');
SELECT nl_register('nl_err_key', 'function main(r) r.doc.m[true] = 1 return r end');
SELECT * FROM nl_check('nl_err_key');

-- the scan that finds scripts whose nested objects cannot outlive the call
-- (no copies at its end); anything else "may keep" them (DEBUG says)
SET client_min_messages = debug2;
SELECT talaria.register_lua('nl_scan_trim', 'function main(r) local d = r.doc d.key1 = nil d["key2"] = nil return r end');
SELECT talaria.register_lua('nl_scan_uses', $$
function main(r)
  r.doc.m.q.x = nil
  if r.doc.price == 20 then r.doc.cheap = true end
  if #r.doc.name > 3 then r.doc.long = r.doc.name .. "!" end
  local m = r.doc.m
  m.p = m.p * 2
  r.copy = r.doc.m
  return r.doc
end$$);
SELECT talaria.register_lua('nl_scan_global', 'function main(r) G = r.doc return r end');
SELECT talaria.register_lua('nl_scan_call', 'function main(r) print(r.doc.m) return r end');
SELECT talaria.register_lua('nl_scan_alias', 'function main(r) local d = r.doc local e = d e.x = 1 return r end');
SELECT talaria.register_lua('nl_scan_or', 'function main(r) local m = r.doc.m or {} m.x = 1 return r end');
SELECT talaria.register_lua('nl_scan_method', 'function main(r) r.doc.name = r.doc.name:upper() return r end');
SELECT talaria.register_lua('nl_scan_two', 'function main(r) return r.doc, 1 end');
SELECT talaria.register_lua('nl_scan_index', 'function main(r) r.doc[r.k] = 1 return r end');
RESET client_min_messages;
SELECT talaria.transform_row('nl_scan_uses', '{"doc": {"price": 20.00, "name": "abcd", "m": {"p": 1.25, "q": {"x": 1, "y": 2.0}}}}');

-- an ingest pipeline on (ts, doc jsonb) events stores the doc with its
-- numbers' texts
CREATE TABLE nl_raw (ts timestamptz NOT NULL, doc jsonb);
CREATE TABLE nl_events (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('nl_events', 'ts', '1 day', premake => 0);
SELECT talaria.create_pipeline('nl_raw', 'nl_events', 'nl_trim');
INSERT INTO nl_raw SELECT (doc->>'ts')::timestamptz, doc->'doc' FROM nl_docs ORDER BY n;
SELECT ts, doc FROM nl_events ORDER BY ts;
-- untouched objects and arrays (m, m.q, m.arr) are stored as the input's
-- own bytes: the same jsonb as PostgreSQL's, and readable in every way
SELECT count(*) FILTER (WHERE e.doc = (d.doc->'doc') - '{key1,key2,key3,key4,key5}'::text[]) AS same_as_minus,
       count(*) AS rows
FROM nl_events e JOIN nl_docs d ON e.ts = (d.doc->>'ts')::timestamptz;
SELECT ts, doc->'m'->'q'->>'t' AS t, jsonb_path_query_array(doc, '$.m.arr[*]') AS arr,
       doc @> '{"m": {"q": {"r": 2.0}}}' AS contains, jsonb_typeof(doc->'m') AS m
FROM nl_events ORDER BY ts;
SELECT talaria.drop_pipeline('nl_raw');
TRUNCATE nl_events;
-- a transform that keeps the previous event's doc (copied at the end of
-- its call) and reads it in the next
SELECT talaria.register_lua('nl_keep', $$
function main(r)
  local prev = P
  P = r.doc
  r.doc.key1 = nil
  if prev then r.doc.prev_price = prev.price r.doc.prev_m = prev.m end
  return r
end$$);
SELECT talaria.create_pipeline('nl_raw', 'nl_events', 'nl_keep');
INSERT INTO nl_raw SELECT (doc->>'ts')::timestamptz, doc->'doc' FROM nl_docs ORDER BY n;
COPY nl_raw FROM stdin (FORMAT csv);
2024-01-04 00:00:00+00,"{""price"": 5.50, ""m"": {""p"": 0.10}}"
2024-01-05 00:00:00+00,"{""price"": 6.50, ""key1"": 1}"
\.
SELECT ts, doc FROM nl_events ORDER BY ts;

DROP TABLE nl_raw;
DROP TABLE nl_events;

-- Many rows through one state, so that LuaJIT compiles the script with
-- the row's Lua metamethods in it (README, "Lua transforms"): every result
-- the same as with talaria.lua_lazy_objects off
CREATE TEMP TABLE nl_many AS
  SELECT i, jsonb_build_object('ts', i, 'doc', jsonb_build_object(
           'key1', i, 'key2', 'x' || i, 'price', (i % 7) + 0.50, 'score', i % 3,
           'm', CASE WHEN i % 5 = 0 THEN NULL
                     ELSE jsonb_build_object('p', 1.50, 'q', jsonb_build_object('r', 2.0, 's', i)) END)) AS doc
  FROM generate_series(1, 400) i;
SELECT nl_register('nl_many_del', 'function main(r) local d = r.doc d.key1 = nil d.key2 = nil return r end');
SELECT nl_register('nl_many_rw', $$
function main(r)
  local d = r.doc
  d.total = d.price + d.score
  d.key1 = nil
  r.m = d.m
  return r
end$$);
SELECT nl_register('nl_many_deep', $$
function main(r)
  local m = r.doc.m
  if type(m) == "table" then m.p = nil m.q.r = nil m.q.t = r.ts end
  return r
end$$);
SELECT nl_register('nl_many_swap', 'function main(r) r.doc = {a = r.doc.price, b = r.doc} r.doc.b.key1 = nil return r end');
SELECT nl_register('nl_many_keep', $$
function main(r)
  local p = G
  G = r.doc
  if p then r.doc.prev = p.price r.doc.prev_m = p.m end
  r[1] = nil
  return r
end$$);
-- an object read from the row, then the row's field deleted, replaced,
-- read again, walked, encoded, read raw
SELECT nl_register('nl_many_held', $$
local json = require("json")
function main(r)
  local d = r.doc
  local k = r.ts % 6
  if k == 0 then r.doc = nil
  elseif k == 1 then r.doc = {x = d.price}
  elseif k == 2 then r.same = (r.doc == d) d.key1 = nil
  elseif k == 3 then local n = 0 for key in pairs(r) do n = n + 1 end r.n = n
  elseif k == 4 then r.enc = json.encode(r)
  else r.raw = rawget(r, "doc") == d end
  return r
end$$);
-- objects' tables are handed out again to the next row when the row left
-- them empty: one that got a member, or was walked, must not be
SELECT nl_register('nl_many_dirty', $$
function main(r)
  local d = r.doc
  local m = d.m
  local k = r.ts % 4
  if k == 0 then d.extra = r.ts
  elseif k == 1 and type(m) == "table" then m.extra = r.ts
  elseif k == 2 then local n = 0 for _ in pairs(d) do n = n + 1 end r.n = n end
  return r
end$$);
CREATE TEMP TABLE nl_many_out (script text, lazy boolean, i int, result text);
SET talaria.lua_lazy_objects = on;
INSERT INTO nl_many_out
  SELECT s, true, i, talaria.transform_row(s, doc)::text
  FROM unnest(ARRAY['nl_many_del', 'nl_many_rw', 'nl_many_deep', 'nl_many_swap', 'nl_many_keep',
                     'nl_many_held', 'nl_many_dirty']) s,
       LATERAL (SELECT * FROM nl_many ORDER BY i) m;
SET talaria.lua_lazy_objects = off;
INSERT INTO nl_many_out
  SELECT s, false, i, talaria.transform_row(s || '_eager', doc)::text
  FROM unnest(ARRAY['nl_many_del', 'nl_many_rw', 'nl_many_deep', 'nl_many_swap', 'nl_many_keep',
                     'nl_many_held', 'nl_many_dirty']) s,
       LATERAL (SELECT * FROM nl_many ORDER BY i) m;
RESET talaria.lua_lazy_objects;
-- (a number the script computes or keeps may be spelled otherwise: the
-- memo gives it the text of a decimal of that value the script read, and
-- the eager mode reads them all; the values are the same)
SELECT l.script, count(*) AS rows,
       count(*) FILTER (WHERE l.result IS DISTINCT FROM e.result) AS text_differs,
       count(*) FILTER (WHERE l.result::jsonb IS DISTINCT FROM e.result::jsonb) AS value_differs
  FROM nl_many_out l JOIN nl_many_out e USING (script, i)
 WHERE l.lazy AND NOT e.lazy GROUP BY l.script ORDER BY 1;
SELECT script, result FROM nl_many_out WHERE lazy AND i IN (5, 399) ORDER BY script, i;
SELECT i, result FROM nl_many_out WHERE lazy AND script = 'nl_many_held' AND i BETWEEN 390 AND 395 ORDER BY i;
SELECT i, result FROM nl_many_out WHERE lazy AND script = 'nl_many_dirty' AND i BETWEEN 392 AND 397 ORDER BY i;
-- no member added in one row shows in another
SELECT count(*) FILTER (WHERE (result::jsonb #> '{doc,extra}') IS NOT NULL) AS doc_extra,
       count(*) FILTER (WHERE (result::jsonb #> '{doc,extra}') IS NOT NULL AND
                              (i % 4 <> 0 OR result::jsonb #>> '{doc,extra}' <> i::text)) AS doc_leaked,
       count(*) FILTER (WHERE (result::jsonb #> '{doc,m,extra}') IS NOT NULL) AS m_extra,
       count(*) FILTER (WHERE (result::jsonb #> '{doc,m,extra}') IS NOT NULL AND
                              (i % 4 <> 1 OR result::jsonb #>> '{doc,m,extra}' <> i::text)) AS m_leaked
  FROM nl_many_out WHERE script = 'nl_many_dirty';
RESET client_min_messages;
