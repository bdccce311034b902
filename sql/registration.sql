-- Registering, replacing and dropping Lua transforms; the catalog.
SET client_min_messages = warning;

SELECT talaria.register_lua('add_one', 'function main(row) row.n = row.n + 1 return row end');
SELECT name, kind, source, library, symbol, owner FROM talaria.transforms WHERE name = 'add_one';
SELECT talaria.transform_row('add_one', '{"n": 1}');

-- create or replace: the new version runs on the next call
SELECT talaria.register_lua('add_one', 'function main(row) row.n = row.n + 100 return row end');
SELECT talaria.transform_row('add_one', '{"n": 1}');
SELECT count(*) FROM talaria.transforms WHERE name = 'add_one';
SELECT updated_at >= created_at AS updated FROM talaria.transforms WHERE name = 'add_one';

-- registration is transactional: a rolled-back replace leaves the old one,
-- in this backend too (its cache saw the new version inside the transaction)
BEGIN;
SELECT talaria.register_lua('add_one', 'function main(row) row.n = -1 return row end');
SELECT talaria.transform_row('add_one', '{"n": 1}');
ROLLBACK;
SELECT talaria.transform_row('add_one', '{"n": 1}');

-- a rolled-back drop too
BEGIN;
SELECT talaria.drop_transform('add_one');
SELECT talaria.transform_row('add_one', '{"n": 1}');
ROLLBACK;
SELECT talaria.transform_row('add_one', '{"n": 1}');

-- a script may keep state between calls in its cached state
SELECT talaria.register_lua('counter', 'local n = 0 function main(row) n = n + 1 return n end');
SELECT talaria.transform_row('counter', '{}') FROM generate_series(1, 3);
-- lua_cache = off: a fresh state on every call
SET talaria.lua_cache = off;
SELECT talaria.transform_row('counter', '{}') FROM generate_series(1, 3);
RESET talaria.lua_cache;

-- the seed script from DESIGN.md works verbatim
SELECT talaria.register_lua('seed', $$local json = require("json")
function main(row)
  return json.encode(row)
end$$);
SELECT talaria.transform_row('seed', '{"a": [1, 2]}');

SELECT talaria.drop_transform('counter');
SELECT name FROM talaria.transforms WHERE name IN ('add_one', 'counter', 'seed') ORDER BY name;

-- names
SELECT talaria.register_lua('a.b-c_1', 'function main(r) return r end');
SELECT talaria.register_lua(repeat('x', 63), 'function main(r) return r end');
SELECT talaria.drop_transform('a.b-c_1');
SELECT talaria.drop_transform(repeat('x', 63));

-- privileges: the catalog is read-only for PUBLIC; owners (or superusers)
-- replace and drop; native code is for superusers only
CREATE ROLE regress_alice;
CREATE ROLE regress_bob;
GRANT USAGE ON SCHEMA talaria TO regress_alice, regress_bob;
SET ROLE regress_alice;
SELECT talaria.register_lua('alices', 'function main(r) return "alice" end');
SELECT name, owner FROM talaria.transforms WHERE name = 'alices';
INSERT INTO talaria.transforms (name, kind, source) VALUES ('sneaky', 'lua', 'x');
UPDATE talaria.transforms SET source = 'x' WHERE name = 'alices';
DELETE FROM talaria.transforms;
SELECT talaria.register_native('nat', '/tmp/x.so', 'f');
SET ROLE regress_bob;
SELECT talaria.register_lua('alices', 'function main(r) return "bob" end');
SELECT talaria.drop_transform('alices');
-- bob may not run alice's transform until she grants it
SELECT talaria.transform_row('alices', '{}');
SELECT talaria.grant_transform('alices', 'regress_bob');
SET ROLE regress_alice;
SELECT talaria.grant_transform('alices', 'regress_bob');
SET ROLE regress_bob;
SELECT talaria.transform_row('alices', '{}');
SET ROLE regress_alice;
SELECT talaria.revoke_transform('alices', 'regress_bob');
SET ROLE regress_bob;
SELECT talaria.transform_row('alices', '{}');
RESET ROLE;
GRANT regress_alice TO regress_bob;
SET ROLE regress_bob;
SELECT talaria.register_lua('alices', 'function main(r) return "bob, as a member of alice" end');
SELECT talaria.transform_row('alices', '{}');
RESET ROLE;
SELECT talaria.drop_transform('alices');
REVOKE USAGE ON SCHEMA talaria FROM regress_alice, regress_bob;
DROP ROLE regress_bob;
DROP ROLE regress_alice;

-- transform_row under a parallel plan: it is parallel restricted, so it
-- runs in the leader above the Gather, in parallel mode, where no new
-- snapshot may be taken (loading the transform must not try)
CREATE TABLE par_rows AS
  SELECT i, jsonb_build_object('i', i) AS doc FROM generate_series(1, 5000) i;
ANALYZE par_rows;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT talaria.register_lua('par_double', 'function main(r) r.i = r.i * 2 return r end');
EXPLAIN (COSTS OFF)
SELECT sum((talaria.transform_row('par_double', doc)->>'i')::int) FROM par_rows;
SELECT sum((talaria.transform_row('par_double', doc)->>'i')::int) FROM par_rows;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE par_rows;
SELECT talaria.drop_transform('par_double');

-- bad input: nothing invalid is stored
SELECT talaria.register_lua(NULL, 'function main(r) return r end');
SELECT talaria.register_lua('nullsrc', NULL);
SELECT talaria.register_lua('', 'function main(r) return r end');
SELECT talaria.register_lua('has space', 'function main(r) return r end');
SELECT talaria.register_lua('1starts_with_digit', 'function main(r) return r end');
SELECT talaria.register_lua(repeat('x', 64), 'function main(r) return r end');
SELECT talaria.register_lua('quote"d', 'function main(r) return r end');
SELECT talaria.register_lua('syntax', E'function main(row)\n  local x = \n  return row\nend');
SELECT talaria.register_lua('syntax2', E'function main(row)\n  return row\n');
SELECT talaria.register_lua('nomain', 'function mian(row) return row end');
SELECT talaria.register_lua('mainnotfn', 'main = 42');
SELECT talaria.register_lua('empty', '');
SELECT talaria.register_lua('toperror', E'\n\nerror("boom at load")\nfunction main(r) return r end');
SELECT talaria.register_lua('toploop', 'while true do end function main(r) return r end')
  FROM (SELECT set_config('talaria.transform_timeout', '100ms', false)) s;
RESET talaria.transform_timeout;
SELECT talaria.drop_transform('no_such_transform');
SELECT talaria.drop_transform(NULL);
-- none of the bad registrations left a row
SELECT count(*) FROM talaria.transforms
WHERE name IN ('nullsrc', 'syntax', 'syntax2', 'nomain', 'mainnotfn', 'empty', 'toperror', 'toploop');
