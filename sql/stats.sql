-- Statistics per transform and pipeline (issue 13).  pg_regress runs
-- without shared_preload_libraries: the views show this backend's own
-- counters (test/t/110_stats.pl checks them across backends).
SET client_min_messages = warning;
SELECT talaria.stats_reset();
CREATE TABLE st_raw (ts timestamptz, v int);
CREATE TABLE st_ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('st_ev', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('st_t', $$
function main(r)
  if r.v < 0 then error("negative " .. r.v) end
  if r.v % 10 == 0 then return nil end
  return r
end$$);
SELECT talaria.create_pipeline('st_raw', 'st_ev', 'st_t', on_error => 'dead_letter');
INSERT INTO st_raw SELECT '2001-02-03', g FROM generate_series(-2, 27) g;
SELECT transform, calls, rows_out, rows_dropped, errors, dead_letters,
       total_time_ms >= 0 AS timed, mean_time_ms >= 0 AS mean, last_error, last_error_at IS NOT NULL AS at
  FROM talaria.transform_stats WHERE transform = 'st_t';
SELECT source, target, transform, rows_in, rows_stored, rows_dropped, dead_letters
  FROM talaria.pipeline_stats WHERE source = 'st_raw'::regclass;
-- transform_row counts too; an aborted statement's errors count
SELECT talaria.transform_row('st_t', '{"v": 1}');
SELECT talaria.transform_row('st_t', '{"v": -5}');
SELECT calls, errors, last_error FROM talaria.transform_stats WHERE transform = 'st_t';
SELECT talaria.stats_reset();
SELECT count(*) AS after_reset FROM talaria.pipeline_stats WHERE source = 'st_raw'::regclass;
SELECT calls FROM talaria.transform_stats WHERE transform = 'st_t';
-- only superusers reset; another role does not read the error texts
-- (they may quote row data)
SELECT talaria.transform_row('st_t', '{"v": -7}');
CREATE ROLE regress_st_user;
SET ROLE regress_st_user;
SELECT talaria.stats_reset();
SELECT calls, errors, last_error FROM talaria.transform_stats WHERE transform = 'st_t';
RESET ROLE;
DROP ROLE regress_st_user;
DROP TABLE st_raw, st_ev;
SELECT talaria.drop_transform('st_t');
DELETE FROM talaria.dead_letters;
