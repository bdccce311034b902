# One memory budget per call and per backend: json.decode/json.encode, the
# per-row arena, the native arena and the backend-wide cap all end in an
# ERROR with SQLSTATE 54000 (or the usual timeout/cancel), quickly, without
# keeping the memory (the backend's RSS, from /proc), and the backend and
# other transforms go on.  Sizes are small: the limits are set low.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('lua_memory');
$node->init;
$node->append_conf('postgresql.conf',
	"talaria.native_library_path = '\$libdir:\$libdir/talaria_test_plugins'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');

my %lua = (
	ok => 'function main(row) return "fine" end',
	# a JSON array of n empty objects, decoded in one call
	dec => q{local json = require("json")
function main(row) local t = json.decode("[" .. string.rep("{},", row.n) .. "{}]") return #t end},
	# t = {t, t} nested n times: 2^n leaves, n tables
	dag => q{local json = require("json")
function main(row) local t = {} for i = 1, row.n do t = {t, t} end return #json.encode(t) end},
	# n MB of control characters: six bytes of JSON each
	escapes => q{local json = require("json")
function main(row) return #json.encode(string.rep("\1", row.mb * 1024 * 1024)) end},
	# one 1 MB string, n times in the result
	big_result => q{function main(row)
  local s = string.rep("x", 1024 * 1024) local t = {} for i = 1, row.n do t[i] = s end return t end},
	big_members => q{function main(row)
  local s = string.rep("y", 1024 * 1024) local t = {} for i = 1, row.n do t["k" .. i] = {v = s} end return t end},
	grab => 'function main(row) local s = string.rep("z", row.mb * 1024 * 1024) return #s end',
);
# transforms that keep 5 MB each in their state, and count their calls
$lua{"keep$_"} = q{local keep
function main(row)
  if not keep then keep = string.rep("k", 5 * 1024 * 1024) collectgarbage() end
  calls = (calls or 0) + 1 return calls end}
  for 1 .. 8;
# two that keep 1 MB, to take turns
$lua{"turn_$_"} = q{local keep
function main(row)
  if not keep then keep = string.rep("t", 1024 * 1024) collectgarbage() end
  calls = (calls or 0) + 1 return calls end}
  for qw(a b);
for my $name (sort keys %lua)
{
	$node->safe_psql('postgres',
		"SELECT talaria.register_lua('$name', \$lua\$$lua{$name}\$lua\$)");
}
for my $fn (qw(hog_error hog_ignore small))
{
	$node->safe_psql('postgres',
		"SELECT talaria.register_native('$fn', '\$libdir/talaria_test_plugins/hog.so', '$fn')");
}

my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('\set VERBOSITY verbose');
my $pid = $s->query_safe('SELECT pg_backend_pid()');

sub rss_kb
{
	open(my $fh, '<', "/proc/$pid/status") or return -1;
	while (<$fh>)
	{
		return $1 if /^VmRSS:\s+(\d+)/;
	}
	return -1;
}

# runs one statement; returns (stdout, stderr, seconds)
sub run
{
	my ($sql) = @_;
	my $t0 = time;
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err, time - $t0);
}

sub still_fine
{
	my ($what) = @_;
	my ($out, $err) = run(q{SELECT talaria.transform_row('ok', '{}')});
	is($out, '"fine"', "$what: another transform works after it");
	($out) = run('SELECT pg_backend_pid()');
	is($out, $pid, "$what: the same backend goes on");
}

run(q{SELECT talaria.transform_row('ok', '{}')});
my $rss0 = rss_kb();
ok($rss0 > 0, "the backend's RSS is readable ($rss0 kB)");

# --- json.decode: json-c's tree was outside the limit (300k objects took
# about 250 MB and kept it); now the values are built in the state's memory
run(q{SET talaria.lua_memory_limit = '16MB'});
my ($out, $err, $secs) = run(q{SELECT talaria.transform_row('dec', '{"n": 300000}')});
like($err, qr/54000: transform "dec" failed: not enough memory \(talaria\.lua_memory_limit is 16384 kB\)/,
	'json.decode of a big array hits talaria.lua_memory_limit (54000)');
my $grown = rss_kb() - $rss0;
cmp_ok($grown, '<', 80 * 1024, "json.decode kept no memory ($grown kB more RSS)");
still_fine('json.decode over the limit');
($out) = run(q{SELECT talaria.transform_row('dec', '{"n": 1000}')});
is($out, '1001', 'json.decode of a small array works');

# --- json.encode of a shared DAG: json-c copied every path into its tree
($out, $err) = run(q{SELECT talaria.transform_row('dag', '{"n": 18}')});
is($out, '1310717', 'json.encode of a 2^18-leaf DAG gives its text');
$grown = rss_kb() - $rss0;
cmp_ok($grown, '<', 80 * 1024, "json.encode kept no memory ($grown kB more RSS)");
# (sizes that stay small on the old code too: there json-c's tree of a
# 2^20-leaf DAG took 1 GB, and of a deeper one all the machine has)
run(q{SET talaria.lua_memory_limit = '8MB'});
($out, $err, $secs) = run(q{SELECT talaria.transform_row('dag', '{"n": 20}')});
like($err, qr/54000: transform "dag" failed: not enough memory \(talaria\.lua_memory_limit is 8192 kB\)/,
	'json.encode of a 2^20-leaf DAG (5 MB of text) hits an 8 MB limit (54000)');
$grown = rss_kb() - $rss0;
cmp_ok($grown, '<', 80 * 1024, "and kept no memory ($grown kB more RSS)");
run(q{SET talaria.lua_memory_limit = '16MB'});
still_fine('json.encode over the limit');
($out, $err) = run(q{SELECT talaria.transform_row('escapes', '{"mb": 3}')});
like($err, qr/54000: transform "escapes" failed: not enough memory \(talaria\.lua_memory_limit is 16384 kB\)/,
	'json.encode of 3 MB of control characters (18 MB of text) hits a 16 MB limit (54000)');
run(q{SET talaria.lua_memory_limit = '32MB'});
($out) = run(q{SELECT talaria.transform_row('escapes', '{"mb": 1}')});
is($out, 6 * 1024 * 1024 + 2, 'and 1 MB of them (6 MB of text) fits in 32 MB');
run(q{SET talaria.lua_memory_limit = '16MB'});

# --- both check talaria.transform_timeout as they go (a single call)
run(q{SET talaria.lua_memory_limit = '256MB'});
run(q{SET talaria.transform_timeout = '1ms'});
($out, $err) = run(q{SELECT talaria.transform_row('dec', '{"n": 500000}')});
like($err, qr/57014: transform "dec" failed: dec:2: transform exceeded talaria\.transform_timeout/,
	'json.decode checks talaria.transform_timeout');
($out, $err) = run(q{SELECT talaria.transform_row('dag', '{"n": 18}')});
like($err, qr/57014: transform "dag" failed: dag:2: transform exceeded talaria\.transform_timeout/,
	'json.encode checks talaria.transform_timeout');
run(q{RESET talaria.transform_timeout});
run(q{SET talaria.lua_memory_limit = '16MB'});

# --- and statement_timeout: json-c ran seconds past it (1.3M objects:
# 1.5 to 2.5 s and 1.2 GB; now well under the timeout, or stopped by it)
run(q{SET talaria.lua_memory_limit = '1GB'});
run(q{SET statement_timeout = '300ms'});
($out, $err, $secs) = run(q{SELECT talaria.transform_row('dec', '{"n": 1300000}')});
cmp_ok($secs, '<', 1.0, "json.decode under statement_timeout ends in time ($secs s)");
run(q{RESET statement_timeout});
run(q{SET talaria.lua_memory_limit = '16MB'});
still_fine('statement_timeout in json.decode');

# --- the per-row arena counts against the same budget
($out, $err) = run(q{SELECT talaria.transform_row('big_result', '{"n": 40}')});
like($err, qr/54000: transform "big_result" failed: not enough memory for the result \(talaria\.lua_memory_limit is 16384 kB\)/,
	'a result of 40 copies of a 1 MB string hits the limit (54000)');
($out, $err) = run(q{SELECT talaria.transform_row('big_members', '{"n": 40}')});
like($err, qr/54000: transform "big_members" failed: not enough memory for the result/,
	'the same string under 40 keys hits the limit (54000)');
($out) = run(q{SELECT talaria.transform_row('big_result', '{"n": 2}') = to_jsonb(ARRAY[repeat('x', 1048576), repeat('x', 1048576)])});
is($out, 't', 'two copies fit');
still_fine('the arena over the limit');

# --- the native arena: host->alloc returns NULL past
# talaria.native_memory_limit (before: never, until the OOM killer)
my $rss_native = rss_kb();
run(q{SET talaria.native_memory_limit = '64MB'});
my %native_error = (
	hog_error => 'got NULL after 64 MB \(out of memory in the per-row arena: talaria\.native_memory_limit is 65536 kB\)',
	hog_ignore => 'out of memory in the per-row arena \(talaria\.native_memory_limit is 65536 kB\)');
for my $fn (qw(hog_error hog_ignore))
{
	($out, $err, $secs) = run(qq{SELECT talaria.transform_row('$fn', '{}')});
	like($err, qr/54000: transform "$fn" failed: $native_error{$fn}/,
		"$fn: host->alloc returns NULL at talaria.native_memory_limit (54000)");
	still_fine($fn);
}
($out) = run(q{SELECT talaria.transform_row('small', '{"a": 1}')});
is($out, '{"a": 1, "ok": true}', 'a small native call after them works');
$grown = rss_kb() - $rss_native;
# malloc may keep freed blocks for reuse: bounded by the cap, not growing
cmp_ok($grown, '<', 100 * 1024, "the arena stayed near the 64 MB cap ($grown kB more RSS)");
run(q{RESET talaria.native_memory_limit});

# --- the backend-wide cap: idle states of other transforms are dropped to
# make room (least recently used first), so eight transforms at 5 MB each
# do not add up to 40 MB (before: they did; 8 x 25 MB held 411 MB)
my $rss1 = rss_kb();
run(q{SET talaria.backend_memory_limit = '32MB'});
for my $i (1 .. 8)
{
	($out, $err) = run(qq{SELECT talaria.transform_row('keep$i', '{}')});
	is($out, '1', "keep$i holds 5 MB under a 32 MB backend limit");
}
($out) = run(q{SELECT talaria.transform_row('keep8', '{}')});
is($out, '2', 'the most recent state is still cached');
($out) = run(q{SELECT talaria.transform_row('keep1', '{}')});
is($out, '1', 'the least recently used one was dropped and starts afresh');
$grown = rss_kb() - $rss1;
cmp_ok($grown, '<', 30 * 1024, "eight 5 MB states do not add up ($grown kB more RSS)");

# one state alone over the backend limit: 54000 naming that limit
run(q{SET talaria.lua_memory_limit = '64MB'});
($out, $err) = run(q{SELECT talaria.transform_row('grab', '{"mb": 20}')});
like($err, qr/54000: transform "grab" failed: .*not enough memory \(talaria\.backend_memory_limit is 32768 kB\)/,
	'a state over talaria.backend_memory_limit fails with 54000 naming it');
($out) = run(q{SELECT talaria.transform_row('grab', '{"mb": 4}')});
is($out, '4194304', 'the same transform works within the limit');
# a state allowed more than the backend (64 MB > 32 MB) makes room for half
# the backend at most: two small states taking turns both stay cached
my @turns;
for my $t (qw(turn_a turn_b turn_a turn_b))
{
	($out) = run(qq{SELECT talaria.transform_row('$t', '{}')});
	push @turns, $out;
}
is(join(',', @turns), '1,1,2,2', 'two states taking turns under a backend limit below their own both stay cached');
run(q{RESET talaria.backend_memory_limit});
still_fine('the backend limit');

$s->quit;
ok(!grep(/terminated by signal|server process .* was terminated/, slurp_file($node->logfile)),
	'no backend died');
$node->stop;
done_testing();
