/*-------------------------------------------------------------------------
 *
 * partition_worker.c
 *	  Partitions on demand: one long-lived worker per database that creates
 *	  the partitions ingesting sessions ask for, the queue of requests in
 *	  shared memory, and the ingest side's batch of missing partitions.
 *
 * Why a worker at all (rather than the ingesting transaction) is told in
 * partition.c: the partition must be committed on its own, so that no
 * ingester waits for another's commit and an ingest that rolls back keeps
 * it.  Starting a background worker per partition cost about 50 ms (fork,
 * connection, cold catalog caches, the DDL planned afresh); the DDL itself
 * in a warm session is about 2 ms.  So the worker of a database stays:
 *
 *	- an ingester puts a request (the target and up to PW_MAX_KEYS
 *	  partition keys) in a free slot of the queue in shared memory, starts
 *	  the database's worker if there is none, and sets its latch;
 *	- the worker takes every queued request of its database, creates their
 *	  partitions in one transaction (each request in a subtransaction of
 *	  its own, so that one failure spoils no other request), commits, marks
 *	  them done or failed (SQLSTATE, message, detail, hint), and wakes the
 *	  requesters through a condition variable;
 *	- idle for talaria.partition_worker_idle_timeout it exits, freeing its
 *	  background worker slot; the next request starts another.
 *
 * The ingester does not wait for each partition: the batch (ingest.c keeps
 * the rows of missing partitions aside) sends its missing keys as they
 * come, one request in flight, and waits only when it needs the
 * partitions (a full buffer, the end of the statement).
 *
 * Nothing may hang.  The requester sleeps interruptibly (a cancel leaves
 * the request to the worker, which frees it when done); a worker that
 * exits with requests (pg_terminate_backend, an error at commit) marks
 * them lost, and the requester creates those partitions in its own
 * transaction, as it does after the worker's lock timeout or when no
 * worker can start (no background worker slot, no room in the queue's
 * shared memory).  A worker that never started is noticed by its
 * launcher (its handle) or, after PW_START_TIMEOUT, by anyone.
 *
 * The queue lives in the main shared memory segment: reserved at startup
 * when talaria_transform is preloaded, otherwise taken at first use from
 * the segment's spare room (17 kB of its 100 kB reserve) under
 * AddinShmemInitLock.
 *
 * A worker holds a connection to its database, which DROP DATABASE (and
 * CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME) refuse while
 * it lasts: the utility hook asks the worker to exit first (see
 * tt_partition_worker_release_db), and the idle timeout is shorter than
 * the 5 s such commands wait for other sessions to leave.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "ingest.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define PW_MAX_WORKERS	8		/* databases with a worker at once */
#define PW_MAX_REQUESTS 16		/* requests in flight, all databases */
#define PW_MAX_KEYS		32		/* partitions per request */
#define PW_TEXT			256		/* error texts carried back */
#define PW_POLL_MS		250		/* how often a waiter looks at the worker */
#define PW_START_TIMEOUT_MS 10000	/* a worker not up by then never will be */

typedef enum PWState
{
	PW_FREE,
	PW_QUEUED,
	PW_RUNNING,
	PW_DONE,
	PW_FAILED,
	PW_LOST						/* the worker exited (or never started) */
} PWState;

typedef struct PWRequest
{
	PWState		state;
	bool		abandoned;		/* the requester left: the worker frees it */
	int			requester;		/* pid */
	Oid			dboid;
	Oid			relid;
	int			nkeys;
	int64		keys[PW_MAX_KEYS];
	/* PW_FAILED: the first error */
	int			sqlerrcode;
	char		message[PW_TEXT];
	char		detail[PW_TEXT];
	char		hint[PW_TEXT];
} PWRequest;

typedef struct PWWorker
{
	Oid			dboid;			/* InvalidOid: the entry is free */
	int			pid;			/* 0 while starting */
	bool		stop;			/* exit now (its database is going) */
	TimestampTz launched;
	Latch	   *latch;
} PWWorker;

typedef struct PWShared
{
	slock_t		mutex;			/* everything below */
	ConditionVariable cv;		/* a request ended, a slot or worker freed */
	PWWorker	workers[PW_MAX_WORKERS];
	PWRequest	requests[PW_MAX_REQUESTS];
} PWShared;

#define PW_SHMEM_NAME "talaria_transform partition worker"

static PWShared *pw = NULL;
static bool pw_unavailable = false;
static shmem_request_hook_type prev_shmem_request = NULL;

/* the requests this backend owns, by slot: the subtransaction that made them */
static SubTransactionId pw_owned[PW_MAX_REQUESTS];
static bool pw_callbacks = false;

PGDLLEXPORT void tt_partition_worker_main(Datum arg);

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
static void
pw_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PWShared)));
}

/* From _PG_init while preloading: reserve the queue's room. */
void
tt_partition_worker_preload(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = pw_shmem_request;
}

static void
pw_attach_fn(void *arg)
{
	PWShared   *s;
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	s = ShmemInitStruct(PW_SHMEM_NAME, sizeof(PWShared), &found);
	if (!found)
	{
		memset(s, 0, sizeof(PWShared));
		SpinLockInit(&s->mutex);
		ConditionVariableInit(&s->cv);
	}
	LWLockRelease(AddinShmemInitLock);
	pw = s;
}

/*
 * Is the queue there (made now if need be)?  Needs a transaction: a
 * segment without room says "out of shared memory", which is logged once;
 * partitions are then created by the ingesting transactions.
 */
static bool
pw_attach(void)
{
	ErrorData  *edata;

	if (pw != NULL)
		return true;
	if (pw_unavailable)
		return false;
	if (!tt_run_in_subxact(pw_attach_fn, NULL, &edata))
	{
		pw_unavailable = true;
		ereport(LOG,
				(errmsg("talaria partition worker unavailable: %s", edata->message),
				 errdetail("Partitions are created by the ingesting transactions."),
				 errhint("Add talaria_transform to shared_preload_libraries.")));
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * The requests a backend owns: freed when it collects them, or abandoned
 * (to the worker) when its (sub)transaction ends first
 * ---------------------------------------------------------------------
 */
static void
pw_release(int slot)
{
	PWRequest  *r = &pw->requests[slot];

	pw_owned[slot] = InvalidSubTransactionId;
	SpinLockAcquire(&pw->mutex);
	if (r->state == PW_QUEUED || r->state == PW_RUNNING)
		r->abandoned = true;
	else
		r->state = PW_FREE;
	SpinLockRelease(&pw->mutex);
	ConditionVariableBroadcast(&pw->cv);
}

static void
pw_xact_callback(XactEvent event, void *arg)
{
	int			i;

	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PREPARE)
		return;
	for (i = 0; i < PW_MAX_REQUESTS; i++)
		if (pw_owned[i] != InvalidSubTransactionId)
			pw_release(i);
}

static void
pw_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			i;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (i = 0; i < PW_MAX_REQUESTS; i++)
		if (pw_owned[i] != InvalidSubTransactionId && pw_owned[i] >= mySubid)
			pw_release(i);
}

/* ---------------------------------------------------------------------
 * Workers: started on demand, gone on exit
 * ---------------------------------------------------------------------
 */

/*
 * Worker entry w is gone (its pid, 0: it never started): its database's
 * requests still queued or running are lost.  Under the mutex.
 */
static void
pw_worker_gone_locked(int w)
{
	Oid			dboid = pw->workers[w].dboid;
	int			i;

	for (i = 0; i < PW_MAX_REQUESTS; i++)
	{
		PWRequest  *r = &pw->requests[i];

		if (r->dboid != dboid || (r->state != PW_QUEUED && r->state != PW_RUNNING))
			continue;
		r->state = r->abandoned ? PW_FREE : PW_LOST;
	}
	memset(&pw->workers[w], 0, sizeof(PWWorker));
}

static bool
pw_launch(int w, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "talaria_transform");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tt_partition_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "talaria partition worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "talaria partition worker");
	worker.bgw_main_arg = Int32GetDatum(w);
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

typedef enum PWSubmit
{
	PW_SUBMITTED,
	PW_BUSY,					/* no request slot free now */
	PW_NO_WORKER				/* no worker can run: create here */
} PWSubmit;

/*
 * Queues a request for relid's keys and wakes (or starts) the database's
 * worker.  *slot is the request's slot; *handle the worker started, if
 * this call started it.
 */
static PWSubmit
pw_submit(Oid relid, const int64 *keys, int nkeys, int *slot,
		  BackgroundWorkerHandle **handle)
{
	int			s = -1;
	int			w = -1;
	int			free_w = -1;
	bool		launch = false;
	Latch	   *latch;
	PWRequest  *r;
	int			i;

	Assert(nkeys > 0 && nkeys <= PW_MAX_KEYS);
	SpinLockAcquire(&pw->mutex);
	for (i = 0; i < PW_MAX_REQUESTS && s < 0; i++)
		if (pw->requests[i].state == PW_FREE)
			s = i;
	for (i = 0; i < PW_MAX_WORKERS && w < 0; i++)
	{
		if (pw->workers[i].dboid == MyDatabaseId && !pw->workers[i].stop)
			w = i;
		else if (pw->workers[i].dboid == InvalidOid && free_w < 0)
			free_w = i;
	}
	if (s < 0 || (w < 0 && free_w < 0))
	{
		SpinLockRelease(&pw->mutex);
		return s < 0 ? PW_BUSY : PW_NO_WORKER;
	}
	if (w < 0)
	{
		w = free_w;
		pw->workers[w].dboid = MyDatabaseId;
		pw->workers[w].pid = 0;
		pw->workers[w].stop = false;
		pw->workers[w].launched = GetCurrentTimestamp();
		pw->workers[w].latch = NULL;
		launch = true;
	}
	r = &pw->requests[s];
	r->state = PW_QUEUED;
	r->abandoned = false;
	r->requester = MyProcPid;
	r->dboid = MyDatabaseId;
	r->relid = relid;
	r->nkeys = nkeys;
	memcpy(r->keys, keys, sizeof(int64) * nkeys);
	r->sqlerrcode = 0;
	latch = pw->workers[w].latch;
	SpinLockRelease(&pw->mutex);

	if (!pw_callbacks)
	{
		RegisterXactCallback(pw_xact_callback, NULL);
		RegisterSubXactCallback(pw_subxact_callback, NULL);
		pw_callbacks = true;
	}
	pw_owned[s] = GetCurrentSubTransactionId();
	*slot = s;
	if (launch && !pw_launch(w, handle))
	{
		/* the request is lost: the requester creates its partitions */
		SpinLockAcquire(&pw->mutex);
		if (pw->workers[w].dboid == MyDatabaseId && pw->workers[w].pid == 0)
			pw_worker_gone_locked(w);
		SpinLockRelease(&pw->mutex);
		ConditionVariableBroadcast(&pw->cv);
		ereport(LOG,
				(errmsg("no background worker slot free; creating the partition of \"%s\" in the ingesting transaction",
						get_rel_name(relid)),
				 errhint("Raise max_worker_processes.")));
	}
	else if (latch)
		SetLatch(latch);
	return PW_SUBMITTED;
}

/* The result of a request, copied out of shared memory. */
typedef struct PWResult
{
	PWState		state;
	int			sqlerrcode;
	char		message[PW_TEXT];
	char		detail[PW_TEXT];
	char		hint[PW_TEXT];
} PWResult;

/*
 * Has request slot ended?  If so its result is copied to *res and the
 * slot freed.  Also notices a worker that never started: its launcher by
 * the handle, anyone after PW_START_TIMEOUT_MS.
 */
static bool
pw_collect(int slot, BackgroundWorkerHandle *handle, PWResult *res)
{
	PWRequest  *r = &pw->requests[slot];
	bool		ended;
	bool		stopped = false;
	pid_t		pid;
	int			w;

	if (handle != NULL)
		stopped = GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED;
	SpinLockAcquire(&pw->mutex);
	if (r->state == PW_QUEUED)
	{
		for (w = 0; w < PW_MAX_WORKERS; w++)
		{
			PWWorker   *wk = &pw->workers[w];

			if (wk->dboid == r->dboid && wk->pid == 0 &&
				(stopped || TimestampDifferenceExceeds(wk->launched, GetCurrentTimestamp(),
														PW_START_TIMEOUT_MS)))
				pw_worker_gone_locked(w);
		}
	}
	ended = r->state == PW_DONE || r->state == PW_FAILED || r->state == PW_LOST;
	if (ended)
	{
		res->state = r->state;
		res->sqlerrcode = r->sqlerrcode;
		memcpy(res->message, r->message, PW_TEXT);
		memcpy(res->detail, r->detail, PW_TEXT);
		memcpy(res->hint, r->hint, PW_TEXT);
		r->state = PW_FREE;
		pw_owned[slot] = InvalidSubTransactionId;
	}
	SpinLockRelease(&pw->mutex);
	if (ended)
		ConditionVariableBroadcast(&pw->cv);
	return ended;
}

/* ---------------------------------------------------------------------
 * The worker
 * ---------------------------------------------------------------------
 */
static void
pw_worker_exit(int code, Datum arg)
{
	int			w = DatumGetInt32(arg);
	bool		mine;

	SpinLockAcquire(&pw->mutex);
	mine = pw->workers[w].pid == MyProcPid;
	if (mine)
		pw_worker_gone_locked(w);
	SpinLockRelease(&pw->mutex);
	if (mine)
		ConditionVariableBroadcast(&pw->cv);
}

static void
pw_create_fn(void *arg)
{
	PWRequest  *r = (PWRequest *) arg;
	int			i;

	for (i = 0; i < r->nkeys; i++)
	{
		CHECK_FOR_INTERRUPTS();
		tt_partition_create_here(r->relid, r->keys[i]);
	}
}

static void
pw_copy_text(char *dst, const char *src)
{
	if (src == NULL)
		dst[0] = '\0';
	else
		strlcpy(dst, src, PW_TEXT);
}

/*
 * Creates the partitions of the requests in slots[0..n) (marked running
 * by us) in one transaction, each request in a subtransaction, then ends
 * them.  An error outside the subtransactions (at commit) is FATAL in a
 * background worker: the exit callback then marks them lost.
 */
static void
pw_create(const int *slots, int n, MemoryContext cxt)
{
	ErrorData  *errors[PW_MAX_REQUESTS];
	MemoryContext old;
	int			i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "talaria: creating partitions");
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (tt_run_in_subxact(pw_create_fn, &pw->requests[slots[i]], &errors[i]))
			errors[i] = NULL;
	}
	MemoryContextSwitchTo(old);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	SpinLockAcquire(&pw->mutex);
	for (i = 0; i < n; i++)
	{
		PWRequest  *r = &pw->requests[slots[i]];

		if (r->abandoned)
			r->state = PW_FREE;
		else if (errors[i] == NULL)
			r->state = PW_DONE;
		else
		{
			r->state = PW_FAILED;
			r->sqlerrcode = errors[i]->sqlerrcode;
			pw_copy_text(r->message, errors[i]->message);
			pw_copy_text(r->detail, errors[i]->detail);
			pw_copy_text(r->hint, errors[i]->hint);
		}
	}
	SpinLockRelease(&pw->mutex);
	ConditionVariableBroadcast(&pw->cv);
}

void
tt_partition_worker_main(Datum arg)
{
	int			w = DatumGetInt32(arg);
	Oid			dboid;
	bool		ours;
	MemoryContext cxt;
	TimestampTz idle_since;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* (made afresh only if shared memory was reset since our launch) */
	pw_attach_fn(NULL);
	/* the entry may have been given up (too slow a start) and reused */
	SpinLockAcquire(&pw->mutex);
	ours = pw->workers[w].dboid == dboid && pw->workers[w].pid == 0;
	if (ours)
	{
		pw->workers[w].pid = MyProcPid;
		pw->workers[w].latch = MyLatch;
	}
	SpinLockRelease(&pw->mutex);
	if (!ours)
		proc_exit(0);
	on_shmem_exit(pw_worker_exit, Int32GetDatum(w));

	/*
	 * As the bootstrap superuser, which may always connect; the work itself
	 * runs as each table's owner (who may be a NOLOGIN role).
	 */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * Never wait long: the lock may be held by the very ingester that waits
	 * for this worker (it inserted into a table the partition's foreign key
	 * references, or ran maintenance in its transaction), a wait no
	 * deadlock detector sees.  On a timeout the ingester creates the
	 * partition in its own transaction instead.
	 */
	SetConfigOption("lock_timeout", psprintf("%d", tt_partition_worker_lock_timeout_ms),
					PGC_SUSET, PGC_S_OVERRIDE);
	cxt = AllocSetContextCreate(TopMemoryContext, "talaria partition worker",
								ALLOCSET_DEFAULT_SIZES);
	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		int			slots[PW_MAX_REQUESTS];
		int			n = 0;
		long		idle_ms;
		bool		leave;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			SetConfigOption("lock_timeout", psprintf("%d", tt_partition_worker_lock_timeout_ms),
							PGC_SUSET, PGC_S_OVERRIDE);
		}
		idle_ms = (long) ((GetCurrentTimestamp() - idle_since) / 1000);
		SpinLockAcquire(&pw->mutex);
		for (i = 0; i < PW_MAX_REQUESTS && !pw->workers[w].stop; i++)
		{
			PWRequest  *r = &pw->requests[i];

			if (r->state == PW_QUEUED && r->dboid == dboid)
			{
				r->state = PW_RUNNING;
				slots[n++] = i;
			}
		}
		/* nothing queued, under the mutex: no request is left behind */
		leave = n == 0 && (pw->workers[w].stop ||
						   idle_ms >= tt_partition_worker_idle_timeout_ms);
		if (leave)
			pw_worker_gone_locked(w);
		SpinLockRelease(&pw->mutex);
		if (leave)
		{
			ConditionVariableBroadcast(&pw->cv);
			proc_exit(0);
		}
		if (n == 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(tt_partition_worker_idle_timeout_ms - idle_ms, 1),
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		{
			TimestampTz t0 = GetCurrentTimestamp();

			pw_create(slots, n, cxt);
			elog(DEBUG1, "talaria partition worker: %d requests in %ld us (idle %ld ms)", n,
				 (long) (GetCurrentTimestamp() - t0), idle_ms);
		}
		MemoryContextReset(cxt);
		idle_since = GetCurrentTimestamp();
	}
}

/*
 * DROP DATABASE, CREATE DATABASE ... TEMPLATE and ALTER DATABASE ...
 * RENAME refuse a database someone is connected to: its worker exits
 * first (waiting at most a few seconds; the command then decides).
 */
void
tt_partition_worker_release_db(Node *stmt)
{
	const char *dbname = NULL;
	Oid			dboid;
	bool		any = false;
	int			w;
	int			i;
	ListCell   *lc;

	if (IsA(stmt, DropdbStmt))
		dbname = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		dbname = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, CreatedbStmt))
	{
		foreach(lc, ((CreatedbStmt *) stmt)->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				dbname = defGetString(opt);
		}
	}
	if (dbname == NULL || !pw_attach())
		return;
	dboid = get_database_oid(dbname, true);
	if (!OidIsValid(dboid))
		return;
	SpinLockAcquire(&pw->mutex);
	for (w = 0; w < PW_MAX_WORKERS; w++)
		if (pw->workers[w].dboid == dboid)
		{
			pw->workers[w].stop = true;
			if (pw->workers[w].latch)
				SetLatch(pw->workers[w].latch);
			any = true;
		}
	SpinLockRelease(&pw->mutex);
	if (!any)
		return;
	for (i = 0; i < 5000 / PW_POLL_MS; i++)
	{
		any = false;
		SpinLockAcquire(&pw->mutex);
		for (w = 0; w < PW_MAX_WORKERS; w++)
			any |= pw->workers[w].dboid == dboid;
		SpinLockRelease(&pw->mutex);
		if (!any)
			break;
		(void) ConditionVariableTimedSleep(&pw->cv, PW_POLL_MS, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/* ---------------------------------------------------------------------
 * The ingest side: the partitions a statement is missing
 * ---------------------------------------------------------------------
 */
typedef struct PWRange
{
	int64		lo;
	int64		hi;
} PWRange;

struct TTPartitionBatch
{
	MemoryContext cxt;			/* the batch's, and the worker handle's */
	Oid			relid;
	bool		here;			/* create in the ingesting transaction */
	PWRange    *ranges;			/* each missing partition's, in order */
	int			nranges;
	int			maxranges;
	int			nsent;			/* ranges[0, nsent) are asked for */
	int			inflight;		/* the request's slot, or -1 */
	int			inflight_first; /* its ranges */
	int			inflight_n;
	BackgroundWorkerHandle *handle; /* the worker we started */
	int64	   *here_keys;		/* left to the ingesting transaction */
	int			nhere;
	bool		failed;			/* a request failed: raise at the finish */
	PWResult	failure;
};

TTPartitionBatch *
tt_partition_batch_begin(const TTTimeTable *tt, bool here)
{
	TTPartitionBatch *b = palloc0(sizeof(TTPartitionBatch));

	b->cxt = CurrentMemoryContext;
	b->relid = tt->relid;
	b->here = here || tt_partition_create_here_needed(tt) || !pw_attach();
	b->maxranges = 8;
	b->ranges = palloc(sizeof(PWRange) * b->maxranges);
	b->here_keys = palloc(sizeof(int64) * b->maxranges);
	b->inflight = -1;
	return b;
}

bool
tt_partition_batch_has(const TTPartitionBatch *b, int64 key)
{
	int			i;

	/* rows come in time order more often than not: newest first */
	for (i = b->nranges - 1; i >= 0; i--)
		if (key >= b->ranges[i].lo && key < b->ranges[i].hi)
			return true;
	return false;
}

static void
batch_here(TTPartitionBatch *b, int first, int n)
{
	int			i;

	for (i = first; i < first + n; i++)
		b->here_keys[b->nhere++] = b->ranges[i].lo;
}

/* The request in flight has ended: its partitions exist, or fall back. */
static void
batch_result(TTPartitionBatch *b, const PWResult *res)
{
	int			first = b->inflight_first;
	int			n = b->inflight_n;

	b->inflight = -1;
	b->handle = NULL;
	if (res->state == PW_DONE)
		return;
	/*
	 * Lost, timed out on a lock (likely one the ingesting transaction
	 * holds), or canceled: create them here, where a wait is seen by the
	 * deadlock detector and an error reaches the client.
	 */
	if (res->state == PW_LOST || res->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		res->sqlerrcode == ERRCODE_QUERY_CANCELED)
	{
		if (res->state == PW_FAILED)
			ereport(DEBUG1,
					(errmsg_internal("talaria partition worker: %s", res->message)));
		batch_here(b, first, n);
		return;
	}
	/*
	 * Raised by tt_partition_batch_finish(), whichever call saw the request
	 * end: the error is the same, with the same context, however fast the
	 * worker was (not inside the row that happened to be read then).
	 */
	if (!b->failed)
	{
		b->failed = true;
		b->failure = *res;
	}
}

static void
batch_raise(TTPartitionBatch *b)
{
	const PWResult *res = &b->failure;

	ereport(ERROR,
			(errcode(res->sqlerrcode),
			 errmsg_internal("%s", res->message),
			 res->detail[0] ? errdetail_internal("%s", res->detail) : 0,
			 res->hint[0] ? errhint("%s", res->hint) : 0,
			 errcontext("creating a partition of %s in the talaria partition worker",
						tt_rel_name(b->relid))));
}

/*
 * Moves the batch on: collects the request in flight if it has ended (or
 * waits for it), and asks for the ranges not yet asked for.  With wait,
 * returns when every range is created or left to this transaction.
 */
static void
batch_pump(TTPartitionBatch *b, bool wait)
{
	for (;;)
	{
		PWResult	res;
		int			n;

		if (b->inflight >= 0)
		{
			if (!pw_collect(b->inflight, b->handle, &res))
			{
				if (!wait)
					return;
				(void) ConditionVariableTimedSleep(&pw->cv, PW_POLL_MS, PG_WAIT_EXTENSION);
				continue;
			}
			batch_result(b, &res);
		}
		/* after a failure nothing more is asked for: finish raises it */
		if (b->nsent == b->nranges || b->failed)
			break;
		n = Min(b->nranges - b->nsent, PW_MAX_KEYS);
		if (b->here)
			batch_here(b, b->nsent, n);
		else
		{
			int64		keys[PW_MAX_KEYS];
			int			i;
			MemoryContext old = MemoryContextSwitchTo(b->cxt);
			PWSubmit	submitted;

			for (i = 0; i < n; i++)
				keys[i] = b->ranges[b->nsent + i].lo;
			submitted = pw_submit(b->relid, keys, n, &b->inflight, &b->handle);
			MemoryContextSwitchTo(old);
			switch (submitted)
			{
				case PW_SUBMITTED:
					b->inflight_first = b->nsent;
					b->inflight_n = n;
					break;
				case PW_NO_WORKER:
					ereport(LOG,
							(errmsg("no talaria partition worker free; creating the partition of \"%s\" in the ingesting transaction",
									get_rel_name(b->relid)),
							 errhint("Partition workers serve at most %d databases at once.",
									 PW_MAX_WORKERS)));
					b->here = true;
					batch_here(b, b->nsent, n);
					break;
				case PW_BUSY:
					b->inflight = -1;
					if (!wait)
						return;
					(void) ConditionVariableTimedSleep(&pw->cv, PW_POLL_MS, PG_WAIT_EXTENSION);
					continue;
			}
		}
		b->nsent += n;
	}
	ConditionVariableCancelSleep();
}

void
tt_partition_batch_add(TTPartitionBatch *b, int64 key)
{
	if (b->nranges == b->maxranges)
	{
		b->maxranges *= 2;
		b->ranges = repalloc(b->ranges, sizeof(PWRange) * b->maxranges);
		b->here_keys = repalloc(b->here_keys, sizeof(int64) * b->maxranges);
	}
	tt_partition_range(b->relid, key, &b->ranges[b->nranges].lo,
					   &b->ranges[b->nranges].hi);
	b->nranges++;
	batch_pump(b, false);
}

bool
tt_partition_batch_ready(TTPartitionBatch *b)
{
	batch_pump(b, false);
	return b->inflight < 0 && (b->nsent == b->nranges || b->failed);
}

void
tt_partition_batch_finish(TTPartitionBatch *b)
{
	int			i;

	batch_pump(b, true);
	if (b->failed)
		batch_raise(b);
	for (i = 0; i < b->nhere; i++)
		tt_partition_create_here(b->relid, b->here_keys[i]);
	b->nhere = 0;
	/* see what the worker committed */
	AcceptInvalidationMessages();
}
