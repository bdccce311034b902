# The Lua rewriter's lexer and the bytecode verifier against LuaJIT itself,
# on generated sources (test/lua/difftest.c says what is generated and what
# is checked).  Fixed seed; TT_LUA_DIFF_CASES and TT_LUA_DIFF_SEED run more.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = $ENV{TT_TOP} or plan skip_all => 'TT_TOP (the source tree) is not set';
my $cases = $ENV{TT_LUA_DIFF_CASES} // 20000;
my $seed = $ENV{TT_LUA_DIFF_SEED} // 20261202;
my $tmp = PostgreSQL::Test::Utils::tempdir;

chomp(my $incdir = `pg_config --includedir-server`);
chomp(my $pkglibdir = `pg_config --pkglibdir`);
chomp(my $luaflags = `pkg-config --cflags --libs luajit`);
my $cmd = "cc -O1 -Wall -Wextra -Wno-unused-parameter -I$top/src -I$top/src/include -I$incdir "
  . "-o $tmp/difftest $top/test/lua/difftest.c $top/src/lua_instrument.c $top/src/lua_lexer.c "
  . "$pkglibdir/libpgcommon.a $pkglibdir/libpgport.a $luaflags -lm 2>&1";
my $build = `$cmd`;
is($?, 0, 'the differential harness builds') or diag($build);

my $out = `$tmp/difftest $seed $cases 2>&1`;
my $rc = $?;
diag($out);
is($rc, 0, "$cases generated sources: rewriter, verifier and LuaJIT agree (seed $seed)");
like($out, qr/failures 0$/m, 'no failure reported');
my ($compiled, $stopped) = $out =~ /compiled (\d+), .*endless loops stopped (\d+)/;
ok(($compiled // 0) > $cases / 5, 'a good share of the sources compile');
ok(($stopped // 0) > $cases / 20, 'and many of them hide an endless loop, all of them stopped');
my ($refused, $run) = $out =~ /mutants refused (\d+), mutants run (\d+)/;
ok(($refused // 0) > ($compiled // 0) / 2, 'the verifier refuses most chunks missing a check');
ok(($run // 0) > 0, 'and the ones it accepts never loop unchecked');

done_testing();
