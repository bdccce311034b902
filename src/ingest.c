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
 * Per row there is no SPI call and no catalog lookup: the transform entry
 * and the partition bounds are resolved once per statement (again only
 * when a partition had to be created); what the catalog says of the
 * pipeline (its target, the conversion maps, time-table settings,
 * computed columns) is cached per backend until a change invalidates it
 * (pipeline_cache.c), so a statement reads no catalog table either.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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
#include "nodes/nodeFuncs.h"
#include "parser/parse_relation.h"
#include "pgstat.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/inval.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tt_ingest);

/* Rows waiting for one partition (or the unpartitioned target). */
typedef struct PartBuffer
{
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	int			nused;
	int			nslots;			/* created so far */
	int			maxslots;		/* room in slots */
	TupleDesc	desc;			/* the slots' after the first (see buffer_for) */
	BulkInsertState bistate;
} PartBuffer;

typedef struct ComputedCol
{
	int			attindex;
	const char *column;
	TTTransform *transform;
	/* talaria.computed_columns.on_error: 'p'ipeline, 'n'ull, 'd'ead letter, 'a'bort */
	char		on_error;
	int			rounding;		/* TT_ROUNDING_* */
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
	bool		ignore_unknown; /* unknown_keys => 'ignore' */
	char		fail_policy;	/* how the current row fails: 'p'ipeline's
								 * on_error, or a computed column's 'd', 'a' */
	TTPipelineCounters *stats;	/* this backend's counters of the pipeline */
	bool		source_is_view; /* INSTEAD OF trigger on a view */
	int64		rowno;
	TTTransform *transform;
	TTPipelineDef *def;			/* the catalog's, cached (pipeline_cache.c) */
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
	bool		partitioned;	/* the target is a partitioned table */
	/* tuple routing, set up at the first row the leaf below does not take */
	PartitionTupleRouting *proute;
	PartitionDesc pd;
	/* the leaf of the pipeline's cached range, opened without routing */
	ResultRelInfo *leaf_rri;
	int64		leaf_lo;
	int64		leaf_hi;
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
static bool find_cover(IngestState *st, int64 key);
static void copy_takeover(IngestState *st, TriggerData *td);
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
/*
 * Opens the target for a statement.  The first time (source and trig
 * given) the pipeline's definition gets its target side if it has none.
 */
static void
open_target(IngestState *st, Relation source, Trigger *trig)
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

	st->partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	st->proute = NULL;
	st->pd = NULL;
	st->leaf_rri = NULL;
	if (!st->partitioned)
		ExecOpenIndices(root, false);
	if (st->def->target != st->target)
	{
		Assert(source != NULL);
		st->def = tt_pipeline_def_target(st->def, source, trig, rel);
	}
	st->smap = st->def->smap;
	st->tmap = st->def->tmap;
	tt_target_map_bind(st->tmap, st->estate);
	tt_target_map_ignore_unknown(st->tmap, st->ignore_unknown);
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
	MemoryContext old;
	int			off;
	int			i;

	/*
	 * In the statement's memory, as the executor calls an FDW: postgres_fdw
	 * keeps what it allocates on its first call (the remote prepared
	 * statement's name) for the statement's later calls.
	 */
	old = MemoryContextSwitchTo(estate->es_query_cxt);
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
	MemoryContextSwitchTo(old);
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
	/*
	 * A bulk insert state (a ring of buffers) pays from the second row on:
	 * one row, as a single-row INSERT stores it, does without.
	 */
	if (buf->bistate == NULL && buf->nused > 1)
	{
		old = MemoryContextSwitchTo(st->cxt);
		buf->bistate = GetBulkInsertState();
		MemoryContextSwitchTo(old);
	}
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	/* one row (a single-row INSERT): the plain insert costs less */
	if (buf->nused == 1 && buf->bistate == NULL)
		table_tuple_insert(rri->ri_RelationDesc, buf->slots[0], st->cid, 0,
						   NULL);
	else
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

		if (buf->bistate != NULL)
			FreeBulkInsertState(buf->bistate);
		table_finish_bulk_insert(buf->rri->ri_RelationDesc, 0);
		buf->rri->ri_CopyMultiInsertBuffer = NULL;
	}
	if (st->leaf_rri)
	{
		ExecCloseIndices(st->leaf_rri);
		table_close(st->leaf_rri->ri_RelationDesc, NoLock);
		st->leaf_rri = NULL;
	}
	if (st->proute)
		ExecCleanupTupleRouting(st->mtstate, st->proute);
	ExecCloseResultRelations(st->estate);
	ExecCloseRangeTableRelations(st->estate);
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	FreeExecutorState(st->estate);
	st->estate = NULL;
	st->proute = NULL;
	st->pd = NULL;
	st->route_rri = NULL;
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
		/* grown as rows come: a one-row statement pays for one */
		buf->maxslots = Min(st->batch_size, 8);
		buf->slots = palloc(sizeof(TupleTableSlot *) * buf->maxslots);
		rri->ri_CopyMultiInsertBuffer = (struct CopyMultiInsertBuffer *) buf;
		st->buffers = lappend(st->buffers, buf);
		MemoryContextSwitchTo(old);
	}
	if (buf->nused == buf->nslots)
	{
		MemoryContext old;
		TupleDesc	desc;

		if (buf->nslots == buf->maxslots)
		{
			buf->maxslots = Min(st->batch_size, buf->maxslots * 2);
			buf->slots = repalloc(buf->slots,
								  sizeof(TupleTableSlot *) * buf->maxslots);
		}
		/* the slot and the tuples it will hold outlive the row context */
		old = MemoryContextSwitchTo(st->estate->es_query_cxt);

		/*
		 * The first slot takes the relcache's descriptor (one pin); the
		 * others a copy: each would pin that one in the resource owner,
		 * whose lookup of a value remembered a thousand times over is
		 * linear, so creating (and releasing) a batch's slots would cost
		 * O(batch_size^2) per partition and statement.
		 */
		if (buf->nslots == 0)
			desc = RelationGetDescr(rri->ri_RelationDesc);
		else
		{
			if (buf->desc == NULL)
				buf->desc = CreateTupleDescCopy(RelationGetDescr(rri->ri_RelationDesc));
			desc = buf->desc;
		}
		buf->slots[buf->nslots++] =
			ExecAllocTableSlot(&st->estate->es_tupleTable, desc,
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
	ErrorContextCallback *saved_stack;
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
	/* nor does a partition's error name the row or line read now */
	saved_stack = error_context_stack;
	error_context_stack = outer;
	for (attempt = 0; rows != NIL; attempt++)
	{
		List	   *left = NIL;
		ListCell   *lc;

		close_target(st);
		tt_partition_batch_finish(b);
		open_target(st, NULL, NULL);
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
				covered = find_cover(st, key);
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
	error_context_stack = saved_stack;
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

/* Tuple routing for this open of the target, as the executor sets it up. */
static void
setup_routing(IngestState *st)
{
	MemoryContext old;

	if (st->proute != NULL)
		return;
	old = MemoryContextSwitchTo(st->cxt);
	st->proute = ExecSetupPartitionTupleRouting(st->estate, st->root->ri_RelationDesc);
	st->pd = PartitionDirectoryLookup(st->estate->es_partition_directory,
									  st->root->ri_RelationDesc);
	MemoryContextSwitchTo(old);
}

/*
 * Is key in the range of the leaf this backend last stored into (cached
 * in the pipeline's definition across statements, see route_row)?
 */
static bool
in_cached_leaf(IngestState *st, int64 key)
{
	return st->route_cacheable && OidIsValid(st->def->leaf) &&
		key >= st->def->leaf_lo && key < st->def->leaf_hi;
}

static void
check_leaf_triggers(Relation rel)
{
	if (rel->trigdesc && rel->trigdesc->trig_insert_before_row)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("partition \"%s\" of pipeline target has BEFORE INSERT row triggers",
						RelationGetRelationName(rel))));
}

/*
 * Opens the cached leaf as ExecFindPartition would open it for an INSERT
 * (no RETURNING, no ON CONFLICT): locked, its indexes open, routed to from
 * the root.  It was cached only as a plain table with the root's column
 * layout (no conversion map), and any change to it or to the root (a
 * partition attached, detached or dropped, a column altered) clears the
 * cache: taking the lock accepts those invalidations, so the cache is
 * checked again once it is held.  NULL if the cache went meanwhile.
 */
static ResultRelInfo *
open_cached_leaf(IngestState *st)
{
	Oid			relid = st->def->leaf;
	int64		lo = st->def->leaf_lo;
	int64		hi = st->def->leaf_hi;
	MemoryContext old;
	Relation	rel;
	ResultRelInfo *rri;

	rel = try_table_open(relid, RowExclusiveLock);
	if (rel == NULL)
		return NULL;
	if (st->def->leaf != relid || st->def->leaf_lo != lo || st->def->leaf_hi != hi ||
		rel->rd_rel->relkind != RELKIND_RELATION)
	{
		table_close(rel, NoLock);
		return NULL;
	}
	check_leaf_triggers(rel);
	old = MemoryContextSwitchTo(st->estate->es_query_cxt);
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, st->root, st->estate->es_instrument);
	CheckValidResultRel(rri, CMD_INSERT);
	if (rel->rd_rel->relhasindex)
		ExecOpenIndices(rri, false);
	rri->ri_RootToPartitionMap = NULL;
	rri->ri_PartitionTupleSlot = NULL;
	rri->ri_BatchSize = 1;
	rri->ri_CopyMultiInsertBuffer = NULL;
	st->estate->es_tuple_routing_result_relations =
		lappend(st->estate->es_tuple_routing_result_relations, rri);
	MemoryContextSwitchTo(old);
	st->leaf_rri = rri;
	st->leaf_lo = lo;
	st->leaf_hi = hi;
	return rri;
}

/*
 * Sets [cover_lo, cover_hi) to the range of the partition that takes key;
 * false if none does.  A key in the cached leaf's range opens that leaf
 * (see route_row) and needs no tuple routing.
 */
static bool
find_cover(IngestState *st, int64 key)
{
	st->route_rri = NULL;
	if ((st->leaf_rri != NULL && key >= st->leaf_lo && key < st->leaf_hi) ||
		(st->leaf_rri == NULL && st->proute == NULL && in_cached_leaf(st, key) &&
		 open_cached_leaf(st) != NULL))
	{
		st->cover_lo = st->leaf_lo;
		st->cover_hi = st->leaf_hi;
		st->route_rri = st->leaf_rri;
		return true;
	}
	setup_routing(st);
	return tt_partition_covers(st->root->ri_RelationDesc, st->pd, &st->tt,
							   key, &st->cover_lo, &st->cover_hi);
}

/*
 * The partition of the row in slot.  Rows come in time order more often
 * than not, so the leaf of the last covered range is remembered: a row
 * whose key falls in it skips ExecFindPartition.  Across statements, the
 * pipeline's definition remembers the last leaf stored into (a plain table
 * laid out as the root): a statement whose rows all fall in it opens that
 * leaf alone (find_cover), without setting up tuple routing.
 */
static ResultRelInfo *
route_row(IngestState *st, TupleTableSlot *slot, int64 key)
{
	ResultRelInfo *rri;
	Relation	rel;

	if (st->route_rri != NULL && key >= st->cover_lo && key < st->cover_hi)
		return st->route_rri;
	if (st->leaf_rri != NULL && key >= st->leaf_lo && key < st->leaf_hi)
		return st->route_rri = st->leaf_rri;
	setup_routing(st);
	rri = ExecFindPartition(st->mtstate, st->root, st->proute, slot,
							st->estate);
	rel = rri->ri_RelationDesc;
	check_leaf_triggers(rel);
	if (st->route_cacheable && st->cover_lo < st->cover_hi &&
		key >= st->cover_lo && key < st->cover_hi &&
		is_direct_leaf(st->pd, RelationGetRelid(rel)))
	{
		st->route_rri = rri;
		if (rel->rd_rel->relkind == RELKIND_RELATION &&
			rri->ri_RootToPartitionMap == NULL && st->def->target == st->target)
		{
			st->def->leaf = RelationGetRelid(rel);
			st->def->leaf_lo = st->cover_lo;
			st->def->leaf_hi = st->cover_hi;
		}
	}
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
			/* a partition asked for is not in this routing yet */
			if (st->newparts != NULL && tt_partition_batch_has(st->newparts, key))
				deferred = true;
			else if (!find_cover(st, key))
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

	if (st->partitioned)
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
 * The target's computed columns: their transforms as of this statement,
 * which the target's owner must be allowed to use.
 */
static void
bind_computed(IngestState *st)
{
	int			i;

	st->ncomputed = st->def->ncomputed;
	st->computed = MemoryContextAllocZero(st->cxt,
										  sizeof(ComputedCol) * Max(1, st->ncomputed));
	for (i = 0; i < st->ncomputed; i++)
	{
		TTComputedDef *d = &st->def->computed[i];
		ComputedCol *c = &st->computed[i];

		c->attindex = d->attindex;
		c->column = d->column;
		c->on_error = d->on_error;
		c->rounding = d->rounding;
		c->transform = tt_transform_lookup(d->transform);
		tt_transform_check_use(c->transform,
							   st->root->ri_RelationDesc->rd_rel->relowner);
	}
}

/*
 * The pipeline's target.  A pipeline made by create_pipeline is recorded in
 * talaria.pipelines, which holds the target by OID: renaming the target or
 * its schema does not break it (and pg_dump carries it by name).  A trigger
 * made by hand names its target in its second argument, looked up in each
 * statement (the search_path may have changed).
 */
static Oid
pipeline_target(TTPipelineDef *def, Trigger *trig)
{
	Oid			target = def->recorded_target;

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

	if (trig->tgnargs < 2 || trig->tgnargs > 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on \"%s\" has %d arguments",
						trig->tgname, RelationGetRelationName(source),
						trig->tgnargs),
				 errhint("Use talaria.ingest('transform', 'target' [, 'abort' | 'dead_letter' [, 'error' | 'ignore']]).")));
	if (trig->tgnargs == 4 && strcmp(trig->tgargs[3], "error") != 0 &&
		strcmp(trig->tgargs[3], "ignore") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unknown_keys \"%s\" in trigger \"%s\"",
						trig->tgargs[3], trig->tgname),
				 errhint("Use 'error' or 'ignore'.")));
	mode = trig->tgnargs >= 3 ? trig->tgargs[2] : "abort";
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
	st->ignore_unknown = trig->tgnargs == 4 && strcmp(trig->tgargs[3], "ignore") == 0;
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
	st->def = tt_pipeline_def(source, trig);
	st->transform = tt_transform_lookup(trig->tgargs[0]);
	/* a pipeline belongs to its source table: its owner must be allowed to use it */
	tt_transform_check_use(st->transform, source->rd_rel->relowner);
	st->target = pipeline_target(st->def, trig);
	/* one lookup when Citus is not installed */
	if (tt_citus_installed())
	{
		tt_citus_guard(st->source, "pipeline source");
		tt_citus_guard(st->target, "pipeline target");
	}
	if (st->target == st->source)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline source and target are the same table \"%s\"",
						RelationGetRelationName(source))));
	st->stats = tt_stats_pipeline(st->source, st->target, st->transform->name);
	st->source_is_view = source->rd_rel->relkind == RELKIND_VIEW;
	open_target(st, source, trig);
	st->is_time = st->partitioned && st->def->ttdef.found;
	if (st->is_time)
		tt_time_table_bind(&st->def->ttdef, &st->tt);
	setup_route_cache(st);
	bind_computed(st);
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
	tt_numeric_lazy_text = false;
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
	/* a computed column's own policy overrides the pipeline's on_error */
	bool		dead_letter = st->fail_policy == 'd' ? !tt_replaying :
		st->fail_policy == 'a' ? false : st->dead_letter;

	if (!dead_letter || !tt_dead_letter_error(err->sqlerrcode))
		ereport(ERROR,
				(errcode(err->sqlerrcode),
				 errmsg("transform \"%s\" failed on row " INT64_FORMAT " of the statement: %s",
						st->transform->name, st->rowno, err->message)));
	store_dead_letter(st, values, nulls, err, result);
	st->stats->dead_letters++;
	st->transform->stats->dead_letters++;
}

/* A computed column's value in a subtransaction: an ERROR is its failure. */
typedef struct SetColumnArgs
{
	IngestState *st;
	ComputedCol *c;
	const tt_value *v;
	TTCallError *err;
	bool		ok;
} SetColumnArgs;

static void
set_column_fn(void *arg)
{
	SetColumnArgs *a = (SetColumnArgs *) arg;

	a->ok = tt_target_set_column(a->st->tmap, a->c->attindex, a->v,
								 a->st->work->tts_values, a->st->work->tts_isnull,
								 a->c->transform->name, a->err);
}

/*
 * One computed column into st->work, by its policies (read with the
 * computed columns, once per statement): a failing or mistyped value
 * stores NULL ('null', Talaria's behaviour), or fails the row as the
 * pipeline's on_error says ('pipeline'), or as a dead letter or an abort
 * whatever the pipeline says.  Cancellation, limits and system errors are
 * never turned into NULL or a dead letter.  False: the row fails, err and
 * st->fail_policy say how.
 */
static bool
compute_column(IngestState *st, ComputedCol *c, tt_value *result,
			   TTCallError *err)
{
	TupleTableSlot *slot = st->work;
	bool		soft = c->on_error == 'n' || c->on_error == 'd';
	tt_value   *cres = NULL;
	const tt_value *v = NULL;
	tt_value	tmp;
	TTCallError cerr;
	int			status;

	status = tt_transform_call(c->transform, result, 0, st->rowcxt, &cres, &cerr);
	if (status == TT_ERROR)
	{
		cerr.message = psprintf("computed column \"%s\" (transform \"%s\"): %s",
								c->column, c->transform->name, cerr.message);
		goto failed;
	}
	if (status == TT_OK && cres->type != TT_NULL)
	{
		v = tt_target_coerce_computed(st->tmap, c->attindex, cres, c->rounding,
									  soft, &tmp, &cerr);
		if (v == NULL)
			goto failed;
	}
	if (soft && tt_target_convert_may_raise(st->tmap, c->attindex, v))
	{
		SetColumnArgs a = {st, c, v, &cerr, false};
		ErrorData  *edata;

		if (!tt_run_in_subxact(set_column_fn, &a, &edata))
		{
			if (!tt_dead_letter_error(edata->sqlerrcode))
				ReThrowError(edata);
			cerr.message = edata->message;
			cerr.sqlerrcode = edata->sqlerrcode;
			goto failed;
		}
		if (!a.ok)
			goto failed;
	}
	else if (!tt_target_set_column(st->tmap, c->attindex, v, slot->tts_values,
								   slot->tts_isnull, c->transform->name, &cerr))
		goto failed;
	st->isset[c->attindex] = true;
	return true;

failed:
	if (c->on_error == 'n' && tt_dead_letter_error(cerr.sqlerrcode))
	{
		slot->tts_values[c->attindex] = (Datum) 0;
		slot->tts_isnull[c->attindex] = true;
		st->isset[c->attindex] = true;
		return true;
	}
	*err = cerr;
	st->fail_policy = c->on_error == 'n' ? 'p' : c->on_error;
	return false;
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
		if (!compute_column(st, &st->computed[i], result, err))
			return false;
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
	st->fail_policy = 'p';
	errcb.callback = ingest_error_context;
	errcb.arg = st;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	old = MemoryContextSwitchTo(st->rowcxt);
	ResetPerTupleExprContext(st->estate);
	tt_numeric_memo_reset();
	/* for Lua, a decimal's text is written only if the script reads it */
	tt_numeric_lazy_text = (st->transform->kind == 'l');
	tt_source_row(st->smap, values, nulls, &row);
	tt_numeric_lazy_text = false;
	/* the row's keys are the map's column names: the call may know them */
	status = tt_transform_call(st->transform, &row,
							   tt_source_map_serial(st->smap), st->rowcxt,
							   &result, &err);
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

/* What the statement trigger does: flush and close the source's pipelines. */
static void
destroy_source_states(Oid source)
{
	int			i;

	for (i = nstates - 1; i >= 0; i--)
	{
		if (i < nstates && states[i]->source == source)
			destroy_state(states[i]);
	}
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
		if (!TRIGGER_FIRED_AFTER(td->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("talaria.ingest() statement trigger \"%s\" must be AFTER INSERT",
							td->tg_trigger->tgname)));
		/* the statement is over: flush and close its pipelines */
		destroy_source_states(RelationGetRelid(td->tg_relation));
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
	if (st->batched)
		copy_takeover(st, td);
	else
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

/*
 * The OID of talaria.ingest() once seen, so that the statement paths below
 * need no catalog lookup; forgotten at any invalidation of pg_proc.
 */
static Oid	ingest_fn_oid = InvalidOid;
static bool ingest_fn_callback = false;

static void
ingest_fn_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	ingest_fn_oid = InvalidOid;
}

static bool
is_ingest_function(Oid fn)
{
	char	   *name;

	if (fn == ingest_fn_oid)
		return true;
	name = get_func_name(fn);
	if (name == NULL || strcmp(name, "ingest") != 0 ||
		get_func_namespace(fn) != get_namespace_oid(TT_SCHEMA, true))
		return false;
	if (!ingest_fn_callback)
	{
		CacheRegisterSyscacheCallback(PROCOID, ingest_fn_invalidate, (Datum) 0);
		ingest_fn_callback = true;
	}
	ingest_fn_oid = fn;
	return true;
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

/*
 * Reads the COPY's rows (talaria's reader, or NextCopyFrom when reader is
 * NULL) and runs each through the pipeline, whose state *stp is set up at
 * the first row if it is NULL.  rows: the rows of the COPY before these.
 * Returns the rows of the COPY so far.
 */
static uint64
feed_copy_rows(IngestState **stp, Relation rel, Trigger *trig,
			   CopyFromState cstate, TTCopyReader *reader, EState *estate,
			   uint64 rows)
{
	ExprContext *econtext = GetPerTupleExprContext(estate);
	int			natts = RelationGetDescr(rel)->natts;
	Datum	   *values = palloc(sizeof(Datum) * Max(1, natts));
	bool	   *nulls = palloc(sizeof(bool) * Max(1, natts));

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
		if (*stp == NULL && (*stp = find_state(trig->tgoid)) == NULL)
			*stp = create_state(rel, trig);
		process_row(*stp, values, nulls);
		pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++rows);
	}
	pfree(values);
	pfree(nulls);
	return rows;
}

/*
 * The row trigger inside PostgreSQL's own COPY FROM (a session's first
 * COPY loads the library only at its first row, after ProcessUtility has
 * passed our hook by): when the COPY is one that tt_ingest_copy would have
 * run, talaria's reader takes over the rest of the input from the
 * trigger's first call and feeds the rows to the pipeline directly;
 * PostgreSQL's reader then finds the input at its end and the COPY ends as
 * usual (statement triggers, command tag).  CopyFrom is found by its error
 * context callback, which must be the innermost: the trigger was called
 * for a row it read, not from a statement nested in it.  Not for a view
 * source, whose command tag counts the rows its INSTEAD OF trigger
 * returns.
 */
static void
copy_takeover(IngestState *st, TriggerData *td)
{
	Relation	rel = td->tg_relation;
	CopyFromState cstate;
	Trigger    *trig;
	TTCopyReader *reader;
	EState	   *estate;
	MemoryContext cxt;
	MemoryContext old;

	if (!tt_copy_fast_path || !tt_copy_fast_reader ||
		!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		rel->rd_rel->relkind != RELKIND_RELATION ||
		error_context_stack == NULL ||
		error_context_stack->callback != CopyFromErrorCallback)
		return;
	cstate = (CopyFromState) error_context_stack->arg;
	trig = copy_pipeline_trigger(rel);
	if (trig == NULL || trig->tgoid != td->tg_trigger->tgoid)
		return;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "talaria COPY",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	reader = tt_copy_reader_takeover(cstate, rel);
	if (reader != NULL)
	{
		ereport(DEBUG1,
				(errmsg_internal("talaria: COPY into \"%s\" feeds its pipeline directly after its first row (talaria's reader)",
								 RelationGetRelationName(rel))));
		estate = CreateExecutorState();
		(void) feed_copy_rows(&st, rel, trig, cstate, reader, estate, 1);
		FreeExecutorState(estate);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
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
	ErrorContextCallback errcb;
	IngestState *st;
	TTCopyReader *reader;
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
	(void) feed_copy_rows(&st, rel, trig, cstate, reader, estate, 0);
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

/* ---------------------------------------------------------------------
 * INSERT into a pipeline source, without the row trigger
 *
 * Through the trigger, ModifyTable forms a heap tuple of each row the
 * INSERT's plan makes, calls the trigger with it, and we take the tuple
 * apart again; the statement trigger is queued for ExecutorFinish.  When
 * the INSERT is a plain one (no RETURNING, ON CONFLICT, modifying WITH,
 * WITH CHECK OPTION or instrumentation) into a table on which nothing but
 * the pipeline's own two triggers would fire, the ExecutorRun hook
 * (talaria.c) gives its ModifyTable node talaria's own ExecProcNode
 * before the executor runs it: ExecutorStart did everything as usual
 * (privileges, locks, the plan), and the executor hooks of other
 * libraries run as usual; the rows of the plan go straight to the
 * pipeline, and at their end the pipeline is flushed and closed as the
 * statement trigger does.  What is stored, the dead letters, the errors
 * and the command tag are the trigger path's.  Anything else, and
 * PostgreSQL runs the INSERT through the trigger.
 * ---------------------------------------------------------------------
 */
/* The plan's rows are the source's rows as they are (no junk, same types). */
static bool
plan_makes_rows_of(PlanState *sub, TupleDesc desc)
{
	List	   *tlist = sub->plan->targetlist;
	ListCell   *lc;
	int			i = 0;

	if (list_length(tlist) != desc->natts)
		return false;
	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Form_pg_attribute att = TupleDescAttr(desc, i++);

		if (tle->resjunk)
			return false;
		if (!att->attisdropped && exprType((Node *) tle->expr) != att->atttypid)
			return false;
	}
	return true;
}

/* The plan's rows, into the pipeline: ModifyTable's ExecProcNode. */
static TupleTableSlot *
exec_insert_rows(PlanState *pstate)
{
	ModifyTableState *mt = castNode(ModifyTableState, pstate);
	EState	   *estate = mt->ps.state;
	ResultRelInfo *rri = mt->resultRelInfo;
	Relation	rel = rri->ri_RelationDesc;
	PlanState  *sub = outerPlanState(mt);
	Trigger    *trig = copy_pipeline_trigger(rel);
	MemoryContext old = CurrentMemoryContext;

	if (mt->mt_done)
		return NULL;
	if (trig == NULL)
		elog(ERROR, "pipeline trigger of \"%s\" not found",
			 RelationGetRelationName(rel));
	if (mt->fireBSTriggers)
	{
		ExecBSInsertTriggers(estate, rri);
		mt->fireBSTriggers = false;
	}
	for (;;)
	{
		TupleTableSlot *slot;
		IngestState *st;

		CHECK_FOR_INTERRUPTS();
		ResetPerTupleExprContext(estate);
		slot = ExecProcNode(sub);
		if (TupIsNull(slot))
			break;
		slot_getallattrs(slot);
		/* where the trigger would run (ExecCallTriggerFunc) */
		MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		if ((st = find_state(trig->tgoid)) == NULL)
			st = create_state(rel, trig);
		process_row(st, slot->tts_values, slot->tts_isnull);
		if (!st->batched)
			destroy_state(st);
		MemoryContextSwitchTo(old);
	}
	mt->mt_done = true;
	/* what the statement trigger does */
	destroy_source_states(RelationGetRelid(rel));
	return NULL;
}

void
tt_ingest_insert_prepare(QueryDesc *qd)
{
	PlannedStmt *ps = qd->plannedstmt;
	ModifyTableState *mt;
	ModifyTable *node;
	Relation	rel;
	Trigger    *trig;

	if (ps->commandType != CMD_INSERT || ps->hasReturning ||
		ps->hasModifyingCTE || ps->parallelModeNeeded || IsInParallelMode() ||
		qd->planstate == NULL || !IsA(qd->planstate, ModifyTableState) ||
		qd->planstate->instrument != NULL ||
		(qd->estate->es_top_eflags & EXEC_FLAG_SKIP_TRIGGERS) != 0)
		return;
	mt = (ModifyTableState *) qd->planstate;
	node = (ModifyTable *) mt->ps.plan;
	if (mt->operation != CMD_INSERT || mt->mt_nrels != 1 || mt->mt_done ||
		!mt->fireBSTriggers || node->onConflictAction != ONCONFLICT_NONE ||
		node->returningLists != NIL || node->withCheckOptionLists != NIL ||
		mt->mt_partition_tuple_routing != NULL ||
		mt->ps.ExecProcNodeReal == exec_insert_rows)
		return;
	rel = mt->resultRelInfo->ri_RelationDesc;
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)
		return;
	trig = copy_pipeline_trigger(rel);
	if (trig == NULL || !TRIGGER_FOR_BEFORE(trig->tgtype) ||
		!plan_makes_rows_of(outerPlanState(mt), RelationGetDescr(rel)))
		return;
	ereport(DEBUG1,
			(errmsg_internal("talaria: INSERT into \"%s\" feeds its pipeline directly",
							 RelationGetRelationName(rel))));
	ExecSetExecProcNode(&mt->ps, exec_insert_rows);
}
