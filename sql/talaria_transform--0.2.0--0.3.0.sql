/* talaria_transform 0.2.0 -> 0.3.0: scale-out, speed, Talaria's users (issues 14, 15, 16) */

\echo Use "ALTER EXTENSION talaria_transform UPDATE TO '0.3.0'" to load this file. \quit

-- =====================================================================
-- Scale-out (issue 14)
-- =====================================================================

-- Where a time table's new partitions go: round robin over foreign
-- servers (postgres_fdw) by partition slot.  Premake and on-demand
-- creation make the remote table (through the owner's user mapping) and
-- attach it as a foreign partition; retention drops the remote table with
-- the partition ('drop') or leaves it on the server ('keep').
CREATE TABLE talaria.remote_placements (
    target           regclass PRIMARY KEY
                     REFERENCES talaria.time_tables (target) ON DELETE CASCADE,
    servers          name[] NOT NULL
                     CHECK (cardinality(servers) BETWEEN 1 AND 1000
                            AND array_position(servers, NULL) IS NULL),
    remote_schema    name NOT NULL,
    remote_retention text NOT NULL DEFAULT 'drop'
                     CHECK (remote_retention IN ('drop', 'keep'))
);
COMMENT ON TABLE talaria.remote_placements IS 'Time tables whose new partitions are made on foreign servers; change it with talaria.set_remote_placement';
REVOKE ALL ON talaria.remote_placements FROM PUBLIC;
GRANT SELECT ON talaria.remote_placements TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('talaria.remote_placements', '');

-- The slot of a partition starting at lo: consecutive partitions have
-- consecutive slots (months by calendar, other intervals by epoch).
CREATE FUNCTION talaria._placement_slot(iv interval, lo timestamp) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN iv = interval '1 month'
                THEN (extract(year FROM lo) * 12 + extract(month FROM lo) - 1)::bigint
                ELSE floor(extract(epoch FROM lo) / extract(epoch FROM iv))::bigint END
    $$;

-- Runs one statement on a postgres_fdw server as the current user's user
-- mapping (a non-superuser must authenticate with a password, as with
-- postgres_fdw and dblink); with at_commit, just before this transaction
-- commits (dropped with a rolled-back (sub)transaction).  Only talaria's
-- privileged paths (partition creation and retention, as the table's
-- owner) may call it.
CREATE FUNCTION talaria._remote_exec(server name, command text, at_commit boolean) RETURNS void
    LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'tt_remote_exec';

CREATE FUNCTION talaria._validate_remote_placement(target regclass, servers name[],
        remote_schema name, remote_retention text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    owner   oid;
    s       name;
    handler text;
BEGIN
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = target;
    IF NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM talaria.time_tables t WHERE t.target = _validate_remote_placement.target) THEN
        RAISE EXCEPTION 'table "%" is not a time table', target
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register it with talaria.create_time_table().';
    END IF;
    IF servers IS NULL THEN
        RETURN;
    END IF;
    IF cardinality(servers) = 0 OR array_position(servers, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'servers for table "%" must name at least one foreign server, and no NULL', target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF remote_schema IS NULL THEN
        RAISE EXCEPTION 'remote_schema for table "%" must not be null', target
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF remote_retention IS NULL OR remote_retention NOT IN ('drop', 'keep') THEN
        RAISE EXCEPTION 'invalid remote_retention "%" for table "%"', remote_retention, target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''drop'' (the remote table goes with the partition) or ''keep''.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = target AND i.indisunique) THEN
        RAISE EXCEPTION 'table "%" has a unique index: its partitions cannot be foreign tables', target
            USING ERRCODE = 'feature_not_supported';
    END IF;
    FOREACH s IN ARRAY servers LOOP
        SELECT h.proname INTO handler
          FROM pg_foreign_server fs JOIN pg_foreign_data_wrapper w ON w.oid = fs.srvfdw
          LEFT JOIN pg_proc h ON h.oid = w.fdwhandler
         WHERE fs.srvname = s;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'foreign server "%" does not exist', s USING ERRCODE = 'undefined_object';
        END IF;
        IF handler IS DISTINCT FROM 'postgres_fdw_handler' THEN
            RAISE EXCEPTION 'foreign server "%" does not use postgres_fdw', s
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = 'talaria creates remote partitions through postgres_fdw servers only.';
        END IF;
        IF NOT has_server_privilege(owner, s, 'USAGE') THEN
            RAISE EXCEPTION 'the owner of table "%" has no USAGE on foreign server "%"', target, s
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_user_mappings m
                        WHERE m.srvname = s AND (m.umuser = owner OR m.umuser = 0)) THEN
            RAISE EXCEPTION 'the owner of table "%" has no user mapping for foreign server "%"', target, s
                USING ERRCODE = 'undefined_object',
                      HINT = format('CREATE USER MAPPING FOR %I SERVER %I OPTIONS (user ..., password ...)',
                                    owner::regrole, s);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION talaria._validate_remote_placement(regclass, name[], name, text) FROM PUBLIC;

CREATE FUNCTION talaria.set_remote_placement(target regclass, servers name[],
        remote_schema name DEFAULT 'public', remote_retention text DEFAULT 'drop') RETURNS void
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'tt_set_remote_placement';
COMMENT ON FUNCTION talaria.set_remote_placement(regclass, name[], name, text) IS 'New partitions of target are made on these postgres_fdw servers (round robin) and attached as foreign partitions; servers NULL makes them local again';

-- Every partition talaria makes is logged here (its table by name, its
-- range as UTC wall time).  A logical-replication subscriber that
-- subscribes to this table gets the rows before the data of the new
-- partition (the partition's transaction commits first), and the REPLICA
-- trigger creates the same range in its own time table of that name.
CREATE TABLE talaria.partition_log (
    id           bigint GENERATED BY DEFAULT AS IDENTITY,
    made_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    target_schema name NOT NULL,
    target_name  name NOT NULL,
    lower        timestamp NOT NULL,
    upper        timestamp NOT NULL
);
ALTER TABLE talaria.partition_log REPLICA IDENTITY FULL;
CREATE INDEX ON talaria.partition_log (target_schema, target_name, upper);
COMMENT ON TABLE talaria.partition_log IS 'Partitions made by talaria; add it to a publication so that subscribers make the same partitions before the rows arrive';
REVOKE ALL ON talaria.partition_log FROM PUBLIC;
GRANT SELECT ON talaria.partition_log TO PUBLIC;

CREATE FUNCTION talaria._partition_log_apply() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'tt_partition_log_apply';
REVOKE ALL ON FUNCTION talaria._partition_log_apply() FROM PUBLIC;
CREATE TRIGGER apply_on_subscriber AFTER INSERT ON talaria.partition_log
    FOR EACH ROW EXECUTE FUNCTION talaria._partition_log_apply();
ALTER TABLE talaria.partition_log ENABLE REPLICA TRIGGER apply_on_subscriber;

-- Partition creation: as before, and on a time table with a remote
-- placement, the remote table (CREATE TABLE IF NOT EXISTS on the slot's
-- server, with the partition's range as a CHECK) attached as a foreign
-- partition.
CREATE OR REPLACE FUNCTION talaria._create_partition(target regclass, t timestamp) RETURNS regclass
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt      talaria.time_tables;
    pl      talaria.remote_placements;
    lo      timestamp;
    hi      timestamp;
    nsp     name;
    rel     name;
    owner   regrole;
    typ     regtype;
    pname   text;
    part    regclass;
    srv     name;
    cols    text;
    lcols   text;
BEGIN
    SELECT n.nspname, c.relname, c.relowner::regrole INTO nsp, rel, owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = target;
    IF owner IS DISTINCT FROM current_user::regrole THEN
        RAISE EXCEPTION 'talaria._create_partition must run as the owner of table %', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO tt FROM talaria.time_tables WHERE time_tables.target = _create_partition.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not a time table', target
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register it with talaria.create_time_table().';
    END IF;
    PERFORM pg_advisory_xact_lock(1952541806, target::oid::int);
    SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = tt.time_column;
    lo := talaria._partition_start(tt.partition_interval, t);
    hi := lo + tt.partition_interval;
    pname := rel || '_p' || to_char(lo, CASE WHEN tt.partition_interval < interval '1 day'
                                             THEN 'YYYYMMDD_HH24MI' ELSE 'YYYYMMDD' END);
    part := to_regclass(format('%I.%I', nsp, pname));
    IF part IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = part AND inhparent = target) THEN
            RAISE EXCEPTION 'table "%" exists but is not a partition of "%"', part, target
                USING ERRCODE = 'duplicate_table';
        END IF;
        RETURN part;
    END IF;
    SELECT * INTO pl FROM talaria.remote_placements WHERE remote_placements.target = _create_partition.target;
    IF FOUND THEN
        srv := pl.servers[1 + talaria._placement_slot(tt.partition_interval, lo) % cardinality(pl.servers)];
        SELECT string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                 CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum),
               string_agg(format('%I %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                 CASE WHEN a.attcollation <> t.typcollation
                                      THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END,
                                 CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum)
          INTO cols, lcols
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped;
        PERFORM talaria._remote_exec(srv,
            format('CREATE TABLE IF NOT EXISTS %I.%I (%s, CHECK (%I >= %s AND %I < %s))',
                   pl.remote_schema, pname, cols,
                   tt.time_column, talaria._partition_literal(typ, lo),
                   tt.time_column, talaria._partition_literal(typ, hi)),
            false);
        -- made standalone, then attached: SHARE UPDATE EXCLUSIVE on the
        -- parent, as for local partitions (CREATE ... PARTITION OF would
        -- wait for every ingester)
        EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (schema_name %L, table_name %L)',
                       nsp, pname, lcols, srv, pl.remote_schema, pname);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                       target, nsp, pname,
                       talaria._partition_literal(typ, lo), talaria._partition_literal(typ, hi));
        RETURN format('%I.%I', nsp, pname)::regclass;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)',
                   nsp, pname, target);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                   target, nsp, pname,
                   talaria._partition_literal(typ, lo), talaria._partition_literal(typ, hi));
    RETURN format('%I.%I', nsp, pname)::regclass;
END
$$;

-- Retention of foreign partitions: 'detach' and 'archive' handle them as
-- local ones (their rows stay on the remote server); 'drop' drops the
-- foreign table and, with a remote placement whose remote_retention is
-- 'drop', its remote table on a placement server, just before commit.
-- Without a placement a foreign partition is skipped with a NOTICE, as in
-- 0.2.0 (dropping only the local definition would leave its rows behind
-- unseen).
CREATE OR REPLACE FUNCTION talaria._drop_expired(target regclass) RETURNS int
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt      talaria.time_tables;
    pl      talaria.remote_placements;
    p       record;
    typ     regtype;
    upper   timestamp;
    cutoff  timestamp;
    n       int := 0;
    srv     name;
    rschema text;
    rtable  text;
BEGIN
    SELECT * INTO tt FROM talaria.time_tables WHERE time_tables.target = _drop_expired.target;
    IF NOT FOUND OR tt.retention IS NULL THEN
        RETURN 0;
    END IF;
    IF (SELECT relowner::regrole FROM pg_class WHERE oid = target) <> current_user::regrole THEN
        RAISE EXCEPTION 'talaria._drop_expired must run as the owner of table %', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO pl FROM talaria.remote_placements WHERE remote_placements.target = _drop_expired.target;
    cutoff := (now() AT TIME ZONE 'UTC')::timestamp - tt.retention;
    SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
     WHERE a.attrelid = tt.target AND a.attname = tt.time_column;
    FOR p IN SELECT i.inhrelid::regclass AS part, c.relkind,
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']*)''\)') AS hi
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = tt.target ORDER BY 1::text LOOP
        CONTINUE WHEN p.hi IS NULL;
        upper := CASE WHEN typ = 'timestamptz'::regtype
                      THEN (p.hi::timestamptz AT TIME ZONE 'UTC')::timestamp
                      ELSE p.hi::timestamp END;
        CONTINUE WHEN upper > cutoff;
        srv := NULL;
        IF p.relkind = 'f' THEN
            SELECT s.srvname,
                   coalesce((SELECT o.option_value FROM pg_options_to_table(f.ftoptions) o
                              WHERE o.option_name = 'schema_name'), n.nspname),
                   coalesce((SELECT o.option_value FROM pg_options_to_table(f.ftoptions) o
                              WHERE o.option_name = 'table_name'), c.relname)
              INTO srv, rschema, rtable
              FROM pg_foreign_table f JOIN pg_foreign_server s ON s.oid = f.ftserver
              JOIN pg_class c ON c.oid = f.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE f.ftrelid = p.part;
            IF tt.retention_mode = 'drop' AND (pl.target IS NULL OR NOT srv = ANY (pl.servers)) THEN
                RAISE NOTICE 'partition "%" is a foreign table on server "%": retention skips it', p.part, srv
                    USING HINT = 'Its rows live on the remote server; talaria.set_remote_placement() with that server lets retention drop them, or use retention_mode ''detach''.';
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            -- (LOCK TABLE does not take foreign tables: the parent's lock covers them)
            IF p.relkind = 'f' THEN
                EXECUTE format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE NOWAIT', tt.target);
            ELSE
                EXECUTE format('LOCK TABLE ONLY %s, %s IN ACCESS EXCLUSIVE MODE NOWAIT',
                               tt.target, p.part);
            END IF;
            IF tt.retention_mode = 'drop' THEN
                IF p.relkind = 'f' AND pl.remote_retention = 'drop' THEN
                    PERFORM talaria._remote_exec(srv,
                        format('DROP TABLE IF EXISTS %I.%I', rschema, rtable), true);
                END IF;
                EXECUTE format('DROP %s %s', CASE WHEN p.relkind = 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                               p.part);
            ELSE
                EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', tt.target, p.part);
                IF tt.retention_mode = 'archive' THEN
                    EXECUTE format('ALTER %s %s SET SCHEMA %I',
                                   CASE WHEN p.relkind = 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                                   p.part, tt.archive_schema);
                END IF;
            END IF;
            n := n + 1;
        EXCEPTION WHEN lock_not_available THEN
            RAISE NOTICE 'partition "%" is in use; it will be handled by a later run_maintenance()', p.part;
        END;
    END LOOP;
    RETURN n;
END
$$;
