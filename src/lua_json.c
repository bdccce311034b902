/*-------------------------------------------------------------------------
 *
 * lua_json.c
 *	  The "json" module of the Lua sandbox: json.encode, json.decode and
 *	  json.null, built on json-c.
 *
 * Everything here runs on the Lua side (see lua_common.h): it raises Lua
 * errors and never calls anything that can ereport or palloc.
 *
 * json-c allocates with malloc, and a Lua error (the memory limit can make
 * any allocating Lua API call fail) unwinds straight past our C frames.  So
 * a json-c tree is never held across a call that can raise: the Lua side of
 * the work runs in an inner protected call whose context struct owns the
 * json-c root; the caller frees the root when that call returns and then
 * re-raises its error, if any.
 *
 * Decoding is strict RFC 8259 JSON.  json-c's strict mode still accepts a
 * few things JSON does not (NaN, Infinity, "1.", raw control characters in
 * strings, ill-formed UTF-8) and silently saturates integers beyond
 * int64/uint64 to the limits, so the input is also checked by a small
 * lexical scan once json-c has accepted it.  Integers of TT_JSON_BIG_DIGITS
 * digits or more are kept exact: the scan rewrites each of them into a
 * string holding a marker byte (which well-formed UTF-8 cannot contain)
 * followed by the digits, the text is parsed again, and such strings come
 * back as numbers from their text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lua_common.h"
#include "talaria.h"

/* integers with this many digits may not fit int64: decode them as text */
#define TT_JSON_BIG_DIGITS 19

/* never part of UTF-8, so never in a string scan_json accepted */
#define TT_JSON_BIG_MARK ((char) 0xFF)

/* 2^53: integers up to this magnitude are exact as Lua numbers */
#define TT_JSON_MAX_SAFE_INT INT64CONST(9007199254740992)

#define TT_JSON_ENCODE_FLAGS \
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

#define UNEXPECTED_CHAR \
	json_tokener_error_desc(json_tokener_error_parse_unexpected)

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
 * no surrogates, nothing above U+10FFFF) at s, or 0.  json-c's own
 * JSON_TOKENER_VALIDATE_UTF8 only checks the lead/continuation structure.
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
 * Lexical check of text json-c has already parsed (so strings are
 * terminated and escapes well-formed): rejects what json-c lets through but
 * JSON forbids (including ill-formed UTF-8 in strings), and counts the
 * integers of TT_JSON_BIG_DIGITS digits or more.  With out != NULL (room for
 * len + 3 * nbig bytes), also writes the text with each such integer
 * rewritten as "<mark><digits>"; returns the length written in *outlen.
 *
 * Returns false with *errpos and *errdesc set if the text is not JSON.
 */
static bool
scan_json(const char *s, size_t len, size_t *nbig, char *out, size_t *outlen,
		  size_t *errpos, const char **errdesc)
{
	size_t		i = 0;
	size_t		o = 0;

	*nbig = 0;
	while (i < len)
	{
		size_t		tok = i;
		char		c = s[i];

		if (is_json_space(c) || c == '{' || c == '}' || c == '[' ||
			c == ']' || c == ',' || c == ':')
			i++;
		else if (c == '"')
		{
			bool		nul_escape = false;

			i++;
			while (i < len && s[i] != '"')
			{
				if (s[i] == '\\')
				{
					if (i + 5 < len && s[i + 1] == 'u' &&
						memcmp(s + i + 2, "0000", 4) == 0)
						nul_escape = true;
					i += 2;
				}
				else if ((unsigned char) s[i] < 0x20)
				{
					*errpos = i;
					*errdesc = "invalid control character in string";
					return false;
				}
				else
				{
					size_t		n;

					n = utf8_sequence_len((const unsigned char *) s + i, len - i);
					if (n == 0)
					{
						*errpos = i;
						*errdesc = "invalid UTF-8 in string";
						return false;
					}
					i += n;
				}
			}
			i++;				/* the closing quote */

			/* json-c keeps object keys as C strings: "\u0000" would cut them */
			if (nul_escape)
			{
				size_t		j = i;

				while (j < len && is_json_space(s[j]))
					j++;
				if (j < len && s[j] == ':')
				{
					*errpos = tok;
					*errdesc = "object key containing \\u0000 not supported";
					return false;
				}
			}
		}
		else if (c == '-' || IS_DIGIT(c))
		{
			size_t		end = i;
			bool		integral;
			size_t		ndigits;

			while (end < len && is_number_char(s[end]))
				end++;
			if (json_number_prefix(s + i, end - i, &integral, &ndigits) != end - i)
			{
				*errpos = i;
				*errdesc = "invalid number";
				return false;
			}
			i = end;
			if (integral && ndigits >= TT_JSON_BIG_DIGITS)
			{
				(*nbig)++;
				if (out)
				{
					out[o++] = '"';
					out[o++] = TT_JSON_BIG_MARK;
					memcpy(out + o, s + tok, i - tok);
					o += i - tok;
					out[o++] = '"';
				}
				continue;
			}
		}
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		{
			size_t		end = i;

			while (end < len && ((s[end] >= 'a' && s[end] <= 'z') ||
								 (s[end] >= 'A' && s[end] <= 'Z')))
				end++;
			if (!((end - i == 4 && memcmp(s + i, "true", 4) == 0) ||
				  (end - i == 5 && memcmp(s + i, "false", 5) == 0) ||
				  (end - i == 4 && memcmp(s + i, "null", 4) == 0)))
			{
				*errpos = i;
				*errdesc = UNEXPECTED_CHAR;
				return false;
			}
			i = end;
		}
		else
		{
			*errpos = i;
			*errdesc = UNEXPECTED_CHAR;
			return false;
		}

		if (out)
		{
			memcpy(out + o, s + tok, i - tok);
			o += i - tok;
		}
	}
	if (outlen)
		*outlen = o;
	return true;
}

/*
 * Parse text with json-c.  Returns the root (NULL is also JSON null: check
 * *ok), or sets *ok = false, *errpos and *errdesc.  Never raises.
 */
static json_object *
parse_json(const char *s, size_t len, int flags, bool *ok, size_t *errpos,
		   const char **errdesc)
{
	json_tokener *tok;
	json_object *root;
	enum json_tokener_error jerr;
	size_t		end;

	*ok = false;
	*errpos = 0;
	tok = json_tokener_new_ex(TT_LUA_MAX_DEPTH);
	if (tok == NULL)
	{
		*errdesc = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tok, flags);

	/* pass the terminating NUL too, so that a final number is complete */
	root = json_tokener_parse_ex(tok, s, (int) len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr != json_tokener_success)
	{
		json_object_put(root);
		if (jerr == json_tokener_continue)
			jerr = json_tokener_error_parse_eof;
		*errpos = Min(end, len);
		*errdesc = json_tokener_error_desc(jerr);
		return NULL;
	}
	if (end < len)
	{
		/* an embedded NUL stops json-c short of the end */
		json_object_put(root);
		*errpos = end;
		*errdesc = UNEXPECTED_CHAR;
		return NULL;
	}
	*ok = true;
	return root;
}

/* ---------------------------------------------------------------------
 * json.decode
 * ---------------------------------------------------------------------
 */

typedef struct TTJsonDecode
{
	json_object *root;			/* freed by json_decode after the call */
	bool		has_big;		/* marker strings stand for big integers */
} TTJsonDecode;

static void
push_json(lua_State *L, TTJsonDecode *ctx, json_object *obj, int depth)
{
	if (depth > TT_LUA_MAX_DEPTH)
		luaL_error(L, "json.decode: value nested too deeply");
	luaL_checkstack(L, 6, "json.decode");

	switch (json_object_get_type(obj))
	{
		case json_type_null:
			lua_pushlightuserdata(L, TT_LUA_NULL);
			break;
		case json_type_boolean:
			lua_pushboolean(L, json_object_get_boolean(obj));
			break;
		case json_type_int:
			{
				int64_t		v = json_object_get_int64(obj);
				char		buf[32];

				if (v >= -TT_JSON_MAX_SAFE_INT && v <= TT_JSON_MAX_SAFE_INT)
				{
					lua_pushnumber(L, (lua_Number) v);
					break;
				}
				if (v == INT64_MAX)
				{
					/* json-c stores values above INT64_MAX as uint64 */
					snprintf(buf, sizeof(buf), "%llu",
							 (unsigned long long) json_object_get_uint64(obj));
				}
				else
					snprintf(buf, sizeof(buf), "%lld", (long long) v);
				tt_lua_push_number_text(L, buf, strlen(buf));
				break;
			}
		case json_type_double:
			{
				/* json-c keeps the text of a parsed double */
				const char *text = json_object_get_string(obj);

				if (text == NULL)
					luaL_error(L, "json.decode: out of memory");
				tt_lua_push_number_text(L, text, strlen(text));
				break;
			}
		case json_type_string:
			{
				const char *s = json_object_get_string(obj);
				size_t		len = (size_t) json_object_get_string_len(obj);

				if (ctx->has_big && len > 1 && s[0] == TT_JSON_BIG_MARK)
					tt_lua_push_number_text(L, s + 1, len - 1);
				else
					lua_pushlstring(L, s, len);
				break;
			}
		case json_type_array:
			{
				size_t		n = json_object_array_length(obj);
				size_t		i;

				lua_createtable(L, (int) Min(n, (size_t) INT_MAX), 0);
				for (i = 0; i < n; i++)
				{
					push_json(L, ctx, json_object_array_get_idx(obj, i), depth + 1);
					lua_rawseti(L, -2, (int) (i + 1));
				}
				luaL_getmetatable(L, TT_LUA_ARRAY_MT);
				lua_setmetatable(L, -2);
				break;
			}
		case json_type_object:
			{
				struct json_object_iterator it = json_object_iter_begin(obj);
				struct json_object_iterator itend = json_object_iter_end(obj);

				lua_createtable(L, 0, json_object_object_length(obj));
				while (!json_object_iter_equal(&it, &itend))
				{
					lua_pushstring(L, json_object_iter_peek_name(&it));
					push_json(L, ctx, json_object_iter_peek_value(&it), depth + 1);
					lua_rawset(L, -3);
					json_object_iter_next(&it);
				}
				break;
			}
	}
}

/* protected: (ctx) -> the Lua value of ctx->root */
static int
json_decode_push(lua_State *L)
{
	TTJsonDecode *ctx = (TTJsonDecode *) lua_touserdata(L, 1);

	push_json(L, ctx, ctx->root, 1);
	return 1;
}

static int
json_decode(lua_State *L)
{
	size_t		len;
	const char *s = luaL_checklstring(L, 1, &len);
	TTJsonDecode ctx;
	bool		ok;
	size_t		errpos;
	const char *errdesc;
	size_t		nbig;
	int			status;

	if (len >= (size_t) INT_MAX)
		return luaL_error(L, "json.decode: input too large");

	/* set up the protected call before json-c allocates anything */
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));	/* json_decode_push */
	lua_pushlightuserdata(L, &ctx);

	ctx.has_big = false;
	ctx.root = parse_json(s, len, JSON_TOKENER_STRICT, &ok, &errpos, &errdesc);
	if (ok && !scan_json(s, len, &nbig, NULL, NULL, &errpos, &errdesc))
	{
		json_object_put(ctx.root);
		ctx.root = NULL;
		ok = false;
	}
	if (!ok)
		return luaL_error(L, "json.decode: %s at byte %d", errdesc, (int) errpos);

	if (nbig > 0)
	{
		/* parse again with the big integers as marker strings */
		size_t		newlen;
		char	   *buf;

		json_object_put(ctx.root);
		ctx.root = NULL;
		if (len + 3 * nbig >= (size_t) INT_MAX)
			return luaL_error(L, "json.decode: input too large");
		buf = malloc(len + 3 * nbig + 1);
		if (buf == NULL)
			return luaL_error(L, "json.decode: out of memory");
		(void) scan_json(s, len, &nbig, buf, &newlen, &errpos, &errdesc);
		buf[newlen] = '\0';
		ctx.root = parse_json(buf, newlen, JSON_TOKENER_STRICT,
							  &ok, &errpos, &errdesc);
		free(buf);
		if (!ok)
			return luaL_error(L, "json.decode: %s", errdesc);
		ctx.has_big = true;
	}

	status = lua_pcall(L, 1, 1, 0);
	json_object_put(ctx.root);
	if (status != 0)
		return lua_error(L);
	return 1;
}

/* ---------------------------------------------------------------------
 * json.encode
 * ---------------------------------------------------------------------
 */

typedef struct TTJsonEncode
{
	json_object *root;			/* freed by json_encode after the call */
} TTJsonEncode;

/*
 * Hook child into the tree right away, so that everything allocated is
 * reachable from ctx->root whenever a Lua call may raise.
 */
static void
attach(lua_State *L, TTJsonEncode *ctx, json_object *parent, const char *key,
	   json_object *child)
{
	int			rc;

	if (parent == NULL)
	{
		ctx->root = child;
		return;
	}
	if (key != NULL)
		rc = json_object_object_add_ex(parent, key, child,
									   JSON_C_OBJECT_ADD_KEY_IS_NEW);
	else
		rc = json_object_array_add(parent, child);
	if (rc != 0)
	{
		json_object_put(child);
		luaL_error(L, "json.encode: out of memory");
	}
}

static json_object *
new_number_text(lua_State *L, const TTLuaNumber *box)
{
	char		small[64];
	char	   *text = small;
	json_object *obj;
	bool		integral;
	size_t		ndigits;
	double		d;

	if (box->len >= sizeof(small))
	{
		text = malloc(box->len + 1);
		if (text == NULL)
			luaL_error(L, "json.encode: out of memory");
	}
	memcpy(text, box->text, box->len);
	text[box->len] = '\0';
	d = strtod(text, NULL);

	if (json_number_prefix(text, box->len, &integral, &ndigits) != box->len)
	{
		char		msg[48];

		snprintf(msg, sizeof(msg), "%s", text);
		if (text != small)
			free(text);
		if (isnan(d) || isinf(d))
			luaL_error(L, "cannot encode NaN or infinity as JSON");
		luaL_error(L, "cannot encode the number \"%s\" as JSON", msg);
	}

	/* json-c prints the saved text verbatim */
	obj = json_object_new_double_s(d, text);
	if (text != small)
		free(text);
	if (obj == NULL)
		luaL_error(L, "json.encode: out of memory");
	return obj;
}

static json_object *
new_number(lua_State *L, lua_Number d)
{
	json_object *obj;

	if (isnan(d) || isinf(d))
		luaL_error(L, "cannot encode NaN or infinity as JSON");
	/* integers only where a double holds every one; beyond, shortest text */
	if (fabs(d) <= 9007199254740992.0 && d == (lua_Number) (int64_t) d)
		obj = json_object_new_int64((int64_t) d);
	else
	{
		char		buf[64];

		tt_format_double(d, buf, sizeof(buf));
		obj = json_object_new_double_s(d, buf);
	}
	if (obj == NULL)
		luaL_error(L, "json.encode: out of memory");
	return obj;
}

/* encode the value at idx (absolute) into parent under key (or append) */
static void
encode_value(lua_State *L, TTJsonEncode *ctx, int idx, json_object *parent,
			 const char *key, int depth)
{
	json_object *obj = NULL;
	int			type = lua_type(L, idx);

	luaL_checkstack(L, 6, "json.encode");
	switch (type)
	{
		case LUA_TNIL:
			break;
		case LUA_TBOOLEAN:
			obj = json_object_new_boolean(lua_toboolean(L, idx));
			if (obj == NULL)
				luaL_error(L, "json.encode: out of memory");
			break;
		case LUA_TNUMBER:
			obj = new_number(L, lua_tonumber(L, idx));
			break;
		case LUA_TSTRING:
			{
				size_t		len;
				const char *s = lua_tolstring(L, idx, &len);

				if (len >= (size_t) INT_MAX)
					luaL_error(L, "json.encode: string too long");
				obj = json_object_new_string_len(s, (int) len);
				if (obj == NULL)
					luaL_error(L, "json.encode: out of memory");
				break;
			}
		case LUA_TLIGHTUSERDATA:
			if (lua_touserdata(L, idx) != TT_LUA_NULL)
				luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
			break;
		case LUA_TUSERDATA:
			{
				TTLuaNumber *box = tt_lua_tonumberbox(L, idx);

				if (box == NULL)
					luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
				obj = new_number_text(L, box);
				break;
			}
		case LUA_TTABLE:
			{
				size_t		n;
				bool		is_array;

				if (depth > TT_LUA_MAX_DEPTH)
					luaL_error(L, "cannot encode a value nested too deeply (cycle?)");
				is_array = tt_lua_is_array(L, idx, &n);
				if (is_array)
					obj = json_object_new_array_ext((int) Min(Max(n, 1), INT_MAX));
				else
					obj = json_object_new_object();
				if (obj == NULL)
					luaL_error(L, "json.encode: out of memory");
				attach(L, ctx, parent, key, obj);

				if (is_array)
				{
					size_t		i;

					for (i = 1; i <= n; i++)
					{
						lua_rawgeti(L, idx, (int) i);
						encode_value(L, ctx, lua_gettop(L), obj, NULL, depth + 1);
						lua_pop(L, 1);
					}
				}
				else
				{
					lua_pushnil(L);
					while (lua_next(L, idx) != 0)
					{
						size_t		klen;
						const char *k;

						if (lua_type(L, -2) != LUA_TSTRING)
							luaL_error(L, "cannot encode a table with a non-string key");
						k = lua_tolstring(L, -2, &klen);
						if (strlen(k) != klen)
							luaL_error(L, "cannot encode a table key containing a NUL byte");
						encode_value(L, ctx, lua_gettop(L), obj, k, depth + 1);
						lua_pop(L, 1);
					}
				}
				return;
			}
		default:
			luaL_error(L, "cannot encode a %s as JSON", lua_typename(L, type));
	}
	attach(L, ctx, parent, key, obj);
}

/* protected: (ctx, value) -> the JSON text */
static int
json_encode_build(lua_State *L)
{
	TTJsonEncode *ctx = (TTJsonEncode *) lua_touserdata(L, 1);
	const char *out;
	size_t		outlen;

	encode_value(L, ctx, 2, NULL, NULL, 1);
	out = json_object_to_json_string_length(ctx->root, TT_JSON_ENCODE_FLAGS,
											&outlen);
	if (out == NULL)
		return luaL_error(L, "json.encode: out of memory");
	lua_pushlstring(L, out, outlen);
	return 1;
}

static int
json_encode(lua_State *L)
{
	TTJsonEncode ctx;
	int			status;

	lua_settop(L, 1);
	ctx.root = NULL;
	lua_pushvalue(L, lua_upvalueindex(1));	/* json_encode_build */
	lua_pushlightuserdata(L, &ctx);
	lua_pushvalue(L, 1);
	status = lua_pcall(L, 2, 1, 0);
	json_object_put(ctx.root);
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
	/* the protected halves are upvalues: no closure is created per call */
	lua_pushcfunction(L, json_encode_build);
	lua_pushcclosure(L, json_encode, 1);
	lua_setfield(L, -2, "encode");
	lua_pushcfunction(L, json_decode_push);
	lua_pushcclosure(L, json_decode, 1);
	lua_setfield(L, -2, "decode");
	lua_pushlightuserdata(L, TT_LUA_NULL);
	lua_setfield(L, -2, "null");
	return 1;
}
