-- Native transforms that cannot be registered, and plugins that misbehave.
-- Every failure is an ERROR that names the library or the transform;
-- nothing is stored, a refused plugin is never called, and the backend
-- goes on.
SET client_min_messages = warning;
SET talaria.native_library_path = '$libdir/talaria_test_plugins';

-- arguments
SELECT talaria.register_native(NULL, '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.register_native('n', NULL, 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/trim.so', NULL);
SELECT talaria.register_native('not a name', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/trim.so', 'not a symbol');
SELECT talaria.register_native('n', 'trim.so', 'trim');
SELECT talaria.register_native('n', 'talaria_test_plugins/trim.so', 'trim');

-- the file: missing, a directory, not a shared object
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/missing.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/notelf.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/object.so', 'trim');

-- outside talaria.native_library_path: another directory, a symlink that
-- leads out, a path with "..", a subdirectory of an allowed directory
-- (the details name the real file, which differs between machines)
\set VERBOSITY terse
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins_outside/trim.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/escape.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/../talaria_test_plugins_outside/trim.so', 'trim');
SET talaria.native_library_path = '$libdir';
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/trim.so', 'trim');
SET talaria.native_library_path = '';
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/trim.so', 'trim');
\set VERBOSITY default
RESET talaria.native_library_path;
SHOW talaria.native_library_path;
-- several directories, spaces around entries ignored; entries that do not
-- exist are skipped
SET talaria.native_library_path = '/nonexistent:relative/dir: $libdir/talaria_test_plugins_outside ';
SELECT talaria.register_native('outside', '$libdir/talaria_test_plugins_outside/trim.so', 'trim');
SELECT talaria.transform_row('outside', '{"key1": 1, "a": 2}');
SELECT talaria.drop_transform('outside');
SET talaria.native_library_path = '$libdir/talaria_test_plugins';

-- not a plugin, or a plugin for another ABI: refused, never called (the
-- functions in abi*.so abort the process)
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/noinfo.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/abi99.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/abisize.so', 'trim');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/abinewer.so', 'trim');

-- the symbol: missing, defined by another library (libc), not a function
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/trim.so', 'missing');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/encode.so', 'snprintf');
SELECT talaria.register_native('n', '$libdir/talaria_test_plugins/bad.so', 'not_a_function');

-- nothing was stored
SELECT count(*) AS stored FROM talaria.transforms WHERE name = 'n';

-- plugins that fail or return garbage: one ERROR each, naming the transform
SELECT talaria.register_native(f, '$libdir/talaria_test_plugins/bad.so', f)
  FROM unnest(ARRAY['fail_message', 'fail_silent', 'bad_status', 'null_result',
                    'bad_tag', 'bad_tag_nested', 'bad_utf8', 'nul_byte',
                    'null_string', 'null_key', 'null_members', 'count_over_cap',
                    'huge_string', 'cycle', 'nan_float', 'bad_timestamp',
                    'bad_numeric', 'arena_exhausted']) f;
SELECT talaria.transform_row('fail_message', '{"id": 42}');
SELECT talaria.transform_row('fail_silent', '{}');
SELECT talaria.transform_row('bad_status', '{}');
SELECT talaria.transform_row('null_result', '{}');
SELECT talaria.transform_row('bad_tag', '{}');
SELECT talaria.transform_row('bad_tag_nested', '{"a": 1}');
SELECT talaria.transform_row('bad_utf8', '{"a": 1}');
SELECT talaria.transform_row('nul_byte', '{"a": 1}');
SELECT talaria.transform_row('null_string', '{}');
SELECT talaria.transform_row('null_key', '{}');
SELECT talaria.transform_row('null_members', '{}');
SELECT talaria.transform_row('count_over_cap', '{}');
SELECT talaria.transform_row('huge_string', '{}');
SELECT talaria.transform_row('cycle', '{}');
SELECT talaria.transform_row('nan_float', '{}');
SELECT talaria.transform_row('bad_timestamp', '{}');
SELECT talaria.transform_row('bad_numeric', '{}');
SELECT talaria.transform_row('arena_exhausted', '{}');

-- the backend is fine, and a failed row does not disturb the next ones
SELECT talaria.register_native('trim', '$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.transform_row('trim', '{"key1": 1, "a": 2}');
SELECT talaria.transform_row('trim', '"not an object"');

SELECT talaria.drop_transform(name) FROM talaria.transforms
 WHERE kind = 'native' ORDER BY name;
