# make://identifier is unique across backends and sortable by time: several
# sessions make identifiers at the same moment, through transform_row and
# through a pipeline's computed column, into one table with a primary key.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('identifier');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	CREATE TABLE ids (id text PRIMARY KEY, pid int, n int);
	CREATE TABLE raw (ts timestamptz, n int);
	CREATE TABLE ev (ts timestamptz NOT NULL, n int, id text UNIQUE) ;
	SELECT talaria.register_lua('pass', 'function main(r) return r end');
	SELECT talaria.create_pipeline('raw', 'ev', 'pass');
	SELECT talaria.add_computed_column('ev', 'id', 'make://identifier');
});

my $sessions = 4;
my $rows = 20000;
my @runs;
foreach my $s (1 .. $sessions)
{
	my ($out, $err) = ('', '');
	my $sql = qq{
		SELECT pg_sleep(0.5 - extract(epoch FROM clock_timestamp())::numeric % 0.5);
		INSERT INTO ids SELECT talaria.transform_row('make://identifier', '{}') #>> '{}', pg_backend_pid(), n
		  FROM generate_series(1, $rows) n;
		INSERT INTO raw SELECT now(), n FROM generate_series(1, $rows) n;
	};
	push @runs, [ IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err), \$err ];
}
foreach my $r (@runs)
{
	$r->[0]->finish;
	is(${ $r->[1] }, '', 'a session made its identifiers without a duplicate key');
}

is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT pid) FROM ids'),
	($sessions * $rows) . "|$sessions", 'transform_row: every identifier unique, from every backend');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT id) FROM ev'), $sessions * $rows,
	'computed column: every identifier unique');
# the last 8 hex digits are the backend's pid; within a backend the
# identifiers increase in the order they were made
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT id, lag(id) OVER (PARTITION BY pid ORDER BY n) AS prev, pid FROM ids) s
	 WHERE prev >= id OR ('x' || substr(id, 25, 8))::bit(32)::int <> pid}),
	'0', 'each backend\'s identifiers carry its pid and increase');
# across backends they sort by time: the time in the first 16 hex digits
# is within the statement that made them
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ids
	 WHERE abs(('x' || substr(id, 1, 16))::bit(64)::bigint / 1e9 - extract(epoch FROM now())) > 600}),
	'0', 'the identifiers start with the current time');

$node->stop;
done_testing();
