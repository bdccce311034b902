# Ingest pipelines and crashes: a server killed (immediate stop) in the middle
# of a COPY through a pipeline comes back with none of that COPY's rows (no
# half batch), and for every statement that completed, rows in = rows stored
# + dead letters.
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ingest_crash');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('crash_t', $$
		function main(row)
		  if row.id % 1000 == 7 then error("bad row " .. row.id) end
		  return { ts = row.ts, id = row.id, batch = row.batch }
		end$$);
	CREATE TABLE raw (batch int, id bigint, ts timestamptz);
	CREATE TABLE events (ts timestamptz NOT NULL, batch int, id bigint)
		PARTITION BY RANGE (ts);
	CREATE INDEX ON events (id);
	SELECT talaria.create_time_table('events', 'ts', '1 day', premake => 0);
	SELECT talaria.create_pipeline('raw', 'events', 'crash_t', 'dead_letter');
});

# completed statements: every row is stored or a dead letter
my $copy = q{COPY raw FROM PROGRAM 'seq 1 %d | awk ''{ print %d "\t" $1 "\t2001-01-0" ($1 %% 7 + 1) " 00:00+00" }'''};
# (a fresh session's first COPY goes through the pipeline's row trigger;
# once the library is loaded, COPY feeds the pipeline directly: both paths)
my $fast = q{LOAD 'talaria_transform'; };
$node->safe_psql('postgres', sprintf($copy, 20000, 1));
$node->safe_psql('postgres', $fast . sprintf($copy, 5000, 2));
my $counts = $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM events WHERE batch = 1) || ' ' ||
	       (SELECT count(*) FROM talaria.dead_letters WHERE ("row"->>'batch')::int = 1) || ' ' ||
	       (SELECT count(*) FROM events WHERE batch = 2) || ' ' ||
	       (SELECT count(*) FROM talaria.dead_letters WHERE ("row"->>'batch')::int = 2)});
is($counts, '19980 20 4995 5', 'rows in = rows stored + dead letters');

# a long COPY (fed directly), killed in the middle
my ($in, $out, $err) = ('', '', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', $fast . sprintf($copy, 3000000, 3) ],
	\$in, \$out, \$err);
my $progress = 0;
# (rows the trigger consumes are not counted in tuples_processed: use bytes)
for (my $i = 0; $i < 600 && $progress < 1_000_000; $i++)
{
	$progress = $node->safe_psql('postgres',
		q{SELECT coalesce(max(bytes_processed), 0) FROM pg_stat_progress_copy});
	usleep(50_000) if $progress < 1_000_000;
}
cmp_ok($progress, '>=', 1_000_000, 'the COPY is under way');
$node->stop('immediate');
$h->finish;
$node->start;

is($node->safe_psql('postgres', q{SELECT count(*) FROM events WHERE batch = 3}),
	'0', 'none of the interrupted COPY is stored');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM talaria.dead_letters WHERE ("row"->>'batch')::int = 3}),
	'0', 'nor any of its dead letters');
is($node->safe_psql('postgres', q{SELECT count(*) FROM events}),
	'24975', 'the completed COPYs are intact');
is($node->safe_psql('postgres', q{SELECT count(*) FROM raw}), '0',
	'the source keeps nothing');

# and the pipeline works after recovery
$node->safe_psql('postgres', sprintf($copy, 1000, 4));
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM events WHERE batch = 4) +
	       (SELECT count(*) FROM talaria.dead_letters WHERE ("row"->>'batch')::int = 4)}),
	'1000', 'ingest after recovery: rows in = stored + dead letters');

$node->stop;
done_testing();
