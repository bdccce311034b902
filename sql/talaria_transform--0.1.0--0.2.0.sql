/* talaria_transform 0.1.0 -> 0.2.0: security (issue 10) */

\echo Use "ALTER EXTENSION talaria_transform UPDATE TO '0.2.0'" to load this file. \quit

-- Any login role may register Lua transforms and build pipelines on its
-- own tables (every function checks the caller's rights), and work on a
-- time table runs as its owner, who must reach talaria's helpers: the
-- schema is usable by PUBLIC.
GRANT USAGE ON SCHEMA talaria TO PUBLIC;

-- ---------------------------------------------------------------------
-- Transforms get privileges: an ACL of the roles allowed to use them
-- (run with transform_row, attach to pipelines and computed columns).
-- A new transform is usable by its owner only.  Transforms registered
-- under 0.1.0 were usable by every role: they keep that (granted to
-- PUBLIC here); their owners can revoke it with talaria.revoke_transform.
-- ---------------------------------------------------------------------
ALTER TABLE talaria.transforms ADD COLUMN acl aclitem[];
UPDATE talaria.transforms
   SET acl = ARRAY[pg_catalog.makeaclitem(0, owner, 'EXECUTE', false)];
COMMENT ON COLUMN talaria.transforms.acl IS 'Who else may use the transform (talaria.grant_transform); NULL: its owner only';

CREATE FUNCTION talaria.grant_transform(transform text, "role" text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_grant_transform';
COMMENT ON FUNCTION talaria.grant_transform(text, text) IS 'Allow a role (or PUBLIC) to run the transform and attach it to pipelines and computed columns (owner only)';

CREATE FUNCTION talaria.revoke_transform(transform text, "role" text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_revoke_transform';
COMMENT ON FUNCTION talaria.revoke_transform(text, text) IS 'Take back what talaria.grant_transform gave (owner only)';

CREATE FUNCTION talaria.has_transform_privilege("role" regrole, transform text) RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'tt_has_transform_privilege';
COMMENT ON FUNCTION talaria.has_transform_privilege(regrole, text) IS 'May the role use the transform?  NULL if there is no such transform';

-- A transform in use is not dropped silently.
DROP FUNCTION talaria.drop_transform(text);
CREATE FUNCTION talaria.drop_transform(name text, "cascade" boolean DEFAULT false) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_drop_transform';
COMMENT ON FUNCTION talaria.drop_transform(text, boolean) IS 'Drop a transform (owner only); refuses while pipelines or computed columns use it, unless cascade';

-- ---------------------------------------------------------------------
-- Time tables: the catalog itself refuses settings maintenance cannot use
-- (NOT VALID: a 0.1.0 row that breaks them is left for its owner to fix).
-- ---------------------------------------------------------------------
ALTER TABLE talaria.time_tables
    ADD CONSTRAINT time_tables_interval_check CHECK (
        partition_interval IN (interval '1 day', interval '1 week', interval '1 month')
        OR (partition_interval >= interval '1 hour' AND partition_interval < interval '1 day'
            AND date_part('month', partition_interval) = 0 AND date_part('day', partition_interval) = 0
            AND date_part('minute', partition_interval) = 0 AND date_part('second', partition_interval) = 0
            AND 24 % date_part('hour', partition_interval)::int = 0)) NOT VALID,
    ADD CONSTRAINT time_tables_retention_check CHECK (retention > interval '0') NOT VALID,
    ADD CONSTRAINT time_tables_premake_check CHECK (premake >= 0) NOT VALID;

-- The accepted window of row times: a row older than now - max_past or
-- newer than now + max_future is that row's error (dead letter), not a new
-- partition.  NULL: no limit but the hard one (years 1 to 9999).  Time
-- tables of 0.1.0 keep no limit.
ALTER TABLE talaria.time_tables
    ADD COLUMN max_past interval CHECK (max_past > interval '0'),
    ADD COLUMN max_future interval CHECK (max_future > interval '0');

-- The 0.1.0 catalog writers were SECURITY DEFINER functions executable by
-- PUBLIC; their work is now done by C functions that check the caller and
-- write as the catalog's owner with a fixed search_path.
DROP FUNCTION talaria.create_time_table(regclass, name, interval, interval, int);
DROP FUNCTION talaria.add_computed_column(regclass, name, text);
DROP FUNCTION talaria._record_time_table(regclass, name, interval, interval, int);
DROP FUNCTION talaria._record_computed_column(regclass, name, text);
DROP FUNCTION talaria._check_session_owns(regclass);

-- Internal: create_time_table's checks, run as the caller.
CREATE FUNCTION talaria._validate_time_table(target regclass, time_column name,
        partition_interval interval, retention interval, premake int,
        max_past interval, max_future interval, retention_mode text,
        archive_schema name, maintenance boolean, dead_letter_retention interval) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c       record;
    keycol  name;
    typ     regtype;
BEGIN
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
    IF max_past <= interval '0' OR max_future <= interval '0' THEN
        RAISE EXCEPTION 'max_past and max_future for table "%" must be positive', target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for no limit.';
    END IF;
    IF retention_mode NOT IN ('drop', 'detach', 'archive') THEN
        RAISE EXCEPTION 'invalid retention_mode "%" for table "%"', retention_mode, target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''drop'', ''detach'' or ''archive'' (with archive_schema).';
    END IF;
    IF (retention_mode = 'archive') <> (archive_schema IS NOT NULL) THEN
        RAISE EXCEPTION 'retention_mode ''archive'' and archive_schema go together (table "%")', target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF archive_schema IS NOT NULL AND to_regnamespace(quote_ident(archive_schema)) IS NULL THEN
        RAISE EXCEPTION 'archive schema "%" for table "%" does not exist', archive_schema, target
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    IF archive_schema IS NOT NULL AND
       NOT has_schema_privilege(c.relowner, (SELECT oid FROM pg_namespace WHERE nspname = archive_schema), 'CREATE') THEN
        RAISE EXCEPTION 'the owner of table "%" may not create in archive schema "%"', target, archive_schema
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF dead_letter_retention <= interval '0' THEN
        RAISE EXCEPTION 'dead_letter_retention for table "%" must be positive', target
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use NULL to keep dead letters.';
    END IF;
    IF length(c.relname) + length('_pYYYYMMDD_HH24MI') > 63 THEN
        RAISE EXCEPTION 'table name "%" is too long for partition names', c.relname
            USING ERRCODE = 'name_too_long';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION talaria._validate_time_table(regclass, name, interval, interval, int, interval, interval, text, name, boolean, interval) FROM PUBLIC;

CREATE FUNCTION talaria.create_time_table(target regclass, time_column name,
        partition_interval interval DEFAULT '1 day', retention interval DEFAULT NULL,
        premake int DEFAULT 2, max_past interval DEFAULT NULL,
        max_future interval DEFAULT '1 year', retention_mode text DEFAULT 'drop',
        archive_schema name DEFAULT NULL, maintenance boolean DEFAULT true,
        dead_letter_retention interval DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_create_time_table';
COMMENT ON FUNCTION talaria.create_time_table(regclass, name, interval, interval, int, interval, interval, text, name, boolean, interval) IS 'Make a RANGE-partitioned table a time table: partitions on demand, premake, retention, accepted window';

-- Internal: add_computed_column's checks, run as the caller.
CREATE FUNCTION talaria._validate_computed_column(target regclass, "column" name, transform text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c record;
    a record;
BEGIN
    SELECT * INTO c FROM pg_class WHERE oid = target;
    IF c.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', target USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT pg_has_role(c.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = 'insufficient_privilege';
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
    IF NOT EXISTS (SELECT 1 FROM talaria.transforms t WHERE t.name = transform) THEN
        RAISE EXCEPTION 'transform "%" does not exist', transform
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with talaria.register_lua() or talaria.register_native().';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION talaria._validate_computed_column(regclass, name, text) FROM PUBLIC;

CREATE FUNCTION talaria.add_computed_column(target regclass, "column" name, transform text) RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    AS 'MODULE_PATHNAME', 'tt_add_computed_column';
COMMENT ON FUNCTION talaria.add_computed_column(regclass, name, text) IS 'Set column from the transform''s scalar result for every row a pipeline stores into target';

-- ---------------------------------------------------------------------
-- Work on a user's table runs as its owner: _create_partition and
-- _drop_expired are reached only through C (the ingest trigger, the
-- partition worker, create_time_table, _maintain_table), which switches
-- to the table's owner in a security-restricted operation first.  They
-- refuse to run as anyone else.
-- ---------------------------------------------------------------------
CREATE OR REPLACE FUNCTION talaria._create_partition(target regclass, t timestamp) RETURNS regclass
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
    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)',
                   nsp, pname, target);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                   target, nsp, pname,
                   talaria._partition_literal(typ, lo), talaria._partition_literal(typ, hi));
    RETURN format('%I.%I', nsp, pname)::regclass;
END
$$;
REVOKE ALL ON FUNCTION talaria._create_partition(regclass, timestamp) FROM PUBLIC;

-- Premake is done in C (talaria._maintain_table), as the owner.
DROP FUNCTION talaria._premake(regclass);

-- Retention: what happens to a partition wholly older than retention
-- ('drop'; 'detach': detached and kept; 'archive': detached and moved to
-- archive_schema), and a per-table switch for maintenance.
ALTER TABLE talaria.time_tables
    ADD COLUMN retention_mode text NOT NULL DEFAULT 'drop'
        CHECK (retention_mode IN ('drop', 'detach', 'archive')),
    ADD COLUMN archive_schema name,
    ADD COLUMN maintenance boolean NOT NULL DEFAULT true,
    ADD COLUMN dead_letter_retention interval CHECK (dead_letter_retention > interval '0'),
    ADD CONSTRAINT time_tables_archive_check
        CHECK ((retention_mode = 'archive') = (archive_schema IS NOT NULL));

-- Handles the partitions of target wholly older than its retention and
-- returns how many.  Taking a partition out needs ACCESS EXCLUSIVE on the
-- parent; it is tried with NOWAIT so that ingesters never queue behind it:
-- a table in use is skipped (NOTICE) and handled by a later run.  Foreign
-- partitions are skipped with a NOTICE (their rows live on another server).
CREATE FUNCTION talaria._drop_expired(target regclass) RETURNS int
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tt      talaria.time_tables;
    p       record;
    typ     regtype;
    upper   timestamp;
    cutoff  timestamp;
    n       int := 0;
BEGIN
    SELECT * INTO tt FROM talaria.time_tables WHERE time_tables.target = _drop_expired.target;
    IF NOT FOUND OR tt.retention IS NULL THEN
        RETURN 0;
    END IF;
    IF (SELECT relowner::regrole FROM pg_class WHERE oid = target) <> current_user::regrole THEN
        RAISE EXCEPTION 'talaria._drop_expired must run as the owner of table %', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
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
        IF p.relkind = 'f' THEN
            RAISE NOTICE 'partition "%" is a foreign table: retention skips it', p.part;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('LOCK TABLE ONLY %s, %s IN ACCESS EXCLUSIVE MODE NOWAIT',
                           tt.target, p.part);
            IF tt.retention_mode = 'drop' THEN
                EXECUTE format('DROP TABLE %s', p.part);
            ELSE
                EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', tt.target, p.part);
                IF tt.retention_mode = 'archive' THEN
                    EXECUTE format('ALTER TABLE %s SET SCHEMA %I', p.part, tt.archive_schema);
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
REVOKE ALL ON FUNCTION talaria._drop_expired(regclass) FROM PUBLIC;

-- What maintenance did, one row per table and run (kept 30 days).
CREATE TABLE talaria.maintenance_runs (
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL,
    target              regclass NOT NULL,
    partitions_made     int NOT NULL,
    partitions_retired  int NOT NULL,
    dead_letters_removed bigint NOT NULL,
    error               text,
    sqlstate            text,
    run_by              regrole NOT NULL
);
CREATE INDEX ON talaria.maintenance_runs (target, finished_at);
COMMENT ON TABLE talaria.maintenance_runs IS 'One row per time table and maintenance run (run_maintenance, run_maintenance_proc, the scheduler): what it did or why it failed; kept 30 days';
REVOKE ALL ON talaria.maintenance_runs FROM PUBLIC;
GRANT SELECT ON talaria.maintenance_runs TO PUBLIC;

CREATE INDEX ON talaria.dead_letters (target, at);

-- One time table: premake, retention and dead-letter retention, as the
-- table's owner, in a subtransaction; a failure is a WARNING and a row of
-- maintenance_runs, never an error of the caller.  The caller must have
-- the owner's privileges.  Returns whether it succeeded.
CREATE FUNCTION talaria.run_maintenance(target regclass) RETURNS boolean
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_run_maintenance_one';
COMMENT ON FUNCTION talaria.run_maintenance(regclass) IS 'Premake and retention for one time table, as its owner; failures are recorded in talaria.maintenance_runs';

-- Every time table the caller may maintain (its own, or all for a
-- superuser) whose maintenance is on, each as its owner; one table's
-- failure does not stop the others.  Returns the number of failures.
DROP FUNCTION talaria.run_maintenance();
CREATE FUNCTION talaria.run_maintenance() RETURNS int
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    target  regclass;
    failed  int := 0;
BEGIN
    FOR target IN SELECT t.target FROM talaria.time_tables t JOIN pg_class c ON c.oid = t.target
                   WHERE t.maintenance AND pg_has_role(c.relowner, 'USAGE') ORDER BY t.target::text LOOP
        IF NOT talaria.run_maintenance(target) THEN
            failed := failed + 1;
        END IF;
    END LOOP;
    RETURN failed;
END
$$;
COMMENT ON FUNCTION talaria.run_maintenance() IS 'Premake and retention for every time table the caller owns; see talaria.maintenance_runs';

-- The same, committing after each table (CALL it outside a transaction
-- block): a partition taken out is unlocked at once, and a long run holds
-- nothing across tables.
CREATE PROCEDURE talaria.run_maintenance_proc()
    LANGUAGE plpgsql
    AS $$
DECLARE
    target  regclass;
BEGIN
    FOR target IN SELECT t.target FROM talaria.time_tables t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.target
                   WHERE t.maintenance AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
                   ORDER BY t.target::text LOOP
        PERFORM talaria.run_maintenance(target);
        COMMIT;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE talaria.run_maintenance_proc() IS 'run_maintenance() with a transaction per table (CALL it outside a transaction block)';

-- Partitions of every time table, with their bounds, size and kind.
CREATE VIEW talaria.time_table_partitions WITH (security_invoker = true) AS
SELECT t.target AS time_table, i.inhrelid::regclass AS partition,
       substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']*)''\)') AS lower_bound,
       substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']*)''\)') AS upper_bound,
       CASE c.relkind WHEN 'f' THEN 'foreign' WHEN 'p' THEN 'partitioned' ELSE 'local' END AS kind,
       CASE WHEN c.relkind = 'f' THEN NULL ELSE pg_catalog.pg_total_relation_size(c.oid) END AS total_bytes,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
  FROM talaria.time_tables t
  JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) t.target
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid;
COMMENT ON VIEW talaria.time_table_partitions IS 'Each time table''s partitions: bounds, kind (local, foreign, partitioned), size';
GRANT SELECT ON talaria.time_table_partitions TO PUBLIC;


-- ---------------------------------------------------------------------
-- pg_dump carries the catalogs: transforms (with owners and grants),
-- time tables, computed columns and dead letters.  Pipelines are triggers
-- on the users' tables and are dumped with them.
-- ---------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('talaria.transforms', '');
SELECT pg_catalog.pg_extension_config_dump('talaria.time_tables', '');
SELECT pg_catalog.pg_extension_config_dump('talaria.computed_columns', '');
SELECT pg_catalog.pg_extension_config_dump('talaria.dead_letters', '');

-- ---------------------------------------------------------------------
-- Pipelines are recorded: the target by OID (a rename of the target or
-- its schema does not break the pipeline; pg_dump carries it by name).
-- A source carries a CHECK (false) constraint that its pipeline trigger
-- never lets rows reach: if the trigger goes (DROP EXTENSION ... CASCADE,
-- DROP TRIGGER), inserts are refused instead of silently kept.
-- ---------------------------------------------------------------------
CREATE TABLE talaria.pipelines (
    source      regclass PRIMARY KEY,
    target      regclass NOT NULL,
    transform   text NOT NULL,
    on_error    text NOT NULL CHECK (on_error IN ('abort', 'dead_letter'))
);
COMMENT ON TABLE talaria.pipelines IS 'Pipelines made by talaria.create_pipeline; change them with create_pipeline / drop_pipeline';
REVOKE ALL ON talaria.pipelines FROM PUBLIC;
GRANT SELECT ON talaria.pipelines TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('talaria.pipelines', '');

-- the pipelines 0.1.0 made (their triggers named the target as text)
INSERT INTO talaria.pipelines
SELECT t.tgrelid, to_regclass(a[2]), a[1], coalesce(a[3], 'abort')
  FROM pg_catalog.pg_trigger t,
       LATERAL (SELECT pg_catalog.string_to_array(pg_catalog.encode(t.tgargs, 'escape'), '\000') AS a) x
 WHERE t.tgfoid = 'talaria.ingest()'::regprocedure AND t.tgname = 'talaria_ingest'
   AND to_regclass(a[2]) IS NOT NULL
ON CONFLICT DO NOTHING;

-- Records a pipeline whose triggers the caller has just made: the caller
-- must own source and target, the source's owner may use the transform.
CREATE FUNCTION talaria._record_pipeline(source regclass, target regclass, transform text,
        on_error text) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_record_pipeline';

CREATE OR REPLACE FUNCTION talaria.create_pipeline(source regclass, target regclass, transform text,
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
    PERFORM talaria._record_pipeline(source, target, transform, on_error);
END
$$;

-- Removes a pipeline: its triggers, the source's guard constraint and its
-- record.  The caller must own the source.
CREATE FUNCTION talaria.drop_pipeline(source regclass) RETURNS void
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    s   record;
    tg  name;
BEGIN
    SELECT c.*, n.nspname INTO s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = source;
    IF NOT pg_has_role(s.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', source USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = source AND tgfoid = 'talaria.ingest()'::regprocedure)
       AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = source AND conname = 'talaria_pipeline_source') THEN
        RAISE EXCEPTION 'table "%" has no pipeline', source USING ERRCODE = 'undefined_object';
    END IF;
    FOR tg IN SELECT tgname FROM pg_trigger WHERE tgrelid = source AND tgfoid = 'talaria.ingest()'::regprocedure LOOP
        EXECUTE format('DROP TRIGGER %I ON %I.%I', tg, s.nspname, s.relname);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = source AND conname = 'talaria_pipeline_source') THEN
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT talaria_pipeline_source', s.nspname, s.relname);
    END IF;
    PERFORM talaria._forget_pipeline(source);
END
$$;
COMMENT ON FUNCTION talaria.drop_pipeline(regclass) IS 'Remove the pipeline of a source table (its triggers, guard constraint and record)';

CREATE FUNCTION talaria._forget_pipeline(source regclass) RETURNS void
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_forget_pipeline';

-- A dropped table leaves no time-table, computed-column or pipeline rows.
CREATE OR REPLACE FUNCTION talaria._forget_dropped() RETURNS event_trigger
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
    DELETE FROM talaria.pipelines p
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
       AND (d.objid = p.source OR d.objid = p.target);
END
$$;

-- ---------------------------------------------------------------------
-- Dead letters: where the row failed and what the transform made of it;
-- replay after the transform (or the target) is fixed.
-- ---------------------------------------------------------------------
ALTER TABLE talaria.dead_letters
    ADD COLUMN stage text CHECK (stage IN ('transform', 'conversion')),
    ADD COLUMN result jsonb;
COMMENT ON COLUMN talaria.dead_letters.stage IS 'transform: the transform failed; conversion: its result could not be stored (result holds it)';

-- Runs chosen dead letters through their pipeline again (the pipeline of
-- talaria.pipelines with that target and transform), each in a
-- subtransaction: stored (or dropped by nil) -> the dead letter goes;
-- failing again -> it stays.  The caller sees and deletes the dead letters
-- of its own targets only, and needs INSERT on the source.
CREATE FUNCTION talaria.replay_dead_letters(target regclass DEFAULT NULL,
        transform text DEFAULT NULL, since timestamptz DEFAULT NULL,
        OUT replayed bigint, OUT failed bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET talaria.replaying = on
    AS $$
DECLARE
    d       record;
    src     regclass;
BEGIN
    replayed := 0;
    failed := 0;
    FOR d IN SELECT dl.ctid AS id, dl.target AS t, dl.transform AS tr, dl."row" AS r
               FROM talaria.dead_letters dl
              WHERE (replay_dead_letters.target IS NULL OR dl.target = replay_dead_letters.target)
                AND (replay_dead_letters.transform IS NULL OR dl.transform = replay_dead_letters.transform)
                AND (since IS NULL OR dl.at >= since)
              ORDER BY dl.at LOOP
        SELECT p.source INTO src FROM talaria.pipelines p
         WHERE p.target = d.t AND p.transform = d.tr;
        IF NOT FOUND THEN
            RAISE NOTICE 'no pipeline into % with transform "%": dead letter kept', d.t, d.tr;
            failed := failed + 1;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('INSERT INTO %s SELECT * FROM pg_catalog.jsonb_populate_record(NULL::%s, $1)',
                           src, src) USING d.r;
            DELETE FROM talaria.dead_letters WHERE ctid = d.id;
            replayed := replayed + 1;
        EXCEPTION WHEN OTHERS THEN
            failed := failed + 1;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION talaria.replay_dead_letters(regclass, text, timestamptz) IS 'Run dead letters through their pipeline again: stored ones leave talaria.dead_letters, failing ones stay';

-- ---------------------------------------------------------------------
-- Statistics per transform and per pipeline, cumulative across backends
-- (shared memory: talaria_transform in shared_preload_libraries; without
-- it, the current backend's own counters).
-- ---------------------------------------------------------------------
CREATE FUNCTION talaria._transform_stats(OUT transform text, OUT calls bigint,
        OUT rows_out bigint, OUT rows_dropped bigint, OUT errors bigint,
        OUT dead_letters bigint, OUT total_time_ms double precision,
        OUT mean_time_ms double precision, OUT last_error text,
        OUT last_error_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_transform_stats';
CREATE FUNCTION talaria._pipeline_stats(OUT source regclass, OUT target regclass,
        OUT transform text, OUT rows_in bigint, OUT rows_stored bigint,
        OUT rows_dropped bigint, OUT dead_letters bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'tt_pipeline_stats';
CREATE VIEW talaria.transform_stats AS SELECT * FROM talaria._transform_stats();
CREATE VIEW talaria.pipeline_stats AS SELECT * FROM talaria._pipeline_stats();
COMMENT ON VIEW talaria.transform_stats IS 'Per transform: calls, rows out, dropped by nil, errors, dead letters, time, last error';
COMMENT ON VIEW talaria.pipeline_stats IS 'Per pipeline (source -> target): rows in, stored, dropped by nil, dead letters';
GRANT SELECT ON talaria.transform_stats, talaria.pipeline_stats TO PUBLIC;

CREATE FUNCTION talaria.stats_reset() RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'tt_stats_reset';
REVOKE ALL ON FUNCTION talaria.stats_reset() FROM PUBLIC;
COMMENT ON FUNCTION talaria.stats_reset() IS 'Zero the transform and pipeline statistics of this database';
