/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Running privileged work safely: as another role, in a
 *	  security-restricted operation, with a fixed search_path.
 *
 * Every path that acts with rights other than the caller's goes through
 * tt_privileged_begin/end:
 *
 *	- the catalog writers (catalog.c) act as the owner of the talaria
 *	  catalog tables: the caller's search_path, operators, functions and
 *	  casts must not reach that SQL;
 *	- work on a user's table (partition creation, premake, retention: the
 *	  ingest trigger, the partition worker, create_time_table and
 *	  run_maintenance) acts as that table's owner, whoever asked for it,
 *	  as autovacuum, REINDEX and REFRESH MATERIALIZED VIEW do: the owner's
 *	  own code (CHECK constraints, defaults, index expressions, generated
 *	  columns) then never runs with rights the owner lacks.
 *
 * Both switch the user id with SECURITY_RESTRICTED_OPERATION (no SET
 * ROLE, no temporary objects, no session state that outlives the work),
 * open a GUC nest level and set search_path to pg_catalog, pg_temp for
 * the duration, so that unqualified names resolve to the system's objects
 * only (PostgreSQL never looks functions or operators up in pg_temp).  An
 * error unwinds all of it with the (sub)transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "talaria.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#define TT_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

void
tt_privileged_begin(TTPrivileged *p, Oid role)
{
	GetUserIdAndSecContext(&p->save_userid, &p->save_sec);
	SetUserIdAndSecContext(OidIsValid(role) ? role : p->save_userid,
						   p->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	p->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", TT_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
tt_privileged_end(TTPrivileged *p)
{
	/*
	 * Roll back every setting changed inside, ours and any the owner's code
	 * made (a SET in a CHECK function must not reach the caller's session),
	 * as REFRESH MATERIALIZED VIEW does after its index functions.
	 */
	AtEOXact_GUC(false, p->nestlevel);
	SetUserIdAndSecContext(p->save_userid, p->save_sec);
}

Oid
tt_relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The caller (current user) must have the privileges of the table's owner,
 * as for ALTER TABLE: owner, a member of the owning role, or superuser.
 */
void
tt_check_table_owner(Oid relid)
{
	if (!has_privs_of_role(GetUserId(), tt_relation_owner(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s", tt_rel_name(relid))));
}

/* The relation's qualified name for messages (its OID if it has gone). */
char *
tt_rel_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		return psprintf("%u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  name);
}

/*
 * Calls talaria.<fname>(argtypes...) directly through fmgr: the function is
 * found by its qualified name in our schema only, and its EXECUTE privilege
 * is not checked (the internal helpers are not executable by PUBLIC; only
 * these C paths, which check the caller's rights first, reach them).
 */
Datum
tt_call_internal(const char *fname, int nargs, Oid *argtypes, Datum *args,
				 const bool *nulls)
{
	List	   *qname = list_make2(makeString(TT_SCHEMA), makeString(pstrdup(fname)));
	Oid			fn = LookupFuncName(qname, nargs, argtypes, false);
	LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);
	FmgrInfo	flinfo;
	Datum		result;
	int			i;

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, nargs, InvalidOid, NULL, NULL);
	for (i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = nulls ? nulls[i] : false;
	}
	result = FunctionCallInvoke(fcinfo);
	return fcinfo->isnull ? (Datum) 0 : result;
}

/*
 * Runs fn(arg) in a subtransaction.  True if it succeeded; else the
 * subtransaction is rolled back and *edata holds the error (in the
 * caller's memory context), for the caller to report or re-throw.
 */
bool
tt_run_in_subxact(void (*fn) (void *arg), void *arg, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;

	*edata = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ok = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return ok;
}
