# A session's first COPY into a pipeline source, with no configuration: the
# library is loaded only at the COPY's first row (PostgreSQL's reader has
# begun), and talaria's reader takes over the rest of the input from there
# (the DEBUG1 line names it).  Every case runs in a brand-new session that
# has not loaded talaria_transform, and must store the same rows, or fail
# with the same error and context, as the same COPY through the row
# trigger (talaria.copy_fast_path = off).  COPYs the direct path does not
# take (WHERE, another trigger, binary, another encoding, a view) are not
# taken over either.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('first_copy');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('fc_up', $$
		function main(row)
		  if type(row.s) == 'string' then row.s = string.upper(row.s) end
		  return row
		end$$);
	CREATE SEQUENCE fc_seq;
	CREATE TABLE fc_src (ts timestamptz, n int, s text);
	CREATE TABLE fc_dst (ts timestamptz NOT NULL, n int, s text,
		seq bigint DEFAULT nextval('fc_seq')) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('fc_dst', 'ts', '1 day', NULL, 0);
	CREATE TABLE fc_dst_2001 PARTITION OF fc_dst FOR VALUES FROM ('2001-01-01') TO ('2002-01-01');
	SELECT talaria.create_pipeline('fc_src', 'fc_dst', 'fc_up');
	CREATE TABLE fc_src2 (LIKE fc_src);
	SELECT talaria.create_pipeline('fc_src2', 'fc_dst', 'fc_up');
	CREATE FUNCTION fc_other() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
	CREATE TRIGGER fc_other BEFORE INSERT ON fc_src2 FOR EACH ROW EXECUTE FUNCTION fc_other();
	CREATE VIEW fc_view AS SELECT NULL::timestamptz AS ts, NULL::int AS n, NULL::text AS s WHERE false;
	SELECT talaria.create_pipeline('fc_view', 'fc_dst', 'fc_up');
});
# no session below has loaded the library before its COPY
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_settings WHERE name ~ 'preload' AND setting <> ''}),
	'0', 'no preload setting');

my $dir = PostgreSQL::Test::Utils::tempdir;
my $show = q{SELECT coalesce(string_agg(concat_ws('|', ts, n, quote_nullable(s)), E'\n' ORDER BY seq), '<none>') FROM fc_dst;};

# One COPY in a new session; returns (what a user sees, the DEBUG1 line).
sub first_copy
{
	my ($settings, $copy, $data, $via_stdin, $opts) = @_;
	$opts = $opts ? " $opts" : '';
	my $sql = "TRUNCATE fc_dst;\n${settings}SET client_min_messages = debug1;\n";
	if ($via_stdin)
	{
		$sql .= "COPY $copy FROM STDIN$opts;\n$data\\.\n";
	}
	else
	{
		open(my $fh, '>:raw', "$dir/in.dat") or die "in.dat: $!";
		print $fh $data;
		close($fh);
		$sql .= "COPY $copy FROM '$dir/in.dat'$opts;\n";
	}
	$sql .= "RESET client_min_messages;\n$show\n";
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql);
	my ($debug) = $stderr =~ /DEBUG:\s+(talaria: COPY into \S+ feeds[^\n]*)/;
	my @errors = grep { !/^\S*DEBUG/ } split /\n/, $stderr;
	@errors = grep { /ERROR|CONTEXT/ } @errors;
	s/^psql:<stdin>:\d+: // for @errors;
	return ("$stdout\n" . join("\n", @errors), $debug // '');
}

my $big_rows = join('', map {
	sprintf("2001-01-%02d %02d:%02d:00+00\t%d\t%s\n", 1 + $_ % 28, $_ % 24, $_ % 60, $_,
		('x' x ($_ % 97)) . "\\t\xc3\xa9\\\\" . ($_ % 2 ? '' : ' tail'))
} 1 .. 4000);
my $crlf = "2001-01-01 00:00:00+00,1,a\r\n2001-01-02 00:00:00+00,2,\"b,\"\"c\"\"\"\r\n2001-01-03 00:00:00+00,3,\r\n";
my $bad_late = join('', map { "2001-02-01 00:00:00+00\t$_\tr$_\n" } 1 .. 3000)
  . "2001-02-01 00:00:00+00\tnotanint\tz\n2001-02-01 00:00:00+00\t7\tafter\n";
my $bad_bytes = join('', map { "2001-03-01 00:00:00+00\t$_\tok\n" } 1 .. 5000)
  . "2001-03-01 00:00:00+00\t1\tbad\xff\n";

# name, COPY target and options, data, the direct path expected
my @cases = (
	[ 'text, many chunks, escapes, multibyte', 'fc_src', $big_rows, 1 ],
	[ 'one row', 'fc_src', "2001-01-01 00:00:00+00\t1\tonly\n", 1 ],
	[ 'two rows', 'fc_src', "2001-01-01 00:00:00+00\t1\tx\n2001-01-01 00:00:00+00\t2\t\\N\n", 1 ],
	[ 'CSV with header, CRLF, quotes', "fc_src (ts, n, s)",
		"ts,n,s\r\n$crlf", 1, '(FORMAT csv, HEADER)' ],
	[ 'column list, missing column default', "fc_src (n, ts)",
		"1\t2001-01-01 00:00:00+00\n2\t2001-01-02 00:00:00+00\n", 1 ],
	[ 'error after the first chunk', 'fc_src', $bad_late, 1 ],
	[ 'error in the first row', 'fc_src', "2001-01-01 00:00:00+00\tx\ty\n2001-01-01 00:00:00+00\t1\ty\n", 0 ],
	[ 'extra column in the second row', 'fc_src',
		"2001-01-01 00:00:00+00\t1\ta\n2001-01-01 00:00:00+00\t2\tb\textra\n", 1 ],
	[ 'invalid UTF-8 late', 'fc_src', $bad_bytes, 1 ],
	[ 'WHERE', 'fc_src', "2001-01-01 00:00:00+00\t1\ta\n2001-01-01 00:00:00+00\t2\tb\n", 0, 'WHERE n > 1' ],
	[ 'another trigger on the source', 'fc_src2', "2001-01-01 00:00:00+00\t1\ta\n2001-01-01 00:00:00+00\t2\tb\n", 0 ],
	[ 'a view source', 'fc_view', "2001-01-01 00:00:00+00\t1\ta\n2001-01-01 00:00:00+00\t2\tb\n", 0 ],
	[ 'another file encoding', "fc_src",
		"2001-01-01 00:00:00+00\t1\t\xe9\n2001-01-01 00:00:00+00\t2\tb\n", 0, "(ENCODING 'LATIN1')" ],
	[ 'binary', "fc_src", '', 0, '(FORMAT binary)' ],
);

foreach my $c (@cases)
{
	my ($name, $copy, $data, $direct, $opts) = @$c;
	foreach my $stdin (0, 1)
	{
		my $how = $stdin ? 'stdin' : 'file';
		my ($trigger_path, $dbg0) = first_copy("SET talaria.copy_fast_path = off;\n", $copy, $data, $stdin, $opts);
		my ($first, $dbg) = first_copy('', $copy, $data, $stdin, $opts);
		is($first, $trigger_path, "$name ($how): as through the trigger");
		is($dbg0, '', "$name ($how): copy_fast_path = off is not taken over");
		if ($direct)
		{
			like($dbg, qr/directly after its first row \(talaria's reader\)/,
				"$name ($how): talaria's reader took over");
		}
		else
		{
			is($dbg, '', "$name ($how): not taken over");
		}
	}
}

# a later COPY of the same session takes the direct path from its start
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET client_min_messages = debug1;\nCOPY fc_src FROM STDIN;\n2001-01-01 00:00:00+00\t1\ta\n\\.\n"
	  . "COPY fc_src FROM STDIN;\n2001-01-01 00:00:00+00\t2\tb\n\\.\n");
like($stderr, qr/after its first row.*\n.*feeds its pipeline directly \(talaria's reader\)/s,
	'first COPY taken over, the second direct from the start');

done_testing();
