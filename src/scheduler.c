/*-------------------------------------------------------------------------
 *
 * scheduler.c
 *	  The maintenance scheduler: a background worker that runs
 *	  talaria.run_maintenance for every time table on an interval, with no
 *	  pg_cron or cron needed.
 *
 * With talaria_transform in shared_preload_libraries a launcher worker
 * starts with the server.  Every talaria.scheduler_interval it starts, one
 * after the other, a worker per database of talaria.scheduler_databases;
 * that worker connects as talaria.scheduler_role (empty: the bootstrap
 * superuser, which maintains every time table) and calls
 * talaria.run_maintenance(target) for each time table whose maintenance is
 * on, one transaction per table.  run_maintenance acts as each table's
 * owner and records every table's run (or failure) in
 * talaria.maintenance_runs; the worker logs a summary line per database.
 * An empty talaria.scheduler_databases (the default) leaves the launcher
 * idle; settings are read again on reload (SIGHUP).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "talaria.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

PGDLLEXPORT void tt_scheduler_main(Datum arg);
PGDLLEXPORT void tt_scheduler_db_main(Datum arg);

typedef struct TTSchedulerArgs
{
	char		dbname[NAMEDATALEN];
	char		role[NAMEDATALEN];	/* empty: bootstrap superuser */
} TTSchedulerArgs;

/* Registers the launcher; from _PG_init while preloading. */
void
tt_scheduler_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "talaria_transform");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tt_scheduler_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "talaria maintenance scheduler");
	snprintf(worker.bgw_type, BGW_MAXLEN, "talaria maintenance scheduler");
	RegisterBackgroundWorker(&worker);
}

/* Runs one database's maintenance in a worker and waits for it. */
static void
run_database(const char *dbname)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TTSchedulerArgs args;
	pid_t		pid;
	BgwHandleStatus status;

	memset(&args, 0, sizeof(args));
	strlcpy(args.dbname, dbname, sizeof(args.dbname));
	strlcpy(args.role, tt_scheduler_role ? tt_scheduler_role : "", sizeof(args.role));

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "talaria_transform");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tt_scheduler_db_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "talaria maintenance of %s", dbname);
	snprintf(worker.bgw_type, BGW_MAXLEN, "talaria maintenance");
	worker.bgw_notify_pid = MyProcPid;
	StaticAssertStmt(sizeof(TTSchedulerArgs) <= BGW_EXTRALEN, "bgw_extra too small");
	memcpy(worker.bgw_extra, &args, sizeof(args));

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("talaria scheduler: no background worker slot free for the maintenance of database \"%s\"",
						dbname),
				 errhint("Raise max_worker_processes.")));
		return;
	}
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_STARTED)
		status = WaitForBackgroundWorkerShutdown(handle);
	if (status == BGWH_POSTMASTER_DIED)
		proc_exit(1);
}

/*
 * The postmaster tells us of our workers' start and exit with SIGUSR1; a
 * worker without a database connection gets a handler that (with
 * signalfd latches) does not wake WaitLatch, so the launcher would wait
 * for its second worker forever.
 */
static void
launcher_sigusr1(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

void
tt_scheduler_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGUSR1, launcher_sigusr1);
	BackgroundWorkerUnblockSignals();
	ereport(LOG, (errmsg("talaria maintenance scheduler started")));

	for (;;)
	{
		List	   *dbs = NIL;
		char	   *list;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		list = pstrdup(tt_scheduler_databases ? tt_scheduler_databases : "");
		if (!SplitIdentifierString(list, ',', &dbs))
			ereport(LOG,
					(errmsg("talaria scheduler: invalid talaria.scheduler_databases \"%s\"",
							tt_scheduler_databases)));
		else
			foreach(lc, dbs)
			{
				CHECK_FOR_INTERRUPTS();
				run_database((const char *) lfirst(lc));
			}
		list_free(dbs);
		pfree(list);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) tt_scheduler_interval_s * 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * The time tables this role may maintain (all, for a superuser) whose
 * maintenance is on; NIL without the extension.  In its own transaction.
 */
static List *
time_tables_to_maintain(bool *installed)
{
	List	   *oids = NIL;
	uint64		i;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension"
					" WHERE extname OPERATOR(pg_catalog.=) 'talaria_transform'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1 &&
		SPI_execute("SELECT t.target::pg_catalog.oid FROM talaria.time_tables t"
					" JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.target"
					" WHERE t.maintenance AND pg_catalog.pg_has_role(c.relowner, 'USAGE')"
					" ORDER BY t.target::pg_catalog.text", true, 0) == SPI_OK_SELECT)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*installed = true;
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			oids = lappend_oid(oids,
							   DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															  SPI_tuptable->tupdesc,
															  1, &isnull)));
		}
		MemoryContextSwitchTo(old);
	}
	else
		ereport(DEBUG1,
				(errmsg("talaria scheduler: extension \"talaria_transform\" is not installed in database \"%s\"",
						get_database_name(MyDatabaseId))));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return oids;
}

/*
 * One table in a transaction of its own: true if its maintenance succeeded
 * (a table's own failure is caught and recorded inside run_maintenance).
 */
static bool
maintain_one(Oid relid)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		argv[1];
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;

	argv[0] = ObjectIdGetDatum(relid);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		bool		isnull;

		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute_with_args("SELECT talaria.run_maintenance($1)", 1, argtypes,
								  argv, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "talaria.run_maintenance failed");
		ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* the table went away meanwhile, or worse: log, go on */
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

void
tt_scheduler_db_main(Datum arg)
{
	TTSchedulerArgs args;
	List	   *tables;
	ListCell   *lc;
	int			done = 0;
	int			failed = 0;
	bool		installed = false;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(args.dbname,
										 args.role[0] ? args.role : NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_OVERRIDE);
	pgstat_report_activity(STATE_RUNNING, "talaria: maintenance");

	tables = time_tables_to_maintain(&installed);
	if (!installed)
		proc_exit(0);
	foreach(lc, tables)
	{
		CHECK_FOR_INTERRUPTS();
		if (maintain_one(lfirst_oid(lc)))
			done++;
		else
			failed++;
	}
	ereport(LOG,
			(errmsg("talaria scheduler: database \"%s\": %d time tables maintained, %d failed (see talaria.maintenance_runs)",
					args.dbname, done, failed)));
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
