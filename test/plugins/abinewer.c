/*
 * abinewer.c
 *	  A plugin built against a newer revision of talaria_transform.h (its
 *	  tt_host has members this server does not have).  Refused, never
 *	  called.
 */
#include <stdlib.h>

#include "talaria_transform.h"

TT_EXTERN_C TT_EXPORT const tt_plugin_info talaria_plugin_info = {
	TT_ABI_VERSION, sizeof(tt_value), sizeof(tt_call), sizeof(tt_host) + 16
};

TT_TRANSFORM(trim)
{
	(void) call;
	abort();
}
