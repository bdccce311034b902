/* talaria_transform 0.1.0 */

\echo Use "CREATE EXTENSION talaria_transform" to load this file. \quit

-- ---------------------------------------------------------------------
-- The transform catalog
-- ---------------------------------------------------------------------
CREATE TABLE talaria.transforms (
    name        text PRIMARY KEY
                CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    kind        text NOT NULL CHECK (kind IN ('lua', 'native')),
    source      text,
    library     text,
    symbol      text,
    owner       regrole NOT NULL DEFAULT current_user::regrole,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'lua' AND source IS NOT NULL AND library IS NULL AND symbol IS NULL)
        OR (kind = 'native' AND source IS NULL AND library IS NOT NULL AND symbol IS NOT NULL))
);
COMMENT ON TABLE talaria.transforms IS 'Registered transforms; change it with talaria.register_lua/register_native/drop_transform';
REVOKE ALL ON talaria.transforms FROM PUBLIC;
GRANT SELECT ON talaria.transforms TO PUBLIC;

CREATE FUNCTION talaria._transforms_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'tt_transforms_changed';
CREATE TRIGGER transforms_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON talaria.transforms
    FOR EACH STATEMENT EXECUTE FUNCTION talaria._transforms_changed();

CREATE FUNCTION talaria.register_lua(name text, source text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_register_lua';
COMMENT ON FUNCTION talaria.register_lua(text, text) IS 'Create or replace a Lua transform (the script defines main(row))';

CREATE FUNCTION talaria.register_native(name text, library text, symbol text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_register_native';
COMMENT ON FUNCTION talaria.register_native(text, text, text) IS 'Create or replace a native transform (superuser only)';
REVOKE ALL ON FUNCTION talaria.register_native(text, text, text) FROM PUBLIC;

CREATE FUNCTION talaria.drop_transform(name text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_drop_transform';

-- ---------------------------------------------------------------------
-- Running a transform
-- ---------------------------------------------------------------------
CREATE FUNCTION talaria.transform_row(name text, "row" jsonb) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'tt_transform_row';
COMMENT ON FUNCTION talaria.transform_row(text, jsonb) IS 'Run a registered transform on one row';

-- ---------------------------------------------------------------------
-- Ingest pipelines: time-partitioned tables, the ingest trigger,
-- dead letters, computed columns (issue 4; see README "Ingest pipelines")
-- ---------------------------------------------------------------------
CREATE TABLE talaria.time_tables (
    target              regclass PRIMARY KEY,
    time_column         name NOT NULL,
    partition_interval  interval NOT NULL,
    retention           interval,
    premake             int NOT NULL
);
COMMENT ON TABLE talaria.time_tables IS 'Time-partitioned tables; change it with talaria.create_time_table';
REVOKE ALL ON talaria.time_tables FROM PUBLIC;
GRANT SELECT ON talaria.time_tables TO PUBLIC;

CREATE TABLE talaria.computed_columns (
    target      regclass NOT NULL,
    column_name name NOT NULL,
    transform   text NOT NULL,
    PRIMARY KEY (target, column_name)
);
COMMENT ON TABLE talaria.computed_columns IS 'Columns set by a transform for every row a pipeline stores; change it with talaria.add_computed_column';
REVOKE ALL ON talaria.computed_columns FROM PUBLIC;
GRANT SELECT ON talaria.computed_columns TO PUBLIC;

-- Written by the ingest trigger (in C, whatever the ingesting user may do);
-- each target's owner reads and deletes the dead letters of that target.
CREATE TABLE talaria.dead_letters (
    at          timestamptz NOT NULL DEFAULT now(),
    transform   text NOT NULL,
    target      regclass NOT NULL,
    "row"       jsonb NOT NULL,
    error       text NOT NULL,
    sqlstate    text NOT NULL
);
COMMENT ON TABLE talaria.dead_letters IS 'Rows a pipeline with on_error = dead_letter could not store, with the error';
REVOKE ALL ON talaria.dead_letters FROM PUBLIC;
GRANT SELECT, DELETE ON talaria.dead_letters TO PUBLIC;
ALTER TABLE talaria.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_owner ON talaria.dead_letters
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c
                                   WHERE c.oid = target), 'USAGE'));

-- The partition of a time table covering t (UTC wall time), aligned to
-- the calendar: hours dividing a day, a day, an ISO week, a month.
CREATE FUNCTION talaria._partition_start(iv interval, t timestamp) RETURNS timestamp
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN iv = interval '1 month' THEN date_trunc('month', t)
        WHEN iv = interval '1 week' THEN date_trunc('week', t)
        WHEN iv = interval '1 day' THEN date_trunc('day', t)
        ELSE date_trunc('day', t)
             + floor(extract(epoch FROM t - date_trunc('day', t)) / extract(epoch FROM iv)) * iv
    END
    $$;

CREATE FUNCTION talaria._partition_literal(typ regtype, t timestamp) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT quote_literal(CASE typ
        WHEN 'date'::regtype THEN to_char(t, 'YYYY-MM-DD')
        WHEN 'timestamptz'::regtype THEN to_char(t, 'YYYY-MM-DD HH24:MI:SS') || '+00'
        ELSE to_char(t, 'YYYY-MM-DD HH24:MI:SS') END)
    $$;

-- Creates (if missing) the partition of target covering t: CREATE TABLE
-- standalone, then ATTACH PARTITION (SHARE UPDATE EXCLUSIVE on the parent,
-- which does not block ingesters).  Serialized per target.  Internal: the
-- ingest trigger calls it (in a background worker), and so do
-- create_time_table and run_maintenance.
CREATE FUNCTION talaria._create_partition(target regclass, t timestamp) RETURNS regclass
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt      talaria.time_tables;
    lo      timestamp;
    hi      timestamp;
    nsp     name;
    rel     name;
    owner   regrole;
    typ     regtype;
    pname   text;
    part    regclass;
BEGIN
    SELECT * INTO tt FROM talaria.time_tables WHERE time_tables.target = _create_partition.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table "%" is not a time table', target
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register it with talaria.create_time_table().';
    END IF;
    PERFORM pg_advisory_xact_lock(1952541806, target::oid::int);
    SELECT n.nspname, c.relname, c.relowner::regrole INTO nsp, rel, owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = target;
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
    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)',
                   nsp, pname, target);
    IF owner <> current_user::regrole THEN
        EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', nsp, pname, owner);
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                   target, nsp, pname,
                   talaria._partition_literal(typ, lo), talaria._partition_literal(typ, hi));
    RETURN format('%I.%I', nsp, pname)::regclass;
END
$$;
REVOKE ALL ON FUNCTION talaria._create_partition(regclass, timestamp) FROM PUBLIC;

-- For the SECURITY DEFINER catalog writers below: current_user is the
-- definer there, so check the session's user (the public wrappers have
-- already checked current_user).
CREATE FUNCTION talaria._check_session_owns(target regclass) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = target), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- Records and checks; SECURITY DEFINER only to write the catalog row (the
-- session's user must own the table; the DDL runs in _premake as the caller).
CREATE FUNCTION talaria._record_time_table(target regclass, time_column name,
        partition_interval interval, retention interval, premake int) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM talaria._check_session_owns(target);
    INSERT INTO talaria.time_tables VALUES (target, time_column, partition_interval, retention, premake)
    ON CONFLICT ON CONSTRAINT time_tables_pkey DO UPDATE
       SET time_column = EXCLUDED.time_column, partition_interval = EXCLUDED.partition_interval,
           retention = EXCLUDED.retention, premake = EXCLUDED.premake;
END
$$;
REVOKE ALL ON FUNCTION talaria._record_time_table(regclass, name, interval, interval, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION talaria._record_time_table(regclass, name, interval, interval, int) TO PUBLIC;
GRANT EXECUTE ON FUNCTION talaria._create_partition(regclass, timestamp) TO PUBLIC;

-- Partitions from now through premake intervals ahead.
CREATE FUNCTION talaria._premake(target regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt  talaria.time_tables;
    t   timestamp;
    i   int;
BEGIN
    SELECT * INTO tt FROM talaria.time_tables WHERE time_tables.target = _premake.target;
    t := talaria._partition_start(tt.partition_interval, (now() AT TIME ZONE 'UTC')::timestamp);
    FOR i IN 0 .. tt.premake LOOP
        PERFORM talaria._create_partition(target, t + i * tt.partition_interval);
    END LOOP;
END
$$;

CREATE FUNCTION talaria.create_time_table(target regclass, time_column name,
        partition_interval interval DEFAULT '1 day', retention interval DEFAULT NULL,
        premake int DEFAULT 2) RETURNS void
    LANGUAGE plpgsql CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c       record;
    keycol  name;
    typ     regtype;
BEGIN
    IF target IS NULL OR time_column IS NULL OR partition_interval IS NULL OR premake IS NULL THEN
        RAISE EXCEPTION 'target, time_column, partition_interval and premake must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM pg_class WHERE oid = target;
    IF c.relkind <> 'p' THEN
        RAISE EXCEPTION '"%" is not a partitioned table', target
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Declare it with PARTITION BY RANGE (' || quote_ident(time_column) || ').';
    END IF;
    IF NOT pg_has_role(c.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column AND NOT a.attisdropped AND a.attnum > 0;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', time_column, target
            USING ERRCODE = 'undefined_column';
    END IF;
    SELECT a.attname INTO keycol FROM pg_partitioned_table p
      JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
     WHERE p.partrelid = target AND p.partstrat = 'r' AND p.partnatts = 1;
    IF keycol IS DISTINCT FROM time_column THEN
        RAISE EXCEPTION 'table "%" is not partitioned by range on column "%"', target, time_column
            USING ERRCODE = 'invalid_table_definition',
                  DETAIL = 'Partition key: ' || pg_get_partkeydef(target) || '.',
                  HINT = 'Declare it with PARTITION BY RANGE (' || quote_ident(time_column) || ').';
    END IF;
    IF typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of table "%" has type %', time_column, target, typ
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'The time column must be timestamptz, timestamp or date.';
    END IF;
    IF NOT (partition_interval IN (interval '1 day', interval '1 week', interval '1 month')
            OR (partition_interval >= interval '1 hour' AND partition_interval < interval '1 day'
                AND date_part('month', partition_interval) = 0 AND date_part('day', partition_interval) = 0
                AND date_part('minute', partition_interval) = 0 AND date_part('second', partition_interval) = 0
                AND 24 % date_part('hour', partition_interval)::int = 0)) THEN
        RAISE EXCEPTION 'invalid partition_interval "%" for table "%"', partition_interval, target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 month, 1 week, 1 day, or a number of hours dividing 24 (1, 2, 3, 4, 6, 8, 12 hours).';
    END IF;
    IF typ = 'date'::regtype AND partition_interval < interval '1 day' THEN
        RAISE EXCEPTION 'partition_interval "%" is shorter than a day, but column "%" is a date', partition_interval, time_column
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention IS NOT NULL AND retention <= interval '0' THEN
        RAISE EXCEPTION 'retention "%" for table "%" must be positive', retention, target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL to keep every partition.';
    END IF;
    IF premake < 0 THEN
        RAISE EXCEPTION 'premake % for table "%" must not be negative', premake, target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(c.relname) + length('_pYYYYMMDD_HH24MI') > 63 THEN
        RAISE EXCEPTION 'table name "%" is too long for partition names', c.relname
            USING ERRCODE = 'name_too_long';
    END IF;
    PERFORM talaria._record_time_table(target, time_column, partition_interval, retention, premake);
    PERFORM talaria._premake(target);
END
$$;
COMMENT ON FUNCTION talaria.create_time_table(regclass, name, interval, interval, int) IS 'Make a RANGE-partitioned table a time table: partitions on demand, premake, retention';

-- Premake ahead and drop partitions wholly older than retention, for every
-- time table the caller owns.  Dropping a partition takes ACCESS EXCLUSIVE
-- on the parent; it is tried with NOWAIT so that ingesters never queue
-- behind it: a table in use is skipped (NOTICE) and handled by a later run.
CREATE FUNCTION talaria.run_maintenance() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt      talaria.time_tables;
    p       record;
    typ     regtype;
    upper   timestamp;
    cutoff  timestamp;
BEGIN
    FOR tt IN SELECT t.* FROM talaria.time_tables t JOIN pg_class c ON c.oid = t.target
               WHERE pg_has_role(c.relowner, 'USAGE') ORDER BY t.target::text LOOP
        PERFORM talaria._premake(tt.target);
        CONTINUE WHEN tt.retention IS NULL;
        cutoff := (now() AT TIME ZONE 'UTC')::timestamp - tt.retention;
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = tt.target AND a.attname = tt.time_column;
        FOR p IN SELECT i.inhrelid::regclass AS part,
                        substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']*)''\)') AS hi
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = tt.target ORDER BY 1::text LOOP
            CONTINUE WHEN p.hi IS NULL;
            upper := CASE WHEN typ = 'timestamptz'::regtype
                          THEN (p.hi::timestamptz AT TIME ZONE 'UTC')::timestamp
                          ELSE p.hi::timestamp END;
            CONTINUE WHEN upper > cutoff;
            BEGIN
                EXECUTE format('LOCK TABLE ONLY %s, %s IN ACCESS EXCLUSIVE MODE NOWAIT',
                               tt.target, p.part);
                EXECUTE format('DROP TABLE %s', p.part);
            EXCEPTION WHEN lock_not_available THEN
                RAISE NOTICE 'partition "%" is in use; it will be dropped by a later run_maintenance()', p.part;
            END;
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION talaria.run_maintenance() IS 'Premake partitions ahead and drop those past retention; schedule it (pg_cron or cron + psql)';

CREATE FUNCTION talaria.ingest() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'tt_ingest';
COMMENT ON FUNCTION talaria.ingest() IS 'Ingest trigger: BEFORE INSERT FOR EACH ROW EXECUTE FUNCTION talaria.ingest(transform, target [, on_error])';

CREATE FUNCTION talaria.create_pipeline(source regclass, target regclass, transform text,
        on_error text DEFAULT 'abort') RETURNS void
    LANGUAGE plpgsql CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    s   record;
    t   record;
    args text;
BEGIN
    IF source IS NULL OR target IS NULL OR transform IS NULL OR on_error IS NULL THEN
        RAISE EXCEPTION 'source, target, transform and on_error must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF on_error NOT IN ('abort', 'dead_letter') THEN
        RAISE EXCEPTION 'invalid on_error "%"', on_error
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''abort'' or ''dead_letter''.';
    END IF;
    SELECT * INTO s FROM pg_class WHERE oid = source;
    SELECT * INTO t FROM pg_class WHERE oid = target;
    IF s.relkind <> 'r' THEN
        RAISE EXCEPTION 'pipeline source "%" is not a plain table', source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF t.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pipeline target "%" is not a table', target
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF source = target THEN
        RAISE EXCEPTION 'pipeline source and target are the same table "%"', source
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_has_role(s.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', source USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT pg_has_role(t.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM talaria.transforms WHERE name = transform) THEN
        RAISE EXCEPTION 'transform "%" does not exist', transform
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with talaria.register_lua() or talaria.register_native().';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = source AND tgfoid = 'talaria.ingest()'::regprocedure) THEN
        RAISE EXCEPTION 'table "%" already has a pipeline', source
            USING ERRCODE = 'duplicate_object',
                  HINT = 'A source feeds one pipeline; drop its talaria_ingest triggers first.';
    END IF;
    args := format('%L, %L, %L', transform, target::text, on_error);
    EXECUTE format('CREATE TRIGGER talaria_ingest BEFORE INSERT ON %s FOR EACH ROW'
                   ' EXECUTE FUNCTION talaria.ingest(%s)', source, args);
    EXECUTE format('CREATE TRIGGER talaria_ingest_flush AFTER INSERT ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION talaria.ingest(%s)', source, args);
END
$$;
COMMENT ON FUNCTION talaria.create_pipeline(regclass, regclass, text, text) IS 'Every row inserted or COPYed into source runs through transform and lands in target';

CREATE FUNCTION talaria._record_computed_column(target regclass, column_name name, transform text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM talaria._check_session_owns(target);
    INSERT INTO talaria.computed_columns VALUES (target, column_name, transform)
    ON CONFLICT ON CONSTRAINT computed_columns_pkey DO UPDATE SET transform = EXCLUDED.transform;
END
$$;
REVOKE ALL ON FUNCTION talaria._record_computed_column(regclass, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION talaria._record_computed_column(regclass, name, text) TO PUBLIC;

CREATE FUNCTION talaria.add_computed_column(target regclass, "column" name, transform text) RETURNS void
    LANGUAGE plpgsql CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    a record;
BEGIN
    IF target IS NULL OR "column" IS NULL OR transform IS NULL THEN
        RAISE EXCEPTION 'target, column and transform must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', target USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT * INTO a FROM pg_attribute
     WHERE attrelid = target AND attname = "column" AND attnum > 0 AND NOT attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', "column", target
            USING ERRCODE = 'undefined_column';
    END IF;
    IF a.attgenerated <> '' OR a.attidentity <> '' THEN
        RAISE EXCEPTION 'column "%" of table "%" is generated or an identity column', "column", target
            USING ERRCODE = 'invalid_column_definition';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM talaria.transforms WHERE name = transform) THEN
        RAISE EXCEPTION 'transform "%" does not exist', transform
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with talaria.register_lua() or talaria.register_native().';
    END IF;
    PERFORM talaria._record_computed_column(target, "column", transform);
END
$$;
COMMENT ON FUNCTION talaria.add_computed_column(regclass, name, text) IS 'Set column from the transform''s scalar result for every row a pipeline stores into target';

-- A dropped table leaves no time-table or computed-column rows behind.
CREATE FUNCTION talaria._forget_dropped() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM talaria.time_tables t
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.target;
    DELETE FROM talaria.computed_columns c
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.target
       AND (d.objsubid = 0 OR d.address_args[1] IS NULL AND d.address_names[3] = c.column_name);
END
$$;
CREATE EVENT TRIGGER talaria_forget_dropped ON sql_drop
    EXECUTE FUNCTION talaria._forget_dropped();
