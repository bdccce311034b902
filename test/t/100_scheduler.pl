# The maintenance scheduler: with talaria_transform preloaded and
# talaria.scheduler_databases set, a background worker runs maintenance on
# its interval without anyone calling run_maintenance: it drops an expired
# partition and records the run; one broken time table does not stop
# another's retention.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('scheduler');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'talaria_transform'
talaria.scheduler_databases = ''
talaria.scheduler_interval = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	CREATE ROLE regress_sched_owner NOLOGIN;
	GRANT CREATE ON SCHEMA public TO regress_sched_owner;  -- partitions are made as the owner
	CREATE TABLE good (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	ALTER TABLE good OWNER TO regress_sched_owner;
	CREATE TABLE bad (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('good', 'ts', '1 day', '1 day', 0);
	SELECT talaria.create_time_table('bad', 'ts', '1 day', '1 day', 1);
	CREATE TABLE good_p20010203 PARTITION OF good
	    FOR VALUES FROM ('2001-02-03 00:00+00') TO ('2001-02-04 00:00+00');
	ALTER TABLE good_p20010203 OWNER TO regress_sched_owner;
	-- renamed: its premade partitions keep the old name, the next premake overlaps them
	ALTER TABLE bad RENAME TO bad2;
});

# idle while no database is configured
sleep(3);
is($node->safe_psql('postgres', 'SELECT count(*) FROM talaria.maintenance_runs'), '0',
	'idle while talaria.scheduler_databases is empty');

# turned on by a reload
$node->append_conf('postgresql.conf', "talaria.scheduler_databases = 'postgres'");
$node->reload;
ok($node->poll_query_until('postgres',
		q{SELECT to_regclass('good_p20010203') IS NULL
		     AND EXISTS (SELECT 1 FROM talaria.maintenance_runs WHERE target = 'good'::regclass AND partitions_retired = 1)}),
	'the scheduler dropped the expired partition and recorded it');
ok($node->poll_query_until('postgres',
		q{SELECT EXISTS (SELECT 1 FROM talaria.maintenance_runs WHERE target = 'bad2'::regclass AND sqlstate = '42P17')}),
	'the broken time table is recorded with its error');
is($node->safe_psql('postgres',
		q{SELECT DISTINCT run_by FROM talaria.maintenance_runs WHERE target = 'good'::regclass}),
	'postgres', 'runs record who ran them (the bootstrap superuser; work done as each owner)');
# it goes on running on its interval
my $n = $node->safe_psql('postgres', q{SELECT count(*) FROM talaria.maintenance_runs WHERE target = 'good'::regclass});
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) > $n FROM talaria.maintenance_runs WHERE target = 'good'::regclass}),
	'and again on its interval');
my $log = slurp_file($node->logfile);
like($log, qr/talaria scheduler: database "postgres": \d+ time tables maintained, \d+ failed/,
	'it logs what it did');
unlike($log, qr/terminated by signal/, 'no backend crashed');

$node->stop;
done_testing();
