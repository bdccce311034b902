/*
 * host.c: the C half of spin.go (ABI check and host function shims).
 */
#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN int
go_error(tt_call *call, const char *msg)
{
	return call->host->error(call, "%s", msg);
}

HIDDEN int
go_interrupted(tt_call *call)
{
	return call->host->interrupted(call);
}

HIDDEN int
go_put_int(tt_call *call, tt_value *obj, const char *key, size_t keylen, int64_t n)
{
	tt_value   *slot = call->host->put(call, obj, key, keylen);

	if (slot == NULL)
		return 0;
	slot->type = TT_INT;
	slot->u.i = n;
	return 1;
}
