/* talaria_transform 0.2.0 -> 0.3.0: scale-out, speed, Talaria's users (issues 14, 15, 16) */

\echo Use "ALTER EXTENSION talaria_transform UPDATE TO '0.3.0'" to load this file. \quit

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
