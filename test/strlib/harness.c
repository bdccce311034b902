/*
 * test/strlib/harness.c: runs a Lua script with both LuaJIT's own
 * string.find/match/gmatch/gsub and table.sort (as orig.*) and ours from
 * src/lua_strlib.c (as newstr.* and newtab.*), for differential tests.
 * Built by test/t/062_lua_strlib_diff.pl against libluajit directly:
 *
 *	cc -DTT_LUA_API_IMPL -I src -I src/include -I $(pg_config --includedir-server) \
 *	   $(pkg-config --cflags luajit) harness.c src/lua_strlib.c $(pkg-config --libs luajit)
 *
 * The interrupt and C stack checks of lua_engine.c are stubs here:
 * set_interrupt(true) makes every check answer "stop".
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

extern void tt_lua_open_strlib(lua_State *L, int string_idx, int table_idx);
extern int	tt_lua_check_interrupt(void);
extern int	tt_lua_check_interrupt_now(void);
extern int	tt_lua_interrupt_error(lua_State *L, int level);
extern void tt_lua_check_cstack(lua_State *L);

static int	interrupt = 0;
static long checks = 0;

int
tt_lua_check_interrupt(void)
{
	checks++;
	return interrupt;
}

int
tt_lua_check_interrupt_now(void)
{
	return tt_lua_check_interrupt();
}

int
tt_lua_interrupt_error(lua_State *L, int level)
{
	luaL_where(L, level);
	lua_pushliteral(L, "transform interrupted");
	lua_concat(L, 2);
	return lua_error(L);
}

void
tt_lua_check_cstack(lua_State *L)
{
	(void) L;
}

static int
set_interrupt(lua_State *L)
{
	interrupt = lua_toboolean(L, 1);
	return 0;
}

static int
get_checks(lua_State *L)
{
	lua_pushnumber(L, (lua_Number) checks);
	return 1;
}

static const char *const names[] = {"find", "match", "gmatch", "gsub", NULL};

int
main(int argc, char **argv)
{
	lua_State  *L = luaL_newstate();
	int			i;

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s script.lua\n", argv[0]);
		return 2;
	}
	luaL_openlibs(L);

	/* orig: LuaJIT's own functions */
	lua_newtable(L);
	lua_getglobal(L, "string");
	for (i = 0; names[i]; i++)
	{
		lua_getfield(L, -1, names[i]);
		lua_setfield(L, -3, names[i]);
	}
	lua_pop(L, 1);
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "sort");
	lua_setfield(L, -3, "sort");
	lua_pop(L, 1);
	lua_setglobal(L, "orig");

	/* newstr, newtab: copies of the libraries that receive ours */
	lua_newtable(L);
	lua_getglobal(L, "string");
	for (i = 0; names[i]; i++)
	{
		lua_getfield(L, -1, names[i]);
		lua_setfield(L, -3, names[i]);
	}
	lua_pop(L, 1);
	lua_newtable(L);
	tt_lua_open_strlib(L, lua_gettop(L) - 1, lua_gettop(L));
	lua_setglobal(L, "newtab");
	lua_setglobal(L, "newstr");

	lua_register(L, "set_interrupt", set_interrupt);
	lua_register(L, "get_checks", get_checks);
	if (luaL_dofile(L, argv[1]))
	{
		printf("error: %s\n", lua_tostring(L, -1));
		return 1;
	}
	lua_close(L);
	return 0;
}
