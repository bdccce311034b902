/*
 * host.c: the C half of the Go plugin.  The ABI check (TT_DECLARE_PLUGIN
 * defines a variable, which a cgo file that uses //export may not), and
 * the host functions Go calls: Go cannot call C function pointers.
 */
#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN int
go_error(tt_call *call, const char *msg)
{
	return call->host->error(call, "%s", msg);
}

HIDDEN tt_value *
go_alloc_value(tt_call *call)
{
	return call->host->alloc(call, sizeof(tt_value));
}

HIDDEN int
go_set_string(tt_call *call, tt_value *dst, const char *s, size_t len)
{
	return call->host->set_string(call, dst, s, len);
}

HIDDEN tt_value *
go_get(tt_call *call, const tt_value *obj, const char *key, size_t keylen)
{
	return call->host->get(obj, key, keylen);
}
