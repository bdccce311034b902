/*-------------------------------------------------------------------------
 *
 * difftest.c
 *	  The Lua rewriter against LuaJIT itself, on generated sources.
 *
 * Built and run by test/t/055_lua_lexer_diff.pl (or by hand):
 *	  difftest SEED CASES [-v]
 *	  difftest -f FILE...		(real sources: compile both ways, verify)
 * Each case is a small program made of the lexical constructs where a
 * lexer can go wrong (every line end, comments, long brackets of every
 * level, every string escape, numbers, a BOM and a #! line, labels), often
 * with a loop that only a wrong lexer would miss, then randomly mutated a
 * few bytes.  For each, with the JIT off and a count hook as a backstop:
 *	(a) the instrumented chunk compiles exactly when the original does; our
 *		lexer errs whenever LuaJIT reports a lexical error (but "malformed
 *		number", which lua_lexer.c leaves to the compiler), and only on
 *		sources LuaJIT refuses;
 *	(b) the bytecode verifier accepts every instrumented chunk that
 *		compiles;
 *	(c) both run, each with fresh globals: a program that ends gives the
 *		same result both ways; one that loops forever (the count hook stops
 *		the original) or recurses without end (a stack overflow) is stopped
 *		by the interrupt check when instrumented, never by the hook;
 *	(d) the verifier alone: with one inserted check blanked out, a chunk the
 *		verifier still accepts never loops unchecked either.
 * Prints one summary line and the first failures; exits 1 on any failure.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TT_LUA_API_IMPL
#include "lua_api.h"

#include "lua_common.h"
#include "lua_lexer.h"

/* the API pointers lua_instrument.c calls through: the linked library */
#define TT_LUA_DEFINE(fn) __typeof__(fn) *tt_lj_##fn = fn;
TT_LUA_FUNCTIONS(TT_LUA_DEFINE)
#undef TT_LUA_DEFINE

#define CHECKER "__talaria_check_0123456789abcdef"
#define CHECK_LIMIT 1000
#define HOOK_LIMIT 300000L

/* ---------------------------------------------------------------------
 * Generation
 * ---------------------------------------------------------------------
 */
static uint64_t rng;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t) ((rng * 2685821657736338717ULL) >> 33) % n;
}

#define PICK(arr) (arr[rnd(sizeof(arr) / sizeof(arr[0]))])

typedef struct Buf
{
	char		b[16384];
	size_t		n;
} Buf;

static void
put(Buf *b, const char *s)
{
	size_t		n = strlen(s);

	if (b->n + n < sizeof(b->b))
	{
		memcpy(b->b + b->n, s, n);
		b->n += n;
	}
}

static const char *const eols[] = {"\n", "\r", "\r\n", "\n\r"};

/* whitespace and comments between two tokens */
static void
gap(Buf *b)
{
	static const char *const gaps[] = {
		" ", " ", " ", "\t", "\f", "\v", "--c", "--[[x]]", "--[==[ ]] ]=] \r ]==]",
		"--[=x", "--[", "--[[\r\n]]", "--]]", "-- do", "--[===[", "--[==[\n]=]]==]"
	};
	int			k = rnd(3);

	put(b, " ");
	while (k-- > 0)
	{
		const char *g = PICK(gaps);

		put(b, g);
		if (g[0] == '-' || rnd(3) == 0)
			put(b, PICK(eols));
	}
}

/* a string literal: every escape, line ends after \ and \z, code-like text */
static void
string_lit(Buf *b)
{
	static const char *const parts[] = {
		"a", "do", " while true do end ", "--", "]]", "[[", "\\n", "\\t", "\\\\",
		"\\\"", "\\'", "\\x41", "\\x7e", "\\065", "\\0", "\\255", "\\1234",
		"\\u{48}", "\\u{7FF}", "\\u{10FFFF}", "\\u{FFFF}", "\\z", "\\z  ",
		"\\a\\b\\f\\v\\r", "'", "\"", "\\x4", "\\q", "\\u{D800}", "\\u{110000}"
	};
	char		q = rnd(2) ? '"' : '\'';
	char		qs[2] = {q, 0};
	int			k = rnd(5);

	put(b, qs);
	while (k-- > 0)
	{
		switch (rnd(4))
		{
			case 0:
				put(b, "\\");
				put(b, PICK(eols));
				break;
			case 1:
				put(b, "\\z");
				put(b, PICK(eols));
				put(b, rnd(2) ? " \t" : PICK(eols));
				break;
			default:
				{
					const char *p = PICK(parts);

					/* the other quote is plain text; this one would end it */
					if (p[0] == q && p[1] == '\0')
						p = "\\'";
					put(b, p);
				}
		}
	}
	put(b, qs);
}

static void
long_lit(Buf *b)
{
	static const char *const parts[] = {
		"x", "]]", "]=]", "]==]", "[[", "--", "while true do end", "\\", "\"", "'"
	};
	static const char *const levels[] = {"", "=", "==", "===="};
	const char *lv = PICK(levels);
	int			k = rnd(4);

	put(b, "[");
	put(b, lv);
	put(b, "[");
	if (rnd(2))
		put(b, PICK(eols));
	while (k-- > 0)
	{
		const char *p = PICK(parts);

		/* the closing bracket of this level would end it early */
		if (p[0] == ']' && strlen(p) == strlen(lv) + 2)
			p = "x";
		put(b, p);
		if (rnd(3) == 0)
			put(b, PICK(eols));
	}
	put(b, "]");
	put(b, lv);
	put(b, "]");
}

static void
expr(Buf *b)
{
	static const char *const nums[] = {
		"1", "0x1p-4", "1e+5", ".5", "3ULL", "12LL", "2i", "0x.8p1", "1E2",
		"0X1P+4", "0xA", "7e-1", "0x10", "1.5"
	};

	switch (rnd(4))
	{
		case 0:
			put(b, PICK(nums));
			break;
		case 1:
			long_lit(b);
			break;
		default:
			string_lit(b);
	}
}

/*
 * Statements.  '@' is a gap, '$' an expression, '%' a fresh label number.
 * The hidden loops loop forever: the original is stopped by the hook.
 */
static const char *const stmts[] = {
	"t[#t+1]@=@$",
	"t[#t+1]@=@$@..@$",
	"for@i=1,2@do@t[#t+1]=i@end",
	"local@n=0@while@n<2@do@n=n+1@end@t[#t+1]=n",
	"repeat@t[#t+1]='r'@until@true",
	"do@t[#t+1]=@$@end",
	"local@function@f(a)@return@a@end@t[#t+1]=f(@$@)",
	"local@g=0@::l%::@g=g+1@if@g<3@then@goto@l%@end@t[#t+1]=g",
	"goto@l%@t[#t+1]=0@::l%::",
	"local@goto=@$@t[#t+1]=goto",
	"for@k,v@in@pairs({@$@})@do@t[#t+1]=v@end",
	/* loops hidden by the old rewriter's lexical mistakes */
	"--c\rwhile true do end\n",
	"--c\r\nwhile true do end\n",
	"x=\"\\z\r\n\" while true do end",
	"x=\"a\\\r\nb\" while true do end",
	"x='\\z \n\r ' while true do end",
	"::l%:: goto l%",
	"local function r() return r() end r()",
	"local x = [==[ ]] ]==] while true do end",
	"x = 1 --[==[ ]] \r ]==] while true do end",
};

static size_t
generate(Buf *b)
{
	static const char *const heads[] = {
		"#!/bin/x\n", "#!x\r", "#!x\r\n", "#!x\rwhile true do end\n", "\xef\xbb\xbf",
		"\xef\xbb\xbf#!x\r", "#", "#!x\n\r"
	};
	int			label = 0;
	int			k = 1 + rnd(4);

	b->n = 0;
	if (rnd(6) == 0)
		put(b, PICK(heads));
	put(b, "local t = {}");
	while (k-- > 0)
	{
		const char *s = PICK(stmts);

		label++;
		gap(b);
		for (; *s; s++)
		{
			char		one[2] = {*s, 0};
			char		num[16];

			if (*s == '@')
				gap(b);
			else if (*s == '$')
				expr(b);
			else if (*s == '%')
			{
				snprintf(num, sizeof(num), "%d", label);
				put(b, num);
			}
			else
				put(b, one);
		}
	}
	gap(b);
	put(b, "return t");
	return b->n;
}

/* a few random bytes changed, inserted or removed */
static size_t
mutate(Buf *b)
{
	static const char bytes[] = "\r\n\\\"'[]=-zxu{}#:.09ep ";
	int			k = 1 + rnd(3);

	while (k-- > 0 && b->n > 1)
	{
		size_t		at = rnd((uint32_t) b->n);
		char		c = bytes[rnd(sizeof(bytes) - 1)];

		switch (rnd(3))
		{
			case 0:
				b->b[at] = c;
				break;
			case 1:
				if (b->n + 1 < sizeof(b->b))
				{
					memmove(b->b + at + 1, b->b + at, b->n - at);
					b->b[at] = c;
					b->n++;
				}
				break;
			default:
				memmove(b->b + at, b->b + at + 1, b->n - at - 1);
				b->n--;
		}
	}
	return b->n;
}

/* ---------------------------------------------------------------------
 * Running
 * ---------------------------------------------------------------------
 */
static long checks;
static long hook_count;

static int
checker(lua_State *L)
{
	if (++checks >= CHECK_LIMIT)
		return luaL_error(L, "CHECK_LIMIT");
	return 0;
}

static void
hook(lua_State *L, lua_Debug *ar)
{
	hook_count += 1000;
	if (hook_count >= HOOK_LIMIT)
		luaL_error(L, "HOOK_LIMIT");
}

/* gives the function at the top fresh globals that fall back on the real */
static void
fresh_env(lua_State *L)
{
	lua_newtable(L);
	lua_newtable(L);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	lua_setfenv(L, -2);
}

/* runs the function at the top; leaves a result string in out */
static void
run(lua_State *L, char *out, size_t outlen)
{
	checks = 0;
	hook_count = 0;
	lua_sethook(L, hook, LUA_MASKCOUNT, 1000);
	if (lua_pcall(L, 0, 1, 0) != 0)
	{
		const char *e = lua_tostring(L, -1);

		if (e && strstr(e, "CHECK_LIMIT"))
			snprintf(out, outlen, "CHECK_LIMIT");
		else if (e && strstr(e, "HOOK_LIMIT"))
			snprintf(out, outlen, "HOOK_LIMIT");
		else
			snprintf(out, outlen, "error: %s", e ? e : "?");
	}
	else if (lua_istable(L, -1))
	{
		int			i;
		size_t		n = 0;

		out[0] = '\0';
		for (i = 1;; i++)
		{
			const char *s;
			size_t		len;

			lua_getglobal(L, "tostring");
			lua_rawgeti(L, -2, i);
			if (lua_isnil(L, -1))
			{
				lua_pop(L, 2);
				break;
			}
			lua_call(L, 1, 1);
			s = lua_tolstring(L, -1, &len);
			if (n + len + 2 < outlen)
			{
				memcpy(out + n, s, len);
				n += len;
				out[n++] = '\1';
				out[n] = '\0';
			}
			lua_pop(L, 1);
		}
	}
	else
		snprintf(out, outlen, "not a table");
	lua_sethook(L, NULL, 0, 0);
	lua_settop(L, 0);
}

static bool
lexical_error(const char *msg)
{
	static const char *const kinds[] = {
		"unfinished string", "unfinished long string", "unfinished long comment",
		"invalid escape sequence", "invalid long string delimiter",
		NULL
	};
	const char *const *k;

	for (k = kinds; *k; k++)
		if (strstr(msg, *k))
			return true;
	return false;
}

static bool
our_lexer_errs(const char *src, size_t len)
{
	TTLexer		lx;
	TTToken		t;
	TTLexKind	k;

	tt_lex_init(&lx, src, len);
	while ((k = tt_lex_next(&lx, &t)) != TT_TOK_EOF)
		if (k == TT_TOK_ERROR)
			return true;
	return false;
}

static void
show(const char *what, const char *src, size_t len)
{
	size_t		i;

	printf("FAIL %s: \"", what);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) src[i];

		if (c == '\\' || c == '"')
			printf("\\%c", c);
		else if (c >= 32 && c < 127)
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	printf("\"\n");
}

/*
 * (d) the verifier on its own: the instrumented chunk with one inserted
 * check (chosen at random) blanked out.  It may accept the mutant when that
 * check guarded no loop and no function entry (a plain do block, a label
 * no goto returns to); then the mutant must still never run a loop
 * unchecked.  Returns a failure or NULL.
 */
static const char *
verifier_mutant(lua_State *L, const char *src, size_t len, long *refused, long *ran)
{
	static char r[8192];
	const char *call = " " CHECKER "(); ";
	char		errbuf[256];
	size_t		codelen;
	char	   *code = tt_lua_instrument(src, len, CHECKER, &codelen, errbuf, sizeof(errbuf));
	char	   *p;
	int			n = 0;
	int			k;
	const char *fail = NULL;

	for (p = code; (p = strstr(p, call)) != NULL; p++)
		n++;
	k = rnd(n);
	for (p = code; (p = strstr(p, call)) != NULL; p++)
		if (k-- == 0)
			break;
	memset(p, ' ', strlen(call));
	if (luaL_loadbufferx(L, code, codelen, "=x", "t") != 0)
		abort();				/* blanks cannot break a compiling chunk */
	free(code);
	lua_getfield(L, LUA_REGISTRYINDEX, "verify");
	lua_pushvalue(L, -2);
	lua_pushstring(L, CHECKER);
	lua_call(L, 2, 1);
	if (!lua_isnil(L, -1))
		(*refused)++;
	else
	{
		lua_pop(L, 1);
		fresh_env(L);
		lua_pushcfunction(L, checker);
		lua_call(L, 1, 1);
		run(L, r, sizeof(r));
		(*ran)++;
		if (strcmp(r, "HOOK_LIMIT") == 0)
			fail = "(d) the verifier accepted a chunk that loops unchecked";
	}
	lua_settop(L, 0);
	return fail;
}

/*
 * difftest -f FILE...: instrument, compile and verify real sources (each
 * must compile both ways and pass the verifier).
 */
static int
check_files(lua_State *L, int argc, char **argv)
{
	int			failures = 0;
	int			i;

	for (i = 2; i < argc; i++)
	{
		static char src[1 << 22];
		FILE	   *f = fopen(argv[i], "rb");
		size_t		len;
		char		errbuf[256];
		char	   *code;
		size_t		codelen;
		const char *verdict = "ok";

		if (f == NULL)
		{
			printf("FAIL %s: cannot open\n", argv[i]);
			failures++;
			continue;
		}
		len = fread(src, 1, sizeof(src) - 1, f);
		fclose(f);
		code = tt_lua_instrument(src, len, CHECKER, &codelen, errbuf, sizeof(errbuf));
		if (luaL_loadbufferx(L, src, len, "=x", "t") != 0)
			verdict = "the original does not compile";
		else if (code == NULL)
			verdict = errbuf;
		else if (luaL_loadbufferx(L, code, codelen, "=x", "t") != 0)
			verdict = lua_tostring(L, -1);
		else
		{
			lua_getfield(L, LUA_REGISTRYINDEX, "verify");
			lua_pushvalue(L, -2);
			lua_pushstring(L, CHECKER);
			lua_call(L, 2, 1);
			if (!lua_isnil(L, -1))
				verdict = lua_tostring(L, -1);
		}
		printf("%s %s: %s\n", strcmp(verdict, "ok") == 0 ? "ok" : "FAIL", argv[i], verdict);
		failures += strcmp(verdict, "ok") != 0;
		free(code);
		lua_settop(L, 0);
	}
	return failures > 0;
}

int
main(int argc, char **argv)
{
	uint64_t	seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
	long		cases = argc > 2 ? atol(argv[2]) : 1000;
	bool		verbose = argc > 3;
	lua_State  *L = luaL_newstate();
	Buf			b;
	long		i;
	long		failures = 0,
				compiled = 0,
				ran_same = 0,
				stopped = 0,
				lex_errors = 0,
				mutants_refused = 0,
				mutants_run = 0;

	luaL_openlibs(L);
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	tt_lua_push_verifier(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "verify");
	if (argc > 1 && strcmp(argv[1], "-f") == 0)
		return check_files(L, argc, argv);
	rng = seed * 0x9E3779B97F4A7C15ULL + 1;

	for (i = 0; i < cases; i++)
	{
		size_t		len = generate(&b);
		char		errbuf[256];
		char	   *code;
		size_t		codelen;
		int			orig_rc,
					inst_rc;
		bool		lex_js;
		bool		lex_ours;
		static char r_orig[8192],
					r_inst[8192];
		const char *fail = NULL;

		if (rnd(3) == 0)
			len = mutate(&b);
		b.b[len] = '\0';

		orig_rc = luaL_loadbufferx(L, b.b, len, "=x", "t");
		lex_js = orig_rc != 0 && lexical_error(lua_tostring(L, -1));
		lex_ours = our_lexer_errs(b.b, len);
		lex_errors += lex_ours;
		code = tt_lua_instrument(b.b, len, CHECKER, &codelen, errbuf, sizeof(errbuf));
		if (code == NULL)
		{
			if (orig_rc == 0 && strstr(errbuf, "binary") == NULL)
				fail = "the rewriter refused a chunk LuaJIT compiles";
			lua_settop(L, 0);
			goto report;
		}
		inst_rc = luaL_loadbufferx(L, code, codelen, "=x", "t");
		free(code);
		if (lex_js && !lex_ours)
			fail = "LuaJIT's lexer errs, ours does not";
		else if (lex_ours && orig_rc == 0)
			fail = "our lexer errs, LuaJIT compiles";
		else if ((orig_rc == 0) != (inst_rc == 0))
			fail = orig_rc == 0 ? "(a) the original compiles, the instrumented does not" :
				"(a) the instrumented compiles, the original does not";
		if (fail || orig_rc != 0)
		{
			lua_settop(L, 0);
			goto report;
		}
		compiled++;
		/* (b) the verifier */
		lua_getfield(L, LUA_REGISTRYINDEX, "verify");
		lua_pushvalue(L, -2);
		lua_pushstring(L, CHECKER);
		lua_call(L, 2, 1);
		if (!lua_isnil(L, -1))
		{
			if (verbose)
				printf("verifier: %s\n", lua_tostring(L, -1));
			fail = "(b) the verifier refuses the instrumented chunk";
			lua_settop(L, 0);
			goto report;
		}
		lua_pop(L, 1);
		/* (c) run both: [orig, wrapper] */
		lua_pushvalue(L, -2);
		fresh_env(L);
		lua_pop(L, 1);
		fresh_env(L);
		lua_pushcfunction(L, checker);
		lua_call(L, 1, 1);
		lua_insert(L, 1);		/* [inst, orig] */
		run(L, r_orig, sizeof(r_orig));	/* runs orig, clears the stack */
		if (luaL_loadbufferx(L, b.b, len, "=x", "t") != 0)
			abort();
		/* re-instrument: the stack was cleared */
		code = tt_lua_instrument(b.b, len, CHECKER, &codelen, errbuf, sizeof(errbuf));
		lua_settop(L, 0);
		if (code == NULL || luaL_loadbufferx(L, code, codelen, "=x", "t") != 0)
			abort();
		free(code);
		fresh_env(L);
		lua_pushcfunction(L, checker);
		lua_call(L, 1, 1);
		run(L, r_inst, sizeof(r_inst));
		if (strcmp(r_inst, "HOOK_LIMIT") == 0)
			fail = "(c) a loop ran without the interrupt check";
		else if (strcmp(r_orig, "HOOK_LIMIT") == 0 ||
				 (strstr(r_orig, "stack overflow") && strcmp(r_inst, "CHECK_LIMIT") == 0))
		{
			if (strcmp(r_inst, "CHECK_LIMIT") != 0)
				fail = "(c) a loop that never ends was not stopped by the check";
			else
				stopped++;
		}
		else if (strcmp(r_orig, r_inst) != 0)
		{
			if (verbose)
				printf("orig: %s\ninst: %s\n", r_orig, r_inst);
			fail = "(c) the instrumented chunk computes something else";
		}
		else
			ran_same++;
		if (fail == NULL)
			fail = verifier_mutant(L, b.b, len, &mutants_refused, &mutants_run);

report:
		if (fail)
		{
			if (++failures <= 10)
				show(fail, b.b, len);
		}
	}
	printf("cases %ld, compiled %ld, same result %ld, endless loops stopped %ld, "
		   "lexical errors %ld, mutants refused %ld, mutants run %ld, failures %ld\n",
		   cases, compiled, ran_same, stopped, lex_errors, mutants_refused,
		   mutants_run, failures);
	lua_close(L);
	return failures > 0;
}
