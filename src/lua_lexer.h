/*-------------------------------------------------------------------------
 *
 * lua_lexer.h
 *	  A token scanner for Lua source that agrees with LuaJIT 2.1's own
 *	  (lj_lex.c) on where every token, comment and string begins and ends.
 *
 * The instrumenter (lua_instrument.c) and the row-escape scan decide what
 * the compiler will see from these tokens, so any disagreement with LuaJIT
 * would let code hide from them.  Plain C: no ereport, no allocation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TT_LUA_LEXER_H
#define TT_LUA_LEXER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum TTLexKind
{
	TT_TOK_EOF,
	TT_TOK_NAME,				/* identifier or reserved word */
	TT_TOK_STRING,				/* "..", '..' or [=[..]=] */
	TT_TOK_NUMBER,
	TT_TOK_PUNCT,				/* operators and other single characters */
	TT_TOK_ERROR				/* LuaJIT refuses the source here */
} TTLexKind;

typedef struct TTToken
{
	TTLexKind	kind;
	const char *p;				/* the token's text in the source */
	size_t		n;
	int			line;			/* LuaJIT's line number of its first byte */
} TTToken;

typedef struct TTLexer
{
	const char *src;
	const char *p;				/* next byte to scan */
	const char *end;
	int			line;
	const char *body;			/* first byte after a UTF-8 BOM and #! line */
	bool		binary;			/* a bytecode dump (ESC) follows the header */
} TTLexer;

extern void tt_lex_init(TTLexer *lx, const char *src, size_t len);
extern TTLexKind tt_lex_next(TTLexer *lx, TTToken *tok);

/* is tok exactly the text s (a name, keyword or punctuation)? */
extern bool tt_tok_is(const TTToken *tok, const char *s);

#endif							/* TT_LUA_LEXER_H */
