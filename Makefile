# pg_distcount: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine.
#
#   make demo    install what is missing, build, install, start a local cluster, run the demo
#   make test    the same set-up, then every test layer; last line: "N passed, N failed"
#   make bench   benchmarks (tests/bench/), each against its anchor, medians and ratios
#   make stop    stop the demo cluster
#   make psql    open psql on the demo cluster
#
# Each takes PG=15|16|17|18 (default 15, Debian's server; the others are fetched once into a
# cache outside the checkout, see tests/tools/postgres.sh), or PG_CONFIG=/path/to/pg_config.

ifeq ($(origin PG_CONFIG),undefined)
PG        ?= 15
PG_CONFIG := $(shell tests/tools/postgres.sh pg_config $(PG))
endif
export PG PG_CONFIG
# What `make psql` and `make stop` need to find the same cluster again.
SAME_PG   := $(if $(filter command line environment,$(origin PG_CONFIG)),PG_CONFIG=$(PG_CONFIG),$(if $(filter-out 15,$(PG)),PG=$(PG)))
CLUSTER   := tests/tools/cluster.sh
# sudo only where the server's library directory is not writable (not for a server one owns).
SUDO_FLAG  = $(if $(shell test -w "$$($(PG_CONFIG) --pkglibdir)" && echo w),,--sudo)

.PHONY: all demo test bench stop psql deps install clean prune

all: install

deps:
	@tests/tools/install_deps.sh

install: deps
	@echo "==> building and installing pg_distcount (release build; the first one takes several minutes)"
	cargo pgrx install --release --pg-config "$(PG_CONFIG)" $(SUDO_FLAG)

demo: install
	@$(CLUSTER) start demo
	@eval "$$($(CLUSTER) env demo)"; \
	  psql -X -q -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'distcount_demo'" | grep -q 1 \
	    || createdb distcount_demo; \
	  echo "==> running tests/demo.sql"; \
	  psql -X -q -d distcount_demo -v ON_ERROR_STOP=1 -f tests/demo.sql && \
	  echo && echo "The demo cluster is running. Connect with:" && \
	  echo "    psql -h $$PGHOST -p $$PGPORT -U postgres distcount_demo      (or: make psql$(if $(SAME_PG), $(SAME_PG)))" && \
	  echo "Stop it with:" && echo "    make stop$(if $(SAME_PG), $(SAME_PG))"

psql:
	@eval "$$($(CLUSTER) env demo)"; psql -X distcount_demo

stop:
	@$(CLUSTER) stop demo

test: deps
	@tests/tools/run_all.sh

bench: install
	@tests/bench/run.sh

# The clusters of checkouts deleted without `make clean` (as root, under /var/lib/pg_distcount).
prune:
	@tests/tools/prune_states.sh --yes

clean: stop
	@$(CLUSTER) stop test
	@rm -rf "$$(dirname "$$(dirname "$$($(CLUSTER) dir test)")")"
	cargo clean
