# Statistics in shared memory (talaria_transform preloaded): what one
# backend's pipelines and transform_row calls did is seen by another after
# the first one's transaction ends (committed or not); stats_reset zeroes it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('stats');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'talaria_transform'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('t', $$
	  function main(r)
	    if r.v < 0 then error("negative") end
	    if r.v == 0 then return nil end
	    return r
	  end$$);
	CREATE TABLE raw (ts timestamptz, v int);
	CREATE TABLE ev (ts timestamptz NOT NULL, v int);
	SELECT talaria.create_pipeline('raw', 'ev', 't', on_error => 'dead_letter');
});
# three sessions ingest; one rolls back (its rows count as they ran)
$node->safe_psql('postgres', q{INSERT INTO raw SELECT now(), g FROM generate_series(-1, 8) g});
$node->safe_psql('postgres', q{INSERT INTO raw SELECT now(), g FROM generate_series(1, 10) g});
$node->safe_psql('postgres', q{BEGIN; INSERT INTO raw SELECT now(), g FROM generate_series(1, 5) g; ROLLBACK});
$node->psql('postgres', q{SELECT talaria.transform_row('t', '{"v": -3}')});
is($node->safe_psql('postgres',
		q{SELECT format('%s %s %s %s %s', calls, rows_out, rows_dropped, errors, dead_letters)
		    FROM talaria.transform_stats WHERE transform = 't'}),
	'26 23 1 2 1', 'transform counters summed across backends (calls, out, dropped, errors, dead letters)');
is($node->safe_psql('postgres',
		q{SELECT format('%s %s %s %s', rows_in, rows_stored, rows_dropped, dead_letters)
		    FROM talaria.pipeline_stats WHERE source = 'raw'::regclass}),
	'25 23 1 1', 'pipeline counters summed across backends');
$node->safe_psql('postgres', 'SELECT talaria.stats_reset()');
is($node->safe_psql('postgres', q{SELECT count(*) FROM talaria.pipeline_stats}), '0', 'reset');
# after a restart the counters start again from zero
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO raw VALUES (now(), 1)});
is($node->safe_psql('postgres', q{SELECT rows_in FROM talaria.pipeline_stats}), '1', 'counting again after restart');
$node->stop;
done_testing();
