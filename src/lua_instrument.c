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
 * Can an object inside the row outlive its call?
 *
 * The row's nested objects are lazy too (lua_convert.c), with their state
 * in the call's memory; one a script may keep gets a copy at the end of
 * the call.  For a script whose row cannot outlive the call
 * (tt_lua_row_stays_local), this scan answers "certainly not" for its
 * nested objects when every chain of indexes through the row, or through
 * a local declared as `local d = row.x...`, is used only:
 *	- as an assignment target (`row.doc.key1 = nil`, `d.key1 = nil`), or
 *	  as the value such a target is given (`row.copy = row.doc`: it stays
 *	  in the row);
 *	- as the value of such a `local d = ...` declaration (d is then
 *	  checked the same way);
 *	- as `return chain` at the end of a block (the result, read back
 *	  during the call);
 *	- as an operand of a comparison, arithmetic, `..`, `not` or `#`, or as
 *	  the condition of `if ... then` or `while ... do`: none of these
 *	  passes the value on.
 * Anything else (passed to a function, stored, returned with another
 * value, a method call, `and`/`or`) answers "maybe".
 * ---------------------------------------------------------------------
 */
static bool
same_name(const TTToken *a, const TTToken *b)
{
	return a->kind == TT_TOK_NAME && b->kind == TT_TOK_NAME && a->n == b->n &&
		memcmp(a->p, b->p, a->n) == 0;
}

/*
 * The first token after the chain of `.name` and `[...]` links that
 * follows toks[i]; *links counts them.  -1: unbalanced brackets.
 */
static int
chain_end(const TTToken *toks, int ntok, int i, int *links)
{
	int			j = i + 1;

	*links = 0;
	for (;;)
	{
		if (j + 1 < ntok && tt_tok_is(&toks[j], ".") && toks[j + 1].kind == TT_TOK_NAME)
			j += 2;
		else if (j < ntok && tt_tok_is(&toks[j], "["))
		{
			int			depth = 0;

			for (; j < ntok; j++)
			{
				if (tt_tok_is(&toks[j], "["))
					depth++;
				else if (tt_tok_is(&toks[j], "]") && --depth == 0)
					break;
			}
			if (j >= ntok)
				return -1;
			j++;
		}
		else
			return j;
		(*links)++;
	}
}

static bool
tok_in(const TTToken *t, const char *const *list)
{
	for (; t != NULL && *list; list++)
		if (tt_tok_is(t, *list))
			return true;
	return false;
}

/* does a block end at toks[e] (what may follow `return x`)? */
static bool
block_ends(const TTToken *toks, int ntok, int e)
{
	static const char *const ends[] = {"end", "else", "elseif", "until", ";", NULL};

	return e >= ntok || tok_in(&toks[e], ends);
}

/* does an expression statement's value end at toks[e]? */
static bool
stmt_ends(const TTToken *toks, int ntok, int e)
{
	return e >= ntok || tt_tok_is(&toks[e], ";") ||
		(toks[e].kind == TT_TOK_NAME && !tt_tok_is(&toks[e], "and") &&
		 !tt_tok_is(&toks[e], "or"));
}

/* is toks[i] a use of a tracked name (not a field name)? */
static bool
tracked_use(const TTToken *toks, int ntok, const bool *tracked, int i)
{
	int			j;

	if (toks[i].kind != TT_TOK_NAME || tracked[i] ||
		(i > 0 && (tt_tok_is(&toks[i - 1], ".") || tt_tok_is(&toks[i - 1], ":"))))
		return false;
	for (j = 0; j < ntok; j++)
		if (tracked[j] && same_name(&toks[j], &toks[i]))
			return true;
	return false;
}

bool
tt_lua_objects_stay_local(const char *src, size_t len)
{
	static const char *const ops[] = {
		"==", "~=", "<", "<=", ">", ">=", "..", "+", "-", "*", "/", "%", "^", NULL
	};
	static const char *const before[] = {"not", "#", NULL};
	TTToken    *toks;
	int			ntok;
	bool	   *tracked;
	bool	   *in_row;
	bool		local = true;
	bool		grew = true;
	int			i;

	toks = scan_tokens(src, len, &ntok);
	if (toks == NULL)
		return false;
	tracked = calloc(2 * Max(ntok, 1), sizeof(bool));
	if (tracked == NULL)
	{
		free(toks);
		return false;
	}
	in_row = tracked + Max(ntok, 1);
	/* the row: main's parameter (tt_lua_row_stays_local found exactly one) */
	for (i = 0; i + 3 < ntok; i++)
		if (tt_tok_is(&toks[i], "function") && tt_tok_is(&toks[i + 1], "main") &&
			tt_tok_is(&toks[i + 2], "("))
			tracked[i + 3] = true;
	/* locals bound to a chain through a tracked name, until none is new */
	while (grew)
	{
		grew = false;
		for (i = 3; i < ntok; i++)
		{
			int			links;
			int			e;

			if (toks[i].kind != TT_TOK_NAME || !tt_tok_is(&toks[i - 1], "=") ||
				toks[i - 2].kind != TT_TOK_NAME || !tt_tok_is(&toks[i - 3], "local") ||
				tracked[i - 2])
				continue;
			if (!tracked_use(toks, ntok, tracked, i))
				continue;
			e = chain_end(toks, ntok, i, &links);
			if (links > 0 && stmt_ends(toks, ntok, e))
			{
				tracked[i - 2] = true;
				grew = true;
			}
		}
	}
	/* every use of a tracked name */
	for (i = 0; local && i < ntok; i++)
	{
		const TTToken *prev = i > 0 ? &toks[i - 1] : NULL;
		int			links;
		int			e;

		if (!tracked_use(toks, ntok, tracked, i))
			continue;
		e = chain_end(toks, ntok, i, &links);
		if (e < 0)
			local = false;
		else if (e < ntok && (tt_tok_is(&toks[e], "(") || tt_tok_is(&toks[e], ":") ||
							  tt_tok_is(&toks[e], "{") || toks[e].kind == TT_TOK_STRING))
			local = false;		/* a call: the value is passed on */
		else if (in_row[i])
			continue;			/* stored into the row (or an object of it) */
		else if (tt_tok_is(prev, "return") && block_ends(toks, ntok, e))
			continue;			/* the result */
		else if (links == 0)
			local = false;		/* the object itself, bare */
		else if (e < ntok && tt_tok_is(&toks[e], "="))
		{
			int			e2;
			int			links2;

			/* an assignment's target; a chain it is given stays in the row */
			if (e + 1 < ntok && tracked_use(toks, ntok, tracked, e + 1) &&
				(e2 = chain_end(toks, ntok, e + 1, &links2)) >= 0 && links2 > 0 &&
				stmt_ends(toks, ntok, e2))
				in_row[e + 1] = true;
			continue;
		}
		else if (i >= 3 && tt_tok_is(prev, "=") && tracked[i - 2] &&
				 tt_tok_is(&toks[i - 3], "local"))
			continue;			/* the value of a tracked local */
		else if (tok_in(prev, ops) || tok_in(prev, before) ||
				 (e < ntok && tok_in(&toks[e], ops)))
			continue;			/* an operand */
		else if (e < ntok && (tt_tok_is(&toks[e], "then") || tt_tok_is(&toks[e], "do")) &&
				 (tt_tok_is(prev, "if") || tt_tok_is(prev, "elseif") ||
				  tt_tok_is(prev, "while")))
			continue;			/* a condition */
		else
			local = false;
	}
	free(tracked);
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
 * refused rather than misread.  The walk is C (funcbc and friends called
 * through the Lua API): no Lua code to compile per state, no trace, and
 * nothing left in the state but four C functions.
 * ---------------------------------------------------------------------
 */
#define TT_BC_OPS(X) \
	X(ISLT) X(ISGE) X(ISLE) X(ISGT) X(ISEQV) X(ISNEV) X(ISEQS) X(ISNES) \
	X(ISEQN) X(ISNEN) X(ISEQP) X(ISNEP) X(ISTC) X(ISFC) X(IST) X(ISF) \
	X(ISTYPE) X(ISNUM) X(MOV) X(NOT) X(UNM) X(LEN) X(ADDVN) X(SUBVN) \
	X(MULVN) X(DIVVN) X(MODVN) X(ADDNV) X(SUBNV) X(MULNV) X(DIVNV) X(MODNV) \
	X(ADDVV) X(SUBVV) X(MULVV) X(DIVVV) X(MODVV) X(POW) X(CAT) X(KSTR) \
	X(KCDATA) X(KSHORT) X(KNUM) X(KPRI) X(KNIL) X(UGET) X(USETV) X(USETS) \
	X(USETN) X(USETP) X(UCLO) X(FNEW) X(TNEW) X(TDUP) X(GGET) X(GSET) \
	X(TGETV) X(TGETS) X(TGETB) X(TGETR) X(TSETV) X(TSETS) X(TSETB) X(TSETM) \
	X(TSETR) X(CALLM) X(CALL) X(CALLMT) X(CALLT) X(ITERC) X(ITERN) X(VARG) \
	X(ISNEXT) X(RETM) X(RET) X(RET0) X(RET1) X(FORI) X(JFORI) X(FORL) \
	X(IFORL) X(JFORL) X(ITERL) X(IITERL) X(JITERL) X(LOOP) X(ILOOP) X(JLOOP) \
	X(JMP) X(FUNCF) X(IFUNCF) X(JFUNCF) X(FUNCV) X(IFUNCV) X(JFUNCV) X(FUNCC) \
	X(FUNCCW)

#define TT_BC_ENUM(name) BC_##name,
typedef enum
{
	TT_BC_OPS(TT_BC_ENUM)
	BC__MAX
} BCOp;
#undef TT_BC_ENUM

#define BCM_JUMP 13				/* lj_bc.h: the D operand is a jump */

/* jump-mode opcodes (what funcbc's mode must say) */
static inline bool
bc_jump_mode(int op)
{
	switch (op)
	{
		case BC_JMP:
		case BC_FORI:
		case BC_JFORI:
		case BC_FORL:
		case BC_IFORL:
		case BC_JFORL:
		case BC_ITERL:
		case BC_IITERL:
		case BC_JITERL:
		case BC_LOOP:
		case BC_ILOOP:
		case BC_JLOOP:
		case BC_ISNEXT:
		case BC_UCLO:
			return true;
		default:
			return false;
	}
}

/* may the interpreter go to the jump target? (LOOP's is for the JIT) */
static inline bool
bc_jumps(int op)
{
	return bc_jump_mode(op) && op != BC_LOOP && op != BC_ILOOP && op != BC_JLOOP;
}

static inline bool
bc_falls_through(int op)
{
	switch (op)
	{
		case BC_JMP:
		case BC_UCLO:
		case BC_ISNEXT:
		case BC_RET:
		case BC_RET0:
		case BC_RET1:
		case BC_RETM:
		case BC_CALLT:
		case BC_CALLMT:
			return false;
		default:
			return true;
	}
}

/* compares and tests: their next instruction (a JMP) may be skipped */
static inline bool
bc_skips(int op)
{
	return op <= BC_ISF;
}

typedef struct VIns
{
	uint8		op;
	uint8		a;
	uint8		b;
	uint8		c;
	uint16		d;
	bool		cp;				/* a checkpoint CALL (see (1)) */
	bool		entered;		/* reached by something other than pc-1 */
	uint8		color;			/* depth-first search: 0 new, 1 open, 2 done */
	uint8		nsucc;
	int			line;
	int			succ[3];
} VIns;

/* upvalues of the verifier closure */
#define V_FUNCINFO	lua_upvalueindex(1)
#define V_FUNCBC	lua_upvalueindex(2)
#define V_FUNCK		lua_upvalueindex(3)
#define V_FUNCUVNAME lua_upvalueindex(4)

/* Is upvalue uv of proto p (at index pidx) named exactly name? */
static bool
uv_is(lua_State *L, int pidx, int uv, const char *name)
{
	bool		is;

	lua_pushvalue(L, V_FUNCUVNAME);
	lua_pushvalue(L, pidx);
	lua_pushinteger(L, uv);
	lua_call(L, 2, 1);
	is = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0;
	lua_pop(L, 1);
	return is;
}

/* Field of funcinfo(p) as an integer (0 if absent or false). */
static int
info_int(lua_State *L, int pidx, const char *field)
{
	int			v;

	lua_pushvalue(L, V_FUNCINFO);
	lua_pushvalue(L, pidx);
	lua_call(L, 1, 1);
	lua_getfield(L, -1, field);
	v = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : (int) lua_tointeger(L, -1);
	lua_pop(L, 2);
	return v;
}

/*
 * Checks one prototype (at pidx) against (1)-(4); returns NULL or the
 * reason, with *line set.  Its instructions are pc 1..n (0 is the header).
 */
static const char *
verify_proto(lua_State *L, int pidx, const char *name, bool root, int *line)
{
	int			n = info_int(L, pidx, "bytecodes") - 1;
	VIns	   *v;
	int		   *stack;
	int			pc;
	int			start;

	*line = 0;
	if (n < 1)
		return NULL;
	/* freed by the collector, also if a Lua error unwinds us */
	v = lua_newuserdata(L, (n + 2) * sizeof(VIns) + (n + 1) * sizeof(int));
	memset(v, 0, (n + 2) * sizeof(VIns));
	stack = (int *) (v + n + 2);
	for (pc = 1; pc <= n; pc++)
	{
		lua_Number	ins;
		uint32		i;
		int			mode;

		lua_pushvalue(L, V_FUNCBC);
		lua_pushvalue(L, pidx);
		lua_pushinteger(L, pc);
		lua_pushinteger(L, 1);	/* with the line */
		lua_call(L, 3, 3);
		ins = lua_tonumber(L, -3);
		i = (uint32) (int64) ins;	/* funcbc gives an int32 */
		mode = (int) lua_tointeger(L, -2);
		v[pc].line = *line = (int) lua_tointeger(L, -1);
		lua_pop(L, 3);
		v[pc].op = i & 0xff;
		v[pc].a = (i >> 8) & 0xff;
		v[pc].c = (i >> 16) & 0xff;
		v[pc].b = i >> 24;
		v[pc].d = i >> 16;
		if (v[pc].op >= BC__MAX || (((mode >> 7) & 15) == BCM_JUMP) != bc_jump_mode(v[pc].op))
			return "unexpected bytecode (not the LuaJIT 2.1 this was built for)";
	}
	/* (1) candidates, (4) no store into the checker */
	for (pc = 1; pc <= n; pc++)
	{
		VIns	   *x = &v[pc];

		if (x->op == BC_CALL && pc > 1 && v[pc - 1].op == BC_UGET &&
			x->a == v[pc - 1].a && x->b == 1 && x->c == 1 &&
			uv_is(L, pidx, v[pc - 1].d, name))
			x->cp = true;
		if (x->op >= BC_USETV && x->op <= BC_USETP && uv_is(L, pidx, x->a, name))
		{
			*line = x->line;
			return "the interrupt check is assigned";
		}
	}
	/* the edges; a candidate entered other than from its UGET is none */
	for (pc = 1; pc <= n; pc++)
	{
		VIns	   *x = &v[pc];

		if (bc_jumps(x->op))
		{
			int			t = pc + 1 + (int) x->d - 0x8000;

			if (t < 1 || t > n)
			{
				*line = x->line;
				return "a jump leaves the function";
			}
			x->succ[x->nsucc++] = t;
			if (t != pc + 1)
				v[t].entered = true;
		}
		if (bc_falls_through(x->op) && pc + 1 <= n)
			x->succ[x->nsucc++] = pc + 1;
		if (bc_skips(x->op) && pc + 2 <= n)
		{
			x->succ[x->nsucc++] = pc + 2;
			v[pc + 2].entered = true;
		}
	}
	for (pc = 1; pc <= n; pc++)
		if (v[pc].entered)
			v[pc].cp = false;
	/* (2) */
	if (!root && (n < 2 || !v[2].cp))
	{
		*line = v[1].line;
		return "a function does not start with the interrupt check";
	}
	/* (3) depth-first search for a cycle that avoids every checkpoint */
	for (start = 1; start <= n; start++)
	{
		int			top = 0;

		if (v[start].color != 0 || v[start].cp)
			continue;
		stack[top] = start;
		v[start].color = 1;
		while (top >= 0)
		{
			VIns	   *u = &v[stack[top]];

			if (u->nsucc > 0)
			{
				int			t = u->succ[--u->nsucc];

				if (v[t].cp || v[t].color == 2)
					continue;
				if (v[t].color == 1)
				{
					*line = v[t].line;
					return "a loop does not call the interrupt check";
				}
				v[t].color = 1;
				stack[++top] = t;
			}
			else
			{
				u->color = 2;
				top--;
			}
		}
	}
	lua_pop(L, 1);
	return NULL;
}

/*
 * verify(chunk, checker_name): nil if the chunk and every prototype nested
 * in it pass, else "line N: reason".  Upvalues: jit.util's funcinfo,
 * funcbc, funck, funcuvname.
 */
static int
verify(lua_State *L)
{
	const char *name = luaL_checkstring(L, 2);
	int			root = 1;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_pushvalue(L, 1);		/* the prototypes left to check, from 3 up */
	while (lua_gettop(L) > 2)
	{
		int			pidx = lua_gettop(L);
		int			line;
		const char *why = verify_proto(L, pidx, name, root, &line);
		int			nk;
		int			k;

		if (why != NULL)
		{
			lua_pushfstring(L, "line %d: %s", line, why);
			return 1;
		}
		root = 0;
		nk = info_int(L, pidx, "children") ? info_int(L, pidx, "gcconsts") : 0;
		lua_insert(L, 3);		/* keep p below its children while we read */
		for (k = 1; k <= nk; k++)
		{
			lua_pushvalue(L, V_FUNCK);
			lua_pushvalue(L, 3);
			lua_pushinteger(L, -k);
			lua_call(L, 2, 1);
			if (strcmp(luaL_typename(L, -1), "proto") == 0)
				continue;		/* a child: stays on the stack */
			lua_pop(L, 1);
		}
		lua_remove(L, 3);
	}
	lua_pushnil(L);
	return 1;
}

/*
 * Lua side, privileged setup only: pushes verify(chunk, checker_name) (see
 * above).  Takes jit.util from the preload table luaopen_jit filled, and
 * removes every other way to it from the state.
 */
void
tt_lua_push_verifier(lua_State *L)
{
	int			top = lua_gettop(L);

	lua_getfield(L, LUA_REGISTRYINDEX, "_PRELOAD");
	if (!lua_istable(L, -1))
		luaL_error(L, "jit.util is not available");
	lua_getfield(L, -1, "jit.util");
	if (!lua_isfunction(L, -1))
		luaL_error(L, "jit.util is not available");
	lua_pushstring(L, "jit.util");
	lua_call(L, 1, 1);			/* [preload, util] */
	lua_pushnil(L);
	lua_setfield(L, top + 1, "jit.util");
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

	lua_getfield(L, top + 2, "funcinfo");
	lua_getfield(L, top + 2, "funcbc");
	lua_getfield(L, top + 2, "funck");
	lua_getfield(L, top + 2, "funcuvname");
	lua_pushcclosure(L, verify, 4);
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
}
