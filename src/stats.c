/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Cumulative statistics per transform and per pipeline, in shared
 *	  memory, as pg_stat_statements keeps its own.
 *
 * Hot path: a call or a row only adds to counters in a backend-local
 * entry that the transform's cache entry or the pipeline's statement
 * state points at (no lookup, no lock).  The local deltas are added to
 * shared memory at the end of each transaction (commit or abort: failed
 * work counts too) and before a view reads them.
 *
 * Shared memory needs talaria_transform in shared_preload_libraries.
 * Without it the views show the current backend's own counters only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "talaria.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

typedef struct TransformKey
{
	Oid			dbid;
	char		name[TT_NAME_MAXLEN + 1];
} TransformKey;

typedef struct TransformEntry
{
	TransformKey key;
	TTTransformCounters c;
} TransformEntry;

typedef struct PipelineKey
{
	Oid			dbid;
	Oid			source;
	Oid			target;
} PipelineKey;

typedef struct PipelineEntry
{
	PipelineKey key;
	char		transform[TT_NAME_MAXLEN + 1];
	TTPipelineCounters c;
} PipelineEntry;

typedef struct StatsShared
{
	LWLock	   *lock;
	TimestampTz reset_at;
} StatsShared;

int			tt_stats_max = 1000;

static StatsShared *shared = NULL;
static HTAB *shared_transforms = NULL;
static HTAB *shared_pipelines = NULL;
static HTAB *local_transforms = NULL;
static HTAB *local_pipelines = NULL;
static bool xact_callback_set = false;

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static Size
stats_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(StatsShared)),
					add_size(hash_estimate_size(tt_stats_max, sizeof(TransformEntry)),
							 hash_estimate_size(tt_stats_max, sizeof(PipelineEntry))));
}

static void
stats_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(stats_shmem_size());
	RequestNamedLWLockTranche("talaria_transform stats", 1);
}

static void
stats_shmem_startup(void)
{
	bool		found;
	HASHCTL		ctl;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("talaria_transform stats", sizeof(StatsShared), &found);
	if (!found)
	{
		shared->lock = &(GetNamedLWLockTranche("talaria_transform stats"))->lock;
		shared->reset_at = GetCurrentTimestamp();
	}
	ctl.keysize = sizeof(TransformKey);
	ctl.entrysize = sizeof(TransformEntry);
	shared_transforms = ShmemInitHash("talaria_transform transform stats",
									  tt_stats_max, tt_stats_max, &ctl,
									  HASH_ELEM | HASH_BLOBS);
	ctl.keysize = sizeof(PipelineKey);
	ctl.entrysize = sizeof(PipelineEntry);
	shared_pipelines = ShmemInitHash("talaria_transform pipeline stats",
									 tt_stats_max, tt_stats_max, &ctl,
									 HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init while preloading. */
void
tt_stats_shmem_init(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

static void
add_transform(TTTransformCounters *dst, const TTTransformCounters *src)
{
	dst->calls += src->calls;
	dst->rows_out += src->rows_out;
	dst->dropped += src->dropped;
	dst->errors += src->errors;
	dst->dead_letters += src->dead_letters;
	dst->time_ns += src->time_ns;
	if (src->last_error_at > dst->last_error_at)
	{
		dst->last_error_at = src->last_error_at;
		memcpy(dst->last_error, src->last_error, sizeof(dst->last_error));
	}
}

static void
add_pipeline(TTPipelineCounters *dst, const TTPipelineCounters *src)
{
	dst->rows_in += src->rows_in;
	dst->stored += src->stored;
	dst->dropped += src->dropped;
	dst->dead_letters += src->dead_letters;
}

/* Adds this backend's deltas to shared memory and clears them. */
static void
stats_flush(void)
{
	HASH_SEQ_STATUS seq;

	if (shared == NULL || (local_transforms == NULL && local_pipelines == NULL))
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (local_transforms)
	{
		TransformEntry *e;

		hash_seq_init(&seq, local_transforms);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			TransformEntry *se;
			bool		found;

			if (e->c.calls == 0 && e->c.dead_letters == 0)
				continue;
			se = hash_search(shared_transforms, &e->key, HASH_ENTER_NULL, &found);
			if (se == NULL)
				continue;		/* full: talaria.stats_max */
			if (!found)
				memset(&se->c, 0, sizeof(se->c));
			add_transform(&se->c, &e->c);
			memset(&e->c, 0, sizeof(e->c));
		}
	}
	if (local_pipelines)
	{
		PipelineEntry *e;

		hash_seq_init(&seq, local_pipelines);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			PipelineEntry *se;
			bool		found;

			if (e->c.rows_in == 0)
				continue;
			se = hash_search(shared_pipelines, &e->key, HASH_ENTER_NULL, &found);
			if (se == NULL)
				continue;
			if (!found)
				memset(&se->c, 0, sizeof(se->c));
			memcpy(se->transform, e->transform, sizeof(se->transform));
			add_pipeline(&se->c, &e->c);
			memset(&e->c, 0, sizeof(e->c));
		}
	}
	LWLockRelease(shared->lock);
}

static void
stats_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		stats_flush();
}

static void
ensure_local(void)
{
	HASHCTL		ctl;

	if (local_transforms != NULL)
		return;
	ctl.keysize = sizeof(TransformKey);
	ctl.entrysize = sizeof(TransformEntry);
	ctl.hcxt = TopMemoryContext;
	local_transforms = hash_create("talaria local transform stats", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(PipelineKey);
	ctl.entrysize = sizeof(PipelineEntry);
	local_pipelines = hash_create("talaria local pipeline stats", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	if (!xact_callback_set)
	{
		RegisterXactCallback(stats_xact_callback, NULL);
		xact_callback_set = true;
	}
}

/*
 * The backend-local counters of a transform (entries never move: the
 * transform cache keeps the pointer).
 */
TTTransformCounters *
tt_stats_transform(const char *name)
{
	TransformKey key;
	TransformEntry *e;
	bool		found;

	ensure_local();
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	strlcpy(key.name, name, sizeof(key.name));
	e = hash_search(local_transforms, &key, HASH_ENTER, &found);
	if (!found)
		memset(&e->c, 0, sizeof(e->c));
	return &e->c;
}

/* The backend-local counters of a pipeline (source -> target). */
TTPipelineCounters *
tt_stats_pipeline(Oid source, Oid target, const char *transform)
{
	PipelineKey key;
	PipelineEntry *e;
	bool		found;

	ensure_local();
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.source = source;
	key.target = target;
	e = hash_search(local_pipelines, &key, HASH_ENTER, &found);
	if (!found)
		memset(&e->c, 0, sizeof(e->c));
	strlcpy(e->transform, transform, sizeof(e->transform));
	return &e->c;
}

void
tt_stats_error(TTTransformCounters *c, const char *message)
{
	c->errors++;
	c->last_error_at = GetCurrentTimestamp();
	strlcpy(c->last_error, message ? message : "", sizeof(c->last_error));
}

/* ---------------------------------------------------------------------
 * SQL: talaria._transform_stats(), _pipeline_stats(), stats_reset()
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(tt_transform_stats);
PG_FUNCTION_INFO_V1(tt_pipeline_stats);
PG_FUNCTION_INFO_V1(tt_stats_reset);

/*
 * An error text may quote the data of the rows it failed on: only the
 * transform's owner (and members), superusers and pg_read_all_stats read
 * it, as pg_stat_statements shows query texts.
 */
static bool
may_read_errors(const char *name)
{
	TTCatalogRow row;

	if (has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		return true;
	return tt_catalog_fetch(name, &row) && has_privs_of_role(GetUserId(), row.owner);
}

static void
emit_transform(ReturnSetInfo *rsinfo, const TransformEntry *e)
{
	Datum		v[10];
	bool		n[10] = {false, false, false, false, false, false, false, false, false, false};
	uint64		rows = e->c.calls;

	v[0] = CStringGetTextDatum(e->key.name);
	v[1] = Int64GetDatum((int64) e->c.calls);
	v[2] = Int64GetDatum((int64) e->c.rows_out);
	v[3] = Int64GetDatum((int64) e->c.dropped);
	v[4] = Int64GetDatum((int64) e->c.errors);
	v[5] = Int64GetDatum((int64) e->c.dead_letters);
	v[6] = Float8GetDatum((double) e->c.time_ns / 1000000.0);
	v[7] = Float8GetDatum(rows ? (double) e->c.time_ns / 1000000.0 / (double) rows : 0.0);
	if (e->c.last_error_at != 0)
	{
		v[8] = CStringGetTextDatum(may_read_errors(e->key.name) ? e->c.last_error :
								   "<insufficient privilege>");
		v[9] = TimestampTzGetDatum(e->c.last_error_at);
	}
	else
		n[8] = n[9] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

static void
emit_pipeline(ReturnSetInfo *rsinfo, const PipelineEntry *e)
{
	Datum		v[7];
	bool		n[7] = {false, false, false, false, false, false, false};

	v[0] = ObjectIdGetDatum(e->key.source);
	v[1] = ObjectIdGetDatum(e->key.target);
	v[2] = CStringGetTextDatum(e->transform);
	v[3] = Int64GetDatum((int64) e->c.rows_in);
	v[4] = Int64GetDatum((int64) e->c.stored);
	v[5] = Int64GetDatum((int64) e->c.dropped);
	v[6] = Int64GetDatum((int64) e->c.dead_letters);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/*
 * Copies this database's entries (with shared memory: every backend's;
 * else this backend's own) out of the table, so that no lock is held while
 * they are emitted (which reads the catalog).  Both entry kinds start with
 * their key, which starts with the database's OID.
 */
static char *
collect_entries(HTAB *shared_h, HTAB *local_h, Size entrysize, int *n)
{
	HTAB	   *h = shared ? shared_h : local_h;
	HASH_SEQ_STATUS seq;
	char	   *e;
	char	   *out;
	int			cap;

	stats_flush();
	*n = 0;
	if (h == NULL)
		return NULL;
	if (shared)
		LWLockAcquire(shared->lock, LW_SHARED);
	cap = Max(1, (int) hash_get_num_entries(h));
	out = palloc(entrysize * cap);
	hash_seq_init(&seq, h);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (*(Oid *) e == MyDatabaseId && *n < cap)
			memcpy(out + entrysize * (*n)++, e, entrysize);
	if (shared)
		LWLockRelease(shared->lock);
	return out;
}

Datum
tt_transform_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TransformEntry *e;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	e = (TransformEntry *) collect_entries(shared_transforms, local_transforms,
										   sizeof(TransformEntry), &n);
	for (i = 0; i < n; i++)
		emit_transform(rsinfo, &e[i]);
	PG_RETURN_VOID();
}

Datum
tt_pipeline_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PipelineEntry *e;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	e = (PipelineEntry *) collect_entries(shared_pipelines, local_pipelines,
										  sizeof(PipelineEntry), &n);
	for (i = 0; i < n; i++)
		if (e[i].c.rows_in > 0)
			emit_pipeline(rsinfo, &e[i]);
	PG_RETURN_VOID();
}

/* Zeroes every counter of this database (superuser only: see the SQL). */
Datum
tt_stats_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	TransformEntry *t;
	PipelineEntry *p;

	stats_flush();
	if (shared)
	{
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		hash_seq_init(&seq, shared_transforms);
		while ((t = hash_seq_search(&seq)) != NULL)
			if (t->key.dbid == MyDatabaseId)
				memset(&t->c, 0, sizeof(t->c));
		hash_seq_init(&seq, shared_pipelines);
		while ((p = hash_seq_search(&seq)) != NULL)
			if (p->key.dbid == MyDatabaseId)
				memset(&p->c, 0, sizeof(p->c));
		shared->reset_at = GetCurrentTimestamp();
		LWLockRelease(shared->lock);
	}
	if (local_transforms)
	{
		hash_seq_init(&seq, local_transforms);
		while ((t = hash_seq_search(&seq)) != NULL)
			memset(&t->c, 0, sizeof(t->c));
		hash_seq_init(&seq, local_pipelines);
		while ((p = hash_seq_search(&seq)) != NULL)
			memset(&p->c, 0, sizeof(p->c));
	}
	PG_RETURN_VOID();
}
