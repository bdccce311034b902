#!/usr/bin/env bash
# The benchmark (`make bench`): how fast is talaria_transform, and against
# what?  On this machine, in one run, side by side on the same data:
#
#   function level  SELECT count(f(doc)) FROM docs, per row, against
#                   PostgreSQL's own doc - '{key1,...,key5}'::text[] (the floor):
#                   SQL function, PL/pgSQL, pllua, plpython3u, talaria Lua
#                   (cached, uncached), talaria native in C, Go and Rust
#   ingest level    COPY of the same events into a daily-partitioned table,
#                   against plain COPY with no trigger (the floor): PL/pgSQL
#                   trigger, pllua trigger, talaria Lua and native pipelines
#                   (C and Go)
#   memory          peak RSS (VmHWM) of each case's backend; growth from N to
#                   3N rows in one session
#   allocations     malloc/realloc/free/mmap calls per row (LD_PRELOAD counter,
#                   test/bench/malloc_count.c), on a restarted server
#
# Prints one line per case
#   case=<name> rows=<n> us_per_row=<x> ratio=<x to its floor> ...
# (medians of BENCH_RUNS runs after a warm-up) and writes
# test/bench/out/{results,memory,alloc}.csv and test/bench/out/ratios.png.
#
# Settings: BENCH_ROWS (default 1000000; 200000 for a quick run),
# BENCH_RUNS (default 5, at least 3), BENCH_PROFILE=1 (also perf profiles
# of the talaria cases and their floors).
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
. test/lib.sh

ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-5}
case "$ROWS" in ''|*[!0-9]*) echo "BENCH_ROWS must be a number" >&2; exit 2;; esac
case "$RUNS" in ''|*[!0-9]*) echo "BENCH_RUNS must be a number" >&2; exit 2;; esac
[ "$ROWS" -ge 20000 ] || { echo "BENCH_ROWS must be at least 20000" >&2; exit 2; }
[ "$RUNS" -ge 3 ] || { echo "BENCH_RUNS must be at least 3" >&2; exit 2; }
# talaria Lua uncached costs a fresh LuaJIT state per row: fewer rows
UNCACHED_ROWS=$((ROWS < 20000 ? ROWS : 20000))
KEYS="'{key1,key2,key3,key4,key5}'::text[]"

out="$top/test/bench/out"
mkdir -p "$out"

TT_EXTRA_PACKAGES="postgresql-15-pllua postgresql-plpython3-15 gnuplot-nox"
tt_install_deps || exit 1
# which code is measured: the commit, and files changed since (the tree is
# shared; see the "tree:" line)
tree=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')
tt_build_install || { echo "build failed" >&2; exit 1; }
# the sample native plugins (test/plugins/trim.c, go/trim, rust/trim) under
# $libdir/talaria_test_plugins
make -s install-test-plugins >/dev/null || { echo "could not install the test plugins" >&2; exit 1; }

work=$(mktemp -d /tmp/talaria_bench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
gcc -shared -fPIC -O2 -Wall -I"$(pg_config --includedir-server)" \
	-o "$work/malloc_count.so" test/bench/malloc_count.c || { echo "could not build malloc_count.so" >&2; exit 1; }

# The server: the backend does all the work (no parallel workers, no JIT,
# no autovacuum, no checkpoint in a timed run).  shared_buffers is smaller
# than a quarter of the docs table at the default sizes, so scans read
# through PostgreSQL's ring buffer, as big scans do, and the backend's RSS
# is its own memory, not the table.
TT_EXTRA_CONF="talaria.native_library_path = '\$libdir:\$libdir/talaria_test_plugins'
timezone = 'UTC'
shared_buffers = 128MB
max_parallel_workers_per_gather = 0
jit = off
autovacuum = off
max_wal_size = 16GB
checkpoint_timeout = 1h
synchronous_commit = off"
export TT_EXTRA_CONF
cleanup() { tt_stop_cluster; rm -rf "$work"; }
trap cleanup EXIT
tt_start_cluster || exit 1

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s; }
t_start=$(now)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
pgv=$(q -c "SHOW server_version")
echo "machine: nproc=$(nproc) cpu=\"$cpu\" ram=\"$mem\" kernel=$(uname -r) postgres=\"$pgv\" load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
echo "tree: $tree${dirty:+ plus uncommitted changes in: $dirty}"
echo "settings: rows=$ROWS runs=$RUNS (median) uncached_rows=$UNCACHED_ROWS shared_buffers=128MB jit=off parallel=off fsync=off synchronous_commit=off"

# ---------------------------------------------------------------------
# Schema and data
# ---------------------------------------------------------------------
# pllua (Lua 5.3) and talaria_transform (LuaJIT) export the same lua_*
# symbols and PostgreSQL loads libraries RTLD_GLOBAL: one backend that
# loads both crashes.  So pllua is set up, and its cases run, in sessions
# that never touch talaria (see README, "Benchmark").
q >/dev/null <<'SQL' || exit 1
CREATE EXTENSION pllua;
CREATE FUNCTION bench_trim_pllua(doc jsonb) RETURNS jsonb
    LANGUAGE pllua IMMUTABLE STRICT AS $$
  local t = doc{}
  t.key1 = nil t.key2 = nil t.key3 = nil t.key4 = nil t.key5 = nil
  return t
$$;
SQL

q >/dev/null <<SQL || exit 1
CREATE EXTENSION talaria_transform;
CREATE EXTENSION plpython3u;
CREATE EXTENSION jsonb_plpython3u;

-- Talaria's trim event: id, city, uuid, loc, a 33-digit number string,
-- key1..key10 and a few typed fields; deterministic in i, ts spanning a week.
CREATE FUNCTION bench_events(n bigint) RETURNS TABLE (
    id bigint, ts timestamptz, city text, uuid text, loc text, number text,
    key1 text, key2 text, key3 text, key4 text, key5 text,
    key6 text, key7 text, key8 text, key9 text, key10 text,
    score int, price numeric, active boolean, ratio double precision)
    LANGUAGE sql AS \$\$
SELECT i,
       to_timestamp(1704067200 + (i - 1) * 604800 / n),
       (ARRAY['Singapore','London','Paris','New York','Tokyo','Berlin','Sydney','Toronto','Madrid','Seoul'])[1 + i % 10],
       substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12),
       round(((i * 7919) % 180000) / 1000.0 - 90, 3) || ',' || round(((i * 104729) % 360000) / 1000.0 - 180, 3),
       ('100000000000000000000000000000000'::numeric + i::numeric * 98765432109876543)::text,
       substr(k, 1, 10), substr(k, 3, 10), substr(k, 5, 10), substr(k, 7, 10), substr(k, 9, 10),
       substr(k, 11, 10), substr(k, 13, 10), substr(k, 15, 10), substr(k, 17, 10), substr(k, 19, 10),
       ((i * 37) % 1000)::int,
       round(((i * 7919) % 100000) / 100.0, 2),
       i % 3 = 0,
       ((i * 31) % 1000) / 1000.0::double precision
  FROM generate_series(1, n) AS i,
       LATERAL (SELECT md5(i::text) AS h, md5(i::text || 'key') AS k) AS x
\$\$;

-- Server-side timing of one statement, in ms.
CREATE FUNCTION bench_ms(query text) RETURNS double precision LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE query;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
\$\$;

CREATE TABLE docs AS SELECT e.id, to_jsonb(e) AS doc FROM bench_events($ROWS) AS e;
CREATE TABLE docs_small AS SELECT * FROM docs WHERE id <= 20000;
VACUUM (FREEZE, ANALYZE) docs, docs_small;

-- the peers, written the way a user would
CREATE FUNCTION bench_trim_sql(doc jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT
    AS \$\$ SELECT doc - $KEYS \$\$;
CREATE FUNCTION bench_trim_plpgsql(doc jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE STRICT
    AS \$\$ BEGIN RETURN doc - $KEYS; END \$\$;
CREATE FUNCTION bench_trim_plpython(doc jsonb) RETURNS jsonb LANGUAGE plpython3u IMMUTABLE STRICT
    TRANSFORM FOR TYPE jsonb AS \$\$
for k in ('key1', 'key2', 'key3', 'key4', 'key5'):
    doc.pop(k, None)
return doc
\$\$;

-- talaria's trim, in Lua and native (test/plugins/trim.c)
SELECT talaria.register_lua('trim_lua',
    'function main(row) row.key1 = nil row.key2 = nil row.key3 = nil row.key4 = nil row.key5 = nil return row end');
SELECT talaria.register_native('trim_native', '\$libdir/talaria_test_plugins/trim.so', 'trim');
SELECT talaria.register_native('trim_native_host', '\$libdir/talaria_test_plugins/trim.so', 'trim_host');
-- the same trim in Go and in Rust (test/plugins/go/trim, test/plugins/rust/trim)
SELECT talaria.register_native('trim_go', '\$libdir/talaria_test_plugins/go_trim.so', 'trim');
SELECT talaria.register_native('trim_rust', '\$libdir/talaria_test_plugins/rust_trim.so', 'trim');

-- the event files for COPY
COPY (SELECT * FROM bench_events($ROWS)) TO '$work/events.csv' (FORMAT csv);
COPY (SELECT * FROM bench_events($ROWS) LIMIT 10000) TO '$work/events_10000.csv' (FORMAT csv);
COPY (SELECT * FROM bench_events($ROWS) LIMIT 20000) TO '$work/events_20000.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM bench_events($ROWS)) TO '$work/trimmed.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM bench_events($ROWS) LIMIT 10000) TO '$work/trimmed_10000.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM bench_events($ROWS) LIMIT 20000) TO '$work/trimmed_20000.csv' (FORMAT csv);

-- ingest: the daily-partitioned target (what the pipelines store: the
-- event without key1..key5), its 7 partitions made beforehand; a raw
-- table per ingest case, which keeps nothing
CREATE TABLE target (
    id bigint, ts timestamptz NOT NULL, city text, uuid text, loc text, number text,
    key6 text, key7 text, key8 text, key9 text, key10 text,
    score int, price numeric, active boolean, ratio double precision) PARTITION BY RANGE (ts);
CREATE TABLE target_full (
    id bigint, ts timestamptz NOT NULL, city text, uuid text, loc text, number text,
    key1 text, key2 text, key3 text, key4 text, key5 text,
    key6 text, key7 text, key8 text, key9 text, key10 text,
    score int, price numeric, active boolean, ratio double precision) PARTITION BY RANGE (ts);
DO \$\$
DECLARE d date;
BEGIN
    FOR d IN SELECT generate_series(date '2024-01-01', date '2024-01-07', interval '1 day') LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF target FOR VALUES FROM (%L) TO (%L)',
                       'target_p' || to_char(d, 'YYYYMMDD'), d, d + 1);
        EXECUTE format('CREATE TABLE %I PARTITION OF target_full FOR VALUES FROM (%L) TO (%L)',
                       'target_full_p' || to_char(d, 'YYYYMMDD'), d, d + 1);
    END LOOP;
END
\$\$;
CREATE TABLE raw_plpgsql (LIKE target_full);
CREATE TABLE raw_pllua (LIKE target_full);
CREATE TABLE raw_lua (LIKE target_full);
CREATE TABLE raw_native (LIKE target_full);
CREATE TABLE raw_go (LIKE target_full);

CREATE FUNCTION bench_ingest_plpgsql() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO target VALUES (NEW.id, NEW.ts, NEW.city, NEW.uuid, NEW.loc, NEW.number,
        NEW.key6, NEW.key7, NEW.key8, NEW.key9, NEW.key10, NEW.score, NEW.price, NEW.active, NEW.ratio);
    RETURN NULL;
END
\$\$;
CREATE TRIGGER bench_ingest BEFORE INSERT ON raw_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_ingest_plpgsql();
SQL

q >/dev/null <<'SQL' || exit 1
CREATE FUNCTION bench_ingest_pllua() RETURNS trigger LANGUAGE pllua AS $$
  local s = bench_insert
  if not s then
    s = spi.prepare('INSERT INTO target VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)',
                    {'bigint', 'timestamptz', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text',
                     'text', 'integer', 'numeric', 'boolean', 'double precision'})
    bench_insert = s
  end
  local r = new
  s:execute(r.id, r.ts, r.city, r.uuid, r.loc, r.number, r.key6, r.key7, r.key8, r.key9, r.key10,
            r.score, r.price, r.active, r.ratio)
  return nil
$$;
CREATE TRIGGER bench_ingest BEFORE INSERT ON raw_pllua
    FOR EACH ROW EXECUTE FUNCTION bench_ingest_pllua();
SQL

# talaria pipelines, if the ingest API is there
have_ingest=$(q -c "SELECT count(*) = 2 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'talaria' AND p.proname IN ('create_time_table', 'create_pipeline')")
if [ "$have_ingest" = t ]; then
	q >/dev/null <<'SQL' || exit 1
SELECT talaria.create_time_table('target', 'ts');
SELECT talaria.create_pipeline('raw_lua', 'target', 'trim_lua');
SELECT talaria.create_pipeline('raw_native', 'target', 'trim_native');
SELECT talaria.create_pipeline('raw_go', 'target', 'trim_go');
SQL
fi
q -c "CHECKPOINT" || exit 1
sync
echo "data: $ROWS events, docs table $(q -c "SELECT pg_size_pretty(pg_total_relation_size('docs'))"), avg doc $(q -c "SELECT round(avg(pg_column_size(doc))) FROM docs_small") bytes, events.csv $(du -h "$work/events.csv" | cut -f1) ($(( $(now) - t_start )) s)"

# ---------------------------------------------------------------------
# Each run of a case is a psql session of its own (a fresh backend, so its
# VmHWM is the case's own): a warm-up on a few rows, one timed run.  The
# runs go round-robin over the cases (run 1 of every case, then run 2, ...)
# so that a slow spell of the machine falls on all of them alike; a case's
# figure is the median of its runs, its peak RSS the largest VmHWM.
# ---------------------------------------------------------------------
session() {
	# $1: psql script; the backend's pid is in $BENCH_PID for \!; ends
	# with "hwm|<VmHWM kB>"
	{
		echo 'SELECT pg_backend_pid() AS pid \gset'
		echo '\setenv BENCH_PID :pid'
		printf '%s\n' "$1"
		echo "\\! awk '/^VmHWM/ { print \"hwm|\" \$2 }' /proc/\$BENCH_PID/status"
	} | q 2>&1
}

results_csv="$out/results.csv"
echo "level,case,rows,runs,us_per_row,ratio,spread_pct,peak_rss_kb,check,note,runs_ms" >"$results_csv"
declare -A US RATIO GROWTH ALLOCS LUA_ALLOCS
declare -A C_LEVEL C_ROWS C_BODY C_CHECK C_NOTE C_MS C_HWM C_CHECKOUT C_ERR
CASES=()

add_case() {
	# level name rows note body(run) check(last run only)
	CASES+=("$2")
	C_LEVEL[$2]=$1 C_ROWS[$2]=$3 C_NOTE[$2]=$4 C_BODY[$2]=$5 C_CHECK[$2]=$6
	C_MS[$2]="" C_HWM[$2]=0 C_CHECKOUT[$2]="" C_ERR[$2]=""
}

fn_case() {
	# name expr table rows [setup] [note]
	local name=$1 expr=$2 table=$3 rows=$4 setup=${5:-} note=${6:-} warm
	warm=$((rows / 10 < 20000 ? rows / 10 : 20000))
	add_case function "$name" "$rows" "$note" "$setup
SELECT 'warm', bench_ms(\$q\$SELECT count($expr) FROM (SELECT doc FROM $table LIMIT $warm) s\$q\$);
SELECT 'ms', bench_ms(\$q\$SELECT count($expr) FROM $table\$q\$);" "$setup
SELECT 'check', count(*) FILTER (WHERE $expr IS DISTINCT FROM doc - $KEYS) FROM docs_small WHERE id <= 1000;"
}

copy_case() {
	# name table file(events|trimmed) stored_in [note] [sql after the last run]
	local name=$1 table=$2 file=$3 stored=$4 note=${5:-} after=${6:-}
	add_case ingest "$name" "$ROWS" "$note" "TRUNCATE $stored;
SELECT 'warm', bench_ms(\$q\$COPY $table FROM '$work/${file}_10000.csv' (FORMAT csv)\$q\$);
TRUNCATE $stored;
CHECKPOINT;
\\! sync
SELECT 'ms', bench_ms(\$q\$COPY $table FROM '$work/$file.csv' (FORMAT csv)\$q\$);
\\! sync" "
SELECT 'check', count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM $stored t;
$after"
	C_STORED[$name]=$stored C_TABLE[$name]=$table
}
declare -A C_STORED C_TABLE

run_cases() {
	# runs every case of a level RUNS times, round-robin
	local level=$1 r name o ms hwm body
	for r in $(seq "$RUNS"); do
		for name in "${CASES[@]}"; do
			[ "${C_LEVEL[$name]}" = "$level" ] && [ -z "${C_ERR[$name]}" ] || continue
			body=${C_BODY[$name]}
			[ "$r" = "$RUNS" ] && body="$body${C_CHECK[$name]}"
			o=$(session "$body")
			ms=$(printf '%s\n' "$o" | awk -F'|' '$1 == "ms" { print $2 }')
			hwm=$(printf '%s\n' "$o" | awk -F'|' '$1 == "hwm" { print $2 }')
			C_ERR[$name]=$(printf '%s\n' "$o" | grep -E 'ERROR|FATAL|server closed' | head -3)
			if [ -z "${C_ERR[$name]}" ] && [ -z "$ms" ]; then C_ERR[$name]="no timing"; fi
			C_MS[$name]="${C_MS[$name]} $ms"
			[ -n "$hwm" ] && [ "$hwm" -gt "${C_HWM[$name]}" ] && C_HWM[$name]=$hwm
			[ "$r" = "$RUNS" ] &&
				C_CHECKOUT[$name]=$(printf '%s\n' "$o" | awk -F'|' '$1 == "check" { print $2 (NF > 2 ? "|" $3 : "") }')
		done
	done
}

report_cases() {
	# prints and records the cases of one level; the first is the floor
	local level=$1 name floor_us="" us ratio check note line rows full_us="" spread
	if [ "$level" = ingest ] && [ -n "${C_MS[copy_full]:-}" ] && [ -z "${C_ERR[copy_full]}" ]; then
		full_us=$(printf '%s\n' ${C_MS[copy_full]} | median | awk -v n="$ROWS" '{ printf "%.3f", $1 * 1000 / n }')
	fi
	for name in "${CASES[@]}"; do
		[ "${C_LEVEL[$name]}" = "$level" ] || continue
		rows=${C_ROWS[$name]} note=${C_NOTE[$name]} check=ok
		if [ -n "${C_ERR[$name]}" ]; then
			echo "case=$name failed: ${C_ERR[$name]}"
			echo "$level,$name,$rows,$RUNS,,,,,failed,\"$(printf '%s' "${C_ERR[$name]}" | tr '\n"' " '")\"" >>"$results_csv"
			continue
		fi
		us=$(printf '%s\n' ${C_MS[$name]} | median | awk -v n="$rows" '{ printf "%.3f", $1 * 1000 / n }')
		# (slowest run - fastest run) / median
		spread=$(printf '%s\n' ${C_MS[$name]} | sort -g | awk -v m="$us" -v n="$rows" '
			NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi - lo) * 1000 / n / m * 100 }')
		[ -n "$floor_us" ] || floor_us=$us
		ratio=$(awk -v a="$us" -v b="$floor_us" 'BEGIN { printf "%.2f", a / b }')
		if [ "$level" = function ]; then
			[ "${C_CHECKOUT[$name]}" = 0 ] || check="differs_in_${C_CHECKOUT[$name]}_of_1000_rows"
		elif [ "${C_CHECKOUT[$name]%%|*}" != "$ROWS" ]; then
			check="stored_${C_CHECKOUT[$name]%%|*}_rows"
		elif [ "${C_STORED[$name]}" = target ] && [ "${C_CHECKOUT[$name]}" != "${C_CHECKOUT[copy_floor]}" ]; then
			check=differs
		fi
		line="case=$name rows=$rows us_per_row=$us ratio=$ratio"
		# ingest: also the ratio to plain COPY of the same (whole) events
		[ "$level" = ingest ] && [ -n "$full_us" ] &&
			line="$line vs_copy_full=$(awk -v a="$us" -v b="$full_us" 'BEGIN { printf "%.2f", a / b }')"
		line="$line spread=$spread% peak_rss_mb=$(awk -v k="${C_HWM[$name]}" 'BEGIN { printf "%.1f", k / 1024 }')"
		[ "$check" = ok ] || line="$line check=$check"
		[ -n "$note" ] && line="$line   # $note"
		echo "$line"
		echo "$level,$name,$rows,$RUNS,$us,$ratio,$spread,${C_HWM[$name]},$check,\"$note\",$(echo ${C_MS[$name]} | tr ' ' ';')" >>"$results_csv"
		US[$name]=$us
		RATIO[$name]=$ratio
	done
}

# ---------------------------------------------------------------------
# Function level
# ---------------------------------------------------------------------
fn_case fn_floor "doc - $KEYS" docs "$ROWS" "" "PostgreSQL's jsonb - text[]: the floor"
fn_case fn_sql "bench_trim_sql(doc)" docs "$ROWS" "" "LANGUAGE sql (inlined by the planner)"
fn_case fn_plpgsql "bench_trim_plpgsql(doc)" docs "$ROWS" "" "PL/pgSQL: RETURN doc - keys"
fn_case fn_pllua "bench_trim_pllua(doc)" docs "$ROWS" "" "Debian's pllua (Lua 5.3): jsonb to table, keys = nil, back"
fn_case fn_plpython3u "bench_trim_plpython(doc)" docs "$ROWS" "" "plpython3u with jsonb_plpython3u: dict.pop"
fn_case fn_talaria_lua "talaria.transform_row('trim_lua', doc)" docs "$ROWS" "" "cached LuaJIT state"
fn_case fn_talaria_lua_uncached "talaria.transform_row('trim_lua', doc)" docs_small "$UNCACHED_ROWS" \
	"SET talaria.lua_cache = off;" "talaria.lua_cache = off: a fresh LuaJIT state per row; $UNCACHED_ROWS rows"
fn_case fn_talaria_native "talaria.transform_row('trim_native', doc)" docs "$ROWS" "" "test/plugins/trim.c, symbol trim"
fn_case fn_talaria_native_host "talaria.transform_row('trim_native_host', doc)" docs "$ROWS" "" \
	"test/plugins/trim.c, symbol trim_host: five host->remove calls"
fn_case fn_talaria_go "talaria.transform_row('trim_go', doc)" docs "$ROWS" "" \
	"test/plugins/go/trim (Debian's Go 1.19, cgo): the same loop as trim.c, plus Go's cgo callback per call"
fn_case fn_talaria_rust "talaria.transform_row('trim_rust', doc)" docs "$ROWS" "" "test/plugins/rust/trim (Debian's rustc 1.63)"

# ---------------------------------------------------------------------
# Ingest level
# ---------------------------------------------------------------------
# the first is the floor; its stored rows are the reference for the others
copy_case copy_floor target trimmed target "plain COPY of the stored columns into the target, no trigger: the floor" \
	"CREATE TABLE target_reference AS SELECT * FROM target;"
copy_case copy_full target_full events target_full "plain COPY of the whole events (key1..key5 too) into a table keeping them, no trigger"
copy_case copy_plpgsql raw_plpgsql events target "PL/pgSQL BEFORE INSERT trigger: INSERT INTO target, RETURN NULL"
copy_case copy_pllua raw_pllua events target "pllua BEFORE INSERT trigger: prepared INSERT, return nil"
if [ "$have_ingest" = t ]; then
	copy_case copy_talaria_lua raw_lua events target "talaria.create_pipeline with trim_lua"
	copy_case copy_talaria_native raw_native events target "talaria.create_pipeline with trim_native"
	copy_case copy_talaria_go raw_go events target "talaria.create_pipeline with trim_go (Go)"
fi

# function level first, then ingest level: a COPY leaves the kernel
# writing back its pages for a while (each COPY run is followed by sync)
echo
echo "== running: $RUNS runs of each case, round-robin (function level, then ingest level)"
run_cases function
sync
run_cases ingest

echo
echo "== function level: SELECT count(f(doc)) FROM docs, $ROWS rows; ratio to doc - '{key1,...,key5}'::text[]"
report_cases function

# fn_sql is inlined into the very plan of fn_floor: how far apart the two
# come out is the noise of this run
[ -n "${US[fn_sql]:-}" ] && [ -n "${US[fn_floor]:-}" ] &&
	echo "noise: fn_sql runs the same plan as fn_floor (the SQL function is inlined): they differ by $(awk -v a="${US[fn_sql]}" -v b="${US[fn_floor]}" 'BEGIN { d = (a - b) / b * 100; printf "%+.0f%%", d }')"

echo
echo "== ingest level: COPY of $ROWS events into a daily-partitioned table (7 partitions); ratio to plain COPY"
report_cases ingest
if [ "$have_ingest" != t ]; then
	for c in copy_talaria_lua copy_talaria_native copy_talaria_go; do
		echo "case=$c skipped (ingest API not available)"
		echo "ingest,$c,$ROWS,,,,,,skipped,\"ingest API not available\"" >>"$results_csv"
	done
fi
# The rows each ingest case stored in its last run were checked against
# plain COPY's (count, and a hash of the rows as text); show differences.
for name in "${CASES[@]}"; do
	[ "${C_LEVEL[$name]}" = ingest ] && [ "${C_STORED[$name]}" = target ] && [ "$name" != copy_floor ] || continue
	[ -z "${C_ERR[$name]}" ] && [ "${C_CHECKOUT[$name]}" != "${C_CHECKOUT[copy_floor]}" ] || continue
	q -c "TRUNCATE target" -c "COPY ${C_TABLE[$name]} FROM '$work/events.csv' (FORMAT csv)" >/dev/null
	echo "  $name stored $(q -c "SELECT count(*) FROM target t JOIN target_reference r USING (id) WHERE t::text <> r::text") of $ROWS rows otherwise than plain COPY, e.g.:"
	q -F $'\n' -c "SELECT '  stored:     ' || t::text, '  plain COPY: ' || r::text
	                 FROM target t JOIN target_reference r USING (id) WHERE t::text <> r::text ORDER BY id LIMIT 2" |
		sed 's/^/  /'
done
# ---------------------------------------------------------------------
# Memory: VmHWM after N rows, then after 3N rows, in one session
# ---------------------------------------------------------------------
echo
echo "== memory: peak RSS (VmHWM) of one backend after $ROWS rows, then after a $((3 * ROWS))-row statement"
memory_csv="$out/memory.csv"
echo "case,rows_1,vmhwm_1_kb,rows_2,vmhwm_2_kb,growth_kb,verdict" >"$memory_csv"
mem_case() {
	local name=$1 expr=$2 o h1 h2 growth verdict
	o=$(session "SELECT 'warm', bench_ms(\$q\$SELECT count($expr) FROM docs_small\$q\$);
SELECT 'ms', bench_ms(\$q\$SELECT count($expr) FROM docs\$q\$);
\\! awk '/^VmHWM/ { print \"hwm1|\" \$2 }' /proc/\$BENCH_PID/status
SELECT 'ms', bench_ms(\$q\$SELECT count($expr) FROM docs CROSS JOIN LATERAL generate_series(1, 3 + 0 * docs.id) AS g\$q\$);")
	h1=$(printf '%s\n' "$o" | awk -F'|' '$1 == "hwm1" { print $2 }')
	h2=$(printf '%s\n' "$o" | awk -F'|' '$1 == "hwm" { print $2 }')
	if [ -z "$h1" ] || [ -z "$h2" ] || printf '%s\n' "$o" | grep -q ERROR; then
		echo "memory=$name failed: $(printf '%s\n' "$o" | grep -E 'ERROR|FATAL' | head -2)"
		return 1
	fi
	growth=$((h2 - h1))
	verdict=ok
	[ "$growth" -gt 8192 ] && verdict=GROWS
	GROWTH[$name]=$growth
	echo "memory=$name rows=$ROWS vmhwm_mb=$(awk -v k="$h1" 'BEGIN { printf "%.1f", k / 1024 }') then rows=$((3 * ROWS)) vmhwm_mb=$(awk -v k="$h2" 'BEGIN { printf "%.1f", k / 1024 }') growth_kb=$growth $verdict"
	echo "$name,$ROWS,$h1,$((3 * ROWS)),$h2,$growth,$verdict" >>"$memory_csv"
}
mem_case fn_floor "doc - $KEYS"
mem_case fn_talaria_lua "talaria.transform_row('trim_lua', doc)"
mem_case fn_talaria_native "talaria.transform_row('trim_native', doc)"
mem_case fn_talaria_go "talaria.transform_row('trim_go', doc)"

# ---------------------------------------------------------------------
# Profiles (BENCH_PROFILE=1): perf record of one run of the talaria cases
# and their floors; flat profiles in test/bench/out/profile_<case>.txt
# ---------------------------------------------------------------------
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	echo
	echo "== profiles (perf record --call-graph dwarf of one run each; inclusive time of the named functions)"
	profile_case() {
		# name statement: one warm-up, then one recorded run
		local name=$1 stmt=$2 o f="$out/profile_$name.txt"
		o=$(session "$stmt;
\\! (perf record -q -F 1999 --call-graph dwarf,8192 -o '$work/perf_$name.data' -p \$BENCH_PID </dev/null >/dev/null 2>&1 & echo \$! > '$work/perf.pid'); sleep 1
$stmt;
\\! kill -INT \$(cat '$work/perf.pid'); sleep 3")
		{
			echo "# $name: $stmt"
			echo "# inclusive (children) time by function, named functions only"
			perf report -i "$work/perf_$name.data" --children --sort symbol -g none --stdio --percent-limit 1 2>/dev/null |
				grep -v '^#' | grep -v '^$' | grep -v '\] 0x0000' | sed 's/ *- *- *$//'
			echo "# self time by library and function"
			perf report -i "$work/perf_$name.data" --no-children --sort dso,symbol -g none --stdio --percent-limit 0.5 2>/dev/null |
				grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//'
		} >"$f"
		if grep -q '%' "$f"; then
			echo "-- $name (all of it in test/bench/out/profile_$name.txt)"
			# the inclusive lines below the executor's own frames
			sed -n '3,$p' "$f" | grep -v -E 'main|PostgresMain|PostmasterMain|_start|exec_simple_query|PortalRun|ProcessUtility|ExecutorRun|DoCopy|standard_|ServerLoop|BackendStartup|BackendRun|do_syscall|entry_SYSCALL' |
				awk '/^# self/ { exit } { print }' | head -25
		else
			echo "-- $name: no profile $(printf '%s\n' "$o" | grep -E 'ERROR|FATAL' | head -2)"
		fi
		rm -f "$work/perf_$name.data"
	}
	if command -v perf >/dev/null; then
		profile_case fn_floor "SELECT count(doc - $KEYS) FROM docs"
		profile_case fn_talaria_lua "SELECT count(talaria.transform_row('trim_lua', doc)) FROM docs"
		profile_case fn_talaria_native "SELECT count(talaria.transform_row('trim_native', doc)) FROM docs"
		profile_case copy_floor "TRUNCATE target; COPY target FROM '$work/trimmed.csv' (FORMAT csv)"
		if [ "$have_ingest" = t ]; then
			profile_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events.csv' (FORMAT csv)"
			profile_case copy_talaria_native "TRUNCATE target; COPY raw_native FROM '$work/events.csv' (FORMAT csv)"
		fi
	else
		echo "profiles: skipped (no perf)"
	fi
fi

# ---------------------------------------------------------------------
# Allocations per row: the server restarted with the LD_PRELOAD counter;
# per row = ((calls over 20k rows) - (calls over 10k rows)) / 10k, in one
# session after a 10k-row warm-up
# ---------------------------------------------------------------------
echo
echo "== allocations per row (LD_PRELOAD counter: (calls over 20k rows - calls over 10k rows) / 10k)"
runuser -u postgres -- env LD_PRELOAD="$work/malloc_count.so" \
	pg_ctl -D "$TT_DATA" -l "$TT_DATA/server.log" -w restart >/dev/null || { echo "restart with LD_PRELOAD failed"; exit 1; }
q -c "CREATE FUNCTION malloc_counts() RETURNS bigint[] AS '$work/malloc_count.so', 'malloc_counts' LANGUAGE c" || exit 1
alloc_csv="$out/alloc.csv"
echo "case,allocs_per_row,malloc,calloc,realloc,aligned,frees_per_row,mmaps_per_row,munmaps_per_row" >"$alloc_csv"
alloc_case() {
	# name statement-with-%N%
	local name=$1 stmt=$2 o c0 c1 c2 line
	o=$(session "${stmt//%N%/10000};
${stmt//%N%/10000};
SELECT 'c0', array_to_string(malloc_counts(), ',');
${stmt//%N%/10000};
SELECT 'c1', array_to_string(malloc_counts(), ',');
${stmt//%N%/20000};
SELECT 'c2', array_to_string(malloc_counts(), ',');")
	c0=$(printf '%s\n' "$o" | awk -F'|' '$1 == "c0" { print $2 }')
	c1=$(printf '%s\n' "$o" | awk -F'|' '$1 == "c1" { print $2 }')
	c2=$(printf '%s\n' "$o" | awk -F'|' '$1 == "c2" { print $2 }')
	if [ -z "$c0" ] || [ -z "$c1" ] || [ -z "$c2" ]; then
		echo "alloc=$name failed: $(printf '%s\n' "$o" | grep -E 'ERROR|FATAL' | head -2)"
		return 1
	fi
	# counters: malloc calloc realloc aligned free mmap munmap
	line=$(awk -v a="$c0" -v b="$c1" -v c="$c2" 'BEGIN {
		split(a, x, ","); split(b, y, ","); split(c, z, ",")
		for (i = 1; i <= 7; i++) {
			d[i] = ((z[i] - y[i]) - (y[i] - x[i])) / 10000
			if (d[i] > -0.0005 && d[i] < 0.0005) d[i] = 0
		}
		printf "%.3f %.3f %.3f %.3f %.3f %.3f %.4f %.4f", d[1] + d[2] + d[3] + d[4], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
	}')
	set -- $line
	ALLOCS[$name]=$1
	echo "alloc=$name allocs_per_row=$1 (malloc $2, calloc $3, realloc $4, aligned $5) frees_per_row=$6 mmaps_per_row=$7 munmaps_per_row=$8"
	echo "$name,$1,$2,$3,$4,$5,$6,$7,$8" >>"$alloc_csv"
}
alloc_case fn_floor "SELECT count(doc - $KEYS) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_lua "SELECT count(talaria.transform_row('trim_lua', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_native "SELECT count(talaria.transform_row('trim_native', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_native_host "SELECT count(talaria.transform_row('trim_native_host', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case copy_floor "TRUNCATE target; COPY target FROM '$work/trimmed_%N%.csv' (FORMAT csv)"
if [ "$have_ingest" = t ]; then
	alloc_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events_%N%.csv' (FORMAT csv)"
	alloc_case copy_talaria_native "TRUNCATE target; COPY raw_native FROM '$work/events_%N%.csv' (FORMAT csv)"
fi

# The Lua states' memory comes from LuaJIT's own allocator (mmap'd arenas,
# no malloc), through talaria's accounting function lua_alloc(): count its
# calls per row with a perf uprobe, where perf can place one.
echo
echo "== Lua allocator calls per row (perf uprobe on lua_alloc in talaria_transform.so; (calls over 20k rows - calls over 10k rows) / 10k)"
so="$(pg_config --pkglibdir)/talaria_transform.so"
if command -v perf >/dev/null &&
	perf probe -q -x "$so" -a 'talaria_bench:lua_alloc=lua_alloc nsize' >/dev/null 2>&1; then
	probe_cleanup() { perf probe -q -d 'talaria_bench:*' >/dev/null 2>&1; }
	trap 'probe_cleanup; cleanup' EXIT
	lua_alloc_case() {
		# name statement-with-%N%
		local name=$1 stmt=$2 o n per
		rm -f "$work"/perf_*.txt
		o=$(session "${stmt//%N%/10000};
\\! (perf stat -x, -o '$work/perf_10000.txt' -e talaria_bench:lua_alloc -e talaria_bench:lua_alloc --filter 'nsize != 0' -p \$BENCH_PID </dev/null >/dev/null 2>&1 & echo \$! > '$work/perf.pid'); sleep 1
${stmt//%N%/10000};
\\! kill -INT \$(cat '$work/perf.pid'); sleep 1
\\! (perf stat -x, -o '$work/perf_20000.txt' -e talaria_bench:lua_alloc -e talaria_bench:lua_alloc --filter 'nsize != 0' -p \$BENCH_PID </dev/null >/dev/null 2>&1 & echo \$! > '$work/perf.pid'); sleep 1
${stmt//%N%/20000};
\\! kill -INT \$(cat '$work/perf.pid'); sleep 1")
		for n in 10000 20000; do
			awk -F, -v n=$n '$3 ~ /lua_alloc/ { c[++k] = $1 } END { print "calls_" n "|" c[1] "|" c[2] }' "$work/perf_$n.txt"
		done >"$work/perf_counts.txt"
		per=$(awk -F'|' '{ t[$1] = $2; a[$1] = $3 } END {
			if (t["calls_20000"] == "" || t["calls_10000"] == "" || t["calls_20000"] + 0 == 0) { print ""; exit }
			ct = (t["calls_20000"] - t["calls_10000"]) / 10000; ca = (a["calls_20000"] - a["calls_10000"]) / 10000
			printf "%.2f %.2f %.2f", ct, ca, ct - ca }' "$work/perf_counts.txt")
		if [ -z "$per" ]; then
			echo "lua_alloc=$name not counted: $(printf '%s\n' "$o" | grep -E 'ERROR|FATAL' | head -2) $(cat "$work"/perf_*.txt 2>/dev/null | grep -v '^#' | head -2)"
			return 1
		fi
		set -- $per
		LUA_ALLOCS[$name]=$2
		echo "lua_alloc=$name calls_per_row=$1 (allocations and reallocations $2, frees $3)"
		echo "$name,lua_alloc,$1,$2,$3" >>"$alloc_csv"
	}
	echo "case,counter,calls_per_row,allocs_per_row,frees_per_row" >>"$alloc_csv"
	lua_alloc_case fn_talaria_lua "SELECT count(talaria.transform_row('trim_lua', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
	[ "$have_ingest" = t ] &&
		lua_alloc_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events_%N%.csv' (FORMAT csv)"
	probe_cleanup
else
	echo "lua_alloc: skipped (perf probe on $so not available here)"
fi

# ---------------------------------------------------------------------
# Targets (DESIGN.md "Performance contract", issue 5)
# ---------------------------------------------------------------------
echo
echo "== targets"
verdict() {
	# label value op limit  (op: le or ge)
	local label=$1 v=$2 op=$3 lim=$4 ok
	if [ -z "$v" ]; then echo "target: $label: not measured"; return; fi
	ok=$(awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN { print ((op == "le" ? v <= l : v >= l) ? "met" : "MISSED") }')
	echo "target: $label: $v ($ok)"
}
ratio_of() { [ -n "${US[$1]:-}" ] && [ -n "${US[$2]:-}" ] && awk -v a="${US[$1]}" -v b="${US[$2]}" 'BEGIN { printf "%.1f", a / b }'; }
verdict "native transform_row <= 1.5x floor" "${RATIO[fn_talaria_native]:-}" le 1.5
verdict "Lua transform_row <= 3x floor" "${RATIO[fn_talaria_lua]:-}" le 3
verdict "Lua transform_row >= 5x faster than pllua (pllua/lua)" "$(ratio_of fn_pllua fn_talaria_lua)" ge 5
echo "report: Lua uncached/cached per row (the cache's worth): $(ratio_of fn_talaria_lua_uncached fn_talaria_lua)x"
verdict "native pipeline <= 1.25x plain COPY" "${RATIO[copy_talaria_native]:-}" le 1.25
verdict "Lua pipeline <= 1.6x plain COPY" "${RATIO[copy_talaria_lua]:-}" le 1.6
verdict "native transform_row memory growth N->3N <= 8192 kB" "${GROWTH[fn_talaria_native]:-}" le 8192
verdict "Lua transform_row memory growth N->3N <= 8192 kB" "${GROWTH[fn_talaria_lua]:-}" le 8192
verdict "native transform_row allocations per row == 0 (<= 0.01)" "${ALLOCS[fn_talaria_native]:-}" le 0.01
verdict "native pipeline allocations per row == 0 (<= 0.01)" "${ALLOCS[copy_talaria_native]:-}" le 0.01
echo "report: Lua allocator calls per row (allocations and reallocations): transform_row ${LUA_ALLOCS[fn_talaria_lua]:-not counted}, pipeline ${LUA_ALLOCS[copy_talaria_lua]:-not counted}"

# ---------------------------------------------------------------------
# Chart
# ---------------------------------------------------------------------
chart_data="$work/chart.dat"
awk -F, 'NR > 1 && $6 != "" {
	x = ($1 == "ingest") ? NR + 1 : NR - 1
	t = "NaN"
	if ($2 == "fn_talaria_native") t = 1.5
	if ($2 == "fn_talaria_lua") t = 3
	if ($2 == "copy_talaria_native") t = 1.25
	if ($2 == "copy_talaria_lua") t = 1.6
	printf "%d\t%s\t%s\t%d\t%s\n", x, $2, $6, ($1 == "ingest"), t
}' "$results_csv" >"$chart_data"
title="talaria_transform, $ROWS rows, $(nproc) x $cpu, PostgreSQL $pgv"
if gnuplot -e "datafile='$chart_data'; outfile='$out/ratios.png'; charttitle='${title//\'/}'" test/bench/ratios.gp; then
	echo
	echo "chart: $out/ratios.png"
else
	echo "chart: gnuplot failed"
fi
echo "csv: $results_csv $memory_csv $alloc_csv"
echo "total: $(( $(now) - t_start )) s, load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
