# talaria_transform: PGXS build
EXTENSION = talaria_transform
MODULE_big = talaria_transform

SRCS = $(sort $(wildcard src/*.c))
OBJS = $(SRCS:.c=.o)
DATA = $(wildcard sql/talaria_transform--*.sql)
HEADERS_talaria_transform = src/include/talaria_transform.h

# pg_regress tests: every sql/*.sql that is not an install/upgrade script
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/talaria_transform--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=talaria_transform
ISOLATION = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=talaria_transform

LUA_CFLAGS := $(shell pkg-config --cflags luajit json-c)
LUA_LIBS := $(shell pkg-config --libs luajit json-c)

PG_CPPFLAGS = -Isrc -Isrc/include $(LUA_CFLAGS)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(LUA_LIBS)

EXTRA_CLEAN = test/plugins/*.so test/results test/output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): src/talaria.h src/lua_common.h src/include/talaria_transform.h
