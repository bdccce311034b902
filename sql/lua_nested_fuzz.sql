-- Lazy nested objects against eager ones (talaria.lua_lazy_objects off):
-- random (ts, doc) rows, random edit scripts, the same results.  Each
-- script runs as two transforms (one per mode, so globals stay apart)
-- over four rows in order.  A script that only deletes, sets literals,
-- rewrites members in place, walks with pairs/next or encodes must give
-- the very same text; one that moves, keeps or computes numbers may
-- differ only in how such a number is spelled (the number memo gives a
-- number the text of a decimal of that value the script read, and the
-- eager mode reads every one): the same jsonb.
SET client_min_messages = warning;
SELECT setseed(0.4242);

CREATE FUNCTION nf_pick(a text[]) RETURNS text LANGUAGE sql AS
  $$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;

CREATE FUNCTION nf_value(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  r float := random();
  o jsonb := '[]';
BEGIN
  IF depth < 4 AND r < 0.4 THEN
    RETURN nf_object(depth + 1);
  ELSIF depth < 4 AND r < 0.5 THEN
    FOR i IN 1 .. floor(random() * 4)::int LOOP
      o := o || jsonb_build_array(nf_value(depth + 1));
    END LOOP;
    RETURN o;
  END IF;
  r := random();
  RETURN CASE
    WHEN r < 0.2 THEN to_jsonb(floor(random() * 100)::int)
    WHEN r < 0.5 THEN nf_pick(ARRAY['1.50', '20.00', '20', '0.10', '2.0', '1e2', '3.14159',
                                    '-0.0', '123456789012345678901', '1.000'])::jsonb
    WHEN r < 0.75 THEN to_jsonb(nf_pick(ARRAY['a', 'b', 'x y', '', 'é', '{"j": 1}']))
    WHEN r < 0.85 THEN 'true'::jsonb
    WHEN r < 0.9 THEN 'false'::jsonb
    ELSE 'null'::jsonb END;
END $$;

CREATE FUNCTION nf_object(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  o jsonb := '{}';
BEGIN
  FOR i IN 1 .. floor(random() * 6)::int LOOP
    o := o || jsonb_build_object(nf_pick(ARRAY['a', 'b', 'c', 'd', 'e']), nf_value(depth));
  END LOOP;
  RETURN o;
END $$;

CREATE TEMP TABLE nf_rows AS
  SELECT i AS n, jsonb_build_object('ts', i, 'doc', nf_object(1)) AS rowdoc
  FROM generate_series(1, 40) i;

-- a path to an object (perhaps), a key, a literal
CREATE FUNCTION nf_path() RETURNS text[] LANGUAGE sql AS $$
  SELECT CASE floor(random() * 4)::int
    WHEN 0 THEN ARRAY[]::text[] WHEN 1 THEN ARRAY[]::text[]
    WHEN 2 THEN ARRAY[nf_pick(ARRAY['a', 'b', 'c', 'd', 'e'])]
    ELSE ARRAY[nf_pick(ARRAY['a', 'b', 'c']), nf_pick(ARRAY['a', 'b', 'c', 'd'])] END
$$;
CREATE FUNCTION nf_key() RETURNS text LANGUAGE sql AS
  $$ SELECT nf_pick(ARRAY['a', 'b', 'c', 'd', 'e', 'new']) $$;

-- one statement; inexact[1] is set when it moves or keeps a value
CREATE FUNCTION nf_statement(k int, inexact INOUT boolean, stmt OUT text) LANGUAGE plpgsql AS $$
DECLARE
  p text[] := nf_path();
  walk text := '';
  chain text := 'r.doc';
  a text := nf_key();
  b text := nf_key();
  c int := floor(random() * 13)::int;
  body text;
BEGIN
  body := CASE c
    WHEN 0 THEN format('t.%s = nil', a)
    WHEN 1 THEN format('t.%s = %s', a, nf_pick(ARRAY['2.75', '7', '"s"', 'true', '{}', '{7, 8}', '{z = 7}', 'json.null']))
    WHEN 2 THEN format('t.%s = t.%s', a, a)
    WHEN 3 THEN format('t.%s = t.%s', a, b)
    WHEN 4 THEN format('local v = t.%s t.%s = nil t.%s = v', a, a, b)
    WHEN 5 THEN format('local ks = {} for key, v in pairs(t) do ks[#ks + 1] = tostring(key) .. type(v) end table.sort(ks) r.doc.ks%s = table.concat(ks, ",")', k)
    WHEN 6 THEN 'for key, v in pairs(t) do if type(v) == "number" or type(v) == "table" then t[key] = v end end'
    WHEN 7 THEN format('r.doc.enc%s = json.encode(t)', k)
    WHEN 8 THEN format('if G%s then r.doc.prev%s = G%s end G%s = t t.%s = nil', k, k, k, k, a)
    WHEN 9 THEN format('t.%s = next(t) == nil local n = 0 local key = next(t) while key ~= nil do n = n + 1 key = next(t, key) end r.doc.n%s = n', a, k)
    WHEN 10 THEN format('r.alias%s = t t.%s = 7 r.alias%s.%s = nil', k, a, k, b)
    WHEN 11 THEN format('if getmetatable(t) == nil then rawset(t, "raw%s", rawget(t, "%s")) end', k, a)
    ELSE 'table.insert(t, "ins") table.remove(t)' END;
  IF c IN (3, 4, 8, 9) THEN
    inexact := true;
  END IF;
  -- some statements unguarded: errors (indexing nil, a string) compared too
  FOR i IN 1 .. coalesce(array_length(p, 1), 0) LOOP
    walk := walk || format(' if type(t) == "table" then t = t.%s end', p[i]);
    chain := chain || '.' || p[i];
  END LOOP;
  IF random() < 0.85 THEN
    stmt := format('do local t = r.doc%s if type(t) == "table" then %s end end', walk, body);
  ELSE
    stmt := format('do local t = %s %s end', chain, body);
  END IF;
END $$;

-- a script of deletions and literal sets only, through chains: the scan
-- finds that its objects stay in the call (no copies made)
CREATE FUNCTION nf_simple_script() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  s text := 'function main(r) ';
BEGIN
  FOR i IN 1 .. 1 + floor(random() * 4)::int LOOP
    s := s || format('%s.%s = %s ', nf_pick(ARRAY['r.doc', 'r.doc', 'r.doc', 'r.doc.a']), nf_key(),
                     nf_pick(ARRAY['nil', 'nil', '7', '"s"']));
  END LOOP;
  RETURN s || 'return r end';
END $$;

CREATE FUNCTION nf_run(name text, rowdoc jsonb, lazy boolean) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('talaria.lua_lazy_objects', lazy::text, true);
  RETURN talaria.transform_row(CASE WHEN lazy THEN name ELSE name || '_eager' END, rowdoc)::text;
EXCEPTION WHEN OTHERS THEN
  -- which wrong key of an array is named first is the table's order: it
  -- differs between any two Lua states (string hashes), not only these
  RETURN 'ERROR: ' || regexp_replace(regexp_replace(SQLERRM, '_eager', '', 'g'),
                                     'cannot store key .* in an array', 'cannot store key … in an array');
END $$;

CREATE TEMP TABLE nf_results (script int, src text, inexact boolean, n int, lazy text, eager text);
DO $$
DECLARE
  src text;
  inexact boolean;
  st record;
  name text;
BEGIN
  FOR i IN 1 .. 150 LOOP
    inexact := false;
    IF i % 4 = 0 THEN
      src := nf_simple_script();
    ELSE
      src := 'local json = require("json") function main(r) ';
      FOR k IN 1 .. 1 + floor(random() * 5)::int LOOP
        st := nf_statement(k, inexact);
        inexact := st.inexact;
        src := src || st.stmt || ' ';
      END LOOP;
      src := src || 'return r end';
    END IF;
    name := 'nf_' || i;
    PERFORM talaria.register_lua(name, src);
    PERFORM talaria.register_lua(name || '_eager', src);
    FOR j IN 0 .. 3 LOOP
      INSERT INTO nf_results
        SELECT i, src, inexact, j, nf_run(name, rowdoc, true), NULL
        FROM nf_rows WHERE nf_rows.n = 1 + (i * 4 + j) % 40;
    END LOOP;
    FOR j IN 0 .. 3 LOOP
      UPDATE nf_results SET eager = nf_run(name, rowdoc, false)
        FROM nf_rows WHERE nf_rows.n = 1 + (i * 4 + j) % 40 AND script = i AND nf_results.n = j;
    END LOOP;
    PERFORM talaria.drop_transform(name);
    PERFORM talaria.drop_transform(name || '_eager');
  END LOOP;
END $$;

-- how much was compared (errors are results too)
SELECT count(DISTINCT script) AS scripts, count(*) AS calls,
       count(*) FILTER (WHERE lazy LIKE 'ERROR%') AS errors,
       count(*) FILTER (WHERE lazy = eager) AS same_text,
       count(DISTINCT script) FILTER (WHERE inexact) AS scripts_moving_values
FROM nf_results;
-- the differences: none
SELECT script, src, n, lazy, eager
FROM nf_results
WHERE lazy IS DISTINCT FROM eager
  AND CASE WHEN NOT inexact OR lazy IS NULL OR eager IS NULL OR
                lazy LIKE 'ERROR%' OR eager LIKE 'ERROR%' THEN true
           ELSE lazy::jsonb <> eager::jsonb END
ORDER BY script, n;
RESET client_min_messages;
