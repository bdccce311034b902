/*-------------------------------------------------------------------------
 *
 * talaria.c
 *	  Module entry point.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "ingest.h"
#include "nodes/nodes.h"
#include "talaria.h"
#include "executor/executor.h"
#include "tcop/utility.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;

/*
 * INSERT into a pipeline source: the row trigger stores each row in the
 * target and keeps none in the source, so the executor counts none (when
 * only the pipeline's triggers would fire, its rows go to the pipeline
 * without the trigger: tt_ingest_insert_prepare).  The
 * command tag (set from es_processed right after ExecutorRun) reports the
 * rows the pipelines stored during the statement instead, as a plain
 * INSERT into the target would.
 */
static void
tt_executor_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				bool execute_once)
{
	uint64		before = tt_ingest_rows_uncounted;

	if (tt_insert_fast_path && queryDesc->operation == CMD_INSERT)
		tt_ingest_insert_prepare(queryDesc);
	if (prev_executor_run)
		prev_executor_run(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
	if (queryDesc->operation == CMD_INSERT && tt_ingest_rows_uncounted > before)
		queryDesc->estate->es_processed += tt_ingest_rows_uncounted - before;
}

/*
 * COPY FROM into a pipeline source may run without the row trigger (see
 * tt_ingest_copy); everything else goes on down the chain.  Only when no
 * other library's hook is below ours: running the COPY here would skip that
 * hook, and its other hooks may rely on it (pgaudit's permission-check hook
 * crashed on a COPY its ProcessUtility hook had not seen).  Libraries whose
 * hooks wrap ours (loaded later) see every COPY.
 */
static void
tt_process_utility(PlannedStmt *pstmt, const char *query_string,
				   bool read_only_tree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *query_env,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	uint64		processed;
	uint64		before = tt_ingest_rows_uncounted;

	if (tt_copy_fast_path && IsA(stmt, CopyStmt) &&
		tt_ingest_copy((CopyStmt *) stmt, query_string, query_env,
					   prev_process_utility != NULL, &processed))
	{
		if (qc)
			SetQueryCompletion(qc, CMDTAG_COPY, processed);
		return;
	}
	/* the partition worker must not keep the database from the command */
	if (IsA(stmt, DropdbStmt) || IsA(stmt, CreatedbStmt) || IsA(stmt, RenameStmt))
		tt_partition_worker_release_db(stmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, query_string, read_only_tree, context,
							 params, query_env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query_string, read_only_tree, context,
								params, query_env, dest, qc);
	/* COPY through the pipeline trigger: report the rows stored too */
	if (qc && qc->commandTag == CMDTAG_COPY && IsA(stmt, CopyStmt) &&
		((CopyStmt *) stmt)->is_from && tt_ingest_rows_uncounted > before)
		qc->nprocessed += tt_ingest_rows_uncounted - before;
}

void
_PG_init(void)
{
	tt_define_gucs();
	tt_catalog_init();
	tt_pipeline_cache_init();
	/* preloaded: the maintenance scheduler starts with the server */
	if (process_shared_preload_libraries_in_progress)
	{
		tt_stats_shmem_init();
		tt_partition_worker_preload();
		tt_scheduler_register();
	}
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tt_process_utility;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = tt_executor_run;
}
