#!/usr/bin/env bash
# Partitions made on demand against premade (`make bench-partitions`).
#
# One pipeline COPY of BENCH_PART_ROWS events spread over 60 days that have
# no partition yet (the daily target loses its partitions before each run),
# against the same COPY into the same 60 days made beforehand.  Lua (a
# transform removing key1..key5) and native (the trim sample plugin).  The
# two cases alternate, BENCH_RUNS rounds; prints per engine the medians of
# their wall times, of each round's ratio on-demand / premade and the
# milliseconds each new partition adds, and the same in CPU time of the
# backend and the partition worker (what a shared machine blurs least):
#   case=<engine> rows=<n> days=60 premade_ms=<x> ondemand_ms=<x>
#       ratio=<x> ms_per_partition=<x> premade_cpu_ms=<x> ... cpu_ratio=<x>
#
# Settings: BENCH_PART_ROWS (default 1000000: 16,667 rows a day, the scale of
# `make bench`), BENCH_RUNS (default 5), BENCH_VERBOSE=1 (every run's figures),
# BENCH_PART_CONF (extra postgresql.conf lines, e.g. shared_preload_libraries).
set -u
cd "$(dirname "$0")/../.."
. test/lib.sh

ROWS=${BENCH_PART_ROWS:-1000000}
RUNS=${BENCH_RUNS:-5}
DAYS=60
case "$ROWS" in ''|*[!0-9]*) echo "BENCH_PART_ROWS must be a number" >&2; exit 2;; esac
case "$RUNS" in ''|*[!0-9]*) echo "BENCH_RUNS must be a number" >&2; exit 2;; esac

tt_install_deps || exit 1
tt_build_install || { echo "build failed" >&2; exit 1; }
make -s install-test-plugins >/dev/null || { echo "could not install the test plugins" >&2; exit 1; }
work=$(mktemp -d /tmp/talaria_bench_part.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
TT_EXTRA_CONF="talaria.native_library_path = '\$libdir:\$libdir/talaria_test_plugins'
shared_buffers = 256MB
max_parallel_workers_per_gather = 0
jit = off
autovacuum = off
synchronous_commit = off
checkpoint_timeout = 30min
max_wal_size = 4GB
${BENCH_PART_CONF:-}"
export TT_EXTRA_CONF
tt_start_cluster || exit 1
trap 'tt_stop_cluster; rm -rf "$work"' EXIT

q() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

q >/dev/null <<SQL || exit 1
CREATE EXTENSION talaria_transform;
SELECT talaria.register_lua('trim_lua', 'function main(r)
  r.key1 = nil r.key2 = nil r.key3 = nil r.key4 = nil r.key5 = nil
  return r end');
SELECT talaria.register_native('trim_native', '\$libdir/talaria_test_plugins/trim.so', 'trim');
CREATE TABLE target (id bigint, ts timestamptz NOT NULL, city text, score int,
                     price numeric) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('target', 'ts', '1 day', NULL, 0, maintenance => false);
CREATE TABLE raw_lua (id bigint, ts timestamptz, city text, key1 text, key2 text,
                      key3 text, key4 text, key5 text, score int, price numeric);
CREATE TABLE raw_native (LIKE raw_lua);
SELECT talaria.create_pipeline('raw_lua', 'target', 'trim_lua');
SELECT talaria.create_pipeline('raw_native', 'target', 'trim_native');
-- in time order, as loaders send them: $DAYS days from 2001-01-01
COPY (SELECT i, timestamptz '2001-01-01 00:00+00' + (i * $DAYS * 86400.0 / $ROWS) * interval '1 second',
             'city' || i % 100, 'a', 'b', 'c', 'd', 'e', i % 1000, (i % 10000) / 100.0
        FROM generate_series(0, $ROWS - 1) i) TO '$work/events.csv' (FORMAT csv);
COPY (SELECT i, timestamptz '2000-06-01 00:00+00', 'x', 'a', 'b', 'c', 'd', 'e', 1, 1
        FROM generate_series(1, 10) i) TO '$work/warmup.csv' (FORMAT csv);
CREATE FUNCTION drop_days() RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE r regclass;
BEGIN
    FOR r IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'target'::regclass LOOP
        EXECUTE format('DROP TABLE %s', r);
    END LOOP;
END \$\$;
-- CPU ticks (1/100 s) of this backend and of the partition worker, if any
CREATE FUNCTION cpu_ticks() RETURNS bigint LANGUAGE sql AS \$\$
    SELECT coalesce(sum(split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint), 0)
      FROM (SELECT pg_read_file('/proc/' || pid || '/stat') AS s FROM pg_stat_activity
             WHERE pid = pg_backend_pid() OR backend_type = 'talaria partition worker') p
\$\$;
CREATE FUNCTION make_days() RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE i int;
BEGIN
    FOR i IN 0 .. $DAYS - 1 LOOP
        PERFORM talaria._create_partition('target', timestamp '2001-01-01' + i * interval '1 day');
    END LOOP;
END \$\$;
SQL

# One timed statement after a setup statement, in a session that has
# already run a pipeline (the library and the transform are loaded).
# Prints its wall time and the CPU time (user + system, ms) that the
# session's backend and the partition worker spent on it: the machine may
# be shared, and CPU time is what contention blurs least.
timed() {
	local setup=$1 stmt=$2
	q -At <<SQL | awk '/^Time:/ { wall = $2 } /^cpu / { c[++n] = $2 } END { print wall, (c[2] - c[1]) * 10 }'
COPY raw_lua FROM '$work/warmup.csv' (FORMAT csv);
COPY raw_native FROM '$work/warmup.csv' (FORMAT csv);
SELECT drop_days();
$setup
VACUUM;
CHECKPOINT;
-- the warm-up's partition worker has gone: the timed COPY starts one
SELECT pg_sleep(2.5);
SELECT 'cpu ' || cpu_ticks();
\\timing on
$stmt
\\timing off
SELECT 'cpu ' || cpu_ticks();
SQL
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Premade and on demand, one after the other in each of RUNS rounds, so
# that both see the same load of a shared machine: prints the medians
# "premade_ms premade_cpu_ms ondemand_ms ondemand_cpu_ms ratio cpu_ratio",
# the ratios being the medians of each round's ratio.
run_pair() {
	local stmt=$1 i
	for i in $(seq 1 "$RUNS"); do
		echo "$(timed "SELECT make_days();" "$stmt") $(timed "" "$stmt")"
	done >"$work/runs"
	[ -n "${BENCH_VERBOSE:-}" ] && echo "runs ($stmt: premade wall cpu, on demand wall cpu): $(tr "\n" ";" <"$work/runs")" >&2
	echo "$(awk '{ print $1 }' "$work/runs" | median) $(awk '{ print $2 }' "$work/runs" | median)" \
		"$(awk '{ print $3 }' "$work/runs" | median) $(awk '{ print $4 }' "$work/runs" | median)" \
		"$(awk '{ print $3 / $1 }' "$work/runs" | median) $(awk '{ print ($2 > 0) ? $4 / $2 : 0 }' "$work/runs" | median)"
}

for engine in lua native; do
	read -r pre pre_cpu ond ond_cpu ratio cpu_ratio <<<"$(run_pair "COPY raw_$engine FROM '$work/events.csv' (FORMAT csv);")"
	parts=$(q -At -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'target'::regclass")
	[ "$parts" -eq "$DAYS" ] || { echo "expected $DAYS partitions, found $parts" >&2; exit 1; }
	awk -v e="$engine" -v r="$ROWS" -v d="$DAYS" -v p="$pre" -v o="$ond" -v ra="$ratio" \
		-v pc="$pre_cpu" -v oc="$ond_cpu" -v rc="$cpu_ratio" 'BEGIN {
		printf "case=%s rows=%d days=%d premade_ms=%.1f ondemand_ms=%.1f ratio=%.2f ms_per_partition=%.2f", e, r, d, p, o, ra, (o - p) / d
		printf " premade_cpu_ms=%d ondemand_cpu_ms=%d cpu_ratio=%.2f cpu_ms_per_partition=%.2f\n", pc, oc, rc, (oc - pc) / d }'
done
