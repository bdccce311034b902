/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  talaria.* settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "talaria.h"
#include "utils/guc.h"

int			tt_lua_memory_limit_kb = 65536;
int			tt_native_memory_limit_kb = 262144;
int			tt_backend_memory_limit_kb = 524288;
int			tt_transform_timeout_ms = 0;
bool		tt_lua_cache = true;
bool		tt_lua_lazy_objects = true;
bool		tt_copy_fast_path = true;
bool		tt_copy_fast_reader = true;
bool		tt_insert_fast_path = true;
char	   *tt_native_library_path = NULL;
int			tt_ingest_batch_size = 1000;
int			tt_partition_worker_lock_timeout_ms = 1000;
int			tt_partition_worker_idle_timeout_ms = 2000;
char	   *tt_scheduler_databases = NULL;
bool		tt_replaying = false;
char	   *tt_scheduler_role = NULL;
int			tt_scheduler_interval_s = 300;

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
	DefineCustomBoolVariable("talaria.lua_lazy_objects",
							 "Give Lua transforms the nested objects of a row lazily.",
							 "A member of a nested object becomes a Lua value when the script "
							 "reads it, and untouched members go back as they came (same "
							 "results).  Off: a nested object becomes a whole table when its "
							 "field is read (for comparison).",
							 &tt_lua_lazy_objects,
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
	DefineCustomBoolVariable("talaria.insert_fast_path",
							 "Run INSERT into a pipeline source without its row trigger.",
							 "When only the pipeline's own triggers would fire, the rows of "
							 "the INSERT's plan go straight to the pipeline (same results).  "
							 "Off: always through the trigger.",
							 &tt_insert_fast_path,
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
	DefineCustomIntVariable("talaria.partition_worker_lock_timeout",
							"Longest wait of the partition worker for a lock.",
							"Past it the ingesting transaction creates the partition itself "
							"(the lock may be its own).",
							&tt_partition_worker_lock_timeout_ms,
							1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.partition_worker_idle_timeout",
							"Time a database's partition worker stays idle before it exits.",
							"The next partition on demand starts it again.  Keep it below "
							"the 5 s DROP DATABASE waits for other sessions to leave.",
							&tt_partition_worker_idle_timeout_ms,
							2000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("talaria.scheduler_databases",
							   "Databases whose time tables the maintenance scheduler maintains.",
							   "A comma-separated list; empty (the default) leaves the scheduler idle. "
							   "Needs talaria_transform in shared_preload_libraries.",
							   &tt_scheduler_databases,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("talaria.scheduler_role",
							   "Role the maintenance scheduler connects as.",
							   "Empty: the bootstrap superuser, which maintains every time table "
							   "(each as its owner); a role maintains the tables it owns.",
							   &tt_scheduler_role,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("talaria.scheduler_interval",
							"Time between two maintenance runs of the scheduler.",
							NULL,
							&tt_scheduler_interval_s,
							300, 1, 86400 * 7,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("talaria.replaying",
							 "Pipelines raise errors instead of storing dead letters.",
							 "Set by talaria.replay_dead_letters for its own duration.",
							 &tt_replaying,
							 false,
							 PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	/* sizes shared memory: only while preloading */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("talaria.stats_max",
								"Transforms and pipelines whose statistics shared memory holds (each).",
								NULL,
								&tt_stats_max,
								1000, 10, 1000000,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);
	MarkGUCPrefixReserved("talaria");
}
