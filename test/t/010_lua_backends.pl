# Lua transforms across backends: a replace is seen by another backend after
# commit and not after rollback; pg_cancel_backend and a backend's own
# statement_timeout stop a spinning script inside JIT-compiled code; the
# backend is usable afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lua_backends');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');
$node->safe_psql('postgres',
	q{SELECT talaria.register_lua('v', 'function main(row) return "v1" end')});

my $a = $node->background_psql('postgres', on_error_stop => 0);
my $b = $node->background_psql('postgres', on_error_stop => 0);

# runs a query that must fail; returns its error text
sub error_of
{
	my ($session, $sql) = @_;
	$session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return $err;
}

# B loads and caches v1
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v1"', 'B runs v1');

# A replaces inside a transaction: B keeps v1 until A commits
$a->query_safe('BEGIN');
$a->query_safe(q{SELECT talaria.register_lua('v', 'function main(row) return "v2" end')});
is($a->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v2"', 'A sees its own uncommitted v2');
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v1"', 'B still runs v1 before commit');
$a->query_safe('COMMIT');
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v2"', 'B runs v2 after commit');

# a rolled-back replace never reaches B, and A goes back to v2
$a->query_safe('BEGIN');
$a->query_safe(q{SELECT talaria.register_lua('v', 'function main(row) return "v3" end')});
$a->query_safe('ROLLBACK');
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v2"', 'B ignores a rolled-back v3');
is($a->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v2"', 'A is back to v2 after rollback');

# a drop committed in A: B gets a clear error, then a new registration works
$a->query_safe(q{SELECT talaria.drop_transform('v')});
like(error_of($b, q{SELECT talaria.transform_row('v', '{}')}),
	qr/transform "v" does not exist/, 'B sees the drop');
$a->query_safe(q{SELECT talaria.register_lua('v', 'function main(row) return "v4" end')});
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v4"', 'B runs the re-registered v4');

# pg_cancel_backend stops a spinning (JIT-compiled) script in B
$node->safe_psql('postgres', q{SELECT talaria.register_lua('spin',
	'local function f(x) return x + 1 end function main(row) local s = 0 while true do s = f(s) end end')});
my $b_pid = $b->query_safe('SELECT pg_backend_pid()');
$b->{stdin} .= "SELECT talaria.transform_row('spin', '{}');\n";
$b->{run}->pump_nb();
# wait until B is running the transform, then cancel it
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $b_pid AND state = 'active' AND query LIKE '%spin%'")
  or die "B never started spinning";
sleep(1);	# let the loop get traced by the JIT
my $t0 = time();
$a->query_safe("SELECT pg_cancel_backend($b_pid)");
$b->{stdin} .= "\\echo cancel-done\n";
$b->{run}->pump() until $b->{stdout} =~ /cancel-done/ || $b->{timeout}->is_expired;
like($b->{stderr}, qr/canceling statement due to user request/, 'pg_cancel_backend stops a spinning script');
ok(time() - $t0 < 10, 'the cancel took effect promptly');
$b->{stdout} = '';
$b->{stderr} = '';
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v4"', 'B is usable after the cancel');

# the same with B's own statement_timeout, and with talaria.transform_timeout
$b->query_safe(q{SET statement_timeout = '300ms'});
like(error_of($b, q{SELECT talaria.transform_row('spin', '{}')}),
	qr/canceling statement due to statement timeout/, 'statement_timeout stops it');
$b->query_safe('RESET statement_timeout');
$b->query_safe(q{SET talaria.transform_timeout = '300ms'});
like(error_of($b, q{SELECT talaria.transform_row('spin', '{}')}),
	qr/exceeded talaria.transform_timeout/, 'transform_timeout stops it');
is($b->query_safe(q{SELECT talaria.transform_row('v', '{}')}), '"v4"', 'B is usable after the timeouts');

# the server log shows no crash
$a->quit;
$b->quit;
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');
done_testing();
