/*
 * encode.c
 *	  A computed value: the row encoded as compact JSON and returned as a
 *	  string scalar instead of a row (Lua's `return json.encode(row)`).
 *
 * The text is built in the per-row arena; nothing is freed.  Keys keep the
 * row's order, timestamps are written as RFC 3339 strings in UTC, numerics
 * as their exact text, floats as the shortest text that reads back equal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

typedef struct out
{
	tt_call    *call;
	char	   *p;
	size_t		len;
	size_t		cap;
	int			failed;
} out;

static int
reserve(out *o, size_t n)
{
	char	   *np;
	size_t		cap;

	if (o->len + n <= o->cap)
		return 1;
	cap = o->cap ? o->cap * 2 : 256;
	while (cap < o->len + n)
		cap *= 2;
	np = o->call->host->alloc(o->call, cap);
	if (np == NULL)
	{
		o->failed = 1;
		return 0;
	}
	if (o->len)
		memcpy(np, o->p, o->len);
	o->p = np;
	o->cap = cap;
	return 1;
}

static void
put(out *o, const char *s, size_t n)
{
	if (reserve(o, n))
	{
		memcpy(o->p + o->len, s, n);
		o->len += n;
	}
}

static void
put_string(out *o, const char *s, uint32_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t	i;

	put(o, "\"", 1);
	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

		if (c == '"' || c == '\\')
		{
			esc[1] = (char) c;
			put(o, esc, 2);
		}
		else if (c == '\n')
			put(o, "\\n", 2);
		else if (c == '\t')
			put(o, "\\t", 2);
		else if (c == '\r')
			put(o, "\\r", 2);
		else if (c < 0x20)
			put(o, esc, 6);
		else
			put(o, (const char *) &s[i], 1);
	}
	put(o, "\"", 1);
}

static void
put_float(out *o, double d)
{
	char		tmp[32];
	int			prec;
	int			n = 0;

	if (isnan(d) || isinf(d))
	{
		put(o, "null", 4);
		return;
	}
	for (prec = 15; prec <= 17; prec++)
	{
		n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	put(o, tmp, (size_t) n);
}

static void
put_timestamp(out *o, int64_t us)
{
	char		tmp[48];
	time_t		secs = (time_t) (us / 1000000);
	int64_t		frac = us % 1000000;
	struct tm	tm;
	size_t		n;

	if (frac < 0)
	{
		frac += 1000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	n = strftime(tmp, sizeof(tmp), "\"%Y-%m-%dT%H:%M:%S", &tm);
	if (frac)
		n += snprintf(tmp + n, sizeof(tmp) - n, ".%06lld", (long long) frac);
	n += snprintf(tmp + n, sizeof(tmp) - n, "Z\"");
	put(o, tmp, n);
}

static void
put_value(out *o, const tt_value *v)
{
	char		tmp[32];
	uint32_t	i;

	switch (v->type)
	{
		case TT_NULL:
			put(o, "null", 4);
			break;
		case TT_BOOL:
			put(o, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
			break;
		case TT_INT:
			put(o, tmp, (size_t) snprintf(tmp, sizeof(tmp), "%lld", (long long) v->u.i));
			break;
		case TT_FLOAT:
			put_float(o, v->u.f);
			break;
		case TT_NUMERIC:
			put(o, v->u.str.ptr, v->u.str.len);
			break;
		case TT_STRING:
			put_string(o, v->u.str.ptr, v->u.str.len);
			break;
		case TT_TIMESTAMP:
			put_timestamp(o, v->u.ts);
			break;
		case TT_OBJECT:
			put(o, "{", 1);
			for (i = 0; i < v->u.obj.count; i++)
			{
				if (i)
					put(o, ",", 1);
				put_string(o, v->u.obj.members[i].key.ptr, v->u.obj.members[i].key.len);
				put(o, ":", 1);
				put_value(o, &v->u.obj.members[i].value);
			}
			put(o, "}", 1);
			break;
		case TT_ARRAY:
			put(o, "[", 1);
			for (i = 0; i < v->u.arr.count; i++)
			{
				if (i)
					put(o, ",", 1);
				put_value(o, &v->u.arr.items[i]);
			}
			put(o, "]", 1);
			break;
		default:
			o->failed = 1;
	}
}

TT_TRANSFORM(encode)
{
	out			o = {call, NULL, 0, 0, 0};
	tt_value   *result;

	put_value(&o, call->row);
	result = call->host->alloc(call, sizeof(tt_value));
	if (o.failed || result == NULL)
		return call->host->error(call, "could not encode the row");
	result->type = TT_STRING;
	result->u.str.ptr = o.p ? o.p : "";
	result->u.str.len = (uint32_t) o.len;
	call->result = result;
	return TT_OK;
}
