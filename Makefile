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

PG_CPPFLAGS = -Isrc -Isrc/include $(LUA_CFLAGS)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(LUA_LIBS)

EXTRA_CLEAN = test/plugins/*.so test/plugins/*.o test/results test/output_iso

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

test-plugins: $(TEST_PLUGINS) test/plugins/trim.o

# Installed under $libdir so the tests name them the same way on every
# machine; also a few files that registration must refuse.
install-test-plugins: test-plugins
	$(MKDIR_P) '$(DESTDIR)$(TEST_PLUGIN_DIR)' '$(DESTDIR)$(TEST_PLUGIN_DIR)_outside'
	$(INSTALL_SHLIB) $(TEST_PLUGINS) '$(DESTDIR)$(TEST_PLUGIN_DIR)/'
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
bench-instructions:
	bash test/bench/instructions.sh

.PHONY: bench bench-instructions
