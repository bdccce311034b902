/*-------------------------------------------------------------------------
 *
 * lua_api.c
 *	  Load libluajit privately and resolve the API functions we use.
 *
 * See lua_api.h for why: another Lua in the same backend (pllua) must not
 * see our LuaJIT symbols, nor we its.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>

#define TT_LUA_API_IMPL
#include "lua_api.h"

#ifndef TT_LUAJIT_SONAME
#define TT_LUAJIT_SONAME "libluajit-5.1.so.2"
#endif

#define TT_LUA_DEFINE(fn) __typeof__(fn) *tt_lj_##fn = NULL;
TT_LUA_FUNCTIONS(TT_LUA_DEFINE)
#undef TT_LUA_DEFINE

static void *luajit_handle = NULL;

void
tt_lua_api_load(void)
{
	void	   *handle;

	if (luajit_handle != NULL)
		return;
	handle = dlopen(TT_LUAJIT_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load LuaJIT library \"%s\": %s",
						TT_LUAJIT_SONAME, dlerror()),
				 errhint("Install Debian's libluajit2-5.1-2 package.")));

#define TT_LUA_RESOLVE(fn) \
	if ((tt_lj_##fn = (__typeof__(fn) *) dlsym(handle, #fn)) == NULL) \
		ereport(ERROR, \
				(errcode(ERRCODE_UNDEFINED_FUNCTION), \
				 errmsg("LuaJIT library \"%s\" has no function %s", \
						TT_LUAJIT_SONAME, #fn)));
	TT_LUA_FUNCTIONS(TT_LUA_RESOLVE)
#undef TT_LUA_RESOLVE

	luajit_handle = handle;
}
