/*-------------------------------------------------------------------------
 *
 * ingest.h
 *	  Private declarations of the ingest pipeline: the row conversion layer
 *	  (row_convert.c), time partitions (partition.c) and the trigger
 *	  (ingest.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TT_INGEST_H
#define TT_INGEST_H

#include "access/tupdesc.h"
#include "commands/copy.h"
#include "executor/execdesc.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "utils/queryenvironment.h"
#include "utils/reltrigger.h"
#include "utils/timestamp.h"
#include "partitioning/partdefs.h"
#include "utils/relcache.h"

#include "talaria.h"

/* ---------------------------------------------------------------------
 * row_convert.c: heap tuple -> tree, tree -> target columns
 * ---------------------------------------------------------------------
 */
typedef struct TTSourceMap TTSourceMap;
typedef struct TTTargetMap TTTargetMap;

/* Built once, kept across statements (pipeline_cache.c); lives in cxt. */
extern TTSourceMap *tt_source_map_create(TupleDesc desc, MemoryContext cxt);

/*
 * The row (the source's values: from a tuple by tt_source_deform, or from
 * COPY) as to_jsonb(NEW) would show it, allocated in the current context
 * except for its member array, which is the map's (valid until the next
 * call).
 */
extern void tt_source_deform(TTSourceMap *map, HeapTuple tuple,
							 Datum **values, bool **nulls);
extern void tt_source_row(TTSourceMap *map, const Datum *values,
						  const bool *nulls, tt_value *dst);
/* Unique per map: the keys of tt_source_row's rows are its column names. */
extern uint64 tt_source_map_serial(const TTSourceMap *map);
extern void tt_source_map_names(TTSourceMap *map, const char **start,
								const char **end);

/*
 * Target side.  Conversion errors detected here (unknown key, value out of
 * range, NOT NULL) are returned in err (return value false) without
 * ereport; type input functions and jsonb checks may still ereport.
 * The map may be kept across statements (pipeline_cache.c): each
 * statement binds it to its executor state first.
 */
extern TTTargetMap *tt_target_map_create(Relation rel, MemoryContext cxt);
extern void tt_target_map_bind(TTTargetMap *map, EState *estate);
extern int	tt_target_attindex(TTTargetMap *map, const char *name);
/* Keys in [start, end) never change while the map is used (source names). */
extern void tt_target_map_stable_keys(TTTargetMap *map, const char *start,
									  const char *end);
extern bool tt_target_set_result(TTTargetMap *map, const tt_value *result,
								 Datum *values, bool *isnull, bool *isset,
								 const char *transform, TTCallError *err);
extern bool tt_target_set_column(TTTargetMap *map, int attindex,
								 const tt_value *v, Datum *values,
								 bool *isnull, const char *transform,
								 TTCallError *err);
extern bool tt_target_finish(TTTargetMap *map, Datum *values, bool *isnull,
							 const bool *isset, ExprContext *econtext,
							 TTCallError *err);
/* pipelines with unknown_keys => 'ignore': keys naming no column are skipped */
extern void tt_target_map_ignore_unknown(TTTargetMap *map, bool ignore);

/* computed columns (talaria.computed_columns.rounding) */
#define TT_ROUNDING_ERROR		0
#define TT_ROUNDING_ROUND		1	/* half away from zero */
#define TT_ROUNDING_TRUNCATE	2	/* toward zero, as Talaria (Go's int64(x)) */
extern const tt_value *tt_target_coerce_computed(TTTargetMap *map, int attindex,
												 const tt_value *v, int rounding,
												 bool parse_text, tt_value *tmp,
												 TTCallError *err);
extern bool tt_target_convert_may_raise(TTTargetMap *map, int attindex,
										const tt_value *v);

/* ---------------------------------------------------------------------
 * partition.c: time tables and partitions on demand
 * ---------------------------------------------------------------------
 */
typedef struct TTTimeTable
{
	Oid			relid;
	AttrNumber	attnum;			/* the partition key column */
	Oid			typid;			/* timestamptz, timestamp or date */
	bool		registered_here;	/* by the current transaction */
	int64		accept_lo;		/* accepted keys: [accept_lo, accept_hi] */
	int64		accept_hi;
	char	   *window;			/* the accepted window, for messages */
} TTTimeTable;

/* A talaria.time_tables row as read, kept across statements. */
typedef struct TTTimeTableDef
{
	Oid			relid;
	bool		found;
	AttrNumber	attnum;
	Oid			typid;
	TransactionId xmin;			/* of the row: registered_here */
	bool		has_past;
	bool		has_future;
	Interval	max_past;
	Interval	max_future;
	char	   *window;			/* the accepted window, for messages */
} TTTimeTableDef;

/*
 * Reads the target's talaria.time_tables row (an index scan), palloc'ing
 * in the current context; false if the table is not a time table.
 */
extern bool tt_time_table_read(Oid relid, TTTimeTableDef *def);

/*
 * The time table as the current transaction sees it: the accepted window
 * of row times from max_past and max_future around the transaction's
 * start.
 */
extern void tt_time_table_bind(const TTTimeTableDef *def, TTTimeTable *tt);

/* Both at once (no cache). */
extern bool tt_time_table_get(Relation rel, TTTimeTable *tt);

/* The key as microseconds since 2000-01-01 (UTC wall time). */
extern int64 tt_time_key(Datum d, Oid typid);

/* Is the key inside the time table's accepted window? */
static inline bool
tt_time_accepted(const TTTimeTable *tt, int64 key)
{
	return key >= tt->accept_lo && key <= tt->accept_hi;
}

/*
 * Does a partition (or the default partition) of rel cover the key?  On
 * success the covered range [*lo, *hi) is returned for caching.
 */
extern bool tt_partition_covers(Relation rel, PartitionDesc pd,
								const TTTimeTable *tt, int64 key,
								int64 *lo, int64 *hi);

/*
 * Must the partitions of tt be created in the current transaction (it holds
 * a lock a worker would wait for, or made the table)?  The target must be
 * locked.
 */
extern bool tt_partition_create_here_needed(const TTTimeTable *tt);

/* The range [lo, hi) of the partition that will cover key. */
extern void tt_partition_range(Oid relid, int64 key, int64 *lo, int64 *hi);

/* ---------------------------------------------------------------------
 * partition_worker.c: the partitions a statement is missing, created by
 * the database's partition worker in its own transaction (or, when that
 * cannot be, in the current one)
 * ---------------------------------------------------------------------
 */
typedef struct TTPartitionBatch TTPartitionBatch;

/* In the current memory context; here: create all in this transaction. */
extern TTPartitionBatch *tt_partition_batch_begin(const TTTimeTable *tt,
												  bool here);
/* Is the key in a partition the batch asked for? */
extern bool tt_partition_batch_has(const TTPartitionBatch *b, int64 key);
/* Asks for the partition covering key (not in the batch yet). */
extern void tt_partition_batch_add(TTPartitionBatch *b, int64 key);
/* Has every partition asked for been made (or left to this transaction)? */
extern bool tt_partition_batch_ready(TTPartitionBatch *b);
/*
 * Waits until every partition asked for exists (the worker's error, with
 * its SQLSTATE, is raised here).  The caller must not have the target
 * open: it reopens it to see them.
 */
extern void tt_partition_batch_finish(TTPartitionBatch *b);
extern void tt_partition_worker_preload(void);
extern void tt_partition_worker_release_db(Node *stmt);

/* ---------------------------------------------------------------------
 * pipeline_cache.c: what a pipeline's statements read from the catalog,
 * kept per backend until an invalidation says it changed
 * ---------------------------------------------------------------------
 */
typedef struct TTComputedDef
{
	char	   *column;
	char	   *transform;
	int			attindex;		/* in the target map */
	/* talaria.computed_columns.on_error: 'p'ipeline, 'n'ull, 'd'ead letter, 'a'bort */
	char		on_error;
	int			rounding;		/* TT_ROUNDING_* */
} TTComputedDef;

typedef struct TTCacheHash
{
	int			cacheid;		/* TYPEOID or PROCOID */
	uint32		hashvalue;
} TTCacheHash;

typedef struct TTPipelineDef
{
	Oid			tgoid;			/* the BEFORE ROW trigger */
	MemoryContext cxt;			/* holds all of it */
	Oid			source;
	int			nargs;			/* the trigger's arguments, as built for */
	char	  **args;
	Oid			recorded_target;	/* talaria.pipelines, or InvalidOid */
	TTSourceMap *smap;
	/* the target's side: InvalidOid until built */
	Oid			target;
	TTTargetMap *tmap;
	TTTimeTableDef ttdef;		/* found = false: not a time table */
	int			ncomputed;
	TTComputedDef *computed;
	/*
	 * The target's leaf partition a statement last stored into, and its
	 * range of time keys (ingest.c's route_row): InvalidOid when none, or
	 * once an invalidation of the leaf or of the definition came.
	 */
	Oid			leaf;
	int64		leaf_lo;
	int64		leaf_hi;
	/* the types and functions the maps use, as syscache hash values */
	TTCacheHash *hashes;
	int			nhashes;
	int			maxhashes;
} TTPipelineDef;

extern void tt_pipeline_cache_init(void);
extern TTPipelineDef *tt_pipeline_def(Relation source, Trigger *trig);
extern TTPipelineDef *tt_pipeline_def_target(TTPipelineDef *def,
											 Relation source, Trigger *trig,
											 Relation target);

/* copy_reader.c: COPY's text and CSV input, parsed faster */
typedef struct TTCopyReader TTCopyReader;

/* NULL when the COPY's options need PostgreSQL's own reader */
extern TTCopyReader *tt_copy_reader_begin(CopyFromState cstate);
extern TTCopyReader *tt_copy_reader_takeover(CopyFromState cstate,
											  Relation rel);
extern bool tt_copy_reader_next(TTCopyReader *r, ExprContext *econtext,
								Datum *values, bool *nulls);

/* ingest.c: COPY FROM into a pipeline source without the row trigger */
extern uint64 tt_ingest_rows_stored;
extern uint64 tt_ingest_rows_uncounted;
/* partition.c: create the partition in the current transaction, as owner */
extern void tt_partition_create_here(Oid relid, int64 key);
extern bool tt_dead_letter_error(int sqlerrcode);
extern bool tt_ingest_copy(const CopyStmt *stmt, const char *query_string,
						   QueryEnvironment *query_env, bool hooks_below,
						   uint64 *processed);
/* INSERT into a pipeline source without the row trigger (ExecutorRun hook) */
extern void tt_ingest_insert_prepare(QueryDesc *qd);

#endif							/* TT_INGEST_H */
