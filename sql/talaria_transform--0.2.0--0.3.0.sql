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
    -- remote tables are named after the partitions (<table>_p<date>):
    -- two time tables of the same name placed in the same remote schema
    -- of a server would share them
    IF EXISTS (SELECT 1 FROM talaria.remote_placements p JOIN pg_class c ON c.oid = p.target
                WHERE p.target <> _validate_remote_placement.target
                  AND c.relname = (SELECT relname FROM pg_class WHERE oid = _validate_remote_placement.target)
                  AND p.remote_schema = _validate_remote_placement.remote_schema
                  AND p.servers && _validate_remote_placement.servers) THEN
        RAISE EXCEPTION 'another time table named "%" already places its partitions in schema "%" of one of these servers',
                        (SELECT relname FROM pg_class WHERE oid = target), remote_schema
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use another remote_schema: the remote tables are named after the partitions.';
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
              WHERE i.inhparent = tt.target ORDER BY i.inhrelid::regclass::text LOOP
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
            -- only what the placement made: on a placement server, in its
            -- remote schema, under the partition's own name
            IF tt.retention_mode = 'drop' AND (pl.target IS NULL OR NOT srv = ANY (pl.servers)
                                                OR rschema <> pl.remote_schema
                                                OR rtable <> (SELECT relname FROM pg_class WHERE oid = p.part)) THEN
                RAISE NOTICE 'partition "%" is a foreign table on server "%": retention skips it', p.part, srv
                    USING HINT = 'Its rows live on the remote server; retention drops only foreign partitions made by talaria.set_remote_placement(), or use retention_mode ''detach''.';
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

-- ---------------------------------------------------------------------
-- Talaria's users at home (issue 16): built-ins, typed computed columns,
-- pipelines that ignore unknown keys.  See README "Coming from Talaria".
-- ---------------------------------------------------------------------

-- Built-in transforms (kind 'builtin', run by the extension's own code):
-- make://identifier and make://timestamp, usable by every role.  They are
-- catalog rows like any transform (lookups, grants, statistics, the
-- dependency check of drop_transform) but come with the extension: nobody
-- replaces, drops or regrants them, and pg_dump leaves them out (CREATE
-- EXTENSION makes them again).
ALTER TABLE talaria.transforms
    DROP CONSTRAINT transforms_name_check,
    DROP CONSTRAINT transforms_kind_check,
    DROP CONSTRAINT transforms_check;
ALTER TABLE talaria.transforms
    ADD CONSTRAINT transforms_name_check
        CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' OR (kind = 'builtin' AND name ~ '^make://[a-z]+$')),
    ADD CONSTRAINT transforms_kind_check CHECK (kind IN ('lua', 'native', 'builtin')),
    ADD CONSTRAINT transforms_check
        CHECK ((kind = 'lua' AND source IS NOT NULL AND library IS NULL AND symbol IS NULL)
            OR (kind = 'native' AND source IS NULL AND library IS NOT NULL AND symbol IS NOT NULL)
            OR (kind = 'builtin' AND source IS NULL AND library IS NULL AND symbol IS NOT NULL));
INSERT INTO talaria.transforms (name, kind, symbol, acl)
SELECT b.name, 'builtin', b.symbol,
       ARRAY[pg_catalog.makeaclitem(0, current_user::regrole, 'EXECUTE', false)]
  FROM (VALUES ('make://identifier', 'identifier'), ('make://timestamp', 'timestamp')) AS b(name, symbol);
SELECT pg_catalog.pg_extension_config_dump('talaria.transforms', 'WHERE kind OPERATOR(pg_catalog.<>) ''builtin''');

-- Typed computed columns: a policy for a failing or mistyped value
-- (on_error: 'pipeline' as before, 'null' as Talaria, 'dead_letter',
-- 'abort') and for a fraction into an integer column (rounding: 'error'
-- as before, 'round', 'truncate' as Talaria).  Read once per statement
-- with the computed columns.
ALTER TABLE talaria.computed_columns
    ADD COLUMN on_error text NOT NULL DEFAULT 'pipeline'
        CHECK (on_error IN ('pipeline', 'null', 'dead_letter', 'abort')),
    ADD COLUMN rounding text NOT NULL DEFAULT 'error'
        CHECK (rounding IN ('error', 'round', 'truncate'));
COMMENT ON COLUMN talaria.computed_columns.on_error IS 'A failing or mistyped value: pipeline (the pipeline''s on_error), null (store NULL, as Talaria), dead_letter, abort';
COMMENT ON COLUMN talaria.computed_columns.rounding IS 'A fraction into an integer column: error, round (half away from zero), truncate (toward zero, as Talaria)';

DROP FUNCTION talaria.add_computed_column(regclass, name, text);
DROP FUNCTION talaria._validate_computed_column(regclass, name, text);

-- Internal: add_computed_column's checks, run as the caller.  With a type
-- (Talaria's names or any SQL type), a missing column is added to the
-- table and an existing one must have that type.
CREATE FUNCTION talaria._validate_computed_column(target regclass, "column" name, transform text,
        type text, on_error text, rounding text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c record;
    a record;
    want regtype;
    sqltype text;
BEGIN
    SELECT * INTO c FROM pg_class WHERE oid = target;
    IF c.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', target USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT pg_has_role(c.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF on_error NOT IN ('pipeline', 'null', 'dead_letter', 'abort') THEN
        RAISE EXCEPTION 'invalid on_error "%" for computed column "%"', on_error, "column"
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''pipeline'' (the pipeline''s on_error), ''null'' (store NULL, as Talaria does), ''dead_letter'' or ''abort''.';
    END IF;
    IF rounding NOT IN ('error', 'round', 'truncate') THEN
        RAISE EXCEPTION 'invalid rounding "%" for computed column "%"', rounding, "column"
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''error'', ''round'' (half away from zero) or ''truncate'' (toward zero, as Talaria does).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM talaria.transforms t WHERE t.name = transform) THEN
        RAISE EXCEPTION 'transform "%" does not exist', transform
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with talaria.register_lua() or talaria.register_native(), or use a built-in (make://identifier, make://timestamp).';
    END IF;
    IF type IS NOT NULL THEN
        sqltype := CASE lower(type)
            WHEN 'string' THEN 'text' WHEN 'int32' THEN 'integer' WHEN 'int64' THEN 'bigint'
            WHEN 'float64' THEN 'double precision' WHEN 'bool' THEN 'boolean'
            WHEN 'timestamp' THEN 'timestamp with time zone' WHEN 'json' THEN 'jsonb'
            ELSE type END;
        want := to_regtype(sqltype);
        IF want IS NULL THEN
            RAISE EXCEPTION 'type "%" of computed column "%" does not exist', type, "column"
                USING ERRCODE = 'undefined_object',
                      HINT = 'Use one of Talaria''s types (string, int32, int64, float64, bool, timestamp, json) or a SQL type.';
        END IF;
    END IF;
    SELECT * INTO a FROM pg_attribute
     WHERE attrelid = target AND attname = "column" AND attnum > 0 AND NOT attisdropped;
    IF NOT FOUND AND want IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', target, "column", format_type(want, NULL));
        SELECT * INTO a FROM pg_attribute
         WHERE attrelid = target AND attname = "column" AND attnum > 0 AND NOT attisdropped;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', "column", target
            USING ERRCODE = 'undefined_column',
                  HINT = 'Give the column''s type (type => ''string'', ''int64'', ...) to have it added.';
    END IF;
    IF want IS NOT NULL AND a.atttypid <> want THEN
        RAISE EXCEPTION 'column "%" of table "%" has type %, not %', "column", target,
                format_type(a.atttypid, a.atttypmod), format_type(want, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Leave type out to use the column''s own type, or alter the column.';
    END IF;
    IF a.attgenerated <> '' OR a.attidentity <> '' THEN
        RAISE EXCEPTION 'column "%" of table "%" is generated or an identity column', "column", target
            USING ERRCODE = 'invalid_column_definition';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION talaria._validate_computed_column(regclass, name, text, text, text, text) FROM PUBLIC;

CREATE FUNCTION talaria.add_computed_column(target regclass, "column" name, transform text,
        type text DEFAULT NULL, on_error text DEFAULT 'pipeline', rounding text DEFAULT 'error') RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_add_computed_column';
COMMENT ON FUNCTION talaria.add_computed_column(regclass, name, text, text, text, text) IS 'Set column from the transform''s scalar result for every row a pipeline stores into target (type: add the column or check its type; on_error: pipeline, null, dead_letter, abort; rounding: error, round, truncate)';

-- Talaria's configuration, as it declares computed columns: a JSON array
-- of {"name", "type", "func"} (func: a transform name or make://...),
-- with this extension's "on_error" and "rounding" optional in each.
CREATE FUNCTION talaria.add_computed_columns(target regclass, columns jsonb,
        on_error text DEFAULT 'null', rounding text DEFAULT 'truncate') RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c jsonb;
    n integer := 0;
BEGIN
    IF jsonb_typeof(columns) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'computed columns must be a JSON array of {"name", "type", "func"} objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR c IN SELECT * FROM jsonb_array_elements(columns) LOOP
        IF jsonb_typeof(c) IS DISTINCT FROM 'object' OR c->>'name' IS NULL
           OR coalesce(c->>'func', c->>'funcname') IS NULL THEN
            RAISE EXCEPTION 'computed column % of the array needs "name" and "func"', n + 1
                USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Got ' || c::text || '.';
        END IF;
        PERFORM talaria.add_computed_column(target, (c->>'name')::name,
                coalesce(c->>'func', c->>'funcname'), c->>'type',
                coalesce(c->>'on_error', on_error), coalesce(c->>'rounding', rounding));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION talaria.add_computed_columns(regclass, jsonb, text, text) IS 'Talaria''s computed-column declarations ([{"name", "type", "func"}]); defaults as Talaria: a failing value stores NULL, a fraction into an integer truncates';

-- Pipelines may ignore result keys that name no column (Talaria's
-- behaviour): unknown_keys 'error' (as before) or 'ignore'.  Kept in
-- talaria.pipelines and in the trigger's fourth argument.
ALTER TABLE talaria.pipelines
    ADD COLUMN unknown_keys text NOT NULL DEFAULT 'error' CHECK (unknown_keys IN ('error', 'ignore'));
COMMENT ON COLUMN talaria.pipelines.unknown_keys IS 'A result key that names no column of the target: error, or ignore (as Talaria)';

DROP FUNCTION talaria._record_pipeline(regclass, regclass, text, text);
CREATE FUNCTION talaria._record_pipeline(source regclass, target regclass, transform text,
        on_error text, unknown_keys text) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_record_pipeline';

DROP FUNCTION talaria.create_pipeline(regclass, regclass, text, text);
CREATE FUNCTION talaria.create_pipeline(source regclass, target regclass, transform text,
        on_error text DEFAULT 'abort', unknown_keys text DEFAULT 'error') RETURNS void
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
    IF unknown_keys IS NULL THEN
        RAISE EXCEPTION 'unknown_keys must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF unknown_keys NOT IN ('error', 'ignore') THEN
        RAISE EXCEPTION 'invalid unknown_keys "%"', unknown_keys
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''error'' (a key that names no column fails the row) or ''ignore'' (as Talaria).';
    END IF;
    SELECT c.*, n.nspname INTO s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = source;
    SELECT c.*, n.nspname INTO t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = target;
    IF s.relkind NOT IN ('r', 'v') THEN
        RAISE EXCEPTION 'pipeline source "%" is not a plain table or a view', source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF s.relispartition THEN
        RAISE EXCEPTION 'pipeline source "%" is a partition', source
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'Rows inserted through its parent would not see the pipeline''s statement trigger.',
                  HINT = 'Use a plain table that is not a partition as the source.';
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
    IF NOT EXISTS (SELECT 1 FROM talaria.transforms x WHERE x.name = transform) THEN
        RAISE EXCEPTION 'transform "%" does not exist', transform
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with talaria.register_lua() or talaria.register_native().';
    END IF;
    IF EXISTS (SELECT 1 FROM talaria.transforms x WHERE x.name = transform AND x.kind = 'builtin') THEN
        RAISE EXCEPTION 'transform "%" makes a value, not a row', transform
            USING ERRCODE = 'wrong_object_type',
                  HINT = format('Use it as a computed column: talaria.add_computed_column(%L, ''column'', %L).',
                                target::text, transform);
    END IF;
    IF NOT talaria.has_transform_privilege(s.relowner::regrole, transform) THEN
        RAISE EXCEPTION 'permission denied for transform "%"', transform
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role "%s", the owner of table %s, may not use it.', s.relowner::regrole, source),
                  HINT = 'Its owner can run talaria.grant_transform().';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = source AND tgfoid = 'talaria.ingest()'::regprocedure) THEN
        RAISE EXCEPTION 'table "%" already has a pipeline', source
            USING ERRCODE = 'duplicate_object',
                  HINT = 'A source feeds one pipeline; drop it with talaria.drop_pipeline() first.';
    END IF;
    args := format('%L, %L, %L', transform, format('%I.%I', t.nspname, t.relname), on_error);
    IF unknown_keys = 'ignore' THEN
        args := args || ', ''ignore''';
    END IF;
    -- on a view, INSTEAD OF: the trigger returns each row it stored, so
    -- INSERT and COPY count them with no hook (see README: counts)
    EXECUTE format('CREATE TRIGGER talaria_ingest %s INSERT ON %I.%I FOR EACH ROW'
                   ' EXECUTE FUNCTION talaria.ingest(%s)',
                   CASE s.relkind WHEN 'v' THEN 'INSTEAD OF' ELSE 'BEFORE' END,
                   s.nspname, s.relname, args);
    EXECUTE format('CREATE TRIGGER talaria_ingest_flush AFTER INSERT ON %I.%I FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION talaria.ingest(%s)', s.nspname, s.relname, args);
    IF s.relkind = 'r' AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = source AND conname = 'talaria_pipeline_source') THEN
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT talaria_pipeline_source CHECK (false) NOT VALID',
                       s.nspname, s.relname);
        EXECUTE format('COMMENT ON CONSTRAINT talaria_pipeline_source ON %I.%I IS %L',
                       s.nspname, s.relname,
                       'Rows go through the talaria pipeline and are never kept here; this refuses them if the pipeline trigger is gone. talaria.drop_pipeline() removes both.');
    END IF;
    PERFORM talaria._record_pipeline(source, target, transform, on_error, unknown_keys);
END
$$;
COMMENT ON FUNCTION talaria.create_pipeline(regclass, regclass, text, text, text) IS 'Ingest table -> transform -> target: triggers on source (on_error: abort, dead_letter; unknown_keys: error, ignore)';

-- ---------------------------------------------------------------------
-- Pipeline definitions cached per backend (issue 15, item 2): every
-- change to the pipeline catalogs tells every backend, as changes to
-- talaria.transforms do (a relcache invalidation of the catalog table,
-- delivered at commit, and undone on rollback).  ENABLE ALWAYS: also
-- under session_replication_role = replica (logical replication, some
-- restore tools).
-- ---------------------------------------------------------------------
CREATE TRIGGER pipelines_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON talaria.pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION talaria._transforms_changed();
CREATE TRIGGER time_tables_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON talaria.time_tables
    FOR EACH STATEMENT EXECUTE FUNCTION talaria._transforms_changed();
CREATE TRIGGER computed_columns_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON talaria.computed_columns
    FOR EACH STATEMENT EXECUTE FUNCTION talaria._transforms_changed();
ALTER TABLE talaria.transforms ENABLE ALWAYS TRIGGER transforms_changed;
ALTER TABLE talaria.pipelines ENABLE ALWAYS TRIGGER pipelines_changed;
ALTER TABLE talaria.time_tables ENABLE ALWAYS TRIGGER time_tables_changed;
ALTER TABLE talaria.computed_columns ENABLE ALWAYS TRIGGER computed_columns_changed;
