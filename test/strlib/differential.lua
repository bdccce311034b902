-- Differential test of src/lua_strlib.c against LuaJIT's own functions
-- (run by test/strlib/harness.c; see test/t/062_lua_strlib_diff.pl).
-- Random patterns from pieces of every construct, random subjects, every
-- kind of gsub replacement and sort comparator: results and error messages
-- must be identical.  SEED and N from the environment.
local seed = tonumber(os.getenv("SEED") or "1")
local N = tonumber(os.getenv("N") or "10000")
math.randomseed(seed)

local pieces = {
  "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%x", "%u", "%l", "%c",
  "%g", "%z", "%A", "%D", "%S", "%W", "%Z", "%%", "%.", "%(", "%]", "[ab]",
  "[^ab]", "[a-c]", "[%a_]", "[]]", "[^]]", "[a-]", "[%d-z]", "*", "+", "-",
  "?", "(", ")", "()", "%1", "%2", "%0", "%b()", "%bab", "%f[%w]",
  "%f[^%w]", "%f[a]", "^", "$", "%", "[", "[a", "%f", "%b", "%b(", "x",
  "\0", "(a)", "(%d+)", "(.-)", "%q", "%e", "%B", "%F", "-a", "[%]]",
  "[a%-z]", "[%z]",
}
local chars = {
  "a", "b", "c", "(", ")", "1", "2", " ", "x", "_", "\0", "\255", "%", "-",
  "[", "]", "ab", "aa", "()", "\n", "A", "Z",
}

local function random_from(list, max)
  local t = {}
  for i = 1, math.random(0, max) do t[i] = list[math.random(#list)] end
  return table.concat(t)
end

local function pack(...) return {n = select('#', ...), ...} end

local function show(r)
  local t = {}
  for i = 1, r.n do
    local v = r[i]
    t[i] = type(v) .. ":" .. (type(v) == "function" and "f" or tostring(v))
  end
  return table.concat(t, "|")
end

local compared, mismatches = 0, 0
local function same(what, a, b, ...)
  compared = compared + 1
  local sa, sb = show(a), show(b)
  if sa ~= sb then
    mismatches = mismatches + 1
    local args = pack(...)
    for i = 1, args.n do args[i] = string.format("%q", tostring(args[i])) end
    print("MISMATCH " .. what .. "(" .. table.concat(args, ", ") .. ")")
    print("  luajit: " .. sa)
    print("  ours:   " .. sb)
  end
end

-- called from a Lua function, so errors carry a position as in scripts
local function call(f, ...) return pack(pcall(function(...) return f(...) end, ...)) end

local function gmatch_all(gmatch, s, p)
  local out = {}
  local ok, it = pcall(gmatch, s, p)
  if not ok then return {n = 1, it} end
  for i = 1, 50 do
    local r = pack(pcall(it))
    out[#out + 1] = show(r)
    if not r[1] or r.n == 1 or r[2] == nil then break end
  end
  return {n = 1, table.concat(out, " ; ")}
end

local inits = {nil, 1, 2, 0, -1, -3, 5, 100, -100, -2.5, 3.9, "2", 1.7}
local replacements = {
  "%0", "%1", "<%2>", "x%%", "%", "%a", 7,
  function(...) return select('#', ...) > 1 and select(2, ...) or ... end,
  {a = "A", ["("] = false},
  function() return {} end,
  function() return nil end,
}
local maxes = {nil, 0, 1, 2, -1}

for i = 1, N do
  local s, p = random_from(chars, 12), random_from(pieces, 6)
  local init = inits[math.random(#inits)]
  local plain = ({nil, true, false})[math.random(3)]
  same("find", call(orig.find, s, p, init, plain), call(newstr.find, s, p, init, plain), s, p, init, plain)
  same("match", call(orig.match, s, p, init), call(newstr.match, s, p, init), s, p, init)
  local r, mx = replacements[math.random(#replacements)], maxes[math.random(#maxes)]
  same("gsub", call(orig.gsub, s, p, r, mx), call(newstr.gsub, s, p, r, mx), s, p, r, mx)
  same("gmatch", gmatch_all(orig.gmatch, s, p), gmatch_all(newstr.gmatch, s, p), s, p)
end

-- plain searches long enough for the chunked memmem path
for i = 1, 200 do
  local unit = random_from({"a", "b", "ab"}, 3)
  if unit == "" then unit = "a" end
  local s = string.rep(unit, math.random(1, 40000)) .. random_from({"a", "b", "c"}, 4)
  local p = string.rep(unit, math.random(1, 300)) .. random_from({"a", "b", "c"}, 2)
  local init = math.random(-10, 10)
  same("find(plain)", call(orig.find, s, p, init, true), call(newstr.find, s, p, init, true), #s, p, init)
end

-- argument errors
for _, args in ipairs({{n = 0}, {n = 1, "a"}, {n = 2, nil, "a"}, {n = 2, {}, "a"},
    {n = 2, "a", {}}, {n = 3, "a", "a", {}}, {n = 3, "a", "a", "x"}, {n = 2, 12, 1},
    {n = 2, "a1", 1}, {n = 3, "abc", "b", "2"}, {n = 4, "a", "a", "b", {}}}) do
  for _, name in ipairs({"find", "match", "gmatch", "gsub"}) do
    same(name, call(orig[name], unpack(args, 1, args.n)), call(newstr[name], unpack(args, 1, args.n)), name)
  end
end

-- limits: captures, nesting
local long = string.rep("a", 300)
for _, case in ipairs({{"a", string.rep("()", 33)}, {long, string.rep("a?", 199)},
    {long, string.rep("a?", 201)}, {long, string.rep("(a", 31) .. string.rep(")", 31)},
    {long, string.rep("(a", 33) .. string.rep(")", 33)}}) do
  same("find", call(orig.find, case[1], case[2]), call(newstr.find, case[1], case[2]), case[2])
end

-- table.sort: same comparisons in the same order, so the same result for
-- any comparator (the random one is replayed with the same seed)
local comparators = {
  nil,
  function(a, b) return a > b end,
  function(a, b) return a <= b end,
  function(a, b) return math.random() < 0.5 end,
  function(a, b) return (a % 3) < (b % 3) end,
}
for i = 1, 2000 do
  local t = {}
  for j = 1, math.random(0, 40) do t[j] = math.random(1, 10) end
  local t1, t2 = {unpack(t)}, {unpack(t)}
  local cmp = comparators[math.random(#comparators)]
  local replay = math.random(1, 1e6)
  math.randomseed(replay)
  local r1 = call(orig.sort, t1, cmp)
  math.randomseed(replay)
  local r2 = call(newtab.sort, t2, cmp)
  r1.n, r2.n = r1.n + 1, r2.n + 1
  r1[r1.n], r2[r2.n] = table.concat(t1, ","), table.concat(t2, ",")
  same("sort", r1, r2, table.concat(t, ","))
end
for _, args in ipairs({{n = 0}, {n = 1, 1}, {n = 2, {}, 1}, {n = 1, {3, "a"}}, {n = 2, {1, 2}, {}}}) do
  same("sort", call(orig.sort, unpack(args, 1, args.n)), call(newtab.sort, unpack(args, 1, args.n)))
end

-- the budget: a backtracking pattern calls the check, and a set check stops
-- every long-running function at once
local c0 = get_checks()
newstr.find(string.rep("a", 12), string.rep("a*", 12) .. "b")
local budget_checks = get_checks() - c0
set_interrupt(true)
local stopped = 0
for _, f in ipairs({
    function() return newstr.find(string.rep("a", 40), string.rep("a*", 40) .. "b") end,
    function() return newstr.match(string.rep("a", 40), string.rep("a*", 40) .. "b") end,
    function() for m in newstr.gmatch(string.rep("a", 40), string.rep("a*", 40) .. "b") do end end,
    function() return newstr.gsub(string.rep("a", 40), string.rep("a*", 40) .. "b", "") end,
    function() return newstr.find(string.rep("(", 1e5), "%b()") end,
    function() return newstr.find(string.rep("a", 1e6), string.rep("a", 1e3) .. "b", 1, true) end,
    function() local t = {} for i = 1, 1e5 do t[i] = -i end newtab.sort(t) end,
  }) do
  local ok, err = pcall(f)
  if not ok and tostring(err):find("transform interrupted", 1, true) then stopped = stopped + 1 end
end
set_interrupt(false)

print(string.format("seed %d: %d comparisons, %d mismatches, %d budget checks, %d of 7 stopped",
  seed, compared, mismatches, budget_checks, stopped))
