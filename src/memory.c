/*-------------------------------------------------------------------------
 *
 * memory.c
 *	  One memory budget for everything a transform call allocates on our
 *	  side: the Lua states (json.encode/decode build their values and text
 *	  there too), the per-row arena, the native arena.
 *
 * Each Lua state has a budget of talaria.lua_memory_limit: its own heap,
 * plus, while it runs a call, what that call takes from the per-row arena.
 * A native call has a budget of talaria.native_memory_limit for its arena.
 * All of them together, in one backend, stay under
 * talaria.backend_memory_limit.  A refused charge is reported the way the
 * caller's ABI says (NULL from the allocator, from host->alloc), never by
 * ereport: charges are made under Lua frames and inside plugins.  The
 * refusal is remembered so that the error names the limit that was hit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "talaria.h"

/* bytes charged by all budgets of this backend */
size_t		tt_mem_backend_used = 0;

/* which limit refused the last charge (TT_MEM_HIT_*) */
int			tt_mem_hit = TT_MEM_HIT_NONE;

/*
 * The message detail for a refusal: which setting to raise.  A Lua or
 * native call that ran out of memory names its own limit unless the
 * backend-wide one refused.
 */
const char *
tt_mem_limit_text(const char *own_setting, int own_kb)
{
	if (tt_mem_hit == TT_MEM_HIT_BACKEND)
		return psprintf("talaria.backend_memory_limit is %d kB", tt_backend_memory_limit_kb);
	return psprintf("%s is %d kB", own_setting, own_kb);
}
