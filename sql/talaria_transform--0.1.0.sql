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
