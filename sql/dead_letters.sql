-- The dead-letter lifecycle (issue 13): where a row failed and what the
-- transform made of it; replay after the fix.
SET client_min_messages = warning;
DELETE FROM talaria.dead_letters;
CREATE TABLE dl_raw (ts timestamptz, v int, note text);
CREATE TABLE dl_ev (ts timestamptz NOT NULL, v int CHECK (v < 100), note text) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('dl_ev', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('dl_t', $$
function main(r)
  if r.v < 0 then error("negative v") end
  if r.v == 50 then r.extra = 1 end
  return r
end$$);
SELECT talaria.create_pipeline('dl_raw', 'dl_ev', 'dl_t', on_error => 'dead_letter');
INSERT INTO dl_raw VALUES ('2001-02-03', 1, 'ok'), ('2001-02-03', -2, 'transform fails'),
                          ('2001-02-03', 50, 'no column extra'), ('2001-02-03', 3, 'ok');
SELECT "row"->>'v' AS v, stage, error, result FROM talaria.dead_letters ORDER BY ("row"->>'v')::int;
-- fix the transform: the dead letters go through again
SELECT talaria.register_lua('dl_t', $$
function main(r)
  if r.v == -99 then error("still bad") end
  if r.v < 0 then r.v = -r.v end
  return r
end$$);
INSERT INTO dl_raw VALUES ('2001-02-04', -99, 'fails again');
SELECT * FROM talaria.replay_dead_letters('dl_ev');
SELECT v, note FROM dl_ev ORDER BY v;
SELECT "row"->>'v' AS v, stage, error FROM talaria.dead_letters ORDER BY 1;
-- choose by transform and time; nothing matches
SELECT * FROM talaria.replay_dead_letters(transform => 'other');
SELECT * FROM talaria.replay_dead_letters(since => now() + interval '1 day');
-- a role sees and replays only the dead letters of its own targets
CREATE ROLE regress_dl_user;
GRANT USAGE ON SCHEMA talaria TO regress_dl_user;
SET ROLE regress_dl_user;
SELECT * FROM talaria.replay_dead_letters();
RESET ROLE;
SELECT count(*) AS still_there FROM talaria.dead_letters;
REVOKE USAGE ON SCHEMA talaria FROM regress_dl_user;
DROP ROLE regress_dl_user;
DROP TABLE dl_raw, dl_ev;
SELECT talaria.drop_transform('dl_t');
DELETE FROM talaria.dead_letters;
