/*-------------------------------------------------------------------------
 *
 * lua_convert.c
 *	  The value tree <-> Lua values, losslessly.
 *
 * Runs on the Lua side (inside lua_cpcall): errors are Lua errors, memory
 * comes from the Lua allocator or the per-row arena (which reports
 * exhaustion as NULL, never by ereport).  The one PostgreSQL call,
 * formatting a timestamp, runs under its own PG_TRY (push_timestamp).
 * Conventions in lua_common.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua_common.h"
#include "talaria.h"

char		tt_lua_null_tag;

/*
 * The registry key of the row registry (row table -> state: a userdata,
 * or LAZY_LOCAL for a row without a copy, whose state is the call's own).
 */
static char lazy_key_tag;
static char lazy_local_tag;

#define LAZY_KEY ((void *) &lazy_key_tag)
#define LAZY_LOCAL ((void *) &lazy_local_tag)

/*
 * The registry key of a table whose [1] is the current call's row (see
 * fast_newindex): set with cur_row_ptr, so that while cur_row_ptr is set
 * it is that table.
 */
static char lazy_cur_tag;

#define LAZY_CUR_KEY ((void *) &lazy_cur_tag)

static inline void
push_row_registry(lua_State *L)
{
	lua_pushlightuserdata(L, LAZY_KEY);
	lua_rawget(L, LUA_REGISTRYINDEX);
}

static void push_timestamp(lua_State *L, const tt_value *v);
static int	lazy_index(lua_State *L);
static int	lazy_newindex(lua_State *L);
static int	fast_newindex(double code, const char *k, size_t len, bool isnil);
static int	fast_object(double code, const char *k, size_t len, double *out);
static void push_lazy_object(lua_State *L, const tt_value *obj, int depth);

/* 2^53: beyond it a double no longer holds every integer */
#define TT_MAX_SAFE_INT INT64CONST(9007199254740992)

/* ---------------------------------------------------------------------
 * The exact-number box
 * ---------------------------------------------------------------------
 */
TTLuaNumber *
tt_lua_tonumberbox(lua_State *L, int idx)
{
	void	   *p = lua_touserdata(L, idx);

	if (p != NULL && lua_type(L, idx) == LUA_TUSERDATA &&
		lua_getmetatable(L, idx))
	{
		bool		same;

		luaL_getmetatable(L, TT_LUA_NUMBER_MT);
		same = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
		if (same)
			return (TTLuaNumber *) p;
	}
	return NULL;
}

/* Significant digits of a decimal text, or -1 if it is not a number. */
static int
significant_digits(const char *s, size_t len)
{
	size_t		i = 0;
	int			digits = 0;
	int			pending_zeros = 0;
	bool		seen_nonzero = false;
	bool		seen_digit = false;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	for (; i < len; i++)
	{
		char		c = s[i];

		if (c >= '0' && c <= '9')
		{
			seen_digit = true;
			if (c == '0')
			{
				if (seen_nonzero)
					pending_zeros++;
			}
			else
			{
				digits += pending_zeros + 1;
				pending_zeros = 0;
				seen_nonzero = true;
			}
		}
		else if (c == '.')
			continue;
		else if (c == 'e' || c == 'E')
			break;
		else
			return -1;
	}
	/* trailing zeros of an integer part are significant in value */
	if (seen_nonzero && pending_zeros > 0)
	{
		const char *dot = memchr(s, '.', len);

		if (dot == NULL)
			digits += pending_zeros;
	}
	return seen_digit ? digits : -1;
}

/*
 * Push a number given as decimal text: a plain Lua number when a double
 * holds it exactly enough to give the same value back (15 significant
 * digits or fewer), otherwise a box that keeps the text.
 */
void
tt_lua_push_number_text(lua_State *L, const char *text, size_t len)
{
	int			sig = significant_digits(text, len);
	TTLuaNumber *box;
	double		d;

	/* beyond a double's range (1e400) it stays exact text too */
	if (sig >= 0 && sig <= 15 && tt_decimal_to_double(text, len, &d) &&
		(d != 0 || sig == 0))
	{
		lua_pushnumber(L, d);
		return;
	}
	box = (TTLuaNumber *) lua_newuserdata(L, offsetof(TTLuaNumber, text) + len + 1);
	box->len = len;
	memcpy(box->text, text, len);
	box->text[len] = '\0';
	luaL_getmetatable(L, TT_LUA_NUMBER_MT);
	lua_setmetatable(L, -2);
}

/* the double value of a number or a box, for arithmetic */
static double
arith_operand(lua_State *L, int idx)
{
	TTLuaNumber *box = tt_lua_tonumberbox(L, idx);

	if (box)
		return strtod(box->text, NULL);
	if (lua_type(L, idx) == LUA_TNUMBER)
		return lua_tonumber(L, idx);
	return luaL_error(L, "attempt to perform arithmetic on a %s value",
					  luaL_typename(L, idx));
}

#define BOX_ARITH(fname, expr) \
static int fname(lua_State *L) \
{ \
	double a = arith_operand(L, 1); \
	double b = arith_operand(L, 2); \
	lua_pushnumber(L, (expr)); \
	return 1; \
}

BOX_ARITH(box_add, a + b)
BOX_ARITH(box_sub, a - b)
BOX_ARITH(box_mul, a * b)
BOX_ARITH(box_div, a / b)
BOX_ARITH(box_mod, a - floor(a / b) * b)
BOX_ARITH(box_pow, pow(a, b))

static int
box_unm(lua_State *L)
{
	lua_pushnumber(L, -arith_operand(L, 1));
	return 1;
}

static int
box_tostring(lua_State *L)
{
	TTLuaNumber *box = tt_lua_tonumberbox(L, 1);

	lua_pushlstring(L, box->text, box->len);
	return 1;
}

static int
box_concat(lua_State *L)
{
	int			i;

	for (i = 1; i <= 2; i++)
	{
		TTLuaNumber *box = tt_lua_tonumberbox(L, i);

		if (box)
			lua_pushlstring(L, box->text, box->len);
		else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER)
			lua_pushvalue(L, i);
		else
			return luaL_error(L, "attempt to concatenate a %s value",
							  luaL_typename(L, i));
	}
	lua_concat(L, 2);
	return 1;
}

static int
box_eq(lua_State *L)
{
	TTLuaNumber *a = tt_lua_tonumberbox(L, 1);
	TTLuaNumber *b = tt_lua_tonumberbox(L, 2);

	lua_pushboolean(L, a && b &&
					(strcmp(a->text, b->text) == 0 ||
					 strtod(a->text, NULL) == strtod(b->text, NULL)));
	return 1;
}

static int
box_lt(lua_State *L)
{
	lua_pushboolean(L, arith_operand(L, 1) < arith_operand(L, 2));
	return 1;
}

static int
box_le(lua_State *L)
{
	lua_pushboolean(L, arith_operand(L, 1) <= arith_operand(L, 2));
	return 1;
}

static const luaL_Reg box_methods[] = {
	{"__add", box_add},
	{"__sub", box_sub},
	{"__mul", box_mul},
	{"__div", box_div},
	{"__mod", box_mod},
	{"__pow", box_pow},
	{"__unm", box_unm},
	{"__tostring", box_tostring},
	{"__concat", box_concat},
	{"__eq", box_eq},
	{"__lt", box_lt},
	{"__le", box_le},
	{NULL, NULL}
};

/*
 * __newindex and __index of lazy rows and objects, in Lua so that LuaJIT
 * compiles them into the script's own trace:
 * - `row.x = v` and `obj.key = nil` on the current call's row or one of
 *   its nested objects flag the field through an FFI call to
 *   fast_newindex (no Lua API, no C frame, never raises) and store a
 *   non-nil value with rawset, as lazy_newindex does;
 * - reading a field that holds an object (`row.doc`) makes its lazy
 *   object here: fast_object makes the state and names it by its number,
 *   the table is made, registered, pinned (cur[2], when the call pins its
 *   objects) and stored in the parent, as push_lazy_object does.
 * Anything else (a key that is no string, another kind of field, a row
 * with a copy from an earlier call, a state these do not know) goes to
 * lazy_newindex or lazy_index, which answer as before, errors included.
 * The functions the closures hold are the base library's, taken before
 * the sandbox exists; the script cannot reach the closures (the
 * metatable is protected, and the sandbox has no debug library).
 */
static const char fast_meta_chunk[] =
"local reg, cur, fast, slow, rawset, type, object, slow_index, setmetatable, ffi = ...\n"
"local out = ffi.new('double[1]')\n"
"local newindex = function(t, k, v)\n"
"  if type(k) == 'string' then\n"
"    local code\n"
"    if t == cur[1] then code = -1 else code = reg[t] end\n"
"    if type(code) == 'number' then\n"
"      local r = fast(code, k, #k, v == nil)\n"
"      if r == 0 then rawset(t, k, v) return end\n"
"      if r == 1 then return end\n"
"    end\n"
"  end\n"
"  return slow(t, k, v)\n"
"end\n"
"local index = function(t, k)\n"
"  if type(k) == 'string' then\n"
"    local code\n"
"    if t == cur[1] then code = -1 else code = reg[t] end\n"
"    if type(code) == 'number' then\n"
"      local r = object(code, k, #k, out)\n"
"      if r > 0 then\n"
"        local c = out[0]\n"
"        local objs = cur[2]\n"
"        local obj\n"
"        if r >= 4 then\n"
"          obj = objs[c % 65536 + 1]\n"
"          r = r - 4\n"
"        else\n"
"          obj = setmetatable({}, cur[3])\n"
"          objs[c % 65536 + 1] = obj\n"
"        end\n"
"        reg[obj] = c\n"
"        if r == 1 then rawset(t, k, obj) end\n"
"        return obj\n"
"      elseif r == 0 then\n"
"        return cur[2][out[0] % 65536 + 1]\n"
"      end\n"
"    end\n"
"  end\n"
"  local v = slow_index(t, k)\n"
"  return v\n"
"end\n"
"return newindex, index\n";

/* Pushes ffi.cast(signature, fn): a C function compiled code can call. */
static void
push_ffi_function(lua_State *L, int ffi_idx, const char *signature, void *fn)
{
	lua_getfield(L, ffi_idx, "cast");
	lua_pushstring(L, signature);
	lua_pushlightuserdata(L, fn);
	lua_call(L, 2, 1);
}

/*
 * ffi_idx: the FFI library's table.  Runs on the trusted side of the
 * state's setup (before the sandbox is built).
 */
void
tt_lua_convert_init(lua_State *L, int ffi_idx)
{
	luaL_newmetatable(L, TT_LUA_NUMBER_MT);
	luaL_register(L, NULL, box_methods);
	lua_pushliteral(L, "talaria.number");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	luaL_newmetatable(L, TT_LUA_ARRAY_MT);
	lua_pushliteral(L, "talaria.array");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	/* the row registry: weak keys, so a row's entry goes with the row */
	lua_pushlightuserdata(L, LAZY_KEY);
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
	/* the current row's table */
	lua_pushlightuserdata(L, LAZY_CUR_KEY);
	lua_createtable(L, 1, 0);
	lua_rawset(L, LUA_REGISTRYINDEX);

	/*
	 * lazy rows (below); the sandbox's getmetatable answers nil for them.
	 * The current row's table holds it as [3], for the nested objects
	 * made in Lua.
	 */
	luaL_newmetatable(L, TT_LUA_ROW_MT);
	lua_pushlightuserdata(L, LAZY_CUR_KEY);
	lua_rawget(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, 3);
	lua_pop(L, 1);
	if (luaL_loadbuffer(L, fast_meta_chunk, sizeof(fast_meta_chunk) - 1,
						"=talaria") != 0)
		lua_error(L);
	push_row_registry(L);
	lua_pushlightuserdata(L, LAZY_CUR_KEY);
	lua_rawget(L, LUA_REGISTRYINDEX);
	push_ffi_function(L, ffi_idx, "int (*)(double, const char *, size_t, bool)",
					  (void *) fast_newindex);
	lua_pushcfunction(L, lazy_newindex);
	lua_getglobal(L, "rawset");
	lua_getglobal(L, "type");
	push_ffi_function(L, ffi_idx, "int (*)(double, const char *, size_t, double *)",
					  (void *) fast_object);
	lua_pushcfunction(L, lazy_index);
	lua_getglobal(L, "setmetatable");
	lua_pushvalue(L, ffi_idx);
	lua_call(L, 10, 2);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "talaria.row");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* ---------------------------------------------------------------------
 * tree -> Lua
 *
 * A decimal that becomes a plain Lua number is remembered (its double and
 * the tree value it came from) so that, if the script hands the same
 * number back, the result reuses the original text: no formatting, and
 * "3.0" stays "3.0".  A small linear table: rows rarely hold many
 * non-integral numbers, and past its size we simply format.
 * ---------------------------------------------------------------------
 */
#define LUA_MEMO_SIZE 32

typedef struct LuaNumberMemo
{
	double		d;
	const tt_value *from;
} LuaNumberMemo;

static LuaNumberMemo lua_memo[LUA_MEMO_SIZE];
static int	lua_memo_count = 0;
static bool lua_memo_decimals = false;	/* any entry with a source text? */

/*
 * The call whose row is being read: a deferred number of it
 * (tt_numeric_defer) gets its text in its arena when the script reads it.
 */
static tt_call *numeric_call = NULL;

/*
 * Reads v if it is a deferred number (tt_numeric_defer): it becomes an
 * integer, or a decimal with its text.
 */
static inline void
numeric_ready(lua_State *L, const tt_value *v)
{
	if (likely(!tt_numeric_deferred(v)))
		return;
	if (numeric_call == NULL)
		luaL_error(L, "internal error: a number of the row was read after its call");
	/* the tree is the host's input: written in place, as it may be */
	if (!tt_numeric_materialize((tt_value *) v, numeric_call))
		luaL_error(L, "not enough memory for a number of the row");
}

static void
push_numeric(lua_State *L, const tt_value *v)
{
	tt_lua_push_number_text(L, v->u.str.ptr, v->u.str.len);
	if (v->host_tag != 0 && lua_memo_count < LUA_MEMO_SIZE &&
		lua_type(L, -1) == LUA_TNUMBER)
	{
		lua_memo[lua_memo_count].d = lua_tonumber(L, -1);
		lua_memo[lua_memo_count].from = v;
		lua_memo_count++;
		lua_memo_decimals = true;
	}
}

/*
 * Decimals inside tables are also remembered by position: the table and
 * the key (an interned string, so its address) or index they were stored
 * at.  A number read back from the same place with the same value takes
 * its own text even when another number of the row has the same value
 * with another text ({"price": 20.00, "score": 20}: price stays 20.00).
 */
#define POS_MEMO_SIZE 64

typedef struct PosMemo
{
	const void *table;
	const void *key;			/* key string's address, or NULL */
	size_t		index;			/* array index when key is NULL */
	double		d;
	const tt_value *from;
} PosMemo;

static PosMemo pos_memo[POS_MEMO_SIZE];
static int	pos_memo_count = 0;
/* where the value being converted back sits (set just before it) */
static const void *pos_table = NULL;
static const void *pos_key = NULL;
static size_t pos_index = 0;

static inline void
pos_memo_add(const void *table, const void *key, size_t index, double d,
			 const tt_value *from)
{
	if (pos_memo_count < POS_MEMO_SIZE)
	{
		pos_memo[pos_memo_count].table = table;
		pos_memo[pos_memo_count].key = key;
		pos_memo[pos_memo_count].index = index;
		pos_memo[pos_memo_count].d = d;
		pos_memo[pos_memo_count].from = from;
		pos_memo_count++;
	}
}

static const tt_value *
pos_memo_find(double d)
{
	int			i;

	for (i = 0; i < pos_memo_count; i++)
		if (pos_memo[i].table == pos_table && pos_memo[i].key == pos_key &&
			pos_memo[i].index == pos_index && pos_memo[i].d == d)
			return pos_memo[i].from;
	return NULL;
}

/* an integer pushed as a number: remembered so it can veto a decimal */
static void
memo_int(double d)
{
	if (lua_memo_count < LUA_MEMO_SIZE)
	{
		lua_memo[lua_memo_count].d = d;
		lua_memo[lua_memo_count].from = NULL;
		lua_memo_count++;
	}
}

/*
 * The tree value a number came from, if exactly one source text gave this
 * double (20 and 20.00 in the same row are ambiguous: format it afresh).
 */
static const tt_value *
memo_find(double d)
{
	const tt_value *found = NULL;
	bool		seen = false;
	int			i;

	for (i = 0; i < lua_memo_count; i++)
	{
		const tt_value *f = lua_memo[i].from;

		if (lua_memo[i].d != d)
			continue;
		if (seen && (f == NULL || found == NULL || f->u.str.len != found->u.str.len ||
					 memcmp(f->u.str.ptr, found->u.str.ptr, f->u.str.len) != 0))
			return NULL;
		found = f;
		seen = true;
	}
	return found;
}

void
tt_lua_push_value(lua_State *L, const tt_value *v, int depth)
{
	uint32		i;

	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "value nested too deeply");
	numeric_ready(L, v);		/* a deferred number: an integer or a decimal */
	switch (v->type)
	{
		case TT_NULL:
			lua_pushlightuserdata(L, TT_LUA_NULL);
			break;
		case TT_BOOL:
			lua_pushboolean(L, v->u.b);
			break;
		case TT_INT:
			if (v->u.i <= TT_MAX_SAFE_INT && v->u.i >= -TT_MAX_SAFE_INT)
			{
				lua_pushnumber(L, (lua_Number) v->u.i);
				memo_int((double) v->u.i);
			}
			else
			{
				char		buf[32];
				int			n = snprintf(buf, sizeof(buf), INT64_FORMAT, v->u.i);

				tt_lua_push_number_text(L, buf, n);
			}
			break;
		case TT_FLOAT:
			lua_pushnumber(L, v->u.f);
			break;
		case TT_NUMERIC:
			push_numeric(L, v);
			break;
		case TT_STRING:
			lua_pushlstring(L, v->u.str.ptr, v->u.str.len);
			break;
		case TT_OBJECT:
			lua_createtable(L, 0, (int) v->u.obj.count);
			for (i = 0; i < v->u.obj.count; i++)
			{
				const tt_member *m = &v->u.obj.members[i];

				lua_pushlstring(L, m->key.ptr, m->key.len);
				tt_lua_push_value(L, &m->value, depth + 1);
				if (m->value.type == TT_NUMERIC && m->value.host_tag != 0 &&
					lua_type(L, -1) == LUA_TNUMBER)
					pos_memo_add(lua_topointer(L, -3), lua_tostring(L, -2), 0,
								 lua_tonumber(L, -1), &m->value);
				lua_rawset(L, -3);
			}
			break;
		case TT_ARRAY:
			lua_createtable(L, (int) v->u.arr.count, 0);
			for (i = 0; i < v->u.arr.count; i++)
			{
				tt_lua_push_value(L, &v->u.arr.items[i], depth + 1);
				if (v->u.arr.items[i].type == TT_NUMERIC &&
					v->u.arr.items[i].host_tag != 0 && lua_type(L, -1) == LUA_TNUMBER)
					pos_memo_add(lua_topointer(L, -2), NULL, i + 1,
								 lua_tonumber(L, -1), &v->u.arr.items[i]);
				lua_rawseti(L, -2, (int) i + 1);
			}
			luaL_getmetatable(L, TT_LUA_ARRAY_MT);
			lua_setmetatable(L, -2);
			break;
		case TT_TIMESTAMP:
			push_timestamp(L, v);
			break;
		default:
			luaL_error(L, "unknown value type %d", (int) v->type);
	}
}

/* ---------------------------------------------------------------------
 * Timestamps
 *
 * Lua sees a timestamp as the ISO text to_jsonb() gives it, made when the
 * script first reads the field.  The texts made for a row are remembered,
 * so a string the script hands back unchanged becomes the timestamp again
 * without parsing (ingest stores it into a timestamptz column directly).
 * ---------------------------------------------------------------------
 */
#define TS_MEMO_SIZE 16

typedef struct TimestampMemo
{
	const char *text;
	uint32		len;
	int64		ts;
	uint32		kind;			/* TT_TS_*, kept in host_tag */
} TimestampMemo;

static TimestampMemo ts_memo[TS_MEMO_SIZE];
static int	ts_memo_count = 0;

/*
 * The texts json.encode made during the call: a result string that is one
 * of them (Lua interns strings: the same text is the same string) goes
 * into a json/jsonb column as the JSON value it spells.  The strings are
 * kept alive in a registry table of the state (slots 1..JSON_MEMO_SIZE)
 * while their addresses are remembered here.
 */
#define JSON_MEMO_SIZE 16
#define JSON_MEMO_KEY "talaria.json_texts"

static const char *json_memo[JSON_MEMO_SIZE];
static int	json_memo_count = 0;
static lua_State *json_memo_L = NULL;

void
tt_lua_json_text_made(lua_State *L, int idx)
{
	int			i;

	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (json_memo_L != L)
		json_memo_count = 0;
	if (json_memo_count >= JSON_MEMO_SIZE)
		return;
	lua_getfield(L, LUA_REGISTRYINDEX, JSON_MEMO_KEY);
	if (lua_isnil(L, -1))
	{
		lua_pop(L, 1);
		lua_createtable(L, JSON_MEMO_SIZE, 0);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, JSON_MEMO_KEY);
	}
	if (json_memo_count == 0)
		for (i = 1; i <= JSON_MEMO_SIZE; i++)
		{
			lua_pushnil(L);
			lua_rawseti(L, -2, i);
		}
	lua_pushvalue(L, idx);
	lua_rawseti(L, -2, json_memo_count + 1);
	lua_pop(L, 1);
	json_memo[json_memo_count++] = lua_tostring(L, idx);
	json_memo_L = L;
}

static bool
json_memo_has(lua_State *L, const char *s)
{
	int			i;

	if (json_memo_L != L)
		return false;
	for (i = 0; i < json_memo_count; i++)
		if (json_memo[i] == s)
			return true;
	return false;
}

/*
 * Pushes a timestamp's text.  Formatting is PostgreSQL code that may
 * ereport (palloc): it runs under its own PG_TRY, entirely inside this C
 * frame, and a failure becomes a Lua error after the PostgreSQL error state
 * is cleaned up, so no longjmp crosses Lua frames.
 */
static void
push_timestamp(lua_State *L, const tt_value *v)
{
	char	   *volatile text = NULL;
	char		errmsg[256];
	MemoryContext cxt = CurrentMemoryContext;
	size_t		len;

	errmsg[0] = '\0';
	PG_TRY();
	{
		text = tt_timestamp_text(v);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(errmsg, edata->message ? edata->message : "", sizeof(errmsg));
		FreeErrorData(edata);
		text = NULL;
	}
	PG_END_TRY();
	if (text == NULL)
		luaL_error(L, "cannot convert a timestamp to text: %s", errmsg);
	len = strlen(text);
	lua_pushlstring(L, text, len);
	if (ts_memo_count < TS_MEMO_SIZE)
	{
		ts_memo[ts_memo_count].text = text;
		ts_memo[ts_memo_count].len = (uint32) len;
		ts_memo[ts_memo_count].ts = v->u.ts;
		ts_memo[ts_memo_count].kind = v->host_tag;
		ts_memo_count++;
	}
}

static bool
ts_memo_find(const char *s, size_t len, tt_value *dst)
{
	int			i;

	for (i = 0; i < ts_memo_count; i++)
		if (ts_memo[i].len == len && memcmp(ts_memo[i].text, s, len) == 0)
		{
			dst->type = TT_TIMESTAMP;
			dst->u.ts = ts_memo[i].ts;
			dst->host_tag = ts_memo[i].kind;
			return true;
		}
	return false;
}

/* ---------------------------------------------------------------------
 * Lazy rows
 *
 * The row a script gets is a real Lua table, but its fields become Lua
 * values only when the script reads them.  Most transforms touch a few
 * fields of a wide row: pushing every value (interning every string) and
 * reading every value back cost more than the script itself.
 *
 * A lazy row is a table with, in a private weak-keyed table of the state
 * (the "row registry", never reachable from a script), a
 * userdata with a copy of the row's field values (deep for nested ones; the
 * keys are in the shape's key map) and one flag per field, and a shared
 * metatable:
 *	- __index (a key absent from the table): a field not yet flagged is
 *	  converted, stored in the table and flagged;
 *	- __newindex (assignment to an absent key): a field is flagged, and a
 *	  non-nil value stored.
 * A flagged field's value is whatever the table holds (nothing: deleted);
 * an unflagged field still has its row value.  So row.key1 = nil costs a
 * flag, and reading the result back takes the unflagged fields straight
 * from the input tree (same pointers: a source datum is stored as it is)
 * and only the table's own keys from Lua.
 *
 * Everything that looks at a table's raw contents (pairs, next, rawget,
 * rawset, setmetatable, getmetatable, table.foreach, table.maxn,
 * json.encode) first "unlazies" the row: the remaining fields are stored,
 * its registry entry and the metatable removed, and it is a plain table.
 * The sandbox wraps those functions (tt_lua_guard_rows; pairs hands out
 * the wrapped next), so a script cannot tell a lazy row from a plain one,
 * and no private object (a state, a light userdata) is ever inside a
 * table a script can walk.  The copy makes a row
 * valid after its call too (a script may keep it in a global); the input
 * tree is used only during the call that made the row.
 *
 * The current call's row is known by its address (cur_row_ptr) for speed;
 * that is sound only while the row is alive, so push_row pins it in the
 * registry until the next call: a script that drops its row and collects
 * cannot get another table at that address.
 *
 * Rows of one table share their keys: the key -> field map is built once
 * per key set (a "shape", a few kept per state) and set as the userdata's
 * environment.
 * ---------------------------------------------------------------------
 */
#define SHAPE_SLOTS 4
#define SHAPE_MAX_KEYS 2000
#define SHAPE_MAX_BUILDS 16
#define LAZY_MAGIC 0x7a4c6152	/* "RaLz" */

typedef struct LazyRow
{
	uint32		magic;
	uint32		nkeys;
	uint64		serial;			/* the call that made it */
	const tt_value *cur;		/* that call's row (only during that call) */
	tt_value   *values;			/* the copy of the field values, in data */
	uint8	   *flags;			/* per field: the table has the say */
	uint32		raw_keys;		/* keys our metamethods stored in the table */
	uint32		raw_other;		/* of those, keys that name no field */
	uint32	   *held;			/* per field flagged FLAG_HELD: its object's
								 * number in the call (nested_states) */
	bool		nested;			/* a nested object, not a row (below) */
	uint8		order;			/* its keys: 0 unknown, 1 jsonb order, 2 not */
	int			depth;			/* a row 0, its objects 1, theirs 2... */
	tt_member  *members;		/* a nested object's copy (keys and values) */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} LazyRow;

/*
 * A field's flag: 0 the input's value, untouched; FLAG_SET the table has
 * the say (its value is there, or it was deleted); FLAG_HELD (only in the
 * current call's row without a copy) an object read as a lazy object,
 * which the call's objects table holds rather than the row's table, so
 * that reading doc leaves nothing in the row to clear or walk.
 */
#define FLAG_SET 1
#define FLAG_HELD 2

/* the current call; a lazy row with another serial uses its copy */
static uint64 lazy_serial = 0;

typedef struct Shape
{
	uint32		nkeys;
	char	   *keys;			/* (uint32 len, bytes) per key, malloc */
	int			keymap_ref;		/* registry reference: key -> field number */
	uint64		last_used;

	/*
	 * The same map in C, by string address: Lua interns strings, and the
	 * key map keeps its keys alive, so a key string equal to a field name
	 * is that very string.  Open addressing, power-of-two size.
	 */
	const char **kptr;			/* malloc, NULL = free slot */
	int		   *kfield;			/* malloc, field numbers */
	uint32		kmask;

	/*
	 * The source map whose rows have these keys (TTCallPrivate's
	 * keys_serial), or 0: such a row is recognised without reading its
	 * keys.
	 */
	uint64		serial;
} Shape;

/*
 * The row of the current call: its table's address, state and shape, so the
 * metamethods find them without Lua API calls.  No other table with our
 * metatable can be made at that address during the call (only push_row
 * makes lazy rows), and it is forgotten when the next call starts.
 */
static const void *cur_row_ptr = NULL;
static LazyRow *cur_lr = NULL;
static Shape *cur_shape = NULL;

/*
 * Nested objects made during the current call (see "Lazy nested objects"
 * below): their states live in the call's arena and are named in the row
 * registry by a number (the call's serial and an index into this array),
 * never by a pointer, so a use after the call is an error, not a read of
 * freed memory.  The last one used is remembered by address, as the row.
 */
#define NESTED_MAX 65536
#define SPARE_OBJECTS 64
#define NESTED_SERIAL_MASK ((UINT64CONST(1) << 36) - 1)

static LazyRow **nested_states = NULL;	/* malloc, grows (never per row) */
static uint32 nested_cap = 0;
static uint32 nested_count = 0;
static bool nested_pinned = false;	/* kept in the pin table for the fix-up */
static tt_call *lazy_call = NULL;	/* the call whose arena holds them */
static TTLuaShapes *lazy_shapes = NULL;
static const void *cur_obj_ptr = NULL;
static LazyRow *cur_obj_lr = NULL;

struct TTLuaShapes
{
	Shape		slots[SHAPE_SLOTS];
	uint32		builds;
	uint64		clock;
	int			mt_ref;			/* registry reference of the row metatable */

	/*
	 * A row that cannot outlive its call (copy = false) is garbage once
	 * the call returns: its table, if the call left nothing in it, is kept
	 * here and made the next call's row.
	 */
	int			spare_ref;		/* registry reference, 0 = none */
	bool		spare_clean;	/* set by tt_lua_row_done */
	int			pin_ref;		/* registry slot pinning the last row, 0 = none */
	int			objects_ref;	/* registry reference: this call's nested objects
								 * ([i + 1]: nested_states[i]'s table) */
	int			cur_ref;		/* registry reference: the LAZY_CUR_KEY table */
	const void *cur_set;		/* the row last put in it ([1]) */

	/*
	 * Tables of the objects table the last call left empty, lazy and
	 * unreachable (its objects could not outlive it), which fast_object may
	 * hand out again: spare_obj[i] for place i < spare_objs.  Set at the end
	 * of a call that returned (tt_lua_row_done), dropped by one that failed.
	 */
	uint8		spare_obj[SPARE_OBJECTS];
	uint32		spare_objs;
	bool		spare_objs_valid;
	bool		call_pins;		/* this call pins its objects */
};

void
tt_lua_memo_reset(void)
{
	lua_memo_count = 0;
	lua_memo_decimals = false;
	ts_memo_count = 0;
	json_memo_count = 0;
	pos_memo_count = 0;
	pos_table = NULL;
	lazy_serial++;
	numeric_call = NULL;
	cur_row_ptr = NULL;
	cur_lr = NULL;
	cur_shape = NULL;
	nested_count = 0;
	nested_pinned = false;
	lazy_call = NULL;
	lazy_shapes = NULL;
	cur_obj_ptr = NULL;
	cur_obj_lr = NULL;
}

TTLuaShapes *
tt_lua_shapes_create(void)
{
	return calloc(1, sizeof(TTLuaShapes));
}

void
tt_lua_shapes_free(TTLuaShapes *shapes)
{
	int			i;

	if (shapes == NULL)
		return;
	for (i = 0; i < SHAPE_SLOTS; i++)
	{
		free(shapes->slots[i].keys);
		free(shapes->slots[i].kptr);
		free(shapes->slots[i].kfield);
	}
	free(shapes);
}

static bool
shape_matches(const Shape *sh, const tt_value *row)
{
	const char *p = sh->keys;
	uint32		i;

	if (sh->keys == NULL || sh->nkeys != row->u.obj.count)
		return false;
	for (i = 0; i < sh->nkeys; i++)
	{
		const tt_str *k = &row->u.obj.members[i].key;
		uint32		len;

		memcpy(&len, p, sizeof(uint32));
		if (len != k->len || memcmp(p + sizeof(uint32), k->ptr, len) != 0)
			return false;
		p += sizeof(uint32) + len;
	}
	return true;
}

static inline uint32
key_hash(const char *p)
{
	uint64		x = (uint64) (uintptr_t) p;

	return (uint32) ((x >> 3) * UINT64CONST(0x9E3779B97F4A7C15) >> 40);
}

/* Field number of the Lua string kp (its bytes) in shape sh, or -1. */
static inline int
shape_field_str(const Shape *sh, const char *kp)
{
	uint32		h;

	for (h = key_hash(kp) & sh->kmask; sh->kptr[h] != NULL; h = (h + 1) & sh->kmask)
		if (sh->kptr[h] == kp)
			return sh->kfield[h];
	return -1;
}

/* Field number of the key at kidx in shape sh, or -1: no Lua lookups. */
static int
shape_field(lua_State *L, const Shape *sh, int kidx)
{
	if (lua_type(L, kidx) != LUA_TSTRING)
		return -1;
	return shape_field_str(sh, lua_tolstring(L, kidx, NULL));
}

/*
 * Makes slot sh the shape of the row's keys: the key list (to recognise
 * the next rows) and the key map (key -> field number, and field number ->
 * key; lookups by the script's keys only ever use the string side).
 * Memory failures raise a Lua error.
 */
static void
shape_build(lua_State *L, Shape *sh, const tt_value *row)
{
	uint32		n = row->u.obj.count;
	size_t		bytes = 0;
	char	   *keys;
	char	   *p;
	uint32		i;

	for (i = 0; i < n; i++)
		bytes += sizeof(uint32) + row->u.obj.members[i].key.len;
	lua_createtable(L, (int) n, (int) n);
	for (i = 0; i < n; i++)
	{
		const tt_str *k = &row->u.obj.members[i].key;

		lua_pushlstring(L, k->ptr, k->len);
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, (int) i + 1);
		lua_pushinteger(L, (lua_Integer) i + 1);
		lua_rawset(L, -3);
	}
	keys = malloc(Max(bytes, 1));
	if (keys == NULL)
		luaL_error(L, "not enough memory");
	free(sh->kptr);
	free(sh->kfield);
	for (sh->kmask = 15; sh->kmask < 2 * n; sh->kmask = sh->kmask * 2 + 1)
		;
	sh->kptr = calloc(sh->kmask + 1, sizeof(const char *));
	sh->kfield = malloc((sh->kmask + 1) * sizeof(int));
	if (sh->kptr == NULL || sh->kfield == NULL)
	{
		free(keys);
		free(sh->kptr);
		free(sh->kfield);
		sh->kptr = NULL;
		sh->kfield = NULL;
		if (sh->keys)
		{
			free(sh->keys);
			sh->keys = NULL;
			luaL_unref(L, LUA_REGISTRYINDEX, sh->keymap_ref);
		}
		luaL_error(L, "not enough memory");
	}
	for (i = 0; i < n; i++)
	{
		const char *kp;
		uint32		h;

		lua_rawgeti(L, -1, (int) i + 1);
		kp = lua_tolstring(L, -1, NULL);
		lua_pop(L, 1);
		for (h = key_hash(kp) & sh->kmask; sh->kptr[h] != NULL; h = (h + 1) & sh->kmask)
			;
		sh->kptr[h] = kp;
		sh->kfield[h] = (int) i;
	}
	for (p = keys, i = 0; i < n; i++)
	{
		uint32		len = row->u.obj.members[i].key.len;

		memcpy(p, &len, sizeof(uint32));
		memcpy(p + sizeof(uint32), row->u.obj.members[i].key.ptr, len);
		p += sizeof(uint32) + len;
	}
	if (sh->keys)
	{
		free(sh->keys);
		luaL_unref(L, LUA_REGISTRYINDEX, sh->keymap_ref);
	}
	sh->keymap_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	sh->keys = keys;
	sh->nkeys = n;
}

/* The shape of an object row, building it if need be; NULL: none. */
static Shape *
shape_for(lua_State *L, TTLuaShapes *shapes, const tt_value *row,
		  uint64 serial)
{
	Shape	   *sh = NULL;
	Shape	   *oldest;
	uint32		i;

	if (shapes == NULL || row->type != TT_OBJECT || row->u.obj.count == 0 ||
		row->u.obj.count > SHAPE_MAX_KEYS)
		return NULL;
	/* a source row whose keys a shape was made or matched for */
	for (i = 0; serial != 0 && i < SHAPE_SLOTS; i++)
	{
		if (shapes->slots[i].serial == serial && shapes->slots[i].keys != NULL)
		{
			sh = &shapes->slots[i];
			sh->last_used = ++shapes->clock;
			return sh;
		}
	}
	oldest = &shapes->slots[0];
	for (i = 0; i < SHAPE_SLOTS && sh == NULL; i++)
	{
		if (shape_matches(&shapes->slots[i], row))
			sh = &shapes->slots[i];
		else if (shapes->slots[i].last_used < oldest->last_used)
			oldest = &shapes->slots[i];
	}
	if (sh == NULL)
	{
		/* a state that keeps meeting new key sets stops building shapes */
		if (shapes->builds >= SHAPE_MAX_BUILDS)
			return NULL;
		shapes->builds++;
		sh = oldest;
		sh->serial = 0;
		shape_build(L, sh, row);
	}
	/* its keys are the row's: any other slot of this serial had them too */
	if (serial != 0)
		sh->serial = serial;
	sh->last_used = ++shapes->clock;
	return sh;
}

/* Sizes of a tree's deep copy: node arrays (aligned) and string bytes. */
static void
tree_measure(lua_State *L, const tt_value *v, size_t *nodes, size_t *strs,
			 int depth)
{
	uint32		i;

	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "value nested too deeply");
	numeric_ready(L, v);
	switch (v->type)
	{
		case TT_NUMERIC:
		case TT_STRING:
			*strs += v->u.str.len;
			break;
		case TT_OBJECT:
			*nodes += MAXALIGN(v->u.obj.count * sizeof(tt_member));
			for (i = 0; i < v->u.obj.count; i++)
			{
				*strs += v->u.obj.members[i].key.len;
				tree_measure(L, &v->u.obj.members[i].value, nodes, strs, depth + 1);
			}
			break;
		case TT_ARRAY:
			*nodes += MAXALIGN(v->u.arr.count * sizeof(tt_value));
			for (i = 0; i < v->u.arr.count; i++)
				tree_measure(L, &v->u.arr.items[i], nodes, strs, depth + 1);
			break;
		default:
			break;
	}
}

typedef struct TreeCopy
{
	char	   *nodes;
	char	   *strs;
} TreeCopy;

static inline const char *
copy_bytes(TreeCopy *tc, const char *s, uint32 len)
{
	char	   *dst = tc->strs;

	if (len > 0)
		memcpy(dst, s, len);
	tc->strs += len;
	return dst;
}

/* Deep copy into the regions tree_measure sized. */
static void
tree_copy(const tt_value *src, tt_value *dst, TreeCopy *tc)
{
	uint32		i;

	*dst = *src;
	switch (src->type)
	{
		case TT_STRING:
		case TT_NUMERIC:
			dst->u.str.ptr = copy_bytes(tc, src->u.str.ptr, src->u.str.len);
			/* a numeric's tag names its source's slot: not the copy's */
			dst->host_tag = 0;
			break;
		case TT_INT:
			dst->host_tag = 0;	/* likewise (value.c, memo_int_source) */
			break;
		case TT_OBJECT:
			dst->u.obj.members = (tt_member *) tc->nodes;
			dst->u.obj.cap = src->u.obj.count;
			tc->nodes += MAXALIGN(src->u.obj.count * sizeof(tt_member));
			for (i = 0; i < src->u.obj.count; i++)
			{
				const tt_member *sm = &src->u.obj.members[i];
				tt_member  *dm = &dst->u.obj.members[i];

				dm->key.ptr = copy_bytes(tc, sm->key.ptr, sm->key.len);
				dm->key.len = sm->key.len;
				tree_copy(&sm->value, &dm->value, tc);
			}
			break;
		case TT_ARRAY:
			dst->u.arr.items = (tt_value *) tc->nodes;
			dst->u.arr.cap = src->u.arr.count;
			tc->nodes += MAXALIGN(src->u.arr.count * sizeof(tt_value));
			for (i = 0; i < src->u.arr.count; i++)
				tree_copy(&src->u.arr.items[i], &dst->u.arr.items[i], tc);
			break;
		default:
			break;
	}
}

/*
 * The state of this call's nested object whose registry entry (a number)
 * is at the top of the stack: the table at idx (absolute).  An entry of
 * another call is an error (its state is gone).
 */
static LazyRow *
nested_state(lua_State *L, int idx)
{
	uint64		code = (uint64) lua_tonumber(L, -1);
	uint32		i = (uint32) (code % NESTED_MAX);

	if (code / NESTED_MAX != (lazy_serial & NESTED_SERIAL_MASK) ||
		i >= nested_count)
		luaL_error(L, "internal error: a nested object was used after its call");
	cur_obj_ptr = lua_topointer(L, idx);
	cur_obj_lr = nested_states[i];
	return cur_obj_lr;
}

/*
 * If the table at idx is a lazy row, pushes its registry entry (a userdata,
 * or for a row that cannot outlive its call LAZY_LOCAL) and returns its
 * state (for LAZY_LOCAL the current call's, in the call's arena: any other
 * table is an error); otherwise pushes nothing and returns NULL.
 */
static LazyRow *
lazy_state(lua_State *L, int idx)
{
	LazyRow    *lr;
	int			type;

	if (lua_type(L, idx) != LUA_TTABLE)
		return NULL;
	/* every lazy row has a metatable: most tables are done here */
	if (!lua_getmetatable(L, idx))
		return NULL;
	lua_pop(L, 1);
	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;
	push_row_registry(L);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	lua_remove(L, -2);
	type = lua_type(L, -1);
	lr = (LazyRow *) lua_touserdata(L, -1);
	if (type == LUA_TNUMBER)
		return nested_state(L, idx);
	if (type == LUA_TLIGHTUSERDATA && lr == LAZY_LOCAL)
	{
		/* a row without a copy: only the current call's (pinned) row */
		if (cur_lr == NULL || cur_lr->values != NULL ||
			lua_topointer(L, idx) != cur_row_ptr)
			luaL_error(L, "internal error: a row without a copy was used after its call");
		return cur_lr;
	}
	if (lr == NULL || type != LUA_TUSERDATA || lr->magic != LAZY_MAGIC)
	{
		lua_pop(L, 1);
		return NULL;
	}
	return lr;
}

/*
 * Field number (0-based) of the key at kidx in the lazy row whose state is
 * at the top of the stack, or -1.  Leaves the stack as it was.
 */
static int
lazy_field(lua_State *L, LazyRow *lr, int kidx)
{
	int			field = -1;

	if (lua_type(L, kidx) != LUA_TSTRING)
		return -1;
	lua_getfenv(L, -1);
	lua_pushvalue(L, kidx);
	lua_rawget(L, -2);
	if (lua_type(L, -1) == LUA_TNUMBER)
	{
		lua_Integer n = lua_tointeger(L, -1);

		if (n >= 1 && n <= (lua_Integer) lr->nkeys)
			field = (int) n - 1;
	}
	lua_pop(L, 2);
	return field;
}

/* Is lr the call's own: its values are the input tree's? */
static inline bool
lazy_live(const LazyRow *lr)
{
	return lr->serial == lazy_serial && lr->cur != NULL;
}

/* The members of a nested object: the input tree's, or its copy's. */
static inline const tt_member *
nested_members(const LazyRow *lr)
{
	return lr->members != NULL ? lr->members : lr->cur->u.obj.members;
}

/*
 * Where a key string (Lua interns them: its address) was last found in a
 * nested object: a hint, checked against the object's key before use.
 */
#define NESTED_HINTS 64

typedef struct NestedKeyHint
{
	const char *key;
	uint32		index;
} NestedKeyHint;

static NestedKeyHint nested_hints[NESTED_HINTS];

/* jsonb's key order: shorter first, then bytewise (keys are short) */
static inline int
key_order(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t		i;

	if (alen != blen)
		return alen < blen ? -1 : 1;
	for (i = 0; i < alen; i++)
		if (a[i] != b[i])
			return (unsigned char) a[i] < (unsigned char) b[i] ? -1 : 1;
	return 0;
}

/*
 * Member number (0-based) of the Lua string k (its bytes, len long: Lua
 * interns strings, so its address names it) in a nested object, or -1.
 * Objects read from jsonb have their keys in jsonb's order: a binary
 * search; a miss is only believed once the order has been checked (once
 * per object), else the keys are searched one by one.
 */
static int	nested_field_search(LazyRow *lr, const char *k, size_t len,
								NestedKeyHint *hint);

static inline int
nested_field_str(LazyRow *lr, const char *k, size_t len)
{
	const tt_member *m = nested_members(lr);
	NestedKeyHint *hint;

	/* objects of one kind, row after row, have their keys in one place */
	hint = &nested_hints[key_hash(k) & (NESTED_HINTS - 1)];
	if (likely(hint->key == k && hint->index < lr->nkeys &&
			   key_order(m[hint->index].key.ptr, m[hint->index].key.len, k, len) == 0))
		return (int) hint->index;
	return nested_field_search(lr, k, len, hint);
}

static int
nested_field_search(LazyRow *lr, const char *k, size_t len, NestedKeyHint *hint)
{
	const tt_member *m = nested_members(lr);
	uint32		lo = 0;
	uint32		hi = lr->nkeys;
	uint32		i;

	while (lo < hi)
	{
		uint32		mid = lo + (hi - lo) / 2;
		int			c = key_order(m[mid].key.ptr, m[mid].key.len, k, len);

		if (c == 0)
		{
			hint->key = k;
			hint->index = mid;
			return (int) mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lr->order == 0)
	{
		lr->order = 1;
		for (i = 1; i < lr->nkeys && lr->order == 1; i++)
			if (key_order(m[i - 1].key.ptr, m[i - 1].key.len,
						  m[i].key.ptr, m[i].key.len) >= 0)
				lr->order = 2;
	}
	if (lr->order == 1)
		return -1;
	for (i = 0; i < lr->nkeys; i++)
		if (m[i].key.len == len && memcmp(m[i].key.ptr, k, len) == 0)
			return (int) i;
	return -1;
}

/* Member number (0-based) of the key at kidx in a nested object, or -1. */
static int
nested_field(lua_State *L, LazyRow *lr, int kidx)
{
	const char *k;
	size_t		len;

	if (lua_type(L, kidx) != LUA_TSTRING)
		return -1;
	k = lua_tolstring(L, kidx, &len);
	return nested_field_str(lr, k, len);
}

/*
 * Pushes field i of a lazy row or nested object: the call's own tree value
 * while it runs (an object in it lazy too), else the copy's (eager).
 */
static void
lazy_push_field(lua_State *L, LazyRow *lr, int i)
{
	const tt_value *v;

	if (lazy_live(lr))
		v = &lr->cur->u.obj.members[i].value;
	else if (lr->nested)
		v = &lr->members[i].value;
	else if (lr->values != NULL)
		v = &lr->values[i];
	else
	{
		/* tt_lua_row_stays_local said this cannot happen */
		luaL_error(L, "internal error: a row without a copy was used after its call");
		return;
	}
	if (v->type == TT_OBJECT && lazy_live(lr))
		push_lazy_object(L, v, lr->depth + 1);
	else
		tt_lua_push_value(L, v, lr->depth + 1);
}

/*
 * A decimal of a nested object just pushed (at the top) for the key at
 * kidx of the table at tidx: remembered by position, as for a table.
 */
static inline void
nested_pos_memo(lua_State *L, LazyRow *lr, int i, int tidx, int kidx)
{
	const tt_value *v;

	if (!lr->nested || !lazy_live(lr))
		return;
	v = &lr->cur->u.obj.members[i].value;
	if (v->type == TT_NUMERIC && v->host_tag != 0 && lua_type(L, -1) == LUA_TNUMBER)
		pos_memo_add(lua_topointer(L, tidx), lua_tostring(L, kidx), 0,
					 lua_tonumber(L, -1), v);
}

/* Pushes the object the row's field i holds (FLAG_HELD). */
static void
push_held(lua_State *L, const LazyRow *lr, int i)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->objects_ref);
	lua_rawgeti(L, -1, (int) lr->held[i] + 1);
	lua_remove(L, -2);
}

/* __index(row, key) */
static int
lazy_index(lua_State *L)
{
	LazyRow    *lr;
	int			i;
	const void *p = lua_topointer(L, 1);

	if (cur_row_ptr != NULL && p == cur_row_ptr)
	{
		lr = cur_lr;
		i = shape_field(L, cur_shape, 2);
	}
	else if (cur_obj_ptr != NULL && p == cur_obj_ptr)
	{
		lr = cur_obj_lr;
		i = nested_field(L, lr, 2);
	}
	else
	{
		lr = lazy_state(L, 1);
		if (lr == NULL)
			return 0;
		i = lr->nested ? nested_field(L, lr, 2) : lazy_field(L, lr, 2);
	}
	if (i >= 0 && lr->flags[i] == FLAG_HELD)
	{
		push_held(L, lr, i);
		return 1;
	}
	if (i < 0 || lr->flags[i])
		return 0;
	lazy_push_field(L, lr, i);
	lr->flags[i] = FLAG_SET;
	lr->raw_keys++;
	nested_pos_memo(L, lr, i, 1, 2);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 1);
	return 1;
}

/* __newindex(row, key, value) */
static int
lazy_newindex(lua_State *L)
{
	LazyRow    *lr = NULL;
	bool		is_field = false;
	const void *p = lua_topointer(L, 1);

	if (cur_row_ptr != NULL && p == cur_row_ptr)
	{
		int			i = shape_field(L, cur_shape, 2);

		lr = cur_lr;
		if (i >= 0)
		{
			lr->flags[i] = FLAG_SET;
			is_field = true;
		}
	}
	else if (cur_obj_ptr != NULL && p == cur_obj_ptr)
	{
		int			i = nested_field(L, cur_obj_lr, 2);

		lr = cur_obj_lr;
		if (i >= 0)
		{
			lr->flags[i] = FLAG_SET;
			is_field = true;
		}
	}
	else if ((lr = lazy_state(L, 1)) != NULL)
	{
		int			i = lr->nested ? nested_field(L, lr, 2) : lazy_field(L, lr, 2);

		if (i >= 0)
		{
			lr->flags[i] = FLAG_SET;
			is_field = true;
		}
		lua_pop(L, 1);
	}
	/* deleting a field is its flag alone; anything else goes in the table */
	if (!is_field || lua_type(L, 3) != LUA_TNIL)
	{
		if (lr != NULL && lua_type(L, 3) != LUA_TNIL)
		{
			lr->raw_keys++;
			if (!is_field)
				lr->raw_other++;
		}
		lua_settop(L, 3);
		lua_rawset(L, 1);
	}
	return 0;
}

/*
 * The work of __newindex(t, k, v) for a string key k (the Lua string's
 * bytes, len long) on the current call's row (code -1) or on the nested
 * object whose registry entry is code: flags the field k names and counts
 * a non-nil value.  Returns 1 when that is all there is to do (a field
 * deleted), 0 when v must also be stored in the table (rawset), -1 when
 * the table is not the current call's (lazy_newindex then decides).
 * Called from compiled Lua through the FFI: no Lua API, no palloc, no
 * error may be raised here.
 */
/* A nested object's state, in the call's arena (NULL: exhausted). */
static LazyRow *
nested_state_new(const tt_value *obj, int depth)
{
	size_t		head = MAXALIGN(offsetof(LazyRow, data));
	uint32		n = obj->u.obj.count;
	LazyRow    *lr = tt_arena_alloc(lazy_call, head + n);

	if (lr == NULL)
		return NULL;
	memset(lr, 0, head);
	lr->magic = LAZY_MAGIC;
	lr->nkeys = n;
	lr->serial = lazy_serial;
	lr->cur = obj;
	lr->flags = (uint8 *) lr + head;
	memset(lr->flags, 0, n);
	lr->nested = true;
	lr->depth = depth;
	return lr;
}

/*
 * The state named by code (-1: the current call's row; else a nested
 * object's registry number) and the field number of the Lua string k in
 * it (-1: none); NULL if code names no state of this call.  No Lua API.
 */
static inline LazyRow *
fast_state(double code, const char *k, size_t len, int *field)
{
	LazyRow    *lr;

	if (code < 0)
	{
		if (cur_row_ptr == NULL || cur_lr == NULL)
			return NULL;
		lr = cur_lr;
		*field = shape_field_str(cur_shape, k);
	}
	else
	{
		uint64		c = (uint64) code;
		uint32		n = (uint32) (c % NESTED_MAX);

		if (c / NESTED_MAX != (lazy_serial & NESTED_SERIAL_MASK) ||
			n >= nested_count)
			return NULL;
		lr = nested_states[n];
		*field = nested_field_str(lr, k, len);
	}
	return lr;
}

static int
fast_newindex(double code, const char *k, size_t len, bool isnil)
{
	int			i;
	LazyRow    *lr = fast_state(code, k, len, &i);

	if (lr == NULL)
		return -1;
	if (i >= 0)
		lr->flags[i] = FLAG_SET;
	if (!isnil)
	{
		lr->raw_keys++;
		if (i < 0)
			lr->raw_other++;
		return 0;
	}
	return i >= 0 ? 1 : 0;
}

/*
 * The work of __index(t, k) for a string key k (the Lua string's bytes,
 * len long) of the current call's row (code -1) or of the nested object
 * whose registry entry is code, when k names a field not read yet that
 * holds an object: makes the object's lazy state (as push_lazy_object),
 * flags the field and puts the number that names the state in *out; the
 * caller makes the table (or takes the last call's, FAST_REUSE), registers
 * it, pins it in the objects table and stores it in t (unless FAST_HELD:
 * the row holds it).  For a field the row holds already, FAST_EXISTING
 * and the object's number.  Returns -1 for anything else, and whenever it
 * would have to grow an array or raise: lazy_index then does what it
 * always did.
 * Called from compiled Lua through the FFI: no Lua API, no palloc, no
 * error may be raised here.
 */
StaticAssertDecl(NESTED_MAX == 65536, "fast_meta_chunk assumes NESTED_MAX is 65536");

/* fast_object's answers (fast_meta_chunk knows them too) */
#define FAST_EXISTING 0			/* the object the row holds: number in *out */
#define FAST_NEW 1				/* a new object, number in *out: store it in t */
#define FAST_HELD 2				/* ... held by the row instead */
#define FAST_REUSE 4			/* ... in the objects table's table at its place */

static int
fast_object(double code, const char *k, size_t len, double *out)
{
	bool		holds;
	bool		reuse;
	LazyRow    *lr;
	LazyRow    *obj;
	const tt_value *v;
	uint32		n;
	int			i;

	lr = fast_state(code, k, len, &i);
	if (lr == NULL || i < 0 || !lazy_live(lr))
		return -1;
	holds = (lr == cur_lr && lr->values == NULL && !lr->nested);
	if (lr->flags[i] == FLAG_HELD && holds && lr->held != NULL)
	{
		*out = (double) ((lazy_serial & NESTED_SERIAL_MASK) * NESTED_MAX + lr->held[i]);
		return FAST_EXISTING;
	}
	if (lr->flags[i])
		return -1;
	v = &lr->cur->u.obj.members[i].value;
	n = v->u.obj.count;
	if (v->type != TT_OBJECT || n == 0 || !tt_lua_lazy_objects ||
		lazy_call == NULL || lazy_shapes == NULL ||
		nested_count >= nested_cap || nested_count >= NESTED_MAX ||
		lr->depth + 1 > TT_LUA_MAX_DEPTH)
		return -1;
	if (holds && lr->held == NULL &&
		(lr->held = tt_arena_alloc(lazy_call, lr->nkeys * sizeof(uint32))) == NULL)
		return -1;
	if ((obj = nested_state_new(v, lr->depth + 1)) == NULL)
		return -1;
	if (holds)
	{
		lr->flags[i] = FLAG_HELD;
		lr->held[i] = nested_count;
	}
	else
	{
		lr->flags[i] = FLAG_SET;
		lr->raw_keys++;
	}
	/* the same place's table of the last call, if it was left clean */
	reuse = nested_count < lazy_shapes->spare_objs &&
		lazy_shapes->spare_obj[nested_count];
	if (reuse)
		lazy_shapes->spare_obj[nested_count] = 0;
	nested_states[nested_count] = obj;
	*out = (double) ((lazy_serial & NESTED_SERIAL_MASK) * NESTED_MAX + nested_count++);
	return FAST_NEW | (holds ? FAST_HELD : 0) | (reuse ? FAST_REUSE : 0);
}

/* Makes the lazy row at idx (if it is one) a plain table. */
void
tt_lua_unlazy(lua_State *L, int idx)
{
	LazyRow    *lr;
	uint32		i;

	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;
	lr = lazy_state(L, idx);
	if (lr == NULL)
		return;
	luaL_checkstack(L, 6, "row");
	if (lr->nested || lr->values == NULL)
		lua_pushnil(L);			/* keys from the object or the call's row */
	else
		lua_getfenv(L, -1);		/* the key map */
	for (i = 0; i < lr->nkeys; i++)
	{
		if (lr->flags[i] == FLAG_SET)
			continue;
		if (lr->nested || lr->values == NULL)
		{
			const tt_str *k = lr->nested ? &nested_members(lr)[i].key :
				&lr->cur->u.obj.members[i].key;

			lua_pushlstring(L, k->ptr, k->len);
		}
		else
			lua_rawgeti(L, -1, (int) i + 1);
		if (lr->flags[i] == FLAG_HELD)
		{
			/* the object read already: into the table at last */
			push_held(L, lr, (int) i);
			lua_rawset(L, idx);
			lr->flags[i] = FLAG_SET;
			continue;
		}
		lazy_push_field(L, lr, (int) i);
		nested_pos_memo(L, lr, (int) i, idx, -2);
		lua_rawset(L, idx);
		lr->flags[i] = FLAG_SET;
	}
	/* its table is no longer an empty lazy one (never handed out again) */
	lr->raw_keys++;
	lua_pop(L, 2);
	if (lr == cur_lr)
	{
		/* a plain table now: the shortcuts must not take it for the row */
		cur_row_ptr = NULL;
		cur_lr = NULL;
		cur_shape = NULL;
	}
	if (lr == cur_obj_lr)
	{
		cur_obj_ptr = NULL;
		cur_obj_lr = NULL;
	}
	push_row_registry(L);
	lua_pushvalue(L, idx);
	lua_pushnil(L);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_pushnil(L);
	lua_setmetatable(L, idx);
}

/* ---------------------------------------------------------------------
 * Lazy nested objects
 *
 * An object inside the row (doc in a (ts, doc jsonb) row, and objects
 * inside it, at any depth) is lazy too when the script reads it during the
 * call: a table with the row metatable whose state (the input tree's
 * object, a flag per member) is in the call's arena.  Reading a member
 * converts that member alone; assigning flags it; reading the result back
 * (lazy_to_value) takes the unflagged members straight from the input
 * tree: same strings, same decimal texts, nothing converted.  Everything
 * else is as for a lazy row: pairs, next, json.encode and the rest unlazy
 * it first, so no script can tell it from a table.
 *
 * Unlike the row, a nested object can reach a global, an upvalue or a
 * table that outlives the call through any expression (G = row.doc), and
 * its state (in the arena, pointing at the input) dies with the call.
 * So, unless tt_lua_objects_stay_local proved that the script cannot keep
 * one, every nested object of the call is kept in a pin table, and
 * tt_lua_objects_done gives each one still lazy at the end of the call a
 * copy of its members (a userdata, as a row's copy) before the input goes
 * away: from then on it reads from the copy, converting eagerly.
 * ---------------------------------------------------------------------
 */
static void
push_lazy_object(lua_State *L, const tt_value *obj, int depth)
{
	uint32		n = obj->u.obj.count;
	LazyRow    *lr;

	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "value nested too deeply");
	if (n == 0 || !tt_lua_lazy_objects || lazy_call == NULL ||
		lazy_shapes == NULL || nested_count >= NESTED_MAX)
	{
		tt_lua_push_value(L, obj, depth);
		return;
	}
	luaL_checkstack(L, 6, "row");
	if (nested_count == nested_cap)
	{
		uint32		cap = Max(64, nested_cap * 2);
		LazyRow   **grown = realloc(nested_states, cap * sizeof(LazyRow *));

		if (grown == NULL)
			luaL_error(L, "not enough memory");
		nested_states = grown;
		nested_cap = cap;
	}
	if ((lr = nested_state_new(obj, depth)) == NULL)
		luaL_error(L, "not enough memory for the row");

	lua_createtable(L, 0, 0);
	push_row_registry(L);
	lua_pushvalue(L, -2);
	lua_pushnumber(L, (lua_Number) ((lazy_serial & NESTED_SERIAL_MASK) * NESTED_MAX +
									nested_count));
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->mt_ref);
	lua_setmetatable(L, -2);
	/* the objects table names it by its number (and pins it for the fix-up) */
	lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->objects_ref);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, (int) nested_count + 1);
	lua_pop(L, 1);
	nested_states[nested_count++] = lr;
	cur_obj_ptr = lua_topointer(L, -1);
	cur_obj_lr = lr;
}

/*
 * Gives the nested object at the top of the stack (state lr, of this
 * call) a copy of its members that outlives the call: keys, and the values
 * of the members it has not flagged (a flagged member's value is in the
 * table).  The copy becomes its registry entry.
 */
static void
nested_copy(lua_State *L, LazyRow *lr)
{
	const tt_member *src = lr->cur->u.obj.members;
	uint32		n = lr->nkeys;
	size_t		head = MAXALIGN(offsetof(LazyRow, data)) + MAXALIGN(n);
	size_t		nodes = MAXALIGN(n * sizeof(tt_member));
	size_t		strs = 0;
	LazyRow    *cp;
	tt_member  *members;
	TreeCopy	tc;
	uint32		i;

	for (i = 0; i < n; i++)
	{
		strs += src[i].key.len;
		if (!lr->flags[i])
			tree_measure(L, &src[i].value, &nodes, &strs, lr->depth + 1);
	}
	cp = (LazyRow *) lua_newuserdata(L, head + nodes + strs);
	memcpy(cp, lr, offsetof(LazyRow, data));
	cp->cur = NULL;
	cp->flags = (uint8 *) cp + MAXALIGN(offsetof(LazyRow, data));
	memcpy(cp->flags, lr->flags, n);
	members = (tt_member *) ((char *) cp + head);
	tc.nodes = (char *) members + MAXALIGN(n * sizeof(tt_member));
	tc.strs = (char *) cp + head + nodes;
	for (i = 0; i < n; i++)
	{
		members[i].key.ptr = copy_bytes(&tc, src[i].key.ptr, src[i].key.len);
		members[i].key.len = src[i].key.len;
		if (lr->flags[i])
		{
			memset(&members[i].value, 0, sizeof(tt_value));
			members[i].value.type = TT_NULL;
		}
		else
			tree_copy(&src[i].value, &members[i].value, &tc);
	}
	cp->members = members;
	/* [table, copy] */
	push_row_registry(L);
	lua_pushvalue(L, -3);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 2);
}

/* Is there a fix-up to do (tt_lua_objects_done) for this call? */
bool
tt_lua_objects_pending(void)
{
	return nested_pinned && nested_count > 0;
}

/*
 * The end of a call (after its result was read, or after it failed):
 * every nested object still lazy gets its copy, and the pin table is
 * emptied.  Lua errors (memory) possible.
 */
void
tt_lua_objects_done(lua_State *L)
{
	uint32		i;

	if (!tt_lua_objects_pending())
		return;
	luaL_checkstack(L, 6, "row");
	lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->objects_ref);
	for (i = 0; i < nested_count; i++)
	{
		LazyRow    *lr;

		lua_rawgeti(L, -1, (int) i + 1);
		lr = lazy_state(L, -1);
		if (lr != NULL)
		{
			lua_pop(L, 1);
			if (lr->nested && lazy_live(lr))
				nested_copy(L, lr);
		}
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_rawseti(L, -2, (int) i + 1);
	}
	lua_pop(L, 1);
	/* no table names an arena state any more */
	nested_count = 0;
	nested_pinned = false;
	cur_obj_ptr = NULL;
	cur_obj_lr = NULL;
}

static int
sb_unlazy(lua_State *L)
{
	tt_lua_unlazy(L, 1);
	return 0;
}

/* is the table at 1 a lazy row?  (nothing is dereferenced) */
static int
sb_is_row(lua_State *L)
{
	push_row_registry(L);
	lua_pushvalue(L, 1);
	lua_rawget(L, -2);
	lua_pushboolean(L, !lua_isnil(L, -1));
	return 1;
}

/*
 * Wraps the sandbox's functions that see a table's raw contents so that
 * they unlazy a row first.  env is the sandbox environment (absolute).
 */
static const char guard_chunk[] =
"local is_row, unlazy, env = ...\n"
"local type, error, rawget, rawset, next = env.type, env.error, env.rawget, env.rawset, env.next\n"
"local getmetatable, setmetatable = env.getmetatable, env.setmetatable\n"
"local foreach, maxn = env.table.foreach, env.table.maxn\n"
"-- a lazy row's metatable says this (and so may a script's own)\n"
"local ROW = 'talaria.row'\n"
"-- argument errors name the script's line (level 3: guard, wrapper, caller)\n"
"local function guard(t, name)\n"
"  if type(t) ~= 'table' then\n"
"    error(\"bad argument #1 to '\" .. name .. \"' (table expected, got \" .. type(t) .. \")\", 3)\n"
"  end\n"
"  if getmetatable(t) == ROW then unlazy(t) end\n"
"end\n"
"local function gnext(t, k) guard(t, 'next') local a, b = next(t, k) return a, b end\n"
"env.next = gnext\n"
"-- the builtin next never reaches a script: it would walk a lazy row raw\n"
"env.pairs = function(t) guard(t, 'pairs') return gnext, t, nil end\n"
"env.rawget = function(t, k) guard(t, 'rawget') local v = rawget(t, k) return v end\n"
"env.rawset = function(t, k, v) guard(t, 'rawset') local r = rawset(t, k, v) return r end\n"
"env.setmetatable = function(t, m)\n"
"  guard(t, 'setmetatable')\n"
"  if m ~= nil and type(m) ~= 'table' then\n"
"    error(\"bad argument #2 to 'setmetatable' (nil or table expected)\", 2)\n"
"  end\n"
"  local r = setmetatable(t, m) return r end\n"
"env.getmetatable = function(t)\n"
"  local m = getmetatable(t)\n"
"  if m == ROW and type(t) == 'table' and is_row(t) then return nil end\n"
"  return m end\n"
"if foreach then env.table.foreach = function(t, f) guard(t, 'foreach') local r = foreach(t, f) return r end end\n"
"if maxn then env.table.maxn = function(t) guard(t, 'maxn') local r = maxn(t) return r end end\n";

void
tt_lua_guard_rows(lua_State *L, int env)
{
	if (luaL_loadbuffer(L, guard_chunk, sizeof(guard_chunk) - 1, "=talaria") != 0)
		lua_error(L);
	lua_pushcfunction(L, sb_is_row);
	lua_pushcfunction(L, sb_unlazy);
	lua_pushvalue(L, env);
	lua_call(L, 3, 0);
}

/*
 * Sizes the copy of a row's field values: for a flat row (no object or
 * array values, the usual table row) one pass over the fields; otherwise
 * tree_measure.  Returns whether the row is flat.
 */
static bool
row_measure(lua_State *L, const tt_value *row, size_t *nodes, size_t *strs)
{
	uint32		n = row->u.obj.count;
	size_t		bytes = 0;
	uint32		i;

	*nodes = MAXALIGN(n * sizeof(tt_value));
	for (i = 0; i < n; i++)
	{
		const tt_value *v = &row->u.obj.members[i].value;

		numeric_ready(L, v);
		if (v->type == TT_STRING || v->type == TT_NUMERIC)
			bytes += v->u.str.len;
		else if (v->type == TT_OBJECT || v->type == TT_ARRAY)
		{
			*strs = 0;
			for (i = 0; i < n; i++)
				tree_measure(L, &row->u.obj.members[i].value, nodes, strs, 1);
			return false;
		}
	}
	*strs = bytes;
	return true;
}

/*
 * Pushes the row: a lazy row for an object with a shape, else a table.
 * copy = false when the script cannot keep the row past the call
 * (tt_lua_row_stays_local): its fields are then read from the input tree
 * only, and the state (just the flags) lives in the call's arena: the row
 * registry says LAZY_LOCAL, and no Lua object is made but the table itself
 * (which the next call reuses when it can).
 */
void
tt_lua_push_row(lua_State *L, TTLuaShapes *shapes, tt_call *call, bool copy,
				bool pin_objects)
{
	const tt_value *row = call->row;
	Shape	   *sh = shape_for(L, shapes, row,
							   ((TTCallPrivate *) call->host_private)->keys_serial);
	size_t		nodes;
	size_t		strs;
	size_t		head;
	bool		flat;
	bool		reuse;
	LazyRow    *lr;
	TreeCopy	tc;
	uint32		n;
	uint32		i;

	numeric_call = call;
	if (sh == NULL)
	{
		tt_lua_push_value(L, row, 0);
		return;
	}
	luaL_checkstack(L, 6, "row");
	if (shapes->mt_ref == 0)
	{
		luaL_getmetatable(L, TT_LUA_ROW_MT);
		shapes->mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	/* nested objects (push_lazy_object) live in this call's arena */
	if (shapes->objects_ref == 0)
	{
		lua_newtable(L);
		shapes->objects_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lazy_call = call;
	lazy_shapes = shapes;
	nested_pinned = pin_objects;
	shapes->call_pins = pin_objects;
	if (!shapes->spare_objs_valid)
		shapes->spare_objs = 0;
	shapes->spare_objs_valid = false;
	n = row->u.obj.count;
	if (copy)
		flat = row_measure(L, row, &nodes, &strs);
	else
	{
		flat = true;
		nodes = strs = 0;
	}
	head = MAXALIGN(offsetof(LazyRow, data)) + MAXALIGN(n);

	reuse = !copy && shapes->spare_ref != 0 && shapes->spare_clean;
	if (reuse)
		lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->spare_ref);
	else
	{
		lua_createtable(L, 0, 2);
		if (shapes->spare_ref != 0)
		{
			luaL_unref(L, LUA_REGISTRYINDEX, shapes->spare_ref);
			shapes->spare_ref = 0;
		}
		if (!copy)
		{
			lua_pushvalue(L, -1);
			shapes->spare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		}
	}
	shapes->spare_clean = false;
	if (copy)
		lr = (LazyRow *) lua_newuserdata(L, head + nodes + strs);
	else if ((lr = tt_arena_alloc(call, head)) == NULL)
		luaL_error(L, "not enough memory for the row");
	lr->magic = LAZY_MAGIC;
	lr->raw_keys = 0;
	lr->raw_other = 0;
	lr->held = NULL;
	lr->nested = false;
	lr->depth = 0;
	lr->members = NULL;
	lr->nkeys = n;
	lr->serial = lazy_serial;
	lr->cur = row;
	lr->flags = (uint8 *) lr + MAXALIGN(offsetof(LazyRow, data));
	memset(lr->flags, 0, n);
	lr->values = copy ? (tt_value *) ((char *) lr + head) : NULL;
	tc.nodes = (char *) lr + head + MAXALIGN(n * sizeof(tt_value));
	tc.strs = (char *) lr + head + nodes;
	for (i = 0; copy && i < n; i++)
	{
		const tt_value *v = &row->u.obj.members[i].value;
		tt_value   *dst = &lr->values[i];

		if (!flat)
			tree_copy(v, dst, &tc);
		else
		{
			*dst = *v;
			if (v->type == TT_STRING || v->type == TT_NUMERIC)
			{
				dst->u.str.ptr = copy_bytes(&tc, v->u.str.ptr, v->u.str.len);
				dst->host_tag = 0;
			}
			else if (v->type == TT_INT)
				dst->host_tag = 0;
		}
	}
	if (copy)
	{
		lua_rawgeti(L, LUA_REGISTRYINDEX, sh->keymap_ref);
		lua_setfenv(L, -2);
	}
	else if (!reuse)
		lua_pushlightuserdata(L, LAZY_LOCAL);
	/*
	 * [row, state]: the row registry maps the row to its state; a reused
	 * table's entry (LAZY_LOCAL) is in place already.
	 */
	if (!reuse)
	{
		push_row_registry(L);
		lua_pushvalue(L, -3);
		lua_pushvalue(L, -3);
		lua_rawset(L, -3);
		lua_pop(L, 2);
	}
	if (!reuse)
	{
		lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->mt_ref);
		lua_setmetatable(L, -2);
	}
	/*
	 * Pinned until the next row: its address names it meanwhile.  A row
	 * without a copy is pinned already, as the spare.
	 */
	if (copy)
	{
		if (shapes->pin_ref == 0)
		{
			lua_pushboolean(L, 1);
			shapes->pin_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		}
		lua_pushvalue(L, -1);
		lua_rawseti(L, LUA_REGISTRYINDEX, shapes->pin_ref);
	}
	cur_row_ptr = lua_topointer(L, -1);
	cur_lr = lr;
	cur_shape = sh;
	/*
	 * The Lua metamethods' view (fast_meta_chunk): [1] the current row (it
	 * holds it: no other table can take its address), [2] the objects
	 * table.
	 */
	if (cur_row_ptr != shapes->cur_set)
	{
		if (shapes->cur_ref == 0)
		{
			lua_pushlightuserdata(L, LAZY_CUR_KEY);
			lua_rawget(L, LUA_REGISTRYINDEX);
			shapes->cur_ref = luaL_ref(L, LUA_REGISTRYINDEX);
			lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->cur_ref);
			lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->objects_ref);
			lua_rawseti(L, -2, 2);
			lua_pop(L, 1);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->cur_ref);
		lua_pushvalue(L, -2);
		lua_rawseti(L, -2, 1);
		lua_pop(L, 1);
		shapes->cur_set = cur_row_ptr;
	}
}

/*
 * After a call's result was read back: the row's table may serve the next
 * call if it is still lazy (so it is the table made for the call, which
 * the script cannot have kept) and holds nothing, or only a few keys,
 * which are removed.
 */
#define ROW_CLEAR_MAX 8

void
tt_lua_row_done(lua_State *L, TTLuaShapes *shapes)
{
	if (shapes != NULL && shapes == lazy_shapes)
	{
		uint32		i;

		/* the call returned: which of its objects' tables are clean */
		shapes->spare_objs = 0;
		if (!shapes->call_pins)
		{
			for (i = 0; i < nested_count && i < SPARE_OBJECTS; i++)
				shapes->spare_obj[i] = (nested_states[i]->raw_keys == 0);
			shapes->spare_objs = i;
		}
		shapes->spare_objs_valid = true;
	}
	if (shapes == NULL || shapes->spare_ref == 0 || cur_lr == NULL ||
		cur_row_ptr == NULL || cur_lr->values != NULL)
		return;
	/*
	 * A few keys our metamethods stored (fields read, or set): nobody can
	 * see the table any more, so empty it rather than make a new one.
	 */
	if (cur_lr->raw_keys > 0 && cur_lr->raw_keys <= ROW_CLEAR_MAX)
	{
		luaL_checkstack(L, 4, "row");
		lua_rawgeti(L, LUA_REGISTRYINDEX, shapes->spare_ref);
		if (lua_topointer(L, -1) != cur_row_ptr)
		{
			lua_pop(L, 1);
			return;
		}
		if (cur_lr->raw_other == 0 && cur_shape != NULL)
		{
			uint32		i;

			/* only fields: their keys, from the shape's key map */
			lua_rawgeti(L, LUA_REGISTRYINDEX, cur_shape->keymap_ref);
			for (i = 0; i < cur_lr->nkeys; i++)
			{
				if (cur_lr->flags[i] != FLAG_SET)
					continue;
				lua_rawgeti(L, -1, (int) i + 1);
				lua_pushvalue(L, -1);
				lua_rawget(L, -4);
				if (lua_type(L, -1) == LUA_TNIL)
					lua_pop(L, 2);	/* deleted: not in the table */
				else
				{
					lua_pop(L, 1);
					lua_pushnil(L);
					lua_rawset(L, -4);
				}
			}
			lua_pop(L, 1);
		}
		else
		{
			lua_pushnil(L);
			while (lua_next(L, -2))
			{
				lua_pop(L, 1);
				lua_pushvalue(L, -1);
				lua_pushnil(L);
				lua_rawset(L, -4);
			}
		}
		lua_pop(L, 1);
		cur_lr->raw_keys = 0;
		cur_lr->raw_other = 0;
	}
	if (cur_lr->raw_keys == 0)
		shapes->spare_clean = true;
}

/* ---------------------------------------------------------------------
 * Lua -> tree
 * ---------------------------------------------------------------------
 */

/*
 * Is the table at idx an array?  Marked arrays always are (n = #t); an
 * unmarked one is when its keys are exactly 1..n with n > 0.
 */
/*
 * An array (a table marked as one: it came from a JSON array) has the
 * elements 1..n, n its largest integer key; a missing element (a hole) is
 * stored as null, so nothing written is lost.  A string key written into
 * it would be: that, a key that is no positive integer, or an array so
 * sparse that its nulls would dwarf its elements, is an error naming it.
 */
static size_t
array_length(lua_State *L, int idx)
{
	size_t		count = 0;
	lua_Number	max = 0;

	lua_pushnil(L);
	while (lua_next(L, idx))
	{
		lua_pop(L, 1);
		count++;
		if (lua_type(L, -1) == LUA_TNUMBER)
		{
			lua_Number	k = lua_tonumber(L, -1);

			if (k == floor(k) && k >= 1)
			{
				if (k > max)
					max = k;
				continue;
			}
			luaL_error(L, "cannot store key %s in an array: its keys are 1, 2, 3...",
					   lua_tostring(L, -1));
		}
		if (lua_type(L, -1) == LUA_TSTRING)
			luaL_error(L, "cannot store key \"%s\" in an array: its keys are 1, 2, 3...",
					   lua_tostring(L, -1));
		luaL_error(L, "cannot store a %s key in an array", luaL_typename(L, -1));
	}
	if (max > (lua_Number) (2 * count + 16))
		luaL_error(L, "cannot store an array with %d elements up to index %.0f: too sparse",
				   (int) count, (double) max);
	return (size_t) max;
}

bool
tt_lua_is_array(lua_State *L, int idx, size_t *n)
{
	size_t		len;
	size_t		count = 0;

	tt_lua_unlazy(L, idx);
	len = lua_objlen(L, idx);
	if (lua_getmetatable(L, idx))
	{
		bool		marked;

		luaL_getmetatable(L, TT_LUA_ARRAY_MT);
		marked = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
		if (marked)
		{
			*n = array_length(L, idx < 0 ? lua_gettop(L) + idx + 1 : idx);
			return true;
		}
	}
	if (len == 0)
		return false;
	/* every key must be one of 1..len */
	lua_pushnil(L);
	while (lua_next(L, idx < 0 ? idx - 1 : idx))
	{
		lua_pop(L, 1);
		count++;
		if (count > len)
		{
			lua_pop(L, 1);
			return false;
		}
	}
	*n = len;
	return count == len;
}

static inline void *
arena_or_error(lua_State *L, void *p)
{
	if (p == NULL)
		luaL_error(L, "not enough memory for the result");
	return p;
}

static void
copy_string(lua_State *L, int idx, tt_call *call, tt_str *dst)
{
	size_t		len;
	const char *s = lua_tolstring(L, idx, &len);
	char	   *copy = arena_or_error(L, tt_arena_alloc(call, len + 1));

	memcpy(copy, s, len + 1);
	dst->ptr = copy;
	dst->len = (uint32) len;
}

/*
 * A value the script left in place: if the row had this key with this very
 * number or string, give back the row's own value (its exact text and type,
 * no copy; a source text column's datum is then stored as it is).  This
 * also resolves what the number memo cannot, such as 20 and 20.00 in one
 * row.
 */
static bool
same_as_input(lua_State *L, tt_call *call, const char *key, size_t klen,
			  tt_value *dst)
{
	const tt_value *in;
	int			type = lua_type(L, -1);

	if (type != LUA_TNUMBER && type != LUA_TSTRING)
		return false;
	/* strings only pay off for rows with source datums to reuse */
	if (type == LUA_TSTRING && call->row->host_tag != TT_ROW_HAS_SOURCE_TEXT)
		return false;
	in = tt_obj_get(call->row, key, klen);
	if (in == NULL)
		return false;
	if (type == LUA_TSTRING)
	{
		size_t		len;
		const char *s;

		if (in->type != TT_STRING)
			return false;
		s = lua_tolstring(L, -1, &len);
		if (len != in->u.str.len || memcmp(s, in->u.str.ptr, len) != 0)
			return false;
		/* a timestamp's text goes back as the timestamp */
		if (ts_memo_count > 0 && ts_memo_find(s, len, dst))
			return true;
	}
	else
	{
		double		d = lua_tonumber(L, -1);
		double		orig;

		if (in->type == TT_NUMERIC)
			numeric_ready(L, in);
		if (in->type == TT_INT)
			orig = (double) in->u.i;
		else if (in->type != TT_NUMERIC ||
				 !tt_decimal_to_double(in->u.str.ptr, in->u.str.len, &orig))
			return false;
		if (orig != d || (in->type == TT_INT &&
						  (in->u.i > TT_MAX_SAFE_INT || in->u.i < -TT_MAX_SAFE_INT)))
			return false;
	}
	*dst = *in;
	return true;
}

/*
 * Adds the string-keyed entries of the table at idx (absolute) to the
 * object dst.
 */
static void
table_members_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst,
					   int depth)
{
	lua_pushnil(L);
	while (lua_next(L, idx))
	{
		size_t		klen;
		const char *key;
		char	   *kcopy;
		tt_value   *slot;

		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "cannot convert a table with a %s key to JSON (object keys must be strings)",
					   luaL_typename(L, -2));
		key = lua_tolstring(L, -2, &klen);
		kcopy = arena_or_error(L, tt_arena_alloc(call, klen + 1));
		memcpy(kcopy, key, klen + 1);
		slot = arena_or_error(L, tt_obj_put_nocopy(call, dst, kcopy, klen));
		if (depth > 0 || !same_as_input(L, call, kcopy, klen, slot))
		{
			pos_table = lua_topointer(L, idx);
			pos_key = key;
			pos_index = 0;
			tt_lua_to_value(L, -1, call, slot, depth + 1);
		}
		lua_pop(L, 1);
	}
}

static void lazy_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst,
						  int depth, LazyRow *lr);
static bool nested_keeps_any(const LazyRow *lr);

/*
 * The row's fields that hold the objects read from them (FLAG_HELD): each
 * object converted, under the input's key.
 */
static void
held_to_value(lua_State *L, tt_call *call, tt_value *dst, int depth,
			  const LazyRow *lr)
{
	const tt_member *in = lr->cur->u.obj.members;
	uint32		i;

	for (i = 0; i < lr->nkeys; i++)
	{
		tt_value   *slot;
		LazyRow    *obj;

		if (lr->flags[i] != FLAG_HELD)
			continue;
		if (!tt_obj_reserve(call, dst, dst->u.obj.count + 1))
			luaL_error(L, "not enough memory for the result");
		dst->u.obj.members[dst->u.obj.count].key = in[i].key;
		slot = &dst->u.obj.members[dst->u.obj.count].value;
		dst->u.obj.count++;
		push_held(L, lr, (int) i);
		obj = nested_states[lr->held[i]];
		pos_table = NULL;
		/* the very object (the objects table holds it at its number) */
		if (lazy_live(obj) && nested_keeps_any(obj))
		{
			memset(slot, 0, sizeof(tt_value));
			if (depth + 1 > TT_LUA_MAX_DEPTH)
				luaL_error(L, "result nested too deeply (cycle?)");
			lazy_to_value(L, lua_gettop(L), call, slot, depth + 1, obj);
		}
		else
			tt_lua_to_value(L, -1, call, slot, depth + 1);
		lua_pop(L, 1);
	}
}

/*
 * table_members_to_value for the current call's row (without a copy) when
 * everything in its table is a field (our metamethods stored only fields:
 * raw_other is 0): each flagged field is looked up by its key, from the
 * shape's key map, instead of walking the table; a field not there was
 * deleted.  The result's key is the input's own.
 */
static void
fields_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst,
				int depth, const LazyRow *lr)
{
	const tt_member *in = lr->cur->u.obj.members;
	uint32		i;

	lua_rawgeti(L, LUA_REGISTRYINDEX, cur_shape->keymap_ref);
	for (i = 0; i < lr->nkeys; i++)
	{
		tt_value   *slot;
		const char *key;

		if (lr->flags[i] != FLAG_SET)
			continue;
		lua_rawgeti(L, -1, (int) i + 1);
		key = lua_tostring(L, -1);
		lua_pushvalue(L, -1);
		lua_rawget(L, idx);
		if (lua_type(L, -1) != LUA_TNIL)
		{
			if (!tt_obj_reserve(call, dst, dst->u.obj.count + 1))
				luaL_error(L, "not enough memory for the result");
			dst->u.obj.members[dst->u.obj.count].key = in[i].key;
			slot = &dst->u.obj.members[dst->u.obj.count].value;
			memset(slot, 0, sizeof(tt_value));
			dst->u.obj.count++;
			if (depth > 0 || !same_as_input(L, call, in[i].key.ptr, in[i].key.len, slot))
			{
				pos_table = lua_topointer(L, idx);
				pos_key = key;
				pos_index = 0;
				tt_lua_to_value(L, -1, call, slot, depth + 1);
			}
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
}

/*
 * Does a nested object still have a member of its own (unflagged)?  If
 * not, it is whatever its table holds: read back as any table (it may have
 * become an array).
 */
static bool
nested_keeps_any(const LazyRow *lr)
{
	uint32		i;

	for (i = 0; i < lr->nkeys; i++)
		if (!lr->flags[i])
			return true;
	return false;
}

/*
 * The state of the table at idx if it is one of this call's nested
 * objects (the objects table holds each at its number, so no other table
 * can have its address), looked for among the first few; else NULL.
 * Cheaper than the row registry (lazy_state).
 */
#define CALL_OBJECTS_SCAN 8

static LazyRow *
call_object(lua_State *L, int idx)
{
	const void *p;
	LazyRow    *found = NULL;
	uint32		i;

	if (nested_count == 0 || nested_count > CALL_OBJECTS_SCAN ||
		lazy_shapes == NULL || lazy_shapes->objects_ref == 0)
		return NULL;
	p = lua_topointer(L, idx);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->objects_ref);
	for (i = 0; i < nested_count && found == NULL; i++)
	{
		lua_rawgeti(L, -1, (int) i + 1);
		if (lua_topointer(L, -1) == p)
			found = nested_states[i];
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return found;
}

/*
 * Reads back a lazy row made by this call: the fields the script never
 * touched are the input tree's own values, the rest is in the table.
 */
/* are the eight flags at p all clear? */
static inline bool
flags_clear8(const uint8 *p)
{
	uint64		w;

	memcpy(&w, p, sizeof(w));
	return w == 0;
}

static void
lazy_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst, int depth,
			  LazyRow *lr)
{
	const tt_value *row = lr->cur;
	uint32		i;
	uint32		nkept;

	/*
	 * A nested object the script did not touch (no member flagged, nothing
	 * in its table, not even a raw write): the input's own value.
	 */
	if (lr->nested && lr->raw_keys == 0)
	{
		for (i = 0; i < lr->nkeys && !lr->flags[i]; i++)
			;
		if (i == lr->nkeys)
		{
			lua_pushnil(L);
			if (lua_next(L, idx) == 0)
			{
				*dst = *row;
				return;
			}
			lua_pop(L, 2);
		}
	}
	dst->type = TT_OBJECT;
	if (!tt_obj_reserve(call, dst, lr->nkeys + 4))
		luaL_error(L, "not enough memory for the result");
	/* the unflagged members, in runs */
	for (i = 0; i < lr->nkeys;)
	{
		uint32		start;

		while (i < lr->nkeys && lr->flags[i])
			i++;
		start = i;
		/* unflagged stretches eight flags at a time */
		while (i + 8 <= lr->nkeys && flags_clear8(&lr->flags[i]))
			i += 8;
		while (i < lr->nkeys && !lr->flags[i])
			i++;
		if (i > start)
		{
			memcpy(&dst->u.obj.members[dst->u.obj.count], &row->u.obj.members[start],
				   (i - start) * sizeof(tt_member));
			dst->u.obj.count += i - start;
		}
	}
	/*
	 * What the table holds: our metamethods' stores, and whatever a
	 * built-in wrote raw (table.insert), which must fail as it would in a
	 * table (an object cannot have the key 1).  A row without a copy holds
	 * only our stores: a built-in would have to be passed the row, which
	 * tt_lua_row_stays_local does not allow.
	 */
	nkept = dst->u.obj.count;
	if (lr->held != NULL)
		held_to_value(L, call, dst, depth, lr);
	if (lr == cur_lr && lr->raw_keys > 0 && lr->raw_other == 0 &&
		lr->values == NULL && cur_shape != NULL)
		fields_to_value(L, idx, call, dst, depth, lr);
	else if (lr->raw_keys > 0 || lr->nested || lr->values != NULL)
		table_members_to_value(L, idx, call, dst, depth);

	/*
	 * A nested object of the input: the writer copies its kept members
	 * from the input's bytes.
	 */
	if (lr->nested)
		tt_value_note_subset(dst, row, lr->flags, nkept);
}

void
tt_lua_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst, int depth)
{
	int			type = lua_type(L, idx);

	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;
	memset(dst, 0, sizeof(tt_value));
	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "result nested too deeply (cycle?)");
	if (type != LUA_TNUMBER)
		pos_table = NULL;		/* the place is only a number's */
	switch (type)
	{
		case LUA_TNIL:
			dst->type = TT_NULL;
			break;
		case LUA_TBOOLEAN:
			dst->type = TT_BOOL;
			dst->u.b = lua_toboolean(L, idx);
			break;
		case LUA_TNUMBER:
			{
				double		d = lua_tonumber(L, idx);
				const tt_value *from;

				if (isnan(d) || isinf(d))
					luaL_error(L, "cannot convert NaN or infinity to JSON");
				if (pos_table != NULL && pos_memo_count > 0 &&
					(from = pos_memo_find(d)) != NULL)
				{
					pos_table = NULL;
					*dst = *from;	/* the text this very place held */
				}
				else if ((pos_table = NULL), lua_memo_decimals &&
						 (from = memo_find(d)) != NULL)
					*dst = *from;	/* the original text and its tag */
				else if (d == floor(d) && fabs(d) <= 9007199254740992.0)
				{
					dst->type = TT_INT;
					dst->u.i = (int64) d;
				}
				else
				{
					dst->type = TT_FLOAT;
					dst->u.f = d;
				}
				break;
			}
		case LUA_TSTRING:
			if (ts_memo_count > 0)
			{
				size_t		len;
				const char *s = lua_tolstring(L, idx, &len);

				if (ts_memo_find(s, len, dst))
					break;
			}
			dst->type = TT_STRING;
			if (json_memo_count > 0 && json_memo_has(L, lua_tostring(L, idx)))
			{
				copy_string(L, idx, call, &dst->u.str);
				dst->host_tag = TT_STR_JSON_TEXT;
				break;
			}
			copy_string(L, idx, call, &dst->u.str);
			break;
		case LUA_TLIGHTUSERDATA:
			if (lua_touserdata(L, idx) != TT_LUA_NULL)
				luaL_error(L, "cannot convert a userdata to JSON");
			dst->type = TT_NULL;
			break;
		case LUA_TUSERDATA:
			{
				TTLuaNumber *box = tt_lua_tonumberbox(L, idx);
				char	   *copy;

				if (box == NULL)
					luaL_error(L, "cannot convert a userdata to JSON");
				copy = arena_or_error(L, tt_arena_alloc(call, box->len + 1));
				memcpy(copy, box->text, box->len + 1);
				dst->type = TT_NUMERIC;
				dst->u.str.ptr = copy;
				dst->u.str.len = (uint32) box->len;
				break;
			}
		case LUA_TTABLE:
			{
				size_t		n;
				LazyRow    *lr;

				luaL_checkstack(L, 4, "result nested too deeply");
				if (cur_row_ptr != NULL && lua_topointer(L, idx) == cur_row_ptr)
				{
					lazy_to_value(L, idx, call, dst, depth, cur_lr);
					break;
				}
				/* the last nested object used: known by address and metatable */
				if (cur_obj_ptr != NULL && lua_topointer(L, idx) == cur_obj_ptr &&
					lua_getmetatable(L, idx))
				{
					bool		ours;

					lua_rawgeti(L, LUA_REGISTRYINDEX, lazy_shapes->mt_ref);
					ours = lua_rawequal(L, -1, -2);
					lua_pop(L, 2);
					if (ours && nested_keeps_any(cur_obj_lr))
					{
						lazy_to_value(L, idx, call, dst, depth, cur_obj_lr);
						break;
					}
				}
				/* a nested object of this call: found in the objects table */
				if ((lr = call_object(L, idx)) != NULL &&
					lazy_live(lr) && nested_keeps_any(lr))
				{
					cur_obj_ptr = lua_topointer(L, idx);
					cur_obj_lr = lr;
					lazy_to_value(L, idx, call, dst, depth, lr);
					break;
				}
				lr = lazy_state(L, idx);
				if (lr != NULL)
				{
					lua_pop(L, 1);
					/* this call's row: read back without Lua; else unlazy */
					if (lazy_live(lr) && (!lr->nested || nested_keeps_any(lr)))
					{
						lazy_to_value(L, idx, call, dst, depth, lr);
						break;
					}
				}
				if (tt_lua_is_array(L, idx, &n))
				{
					size_t		i;

					dst->type = TT_ARRAY;
					if (n > PG_UINT32_MAX || !tt_arr_reserve(call, dst, (uint32) n))
						luaL_error(L, "not enough memory for the result");
					for (i = 1; i <= n; i++)
					{
						lua_rawgeti(L, idx, (int) i);
						pos_table = lua_topointer(L, idx);
						pos_key = NULL;
						pos_index = i;
						tt_lua_to_value(L, -1, call, &dst->u.arr.items[i - 1], depth + 1);
						dst->u.arr.count++;
						lua_pop(L, 1);
					}
				}
				else
				{
					dst->type = TT_OBJECT;
					table_members_to_value(L, idx, call, dst, depth);
				}
				break;
			}
		default:
			luaL_error(L, "cannot convert a %s to JSON", lua_typename(L, type));
	}
}
