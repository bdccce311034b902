-- Security: no role gains rights through talaria_transform.
-- Each block is an attack that worked on 0.1.0 (issue 10); the probe
-- function logs (as a WARNING) every time it runs and tries to make its
-- author superuser, so any run of user code with rights its owner lacks
-- shows up in the output.
SET client_min_messages = warning;
SELECT current_user AS admin \gset
CREATE ROLE regress_sec_alice LOGIN;
CREATE ROLE regress_sec_mallory LOGIN;
CREATE ROLE regress_sec_owner NOLOGIN;
GRANT USAGE ON SCHEMA talaria TO regress_sec_alice, regress_sec_mallory, regress_sec_owner;
-- (bounded: on 0.1.0 some of these attacks also hang an ingest)
ALTER ROLE regress_sec_alice SET statement_timeout = '60s';
ALTER ROLE regress_sec_mallory SET statement_timeout = '60s';
CREATE SCHEMA mallory AUTHORIZATION regress_sec_mallory;
CREATE SCHEMA alice AUTHORIZATION regress_sec_alice;
CREATE SCHEMA app AUTHORIZATION regress_sec_owner;
GRANT USAGE ON SCHEMA mallory, alice, app TO PUBLIC;

-- ---------------------------------------------------------------------
-- 1. The catalog writers ignore the caller's search_path, operators and
--    functions (0.1.0 ran mallory's "=" as the catalog owner: superuser)
-- ---------------------------------------------------------------------
\c - regress_sec_mallory
SET client_min_messages = warning;
CREATE FUNCTION mallory.escalate() RETURNS boolean LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog AS $$
BEGIN
    RAISE WARNING 'mallory''s code ran as % (superuser: %)', current_user,
        (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);
    BEGIN
        EXECUTE 'ALTER ROLE regress_sec_mallory SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END $$;
CREATE FUNCTION mallory.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION mallory.eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION mallory.eq(regclass, oid) RETURNS boolean LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION mallory.eq(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION mallory.eq(name, name) RETURNS boolean LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION mallory.cat(text, text) RETURNS text LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.||) $2; END';
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.eq);
CREATE OPERATOR mallory.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = mallory.eq);
CREATE OPERATOR mallory.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = mallory.eq);
CREATE OPERATOR mallory.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = mallory.eq);
CREATE OPERATOR mallory.= (LEFTARG = name, RIGHTARG = name, FUNCTION = mallory.eq);
CREATE OPERATOR mallory.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.cat);
CREATE FUNCTION mallory.lower(text) RETURNS text LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.lower($1); END';
CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS
    'BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.now(); END';
CREATE FUNCTION mallory.array_append(anycompatiblearray, anycompatible) RETURNS anycompatiblearray
    LANGUAGE plpgsql AS 'BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.array_append($1, $2); END';
CREATE TABLE mallory.ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE mallory.raw (ts timestamptz, v int);
SET search_path = mallory, pg_catalog;
-- every catalog writer and every other entry point, with the trap set
SELECT talaria.register_lua('m_pass', 'function main(r) return r end');
SELECT talaria.register_lua('m_pass', 'function main(r) return r end');
SELECT talaria.register_lua('m_n', 'function main(r) return 1 end');
SELECT talaria.grant_transform('m_pass', 'public');
SELECT talaria.revoke_transform('m_pass', 'public');
SELECT talaria.create_time_table('mallory.ev', 'ts', '1 day', '30 days', 0);
SELECT talaria.add_computed_column('mallory.ev', 'v', 'm_n');
SELECT talaria.create_pipeline('mallory.raw', 'mallory.ev', 'm_pass');
INSERT INTO mallory.raw VALUES ('2001-02-03 04:05:06+00', 1);
COPY mallory.raw FROM stdin;
2001-02-04 04:05:06+00	2
\.
SELECT talaria.transform_row('m_pass', '{"a": 1}');
SELECT talaria.run_maintenance();
SELECT talaria.drop_transform('m_n', cascade => true);
SELECT talaria.drop_transform('m_pass', cascade => true);
SELECT talaria.drop_transform('nonexistent');
RESET search_path;
SELECT count(*) AS mallory_rows FROM mallory.ev;
\c - :admin
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'regress_sec_mallory';

-- ---------------------------------------------------------------------
-- 2. Work on a user's table runs as its owner, in a security-restricted
--    operation, whoever asks: a superuser's run_maintenance and
--    create_time_table, the partition worker, the ingesting session.
--    (0.1.0 ran alice's CHECK function as the superuser.)
-- ---------------------------------------------------------------------
\c - regress_sec_alice
SET client_min_messages = warning;
CREATE FUNCTION alice.escalate() RETURNS boolean LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog AS $$
BEGIN
    RAISE WARNING 'alice''s code ran as % (superuser: %)', current_user,
        (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user);
    BEGIN
        EXECUTE 'ALTER ROLE regress_sec_alice SUPERUSER';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
    RETURN true;
END $$;
-- immutable, so PostgreSQL folds it while it checks constraints (at
-- CREATE TABLE ... LIKE and ATTACH PARTITION)
CREATE FUNCTION alice.check_ok() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
    'BEGIN RETURN alice.escalate(); END';
CREATE FUNCTION alice.default_v() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
    'BEGIN PERFORM alice.escalate(); RETURN 7; END';
CREATE FUNCTION alice.gen(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
    'BEGIN PERFORM alice.escalate(); RETURN $1 + 1; END';
CREATE TABLE alice.ev (ts timestamptz NOT NULL, v int DEFAULT alice.default_v(),
                       g int GENERATED ALWAYS AS (alice.gen(v)) STORED,
                       CHECK (alice.check_ok())) PARTITION BY RANGE (ts);
CREATE INDEX ON alice.ev ((v + alice.default_v()));
CREATE TABLE alice.raw (ts timestamptz, v int);
\c - :admin
SET client_min_messages = warning;
-- a superuser registers alice's table: every partition is made as alice
SELECT talaria.create_time_table('alice.ev', 'ts', '1 day', '30 days', 1);
SELECT rolsuper AS alice_is_superuser FROM pg_roles WHERE rolname = 'regress_sec_alice';
SELECT talaria.register_lua('alice_pass', 'function main(r) return r end');
SELECT talaria.grant_transform('alice_pass', 'regress_sec_alice');
-- alice ingests an old day: the partition worker makes it, as alice
\c - regress_sec_alice
SET client_min_messages = warning;
SELECT talaria.create_pipeline('alice.raw', 'alice.ev', 'alice_pass');
INSERT INTO alice.raw VALUES ('2001-02-03 04:05:06+00', 1);
SELECT count(*) AS alice_rows FROM alice.ev;
-- a superuser's run_maintenance drops it past retention, as alice
\c - :admin
SET client_min_messages = warning;
SELECT talaria.run_maintenance();
SELECT count(*) AS old_partitions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'alice.ev'::regclass AND c.relname < 'ev_p2020';
SELECT DISTINCT pg_get_userbyid(c.relowner) AS partition_owner
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'alice.ev'::regclass;
SELECT rolsuper AS alice_is_superuser FROM pg_roles WHERE rolname = 'regress_sec_alice';
-- another role's ingest that must create the partition in its own
-- transaction (it holds a lock the worker would wait for): still as
-- alice (her CHECK then runs for mallory's row as mallory, as any
-- INSERT into her table would)
GRANT INSERT ON alice.raw TO regress_sec_mallory;
GRANT INSERT, UPDATE ON alice.ev TO regress_sec_mallory;
\c - regress_sec_mallory
SET client_min_messages = warning;
BEGIN;
LOCK TABLE alice.ev IN SHARE UPDATE EXCLUSIVE MODE;
INSERT INTO alice.raw VALUES ('2001-02-05 04:05:06+00', 2);
COMMIT;
\c - :admin
SELECT c.relname, pg_get_userbyid(c.relowner) AS owner
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'alice.ev'::regclass AND c.relname < 'ev_p2020';
SELECT rolsuper AS alice_is_superuser FROM pg_roles WHERE rolname = 'regress_sec_alice';

-- the retention drop runs as the owner too; the helpers refuse to run as
-- anyone else, even a superuser calling them directly
SELECT talaria._create_partition('alice.ev', '2001-03-01');
SELECT talaria._drop_expired('alice.ev');

-- ---------------------------------------------------------------------
-- 3. Nobody can block or break another role's time table: the helpers
--    are not callable, the public entry points check ownership, the
--    catalog refuses intervals maintenance cannot use
-- ---------------------------------------------------------------------
\c - regress_sec_mallory
SET client_min_messages = warning;
SELECT talaria._create_partition('alice.ev', '2001-02-10');
SELECT talaria.run_maintenance('alice.ev');
SELECT talaria.create_time_table('alice.ev', 'ts', '1 hour');
SELECT talaria.add_computed_column('alice.ev', 'v', 'alice_pass');
SELECT talaria._validate_time_table('alice.ev', 'ts', '0 seconds', NULL, 0, NULL, NULL, 'drop', NULL, true, NULL);
SELECT p.proname, has_function_privilege(p.oid, 'EXECUTE') AS callable
  FROM pg_proc p WHERE p.pronamespace = 'talaria'::regnamespace AND p.proname LIKE '\_%'
 ORDER BY 1;
\c - :admin
SET client_min_messages = warning;
UPDATE talaria.time_tables SET partition_interval = '0 seconds' WHERE target = 'alice.ev'::regclass;
UPDATE talaria.time_tables SET retention = '-1 day' WHERE target = 'alice.ev'::regclass;
UPDATE talaria.time_tables SET premake = -1 WHERE target = 'alice.ev'::regclass;

-- ---------------------------------------------------------------------
-- 4. A transform in use cannot be dropped or taken over silently
-- ---------------------------------------------------------------------
\c - regress_sec_alice
SET client_min_messages = warning;
CREATE TABLE alice.t (ts timestamptz NOT NULL, v int, n int);
CREATE TABLE alice.src (ts timestamptz, v int);
SELECT talaria.register_lua('a_pass', 'function main(r) return r end');
SELECT talaria.register_lua('a_n', 'function main(r) return 5 end');
SELECT talaria.create_pipeline('alice.src', 'alice.t', 'a_pass');
SELECT talaria.add_computed_column('alice.t', 'n', 'a_n');
-- refused, naming what uses it
SELECT talaria.drop_transform('a_pass');
SELECT talaria.drop_transform('a_n');
INSERT INTO alice.src VALUES ('2001-02-03', 1);
SELECT * FROM alice.t;
-- a pipeline trigger made by hand counts too
CREATE TABLE alice.src2 (ts timestamptz, v int);
CREATE TRIGGER by_hand BEFORE INSERT ON alice.src2 FOR EACH ROW
    EXECUTE FUNCTION talaria.ingest('a_pass', 'alice.t');
SELECT talaria.drop_transform('a_pass');
-- cascade drops the pipelines and the computed column
SELECT talaria.drop_transform('a_pass', cascade => true);
SELECT talaria.drop_transform('a_n', true);
SELECT tgname FROM pg_trigger WHERE tgrelid IN ('alice.src'::regclass, 'alice.src2'::regclass);
SELECT conname FROM pg_constraint WHERE conrelid = 'alice.src'::regclass;
SELECT count(*) AS pipelines FROM talaria.pipelines WHERE source = 'alice.src'::regclass;
SELECT count(*) AS computed FROM talaria.computed_columns WHERE target = 'alice.t'::regclass;
-- a hand-made trigger naming a transform that does not exist yet: when
-- mallory registers that name, alice's rows do not run mallory's code
CREATE TRIGGER by_hand BEFORE INSERT ON alice.src2 FOR EACH ROW
    EXECUTE FUNCTION talaria.ingest('a_later', 'alice.t');
\c - regress_sec_mallory
SET client_min_messages = warning;
SELECT talaria.register_lua('a_later', 'function main(r) r.v = 666 return r end');
\c - regress_sec_alice
SET client_min_messages = warning;
INSERT INTO alice.src2 VALUES ('2001-02-04', 2);
SELECT talaria.create_pipeline('alice.src', 'alice.t', 'a_later');
SELECT * FROM alice.t ORDER BY ts;
-- mallory cannot replace or drop alice's transform, nor grant it
SELECT talaria.register_lua('alice_mine', 'function main(r) return r end');
\c - regress_sec_mallory
SET client_min_messages = warning;
SELECT talaria.register_lua('alice_mine', 'function main(r) return 1 end');
SELECT talaria.drop_transform('alice_mine');
SELECT talaria.grant_transform('alice_mine', 'regress_sec_mallory');
SELECT talaria.transform_row('alice_mine', '{}');
SELECT talaria.has_transform_privilege('regress_sec_mallory', 'alice_mine');
\c - regress_sec_alice
SET client_min_messages = warning;
SELECT talaria.grant_transform('alice_mine', 'regress_sec_mallory');
SELECT talaria.grant_transform('alice_mine', 'regress_sec_mallory');
SELECT talaria.grant_transform('alice_mine', 'nosuchrole');
SELECT talaria.grant_transform('nosuch', 'public');
SELECT talaria.grant_transform(NULL, 'public');
SELECT name, acl FROM talaria.transforms WHERE name = 'alice_mine';
\c - regress_sec_mallory
SELECT talaria.transform_row('alice_mine', '{"x": 1}');
SELECT talaria.has_transform_privilege('regress_sec_mallory', 'alice_mine');
\c - regress_sec_alice
SELECT talaria.revoke_transform('alice_mine', 'regress_sec_mallory');
SELECT talaria.grant_transform('alice_mine', 'PUBLIC');
SELECT talaria.has_transform_privilege('regress_sec_mallory', 'alice_mine');
SELECT talaria.revoke_transform('alice_mine', 'public');
SELECT talaria.has_transform_privilege('regress_sec_mallory', 'alice_mine');
SELECT talaria.has_transform_privilege('regress_sec_mallory', 'nosuch');

-- settings the owner's code changes while partitions are made do not
-- reach the session that asked (the superuser's here)
\c - regress_sec_alice
SET client_min_messages = warning;
CREATE FUNCTION alice.set_things() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pg_catalog.set_config('work_mem', '1234kB', false);
    PERFORM pg_catalog.set_config('search_path', 'alice, pg_catalog', false);
    RETURN true;
END $$;
CREATE TABLE alice.ev3 (ts timestamptz NOT NULL, v int, CHECK (alice.set_things()))
    PARTITION BY RANGE (ts);
\c - :admin
SET client_min_messages = warning;
SET work_mem = '4MB';
SELECT talaria.create_time_table('alice.ev3', 'ts', '1 day', NULL, 1);
SELECT current_setting('work_mem') AS work_mem, current_setting('search_path') AS search_path;

-- ---------------------------------------------------------------------
-- 5. Tables owned by a NOLOGIN role get partitions on demand (the worker
--    connects as the bootstrap superuser and acts as the owner)
-- ---------------------------------------------------------------------
\c - :admin
SET client_min_messages = warning;
CREATE TABLE app.ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
CREATE TABLE app.raw (ts timestamptz, v int);
ALTER TABLE app.ev OWNER TO regress_sec_owner;
ALTER TABLE app.raw OWNER TO regress_sec_owner;
SELECT talaria.register_lua('app_pass', 'function main(r) return r end');
SELECT talaria.grant_transform('app_pass', 'regress_sec_owner');
SET ROLE regress_sec_owner;
SELECT talaria.create_time_table('app.ev', 'ts', '1 day', NULL, 0);
SELECT talaria.create_pipeline('app.raw', 'app.ev', 'app_pass');
RESET ROLE;
GRANT INSERT ON app.raw, app.ev TO regress_sec_alice;
\c - regress_sec_alice
SET client_min_messages = warning;
INSERT INTO app.raw VALUES ('2001-02-03 04:05:06+00', 1), ('2001-02-04 04:05:06+00', 2);
\c - :admin
SELECT e.v, e.tableoid::regclass AS part, pg_get_userbyid(c.relowner) AS part_owner
  FROM app.ev e JOIN pg_class c ON c.oid = e.tableoid ORDER BY e.v;

-- clean up
SET client_min_messages = warning;
DROP SCHEMA mallory, alice, app CASCADE;
SELECT talaria.drop_transform(name, true) FROM talaria.transforms
 WHERE name IN ('alice_pass', 'alice_mine', 'a_later', 'app_pass', 'm_pass', 'm_n') ORDER BY name;
REVOKE USAGE ON SCHEMA talaria FROM regress_sec_alice, regress_sec_mallory, regress_sec_owner;
DROP ROLE regress_sec_alice, regress_sec_mallory, regress_sec_owner;
