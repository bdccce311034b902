/*
 * noinfo.c
 *	  A shared object that is not a talaria_transform plugin: it has a
 *	  function of the right shape but no TT_DECLARE_PLUGIN().
 */
#include "talaria_transform.h"

TT_TRANSFORM(trim)
{
	(void) call;
	return TT_OK;
}
