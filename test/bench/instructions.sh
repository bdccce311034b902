#!/usr/bin/env bash
# Instructions per row, counted by callgrind: noise-free figures for the
# cases of `make bench` whose wall times this shared machine blurs.
#
#   bash test/bench/instructions.sh          (after make install and
#                                             make install-test-plugins)
#
# Runs PostgreSQL in single-user mode under valgrind --tool=callgrind on a
# throwaway data directory, with the bench's event workload (its first
# 20,000 events, all in one day's partition), flat and as (ts, doc jsonb).
# Each case runs twice, over 2N and over N rows (N = 10,000 for the cases
# of earlier releases, 5,000 for COPY and INSERT ... SELECT in issue 15's;
# 500 single-row INSERT statements; 10 statements of 100 rows), after a
# small warm-up; only the instructions inside the measured statements are
# counted (ProcessUtility for the COPYs, ExecutorRun for the SELECTs; for
# INSERT statements and the real-work group the whole process, PostgresMain:
# parse, plan, execute and commit, the process's start and warm-up being the
# same in both runs), and per row = (count over 2N - count over N) / N,
# which cancels every one-time cost.  Prints
#   instructions case=<name> per_row=<n> ratio=<n to its floor> [target<=x PASS|MISS]
# then, for a few talaria cases, where their instructions go by function
# (callgrind_annotate --inclusive=yes, per row) and what the checks added on
# the hot paths cost: the accepted-window check, the statistics' clock
# reads, the Lua interrupt checks.
# Instructions are not time (cache misses, I/O and the kernel are left out),
# but they move only when the code does.
#
# Settings: BENCH_CASES (shell patterns, comma- or space-separated, as for
# make bench; each case brings its floor; "breakdown" selects the
# by-function breakdown), BENCH_LIST=1 lists the cases, KEEP=1 keeps the
# work directory (callgrind files of the breakdown cases in it), TT_BINDIR
# (default: $PG_CONFIG --bindir).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bindir=${TT_BINDIR:-$("${PG_CONFIG:-pg_config}" --bindir)}
SELECTED=$(printf '%s' "${BENCH_CASES:-}" | tr ',' ' ')
keys="'{key1,key2,key3,key4,key5}'::text[]"

# ---------------------------------------------------------------------
# The cases: name floor target toggle warm-up measured (@N@: the row or
# statement count)
# ---------------------------------------------------------------------
declare -A C_FLOOR C_TARGET C_TOGGLE C_WARM C_STMT C_N C_ACTIVE C_KEEP C_NOTE
CASES=()
W='$W'	# the work directory, substituted when the case runs
add() {
	# name floor target toggle n note warm measured
	CASES+=("$1")
	C_FLOOR[$1]=$2 C_TARGET[$1]=$3 C_TOGGLE[$1]=$4 C_N[$1]=$5 C_NOTE[$1]=$6 C_WARM[$1]=$7 C_STMT[$1]=$8 C_KEEP[$1]=""
}
copy() { echo "COPY $1 FROM '$W/$2_@N@.csv' (FORMAT csv);"; }
copy_warm() { echo "COPY $1 FROM '$W/$2_100.csv' (FORMAT csv);"; }

# function level and the flat COPY (the figures of earlier releases)
add fn_floor fn_floor "" ExecutorRun 10000 "doc - keys" \
	"SELECT count(doc - $keys) FROM docs_100;" "SELECT count(doc - $keys) FROM docs_@N@;"
add fn_talaria_lua fn_floor "" ExecutorRun 10000 "transform_row, Lua trim" \
	"SELECT count(talaria.transform_row('trim_lua', doc)) FROM docs_100;" "SELECT count(talaria.transform_row('trim_lua', doc)) FROM docs_@N@;"
add fn_talaria_native fn_floor "" ExecutorRun 10000 "transform_row, native trim" \
	"SELECT count(talaria.transform_row('trim_native', doc)) FROM docs_100;" "SELECT count(talaria.transform_row('trim_native', doc)) FROM docs_@N@;"
# Go: callgrind fails an assertion on the runtime's preemption signals
# (GODEBUG turns them off; the trim runs on the backend's thread either
# way) and loses the toggle function when a call switches to a goroutine's
# stack, so the Go cases count the whole process ("-"): the difference of
# two runs still cancels the one-time costs.  They leave out the system
# calls Go 1.19 makes to enter Go on every call (see the wall times).
add fn_talaria_go fn_floor "" - 10000 "transform_row, Go trim (test/plugins/go/trim)" \
	"SELECT count(talaria.transform_row('trim_go', doc)) FROM docs_100;" "SELECT count(talaria.transform_row('trim_go', doc)) FROM docs_@N@;"
add fn_talaria_rust fn_floor "" ExecutorRun 10000 "transform_row, Rust trim (test/plugins/rust/trim)" \
	"SELECT count(talaria.transform_row('trim_rust', doc)) FROM docs_100;" "SELECT count(talaria.transform_row('trim_rust', doc)) FROM docs_@N@;"
add copy_floor copy_floor "" ProcessUtility 10000 "plain COPY of the output rows (flat)" \
	"$(copy_warm target trimmed)" "$(copy target trimmed)"
add copy_talaria_native copy_floor 1.0 ProcessUtility 10000 "COPY, native pipeline (flat), library loaded" \
	"$(copy_warm raw_native events)" "$(copy raw_native events)"
add copy_talaria_lua copy_floor 1.2 ProcessUtility 10000 "COPY, Lua pipeline (flat), library loaded" \
	"$(copy_warm raw_lua events)" "$(copy raw_lua events)"
add copy_talaria_go copy_floor "" - 10000 "COPY, Go pipeline (flat), library loaded" \
	"$(copy_warm raw_go events)" "$(copy raw_go events)"

# issue 15: the (ts, doc jsonb) event
add copy_doc_floor copy_doc_floor "" ProcessUtility 5000 "plain COPY of the output rows (doc)" \
	"$(copy_warm target_doc outdoc)" "$(copy target_doc outdoc)"
add copy_doc_native copy_doc_floor 1.0 ProcessUtility 5000 "COPY, native pipeline (doc), library loaded" \
	"$(copy_warm raw_doc_native evdoc)" "$(copy raw_doc_native evdoc)"
add copy_doc_lua copy_doc_floor 1.2 ProcessUtility 5000 "COPY, Lua pipeline (doc), library loaded" \
	"$(copy_warm raw_doc_lua evdoc)" "$(copy raw_doc_lua evdoc)"

# a session's first COPY: nothing loaded before (the warm-up is SELECT 1)
for s in flat doc; do
	if [ $s = flat ]; then tgt=target out=trimmed ev=events lua=raw_lua nat=raw_native; else tgt=target_doc out=outdoc ev=evdoc lua=raw_doc_lua nat=raw_doc_native; fi
	add first_${s}_floor first_${s}_floor "" ProcessUtility 5000 "plain COPY of the output rows ($s), first statement" \
		"SELECT 1;" "$(copy $tgt $out)"
	add first_${s}_native first_${s}_floor 1.0 ProcessUtility 5000 "first COPY of the process, native pipeline ($s)" \
		"SELECT 1;" "$(copy $nat $ev)"
	add first_${s}_lua first_${s}_floor 1.2 ProcessUtility 5000 "first COPY of the process, Lua pipeline ($s)" \
		"SELECT 1;" "$(copy $lua $ev)"
done

# statements: single-row INSERTs (N statements), 100-row VALUES (N/100
# statements), INSERT ... SELECT; files made by the setup
for s in flat doc; do
	for e in floor native lua; do
		t=""
		[ $e = floor ] || t=1.3
		add insert1_${s}_$e insert1_${s}_floor "$t" PostgresMain 500 "single-row INSERT statements ($s, $e)" \
			"@$W/ins1_${s}_${e}_10.sql" "@$W/ins1_${s}_${e}_@N@.sql"
	done
	for e in floor native lua; do
		t=""
		[ $e = floor ] || t=1.3
		add values_${s}_$e values_${s}_floor "$t" PostgresMain 1000 "100-row INSERT ... VALUES statements ($s, $e)" \
			"@$W/vals_${s}_${e}_100.sql" "@$W/vals_${s}_${e}_@N@.sql"
	done
	if [ $s = flat ]; then tgt=target out=outflat ev=evflat lua=raw_lua nat=raw_native; else tgt=target_doc out=outdoc ev=evdoc lua=raw_doc_lua nat=raw_doc_native; fi
	add insel_${s}_floor insel_${s}_floor "" PostgresMain 5000 "INSERT ... SELECT of the output rows ($s)" \
		"INSERT INTO $tgt SELECT * FROM ${out}_100;" "INSERT INTO $tgt SELECT * FROM ${out}_@N@;"
	add insel_${s}_native insel_${s}_floor "" PostgresMain 5000 "INSERT ... SELECT into the native pipeline ($s)" \
		"INSERT INTO $nat SELECT * FROM ${ev}_100;" "INSERT INTO $nat SELECT * FROM ${ev}_@N@;"
	add insel_${s}_lua insel_${s}_floor 1.5 PostgresMain 5000 "INSERT ... SELECT into the Lua pipeline ($s)" \
		"INSERT INTO $lua SELECT * FROM ${ev}_100;" "INSERT INTO $lua SELECT * FROM ${ev}_@N@;"
done

# a transform doing real work, against PL/pgSQL and plain SQL
real_sql="INSERT INTO target_real SELECT ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text) FROM (SELECT ts, doc - $keys AS d FROM stage_real) s;"
add real_floor real_floor "" PostgresMain 5000 "plain COPY of the real-work output rows" \
	"$(copy_warm target_real outreal)" "$(copy target_real outreal)"
add real_lua real_floor "" PostgresMain 5000 "COPY, Lua pipeline real_lua (json.encode, string ops, 3 computed fields)" \
	"$(copy_warm raw_real_lua evdoc)" "$(copy raw_real_lua evdoc)"
add real_plpgsql real_floor "" PostgresMain 5000 "COPY, PL/pgSQL trigger doing the same" \
	"$(copy_warm raw_real_plpgsql evdoc)" "$(copy raw_real_plpgsql evdoc)"
add real_sql real_floor "" PostgresMain 5000 "COPY into a staging table, then INSERT ... SELECT with jsonb functions" \
	"TRUNCATE stage_real;" "$(copy stage_real evdoc)
$real_sql
TRUNCATE stage_real;"

# dead letters: abort on clean data, dead_letter on clean and 1%-dirty data
for s in flat doc; do
	if [ $s = flat ]; then lua=raw_lua ev=events; else lua=raw_doc_lua ev=evdoc; fi
	add dl_${s}_abort dl_${s}_abort "" ProcessUtility 5000 "COPY, Lua pipeline ($s), abort, clean data" \
		"$(copy_warm $lua $ev)" "$(copy $lua $ev)"
	add dl_${s}_clean dl_${s}_abort 1.1 ProcessUtility 5000 "the same, dead_letter, clean data" \
		"$(copy_warm raw_dl_$s $ev)" "$(copy raw_dl_$s $ev)"
	add dl_${s}_dirty dl_${s}_abort 2.0 ProcessUtility 5000 "the same, dead_letter, 1% of rows outside the accepted window" \
		"$(copy_warm raw_dl_$s $ev)" "$(copy raw_dl_$s ${ev}_dirty)"
done

# item 7: the accepted window (max_future '1 year', the bench's target) against
# none (max_past and max_future NULL: the hard limits only)
add window_off_native copy_talaria_native "" ProcessUtility 10000 "COPY, native pipeline (flat) into a time table with no accepted window" \
	"$(copy_warm raw_native_nowin events)" "$(copy raw_native_nowin events)"

# the cases broken down by function
C_KEEP[copy_talaria_lua]=1 C_KEEP[copy_talaria_native]=1 C_KEEP[copy_doc_lua]=1 C_KEEP[copy_doc_native]=1
C_KEEP[real_lua]=1 C_KEEP[insert1_doc_lua]=1 C_KEEP[first_doc_lua]=1 C_KEEP[window_off_native]=1
C_KEEP[insert1_flat_native]=1 C_KEEP[values_flat_native]=1 C_KEEP[values_doc_lua]=1 C_KEEP[insel_flat_lua]=1 C_KEEP[insel_doc_lua]=1

selected() {
	local p r=1
	[ -z "$SELECTED" ] && return 0
	set -f
	for p in $SELECTED; do
		case $1 in $p) r=0; break ;; esac
	done
	set +f
	return $r
}
for name in "${CASES[@]}"; do
	selected "$name" && C_ACTIVE[$name]=1 C_ACTIVE[${C_FLOOR[$name]}]=1
done
if [ "${BENCH_LIST:-0}" = 1 ]; then
	for name in "${CASES[@]}"; do
		printf '%-22s floor=%-20s target=%-4s %s%s\n' "$name" "${C_FLOOR[$name]}" "${C_TARGET[$name]:--}" \
			"${C_NOTE[$name]}" "${C_ACTIVE[$name]:+ (selected)}"
	done
	echo "sections: breakdown"
	exit 0
fi
[ ${#C_ACTIVE[@]} -gt 0 ] || selected breakdown ||
	{ echo "BENCH_CASES=\"${BENCH_CASES:-}\" names no case (BENCH_LIST=1 lists them)" >&2; exit 2; }

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
allcols="id, ts, city, uuid, loc, number, key1, key2, key3, key4, key5, key6, key7, key8, key9, key10, score, price, active, ratio"
flat_cols="id bigint, ts timestamptz NOT NULL, city text, uuid text, loc text, number text, key6 text, key7 text, key8 text, key9 text, key10 text, score int, price numeric, active boolean, ratio double precision"
real_out="ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text)"
{
	echo "CREATE EXTENSION talaria_transform;"
	# single-user mode reads one statement per line
	echo "$events_fn" | tr '\n' ' '; echo
	echo "CREATE FUNCTION bench_tuple(r json) RETURNS text LANGUAGE sql AS \$\$ SELECT '(' || string_agg(quote_nullable(v), ', ' ORDER BY n) || ')' FROM json_each_text(r) WITH ORDINALITY AS x(k, v, n) \$\$;"
	echo "CREATE TABLE ev1 AS SELECT * FROM bench_events(1000000) LIMIT 20000;"
	for n in 100 5000 10000 20000; do
		echo "CREATE TABLE evflat_$n AS SELECT * FROM ev1 WHERE id <= $n;"
		echo "CREATE TABLE outflat_$n AS SELECT $cols FROM ev1 WHERE id <= $n;"
		echo "CREATE TABLE evdoc_$n AS SELECT ts, to_jsonb(e) - 'ts' AS doc FROM ev1 AS e WHERE id <= $n;"
		echo "CREATE TABLE outdoc_$n AS SELECT ts, doc - $keys AS doc FROM evdoc_$n;"
		echo "CREATE TABLE docs_$n AS SELECT e.id, to_jsonb(e) AS doc FROM ev1 AS e WHERE id <= $n;"
		echo "COPY evflat_$n TO '$work/events_$n.csv' (FORMAT csv);"
		echo "COPY outflat_$n TO '$work/trimmed_$n.csv' (FORMAT csv);"
		echo "COPY evdoc_$n TO '$work/evdoc_$n.csv' (FORMAT csv);"
		echo "COPY outdoc_$n TO '$work/outdoc_$n.csv' (FORMAT csv);"
		echo "COPY (SELECT $real_out FROM (SELECT ts, doc - $keys AS d FROM evdoc_$n) s) TO '$work/outreal_$n.csv' (FORMAT csv);"
		echo "COPY (SELECT id, CASE WHEN id % 100 = 0 THEN '2099-01-01'::timestamptz ELSE ts END, city, uuid, loc, number, key1, key2, key3, key4, key5, key6, key7, key8, key9, key10, score, price, active, ratio FROM evflat_$n) TO '$work/events_dirty_$n.csv' (FORMAT csv);"
		echo "COPY (SELECT CASE WHEN (doc->>'id')::bigint % 100 = 0 THEN '2099-01-01'::timestamptz ELSE ts END, doc FROM evdoc_$n) TO '$work/evdoc_dirty_$n.csv' (FORMAT csv);"
	done
	# statement files: n single-row INSERTs (the first n events), n/100
	# statements of 100 rows
	for s in flat doc; do
		for e in floor native lua; do
			case $s/$e in
				flat/floor) tbl=target src=outflat_20000 ;;
				flat/native) tbl=raw_native src=evflat_20000 ;;
				flat/lua) tbl=raw_lua src=evflat_20000 ;;
				doc/floor) tbl=target_doc src=outdoc_20000 ;;
				doc/native) tbl=raw_doc_native src=evdoc_20000 ;;
				doc/lua) tbl=raw_doc_lua src=evdoc_20000 ;;
			esac
			for n in 10 500 1000; do
				echo "COPY (SELECT 'INSERT INTO $tbl VALUES ' || bench_tuple(row_to_json(e)) || ';' FROM (SELECT * FROM $src LIMIT $n) e) TO '$work/ins1_${s}_${e}_$n.sql';"
			done
			for n in 100 1000 2000; do
				echo "COPY (SELECT 'INSERT INTO $tbl VALUES ' || string_agg(t, ', ') || ';' FROM (SELECT (row_number() OVER () - 1) / 100 AS g, bench_tuple(row_to_json(x)) AS t FROM (SELECT * FROM $src LIMIT $n) x) y GROUP BY g ORDER BY g) TO '$work/vals_${s}_${e}_$n.sql';"
			done
		done
	done
	echo "SELECT talaria.register_lua('trim_lua', 'function main(row) row.key1 = nil row.key2 = nil row.key3 = nil row.key4 = nil row.key5 = nil return row end');"
	echo "SELECT talaria.register_native('trim_native', '\$libdir/talaria_test_plugins/trim.so', 'trim');"
	echo "SELECT talaria.register_native('trim_go', '\$libdir/talaria_test_plugins/go_trim.so', 'trim');"
	echo "SELECT talaria.register_native('trim_rust', '\$libdir/talaria_test_plugins/rust_trim.so', 'trim');"
	echo "SELECT talaria.register_lua('trim_doc_lua', 'function main(row) local d = row.doc d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil return row end');"
	echo "SELECT talaria.register_native('trim_doc_native', '\$libdir/talaria_test_plugins/trim_doc.so', 'trim_doc');"
	echo "SELECT talaria.register_lua('real_lua', 'local json = require(\"json\") function main(row) local d = row.doc d.key1 = nil d.key2 = nil d.key3 = nil d.key4 = nil d.key5 = nil local s = json.encode(d) return { ts = row.ts, doc = d, city = string.upper(d.city), region = string.sub(d.uuid, 1, 8) .. \"/\" .. string.lower(d.city), doc_size = #s } end');"
	for t in target target_nowin; do
		echo "CREATE TABLE $t ($flat_cols) PARTITION BY RANGE (ts);"
		echo "CREATE TABLE ${t}_p20240101 PARTITION OF $t FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');"
	done
	echo "CREATE TABLE target_doc (ts timestamptz NOT NULL, doc jsonb) PARTITION BY RANGE (ts);"
	echo "CREATE TABLE target_doc_p20240101 PARTITION OF target_doc FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');"
	echo "CREATE TABLE target_real (ts timestamptz NOT NULL, doc jsonb, city text, region text, doc_size int) PARTITION BY RANGE (ts);"
	echo "CREATE TABLE target_real_p20240101 PARTITION OF target_real FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');"
	echo "CREATE TABLE raw_lua (LIKE evflat_100);"
	for t in raw_native raw_go raw_dl_flat raw_native_nowin; do echo "CREATE TABLE $t (LIKE raw_lua);"; done
	echo "CREATE TABLE raw_doc_lua (ts timestamptz, doc jsonb);"
	for t in raw_doc_native raw_dl_doc raw_real_lua raw_real_plpgsql; do echo "CREATE TABLE $t (LIKE raw_doc_lua);"; done
	echo "CREATE UNLOGGED TABLE stage_real (LIKE raw_doc_lua);"
	echo "CREATE FUNCTION bench_real_plpgsql() RETURNS trigger LANGUAGE plpgsql AS \$\$ DECLARE d jsonb := NEW.doc - $keys; BEGIN INSERT INTO target_real VALUES (NEW.ts, d, upper(d->>'city'), substr(d->>'uuid', 1, 8) || '/' || lower(d->>'city'), octet_length(d::text)); RETURN NULL; END \$\$;"
	echo "CREATE TRIGGER bench_real BEFORE INSERT ON raw_real_plpgsql FOR EACH ROW EXECUTE FUNCTION bench_real_plpgsql();"
	echo "SELECT talaria.create_time_table('target', 'ts', '1 day', NULL, 0);"
	echo "SELECT talaria.create_time_table('target_nowin', 'ts', '1 day', NULL, 0, max_past => NULL, max_future => NULL);"
	echo "SELECT talaria.create_time_table('target_doc', 'ts', '1 day', NULL, 0);"
	echo "SELECT talaria.create_time_table('target_real', 'ts', '1 day', NULL, 0);"
	echo "SELECT talaria.create_pipeline('raw_lua', 'target', 'trim_lua');"
	echo "SELECT talaria.create_pipeline('raw_native', 'target', 'trim_native');"
	echo "SELECT talaria.create_pipeline('raw_go', 'target', 'trim_go');"
	echo "SELECT talaria.create_pipeline('raw_native_nowin', 'target_nowin', 'trim_native');"
	echo "SELECT talaria.create_pipeline('raw_dl_flat', 'target', 'trim_lua', on_error => 'dead_letter');"
	echo "SELECT talaria.create_pipeline('raw_doc_lua', 'target_doc', 'trim_doc_lua');"
	echo "SELECT talaria.create_pipeline('raw_doc_native', 'target_doc', 'trim_doc_native');"
	echo "SELECT talaria.create_pipeline('raw_dl_doc', 'target_doc', 'trim_doc_lua', on_error => 'dead_letter');"
	echo "SELECT talaria.create_pipeline('raw_real_lua', 'target_real', 'real_lua');"
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

expand() {
	# a statement, or @file: the file's statements; $W is the work directory
	local t=${1//\$W/$work}
	if [ "${t:0:1}" = @ ]; then cat "${t:1}"; else printf '%s\n' "$t"; fi
}

count() {
	# $1: toggle function, $2: warm-up, $3: measured, $4: callgrind file to keep
	{ expand "$2"; expand "$3"; } >"$work/q.sql"
	[ "$(id -u)" = 0 ] && chown postgres "$work/q.sql"
	local toggle="--toggle-collect=$1"
	[ "$1" = - ] && toggle="--collect-atstart=yes"
	run_pg env GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind "$toggle" \
		--callgrind-out-file="$work/cg.out" "$bindir/postgres" --single -D "$work/data" postgres \
		<"$work/q.sql" >"$work/q.out" 2>"$work/q.err" || {
		# e.g. Go's runtime.cputicks (RDTSCP) on some CPUs: valgrind 3.19
		# stops the process with SIGILL
		grep -m 1 -A 1 'Unrecognised instruction' "$work/q.err" | sed 's/^==[0-9]*== *//' >&2
		return 1
	}
	if grep -q ERROR "$work/q.out"; then
		grep -m 2 ERROR "$work/q.out" >&2
		return 1
	fi
	[ -n "${4:-}" ] && cp "$work/cg.out" "$4"
	callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

declare -A PER_ROW
measure() {
	# $1 case: counts over 2N and over N
	local c=$1 n=${C_N[$1]} a b ka="" kb=""
	[ -n "${C_KEEP[$c]}" ] && ka="$work/cg_${c}_a.out" kb="$work/cg_${c}_b.out"
	a=$(count "${C_TOGGLE[$c]}" "${C_WARM[$c]}" "${C_STMT[$c]//@N@/$((2 * n))}" "$ka") || { echo "case=$c failed" >&2; return 1; }
	b=$(count "${C_TOGGLE[$c]}" "${C_WARM[$c]}" "${C_STMT[$c]//@N@/$n}" "$kb") || { echo "case=$c failed" >&2; return 1; }
	[ -n "${DEBUG:-}" ] && echo "case=$c a=$a b=$b" >&2
	PER_ROW[$c]=$(((a - b) / n))
}

echo "work: $work" >&2
echo "tree: $(cd "$top" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$top" && git status --porcelain --untracked-files=no 2>/dev/null | awk 'NR == 1 { printf " plus uncommitted changes" }')"
for c in "${CASES[@]}"; do
	[ -n "${C_ACTIVE[$c]:-}" ] || continue
	measure "$c"
done

for c in "${CASES[@]}"; do
	[ -n "${PER_ROW[$c]:-}" ] || continue
	f=${PER_ROW[${C_FLOOR[$c]}]:-}
	line=$(awk -v c="$c" -v n="${PER_ROW[$c]}" -v f="$f" \
		'BEGIN { printf "instructions case=%s per_row=%d ratio=%s", c, n, (f > 0 ? sprintf("%.2f", n / f) : "?") }')
	if [ -n "${C_TARGET[$c]}" ] && [ -n "$f" ] && [ "$f" -gt 0 ]; then
		line="$line target<=${C_TARGET[$c]} $(awk -v n="${PER_ROW[$c]}" -v f="$f" -v l="${C_TARGET[$c]}" 'BEGIN { print (n / f <= l ? "PASS" : "MISS") }')"
	fi
	[ "${C_FLOOR[$c]}" = "$c" ] || line="$line floor=${C_FLOOR[$c]}"
	echo "$line   # ${C_NOTE[$c]}"
done

# ---------------------------------------------------------------------
# Where the instructions go, per row, by function (inclusive), for the
# cases kept: talaria_transform.so's functions and the clock reads; then
# the checks on the hot paths (item 7 of issue 15)
# ---------------------------------------------------------------------
selected breakdown || exit 0
inclusive() {
	# callgrind file -> "function<TAB>inclusive count" for talaria's
	# functions and the clock
	# (a function may be listed more than once, under the file names its
	# debug information gives it: the largest count is kept)
	callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null |
		awk -v src="$top/src/" '(/talaria_transform\.so|clock_gettime/ || index($0, src)) && $1 ~ /^[0-9,]+$/ {
			n = $1; gsub(",", "", n)
			f = ""
			for (i = 2; i <= NF; i++) if ($i ~ /:/ && $i !~ /^\(/) { f = $i; break }
			sub(/^.*:/, "", f)
			if (f != "" && n + 0 > c[f] + 0) c[f] = n
		}
		END { for (f in c) print f "\t" c[f] }'
}
echo
echo "== by function: inclusive instructions per row ((2N - N) / N) in talaria_transform.so and clock_gettime"
for c in "${CASES[@]}"; do
	[ -n "${C_KEEP[$c]}" ] && [ -f "$work/cg_${c}_a.out" ] && [ -f "$work/cg_${c}_b.out" ] || continue
	inclusive "$work/cg_${c}_a.out" >"$work/inc_a"
	inclusive "$work/cg_${c}_b.out" >"$work/inc_b"
	echo "-- $c (${PER_ROW[$c]} per row in all)"
	awk -F'\t' -v n="${C_N[$c]}" 'NR == FNR { b[$1] = $2; next }
		{ d = ($2 - b[$1]) / n; if (d >= 20) printf "%8d  %s\n", d, $1 }' "$work/inc_b" "$work/inc_a" |
		sort -rn | head -"${BREAKDOWN_TOP:-14}"
	# the checks: the accepted window (tt_time_key and the bounds compared
	# inline), the statistics' two clock reads per transform call, the Lua
	# interrupt checks (the instrumented loops' and the built-ins')
	awk -F'\t' -v n="${C_N[$c]}" 'NR == FNR { b[$1] = $2; next }
		{ d = ($2 - b[$1]) / n
		  if ($1 ~ /^tt_time_key$/) w += d
		  else if ($1 ~ /clock_gettime/ && d > clk) clk = d
		  else if ($1 ~ /check_interrupt/) intr += d
		  else if ($1 ~ /^tt_stats/) st += d }
		END { printf "   checks: accepted window (tt_time_key) %d, statistics clock reads (clock_gettime) %d, Lua interrupt checks %d, stats lookups %d\n", w, clk, intr, st }' \
		"$work/inc_b" "$work/inc_a"
done
if [ -n "${PER_ROW[window_off_native]:-}" ] && [ -n "${PER_ROW[copy_talaria_native]:-}" ]; then
	echo "checks: the accepted window (max_future '1 year') costs $((PER_ROW[copy_talaria_native] - PER_ROW[window_off_native])) instructions per row (copy_talaria_native ${PER_ROW[copy_talaria_native]} - window_off_native ${PER_ROW[window_off_native]})"
fi
