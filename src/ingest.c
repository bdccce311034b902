/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  talaria.ingest(): the trigger of an ingest pipeline, and the
 *	  COPY-like buffered insert into the (time-partitioned) target.
 *
 * create_pipeline() puts two triggers on the source table, both running
 * this function:
 *
 *	BEFORE INSERT FOR EACH ROW: converts the row to a value tree, runs the
 *	  transform, converts the result to the target's columns, routes it to
 *	  its partition and appends it to that partition's buffer; returns NULL,
 *	  so the source keeps nothing.
 *	AFTER INSERT FOR EACH STATEMENT: flushes every buffer (multi-insert per
 *	  partition, index entries, AFTER ROW triggers of the target) and
 *	  closes the target, so the rows are visible to the next statement.
 *
 * A statement's state (transform, conversion maps, the executor state of
 * the target, buffers) is built at its first row and kept in a
 * backend-local list keyed by trigger OID: a trigger function's fn_extra
 * does not live long enough under COPY.  The memory hangs off
 * TopTransactionContext; on (sub)transaction abort the list forgets the
 * states (the resource owners release their relations and buffers).  A
 * BEFORE ROW trigger created by hand without the statement trigger still
 * works: it then inserts row by row.
 *
 * Per row there is no SPI call and no catalog lookup: the transform entry,
 * the conversion maps, defaults and the partition bounds are resolved once
 * per statement (again only when a partition had to be created).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_trigger.h"
#include "commands/copy.h"
#include "commands/progress.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "foreign/fdwapi.h"
#include "ingest.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "pgstat.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tt_ingest);

/* Rows waiting for one partition (or the unpartitioned target). */
typedef struct PartBuffer
{
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	int			nused;
	int			nslots;			/* created so far */
	TupleDesc	desc;			/* the slots' (see buffer_for) */
	BulkInsertState bistate;
} PartBuffer;

typedef struct ComputedCol
{
	int			attindex;
	char	   *column;
	char	   *transform_name;
	TTTransform *transform;
} ComputedCol;

typedef struct IngestState
{
	Oid			tgoid;
	Oid			source;
	SubTransactionId subid;
	MemoryContext cxt;
	MemoryContext rowcxt;
	bool		batched;		/* a statement trigger will flush */
	bool		dead_letter;
	TTPipelineCounters *stats;	/* this backend's counters of the pipeline */
	bool		source_is_view; /* INSTEAD OF trigger on a view */
	int64		rowno;
	TTTransform *transform;
	TTSourceMap *smap;
	CommandId	cid;
	int			batch_size;

	/* the target, rebuilt after a partition is created */
	Oid			target;
	bool		is_time;
	TTTimeTable tt;
	int64		cover_lo;		/* last range known to have a partition */
	int64		cover_hi;
	bool		route_cacheable;	/* see route_row */
	ResultRelInfo *route_rri;	/* the leaf of [cover_lo, cover_hi), or NULL */
	EState	   *estate;
	ModifyTableState *mtstate;
	ResultRelInfo *root;
	PartitionTupleRouting *proute;
	PartitionDesc pd;
	TTTargetMap *tmap;
	TupleTableSlot *work;
	bool	   *isset;
	List	   *buffers;
	int			nbuffered;

	/* rows whose partition is being made (see defer_row) */
	TTPartitionBatch *newparts;
	MemoryContext pendcxt;		/* the batch and the rows; reset when done */
	List	   *pending;		/* PendingRow *, in arrival order */
	int			npending;

	ComputedCol *computed;
	int			ncomputed;

	/* talaria.dead_letters, opened at the first dead letter */
	Relation	dl_rel;
	ResultRelInfo *dl_rri;
	TupleTableSlot *dl_slot;
} IngestState;

static IngestState **states = NULL;
static int	nstates = 0;
static int	maxstates = 0;
static bool callbacks_registered = false;

static void close_target(IngestState *st);
static void setup_route_cache(IngestState *st);
static void resolve_pending(IngestState *st);
static void ingest_error_context(void *arg);

/* ---------------------------------------------------------------------
 * The list of open states, and forgetting them on abort
 * ---------------------------------------------------------------------
 */
static void
forget_state(int i)
{
	states[i] = states[--nstates];
}

static void
destroy_state(IngestState *st)
{
	int			i;

	close_target(st);
	if (st->dl_rel)
	{
		ExecCloseIndices(st->dl_rri);
		ExecDropSingleTupleTableSlot(st->dl_slot);
		table_close(st->dl_rel, NoLock);
		st->dl_rel = NULL;
	}
	for (i = 0; i < nstates; i++)
		if (states[i] == st)
		{
			forget_state(i);
			break;
		}
	MemoryContextDelete(st->cxt);
}

static void
ingest_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* every statement trigger has run: nothing may be pending */
			while (nstates > 0)
			{
				IngestState *st = states[nstates - 1];

				if (st->nbuffered > 0 || st->npending > 0)
					elog(ERROR, "talaria ingest: rows left unflushed at commit");
				destroy_state(st);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* memory goes with TopTransactionContext, the rest with the owners */
			nstates = 0;
			break;
	}
}

static void
ingest_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			i;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (i = nstates - 1; i >= 0; i--)
		if (states[i]->subid >= mySubid)
			forget_state(i);
}

static IngestState *
find_state(Oid tgoid)
{
	int			i;

	for (i = 0; i < nstates; i++)
		if (states[i]->tgoid == tgoid)
			return states[i];
	return NULL;
}

static void
remember_state(IngestState *st)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(ingest_xact_callback, NULL);
		RegisterSubXactCallback(ingest_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (nstates == maxstates)
	{
		maxstates = Max(8, maxstates * 2);
		states = states ?
			repalloc(states, maxstates * sizeof(IngestState *)) :
			MemoryContextAlloc(TopMemoryContext, maxstates * sizeof(IngestState *));
	}
	states[nstates++] = st;
}

/*
 * Rows the pipelines of this backend have stored (buffered for writing:
 * a statement whose flush fails is rolled back whole).  The executor and
 * utility hooks (talaria.c) add a statement's share to its command tag,
 * so that INSERT and COPY into a pipeline source report the rows stored.
 */
uint64		tt_ingest_rows_stored = 0;
/* ... of which the executor does not count (a table source keeps none; a
 * view source's INSTEAD OF trigger returns the row, which counts it) */
uint64		tt_ingest_rows_uncounted = 0;

/* ---------------------------------------------------------------------
 * The target: executor state, routing, buffers
 * ---------------------------------------------------------------------
 */
static void
open_target(IngestState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->cxt);
	RangeTblEntry *rte;
	Relation	rel;
	ResultRelInfo *root;
	AclResult	aclresult;

	LockRelationOid(st->target, RowExclusiveLock);
	st->estate = CreateExecutorState();
	st->estate->es_output_cid = st->cid;

	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = st->target;
	rte->relkind = get_rel_relkind(st->target);
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(st->estate, list_make1(rte));
	root = makeNode(ResultRelInfo);
	ExecInitResultRelation(st->estate, root, 1);
	rel = root->ri_RelationDesc;
	st->root = root;

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("pipeline target \"%s\" is not a table",
						RelationGetRelationName(rel))));
	aclresult = pg_class_aclcheck(st->target, GetUserId(), ACL_INSERT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, RelationGetRelationName(rel));
	if (check_enable_rls(st->target, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline target \"%s\" has row-level security enabled",
						RelationGetRelationName(rel)),
				 errdetail("Ingest pipelines do not apply row security policies.")));
	if (rel->trigdesc && rel->trigdesc->trig_insert_before_row)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline target \"%s\" has BEFORE INSERT row triggers",
						RelationGetRelationName(rel)),
				 errhint("Do that work in the transform or a computed column.")));

	st->mtstate = makeNode(ModifyTableState);
	st->mtstate->ps.plan = NULL;
	st->mtstate->ps.state = st->estate;
	st->mtstate->operation = CMD_INSERT;
	st->mtstate->mt_nrels = 1;
	st->mtstate->resultRelInfo = root;
	st->mtstate->rootResultRelInfo = root;

	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		st->proute = ExecSetupPartitionTupleRouting(st->estate, rel);
		st->pd = PartitionDirectoryLookup(st->estate->es_partition_directory, rel);
	}
	else
	{
		st->proute = NULL;
		st->pd = NULL;
		ExecOpenIndices(root, false);
	}
	st->tmap = tt_target_map_create(rel, st->estate, st->cxt);
	{
		const char *start;
		const char *end;

		/* result keys the transform kept are the source's column names */
		tt_source_map_names(st->smap, &start, &end);
		tt_target_map_stable_keys(st->tmap, start, end);
	}
	st->work = ExecInitExtraTupleSlot(st->estate, RelationGetDescr(rel),
									  &TTSOpsVirtual);
	st->isset = palloc0(sizeof(bool) * Max(1, RelationGetDescr(rel)->natts));
	st->cover_lo = 0;
	st->cover_hi = 0;
	st->route_rri = NULL;
	st->route_cacheable = false;
	st->buffers = NIL;
	st->nbuffered = 0;
	MemoryContextSwitchTo(old);
}

/* Inserts one partition's buffered rows, the way COPY does. */
/*
 * A foreign partition's rows go through its FDW, as COPY sends them:
 * ExecForeignBatchInsert in batches of the partition's batch_size when the
 * FDW batches, else ExecForeignInsert row by row (a foreign table has no
 * table access method for table_multi_insert).  The remote side checks
 * its constraints; the rows are committed or rolled back with the
 * transaction (postgres_fdw's remote transaction).
 */
static void
flush_foreign(IngestState *st, PartBuffer *buf)
{
	ResultRelInfo *rri = buf->rri;
	EState	   *estate = st->estate;
	const FdwRoutine *fdw = rri->ri_FdwRoutine;
	int			off;
	int			i;

	if (fdw->ExecForeignBatchInsert != NULL && rri->ri_BatchSize > 1)
	{
		for (off = 0; off < buf->nused; off += rri->ri_BatchSize)
		{
			int			n = Min(rri->ri_BatchSize, buf->nused - off);
			TupleTableSlot **done;

			done = fdw->ExecForeignBatchInsert(estate, rri, &buf->slots[off],
											   NULL, &n);
			for (i = 0; i < n; i++)
				ExecARInsertTriggers(estate, rri, done[i], NIL, NULL);
		}
	}
	else
	{
		for (i = 0; i < buf->nused; i++)
		{
			TupleTableSlot *done = fdw->ExecForeignInsert(estate, rri, buf->slots[i],
														  NULL);

			if (done != NULL)
				ExecARInsertTriggers(estate, rri, done, NIL, NULL);
		}
	}
	for (i = 0; i < buf->nused; i++)
		ExecClearTuple(buf->slots[i]);
	ResetPerTupleExprContext(estate);
	st->nbuffered -= buf->nused;
	buf->nused = 0;
}

static void
flush_buffer(IngestState *st, PartBuffer *buf)
{
	ResultRelInfo *rri = buf->rri;
	EState	   *estate = st->estate;
	MemoryContext old;
	int			i;

	if (buf->nused == 0)
		return;
	if (rri->ri_FdwRoutine != NULL)
	{
		flush_foreign(st, buf);
		return;
	}
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	table_multi_insert(rri->ri_RelationDesc, buf->slots, buf->nused,
					   st->cid, 0, buf->bistate);
	MemoryContextSwitchTo(old);
	for (i = 0; i < buf->nused; i++)
	{
		List	   *recheck = NIL;

		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, buf->slots[i], estate,
											false, false, NULL, NIL);
		ExecARInsertTriggers(estate, rri, buf->slots[i], recheck, NULL);
		list_free(recheck);
		ExecClearTuple(buf->slots[i]);
	}
	ResetPerTupleExprContext(estate);
	st->nbuffered -= buf->nused;
	buf->nused = 0;
}

static void
flush_all(IngestState *st)
{
	ListCell   *lc;

	foreach(lc, st->buffers)
		flush_buffer(st, (PartBuffer *) lfirst(lc));
}

static void
close_target(IngestState *st)
{
	ListCell   *lc;

	if (st->estate == NULL)
		return;
	resolve_pending(st);
	flush_all(st);
	foreach(lc, st->buffers)
	{
		PartBuffer *buf = (PartBuffer *) lfirst(lc);

		FreeBulkInsertState(buf->bistate);
		table_finish_bulk_insert(buf->rri->ri_RelationDesc, 0);
		buf->rri->ri_CopyMultiInsertBuffer = NULL;
	}
	if (st->proute)
		ExecCleanupTupleRouting(st->mtstate, st->proute);
	ExecCloseResultRelations(st->estate);
	ExecCloseRangeTableRelations(st->estate);
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	FreeExecutorState(st->estate);
	st->estate = NULL;
	st->proute = NULL;
	st->buffers = NIL;
	st->nbuffered = 0;
}

static PartBuffer *
buffer_for(IngestState *st, ResultRelInfo *rri)
{
	PartBuffer *buf = (PartBuffer *) rri->ri_CopyMultiInsertBuffer;

	if (buf == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		buf = palloc0(sizeof(PartBuffer));
		buf->rri = rri;
		buf->slots = palloc0(sizeof(TupleTableSlot *) * st->batch_size);
		buf->bistate = GetBulkInsertState();
		/*
		 * Not the relcache's descriptor: each slot would pin that one in
		 * the resource owner, whose lookup of a value remembered a
		 * thousand times over is linear, so creating (and releasing) a
		 * batch's slots cost O(batch_size^2) per partition and statement.
		 */
		buf->desc = CreateTupleDescCopy(RelationGetDescr(rri->ri_RelationDesc));
		rri->ri_CopyMultiInsertBuffer = (struct CopyMultiInsertBuffer *) buf;
		st->buffers = lappend(st->buffers, buf);
		MemoryContextSwitchTo(old);
	}
	if (buf->nused == buf->nslots)
	{
		/* the slot and the tuples it will hold outlive the row context */
		MemoryContext old = MemoryContextSwitchTo(st->estate->es_query_cxt);

		buf->slots[buf->nslots++] =
			ExecAllocTableSlot(&st->estate->es_tupleTable, buf->desc,
							   table_slot_callbacks(rri->ri_RelationDesc));
		MemoryContextSwitchTo(old);
	}
	return buf;
}

/*
 * Partitions on demand.  A row whose time has no partition is kept aside
 * (a heap tuple in pendcxt) and its partition asked for at once
 * (partition_worker.c: the worker makes it while this backend goes on
 * transforming); rows of partitions already asked for join it.  When the
 * worker has made them all (looked at every 64 rows kept aside), the
 * target is reopened to see them and the rows kept aside are routed; only
 * when the rows kept aside fill four batches, or the target is closed (the
 * end of the statement), does the ingester wait for the worker.  So the
 * ingester hardly ever waits for a new day.
 */
typedef struct PendingRow
{
	HeapTuple	tup;
	int64		rowno;			/* for the error context */
} PendingRow;

static void append_row(IngestState *st, int64 key);

/* Keeps the row in st->work aside (its partition is asked for). */
static void
defer_row(IngestState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->pendcxt);
	PendingRow *p = palloc(sizeof(PendingRow));

	p->tup = heap_form_tuple(st->work->tts_tupleDescriptor, st->work->tts_values,
							 st->work->tts_isnull);
	p->rowno = st->rowno;
	st->pending = lappend(st->pending, p);
	st->npending++;
	MemoryContextSwitchTo(old);
}

/*
 * Waits for the partitions asked for, reopens the target with routing
 * that sees them and stores the rows kept aside.  A row still without a
 * partition (the worker made another range than asked for, or could not
 * see what this transaction did) has it made in this transaction; if even
 * that does not cover it, it is an error.
 */
static void
resolve_pending(IngestState *st)
{
	List	   *rows = st->pending;
	TTPartitionBatch *b = st->newparts;
	int64		rowno = st->rowno;
	int			attempt;
	ErrorContextCallback *outer = error_context_stack;
	ErrorContextCallback errcb;

	if (rows == NIL)
		return;
	st->pending = NIL;
	st->npending = 0;
	st->newparts = NULL;

	/*
	 * An error names the row kept aside (st->rowno is set to its number),
	 * not the row or COPY line being read now.
	 */
	while (outer != NULL && (outer->callback == ingest_error_context ||
							 outer->callback == CopyFromErrorCallback))
		outer = outer->previous;
	errcb.callback = ingest_error_context;
	errcb.arg = st;
	errcb.previous = outer;
	for (attempt = 0; rows != NIL; attempt++)
	{
		List	   *left = NIL;
		ListCell   *lc;

		close_target(st);
		tt_partition_batch_finish(b);
		open_target(st);
		setup_route_cache(st);
		b = NULL;
		foreach(lc, rows)
		{
			PendingRow *p = (PendingRow *) lfirst(lc);
			TupleTableSlot *slot = st->work;
			int64		key;
			bool		covered;
			ErrorContextCallback *saved;

			ExecClearTuple(slot);
			heap_deform_tuple(p->tup, slot->tts_tupleDescriptor, slot->tts_values,
							  slot->tts_isnull);
			ExecStoreVirtualTuple(slot);
			key = tt_time_key(slot->tts_values[st->tt.attnum - 1], st->tt.typid);
			st->rowno = p->rowno;
			saved = error_context_stack;
			error_context_stack = &errcb;
			covered = key >= st->cover_lo && key < st->cover_hi;
			if (!covered)
			{
				st->route_rri = NULL;
				covered = tt_partition_covers(st->root->ri_RelationDesc, st->pd, &st->tt,
											  key, &st->cover_lo, &st->cover_hi);
			}
			if (covered)
				append_row(st, key);
			else if (attempt > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("could not create a partition of \"%s\" for %s",
								RelationGetRelationName(st->root->ri_RelationDesc),
								timestamptz_to_str((TimestampTz) key))));
			error_context_stack = saved;
			if (covered)
				continue;
			if (b == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(st->pendcxt);

				b = tt_partition_batch_begin(&st->tt, true);
				MemoryContextSwitchTo(old);
			}
			if (!tt_partition_batch_has(b, key))
				tt_partition_batch_add(b, key);
			left = lappend(left, p);
		}
		rows = left;
	}
	st->rowno = rowno;
	MemoryContextReset(st->pendcxt);
}

/*
 * May rows be routed by their time key alone?  Only when the key's range
 * [cover_lo, cover_hi) is one direct leaf partition of the target: the
 * target is partitioned by the time column alone and is not itself a
 * partition (whose constraint ExecFindPartition would check).  Set after
 * each open_target.
 */
static void
setup_route_cache(IngestState *st)
{
	Relation	rel = st->root->ri_RelationDesc;
	PartitionKey pkey;

	st->route_rri = NULL;
	st->route_cacheable = false;
	if (!st->is_time || rel->rd_rel->relispartition)
		return;
	pkey = RelationGetPartitionKey(rel);
	st->route_cacheable = pkey->partnatts == 1 &&
		pkey->partattrs[0] == st->tt.attnum;
}

static bool
is_direct_leaf(PartitionDesc pd, Oid relid)
{
	int			i;

	for (i = 0; i < pd->nparts; i++)
		if (pd->oids[i] == relid)
			return pd->is_leaf[i];
	return false;
}

/*
 * The partition of the row in slot.  Rows come in time order more often
 * than not, so the leaf of the last covered range is remembered: a row
 * whose key falls in it skips ExecFindPartition.
 */
static ResultRelInfo *
route_row(IngestState *st, TupleTableSlot *slot, int64 key)
{
	ResultRelInfo *rri;
	Relation	rel;

	if (st->route_rri != NULL && key >= st->cover_lo && key < st->cover_hi)
		return st->route_rri;
	rri = ExecFindPartition(st->mtstate, st->root, st->proute, slot,
							st->estate);
	rel = rri->ri_RelationDesc;
	if (rel->trigdesc && rel->trigdesc->trig_insert_before_row)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("partition \"%s\" of pipeline target has BEFORE INSERT row triggers",
						RelationGetRelationName(rel))));
	if (st->route_cacheable && st->cover_lo < st->cover_hi &&
		is_direct_leaf(st->pd, RelationGetRelid(rel)))
		st->route_rri = rri;
	return rri;
}

/*
 * Stores the row in st->work: into its partition's buffer, or aside while
 * its partition is being made.
 */
static void
buffer_row(IngestState *st)
{
	int64		key = 0;
	bool		deferred = false;

	if (st->is_time)
	{
		key = tt_time_key(st->work->tts_values[st->tt.attnum - 1], st->tt.typid);
		if (key < st->cover_lo || key >= st->cover_hi)
		{
			st->route_rri = NULL;
			/* a partition asked for is not in this routing yet */
			if (st->newparts != NULL && tt_partition_batch_has(st->newparts, key))
				deferred = true;
			else if (!tt_partition_covers(st->root->ri_RelationDesc, st->pd, &st->tt,
										  key, &st->cover_lo, &st->cover_hi))
			{
				MemoryContext old = MemoryContextSwitchTo(st->pendcxt);

				if (st->newparts == NULL)
					st->newparts = tt_partition_batch_begin(&st->tt, false);
				tt_partition_batch_add(st->newparts, key);
				MemoryContextSwitchTo(old);
				deferred = true;
			}
			if (deferred)
				defer_row(st);
		}
	}
	if (!deferred)
		append_row(st, key);
	tt_ingest_rows_stored++;
	if (!st->source_is_view)
		tt_ingest_rows_uncounted++;
	st->stats->stored++;
	/* every few rows kept aside: are their partitions there already? */
	if (st->npending >= 4 * st->batch_size ||
		(deferred && st->npending % 64 == 0 && tt_partition_batch_ready(st->newparts)))
		resolve_pending(st);
}

/*
 * Routes the row in st->work (whose time key is key) and appends it to its
 * partition's buffer.  Usually the stored tuple is formed once, from the
 * row's values straight into the batch slot, after the constraints were
 * checked on the values; a partition with another column layout, or
 * stored generated columns, take the executor's slot-to-slot way.
 */
static void
append_row(IngestState *st, int64 key)
{
	ResultRelInfo *rri = st->root;
	TupleTableSlot *slot = st->work;
	PartBuffer *buf;
	TupleTableSlot *bslot;
	TupleConstr *constr;

	if (st->proute)
		rri = route_row(st, slot, key);

	buf = buffer_for(st, rri);
	bslot = buf->slots[buf->nused];
	constr = rri->ri_RelationDesc->rd_att->constr;
	if (rri->ri_RootToPartitionMap == NULL &&
		(constr == NULL || !constr->has_generated_stored))
	{
		int			natts = slot->tts_tupleDescriptor->natts;

		/* as the executor: a foreign table's constraints are the remote's */
		if (constr && rri->ri_FdwRoutine == NULL)
			ExecConstraints(rri, slot, st->estate);
		/* formed in the slot's memory; table_multi_insert uses it as is */
		memcpy(bslot->tts_values, slot->tts_values, natts * sizeof(Datum));
		memcpy(bslot->tts_isnull, slot->tts_isnull, natts * sizeof(bool));
		ExecStoreVirtualTuple(bslot);
		ExecMaterializeSlot(bslot);
	}
	else
	{
		if (rri->ri_RootToPartitionMap != NULL)
			bslot = execute_attr_map_slot(rri->ri_RootToPartitionMap->attrMap,
										  slot, bslot);
		else
			ExecCopySlot(bslot, slot);
		if (constr)
		{
			if (constr->has_generated_stored)
				ExecComputeStoredGenerated(rri, st->estate, bslot, CMD_INSERT);
			if (rri->ri_FdwRoutine == NULL)
				ExecConstraints(rri, bslot, st->estate);
		}
		/* the mapped values still point into the row's memory */
		ExecMaterializeSlot(bslot);
	}
	buf->nused++;
	st->nbuffered++;
	if (buf->nused >= st->batch_size || st->nbuffered >= 4 * st->batch_size)
		flush_all(st);
}

/* ---------------------------------------------------------------------
 * Building the state at a statement's first row
 * ---------------------------------------------------------------------
 */
static bool
has_flush_trigger(Relation source, Trigger *rowtrig)
{
	TriggerDesc *td = source->trigdesc;
	int			i;

	if (td == NULL)
		return false;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgfoid == rowtrig->tgfoid &&
			!TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_AFTER(t->tgtype) &&
			TRIGGER_FOR_INSERT(t->tgtype) && t->tgenabled == rowtrig->tgenabled)
			return true;
	}
	return false;
}

/*
 * The target's computed columns, read directly (an index scan of
 * talaria.computed_columns' primary key (target, column_name), so in
 * column order: no SPI, no SQL that the session's search_path could
 * redirect).
 */
static void
load_computed(IngestState *st)
{
	Oid			catid = tt_catalog_relid("computed_columns", false);
	Relation	cat;
	Relation	idx;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int			i;
	int			max = 4;

	cat = table_open(catid, AccessShareLock);
	idx = index_open(RelationGetPrimaryKeyIndex(cat), AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(st->target));
	st->ncomputed = 0;
	st->computed = MemoryContextAllocZero(st->cxt, sizeof(ComputedCol) * max);
	scan = systable_beginscan_ordered(cat, idx, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext_ordered(scan, ForwardScanDirection)))
	{
		TupleDesc	desc = RelationGetDescr(cat);
		bool		isnull;
		ComputedCol *c;

		if (st->ncomputed == max)
		{
			st->computed = repalloc(st->computed, sizeof(ComputedCol) * max * 2);
			memset(st->computed + max, 0, sizeof(ComputedCol) * max);
			max *= 2;
		}
		c = &st->computed[st->ncomputed++];
		c->column = MemoryContextStrdup(st->cxt,
										NameStr(*DatumGetName(heap_getattr(tup, 2, desc, &isnull))));
		c->transform_name = MemoryContextStrdup(st->cxt,
												TextDatumGetCString(heap_getattr(tup, 3, desc, &isnull)));
	}
	systable_endscan_ordered(scan);
	index_close(idx, AccessShareLock);
	table_close(cat, AccessShareLock);
	for (i = 0; i < st->ncomputed; i++)
	{
		ComputedCol *c = &st->computed[i];

		c->transform = tt_transform_lookup(c->transform_name);
		tt_transform_check_use(c->transform,
							   st->root->ri_RelationDesc->rd_rel->relowner);
		c->attindex = tt_target_attindex(st->tmap, c->column);
		if (c->attindex < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("computed column \"%s\" of \"%s\" does not exist",
							c->column, get_rel_name(st->target))));
	}
}

/*
 * The pipeline's target.  A pipeline made by create_pipeline is recorded in
 * talaria.pipelines, which holds the target by OID: renaming the target or
 * its schema does not break it (and pg_dump carries it by name).  A trigger
 * made by hand names its target in its second argument.
 */
static Oid
pipeline_target(Relation source, Trigger *trig)
{
	Oid			catid = tt_catalog_relid("pipelines", true);
	Oid			target = InvalidOid;

	if (OidIsValid(catid))
	{
		Relation	cat = table_open(catid, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(RelationGetRelid(source)));
		scan = systable_beginscan(cat, RelationGetPrimaryKeyIndex(cat), true,
								  NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		tr = heap_getattr(tup, 3, RelationGetDescr(cat), &isnull);

			/* the recorded pipeline, if this trigger is one of it */
			if (!isnull && strcmp(TextDatumGetCString(tr), trig->tgargs[0]) == 0)
				target = DatumGetObjectId(heap_getattr(tup, 2, RelationGetDescr(cat),
													   &isnull));
		}
		systable_endscan(scan);
		table_close(cat, AccessShareLock);
	}
	if (OidIsValid(target) && SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target)))
		return target;
	return DatumGetObjectId(DirectFunctionCall1(regclassin,
												CStringGetDatum(trig->tgargs[1])));
}

static IngestState *
create_state(Relation source, Trigger *trig)
{
	MemoryContext cxt;
	IngestState *st;
	MemoryContext old;
	const char *mode;

	if (trig->tgnargs < 2 || trig->tgnargs > 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on \"%s\" has %d arguments",
						trig->tgname, RelationGetRelationName(source),
						trig->tgnargs),
				 errhint("Use talaria.ingest('transform', 'target' [, 'abort' | 'dead_letter']).")));
	mode = trig->tgnargs == 3 ? trig->tgargs[2] : "abort";
	if (strcmp(mode, "abort") != 0 && strcmp(mode, "dead_letter") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid on_error \"%s\" in trigger \"%s\"", mode, trig->tgname),
				 errhint("Use 'abort' or 'dead_letter'.")));

	cxt = AllocSetContextCreate(TopTransactionContext, "talaria ingest",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	st = palloc0(sizeof(IngestState));
	st->cxt = cxt;
	st->rowcxt = AllocSetContextCreate(cxt, "talaria ingest row",
									   ALLOCSET_DEFAULT_SIZES);
	st->pendcxt = AllocSetContextCreate(cxt, "talaria ingest new partitions",
										ALLOCSET_DEFAULT_SIZES);
	st->tgoid = trig->tgoid;
	st->source = RelationGetRelid(source);
	st->subid = GetCurrentSubTransactionId();
	/* talaria.replay_dead_letters needs to see a failing row fail */
	st->dead_letter = strcmp(mode, "dead_letter") == 0 && !tt_replaying;
	/*
	 * Batched only when the statement trigger flushes: a source that is a
	 * partition never sees its statement triggers when rows come through
	 * its parent, so its rows are written one by one.
	 */
	st->batched = has_flush_trigger(source, trig) &&
		!source->rd_rel->relispartition;
	st->batch_size = st->batched ? tt_ingest_batch_size : 1;
	st->cid = GetCurrentCommandId(true);
	MemoryContextSwitchTo(old);

	/* registered before anything that can fail: destroy_state cleans up */
	remember_state(st);
	st->transform = tt_transform_lookup(trig->tgargs[0]);
	/* a pipeline belongs to its source table: its owner must be allowed to use it */
	tt_transform_check_use(st->transform, source->rd_rel->relowner);
	st->target = pipeline_target(source, trig);
	if (st->target == st->source)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline source and target are the same table \"%s\"",
						RelationGetRelationName(source))));
	st->stats = tt_stats_pipeline(st->source, st->target, st->transform->name);
	st->source_is_view = source->rd_rel->relkind == RELKIND_VIEW;
	st->smap = tt_source_map_create(RelationGetDescr(source), cxt);
	open_target(st);
	st->is_time = st->proute != NULL &&
		tt_time_table_get(st->root->ri_RelationDesc, &st->tt);
	setup_route_cache(st);
	load_computed(st);
	return st;
}

/* ---------------------------------------------------------------------
 * One row
 * ---------------------------------------------------------------------
 */
static void
ingest_error_context(void *arg)
{
	IngestState *st = (IngestState *) arg;

	errcontext("talaria ingest: transform \"%s\", row " INT64_FORMAT " of the statement",
			   st->transform->name, st->rowno);
}

/*
 * The transformed row as jsonb for a dead letter, or NULL when it cannot be
 * (the value that failed the conversion may fail this one too).
 */
typedef struct ResultJsonb
{
	IngestState *st;
	const tt_value *result;
	Jsonb	   *jb;
} ResultJsonb;

static void
result_as_jsonb_fn(void *arg)
{
	ResultJsonb *r = (ResultJsonb *) arg;

	r->jb = tt_value_to_jsonb(r->result, r->st->transform->name);
}

static Jsonb *
result_as_jsonb(IngestState *st, const tt_value *result)
{
	ResultJsonb r = {st, result, NULL};
	ErrorData  *edata;

	if (tt_run_in_subxact(result_as_jsonb_fn, &r, &edata))
		return r.jb;
	if (!tt_dead_letter_error(edata->sqlerrcode))
		ReThrowError(edata);
	return NULL;
}

static void
store_dead_letter(IngestState *st, const Datum *values, const bool *nulls,
				  TTCallError *err, const tt_value *result)
{
	TupleDesc	desc;
	Datum		dl[8];
	bool		dlnulls[8] = {false, false, false, false, false, false, true, true};
	tt_value	row;
	MemoryContext old = MemoryContextSwitchTo(st->rowcxt);

	if (st->dl_rel == NULL)
	{
		Oid			relid = tt_catalog_relid("dead_letters", false);

		MemoryContextSwitchTo(st->cxt);
		st->dl_rel = table_open(relid, RowExclusiveLock);
		st->dl_rri = makeNode(ResultRelInfo);
		InitResultRelInfo(st->dl_rri, st->dl_rel, 0, NULL, 0);
		ExecOpenIndices(st->dl_rri, false);
		st->dl_slot = MakeSingleTupleTableSlot(RelationGetDescr(st->dl_rel),
											   &TTSOpsHeapTuple);
		MemoryContextSwitchTo(st->rowcxt);
	}
	desc = RelationGetDescr(st->dl_rel);
	/* the source row again: a native transform may have changed it */
	tt_source_row(st->smap, values, nulls, &row);
	dl[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	dl[1] = CStringGetTextDatum(st->transform->name);
	dl[2] = ObjectIdGetDatum(st->target);
	dl[3] = PointerGetDatum(tt_value_to_jsonb(&row, st->transform->name));
	dl[4] = CStringGetTextDatum(err->message);
	dl[5] = CStringGetTextDatum(unpack_sql_state(err->sqlerrcode));
	if (desc->natts >= 8)
	{
		/* where it failed, and what the transform made of it */
		dl[6] = CStringGetTextDatum(result ? "conversion" : "transform");
		dlnulls[6] = false;
		if (result)
		{
			Jsonb	   *jb = result_as_jsonb(st, result);

			dl[7] = PointerGetDatum(jb);
			dlnulls[7] = jb == NULL;
		}
	}
	ExecStoreHeapTuple(heap_form_tuple(desc, dl, dlnulls), st->dl_slot, false);
	table_tuple_insert(st->dl_rel, st->dl_slot, st->cid, 0, NULL);
	if (st->dl_rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(st->dl_rri, st->dl_slot, st->estate,
										false, false, NULL, NIL));
	ExecClearTuple(st->dl_slot);
	MemoryContextSwitchTo(old);
}

static void
row_failed(IngestState *st, const Datum *values, const bool *nulls,
		   TTCallError *err, const tt_value *result)
{
	if (!st->dead_letter || !tt_dead_letter_error(err->sqlerrcode))
		ereport(ERROR,
				(errcode(err->sqlerrcode),
				 errmsg("transform \"%s\" failed on row " INT64_FORMAT " of the statement: %s",
						st->transform->name, st->rowno, err->message)));
	store_dead_letter(st, values, nulls, err, result);
	st->stats->dead_letters++;
	st->transform->stats->dead_letters++;
}

/* Result -> st->work: columns, computed columns, defaults.  May ereport. */
static bool
convert_result(IngestState *st, tt_value *result, TTCallError *err)
{
	TupleTableSlot *slot = st->work;
	int			natts = slot->tts_tupleDescriptor->natts;
	int			i;

	ExecClearTuple(slot);
	memset(st->isset, 0, sizeof(bool) * natts);
	if (!tt_target_set_result(st->tmap, result, slot->tts_values,
							  slot->tts_isnull, st->isset,
							  st->transform->name, err))
		return false;
	for (i = 0; i < st->ncomputed; i++)
	{
		ComputedCol *c = &st->computed[i];
		tt_value   *cres = NULL;
		TTCallError cerr;
		int			status;

		status = tt_transform_call(c->transform, result, st->rowcxt, &cres, &cerr);
		if (status == TT_ERROR)
		{
			err->message = psprintf("computed column \"%s\" (transform \"%s\"): %s",
									c->column, c->transform->name, cerr.message);
			err->sqlerrcode = cerr.sqlerrcode;
			return false;
		}
		if (!tt_target_set_column(st->tmap, c->attindex,
								  status == TT_DROP ? NULL : cres,
								  slot->tts_values, slot->tts_isnull,
								  c->transform->name, err))
			return false;
		st->isset[c->attindex] = true;
	}
	if (!tt_target_finish(st->tmap, slot->tts_values, slot->tts_isnull,
						  st->isset, GetPerTupleExprContext(st->estate), err))
		return false;
	if (st->is_time && slot->tts_isnull[st->tt.attnum - 1])
	{
		err->message = psprintf("time column \"%s\" of \"%s\" is null",
								get_attname(st->target, st->tt.attnum, false),
								get_rel_name(st->target));
		err->sqlerrcode = ERRCODE_NOT_NULL_VIOLATION;
		return false;
	}
	if (st->is_time &&
		!tt_time_accepted(&st->tt, tt_time_key(slot->tts_values[st->tt.attnum - 1],
											   st->tt.typid)))
	{
		Datum		t = slot->tts_values[st->tt.attnum - 1];
		Oid			out;
		bool		varlena;

		getTypeOutputInfo(st->tt.typid, &out, &varlena);
		err->message = psprintf("time %s in column \"%s\" is outside the accepted window of time table \"%s\" (%s)",
								OidOutputFunctionCall(out, t),
								get_attname(st->target, st->tt.attnum, false),
								get_rel_name(st->target), st->tt.window);
		err->sqlerrcode = ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
		return false;
	}
	ExecStoreVirtualTuple(slot);
	return true;
}

/*
 * May an error of this SQLSTATE become a dead letter?  Not cancellation and
 * timeouts (57), exhausted resources and limits (53, 54: the memory
 * limits), nor system and internal errors (58, XX): those end the
 * statement in every mode.
 */
bool
tt_dead_letter_error(int sqlerrcode)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	return !(sqlerrcode == ERRCODE_QUERY_CANCELED ||
			 class == ERRCODE_INSUFFICIENT_RESOURCES ||
			 class == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
			 class == ERRCODE_OPERATOR_INTERVENTION ||
			 class == ERRCODE_SYSTEM_ERROR ||
			 class == ERRCODE_INTERNAL_ERROR);
}

/* In dead_letter mode: errors raised while converting become dead letters. */
typedef struct ConvertArgs
{
	IngestState *st;
	tt_value   *result;
	TTCallError *err;
	bool		ok;
} ConvertArgs;

static void
convert_result_fn(void *arg)
{
	ConvertArgs *c = (ConvertArgs *) arg;

	c->ok = convert_result(c->st, c->result, c->err);
}

static bool
convert_result_guarded(IngestState *st, tt_value *result, TTCallError *err)
{
	ConvertArgs c = {st, result, err, false};
	ErrorData  *edata;

	if (tt_run_in_subxact(convert_result_fn, &c, &edata))
		return c.ok;
	/* cancellation, resources, system errors: never a dead letter */
	if (!tt_dead_letter_error(edata->sqlerrcode))
		ReThrowError(edata);
	err->message = edata->message;
	err->sqlerrcode = edata->sqlerrcode;
	return false;
}

static void
process_row(IngestState *st, const Datum *values, const bool *nulls)
{
	ErrorContextCallback errcb;
	MemoryContext old;
	tt_value	row;
	tt_value   *result = NULL;
	TTCallError err;
	int			status;

	st->rowno++;
	st->stats->rows_in++;
	errcb.callback = ingest_error_context;
	errcb.arg = st;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	old = MemoryContextSwitchTo(st->rowcxt);
	ResetPerTupleExprContext(st->estate);
	tt_numeric_memo_reset();
	tt_source_row(st->smap, values, nulls, &row);
	status = tt_transform_call(st->transform, &row, st->rowcxt, &result, &err);
	if (status == TT_ERROR)
		row_failed(st, values, nulls, &err, NULL);
	else if (status == TT_DROP)
		st->stats->dropped++;
	else if (status == TT_OK)
	{
		bool		ok = st->dead_letter ?
			convert_result_guarded(st, result, &err) :
			convert_result(st, result, &err);

		if (ok)
			buffer_row(st);
		else
			row_failed(st, values, nulls, &err, result);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->rowcxt);
	error_context_stack = errcb.previous;
}

/* ---------------------------------------------------------------------
 * The trigger function
 * ---------------------------------------------------------------------
 */
Datum
tt_ingest(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	IngestState *st;
	Datum	   *values;
	bool	   *nulls;
	uint64		stored_before;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria.ingest() must be called as a trigger")));
	if (!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria.ingest() must be fired by INSERT"),
				 errdetail("Trigger \"%s\" on \"%s\".", td->tg_trigger->tgname,
						   RelationGetRelationName(td->tg_relation))));

	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
	{
		Oid			source = RelationGetRelid(td->tg_relation);
		int			i;

		if (!TRIGGER_FIRED_AFTER(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("talaria.ingest() statement trigger \"%s\" must be AFTER INSERT",
							td->tg_trigger->tgname)));
		/* the statement is over: flush and close its pipelines */
		for (i = nstates - 1; i >= 0; i--)
		{
			if (i < nstates && states[i]->source == source)
				destroy_state(states[i]);
		}
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) && !TRIGGER_FIRED_INSTEAD(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria.ingest() row trigger \"%s\" must be BEFORE INSERT (or INSTEAD OF INSERT on a view)",
						td->tg_trigger->tgname)));

	st = find_state(td->tg_trigger->tgoid);
	if (st == NULL)
		st = create_state(td->tg_relation, td->tg_trigger);
	stored_before = tt_ingest_rows_stored;
	tt_source_deform(st->smap, td->tg_trigtuple, &values, &nulls);
	process_row(st, values, nulls);
	if (!st->batched)
		destroy_state(st);

	/*
	 * On a view (INSTEAD OF), returning the row counts it as inserted and
	 * stores nothing: the command tag counts the rows stored from any
	 * session's first statement on, with no hook.  A table's BEFORE
	 * trigger must return NULL (the source keeps nothing).
	 */
	if (TRIGGER_FIRED_INSTEAD(td->tg_event) && tt_ingest_rows_stored > stored_before)
		return PointerGetDatum(td->tg_trigtuple);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * COPY FROM into a pipeline source, without the row trigger
 *
 * Through the trigger, COPY parses a row into values, forms a heap tuple
 * of them for the trigger, calls it, and we take the tuple apart again.
 * When nothing but the pipeline's own two triggers would fire on the
 * source, the ProcessUtility hook (talaria.c) lets us run the COPY
 * instead: BeginCopyFrom sets it up (every format, option, default and
 * error context as usual), talaria's reader (copy_reader.c) or
 * NextCopyFrom parses it, and each row's values go straight to the
 * pipeline.  What is stored, the dead letters, the errors and the command
 * tag are the trigger path's: the source keeps nothing, so "COPY 0".
 * Whenever anything differs from that simple case (a WHERE clause, FREEZE,
 * another trigger, a disabled or conditional pipeline trigger, row-level
 * security, a missing privilege, a read-only or parallel context, another
 * library's ProcessUtility hook below ours) we return false and PostgreSQL
 * runs the COPY, through the trigger, raising its own errors.
 * ---------------------------------------------------------------------
 */

/* Would PostgreSQL fire this trigger now? (as TriggerEnabled decides) */
static bool
trigger_fires(const Trigger *t)
{
	if (t->tgqual != NULL || t->tgoldtable != NULL || t->tgnewtable != NULL)
		return false;
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return t->tgenabled == TRIGGER_FIRES_ON_REPLICA ||
			t->tgenabled == TRIGGER_FIRES_ALWAYS;
	return t->tgenabled == TRIGGER_FIRES_ON_ORIGIN ||
		t->tgenabled == TRIGGER_FIRES_ALWAYS;
}

static bool
is_ingest_function(Oid fn)
{
	char	   *name = get_func_name(fn);
	Oid			nsp = get_func_namespace(fn);

	return name != NULL && strcmp(name, "ingest") == 0 &&
		nsp == get_namespace_oid(TT_SCHEMA, true);
}

/* The source's BEFORE ROW pipeline trigger if it and its flush are all. */
static Trigger *
copy_pipeline_trigger(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;
	Trigger    *row = NULL;
	Trigger    *flush = NULL;
	int			i;

	if (td == NULL || td->numtriggers != 2)
		return NULL;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (!trigger_fires(t) || !TRIGGER_FOR_INSERT(t->tgtype) ||
			!is_ingest_function(t->tgfoid))
			return NULL;
		if (TRIGGER_FOR_ROW(t->tgtype) &&
			(TRIGGER_FOR_BEFORE(t->tgtype) || TRIGGER_FOR_INSTEAD(t->tgtype)))
			row = t;
		else if (!TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_AFTER(t->tgtype))
			flush = t;
	}
	return row != NULL && flush != NULL ? row : NULL;
}

/* DoCopy's privilege checks, answering instead of raising. */
static bool
copy_allowed(ParseState *pstate, const CopyStmt *stmt, Relation rel)
{
	ParseNamespaceItem *nsitem;
	RangeTblEntry *rte;
	List	   *attnums;
	ListCell   *lc;

	if (stmt->filename != NULL)
	{
		if (stmt->is_program ?
			!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM) :
			!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
			return false;
	}
	nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock,
										   NULL, false, false);
	rte = nsitem->p_rte;
	rte->requiredPerms = ACL_INSERT;
	attnums = CopyGetAttnums(RelationGetDescr(rel), rel, stmt->attlist);
	foreach(lc, attnums)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	if (!ExecCheckRTPerms(pstate->p_rtable, false))
		return false;
	return check_enable_rls(RelationGetRelid(rel), InvalidOid, true) != RLS_ENABLED;
}

bool
tt_ingest_copy(const CopyStmt *stmt, const char *query_string,
			   QueryEnvironment *query_env, bool hooks_below,
			   uint64 *processed)
{
	uint64		stored_before;
	ParseState *pstate;
	Relation	rel;
	Trigger    *trig;
	CopyFromState cstate;
	EState	   *estate;
	ExprContext *econtext;
	ErrorContextCallback errcb;
	IngestState *st;
	TTCopyReader *reader;
	Datum	   *values;
	bool	   *nulls;
	int			natts;
	uint64		rows = 0;
	ListCell   *lc;

	if (!stmt->is_from || stmt->relation == NULL || stmt->query != NULL ||
		stmt->whereClause != NULL)
		return false;
	if (XactReadOnly || IsInParallelMode() || RecoveryInProgress())
		return false;
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "freeze") == 0)
			return false;
	}

	/* the lock DoCopy would take anyway */
	rel = table_openrv_extended(stmt->relation, RowExclusiveLock, true);
	if (rel == NULL)
		return false;
	trig = (rel->rd_rel->relkind == RELKIND_RELATION ||
			rel->rd_rel->relkind == RELKIND_VIEW) ? copy_pipeline_trigger(rel) : NULL;
	if (trig != NULL && hooks_below)
	{
		ereport(DEBUG1,
				(errmsg_internal("talaria: COPY into \"%s\" goes through its pipeline trigger: a library loaded before talaria_transform hooks ProcessUtility",
								 RelationGetRelationName(rel)),
				 errhint("List talaria_transform first in shared_preload_libraries.")));
		table_close(rel, NoLock);
		return false;
	}
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = query_string;
	pstate->p_queryEnv = query_env;
	if (trig == NULL || !copy_allowed(pstate, stmt, rel))
	{
		free_parsestate(pstate);
		table_close(rel, NoLock);
		return false;
	}

	cstate = BeginCopyFrom(pstate, rel, NULL, stmt->filename, stmt->is_program,
						   NULL, stmt->attlist, stmt->options);
	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	natts = RelationGetDescr(rel)->natts;
	values = palloc(sizeof(Datum) * Max(1, natts));
	nulls = palloc(sizeof(bool) * Max(1, natts));
	reader = tt_copy_fast_reader ? tt_copy_reader_begin(cstate) : NULL;

	ereport(DEBUG1,
			(errmsg_internal("talaria: COPY into \"%s\" feeds its pipeline directly (%s reader)",
							 RelationGetRelationName(rel),
							 reader != NULL ? "talaria's" : "PostgreSQL's")));
	/* the pipeline is set up at the first row, as through the trigger */
	st = NULL;
	stored_before = tt_ingest_rows_stored;

	AfterTriggerBeginQuery();
	errcb.callback = CopyFromErrorCallback;
	errcb.arg = (void *) cstate;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	for (;;)
	{
		MemoryContext old;
		bool		more;

		CHECK_FOR_INTERRUPTS();
		ResetPerTupleExprContext(estate);
		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		if (reader != NULL)
			more = tt_copy_reader_next(reader, econtext, values, nulls);
		else
			more = NextCopyFrom(cstate, econtext, values, nulls);
		MemoryContextSwitchTo(old);
		if (!more)
			break;
		if (st == NULL && (st = find_state(trig->tgoid)) == NULL)
			st = create_state(rel, trig);
		process_row(st, values, nulls);
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++rows);
	}
	error_context_stack = errcb.previous;

	/* what the statement trigger does: flush, close */
	if (st != NULL)
		destroy_state(st);
	AfterTriggerEndQuery(estate);
	ExecCloseResultRelations(estate);
	FreeExecutorState(estate);
	EndCopyFrom(cstate);
	free_parsestate(pstate);
	table_close(rel, NoLock);
	/* the rows the pipeline stored, for COPY's command tag */
	*processed = tt_ingest_rows_stored - stored_before;
	return true;
}
