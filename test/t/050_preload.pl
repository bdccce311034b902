# talaria_transform in shared_preload_libraries: listed before
# pg_stat_statements and pgaudit, every COPY into a pipeline source, a
# session's first one too, takes the direct path, and their ProcessUtility
# hooks, which wrap talaria's, still count and log it.  Listed after them,
# talaria's hook would run first and skip theirs: the COPY then goes through
# the pipeline's trigger instead (pgaudit's permission hook crashed the
# backend on a COPY its ProcessUtility hook had not seen), and they still
# count and log it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'talaria_transform, pg_stat_statements, pgaudit'\n"
	  . "pgaudit.log = 'write'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	CREATE EXTENSION pg_stat_statements;
	SELECT talaria.register_lua('pl_t', 'function main(row) return row end');
	CREATE TABLE pl_raw (ts timestamptz, id int);
	CREATE TABLE pl_events (ts timestamptz NOT NULL, id int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('pl_events', 'ts', '1 day', premake => 0);
	SELECT talaria.create_pipeline('pl_raw', 'pl_events', 'pl_t');
});

my $copy = q{COPY pl_raw FROM PROGRAM 'seq 1 100 | sed "s/^/2001-01-01 00:00+00\t/"'};
# a fresh session's very first statement, with the path shown
my $logstart = -s $node->logfile;
my ($ret, $out, $err) = $node->psql('postgres',
	"SET client_min_messages = debug1;\n$copy;");
like($err, qr/feeds its pipeline directly \(talaria's reader\)/,
	'preloaded: a session\'s first COPY takes the direct path');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pl_events'), '100',
	'its rows are stored');
is($node->safe_psql('postgres', q{
	SELECT calls FROM pg_stat_statements WHERE query LIKE 'COPY pl_raw FROM PROGRAM%'}),
	'1', 'pg_stat_statements, loaded after talaria, counts the COPY');
like(slurp_file($node->logfile, $logstart), qr/AUDIT: SESSION,\d+,\d+,WRITE,COPY,,,"?COPY pl_raw/,
	'pgaudit, loaded after talaria, logs the COPY');

# the other order: talaria's hook is outermost, theirs are below it
$node->safe_psql('postgres', 'SELECT pg_stat_statements_reset()');
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pg_stat_statements, pgaudit, talaria_transform'\n");
$node->restart;
$logstart = -s $node->logfile;
($ret, $out, $err) = $node->psql('postgres',
	"SET client_min_messages = debug1;\nLOAD 'talaria_transform';\n$copy;");
is($ret, 0, 'other order: the COPY succeeds');
like($err, qr/goes through its pipeline trigger: a library loaded before talaria_transform hooks ProcessUtility/,
	'other order: the COPY goes through the trigger, and says why');
like($err, qr/feeds its pipeline directly after its first row \(talaria's reader\)/,
	'other order: PostgreSQL\'s COPY, which all hooks saw, is taken over after its first row');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pl_events'), '200',
	'other order: the rows are stored');
is($node->safe_psql('postgres', q{
	SELECT calls FROM pg_stat_statements WHERE query LIKE 'COPY pl_raw FROM PROGRAM%'}),
	'1', 'other order: pg_stat_statements counts the COPY');
like(slurp_file($node->logfile, $logstart), qr/AUDIT: SESSION,\d+,\d+,WRITE,COPY,,,"?COPY pl_raw/,
	'other order: pgaudit logs it');

$node->stop;
done_testing();
