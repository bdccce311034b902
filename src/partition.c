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
 * ingesting backend ask its database's partition worker
 * (partition_worker.c), which creates the partition in a transaction of
 * its own, serialized per target by an advisory lock:
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
 * The DDL runs as the target's owner in a security-restricted operation
 * (security.c), wherever it runs; the ingesting user needs only INSERT on
 * the target.  When the ingesting
 * transaction itself holds a lock the worker would wait for (it created
 * the table, or ran DDL on it), the partition is created in the ingesting
 * transaction instead: waiting for the worker would then never end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "datatype/timestamp.h"
#include "ingest.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

static void create_partition_as_owner(Oid relid, Timestamp key);

/* the first key of the per-target advisory lock of talaria._create_partition */
#define TT_PARTITION_LOCK_KEY 1952541806

/*
 * Reads the target's talaria.time_tables row directly (an index scan of
 * its primary key: no SPI, no SQL that the session's search_path could
 * redirect) and hands it to fn; false if there is none.
 */
static bool
time_table_row(Oid relid, void (*fn) (HeapTuple tup, TupleDesc desc, void *arg),
			   void *arg)
{
	Oid			catid = tt_catalog_relid("time_tables", false);
	Relation	cat;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	cat = table_open(catid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(cat, RelationGetPrimaryKeyIndex(cat), true,
							  NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		if (fn)
			fn(tup, RelationGetDescr(cat), arg);
		found = true;
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
	return found;
}

/*
 * Whatever max_past and max_future say, row times must lie in [year 1,
 * year 10000): partitions are named by four-digit years after Christ, and
 * their bounds must be representable (infinity, BC dates and year 294276
 * are no partition's).
 */
#define TT_KEY_MIN	INT64CONST(-63082281600000000)	/* 0001-01-01 00:00 */
#define TT_KEY_MAX	INT64CONST(252455615999999999)	/* 9999-12-31 23:59:59.999999 */

typedef struct WindowBound
{
	Interval   *iv;
	bool		past;
	TimestampTz t;
} WindowBound;

static void
window_bound_fn(void *arg)
{
	WindowBound *w = (WindowBound *) arg;

	w->t = DatumGetTimestampTz(DirectFunctionCall2(w->past ? timestamptz_mi_interval :
												   timestamptz_pl_interval,
												   TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
												   IntervalPGetDatum(w->iv)));
}

/* at most 2,000 years in each field: now +/- it is a valid timestamp */
#define TT_SAFE_YEARS 2000

static int64
window_bound(Interval *iv, bool past)
{
	WindowBound w = {iv, past, 0};
	ErrorData  *edata;

	if (Abs(iv->month) <= TT_SAFE_YEARS * MONTHS_PER_YEAR &&
		Abs(iv->day) <= TT_SAFE_YEARS * 366 &&
		Abs(iv->time) <= (int64) TT_SAFE_YEARS * 366 * USECS_PER_DAY)
		window_bound_fn(&w);
	else if (!tt_run_in_subxact(window_bound_fn, &w, &edata))
	{
		/* beyond any timestamp: the hard limit holds */
		if (edata->sqlerrcode != ERRCODE_DATETIME_VALUE_OUT_OF_RANGE)
			ReThrowError(edata);
		w.t = past ? TT_KEY_MIN : TT_KEY_MAX;
	}
	if (past)
		return Max(w.t, TT_KEY_MIN);
	return Min(w.t, TT_KEY_MAX);
}

static void
time_table_read_fn(HeapTuple tup, TupleDesc desc, void *arg)
{
	TTTimeTableDef *def = (TTTimeTableDef *) arg;
	bool		isnull;
	Datum		col = heap_getattr(tup, 2, desc, &isnull);
	Datum		d;
	StringInfoData w;

	if (isnull)
		return;
	def->attnum = get_attnum(def->relid, NameStr(*DatumGetName(col)));
	if (def->attnum == InvalidAttrNumber)
		return;
	def->typid = get_atttype(def->relid, def->attnum);
	def->xmin = HeapTupleHeaderGetXmin(tup->t_data);
	initStringInfo(&w);
	if (desc->natts >= 7)
	{
		d = heap_getattr(tup, 6, desc, &isnull);
		if (!isnull)
		{
			def->has_past = true;
			def->max_past = *DatumGetIntervalP(d);
			appendStringInfo(&w, "max_past %s",
							 DatumGetCString(DirectFunctionCall1(interval_out, d)));
		}
		d = heap_getattr(tup, 7, desc, &isnull);
		if (!isnull)
		{
			def->has_future = true;
			def->max_future = *DatumGetIntervalP(d);
			appendStringInfo(&w, "%smax_future %s", w.len ? ", " : "",
							 DatumGetCString(DirectFunctionCall1(interval_out, d)));
		}
	}
	if (w.len == 0)
		appendStringInfoString(&w, "years 1 to 9999");
	def->window = w.data;
	def->found = true;
}

bool
tt_time_table_read(Oid relid, TTTimeTableDef *def)
{
	memset(def, 0, sizeof(TTTimeTableDef));
	def->relid = relid;
	(void) time_table_row(relid, time_table_read_fn, def);
	return def->found;
}

void
tt_time_table_bind(const TTTimeTableDef *def, TTTimeTable *tt)
{
	Assert(def->found);
	tt->relid = def->relid;
	tt->attnum = def->attnum;
	tt->typid = def->typid;
	/* registered by this transaction: a worker could not see it */
	tt->registered_here = TransactionIdIsCurrentTransactionId(def->xmin);
	tt->accept_lo = def->has_past ?
		window_bound(unconstify(Interval *, &def->max_past), true) : TT_KEY_MIN;
	tt->accept_hi = def->has_future ?
		window_bound(unconstify(Interval *, &def->max_future), false) : TT_KEY_MAX;
	tt->window = def->window;
}

bool
tt_time_table_get(Relation rel, TTTimeTable *tt)
{
	TTTimeTableDef def;

	if (!tt_time_table_read(RelationGetRelid(rel), &def))
		return false;
	tt_time_table_bind(&def, tt);
	return true;
}

typedef struct TimeTableSettings
{
	Interval   *iv;
	int32	   *premake;
} TimeTableSettings;

static void
time_table_settings_fn(HeapTuple tup, TupleDesc desc, void *arg)
{
	TimeTableSettings *s = (TimeTableSettings *) arg;
	bool		isnull;

	*s->iv = *DatumGetIntervalP(heap_getattr(tup, 3, desc, &isnull));
	*s->premake = DatumGetInt32(heap_getattr(tup, 5, desc, &isnull));
}

/* The partition interval and premake of a time table; false if none. */
static bool
time_table_settings(Oid relid, Interval *iv, int32 *premake)
{
	TimeTableSettings s = {iv, premake};

	return time_table_row(relid, time_table_settings_fn, &s);
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

/*
 * Creates the partition of relid covering key: talaria._create_partition
 * run as the table's owner in a security-restricted operation (whoever
 * ingests, and in the worker, which connects as the bootstrap superuser).
 */
void
tt_partition_create_here(Oid relid, int64 key)
{
	create_partition_as_owner(relid, (Timestamp) key);
}

/*
 * Inside a privileged block as relid's owner: makes (if missing) the
 * partition covering t, and logs it if this transaction made it
 * (talaria.partition_log, for logical-replication subscribers).  Returns
 * the end of the partition's range.
 */
static Timestamp
create_one(Oid relid, Timestamp t)
{
	Oid			argtypes[2] = {REGCLASSOID, TIMESTAMPOID};
	Datum		args[2];
	int			before;
	int64		lo;
	int64		hi;

	args[0] = ObjectIdGetDatum(relid);
	args[1] = TimestampGetDatum(t);
	before = list_length(find_inheritance_children(relid, NoLock));
	(void) tt_call_internal("_create_partition", 2, argtypes, args, NULL);
	tt_partition_range(relid, (int64) t, &lo, &hi);
	if (list_length(find_inheritance_children(relid, NoLock)) > before)
		tt_partition_log(relid, (Timestamp) lo, (Timestamp) hi);
	return (Timestamp) hi;
}

static void
create_partition_as_owner(Oid relid, Timestamp key)
{
	TTPrivileged priv;

	tt_privileged_begin(&priv, tt_relation_owner(relid));
	(void) create_one(relid, key);
	tt_privileged_end(&priv);
}

/*
 * Makes every partition of relid covering [lower, upper), as its owner:
 * the partition log's rows on a subscriber.  Nothing if relid is not a
 * time table here.
 */
void
tt_partition_ensure_range(Oid relid, Timestamp lower, Timestamp upper)
{
	TTPrivileged priv;
	Interval	iv;
	int32		premake;
	Timestamp	t = lower;

	if (!time_table_settings(relid, &iv, &premake))
		return;
	tt_privileged_begin(&priv, tt_relation_owner(relid));
	while (t < upper)
	{
		Timestamp	next = create_one(relid, t);

		CHECK_FOR_INTERRUPTS();
		if (next <= t)
			break;
		t = next;
	}
	tt_privileged_end(&priv);
}

/*
 * Would a worker wait for a lock this transaction holds?  It needs SHARE
 * UPDATE EXCLUSIVE on the parent, the target's advisory lock (which
 * _create_partition takes: held once this transaction made a partition of
 * it or ran its maintenance) and must see the parent's catalog rows.
 * Then the partitions are created in this transaction.
 */
bool
tt_partition_create_here_needed(const TTTimeTable *tt)
{
	Relation	rel = table_open(tt->relid, NoLock);
	LOCKTAG		tag;
	bool		here;

	/* pg_advisory_xact_lock(TT_PARTITION_LOCK_KEY, target::oid::int) */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TT_PARTITION_LOCK_KEY,
						 (uint32) tt->relid, 2);
	here = rel->rd_createSubid != InvalidSubTransactionId || tt->registered_here ||
		CheckRelationLockedByMe(rel, ShareUpdateExclusiveLock, true) ||
		LockHeldByMe(&tag, ExclusiveLock);
	table_close(rel, NoLock);
	return here;
}

/*
 * The range [*lo, *hi) of the partition of relid that covers key, as
 * talaria._create_partition will make it (talaria._partition_start, the
 * table's partition_interval), in keys (tt_time_key).
 */
void
tt_partition_range(Oid relid, int64 key, int64 *lo, int64 *hi)
{
	/* a SQL function keeps its plan in fn_extra: one per transaction */
	static FmgrInfo start_fn;
	static LocalTransactionId start_lxid = InvalidLocalTransactionId;
	Interval	iv;
	int32		premake;

	if (!time_table_settings(relid, &iv, &premake))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not a time table", tt_rel_name(relid))));
	if (start_lxid != MyProc->lxid)
	{
		Oid			argtypes[2] = {INTERVALOID, TIMESTAMPOID};
		List	   *qname = list_make2(makeString(TT_SCHEMA),
									   makeString("_partition_start"));

		fmgr_info_cxt(LookupFuncName(qname, 2, argtypes, false), &start_fn,
					  TopTransactionContext);
		start_lxid = MyProc->lxid;
	}
	*lo = DatumGetTimestamp(FunctionCall2(&start_fn, IntervalPGetDatum(&iv),
										  TimestampGetDatum((Timestamp) key)));
	*hi = DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval,
												TimestampGetDatum(*lo),
												IntervalPGetDatum(&iv)));
}

/*
 * Premake, and with drop_expired also retention, for one time table, as
 * its owner in a security-restricted operation.  The caller must have the
 * owner's privileges (a superuser's run_maintenance passes for every
 * table, and still acts as each owner).
 */
static void
maintain_as_owner(Oid relid, bool drop_expired, int *made, int *retired)
{
	int			before = list_length(find_inheritance_children(relid, NoLock));
	Oid			argtypes[2] = {REGCLASSOID, TIMESTAMPOID};
	Oid			starttypes[2] = {INTERVALOID, TIMESTAMPOID};
	Datum		args[2];
	Datum		startargs[2];
	Interval	iv;
	int32		premake;
	Timestamp	t;
	TTPrivileged priv;
	int			i;

	tt_check_table_owner(relid);
	args[0] = ObjectIdGetDatum(relid);
	tt_privileged_begin(&priv, tt_relation_owner(relid));
	if (time_table_settings(relid, &iv, &premake))
	{
		/* partitions from now (UTC wall time) through premake ahead */
		startargs[0] = IntervalPGetDatum(&iv);
		startargs[1] = DirectFunctionCall2(timestamptz_zone,
										   CStringGetTextDatum("UTC"),
										   TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
		t = DatumGetTimestamp(tt_call_internal("_partition_start", 2, starttypes,
											   startargs, NULL));
		for (i = 0; i <= premake; i++)
			t = create_one(relid, t);
		if (made)
			*made = list_length(find_inheritance_children(relid, NoLock)) - before;
		if (drop_expired)
		{
			int			n = DatumGetInt32(tt_call_internal("_drop_expired", 1, argtypes,
														   args, NULL));

			if (retired)
				*retired = n;
			tt_partition_log_expire(relid);
		}
	}
	tt_privileged_end(&priv);
}

PG_FUNCTION_INFO_V1(tt_create_time_table);

/*
 * talaria.create_time_table(target, time_column, partition_interval,
 * retention, premake, max_past, max_future): validated by talaria._validate_time_table (as the
 * caller, who must own the table), recorded as the catalog's owner, then
 * premade as the table's owner.
 */
Datum
tt_create_time_table(PG_FUNCTION_ARGS)
{
#define NARGS 11
	Oid			argtypes[NARGS] = {REGCLASSOID, NAMEOID, INTERVALOID, INTERVALOID, INT4OID,
		INTERVALOID, INTERVALOID, TEXTOID, NAMEOID, BOOLOID, INTERVALOID};
	/* may be NULL: retention, max_past, max_future, archive_schema, dead_letter_retention */
	static const bool nullable[NARGS] = {false, false, false, true, false,
	true, true, false, true, false, true};
	Datum		args[NARGS];
	bool		nulls[NARGS];
	char		spinulls[NARGS];
	TTPrivileged priv;
	int			i;

	for (i = 0; i < NARGS; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		args[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
		spinulls[i] = nulls[i] ? 'n' : ' ';
		if (nulls[i] && !nullable[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("target, time_column, partition_interval, premake, retention_mode and maintenance must not be null")));
	}
	(void) tt_call_internal("_validate_time_table", NARGS, argtypes, args, nulls);
	tt_citus_guard(DatumGetObjectId(args[0]), "time table");
	tt_catalog_begin(&priv);
	(void) tt_catalog_exec("INSERT INTO talaria.time_tables (target, time_column,"
						   " partition_interval, retention, premake, max_past, max_future,"
						   " retention_mode, archive_schema, maintenance, dead_letter_retention)"
						   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
						   " ON CONFLICT ON CONSTRAINT time_tables_pkey DO UPDATE"
						   " SET time_column = EXCLUDED.time_column,"
						   " partition_interval = EXCLUDED.partition_interval,"
						   " retention = EXCLUDED.retention, premake = EXCLUDED.premake,"
						   " max_past = EXCLUDED.max_past, max_future = EXCLUDED.max_future,"
						   " retention_mode = EXCLUDED.retention_mode,"
						   " archive_schema = EXCLUDED.archive_schema,"
						   " maintenance = EXCLUDED.maintenance,"
						   " dead_letter_retention = EXCLUDED.dead_letter_retention",
						   NARGS, argtypes, args, spinulls, SPI_OK_INSERT);
	tt_catalog_end(&priv);
#undef NARGS
	/* the new row must be visible to premake; maintenance off: none */
	CommandCounterIncrement();
	if (DatumGetBool(args[9]))
		maintain_as_owner(DatumGetObjectId(args[0]), false, NULL, NULL);
	PG_RETURN_VOID();
}

/*
 * Dead letters of target older than its dead_letter_retention go (as the
 * catalogs' owner).  Returns how many.
 */
static uint64
expire_dead_letters(Oid relid)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		args[1];
	TTPrivileged priv;
	uint64		n;

	args[0] = ObjectIdGetDatum(relid);
	tt_catalog_begin(&priv);
	n = tt_catalog_exec("DELETE FROM talaria.dead_letters d USING talaria.time_tables t"
						" WHERE t.target OPERATOR(pg_catalog.=) $1"
						" AND d.target OPERATOR(pg_catalog.=) $1"
						" AND t.dead_letter_retention IS NOT NULL"
						" AND d.at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) t.dead_letter_retention)",
						1, argtypes, args, NULL, SPI_OK_DELETE);
	tt_catalog_end(&priv);
	return n;
}

/* Records one table's run in talaria.maintenance_runs (kept 30 days). */
static void
record_run(Oid relid, TimestampTz started, int made, int retired, uint64 dl,
		   const char *error, const char *sqlstate)
{
	Oid			argtypes[8] = {TIMESTAMPTZOID, REGCLASSOID, INT4OID, INT4OID, INT8OID,
	TEXTOID, TEXTOID, OIDOID};
	Datum		args[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	TTPrivileged priv;

	args[0] = TimestampTzGetDatum(started);
	args[1] = ObjectIdGetDatum(relid);
	args[2] = Int32GetDatum(made);
	args[3] = Int32GetDatum(retired);
	args[4] = Int64GetDatum((int64) dl);
	args[5] = error ? CStringGetTextDatum(error) : (Datum) 0;
	args[6] = sqlstate ? CStringGetTextDatum(sqlstate) : (Datum) 0;
	args[7] = ObjectIdGetDatum(GetUserId());
	nulls[5] = error ? ' ' : 'n';
	nulls[6] = sqlstate ? ' ' : 'n';
	tt_catalog_begin(&priv);
	(void) tt_catalog_exec("DELETE FROM talaria.maintenance_runs"
						   " WHERE target OPERATOR(pg_catalog.=) $1 AND finished_at OPERATOR(pg_catalog.<)"
						   " (pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::pg_catalog.interval)",
						   1, &argtypes[1], &args[1], NULL, SPI_OK_DELETE);
	(void) tt_catalog_exec("INSERT INTO talaria.maintenance_runs VALUES"
						   " ($1, pg_catalog.clock_timestamp(), $2, $3, $4, $5, $6, $7, $8)",
						   8, argtypes, args, nulls, SPI_OK_INSERT);
	tt_catalog_end(&priv);
}

/*
 * talaria.run_maintenance(target regclass) RETURNS boolean: premake,
 * retention and dead-letter retention for one time table, as its owner, in
 * a subtransaction.  A failure (a name clash, a renamed table, a lock...)
 * becomes a WARNING and a row of talaria.maintenance_runs: one odd table
 * never stops the maintenance of the others.  Cancellation and fatal
 * errors still end the statement.
 */
PG_FUNCTION_INFO_V1(tt_run_maintenance_one);

typedef struct MaintainArgs
{
	Oid			relid;
	int			made;
	int			retired;
	uint64		dl;
} MaintainArgs;

static void
maintain_one_fn(void *arg)
{
	MaintainArgs *m = (MaintainArgs *) arg;

	maintain_as_owner(m->relid, true, &m->made, &m->retired);
	m->dl = expire_dead_letters(m->relid);
}

Datum
tt_run_maintenance_one(PG_FUNCTION_ARGS)
{
	MaintainArgs m = {PG_GETARG_OID(0), 0, 0, 0};
	TimestampTz started = GetCurrentTimestamp();
	ErrorData  *edata;
	char	   *error = NULL;
	char	   *sqlstate = NULL;

	tt_check_table_owner(m.relid);
	if (!time_table_row(m.relid, NULL, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not a time table", tt_rel_name(m.relid)),
				 errhint("Register it with talaria.create_time_table().")));
	if (!tt_run_in_subxact(maintain_one_fn, &m, &edata))
	{
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->elevel > ERROR)
			ReThrowError(edata);
		error = edata->message;
		sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
		m.made = m.retired = 0;
		m.dl = 0;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("maintenance of time table %s failed: %s",
						tt_rel_name(m.relid), error),
				 errdetail("Recorded in talaria.maintenance_runs; the other time tables are maintained.")));
	}
	record_run(m.relid, started, m.made, m.retired, m.dl, error, sqlstate);
	PG_RETURN_BOOL(error == NULL);
}
