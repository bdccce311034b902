-- No private object reaches a script, and a lazy row's state cannot
-- outlive its row (issue 11, items 3a and 5).
SET client_min_messages = warning;

-- the next that pairs hands out walks a lazy row whole: field names and
-- values only, never the row's state (before: the builtin next, which
-- walked the raw table and gave its private key and state userdata)
SELECT talaria.register_lua('walk_with_pairs_next', $$
function main(row)
  local nx = pairs({})
  local seen = {}
  local k, v = nx(row)
  while k ~= nil do
    seen[#seen + 1] = type(k) .. ' ' .. tostring(k) .. ' = ' .. type(v)
    k, v = nx(row, k)
  end
  table.sort(seen)
  return { seen = seen, same_next = (nx == next) }
end
$$);
SELECT talaria.transform_row('walk_with_pairs_next', '{"a": 1, "b": "x", "c": {"d": true}}');

-- the same in a generic for, after one field was read
SELECT talaria.register_lua('for_with_pairs_next', $$
function main(row)
  local a = row.a
  local n, types = 0, {}
  for k, v in (pairs({})), row do
    n = n + 1
    types[type(k)] = true
    types[type(v)] = true
  end
  return { n = n, userdata = types.userdata or false, a = a }
end
$$);
SELECT talaria.transform_row('for_with_pairs_next', '{"a": 1, "b": 2, "c": 3}');

-- a row kept from an earlier call, walked with the captured next
SELECT talaria.register_lua('walk_kept_row', $$
local prev
local nx = pairs({})
function main(row)
  local out = { keys = {} }
  if prev then
    for k, v in nx, prev do out.keys[#out.keys + 1] = k .. '=' .. tostring(v) end
    table.sort(out.keys)
  end
  prev = row
  collectgarbage('collect')
  return out
end
$$);
SELECT talaria.transform_row('walk_kept_row', jsonb_build_object('id', i, 'v', i * 10))
FROM generate_series(1, 3) AS i;

-- nothing else hands out anything private either
SELECT talaria.register_lua('raw_views', $$
function main(row)
  local mt = getmetatable(row)
  local v = rawget(row, 'b')
  local kinds = {}
  for k, x in pairs(row) do kinds[#kinds + 1] = type(k) .. ' ' .. type(x) end
  table.sort(kinds)
  return { mt = mt == nil, b = v, kinds = kinds }
end
$$);
SELECT talaria.transform_row('raw_views', '{"a": [1], "b": "two"}');

-- a script that drops its row, collects, and allocates tables until one
-- lands at the row's old address: the row is pinned for the call, so
-- none does, and the result is the script's own table (before: the dead
-- row's fields were read back through its freed state)
SELECT talaria.register_lua('drop_the_row', $$
function main(r)
  local addr = tostring(r)
  r = nil
  collectgarbage('collect')
  local keep = {}
  for i = 1, 50000 do
    local t = {}
    if tostring(t) == addr then t.reused = true return t end
    keep[i] = t
  end
  return { reused = false }
end
$$);
SELECT talaria.transform_row('drop_the_row', '{"a": 1, "b": 2}')
FROM generate_series(1, 3);

-- the same with a row whose fields were read and changed first
SELECT talaria.register_lua('drop_the_changed_row', $$
function main(r)
  local a = r.a
  r.b = nil
  r.c = 'new'
  local addr = tostring(r)
  r = nil
  collectgarbage('collect')
  for i = 1, 50000 do
    local t = { a = a }
    if tostring(t) == addr then t.reused = true return t end
  end
  return { a = a, reused = false }
end
$$);
SELECT talaria.transform_row('drop_the_changed_row', '{"a": 1, "b": 2}')
FROM generate_series(1, 3);
