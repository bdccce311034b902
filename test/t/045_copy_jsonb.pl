# jsonb fields of a COPY into a pipeline source: talaria's reader parses
# them itself (src/json_input.c) and must store exactly what jsonb_in
# stores, and leave every input it does not take to jsonb_in, so that
# each error is jsonb_in's own.  Compared with PostgreSQL's reader
# (talaria.copy_fast_reader = off, which runs jsonb_in) on seeded random
# documents (nested objects and arrays, duplicate keys, keys sharing long
# prefixes, every escape, surrogate pairs, numbers of every form, odd
# whitespace) and on mutations of them, most of them invalid.  Set
# TT_JSONB_SEED to try other documents.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{TT_JSONB_SEED} // 4242;
srand($seed);
note("seed $seed");

my $node = PostgreSQL::Test::Cluster->new('copy_jsonb');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;
$node->safe_psql(
	'postgres', q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('js_id', $$
		function main(row)
		  row.ts = '2024-01-01 00:00:00+00'
		  return row
		end$$);
	CREATE TABLE js_src (id int, doc jsonb);
	CREATE TABLE js_dst (ts timestamptz NOT NULL, id int, doc jsonb) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('js_dst', 'ts', '1 day', NULL, 0);
	CREATE TABLE js_dst_p20240101 PARTITION OF js_dst
		FOR VALUES FROM ('2024-01-01') TO ('2024-01-02');
	SELECT talaria.create_pipeline('js_src', 'js_dst', 'js_id');
});

# ---------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------
sub pick { return $_[ int(rand(@_)) ]; }

sub ws
{
	return rand() < 0.7 ? '' : pick(' ', "\n", "\t", "\r", '  ', " \n ");
}

my @keys = (
	'a', 'b', 'id', 'key1', 'key2', '', 'abcdefgh', 'abcdefgh1',
	'abcdefgh2', 'abcdefghi', "\x{e9}", 'k\u0041', 'x\"y', 'B', 'aa',
	'longer key with spaces');

sub str_piece
{
	return pick(
		'plain', 'with space', "caf\x{e9}", "\x{1F600}", '\"', '\\\\', '\/',
		'\b', '\f', '\n', '\r', '\t', '\u00e9', '\u0041', '\uD83D\uDE00',
		'\u001f', '\u007F', '\u20AC', '\uDBFF\uDFFF', '\u0001', 'x', '');
}

sub gen_string
{
	my $s = '';
	$s .= str_piece() for 1 .. int(rand(4));
	return "\"$s\"";
}

sub gen_number
{
	my $r = rand();
	my $sign = rand() < 0.3 ? '-' : '';
	if ($r < 0.35)
	{
		my $n = 1 + int(rand(20));
		my $d = join('', map { int(rand(10)) } 1 .. $n);
		$d =~ s/^0+(?=\d)//;
		return $sign . $d;
	}
	return pick(
		'0', '-0', '20.00', '1.50', '0.0001', '1e2', '1E+2', '1.5e-3',
		'2e999', '-2E-999', '0e0', '0.0', '1e0001', '123456789012345678',
		'1234567890123456789', '-9223372036854775808', '9223372036854775807',
		'9223372036854775808', '100', '10000', '100000000', '3.14159265358979323846',
		'1' . ('0' x 40), '0.' . ('0' x 30) . '1')
	  if $r < 0.9;
	return $sign . int(rand(1000)) . '.' . int(rand(1000));
}

sub gen_value
{
	my ($depth) = @_;
	my $r = rand();
	if ($depth < 5 && $r < 0.25)
	{
		my @m;
		for (1 .. int(rand(8)))
		{
			my $k = rand() < 0.8 ? '"' . pick(@keys) . '"' : gen_string();
			push @m, ws() . $k . ws() . ':' . gen_value($depth + 1) . ws();
		}
		return ws() . '{' . join(',', @m) . ws() . '}' . ws();
	}
	if ($depth < 5 && $r < 0.4)
	{
		my @items = map { gen_value($depth + 1) } 1 .. int(rand(5));
		return ws() . '[' . join(',', @items) . ws() . ']' . ws();
	}
	return ws() . gen_string() . ws() if $r < 0.6;
	return ws() . gen_number() . ws() if $r < 0.85;
	return ws() . pick('true', 'false', 'null') . ws();
}

sub gen_doc
{
	my $r = rand();
	# deeper than the fast parser goes (64): jsonb_in's
	return ('[' x 70) . '1' . (']' x 70) if $r < 0.01;
	return ('{"a":' x 60) . '1' . ('}' x 60) if $r < 0.02;
	return gen_value(0) if $r < 0.1;
	my $v;
	do { $v = gen_value(0) } until $v =~ /^\s*\{/;
	return $v;
}

my @inserts = (
	'"', '{', '}', '[', ']', ',', ':', '\\', 'u', '0', '1', 'e', '-', '.',
	' ', 't', 'x', "\x01", "\x7f", "\x{e9}", "\t");
my @replacements = (
	'\u0000', '\ud800', '\udc00x', '\uD83Dx', '\u12', '\x', 'tru', 'truex',
	'01', '1.', '-', '.5', 'NaN', 'Infinity', '1e', '1e+', '--1', '0x10',
	'nul', 'True', '{}}', '[,]', '{"a"}', '{"a":}', '{,}', '"\q"', '1 2');

sub mutate
{
	my ($doc) = @_;
	$doc =~ s/[\n\r]/ /g;
	for (1 .. 1 + int(rand(3)))
	{
		my $len = length($doc);
		my $at = int(rand($len + 1));
		my $r = rand();
		if ($r < 0.3 && $len > 0)
		{
			substr($doc, $at < $len ? $at : $len - 1, 1) = '';
		}
		elsif ($r < 0.6)
		{
			substr($doc, $at, 0) = pick(@inserts);
		}
		elsif ($r < 0.7)
		{
			$doc = substr($doc, 0, $at);
		}
		else
		{
			my $n = int(rand(4));
			$n = $len - $at if $at + $n > $len;
			substr($doc, $at, $n) = pick(@replacements);
		}
	}
	return $doc;
}

sub csv_line
{
	my ($id, $doc) = @_;
	(my $q = $doc) =~ s/"/""/g;
	return "$id,\"$q\"\n";
}

# ---------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------
my $show = q{SELECT coalesce(string_agg(id || ' ' || coalesce(doc::text, '<null>') || ' '
	|| coalesce(pg_column_size(doc)::text, ''), E'\n' ORDER BY id), '<none>') FROM js_dst;};

# The script (COPYs from STDIN) with the reader on or off: what a user sees,
# and how many jsonb values the fast parser and jsonb_in took.
sub run_script
{
	my ($reader, $body) = @_;
	my $sql =
	    "SET talaria.copy_fast_reader = $reader; LOAD 'talaria_transform';\n"
	  . "TRUNCATE js_dst;\nSET client_min_messages = debug1;\n$body"
	  . "RESET client_min_messages;\n$show\n";
	my ($out, $err) = ('', '');
	$node->psql(
		'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 0);
	my ($fast, $slow) = (0, 0);
	while ($err =~ /parsed (\d+) jsonb values itself and (\d+) with jsonb_in/g)
	{
		$fast += $1;
		$slow += $2;
	}
	$err =~ s/^.*(DEBUG|LOG):.*\n//mg;
	return ("$out\n$err", $fast, $slow);
}

sub compare
{
	my ($name, $body, $rows) = @_;
	my ($on, $fast, $slow) = run_script('on', $body);
	my ($off) = run_script('off', $body);
	is($on, $off, "$name: the same rows and errors as jsonb_in");
	return ($on, $fast, $slow);
}

# valid documents, one COPY
my $n_valid = 3000;
my $body = "COPY js_src FROM STDIN (FORMAT csv);\n";
my $expect_slow = 0;
for (1 .. $n_valid)
{
	my $doc = gen_doc();
	# what the fast parser leaves to jsonb_in: nesting deeper than 64, an
	# exponent of four digits
	$expect_slow++ if $doc =~ /^\[{70}/ || $doc =~ /[eE][+-]?\d{4}/;
	$body .= csv_line($_, $doc);
}
$body .= "\\.\n";
my ($out, $fast, $slow) = compare('generated documents', $body);
my $stored = () = $out =~ /^ *\d+ [\[\{"0-9a-z<-]/mg;
is($stored, $n_valid, "all $n_valid generated documents stored");
is($fast + $slow, $n_valid, 'every document counted');
is($slow, $expect_slow,
	"jsonb_in took only the deep ones and the long exponents ($slow; the fast parser $fast)");

# mutations, one COPY each: most fail, all as jsonb_in fails
my $n_mut = 1500;
$body = '';
for my $i (1 .. $n_mut)
{
	$body .= "COPY js_src FROM STDIN (FORMAT csv);\n"
	  . csv_line($i, mutate(gen_doc())) . "\\.\n";
}
($out, $fast, $slow) = compare('mutated documents', $body);
my $errs = () = $out =~ /ERROR:/g;
note("mutated: $errs errors, fast parser $fast, jsonb_in $slow");
cmp_ok($errs, '>', $n_mut / 2, "most mutations are errors ($errs)");
cmp_ok($fast, '>', 0, 'some mutations stayed valid and were parsed fast');

# hand-made: each edge once, the same in both
my @edges = (
	'{"price":20.00,"score":20,"key1":1}', '{"a":1,"a":2,"b":{"a":3,"a":4}}',
	'{"":1,"":2}', '5', '"s"', 'null', 'true', '[]', '{}', ' {} ',
	"\t[1,\n2]\r\n", '{"a":"\u00e9\ud83d\ude00\/"}', '{"a":"\u0000"}',
	'{"a":"\ud800"}', '{"a":"\udc00"}', '{"a":"\ud800\u0041"}',
	'{"a":1e1000}', '{"a":1e999}', '{"a":-0}', '{"a":-0.0}',
	'{"a":00}', '{"a":1}x', '{"a":1,}', '[1,]', '', ' ', '{"a" 1}',
	"{\"a\":\"tab\there\"}", '{"a":"\u00E9"}', '{"a":"\U00e9"}',
	'{"a":.5}', '{"a":+1}', '{"a":1.e5}', '{"a":tRue}', '[nulll]',
	'{"a":[[[[[]]]]]}', '"\uDBFF\uDFFF"', '1' . ('0' x 1200),
	'[' . ('1,' x 100) . '1]');
$body = '';
my $i = 0;
for my $d (@edges)
{
	$i++;
	$body .= "COPY js_src FROM STDIN (FORMAT csv);\n" . csv_line($i, $d) . "\\.\n";
}
($out) = compare('hand-made edges', $body);
like($out, qr/^ *1 \{"key1": 1, "price": 20.00, "score": 20\} /m,
	'a number keeps its text');
like($out, qr/^ *2 \{"a": 2, "b": \{"a": 4\}\} /m, 'the last of equal keys wins');
like($out, qr/unsupported Unicode escape sequence/, '\u0000 is refused');

done_testing();
