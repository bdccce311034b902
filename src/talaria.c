/*-------------------------------------------------------------------------
 *
 * talaria.c
 *	  Module entry point.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "talaria.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	tt_define_gucs();
	tt_catalog_init();
}
