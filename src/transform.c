/*-------------------------------------------------------------------------
 *
 * transform.c
 *	  The engine-neutral interface: a per-backend cache of loaded
 *	  transforms, revalidated against the catalog only when the catalog
 *	  has changed, and the one place that runs a transform.
 *
 * A transform is looked up by name in a backend-local hash.  Its entry
 * remembers the catalog generation it was validated at; the generation
 * moves when a relcache invalidation for talaria.transforms arrives
 * (sent by a trigger on that table, so only after commit for other
 * backends, and on rollback the local one is undone).  Per call the cost
 * is a hash lookup and one integer comparison: no catalog access.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "portability/instr_time.h"
#include "talaria.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

static HTAB *tt_cache = NULL;

static const TTEngine *
engine_for(char kind)
{
	if (kind == 'b')
		return &tt_builtin_engine;
	return kind == 'n' ? &tt_native_engine : &tt_lua_engine;
}

static char *
top_strdup(const char *s)
{
	return s ? MemoryContextStrdup(TopMemoryContext, s) : NULL;
}

static bool
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
entry_unload(TTTransform *t)
{
	if (t->engine && t->engine_state)
		t->engine->unload(t);
	t->engine_state = NULL;
	t->valid = false;
}

static void
entry_forget(TTTransform *t)
{
	entry_unload(t);
	if (t->source)
		pfree(t->source);
	if (t->library)
		pfree(t->library);
	if (t->symbol)
		pfree(t->symbol);
	t->source = t->library = t->symbol = NULL;
}

/*
 * Brings an entry up to date with the catalog: reloads only when what the
 * catalog says (or, for native code, the file on disk) has changed.
 */
static void
revalidate(TTTransform *t)
{
	TTCatalogRow row;
	uint64		gen = tt_catalog_generation;

	if (!tt_catalog_fetch(t->name, &row))
	{
		entry_forget(t);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", t->name),
				 errhint("Register it with talaria.register_lua() or talaria.register_native().")));
	}
	/* who owns and may use it can change without the code changing */
	if (t->acl)
		pfree(t->acl);
	t->acl = NULL;
	t->owner = row.owner;
	if (row.acl)
	{
		t->acl = MemoryContextAlloc(TopMemoryContext, VARSIZE(row.acl));
		memcpy(t->acl, row.acl, VARSIZE(row.acl));
	}
	if (t->valid && t->kind == row.kind && same_string(t->source, row.source) &&
		same_string(t->library, row.library) && same_string(t->symbol, row.symbol) &&
		!(t->engine->stale && t->engine->stale(t)))
	{
		t->generation = gen;
		return;
	}

	entry_forget(t);
	t->kind = row.kind;
	t->engine = engine_for(row.kind);
	t->source = top_strdup(row.source);
	t->library = top_strdup(row.library);
	t->symbol = top_strdup(row.symbol);
	t->engine_state = t->engine->load(t);
	t->valid = true;
	t->generation = gen;
}

TTTransform *
tt_transform_lookup(const char *name)
{
	TTTransform *t;
	bool		found;

	if (tt_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = TT_NAME_MAXLEN + 1;
		ctl.entrysize = sizeof(TTTransform);
		ctl.hcxt = TopMemoryContext;
		tt_cache = hash_create("talaria transforms", 64, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (strlen(name) > TT_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));

	t = (TTTransform *) hash_search(tt_cache, name, HASH_ENTER, &found);
	if (!found)
	{
		char		key[TT_NAME_MAXLEN + 1];

		strlcpy(key, t->name, sizeof(key));
		memset(t, 0, sizeof(TTTransform));
		strlcpy(t->name, key, sizeof(t->name));
	}
	if (!t->valid || t->generation != tt_catalog_generation)
		revalidate(t);
	return t;
}

/*
 * May role use t?  Checked once per statement (transform_row, a pipeline,
 * a computed column), as PostgreSQL checks EXECUTE on a function.
 */
void
tt_transform_check_use(TTTransform *t, Oid role)
{
	tt_check_transform_use(t->name, role, t->owner, t->acl);
}

/* Cheap check for callers that cached the pointer. */
static inline void
ensure_current(TTTransform *t)
{
	if (!t->valid || t->generation != tt_catalog_generation)
		revalidate(t);
}

/*
 * Runs a transform on a row.  The caller's row and the result live in
 * rowcxt.  Returns TT_OK (*result set), TT_DROP, or TT_ERROR with err
 * filled; errors that must not be turned into dead letters (cancel,
 * server errors) are raised as ereport.
 */
int
tt_transform_call(TTTransform *t, tt_value *row, uint64 keys_serial,
				  MemoryContext rowcxt, tt_value **result, TTCallError *err)
{
	tt_call		call;
	TTCallPrivate priv;
	MemoryContext old;
	int			status;
	instr_time	start;
	instr_time	end;

	ensure_current(t);
	if (unlikely(t->stats == NULL))
		t->stats = tt_stats_transform(t->name);
	INSTR_TIME_SET_CURRENT(start);
	old = MemoryContextSwitchTo(rowcxt);
	tt_call_init(&call, &priv, t->name, row, rowcxt, keys_serial);
	if (t->engine != &tt_lua_engine)
	{
		tt_value_distrust_input();
		/* a tree built for Lua: its decimals get their text now */
		tt_value_materialize_all(row);
	}
	status = t->engine->call(t, &call);
	MemoryContextSwitchTo(old);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_SUBTRACT(end, start);
	t->stats->calls++;
	t->stats->time_ns += (uint64) end.tv_sec * 1000000000 + (uint64) end.tv_nsec;

	if (status == TT_OK)
	{
		if (priv.oom)
		{
			status = TT_ERROR;
			priv.errmsg = "out of memory in the per-row arena";
			priv.sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		}
		else if (call.result == NULL)
		{
			status = TT_ERROR;
			priv.errmsg = "returned TT_OK with a NULL result";
			priv.sqlerrcode = ERRCODE_DATA_EXCEPTION;
		}
		else
		{
			*result = call.result;
			t->stats->rows_out++;
			return TT_OK;
		}
	}
	if (status == TT_DROP)
	{
		*result = NULL;
		t->stats->dropped++;
		return TT_DROP;
	}
	if (status != TT_ERROR)
	{
		priv.errmsg = psprintf("returned unknown status %d", status);
		priv.sqlerrcode = ERRCODE_DATA_EXCEPTION;
	}
	err->message = priv.errmsg ? priv.errmsg : "(no message)";
	err->sqlerrcode = priv.sqlerrcode ? priv.sqlerrcode :
		TT_ERRCODE_TRANSFORM_FAILED;
	tt_stats_error(t->stats, err->message);
	return TT_ERROR;
}

/* Like tt_transform_call, but errors are ERRORs naming the transform. */
tt_value *
tt_transform_run(TTTransform *t, tt_value *row, MemoryContext rowcxt,
				 bool *dropped)
{
	tt_value   *result = NULL;
	TTCallError err;
	int			status = tt_transform_call(t, row, 0, rowcxt, &result, &err);

	*dropped = (status == TT_DROP);
	if (status == TT_ERROR)
		ereport(ERROR,
				(errcode(err.sqlerrcode),
				 errmsg("transform \"%s\" failed: %s", t->name, err.message)));
	return result;
}
