# Native transforms across backends and across rebuilds of the library.
#
# A plugin is compiled here, from the header installed with the extension,
# into a directory named by talaria.native_library_path.  Backend B keeps
# running it while the file is rebuilt on disk (replaced by rename, and
# overwritten in place); after a re-registration every backend, B included,
# runs the new code on its next call.  A rebuild for another ABI version is
# refused at load in B, never called, and B goes on.
use strict;
use warnings;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $cc = $ENV{CC} // 'cc';
my $incdir = `pg_config --includedir-server`;
chomp $incdir;
$incdir .= '/extension/talaria_transform';
ok(-f "$incdir/talaria_transform.h", 'the public header is installed');

my $dir = PostgreSQL::Test::Utils::tempdir();
mkdir "$dir/plugins" or die;
mkdir "$dir/build" or die;
my $lib = "$dir/plugins/ver.so";

# version() returns N and negative() returns -N; with an ABI override the
# library claims another ABI version and aborts the process if ever called
open(my $fh, '>', "$dir/build/ver.c") or die;
print $fh <<'EOC';
#include <stdlib.h>
#include "talaria_transform.h"

#ifdef TEST_ABI
TT_EXTERN_C TT_EXPORT const tt_plugin_info talaria_plugin_info = {
	TEST_ABI, sizeof(tt_value), sizeof(tt_call), sizeof(tt_host)
};
#else
TT_DECLARE_PLUGIN();
#endif

static int
answer(tt_call *call, int64_t n)
{
	tt_value   *v = call->host->alloc(call, sizeof(tt_value));

#ifdef TEST_ABI
	abort();
#endif
	if (v == NULL)
		return TT_ERROR;
	v->type = TT_INT;
	v->u.i = n;
	call->result = v;
	return TT_OK;
}

TT_TRANSFORM(version) { return answer(call, VERSION); }
TT_TRANSFORM(negative) { return answer(call, -VERSION); }
EOC
close $fh;

# compiles version N of the plugin; returns the path of the build
sub build
{
	my ($version, @defines) = @_;
	my $out = "$dir/build/ver-$version.so";
	system($cc, '-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror',
		"-I$incdir", "-DVERSION=$version", @defines, '-o', $out,
		"$dir/build/ver.c") == 0
	  or die "could not compile version $version";
	return $out;
}

# how a deployment replaces a file: a new file renamed over the old one
sub install_by_rename
{
	my ($built) = @_;
	copy($built, "$lib.tmp") or die;
	rename("$lib.tmp", $lib) or die;
}

# the careless way: overwrite the same inode
sub install_in_place
{
	my ($built) = @_;
	open(my $in, '<:raw', $built) or die;
	local $/;
	my $bytes = <$in>;
	close $in;
	open(my $out, '+<:raw', $lib) or die;
	truncate($out, 0) or die;
	print $out $bytes;
	close $out;
}

my $node = PostgreSQL::Test::Cluster->new('native_reload');
$node->init;
$node->append_conf('postgresql.conf',
	"talaria.native_library_path = '/nonexistent:$dir/plugins'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');

my $register = "SELECT talaria.register_native('ver', '$lib', 'version')";
my $call = q{SELECT talaria.transform_row('ver', '{}')};

install_by_rename(build(1));
$node->safe_psql('postgres', $register);

my $a = $node->background_psql('postgres', on_error_stop => 0);
my $b = $node->background_psql('postgres', on_error_stop => 0);

# runs a query that must fail; returns its error text
sub error_of
{
	my ($session, $sql) = @_;
	$session->{stderr} = '';
	$session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return $err;
}

# the private copies B has mapped (deleted files in pgsql_tmp)
my $b_pid = $b->query_safe('SELECT pg_backend_pid()');
sub b_copies
{
	open(my $maps, '<', "/proc/$b_pid/maps") or return -1;
	my %paths;
	while (<$maps>)
	{
		$paths{$1} = 1 if m{(\S*talaria_native\S*)};
	}
	close $maps;
	return scalar keys %paths;
}

is($b->query_safe($call), '1', 'B runs version 1');
is($a->query_safe($call), '1', 'A runs version 1');

# a rebuilt file alone changes nothing until the next revalidation
install_by_rename(build(2));
is($b->query_safe($call), '1', 'B keeps running version 1 before re-registration');

# re-registering the same name, library and symbol reloads everywhere
$a->query_safe($register);
is($a->query_safe($call), '2', 'A runs version 2 after it re-registered');
is($b->query_safe($call), '2', 'B runs version 2 on its next call');
is($node->safe_psql('postgres', $call), '2', 'a new backend runs version 2');

# an in-place overwrite (same inode) is detected as well, and does not
# disturb the code B has mapped
install_in_place(build(3));
is($b->query_safe($call), '2', 'B still runs its copy of version 2 after an in-place overwrite');
$node->safe_psql('postgres', $register);
is($b->query_safe($call), '3', 'B runs version 3 after re-registration');
is($a->query_safe($call), '3', 'A runs version 3');

# two transforms from one file share one handle; old copies were closed
$node->safe_psql('postgres',
	"SELECT talaria.register_native('neg', '$lib', 'negative')");
is($b->query_safe(q{SELECT talaria.transform_row('neg', '{}')}), '-3',
	'B runs a second function of the same library');
# (B revalidates each transform lazily, on its own next call)
is($b->query_safe($call), '3', 'B still runs version 3 of the first one');
SKIP:
{
	skip 'no /proc', 1 if b_copies() < 0;
	is(b_copies(), 1, 'B has one private copy mapped: shared, and old versions closed');
}

# a rebuild for another ABI version: registration refuses it and stores
# nothing; B notices the file on its next revalidation and refuses to load
# it (its function would abort the server process)
install_by_rename(build(99, '-DTEST_ABI=99'));
like(error_of($a, $register),
	qr/was built for talaria_transform ABI version 99, but this server uses ABI version 1/,
	'registration refuses the ABI 99 build');
is($b->query_safe($call), '3', 'B keeps running version 3: nothing was committed');
$node->safe_psql('postgres',
	q{SELECT talaria.register_lua('unrelated', 'function main(row) return row end')});
like(error_of($b, $call), qr/ABI version 99.*\n.*\n?.*loading native transform "ver"/s,
	'B refuses to load the ABI 99 build, naming the transform');
like(error_of($b, q{SELECT talaria.transform_row('neg', '{}')}), qr/ABI version 99/,
	'and so for the other function of that library');
is($b->query_safe('SELECT 42'), '42', 'B is alive');

# a fixed build brings both transforms back
install_by_rename(build(4));
$node->safe_psql('postgres', $register);
is($b->query_safe($call), '4', 'B runs version 4');
is($b->query_safe(q{SELECT talaria.transform_row('neg', '{}')}), '-4',
	'B runs negative() of version 4');

# replacing the registration by another symbol of the same file
$node->safe_psql('postgres',
	"SELECT talaria.register_native('ver', '$lib', 'negative')");
is($b->query_safe($call), '-4', 'B runs the newly registered symbol');

# the file disappears: a clear error at the next revalidation
unlink $lib or die;
$node->safe_psql('postgres', q{SELECT talaria.drop_transform('unrelated')});
like(error_of($b, $call), qr/could not access library file ".*ver\.so": No such file/,
	'B reports the missing file');
install_by_rename(build(5));
$node->safe_psql('postgres', $register);
is($b->query_safe($call), '5', 'B runs version 5 once the file is back');

# no private copies are left on disk
my @left = glob($node->data_dir . '/base/pgsql_tmp/*talaria*');
is(scalar @left, 0, 'no private copies left in pgsql_tmp');

$a->quit;
$b->quit;
$node->stop;
done_testing();
