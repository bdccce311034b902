/*-------------------------------------------------------------------------
 *
 * lua_lexer.c
 *	  Lua tokens exactly as LuaJIT 2.1's lexer (lj_lex.c) cuts them.
 *
 * Each rule below is LuaJIT's, named after the function it follows:
 *	- a line ends at "\n", "\r", "\r\n" or "\n\r" (one newline each);
 *	- whitespace is space, \t, \v, \f and the line ends; any other byte
 *	  outside a token is a token of its own (the parser refuses it);
 *	- identifier bytes are ASCII letters, digits, '_' and every byte from
 *	  0x80 up (LuaJIT's lj_char_isident);
 *	- "--" starts a comment: a long one if "[", any number of '=' and "["
 *	  follow, else a short one up to the next line end (\r included);
 *	- long brackets "[==[" end at the first "]==]" of the same level; a
 *	  newline right after the opener belongs to it;
 *	- strings in '' or "" end at the same quote; a raw line end or the end
 *	  of the source inside one is an error; escapes: \a \b \f \n \r \t \v
 *	  \\ \" \', \xXX, \ddd (at most 255), \u{X...} (below 0x110000, no
 *	  surrogates), \z (skips whitespace including line ends) and a
 *	  backslash before a line end (the whole "\r\n" or "\n\r" pair);
 *	- numbers start with a digit (or '.' and a digit) and run over
 *	  identifier bytes, '.', and a sign right after the exponent letter
 *	  ('e', or 'p' in a "0x" number): 0x1p-4, 1e+5, 12LL, 3ULL, 2i;
 *	- two- and three-byte tokens: == ~= <= >= :: .. ...;
 *	- the source may start with a UTF-8 BOM, then a "#" line (up to the
 *	  first line end) that is skipped; ESC after them is a bytecode dump.
 * Values are not computed, only extents: escapes are checked as LuaJIT
 * checks them, but a number's digits are not (lj_strscan's "malformed
 * number" is left to the compiler: its extent, all the rewriter needs, is
 * the same either way, and LuaJIT refuses the source).  An error stops the
 * scan: LuaJIT refuses such a source, so what follows it never runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "lua_lexer.h"

static inline bool
is_eol(const TTLexer *lx, const char *p)
{
	return p < lx->end && (*p == '\n' || *p == '\r');
}

static inline bool
is_ident(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static inline bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_xdigit(unsigned char c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static inline bool
is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* at the byte after p, or EOF (-1): LuaJIT's "current character" */
static inline int
peek(const TTLexer *lx, const char *p)
{
	return p < lx->end ? (unsigned char) *p : -1;
}

/* lex_newline: p is at a line end; skips it (a pair counts once) */
static const char *
skip_newline(TTLexer *lx, const char *p)
{
	char		old = *p++;

	if (is_eol(lx, p) && *p != old)
		p++;
	lx->line++;
	return p;
}

/*
 * lex_skipeq: p is at '[' or ']'; returns the number of '=' after it if
 * the same bracket follows them (*after at that bracket), else -count-1
 * (*after at the first byte that is neither).
 */
static int
skip_eq(const TTLexer *lx, const char *p, const char **after)
{
	char		s = *p++;
	int			count = 0;

	while (p < lx->end && *p == '=')
	{
		count++;
		p++;
	}
	*after = p;
	return (p < lx->end && *p == s) ? count : -count - 1;
}

/* lex_longstring: p is at the second '['; returns the end, NULL if none */
static const char *
skip_long(TTLexer *lx, const char *p, int level)
{
	p++;
	if (is_eol(lx, p))
		p = skip_newline(lx, p);
	while (p < lx->end)
	{
		if (*p == ']')
		{
			const char *q;

			if (skip_eq(lx, p, &q) == level)
				return q + 1;
			p = q;				/* q may be the next ']' */
		}
		else if (*p == '\n' || *p == '\r')
			p = skip_newline(lx, p);
		else
			p++;
	}
	return NULL;
}

/* lex_string: p is at the opening quote; returns the end, NULL on error */
static const char *
skip_string(TTLexer *lx, const char *p)
{
	char		delim = *p++;

	for (;;)
	{
		int			c = peek(lx, p);

		if (c == delim)
			return p + 1;
		if (c == -1 || c == '\n' || c == '\r')
			return NULL;
		if (c != '\\')
		{
			p++;
			continue;
		}
		p++;					/* the backslash */
		c = peek(lx, p);
		switch (c)
		{
			case -1:
				return NULL;
			case '\n':
			case '\r':
				p = skip_newline(lx, p);
				break;
			case 'z':
				p++;
				while (p < lx->end && is_space((unsigned char) *p))
					p = is_eol(lx, p) ? skip_newline(lx, p) : p + 1;
				break;
			case 'x':
				if (!is_xdigit(peek(lx, p + 1)) || !is_xdigit(peek(lx, p + 2)))
					return NULL;
				p += 3;
				break;
			case 'u':
				{
					long		v = 0;

					p++;
					if (peek(lx, p) != '{')
						return NULL;
					p++;
					do
					{
						c = peek(lx, p);
						if (c == -1 || !is_xdigit(c))
							return NULL;
						v = (v << 4) | (is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
						if (v >= 0x110000)
							return NULL;
						p++;
					} while (peek(lx, p) != '}');
					if (v >= 0xd800 && v < 0xe000)
						return NULL;	/* no surrogates */
					p++;
					break;
				}
			case 'a':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
			case 'v':
			case '\\':
			case '"':
			case '\'':
				p++;
				break;
			default:
				{
					int			v;

					if (!is_digit(c))
						return NULL;
					v = c - '0';
					p++;
					if (is_digit(peek(lx, p)))
					{
						v = v * 10 + (*p++ - '0');
						if (is_digit(peek(lx, p)))
						{
							v = v * 10 + (*p++ - '0');
							if (v > 255)
								return NULL;
						}
					}
					break;
				}
		}
	}
}

/* lex_number: p is at its first digit */
static const char *
skip_number(const TTLexer *lx, const char *p)
{
	int			c = (unsigned char) *p;
	int			xp = 'e';

	if (c == '0')
	{
		p++;
		if ((peek(lx, p) | 0x20) == 'x')
			xp = 'p';
	}
	for (;;)
	{
		int			cur = peek(lx, p);

		if (cur == -1)
			break;
		if (!(is_ident(cur) || cur == '.' ||
			  ((cur == '-' || cur == '+') && (c | 0x20) == xp)))
			break;
		c = cur;
		p++;
	}
	return p;
}

void
tt_lex_init(TTLexer *lx, const char *src, size_t len)
{
	const char *p = src;

	lx->src = src;
	lx->end = src + len;
	lx->line = 1;
	lx->binary = false;
	if (len >= 3 && (unsigned char) p[0] == 0xef &&
		(unsigned char) p[1] == 0xbb && (unsigned char) p[2] == 0xbf)
		p += 3;
	if (p < lx->end && *p == '#')
	{
		while (p < lx->end && !is_eol(lx, p))
			p++;
		if (p < lx->end)
			p = skip_newline(lx, p);
	}
	if (p < lx->end && *p == '\033')
		lx->binary = true;
	lx->body = p;
	lx->p = p;
}

static TTLexKind
finish(TTLexer *lx, TTToken *tok, TTLexKind kind, const char *end)
{
	if (end == NULL)
	{
		tok->kind = TT_TOK_ERROR;
		tok->n = 0;
		lx->p = lx->end;
		return TT_TOK_ERROR;
	}
	tok->kind = kind;
	tok->n = (size_t) (end - tok->p);
	lx->p = end;
	return kind;
}

TTLexKind
tt_lex_next(TTLexer *lx, TTToken *tok)
{
	const char *p = lx->p;

	if (lx->binary)
	{
		tok->p = p;
		tok->line = lx->line;
		return finish(lx, tok, TT_TOK_ERROR, NULL);
	}
	for (;;)
	{
		int			c = peek(lx, p);
		int			level;
		const char *q;

		tok->p = p;
		tok->line = lx->line;
		if (c == -1)
		{
			tok->kind = TT_TOK_EOF;
			tok->n = 0;
			lx->p = p;
			return TT_TOK_EOF;
		}
		if (is_ident(c))
		{
			if (is_digit(c))
				return finish(lx, tok, TT_TOK_NUMBER, skip_number(lx, p));
			while (p < lx->end && is_ident((unsigned char) *p))
				p++;
			return finish(lx, tok, TT_TOK_NAME, p);
		}
		switch (c)
		{
			case '\n':
			case '\r':
				p = skip_newline(lx, p);
				continue;
			case ' ':
			case '\t':
			case '\v':
			case '\f':
				p++;
				continue;
			case '-':
				if (peek(lx, p + 1) != '-')
					return finish(lx, tok, TT_TOK_PUNCT, p + 1);
				p += 2;
				if (peek(lx, p) == '[' && (level = skip_eq(lx, p, &q)) >= 0)
				{
					p = skip_long(lx, q, level);
					if (p == NULL)
						return finish(lx, tok, TT_TOK_ERROR, NULL);
					continue;
				}
				while (p < lx->end && !is_eol(lx, p))
					p++;
				continue;
			case '[':
				level = skip_eq(lx, p, &q);
				if (level >= 0)
					return finish(lx, tok, TT_TOK_STRING, skip_long(lx, q, level));
				if (level == -1)
					return finish(lx, tok, TT_TOK_PUNCT, p + 1);
				return finish(lx, tok, TT_TOK_ERROR, NULL);
			case '=':
			case '<':
			case '>':
			case '~':
				return finish(lx, tok, TT_TOK_PUNCT,
							  p + (peek(lx, p + 1) == '=' ? 2 : 1));
			case ':':
				return finish(lx, tok, TT_TOK_PUNCT,
							  p + (peek(lx, p + 1) == ':' ? 2 : 1));
			case '"':
			case '\'':
				return finish(lx, tok, TT_TOK_STRING, skip_string(lx, p));
			case '.':
				if (peek(lx, p + 1) == '.')
					return finish(lx, tok, TT_TOK_PUNCT,
								  p + (peek(lx, p + 2) == '.' ? 3 : 2));
				if (is_digit(peek(lx, p + 1)))
					return finish(lx, tok, TT_TOK_NUMBER, skip_number(lx, p + 1));
				return finish(lx, tok, TT_TOK_PUNCT, p + 1);
			default:
				return finish(lx, tok, TT_TOK_PUNCT, p + 1);
		}
	}
}

bool
tt_tok_is(const TTToken *tok, const char *s)
{
	size_t		n = strlen(s);

	return tok != NULL && (tok->kind == TT_TOK_NAME || tok->kind == TT_TOK_PUNCT) &&
		tok->n == n && memcmp(tok->p, s, n) == 0;
}
