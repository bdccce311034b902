#!/usr/bin/env bash
# Ingest pipeline vs plain COPY, side by side: 1M events over a week of daily
# partitions.  Needs a running cluster (PGHOST/PGPORT/PGUSER, e.g. from
# tt_start_cluster) with talaria_transform installed, and test/plugins/trim.so
# for the native case.  Usage: bash test/ingest_bench.sh [rows]
set -eu
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dir=$(mktemp -d /tmp/talaria_bench.XXXXXX); chmod 777 "$dir"
cp test/plugins/trim.so "$dir/" 2>/dev/null || true
psql -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS talaria_ingest_bench" -c "CREATE DATABASE talaria_ingest_bench"
psql -X -q -v ON_ERROR_STOP=1 -d talaria_ingest_bench <<SQL
CREATE EXTENSION talaria_transform;
SET talaria.native_library_path = '$dir';
COPY (SELECT '2030-01-01'::timestamptz + (i * interval '1 week' / $rows),
             jsonb_build_object('id', i, 'user', 'u' || (i % 1000), 'kind', 'click', 'value', i % 97,
               'key1', 'aaaaaaaa', 'key2', i, 'key3', true, 'key4', 'bbbb', 'key5', 1.5)
      FROM generate_series(1, $rows) i) TO '$dir/doc.tsv';
COPY (SELECT '2030-01-01'::timestamptz + (i * interval '1 week' / $rows), i, 'u' || (i % 1000), 'click',
             (i % 97)::float8, 'aaaaaaaa', i, true, 'bbbb', 1.5
      FROM generate_series(1, $rows) i) TO '$dir/flat.tsv';
COPY (SELECT '2030-01-01'::timestamptz + (i * interval '1 week' / $rows), i, 'u' || (i % 1000), 'click',
             (i % 97)::float8 FROM generate_series(1, $rows) i) TO '$dir/flat_target.tsv';
SELECT talaria.register_lua('trim_doc', 'function main(row) local d = row.doc; d.key1 = nil; d.key2 = nil; d.key3 = nil; d.key4 = nil; d.key5 = nil; return row end');
SELECT talaria.register_lua('trim_lua', 'function main(row) row.key1 = nil; row.key2 = nil; row.key3 = nil; row.key4 = nil; row.key5 = nil; return row end');
CREATE TABLE rawj (ts timestamptz, doc jsonb);
CREATE TABLE ev (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('ev', 'ts', '1 day', NULL, 0);
SELECT talaria._create_partition('ev', '2030-01-01'::timestamp + i * interval '1 day') FROM generate_series(0, 8) i;
CREATE TABLE raw (ts timestamptz, id bigint, usr text, kind text, value float8, key1 text, key2 bigint, key3 bool, key4 text, key5 numeric);
CREATE TABLE events (ts timestamptz NOT NULL, id bigint, usr text, kind text, value float8) PARTITION BY RANGE (ts);
CREATE INDEX ON events (id);
SELECT talaria.create_time_table('events', 'ts', '1 day', NULL, 0);
SELECT talaria._create_partition('events', '2030-01-01'::timestamp + i * interval '1 day') FROM generate_series(0, 8) i;
CHECKPOINT;
\timing on
\echo '-- (ts, doc jsonb): plain COPY into the target'
COPY ev FROM '$dir/doc.tsv';
\timing off
TRUNCATE ev; CHECKPOINT;
SELECT talaria.create_pipeline('rawj', 'ev', 'trim_doc');
\timing on
\echo '-- (ts, doc jsonb): Lua pipeline'
COPY rawj FROM '$dir/doc.tsv';
\timing off
CHECKPOINT;
\timing on
\echo '-- flat: plain COPY into the target (its 5 columns)'
COPY events FROM '$dir/flat_target.tsv';
\timing off
TRUNCATE events; CHECKPOINT;
SELECT talaria.create_pipeline('raw', 'events', 'trim_lua');
\timing on
\echo '-- flat: Lua pipeline (10 columns in)'
COPY raw FROM '$dir/flat.tsv';
\timing off
SQL
if [ -f "$dir/trim.so" ]; then
psql -X -q -v ON_ERROR_STOP=1 -d talaria_ingest_bench <<SQL
SET talaria.native_library_path = '$dir';
SELECT talaria.register_native('trim_native', '$dir/trim.so', 'trim');
TRUNCATE events; CHECKPOINT;
DROP TRIGGER talaria_ingest ON raw; DROP TRIGGER talaria_ingest_flush ON raw;
SELECT talaria.create_pipeline('raw', 'events', 'trim_native');
\timing on
\echo '-- flat: native pipeline (10 columns in)'
COPY raw FROM '$dir/flat.tsv';
SQL
fi
rm -rf "$dir"
