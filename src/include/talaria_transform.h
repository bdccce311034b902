/*-------------------------------------------------------------------------
 *
 * talaria_transform.h
 *	  The public ABI of talaria_transform native plugins.
 *
 * A plugin includes this header alone: no postgres.h, no linking against
 * the server.  Everything it needs (reading and changing fields, memory,
 * errors) comes through the function table tt_host that the host hands to
 * every call.  Memory comes from a per-row arena the host resets after the
 * row: a plugin never frees anything and never calls malloc per field.
 *
 * Stability: the library exports TT_DECLARE_PLUGIN() which records the ABI
 * version and the sizes of the structs it was compiled with.  The host
 * refuses (with an ERROR, at registration and at load, never a crash and
 * never calling the plugin) a library whose
 *	 - abi_version differs from the host's TT_ABI_VERSION, or
 *	 - sizeof_value differs from the host's sizeof(tt_value), or
 *	 - sizeof_call or sizeof_host is larger than the host's (the plugin was
 *	   built against a newer header than the server's).
 * Compatible revisions of this header only append members at the end of
 * tt_host and tt_call, so a plugin built against an older header keeps
 * working with a newer host.  Anything else changes TT_ABI_VERSION.
 *
 * Copyright (c) 2026, the talaria_transform authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef TALARIA_TRANSFORM_H
#define TALARIA_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
{
#endif

#define TT_ABI_VERSION 1

/* Value types.  Numbers that are integers fitting int64 arrive as TT_INT;
 * every other number arrives as TT_NUMERIC, kept exact as its decimal text
 * (parse it with strtod if a double is good enough). */
typedef enum tt_type
{
	TT_NULL = 0,				/* JSON null / SQL NULL */
	TT_BOOL = 1,
	TT_INT = 2,					/* int64 */
	TT_FLOAT = 3,				/* double (never NaN or infinite in output) */
	TT_NUMERIC = 4,				/* exact decimal, text in u.str */
	TT_STRING = 5,				/* UTF-8 text in u.str, no NUL bytes */
	TT_OBJECT = 6,				/* u.obj: members, unique keys */
	TT_ARRAY = 7,				/* u.arr: items */
	TT_TIMESTAMP = 8			/* u.ts: microseconds since 1970-01-01 UTC */
} tt_type;

typedef struct tt_value tt_value;
typedef struct tt_member tt_member;

/* A string that is not NUL-terminated: always use len. */
typedef struct tt_str
{
	const char *ptr;
	uint32_t	len;
} tt_str;

struct tt_value
{
	uint32_t	type;			/* a tt_type */
	uint32_t	host_tag;		/* the host's: copy it along with the value,
								 * write 0 in values you build yourself */
	union
	{
		int			b;
		int64_t		i;
		double		f;
		int64_t		ts;
		tt_str		str;		/* TT_STRING, TT_NUMERIC */
		/* count <= cap: cap is the number of slots allocated (put/append
		 * keep it up to date; set it yourself when you allocate slots) */
		struct
		{
			tt_member  *members;
			uint32_t	count;
			uint32_t	cap;
		}			obj;
		struct
		{
			tt_value   *items;
			uint32_t	count;
			uint32_t	cap;
		}			arr;
	}			u;
};

struct tt_member
{
	tt_str		key;
	tt_value	value;
};

/* What a transform function returns. */
typedef enum tt_status
{
	TT_OK = 0,					/* call->result holds the result */
	TT_DROP = 1,				/* no result: the row is dropped (SQL NULL) */
	TT_ERROR = 2				/* set the message with host->error() */
} tt_status;

typedef struct tt_call tt_call;

/*
 * The host's services.  Every function that allocates takes the call, and
 * returns NULL only when the per-row arena is exhausted (one call may take
 * talaria.native_memory_limit from it); the host then reports "out of
 * memory" itself, the plugin just returns TT_ERROR.
 */
typedef struct tt_host
{
	uint32_t	abi_version;	/* TT_ABI_VERSION of the host */
	uint32_t	size;			/* sizeof(tt_host) of the host */

	/* arena memory, 16-byte aligned, freed by the host after the row */
	void	   *(*alloc) (tt_call *call, size_t size);

	/* objects: find a member by key (NULL if absent) */
	tt_value   *(*get) (const tt_value *obj, const char *key, size_t keylen);
	/* add or replace a member; returns the slot to fill (type TT_NULL) */
	tt_value   *(*put) (tt_call *call, tt_value *obj, const char *key, size_t keylen);
	/* remove a member; returns 1 if it was there */
	int			(*remove) (tt_value *obj, const char *key, size_t keylen);

	/* arrays: append a slot (type TT_NULL) to fill */
	tt_value   *(*append) (tt_call *call, tt_value *arr);

	/* constructors writing into *dst (strings are copied into the arena) */
	int			(*set_string) (tt_call *call, tt_value *dst, const char *s, size_t len);
	void		(*set_object) (tt_value *dst);
	void		(*set_array) (tt_value *dst);

	/* report an error: formats the message, returns TT_ERROR */
	int			(*error) (tt_call *call, const char *fmt,...)
#if defined(__GNUC__)
				__attribute__((format(printf, 2, 3)))
#endif
			   ;

	/*
	 * Appended in 0.3.0 (same ABI version; plugins built against the older
	 * header keep working).  1 when the statement is being cancelled or the
	 * backend terminated (pg_cancel_backend, statement_timeout,
	 * pg_terminate_backend): a long-running plugin polls it now and then and
	 * returns TT_ERROR, and the host raises the cancel itself.  Cheap (a
	 * few loads), never blocks, never longjmps.
	 */
	int			(*interrupted) (tt_call *call);
} tt_host;

/* One call: the row goes in, the result comes out. */
struct tt_call
{
	uint32_t	size;			/* sizeof(tt_call) of the host */
	uint32_t	_pad;
	const tt_host *host;
	const char *transform;		/* the transform's registered name */
	tt_value   *row;			/* the input row (an object); may be changed */
	tt_value   *result;			/* preset to row; point it elsewhere for a
								 * scalar or a new object */
	void	   *host_private;	/* do not touch */
};

typedef int (*tt_transform_fn) (tt_call *call);

/* What the library exports so the host can check it before calling it. */
typedef struct tt_plugin_info
{
	uint32_t	abi_version;
	uint32_t	sizeof_value;
	uint32_t	sizeof_call;
	uint32_t	sizeof_host;
} tt_plugin_info;

#define TT_PLUGIN_INFO_SYMBOL "talaria_plugin_info"

/* Exported with C linkage and default visibility, also from C++ and from
 * code built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define TT_EXPORT __attribute__((visibility("default")))
#else
#define TT_EXPORT
#endif
#ifdef __cplusplus
#define TT_EXTERN_C extern "C"
#else
#define TT_EXTERN_C
#endif

/* Once per library, at file scope. */
#define TT_DECLARE_PLUGIN() \
	TT_EXTERN_C TT_EXPORT const tt_plugin_info talaria_plugin_info = { \
		TT_ABI_VERSION, sizeof(tt_value), sizeof(tt_call), sizeof(tt_host) \
	}

/* Defines a transform function: TT_TRANSFORM(trim) { ... return TT_OK; } */
#define TT_TRANSFORM(name) TT_EXTERN_C TT_EXPORT int name(tt_call *call)

/* A string literal as the (key, keylen) pair: host->get(row, TT_KEY("id")) */
#define TT_KEY(literal) (literal), (sizeof(literal) - 1)

#ifdef __cplusplus
}
#endif

#endif							/* TALARIA_TRANSFORM_H */
