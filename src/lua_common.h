/*-------------------------------------------------------------------------
 *
 * lua_common.h
 *	  Conventions shared by the Lua engine, the value conversion and the
 *	  json module.
 *
 * Everything declared here runs on the Lua side: it may raise Lua errors
 * (lua_error / luaL_error) and must never call anything that can ereport.
 * The PostgreSQL side only enters Lua through lua_cpcall in lua_engine.c.
 *
 * Value conventions (see README.md, "Values in Lua"):
 *	- JSON null is the lightuserdata TT_LUA_NULL (json.null);
 *	- a table converted from a JSON array carries the registry metatable
 *	  TT_LUA_ARRAY_MT, so an empty array stays an array; any other table
 *	  with keys 1..n is an array too, an empty plain table is an object;
 *	- a number a double cannot hold exactly (integers beyond 2^53, decimals
 *	  of more than 15 significant digits) is a "talaria.number" userdata that
 *	  keeps its decimal text (TT_LUA_NUMBER_MT); arithmetic on it gives a
 *	  plain Lua number, tostring() and json.encode give the exact text.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TT_LUA_COMMON_H
#define TT_LUA_COMMON_H

#include "lua_api.h"

#include "talaria_transform.h"

extern char tt_lua_null_tag;

#define TT_LUA_NULL ((void *) &tt_lua_null_tag)
#define TT_LUA_ARRAY_MT "talaria.array"
#define TT_LUA_NUMBER_MT "talaria.number"
#define TT_LUA_ROW_MT "talaria.row"
#define TT_LUA_MAX_DEPTH 200

/* the userdata behind TT_LUA_NUMBER_MT: length, then the text */
typedef struct TTLuaNumber
{
	size_t		len;
	char		text[FLEXIBLE_ARRAY_MEMBER];
} TTLuaNumber;

/* lua_convert.c */
typedef struct TTLuaShapes TTLuaShapes;
extern TTLuaShapes *tt_lua_shapes_create(void);
extern void tt_lua_shapes_free(TTLuaShapes *shapes);
extern void tt_lua_push_row(lua_State *L, TTLuaShapes *shapes, tt_call *call,
							bool copy, bool pin_objects);
extern bool tt_lua_objects_pending(void);
extern void tt_lua_objects_done(lua_State *L);
extern void tt_lua_row_done(lua_State *L, TTLuaShapes *shapes);
extern void tt_lua_convert_init(lua_State *L, int ffi_idx);	/* the metatables */
extern void tt_lua_push_value(lua_State *L, const tt_value *v, int depth);
extern void tt_lua_push_number_text(lua_State *L, const char *text, size_t len);
extern void tt_lua_to_value(lua_State *L, int idx, tt_call *call,
							tt_value *dst, int depth);
extern bool tt_lua_is_array(lua_State *L, int idx, size_t *n);
extern TTLuaNumber *tt_lua_tonumberbox(lua_State *L, int idx);
extern void tt_lua_memo_reset(void);
extern void tt_lua_json_text_made(lua_State *L, int idx);
extern void tt_lua_unlazy(lua_State *L, int idx);
extern void tt_lua_guard_rows(lua_State *L, int env);

/* lua_json.c: pushes the module table (encode, decode, null) */
extern int	tt_luaopen_json(lua_State *L);

/* lua_engine.c: load() for the sandbox (text only, instrumented) */
extern int	tt_lua_sandbox_load(lua_State *L);

/*
 * lua_engine.c: limits for C code on the Lua side.  tt_lua_check_interrupt
 * is the check the instrumented code calls (non-zero: stop now, with
 * tt_lua_interrupt_error); C functions that loop for long call
 * tt_lua_check_interrupt_now every few thousand steps.
 * tt_lua_check_cstack raises "C stack overflow" when the C stack is near
 * max_stack_depth: C functions that call back into Lua call it first, so
 * that recursion through them cannot overflow the C stack.
 */
extern int	tt_lua_check_interrupt(void);
extern bool tt_lua_aborting(void);
extern int	tt_lua_check_interrupt_now(void);
extern int	tt_lua_interrupt_error(lua_State *L, int level);
extern void tt_lua_check_cstack(lua_State *L);

/* lua_strlib.c: interruptible find/match/gmatch/gsub and table.sort */
extern void tt_lua_open_strlib(lua_State *L, int string_idx, int table_idx);

/* lua_instrument.c */
extern char *tt_lua_instrument(const char *src, size_t len, const char *checker,
							   size_t *outlen, char *errbuf, size_t errlen);
extern void tt_lua_push_verifier(lua_State *L);
extern bool tt_lua_row_stays_local(const char *src, size_t len);
extern bool tt_lua_objects_stay_local(const char *src, size_t len);

#endif							/* TT_LUA_COMMON_H */
