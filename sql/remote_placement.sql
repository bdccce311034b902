-- Remote placement of new partitions (postgres_fdw, loopback): premake
-- and on-demand creation make the remote table and attach it as a foreign
-- partition; retention drops it with its remote table just before commit,
-- or keeps it; every bad input is refused naming what is wrong.
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
    EXECUTE format('CREATE SERVER rp_loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname %L, host %L, port %L)',
                   current_database(), split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'));
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER rp_loop;
CREATE FOREIGN DATA WRAPPER rp_dummy;
CREATE SERVER rp_other FOREIGN DATA WRAPPER rp_dummy;
CREATE SCHEMA rp_remote;
CREATE TABLE rp_ev (ts timestamptz NOT NULL, v int, note text COLLATE "C") PARTITION BY RANGE (ts);
CREATE TABLE rp_plain (ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
RESET client_min_messages;
-- bad input
SELECT talaria.set_remote_placement('rp_plain', ARRAY['rp_loop']);
SELECT talaria.create_time_table('rp_ev', 'ts', '1 day', premake => 0, retention => '30 days');
SELECT talaria.set_remote_placement(NULL, ARRAY['rp_loop']);
SELECT talaria.set_remote_placement('rp_ev', ARRAY[]::name[]);
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop', NULL]);
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_nosuch']);
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_other']);
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote', 'archive');
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], NULL);
CREATE UNIQUE INDEX ON rp_ev (ts);
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote');
DROP INDEX rp_ev_ts_idx;
-- another role: not its table; its own table without USAGE or mapping
CREATE ROLE regress_rp_mallory;
GRANT CREATE ON SCHEMA public TO regress_rp_mallory;
SET ROLE regress_rp_mallory;
SELECT talaria.set_remote_placement('rp_ev', NULL);
CREATE TABLE rp_m (ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('rp_m', 'ts', '1 day', premake => 0);
SELECT talaria.set_remote_placement('rp_m', ARRAY['rp_loop'], 'rp_remote');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER rp_loop TO regress_rp_mallory;
SET ROLE regress_rp_mallory;
SELECT talaria.set_remote_placement('rp_m', ARRAY['rp_loop'], 'rp_remote');
-- the internal remote call is refused outside talaria's privileged paths
SELECT talaria._remote_exec('rp_loop', 'DROP TABLE public.rp_ev', false);
RESET ROLE;
SELECT talaria._remote_exec('rp_loop', 'DROP TABLE public.rp_ev', false);
-- the partition log's trigger function refuses any other use, and the
-- statement stores nothing
CREATE TABLE rp_notlog (x int);
CREATE TRIGGER rp_t AFTER INSERT ON rp_notlog FOR EACH ROW EXECUTE FUNCTION talaria._partition_log_apply();
INSERT INTO rp_notlog VALUES (1);
DROP TRIGGER rp_t ON rp_notlog;
CREATE TRIGGER rp_t AFTER INSERT ON rp_notlog FOR EACH STATEMENT EXECUTE FUNCTION talaria._partition_log_apply();
INSERT INTO rp_notlog VALUES (2);
SELECT count(*) FROM rp_notlog;
DROP TABLE rp_notlog;
-- a placement; new days go remote (loopback: the "remote" schema is here)
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote');
SELECT target, servers, remote_schema, remote_retention FROM talaria.remote_placements;
-- another time table of the same name may not share the remote schema:
-- its remote tables would be the same tables
CREATE SCHEMA rp_other_nsp;
CREATE TABLE rp_other_nsp.rp_ev (ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('rp_other_nsp.rp_ev', 'ts', '1 day', premake => 0);
SELECT talaria.set_remote_placement('rp_other_nsp.rp_ev', ARRAY['rp_loop'], 'rp_remote');
SELECT talaria.set_remote_placement('rp_other_nsp.rp_ev', ARRAY['rp_loop'], 'rp_remote_other');
SET client_min_messages = warning;
DROP SCHEMA rp_other_nsp CASCADE;
RESET client_min_messages;
CREATE TABLE rp_raw (ts timestamptz, v int);
SELECT talaria.register_lua('rp_pass', 'function main(r) r.note = "n" .. r.v return r end');
SELECT talaria.create_pipeline('rp_raw', 'rp_ev', 'rp_pass');
INSERT INTO rp_raw VALUES ('2001-02-04 01:00+00', 1), ('2001-02-04 02:00+00', 2), ('2001-02-05 01:00+00', 3);
SELECT c.relname, c.relkind, f.ftoptions, pg_get_expr(c.relpartbound, c.oid) AS bound
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pg_foreign_table f ON f.ftrelid = c.oid
 WHERE i.inhparent = 'rp_ev'::regclass AND c.relname < 'rp_ev_p2002' ORDER BY 1;
SELECT * FROM rp_remote.rp_ev_p20010204 ORDER BY v;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'rp_remote.rp_ev_p20010204'::regclass;
SELECT v, note, tableoid::regclass FROM rp_ev WHERE ts < '2002-01-01' ORDER BY v;
SELECT target_name, lower, upper FROM talaria.partition_log
 WHERE target_name = 'rp_ev' AND lower < '2002-01-01' ORDER BY lower;
-- a remote table that refuses a row (its CHECK): the statement fails
INSERT INTO rp_remote.rp_ev_p20010204 VALUES ('2001-02-04 03:00+00', 4, 'x');
ALTER TABLE rp_remote.rp_ev_p20010204 ADD CHECK (v < 100);
INSERT INTO rp_raw VALUES ('2001-02-04 04:00+00', 5), ('2001-02-04 05:00+00', 500);
SELECT count(*) FROM rp_remote.rp_ev_p20010204;
-- retention: rolled back, then committed; the remote tables go at commit
BEGIN;
SELECT talaria.run_maintenance('rp_ev');
SELECT to_regclass('rp_ev_p20010204') IS NULL AS local_gone,
       to_regclass('rp_remote.rp_ev_p20010204') IS NULL AS remote_gone;
ROLLBACK;
SELECT to_regclass('rp_ev_p20010204') IS NULL AS local_gone,
       to_regclass('rp_remote.rp_ev_p20010204') IS NULL AS remote_gone;
SELECT talaria.run_maintenance('rp_ev');
SELECT to_regclass('rp_ev_p20010204') IS NULL AS local_gone,
       to_regclass('rp_remote.rp_ev_p20010204') IS NULL AS remote_gone,
       to_regclass('rp_remote.rp_ev_p20010205') IS NULL AS remote2_gone;
SELECT count(*) FROM talaria.partition_log WHERE target_name = 'rp_ev' AND lower < '2002-01-01';
-- 'keep': the remote table and its rows stay
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote', 'keep');
INSERT INTO rp_raw VALUES ('2001-02-06 01:00+00', 6);
SELECT talaria.run_maintenance('rp_ev');
SELECT to_regclass('rp_ev_p20010206') IS NULL AS local_gone, count(*) AS remote_rows
  FROM rp_remote.rp_ev_p20010206;
-- a hand-made foreign partition is skipped: on a placement server, but
-- not what the placement made (its remote table is not dropped either) ...
CREATE TABLE rp_remote.rp_hand (LIKE rp_ev);
CREATE FOREIGN TABLE rp_ev_hand PARTITION OF rp_ev
    FOR VALUES FROM ('2001-01-01 00:00+00') TO ('2001-01-02 00:00+00')
    SERVER rp_loop OPTIONS (schema_name 'rp_remote', table_name 'rp_hand');
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote', 'drop');
SELECT talaria.run_maintenance('rp_ev');
SELECT to_regclass('rp_ev_hand') IS NOT NULL AS kept, to_regclass('rp_remote.rp_hand') IS NOT NULL AS remote_kept;
-- ... and on a server outside the placement
SELECT talaria.set_remote_placement('rp_ev', NULL);
SELECT talaria.run_maintenance('rp_ev');
SELECT error FROM talaria.maintenance_runs WHERE target = 'rp_ev'::regclass AND error IS NOT NULL;
SELECT to_regclass('rp_ev_hand') IS NOT NULL AS kept;
-- ... and detached (rows stay remote) with retention_mode 'detach'
SELECT talaria.create_time_table('rp_ev', 'ts', '1 day', premake => 0, retention => '30 days',
                                 retention_mode => 'detach');
SELECT talaria.run_maintenance('rp_ev');
SELECT to_regclass('rp_ev_hand') IS NOT NULL AS kept,
       (SELECT count(*) FROM pg_inherits WHERE inhrelid = 'rp_ev_hand'::regclass) AS attached;
-- the placement row goes with the time table
SELECT talaria.set_remote_placement('rp_ev', ARRAY['rp_loop'], 'rp_remote');
SELECT count(*) FROM talaria.remote_placements;
DROP FOREIGN TABLE rp_ev_hand;
DROP TABLE rp_raw, rp_ev;
SELECT count(*) FROM talaria.remote_placements;
SELECT talaria.drop_transform('rp_pass');
SET client_min_messages = warning;
DROP TABLE rp_m;
DROP OWNED BY regress_rp_mallory;
DROP ROLE regress_rp_mallory;
DROP SCHEMA rp_remote CASCADE;
DROP SERVER rp_loop CASCADE;
DROP SERVER rp_other;
DROP FOREIGN DATA WRAPPER rp_dummy;
DROP EXTENSION postgres_fdw;
DROP TABLE rp_plain;
DELETE FROM talaria.maintenance_runs;
DELETE FROM talaria.partition_log;
