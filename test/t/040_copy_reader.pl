# talaria's COPY reader (talaria.copy_fast_reader) against PostgreSQL's own
# (NextCopyFrom): the same input, from a file and from the client, with
# many option sets, must give the same stored rows, or the same error with
# the same context.  Inputs are hand-made edge cases plus seeded random
# ones built from the bytes the parsers treat specially (quotes, escapes,
# delimiters, \r, \n, \r\n, \., backslash escapes, null markers, multibyte
# and invalid UTF-8), in a UTF8, a LATIN1 and an SQL_ASCII database.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('copy_reader');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;
my $setup = q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('fz_id', $$
		function main(row)
		  row.ts = '2024-01-01 00:00:00+00'
		  return row
		end$$);
	CREATE SEQUENCE fz_seq;
	CREATE TABLE fz_src (a text, b text, c varchar(8), n int, d text DEFAULT 'dflt');
	CREATE TABLE fz_dst (ts timestamptz NOT NULL, a text, b text, c text, n int, d text,
		seq bigint DEFAULT nextval('fz_seq')) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('fz_dst', 'ts', '1 day', NULL, 0);
	CREATE TABLE fz_dst_p20240101 PARTITION OF fz_dst
		FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');
	SELECT talaria.create_pipeline('fz_src', 'fz_dst', 'fz_id');
};
# the database the cases run in, and what each session sets first
my ($db, $session_setup) = ('postgres', '');
$node->safe_psql($db, $setup);

my $dir = PostgreSQL::Test::Utils::tempdir;
my $show = q{SELECT coalesce(string_agg(concat_ws('|', quote_nullable(a), quote_nullable(b),
	quote_nullable(c), quote_nullable(n), quote_nullable(d)), E'\n' ORDER BY seq), '<none>') FROM fz_dst;};

# Runs one COPY with the reader on or off; returns what a user would see.
sub run_copy
{
	my ($reader, $opts, $data, $via_stdin, $cols) = @_;
	my $copy = "COPY fz_src $cols FROM " . ($via_stdin ? 'STDIN' : "'$dir/in.dat'");
	$copy .= " ($opts)" if $opts ne '';
	my $sql = "${session_setup}SET talaria.copy_fast_reader = $reader; LOAD 'talaria_transform';\n"
	  . "TRUNCATE fz_dst;\nSET client_min_messages = debug1;\n";
	if ($via_stdin)
	{
		$sql .= "$copy;\n$data\\.\n";
	}
	else
	{
		open(my $fh, '>:raw', "$dir/in.dat") or die "in.dat: $!";
		print $fh $data;
		close($fh);
		$sql .= "$copy;\n";
	}
	$sql .= "RESET client_min_messages;\n$show\n";
	my ($out, $err) = ('', '');
	$node->psql($db, $sql, stdout => \$out, stderr => \$err);
	my $path = $err =~ /\(talaria's reader\)/ ? 'talaria' :
	  $err =~ /\(PostgreSQL's reader\)/ ? 'postgres' : 'none';
	$err =~ s/^.*(DEBUG|LOG):.*\n//mg;
	$err =~ s/^psql:<stdin>:\d+: //mg;
	return ($path, "$out\n$err");
}

my ($cases, $same, $errors, $stored) = (0, 0, 0, 0);
my @diffs;

sub check
{
	my ($name, $opts, $data, $via_stdin, $cols) = @_;
	$cols //= '(a, b, c, n)';
	my ($p1, $r1) = run_copy('on', $opts, $data, $via_stdin, $cols);
	my ($p2, $r2) = run_copy('off', $opts, $data, $via_stdin, $cols);
	$cases++;
	if ($p2 ne 'postgres' || ($p1 ne 'talaria' && $opts !~ /header match/i))
	{
		push @diffs, "$name: readers used: on=$p1 off=$p2";
		return;
	}
	if ($r1 eq $r2)
	{
		$same++;
		if ($r1 =~ /ERROR:/) { $errors++ } else { $stored++ }
	}
	else
	{
		(my $shown = $data) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord($1))/ge;
		push @diffs, "$name ($opts) input \"$shown\"\n  talaria: $r1\n  postgres: $r2";
	}
}

# ---- hand-made edge cases ----
my @text = (
	[ 'plain', '', "a\tb\tc\t1\n" ],
	[ 'no final newline', '', "a\tb\tc\t1\nd\te\tf\t2" ],
	[ 'null markers', '', "\\N\t\\\\N\tN\t\\N\n" ],
	[ 'escapes', '', "\\t\\n\\r\\b\\f\\v\t\\x41\\x4\\xg\t\\101\\7\\08\t5\n" ],
	[ 'escaped delimiter and newline', '', "a\\\tb\tc\\\nd\te\t1\n" ],
	[ 'octal NUL', '', "a\\000b\tb\tc\t1\n" ],
	[ 'octal high byte', '', "\\377\tb\tc\t1\n" ],
	[ 'escaped utf8 bytes', '', "\\303\\251\tb\tc\t1\n" ],
	[ 'trailing backslash', '', "a\tb\tc\t1\\\n" ],
	[ 'backslash at EOF', '', "a\tb\tc\t1\\" ],
	[ 'missing column', '', "a\tb\tc\n" ],
	[ 'extra column', '', "a\tb\tc\t1\textra\n" ],
	[ 'bad int', '', "a\tb\tc\tx1\n" ],
	[ 'varchar too long', '', "a\tb\t123456789\t1\n" ],
	[ 'empty line', '', "a\tb\tc\t1\n\n" ],
	[ 'crlf', '', "a\tb\tc\t1\r\nd\te\tf\t2\r\n" ],
	[ 'cr', '', "a\tb\tc\t1\rd\te\tf\t2\r" ],
	[ 'lf then cr', '', "a\tb\tc\t1\nd\te\tf\t2\r" ],
	[ 'crlf then lf', '', "a\tb\tc\t1\r\nd\te\tf\t2\n" ],
	[ 'cr then lf', '', "a\tb\tc\t1\rd\te\tf\t2\n" ],
	[ 'end marker', '', "a\tb\tc\t1\n\\.\ngarbage\n" ],
	[ 'end marker crlf', '', "a\tb\tc\t1\r\n\\.\r\ngarbage\n" ],
	[ 'end marker wrong style', '', "a\tb\tc\t1\r\n\\.\n" ],
	[ 'end marker corrupt', '', "a\tb\tc\t1\n\\.x\n" ],
	[ 'end marker mid line', '', "a\tb\tc\t1\\.\nd\te\tf\t2\n" ],
	[ 'end marker at EOF', '', "a\tb\tc\t1\n\\." ],
	[ 'invalid utf8', '', "a\xff\tb\tc\t1\n" ],
	[ 'truncated utf8 at EOF', '', "a\tb\tc\t1\n\xc3" ],
	[ 'invalid utf8 after end marker', '', "a\tb\tc\t1\n\\.\n\xff\n" ],
	[ 'utf8', '', "\xc3\xa9t\xc3\xa9\t\xe2\x82\xac\t\xf0\x9f\x98\x80\t1\n" ],
	[ 'header', 'header', "h1\th2\n a\tb\tc\t1\n" ],
	[ 'header only', 'header', "h1\th2\n" ],
	[ 'empty input', '', "" ],
	[ 'delimiter comma', 'delimiter \',\'', "a,b,c,1\nd\\,e,f,g,2\n" ],
	[ 'null empty', 'null \'\'', "\tb\t\t\n" ],
	[ 'null word', 'null \'nil\'', "nil\tnil\\t\tnil\t1\n" ],
);
my @csv = (
	[ 'plain', 'format csv', "a,b,c,1\n" ],
	[ 'quoted', 'format csv', "\"a,b\",\"c\"\"d\",\"\",1\n" ],
	[ 'quoted newline', 'format csv', "\"a\nb\",\"c\r\nd\",e,1\nf,g,h,2\n" ],
	[ 'quoted cr in crlf file', 'format csv', "a,b,c,1\r\n\"x\ry\",b,c,2\r\n" ],
	[ 'unterminated quote', 'format csv', "\"a,b,c,1\n" ],
	[ 'quote mid field', 'format csv', "a\"b,c\"d,e,1\n" ],
	[ 'null unquoted vs quoted', 'format csv', ",\"\",c,\n" ],
	[ 'null marker', 'format csv, null \'NULL\'', "NULL,\"NULL\",c,NULL\n" ],
	[ 'force null', 'format csv, force_null (a, b)', "\"\",\"\",,1\n" ],
	[ 'force not null', 'format csv, force_not_null (a, c)', ",,,1\n" ],
	[ 'escape backslash', 'format csv, escape \'\\\'', "\"a\\\"b\",\"c\\\\d\",\"e\\f\",1\n" ],
	[ 'escape at end', 'format csv, escape \'\\\'', "\"a\\\",b,c,1\n" ],
	[ 'quote single', 'format csv, quote \'\'\'\'', "'a,b','c''d',\"e\",1\n" ],
	[ 'delimiter semicolon', 'format csv, delimiter \';\'', "a;\"b;c\";d;1\n" ],
	[ 'delimiter tab', 'format csv, delimiter E\'\\t\'', "a\t\"b\tc\"\td\t1\n" ],
	[ 'backslash dot data', 'format csv', "\\.a,b,c,1\n" ],
	[ 'backslash dot quoted', 'format csv', "\"\\.\",b,c,1\n" ],
	[ 'end marker', 'format csv', "a,b,c,1\n\\.\nx,y,z,9\n" ],
	[ 'end marker crlf', 'format csv', "a,b,c,1\r\n\\.\r\nx\n" ],
	[ 'end marker then lf in crlf', 'format csv', "a,b,c,1\r\n\\.\nx,y,z,2\r\n" ],
	[ 'end marker in quotes', 'format csv', "\"a\n\\.\n\",b,c,1\n" ],
	[ 'header', 'format csv, header', "a,b,c,n\nx,y,z,1\n" ],
	[ 'header true crlf', 'format csv, header true', "a,b\r\nx,y,z,1\r\n" ],
	[ 'header match', 'format csv, header match', "a,b,c,n,d\nx,y,z,1,w\n" ],
	[ 'unquoted cr', 'format csv', "a,b,c,1\nx\ry,b,c,2\n" ],
	[ 'crlf', 'format csv', "a,b,c,1\r\nd,e,f,2\r\n" ],
	[ 'lf then crlf', 'format csv', "a,b,c,1\nd,e,f,2\r\n" ],
	[ 'lineno in quotes', 'format csv', "\"a\nb\nc\",b,c,1\nx,y,z,bad\n" ],
	[ 'missing column', 'format csv', "a,b\n" ],
	[ 'extra column', 'format csv', "a,b,c,1,2\n" ],
	[ 'bad int with context', 'format csv', "a,b,c,1\n\"x\",y,z,\"1 2\"\n" ],
	[ 'invalid utf8 in quotes', 'format csv', "\"a\xff\",b,c,1\n" ],
	[ 'long line', 'format csv', ('x' x 200000) . ",b,c,1\n" . ('y' x 70000) . ",\"" . ('z,' x 40000) . "\",c,2\n" ],
);
for my $t (@text)
{
	check("text $t->[0]", $t->[1], $t->[2], 0);
}
for my $t (@csv)
{
	check("csv $t->[0]", $t->[1], $t->[2], 0);
}
# the first read of a file is 131,072 bytes: a special byte or character
# at its last byte, with the rest of it in the next read
sub straddle
{
	my ($head, $before, $special) = @_;
	my $fill = 131071 - length($head) - length($before);
	return $head . ('x' x $fill) . $before . $special;
}
check('text crlf across reads', '', straddle("a\t", "\tc\t1", "\r\nd\te\tf\t2\r\n"), 0);
check('text utf8 across reads', '', straddle("a\t", '', "\xc3\xa9\tc\t1\n"), 0);
check('text escape across reads', '', straddle("a\t", '', "\\n\tc\t1\n"), 0);
check('text end marker across reads', '', straddle("a\t", "\tc\t1\n", "\\.\ngarbage\n"), 0);
check('csv doubled quote across reads', 'format csv', straddle('"', '', "\"\"x\",b,c,1\n"), 0);
check('csv crlf across reads', 'format csv', straddle("a,", ",c,1", "\r\nd,e,f,2\r\n"), 0);
check('csv cr in quotes across reads', 'format csv', straddle("\"a", '', "\r\nb\",b,c,1\r\n"), 0);

# column lists: the default of d, and columns left NULL
check('column list default', '', "x\t1\n", 0, '(a, n)');
check('column list csv', 'format csv', "1,x\n", 0, '(n, b)');
check('column list csv missing', 'format csv', "1\n", 0, '(n, b)');
check('all columns', '', "a\tb\tc\t1\td\n", 0, '');
check('all columns csv', 'format csv', "a,b,c,1,\n", 0, '');

# through the client (CopyData messages); psql ends the data at a \. line
check('stdin text', '', "a\tb\tc\t1\nd\te\tf\t2\n", 1);
check('stdin csv quoted newline', 'format csv', "\"a\nb\",b,c,1\n", 1);
check('stdin crlf', 'format csv', "a,b,c,1\r\nd,e,f,2\r\n", 1);
check('stdin error', 'format csv', "a,b,c,1\nd,e,f,x\n", 1);
check('stdin header', 'format csv, header', "h\na,b,c,1\n", 1);
check('stdin long', 'format csv', join('', map { "r$_,\"b\nq\",c,$_\n" } 1 .. 5000), 1);

# ---- random inputs ----
# TT_FUZZ_CASES and TT_FUZZ_SEED run more, or other, random inputs
srand($ENV{TT_FUZZ_SEED} // 20261122);
my @any = ('a', 'bc', 'N', '\\N', '\\', '\\\\', '\\t', '\\n', '\\x41', '\\x', '\\1017',
	'\\0', '\\.', '.', "\t", ',', ';', '"', '""', "'", "\r", "\n", "\r\n", ' ', "\xc3\xa9",
	"\xe2\x82\xac", "\xff", "\xc3", '12', '-3', 'NULL', '');
my @safe = ('a', 'bc', 'N', ' ', "\xc3\xa9", '12', 'x', '');
my @ints = ('1', '23', '-4', '', 'x', '\\N', 'NULL', '"7"');
my @eols = ("\n", "\n", "\n", "\r\n", "\r");
my @topts = ('', 'delimiter \',\'', 'null \'\'', 'header', 'null \'N\'');
my @copts = ('format csv', 'format csv, header', 'format csv, quote \'\'\'\', escape \'\\\'',
	'format csv, delimiter \';\', null \'NULL\'', 'format csv, force_null (a), force_not_null (b)',
	'format csv, escape \'\\\'');

sub pick { return $_[ int(rand(@_)) ] }

sub field
{
	my ($pos, $csv) = @_;
	return pick(@ints) if $pos == 3 && rand() < 0.8;
	my $s = '';
	my $n = int(rand(4));
	for (1 .. $n) { $s .= rand() < 0.85 ? pick(@safe) : pick(@any) }
	if ($csv && rand() < 0.3)
	{
		my $q = '';
		for (1 .. int(rand(4))) { $q .= rand() < 0.5 ? pick(@safe) : pick(@any) }
		$s = "\"$q\"" . (rand() < 0.1 ? pick(@any) : '');
	}
	return $s;
}

for my $i (1 .. ($ENV{TT_FUZZ_CASES} // 300))
{
	my $csv = $i % 2;
	my $opts = $csv ? pick(@copts) : pick(@topts);
	my $delim = $opts =~ /delimiter '(.)'/ ? $1 : ($csv ? ',' : "\t");
	my $eol = pick(@eols);
	my $data = '';
	for my $l (1 .. 1 + int(rand(5)))
	{
		my $nf = rand() < 0.85 ? 4 : pick(3, 5);
		$data .= join($delim, map { field($_, $csv) } 0 .. $nf - 1);
		$data .= rand() < 0.95 ? $eol : pick(@eols);
	}
	$data .= "\\.$eol" . field(0, $csv) if rand() < 0.1;
	chop $data if rand() < 0.1;
	check("random $i", $opts, $data, 0);
}

# ---- single-byte server encodings: LATIN1 (and a LATIN1 client), SQL_ASCII ----
for my $enc ([ 'latin1', 'LATIN1', "SET client_encoding = 'LATIN1';\n" ],
	[ 'sqlascii', 'SQL_ASCII', '' ])
{
	($db, $session_setup) = ($enc->[0], $enc->[2]);
	$node->safe_psql('postgres',
		"CREATE DATABASE $db ENCODING '$enc->[1]' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	$node->safe_psql($db, $setup);
	for my $t (@text)
	{
		check("$db text $t->[0]", $t->[1], $t->[2], 0);
	}
	for my $t (@csv)
	{
		check("$db csv $t->[0]", $t->[1], $t->[2], 0);
	}
	for my $i (1 .. 60)
	{
		my $csv = $i % 2;
		my $opts = $csv ? pick(@copts) : pick(@topts);
		my $delim = $opts =~ /delimiter '(.)'/ ? $1 : ($csv ? ',' : "\t");
		my $data = '';
		for my $l (1 .. 1 + int(rand(4)))
		{
			$data .= join($delim, map { field($_, $csv) } 0 .. 3) . pick(@eols);
		}
		check("$db random $i", $opts, $data, 0);
	}
}
($db, $session_setup) = ('postgres', '');

# ---- cancellation: a COPY FROM STDIN in talaria's reader, between rows ----
{
	my ($in, $out, $err) = ("SET client_min_messages = debug1;\nLOAD 'talaria_transform';\n"
		  . "COPY fz_src (a, b, c, n) FROM STDIN;\n" . ("cancel\tb\tc\t1\n" x 1000), '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump while length $in;
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM pg_stat_progress_copy}),
		'the COPY waits for the client inside the reader');
	$node->safe_psql('postgres',
		q{SELECT pg_cancel_backend(pid) FROM pg_stat_progress_copy});
	# (a backend waiting for CopyData takes the cancel with the next row, as
	# PostgreSQL's own reader does)
	$in .= "cancel\tb\tc\t2\n" x 10 . "\\.\nSELECT 'session ' || 'usable';\n";
	$h->finish;
	like($err, qr/talaria's reader/, 'cancel: the COPY ran in talaria\'s reader');
	like($err, qr/canceling statement due to user request/, 'cancel: the COPY is canceled');
	like($out, qr/session usable/, 'cancel: the session goes on');
	is($node->safe_psql('postgres', q{SELECT count(*) FROM fz_dst WHERE a = 'cancel'}),
		'0', 'cancel: nothing of the COPY is stored');
}

is(scalar(@diffs), 0, 'both readers agree on every input')
  or diag(join("\n", @diffs[ 0 .. ($#diffs < 9 ? $#diffs : 9) ]));
cmp_ok($errors, '>=', 60, "inputs rejected alike: $errors");
cmp_ok($stored, '>=', 60, "inputs stored alike: $stored");
note("cases $cases, same $same, errors $errors, stored $stored");

$node->stop;
done_testing();
