/*-------------------------------------------------------------------------
 *
 * scaleout.c
 *	  Time tables over several servers, with PostgreSQL's own machinery:
 *	  partitions made on postgres_fdw servers, the partition log that lets
 *	  logical-replication subscribers make partitions before their rows
 *	  arrive, and the guard that refuses Citus tables.
 *
 * Remote statements (CREATE TABLE of a new remote partition, DROP TABLE
 * at retention) go through libpq with the options of the foreign server
 * and of the table owner's user mapping, with postgres_fdw's rule for
 * non-superusers: the user mapping must carry a password and the server
 * must ask for it, so that a role cannot borrow the local server's trust
 * or peer authentication.  A drop runs just before the local transaction
 * commits, so a rolled back retention leaves the remote data in place.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "talaria.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/* ---------------------------------------------------------------------
 * Remote statements
 * ---------------------------------------------------------------------
 */

/* A statement to run on a server just before commit. */
typedef struct PendingRemote
{
	Oid			serverid;
	Oid			userid;
	char	   *command;
	SubTransactionId subid;
} PendingRemote;

static List *pending_remote = NIL;
static bool remote_callbacks_registered = false;

static bool
is_libpq_keyword(PQconninfoOption *opts, const char *name)
{
	PQconninfoOption *o;

	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, name) == 0)
			return true;
	return false;
}

/* The user mapping's password_required option (postgres_fdw's), default true */
static bool
password_required(UserMapping *um)
{
	ListCell   *lc;

	foreach(lc, um->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "password_required") == 0)
			return defGetBoolean(d);
	}
	return true;
}

static void
report_remote_error(PGconn *conn, PGresult *res, ForeignServer *srv,
					const char *command)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char	   *text = pstrdup(msg ? msg : pchomp(PQerrorMessage(conn)));
	int			code = ERRCODE_CONNECTION_FAILURE;

	if (state && strlen(state) == 5)
		code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
	if (res)
		PQclear(res);
	PQfinish(conn);
	ereport(ERROR,
			(errcode(code),
			 errmsg("on foreign server \"%s\": %s", srv->servername, text),
			 errcontext("remote SQL command: %s", command)));
}

/*
 * Waits for the connection's result; a cancel or terminate request ends the
 * wait with its error (the caller sends the remote a cancel and closes the
 * connection).
 */
static PGresult *
remote_result(PGconn *conn)
{
	PGresult   *last = NULL;

	for (;;)
	{
		PGresult   *res;

		while (PQisBusy(conn))
		{
			int			rc = WaitLatchOrSocket(MyLatch,
											   WL_LATCH_SET | WL_SOCKET_READABLE |
											   WL_EXIT_ON_PM_DEATH,
											   PQsocket(conn), -1L, PG_WAIT_EXTENSION);

			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
				break;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (last)
			PQclear(last);
		last = res;
	}
	return last;
}

static void
remote_notice(void *arg, const char *message)
{
	elog(DEBUG1, "talaria: remote notice: %s", message);
}

/* Connects as the user mapping of userid on the server, and runs command. */
static void
remote_run(Oid serverid, Oid userid, const char *command)
{
	ForeignServer *srv = GetForeignServer(serverid);
	UserMapping *um = GetUserMapping(userid, serverid);
	PQconninfoOption *defaults = PQconndefaults();
	List	   *all = list_concat(list_copy(srv->options), um->options);
	const char **keys;
	const char **vals;
	bool		has_password = false;
	bool		has_timeout = false;
	bool		need_password;
	PGconn	   *conn;
	PGresult   *res;
	ListCell   *lc;
	int			n = 0;

	if (defaults == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	keys = palloc0(sizeof(char *) * (list_length(all) + 5));
	vals = palloc0(sizeof(char *) * (list_length(all) + 5));
	foreach(lc, all)
	{
		DefElem    *d = lfirst(lc);

		if (!is_libpq_keyword(defaults, d->defname))
			continue;
		keys[n] = d->defname;
		vals[n] = defGetString(d);
		has_password |= strcmp(d->defname, "password") == 0 && vals[n][0] != '\0';
		has_timeout |= strcmp(d->defname, "connect_timeout") == 0;
		n++;
	}
	PQconninfoFree(defaults);
	keys[n] = "fallback_application_name";
	vals[n++] = "talaria_transform";
	keys[n] = "client_encoding";
	vals[n++] = GetDatabaseEncodingName();
	if (!has_timeout)
	{
		keys[n] = "connect_timeout";
		vals[n++] = "10";
	}
	keys[n] = NULL;
	vals[n] = NULL;

	/* postgres_fdw's rule: a non-superuser connects with a password */
	need_password = !superuser_arg(userid) && password_required(um);
	if (need_password && !has_password)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required to reach foreign server \"%s\"", srv->servername),
				 errdetail("Non-superusers must provide a password in the user mapping.")));

	conn = PQconnectdbParams(keys, vals, false);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (PQstatus(conn) != CONNECTION_OK)
		report_remote_error(conn, NULL, srv, command);
	/* the remote's notices (IF NOT EXISTS ... skipping) go to DEBUG1 */
	PQsetNoticeProcessor(conn, remote_notice, NULL);
	if (need_password && !PQconnectionUsedPassword(conn))
	{
		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required to reach foreign server \"%s\"", srv->servername),
				 errdetail("Non-superuser cannot connect if the server does not request a password."),
				 errhint("Target server's authentication method must be changed or set password_required=false in the user mapping attributes.")));
	}
	if (!PQsendQuery(conn, psprintf("SET search_path = pg_catalog; %s", command)))
		report_remote_error(conn, NULL, srv, command);
	PG_TRY();
	{
		res = remote_result(conn);
	}
	PG_CATCH();
	{
		PGcancel   *c = PQgetCancel(conn);
		char		buf[256];

		if (c)
		{
			(void) PQcancel(c, buf, sizeof(buf));
			PQfreeCancel(c);
		}
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		report_remote_error(conn, res, srv, command);
	PQclear(res);
	PQfinish(conn);
}

static void
remote_xact_callback(XactEvent event, void *arg)
{
	List	   *todo;
	ListCell   *lc;

	if (pending_remote == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			/* run each once: an error here aborts the transaction */
			todo = pending_remote;
			pending_remote = NIL;
			foreach(lc, todo)
			{
				PendingRemote *p = lfirst(lc);

				remote_run(p->serverid, p->userid, p->command);
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that retired remote partitions")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* the list lived in TopTransactionContext */
			pending_remote = NIL;
			break;
	}
}

static void
remote_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	foreach(lc, pending_remote)
	{
		PendingRemote *p = lfirst(lc);

		if (p->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			pending_remote = foreach_delete_current(pending_remote, lc);
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
			p->subid = parentSubid;
	}
}

PG_FUNCTION_INFO_V1(tt_remote_exec);

/*
 * talaria._remote_exec(server, command, at_commit): internal.  Callable
 * only inside a security-restricted operation (talaria's partition
 * creation and retention run as the table's owner in one); it connects as
 * the current user's own user mapping, under postgres_fdw's password rule,
 * so it can do nothing that user could not do with the mapping's
 * credentials.
 */
Datum
tt_remote_exec(PG_FUNCTION_ARGS)
{
	char	   *server = NameStr(*PG_GETARG_NAME(0));
	char	   *command = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		at_commit = PG_GETARG_BOOL(2);
	ForeignServer *srv = GetForeignServerByName(server, false);
	Oid			userid = GetUserId();
	AclResult	acl;

	if (!InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("talaria._remote_exec is internal to talaria_transform")));
	acl = pg_foreign_server_aclcheck(srv->serverid, userid, ACL_USAGE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_FOREIGN_SERVER, srv->servername);
	if (!at_commit)
	{
		remote_run(srv->serverid, userid, command);
		PG_RETURN_VOID();
	}
	if (!remote_callbacks_registered)
	{
		RegisterXactCallback(remote_xact_callback, NULL);
		RegisterSubXactCallback(remote_subxact_callback, NULL);
		remote_callbacks_registered = true;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		PendingRemote *p = palloc(sizeof(PendingRemote));

		p->serverid = srv->serverid;
		p->userid = userid;
		p->command = pstrdup(command);
		p->subid = GetCurrentSubTransactionId();
		pending_remote = lappend(pending_remote, p);
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(tt_set_remote_placement);

/*
 * talaria.set_remote_placement(target, servers, remote_schema,
 * remote_retention): validated as the caller (who must own the table),
 * recorded as the catalogs' owner.  servers NULL removes the placement.
 */
Datum
tt_set_remote_placement(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {REGCLASSOID, NAMEARRAYOID, NAMEOID, TEXTOID};
	Datum		args[4];
	bool		nulls[4];
	char		spinulls[4];
	TTPrivileged priv;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	for (i = 0; i < 4; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		args[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
		spinulls[i] = nulls[i] ? 'n' : ' ';
	}
	tt_check_table_owner(DatumGetObjectId(args[0]));
	(void) tt_call_internal("_validate_remote_placement", 4, argtypes, args, nulls);
	tt_catalog_begin(&priv);
	if (nulls[1])
		(void) tt_catalog_exec("DELETE FROM talaria.remote_placements"
							   " WHERE target OPERATOR(pg_catalog.=) $1",
							   1, argtypes, args, spinulls, SPI_OK_DELETE);
	else
		(void) tt_catalog_exec("INSERT INTO talaria.remote_placements VALUES ($1, $2, $3, $4)"
							   " ON CONFLICT (target) DO UPDATE SET servers = EXCLUDED.servers,"
							   " remote_schema = EXCLUDED.remote_schema,"
							   " remote_retention = EXCLUDED.remote_retention",
							   4, argtypes, args, spinulls, SPI_OK_INSERT);
	tt_catalog_end(&priv);
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * The partition log
 * ---------------------------------------------------------------------
 */

/*
 * Records a partition of relid [lower, upper) (UTC wall time) that this
 * transaction made, as the catalogs' owner.
 */
void
tt_partition_log(Oid relid, Timestamp lower, Timestamp upper)
{
	Oid			argtypes[4] = {NAMEOID, NAMEOID, TIMESTAMPOID, TIMESTAMPOID};
	Datum		args[4];
	TTPrivileged priv;

	/* (a database not yet updated to 0.3.0 has no log) */
	if (!OidIsValid(tt_catalog_relid("partition_log", true)))
		return;

	args[0] = DirectFunctionCall1(namein,
								  CStringGetDatum(get_namespace_name(get_rel_namespace(relid))));
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(get_rel_name(relid)));
	args[2] = TimestampGetDatum(lower);
	args[3] = TimestampGetDatum(upper);
	tt_catalog_begin(&priv);
	(void) tt_catalog_exec("INSERT INTO talaria.partition_log"
						   " (target_schema, target_name, lower, upper)"
						   " VALUES ($1, $2, $3, $4)",
						   4, argtypes, args, NULL, SPI_OK_INSERT);
	tt_catalog_end(&priv);
}

/*
 * Forgets the log rows of relid's partitions that ended before its
 * retention (retention has taken them), as the catalogs' owner.
 */
void
tt_partition_log_expire(Oid relid)
{
	Oid			argtypes[3] = {REGCLASSOID, NAMEOID, NAMEOID};
	Datum		args[3];
	TTPrivileged priv;

	/* (a database not yet updated to 0.3.0 has no log) */
	if (!OidIsValid(tt_catalog_relid("partition_log", true)))
		return;

	args[0] = ObjectIdGetDatum(relid);
	args[1] = DirectFunctionCall1(namein,
								  CStringGetDatum(get_namespace_name(get_rel_namespace(relid))));
	args[2] = DirectFunctionCall1(namein, CStringGetDatum(get_rel_name(relid)));
	tt_catalog_begin(&priv);
	(void) tt_catalog_exec("DELETE FROM talaria.partition_log l USING talaria.time_tables t"
						   " WHERE t.target OPERATOR(pg_catalog.=) $1 AND t.retention IS NOT NULL"
						   " AND l.target_schema OPERATOR(pg_catalog.=) $2"
						   " AND l.target_name OPERATOR(pg_catalog.=) $3"
						   " AND l.upper OPERATOR(pg_catalog.<=)"
						   "     ((pg_catalog.now() AT TIME ZONE 'UTC') OPERATOR(pg_catalog.-) t.retention)",
						   3, argtypes, args, NULL, SPI_OK_DELETE);
	tt_catalog_end(&priv);
}

PG_FUNCTION_INFO_V1(tt_partition_log_apply);

/*
 * The REPLICA trigger of talaria.partition_log: on a logical-replication
 * subscriber, a logged partition of a table of the same name that is a
 * time table here gets the same range of partitions, as the table's owner,
 * in the apply worker's transaction (which precedes the rows' own).
 */
Datum
tt_partition_log_apply(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull[4];
	Datum		schema;
	Datum		name;
	Timestamp	lower;
	Timestamp	upper;
	Oid			nsp;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria._partition_log_apply must be a row trigger on INSERT")));
	if (RelationGetRelid(td->tg_relation) != tt_catalog_relid("partition_log", false))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("talaria._partition_log_apply is the trigger of talaria.partition_log only")));
	desc = RelationGetDescr(td->tg_relation);
	tup = td->tg_trigtuple;
	schema = heap_getattr(tup, 3, desc, &isnull[0]);
	name = heap_getattr(tup, 4, desc, &isnull[1]);
	lower = DatumGetTimestamp(heap_getattr(tup, 5, desc, &isnull[2]));
	upper = DatumGetTimestamp(heap_getattr(tup, 6, desc, &isnull[3]));
	if (isnull[0] || isnull[1] || isnull[2] || isnull[3])
		return PointerGetDatum(tup);
	nsp = get_namespace_oid(NameStr(*DatumGetName(schema)), true);
	relid = OidIsValid(nsp) ? get_relname_relid(NameStr(*DatumGetName(name)), nsp) : InvalidOid;
	if (OidIsValid(relid))
		tt_partition_ensure_range(relid, lower, upper);
	return PointerGetDatum(tup);
}

/* ---------------------------------------------------------------------
 * Citus
 * ---------------------------------------------------------------------
 */

/*
 * Refuses a table Citus manages (distributed, reference or Citus local,
 * or a shard of one): the pipeline would store rows where Citus never
 * looks (the coordinator's shell table) or name the wrong table on a
 * shard.  Costs one syscache probe when Citus is not installed here.
 */
bool
tt_citus_installed(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

void
tt_citus_guard(Oid relid, const char *role)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	bool		citus;
	int			ret;

	if (!tt_citus_installed())
		return;
	args[0] = ObjectIdGetDatum(relid);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition p"
								" WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
								" UNION ALL SELECT 1 FROM pg_catalog.pg_dist_shard s"
								" JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) s.logicalrelid"
								" WHERE (c.relname OPERATOR(pg_catalog.||) '_'"
								"        OPERATOR(pg_catalog.||) s.shardid::pg_catalog.text)::pg_catalog.name"
								"       OPERATOR(pg_catalog.=)"
								"       (SELECT relname FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1)",
								1, argtypes, args, NULL, true, 1);
	citus = ret == SPI_OK_SELECT && SPI_processed > 0;
	SPI_finish();
	if (citus)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s %s is managed by Citus", role, tt_rel_name(relid)),
				 errdetail("talaria_transform pipelines and time tables work on local tables only; rows would be stored where Citus does not look."),
				 errhint("See \"Citus\" in talaria_transform's README.")));
}
