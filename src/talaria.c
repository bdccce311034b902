/*-------------------------------------------------------------------------
 *
 * talaria.c
 *	  Module entry point.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "ingest.h"
#include "nodes/nodes.h"
#include "talaria.h"
#include "tcop/utility.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static ProcessUtility_hook_type prev_process_utility = NULL;

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

	if (tt_copy_fast_path && IsA(stmt, CopyStmt) &&
		tt_ingest_copy((CopyStmt *) stmt, query_string, query_env,
					   prev_process_utility != NULL, &processed))
	{
		if (qc)
			SetQueryCompletion(qc, CMDTAG_COPY, processed);
		return;
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, query_string, read_only_tree, context,
							 params, query_env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query_string, read_only_tree, context,
								params, query_env, dest, qc);
}

void
_PG_init(void)
{
	tt_define_gucs();
	tt_catalog_init();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tt_process_utility;
}
