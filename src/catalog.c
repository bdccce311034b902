/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The transform catalog (talaria.transforms): registration, ownership
 *	  checks, lookups and cache invalidation.
 *
 * The catalog is a plain table that PUBLIC can read but not write.  The
 * registration functions check the caller's rights themselves and then
 * write as the table's owner.  A statement trigger on the table sends a
 * relcache invalidation for it, which PostgreSQL delivers transactionally:
 * to this backend at the next command, to the others only after commit,
 * and undone on rollback.  Receiving one bumps tt_catalog_generation; the
 * transform cache (transform.c) revalidates lazily against that number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "talaria.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* column numbers of talaria.transforms, fixed by the install script */
#define Anum_tt_name	1
#define Anum_tt_kind	2
#define Anum_tt_source	3
#define Anum_tt_library 4
#define Anum_tt_symbol	5
#define Anum_tt_owner	6

uint64		tt_catalog_generation = 1;
static Oid	tt_transforms_relid = InvalidOid;

PG_FUNCTION_INFO_V1(tt_register_lua);
PG_FUNCTION_INFO_V1(tt_drop_transform);
PG_FUNCTION_INFO_V1(tt_transforms_changed);

static void
relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tt_transforms_relid)
	{
		tt_catalog_generation++;
		tt_transforms_relid = InvalidOid;	/* may have been dropped */
	}
}

void
tt_catalog_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

static Oid
transforms_relid(void)
{
	if (!OidIsValid(tt_transforms_relid))
	{
		Oid			nsp = get_namespace_oid(TT_SCHEMA, true);

		if (OidIsValid(nsp))
			tt_transforms_relid = get_relname_relid(TT_CATALOG_TABLE, nsp);
		if (!OidIsValid(tt_transforms_relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"talaria_transform\" is not installed in this database"),
					 errhint("Run CREATE EXTENSION talaria_transform.")));
	}
	return tt_transforms_relid;
}

static inline bool
name_char_ok(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '.' || c == '-');
}

void
tt_validate_name(const char *name)
{
	size_t		len = strlen(name);
	size_t		i;
	bool		ok = len > 0 && len <= TT_NAME_MAXLEN;

	for (i = 0; ok && i < len; i++)
		ok = name_char_ok(name[i], i == 0);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid transform name \"%s\"", name),
				 errdetail("A transform name has 1 to %d characters: letters, digits, \"_\", \".\" and \"-\", starting with a letter or \"_\".",
						   TT_NAME_MAXLEN)));
}

static char *
text_attr(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Reads one catalog row with the latest snapshot (registrations behave
 * like DDL: committed ones are seen even inside an older snapshot), or in
 * parallel mode with the statement's.
 * Results are palloc'd in the current context.
 */
bool
tt_catalog_fetch(const char *name, char *kind, char **source,
				 char **library, char **symbol)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	bool		found = false;

	rel = table_open(transforms_relid(), AccessShareLock);

	/*
	 * In parallel mode (transform_row above a Gather: it is parallel
	 * restricted, so it runs in the leader) no new snapshot may be taken;
	 * the statement's own sees every registration committed before it.
	 */
	if (IsInParallelMode() && ActiveSnapshotSet())
		snap = RegisterSnapshot(GetActiveSnapshot());
	else
		snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, Anum_tt_name, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true,
							  snap, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		char	   *k = text_attr(tup, desc, Anum_tt_kind);

		found = true;
		*kind = (k && strcmp(k, "native") == 0) ? 'n' : 'l';
		*source = text_attr(tup, desc, Anum_tt_source);
		*library = text_attr(tup, desc, Anum_tt_library);
		*symbol = text_attr(tup, desc, Anum_tt_symbol);
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

static Oid
table_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Owner (or a member of the owning role) or superuser may change it. */
static void
check_owner(const char *name, Oid owner, Oid caller)
{
	if (!superuser_arg(caller) && !has_privs_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of transform \"%s\"", name),
				 errdetail("Transform \"%s\" belongs to role \"%s\".",
						   name, GetUserNameFromId(owner, false))));
}

/*
 * Locks the row of an existing transform and checks the caller may change
 * it.  Returns false if there is no such transform.  Runs under SPI.
 */
static bool
lock_and_check(const char *name, Oid caller)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Oid			owner;

	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args("SELECT owner FROM talaria.transforms WHERE name = $1 FOR UPDATE",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read talaria.transforms");
	if (SPI_processed == 0)
		return false;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	check_owner(name, owner, caller);
	return true;
}

/*
 * Creates or replaces a catalog row.  The caller has validated the name
 * and compiled or opened the transform.
 */
void
tt_catalog_upsert(const char *name, const char *kind, const char *source,
				  const char *library, const char *symbol)
{
	Oid			caller = GetUserId();
	Oid			relid = transforms_relid();
	Oid			save_userid;
	int			save_sec;
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, REGROLEOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(kind);
	args[2] = source ? CStringGetTextDatum(source) : (Datum) 0;
	args[3] = library ? CStringGetTextDatum(library) : (Datum) 0;
	args[4] = symbol ? CStringGetTextDatum(symbol) : (Datum) 0;
	args[5] = ObjectIdGetDatum(caller);
	nulls[2] = source ? ' ' : 'n';
	nulls[3] = library ? ' ' : 'n';
	nulls[4] = symbol ? ' ' : 'n';

	/* write as the catalog's owner; an error restores the user on abort */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(table_owner(relid),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO talaria.transforms "
							  "(name, kind, source, library, symbol, owner) "
							  "VALUES ($1, $2, $3, $4, $5, $6) "
							  "ON CONFLICT (name) DO NOTHING",
							  6, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into talaria.transforms");
	if (SPI_processed == 0)
	{
		if (!lock_and_check(name, caller))
			elog(ERROR, "transform \"%s\" vanished during registration", name);
		if (SPI_execute_with_args("UPDATE talaria.transforms SET kind = $2, "
								  "source = $3, library = $4, symbol = $5, "
								  "updated_at = pg_catalog.now() WHERE name = $1",
								  5, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update talaria.transforms");
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}

Datum
tt_register_lua(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *source;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform name and source must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	tt_validate_name(name);
	tt_lua_check_source(name, source);
	tt_catalog_upsert(name, "lua", source, NULL, NULL);
	PG_RETURN_VOID();
}

Datum
tt_drop_transform(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			save_userid;
	int			save_sec;
	char	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform name must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args[0] = CStringGetTextDatum(name);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(table_owner(transforms_relid()),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	if (!lock_and_check(name, caller))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	if (SPI_execute_with_args("DELETE FROM talaria.transforms WHERE name = $1",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from talaria.transforms");
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_VOID();
}

/* Statement trigger on talaria.transforms: tell every backend. */
Datum
tt_transforms_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria._transforms_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	PG_RETURN_POINTER(NULL);
}
