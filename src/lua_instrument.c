/*-------------------------------------------------------------------------
 *
 * lua_instrument.c
 *	  Rewrite Lua source so that every loop and function checks for
 *	  interrupts, even inside JIT-compiled traces.
 *
 * LuaJIT never runs debug hooks in compiled code, so lua_sethook cannot
 * stop `while true do end` once it is traced.  Instead we insert a call to
 * a local checker (an FFI call to a C function, which LuaJIT compiles into
 * the trace and does not hoist) at:
 *	- the start of every `do` block (the bodies of while and for loops),
 *	- the start of every `repeat` body,
 *	- the entry of every function (recursion),
 *	- before every `goto` (loops made of labels).
 * Insertions never add a newline, so Lua's error messages keep the user's
 * line numbers.  Identifiers starting with "__talaria" are reserved so user
 * code cannot shadow or replace the checker.
 *
 * This runs on the Lua side too (the sandbox's load()), so it uses malloc
 * and reports errors through errbuf instead of ereport.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua_common.h"

#define CHECK_CALL " __talaria_check(); "
#define RESERVED_PREFIX "__talaria"
#define PROLOGUE "local __talaria_check = ...; return function(...) "
#define EPILOGUE "\nend"

typedef struct Out
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		failed;
} Out;

static void
out_append(Out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap)
	{
		size_t		cap = Max(o->cap * 2, o->len + n + 1);
		char	   *nb = realloc(o->buf, cap);

		if (nb == NULL)
		{
			o->failed = true;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* Length of a long bracket opener "[==[" at p, or 0; sets level. */
static size_t
long_bracket(const char *p, const char *end, int *level)
{
	const char *q = p + 1;

	if (p >= end || *p != '[')
		return 0;
	*level = 0;
	while (q < end && *q == '=')
	{
		(*level)++;
		q++;
	}
	if (q < end && *q == '[')
		return (size_t) (q - p + 1);
	return 0;
}

/* Skip to just after the matching "]==]"; returns NULL if unterminated. */
static const char *
skip_long(const char *p, const char *end, int level)
{
	while (p < end)
	{
		if (*p == ']')
		{
			const char *q = p + 1;
			int			l = 0;

			while (q < end && *q == '=')
			{
				l++;
				q++;
			}
			if (l == level && q < end && *q == ']')
				return q + 1;
		}
		p++;
	}
	return NULL;
}

static inline bool
is_name_start(char c)
{
	return isalpha((unsigned char) c) || c == '_';
}

static inline bool
is_name_char(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

static inline bool
word_is(const char *p, size_t n, const char *kw)
{
	return strlen(kw) == n && memcmp(p, kw, n) == 0;
}

static int
line_of(const char *src, const char *p)
{
	int			line = 1;

	for (; src < p; src++)
		if (*src == '\n')
			line++;
	return line;
}

/*
 * Returns a malloc'd, NUL-terminated rewritten chunk, or NULL with a message
 * in errbuf.  Syntax errors are left for the Lua compiler to report (with
 * their line); we only fail on what we must refuse.
 */
char *
tt_lua_instrument(const char *src, size_t len, size_t *outlen,
				  char *errbuf, size_t errlen)
{
	const char *p = src;
	const char *end = src + len;
	const char *copied = src;	/* src up to here is in the output */
	Out			o = {NULL, 0, 0, false};
	bool		want_paren = false; /* after `function`, before its '(' */
	bool		in_params = false;	/* inside a function's parameter list */

	if (len > 0 && src[0] == '\033')
	{
		snprintf(errbuf, errlen, "binary (bytecode) chunks are not allowed");
		return NULL;
	}
	out_append(&o, PROLOGUE, strlen(PROLOGUE));
	/* a leading "#!" line is a comment for Lua; keep it one */
	if (len > 0 && src[0] == '#')
	{
		while (p < end && *p != '\n')
			p++;
		out_append(&o, "--", 2);
		copied = src + 1;
	}

	while (p < end)
	{
		char		c = *p;
		int			level;
		size_t		n;

		if (c == '-' && p + 1 < end && p[1] == '-')
		{
			p += 2;
			if ((n = long_bracket(p, end, &level)) > 0)
			{
				p = skip_long(p + n, end, level);
				if (p == NULL)
					break;		/* unfinished comment: Lua reports it */
			}
			else
				while (p < end && *p != '\n')
					p++;
			continue;
		}
		if (c == '[' && (n = long_bracket(p, end, &level)) > 0)
		{
			p = skip_long(p + n, end, level);
			if (p == NULL)
				break;
			continue;
		}
		if (c == '"' || c == '\'')
		{
			p++;
			while (p < end && *p != c && *p != '\n')
			{
				if (*p == '\\' && p + 1 < end)
					p++;
				p++;
			}
			if (p < end)
				p++;
			continue;
		}
		if (isdigit((unsigned char) c) ||
			(c == '.' && p + 1 < end && isdigit((unsigned char) p[1])))
		{
			while (p < end)
			{
				if ((*p == 'e' || *p == 'E' || *p == 'p' || *p == 'P') &&
					p + 1 < end && (p[1] == '+' || p[1] == '-'))
					p += 2;
				else if (is_name_char(*p) || *p == '.')
					p++;
				else
					break;
			}
			continue;
		}
		if (is_name_start(c))
		{
			const char *w = p;

			while (p < end && is_name_char(*p))
				p++;
			n = (size_t) (p - w);
			if (n >= strlen(RESERVED_PREFIX) &&
				memcmp(w, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0)
			{
				snprintf(errbuf, errlen,
						 "line %d: identifiers starting with \"%s\" are reserved",
						 line_of(src, w), RESERVED_PREFIX);
				free(o.buf);
				return NULL;
			}
			if (word_is(w, n, "do") || word_is(w, n, "repeat"))
			{
				out_append(&o, copied, (size_t) (p - copied));
				out_append(&o, CHECK_CALL, strlen(CHECK_CALL));
				copied = p;
			}
			else if (word_is(w, n, "goto"))
			{
				out_append(&o, copied, (size_t) (w - copied));
				out_append(&o, CHECK_CALL, strlen(CHECK_CALL));
				copied = w;
			}
			else if (word_is(w, n, "function"))
				want_paren = true;
			continue;
		}
		if (c == '(' && want_paren)
		{
			want_paren = false;
			in_params = true;
		}
		else if (c == ')' && in_params)
		{
			in_params = false;
			p++;
			out_append(&o, copied, (size_t) (p - copied));
			out_append(&o, CHECK_CALL, strlen(CHECK_CALL));
			copied = p;
			continue;
		}
		p++;
	}
	out_append(&o, copied, (size_t) (end - copied));
	out_append(&o, EPILOGUE, strlen(EPILOGUE));
	if (o.failed)
	{
		free(o.buf);
		snprintf(errbuf, errlen, "not enough memory");
		return NULL;
	}
	*outlen = o.len;
	return o.buf;
}
