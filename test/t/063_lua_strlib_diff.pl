# Differential test of the sandbox's string.find/match/gmatch/gsub and
# table.sort (src/lua_strlib.c) against LuaJIT's own: test/strlib/harness.c
# runs both on random patterns, subjects, replacements and comparators
# (test/strlib/differential.lua) and compares results and error messages;
# it also checks that a set interrupt stops each long-running function.
# TT_STRLIB_SEEDS and TT_STRLIB_N make longer runs.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = $ENV{TT_TOP};
plan skip_all => 'TT_TOP does not point at the checkout'
  unless $top && -f "$top/src/lua_strlib.c";

my $dir = PostgreSQL::Test::Utils::tempdir();
my $cflags = `pkg-config --cflags luajit`;
my $libs = `pkg-config --libs luajit`;
my $cppflags = `pg_config --cppflags`;
my $inc = `pg_config --includedir-server`;
chomp($cflags, $libs, $cppflags, $inc);
my $cmd = "cc -O2 -Wall $cppflags -DTT_LUA_API_IMPL -I$top/src -I$top/src/include -I$inc $cflags "
  . "-o $dir/harness $top/test/strlib/harness.c $top/src/lua_strlib.c $libs 2>&1";
my $out = `$cmd`;
is($?, 0, 'the harness builds') or diag("$cmd\n$out");

my @seeds = split /,/, ($ENV{TT_STRLIB_SEEDS} // '1,2,3');
my $n = $ENV{TT_STRLIB_N} // 5000;
for my $seed (@seeds)
{
	my $res = `SEED=$seed N=$n $dir/harness $top/test/strlib/differential.lua 2>&1`;
	my ($compared, $mismatches, $checks, $stopped) =
	  $res =~ /(\d+) comparisons, (\d+) mismatches, (\d+) budget checks, (\d+) of 7 stopped/;
	ok(defined $compared && $compared > 4 * $n, "seed $seed: ran ($compared comparisons)")
	  or diag($res);
	is($mismatches, 0, "seed $seed: same results and errors as LuaJIT") or diag($res);
	ok($checks > 0, "seed $seed: a backtracking pattern calls the interrupt check");
	is($stopped, 7, "seed $seed: a pending interrupt stops every long-running function");
}

done_testing();
