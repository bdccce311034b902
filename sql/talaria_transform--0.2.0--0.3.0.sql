/* talaria_transform 0.2.0 -> 0.3.0: scale-out, speed, Talaria's users (issues 14, 15, 16) */

\echo Use "ALTER EXTENSION talaria_transform UPDATE TO '0.3.0'" to load this file. \quit

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
