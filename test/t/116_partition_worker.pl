# The partition worker (one per database, long-lived): nothing hangs when it
# is terminated in the middle of a request or when the ingester waiting for
# it is canceled; it exits when idle and is started again on demand; two
# databases have a worker each, and a database's worker never keeps DROP
# DATABASE from it; it works with and without shared_preload_libraries, and
# without a free background worker slot.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# the advisory lock of talaria._create_partition: holding it makes the
# worker wait in the middle of a request
my $lockkey = q{1952541806, 'ev'::regclass::oid::int};
my $no_worker = q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'talaria partition worker'};

sub setup_db
{
	my ($node, $db) = @_;
	$node->safe_psql($db, q{
		SET client_min_messages = warning;
		CREATE EXTENSION talaria_transform;
		SELECT talaria.register_lua('pass', 'function main(r) return r end');
		CREATE TABLE raw (ts timestamptz, v int);
		CREATE TABLE ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
		SELECT talaria.create_time_table('ev', 'ts', '1 day', premake => 0);
		SELECT talaria.create_pipeline('raw', 'ev', 'pass');
	});
}

sub set_conf
{
	my ($node, $conf) = @_;
	$node->safe_psql('postgres', "LOAD 'talaria_transform'; ALTER SYSTEM SET $conf");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
}

sub worker_pid
{
	my ($node, $db) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE backend_type = 'talaria partition worker' AND datname = '$db'});
}

my $node = PostgreSQL::Test::Cluster->new('partworker');
$node->init;
$node->start;
setup_db($node, 'postgres');
set_conf($node, q{talaria.partition_worker_idle_timeout = '60s'});

# ---------------------------------------------------------------------
# the worker stays, serves later requests, and holds the queue in shared
# memory taken at first use (not preloaded)
$node->safe_psql('postgres', q{INSERT INTO raw VALUES ('2001-01-01 12:00+00', 1)});
my $pid1 = worker_pid($node, 'postgres');
like($pid1, qr/^\d+$/, 'a partition worker serves the database');
$node->safe_psql('postgres', q{INSERT INTO raw VALUES ('2001-01-02 12:00+00', 2)});
is(worker_pid($node, 'postgres'), $pid1, 'the same worker makes the next partition');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_shmem_allocations WHERE name = 'talaria_transform partition worker'}),
	'1', 'its queue is in shared memory, taken at first use');

# ---------------------------------------------------------------------
# terminated in the middle of a request: the ingester makes the partition
# in its own transaction (waiting, visibly, for the lock the worker waited
# for), and the next request starts a new worker
set_conf($node, q{talaria.partition_worker_lock_timeout = '10min'});
my $locker = $node->background_psql('postgres');
$locker->query_safe("SELECT pg_advisory_lock($lockkey)");
my $ing = $node->background_psql('postgres', on_error_stop => 0);
$ing->query_until(qr/go/, q{\echo go
INSERT INTO raw VALUES ('2001-02-01 12:00+00', 3);
});
ok($node->poll_query_until('postgres', q{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		                WHERE backend_type = 'talaria partition worker' AND wait_event = 'advisory')}),
	'the worker waits for the lock in the middle of the request');
my $pid2 = worker_pid($node, 'postgres');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid2)");
ok($node->poll_query_until('postgres', q{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		                WHERE backend_type = 'client backend' AND wait_event = 'advisory'
		                  AND query LIKE 'INSERT INTO raw%')}),
	'terminated: the ingester makes the partition itself, waiting for the lock in the open');
$locker->query_safe("SELECT pg_advisory_unlock($lockkey)");
$ing->quit;
is($node->safe_psql('postgres',
		q{SELECT tableoid::regclass FROM ev WHERE v = 3}),
	'ev_p20010201', 'and stores the row');
like($ing->{stderr}, qr/^$/, 'without an error');
$node->safe_psql('postgres', q{INSERT INTO raw VALUES ('2001-02-02 12:00+00', 4)});
my $pid3 = worker_pid($node, 'postgres');
ok($pid3 =~ /^\d+$/ && $pid3 ne $pid2, 'the next partition starts a new worker');

# ---------------------------------------------------------------------
# the ingester canceled while it waits: the cancel is immediate, the worker
# finishes the request (the partition stays, as an ingest that rolls back
# leaves it) and the queue is not clogged
$locker->query_safe("SELECT pg_advisory_lock($lockkey)");
$ing = $node->background_psql('postgres', on_error_stop => 0);
my $ingpid = $ing->query_safe('SELECT pg_backend_pid()');
$ing->query_until(qr/go/, q{\echo go
INSERT INTO raw VALUES ('2001-03-01 12:00+00', 5);
});
ok($node->poll_query_until('postgres', q{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		                WHERE backend_type = 'talaria partition worker' AND wait_event = 'advisory')}),
	'the worker waits for the lock');
ok($node->poll_query_until('postgres', qq{SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $ingpid}),
	'the ingester waits for the worker');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($ingpid)");
ok($node->poll_query_until('postgres', qq{SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $ingpid}),
	'the cancel ends the wait while the worker still waits');
$ing->quit;
like($ing->{stderr}, qr/canceling statement due to user request/, 'the statement is canceled');
$locker->query_safe("SELECT pg_advisory_unlock($lockkey)");
ok($node->poll_query_until('postgres', q{SELECT to_regclass('ev_p20010301') IS NOT NULL}),
	'the worker finishes the request');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ev WHERE v = 5}), '0', 'no row of the canceled statement');
# more requests than the queue has slots, one after the other
$node->safe_psql('postgres', qq{INSERT INTO raw VALUES ('2001-04-01 00:00+00'::timestamptz + interval '1 day' * $_, 6)})
  for (0 .. 19);
is($node->safe_psql('postgres', q{SELECT count(*) FROM ev WHERE v = 6}), '20', 'the queue goes on');
set_conf($node, q{talaria.partition_worker_lock_timeout = '1s'});

# ---------------------------------------------------------------------
# idle: it exits, and the next new partition starts it again
my $pid4 = worker_pid($node, 'postgres');
set_conf($node, q{talaria.partition_worker_idle_timeout = '1s'});
ok($node->poll_query_until('postgres', $no_worker), 'idle, the worker exits');
set_conf($node, q{talaria.partition_worker_idle_timeout = '60s'});
$node->safe_psql('postgres', q{INSERT INTO raw VALUES ('2001-05-01 12:00+00', 7)});
is($node->safe_psql('postgres', q{SELECT tableoid::regclass FROM ev WHERE v = 7}),
	'ev_p20010501', 'the next new partition is made');
my $pid5 = worker_pid($node, 'postgres');
ok($pid5 =~ /^\d+$/ && $pid5 ne $pid4, 'by a worker started again');
set_conf($node, q{talaria.partition_worker_idle_timeout = '1s'});
ok($node->poll_query_until('postgres', $no_worker), 'and it exits again');
set_conf($node, q{talaria.partition_worker_idle_timeout = '60s'});

# ---------------------------------------------------------------------
# two databases, a worker each, at the same time; DROP DATABASE is not
# kept from the one whose worker is alive
$node->safe_psql('postgres', 'CREATE DATABASE db2');
setup_db($node, 'db2');
my $a = $node->background_psql('postgres');
my $b = $node->background_psql('db2');
$a->query_until(qr/go/, q{\echo go
INSERT INTO raw SELECT '2002-01-01 00:00+00'::timestamptz + i * interval '1 hour', i FROM generate_series(0, 24 * 30 - 1) i;
});
$b->query_until(qr/go/, q{\echo go
INSERT INTO raw SELECT '2002-01-01 00:00+00'::timestamptz + i * interval '1 hour', i FROM generate_series(0, 24 * 30 - 1) i;
});
$a->quit;
$b->quit;
for my $db ('postgres', 'db2')
{
	is($node->safe_psql($db, q{SELECT count(*), count(DISTINCT tableoid) FROM ev WHERE ts >= '2002-01-01'}),
		'720|30', "$db: every row, in 30 new days");
}
is($node->safe_psql('postgres', q{
		SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
		 WHERE backend_type = 'talaria partition worker'}),
	'db2,postgres', 'each database has its worker');
$node->safe_psql('postgres', q{LOAD 'talaria_transform'; DROP DATABASE db2});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname = 'db2'}), '0',
	'DROP DATABASE asks the worker of the database to leave');
# a session that never loaded talaria_transform: the default idle timeout
# (2s) is shorter than DROP DATABASE's wait for other sessions (5s)
set_conf($node, q{talaria.partition_worker_idle_timeout = DEFAULT});
$node->safe_psql('postgres', 'CREATE DATABASE db3');
setup_db($node, 'db3');
$node->safe_psql('db3', q{INSERT INTO raw VALUES ('2001-01-01 12:00+00', 1)});
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db3');
is($ret, 0, 'DROP DATABASE right after an ingest, from a session without the library');
# CREATE DATABASE ... TEMPLATE likewise
$node->safe_psql('postgres', 'CREATE DATABASE db4');
setup_db($node, 'db4');
$node->safe_psql('db4', q{INSERT INTO raw VALUES ('2001-01-01 12:00+00', 1)});
$node->safe_psql('postgres', q{LOAD 'talaria_transform'; CREATE DATABASE db5 TEMPLATE db4});
is($node->safe_psql('db5', q{SELECT count(*) FROM ev}), '1', 'CREATE DATABASE ... TEMPLATE a database with a worker');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no process crashed');

# ---------------------------------------------------------------------
# no background worker slot: the ingesting transaction makes the partition
$node->append_conf('postgresql.conf', 'max_worker_processes = 0');
$node->restart;
$node->safe_psql('postgres', q{INSERT INTO raw VALUES ('2001-06-01 12:00+00', -8)});
is($node->safe_psql('postgres', q{SELECT tableoid::regclass FROM ev WHERE v = -8}),
	'ev_p20010601', 'without a worker slot the ingester makes the partition');
like(slurp_file($node->logfile), qr/no background worker slot free; creating the partition of "ev" in the ingesting transaction/,
	'and says so in the log');
$node->stop;

# ---------------------------------------------------------------------
# preloaded: the queue's room is reserved at startup
my $pre = PostgreSQL::Test::Cluster->new('partworker_preload');
$pre->init;
$pre->append_conf('postgresql.conf', q{shared_preload_libraries = 'talaria_transform'});
$pre->start;
is($pre->safe_psql('postgres',
		q{SELECT count(*) FROM pg_shmem_allocations WHERE name = 'talaria_transform partition worker'}),
	'0', 'preloaded: the room is reserved, the queue made at first use');
setup_db($pre, 'postgres');
$pre->safe_psql('postgres', q{INSERT INTO raw SELECT '2001-01-01 00:00+00'::timestamptz + i * interval '1 day', i FROM generate_series(0, 9) i});
is($pre->safe_psql('postgres', q{SELECT count(*), count(DISTINCT tableoid) FROM ev}), '10|10',
	'preloaded: partitions on demand through the worker');
is($pre->safe_psql('postgres',
		q{SELECT count(*) FROM pg_shmem_allocations WHERE name = 'talaria_transform partition worker'}),
	'1', 'and the queue is there');
$pre->stop;

done_testing();
