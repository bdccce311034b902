-- Another Lua in the same backend: pllua (Lua 5.3) and talaria (LuaJIT)
-- export the same lua_* names; talaria loads LuaJIT privately, so both
-- work in one session, whichever is loaded first.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pllua;
SELECT talaria.register_lua('coexist', 'function main(r) r.version = _VERSION return r end');

-- pllua first, then talaria
\c
DO $$ print('pllua: ' .. _VERSION) $$ LANGUAGE pllua;
SELECT talaria.transform_row('coexist', '{"n": 1}');
DO $$ print('pllua again: ' .. _VERSION) $$ LANGUAGE pllua;

-- talaria first, then pllua
\c
SELECT talaria.transform_row('coexist', '{"n": 2}');
DO $$ print('pllua after talaria: ' .. _VERSION) $$ LANGUAGE pllua;
SELECT talaria.transform_row('coexist', '{"n": 3}');

SELECT talaria.drop_transform('coexist');
DROP EXTENSION pllua;
