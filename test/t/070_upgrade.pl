# ALTER EXTENSION talaria_transform UPDATE from every released version, on a
# database in use: transforms, time tables, computed columns and pipelines
# made under the old version keep working, and the new version's rules hold
# afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

# every released version: each version PostgreSQL can install, through
# talaria_transform--X.sql or the update chain, other than the default
my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'talaria_transform'});
my @released = grep { $_ ne $default } split /\n/, $node->safe_psql('postgres',
	q{SELECT version FROM pg_available_extension_versions
	   WHERE name = 'talaria_transform' ORDER BY string_to_array(version, '.')::int[]});
ok(@released >= 2, 'found released versions: ' . join(', ', @released));

# what the extension defines: functions (with their bodies and grants),
# relations (with their grants), columns, constraints, triggers, policies
my $catalog = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	  SELECT format('function %s %s %s %s', p.oid::regprocedure, p.prosecdef, p.proconfig, md5(p.prosrc))
	    || coalesce(' ' || p.proacl::text, '') AS x
	    FROM pg_proc p WHERE p.pronamespace = 'talaria'::regnamespace
	  UNION ALL SELECT format('relation %s %s %s', c.relname, c.relkind, c.relacl)
	    FROM pg_class c WHERE c.relnamespace = 'talaria'::regnamespace
	  UNION ALL SELECT format('column %s.%s %s %s %s', c.relname, a.attname,
	                          format_type(a.atttypid, a.atttypmod), a.attnotnull,
	                          pg_get_expr(d.adbin, d.adrelid))
	    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	   WHERE c.relnamespace = 'talaria'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	  UNION ALL SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
	    FROM pg_constraint WHERE connamespace = 'talaria'::regnamespace
	  UNION ALL SELECT format('trigger %s %s', tgrelid::regclass, pg_get_triggerdef(oid))
	    FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'talaria'::regnamespace)
	  UNION ALL SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
	  UNION ALL SELECT format('event trigger %s %s', evtname, evtevent) FROM pg_event_trigger
	  UNION ALL SELECT format('schema acl %s', nspacl) FROM pg_namespace WHERE nspname = 'talaria'
	  UNION ALL SELECT format('config dump %s', unnest(extconfig)::regclass) FROM pg_extension
	   WHERE extname = 'talaria_transform') s};
my %updated;

foreach my $from (@released)
{
	my $db = "from_" . ($from =~ s/\./_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
		CREATE EXTENSION talaria_transform VERSION '$from';
		CREATE ROLE regress_up_$db LOGIN;
		GRANT USAGE ON SCHEMA talaria TO regress_up_$db;
		SELECT talaria.register_lua('pass', 'function main(r) return r end');
		SELECT talaria.register_lua('seven', 'function main(r) return 7 end');
		CREATE TABLE ev (ts timestamptz NOT NULL, v int, n int) PARTITION BY RANGE (ts);
		CREATE TABLE raw (ts timestamptz, v int);
		SELECT talaria.create_time_table('ev', 'ts', '1 day', '30 days', 0);
		SELECT talaria.add_computed_column('ev', 'n', 'seven');
		SELECT talaria.create_pipeline('raw', 'ev', 'pass');
		INSERT INTO raw VALUES ('2001-02-03 04:05:06+00', 1);
	});
	$node->safe_psql($db, 'ALTER EXTENSION talaria_transform UPDATE');
	is($node->safe_psql($db,
		q{SELECT extversion FROM pg_extension WHERE extname = 'talaria_transform'}),
		$default, "$from: updated to $default");

	# old objects keep working
	$node->safe_psql($db, q{INSERT INTO raw VALUES ('2001-02-04 04:05:06+00', 2)});
	is($node->safe_psql($db, q{SELECT string_agg(v || ':' || n, ',' ORDER BY v) FROM ev}),
		'1:7,2:7', "$from: the old pipeline and computed column still store rows");
	is($node->safe_psql($db, q{SELECT talaria.transform_row('pass', '{"a": 1}')}),
		'{"a": 1}', "$from: transform_row");
	# 0.3.0: the built-ins are there, old computed columns and pipelines
	# keep their behaviour (the pipeline's on_error, unknown keys an error)
	is($node->safe_psql($db, q{SELECT string_agg(name || ' ' || length(talaria.transform_row(name, '{}')::text), ',' ORDER BY name)
	                            FROM talaria.transforms WHERE kind = 'builtin'}),
		'make://identifier 34,make://timestamp 10', "$from: the built-ins after the update");
	is($node->safe_psql($db, q{SELECT (SELECT string_agg(on_error || ' ' || rounding, ',') FROM talaria.computed_columns)
	                            || ' ' || (SELECT string_agg(unknown_keys, ',') FROM talaria.pipelines)}),
		'pipeline error error', "$from: old computed columns and pipelines keep their behaviour");
	# transforms of 0.1.0 stay usable by everyone, as they were; from 0.2.0
	# on a transform is its owner's until granted
	if ($from eq '0.1.0')
	{
		is($node->safe_psql($db, "SET ROLE regress_up_$db; SELECT talaria.transform_row('pass', '{\"b\": 2}')"),
			'{"b": 2}', "$from: an old transform is still usable by another role");
	}
	else
	{
		my ($r, $o, $e) = $node->psql($db, "SET ROLE regress_up_$db; SELECT talaria.transform_row('pass', '{\"b\": 2}')");
		like($e, qr/permission denied for transform "pass"/, "$from: a transform stays its owner's");
	}
	# the new version's rules hold
	my ($ret, $out, $err) = $node->psql($db, q{SELECT talaria.drop_transform('pass')});
	like($err, qr/because other objects depend on it/, "$from: a transform in use is not dropped");
	($ret, $out, $err) = $node->psql($db,
		"SET ROLE regress_up_$db; SELECT talaria._create_partition('ev', '2001-03-01')");
	like($err, qr/permission denied for function _create_partition/,
		"$from: internal helpers are not callable by PUBLIC");
	$node->safe_psql($db, q{SELECT talaria.run_maintenance()});
	is($node->safe_psql($db,
		q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'ev'::regclass AND inhrelid::regclass::text < 'ev_p2020'}),
		'0', "$from: run_maintenance drops past retention");
	$node->safe_psql($db, "DROP OWNED BY regress_up_$db");
	# (the test's own grants to its role are gone: compare the catalog)
	$updated{$from} = $node->safe_psql($db, $catalog);
	$node->safe_psql('postgres', "DROP DATABASE $db");
	$node->safe_psql('postgres', "DROP ROLE regress_up_$db");
}

# a fresh install at the default version equals the update chain's result
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');
is($node->safe_psql('postgres',
	q{SELECT extversion FROM pg_extension WHERE extname = 'talaria_transform'}),
	$default, 'a fresh install is at the default version');
my $fresh = $node->safe_psql('postgres', $catalog);
ok(length($fresh) > 1000, 'the catalog snapshot is not empty');
foreach my $from (@released)
{
	my %f = map { $_ => 1 } split /\n/, $fresh;
	my %u = map { $_ => 1 } split /\n/, $updated{$from};
	my @only_updated = grep { !$f{$_} } sort keys %u;
	my @only_fresh = grep { !$u{$_} } sort keys %f;
	ok(!@only_updated && !@only_fresh,
		"$from updated: the same functions, grants, tables, columns, constraints, triggers as a fresh $default")
	  or diag("only after the update:\n" . join("\n", @only_updated)
		  . "\nonly in a fresh install:\n" . join("\n", @only_fresh));
}

# DROP EXTENSION ... CASCADE takes the pipeline triggers with it: a former
# source then refuses rows instead of silently keeping them
$node->safe_psql('postgres', q{
	SELECT talaria.register_lua('pass', 'function main(r) return r end');
	CREATE TABLE ev (ts timestamptz NOT NULL, v int);
	CREATE TABLE raw (ts timestamptz, v int);
	SELECT talaria.create_pipeline('raw', 'ev', 'pass');
	INSERT INTO raw VALUES (now(), 1);
	DROP EXTENSION talaria_transform CASCADE;
});
my ($ret, $out, $err) = $node->psql('postgres', q{INSERT INTO raw VALUES (now(), 2)});
like($err, qr/violates check constraint "talaria_pipeline_source"/,
	'after DROP EXTENSION CASCADE a former source refuses rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM raw'), '0', 'and keeps none');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev'), '1', 'what the pipeline stored stays');

$node->stop;
done_testing();
