-- Pattern matching and sorting in the sandbox: string.find, match, gmatch,
-- gsub and table.sort are interruptible versions of LuaJIT's (see
-- test/t/061_lua_cpath.pl for the limits); they must behave exactly as
-- LuaJIT 2.1's, errors included.
SET client_min_messages = warning;
SELECT talaria.register_lua('eval', $$
local function show(...)
  local t = {}
  for i = 1, select('#', ...) do t[i] = tostring((select(i, ...))) end
  return table.concat(t, ' ')
end
function main(row)
  local f, err = load(row.code)
  if not f then return 'compile error: ' .. err end
  local r = {pcall(f)}
  if not r[1] then return 'error: ' .. tostring(r[2]) end
  return show(unpack(r, 2, table.maxn(r)))
end
$$);

CREATE FUNCTION lua_eval(code text) RETURNS jsonb
LANGUAGE sql AS $$ SELECT talaria.transform_row('eval', jsonb_build_object('code', code)) $$;

-- string.find
SELECT code, lua_eval(code) FROM (VALUES
  ($$return string.find('hello world', 'o w')$$),
  ($$return string.find('hello world', 'o', 6)$$),
  ($$return string.find('hello', 'l', -2)$$),
  ($$return string.find('hello', '', 10)$$),
  ($$return string.find('hello', 'xyz')$$),
  ($$return string.find('a.b', '.', 1, true)$$),
  ($$return string.find('a+b', 'a+b')$$),
  ($$return string.find('a+b', 'a+b', 1, true)$$),
  ($$return string.find('key = value', '(%w+)%s*=%s*(%w+)')$$),
  ($$return string.find('THE (quick) fox', '%((%a+)%)')$$),
  ($$return string.find('hello', '()ll()')$$),
  ($$return string.find('hello', '^h'), string.find('hello', '^e')$$),
  ($$return string.find('hello', 'o$'), string.find('hello', 'l$')$$),
  ($$return string.find('a$b', '$b')$$),
  ($$return string.find('a\0b', '%z')$$),
  ($$return ('x'):rep(3):find('x+')$$),
  ($$return string.find(12345, 34)$$),
  ($$return string.find('hello', 'l', '4')$$),
  ($$return string.find('a.c.', '.', 3, 1), string.find('abc', 'b', nil, true)$$),
  ($$return string.find(string.rep('ab', 1000), 'ba', -10, true)$$)
) AS v(code);

-- string.match
SELECT code, lua_eval(code) FROM (VALUES
  ($$return string.match('2024-01-15', '(%d+)-(%d+)-(%d+)')$$),
  ($$return string.match('  trim me  ', '^%s*(.-)%s*$')$$),
  ($$return string.match('f(a(b)c)d', '%b()')$$),
  ($$return string.match('THE (quick) fox', '%f[%a]%a+', 5)$$),
  ($$return string.match('hello', '.-l'), string.match('hello', '.*l')$$),
  ($$return string.match('abcabc', '(abc)%1')$$),
  ($$return string.match('abc', 'a?b?c?d?')$$),
  ($$return string.match('[x]', '[]]'), string.match('a^b', '[%^b]+')$$),
  ($$return string.match('a-b', '[a%-]+'), string.match('x9_!', '[%w_]+')$$),
  ($$return string.match('A1 b2', '%u%d'), string.match('A1 b2', '%l%d')$$),
  ($$return string.match('tab	here', '%S+%s'), string.match('ff 0x1F', '0x(%x+)')$$),
  ($$return string.match('a.b,c', '%p'), string.match('abc', '%A'), string.match('é', '%a')$$),
  ($$return string.match('hello', 'l+', -3)$$),
  ($$return string.match('hello', '()')$$),
  ($$return string.match('THE END', '%f[%w]%w+$')$$)
) AS v(code);

-- string.gmatch
SELECT code, lua_eval(code) FROM (VALUES
  ($$local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t + 1] = k .. v end return table.concat(t, ',')$$),
  ($$local t = {} for w in ('one two  three'):gmatch('%a+') do t[#t + 1] = w end return table.concat(t, ',')$$),
  ($$local n = 0 for w in ('abc'):gmatch('x*') do n = n + 1 end return n$$),
  ($$local t = {} for p in ('hello'):gmatch('()l') do t[#t + 1] = p end return table.concat(t, ',')$$),
  ($$local it = string.gmatch('ab', '.') return it(), it(), it()$$)
) AS v(code);

-- string.gsub
SELECT code, lua_eval(code) FROM (VALUES
  ($$return string.gsub('hello world', 'o', '0')$$),
  ($$return string.gsub('hello world', '(%w+)', '<%1>')$$),
  ($$return string.gsub('hello world', '%w+', '%0 %0', 1)$$),
  ($$return string.gsub('abc', '', '-')$$),
  ($$return string.gsub('$name is $age', '%$(%w+)', {name = 'ada', age = 36})$$),
  ($$return string.gsub('a,b', '%w', function(c) return c:upper() end)$$),
  ($$return string.gsub('a,b', '%w', function(c) if c == 'a' then return nil end return false end)$$),
  ($$return string.gsub('aaa', '^a', 'x')$$),
  ($$return string.gsub('50%', '%%', ' percent')$$),
  ($$return string.gsub('x', 'x', '%%')$$),
  ($$return string.gsub('hello', 'l', 7)$$),
  ($$return string.gsub('hello', 'l+', 'L', 0)$$),
  ($$return string.gsub('abc', '()', '%1')$$)
) AS v(code);

-- table.sort
SELECT code, lua_eval(code) FROM (VALUES
  ($$local t = {5, 2, 8, 1, 9, 3} table.sort(t) return table.concat(t, ',')$$),
  ($$local t = {5, 2, 8, 1, 9, 3} table.sort(t, function(a, b) return a > b end) return table.concat(t, ',')$$),
  ($$local t = {'pear', 'apple', 'fig'} table.sort(t) return table.concat(t, ',')$$),
  ($$local t = {} for i = 1, 200 do t[i] = (i * 37) % 101 end table.sort(t) return t[1], t[100], t[200]$$),
  ($$local t = {3, 1, 2, 5, 4, 4, 2} table.sort(t, function(a, b) return a % 3 < b % 3 end) return table.concat(t, ',')$$),
  ($$local t = {} table.sort(t) return #t$$)
) AS v(code);

-- tostring (a wrapper in the sandbox)
SELECT code, lua_eval(code) FROM (VALUES
  ($$return tostring(nil), tostring(12), tostring('x'), tostring(true)$$),
  ($$return tostring(setmetatable({}, {__tostring = function() return 'obj' end}))$$),
  ($$return tostring(1, 2)$$)
) AS v(code);

-- errors, as LuaJIT words them (statements, not tail calls: the messages
-- name the function and the line)
SELECT code, lua_eval(code) FROM (VALUES
  ($$string.find('a', '%')$$),
  ($$string.find('a', '[a')$$),
  ($$string.find('a', '(a')$$),
  ($$string.match('a', 'a)')$$),
  ($$string.find('a', '%1')$$),
  ($$string.gsub('a', 'a', '%2')$$),
  ($$string.find('a', '%b')$$),
  ($$string.find('a', '%f')$$),
  ($$string.find('a', string.rep('()', 33))$$),
  ($$string.find(string.rep('a', 250), string.rep('a?', 250))$$),
  ($$string.gsub('a', 'a', true)$$),
  ($$string.gsub('a', 'a')$$),
  ($$string.gsub('a', 'a', function() return {} end)$$),
  ($$string.find(nil, 'a')$$),
  ($$string.match('a')$$),
  ($$string.find('a')$$),
  ($$string.find('a', 'a', 1, true, {})$$),
  ($$string.find({}, 'a', 1, true)$$),
  ($$string.find('a', 'a', {})$$),
  ($$('x'):find({})$$),
  ($$string.gmatch('a', nil)$$),
  ($$table.sort({1, 'x'})$$),
  ($$table.sort({3, 2, 1, 5, 4}, function(a, b) return true end)$$),
  ($$table.sort({}, 1)$$),
  ($$table.sort('x')$$),
  ($$tostring()$$)
) AS v(code);

DROP FUNCTION lua_eval(text);
SELECT talaria.drop_transform('eval');
