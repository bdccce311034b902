-- The Lua sandbox: only base functions, string, table, math and
-- os.time/os.date/os.clock.  Every escape attempt below must fail.
SET client_min_messages = warning;

-- what a transform can see: the sorted list of globals and os members
SELECT talaria.register_lua('globals', $$
function main(row)
  local names = {}
  for k in pairs(_G) do names[#names + 1] = k end
  table.sort(names)
  local os_names = {}
  for k in pairs(os) do os_names[#os_names + 1] = k end
  table.sort(os_names)
  return { globals = table.concat(names, ' '), os = table.concat(os_names, ' ') }
end
$$);
SELECT talaria.transform_row('globals', '{}');

-- a helper transform that runs a snippet and reports how it ended
SELECT talaria.register_lua('try', $$
function main(row)
  local f, err = load(row.code)
  if not f then return { compiled = false, error = err } end
  local ok, res = pcall(f)
  return { ok = ok, result = tostring(res) }
end
$$);

SELECT r.code, talaria.transform_row('try', jsonb_build_object('code', r.code)) AS outcome
FROM (VALUES
  ('return io'),
  ('return os.execute'),
  ('return os.getenv'),
  ('return os.exit'),
  ('return os.remove'),
  ('return debug'),
  ('return package'),
  ('return ffi'),
  ('return jit'),
  ('return bit'),
  ('return getfenv'),
  ('return setfenv'),
  ('return dofile'),
  ('return loadfile'),
  ('return module'),
  ('return newproxy'),
  ('return coroutine'),
  ('return string.dump'),
  ('return ("").dump'),
  ('return require("ffi")'),
  ('return require("io")'),
  ('return require("debug")'),
  ('return require("os")'),
  ('return collectgarbage("stop")'),
  ('return getmetatable("").__index.dump'),
  ('return rawget(_G, "io")'),
  ('return select(2, loadstring(string.char(27) .. "LJ"))'),
  ('return select(2, load(string.char(27, 76, 74, 2)))'),
  ('return _G["__tal" .. "aria_check"]'),
  ('local __talaria_check = nil'),
  ('return _G.__talaria_check'),
  ('return getmetatable(require("json"))')
) AS r(code);

-- load() gives text chunks the sandbox environment, never the real one
SELECT talaria.transform_row('try', '{"code": "return load(\"return io\")() == nil and load(\"return os.execute\")() == nil"}');
-- a binary chunk through a reader function is refused too
SELECT talaria.transform_row('try', '{"code": "local s = string.char(27) .. \"LJ\\2\" ; return select(2, load(function() local r = s; s = nil; return r end))"}');

-- each transform has its own globals: one cannot see or change another's
SELECT talaria.register_lua('writer', $$
secret = 'mine'
function main(row) shared_value = 42; string.upper = function() return 'hacked' end; return secret end
$$);
SELECT talaria.register_lua('reader', $$
function main(row) return { secret = tostring(secret), shared = tostring(shared_value), upper = string.upper('ok') } end
$$);
SELECT talaria.transform_row('writer', '{}');
SELECT talaria.transform_row('reader', '{}');

-- os.time/os.date/os.clock work
SELECT talaria.register_lua('clock', $$
function main(row)
  return { t = type(os.time()), d = os.date('!%Y-%m-%d', 0), c = type(os.clock()) }
end
$$);
SELECT talaria.transform_row('clock', '{}');

-- registering a script that tries to escape at load time fails cleanly
SELECT talaria.register_lua('escape1', 'local f = io.open("/etc/passwd") function main(r) return r end');
SELECT talaria.register_lua('escape2', 'local ffi = require("ffi") function main(r) return r end');
SELECT talaria.register_lua('escape3', E'\x1bLJ binary');
SELECT talaria.register_lua('escape4', 'local __talaria_check = function() end function main(r) while true do end end');
SELECT name FROM talaria.transforms WHERE name LIKE 'escape%';
