/*
 * bad.c
 *	  Misbehaving transforms for the error tests (sql/native_errors.sql):
 *	  each returns an error or garbage the host must refuse with a clear
 *	  ERROR naming the transform, leaving the backend running.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

/* a data symbol, to register as if it were a function */
TT_EXPORT const int not_a_function = 42;

static tt_value *
new_value(tt_call *call, uint32_t type)
{
	tt_value   *v = call->host->alloc(call, sizeof(tt_value));

	if (v)
	{
		memset(v, 0, sizeof(*v));
		v->type = type;
	}
	return v;
}

/* the right way to fail */
TT_TRANSFORM(fail_message)
{
	tt_value   *id = call->host->get(call->row, TT_KEY("id"));

	return call->host->error(call, "row %lld is not welcome",
							 id && id->type == TT_INT ? (long long) id->u.i : -1LL);
}

TT_TRANSFORM(fail_silent)
{
	(void) call;
	return TT_ERROR;
}

TT_TRANSFORM(drop_row)
{
	(void) call;
	return TT_DROP;
}

TT_TRANSFORM(bad_status)
{
	(void) call;
	return 7;
}

TT_TRANSFORM(null_result)
{
	call->result = NULL;
	return TT_OK;
}

TT_TRANSFORM(bad_tag)
{
	call->result = new_value(call, 42);
	return TT_OK;
}

TT_TRANSFORM(bad_tag_nested)
{
	tt_value   *slot = call->host->put(call, call->row, TT_KEY("payload"));

	call->host->set_array(slot);
	slot = call->host->append(call, slot);
	slot->type = 99;
	return TT_OK;
}

TT_TRANSFORM(bad_utf8)
{
	call->host->set_string(call, call->host->put(call, call->row, TT_KEY("name")),
						   "caf\xc3", 4);
	return TT_OK;
}

TT_TRANSFORM(nul_byte)
{
	call->host->set_string(call, call->host->put(call, call->row, TT_KEY("name")),
						   "a\0b", 3);
	return TT_OK;
}

TT_TRANSFORM(null_string)
{
	tt_value   *v = new_value(call, TT_STRING);

	v->u.str.ptr = NULL;
	v->u.str.len = 5;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(null_key)
{
	tt_value   *v = new_value(call, TT_OBJECT);
	tt_member  *m = call->host->alloc(call, sizeof(tt_member));

	memset(m, 0, sizeof(*m));
	m->key.ptr = NULL;
	m->key.len = 3;
	v->u.obj.members = m;
	v->u.obj.count = v->u.obj.cap = 1;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(null_members)
{
	tt_value   *v = new_value(call, TT_OBJECT);

	v->u.obj.members = NULL;
	v->u.obj.count = v->u.obj.cap = 3;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(count_over_cap)
{
	tt_value   *v = new_value(call, TT_ARRAY);

	v->u.arr.items = new_value(call, TT_NULL);
	v->u.arr.cap = 1;
	v->u.arr.count = 4000000000u;
	call->result = v;
	return TT_OK;
}

/* a string claiming 2 GB: refused by its length, never read */
TT_TRANSFORM(huge_string)
{
	tt_value   *v = new_value(call, TT_STRING);

	v->u.str.ptr = "x";
	v->u.str.len = 0x7fffffffu;
	call->result = v;
	return TT_OK;
}

/* an object that contains itself */
TT_TRANSFORM(cycle)
{
	tt_value   *v = new_value(call, TT_OBJECT);
	tt_member  *m = call->host->alloc(call, sizeof(tt_member));

	m->key.ptr = "self";
	m->key.len = 4;
	m->value = *v;
	m->value.u.obj.members = m;
	m->value.u.obj.count = m->value.u.obj.cap = 1;
	v->u.obj.members = m;
	v->u.obj.count = v->u.obj.cap = 1;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(nan_float)
{
	tt_value   *v = new_value(call, TT_FLOAT);

	v->u.f = NAN;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(bad_timestamp)
{
	tt_value   *v = new_value(call, TT_TIMESTAMP);

	v->u.ts = INT64_MIN;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(bad_numeric)
{
	tt_value   *v = new_value(call, TT_NUMERIC);

	v->u.str.ptr = "12abc";
	v->u.str.len = 5;
	call->result = v;
	return TT_OK;
}

/* asks the arena for more than it will ever give */
TT_TRANSFORM(arena_exhausted)
{
	if (call->host->alloc(call, (size_t) 1 << 40) == NULL)
		return TT_ERROR;
	return TT_OK;
}
