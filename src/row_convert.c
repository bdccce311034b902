/*-------------------------------------------------------------------------
 *
 * row_convert.c
 *	  The conversion layer of ingest pipelines: a source heap tuple becomes
 *	  a value tree (the row a transform sees), and a transform's result
 *	  becomes the values of the target's columns.
 *
 * Everything that needs the catalog (types, I/O functions, defaults, the
 * name -> column map) is resolved once per statement into a map; per row
 * the work is a deform, a few comparisons and the conversions themselves.
 * jsonb <-> tree is value.c's job; this file only calls it.
 *
 * The row a transform sees is what to_jsonb(NEW) would give, except that
 * timestamps stay timestamps (TT_TIMESTAMP, Unix microseconds; timestamp
 * without time zone is read as UTC, a date as midnight UTC).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/executor.h"
#include "ingest.h"
#include "mb/pg_wchar.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/* How a column is converted; TK_OTHER goes through text and the input
 * (or output) function, which also covers domains and type modifiers. */
typedef enum TTTypeKind
{
	TK_OTHER = 0,
	TK_BOOL,
	TK_INT2,
	TK_INT4,
	TK_INT8,
	TK_FLOAT4,
	TK_FLOAT8,
	TK_NUMERIC,
	TK_TEXT,
	TK_JSON,
	TK_JSONB,
	TK_TIMESTAMPTZ,
	TK_TIMESTAMP,
	TK_DATE
} TTTypeKind;

static TTTypeKind
type_kind(Oid typid, int32 typmod)
{
	switch (typid)
	{
		case BOOLOID:
			return TK_BOOL;
		case INT2OID:
			return TK_INT2;
		case INT4OID:
			return TK_INT4;
		case INT8OID:
			return TK_INT8;
		case FLOAT4OID:
			return TK_FLOAT4;
		case FLOAT8OID:
			return TK_FLOAT8;
		case NUMERICOID:
			return typmod < 0 ? TK_NUMERIC : TK_OTHER;
		case TEXTOID:
			return TK_TEXT;
		case VARCHAROID:
			return typmod < 0 ? TK_TEXT : TK_OTHER;
		case JSONOID:
			return TK_JSON;
		case JSONBOID:
			return TK_JSONB;
		case TIMESTAMPTZOID:
			return typmod < 0 ? TK_TIMESTAMPTZ : TK_OTHER;
		case TIMESTAMPOID:
			return typmod < 0 ? TK_TIMESTAMP : TK_OTHER;
		case DATEOID:
			return TK_DATE;
	}
	return TK_OTHER;
}

/* ---------------------------------------------------------------------
 * Source side: heap tuple -> tree
 * ---------------------------------------------------------------------
 */
typedef struct TTSourceCol
{
	const char *name;
	uint32		namelen;
	int			attindex;		/* in the tuple */
	TTTypeKind	kind;
	FmgrInfo	out;			/* TK_OTHER, TK_JSON, TK_NUMERIC */
} TTSourceCol;

struct TTSourceMap
{
	TupleDesc	desc;
	int			nlive;
	TTSourceCol *cols;			/* the live (not dropped) columns */
	Datum	   *values;
	bool	   *nulls;
	tt_member  *members;		/* the row object's, refilled per row */
	char	   *names;			/* the columns' names, one block */
	char	   *names_end;
	uint64		serial;			/* this map's, never another's */
};

static uint64 source_map_serials = 0;

TTSourceMap *
tt_source_map_create(TupleDesc desc, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TTSourceMap *map = palloc0(sizeof(TTSourceMap));
	int			i;

	map->serial = ++source_map_serials;
	map->desc = CreateTupleDescCopy(desc);
	map->cols = palloc0(sizeof(TTSourceCol) * Max(1, desc->natts));
	map->values = palloc(sizeof(Datum) * Max(1, desc->natts));
	map->nulls = palloc(sizeof(bool) * Max(1, desc->natts));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TTSourceCol *col;
		Oid			base;
		Oid			outfn;
		bool		isvarlena;

		if (att->attisdropped)
			continue;
		col = &map->cols[map->nlive++];
		base = getBaseType(att->atttypid);
		col->namelen = strlen(NameStr(att->attname));
		col->attindex = i;
		/* "name" and char(n): fixed-length strings, through their output */
		col->kind = (base == NAMEOID || base == BPCHAROID) ? TK_OTHER :
			type_kind(base, -1);
		if (col->kind == TK_OTHER || col->kind == TK_JSON ||
			col->kind == TK_NUMERIC)
		{
			getTypeOutputInfo(att->atttypid, &outfn, &isvarlena);
			fmgr_info_cxt(outfn, &col->out, cxt);
		}
	}
	map->members = palloc(sizeof(tt_member) * Max(1, map->nlive));

	/* the names, in one block: see tt_source_map_names */
	{
		Size		size = 1;
		char	   *p;

		for (i = 0; i < map->nlive; i++)
			size += map->cols[i].namelen + 1;
		p = map->names = palloc(size);
		for (i = 0; i < map->nlive; i++)
		{
			TTSourceCol *col = &map->cols[i];

			memcpy(p, NameStr(TupleDescAttr(desc, col->attindex)->attname),
				   col->namelen + 1);
			col->name = p;
			p += col->namelen + 1;
		}
		map->names_end = p;
	}
	MemoryContextSwitchTo(old);
	return map;
}

/*
 * The block holding the row's keys (the column names): fixed for the
 * statement, so a key pointing into it is known by its address.
 */
void
tt_source_map_names(TTSourceMap *map, const char **start, const char **end)
{
	*start = map->names;
	*end = map->names_end;
}

static void
set_string(tt_value *dst, const char *s, size_t len)
{
	dst->type = TT_STRING;
	dst->u.str.ptr = s;
	dst->u.str.len = (uint32) len;
}

static void
set_timestamp(tt_value *dst, Timestamp ts, uint32 kind)
{
	if (TIMESTAMP_NOT_FINITE(ts))
	{
		const char *s = TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity";

		set_string(dst, s, strlen(s));
		return;
	}
	dst->type = TT_TIMESTAMP;
	dst->u.ts = tt_timestamp_from_pg(TimestampTzGetDatum(ts));
	dst->host_tag = kind;
}

/*
 * Text values of the source row, remembered so that a string a transform
 * hands back untouched (same pointer, tagged with its slot in host_tag) is
 * stored as the source's own datum: no copy.  Checked by pointer and
 * length, so a stale tag only costs the copy.
 */
#define SOURCE_TEXTS 64

typedef struct SourceText
{
	const char *ptr;
	uint32		len;
	Datum		datum;
} SourceText;

static SourceText source_texts[SOURCE_TEXTS];
static uint32 source_text_count = 0;

static Datum
source_text_datum(const tt_value *v, bool *found)
{
	uint32		tag = v->host_tag;

	*found = (v->type == TT_STRING && tag > 0 && tag <= source_text_count &&
			  source_texts[tag - 1].ptr == v->u.str.ptr &&
			  source_texts[tag - 1].len == v->u.str.len);
	return *found ? source_texts[tag - 1].datum : (Datum) 0;
}

static void
source_value(TTSourceCol *col, Datum d, tt_value *dst)
{
	memset(dst, 0, sizeof(tt_value));
	switch (col->kind)
	{
		case TK_BOOL:
			dst->type = TT_BOOL;
			dst->u.b = DatumGetBool(d) ? 1 : 0;
			return;
		case TK_INT2:
			dst->type = TT_INT;
			dst->u.i = DatumGetInt16(d);
			return;
		case TK_INT4:
			dst->type = TT_INT;
			dst->u.i = DatumGetInt32(d);
			return;
		case TK_INT8:
			dst->type = TT_INT;
			dst->u.i = DatumGetInt64(d);
			return;
		case TK_FLOAT4:
		case TK_FLOAT8:
			{
				double		f = col->kind == TK_FLOAT4 ?
					(double) DatumGetFloat4(d) : DatumGetFloat8(d);

				if (isnan(f) || isinf(f))
				{
					/* what to_jsonb gives: a string */
					const char *s = isnan(f) ? "NaN" : f > 0 ? "Infinity" : "-Infinity";

					set_string(dst, s, strlen(s));
					return;
				}
				dst->type = TT_FLOAT;
				dst->u.f = f;
				return;
			}
		case TK_NUMERIC:
			{
				Numeric		num = DatumGetNumeric(d);
				char	   *s;

				if (tt_numeric_to_int64(num, &dst->u.i))
				{
					dst->type = TT_INT;
					return;
				}
				if (numeric_is_nan(num) || numeric_is_inf(num))
				{
					s = OutputFunctionCall(&col->out, d);
					set_string(dst, s, strlen(s));
				}
				else
				{
					/* tagged: an untouched value goes back without parsing */
					dst->type = TT_NUMERIC;
					if (tt_numeric_lazy_text)
						tt_numeric_defer(num, dst);
					else
						tt_numeric_text(num, dst);
				}
				return;
			}
		case TK_TEXT:
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(d);

				/* DatumGetTextPP without a call for the usual plain datum */
				if (unlikely(VARATT_IS_COMPRESSED(t) || VARATT_IS_EXTERNAL(t)))
					t = DatumGetTextPP(d);

				set_string(dst, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				if (source_text_count < SOURCE_TEXTS)
				{
					source_texts[source_text_count].ptr = dst->u.str.ptr;
					source_texts[source_text_count].len = dst->u.str.len;
					source_texts[source_text_count].datum = PointerGetDatum(t);
					dst->host_tag = ++source_text_count;
				}
				return;
			}
		case TK_JSONB:
			tt_jsonb_to_value(DatumGetJsonbP(d), dst);
			return;
		case TK_JSON:
			{
				char	   *s = OutputFunctionCall(&col->out, d);
				Datum		jb = DirectFunctionCall1(jsonb_in, CStringGetDatum(s));

				tt_jsonb_to_value(DatumGetJsonbP(jb), dst);
				return;
			}
		case TK_TIMESTAMPTZ:
		case TK_TIMESTAMP:
			set_timestamp(dst, DatumGetTimestamp(d),
						  col->kind == TK_TIMESTAMP ? TT_TS_TIMESTAMP : TT_TS_TIMESTAMPTZ);
			return;
		case TK_DATE:
			{
				DateADT		date = DatumGetDateADT(d);

				if (DATE_NOT_FINITE(date))
				{
					const char *s = DATE_IS_NOBEGIN(date) ? "-infinity" : "infinity";

					set_string(dst, s, strlen(s));
					return;
				}
				set_timestamp(dst, (Timestamp) date * USECS_PER_DAY, TT_TS_DATE);
				return;
			}
		case TK_OTHER:
			{
				char	   *s = OutputFunctionCall(&col->out, d);

				set_string(dst, s, strlen(s));
				return;
			}
	}
}

/* A source tuple's values, into the map's own arrays. */
void
tt_source_deform(TTSourceMap *map, HeapTuple tuple, Datum **values, bool **nulls)
{
	heap_deform_tuple(tuple, map->desc, map->values, map->nulls);
	*values = map->values;
	*nulls = map->nulls;
}

/* Unique per map: the keys of tt_source_row's rows are its column names. */
uint64
tt_source_map_serial(const TTSourceMap *map)
{
	return map->serial;
}

/*
 * The member array is the map's, refilled for each row: a row's tree lives
 * until the next row (a transform that adds members past the array's room
 * gets a new array from the row arena).
 */
void
tt_source_row(TTSourceMap *map, const Datum *values, const bool *nulls,
			  tt_value *dst)
{
	tt_member  *m = map->members;
	int			i;

	source_text_count = 0;
	memset(dst, 0, sizeof(tt_value));
	dst->type = TT_OBJECT;
	dst->u.obj.cap = map->nlive;
	dst->u.obj.count = map->nlive;
	dst->u.obj.members = m;
	for (i = 0; i < map->nlive; i++, m++)
	{
		TTSourceCol *col = &map->cols[i];

		m->key.ptr = col->name;
		m->key.len = col->namelen;
		if (nulls[col->attindex])
		{
			memset(&m->value, 0, sizeof(tt_value));
			m->value.type = TT_NULL;
		}
		else
			source_value(col, values[col->attindex], &m->value);
	}
	if (source_text_count > 0)
		dst->host_tag = TT_ROW_HAS_SOURCE_TEXT;
}

/* ---------------------------------------------------------------------
 * Target side: tree -> column values
 * ---------------------------------------------------------------------
 */
typedef struct TTTargetCol
{
	const char *name;
	uint32		namelen;
	bool		dropped;
	bool		generated;
	bool		identity_always;	/* GENERATED ALWAYS AS IDENTITY */
	bool		notnull;
	TTTypeKind	kind;
	Oid			typid;
	int32		typmod;
	Oid			ioparam;
	FmgrInfo	in;
	Node	   *defnode;		/* NULL: no default (NULL) */
	ExprState  *defexpr;		/* defnode, ready for the statement */
} TTTargetCol;

struct TTTargetMap
{
	const char *relname;
	int			natts;
	TTTargetCol *cols;
	int		   *guess;			/* member position -> column index, last seen */
	const char **guess_key;		/* and its key, if in [stable, stable_end) */
	int			nguess;
	const char *stable;			/* keys here never change (the source's */
	const char *stable_end;		/* column names) */
	bool		ignore_unknown; /* keys that name no column are skipped */
};

TTTargetMap *
tt_target_map_create(Relation rel, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TupleDesc	desc = RelationGetDescr(rel);
	TTTargetMap *map = palloc0(sizeof(TTTargetMap));
	int			i;

	map->relname = pstrdup(RelationGetRelationName(rel));
	map->natts = desc->natts;
	map->cols = palloc0(sizeof(TTTargetCol) * Max(1, desc->natts));
	map->nguess = 64;
	map->guess = palloc(sizeof(int) * map->nguess);
	map->guess_key = palloc0(sizeof(const char *) * map->nguess);
	for (i = 0; i < map->nguess; i++)
		map->guess[i] = -1;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TTTargetCol *col = &map->cols[i];
		Oid			infn;
		Node	   *def;

		col->dropped = att->attisdropped;
		if (col->dropped)
			continue;
		col->name = pstrdup(NameStr(att->attname));
		col->namelen = strlen(col->name);
		col->generated = att->attgenerated != '\0';
		col->identity_always = att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS;
		col->notnull = att->attnotnull;
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->kind = type_kind(att->atttypid, att->atttypmod);
		getTypeInputInfo(att->atttypid, &infn, &col->ioparam);
		fmgr_info_cxt(infn, &col->in, cxt);
		if (col->generated)
			continue;
		/* like COPY: defaults (and identity) built once, run per row */
		def = build_column_default(rel, i + 1);
		if (def != NULL)
			col->defnode = def;
	}
	MemoryContextSwitchTo(old);
	return map;
}

/*
 * Readies the defaults for a statement's executor state.  They are planned
 * again for every statement, as COPY does, so that a function a default
 * calls is the one that exists now (SQL functions are inlined here).
 */
void
tt_target_map_bind(TTTargetMap *map, EState *estate)
{
	int			i;

	for (i = 0; i < map->natts; i++)
	{
		TTTargetCol *col = &map->cols[i];

		col->defexpr = col->defnode ?
			ExecPrepareExpr((Expr *) col->defnode, estate) : NULL;
	}
}

int
tt_target_attindex(TTTargetMap *map, const char *name)
{
	int			i;

	for (i = 0; i < map->natts; i++)
		if (!map->cols[i].dropped && strcmp(map->cols[i].name, name) == 0)
			return i;
	return -1;
}

/* A pipeline with unknown_keys => 'ignore' (Talaria's behaviour). */
void
tt_target_map_ignore_unknown(TTTargetMap *map, bool ignore)
{
	map->ignore_unknown = ignore;
}

void
tt_target_map_stable_keys(TTTargetMap *map, const char *start, const char *end)
{
	map->stable = start;
	map->stable_end = end;
}

static int
find_column(TTTargetMap *map, const tt_str *key, uint32 pos)
{
	int			i;

	/* results usually list their keys in the same order row after row */
	if (pos < (uint32) map->nguess && map->guess[pos] >= 0)
	{
		TTTargetCol *col = &map->cols[map->guess[pos]];

		/* the very key seen last time, in memory that does not change */
		if (key->ptr == map->guess_key[pos] && key->ptr != NULL &&
			key->len == col->namelen)
			return map->guess[pos];
		if (col->namelen == key->len && memcmp(col->name, key->ptr, key->len) == 0)
			return map->guess[pos];
	}
	for (i = 0; i < map->natts; i++)
	{
		TTTargetCol *col = &map->cols[i];

		if (!col->dropped && col->namelen == key->len &&
			memcmp(col->name, key->ptr, key->len) == 0)
		{
			if (pos < (uint32) map->nguess)
			{
				map->guess[pos] = i;
				map->guess_key[pos] =
					(key->ptr >= map->stable && key->ptr < map->stable_end) ?
					key->ptr : NULL;
			}
			return i;
		}
	}
	return -1;
}

static bool
fail(TTCallError *err, int sqlerrcode, const char *fmt,...)
	pg_attribute_printf(3, 4);

static bool
fail(TTCallError *err, int sqlerrcode, const char *fmt,...)
{
	va_list		ap;
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&buf, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	err->message = buf.data;
	err->sqlerrcode = sqlerrcode;
	return false;
}

static bool
valid_text(const tt_str *s)
{
	if (s->len == 0)
		return true;
	if (s->ptr == NULL)
		return false;
	return tt_text_valid(s->ptr, s->len);
}

/*
 * The value as text for an input function; NULL with err set when it
 * cannot be text (invalid encoding).  May ereport (jsonb checks).
 */
static char *
render_text(const tt_value *v, const char *colname, const char *transform,
			TTCallError *err)
{
	char		buf[64];

	/* (a deferred one whose Numeric the memo no longer has) */
	if (tt_numeric_deferred(v) && !tt_numeric_materialize((tt_value *) v, NULL))
	{
		fail(err, ERRCODE_INTERNAL_ERROR,
			 "internal error: a number of the row was used after its row");
		return NULL;
	}
	switch (v->type)
	{
		case TT_BOOL:
			return pstrdup(v->u.b ? "true" : "false");
		case TT_INT:
			snprintf(buf, sizeof(buf), INT64_FORMAT, (int64) v->u.i);
			return pstrdup(buf);
		case TT_FLOAT:
			if (isnan(v->u.f))
				return pstrdup("NaN");
			if (isinf(v->u.f))
				return pstrdup(v->u.f > 0 ? "Infinity" : "-Infinity");
			tt_format_double(v->u.f, buf, sizeof(buf));
			return pstrdup(buf);
		case TT_NUMERIC:
		case TT_STRING:
			if (!valid_text(&v->u.str))
			{
				fail(err, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
					 "value for column \"%s\" is not valid %s (or contains a NUL byte)",
					 colname, GetDatabaseEncodingName());
				return NULL;
			}
			return pnstrdup(v->u.str.ptr, v->u.str.len);
		case TT_TIMESTAMP:
			{
				/* UTC, so that timestamp without time zone reads UTC too */
				char	   *s = JsonEncodeDateTime(NULL, tt_timestamp_to_pg(v->u.ts),
												   TIMESTAMPOID, NULL);

				return psprintf("%s+00:00", s);
			}
		case TT_OBJECT:
		case TT_ARRAY:
			{
				Jsonb	   *jb = tt_value_to_jsonb(v, transform);

				return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
			}
	}
	fail(err, ERRCODE_DATA_EXCEPTION, "value for column \"%s\" has unknown type tag %u",
		 colname, v->type);
	return NULL;
}

static bool
int_in_range(TTTargetCol *col, int64 i, int64 min, int64 max, TTCallError *err)
{
	if (i < min || i > max)
		return fail(err, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					"value " INT64_FORMAT " is out of range for column \"%s\" of type %s",
					i, col->name, format_type_be(col->typid));
	return true;
}

/* Unix seconds (integer or float) -> PostgreSQL timestamp */
static bool
epoch_to_pg(TTTargetCol *col, const tt_value *v, Timestamp *out, TTCallError *err)
{
	double		secs = v->type == TT_INT ? (double) v->u.i : v->u.f;
	double		us = secs * 1000000.0 -
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	if (isnan(us) || us < (double) MIN_TIMESTAMP || us >= (double) END_TIMESTAMP)
		return fail(err, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
					"value for column \"%s\" is out of range for type %s",
					col->name, format_type_be(col->typid));
	*out = (Timestamp) rint(us);
	return true;
}

/*
 * A timestamp value of the tree into a time column, stored exactly as
 * PostgreSQL's own input of the text the transform saw would store it: in
 * its own type unchanged, into another time type by PostgreSQL's cast
 * (which reads and writes local time in the session's TimeZone, as the
 * text would be read).  Values a native plugin makes are instants
 * (timestamptz).
 */
static Datum
timestamp_as(TTTargetCol *col, const tt_value *v)
{
	Datum		pg = tt_timestamp_to_pg(v->u.ts);
	Datum		date;

	switch (v->host_tag)
	{
		case TT_TS_TIMESTAMP:
			if (col->kind == TK_TIMESTAMP)
				return pg;
			if (col->kind == TK_TIMESTAMPTZ)
				return DirectFunctionCall1(timestamp_timestamptz, pg);
			return DirectFunctionCall1(timestamp_date, pg);
		case TT_TS_DATE:
			date = DirectFunctionCall1(timestamp_date, pg);
			if (col->kind == TK_DATE)
				return date;
			if (col->kind == TK_TIMESTAMP)
				return DirectFunctionCall1(date_timestamp, date);
			return DirectFunctionCall1(date_timestamptz, date);
		default:
			if (col->kind == TK_TIMESTAMPTZ)
				return pg;
			if (col->kind == TK_TIMESTAMP)
				return DirectFunctionCall1(timestamptz_timestamp, pg);
			return DirectFunctionCall1(timestamptz_date, pg);
	}
}

/* Unix seconds as a decimal -> PostgreSQL timestamp, to the microsecond */
static bool
numeric_epoch_to_pg(TTTargetCol *col, Numeric num, Timestamp *out,
					TTCallError *err)
{
	Numeric		us;
	bool		have_error = false;
	int64		i;

	us = numeric_mul_opt_error(num, int64_to_numeric(1000000), &have_error);
	if (!have_error)
		us = DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(us),
												 Int32GetDatum(0)));
	if (have_error || numeric_is_nan(us) || numeric_is_inf(us) ||
		!tt_numeric_to_int64(us, &i) ||
		i > PG_INT64_MAX - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY ||
		i - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY < MIN_TIMESTAMP ||
		i - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY >= END_TIMESTAMP)
		return fail(err, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
					"value for column \"%s\" is out of range for type %s",
					col->name, format_type_be(col->typid));
	*out = i - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	return true;
}

static bool
convert_value(TTTargetMap *map, TTTargetCol *col, const tt_value *v,
			  Datum *value, const char *transform, TTCallError *err)
{
	char	   *s;
	Timestamp	ts = 0;
	Numeric		num;

	switch (col->kind)
	{
		case TK_BOOL:
			if (v->type == TT_BOOL)
			{
				*value = BoolGetDatum(v->u.b != 0);
				return true;
			}
			break;
		case TK_INT2:
			if (v->type == TT_INT)
			{
				if (!int_in_range(col, v->u.i, PG_INT16_MIN, PG_INT16_MAX, err))
					return false;
				*value = Int16GetDatum((int16) v->u.i);
				return true;
			}
			break;
		case TK_INT4:
			if (v->type == TT_INT)
			{
				if (!int_in_range(col, v->u.i, PG_INT32_MIN, PG_INT32_MAX, err))
					return false;
				*value = Int32GetDatum((int32) v->u.i);
				return true;
			}
			break;
		case TK_INT8:
			if (v->type == TT_INT)
			{
				*value = Int64GetDatum(v->u.i);
				return true;
			}
			break;
		case TK_FLOAT8:
			if (v->type == TT_INT || v->type == TT_FLOAT)
			{
				*value = Float8GetDatum(v->type == TT_INT ? (double) v->u.i : v->u.f);
				return true;
			}
			break;
		case TK_FLOAT4:
			if (v->type == TT_INT || (v->type == TT_FLOAT &&
									  (isnan(v->u.f) || fabs(v->u.f) <= FLT_MAX)))
			{
				*value = Float4GetDatum(v->type == TT_INT ? (float4) v->u.i :
										(float4) v->u.f);
				return true;
			}
			break;
		case TK_NUMERIC:
			if (v->type == TT_INT)
			{
				*value = NumericGetDatum(int64_to_numeric(v->u.i));
				return true;
			}
			if ((num = tt_value_source_numeric(v)) != NULL)
			{
				*value = NumericGetDatum(num);
				return true;
			}
			break;
		case TK_TEXT:
			if (v->type == TT_TIMESTAMP)
			{
				/* the text the transform saw (to_jsonb's, session time zone) */
				*value = CStringGetTextDatum(tt_timestamp_text(v));
				return true;
			}
			if (v->type == TT_STRING)
			{
				bool		found;
				Datum		same = source_text_datum(v, &found);

				if (found)
				{
					*value = same;	/* the source's own text, untouched */
					return true;
				}
				if (!valid_text(&v->u.str))
					break;		/* render_text reports it */
				*value = PointerGetDatum(cstring_to_text_with_len(v->u.str.ptr,
																  v->u.str.len));
				return true;
			}
			s = render_text(v, col->name, transform, err);
			if (s == NULL)
				return false;
			*value = PointerGetDatum(cstring_to_text(s));
			return true;
		case TK_JSONB:
		case TK_JSON:
			if (v->type == TT_STRING && v->host_tag == TT_STR_JSON_TEXT)
			{
				/* json.encode's text: the JSON value it spells */
				*value = InputFunctionCall(&col->in,
										   pnstrdup(v->u.str.ptr, v->u.str.len),
										   col->ioparam, col->typmod);
				return true;
			}
			if (col->kind == TK_JSONB)
			{
				*value = PointerGetDatum(tt_value_to_jsonb(v, transform));
				return true;
			}
			{
				Jsonb	   *jb = tt_value_to_jsonb(v, transform);

				s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
				*value = InputFunctionCall(&col->in, s, col->ioparam, col->typmod);
				return true;
			}
		case TK_TIMESTAMPTZ:
		case TK_TIMESTAMP:
		case TK_DATE:
			if (v->type == TT_TIMESTAMP)
			{
				*value = timestamp_as(col, v);
				return true;
			}
			else if (v->type == TT_INT || v->type == TT_FLOAT)
			{
				if (!epoch_to_pg(col, v, &ts, err))
					return false;
			}
			else if (v->type == TT_NUMERIC)
			{
				/* a decimal's own text (1700000000.123456): exact */
				num = tt_value_source_numeric(v);
				if (num == NULL)
					num = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															  CStringGetDatum(pnstrdup(v->u.str.ptr, v->u.str.len)),
															  ObjectIdGetDatum(InvalidOid),
															  Int32GetDatum(-1)));
				if (!numeric_epoch_to_pg(col, num, &ts, err))
					return false;
			}
			else
				break;
			if (!IS_VALID_TIMESTAMP(ts))
				return fail(err, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
							"value for column \"%s\" is out of range for type %s",
							col->name, format_type_be(col->typid));
			if (col->kind == TK_DATE)
			{
				int64		days = ts / USECS_PER_DAY;

				if (ts < 0 && ts % USECS_PER_DAY != 0)
					days--;
				*value = DateADTGetDatum((DateADT) days);
			}
			else
				*value = TimestampGetDatum(ts);
			return true;
		case TK_OTHER:
			break;
	}
	/* generic: the value's text through the column type's input function */
	s = render_text(v, col->name, transform, err);
	if (s == NULL)
		return false;
	*value = InputFunctionCall(&col->in, s, col->ioparam, col->typmod);
	return true;
}

static inline bool
set_column(TTTargetMap *map, int attindex, const tt_value *v,
		   Datum *values, bool *isnull, const char *transform,
		   TTCallError *err)
{
	if (v == NULL || v->type == TT_NULL)
	{
		values[attindex] = (Datum) 0;
		isnull[attindex] = true;
		return true;
	}
	/*
	 * A deferred number: a numeric column takes its Numeric (convert_value
	 * finds it in the memo), anything else its text.
	 */
	if (unlikely(tt_numeric_deferred(v)) && map->cols[attindex].kind != TK_NUMERIC &&
		!tt_numeric_materialize((tt_value *) v, NULL))
		return fail(err, ERRCODE_INTERNAL_ERROR,
					"internal error: a number of the row was used after its row");
	if (!convert_value(map, &map->cols[attindex], v, &values[attindex],
					   transform, err))
		return false;
	isnull[attindex] = false;
	return true;
}

bool
tt_target_set_column(TTTargetMap *map, int attindex, const tt_value *v,
					 Datum *values, bool *isnull, const char *transform,
					 TTCallError *err)
{
	return set_column(map, attindex, v, values, isnull, transform, err);
}

/* ---------------------------------------------------------------------
 * Computed columns, typed as Talaria declares them
 * ---------------------------------------------------------------------
 */

/* Integral text as int8in reads it (spaces around, a sign, digits). */
static bool
parse_int_text(const tt_str *s, int64 *out)
{
	char		buf[64];
	char	   *end;
	long long	v;

	if (s->len == 0 || s->len >= sizeof(buf) || memchr(s->ptr, '\0', s->len))
		return false;
	memcpy(buf, s->ptr, s->len);
	buf[s->len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || end == buf || !isdigit((unsigned char) end[-1]))
		return false;
	while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
		end++;
	if (*end != '\0')
		return false;
	*out = (int64) v;
	return true;
}

/* Decimal text as float8in reads it (also NaN, Infinity). */
static bool
parse_float_text(const tt_str *s, double *out)
{
	char		buf[128];
	char	   *end;
	char	   *p = buf;

	if (s->len == 0 || s->len >= sizeof(buf) || memchr(s->ptr, '\0', s->len))
		return false;
	memcpy(buf, s->ptr, s->len);
	buf[s->len] = '\0';
	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	/* strtod's hexadecimal floats are not PostgreSQL's */
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		return false;
	errno = 0;
	*out = strtod(p, &end);
	if (end == p || (errno == ERANGE && *out != 0.0))
		return false;
	while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
		end++;
	return *end == '\0';
}

/* A number with a fraction into an integer column, by the rounding policy. */
static bool
fraction_to_int(TTTargetCol *col, double d, int rounding, int64 *out,
				TTCallError *err)
{
	char		buf[64];

	if (isnan(d) || isinf(d))
		return fail(err, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					"value %s is out of range for column \"%s\" of type %s",
					isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity",
					col->name, format_type_be(col->typid));
	if (d != floor(d))
	{
		if (rounding == TT_ROUNDING_ERROR)
		{
			tt_format_double(d, buf, sizeof(buf));
			return fail(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
						"value %s for column \"%s\" of type %s is not an integer (rounding => 'error')",
						buf, col->name, format_type_be(col->typid));
		}
		d = rounding == TT_ROUNDING_ROUND ? round(d) : trunc(d);
	}
	/* doubles at or beyond 2^63 do not fit */
	if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
	{
		tt_format_double(d, buf, sizeof(buf));
		return fail(err, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					"value %s is out of range for column \"%s\" of type %s",
					buf, col->name, format_type_be(col->typid));
	}
	*out = (int64) d;
	return true;
}

/*
 * A computed column's value as a Talaria user expects it, before it is
 * stored: a number with a fraction into an integer column is rounded as
 * the column's policy says, and, when parse_text (the column's failures
 * are soft: NULL or a dead letter), text into an integer, float or boolean
 * column is read here rather than by the type's input function (which
 * could only fail with an ERROR).  Returns v, or tmp holding the converted
 * value, or NULL with err set.  Never ereports.
 */
const tt_value *
tt_target_coerce_computed(TTTargetMap *map, int attindex, const tt_value *v,
						  int rounding, bool parse_text, tt_value *tmp,
						  TTCallError *err)
{
	TTTargetCol *col = &map->cols[attindex];
	double		d;
	bool		b;

	if (unlikely(tt_numeric_deferred(v)) && !tt_numeric_materialize((tt_value *) v, NULL))
	{
		fail(err, ERRCODE_INTERNAL_ERROR,
			 "internal error: a number of the row was used after its row");
		return NULL;
	}
	switch (col->kind)
	{
		case TK_INT2:
		case TK_INT4:
		case TK_INT8:
			memset(tmp, 0, sizeof(tt_value));
			tmp->type = TT_INT;
			if (v->type == TT_FLOAT)
				return fraction_to_int(col, v->u.f, rounding, &tmp->u.i, err) ? tmp : NULL;
			if (v->type == TT_NUMERIC)
			{
				/* through a double: exact up to 2^53 */
				if (!valid_text(&v->u.str) ||
					!tt_decimal_to_double(v->u.str.ptr, v->u.str.len, &d))
				{
					fail(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
						 "value for column \"%s\" of type %s is not a number",
						 col->name, format_type_be(col->typid));
					return NULL;
				}
				return fraction_to_int(col, d, rounding, &tmp->u.i, err) ? tmp : NULL;
			}
			if (v->type == TT_STRING && parse_text)
			{
				if (parse_int_text(&v->u.str, &tmp->u.i))
					return tmp;
				fail(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
					 "value \"%.*s\" for column \"%s\" is not an integer",
					 (int) Min(v->u.str.len, 100),
					 valid_text(&v->u.str) ? v->u.str.ptr : "?",
					 col->name);
				return NULL;
			}
			if (v->type == TT_BOOL && parse_text)
			{
				fail(err, ERRCODE_DATATYPE_MISMATCH,
					 "a boolean is not a value for column \"%s\" of type %s",
					 col->name, format_type_be(col->typid));
				return NULL;
			}
			break;
		case TK_FLOAT4:
		case TK_FLOAT8:
			if (v->type == TT_STRING && parse_text)
			{
				memset(tmp, 0, sizeof(tt_value));
				tmp->type = TT_FLOAT;
				if (parse_float_text(&v->u.str, &tmp->u.f))
					return tmp;
				fail(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
					 "value \"%.*s\" for column \"%s\" is not a number",
					 (int) Min(v->u.str.len, 100),
					 valid_text(&v->u.str) ? v->u.str.ptr : "?",
					 col->name);
				return NULL;
			}
			break;
		case TK_BOOL:
			if (v->type == TT_STRING && parse_text)
			{
				if (v->u.str.len > 0 && valid_text(&v->u.str) &&
					parse_bool_with_len(v->u.str.ptr, v->u.str.len, &b))
				{
					memset(tmp, 0, sizeof(tt_value));
					tmp->type = TT_BOOL;
					tmp->u.b = b;
					return tmp;
				}
				fail(err, ERRCODE_INVALID_TEXT_REPRESENTATION,
					 "value for column \"%s\" of type boolean is not a boolean",
					 col->name);
				return NULL;
			}
			break;
		default:
			break;
	}
	return v;
}

/*
 * Could storing v in the column raise an ERROR (a type's input function,
 * a jsonb check) rather than fail softly?  The computed columns whose
 * failures store NULL or a dead letter convert such values in a
 * subtransaction; the common cases (numbers, booleans, text into text,
 * timestamps) never need one.
 */
bool
tt_target_convert_may_raise(TTTargetMap *map, int attindex, const tt_value *v)
{
	TTTargetCol *col = &map->cols[attindex];

	if (v == NULL || v->type == TT_NULL)
		return false;
	switch (col->kind)
	{
		case TK_BOOL:
			return v->type != TT_BOOL;
		case TK_INT2:
		case TK_INT4:
		case TK_INT8:
			return v->type != TT_INT;
		case TK_FLOAT4:
		case TK_FLOAT8:
			return v->type != TT_INT && v->type != TT_FLOAT;
		case TK_NUMERIC:
			return v->type != TT_INT;
		case TK_TEXT:
			return v->type == TT_OBJECT || v->type == TT_ARRAY;
		case TK_JSONB:
			return v->type != TT_INT && v->type != TT_BOOL;
		case TK_TIMESTAMPTZ:
		case TK_TIMESTAMP:
		case TK_DATE:
			return v->type != TT_TIMESTAMP && v->type != TT_INT && v->type != TT_FLOAT;
		default:
			return true;
	}
}

bool
tt_target_set_result(TTTargetMap *map, const tt_value *result,
					 Datum *values, bool *isnull, bool *isset,
					 const char *transform, TTCallError *err)
{
	uint32		i;

	if (result->type != TT_OBJECT)
		return fail(err, ERRCODE_DATATYPE_MISMATCH,
					"transform must return an object or nil for ingest, not %s",
					tt_type_name(result->type));
	for (i = 0; i < result->u.obj.count; i++)
	{
		const tt_member *m = &result->u.obj.members[i];
		int			idx = find_column(map, &m->key, i);

		if (idx < 0)
		{
			if (map->ignore_unknown)
				continue;
			if (!valid_text(&m->key))
				return fail(err, ERRCODE_UNDEFINED_COLUMN,
							"a key is not valid %s", GetDatabaseEncodingName());
			return fail(err, ERRCODE_UNDEFINED_COLUMN,
						"key \"%.*s\" has no column in table \"%s\"",
						(int) m->key.len, m->key.ptr, map->relname);
		}
		if (map->cols[idx].generated)
			return fail(err, ERRCODE_GENERATED_ALWAYS,
						"key \"%s\" names generated column of table \"%s\"",
						map->cols[idx].name, map->relname);
		/* as INSERT without OVERRIDING SYSTEM VALUE */
		if (map->cols[idx].identity_always)
			return fail(err, ERRCODE_GENERATED_ALWAYS,
						"cannot insert a non-DEFAULT value into column \"%s\" of table \"%s\": it is an identity column defined as GENERATED ALWAYS",
						map->cols[idx].name, map->relname);
		if (!set_column(map, idx, &m->value, values, isnull, transform, err))
			return false;
		isset[idx] = true;
	}
	return true;
}

/* Defaults for the columns the result left out, then NOT NULL checks. */
bool
tt_target_finish(TTTargetMap *map, Datum *values, bool *isnull,
				 const bool *isset, ExprContext *econtext, TTCallError *err)
{
	int			i;

	for (i = 0; i < map->natts; i++)
	{
		TTTargetCol *col = &map->cols[i];

		if (col->dropped || col->generated)
		{
			values[i] = (Datum) 0;
			isnull[i] = true;
			continue;
		}
		if (!isset[i])
		{
			if (col->defexpr)
				values[i] = ExecEvalExpr(col->defexpr, econtext, &isnull[i]);
			else
			{
				values[i] = (Datum) 0;
				isnull[i] = true;
			}
		}
		if (isnull[i] && col->notnull)
			return fail(err, ERRCODE_NOT_NULL_VIOLATION,
						"null value in column \"%s\" of table \"%s\" violates not-null constraint",
						col->name, map->relname);
	}
	return true;
}
