-- json.decode and json.encode on the edge cases of the grammar: every
-- line of the expected output is what the json-c based module gave (the
-- module now parses and writes JSON itself, within the memory budget).
SET client_min_messages = warning;
SELECT talaria.register_lua('json_cases', $LUA$
local json = require('json')
local cases = {
  '"\\ud800"', '"\\ud800x"', '"\\udc00"', '"\\ud83d\\ude00"', '"\\ud800\\u0041"',
  '"\\ud800\\ud800"', '"\\ud800\\ud800\\udc00"', '"a\\u0000b"', '"\\u00e9"', '"\\u00E9"', '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
  '1.50', '1E2', '1e-2', '-0', '-0.0', '0', '12345678901234567890', '-12345678901234567890',
  '9007199254740992', '9007199254740993', '-9007199254740993', '123456789012345678', '1e400', '0.1',
  '123456789012345.6', '1234567890123456.7', '[1,]', '{"a":1,}', '01', '1.', '-', '.5', '+1', '1e', '1e+', '--1',
  'tru', 'true1', 'nullx', 'true', 'false', 'null', '[1 2]', '{"a" 1}', '{1:2}', ' [ ] ', '\n{ }\t',
  '"\\x"', '"\\u12"', '"\\u12g4"', '"ab', '[', '{"a":', '{"a"', '{', '[1,', 'NaN', 'Infinity', '-Infinity',
  '"\t"', '"é"', '"\255"', '"\192\128"', '"\237\160\128"', '"\244\144\128\128"',
  '{"\\u0000": 1}', '{"a\\u0000b": 1}', '{"x": "\\u0000"}', '[[[]]]', '{"a":{"b":{"c":[1,{"d":null}]}}}',
  '{"a":1,"a":2}', '[1,2,3', '1 2', '"a" "b"', '', ' ', '\0', '[1]\0', '{"a":1}x', '[]]', '{}}',
  '[true,false,null]', '[1e5,1E+5,1e-5,-1.5e3]', '"\\uD834\\uDD1E"', '[-]', '[1.e5]', '[0.]', '[00]', '[-01]',
  '"' .. string.rep('\\u0041', 3) .. '"', '["\\u001f"]', '{"k":[]}', '[{}]',
}
local deep = string.rep('[', 200) .. string.rep(']', 200)
local deeper = string.rep('[', 201) .. string.rep(']', 201)
cases[#cases + 1] = deep
cases[#cases + 1] = deeper
local out = {}
for i, c in ipairs(cases) do
  local ok, v = pcall(json.decode, c)
  local r
  if ok then
    local ok2, e = pcall(json.encode, v)
    r = 'ok ' .. type(v) .. ' ' .. (ok2 and e or ('encode error: ' .. e))
  else
    r = 'error ' .. v
  end
  out[#out + 1] = string.format('%3d %s', i, r)
end
-- encoder cases
local enc = {
  {s = string.char(1, 2, 31, 127, 128, 255) .. '"\\/'},
  {1, 2.5, -0.0, 1e300, 2^53, 2^53 + 2, -2^63, 0.1, 1/3},
  {a = json.null}, {b = {c = false}},
  json.decode('[]'),
  json.decode('[1, 12345678901234567890, 1.50, 1e400]'),
  {[1] = 'a', [2] = 'b'}, {[1] = 'a', [3] = 'c'}, {},
}
for i, v in ipairs(enc) do
  local ok, e = pcall(json.encode, v)
  out[#out + 1] = string.format('enc %d %s %s', i, tostring(ok), ok and e or e)
end
for _, v in ipairs({ 'str', 5, true }) do
  out[#out + 1] = 'enc scalar ' .. json.encode(v)
end
out[#out + 1] = 'enc nil ' .. json.encode(nil)
local ok, e = pcall(json.encode, {[true] = 1})
out[#out + 1] = 'enc boolkey ' .. tostring(e)
ok, e = pcall(json.encode, {['a\0b'] = 1})
out[#out + 1] = 'enc nulkey ' .. tostring(e)
ok, e = pcall(json.encode, {f = print})
out[#out + 1] = 'enc fn ' .. tostring(e)
ok, e = pcall(json.encode, {x = 0/0})
out[#out + 1] = 'enc nan ' .. tostring(e)
local text = table.concat(out, '\n'):gsub('[%z\1-\9\11-\31\128-\255]', function(c) return string.format('<%02x>', c:byte()) end)
function main(row) return text end
$LUA$);
\pset format unaligned
\pset tuples_only on
SELECT talaria.transform_row('json_cases', '{}') #>> '{}';
