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

/* ---------------------------------------------------------------------
 * Can the row outlive its call?
 *
 * A lazy row copies its values into Lua memory so that it stays valid if
 * the script keeps it past the call (lua_convert.c).  Most transforms only
 * read and set its fields, and the copy (and the garbage it makes) is then
 * wasted.  This scan answers "certainly not" for the simple, common shape
 * of script, and "maybe" for anything else:
 *	- exactly one `function` in the whole source, `function main(row ...)`
 *	  (no closure can capture the row; main is that function);
 *	- no name through which code could reach functions dynamically
 *	  (`_G`, `load`, `loadstring`, `getfenv`, `setfenv`);
 *	- every other use of the parameter's name indexes it (`row.x`,
 *	  `row[k]`, as a target or a value) or is `return row` at the end of a
 *	  block: so the table itself is never stored, passed, aliased or
 *	  rebound, and it reaches nobody but the caller.
 * Strings and comments are skipped as the instrumenter does.
 * ---------------------------------------------------------------------
 */
typedef enum
{
	TOK_NAME,
	TOK_STRING,
	TOK_NUMBER,
	TOK_PUNCT
} TokKind;

typedef struct Tok
{
	TokKind		kind;
	const char *p;
	size_t		n;
} Tok;

static inline bool
tok_is(const Tok *t, TokKind kind, const char *s)
{
	return t != NULL && t->kind == kind && word_is(t->p, t->n, s);
}

/* Tokens of src (malloc'd); NULL if it cannot be scanned. */
static Tok *
scan_tokens(const char *src, size_t len, int *ntok)
{
	static const char *const punct3[] = {"...", NULL};
	static const char *const punct2[] = {"..", "::", "==", "~=", "<=", ">=", NULL};
	const char *p = src;
	const char *end = src + len;
	Tok		   *toks = NULL;
	int			n = 0;
	int			cap = 0;

	while (p < end)
	{
		Tok			t;
		int			level;
		size_t		lb;

		if (isspace((unsigned char) *p))
		{
			p++;
			continue;
		}
		if (p + 1 < end && p[0] == '-' && p[1] == '-')
		{
			p += 2;
			if ((lb = long_bracket(p, end, &level)) > 0)
			{
				if ((p = skip_long(p + lb, end, level)) == NULL)
					goto fail;
			}
			else
				while (p < end && *p != '\n')
					p++;
			continue;
		}
		t.p = p;
		if (*p == '"' || *p == '\'')
		{
			char		q = *p++;

			while (p < end && *p != q)
			{
				if (*p == '\n')
					goto fail;
				p += (*p == '\\' && p + 1 < end) ? 2 : 1;
			}
			if (p >= end)
				goto fail;
			p++;
			t.kind = TOK_STRING;
		}
		else if ((lb = long_bracket(p, end, &level)) > 0)
		{
			if ((p = skip_long(p + lb, end, level)) == NULL)
				goto fail;
			t.kind = TOK_STRING;
		}
		else if (is_name_start(*p))
		{
			while (p < end && is_name_char(*p))
				p++;
			t.kind = TOK_NAME;
		}
		else if (isdigit((unsigned char) *p) ||
				 (*p == '.' && p + 1 < end && isdigit((unsigned char) p[1])))
		{
			while (p < end && (is_name_char(*p) || *p == '.' ||
							   ((*p == '+' || *p == '-') &&
								strchr("eEpP", p[-1]) != NULL)))
				p++;
			t.kind = TOK_NUMBER;
		}
		else
		{
			const char *const *w;
			size_t		step = 1;

			for (w = punct3; *w; w++)
				if (p + 3 <= end && memcmp(p, *w, 3) == 0)
					step = 3;
			if (step == 1)
				for (w = punct2; *w; w++)
					if (p + 2 <= end && memcmp(p, *w, 2) == 0)
						step = 2;
			p += step;
			t.kind = TOK_PUNCT;
		}
		t.n = (size_t) (p - t.p);
		if (n == cap)
		{
			Tok		   *nt;

			cap = Max(64, cap * 2);
			nt = realloc(toks, cap * sizeof(Tok));
			if (nt == NULL)
				goto fail;
			toks = nt;
		}
		toks[n++] = t;
	}
	*ntok = n;
	if (toks == NULL)
		toks = malloc(sizeof(Tok));
	return toks;

fail:
	free(toks);
	return NULL;
}

bool
tt_lua_row_stays_local(const char *src, size_t len)
{
	static const char *const dynamic[] = {
		"_G", "load", "loadstring", "getfenv", "setfenv", NULL
	};
	Tok		   *toks;
	int			ntok;
	int			nfunc = 0;
	int			decl = -1;
	bool		local = true;
	int			i;

	toks = scan_tokens(src, len, &ntok);
	if (toks == NULL)
		return false;
	for (i = 0; i < ntok; i++)
	{
		const Tok  *t = &toks[i];
		const Tok  *prev = i > 0 ? &toks[i - 1] : NULL;
		const char *const *d;

		if (t->kind != TOK_NAME)
			continue;
		if (word_is(t->p, t->n, "function"))
		{
			nfunc++;
			if (i + 4 < ntok && tok_is(&toks[i + 1], TOK_NAME, "main") &&
				tok_is(&toks[i + 2], TOK_PUNCT, "(") && toks[i + 3].kind == TOK_NAME &&
				(tok_is(&toks[i + 4], TOK_PUNCT, ")") || tok_is(&toks[i + 4], TOK_PUNCT, ",")))
				decl = i + 3;
		}
		if (tok_is(prev, TOK_PUNCT, ".") || tok_is(prev, TOK_PUNCT, ":"))
			continue;			/* a field or method name */
		for (d = dynamic; *d; d++)
			if (word_is(t->p, t->n, *d))
				local = false;
	}
	if (nfunc != 1 || decl < 0)
		local = false;
	for (i = 0; local && i < ntok; i++)
	{
		const Tok  *t = &toks[i];
		const Tok  *prev = i > 0 ? &toks[i - 1] : NULL;
		const Tok  *next = i + 1 < ntok ? &toks[i + 1] : NULL;

		if (i == decl || t->kind != TOK_NAME || t->n != toks[decl].n ||
			memcmp(t->p, toks[decl].p, t->n) != 0)
			continue;
		if (tok_is(prev, TOK_PUNCT, ".") || tok_is(prev, TOK_PUNCT, ":"))
			continue;			/* another table's field of that name */
		if (tok_is(next, TOK_PUNCT, ".") && i + 2 < ntok && toks[i + 2].kind == TOK_NAME)
			continue;			/* row.x */
		if (tok_is(next, TOK_PUNCT, "["))
			continue;			/* row[k] */
		if (tok_is(prev, TOK_NAME, "return") &&
			(next == NULL || tok_is(next, TOK_NAME, "end") ||
			 tok_is(next, TOK_NAME, "else") || tok_is(next, TOK_NAME, "elseif") ||
			 tok_is(next, TOK_NAME, "until") || tok_is(next, TOK_PUNCT, ";")))
			continue;			/* return row */
		local = false;
	}
	free(toks);
	return local;
}
