-- Limits: memory per state, time per call, statement_timeout; the backend
-- and other transforms keep working after each.
SET client_min_messages = warning;
SELECT talaria.register_lua('ok', 'function main(row) return "fine" end');

-- memory: a bomb hits talaria.lua_memory_limit, then the next call works
SELECT talaria.register_lua('bomb', $$
local keep = {}
function main(row)
  if row.small then return #keep end
  local s = string.rep('x', 1024)
  for i = 1, 1e9 do keep[i] = s .. i end
end
$$);
SET talaria.lua_memory_limit = '8MB';
SELECT talaria.transform_row('bomb', '{}');
SELECT talaria.transform_row('bomb', '{"small": true}');	-- a fresh state
SELECT talaria.transform_row('ok', '{}');
SELECT talaria.register_lua('bigstring', 'function main(row) return string.rep("x", 64 * 1024 * 1024) end');
SELECT talaria.transform_row('bigstring', '{}');
-- a script can catch a memory error with pcall and go on
SELECT talaria.register_lua('catcher', $$
function main(row)
  local ok, err = pcall(string.rep, 'x', 64 * 1024 * 1024)
  return { ok = ok, err = err }
end
$$);
SELECT talaria.transform_row('catcher', '{}');
RESET talaria.lua_memory_limit;

-- time: runaway loops are stopped, in the interpreter and in JIT traces
SELECT talaria.register_lua('spin', 'function main(row) while true do end end');
SELECT talaria.register_lua('spin_call', $$
local function f(x) return x + 1 end
function main(row) local s = 0 for i = 1, 1e12 do s = f(s) end return s end
$$);
SELECT talaria.register_lua('spin_repeat', 'function main(row) repeat until false end');
SELECT talaria.register_lua('spin_goto', 'function main(row) ::top:: goto top end');
SELECT talaria.register_lua('spin_recurse', 'local function r(n) return r(n + 1) end function main(row) return r(0) end');
SELECT talaria.register_lua('spin_pcall', $$
function main(row)
  while true do pcall(function() while true do end end) end
end
$$);
SELECT talaria.register_lua('spin_load', $$
function main(row) return load('while true do end')() end
$$);
SELECT talaria.register_lua('spin_gsub', $$
function main(row) return (string.gsub(string.rep('a', 10), 'a', function() while true do end end)) end
$$);
SET talaria.transform_timeout = '100ms';
SELECT talaria.transform_row('spin', '{}');
SELECT talaria.transform_row('spin_call', '{}');
SELECT talaria.transform_row('spin_repeat', '{}');
SELECT talaria.transform_row('spin_goto', '{}');
SELECT talaria.transform_row('spin_recurse', '{}');
SELECT talaria.transform_row('spin_pcall', '{}');
SELECT talaria.transform_row('spin_load', '{}');
SELECT talaria.transform_row('spin_gsub', '{}');
SELECT talaria.transform_row('ok', '{}');
RESET talaria.transform_timeout;

-- statement_timeout interrupts a running script (the same as a cancel)
SET statement_timeout = '200ms';
SELECT talaria.transform_row('spin', '{}');
SELECT talaria.transform_row('spin_call', '{}');
RESET statement_timeout;
SELECT talaria.transform_row('ok', '{}');

-- settings: bad values are refused
SET talaria.lua_memory_limit = '10kB';
SET talaria.transform_timeout = -1;
SET talaria.lua_cache = 'maybe';
SHOW talaria.lua_memory_limit;
SHOW talaria.transform_timeout;
