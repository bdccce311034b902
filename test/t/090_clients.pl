# Real loaders against pipelines: psycopg2 (execute, executemany, COPY
# through copy_expert) sees the rows stored in its rowcount; pgloader with
# a poisoned row rejects that row and loads the rest.  Rows in = stored +
# dead letters (+ rejected by the loader) every time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $python = '/usr/bin/python3';
plan skip_all => 'python3-psycopg2 is not installed'
  unless system("$python -c 'import psycopg2' 2>/dev/null") == 0;

my $node = PostgreSQL::Test::Cluster->new('clients');
$node->init;
$node->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION talaria_transform;
	SELECT talaria.register_lua('check', $$
	  function main(r)
	    if r.v < 0 then error("negative v " .. r.v) end
	    if r.v == 0 then return nil end
	    return r
	  end$$);
	CREATE TABLE ev (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
	SELECT talaria.create_time_table('ev', 'ts', '1 day', premake => 0);
	CREATE TABLE raw_dl (ts timestamptz, v int);
	CREATE TABLE raw_abort (ts timestamptz, v int);
	SELECT talaria.create_pipeline('raw_dl', 'ev', 'check', on_error => 'dead_letter');
	SELECT talaria.create_pipeline('raw_abort', 'ev', 'check');
});

# the library is loaded at session start (as with shared_preload_libraries):
# loaded on first use instead, it is not yet there to count the session's
# very first statement (README: Errors)
my $dsn = sprintf("host=%s port=%d dbname=postgres options='-c session_preload_libraries=talaria_transform'",
	$node->host, $node->port);
my $script = <<'PY';
import io, sys, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
out = []
# one INSERT of 5 rows: one dropped by nil, one dead letter
cur.execute("INSERT INTO raw_dl VALUES ('2001-02-03', 1), ('2001-02-03', 0), "
            "('2001-02-03', -1), ('2001-02-04', 2), ('2001-02-05', 3)")
out.append("execute %d" % cur.rowcount)
# executemany: psycopg2 adds up each statement's count
cur.executemany("INSERT INTO raw_dl VALUES (%s, %s)",
                [('2001-02-03', 10), ('2001-02-03', -10), ('2001-02-06', 11), ('2001-02-06', 0)])
out.append("executemany %d" % cur.rowcount)
# COPY FROM STDIN
data = "".join("2001-02-%02d\t%d\n" % (3 + i % 5, v) for i, v in enumerate([20, 21, -22, 0, 23, 24]))
cur.copy_expert("COPY raw_dl FROM STDIN", io.StringIO(data))
out.append("copy %d" % cur.rowcount)
conn.commit()
# abort mode: the statement fails with class 22, nothing of it is stored
try:
    cur.execute("INSERT INTO raw_abort VALUES ('2001-02-03', 30), ('2001-02-03', -31)")
    out.append("abort no error")
except psycopg2.Error as e:
    out.append("abort %s" % e.pgcode)
    conn.rollback()
print(" | ".join(out))
PY
my ($stdout, $stderr);
IPC::Run::run([ $python, '-c', $script, $dsn ], '>', \$stdout, '2>', \$stderr);
chomp $stdout;
is($stdout, 'execute 3 | executemany 2 | copy 4 | abort 22000',
	'psycopg2: rowcount is the rows stored; a failing transform is SQLSTATE class 22')
  or diag($stderr);
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev'), '9', 'psycopg2: 9 rows stored');
is($node->safe_psql('postgres', 'SELECT count(*) FROM talaria.dead_letters'), '3',
	'psycopg2: 3 dead letters (15 rows in = 9 stored + 3 dropped by nil + 3 dead letters)');

SKIP:
{
	skip 'pgloader is not installed', 3 unless -x '/usr/bin/pgloader';
	my $tmp = PostgreSQL::Test::Utils::tempdir;
	open(my $fh, '>', "$tmp/events.csv") or die;
	for my $i (1 .. 500)
	{
		# row 250 is poisoned: the transform rejects it
		printf $fh "2001-03-%02d 04:05:06+00,%d\n", 1 + $i % 20, $i == 250 ? -250 : $i;
	}
	close $fh;
	my $load = <<"LOAD";
LOAD CSV FROM '$tmp/events.csv' (ts, v)
  INTO postgresql://postgres\@127.0.0.1:@{[$node->port]}/postgres?raw_abort (ts, v)
  WITH fields terminated by ',', batch rows = 100, workers = 1, concurrency = 1;
LOAD
	open($fh, '>', "$tmp/events.load") or die;
	print $fh $load;
	close $fh;
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/bin/pgloader', '--root-dir', "$tmp/pgloader", "$tmp/events.load" ],
		'>', \$out, '2>', \$err);
	is($node->safe_psql('postgres', q{SELECT count(*) FROM ev WHERE ts >= '2001-03-01'}), '499',
		'pgloader: every good row of the batch with the poisoned one is stored')
	  or diag("$out\n$err");
	like("$out\n$err", qr/raw_abort"\s+[1-9]\d*\s+499\s/m, 'pgloader reports errors and 499 rows')
	  or diag("$out\n$err");
	ok(-s "$tmp/pgloader/raw_abort.dat" || grep({ -s $_ } glob("$tmp/pgloader/*/raw_abort.dat")),
		'pgloader wrote the rejected row to its reject file');
}

$node->stop;
done_testing();
