/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The transform catalog (talaria.transforms): registration, ownership
 *	  checks, lookups and cache invalidation.
 *
 * The catalog is a plain table that PUBLIC can read but not write.  The
 * registration functions check the caller's rights themselves and then
 * write as the table's owner, in a security-restricted operation with a
 * fixed search_path (security.c).  A transform has an owner and an ACL
 * (talaria.grant_transform): only roles it was granted to may run it or
 * attach it; one that pipelines or computed columns use is not dropped
 * unless asked to cascade.  A statement trigger on the table sends a
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
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
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
#define Anum_tt_acl		9

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

/*
 * The OID of the talaria catalog table talaria.<name>: InvalidOid when it
 * is missing and missing_ok (an extension not yet updated to this
 * library's version), else an ERROR saying the extension is missing.
 */
Oid
tt_catalog_relid(const char *name, bool missing_ok)
{
	Oid			nsp = get_namespace_oid(TT_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"talaria_transform\" is not installed in this database"),
				 errdetail("Table talaria.%s is missing.", name),
				 errhint("Run CREATE EXTENSION talaria_transform, or ALTER EXTENSION talaria_transform UPDATE.")));
	return relid;
}

static Oid
transforms_relid(void)
{
	if (!OidIsValid(tt_transforms_relid))
		tt_transforms_relid = tt_catalog_relid(TT_CATALOG_TABLE, false);
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
tt_catalog_fetch(const char *name, TTCatalogRow *row)
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
		bool		isnull;
		Datum		d;

		found = true;
		row->kind = (k && strcmp(k, "native") == 0) ? 'n' :
			(k && strcmp(k, "builtin") == 0) ? 'b' : 'l';
		row->source = text_attr(tup, desc, Anum_tt_source);
		row->library = text_attr(tup, desc, Anum_tt_library);
		row->symbol = text_attr(tup, desc, Anum_tt_symbol);
		row->owner = DatumGetObjectId(heap_getattr(tup, Anum_tt_owner, desc, &isnull));
		row->acl = NULL;
		if (desc->natts >= Anum_tt_acl)
		{
			d = heap_getattr(tup, Anum_tt_acl, desc, &isnull);
			if (!isnull)
			{
				row->acl = DatumGetAclPCopy(d);
				if (ARR_NDIM(row->acl) != 1)
					row->acl = NULL;	/* empty: nobody else */
			}
		}
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * May role use (run, attach to a pipeline or computed column) a transform
 * with this owner and ACL?  Its owner (and members), superusers, and the
 * roles it was granted to (talaria.grant_transform), as EXECUTE on a
 * function, except that a new transform is not granted to PUBLIC.
 */
bool
tt_transform_usable(Oid role, Oid owner, Acl *acl)
{
	if (has_privs_of_role(role, owner))
		return true;
	return acl != NULL &&
		aclmask(acl, role, owner, ACL_EXECUTE, ACLMASK_ANY) != 0;
}

void
tt_check_transform_use(const char *name, Oid role, Oid owner, Acl *acl)
{
	if (!tt_transform_usable(role, owner, acl))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for transform \"%s\"", name),
				 errdetail("Role \"%s\" may not use transform \"%s\" of role \"%s\".",
						   GetUserNameFromId(role, false), name,
						   GetUserNameFromId(owner, false)),
				 errhint("Its owner can run talaria.grant_transform('%s', '%s').",
						 name, GetUserNameFromId(role, false))));
}

/* Owner (or a member of the owning role) or superuser may change it. */
static void
check_owner(const char *name, Oid owner, Oid caller)
{
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of transform \"%s\"", name),
				 errdetail("Transform \"%s\" belongs to role \"%s\".",
						   name, GetUserNameFromId(owner, false))));
}

/*
 * Catalog writes run as the catalogs' owner in a restricted operation with
 * a fixed search_path (security.c), through SPI; every statement below
 * also names its operators and functions by schema.
 */
void
tt_catalog_begin(TTPrivileged *priv)
{
	tt_privileged_begin(priv, tt_relation_owner(transforms_relid()));
	SPI_connect();
}

void
tt_catalog_end(TTPrivileged *priv)
{
	SPI_finish();
	tt_privileged_end(priv);
}

/* One statement inside tt_catalog_begin/end; returns the rows processed. */
uint64
tt_catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *args,
				const char *nulls, int expected)
{
	int			ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls,
											false, 0);

	if (ret != expected)
		elog(ERROR, "talaria catalog statement failed (%s): %s",
			 SPI_result_code_string(ret), sql);
	return SPI_processed;
}

/*
 * Locks the row of an existing transform and checks the caller may change
 * it.  Returns false if there is no such transform.  Inside
 * tt_catalog_begin/end.
 */
static bool
lock_and_check(const char *name, Oid caller)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Oid			owner;
	char	   *kind;

	args[0] = CStringGetTextDatum(name);
	if (tt_catalog_exec("SELECT owner, kind FROM talaria.transforms"
						" WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
						1, argtypes, args, NULL, SPI_OK_SELECT) == 0)
		return false;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (kind && strcmp(kind, "builtin") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("transform \"%s\" is built in", name),
				 errdetail("Built-in transforms come with the extension: every role may use them, and nobody replaces, drops or regrants them.")));
	check_owner(name, owner, caller);
	return true;
}

/*
 * Creates or replaces a catalog row.  The caller has validated the name
 * and compiled or opened the transform.  A new transform belongs to the
 * caller and is usable by its owner only; replacing one keeps its owner
 * and grants.
 */
void
tt_catalog_upsert(const char *name, const char *kind, const char *source,
				  const char *library, const char *symbol)
{
	Oid			caller = GetUserId();
	TTPrivileged priv;
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

	tt_catalog_begin(&priv);
	if (tt_catalog_exec("INSERT INTO talaria.transforms "
						"(name, kind, source, library, symbol, owner, created_at, updated_at) "
						"VALUES ($1, $2, $3, $4, $5, $6, pg_catalog.now(), pg_catalog.now()) "
						"ON CONFLICT (name) DO NOTHING",
						6, argtypes, args, nulls, SPI_OK_INSERT) == 0)
	{
		if (!lock_and_check(name, caller))
			elog(ERROR, "transform \"%s\" vanished during registration", name);
		(void) tt_catalog_exec("UPDATE talaria.transforms SET kind = $2, "
							   "source = $3, library = $4, symbol = $5, "
							   "updated_at = pg_catalog.now() "
							   "WHERE name OPERATOR(pg_catalog.=) $1",
							   5, argtypes, args, nulls, SPI_OK_UPDATE);
	}
	tt_catalog_end(&priv);
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

/* ---------------------------------------------------------------------
 * What uses a transform: pipeline triggers and computed columns
 * ---------------------------------------------------------------------
 */

/* talaria.ingest()'s OID, by its qualified name */
static Oid
ingest_function_oid(void)
{
	return LookupFuncName(list_make2(makeString(TT_SCHEMA), makeString("ingest")),
						  0, NULL, false);
}

/* The first argument of a trigger tuple (tgargs is NUL-separated). */
static char *
trigger_first_arg(HeapTuple tup, TupleDesc desc)
{
	Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
	bool		isnull;
	Datum		d;
	bytea	   *ba;

	if (trig->tgnargs < 1)
		return NULL;
	d = heap_getattr(tup, Anum_pg_trigger_tgargs, desc, &isnull);
	if (isnull)
		return NULL;
	ba = DatumGetByteaPP(d);
	return pnstrdup(VARDATA_ANY(ba), strnlen(VARDATA_ANY(ba), VARSIZE_ANY_EXHDR(ba)));
}

/*
 * The pipeline triggers (any trigger calling talaria.ingest, made by
 * create_pipeline or by hand) whose transform is name: their OIDs.
 */
static List *
pipeline_triggers_using(const char *name)
{
	Oid			ingest = ingest_function_oid();
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	List	   *result = NIL;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
		char	   *arg;

		if (trig->tgfoid != ingest)
			continue;
		arg = trigger_first_arg(tup, RelationGetDescr(rel));
		if (arg && strcmp(arg, name) == 0)
			result = lappend_oid(result, trig->oid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

static char *
trigger_description(Oid trigoid)
{
	ObjectAddress addr;

	ObjectAddressSet(addr, TriggerRelationId, trigoid);
	return getObjectDescription(&addr, false);
}

/* The table a trigger is on. */
static Oid
get_trigger_relid(Oid trigoid)
{
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/*
 * drop_transform's dependency check: refuses when pipelines or computed
 * columns use the transform, or with cascade drops them (their triggers
 * as DROP ... CASCADE drops dependent triggers, whoever owns the table).
 * Inside tt_catalog_begin/end.
 */
static void
drop_dependents(const char *name, bool cascade)
{
	List	   *trigs = pipeline_triggers_using(name);
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	StringInfoData detail;
	uint64		ncols;
	uint64		i;
	ListCell   *lc;

	args[0] = CStringGetTextDatum(name);
	ncols = tt_catalog_exec("SELECT pg_catalog.format('computed column %s.%I', target, column_name)"
							" FROM talaria.computed_columns"
							" WHERE transform OPERATOR(pg_catalog.=) $1 ORDER BY 1",
							1, argtypes, args, NULL, SPI_OK_SELECT);
	if (trigs == NIL && ncols == 0)
		return;

	initStringInfo(&detail);
	foreach(lc, trigs)
		appendStringInfo(&detail, "%s%s uses transform \"%s\"",
						 detail.len ? "\n" : "",
						 trigger_description(lfirst_oid(lc)), name);
	for (i = 0; i < ncols; i++)
		appendStringInfo(&detail, "%s%s uses transform \"%s\"",
						 detail.len ? "\n" : "",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						 name);
	if (!cascade)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop transform \"%s\" because other objects depend on it",
						name),
				 errdetail("%s", detail.data),
				 errhint("Use talaria.drop_transform('%s', cascade => true) to drop the dependent objects too.",
						 name)));
	ereport(NOTICE,
			(errmsg("drop cascades to %d other object%s",
					list_length(trigs) + (int) ncols,
					list_length(trigs) + ncols == 1 ? "" : "s"),
			 errdetail("%s", detail.data)));
	foreach(lc, trigs)
	{
		ObjectAddress addr;
		Oid			relid = get_trigger_relid(lfirst_oid(lc));
		Oid			guard;

		ObjectAddressSet(addr, TriggerRelationId, lfirst_oid(lc));
		performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
		/* the pipeline is gone: so is its source's guard constraint */
		guard = get_relation_constraint_oid(relid, "talaria_pipeline_source", true);
		if (OidIsValid(guard))
		{
			ObjectAddressSet(addr, ConstraintRelationId, guard);
			performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
		}
	}
	(void) tt_catalog_exec("DELETE FROM talaria.pipelines"
						   " WHERE transform OPERATOR(pg_catalog.=) $1",
						   1, argtypes, args, NULL, SPI_OK_DELETE);
	(void) tt_catalog_exec("DELETE FROM talaria.computed_columns"
						   " WHERE transform OPERATOR(pg_catalog.=) $1",
						   1, argtypes, args, NULL, SPI_OK_DELETE);
}

Datum
tt_drop_transform(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	TTPrivileged priv;
	char	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform name and cascade must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args[0] = CStringGetTextDatum(name);

	tt_catalog_begin(&priv);
	if (!lock_and_check(name, caller))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	drop_dependents(name, PG_GETARG_BOOL(1));
	(void) tt_catalog_exec("DELETE FROM talaria.transforms"
						   " WHERE name OPERATOR(pg_catalog.=) $1",
						   1, argtypes, args, NULL, SPI_OK_DELETE);
	tt_catalog_end(&priv);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Privileges: talaria.grant_transform / revoke_transform
 * ---------------------------------------------------------------------
 */

/* A role name, or PUBLIC (any case), to its OID (ACL_ID_PUBLIC for it). */
static Oid
grantee_oid(const char *role)
{
	if (pg_strcasecmp(role, "public") == 0)
		return ACL_ID_PUBLIC;
	return get_role_oid(role, false);
}

/*
 * Grants (or revokes) the use of a transform: running it with
 * transform_row and attaching it to pipelines and computed columns.  Only
 * its owner may; the ACL item's grantor is the owner.
 */
static void
change_grant(FunctionCallInfo fcinfo, bool grant)
{
	Oid			caller = GetUserId();
	TTPrivileged priv;
	char	   *name;
	Oid			grantee;
	Oid			owner;
	bool		isnull;
	Oid			argtypes[3] = {TEXTOID, OIDOID, OIDOID};
	Datum		args[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("transform name and role must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	grantee = grantee_oid(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	args[0] = CStringGetTextDatum(name);
	args[2] = ObjectIdGetDatum(grantee);

	tt_catalog_begin(&priv);
	if (!lock_and_check(name, caller))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	args[1] = ObjectIdGetDatum(owner);
	(void) tt_catalog_exec(grant ?
						   "UPDATE talaria.transforms SET acl = pg_catalog.array_append("
						   "pg_catalog.array_remove(COALESCE(acl, '{}'::pg_catalog.aclitem[]), "
						   "pg_catalog.makeaclitem($3, $2, 'EXECUTE', false)), "
						   "pg_catalog.makeaclitem($3, $2, 'EXECUTE', false)) "
						   "WHERE name OPERATOR(pg_catalog.=) $1" :
						   "UPDATE talaria.transforms SET acl = NULLIF(pg_catalog.array_remove(acl, "
						   "pg_catalog.makeaclitem($3, $2, 'EXECUTE', false)), '{}') "
						   "WHERE name OPERATOR(pg_catalog.=) $1",
						   3, argtypes, args, NULL, SPI_OK_UPDATE);
	tt_catalog_end(&priv);
}

PG_FUNCTION_INFO_V1(tt_grant_transform);
PG_FUNCTION_INFO_V1(tt_revoke_transform);
PG_FUNCTION_INFO_V1(tt_has_transform_privilege);

Datum
tt_grant_transform(PG_FUNCTION_ARGS)
{
	change_grant(fcinfo, true);
	PG_RETURN_VOID();
}

Datum
tt_revoke_transform(PG_FUNCTION_ARGS)
{
	change_grant(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * talaria.has_transform_privilege(role regrole, transform text): may role
 * use the transform?  NULL if there is no such transform.
 */
Datum
tt_has_transform_privilege(PG_FUNCTION_ARGS)
{
	TTCatalogRow row;
	char	   *name;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!tt_catalog_fetch(name, &row))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(tt_transform_usable(PG_GETARG_OID(0), row.owner, row.acl));
}

/*
 * talaria.add_computed_column(target, column, transform [, type, on_error,
 * rounding]): validated by talaria._validate_computed_column (as the
 * caller, who must own the table; with a type it adds a missing column);
 * the table's owner must be allowed to use the transform.  The 0.2.0
 * definition (three arguments) still calls this with the defaults.
 */
PG_FUNCTION_INFO_V1(tt_add_computed_column);

Datum
tt_add_computed_column(PG_FUNCTION_ARGS)
{
	Oid			argtypes[6] = {REGCLASSOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[6];
	bool		nulls[6] = {false, false, false, true, false, false};
	TTCatalogRow row;
	TTPrivileged priv;
	char	   *name;
	bool		typed = PG_NARGS() >= 6;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target, column and transform must not be null")));
	if (typed && (PG_ARGISNULL(4) || PG_ARGISNULL(5)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("on_error and rounding of computed column \"%s\" must not be null",
						NameStr(*PG_GETARG_NAME(1)))));
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = typed && !PG_ARGISNULL(3) ? PG_GETARG_DATUM(3) : (Datum) 0;
	nulls[3] = !(typed && !PG_ARGISNULL(3));
	args[4] = typed ? PG_GETARG_DATUM(4) : CStringGetTextDatum("pipeline");
	args[5] = typed ? PG_GETARG_DATUM(5) : CStringGetTextDatum("error");
	if (typed)
		(void) tt_call_internal("_validate_computed_column", 6, argtypes, args, nulls);
	else
		(void) tt_call_internal("_validate_computed_column", 3, argtypes, args, NULL);
	name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!tt_catalog_fetch(name, &row))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	tt_check_transform_use(name, tt_relation_owner(DatumGetObjectId(args[0])),
						   row.owner, row.acl);
	tt_catalog_begin(&priv);
	if (typed)
		(void) tt_catalog_exec("INSERT INTO talaria.computed_columns"
							   " (target, column_name, transform, on_error, rounding)"
							   " VALUES ($1, $2, $3, $5, $6)"
							   " ON CONFLICT ON CONSTRAINT computed_columns_pkey DO UPDATE"
							   " SET transform = EXCLUDED.transform, on_error = EXCLUDED.on_error,"
							   " rounding = EXCLUDED.rounding",
							   6, argtypes, args, "   n  ", SPI_OK_INSERT);
	else
		(void) tt_catalog_exec("INSERT INTO talaria.computed_columns VALUES ($1, $2, $3)"
							   " ON CONFLICT ON CONSTRAINT computed_columns_pkey DO UPDATE"
							   " SET transform = EXCLUDED.transform",
							   3, argtypes, args, NULL, SPI_OK_INSERT);
	tt_catalog_end(&priv);
	PG_RETURN_VOID();
}

/*
 * talaria._record_pipeline(source, target, transform, on_error): records
 * the pipeline create_pipeline has just made.  The caller must own both
 * tables, the source must carry a talaria.ingest trigger for this
 * transform, and the source's owner must be allowed to use it.
 */
PG_FUNCTION_INFO_V1(tt_record_pipeline);
PG_FUNCTION_INFO_V1(tt_forget_pipeline);

Datum
tt_record_pipeline(PG_FUNCTION_ARGS)
{
	Oid			source = PG_GETARG_OID(0);
	Oid			target = PG_GETARG_OID(1);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Oid			argtypes[5] = {REGCLASSOID, REGCLASSOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	TTCatalogRow row;
	TTPrivileged priv;
	List	   *trigs;
	ListCell   *lc;
	bool		found = false;

	tt_check_table_owner(source);
	tt_check_table_owner(target);
	tt_citus_guard(source, "pipeline source");
	tt_citus_guard(target, "pipeline target");
	trigs = pipeline_triggers_using(name);
	foreach(lc, trigs)
		found |= get_trigger_relid(lfirst_oid(lc)) == source;
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has no pipeline trigger for transform \"%s\"",
						tt_rel_name(source), name)));
	if (!tt_catalog_fetch(name, &row))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("transform \"%s\" does not exist", name)));
	tt_check_transform_use(name, tt_relation_owner(source), row.owner, row.acl);
	args[0] = ObjectIdGetDatum(source);
	args[1] = ObjectIdGetDatum(target);
	args[2] = PG_GETARG_DATUM(2);
	args[3] = PG_GETARG_DATUM(3);
	tt_catalog_begin(&priv);
	if (PG_NARGS() >= 5)
	{
		/* 0.3.0: and whether result keys that name no column are ignored */
		args[4] = PG_GETARG_DATUM(4);
		(void) tt_catalog_exec("INSERT INTO talaria.pipelines"
							   " (source, target, transform, on_error, unknown_keys)"
							   " VALUES ($1, $2, $3, $4, $5)"
							   " ON CONFLICT ON CONSTRAINT pipelines_pkey DO UPDATE"
							   " SET target = EXCLUDED.target, transform = EXCLUDED.transform,"
							   " on_error = EXCLUDED.on_error, unknown_keys = EXCLUDED.unknown_keys",
							   5, argtypes, args, NULL, SPI_OK_INSERT);
	}
	else
		(void) tt_catalog_exec("INSERT INTO talaria.pipelines VALUES ($1, $2, $3, $4)"
							   " ON CONFLICT ON CONSTRAINT pipelines_pkey DO UPDATE"
							   " SET target = EXCLUDED.target, transform = EXCLUDED.transform,"
							   " on_error = EXCLUDED.on_error",
							   4, argtypes, args, NULL, SPI_OK_INSERT);
	tt_catalog_end(&priv);
	PG_RETURN_VOID();
}

/* talaria._forget_pipeline(source): the caller must own the source. */
Datum
tt_forget_pipeline(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		args[1];
	TTPrivileged priv;

	tt_check_table_owner(PG_GETARG_OID(0));
	args[0] = PG_GETARG_DATUM(0);
	tt_catalog_begin(&priv);
	(void) tt_catalog_exec("DELETE FROM talaria.pipelines WHERE source OPERATOR(pg_catalog.=) $1",
						   1, argtypes, args, NULL, SPI_OK_DELETE);
	tt_catalog_end(&priv);
	PG_RETURN_VOID();
}

/*
 * Statement trigger on talaria.transforms and the pipeline catalogs
 * (pipeline_cache.c): tell every backend.
 */
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
