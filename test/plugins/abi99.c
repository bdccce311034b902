/*
 * abi99.c
 *	  A plugin built for another ABI version.  The host must refuse it
 *	  without ever calling it: its function aborts the process.
 */
#include <stdlib.h>

#include "talaria_transform.h"

TT_EXTERN_C TT_EXPORT const tt_plugin_info talaria_plugin_info = {
	99, sizeof(tt_value), sizeof(tt_call), sizeof(tt_host)
};

TT_TRANSFORM(trim)
{
	(void) call;
	abort();
}
