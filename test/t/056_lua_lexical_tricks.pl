# Loops and row escapes hidden from the Lua rewriter by lexical tricks that
# LuaJIT reads differently from the old rewriter (issue 11, items 2, 3c).
# Each loop must stop at statement_timeout like any other; on the old code
# they spun until SIGKILL (the test then ends the backend itself and fails).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use LuaBounded;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lua_lexical');
$node->init;
# a backend that has to be killed (the old code's loops) restarts the cluster
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');
$node->safe_psql('postgres', q{
	CREATE TABLE lx_raw (doc jsonb);
	CREATE TABLE lx_out (doc jsonb);
	SELECT talaria.register_lua('lx_pipe', 'function main(r) return r end');
	SELECT talaria.create_pipeline('lx_raw', 'lx_out', 'lx_pipe');
});

# name => Lua source (Perl "" strings: \r is a carriage return) whose main
# never returns; SQL gets it dollar-quoted, as it is
my @loops = (
	[ 'a \\r ends a -- comment', "function main(r) --c\r while true do end\n end" ],
	[ 'a \\r\\n after a comment', "function main(r) --c\r\n while true do end end" ],
	[ '\\z skips a line end in a string', "function main(r) local s = \"\\z\r\n\" while true do end end" ],
	[ 'a backslash before \\r\\n in a string', "function main(r) local s = \"a\\\r\nb\" while true do end end" ],
	[ 'a backslash before \\n\\r in a string', "function main(r) local s = 'a\\\n\rb' while true do end end" ],
	[ 'a #! line ended by \\r', "#!/usr/bin/lua\rfunction main(r) while true do end end\n" ],
	[ 'a BOM and a #! line ended by \\r', "\xef\xbb\xbf#!lua\rfunction main(r) while true do end end\n" ],
	[ 'a long comment closed across \\r', "function main(r) --[==[ ]] \r ]==] while true do end end" ],
	[ 'the \\r trick inside load()', "function main(r) local f = load(\"local x --c\\r while true do end\") f() end" ],
	[ 'a goto loop after a \\r comment', "function main(r) --c\r ::a:: goto a\n end" ],
	[ 'tail calls after a \\r comment', "function main(r) --c\r local function f() return f() end return f()\n end" ],
);

my $n = 0;
for my $case (@loops)
{
	my ($what, $src) = @$case;
	$n++;
	my $log_at = -s $node->logfile;
	for my $via ('transform_row', 'pipeline')
	{
		my $run = $via eq 'transform_row'
		  ? "SELECT talaria.transform_row('lx$n', '{}');"
		  : "SELECT talaria.register_lua('lx_pipe', \$lx\$$src\$lx\$); INSERT INTO lx_raw VALUES ('{}');";
		my $r = LuaBounded::run_bounded($node, qq{
SET statement_timeout = '500ms';
SELECT talaria.register_lua('lx$n', \$lx\$$src\$lx\$);
$run
SELECT 'alive';
}, 20, "lx_${n}_$via");
		ok(!$r->{timed_out} && !$r->{killed}, "$what ($via): the statement ends");
		like($r->{err}, qr/canceling statement due to statement timeout/, "$what ($via): statement_timeout stops it");
		my $slowest = $r->{timed_out} ? 1e9 : (sort { $b <=> $a } @{ $r->{times} })[0] // 1e9;
		ok($slowest < 2500, "$what ($via): within 2 s of the timeout (${slowest} ms)");
		like($r->{out}, qr/^alive$/m, "$what ($via): the backend is usable afterwards");
	}
	is(scalar(LuaBounded::crashes_since($node, $log_at)), 0, "$what: no backend died");
}

# valid code the old rewriter broke: `goto` is a name for LuaJIT 2.1 when no
# name follows it; a label that ends its block stays outside every scope
my ($rc, $out, $err) = $node->psql('postgres', q{
	SELECT talaria.register_lua('lx_goto', 'local function goto(x) return x end function main(r) return goto(r.a) end');
	SELECT talaria.transform_row('lx_goto', '{"a": 7}')});
is($out, "\n7", 'goto as a function name') or diag($err);
($rc, $out, $err) = $node->psql('postgres', q{
	SELECT talaria.register_lua('lx_label', 'function main(r) local n = 0 do goto skip local y = 1 ::skip:: end ::again:: n = n + 1 if n < 3 then goto again end return n end');
	SELECT talaria.transform_row('lx_label', '{}')});
is($out, "\n3", 'a trailing label and a goto loop') or diag($err);

# the row-escape scan shares the lexer: a script that keeps its row in a
# global behind a \r comment must get rows that outlive the call (the old
# scan took it for row-local: its next call read the freed row, an
# "internal error" at best, a SIGSEGV at worst)
my $log_at = -s $node->logfile;
my $r = LuaBounded::run_bounded($node, q{
SELECT talaria.register_lua('lx_keep', E'function main(row) --c\r local p = saved and saved.b; saved = row\n return {a = row.a, prev = p} end');
SELECT talaria.transform_row('lx_keep', '{"a": 1, "b": "one", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}');
SELECT talaria.transform_row('lx_keep', '{"a": 2, "b": "two", "pad": "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}');
SELECT talaria.transform_row('lx_keep', '{"a": 3, "b": [1, 2, 3], "pad": "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"}');
SELECT talaria.transform_row('lx_keep', '{"b": {"x": "y"}, "a": "four"}');
SELECT talaria.transform_row('lx_keep', '{"a": 5}');
SELECT 'alive';
}, 20, 'lx_keep');
is($r->{out} =~ s/^Time:.*\n//mgr, qq{
{"a": 1}
{"a": 2, "prev": "one"}
{"a": 3, "prev": "two"}
{"a": "four", "prev": [1, 2, 3]}
{"a": 5, "prev": {"x": "y"}}
alive
}, 'a row kept in a global behind a \\r comment keeps its values');
is($r->{err}, '', 'no error');
is(scalar(LuaBounded::crashes_since($node, $log_at)), 0, 'no backend died');

done_testing();
