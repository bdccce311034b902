/*-------------------------------------------------------------------------
 *
 * lua_api.h
 *	  The LuaJIT C API, reached through a privately loaded libluajit.
 *
 * PostgreSQL loads extension libraries with RTLD_GLOBAL, so if we linked
 * libluajit normally its lua_* symbols would sit in the backend's global
 * scope next to those of any other Lua embedding (pllua links Lua 5.3 and
 * exports the same names): whichever library came first would serve the
 * other's calls, and the backend would crash.  Instead lua_api.c opens
 * libluajit with RTLD_LOCAL | RTLD_DEEPBIND and resolves every function we
 * use into a pointer; this header routes the API names to those pointers.
 * Include it instead of <lua.h> and friends.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TT_LUA_API_H
#define TT_LUA_API_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

/* every LuaJIT function we call (also through the headers' macros) */
#define TT_LUA_FUNCTIONS(X) \
	X(lua_newstate) X(lua_close) X(lua_getallocf) X(lua_gc) \
	X(lua_gettop) X(lua_settop) X(lua_pushvalue) X(lua_remove) \
	X(lua_insert) X(lua_replace) X(lua_checkstack) X(lua_type) \
	X(lua_typename) X(lua_isstring) X(lua_rawequal) X(lua_tonumber) \
	X(lua_toboolean) X(lua_tolstring) X(lua_objlen) X(lua_touserdata) \
	X(lua_pushnil) X(lua_pushnumber) X(lua_pushinteger) \
	X(lua_pushlstring) X(lua_pushstring) X(lua_pushfstring) \
	X(lua_pushcclosure) X(lua_pushboolean) X(lua_pushlightuserdata) \
	X(lua_getfield) X(lua_rawget) X(lua_rawgeti) X(lua_createtable) \
	X(lua_newuserdata) X(lua_getmetatable) X(lua_setfield) \
	X(lua_rawset) X(lua_rawseti) X(lua_setmetatable) X(lua_setfenv) \
	X(lua_getfenv) X(lua_tointeger) X(lua_topointer) \
	X(lua_call) X(lua_pcall) X(lua_cpcall) X(lua_error) X(lua_next) \
	X(lua_concat) X(lua_lessthan) X(lua_gettable) \
	X(luaL_newstate) X(luaL_error) X(luaL_where) X(luaL_ref) \
	X(luaL_unref) X(luaL_newmetatable) X(luaL_register) \
	X(luaL_loadbuffer) X(luaL_loadbufferx) X(luaL_checkstack) \
	X(luaL_checkany) X(luaL_checklstring) X(luaL_optlstring) \
	X(luaL_optinteger) X(luaL_checktype) X(luaL_buffinit) \
	X(luaL_prepbuffer) X(luaL_addlstring) X(luaL_addstring) \
	X(luaL_addvalue) X(luaL_pushresult) X(luaL_checknumber) \
	X(luaL_argerror) \
	X(luaopen_base) X(luaopen_table) X(luaopen_string) \
	X(luaopen_math) X(luaopen_os) X(luaopen_jit) X(luaopen_ffi)

#define TT_LUA_DECLARE(fn) extern __typeof__(fn) *tt_lj_##fn;
TT_LUA_FUNCTIONS(TT_LUA_DECLARE)
#undef TT_LUA_DECLARE

/* loads libluajit once per backend; ereports if it cannot */
extern void tt_lua_api_load(void);

#ifndef TT_LUA_API_IMPL
#define lua_newstate (*tt_lj_lua_newstate)
#define lua_close (*tt_lj_lua_close)
#define lua_getallocf (*tt_lj_lua_getallocf)
#define lua_gc (*tt_lj_lua_gc)
#define lua_gettop (*tt_lj_lua_gettop)
#define lua_settop (*tt_lj_lua_settop)
#define lua_pushvalue (*tt_lj_lua_pushvalue)
#define lua_remove (*tt_lj_lua_remove)
#define lua_insert (*tt_lj_lua_insert)
#define lua_replace (*tt_lj_lua_replace)
#define lua_checkstack (*tt_lj_lua_checkstack)
#define lua_type (*tt_lj_lua_type)
#define lua_typename (*tt_lj_lua_typename)
#define lua_isstring (*tt_lj_lua_isstring)
#define lua_rawequal (*tt_lj_lua_rawequal)
#define lua_tonumber (*tt_lj_lua_tonumber)
#define lua_toboolean (*tt_lj_lua_toboolean)
#define lua_tolstring (*tt_lj_lua_tolstring)
#define lua_objlen (*tt_lj_lua_objlen)
#define lua_touserdata (*tt_lj_lua_touserdata)
#define lua_pushnil (*tt_lj_lua_pushnil)
#define lua_pushnumber (*tt_lj_lua_pushnumber)
#define lua_pushinteger (*tt_lj_lua_pushinteger)
#define lua_getfenv (*tt_lj_lua_getfenv)
#define lua_tointeger (*tt_lj_lua_tointeger)
#define lua_topointer (*tt_lj_lua_topointer)
#define lua_pushlstring (*tt_lj_lua_pushlstring)
#define lua_pushstring (*tt_lj_lua_pushstring)
#define lua_pushfstring (*tt_lj_lua_pushfstring)
#define lua_pushcclosure (*tt_lj_lua_pushcclosure)
#define lua_pushboolean (*tt_lj_lua_pushboolean)
#define lua_pushlightuserdata (*tt_lj_lua_pushlightuserdata)
#define lua_getfield (*tt_lj_lua_getfield)
#define lua_rawget (*tt_lj_lua_rawget)
#define lua_rawgeti (*tt_lj_lua_rawgeti)
#define lua_createtable (*tt_lj_lua_createtable)
#define lua_newuserdata (*tt_lj_lua_newuserdata)
#define lua_getmetatable (*tt_lj_lua_getmetatable)
#define lua_setfield (*tt_lj_lua_setfield)
#define lua_rawset (*tt_lj_lua_rawset)
#define lua_rawseti (*tt_lj_lua_rawseti)
#define lua_setmetatable (*tt_lj_lua_setmetatable)
#define lua_setfenv (*tt_lj_lua_setfenv)
#define lua_call (*tt_lj_lua_call)
#define lua_pcall (*tt_lj_lua_pcall)
#define lua_cpcall (*tt_lj_lua_cpcall)
#define lua_error (*tt_lj_lua_error)
#define lua_next (*tt_lj_lua_next)
#define lua_concat (*tt_lj_lua_concat)
#define lua_lessthan (*tt_lj_lua_lessthan)
#define lua_gettable (*tt_lj_lua_gettable)
#define luaL_newstate (*tt_lj_luaL_newstate)
#define luaL_error (*tt_lj_luaL_error)
#define luaL_where (*tt_lj_luaL_where)
#define luaL_ref (*tt_lj_luaL_ref)
#define luaL_unref (*tt_lj_luaL_unref)
#define luaL_newmetatable (*tt_lj_luaL_newmetatable)
#define luaL_register (*tt_lj_luaL_register)
#define luaL_loadbuffer (*tt_lj_luaL_loadbuffer)
#define luaL_loadbufferx (*tt_lj_luaL_loadbufferx)
#define luaL_checkstack (*tt_lj_luaL_checkstack)
#define luaL_checkany (*tt_lj_luaL_checkany)
#define luaL_checklstring (*tt_lj_luaL_checklstring)
#define luaL_optlstring (*tt_lj_luaL_optlstring)
#define luaL_optinteger (*tt_lj_luaL_optinteger)
#define luaL_checktype (*tt_lj_luaL_checktype)
#define luaL_buffinit (*tt_lj_luaL_buffinit)
#define luaL_prepbuffer (*tt_lj_luaL_prepbuffer)
#define luaL_addlstring (*tt_lj_luaL_addlstring)
#define luaL_addstring (*tt_lj_luaL_addstring)
#define luaL_addvalue (*tt_lj_luaL_addvalue)
#define luaL_pushresult (*tt_lj_luaL_pushresult)
#define luaL_checknumber (*tt_lj_luaL_checknumber)
#define luaL_argerror (*tt_lj_luaL_argerror)
#define luaopen_base (*tt_lj_luaopen_base)
#define luaopen_table (*tt_lj_luaopen_table)
#define luaopen_string (*tt_lj_luaopen_string)
#define luaopen_math (*tt_lj_luaopen_math)
#define luaopen_os (*tt_lj_luaopen_os)
#define luaopen_jit (*tt_lj_luaopen_jit)
#define luaopen_ffi (*tt_lj_luaopen_ffi)
#endif							/* TT_LUA_API_IMPL */

#endif							/* TT_LUA_API_H */
