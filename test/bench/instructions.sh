#!/usr/bin/env bash
# Instructions per row, counted by callgrind: noise-free figures for the
# cases of `make bench` whose wall times this shared machine blurs.
#
#   bash test/bench/instructions.sh          (after make install; about 3 minutes)
#
# Runs PostgreSQL in single-user mode under valgrind --tool=callgrind on a
# throwaway data directory, with the bench's event workload (20,000 rows).
# Each case runs twice, over 20,000 and over 10,000 rows, after a warm-up
# statement of 100 rows; only the instructions inside the measured
# statement (ProcessUtility for the COPYs, ExecutorRun for the SELECTs) are
# counted, and per row = (count over 20,000 - count over 10,000) / 10,000,
# which cancels every one-time cost.  Prints
#   instructions case=<name> per_row=<n> ratio=<n to its floor>
# Instructions are not time (cache misses, I/O and the kernel are left out),
# but they move only when the code does.  They leave out the system calls
# Go 1.19 makes to enter Go on every call (see the Go cases' wall times).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bindir=${TT_BINDIR:-/usr/lib/postgresql/15/bin}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 2; }
command -v callgrind_annotate >/dev/null || { echo "callgrind_annotate is needed (valgrind)" >&2; exit 2; }

work=$(mktemp -d /tmp/talaria_instr.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
chmod 755 "$work"
run_pg() {
	# single-user postgres, as postgres when root; stdin is the SQL
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
[ "$(id -u)" = 0 ] && chown postgres "$work"
run_pg "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-locale -E UTF8 >/dev/null || exit 1
cat >>"$work/data/postgresql.conf" <<'EOF'
talaria.native_library_path = '$libdir:$libdir/talaria_test_plugins'
timezone = 'UTC'
fsync = off
max_parallel_workers_per_gather = 0
jit = off
EOF

single() { run_pg "$bindir/postgres" --single -D "$work/data" postgres; }

events_fn=$(awk '/^CREATE FUNCTION bench_events/,/^\\\$\\\$;$/' "$top/test/bench/run.sh" | sed 's/\\\$/$/g')
[ -n "$events_fn" ] || { echo "could not find bench_events() in test/bench/run.sh" >&2; exit 1; }
cols="id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio"
{
	echo "CREATE EXTENSION talaria_transform;"
	# single-user mode reads one statement per line
	echo "$events_fn" | tr '\n' ' '; echo
	for n in 100 10000 20000; do
		echo "COPY (SELECT * FROM bench_events(1000000) LIMIT $n) TO '$work/events_$n.csv' (FORMAT csv);"
		echo "COPY (SELECT $cols FROM bench_events(1000000) LIMIT $n) TO '$work/trimmed_$n.csv' (FORMAT csv);"
		echo "CREATE TABLE docs_$n AS SELECT e.id, to_jsonb(e) AS doc FROM bench_events(1000000) AS e LIMIT $n;"
		# Talaria's real event: (ts, doc jsonb); its floor stores the doc without key1..key5
		echo "COPY (SELECT e.ts, to_jsonb(e) FROM bench_events(1000000) AS e LIMIT $n) TO '$work/doc_events_$n.csv' (FORMAT csv);"
		echo "COPY (SELECT e.ts, to_jsonb(e) - '{key1,key2,key3,key4,key5}'::text[] FROM bench_events(1000000) AS e LIMIT $n) TO '$work/doc_trimmed_$n.csv' (FORMAT csv);"
	done
	echo "SELECT talaria.register_lua('trim_lua', 'function main(row) row.key1 = nil row.key2 = nil row.key3 = nil row.key4 = nil row.key5 = nil return row end');"
	echo "SELECT talaria.register_native('trim_native', '\$libdir/talaria_test_plugins/trim.so', 'trim');"
	echo "SELECT talaria.register_native('trim_go', '\$libdir/talaria_test_plugins/go_trim.so', 'trim');"
	echo "SELECT talaria.register_native('trim_rust', '\$libdir/talaria_test_plugins/rust_trim.so', 'trim');"
	echo "CREATE TABLE target (id bigint, ts timestamptz NOT NULL, city text, uuid text, loc text, number text, key6 text, key7 text, key8 text, key9 text, key10 text, score int, price numeric, active boolean, ratio double precision) PARTITION BY RANGE (ts);"
	echo "CREATE TABLE target_p20240101 PARTITION OF target FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');"
	echo "CREATE TABLE raw_lua (id bigint, ts timestamptz NOT NULL, city text, uuid text, loc text, number text, key1 text, key2 text, key3 text, key4 text, key5 text, key6 text, key7 text, key8 text, key9 text, key10 text, score int, price numeric, active boolean, ratio double precision);"
	echo "CREATE TABLE raw_native (LIKE raw_lua);"
	echo "CREATE TABLE raw_go (LIKE raw_lua);"
	echo "SELECT talaria.create_time_table('target', 'ts', '1 day', NULL, 0);"
	echo "SELECT talaria.create_pipeline('raw_lua', 'target', 'trim_lua');"
	echo "SELECT talaria.create_pipeline('raw_native', 'target', 'trim_native');"
	echo "SELECT talaria.create_pipeline('raw_go', 'target', 'trim_go');"
	echo "SELECT talaria.register_lua('trim_doc_lua', 'function main(r) local d = r.doc d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil return r end');"
	echo "CREATE TABLE doc_target (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);"
	echo "CREATE TABLE doc_target_p20240101 PARTITION OF doc_target FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');"
	echo "CREATE TABLE raw_doc_lua (ts timestamptz NOT NULL, doc jsonb);"
	echo "SELECT talaria.create_time_table('doc_target', 'ts', '1 day', NULL, 0);"
	echo "SELECT talaria.create_pipeline('raw_doc_lua', 'doc_target', 'trim_doc_lua');"
	echo "VACUUM FREEZE;"
} >"$work/setup.sql"
# the first 20,000 events of the 1,000,000-row workload: all in its first
# day, so one partition (made above), as most of a day's ingest is
[ "$(id -u)" = 0 ] && chown -R postgres "$work"
single <"$work/setup.sql" >"$work/setup.out" 2>&1
if grep -q "ERROR" "$work/setup.out"; then
	grep "ERROR" "$work/setup.out" >&2
	exit 1
fi

count() {
	# $1: toggle function ("-": the whole process), $2: warm-up statement,
	# $3: measured statement
	local toggle="--toggle-collect=$1"
	printf '%s\n%s\n' "$2" "$3" >"$work/q.sql"
	[ "$(id -u)" = 0 ] && chown postgres "$work/q.sql"
	# Go: callgrind fails an assertion on the runtime's preemption signals
	# (GODEBUG turns them off; the trim runs on the backend's thread either
	# way), and loses the toggle function when a call switches to a
	# goroutine's stack, so the Go cases count the whole process (all its
	# threads): the difference of two runs still cancels the one-time costs
	[ "$1" = - ] && toggle="--collect-atstart=yes"
	run_pg env GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind "$toggle" \
		--callgrind-out-file="$work/cg.out" "$bindir/postgres" --single -D "$work/data" postgres \
		<"$work/q.sql" >"$work/q.out" 2>"$work/q.err" || return 1
	callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

declare -A PER_ROW
measure() {
	# $1 case, $2 toggle, $3 statement with @N@ for the row count, $4 warm-up
	local a b
	a=$(count "$2" "$4" "${3//@N@/20000}") || { echo "case=$1 failed" >&2; return 1; }
	b=$(count "$2" "$4" "${3//@N@/10000}") || { echo "case=$1 failed" >&2; return 1; }
	[ -n "${DEBUG:-}" ] && echo "case=$1 a=$a b=$b" >&2
	PER_ROW[$1]=$(((a - b) / 10000))
}

keys="'{key1,key2,key3,key4,key5}'::text[]"
echo "work: $work" >&2
measure fn_floor ExecutorRun "SELECT count(doc - $keys) FROM docs_@N@;" "SELECT count(doc - $keys) FROM docs_100;"
measure fn_talaria_lua ExecutorRun "SELECT count(talaria.transform_row('trim_lua', doc)) FROM docs_@N@;" \
	"SELECT count(talaria.transform_row('trim_lua', doc)) FROM docs_100;"
measure fn_talaria_native ExecutorRun "SELECT count(talaria.transform_row('trim_native', doc)) FROM docs_@N@;" \
	"SELECT count(talaria.transform_row('trim_native', doc)) FROM docs_100;"
measure fn_talaria_go - "SELECT count(talaria.transform_row('trim_go', doc)) FROM docs_@N@;" \
	"SELECT count(talaria.transform_row('trim_go', doc)) FROM docs_100;"
measure fn_talaria_rust ExecutorRun "SELECT count(talaria.transform_row('trim_rust', doc)) FROM docs_@N@;" \
	"SELECT count(talaria.transform_row('trim_rust', doc)) FROM docs_100;"
measure copy_floor ProcessUtility "COPY target FROM '$work/trimmed_@N@.csv' (FORMAT csv);" \
	"COPY target FROM '$work/trimmed_100.csv' (FORMAT csv);"
measure copy_talaria_native ProcessUtility "COPY raw_native FROM '$work/events_@N@.csv' (FORMAT csv);" \
	"COPY raw_native FROM '$work/events_100.csv' (FORMAT csv);"
measure copy_talaria_go - "COPY raw_go FROM '$work/events_@N@.csv' (FORMAT csv);" \
	"COPY raw_go FROM '$work/events_100.csv' (FORMAT csv);"
measure copy_talaria_lua ProcessUtility "COPY raw_lua FROM '$work/events_@N@.csv' (FORMAT csv);" \
	"COPY raw_lua FROM '$work/events_100.csv' (FORMAT csv);"

# the (ts, doc jsonb) event: the Lua transform deletes doc.key1..key5
measure copy_doc_floor ProcessUtility "COPY doc_target FROM '$work/doc_trimmed_@N@.csv' (FORMAT csv);" \
	"COPY doc_target FROM '$work/doc_trimmed_100.csv' (FORMAT csv);"
measure copy_doc_talaria_lua ProcessUtility "COPY raw_doc_lua FROM '$work/doc_events_@N@.csv' (FORMAT csv);" \
	"COPY raw_doc_lua FROM '$work/doc_events_100.csv' (FORMAT csv);"

for c in fn_floor fn_talaria_lua fn_talaria_native fn_talaria_go fn_talaria_rust copy_floor copy_talaria_native \
	copy_talaria_go copy_talaria_lua copy_doc_floor copy_doc_talaria_lua; do
	[ -n "${PER_ROW[$c]:-}" ] || continue
	case $c in fn_*) floor=${PER_ROW[fn_floor]:-} ;; copy_doc_*) floor=${PER_ROW[copy_doc_floor]:-} ;;
		*) floor=${PER_ROW[copy_floor]:-} ;; esac
	awk -v c="$c" -v n="${PER_ROW[$c]}" -v f="$floor" \
		'BEGIN { printf "instructions case=%s per_row=%d ratio=%.2f\n", c, n, (f > 0 ? n / f : 0) }'
done
