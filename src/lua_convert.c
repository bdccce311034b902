/*-------------------------------------------------------------------------
 *
 * lua_convert.c
 *	  The value tree <-> Lua values, losslessly.
 *
 * Runs on the Lua side (inside lua_cpcall): errors are Lua errors, memory
 * comes from the Lua allocator or the per-row arena (which reports
 * exhaustion as NULL, never by ereport).  The one exception is
 * tt_lua_prepare_row, which the engine calls on the PostgreSQL side before
 * entering Lua.  Conventions in lua_common.h.
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

void
tt_lua_convert_init(lua_State *L)
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

void
tt_lua_memo_reset(void)
{
	lua_memo_count = 0;
	lua_memo_decimals = false;
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
				lua_rawset(L, -3);
			}
			break;
		case TT_ARRAY:
			lua_createtable(L, (int) v->u.arr.count, 0);
			for (i = 0; i < v->u.arr.count; i++)
			{
				tt_lua_push_value(L, &v->u.arr.items[i], depth + 1);
				lua_rawseti(L, -2, (int) i + 1);
			}
			luaL_getmetatable(L, TT_LUA_ARRAY_MT);
			lua_setmetatable(L, -2);
			break;
		case TT_TIMESTAMP:
			/* the engine turns timestamps into text before entering Lua */
			luaL_error(L, "unexpected timestamp value");
			break;
		default:
			luaL_error(L, "unknown value type %d", (int) v->type);
	}
}

/* ---------------------------------------------------------------------
 * Timestamps
 *
 * Lua sees a timestamp as the ISO text to_jsonb() gives it.  The texts made
 * for a row are remembered, so a string the script hands back unchanged
 * becomes the timestamp again without parsing (ingest stores it into a
 * timestamptz column directly).
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

/* PostgreSQL side, before entering Lua: top-level timestamps to text. */
void
tt_lua_prepare_row(tt_value *row)
{
	uint32		i;

	ts_memo_count = 0;
	if (row->type != TT_OBJECT)
		return;
	for (i = 0; i < row->u.obj.count; i++)
	{
		tt_value   *v = &row->u.obj.members[i].value;

		if (v->type == TT_TIMESTAMP)
		{
			char	   *s = tt_timestamp_text(v);
			int64		ts = v->u.ts;
			uint32		kind = v->host_tag;

			v->type = TT_STRING;
			v->host_tag = 0;
			v->u.str.ptr = s;
			v->u.str.len = strlen(s);
			if (ts_memo_count < TS_MEMO_SIZE)
			{
				ts_memo[ts_memo_count].text = s;
				ts_memo[ts_memo_count].len = v->u.str.len;
				ts_memo[ts_memo_count].ts = ts;
				ts_memo[ts_memo_count].kind = kind;
				ts_memo_count++;
			}
		}
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
 * Row shapes
 *
 * Rows of one table share their keys.  For a key set seen before we call a
 * small compiled Lua function whose body is a table constructor with those
 * keys as constants ({["id"] = a1, ["city"] = a2, ...}): the keys are
 * interned once, at compile time, and the table comes out of a template
 * with its hash part already laid out, instead of a string interning and a
 * rawset through the C API per key and row.  Only the values are pushed.
 * A few shapes are kept per state; a state that keeps meeting new shapes
 * stops compiling them and uses the generic path.
 * ---------------------------------------------------------------------
 */
#define SHAPE_SLOTS 4
#define SHAPE_MAX_KEYS 120		/* Lua allows 200 locals; stay well below */
#define SHAPE_MAX_BUILDS 16

typedef struct Shape
{
	uint32		nkeys;
	char	   *keys;			/* (uint32 len, bytes) per key, malloc */
	int			builder_ref;	/* registry reference of the constructor */
	uint64		last_used;
} Shape;

struct TTLuaShapes
{
	Shape		slots[SHAPE_SLOTS];
	uint32		builds;
	uint64		clock;
};

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
		free(shapes->slots[i].keys);
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

/* Appends a Lua string literal for any bytes, in decimal escapes. */
static void
add_literal(luaL_Buffer *b, const char *s, uint32 len)
{
	uint32		i;
	char		esc[8];

	luaL_addchar(b, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == ' ' || c == '-' || c == '.')
			luaL_addchar(b, (char) c);
		else
		{
			snprintf(esc, sizeof(esc), "\\%03u", c);
			luaL_addstring(b, esc);
		}
	}
	luaL_addchar(b, '"');
}

/*
 * Compiles the constructor for the row's keys into slot sh; on failure
 * (memory) raises a Lua error like any other push.
 */
static void
shape_build(lua_State *L, Shape *sh, const tt_value *row)
{
	luaL_Buffer b;
	uint32		i;
	size_t		bytes = 0;
	char	   *keys;
	char	   *p;

	luaL_buffinit(L, &b);
	luaL_addstring(&b, "local a1");
	for (i = 2; i <= row->u.obj.count; i++)
	{
		char		name[16];

		snprintf(name, sizeof(name), ", a%u", i);
		luaL_addstring(&b, name);
	}
	luaL_addstring(&b, " = ...\nreturn {");
	for (i = 0; i < row->u.obj.count; i++)
	{
		char		name[16];

		luaL_addchar(&b, '[');
		add_literal(&b, row->u.obj.members[i].key.ptr, row->u.obj.members[i].key.len);
		snprintf(name, sizeof(name), "] = a%u,", i + 1);
		luaL_addstring(&b, name);
		bytes += sizeof(uint32) + row->u.obj.members[i].key.len;
	}
	luaL_addstring(&b, "}\n");
	luaL_pushresult(&b);
	if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=talaria row") != 0)
		lua_error(L);
	lua_remove(L, -2);

	keys = malloc(Max(bytes, 1));
	if (keys == NULL)
		luaL_error(L, "not enough memory");
	for (p = keys, i = 0; i < row->u.obj.count; i++)
	{
		uint32		len = row->u.obj.members[i].key.len;

		memcpy(p, &len, sizeof(uint32));
		memcpy(p + sizeof(uint32), row->u.obj.members[i].key.ptr, len);
		p += sizeof(uint32) + len;
	}
	if (sh->keys)
	{
		free(sh->keys);
		luaL_unref(L, LUA_REGISTRYINDEX, sh->builder_ref);
	}
	sh->builder_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	sh->keys = keys;
	sh->nkeys = row->u.obj.count;
}

/* Pushes the row (a tree object) as a table, through its shape if it can. */
void
tt_lua_push_row(lua_State *L, TTLuaShapes *shapes, const tt_value *row)
{
	Shape	   *sh = NULL;
	Shape	   *oldest;
	uint32		i;

	if (shapes == NULL || row->type != TT_OBJECT || row->u.obj.count == 0 ||
		row->u.obj.count > SHAPE_MAX_KEYS)
	{
		tt_lua_push_value(L, row, 0);
		return;
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
		if (shapes->builds >= SHAPE_MAX_BUILDS)
		{
			tt_lua_push_value(L, row, 0);
			return;
		}
		shapes->builds++;
		sh = oldest;
		shape_build(L, sh, row);
	}
	sh->last_used = ++shapes->clock;

	luaL_checkstack(L, (int) row->u.obj.count + 2, "row too wide");
	lua_rawgeti(L, LUA_REGISTRYINDEX, sh->builder_ref);
	for (i = 0; i < row->u.obj.count; i++)
		tt_lua_push_value(L, &row->u.obj.members[i].value, 1);
	lua_call(L, (int) row->u.obj.count, 1);
}

/* ---------------------------------------------------------------------
 * Lua -> tree
 * ---------------------------------------------------------------------
 */

/*
 * Is the table at idx an array?  Marked arrays always are (n = #t); an
 * unmarked one is when its keys are exactly 1..n with n > 0.
 */
bool
tt_lua_is_array(lua_State *L, int idx, size_t *n)
{
	size_t		len = lua_objlen(L, idx);
	size_t		count = 0;

	if (lua_getmetatable(L, idx))
	{
		bool		marked;

		luaL_getmetatable(L, TT_LUA_ARRAY_MT);
		marked = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
		if (marked)
		{
			*n = len;
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

void
tt_lua_to_value(lua_State *L, int idx, tt_call *call, tt_value *dst, int depth)
{
	int			type = lua_type(L, idx);

	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;
	memset(dst, 0, sizeof(tt_value));
	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "result nested too deeply (cycle?)");
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
				if (lua_memo_decimals && (from = memo_find(d)) != NULL)
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

				luaL_checkstack(L, 4, "result nested too deeply");
				if (tt_lua_is_array(L, idx, &n))
				{
					size_t		i;

					dst->type = TT_ARRAY;
					if (n > PG_UINT32_MAX || !tt_arr_reserve(call, dst, (uint32) n))
						luaL_error(L, "not enough memory for the result");
					for (i = 1; i <= n; i++)
					{
						lua_rawgeti(L, idx, (int) i);
						tt_lua_to_value(L, -1, call, &dst->u.arr.items[i - 1], depth + 1);
						dst->u.arr.count++;
						lua_pop(L, 1);
					}
				}
				else
				{
					dst->type = TT_OBJECT;
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
							tt_lua_to_value(L, -1, call, slot, depth + 1);
						lua_pop(L, 1);
					}
				}
				break;
			}
		default:
			luaL_error(L, "cannot convert a %s to JSON", lua_typename(L, type));
	}
}
