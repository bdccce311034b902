# Helpers for the Lua containment tests (055, 056, 060): run SQL in its own
# psql session under a wall-clock bound, measure every statement, and end a
# backend that outlives the bound (the old code's unstoppable loops) so
# that a failing test still ends.
package LuaBounded;

use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time sleep);
use Test::More;

# Runs $sql (psql's \timing on is prepended) as application $app.  Returns
# a hash: out, err, secs (wall), times (ms of each statement), timed_out,
# killed (the backend had to be ended with SIGKILL).
sub run_bounded
{
	my ($node, $sql, $limit, $app) = @_;
	my ($out, $err) = ('', '');
	my $input = "\\timing on\n$sql\n";
	local $ENV{PGAPPNAME} = $app;
	my $t0 = time;
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d', $node->connstr('postgres') ],
		'<', \$input, '>', \$out, '2>', \$err,
		IPC::Run::timeout($limit));
	my $timed_out = 0;
	eval { $h->finish; 1 } or do { $timed_out = 1; eval { $h->kill_kill }; };
	my %r = (out => $out, err => $err, secs => time - $t0,
		timed_out => $timed_out, killed => 0);
	$r{times} = [ map { /^Time: ([\d.]+) ms/ ? $1 : () } split /\n/, $out ];
	$r{killed} = end_backend($node, $app) if $timed_out;
	return \%r;
}

# Ends the backends of application $app: SIGTERM, then SIGKILL (a crash
# restart of the cluster) if they ignore it.  Returns 1 if SIGKILL was needed.
sub end_backend
{
	my ($node, $app) = @_;
	my $q = "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' AND pid <> pg_backend_pid()";
	my @pids = split /\n/, $node->safe_psql('postgres', $q);
	return 0 if !@pids;
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($_)") for @pids;
	for (1 .. 30)
	{
		return 0 if $node->safe_psql('postgres', $q) eq '';
		sleep(0.1);
	}
	@pids = split /\n/, $node->safe_psql('postgres', $q);
	diag("backends @pids ($app) ignore SIGTERM: SIGKILL");
	kill 'KILL', @pids;
	$node->poll_query_until('postgres', 'SELECT true') or die "the server did not come back";
	return 1;
}

# Lines of the server log from byte $from on that report a dead backend.
sub crashes_since
{
	my ($node, $from) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $from);
	return grep { /terminated by signal|was terminated by|server process .* exited with exit code/ } split /\n/, $log;
}

1;
