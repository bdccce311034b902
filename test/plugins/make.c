/*
 * make.c
 *	  Talaria's built-in computed columns make://identifier and
 *	  make://timestamp.
 *
 *	  identifier		returns a string: 32 lowercase hex characters (128
 *						random bits)
 *	  timestamp			returns an integer: the current Unix time in seconds
 *	  add_identifier	returns the row with "id" set to an identifier
 *	  add_timestamp		returns the row with "ingested_at" set to a timestamp
 *
 * The random bits come from a xorshift128+ generator seeded
 * once per process from /dev/urandom: no system call per row.  Backends
 * open the library after fork, so no two backends share a sequence.
 */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "talaria_transform.h"

TT_DECLARE_PLUGIN();

static uint64_t rng[2];
static int	seeded = 0;

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
seed(void)
{
	uint64_t	s[2] = {0, 0};
	int			fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	uint64_t	x;

	if (fd < 0 || read(fd, s, sizeof(s)) != (ssize_t) sizeof(s))
	{
		/* no urandom: time, pid and an address are better than nothing */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		s[0] = (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 30);
		s[1] = (uint64_t) getpid() ^ (uint64_t) (uintptr_t) &ts;
	}
	if (fd >= 0)
		close(fd);
	x = s[0] ^ (s[1] << 1);
	rng[0] = splitmix64(&x) ^ s[0];
	rng[1] = splitmix64(&x) ^ s[1];
	if (rng[0] == 0 && rng[1] == 0)
		rng[1] = 1;
	seeded = 1;
}

/* xorshift128+ */
static uint64_t
next64(void)
{
	uint64_t	s1 = rng[0];
	const uint64_t s0 = rng[1];

	if (!seeded)
	{
		seed();
		return next64();
	}
	rng[0] = s0;
	s1 ^= s1 << 23;
	rng[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
	return rng[1] + s0;
}

/* Fills dst with a fresh 32-character identifier; 0 if out of memory. */
static int
make_identifier(tt_call *call, tt_value *dst)
{
	static const char hex[] = "0123456789abcdef";
	char	   *s = call->host->alloc(call, 32);
	uint64_t	w[2];
	int			i;

	if (s == NULL || dst == NULL)
		return 0;
	w[0] = next64();
	w[1] = next64();
	for (i = 0; i < 32; i++)
		s[i] = hex[(w[i / 16] >> ((i % 16) * 4)) & 15];
	dst->type = TT_STRING;
	dst->u.str.ptr = s;
	dst->u.str.len = 32;
	return 1;
}

static void
make_timestamp(tt_value *dst)
{
	dst->type = TT_INT;
	dst->u.i = (int64_t) time(NULL);
}

TT_TRANSFORM(identifier)
{
	tt_value   *v = call->host->alloc(call, sizeof(tt_value));

	if (!make_identifier(call, v))
		return TT_ERROR;		/* the host reports the arena exhaustion */
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(timestamp)
{
	tt_value   *v = call->host->alloc(call, sizeof(tt_value));

	if (v == NULL)
		return TT_ERROR;
	make_timestamp(v);
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(add_identifier)
{
	if (call->row->type != TT_OBJECT)
		return call->host->error(call, "expected an object");
	if (!make_identifier(call, call->host->put(call, call->row, TT_KEY("id"))))
		return TT_ERROR;
	return TT_OK;
}

TT_TRANSFORM(add_timestamp)
{
	tt_value   *slot;

	if (call->row->type != TT_OBJECT)
		return call->host->error(call, "expected an object");
	slot = call->host->put(call, call->row, TT_KEY("ingested_at"));
	if (slot == NULL)
		return TT_ERROR;
	make_timestamp(slot);
	return TT_OK;
}
