/* placeholder until the native engine lands (issue 3) */
#include "postgres.h"

#include "talaria.h"

static void *
native_load(TTTransform *t)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("native transforms are not available yet")));
	return NULL;
}

static int
native_call(TTTransform *t, tt_call *call)
{
	return TT_ERROR;
}

static void
native_unload(TTTransform *t)
{
}

const TTEngine tt_native_engine = {"native", native_load, native_call, native_unload, NULL};

PG_FUNCTION_INFO_V1(tt_register_native);
Datum
tt_register_native(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("native transforms are not available yet")));
	PG_RETURN_VOID();
}
