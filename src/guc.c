/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  talaria.* settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "talaria.h"
#include "utils/guc.h"

int			tt_lua_memory_limit_kb = 65536;
int			tt_native_memory_limit_kb = 262144;
int			tt_backend_memory_limit_kb = 524288;
int			tt_transform_timeout_ms = 0;
bool		tt_lua_cache = true;
bool		tt_copy_fast_path = true;
bool		tt_copy_fast_reader = true;
char	   *tt_native_library_path = NULL;
int			tt_ingest_batch_size = 1000;

void
tt_define_gucs(void)
{
	DefineCustomIntVariable("talaria.lua_memory_limit",
							"Memory limit of each Lua transform's state.",
							"Over it, the transform fails with \"not enough memory\".",
							&tt_lua_memory_limit_kb,
							65536, 1024, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.native_memory_limit",
							"Memory one native transform call may take from the per-row arena.",
							"Over it, host->alloc returns NULL and the call fails.",
							&tt_native_memory_limit_kb,
							262144, 1024, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.backend_memory_limit",
							"Memory all transforms of one backend may hold together.",
							"Lua states, json, per-row arenas of running calls; over it, "
							"idle Lua states of other transforms are dropped, then the call fails.",
							&tt_backend_memory_limit_kb,
							524288, 1024, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.transform_timeout",
							"Longest time one transform call may run (0 = no limit).",
							NULL,
							&tt_transform_timeout_ms,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("talaria.lua_cache",
							 "Reuse each Lua transform's compiled state across calls.",
							 "Off runs every call in a fresh state (for measurement).",
							 &tt_lua_cache,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("talaria.copy_fast_path",
							 "Run COPY FROM into a pipeline source without its row trigger.",
							 "When only the pipeline's own triggers would fire, COPY's parsed "
							 "values go straight to the pipeline (same results).  Off: always "
							 "through the trigger.",
							 &tt_copy_fast_path,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("talaria.copy_fast_reader",
							 "Parse text and CSV COPY input into a pipeline source with talaria's reader.",
							 "It accepts the same input with the same errors as PostgreSQL's, "
							 "faster.  Off: PostgreSQL's own reader (NextCopyFrom).",
							 &tt_copy_fast_reader,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("talaria.native_library_path",
							   "Directories native transform libraries may be loaded from.",
							   "A colon-separated list; $libdir is the server's library directory.",
							   &tt_native_library_path,
							   "$libdir",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.ingest_batch_size",
							"Rows buffered per target partition before an ingest pipeline inserts them.",
							NULL,
							&tt_ingest_batch_size,
							1000, 1, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("talaria");
}
