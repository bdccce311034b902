# The example plugin of README.md's "Native transforms" section, taken
# verbatim from the README, built with one cc command against the header
# installed with the extension (nothing else from this tree), registered
# and run: it must give the results the README shows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'TT_TOP does not point at the checkout'
  unless $ENV{TT_TOP} && -f "$ENV{TT_TOP}/README.md";

# the first C block of the section
open(my $fh, '<', "$ENV{TT_TOP}/README.md") or die;
my $readme = do { local $/; <$fh> };
close $fh;
my ($section) = $readme =~ /^## Native transforms\n(.*?)^## /ms;
ok(defined $section, 'README has a Native transforms section');
my ($code) = ($section // '') =~ /^```c\n(.*?)^```$/ms;
ok(defined $code, 'the section has a C example');

my $dir = PostgreSQL::Test::Utils::tempdir();
open($fh, '>', "$dir/orders.c") or die;
print $fh $code;
close $fh;

my $incdir = `pg_config --includedir-server`;
chomp $incdir;
$incdir .= '/extension/talaria_transform';
my $cc = $ENV{CC} // 'cc';
is(system($cc, '-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror',
		"-I$incdir", '-o', "$dir/orders.so", "$dir/orders.c"),
	0, 'the example builds against the installed header alone');

my $node = PostgreSQL::Test::Cluster->new('native_readme');
$node->init;
$node->append_conf('postgresql.conf', "talaria.native_library_path = '$dir'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');
$node->safe_psql('postgres', qq{
	SELECT talaria.register_native('orders', '$dir/orders.so', 'orders');
	SELECT talaria.register_native('field_count', '$dir/orders.so', 'field_count');
});

is( $node->safe_psql(
		'postgres', q{SELECT talaria.transform_row('orders',
			'{"id": 7, "qty": 12, "price": 2.5, "customer": {"name": "Ann"}, "debug": true}')
		  = '{"id": 7, "qty": 12, "tags": ["bulk"], "price": 2.5, "total": 30,
			  "customer": {"name": "Ann"}, "customer_name": "Ann"}'}),
	't', 'orders() gives the documented row');
is( $node->safe_psql(
		'postgres',
		q{SELECT talaria.transform_row('orders', '{"qty": 0, "price": 1}') IS NULL}),
	't', 'qty 0 drops the row');
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT talaria.transform_row('orders', '{"price": 1}')});
like($err, qr/ERROR:  transform "orders" failed: "qty" must be an integer/,
	'a row without qty gives the documented error');
is( $node->safe_psql(
		'postgres', q{SELECT talaria.transform_row('field_count', '{"a": 1, "b": 2}')}),
	'2', 'field_count() returns the documented scalar');

$node->stop;
done_testing();
