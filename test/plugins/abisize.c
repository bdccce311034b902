/*
 * abisize.c
 *	  A plugin of the right ABI version whose tt_value has another size
 *	  (a header edited by hand).  Refused, never called.
 */
#include <stdlib.h>

#include "talaria_transform.h"

TT_EXTERN_C TT_EXPORT const tt_plugin_info talaria_plugin_info = {
	TT_ABI_VERSION, sizeof(tt_value) + 8, sizeof(tt_call), sizeof(tt_host)
};

TT_TRANSFORM(trim)
{
	(void) call;
	abort();
}
