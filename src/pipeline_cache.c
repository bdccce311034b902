/*-------------------------------------------------------------------------
 *
 * pipeline_cache.c
 *	  What a pipeline's statements need from the catalog, kept per backend:
 *	  the recorded target (talaria.pipelines), the source's and the target's
 *	  column maps (types, conversions, defaults), the target's time-table
 *	  settings (talaria.time_tables) and computed columns
 *	  (talaria.computed_columns).
 *
 * A statement into a pipeline source looks its pipeline up by trigger OID
 * in a backend-local hash: no index scan and no catalog lookup unless
 * something changed.  What can change it, and how we hear of it:
 *
 *	- talaria.pipelines, time_tables, computed_columns: a statement trigger
 *	  on each (as on talaria.transforms) sends a relcache invalidation for
 *	  the catalog table, whoever writes it (the catalog functions, direct
 *	  DML, TRUNCATE, COPY of pg_restore; ENABLE ALWAYS, so also under
 *	  session_replication_role = replica).  Every entry goes.
 *	- ALTER TABLE, DROP, CREATE TRIGGER, GRANT ... on the source or the
 *	  target: PostgreSQL's own relcache invalidation of that table.  The
 *	  entries naming it go.  A partition attached to, detached from or dropped
 *	  from the target is such a change of the target; a change of the leaf
 *	  partition an entry remembers (ingest.c's route_row) forgets that leaf.
 *	- the columns' types and their input and output functions (ALTER
 *	  DOMAIN ... SET DEFAULT, a replaced function): syscache invalidations
 *	  of pg_type and pg_proc.  The entries using them go (an entry
 *	  remembers their hash values: a new table elsewhere does not empty
 *	  the cache).
 *
 * PostgreSQL delivers these transactionally: to this backend at its next
 * command (so its own uncommitted changes are seen), to the others once
 * committed, and on rollback this backend processes its own again, so
 * the entries built from the rolled-back state go too.  Each statement
 * starts by accepting the invalidations that have arrived
 * (AcceptInvalidationMessages, a few instructions when there are none), so
 * that a change committed elsewhere is seen by the next statement, as the
 * catalog scans it replaces saw it.
 *
 * An entry dropped while a statement still uses it is not freed: its
 * memory moves to the transaction's, and goes when the transaction ends.
 * An invalidation that arrives while an entry is being built (opening a
 * catalog table accepts invalidations) makes the build start over.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "ingest.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

typedef struct PipelineEntry
{
	Oid			tgoid;			/* hash key */
	TTPipelineDef *def;
} PipelineEntry;

static HTAB *pipeline_cache = NULL;

/* the catalog tables whose invalidation empties the cache, once known */
#define NCATALOGS 3
static const char *const catalog_names[NCATALOGS] =
{"pipelines", "time_tables", "computed_columns"};
static Oid	catalog_relids[NCATALOGS];

/* moves whenever something an entry could hold changes (see build) */
static uint64 inval_count = 0;

/* the entry being built, and its relations, if any */
static TTPipelineDef *building = NULL;
static Oid	building_source = InvalidOid;
static Oid	building_target = InvalidOid;

/*
 * Forgets an entry's definition: freed now outside a transaction, else
 * at the transaction's end (a statement of it may still be using it).
 */
static void
release_def(TTPipelineDef *def)
{
	/* a statement still using it must not open the leaf it names */
	def->leaf = InvalidOid;
	if (TopTransactionContext != NULL)
		MemoryContextSetParent(def->cxt, TopTransactionContext);
	else
		MemoryContextDelete(def->cxt);
}

static void
forget_entries(Oid relid)
{
	HASH_SEQ_STATUS seq;
	PipelineEntry *e;

	if (pipeline_cache == NULL)
		return;
	hash_seq_init(&seq, pipeline_cache);
	while ((e = (PipelineEntry *) hash_seq_search(&seq)) != NULL)
	{
		if (OidIsValid(relid) && e->def->source != relid &&
			e->def->target != relid)
		{
			/* the leaf partition it names changed: forget that alone */
			if (e->def->leaf == relid)
				e->def->leaf = InvalidOid;
			continue;
		}
		release_def(e->def);
		(void) hash_search(pipeline_cache, &e->tgoid, HASH_REMOVE, NULL);
	}
}

static void
relcache_callback(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; OidIsValid(relid) && i < NCATALOGS; i++)
		if (relid == catalog_relids[i])
			relid = InvalidOid;
	if (!OidIsValid(relid))
	{
		/* a catalog table changed (or everything did): all entries go */
		memset(catalog_relids, 0, sizeof(catalog_relids));
		forget_entries(InvalidOid);
		inval_count++;
		return;
	}
	if (relid == building_source || relid == building_target)
		inval_count++;
	forget_entries(relid);
}

static bool
uses(const TTPipelineDef *def, int cacheid, uint32 hashvalue)
{
	int			i;

	for (i = 0; i < def->nhashes; i++)
		if (def->hashes[i].hashvalue == hashvalue &&
			def->hashes[i].cacheid == cacheid)
			return true;
	return false;
}

/*
 * A type or function changed: the entries that use it go (all of them on
 * a cache reset, hashvalue 0), and so does a build in progress that has
 * read it (its types are noted before they are read).
 */
static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS seq;
	PipelineEntry *e;

	if (building != NULL &&
		(hashvalue == 0 || uses(building, cacheid, hashvalue)))
		inval_count++;
	if (pipeline_cache == NULL)
		return;
	hash_seq_init(&seq, pipeline_cache);
	while ((e = (PipelineEntry *) hash_seq_search(&seq)) != NULL)
	{
		if (hashvalue != 0 && !uses(e->def, cacheid, hashvalue))
			continue;
		release_def(e->def);
		(void) hash_search(pipeline_cache, &e->tgoid, HASH_REMOVE, NULL);
	}
}

static void
note_hash(TTPipelineDef *def, int cacheid, Oid oid)
{
	if (def->nhashes == def->maxhashes)
	{
		def->maxhashes = Max(16, def->maxhashes * 2);
		def->hashes = def->hashes ?
			repalloc(def->hashes, sizeof(TTCacheHash) * def->maxhashes) :
			palloc(sizeof(TTCacheHash) * def->maxhashes);
	}
	def->hashes[def->nhashes].cacheid = cacheid;
	def->hashes[def->nhashes].hashvalue =
		GetSysCacheHashValue1(cacheid, ObjectIdGetDatum(oid));
	def->nhashes++;
}

/*
 * Remembers what the maps hold of each column's type: the type (and the
 * domains' base types, their defaults) and its input and output
 * functions.
 */
static void
note_types(TTPipelineDef *def, TupleDesc desc)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Oid			typid = TupleDescAttr(desc, i)->atttypid;

		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		while (OidIsValid(typid))
		{
			HeapTuple	tup;
			Form_pg_type t;

			note_hash(def, TYPEOID, typid);
			tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
			if (!HeapTupleIsValid(tup))
				break;
			t = (Form_pg_type) GETSTRUCT(tup);
			note_hash(def, PROCOID, t->typinput);
			note_hash(def, PROCOID, t->typoutput);
			typid = t->typtype == TYPTYPE_DOMAIN ? t->typbasetype : InvalidOid;
			ReleaseSysCache(tup);
		}
	}
}

void
tt_pipeline_cache_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(PipelineEntry);
	ctl.hcxt = TopMemoryContext;
	pipeline_cache = hash_create("talaria pipelines", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, syscache_callback, (Datum) 0);
}

/* Looked up while building, so that their invalidation is recognized. */
static Oid
catalog_relid(int i)
{
	if (!OidIsValid(catalog_relids[i]))
		catalog_relids[i] = tt_catalog_relid(catalog_names[i], i == 0);
	return catalog_relids[i];
}

/* ---------------------------------------------------------------------
 * Building an entry
 * ---------------------------------------------------------------------
 */

/*
 * The target talaria.pipelines records for this source, if this trigger
 * is the recorded pipeline's (an index scan of its primary key: no SPI,
 * no SQL that the session's search_path could redirect).
 */
static Oid
recorded_target(Oid source, const char *transform)
{
	Oid			catid = catalog_relid(0);
	Oid			target = InvalidOid;
	Relation	cat;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(catid))
		return InvalidOid;		/* an extension older than its library */
	cat = table_open(catid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(source));
	scan = systable_beginscan(cat, RelationGetPrimaryKeyIndex(cat), true,
							  NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		tr = heap_getattr(tup, 3, RelationGetDescr(cat), &isnull);

		if (!isnull && strcmp(TextDatumGetCString(tr), transform) == 0)
			target = DatumGetObjectId(heap_getattr(tup, 2, RelationGetDescr(cat),
												   &isnull));
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
	return target;
}

/*
 * The target's computed columns (talaria.computed_columns' primary key
 * (target, column_name), so in column order), with their positions in the
 * target map.
 */
static void
load_computed(TTPipelineDef *def, Oid target)
{
	Relation	cat;
	Relation	idx;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int			i;
	int			max = 4;

	cat = table_open(catalog_relid(2), AccessShareLock);
	idx = index_open(RelationGetPrimaryKeyIndex(cat), AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(target));
	def->ncomputed = 0;
	def->computed = palloc0(sizeof(TTComputedDef) * max);
	scan = systable_beginscan_ordered(cat, idx, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext_ordered(scan, ForwardScanDirection)))
	{
		TupleDesc	desc = RelationGetDescr(cat);
		bool		isnull;
		TTComputedDef *c;

		if (def->ncomputed == max)
		{
			def->computed = repalloc(def->computed, sizeof(TTComputedDef) * max * 2);
			max *= 2;
		}
		c = &def->computed[def->ncomputed++];
		c->column = pstrdup(NameStr(*DatumGetName(heap_getattr(tup, 2, desc, &isnull))));
		c->transform = TextDatumGetCString(heap_getattr(tup, 3, desc, &isnull));
		c->on_error = 'p';
		c->rounding = TT_ROUNDING_ERROR;
		if (desc->natts >= 5)
		{
			/* 0.3.0: the column's policies (Talaria's typed computed columns) */
			char	   *on_error = TextDatumGetCString(heap_getattr(tup, 4, desc, &isnull));
			char	   *rounding = TextDatumGetCString(heap_getattr(tup, 5, desc, &isnull));

			c->on_error = strcmp(on_error, "null") == 0 ? 'n' :
				strcmp(on_error, "dead_letter") == 0 ? 'd' :
				strcmp(on_error, "abort") == 0 ? 'a' : 'p';
			c->rounding = strcmp(rounding, "round") == 0 ? TT_ROUNDING_ROUND :
				strcmp(rounding, "truncate") == 0 ? TT_ROUNDING_TRUNCATE :
				TT_ROUNDING_ERROR;
		}
	}
	systable_endscan_ordered(scan);
	index_close(idx, AccessShareLock);
	table_close(cat, AccessShareLock);
	for (i = 0; i < def->ncomputed; i++)
	{
		TTComputedDef *c = &def->computed[i];

		c->attindex = tt_target_attindex(def->tmap, c->column);
		if (c->attindex < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("computed column \"%s\" of \"%s\" does not exist",
							c->column, get_rel_name(target))));
	}
}

/* The target's side of an entry: its map, time table, computed columns. */
static void
build_target_side(TTPipelineDef *def, Relation target)
{
	def->target = RelationGetRelid(target);
	note_types(def, RelationGetDescr(target));
	def->tmap = tt_target_map_create(target, CurrentMemoryContext);
	if (target->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		(void) tt_time_table_read(def->target, &def->ttdef);
	else
		memset(&def->ttdef, 0, sizeof(def->ttdef));
	load_computed(def, def->target);
}

static bool
same_args(const TTPipelineDef *def, const Trigger *trig)
{
	int			i;

	if (def->nargs != trig->tgnargs)
		return false;
	for (i = 0; i < def->nargs; i++)
		if (strcmp(def->args[i], trig->tgargs[i]) != 0)
			return false;
	return true;
}

/*
 * Builds a definition in a context of its own, which goes with the
 * transaction if anything fails.  Starts over when an invalidation that
 * concerns it arrived meanwhile.  target is NULL for the source's side only.
 */
static TTPipelineDef *
build(Relation source, Trigger *trig, const TTPipelineDef *from,
	  Relation target)
{
	for (;;)
	{
		uint64		before = inval_count;
		MemoryContext cxt = AllocSetContextCreate(TopTransactionContext,
												  "talaria pipeline",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		TTPipelineDef *def = palloc0(sizeof(TTPipelineDef));
		int			i;

		def->cxt = cxt;
		def->tgoid = trig->tgoid;
		def->source = RelationGetRelid(source);
		def->nargs = trig->tgnargs;
		def->args = palloc0(sizeof(char *) * Max(1, trig->tgnargs));
		for (i = 0; i < trig->tgnargs; i++)
			def->args[i] = pstrdup(trig->tgargs[i]);
		building = def;
		building_source = def->source;
		building_target = target ? RelationGetRelid(target) : InvalidOid;
		PG_TRY();
		{
			/* known before reading them, so that their changes are seen */
			for (i = 0; i < NCATALOGS; i++)
				(void) catalog_relid(i);
			/* from: the source side is still good, only the target changed */
			if (from != NULL)
				def->recorded_target = from->recorded_target;
			else
				def->recorded_target = trig->tgnargs > 0 ?
					recorded_target(def->source, trig->tgargs[0]) : InvalidOid;
			note_types(def, RelationGetDescr(source));
			def->smap = tt_source_map_create(RelationGetDescr(source), cxt);
			if (target != NULL)
				build_target_side(def, target);
		}
		PG_FINALLY();
		{
			building = NULL;
			building_source = building_target = InvalidOid;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		if (inval_count == before)
			return def;
		MemoryContextDelete(cxt);
	}
}

static void
install(TTPipelineDef *def)
{
	PipelineEntry *e;
	bool		found;

	MemoryContextSetParent(def->cxt, CacheMemoryContext);
	e = (PipelineEntry *) hash_search(pipeline_cache, &def->tgoid, HASH_ENTER,
									  &found);
	if (found && e->def != def)
		release_def(e->def);
	e->def = def;
}

/* ---------------------------------------------------------------------
 * Lookups
 * ---------------------------------------------------------------------
 */

/*
 * The pipeline of this trigger on source: its source side is ready.  Once
 * per statement; accepts the invalidations that have arrived first.
 */
TTPipelineDef *
tt_pipeline_def(Relation source, Trigger *trig)
{
	PipelineEntry *e;
	TTPipelineDef *def;

	AcceptInvalidationMessages();
	e = (PipelineEntry *) hash_search(pipeline_cache, &trig->tgoid, HASH_FIND,
									  NULL);
	if (e != NULL && e->def->source == RelationGetRelid(source) &&
		same_args(e->def, trig))
		return e->def;
	def = build(source, trig, NULL, NULL);
	install(def);
	return def;
}

/*
 * The pipeline's target side for target (opened and locked by the caller):
 * built if the definition has none, or one for another table (a trigger
 * made by hand names its target, which the search_path may resolve to
 * another table from one statement to the next).  Returns the definition
 * to use, def or a new one.
 */
TTPipelineDef *
tt_pipeline_def_target(TTPipelineDef *def, Relation source, Trigger *trig,
					   Relation target)
{
	TTPipelineDef *fresh;
	PipelineEntry *e;

	if (def->target == RelationGetRelid(target))
		return def;
	fresh = build(source, trig, def, target);

	/*
	 * Replaces def in the cache only if it is still there (else it was
	 * invalidated, and fresh serves this statement alone, going with the
	 * transaction).
	 */
	e = (PipelineEntry *) hash_search(pipeline_cache, &def->tgoid, HASH_FIND,
									  NULL);
	if (e != NULL && e->def == def)
		install(fresh);
	return fresh;
}
