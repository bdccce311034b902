# Scale-out on PostgreSQL's own machinery, with four clusters: a
# coordinator whose time table has partitions on two remote servers
# (postgres_fdw), and a logical-replication subscriber.
#  - a pipeline COPYs rows across a local day and remote days made on
#    demand, in abort and dead_letter mode, with a poisoned row: nothing of
#    a failed statement stays on a remote server;
#  - maintenance premakes remote partitions and retires them with their
#    remote tables (or keeps the remote data, as set); a rolled back
#    retention leaves the remote tables;
#  - a subscriber whose copy of a time table has no partitions keeps up
#    across new days through talaria.partition_log (and stalls without it);
#  - tables Citus manages are refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $coord = PostgreSQL::Test::Cluster->new('coord');
$coord->init(allows_streaming => 'logical');
$coord->start;
my @remote;
foreach my $i (1, 2)
{
	my $r = PostgreSQL::Test::Cluster->new("remote$i");
	$r->init;
	$r->start;
	$r->safe_psql('postgres', 'CREATE SCHEMA parts');
	push @remote, $r;
}
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;

$coord->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	CREATE EXTENSION postgres_fdw;
});
foreach my $i (1, 2)
{
	my $r = $remote[ $i - 1 ];
	my ($host, $port) = ($r->host, $r->port);
	$coord->safe_psql('postgres', qq{
		CREATE SERVER r$i FOREIGN DATA WRAPPER postgres_fdw
		    OPTIONS (host '$host', port '$port', dbname 'postgres', batch_size '50');
		CREATE USER MAPPING FOR postgres SERVER r$i;
	});
}

# the remote row count of each remote's tables, "table:n" sorted
sub remote_rows
{
	my ($r) = @_;
	return $r->safe_psql('postgres', q{
		SELECT coalesce(string_agg(format('%s:%s', relname,
		         (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM parts.%I', relname),
		                                               false, true, '')))[1]::text), ',' ORDER BY relname), '')
		  FROM pg_class WHERE relnamespace = 'parts'::regnamespace AND relkind = 'r'});
}

# the number of rows on both remote servers
sub remote_total
{
	my $n = 0;
	$n += $_ foreach (map { /:(\d+)/g } (remote_rows($remote[0]), remote_rows($remote[1])));
	return $n;
}

# a day made locally before the placement, then new days go remote
$coord->safe_psql('postgres', q{
	CREATE TABLE events (ts timestamptz NOT NULL, v int, note text) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('events', 'ts', '1 day', premake => 0);
	CREATE TABLE events_p20010203 PARTITION OF events
	    FOR VALUES FROM ('2001-02-03 00:00+00') TO ('2001-02-04 00:00+00');
	SELECT talaria.set_remote_placement('events', ARRAY['r1', 'r2'], 'parts');
	CREATE TABLE raw (ts timestamptz, v int);
	SELECT talaria.register_lua('mark',
	    'function main(r) if r.v < 0 then error("poisoned row") end r.note = "v" .. r.v return r end');
	SELECT talaria.create_pipeline('raw', 'events', 'mark');
});

my $rows = join('', map { sprintf("2001-02-0%d 0%d:00:00+00\t%d\n", 3 + $_ % 3, $_ % 10, $_) } 1 .. 60);
$coord->safe_psql('postgres', "COPY raw FROM STDIN;\n${rows}\\.\n");
is($coord->safe_psql('postgres',
		q{SELECT string_agg(format('%s %s %s', tableoid::regclass, c.relkind, n), ', ' ORDER BY tableoid::regclass::text)
		    FROM (SELECT tableoid, count(*) AS n FROM events GROUP BY 1) e
		    JOIN pg_class c ON c.oid = e.tableoid}),
	'events_p20010203 r 20, events_p20010204 f 20, events_p20010205 f 20',
	'COPY: 60 rows over a local day and two remote days made on demand');
my ($r1, $r2) = (remote_rows($remote[0]), remote_rows($remote[1]));
is(join(' | ', sort ($r1, $r2)), 'events_p20010204:20 | events_p20010205:20',
	'the remote days are on the two servers, round robin');
is($coord->safe_psql('postgres', q{SELECT string_agg(DISTINCT note, ',') FROM events WHERE v = 7}),
	'v7', 'the transform ran on the rows stored remotely');

# abort mode: a poisoned row fails the statement; nothing stays remotely
my $bad = "2001-02-04 10:00:00+00\t100\n2001-02-05 10:00:00+00\t101\n2001-02-06 10:00:00+00\t102\n"
  . "2001-02-04 11:00:00+00\t-1\n";
my ($ret, $out, $err) = $coord->psql('postgres', "COPY raw FROM STDIN;\n${bad}\\.\n");
like($err, qr/poisoned row/, 'abort mode: the poisoned row fails the COPY');
is(remote_total(), 40,
	'abort mode: no row of the failed COPY stays on either remote server (40 before)');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM events}), '60', 'nor locally');

# dead_letter mode: the poisoned row becomes a dead letter, the rest lands
$coord->safe_psql('postgres', q{
	SELECT talaria.drop_pipeline('raw');
	SELECT talaria.create_pipeline('raw', 'events', 'mark', on_error => 'dead_letter');
});
$coord->safe_psql('postgres', "COPY raw FROM STDIN;\n${bad}\\.\n");
is($coord->safe_psql('postgres',
		q{SELECT string_agg(v::text, ',' ORDER BY v) FROM events WHERE v >= 100}),
	'100,101,102', 'dead_letter mode: the good rows are stored (one on a new remote day)');
is($coord->safe_psql('postgres', q{SELECT "row"->>'v' || ' ' || error FROM talaria.dead_letters}),
	'-1 mark:1: poisoned row', 'and the poisoned row is a dead letter');
is($coord->safe_psql('postgres',
		q{SELECT count(*) FROM pg_class WHERE relname = 'events_p20010206' AND relkind = 'f'}),
	'1', 'the new day is a foreign partition');

# a rolled back transaction leaves nothing remotely either
$coord->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO raw VALUES ('2001-02-04 12:00+00', 200), ('2001-02-05 12:00+00', 201);
	ROLLBACK;
});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM events WHERE v >= 200}), '0',
	'a rolled back INSERT leaves nothing on the remote servers');

# the partition log records what was made (and what premake makes)
is($coord->safe_psql('postgres',
		q{SELECT string_agg(lower::date::text, ',' ORDER BY lower) FROM talaria.partition_log WHERE target_name = 'events' AND lower < '2002-01-01'}),
	'2001-02-04,2001-02-05,2001-02-06', 'the partition log has the days talaria made');

# maintenance premakes remote partitions
$coord->safe_psql('postgres', q{
	SELECT talaria.create_time_table('events', 'ts', '1 day', premake => 2, retention => '30 days');
});
is($coord->safe_psql('postgres', q{
		SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'events'::regclass AND c.relkind = 'f'
		   AND c.relname >= 'events_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')}),
	'2', 'premake made the next two days as foreign partitions (today was made locally before the placement)');
is((() = (remote_rows($remote[0]) . ',' . remote_rows($remote[1])) =~ /events_p20[2-9]\d{5}:0/g), 2,
	'their remote tables exist, empty');

# retention: a rolled back run keeps everything; a committed one drops the
# old foreign partitions with their remote tables (the local day too)
$coord->safe_psql('postgres', q{
	BEGIN;
	SELECT talaria.run_maintenance('events');
	ROLLBACK;
});
like(join(',', sort split(/,/, remote_rows($remote[0]) . ',' . remote_rows($remote[1]))),
	qr/events_p20010204:\d+,events_p20010205:\d+/, 'a rolled back retention leaves the remote tables');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM events WHERE ts < '2002-01-01'}), '63',
	'and the rows');
$coord->safe_psql('postgres', q{SELECT talaria.run_maintenance('events')});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM events WHERE ts < '2002-01-01'}), '0',
	'retention retired the old days');
unlike(remote_rows($remote[0]) . remote_rows($remote[1]), qr/events_p2001/,
	'and dropped their remote tables');
is($coord->safe_psql('postgres',
		q{SELECT count(*) FROM talaria.partition_log WHERE target_name = 'events' AND lower < '2002-01-01'}),
	'0', 'and their partition log rows');

# remote_retention 'keep': the remote table stays
$coord->safe_psql('postgres', q{
	SELECT talaria.set_remote_placement('events', ARRAY['r1', 'r2'], 'parts', 'keep');
	INSERT INTO raw VALUES ('2001-03-01 00:00+00', 300);
	SELECT talaria.run_maintenance('events');
});
like(remote_rows($remote[0]) . remote_rows($remote[1]), qr/events_p20010301:1/,
	"remote_retention 'keep': the expired day's remote table and rows stay on the server");
is($coord->safe_psql('postgres', q{SELECT to_regclass('events_p20010301') IS NULL}), 't',
	'while the foreign partition is gone');

# a non-superuser owner reaches the remote only with a password
$coord->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN SERVER r1 TO alice;
	GRANT CREATE ON SCHEMA public TO alice;
	CREATE USER MAPPING FOR alice SERVER r1 OPTIONS (user 'postgres');
	SET ROLE alice;
	CREATE TABLE a_ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('a_ev', 'ts', '1 day', premake => 0);
	SELECT talaria.set_remote_placement('a_ev', ARRAY['r1'], 'parts');
});
($ret, $out, $err) = $coord->psql('postgres',
	q{SET ROLE alice; SELECT talaria.create_time_table('a_ev', 'ts', '1 day', premake => 1)});
like($err, qr/password is required to reach foreign server "r1"/,
	'a non-superuser without a password in the user mapping cannot borrow the trust of the remote');
unlike(remote_rows($remote[0]), qr/a_ev/, 'and nothing was made remotely');
($ret, $out, $err) = $coord->psql('postgres', q{SET ROLE alice; SELECT talaria._remote_exec('r1', 'SELECT 1', false)});
like($err, qr/talaria._remote_exec is internal/, '_remote_exec is refused outside talaria');

# a remote statement that waits (the remote holds the partition's name in
# an open transaction) ends with the statement's timeout: the remote gets a
# cancel, the connection is closed, the coordinator's session goes on
my $tomorrow = $coord->safe_psql('postgres',
	q{SELECT to_char((now() AT TIME ZONE 'UTC') + interval '1 day', 'YYYYMMDD')});
$coord->safe_psql('postgres', q{
	CREATE TABLE canc (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('canc', 'ts', '1 day', premake => 0);
	SELECT talaria.set_remote_placement('canc', ARRAY['r1'], 'parts');
});
my $holder = $remote[0]->background_psql('postgres');
$holder->query_safe("BEGIN; CREATE TABLE parts.canc_p$tomorrow (x int)");
($ret, $out, $err) = $coord->psql('postgres',
	q{SET statement_timeout = '2s'; SELECT talaria.create_time_table('canc', 'ts', '1 day', premake => 1)});
like($err, qr/canceling statement due to statement timeout/,
	'a remote statement that waits is cancelled with the statement');
ok($remote[0]->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'talaria_transform'}),
	'and its remote session is gone');
$holder->query_safe('ROLLBACK');
$holder->quit;
is($coord->safe_psql('postgres', q{SELECT talaria.create_time_table('canc', 'ts', '1 day', premake => 1);
	SELECT count(*) FROM pg_inherits WHERE inhparent = 'canc'::regclass}),
	"\n2", 'the session goes on, and the next try makes the remote partition');

# ---------------------------------------------------------------------
# logical replication: the subscriber's time table has no partitions; the
# publisher makes new days on demand
# ---------------------------------------------------------------------
$coord->safe_psql('postgres', q{
	CREATE TABLE metrics (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('metrics', 'ts', '1 day', premake => 0, retention => '30 days');
	CREATE TABLE mraw (ts timestamptz, v int);
	SELECT talaria.register_lua('pass', 'function main(r) return r end');
	SELECT talaria.create_pipeline('mraw', 'metrics', 'pass');
	INSERT INTO mraw VALUES ('2001-05-01 01:00+00', 1);
	CREATE PUBLICATION pub FOR TABLE metrics, talaria.partition_log
	    WITH (publish_via_partition_root = true);
});
$sub->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	CREATE TABLE metrics (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('metrics', 'ts', '1 day', premake => 0, retention => '30 days');
});
my $connstr = $coord->connstr('postgres');
$sub->safe_psql('postgres', 'CREATE SUBSCRIPTION s CONNECTION $$' . $connstr . '$$ PUBLICATION pub');
$sub->wait_for_subscription_sync($coord, 's');
ok($sub->poll_query_until('postgres', q{SELECT count(*) = 1 FROM metrics}),
	'the initial sync copied the first day (its partition made from the log)');

# new days on the publisher, one statement each and many in one COPY
$coord->safe_psql('postgres', q{INSERT INTO mraw VALUES ('2001-05-02 01:00+00', 2)});
my $mrows = join('', map { sprintf("2001-05-%02d 12:00:00+00\t%d\n", 3 + $_, 10 + $_) } 0 .. 9);
$coord->safe_psql('postgres', "COPY mraw FROM STDIN;\n${mrows}\\.\n");
$coord->wait_for_catchup('s');
is($sub->safe_psql('postgres', q{SELECT count(*), count(DISTINCT tableoid) FROM metrics}), '12|12',
	'the subscriber kept up across 11 new days: every row, each in its own partition');
is($sub->safe_psql('postgres',
		q{SELECT coalesce(sum(apply_error_count), 0) FROM pg_stat_subscription_stats}),
	'0', 'without one apply error');

# retention on both sides
$coord->safe_psql('postgres', q{SELECT talaria.run_maintenance('metrics')});
$sub->safe_psql('postgres', q{SELECT talaria.run_maintenance('metrics')});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'metrics'::regclass AND inhrelid::regclass::text < 'metrics_p2002'}),
	'0', 'retention on the publisher');
is($sub->safe_psql('postgres', q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'metrics'::regclass AND inhrelid::regclass::text < 'metrics_p2002'}),
	'0', 'and on the subscriber');
$coord->wait_for_catchup('s');
$coord->safe_psql('postgres', q{INSERT INTO mraw VALUES ('2001-06-01 01:00+00', 99)});
$coord->wait_for_catchup('s');
is($sub->safe_psql('postgres', q{SELECT string_agg(v::text, ',') FROM metrics}), '99',
	'and it keeps replicating after retention');

# without the partition log in the publication, the subscriber stalls (the
# issue's finding, kept as the control)
$coord->safe_psql('postgres', q{ALTER PUBLICATION pub DROP TABLE talaria.partition_log});
$coord->safe_psql('postgres', q{INSERT INTO mraw VALUES ('2001-06-02 01:00+00', 100)});
ok($sub->poll_query_until('postgres',
		q{SELECT coalesce(sum(apply_error_count), 0) > 0 FROM pg_stat_subscription_stats}),
	'control: without talaria.partition_log the subscriber stops at the new day');
like(slurp_file($sub->logfile), qr/no partition of relation "metrics" found for row/,
	'with the error the issue describes');
$sub->safe_psql('postgres', q{ALTER SUBSCRIPTION s DISABLE});

# ---------------------------------------------------------------------
# Citus: its catalogs (as Citus 12 defines them) name a table: talaria
# refuses it everywhere
# ---------------------------------------------------------------------
$coord->safe_psql('postgres', q{
	SET allow_system_table_mods = on;
	CREATE TABLE pg_catalog.pg_dist_partition (logicalrelid regclass NOT NULL, partmethod "char" NOT NULL);
	CREATE TABLE pg_catalog.pg_dist_shard (logicalrelid regclass NOT NULL, shardid bigint NOT NULL);
	CREATE TABLE dist (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	CREATE TABLE dist_102008 (ts timestamptz NOT NULL, v int);
	CREATE TABLE draw (ts timestamptz, v int);
	INSERT INTO pg_catalog.pg_dist_partition VALUES ('dist', 'h');
	INSERT INTO pg_catalog.pg_dist_shard VALUES ('dist', 102008);
});
($ret, $out, $err) = $coord->psql('postgres', q{SELECT talaria.create_time_table('dist', 'ts', '1 day')});
like($err, qr/time table public.dist is managed by Citus/, 'Citus: a distributed table is no time table');
($ret, $out, $err) = $coord->psql('postgres', q{SELECT talaria.create_pipeline('draw', 'dist', 'pass')});
like($err, qr/pipeline target public.dist is managed by Citus/, 'nor a pipeline target');
($ret, $out, $err) = $coord->psql('postgres', q{
	CREATE TRIGGER t BEFORE INSERT ON dist_102008 FOR EACH ROW EXECUTE FUNCTION talaria.ingest('pass', 'events');
	INSERT INTO dist_102008 VALUES (now(), 1)});
like($err, qr/pipeline source public.dist_102008 is managed by Citus/,
	'a hand-made trigger on a shard refuses its rows');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM dist_102008}), '0', 'and stores none');
$coord->safe_psql('postgres', q{INSERT INTO mraw VALUES ('2001-06-03 01:00+00', 101)});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM metrics WHERE v = 101}), '1',
	'local tables work as before with Citus present');

$_->stop foreach ($coord, @remote, $sub);
done_testing();
