/*-------------------------------------------------------------------------
 *
 * talaria.h
 *	  Private declarations shared by the talaria_transform sources.
 *
 * The value tree (tt_value, from the public talaria_transform.h) is the one
 * representation every path shares: jsonb and heap tuples are converted
 * into it, engines (Lua, native) read and write it, and it is converted
 * back to jsonb or to target columns.  Native plugins work on it directly.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TALARIA_H
#define TALARIA_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/jsonb.h"
#include "utils/palloc.h"

#include "talaria_transform.h"

#define TT_SCHEMA "talaria"
#define TT_CATALOG_TABLE "transforms"
#define TT_NAME_MAXLEN 63

/* guc.c */
extern int	tt_lua_memory_limit_kb;
extern int	tt_native_memory_limit_kb;
extern int	tt_backend_memory_limit_kb;
extern int	tt_transform_timeout_ms;
extern bool tt_lua_cache;
extern bool tt_lua_lazy_objects;
extern bool tt_copy_fast_path;
extern bool tt_copy_fast_reader;
extern bool tt_insert_fast_path;
extern char *tt_native_library_path;
extern int	tt_ingest_batch_size;
extern int	tt_partition_worker_lock_timeout_ms;
extern int	tt_partition_worker_idle_timeout_ms;
extern char *tt_scheduler_databases;
extern bool tt_replaying;
extern char *tt_scheduler_role;
extern int	tt_scheduler_interval_s;

/* stats.c: cumulative counters (backend-local deltas, shared totals) */
typedef struct TTTransformCounters
{
	uint64		calls;
	uint64		rows_out;		/* returned a row or value */
	uint64		dropped;		/* returned nil */
	uint64		errors;
	uint64		dead_letters;
	uint64		time_ns;
	TimestampTz last_error_at;	/* 0: none */
	char		last_error[200];
} TTTransformCounters;

typedef struct TTPipelineCounters
{
	uint64		rows_in;
	uint64		stored;
	uint64		dropped;
	uint64		dead_letters;
} TTPipelineCounters;

extern int	tt_stats_max;
extern void tt_stats_shmem_init(void);
extern TTTransformCounters *tt_stats_transform(const char *name);
extern TTPipelineCounters *tt_stats_pipeline(Oid source, Oid target,
											 const char *transform);
extern void tt_stats_error(TTTransformCounters *c, const char *message);

/* scheduler.c */
extern void tt_scheduler_register(void);
extern void tt_define_gucs(void);

/*
 * The SQLSTATE of a transform's own failure (a Lua error, a native
 * TT_ERROR without a code): data_exception, class 22, which loaders
 * (pgloader, JDBC sinks) treat as a bad row, not a broken server.
 */
#define TT_ERRCODE_TRANSFORM_FAILED ERRCODE_DATA_EXCEPTION

/* memory.c: one budget for all a call allocates on our side (never ereport) */
typedef struct TTMemBudget
{
	size_t		used;			/* bytes charged */
	size_t		limit;			/* at most this many */
} TTMemBudget;

#define TT_MEM_HIT_NONE		0
#define TT_MEM_HIT_OWN		1	/* the budget's own limit refused */
#define TT_MEM_HIT_BACKEND	2	/* talaria.backend_memory_limit refused */

extern size_t tt_mem_backend_used;
extern int	tt_mem_hit;
extern const char *tt_mem_limit_text(const char *own_setting, int own_kb);

/* Takes n bytes from b (NULL: no budget) and the backend; false: refused. */
static inline bool
tt_mem_charge(TTMemBudget *b, size_t n)
{
	size_t		backend_limit = (size_t) tt_backend_memory_limit_kb * 1024;

	if (b == NULL)
		return true;
	if (unlikely(n > b->limit - Min(b->used, b->limit)))
	{
		tt_mem_hit = TT_MEM_HIT_OWN;
		return false;
	}
	if (unlikely(n > backend_limit - Min(tt_mem_backend_used, backend_limit)))
	{
		tt_mem_hit = TT_MEM_HIT_BACKEND;
		return false;
	}
	b->used += n;
	tt_mem_backend_used += n;
	return true;
}

static inline void
tt_mem_uncharge(TTMemBudget *b, size_t n)
{
	if (b == NULL)
		return;
	b->used -= n;
	tt_mem_backend_used -= n;
}

/* value.c: the per-call arena, host services and jsonb conversion */
typedef struct TTCallPrivate
{
	MemoryContext cxt;			/* the per-row arena */
	TTMemBudget *budget;		/* arena charges go here (NULL: none) */
	size_t		charged;		/* arena bytes charged to it by this call */
	char	   *errmsg;			/* set by host->error or the engine */
	int			sqlerrcode;		/* set by the engine, 0 = default */
	bool		oom;			/* an arena allocation failed */
	/*
	 * Nonzero: the row's keys are, in order, the column names of the source
	 * map with this serial (ingest.c's process_row), so an engine may
	 * recognise them without reading them (lua_convert.c's shapes).
	 */
	uint64		keys_serial;
	/* small arena allocations are cut from a chunk: [bump, bump_end) */
	char	   *bump;
	char	   *bump_end;
} TTCallPrivate;

extern const tt_host tt_host_table;
extern void tt_call_init(tt_call *call, TTCallPrivate *priv,
						 const char *transform, tt_value *row,
						 MemoryContext cxt, uint64 keys_serial);
/* no-ereport helpers, usable from Lua C functions and plugins */
extern void *tt_arena_alloc(tt_call *call, size_t size);
extern tt_value *tt_obj_get(const tt_value *obj, const char *key, size_t keylen);
extern tt_value *tt_obj_put(tt_call *call, tt_value *obj, const char *key, size_t keylen);
extern tt_value *tt_obj_put_nocopy(tt_call *call, tt_value *obj, const char *key, size_t keylen);
extern tt_value *tt_arr_append(tt_call *call, tt_value *arr);
extern bool tt_obj_reserve(tt_call *call, tt_value *obj, uint32 n);
extern bool tt_arr_reserve(tt_call *call, tt_value *arr, uint32 n);
extern const char *tt_type_name(uint32 type);
extern int	tt_format_double(double d, char *buf, size_t buflen);
extern bool tt_numeric_to_int64(Numeric num, int64 *out);
extern void tt_numeric_text(Numeric num, tt_value *dst);
extern bool tt_numeric_lazy_text;
extern void tt_numeric_defer(Numeric num, tt_value *dst);
extern bool tt_numeric_materialize(tt_value *v, tt_call *call);
extern void tt_value_materialize_all(tt_value *v);

/* a number not read yet (tt_numeric_defer): an integer or a decimal */
static inline bool
tt_numeric_deferred(const tt_value *v)
{
	return v->type == TT_NUMERIC && v->u.str.ptr == NULL;
}
extern void tt_numeric_memo_reset(void);
extern void tt_value_trust_input(void);
extern void tt_value_distrust_input(void);
extern void tt_value_note_subset(tt_value *dst, const tt_value *src,
								 uint8 *dropped, uint32 nkept);
extern Numeric tt_value_source_numeric(const tt_value *v);
extern bool tt_decimal_to_double(const char *text, size_t len, double *out);

/* PG side (may ereport) */
extern void tt_jsonb_to_value(Jsonb *jb, tt_value *dst);
extern Jsonb *tt_value_to_jsonb(const tt_value *v, const char *transform);
extern Jsonb *tt_parsed_json_to_jsonb(const tt_value *v);

/* json_input.c */
extern Jsonb *tt_json_text_to_jsonb(const char *s, int len);

/* the value of a hex digit, or -1 (JSON's \u escapes) */
static inline int
tt_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Is s[0, len) valid text in the database encoding, with no NUL byte (as
 * pg_verify_mbstr(GetDatabaseEncoding(), s, len, true))?  ASCII without
 * NUL is valid in every server encoding: it is checked here eight bytes at
 * a time, and anything else is left to pg_verify_mbstr.
 */
static inline bool
tt_text_valid(const char *s, size_t len)
{
	size_t		i = 0;

	for (; i + 8 <= len; i += 8)
	{
		uint64		x;

		memcpy(&x, s + i, sizeof(x));
		/* a byte >= 0x80, or a zero byte */
		if (((x | ((x - UINT64CONST(0x0101010101010101)) & ~x)) &
			 UINT64CONST(0x8080808080808080)) != 0)
			return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
	}
	/* the last 0 to 7 bytes: four, two and one at a time */
	if (len & 4)
	{
		uint32		x;

		memcpy(&x, s + i, sizeof(x));
		if (((x | ((x - 0x01010101U) & ~x)) & 0x80808080U) != 0)
			return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
		i += 4;
	}
	if (len & 2)
	{
		uint16		x;

		memcpy(&x, s + i, sizeof(x));
		if ((((uint32) x | (((uint32) x - 0x0101U) & ~(uint32) x)) & 0x8080U) != 0)
			return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
		i += 2;
	}
	if ((len & 1) && (unsigned char) (s[i] - 1) >= 0x7F)
		return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
	return true;
}

extern Datum tt_timestamp_to_pg(int64 unix_us);
/* host_tag of a TT_TIMESTAMP: the SQL type it came from, for its text */
#define TT_TS_TIMESTAMPTZ	0
#define TT_TS_TIMESTAMP		1		/* without time zone, read as UTC */
#define TT_TS_DATE			2		/* midnight UTC */
extern char *tt_timestamp_text(const tt_value *v);
/* host_tag of a row object whose strings point at source text datums */
#define TT_ROW_HAS_SOURCE_TEXT 1
/* host_tag of a TT_STRING that json.encode made: JSON text, stored into a
 * json/jsonb column as the JSON value it spells, not as a JSON string */
#define TT_STR_JSON_TEXT 0x4A534F4E
extern int64 tt_timestamp_from_pg(Datum ts);

/* transform.c: the engine-neutral interface */
typedef struct TTTransform TTTransform;

typedef struct TTEngine
{
	const char *kind;			/* "lua", "native" or "builtin" */
	/* compile/open; ereports on failure; returns engine state */
	void	   *(*load) (TTTransform *t);
	/* run once: returns TT_OK/TT_DROP/TT_ERROR (message in priv->errmsg) */
	int			(*call) (TTTransform *t, tt_call *call);
	/* free engine state (never ereports) */
	void		(*unload) (TTTransform *t);
	/* optional: has what was loaded changed although the catalog row
	 * reads the same (a library rebuilt on disk)?  Asked on revalidation */
	bool		(*stale) (TTTransform *t);
} TTEngine;

struct TTTransform
{
	char		name[TT_NAME_MAXLEN + 1];	/* hash key */
	bool		valid;			/* catalog row found and loaded */
	uint64		generation;		/* catalog generation when validated */
	char		kind;			/* 'l', 'n' or 'b' (built-in) */
	char	   *source;			/* Lua source (TopMemoryContext) */
	char	   *library;		/* native library path */
	char	   *symbol;			/* native symbol */
	Oid			owner;			/* who may change it */
	Acl		   *acl;			/* who else may use it (TopMemoryContext) */
	TTTransformCounters *stats; /* this backend's counters */
	const TTEngine *engine;
	void	   *engine_state;
};

/* error from one call, for dead letters */
typedef struct TTCallError
{
	char	   *message;
	int			sqlerrcode;
} TTCallError;

extern TTTransform *tt_transform_lookup(const char *name);
extern void tt_transform_check_use(TTTransform *t, Oid role);
/* keys_serial: see TTCallPrivate (0: nothing known of the row's keys) */
extern int	tt_transform_call(TTTransform *t, tt_value *row, uint64 keys_serial,
							  MemoryContext rowcxt, tt_value **result,
							  TTCallError *err);
extern tt_value *tt_transform_run(TTTransform *t, tt_value *row,
								  MemoryContext rowcxt, bool *dropped);

/* security.c: privileged work as another role, restricted, fixed path */
typedef struct TTPrivileged
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
} TTPrivileged;

extern void tt_privileged_begin(TTPrivileged *p, Oid role);
extern void tt_privileged_end(TTPrivileged *p);
extern Oid	tt_relation_owner(Oid relid);
extern void tt_check_table_owner(Oid relid);
extern char *tt_rel_name(Oid relid);
extern Datum tt_call_internal(const char *fname, int nargs, Oid *argtypes,
							  Datum *args, const bool *nulls);
extern bool tt_run_in_subxact(void (*fn) (void *arg), void *arg,
							  ErrorData **edata);

/* catalog.c */
extern uint64 tt_catalog_generation;
extern void tt_catalog_init(void);
typedef struct TTCatalogRow
{
	char		kind;			/* 'l', 'n' or 'b' (built-in) */
	char	   *source;
	char	   *library;
	char	   *symbol;
	Oid			owner;
	Acl		   *acl;			/* NULL: usable by its owner only */
} TTCatalogRow;

extern Oid	tt_catalog_relid(const char *name, bool missing_ok);

/* scaleout.c */
extern void tt_partition_log(Oid relid, Timestamp lower, Timestamp upper);
extern void tt_partition_log_expire(Oid relid);
extern void tt_partition_ensure_range(Oid relid, Timestamp lower, Timestamp upper);
extern bool tt_citus_installed(void);
extern void tt_citus_guard(Oid relid, const char *role);
extern bool tt_catalog_fetch(const char *name, TTCatalogRow *row);
extern bool tt_transform_usable(Oid role, Oid owner, Acl *acl);
extern void tt_check_transform_use(const char *name, Oid role, Oid owner,
								   Acl *acl);
extern void tt_validate_name(const char *name);
extern void tt_catalog_begin(TTPrivileged *priv);
extern void tt_catalog_end(TTPrivileged *priv);
extern uint64 tt_catalog_exec(const char *sql, int nargs, Oid *argtypes,
							  Datum *args, const char *nulls, int expected);
extern void tt_catalog_upsert(const char *name, const char *kind,
							  const char *source, const char *library,
							  const char *symbol);

/* lua_engine.c */
extern const TTEngine tt_lua_engine;
extern void tt_lua_check_source(const char *name, const char *source);

/* native_engine.c */
extern const TTEngine tt_native_engine;
extern void tt_native_check_library(const char *name, const char *library,
									const char *symbol);

/* builtin_engine.c: make://identifier, make://timestamp (kind 'builtin') */
extern const TTEngine tt_builtin_engine;

#endif							/* TALARIA_H */
