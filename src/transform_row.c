/*-------------------------------------------------------------------------
 *
 * transform_row.c
 *	  talaria.transform_row(name text, row jsonb) RETURNS jsonb
 *
 * The per-statement state lives in fn_extra: the transform's cache entry
 * (entries never move in the hash) and a memory context reset per row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "talaria.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(tt_transform_row);

typedef struct RowCallCache
{
	char		name[TT_NAME_MAXLEN + 1];
	TTTransform *transform;
	uint64		checked_at;		/* catalog generation of the use check */
	MemoryContext rowcxt;
} RowCallCache;

Datum
tt_transform_row(PG_FUNCTION_ARGS)
{
	RowCallCache *cache = (RowCallCache *) fcinfo->flinfo->fn_extra;
	text	   *name_text = PG_GETARG_TEXT_PP(0);
	Jsonb	   *input = PG_GETARG_JSONB_P(1);
	size_t		namelen = VARSIZE_ANY_EXHDR(name_text);
	MemoryContext caller = CurrentMemoryContext;
	tt_value	row;
	tt_value   *result;
	bool		dropped;
	Jsonb	   *out;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(RowCallCache));
		cache->rowcxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt,
											  "talaria transform_row",
											  ALLOCSET_DEFAULT_SIZES);
		fcinfo->flinfo->fn_extra = cache;
	}
	if (cache->transform == NULL || namelen != strlen(cache->name) ||
		memcmp(cache->name, VARDATA_ANY(name_text), namelen) != 0)
	{
		char	   *name = text_to_cstring(name_text);

		cache->transform = NULL;
		cache->transform = tt_transform_lookup(name);
		strlcpy(cache->name, name, sizeof(cache->name));
		cache->checked_at = 0;
	}
	if (cache->checked_at != tt_catalog_generation)
	{
		/* the lookup above or this one brings the entry up to date */
		cache->transform = tt_transform_lookup(cache->name);
		tt_transform_check_use(cache->transform, GetUserId());
		cache->checked_at = tt_catalog_generation;
	}

	MemoryContextSwitchTo(cache->rowcxt);
	tt_numeric_memo_reset();
	/* for Lua, a decimal's text is written only if the script reads it */
	tt_numeric_lazy_text = (cache->transform->kind == 'l');
	tt_jsonb_to_value(input, &row);
	tt_numeric_lazy_text = false;
	row.host_tag = 0;			/* a row's tag says what kind of row it is */
	result = tt_transform_run(cache->transform, &row, cache->rowcxt, &dropped);
	if (dropped)
	{
		MemoryContextSwitchTo(caller);
		MemoryContextReset(cache->rowcxt);
		PG_RETURN_NULL();
	}
	out = tt_value_to_jsonb(result, cache->transform->name);
	MemoryContextSwitchTo(caller);
	out = (Jsonb *) PG_DETOAST_DATUM_COPY(PointerGetDatum(out));
	MemoryContextReset(cache->rowcxt);
	PG_RETURN_JSONB_P(out);
}
