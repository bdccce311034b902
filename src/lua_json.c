/*-------------------------------------------------------------------------
 *
 * lua_json.c
 *	  The "json" module of the Lua sandbox: json.encode, json.decode and
 *	  json.null.
 *
 * Everything here runs on the Lua side (see lua_common.h): it raises Lua
 * errors and never calls anything that can ereport or palloc.
 *
 * Both directions work in Lua's memory only, so that the state's budget
 * (talaria.lua_memory_limit, talaria.backend_memory_limit; memory.c)
 * bounds them: the decoder builds Lua values straight from the text, with
 * no intermediate tree, and the encoder writes into a buffer that comes
 * from the state's allocator.  An input or output too big for the budget
 * fails with Lua's "not enough memory", and nothing is left behind on the
 * C heap.  Both check for interrupts and talaria.transform_timeout every
 * TT_JSON_CHECK_EVERY values, as instrumented loops do: json.encode of a
 * shared structure (t = {t, t} nested 30 times) is a long loop in C.
 *
 * Decoding is strict RFC 8259 JSON, errors name the byte.  Integers that
 * a double holds exactly become numbers; longer ones and decimals keep
 * their text (tt_lua_push_number_text).  Encoding writes what json-c's
 * plain mode wrote before: no spaces, "/" unescaped, control characters
 * as \uXXXX, keys in table order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lua_common.h"
#include "talaria.h"

/* 2^53: integers up to this magnitude are exact as Lua numbers */
#define TT_JSON_MAX_SAFE_INT INT64CONST(9007199254740992)

/*
 * Values between two interrupt checks: the check reads the clock only every
 * 1024th time (tt_lua_check_interrupt), so every 16K values, some ms.
 */
#define TT_JSON_CHECK_EVERY 16

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

#define UNEXPECTED_CHAR "unexpected character"
#define UNEXPECTED_END "unexpected end of data"

/* ---------------------------------------------------------------------
 * Shared helpers (pure C, never raise)
 * ---------------------------------------------------------------------
 */

/*
 * Length of the JSON number (RFC 8259 grammar) at the start of s, or 0 if s
 * does not start with one.  *integral tells whether it has neither fraction
 * nor exponent, *ndigits is the number of digits of its integer part.
 */
static size_t
json_number_prefix(const char *s, size_t len, bool *integral, size_t *ndigits)
{
	size_t		i = 0;
	size_t		start;

	*integral = true;
	*ndigits = 0;
	if (i < len && s[i] == '-')
		i++;
	start = i;
	if (i >= len)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
	{
		while (i < len && IS_DIGIT(s[i]))
			i++;
	}
	else
		return 0;
	*ndigits = i - start;

	if (i < len && s[i] == '.')
	{
		i++;
		if (i >= len || !IS_DIGIT(s[i]))
			return 0;
		while (i < len && IS_DIGIT(s[i]))
			i++;
		*integral = false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !IS_DIGIT(s[i]))
			return 0;
		while (i < len && IS_DIGIT(s[i]))
			i++;
		*integral = false;
	}
	return i;
}

static inline bool
is_number_char(char c)
{
	return IS_DIGIT(c) || c == '-' || c == '+' || c == '.' ||
		c == 'e' || c == 'E';
}

static inline bool
is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) at s, or 0.
 */
static size_t
utf8_sequence_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t		n;
	size_t		i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	}
	if ((c == 0xE0 && s[1] < 0xA0) ||	/* overlong */
		(c == 0xED && s[1] > 0x9F) ||	/* surrogate */
		(c == 0xF0 && s[1] < 0x90) ||	/* overlong */
		(c == 0xF4 && s[1] > 0x8F))	/* above U+10FFFF */
		return 0;
	return n;
}

/*
 * One interrupt check per TT_JSON_CHECK_EVERY values; level names the
 * script's frame for the message (luaL_where: 0 is the running C function).
 */
static inline void
json_tick(lua_State *L, uint32 *ticks, int level)
{
	if (unlikely((++*ticks % TT_JSON_CHECK_EVERY) == 0) &&
		tt_lua_check_interrupt_now() != 0)
		tt_lua_interrupt_error(L, level);
}

/* ---------------------------------------------------------------------
 * json.decode
 *
 * A recursive descent over the text that pushes each value as it is
 * complete.  The Lua stack and the C stack grow with the nesting, which
 * is at most TT_LUA_MAX_DEPTH.
 * ---------------------------------------------------------------------
 */

typedef struct JsonDecode
{
	const char *s;
	size_t		len;
	size_t		pos;
	uint32		ticks;
} JsonDecode;

static void decode_value(lua_State *L, JsonDecode *d, int depth);

static void
decode_error(lua_State *L, const char *desc, size_t pos)
{
	luaL_error(L, "json.decode: %s at byte %d", desc, (int) pos);
}

static inline void
skip_space(JsonDecode *d)
{
	while (d->pos < d->len && is_json_space(d->s[d->pos]))
		d->pos++;
}

/* the next non-space byte, or an error at the end of the text */
static inline char
peek(lua_State *L, JsonDecode *d)
{
	skip_space(d);
	if (d->pos >= d->len)
		decode_error(L, UNEXPECTED_END, d->len);
	return d->s[d->pos];
}

static void
expect_literal(lua_State *L, JsonDecode *d, const char *word)
{
	size_t		n = strlen(word);
	size_t		i;

	for (i = 0; i < n; i++)
	{
		if (d->pos + i >= d->len)
			decode_error(L, UNEXPECTED_END, d->len);
		if (d->s[d->pos + i] != word[i])
			decode_error(L, UNEXPECTED_CHAR, d->pos + i);
	}
	d->pos += n;
	/* "nullx", "true1": a literal is one token */
	if (d->pos < d->len && ((d->s[d->pos] >= 'a' && d->s[d->pos] <= 'z') ||
							(d->s[d->pos] >= 'A' && d->s[d->pos] <= 'Z') ||
							IS_DIGIT(d->s[d->pos])))
		decode_error(L, UNEXPECTED_CHAR, d->pos);
}

/*
 * The 4 hex digits after "\u" at p, or -1 with *bad the first byte that is
 * not one (d->len: the text ended).
 */
static long
hex4(const JsonDecode *d, size_t p, size_t *bad)
{
	long		v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		int			h = p + i < d->len ? tt_hex_digit(d->s[p + i]) : -1;

		if (h < 0)
		{
			*bad = Min(p + i, d->len);
			return -1;
		}
		v = v * 16 + h;
	}
	return v;
}

#define INVALID_ESCAPE "invalid string sequence"


static void
add_utf8(luaL_Buffer *b, unsigned long cp)
{
	if (cp < 0x80)
		luaL_addchar(b, (char) cp);
	else if (cp < 0x800)
	{
		luaL_addchar(b, (char) (0xC0 | (cp >> 6)));
		luaL_addchar(b, (char) (0x80 | (cp & 0x3F)));
	}
	else if (cp < 0x10000)
	{
		luaL_addchar(b, (char) (0xE0 | (cp >> 12)));
		luaL_addchar(b, (char) (0x80 | ((cp >> 6) & 0x3F)));
		luaL_addchar(b, (char) (0x80 | (cp & 0x3F)));
	}
	else
	{
		luaL_addchar(b, (char) (0xF0 | (cp >> 18)));
		luaL_addchar(b, (char) (0x80 | ((cp >> 12) & 0x3F)));
		luaL_addchar(b, (char) (0x80 | ((cp >> 6) & 0x3F)));
		luaL_addchar(b, (char) (0x80 | (cp & 0x3F)));
	}
}

/*
 * Decodes one escape at d->pos (the backslash) into b.  An unpaired
 * surrogate becomes U+FFFD, as json-c made it.  Sets *nul for "\u0000".
 */
static void
decode_escape(lua_State *L, JsonDecode *d, luaL_Buffer *b, bool *nul)
{
	size_t		at = d->pos;
	size_t		bad;
	long		cp;

	if (at + 1 >= d->len)
		decode_error(L, UNEXPECTED_END, d->len);
	d->pos += 2;
	switch (d->s[at + 1])
	{
		case '"':
		case '\\':
		case '/':
			luaL_addchar(b, d->s[at + 1]);
			return;
		case 'b':
			luaL_addchar(b, '\b');
			return;
		case 'f':
			luaL_addchar(b, '\f');
			return;
		case 'n':
			luaL_addchar(b, '\n');
			return;
		case 'r':
			luaL_addchar(b, '\r');
			return;
		case 't':
			luaL_addchar(b, '\t');
			return;
		case 'u':
			break;
		default:
			decode_error(L, INVALID_ESCAPE, at + 1);
	}
	cp = hex4(d, d->pos, &bad);
	if (cp < 0)
		decode_error(L, bad >= d->len ? UNEXPECTED_END : INVALID_ESCAPE, bad);
	d->pos += 4;
	if (cp == 0)
		*nul = true;
	if (cp >= 0xD800 && cp <= 0xDBFF)
	{
		long		lo = -1;

		if (d->pos + 1 < d->len && d->s[d->pos] == '\\' && d->s[d->pos + 1] == 'u')
			lo = hex4(d, d->pos + 2, &bad);
		if (lo >= 0xDC00 && lo <= 0xDFFF)
		{
			d->pos += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		else
			cp = 0xFFFD;
	}
	else if (cp >= 0xDC00 && cp <= 0xDFFF)
		cp = 0xFFFD;
	add_utf8(b, (unsigned long) cp);
}

/* A string at d->pos (the opening quote): pushes it.  *nul: held "\u0000" */
static void
decode_string(lua_State *L, JsonDecode *d, bool *nul)
{
	size_t		start = ++d->pos;
	luaL_Buffer b;
	bool		buffered = false;

	*nul = false;
	for (;;)
	{
		unsigned char c;

		if (d->pos >= d->len)
			decode_error(L, UNEXPECTED_END, d->len);
		c = (unsigned char) d->s[d->pos];
		if (c == '"')
			break;
		if (c == '\\')
		{
			if (!buffered)
			{
				luaL_buffinit(L, &b);
				buffered = true;
			}
			luaL_addlstring(&b, d->s + start, d->pos - start);
			decode_escape(L, d, &b, nul);
			start = d->pos;
		}
		else if (c < 0x20)
			decode_error(L, "invalid control character in string", d->pos);
		else if (c < 0x80)
			d->pos++;
		else
		{
			size_t		n = utf8_sequence_len((const unsigned char *) d->s + d->pos,
											  d->len - d->pos);

			if (n == 0)
				decode_error(L, "invalid UTF-8 in string", d->pos);
			d->pos += n;
		}
	}
	if (buffered)
	{
		luaL_addlstring(&b, d->s + start, d->pos - start);
		luaL_pushresult(&b);
	}
	else
		lua_pushlstring(L, d->s + start, d->pos - start);
	d->pos++;					/* the closing quote */
}

static void
decode_number(lua_State *L, JsonDecode *d)
{
	const char *p = d->s + d->pos;
	size_t		end = d->pos;
	bool		integral;
	size_t		ndigits;
	size_t		n;

	while (end < d->len && is_number_char(d->s[end]))
		end++;
	n = json_number_prefix(p, end - d->pos, &integral, &ndigits);
	if (n == 0 || n != end - d->pos)
	{
		/* where and how json-c said it: "--1", "1.", "1.e5", "-" */
		if (p[0] == '-' && d->pos + 1 < d->len && !IS_DIGIT(p[1]) && p[1] != 'I')
			decode_error(L, "number expected", d->pos + 1);
		if (end >= d->len && d->s[end - 1] != '.')
			decode_error(L, UNEXPECTED_END, d->len);
		decode_error(L, "invalid number", d->pos);
	}
	d->pos = end;
	if (integral && ndigits < 19)
	{
		/* fits int64; a double holds it up to 2^53; "-0" is 0 */
		int64		v = 0;
		size_t		i;

		for (i = (p[0] == '-'); i < n; i++)
			v = v * 10 + (p[i] - '0');
		if (v <= TT_JSON_MAX_SAFE_INT)
		{
			lua_pushnumber(L, (lua_Number) (p[0] == '-' ? -v : v));
			return;
		}
	}
	/* a decimal, or an integer beyond 2^53: exact from its text */
	tt_lua_push_number_text(L, p, n);
}

static void
decode_array(lua_State *L, JsonDecode *d, int depth)
{
	int			i = 0;

	d->pos++;					/* [ */
	lua_newtable(L);
	if (peek(L, d) == ']')
		d->pos++;
	else
		for (;;)
		{
			char		c;

			decode_value(L, d, depth + 1);
			if (i == INT_MAX)
				luaL_error(L, "json.decode: array too long");
			lua_rawseti(L, -2, ++i);
			c = peek(L, d);
			d->pos++;
			if (c == ']')
				break;
			if (c != ',')
				decode_error(L, "array value separator ',' expected", d->pos - 1);
		}
	luaL_getmetatable(L, TT_LUA_ARRAY_MT);
	lua_setmetatable(L, -2);
}

static void
decode_object(lua_State *L, JsonDecode *d, int depth)
{
	d->pos++;					/* { */
	lua_newtable(L);
	if (peek(L, d) == '}')
	{
		d->pos++;
		return;
	}
	for (;;)
	{
		size_t		keypos;
		bool		nul;
		char		c;

		c = peek(L, d);
		if (c != '"')
			decode_error(L, c == '}' ? UNEXPECTED_CHAR : "quoted object property name expected",
						 d->pos);
		keypos = d->pos;
		decode_string(L, d, &nul);
		/* keys reach jsonb and C strings: no NUL in them */
		if (nul)
			decode_error(L, "object key containing \\u0000 not supported", keypos);
		if (peek(L, d) != ':')
			decode_error(L, "object property name separator ':' expected", d->pos);
		d->pos++;
		decode_value(L, d, depth + 1);
		lua_rawset(L, -3);
		c = peek(L, d);
		d->pos++;
		if (c == '}')
			break;
		if (c != ',')
			decode_error(L, "object value separator ',' expected", d->pos - 1);
	}
}

static void
decode_value(lua_State *L, JsonDecode *d, int depth)
{
	char		c = peek(L, d);
	bool		nul;

	json_tick(L, &d->ticks, 1);
	luaL_checkstack(L, 4, "json.decode");
	switch (c)
	{
		case '{':
		case '[':
			if (depth > TT_LUA_MAX_DEPTH)
				decode_error(L, "nesting too deep", d->pos);
			if (c == '{')
				decode_object(L, d, depth);
			else
				decode_array(L, d, depth);
			break;
		case '"':
			decode_string(L, d, &nul);
			break;
		case 't':
			expect_literal(L, d, "true");
			lua_pushboolean(L, 1);
			break;
		case 'f':
			expect_literal(L, d, "false");
			lua_pushboolean(L, 0);
			break;
		case 'n':
			expect_literal(L, d, "null");
			lua_pushlightuserdata(L, TT_LUA_NULL);
			break;
		default:
			if (c == '-' || IS_DIGIT(c))
				decode_number(L, d);
			else
				decode_error(L, c == '\0' ? UNEXPECTED_END : UNEXPECTED_CHAR, d->pos);
	}
}

static int
json_decode_text(lua_State *L)
{
	JsonDecode	d;

	d.s = luaL_checklstring(L, 1, &d.len);
	d.pos = 0;
	d.ticks = 0;
	if (d.len >= (size_t) INT_MAX)
		return luaL_error(L, "json.decode: input too large");
	lua_settop(L, 1);			/* the text stays referenced */
	decode_value(L, &d, 1);
	skip_space(&d);
	if (d.pos < d.len)
		decode_error(L, UNEXPECTED_CHAR, d.pos);
	return 1;
}

/*
 * json.decode(text [, options]): raises on invalid text, as it always did.
 * With options {errors = 'return'} it returns nil and the message instead,
 * the form of Talaria's json module (gopher-json); {errors = 'raise'} is
 * the default.  Cancellation, timeouts and "not enough memory" are raised
 * in both forms.
 */
static int
json_decode(lua_State *L)
{
	bool		return_errors = false;
	int			status;

	luaL_checkstring(L, 1);
	if (!lua_isnoneornil(L, 2))
	{
		const char *mode;

		if (!lua_istable(L, 2))
			return luaL_error(L, "json.decode: options must be a table ({errors = 'return'})");
		lua_getfield(L, 2, "errors");
		mode = lua_isnil(L, -1) ? "raise" : lua_tostring(L, -1);
		if (mode != NULL && strcmp(mode, "return") == 0)
			return_errors = true;
		else if (mode == NULL || strcmp(mode, "raise") != 0)
			return luaL_error(L, "json.decode: option errors must be 'raise' or 'return'");
		lua_pop(L, 1);
	}
	if (!return_errors)
	{
		lua_settop(L, 1);
		return json_decode_text(L);
	}
	lua_pushvalue(L, lua_upvalueindex(1));	/* json_decode_text */
	lua_pushvalue(L, 1);
	status = lua_pcall(L, 1, 1, 0);
	if (status == 0)
		return 1;
	if (status == LUA_ERRMEM || tt_lua_aborting() ||
		!lua_isstring(L, -1))
		return lua_error(L);
	lua_pushnil(L);
	lua_insert(L, -2);
	return 2;
}

/* ---------------------------------------------------------------------
 * json.encode
 *
 * The text is built in a buffer from the state's allocator (so it counts
 * against the state's memory limit and cannot outgrow it); the buffer is
 * owned by the outer frame, which frees it whether the protected inner
 * call returned or raised.
 * ---------------------------------------------------------------------
 */

typedef struct JsonEncode
{
	char	   *buf;			/* from the state's allocator, or NULL */
	size_t		len;
	size_t		cap;
	uint32		ticks;
} JsonEncode;

static void
out_reserve(lua_State *L, JsonEncode *e, size_t n)
{
	void	   *ud;
	lua_Alloc	allocf;
	size_t		cap;
	char	   *p;

	if (e->cap - e->len >= n)
		return;
	if (n > ((size_t) INT_MAX) - e->len)
		luaL_error(L, "json.encode: result too large");
	cap = Max(e->cap, 256);
	while (cap - e->len < n)
		cap *= 2;
	allocf = lua_getallocf(L, &ud);
	p = allocf(ud, e->buf, e->cap, cap);
	if (p == NULL)
		luaL_error(L, "not enough memory");
	e->buf = p;
	e->cap = cap;
}

static inline void
out_add(lua_State *L, JsonEncode *e, const char *s, size_t n)
{
	out_reserve(L, e, n);
	memcpy(e->buf + e->len, s, n);
	e->len += n;
}

static inline void
out_char(lua_State *L, JsonEncode *e, char c)
{
	if (e->cap == e->len)
		out_reserve(L, e, 1);
	e->buf[e->len++] = c;
}

/* A JSON string: quotes, \" \\ \b \f \n \r \t, other controls as \u00xx */
static void
out_string(lua_State *L, JsonEncode *e, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t		start = 0;
	size_t		i;

	out_char(L, e, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[6];
		size_t		n = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		out_add(L, e, s + start, i - start);
		start = i + 1;
		esc[0] = '\\';
		switch (c)
		{
			case '"':
			case '\\':
				esc[1] = (char) c;
				break;
			case '\b':
				esc[1] = 'b';
				break;
			case '\f':
				esc[1] = 'f';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xF];
				n = 6;
		}
		out_add(L, e, esc, n);
	}
	out_add(L, e, s + start, len - start);
	out_char(L, e, '"');
}

static void
out_number_text(lua_State *L, JsonEncode *e, const TTLuaNumber *box)
{
	bool		integral;
	size_t		ndigits;

	if (json_number_prefix(box->text, box->len, &integral, &ndigits) != box->len)
	{
		double		d = strtod(box->text, NULL);

		if (isnan(d) || isinf(d))
			luaL_error(L, "cannot encode NaN or infinity as JSON");
		luaL_error(L, "cannot encode the number \"%s\" as JSON", box->text);
	}
	out_add(L, e, box->text, box->len);
}

static void
out_number(lua_State *L, JsonEncode *e, lua_Number d)
{
	char		buf[64];
	int			n;

	if (isnan(d) || isinf(d))
		luaL_error(L, "cannot encode NaN or infinity as JSON");
	/* integers only where a double holds every one; beyond, shortest text */
	if (fabs(d) <= 9007199254740992.0 && d == (lua_Number) (int64) d)
		n = snprintf(buf, sizeof(buf), INT64_FORMAT, (int64) d);
	else
		n = tt_format_double(d, buf, sizeof(buf));
	out_add(L, e, buf, (size_t) n);
}

/* encode the value at idx (absolute) */
typedef struct JsonKey
{
	const char *s;
	size_t		len;
} JsonKey;

static int
key_cmp(const void *a, const void *b)
{
	const JsonKey *x = (const JsonKey *) a;
	const JsonKey *y = (const JsonKey *) b;
	int			c = memcmp(x->s, y->s, Min(x->len, y->len));

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void encode_value(lua_State *L, JsonEncode *e, int idx, int depth);

/*
 * An object's members in the byte order of their keys, so that the same
 * table gives the same text in every session and call (a table's own
 * order is its hash layout).  The keys stay alive in the table while it
 * is encoded: their texts are borrowed.
 */
static void
encode_object(lua_State *L, JsonEncode *e, int idx, int depth)
{
	size_t		n = 0;
	size_t		i;
	JsonKey    *keys;

	/* count, then borrow the keys into a userdata (counted, collected) */
	lua_pushnil(L);
	while (lua_next(L, idx) != 0)
	{
		n++;
		lua_pop(L, 1);
	}
	keys = (JsonKey *) lua_newuserdata(L, Max(n, 1) * sizeof(JsonKey));
	i = 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0)
	{
		size_t		klen;
		const char *k;

		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "cannot encode a table with a non-string key");
		k = lua_tolstring(L, -2, &klen);
		if (memchr(k, '\0', klen) != NULL)
			luaL_error(L, "cannot encode a table key containing a NUL byte");
		if (i < n)
		{
			keys[i].s = k;
			keys[i].len = klen;
			i++;
		}
		lua_pop(L, 1);
	}
	n = i;
	if (n > 1)
		qsort(keys, n, sizeof(JsonKey), key_cmp);
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			out_char(L, e, ',');
		out_string(L, e, keys[i].s, keys[i].len);
		out_char(L, e, ':');
		lua_pushlstring(L, keys[i].s, keys[i].len);
		lua_rawget(L, idx);
		encode_value(L, e, lua_gettop(L), depth + 1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);				/* the keys */
}

static void
encode_value(lua_State *L, JsonEncode *e, int idx, int depth)
{
	int			type = lua_type(L, idx);

	json_tick(L, &e->ticks, 2);
	switch (type)
	{
		case LUA_TNIL:
			out_add(L, e, "null", 4);
			break;
		case LUA_TBOOLEAN:
			if (lua_toboolean(L, idx))
				out_add(L, e, "true", 4);
			else
				out_add(L, e, "false", 5);
			break;
		case LUA_TNUMBER:
			out_number(L, e, lua_tonumber(L, idx));
			break;
		case LUA_TSTRING:
			{
				size_t		len;
				const char *s = lua_tolstring(L, idx, &len);

				out_string(L, e, s, len);
				break;
			}
		case LUA_TLIGHTUSERDATA:
			if (lua_touserdata(L, idx) != TT_LUA_NULL)
				luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
			out_add(L, e, "null", 4);
			break;
		case LUA_TUSERDATA:
			{
				TTLuaNumber *box = tt_lua_tonumberbox(L, idx);

				if (box == NULL)
					luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
				out_number_text(L, e, box);
				break;
			}
		case LUA_TTABLE:
			{
				size_t		n;

				if (depth > TT_LUA_MAX_DEPTH)
					luaL_error(L, "cannot encode a value nested too deeply (cycle?)");
				luaL_checkstack(L, 6, "json.encode");
				if (tt_lua_is_array(L, idx, &n))
				{
					size_t		i;

					out_char(L, e, '[');
					for (i = 1; i <= n; i++)
					{
						if (i > 1)
							out_char(L, e, ',');
						lua_rawgeti(L, idx, (int) i);
						encode_value(L, e, lua_gettop(L), depth + 1);
						lua_pop(L, 1);
					}
					out_char(L, e, ']');
					break;
				}
				out_char(L, e, '{');
				encode_object(L, e, idx, depth);
				out_char(L, e, '}');
				break;
			}
		default:
			luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
	}
}

/* protected: (ctx, value) -> the JSON text */
static int
json_encode_build(lua_State *L)
{
	JsonEncode *e = (JsonEncode *) lua_touserdata(L, 1);

	encode_value(L, e, 2, 1);
	lua_pushlstring(L, e->buf, e->len);
	tt_lua_json_text_made(L, -1);
	return 1;
}

static int
json_encode(lua_State *L)
{
	JsonEncode	e;
	int			status;
	void	   *ud;
	lua_Alloc	allocf;

	lua_settop(L, 1);
	e.buf = NULL;
	e.len = e.cap = 0;
	e.ticks = 0;
	lua_pushvalue(L, lua_upvalueindex(1));	/* json_encode_build */
	lua_pushlightuserdata(L, &e);
	lua_pushvalue(L, 1);
	status = lua_pcall(L, 2, 1, 0);
	if (e.buf != NULL)
	{
		allocf = lua_getallocf(L, &ud);
		allocf(ud, e.buf, e.cap, 0);
	}
	if (status != 0)
		return lua_error(L);
	return 1;
}

/* ---------------------------------------------------------------------
 * The module
 * ---------------------------------------------------------------------
 */

int
tt_luaopen_json(lua_State *L)
{
	lua_createtable(L, 0, 3);
	/* the protected half is an upvalue: no closure is created per call */
	lua_pushcfunction(L, json_encode_build);
	lua_pushcclosure(L, json_encode, 1);
	lua_setfield(L, -2, "encode");
	lua_pushcfunction(L, json_decode_text);
	lua_pushcclosure(L, json_decode, 1);
	lua_setfield(L, -2, "decode");
	lua_pushlightuserdata(L, TT_LUA_NULL);
	lua_setfield(L, -2, "null");
	return 1;
}
