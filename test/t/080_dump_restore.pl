# pg_dump / pg_restore carry everything talaria knows: transforms of both
# kinds (owners and grants), time tables, computed columns, dead letters
# and pipelines.  A database in use is dumped (custom and plain formats,
# and data-only), restored into a new cluster, and ingests rows into
# existing and new days at once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = q{talaria.native_library_path = '$libdir:$libdir/talaria_test_plugins'};
my $src = PostgreSQL::Test::Cluster->new('dump_src');
$src->init;
$src->append_conf('postgresql.conf', $conf);
$src->start;
my $dst = PostgreSQL::Test::Cluster->new('dump_dst');
$dst->init;
$dst->append_conf('postgresql.conf', $conf);
$dst->start;

my $setup_roles = q{
	CREATE ROLE regress_dump_alice LOGIN;
	CREATE ROLE regress_dump_bob LOGIN;
};
$src->safe_psql('postgres', $setup_roles);
$dst->safe_psql('postgres', $setup_roles);

$src->safe_psql('postgres', 'CREATE DATABASE app OWNER regress_dump_alice');
$src->safe_psql('app', q{
	CREATE EXTENSION talaria_transform;
	GRANT USAGE ON SCHEMA talaria TO regress_dump_alice, regress_dump_bob;
	SELECT talaria.register_native('ntrim', '$libdir/talaria_test_plugins/trim.so', 'trim');
	SELECT talaria.grant_transform('ntrim', 'regress_dump_alice');
	SET ROLE regress_dump_alice;
	SELECT talaria.register_lua('check', $$
	  function main(r)
	    if r.v < 0 then error("negative v") end
	    return r
	  end$$);
	SELECT talaria.register_lua('seven', 'function main(r) return 7 end');
	SELECT talaria.grant_transform('seven', 'regress_dump_bob');
	CREATE TABLE ev (ts timestamptz NOT NULL, v int, n int) PARTITION BY RANGE (ts);
	CREATE TABLE raw (ts timestamptz, v int);
	SELECT talaria.create_time_table('ev', 'ts', '1 day', NULL, 0);
	SELECT talaria.add_computed_column('ev', 'n', 'seven', on_error => 'dead_letter', rounding => 'truncate');
	SELECT talaria.add_computed_column('ev', 'id', 'make://identifier', type => 'string', on_error => 'null');
	SELECT talaria.create_pipeline('raw', 'ev', 'check', on_error => 'dead_letter');
	INSERT INTO raw VALUES ('2001-02-03 04:05:06+00', 1), ('2001-02-03 05:05:06+00', -1),
	                       ('2001-02-04 04:05:06+00', 2);
	CREATE TABLE ev2 (ts timestamptz NOT NULL, a int) PARTITION BY RANGE (ts);
	CREATE TABLE raw2 (ts timestamptz, key1 int, a int, extra int);
	SELECT talaria.create_time_table('ev2', 'ts', '1 day', NULL, 0);
	SELECT talaria.create_pipeline('raw2', 'ev2', 'ntrim', unknown_keys => 'ignore');
	INSERT INTO raw2 VALUES ('2001-02-03 04:05:06+00', 1, 2);
	RESET ROLE;
	-- a time table whose new partitions go to a foreign server
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER dump_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'nowhere');
	CREATE USER MAPPING FOR postgres SERVER dump_remote;
	CREATE TABLE ev3 (ts timestamptz NOT NULL, a int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('ev3', 'ts', '1 day', NULL, 0);
	SELECT talaria.set_remote_placement('ev3', ARRAY['dump_remote'], 'parts', 'keep');
});

my $catalog_query = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	  SELECT format('transform %s %s %s %s %s', name, kind, owner, acl, coalesce(md5(source), library || ':' || symbol)) AS x
	    FROM talaria.transforms
	  UNION ALL SELECT format('time table %s %s %s %s %s', target, time_column, partition_interval, retention, premake)
	    FROM talaria.time_tables
	  UNION ALL SELECT format('computed %s %s %s %s %s', target, column_name, transform, on_error, rounding)
	    FROM talaria.computed_columns
	  UNION ALL SELECT format('dead letter %s %s %s %s %s', transform, target, "row", error, sqlstate)
	    FROM talaria.dead_letters
	  UNION ALL SELECT format('pipeline %s %s %s %s %s', source, target, transform, on_error, unknown_keys)
	    FROM talaria.pipelines
	  UNION ALL SELECT format('placement %s %s %s %s', target, servers, remote_schema, remote_retention)
	    FROM talaria.remote_placements
	  UNION ALL SELECT format('constraint %s %s', conrelid::regclass, conname) FROM pg_constraint
	    WHERE conname = 'talaria_pipeline_source'
	  UNION ALL SELECT format('trigger %s %s', tgrelid::regclass, tgname) FROM pg_trigger
	    WHERE tgfoid = 'talaria.ingest()'::regprocedure
	  UNION ALL SELECT format('row %s %s %s', tableoid::regclass, v, n) FROM ev
	  UNION ALL SELECT format('row %s %s', tableoid::regclass, a) FROM ev2) s};
my $before = $src->safe_psql('app', $catalog_query);
like($before, qr/dead letter check .*negative v/, 'the source has a dead letter');
like($before, qr/transform make:\/\/identifier builtin .*\ntransform make:\/\/timestamp builtin /,
	'the built-ins are there once (CREATE EXTENSION makes them; the dump leaves them out)');

my $tmp = PostgreSQL::Test::Utils::tempdir;
my ($ingest_new, $check_new) = (q{
	INSERT INTO raw VALUES ('2001-02-03 06:05:06+00', 3), ('2001-03-01 04:05:06+00', 4), ('2001-03-01 04:05:06+00', -4);
	INSERT INTO raw2 VALUES ('2001-03-02 04:05:06+00', 2, 3);
}, q{SELECT string_agg(format('%s %s %s', tableoid::regclass, v, n), ',' ORDER BY v) FROM ev WHERE v >= 3});

foreach my $format ('custom', 'plain')
{
	my $file = "$tmp/app.$format";
	$src->command_ok(['pg_dump', '-d', $src->connstr('app'), "--format=$format", '-f', $file],
		"pg_dump --format=$format");
	$dst->safe_psql('postgres', 'CREATE DATABASE app OWNER regress_dump_alice');
	if ($format eq 'custom')
	{
		$dst->command_ok(['pg_restore', '-d', $dst->connstr('app'), '--exit-on-error', $file],
			'pg_restore');
	}
	else
	{
		$dst->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('app'), '-f', $file],
			'psql restores the plain dump');
	}
	is($dst->safe_psql('app', $catalog_query), $before,
		"$format: transforms, grants, time tables, computed columns, dead letters, pipelines and rows restored");

	# the restored database ingests at once: existing and new days, as alice
	$dst->safe_psql('app', "SET ROLE regress_dump_alice; $ingest_new");
	is($dst->safe_psql('app', $check_new),
		'ev_p20010203 3 7,ev_p20010301 4 7',
		"$format: rows into an existing and a new day, computed column set");
	is($dst->safe_psql('app', q{SELECT count(*) FROM talaria.dead_letters WHERE "row"->>'v' = '-4'}),
		'1', "$format: a bad row is a dead letter");
	is($dst->safe_psql('app', q{SELECT a FROM ev2 WHERE ts >= '2001-03-01'}),
		'3', "$format: the native pipeline runs after restore (trim dropped key1)");
	is($dst->safe_psql('app', q{SELECT talaria.transform_row('seven', '{}')}), '7',
		"$format: transform_row");
	is($dst->safe_psql('app', q{SELECT count(*) FILTER (WHERE id ~ '^[0-9a-f]{32}$') || '/' || count(*) FROM ev}),
		'4/4', "$format: make://identifier set every row's id, before and after restore");
	$dst->safe_psql('postgres', 'DROP DATABASE app');
}

# --data-only into a database with the schema already there
$src->command_ok(['pg_dump', '-d', $src->connstr('app'), '--schema-only', '-f', "$tmp/schema.sql"],
	'pg_dump --schema-only');
$src->command_ok(['pg_dump', '-d', $src->connstr('app'), '--data-only', '-Fc', '-f', "$tmp/data.dump"],
	'pg_dump --data-only');
$dst->safe_psql('postgres', 'CREATE DATABASE app OWNER regress_dump_alice');
$dst->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('app'), '-f', "$tmp/schema.sql"],
	'schema restored');
$dst->command_ok(['pg_restore', '-d', $dst->connstr('app'), '--exit-on-error', "$tmp/data.dump"],
	'data-only restore');
is($dst->safe_psql('app', $catalog_query), $before, 'data-only: everything restored');
$dst->safe_psql('app', "SET ROLE regress_dump_alice; $ingest_new");
is($dst->safe_psql('app', $check_new), 'ev_p20010203 3 7,ev_p20010301 4 7',
	'data-only: ingests into existing and new days');

$src->stop;
$dst->stop;
done_testing();
