# Shared helpers for test/run.sh, test/demo.sh and test/bench: dependencies,
# build, and a throwaway cluster run as the postgres user.

TT_PACKAGES="postgresql-15 postgresql-server-dev-15 libkrb5-dev libluajit2-5.1-dev pkg-config make gcc libipc-run-perl postgresql-15-pllua postgresql-15-pgaudit python3-psycopg2 pgloader golang-go rustc cargo"

tt_install_deps() {
	local missing=""
	for p in $TT_PACKAGES ${TT_EXTRA_PACKAGES:-}; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
			echo "could not install:$missing" >&2; return 1; }
	fi
	# PG_CONFIG may name a relocated copy of the server's install tree (a
	# private install for parallel work: cp -a /usr/lib/postgresql,
	# /usr/share/postgresql and /usr/include/postgresql under one prefix).
	PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
	export PG_CONFIG
	export PATH="$("$PG_CONFIG" --bindir):$PATH"
}

tt_build_install() {
	make -s >/dev/null && make -s install >/dev/null
}

tt_free_port() {
	local port
	for port in $(seq 54320 54400); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null &&
			[ ! -e "/tmp/.s.PGSQL.$port" ]; then
			echo "$port"; return 0
		fi
	done
	return 1
}

# Starts a cluster in a fresh directory; exports TT_DATA, TT_SOCKDIR, TT_PORT.
tt_start_cluster() {
	TT_DATA=$(mktemp -d /tmp/talaria_data.XXXXXX)
	TT_SOCKDIR=$(mktemp -d /tmp/talaria_sock.XXXXXX)
	TT_PORT=$(tt_free_port) || return 1
	chown postgres "$TT_DATA" "$TT_SOCKDIR"
	export TT_DATA TT_SOCKDIR TT_PORT
	runuser -u postgres -- initdb -D "$TT_DATA" -A trust -U postgres --no-locale -E UTF8 >/dev/null || return 1
	cat >>"$TT_DATA/postgresql.conf" <<CONF
listen_addresses = ''
port = $TT_PORT
unix_socket_directories = '$TT_SOCKDIR'
fsync = off
max_locks_per_transaction = 256
${TT_EXTRA_CONF:-}
CONF
	runuser -u postgres -- pg_ctl -D "$TT_DATA" -l "$TT_DATA/server.log" -w start >/dev/null || {
		cat "$TT_DATA/server.log"; return 1; }
	export PGHOST="$TT_SOCKDIR" PGPORT="$TT_PORT" PGUSER=postgres
}

tt_stop_cluster() {
	[ -n "${TT_DATA:-}" ] || return 0
	runuser -u postgres -- pg_ctl -D "$TT_DATA" -m fast -w stop >/dev/null 2>&1
	rm -rf "$TT_DATA" "$TT_SOCKDIR"
	TT_DATA=""
}
