#!/usr/bin/env bash
# Companion benchmark (`make bench-foreign`): a pipeline into a time table
# whose partitions live on two remote servers (postgres_fdw), against what
# a user would do without talaria, on three local clusters:
#
#   pipeline_lua     COPY into the pipeline source; talaria's Lua identity
#                    transform; rows go through postgres_fdw batch inserts
#                    (ExecForeignBatchInsert, the server's batch_size)
#   pipeline_native  the same through the native trim plugin (no key to trim)
#   copy_floor       plain COPY of the same rows into the time table (PG 15
#                    routes them to the foreign partitions one row at a time:
#                    COPY into foreign tables batches only from PG 16 on)
#   insert_select    INSERT INTO the time table SELECT from a local staging
#                    table: PostgreSQL's own batched foreign insert
#
# Each case inserts the same rows over 4 days, 2 on each remote; the
# remote tables are truncated between runs.  Prints one line per case
# (median of BENCH_RUNS runs) with rows/s and the ratio to copy_floor and
# to insert_select.  Settings: BENCH_ROWS (default 200000), BENCH_RUNS
# (default 3), BENCH_FDW_BATCH (postgres_fdw batch_size, default 100).
set -u
cd "$(dirname "$0")/../.."
. test/lib.sh

ROWS=${BENCH_ROWS:-200000}
RUNS=${BENCH_RUNS:-3}
BATCH=${BENCH_FDW_BATCH:-100}
for v in "$ROWS" "$RUNS" "$BATCH"; do
	case "$v" in ''|*[!0-9]*) echo "BENCH_ROWS, BENCH_RUNS and BENCH_FDW_BATCH must be numbers" >&2; exit 2;; esac
done

tt_install_deps || exit 1
tt_build_install || { echo "build failed" >&2; exit 1; }
make -s install-test-plugins >/dev/null || { echo "could not install the test plugins" >&2; exit 1; }

export TT_EXTRA_CONF="talaria.native_library_path = '\$libdir:\$libdir/talaria_test_plugins'
timezone = 'UTC'
jit = off
autovacuum = off
max_wal_size = 16GB
synchronous_commit = off"

# three clusters: remote1, remote2, then the coordinator (tt_* keeps the last)
declare -a DATAS SOCKS PORTS
for i in 1 2 3; do
	tt_start_cluster || exit 1
	DATAS[$i]=$TT_DATA; SOCKS[$i]=$TT_SOCKDIR; PORTS[$i]=$TT_PORT
	TT_DATA=""	# keep it running: tt_stop_cluster stops only TT_DATA
done
cleanup() {
	for i in 1 2 3; do
		runuser -u postgres -- pg_ctl -D "${DATAS[$i]}" -m fast -w stop >/dev/null 2>&1
		rm -rf "${DATAS[$i]}" "${SOCKS[$i]}"
	done
}
trap cleanup EXIT
rq() { psql -X -q -At -v ON_ERROR_STOP=1 -h "${SOCKS[$1]}" -p "${PORTS[$1]}" -U postgres -d postgres "${@:2}"; }
q() { rq 3 "$@"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: nproc=$(nproc) postgres=\"$(q -c 'SHOW server_version')\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "settings: rows=$ROWS runs=$RUNS (median) postgres_fdw batch_size=$BATCH; coordinator and two remotes on this machine (unix sockets)"

for i in 1 2; do rq $i -c 'CREATE SCHEMA parts' || exit 1; done
q >/dev/null <<SQL || exit 1
CREATE EXTENSION talaria_transform;
CREATE EXTENSION postgres_fdw;
CREATE SERVER r1 FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '${SOCKS[1]}', port '${PORTS[1]}', dbname 'postgres', batch_size '$BATCH');
CREATE SERVER r2 FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '${SOCKS[2]}', port '${PORTS[2]}', dbname 'postgres', batch_size '$BATCH');
CREATE USER MAPPING FOR postgres SERVER r1;
CREATE USER MAPPING FOR postgres SERVER r2;
CREATE TABLE events (ts timestamptz NOT NULL, id bigint, city text, score int, price numeric)
    PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('events', 'ts', '1 day', premake => 0);
SELECT talaria.set_remote_placement('events', ARRAY['r1', 'r2'], 'parts');
CREATE TABLE staging (LIKE events);
INSERT INTO staging
SELECT timestamptz '2001-02-03 00:00+00' + (i - 1) * interval '4 days' / $ROWS, i,
       (ARRAY['Singapore','London','Paris','Tokyo'])[1 + i % 4], (i * 37) % 1000, round((i % 10000) / 100.0, 2)
  FROM generate_series(1, $ROWS) i;
CREATE TABLE raw_lua (LIKE events);
CREATE TABLE raw_native (LIKE events);
SELECT talaria.register_lua('bench_pass', 'function main(r) return r end');
SELECT talaria.register_native('bench_trim', '\$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.create_pipeline('raw_lua', 'events', 'bench_pass');
SELECT talaria.create_pipeline('raw_native', 'events', 'bench_trim');
COPY staging TO '${DATAS[3]}/events.copy';
-- the four days, made on the remotes once
INSERT INTO raw_lua SELECT * FROM staging WHERE id % 1000 = 0;
SQL
echo "partitions: $(q -c "SELECT string_agg(c.relname || '@' || s.srvname, ' ' ORDER BY c.relname) FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid JOIN pg_foreign_server s ON s.oid = f.ftserver")"

# one timed statement (ms, server side), after emptying the remote tables
timed() {
	q -c 'TRUNCATE events' || exit 1
	q <<SQL | tail -1
\\timing on
$1
SQL
}
run_case() {
	local name=$1 sql=$2 t
	timed "$sql" >/dev/null	# warm-up
	for r in $(seq "$RUNS"); do
		t=$(timed "$sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
		echo "$t"
	done | median
}
n_check() {
	local n
	n=$(q -c 'SELECT count(*) FROM events')
	[ "$n" = "$ROWS" ] || { echo "case $1 stored $n rows, not $ROWS" >&2; exit 1; }
}

declare -A ms
ms[copy_floor]=$(run_case copy_floor "COPY events FROM '${DATAS[3]}/events.copy'"); n_check copy_floor
ms[insert_select]=$(run_case insert_select "INSERT INTO events SELECT * FROM staging"); n_check insert_select
ms[pipeline_lua]=$(run_case pipeline_lua "COPY raw_lua FROM '${DATAS[3]}/events.copy'"); n_check pipeline_lua
ms[pipeline_native]=$(run_case pipeline_native "COPY raw_native FROM '${DATAS[3]}/events.copy'"); n_check pipeline_native

for c in copy_floor insert_select pipeline_lua pipeline_native; do
	awk -v c="$c" -v t="${ms[$c]}" -v n="$ROWS" -v f="${ms[copy_floor]}" -v s="${ms[insert_select]}" 'BEGIN {
		printf "case=%s rows=%d ms=%.0f rows_per_s=%.0f ratio_to_copy=%.2f ratio_to_insert_select=%.2f\n",
			c, n, t, n / (t / 1000), t / f, t / s }'
done
