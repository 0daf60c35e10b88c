# PGXS build for the migrate extension.
EXTENSION = migrate
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -E "s/.*'(.*)'/\1/")

MODULE_big = migrate
OBJS = src/migrate.o src/version.o src/checksum.o src/script.o src/catalog.o \
       src/expect.o src/plan.o src/register.o src/drift.o src/files.o src/apply.o src/execute.o src/verify.o src/validate.o \
       src/commit.o src/lint.o src/lockwait.o src/lifecycle.o src/tool_histories.o src/import.o src/history.o src/jobs.o src/worker.o src/batch.o


# Install script of the current version, then the append-only upgrade chain.
DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress tests: sql/<name>.sql -> expected/<name>.out
REGRESS = $(sort $(basename $(notdir $(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=.

PG_CPPFLAGS = -DMIGRATE_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header (PGXS tracks no header dependencies)
$(OBJS): src/migrate.h
