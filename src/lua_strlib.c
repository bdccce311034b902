/*-------------------------------------------------------------------------
 *
 * lua_strlib.c
 *	  The sandbox's string.find, string.match, string.gmatch, string.gsub
 *	  and table.sort: the same behaviour as LuaJIT 2.1's, but interruptible.
 *
 * LuaJIT's pattern matcher backtracks without bound in C
 * (string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b') runs for
 * hours), its plain find is quadratic, and its table.sort compares millions
 * of values in C: none of them ever returns to instrumented Lua code, so
 * neither statement_timeout nor a cancel could stop them.  These versions
 * keep a step budget: every pattern item tried, every character scanned
 * while expanding or balancing, every comparison spends steps, and each
 * TT_STEP_BUDGET steps they call the same check as the instrumented code
 * (tt_lua_check_interrupt_now: the flags, the C stack and the clock) and
 * raise the same Lua error as an interrupted script.  A few instructions
 * per step.
 *
 * The matcher follows LuaJIT 2.1's lib_string.c: same pattern syntax
 * (classes by ASCII only, %b, %f, captures, position captures, anchors),
 * same results, same errors (including "pattern too complex" past 200
 * nested items).  Plain searches (no special character, or find's fourth
 * argument) use memmem chunk by chunk, which is linear.
 *
 * gsub with a function or table replacement and sort with a comparator call
 * back into Lua from C; they check the C stack first (tt_lua_check_cstack),
 * so that recursion through them ends in a Lua error and not in a crash.
 *
 * Everything here runs on the Lua side (see lua_common.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "lua_common.h"

/* steps between two interrupt checks */
#define TT_STEP_BUDGET		4096

/* nested pattern items, as LuaJIT's LJ_MAX_XLEVEL */
#define TT_MATCH_MAXDEPTH	200

/* a plain search looks at this much of the subject between two checks */
#define TT_PLAIN_CHUNK		(64 * 1024)

#define PAT_ESC			'%'
#define PAT_SPECIALS	"^$*+?.([%-"
#define CAP_UNFINISHED	(-1)
#define CAP_POSITION	(-2)

typedef struct Matcher
{
	const char *src;			/* the subject */
	const char *end;			/* its end (the string's terminating NUL) */
	lua_State  *L;
	int64		budget;			/* steps left before the next check */
	int			depth;			/* nested match() calls */
	int			level;			/* captures opened so far */
	struct
	{
		const char *init;
		ptrdiff_t	len;		/* or CAP_UNFINISHED, CAP_POSITION */
	}			cap[LUA_MAXCAPTURES];
} Matcher;

/* ---------------------------------------------------------------------
 * The step budget
 * ---------------------------------------------------------------------
 */
static void
budget_refill(lua_State *L, int64 *budget)
{
	*budget = TT_STEP_BUDGET;
	if (tt_lua_check_interrupt_now())
		tt_lua_interrupt_error(L, 1);
}

static inline void
spend(lua_State *L, int64 *budget, int64 steps)
{
	*budget -= steps;
	if (unlikely(*budget < 0))
		budget_refill(L, budget);
}

/* ---------------------------------------------------------------------
 * Character classes: ASCII only, whatever the locale (as LuaJIT's lj_char)
 * ---------------------------------------------------------------------
 */
#define CC_ALPHA	0x01
#define CC_DIGIT	0x02
#define CC_LOWER	0x04
#define CC_UPPER	0x08
#define CC_SPACE	0x10
#define CC_CNTRL	0x20
#define CC_PUNCT	0x40
#define CC_XDIGIT	0x80
#define CC_ALNUM	(CC_ALPHA | CC_DIGIT)
#define CC_GRAPH	(CC_ALNUM | CC_PUNCT)

static uint8 char_class[256];

/* the classes of the letters after '%', by letter & 0x1f ('z' apart) */
static const uint8 class_letter[32] = {
	['a' & 0x1f] = CC_ALPHA,['c' & 0x1f] = CC_CNTRL,['d' & 0x1f] = CC_DIGIT,
	['g' & 0x1f] = CC_GRAPH,['l' & 0x1f] = CC_LOWER,['p' & 0x1f] = CC_PUNCT,
	['s' & 0x1f] = CC_SPACE,['u' & 0x1f] = CC_UPPER,['w' & 0x1f] = CC_ALNUM,
	['x' & 0x1f] = CC_XDIGIT,
};

static void
char_class_init(void)
{
	int			c;

	for (c = 0; c < 256; c++)
	{
		uint8		k = 0;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			k |= CC_ALPHA;
		if (c >= '0' && c <= '9')
			k |= CC_DIGIT | CC_XDIGIT;
		if (c >= 'a' && c <= 'z')
			k |= CC_LOWER;
		if (c >= 'A' && c <= 'Z')
			k |= CC_UPPER;
		if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			k |= CC_XDIGIT;
		if (c == ' ' || (c >= '\t' && c <= '\r'))
			k |= CC_SPACE;
		if (c < 0x20 || c == 0x7f)
			k |= CC_CNTRL;
		if (c > 0x20 && c < 0x7f && !(k & CC_ALNUM))
			k |= CC_PUNCT;
		char_class[c] = k;
	}
}

/*
 * Does c match the class letter cl after a '%' (or the literal cl)?  An
 * upper-case class letter is the complement.
 */
static inline bool
match_class(int c, int cl)
{
	if ((cl & 0xc0) == 0x40)
	{
		int			k = class_letter[cl & 0x1f];

		if (k)
		{
			bool		r = (char_class[c] & k) != 0;

			return (cl & 0x20) ? r : !r;
		}
		if (cl == 'z')
			return c == 0;
		if (cl == 'Z')
			return c != 0;
	}
	return cl == c;
}

/* p: the '[' of a set; ec: its closing ']' */
static bool
match_set(int c, const char *p, const char *ec)
{
	bool		in = true;

	if (p[1] == '^')
	{
		in = false;
		p++;
	}
	while (++p < ec)
	{
		if (*p == PAT_ESC)
		{
			p++;
			if (match_class(c, (unsigned char) *p))
				return in;
		}
		else if (p[1] == '-' && p + 2 < ec)
		{
			p += 2;
			if ((unsigned char) p[-2] <= c && c <= (unsigned char) *p)
				return in;
		}
		else if ((unsigned char) *p == c)
			return in;
	}
	return !in;
}

/* the end of the single-character class at p */
static inline const char *
class_end(Matcher *m, const char *p)
{
	switch (*p++)
	{
		case PAT_ESC:
			if (*p == '\0')
				luaL_error(m->L, "malformed pattern (ends with '%%')");
			return p + 1;
		case '[':
			if (*p == '^')
				p++;
			/* the first character is part of the set, even a ']' */
			do
			{
				if (*p == '\0')
					luaL_error(m->L, "malformed pattern (missing ']')");
				if (*p++ == PAT_ESC && *p != '\0')
					p++;
			} while (*p != ']');
			return p + 1;
		default:
			return p;
	}
}

static inline bool
single_match(int c, const char *p, const char *ep)
{
	switch (*p)
	{
		case '.':
			return true;
		case PAT_ESC:
			return match_class(c, (unsigned char) p[1]);
		case '[':
			return match_set(c, p, ep - 1);
		default:
			return (unsigned char) *p == c;
	}
}

/* ---------------------------------------------------------------------
 * The matcher
 * ---------------------------------------------------------------------
 */
static const char *do_match(Matcher *m, const char *s, const char *p);

/* %bxy at p (p points at x) */
static const char *
match_balance(Matcher *m, const char *s, const char *p)
{
	const char *start = s;
	int			open = 1;

	if (p[0] == '\0' || p[1] == '\0')
		luaL_error(m->L, "unbalanced pattern");
	if (s >= m->end || *s != p[0])
		return NULL;
	while (++s < m->end)
	{
		if (*s == p[1])
		{
			if (--open == 0)
			{
				spend(m->L, &m->budget, s - start);
				return s + 1;
			}
		}
		else if (*s == p[0])
			open++;
	}
	spend(m->L, &m->budget, s - start);
	return NULL;
}

/* the item p..ep repeated as often as possible, then backing off */
static const char *
expand_max(Matcher *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t	n = 0;

	while (s + n < m->end && single_match((unsigned char) s[n], p, ep))
		n++;
	spend(m->L, &m->budget, n);
	for (; n >= 0; n--)
	{
		const char *r = do_match(m, s + n, ep + 1);

		if (r)
			return r;
	}
	return NULL;
}

/* the item p..ep repeated as rarely as possible */
static const char *
expand_min(Matcher *m, const char *s, const char *p, const char *ep)
{
	for (;;)
	{
		const char *r = do_match(m, s, ep + 1);

		if (r)
			return r;
		if (s < m->end && single_match((unsigned char) *s, p, ep))
			s++;
		else
			return NULL;
	}
}

static const char *
capture_open(Matcher *m, const char *s, const char *p, ptrdiff_t what)
{
	const char *r;

	if (m->level >= LUA_MAXCAPTURES)
		luaL_error(m->L, "too many captures");
	m->cap[m->level].init = s;
	m->cap[m->level].len = what;
	m->level++;
	r = do_match(m, s, p);
	if (r == NULL)
		m->level--;
	return r;
}

static const char *
capture_close(Matcher *m, const char *s, const char *p)
{
	int			l;
	const char *r;

	for (l = m->level - 1; l >= 0; l--)
		if (m->cap[l].len == CAP_UNFINISHED)
			break;
	if (l < 0)
		luaL_error(m->L, "invalid pattern capture");
	m->cap[l].len = s - m->cap[l].init;
	r = do_match(m, s, p);
	if (r == NULL)
		m->cap[l].len = CAP_UNFINISHED;
	return r;
}

/* %1..%9 in a pattern: the text of an earlier capture again */
static const char *
capture_again(Matcher *m, const char *s, int digit)
{
	int			l = digit - '1';
	size_t		len;

	if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
		luaL_error(m->L, "invalid capture index");
	len = (size_t) m->cap[l].len;
	spend(m->L, &m->budget, (int64) len);
	if ((size_t) (m->end - s) >= len && memcmp(m->cap[l].init, s, len) == 0)
		return s + len;
	return NULL;
}

/*
 * Matches the pattern p (NUL-terminated) at s; returns the end of the
 * match or NULL.  Tail positions loop instead of recursing, as LuaJIT's.
 */
static const char *
do_match(Matcher *m, const char *s, const char *p)
{
	if (++m->depth > TT_MATCH_MAXDEPTH)
		luaL_error(m->L, "pattern too complex");
	spend(m->L, &m->budget, 1);
again:
	switch (*p)
	{
		case '(':
			if (p[1] == ')')
				s = capture_open(m, s, p + 2, CAP_POSITION);
			else
				s = capture_open(m, s, p + 1, CAP_UNFINISHED);
			break;
		case ')':
			s = capture_close(m, s, p + 1);
			break;
		case '\0':
			break;				/* the whole pattern matched */
		case '$':
			if (p[1] != '\0')
				goto item;
			if (s != m->end)
				s = NULL;
			break;
		case PAT_ESC:
			if (p[1] == 'b')
			{
				s = match_balance(m, s, p + 2);
				if (s == NULL)
					break;
				p += 4;
				goto again;
			}
			if (p[1] == 'f')
			{
				const char *ep;
				int			prev;
				int			cur;

				p += 2;
				if (*p != '[')
					luaL_error(m->L, "missing '[' after '%%f' in pattern");
				ep = class_end(m, p);
				prev = (s == m->src) ? 0 : (unsigned char) s[-1];
				cur = (s < m->end) ? (unsigned char) *s : 0;
				if (match_set(prev, p, ep - 1) || !match_set(cur, p, ep - 1))
				{
					s = NULL;
					break;
				}
				p = ep;
				goto again;
			}
			if (p[1] >= '0' && p[1] <= '9')
			{
				s = capture_again(m, s, (unsigned char) p[1]);
				if (s == NULL)
					break;
				p += 2;
				goto again;
			}
			goto item;
		default:
	item:
			{
				const char *ep = class_end(m, p);
				bool		hit = s < m->end &&
					single_match((unsigned char) *s, p, ep);

				switch (*ep)
				{
					case '?':
						{
							const char *r;

							if (hit && (r = do_match(m, s + 1, ep + 1)) != NULL)
							{
								s = r;
								break;
							}
							p = ep + 1;
							goto again;
						}
					case '*':
						s = expand_max(m, s, p, ep);
						break;
					case '+':
						s = hit ? expand_max(m, s + 1, p, ep) : NULL;
						break;
					case '-':
						s = expand_min(m, s, p, ep);
						break;
					default:
						if (!hit)
						{
							s = NULL;
							break;
						}
						s++;
						p = ep;
						goto again;
				}
			}
			break;
	}
	m->depth--;
	return s;
}

static void
matcher_init(Matcher *m, lua_State *L, const char *s, size_t len)
{
	m->L = L;
	m->src = s;
	m->end = s + len;
	m->budget = TT_STEP_BUDGET;
}

/* one attempt at s; the budget carries over from attempt to attempt */
static inline const char *
match_at(Matcher *m, const char *s, const char *p)
{
	m->level = 0;
	m->depth = 0;
	return do_match(m, s, p);
}

/* ---------------------------------------------------------------------
 * Captures to Lua values
 * ---------------------------------------------------------------------
 */

/* capture i, or the whole match s..e when the pattern has none */
static void
push_capture(Matcher *m, int i, const char *s, const char *e)
{
	ptrdiff_t	len;

	if (i >= m->level)
	{
		if (i != 0)
			luaL_error(m->L, "invalid capture index");
		lua_pushlstring(m->L, s, (size_t) (e - s));
		return;
	}
	len = m->cap[i].len;
	if (len == CAP_UNFINISHED)
		luaL_error(m->L, "unfinished capture");
	if (len == CAP_POSITION)
		lua_pushinteger(m->L, m->cap[i].init - m->src + 1);
	else
		lua_pushlstring(m->L, m->cap[i].init, (size_t) len);
}

/* all captures (or the whole match when s is given and there are none) */
static int
push_captures(Matcher *m, const char *s, const char *e)
{
	int			n = (m->level == 0 && s) ? 1 : m->level;
	int			i;

	luaL_checkstack(m->L, n, "too many captures");
	for (i = 0; i < n; i++)
		push_capture(m, i, s, e);
	return n;
}

/* ---------------------------------------------------------------------
 * Plain search
 * ---------------------------------------------------------------------
 */
static bool
has_specials(const char *p, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if (p[i] != '\0' && strchr(PAT_SPECIALS, p[i]) != NULL)
			return true;
	return false;
}

/*
 * A search whose naive cost (positions times needle length) is below
 * TT_PLAIN_NAIVE takes the naive way, which has no setup cost: the usual
 * short subject or needle.  Anything bigger goes to memmem, which is
 * linear (glibc: Two-Way for long needles, a bounded filter for short
 * ones), over chunks of at least the needle's length so that the budget is
 * checked in between and no chunk costs more than a few milliseconds.
 */
#define TT_PLAIN_NAIVE		(64 * 1024)

static const char *
plain_find(lua_State *L, const char *s, size_t len, const char *p, size_t plen)
{
	size_t		chunk = Max(TT_PLAIN_CHUNK, plen);
	size_t		at = 0;
	int64		budget;

	if (plen == 0)
		return s;
	if (plen > len)
		return NULL;
	if ((len - plen + 1) <= TT_PLAIN_NAIVE / plen)
	{
		const char *last = s + len - plen;

		while (s <= last && (s = memchr(s, p[0], last - s + 1)) != NULL)
		{
			if (memcmp(s + 1, p + 1, plen - 1) == 0)
				return s;
			s++;
		}
		return NULL;
	}
	while (len - at >= plen)
	{
		size_t		span = Min(len - at, chunk + plen - 1);
		const char *r = memmem(s + at, span, p, plen);

		if (r)
			return r;
		at += span - plen + 1;
		budget_refill(L, &budget);
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * string.find, string.match
 * ---------------------------------------------------------------------
 */

/* an integer argument as LuaJIT's lj_lib_optint reads it (int32) */
static int32
opt_int32(lua_State *L, int narg, int32 def)
{
	lua_Number	d;

	if (lua_isnoneornil(L, narg))
		return def;
	d = luaL_checknumber(L, narg);
	if (d >= -2147483648.0 && d < 2147483648.0)
		return (int32) d;
	return PG_INT32_MIN;		/* what the conversion instruction gives */
}

static int
find_or_match(lua_State *L, bool find)
{
	size_t		len;
	size_t		plen;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *p = luaL_checklstring(L, 2, &plen);
	int32		start = opt_int32(L, 3, 1);
	size_t		init;

	if (start < 0)
		start += (int32) len;
	else
		start--;
	init = (start < 0) ? 0 : Min((size_t) start, len);

	if (find && (lua_toboolean(L, 4) || !has_specials(p, plen)))
	{
		const char *r = plain_find(L, s + init, len - init, p, plen);

		if (r)
		{
			lua_pushinteger(L, r - s + 1);
			lua_pushinteger(L, r - s + plen);
			return 2;
		}
	}
	else
	{
		Matcher		m;
		const char *at = s + init;
		bool		anchor = (*p == '^');

		if (anchor)
			p++;
		matcher_init(&m, L, s, len);
		do
		{
			const char *e = match_at(&m, at, p);

			if (e)
			{
				if (!find)
					return push_captures(&m, at, e);
				lua_pushinteger(L, at - s + 1);
				lua_pushinteger(L, e - s);
				return push_captures(&m, NULL, NULL) + 2;
			}
		} while (at++ < m.end && !anchor);
	}
	lua_pushnil(L);
	return 1;
}

static int
str_find(lua_State *L)
{
	return find_or_match(L, true);
}

/*
 * string.find itself is a Lua function that hands a plain search (a true
 * fourth argument) whose subject and needle lengths multiply to at most
 * 2^20 to LuaJIT's own find: its naive search then compares at most that
 * many bytes (well under a millisecond), and the compiler inlines it into
 * traces, where a call to a C function of ours costs a trace exit (some
 * hundreds of instructions).  Everything else goes to ours.  The arguments
 * are passed on as they came (a missing one stays missing) by a tail call,
 * so that errors name the function and the script's line.
 */
static const char find_chunk[] =
"local luajit_find, find, type = ...\n"
"return function(...)\n"
"  local s, p, init, plain = ...\n"
"  if plain and type(s) == 'string' and type(p) == 'string' and\n"
"     (init == nil or type(init) == 'number') and #s * #p <= 1048576 then\n"
"    return luajit_find(...)\n"
"  end\n"
"  return find(...)\n"
"end\n";

static int
str_match(lua_State *L)
{
	return find_or_match(L, false);
}

/* ---------------------------------------------------------------------
 * string.gmatch
 * ---------------------------------------------------------------------
 */

/*
 * The iterator is a Lua closure over the subject, the pattern and a
 * GmatchState userdata, that tail-calls the one gmatch_next.  LuaJIT's
 * compiler specializes a call to a C function on the closure object (its
 * own gmatch iterator is special-cased), so a fresh C closure per gmatch()
 * would fail the guard of the trace of every loop that calls gmatch again,
 * growing side traces until it falls back to the interpreter; a Lua
 * closure is specialized on its prototype once there are a few of them.
 * The closure passes the strings along only to keep them alive: the state
 * holds pointers into them.
 */
static const char gmatch_chunk[] =
"local next_match = ...\n"
"return function(s, p, state)\n"
"  return function() return next_match(state, s, p) end\n"
"end\n";

typedef struct GmatchState
{
	const char *s;				/* the subject */
	size_t		len;
	const char *p;				/* the pattern (NUL-terminated) */
	size_t		pos;			/* where the next search starts */
} GmatchState;

/* argument 1: the state (only ever ours) */
static int
gmatch_next(lua_State *L)
{
	GmatchState *st = (GmatchState *) lua_touserdata(L, 1);
	const char *at = st->s + st->pos;
	Matcher		m;

	matcher_init(&m, L, st->s, st->len);
	for (; at <= m.end; at++)
	{
		const char *e = match_at(&m, at, st->p);

		if (e)
		{
			/* an empty match moves on by one */
			st->pos = (e - st->s) + (e == at ? 1 : 0);
			return push_captures(&m, at, e);
		}
	}
	return 0;
}

/* upvalue 1: the iterator factory (gmatch_chunk) */
static int
str_gmatch(lua_State *L)
{
	GmatchState *st;
	size_t		len;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *p = luaL_checkstring(L, 2);

	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	st = (GmatchState *) lua_newuserdata(L, sizeof(GmatchState));
	st->s = s;
	st->len = len;
	st->p = p;
	st->pos = 0;
	lua_call(L, 3, 1);
	return 1;
}

/* ---------------------------------------------------------------------
 * string.gsub
 * ---------------------------------------------------------------------
 */

/* a replacement string: %0..%9 are captures, % before anything else quotes */
static void
add_template(Matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
	size_t		len;
	const char *r = lua_tolstring(m->L, 3, &len);
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (r[i] != PAT_ESC)
		{
			luaL_addchar(b, r[i]);
			continue;
		}
		i++;					/* a trailing % takes the string's NUL */
		if (r[i] < '0' || r[i] > '9')
			luaL_addchar(b, r[i]);
		else if (r[i] == '0')
			luaL_addlstring(b, s, (size_t) (e - s));
		else
		{
			push_capture(m, r[i] - '1', s, e);
			luaL_addvalue(b);
		}
	}
}

static void
add_replacement(Matcher *m, luaL_Buffer *b, const char *s, const char *e,
				int rtype)
{
	lua_State  *L = m->L;

	if (rtype == LUA_TFUNCTION)
	{
		int			n;

		lua_pushvalue(L, 3);
		n = push_captures(m, s, e);
		lua_call(L, n, 1);
	}
	else if (rtype == LUA_TTABLE)
	{
		push_capture(m, 0, s, e);
		lua_gettable(L, 3);
	}
	else
	{
		add_template(m, b, s, e);
		return;
	}
	if (!lua_toboolean(L, -1))
	{
		/* nil or false keeps the original text */
		lua_pop(L, 1);
		lua_pushlstring(L, s, (size_t) (e - s));
	}
	else if (!lua_isstring(L, -1))
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	luaL_addvalue(b);
}

static int
str_gsub(lua_State *L)
{
	size_t		len;
	const char *src = luaL_checklstring(L, 1, &len);
	const char *p = luaL_checkstring(L, 2);
	int			rtype = lua_type(L, 3);
	int			max = (int) luaL_optinteger(L, 4, (lua_Integer) len + 1);
	bool		anchor = (*p == '^');
	int			n = 0;
	Matcher		m;
	luaL_Buffer b;

	if (!(rtype == LUA_TNUMBER || rtype == LUA_TSTRING ||
		  rtype == LUA_TFUNCTION || rtype == LUA_TTABLE))
		luaL_argerror(L, 3, "string/function/table expected");
	if (rtype == LUA_TFUNCTION || rtype == LUA_TTABLE)
		tt_lua_check_cstack(L);
	if (anchor)
		p++;
	luaL_buffinit(L, &b);
	matcher_init(&m, L, src, len);
	while (n < max)
	{
		const char *e = match_at(&m, src, p);

		if (e)
		{
			n++;
			add_replacement(&m, &b, src, e, rtype);
		}
		if (e && e > src)
			src = e;
		else if (src < m.end)
			luaL_addchar(&b, *src++);
		else
			break;
		if (anchor)
			break;
	}
	luaL_addlstring(&b, src, (size_t) (m.end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

/* ---------------------------------------------------------------------
 * table.sort: Lua 5.1's quicksort, as LuaJIT's (same comparisons in the
 * same order, so the same result for any comparator), plus the budget.
 * ---------------------------------------------------------------------
 */
typedef struct Sorter
{
	lua_State  *L;
	bool		has_cmp;		/* argument 2 is the comparator */
	int64		budget;
} Sorter;

/* is the value at a less than the one at b (stack indices, negative)? */
static bool
sort_less(Sorter *st, int a, int b)
{
	lua_State  *L = st->L;
	bool		r;

	spend(L, &st->budget, 1);
	if (!st->has_cmp)
		return lua_lessthan(L, a, b);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, a - 1);
	lua_pushvalue(L, b - 2);
	lua_call(L, 2, 1);
	r = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return r;
}

/* t[i] = top, t[j] = the value below it; pops both */
static inline void
sort_set2(lua_State *L, int i, int j)
{
	lua_rawseti(L, 1, i);
	lua_rawseti(L, 1, j);
}

static void
sort_range(Sorter *st, int lo, int up)
{
	lua_State  *L = st->L;

	while (lo < up)
	{
		int			i;
		int			j;

		/* order t[lo], t[mid], t[up] */
		lua_rawgeti(L, 1, lo);
		lua_rawgeti(L, 1, up);
		if (sort_less(st, -1, -2))
			sort_set2(L, lo, up);
		else
			lua_pop(L, 2);
		if (up - lo == 1)
			break;
		i = (lo + up) / 2;
		lua_rawgeti(L, 1, i);
		lua_rawgeti(L, 1, lo);
		if (sort_less(st, -2, -1))
			sort_set2(L, i, lo);
		else
		{
			lua_pop(L, 1);
			lua_rawgeti(L, 1, up);
			if (sort_less(st, -1, -2))
				sort_set2(L, i, up);
			else
				lua_pop(L, 2);
		}
		if (up - lo == 2)
			break;
		/* the median is the pivot; park it at up - 1 */
		lua_rawgeti(L, 1, i);
		lua_pushvalue(L, -1);
		lua_rawgeti(L, 1, up - 1);
		sort_set2(L, i, up - 1);
		i = lo;
		j = up - 1;
		for (;;)
		{
			while (lua_rawgeti(L, 1, ++i), sort_less(st, -1, -2))
			{
				if (i >= up)
					luaL_error(L, "invalid order function for sorting");
				lua_pop(L, 1);
			}
			while (lua_rawgeti(L, 1, --j), sort_less(st, -3, -1))
			{
				if (j <= lo)
					luaL_error(L, "invalid order function for sorting");
				lua_pop(L, 1);
			}
			if (j < i)
			{
				lua_pop(L, 3);
				break;
			}
			sort_set2(L, i, j);
		}
		lua_rawgeti(L, 1, up - 1);
		lua_rawgeti(L, 1, i);
		sort_set2(L, up - 1, i);
		/* recurse into the smaller part, loop on the larger one */
		if (i - lo < up - i)
		{
			j = lo;
			i = i - 1;
			lo = i + 2;
		}
		else
		{
			j = i + 1;
			i = up;
			up = j - 2;
		}
		sort_range(st, j, i);
	}
}

static int
tab_sort(lua_State *L)
{
	Sorter		st;
	int			n;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = (int) lua_objlen(L, 1);
	lua_settop(L, 2);
	st.has_cmp = !lua_isnil(L, 2);
	if (st.has_cmp)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	/* comparisons may call back into Lua: __lt or the comparator */
	tt_lua_check_cstack(L);
	st.L = L;
	st.budget = TT_STEP_BUDGET;
	sort_range(&st, 1, n);
	return 0;
}

/* ---------------------------------------------------------------------
 * Installation
 * ---------------------------------------------------------------------
 */

/*
 * Replaces the functions above in the state's string and table libraries
 * (at string_idx and table_idx, absolute): the string table is also the
 * strings' __index, so ("x"):find() is ours too.
 */
void
tt_lua_open_strlib(lua_State *L, int string_idx, int table_idx)
{
	if (char_class['a'] == 0)
		char_class_init();
	lua_getfield(L, string_idx, "find");
	if (lua_type(L, -1) == LUA_TFUNCTION)
	{
		/* LuaJIT's find for small plain searches (see find_chunk) */
		if (luaL_loadbuffer(L, find_chunk, sizeof(find_chunk) - 1, "=talaria") != 0)
			lua_error(L);
		lua_insert(L, -2);
		lua_pushcfunction(L, str_find);
		lua_getglobal(L, "type");
		lua_call(L, 3, 1);
	}
	else
	{
		lua_pop(L, 1);
		lua_pushcfunction(L, str_find);
	}
	lua_setfield(L, string_idx, "find");
	lua_pushcfunction(L, str_match);
	lua_setfield(L, string_idx, "match");
	if (luaL_loadbuffer(L, gmatch_chunk, sizeof(gmatch_chunk) - 1, "=talaria") != 0)
		lua_error(L);
	lua_pushcfunction(L, gmatch_next);
	lua_call(L, 1, 1);
	lua_pushcclosure(L, str_gmatch, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, string_idx, "gmatch");
	/* the old name, where the library still has it */
	lua_getfield(L, string_idx, "gfind");
	if (!lua_isnil(L, -1))
	{
		lua_pop(L, 1);
		lua_setfield(L, string_idx, "gfind");
	}
	else
		lua_pop(L, 2);
	lua_pushcfunction(L, str_gsub);
	lua_setfield(L, string_idx, "gsub");
	lua_pushcfunction(L, tab_sort);
	lua_setfield(L, table_idx, "sort");
}
