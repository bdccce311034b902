-- Timestamps through a Lua pipeline: the script sees to_jsonb's text; one
-- handed back unchanged is stored in every column type exactly as
-- PostgreSQL's own input of that text would store it, in the session's
-- TimeZone (0.1.0 stored timestamptz into timestamp/date as UTC).
SET client_min_messages = warning;
SET TimeZone = 'America/New_York';
CREATE TABLE ts_raw (ts timestamptz, local_ts timestamp, d date);
CREATE TABLE ts_out (ts timestamptz NOT NULL, as_text text, as_plain timestamp,
                     as_date date, as_jsonb jsonb, seen text, local_text text, d_text text,
                     l_tz timestamptz, l_date date, d_tz timestamptz, d_plain timestamp)
    PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('ts_out', 'ts', '1 day', premake => 0);
SELECT talaria.register_lua('ts_copy', $$
function main(row)
  return { ts = row.ts, as_text = row.ts, as_plain = row.ts, as_date = row.ts,
           as_jsonb = { t = row.ts }, seen = type(row.ts) .. ' ' .. row.ts,
           local_text = row.local_ts, d_text = row.d,
           l_tz = row.local_ts, l_date = row.local_ts, d_tz = row.d, d_plain = row.d }
end$$);
SELECT talaria.create_pipeline('ts_raw', 'ts_out', 'ts_copy');
INSERT INTO ts_raw VALUES ('2001-02-03 04:05:06.789+00', '2001-02-03 04:05:06', '2001-02-03'),
                          ('2001-07-01 23:30:00-04', '2001-07-01 23:30:00', '2001-07-01'),
                          ('2026-12-31 22:00:00-05', '2026-12-31 22:00:00', '2026-12-31');
SELECT ts, as_text, as_plain, as_date, as_jsonb, seen, local_text, d_text FROM ts_out ORDER BY ts;
SELECT ts, l_tz, l_date, d_tz, d_plain FROM ts_out ORDER BY ts;
-- each column holds what PostgreSQL's input of the script's text gives
SELECT count(*) AS consistent FROM ts_out
 WHERE as_text::timestamptz = ts AND (as_jsonb->>'t')::timestamptz = ts
   AND as_plain = as_text::timestamp AND as_date = as_text::date
   AND l_tz = local_text::timestamptz AND l_date = local_text::date
   AND d_tz = d_text::timestamptz AND d_plain = d_text::timestamp;
-- in another TimeZone too
SET TimeZone = 'Asia/Kolkata';
INSERT INTO ts_raw VALUES ('2026-12-31 22:00:00-05', '2026-12-31 22:00:00', '2026-12-31');
SELECT count(*) AS consistent_kolkata FROM ts_out
 WHERE as_text LIKE '%+05:30' AND as_plain = as_text::timestamp AND as_date = as_text::date
   AND l_tz = local_text::timestamptz AND d_tz = d_text::timestamptz;
SET TimeZone = 'America/New_York';
-- a script that changes the text gets its own text stored
SELECT talaria.register_lua('ts_copy', $$
function main(row) return { ts = row.ts, as_text = row.ts .. ' (seen)' } end$$);
INSERT INTO ts_raw VALUES ('2001-02-03 10:00:00+00', NULL, NULL);
SELECT as_text FROM ts_out WHERE as_text LIKE '%seen%';
RESET TimeZone;
