# talaria_transform: PGXS build
EXTENSION = talaria_transform
MODULE_big = talaria_transform

SRCS = $(sort $(wildcard src/*.c))
OBJS = $(SRCS:.c=.o)
DATA = $(wildcard sql/talaria_transform--*.sql)
HEADERS_talaria_transform = src/include/talaria_transform.h

# pg_regress tests: every sql/*.sql that is not an install/upgrade script
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/talaria_transform--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=talaria_transform --encoding=UTF8
ISOLATION = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=talaria_transform

# LuaJIT is not linked: lua_api.c dlopens it privately (see lua_api.h)
LUA_CFLAGS := $(shell pkg-config --cflags luajit)
LUA_LIBS := -ldl

PG_CPPFLAGS = -Isrc -Isrc/include $(LUA_CFLAGS) -I$(shell $(PG_CONFIG) --includedir)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(LUA_LIBS)
# libpq: statements on foreign servers (scaleout.c), as postgres_fdw and dblink
SHLIB_LINK_INTERNAL = $(libpq)

EXTRA_CLEAN = test/plugins/*.so test/plugins/*.o test/plugins/go_*.h test/plugins/go/.cache \
	test/plugins/go/.gopath test/results test/output_iso

# pg_regress loads the test plugins from $libdir/talaria_test_plugins
REGRESS_PREP = install-test-plugins

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): src/talaria.h src/lua_common.h src/include/talaria_transform.h

# Sample and test native plugins: each built the way a plugin author
# builds one, a single cc command against the public header alone.
TEST_PLUGINS = $(patsubst %.c,%.so,$(wildcard test/plugins/*.c))
TEST_PLUGIN_DIR = $(pkglibdir)/talaria_test_plugins

test/plugins/%.so: test/plugins/%.c src/include/talaria_transform.h
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -Isrc/include -o $@ $<

test/plugins/trim.o: test/plugins/trim.c src/include/talaria_transform.h
	$(CC) -c -fPIC -O2 -Isrc/include -o $@ $<

# Samples in Go and Rust (test/plugins/go, test/plugins/rust), built with
# Debian's toolchains as their README sections say: cgo and go build
# -buildmode=c-shared (golang-go), a cdylib from one file (rustc, no
# crates).  Go's build cache does not look into headers outside the
# package, so the header's hash is part of CGO_CFLAGS.
GO ?= /usr/bin/go
RUSTC ?= /usr/bin/rustc
LANG_PLUGINS = test/plugins/go_trim.so test/plugins/go_trim_v1.so \
	test/plugins/go_spin.so test/plugins/rust_trim.so

# $(call go_plugin,package directory,header directory); the build cache is
# in the tree, so no $HOME is needed
go_plugin = cd $(1) && GOPROXY=off GOFLAGS=-buildvcs=false CGO_ENABLED=1 \
	GOCACHE=$(abspath test/plugins/go/.cache) GOPATH=$(abspath test/plugins/go/.gopath) \
	CGO_CFLAGS="-O2 -Wall -Werror -I$(abspath $(2)) -DTT_HEADER_$(firstword $(shell sha1sum $(2)/talaria_transform.h))" \
	$(GO) build -buildmode=c-shared -o $(abspath $@) .

test/plugins/go_trim.so: $(wildcard test/plugins/go/trim/*) src/include/talaria_transform.h
	$(call go_plugin,test/plugins/go/trim,src/include)

# the same source against the header as shipped in 0.1.0 (ABI version 1,
# without the members 0.3.0 appended to tt_host)
test/plugins/go_trim_v1.so: $(wildcard test/plugins/go/trim/*) test/plugins/abi_v1/talaria_transform.h
	$(call go_plugin,test/plugins/go/trim,test/plugins/abi_v1)

test/plugins/go_spin.so: $(wildcard test/plugins/go/spin/*) src/include/talaria_transform.h
	$(call go_plugin,test/plugins/go/spin,src/include)

test/plugins/rust_trim.so: test/plugins/rust/trim/trim.rs
	$(RUSTC) --edition 2021 --crate-type cdylib -C opt-level=2 -C strip=debuginfo -D warnings -o $@ $<

test-plugins: $(TEST_PLUGINS) test/plugins/trim.o $(LANG_PLUGINS)

# Installed under $libdir so the tests name them the same way on every
# machine; also a few files that registration must refuse.
install-test-plugins: test-plugins
	$(MKDIR_P) '$(DESTDIR)$(TEST_PLUGIN_DIR)' '$(DESTDIR)$(TEST_PLUGIN_DIR)_outside'
	$(INSTALL_SHLIB) $(TEST_PLUGINS) $(LANG_PLUGINS) '$(DESTDIR)$(TEST_PLUGIN_DIR)/'
	$(INSTALL_DATA) test/plugins/trim.o '$(DESTDIR)$(TEST_PLUGIN_DIR)/object.so'
	$(INSTALL_DATA) test/plugins/notelf.txt '$(DESTDIR)$(TEST_PLUGIN_DIR)/notelf.so'
	$(INSTALL_SHLIB) test/plugins/trim.so '$(DESTDIR)$(TEST_PLUGIN_DIR)_outside/'
	ln -sf ../talaria_test_plugins_outside/trim.so '$(DESTDIR)$(TEST_PLUGIN_DIR)/escape.so'

.PHONY: test-plugins install-test-plugins

# The benchmark: every path against PostgreSQL's floor and the peers, one
# run on this machine (test/bench/run.sh; BENCH_ROWS=200000 for a quick run,
# BENCH_CASES='first_*,...' for some cases, BENCH_LIST=1 lists them)
bench:
	bash test/bench/run.sh

# Instructions per row under callgrind (noise-free; after make install and
# make install-test-plugins): test/bench/instructions.sh
bench-instructions: install install-test-plugins
	bash test/bench/instructions.sh

# Pipelines into partitions on two remote servers (postgres_fdw), against
# plain COPY and INSERT ... SELECT into them, on three local clusters
bench-foreign:
	bash test/bench/foreign.sh

# Partitions made on demand against premade: 60 new days in one COPY
bench-partitions:
	bash test/bench/new_partitions.sh

.PHONY: bench bench-instructions bench-foreign bench-partitions
