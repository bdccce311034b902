/*-------------------------------------------------------------------------
 *
 * partition.c
 *	  Time-partitioned tables: which partition covers a row, and creating
 *	  the missing one while ingesting.
 *
 * The DDL itself (validation, naming, premake, retention) is SQL in the
 * install script (talaria._create_partition, create_time_table,
 * run_maintenance); this file decides when and where it runs.
 *
 * Partitions on demand: a row whose time has no partition makes the
 * ingesting backend start a background worker that creates the partition
 * in a transaction of its own, serialized per target by an advisory lock:
 * CREATE TABLE standalone, then ALTER TABLE ... ATTACH PARTITION, which
 * takes SHARE UPDATE EXCLUSIVE on the parent.  That lock does not
 * conflict with the ROW EXCLUSIVE lock of concurrent ingesters, so they
 * go on writing; once the worker commits, the partition exists for every
 * session at once.  Creating it in the ingesting transaction instead would
 * make every other ingester of that day wait for that transaction's
 * commit (and two ingesters creating two days in opposite order could
 * deadlock).  An ingest that later aborts leaves an empty partition
 * behind, as premake does.
 *
 * The worker runs as the target's owner (who may run that DDL); the
 * ingesting user needs only INSERT on the target.  When the ingesting
 * transaction itself holds a lock the worker would wait for (it created
 * the table, or ran DDL on it), the partition is created in the ingesting
 * transaction instead: waiting for the worker would then never end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "ingest.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void tt_partition_worker_main(Datum arg);

typedef struct TTWorkerArgs
{
	Oid			dboid;
	Oid			roleid;
	Oid			relid;
	Timestamp	key;
} TTWorkerArgs;

bool
tt_time_table_get(Relation rel, TTTimeTable *tt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	bool		found = false;
	bool		isnull;
	int			ret;

	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	SPI_connect();
	ret = SPI_execute_with_args("SELECT time_column::text, xmin FROM talaria.time_tables"
								" WHERE target = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read talaria.time_tables: %s",
			 SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		char	   *col = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc,
															1, &isnull));
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), col);

		if (attnum != InvalidAttrNumber)
		{
			tt->relid = RelationGetRelid(rel);
			tt->attnum = attnum;
			tt->typid = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
			/* registered by this transaction: a worker could not see it */
			tt->registered_here = TransactionIdIsCurrentTransactionId(
				DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc,
													2, &isnull)));
			found = true;
		}
	}
	SPI_finish();
	return found;
}

int64
tt_time_key(Datum d, Oid typid)
{
	if (typid == DATEOID)
	{
		DateADT		date = DatumGetDateADT(d);

		if (DATE_IS_NOBEGIN(date))
			return PG_INT64_MIN;
		if (DATE_IS_NOEND(date))
			return PG_INT64_MAX;
		return (int64) date * USECS_PER_DAY;
	}
	return DatumGetInt64(d);
}

static Datum
key_to_datum(int64 key, Oid typid)
{
	if (typid == DATEOID)
	{
		int64		days = key / USECS_PER_DAY;

		if (key < 0 && key % USECS_PER_DAY != 0)
			days--;
		return DateADTGetDatum((DateADT) days);
	}
	return Int64GetDatum(key);
}

bool
tt_partition_covers(Relation rel, PartitionDesc pd, const TTTimeTable *tt,
					int64 key, int64 *lo, int64 *hi)
{
	PartitionKey pkey = RelationGetPartitionKey(rel);
	PartitionBoundInfo bi = pd->boundinfo;
	Datum		value = key_to_datum(key, tt->typid);
	bool		is_equal;
	int			off;
	int			partidx;

	if (pd->nparts == 0 || bi == NULL)
		return false;
	off = partition_range_datum_bsearch(pkey->partsupfunc, pkey->partcollation,
										bi, 1, &value, &is_equal);
	partidx = bi->indexes[off + 1];
	if (partidx >= 0)
	{
		*lo = (off >= 0 && bi->kind[off][0] == PARTITION_RANGE_DATUM_VALUE) ?
			tt_time_key(bi->datums[off][0], tt->typid) : PG_INT64_MIN;
		*hi = (off + 1 < bi->ndatums &&
			   bi->kind[off + 1][0] == PARTITION_RANGE_DATUM_VALUE) ?
			tt_time_key(bi->datums[off + 1][0], tt->typid) : PG_INT64_MAX;
		return true;
	}
	if (bi->default_index >= 0)
	{
		/* the default partition takes it; do not cache a range */
		*lo = key;
		*hi = key;
		return true;
	}
	return false;
}

/* Runs talaria._create_partition(target, key) through SPI. */
static void
create_partition_sql(Oid relid, Timestamp key)
{
	Oid			argtypes[2] = {OIDOID, TIMESTAMPOID};
	Datum		args[2];
	int			ret;

	args[0] = ObjectIdGetDatum(relid);
	args[1] = TimestampGetDatum(key);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT talaria._create_partition($1::regclass, $2)",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "talaria._create_partition failed: %s",
			 SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * Would a worker wait for a lock this transaction holds?  It needs SHARE
 * UPDATE EXCLUSIVE on the parent and must see the parent's catalog rows.
 */
static bool
must_create_here(Relation rel, const TTTimeTable *tt)
{
	if (rel->rd_createSubid != InvalidSubTransactionId || tt->registered_here)
		return true;
	return CheckRelationLockedByMe(rel, ShareUpdateExclusiveLock, true);
}

void
tt_partition_create(const TTTimeTable *tt, int64 key)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TTWorkerArgs args;
	Relation	rel;
	bool		here;
	pid_t		pid;
	BgwHandleStatus status;

	rel = table_open(tt->relid, NoLock);
	here = must_create_here(rel, tt);
	args.dboid = MyDatabaseId;
	args.roleid = rel->rd_rel->relowner;
	args.relid = tt->relid;
	args.key = (Timestamp) key;
	table_close(rel, NoLock);

	if (here)
	{
		create_partition_sql(tt->relid, args.key);
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "talaria_transform");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tt_partition_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "talaria partition creator");
	snprintf(worker.bgw_type, BGW_MAXLEN, "talaria partition creator");
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		/* no worker slot free: correct, but other ingesters may wait */
		ereport(LOG,
				(errmsg("no background worker slot free; creating the partition of \"%s\" in the ingesting transaction",
						get_rel_name(tt->relid)),
				 errhint("Raise max_worker_processes.")));
		create_partition_sql(tt->relid, args.key);
		return;
	}
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_STARTED)
		status = WaitForBackgroundWorkerShutdown(handle);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("postmaster exited while creating a partition")));
	/* see what the worker committed */
	AcceptInvalidationMessages();
}

/*
 * The worker: one transaction that creates the partition covering the key
 * (talaria._create_partition takes the per-target advisory lock and does
 * nothing if another session already made it).  Errors go to the server
 * log; the ingesting backend then finds no partition and reports it.
 */
void
tt_partition_worker_main(Datum arg)
{
	TTWorkerArgs args;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.roleid, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "talaria: creating a partition");
	create_partition_sql(args.relid, args.key);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
