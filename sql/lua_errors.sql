-- Errors name the transform and carry Lua's message and line.
SET client_min_messages = warning;
SELECT talaria.register_lua('fails', E'function main(row)\n  local x = nil\n  return x.field\nend');
SELECT talaria.transform_row('fails', '{}');
SELECT talaria.register_lua('raises', E'function main(row)\n\n  error("custom failure: " .. row.why)\nend');
SELECT talaria.transform_row('raises', '{"why": "bad row"}');
SELECT talaria.register_lua('raises_table', 'function main(row) error({code = 1}) end');
SELECT talaria.transform_row('raises_table', '{}');
SELECT talaria.register_lua('raises_level0', 'function main(row) error("no position", 0) end');
SELECT talaria.transform_row('raises_level0', '{}');

-- the SQLSTATE of a Lua runtime error
DO $$
BEGIN
  PERFORM talaria.transform_row('fails', '{}');
EXCEPTION WHEN others THEN
  RAISE WARNING 'sqlstate %', SQLSTATE;
END $$;

-- after errors the backend and the transform keep working
SELECT talaria.register_lua('sometimes', 'function main(row) if row.fail then error("asked to") end return "ok" end');
SELECT talaria.transform_row('sometimes', '{"fail": true}');
SELECT talaria.transform_row('sometimes', '{}');

-- print() sends a NOTICE
SET client_min_messages = notice;
SELECT talaria.register_lua('printer', 'function main(row) print("hello", 1, nil, true) return row end');
SELECT talaria.transform_row('printer', '{}');
SET client_min_messages = warning;

-- unknown transforms and bad arguments
SELECT talaria.transform_row('no_such_transform', '{}');
SELECT talaria.transform_row(repeat('x', 100), '{}');
SELECT talaria.transform_row('', '{}');
SELECT talaria.transform_row(NULL, '{}') IS NULL AS null_name_gives_null;
SELECT talaria.transform_row('fails', 'not json');
