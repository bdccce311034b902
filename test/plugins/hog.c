/*
 * hog.c
 *	  Plugins that take memory from the per-row arena until the host says
 *	  no (test/t/062_lua_memory.pl): talaria.native_memory_limit must make
 *	  host->alloc return NULL long before the machine runs out.
 */
#include <stddef.h>
#include <string.h>

#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

/* 1 MB at a time until NULL (touching each so it is really there) */
static long
take_all(tt_call *call)
{
	long		mb = 0;
	char	   *p;

	while ((p = call->host->alloc(call, (size_t) 1 << 20)) != NULL)
	{
		memset(p, 1, (size_t) 1 << 20);
		if (++mb >= 512)		/* never NULL: give up, the test failed */
			break;
	}
	return mb;
}

/* the documented way: on NULL, report and return TT_ERROR */
TT_TRANSFORM(hog_error)
{
	long		mb = take_all(call);

	return call->host->error(call, "got NULL after %ld MB", mb);
}

/* a careless one: ignores the NULL and returns the row as it is */
TT_TRANSFORM(hog_ignore)
{
	(void) take_all(call);
	return TT_OK;
}

/* a small allocation per row, to show the budget is per call */
TT_TRANSFORM(small)
{
	tt_value   *slot = call->host->put(call, call->row, TT_KEY("ok"));

	if (slot == NULL || call->host->alloc(call, 1000) == NULL)
		return TT_ERROR;
	slot->type = TT_BOOL;
	slot->u.b = 1;
	return TT_OK;
}
