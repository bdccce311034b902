/*-------------------------------------------------------------------------
 *
 * lua_instrument.c
 *	  Rewrite Lua source so that every loop and function checks for
 *	  interrupts, even inside JIT-compiled traces, and prove on the
 *	  compiled bytecode that it does.
 *
 * LuaJIT never runs debug hooks in compiled code, so lua_sethook cannot
 * stop `while true do end` once it is traced.  Instead we insert a call to
 * a local checker (an FFI call to a C function, which LuaJIT compiles into
 * the trace and does not hoist) at:
 *	- the start of the chunk and of every function (recursion, tail calls),
 *	- the start of every `do` block (the bodies of while and for loops),
 *	- the start of every `repeat` body,
 *	- after every label that a statement follows (loops made of `goto`).
 * The rewriter reads the source with lua_lexer.c, which cuts tokens exactly
 * as LuaJIT does.  Insertions never add a newline, so Lua's error messages
 * keep the user's line numbers.  Identifiers starting with "__talaria" are
 * reserved, and the checker's own name carries a random suffix drawn after
 * the source was written, so user code can neither name, shadow nor
 * replace it.
 *
 * The rewriter is not trusted: tt_lua_push_verifier builds the proof
 * (below) that the compiled chunk checks in every loop and function.
 *
 * This runs on the Lua side too (the sandbox's load()), so it uses malloc
 * and reports errors through errbuf instead of ereport.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "lua_common.h"
#include "lua_lexer.h"

#define RESERVED_PREFIX "__talaria"
#define EPILOGUE "\nend"

typedef struct Out
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		failed;
} Out;

static void
out_append(Out *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap)
	{
		size_t		cap = Max(o->cap * 2, o->len + n + 1);
		char	   *nb = realloc(o->buf, cap);

		if (nb == NULL)
		{
			o->failed = true;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
out_str(Out *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/* copies src from *copied up to at, then a check call */
static void
out_check(Out *o, const char **copied, const char *at, const char *checker)
{
	out_append(o, *copied, (size_t) (at - *copied));
	out_str(o, " ");
	out_str(o, checker);
	out_str(o, "(); ");
	*copied = at;
}

/* LuaJIT's endofblock(): a label before these is outside every scope */
static inline bool
ends_block(const TTToken *t)
{
	return t->kind == TT_TOK_EOF || tt_tok_is(t, "end") ||
		tt_tok_is(t, "else") || tt_tok_is(t, "elseif");
}

/*
 * Returns a malloc'd, NUL-terminated rewritten chunk, or NULL with a message
 * in errbuf.  checker is the name of the check function's local (it must
 * start with RESERVED_PREFIX).  The chunk, once compiled, takes the checker
 * as its argument and returns the user's chunk.  Syntax errors are left for
 * the Lua compiler to report (with their line): at the first token LuaJIT
 * would refuse, the rest is copied as it is.
 */
char *
tt_lua_instrument(const char *src, size_t len, const char *checker,
				  size_t *outlen, char *errbuf, size_t errlen)
{
	TTLexer		lx;
	TTToken		tok;
	const char *copied;			/* src up to here is in the output */
	const char *h;
	Out			o = {NULL, 0, 0, false};
	bool		want_paren = false; /* after `function`, before its '(' */
	bool		in_params = false;	/* inside a function's parameter list */
	int			label = 0;		/* 1 after "::", 2 after "::name" */
	const char *after_label = NULL; /* just after a label's closing "::" */

	tt_lex_init(&lx, src, len);
	if (lx.binary)
	{
		snprintf(errbuf, errlen, "binary (bytecode) chunks are not allowed");
		return NULL;
	}
	out_str(&o, "local ");
	out_str(&o, checker);
	out_str(&o, " = ...; return function(...) ");
	out_str(&o, checker);
	out_str(&o, "(); ");
	/* a BOM and a #! line are LuaJIT's only at the very start: keep the
	 * line end (the line count) and drop the rest */
	for (h = src; h < lx.body; h++)
		if (*h == '\n' || *h == '\r')
			out_append(&o, h, 1);
	copied = lx.body;

	while (tt_lex_next(&lx, &tok) != TT_TOK_ERROR)
	{
		if (after_label != NULL && !tt_tok_is(&tok, "::") && !ends_block(&tok))
			out_check(&o, &copied, after_label, checker);
		after_label = NULL;
		if (tok.kind == TT_TOK_EOF)
			break;

		if (tt_tok_is(&tok, "::"))
		{
			if (label == 2)
				after_label = tok.p + tok.n;
			label = label == 2 ? 0 : 1;
		}
		else
			label = (label == 1 && tok.kind == TT_TOK_NAME) ? 2 : 0;

		if (tok.kind == TT_TOK_NAME)
		{
			if (tok.n >= strlen(RESERVED_PREFIX) &&
				memcmp(tok.p, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0)
			{
				snprintf(errbuf, errlen,
						 "line %d: identifiers starting with \"%s\" are reserved",
						 tok.line, RESERVED_PREFIX);
				free(o.buf);
				return NULL;
			}
			if (tt_tok_is(&tok, "do") || tt_tok_is(&tok, "repeat"))
				out_check(&o, &copied, tok.p + tok.n, checker);
			else if (tt_tok_is(&tok, "function"))
			{
				want_paren = true;
				continue;
			}
		}
		else if (want_paren && tt_tok_is(&tok, "("))
		{
			want_paren = false;
			in_params = true;
			continue;
		}
		else if (in_params && tt_tok_is(&tok, ")"))
		{
			in_params = false;
			out_check(&o, &copied, tok.p + tok.n, checker);
		}
		/* a function name is names, '.' and ':' before its '(' */
		if (want_paren && tok.kind != TT_TOK_NAME &&
			!tt_tok_is(&tok, ".") && !tt_tok_is(&tok, ":"))
			want_paren = false;
	}
	out_append(&o, copied, (size_t) (src + len - copied));
	out_str(&o, EPILOGUE);
	if (o.failed)
	{
		free(o.buf);
		snprintf(errbuf, errlen, "not enough memory");
		return NULL;
	}
	*outlen = o.len;
	return o.buf;
}

/* ---------------------------------------------------------------------
 * Can the row outlive its call?
 *
 * A lazy row copies its values into Lua memory so that it stays valid if
 * the script keeps it past the call (lua_convert.c).  Most transforms only
 * read and set its fields, and the copy (and the garbage it makes) is then
 * wasted.  This scan answers "certainly not" for the simple, common shape
 * of script, and "maybe" for anything else:
 *	- exactly one `function` in the whole source, `function main(row ...)`
 *	  (no closure can capture the row; main is that function);
 *	- no name through which code could reach functions dynamically
 *	  (`_G`, `load`, `loadstring`, `getfenv`, `setfenv`);
 *	- every other use of the parameter's name indexes it (`row.x`,
 *	  `row[k]`, as a target or a value) or is `return row` at the end of a
 *	  block: so the table itself is never stored, passed, aliased or
 *	  rebound, and it reaches nobody but the caller.
 * Tokens come from lua_lexer.c, as for the instrumenter: no comment,
 * string or line-end trick can hide a use of the row from this scan.
 * ---------------------------------------------------------------------
 */
/* Tokens of src up to its end (malloc'd); NULL if LuaJIT would refuse it. */
static TTToken *
scan_tokens(const char *src, size_t len, int *ntok)
{
	TTLexer		lx;
	TTToken	   *toks = NULL;
	int			n = 0;
	int			cap = 0;

	tt_lex_init(&lx, src, len);
	for (;;)
	{
		TTToken		t;

		switch (tt_lex_next(&lx, &t))
		{
			case TT_TOK_ERROR:
				free(toks);
				return NULL;
			case TT_TOK_EOF:
				*ntok = n;
				return toks != NULL ? toks : malloc(sizeof(TTToken));
			default:
				break;
		}
		if (n == cap)
		{
			TTToken    *nt;

			cap = Max(64, cap * 2);
			nt = realloc(toks, cap * sizeof(TTToken));
			if (nt == NULL)
			{
				free(toks);
				return NULL;
			}
			toks = nt;
		}
		toks[n++] = t;
	}
}

bool
tt_lua_row_stays_local(const char *src, size_t len)
{
	static const char *const dynamic[] = {
		"_G", "load", "loadstring", "getfenv", "setfenv", NULL
	};
	TTToken    *toks;
	int			ntok;
	int			nfunc = 0;
	int			decl = -1;
	bool		local = true;
	int			i;

	toks = scan_tokens(src, len, &ntok);
	if (toks == NULL)
		return false;
	for (i = 0; i < ntok; i++)
	{
		const TTToken *t = &toks[i];
		const TTToken *prev = i > 0 ? &toks[i - 1] : NULL;
		const char *const *d;

		if (t->kind != TT_TOK_NAME)
			continue;
		if (tt_tok_is(t, "function"))
		{
			nfunc++;
			if (i + 4 < ntok && tt_tok_is(&toks[i + 1], "main") &&
				tt_tok_is(&toks[i + 2], "(") && toks[i + 3].kind == TT_TOK_NAME &&
				(tt_tok_is(&toks[i + 4], ")") || tt_tok_is(&toks[i + 4], ",")))
				decl = i + 3;
		}
		if (tt_tok_is(prev, ".") || tt_tok_is(prev, ":"))
			continue;			/* a field or method name */
		for (d = dynamic; *d; d++)
			if (tt_tok_is(t, *d))
				local = false;
	}
	if (nfunc != 1 || decl < 0)
		local = false;
	for (i = 0; local && i < ntok; i++)
	{
		const TTToken *t = &toks[i];
		const TTToken *prev = i > 0 ? &toks[i - 1] : NULL;
		const TTToken *next = i + 1 < ntok ? &toks[i + 1] : NULL;

		if (i == decl || t->kind != TT_TOK_NAME || t->n != toks[decl].n ||
			memcmp(t->p, toks[decl].p, t->n) != 0)
			continue;
		if (tt_tok_is(prev, ".") || tt_tok_is(prev, ":"))
			continue;			/* another table's field of that name */
		if (tt_tok_is(next, ".") && i + 2 < ntok && toks[i + 2].kind == TT_TOK_NAME)
			continue;			/* row.x */
		if (tt_tok_is(next, "["))
			continue;			/* row[k] */
		if (tt_tok_is(prev, "return") &&
			(next == NULL || tt_tok_is(next, "end") ||
			 tt_tok_is(next, "else") || tt_tok_is(next, "elseif") ||
			 tt_tok_is(next, "until") || tt_tok_is(next, ";")))
			continue;			/* return row */
		local = false;
	}
	free(toks);
	return local;
}

/* ---------------------------------------------------------------------
 * The proof: every loop and every function of the compiled chunk checks.
 *
 * The rewriter above decides from tokens; this decides from what LuaJIT
 * actually compiled, so a disagreement between the two (or a bug in the
 * rewriter) refuses the chunk instead of running it unchecked.  It walks
 * the bytecode of the chunk and of every prototype nested in it (jit.util:
 * funcbc, funck; the sandbox never sees that module) and requires:
 *
 *	(1) a checkpoint is an instruction pair at pc-1, pc:
 *		  UGET  r, u    -- u an upvalue named exactly like the checker
 *		  CALL  r, 1, 1 -- call it, no arguments, no results
 *		whose CALL has no other predecessor than that UGET (no jump lands on
 *		it, no compare skips onto it);
 *	(2) every prototype except the outer wrapper starts with a checkpoint
 *		(pc 1, 2): every call of a Lua function checks, so recursion and
 *		tail calls cannot run unchecked;
 *	(3) in every prototype, the control-flow graph with its checkpoint
 *		CALLs removed has no cycle: every loop, whatever made it (while,
 *		repeat, for, goto), passes a checkpoint on each turn.  Edges are a
 *		superset of what the interpreter does: every jump-mode instruction
 *		may go to its target (but LOOP, whose operand only tells the JIT
 *		where the loop ends), everything but JMP/UCLO/ISNEXT/returns/tail
 *		calls may fall through, a compare or test may skip the next
 *		instruction.  A trace the JIT compiles does what these bytecodes
 *		do, checker calls included;
 *	(4) no instruction stores into an upvalue named like the checker.
 * Why the UGET really reads the checker: an upvalue resolves to the nearest
 * enclosing variable of its name; the name ends in 64 random bits drawn
 * after the source was written (and the rewriter refuses the prefix), so
 * the only such variable is the wrapper's first local, which the wrapper
 * sets from its argument, the checker; by (4) nothing assigns it later.
 * So every unbounded run of Lua code, a cycle inside one prototype or an
 * unbounded chain of calls, runs the checker again and again.  What runs
 * in C (pattern matching, json) needs its own bound.
 *
 * Opcodes are LuaJIT 2.1's (lj_bc.h, in order); each instruction's mode
 * from funcbc confirms the table: a library whose opcodes differ is
 * refused rather than misread.
 * ---------------------------------------------------------------------
 */
static const char *const bc_names[] = {
	"ISLT", "ISGE", "ISLE", "ISGT", "ISEQV", "ISNEV", "ISEQS", "ISNES",
	"ISEQN", "ISNEN", "ISEQP", "ISNEP", "ISTC", "ISFC", "IST", "ISF",
	"ISTYPE", "ISNUM", "MOV", "NOT", "UNM", "LEN", "ADDVN", "SUBVN",
	"MULVN", "DIVVN", "MODVN", "ADDNV", "SUBNV", "MULNV", "DIVNV", "MODNV",
	"ADDVV", "SUBVV", "MULVV", "DIVVV", "MODVV", "POW", "CAT", "KSTR",
	"KCDATA", "KSHORT", "KNUM", "KPRI", "KNIL", "UGET", "USETV", "USETS",
	"USETN", "USETP", "UCLO", "FNEW", "TNEW", "TDUP", "GGET", "GSET",
	"TGETV", "TGETS", "TGETB", "TGETR", "TSETV", "TSETS", "TSETB", "TSETM",
	"TSETR", "CALLM", "CALL", "CALLMT", "CALLT", "ITERC", "ITERN", "VARG",
	"ISNEXT", "RETM", "RET", "RET0", "RET1", "FORI", "JFORI", "FORL",
	"IFORL", "JFORL", "ITERL", "IITERL", "JITERL", "LOOP", "ILOOP", "JLOOP",
	"JMP", "FUNCF", "IFUNCF", "JFUNCF", "FUNCV", "IFUNCV", "JFUNCV", "FUNCC",
	"FUNCCW", NULL
};

/*
 * Runs once per state, in the privileged setup: the arguments are
 * jit.util's funcinfo, funcbc, funck, funcuvname, the opcode table and the
 * real type and select; the result is verify(chunk, checker_name), which
 * returns nil or the reason.  It reads no global at run time.
 */
static const char verifier_chunk[] =
"local funcinfo, funcbc, funck, funcuvname, OP, type, select = ...\n"
"local function set(...)\n"
"  local t = {}\n"
"  for i = 1, select('#', ...) do t[OP[select(i, ...)]] = true end\n"
"  return t\n"
"end\n"
"local JUMP = set('JMP', 'FORI', 'JFORI', 'FORL', 'IFORL', 'JFORL', 'ITERL',\n"
"  'IITERL', 'JITERL', 'LOOP', 'ILOOP', 'JLOOP', 'ISNEXT', 'UCLO')\n"
"local NOFALL = set('JMP', 'UCLO', 'ISNEXT', 'RET', 'RET0', 'RET1', 'RETM',\n"
"  'CALLT', 'CALLMT')\n"
"local SKIP = set('ISLT', 'ISGE', 'ISLE', 'ISGT', 'ISEQV', 'ISNEV', 'ISEQS',\n"
"  'ISNES', 'ISEQN', 'ISNEN', 'ISEQP', 'ISNEP', 'ISTC', 'ISFC', 'IST', 'ISF')\n"
"local USET = set('USETV', 'USETS', 'USETN', 'USETP')\n"
"-- LOOP's operand tells the JIT where its loop ends; the VM never jumps\n"
"local NOJUMP = set('LOOP', 'ILOOP', 'JLOOP')\n"
"local UGET, CALL = OP.UGET, OP.CALL\n"
"\n"
"-- returns nil, or the line and the reason the prototype fails\n"
"local function proto_ok(p, name, root)\n"
"  local op, a, b, c, d, line = {}, {}, {}, {}, {}, {}\n"
"  local n = 0\n"
"  while true do\n"
"    local ins, m, l = funcbc(p, n + 1, 1)\n"
"    if not ins then break end\n"
"    n = n + 1\n"
"    if ins < 0 then ins = ins + 4294967296 end -- funcbc gives an int32\n"
"    local o = ins % 256\n"
"    local dd = (ins - ins % 65536) / 65536\n"
"    op[n], a[n], d[n], line[n] = o, (ins - o) / 256 % 256, dd, l\n"
"    c[n], b[n] = dd % 256, (dd - dd % 256) / 256\n"
"    if ((m - m % 128) / 128 % 16 == 13) ~= (JUMP[o] == true) then\n"
"      return l, 'unexpected bytecode (not the LuaJIT 2.1 this was built for)'\n"
"    end\n"
"  end\n"
"  -- checkpoint candidates: UGET of the checker, then CALL r, 1, 1\n"
"  local cp = {}\n"
"  for pc = 2, n do\n"
"    if op[pc] == CALL and op[pc - 1] == UGET and a[pc] == a[pc - 1]\n"
"       and b[pc] == 1 and c[pc] == 1 and funcuvname(p, d[pc - 1]) == name then\n"
"      cp[pc] = true\n"
"    end\n"
"  end\n"
"  -- successors of pc: s[3*pc], s[3*pc+1], s[3*pc+2]; a candidate that\n"
"  -- something other than its UGET reaches is no checkpoint\n"
"  local s, bad = {}, {}\n"
"  for pc = 1, n do\n"
"    local o, k = op[pc], 3 * pc\n"
"    local t1 = JUMP[o] and not NOJUMP[o] and pc + 1 + d[pc] - 32768\n"
"    local t2 = not NOFALL[o] and pc + 1\n"
"    local t3 = SKIP[o] and pc + 2\n"
"    if t1 and (t1 < 1 or t1 > n) then\n"
"      return line[pc], 'a jump leaves the function'\n"
"    end\n"
"    if t2 and t2 > n then t2 = false end\n"
"    if t3 and t3 > n then t3 = false end\n"
"    s[k], s[k + 1], s[k + 2] = t1, t2, t3\n"
"    if t1 and t1 ~= pc + 1 then bad[t1] = true end\n"
"    if t3 then bad[t3] = true end\n"
"    if USET[o] and funcuvname(p, a[pc]) == name then\n"
"      return line[pc], 'the interrupt check is assigned'\n"
"    end\n"
"  end\n"
"  for pc = 2, n do\n"
"    if bad[pc] then cp[pc] = nil end\n"
"  end\n"
"  if not root and not cp[2] then\n"
"    return line[1] or funcinfo(p).linedefined,\n"
"      'a function does not start with the interrupt check'\n"
"  end\n"
"  -- depth-first search for a cycle that avoids every checkpoint\n"
"  local color, stack, edgeix = {}, {}, {}\n"
"  for start = 1, n do\n"
"    if not color[start] and not cp[start] then\n"
"      local top = 1\n"
"      stack[1], edgeix[1], color[start] = start, 0, 1\n"
"      while top > 0 do\n"
"        local u, k = stack[top], edgeix[top]\n"
"        if k < 3 then\n"
"          local v = s[3 * u + k]\n"
"          edgeix[top] = k + 1\n"
"          if v and not cp[v] then\n"
"            if color[v] == 1 then\n"
"              return line[v], 'a loop does not call the interrupt check'\n"
"            elseif not color[v] then\n"
"              top = top + 1\n"
"              stack[top], edgeix[top], color[v] = v, 0, 1\n"
"            end\n"
"          end\n"
"        else\n"
"          color[u] = 2\n"
"          top = top - 1\n"
"        end\n"
"      end\n"
"    end\n"
"  end\n"
"  return nil\n"
"end\n"
"\n"
"return function(chunk, name)\n"
"  local todo, ntodo = { chunk }, 1\n"
"  local root = true\n"
"  while ntodo > 0 do\n"
"    local p = todo[ntodo]\n"
"    todo[ntodo] = nil\n"
"    ntodo = ntodo - 1\n"
"    local l, why = proto_ok(p, name, root)\n"
"    if why then return 'line ' .. (l or 0) .. ': ' .. why end\n"
"    root = false\n"
"    if funcinfo(p).children then\n"
"      local i = -1\n"
"      while true do\n"
"        local k = funck(p, i)\n"
"        if k == nil then break end\n"
"        if type(k) == 'proto' then ntodo = ntodo + 1; todo[ntodo] = k end\n"
"        i = i - 1\n"
"      end\n"
"    end\n"
"  end\n"
"  return nil\n"
"end\n";

/*
 * Lua side, privileged setup only: pushes verify(chunk, checker_name) (see
 * above).  Takes jit.util from the preload table luaopen_jit filled, and
 * removes every other way to it from the state.
 */
void
tt_lua_push_verifier(lua_State *L)
{
	const char *const *nm;
	int			top = lua_gettop(L);

	if (luaL_loadbuffer(L, verifier_chunk, sizeof(verifier_chunk) - 1,
						"=talaria verifier") != 0)
		lua_error(L);
	lua_getfield(L, LUA_REGISTRYINDEX, "_PRELOAD");
	if (!lua_istable(L, -1))
		luaL_error(L, "jit.util is not available");
	lua_getfield(L, -1, "jit.util");
	if (!lua_isfunction(L, -1))
		luaL_error(L, "jit.util is not available");
	lua_pushstring(L, "jit.util");
	lua_call(L, 1, 1);			/* [verifier, preload, util] */
	lua_pushnil(L);
	lua_setfield(L, top + 2, "jit.util");
	lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
	if (lua_istable(L, -1))
	{
		lua_pushnil(L);
		lua_setfield(L, -2, "jit.util");
	}
	lua_pop(L, 1);
	lua_getglobal(L, "jit");
	if (lua_istable(L, -1))
	{
		lua_pushnil(L);
		lua_setfield(L, -2, "util");
	}
	lua_pop(L, 1);

	lua_pushvalue(L, top + 1);	/* the chunk, then its arguments */
	lua_getfield(L, top + 3, "funcinfo");
	lua_getfield(L, top + 3, "funcbc");
	lua_getfield(L, top + 3, "funck");
	lua_getfield(L, top + 3, "funcuvname");
	lua_newtable(L);
	for (nm = bc_names; *nm; nm++)
	{
		lua_pushinteger(L, nm - bc_names);
		lua_setfield(L, -2, *nm);
	}
	lua_getglobal(L, "type");
	lua_getglobal(L, "select");
	lua_call(L, 7, 1);			/* [chunk, preload, util, verify] */
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
}
