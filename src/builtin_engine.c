/*-------------------------------------------------------------------------
 *
 * builtin_engine.c
 *	  Talaria's built-in computed values, there after CREATE EXTENSION:
 *	  make://identifier and make://timestamp.
 *
 * They are rows of talaria.transforms (kind 'builtin', the symbol names
 * the function below), so they are looked up, cached, granted (to PUBLIC),
 * counted in transform_stats and found by drop_transform's dependency
 * check like any transform.  The install script makes them; pg_dump leaves
 * them out (CREATE EXTENSION makes them again) and nobody may replace,
 * drop or regrant them (catalog.c).
 *
 * make://identifier is Talaria's event identifier: 16 bytes, big-endian,
 * written as 32 lowercase hex characters:
 *	  bytes 0..7   the time, nanoseconds since 1970 (UTC)
 *	  bytes 8..11  a per-backend counter (starts at a random value)
 *	  bytes 12..15 the backend's process id
 * Talaria puts 4 random bytes where we put the process id.  Identifiers
 * therefore sort by creation time (as text, as bytea and in a uuid column,
 * which accepts 32 hex digits), and they are unique across backends: two
 * backends alive at the same time have different process ids, and one
 * backend never repeats a (time, counter) pair: its time never goes back
 * (a clock stepped backwards holds at the last time used) and when its
 * counter wraps within one nanosecond the time moves on by one.
 *
 * make://timestamp is the current Unix time in whole seconds (an integer),
 * as Talaria's: into a timestamptz column it is that instant, into bigint
 * the number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "miscadmin.h"
#include "talaria.h"

typedef int (*BuiltinFn) (tt_call *call);

typedef struct Builtin
{
	const char *symbol;
	BuiltinFn	fn;
} Builtin;

/* make://identifier state, per backend */
static uint64 id_last_ns = 0;
static uint32 id_seq = 0;
static bool id_seeded = false;

static uint64
realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64) ts.tv_sec * UINT64CONST(1000000000) + (uint64) ts.tv_nsec;
}

static void
put_be(unsigned char *p, uint64 v, int nbytes)
{
	int			i;

	for (i = nbytes - 1; i >= 0; i--)
	{
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

/* Fills the 16 bytes of the next identifier of this backend. */
static void
identifier_bytes(unsigned char *id)
{
	uint64		now = realtime_ns();

	if (!id_seeded)
	{
		if (!pg_strong_random(&id_seq, sizeof(id_seq)))
			id_seq = (uint32) now ^ (uint32) MyProcPid;
		id_seeded = true;
	}
	if (now > id_last_ns)
		id_last_ns = now;
	else if (id_seq == PG_UINT32_MAX)
		id_last_ns++;			/* the counter wraps: move the time on */
	id_seq++;
	put_be(id, id_last_ns, 8);
	put_be(id + 8, id_seq, 4);
	put_be(id + 12, (uint32) MyProcPid, 4);
}

static int
make_identifier(tt_call *call)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char id[16];
	tt_value   *v = tt_arena_alloc(call, sizeof(tt_value) + 32);
	char	   *text;
	int			i;

	if (v == NULL)
		return TT_ERROR;		/* the host reports the exhausted arena */
	identifier_bytes(id);
	text = (char *) (v + 1);
	for (i = 0; i < 16; i++)
	{
		text[2 * i] = hex[id[i] >> 4];
		text[2 * i + 1] = hex[id[i] & 0xf];
	}
	memset(v, 0, sizeof(tt_value));
	v->type = TT_STRING;
	v->u.str.ptr = text;
	v->u.str.len = 32;
	call->result = v;
	return TT_OK;
}

static int
make_timestamp(tt_call *call)
{
	tt_value   *v = tt_arena_alloc(call, sizeof(tt_value));

	if (v == NULL)
		return TT_ERROR;
	memset(v, 0, sizeof(tt_value));
	v->type = TT_INT;
	v->u.i = (int64_t) time(NULL);
	call->result = v;
	return TT_OK;
}

static const Builtin builtins[] = {
	{"identifier", make_identifier},
	{"timestamp", make_timestamp},
};

static void *
builtin_load(TTTransform *t)
{
	int			i;

	for (i = 0; i < lengthof(builtins); i++)
		if (t->symbol && strcmp(t->symbol, builtins[i].symbol) == 0)
			return (void *) &builtins[i];
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FUNCTION),
			 errmsg("built-in transform \"%s\" is not known to this version of talaria_transform",
					t->name),
			 errdetail("Its catalog row names the function \"%s\".",
					   t->symbol ? t->symbol : "")));
	return NULL;				/* not reached */
}

static int
builtin_call(TTTransform *t, tt_call *call)
{
	return ((const Builtin *) t->engine_state)->fn(call);
}

static void
builtin_unload(TTTransform *t)
{
	/* nothing was allocated */
}

const TTEngine tt_builtin_engine = {
	.kind = "builtin",
	.load = builtin_load,
	.call = builtin_call,
	.unload = builtin_unload,
};
