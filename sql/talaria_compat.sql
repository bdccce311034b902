-- Talaria compatibility (issue 16): Talaria's own computed-column and
-- script cases (internal/column/computed tests, internal/scripting tests,
-- internal/encoding/block transform tests of kelindar/talaria), run here
-- with the result on our side.  Where we differ on purpose, the README
-- ("Coming from Talaria") says why.
SET client_min_messages = warning;
DELETE FROM talaria.dead_letters;

-- ---------------------------------------------------------------------
-- The seed's json.encode(row) column (Test_Computed, TestLoadLua):
-- Talaria expects the text {"a":1,"b":"hello"}
-- ---------------------------------------------------------------------
SELECT talaria.register_lua('tc_data', $$
	local json = require("json")

	function main(row)
		return json.encode(row)
	end$$);
SELECT talaria.transform_row('tc_data', '{"a": 1, "b": "hello"}') #>> '{}' AS data;

-- ---------------------------------------------------------------------
-- Talaria's built-ins, available after CREATE EXTENSION
-- ---------------------------------------------------------------------
CREATE ROLE regress_tc_anyone;
SELECT name, kind, symbol, acl[1]::text LIKE '=X/%' AS granted_to_public,
       talaria.has_transform_privilege('regress_tc_anyone', name) AS anyone_may_use
  FROM talaria.transforms WHERE kind = 'builtin' ORDER BY name;
DROP ROLE regress_tc_anyone;
-- Test_Identifier: a string of 32 characters (lowercase hex here);
-- bytes 0..7 are the time in ns, 12..15 the backend's pid
SELECT length(id) AS len, id ~ '^[0-9a-f]{32}$' AS hex,
       abs(('x' || substr(id, 1, 16))::bit(64)::bigint / 1e9 - extract(epoch FROM clock_timestamp())) < 60 AS time_now,
       ('x' || substr(id, 25, 8))::bit(32)::int = pg_backend_pid() AS pid
  FROM (SELECT talaria.transform_row('make://identifier', '{"a": 1, "b": "hello"}') #>> '{}' AS id) s;
-- sortable by creation time and unique: 2000 in one statement
SELECT count(DISTINCT id) AS distinct_ids,
       bool_and(id > prev) AS increasing
  FROM (SELECT id, lag(id, 1, '') OVER (ORDER BY n) AS prev
          FROM (SELECT n, talaria.transform_row('make://identifier', '{}') #>> '{}' AS id
                  FROM generate_series(1, 2000) n) a) b;
-- Test_Timestamp: a non-zero int64, the Unix time in seconds
SELECT jsonb_typeof(ts) AS type,
       abs(ts::text::bigint - extract(epoch FROM now())) < 60 AS now
  FROM (SELECT talaria.transform_row('make://timestamp', '{}') AS ts) s;

-- ---------------------------------------------------------------------
-- A table as Talaria's computed columns fill it: the built-ins, the seed's
-- data column (JSON), a trim, a filter and a nil result
-- ---------------------------------------------------------------------
CREATE TABLE tc_raw (ts timestamptz, a int, b text, key1 int, key2 int, debug boolean);
CREATE TABLE tc_ev (ts timestamptz NOT NULL, a int, b text) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tc_ev', 'ts', '1 day', premake => 0);
-- Talaria's trim and filter in one script: nil drops the row.  (Talaria
-- drops null fields, so its `if row.debug then` skips a null; here a
-- null is json.null, which is true in a test: compare with true.)
SELECT talaria.register_lua('tc_trim', $$
	function main(row)
		if row.debug == true then return nil end
		row.key1 = nil
		row.key2 = nil
		row.debug = nil
		return row
	end$$);
SELECT talaria.register_lua('tc_nil', 'function main(row) return nil end');
SELECT talaria.create_pipeline('tc_raw', 'tc_ev', 'tc_trim');
-- Talaria's declaration: name, type, func (types string, int64, json, ...);
-- a missing column is added with that type
SELECT talaria.add_computed_columns('tc_ev', $$[
	{"name": "id",   "type": "string",    "func": "make://identifier"},
	{"name": "at",   "type": "timestamp", "func": "make://timestamp"},
	{"name": "data", "type": "json",      "func": "tc_data"},
	{"name": "none", "type": "string",    "func": "tc_nil"}
]$$) AS added;
SELECT column_name, transform, on_error, rounding FROM talaria.computed_columns
 WHERE target = 'tc_ev'::regclass ORDER BY column_name;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'tc_ev'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO tc_raw VALUES ('2001-02-03 04:05:06+00', 1, 'hello', 1, 2, false),
                          ('2001-02-03 05:05:06+00', 2, 'filtered', 1, 2, true),
                          ('2001-02-03 06:05:06+00', 3, 'world', 1, 2, NULL);
-- the data column holds the trimmed row as JSON (the object, not a string)
SELECT a, b, data, none IS NULL AS none_is_null, length(id) AS id_len,
       at > now() - interval '1 minute' AS at_now
  FROM tc_ev ORDER BY a;
-- identifiers sort in the order the rows were stored
SELECT array_agg(a ORDER BY id) AS by_id FROM tc_ev;
-- into a uuid column (32 hex digits are a valid uuid), sortable there too
ALTER TABLE tc_ev ADD COLUMN uid uuid;
SELECT talaria.add_computed_column('tc_ev', 'uid', 'make://identifier');
INSERT INTO tc_raw SELECT '2001-02-04', n, 'u', 0, 0, false FROM generate_series(10, 14) n;
SELECT array_agg(a ORDER BY uid) AS by_uid, count(DISTINCT uid) AS distinct_uids
  FROM tc_ev WHERE uid IS NOT NULL;

-- ---------------------------------------------------------------------
-- Typed computed columns: an integer column from 3.7, and a mistyped value
-- ---------------------------------------------------------------------
CREATE TABLE tc_nraw (ts timestamptz, x jsonb);
CREATE TABLE tc_n (ts timestamptz NOT NULL, x jsonb) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tc_n', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('tc_pass', 'function main(row) return row end');
SELECT talaria.register_lua('tc_x', 'function main(row) return row.x end');
SELECT talaria.register_lua('tc_fail', $$function main(row)
	if row.x == "boom" then error("computed value failed") end
	return 1
end$$);
SELECT talaria.create_pipeline('tc_nraw', 'tc_n', 'tc_pass');
SELECT talaria.add_computed_column('tc_n', 'truncated', 'tc_x', type => 'int32',
                                   on_error => 'null', rounding => 'truncate');
SELECT talaria.add_computed_column('tc_n', 'rounded', 'tc_x', type => 'int64',
                                   on_error => 'null', rounding => 'round');
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', type => 'int32', on_error => 'null');
SELECT talaria.add_computed_column('tc_n', 'f', 'tc_x', type => 'float64', on_error => 'null');
SELECT talaria.add_computed_column('tc_n', 'flag', 'tc_x', type => 'bool', on_error => 'null');
SELECT talaria.add_computed_column('tc_n', 'u', 'tc_x', type => 'uuid', on_error => 'null');
SELECT talaria.add_computed_column('tc_n', 'failing', 'tc_fail', type => 'int64', on_error => 'null');
INSERT INTO tc_nraw VALUES ('2001-02-03', '3.7'), ('2001-02-03', '-3.7'), ('2001-02-03', '2.5'),
                           ('2001-02-03', '-2.5'), ('2001-02-03', '42'), ('2001-02-03', '"42"'),
                           ('2001-02-03', '" 7 "'), ('2001-02-03', '"abc"'), ('2001-02-03', 'true'),
                           ('2001-02-03', '"yes"'), ('2001-02-03', '1e30'), ('2001-02-03', '"boom"'),
                           ('2001-02-03', '"a0eebc999c0b4ef8bb6d6bb9bd380a11"'), ('2001-02-03', 'null');
SELECT x, truncated, rounded, exact, f, flag, u, failing FROM tc_n ORDER BY x::text;
DELETE FROM tc_n;
-- on_error => 'dead_letter': the row is a dead letter, even in an 'abort' pipeline
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', on_error => 'dead_letter');
INSERT INTO tc_nraw VALUES ('2001-02-03', '5'), ('2001-02-03', '3.7'), ('2001-02-03', '"abc"'),
                           ('2001-02-03', '"12"');
SELECT x, exact FROM tc_n ORDER BY x::text;
SELECT "row"->>'x' AS x, stage, sqlstate, error FROM talaria.dead_letters ORDER BY 1;
DELETE FROM talaria.dead_letters;
DELETE FROM tc_n;
-- on_error => 'abort': the statement fails, even in a 'dead_letter' pipeline
SELECT talaria.drop_pipeline('tc_nraw');
SELECT talaria.create_pipeline('tc_nraw', 'tc_n', 'tc_pass', on_error => 'dead_letter');
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', on_error => 'abort');
INSERT INTO tc_nraw VALUES ('2001-02-03', '5'), ('2001-02-03', '3.7');
SELECT count(*) AS stored, (SELECT count(*) FROM talaria.dead_letters) AS dead_letters FROM tc_n;
-- on_error => 'pipeline' (the default, as before 0.3.0): the pipeline's
-- on_error; here a dead letter, and a mistyped text fails in the type's
-- own input function
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x');
INSERT INTO tc_nraw VALUES ('2001-02-03', '5'), ('2001-02-03', '3.7'), ('2001-02-03', '"abc"');
SELECT x, exact FROM tc_n ORDER BY x::text;
SELECT "row"->>'x' AS x, stage, sqlstate, error FROM talaria.dead_letters ORDER BY 1;
DELETE FROM talaria.dead_letters;
-- a failing computed value never hides cancellation or limits: a timeout
-- ends the statement even with on_error => 'null'
SELECT talaria.register_lua('tc_spin', 'function main(row) while true do end end');
SELECT talaria.add_computed_column('tc_n', 'failing', 'tc_spin', on_error => 'null');
SET talaria.transform_timeout = '50ms';
INSERT INTO tc_nraw VALUES ('2001-02-03', '1');
RESET talaria.transform_timeout;
SELECT talaria.drop_transform('tc_spin', cascade => true);

-- ---------------------------------------------------------------------
-- Result keys that name no column: an error, or ignored (Talaria)
-- ---------------------------------------------------------------------
CREATE TABLE tc_kraw (ts timestamptz, a int, extra text);
CREATE TABLE tc_k (ts timestamptz NOT NULL, a int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('tc_k', 'ts', '1 day', premake => 0);
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_pass');
INSERT INTO tc_kraw VALUES ('2001-02-03', 1, 'x');
SELECT talaria.drop_pipeline('tc_kraw');
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_pass', unknown_keys => 'ignore');
SELECT source, transform, on_error, unknown_keys FROM talaria.pipelines WHERE source = 'tc_kraw'::regclass;
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'tc_kraw'::regclass ORDER BY tgname;
INSERT INTO tc_kraw VALUES ('2001-02-03', 1, 'x');
COPY tc_kraw FROM STDIN;
2001-02-03	2	y
\.
SELECT a FROM tc_k ORDER BY a;
-- with on_error => 'dead_letter' as well: a failing row is a dead letter
-- (the first 0.3.0 build took a fourth trigger argument as 'abort')
SELECT talaria.drop_pipeline('tc_kraw');
SELECT talaria.register_lua('tc_neg', 'function main(r) if r.a < 0 then error("negative") end return r end');
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_neg', on_error => 'dead_letter', unknown_keys => 'ignore');
INSERT INTO tc_kraw VALUES ('2001-02-03', 3, 'z'), ('2001-02-03', -1, 'z');
SELECT a FROM tc_k ORDER BY a;
SELECT "row"->>'a' AS a, error FROM talaria.dead_letters WHERE transform = 'tc_neg';
DELETE FROM talaria.dead_letters WHERE transform = 'tc_neg';
SELECT talaria.drop_pipeline('tc_kraw');
SELECT talaria.drop_transform('tc_neg');
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_pass', unknown_keys => 'ignore');

-- ---------------------------------------------------------------------
-- Talaria's scripts: os.difftime, json.decode's nil, err, the row as a
-- Lua table (#row, pairs, ipairs, next) lazy or not
-- ---------------------------------------------------------------------
SELECT talaria.register_lua('tc_script', $$
local json = require("json")
function main(row)
	local started = os.time({year = 2020, month = 1, day = 1, hour = 0})
	local t, err = json.decode("{not json", {errors = "return"})
	local ok, raised = pcall(json.decode, "{not json")
	local good, nerr = json.decode('{"k": [1, 2]}', {errors = "return"})
	local n = 0
	for k, v in pairs(row) do n = n + 1 end
	local m = 0
	for i, v in ipairs(row) do m = m + 1 end
	return {
		elapsed = os.difftime(started + 90, started),
		decoded_nil = t == nil, err = err, raised = not ok and raised == err,
		good = good.k[2], nerr = nerr == nil,
		len = #row, pairs = n, ipairs = m, has_next = next(row) ~= nil
	}
end$$);
SELECT talaria.transform_row('tc_script', '{"a": 1, "b": 2, "c": 3}');
SELECT talaria.transform_row('tc_script', '[10, 20, 30]');
-- a lazy row is a table: fields removed and added are seen by # and pairs
SELECT talaria.register_lua('tc_rowtable', $$
function main(row)
	row.a = nil
	row.z = 26
	local keys = {}
	for k in pairs(row) do keys[#keys + 1] = k end
	table.sort(keys)
	row[1] = "first"
	return {keys = table.concat(keys, ","), len = #row, one = row[1]}
end$$);
SELECT talaria.transform_row('tc_rowtable', '{"a": 1, "b": 2, "c": 3}');

-- ---------------------------------------------------------------------
-- Where we differ on purpose (README: "Coming from Talaria")
-- ---------------------------------------------------------------------
-- big numbers stay exact (Talaria: float64, 12345678901234567000)
SELECT talaria.transform_row('tc_data', '{"n": 12345678901234567890, "d": 0.1}') #>> '{}' AS lossless;
-- JSON null is kept as json.null (Talaria drops the key)
SELECT talaria.transform_row('tc_data', '{"a": null}') #>> '{}' AS null_kept;
-- JSON null is json.null, which is true in a test (Talaria: nil, false)
SELECT talaria.register_lua('tc_truthy', 'function main(row) if row.debug then return "truthy" end return "falsy" end');
SELECT talaria.transform_row('tc_truthy', '{"debug": null}') AS null_debug,
       talaria.transform_row('tc_truthy', '{}') AS missing_debug;
-- json.decode raises by default (Talaria returns nil, err)
SELECT talaria.register_lua('tc_decode', 'function main(row) return require("json").decode("{bad") end');
SELECT talaria.transform_row('tc_decode', '{}');

-- ---------------------------------------------------------------------
-- Bad inputs
-- ---------------------------------------------------------------------
-- built-ins are not replaced, dropped, regranted or used as a pipeline
SELECT talaria.drop_transform('make://identifier');
SELECT talaria.revoke_transform('make://timestamp', 'public');
SELECT talaria.grant_transform('make://timestamp', 'public');
SELECT talaria.register_lua('make://identifier', 'function main(r) return 1 end');
SELECT talaria.create_pipeline('tc_nraw', 'tc_n', 'make://identifier');
SELECT talaria.transform_row('make://nothing', '{}');
-- a computed column using a built-in is seen by the dependency check
CREATE TABLE tc_dep (ts timestamptz NOT NULL, id text);
SELECT talaria.register_lua('tc_dep_t', 'function main(r) return 1 end');
SELECT talaria.add_computed_column('tc_dep', 'id', 'tc_dep_t');
SELECT talaria.drop_transform('tc_dep_t');
SELECT talaria.drop_transform('tc_dep_t', cascade => true);
-- add_computed_column's new arguments
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', on_error => 'skip');
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', rounding => 'floor');
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', on_error => NULL);
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', type => 'int128');
SELECT talaria.add_computed_column('tc_n', 'exact', 'tc_x', type => 'string');
SELECT talaria.add_computed_column('tc_n', 'missing', 'tc_x');
SELECT talaria.add_computed_column('tc_n', 'missing', 'no_such_transform', type => 'string');
SELECT talaria.add_computed_columns('tc_n', '{"name": "a"}');
SELECT talaria.add_computed_columns('tc_n', '[{"name": "a"}]');
-- another role may not add a column to a table it does not own
CREATE ROLE regress_tc_user;
GRANT USAGE ON SCHEMA talaria TO regress_tc_user;
SET ROLE regress_tc_user;
SELECT talaria.add_computed_column('tc_n', 'sneaky', 'make://identifier', type => 'string');
RESET ROLE;
REVOKE USAGE ON SCHEMA talaria FROM regress_tc_user;
DROP ROLE regress_tc_user;
-- unknown_keys
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_pass', unknown_keys => 'drop');
SELECT talaria.create_pipeline('tc_kraw', 'tc_k', 'tc_pass', unknown_keys => NULL);
CREATE TABLE tc_hand (ts timestamptz, a int);
CREATE TRIGGER t BEFORE INSERT ON tc_hand FOR EACH ROW
	EXECUTE FUNCTION talaria.ingest('tc_pass', 'tc_k', 'abort', 'sometimes');
INSERT INTO tc_hand VALUES ('2001-02-03', 1);
-- json.decode's options
SELECT talaria.register_lua('tc_decode', 'function main(row) return require("json").decode("1", {errors = "maybe"}) end');
SELECT talaria.transform_row('tc_decode', '{}');
SELECT talaria.register_lua('tc_decode', 'function main(row) return require("json").decode("1", "return") end');
SELECT talaria.transform_row('tc_decode', '{}');

DROP TABLE tc_raw, tc_ev, tc_nraw, tc_n, tc_kraw, tc_k, tc_dep, tc_hand;
SELECT talaria.drop_transform(name) FROM talaria.transforms WHERE name LIKE 'tc\_%' ORDER BY name;
DELETE FROM talaria.dead_letters;
