#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, installs, starts a
# throwaway cluster, runs pg_regress + isolation (make installcheck) and the
# TAP tests, and ends with "N passed, N failed".  Exit status non-zero on any
# failure.  Usage: bash test/run.sh
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
. test/lib.sh

tt_install_deps
tt_build_install || { echo "0 passed, 1 failed"; exit 1; }
tt_start_cluster || { echo "0 passed, 1 failed"; exit 1; }
trap tt_stop_cluster EXIT

passed=0
failed=0
log=$(mktemp -d /tmp/talaria_test.XXXXXX)
chmod 755 "$log"

# pg_regress and isolation, against the throwaway cluster
make -s installcheck PGHOST="$TT_SOCKDIR" PGPORT="$TT_PORT" PGUSER=postgres \
	>"$log/installcheck.out" 2>&1
cat "$log/installcheck.out"
p=$(grep -cE '^(ok|test|     ).* \.\.\. ok|^ok [0-9]+' "$log/installcheck.out")
f=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$log/installcheck.out")
passed=$((passed + p)); failed=$((failed + f))
for d in results output_iso; do
	[ -f "$d/regression.diffs" ] && { echo "--- $d/regression.diffs"; head -200 "$d/regression.diffs"; }
done
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "installcheck ran no test"; fi

# TAP: PostgreSQL::Test::Cluster makes its own clusters, as postgres
if ls test/t/*.pl >/dev/null 2>&1; then
	pgxs=$(dirname "$(pg_config --pgxs)")/..
	tapdir="$log/tap"
	mkdir -p "$tapdir"; cp -r test/t "$tapdir/"; chown -R postgres "$log"
	runuser -u postgres -- env PERL5LIB="$pgxs/test/perl" \
		PATH="$(pg_config --bindir):$PATH" TESTDIR="$tapdir" \
		PG_REGRESS="$pgxs/test/regress/pg_regress" TT_TOP="$top" \
		bash -c "cd '$tapdir' && prove -v t/*.pl" >"$log/tap.out" 2>&1
	cat "$log/tap.out"
	p=$(grep -cE '^\s*ok [0-9]+' "$log/tap.out")
	f=$(grep -cE '^\s*not ok [0-9]+' "$log/tap.out")
	if ! grep -q '^Result: PASS' "$log/tap.out"; then
		[ "$f" -eq 0 ] && f=1
		for l in "$tapdir"/tmp_check/log/*.log; do [ -f "$l" ] && { echo "--- $l"; tail -30 "$l"; }; done
	fi
	passed=$((passed + p)); failed=$((failed + f))
fi

# the benchmark's scripts (not its figures): syntax, case lists, and one
# quick run of two cases end to end (a cluster of its own; about half a minute)
if bash -n test/bench/run.sh && bash -n test/bench/instructions.sh &&
	BENCH_LIST=1 bash test/bench/instructions.sh >"$log/bench.out" 2>&1 &&
	BENCH_CASES='first_flat_lua,insert1_doc_lua' BENCH_ROWS=20000 BENCH_RUNS=3 BENCH_STMTS=200 BENCH_OUT="$log/bench" \
		bash test/bench/run.sh >>"$log/bench.out" 2>&1 &&
	grep -q '^case=first_flat_lua rows=20000 us_per_row=[0-9.]* ratio=[0-9.]* target<=1.2 ' "$log/bench.out" &&
	grep -q '^case=insert1_doc_lua rows=400 us_per_row=[0-9.]* ratio=[0-9.]* target<=1.3 ' "$log/bench.out" &&
	! grep -q '^case=.* failed' "$log/bench.out"; then
	echo "ok bench: scripts, case lists and a quick run"
	passed=$((passed + 1))
else
	echo "not ok bench: scripts, case lists and a quick run"
	tail -40 "$log/bench.out"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
