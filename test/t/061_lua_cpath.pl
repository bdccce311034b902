# Lua built-ins that work in C: long pattern matching, plain searches and
# sorts stop at statement_timeout, talaria.transform_timeout,
# pg_cancel_backend and pg_terminate_backend; recursion through built-ins
# that call back into Lua (gsub, sort, load, pcall, print, string.format,
# tostring) ends in a Lua error instead of a C stack overflow.  After each,
# the backend and the transform go on, and no backend ever dies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

# a case that does not stop by itself is given up (and killed) after this
my $give_up = 20;

my $node = PostgreSQL::Test::Cluster->new('lua_cpath');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');

# Every case is a transform whose main returns a plain answer for the row
# {"ok": true} (the transform still works after the failure) and otherwise
# runs the case.  [name, code before main, body of main]
my $A40 = q{string.rep('a', 40)};
my $P40 = q{string.rep('a*', 40) .. 'b'};
my @long = (
	[ 'find_backtrack', '', "return string.find($A40, $P40)" ],
	[ 'match_backtrack', '', "return string.match($A40, $P40)" ],
	[ 'gmatch_backtrack', '', "for m in string.gmatch($A40, $P40) do return m end return 0" ],
	[ 'gsub_backtrack', '', "return (string.gsub($A40, $P40, 'x'))" ],
	[ 'method_lazy_backtrack', '',
		"local s = $A40 return s:find(string.rep('a-', 40) .. 'b')" ],
	[ 'capture_backtrack', '',
		"return string.find(string.rep('a', 30), string.rep('(a*)', 30) .. 'b')" ],
	[ 'backref_cubic', '', "return string.find(string.rep('a', 1e5), '(a*)%1b')" ],
	[ 'balance_quadratic', '', "return string.find(string.rep('(', 3e6), '%b()')" ],
	[ 'gsub_function_backtrack', '',
		"return (string.gsub($A40, '(' .. $P40 .. ')', function(x) return x end))" ],
	[ 'sort_numbers', '',
		"local t = {} for i = 1, 6e6 do t[i] = (i * 7919) % 1000003 end table.sort(t) return t[1]" ],
);

# finish quickly now (they were quadratic or worse in C before)
my @quick = (
	[ 'plain_find_quadratic', '',
		"return tostring(string.find(string.rep('a', 4e6), string.rep('a', 2e6) .. 'b', 1, true))",
		'"nil"' ],
	[ 'nospecials_find_quadratic', '',
		"return tostring(string.find(string.rep('a', 4e6), string.rep('a', 2e6) .. 'b'))",
		'"nil"' ],
	[ 'tostring_is_its_own_tostring', '',
		"local ok, err = pcall(tostring, setmetatable({}, {__tostring = tostring})) return tostring(ok) .. ' ' .. tostring(err)",
		'"false stack overflow"' ],
);

# recursion through C: a clean Lua error ("C stack overflow", or the Lua
# stack's own "stack overflow"), never a crash
my @deep = (
	[ 'gsub_function_recursion',
		"local function f() return (string.gsub('x', 'x', f)) end", 'return f()' ],
	[ 'gsub_table_recursion',
		"local t t = setmetatable({}, {__index = function() return (string.gsub('x', 'x', t)) end})",
		"return (string.gsub('x', 'x', t))" ],
	[ 'sort_comparator_recursion',
		"local function c(a, b) table.sort({3, 2, 1}, c) return a < b end",
		'table.sort({3, 2, 1}, c) return 1' ],
	[ 'sort_lt_recursion',
		"local mt = {} mt.__lt = function(a, b) table.sort({setmetatable({}, mt), setmetatable({}, mt)}) return true end",
		'table.sort({setmetatable({}, mt), setmetatable({}, mt)}) return 1' ],
	[ 'format_tostring_recursion',
		"local mt = {} mt.__tostring = function(a) return string.format('%s', a) end",
		"return string.format('%s', setmetatable({}, mt))" ],
	[ 'print_tostring_recursion',
		"local mt = {} mt.__tostring = function(a) print(a) return 'x' end",
		'print(setmetatable({}, mt)) return 1' ],
	[ 'load_reader_recursion',
		"local function r() load(r) return nil end", 'load(r) return 1' ],
	[ 'pcall_call_recursion',
		"local t = setmetatable({}, {__call = function(self) local ok, e = pcall(self) error(e, 0) end})",
		'return t()' ],
	# LuaJIT gives up in the handler of the deepest level
	[ 'xpcall_recursion',
		"local function f() local ok, e = xpcall(f, function(e) return e end) error(e, 0) end",
		'return f()', qr/stack overflow|error in error handling/ ],
	# each level adds a result; the innermost one is the error
	[ 'pcall_is_call_recursion',
		"local t = setmetatable({}, {__call = pcall})",
		'local r = {pcall(t)} return r[#r]' ],
);

for my $c (@long, @quick, @deep)
{
	my ($name, $pre, $body) = @$c;
	my $src = "$pre\nfunction main(row)\n  if row.ok then return (string.gsub('hello', 'l+', 'L')) end\n  $body\nend\n";
	$node->safe_psql('postgres',
		"SELECT talaria.register_lua('$name', \$lua\$$src\$lua\$)");
}

my $session;
my $session_pid;

sub new_session
{
	$session = $node->background_psql('postgres', on_error_stop => 0, timeout => $give_up);
	$session->set_query_timer_restart();
	$session_pid = $session->query_safe('SELECT pg_backend_pid()');
	$session->query_safe(q{SET talaria.lua_memory_limit = '256MB'});
}

# After a failure that took the server down (a backend that had to be
# killed, or one that crashed: TAP clusters do not restart after a crash),
# starts it again so that the remaining cases still report.
sub recover
{
	my $up = eval { $node->safe_psql('postgres', 'SELECT 1', timeout => 10) };
	return if defined $up;
	sleep(1);
	$node->stop('immediate', fail_ok => 1);
	$node->start;
	new_session();
}

# runs $sql in the session; returns (stdout, stderr, seconds).  A query
# that runs past $give_up is a failure: its backend is killed (nothing else
# can stop it).
sub run
{
	my ($sql) = @_;
	$session->{stderr} = '';
	my $t0 = time();
	my $out = eval { scalar $session->query($sql) };
	my $secs = time() - $t0;
	if (!defined $out)
	{
		kill 'KILL', $session_pid;
		recover();
		return ('', "gave up after $give_up s", $secs);
	}
	my $err = $session->{stderr};
	$err =~ s/\s+$//;
	recover() if $err =~ /server closed the connection|connection to server was lost/;
	return ($out, $err, $secs);
}

# the case's transform answers the "ok" row: the backend and it go on
sub still_usable
{
	my ($name, $what) = @_;
	my ($out, $err) = run("SELECT talaria.transform_row('$name', '{\"ok\": true}')");
	is($out, '"heLo"', "$name: backend and transform usable after $what");
}

new_session();

# statement_timeout stops every long one within 2 s
run(q{SET statement_timeout = '500ms'});
for my $c (@long)
{
	my $name = $c->[0];
	my ($out, $err, $secs) = run("SELECT talaria.transform_row('$name', '{}')");
	like($err, qr/canceling statement due to statement timeout/,
		"$name: statement_timeout stops it");
	ok($secs < 2, "$name: stopped within 2 s (took " . sprintf('%.2f', $secs) . ' s)');
	still_usable($name, 'statement_timeout');
}

# the quick ones give their answer well within the timeout
for my $c (@quick)
{
	my ($name, undef, undef, $want) = @$c;
	my ($out, $err, $secs) = run("SELECT talaria.transform_row('$name', '{}')");
	is($out, $want, "$name: answers ($err)");
	ok($secs < 2, "$name: within 2 s (took " . sprintf('%.2f', $secs) . ' s)');
}

# recursion through C ends in a Lua error
for my $c (@deep)
{
	my ($name, undef, undef, $want) = @$c;
	my ($out, $err, $secs) = run("SELECT talaria.transform_row('$name', '{}')");
	like("$out $err", $want // qr/stack overflow/, "$name: a clean stack overflow error");
	ok($secs < 2, "$name: within 2 s (took " . sprintf('%.2f', $secs) . ' s)');
	still_usable($name, 'the stack overflow');
}
run(q{RESET statement_timeout});

# the C stack error names the script line and says what happened
my ($out, $err) = run(q{SELECT talaria.transform_row('gsub_function_recursion', '{}')});
like($err, qr/gsub_function_recursion:1: C stack overflow/, 'the error names the script and line');

# talaria.transform_timeout stops them too
run(q{SET talaria.transform_timeout = '300ms'});
for my $c (@long)
{
	my $name = $c->[0];
	my ($out, $err, $secs) = run("SELECT talaria.transform_row('$name', '{}')");
	like($err, qr/exceeded talaria.transform_timeout \(300 ms\)/,
		"$name: talaria.transform_timeout stops it");
	ok($secs < 2, "$name: within 2 s (took " . sprintf('%.2f', $secs) . ' s)');
}
run(q{RESET talaria.transform_timeout});

# sends the case to a psql session without waiting, and returns once its
# backend has been running it for a moment
sub start_case
{
	my ($psql, $pid, $name, $after) = @_;
	$psql->{stderr} = '';
	$psql->{stdin} .= "SELECT talaria.transform_row('$name', '{}');\n$after";
	$psql->{run}->pump_nb();
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'active' AND query LIKE '%$name%'")
	  or die "$name never started";
	sleep(0.3);
}

# pg_cancel_backend from another session
for my $name (qw(find_backtrack gmatch_backtrack balance_quadratic sort_numbers))
{
	start_case($session, $session_pid, $name, "\\echo cancel-done\n");
	my $t0 = time();
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($session_pid)");
	$session->{run}->pump()
	  until $session->{stdout} =~ /cancel-done/ || time() - $t0 > $give_up;
	my $secs = time() - $t0;
	like($session->{stderr}, qr/canceling statement due to user request/,
		"$name: pg_cancel_backend stops it");
	ok($secs < 2, "$name: cancel took effect within 2 s (took " . sprintf('%.2f', $secs) . ' s)');
	if ($session->{stdout} !~ /cancel-done/)
	{
		kill 'KILL', $session_pid;
		recover();
	}
	$session->{stdout} = '';
	still_usable($name, 'pg_cancel_backend');
}

# pg_terminate_backend ends the backend (and only it)
{
	my $victim = $node->background_psql('postgres', on_error_stop => 0, timeout => $give_up);
	my $pid = $victim->query_safe('SELECT pg_backend_pid()');
	start_case($victim, $pid, 'find_backtrack', '');
	my $t0 = time();
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $gone = 0;
	while (time() - $t0 < $give_up)
	{
		$gone = $node->safe_psql('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid") eq 't';
		last if $gone;
		sleep(0.1);
	}
	my $secs = time() - $t0;
	ok($gone && $secs < 2, 'pg_terminate_backend ends the backend within 2 s (took '
		  . sprintf('%.2f', $secs) . ' s)');
	eval { $victim->quit };
	if (!$gone)
	{
		kill 'KILL', $pid;
		recover();
	}
}
still_usable('find_backtrack', 'pg_terminate_backend of another backend');

$session->quit;

# no backend died of a signal, the postmaster never restarted the cluster
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no backend died of a signal');
unlike($log, qr/all server processes terminated; reinitializing|restart_after_crash is off/, 'no crash restart');

$node->stop(undef, fail_ok => 1) or fail("the server was down at the end");
done_testing();
