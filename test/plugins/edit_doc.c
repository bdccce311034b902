/*
 * edit_doc.c
 *	  Test plugin: edits the nested object doc of a (ts, doc) row in place,
 *	  in ways the host must tell apart from the input (sql/native_splice.sql).
 *	  The host copies an object made of the input's own members, less some,
 *	  from the input's bytes; anything edited must be written, and checked,
 *	  as the plugin left it.
 *
 * Build: cc -shared -fPIC -O2 -Isrc/include -o edit_doc.so edit_doc.c
 */
#include <string.h>

#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

static tt_value *
doc_of(tt_call *call)
{
	tt_value   *doc;

	if (call->row->type != TT_OBJECT)
		return NULL;
	doc = call->host->get(call->row, TT_KEY("doc"));
	return doc != NULL && doc->type == TT_OBJECT ? doc : NULL;
}

/* doc.drop = nil through host->remove (compacts the members in place) */
static tt_value *
doc_less_drop(tt_call *call)
{
	tt_value   *doc = doc_of(call);

	if (doc != NULL)
		call->host->remove(doc, TT_KEY("drop"));
	return doc;
}

/* doc's member key, if doc is there and it has one of that type */
static tt_value *
member(tt_value *doc, tt_call *call, const char *key, size_t keylen, uint32_t type)
{
	tt_value   *v = doc != NULL ? call->host->get(doc, key, keylen) : NULL;

	return v != NULL && v->type == type ? v : NULL;
}

TT_TRANSFORM(doc_remove)
{
	doc_less_drop(call);
	return TT_OK;
}

/* nothing changed */
TT_TRANSFORM(doc_same)
{
	(void) call;
	return TT_OK;
}

/* drop, and doc.s becomes its own bytes but the first */
TT_TRANSFORM(doc_slice)
{
	tt_value   *s = member(doc_less_drop(call), call, TT_KEY("s"), TT_STRING);

	if (s != NULL && s->u.str.len > 0)
	{
		s->u.str.ptr++;
		s->u.str.len--;
	}
	return TT_OK;
}

/* drop, and doc.n (an integer) plus one, in place */
TT_TRANSFORM(doc_int)
{
	tt_value   *n = member(doc_less_drop(call), call, TT_KEY("n"), TT_INT);

	if (n != NULL)
		n->u.i++;
	return TT_OK;
}

/* drop, and doc.x (a decimal) loses its last character, in place */
TT_TRANSFORM(doc_numlen)
{
	tt_value   *x = member(doc_less_drop(call), call, TT_KEY("x"), TT_NUMERIC);

	if (x != NULL && x->u.str.len > 1)
		x->u.str.len--;
	return TT_OK;
}

/* drop, and doc.inner's first member becomes the integer 99, in place */
TT_TRANSFORM(doc_nested)
{
	tt_value   *inner = member(doc_less_drop(call), call, TT_KEY("inner"), TT_OBJECT);

	if (inner != NULL && inner->u.obj.count > 0)
	{
		tt_value   *v = &inner->u.obj.members[0].value;

		memset(v, 0, sizeof(*v));
		v->type = TT_INT;
		v->u.i = 99;
	}
	return TT_OK;
}

/* drop, then the first two members trade places */
TT_TRANSFORM(doc_swap)
{
	tt_value   *doc = doc_less_drop(call);

	if (doc != NULL && doc->u.obj.count >= 2)
	{
		tt_member	t = doc->u.obj.members[0];

		doc->u.obj.members[0] = doc->u.obj.members[1];
		doc->u.obj.members[1] = t;
	}
	return TT_OK;
}

/* drop, and doc.b (a boolean) flipped, in place */
TT_TRANSFORM(doc_flip)
{
	tt_value   *b = member(doc_less_drop(call), call, TT_KEY("b"), TT_BOOL);

	if (b != NULL)
		b->u.b = !b->u.b;
	return TT_OK;
}

/* drop, and the last member's key loses its last byte */
TT_TRANSFORM(doc_shortkey)
{
	tt_value   *doc = doc_less_drop(call);

	if (doc != NULL && doc->u.obj.count > 0 &&
		doc->u.obj.members[doc->u.obj.count - 1].key.len > 1)
		doc->u.obj.members[doc->u.obj.count - 1].key.len--;
	return TT_OK;
}
