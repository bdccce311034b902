#!/usr/bin/env bash
# The demo: installs what is missing, builds, installs, starts a throwaway
# cluster and runs an ingest pipeline end to end: a Lua transform (Talaria's
# trim plus a computed field) between an ingest table and a daily
# time-partitioned table, a COPY of a few thousand events over several days,
# and a couple of bad events that end up as dead letters.
# Usage: bash test/demo.sh
set -eu
cd "$(dirname "$0")/.."
. test/lib.sh
tt_install_deps
tt_build_install
tt_start_cluster
trap tt_stop_cluster EXIT

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
\pset footer off
CREATE EXTENSION talaria_transform;

\echo '== a Lua transform: Talaria''s trim (drop key1..key5) and a computed field'
SELECT talaria.register_lua('trim', $$
function main(row)
  local e = row.event
  if e.user == nil then error("event has no user") end
  for i = 1, 5 do e["key" .. i] = nil end
  return { ts = row.ts, user_id = e.user, kind = e.kind,
           event = e, slow = (e.ms or 0) > 900 }
end$$);

\echo '== ingest table -> trim -> daily time table (partitions on demand, 30 days kept)'
CREATE TABLE raw (ts timestamptz, event jsonb);
CREATE TABLE events (ts timestamptz NOT NULL, user_id text, kind text, event jsonb,
                     slow boolean, received timestamptz DEFAULT now())
    PARTITION BY RANGE (ts);
CREATE INDEX ON events (user_id);
SELECT talaria.create_time_table('events', 'ts', '1 day', retention => '30 days', premake => 0);
SELECT talaria.create_pipeline('raw', 'events', 'trim', on_error => 'dead_letter');

\echo '== COPY 5000 generated events over 5 days, plus 2 bad ones'
COPY (SELECT date_trunc('day', now()) - interval '4 days' + i * interval '86 seconds',
             jsonb_build_object('user', 'u' || i % 50, 'kind', (ARRAY['click', 'view', 'buy'])[i % 3 + 1],
                                'ms', i % 1000, 'key1', 'x', 'key2', i, 'key3', true,
                                'key4', 'y', 'key5', 1.5)
        FROM generate_series(1, 5000) i
      UNION ALL SELECT now(), '{"kind": "click"}'
      UNION ALL SELECT NULL, '{"user": "u1", "kind": "view"}') TO '/tmp/talaria_demo.tsv';
COPY raw FROM '/tmp/talaria_demo.tsv';
\! rm -f /tmp/talaria_demo.tsv

\echo '== partitions created, rows per partition'
SELECT tableoid::regclass AS partition, count(*) AS rows FROM events GROUP BY 1 ORDER BY tableoid::regclass::text;

\echo '== a few stored rows (key1..key5 gone, slow computed)'
SELECT ts, user_id, kind, slow, event FROM events ORDER BY ts LIMIT 3;

\echo '== dead letters'
SELECT "row", error, sqlstate FROM talaria.dead_letters;

\echo '== the ingest table keeps nothing; rows in = stored + dead letters'
SELECT (SELECT count(*) FROM raw) AS raw_rows, (SELECT count(*) FROM events) AS stored,
       (SELECT count(*) FROM talaria.dead_letters) AS dead_letters;
SQL
