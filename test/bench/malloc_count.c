/*
 * malloc_count.c
 *	  An LD_PRELOAD allocation counter for the benchmark (test/bench/run.sh).
 *
 * Started with LD_PRELOAD=malloc_count.so, every process of the server
 * counts its own calls to malloc, calloc, realloc, the aligned allocators,
 * free, and mmap/munmap (LuaJIT's own allocator gets its memory with mmap,
 * not malloc).  The same file is also a PostgreSQL module: a backend reads
 * its counters with
 *
 *	  CREATE FUNCTION malloc_counts() RETURNS bigint[]
 *		  AS '<the same path>', 'malloc_counts' LANGUAGE c;
 *
 * which returns {malloc, calloc, realloc, aligned, free, mmap, munmap}.
 * dlopen() of the preloaded path returns the preloaded object, so the
 * function sees the counters the wrappers update.  A backend is a single
 * thread; the counters are plain integers.
 *
 * The wrappers call glibc's __libc_* entry points (no dlsym bootstrap) and
 * the mmap system call directly.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fmgr.h"
#include "catalog/pg_type.h"
#include "utils/array.h"

PG_MODULE_MAGIC;

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *ptr);

static unsigned long n_malloc, n_calloc, n_realloc, n_aligned, n_free, n_mmap, n_munmap;

void *
malloc(size_t size)
{
	n_malloc++;
	return __libc_malloc(size);
}

void *
calloc(size_t n, size_t size)
{
	n_calloc++;
	return __libc_calloc(n, size);
}

void *
realloc(void *ptr, size_t size)
{
	n_realloc++;
	return __libc_realloc(ptr, size);
}

void
free(void *ptr)
{
	if (ptr != NULL)
		n_free++;
	__libc_free(ptr);
}

void *
memalign(size_t align, size_t size)
{
	n_aligned++;
	return __libc_memalign(align, size);
}

void *
aligned_alloc(size_t align, size_t size)
{
	n_aligned++;
	return __libc_memalign(align, size);
}

int
posix_memalign(void **out, size_t align, size_t size)
{
	void	   *p;

	if (align < sizeof(void *) || (align & (align - 1)) != 0)
		return EINVAL;
	n_aligned++;
	p = __libc_memalign(align, size);
	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

void *
valloc(size_t size)
{
	n_aligned++;
	return __libc_memalign(sysconf(_SC_PAGESIZE), size);
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	n_mmap++;
	return (void *) syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	n_mmap++;
	return (void *) syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int
munmap(void *addr, size_t len)
{
	n_munmap++;
	return (int) syscall(SYS_munmap, addr, len);
}

PG_FUNCTION_INFO_V1(malloc_counts);

Datum
malloc_counts(PG_FUNCTION_ARGS)
{
	/* read all counters first: building the array allocates */
	unsigned long c[7] = {n_malloc, n_calloc, n_realloc, n_aligned, n_free, n_mmap, n_munmap};
	Datum		d[7];
	int			i;

	for (i = 0; i < 7; i++)
		d[i] = Int64GetDatum((int64) c[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, 7, INT8OID, 8, true, TYPALIGN_DOUBLE));
}
