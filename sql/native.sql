-- Native transforms: C functions in shared libraries.  The sample plugins
-- are test/plugins/*.c, which make installcheck builds and installs under
-- $libdir/talaria_test_plugins.
SET client_min_messages = warning;
SET talaria.native_library_path = '$libdir/talaria_test_plugins';

-- Talaria's trim: remove key1 .. key5
SELECT talaria.register_native('trim', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT name, kind, source, library, symbol, owner = current_user::regrole AS mine
  FROM talaria.transforms WHERE name = 'trim';
SELECT talaria.transform_row('trim',
  '{"key1": 1, "key2": "x", "key3": null, "key4": [1], "key5": {}, "key6": 6, "id": 7}');

-- values the plugin does not touch come back exactly
SELECT talaria.transform_row('trim', $${"key1": 0,
  "big": 9223372036854775807, "bigger": 123456789012345678901234567890,
  "pi": 3.14159265358979323846264338327950288, "tiny": -1e-30,
  "s": "café ☕ \"q\" \\ \n", "nested": {"key1": "nested keys stay", "a": [1, [2, {}]]},
  "empty_array": [], "empty_object": {}, "n": null, "t": true, "f": false}$$);

-- the same through the host's remove(): equal results
SELECT talaria.register_native('trim_host', '$libdir/talaria_test_plugins/trim.so', 'trim_host');
SELECT talaria.transform_row('trim_host', '{"key1": 1, "key5": 5, "a": 1, "key": 2}');

-- over many rows, the same as PostgreSQL's own jsonb - text[]
SELECT count(*) AS differences
  FROM (SELECT jsonb_build_object('key1', i, 'key2', 'x' || i, 'key3', i % 2 = 0,
                                  'key4', NULL, 'key5', i * 1.5, 'id', i,
                                  'tags', jsonb_build_array(i, 'k')) AS doc
          FROM generate_series(1, 2000) i) rows
 WHERE talaria.transform_row('trim', doc)
       IS DISTINCT FROM doc - '{key1,key2,key3,key4,key5}'::text[]
    OR talaria.transform_row('trim_host', doc)
       IS DISTINCT FROM doc - '{key1,key2,key3,key4,key5}'::text[];

-- a scalar instead of a row: the row encoded as JSON text
SELECT talaria.register_native('encode', '$libdir/talaria_test_plugins/encode.so', 'encode');
SELECT talaria.transform_row('encode', '{"b": [1, 2.5, "x\"y\n"], "a": {"c": null}, "t": true}');
SELECT talaria.transform_row('encode', '{}'), talaria.transform_row('encode', '[]');
-- the text reads back as the same row
SELECT count(*) AS differences
  FROM (SELECT jsonb_build_object('i', i, 'f', i / 7.0, 's', repeat('é', i % 5),
                                  'a', jsonb_build_array(i, NULL, true)) AS doc
          FROM generate_series(1, 500) i) rows
 WHERE (talaria.transform_row('encode', doc) #>> '{}')::jsonb IS DISTINCT FROM doc;

-- Talaria's make://identifier and make://timestamp, as computed values and
-- as fields added to the row
SELECT talaria.register_native('identifier', '$libdir/talaria_test_plugins/make.so', 'identifier');
SELECT talaria.register_native('timestamp', '$libdir/talaria_test_plugins/make.so', 'timestamp');
SELECT talaria.register_native('add_identifier', '$libdir/talaria_test_plugins/make.so', 'add_identifier');
SELECT talaria.register_native('add_timestamp', '$libdir/talaria_test_plugins/make.so', 'add_timestamp');
SELECT jsonb_typeof(id) AS type, id #>> '{}' ~ '^[0-9a-f]{32}$' AS hex32
  FROM (SELECT talaria.transform_row('identifier', '{}') AS id) s;
SELECT count(DISTINCT talaria.transform_row('identifier', '{}')) AS distinct_ids
  FROM generate_series(1, 10000);
SELECT jsonb_typeof(ts) AS type,
       abs(ts::bigint - extract(epoch FROM clock_timestamp())::bigint) <= 5 AS now
  FROM (SELECT talaria.transform_row('timestamp', '{}') AS ts) s;
SELECT r - 'id' AS rest, r->>'id' ~ '^[0-9a-f]{32}$' AS hex32
  FROM (SELECT talaria.transform_row('add_identifier', '{"a": 1}') AS r) s;
SELECT r - 'ingested_at' AS rest, jsonb_typeof(r->'ingested_at') AS type
  FROM (SELECT talaria.transform_row('add_timestamp', '{"a": 1, "ingested_at": "old"}') AS r) s;

-- a plugin may drop the row (SQL NULL)
SELECT talaria.register_native('drop_row', '$libdir/talaria_test_plugins/bad.so', 'drop_row');
SELECT talaria.transform_row('drop_row', '{"a": 1}') IS NULL AS dropped;

-- replacing a registration: the new function runs on the next call
SELECT talaria.register_native('swap', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
SELECT talaria.register_native('swap', '$libdir/talaria_test_plugins/encode.so', 'encode');
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
-- registration is transactional
BEGIN;
SELECT talaria.register_native('swap', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
ROLLBACK;
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
-- a native transform can be replaced by a Lua one and back
SELECT talaria.register_lua('swap', 'function main(row) return "lua" end');
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
SELECT talaria.register_native('swap', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.transform_row('swap', '{"key1": 1, "a": 2}');
SELECT talaria.drop_transform('swap');

-- only a superuser registers native code, even with EXECUTE granted;
-- others run a registered one once its owner grants it
CREATE ROLE regress_tt_native;
GRANT USAGE ON SCHEMA talaria TO regress_tt_native;
SET ROLE regress_tt_native;
SELECT talaria.register_native('mine', '$libdir/talaria_test_plugins/trim.so', 'trim');
RESET ROLE;
GRANT EXECUTE ON FUNCTION talaria.register_native(text, text, text) TO regress_tt_native;
SET ROLE regress_tt_native;
SELECT talaria.register_native('mine', '$libdir/talaria_test_plugins/trim.so', 'trim');
SET talaria.native_library_path = '/tmp';
SELECT talaria.transform_row('trim', '{"key1": 1, "a": 2}');
RESET ROLE;
SELECT talaria.grant_transform('trim', 'regress_tt_native');
SET ROLE regress_tt_native;
SELECT talaria.transform_row('trim', '{"key1": 1, "a": 2}');
RESET ROLE;
SELECT talaria.revoke_transform('trim', 'regress_tt_native');
REVOKE EXECUTE ON FUNCTION talaria.register_native(text, text, text) FROM regress_tt_native;
REVOKE USAGE ON SCHEMA talaria FROM regress_tt_native;
DROP ROLE regress_tt_native;
SELECT count(*) FROM talaria.transforms WHERE name = 'mine';

SELECT talaria.drop_transform(name) FROM talaria.transforms
 WHERE kind = 'native' ORDER BY name;
