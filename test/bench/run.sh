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
#   ways of loading (issue 15), on the flat event and on Talaria's real
#                   shape (ts timestamptz, doc jsonb) whose transform removes
#                   doc.key1..key5, each against its own floor: COPY with the
#                   library loaded, a session's first COPY, single-row
#                   INSERTs (pgbench, 2 clients), 100-row INSERT VALUES,
#                   INSERT ... SELECT, a transform doing real work against
#                   PL/pgSQL and SQL, dead_letter on clean and 1%-dirty data
#                   against abort, 60 new days made on demand against
#                   premade partitions; each with its target (PASS/MISS)
#
# Settings: BENCH_ROWS (default 1000000; 200000 for a quick run): rows of
# the function and ingest levels; BENCH_CASE_ROWS (default 100000, at most
# BENCH_ROWS): rows of the issue-15 cases; BENCH_STMTS (default 5000):
# single-row INSERTs per pgbench client per run (a twentieth as many
# 100-row statements); BENCH_RUNS (default 5, at least 3); BENCH_CASES:
# which cases, a comma- or space-separated list of shell patterns matched
# against the case names (each selected case brings its floor; "memory",
# "alloc" and "lua_alloc" select those sections; empty: everything), e.g.
# BENCH_CASES='copy_doc_*,first_*'; BENCH_LIST=1 lists the cases and exits;
# BENCH_PROFILE=1 (also perf profiles of the talaria cases and their floors);
# BENCH_OUT: where the CSVs and the chart go (default test/bench/out).
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
. test/lib.sh

ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-5}
STMTS=${BENCH_STMTS:-5000}
SELECTED=$(printf '%s' "${BENCH_CASES:-}" | tr ',' ' ')
case "$ROWS" in ''|*[!0-9]*) echo "BENCH_ROWS must be a number" >&2; exit 2;; esac
case "$RUNS" in ''|*[!0-9]*) echo "BENCH_RUNS must be a number" >&2; exit 2;; esac
case "$STMTS" in ''|*[!0-9]*) echo "BENCH_STMTS must be a number" >&2; exit 2;; esac
[ "$ROWS" -ge 20000 ] || { echo "BENCH_ROWS must be at least 20000" >&2; exit 2; }
[ "$RUNS" -ge 3 ] || { echo "BENCH_RUNS must be at least 3" >&2; exit 2; }
[ "$STMTS" -ge 200 ] || { echo "BENCH_STMTS must be at least 200" >&2; exit 2; }
CASE_ROWS=${BENCH_CASE_ROWS:-$((ROWS < 100000 ? ROWS : 100000))}
case "$CASE_ROWS" in ''|*[!0-9]*) echo "BENCH_CASE_ROWS must be a number" >&2; exit 2;; esac
[ "$CASE_ROWS" -ge 20000 ] && [ "$CASE_ROWS" -le "$ROWS" ] ||
	{ echo "BENCH_CASE_ROWS must be at least 20000 and at most BENCH_ROWS" >&2; exit 2; }
# talaria Lua uncached costs a fresh LuaJIT state per row: fewer rows; so
# do pllua (40-70 us a row) and plpython3u, whose ratios are 6x to 20x
UNCACHED_ROWS=$((ROWS < 20000 ? ROWS : 20000))
PEER_ROWS=$((ROWS < 200000 ? ROWS : 200000))
KEYS="'{key1,key2,key3,key4,key5}'::text[]"

out=${BENCH_OUT:-$top/test/bench/out}
mkdir -p "$out"

work=$(mktemp -d /tmp/talaria_bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------
# The cases.  A level is a group of cases measured against one floor (its
# first case, unless C_FLOOR says otherwise); C_TARGET is the ratio to the
# floor a case must not exceed (issue 15), printed with PASS or MISS.
# ---------------------------------------------------------------------
results_csv="$out/results.csv"
declare -A US RATIO GROWTH ALLOCS LUA_ALLOCS
declare -A C_LEVEL C_ROWS C_BODY C_CHECK C_NOTE C_MS C_HWM C_CHECKOUT C_ERR
declare -A C_STORED C_TABLE C_FLOOR C_TARGET C_KIND C_PGB C_EXPECT C_HASH C_ACTIVE
declare -A L_HEADER L_FLOOR
CASES=()
LEVELS=()

level() {
	# name header: the cases added next with this level are printed under it
	LEVELS+=("$1")
	L_HEADER[$1]=$2
	L_FLOOR[$1]=""
}

add_case() {
	# level name rows note body(run) check(last run only)
	CASES+=("$2")
	[ -n "${L_FLOOR[$1]}" ] || L_FLOOR[$1]=$2
	C_LEVEL[$2]=$1 C_ROWS[$2]=$3 C_NOTE[$2]=$4 C_BODY[$2]=$5 C_CHECK[$2]=$6
	C_MS[$2]="" C_HWM[$2]=0 C_CHECKOUT[$2]="" C_ERR[$2]=""
	C_FLOOR[$2]=${L_FLOOR[$1]} C_TARGET[$2]="" C_KIND[$2]=session C_EXPECT[$2]=$3 C_HASH[$2]=yes
	C_STORED[$2]="" C_TABLE[$2]=""
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

# The issue-15 cases.  stmt_case: a session that runs $PREP (untimed), the
# warm-up statement $WARM (none: the session's first statement touching
# talaria is the timed one, which the session checks), truncates $stored
# (and $TRUNC), checkpoints, then times one statement (or a few, separated
# by ';') in the server.  PREP, WARM, TRUNC are reset after each call.
PREP="" WARM="" TRUNC=""
stmt_case() {
	# level name rows stored timed note
	local lvl=$1 name=$2 rows=$3 stored=$4 timed=$5 note=$6 body
	body="$PREP"
	if [ -n "$WARM" ]; then
		body="$body
SELECT 'warm', bench_ms(\$q\$$WARM\$q\$);"
	fi
	body="$body
TRUNCATE $stored${TRUNC:+, $TRUNC};
CHECKPOINT;
\\! sync"
	# a session's first COPY: talaria_transform must not be loaded yet
	[ -n "$WARM" ] || body="$body
SELECT 'preloaded', current_setting('talaria.copy_fast_path', true) IS NOT NULL;"
	body="$body
SELECT 'ms', bench_ms(\$q\$$timed\$q\$);
\\! sync"
	add_case "$lvl" "$name" "$rows" "$note" "$body" "
SELECT 'check', count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM $stored t;"
	C_STORED[$name]=$stored
	PREP="" WARM="" TRUNC=""
}

# pgbench_case: pgbench runs $script (one statement) on $clients
# connections, $tx times each, after $pre; the time is the run's wall time
# (pgbench's tps without the connections' start), per row stored.
pgbench_case() {
	# level name clients tx rows_per_stmt script stored pre note
	local rows=$(($3 * $4 * $5))
	add_case "$1" "$2" "$rows" "$9" "" "SELECT 'check', count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM $7 t;"
	C_KIND[$2]=pgbench C_PGB[$2]="$3|$4|$6|$8" C_STORED[$2]=$7
}

selected() {
	# is $1 named by BENCH_CASES (empty: everything)?
	local p r=1
	[ -z "$SELECTED" ] && return 0
	set -f
	for p in $SELECTED; do
		case $1 in $p) r=0; break ;; esac
	done
	set +f
	return $r
}
any_active() {
	# is any active case named by one of the patterns $@?
	local name p
	for name in "${CASES[@]}"; do
		[ -n "${C_ACTIVE[$name]:-}" ] || continue
		for p in "$@"; do
			case $name in $p) return 0 ;; esac
		done
	done
	return 1
}

# ---------------------------------------------------------------------
# Function level
# ---------------------------------------------------------------------
level function "function level: SELECT count(f(doc)) FROM docs, $ROWS rows; ratio to doc - '{key1,...,key5}'::text[]"
fn_case fn_floor "doc - $KEYS" docs "$ROWS" "" "PostgreSQL's jsonb - text[]: the floor"
fn_case fn_sql "bench_trim_sql(doc)" docs "$ROWS" "" "LANGUAGE sql (inlined by the planner)"
fn_case fn_plpgsql "bench_trim_plpgsql(doc)" docs "$ROWS" "" "PL/pgSQL: RETURN doc - keys"
fn_case fn_pllua "bench_trim_pllua(doc)" docs_peer "$PEER_ROWS" "" "Debian's pllua (Lua 5.3): jsonb to table, keys = nil, back; $PEER_ROWS rows"
fn_case fn_plpython3u "bench_trim_plpython(doc)" docs_peer "$PEER_ROWS" "" "plpython3u with jsonb_plpython3u: dict.pop; $PEER_ROWS rows"
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
# Ingest level: COPY of the flat event, the library loaded by the warm-up
# ---------------------------------------------------------------------
level ingest "ingest level: COPY of $ROWS flat events into a daily-partitioned table (7 partitions), library loaded; ratio to plain COPY"
# the first is the floor; its stored rows are the reference for the others
copy_case copy_floor target trimmed target "plain COPY of the stored columns into the target, no trigger: the floor" \
	"CREATE TABLE IF NOT EXISTS target_reference AS SELECT * FROM target;"
copy_case copy_full target_full events target_full "plain COPY of the whole events (key1..key5 too) into a table keeping them, no trigger"
C_HASH[copy_full]=no
copy_case copy_plpgsql raw_plpgsql events target "PL/pgSQL BEFORE INSERT trigger: INSERT INTO target, RETURN NULL"
copy_case copy_pllua raw_pllua events target "pllua BEFORE INSERT trigger: prepared INSERT, return nil; the first $PEER_ROWS events"
C_BODY[copy_pllua]=${C_BODY[copy_pllua]//\/events.csv\'/\/events_peer.csv\'}
C_ROWS[copy_pllua]=$PEER_ROWS C_EXPECT[copy_pllua]=$PEER_ROWS C_HASH[copy_pllua]=no
copy_case copy_talaria_lua raw_lua events target "talaria.create_pipeline with trim_lua"
copy_case copy_talaria_native raw_native events target "talaria.create_pipeline with trim_native"
copy_case copy_talaria_go raw_go events target "talaria.create_pipeline with trim_go (Go)"
C_TARGET[copy_talaria_lua]=1.2 C_TARGET[copy_talaria_native]=1.0

# ---------------------------------------------------------------------
# Issue 15: every way of loading, on the flat event (20 columns; the
# transforms trim_lua, trim_native) and on Talaria's real shape (ts, doc
# jsonb; trim_doc_lua: d = row.doc, d.key1 = nil ... d.key5 = nil;
# trim_doc_native: test/plugins/trim_doc.c), $CASE_ROWS rows a COPY
# ---------------------------------------------------------------------
R=$CASE_ROWS
# shape -> source of the Lua pipeline, of the native one, the target, the
# event and output files (CSV), the warm-up file of the Lua pipeline
declare -A S_LUA=([flat]=raw_lua [doc]=raw_doc_lua) S_NATIVE=([flat]=raw_native [doc]=raw_doc_native)
declare -A S_TARGET=([flat]=target [doc]=target_doc) S_EV=([flat]=ev_flat [doc]=ev_doc) S_OUT=([flat]=out_flat [doc]=out_doc)
declare -A S_WARM=([flat]=events_10000 [doc]=ev_doc_10000) S_WARM_OUT=([flat]=trimmed_10000 [doc]=out_doc_10000)
declare -A S_DESC=([flat]="flat 20-column event" [doc]="(ts, doc jsonb) event")
copy_stmt() { echo "COPY $1 FROM '$work/$2.csv' (FORMAT csv)"; }
# what a user writes without talaria for the real-work transform
bench_real_insert_select() {
	echo "INSERT INTO target_real SELECT ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text) FROM (SELECT ts, doc - $KEYS AS d FROM stage_real) s"
}

level copy_doc "COPY of $R (ts, doc jsonb) events, library loaded (warm-up COPY first); ratio to plain COPY of the output rows"
WARM=$(copy_stmt target_doc out_doc_10000)
stmt_case copy_doc copy_doc_floor "$R" target_doc "$(copy_stmt target_doc out_doc)" "plain COPY of (ts, doc - keys) into the target: the floor"
WARM=$(copy_stmt raw_doc_lua ev_doc_10000)
stmt_case copy_doc copy_doc_lua "$R" target_doc "$(copy_stmt raw_doc_lua ev_doc)" "pipeline, Lua trim_doc_lua"
WARM=$(copy_stmt raw_doc_native ev_doc_10000)
stmt_case copy_doc copy_doc_native "$R" target_doc "$(copy_stmt raw_doc_native ev_doc)" "pipeline, native trim_doc (test/plugins/trim_doc.c)"
C_TARGET[copy_doc_lua]=1.2 C_TARGET[copy_doc_native]=1.0

for s in flat doc; do
	level "first_$s" "a session's first COPY ($R rows, ${S_DESC[$s]}): a new connection, nothing loaded before; ratio to plain COPY of the output, also first in its session"
	stmt_case "first_$s" "first_${s}_floor" "$R" "${S_TARGET[$s]}" "$(copy_stmt "${S_TARGET[$s]}" "${S_OUT[$s]}")" "plain COPY of the output rows, first statement of the session: the floor"
	stmt_case "first_$s" "first_${s}_lua" "$R" "${S_TARGET[$s]}" "$(copy_stmt "${S_LUA[$s]}" "${S_EV[$s]}")" "Lua pipeline, first COPY of the session"
	stmt_case "first_$s" "first_${s}_native" "$R" "${S_TARGET[$s]}" "$(copy_stmt "${S_NATIVE[$s]}" "${S_EV[$s]}")" "native pipeline, first COPY of the session"
	C_TARGET[first_${s}_lua]=1.2 C_TARGET[first_${s}_native]=1.0
done

for s in flat doc; do
	level "insert1_$s" "single-row INSERT statements (${S_DESC[$s]}): pgbench, 2 clients, $STMTS statements each; ratio to the same INSERT into the target"
	pgbench_case "insert1_$s" "insert1_${s}_floor" 2 "$STMTS" 1 "$work/insert1_${s}_floor.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (one output row) into the target: the floor"
	pgbench_case "insert1_$s" "insert1_${s}_lua" 2 "$STMTS" 1 "$work/insert1_${s}_lua.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (one event) into the Lua pipeline's source"
	pgbench_case "insert1_$s" "insert1_${s}_native" 2 "$STMTS" 1 "$work/insert1_${s}_native.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (one event) into the native pipeline's source"
	C_TARGET[insert1_${s}_lua]=1.3 C_TARGET[insert1_${s}_native]=1.3
done

for s in flat doc; do
	level "values_$s" "100-row INSERT ... VALUES statements (${S_DESC[$s]}): pgbench, 2 clients, $((STMTS / 20)) statements each; ratio to the same into the target"
	pgbench_case "values_$s" "values_${s}_floor" 2 $((STMTS / 20)) 100 "$work/values_${s}_floor.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (100 output rows) into the target: the floor"
	pgbench_case "values_$s" "values_${s}_lua" 2 $((STMTS / 20)) 100 "$work/values_${s}_lua.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (100 events) into the Lua pipeline's source"
	pgbench_case "values_$s" "values_${s}_native" 2 $((STMTS / 20)) 100 "$work/values_${s}_native.sql" "${S_TARGET[$s]}" "TRUNCATE ${S_TARGET[$s]}" "INSERT ... VALUES (100 events) into the native pipeline's source"
	C_TARGET[values_${s}_lua]=1.3 C_TARGET[values_${s}_native]=1.3
done

for s in flat doc; do
	level "insel_$s" "INSERT ... SELECT of $R rows (${S_DESC[$s]}) from a table, library loaded; ratio to INSERT ... SELECT of the output rows into the target"
	WARM="INSERT INTO ${S_TARGET[$s]} SELECT * FROM ${S_OUT[$s]} LIMIT 10000"	# (any 10,000)
	stmt_case "insel_$s" "insel_${s}_floor" "$R" "${S_TARGET[$s]}" "INSERT INTO ${S_TARGET[$s]} SELECT * FROM ${S_OUT[$s]}" "INSERT INTO target SELECT * FROM the output rows: the floor"
	WARM="INSERT INTO ${S_LUA[$s]} SELECT * FROM ${S_EV[$s]} LIMIT 10000"
	stmt_case "insel_$s" "insel_${s}_lua" "$R" "${S_TARGET[$s]}" "INSERT INTO ${S_LUA[$s]} SELECT * FROM ${S_EV[$s]}" "INSERT INTO the Lua pipeline's source SELECT * FROM the events"
	WARM="INSERT INTO ${S_NATIVE[$s]} SELECT * FROM ${S_EV[$s]} LIMIT 10000"
	stmt_case "insel_$s" "insel_${s}_native" "$R" "${S_TARGET[$s]}" "INSERT INTO ${S_NATIVE[$s]} SELECT * FROM ${S_EV[$s]}" "INSERT INTO the native pipeline's source SELECT * FROM the events"
	C_TARGET[insel_${s}_lua]=1.5
done

level real "a transform doing real work, COPY of $R (ts, doc jsonb) events: trim doc, json.encode, string ops, 3 computed fields; ratio to plain COPY of the output rows"
WARM=$(copy_stmt target_real out_real_10000)
stmt_case real real_floor "$R" target_real "$(copy_stmt target_real out_real)" "plain COPY of the output rows (ts, doc, city, region, doc_size): the floor"
WARM=$(copy_stmt raw_real_lua ev_doc_10000)
stmt_case real real_lua "$R" target_real "$(copy_stmt raw_real_lua ev_doc)" "talaria Lua pipeline real_lua: json.encode(d), string.upper/lower/sub, 3 computed fields"
WARM=$(copy_stmt raw_real_plpgsql ev_doc_10000)
stmt_case real real_plpgsql "$R" target_real "$(copy_stmt raw_real_plpgsql ev_doc)" "PL/pgSQL BEFORE INSERT trigger doing the same with jsonb functions"
PREP="TRUNCATE stage_real;"
WARM="$(copy_stmt stage_real ev_doc_10000); $(bench_real_insert_select); TRUNCATE stage_real"
stmt_case real real_sql "$R" target_real "$(copy_stmt stage_real ev_doc); $(bench_real_insert_select)" "plain SQL: COPY into an unlogged staging table, then INSERT ... SELECT with jsonb functions (both timed)"
# json.encode spells doc compactly, jsonb::text with spaces: doc_size differs
C_HASH[real_lua]=no

for s in flat doc; do
	level "dl_$s" "on_error => 'dead_letter', COPY of $R rows (${S_DESC[$s]}), Lua pipeline; ratio to on_error => 'abort' on clean data"
	PREP="TRUNCATE talaria.dead_letters;" WARM=$(copy_stmt "${S_LUA[$s]}" "${S_WARM[$s]}")
	stmt_case "dl_$s" "dl_${s}_abort" "$R" "${S_TARGET[$s]}" "$(copy_stmt "${S_LUA[$s]}" "${S_EV[$s]}")" "abort mode, clean data: the floor"
	PREP="TRUNCATE talaria.dead_letters;" WARM=$(copy_stmt "raw_dl_$s" "${S_WARM[$s]}")
	stmt_case "dl_$s" "dl_${s}_clean" "$R" "${S_TARGET[$s]}" "$(copy_stmt "raw_dl_$s" "${S_EV[$s]}")" "dead_letter mode, clean data"
	PREP="TRUNCATE talaria.dead_letters;" WARM=$(copy_stmt "raw_dl_$s" "${S_WARM[$s]}")
	stmt_case "dl_$s" "dl_${s}_dirty" "$R" "${S_TARGET[$s]}" "$(copy_stmt "raw_dl_$s" "${S_EV[$s]}_dirty")" "dead_letter mode, 1% bad rows (time outside the accepted window: dead letters)"
	C_EXPECT[dl_${s}_dirty]=$((R - R / 100)) C_HASH[dl_${s}_dirty]=no
	C_TARGET[dl_${s}_clean]=1.1 C_TARGET[dl_${s}_dirty]=2.0
done

for s in flat doc; do
	level "newdays_$s" "COPY of $R rows (${S_DESC[$s]}) over 60 days into a time table: partitions made on demand, ratio to the same with the 60 partitions premade"
	for e in lua native; do
		src="raw60_${s}_$e"
		if [ $e = lua ]; then WARM=$(copy_stmt "${S_LUA[$s]}" "${S_WARM[$s]}"); else WARM=$(copy_stmt "${S_NATIVE[$s]}" "${S_WARM[$s]}"); fi
		PREP="SELECT bench_drop_partitions('target60_$s'); SELECT bench_make_partitions('target60_$s', '2024-01-01', 60);"
		TRUNC=${S_TARGET[$s]}
		stmt_case "newdays_$s" "newdays_${s}_${e}_premade" "$R" "target60_$s" "$(copy_stmt "$src" "${S_EV[$s]}60")" "$e pipeline, 60 partitions premade: the floor of the next"
		C_FLOOR[newdays_${s}_${e}_premade]=newdays_${s}_${e}_premade
		if [ $e = lua ]; then WARM=$(copy_stmt "${S_LUA[$s]}" "${S_WARM[$s]}"); else WARM=$(copy_stmt "${S_NATIVE[$s]}" "${S_WARM[$s]}"); fi
		PREP="SELECT bench_drop_partitions('target60_$s');"
		TRUNC=${S_TARGET[$s]}
		stmt_case "newdays_$s" "newdays_${s}_${e}_ondemand" "$R" "target60_$s" "$(copy_stmt "$src" "${S_EV[$s]}60")" "$e pipeline, the 60 partitions made on demand"
		C_FLOOR[newdays_${s}_${e}_ondemand]=newdays_${s}_${e}_premade C_TARGET[newdays_${s}_${e}_ondemand]=1.3
	done
done

# the selection: each selected case brings its floor
for name in "${CASES[@]}"; do
	selected "$name" && C_ACTIVE[$name]=1 C_ACTIVE[${C_FLOOR[$name]}]=1
done
if [ "${BENCH_LIST:-0}" = 1 ]; then
	for name in "${CASES[@]}"; do
		printf '%-28s %-14s floor=%-26s target=%-4s %s%s\n' "$name" "${C_LEVEL[$name]}" "${C_FLOOR[$name]}" \
			"${C_TARGET[$name]:--}" "${C_NOTE[$name]}" "${C_ACTIVE[$name]:+ (selected)}"
	done
	echo "sections: memory alloc lua_alloc (with BENCH_PROFILE=1: profile)"
	exit 0
fi
any_active "${CASES[@]}" || selected memory || selected alloc || selected lua_alloc ||
	{ echo "BENCH_CASES=\"${BENCH_CASES:-}\" names no case (BENCH_LIST=1 lists them)" >&2; exit 2; }


TT_EXTRA_PACKAGES="postgresql-15-pllua postgresql-plpython3-15 gnuplot-nox"
tt_install_deps || exit 1
# which code is measured: the commit, and files changed since (the tree is
# shared; see the "tree:" line)
tree=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')
tt_build_install || { echo "build failed" >&2; exit 1; }
# the sample native plugins (test/plugins/trim.c) under $libdir/talaria_test_plugins
make -s install-test-plugins >/dev/null || { echo "could not install the test plugins" >&2; exit 1; }

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
echo "settings: rows=$ROWS case_rows=$CASE_ROWS stmts=$STMTS runs=$RUNS (median) uncached_rows=$UNCACHED_ROWS cases=\"${BENCH_CASES:-all}\" shared_buffers=128MB jit=off parallel=off fsync=off synchronous_commit=off"

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

# only the data the selected cases need
DOCS_N=0 EVENTS_N=0 ALL_N=20000
if any_active 'fn_*' || selected memory || selected alloc || selected lua_alloc || [ "${BENCH_PROFILE:-0}" = 1 ]; then
	DOCS_N=$ROWS
fi
if any_active copy_floor copy_full copy_plpgsql copy_pllua copy_talaria_lua copy_talaria_native copy_talaria_go ||
	selected alloc || selected lua_alloc || [ "${BENCH_PROFILE:-0}" = 1 ]; then
	EVENTS_N=$ROWS
fi
[ "$DOCS_N" = 0 ] && [ "$EVENTS_N" = 0 ] || ALL_N=$ROWS
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

-- a row of any table as the literal tuple (...) of an INSERT ... VALUES
CREATE FUNCTION bench_tuple(r json) RETURNS text LANGUAGE sql AS \$\$
    SELECT '(' || string_agg(quote_nullable(v), ', ' ORDER BY n) || ')'
      FROM json_each_text(r) WITH ORDINALITY AS x(k, v, n)
\$\$;

-- daily partitions made beforehand, and all of a table's partitions dropped
CREATE FUNCTION bench_make_partitions(t regclass, first date, days int) RETURNS void
    LANGUAGE plpgsql AS \$\$
DECLARE d date;
BEGIN
    FOR d IN SELECT first + i FROM generate_series(0, days - 1) AS i LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       (SELECT relname FROM pg_class WHERE oid = t) || '_p' || to_char(d, 'YYYYMMDD'), t, d, d + 1);
    END LOOP;
END
\$\$;
CREATE FUNCTION bench_drop_partitions(t regclass) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = t LOOP
        EXECUTE format('DROP TABLE %s', p);
    END LOOP;
END
\$\$;

-- the events, generated once (the whole workload when a function or
-- ingest level case needs it; else only the warm-ups' first 20,000)
CREATE UNLOGGED TABLE ev_all AS SELECT * FROM bench_events($ALL_N);
CREATE TABLE docs AS SELECT e.id, to_jsonb(e) AS doc FROM ev_all AS e WHERE $DOCS_N > 0;
CREATE TABLE docs_small AS SELECT * FROM docs WHERE id <= 20000;
CREATE TABLE docs_peer AS SELECT * FROM docs WHERE id <= $PEER_ROWS;
VACUUM (FREEZE, ANALYZE) docs, docs_small, docs_peer;

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
COPY (SELECT * FROM ev_all WHERE $EVENTS_N > 0 ORDER BY id) TO '$work/events.csv' (FORMAT csv);
COPY (SELECT * FROM ev_all WHERE id <= 10000 ORDER BY id) TO '$work/events_10000.csv' (FORMAT csv);
COPY (SELECT * FROM ev_all WHERE $EVENTS_N > 0 AND id <= $PEER_ROWS ORDER BY id) TO '$work/events_peer.csv' (FORMAT csv);
COPY (SELECT * FROM ev_all WHERE id <= 20000 ORDER BY id) TO '$work/events_20000.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM ev_all WHERE $EVENTS_N > 0 ORDER BY id) TO '$work/trimmed.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM ev_all WHERE id <= 10000 ORDER BY id) TO '$work/trimmed_10000.csv' (FORMAT csv);
COPY (SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM ev_all WHERE id <= 20000 ORDER BY id) TO '$work/trimmed_20000.csv' (FORMAT csv);

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
SELECT bench_make_partitions('target', '2024-01-01', 7);
SELECT bench_make_partitions('target_full', '2024-01-01', 7);
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

# the talaria pipelines of the flat event
q >/dev/null <<'SQL' || exit 1
SELECT talaria.create_time_table('target', 'ts');
SELECT talaria.create_pipeline('raw_lua', 'target', 'trim_lua');
SELECT talaria.create_pipeline('raw_native', 'target', 'trim_native');
SELECT talaria.create_pipeline('raw_go', 'target', 'trim_go');
SQL

# ---------------------------------------------------------------------
# Issue 15's workload: $CASE_ROWS events, flat and as (ts, doc jsonb), the
# transforms, targets, pipelines and statement files of its cases
# ---------------------------------------------------------------------
if any_active 'copy_doc_*' 'first_*' 'insert1_*' 'values_*' 'insel_*' 'real_*' 'dl_*' 'newdays_*'; then
	R=$CASE_ROWS
	q >/dev/null <<SQL || exit 1
-- the flat events and what the flat pipelines store
CREATE TABLE ev_flat AS SELECT * FROM bench_events($R) ORDER BY id;
CREATE TABLE out_flat AS SELECT id, ts, city, uuid, loc, number, key6, key7, key8, key9, key10, score, price, active, ratio FROM ev_flat;
-- Talaria's real shape: the same events as (ts, doc jsonb)
CREATE TABLE ev_doc AS SELECT e.ts, to_jsonb(e) - 'ts' AS doc FROM ev_flat AS e ORDER BY id;
CREATE TABLE out_doc AS SELECT ts, doc - $KEYS AS doc FROM ev_doc;
VACUUM (FREEZE, ANALYZE) ev_flat, out_flat, ev_doc, out_doc;
-- (in order: a scan of a table larger than a quarter of shared_buffers may
-- start in its middle, where another one left off: synchronize_seqscans)
COPY (SELECT * FROM ev_flat ORDER BY id) TO '$work/ev_flat.csv' (FORMAT csv);
COPY (SELECT * FROM out_flat ORDER BY id) TO '$work/out_flat.csv' (FORMAT csv);
COPY (SELECT * FROM ev_doc ORDER BY (doc->>'id')::bigint) TO '$work/ev_doc.csv' (FORMAT csv);
COPY (SELECT * FROM out_doc ORDER BY (doc->>'id')::bigint) TO '$work/out_doc.csv' (FORMAT csv);
COPY (SELECT * FROM ev_doc WHERE (doc->>'id')::bigint <= 10000) TO '$work/ev_doc_10000.csv' (FORMAT csv);
COPY (SELECT * FROM out_doc WHERE (doc->>'id')::bigint <= 10000) TO '$work/out_doc_10000.csv' (FORMAT csv);
-- 1% bad rows (every 100th): a time outside the accepted window (max_future 1 year)
COPY (SELECT id, CASE WHEN id % 100 = 0 THEN '2099-01-01'::timestamptz ELSE ts END, city, uuid, loc, number,
             key1, key2, key3, key4, key5, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM ev_flat ORDER BY id) TO '$work/ev_flat_dirty.csv' (FORMAT csv);
COPY (SELECT CASE WHEN (doc->>'id')::bigint % 100 = 0 THEN '2099-01-01'::timestamptz ELSE ts END, doc
        FROM ev_doc ORDER BY (doc->>'id')::bigint) TO '$work/ev_doc_dirty.csv' (FORMAT csv);
-- the same events spread over 60 days (2024-01-01 .. 2024-02-29)
COPY (SELECT id, to_timestamp(1704067200 + (id - 1) * 5184000 / $R), city, uuid, loc, number,
             key1, key2, key3, key4, key5, key6, key7, key8, key9, key10, score, price, active, ratio
        FROM ev_flat ORDER BY id) TO '$work/ev_flat60.csv' (FORMAT csv);
COPY (SELECT to_timestamp(1704067200 + ((doc->>'id')::bigint - 1) * 5184000 / $R), doc
        FROM ev_doc ORDER BY (doc->>'id')::bigint) TO '$work/ev_doc60.csv' (FORMAT csv);

-- the (ts, doc) target, its 7 days made beforehand, and its pipelines
CREATE TABLE target_doc (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);
SELECT bench_make_partitions('target_doc', '2024-01-01', 7);
SELECT talaria.create_time_table('target_doc', 'ts');
SELECT talaria.register_lua('trim_doc_lua',
    'function main(row) local d = row.doc d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil return row end');
SELECT talaria.register_native('trim_doc_native', '\$libdir/talaria_test_plugins/trim_doc.so', 'trim_doc');
CREATE TABLE raw_doc_lua (ts timestamptz, doc jsonb);
CREATE TABLE raw_doc_native (LIKE raw_doc_lua);
SELECT talaria.create_pipeline('raw_doc_lua', 'target_doc', 'trim_doc_lua');
SELECT talaria.create_pipeline('raw_doc_native', 'target_doc', 'trim_doc_native');

-- dead letters: the same Lua transforms, on_error => 'dead_letter'
CREATE TABLE raw_dl_flat (LIKE target_full);
CREATE TABLE raw_dl_doc (LIKE raw_doc_lua);
SELECT talaria.create_pipeline('raw_dl_flat', 'target', 'trim_lua', on_error => 'dead_letter');
SELECT talaria.create_pipeline('raw_dl_doc', 'target_doc', 'trim_doc_lua', on_error => 'dead_letter');

-- 60 new days: time tables with no partition in 2024 (premake => 0)
CREATE TABLE target60_flat (LIKE target) PARTITION BY RANGE (ts);
CREATE TABLE target60_doc (LIKE target_doc) PARTITION BY RANGE (ts);
SELECT talaria.create_time_table('target60_flat', 'ts', premake => 0);
SELECT talaria.create_time_table('target60_doc', 'ts', premake => 0);
CREATE TABLE raw60_flat_lua (LIKE target_full);
CREATE TABLE raw60_flat_native (LIKE target_full);
CREATE TABLE raw60_doc_lua (LIKE raw_doc_lua);
CREATE TABLE raw60_doc_native (LIKE raw_doc_lua);
SELECT talaria.create_pipeline('raw60_flat_lua', 'target60_flat', 'trim_lua');
SELECT talaria.create_pipeline('raw60_flat_native', 'target60_flat', 'trim_native');
SELECT talaria.create_pipeline('raw60_doc_lua', 'target60_doc', 'trim_doc_lua');
SELECT talaria.create_pipeline('raw60_doc_native', 'target60_doc', 'trim_doc_native');

-- a transform doing real work, and what a user writes without talaria
CREATE TABLE target_real (ts timestamptz NOT NULL, doc jsonb, city text, region text, doc_size int)
    PARTITION BY RANGE (ts);
SELECT bench_make_partitions('target_real', '2024-01-01', 7);
SELECT talaria.create_time_table('target_real', 'ts');
SELECT talaria.register_lua('real_lua', \$lua\$
local json = require("json")
function main(row)
  local d = row.doc
  d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil
  local s = json.encode(d)
  return { ts = row.ts, doc = d, city = string.upper(d.city),
           region = string.sub(d.uuid, 1, 8) .. "/" .. string.lower(d.city),
           doc_size = #s }
end\$lua\$);
CREATE TABLE raw_real_lua (LIKE raw_doc_lua);
SELECT talaria.create_pipeline('raw_real_lua', 'target_real', 'real_lua');
CREATE TABLE raw_real_plpgsql (LIKE raw_doc_lua);
CREATE FUNCTION bench_real_plpgsql() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE d jsonb := NEW.doc - $KEYS;
BEGIN
    INSERT INTO target_real VALUES (NEW.ts, d, upper(d->>'city'),
        substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text));
    RETURN NULL;
END
\$\$;
CREATE TRIGGER bench_real BEFORE INSERT ON raw_real_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_real_plpgsql();
CREATE UNLOGGED TABLE stage_real (LIKE raw_doc_lua);
COPY (SELECT ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text)
        FROM (SELECT ts, doc - $KEYS AS d FROM ev_doc ORDER BY (doc->>'id')::bigint) s) TO '$work/out_real.csv' (FORMAT csv);
COPY (SELECT ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text)
        FROM (SELECT ts, doc - $KEYS AS d FROM ev_doc WHERE (doc->>'id')::bigint <= 10000) s) TO '$work/out_real_10000.csv' (FORMAT csv);
SQL
	# pgbench scripts: one statement each, the first event (output row), or
	# the first 100
	for s in flat doc; do
		for e in floor lua native; do
			case $e in
				floor) tbl=${S_TARGET[$s]} src=${S_OUT[$s]} ;;
				lua) tbl=${S_LUA[$s]} src=${S_EV[$s]} ;;
				native) tbl=${S_NATIVE[$s]} src=${S_EV[$s]} ;;
			esac
			if [ $s = flat ]; then id=id; else id="(doc->>'id')::bigint"; fi
			q -c "SELECT 'INSERT INTO $tbl VALUES ' || bench_tuple(row_to_json(e)) || ';' FROM (SELECT * FROM $src WHERE $id = 1) e" \
				>"$work/insert1_${s}_$e.sql" || exit 1
			q -c "SELECT 'INSERT INTO $tbl VALUES ' || string_agg(bench_tuple(row_to_json(e)), ', ') || ';' FROM (SELECT * FROM $src WHERE $id <= 100) e" \
				>"$work/values_${s}_$e.sql" || exit 1
		done
	done
fi

q -c "CHECKPOINT" || exit 1
sync
data="data:"
[ "$DOCS_N" = 0 ] || data="$data $DOCS_N docs, docs table $(q -c "SELECT pg_size_pretty(pg_total_relation_size('docs'))"), avg doc $(q -c "SELECT round(avg(pg_column_size(doc))) FROM docs_small") bytes;"
[ "$EVENTS_N" = 0 ] || data="$data $EVENTS_N events, events.csv $(du -h "$work/events.csv" | cut -f1);"
[ -z "${R:-}" ] || data="$data $R issue-15 events, ev_flat.csv $(du -h "$work/ev_flat.csv" | cut -f1), ev_doc.csv $(du -h "$work/ev_doc.csv" | cut -f1) (avg doc $(q -c "SELECT round(avg(pg_column_size(doc))) FROM ev_doc") bytes);"
echo "$data ($(( $(now) - t_start )) s)"

# ---------------------------------------------------------------------
# Each run of a case is a psql session of its own (a fresh backend, so its
# VmHWM is the case's own): a warm-up on a few rows, one timed run; or a
# pgbench run (new connections).  The runs go round-robin over a level's
# cases (run 1 of every case, then run 2, ...) so that a slow spell of the
# machine falls on all of them alike; a case's figure is the median of its
# runs, its peak RSS the largest VmHWM.
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

pgbench_run() {
	# $1: case; prints "ms|<wall time of the run>" or the errors
	local clients tx script pre o tps
	IFS='|' read -r clients tx script pre <<<"${C_PGB[$1]}"
	q -c "$pre" -c "CHECKPOINT" 2>&1 | grep -E 'ERROR|FATAL'
	sync
	o=$(pgbench -n -c "$clients" -j "$clients" -t "$tx" -f "$script" 2>&1)
	tps=$(printf '%s\n' "$o" | awk '/^tps = .*without initial connection time/ { print $3 }')
	printf '%s\n' "$o" | grep -E 'ERROR|FATAL|aborted' | head -3
	[ -n "$tps" ] && awk -v t="$tps" -v n=$((clients * tx)) 'BEGIN { if (t > 0) printf "ms|%.3f\n", n / t * 1000 }'
}

echo "level,case,rows,runs,us_per_row,ratio,spread_pct,peak_rss_kb,check,note,runs_ms,floor,target,verdict" >"$results_csv"

run_cases() {
	# runs every active case of a level RUNS times, round-robin
	local level=$1 r name o ms hwm body
	for r in $(seq "$RUNS"); do
		for name in "${CASES[@]}"; do
			[ "${C_LEVEL[$name]}" = "$level" ] && [ -n "${C_ACTIVE[$name]:-}" ] && [ -z "${C_ERR[$name]}" ] || continue
			if [ "${C_KIND[$name]}" = pgbench ]; then
				o=$(pgbench_run "$name")
				[ "$r" = "$RUNS" ] && o="$o
$(q -c "${C_CHECK[$name]}" 2>&1)"
			else
				body=${C_BODY[$name]}
				[ "$r" = "$RUNS" ] && body="$body${C_CHECK[$name]}"
				o=$(session "$body")
			fi
			ms=$(printf '%s\n' "$o" | awk -F'|' '$1 == "ms" { print $2 }')
			hwm=$(printf '%s\n' "$o" | awk -F'|' '$1 == "hwm" { print $2 }')
			C_ERR[$name]=$(printf '%s\n' "$o" | grep -E 'ERROR|FATAL|server closed|aborted' | head -3)
			if printf '%s\n' "$o" | grep -q '^preloaded|t$'; then C_ERR[$name]="talaria_transform was loaded before the first COPY"; fi
			if [ -z "${C_ERR[$name]}" ] && [ -z "$ms" ]; then C_ERR[$name]="no timing"; fi
			C_MS[$name]="${C_MS[$name]} $ms"
			[ -n "$hwm" ] && [ "$hwm" -gt "${C_HWM[$name]}" ] && C_HWM[$name]=$hwm
			[ "$r" = "$RUNS" ] &&
				C_CHECKOUT[$name]=$(printf '%s\n' "$o" | awk -F'|' '$1 == "check" { print $2 (NF > 2 ? "|" $3 : "") }')
		done
	done
}

verdict_of() {
	# ratio target -> PASS or MISS
	awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l ? "PASS" : "MISS") }'
}

report_cases() {
	# prints and records the active cases of one level against their floors
	local level=$1 name floor us ratio check note line rows full_us="" spread v
	if [ "$level" = ingest ] && [ -n "${C_ACTIVE[copy_full]:-}" ] && [ -z "${C_ERR[copy_full]}" ]; then
		full_us=$(printf '%s\n' ${C_MS[copy_full]} | median | awk -v n="$ROWS" '{ printf "%.3f", $1 * 1000 / n }')
	fi
	for name in "${CASES[@]}"; do
		[ "${C_LEVEL[$name]}" = "$level" ] && [ -n "${C_ACTIVE[$name]:-}" ] || continue
		rows=${C_ROWS[$name]} note=${C_NOTE[$name]} check=ok floor=${C_FLOOR[$name]}
		if [ -n "${C_ERR[$name]}" ]; then
			echo "case=$name failed: ${C_ERR[$name]}"
			echo "$level,$name,$rows,$RUNS,,,,,failed,\"$(printf '%s' "${C_ERR[$name]}" | tr '\n"' " '")\",,$floor,${C_TARGET[$name]}," >>"$results_csv"
			continue
		fi
		us=$(printf '%s\n' ${C_MS[$name]} | median | awk -v n="$rows" '{ printf "%.3f", $1 * 1000 / n }')
		US[$name]=$us
		# (slowest run - fastest run) / median
		spread=$(printf '%s\n' ${C_MS[$name]} | sort -g | awk -v m="$us" -v n="$rows" '
			NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi - lo) * 1000 / n / m * 100 }')
		ratio=""
		[ -n "${US[$floor]:-}" ] && ratio=$(awk -v a="$us" -v b="${US[$floor]}" 'BEGIN { printf "%.2f", a / b }')
		if [ "$level" = function ]; then
			[ "${C_CHECKOUT[$name]}" = 0 ] || check="differs_in_${C_CHECKOUT[$name]}_of_1000_rows"
		elif [ "${C_CHECKOUT[$name]%%|*}" != "${C_EXPECT[$name]}" ]; then
			check="stored_${C_CHECKOUT[$name]%%|*}_rows_not_${C_EXPECT[$name]}"
		elif [ "$name" != "$floor" ] && [ "${C_HASH[$name]}" = yes ] && [ "${C_STORED[$name]}" = "${C_STORED[$floor]}" ] &&
			[ "${C_HASH[$floor]}" = yes ] && [ "${C_CHECKOUT[$name]}" != "${C_CHECKOUT[$floor]}" ]; then
			check=differs
		fi
		line="case=$name rows=$rows us_per_row=$us ratio=${ratio:-?}"
		[ "$name" != "$floor" ] && [ "$floor" != "${L_FLOOR[$level]}" ] && line="$line floor=$floor"
		# ingest: also the ratio to plain COPY of the same (whole) events
		[ "$level" = ingest ] && [ -n "$full_us" ] &&
			line="$line vs_copy_full=$(awk -v a="$us" -v b="$full_us" 'BEGIN { printf "%.2f", a / b }')"
		v=""
		if [ -n "${C_TARGET[$name]}" ] && [ -n "$ratio" ]; then
			v=$(verdict_of "$ratio" "${C_TARGET[$name]}")
			line="$line target<=${C_TARGET[$name]} $v"
		fi
		line="$line spread=$spread%"
		[ "${C_KIND[$name]}" = pgbench ] || line="$line peak_rss_mb=$(awk -v k="${C_HWM[$name]}" 'BEGIN { printf "%.1f", k / 1024 }')"
		[ "$check" = ok ] || line="$line check=$check"
		[ -n "$note" ] && line="$line   # $note"
		echo "$line"
		echo "$level,$name,$rows,$RUNS,$us,$ratio,$spread,${C_HWM[$name]},$check,\"$note\",$(echo ${C_MS[$name]} | tr ' ' ';'),$floor,${C_TARGET[$name]},$v" >>"$results_csv"
		RATIO[$name]=$ratio
	done
}

# function level first, then ingest level: a COPY leaves the kernel
# writing back its pages for a while (each COPY run is followed by sync)
echo
echo "== running: $RUNS runs of each case, round-robin within each level (function level, ingest level, then issue 15's)"
for lvl in "${LEVELS[@]}"; do
	run_cases "$lvl"
	sync
done

for lvl in "${LEVELS[@]}"; do
	any_active $(for name in "${CASES[@]}"; do [ "${C_LEVEL[$name]}" = "$lvl" ] && echo "$name"; done) || continue
	echo
	echo "== ${L_HEADER[$lvl]}"
	report_cases "$lvl"
	# fn_sql is inlined into the very plan of fn_floor: how far apart the
	# two come out is the noise of this run
	[ "$lvl" = function ] && [ -n "${US[fn_sql]:-}" ] && [ -n "${US[fn_floor]:-}" ] &&
		echo "noise: fn_sql runs the same plan as fn_floor (the SQL function is inlined): they differ by $(awk -v a="${US[fn_sql]}" -v b="${US[fn_floor]}" 'BEGIN { d = (a - b) / b * 100; printf "%+.0f%%", d }')"
	[ "$lvl" = ingest ] || continue
	# The rows each ingest case stored in its last run were checked against
	# plain COPY's (count, and a hash of the rows as text); show differences.
	for name in "${CASES[@]}"; do
		[ "${C_LEVEL[$name]}" = ingest ] && [ -n "${C_ACTIVE[$name]:-}" ] && [ "${C_STORED[$name]}" = target ] && [ "$name" != copy_floor ] || continue
		[ -z "${C_ERR[$name]}" ] && [ "${C_HASH[$name]}" = yes ] && [ "${C_CHECKOUT[$name]}" != "${C_CHECKOUT[copy_floor]}" ] || continue
		q -c "TRUNCATE target" -c "COPY ${C_TABLE[$name]} FROM '$work/events.csv' (FORMAT csv)" >/dev/null
		echo "  $name stored $(q -c "SELECT count(*) FROM target t JOIN target_reference r USING (id) WHERE t::text <> r::text") of $ROWS rows otherwise than plain COPY, e.g.:"
		q -F $'\n' -c "SELECT '  stored:     ' || t::text, '  plain COPY: ' || r::text
		                 FROM target t JOIN target_reference r USING (id) WHERE t::text <> r::text ORDER BY id LIMIT 2" |
			sed 's/^/  /'
	done
done
# ---------------------------------------------------------------------
# Memory: VmHWM after N rows, then after 3N rows, in one session
# ---------------------------------------------------------------------
memory_csv="$out/memory.csv"
alloc_csv="$out/alloc.csv"
if selected memory; then
echo
echo "== memory: peak RSS (VmHWM) of one backend after $ROWS rows, then after a $((3 * ROWS))-row statement"
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
fi

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
		profile_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events.csv' (FORMAT csv)"
		profile_case copy_talaria_native "TRUNCATE target; COPY raw_native FROM '$work/events.csv' (FORMAT csv)"
	else
		echo "profiles: skipped (no perf)"
	fi
fi

# ---------------------------------------------------------------------
# Allocations per row: the server restarted with the LD_PRELOAD counter;
# per row = ((calls over 20k rows) - (calls over 10k rows)) / 10k, in one
# session after a 10k-row warm-up
# ---------------------------------------------------------------------
if selected alloc || selected lua_alloc; then
echo
echo "== allocations per row (LD_PRELOAD counter: (calls over 20k rows - calls over 10k rows) / 10k)"
runuser -u postgres -- env LD_PRELOAD="$work/malloc_count.so" \
	pg_ctl -D "$TT_DATA" -l "$TT_DATA/server.log" -w restart >/dev/null || { echo "restart with LD_PRELOAD failed"; exit 1; }
q -c "CREATE FUNCTION malloc_counts() RETURNS bigint[] AS '$work/malloc_count.so', 'malloc_counts' LANGUAGE c" || exit 1
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
selected alloc && {
alloc_case fn_floor "SELECT count(doc - $KEYS) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_lua "SELECT count(talaria.transform_row('trim_lua', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_native "SELECT count(talaria.transform_row('trim_native', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case fn_talaria_native_host "SELECT count(talaria.transform_row('trim_native_host', doc)) FROM (SELECT doc FROM docs_small LIMIT %N%) s"
alloc_case copy_floor "TRUNCATE target; COPY target FROM '$work/trimmed_%N%.csv' (FORMAT csv)"
alloc_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events_%N%.csv' (FORMAT csv)"
alloc_case copy_talaria_native "TRUNCATE target; COPY raw_native FROM '$work/events_%N%.csv' (FORMAT csv)"
}

# The Lua states' memory comes from LuaJIT's own allocator (mmap'd arenas,
# no malloc), through talaria's accounting function lua_alloc(): count its
# calls per row with a perf uprobe, where perf can place one.
echo
echo "== Lua allocator calls per row (perf uprobe on lua_alloc in talaria_transform.so; (calls over 20k rows - calls over 10k rows) / 10k)"
so="$(pg_config --pkglibdir)/talaria_transform.so"
if ! selected lua_alloc; then
	:
elif command -v perf >/dev/null &&
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
			if (t["calls_20000"] == "" || t["calls_10000"] == "") { print ""; exit }
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
	lua_alloc_case copy_talaria_lua "TRUNCATE target; COPY raw_lua FROM '$work/events_%N%.csv' (FORMAT csv)"
	probe_cleanup
else
	echo "lua_alloc: skipped (perf probe on $so not available here)"
fi
fi

# ---------------------------------------------------------------------
# Targets (DESIGN.md "Performance contract", issue 5)
# ---------------------------------------------------------------------
echo
echo "== targets"
verdict() {
	# label value op limit  (op: le or ge)
	local label=$1 v=$2 op=$3 lim=$4 ok
	if [ -z "$v" ]; then [ -n "$SELECTED" ] || echo "target: $label: not measured"; return; fi
	ok=$(awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN { print ((op == "le" ? v <= l : v >= l) ? "met" : "MISSED") }')
	echo "target: $label: $v ($ok)"
}
ratio_of() { [ -n "${US[$1]:-}" ] && [ -n "${US[$2]:-}" ] && awk -v a="${US[$1]}" -v b="${US[$2]}" 'BEGIN { printf "%.1f", a / b }'; }
verdict "native transform_row <= 1.5x floor" "${RATIO[fn_talaria_native]:-}" le 1.5
verdict "Lua transform_row <= 3x floor" "${RATIO[fn_talaria_lua]:-}" le 3
verdict "Lua transform_row >= 5x faster than pllua (pllua/lua)" "$(ratio_of fn_pllua fn_talaria_lua)" ge 5
[ -n "${US[fn_talaria_lua_uncached]:-}" ] && [ -n "${US[fn_talaria_lua]:-}" ] &&
	echo "report: Lua uncached/cached per row (the cache's worth): $(ratio_of fn_talaria_lua_uncached fn_talaria_lua)x"
verdict "native pipeline <= 1.25x plain COPY" "${RATIO[copy_talaria_native]:-}" le 1.25
verdict "Lua pipeline <= 1.6x plain COPY" "${RATIO[copy_talaria_lua]:-}" le 1.6
verdict "native transform_row memory growth N->3N <= 8192 kB" "${GROWTH[fn_talaria_native]:-}" le 8192
verdict "Lua transform_row memory growth N->3N <= 8192 kB" "${GROWTH[fn_talaria_lua]:-}" le 8192
verdict "native transform_row allocations per row == 0 (<= 0.01)" "${ALLOCS[fn_talaria_native]:-}" le 0.01
verdict "native pipeline allocations per row == 0 (<= 0.01)" "${ALLOCS[copy_talaria_native]:-}" le 0.01
selected lua_alloc && echo "report: Lua allocator calls per row (allocations and reallocations): transform_row ${LUA_ALLOCS[fn_talaria_lua]:-not counted}, pipeline ${LUA_ALLOCS[copy_talaria_lua]:-not counted}"

# issue 15's targets: each case's ratio to its floor (wall time, median)
echo
echo "== targets (issue 15): ratio to the floor, wall time"
npass=0 nmiss=0
for name in "${CASES[@]}"; do
	[ -n "${C_TARGET[$name]}" ] && [ -n "${C_ACTIVE[$name]:-}" ] || continue
	if [ -z "${RATIO[$name]:-}" ]; then
		echo "target15: $name <= ${C_TARGET[$name]}x ${C_FLOOR[$name]}: not measured${C_ERR[$name]:+ (failed)}"
		nmiss=$((nmiss + 1))
		continue
	fi
	v=$(verdict_of "${RATIO[$name]}" "${C_TARGET[$name]}")
	[ "$v" = PASS ] && npass=$((npass + 1)) || nmiss=$((nmiss + 1))
	printf 'target15: %-28s %5s <= %-4s x %-26s %s\n' "$name" "${RATIO[$name]}" "${C_TARGET[$name]}" "${C_FLOOR[$name]}" "$v"
done
echo "targets15: $npass PASS, $nmiss MISS"
# the peers of the real-work transform, against talaria's
for c in real_plpgsql real_sql; do
	[ -n "${US[$c]:-}" ] && [ -n "${US[real_lua]:-}" ] &&
		echo "report: $c / real_lua per row: $(ratio_of "$c" real_lua)x"
done

# ---------------------------------------------------------------------
# Chart
# ---------------------------------------------------------------------
chart_data="$work/chart.dat"
awk -F, 'NR > 1 && $6 != "" && ($1 == "function" || $1 == "ingest") {
	x = ($1 == "ingest") ? NR + 1 : NR - 1
	t = "NaN"
	if ($2 == "fn_talaria_native") t = 1.5
	if ($2 == "fn_talaria_lua") t = 3
	if ($2 == "copy_talaria_native") t = 1.25
	if ($2 == "copy_talaria_lua") t = 1.6
	printf "%d\t%s\t%s\t%d\t%s\n", x, $2, $6, ($1 == "ingest"), t
}' "$results_csv" >"$chart_data"
title="talaria_transform, $ROWS rows, $(nproc) x $cpu, PostgreSQL $pgv"
if [ ! -s "$chart_data" ]; then
	echo
	echo "chart: none (no function or ingest level case ran)"
elif gnuplot -e "datafile='$chart_data'; outfile='$out/ratios.png'; charttitle='${title//\'/}'" test/bench/ratios.gp; then
	echo
	echo "chart: $out/ratios.png"
else
	echo "chart: gnuplot failed"
fi
echo "csv: $results_csv $memory_csv $alloc_csv"
echo "total: $(( $(now) - t_start )) s, load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
