/*-------------------------------------------------------------------------
 *
 * json_input.c
 *	  jsonb fields of a COPY, parsed by talaria's reader.
 *
 * PostgreSQL's jsonb_in goes from text to jsonb through its JSON lexer's
 * semantic callbacks, a JsonbValue per token pushed onto a parse state,
 * a sort of every object and convertToJsonb: about 2,500 instructions per
 * member of a Talaria event, most of a pipeline's cost on a (ts, doc jsonb)
 * event.  This parser reads the text once into a value tree in the row's
 * memory (strings without escapes point into the input) and the tree is
 * written by the pipeline's own jsonb writer (value.c), which sorts and
 * de-duplicates keys as jsonb_in does (the last of equal keys wins).
 *
 * It takes only what it can make into exactly jsonb_in's bytes: the JSON
 * grammar of PostgreSQL 15's lexer (json.c), strings whose escapes are
 * valid (\u0000 and unpaired surrogates are jsonb_in's errors; a \u escape
 * above U+007F only in a UTF-8 database), numbers as numeric_in reads them
 * (integers of up to 18 digits through int64_to_numeric, which makes the
 * same Numeric; anything longer or with an exponent of more than three
 * digits left to jsonb_in), nesting up to TT_JSON_MAX_DEPTH and inputs up
 * to TT_JSON_MAX_INPUT bytes.  For anything else, valid or not, it returns
 * NULL and the caller runs jsonb_in, so that every error is jsonb_in's own
 * and every value jsonb_in's: this is only faster.  test/t/045_copy_jsonb.pl
 * compares the two on generated and mutated documents.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "talaria.h"

/* deeper documents are rare: jsonb_in takes them (and its depth check) */
#define TT_JSON_MAX_DEPTH 64
/* far below jsonb's 256 MB limits however numbers expand */
#define TT_JSON_MAX_INPUT (16 * 1024 * 1024)
/* a longer number is numeric_in's (and jsonb_in's) to accept or refuse */
#define TT_JSON_MAX_NUMBER 1000

typedef struct JsonInput
{
	const char *p;
	const char *end;
	bool		utf8;			/* the database encoding is UTF-8 */
} JsonInput;

static bool parse_value(JsonInput *in, tt_value *dst, int depth);

static inline void
skip_space(JsonInput *in)
{
	while (in->p < in->end &&
		   (*in->p == ' ' || *in->p == '\n' || *in->p == '\r' || *in->p == '\t'))
		in->p++;
}

/* after a number or a literal: what may follow it in valid JSON */
static inline bool
at_delimiter(const JsonInput *in)
{
	char		c;

	if (in->p >= in->end)
		return true;
	c = *in->p;
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' ||
		c == '\r' || c == '\t';
}

/* the four hex digits of a \u escape at p (after the "\u"), or -1 */
static inline int
hex4(const char *p, const char *end)
{
	int			v = 0;
	int			i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++)
	{
		int			d = tt_hex_digit(p[i]);

		if (d < 0)
			return -1;
		v = (v << 4) | d;
	}
	return v;
}

/*
 * The rest of a string that has an escape, from start (after the opening
 * quote) with the escape at in->p: decoded into a new buffer, which is
 * never longer than the text.
 */
static bool
parse_escaped(JsonInput *in, const char *start, tt_str *dst)
{
	char	   *buf = palloc(in->end - start + 1);
	char	   *out = buf;
	const char *p = start;

	memcpy(out, start, in->p - start);
	out += in->p - start;
	p = in->p;
	while (p < in->end)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
		{
			in->p = p + 1;
			dst->ptr = buf;
			dst->len = out - buf;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\')
		{
			*out++ = (char) c;
			p++;
			continue;
		}
		if (p + 1 >= in->end)
			return false;
		switch (p[1])
		{
			case '"':
			case '\\':
			case '/':
				*out++ = p[1];
				break;
			case 'b':
				*out++ = '\b';
				break;
			case 'f':
				*out++ = '\f';
				break;
			case 'n':
				*out++ = '\n';
				break;
			case 'r':
				*out++ = '\r';
				break;
			case 't':
				*out++ = '\t';
				break;
			case 'u':
				{
					int			cp = hex4(p + 2, in->end);

					if (cp <= 0)	/* \u0000 is jsonb_in's error */
						return false;
					if (cp >= 0xDC00 && cp <= 0xDFFF)
						return false;	/* a low surrogate alone */
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						int			lo;

						if (in->end - p < 12 || p[6] != '\\' || p[7] != 'u')
							return false;
						lo = hex4(p + 8, in->end);
						if (lo < 0xDC00 || lo > 0xDFFF)
							return false;
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						p += 6;
					}
					if (cp > 0x7F && !in->utf8)
						return false;	/* converted to the server's encoding */
					unicode_to_utf8((pg_wchar) cp, (unsigned char *) out);
					out += pg_utf_mblen((unsigned char *) out);
					p += 6;
					continue;
				}
			default:
				return false;
		}
		p += 2;
	}
	return false;
}

/* a string at in->p (its opening quote) */
static inline bool
parse_string(JsonInput *in, tt_str *dst)
{
	const char *start = ++in->p;
	const char *p = start;

	while (p < in->end)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
		{
			dst->ptr = start;
			dst->len = p - start;
			in->p = p + 1;
			return true;
		}
		if (c == '\\')
		{
			in->p = p;
			return parse_escaped(in, start, dst);
		}
		if (c < 0x20)
			return false;		/* must be escaped */
		p++;
	}
	return false;
}

static inline bool
is_digit(const JsonInput *in, const char *p)
{
	return p < in->end && *p >= '0' && *p <= '9';
}

/* a number at in->p, in the grammar of PostgreSQL's json_lex_number */
static bool
parse_number(JsonInput *in, tt_value *dst)
{
	const char *start = in->p;
	const char *p = start;
	bool		integer = true;
	int			digits = 0;

	if (*p == '-')
		p++;
	if (is_digit(in, p) && *p == '0')
	{
		p++;
		digits = 1;
	}
	else if (is_digit(in, p))
	{
		while (is_digit(in, p))
		{
			p++;
			digits++;
		}
	}
	else
		return false;
	if (p < in->end && *p == '.')
	{
		integer = false;
		p++;
		if (!is_digit(in, p))
			return false;
		while (is_digit(in, p))
			p++;
	}
	if (p < in->end && (*p == 'e' || *p == 'E'))
	{
		const char *exp;

		integer = false;
		p++;
		if (p < in->end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(in, p))
			return false;
		exp = p;
		while (is_digit(in, p))
			p++;
		if (p - exp > 3)
			return false;		/* numeric_in's range check is jsonb_in's */
	}
	in->p = p;
	if (!at_delimiter(in) || p - start > TT_JSON_MAX_NUMBER)
		return false;
	dst->host_tag = 0;
	if (integer && digits <= 18)
	{
		const char *d = *start == '-' ? start + 1 : start;
		int64		v = 0;

		while (d < p)
			v = v * 10 + (*d++ - '0');
		dst->type = TT_INT;
		dst->u.i = *start == '-' ? -v : v;
	}
	else
	{
		dst->type = TT_NUMERIC;
		dst->u.str.ptr = start;
		dst->u.str.len = p - start;
	}
	return true;
}

static bool
parse_literal(JsonInput *in, const char *word, int len)
{
	if (in->end - in->p < len || memcmp(in->p, word, len) != 0)
		return false;
	in->p += len;
	return at_delimiter(in);
}

/*
 * After the opening bracket of a container: true if it closes at once
 * (and consumes the closing bracket).
 */
static inline bool
container_empty(JsonInput *in, char close)
{
	in->p++;
	skip_space(in);
	if (in->p < in->end && *in->p == close)
	{
		in->p++;
		return true;
	}
	return false;
}

/*
 * After a member or an item: 1 if another follows (the comma consumed), 0
 * if the container closes (the bracket consumed), -1 if the text is not
 * JSON.
 */
static inline int
container_next(JsonInput *in, char close)
{
	skip_space(in);
	if (in->p >= in->end)
		return -1;
	if (*in->p == close)
	{
		in->p++;
		return 0;
	}
	if (*in->p != ',')
		return -1;
	in->p++;
	skip_space(in);
	return 1;
}

static bool
parse_object(JsonInput *in, tt_value *dst, int depth)
{
	uint32		cap = 16;
	uint32		n = 0;
	tt_member  *m = palloc(sizeof(tt_member) * cap);
	int			more = container_empty(in, '}') ? 0 : 1;

	while (more > 0)
	{
		if (in->p >= in->end || *in->p != '"')
			return false;
		if (n == cap)
		{
			cap *= 2;
			m = repalloc(m, sizeof(tt_member) * cap);
		}
		if (!parse_string(in, &m[n].key))
			return false;
		skip_space(in);
		if (in->p >= in->end || *in->p != ':')
			return false;
		in->p++;
		if (!parse_value(in, &m[n].value, depth + 1))
			return false;
		n++;
		more = container_next(in, '}');
	}
	if (more < 0)
		return false;
	dst->type = TT_OBJECT;
	dst->u.obj.members = m;
	dst->u.obj.count = n;
	dst->u.obj.cap = cap;
	return true;
}

static bool
parse_array(JsonInput *in, tt_value *dst, int depth)
{
	uint32		cap = 8;
	uint32		n = 0;
	tt_value   *items = palloc(sizeof(tt_value) * cap);
	int			more = container_empty(in, ']') ? 0 : 1;

	while (more > 0)
	{
		if (n == cap)
		{
			cap *= 2;
			items = repalloc(items, sizeof(tt_value) * cap);
		}
		if (!parse_value(in, &items[n], depth + 1))
			return false;
		n++;
		more = container_next(in, ']');
	}
	if (more < 0)
		return false;
	dst->type = TT_ARRAY;
	dst->u.arr.items = items;
	dst->u.arr.count = n;
	dst->u.arr.cap = cap;
	return true;
}

static bool
parse_value(JsonInput *in, tt_value *dst, int depth)
{
	if (depth > TT_JSON_MAX_DEPTH)
		return false;
	skip_space(in);
	if (in->p >= in->end)
		return false;
	dst->host_tag = 0;
	switch (*in->p)
	{
		case '{':
			return parse_object(in, dst, depth);
		case '[':
			return parse_array(in, dst, depth);
		case '"':
			dst->type = TT_STRING;
			return parse_string(in, &dst->u.str);
		case 't':
			dst->type = TT_BOOL;
			dst->u.b = 1;
			return parse_literal(in, "true", 4);
		case 'f':
			dst->type = TT_BOOL;
			dst->u.b = 0;
			return parse_literal(in, "false", 5);
		case 'n':
			dst->type = TT_NULL;
			return parse_literal(in, "null", 4);
		default:
			if (*in->p == '-' || (*in->p >= '0' && *in->p <= '9'))
				return parse_number(in, dst);
			return false;
	}
}

/*
 * The jsonb of JSON text s (len bytes, valid in the database encoding), as
 * jsonb_in would make it; or NULL, and the caller runs jsonb_in.
 * Allocates in the current memory context (the row's).
 */
Jsonb *
tt_json_text_to_jsonb(const char *s, int len)
{
	JsonInput	in;
	tt_value	v;

	if (len <= 0 || len > TT_JSON_MAX_INPUT)
		return NULL;
	in.p = s;
	in.end = s + len;
	in.utf8 = GetDatabaseEncoding() == PG_UTF8;
	if (!parse_value(&in, &v, 0))
		return NULL;
	skip_space(&in);
	if (in.p != in.end)
		return NULL;
	return tt_parsed_json_to_jsonb(&v);
}
