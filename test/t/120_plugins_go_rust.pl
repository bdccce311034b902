# Plugins in Go and Rust (test/plugins/go, test/plugins/rust), built by
# make install-test-plugins with Debian's toolchains, through transform_row,
# a COPY into a pipeline and computed columns; what a Go runtime inside a
# backend does to signals, latches and cancellation; the Go sample built
# against the 0.1.0 header (the ABI promise); and README.md's Go and Rust
# examples, which must be the samples, built with the README's one command
# against the installed header.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('go_rust');
$node->init;
my $dir = PostgreSQL::Test::Utils::tempdir();
$node->append_conf('postgresql.conf',
	"talaria.native_library_path = '\$libdir/talaria_test_plugins:$dir'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION talaria_transform');

my $plugins = `pg_config --pkglibdir`;
chomp $plugins;
$plugins .= '/talaria_test_plugins';

my %transforms = (
	c_trim => 'trim.so:trim',
	go_trim => 'go_trim.so:trim',
	go_trim_v1 => 'go_trim_v1.so:trim',
	go_digest => 'go_trim.so:digest',
	go_spin => 'go_spin.so:spin',
	go_spin_deaf => 'go_spin.so:spin_deaf',
	go_preempt => 'go_spin.so:preempt',
	rust_trim => 'rust_trim.so:trim',
	rust_words => 'rust_trim.so:word_count');
for my $name (sort keys %transforms)
{
	my ($file, $symbol) = split /:/, $transforms{$name};
	$node->safe_psql('postgres',
		"SELECT talaria.register_native('$name', '\$libdir/talaria_test_plugins/$file', '$symbol')"
	);
}

# events with key1..key7 among other keys, some nested, some unicode
$node->safe_psql('postgres', q{
	CREATE TABLE docs AS
	SELECT n, jsonb_build_object('id', n, 'key1', n, 'key2', 'k' || n,
		'key3', jsonb_build_object('key4', n), 'key5', NULL, 'key6', n % 7,
		'city', CASE WHEN n % 3 = 0 THEN 'Zürich' ELSE 'Oslo' END,
		'body', repeat('word ', n % 5) || 'ÿ' || n,
		'nested', jsonb_build_object('key1', 1)) AS doc
	FROM generate_series(1, 500) n});
my $floor = q{doc - '{key1,key2,key3,key4,key5}'::text[]};
for my $t (qw(c_trim go_trim go_trim_v1 rust_trim))
{
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM docs WHERE talaria.transform_row('$t', doc) = $floor"),
		'500', "$t gives doc - key1..key5 for every event");
}
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM docs
	WHERE talaria.transform_row('go_digest', doc)
		= to_jsonb(encode(sha256(convert_to(doc->>'body', 'UTF8')), 'hex'))}),
	'500', 'Go digest is the SHA-256 of body');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM docs
	WHERE talaria.transform_row('rust_words', doc)
		= to_jsonb(array_length(regexp_split_to_array(btrim(doc->>'body'), '\s+'), 1))}),
	'500', 'Rust word_count counts the words of body');

my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT talaria.transform_row('go_digest', '{"id": 1}')});
like($err, qr/transform "go_digest" failed: "body" must be a string/,
	'a Go error message reaches the user');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT talaria.transform_row('rust_trim', '[1, 2]')});
like($err, qr/transform "rust_trim" failed: expected an object, got type 7/,
	'a Rust error message reaches the user');

# ---------------------------------------------------------------------
# The ABI promise: go_trim_v1.so is the same Go source built against the
# header as shipped in 0.1.0, which has a shorter tt_host
# ---------------------------------------------------------------------
sub plugin_info
{
	my ($file) = @_;
	my ($addr) = map { /^([0-9a-f]+) \S+ talaria_plugin_info$/ ? $1 : () }
	  split /\n/, `nm -D --defined-only '$file'`;
	return undef unless $addr;
	my $dump = `objdump -s --start-address=0x$addr --stop-address=@{[sprintf '0x%x', hex($addr) + 16]} '$file'`;
	my ($words) = $dump =~ /^\s*[0-9a-f]+ ((?:[0-9a-f]{8} ?){4})/m;
	return undef unless $words;
	# four little-endian uint32: abi_version, sizeof value, call, host
	return [ map { unpack('V', pack('H8', $_)) } split / /, $words ];
}
my $v1 = plugin_info("$plugins/go_trim_v1.so");
my $now = plugin_info("$plugins/go_trim.so");
my $c = plugin_info("$plugins/trim.so");
my $rust = plugin_info("$plugins/rust_trim.so");
ok($v1 && $now && $c && $rust, 'talaria_plugin_info read from the libraries');
is($v1->[0], 1, 'the 0.1.0 build declares ABI version 1');
ok($v1->[3] < $c->[3], "its tt_host ($v1->[3] bytes) is the older, shorter one ($c->[3] today)");
is_deeply($now, $c, 'the Go build against today\'s header declares what C declares');
is_deeply($rust, $c, 'the hand-written Rust declarations declare what C declares');

# ---------------------------------------------------------------------
# A pipeline: COPY through the Go trim, Go and Rust computed columns
# ---------------------------------------------------------------------
open(my $fh, '>', "$dir/events.csv") or die;
for my $n (1 .. 2000)
{
	my $city = $n % 3 ? 'Oslo' : 'Zürich';
	my $body = ('word ' x ($n % 4)) . "event $n";
	print $fh "2001-01-0@{[1 + $n % 3]} 10:00:00+00,$n,$city,$body,a$n,$n,x,y,z\n";
}
close $fh;
$node->safe_psql('postgres', qq{
	CREATE TABLE ev (ts timestamptz NOT NULL, id bigint, city text, body text,
					 body_sha256 text, words int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('ev', 'ts', '1 day', premake => 0);
	SELECT talaria.add_computed_column('ev', 'body_sha256', 'go_digest');
	SELECT talaria.add_computed_column('ev', 'words', 'rust_words');
	CREATE TABLE raw (ts timestamptz, id bigint, city text, body text,
					  key1 text, key2 int, key3 text, key4 text, key5 text);
	CREATE TABLE raw_copy (LIKE raw);
	SELECT talaria.create_pipeline('raw', 'ev', 'go_trim');
	COPY raw FROM '$dir/events.csv' (FORMAT csv);
	COPY raw_copy FROM '$dir/events.csv' (FORMAT csv);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev'), '2000',
	'COPY through the Go trim stored every row');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM ev JOIN raw_copy r USING (id)
	WHERE ev.ts = r.ts AND ev.city = r.city AND ev.body = r.body
	  AND ev.body_sha256 = encode(sha256(convert_to(r.body, 'UTF8')), 'hex')
	  AND ev.words = array_length(regexp_split_to_array(r.body, ' '), 1)}),
	'2000', 'each row is the source row trimmed, with its Go and Rust computed columns');

# ---------------------------------------------------------------------
# Threads and signals
# ---------------------------------------------------------------------
my $a = $node->background_psql('postgres', on_error_stop => 0);
my $b = $node->background_psql('postgres', on_error_stop => 0);
my $b_pid = $b->query_safe('SELECT pg_backend_pid()');
is($b->query_safe(q{SELECT talaria.transform_row('go_trim', '{"key1": 1, "a": 2}')}),
	'{"a": 2}', 'B runs the Go trim');

sub signal_set
{
	my ($hex) = @_;
	my %set;
	my $bits = hex(substr($hex, -8));
	for my $sig (1 .. 32) { $set{$sig} = 1 if int($bits / 2**($sig - 1)) % 2; }
	return \%set;
}
my @threads = grep { $_ != $b_pid } map { m{/(\d+)$} ? $1 : () } glob("/proc/$b_pid/task/*");
ok(@threads >= 1, 'the Go runtime started threads in B (' . scalar(@threads) . ')');
# SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM: PostgreSQL's
my @pg_signals = (1, 2, 3, 10, 12, 14, 15);
my $unblocked = 0;
for my $tid (@threads)
{
	open(my $st, '<', "/proc/$b_pid/task/$tid/status") or next;
	my ($blk) = join('', <$st>) =~ /^SigBlk:\s*([0-9a-f]+)/m;
	close $st;
	my $set = signal_set($blk);
	$unblocked += grep { !$set->{$_} } @pg_signals;
}
is($unblocked, 0, "the runtime's threads block PostgreSQL's signals");

open(my $pidf, '<', $node->data_dir . '/postmaster.pid') or die;
my $pm_pid = <$pidf>;
close $pidf;
chomp $pm_pid;
my @pm_threads = glob("/proc/$pm_pid/task/*");
is(scalar(@pm_threads), 1, 'the postmaster has one thread: no runtime there');
open(my $maps, '<', "/proc/$pm_pid/maps") or die;
my @pm_plugins = grep { /talaria_native|talaria_test_plugins/ } <$maps>;
close $maps;
is(scalar(@pm_plugins), 0, 'the postmaster maps no plugin');

# runs $sql in $session without waiting; finish() collects it
sub start
{
	my ($session, $sql) = @_;
	$session->{stdout} = '';
	$session->{stderr} = '';
	$session->{stdin} .= "$sql;\n\\echo done-marker\n";
	$session->{run}->pump_nb();
}

sub finish
{
	my ($session) = @_;
	$session->{run}->pump()
	  until $session->{stdout} =~ /done-marker/ || $session->{timeout}->is_expired;
	my ($out, $err) = ($session->{stdout}, $session->{stderr});
	$session->{stdout} = '';
	$session->{stderr} = '';
	$out =~ s/\n?done-marker\n?//;
	return ($out, $err);
}

sub wait_active
{
	my ($pid, $what) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'active' AND query LIKE '%$what%'"
	) or die "$pid never ran $what";
}

# A latch set by another process: B waits for A's lock.  PostgreSQL wakes B
# with kill(SIGURG); a Go thread used to swallow it (when it took the
# signal before B's thread saw it in its signalfd), and B slept on.
$node->safe_psql('postgres', 'CREATE TABLE lk (a int)');
$b->query_safe(q{SET deadlock_timeout = '1h'});
$b->query_safe(q{SET statement_timeout = '10s'});
my $slept = 0;
for my $round (1 .. 20)
{
	$a->query_safe('BEGIN');
	$a->query_safe('LOCK TABLE lk');
	start($b, 'SELECT count(*) FROM lk');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_locks WHERE pid = $b_pid AND NOT granted")
	  or die 'B never waited for the lock';
	$a->query_safe('COMMIT');
	(undef, $err) = finish($b);
	$slept++ if $err ne '';
}
is($slept, 0, "B wakes when A commits, 20 times of 20 (another process's SetLatch)");

# parallel workers set the leader's latch too
$node->safe_psql('postgres', 'CREATE TABLE big AS SELECT g FROM generate_series(1, 200000) g');
$b->query_safe(q{SET max_parallel_workers_per_gather = 2});
$b->query_safe(q{SET parallel_setup_cost = 0});
$b->query_safe(q{SET parallel_tuple_cost = 0});
$b->query_safe(q{SET min_parallel_table_scan_size = 0});
start($b, 'SELECT count(*) FROM big');
($out, $err) = finish($b);
is($out, '200000', 'a parallel query in B finishes');
is($err, '', 'with no error');

# B's own latch: pg_sleep and statement_timeout
$b->query_safe(q{SET statement_timeout = '300ms'});
start($b, 'SELECT pg_sleep(30)');
(undef, $err) = finish($b);
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout ends a pg_sleep in B');

# Go's own preemption (SIGURG by tgkill) still reaches the runtime: a
# collection waits for a goroutine spinning without preemption points
# (about 16 s of spinning if it never gets the signal)
$b->query_safe(q{SET statement_timeout = 0});
my $gc = $b->query_safe(q{SELECT talaria.transform_row('go_preempt', '{}')->>'gc_ms'});
ok(defined $gc && $gc =~ /^\d+$/ && $gc < 5000,
	"goroutines are preempted (collection took $gc ms)");

# ---------------------------------------------------------------------
# Cancellation while Go code runs
# ---------------------------------------------------------------------
start($b, q{SELECT talaria.transform_row('go_spin', '{}')});
wait_active($b_pid, 'go_spin');
$a->query_safe("SELECT pg_cancel_backend($b_pid)");
(undef, $err) = finish($b);
like($err, qr/canceling statement due to user request/,
	'pg_cancel_backend stops Go code that asks host->interrupted');
is($b->query_safe('SELECT pg_backend_pid()'), $b_pid, 'B is the same backend');
is($b->query_safe(q{SELECT talaria.transform_row('go_trim', '{"key2": 1, "b": 3}')}),
	'{"b": 3}', 'B runs Go code after the cancel');

$b->query_safe(q{SET statement_timeout = '300ms'});
start($b, q{SELECT talaria.transform_row('go_spin', '{}')});
(undef, $err) = finish($b);
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout stops Go code that asks');

# a cancel of Go code that never asks takes effect when it returns
start($b, q{SELECT talaria.transform_row('go_spin_deaf', '{}')});
(undef, $err) = finish($b);
like($err, qr/canceling statement due to statement timeout/,
	'statement_timeout ends the statement when Go code that does not ask returns');

# in a dead_letter pipeline the cancel ends the statement, no dead letter
$node->safe_psql('postgres', q{
	CREATE TABLE spin_ev (ts timestamptz NOT NULL, id int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('spin_ev', 'ts', '1 day', premake => 0);
	CREATE TABLE spin_raw (ts timestamptz, id int);
	SELECT talaria.create_pipeline('spin_raw', 'spin_ev', 'go_spin', 'dead_letter');
});
start($b, q{INSERT INTO spin_raw VALUES ('2001-01-01', 1), ('2001-01-01', 2)});
(undef, $err) = finish($b);
like($err, qr/canceling statement due to statement timeout/,
	'a dead_letter pipeline through Go code is cancelled');
$b->query_safe(q{SET statement_timeout = 0});
is($b->query_safe(q{SELECT count(*) FROM talaria.dead_letters}), '0',
	'and the cancel is no dead letter');
is($b->query_safe('SELECT pg_backend_pid()'), $b_pid, 'B is still the same backend');
is($b->query_safe(q{SELECT talaria.transform_row('rust_trim', '{"key3": 1, "c": 3}')}),
	'{"c": 3}', 'and goes on');

# a child of a backend with a Go runtime: COPY TO PROGRAM forks and execs
$node->safe_psql('postgres', 'CREATE TABLE prog (n int)');
is( $b->query_safe(
		q{COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'; COPY prog FROM PROGRAM 'echo 7'; SELECT n FROM prog}
	),
	'7', 'B runs COPY TO and FROM PROGRAM');

# pg_terminate_backend while Go code runs: the backend exits cleanly (no
# crash, no restart of the server)
my $c = $node->background_psql('postgres', on_error_stop => 0);
my $c_pid = $c->query_safe('SELECT pg_backend_pid()');
my $log_offset = -s $node->logfile;
start($c, q{SELECT talaria.transform_row('go_spin', '{}')});
wait_active($c_pid, 'go_spin');
$a->query_safe("SELECT pg_terminate_backend($c_pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $c_pid")
  or die 'C did not exit';
$c->{run}->kill_kill;
is($a->query_safe('SELECT 1'), '1', 'the server goes on after pg_terminate_backend of Go code');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal|exited with exit code|all server processes terminated/,
	'and it was no crash');
is($b->query_safe('SELECT pg_backend_pid()'), $b_pid, 'B is still there');

$a->quit;
$b->quit;

# ---------------------------------------------------------------------
# README.md: the Go and Rust examples are the samples, and build with the
# README's one command against the installed header
# ---------------------------------------------------------------------
SKIP:
{
	skip 'TT_TOP does not point at the checkout', 8
	  unless $ENV{TT_TOP} && -f "$ENV{TT_TOP}/README.md";
	open($fh, '<', "$ENV{TT_TOP}/README.md") or die;
	my $readme = do { local $/; <$fh> };
	close $fh;

	# the section's fenced blocks, by language
	sub blocks
	{
		my ($text, $title) = @_;
		my ($section) = $text =~ /^### \Q$title\E\n(.*?)^##/ms;
		my @blocks;
		push @blocks, [ $1, $2 ] while ($section // '') =~ /^```(\w*)\n(.*?)^```$/msg;
		return @blocks;
	}

	sub slurp
	{
		my ($path) = @_;
		open(my $in, '<', $path) or die "$path: $!";
		local $/;
		return scalar <$in>;
	}

	sub spill
	{
		my ($path, $text) = @_;
		open(my $o, '>', $path) or die "$path: $!";
		print $o $text;
		close $o;
	}

	# Debian's go and cargo, and the server's pg_config
	my $pgbin = `pg_config --bindir`;
	chomp $pgbin;
	my %lang_go = ('' => 'go.mod', c => 'host.c', go => 'trim.go');
	my %lang_rust = (toml => 'Cargo.toml', rust => 'trim.rs');
	for my $case ([ 'Writing a plugin in Go', 'go', \%lang_go ],
		[ 'Writing a plugin in Rust', 'rust', \%lang_rust ])
	{
		my ($title, $lang, $files) = @$case;
		my @blocks = blocks($readme, $title);
		my ($build) = map { $_->[0] eq 'sh' ? $_->[1] : () } @blocks;
		my $src = "$dir/readme_$lang";
		mkdir $src or die;
		my $same = 1;
		for my $blk (@blocks)
		{
			my $file = $files->{ $blk->[0] } or next;
			spill("$src/$file", $blk->[1]);
			$same &&= $blk->[1] eq slurp("$ENV{TT_TOP}/test/plugins/$lang/trim/$file");
		}
		ok($same && keys(%$files) == grep({ -f "$src/$_" } values %$files),
			"README's $lang example is test/plugins/$lang/trim");
		ok(defined $build, "README's $lang section has a build command");
		my $env = "HOME='$dir' GOCACHE='$dir/gocache' GOPATH='$dir/gopath' GOPROXY=off "
		  . "GOFLAGS=-buildvcs=false CARGO_HOME='$dir/cargo' RUSTC=/usr/bin/rustc "
		  . "PATH='$pgbin:/usr/bin:$ENV{PATH}'";
		my $log = `cd '$src' && env $env bash -ec '$build' 2>&1`;
		is($?, 0, "the $lang example builds with the README's command") or diag $log;
	}
	rename("$dir/readme_go/talaria_go.so", "$dir/readme_go.so") or die;
	rename("$dir/readme_rust/target/release/libtalaria_rust.so", "$dir/readme_rust.so") or die;
	$node->safe_psql('postgres', qq{
		SELECT talaria.register_native('readme_go', '$dir/readme_go.so', 'trim');
		SELECT talaria.register_native('readme_rust', '$dir/readme_rust.so', 'trim');
	});
	is( $node->safe_psql(
			'postgres', q{SELECT talaria.transform_row('readme_go',
			'{"id": 1, "key1": "x", "key5": 5, "city": "Oslo"}')}),
		'{"id": 1, "city": "Oslo"}', 'the README Go build trims as the README says');
	is( $node->safe_psql(
			'postgres', "SELECT count(*) FROM docs WHERE talaria.transform_row('readme_rust', doc) = $floor"),
		'500', 'the README Rust build trims every event');
}

$node->stop;
done_testing();
