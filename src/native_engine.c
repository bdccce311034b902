/*-------------------------------------------------------------------------
 *
 * native_engine.c
 *	  Native transforms: C functions in shared libraries, opened with
 *	  dlopen behind the versioned ABI of talaria_transform.h.
 *
 * Registration (talaria.register_native) checks everything a later load
 * will need: the caller is a superuser, the file lies in a directory of
 * talaria.native_library_path once symlinks and ".." are resolved, it is
 * a shared object, it carries a compatible talaria_plugin_info, and the
 * symbol is a function defined in that library.  Loading repeats the same
 * checks, so a library replaced on disk by an incompatible one is refused
 * and never called.
 *
 * Reloading.  dlopen caches libraries by path (and by inode), so opening
 * a rebuilt file under its own name could hand back the old code.  Every
 * load therefore copies the file to a private, uniquely named file under
 * the data directory's pgsql_tmp, dlopens the copy and unlinks it at once.
 * The mapping stays valid however the original is later replaced (even by
 * an in-place overwrite).  Each backend keeps a short list of the libraries
 * it has open, keyed by the file's identity (real path, device, inode,
 * size, mtime), so transforms from one unchanged file share one handle; a
 * handle is closed when its last transform lets go of it, unless the
 * library can never be unloaded (Go's): that one stays, to be reused.
 *
 * transform.c asks native_stale() whenever it revalidates against the
 * catalog (after any catalog change, never per row): a file whose identity
 * changed since it was loaded makes the transform reload.  So "replace the
 * file, then register_native again" reaches every backend on its next call.
 *
 * Calling is one indirect call.  What the plugin hands back is then walked
 * once (type tags, pointers, counts against capacities, sizes, nesting,
 * timestamp range) so that no consumer of the value tree reads beyond
 * what was allocated; a bad result becomes an error naming the transform,
 * and the backend goes on.  The consumers verify the text's encoding.
 * A cancel that arrived while the plugin ran ends the statement when the
 * call returns (host->interrupted lets a long call return early).
 *
 * Plugins with a runtime of their own.  A Go library (go build
 * -buildmode=c-shared) starts its runtime inside dlopen: it installs signal
 * handlers and starts threads.  Two things would then break PostgreSQL.
 * The runtime's threads take the signal mask of the thread that loaded
 * them, and Go unblocks every signal in them, so a process-directed
 * SIGINT, SIGALRM or SIGUSR1 could run PostgreSQL's handler on a Go thread,
 * concurrently with the backend.  And Go takes SIGURG for goroutine
 * preemption while PostgreSQL 15 wakes latches with kill(pid, SIGURG),
 * blocked in the main thread and read from a signalfd: the wakeup lands on
 * a Go thread, whose handler swallows it, and a backend waiting for a lock
 * never sees the holder's commit.  So every library is opened with all
 * signals blocked (the runtime's threads inherit that mask and keep
 * PostgreSQL's signals blocked for good), and when a library changed
 * SIGURG's handler, ours goes in front of it: a SIGURG sent with kill() is
 * PostgreSQL's and goes on to the main thread (tgkill), any other is the
 * runtime's own and goes to the runtime's handler.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <link.h>
#endif

#include "datatype/timestamp.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "talaria.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

/* result limits: what one jsonb value can hold */
#define NATIVE_MAX_DEPTH		1000
#define NATIVE_MAX_BYTES		((uint64) JENTRY_OFFLENMASK)
#define NATIVE_MAX_SYMBOL		255

/* ELF symbol types, for libcs without <link.h> */
#ifndef STT_OBJECT
#define STT_OBJECT 1
#endif
#ifndef STT_FUNC
#define STT_FUNC 2
#endif

/*
 * The earliest timestamp PostgreSQL holds, in Unix microseconds.  No int64
 * is past the latest one: END_TIMESTAMP is beyond INT64_MAX minus the
 * 1970-to-2000 shift.
 */
#define MIN_UNIX_USEC \
	(MIN_TIMESTAMP + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* What makes a file "the same file" for reuse and staleness. */
typedef struct NativeFileId
{
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	int64		mtime_ns;
} NativeFileId;

/* One opened library, shared by the transforms that use it. */
typedef struct NativeLibrary
{
	struct NativeLibrary *next;
	char	   *realpath;		/* canonical path of the original */
	NativeFileId id;
	void	   *handle;			/* dlopen handle of the private copy */
	int			refcount;
	bool		resident;		/* cannot be unloaded: kept for reuse */
} NativeLibrary;

/* engine_state of a native transform */
typedef struct NativeState
{
	tt_transform_fn fn;
	NativeLibrary *lib;
} NativeState;

/* walk of a plugin's result */
typedef struct ResultCheck
{
	uint64		bytes;			/* estimated size so far */
	const char *problem;		/* what is wrong, NULL if nothing */
	int			sqlerrcode;
	char	   *path;			/* where, built while unwinding */
} ResultCheck;

static NativeLibrary *native_libraries = NULL;
static uint32 native_copy_counter = 0;

/*
 * SIGURG: PostgreSQL's own disposition (saved before the first dlopen), and
 * the handlers plugins' runtimes installed since, which ours calls in turn.
 */
#define NATIVE_MAX_SIGURG_HANDLERS 16
static bool sigurg_saved = false;
static struct sigaction sigurg_postgres;
static struct sigaction sigurg_plugins[NATIVE_MAX_SIGURG_HANDLERS];
static volatile sig_atomic_t sigurg_nplugins = 0;
static pid_t native_main_tid = 0;

PG_FUNCTION_INFO_V1(tt_register_native);

/* ---------------------------------------------------------------------
 * Where a library may come from
 * ---------------------------------------------------------------------
 */

/* "$libdir" at the start of a path is the server's library directory. */
static bool
expand_libdir(const char *path, char *out, size_t outlen)
{
	size_t		n;

	if (strncmp(path, "$libdir", 7) == 0 && (path[7] == '\0' || path[7] == '/'))
		n = snprintf(out, outlen, "%s%s", pkglib_path, path + 7);
	else
		n = strlcpy(out, path, outlen);
	return n < outlen;
}

/*
 * Is the directory holding real (a canonical path) one of the directories
 * of talaria.native_library_path, once each is made canonical as well?
 * Only the directories themselves count, not their subdirectories.
 */
static bool
library_dir_allowed(const char *real)
{
	char	   *dir = pstrdup(real);
	char	   *list = pstrdup(tt_native_library_path ? tt_native_library_path : "");
	char	   *entry;
	char	   *save = NULL;
	bool		ok = false;

	get_parent_directory(dir);
	for (entry = strtok_r(list, ":", &save); entry && !ok;
		 entry = strtok_r(NULL, ":", &save))
	{
		char		expanded[MAXPGPATH];
		char		canon[PATH_MAX];
		char	   *end;

		/* "$libdir: /opt/plugins" means what it says */
		while (isspace((unsigned char) *entry))
			entry++;
		end = entry + strlen(entry);
		while (end > entry && isspace((unsigned char) end[-1]))
			*--end = '\0';
		if (!expand_libdir(entry, expanded, sizeof(expanded)) ||
			!is_absolute_path(expanded) ||
			realpath(expanded, canon) == NULL)
			continue;
		ok = strcmp(canon, dir) == 0;
	}
	pfree(list);
	pfree(dir);
	return ok;
}

/*
 * Turns a library path as registered into the canonical path of an
 * existing file allowed by talaria.native_library_path, or ERRORs.
 */
static char *
resolve_library(const char *library)
{
	char		expanded[MAXPGPATH];
	char		real[PATH_MAX];
	struct stat st;

	if (!expand_libdir(library, expanded, sizeof(expanded)) ||
		!is_absolute_path(expanded))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library path \"%s\" is not absolute", library),
				 errhint("Give an absolute path, or one that starts with $libdir/.")));
	if (realpath(expanded, real) == NULL || stat(real, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not access library file \"%s\": %m", library)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" is not a regular file", library)));
	if (!library_dir_allowed(real))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("library \"%s\" is not in talaria.native_library_path",
						library),
				 errdetail("The file is \"%s\"; talaria.native_library_path is \"%s\".",
						   real, tt_native_library_path ? tt_native_library_path : ""),
				 errhint("Put the library directly into one of those directories, or have a superuser add its directory to talaria.native_library_path.")));
	return pstrdup(real);
}

/* ---------------------------------------------------------------------
 * Opening a library: identity, private copy, ABI check
 * ---------------------------------------------------------------------
 */
static NativeFileId
file_id(const struct stat *st)
{
	NativeFileId id;

	id.dev = st->st_dev;
	id.ino = st->st_ino;
	id.size = st->st_size;
	id.mtime_ns = (int64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	return id;
}

static bool
file_id_equal(const NativeFileId *a, const NativeFileId *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime_ns == b->mtime_ns;
}

/* A clear message for the common mistakes, before dlopen's terse one. */
static void
check_shared_object(int fd, const char *library)
{
#ifdef __ELF__
	unsigned char hdr[18];
	int			type;

	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t) sizeof(hdr) ||
		memcmp(hdr, "\177ELF", 4) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" is not a shared object", library),
				 errdetail("The file does not start with an ELF header."),
				 errhint("Build the plugin with cc -shared -fPIC.")));
	/* e_type, in the byte order EI_DATA names (2 = big endian) */
	type = hdr[5] == 2 ? (hdr[16] << 8 | hdr[17]) : (hdr[17] << 8 | hdr[16]);
	if (type != 3)				/* ET_DYN */
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" is not a shared object", library),
				 errdetail("It is an ELF %s.",
						   type == 1 ? "relocatable object (a .o file)" :
						   type == 2 ? "executable" : "file of another type"),
				 errhint("Build the plugin with cc -shared -fPIC.")));
#endif
}

/* ---------------------------------------------------------------------
 * Signals and plugins that bring a runtime (see the file header)
 * ---------------------------------------------------------------------
 */
static pid_t
current_tid(void)
{
#if defined(__linux__) && defined(SYS_gettid)
	return (pid_t) syscall(SYS_gettid);
#else
	return getpid();
#endif
}

static bool
is_handler_function(const struct sigaction *sa)
{
	return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

static void
call_handler(const struct sigaction *sa, int signo, siginfo_t *info, void *context)
{
	if (!is_handler_function(sa))
		return;
	if (sa->sa_flags & SA_SIGINFO)
		sa->sa_sigaction(signo, info, context);
	else
		sa->sa_handler(signo);
}

static void
native_sigurg_handler(int signo, siginfo_t *info, void *context)
{
	int			save_errno = errno;
	int			i;

	if (info != NULL && info->si_code == SI_USER)
	{
		/*
		 * kill(): a latch wakeup.  With a self-pipe PostgreSQL has a handler
		 * and any thread may run it; with a signalfd only the main thread
		 * reads SIGURG (it keeps it blocked), so a wakeup that a runtime's
		 * thread took is sent on to it.  On the main thread itself SIGURG
		 * is unblocked only while plugin code runs, not waiting on a latch:
		 * nothing to wake.
		 */
		if (is_handler_function(&sigurg_postgres))
			call_handler(&sigurg_postgres, signo, info, context);
#if defined(__linux__) && defined(SYS_tgkill)
		else if (current_tid() != native_main_tid)
			syscall(SYS_tgkill, (long) getpid(), (long) native_main_tid, (long) SIGURG);
#endif
	}
	else
	{
		/*
		 * tgkill() from a runtime (Go's preemption): each runtime's handler
		 * ignores the threads that are not its own.
		 */
		for (i = 0; i < sigurg_nplugins; i++)
			call_handler(&sigurg_plugins[i], signo, info, context);
	}
	errno = save_errno;
}

/*
 * After a dlopen: if the library took SIGURG, remember its handler and put
 * ours back in front.
 */
static void
reclaim_sigurg(void)
{
	struct sigaction now;
	struct sigaction ours;

	if (sigaction(SIGURG, NULL, &now) != 0 ||
		((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == native_sigurg_handler) ||
		(sigurg_nplugins == 0 && now.sa_handler == sigurg_postgres.sa_handler))
		return;
	if (sigurg_nplugins < NATIVE_MAX_SIGURG_HANDLERS)
	{
		sigurg_plugins[sigurg_nplugins] = now;
		/* the runtimes' threads run our handler concurrently */
		pg_write_barrier();
		sigurg_nplugins = sigurg_nplugins + 1;
	}
	else
		ereport(WARNING,
				(errmsg("more than %d native libraries installed a SIGURG handler in this backend",
						NATIVE_MAX_SIGURG_HANDLERS),
				 errdetail("The runtime of the last one loaded gets no preemption signals.")));
	memset(&ours, 0, sizeof(ours));
	ours.sa_sigaction = native_sigurg_handler;
	ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&ours.sa_mask);
	if (sigaction(SIGURG, &ours, NULL) != 0)
		elog(WARNING, "could not install the SIGURG handler: %m");
}

/*
 * dlopen with every signal blocked, so that threads a library's
 * initialisers start (a Go runtime's) block PostgreSQL's signals and leave
 * them to the main thread; then SIGURG is reclaimed.
 */
static void *
dlopen_guarded(const char *path)
{
	sigset_t	all;
	sigset_t	old;
	void	   *handle;

	if (!sigurg_saved)
	{
		if (sigaction(SIGURG, NULL, &sigurg_postgres) != 0)
		{
			memset(&sigurg_postgres, 0, sizeof(sigurg_postgres));
			sigurg_postgres.sa_handler = SIG_DFL;
		}
		native_main_tid = current_tid();
		sigurg_saved = true;
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (handle != NULL)
		reclaim_sigurg();
	return handle;
}

/*
 * Copies the open file to a private file and dlopens that.  Returns the
 * handle, or NULL with *err set; never leaves the copy behind.
 */
static void *
dlopen_private_copy(int fd, const NativeFileId *id, char **err)
{
	char		dir[MAXPGPATH];
	char		path[MAXPGPATH];
	char		buf[65536];
	int			out;
	ssize_t		n = 0;
	off_t		off = 0;
	struct stat st;
	void	   *handle;

	/* pgsql_tmp files are swept at server start, should a crash leave one */
	snprintf(dir, sizeof(dir), "%s/base/%s", DataDir, PG_TEMP_FILES_DIR);
	(void) MakePGDirectory(dir);
	snprintf(path, sizeof(path), "%s/%stalaria_native.%d.%u.so",
			 dir, PG_TEMP_FILE_PREFIX, MyProcPid, ++native_copy_counter);
	out = OpenTransientFilePerm(path, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,
								S_IRUSR | S_IWUSR);
	if (out < 0)
	{
		*err = psprintf("could not create \"%s\": %m", path);
		return NULL;
	}
	while ((n = pread(fd, buf, sizeof(buf), off)) > 0)
	{
		if (write(out, buf, n) != n)
		{
			n = -1;
			break;
		}
		off += n;
	}
	if (n < 0)
		*err = psprintf("could not copy the library to \"%s\": %m", path);
	else if (fstat(fd, &st) != 0 || off != st.st_size)
	{
		*err = pstrdup("The file changed while it was being loaded.");
		n = -1;
	}
	else
	{
		NativeFileId now = file_id(&st);

		if (!file_id_equal(&now, id))
		{
			*err = pstrdup("The file changed while it was being loaded.");
			n = -1;
		}
	}
	if (CloseTransientFile(out) != 0 && n >= 0)
	{
		*err = psprintf("could not write \"%s\": %m", path);
		n = -1;
	}
	if (n < 0)
	{
		unlink(path);
		return NULL;
	}

	handle = dlopen_guarded(path);
	if (handle == NULL)
	{
		const char *msg = dlerror();
		size_t		plen = strlen(path);

		/* dlerror names our private copy: drop that prefix */
		if (msg == NULL)
			msg = "unknown dlopen error";
		else if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
			msg += plen + 2;
		*err = pstrdup(msg);
	}
	unlink(path);
	return handle;
}

/*
 * Is addr defined by the library behind handle itself (not by one of its
 * dependencies, as dlsym would happily return libc's printf)?  Reports the
 * ELF symbol type when it can tell.
 */
static bool
symbol_in_library(void *handle, const void *addr, int *symtype)
{
	*symtype = -1;
#ifdef __GLIBC__				/* dlinfo, dladdr1; RTLD_DI_LINKMAP is an enum */
	{
		struct link_map *map = NULL;
		Dl_info		info;
		const ElfW(Sym) *sym = NULL;

		if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL ||
			dladdr1(addr, &info, (void **) &sym, RTLD_DL_SYMENT) == 0)
			return true;		/* cannot tell: let dlsym's answer stand */
		if (info.dli_fname == NULL || strcmp(info.dli_fname, map->l_name) != 0)
			return false;
		if (sym != NULL)
			*symtype = sym->st_info & 0xf;	/* ELF32_ST_TYPE == ELF64_ST_TYPE */
	}
#endif
	return true;
}

/*
 * Was the library linked so that it can never be unloaded (DF_1_NODELETE,
 * as Go marks its c-shared libraries: its runtime's threads run its code
 * until the process exits)?  dlclose would do nothing, so the handle is
 * kept for the next load of the same file instead of opening a second
 * copy, which would start a second runtime.
 */
static bool
library_is_resident(void *handle)
{
#if defined(__GLIBC__) && defined(DF_1_NODELETE)
	struct link_map *map = NULL;
	const ElfW(Dyn) *dyn;

	if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL || map->l_ld == NULL)
		return false;
	for (dyn = map->l_ld; dyn->d_tag != DT_NULL; dyn++)
	{
		if (dyn->d_tag == DT_FLAGS_1 && (dyn->d_un.d_val & DF_1_NODELETE))
			return true;
	}
#endif
	return false;
}

/* The library must carry a compatible talaria_plugin_info. */
static void
check_plugin_info(void *handle, const char *library)
{
	const tt_plugin_info *info;
	int			symtype;

	info = (const tt_plugin_info *) dlsym(handle, TT_PLUGIN_INFO_SYMBOL);
	if (info == NULL || !symbol_in_library(handle, info, &symtype) ||
		(symtype != -1 && symtype != STT_OBJECT))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" is not a talaria_transform plugin", library),
				 errdetail("It does not export the object \"%s\".",
						   TT_PLUGIN_INFO_SYMBOL),
				 errhint("Include talaria_transform.h and write TT_DECLARE_PLUGIN(); once, at file scope, in the plugin.")));
	if (info->abi_version != TT_ABI_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" was built for talaria_transform ABI version %u, but this server uses ABI version %d",
						library, info->abi_version, TT_ABI_VERSION),
				 errhint("Rebuild the plugin against the talaria_transform.h installed with this server, in $(pg_config --includedir-server)/extension/talaria_transform/.")));
	if (info->sizeof_value != sizeof(tt_value) ||
		info->sizeof_call > sizeof(tt_call) ||
		info->sizeof_host > sizeof(tt_host))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" was built with a talaria_transform.h incompatible with this server's",
						library),
				 errdetail("Plugin sizes (tt_value, tt_call, tt_host): %u, %u, %u; server sizes: %zu, %zu, %zu.",
						   info->sizeof_value, info->sizeof_call, info->sizeof_host,
						   sizeof(tt_value), sizeof(tt_call), sizeof(tt_host)),
				 errhint("Rebuild the plugin against the talaria_transform.h installed with this server, in $(pg_config --includedir-server)/extension/talaria_transform/.")));
}

/*
 * Returns the open library for a file, sharing the handle with other
 * transforms when the file has not changed; its refcount is taken.
 */
static NativeLibrary *
library_acquire(const char *library, const char *real)
{
	NativeLibrary *lib;
	struct stat st;
	NativeFileId id;
	int			fd;
	void	   *handle;
	char	   *err = NULL;

	fd = OpenTransientFile(real, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open library file \"%s\": %m", library)));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat library file \"%s\": %m", library)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("library \"%s\" is not a regular file", library)));
	id = file_id(&st);

	for (lib = native_libraries; lib != NULL; lib = lib->next)
	{
		if (file_id_equal(&lib->id, &id) && strcmp(lib->realpath, real) == 0)
		{
			CloseTransientFile(fd);
			lib->refcount++;
			return lib;
		}
	}

	check_shared_object(fd, library);
	handle = dlopen_private_copy(fd, &id, &err);
	CloseTransientFile(fd);
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not load library \"%s\"", library),
				 errdetail("%s", err)));

	PG_TRY();
	{
		check_plugin_info(handle, library);
		lib = MemoryContextAllocZero(TopMemoryContext, sizeof(NativeLibrary));
		lib->realpath = MemoryContextStrdup(TopMemoryContext, real);
	}
	PG_CATCH();
	{
		dlclose(handle);
		PG_RE_THROW();
	}
	PG_END_TRY();

	lib->id = id;
	lib->handle = handle;
	lib->refcount = 1;
	lib->resident = library_is_resident(handle);
	lib->next = native_libraries;
	native_libraries = lib;
	return lib;
}

/*
 * Drops a reference; the last one closes the library, unless it cannot be
 * unloaded.  Never ERRORs.
 */
static void
library_release(NativeLibrary *lib)
{
	NativeLibrary **p;

	if (--lib->refcount > 0 || lib->resident)
		return;
	for (p = &native_libraries; *p != NULL; p = &(*p)->next)
	{
		if (*p == lib)
		{
			*p = lib->next;
			break;
		}
	}
	dlclose(lib->handle);
	pfree(lib->realpath);
	pfree(lib);
}

static void
check_symbol_name(const char *symbol)
{
	size_t		len = strlen(symbol);
	bool		ok = len > 0 && len <= NATIVE_MAX_SYMBOL && !isdigit((unsigned char) symbol[0]);
	size_t		i;

	for (i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char) symbol[i]) || symbol[i] == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid symbol name \"%s\"", symbol),
				 errdetail("A symbol is a C identifier of 1 to %d characters.",
						   NATIVE_MAX_SYMBOL)));
}

/* The transform function: defined in the library itself, and code. */
static tt_transform_fn
find_function(NativeLibrary *lib, const char *library, const char *symbol)
{
	void	   *addr;
	int			symtype;

	check_symbol_name(symbol);
	addr = dlsym(lib->handle, symbol);
	if (addr == NULL || !symbol_in_library(lib->handle, addr, &symtype))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not find function \"%s\" in library \"%s\"",
						symbol, library),
				 errhint("The function must be defined in the library and exported: declare it with TT_TRANSFORM(%s), or as a non-static C function.",
						 symbol)));
#ifdef STT_GNU_IFUNC
	if (symtype != -1 && symtype != STT_FUNC && symtype != STT_GNU_IFUNC)
#else
	if (symtype != -1 && symtype != STT_FUNC)
#endif
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("symbol \"%s\" in library \"%s\" is not a function",
						symbol, library)));
	return (tt_transform_fn) addr;
}

/* ---------------------------------------------------------------------
 * The engine
 * ---------------------------------------------------------------------
 */
static void
load_error_context(void *arg)
{
	errcontext("loading native transform \"%s\"", (const char *) arg);
}

static void *
native_load(TTTransform *t)
{
	ErrorContextCallback errcb;
	NativeState *volatile state = NULL;
	tt_transform_fn volatile fn = NULL;
	NativeLibrary *lib;
	char	   *real;

	errcb.callback = load_error_context;
	errcb.arg = t->name;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	real = resolve_library(t->library);
	lib = library_acquire(t->library, real);
	PG_TRY();
	{
		fn = find_function(lib, t->library, t->symbol);
		state = MemoryContextAlloc(TopMemoryContext, sizeof(NativeState));
	}
	PG_CATCH();
	{
		library_release(lib);
		PG_RE_THROW();
	}
	PG_END_TRY();
	state->fn = fn;
	state->lib = lib;

	error_context_stack = errcb.previous;
	pfree(real);
	return state;
}

static void
native_unload(TTTransform *t)
{
	NativeState *state = (NativeState *) t->engine_state;

	if (state == NULL)
		return;
	library_release(state->lib);
	pfree(state);
	t->engine_state = NULL;
}

/*
 * Asked on catalog revalidation only: is the file the catalog names still
 * the one we loaded?  A missing file counts as changed, so the reload
 * reports it.
 */
static bool
native_stale(TTTransform *t)
{
	NativeState *state = (NativeState *) t->engine_state;
	char		expanded[MAXPGPATH];
	char		real[PATH_MAX];
	struct stat st;
	NativeFileId id;

	if (state == NULL || t->library == NULL ||
		!expand_libdir(t->library, expanded, sizeof(expanded)) ||
		realpath(expanded, real) == NULL ||
		strcmp(real, state->lib->realpath) != 0 ||
		stat(real, &st) != 0)
		return true;
	id = file_id(&st);
	return !file_id_equal(&id, &state->lib->id);
}

/* ---------------------------------------------------------------------
 * Checking what a plugin returned
 * ---------------------------------------------------------------------
 */
static bool
result_fail(ResultCheck *rc, int sqlerrcode, const char *problem)
{
	rc->problem = problem;
	rc->sqlerrcode = sqlerrcode;
	return false;
}

/*
 * The text itself (encoding, NUL bytes) is verified where it is consumed,
 * by the jsonb writer and the column conversion, once.
 */
static inline bool
check_str(ResultCheck *rc, const tt_str *s, const char *what)
{
	if (s->len > NATIVE_MAX_BYTES)
		return result_fail(rc, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
						   psprintf("a %s of %u bytes is longer than the limit of %u bytes",
									what, s->len, (uint32) NATIVE_MAX_BYTES));
	if (s->len > 0 && s->ptr == NULL)
		return result_fail(rc, ERRCODE_DATA_EXCEPTION,
						   psprintf("a %s has a NULL pointer", what));
	rc->bytes += s->len;
	return true;
}

/* Prepends where the bad value sits: .key or [index]. */
static void
result_path_key(ResultCheck *rc, const tt_str *key, uint32 index)
{
	bool		plain = key->ptr != NULL && key->len > 0 && key->len <= 64;
	uint32		i;

	for (i = 0; plain && i < key->len; i++)
		plain = isalnum((unsigned char) key->ptr[i]) || key->ptr[i] == '_' ||
			key->ptr[i] == '-';
	if (plain)
		rc->path = psprintf(".%.*s%s", (int) key->len, key->ptr, rc->path);
	else
		rc->path = psprintf(".<member %u>%s", index, rc->path);
}

static bool check_value(ResultCheck *rc, const tt_value *v, int depth);

static inline bool
result_too_large(ResultCheck *rc)
{
	return result_fail(rc, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
					   psprintf("the result is larger than the limit of %u bytes",
								(uint32) NATIVE_MAX_BYTES));
}

/* A value that is no object or array, at a depth within the limit. */
static inline bool
check_leaf(ResultCheck *rc, const tt_value *v)
{
	rc->bytes += sizeof(tt_value);
	switch (v->type)
	{
		case TT_NULL:
		case TT_BOOL:
		case TT_INT:
			break;
		case TT_FLOAT:
			if (isnan(v->u.f) || isinf(v->u.f))
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   "a float is NaN or infinite");
			break;
		case TT_NUMERIC:
			if (v->u.str.len == 0)
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   "a numeric is empty");
			return check_str(rc, &v->u.str, "numeric");
		case TT_STRING:
			return check_str(rc, &v->u.str, "string");
		case TT_TIMESTAMP:
			if (v->u.ts < MIN_UNIX_USEC)
				return result_fail(rc, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
								   "a timestamp is out of range");
			break;
		default:
			return result_fail(rc, ERRCODE_DATA_EXCEPTION,
							   psprintf("unknown type tag %u", v->type));
	}
	if (rc->bytes > NATIVE_MAX_BYTES)
		return result_too_large(rc);
	return true;
}

/* A member or item at depth: leaves are checked without a call. */
static inline bool
check_child(ResultCheck *rc, const tt_value *v, int depth)
{
	if (v->type == TT_OBJECT || v->type == TT_ARRAY || depth > NATIVE_MAX_DEPTH)
		return check_value(rc, v, depth);
	return check_leaf(rc, v);
}

static bool
check_value(ResultCheck *rc, const tt_value *v, int depth)
{
	uint32		i;

	if (depth > NATIVE_MAX_DEPTH)
	{
		rc->bytes += sizeof(tt_value);
		return result_fail(rc, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
						   psprintf("values are nested more than %d levels deep",
									NATIVE_MAX_DEPTH));
	}
	switch (v->type)
	{
		case TT_OBJECT:
			rc->bytes += sizeof(tt_value);
			if (v->u.obj.count > 0 && v->u.obj.members == NULL)
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   "an object has a NULL member array");
			if (v->u.obj.count > v->u.obj.cap)
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   psprintf("an object has %u members but room for %u (count > cap)",
											v->u.obj.count, v->u.obj.cap));
			for (i = 0; i < v->u.obj.count; i++)
			{
				const tt_member *m = &v->u.obj.members[i];

				if (!check_str(rc, &m->key, "key") ||
					!check_child(rc, &m->value, depth + 1))
				{
					result_path_key(rc, &m->key, i);
					return false;
				}
				if (rc->bytes > NATIVE_MAX_BYTES)
					break;
			}
			break;
		case TT_ARRAY:
			rc->bytes += sizeof(tt_value);
			if (v->u.arr.count > 0 && v->u.arr.items == NULL)
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   "an array has a NULL item array");
			if (v->u.arr.count > v->u.arr.cap)
				return result_fail(rc, ERRCODE_DATA_EXCEPTION,
								   psprintf("an array has %u items but room for %u (count > cap)",
											v->u.arr.count, v->u.arr.cap));
			for (i = 0; i < v->u.arr.count; i++)
			{
				if (!check_child(rc, &v->u.arr.items[i], depth + 1))
				{
					rc->path = psprintf("[%u]%s", i, rc->path);
					return false;
				}
				if (rc->bytes > NATIVE_MAX_BYTES)
					break;
			}
			break;
		default:
			return check_leaf(rc, v);
	}
	if (rc->bytes > NATIVE_MAX_BYTES)
		return result_too_large(rc);
	return true;
}

static int
native_call(TTTransform *t, tt_call *call)
{
	NativeState *state = (NativeState *) t->engine_state;
	TTCallPrivate *priv = (TTCallPrivate *) call->host_private;
	TTMemBudget budget;
	ResultCheck rc;
	int			status;

	/* the arena is capped: past the cap host->alloc returns NULL */
	budget.used = 0;
	budget.limit = (size_t) tt_native_memory_limit_kb * 1024;
	tt_mem_hit = TT_MEM_HIT_NONE;
	priv->budget = &budget;
	status = state->fn(call);
	tt_mem_uncharge(&budget, budget.used);
	priv->budget = NULL;
	priv->charged = 0;
	/*
	 * A cancel during the call (a plugin that saw host->interrupted fails
	 * its row): the statement ends here, never as a dead letter.
	 */
	CHECK_FOR_INTERRUPTS();
	if (priv->oom)
	{
		/* the header's promise: on a NULL from the arena, just fail */
		const char *limit = tt_mem_limit_text("talaria.native_memory_limit",
											  tt_native_memory_limit_kb);

		if (status == TT_ERROR && priv->errmsg != NULL)
			priv->errmsg = psprintf("%s (out of memory in the per-row arena: %s)",
									priv->errmsg, limit);
		else
			priv->errmsg = psprintf("out of memory in the per-row arena (%s)", limit);
		priv->sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		return TT_ERROR;
	}
	if (status != TT_OK || call->result == NULL)
		return status;			/* transform.c reports these */

	rc.bytes = 0;
	rc.problem = NULL;
	rc.path = "";
	if (check_value(&rc, call->result, 0))
		return TT_OK;
	if (strlen(rc.path) > 120)	/* a cycle: keep both ends */
		rc.path = psprintf("%.60s...%s", rc.path, rc.path + strlen(rc.path) - 40);
	priv->errmsg = psprintf("returned an invalid value at $%s: %s",
							rc.path, rc.problem);
	priv->sqlerrcode = rc.sqlerrcode;
	return TT_ERROR;
}

const TTEngine tt_native_engine = {
	.kind = "native",
	.load = native_load,
	.call = native_call,
	.unload = native_unload,
	.stale = native_stale,
};

/* ---------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------
 */

/*
 * Everything a load will check, done now so that a registration that
 * cannot run is refused and nothing is stored.
 */
void
tt_native_check_library(const char *name, const char *library,
						const char *symbol)
{
	char	   *real = resolve_library(library);
	NativeLibrary *lib = library_acquire(library, real);

	PG_TRY();
	{
		find_function(lib, library, symbol);
	}
	PG_FINALLY();
	{
		library_release(lib);
	}
	PG_END_TRY();
	pfree(real);
}

Datum
tt_register_native(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *library;
	char	   *symbol;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform name, library and symbol must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	library = text_to_cstring(PG_GETARG_TEXT_PP(1));
	symbol = text_to_cstring(PG_GETARG_TEXT_PP(2));

	tt_validate_name(name);
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to register native transform \"%s\"",
						name),
				 errdetail("Native code runs inside the server with all of its rights.")));
	tt_native_check_library(name, library, symbol);
	tt_catalog_upsert(name, "native", NULL, library, symbol);
	PG_RETURN_VOID();
}
