/*-------------------------------------------------------------------------
 *
 * lua_engine.c
 *	  Lua transforms: one LuaJIT state per transform per backend, the
 *	  sandbox, the memory limit and the interrupt checks.
 *
 * Crossing discipline.  The PostgreSQL side enters Lua only through
 * protected calls (lua_cpcall; for a row, lua_pcall of call_main, a C
 * function made once per state), and nothing between them and the Lua code
 * can ereport:
 * conversions on the Lua side use the Lua API and the no-ereport arena.
 * Errors come back as a status and a message; they become ereports only
 * after the Lua stack has unwound.  The few Lua C functions that need the
 * server (print) wrap it in PG_TRY and turn the error into a Lua error.
 *
 * Limits.  Each state has its own allocator that refuses to grow it beyond
 * talaria.lua_memory_limit (counting also what the running call takes from
 * the per-row arena) or the backend beyond talaria.backend_memory_limit
 * (memory.c); Lua reports "not enough memory" and the state is discarded.
 * Interrupts and talaria.transform_timeout are checked by a call that
 * lua_instrument.c inserts into every loop and function; it is an FFI call
 * so it also runs inside JIT-compiled traces, where debug hooks never fire.
 * C functions that can run long (json) call the same check as they go.
 * Every chunk (the transform's and each load()) is verified on its compiled
 * bytecode before it runs: a loop or function without the check refuses
 * the chunk (lua_instrument.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "catalog/pg_type.h"
#include "lua_api.h"
#include "lua_common.h"
#include "miscadmin.h"
#include "talaria.h"
#include "utils/json.h"

#define TT_ABORT_NONE		0
#define TT_ABORT_CANCEL		1
#define TT_ABORT_TIMEOUT	2

typedef struct TTLuaState
{
	lua_State  *L;
	TTMemBudget mem;			/* the heap, + the running call's arena */
	struct TTLuaState *next;	/* all states of the backend */
	TTTransform *owner;			/* caching transform; NULL: not cached */
	uint64		last_call;		/* for evicting the least recently used */
	bool		busy;			/* running a call or its setup */
	int			main_ref;		/* registry reference of main() */
	int			call_ref;		/* and of call_main, as a C function */
	TTLuaShapes *shapes;		/* row key maps by key set */
	bool		row_local;		/* main cannot keep its row past a call */
	bool		objects_local;	/* nor any object inside it */
	size_t		gc_at;			/* used at which to step the collector */
} TTLuaState;

/*
 * The collector's pause, in percent: a cycle starts when the heap reaches
 * this much of what survived the last one (Lua's default is 200).  A
 * transform's live heap is small and its garbage is per-row rows, so
 * cycles are frequent and each one marks the whole live heap again; a
 * longer pause makes fewer of them, for a heap at most this times the live
 * one (still under talaria.lua_memory_limit).
 */
#define TT_LUA_GC_PAUSE 400

/*
 * LuaJIT runs its collector from allocation sites in the VM and the API; a
 * call that allocates little (a lazy row whose table is reused, fields only
 * deleted) may never reach one, and its garbage would pile up to the memory
 * limit.  So every call checks our own count:
 * each TT_LUA_GC_STEP bytes of growth buy a collector step.
 */
#define TT_LUA_GC_STEP (64 * 1024)

/* every open state, for the backend-wide limit */
static TTLuaState *all_states = NULL;
static uint64 call_clock = 0;

/* interrupt state, read by the checker from compiled traces */
static volatile int tt_lua_abort_reason = TT_ABORT_NONE;
static int64 tt_lua_deadline_ns = 0;
static uint32 tt_lua_tick = 0;

/*
 * The C stack.  Lua code runs on its own stack, but a C function that calls
 * back into Lua (a comparator, a gsub callback, a __tostring from
 * string.format, our pcall) nests C frames, and a script can make that
 * recurse until the backend's C stack overflows.  PostgreSQL's own limit
 * (max_stack_depth, stack_is_too_deep()) bounds it: the checker and our C
 * functions that call back into Lua test it.  stack_is_too_deep() is a call
 * into the server, so it is asked only once the stack has moved
 * TT_CSTACK_STRIDE away from where it was last asked; in between the test
 * is a subtraction.
 */
#define TT_CSTACK_STRIDE (64 * 1024)
#define TT_CSTACK_MESSAGE "C stack overflow (built-in functions and the Lua functions they call nested too deeply)"

static uintptr_t tt_lua_cstack_mark = 0;
static bool tt_lua_cstack_hit = false;	/* the checker stopped for the stack */

/* the sandbox's tostring: never a tail call, see build_sandbox */
static const char tostring_chunk[] =
"local tostring, select, error = ...\n"
"return function(...)\n"
"  if select('#', ...) == 0 then\n"
"    error(\"bad argument #1 to 'tostring' (value expected)\", 2)\n"
"  end\n"
"  local s = tostring(...)\n"
"  return s\n"
"end\n";

/* the privileged setup: builds the checker closure from an FFI pointer */
static const char checker_chunk[] =
"local ffi, abort, ptr = ...\n"
"local check = ffi.cast('int (*)(void)', ptr)\n"
"return function() if check() ~= 0 then abort() end end\n";

/* base functions the sandbox keeps as they are */
static const char *const sandbox_base[] = {
	"assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget",
	"rawset", "select", "setmetatable", "getmetatable", "tostring", "type",
	"unpack", "_VERSION", NULL
};

/* ---------------------------------------------------------------------
 * Interrupts and deadlines
 * ---------------------------------------------------------------------
 */
static inline int64
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* is the C stack past max_stack_depth?  Never ereports. */
static inline bool
cstack_too_deep(void)
{
	intptr_t	moved = (intptr_t) tt_lua_cstack_mark -
		(intptr_t) __builtin_frame_address(0);

	if (likely(moved < TT_CSTACK_STRIDE && moved > -TT_CSTACK_STRIDE))
		return false;
	if (stack_is_too_deep())
		return true;
	tt_lua_cstack_mark = (uintptr_t) __builtin_frame_address(0);
	return false;
}

/*
 * Called through FFI at every loop iteration and function entry, and by
 * long-running C functions every few thousand steps: keep it tiny.  Never
 * ereports; only reads flags the signal handlers set.
 */
int
tt_lua_check_interrupt(void)
{
	if (unlikely(tt_lua_abort_reason != TT_ABORT_NONE))
		return 1;
	if (unlikely(QueryCancelPending || ProcDiePending))
	{
		tt_lua_abort_reason = TT_ABORT_CANCEL;
		return 1;
	}
	if (tt_lua_deadline_ns != 0 && unlikely((++tt_lua_tick & 1023) == 0) &&
		mono_ns() >= tt_lua_deadline_ns)
	{
		tt_lua_abort_reason = TT_ABORT_TIMEOUT;
		return 1;
	}
	if (unlikely(cstack_too_deep()))
	{
		tt_lua_cstack_hit = true;
		return 1;
	}
	return 0;
}

/*
 * The same for C code that calls in after a batch of work rather than per
 * loop iteration (lua_strlib.c): the clock is read on every call, since one
 * call may stand for a great deal of work.
 */
int
tt_lua_check_interrupt_now(void)
{
	tt_lua_tick |= 1023;
	return tt_lua_check_interrupt();
}

/* Lua side: raises "C stack overflow" if the C stack is too deep. */
void
tt_lua_check_cstack(lua_State *L)
{
	if (unlikely(cstack_too_deep()))
		luaL_error(L, TT_CSTACK_MESSAGE);
}

static void
deadline_start(void)
{
	tt_lua_abort_reason = TT_ABORT_NONE;
	tt_lua_cstack_hit = false;
	tt_lua_cstack_mark = (uintptr_t) __builtin_frame_address(0);
	tt_lua_tick = 0;
	tt_lua_deadline_ns = tt_transform_timeout_ms > 0 ?
		mono_ns() + (int64) tt_transform_timeout_ms * 1000000 : 0;
}

static void
deadline_stop(void)
{
	tt_lua_deadline_ns = 0;
}

/*
 * Lua side: raise the error for which tt_lua_check_interrupt answered
 * non-zero, naming the function at the given level.  An interrupt or a
 * timeout stays set (pcall cannot swallow it); a C stack overflow is an
 * ordinary error.
 */
int
tt_lua_interrupt_error(lua_State *L, int level)
{
	bool		cstack = tt_lua_cstack_hit;

	tt_lua_cstack_hit = false;
	luaL_where(L, level);
	if (tt_lua_abort_reason == TT_ABORT_TIMEOUT)
		lua_pushfstring(L, "transform exceeded talaria.transform_timeout (%d ms)",
						tt_transform_timeout_ms);
	else if (tt_lua_abort_reason == TT_ABORT_NONE && cstack)
		lua_pushliteral(L, TT_CSTACK_MESSAGE);
	else
		lua_pushliteral(L, "transform interrupted");
	lua_concat(L, 2);
	return lua_error(L);
}

/*
 * Lua side: is an interrupt or a timeout unwinding the script?  C
 * functions that catch Lua errors (json.decode's errors = 'return') must
 * raise them again, as our pcall does.
 */
bool
tt_lua_aborting(void)
{
	return tt_lua_abort_reason != TT_ABORT_NONE;
}

/*
 * The name of the checker's local in an instrumented chunk: the reserved
 * prefix and 64 random bits, drawn for each chunk after its source exists,
 * so that no source can declare a variable of that name (the verifier
 * relies on it).  Plain C: also called on the Lua side.
 */
#define CHECKER_NAME_LEN 40

static void
checker_name(char *buf)
{
	uint32		r[2];

	if (!pg_strong_random(r, sizeof(r)))
	{
		/* unpredictable enough for this: the source is already written */
		r[0] = (uint32) random() ^ (uint32) mono_ns();
		r[1] = (uint32) random() ^ (uint32) (mono_ns() >> 32) ^ (uint32) MyProcPid;
	}
	snprintf(buf, CHECKER_NAME_LEN, "__talaria_check_%08x%08x", r[0], r[1]);
}

/*
 * Lua side: runs the bytecode verifier (at verifier_idx) on the compiled
 * chunk at the top.  True if it passes; else the reason is pushed.
 */
static bool
chunk_verified(lua_State *L, int verifier_idx, const char *checker)
{
	lua_pushvalue(L, verifier_idx);
	lua_pushvalue(L, -2);
	lua_pushstring(L, checker);
	lua_call(L, 2, 1);
	if (!lua_isnil(L, -1))
		return false;
	lua_pop(L, 1);
	return true;
}

/* the checker's abort(): level 2 is the user's function (1 = the checker) */
static int
lua_abort(lua_State *L)
{
	return tt_lua_interrupt_error(L, 2);
}

/* ---------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------
 */

/*
 * The states' memory comes from LuaJIT's own allocator (much faster than
 * malloc for Lua's many small objects), borrowed from a state that is never
 * used otherwise; we only add the accounting.  A backend is one thread.
 */
static void state_close(TTLuaState *st);

static lua_Alloc backing_alloc = NULL;
static void *backing_ud = NULL;

static bool
backing_init(void)
{
	lua_State  *donor;

	if (backing_alloc != NULL)
		return true;
	donor = luaL_newstate();
	if (donor == NULL)
		return false;
	backing_alloc = lua_getallocf(donor, &backing_ud);
	return true;
}

static void *
lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	TTLuaState *st = (TTLuaState *) ud;
	void	   *p;

	if (nsize == 0)
	{
		backing_alloc(backing_ud, ptr, osize, 0);
		tt_mem_uncharge(&st->mem, osize);
		return NULL;
	}
	if (nsize > osize && !tt_mem_charge(&st->mem, nsize - osize))
		return NULL;
	p = backing_alloc(backing_ud, ptr, osize, nsize);
	if (p == NULL)
	{
		if (nsize > osize)
			tt_mem_uncharge(&st->mem, nsize - osize);
		return NULL;
	}
	if (nsize < osize)
		tt_mem_uncharge(&st->mem, osize - nsize);
	return p;
}

/*
 * Makes room under talaria.backend_memory_limit for a state that may grow
 * by need bytes (at most half the limit: a state allowed more than the
 * whole backend must not empty the cache on every call): closes the idle
 * cached states of other transforms, least recently used first, until it
 * fits or none is left.  Their transforms start afresh on their next call,
 * as after running out of memory.
 */
static void
make_room(TTLuaState *keep, size_t need)
{
	size_t		limit = (size_t) tt_backend_memory_limit_kb * 1024;

	need = Min(need, limit / 2);
	while (tt_mem_backend_used + need > limit)
	{
		TTLuaState *victim = NULL;
		TTLuaState *s;

		for (s = all_states; s != NULL; s = s->next)
			if (s != keep && s->owner != NULL && !s->busy &&
				(victim == NULL || s->last_call < victim->last_call))
				victim = s;
		if (victim == NULL)
			return;
		ereport(DEBUG1,
				(errmsg_internal("talaria: dropping the idle Lua state of transform \"%s\" (talaria.backend_memory_limit)",
								 victim->owner->name)));
		victim->owner->engine_state = NULL;
		state_close(victim);
	}
}

/* ---------------------------------------------------------------------
 * Sandbox functions (Lua side)
 * ---------------------------------------------------------------------
 */

/* pcall/xpcall that cannot swallow an interrupt or a timeout */
static int
sb_pcall(lua_State *L)
{
	int			status;

	luaL_checkany(L, 1);
	tt_lua_check_cstack(L);
	status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	if (status != 0 && tt_lua_abort_reason != TT_ABORT_NONE)
		return lua_error(L);
	lua_pushboolean(L, status == 0);
	lua_insert(L, 1);
	return lua_gettop(L);
}

static int
sb_xpcall(lua_State *L)
{
	int			n = lua_gettop(L);
	int			status;

	luaL_checkany(L, 1);
	luaL_checkany(L, 2);
	tt_lua_check_cstack(L);
	/* [f, h, args...] -> [h, f, args...] */
	lua_pushvalue(L, 2);
	lua_insert(L, 1);
	lua_remove(L, 3);
	status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
	if (status != 0 && tt_lua_abort_reason != TT_ABORT_NONE)
		return lua_error(L);
	lua_pushboolean(L, status == 0);
	lua_replace(L, 1);
	return lua_gettop(L);
}

static int
sb_tonumber(lua_State *L)
{
	TTLuaNumber *box = tt_lua_tonumberbox(L, 1);

	if (box)
	{
		lua_pushnumber(L, strtod(box->text, NULL));
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int
sb_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);

	if (strcmp(name, "json") == 0)
	{
		lua_pushvalue(L, lua_upvalueindex(1));
		return 1;
	}
	return luaL_error(L, "module '%s' is not available in the talaria sandbox", name);
}

static int
sb_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");

	if (strcmp(opt, "count") == 0)
	{
		lua_pushnumber(L, (lua_Number) lua_gc(L, LUA_GCCOUNT, 0) +
					   (lua_Number) lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
		return 1;
	}
	if (strcmp(opt, "collect") == 0)
	{
		lua_gc(L, LUA_GCCOLLECT, 0);
		lua_pushinteger(L, 0);
		return 1;
	}
	if (strcmp(opt, "step") == 0)
	{
		lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int) luaL_optinteger(L, 2, 0)));
		return 1;
	}
	return luaL_error(L, "collectgarbage('%s') is not available in the talaria sandbox", opt);
}

/* print() sends a NOTICE; the server call is fenced with PG_TRY */
static int
sb_print(lua_State *L)
{
	int			n = lua_gettop(L);
	int			i;
	const char *msg;
	volatile bool failed = false;
	MemoryContext oldcxt = CurrentMemoryContext;

	tt_lua_check_cstack(L);
	lua_getglobal(L, "tostring");
	for (i = 1; i <= n; i++)
	{
		lua_pushvalue(L, n + 1);
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		if (!lua_isstring(L, -1))
			return luaL_error(L, "'tostring' must return a string to 'print'");
		if (i > 1)
		{
			lua_pushliteral(L, "\t");
			lua_insert(L, -2);
		}
	}
	lua_concat(L, lua_gettop(L) - n - 1);
	msg = lua_tostring(L, -1);
	PG_TRY();
	{
		ereport(NOTICE, (errmsg_internal("%s", msg ? msg : "")));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		failed = true;
	}
	PG_END_TRY();
	if (failed)
		return luaL_error(L, "print() could not send its message");
	return 0;
}

/*
 * load()/loadstring() for the sandbox: text only, instrumented and verified
 * like the transform itself, and run in the sandbox (or the given)
 * environment.  Upvalues: 1 = the sandbox env, 2 = the checker, 3 = the
 * bytecode verifier.
 */
int
tt_lua_sandbox_load(lua_State *L)
{
	size_t		len;
	const char *src;
	const char *chunkname;
	char	   *code;
	size_t		codelen;
	char		errbuf[256];
	char		checker[CHECKER_NAME_LEN];
	int			status;

	if (lua_type(L, 1) == LUA_TFUNCTION)
	{
		luaL_Buffer b;

		tt_lua_check_cstack(L);
		luaL_buffinit(L, &b);
		for (;;)
		{
			lua_pushvalue(L, 1);
			lua_call(L, 0, 1);
			if (lua_isnil(L, -1) || (lua_isstring(L, -1) && lua_objlen(L, -1) == 0))
			{
				lua_pop(L, 1);
				break;
			}
			if (!lua_isstring(L, -1))
				return luaL_error(L, "reader function must return a string");
			luaL_addvalue(&b);
		}
		luaL_pushresult(&b);
		lua_replace(L, 1);
	}
	src = luaL_checklstring(L, 1, &len);
	chunkname = luaL_optstring(L, 2, "=(load)");
	checker_name(checker);
	code = tt_lua_instrument(src, len, checker, &codelen, errbuf, sizeof(errbuf));
	if (code == NULL)
	{
		lua_pushnil(L);
		lua_pushstring(L, errbuf);
		return 2;
	}
	status = luaL_loadbufferx(L, code, codelen, chunkname, "t");
	free(code);
	if (status != 0)
	{
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (!chunk_verified(L, lua_upvalueindex(3), checker))
	{
		lua_pushnil(L);
		lua_pushfstring(L, "chunk refused: %s", lua_tostring(L, -2));
		return 2;
	}
	/* the wrapper takes the checker and returns the real chunk */
	if (lua_istable(L, 4))
		lua_pushvalue(L, 4);
	else
		lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, -1);
	lua_setfenv(L, -3);
	lua_insert(L, -2);			/* [env, wrapper] */
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_call(L, 1, 1);			/* [env, chunk] */
	lua_insert(L, -2);
	lua_setfenv(L, -2);
	return 1;
}

static int	call_main(lua_State *L);

/* ---------------------------------------------------------------------
 * State setup (Lua side, under lua_cpcall)
 * ---------------------------------------------------------------------
 */
typedef struct SetupArgs
{
	TTLuaState *st;
	const char *name;
	char	   *code;			/* instrumented source (malloc) */
	size_t		codelen;
	const char *checker;		/* its checker's name */
	bool		syntax_error;	/* the failure was the compiler's */
	bool		unverified;		/* the bytecode verifier refused it */
} SetupArgs;

static void
open_lib(lua_State *L, lua_CFunction fn, const char *name)
{
	lua_pushcfunction(L, fn);
	lua_pushstring(L, name);
	lua_call(L, 1, 1);
}

/* Builds the sandbox environment and leaves it on the stack. */
static void
build_sandbox(lua_State *L, int json_idx, int checker_idx, int verifier_idx)
{
	const char *const *fn;
	int			env;

	lua_newtable(L);
	env = lua_gettop(L);
	for (fn = sandbox_base; *fn; fn++)
	{
		lua_getglobal(L, *fn);
		lua_setfield(L, env, *fn);
	}
	/*
	 * LuaJIT's tostring tail-calls a __tostring, so one that is tostring
	 * itself loops forever in the VM, past every check; through this
	 * wrapper each round is a new frame, and the Lua stack's limit ends it.
	 */
	if (luaL_loadbuffer(L, tostring_chunk, sizeof(tostring_chunk) - 1, "=talaria") != 0)
		lua_error(L);
	lua_getglobal(L, "tostring");
	lua_getglobal(L, "select");
	lua_getglobal(L, "error");
	lua_call(L, 3, 1);
	lua_setfield(L, env, "tostring");
	lua_pushcfunction(L, sb_pcall);
	lua_setfield(L, env, "pcall");
	lua_pushcfunction(L, sb_xpcall);
	lua_setfield(L, env, "xpcall");
	lua_pushcfunction(L, sb_print);
	lua_setfield(L, env, "print");
	lua_pushcfunction(L, sb_collectgarbage);
	lua_setfield(L, env, "collectgarbage");
	lua_getglobal(L, "tonumber");
	lua_pushcclosure(L, sb_tonumber, 1);
	lua_setfield(L, env, "tonumber");
	lua_pushvalue(L, json_idx);
	lua_pushcclosure(L, sb_require, 1);
	lua_setfield(L, env, "require");
	lua_pushvalue(L, env);
	lua_pushvalue(L, checker_idx);
	lua_pushvalue(L, verifier_idx);
	lua_pushcclosure(L, tt_lua_sandbox_load, 3);
	lua_pushvalue(L, -1);
	lua_setfield(L, env, "load");
	lua_setfield(L, env, "loadstring");

	/*
	 * libraries: the real string/table/math (private to this state), with
	 * interruptible pattern matching and sorting (lua_strlib.c)
	 */
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");	/* also reachable as ("").dump */
	lua_getglobal(L, "table");
	tt_lua_open_strlib(L, lua_gettop(L) - 1, lua_gettop(L));
	lua_setfield(L, env, "table");
	lua_setfield(L, env, "string");
	lua_getglobal(L, "math");
	lua_setfield(L, env, "math");
	lua_newtable(L);
	lua_getglobal(L, "os");
	lua_getfield(L, -1, "time");
	lua_setfield(L, -3, "time");
	lua_getfield(L, -1, "date");
	lua_setfield(L, -3, "date");
	lua_getfield(L, -1, "clock");
	lua_setfield(L, -3, "clock");
	lua_getfield(L, -1, "difftime");	/* Talaria's scripts use it */
	lua_setfield(L, -3, "difftime");
	lua_pop(L, 1);
	lua_setfield(L, env, "os");
	lua_pushvalue(L, env);
	lua_setfield(L, env, "_G");
	/* functions that see raw table contents unlazy a row first */
	tt_lua_guard_rows(L, env);
}

static int
state_setup(lua_State *L)
{
	SetupArgs  *a = (SetupArgs *) lua_touserdata(L, 1);
	int			json_idx;
	int			checker_idx;
	int			verifier_idx;
	int			env_idx;
	int			status;

	lua_settop(L, 0);
	open_lib(L, luaopen_base, "");
	open_lib(L, luaopen_table, LUA_TABLIBNAME);
	open_lib(L, luaopen_string, LUA_STRLIBNAME);
	open_lib(L, luaopen_math, LUA_MATHLIBNAME);
	open_lib(L, luaopen_os, LUA_OSLIBNAME);
	open_lib(L, luaopen_jit, LUA_JITLIBNAME);	/* turns the JIT on */
	lua_settop(L, 0);
	open_lib(L, luaopen_ffi, LUA_FFILIBNAME);	/* [ffi] */
	lua_pushnil(L);
	lua_setglobal(L, "ffi");
	tt_lua_convert_init(L, 1);

	tt_luaopen_json(L);			/* [ffi, json] */
	json_idx = lua_gettop(L);
	tt_lua_push_verifier(L);	/* [ffi, json, verify] */
	verifier_idx = lua_gettop(L);

	if (luaL_loadbuffer(L, checker_chunk, sizeof(checker_chunk) - 1, "=talaria") != 0)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_pushcfunction(L, lua_abort);
	lua_pushlightuserdata(L, (void *) tt_lua_check_interrupt);
	lua_call(L, 3, 1);			/* [ffi, json, verify, checker] */
	checker_idx = lua_gettop(L);

	build_sandbox(L, json_idx, checker_idx, verifier_idx);	/* [..., env] */
	env_idx = lua_gettop(L);

	/* compile: the wrapper takes the checker and returns the chunk */
	status = luaL_loadbufferx(L, a->code, a->codelen,
							  lua_pushfstring(L, "=%s", a->name), "t");
	lua_remove(L, -2);			/* the chunk name */
	if (status != 0)
	{
		a->syntax_error = (status == LUA_ERRSYNTAX);
		return lua_error(L);
	}
	/* prove the checks are there before anything of it runs */
	if (!chunk_verified(L, verifier_idx, a->checker))
	{
		a->unverified = true;
		return lua_error(L);
	}
	lua_pushvalue(L, env_idx);
	lua_setfenv(L, -2);
	lua_pushvalue(L, checker_idx);
	lua_call(L, 1, 1);
	lua_pushvalue(L, env_idx);
	lua_setfenv(L, -2);
	/* run the top level: it defines main */
	lua_call(L, 0, 0);

	lua_getfield(L, env_idx, "main");
	if (lua_type(L, -1) != LUA_TFUNCTION)
	{
		lua_pushstring(L, "no global function main(row) defined");
		return lua_error(L);
	}
	a->st->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* made once: lua_cpcall would make a new closure (garbage) per call */
	lua_pushcfunction(L, call_main);
	a->st->call_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCSETPAUSE, TT_LUA_GC_PAUSE);
	return 0;
}

/* Copies the error at the top of the stack without raising. */
static char *
error_text(lua_State *L)
{
	int			type = lua_type(L, -1);

	if (type == LUA_TSTRING)
		return pstrdup(lua_tostring(L, -1));
	if (type == LUA_TNUMBER)
		return psprintf("%g", (double) lua_tonumber(L, -1));
	return psprintf("(error object is a %s value)", lua_typename(L, type));
}

static void
state_close(TTLuaState *st)
{
	TTLuaState **link;

	if (st == NULL)
		return;
	for (link = &all_states; *link != NULL; link = &(*link)->next)
		if (*link == st)
		{
			*link = st->next;
			break;
		}
	if (st->L)
		lua_close(st->L);
	tt_lua_shapes_free(st->shapes);
	free(st);
}

/*
 * Creates a state and compiles the transform in it.  Ereports (after
 * closing the state) if the source does not compile or lacks main().
 */
static TTLuaState *
state_create(const char *name, const char *source)
{
	TTLuaState *st;
	SetupArgs	args;
	char		errbuf[256];
	char		checker[CHECKER_NAME_LEN];
	int			rc;
	char	   *msg;
	int			reason;

	tt_lua_api_load();
	st = backing_init() ? calloc(1, sizeof(TTLuaState)) : NULL;
	if (st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	st->mem.limit = (size_t) tt_lua_memory_limit_kb * 1024;
	st->main_ref = LUA_NOREF;
	st->call_ref = LUA_NOREF;
	st->busy = true;
	st->next = all_states;
	all_states = st;
	make_room(st, st->mem.limit);
	tt_mem_hit = TT_MEM_HIT_NONE;
	st->shapes = tt_lua_shapes_create();	/* NULL: the generic path */
	st->row_local = tt_lua_row_stays_local(source, strlen(source));
	st->objects_local = st->row_local &&
		tt_lua_objects_stay_local(source, strlen(source));
	ereport(DEBUG2,
			(errmsg_internal("talaria: transform \"%s\" %s its row past a call",
							 name, st->row_local ? "cannot keep" : "may keep")));
	if (st->row_local)
		ereport(DEBUG2,
				(errmsg_internal("talaria: transform \"%s\" %s the objects inside its row past a call",
								 name, st->objects_local ? "cannot keep" : "may keep")));
	st->L = lua_newstate(lua_alloc, st);
	if (st->L == NULL)
	{
		const char *detail = tt_mem_limit_text("talaria.lua_memory_limit",
											   tt_lua_memory_limit_kb);

		state_close(st);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("could not create a Lua state for transform \"%s\"", name),
				 errdetail("%s.", detail)));
	}

	args.st = st;
	args.name = name;
	args.syntax_error = false;
	args.unverified = false;
	checker_name(checker);
	args.checker = checker;
	args.code = tt_lua_instrument(source, strlen(source), checker, &args.codelen,
								  errbuf, sizeof(errbuf));
	if (args.code == NULL)
	{
		state_close(st);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("transform \"%s\" cannot be compiled: %s", name, errbuf)));
	}

	deadline_start();
	rc = lua_cpcall(st->L, state_setup, &args);
	deadline_stop();
	free(args.code);
	if (rc == 0)
	{
		st->busy = false;
		return st;
	}

	msg = error_text(st->L);
	reason = tt_lua_abort_reason;
	state_close(st);
	if (reason == TT_ABORT_CANCEL)
		CHECK_FOR_INTERRUPTS();
	if (args.syntax_error)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("syntax error in transform \"%s\": %s", name, msg)));
	if (args.unverified)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("transform \"%s\" cannot be loaded: %s", name, msg),
				 errdetail("Its compiled code has a loop or a function that does not check for interrupts."),
				 errhint("This is a defect of talaria's Lua instrumenter; please report the source.")));
	if (rc == LUA_ERRMEM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transform \"%s\" ran out of memory while loading", name),
				 errdetail("%s.", tt_mem_limit_text("talaria.lua_memory_limit",
													 tt_lua_memory_limit_kb))));
	ereport(ERROR,
			(errcode(reason == TT_ABORT_NONE ? ERRCODE_INVALID_FUNCTION_DEFINITION
					 : ERRCODE_QUERY_CANCELED),
			 errmsg("transform \"%s\" failed to load: %s", name, msg)));
	return NULL;				/* keep compiler quiet */
}

/* ---------------------------------------------------------------------
 * The engine interface
 * ---------------------------------------------------------------------
 */
typedef struct CallArgs
{
	TTLuaState *st;
	tt_call    *call;
	int			status;
} CallArgs;

/*
 * The call call_main runs: set just before the protected call (a light
 * userdata argument would cost two API calls a row).  Calls never nest.
 */
static CallArgs *cur_call_args = NULL;

static int
call_main(lua_State *L)
{
	CallArgs   *a = cur_call_args;
	tt_value   *result;

	if (a->st->mem.used >= a->st->gc_at)
	{
		lua_gc(L, LUA_GCSTEP, TT_LUA_GC_STEP / 1024);
		a->st->gc_at = a->st->mem.used + TT_LUA_GC_STEP;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, a->st->main_ref);
	tt_lua_memo_reset();
	tt_lua_push_row(L, a->st->shapes, a->call, !a->st->row_local,
					!a->st->objects_local);
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1))
	{
		tt_lua_objects_done(L);
		tt_lua_row_done(L, a->st->shapes);
		a->status = TT_DROP;
		return 0;
	}
	result = tt_arena_alloc(a->call, sizeof(tt_value));
	if (result == NULL)
		return luaL_error(L, "not enough memory for the result");
	tt_lua_to_value(L, -1, a->call, result, 0);
	tt_lua_objects_done(L);
	tt_lua_row_done(L, a->st->shapes);
	a->call->result = result;
	a->status = TT_OK;
	return 0;
}

/* protected: tt_lua_objects_done after a failed call */
static int
objects_done(lua_State *L)
{
	tt_lua_objects_done(L);
	return 0;
}

static void *
lua_engine_load(TTTransform *t)
{
	TTLuaState *st;

	/* uncached: compile on each call instead */
	if (!tt_lua_cache)
		return NULL;
	st = state_create(t->name, t->source);
	st->owner = t;
	return st;
}

static void
lua_engine_unload(TTTransform *t)
{
	state_close((TTLuaState *) t->engine_state);
	t->engine_state = NULL;
}

static int
lua_engine_call(TTTransform *t, tt_call *call)
{
	TTCallPrivate *priv = (TTCallPrivate *) call->host_private;
	TTLuaState *st = (TTLuaState *) t->engine_state;
	bool		fresh = false;
	CallArgs	args;
	int			rc;
	int			reason;
	bool		fixup_failed = false;

	if (st == NULL || !tt_lua_cache)
	{
		if (!tt_lua_cache)
			lua_engine_unload(t);
		st = state_create(t->name, t->source);
		if (tt_lua_cache)
		{
			t->engine_state = st;
			st->owner = t;
		}
		else
			fresh = true;
	}
	st->mem.limit = (size_t) tt_lua_memory_limit_kb * 1024;
	st->last_call = ++call_clock;
	if (unlikely(tt_mem_backend_used + st->mem.limit - Min(st->mem.used, st->mem.limit) >
				 (size_t) tt_backend_memory_limit_kb * 1024))
		make_room(st, st->mem.limit - Min(st->mem.used, st->mem.limit));

	args.st = st;
	args.call = call;
	args.status = TT_ERROR;
	tt_mem_hit = TT_MEM_HIT_NONE;
	priv->budget = &st->mem;	/* the arena counts against the state */
	st->busy = true;
	deadline_start();
	/* as lua_cpcall(st->L, call_main, &args), without a closure per call */
	lua_rawgeti(st->L, LUA_REGISTRYINDEX, st->call_ref);
	cur_call_args = &args;
	rc = lua_pcall(st->L, 0, 0, 0);
	cur_call_args = NULL;
	deadline_stop();
	/* a failed call's nested objects get their copies too (they may be kept) */
	if (rc != 0 && tt_lua_objects_pending() && tt_lua_abort_reason == TT_ABORT_NONE)
	{
		/* the call's error stays at the top; the fix-up's own is dropped */
		if (lua_cpcall(st->L, objects_done, NULL) != 0)
		{
			lua_pop(st->L, 1);
			fixup_failed = true;
		}
	}
	st->busy = false;
	tt_mem_uncharge(&st->mem, priv->charged);
	priv->budget = NULL;
	priv->charged = 0;
	reason = tt_lua_abort_reason;
	tt_lua_abort_reason = TT_ABORT_NONE;

	if (rc != 0)
	{
		priv->errmsg = error_text(st->L);
		priv->sqlerrcode = TT_ERRCODE_TRANSFORM_FAILED;
		args.status = TT_ERROR;
		if (rc == LUA_ERRMEM || priv->oom ||
			strcmp(priv->errmsg, "not enough memory") == 0)
		{
			priv->errmsg = psprintf("%s (%s)", priv->errmsg,
									tt_mem_limit_text("talaria.lua_memory_limit",
													  tt_lua_memory_limit_kb));
			priv->sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			/* the backend was short: make room for the next call now */
			if (tt_mem_hit == TT_MEM_HIT_BACKEND)
				make_room(st, SIZE_MAX);
		}
		else if (reason == TT_ABORT_TIMEOUT)
			priv->sqlerrcode = ERRCODE_QUERY_CANCELED;
	}
	else if (args.status == TT_OK)
		tt_value_trust_input(); /* its strings: the input's, or copies */
	lua_settop(st->L, 0);

	/*
	 * A state that ran out of memory or was interrupted starts afresh, as
	 * does one whose nested objects could not all get their copies.
	 */
	if (fresh)
		state_close(st);
	else if (rc == LUA_ERRMEM || reason != TT_ABORT_NONE || fixup_failed)
		lua_engine_unload(t);

	if (reason == TT_ABORT_CANCEL)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("transform \"%s\" was interrupted", t->name)));
	}
	return args.status;
}

/* Registration check: compile in a scratch state and throw it away. */
void
tt_lua_check_source(const char *name, const char *source)
{
	state_close(state_create(name, source));
}

const TTEngine tt_lua_engine = {
	.kind = "lua",
	.load = lua_engine_load,
	.call = lua_engine_call,
	.unload = lua_engine_unload,
};
