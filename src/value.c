/*-------------------------------------------------------------------------
 *
 * value.c
 *	  The value tree: per-row arena, the host services plugins call, and
 *	  the conversions between jsonb and the tree.
 *
 * The host services never ereport: they run under Lua frames and inside
 * plugins, where a longjmp would skip frames that are not ours.  Arena
 * exhaustion is reported as NULL and remembered in the call; so is a
 * refusal of the call's memory budget (memory.c), which the engine sets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "talaria.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define TT_MAX_DEPTH 1000

/* ---------------------------------------------------------------------
 * Arena and host services (never ereport)
 * ---------------------------------------------------------------------
 */

/*
 * The per-row arena.  Allocations of up to TT_ARENA_SMALL bytes are cut
 * from chunks of TT_ARENA_CHUNK bytes (a row's few small ones cost one
 * palloc, not one each); larger ones are palloc'd.  Everything lives in
 * the call's memory context, reset after the row; nothing is freed
 * before.  Every pointer is 16-byte aligned, as talaria_transform.h
 * promises, and what is charged to the budget is the size asked for.
 */
#define TT_ARENA_ALIGN 16
#define TT_ARENA_SMALL 1024
#define TT_ARENA_CHUNK 4096

void *
tt_arena_alloc(tt_call *call, size_t size)
{
	TTCallPrivate *priv = (TTCallPrivate *) call->host_private;
	char	   *p;

	if (size == 0)
		size = 1;
	if (size > MaxAllocSize - TT_ARENA_ALIGN || !tt_mem_charge(priv->budget, size))
	{
		priv->oom = true;
		return NULL;
	}
	if (size <= TT_ARENA_SMALL)
	{
		p = (char *) TYPEALIGN(TT_ARENA_ALIGN, priv->bump);
		/* (aligning may have taken p past the end) */
		if (priv->bump == NULL || p >= priv->bump_end ||
			size > (size_t) (priv->bump_end - p))
		{
			char	   *chunk = MemoryContextAllocExtended(priv->cxt, TT_ARENA_CHUNK,
														   MCXT_ALLOC_NO_OOM);

			if (chunk == NULL)
				goto oom;
			p = (char *) TYPEALIGN(TT_ARENA_ALIGN, chunk);
			priv->bump_end = chunk + TT_ARENA_CHUNK;
		}
		priv->bump = p + size;
	}
	else
	{
		p = MemoryContextAllocExtended(priv->cxt, size + TT_ARENA_ALIGN - 1,
									   MCXT_ALLOC_NO_OOM);
		if (p == NULL)
			goto oom;
		p = (char *) TYPEALIGN(TT_ARENA_ALIGN, p);
	}
	if (priv->budget != NULL)
		priv->charged += size;
	return p;

oom:
	tt_mem_uncharge(priv->budget, size);
	priv->oom = true;
	return NULL;
}

static void *
host_alloc(tt_call *call, size_t size)
{
	return tt_arena_alloc(call, size);
}

static inline bool
key_equal(const tt_str *k, const char *key, size_t keylen)
{
	return k->len == keylen && memcmp(k->ptr, key, keylen) == 0;
}

tt_value *
tt_obj_get(const tt_value *obj, const char *key, size_t keylen)
{
	uint32		i;

	if (obj == NULL || obj->type != TT_OBJECT || key == NULL)
		return NULL;
	for (i = 0; i < obj->u.obj.count; i++)
	{
		if (key_equal(&obj->u.obj.members[i].key, key, keylen))
			return &obj->u.obj.members[i].value;
	}
	return NULL;
}

bool
tt_obj_reserve(tt_call *call, tt_value *obj, uint32 n)
{
	tt_member  *m;
	uint32		cap;

	if (obj->u.obj.cap >= n)
		return true;
	cap = Max(n, Max(8, obj->u.obj.cap * 2));
	m = tt_arena_alloc(call, (size_t) cap * sizeof(tt_member));
	if (m == NULL)
		return false;
	if (obj->u.obj.count > 0)
		memcpy(m, obj->u.obj.members, obj->u.obj.count * sizeof(tt_member));
	obj->u.obj.members = m;
	obj->u.obj.cap = cap;
	return true;
}

bool
tt_arr_reserve(tt_call *call, tt_value *arr, uint32 n)
{
	tt_value   *items;
	uint32		cap;

	if (arr->u.arr.cap >= n)
		return true;
	cap = Max(n, Max(8, arr->u.arr.cap * 2));
	items = tt_arena_alloc(call, (size_t) cap * sizeof(tt_value));
	if (items == NULL)
		return false;
	if (arr->u.arr.count > 0)
		memcpy(items, arr->u.arr.items, arr->u.arr.count * sizeof(tt_value));
	arr->u.arr.items = items;
	arr->u.arr.cap = cap;
	return true;
}

/*
 * Add a member whose key the caller guarantees to outlive the row and not
 * to be present already (conversions from jsonb and Lua tables).
 */
tt_value *
tt_obj_put_nocopy(tt_call *call, tt_value *obj, const char *key, size_t keylen)
{
	tt_member  *m;

	if (obj->u.obj.count == obj->u.obj.cap &&
		!tt_obj_reserve(call, obj, obj->u.obj.count + 1))
		return NULL;
	m = &obj->u.obj.members[obj->u.obj.count++];
	m->key.ptr = key;
	m->key.len = (uint32) keylen;
	memset(&m->value, 0, sizeof(tt_value));
	return &m->value;
}

tt_value *
tt_obj_put(tt_call *call, tt_value *obj, const char *key, size_t keylen)
{
	tt_value   *v;
	char	   *copy;

	if (obj == NULL || obj->type != TT_OBJECT || key == NULL ||
		keylen > PG_UINT32_MAX)
		return NULL;
	v = tt_obj_get(obj, key, keylen);
	if (v != NULL)
	{
		memset(v, 0, sizeof(tt_value));
		return v;
	}
	copy = tt_arena_alloc(call, keylen + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, key, keylen);
	copy[keylen] = '\0';
	return tt_obj_put_nocopy(call, obj, copy, keylen);
}

static int
host_remove(tt_value *obj, const char *key, size_t keylen)
{
	uint32		i;

	if (obj == NULL || obj->type != TT_OBJECT || key == NULL)
		return 0;
	for (i = 0; i < obj->u.obj.count; i++)
	{
		if (key_equal(&obj->u.obj.members[i].key, key, keylen))
		{
			memmove(&obj->u.obj.members[i], &obj->u.obj.members[i + 1],
					(obj->u.obj.count - i - 1) * sizeof(tt_member));
			obj->u.obj.count--;
			return 1;
		}
	}
	return 0;
}

tt_value *
tt_arr_append(tt_call *call, tt_value *arr)
{
	tt_value   *v;

	if (arr == NULL || arr->type != TT_ARRAY)
		return NULL;
	if (arr->u.arr.count == arr->u.arr.cap &&
		!tt_arr_reserve(call, arr, arr->u.arr.count + 1))
		return NULL;
	v = &arr->u.arr.items[arr->u.arr.count++];
	memset(v, 0, sizeof(tt_value));
	return v;
}

static int
host_set_string(tt_call *call, tt_value *dst, const char *s, size_t len)
{
	char	   *copy;

	if (dst == NULL || (s == NULL && len > 0) || len > PG_UINT32_MAX)
		return 0;
	copy = tt_arena_alloc(call, len + 1);
	if (copy == NULL)
		return 0;
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	dst->type = TT_STRING;
	dst->u.str.ptr = copy;
	dst->u.str.len = (uint32) len;
	return 1;
}

static void
host_set_object(tt_value *dst)
{
	if (dst == NULL)
		return;
	memset(dst, 0, sizeof(tt_value));
	dst->type = TT_OBJECT;
}

static void
host_set_array(tt_value *dst)
{
	if (dst == NULL)
		return;
	memset(dst, 0, sizeof(tt_value));
	dst->type = TT_ARRAY;
}

static int
host_error(tt_call *call, const char *fmt,...)
{
	TTCallPrivate *priv = (TTCallPrivate *) call->host_private;
	char		buf[1024];
	va_list		ap;
	size_t		len;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt ? fmt : "(no message)", ap);
	va_end(ap);
	len = strlen(buf);
	/* not charged: a plugin's message must get through a spent budget */
	priv->errmsg = MemoryContextAllocExtended(priv->cxt, len + 1, MCXT_ALLOC_NO_OOM);
	if (priv->errmsg)
		memcpy(priv->errmsg, buf, len + 1);
	return TT_ERROR;
}

/*
 * Would CHECK_FOR_INTERRUPTS() end the statement now?  Only the interrupts
 * that raise an error count: a plugin that stops for a catchup or barrier
 * interrupt would fail its row for nothing.
 */
static int
host_interrupted(tt_call *call)
{
	if (!InterruptPending || InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return 0;
	return ProcDiePending || ClientConnectionLost ||
		(QueryCancelPending && QueryCancelHoldoffCount == 0);
}

const tt_host tt_host_table = {
	.abi_version = TT_ABI_VERSION,
	.size = sizeof(tt_host),
	.alloc = host_alloc,
	.get = tt_obj_get,
	.put = tt_obj_put,
	.remove = host_remove,
	.append = tt_arr_append,
	.set_string = host_set_string,
	.set_object = host_set_object,
	.set_array = host_set_array,
	.error = host_error,
	.interrupted = host_interrupted,
};

void
tt_call_init(tt_call *call, TTCallPrivate *priv, const char *transform,
			 tt_value *row, MemoryContext cxt, uint64 keys_serial)
{
	priv->cxt = cxt;
	priv->budget = NULL;
	priv->charged = 0;
	priv->errmsg = NULL;
	priv->oom = false;
	priv->sqlerrcode = 0;
	priv->keys_serial = keys_serial;
	priv->bump = NULL;
	priv->bump_end = NULL;
	call->size = sizeof(tt_call);
	call->_pad = 0;
	call->host = &tt_host_table;
	call->transform = transform;
	call->row = row;
	call->result = row;
	call->host_private = priv;
}

const char *
tt_type_name(uint32 type)
{
	switch (type)
	{
		case TT_NULL:
			return "null";
		case TT_BOOL:
			return "boolean";
		case TT_INT:
			return "integer";
		case TT_FLOAT:
			return "float";
		case TT_NUMERIC:
			return "numeric";
		case TT_STRING:
			return "string";
		case TT_OBJECT:
			return "object";
		case TT_ARRAY:
			return "array";
		case TT_TIMESTAMP:
			return "timestamp";
	}
	return "unknown";
}

/*
 * Shortest decimal text that reads back as the same double (as JSON.stringify
 * and Python's repr do); integral values within 2^53, where every integer is
 * exact, print as integers.  Returns the length.
 */
int
tt_format_double(double d, char *buf, size_t buflen)
{
	int			prec;

	if (d == floor(d) && fabs(d) <= 9007199254740992.0)
		return snprintf(buf, buflen, "%lld", (long long) d);
	for (prec = 15; prec <= 17; prec++)
	{
		int			n = snprintf(buf, buflen, "%.*g", prec, d);

		if (strtod(buf, NULL) == d)
			return n;
	}
	return (int) strlen(buf);
}

/* ---------------------------------------------------------------------
 * Numeric: decode the (stable, on-disk) format to find exact integers
 * without going through text.  Mirrors the layout in numeric.c.
 * ---------------------------------------------------------------------
 */
#define NUM_SIGN_MASK		0xC000
#define NUM_NEG				0x4000
#define NUM_SHORT			0x8000
#define NUM_SPECIAL			0xC000
#define NUM_SHORT_SIGN_MASK	0x2000
#define NUM_SHORT_DSCALE_MASK 0x1F80
#define NUM_SHORT_DSCALE_SHIFT 7
#define NUM_SHORT_WEIGHT_SIGN_MASK 0x0040
#define NUM_SHORT_WEIGHT_MASK 0x003F
#define NUM_DSCALE_MASK		0x3FFF
#define NUM_NBASE			10000

/* A finite Numeric's header, and where its base-10000 digits are. */
typedef struct NumParts
{
	bool		neg;
	int16		weight;			/* of the first digit, in base 10000 */
	int			dscale;			/* decimal digits after the point */
	int			ndigits;
	const char *digits;			/* int16s, maybe unaligned */
} NumParts;

/* Returns false for NaN and infinities (and anything malformed). */
static bool
numeric_parts(Numeric num, NumParts *np)
{
	const char *data = VARDATA_ANY(num);
	size_t		size = VARSIZE_ANY_EXHDR(num);
	uint16		header;
	size_t		hdrsize;

	if (size < sizeof(uint16))
		return false;
	memcpy(&header, data, sizeof(uint16));
	if ((header & NUM_SIGN_MASK) == NUM_SPECIAL)
		return false;
	if ((header & NUM_SIGN_MASK) == NUM_SHORT)
	{
		np->neg = (header & NUM_SHORT_SIGN_MASK) != 0;
		np->dscale = (header & NUM_SHORT_DSCALE_MASK) >> NUM_SHORT_DSCALE_SHIFT;
		np->weight = (int16) (((header & NUM_SHORT_WEIGHT_SIGN_MASK) ?
							   ~NUM_SHORT_WEIGHT_MASK : 0) |
							  (header & NUM_SHORT_WEIGHT_MASK));
		hdrsize = sizeof(uint16);
	}
	else
	{
		if (size < 2 * sizeof(uint16))
			return false;
		np->neg = (header & NUM_SIGN_MASK) == NUM_NEG;
		np->dscale = header & NUM_DSCALE_MASK;
		memcpy(&np->weight, data + sizeof(uint16), sizeof(int16));
		hdrsize = 2 * sizeof(uint16);
	}
	np->ndigits = (int) ((size - hdrsize) / sizeof(int16));
	np->digits = data + hdrsize;
	return true;
}

static inline int16
numeric_digit(const NumParts *np, int i)
{
	int16		digit = 0;

	if (i >= 0 && i < np->ndigits)
		memcpy(&digit, np->digits + i * sizeof(int16), sizeof(int16));
	return digit;
}

bool
tt_numeric_to_int64(Numeric num, int64 *out)
{
	NumParts	np;
	uint64		acc = 0;
	int			i;

	if (!numeric_parts(num, &np) || np.dscale != 0)
		return false;
	if (np.ndigits == 0)
	{
		*out = 0;
		return true;
	}
	if (np.weight < 0 || np.weight > 4)
		return false;
	for (i = 0; i <= np.weight; i++)
	{
		if (__builtin_mul_overflow(acc, (uint64) NUM_NBASE, &acc) ||
			__builtin_add_overflow(acc, (uint64) numeric_digit(&np, i), &acc))
			return false;
	}
	if (np.neg)
	{
		if (acc > (uint64) PG_INT64_MAX + 1)
			return false;
		*out = (int64) (0 - acc);
	}
	else
	{
		if (acc > (uint64) PG_INT64_MAX)
			return false;
		*out = (int64) acc;
	}
	return true;
}

/*
 * Numeric text without numeric_out, and a side table that remembers which
 * Numeric a text came from.  A value that goes back to jsonb untouched
 * (same text pointer, tagged with its slot in host_tag) reuses its Numeric:
 * no parsing, and the exact original text (trailing zeros included).
 * Entries are checked by pointer, so a stale tag only costs speed.
 */
#define TT_MEMO_SIZE 256

typedef struct NumericMemo
{
	const char *text;			/* NULL: an integer (TT_INT) of value i, or
								 * a deferred number not yet read */
	int64		i;				/* a decimal's: its text's length */
	Numeric		num;
	bool		deferred;		/* made by tt_numeric_defer */
	bool		deferred_int;	/* ... and found an integer: i is its value */
} NumericMemo;

static NumericMemo tt_memo[TT_MEMO_SIZE];
static uint32 tt_memo_count = 0;

/*
 * Bumped by every reset: a deferred number carries it (in its u.str.len)
 * so that one outliving its row can never take another row's slot.
 */
static uint32 tt_memo_generation = 1;

/*
 * Set by the caller that builds a tree for a Lua transform (process_row),
 * just around the building; cleared by every memo reset.
 */
bool		tt_numeric_lazy_text = false;

/* a deferred number was made since the last reset */
static bool memo_has_deferred = false;

/*
 * The jsonb values read into the tree for the current row (tt_jsonb_to_value),
 * alive until the row is done: their strings and keys are valid text (jsonb
 * checked them), so the jsonb writer need not check them again.  Only
 * honoured for a Lua transform's result (tt_value_trust_input), whose
 * strings are either the input's own values, whole, or copies in the arena,
 * and only until a native transform runs on the row: a native plugin may
 * point anywhere, even into a slice of the input, and change trees in place
 * (tt_value_distrust_input).
 */
#define TT_TRUSTED_MAX 8

static const char *trusted_start[TT_TRUSTED_MAX];
static const char *trusted_end[TT_TRUSTED_MAX];
static int	trusted_count = 0;
static bool trusted_on = false;
static bool untrusted_row = false;	/* a native transform ran on this row */

/*
 * The containers (objects, arrays) read from those jsonb values: a tree
 * object or array that is still the very one read (same member or item
 * array, same count: host_tag names its slot) is written back by copying
 * the container's bytes, which are position-independent.  Like the
 * strings, only for a Lua transform's result (and until a native one runs
 * on the row): Lua never changes a tree in place (a changed object is a new
 * member array), a native plugin may.
 */
#define TT_CONTAINERS_MAX 256

typedef struct ContainerMemo
{
	const void *nodes;			/* the tree's member or item array */
	uint32		type;			/* TT_OBJECT or TT_ARRAY */
	uint32		count;
	const char *bytes;			/* the container, as stored */
	uint32		len;
} ContainerMemo;

static ContainerMemo container_memo[TT_CONTAINERS_MAX];
static uint32 container_count = 0;

/*
 * Objects a Lua transform made from an untouched input object by dropping
 * some of its members and perhaps adding others (tt_value_note_subset):
 * the writer copies the kept members' keys and values from the input
 * container's bytes, unconverted, and writes only the added ones.  Tagged
 * in host_tag with SPLICE_TAG and their slot; valid while the object is
 * the very one noted (same member array and count), under the same rules
 * as the container memo.
 */
#define TT_SPLICES_MAX 64
#define SPLICE_TAG 0x80000000U

/* where a kept member's value is in the input container's data */
typedef struct SpliceSource
{
	uint32		off;
	uint32		len;
	JEntry		type;
} SpliceSource;

typedef struct SpliceMemo
{
	const tt_member *members;	/* the object's member array */
	uint32		count;
	uint32		nkept;			/* members[0 .. nkept-1]: the kept ones */
	uint8	   *dropped;		/* per input member: not kept */
	uint32		source_tag;		/* the input object's container memo */
} SpliceMemo;

static SpliceMemo splice_memo[TT_SPLICES_MAX];
static uint32 splice_count = 0;

/* The start of a row: forgets the last row's numbers and jsonb values. */
void
tt_numeric_memo_reset(void)
{
	tt_memo_count = 0;
	if (++tt_memo_generation == 0)
		tt_memo_generation = 1;
	tt_numeric_lazy_text = false;
	memo_has_deferred = false;
	trusted_count = 0;
	trusted_on = false;
	untrusted_row = false;
	container_count = 0;
	splice_count = 0;
}

void
tt_value_trust_input(void)
{
	trusted_on = trusted_count > 0 && !untrusted_row;
}

/*
 * A native transform is about to run: it may change any tree of the row in
 * place (its input is the row, or a result made of the row's values), so
 * nothing of this row is trusted any more.
 */
void
tt_value_distrust_input(void)
{
	trusted_on = false;
	untrusted_row = true;
}

static inline bool
trusted_text(const tt_str *s)
{
	int			i;

	if (!trusted_on)
		return false;
	for (i = 0; i < trusted_count; i++)
		if (s->ptr >= trusted_start[i] && s->ptr + s->len <= trusted_end[i])
			return true;
	return false;
}

static inline void
container_read(tt_value *dst, const JsonbContainer *c, uint32 len)
{
	if (container_count < TT_CONTAINERS_MAX)
	{
		ContainerMemo *cm = &container_memo[container_count];

		cm->nodes = dst->type == TT_OBJECT ? (const void *) dst->u.obj.members :
			(const void *) dst->u.arr.items;
		cm->count = dst->type == TT_OBJECT ? dst->u.obj.count : dst->u.arr.count;
		cm->type = dst->type;
		cm->bytes = (const char *) c;
		cm->len = len;
		dst->host_tag = ++container_count;
	}
}

/* The bytes of the container v was read from, if it is untouched. */
static inline const ContainerMemo *
container_lookup(const tt_value *v)
{
	uint32		tag = v->host_tag;
	const ContainerMemo *cm;

	if (!trusted_on || tag == 0 || tag > container_count)
		return NULL;
	cm = &container_memo[tag - 1];
	if (cm->type != v->type)
		return NULL;
	if (v->type == TT_OBJECT ?
		(cm->nodes != (const void *) v->u.obj.members || cm->count != v->u.obj.count) :
		(cm->nodes != (const void *) v->u.arr.items || cm->count != v->u.arr.count))
		return NULL;
	return cm;
}

/*
 * dst, an object, was made from the input object src: its first nkept
 * members are src's members whose dropped flag is 0, as they were and in
 * their order; any member after those is new.  Call it once dst is whole.
 */
void
tt_value_note_subset(tt_value *dst, const tt_value *src, uint8 *dropped,
					 uint32 nkept)
{
	uint32		tag = src->host_tag;
	const ContainerMemo *cm;
	SpliceMemo *sm;
	uint32		i;
	uint32		kept;

	if (dst->type != TT_OBJECT || src->type != TT_OBJECT ||
		splice_count >= TT_SPLICES_MAX || nkept == 0 ||
		nkept > dst->u.obj.count || tag == 0 || tag > container_count)
		return;
	cm = &container_memo[tag - 1];
	if (cm->type != TT_OBJECT || cm->nodes != (const void *) src->u.obj.members ||
		cm->count != src->u.obj.count ||
		(((const JsonbContainer *) cm->bytes)->header & JB_CMASK) != cm->count)
		return;
	for (i = 0, kept = 0; i < cm->count; i++)
		kept += dropped[i] ? 0 : 1;
	if (kept != nkept)
		return;
	sm = &splice_memo[splice_count];
	sm->members = dst->u.obj.members;
	sm->count = dst->u.obj.count;
	sm->nkept = nkept;
	sm->dropped = dropped;
	sm->source_tag = tag;
	dst->host_tag = SPLICE_TAG | ++splice_count;
}

/* The splice an object was noted with, if it is still that object. */
static inline const SpliceMemo *
splice_lookup(const tt_value *v)
{
	uint32		tag = v->host_tag;
	const SpliceMemo *sm;

	if (!trusted_on || (tag & SPLICE_TAG) == 0)
		return NULL;
	tag &= ~SPLICE_TAG;
	if (tag == 0 || tag > splice_count)
		return NULL;
	sm = &splice_memo[tag - 1];
	if (sm->members != v->u.obj.members || sm->count != v->u.obj.count)
		return NULL;
	return sm;
}

/* An integer read from a jsonb Numeric: remembered like a decimal. */
static inline void
memo_int_source(Numeric num, tt_value *dst)
{
	if (tt_memo_count < TT_MEMO_SIZE)
	{
		tt_memo[tt_memo_count].text = NULL;
		tt_memo[tt_memo_count].i = dst->u.i;
		tt_memo[tt_memo_count].num = num;
		tt_memo[tt_memo_count].deferred = false;
		tt_memo[tt_memo_count].deferred_int = false;
		dst->host_tag = ++tt_memo_count;
	}
}

/* The Numeric an untouched integer was read from, or NULL. */
static inline Numeric
memo_int_lookup(const tt_value *v)
{
	uint32		tag = v->host_tag;

	if (tag == 0 || tag > tt_memo_count || tt_memo[tag - 1].text != NULL ||
		(tt_memo[tag - 1].deferred && !tt_memo[tag - 1].deferred_int) ||
		tt_memo[tag - 1].i != v->u.i)
		return NULL;
	return tt_memo[tag - 1].num;
}

static Numeric
memo_lookup(const tt_value *v)
{
	uint32		tag = v->host_tag;

	if (tag == 0 || tag > tt_memo_count)
		return NULL;
	if (v->u.str.ptr == NULL)
	{
		/* a deferred number (or a copy of one) of this very row */
		if (!tt_memo[tag - 1].deferred || v->u.str.len != tt_memo_generation)
			return NULL;
		return tt_memo[tag - 1].num;
	}
	if (tt_memo[tag - 1].text != v->u.str.ptr ||
		tt_memo[tag - 1].i != (int64) v->u.str.len)
		return NULL;
	return tt_memo[tag - 1].num;
}

/* The Numeric a tree decimal was read from, if it is untouched; or NULL. */
Numeric
tt_value_source_numeric(const tt_value *v)
{
	return v->type == TT_NUMERIC ? memo_lookup(v) : NULL;
}

/*
 * Writes the decimal text of a finite Numeric (np) into p, which has room
 * for numeric_text_room(np) bytes, NUL included; returns its length.
 * No allocation, no error.
 */
static inline size_t
numeric_text_room(const NumParts *np)
{
	return Max(np->weight + 1, 1) * 4 + np->dscale + 4 + 2;
}

static size_t
numeric_text_write(const NumParts *np, char *buf)
{
	char	   *p = buf;
	int			d;

	if (np->neg && np->ndigits > 0)
		*p++ = '-';
	if (np->weight < 0)
		*p++ = '0';
	for (d = 0; d <= np->weight; d++)
	{
		int16		dig = numeric_digit(np, d);

		if (d == 0)
		{
			/* the first group without leading zeros (no sprintf per row) */
			if (dig >= 1000)
				*p++ = '0' + dig / 1000;
			if (dig >= 100)
				*p++ = '0' + (dig / 100) % 10;
			if (dig >= 10)
				*p++ = '0' + (dig / 10) % 10;
			*p++ = '0' + dig % 10;
		}
		else
		{
			p[0] = '0' + dig / 1000;
			p[1] = '0' + (dig / 100) % 10;
			p[2] = '0' + (dig / 10) % 10;
			p[3] = '0' + dig % 10;
			p += 4;
		}
	}
	if (np->dscale > 0)
	{
		char	   *end;

		*p++ = '.';
		end = p + np->dscale;
		for (d = np->weight + 1; p < end; d++)
		{
			int16		dig = numeric_digit(np, d);
			char		four[4];
			int			k;

			four[0] = '0' + dig / 1000;
			four[1] = '0' + (dig / 100) % 10;
			four[2] = '0' + (dig / 10) % 10;
			four[3] = '0' + dig % 10;
			for (k = 0; k < 4 && p < end; k++)
				*p++ = four[k];
		}
	}
	*p = '\0';
	return (size_t) (p - buf);
}

/* Decimal text of a finite Numeric, as numeric_out would print it. */
void
tt_numeric_text(Numeric num, tt_value *dst)
{
	NumParts	np;
	char	   *buf;

	if (!numeric_parts(num, &np))
	{
		char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));

		dst->u.str.ptr = s;
		dst->u.str.len = strlen(s);
		return;
	}

	buf = palloc(numeric_text_room(&np));
	dst->u.str.len = (uint32) numeric_text_write(&np, buf);
	dst->u.str.ptr = buf;
	if (tt_memo_count < TT_MEMO_SIZE)
	{
		tt_memo[tt_memo_count].text = buf;
		tt_memo[tt_memo_count].i = (int64) dst->u.str.len;	/* its length */
		tt_memo[tt_memo_count].num = num;
		tt_memo[tt_memo_count].deferred = false;
		tt_memo[tt_memo_count].deferred_int = false;
		dst->host_tag = ++tt_memo_count;
	}
}

/*
 * A number of a tree made for a Lua transform alone
 * (tt_numeric_lazy_text): whether it is an integer (TT_INT) or a decimal
 * (TT_NUMERIC, with its text) is found out only when something needs it
 * (tt_numeric_materialize), which for a field the script never reads is
 * never: it goes back through the memo as the Numeric it was.  Until then
 * it is TT_NUMERIC with a NULL text pointer, its memo slot in host_tag and
 * the memo's generation in u.str.len.  No native plugin ever sees one.
 * num must be finite.  With the memo full it is read at once (an integer,
 * or a decimal's text).
 */
void
tt_numeric_defer(Numeric num, tt_value *dst)
{
	/* (num is finite: a jsonb number, or a checked numeric column's) */
	if (tt_memo_count >= TT_MEMO_SIZE)
	{
		if (tt_numeric_to_int64(num, &dst->u.i))
			dst->type = TT_INT;
		else
			tt_numeric_text(num, dst);
		return;
	}
	tt_memo[tt_memo_count].text = NULL;
	tt_memo[tt_memo_count].i = 0;
	tt_memo[tt_memo_count].num = num;
	tt_memo[tt_memo_count].deferred = true;
	tt_memo[tt_memo_count].deferred_int = false;
	memo_has_deferred = true;
	dst->u.str.ptr = NULL;
	dst->u.str.len = tt_memo_generation;
	dst->host_tag = ++tt_memo_count;
}

/*
 * Reads a deferred number (tt_numeric_defer): an integer becomes TT_INT,
 * a decimal gets its text, in call's arena (never raising: for the Lua
 * side) or, with call NULL, palloc'd.  The memo entry remembers what it
 * found, so the value (and every copy made since, deferred or not) still
 * goes back as its Numeric.  v's type may change: callers dispatch on it
 * afterwards.  Returns false (the value left as it was) if it is no
 * deferred number of the current row, or the arena is exhausted.
 */
bool
tt_numeric_materialize(tt_value *v, tt_call *call)
{
	uint32		tag = v->host_tag;
	NumericMemo *e;
	NumParts	np;
	char	   *buf;

	if (v->type != TT_NUMERIC || v->u.str.ptr != NULL)
		return true;
	if (tag == 0 || tag > tt_memo_count || !tt_memo[tag - 1].deferred ||
		v->u.str.len != tt_memo_generation)
		return false;
	e = &tt_memo[tag - 1];
	if (!e->deferred_int && e->text == NULL &&
		tt_numeric_to_int64(e->num, &e->i))
		e->deferred_int = true;
	if (e->deferred_int)
	{
		v->type = TT_INT;
		v->u.i = e->i;
		return true;
	}
	if (e->text == NULL)
	{
		if (!numeric_parts(e->num, &np))
			return false;
		buf = call != NULL ? tt_arena_alloc(call, numeric_text_room(&np)) :
			palloc(numeric_text_room(&np));
		if (buf == NULL)
			return false;
		e->i = (int64) numeric_text_write(&np, buf);
		e->text = buf;
	}
	v->u.str.ptr = e->text;
	v->u.str.len = (uint32) e->i;
	return true;
}

/*
 * Reads every deferred number of the tree v (texts palloc'd): for a tree
 * that goes to anything but a Lua transform.  Cheap when there are none.
 */
void
tt_value_materialize_all(tt_value *v)
{
	uint32		i;

	if (!memo_has_deferred)
		return;
	check_stack_depth();
	switch (v->type)
	{
		case TT_NUMERIC:
			if (!tt_numeric_materialize(v, NULL))
				elog(ERROR, "a deferred number outlived its row");
			break;
		case TT_OBJECT:
			for (i = 0; i < v->u.obj.count; i++)
				tt_value_materialize_all(&v->u.obj.members[i].value);
			break;
		case TT_ARRAY:
			for (i = 0; i < v->u.arr.count; i++)
				tt_value_materialize_all(&v->u.arr.items[i]);
			break;
		default:
			break;
	}
}

/*
 * Decimal text to double.  Clinger's fast path when the digits fit 2^53
 * and the power of ten is exact (one correctly rounded operation);
 * strtod otherwise.  Returns false if the text is not a finite number.
 */
bool
tt_decimal_to_double(const char *text, size_t len, double *out)
{
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
		1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
	1e20, 1e21, 1e22};
	uint64		m = 0;
	int			frac = 0;
	int			ndig = 0;
	bool		neg = false;
	bool		dot = false;
	size_t		i = 0;
	char		buf[128];
	char	   *end;

	if (i < len && (text[i] == '-' || text[i] == '+'))
		neg = (text[i++] == '-');
	for (; i < len; i++)
	{
		char		c = text[i];

		if (c >= '0' && c <= '9')
		{
			if (m == 0 && c == '0')
			{
				if (dot)
					frac++;
				continue;
			}
			if (++ndig > 15)
				break;
			m = m * 10 + (c - '0');
			if (dot)
				frac++;
		}
		else if (c == '.' && !dot)
			dot = true;
		else
			break;
	}
	if (i == len && ndig > 0 && frac <= 22)
	{
		double		d = (double) m / pow10[frac];

		*out = neg ? -d : d;
		return true;
	}
	if (i == len && ndig == 0)
	{
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	*out = strtod(buf, &end);
	return end != buf && *end == '\0' && !isinf(*out) && !isnan(*out);
}

/* ---------------------------------------------------------------------
 * Timestamps: the tree holds Unix microseconds, PostgreSQL 2000-based ones
 * ---------------------------------------------------------------------
 */
#define TT_EPOCH_SHIFT_USEC \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

Datum
tt_timestamp_to_pg(int64 unix_us)
{
	return TimestampTzGetDatum(unix_us - TT_EPOCH_SHIFT_USEC);
}

int64
tt_timestamp_from_pg(Datum ts)
{
	return DatumGetTimestampTz(ts) + TT_EPOCH_SHIFT_USEC;
}

/*
 * The text to_jsonb() gives the value in its source type: timestamptz in
 * the session's time zone, timestamp without an offset, date as a date.
 */
char *
tt_timestamp_text(const tt_value *v)
{
	Datum		pg = tt_timestamp_to_pg(v->u.ts);

	if (v->host_tag == TT_TS_TIMESTAMP)
		return JsonEncodeDateTime(NULL, pg, TIMESTAMPOID, NULL);
	if (v->host_tag == TT_TS_DATE)
		return JsonEncodeDateTime(NULL,
								  DateADTGetDatum((DateADT) (DatumGetTimestamp(pg) / USECS_PER_DAY)),
								  DATEOID, NULL);
	return JsonEncodeDateTime(NULL, pg, TIMESTAMPTZOID, NULL);
}

/* ---------------------------------------------------------------------
 * jsonb -> tree.  Strings and keys point into the jsonb, which the caller
 * keeps alive for the row.
 * ---------------------------------------------------------------------
 */
/*
 * Reads a jsonb container straight from its on-disk layout (utils/jsonb.h:
 * a header, the children's JEntries, then their data; every
 * JB_OFFSET_STRIDE'th JEntry holds an end offset instead of a length).
 * Cheaper than JsonbIterator, which builds a JsonbValue per child.
 */
static void read_container(const JsonbContainer *c, tt_value *dst, int depth);

static void
read_child(const JsonbContainer *c, const char *base, uint32 i, uint32 off,
		   uint32 len, tt_value *dst, int depth)
{
	JEntry		je = c->children[i];

	memset(dst, 0, sizeof(tt_value));
	if (JBE_ISSTRING(je))
	{
		dst->type = TT_STRING;
		dst->u.str.ptr = base + off;
		dst->u.str.len = len;
	}
	else if (JBE_ISNUMERIC(je))
	{
		Numeric		num = (Numeric) (base + INTALIGN(off));

		if (tt_numeric_lazy_text)
		{
			/* integer or decimal: found out if the script reads it */
			dst->type = TT_NUMERIC;
			tt_numeric_defer(num, dst);
		}
		else if (tt_numeric_to_int64(num, &dst->u.i))
		{
			dst->type = TT_INT;
			memo_int_source(num, dst);
		}
		else
		{
			dst->type = TT_NUMERIC;
			tt_numeric_text(num, dst);
		}
	}
	else if (JBE_ISBOOL_TRUE(je) || JBE_ISBOOL_FALSE(je))
	{
		dst->type = TT_BOOL;
		dst->u.b = JBE_ISBOOL_TRUE(je) ? 1 : 0;
	}
	else if (JBE_ISNULL(je))
		dst->type = TT_NULL;
	else
	{
		/* len includes the padding that aligns the container */
		const JsonbContainer *child = (const JsonbContainer *) (base + INTALIGN(off));

		read_container(child, dst, depth + 1);
		container_read(dst, child, len - (INTALIGN(off) - off));
	}
}

/* the offset and length of every child, in order */
#define NEXT_CHILD(c, i, off, len) \
	do { \
		JEntry je_ = (c)->children[i]; \
		(off) += (len); \
		(len) = JBE_HAS_OFF(je_) ? JBE_OFFLENFLD(je_) - (off) : JBE_OFFLENFLD(je_); \
	} while (0)

static void
read_container(const JsonbContainer *c, tt_value *dst, int depth)
{
	uint32		count = c->header & JB_CMASK;
	uint32		i;
	uint32		off = 0;
	uint32		len = 0;

	check_stack_depth();
	memset(dst, 0, sizeof(tt_value));
	if (c->header & JB_FOBJECT)
	{
		const char *base = (const char *) &c->children[count * 2];
		tt_member  *m = count ? palloc(count * sizeof(tt_member)) : NULL;

		for (i = 0; i < count; i++)
		{
			NEXT_CHILD(c, i, off, len);
			m[i].key.ptr = base + off;
			m[i].key.len = len;
		}
		for (i = 0; i < count; i++)
		{
			NEXT_CHILD(c, count + i, off, len);
			read_child(c, base, count + i, off, len, &m[i].value, depth);
		}
		dst->type = TT_OBJECT;
		dst->u.obj.members = m;
		dst->u.obj.count = dst->u.obj.cap = count;
	}
	else
	{
		const char *base = (const char *) &c->children[count];
		tt_value   *items = count ? palloc(count * sizeof(tt_value)) : NULL;

		for (i = 0; i < count; i++)
		{
			NEXT_CHILD(c, i, off, len);
			read_child(c, base, i, off, len, &items[i], depth);
		}
		dst->type = TT_ARRAY;
		dst->u.arr.items = items;
		dst->u.arr.count = dst->u.arr.cap = count;
	}
}

/*
 * Converts into the current memory context.  Strings and keys point into
 * the jsonb, which the caller keeps alive for the row.
 */
void
tt_jsonb_to_value(Jsonb *jb, tt_value *dst)
{
	if (trusted_count < TT_TRUSTED_MAX)
	{
		trusted_start[trusted_count] = (const char *) jb;
		trusted_end[trusted_count] = (const char *) jb + VARSIZE(jb);
		trusted_count++;
	}
	if (JB_ROOT_IS_SCALAR(jb))
	{
		/* a raw scalar is a one-element array flagged as scalar */
		tt_value	arr;

		read_container(&jb->root, &arr, 0);
		*dst = arr.u.arr.items[0];
		/* a scalar is no row: callers may reuse its tag */
		if (tt_numeric_deferred(dst) && !tt_numeric_materialize(dst, NULL))
			elog(ERROR, "could not write out a number");
		return;
	}
	read_container(&jb->root, dst, 0);
	container_read(dst, &jb->root, VARSIZE(jb) - VARHDRSZ);
}

/* ---------------------------------------------------------------------
 * tree -> jsonb.  Values made by engines are checked here: valid encoding,
 * finite numbers, known type tags.
 * ---------------------------------------------------------------------
 */
static void
bad_value(const char *transform, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("transform \"%s\" returned an invalid value", transform),
			 errdetail("%s", detail)));
}

static void
check_string(const tt_str *s, const char *transform, const char *what)
{
	if (trusted_text(s))
		return;
	if (s->ptr == NULL && s->len > 0)
		bad_value(transform, psprintf("A %s has a NULL pointer.", what));
	if (s->len > 0 && !tt_text_valid(s->ptr, s->len))
		bad_value(transform,
				  psprintf("A %s is not valid %s (or contains a NUL byte).",
						   what, GetDatabaseEncodingName()));
}


/*
 * The jsonb writer.  We build the on-disk format straight from the tree
 * (the layout documented in utils/jsonb.h, as jsonb_util.c's
 * convertToJsonb writes it) instead of going through pushJsonbValue and
 * JsonbValueToJsonb: no intermediate JsonbValue copies, one sort per object
 * that is usually already in order.  Engine output is checked on the way:
 * valid encoding, finite numbers, known type tags, no NULL pointers.
 */
typedef struct JbWriter
{
	StringInfoData buf;
	const char *transform;
	bool		verified;		/* a tree parsed from valid JSON text
								 * (tt_json_text_to_jsonb): strings need no
								 * check */
} JbWriter;

/*
 * Members in jsonb key order without duplicates (the last one wins, as in
 * jsonb_in).  Keys are compared by length, then by their first 8 bytes as
 * a big-endian number, and only then with memcmp, so most comparisons are
 * two integer compares.  Objects from jsonb arrive sorted and Lua tables in
 * hash order; both are short, so insertion sort (qsort past 64 members).
 */
typedef struct SortKey
{
	uint32		len;
	uint64		prefix;
	const tt_member *m;
	uint32		seq;			/* original position, for last-wins */
} SortKey;

static inline int
sortkey_cmp(const SortKey *a, const SortKey *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (a->prefix != b->prefix)
		return a->prefix < b->prefix ? -1 : 1;
	if (a->len > 8)
	{
		int			c = memcmp(a->m->key.ptr + 8, b->m->key.ptr + 8, a->len - 8);

		if (c != 0)
			return c;
	}
	return 0;
}

static int
sortkey_qsort_cmp(const void *a, const void *b)
{
	int			c = sortkey_cmp((const SortKey *) a, (const SortKey *) b);

	if (c != 0)
		return c;
	return ((const SortKey *) a)->seq < ((const SortKey *) b)->seq ? -1 : 1;
}

/* strictly in jsonb key order (shorter first, then bytewise)? */
static bool
members_in_order(const tt_value *v)
{
	const tt_member *m = v->u.obj.members;
	uint32		i;

	for (i = 1; i < v->u.obj.count; i++)
	{
		const tt_str *a = &m[i - 1].key;
		const tt_str *b = &m[i].key;
		uint32		j;

		if (a->len != b->len)
		{
			if (a->len > b->len)
				return false;
			continue;
		}
		for (j = 0; j < a->len && a->ptr[j] == b->ptr[j]; j++)
			;
		if (j == a->len || (unsigned char) a->ptr[j] > (unsigned char) b->ptr[j])
			return false;
	}
	return true;
}

static uint32
sorted_members(const tt_value *v, const tt_member **order)
{
	uint32		count = v->u.obj.count;
	SortKey		local[64];
	SortKey    *keys;
	uint32		i;
	uint32		n;

	/* objects read from jsonb, and their untouched rest, are in order */
	if (members_in_order(v))
	{
		for (i = 0; i < count; i++)
			order[i] = &v->u.obj.members[i];
		return count;
	}
	keys = count <= lengthof(local) ? local : palloc(count * sizeof(SortKey));

	for (i = 0; i < count; i++)
	{
		const tt_member *m = &v->u.obj.members[i];
		uint64		prefix = 0;
		uint32		j;

		/* the first 8 bytes, big-endian, zero-padded */
		if (m->key.len >= 8)
		{
			memcpy(&prefix, m->key.ptr, 8);
			prefix = pg_ntoh64(prefix);
		}
		else if (m->key.len > 0)
		{
			for (j = 0; j < m->key.len; j++)
				prefix = (prefix << 8) | (unsigned char) m->key.ptr[j];
			prefix <<= 8 * (8 - m->key.len);
		}
		keys[i].len = m->key.len;
		keys[i].prefix = prefix;
		keys[i].m = m;
		keys[i].seq = i;
	}
	if (count > lengthof(local))
		qsort(keys, count, sizeof(SortKey), sortkey_qsort_cmp);
	else
	{
		for (i = 1; i < count; i++)
		{
			SortKey		k = keys[i];
			uint32		j = i;

			/* stable: equal keys keep their order */
			while (j > 0 && sortkey_cmp(&keys[j - 1], &k) > 0)
			{
				keys[j] = keys[j - 1];
				j--;
			}
			keys[j] = k;
		}
	}
	/* drop duplicates, keeping the last of each run */
	for (i = 0, n = 0; i < count; i++)
	{
		if (i + 1 < count && sortkey_cmp(&keys[i], &keys[i + 1]) == 0)
			continue;
		order[n++] = keys[i].m;
	}
	if (keys != local)
		pfree(keys);
	return n;
}

static inline void
pad_to_int(StringInfo buf)
{
	int			pad = INTALIGN(buf->len) - buf->len;

	if (pad > 0)
	{
		enlargeStringInfo(buf, pad);
		memset(buf->data + buf->len, 0, pad);
		buf->len += pad;
	}
}

/* appendBinaryStringInfo without the call when there is room */
static inline void
buf_append(StringInfo buf, const char *data, int len)
{
	if (unlikely(len < 0 || buf->len + len >= buf->maxlen))
		enlargeStringInfo(buf, len);
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

static int
reserve(StringInfo buf, int len)
{
	int			off = buf->len;

	enlargeStringInfo(buf, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return off;
}

static Numeric
number_to_numeric(const tt_value *v, const JbWriter *w)
{
	const char *transform = w->transform;
	char		buf[64];
	Numeric		num;
	const char *text;

	switch (v->type)
	{
		case TT_INT:
			if ((num = memo_int_lookup(v)) != NULL)
				return num;
			return int64_to_numeric(v->u.i);
		case TT_FLOAT:
			if (isnan(v->u.f) || isinf(v->u.f))
				bad_value(transform, "NaN and infinity cannot be stored in jsonb.");
			tt_format_double(v->u.f, buf, sizeof(buf));
			text = buf;
			break;
		default:				/* TT_NUMERIC */
			if ((num = memo_lookup(v)) != NULL)
				return num;
			if (unlikely(v->u.str.ptr == NULL))
			{
				if (!tt_numeric_materialize((tt_value *) v, NULL))
					bad_value(transform, "A number of the row was used after its row.");
				if (v->type == TT_INT)
					return int64_to_numeric(v->u.i);
			}
			if (!w->verified)
				check_string(&v->u.str, transform, "numeric");
			text = pnstrdup(v->u.str.ptr, v->u.str.len);
			break;
	}
	/*
	 * numeric_in accepts NaN, Infinity and spaces, which JSON cannot hold (a
	 * parsed tree's numbers are JSON numbers already)
	 */
	if (!w->verified &&
		(text[0] == '\0' || strspn(text, "0123456789+-.eE") != strlen(text)))
		bad_value(transform, psprintf("\"%s\" is not a JSON number.", text));
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

static void write_value(JbWriter *w, const tt_value *v, JEntry *entry,
						int depth, bool raw_scalar);

/* Writes the data of one scalar; returns its JEntry (length, no offset). */
static JEntry
write_scalar(JbWriter *w, const tt_value *v)
{
	StringInfo	buf = &w->buf;

	switch (v->type)
	{
		case TT_NULL:
			return JENTRY_ISNULL;
		case TT_BOOL:
			return v->u.b ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
		case TT_INT:
		case TT_FLOAT:
		case TT_NUMERIC:
			{
				Numeric		num = number_to_numeric(v, w);
				int			len = VARSIZE_ANY(num);
				int			before = buf->len;

				if (VARATT_IS_SHORT(num))
					num = (Numeric) PG_DETOAST_DATUM(NumericGetDatum(num));
				len = VARSIZE(num);
				pad_to_int(buf);
				buf_append(buf, (char *) num, len);
				return JENTRY_ISNUMERIC | (buf->len - before);
			}
		case TT_STRING:
			if (!w->verified)
				check_string(&v->u.str, w->transform, "string");
			buf_append(buf, v->u.str.ptr, v->u.str.len);
			return JENTRY_ISSTRING | v->u.str.len;
		case TT_TIMESTAMP:
			{
				char	   *s = tt_timestamp_text(v);
				int			len = strlen(s);

				buf_append(buf, s, len);
				return JENTRY_ISSTRING | len;
			}
		default:
			bad_value(w->transform, psprintf("Unknown value type tag %u.", v->type));
	}
	return 0;					/* keep compiler quiet */
}

static pg_noinline void
too_large(JbWriter *w)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("transform \"%s\" returned a value too large for jsonb",
					w->transform),
			 errdetail("Total size of jsonb array elements exceeds the maximum of %u bytes.",
					   JENTRY_OFFLENMASK)));
}

/* Stores a child's JEntry, turning every JB_OFFSET_STRIDE'th into an offset. */
static inline void
put_entry(JbWriter *w, int entries_at, int i, JEntry meta, uint32 *totallen)
{
	*totallen += JBE_OFFLENFLD(meta);
	if (*totallen > JENTRY_OFFLENMASK)
		too_large(w);
	if ((i % JB_OFFSET_STRIDE) == 0)
		meta = (meta & JENTRY_TYPEMASK) | *totallen | JENTRY_HAS_OFF;
	memcpy(w->buf.data + entries_at + i * sizeof(JEntry), &meta, sizeof(JEntry));
}

static void
write_container(JbWriter *w, const tt_value *v, JEntry *entry, int depth,
				bool raw_scalar)
{
	StringInfo	buf = &w->buf;
	int			base = buf->len;
	uint32		header;
	uint32		totallen = 0;
	int			entries_at;
	uint32		i;

	check_stack_depth();
	if (depth > TT_MAX_DEPTH)
		bad_value(w->transform, "Values are nested too deeply.");
	pad_to_int(buf);
	if (v->type == TT_OBJECT)
	{
		const tt_member **order;
		const tt_member *local[64];
		size_t		keybytes = 0;
		uint32		n;

		if (v->u.obj.count > 0 && v->u.obj.members == NULL)
			bad_value(w->transform, "An object has a NULL member array.");
		if (v->u.obj.count > JB_CMASK / 2)
			bad_value(w->transform, "An object has too many members.");

		order = v->u.obj.count <= lengthof(local) ? local :
			palloc(v->u.obj.count * sizeof(tt_member *));
		n = sorted_members(v, order);
		header = n | JB_FOBJECT;
		buf_append(buf, (char *) &header, sizeof(uint32));
		entries_at = reserve(buf, sizeof(JEntry) * n * 2);
		for (i = 0; i < n; i++)
		{
			if (!w->verified)
				check_string(&order[i]->key, w->transform, "key");
			keybytes += order[i]->key.len;
		}
		if (keybytes > JENTRY_OFFLENMASK)
			too_large(w);
		/* the keys, one after the other: room for all of them at once */
		enlargeStringInfo(buf, (int) keybytes);
		for (i = 0; i < n; i++)
		{
			if (order[i]->key.len > 0)
				memcpy(buf->data + buf->len, order[i]->key.ptr, order[i]->key.len);
			buf->len += order[i]->key.len;
			put_entry(w, entries_at, i, JENTRY_ISSTRING | order[i]->key.len, &totallen);
		}
		buf->data[buf->len] = '\0';
		for (i = 0; i < n; i++)
		{
			JEntry		meta;

			write_value(w, &order[i]->value, &meta, depth + 1, false);
			put_entry(w, entries_at, i + n, meta, &totallen);
		}
		if (order != local)
			pfree(order);
	}
	else
	{
		uint32		n = raw_scalar ? 1 : v->u.arr.count;

		if (!raw_scalar && n > 0 && v->u.arr.items == NULL)
			bad_value(w->transform, "An array has a NULL item array.");
		if (n > JB_CMASK)
			bad_value(w->transform, "An array has too many items.");
		header = n | JB_FARRAY | (raw_scalar ? JB_FSCALAR : 0);
		buf_append(buf, (char *) &header, sizeof(uint32));
		entries_at = reserve(buf, sizeof(JEntry) * n);
		for (i = 0; i < n; i++)
		{
			JEntry		meta;

			write_value(w, raw_scalar ? v : &v->u.arr.items[i], &meta, depth + 1, false);
			put_entry(w, entries_at, i, meta, &totallen);
		}
	}
	totallen = buf->len - base;
	if (totallen > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transform \"%s\" returned a value too large for jsonb",
						w->transform)));
	*entry = JENTRY_ISCONTAINER | totallen;
}

/*
 * A native transform's result is checked and written member by member,
 * unless it is made of the input's own values: a plugin that drops members
 * of an input object (compacting its member array in place, as the sample
 * trim_doc does) or returns it as it was.  Such an object is recognised by
 * comparison, not trust: its member array is the one read from a container
 * (host_tag names it), each member's key points at that container's key
 * and each value is the very one read (a string at its place, a number
 * whose memo gives the stored Numeric, a container equal in the same way
 * all through).  Its kept members are then copied as stored
 * (write_subset).  Anything else, or a plugin that wrote into the input's
 * bytes (the ABI makes them const), is not told apart.
 */
static bool same_container(const tt_value *v, const JsonbContainer *c,
						   int depth);

/* v is child i of the container whose data starts at sbase, unchanged */
static inline bool
same_child(const tt_value *v, const JsonbContainer *c, const char *sbase,
		   uint32 i, uint32 off, uint32 len, int depth)
{
	JEntry		je = c->children[i];

	switch (je & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			return v->type == TT_STRING && v->u.str.ptr == sbase + off &&
				v->u.str.len == len;
		case JENTRY_ISNUMERIC:
			{
				Numeric		num = (Numeric) (sbase + INTALIGN(off));

				if (v->type == TT_INT)
					return memo_int_lookup(v) == num;
				return v->type == TT_NUMERIC && memo_lookup(v) == num;
			}
		case JENTRY_ISBOOL_FALSE:
			return v->type == TT_BOOL && !v->u.b;
		case JENTRY_ISBOOL_TRUE:
			return v->type == TT_BOOL && v->u.b;
		case JENTRY_ISNULL:
			return v->type == TT_NULL;
		case JENTRY_ISCONTAINER:
			return (v->type == TT_OBJECT || v->type == TT_ARRAY) &&
				same_container(v, (const JsonbContainer *) (sbase + INTALIGN(off)),
							   depth + 1);
	}
	return false;
}

/* The container an object or array was read from, if its nodes are those. */
static inline const ContainerMemo *
read_from(const tt_value *v)
{
	uint32		tag = v->host_tag;
	const ContainerMemo *cm;

	if (tag == 0 || tag > container_count)
		return NULL;
	cm = &container_memo[tag - 1];
	if (cm->type != v->type ||
		cm->nodes != (v->type == TT_OBJECT ? (const void *) v->u.obj.members :
					  (const void *) v->u.arr.items))
		return NULL;
	return cm;
}

/* v is container c as it was read, all through */
static bool
same_container(const tt_value *v, const JsonbContainer *c, int depth)
{
	const ContainerMemo *cm = read_from(v);
	uint32		n = c->header & JB_CMASK;
	uint32		off = 0;
	uint32		len = 0;
	uint32		i;

	if (cm == NULL || cm->bytes != (const char *) c || depth > TT_MAX_DEPTH)
		return false;
	check_stack_depth();
	if (v->type == TT_OBJECT)
	{
		const char *sbase = (const char *) &c->children[n * 2];
		const tt_member *m = v->u.obj.members;

		if (v->u.obj.count != n)
			return false;
		for (i = 0; i < n; i++)
		{
			NEXT_CHILD(c, i, off, len);
			if (m[i].key.ptr != sbase + off || m[i].key.len != len)
				return false;
		}
		for (i = 0; i < n; i++)
		{
			NEXT_CHILD(c, n + i, off, len);
			if (!same_child(&m[i].value, c, sbase, n + i, off, len, depth))
				return false;
		}
	}
	else
	{
		const char *sbase = (const char *) &c->children[n];

		if (v->u.arr.count != n)
			return false;
		for (i = 0; i < n; i++)
		{
			NEXT_CHILD(c, i, off, len);
			if (!same_child(&v->u.arr.items[i], c, sbase, i, off, len, depth))
				return false;
		}
	}
	return true;
}

/*
 * Input object c without the members flagged in dropped (nkept remain, in
 * their order, which is jsonb's): the kept keys and values are copied in
 * runs of adjacent ones.  A run keeps the padding it holds where its
 * values stay aligned as they were; where they would not, the run is cut
 * at the number or container that needs it, which is padded anew (its
 * length counts its padding), and the rest follows it as stored.
 *
 * With m, the members of a result to compare (write_if_subset), dropped
 * is filled in on the way: the input members whose key m[j] points at are
 * kept, in order, and their values must be m[j]'s unchanged; if not, what
 * was written is taken back and the result is false.  Inlined into its
 * two callers, so that the trusted one (m NULL) does none of the checks.
 */
static pg_attribute_always_inline bool
write_subset(JbWriter *w, const JsonbContainer *c, const tt_member *m,
			 uint8 *dropped, uint32 nkept, JEntry *entry, int depth)
{
	StringInfo	buf = &w->buf;
	uint32		nsrc = c->header & JB_CMASK;
	const char *sbase = (const char *) &c->children[nsrc * 2];
	int			base = buf->len;
	int			entries_at;
	int			dbase;
	uint32		header;
	uint32		totallen = 0;
	uint32		off = 0;
	uint32		len = 0;
	uint32		run_src = 0;	/* bytes not yet copied: where, how many */
	uint32		run_len = 0;
	uint32		i;
	uint32		j;

#define FLUSH_RUN() \
	do { \
		if (run_len > 0) \
			buf_append(buf, sbase + run_src, (int) run_len); \
		run_len = 0; \
	} while (0)
#define EXTEND_RUN(o, l) \
	do { \
		if (run_len > 0 && run_src + run_len != (o)) \
			FLUSH_RUN(); \
		if (run_len == 0) \
			run_src = (o); \
		run_len += (l); \
	} while (0)

	pad_to_int(buf);
	header = nkept | JB_FOBJECT;
	buf_append(buf, (char *) &header, sizeof(uint32));
	entries_at = reserve(buf, sizeof(JEntry) * nkept * 2);
	dbase = buf->len;			/* aligned, as the input's keys are */
	for (i = 0, j = 0; i < nsrc; i++)
	{
		NEXT_CHILD(c, i, off, len);
		if (m != NULL)
			dropped[i] = !(j < nkept && m[j].key.ptr == sbase + off &&
						   m[j].key.len == len);
		if (dropped[i])
			continue;
		if (j == nkept)
			goto mismatch;
		EXTEND_RUN(off, len);
		put_entry(w, entries_at, j++, JENTRY_ISSTRING | len, &totallen);
	}
	if (j != nkept)
		goto mismatch;
	for (i = 0, j = 0; i < nsrc; i++)
	{
		JEntry		type = c->children[nsrc + i] & JENTRY_TYPEMASK;
		uint32		outlen;

		NEXT_CHILD(c, nsrc + i, off, len);
		if (dropped[i])
			continue;
		if (m != NULL &&
			!same_child(&m[j].value, c, sbase, nsrc + i, off, len, depth))
			goto mismatch;
		outlen = len;
		if (run_len > 0 && run_src + run_len != off)
			FLUSH_RUN();
		if ((type == JENTRY_ISNUMERIC || type == JENTRY_ISCONTAINER) &&
			((uint32) (buf->len + run_len - dbase) - off) % 4 != 0)
		{
			uint32		spad = INTALIGN(off) - off;
			int			before;

			FLUSH_RUN();
			before = buf->len;
			pad_to_int(buf);
			run_src = off + spad;
			run_len = len - spad;
			outlen = (uint32) (buf->len - before) + run_len;
		}
		else
			EXTEND_RUN(off, len);
		put_entry(w, entries_at, nkept + j++, type | outlen, &totallen);
	}
	FLUSH_RUN();
#undef EXTEND_RUN
#undef FLUSH_RUN
	totallen = buf->len - base;
	if (totallen > JENTRY_OFFLENMASK)
		too_large(w);
	*entry = JENTRY_ISCONTAINER | totallen;
	return true;

mismatch:
	buf->len = base;
	buf->data[base] = '\0';
	return false;
}

/*
 * An object noted by tt_value_note_subset: the kept members' keys and
 * values are copied from the input container as they are stored (a value
 * that must be aligned, a number or a container, is realigned), only the
 * added members are written from the tree.  With nothing added, the kept
 * members are already in jsonb order and unique.
 */
static void
write_spliced(JbWriter *w, const tt_value *v, const SpliceMemo *sm,
			  JEntry *entry, int depth)
{
	StringInfo	buf = &w->buf;
	const JsonbContainer *c =
		(const JsonbContainer *) container_memo[sm->source_tag - 1].bytes;
	uint32		nsrc = c->header & JB_CMASK;
	const char *sbase = (const char *) &c->children[nsrc * 2];
	const tt_member *members = v->u.obj.members;
	const tt_member *local[64];
	const tt_member **order;
	SpliceSource localsrc[64];
	SpliceSource *src;			/* per kept member: where its value is */
	int			base = buf->len;
	int			entries_at;
	uint32		header;
	uint32		totallen = 0;
	uint32		off = 0;
	uint32		len = 0;
	uint32		n;
	uint32		i;
	uint32		j;

	order = v->u.obj.count <= lengthof(local) ? local :
		palloc(v->u.obj.count * sizeof(tt_member *));
	src = sm->nkept <= lengthof(localsrc) ? localsrc :
		palloc(sm->nkept * sizeof(SpliceSource));
	for (i = 0; i < nsrc; i++)
		NEXT_CHILD(c, i, off, len);
	for (i = 0, j = 0; i < nsrc && j < sm->nkept; i++)
	{
		NEXT_CHILD(c, nsrc + i, off, len);
		if (sm->dropped[i])
			continue;
		src[j].off = off;
		src[j].len = len;
		src[j].type = c->children[nsrc + i] & JENTRY_TYPEMASK;
		j++;
	}
	if (j != sm->nkept || v->u.obj.count > JB_CMASK / 2)
	{
		/* not what was noted: written from the tree, checked */
		if (order != local)
			pfree(order);
		if (src != localsrc)
			pfree(src);
		write_container(w, v, entry, depth, false);
		return;
	}
	n = sorted_members(v, order);

	pad_to_int(buf);
	header = n | JB_FOBJECT;
	buf_append(buf, (char *) &header, sizeof(uint32));
	entries_at = reserve(buf, sizeof(JEntry) * n * 2);
	for (i = 0; i < n; i++)
	{
		const tt_member *m = order[i];

		/* an added key is checked; a kept one is the input's */
		if (m >= members + sm->nkept)
			check_string(&m->key, w->transform, "key");
		buf_append(buf, m->key.ptr, m->key.len);
		put_entry(w, entries_at, i, JENTRY_ISSTRING | m->key.len, &totallen);
	}
	for (i = 0; i < n; i++)
	{
		const tt_member *m = order[i];
		JEntry		meta;

		if (m < members + sm->nkept)
		{
			const SpliceSource *s = &src[m - members];

			if (s->type == JENTRY_ISNUMERIC || s->type == JENTRY_ISCONTAINER)
			{
				/* its length counts the padding that aligned it */
				uint32		pad = INTALIGN(s->off) - s->off;
				int			before = buf->len;

				pad_to_int(buf);
				buf_append(buf, sbase + s->off + pad, (int) (s->len - pad));
				meta = s->type | (buf->len - before);
			}
			else
			{
				buf_append(buf, sbase + s->off, (int) s->len);
				meta = s->type | s->len;
			}
		}
		else
			write_value(w, &m->value, &meta, depth + 1, false);
		put_entry(w, entries_at, i + n, meta, &totallen);
	}
	if (order != local)
		pfree(order);
	if (src != localsrc)
		pfree(src);
	totallen = buf->len - base;
	if (totallen > JENTRY_OFFLENMASK)
		too_large(w);
	*entry = JENTRY_ISCONTAINER | totallen;
}

/*
 * Writes the object v if it is an object read from the input less some of
 * its members, all else unchanged (see above); false if it is not.
 */
static bool
write_if_subset(JbWriter *w, const tt_value *v, JEntry *entry, int depth)
{
	const ContainerMemo *cm = read_from(v);
	const JsonbContainer *c;
	uint32		nsrc;
	uint8		localdrop[64];
	uint8	   *dropped;
	bool		ok;

	if (cm == NULL || v->u.obj.count == 0)
		return false;
	c = (const JsonbContainer *) cm->bytes;
	nsrc = c->header & JB_CMASK;
	if (v->u.obj.count > nsrc)
		return false;
	dropped = nsrc <= lengthof(localdrop) ? localdrop : palloc(nsrc);
	ok = write_subset(w, c, v->u.obj.members, dropped, v->u.obj.count, entry,
					  depth);
	if (dropped != localdrop)
		pfree(dropped);
	return ok;
}

static void
write_value(JbWriter *w, const tt_value *v, JEntry *entry, int depth,
			bool raw_scalar)
{
	const ContainerMemo *cm;
	const SpliceMemo *sm;

	if (!raw_scalar && v->type == TT_OBJECT && (sm = splice_lookup(v)) != NULL)
	{
		if (sm->nkept == v->u.obj.count)
			write_subset(w, (const JsonbContainer *)
						 container_memo[sm->source_tag - 1].bytes, NULL,
						 (uint8 *) sm->dropped, sm->nkept, entry, depth);
		else
			write_spliced(w, v, sm, entry, depth);
		return;
	}
	/* a native result made of the input's values: compared, then copied */
	if (!raw_scalar && !trusted_on && v->type == TT_OBJECT && v->host_tag != 0 &&
		write_if_subset(w, v, entry, depth))
		return;
	if (!raw_scalar && (v->type == TT_OBJECT || v->type == TT_ARRAY) &&
		(cm = container_lookup(v)) != NULL)
	{
		/* an untouched container of the input: its bytes as they were */
		int			base = w->buf.len;

		pad_to_int(&w->buf);
		buf_append(&w->buf, cm->bytes, (int) cm->len);
		*entry = JENTRY_ISCONTAINER | (w->buf.len - base);
		return;
	}
	if (raw_scalar || v->type == TT_OBJECT || v->type == TT_ARRAY)
		write_container(w, v, entry, depth, raw_scalar);
	else
		*entry = write_scalar(w, v);
}

static Jsonb *
write_jsonb(const tt_value *v, const char *transform, bool verified)
{
	JbWriter	w;
	JEntry		entry;
	Jsonb	   *res;

	w.transform = transform;
	w.verified = verified;
	initStringInfo(&w.buf);
	reserve(&w.buf, VARHDRSZ);
	/* a scalar at the top is a one-element array flagged as scalar */
	write_value(&w, v, &entry, 0, v->type != TT_OBJECT && v->type != TT_ARRAY);
	res = (Jsonb *) w.buf.data;
	SET_VARSIZE(res, w.buf.len);
	return res;
}

Jsonb *
tt_value_to_jsonb(const tt_value *v, const char *transform)
{
	return write_jsonb(v, transform, false);
}

/*
 * The jsonb of a tree that tt_json_text_to_jsonb parsed from JSON text:
 * its strings are valid text already, its numbers valid JSON numbers, and
 * no host_tag is set (nothing of it is taken from the row's memos).
 */
Jsonb *
tt_parsed_json_to_jsonb(const tt_value *v)
{
	return write_jsonb(v, "(input)", true);
}
